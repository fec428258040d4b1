#!/usr/bin/env python3
"""Writes a corpus of broken model files, for tests/test-broken-models.sh.

Usage: make-broken-models.py VALID_F32_GGUF OUT_DIR

VALID_F32_GGUF is stories260K as `llmasos-convert -t f32` writes it; the
Hugging Face folder comes from $LLMASOS_MODELS/stories260K (default
../shared/models). Each GGUF case is that file parsed and rewritten by the
small GGUF reader/writer below; each HF case is a folder that links the
model's files except the one it breaks. OUT_DIR/manifest.json lists them:
[{"file": name under OUT_DIR, "expected_message_substring": ..., "what":
a short description}, ...]. The loader must refuse every one, with an error
that names the file and holds the expected substring.

Python's standard library only (struct, json): CI machines may lack numpy.
"""

import json
import os
import shutil
import struct
import sys

# --- GGUF ------------------------------------------------------------------

T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, \
    T_U64, T_I64, T_F64 = range(13)
SCALAR_FMT = {T_U8: "B", T_I8: "b", T_U16: "H", T_I16: "h", T_U32: "I",
              T_I32: "i", T_F32: "f", T_BOOL: "B", T_U64: "Q", T_I64: "q",
              T_F64: "d"}
DT_F32, DT_F16, DT_Q4_0, DT_Q8_0, DT_I32, DT_BF16 = 0, 1, 2, 8, 26, 30
# bytes per block and elements per block of the dtypes this script writes
DT_LAYOUT = {DT_F32: (4, 1), DT_F16: (2, 1), DT_BF16: (2, 1),
             DT_Q8_0: (34, 32), DT_Q4_0: (18, 32), DT_I32: (4, 1)}


class Reader:
    def __init__(self, data):
        self.data, self.off = data, 0

    def take(self, fmt):
        v = struct.unpack_from("<" + fmt, self.data, self.off)
        self.off += struct.calcsize("<" + fmt)
        return v[0]

    def string(self):
        n = self.take("Q")
        s = self.data[self.off:self.off + n]
        self.off += n
        return s

    def value(self, t):
        if t == T_STR:
            return self.string()
        if t == T_ARR:
            et, n = self.take("I"), self.take("Q")
            return (et, [self.value(et) for _ in range(n)])
        return self.take(SCALAR_FMT[t])


def enc_string(s):
    if isinstance(s, str):
        s = s.encode()
    return struct.pack("<Q", len(s)) + s


def enc_value(t, v):
    if t == T_STR:
        return enc_string(v)
    if t == T_ARR:
        et, items = v
        return struct.pack("<IQ", et, len(items)) + b"".join(
            enc_value(et, x) for x in items)
    return struct.pack("<" + SCALAR_FMT[t], v)


def align_up(n, a):
    return (n + a - 1) // a * a


