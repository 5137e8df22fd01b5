#!/usr/bin/env bash
# Builds the `uwsgi` Python module as a wheel (maturin, through pip's PEP 517 path),
# installs it into a virtualenv under target/, and runs the pytest suite, which includes
# the stub check (mypy's stubtest) against the installed module.
#
#   pymod/test.sh                 # with python3 (3.11+), then every other CPython 3.12,
#                                 # 3.13, 3.14 found (PATH, pyenv, uv) with the same wheel
#   PYTHON=python3.12 pymod/test.sh
#   PYMOD_EXTRA_PYTHONS="/path/to/python3.12 /path/to/python3.13" pymod/test.sh
#                                 # exactly these extra interpreters ("" for none)
#   pymod/test.sh -k cache        # arguments go to pytest
#
# The client tests talk to uwsgi-rs's server (built here, release) and to real uWSGI 2.0
# (target/peers/uwsgi-venv, installed by scripts/setup-peers.sh when missing; set
# UWSGI_SKIP_PEERS=1 to skip those tests where uWSGI cannot be installed).
#
# Needs: a Rust toolchain, Python 3.11+ with pip, and PyPI (maturin, pytest, mypy,
# hypothesis, pyuwsgi).
# Idempotent: the virtualenvs are reused; the wheel is rebuilt (cargo caches the work).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
python=${PYTHON:-python3}
target=${CARGO_TARGET_DIR:-$root/target}
venvs=$target/pyenv-test
wheels=$target/pymod-wheels

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PIP_NO_INPUT=1

say() { printf '\n=== pymod: %s\n' "$*"; }

# make_venv PYTHON DIR: a virtualenv of PYTHON with a working pip, created once (and again
# if DIR was made by another interpreter of the same version).
make_venv() {
    local py=$1 dir=$2 base
    base=$("$py" -c 'import sys; print(sys.base_prefix)')
    if [[ -x $dir/bin/python ]] &&
        [[ $("$dir/bin/python" -c 'import sys; print(sys.base_prefix)' 2>/dev/null) == "$base" ]] &&
        "$dir/bin/python" -m pip --version >/dev/null 2>&1; then
        return
    fi
    rm -rf "$dir"
    if ! "$py" -m venv "$dir" >/dev/null 2>&1; then
        # Debian's python3 without python3-venv has no ensurepip: borrow the system pip.
        rm -rf "$dir"
        "$py" -m venv --without-pip --system-site-packages "$dir"
    fi
    "$dir/bin/python" -m pip --version >/dev/null
}

# venv_for PYTHON: the virtualenv directory for that interpreter's version.
venv_for() {
    local version
    version=$("$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    printf '%s/py%s' "$venvs" "$version"
}

"$python" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' ||
    { echo "pymod: Python 3.11 or later is needed ($python)" >&2; exit 1; }

main_venv=$(venv_for "$python")
say "virtualenv $main_venv ($("$python" --version))"
make_venv "$python" "$main_venv"
"$main_venv/bin/python" -m pip install --quiet "maturin>=1.9.4,<2" "pytest>=8" "mypy>=1.10" "hypothesis>=6"

say "building uwsgi-server (release) for the client tests"
(cd "$root" && cargo build --quiet --release -p uwsgi-server)
export UWSGI_RS_SERVER=${UWSGI_RS_SERVER:-$target/release/uwsgi-server}

if [[ -z ${UWSGI_BIN:-} && ${UWSGI_SKIP_PEERS:-} != 1 ]]; then
    say "real uWSGI 2.0 for the client tests"
    bash "$root/scripts/setup-peers.sh"
fi

say "building the wheel (pip wheel ./pymod: maturin, release, abi3)"
rm -rf "$wheels"
# No build isolation: the backend is the venv's maturin, which it runs from PATH.
PATH="$main_venv/bin:$PATH" \
    "$main_venv/bin/python" -m pip wheel --quiet --no-deps --no-build-isolation -w "$wheels" "$here"
wheel=$(ls "$wheels"/uwsgi_rs-*.whl)
echo "built $(basename "$wheel")"

status=0
run_tests() {
    local venv=$1
    shift
    "$venv/bin/python" -m pip install --quiet --force-reinstall --no-deps "$wheel"
    say "pytest with $("$venv/bin/python" --version)"
    # From inside tests/: the module under test must be the installed one.
    (cd "$here/tests" && "$venv/bin/python" -m pytest -p no:cacheprovider -ra . "$@") || status=1
}

# find_python VERSION: an interpreter of that version, or nothing.
find_python() {
    local version=$1 candidate
    if candidate=$(command -v "python$version" 2>/dev/null) && "$candidate" -c '' 2>/dev/null; then
        echo "$candidate"
        return
    fi
    for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version".*/bin/python"$version"; do
        if [[ -x $candidate ]]; then
            echo "$candidate"
            return
        fi
    done
    if command -v uv >/dev/null 2>&1; then
        uv python find --no-python-downloads "$version" 2>/dev/null || true
    fi
}

run_tests "$main_venv" "$@"

main_version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [[ -n ${PYMOD_EXTRA_PYTHONS+set} ]]; then
    PYMOD_EXTRA_PYTHONS_SET=1
else
    PYMOD_EXTRA_PYTHONS=
    for version in 3.11 3.12 3.13 3.14; do
        [[ $version == "$main_version" ]] && continue
        found=$(find_python "$version")
        if [[ -n $found ]]; then
            PYMOD_EXTRA_PYTHONS="$PYMOD_EXTRA_PYTHONS $found"
        else
            echo "pymod: no Python $version found, not tested with it" >&2
        fi
    done
fi

# No 3.14 on the host: the same wheel and tests with Debian testing's python3.14, in a
# chroot (scripts/debian-python.sh), with pyenv lent for uWSGI 2.0's interpreter.
debian_314=
if [[ -z ${PYMOD_EXTRA_PYTHONS_SET:-} && $PYMOD_EXTRA_PYTHONS != *3.14* && $main_version != 3.14 ]]; then
    # shellcheck source=scripts/debian-python.sh
    source "$root/scripts/debian-python.sh"
    debian_tree 3.14 && debian_314=1
fi

for extra in ${PYMOD_EXTRA_PYTHONS:-}; do
    if ! command -v "$extra" >/dev/null 2>&1; then
        echo "pymod: $extra not found, skipped" >&2
        continue
    fi
    venv=$(venv_for "$extra")
    say "virtualenv $venv ($("$extra" --version))"
    make_venv "$extra" "$venv"
    "$venv/bin/python" -m pip install --quiet "pytest>=8" "mypy>=1.10" "hypothesis>=6"
    run_tests "$venv" "$@"
done

if [[ -n $debian_314 ]]; then
    venv=$venvs/py3.14-debian
    say "virtualenv $venv (Debian testing's python3.14, in $debian_root)"
    in_debian "set -e
        [[ -x '$venv/bin/python' ]] || python3.14 -m venv '$venv'
        '$venv/bin/python' -m pip install --quiet 'pytest>=8' 'mypy>=1.10' 'hypothesis>=6'
        '$venv/bin/python' -m pip install --quiet --force-reinstall --no-deps '$wheel'
        echo; echo '=== pymod: pytest with '\$('$venv/bin/python' --version)' (Debian testing)'
        cd '$here/tests' && '$venv/bin/python' -m pytest -p no:cacheprovider -ra . $*" \
        "${PYENV_ROOT:-$HOME/.pyenv}" || status=1
fi

exit $status
