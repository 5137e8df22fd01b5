"""RPC and cache-get calls per second from Python: the `uwsgi` module (standalone) against a
straightforward pure-Python client (socket + struct), against one uwsgi-rs server, in
one run.

    python pymod/bench/bench.py [--server target/release/uwsgi-server] [--seconds 5]
                                [--rounds 5] [--threads 1,4] [--transport unix,tcp]
                                [--json out.json]

Each case runs the same calls for `--seconds` (split into `--rounds` rounds that
alternate between the two clients; medians reported) in 1..N client threads: uwsgi-rs's module
releases the GIL around every network call, the pure-Python client holds it except
inside socket calls. The server runs with 4 worker threads. pymod/bench/run.sh builds
what is needed and calls this script.

A third client bounds what any Python module can reach: `uwsgi-cli bench` makes the same
calls from Rust with no interpreter at all (same connection per call, same threads), so
its calls/s over the pure-Python client's is the ceiling of the module's ratio on this
machine ("native ceiling" in the output).

`uwsgi-tools` (PyPI) has no RPC or cache client — its `ask_uwsgi`/`curl` always send a
modifier1 0 vars request — so it does not apply to these two calls.
"""

import argparse
import json
import os
import pathlib
import platform
import shutil
import signal
import statistics
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import uwsgi

ROOT = pathlib.Path(__file__).resolve().parents[2]


# --- the pure-Python client -----------------------------------------------------------


def _connect(address):
    if isinstance(address, tuple):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    else:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(4)
    sock.connect(address)
    return sock


def _read_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed early")
        data += chunk
    return data


def py_rpc(address, function, *args):
    """uwsgi RPC (modifier1 173): `ad LLLL 00 | array`, framed reply; None if closed."""
    block = b"".join(struct.pack("<H", len(item)) + item for item in (function, *args))
    with _connect(address) as sock:
        sock.sendall(struct.pack("<BHB", 173, len(block), 0) + block)
        header = sock.recv(4)
        if not header:
            return None
        if len(header) < 4:
            header += _read_exactly(sock, 4 - len(header))
        _, size, _ = struct.unpack("<BHB", header)
        return _read_exactly(sock, size)


def _vars(pairs):
    return b"".join(
        struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v for k, v in pairs
    )


def py_cache_get(address, key):
    """uWSGI 2.0's magic cache get (modifier1 111, modifier2 17); None on a miss."""
    block = _vars([(b"cmd", b"get"), (b"key", key)])
    with _connect(address) as sock:
        sock.sendall(struct.pack("<BHB", 111, len(block), 17) + block)
        header = sock.recv(4)
        if not header:
            return None
        if len(header) < 4:
            header += _read_exactly(sock, 4 - len(header))
        _, size, _ = struct.unpack("<BHB", header)
        reply = _read_exactly(sock, size)
        pairs, offset = {}, 0
        while offset < len(reply):
            (klen,) = struct.unpack_from("<H", reply, offset)
            k = reply[offset + 2 : offset + 2 + klen]
            offset += 2 + klen
            (vlen,) = struct.unpack_from("<H", reply, offset)
            pairs[k] = reply[offset + 2 : offset + 2 + vlen]
            offset += 2 + vlen
        if pairs.get(b"status") != b"ok":
            return None
        return _read_exactly(sock, int(pairs.get(b"size", b"0")))


# --- measuring ---------------------------------------------------------------------------


def measure(call, seconds, threads):
    """Calls per second of `call()` run back to back in `threads` threads, and the CPU
    time this (client) process spent per call, in microseconds. The server is another
    process: its CPU is not counted."""
    counts = [0] * threads
    stop = time.monotonic() + seconds
    start_barrier = threading.Barrier(threads + 1)

    def worker(i):
        start_barrier.wait()
        n = 0
        while time.monotonic() < stop:
            for _ in range(20):
                call()
            n += 20
        counts[i] = n

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    begin, cpu = time.monotonic(), time.process_time()
    start_barrier.wait()
    for t in pool:
        t.join()
    elapsed, cpu = time.monotonic() - begin, time.process_time() - cpu
    calls = sum(counts)
    return calls / elapsed, cpu / calls * 1e6


