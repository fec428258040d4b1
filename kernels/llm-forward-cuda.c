/* LLMasOS - the llama forward pass on the GPU.
 *
 * The same layer loop as core/llm-forward.c (read that first), with every
 * step a kernel of kernels/ on one stream:
 *
 *   x = embedding[token]
 *   for each layer:
 *     xb = rmsnorm(x) * attn_norm
 *     q|k|v = wqkv xb;  rope(q|k);  cache k, v
 *     x += wo attention(q, cached k, cached v)
 *     xb = rmsnorm(x) * ffn_norm
 *     g|u = w_gate_up xb
 *     x += w_down (silu(g) * u)
 *   hidden = rmsnorm(x) * out_norm
 *
 * (wq, wk, wv are stacked into one matrix at upload, w_gate and w_up too:
 * one launch each instead of three and two, on larger matrices; q and k
 * then sit side by side, so one RoPE launch rotates both.)
 *
 * Decode (one token) reads every weight once through the matvecs; the
 * step is captured as a CUDA graph per KV cache, its token and position
 * read from device memory, so that a step costs one launch. Prefill runs
 * blocks of up to c->block tokens (PREFILL_BLOCK, or
 * LLMASOS_CUDA_PREFILL_BLOCK from the environment, for measuring): GEMMs
 * through cuBLAS (quantized weights dequantized to F16 for it, a layer's
 * matrix at a time) and the fused causal attention kernel.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-forward-cuda.h"

#include <math.h>
#include <string.h>

#include "llm-error.h"

/* Tokens per prefill pass (the activations are sized for it). */
#define PREFILL_BLOCK 2048
#define PREFILL_BLOCK_MAX 8192
/* Below this many tokens, quantized weights go through the multi-vector
 * matvec (reads them once per 8 tokens) rather than a dequantize + GEMM. */
#define QUANT_GEMM_MIN_TOKENS 32
#define MULTI_MAX 8
/* Graphs kept per compute (one per KV cache it decoded); past this they
 * are all dropped and recaptured as needed. */
#define MAX_GRAPHS 16

/* The fused decode kernels (llm-cuda.h), chosen by LLMASOS_CUDA_FUSE:
 * rmsnorm into the matvec after it; SwiGLU into the gate|up matvec
 * (16-bit, F32) or the down one (Q8_0, Q4_0); RoPE with the cache append
 * (rope), or both into the attention kernel (att, F16 caches);
 * for Q8_0 / Q4_0, x rounded once into device memory (with the rmsnorm
 * or SwiGLU before it); the rmsnorms after the residual matvecs split
 * between those and the matvecs after them, no kernel of their own
 * (addnorm; it takes precedence over norm, qx and the Q8_0/Q4_0 SwiGLU
 * fusion where they meet: those matvecs then get x by kernels before
 * them; with addnorm, swiglu puts the SwiGLU into the gate|up matvec for
 * every dtype, qswiglu for Q8_0 / Q4_0 only).
 * The default is what measured fastest
 * (docs/benchmarks.md). */
#define FUSE_NORM 1u
#define FUSE_SWIGLU 2u
#define FUSE_ROPE 4u
#define FUSE_QX 8u
#define FUSE_ATT 16u
#define FUSE_ADDNORM 32u
#define FUSE_QSWIGLU 64u
#define FUSE_ALL 127u
/* att and addnorm: the fusions measured faster, for every dtype; the
 * SwiGLU in the gate|up matvec for Q8_0 / Q4_0 only (three H100 calls:
 * Q8_0 +0.9 to +1.1 %, Q4_0 0 to +1.4 %; F16 lost 1.6 %)
 * (docs/benchmarks.md, 2026-12-07) */
#define FUSE_DEFAULT (FUSE_ATT | FUSE_ADDNORM | FUSE_QSWIGLU)

struct _LlmCudaKv
{
  guint64 id;                   /* unique in the process (graph cache key) */
  gint device;
  LlmDType dtype;
  guint n_layers;
  guint kv_dim;
  guint n_ctx;
  guint len;
  void *k;                      /* [n_layers][n_ctx][kv_dim] */
  void *v;
  guint16 *k16, *v16;           /* Q8_0: one layer widened to F16 for the
                                 * prefill attention */
};

struct _LlmCudaCompute
{
  const LlmCudaWeights *w;
  LlmHParams hp;
  guint q_dim;
  guint kv_dim;
  guint qkv_dim;                /* q_dim + 2 kv_dim: a row of c->qkv */
  float scale;                  /* of q . k */
  LlmCudaStream *stream;
  gboolean graphs_enabled;
  guint fuse;                   /* FUSE_*: the fused decode kernels used */
  GHashTable *graphs;           /* kv id -> LlmCudaGraph */

  guint block;                  /* tokens per prefill pass */
  /* device activations, block rows each */
  float *x, *xb, *qkv, *att, *gate_up, *hb;
  guint16 *xh;                  /* F16/BF16 copy of a GEMM's input */
  guint16 *wh;                  /* a dequantized weight matrix (lazy) */
  gsize wh_bytes;
  void *xq;                     /* x rounded to Q8_0 (decode, quant) */
  float *ss;                    /* FUSE_ADDNORM: LLM_CUDA_SS_PARTS sums of
                                 * squares for each norm of a step */
  float *hidden;                /* [dim], the last token's */
  float *logits;                /* [n_vocab] */
  float *att_scratch;           /* for caches of up to att_scratch_ctx */
  guint att_scratch_ctx;
  gint32 *tokens;               /* [block] */
  gint32 *step;                 /* device {token, pos, pos + 1} */
  gint32 *step_host;            /* pinned staging of the same */
  gboolean step_queued;         /* a step's copy from step_host may still
                                 * be queued (no sync since) */
  gint32 *tokens_host;          /* pinned [block] */
  GPtrArray *allocations;
};

