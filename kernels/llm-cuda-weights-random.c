/* LLMasOS - weights of a model's shape filled with random values on the
 * device, for benchmarks (llmasos-bench): a Llama-3-8B takes a second to
 * make this way, where writing, reading and uploading a 16 GB file takes
 * minutes. Timing does not depend on the values, as long as they are
 * ordinary ones: normal with std 0.02 for the matrices (not zeros, which
 * some hardware compresses), 1.0 for the norms.
 *
 * Each matrix is made in its GGUF layout (llm_cuda_fill_normal) and then
 * goes through llm_cuda_weights_adopt_matrix like an uploaded one, so the
 * forward pass reads exactly what it reads for a real model; the token
 * embedding stays in the GGUF layout that embedding_gather reads
 * (llm-cuda-weights.h).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-cuda-weights.h"

#include "llm-error.h"

#define WEIGHT_STD 0.02f

typedef struct
{
  guint64 seed;
  guint n_made;                 /* tensors so far: each gets its own seed */
} Maker;

/* A matrix whose rows are not whole blocks of @dtype is F16, as the GGUF
 * writer (and llama.cpp's quantizer) falls back. */
static LlmDType
matrix_dtype (LlmDType dtype, guint cols)
{
  return cols % llm_dtype_block_elems (dtype) == 0 ? dtype : LLM_DTYPE_F16;
}

/* Makes @m: @rows x @cols, normal (0, @std) in @dtype, or every element
 * @mean with @std 0 (the norms). @gguf keeps the GGUF layout (the token
 * embedding, which embedding_gather reads) instead of the matvec one. */
static gboolean
make_matrix (LlmCudaWeights * w, Maker * mk, LlmCudaMatrix * m,
    const gchar * name, LlmDType dtype, guint rows, guint cols, float mean,
    float std, gboolean gguf, GError ** error)
{
  guint64 n = (guint64) rows * cols, bytes;
  void *dev;

  dtype = matrix_dtype (dtype, cols);
  if (!llm_dtype_bytes_for (dtype, n, &bytes) || bytes > G_MAXSIZE) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_INPUT,
        "tensor %s: %u x %u of %s is too large", name, rows, cols,
        llm_dtype_name (dtype));
    return FALSE;
  }
  if ((dev = llm_cuda_alloc (bytes, error)) == NULL) {
    g_prefix_error (error, "tensor %s: ", name);
    return FALSE;
  }
  /* the legacy default stream, as adopt's packing uses: in order */
  llm_cuda_fill_normal (dev, dtype, n, mean, std,
      mk->seed * 0x100000001b3ull + mk->n_made++, NULL);
  if (gguf) {
    g_ptr_array_add (w->allocations, dev);
    w->bytes += bytes;
    m->data = dev;
    m->dtype = dtype;
    m->rows = rows;
    m->cols = cols;
    return TRUE;
  }
  if (!llm_cuda_weights_adopt_matrix (w, m, dev, dtype, rows, cols, error)) {
    g_prefix_error (error, "tensor %s: ", name);
    return FALSE;
  }
  return TRUE;
}

/* Device bytes of the GGUF layouts, for the message when the device is
 * full (packing may add a little). */
static guint64
model_bytes (const LlmHParams * hp, LlmDType dtype)
{
  guint q = hp->n_heads * hp->head_dim, kv = hp->n_kv_heads * hp->head_dim;
  const struct
  {
    guint rows, cols;
  } mats[] = {
    {q, hp->dim}, {kv, hp->dim}, {kv, hp->dim}, {hp->dim, q},
    {hp->ffn_dim, hp->dim}, {hp->ffn_dim, hp->dim}, {hp->dim, hp->ffn_dim}
  };
  guint64 total = 0, b;

  for (guint i = 0; i < G_N_ELEMENTS (mats); i++) {
    llm_dtype_bytes_for (matrix_dtype (dtype, mats[i].cols),
        (guint64) mats[i].rows * mats[i].cols, &b);
    total += b;
  }
  total = total * hp->n_layers + (guint64) hp->n_layers * 2 * hp->dim * 4;
  llm_dtype_bytes_for (matrix_dtype (dtype, hp->dim),
      (guint64) hp->n_vocab * hp->dim, &b);
  return total + b * (hp->tied_embeddings ? 1 : 2) + hp->dim * 4;
}

