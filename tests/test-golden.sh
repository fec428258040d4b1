#!/usr/bin/env bash
# Golden end-to-end test: the exact gst-launch-1.0 line of the issue prints,
# byte for byte, the `continuation` of every case of
# stories260K/reference/generate.json: with the HF folder, with the F32 GGUF
# that llmasos-convert makes from it, and with a queue between any two
# elements.
set -u
MODELS=${LLMASOS_MODELS:-../shared/models}
MODEL_DIR=$MODELS/stories260K
REF=$MODEL_DIR/reference/generate.json
BUILD=${LLMASOS_BUILD_DIR:?LLMASOS_BUILD_DIR must point at the build tree}
if [ ! -f "$REF" ]; then
  echo "MODEL MISSING: $REF not found; set LLMASOS_MODELS to the folder holding stories260K/" >&2
  exit 1
fi
command -v gst-launch-1.0 >/dev/null || { echo "gst-launch-1.0 not found (apt-get install gstreamer1.0-tools)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One file per case: the prompt and the expected continuation, as bytes.
python3 - "$REF" "$tmp" <<'PY'
import json, sys
ref, out = sys.argv[1], sys.argv[2]
cases = json.load(open(ref, encoding="utf-8"))["cases"]
for i, c in enumerate(cases):
    open(f"{out}/prompt{i}", "wb").write(c["prompt"].encode())
    open(f"{out}/expect{i}", "wb").write(c["continuation"].encode())
print(len(cases), file=open(f"{out}/n", "w"))
PY
n=$(cat "$tmp/n")

"$BUILD/tools/llmasos-convert" -t f32 -o "$tmp/stories260K-f32.gguf" "$MODEL_DIR" >/dev/null 2>"$tmp/convert.log" || {
  echo "FAIL: llmasos-convert failed:"; cat "$tmp/convert.log"; exit 1; }

fails=0
run_case () { # model, label, i, elements between decoder... (Q1..Q5 queue slots)
  local MODEL=$1 label=$2 i=$3 q1=$4 q2=$5 q3=$6 q4=$7 q5=$8
  local PROMPT
  PROMPT=$(cat "$tmp/prompt$i")
  # shellcheck disable=SC2086
  printf '%s' "$PROMPT" | gst-launch-1.0 -q fdsrc ! $q1 llmtokenizer model=$MODEL ! $q2 llmencoder ! $q3 llmdecoder max-tokens=120 ! $q4 llmsampler temperature=0 ! $q5 llmdetokenizer ! fdsink >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ $rc -ne 0 ] || ! cmp -s "$tmp/out" "$tmp/expect$i"; then
    echo "FAIL [$label] case $i (rc=$rc):"
    echo "  expected: $(head -c 200 "$tmp/expect$i")"
    echo "  got:      $(head -c 200 "$tmp/out")"
    head -c 2000 "$tmp/err"
    fails=$((fails + 1))
  else
    echo "ok [$label] case $i"
  fi
}

for i in $(seq 0 $((n - 1))); do
  # The exact line of the issue.
  run_case "$MODEL_DIR" folder "$i" "" "" "" "" ""
  run_case "$tmp/stories260K-f32.gguf" gguf-f32 "$i" "" "" "" "" ""
done
# A queue between any two elements (each slot alone, then all at once).
Q="queue !"
for i in $(seq 0 $((n - 1))); do
  run_case "$MODEL_DIR" queue-src-tok "$i" "$Q" "" "" "" ""
  run_case "$MODEL_DIR" queue-tok-enc "$i" "" "$Q" "" "" ""
  run_case "$MODEL_DIR" queue-enc-dec "$i" "" "" "$Q" "" ""
  run_case "$MODEL_DIR" queue-dec-sam "$i" "" "" "" "$Q" ""
  run_case "$MODEL_DIR" queue-sam-det "$i" "" "" "" "" "$Q"
  run_case "$tmp/stories260K-f32.gguf" queues-everywhere "$i" "$Q" "$Q" "$Q" "$Q" "$Q"
done
# The detokenizer's output into a queue before the sink as well.
for i in $(seq 0 $((n - 1))); do
  PROMPT=$(cat "$tmp/prompt$i")
  printf '%s' "$PROMPT" | gst-launch-1.0 -q fdsrc ! llmtokenizer model=$MODEL_DIR ! llmencoder ! llmdecoder max-tokens=120 ! llmsampler temperature=0 ! llmdetokenizer ! queue ! fdsink >"$tmp/out" 2>"$tmp/err"
  if cmp -s "$tmp/out" "$tmp/expect$i"; then echo "ok [queue-det-sink] case $i"; else echo "FAIL [queue-det-sink] case $i"; fails=$((fails + 1)); fi
done

if [ $fails -ne 0 ]; then
  echo "$fails golden runs failed"
  exit 1
fi
echo "all golden runs passed"
