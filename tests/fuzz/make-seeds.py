#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets, tests/fuzz/corpus/<target>/.

Small seeds made from the real files of stories260K (its tokenizer.json,
config.json, the header of its model.safetensors, its reference texts and
ids) and tiny GGUF / safetensors files written here with the same layout.
Every seed stays under 64 KiB and the whole corpus under 1 MiB; the script
fails otherwise. Python's standard library only.

    tests/fuzz/make-seeds.py [MODELS_DIR]

MODELS_DIR defaults to $LLMASOS_MODELS, else ../shared/models. The output
is deterministic: running it again rewrites the same files.
"""
import json
import os
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
MAX_SEED = 64 * 1024
MAX_TOTAL = 1024 * 1024

# GGUF value types and GGML tensor types (the file formats' numbers).
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
T_F32, T_F16, T_Q4_0, T_Q8_0, T_BF16 = 0, 1, 2, 8, 30
SCALAR_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i",
              F32: "<f", BOOL: "<?", U64: "<Q", I64: "<q", F64: "<d"}


def models_dir():
    if len(sys.argv) > 1:
        return sys.argv[1]
    env = os.environ.get("LLMASOS_MODELS")
    if env:
        return env
    return os.path.join(HERE, "..", "..", "..", "shared", "models")


# --- GGUF ---------------------------------------------------------------

def gguf_str(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def gguf_value(t, v, elem=None):
    """@v of GGUF type @t (for ARR: (elem_type, [values]))."""
    if t == STR:
        return gguf_str(v)
    if t == ARR:
        et, items = v
        out = struct.pack("<IQ", et, len(items))
        for it in items:
            out += gguf_value(et, it)
        return out
    return struct.pack(SCALAR_FMT[t], v)


def gguf_file(kvs, tensors=(), version=3, alignment=32):
    """kvs: [(key, type, value)]; tensors: [(name, ggml_type, ne, bytes)]."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for key, t, v in kvs:
        out += gguf_str(key) + struct.pack("<I", t) + gguf_value(t, v)
    offset = 0
    offsets = []
    for name, t, ne, data in tensors:
        offsets.append(offset)
        out += gguf_str(name) + struct.pack("<I", len(ne))
        out += b"".join(struct.pack("<Q", n) for n in ne)
        out += struct.pack("<IQ", t, offset)
        offset += len(data)
        offset += (alignment - offset % alignment) % alignment
    out += b"\0" * ((alignment - len(out) % alignment) % alignment)
    for (name, t, ne, data), off in zip(tensors, offsets):
        out += data
        out += b"\0" * ((alignment - len(data) % alignment) % alignment)
    return out


def f32s(values):
    return b"".join(struct.pack("<f", v) for v in values)


def f16s(values):
    return b"".join(struct.pack("<e", v) for v in values)


def q8_0_block(values):
    """One Q8_0 block: f16 scale, 32 int8."""
    amax = max(abs(v) for v in values) or 1.0
    d = amax / 127
    return struct.pack("<e", d) + bytes(
        (round(v / d) & 0xFF) for v in values)


def q4_0_block(values):
    """One Q4_0 block: f16 scale, 16 bytes of two 4-bit values."""
    amax = max(values, key=abs) or 1.0
    d = amax / -8
    q = [min(15, max(0, int(v / d + 8.5))) for v in values]
    return struct.pack("<e", d) + bytes(
        q[i] | (q[i + 16] << 4) for i in range(16))