static guint64 next_kv_id = 1;

/* --- KV caches --- */

/* Bytes a position of one layer's keys (or values) takes. */
static gsize
kv_row_bytes (LlmDType dtype, guint kv_dim)
{
  if (dtype == LLM_DTYPE_Q8_0)
    return kv_dim + kv_dim / 32 * 4;    /* kernels/kv-q8_0.cuh */
  return (gsize) kv_dim * (dtype == LLM_DTYPE_F32 ? 4 : 2);
}

/* The cache's dtype: @type where it is not AUTO, else
 * LLMASOS_CUDA_KV_DTYPE (f32, f16, q8_0) where set, else F32 for F32
 * weights (the CPU's logits to 1e-6) and F16 for the others. FALSE for a
 * name it does not know or a Q8_0 cache of rows that are not whole
 * 32-blocks. */
static gboolean
kv_pick_dtype (const LlmCudaWeights * w, guint kv_dim, LlmKvType type,
    LlmDType * dtype, GError ** error)
{
  const gchar *env = g_getenv ("LLMASOS_CUDA_KV_DTYPE");

  *dtype = w->layers[0].wqkv.dtype == LLM_DTYPE_F32 ? LLM_DTYPE_F32 :
      LLM_DTYPE_F16;
  if (type == LLM_KV_F32)
    *dtype = LLM_DTYPE_F32;
  else if (type == LLM_KV_F16)
    *dtype = LLM_DTYPE_F16;
  else if (type == LLM_KV_Q8_0)
    *dtype = LLM_DTYPE_Q8_0;
  else if (env == NULL || *env == '\0')
    return TRUE;
  else if (g_ascii_strcasecmp (env, "f32") == 0)
    *dtype = LLM_DTYPE_F32;
  else if (g_ascii_strcasecmp (env, "f16") == 0)
    *dtype = LLM_DTYPE_F16;
  else if (g_ascii_strcasecmp (env, "q8_0") == 0)
    *dtype = LLM_DTYPE_Q8_0;
  else {
    g_set_error (error, LLM_ERROR, LLM_ERROR_INPUT,
        "LLMASOS_CUDA_KV_DTYPE=%s: the KV cache is f32, f16 or q8_0", env);
    return FALSE;
  }
  if (*dtype == LLM_DTYPE_Q8_0 && kv_dim % 32 != 0) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
        "a Q8_0 KV cache needs rows of whole 32-blocks; this model's "
        "keys are %u wide", kv_dim);
    return FALSE;
  }
  return TRUE;
}

LlmCudaKv *
llm_cuda_kv_new (const LlmCudaWeights * w, guint n_ctx, LlmKvType type,
    GError ** error)
{
  const LlmHParams *hp = &w->hp;
  LlmCudaKv *kv = g_new0 (LlmCudaKv, 1);
  guint64 bytes, wide = 0;

  kv->id = g_atomic_pointer_add (&next_kv_id, 1);
  kv->device = w->device;
  kv->n_layers = hp->n_layers;
  kv->kv_dim = hp->n_kv_heads * hp->head_dim;
  kv->n_ctx = n_ctx;
  if (!kv_pick_dtype (w, kv->kv_dim, type, &kv->dtype, error)) {
    g_free (kv);
    return NULL;
  }
  bytes = (guint64) kv->n_layers * n_ctx * kv_row_bytes (kv->dtype,
      kv->kv_dim);
  if (kv->dtype == LLM_DTYPE_Q8_0)
    wide = (guint64) n_ctx * kv->kv_dim * 2;
  if ((kv->k = llm_cuda_alloc (bytes, error)) == NULL ||
      (kv->v = llm_cuda_alloc (bytes, error)) == NULL ||
      (wide > 0 && ((kv->k16 = llm_cuda_alloc (wide, error)) == NULL ||
              (kv->v16 = llm_cuda_alloc (wide, error)) == NULL))) {
    g_prefix_error (error, "cannot make a KV cache of %u positions "
        "(%" G_GUINT64_FORMAT " MiB of keys and values, %s) on the GPU: ",
        n_ctx, (2 * (bytes + wide)) >> 20, llm_dtype_name (kv->dtype));
    llm_cuda_kv_free (kv);
    return NULL;
  }
  return kv;
}

void
llm_cuda_kv_free (LlmCudaKv * kv)
{
  if (kv == NULL)
    return;
  llm_cuda_free (kv->k);
  llm_cuda_free (kv->v);
  llm_cuda_free (kv->k16);
  llm_cuda_free (kv->v16);
  g_free (kv);
}

guint
llm_cuda_kv_len (const LlmCudaKv * kv)
{
  return kv->len;
}

void
llm_cuda_kv_truncate (LlmCudaKv * kv, guint len)
{
  kv->len = MIN (kv->len, len);
}

