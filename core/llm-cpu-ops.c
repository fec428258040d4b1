/* LLMasOS - CPU backend primitives, F32 compute.
 *
 * Plain C loops written so that gcc -O3 vectorizes them: restrict pointers,
 * several independent accumulators in every reduction (the compiler may not
 * reorder float additions by itself), no intrinsics. The hot loops are
 * built twice (LLM_CPU_MULTIVERSION), for AVX2+FMA and for the baseline.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-cpu-ops.h"

/* Comparisons may be if-converted (the clamps in exp_f32), so that loops
 * over them vectorize; nothing here reads floating-point exception flags. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize ("no-trapping-math")
#endif

#include <math.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* Multiply-adds below which a matrix product stays on the calling thread:
 * waking a team costs a few microseconds, more than a small matvec. */
#define LLM_PARALLEL_MIN_WORK (1u << 18)

/* Elements dequantized at a time when a small vector (a norm weight) is not
 * F32; a multiple of every block size (32, 256). */
#define LLM_CHUNK 256

/* Dot product of two f32 vectors: eight running sums, so that the loop
 * vectorizes and hides the latency of the additions. */
static inline float
dot_f32 (const float *restrict a, const float *restrict b, gsize n)
{
  float acc[8] = { 0 };
  gsize i = 0;

  for (; i + 8 <= n; i += 8)
    for (guint j = 0; j < 8; j++)
      acc[j] += a[i + j] * b[i + j];
  for (; i < n; i++)
    acc[0] += a[i] * b[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5]))
      + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

static inline float
sum_squares_f32 (const float *restrict x, gsize n)
{
  return dot_f32 (x, x, n);
}

static inline guint64
tensor_cols (const LlmTensor * w)
{
  return w->ne[0];
}

static inline guint64
tensor_rows (const LlmTensor * w)
{
  return w->ne[0] ? llm_tensor_n_elements (w) / w->ne[0] : 0;
}

static inline gsize
row_bytes (const LlmTensor * w)
{
  guint64 rb = 0;

  if (!llm_dtype_bytes_for (w->dtype, w->ne[0], &rb))
    g_error ("tensor %s: rows of %" G_GUINT64_FORMAT " elements are not "
        "whole %s blocks",
        w->name ? w->name : "(unnamed)", w->ne[0], llm_dtype_name (w->dtype));
  return rb;
}

static inline guint
effective_threads (guint n_threads, guint64 work)
{
#ifdef _OPENMP
  if (n_threads > 1 && work >= LLM_PARALLEL_MIN_WORK)
    return n_threads;
#endif
  return 1;
}

/* The share [*lo, *hi) of @n items that thread @ith of @nth takes. */
static inline void
split_range (guint64 n, guint ith, guint nth, guint64 * lo, guint64 * hi)
{
  guint64 per = n / nth, extra = n % nth;

  *lo = ith * per + MIN (ith, extra);
  *hi = *lo + per + (ith < extra ? 1 : 0);
}

LLM_CPU_MULTIVERSION void
llm_rmsnorm (float *out, const float *x, const LlmTensor * w, guint n,
    float eps)
{
  float scale;

  g_return_if_fail (llm_tensor_n_elements (w) >= n);

  scale = 1.0f / sqrtf (sum_squares_f32 (x, n) / n + eps);

  if (w->dtype == LLM_DTYPE_F32) {
    const float *restrict wf = (const float *) w->data;

    for (guint i = 0; i < n; i++)
      out[i] = wf[i] * (x[i] * scale);
  } else {
    /* Dequantize the weight a chunk at a time on the stack. */
    float buf[LLM_CHUNK];
    guint be = llm_dtype_block_elems (w->dtype);
    guint bb = llm_dtype_block_bytes (w->dtype);

    g_return_if_fail (be > 0 && LLM_CHUNK % be == 0 && n % be == 0);
    for (guint i0 = 0; i0 < n; i0 += LLM_CHUNK) {
      guint len = MIN (LLM_CHUNK, n - i0);

      llm_dequantize_row (w->dtype, w->data + (gsize) i0 / be * bb, buf, len);
      for (guint i = 0; i < len; i++)
        out[i0 + i] = buf[i] * (x[i0 + i] * scale);
    }
  }
}

void
llm_rmsnorm_heads (float *x, guint n_heads, guint head_dim,
    const LlmTensor * w, float eps)
{
  for (guint h = 0; h < n_heads; h++) {
    float *xh = x + (gsize) h * head_dim;

    llm_rmsnorm (xh, xh, w, head_dim, eps);
  }
}

/* Angle of pair @i of a head of @head_dim at @pos: pos * theta^(-2i/d),
 * computed in f32 as Hugging Face and llama.cpp do. */
static inline float
rope_angle (guint pos, guint i, guint head_dim, float theta)
{
  float inv_freq = 1.0f / powf (theta, (float) (2 * i) / (float) head_dim);

  return inv_freq * (float) pos;
}

