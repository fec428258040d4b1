/* LLMasOS - element types, half floats and block quantization formats.
 *
 * The quantization formats are GGML's (ggml-quants.c reference code), bit
 * for bit, so that rows read from or written to GGUF files mean what
 * llama.cpp means by them.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-dtype.h"
#include "llm-dtype-kquants.h"

#include <math.h>
#include <string.h>

typedef struct
{
  LlmDType type;
  const gchar *name;            /* GGML spelling */
  guint block_elems;            /* elements per block, 1 for plain types */
  guint block_bytes;            /* bytes per block */
  gboolean compute;             /* rows can be dequantized / dotted here */
} DTypeInfo;

/* Block sizes as in ggml's type_traits. */
static const DTypeInfo dtype_table[] = {
  {LLM_DTYPE_F32, "F32", 1, 4, TRUE},
  {LLM_DTYPE_F16, "F16", 1, 2, TRUE},
  {LLM_DTYPE_Q4_0, "Q4_0", 32, 18, TRUE},
  {LLM_DTYPE_Q4_1, "Q4_1", 32, 20, FALSE},
  {LLM_DTYPE_Q5_0, "Q5_0", 32, 22, TRUE},
  {LLM_DTYPE_Q5_1, "Q5_1", 32, 24, FALSE},
  {LLM_DTYPE_Q8_0, "Q8_0", 32, 34, TRUE},
  {LLM_DTYPE_Q8_1, "Q8_1", 32, 36, FALSE},
  {LLM_DTYPE_Q2_K, "Q2_K", 256, 84, TRUE},
  {LLM_DTYPE_Q3_K, "Q3_K", 256, 110, TRUE},
  {LLM_DTYPE_Q4_K, "Q4_K", 256, 144, TRUE},
  {LLM_DTYPE_Q5_K, "Q5_K", 256, 176, TRUE},
  {LLM_DTYPE_Q6_K, "Q6_K", 256, 210, TRUE},
  {LLM_DTYPE_Q8_K, "Q8_K", 256, 292, TRUE},
  {LLM_DTYPE_I8, "I8", 1, 1, FALSE},
  {LLM_DTYPE_I16, "I16", 1, 2, FALSE},
  {LLM_DTYPE_I32, "I32", 1, 4, FALSE},
  {LLM_DTYPE_I64, "I64", 1, 8, FALSE},
  {LLM_DTYPE_F64, "F64", 1, 8, FALSE},
  {LLM_DTYPE_BF16, "BF16", 1, 2, TRUE},
};

G_STATIC_ASSERT (sizeof (LlmBlockQ8_0) == 34);
G_STATIC_ASSERT (sizeof (LlmBlockQ4_0) == 18);

static const DTypeInfo *
dtype_info (gint64 t)
{
  for (guint i = 0; i < G_N_ELEMENTS (dtype_table); i++)
    if (dtype_table[i].type == t)
      return &dtype_table[i];
  return NULL;
}

const gchar *
llm_dtype_name (LlmDType t)
{
  const DTypeInfo *info = dtype_info (t);

  return info ? info->name : NULL;
}

LlmDType
llm_dtype_from_name (const gchar * name)
{
  g_return_val_if_fail (name != NULL, LLM_DTYPE_UNKNOWN);

  for (guint i = 0; i < G_N_ELEMENTS (dtype_table); i++)
    if (g_ascii_strcasecmp (dtype_table[i].name, name) == 0)
      return dtype_table[i].type;
  return LLM_DTYPE_UNKNOWN;
}

gboolean
llm_dtype_is_known (gint64 t)
{
  return dtype_info (t) != NULL;
}

guint
llm_dtype_block_elems (LlmDType t)
{
  const DTypeInfo *info = dtype_info (t);

  return info ? info->block_elems : 0;
}

guint
llm_dtype_block_bytes (LlmDType t)
{
  const DTypeInfo *info = dtype_info (t);

  return info ? info->block_bytes : 0;
}

