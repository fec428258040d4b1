/* LLMasOS - refuse weights that are not finite.
 *
 * A NaN or an infinity in a weight spreads to every activation it touches:
 * the model loads and then prints garbage (or one token forever), far from
 * the cause. The loader checks every weight once instead, and names the
 * tensor and the element.
 *
 * A float is an infinity or a NaN when its magnitude bits (the sign masked
 * off) are at least the all-ones exponent; adding the exponent's lowest
 * bit then carries into the sign bit. A chunk's loop ORs those sums
 * together: an AND, an ADD and an OR per element, which the compiler
 * vectorizes with plain SSE2 (a max reduction would need SSE4.1 for
 * unsigned words), so one thread reads at memory speed. Quantized blocks
 * hold integer quants and one or two floating scales (F16; F32 in Q8_K):
 * only those can be non-finite. The chunks of a large tensor are spread
 * over OpenMP threads (one core cannot draw a socket's memory bandwidth);
 * only a chunk that fails is read again, element by element, to say which
 * one.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-model-file.h"
#include "llm-error.h"

#include <string.h>

/* Elements per chunk: a multiple of every block size (256), large enough
 * for the vector loop to pay, small enough to stay in L1 when a failing
 * chunk is read again. */
#define CHUNK 4096
/* Chunks below which a tensor stays on one thread (16 MiB of F32): the
 * fork costs more than it saves on smaller ones. */
#define PARALLEL_CHUNKS 1024

#define F32_EXP 0x7f800000u
#define F16_EXP 0x7c00u
#define BF16_EXP 0x7f80u
/* The lowest bit of each exponent. */
#define F32_EXP_LSB 0x00800000u
#define F16_EXP_LSB 0x0400u
#define BF16_EXP_LSB 0x0080u

/* Where the floating scales of a quantized block are (ggml-common.h's
 * block_* structs, which llm-dtype.h and llm-dtype-kquants.h pin). */
typedef struct
{
  LlmDType type;
  guint offset;                 /* byte offset of the first scale */
  guint n;                      /* consecutive scales: d, or d and dmin */
  gboolean f32;                 /* F32 scales (Q8_K), else F16 */
} ScaleLayout;

static const ScaleLayout scale_layouts[] = {
  {LLM_DTYPE_Q4_0, 0, 1, FALSE},
  {LLM_DTYPE_Q5_0, 0, 1, FALSE},
  {LLM_DTYPE_Q8_0, 0, 1, FALSE},
  {LLM_DTYPE_Q2_K, 80, 2, FALSE},       /* after scales[16], qs[64] */
  {LLM_DTYPE_Q3_K, 108, 1, FALSE},      /* after hmask, qs, scales */
  {LLM_DTYPE_Q4_K, 0, 2, FALSE},
  {LLM_DTYPE_Q5_K, 0, 2, FALSE},
  {LLM_DTYPE_Q6_K, 208, 1, FALSE},      /* after ql, qh, scales */
  {LLM_DTYPE_Q8_K, 0, 1, TRUE},
};

static const ScaleLayout *
scale_layout (LlmDType t)
{
  for (guint i = 0; i < G_N_ELEMENTS (scale_layouts); i++)
    if (scale_layouts[i].type == t)
      return &scale_layouts[i];
  return NULL;
}

static inline guint32
load_u32 (const guint8 * p)
{
  guint32 u;

  memcpy (&u, p, 4);
  return GUINT32_FROM_LE (u);
}

static inline guint16
load_u16 (const guint8 * p)
{
  guint16 u;

  memcpy (&u, p, 2);
  return GUINT16_FROM_LE (u);
}

/* TRUE if none of the @n F32 at @p, @stride bytes apart, has the all-ones
 * exponent. */
static inline gboolean
f32_finite (const guint8 * p, gsize n, gsize stride)
{
  guint32 acc = 0;

  for (gsize i = 0; i < n; i++)
    acc |= (load_u32 (p + stride * i) & 0x7fffffffu) + F32_EXP_LSB;
  return (acc & 0x80000000u) == 0;
}

/* Same for @n 16-bit floats @stride bytes apart whose exponent's lowest bit
 * is @lsb: F16 or BF16 values (@stride 2), or the F16 scales of quantized
 * blocks (@stride the block's bytes). */
static inline gboolean
half_finite (const guint8 * p, gsize n, gsize stride, guint16 lsb)
{
  guint16 acc = 0;

  for (gsize i = 0; i < n; i++)
    acc |= (guint16) ((load_u16 (p + stride * i) & 0x7fffu) + lsb);
  return (acc & 0x8000u) == 0;
}

/* Whether elements [@at, @at + @len) of @t are finite; for quantized
 * types the scales of the blocks they make up (@at and @len are whole
 * blocks). */
