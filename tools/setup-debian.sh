#!/usr/bin/env bash
# Installs what LLMasOS needs to build and test on Debian 12 (bookworm).
# Uses sudo when not run as root. Safe to run again.
set -euo pipefail
pkgs=(
  meson ninja-build gcc pkg-config python3 python3-venv
  libglib2.0-dev libjson-glib-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base
  libgstreamer-plugins-bad1.0-dev  # libgstcuda-1.0: gst.cuda.context (plugins/gstllmcudacontext.c)
  valgrind
  clang libclang-rt-14-dev  # libFuzzer and the sanitizers (tools/fuzz-run.sh)
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "setup-debian: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
