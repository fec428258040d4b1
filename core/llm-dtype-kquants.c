/* LLMasOS - dequantization and dot products for GGML's k-quants and Q5_0.
 *
 * The formats are described in llm-dtype-kquants.h. Dequantization follows
 * the definition (ggml-quants.c's reference dequantize_row_*): the sub-block
 * factors d * sc and dmin * m first, then factor * q (- min factor). gguf-py
 * computes the same in numpy, and the two agree bit for bit. Every product
 * here is exact in f32 (a half's 11 significant bits times at most 7 bits of
 * sub-block scale times at most 6 bits of quant: 24 bits), so the only
 * rounding is the final subtraction, and a compiler that fuses
 * "factor * q - min" into an FMA (gnu11 on -march=native or aarch64) gets
 * the same floats. Q8_K's f32 d times q is one rounding either way.
 *
 * The dot products never store the dequantized row: each lane forms the
 * weight in a register from the packed bits, the same float dequantization
 * gives (Q8_K aside: it scales per block), and multiplies it by x. The
 * products go to LANES independent partial sums, added up once per row:
 * without -ffast-math gcc will not reorder one float accumulator, but it
 * maps LANES of them onto SIMD registers. (Tried first: summing q * x, and x,
 * per sub-block and applying the scales afterwards; 1.3-1.9 times slower
 * with gcc 12 on x86-64, which spilled the extra partial sums.)
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-dtype-kquants.h"

#include <string.h>

#define LANES 16

G_STATIC_ASSERT (LLM_QK_K % (2 * LANES) == 0);

gboolean
llm_kquants_handles (LlmDType t)
{
  switch (t) {
    case LLM_DTYPE_Q5_0:
    case LLM_DTYPE_Q2_K:
    case LLM_DTYPE_Q3_K:
    case LLM_DTYPE_Q4_K:
    case LLM_DTYPE_Q5_K:
    case LLM_DTYPE_Q6_K:
    case LLM_DTYPE_Q8_K:
      return TRUE;
    default:
      return FALSE;
  }
}

/* --- packed scales -------------------------------------------------------- */

/* The eight 6-bit (scale, min) pairs of Q4_K and Q5_K. */
static inline void
unpack_scales_min_k4 (const guint8 * s, guint8 * sc, guint8 * mn)
{
  for (guint j = 0; j < 4; j++) {
    sc[j] = s[j] & 63;
    mn[j] = s[j + 4] & 63;
    sc[j + 4] = (s[j + 8] & 0x0f) | ((s[j] >> 6) << 4);
    mn[j + 4] = (s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4);
  }
}

/* The sixteen 6-bit scales of Q3_K, less their offset of 32. */
static inline void
unpack_scales_q3_K (const guint8 * s, gint * sc)
{
  for (guint j = 0; j < 16; j++) {
    const guint lo = j < 8 ? s[j] & 0x0f : s[j - 8] >> 4;
    const guint hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;

    sc[j] = (gint) (lo | (hi << 4)) - 32;
  }
}

static inline float
sum_lanes (const float *acc)
{
  float s = 0.0f;

  for (guint k = 0; k < LANES; k++)
    s += acc[k];
  return s;
}

/* --- dequantization ------------------------------------------------------ */

/* Bit k of a 16-bit mask, per lane: SSE2 has no per-lane variable shift. */
static const guint32 lane_bit[16] = {
  1u << 0, 1u << 1, 1u << 2, 1u << 3, 1u << 4, 1u << 5, 1u << 6, 1u << 7,
  1u << 8, 1u << 9, 1u << 10, 1u << 11, 1u << 12, 1u << 13, 1u << 14,
  1u << 15
};

static void
dequantize_row_q5_0 (const LlmBlockQ5_0 * restrict b, float *restrict y,
    gsize nb)
{
  for (gsize i = 0; i < nb; i++, y += LLM_QK5_0) {
    const float d = llm_f16_to_f32 (b[i].d);
    guint32 qh;

    memcpy (&qh, b[i].qh, sizeof qh);
    for (guint j = 0; j < LLM_QK5_0 / 2; j++) {
      const gint q0 = (b[i].qs[j] & 0x0f) - ((qh & lane_bit[j]) ? 0 : 16);
      const gint q1 = (b[i].qs[j] >> 4) - (((qh >> 16) & lane_bit[j]) ? 0 : 16);

      y[j] = q0 * d;
      y[j + LLM_QK5_0 / 2] = q1 * d;
    }
  }
}