def spm_vocab_kvs(tok):
    """tokenizer.ggml.* keys of stories260K's vocabulary, as
    llmasos-convert writes them."""
    vocab = tok["model"]["vocab"]
    pieces = [None] * len(vocab)
    for piece, i in vocab.items():
        pieces[i] = piece
    special = {t["id"] for t in tok["added_tokens"]}
    types = []
    for i, p in enumerate(pieces):
        if i in special:
            types.append(3 if p != "<unk>" else 2)
        elif p.startswith("<0x") and len(p) == 6:
            types.append(6)
        else:
            types.append(1)
    merges = [" ".join(m) if isinstance(m, list) else m
              for m in tok["model"]["merges"]]
    return [
        ("tokenizer.ggml.model", STR, "llama"),
        ("tokenizer.ggml.tokens", ARR, (STR, pieces)),
        ("tokenizer.ggml.scores", ARR, (F32, [-float(i) for i in
                                             range(len(pieces))])),
        ("tokenizer.ggml.token_type", ARR, (I32, types)),
        ("tokenizer.ggml.merges", ARR, (STR, merges)),
        ("tokenizer.ggml.bos_token_id", U32, 1),
        ("tokenizer.ggml.eos_token_id", U32, 2),
        ("tokenizer.ggml.unknown_token_id", U32, 0),
        ("tokenizer.ggml.add_bos_token", BOOL, True),
        ("tokenizer.ggml.add_space_prefix", BOOL, True),
    ]


def gpt2_vocab_kvs(gpt2):
    vocab = gpt2["model"]["vocab"]
    pieces = [None] * len(vocab)
    for piece, i in vocab.items():
        pieces[i] = piece
    types = [3 if p == "<|endoftext|>" else 1 for p in pieces]
    merges = [" ".join(m) for m in gpt2["model"]["merges"]]
    return [
        ("tokenizer.ggml.model", STR, "gpt2"),
        ("tokenizer.ggml.pre", STR, "gpt2"),
        ("tokenizer.ggml.tokens", ARR, (STR, pieces)),
        ("tokenizer.ggml.token_type", ARR, (I32, types)),
        ("tokenizer.ggml.merges", ARR, (STR, merges)),
        ("tokenizer.ggml.eos_token_id", U32, pieces.index("<|endoftext|>")),
    ]


def gguf_seeds(tok, gpt2):
    every_type = [
        ("general.architecture", STR, "llama"),
        ("general.name", STR, "fuzz"),
        ("t.u8", U8, 200), ("t.i8", I8, -5), ("t.u16", U16, 60000),
        ("t.i16", I16, -300), ("t.u32", U32, 4000000000),
        ("t.i32", I32, -70000), ("t.f32", F32, 1.5), ("t.bool", BOOL, True),
        ("t.u64", U64, 2 ** 40), ("t.i64", I64, -2 ** 40), ("t.f64", F64,
                                                             2.25),
        ("t.bytes", STR, b"not \xff utf-8"),
        ("t.arr.i32", ARR, (I32, [1, -2, 3])),
        ("t.arr.f32", ARR, (F32, [0.5, -1.0])),
        ("t.arr.str", ARR, (STR, ["a", "", "\u2581b"])),
        ("t.arr.bad", ARR, (STR, ["ok", b"\xc3"])),
        ("t.arr.nested", ARR, (ARR, [(U8, [1, 2]), (STR, ["x"]),
                                     (ARR, [(I16, [7])])])),
        ("t.arr.empty", ARR, (U64, [])),
    ]
    vals = [((i * 37) % 64 - 32) / 8.0 for i in range(64)]
    tensors = [
        ("f32", T_F32, [4, 2], f32s(vals[:8])),
        ("f16", T_F16, [8], f16s(vals[:8])),
        ("bf16", T_BF16, [2, 2], b"".join(struct.pack("<f", v)[2:]
                                           for v in vals[:4])),
        ("q8_0", T_Q8_0, [32, 2], q8_0_block(vals[:32]) +
         q8_0_block(vals[32:])),
        ("q4_0", T_Q4_0, [32], q4_0_block(vals[:32])),
        ("scalar", T_F32, [1], f32s([3.0])),
    ]
    hp = [
        ("llama.embedding_length", U32, 8),
        ("llama.block_count", U32, 1),
        ("llama.feed_forward_length", U32, 16),
        ("llama.attention.head_count", U32, 2),
        ("llama.attention.head_count_kv", U32, 1),
        ("llama.context_length", U32, 64),
        ("llama.attention.layer_norm_rms_epsilon", F32, 1e-5),
        ("llama.rope.freq_base", F32, 10000.0),
    ]
    return {
        "empty-v3.gguf": gguf_file([]),
        "empty-v2.gguf": gguf_file([], version=2),
        "every-type.gguf": gguf_file(every_type),
        "tensors.gguf": gguf_file(every_type[:2], tensors),
        "align64.gguf": gguf_file([("general.alignment", U32, 64)],
                                  tensors[:3], alignment=64),
        "hparams.gguf": gguf_file([every_type[0]] + hp, tensors[:1]),
        "spm-vocab.gguf": gguf_file(spm_vocab_kvs(tok)),
        "gpt2-vocab.gguf": gguf_file(gpt2_vocab_kvs(gpt2)),
        "spm-vocab-scores-only.gguf": gguf_file(
            [kv for kv in spm_vocab_kvs(tok)
             if kv[0] != "tokenizer.ggml.merges"]),
    }


