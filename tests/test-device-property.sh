#!/usr/bin/env bash
# The `device` property from a gst-launch-1.0 line, as users type it: each
# bad value ends the pipeline with a non-zero exit (not a timeout or a
# crash) and an element error of the element that has it, whose message
# names the value and says what is wrong. Runs on every machine: the
# values that need a GPU to succeed are checked only for their error where
# there is none (a CUDA build without a GPU, or a build without CUDA).
set -u
MODELS=${LLMASOS_MODELS:-../shared/models}
MODEL_DIR=$MODELS/stories260K
if [ ! -f "$MODEL_DIR/config.json" ]; then
  echo "MODEL MISSING: $MODEL_DIR not found; set LLMASOS_MODELS to the folder holding stories260K/" >&2
  exit 1
fi
command -v gst-launch-1.0 >/dev/null || { echo "gst-launch-1.0 not found (apt-get install gstreamer1.0-tools)" >&2; exit 1; }
BUILD=${LLMASOS_BUILD_DIR:?LLMASOS_BUILD_DIR must point at the build tree}
. "$(cd "$(dirname "$0")" && pwd)/launch-check.sh"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Sanitizer build: the runtime must come first in the process (as in
# test-broken-models.sh).
lib=$(find "$BUILD/core" -maxdepth 1 -name 'libllmasos-0.1.so*' | head -n1)
if [ -n "$lib" ] && ldd "$lib" 2>/dev/null | grep -q libasan; then
  export LD_PRELOAD=$(${CC:-cc} -print-file-name=libasan.so)
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
fi

fails=0
n=0
# check ENCODER_PROPS DECODER_PROPS ELEMENT_CLASS EXPECTED: the error must
# come from ELEMENT_CLASS and hold one of EXPECTED's '|'-separated texts.
check () {
  local props_enc=$1 props_dec=$2 who=$3 expected=$4 rc line why e found=0
  n=$((n + 1))
  printf 'Once upon a time' | timeout -k 5 60 gst-launch-1.0 -q fdsrc ! \
    llmtokenizer model="$MODEL_DIR" ! llmencoder $props_enc ! \
    llmdecoder max-tokens=5 $props_dec ! llmsampler temperature=0 ! \
    llmdetokenizer ! fdsink >"$tmp/out" 2>"$tmp/err"
  rc=$?
  line=$(grep -m1 '^ERROR: from element ' "$tmp/err")
  IFS='|' read -ra alts <<<"$expected"
  for e in "${alts[@]}"; do
    [[ $line == *"$e"* ]] && found=1
  done
  why=$(launch_failure_reason $rc "$tmp/err")
  if [ -n "$why" ]; then
    :
  elif [[ $line != *"$who"* ]]; then
    why="the error is not from $who"
  elif [ $found -eq 0 ]; then
    why="none of '$expected' in the message"
  fi
  if [ -n "$why" ]; then
    echo "FAIL: llmencoder $props_enc ! llmdecoder $props_dec (exit $rc): $why"
    sed 's/^/    /' "$tmp/err" | head -n 10
    fails=$((fails + 1))
  else
    echo "ok: llmencoder $props_enc ! llmdecoder $props_dec: ${line#*: }"
  fi
}

check "device=tpu" "" GstLlmEncoder 'device "tpu": this build has no "tpu" backend'
check "device=cuda:x" "" GstLlmEncoder 'malformed device "cuda:x": expected cpu, cuda or cuda:N'
check "device=cuda:-1" "" GstLlmEncoder 'malformed device "cuda:-1"'
check "device=cuda:99999999999999" "" GstLlmEncoder 'malformed device "cuda:99999999999999"'
check "device=cpu:1" "" GstLlmEncoder 'device "cpu:1" does not exist: the CPU is one device, cpu or cpu:0'
check "device=tpu:0" "" GstLlmEncoder 'no "tpu" backend (devices it knows: cpu'
check "" "device=tpu" GstLlmDecoder 'device "tpu": this build has no "tpu" backend'
check "" "device=cuda:x" GstLlmDecoder 'malformed device "cuda:x"'
# a device that no machine has: "does not exist" with a GPU, "not
# available" without one, no backend in a build without CUDA
check "device=CUDA:99" "" GstLlmEncoder \
  'device "CUDA:99" does not exist|device "CUDA:99" is not available|no "cuda" backend'
check "device=cuda:99" "" GstLlmEncoder \
  'device "cuda:99" does not exist|device "cuda:99" is not available|no "cuda" backend'

# Where there is no GPU, device=cuda must say why instead of running.
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  check "device=cuda" "" GstLlmEncoder \
    'device "cuda" is not available: no CUDA device|no "cuda" backend'
  check "" "device=cuda" GstLlmDecoder \
    'device "cuda" is not available: no CUDA device|no "cuda" backend|KV cache'
fi

# and the spellings that mean the CPU run (and print the story)
for d in cpu CPU cpu:0 Cpu; do
  n=$((n + 1))
  out=$(printf 'Once upon a time' | timeout -k 5 60 gst-launch-1.0 -q fdsrc ! \
    llmtokenizer model="$MODEL_DIR" ! llmencoder device=$d ! \
    llmdecoder max-tokens=5 device=$d ! llmsampler temperature=0 ! \
    llmdetokenizer ! fdsink 2>"$tmp/err")
  rc=$?
  if [ $rc -ne 0 ] || [ -z "$out" ]; then
    echo "FAIL: device=$d (exit $rc, output '$out')"
    sed 's/^/    /' "$tmp/err" | head -n 10
    fails=$((fails + 1))
  else
    echo "ok: device=$d runs: '$out'"
  fi
done

echo "$n cases, $fails failed"
[ $fails -eq 0 ] || exit 1
