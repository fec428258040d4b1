/* LLMasOS - the forward pass of Llama and Gemma 3 on the CPU backend.
 *
 * One pass per block of tokens, the way llama2.c's forward() reads, with
 * every matrix product done for all the tokens of the block while the
 * weights are in cache. One layer loop serves both architectures; the
 * parts in brackets are Gemma 3's, switched on by the hyper-parameters:
 *
 *   x = embedding[token] [* sqrt(dim)]
 *   for each layer:
 *     xb = rmsnorm(x) * attn_norm
 *     q, k, v = wq xb, wk xb, wv xb
 *     [q, k = rmsnorm(each head) * attn_q_norm, attn_k_norm]
 *     rope(q), rope(k) [base of a local or a global layer];  cache k, v
 *     a = wo attention(q, cached k, cached v [in the window if local])
 *     x += a [rmsnorm(a) * post_attn_norm]
 *     xb = rmsnorm(x) * ffn_norm
 *     f = w_down (silu [gelu_tanh] (w_gate xb) * (w_up xb))
 *     x += f [rmsnorm(f) * post_ffn_norm]
 *   hidden = rmsnorm(x) * out_norm
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-forward.h"

#include <math.h>
#include <string.h>

#include "llm-attention.h"
#include "llm-backend.h"
#include "llm-cpu-ops.h"
#include "llm-error.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Tokens per pass over the weights during prefill; longer inputs run as
 * several blocks, each attending to the cache the previous ones filled. */
#define LLM_PREFILL_BLOCK 64

/* Score-and-sum work (heads x keys x head_dim x queries) from which the
 * attention of one block is spread over threads. */
#define LLM_ATTENTION_PARALLEL_MIN_WORK (1u << 16)

struct _LlmKvCache
{
  const LlmBackend *backend;    /* NULL: the CPU, the fields below */
  gpointer impl;                /* the backend's cache */
  gint index;                   /* device number */
  guint n_layers;               /* layers of the model it was made for */
  guint kv_dim;                 /* n_kv_heads * head_dim floats per position */
  guint n_ctx;                  /* positions it can hold */
  guint len;                    /* positions filled */
  float *k;                     /* keys, [n_layers][n_ctx][kv_dim] */
  float *v;                     /* values, same layout */
  LlmDType rounding;            /* F32, or Q8_0: the values as Q8_0 rounds
                                 * them (llm_kv_cache_set_rounding) */
};

struct _LlmCompute
{
  const LlmBackend *backend;    /* NULL: the CPU */
  gpointer impl;                /* the backend's compute */
  gpointer weights;             /* the backend's weights, not owned */
  gint index;                   /* device number */
  const LlmModelFile *mf;       /* weights, not owned */
  LlmHParams hp;                /* copy of mf->hp */
  guint n_threads;              /* threads for matrix products */
  guint q_dim;                  /* n_heads * head_dim */
  guint kv_dim;                 /* n_kv_heads * head_dim */
  float attn_scale;             /* multiplies q . k */

  /* Activations of one block of up to LLM_PREFILL_BLOCK tokens. */
  float *x;                     /* residual stream, [block][dim] */
  float *xb;                    /* normed input, branch output, [block][dim] */
  float *q;                     /* queries, [block][q_dim] */
  float *att;                   /* attention output, [block][q_dim] */
  float *hb;                    /* FFN gate, then product, [block][ffn] */
  float *hb2;                   /* FFN up projection, [block][ffn] */
  float *rope_cos;              /* RoPE table per token, [block][head_dim/2] */
  float *rope_sin;              /* [block][head_dim/2] */
  float *rope_cos_local;        /* the same with the local layers' base, */
  float *rope_sin_local;        /* or NULL when every layer is global */

  /* Attention scores: n_threads rows of scores_len floats, grown to the
   * largest cache seen. */
  float *scores;
  gsize scores_len;
};