static gboolean
check_shape (const LlmHParams * hp, LlmDType dtype, GError ** error)
{
  if (dtype != LLM_DTYPE_F32 && dtype != LLM_DTYPE_F16
      && dtype != LLM_DTYPE_BF16 && dtype != LLM_DTYPE_Q8_0
      && dtype != LLM_DTYPE_Q4_0) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
        "random weights are F32, F16, BF16, Q8_0 or Q4_0, not %s",
        llm_dtype_name (dtype) ? llm_dtype_name (dtype) : "an unknown type");
    return FALSE;
  }
  if (hp->arch != LLM_ARCH_LLAMA) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
        "random weights are made for the llama architecture only");
    return FALSE;
  }
  if (hp->n_vocab == 0 || hp->dim == 0 || hp->n_layers == 0
      || hp->n_heads == 0 || hp->n_kv_heads == 0 || hp->head_dim == 0
      || hp->ffn_dim == 0 || hp->n_heads % hp->n_kv_heads != 0) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_INPUT,
        "random weights: bad shape (vocabulary %u, dim %u, %u layers, "
        "%u heads, %u KV heads, head_dim %u, FFN %u)", hp->n_vocab, hp->dim,
        hp->n_layers, hp->n_heads, hp->n_kv_heads, hp->head_dim, hp->ffn_dim);
    return FALSE;
  }
  return TRUE;
}

LlmCudaWeights *
llm_cuda_weights_new_random (const LlmHParams * hp, LlmDType dtype,
    gint index, guint64 seed, GError ** error)
{
  guint q, kv;
  LlmCudaWeights *w;
  Maker mk = { seed, 0 };
  gboolean ok;

  g_return_val_if_fail (hp != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!check_shape (hp, dtype, error)
      || !llm_cuda_device_open (index, NULL, error))
    return NULL;
  q = hp->n_heads * hp->head_dim;
  kv = hp->n_kv_heads * hp->head_dim;

  w = llm_cuda_weights_alloc (hp, index);
  ok = make_matrix (w, &mk, &w->tok_embd, "token_embd.weight", dtype,
      hp->n_vocab, hp->dim, 0.0f, WEIGHT_STD, TRUE, error)
      && make_matrix (w, &mk, &w->out_norm, "output_norm.weight",
      LLM_DTYPE_F32, 1, hp->dim, 1.0f, 0.0f, FALSE, error);
  /* tied: one copy, as llm_cuda_weights_upload shares it */
  if (ok && hp->tied_embeddings
      && llm_cuda_matrix_layout_is_gguf (w->tok_embd.dtype))
    w->output = w->tok_embd;
  else if (ok)
    ok = make_matrix (w, &mk, &w->output, "output.weight", dtype,
        hp->n_vocab, hp->dim, 0.0f, WEIGHT_STD, FALSE, error);
  for (guint l = 0; ok && l < hp->n_layers; l++) {
    LlmCudaLayer *cl = &w->layers[l];
    const struct
    {
      LlmCudaMatrix *m;
      const gchar *name;
      guint rows, cols;
      gboolean norm;
    } parts[] = {
      {&cl->attn_norm, "attn_norm", 1, hp->dim, TRUE},
      {&cl->wqkv, "attn_qkv", q + 2 * kv, hp->dim, FALSE},
      {&cl->wo, "attn_output", hp->dim, q, FALSE},
      {&cl->ffn_norm, "ffn_norm", 1, hp->dim, TRUE},
      {&cl->w_gate_up, "ffn_gate_up", 2 * hp->ffn_dim, hp->dim, FALSE},
      {&cl->w_down, "ffn_down", hp->dim, hp->ffn_dim, FALSE},
    };

    for (guint i = 0; ok && i < G_N_ELEMENTS (parts); i++) {
      g_autofree gchar *name = g_strdup_printf ("blk.%u.%s.weight", l,
          parts[i].name);

      ok = make_matrix (w, &mk, parts[i].m, name,
          parts[i].norm ? LLM_DTYPE_F32 : dtype, parts[i].rows,
          parts[i].cols, parts[i].norm ? 1.0f : 0.0f,
          parts[i].norm ? 0.0f : WEIGHT_STD, FALSE, error);
    }
  }
  /* a fault inside a fill surfaces here, not in the first forward */
  if (ok)
    ok = llm_cuda_stream_sync (NULL, error);
  if (!ok) {
    g_prefix_error (error, "cannot make random %s weights (%.2f GB) on "
        "cuda:%d: ", llm_dtype_name (dtype), model_bytes (hp, dtype) / 1e9,
        index);
    llm_cuda_weights_free (w);
    return NULL;
  }
  return w;
}
