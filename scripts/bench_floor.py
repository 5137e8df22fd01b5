#!/usr/bin/env python3
"""How fast can any uwsgi server be here? uwsgi-rs and real uWSGI 2.0 next to the floor.

Usage (from the workspace root, after scripts/setup-peers.sh and
`cargo build --release -p uwsgi-cli -p uwsgi-server -p uwsgi-tests --example floor_server`):

    python3 scripts/bench_floor.py [--duration 3] [--rounds 3] [--concurrency 4]

The uwsgi protocol has one request per connection, so every request costs the kernel a
connection (accept, read, write, close and, on TCP, the loopback handshake and teardown)
whatever the server does in user space. `floor_server` (tests/examples/floor_server.rs)
does only those system calls with canned replies: no server can spend less CPU per
request. Its figures bound what a speed-up over uWSGI can be.

The servers share core 0 (`taskset -c 0`), one at a time, and the load generator
(`uwsgi-cli bench`) runs alone on core 1, so a server's CPU time per request is its own.
uwsgi-rs and uWSGI host the same Python file (benchmarks/uwsgi_app.py: the `hello` RPC
function and a WSGI page) with one worker under a master; ping and cache-get are served
by each server's core. Each kind and socket runs --rounds times, servers alternating,
and the medians are printed as a Markdown table.
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_server import (  # noqa: E402  (shared helpers of the protocol benchmark)
    CLI, ROOT, SERVER, UWSGI, bench_address, cpu_seconds, free_port, rss_kib, wait_port,
)

FLOOR = os.path.join(ROOT, "target/release/examples/floor_server")
APP = os.path.join(ROOT, "benchmarks/uwsgi_app.py")
SERVER_CORE, BENCH_CORE = "0", "1"
KINDS = [("ping", []), ("rpc", ["hello", "bench"]), ("cache-get", ["key"]), ("request", ["/"])]


def servers(tmp, processes):
    common = ["--processes", str(processes), "--master", "--wsgi-file", APP,
              "--cache2", "name=main,items=1000", "--disable-logging"]
    out = []
    for name, argv in (
        ("floor", lambda port, sock: [FLOOR, f"127.0.0.1:{port}", sock, str(processes)]),
        ("uwsgi-rs", lambda port, sock: [SERVER, "--socket", f"127.0.0.1:{port}",
                                         "--socket", sock] + common),
        ("uWSGI", lambda port, sock: [UWSGI, "--socket", f"127.0.0.1:{port}", "--socket", sock,
                                      "--pidfile", os.path.join(tmp, "uwsgi.pid")] + common),
    ):
        port, sock = free_port(), os.path.join(tmp, f"{name}.sock")
        proc = subprocess.Popen(["taskset", "-c", SERVER_CORE] + argv(port, sock), cwd=tmp,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out.append({"name": name, "proc": proc, "tcp": f"127.0.0.1:{port}",
                    "unix": f"unix:{sock}", "port": port})
    for server in out:
        wait_port(server["port"])
        if server["name"] != "floor":
            subprocess.run([CLI, "cache", server["tcp"], "update", "key", "value" * 20],
                           check=True, capture_output=True)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=3)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--processes", type=int, default=1)
    args = ap.parse_args()
    if os.cpu_count() < 2 or not shutil.which("taskset"):
        sys.exit("needs 2 cores and taskset (util-linux)")

    tmp = tempfile.mkdtemp(prefix="uwsgi-bench-floor-")
    running = servers(tmp, args.processes)
    results = {}
    try:
        for _ in range(args.rounds):
            for kind, target in KINDS:
                for socket_kind in ("unix", "tcp"):
                    for server in running:
                        before = cpu_seconds(server["proc"].pid)
                        r = bench_address(server[socket_kind], kind, target, args.duration,
                                          args.concurrency, prefix=("taskset", "-c", BENCH_CORE))
                        used = cpu_seconds(server["proc"].pid) - before
                        r["server_cpu_us"] = used * 1e6 / max(r["ok"], 1)
                        r["server_core"] = used / r["duration_s"]
                        results.setdefault((kind, socket_kind, server["name"]), []).append(r)
        rss = {s["name"]: rss_kib(s["proc"].pid) for s in running}
    finally:
        for server in running:
            server["proc"].send_signal(signal.SIGINT)
        for server in running:
            try:
                server["proc"].wait(timeout=10)
            except subprocess.TimeoutExpired:
                server["proc"].kill()
                server["proc"].wait()
        shutil.rmtree(tmp, ignore_errors=True)

    def med(kind, socket_kind, name, field):
        runs = results[(kind, socket_kind, name)]
        if field == "errors":
            return sum(sum(r["errors"].values()) for r in runs)
        if field == "p99":
            return statistics.median(r["latency_ms"]["p99"] for r in runs)
        return statistics.median(r[field] for r in runs)

    print(f"servers on core {SERVER_CORE} ({args.processes} worker), bench on core {BENCH_CORE}, "
          f"{args.concurrency} connections, {args.duration:g} s x {args.rounds} rounds (medians)\n")
    print("| kind | socket | req/s floor / uwsgi-rs / uWSGI | server CPU per request "
          "floor / uwsgi-rs / uWSGI | server core busy floor / uwsgi-rs / uWSGI | "
          "uwsgi-rs vs uWSGI (CPU) | floor vs uWSGI (CPU): the ceiling | p99 uwsgi-rs / uWSGI "
          "| errors |")
    print("|---|---|---|---|---|---:|---:|---|---:|")
    for kind, _ in KINDS:
        for socket_kind in ("unix", "tcp"):
            rps = [med(kind, socket_kind, n, "throughput_rps") for n in ("floor", "uwsgi-rs", "uWSGI")]
            cpu = [med(kind, socket_kind, n, "server_cpu_us") for n in ("floor", "uwsgi-rs", "uWSGI")]
            busy = [med(kind, socket_kind, n, "server_core") for n in ("floor", "uwsgi-rs", "uWSGI")]
            p99 = [med(kind, socket_kind, n, "p99") for n in ("uwsgi-rs", "uWSGI")]
            errors = sum(med(kind, socket_kind, n, "errors") for n in ("floor", "uwsgi-rs", "uWSGI"))
            print(f"| {kind} | {socket_kind} | {rps[0]:.0f} / {rps[1]:.0f} / {rps[2]:.0f} | "
                  f"{cpu[0]:.1f} / {cpu[1]:.1f} / {cpu[2]:.1f} µs | "
                  f"{busy[0]:.0%} / {busy[1]:.0%} / {busy[2]:.0%} | "
                  f"**{cpu[2] / cpu[1]:.2f}x** | {cpu[2] / cpu[0]:.2f}x | "
                  f"{p99[0]:.3f} / {p99[1]:.3f} ms | {errors} |")
    print("\nRSS: " + ", ".join(f"{name} {kib} KiB in {n} process(es)" for name, (kib, n) in rss.items()))


if __name__ == "__main__":
    main()
