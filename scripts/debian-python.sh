#!/usr/bin/env bash
# Sourced by scripts/python-matrix.sh and pymod/test.sh: a CPython that neither the host
# nor pyenv has (3.14 on Debian 12) taken from Debian testing, which packages it.
#
# As root, `debian_tree 3.14` makes once, with debootstrap, a minimal Debian testing tree
# at $DEBIAN_PYTHON_ROOT (default /var/tmp/uwsgi-rs-debian-testing; about 650 MB, 30 s)
# holding python3.14, its venv module, libpython3.14 and a C linker. `in_debian` runs a
# command in it with chroot, lending it this repository and the host's Rust toolchain at
# the same paths, so cargo builds there against that libpython. Set DEBIAN_PYTHON=0 to
# never do this.

debian_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
debian_root=${DEBIAN_PYTHON_ROOT:-/var/tmp/uwsgi-rs-debian-testing}

# debian_tree VERSION: makes (once) a Debian testing tree with python3.X and what linking
# against it needs; fails when that cannot be done here (not root, no network, no package).
debian_tree() {
    local version=$1
    local packages="python$version,python$version-venv,libpython$version-dev,procps,gcc,libc6-dev,ca-certificates"
    [[ $(cat "$debian_root/.packages" 2>/dev/null) == "$packages" ]] && return 0
    [[ ${DEBIAN_PYTHON:-1} != 0 && $(id -u) == 0 ]] || return 1
    if ! command -v debootstrap >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null || return 1
    fi
    rm -rf "$debian_root.partial"
    printf '\n=== debootstrap Debian testing with python%s into %s\n' "$version" "$debian_root"
    debootstrap --variant=minbase \
        --include="$packages" \
        forky "$debian_root.partial" http://deb.debian.org/debian /usr/share/debootstrap/scripts/sid \
        >"$debian_root.log" 2>&1 || { tail -5 "$debian_root.log"; return 1; }
    echo "$packages" >"$debian_root.partial/.packages"
    rm -rf "$debian_root" && mv "$debian_root.partial" "$debian_root"
}

# in_debian COMMAND [DIR...]: runs COMMAND (a bash string) in the Debian tree, with /proc,
# /dev, /tmp, this repository, the Rust toolchain and each DIR mounted at their own
# paths; the mounts live in a private mount namespace and vanish with it.
in_debian() {
    local cargo_home=${CARGO_HOME:-$HOME/.cargo} rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
    export CARGO_HOME=$cargo_home RUSTUP_HOME=$rustup_home
    # The host's name servers, and its CA bundle and pip settings (a package proxy may
    # sign with a local CA that only the host's bundle carries).
    cp /etc/resolv.conf "$debian_root/etc/resolv.conf"
    if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
        cp /etc/ssl/certs/ca-certificates.crt "$debian_root/etc/ssl/certs/ca-certificates.crt"
    fi
    if [[ -f /etc/pip.conf ]]; then
        cp /etc/pip.conf "$debian_root/etc/pip.conf"
    fi
    unshare --mount --propagation private bash -c '
        set -e
        tree=$1 command=$2; shift 2
        for dir in /proc /sys /dev /tmp "$@"; do
            [[ -d $dir ]] || continue
            mkdir -p "$tree$dir"
            mount --rbind "$dir" "$tree$dir"
        done
        exec chroot "$tree" env PATH="$CARGO_HOME/bin:/usr/bin:/bin" bash -c "$command"' \
        _ "$debian_root" "$1" "$debian_repo" "$cargo_home" "$rustup_home" "${@:2}" \
        ${PIP_FIND_LINKS:+"$PIP_FIND_LINKS"}
}
