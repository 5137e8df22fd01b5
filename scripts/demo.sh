#!/usr/bin/env bash
# The main job on a built-in example: build uwsgi-server and uwsgi-cli, start the server on
# examples/demo.ini (a master with two worker processes hosting examples/app.py, a Python
# WSGI app that registers RPC functions `hello` and `upper`, counts visits in the server's
# cache and runs spool jobs) and talk to it with uwsgi-cli, and with curl over the HTTP
# socket when curl is installed; then decode bytes real nginx sent. Everything goes over
# unix sockets in a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p uwsgi-server -p uwsgi-cli
server=target/release/uwsgi-server
cli=target/release/uwsgi-cli

tmp=$(mktemp -d)
mkdir -p "$tmp/spool"
sock="unix:$tmp/demo.sock"
UWSGI_SPOOLDIR="$tmp/spool" "$server" --ini examples/demo.ini --socket "$tmp/demo.sock" \
  --http-socket "$tmp/http.sock" --stats "$tmp/stats.sock" --disable-logging \
  2>"$tmp/server.log" &
pid=$!
trap 'kill -INT $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do [ -S "$tmp/demo.sock" ] && [ -S "$tmp/http.sock" ] && break; sleep 0.1; done

step() { printf '\n== %s\n' "$*"; }
step "uwsgi-cli ping (the server's warning message comes back)"
"$cli" ping "$sock" -c 2 || true
step "uwsgi-cli request: the Python app answers (twice: the visit counter lives in the server's cache)"
"$cli" request "$sock" /hello -i
"$cli" request "$sock" /again
if command -v curl >/dev/null; then
  step "curl over --http-socket: the same app, plain HTTP"
  curl -s --unix-socket "$tmp/http.sock" http://demo/from-curl
fi
step "uwsgi-cli rpc: functions the Python app registered with uwsgi.register_rpc"
"$cli" rpc "$sock" hello uWSGI users
"$cli" rpc "$sock" upper "shout this"
step "uwsgi-cli cache set / get (the demo cache)"
"$cli" cache "$sock" set greeting "hi there"
"$cli" cache "$sock" get greeting
step "uwsgi-cli spool: a job the app's uwsgi.spooler function runs"
"$cli" spool "$sock" --var task=resize --var id=42
sleep 1.5
grep "example spooler" "$tmp/server.log" || true
step "uwsgi-cli stats: the uWSGI-compatible stats document"
"$cli" stats "unix:$tmp/stats.sock"
step "a request captured from nginx 1.22 (examples/nginx-get.hex), decoded"
"$cli" decode --hex examples/nginx-get.hex
