#!/usr/bin/env bash
# Installs the real peers the interop tests and benchmarks talk to, each isolated from our
# own code:
#   * uWSGI 2.0 (the `pyuwsgi` wheel), Flask and Django in target/peers/uwsgi-venv, so its
#     `uwsgi` script never meets our `uwsgi` Python module;
#   * Flask, Django, gunicorn and Granian in target/peers/apps-venv (the venv
#     uwsgi-server's --virtualenv points at in the tests, and the peers of the WSGI
#     benchmarks);
#   * nginx (Debian's nginx-light, stopped: tests start their own), wrk and net-snmp's
#     snmpget (package snmp, for the SNMP interop test), with apt-get
#     when missing and when running as root.
# Prints what it found.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PIP_NO_INPUT=1
# Django 5.2 is the LTS line that still runs on Python 3.10 and 3.11 (6.x needs 3.12).
django='django>=5.2,<6'

venv=target/peers/uwsgi-venv
if [ ! -x "$venv/bin/uwsgi" ] || ! "$venv/bin/python" -c 'import flask, django' 2>/dev/null; then
  mkdir -p target/peers
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet pyuwsgi flask "$django"
fi
"$venv/bin/uwsgi" --version >/dev/null
echo "uWSGI $("$venv/bin/uwsgi" --version) at $venv/bin/uwsgi"

apps=target/peers/apps-venv
if ! "$apps/bin/python" -c 'import flask, django, gunicorn, granian' 2>/dev/null; then
  [ -x "$apps/bin/python" ] || python3 -m venv "$apps"
  "$apps/bin/pip" install --quiet flask "$django" 'gunicorn>=24' granian
fi
echo "apps venv: $("$apps/bin/python" -c 'import flask, django, gunicorn, granian; print("flask", flask.__version__ if hasattr(flask, "__version__") else "?", "django", django.__version__, "gunicorn", gunicorn.__version__, "granian", granian.__version__)' 2>/dev/null) at $apps"

missing=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v wrk >/dev/null || missing+=(wrk)
command -v snmpget >/dev/null || missing+=(snmp)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || true
    apt-get install -y -qq "${missing[@]}" >/dev/null
    # The package starts a system nginx on port 80; the tests run their own.
    (service nginx stop || /usr/sbin/nginx -s stop) >/dev/null 2>&1 || true
  else
    echo "missing: ${missing[*]} (install them with apt-get as root)" >&2
  fi
fi
echo "nginx: $(/usr/sbin/nginx -v 2>&1 || echo missing); wrk: $(command -v wrk || echo missing)"
