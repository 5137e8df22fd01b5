#!/usr/bin/env bash
# CI fuzz stage: builds every cargo-fuzz target (so the fuzz crate cannot rot) and runs
# each for a short fixed time over its committed seed corpus with the dictionary.
# A property violation or crash fails the stage; the input is left in
# fuzz/artifacts/<target>/ and the log's tail is printed.
#
#   bash scripts/fuzz-smoke.sh                 # every target, 12 s each, 2 at a time
#   FUZZ_SECONDS=60 bash scripts/fuzz-smoke.sh packet stream
#
# Budget on 2 cores: build about 1 min (first time), 11 targets x 12 s / 2 jobs = 66 s.
# Installs cargo-fuzz (stable toolchain, RUSTC_BOOTSTRAP=1) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

SECONDS_PER_TARGET="${FUZZ_SECONDS:-12}"
JOBS="${FUZZ_JOBS:-2}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# No AddressSanitizer: the workspace denies unsafe code, so ASan would find nothing the
# bounds checks do not, at half the speed. Debug assertions and overflow checks stay on
# (cargo-fuzz's default).
echo "==> cargo fuzz build"
cargo fuzz build -s none

if [ "$#" -gt 0 ]; then
  targets="$*"
else
  targets="$(cargo fuzz list)"
fi
bin_dir="$(dirname "$(ls target/*/release/header)")"
mkdir -p logs

run_one() {
  local t="$1"
  mkdir -p "corpus/$t" "artifacts/$t"
  if "$bin_dir/$t" "corpus/$t" "seeds/$t" -dict=uwsgi.dict \
      -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 \
      -artifact_prefix="artifacts/$t/" >"logs/$t.log" 2>&1; then
    printf '%-18s ok   %s\n' "$t" "$(grep -E '^stat::number_of_executed_units' "logs/$t.log" | awk '{print $2 " execs"}')"
  else
    printf '%-18s FAIL (log: fuzz/logs/%s.log)\n' "$t" "$t"
    tail -n 40 "logs/$t.log"
    return 1
  fi
}
export -f run_one
export bin_dir SECONDS_PER_TARGET

echo "==> fuzzing each target ${SECONDS_PER_TARGET}s, ${JOBS} at a time"
# shellcheck disable=SC2086
printf '%s\n' $targets | xargs -P "$JOBS" -I{} bash -c 'run_one "$@"' _ {}
echo "==> fuzz smoke passed"