class Gguf:
    """A GGUF file as lists: kvs [key, type, value], tensors {name, ne,
    dtype, data}. bytes() lays the data out again as llmasos-convert does
    (each tensor at the next multiple of the alignment), so that an
    unchanged file comes back byte for byte."""

    def __init__(self, data):
        r = Reader(data)
        assert data[:4] == b"GGUF", "not a GGUF file"
        r.off = 4
        self.version = r.take("I")
        n_tensors, n_kv = r.take("Q"), r.take("Q")
        # file offsets where a section ends, for the truncation cases
        self.ends = {"counts": r.off, "kv": []}
        self.kvs = []
        for _ in range(n_kv):
            key = r.string().decode()
            t = r.take("I")
            self.kvs.append([key, t, r.value(t)])
            self.ends["kv"].append(r.off)
        infos = []
        self.ends["info"] = []
        for _ in range(n_tensors):
            name = r.string().decode()
            ne = [r.take("Q") for _ in range(r.take("I"))]
            dtype, offset = r.take("I"), r.take("Q")
            infos.append((name, ne, dtype, offset))
            self.ends["info"].append(r.off)
        self.alignment = self.kv("general.alignment", 32)
        self.data_offset = align_up(r.off, self.alignment)
        self.offsets = {name: offset for name, _, _, offset in infos}
        self.tensors = []
        for name, ne, dtype, offset in infos:
            start = self.data_offset + offset
            end = start + nbytes(dtype, ne)
            self.tensors.append({"name": name, "ne": ne, "dtype": dtype,
                                 "data": data[start:end]})

    def kv(self, key, default=None):
        for k in self.kvs:
            if k[0] == key:
                return k[2]
        return default

    def set_kv(self, key, t, v):
        for k in self.kvs:
            if k[0] == key:
                k[1], k[2] = t, v
                return
        self.kvs.append([key, t, v])

    def del_kv(self, key):
        self.kvs = [k for k in self.kvs if k[0] != key]

    def tensor(self, name):
        return next(t for t in self.tensors if t["name"] == name)

    def bytes(self, n_tensors=None, n_kv=None, offsets=None, raw_kv=None):
        """@offsets: {name: offset} to write instead of the layout's;
        @raw_kv: {key: bytes} of type + value written as they are."""
        offsets = offsets or {}
        raw_kv = raw_kv or {}
        out = bytearray(b"GGUF")
        if n_tensors is None:
            n_tensors = len(self.tensors)
        if n_kv is None:
            n_kv = len(self.kvs)
        out += struct.pack("<IQQ", self.version, n_tensors, n_kv)
        for key, t, v in self.kvs:
            out += enc_string(key)
            out += raw_kv[key] if key in raw_kv else \
                struct.pack("<I", t) + enc_value(t, v)
        layout, pos = [], 0
        for t in self.tensors:
            layout.append(pos)
            pos = align_up(pos + len(t["data"]), self.alignment)
        for t, at in zip(self.tensors, layout):
            out += enc_string(t["name"])
            out += struct.pack("<I", len(t["ne"]))
            out += b"".join(struct.pack("<Q", n) for n in t["ne"])
            out += struct.pack("<IQ", t["dtype"], offsets.get(t["name"], at))
        out += bytes(align_up(len(out), self.alignment) - len(out))
        base = len(out)
        for t, at in zip(self.tensors, layout):
            out += bytes(base + at - len(out))
            out += t["data"]
        return bytes(out)


def nbytes(dtype, ne):
    n = 1
    for d in ne:
        n *= d
    block_bytes, block_elems = DT_LAYOUT.get(dtype, (4, 1))
    return n // block_elems * block_bytes


