#!/usr/bin/env bash
# run-gpu-final.sh - the full llmasos-bench table with the fastest
# LLMASOS_CUDA_FUSE sets, the element overhead, and the Nsight Compute
# profile of one decode step, on the GPU machine:
#
#   source .gpu/enter.sh && kernels/run-gpu-final.sh .gpu/BUILD OUT
#
# The sets: F16_FUSE and QUANT_FUSE, or else the fastest F16 and Q4_0
# decode of /tmp/llmasos-fuse.txt (run-gpu-session.sh on this machine
# just before), or none.
# SPDX-License-Identifier: LGPL-2.1-or-later
set -u
b=${1:?build directory}
out=${2:?output directory}
mkdir -p "$out"
export GST_PLUGIN_PATH_1_0=$PWD/$b/plugins
export GST_REGISTRY_1_0=/tmp/registry-final.bin
bench=$b/tools/llmasos-bench
best () {                       # dtype -> the set of its fastest decode
  [ -s /tmp/llmasos-fuse.txt ] || { echo none; return; }
  awk -v want="$1" '
    /^\(LLMASOS_/ { skip = 1 }   # the grid-cap runs; not a scanner warning
    /^== LLMASOS_CUDA_FUSE=/ { split($2, a, "="); set = skip ? "" : a[2]; split($3, d, ","); i = 0; next }
    /decode at depth +[0-9]+:/ { i++; if (set != "" && d[i] == want && $5 + 0 > top) { top = $5 + 0; pick = set } }
    END { print (pick == "" ? "none" : pick) }' /tmp/llmasos-fuse.txt
}
f16=${F16_FUSE:-$(best f16)}
quant=${QUANT_FUSE:-$(best q4_0)}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$out/gpu.txt" 2>&1
echo "F16/BF16: LLMASOS_CUDA_FUSE=$f16; Q8_0/Q4_0: LLMASOS_CUDA_FUSE=$quant" >"$out/sets.txt"
LLMASOS_CUDA_FUSE=$f16 timeout -k 5 150 "$bench" --arch llama3-8b \
  --dtype f16,bf16 --prefill 512,2048 --decode-depth 128,4096 \
  --decode-tokens 64 --repeat 3 --json "$out/bench-16.json" 2>&1 |
  grep -v '\.\.\.$' >"$out/bench-16.txt"
LLMASOS_CUDA_FUSE=$quant timeout -k 5 150 "$bench" --arch llama3-8b \
  --dtype q8_0,q4_0 --prefill 512,2048 --decode-depth 128,4096 \
  --decode-tokens 64 --repeat 3 --json "$out/bench-q.json" 2>&1 |
  grep -v '\.\.\.$' >"$out/bench-q.txt"
if [ "${PIPELINE:-1}" != 0 ]; then
  timeout -k 5 30 "$bench" --arch tiny --dtype f16 \
    --write-gguf /tmp/tiny-f16.gguf >/dev/null 2>&1
  LLMASOS_CUDA_FUSE=$f16 timeout -k 5 90 "$bench" --arch tiny --dtype f16 \
    --pipeline /tmp/tiny-f16.gguf --decode-tokens 128 --repeat 7 2>&1 |
    grep -v '\.\.\.$' >"$out/pipeline.txt"
fi
# the profiles: PROFILE (default "f16 q4_0 f16-none"): f16 and q4_0 with
# their sets, f16-none unfused
for p in ${PROFILE:-f16 q4_0 f16-none}; do
  case $p in
    f16) PROFILE_FUSE="$f16" timeout -k 5 100 kernels/run-gpu-profile.sh "$b" "$out" f16 ;;
    q4_0) PROFILE_FUSE="$quant" timeout -k 5 100 kernels/run-gpu-profile.sh "$b" "$out" q4_0 ;;
    f16-none) [ "$f16" = none ] || PROFILE_FUSE=none timeout -k 5 100 kernels/run-gpu-profile.sh "$b" "$out" f16 ;;
  esac
done >"$out/profile.txt" 2>&1
