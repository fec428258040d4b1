#!/usr/bin/env bash
# run-gpu-att-sweep.sh - times the variants of the fast decode attention
# that kernels/make-att-variants.sh built, on the GPU machine:
#
#   source .gpu/enter.sh && kernels/run-gpu-att-sweep.sh .gpu/BUILD VARDIR OUT
#
# For the staged build's own library ("base") and each VARDIR/NAME: the
# attention microbenchmark (llmasos-bench-cuda --only attention_decode_at)
# into OUT/att-NAME.txt, and decode of the Llama-3-8B shape at depths 128
# and 4096 (DTYPES, default q4_0; KV, default q8_0) into OUT/bench-NAME.txt.
# The variant library is put first on LD_LIBRARY_PATH, ahead of the
# binaries' RUNPATH.
# SPDX-License-Identifier: LGPL-2.1-or-later
set -u
b=${1:?build directory}
vars=${2:?variant directory}
out=${3:?output directory}
mkdir -p "$out"
one () {                        # name, library directory ('' for base)
  local lp=${2:+$2:}$LD_LIBRARY_PATH
  LD_LIBRARY_PATH=$lp "$b/kernels/llmasos-bench-cuda" \
    --only attention_decode_at -r 200 >"$out/att-$1.txt" 2>&1
  LD_LIBRARY_PATH=$lp timeout -k 5 120 "$b/tools/llmasos-bench" \
    --arch llama3-8b --prefill 0 --decode-depth 128,4096 \
    --decode-tokens 128 --repeat ${REPEAT:-3} --dtype "${DTYPES:-q4_0}" \
    --kv-dtype "${KV:-q8_0}" >"$out/bench-$1.txt" 2>&1
  echo "== $1"
  grep -E "_graph" "$out/att-$1.txt"
  grep -E "decode at depth +[0-9]+:" "$out/bench-$1.txt"
}
one base ''
for d in "$vars"/*/; do
  n=$(basename "$d")
  mkdir -p "/tmp/att-var/$n"
  xz -dc "$d/libllmasos-cuda.so.xz" >"/tmp/att-var/$n/libllmasos-cuda.so"
  one "$n" "/tmp/att-var/$n"
done