# --- safetensors --------------------------------------------------------

def safetensors_file(tensors, metadata=None, pad_to=8):
    """tensors: [(name, dtype, shape, bytes)]."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset = 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad_to:
        text += b" " * ((pad_to - len(text) % pad_to) % pad_to)
    return (struct.pack("<Q", len(text)) + text +
            b"".join(t[3] for t in tensors))


def safetensors_seeds(models):
    path = os.path.join(models, "stories260K", "model.safetensors")
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = f.read(n)
        first = f.read(64)
    real = json.loads(header)
    # The real header with the real (small) norm tensors only: their data
    # copied, offsets renumbered.
    norms = []
    with open(path, "rb") as f:
        for name, info in real.items():
            if name == "__metadata__" or len(info["shape"]) != 1:
                continue
            f.seek(8 + n + info["data_offsets"][0])
            data = f.read(info["data_offsets"][1] - info["data_offsets"][0])
            norms.append((name, info["dtype"], info["shape"], data))
            if len(norms) == 4:
                break
    vals = [i / 4.0 for i in range(12)]
    small = [
        ("a", "F32", [3, 2], f32s(vals[:6])),
        ("b", "F16", [4], f16s(vals[:4])),
        ("c", "BF16", [2], b"".join(struct.pack("<f", v)[2:]
                                    for v in vals[:2])),
        ("s", "F32", [], f32s([1.0])),
    ]
    return {
        # the real 4.8 KB header, with only the start of the data: every
        # offset runs past the end
        "real-header-truncated.safetensors": struct.pack("<Q", n) + header +
        first,
        "real-norms.safetensors": safetensors_file(norms, {"format": "pt"}),
        "small.safetensors": safetensors_file(small, {"format": "pt"}),
        "misaligned.safetensors": safetensors_file(small[:2], pad_to=0),
        "empty.safetensors": safetensors_file([]),
        "4d.safetensors": safetensors_file(
            [("x", "F32", [1, 2, 1, 2], f32s(vals[:4]))]),
    }


# --- the rest -----------------------------------------------------------

def config_seeds(models):
    path = os.path.join(models, "stories260K", "config.json")
    with open(path, "rb") as f:
        real = f.read()
    cfg = json.loads(real)
    arch_only = dict(cfg)
    del arch_only["model_type"]
    minimal = {k: cfg[k] for k in ("model_type", "hidden_size",
                                   "intermediate_size", "num_hidden_layers",
                                   "num_attention_heads")}
    odd = dict(cfg, rms_norm_eps=1, rope_theta=1e300, vocab_size=None,
               head_dim=None, tie_word_embeddings="yes")
    return {
        "stories260K.json": real,
        "architectures-only.json": json.dumps(arch_only).encode(),
        "minimal.json": json.dumps(minimal).encode(),
        "odd-values.json": json.dumps(odd).encode(),
        "mistral.json": json.dumps(dict(cfg, model_type="mistral")).encode(),
    }


def byte_char(b):
    """GPT-2's byte -> printable character table."""
    printable = (list(range(ord("!"), ord("~") + 1)) +
                 list(range(ord("\xa1"), ord("\xac") + 1)) +
                 list(range(ord("\xae"), ord("\xff") + 1)))
    if b in printable:
        return chr(b)
    extra = [x for x in range(256) if x not in printable]
    return chr(256 + extra.index(b))


