#!/usr/bin/env python3
"""uwsgi-server against real uWSGI 2.0, side by side, with the same load generator.

Usage (from the workspace root; needs target/peers/uwsgi-venv from scripts/setup-peers.sh):

    python3 scripts/bench_server.py [--duration 5] [--concurrency 8] [--processes 2] [--rounds 3]

Both servers get the same worker count, a cache with one key, the `hello` RPC function
and a hello-world WSGI page (benchmarks/uwsgi_app.py for uWSGI, the built-in example app
for uwsgi-server). Each kind (ping, rpc, cache-get, request) is run --rounds times,
alternating servers, and the medians are printed as a Markdown table with ratios, p99,
RSS of the server and the bench's own CPU share.
"""
import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = os.path.join(ROOT, "target/release/uwsgi-cli")
SERVER = os.path.join(ROOT, "target/release/uwsgi-server")
UWSGI = os.environ.get("UWSGI_BIN", os.path.join(ROOT, "target/peers/uwsgi-venv/bin/uwsgi"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"nothing listens on {port}")


def rss_kib(pid):
    """RSS of a process and its children (uWSGI's master + workers), in KiB."""
    total = 0
    pids = [pid]
    try:
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        pids += [int(c) for c in children]
    except FileNotFoundError:
        pass
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total, len(pids)


def cpu_seconds(pid):
    """utime + stime of a process and its children (uWSGI's workers), in seconds."""
    pids = [pid]
    try:
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        pids += [int(c) for c in children]
    except FileNotFoundError:
        pass
    ticks = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


def bench(port, kind, target, duration, concurrency):
    return bench_address(f"127.0.0.1:{port}", kind, target, duration, concurrency)


def bench_address(address, kind, target, duration, concurrency, prefix=()):
    """`uwsgi-cli bench --json` against `address` (run under `prefix`, e.g. taskset)."""
    cmd = list(prefix) + [CLI, "bench", address, "--kind", kind, "--duration", f"{duration}s",
                          "-c", str(concurrency), "--json"] + target
    out = subprocess.run(cmd, capture_output=True, text=True)
    if not out.stdout.strip():
        sys.exit(f"bench failed: {out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="uwsgi-bench-")
    ours_port, theirs_port = free_port(), free_port()
    common = ["--processes", str(args.processes), "--cache2", "name=main,items=1000",
              "--disable-logging"]
    ours = subprocess.Popen([SERVER, "--socket", f"127.0.0.1:{ours_port}"] + common,
                            stderr=subprocess.DEVNULL)
    theirs = subprocess.Popen([UWSGI, "--socket", f"127.0.0.1:{theirs_port}", "--master",
                               "--wsgi-file", os.path.join(ROOT, "benchmarks/uwsgi_app.py"),
                               "--pidfile", os.path.join(tmp, "uwsgi.pid")] + common,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
    try:
        wait_port(ours_port)
        wait_port(theirs_port)
        # One write: the caches live in memory shared by every worker process.
        for port in (ours_port, theirs_port):
            subprocess.run([CLI, "cache", f"127.0.0.1:{port}", "update", "key", "value" * 20],
                           check=True, capture_output=True)
        kinds = [("ping", []), ("rpc", ["hello", "bench"]), ("cache-get", ["key"]),
                 ("request", ["/"])]
        rows = []
        for kind, target in kinds:
            results = {"uwsgi-rs": [], "uWSGI": []}
            for _ in range(args.rounds):
                for name, port, proc in (("uwsgi-rs", ours_port, ours), ("uWSGI", theirs_port, theirs)):
                    before = cpu_seconds(proc.pid)
                    result = bench(port, kind, target, args.duration, args.concurrency)
                    result["server_cpu_us"] = (cpu_seconds(proc.pid) - before) * 1e6 / max(result["ok"], 1)
                    results[name].append(result)
            med = {}
            for name, runs in results.items():
                med[name] = {
                    "rps": statistics.median(r["throughput_rps"] for r in runs),
                    "p99": statistics.median(r["latency_ms"]["p99"] for r in runs),
                    "errors": sum(sum(r["errors"].values()) for r in runs),
                    "cpu": statistics.median(r["cpu_percent_of_one_core"] for r in runs),
                    "server_us": statistics.median(r["server_cpu_us"] for r in runs),
                }
            rows.append((kind, med))
        ours_rss, ours_procs = rss_kib(ours.pid)
        theirs_rss, theirs_procs = rss_kib(theirs.pid)
    finally:
        # SIGINT: with a master, SIGTERM means a brutal reload (uWSGI 2.0).
        ours.send_signal(signal.SIGINT)
        theirs.send_signal(signal.SIGINT)
        ours.wait(timeout=10)
        theirs.wait(timeout=10)

    print(f"{args.processes} workers each, {args.concurrency} connections, "
          f"{args.duration:g} s x {args.rounds} rounds (medians), {os.cpu_count()} cores\n")
    print("| kind | uwsgi-rs req/s | uWSGI req/s | ratio | p99 uwsgi-rs | p99 uWSGI | server CPU per request uwsgi-rs / uWSGI | errors | bench CPU (% of a core) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for kind, med in rows:
        a, b = med["uwsgi-rs"], med["uWSGI"]
        print(f"| {kind} | {a['rps']:.0f} | {b['rps']:.0f} | **{a['rps'] / b['rps']:.2f}x** | "
              f"{a['p99']:.3f} ms | {b['p99']:.3f} ms | {a['server_us']:.1f} / {b['server_us']:.1f} µs | "
              f"{a['errors']} / {b['errors']} | "
              f"{a['cpu']:.0f} / {b['cpu']:.0f} |")
    print(f"\nRSS: uwsgi-rs {ours_rss} KiB in {ours_procs} process; "
          f"uWSGI {theirs_rss} KiB in {theirs_procs} processes "
          f"({theirs_rss // max(theirs_procs, 1)} KiB per process)")


if __name__ == "__main__":
    main()