gboolean
llm_dtype_bytes_for (LlmDType t, guint64 n, guint64 * out_bytes)
{
  const DTypeInfo *info = dtype_info (t);

  if (info == NULL || n % info->block_elems != 0)
    return FALSE;
  return g_uint64_checked_mul (out_bytes, n / info->block_elems,
      info->block_bytes);
}

gboolean
llm_dtype_can_compute (LlmDType t)
{
  const DTypeInfo *info = dtype_info (t);

  return info != NULL && info->compute;
}

/* --- half floats ---------------------------------------------------------- */

static inline guint32
f32_bits (float f)
{
  guint32 u;

  memcpy (&u, &f, sizeof u);
  return u;
}

static inline float
f32_from_bits (guint32 u)
{
  float f;

  memcpy (&f, &u, sizeof f);
  return f;
}

/* Branch-free (selects only) so that loops over it vectorize; this is the
 * conversion of Maratyszcza's FP16 library that ggml uses as its reference.
 * Normal halves are rebiased by scaling with 2^-112; subnormal ones are
 * built as 0.5 + m * 2^-24 (exact in f32) minus 0.5. */
static inline float
f16_to_f32 (guint16 h)
{
  const guint32 w = (guint32) h << 16;
  const guint32 sign = w & 0x80000000u;
  const guint32 two_w = w + w;
  const float normalized = f32_from_bits ((two_w >> 4) + (0xE0u << 23))
      * 0x1.0p-112f;
  const float denormalized = f32_from_bits ((two_w >> 17) | (126u << 23))
      - 0.5f;
  /* a mask rather than ?: keeps the loops that call this branch-free */
  const guint32 is_denormal = -(guint32) (two_w < (1u << 27));

  return f32_from_bits (sign | (f32_bits (denormalized) & is_denormal) |
      (f32_bits (normalized) & ~is_denormal));
}

float
llm_f16_to_f32 (guint16 h)
{
  return f16_to_f32 (h);
}

/* Rounds the magnitude @q (already shifted) up when the dropped bits
 * @rem are above half of @one, or exactly half and @q is odd. */
static inline guint32
round_nearest_even (guint32 q, guint32 rem, guint32 half)
{
  return q + (rem > half || (rem == half && (q & 1)));
}

guint16
llm_f32_to_f16 (float f)
{
  const guint32 x = f32_bits (f);
  const guint16 sign = (x >> 16) & 0x8000;
  const guint32 mag = x & 0x7fffffffu;

  if (mag > 0x7f800000u)        /* NaN: keep it quiet and keep the payload */
    return sign | 0x7e00 | ((mag >> 13) & 0x3ff);
  if (mag >= 0x477ff000u)       /* >= 65520 rounds to infinity */
    return sign | 0x7c00;
  if (mag >= 0x38800000u) {     /* normal half: rebias 127 -> 15 */
    const guint32 r = mag - 0x38000000u;
    /* a carry out of the mantissa correctly bumps the exponent */
    return sign | round_nearest_even (r >> 13, r & 0x1fff, 0x1000);
  }
  if (mag < 0x33000000u)        /* below 2^-25: rounds to zero */
    return sign;
  {
    /* subnormal half: the result is round (value * 2^24) */
    const guint32 m = (mag & 0x7fffff) | 0x800000;
    const guint shift = 126 - (mag >> 23);      /* 14..24 */

    return sign | round_nearest_even (m >> shift, m & ((1u << shift) - 1),
        1u << (shift - 1));
  }
}

static inline float
bf16_to_f32 (guint16 h)
{
  return f32_from_bits ((guint32) h << 16);
}

float
llm_bf16_to_f32 (guint16 h)
{
  return bf16_to_f32 (h);
}

guint16
llm_f32_to_bf16 (float f)
{
  const guint32 x = f32_bits (f);

  if ((x & 0x7fffffffu) > 0x7f800000u)  /* NaN: force the quiet bit */
    return (x >> 16) | 0x40;
  return (x + 0x7fff + ((x >> 16) & 1)) >> 16;
}

/* --- rows ----------------------------------------------------------------- */

