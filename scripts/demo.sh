#!/usr/bin/env bash
# The main job on a built-in example: build uwsgi-server and uwsgi-cli, start the server on
# examples/demo.ini (the built-in example app: a WSGI-style page, RPC functions `hello`
# and `upper`, a cache, a spooler) and talk to it with uwsgi-cli; then decode bytes real
# nginx sent. Everything goes over a unix socket in a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p uwsgi-server -p uwsgi-cli
server=target/release/uwsgi-server
cli=target/release/uwsgi-cli

tmp=$(mktemp -d)
mkdir -p "$tmp/spool"
sock="unix:$tmp/demo.sock"
UWSGI_SPOOLDIR="$tmp/spool" "$server" --ini examples/demo.ini --socket "$tmp/demo.sock" \
  --stats "$tmp/stats.sock" --disable-logging 2>"$tmp/server.log" &
pid=$!
trap 'kill -INT $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 50); do [ -S "$tmp/demo.sock" ] && break; sleep 0.1; done

step() { printf '\n== %s\n' "$*"; }
step "uwsgi-cli ping (the server's warning message comes back)"
"$cli" ping "$sock" -c 2 || true
step "uwsgi-cli request: an application request through the built-in app"
"$cli" request "$sock" /hello -i
step "uwsgi-cli rpc"
"$cli" rpc "$sock" hello uWSGI users
"$cli" rpc "$sock" upper "shout this"
step "uwsgi-cli cache set / get (the demo cache)"
"$cli" cache "$sock" set greeting "hi there"
"$cli" cache "$sock" get greeting
step "uwsgi-cli spool: a job the built-in spooler runs"
"$cli" spool "$sock" --var task=resize --var id=42
sleep 1.5
grep spooler "$tmp/server.log" || true
step "uwsgi-cli stats: the uWSGI-compatible stats document"
"$cli" stats "unix:$tmp/stats.sock"
step "a request captured from nginx 1.22 (examples/nginx-get.hex), decoded"
"$cli" decode --hex examples/nginx-get.hex
