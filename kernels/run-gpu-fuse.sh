#!/usr/bin/env bash
# run-gpu-fuse.sh - which fused decode kernels pay (LLMASOS_CUDA_FUSE), on
# the GPU machine:
#
#   source .gpu/enter.sh && kernels/run-gpu-fuse.sh .gpu/BUILD OUT
#
# 1. test-cuda-fused, and test-cuda-forward with every fusion on and with
#    none (OUT/tests.txt, logs in OUT/test-logs.tgz); 2. decode at depth
#    128 of the Llama-3-8B shape for each set of fusions, F16 and
#    Q4_0/Q8_0 (F16_SETS, QUANT_SETS; OUT/fuse.txt); 3. the full
#    llmasos-bench table (four dtypes, prefill 512/2048, decode 128/4096)
#    for each of FULL_SETS (default "none rope,swiglu"; OUT/bench-none.*,
#    OUT/bench-set.*). BUILD as for run-gpu-bench.sh.
# SPDX-License-Identifier: LGPL-2.1-or-later
set -u
b=${1:?build directory}
out=${2:?output directory}
mkdir -p "$out" /tmp/gpu-logs
export GST_PLUGIN_PATH_1_0=$PWD/$b/plugins
export GST_REGISTRY_1_0=/tmp/registry-fuse.bin
bench=$b/tools/llmasos-bench
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$out/gpu.txt" 2>&1
{
  kernels/run-gpu-tests.sh "$b" /tmp/gpu-logs test-cuda-fused
  for f in all none rope,swiglu; do
    echo "LLMASOS_CUDA_FUSE=$f"
    LLMASOS_CUDA_FUSE=$f kernels/run-gpu-tests.sh "$b" /tmp/gpu-logs/$f test-cuda-forward
  done
} >"$out/tests.txt" 2>&1
tar czf "$out/test-logs.tgz" -C /tmp gpu-logs
decode () {                     # fusions, dtypes
  echo "== LLMASOS_CUDA_FUSE=$1"
  LLMASOS_CUDA_FUSE=$1 timeout -k 5 60 "$bench" --arch llama3-8b --dtype "$2" \
    --prefill 0 --decode-depth 128 --decode-tokens 64 --repeat 3 2>&1 |
    grep -E "decode at +[0-9]|weights:|WARN|warn|graphs"
}
{
  for f in ${F16_SETS:-none rope swiglu rope,swiglu norm}; do decode $f f16; done
  for f in ${QUANT_SETS:-none rope qx swiglu rope,qx}; do decode $f q4_0,q8_0; done
} >"$out/fuse.txt" 2>&1
for f in ${FULL_SETS:-none rope,swiglu}; do
  n=$([ $f = none ] && echo none || echo set)
  LLMASOS_CUDA_FUSE=$f timeout -k 5 150 "$bench" --arch llama3-8b \
    --dtype f16,q4_0,bf16,q8_0 --prefill 512,2048 --decode-depth 128,4096 \
    --decode-tokens 64 --repeat 3 --json "$out/bench-$n.json" 2>&1 |
    grep -v '\.\.\.$' >"$out/bench-$n.txt"
done
