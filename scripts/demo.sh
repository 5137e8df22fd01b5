#!/usr/bin/env bash
# The main job on a built-in example: build uwsgi-cli, encode a sample request and decode
# it back, then decode the bytes real nginx sent to a uwsgi upstream.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p uwsgi-cli
cli=target/release/uwsgi-cli

echo "== encode a POST request and decode it back"
"$cli" encode request \
  --var REQUEST_METHOD=POST --var PATH_INFO=/submit --var QUERY_STRING=a=1 \
  --var SERVER_PROTOCOL=HTTP/1.1 --var HTTP_HOST=example.com --body 'hello world' \
  | "$cli" decode

echo
echo "== the same request as JSON"
"$cli" encode request --var REQUEST_METHOD=GET --var PATH_INFO=/ | "$cli" decode --json

echo
echo "== an RPC call, as hex, decoded"
"$cli" encode rpc hello a bb ccc --hex | "$cli" decode --hex

echo
echo "== a request captured from nginx 1.22 (examples/nginx-get.hex)"
"$cli" decode --hex examples/nginx-get.hex
