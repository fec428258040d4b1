#!/usr/bin/env bash
# run-gpu-checks.sh - what docs/cuda.md and docs/benchmarks.md ran on the GPU
# machine: the kernel tests, the bandwidth benchmark, the kernel tests under
# compute-sanitizer (memcheck, racecheck), and Nsight Compute on the decode
# kernels.
#
#   source .gpu/enter.sh && kernels/run-gpu-checks.sh .gpu/BUILD_DIR OUT_DIR [TESTS]
#
# BUILD_DIR: a build with -Dcuda=enabled, staged by ../shared/gpu/stage.sh.
# TESTS: the tests to run under the sanitizers (GST_CHECKS syntax; default
# all). Writes test.log, bench.txt, bench.json, sanitizer.log and ncu.txt
# to OUT_DIR.
# SPDX-License-Identifier: LGPL-2.1-or-later
set -u
b=${1:?build directory}
out=${2:?output directory}
tests=${3:-}
mkdir -p "$out"
cuda_bin=/usr/local/cuda/bin
cs=$(command -v compute-sanitizer || echo $cuda_bin/compute-sanitizer)
ncu=$(command -v ncu || echo $cuda_bin/ncu)

echo "== test-kernels-cuda"
"$b/tests/test-kernels-cuda" >"$out/test.log" 2>&1
echo "rc=$?"
cat "$out/test.log"

echo "== llmasos-bench-cuda"
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem \
    --format=csv 2>&1
  "$b/kernels/llmasos-bench-cuda" --json "$out/bench.json" 2>&1
} | tee "$out/bench.txt"

echo "== compute-sanitizer memcheck, racecheck ${tests:-(all tests)}"
for tool in memcheck racecheck; do
  echo "== $tool" >>"$out/sanitizer.log"
  GST_CHECKS=$tests timeout 200 "$cs" --tool $tool "$b/tests/test-kernels-cuda" \
    >>"$out/sanitizer.log" 2>&1
  echo "$tool rc=$?"
done
grep -E "^== |SUMMARY|Checks:" "$out/sanitizer.log"

echo "== ncu"
for k in matvec_F16:matvec_half matvec_Q8_0:q8_0 matvec_Q4_0:q4_0 \
    attention_decode_F16:attention_decode_split; do
  echo "=== ${k%%:*} (kernel ${k#*:}, 14336x4096 / 4096 positions)" >>"$out/ncu.txt"
  timeout 120 "$ncu" --clock-control none -k "regex:${k#*:}" --launch-skip 12 \
    --launch-count 1 --section SpeedOfLight --section MemoryWorkloadAnalysis \
    --section Occupancy --section WarpStateStats --section LaunchStats \
    "$b/kernels/llmasos-bench-cuda" --only "${k%%:*}" -r 20 >>"$out/ncu.txt" 2>&1
  echo "${k%%:*} ncu rc=$?"
done
grep -E "^===|Duration|Memory Throughput|DRAM Throughput|Achieved Occupancy|Compute \(SM\) Throughput" \
  "$out/ncu.txt"
