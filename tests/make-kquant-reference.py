#!/usr/bin/env python3
# LLMasOS - reference values for tests/test-kquants.c.
#
# Random (seeded) blocks of each quantized type that the CPU backend reads,
# dequantized by gguf-py (`pip install gguf`: gguf.quants.dequantize, the
# numpy twins of ggml's reference dequantize_row_*), written to
# tests/data/kquant-reference.bin. The test compares its own dequantization
# of the same bytes with these floats, so it needs no Python at run time.
#
#   python3 tests/make-kquant-reference.py [OUT]
#
# File layout, little-endian:
#   "LLMKQREF" (8 bytes), u32 version = 1, u32 n_records
#   per record: u32 ggml type, u32 n_blocks, u32 n_bytes, u32 n_floats,
#               n_bytes bytes of blocks, n_floats f32 (the dequantized row)
#
# Q8_K has no numpy implementation in gguf-py (GGML only uses it for
# activations); its reference is computed here as f32 d * int8 q, which is
# the whole of ggml's dequantize_row_q8_K.
#
# SPDX-License-Identifier: LGPL-2.1-or-later

import struct
import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize

SEED = 20250301
N_ELEMS = 2048          # elements per type: 8 k-quant blocks, 64 small ones

# Byte offsets of the f16 scales inside each block (others are f32 or none).
HALF_OFFSETS = {
    T.Q8_0: [0],
    T.Q4_0: [0],
    T.Q5_0: [0],
    T.Q2_K: [80, 82],       # d, dmin after scales[16] and qs[64]
    T.Q3_K: [108],          # d after hmask[32], qs[64], scales[12]
    T.Q4_K: [0, 2],         # d, dmin
    T.Q5_K: [0, 2],
    T.Q6_K: [208],          # d after ql[128], qh[64], scales[16]
}
TYPES = [T.Q8_0, T.Q4_0, T.Q5_0, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K,
         T.Q8_K]


def random_half(rng, n):
    """Finite halves of either sign over several decades, as scales are."""
    mag = 10.0 ** rng.uniform(-5.0, 0.5, n)
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    return (sign * mag).astype(np.float16)


def make_blocks(rng, qtype):
    block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
    nb = N_ELEMS // block_elems
    blocks = rng.integers(0, 256, size=(nb, block_bytes), dtype=np.uint8)
    if qtype == T.Q8_K:
        d = (10.0 ** rng.uniform(-6.0, 0.0, nb)).astype(np.float32)
        d[0] = 0.0
        blocks[:, 0:4] = d.view(np.uint8).reshape(nb, 4)
        # bsums as GGML fills them: the sum of each 16 quants
        q = blocks[:, 4:260].copy().view(np.int8).astype(np.int16)
        bsums = q.reshape(nb, 16, 16).sum(axis=-1).astype("<i2")
        blocks[:, 260:292] = bsums.view(np.uint8).reshape(nb, 32)
        return blocks
    for off in HALF_OFFSETS[qtype]:
        h = random_half(rng, nb)
        # edge cases in the first blocks: zero, a subnormal, a large scale
        h[0] = 0.0
        h[1] = np.float16(3e-6) if off == HALF_OFFSETS[qtype][0] else h[1]
        h[2] = np.float16(-1000.0)
        blocks[:, off:off + 2] = h.view(np.uint8).reshape(nb, 2)
    return blocks


def reference(blocks, qtype):
    if qtype == T.Q8_K:
        d = blocks[:, 0:4].copy().view(np.float32)           # (nb, 1)
        q = blocks[:, 4:260].copy().view(np.int8).astype(np.float32)
        return (d * q).astype(np.float32).reshape(-1)
    return dequantize(blocks.reshape(-1), qtype).astype(np.float32).reshape(-1)


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else \
        Path(__file__).resolve().parent / "data" / "kquant-reference.bin"
    rng = np.random.default_rng(SEED)
    records = []
    for qtype in TYPES:
        blocks = make_blocks(rng, qtype)
        ref = reference(blocks, qtype)
        assert np.all(np.isfinite(ref)), qtype.name
        records.append((qtype, blocks, ref))

    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:
        f.write(b"LLMKQREF")
        f.write(struct.pack("<II", 1, len(records)))
        for qtype, blocks, ref in records:
            raw = blocks.tobytes()
            f.write(struct.pack("<IIII", int(qtype), blocks.shape[0], len(raw),
                                ref.size))
            f.write(raw)
            f.write(ref.astype("<f4").tobytes())
    print(f"wrote {out} ({out.stat().st_size} bytes): "
          + ", ".join(q.name for q, _, _ in records))


if __name__ == "__main__":
    main()
