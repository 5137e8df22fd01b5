#!/usr/bin/env bash
# The long runs reported in docs/fuzzing.md: each target for at least MIN_SECONDS
# (600) and at least MIN_EXECS (10 million) executions, whichever comes later, JOBS
# (2) at a time, over fuzz/corpus/<target> (grown) and fuzz/seeds/<target>, with the
# dictionary. Prints one line per target: execs, seconds, edges (libFuzzer's `cov:`).
#
#   bash fuzz/longrun.sh                     # every target
#   bash fuzz/longrun.sh packet stream       # some
set -uo pipefail
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1 MIN_SECONDS="${MIN_SECONDS:-600}" MIN_EXECS="${MIN_EXECS:-10000000}"
JOBS="${JOBS:-2}"
cargo fuzz build -s none || exit 1
bin_dir="$(dirname "$(ls target/*/release/header)")"
export bin_dir
mkdir -p logs

long_one() {
  local t="$1" start end execs=0 rc part=1 runs
  mkdir -p "corpus/$t" "artifacts/$t"
  start=$(date +%s)
  while :; do
    end=$(( start + MIN_SECONDS - $(date +%s) ))
    runs=$(( MIN_EXECS - execs ))
    if [ "$end" -le 0 ] && [ "$runs" -le 0 ]; then break; fi
    args=(-max_total_time=$(( end > 0 ? end : 86400 )))
    if [ "$end" -le 0 ]; then args+=(-runs="$runs"); fi
    "$bin_dir/$t" "corpus/$t" "seeds/$t" -dict=uwsgi.dict -print_final_stats=1 \
      -artifact_prefix="artifacts/$t/" "${args[@]}" >"logs/long-$t-$part.log" 2>&1
    rc=$?
    execs=$(( execs + $(awk '/^stat::number_of_executed_units/ {print $2}' "logs/long-$t-$part.log") ))
    if [ "$rc" -ne 0 ]; then
      echo "$t CRASH after $execs execs: logs/long-$t-$part.log"
      return 1
    fi
    part=$(( part + 1 ))
  done
  local cov
  cov=$(grep -oE 'cov: [0-9]+' "logs/long-$t-$(( part - 1 )).log" | tail -1 | awk '{print $2}')
  echo "$t execs=$execs seconds=$(( $(date +%s) - start )) edges=$cov corpus=$(ls "corpus/$t" | wc -l)"
}
export -f long_one

if [ "$#" -gt 0 ]; then targets="$*"; else
  # slowest first, so the two workers finish together
  targets="marshal_roundtrip vars stream marshal array packet_roundtrip packet msgpack reply header datagram"
fi
# shellcheck disable=SC2086
printf '%s\n' $targets | xargs -P "$JOBS" -I{} bash -c 'long_one "$@"' _ {}
