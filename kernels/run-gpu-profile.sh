#!/usr/bin/env bash
# run-gpu-profile.sh - the kernels of one decode step of the Llama-3-8B
# shape and how long each takes, with Nsight Compute, on the GPU machine:
#
#   source .gpu/enter.sh && kernels/run-gpu-profile.sh .gpu/BUILD OUT [DTYPE...]
#
# For each DTYPE (default f16 q4_0) and each LLMASOS_CUDA_FUSE set of
# PROFILE_FUSE (default "none"): llmasos-bench decodes at depth 128 and,
# with LLMASOS_BENCH_PROFILE set, runs one more step inside a profiler
# range; ncu (--profile-from-start off, clocks and caches left alone)
# records gpu__time_duration of every kernel of that step into
# OUT/ncu-DTYPE-FUSE.csv. ncu runs the kernels one at a time, so the sum
# of the durations against the step's time in the same run is what the
# boundaries between kernels cost.
# SPDX-License-Identifier: LGPL-2.1-or-later
set -u
b=${1:?build directory}
out=${2:?output directory}
shift 2
mkdir -p "$out"
for dt in ${@:-f16 q4_0}; do
  for f in ${PROFILE_FUSE:-none}; do
    LLMASOS_CUDA_FUSE=$f LLMASOS_BENCH_PROFILE=1 timeout -k 5 240 \
      ncu --profile-from-start off --clock-control none --cache-control none \
      --metrics gpu__time_duration.sum --csv --print-units base \
      --log-file "$out/ncu-$dt-$f.csv" \
      "$b/tools/llmasos-bench" --arch llama3-8b --dtype "$dt" --prefill 0 \
      --decode-depth 128 --decode-tokens 16 --repeat 1 \
      >"$out/ncu-$dt-$f.txt" 2>&1
    echo "$dt $f: rc $? $(grep -c gpu__time_duration "$out/ncu-$dt-$f.csv" 2>/dev/null) kernels"
  done
done
# Per kernel name: launches, total and mean µs, share of the step.
for f in "$out"/ncu-*.csv; do
  [ -s "$f" ] || continue
  python3 - "$f" >"${f%.csv}.summary.txt" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
if not rows:
    sys.exit(0)
head = rows[0]
ki, vi = head.index("Kernel Name"), head.index("Metric Value")
tot = collections.defaultdict(float)
cnt = collections.Counter()
for r in rows[1:]:
    try:
        v = float(r[vi].replace(",", ""))
    except ValueError:
        continue
    tot[r[ki]] += v / 1e3
    cnt[r[ki]] += 1
s = sum(tot.values())
print("%d kernels, %.1f us in all (one at a time)" % (sum(cnt.values()), s))
for k in sorted(tot, key=tot.get, reverse=True):
    print("%8.1f us %5.1f%% %4d x %7.2f us  %s" % (tot[k], 100 * tot[k] / s,
          cnt[k], tot[k] / cnt[k], k[:150]))
PY
done
