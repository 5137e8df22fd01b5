#!/usr/bin/env python3
"""Keep-alive HTTP and the uwsgi protocol, two uwsgi-server builds side by side.

Usage (from the workspace root, after `cargo build --release -p uwsgi-server -p uwsgi-cli`):

    python3 scripts/bench_http_keepalive.py --baseline /path/to/old/uwsgi-server \
        [--duration 5] [--rounds 3] [--processes 2] [--threads 1]

Both builds serve the built-in HelloApp with `--master --processes P --threads T` and
logging off, alternating round by round; medians are printed as a Markdown table:

* wrk (2 threads, keep-alive) against `--http-socket` with 8 and 64 connections, more
  than the worker threads: the case where idle keep-alive connections used to hold a
  thread;
* `uwsgi-cli bench --kind ping` and `--kind request` against `--socket` (a connection
  per request), which must not get slower.

Server CPU per request is the utime + stime of the master and its workers during the
run, divided by the requests served.
"""
import argparse
import os
import signal
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_server import SERVER, bench, cpu_seconds, free_port, wait_port  # noqa: E402
from bench_wsgi import wrk  # noqa: E402


def start(binary, processes, threads):
    http, uwsgi = free_port(), free_port()
    proc = subprocess.Popen([binary, "--http-socket", f"127.0.0.1:{http}",
                             "--socket", f"127.0.0.1:{uwsgi}", "--master",
                             "--processes", str(processes), "--threads", str(threads),
                             "--disable-logging"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    wait_port(http)
    wait_port(uwsgi)
    return {"proc": proc, "http": http, "uwsgi": uwsgi}


def stop(server):
    try:
        os.killpg(server["proc"].pid, signal.SIGINT)
        server["proc"].wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(server["proc"].pid, signal.SIGKILL)
        server["proc"].wait(timeout=10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", required=True, help="the uwsgi-server binary to compare with")
    ap.add_argument("--candidate", default=SERVER)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    builds = [("baseline", args.baseline), ("candidate", args.candidate)]
    servers = {name: start(binary, args.processes, args.threads) for name, binary in builds}
    loads = [
        ("http wrk -c 8", lambda s: wrk(s["http"], "/", args.duration, 8)),
        ("http wrk -c 64", lambda s: wrk(s["http"], "/", args.duration, 64)),
        ("uwsgi ping -c 8", lambda s: uwsgi_bench(s["uwsgi"], "ping", [])),
        ("uwsgi request -c 8", lambda s: uwsgi_bench(s["uwsgi"], "request", ["/"])),
    ]

    def uwsgi_bench(port, kind, target):
        result = bench(port, kind, target, args.duration, 8)
        return {"rps": result["throughput_rps"], "p99": result["latency_ms"]["p99"],
                "errors": sum(result["errors"].values())}

    rows = []
    try:
        for load, run in loads:
            runs = {name: [] for name, _ in builds}
            for _ in range(args.rounds):
                for name, _ in builds:
                    server = servers[name]
                    before = cpu_seconds(server["proc"].pid)
                    result = run(server)
                    served = result["rps"] * max(1, round(args.duration))
                    result["cpu_us"] = (cpu_seconds(server["proc"].pid) - before) * 1e6 / max(served, 1)
                    runs[name].append(result)
            rows.append((load, {name: {
                "rps": statistics.median(r["rps"] for r in rs),
                "p99": statistics.median(r["p99"] for r in rs),
                "cpu_us": statistics.median(r["cpu_us"] for r in rs),
                "errors": sum(r["errors"] for r in rs),
            } for name, rs in runs.items()}))
    finally:
        for server in servers.values():
            stop(server)
    print(f"HelloApp, --master --processes {args.processes} --threads {args.threads}, "
          f"{args.duration:g} s x {args.rounds} rounds (medians), {os.cpu_count()} cores, "
          f"load generator on the same machine\n")
    print("| load | baseline req/s (p99) | candidate req/s (p99) | candidate / baseline "
          "| server CPU per request (baseline / candidate) | errors |")
    print("|---|---:|---:|---:|---:|---:|")
    for load, med in rows:
        a, b = med["baseline"], med["candidate"]
        print(f"| {load} | {a['rps']:.0f} ({a['p99']:.2f} ms) | {b['rps']:.0f} ({b['p99']:.2f} ms) "
              f"| **{b['rps'] / a['rps']:.2f}x** | {a['cpu_us']:.1f} / {b['cpu_us']:.1f} µs "
              f"| {a['errors']} / {b['errors']} |")


if __name__ == "__main__":
    main()
