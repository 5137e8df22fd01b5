#!/usr/bin/env python3
"""The process and I/O model measured: uwsgi-server's forked workers, its single-process
threaded mode, and real uWSGI 2.0 with the same worker counts, side by side with the
same load generator (uwsgi-cli bench). Figures for docs/decisions/0002.

Usage (from the workspace root, after `cargo build --release -p uwsgi-cli -p uwsgi-server`):

    python3 scripts/bench_processes.py [--duration 3] [--rounds 3] [--concurrency 8]

Each configuration runs ping, rpc (`hello`) and cache-get; rounds alternate between
configurations so that background load on the machine hits them alike, and the medians
are printed as a Markdown table with the ratio to uWSGI at the same worker count.

The cache key is written once: the caches live in memory shared by every worker
process, and a miss would show as bench errors (reported in the table).
"""
import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_server import (  # noqa: E402  (shared helpers of the protocol benchmark)
    CLI, ROOT, SERVER, UWSGI, bench, free_port, wait_port,
)


def configs(tmp):
    common = ["--cache2", "name=main,items=1000", "--disable-logging"]
    app = ["--wsgi-file", os.path.join(ROOT, "benchmarks/uwsgi_app.py")]
    return [
        # (name, argv builder, worker count label)
        ("uwsgi-rs forked 2p×1t", lambda p: [SERVER, "--master", "--processes", "2",
                                             "--socket", f"127.0.0.1:{p}"] + common, "2×1"),
        ("uWSGI 2p×1t", lambda p: [UWSGI, "--master", "--processes", "2", "--socket",
                                   f"127.0.0.1:{p}", "--pidfile", os.path.join(tmp, f"{p}.pid")]
         + app + common, "2×1"),
        ("uwsgi-rs threads 1p×2t", lambda p: [SERVER, "--threads", "2",
                                              "--socket", f"127.0.0.1:{p}"] + common, "1×2"),
        ("uwsgi-rs forked 2p×2t", lambda p: [SERVER, "--master", "--processes", "2",
                                             "--threads", "2",
                                             "--socket", f"127.0.0.1:{p}"] + common, "2×2"),
        ("uWSGI 2p×2t", lambda p: [UWSGI, "--master", "--processes", "2", "--threads", "2",
                                   "--socket", f"127.0.0.1:{p}",
                                   "--pidfile", os.path.join(tmp, f"{p}t.pid")]
         + app + common, "2×2"),
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=3)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="uwsgi-bench-proc-")
    running = []
    try:
        for name, argv, label in configs(tmp):
            port = free_port()
            proc = subprocess.Popen(argv(port), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, cwd=tmp)
            running.append((name, label, port, proc))
        for _, _, port, _ in running:
            wait_port(port)
            subprocess.run([CLI, "cache", f"127.0.0.1:{port}", "update", "key", "value" * 20],
                           check=True, capture_output=True)
        kinds = [("ping", []), ("rpc", ["hello", "bench"]), ("cache-get", ["key"])]
        results = {(name, kind): [] for name, _, _, _ in running for kind, _ in kinds}
        for _ in range(args.rounds):
            for kind, target in kinds:
                for name, _, port, _ in running:
                    results[(name, kind)].append(
                        bench(port, kind, target, args.duration, args.concurrency))
    finally:
        for name, _, _, proc in running:
            proc.send_signal(signal.SIGINT)
        for _, _, _, proc in running:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    print(f"{args.concurrency} connections, {args.duration:g} s x {args.rounds} rounds "
          f"(medians), {os.cpu_count()} cores, loopback\n")
    print("| configuration | kind | req/s | vs uWSGI same workers | p50 | p99 | errors |")
    print("|---|---|---:|---:|---:|---:|---:|")
    uwsgi_by_label = {label: name for name, label, _, _ in running if name.startswith("uWSGI")}
    for kind, _ in kinds:
        for name, label, _, _ in running:
            runs = results[(name, kind)]
            rps = statistics.median(r["throughput_rps"] for r in runs)
            p50 = statistics.median(r["latency_ms"]["p50"] for r in runs)
            p99 = statistics.median(r["latency_ms"]["p99"] for r in runs)
            errors = sum(sum(r["errors"].values()) for r in runs)
            peer = uwsgi_by_label.get(label)
            if peer and peer != name:
                base = statistics.median(r["throughput_rps"] for r in results[(peer, kind)])
                ratio = f"{rps / base:.2f}x"
            else:
                ratio = "—"
            print(f"| {name} | {kind} | {rps:.0f} | {ratio} | {p50:.3f} ms | {p99:.3f} ms | {errors} |")


if __name__ == "__main__":
    main()
