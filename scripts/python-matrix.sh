#!/usr/bin/env bash
# Builds uwsgi-server against every CPython it can find and runs the Python host's
# end-to-end tests (server/tests/python.rs) with each build.
#
#   scripts/python-matrix.sh                 # 3.11 (required), then 3.12, 3.13, 3.14 if found
#   PYTHON_MATRIX="3.12 3.13" scripts/python-matrix.sh
#   scripts/python-matrix.sh -- --test-threads 1     # arguments after -- go to the tests
#
# Each version gets its own target directory (target/python-matrix/3.X) so the builds do
# not invalidate each other; pyo3 is pointed at the interpreter with PYO3_PYTHON, and the
# binary gets an rpath to that interpreter's libpython (server/build.rs), so every build
# runs the very CPython it was built for. Interpreters are looked for on PATH
# (python3.X), in pyenv (~/.pyenv/versions/3.X.*) and with uv. A CPython without a shared
# libpython (--enable-shared) cannot be embedded this way and is reported as skipped.
#
# A version found nowhere on the host (3.14 on Debian 12) is taken from Debian testing
# (scripts/debian-python.sh: a debootstrapped tree, entered with chroot) and the same
# cargo test runs in there. Set DEBIAN_PYTHON=0 to skip that.
#
# Needs: a Rust toolchain and the interpreters. Exit status: 0 when every found version
# passed and 3.11 was found.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
versions=${PYTHON_MATRIX:-3.11 3.12 3.13 3.14}
test_args=()
if [[ ${1:-} == -- ]]; then
    shift
    test_args=("$@")
fi

# find_python VERSION: an interpreter of that version, or nothing.
find_python() {
    local version=$1 candidate
    for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version".*/bin/python"$version"; do
        if [[ -x $candidate ]]; then
            echo "$candidate"
            return
        fi
    done
    if candidate=$(command -v "python$version" 2>/dev/null) && "$candidate" -c '' 2>/dev/null; then
        # pyenv shims answer for versions that are not selected: ask for the real path.
        "$candidate" -c 'import sys; print(sys.executable)' 2>/dev/null && return
    fi
    if command -v uv >/dev/null 2>&1; then
        uv python find --no-python-downloads "$version" 2>/dev/null || true
    fi
}

# shellcheck source=scripts/debian-python.sh
source "$here/debian-python.sh"

declare -a summary
status=0
for version in $versions; do
    python=$(find_python "$version")
    if [[ -z $python && $version != 3.11 ]] && debian_tree "$version"; then
        python=/usr/bin/python$version
        full=$(chroot "$debian_root" "$python" -c 'import sys; print(sys.version.split()[0])')
        target=$root/target/python-matrix/$version
        printf '\n=== python-matrix: CPython %s from Debian testing (%s in %s), target %s\n' \
            "$full" "$python" "$debian_root" "$target"
        if in_debian \
            "cd '$root' && EXPECT_PYTHON_VERSION=$full PYO3_PYTHON=$python CARGO_TARGET_DIR='$target' \
             cargo test -p uwsgi-server --test python -- ${test_args[*]:-}"; then
            summary+=("$version: $full (Debian testing) passed")
        else
            summary+=("$version: $full (Debian testing) FAILED")
            status=1
        fi
        continue
    fi
    if [[ -z $python ]]; then
        if [[ $version == 3.11 ]]; then
            summary+=("$version: NOT FOUND (required)")
            status=1
        else
            summary+=("$version: not found, skipped")
        fi
        continue
    fi
    shared=$("$python" -c 'import sysconfig; print(sysconfig.get_config_var("Py_ENABLE_SHARED") or 0)')
    full=$("$python" -c 'import sys; print(sys.version.split()[0])')
    if [[ $shared != 1 ]]; then
        summary+=("$version: $python ($full) has no shared libpython, skipped")
        [[ $version == 3.11 ]] && status=1
        continue
    fi
    libdir=$("$python" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')
    target=$root/target/python-matrix/$version
    printf '\n=== python-matrix: CPython %s (%s), target %s\n' "$full" "$python" "$target"
    if (cd "$root" &&
        EXPECT_PYTHON_VERSION=$full PYO3_PYTHON=$python CARGO_TARGET_DIR=$target LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
            cargo test -p uwsgi-server --test python -- "${test_args[@]}"); then
        # embeds_the_python_it_was_built_for checked the version the server ran.
        summary+=("$version: $full passed")
    else
        summary+=("$version: $full FAILED")
        status=1
    fi
done

printf '\n=== python-matrix summary\n'
printf '%s\n' "${summary[@]}"
exit $status