static void
dequantize_row_q2_K (const LlmBlockQ2_K * restrict b, float *restrict y,
    gsize nb)
{
  for (gsize i = 0; i < nb; i++) {
    const float d = llm_f16_to_f32 (b[i].d);
    const float dmin = llm_f16_to_f32 (b[i].dmin);

    for (guint h = 0; h < 2; h++) {
      const guint8 *q = b[i].qs + 32 * h;

      for (guint j = 0; j < 4; j++) {
        for (guint half = 0; half < 2; half++, y += 16) {
          const guint8 sc = b[i].scales[8 * h + 2 * j + half];
          const float dl = d * (sc & 0x0f);
          const float ml = dmin * (sc >> 4);

          for (guint l = 0; l < 16; l++)
            y[l] = dl * ((q[16 * half + l] >> (2 * j)) & 3) - ml;
        }
      }
    }
  }
}

static void
dequantize_row_q3_K (const LlmBlockQ3_K * restrict b, float *restrict y,
    gsize nb)
{
  for (gsize i = 0; i < nb; i++) {
    const float d = llm_f16_to_f32 (b[i].d);
    gint sc[16];

    unpack_scales_q3_K (b[i].scales, sc);
    for (guint h = 0; h < 2; h++) {
      const guint8 *q = b[i].qs + 32 * h;

      for (guint j = 0; j < 4; j++) {
        const guint shift = 4 * h + j;  /* of the high bit in hmask */

        for (guint half = 0; half < 2; half++, y += 16) {
          const float dl = d * sc[8 * h + 2 * j + half];

          for (guint l = 0; l < 16; l++) {
            const guint m = 16 * half + l;
            const gint lo = (q[m] >> (2 * j)) & 3;
            const gint hi = (b[i].hmask[m] >> shift) & 1;

            y[l] = dl * (lo - 4 + 4 * hi);
          }
        }
      }
    }
  }
}

static void
dequantize_row_q4_K (const LlmBlockQ4_K * restrict b, float *restrict y,
    gsize nb)
{
  for (gsize i = 0; i < nb; i++) {
    const float d = llm_f16_to_f32 (b[i].d);
    const float dmin = llm_f16_to_f32 (b[i].dmin);
    guint8 sc[8], mn[8];

    unpack_scales_min_k4 (b[i].scales, sc, mn);
    for (guint j = 0; j < 4; j++, y += 64) {
      const guint8 *q = b[i].qs + 32 * j;
      const float d1 = d * sc[2 * j], m1 = dmin * mn[2 * j];
      const float d2 = d * sc[2 * j + 1], m2 = dmin * mn[2 * j + 1];

      for (guint l = 0; l < 32; l++) {
        y[l] = d1 * (q[l] & 0x0f) - m1;
        y[l + 32] = d2 * (q[l] >> 4) - m2;
      }
    }
  }
}

static void
dequantize_row_q5_K (const LlmBlockQ5_K * restrict b, float *restrict y,
    gsize nb)
{
  for (gsize i = 0; i < nb; i++) {
    const float d = llm_f16_to_f32 (b[i].d);
    const float dmin = llm_f16_to_f32 (b[i].dmin);
    guint8 sc[8], mn[8];

    unpack_scales_min_k4 (b[i].scales, sc, mn);
    for (guint j = 0; j < 4; j++, y += 64) {
      const guint8 *q = b[i].qs + 32 * j;
      const float d1 = d * sc[2 * j], m1 = dmin * mn[2 * j];
      const float d2 = d * sc[2 * j + 1], m2 = dmin * mn[2 * j + 1];

      for (guint l = 0; l < 32; l++) {
        const guint h1 = (b[i].qh[l] >> (2 * j)) & 1;
        const guint h2 = (b[i].qh[l] >> (2 * j + 1)) & 1;

        y[l] = d1 * ((q[l] & 0x0f) | (h1 << 4)) - m1;
        y[l + 32] = d2 * ((q[l] >> 4) | (h2 << 4)) - m2;
      }
    }
  }
}