LlmDType
llm_cuda_kv_dtype (const LlmCudaKv * kv)
{
  return kv->dtype;
}

static gsize
kv_layer_offset (const LlmCudaKv * kv, guint l)
{
  return (gsize) l * kv->n_ctx * kv_row_bytes (kv->dtype, kv->kv_dim);
}

/* --- computes --- */

static gpointer
scratch (LlmCudaCompute * c, gsize bytes, GError ** error)
{
  gpointer p = llm_cuda_alloc (MAX (bytes, 16), error);

  if (p != NULL)
    g_ptr_array_add (c->allocations, p);
  return p;
}

void
llm_cuda_compute_free (LlmCudaCompute * c)
{
  if (c == NULL)
    return;
  if (c->stream)
    llm_cuda_stream_sync (c->stream, NULL);
  g_clear_pointer (&c->graphs, g_hash_table_unref);
  g_clear_pointer (&c->stream, llm_cuda_stream_free);
  g_ptr_array_unref (c->allocations);
  llm_cuda_host_free (c->step_host);
  llm_cuda_host_free (c->tokens_host);
  g_free (c);
}

/* FUSE_ADDNORM's partial sums: two norms a layer. */
static gsize
ss_bytes (const LlmHParams * hp)
{
  return (gsize) 2 * hp->n_layers * LLM_CUDA_SS_PARTS * sizeof (float);
}

/* Those of norm @k: 2 l the attention norm of layer l, 2 l + 1 its FFN
 * norm. */
static float *
ss_slot (LlmCudaCompute * c, guint k)
{
  return c->ss + (gsize) k * LLM_CUDA_SS_PARTS;
}

/* LLMASOS_CUDA_FUSE: "0" / "none", "1" / "all", or a comma list of
 * norm, swiglu, qswiglu, rope, qx, att, addnorm; unset: FUSE_DEFAULT. */
static guint
parse_fuse (const gchar * env)
{
  static const struct
  {
    const gchar *name;
    guint bit;
  } names[] = {
    {"norm", FUSE_NORM}, {"swiglu", FUSE_SWIGLU},
    {"qswiglu", FUSE_QSWIGLU}, {"rope", FUSE_ROPE},
    {"qx", FUSE_QX}, {"att", FUSE_ATT}, {"addnorm", FUSE_ADDNORM},
    {"all", FUSE_ALL}, {"1", FUSE_ALL}, {"none", 0}, {"0", 0},
  };
  g_auto (GStrv) parts = NULL;
  guint mask = 0;

  if (env == NULL)
    return FUSE_DEFAULT;
  parts = g_strsplit (env, ",", -1);
  for (guint i = 0; parts[i] != NULL; i++) {
    guint k;

    for (k = 0; k < G_N_ELEMENTS (names); k++)
      if (strcmp (g_strstrip (parts[i]), names[k].name) == 0)
        break;
    if (k == G_N_ELEMENTS (names))
      g_warning ("LLMASOS_CUDA_FUSE: '%s' is not one of norm, swiglu, "
          "qswiglu, rope, qx, att, addnorm, all, none", parts[i]);
    else
      mask |= names[k].bit;
  }
  return mask;
}

LlmCudaCompute *
llm_cuda_compute_new (const LlmCudaWeights * w, GError ** error)
{
  const LlmHParams *hp = &w->hp;
  LlmCudaCompute *c = g_new0 (LlmCudaCompute, 1);
  gsize B, f = sizeof (float);
  guint widest;
  const gchar *env = g_getenv ("LLMASOS_CUDA_GRAPHS");

  c->w = w;
  c->hp = *hp;
  c->q_dim = hp->n_heads * hp->head_dim;
  c->kv_dim = hp->n_kv_heads * hp->head_dim;
  c->qkv_dim = c->q_dim + 2 * c->kv_dim;
  c->scale = hp->attn_scale > 0 ? hp->attn_scale :
      1.0f / sqrtf ((float) hp->head_dim);
  c->graphs_enabled = env == NULL || strcmp (env, "0") != 0;
  env = g_getenv ("LLMASOS_CUDA_PREFILL_BLOCK");
  c->block = env ? (guint) CLAMP (g_ascii_strtoull (env, NULL, 10), 1,
      PREFILL_BLOCK_MAX) : PREFILL_BLOCK;
  B = c->block;
  c->fuse = parse_fuse (g_getenv ("LLMASOS_CUDA_FUSE"));
  c->graphs = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free,
      (GDestroyNotify) llm_cuda_graph_free);
  c->allocations = g_ptr_array_new_with_free_func (llm_cuda_free);
  widest = MAX (MAX (hp->dim, hp->ffn_dim), c->q_dim);
  /* (xh holds a GEMM's input: at most ffn_dim columns) */

  if (!llm_cuda_device_open (w->device, NULL, error) ||
      (c->stream = llm_cuda_stream_new (error)) == NULL ||
      (c->x = scratch (c, B * hp->dim * f, error)) == NULL ||
      (c->xb = scratch (c, B * hp->dim * f, error)) == NULL ||
      (c->qkv = scratch (c, B * c->qkv_dim * f, error)) == NULL ||
      (c->att = scratch (c, B * c->q_dim * f, error)) == NULL ||
      (c->gate_up = scratch (c, B * 2 * hp->ffn_dim * f, error)) == NULL ||
      (c->hb = scratch (c, B * hp->ffn_dim * f, error)) == NULL ||
      (c->xh = scratch (c, B * widest * 2, error)) == NULL ||
      (c->xq = scratch (c, llm_cuda_quantized_x_bytes (widest),
              error)) == NULL ||
      (c->ss = scratch (c, ss_bytes (hp), error)) == NULL ||
      (c->hidden = scratch (c, hp->dim * f, error)) == NULL ||
      (c->logits = scratch (c, (gsize) hp->n_vocab * f, error)) == NULL ||
      (c->tokens = scratch (c, B * sizeof (gint32), error)) == NULL ||
      (c->step = scratch (c, 4 * sizeof (gint32), error)) == NULL ||
      (c->step_host = llm_cuda_host_alloc (4 * sizeof (gint32),
              error)) == NULL ||
      (c->tokens_host = llm_cuda_host_alloc (B * sizeof (gint32),
              error)) == NULL) {
    g_prefix_error (error, "cannot set up the GPU computation: ");
    llm_cuda_compute_free (c);
    return NULL;
  }
  return c;
}

