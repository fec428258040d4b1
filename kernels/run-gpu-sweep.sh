#!/usr/bin/env bash
# run-gpu-sweep.sh - decode of the Llama-3-8B shape at depth 128 under
# several settings of the decode step's environment knobs (docs/cuda.md),
# one llmasos-bench run a setting, on the GPU machine:
#
#   source .gpu/enter.sh &&
#     SETS="A;B;..." kernels/run-gpu-sweep.sh .gpu/BUILD OUT
#
# SETS: settings separated by ';', each a list of VAR=VALUE words put in
# the bench's environment ("-" alone: the defaults). DTYPES: the dtypes
# (default f16,q8_0,q4_0); DEPTHS: the depths (default 128). Writes
# OUT/sweep.txt: a "== SET" line, then the bench's decode lines.
# SPDX-License-Identifier: LGPL-2.1-or-later
set -u
b=${1:?build directory}
out=${2:?output directory}
mkdir -p "$out"
export GST_PLUGIN_PATH_1_0=$PWD/$b/plugins
export GST_REGISTRY_1_0=/tmp/registry-sweep.bin
bench=$b/tools/llmasos-bench
IFS=';' read -r -a sets <<<"${SETS:--}"
for set in "${sets[@]}"; do
  set=$(echo "$set" | xargs)   # trim
  echo "== $set"
  vars=()
  [ "$set" = "-" ] || read -r -a vars <<<"$set"
  env "${vars[@]}" timeout -k 5 100 "$bench" --arch llama3-8b \
    --dtype "${DTYPES:-f16,q8_0,q4_0}" --prefill 0 \
    --decode-depth "${DEPTHS:-128}" --decode-tokens 64 --repeat 3 2>&1 |
    grep -E "decode at depth +[0-9]+:|copy|WARN|warn|rror"
done >>"$out/sweep.txt" 2>&1
