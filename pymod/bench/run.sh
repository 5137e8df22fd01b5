#!/usr/bin/env bash
# Builds uwsgi-server (release) and the `uwsgi` wheel, installs the wheel into the
# virtualenv pymod/test.sh uses (target/pyenv-test/py3.X), and runs pymod/bench/bench.py
# against one server. The results also go to target/pymod-bench.json.
#
#   bash pymod/bench/run.sh                  # defaults: 5 s per client and case
#   bash pymod/bench/run.sh --seconds 10     # arguments go to bench.py
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
python=${PYTHON:-python3}
version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
venv=$target/pyenv-test/py$version
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PIP_NO_INPUT=1

if [[ ! -x $venv/bin/python ]]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet "maturin>=1.9.4,<2"
(cd "$root" && cargo build --quiet --release -p uwsgi-server -p uwsgi-cli)
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
PATH="$venv/bin:$PATH" "$venv/bin/python" -m pip wheel --quiet --no-deps --no-build-isolation -w "$wheels" "$root/pymod"
"$venv/bin/python" -m pip install --quiet --force-reinstall --no-deps "$wheels"/uwsgi_rs-*.whl
cd "$here"
"$venv/bin/python" bench.py --server "$target/release/uwsgi-server" --json "$target/pymod-bench.json" "$@"
