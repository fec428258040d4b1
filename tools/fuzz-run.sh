#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (clang, AddressSanitizer +
# UndefinedBehaviorSanitizer, in build-fuzz) and runs each for SECONDS
# (default 60) over a copy of its seed corpus, JOBS targets at a time
# (default: one per CPU). Prints per target its executions, executions per
# second, coverage (libFuzzer's "cov:", edges reached) and crashes, and
# exits non-zero if any target found a crash, a leak, an out-of-memory or a
# timeout. What a target found is kept in build-fuzz/fuzz-out/TARGET/
# (crash-*, leak-*, oom-*, timeout-*, and the log); replay one with
#   build-fuzz/tests/fuzz/fuzz-TARGET FILE
# and, once fixed, keep it in tests/fuzz/regressions/TARGET/.
#
#   tools/fuzz-run.sh [SECONDS [JOBS [TARGET...]]]
#
# TARGETs (gguf, caps, ...) limit the run to those.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
jobs=${2:-$(nproc)}
if ! [ "$secs" -ge 1 ] 2>/dev/null || ! [ "$jobs" -ge 1 ] 2>/dev/null; then
  echo "usage: $0 [SECONDS [JOBS [TARGET...]]] (SECONDS, JOBS at least 1)" >&2
  exit 2
fi
shift $(($# < 2 ? $# : 2))
build=build-fuzz
out=$build/fuzz-out
export LLMASOS_MODELS=${LLMASOS_MODELS:-$(pwd)/../shared/models}

# CPU only: the fuzz targets do not reach the CUDA backend.
args=(-Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false
  -Dcuda=disabled)
if [ -d "$build" ]; then
  meson setup --reconfigure "$build" "${args[@]}" >/dev/null
else
  CC=clang meson setup "$build" "${args[@]}" >/dev/null
fi
ninja -C "$build" >/dev/null

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz-*.c; do
    t=${f#tests/fuzz/fuzz-}
    targets+=("${t%.c}")
  done
fi
for t in "${targets[@]}"; do
  if [ ! -x "$build/tests/fuzz/fuzz-$t" ]; then
    echo "fuzz-run: no target '$t'" >&2
    exit 2
  fi
done

# Leaks are checked after every input; halt on the first UBSan report.
# (Fast unwinding on malloc: the slow one costs ten times the executions.)
asan=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1
export LSAN_OPTIONS=suppressions=$(pwd)/tests/fuzz/lsan.supp

run_one () { # target
  local t=$1 d=$out/$1 rc=0
  rm -rf "$d"
  mkdir -p "$d/corpus"
  cp tests/fuzz/corpus/"$t"/* "$d/corpus/"
  # fuzz-caps: GStreamer's caps parser leaks on strings it refuses, and
  # GLib's quark table on purpose as it grows; with the system libraries'
  # stacks cut short, suppressions cannot tell those from ours
  local opts=$asan
  [ "$t" = caps ] && opts=detect_leaks=0:abort_on_error=1
  ASAN_OPTIONS=$opts \
  "$build/tests/fuzz/fuzz-$t" "$d/corpus" -max_total_time="$secs" \
    -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$d/" >"$d/log" 2>&1 || rc=$?
  echo "$rc" >"$d/rc"
}

echo "== fuzzing ${#targets[@]} targets, ${secs} s each, $jobs at a time"
running=0
for t in "${targets[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  run_one "$t" &
  running=$((running + 1))
done
wait

failed=0
printf '%-12s %12s %8s %8s %8s  %s\n' target executions exec/s cov crashes \
  result
for t in "${targets[@]}"; do
  d=$out/$t
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$d/log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$d/log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\) .*/\1/p' "$d/log" | tail -1)
  found=$(find "$d" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' \
    -o -name 'oom-*' -o -name 'timeout-*' \) | wc -l)
  rc=$(cat "$d/rc")
  result=ok
  if [ "$rc" -ne 0 ] || [ "$found" -ne 0 ]; then
    result="FAILED (exit $rc; see $d/log)"
    failed=1
  fi
  printf '%-12s %12s %8s %8s %8s  %s\n' "$t" "${execs:-?}" "${rate:-?}" \
    "${cov:-?}" "$found" "$result"
done
if [ "$failed" -ne 0 ]; then
  for t in "${targets[@]}"; do
    if [ "$(cat "$out/$t/rc")" -ne 0 ]; then
      echo "== $t: the end of $out/$t/log"
      tail -40 "$out/$t/log"
    fi
  done
  exit 1
fi
echo "== fuzzing found nothing"