static gboolean
chunk_finite (const LlmTensor * t, const ScaleLayout * q, guint64 at, gsize len)
{
  const guint blk = llm_dtype_block_elems (t->dtype);
  const guint bytes = llm_dtype_block_bytes (t->dtype);
  const guint8 *p = t->data + at / blk * bytes;
  gboolean ok = TRUE;

  switch (t->dtype) {
    case LLM_DTYPE_F32:
      return f32_finite (p, len, 4);
    case LLM_DTYPE_F16:
      return half_finite (p, len, 2, F16_EXP_LSB);
    case LLM_DTYPE_BF16:
      return half_finite (p, len, 2, BF16_EXP_LSB);
    default:
      for (guint k = 0; k < q->n; k++)
        ok &= q->f32 ? f32_finite (p + q->offset + 4 * k, len / blk, bytes) :
            half_finite (p + q->offset + 2 * k, len / blk, bytes, F16_EXP_LSB);
      return ok;
  }
}

/* @scale: for a quantized type, which of the block's scales (0: d, 1:
 * dmin, the scale of the minimums), else -1. */
static gboolean
fail (const LlmTensor * t, const gchar * file, guint64 element, gint scale,
    gboolean negative, gboolean mantissa, GError ** error)
{
  g_autofree gchar *where = NULL;
  g_autofree gchar *in = NULL;

  if (t->n_dims == 2)
    where = g_strdup_printf (" (row %" G_GUINT64_FORMAT ", column %"
        G_GUINT64_FORMAT ")", element / t->ne[0], element % t->ne[0]);
  if (scale >= 0)
    in = g_strdup_printf (", the %sscale of its %s block",
        scale ? "dmin " : "", llm_dtype_name (t->dtype));
  g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
      "%s: tensor '%s' holds %s at element %" G_GUINT64_FORMAT "%s%s",
      file, t->name, mantissa ? "a NaN" : negative ? "-Inf" : "+Inf",
      element, where ? where : "", in ? in : "");
  return FALSE;
}

/* The error for the first non-finite value among elements [@at, @at +
 * @len) of @t, a chunk that chunk_finite() refused. */
static gboolean
locate (const LlmTensor * t, const ScaleLayout * q, const gchar * file,
    guint64 at, gsize len, GError ** error)
{
  const guint blk = llm_dtype_block_elems (t->dtype);
  const guint bytes = llm_dtype_block_bytes (t->dtype);

  for (gsize i = 0; i < len; i += blk) {
    const guint8 *p = t->data + (at + i) / blk * bytes;

    for (guint k = 0; k < (q ? q->n : 1); k++) {
      gint scale = q ? (gint) k : -1;
      guint32 u;

      if (t->dtype == LLM_DTYPE_F32 || (q && q->f32)) {
        u = load_u32 (p + (q ? q->offset + 4 * k : 0));
        if ((u & F32_EXP) == F32_EXP)
          return fail (t, file, at + i, scale, u >> 31, (u & 0x7fffffu) != 0,
              error);
      } else if (t->dtype == LLM_DTYPE_BF16) {
        u = load_u16 (p);
        if ((u & BF16_EXP) == BF16_EXP)
          return fail (t, file, at + i, scale, u >> 15, (u & 0x7fu) != 0,
              error);
      } else {                  /* F16 values, or F16 scales */
        u = load_u16 (p + (q ? q->offset + 2 * k : 0));
        if ((u & F16_EXP) == F16_EXP)
          return fail (t, file, at + i, scale, u >> 15, (u & 0x3ffu) != 0,
              error);
      }
    }
  }
  g_return_val_if_reached (TRUE);
}

gboolean
llm_tensor_check_finite (const LlmTensor * t, const gchar * file,
    GError ** error)
{
  const ScaleLayout *q;
  guint64 n, need, n_chunks;
  gint64 bad = G_MAXINT64;

  g_return_val_if_fail (t != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  q = scale_layout (t->dtype);
  /* integers hold no NaN; Q4_1, Q5_1 and Q8_1 cannot be computed with, and
   * the loader refuses them before */
  if (q == NULL && t->dtype != LLM_DTYPE_F32 && t->dtype != LLM_DTYPE_F16 &&
      t->dtype != LLM_DTYPE_BF16)
    return TRUE;
  n = llm_tensor_n_elements (t);
  /* the readers checked this; a view that lies would be read past its end */
  if (!llm_dtype_bytes_for (t->dtype, n, &need) || need > t->nbytes) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: tensor '%s' spans %" G_GUINT64_FORMAT " bytes, less than its "
        "shape needs", file, t->name, t->nbytes);
    return FALSE;
  }

  n_chunks = (n + CHUNK - 1) / CHUNK;
  /* no early exit: a broken file is rare, and then the pass is one more */
#ifdef _OPENMP
#pragma omp parallel for schedule(static) reduction(min:bad) \
    if (n_chunks >= PARALLEL_CHUNKS)
#endif
  for (gint64 c = 0; c < (gint64) n_chunks; c++)
    if (!chunk_finite (t, q, c * CHUNK, MIN (CHUNK, n - c * CHUNK)) && c < bad)
      bad = c;

  if (bad == G_MAXINT64)
    return TRUE;
  return locate (t, q, file, bad * CHUNK, MIN (CHUNK, n - bad * CHUNK), error);
}