LlmCudaStream *
llm_cuda_compute_get_stream (LlmCudaCompute * c)
{
  return c->stream;
}

float *
llm_cuda_compute_logits_buffer (LlmCudaCompute * c)
{
  return c->logits;
}

/* out[t] = M x[t] for @n rows of @x: matvecs for few tokens, GEMMs (cuBLAS)
 * for many. */
static gboolean
project (LlmCudaCompute * c, float *out, const LlmCudaMatrix * m,
    const float *x, guint n, GError ** error)
{
  LlmCudaStream *s = c->stream;
  LlmDType half = m->dtype == LLM_DTYPE_BF16 ? LLM_DTYPE_BF16 : LLM_DTYPE_F16;
  const void *wdata = m->data;

  if (n == 1) {
    llm_cuda_matvec_packed (out, m->data, m->dtype, x, m->rows, m->cols, s);
    return TRUE;
  }
  if (m->dtype == LLM_DTYPE_F32 || ((m->dtype == LLM_DTYPE_Q8_0 ||
              m->dtype == LLM_DTYPE_Q4_0) && n < QUANT_GEMM_MIN_TOKENS)) {
    for (guint t = 0; t < n; t += MULTI_MAX)
      llm_cuda_matvec_packed_multi (out + (gsize) t * m->rows, m->data,
          m->dtype, x + (gsize) t * m->cols, MIN (MULTI_MAX, n - t), m->rows,
          m->cols, s);
    return TRUE;
  }
  if (m->dtype != LLM_DTYPE_F16 && m->dtype != LLM_DTYPE_BF16) {
    gsize bytes = (gsize) m->rows * m->cols * 2;

    if (bytes > c->wh_bytes) {
      if (c->wh != NULL)
        g_ptr_array_remove_fast (c->allocations, c->wh);
      c->wh = scratch (c, bytes, error);
      c->wh_bytes = c->wh ? bytes : 0;
      if (c->wh == NULL)
        return FALSE;
    }
    llm_cuda_matrix_dequantize_f16 (c->wh, m->data, m->dtype, m->rows,
        m->cols, s);
    wdata = c->wh;
  }
  llm_cuda_convert_f32 (c->xh, half, x, (gsize) n * m->cols, s);
  return llm_cuda_matmul_half (out, wdata, c->xh, half, m->rows, m->cols, n,
      s, error);
}

/* x[t] += M y[t]: the residual branches; fused into the matvec for one
 * token. @tmp: n rows of M's outputs. */
static gboolean
project_add (LlmCudaCompute * c, float *x, const LlmCudaMatrix * m,
    const float *y, float *tmp, guint n, GError ** error)
{
  if (n == 1) {
    llm_cuda_matvec_packed_add (x, m->data, m->dtype, y, m->rows, m->cols,
        c->stream);
    return TRUE;
  }
  if (!project (c, tmp, m, y, n, error))
    return FALSE;
  llm_cuda_vector_add (x, tmp, (gsize) n * m->rows, c->stream);
  return TRUE;
}

static gboolean
is_quant (LlmDType t)
{
  return t == LLM_DTYPE_Q8_0 || t == LLM_DTYPE_Q4_0;
}

/* out (+ if @add)= M x' for one token, x' = rmsnorm(x) * @norm (@norm not
 * NULL), silu(g) * u of x = [g | u] (@swiglu), or x: in as few kernels as
 * M's dtype allows (llm-cuda.h). Q8_0 / Q4_0 round x' once into c->xq
 * where FUSE_QX is on (else every matvec block rounds it). */