void
llm_rope_table (float *cos_out, float *sin_out, guint head_dim, guint pos,
    float theta)
{
  for (guint i = 0; i < head_dim / 2; i++) {
    double a = rope_angle (pos, i, head_dim, theta);

    cos_out[i] = (float) cos (a);
    sin_out[i] = (float) sin (a);
  }
}

void
llm_rope_apply (float *x, guint n_heads, guint head_dim, const float *cos_t,
    const float *sin_t, gboolean interleaved)
{
  guint half = head_dim / 2;

  for (guint h = 0; h < n_heads; h++) {
    float *restrict xh = x + (gsize) h * head_dim;

    if (interleaved) {
      for (guint i = 0; i < half; i++) {
        float x0 = xh[2 * i], x1 = xh[2 * i + 1];

        xh[2 * i] = x0 * cos_t[i] - x1 * sin_t[i];
        xh[2 * i + 1] = x0 * sin_t[i] + x1 * cos_t[i];
      }
    } else {
      for (guint i = 0; i < half; i++) {
        float x0 = xh[i], x1 = xh[i + half];

        xh[i] = x0 * cos_t[i] - x1 * sin_t[i];
        xh[i + half] = x0 * sin_t[i] + x1 * cos_t[i];
      }
    }
  }
}

void
llm_rope (float *x, guint n_heads, guint head_dim, guint pos, float theta,
    gboolean interleaved)
{
  guint half = head_dim / 2;

  /* One angle per pair, applied to every head. */
  for (guint i = 0; i < half; i++) {
    double a = rope_angle (pos, i, head_dim, theta);
    float c = (float) cos (a), s = (float) sin (a);
    guint i0 = interleaved ? 2 * i : i;
    guint i1 = interleaved ? 2 * i + 1 : i + half;

    for (guint h = 0; h < n_heads; h++) {
      float *xh = x + (gsize) h * head_dim;
      float x0 = xh[i0], x1 = xh[i1];

      xh[i0] = x0 * c - x1 * s;
      xh[i1] = x0 * s + x1 * c;
    }
  }
}

/* exp(x) to within 2 ulp, branch-free so that loops calling it vectorize
 * (libm's expf is a call per element). Cephes' expf: x = n ln2 + r with
 * |r| <= ln2/2, exp(r) by a degree-7 polynomial, 2^n put in the exponent
 * bits. Below e^-87 it returns 0 rather than a denormal (a denormal weight
 * would make every product with it take a slow microcode path on many
 * CPUs), above e^88 +inf; NaN stays NaN. */
static inline float
exp_f32 (float x)
{
  const float magic = 12582912.0f;      /* 1.5 * 2^23: rounds to an integer */
  float xc, t, n, r, p;
  guint32 bits;                 /* unsigned: any NaN bits shift safely */

  /* Where 2^n is a normal float. */
  xc = x < -87.0f ? -87.0f : x;
  xc = xc > 88.0f ? 88.0f : xc;
  t = xc * 1.44269504088896341f + magic;
  n = t - magic;
  r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  /* The low bits of t hold n; build the float 2^n. */
  memcpy (&bits, &t, sizeof (bits));
  bits = (bits - 0x4B400000u + 127u) << 23;
  memcpy (&t, &bits, sizeof (t));
  p = p * t;
  p = x < -87.0f ? 0.0f : p;
  return x > 88.0f ? INFINITY : p;
}

/* Largest element, eight running maxima at a time. */
static inline float
max_f32 (const float *restrict x, gsize n)
{
  float m[8];
  gsize i = 0;

  for (guint j = 0; j < 8; j++)
    m[j] = x[0];
  for (; i + 8 <= n; i += 8)
    for (guint j = 0; j < 8; j++)
      m[j] = x[i + j] > m[j] ? x[i + j] : m[j];
  for (; i < n; i++)
    m[0] = x[i] > m[0] ? x[i] : m[0];
  for (guint j = 1; j < 8; j++)
    m[0] = m[j] > m[0] ? m[j] : m[0];
  return m[0];
}