def f32_values(t):
    return struct.unpack("<%df" % (len(t["data"]) // 4), t["data"])


def with_f32_bits(t, index, bits):
    """@t's data with element @index replaced by the F32 of bit pattern
    @bits (as bits: Python's floats would quiet a signalling NaN)."""
    data = bytearray(t["data"])
    struct.pack_into("<I", data, 4 * index, bits)
    return bytes(data)


NAN, NAN_NEG, NAN_SIGNALLING, INF, NINF = (0x7FC00000, 0xFFC00000,
                                          0x7F800001, 0x7F800000, 0xFF800000)
BITS_NAME = {NAN: "NaN", NAN_NEG: "-NaN", NAN_SIGNALLING: "signalling NaN",
             INF: "+Inf", NINF: "-Inf"}


def to_f16(values):
    return struct.pack("<%de" % len(values), *values)


def to_bf16(values):
    raw = struct.pack("<%df" % len(values), *values)
    # the upper half of each F32 (truncation: exact enough for a test)
    return b"".join(raw[i + 2:i + 4] for i in range(0, len(raw), 4))


def to_q8_0(values):
    out = bytearray()
    for b in range(0, len(values), 32):
        blk = values[b:b + 32]
        amax = max(abs(x) for x in blk)
        d = amax / 127 if amax else 0.0
        out += struct.pack("<e", d)
        out += struct.pack("<32b", *[max(-127, min(127, round(x / d)))
                                     if d else 0 for x in blk])
    return bytes(out)


def to_q4_0(values):
    out = bytearray()
    for b in range(0, len(values), 32):
        blk = values[b:b + 32]
        m = max(blk, key=abs)
        d = m / -8 if m else 0.0
        q = [max(0, min(15, int(x / d + 8.5))) if d else 8 for x in blk]
        out += struct.pack("<e", d)
        out += bytes(q[j] | q[j + 16] << 4 for j in range(16))
    return bytes(out)


# --- the corpus ------------------------------------------------------------

class Corpus:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.entries = []

    def add(self, file, expected, what):
        assert not any(e["file"] == file for e in self.entries), file
        self.entries.append({"file": file, "expected_message_substring":
                             expected, "what": what})

    def gguf(self, name, data, expected, what):
        file = "gguf-%s.gguf" % name
        with open(os.path.join(self.out_dir, file), "wb") as f:
            f.write(data)
        self.add(file, expected, what)

    def folder(self, name, src, expected, what, files=None, drop=()):
        """A copy of the HF folder @src: unchanged files are symbolic
        links, @files {name: bytes} are written, @drop left out."""
        file = "hf-%s" % name
        path = os.path.join(self.out_dir, file)
        os.mkdir(path)
        files = files or {}
        for entry in sorted(os.listdir(src)):
            if entry in files or entry in drop:
                continue
            if os.path.isfile(os.path.join(src, entry)):
                os.symlink(os.path.abspath(os.path.join(src, entry)),
                           os.path.join(path, entry))
        for entry, data in files.items():
            with open(os.path.join(path, entry), "wb") as f:
                f.write(data)
        self.add(file, expected, what)


def gguf_cases(c, valid):
    src = Gguf(valid)
    assert src.bytes() == valid, "the GGUF writer does not round-trip"
    assert all(t["dtype"] == DT_F32 for t in src.tensors), "needs an F32 GGUF"
    n_tensors = len(src.tensors)
    keys = [k[0] for k in src.kvs]
    ends = src.ends

    def copy():
        return Gguf(valid)

    # -- magic and version
    c.gguf("bad-magic", b"GGML" + valid[4:], "not a GGUF file",
           "magic GGML instead of GGUF")
    for v in (1, 4, 0xFFFFFFFF):
        g = copy()
        g.version = v
        c.gguf("version-%d" % v, g.bytes(), "unsupported GGUF version %d" % v,
               "GGUF version %d" % v)

    # -- truncated at every section boundary
    cuts = [("empty", 0, "not a GGUF file"),
            ("after-magic", 4, "truncated: the version"),
            ("after-version", 8, "truncated: the tensor count"),
            ("after-tensor-count", 16, "truncated: the metadata count"),
            ("after-counts", ends["counts"], "truncated")]
    for i, end in enumerate(ends["kv"]):
        cuts.append(("after-kv%d-%s" % (i, keys[i]), end, "truncated"))
    tok = keys.index("tokenizer.ggml.tokens")
    cuts += [("mid-kv-tokens",
              (ends["kv"][tok - 1] + ends["kv"][tok]) // 2, "truncated"),
             ("after-tensor-info0", ends["info"][0], "truncated"),
             ("mid-tensor-infos", ends["info"][n_tensors // 2] - 5,
              "truncated"),
             ("after-tensor-infos", ends["info"][-1], "truncated"),
             ("after-alignment-padding", src.data_offset, "truncated"),
             ("mid-tensor-data", (src.data_offset + len(valid)) // 2,
              "truncated"),
             ("last-byte-missing", len(valid) - 1, "truncated")]
    for name, cut, expected in cuts:
        c.gguf("truncated-" + name, valid[:cut], expected,
               "the first %d bytes only" % cut)

    # -- counts and lengths near 2^32 and 2^64
    for label, n in (("2p32", 1 << 32), ("2p64m1", (1 << 64) - 1)):
        c.gguf("n-tensors-" + label, src.bytes(n_tensors=n),
               "tensor count %d is more than" % n, "tensor count %d" % n)
        c.gguf("n-kv-" + label, src.bytes(n_kv=n),
               "metadata count %d is more than" % n, "metadata count %d" % n)
        data = bytearray(valid)
        struct.pack_into("<Q", data, ends["counts"], n)
        c.gguf("key-length-" + label, bytes(data),
               "string length %d of a metadata key" % n,
               "first key's length %d" % n)
        g = copy()
        c.gguf("string-length-" + label, g.bytes(raw_kv={
            "general.name": struct.pack("<IQ", T_STR, n) + b"stories"}),
            "string length %d of a string value" % n,
            "general.name's length %d" % n)
        raw = bytearray(struct.pack("<I", T_ARR) + enc_value(
            T_ARR, src.kv("tokenizer.ggml.tokens")))
        struct.pack_into("<Q", raw, 8, n)
        c.gguf("array-length-" + label, g.bytes(raw_kv={
            "tokenizer.ggml.tokens": bytes(raw)}),
            "array length %d (string elements)" % n,
            "tokenizer.ggml.tokens's length %d" % n)
    g = copy()
    g.tensor("blk.0.attn_q.weight")["ne"] = [1 << 32, 1 << 32]
    c.gguf("shape-overflow", g.bytes(), "has too many elements",
           "attn_q of 2^32 x 2^32 elements")
    g = copy()
    g.tensor("blk.0.attn_q.weight")["ne"] = [64, (1 << 64) - 1]
    c.gguf("dimension-2p64m1", g.bytes(),
           "dimension 1 is %d" % ((1 << 64) - 1),
           "attn_q with 2^64-1 rows")
    data = bytearray(valid)
    # the dimension count of the first tensor info: after its name
    first = ends["kv"][-1] + 8 + len(src.tensors[0]["name"])
    struct.pack_into("<I", data, first, 0xFFFFFFFF)
    c.gguf("n-dims-2p32m1", bytes(data), "has 4294967295 dimensions",
           "first tensor with 2^32-1 dimensions")

    # -- where the data is
    last = src.tensors[-1]["name"]
    c.gguf("offset-past-end", src.bytes(offsets={last: 1 << 40}),
           "runs past the end of the file", "%s at offset 2^40" % last)
    c.gguf("offset-wraps", src.bytes(offsets={last: (1 << 64) - 32}),
           "runs past the end of the file", "%s at offset 2^64-32" % last)
    q_off = src.offsets["blk.0.attn_q.weight"]
    c.gguf("overlap", src.bytes(offsets={"blk.0.attn_k.weight": q_off}),
           "overlap", "attn_k at attn_q's offset")
    c.gguf("misaligned", src.bytes(offsets={"blk.0.attn_q.weight": q_off + 4}),
           "is not a multiple of the alignment 32", "attn_q offset + 4")
    g = copy()
    g.set_kv("general.alignment", T_U32, 3)
    c.gguf("alignment-3", g.bytes(), "is not a power of two",
           "general.alignment 3")

    # -- dtypes
    g = copy()
    g.tensor("blk.0.attn_q.weight")["dtype"] = 99
    c.gguf("dtype-unknown", g.bytes(), "unknown tensor type 99",
           "attn_q of type 99")
    g = copy()
    g.tensor("blk.0.attn_q.weight")["dtype"] = DT_I32
    c.gguf("dtype-i32-matrix", g.bytes(), "has type I32",
           "attn_q of type I32 (a known type, not a weight type)")
    g = copy()
    g.tensor("output_norm.weight")["dtype"] = DT_I32
    c.gguf("dtype-i32-norm", g.bytes(), "has type I32",
           "output_norm of type I32")

    # -- shapes and hyper-parameters
    g = copy()
    t = g.tensor("blk.0.attn_q.weight")
    t["ne"] = [64, 32]
    t["data"] = t["data"][:64 * 32 * 4]
    c.gguf("attn-q-rows", g.bytes(), "tensor 'blk.0.attn_q.weight' has shape "
           "[64, 32], expected [64, 64]", "attn_q with 32 rows instead of 64")
    g = copy()
    g.tensors = [t for t in g.tensors if t["name"] != "blk.3.ffn_up.weight"]
    c.gguf("tensor-missing", g.bytes(), "tensor 'blk.3.ffn_up.weight' is "
           "missing", "no blk.3.ffn_up.weight")
    g = copy()
    g.set_kv("llama.block_count", T_U32, 6)
    c.gguf("block-count-6", g.bytes(), "tensor 'blk.5.attn_norm.weight' is "
           "missing", "block_count 6, tensors for 5")
    g = copy()
    g.set_kv("llama.block_count", T_U32, 1000000)
    c.gguf("block-count-1e6", g.bytes(), "1000000 layers, but the file holds "
           "only %d tensors" % n_tensors, "block_count 1000000")
    g = copy()
    g.set_kv("llama.block_count", T_U64, 1 << 32)
    c.gguf("block-count-2p32", g.bytes(), "llama.block_count is not a (small "
           "enough) unsigned integer", "block_count 2^32")
    g = copy()
    g.set_kv("llama.embedding_length", T_U32, 0)
    c.gguf("embedding-length-0", g.bytes(), "a hyper-parameter is 0",
           "embedding_length 0")
    g = copy()
    g.del_kv("llama.embedding_length")
    c.gguf("embedding-length-missing", g.bytes(),
           "metadata key llama.embedding_length is missing",
           "no llama.embedding_length")
    g = copy()
    g.set_kv("llama.embedding_length", T_STR, "64")
    c.gguf("embedding-length-string", g.bytes(),
           "metadata key llama.embedding_length is not a (small enough) "
           "unsigned integer", "embedding_length as a string")
    g = copy()
    g.set_kv("llama.attention.head_count", T_U32, 7)
    c.gguf("heads-not-multiple", g.bytes(), "7 attention heads are not a "
           "multiple of 4 key/value heads", "head_count 7, head_count_kv 4")
    g = copy()
    g.set_kv("llama.attention.head_count", T_U32, 6)
    g.set_kv("llama.attention.head_count_kv", T_U32, 6)
    g.del_kv("llama.attention.key_length")
    c.gguf("heads-not-dividing", g.bytes(), "hidden size 64 is not a "
           "multiple of 6 attention heads", "6 heads for 64 dimensions")
    g = copy()
    g.set_kv("general.architecture", T_STR, "gpt2")
    c.gguf("architecture-gpt2", g.bytes(), "architecture 'gpt2' is not "
           "supported", "general.architecture gpt2")
    g = copy()
    g.set_kv("llama.vocab_size", T_U32, 1000)
    c.gguf("vocab-size-1000", g.bytes(), "llama.vocab_size is 1000 but the "
           "embedding has 512 rows", "llama.vocab_size 1000")
    g = copy()
    g.kvs.append(list(g.kvs[2]))
    c.gguf("duplicate-key", g.bytes(), "duplicate metadata key '%s'" % keys[2],
           "%s twice" % keys[2])
    g = copy()
    c.gguf("kv-type-99",
           g.bytes(raw_kv={"general.name": struct.pack("<I", 99)}),
           "unknown metadata value type 99 for key 'general.name'",
           "general.name of value type 99")

    # -- the vocabulary
    drop = 10
    g = copy()
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.scores",
                "tokenizer.ggml.token_type"):
        et, items = g.kv(key)
        g.set_kv(key, T_ARR, (et, items[:-drop]))
    g.del_kv("tokenizer.ggml.merges")
    c.gguf("vocab-smaller", g.bytes(), "vocabulary has 502 tokens but the "
           "embedding has 512 rows", "the last 10 tokens dropped")
    g = copy()
    et, items = g.kv("tokenizer.ggml.tokens")
    g.set_kv("tokenizer.ggml.tokens", T_ARR, (et, items[:-drop]))
    c.gguf("scores-longer", g.bytes(), "tokenizer.ggml.scores has 512 entries "
           "but there are 502 tokens", "10 tokens dropped, not their scores")
    g = copy()
    g.set_kv("tokenizer.ggml.model", T_STR, "bert")
    c.gguf("tokenizer-bert", g.bytes(), "tokenizer model 'bert' is not "
           "supported", "tokenizer.ggml.model bert")
    g = copy()
    g.set_kv("tokenizer.ggml.bos_token_id", T_U32, 9999)
    c.gguf("bos-out-of-range", g.bytes(), "bos_token_id 9999 out of range",
           "bos_token_id 9999")
    g = copy()
    g.del_kv("tokenizer.ggml.tokens")
    c.gguf("tokens-missing", g.bytes(), "no tokenizer.ggml.tokens array",
           "no tokenizer.ggml.tokens")

    # -- NaN and Inf in the weights
    nan_cases = [
        ("nan-attn-q", "blk.0.attn_q.weight", 1234, NAN,
         "holds a NaN at element 1234"),
        ("nan-negative", "blk.2.ffn_gate.weight", 77, NAN_NEG,
         "holds a NaN at element 77"),
        ("nan-signalling", "blk.1.attn_v.weight", 5, NAN_SIGNALLING,
         "holds a NaN at element 5"),
        ("inf-embedding", "token_embd.weight", 7, INF,
         "holds +Inf at element 7"),
        ("ninf-output-norm", "output_norm.weight", 0, NINF,
         "holds -Inf at element 0"),
        ("nan-last-element", "blk.4.ffn_down.weight", 172 * 64 - 1, NAN,
         "holds a NaN at element %d" % (172 * 64 - 1)),
    ]
    for name, tensor, index, bits, expected in nan_cases:
        g = copy()
        t = g.tensor(tensor)
        t["data"] = with_f32_bits(t, index, bits)
        c.gguf(name, g.bytes(), "tensor '%s' %s" % (tensor, expected),
               "%s[%d] = %s" % (tensor, index, BITS_NAME[bits]))
    # the same in the other weight types the CPU backend computes with
    for label, dtype, convert, index, expected in (
            ("f16", DT_F16, to_f16, 1234, "holds a NaN at element 1234"),
            ("bf16", DT_BF16, to_bf16, 1234, "holds a NaN at element 1234"),
            ("q8-0", DT_Q8_0, to_q8_0, 1234, "holds a NaN at element 1216"),
            ("q4-0", DT_Q4_0, to_q4_0, 1234, "holds a NaN at element 1216")):
        g = copy()
        t = g.tensor("blk.0.attn_q.weight")
        values = list(f32_values(t))
        t["dtype"] = dtype
        if dtype in (DT_F16, DT_BF16):
            values[index] = float("nan")
            t["data"] = convert(values)
        else:
            # a NaN block scale: every weight of the block is NaN
            data = bytearray(convert(values))
            block_bytes = DT_LAYOUT[dtype][0]
            data[index // 32 * block_bytes:index // 32 * block_bytes + 2] = \
                struct.pack("<H", 0x7E00)
            t["data"] = bytes(data)
        c.gguf("nan-%s" % label, g.bytes(),
               "tensor 'blk.0.attn_q.weight' %s" % expected,
               "a %s attn_q with a NaN %s" % (label.upper().replace("-", "_"),
                                            "weight" if dtype in
                                            (DT_F16, DT_BF16) else
                                            "block scale"))
    g = copy()
    t = g.tensor("blk.0.ffn_up.weight")
    values = list(f32_values(t))
    t["dtype"] = DT_Q8_0
    data = bytearray(to_q8_0(values))
    data[34 * 3:34 * 3 + 2] = struct.pack("<H", 0x7C00)
    t["data"] = bytes(data)
    c.gguf("inf-q8-0-scale", g.bytes(), "tensor 'blk.0.ffn_up.weight' holds "
           "+Inf at element 96", "a Q8_0 ffn_up with an Inf block scale")


# --- Hugging Face folders --------------------------------------------------

def safetensors_parse(data):
    n = struct.unpack_from("<Q", data)[0]
    return json.loads(data[8:8 + n]), data[8 + n:]


def safetensors_bytes(header, area):
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + area


def hf_cases(c, src):
    def read(name):
        with open(os.path.join(src, name), "rb") as f:
            return f.read()

    config = json.loads(read("config.json"))
    st = read("model.safetensors")
    header, area = safetensors_parse(st)
    tok = json.loads(read("tokenizer.json"))

    def cfg(**changes):
        d = dict(config)
        for k, v in changes.items():
            if v is KeyError:
                d.pop(k, None)
            else:
                d[k] = v
        return {"config.json": json.dumps(d, indent=2).encode()}

    # -- config.json
    c.folder("config-not-json", src, "config.json: not valid JSON",
             "config.json cut in the middle",
             files={"config.json": read("config.json")[:100]})
    c.folder("config-empty", src, "config.json: not a JSON object",
             "config.json empty", files={"config.json": b""})
    c.folder("config-array", src, "config.json: not a JSON object",
             "config.json a JSON array", files={"config.json": b"[64, 5]"})
    c.folder("config-missing", src,
             "not a model folder: it has no config.json",
             "no config.json", drop=("config.json",))
    c.folder("hidden-size-missing", src, "\"hidden_size\" is missing",
             "no hidden_size", files=cfg(hidden_size=KeyError))
    c.folder("hidden-size-string", src, "\"hidden_size\" is not a "
             "non-negative integer", "hidden_size \"64\"",
             files=cfg(hidden_size="64"))
    c.folder("hidden-size-negative", src, "\"hidden_size\" is -64, not "
             "between 0 and 2147483647", "hidden_size -64",
             files=cfg(hidden_size=-64))
    c.folder("hidden-size-float", src, "\"hidden_size\" is not a "
             "non-negative integer", "hidden_size 64.5",
             files=cfg(hidden_size=64.5))
    c.folder("heads-not-dividing", src, "hidden size 64 is not a multiple of "
             "6 attention heads", "6 heads for 64 dimensions",
             files=cfg(num_attention_heads=6, num_key_value_heads=6,
                       head_dim=KeyError))
    c.folder("kv-heads-not-dividing", src, "8 attention heads are not a "
             "multiple of 3 key/value heads", "num_key_value_heads 3",
             files=cfg(num_key_value_heads=3))
    c.folder("heads-zero", src, "a hyper-parameter is 0",
             "num_attention_heads 0", files=cfg(num_attention_heads=0))
    c.folder("layers-huge", src, "2147483647 layers, but the file holds only",
             "num_hidden_layers 2^31-1",
             files=cfg(num_hidden_layers=2 ** 31 - 1))
    c.folder("layers-2p32", src, "\"num_hidden_layers\" is 4294967296, not "
             "between 0 and 2147483647", "num_hidden_layers 2^32",
             files=cfg(num_hidden_layers=2 ** 32))
    c.folder("intermediate-size", src, "tensor 'model.layers.0.mlp.gate_proj."
             "weight' has shape [64, 172], expected [64, 100]",
             "intermediate_size 100", files=cfg(intermediate_size=100))
    c.folder("vocab-size", src, "config.json vocab_size is 1000 but the "
             "embedding has 512 rows", "vocab_size 1000",
             files=cfg(vocab_size=1000))
    c.folder("model-type", src, "model_type 'gpt2' is not supported",
             "model_type gpt2", files=cfg(model_type="gpt2"))
    c.folder("eps-string", src, "\"rms_norm_eps\" is not a number",
             "rms_norm_eps \"small\"", files=cfg(rms_norm_eps="small"))

    # -- model.safetensors
    hlen = struct.unpack_from("<Q", st)[0]
    c.folder("st-truncated-data", src, "lie outside the data area (517632 "
             "bytes): the file is truncated",
             "model.safetensors cut in the data",
             files={"model.safetensors": st[:len(st) // 2]})
    c.folder("st-truncated-header", src, "does not fit the file (2428 bytes): "
             "the file is truncated",
             "model.safetensors cut in the header",
             files={"model.safetensors": st[:hlen // 2]})
    c.folder("st-truncated-length", src, "is too short for a safetensors file",
             "model.safetensors of 5 bytes",
             files={"model.safetensors": st[:5]})
    for label, n in (("2p32", 1 << 32), ("2p64m1", (1 << 64) - 1)):
        c.folder("st-header-length-" + label, src,
                 "header length %d does not fit the file" % n,
                 "safetensors header length %d" % n,
                 files={"model.safetensors": struct.pack("<Q", n) + st[8:]})
    c.folder("st-header-not-json", src, "the JSON header does not parse",
             "safetensors header length 8 bytes short",
             files={"model.safetensors": struct.pack("<Q", hlen - 8) + st[8:]})
    q = "model.layers.0.self_attn.q_proj.weight"
    h = json.loads(json.dumps(header))
    b, e = h[q]["data_offsets"]
    h[q]["data_offsets"] = [len(area) + b, len(area) + e]
    c.folder("st-offsets-past-end", src, "tensor '%s' data_offsets [%d, %d] "
             "lie outside the data area" % (q, len(area) + b, len(area) + e),
             "q_proj's data_offsets past the end",
             files={"model.safetensors": safetensors_bytes(h, area)})
    h = json.loads(json.dumps(header))
    k = "model.layers.0.self_attn.k_proj.weight"
    h[k]["data_offsets"] = [b, b + 8192]
    c.folder("st-overlap", src, "overlap", "k_proj inside q_proj's data",
             files={"model.safetensors": safetensors_bytes(h, area)})
    h = json.loads(json.dumps(header))
    h[q]["dtype"] = "F8_E4M3"
    c.folder("st-dtype-unknown", src, "tensor '%s' has dtype F8_E4M3" % q,
             "q_proj of dtype F8_E4M3",
             files={"model.safetensors": safetensors_bytes(h, area)})
    h = json.loads(json.dumps(header))
    h[q]["shape"] = [64, 65]
    c.folder("st-shape-size", src, "but its shape and dtype F32 need 4160 "
             "elements", "q_proj shape [64, 65] over 64 x 64 floats",
             files={"model.safetensors": safetensors_bytes(h, area)})
    h = json.loads(json.dumps(header))
    h[q]["shape"] = [32, 128]
    c.folder("st-shape-config", src, "tensor '%s' has shape [128, 32], "
             "expected [64, 64]" % q, "q_proj of shape [32, 128]",
             files={"model.safetensors": safetensors_bytes(h, area)})
    h = json.loads(json.dumps(header))
    h["model.layers.2.self_attn.q_proj.weightX"] = h.pop(
        "model.layers.2.self_attn.q_proj.weight")
    c.folder("st-tensor-missing", src, "tensor 'model.layers.2.self_attn."
             "q_proj.weight' is missing", "layer 2's q_proj renamed",
             files={"model.safetensors": safetensors_bytes(h, area)})
    c.folder("st-missing", src, "no *.safetensors files in the folder",
             "no model.safetensors", drop=("model.safetensors",))
    for label, tensor, index, bits, expected in (
            ("nan", q, 1234, NAN, "holds a NaN at element 1234"),
            ("inf", "model.embed_tokens.weight", 99, NINF,
             "holds -Inf at element 99"),
            ("nan-norm", "model.norm.weight", 63, NAN,
             "holds a NaN at element 63")):
        a = bytearray(area)
        struct.pack_into("<I", a,
                         header[tensor]["data_offsets"][0] + 4 * index, bits)
        c.folder("st-" + label, src, "tensor '%s' %s" % (tensor, expected),
                 "%s[%d] = %s" % (tensor, index, BITS_NAME[bits]),
                 files={"model.safetensors": safetensors_bytes(header,
                                                               bytes(a))})

    # -- tokenizer.json
    c.folder("tokenizer-missing", src, "tokenizer.json: no such file",
             "no tokenizer.json",
             drop=("tokenizer.json",))
    c.folder("tokenizer-not-json", src, "not valid JSON",
             "tokenizer.json cut in the middle",
             files={"tokenizer.json": read("tokenizer.json")[:5000]})
    t = json.loads(json.dumps(tok))
    del t["model"]
    c.folder("tokenizer-no-model", src, "no \"model\" object",
             "tokenizer.json without its model",
             files={"tokenizer.json": json.dumps(t).encode()})
    t = json.loads(json.dumps(tok))
    vocab = t["model"]["vocab"]
    for piece in [p for p, i in vocab.items() if i >= 502]:
        del vocab[piece]
    t["model"]["merges"] = []
    c.folder("tokenizer-smaller", src, "vocabulary has 502 tokens but the "
             "embedding has 512 rows", "the last 10 tokens dropped",
             files={"tokenizer.json": json.dumps(t).encode()})


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    valid_path, out_dir = sys.argv[1:]
    models = os.environ.get("LLMASOS_MODELS", "../shared/models")
    src = os.path.join(models, "stories260K")
    if not os.path.isfile(os.path.join(src, "config.json")):
        sys.exit("MODEL MISSING: %s not found; set LLMASOS_MODELS to the "
                 "folder holding stories260K/" % src)
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    with open(valid_path, "rb") as f:
        valid = f.read()
    c = Corpus(out_dir)
    gguf_cases(c, valid)
    hf_cases(c, src)
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(c.entries, f, indent=1)
        f.write("\n")
    print("%d broken models in %s" % (len(c.entries), out_dir))


if __name__ == "__main__":
    main()