static void
decode_matvec (LlmCudaCompute * c, float *out, const LlmCudaMatrix * m,
    const float *x, const LlmCudaMatrix * norm, gboolean swiglu, gboolean add)
{
  const LlmHParams *hp = &c->hp;
  LlmCudaStream *s = c->stream;
  const void *nd = norm ? norm->data : NULL;
  LlmDType nt = norm ? norm->dtype : LLM_DTYPE_F32;

  if (is_quant (m->dtype) && (c->fuse & FUSE_QX) &&
      llm_cuda_quantize_x (c->xq, m->dtype, x, m->cols, nd, nt, hp->rms_eps,
          swiglu, s) &&
      llm_cuda_matvec_packed_quantized (out, m->data, m->dtype, c->xq,
          m->rows, m->cols, add, s))
    return;
  if (norm != NULL) {
    if (!add && (c->fuse & FUSE_NORM) &&
        llm_cuda_matvec_packed_rmsnorm (out, m->data, m->dtype, x, nd, nt,
            hp->rms_eps, m->rows, m->cols, s))
      return;
    llm_cuda_rmsnorm_forward (c->xb, x, nd, nt, m->cols, 1, hp->rms_eps, s);
    x = c->xb;
  } else if (swiglu) {
    if (add && (c->fuse & FUSE_SWIGLU) &&
        llm_cuda_matvec_packed_swiglu_add (out, m->data, m->dtype, x,
            m->rows, m->cols, s))
      return;
    llm_cuda_swiglu_rows (c->hb, x, 1, m->cols, s);
    x = c->hb;
  }
  if (add)
    llm_cuda_matvec_packed_add (out, m->data, m->dtype, x, m->rows, m->cols,
        s);
  else
    llm_cuda_matvec_packed (out, m->data, m->dtype, x, m->rows, m->cols, s);
}

/* FUSE_ADDNORM: x += M y (y = silu(g) * u of y = [g | u] where @swiglu),
 * and c->xb = rmsnorm(x) * @next_norm for the matvec after it. TRUE: the
 * rmsnorm is split (c->xb is x * next_norm, the sums of squares in @ss,
 * for decode_matvec_normed); FALSE where the matvec cannot split it: the
 * whole rmsnorm in c->xb, by a kernel of its own. */
static gboolean
decode_residual_norm (LlmCudaCompute * c, const LlmCudaMatrix * m,
    const float *y, gboolean swiglu, const LlmCudaMatrix * next_norm,
    float *ss)
{
  LlmCudaStream *s = c->stream;

  if (swiglu) {
    llm_cuda_swiglu_rows (c->hb, y, 1, m->cols, s);
    y = c->hb;
  }
  if (llm_cuda_matvec_packed_add_norm (c->x, m->data, m->dtype, y, m->rows,
          m->cols, c->xb, next_norm->data, next_norm->dtype, ss, s))
    return TRUE;
  llm_cuda_matvec_packed_add (c->x, m->data, m->dtype, y, m->rows, m->cols,
      s);
  llm_cuda_rmsnorm_forward (c->xb, c->x, next_norm->data, next_norm->dtype,
      m->rows, 1, c->hp.rms_eps, s);
  return FALSE;
}

/* out = M x' where x' is the rmsnorm decode_residual_norm left in c->xb:
 * split (@ss its sums: the scale applied in the matvec) or whole (@ss
 * NULL). @gated: out = silu(g) * u of [g | u] = M x' (any dtype with
 * the split rmsnorm; F32, F16, BF16 with the whole one); FALSE, nothing
 * launched, where that cannot be done in the matvec. */
static gboolean
decode_matvec_normed (LlmCudaCompute * c, float *out,
    const LlmCudaMatrix * m, float *ss, gboolean gated)
{
  LlmCudaStream *s = c->stream;
  float eps = c->hp.rms_eps;

  if (ss != NULL) {
    if (llm_cuda_matvec_packed_scaled (out, m->data, m->dtype, c->xb, ss,
            eps, m->rows, m->cols, gated, s))
      return TRUE;
    if (gated)
      return FALSE;
    llm_cuda_rmsnorm_finish (c->xb, c->xb, ss, m->cols, eps, s);
  } else if (gated) {
    return llm_cuda_matvec_packed_rmsnorm_swiglu (out, m->data, m->dtype,
        c->xb, NULL, LLM_DTYPE_F32, eps, m->rows, m->cols, s);
  }
  llm_cuda_matvec_packed (out, m->data, m->dtype, c->xb, m->rows, m->cols,
      s);
  return TRUE;
}

/* The decode step's attention of the token in c->qkv at the position in
 * c->step: its RoPE, its k and v appended to the cache, attention over
 * the cache into c->att; in one kernel (FUSE_ATT, where the attention
 * kernel takes the shape), two (FUSE_ROPE) or four. */
static void
decode_attention (LlmCudaCompute * c, void *kc, void *vc, LlmDType kv_dtype,
    guint n_ctx)
{
  const LlmHParams *hp = &c->hp;
  LlmCudaStream *s = c->stream;
  gboolean interleaved = hp->rope_style == LLM_ROPE_INTERLEAVED;
  float *k = c->qkv + c->q_dim;

  if ((c->fuse & FUSE_ATT) &&
      llm_cuda_attention_decode_rope_at (c->att, c->qkv, kc, vc, kv_dtype,
          c->step + 2, n_ctx, hp->n_heads, hp->n_kv_heads, hp->head_dim,
          c->kv_dim, c->scale, 0, hp->rope_theta, interleaved,
          c->att_scratch, s))
    return;
  if ((c->fuse & FUSE_ROPE) && kv_dtype != LLM_DTYPE_Q8_0) {
    llm_cuda_rope_kv_store_at (c->qkv, hp->n_heads, hp->n_kv_heads,
        hp->head_dim, kc, vc, kv_dtype, c->step + 1, hp->rope_theta,
        interleaved, s);
  } else {
    /* q's heads and k's are adjacent in a row: one rotation for both */
    llm_cuda_rope_apply_at (c->qkv, 1, c->qkv_dim,
        hp->n_heads + hp->n_kv_heads, hp->head_dim, c->step + 1,
        hp->rope_theta, interleaved, s);
    llm_cuda_kv_store (kc, vc, kv_dtype, k, k + c->kv_dim, c->qkv_dim, 1,
        c->kv_dim, 0, c->step + 1, s);
  }
  llm_cuda_attention_decode_at (c->att, c->qkv, kc, vc, kv_dtype,
      c->step + 2, n_ctx, hp->n_heads, hp->n_kv_heads, hp->head_dim,
      c->kv_dim, c->scale, 0, c->att_scratch, s);
}

