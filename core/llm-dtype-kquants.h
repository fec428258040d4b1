/* LLMasOS - GGML's k-quant block formats (Q2_K .. Q6_K, Q8_K) and Q5_0.
 *
 * k-quants pack 256 weights in a "super-block" made of 16 or 8 sub-blocks,
 * each with its own small integer scale (and minimum), themselves scaled by
 * one or two half floats. Q5_0 is not a k-quant: it is in this file because
 * llama.cpp's k-quant mixes fall back to it (and to Q8_0) for matrices whose
 * rows are not a multiple of 256 long; the default model, Gemma 3 270M with
 * 640-wide rows, stores most of its weights that way.
 *
 * The layouts are GGML's (ggml-common.h), byte for byte; the static asserts
 * pin them. The functions are reached through llm-dtype.h's dispatch
 * (llm_dequantize_row, llm_dot_row); call those.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include "llm-dtype.h"

G_BEGIN_DECLS

#define LLM_QK_K 256            /* weights per k-quant super-block */
#define LLM_K_SCALE_SIZE 12     /* bytes of Q4_K / Q5_K's packed scales */
#define LLM_QK5_0 32

/* Q5_0: 32 weights; w = d * (q - 16), q 5 bits. Byte j of @qs holds the low
 * 4 bits of weight j (low nibble) and of weight j + 16 (high nibble); bit j
 * of @qh (little-endian) is the fifth bit of weight j. */
typedef struct {
  guint16 d;                    /* scale, IEEE half */
  guint8 qh[4];                 /* fifth bits, 32 x 1 bit */
  guint8 qs[LLM_QK5_0 / 2];     /* low nibbles */
} LlmBlockQ5_0;
G_STATIC_ASSERT (sizeof (LlmBlockQ5_0) == 2 + 4 + LLM_QK5_0 / 2);

/* Q2_K: 16 sub-blocks of 16; w = d * sc * q - dmin * m, q 2 bits, sc and m
 * 4 bits each. Weight 128 h + 32 j + l (l < 32) is bits 2j..2j+1 of
 * qs[32 h + l]; its sub-block is (128 h + 32 j + l) / 16. */
typedef struct {
  guint8 scales[LLM_QK_K / 16]; /* per sub-block: sc low nibble, m high */
  guint8 qs[LLM_QK_K / 4];      /* quants, 4 per byte */
  guint16 d;                    /* super-block scale of the sc, half */
  guint16 dmin;                 /* super-block scale of the m, half */
} LlmBlockQ2_K;
G_STATIC_ASSERT (sizeof (LlmBlockQ2_K) == 2 * 2 + LLM_QK_K / 16
    + LLM_QK_K / 4);

/* Q3_K: 16 sub-blocks of 16; w = d * (sc - 32) * (q - 4 * !hbit), q 2 bits
 * placed as in Q2_K, hbit = bit 4 h + j of hmask[l]. The 6-bit sc of
 * sub-block s: low 4 bits in the low (s < 8) or high (s >= 8) nibble of
 * scales[s % 8], high 2 bits at bit 2 (s / 4) of scales[8 + s % 4]. */
typedef struct {
  guint8 hmask[LLM_QK_K / 8];   /* high bits of the quants, set = no offset */
  guint8 qs[LLM_QK_K / 4];      /* low 2 bits of the quants */
  guint8 scales[12];            /* 16 x 6-bit sub-block scales, packed */
  guint16 d;                    /* super-block scale, half */
} LlmBlockQ3_K;
G_STATIC_ASSERT (sizeof (LlmBlockQ3_K) == 2 + LLM_QK_K / 4 + LLM_QK_K / 8
    + 12);

/* Q4_K: 8 sub-blocks of 32; w = d * sc * q - dmin * m, q 4 bits, sc and m
 * 6 bits. Each 32 bytes of @qs hold two sub-blocks: 2k in the low nibbles,
 * 2k + 1 in the high ones. Sub-block j < 4: sc = scales[j] & 63,
 * m = scales[j + 4] & 63; j >= 4: the low 4 bits come from scales[j + 4]
 * (sc low nibble, m high nibble) and the high 2 bits from the top bits of
 * scales[j - 4] (sc) and scales[j] (m). */
typedef struct {
  guint16 d;                    /* super-block scale of the sc, half */
  guint16 dmin;                 /* super-block scale of the m, half */
  guint8 scales[LLM_K_SCALE_SIZE];      /* 8 x (6-bit sc, 6-bit m) */
  guint8 qs[LLM_QK_K / 2];      /* quants, 2 per byte */
} LlmBlockQ4_K;
G_STATIC_ASSERT (sizeof (LlmBlockQ4_K) == 2 * 2 + LLM_K_SCALE_SIZE
    + LLM_QK_K / 2);

/* Q5_K: Q4_K plus a fifth bit per weight: bit k of qh[l] for weight
 * 32 k + l (l < 32). */
typedef struct {
  guint16 d;                    /* super-block scale of the sc, half */
  guint16 dmin;                 /* super-block scale of the m, half */
  guint8 scales[LLM_K_SCALE_SIZE];      /* as in Q4_K */
  guint8 qh[LLM_QK_K / 8];      /* fifth bits */
  guint8 qs[LLM_QK_K / 2];      /* low 4 bits, as in Q4_K */
} LlmBlockQ5_K;
G_STATIC_ASSERT (sizeof (LlmBlockQ5_K) == 2 * 2 + LLM_K_SCALE_SIZE
    + LLM_QK_K / 2 + LLM_QK_K / 8);

/* Q6_K: 16 sub-blocks of 16; w = d * sc * (q - 32), q 6 bits, sc int8.
 * For each half of 128 weights (ql += 64, qh += 32) and l < 32, weights
 * l, l + 32, l + 64, l + 96 take the low nibble of ql[l], low of ql[l + 32],
 * high of ql[l], high of ql[l + 32], and bits 0-1, 2-3, 4-5, 6-7 of qh[l]. */
typedef struct {
  guint8 ql[LLM_QK_K / 2];      /* low 4 bits of the quants */
  guint8 qh[LLM_QK_K / 4];      /* high 2 bits of the quants */
  gint8 scales[LLM_QK_K / 16];  /* sub-block scales */
  guint16 d;                    /* super-block scale, half */
} LlmBlockQ6_K;
G_STATIC_ASSERT (sizeof (LlmBlockQ6_K) == 2 + LLM_QK_K / 16
    + 3 * LLM_QK_K / 4);

/* Q8_K: 256 weights; w = d * q. GGML uses it for the activations of
 * k-quant dot products, not for stored weights. */
typedef struct {
  float d;                      /* scale, f32 */
  gint8 qs[LLM_QK_K];           /* quants */
  gint16 bsums[LLM_QK_K / 16];  /* sum of each 16 quants */
} LlmBlockQ8_K;
G_STATIC_ASSERT (sizeof (LlmBlockQ8_K) == 4 + LLM_QK_K + 2 * LLM_QK_K / 16);

/* TRUE for the types this file handles. */
gboolean llm_kquants_handles (LlmDType t);
/* llm_dequantize_row and llm_dot_row for those types; @n is a multiple of
 * the block size. Dequantization gives the same floats as ggml's reference
 * dequantize_row_* and gguf-py's numpy code, bit for bit. */
void llm_kquants_dequantize_row (LlmDType t, const void *src, float *dst,
    gsize n);
float llm_kquants_dot_row (LlmDType t, const void *row, const float *x,
    gsize n);

G_END_DECLS