static void
dequantize_row_q6_K (const LlmBlockQ6_K * restrict b, float *restrict y,
    gsize nb)
{
  for (gsize i = 0; i < nb; i++) {
    const float d = llm_f16_to_f32 (b[i].d);

    for (guint h = 0; h < 2; h++, y += 128) {
      const guint8 *ql = b[i].ql + 64 * h;
      const guint8 *qh = b[i].qh + 32 * h;
      const gint8 *sc = b[i].scales + 8 * h;

      for (guint s = 0; s < 2; s++) {
        const float d1 = d * sc[s], d2 = d * sc[s + 2];
        const float d3 = d * sc[s + 4], d4 = d * sc[s + 6];

        for (guint k = 0; k < 16; k++) {
          const guint l = 16 * s + k;
          const gint q1 = ((ql[l] & 0x0f) | ((qh[l] & 0x03) << 4)) - 32;
          const gint q2 = ((ql[l + 32] & 0x0f) | ((qh[l] & 0x0c) << 2)) - 32;
          const gint q3 = ((ql[l] >> 4) | (qh[l] & 0x30)) - 32;
          const gint q4 = ((ql[l + 32] >> 4) | ((qh[l] & 0xc0) >> 2)) - 32;

          y[l] = d1 * q1;
          y[l + 32] = d2 * q2;
          y[l + 64] = d3 * q3;
          y[l + 96] = d4 * q4;
        }
      }
    }
  }
}

static void
dequantize_row_q8_K (const LlmBlockQ8_K * restrict b, float *restrict y,
    gsize nb)
{
  for (gsize i = 0; i < nb; i++, y += LLM_QK_K)
    for (guint j = 0; j < LLM_QK_K; j++)
      y[j] = b[i].d * b[i].qs[j];
}

void
llm_kquants_dequantize_row (LlmDType t, const void *src, float *dst, gsize n)
{
  g_return_if_fail (llm_kquants_handles (t));
  g_return_if_fail (n % llm_dtype_block_elems (t) == 0);

  switch (t) {
    case LLM_DTYPE_Q5_0:
      dequantize_row_q5_0 (src, dst, n / LLM_QK5_0);
      break;
    case LLM_DTYPE_Q2_K:
      dequantize_row_q2_K (src, dst, n / LLM_QK_K);
      break;
    case LLM_DTYPE_Q3_K:
      dequantize_row_q3_K (src, dst, n / LLM_QK_K);
      break;
    case LLM_DTYPE_Q4_K:
      dequantize_row_q4_K (src, dst, n / LLM_QK_K);
      break;
    case LLM_DTYPE_Q5_K:
      dequantize_row_q5_K (src, dst, n / LLM_QK_K);
      break;
    case LLM_DTYPE_Q6_K:
      dequantize_row_q6_K (src, dst, n / LLM_QK_K);
      break;
    case LLM_DTYPE_Q8_K:
      dequantize_row_q8_K (src, dst, n / LLM_QK_K);
      break;
    default:
      g_assert_not_reached ();
  }
}

/* --- dot products -----------------------------------------------------------
 *
 * Kept out of line: inlined into the dispatch switch, dot_q2_K's loops came
 * out scalar and ran 2.8 times slower (gcc 12). */

G_GNUC_NO_INLINE static float
dot_q5_0 (const LlmBlockQ5_0 * b, const float *x, gsize nb)
{
  float acc[LANES] = { 0 };

  G_STATIC_ASSERT (LLM_QK5_0 / 2 == LANES);
  for (gsize i = 0; i < nb; i++, x += LLM_QK5_0) {
    const float d = llm_f16_to_f32 (b[i].d);
    guint32 qh;

    memcpy (&qh, b[i].qh, sizeof qh);
    for (guint k = 0; k < LANES; k++) {
      const gint q0 = (b[i].qs[k] & 0x0f) - ((qh & lane_bit[k]) ? 0 : 16);
      const gint q1 = (b[i].qs[k] >> 4) - (((qh >> 16) & lane_bit[k]) ? 0 : 16);

      acc[k] += d * q0 * x[k] + d * q1 * x[k + LANES];
    }
  }
  return sum_lanes (acc);
}