LlmKvCache *
llm_kv_cache_new (const LlmHParams * hp, guint n_ctx, GError ** error)
{
  LlmKvCache *kv;
  guint64 n_floats;

  g_return_val_if_fail (hp != NULL, NULL);
  g_return_val_if_fail (n_ctx > 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  kv = g_new0 (LlmKvCache, 1);
  kv->rounding = LLM_DTYPE_F32;
  kv->n_layers = hp->n_layers;
  kv->kv_dim = hp->n_kv_heads * hp->head_dim;
  kv->n_ctx = n_ctx;
  n_floats = (guint64) kv->n_layers * n_ctx * kv->kv_dim;

  if (n_floats > G_MAXSIZE / sizeof (float) / 2
      || (kv->k = g_try_malloc (n_floats * sizeof (float))) == NULL
      || (kv->v = g_try_malloc (n_floats * sizeof (float))) == NULL) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_NO_MEMORY,
        "cannot allocate a KV cache of %u positions: %" G_GUINT64_FORMAT
        " bytes (%u layers x %u floats per position, keys and values)",
        n_ctx, n_floats * 2 * sizeof (float), kv->n_layers, kv->kv_dim);
    llm_kv_cache_free (kv);
    return NULL;
  }
  return kv;
}

void
llm_kv_cache_free (LlmKvCache * kv)
{
  if (kv == NULL)
    return;
  if (kv->backend)
    kv->backend->kv_free (kv->impl);
  g_free (kv->k);
  g_free (kv->v);
  g_free (kv);
}

gboolean
llm_kv_cache_set_rounding (LlmKvCache * kv, LlmDType dtype, GError ** error)
{
  g_return_val_if_fail (kv != NULL, FALSE);
  if (kv->backend != NULL || (dtype != LLM_DTYPE_F32
          && dtype != LLM_DTYPE_Q8_0) || (dtype == LLM_DTYPE_Q8_0
          && kv->kv_dim % LLM_QK8_0 != 0)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
        "a KV cache rounded to %s: only CPU caches round, to f32 or q8_0 "
        "(rows of whole 32-blocks; these are %u wide)",
        llm_dtype_name (dtype), kv->kv_dim);
    return FALSE;
  }
  kv->rounding = dtype;
  return TRUE;
}

/* Row @x of @n floats (a multiple of 32) as Q8_0 rounds it. */
static void
round_row_q8_0 (float *x, guint n)
{
  LlmBlockQ8_0 b[8];

  for (guint i = 0; i < n; i += 8 * LLM_QK8_0) {
    guint m = MIN (n - i, 8 * LLM_QK8_0);

    llm_quantize_row (LLM_DTYPE_Q8_0, x + i, b, m);
    llm_dequantize_row (LLM_DTYPE_Q8_0, b, x + i, m);
  }
}

guint
llm_kv_cache_n_ctx (const LlmKvCache * kv)
{
  g_return_val_if_fail (kv != NULL, 0);
  return kv->n_ctx;
}

guint
llm_kv_cache_len (const LlmKvCache * kv)
{
  g_return_val_if_fail (kv != NULL, 0);
  return kv->backend ? kv->backend->kv_len (kv->impl) : kv->len;
}

void
llm_kv_cache_truncate (LlmKvCache * kv, guint len)
{
  g_return_if_fail (kv != NULL);
  if (kv->backend)
    kv->backend->kv_truncate (kv->impl, len);
  kv->len = MIN (kv->len, len);
}

LlmCompute *
llm_compute_new (const LlmModelFile * mf, guint n_threads)
{
  LlmCompute *c;
  const LlmHParams *hp;
  gsize b = LLM_PREFILL_BLOCK;

  g_return_val_if_fail (mf != NULL, NULL);

  hp = &mf->hp;
  c = g_new0 (LlmCompute, 1);
  c->mf = mf;
  c->hp = *hp;
  c->n_threads = n_threads ? n_threads : g_get_num_processors ();
  c->q_dim = hp->n_heads * hp->head_dim;
  c->kv_dim = hp->n_kv_heads * hp->head_dim;
  c->attn_scale = hp->attn_scale > 0 ? hp->attn_scale :
      1.0f / sqrtf ((float) hp->head_dim);

  c->x = g_new (float, b * hp->dim);
  c->xb = g_new (float, b * hp->dim);
  c->q = g_new (float, b * c->q_dim);
  c->att = g_new (float, b * c->q_dim);
  c->hb = g_new (float, b * hp->ffn_dim);
  c->hb2 = g_new (float, b * hp->ffn_dim);
  c->rope_cos = g_new (float, b * MAX (hp->head_dim / 2, 1));
  c->rope_sin = g_new (float, b * MAX (hp->head_dim / 2, 1));
  if (hp->swa_window > 0) {
    c->rope_cos_local = g_new (float, b * MAX (hp->head_dim / 2, 1));
    c->rope_sin_local = g_new (float, b * MAX (hp->head_dim / 2, 1));
  }
  return c;
}

