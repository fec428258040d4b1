#!/usr/bin/env bash
# run-gpu-bench.sh - the GPU figures of docs/benchmarks.md in one go, on the
# GPU machine:
#
#   source .gpu/enter.sh && kernels/run-gpu-bench.sh .gpu/BUILD OUT
#
# BUILD: a release build (meson setup BUILD --buildtype=release
# -Dcuda=enabled) staged by ../shared/gpu/stage.sh. Writes to OUT:
# bench-8b.json/.txt (llmasos-bench, Llama-3-8B shape, four dtypes),
# bench-8b-nograph.txt (F16 decode with CUDA graphs off), pipeline.txt (the
# elements' cost per token), kernels.json/.txt (llmasos-bench-cuda).
# SPDX-License-Identifier: LGPL-2.1-or-later
set -u
b=${1:?build directory}
out=${2:?output directory}
mkdir -p "$out"
export GST_PLUGIN_PATH_1_0=$PWD/$b/plugins
export GST_REGISTRY_1_0=/tmp/registry-bench.bin
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem \
  --format=csv | tee "$out/gpu.txt"

echo "== llmasos-bench, Llama-3-8B shape"
"$b/tools/llmasos-bench" --arch llama3-8b --dtype f16,bf16,q8_0,q4_0 \
  --prefill 512,2048 --decode-depth 128,4096 --decode-tokens 64 --repeat 3 \
  --json "$out/bench-8b.json" 2>&1 | grep -v '^  [a-z].*\.\.\.$' | tee "$out/bench-8b.txt"

echo "== the same F16 decode without CUDA graphs"
LLMASOS_CUDA_GRAPHS=0 "$b/tools/llmasos-bench" --arch llama3-8b --dtype f16 \
  --prefill 0 --decode-depth 128 --decode-tokens 64 --repeat 3 2>&1 |
  grep -E "decode at|copy" | tee "$out/bench-8b-nograph.txt"

echo "== the elements' cost per token (tiny shape, F16 GGUF)"
"$b/tools/llmasos-bench" --arch tiny --dtype f16 --write-gguf /tmp/tiny-f16.gguf \
  >/dev/null 2>&1
"$b/tools/llmasos-bench" --arch tiny --dtype f16 --pipeline /tmp/tiny-f16.gguf \
  --decode-tokens 128 --repeat 7 2>&1 | tee "$out/pipeline.txt"

# KERNELS=0 leaves out the kernel benchmark (a few minutes)
[ "${KERNELS:-1}" = 0 ] && exit 0
echo "== llmasos-bench-cuda (kernels)"
"$b/kernels/llmasos-bench-cuda" --json "$out/kernels.json" >"$out/kernels.txt" 2>&1
tail -40 "$out/kernels.txt"
