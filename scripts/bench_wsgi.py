#!/usr/bin/env python3
"""WSGI hosting, side by side in one run: uwsgi-rs, real uWSGI 2.0 and gunicorn.

Usage (from the workspace root, after `cargo build --release -p uwsgi-server -p uwsgi-cli`
and scripts/setup-peers.sh):

    python3 scripts/bench_wsgi.py [--duration 5] [--concurrency 8] [--processes 2] [--rounds 3]

Every server hosts benchmarks/wsgi_apps.py with the same worker count (one thread each)
and logging off. Three sections, each path ("/" hello world, "/10k" 10 KB) run --rounds
times, servers alternating, medians printed as Markdown tables:

1. the uwsgi protocol, load from `uwsgi-cli bench --kind request` (a connection per
   request, as nginx's uwsgi_pass uses it): uwsgi-rs, uWSGI, gunicorn --protocol uwsgi;
2. through nginx (`uwsgi_pass`, stock uwsgi_params) with wrk: the same three servers;
3. plain HTTP with wrk (keep-alive): uwsgi-rs --http-socket against Granian.

RSS is summed over each server's processes and divided by its worker count.
"""
import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_server import (  # noqa: E402  (shared helpers of the protocol benchmark)
    ROOT, SERVER, UWSGI, bench, cpu_seconds, free_port, rss_kib, wait_port,
)

APPS = os.path.join(ROOT, "target/peers/apps-venv")
APP_DIR = os.path.join(ROOT, "benchmarks")
APP_FILE = os.path.join(APP_DIR, "wsgi_apps.py")
NGINX = os.environ.get("NGINX_BIN", "/usr/sbin/nginx")
PATHS = ["/", "/10k"]


def start(name, argv, port, cwd):
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=cwd, start_new_session=True)
    wait_port(port)
    return {"name": name, "proc": proc, "port": port}


def stop(server):
    try:
        os.killpg(server["proc"].pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    server["proc"].wait(timeout=10)


def uwsgi_servers(processes, tmp):
    ours = free_port()
    theirs = free_port()
    gunicorn = free_port()
    return [
        start("uwsgi-rs", [SERVER, "--socket", f"127.0.0.1:{ours}", "--wsgi-file", APP_FILE,
                           "--master", "--processes", str(processes), "--disable-logging"],
              ours, tmp),
        start("uWSGI 2.0", [UWSGI, "--socket", f"127.0.0.1:{theirs}", "--wsgi-file", APP_FILE,
                            "--master", "--processes", str(processes), "--disable-logging"],
              theirs, tmp),
        start("gunicorn", [os.path.join(APPS, "bin/gunicorn"), "--protocol", "uwsgi",
                           "-w", str(processes), "-b", f"127.0.0.1:{gunicorn}",
                           "--chdir", APP_DIR, "--log-level", "warning", "wsgi_apps:application"],
              gunicorn, tmp),
    ]


def http_servers(processes, tmp):
    ours = free_port()
    granian = free_port()
    return [
        start("uwsgi-rs --http-socket", [SERVER, "--http-socket", f"127.0.0.1:{ours}",
                                         "--wsgi-file", APP_FILE, "--master",
                                         "--processes", str(processes), "--disable-logging"],
              ours, tmp),
        start("Granian", [os.path.join(APPS, "bin/granian"), "--interface", "wsgi",
                          "--workers", str(processes), "--blocking-threads", "1",
                          "--http", "1", "--host", "127.0.0.1", "--port", str(granian),
                          "--no-ws", "--log-level", "warning", "--working-dir", APP_DIR,
                          "wsgi_apps:application"],
              granian, tmp),
    ]


def start_nginx(servers, tmp):
    blocks = []
    ports = []
    for server in servers:
        port = free_port()
        ports.append(port)
        blocks.append(f"server {{ listen 127.0.0.1:{port}; location / {{ "
                      f"include /etc/nginx/uwsgi_params; uwsgi_pass 127.0.0.1:{server['port']}; }} }}")
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"user root; worker_processes 1; daemon off; pid {tmp}/nginx.pid; "
                f"error_log {tmp}/nginx-error.log warn; events {{ worker_connections 1024; }} "
                f"http {{ access_log off; client_body_temp_path {tmp}/body; "
                f"proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fastcgi; "
                f"uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi; "
                + " ".join(blocks) + " }\n")
    proc = subprocess.Popen([NGINX, "-p", tmp, "-c", conf], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    for port in ports:
        wait_port(port)
    return {"name": "nginx", "proc": proc, "port": ports[0]}, ports


def parse_duration_ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]