LlmCompute *
llm_compute_new_on (const LlmModelFile * mf, const LlmBackend * backend,
    gint index, gpointer weights, GError ** error)
{
  LlmCompute *c;

  g_return_val_if_fail (mf != NULL, NULL);
  if (backend == NULL)
    return llm_compute_new (mf, 0);
  c = g_new0 (LlmCompute, 1);
  c->backend = backend;
  c->index = index;
  c->weights = weights;
  c->mf = mf;
  c->hp = mf->hp;
  c->kv_dim = mf->hp.n_kv_heads * mf->hp.head_dim;
  c->impl = backend->compute_new (weights, error);
  if (c->impl == NULL) {
    g_free (c);
    return NULL;
  }
  return c;
}

const LlmBackend *
llm_kv_cache_device (const LlmKvCache * kv, gint * index)
{
  if (index)
    *index = kv->index;
  return kv->backend;
}

const gchar *
llm_compute_device_name (const LlmCompute * c)
{
  return c->backend ? c->backend->name : "cpu";
}

LlmKvCache *
llm_compute_kv_cache_new (LlmCompute * c, guint n_ctx, GError ** error)
{
  return llm_compute_kv_cache_new_typed (c, n_ctx, LLM_KV_AUTO, error);
}

LlmKvCache *
llm_compute_kv_cache_new_typed (LlmCompute * c, guint n_ctx, LlmKvType type,
    GError ** error)
{
  LlmKvCache *kv;

  g_return_val_if_fail (c != NULL && n_ctx > 0, NULL);
  if (c->backend == NULL) {
    if (type == LLM_KV_F16) {
      g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED, "an F16 KV "
          "cache is made only on the GPU; the CPU's is f32 or q8_0");
      return NULL;
    }
    kv = llm_kv_cache_new (&c->hp, n_ctx, error);
    if (kv != NULL && type == LLM_KV_Q8_0 &&
        !llm_kv_cache_set_rounding (kv, LLM_DTYPE_Q8_0, error)) {
      llm_kv_cache_free (kv);
      return NULL;
    }
    return kv;
  }
  kv = g_new0 (LlmKvCache, 1);
  kv->backend = c->backend;
  kv->index = c->index;
  kv->n_layers = c->hp.n_layers;
  kv->kv_dim = c->kv_dim;
  kv->n_ctx = n_ctx;
  kv->impl = c->backend->kv_new (c->weights, n_ctx, type, error);
  if (kv->impl == NULL) {
    g_free (kv);
    return NULL;
  }
  return kv;
}

void
llm_compute_free (LlmCompute * c)
{
  if (c == NULL)
    return;
  if (c->backend)
    c->backend->compute_free (c->impl);
  g_free (c->x);
  g_free (c->xb);
  g_free (c->q);
  g_free (c->att);
  g_free (c->hb);
  g_free (c->hb2);
  g_free (c->rope_cos);
  g_free (c->rope_sin);
  g_free (c->rope_cos_local);
  g_free (c->rope_sin_local);
  g_free (c->scores);
  g_free (c);
}

