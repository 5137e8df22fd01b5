#!/usr/bin/env python3
"""User-space instructions per request, counted by callgrind: repeatable where wall-clock
figures on a shared 2-core machine are not.

Usage (from the workspace root, after scripts/setup-peers.sh and
`cargo build --release -p uwsgi-cli -p uwsgi-server -p uwsgi-tests --example floor_server`;
needs valgrind):

    python3 scripts/count_instructions.py [--requests 2000] [--kinds ping,rpc,cache-get,request]

Each server runs under `valgrind --tool=callgrind` with one worker (one thread, no
master) hosting benchmarks/uwsgi_app.py (uwsgi-rs and real uWSGI 2.0; floor_server
answers canned bytes). After 200 warm-up requests the counters are zeroed, then
--requests identical requests are sent one at a time with `uwsgi-cli bench -c 1` and the
counters dumped: the dump's total divided by the requests is the figure. The kernel's
work (system calls, TCP) is not counted.
"""
import argparse
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_server import CLI, ROOT, SERVER, UWSGI, free_port, wait_port  # noqa: E402

FLOOR = os.path.join(ROOT, "target/release/examples/floor_server")
APP = os.path.join(ROOT, "benchmarks/uwsgi_app.py")
TARGETS = {"ping": [], "rpc": ["hello", "bench"], "cache-get": ["key"], "request": ["/"]}


def server_argv(name, port, tmp):
    common = ["--wsgi-file", APP, "--cache2", "name=main,items=1000", "--disable-logging"]
    if name == "floor":
        return [FLOOR, f"127.0.0.1:{port}", os.path.join(tmp, "floor.sock"), "1"]
    if name == "uwsgi-rs":
        return [SERVER, "--socket", f"127.0.0.1:{port}"] + common
    return [UWSGI, "--socket", f"127.0.0.1:{port}"] + common


def count(name, kinds, requests, tmp):
    port = free_port()
    out_prefix = os.path.join(tmp, f"{name}.callgrind")
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_prefix}.%p"]
                            + server_argv(name, port, tmp), cwd=tmp,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = {}
    try:
        wait_port(port, timeout=60)
        address = f"127.0.0.1:{port}"
        if name != "floor":
            subprocess.run([CLI, "cache", address, "update", "key", "value" * 20],
                           check=True, capture_output=True)
        for kind in kinds:
            bench = [CLI, "bench", address, "--kind", kind, "-c", "1"]
            subprocess.run(bench + ["-n", "200"] + TARGETS[kind], check=True, capture_output=True)
            # callgrind_control acts on every callgrind process it finds: uWSGI's single
            # process here, or ours.
            subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True,
                           capture_output=True)
            subprocess.run(bench + ["-n", str(requests)] + TARGETS[kind], check=True,
                           capture_output=True)
            before = set(glob.glob(out_prefix + ".*"))
            subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True,
                           capture_output=True)
            deadline = time.time() + 30
            while time.time() < deadline:
                new = set(glob.glob(out_prefix + ".*")) - before
                if new:
                    break
                time.sleep(0.2)
            time.sleep(0.5)
            dump = sorted(new, key=os.path.getmtime)[-1]
            with open(dump) as f:
                total = next(int(m.group(1)) for line in f
                             if (m := re.match(r"^(?:totals|summary): (\d+)", line)))
            results[kind] = total / requests
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--kinds", default="ping,rpc,cache-get,request")
    args = ap.parse_args()
    if not shutil.which("valgrind"):
        sys.exit("needs valgrind (apt-get install valgrind)")
    kinds = args.kinds.split(",")
    tmp = tempfile.mkdtemp(prefix="uwsgi-callgrind-")
    try:
        figures = {name: count(name, kinds, args.requests, tmp)
                   for name in ("floor", "uwsgi-rs", "uWSGI")}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"user-space instructions per request (callgrind, {args.requests} requests, "
          "one worker, one connection at a time)\n")
    print("| kind | floor | uwsgi-rs | uWSGI 2.0 | uwsgi-rs / uWSGI |")
    print("|---|---:|---:|---:|---:|")
    for kind in kinds:
        f, ours, theirs = (figures[n][kind] for n in ("floor", "uwsgi-rs", "uWSGI"))
        print(f"| {kind} | {f:,.0f} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f} |")


if __name__ == "__main__":
    main()
