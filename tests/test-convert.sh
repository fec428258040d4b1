#!/usr/bin/env bash
# llmasos-convert as users run it: stories260K (Hugging Face folder) to
# GGUF in every type, GGUF to GGUF, and the errors a user can make. If the
# Python `gguf` package (llama.cpp's gguf-py) is importable, every file is
# also read with gguf.GGUFReader and its keys and tensors checked, which
# shows that llama.cpp's own reader accepts what we write.
set -u
MODELS=${LLMASOS_MODELS:-../shared/models}
MODEL_DIR=$MODELS/stories260K
BUILD=${LLMASOS_BUILD_DIR:?LLMASOS_BUILD_DIR must point at the build tree}
CONVERT=$BUILD/tools/llmasos-convert
if [ ! -f "$MODEL_DIR/config.json" ]; then
  echo "MODEL MISSING: $MODEL_DIR not found; set LLMASOS_MODELS to the folder holding stories260K/" >&2
  exit 1
fi
[ -x "$CONVERT" ] || { echo "FAIL: $CONVERT not built" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail () { echo "FAIL: $*"; fails=$((fails + 1)); }

# expect_error DESCRIPTION PHRASE ARGS...: exit code 1 and PHRASE on stderr
expect_error () {
  local what=$1 phrase=$2; shift 2
  "$CONVERT" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ $rc -ne 1 ]; then fail "$what: exit code $rc, expected 1"; return; fi
  if ! grep -qF -- "$phrase" "$tmp/err"; then
    fail "$what: '$phrase' not in the message:"; cat "$tmp/err"; return
  fi
  echo "ok: $what: $(grep -F -- "$phrase" "$tmp/err" | head -n1)"
}

for t in f32 f16 bf16 q8_0 q4_0; do
  out=$tmp/stories260K-$t.gguf
  if ! "$CONVERT" -t "$t" -o "$out" "$MODEL_DIR" 2>"$tmp/log-$t"; then
    fail "convert -t $t:"; cat "$tmp/log-$t"; continue
  fi
  [ -s "$out" ] || fail "convert -t $t wrote no file"
  [ -e "$out.partial" ] && fail "convert -t $t left $out.partial"
  grep -q "wrote $out" "$tmp/log-$t" || fail "convert -t $t: no 'wrote' line"
  grep -q '\[100%\]' "$tmp/log-$t" || fail "convert -t $t: no progress"
  echo "ok: -t $t ($(stat -c %s "$out") bytes)"
done

# GGUF in, GGUF out; and the default output name in the current directory
( cd "$tmp" && "$CONVERT" -q -t q8_0 stories260K-f32.gguf ) ||
  fail "GGUF -> GGUF conversion"
[ -s "$tmp/stories260K-q8_0.gguf" ] && echo "ok: default name ./stories260K-q8_0.gguf" ||
  fail "default output ./stories260K-q8_0.gguf missing"
( cd "$tmp" && "$CONVERT" -q "$MODEL_DIR" ) && [ -s "$tmp/stories260K-f16.gguf" ] &&
  echo "ok: default type f16" || fail "default type f16"

"$CONVERT" --help >"$tmp/help" 2>&1 || fail "--help exit code"
grep -q -- "--type" "$tmp/help" && grep -q "q4_0" "$tmp/help" &&
  grep -q "MODEL_DIR_OR_GGUF" "$tmp/help" && echo "ok: --help" || fail "--help text"

expect_error "missing model" "/nonexistent/model: no such file or folder" \
  -o "$tmp/x.gguf" /nonexistent/model
expect_error "unknown type" "unknown type 'q4_k'" -t q4_k -o "$tmp/x.gguf" "$MODEL_DIR"
expect_error "no model" "give exactly one model" -o "$tmp/x.gguf"
expect_error "bad option" "Unknown option" --frobnicate "$MODEL_DIR"
expect_error "not a GGUF file" "not a GGUF file" -o "$tmp/x.gguf" "$MODEL_DIR/config.json"
expect_error "unwritable output" "$tmp/no/such/dir/x.gguf: cannot create" -o "$tmp/no/such/dir/x.gguf" "$MODEL_DIR"
mkdir "$tmp/empty"
expect_error "folder without config.json" "not a model folder: it has no config.json" -o "$tmp/x.gguf" "$tmp/empty"

if python3 -c 'import gguf' 2>/dev/null; then
  python3 - "$tmp" <<'PY' || fail "gguf.GGUFReader checks"
import sys, gguf
tmp = sys.argv[1]
want_type = {"f32": "F32", "f16": "F16", "bf16": "BF16", "q8_0": "Q8_0", "q4_0": "Q4_0"}
file_type = {"f32": 0, "f16": 1, "bf16": 32, "q8_0": 7, "q4_0": 2}
for t, tt in want_type.items():
    r = gguf.GGUFReader(f"{tmp}/stories260K-{t}.gguf")
    f = r.fields
    def val(k):
        return f[k].contents()
    assert val("general.architecture") == "llama"
    assert val("general.file_type") == file_type[t], val("general.file_type")
    for k, v in {"llama.embedding_length": 64, "llama.block_count": 5,
                 "llama.feed_forward_length": 172, "llama.context_length": 512,
                 "llama.attention.head_count": 8,
                 "llama.attention.head_count_kv": 4,
                 "llama.rope.dimension_count": 8, "llama.vocab_size": 512}.items():
        assert val(k) == v, (k, val(k))
    assert abs(val("llama.attention.layer_norm_rms_epsilon") - 1e-5) < 1e-9
    assert val("llama.rope.freq_base") == 10000.0
    assert val("tokenizer.ggml.model") == "llama"
    toks = val("tokenizer.ggml.tokens")
    assert len(toks) == 512 and toks[1] == "<s>" and toks[3] == "<0x00>", toks[:4]
    assert len(val("tokenizer.ggml.scores")) == 512
    assert len(val("tokenizer.ggml.token_type")) == 512
    assert val("tokenizer.ggml.bos_token_id") == 1
    assert val("tokenizer.ggml.eos_token_id") == 2
    names = {x.name: x for x in r.tensors}
    assert len(names) == 47 and "output.weight" not in names, len(names)
    for n in ["token_embd.weight", "output_norm.weight"] + [
            f"blk.{i}.{p}.weight" for i in range(5) for p in (
            "attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
            "ffn_norm", "ffn_gate", "ffn_up", "ffn_down")]:
        assert n in names, n
    x = names["blk.0.attn_k.weight"]
    assert list(x.shape) == [64, 32] and x.tensor_type.name == tt, (x.shape, x.tensor_type)
    assert names["blk.0.attn_norm.weight"].tensor_type.name == "F32"
    down = names["blk.0.ffn_down.weight"].tensor_type.name
    assert down == ("F16" if t in ("q8_0", "q4_0") else tt), down
    print(f"ok: gguf.GGUFReader reads stories260K-{t}.gguf")
PY
else
  echo "NOTICE: python3 module 'gguf' not importable; skipping the llama.cpp gguf-py reader checks (pip install gguf)"
fi

if [ $fails -ne 0 ]; then echo "$fails failure(s)"; exit 1; fi
echo "all conversions ok"
