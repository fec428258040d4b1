#!/bin/bash
# llmasos-tokenize against the reference ids of stories260K
# (reference/tokenize.json: Hugging Face, add_special_tokens=False), and its
# errors: a missing model, invalid UTF-8.
# SPDX-License-Identifier: LGPL-2.1-or-later
set -u

build=${LLMASOS_BUILD_DIR:?LLMASOS_BUILD_DIR is not set}
models=${LLMASOS_MODELS:-$(dirname "$0")/../../shared/models}
tool=$build/tools/llmasos-tokenize
model=$models/stories260K

if [ ! -x "$tool" ]; then
  echo "FAIL: $tool not built"
  exit 1
fi
if [ ! -f "$model/reference/tokenize.json" ]; then
  echo "MODEL MISSING: $model (set LLMASOS_MODELS)"
  exit 1
fi

fail=0

# Every reference string through the tool; stdin carries the exact bytes.
python3 - "$tool" "$model" <<'PY' || fail=1
import json, subprocess, sys
tool, model = sys.argv[1], sys.argv[2]
cases = json.load(open(model + "/reference/tokenize.json", encoding="utf-8"))["cases"]
bad = 0
for i, c in enumerate(cases):
    r = subprocess.run([tool, "-m", model], input=c["text"].encode("utf-8"),
                       capture_output=True)
    got = [int(x) for x in r.stdout.split()] if r.returncode == 0 else None
    if got != c["ids"] or not r.stdout.endswith(b"\n"):
        bad += 1
        if bad <= 5:
            print("case %d %r: got %r (rc %d, %r), want %r" % (
                i, c["text"], got, r.returncode, r.stderr, c["ids"]))
# with --add-special: BOS in front
r = subprocess.run([tool, "-m", model, "--add-special"],
                   input=b"Once upon a time", capture_output=True)
if r.stdout != b"1 403 407 261 378\n":
    bad += 1
    print("--add-special: got %r" % r.stdout)
# NUL bytes are text too
r = subprocess.run([tool, "-m", model], input=b"a\0b", capture_output=True)
if r.returncode != 0 or r.stdout != b"261 3 430\n":
    bad += 1
    print("NUL: got %r %r" % (r.stdout, r.stderr))
print("%d of %d reference cases differ" % (bad, len(cases)))
sys.exit(1 if bad else 0)
PY

# A missing model: exit 1 and a message naming it.
out=$("$tool" -m "$models/no-such-model" </dev/null 2>&1)
rc=$?
if [ $rc -ne 1 ] || ! grep -q "no-such-model" <<<"$out"; then
  echo "FAIL: missing model gave rc=$rc: $out"
  fail=1
fi

# Invalid UTF-8: exit 1 and the byte offset.
out=$(printf 'abc\xff' | "$tool" -m "$model" 2>&1)
rc=$?
if [ $rc -ne 1 ] || ! grep -q "invalid UTF-8 at byte 3" <<<"$out"; then
  echo "FAIL: invalid UTF-8 gave rc=$rc: $out"
  fail=1
fi

# No -m at all: a usage error.
out=$("$tool" </dev/null 2>&1)
if [ $? -eq 0 ] || ! grep -q -- "-m MODEL" <<<"$out"; then
  echo "FAIL: no -m: $out"
  fail=1
fi

[ $fail -eq 0 ] && echo "PASS"
exit $fail