/* Q2_K and Q3_K: a sub-block is 16 weights, one set of lanes. */
G_GNUC_NO_INLINE static float
dot_q2_K (const LlmBlockQ2_K * b, const float *x, gsize nb)
{
  float acc[LANES] = { 0 };

  G_STATIC_ASSERT (LLM_QK_K / 16 == LANES);
  for (gsize i = 0; i < nb; i++) {
    const float d = llm_f16_to_f32 (b[i].d);
    const float dmin = llm_f16_to_f32 (b[i].dmin);

    for (guint h = 0; h < 2; h++) {
      const guint8 *q = b[i].qs + 32 * h;

      for (guint j = 0; j < 4; j++) {
        for (guint half = 0; half < 2; half++, x += 16) {
          const guint8 sc = b[i].scales[8 * h + 2 * j + half];
          const float dl = d * (sc & 0x0f), ml = dmin * (sc >> 4);

          for (guint k = 0; k < LANES; k++)
            acc[k] += (dl * ((q[16 * half + k] >> (2 * j)) & 3) - ml) * x[k];
        }
      }
    }
  }
  return sum_lanes (acc);
}

G_GNUC_NO_INLINE static float
dot_q3_K (const LlmBlockQ3_K * b, const float *x, gsize nb)
{
  float acc[LANES] = { 0 };

  for (gsize i = 0; i < nb; i++) {
    const float d = llm_f16_to_f32 (b[i].d);
    gint sc[16];

    unpack_scales_q3_K (b[i].scales, sc);
    for (guint h = 0; h < 2; h++) {
      const guint8 *q = b[i].qs + 32 * h;

      for (guint j = 0; j < 4; j++) {
        const guint shift = 4 * h + j;

        for (guint half = 0; half < 2; half++, x += 16) {
          const float dl = d * sc[8 * h + 2 * j + half];
          const guint8 *qq = q + 16 * half;
          const guint8 *hm = b[i].hmask + 16 * half;

          for (guint k = 0; k < LANES; k++) {
            const gint v = ((qq[k] >> (2 * j)) & 3) - 4
                + 4 * ((hm[k] >> shift) & 1);

            acc[k] += dl * v * x[k];
          }
        }
      }
    }
  }
  return sum_lanes (acc);
}

/* Q4_K and Q5_K: each 32 bytes of quants hold two sub-blocks of 32, two
 * passes over the lanes. */
G_GNUC_NO_INLINE static float
dot_q4_K (const LlmBlockQ4_K * b, const float *x, gsize nb)
{
  float acc[LANES] = { 0 };

  for (gsize i = 0; i < nb; i++) {
    const float d = llm_f16_to_f32 (b[i].d);
    const float dmin = llm_f16_to_f32 (b[i].dmin);
    guint8 sc[8], mn[8];

    unpack_scales_min_k4 (b[i].scales, sc, mn);
    for (guint j = 0; j < 4; j++, x += 64) {
      const guint8 *q = b[i].qs + 32 * j;
      const float d1 = d * sc[2 * j], m1 = dmin * mn[2 * j];
      const float d2 = d * sc[2 * j + 1], m2 = dmin * mn[2 * j + 1];

      for (guint l = 0; l < 32; l += LANES)
        for (guint k = 0; k < LANES; k++)
          acc[k] += (d1 * (q[l + k] & 0x0f) - m1) * x[l + k]
              + (d2 * (q[l + k] >> 4) - m2) * x[l + k + 32];
    }
  }
  return sum_lanes (acc);
}