/* One decode layer in the fused kernels where they apply (llm-cuda.h):
 * rmsnorm into the wqkv and gate|up matvecs (or into the rounding of x
 * for Q8_0 / Q4_0), RoPE and the cache append in one kernel, the SwiGLU
 * after the gate|up matvec (F32, F16, BF16) or before the down one.
 * Position and token from c->step (graph-safe). */
static void
decode_layer_fused (LlmCudaCompute * c, const LlmCudaLayer * L, void *kc,
    void *vc, LlmDType kv_dtype, guint n_ctx)
{
  const LlmHParams *hp = &c->hp;
  LlmCudaStream *s = c->stream;
  const LlmCudaMatrix *gu = &L->w_gate_up;

  decode_matvec (c, c->qkv, &L->wqkv, c->x, &L->attn_norm, FALSE, FALSE);
  decode_attention (c, kc, vc, kv_dtype, n_ctx);
  decode_matvec (c, c->x, &L->wo, c->att, NULL, FALSE, TRUE);

  if (!is_quant (gu->dtype) && (c->fuse & FUSE_SWIGLU)) {
    const float *xn = c->x;
    const void *norm = L->ffn_norm.data;

    if (!(c->fuse & FUSE_NORM)) {
      llm_cuda_rmsnorm_forward (c->xb, c->x, norm, L->ffn_norm.dtype,
          hp->dim, 1, hp->rms_eps, s);
      xn = c->xb;
      norm = NULL;
    }
    if (llm_cuda_matvec_packed_rmsnorm_swiglu (c->hb, gu->data, gu->dtype,
            xn, norm, L->ffn_norm.dtype, hp->rms_eps, gu->rows, gu->cols,
            s)) {
      decode_matvec (c, c->x, &L->w_down, c->hb, NULL, FALSE, TRUE);
      return;
    }
  }
  decode_matvec (c, c->gate_up, gu, c->x, &L->ffn_norm, FALSE, FALSE);
  decode_matvec (c, c->x, &L->w_down, c->gate_up, NULL, TRUE, TRUE);
}

/* One decode layer with FUSE_ADDNORM (decode_layer_fused's other
 * fusions as they apply): the rmsnorms after wo and after w_down (the
 * next layer's, @next; NULL for the last layer, whose output norm
 * run_layers takes) split between those matvecs and the ones after them.
 * @split_in: this layer's attention norm is in c->xb, split (its sums in
 * its slot) or whole (FALSE); NULL for layer 0, whose norm is done here.
 * Sets *@split_in for the next layer. */
static void
decode_layer_addnorm (LlmCudaCompute * c, guint l, const LlmCudaLayer * L,
    const LlmCudaLayer * next, gboolean * split_in, void *kc, void *vc,
    LlmDType kv_dtype, guint n_ctx)
{
  const LlmCudaMatrix *gu = &L->w_gate_up;
  gboolean split, gated = FALSE;
  const float *h = c->gate_up;

  if (l == 0)
    decode_matvec (c, c->qkv, &L->wqkv, c->x, &L->attn_norm, FALSE, FALSE);
  else
    decode_matvec_normed (c, c->qkv, &L->wqkv,
        *split_in ? ss_slot (c, 2 * l) : NULL, FALSE);
  decode_attention (c, kc, vc, kv_dtype, n_ctx);
  split = decode_residual_norm (c, &L->wo, c->att, FALSE, &L->ffn_norm,
      ss_slot (c, 2 * l + 1));

  if ((c->fuse & FUSE_SWIGLU) ||
      (is_quant (gu->dtype) && (c->fuse & FUSE_QSWIGLU)))
    gated = decode_matvec_normed (c, c->hb, gu,
        split ? ss_slot (c, 2 * l + 1) : NULL, TRUE);
  if (gated)
    h = c->hb;
  else
    decode_matvec_normed (c, c->gate_up, gu,
        split ? ss_slot (c, 2 * l + 1) : NULL, FALSE);
  if (next != NULL)
    *split_in = decode_residual_norm (c, &L->w_down, h, !gated,
        &next->attn_norm, ss_slot (c, 2 * (l + 1)));
  else
    decode_matvec (c, c->x, &L->w_down, h, NULL, !gated, TRUE);
}

/* The layers for @n tokens at positions pos0 ..; for one token the
 * positions come from c->step on the device (graph-safe). */