static void
quantize_row_q8_0 (const float *x, LlmBlockQ8_0 * y, gsize nb)
{
  for (gsize i = 0; i < nb; i++, x += LLM_QK8_0) {
    float amax = 0.0f;

    for (guint j = 0; j < LLM_QK8_0; j++)
      amax = MAX (amax, fabsf (x[j]));

    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;

    y[i].d = llm_f32_to_f16 (d);
    for (guint j = 0; j < LLM_QK8_0; j++)
      y[i].qs[j] = (gint8) roundf (x[j] * id);
  }
}

static void
quantize_row_q4_0 (const float *x, LlmBlockQ4_0 * y, gsize nb)
{
  for (gsize i = 0; i < nb; i++, x += LLM_QK4_0) {
    float amax = 0.0f;
    float max = 0.0f;           /* the signed value of largest magnitude */

    for (guint j = 0; j < LLM_QK4_0; j++) {
      if (amax < fabsf (x[j])) {
        amax = fabsf (x[j]);
        max = x[j];
      }
    }

    /* -8 is the one level without a positive twin: map @max onto it */
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;

    y[i].d = llm_f32_to_f16 (d);
    for (guint j = 0; j < LLM_QK4_0 / 2; j++) {
      const guint8 lo = MIN (15, (gint8) (x[j] * id + 8.5f));
      const guint8 hi = MIN (15, (gint8) (x[j + LLM_QK4_0 / 2] * id + 8.5f));

      y[i].qs[j] = lo | (hi << 4);
    }
  }
}

void
llm_quantize_row (LlmDType t, const float *src, void *dst, gsize n)
{
  g_return_if_fail (llm_dtype_can_compute (t));
  g_return_if_fail (n % llm_dtype_block_elems (t) == 0);

  switch (t) {
    case LLM_DTYPE_F32:
      memcpy (dst, src, n * sizeof (float));
      break;
    case LLM_DTYPE_F16:{
      guint16 *d = dst;
      for (gsize i = 0; i < n; i++)
        d[i] = llm_f32_to_f16 (src[i]);
      break;
    }
    case LLM_DTYPE_BF16:{
      guint16 *d = dst;
      for (gsize i = 0; i < n; i++)
        d[i] = llm_f32_to_bf16 (src[i]);
      break;
    }
    case LLM_DTYPE_Q8_0:
      quantize_row_q8_0 (src, dst, n / LLM_QK8_0);
      break;
    case LLM_DTYPE_Q4_0:
      quantize_row_q4_0 (src, dst, n / LLM_QK4_0);
      break;
    default:
      /* Q5_0 and the k-quants are read, not written, here */
      g_return_if_reached ();
  }
}

void
llm_dequantize_row (LlmDType t, const void *src, float *dst, gsize n)
{
  g_return_if_fail (llm_dtype_can_compute (t));
  g_return_if_fail (n % llm_dtype_block_elems (t) == 0);

  switch (t) {
    case LLM_DTYPE_F32:
      memcpy (dst, src, n * sizeof (float));
      break;
    case LLM_DTYPE_F16:{
      const guint16 *s = src;
      for (gsize i = 0; i < n; i++)
        dst[i] = f16_to_f32 (s[i]);
      break;
    }
    case LLM_DTYPE_BF16:{
      const guint16 *s = src;
      for (gsize i = 0; i < n; i++)
        dst[i] = bf16_to_f32 (s[i]);
      break;
    }
    case LLM_DTYPE_Q8_0:{
      const LlmBlockQ8_0 *b = src;
      for (gsize i = 0; i < n / LLM_QK8_0; i++, dst += LLM_QK8_0) {
        const float d = f16_to_f32 (b[i].d);
        for (guint j = 0; j < LLM_QK8_0; j++)
          dst[j] = b[i].qs[j] * d;
      }
      break;
    }
    case LLM_DTYPE_Q4_0:{
      const LlmBlockQ4_0 *b = src;
      for (gsize i = 0; i < n / LLM_QK4_0; i++, dst += LLM_QK4_0) {
        const float d = f16_to_f32 (b[i].d);
        for (guint j = 0; j < LLM_QK4_0 / 2; j++) {
          dst[j] = ((b[i].qs[j] & 0x0f) - 8) * d;
          dst[j + LLM_QK4_0 / 2] = ((b[i].qs[j] >> 4) - 8) * d;
        }
      }
      break;
    }
    default:
      llm_kquants_dequantize_row (t, src, dst, n);
  }
}

