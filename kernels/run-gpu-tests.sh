#!/usr/bin/env bash
# run-gpu-tests.sh - the GPU tests of a staged build, on the GPU machine:
#
#   source .gpu/enter.sh && kernels/run-gpu-tests.sh .gpu/BUILD OUT [TEST...]
#
# BUILD: a -Dcuda=enabled build staged by ../shared/gpu/stage.sh; the
# models are read from $LLMASOS_MODELS (default .gpu/models, where
# `cp -r ../shared/models/stories260K .gpu/models/` puts them). TESTs:
# names under BUILD/tests (default: every test-cuda-*, test-kernels-cuda,
# test-device-memory-cuda). Each test's log goes to OUT/NAME.log; a
# summary line per test is printed.
# A build that found libgstcuda-1.0 (the gst.cuda.context glue linked into
# the plugin) needs its libraries staged too (docs/cuda.md, "Running it on
# the GPU machine"):
#   EXTRA_PKGS="libjson-glib-1.0-0 libgstreamer-plugins-bad1.0-0
#   libgstreamer-gl1.0-0 libgl1 libglvnd0 libglx0 libegl1 libgbm1 libdrm2
#   libgudev-1.0-0 libwayland-client0 libwayland-cursor0 libwayland-egl1
#   libwayland-server0 libx11-6 libx11-xcb1 libxcb1 libxau6 libxdmcp6
#   libbsd0 libmd0" ../shared/gpu/stage.sh BUILD
# SPDX-License-Identifier: LGPL-2.1-or-later
set -u
b=${1:?build directory}
out=${2:?output directory}
shift 2
mkdir -p "$out"
export LLMASOS_MODELS=${LLMASOS_MODELS:-$PWD/.gpu/models}
# only this build's plugin, whatever else is staged
export GST_PLUGIN_PATH_1_0=$PWD/$b/plugins
export GST_REGISTRY_1_0=/tmp/registry-$(basename "$b").bin
export CK_DEFAULT_TIMEOUT=600
tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
  for t in "$b"/tests/test-cuda-* "$b"/tests/test-kernels-cuda \
      "$b"/tests/test-device-memory-cuda; do
    [ -x "$t" ] && [ -f "$t" ] && tests+=("$(basename "$t")")
  done
fi
fail=0
for t in "${tests[@]}"; do
  start=$(date +%s.%N)
  "$b/tests/$t" >"$out/$t.log" 2>&1
  rc=$?
  end=$(date +%s.%N)
  printf '%-26s rc=%-3s %6.1f s  %s\n' "$t" "$rc" "$(python3 -c "print($end - $start)")" \
    "$(grep -E '^[0-9]+%: Checks' "$out/$t.log" | tail -1)"
  [ $rc -ne 0 ] && fail=1 && tail -15 "$out/$t.log"
done
exit $fail