static gboolean
run_layers (LlmCudaCompute * c, LlmCudaKv * kv, guint n, guint pos0,
    GError ** error)
{
  const LlmHParams *hp = &c->hp;
  const LlmCudaWeights *w = c->w;
  LlmCudaStream *s = c->stream;
  gboolean decode = n == 1;
  gboolean interleaved = hp->rope_style == LLM_ROPE_INTERLEAVED;

  gboolean addnorm = decode && (c->fuse & FUSE_ADDNORM);
  gboolean split_in = FALSE;

  if (addnorm && !llm_cuda_memset (c->ss, 0, ss_bytes (hp), s, error))
    return FALSE;
  llm_cuda_embedding_gather (c->x, w->tok_embd.data, w->tok_embd.dtype,
      hp->n_vocab, hp->dim, decode ? c->step : c->tokens, n, s);
  for (guint l = 0; l < hp->n_layers; l++) {
    const LlmCudaLayer *L = &w->layers[l];
    guint8 *kc = (guint8 *) kv->k + kv_layer_offset (kv, l);
    guint8 *vc = (guint8 *) kv->v + kv_layer_offset (kv, l);

    float *k = c->qkv + c->q_dim, *v = k + c->kv_dim;

    if (addnorm) {
      decode_layer_addnorm (c, l, L, l + 1 < hp->n_layers ?
          &w->layers[l + 1] : NULL, &split_in, kc, vc, kv->dtype,
          kv->n_ctx);
      continue;
    }
    if (decode && c->fuse != 0) {
      decode_layer_fused (c, L, kc, vc, kv->dtype, kv->n_ctx);
      continue;
    }
    llm_cuda_rmsnorm_forward (c->xb, c->x, L->attn_norm.data,
        L->attn_norm.dtype, hp->dim, n, hp->rms_eps, s);
    if (!project (c, c->qkv, &L->wqkv, c->xb, n, error))
      return FALSE;
    if (decode) {
      decode_attention (c, kc, vc, kv->dtype, kv->n_ctx);
    } else {
      /* q's heads and k's are adjacent in a row: one rotation for both */
      llm_cuda_rope_apply (c->qkv, n, c->qkv_dim,
          hp->n_heads + hp->n_kv_heads, hp->head_dim, pos0, hp->rope_theta,
          interleaved, s);
      llm_cuda_kv_store (kc, vc, kv->dtype, k, v, c->qkv_dim, n, c->kv_dim,
          pos0, NULL, s);
      if (kv->dtype == LLM_DTYPE_Q8_0) {
        /* the prompt's queries see the rounded keys and values, as the
         * decode steps after them do */
        llm_cuda_kv_dequantize_f16 (kv->k16, kv->v16, kc, vc, pos0 + n,
            c->kv_dim, s);
        llm_cuda_attention_prefill (c->att, c->qkv, c->qkv_dim, kv->k16,
            kv->v16, LLM_DTYPE_F16, pos0, n, hp->n_heads, hp->n_kv_heads,
            hp->head_dim, c->kv_dim, c->scale, 0, s);
      } else
        llm_cuda_attention_prefill (c->att, c->qkv, c->qkv_dim, kc, vc,
            kv->dtype, pos0, n, hp->n_heads, hp->n_kv_heads, hp->head_dim,
            c->kv_dim, c->scale, 0, s);
    }
    if (!project_add (c, c->x, &L->wo, c->att, c->xb, n, error))
      return FALSE;

    llm_cuda_rmsnorm_forward (c->xb, c->x, L->ffn_norm.data,
        L->ffn_norm.dtype, hp->dim, n, hp->rms_eps, s);
    if (!project (c, c->gate_up, &L->w_gate_up, c->xb, n, error))
      return FALSE;
    llm_cuda_swiglu_rows (c->hb, c->gate_up, n, hp->ffn_dim, s);
    if (!project_add (c, c->x, &L->w_down, c->hb, c->xb, n, error))
      return FALSE;
  }
  llm_cuda_rmsnorm_forward (c->hidden, c->x + (gsize) (n - 1) * hp->dim,
      w->out_norm.data, w->out_norm.dtype, hp->dim, 1, hp->rms_eps, s);
  return TRUE;
}

/* Decode attention's scratch, for caches of @n_ctx positions. Graphs
 * hold its address: they go when it moves. */
static gboolean
ensure_att_scratch (LlmCudaCompute * c, guint n_ctx, GError ** error)
{
  gsize bytes;

  if (c->att_scratch != NULL && n_ctx <= c->att_scratch_ctx)
    return TRUE;
  if (c->att_scratch != NULL) {
    llm_cuda_stream_sync (c->stream, NULL);
    g_hash_table_remove_all (c->graphs);
    g_ptr_array_remove_fast (c->allocations, c->att_scratch);
  }
  bytes = llm_cuda_attention_decode_at_scratch_bytes (c->hp.n_heads,
      c->hp.head_dim, n_ctx);
  c->att_scratch = scratch (c, bytes, error);
  if (c->att_scratch != NULL
      && !llm_cuda_memset (c->att_scratch, 0, bytes, c->stream, error))
    c->att_scratch = NULL;
  c->att_scratch_ctx = c->att_scratch ? n_ctx : 0;
  return c->att_scratch != NULL;
}

/* One token through the graph captured for @kv (captured now if needed);
 * FALSE only on a real error: a capture that fails turns graphs off and
 * runs the step directly. */