/* Makes room for attention scores over @n_ctx positions on every thread. */
static gboolean
ensure_scores (LlmCompute * c, guint n_ctx, GError ** error)
{
  gsize n;
  float *s;

  if (c->scores != NULL && c->scores_len >= n_ctx)
    return TRUE;
  n = (gsize) n_ctx *c->n_threads;
  s = g_try_renew (float, c->scores, n);
  if (s == NULL) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_NO_MEMORY,
        "cannot allocate %" G_GSIZE_FORMAT
        " bytes of attention scores", n * sizeof (float));
    return FALSE;
  }
  c->scores = s;
  c->scores_len = n_ctx;
  return TRUE;
}

/* Attention of query heads [h0, h1) for a block, one call per KV head
 * that they read. */
static void
attend_heads (LlmCompute * c, const float *k, const float *v,
    gsize kv_stride, guint pos0, guint n, guint h0, guint h1, guint window,
    float *scores)
{
  const LlmHParams *hp = &c->hp;
  guint group = hp->n_heads / hp->n_kv_heads, hd = hp->head_dim;

  while (h0 < h1) {
    guint g = h0 / group, end = MIN (h1, (g + 1) * group);
    gsize qoff = (gsize) h0 * hd, kvoff = (gsize) g *hd;

    llm_attention_causal_strided (c->att + qoff, c->q_dim, c->q + qoff,
        c->q_dim, k + kvoff, v + kvoff, kv_stride, n, pos0, end - h0, 1, hd,
        c->attn_scale, window, scores);
    h0 = end;
  }
}

/* Attention of the @n queries of a block at @pos0 over layer @l of @kv,
 * through a sliding @window of positions unless it is 0; query heads are
 * spread over threads when there is enough work. */
