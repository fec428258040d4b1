#!/usr/bin/env bash
# run-gpu-short.sh - the most wanted GPU results first, each written to OUT
# as it ends, for a device call that may be cut short:
#
#   source .gpu/enter.sh && kernels/run-gpu-short.sh .gpu/BUILD OUT
#
# 1. llmasos-bench on the Llama-3-8B shape (four dtypes), 2. the elements'
# cost per token, 3. test-cuda-forward (the pipeline against the CPU),
# 4. the other GPU tests. BUILD as for run-gpu-bench.sh.
# SPDX-License-Identifier: LGPL-2.1-or-later
set -u
b=${1:?build directory}
out=${2:?output directory}
mkdir -p "$out" /tmp/gpu-logs
export GST_PLUGIN_PATH_1_0=$PWD/$b/plugins
export GST_REGISTRY_1_0=/tmp/registry-short.bin
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$out/gpu.txt" 2>&1
timeout -k 5 100 "$b/tools/llmasos-bench" --arch llama3-8b \
  --dtype f16,q4_0,bf16,q8_0 --prefill 512,2048 --decode-depth 128,4096 \
  --decode-tokens 64 --repeat 3 --json "$out/bench-8b.json" \
  >"$out/bench-8b.txt" 2>&1
"$b/tools/llmasos-bench" --arch tiny --dtype f16 --write-gguf /tmp/tiny-f16.gguf \
  >/dev/null 2>&1
timeout -k 5 40 "$b/tools/llmasos-bench" --arch tiny --dtype f16 \
  --pipeline /tmp/tiny-f16.gguf --decode-tokens 128 --repeat 7 \
  >"$out/pipeline.txt" 2>&1
timeout -k 5 90 kernels/run-gpu-tests.sh "$b" /tmp/gpu-logs test-cuda-forward \
  test-cuda-context test-cuda-matvec test-cuda-attention test-cuda-step-kernels \
  test-cuda-sample >"$out/tests.txt" 2>&1
tar czf "$out/test-logs.tgz" -C /tmp gpu-logs