def gpt2_tiny():
    """A byte-level BPE vocabulary: the 256 bytes, 8 merges, one special
    token (the one tests/test-tokenizer.c builds)."""
    merges = [("\u0120", "t"), ("h", "e"), ("\u0120t", "he"), ("i", "n"),
              ("\u0120", "a"), ("e", "r"), ("\u0120", "\u0120"), ("l", "l")]
    vocab = {byte_char(b): b for b in range(256)}
    for i, (a, b) in enumerate(merges):
        vocab[a + b] = 256 + i
    eot = 256 + len(merges)
    vocab["<|endoftext|>"] = eot
    return {
        "added_tokens": [{"id": eot, "content": "<|endoftext|>",
                          "special": True, "single_word": False,
                          "lstrip": False, "rstrip": False,
                          "normalized": False}],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False,
                          "trim_offsets": True, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True,
                    "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "vocab": vocab,
                  "merges": [list(m) for m in merges]},
    }


def vocab_json_seeds(models, gpt2):
    path = os.path.join(models, "stories260K", "tokenizer.json")
    with open(path, "rb") as f:
        real = f.read()
    tok = json.loads(real)
    metaspace = dict(tok, normalizer=None, pre_tokenizer={
        "type": "Metaspace", "replacement": "\u2581",
        "prepend_scheme": "first", "split": False})
    string_merges = json.loads(real)
    string_merges["model"]["merges"] = [
        " ".join(m) for m in string_merges["model"]["merges"]]
    return {
        "stories260K-tokenizer.json": real,
        "stories260K-metaspace.json": json.dumps(metaspace).encode(),
        "stories260K-string-merges.json": json.dumps(string_merges).encode(),
        # also the GPT-2 vocabulary fuzz-tokenize and fuzz-detok load
        "gpt2-tiny.json": json.dumps(gpt2, ensure_ascii=False).encode(),
    }


def reference(models):
    path = os.path.join(models, "stories260K", "reference", "tokenize.json")
    with open(path) as f:
        return json.load(f)["cases"]


def tokenize_seeds(cases):
    seeds = {}
    for i, case in enumerate(cases[:40]):
        seeds["reference-%02d.txt" % i] = case["text"].encode()
    extra = [
        b"", b" ", b"  two spaces", b"Once upon a time, there was a cat.",
        b"<s>special</s> and <unk>", b"caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac "
        b"\xf0\x9f\x98\x80", b"tab\tnew\nline\r\n", b"nul\x00inside",
        b"invalid \xff\xfe utf-8", b"cut \xe6\x97", b"\xe2\x96\x81 lower block",
        b"<|endoftext|>the there", b"don't 3.14 it's!!",
    ]
    for i, text in enumerate(extra):
        seeds["extra-%02d.txt" % i] = text
    return seeds


def detok_input(flags, stops, ids):
    out = bytes([flags])
    for s in stops:
        out += bytes([len(s)]) + s
    return out + b"".join(struct.pack("<h", i) for i in ids)


def detok_seeds(cases):
    seeds = {}
    for i, case in enumerate(cases[:12]):
        ids = [1] + case["ids"]
        seeds["reference-%02d.bin" % i] = detok_input(0b10, [], ids)
    ids = cases[2]["ids"]
    seeds["stops.bin"] = detok_input(0b1010, [b"time", b"\xf0\x9f"],
                                     cases[0]["ids"])
    seeds["stop-emoji.bin"] = detok_input(0b0110, [b"\xf0\x9f\x98\x80"], ids)
    # byte tokens <0xE6> <0x97> <0xA5> (ids 3 + byte), cut, then invalid
    seeds["bytes.bin"] = detok_input(0b10, [], [3 + 0xE6, 3 + 0x97, 3 + 0xA5,
                                                3 + 0xE6, 3 + 0x41, 3 + 0xFF])
    seeds["out-of-range.bin"] = detok_input(0b10, [], [-1, 512, 0x7fff,
                                                       -0x8000, 300])
    seeds["two-sequences.bin"] = detok_input(0b10, [], cases[1]["ids"] +
                                             [0x7ffe] + cases[3]["ids"])
    seeds["gpt2.bin"] = detok_input(0b0111, [b"he"], [ord(c) for c in
                                                      "hello"] + [258, 264])
    return seeds