G_GNUC_NO_INLINE static float
dot_q5_K (const LlmBlockQ5_K * b, const float *x, gsize nb)
{
  float acc[LANES] = { 0 };

  for (gsize i = 0; i < nb; i++) {
    const float d = llm_f16_to_f32 (b[i].d);
    const float dmin = llm_f16_to_f32 (b[i].dmin);
    guint8 sc[8], mn[8];

    unpack_scales_min_k4 (b[i].scales, sc, mn);
    for (guint j = 0; j < 4; j++, x += 64) {
      const guint8 *q = b[i].qs + 32 * j;
      const float d1 = d * sc[2 * j], m1 = dmin * mn[2 * j];
      const float d2 = d * sc[2 * j + 1], m2 = dmin * mn[2 * j + 1];

      for (guint l = 0; l < 32; l += LANES) {
        for (guint k = 0; k < LANES; k++) {
          const guint8 qh = b[i].qh[l + k] >> (2 * j);
          const gint v1 = (q[l + k] & 0x0f) | ((qh & 1) << 4);
          const gint v2 = (q[l + k] >> 4) | ((qh & 2) << 3);

          acc[k] += (d1 * v1 - m1) * x[l + k] + (d2 * v2 - m2) * x[l + k + 32];
        }
      }
    }
  }
  return sum_lanes (acc);
}

/* Q6_K: each set of lanes covers one sub-block of each quarter of a
 * 128-weight half. */
G_GNUC_NO_INLINE static float
dot_q6_K (const LlmBlockQ6_K * b, const float *x, gsize nb)
{
  float acc[LANES] = { 0 };

  for (gsize i = 0; i < nb; i++) {
    const float d = llm_f16_to_f32 (b[i].d);

    for (guint h = 0; h < 2; h++, x += 128) {
      const guint8 *ql = b[i].ql + 64 * h;
      const guint8 *qh = b[i].qh + 32 * h;
      const gint8 *sc = b[i].scales + 8 * h;

      for (guint s = 0; s < 2; s++) {
        const guint o = 16 * s;
        const float d1 = d * sc[s], d2 = d * sc[s + 2];
        const float d3 = d * sc[s + 4], d4 = d * sc[s + 6];

        for (guint k = 0; k < LANES; k++) {
          const guint l = o + k;
          const gint q1 = ((ql[l] & 0x0f) | ((qh[l] & 0x03) << 4)) - 32;
          const gint q2 = ((ql[l + 32] & 0x0f) | ((qh[l] & 0x0c) << 2)) - 32;
          const gint q3 = ((ql[l] >> 4) | (qh[l] & 0x30)) - 32;
          const gint q4 = ((ql[l + 32] >> 4) | ((qh[l] & 0xc0) >> 2)) - 32;

          acc[k] += d1 * q1 * x[l] + d2 * q2 * x[l + 32]
              + d3 * q3 * x[l + 64] + d4 * q4 * x[l + 96];
        }
      }
    }
  }
  return sum_lanes (acc);
}

/* Q8_K: the quants times x per block, then one multiply by d per lane. */
G_GNUC_NO_INLINE static float
dot_q8_K (const LlmBlockQ8_K * b, const float *x, gsize nb)
{
  float acc[LANES] = { 0 };

  for (gsize i = 0; i < nb; i++, x += LLM_QK_K) {
    float a[LANES] = { 0 };

    for (guint j = 0; j < LLM_QK_K; j += LANES)
      for (guint k = 0; k < LANES; k++)
        a[k] += (float) b[i].qs[j + k] * x[j + k];
    for (guint k = 0; k < LANES; k++)
      acc[k] += b[i].d * a[k];
  }
  return sum_lanes (acc);
}

float
llm_kquants_dot_row (LlmDType t, const void *row, const float *x, gsize n)
{
  g_return_val_if_fail (llm_kquants_handles (t), 0.0f);
  g_return_val_if_fail (n % llm_dtype_block_elems (t) == 0, 0.0f);

  switch (t) {
    case LLM_DTYPE_Q5_0:
      return dot_q5_0 (row, x, n / LLM_QK5_0);
    case LLM_DTYPE_Q2_K:
      return dot_q2_K (row, x, n / LLM_QK_K);
    case LLM_DTYPE_Q3_K:
      return dot_q3_K (row, x, n / LLM_QK_K);
    case LLM_DTYPE_Q4_K:
      return dot_q4_K (row, x, n / LLM_QK_K);
    case LLM_DTYPE_Q5_K:
      return dot_q5_K (row, x, n / LLM_QK_K);
    case LLM_DTYPE_Q6_K:
      return dot_q6_K (row, x, n / LLM_QK_K);
    case LLM_DTYPE_Q8_K:
      return dot_q8_K (row, x, n / LLM_QK_K);
    default:
      g_assert_not_reached ();
  }
  return 0.0f;
}