def wrk(port, path, duration, concurrency):
    out = subprocess.run(["wrk", "-t", "2", "-c", str(concurrency), "-d", f"{max(1, round(duration))}s",
                          "--latency", f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        sys.exit(f"wrk failed against port {port}: {out or 'no output'}")
    rps = float(found.group(1))
    p99 = parse_duration_ms(re.search(r"99%\s+(\S+)", out).group(1))
    errors = 0
    match = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if match:
        errors += int(match.group(1))
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if match:
        errors += sum(int(g) for g in match.groups())
    return {"rps": rps, "p99": p99, "errors": errors}


def uwsgi_bench(port, path, duration, concurrency):
    result = bench(port, "request", [path], duration, concurrency)
    return {"rps": result["throughput_rps"], "p99": result["latency_ms"]["p99"],
            "errors": sum(result["errors"].values())}


def compare(title, targets, run, args):
    """targets: (name, port, server process) tuples; run(port, path) -> result."""
    print(f"\n### {title}\n")
    names = [t[0] for t in targets]
    header = "| path | " + " | ".join(f"{n} req/s (p99)" for n in names) + " | " + \
        " | ".join(f"{names[0]} / {n}" for n in names[1:]) + \
        " | server CPU per request (" + " / ".join(names) + ") | errors |"
    print(header)
    print("|---|" + "---:|" * (len(names) * 2 - 1) + "---:|---:|")
    for path in PATHS:
        runs = {n: [] for n in names}
        for _ in range(args.rounds):
            for name, port, proc in targets:
                before = cpu_seconds(proc.pid)
                result = run(port, path)
                served = result["rps"] * args.duration
                result["cpu_us"] = (cpu_seconds(proc.pid) - before) * 1e6 / max(served, 1)
                runs[name].append(result)
        med = {n: {"rps": statistics.median(r["rps"] for r in rs),
                   "p99": statistics.median(r["p99"] for r in rs),
                   "cpu_us": statistics.median(r["cpu_us"] for r in rs),
                   "errors": sum(r["errors"] for r in rs)} for n, rs in runs.items()}
        cells = [f"{med[n]['rps']:.0f} ({med[n]['p99']:.2f} ms)" for n in names]
        ratios = [f"**{med[names[0]]['rps'] / med[n]['rps']:.2f}x**" for n in names[1:]]
        errors = " / ".join(str(med[n]["errors"]) for n in names)
        cpu = " / ".join(f"{med[n]['cpu_us']:.0f} µs" for n in names)
        print(f"| {path} | " + " | ".join(cells) + " | " + " | ".join(ratios) + f" | {cpu} | {errors} |")
    rss = []
    for name, _port, proc in targets:
        total, count = rss_kib(proc.pid)
        rss.append(f"{name} {total // 1024} MiB in {count} processes "
                   f"({total // max(args.processes, 1) // 1024} MiB per worker)")
    print("\nRSS after the run: " + "; ".join(rss))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sections", default="uwsgi,nginx,http",
                    help="comma-separated subset of uwsgi,nginx,http")
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    for tool in ["wrk"]:
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: run scripts/setup-peers.sh")

    tmp = tempfile.mkdtemp(prefix="uwsgi-bench-wsgi-")
    print(f"{args.processes} worker processes x 1 thread each, {args.concurrency} connections, "
          f"{args.duration:g} s x {args.rounds} rounds (medians), {os.cpu_count()} cores, "
          f"load generator on the same machine")
    running = []
    try:
        if sections & {"uwsgi", "nginx"}:
            servers = uwsgi_servers(args.processes, tmp)
            running += servers
            if "uwsgi" in sections:
                compare("uwsgi protocol (uwsgi-cli bench, a connection per request)",
                        [(s["name"], s["port"], s["proc"]) for s in servers],
                        lambda port, path: uwsgi_bench(port, path, args.duration, args.concurrency),
                        args)
            if "nginx" in sections:
                nginx, ports = start_nginx(servers, tmp)
                running.append(nginx)
                compare("through nginx uwsgi_pass (wrk, keep-alive to nginx)",
                        [(s["name"], port, s["proc"]) for s, port in zip(servers, ports)],
                        lambda port, path: wrk(port, path, args.duration, args.concurrency),
                        args)
        if "http" in sections:
            for server in running:
                stop(server)
            running = http_servers(args.processes, tmp)
            compare("HTTP/1.1 (wrk, keep-alive)",
                    [(s["name"], s["port"], s["proc"]) for s in running],
                    lambda port, path: wrk(port, path, args.duration, args.concurrency),
                    args)
    finally:
        for server in running:
            stop(server)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
