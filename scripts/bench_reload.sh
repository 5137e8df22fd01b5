#!/bin/bash
# Reload under load, measured: `uwsgi-cli bench --kind ping -c 8` for 6 s against a
# master with 2 workers, SIGHUP at 2 s and at 4 s; prints the bench summary (failed
# requests, p99, max latency = the reload gap). Run from the workspace root after
# `cargo build --release -p uwsgi-cli -p uwsgi-server`. Set UWSGI_BIN to run the same
# against real uWSGI (needs an installation whose binary reload works).
set -u
CLI=target/release/uwsgi-cli
PORT=${PORT:-21511}
if [ -n "${UWSGI_BIN:-}" ]; then
  "$UWSGI_BIN" --master --processes 2 --socket 127.0.0.1:$PORT --disable-logging \
    --wsgi-file benchmarks/uwsgi_app.py >/dev/null 2>&1 &
else
  target/release/uwsgi-server --master --processes 2 --socket 127.0.0.1:$PORT \
    --disable-logging >/dev/null 2>&1 &
fi
pid=$!
trap 'kill -INT $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
sleep 1.5
$CLI bench 127.0.0.1:$PORT --kind ping --duration 6s -c 8 --timeout 10s &
bench=$!
sleep 2; kill -HUP $pid; sleep 2; kill -HUP $pid
wait $bench
