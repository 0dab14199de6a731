#!/usr/bin/env bash
# Runs every libFuzzer target of test/fuzz for a while and prints, per
# target, the executions and what it found (crash, leak, timeout and OOM
# inputs are kept in the run folder, with each target's log).
#   bench/fuzz.sh [SECONDS (600)] [TARGET...]     e.g. bench/fuzz.sh 60 http_fuzz
# BUILD (build/ of this repository): the build folder; configured when
#   needed, then the fuzzers are built in it (-j"$JOBS", JOBS=1).
# OUT (BUILD/fuzz-runs/<time>): where logs and found inputs go.
# KEEP_GOING=1: fork mode (-fork=1 -ignore_crashes=1 ...), so a run goes on
#   past its first crash and collects them all; otherwise libFuzzer stops at
#   the first one, as ctest's runs do.
# CPN_FUZZ_STRICT=1: broken promises (a round trip that changes a document,
#   a negative quantity) count as crashes too (see test/fuzz/fuzz_support.hpp).
# Each target's corpus grows in BUILD/test/fuzz/corpus/<target>, from the
# seeds in test/fuzz/corpus/<target>. Exits 1 when anything was found.
set -euo pipefail

SECONDS_EACH=${1:-600}
shift || true
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || (cd "$here/.." && pwd))
BUILD=${BUILD:-$root/build}
JOBS=${JOBS:-1}
ALL=(expr_fuzz document_json_fuzz document_yaml_fuzz quantity_fuzz labels_fuzz blueprint_fuzz template_fuzz
     topology_fuzz http_fuzz)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ALL[@]}")

[ -f "$BUILD/CMakeCache.txt" ] || cmake -S "$root" -B "$BUILD"
cmake --build "$BUILD" -j"$JOBS" --target "${targets[@]}"

fuzz_dir=$BUILD/test/fuzz
OUT=${OUT:-$BUILD/fuzz-runs/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
found_any=0
rows=()
for t in "${targets[@]}"; do
  bin=$fuzz_dir/$t
  [ -x "$bin" ] || { echo "$t: not built ($bin)" >&2; exit 2; }
  dir=$OUT/$t
  mkdir -p "$dir" "$fuzz_dir/corpus/$t"
  args=(-max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$dir/")
  if [ "${KEEP_GOING:-0}" = 1 ]; then
    args+=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  fi
  echo "== $t: ${SECONDS_EACH}s, log $dir/log" >&2
  rc=0
  (cd "$dir" && "$bin" "${args[@]}" "$fuzz_dir/corpus/$t" "$root/test/fuzz/corpus/$t" >"$dir/log" 2>&1) || rc=$?
  log=$dir/log
  # Executions: the final stats, else "#N DONE", else the last status line
  # (fork mode prints "#N: cov: ...").
  execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -1)
  [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\)[[:space:]]*DONE.*/\1/p' "$log" | tail -1)
  [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\):\{0,1\}[[:space:]].*cov:.*/\1/p' "$log" | tail -1)
  [ -n "$execs" ] || execs=0
  speed=$(sed -n 's/^stat::average_exec_per_sec: *\([0-9]*\).*/\1/p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
  count() { find "$dir" -maxdepth 1 -name "$1-*" | wc -l; }
  crashes=$(count crash) leaks=$(count leak) timeouts=$(count timeout) ooms=$(count oom)
  # A death without an artifact (the fuzzer itself failed) counts as a crash.
  if [ "$rc" -ne 0 ] && [ $((crashes + leaks + timeouts + ooms)) -eq 0 ]; then crashes="?rc=$rc"; fi
  [ "$crashes$leaks$timeouts$ooms" = "0000" ] || found_any=1
  rows+=("$(printf '%-20s %12s %8s %6s %8s %6s %9s %5s' "$t" "$execs" "${speed:--}" "${cov:--}" "$crashes" "$leaks" \
            "$timeouts" "$ooms")")
done

printf '%-20s %12s %8s %6s %8s %6s %9s %5s\n' target executions exec/s cov crashes leaks timeouts ooms
printf '%s\n' "${rows[@]}"
echo "logs and inputs: $OUT"
if [ "$found_any" = 1 ]; then
  for f in "$OUT"/*/crash-* "$OUT"/*/leak-* "$OUT"/*/timeout-* "$OUT"/*/oom-*; do
    [ -e "$f" ] && echo "  $f"
  done
  exit 1
fi