static gboolean
decode_step (LlmCudaCompute * c, LlmCudaKv * kv, GError ** error)
{
  LlmCudaGraph *graph = NULL;
  GError *err = NULL;

  if (!llm_cuda_copy (c->step, c->step_host, 3 * sizeof (gint32),
          LLM_CUDA_HOST_TO_DEVICE, c->stream, error))
    return FALSE;
  if (!c->graphs_enabled)
    return run_layers (c, kv, 1, 0, error);

  graph = g_hash_table_lookup (c->graphs, &kv->id);
  if (graph == NULL) {
    if (g_hash_table_size (c->graphs) >= MAX_GRAPHS)
      g_hash_table_remove_all (c->graphs);
    if (!llm_cuda_graph_begin (c->stream, &err))
      goto no_graph;
    if (!run_layers (c, kv, 1, 0, &err)) {
      llm_cuda_graph_free (llm_cuda_graph_end (c->stream, NULL));
      goto no_graph;
    }
    if ((graph = llm_cuda_graph_end (c->stream, &err)) == NULL)
      goto no_graph;
    g_hash_table_insert (c->graphs, g_memdup2 (&kv->id, sizeof kv->id),
        graph);
  }
  return llm_cuda_graph_launch (graph, c->stream, error);

no_graph:
  g_warning ("CUDA graphs turned off, decoding step by step: %s",
      err->message);
  g_clear_error (&err);
  c->graphs_enabled = FALSE;
  return run_layers (c, kv, 1, 0, error);
}

gboolean
llm_cuda_compute_forward (LlmCudaCompute * c, LlmCudaKv * kv,
    const gint32 * tokens, guint n, float *hidden_out, GError ** error)
{
  const LlmHParams *hp = &c->hp;

  g_return_val_if_fail (c != NULL && kv != NULL, FALSE);
  g_return_val_if_fail (n == 0 || tokens != NULL, FALSE);

  if (n == 0) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_INPUT, "no tokens to run");
    return FALSE;
  }
  if (kv->device != c->w->device || kv->n_layers != hp->n_layers ||
      kv->kv_dim != c->kv_dim) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_MISMATCH,
        "the KV cache was made for another model or GPU");
    return FALSE;
  }
  if ((guint64) kv->len + n > kv->n_ctx) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_CONTEXT_FULL,
        "%u tokens do not fit in the context: %u of %u positions are used",
        n, kv->len, kv->n_ctx);
    return FALSE;
  }
  for (guint i = 0; i < n; i++) {
    if (tokens[i] < 0 || (guint) tokens[i] >= hp->n_vocab) {
      g_set_error (error, LLM_ERROR, LLM_ERROR_INPUT,
          "token id %d is outside the vocabulary (%u tokens)", tokens[i],
          hp->n_vocab);
      return FALSE;
    }
  }

  if (n == 1) {
    if (!ensure_att_scratch (c, kv->n_ctx, error))
      return FALSE;
    /* the previous step's copy must have left the staging buffer */
    if (c->step_queued && !llm_cuda_stream_sync (c->stream, error))
      return FALSE;
    c->step_queued = FALSE;
    c->step_host[0] = tokens[0];
    c->step_host[1] = (gint32) kv->len;
    c->step_host[2] = (gint32) kv->len + 1;
    if (!decode_step (c, kv, error))
      return FALSE;
  } else {
    for (guint done = 0; done < n;) {
      guint b = MIN (n - done, c->block);

      memcpy (c->tokens_host, tokens + done, b * sizeof (gint32));
      if (!llm_cuda_copy (c->tokens, c->tokens_host, b * sizeof (gint32),
              LLM_CUDA_HOST_TO_DEVICE, c->stream, error) ||
          !run_layers (c, kv, b, kv->len + done, error))
        return FALSE;
      done += b;
      /* the staging buffer is reused by the next block */
      if (done < n && !llm_cuda_stream_sync (c->stream, error))
        return FALSE;
    }
  }
  if (hidden_out != NULL &&
      !llm_cuda_copy (hidden_out, c->hidden, hp->dim * sizeof (float),
          LLM_CUDA_DEVICE_TO_HOST, c->stream, error))
    return FALSE;
  if (n == 1 && hidden_out == NULL) {
    /* a decode step whose hidden state stays on the device: left queued,
     * so that the logits' matvec follows it with no gap on the GPU; the
     * logits wait for the stream (and report a failed step) */
    c->step_queued = TRUE;
  } else if (!llm_cuda_stream_sync (c->stream, error)) {
    return FALSE;
  }
  kv->len += n;
  return TRUE;
}

gboolean
llm_cuda_compute_logits (LlmCudaCompute * c, const float *hidden,
    float *logits_device, float *logits_host, GError ** error)
{
  const LlmHParams *hp = &c->hp;
  const LlmCudaMatrix *out = &c->w->output;
  float *dst = logits_device ? logits_device : c->logits;

  if (hidden != NULL && !llm_cuda_copy (c->hidden, hidden,
          hp->dim * sizeof (float), LLM_CUDA_HOST_TO_DEVICE, c->stream,
          error))
    return FALSE;
  llm_cuda_matvec_packed (dst, out->data, out->dtype, c->hidden, out->rows,
      out->cols, c->stream);
  if (logits_host != NULL && !llm_cuda_copy (logits_host, dst,
          (gsize) hp->n_vocab * sizeof (float), LLM_CUDA_DEVICE_TO_HOST,
          c->stream, error))
    return FALSE;
  if (!llm_cuda_stream_sync (c->stream, error))
    return FALSE;
  c->step_queued = FALSE;
  return TRUE;
}
