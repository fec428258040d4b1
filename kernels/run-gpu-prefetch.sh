#!/usr/bin/env bash
# run-gpu-prefetch.sh - the decode step's L2 prefetch (docs/cuda.md,
# "L2 prefetch") swept, then the full llmasos-bench table with the fastest
# setting, the element overhead and the Nsight Compute profile of one F16
# step, on the GPU machine:
#
#   source .gpu/enter.sh && kernels/run-gpu-prefetch.sh .gpu/BUILD OUT
#
# PF_SETS: "PREFETCH,TAIL" pairs (MiB of LLMASOS_CUDA_PREFETCH and
# LLMASOS_CUDA_PREFETCH_TAIL), each decoded at depth 128 in F16, Q8_0 and
# Q4_0 (OUT/sweep.txt); the F16 table uses the pair fastest in F16, the
# Q8_0/Q4_0 table the pair fastest in Q4_0 (OUT/sets.txt). The fusions
# are the default ones.
# SPDX-License-Identifier: LGPL-2.1-or-later
set -u
b=${1:?build directory}
out=${2:?output directory}
mkdir -p "$out"
export GST_PLUGIN_PATH_1_0=$PWD/$b/plugins
export GST_REGISTRY_1_0=/tmp/registry-prefetch.bin
bench=$b/tools/llmasos-bench
sweep=$out/sweep.txt
: >"$sweep"
for s in ${PF_SETS:-0,0 24,0 8,0 48,0 24,8 24,24 0,16}; do
  echo "== ${s%,*} ${s#*,}" >>"$sweep"
  LLMASOS_CUDA_PREFETCH=${s%,*} LLMASOS_CUDA_PREFETCH_TAIL=${s#*,} \
    timeout -k 5 100 "$bench" --arch llama3-8b --dtype f16,q8_0,q4_0 \
    --prefill 0 --decode-depth 128 --decode-tokens 64 --repeat 3 2>&1 |
    grep -v '\.\.\.$' >>"$sweep"
done
best () {                       # dtype -> "PREFETCH TAIL" of its fastest decode
  awk -v want="$1" '
    /^== / { set = $2 " " $3; i = 0; next }
    /decode at depth +[0-9]+:/ { i++; split("f16 q8_0 q4_0", d, " ");
      if (d[i] == want && $5 + 0 > top) { top = $5 + 0; pick = set } }
    END { print (pick == "" ? "24 0" : pick) }' "$sweep"
}
read -r f16_p f16_t <<<"$(best f16)"
read -r q_p q_t <<<"$(best q4_0)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$out/gpu.txt" 2>&1
echo "F16/BF16: PREFETCH=$f16_p TAIL=$f16_t; Q8_0/Q4_0: PREFETCH=$q_p TAIL=$q_t" >"$out/sets.txt"
LLMASOS_CUDA_PREFETCH=$f16_p LLMASOS_CUDA_PREFETCH_TAIL=$f16_t \
  timeout -k 5 150 "$bench" --arch llama3-8b --dtype f16,bf16 \
  --prefill 512,2048 --decode-depth 128,4096 --decode-tokens 64 --repeat 3 \
  --json "$out/bench-16.json" 2>&1 | grep -v '\.\.\.$' >"$out/bench-16.txt"
LLMASOS_CUDA_PREFETCH=$q_p LLMASOS_CUDA_PREFETCH_TAIL=$q_t \
  timeout -k 5 150 "$bench" --arch llama3-8b --dtype q8_0,q4_0 \
  --prefill 512,2048 --decode-depth 128,4096 --decode-tokens 64 --repeat 3 \
  --json "$out/bench-q.json" 2>&1 | grep -v '\.\.\.$' >"$out/bench-q.txt"
timeout -k 5 30 "$bench" --arch tiny --dtype f16 \
  --write-gguf /tmp/tiny-f16.gguf >/dev/null 2>&1
LLMASOS_CUDA_PREFETCH=$f16_p LLMASOS_CUDA_PREFETCH_TAIL=$f16_t \
  timeout -k 5 90 "$bench" --arch tiny --dtype f16 \
  --pipeline /tmp/tiny-f16.gguf --decode-tokens 128 --repeat 7 2>&1 |
  grep -v '\.\.\.$' >"$out/pipeline.txt"
if [ "${PROFILE:-1}" != 0 ]; then
  LLMASOS_CUDA_PREFETCH=$f16_p LLMASOS_CUDA_PREFETCH_TAIL=$f16_t \
    PROFILE_FUSE=att,addnorm timeout -k 5 100 \
    kernels/run-gpu-profile.sh "$b" "$out" f16 >"$out/profile.txt" 2>&1
fi
