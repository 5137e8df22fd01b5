#!/usr/bin/env bash
# Sets up everything the test suite needs and runs all of it: formatting, lints, the Rust
# tests of every crate (golden vectors, properties, interop with real uWSGI 2.0, fuzz
# regressions), a short run of every fuzz target, and the Python module's tests. Safe to
# re-run; installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain components"
if command -v rustup >/dev/null 2>&1; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi

step "real peers (uWSGI 2.0 from the pyuwsgi wheel, in its own venv)"
bash scripts/setup-peers.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --features uwsgi-protocol/client -- -D warnings

step "cargo test (all crates)"
cargo test --workspace --features uwsgi-protocol/client

step "fuzz smoke (builds every cargo-fuzz target, runs each briefly; installs cargo-fuzz)"
bash scripts/fuzz-smoke.sh

if [ -f pymod/test.sh ]; then
  step "Python module (pip install ./pymod, pytest, stub check)"
  bash pymod/test.sh
fi

step "Python host on every CPython found (scripts/python-matrix.sh)"
bash scripts/python-matrix.sh

step "all tests passed"