static void
attention_block (LlmCompute * c, const LlmKvCache * kv, guint l,
    guint pos0, guint n, guint window)
{
  const LlmHParams *hp = &c->hp;
  const float *k = kv->k + (gsize) l * kv->n_ctx * kv->kv_dim;
  const float *v = kv->v + (gsize) l * kv->n_ctx * kv->kv_dim;
  guint64 keys = window > 0 ? MIN (window, pos0 + n) : pos0 + n;
  guint64 work = (guint64) hp->n_heads * keys * hp->head_dim * n;
  guint nt = 1;

#ifdef _OPENMP
  if (c->n_threads > 1 && work >= LLM_ATTENTION_PARALLEL_MIN_WORK)
    nt = MIN (c->n_threads, hp->n_heads);
#endif

  if (nt <= 1) {
    llm_attention_causal_strided (c->att, c->q_dim, c->q, c->q_dim, k, v,
        kv->kv_dim, n, pos0, hp->n_heads, hp->n_kv_heads, hp->head_dim,
        c->attn_scale, window, c->scores);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel num_threads (nt)
  {
    guint ith = omp_get_thread_num (), nth = omp_get_num_threads ();
    guint per = hp->n_heads / nth, extra = hp->n_heads % nth;
    guint h0 = ith * per + MIN (ith, extra);
    guint h1 = h0 + per + (ith < extra ? 1 : 0);

    attend_heads (c, k, v, kv->kv_dim, pos0, n, h0, h1, window,
        c->scores + ith * c->scores_len);
  }
#endif
}

/* x[i] += y[i] */
static inline void
add_f32 (float *restrict x, const float *restrict y, gsize n)
{
  for (gsize i = 0; i < n; i++)
    x[i] += y[i];
}

/* x += y for @n rows of @dim, each row of y first normalized by @norm when
 * there is one (Gemma's post-attention and post-feed-forward norms). */
static void
add_branch (float *x, float *y, guint n, guint dim, const LlmTensor * norm,
    float eps)
{
  for (guint t = 0; norm != NULL && t < n; t++)
    llm_rmsnorm (y + (gsize) t * dim, y + (gsize) t * dim, norm, dim, eps);
  add_f32 (x, y, (gsize) n * dim);
}

/* Runs @n <= LLM_PREFILL_BLOCK tokens (already checked) at kv->len. Only
 * the last @n_out of them need an output: in the last layer the others
 * just leave their keys and values in the cache, as llama2.c does for a
 * prompt. The output of token t is left in row t of c->x. */
static void
forward_block (LlmCompute * c, LlmKvCache * kv, const gint32 * tokens,
    guint n, guint n_out)
{
  const LlmHParams *hp = &c->hp;
  const LlmWeights *w = &c->mf->w;
  guint dim = hp->dim, half = hp->head_dim / 2;
  guint pos0 = kv->len;
  gboolean interleaved = hp->rope_style == LLM_ROPE_INTERLEAVED;
  guint nt = c->n_threads;

  for (guint t = 0; t < n; t++) {
    float *xt = c->x + (gsize) t * dim;

    llm_get_row (xt, w->tok_embd, tokens[t]);
    for (guint i = 0; hp->embd_scale != 0 && i < dim; i++)
      xt[i] *= hp->embd_scale;
    llm_rope_table (c->rope_cos + t * half, c->rope_sin + t * half,
        hp->head_dim, pos0 + t, hp->rope_theta);
    if (c->rope_cos_local != NULL)
      llm_rope_table (c->rope_cos_local + t * half,
          c->rope_sin_local + t * half, hp->head_dim, pos0 + t,
          hp->rope_theta_local);
  }

  for (guint l = 0; l < hp->n_layers; l++) {
    const LlmLayerWeights *lw = &w->layers[l];
    gsize cache_off = ((gsize) l * kv->n_ctx + pos0) * kv->kv_dim;
    float *kc = kv->k + cache_off, *vc = kv->v + cache_off;
    /* Tokens [first, n) go on past the keys and values. */
    guint first = l + 1 < hp->n_layers ? 0 : n - n_out;
    guint m = n - first;
    float *x = c->x + (gsize) first * dim;
    gboolean local = llm_hparams_layer_is_local (hp, l);
    const float *cos_t = local ? c->rope_cos_local : c->rope_cos;
    const float *sin_t = local ? c->rope_sin_local : c->rope_sin;

    /* Attention: keys and values go straight into the cache. */
    for (guint t = 0; t < n; t++)
      llm_rmsnorm (c->xb + (gsize) t * dim, c->x + (gsize) t * dim,
          lw->attn_norm, dim, hp->rms_eps);
    llm_matmul (kc, lw->wk, c->xb, n, nt);
    llm_matmul (vc, lw->wv, c->xb, n, nt);
    for (guint t = 0; t < n; t++) {
      float *kt = kc + (gsize) t * c->kv_dim;

      if (lw->attn_k_norm != NULL)
        llm_rmsnorm_heads (kt, hp->n_kv_heads, hp->head_dim, lw->attn_k_norm,
            hp->rms_eps);
      llm_rope_apply (kt, hp->n_kv_heads, hp->head_dim, cos_t + t * half,
          sin_t + t * half, interleaved);
      if (kv->rounding == LLM_DTYPE_Q8_0) {
        round_row_q8_0 (kt, c->kv_dim);
        round_row_q8_0 (vc + (gsize) t * c->kv_dim, c->kv_dim);
      }
    }
    if (m == 0)
      break;
    llm_matmul (c->q, lw->wq, c->xb + (gsize) first * dim, m, nt);
    for (guint t = 0; t < m; t++) {
      float *qt = c->q + (gsize) t * c->q_dim;

      if (lw->attn_q_norm != NULL)
        llm_rmsnorm_heads (qt, hp->n_heads, hp->head_dim, lw->attn_q_norm,
            hp->rms_eps);
      llm_rope_apply (qt, hp->n_heads, hp->head_dim,
          cos_t + (first + t) * half, sin_t + (first + t) * half, interleaved);
    }
    attention_block (c, kv, l, pos0 + first, m, local ? hp->swa_window : 0);
    llm_matmul (c->xb, lw->wo, c->att, m, nt);
    add_branch (x, c->xb, m, dim, lw->post_attn_norm, hp->rms_eps);

    /* Gated feed-forward: SwiGLU or GeGLU. */
    for (guint t = 0; t < m; t++)
      llm_rmsnorm (c->xb + (gsize) t * dim, x + (gsize) t * dim,
          lw->ffn_norm, dim, hp->rms_eps);
    llm_matmul (c->hb, lw->w_gate, c->xb, m, nt);
    llm_matmul (c->hb2, lw->w_up, c->xb, m, nt);
    if (hp->act == LLM_ACT_GELU_TANH)
      llm_geglu (c->hb, c->hb, c->hb2, m * hp->ffn_dim);
    else
      llm_swiglu (c->hb, c->hb, c->hb2, m * hp->ffn_dim);
    llm_matmul (c->xb, lw->w_down, c->hb, m, nt);
    add_branch (x, c->xb, m, dim, lw->post_ffn_norm, hp->rms_eps);
  }
  kv->len += n;
}

gboolean
llm_compute_forward (LlmCompute * c, LlmKvCache * kv, const gint32 * tokens,
    guint n, float *hidden_out, GError ** error)
{
  const LlmHParams *hp;

  g_return_val_if_fail (c != NULL, FALSE);
  g_return_val_if_fail (kv != NULL, FALSE);
  g_return_val_if_fail (tokens != NULL && n > 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  if (kv->backend != c->backend) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_MISMATCH,
        "the sequence's KV cache is on the %s but this element computes "
        "on the %s: give llmencoder and llmdecoder the same device",
        kv->backend ? kv->backend->name : "cpu", llm_compute_device_name (c));
    return FALSE;
  }
  if (c->backend)
    return c->backend->forward (c->impl, kv->impl, tokens, n, hidden_out,
        error);
  g_return_val_if_fail (hidden_out != NULL, FALSE);
  hp = &c->hp;
  g_return_val_if_fail (kv->n_layers == hp->n_layers && kv->kv_dim == c->kv_dim,
      FALSE);

  for (guint t = 0; t < n; t++) {
    if (tokens[t] < 0 || (guint) tokens[t] >= hp->n_vocab) {
      g_set_error (error, LLM_ERROR, LLM_ERROR_INPUT,
          "token id %" G_GINT32_FORMAT " (input %u of %u) is outside "
          "the vocabulary of %u tokens", tokens[t], t, n, hp->n_vocab);
      return FALSE;
    }
  }
  if (n > kv->n_ctx - kv->len) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_CONTEXT_FULL,
        "context full: %u tokens after the %u already cached need "
        "%" G_GUINT64_FORMAT " positions, the cache holds %u",
        n, kv->len, (guint64) kv->len + n, kv->n_ctx);
    return FALSE;
  }
  if (!ensure_scores (c, kv->n_ctx, error))
    return FALSE;

  for (guint t0 = 0; t0 < n; t0 += LLM_PREFILL_BLOCK) {
    guint len = MIN (LLM_PREFILL_BLOCK, n - t0);

    forward_block (c, kv, tokens + t0, len, t0 + len == n ? 1 : 0);
  }
  llm_rmsnorm (hidden_out, c->x + (gsize) ((n - 1) % LLM_PREFILL_BLOCK) *
      hp->dim, c->mf->w.out_norm, hp->dim, hp->rms_eps);
  return TRUE;
}

void
llm_compute_logits (LlmCompute * c, const float *hidden, float *logits_out)
{
  g_return_if_fail (c != NULL);
  if (c->backend) {
    GError *err = NULL;

    if (!c->backend->logits (c->impl, hidden, logits_out, &err)) {
      g_warning ("%s", err->message);
      g_error_free (err);
    }
    return;
  }
  llm_matvec (logits_out, c->mf->w.output, hidden, c->n_threads);
}

gboolean
llm_compute_logits_full (LlmCompute * c, const float *hidden,
    float *logits_out, gpointer logits_device, GError ** error)
{
  g_return_val_if_fail (c != NULL, FALSE);
  if (c->backend == NULL) {
    g_return_val_if_fail (hidden != NULL && logits_out != NULL, FALSE);
    llm_matvec (logits_out, c->mf->w.output, hidden, c->n_threads);
    return TRUE;
  }
  if (logits_device != NULL)
    return c->backend->logits_to_device (c->impl, hidden, logits_device,
        error);
  return c->backend->logits (c->impl, hidden, logits_out, error);
}
