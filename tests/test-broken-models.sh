#!/usr/bin/env bash
# Every input is untrusted: each broken model of the corpus that
# tests/make-broken-models.py writes (GGUF files rewritten from the F32 GGUF
# of stories260K, and copies of its Hugging Face folder with one file
# broken) is loaded through gst-launch-1.0, as users run it. Each must end
# with a non-zero exit that is not a timeout or a crash, and an element
# error (GST_ELEMENT_ERROR: "ERROR: from element ...") whose message names
# the file and holds the manifest's expected substring.
#
# In a sanitizer build (libllmasos linked with libasan) gst-launch-1.0,
# which is not instrumented, runs with libasan preloaded, and any
# sanitizer report fails the case.
#
# LLMASOS_BROKEN_TABLE=FILE also writes the results as a Markdown table
# (docs/robustness.md shows one).
set -u
MODELS=${LLMASOS_MODELS:-../shared/models}
MODEL_DIR=$MODELS/stories260K
BUILD=${LLMASOS_BUILD_DIR:?LLMASOS_BUILD_DIR must point at the build tree}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/launch-check.sh"
if [ ! -f "$MODEL_DIR/config.json" ]; then
  echo "MODEL MISSING: $MODEL_DIR not found; set LLMASOS_MODELS to the folder holding stories260K/" >&2
  exit 1
fi
command -v gst-launch-1.0 >/dev/null || { echo "gst-launch-1.0 not found (apt-get install gstreamer1.0-tools)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 not found" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$BUILD/tools/llmasos-convert" -q -t f32 -o "$tmp/stories260K-f32.gguf" "$MODEL_DIR" 2>"$tmp/convert.log" || {
  echo "FAIL: llmasos-convert failed:"; cat "$tmp/convert.log"; exit 1; }
python3 "$HERE/make-broken-models.py" "$tmp/stories260K-f32.gguf" "$tmp/corpus" || {
  echo "FAIL: make-broken-models.py failed"; exit 1; }

# Sanitizer build: the runtime must come first in the process.
lib=$(find "$BUILD/core" -maxdepth 1 -name 'libllmasos-0.1.so*' | head -n1)
if [ -n "$lib" ] && ldd "$lib" 2>/dev/null | grep -q libasan; then
  export LD_PRELOAD=$(${CC:-cc} -print-file-name=libasan.so)
  # gst-launch-1.0 and GStreamer's own allocations are not ours to judge
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
  echo "# sanitizer build: LD_PRELOAD=$LD_PRELOAD"
fi

# file <TAB> expected substring <TAB> what is broken, one case a line
python3 - "$tmp/corpus/manifest.json" >"$tmp/cases" <<'PY'
import json, sys
for e in json.load(open(sys.argv[1], encoding="utf-8")):
    print("%s\t%s\t%s" % (e["file"], e["expected_message_substring"], e["what"]))
PY

table=${LLMASOS_BROKEN_TABLE:-}
[ -n "$table" ] && printf '| case | broken | message |\n|---|---|---|\n' >"$table"

fails=0
n=0
while IFS=$'\t' read -r name expected what; do
  n=$((n + 1))
  file=$tmp/corpus/$name
  printf 'Once upon a time' | timeout -k 5 60 gst-launch-1.0 -q fdsrc ! \
    llmtokenizer model="$file" ! llmencoder ! llmdecoder max-tokens=5 ! \
    llmsampler temperature=0 ! llmdetokenizer ! fdsink \
    >"$tmp/out" 2>"$tmp/err"
  rc=$?
  # gst-launch-1.0 prints an element error as "ERROR: from element
  # /GstPipeline:pipeline0/GstLlmTokenizer:llmtokenizer0: <message>"
  line=$(grep -m1 '^ERROR: from element ' "$tmp/err")
  msg=${line#*: Could not load model: }
  # the expected text must be in the message, not in the file's name
  rest=${line//"$file"/}
  why=$(launch_failure_reason $rc "$tmp/err")
  if [ -n "$why" ]; then
    :
  elif [[ $line != *"$file"* ]]; then
    why="the message does not name $file"
  elif [[ $rest != *"$expected"* ]]; then
    why="'$expected' not in the message"
  fi
  if [ -n "$why" ]; then
    echo "FAIL: $name (exit $rc): $why"
    sed 's/^/    /' "$tmp/err" | head -n 20
    fails=$((fails + 1))
  else
    echo "ok: $name (exit $rc): ${msg//$tmp\/corpus\//}"
  fi
  if [ -n "$table" ]; then
    m=${msg//$tmp\/corpus\//}
    printf '| `%s` | %s | %s%s |\n' "$name" "${what//|/\\|}" \
      "${why:+**FAIL: $why** }" "${m//|/\\|}" >>"$table"
  fi
done <"$tmp/cases"

echo "$n cases, $fails failed"
[ $fails -eq 0 ] || exit 1