static inline float
sum_f32 (const float *restrict x, gsize n)
{
  float acc[8] = { 0 };
  gsize i = 0;

  for (; i + 8 <= n; i += 8)
    for (guint j = 0; j < 8; j++)
      acc[j] += x[i + j];
  for (; i < n; i++)
    acc[0] += x[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) +
      ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

LLM_CPU_MULTIVERSION float
llm_softmax_unscaled (float *x, guint n)
{
  float max;

  if (n == 0)
    return 0.0f;
  max = max_f32 (x, n);
  for (guint i = 0; i < n; i++)
    x[i] = exp_f32 (x[i] - max);
  return sum_f32 (x, n);
}

void
llm_softmax (float *x, guint n)
{
  float inv;

  if (n == 0)
    return;
  inv = 1.0f / llm_softmax_unscaled (x, n);
  for (guint i = 0; i < n; i++)
    x[i] *= inv;
}

LLM_CPU_MULTIVERSION void
llm_swiglu (float *out, const float *gate, const float *up, guint n)
{
  /* Element-wise, so @out may alias @gate or @up. */
  for (guint i = 0; i < n; i++) {
    float g = gate[i];

    out[i] = g / (1.0f + exp_f32 (-g)) * up[i];
  }
}

LLM_CPU_MULTIVERSION void
llm_geglu (float *out, const float *gate, const float *up, guint n)
{
  /* 0.5 (1 + tanh(y)) = 1 / (1 + exp(-2y)): one exp, and no cancellation
   * where tanh(y) is close to -1. A large negative g gives exp() = +inf
   * and g / inf = -0. Element-wise, so @out may alias @gate or @up. */
  const float two_c = 2.0f * 0.7978845608028654f;       /* 2 sqrt(2/pi) */

  for (guint i = 0; i < n; i++) {
    float g = gate[i];
    float y = two_c * (g + 0.044715f * g * g * g);

    out[i] = g / (1.0f + exp_f32 (-y)) * up[i];
  }
}

/* Rows [r0, r1) of out = w x. */
LLM_CPU_MULTIVERSION static void
matvec_rows (float *restrict out, const LlmTensor * w, const float *restrict x,
    gsize cols, gsize rb, guint64 r0, guint64 r1)
{
  if (w->dtype == LLM_DTYPE_F32) {
    const float *wf = (const float *) w->data;

    for (guint64 r = r0; r < r1; r++)
      out[r] = dot_f32 (wf + r * cols, x, cols);
  } else {
    for (guint64 r = r0; r < r1; r++)
      out[r] = llm_dot_row (w->dtype, w->data + r * rb, x, cols);
  }
}

void
llm_matvec (float *out, const LlmTensor * w, const float *x, guint n_threads)
{
  guint64 rows = tensor_rows (w), cols = tensor_cols (w);
  gsize rb = row_bytes (w);
  guint nt = effective_threads (n_threads, rows * cols);

  if (nt <= 1) {
    matvec_rows (out, w, x, cols, rb, 0, rows);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
  {
    guint64 lo, hi;

    split_range (rows, omp_get_thread_num (), omp_get_num_threads (), &lo, &hi);
    matvec_rows (out, w, x, cols, rb, lo, hi);
  }
#endif
}

/* Rows [r0, r1) of out[t] = w x[t] for every token t; @buf holds one
 * dequantized row (unused for F32 weights). */
LLM_CPU_MULTIVERSION static void
matmul_rows (float *restrict out, const LlmTensor * w, const float *restrict x,
    guint n_tokens, gsize cols, gsize rows, gsize rb, guint64 r0,
    guint64 r1, float *restrict buf)
{
  for (guint64 r = r0; r < r1; r++) {
    const float *wr;

    if (w->dtype == LLM_DTYPE_F32) {
      wr = (const float *) w->data + r * cols;
    } else {
      llm_dequantize_row (w->dtype, w->data + r * rb, buf, cols);
      wr = buf;
    }
    for (guint t = 0; t < n_tokens; t++)
      out[(gsize) t * rows + r] = dot_f32 (wr, x + (gsize) t * cols, cols);
  }
}

void
llm_matmul (float *out, const LlmTensor * w, const float *x, guint n_tokens,
    guint n_threads)
{
  guint64 rows = tensor_rows (w), cols = tensor_cols (w);
  gsize rb = row_bytes (w);
  gboolean f32 = w->dtype == LLM_DTYPE_F32;
  guint nt;

  if (n_tokens == 1) {
    llm_matvec (out, w, x, n_threads);
    return;
  }
  nt = effective_threads (n_threads, rows * cols * n_tokens);
  if (nt <= 1) {
    float *buf = f32 ? NULL : g_new (float, cols);

    matmul_rows (out, w, x, n_tokens, cols, rows, rb, 0, rows, buf);
    g_free (buf);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
  {
    float *buf = f32 ? NULL : g_new (float, cols);
    guint64 lo, hi;

    split_range (rows, omp_get_thread_num (), omp_get_num_threads (), &lo, &hi);
    matmul_rows (out, w, x, n_tokens, cols, rows, rb, lo, hi, buf);
    g_free (buf);
  }
#endif
}

void
llm_get_row (float *out, const LlmTensor * w, guint64 row)
{
  guint64 cols = tensor_cols (w);
  gsize rb = row_bytes (w);

  g_return_if_fail (row < tensor_rows (w));

  if (w->dtype == LLM_DTYPE_F32)
    memcpy (out, w->data + row * rb, cols * sizeof (float));
  else
    llm_dequantize_row (w->dtype, w->data + row * rb, out, cols);
}
