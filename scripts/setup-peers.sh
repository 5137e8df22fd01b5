#!/usr/bin/env bash
# Installs the real peers the interop tests talk to, each isolated from our own code:
# uWSGI 2.0 (the `pyuwsgi` wheel) in target/peers/uwsgi-venv, so its `uwsgi` script never
# meets our `uwsgi` Python module. Prints the path of the uwsgi binary.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/peers/uwsgi-venv
if [ ! -x "$venv/bin/uwsgi" ]; then
  mkdir -p target/peers
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check pyuwsgi
fi
"$venv/bin/uwsgi" --version >/dev/null
echo "uWSGI $("$venv/bin/uwsgi" --version) at $venv/bin/uwsgi"