def caps_seeds(tok_fingerprint_hint):
    caps = [
        "application/x-llm-tokens, vocab-size=(int)[ 1, 2147483647 ], "
        "batch=(int)[ 1, 64 ]",
        "application/x-llm-tokens, vocab=(string)%s, vocab-size=(int)512, "
        "batch=(int)1" % tok_fingerprint_hint,
        "application/x-llm-tokens, vocab=(string)spm512-00000000, "
        "vocab-size=(int)512, batch=(int)1",
        "application/x-llm-state, model=(string)abc, kv-dtype=(string)F32, "
        "batch=(int)[ 1, 64 ]",
        "application/x-llm-logits, vocab=(string){ a, b }, "
        "vocab-size=(int)512, dtype=(string)F32, batch=(int)4",
        "application/x-llm-tensor, dtype=F32, layout=qkv, heads=8, "
        "kv-heads=4, head-dim=8",
        "application/x-llm-tensor, dtype=F32, layout=qkv, heads=1024, "
        "kv-heads=1, head-dim=1024",
        "application/x-llm-tensor(memory:SystemMemory), dtype=F32",
        "text/x-raw, format=utf8; application/x-llm-tokens",
        "ANY", "EMPTY", "",
    ]
    return {"caps-%02d.txt" % i: c.encode() for i, c in enumerate(caps)}


def properties_seeds(models):
    model = os.path.join(models, "stories260K")
    props = [
        "stop-strings=<\"The end\", \"\\n\">",
        "separator=\\n\\t\\x41\\101",
        "temperature=0.7\ntop-k=40\ntop-p=0.9\nmin-p=0.05\nseed=42",
        "repeat-penalty=1.1\nrepeat-last-n=64",
        "prompt-mode=line\nadd-special=false\ninvalid-utf8=replace",
        "chat=true\nsystem-prompt=Be brief.\nkeep-history=true",
        "context-length=128\ncontext-overflow=truncate\nn-threads=2",
        "max-tokens=100\nmax-batch=4",
        "causal=false\nkv-dtype=f32",
        "attention=llmattention kv-dtype=f32",
        "model=" + model,
        "*=1", "*=-1", "*=", "*=<>", "*=18446744073709551616", "*=nan",
        "*=\"quoted\"",
        "device=cuda:1\ndevice=CPU\n*=cpu:0",
    ]
    return {"props-%02d.txt" % i: p.encode() for i, p in enumerate(props)}


def main():
    models = models_dir()
    with open(os.path.join(models, "stories260K", "tokenizer.json")) as f:
        tok = json.load(f)
    gpt2 = gpt2_tiny()
    cases = reference(models)
    corpora = {
        "gguf": gguf_seeds(tok, gpt2),
        "safetensors": safetensors_seeds(models),
        "config-json": config_seeds(models),
        "vocab-json": vocab_json_seeds(models, gpt2),
        "tokenize": tokenize_seeds(cases),
        "detok": detok_seeds(cases),
        "caps": caps_seeds("spm512-5b28062c"),
        "properties": properties_seeds("/nonexistent/models"),
    }
    total = 0
    for target, seeds in corpora.items():
        d = os.path.join(CORPUS, target)
        if os.path.isdir(d):
            shutil.rmtree(d)
        os.makedirs(d)
        for name, data in sorted(seeds.items()):
            if len(data) >= MAX_SEED:
                sys.exit("make-seeds: %s/%s is %d bytes (limit %d)" %
                         (target, name, len(data), MAX_SEED))
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
            total += len(data)
        print("%-12s %3d seeds" % (target, len(seeds)))
    if total >= MAX_TOTAL:
        sys.exit("make-seeds: the corpus is %d bytes (limit %d)" %
                 (total, MAX_TOTAL))
    print("total %d bytes" % total)


if __name__ == "__main__":
    main()
