#!/usr/bin/env bash
# run-gpu-session.sh - one device call's worth of checks and timings of
# the decode step (2026-12-06): the GPU tests the change touches, decode
# of the Llama-3-8B shape at depth 128 for several LLMASOS_CUDA_FUSE sets,
# and prefill of 2048 tokens in passes of 512 and 2048 (not with
# PREFILL=0).
# kernels/run-gpu-final.sh, on the same machine next, picks the fastest
# sets from OUT/fuse.txt (copied to /tmp/llmasos-fuse.txt).
#
#   source .gpu/enter.sh && kernels/run-gpu-session.sh .gpu/BUILD OUT
# SPDX-License-Identifier: LGPL-2.1-or-later
set -u
b=${1:?build directory}
out=${2:?output directory}
mkdir -p "$out"
export GST_PLUGIN_PATH_1_0=$PWD/$b/plugins
bench=$b/tools/llmasos-bench
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$out/gpu.txt" 2>&1
kernels/run-gpu-tests.sh "$b" "$out/t" ${TESTS:-test-cuda-attention \
  test-kernels-cuda test-cuda-fused test-cuda-forward test-cuda-context} \
  >"$out/tests.txt" 2>&1
[ "${FORWARD_ALL:-1}" = 0 ] || LLMASOS_CUDA_FUSE=all \
  kernels/run-gpu-tests.sh "$b" "$out/t-all" test-cuda-forward \
  >>"$out/tests.txt" 2>&1
decode () {                     # fusions, dtypes
  echo "== LLMASOS_CUDA_FUSE=$1 $2"
  LLMASOS_CUDA_FUSE=$1 timeout -k 5 60 "$bench" --arch llama3-8b --dtype "$2" \
    --prefill 0 --decode-depth 128 --decode-tokens 64 --repeat 3 2>&1 |
    grep -E "decode at depth +[0-9]+:|WARN|warn|rror"
}
{
  for f in ${F16_SETS:-none att norm swiglu norm,swiglu,att all}; do decode $f f16; done
  for f in ${QUANT_SETS:-none att norm,swiglu,att all}; do decode $f q4_0,q8_0; done
  for n in ${PK_CAPS-1 2}; do
    echo "(LLMASOS_CUDA_PK_BLOCKS_PER_SM=$n)"
    LLMASOS_CUDA_PK_BLOCKS_PER_SM=$n decode none q4_0,q8_0
  done
} >"$out/fuse.txt" 2>&1
cp "$out/fuse.txt" /tmp/llmasos-fuse.txt  # for run-gpu-final.sh, same machine
[ "${PREFILL:-1}" = 0 ] && exit 0   # PREFILL=0: decode only
for pb in 512 2048; do
  echo "== LLMASOS_CUDA_PREFILL_BLOCK=$pb"
  LLMASOS_CUDA_PREFILL_BLOCK=$pb timeout -k 5 90 "$bench" --arch llama3-8b \
    --dtype f16,q4_0 --prefill 2048 --decode-depth 0 --repeat 3 2>&1 |
    grep -E "prefill +[0-9]|rror"
done >"$out/prefill.txt" 2>&1
