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