def measure_native(cli, address, kind, target, seconds, threads):
    """`uwsgi-cli bench`: the same calls from a client without an interpreter. Returns
    calls per second and its CPU time per call in microseconds."""
    out = subprocess.run(
        [cli, "bench", address, "--kind", kind, "--duration", f"{seconds}s",
         "-c", str(threads), "--json", *target],
        capture_output=True, text=True, check=True,
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    if sum(report["errors"].values()):
        raise SystemExit(f"uwsgi-cli bench failed: {report['errors']}")
    return report["throughput_rps"], report["cpu_s"] / max(report["ok"], 1) * 1e6


def start_server(binary, directory):
    port = None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    unix = str(directory / "bench.sock")
    process = subprocess.Popen(
        [
            binary,
            "--socket", f"127.0.0.1:{port}",
            "--socket", unix,
            "--threads", "4",
            "--cache2", "name=default,items=1000,blocksize=4096",
            "--disable-logging",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            if py_rpc(("127.0.0.1", port), b"hello") and py_rpc(unix, b"hello"):
                return process, port, unix
        except OSError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise SystemExit(f"{binary} did not start")
        time.sleep(0.05)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default=str(ROOT / "target/release/uwsgi-server"))
    parser.add_argument("--seconds", type=float, default=5.0, help="per client and case")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per case")
    parser.add_argument("--threads", default="1,4")
    parser.add_argument("--transport", default="unix,tcp")
    parser.add_argument("--cli", default=str(ROOT / "target/release/uwsgi-cli"),
                        help="uwsgi-cli, for the native ceiling")
    parser.add_argument("--json", help="also write the results as JSON here")
    options = parser.parse_args()

    load_before = os.getloadavg()[0]
    directory = pathlib.Path(tempfile.mkdtemp(prefix="pymod-bench-"))
    process, port, unix = start_server(options.server, directory)
    try:
        value = b"v" * 100
        tcp_text = f"127.0.0.1:{port}"
        assert uwsgi.cache_update(b"bench", value, 0, "@" + tcp_text) is True
        rows = []
        for transport in options.transport.split(","):
            text, py_address = (
                (unix, unix) if transport == "unix" else (tcp_text, ("127.0.0.1", port))
            )
            cache = "@" + text
            # Same answers from both clients before timing anything.
            assert uwsgi.rpc(text, b"hello", b"x") == py_rpc(py_address, b"hello", b"x")
            assert uwsgi.cache_get(b"bench", cache) == py_cache_get(py_address, b"bench") == value
            native_address = text if transport == "tcp" else f"unix:{unix}"
            cases = {
                "rpc": (
                    lambda: uwsgi.rpc(text, b"hello", b"x"),
                    lambda: py_rpc(py_address, b"hello", b"x"),
                    ("rpc", ["hello", "x"]),
                ),
                "cache_get": (
                    lambda: uwsgi.cache_get(b"bench", cache),
                    lambda: py_cache_get(py_address, b"bench"),
                    ("cache-get", ["bench", "--cache", "default"]),
                ),
            }
            for threads in (int(t) for t in options.threads.split(",")):
                for name, (ours, pure, (kind, target)) in cases.items():
                    # Interleaved rounds, medians: the machine is shared, and load that
                    # comes and goes must hit all clients alike.
                    ours_runs, pure_runs, native_runs = [], [], []
                    seconds = options.seconds / options.rounds
                    for _ in range(options.rounds):
                        ours_runs.append(measure(ours, seconds, threads))
                        pure_runs.append(measure(pure, seconds, threads))
                        native_runs.append(measure_native(
                            options.cli, native_address, kind, target, seconds, threads))
                    ours_rate = statistics.median(r for r, _ in ours_runs)
                    ours_cpu = statistics.median(c for _, c in ours_runs)
                    pure_rate = statistics.median(r for r, _ in pure_runs)
                    pure_cpu = statistics.median(c for _, c in pure_runs)
                    native_rate = statistics.median(r for r, _ in native_runs)
                    native_cpu = statistics.median(c for _, c in native_runs)
                    row = {
                        "call": name,
                        "transport": transport,
                        "threads": threads,
                        "uwsgi_module_calls_per_s": round(ours_rate),
                        "pure_python_calls_per_s": round(pure_rate),
                        "ratio": round(ours_rate / pure_rate, 2),
                        "uwsgi_module_client_cpu_us": round(ours_cpu, 1),
                        "pure_python_client_cpu_us": round(pure_cpu, 1),
                        "cpu_ratio": round(pure_cpu / ours_cpu, 2),
                        "native_calls_per_s": round(native_rate),
                        "native_client_cpu_us": round(native_cpu, 1),
                        "native_ceiling": round(native_rate / pure_rate, 2),
                    }
                    rows.append(row)
                    print(
                        f"{name:9} {transport:4} threads={threads}: "
                        f"uwsgi {ours_rate:7.0f}/s ({ours_cpu:5.1f} us CPU/call)  "
                        f"pure Python {pure_rate:7.0f}/s ({pure_cpu:5.1f} us)  "
                        f"calls/s x{ours_rate / pure_rate:.2f}  client CPU x{pure_cpu / ours_cpu:.2f}  "
                        f"native {native_rate:7.0f}/s ({native_cpu:5.1f} us): "
                        f"ceiling x{native_rate / pure_rate:.2f}",
                        flush=True,
                    )
        result = {
            "python": platform.python_version(),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "seconds": options.seconds,
            "rounds": options.rounds,
            "load_average_before": load_before,
            "rows": rows,
        }
        if options.json:
            pathlib.Path(options.json).write_text(json.dumps(result, indent=2) + "\n")
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
