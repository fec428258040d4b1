/* LLMasOS - causal grouped-query attention on the CPU.
 *
 * For each query position and head: scores against every earlier key,
 * a numerically stable softmax (subtract the maximum), and the weighted sum
 * of the values.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-attention.h"

#include "llm-cpu-ops.h"

#include <math.h>
#include <string.h>

/* q . k for one head. Short heads: one plain sum, which the compiler
 * vectorizes across positions; long heads: eight running sums. */
static G_ALWAYS_INLINE inline float
dot_head (const float *restrict a, const float *restrict b, guint n)
{
  float acc[8] = { 0 };
  guint i = 0;

  if (n <= 16) {
    float s = 0.0f;

    for (i = 0; i < n; i++)
      s += a[i] * b[i];
    return s;
  }
  for (; i + 8 <= n; i += 8)
    for (guint j = 0; j < 8; j++)
      acc[j] += a[i + j] * b[i + j];
  for (; i < n; i++)
    acc[0] += a[i] * b[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) +
      ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* out = sum_p w[p] v[p] / norm. For short heads the sum runs in four
 * interleaved partial sums, since one chain of additions per element would
 * wait on the previous position's. */
static G_ALWAYS_INLINE inline void
weighted_sum (float *restrict out, const float *restrict w,
    const float *restrict v, guint len, guint head_dim, gsize kv_stride,
    float norm)
{
  float inv = 1.0f / norm;

  if (head_dim <= 16) {
    float acc[4][16] = { {0} };
    guint p = 0;

    for (; p + 4 <= len; p += 4)
      for (guint u = 0; u < 4; u++)
        for (guint i = 0; i < head_dim; i++)
          acc[u][i] += w[p + u] * v[(p + u) * kv_stride + i];
    for (; p < len; p++)
      for (guint i = 0; i < head_dim; i++)
        acc[0][i] += w[p] * v[p * kv_stride + i];
    for (guint i = 0; i < head_dim; i++)
      out[i] = ((acc[0][i] + acc[1][i]) + (acc[2][i] + acc[3][i])) * inv;
  } else {
    memset (out, 0, head_dim * sizeof (float));
    for (guint p = 0; p < len; p++)
      for (guint i = 0; i < head_dim; i++)
        out[i] += w[p] * v[p * kv_stride + i];
    for (guint i = 0; i < head_dim; i++)
      out[i] *= inv;
  }
}

/* One query head over keys/values 0 .. len-1 of one KV head. */
static G_ALWAYS_INLINE inline void
attend_one (float *restrict out, const float *restrict q,
    const float *restrict k, const float *restrict v, guint len,
    guint head_dim, gsize kv_stride, float scale, float *restrict scores)
{
  float sum;

  for (guint p = 0; p < len; p++)
    scores[p] = dot_head (q, k + p * kv_stride, head_dim) * scale;
  sum = llm_softmax_unscaled (scores, len);
  weighted_sum (out, scores, v, len, head_dim, kv_stride, sum);
}

/* The loops over queries and heads; inlined once per common head size so
 * that the loops over head_dim unroll into registers. */
static G_ALWAYS_INLINE inline void
attend (float *out, gsize out_stride, const float *q, gsize q_stride,
    const float *k, const float *v, gsize kv_stride, guint n_q,
    guint q_pos0, guint n_heads, guint group, guint head_dim, float scale,
    guint window, float *scratch)
{
  for (guint i = 0; i < n_q; i++) {
    guint end = q_pos0 + i + 1;
    /* the first position the query sees */
    gsize first = window > 0 && end > window ? end - window : 0;

    for (guint h = 0; h < n_heads; h++) {
      gsize kv_off = first * kv_stride + (gsize) (h / group) * head_dim;

      attend_one (out + i * out_stride + (gsize) h * head_dim,
          q + i * q_stride + (gsize) h * head_dim, k + kv_off, v + kv_off,
          end - first, head_dim, kv_stride, scale, scratch);
    }
  }
}

LLM_CPU_MULTIVERSION void
llm_attention_causal_strided (float *out, gsize out_stride, const float *q,
    gsize q_stride, const float *k, const float *v, gsize kv_stride,
    guint n_q, guint q_pos0, guint n_heads, guint n_kv_heads,
    guint head_dim, float scale, guint window, float *scratch)
{
  guint group;

  g_return_if_fail (n_kv_heads > 0 && n_heads % n_kv_heads == 0);
  g_return_if_fail (head_dim > 0);

  group = n_heads / n_kv_heads;

#define ATTEND(hd) attend (out, out_stride, q, q_stride, k, v, kv_stride, \
    n_q, q_pos0, n_heads, group, hd, scale, window, scratch)
  switch (head_dim) {
    case 8:
      ATTEND (8);
      break;
    case 16:
      ATTEND (16);
      break;
    case 32:
      ATTEND (32);
      break;
    case 64:
      ATTEND (64);
      break;
    case 128:
      ATTEND (128);
      break;
    default:
      ATTEND (head_dim);
      break;
  }
#undef ATTEND
}

void
llm_attention_causal (float *out, const float *q, const float *k,
    const float *v, guint n_q, guint q_pos0, guint n_heads,
    guint n_kv_heads, guint head_dim, gsize kv_stride, float *scratch)
{
  gsize stride = (gsize) n_heads * head_dim;

  llm_attention_causal_strided (out, stride, q, stride, k, v, kv_stride, n_q,
      q_pos0, n_heads, n_kv_heads, head_dim, 1.0f / sqrtf ((float) head_dim),
      0, scratch);
}
