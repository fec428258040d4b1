#!/usr/bin/env bash
# run-gpu-variants.sh - the decode-step comparisons of docs/benchmarks.md
# ("The fused decode kernels, H200"), as run at commit 0be57a9, when the
# fusions were on by default and LLMASOS_CUDA_QX=shared (now
# LLMASOS_CUDA_FUSE=norm,swiglu,rope) rounded x in every matvec block; on
# later commits FUSE=0 is the default, so kernels/run-gpu-fuse.sh is the
# script to use. On the GPU machine, after the GPU tests they depend on:
#
#   source .gpu/enter.sh && kernels/run-gpu-variants.sh .gpu/BUILD OUT
#
# 1. the GPU tests of the fused kernels and of the forward pass (OUT/tests.txt,
#    logs in OUT/test-logs.tgz); 2. llmasos-bench on the Llama-3-8B shape,
#    four dtypes, defaults (OUT/bench-8b.txt/.json); 3. decode at depth 128
#    with the fused kernels off (LLMASOS_CUDA_FUSE=0) and, for Q8_0/Q4_0,
#    with x rounded in every matvec block (LLMASOS_CUDA_QX=shared), and
#    F16 without CUDA graphs (OUT/variants.txt); 4. F16/Q4_0 prefill of 2048
#    tokens in passes of 1024 and 2048 (LLMASOS_CUDA_PREFILL_BLOCK) against
#    the default 512 (OUT/prefill-blocks.txt). BUILD as for run-gpu-bench.sh.
# SPDX-License-Identifier: LGPL-2.1-or-later
set -u
b=${1:?build directory}
out=${2:?output directory}
mkdir -p "$out" /tmp/gpu-logs
export GST_PLUGIN_PATH_1_0=$PWD/$b/plugins
export GST_REGISTRY_1_0=/tmp/registry-variants.bin
bench=$b/tools/llmasos-bench
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$out/gpu.txt" 2>&1
timeout -k 5 150 kernels/run-gpu-tests.sh "$b" /tmp/gpu-logs ${TESTS:-test-cuda-fused \
  test-cuda-forward test-cuda-context test-cuda-step-kernels test-cuda-matvec} \
  >"$out/tests.txt" 2>&1
tar czf "$out/test-logs.tgz" -C /tmp gpu-logs
timeout -k 5 150 "$bench" --arch llama3-8b --dtype f16,q4_0,bf16,q8_0 \
  --prefill 512,2048 --decode-depth 128,4096 --decode-tokens 64 --repeat 3 \
  --json "$out/bench-8b.json" 2>&1 | grep -v '\.\.\.$' >"$out/bench-8b.txt"
decode () {                     # label, VAR=value, dtypes
  echo "== $1 ($2)"
  env "$2" "$bench" --arch llama3-8b --dtype "$3" --prefill 0 \
    --decode-depth 128 --decode-tokens 64 --repeat 3 2>&1 |
    grep -E "decode at|weights:"
}
{
  decode "fused kernels off" LLMASOS_CUDA_FUSE=0 f16,q4_0,q8_0
  decode "x rounded in every matvec block" LLMASOS_CUDA_QX=shared q4_0,q8_0
  decode "no CUDA graphs" LLMASOS_CUDA_GRAPHS=0 f16
} >"$out/variants.txt" 2>&1
for blk in 1024 2048; do
  echo "== prefill passes of $blk tokens"
  LLMASOS_CUDA_PREFILL_BLOCK=$blk "$bench" --arch llama3-8b --dtype f16,q4_0 \
    --prefill 512,2048 --decode-depth 0 --repeat 3 2>&1 | grep -E "prefill +[0-9]+ tokens:|weights:"
done >"$out/prefill-blocks.txt" 2>&1