/* --- dot products -----------------------------------------------------------
 *
 * Without -ffast-math gcc will not reorder a single float accumulator, so
 * each loop keeps LANES independent partial sums that it can map onto SIMD
 * registers, and adds them up at the end. */

#define LANES 16

static inline float
sum_lanes (const float *acc)
{
  float s = 0.0f;

  for (guint k = 0; k < LANES; k++)
    s += acc[k];
  return s;
}

static float
dot_f32 (const float *w, const float *x, gsize n)
{
  float acc[LANES] = { 0 };
  gsize i = 0;

  for (; i + LANES <= n; i += LANES)
    for (guint k = 0; k < LANES; k++)
      acc[k] += w[i + k] * x[i + k];
  for (; i < n; i++)
    acc[0] += w[i] * x[i];
  return sum_lanes (acc);
}

static float
dot_f16 (const guint16 * w, const float *x, gsize n)
{
  float acc[LANES] = { 0 };
  gsize i = 0;

  for (; i + LANES <= n; i += LANES)
    for (guint k = 0; k < LANES; k++)
      acc[k] += f16_to_f32 (w[i + k]) * x[i + k];
  for (; i < n; i++)
    acc[0] += f16_to_f32 (w[i]) * x[i];
  return sum_lanes (acc);
}

static float
dot_bf16 (const guint16 * w, const float *x, gsize n)
{
  float acc[LANES] = { 0 };
  gsize i = 0;

  for (; i + LANES <= n; i += LANES)
    for (guint k = 0; k < LANES; k++)
      acc[k] += bf16_to_f32 (w[i + k]) * x[i + k];
  for (; i < n; i++)
    acc[0] += bf16_to_f32 (w[i]) * x[i];
  return sum_lanes (acc);
}

/* Per block: the integer quants times x, summed in lanes, then one multiply
 * by the block's scale. */
static float
dot_q8_0 (const LlmBlockQ8_0 * b, const float *x, gsize nb)
{
  float total = 0.0f;

  for (gsize i = 0; i < nb; i++, x += LLM_QK8_0) {
    float acc[LANES] = { 0 };

    for (guint j = 0; j < LLM_QK8_0; j += LANES)
      for (guint k = 0; k < LANES; k++)
        acc[k] += b[i].qs[j + k] * x[j + k];
    total += sum_lanes (acc) * f16_to_f32 (b[i].d);
  }
  return total;
}

static float
dot_q4_0 (const LlmBlockQ4_0 * b, const float *x, gsize nb)
{
  float total = 0.0f;

  for (gsize i = 0; i < nb; i++, x += LLM_QK4_0) {
    float acc[LANES] = { 0 };

    G_STATIC_ASSERT (LLM_QK4_0 / 2 == LANES);
    for (guint k = 0; k < LANES; k++)
      acc[k] += ((b[i].qs[k] & 0x0f) - 8) * x[k]
          + ((b[i].qs[k] >> 4) - 8) * x[k + LLM_QK4_0 / 2];
    total += sum_lanes (acc) * f16_to_f32 (b[i].d);
  }
  return total;
}

float
llm_dot_row (LlmDType t, const void *row, const float *x, gsize n)
{
  g_return_val_if_fail (llm_dtype_can_compute (t), 0.0f);
  g_return_val_if_fail (n % llm_dtype_block_elems (t) == 0, 0.0f);

  switch (t) {
    case LLM_DTYPE_F32:
      return dot_f32 (row, x, n);
    case LLM_DTYPE_F16:
      return dot_f16 (row, x, n);
    case LLM_DTYPE_BF16:
      return dot_bf16 (row, x, n);
    case LLM_DTYPE_Q8_0:
      return dot_q8_0 (row, x, n / LLM_QK8_0);
    case LLM_DTYPE_Q4_0:
      return dot_q4_0 (row, x, n / LLM_QK4_0);
    default:
      return llm_kquants_dot_row (t, row, x, n);
  }
}
