#!/usr/bin/env bash
# make-att-variants.sh - copies of libllmasos-cuda.so whose attention_decode.cu
# is built with other values of its compile-time constants (FAST_STAGES,
# FAST_UNROLL, FAST_BLOCKS_PER_SM, FAST_MIN_SPLIT), for
# kernels/run-gpu-att-sweep.sh to time on the GPU machine:
#
#   kernels/make-att-variants.sh BUILD OUTDIR 'NAME -DFLAG=V ...' ...
#
# BUILD: a configured -Dcuda=enabled build (ninja run in it first). Each
# variant becomes OUTDIR/NAME/libllmasos-cuda.so.xz (stripped, compressed:
# seven of them fit in a device call's carry). The link line is ninja's
# own, with the one object swapped.
# SPDX-License-Identifier: LGPL-2.1-or-later
set -eu
b=$(cd "${1:?build directory}" && pwd)
out=$(mkdir -p "${2:?output directory}" && cd "$2" && pwd)
shift 2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$b"
obj=kernels/libllmasos-cuda.so.p/attention_decode.cu.o
compile=$(python3 -c 'import json, sys
for e in json.load(open("compile_commands.json")):
    if e["file"].endswith("kernels/attention_decode.cu"): print(e["command"])')
link=$(ninja -t commands kernels/libllmasos-cuda.so | tail -n 1)
for v in "$@"; do
  set -- $v
  name=$1
  shift
  mkdir -p "$tmp/$name" "$out/$name"
  echo "== $name: $*"
  # (eval: the commands hold quoted arguments)
  eval "${compile/-o $obj/-o $tmp/$name/a.o} $*"
  l=${link/-o kernels\/libllmasos-cuda.so /-o $tmp/$name/libllmasos-cuda.so }
  eval "${l/$obj/$tmp/$name/a.o}"
  strip --strip-unneeded "$tmp/$name/libllmasos-cuda.so"
  xz -T2 -c "$tmp/$name/libllmasos-cuda.so" >"$out/$name/libllmasos-cuda.so.xz"
done
