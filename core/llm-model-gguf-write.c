/* LLMasOS - writes a loaded Llama model as a GGUF file that llama.cpp reads:
 * its metadata keys, its tensor names, its Q/K row order.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-model-file.h"
#include "llm-error.h"

#include <string.h>

/* llama.cpp's LLAMA_FTYPE_* numbers for general.file_type. */
enum
{
  FTYPE_ALL_F32 = 0,
  FTYPE_MOSTLY_F16 = 1,
  FTYPE_MOSTLY_Q4_0 = 2,
  FTYPE_MOSTLY_Q8_0 = 7,
  FTYPE_MOSTLY_BF16 = 32,
};

/* GGML_QNT_VERSION: the version of the quantized block layouts. */
#define GGUF_QUANTIZATION_VERSION 2

typedef struct
{
  LlmProgressFunc func;
  gpointer user_data;
  guint done;
  guint total;
} Progress;

/* One tensor to convert while the file is written. */
typedef struct
{
  const LlmTensor *src;
  gchar *what;                  /* "name (TYPE)" for progress */
  LlmDType dtype;               /* stored type */
  guint perm_head_dim;          /* > 0: rotate-half -> interleaved rows */
  Progress *progress;
} Job;

static gint
file_type (LlmDType dtype)
{
  switch (dtype) {
    case LLM_DTYPE_F32:
      return FTYPE_ALL_F32;
    case LLM_DTYPE_F16:
      return FTYPE_MOSTLY_F16;
    case LLM_DTYPE_BF16:
      return FTYPE_MOSTLY_BF16;
    case LLM_DTYPE_Q8_0:
      return FTYPE_MOSTLY_Q8_0;
    case LLM_DTYPE_Q4_0:
      return FTYPE_MOSTLY_Q4_0;
    default:
      return -1;
  }
}

/* The source row that becomes row @r. llama.cpp's convert permute: within
 * each head, new row 2j + t = old row t * head_dim / 2 + j, which turns
 * the pairs (j, j + d/2) of rotate-half RoPE into pairs (2j, 2j + 1). */
static guint64
source_row (guint64 r, guint head_dim)
{
  guint64 head, i;

  if (head_dim == 0)
    return r;
  head = r / head_dim;
  i = r % head_dim;
  return head * head_dim + (i % 2) * (head_dim / 2) + i / 2;
}

static gboolean
fill_tensor (guint8 * dst, guint64 nbytes, gpointer user_data, GError ** error)
{
  const Job *job = user_data;
  const LlmTensor *src = job->src;
  const guint64 cols = src->ne[0];
  const guint64 rows = llm_tensor_n_elements (src) / cols;
  const guint64 src_row_bytes = src->nbytes / rows;
  const guint64 dst_row_bytes = nbytes / rows;
  g_autofree float *tmp = NULL;

  if (src->dtype != job->dtype)
    tmp = g_new (float, cols);
  for (guint64 r = 0; r < rows; r++) {
    const guint8 *s = src->data + source_row (r, job->perm_head_dim) *
        src_row_bytes;
    guint8 *d = dst + r * dst_row_bytes;

    /* same type: copy, so that nothing is rounded twice */
    if (tmp == NULL) {
      memcpy (d, s, dst_row_bytes);
    } else {
      llm_dequantize_row (src->dtype, s, tmp, cols);
      llm_quantize_row (job->dtype, tmp, d, cols);
    }
  }

  job->progress->done++;
  if (job->progress->func)
    job->progress->func ((gdouble) job->progress->done /
        job->progress->total, job->what, job->progress->user_data);
  return TRUE;
}

/* Norms (1-D) stay F32. A matrix whose rows are not whole blocks of the
 * quantized type is stored as F16, as llama.cpp's quantizer falls back. */
static LlmDType
stored_dtype (const LlmTensor * t, LlmDType want)
{
  if (t->n_dims == 1)
    return LLM_DTYPE_F32;
  if (t->ne[0] % llm_dtype_block_elems (want) != 0) {
    g_debug ("%s: row length %" G_GUINT64_FORMAT " is not a multiple of "
        "the %s block; stored as F16", t->name, t->ne[0],
        llm_dtype_name (want));
    return LLM_DTYPE_F16;
  }
  return want;
}

static void
job_free (gpointer p)
{
  Job *job = p;

  g_free (job->what);
  g_free (job);
}

static gboolean
add_tensor (LlmGgufWriter * w, const gchar * name, const LlmTensor * t,
    LlmDType want, guint perm_head_dim, Progress * progress, GError ** error)
{
  Job *job = g_new0 (Job, 1);

  job->src = t;
  job->dtype = stored_dtype (t, want);
  job->perm_head_dim = perm_head_dim;
  job->progress = progress;
  job->what = g_strdup_printf ("%s (%s)", name, llm_dtype_name (job->dtype));
  progress->total++;
  return llm_gguf_writer_add_tensor_func (w, name, job->dtype, t->n_dims,
      t->ne, fill_tensor, job, job_free, error);
}

static gboolean
add_layer (LlmGgufWriter * w, const LlmModelFile * mf, guint i,
    LlmDType dtype, Progress * progress, GError ** error)
{
  const LlmLayerWeights *lw = &mf->w.layers[i];
  /* Q and K rows are reordered only when the source pairs by halves */
  const guint perm = mf->hp.rope_style == LLM_ROPE_HALF ? mf->hp.head_dim : 0;
  const struct
  {
    const gchar *suffix;
    const LlmTensor *t;
    guint perm;
  } parts[] = {
    {"attn_norm.weight", lw->attn_norm, 0},
    {"attn_q.weight", lw->wq, perm},
    {"attn_k.weight", lw->wk, perm},
    {"attn_v.weight", lw->wv, 0},
    {"attn_output.weight", lw->wo, 0},
    {"ffn_norm.weight", lw->ffn_norm, 0},
    {"ffn_gate.weight", lw->w_gate, 0},
    {"ffn_up.weight", lw->w_up, 0},
    {"ffn_down.weight", lw->w_down, 0},
  };

  for (guint k = 0; k < G_N_ELEMENTS (parts); k++) {
    g_autofree gchar *name = g_strdup_printf ("blk.%u.%s", i,
        parts[k].suffix);

    if (!add_tensor (w, name, parts[k].t, dtype, parts[k].perm, progress,
            error))
      return FALSE;
  }
  return TRUE;
}

static void
add_hparams (LlmGgufWriter * w, const LlmModelFile * mf, LlmDType dtype)
{
  const LlmHParams *hp = &mf->hp;

  llm_gguf_writer_add_string (w, "general.architecture", "llama");
  llm_gguf_writer_add_string (w, "general.name", mf->name);
  llm_gguf_writer_add_uint32 (w, "general.file_type", file_type (dtype));
  llm_gguf_writer_add_uint32 (w, "general.quantization_version",
      GGUF_QUANTIZATION_VERSION);
  llm_gguf_writer_add_uint32 (w, "llama.context_length", hp->n_ctx_train);
  llm_gguf_writer_add_uint32 (w, "llama.embedding_length", hp->dim);
  llm_gguf_writer_add_uint32 (w, "llama.block_count", hp->n_layers);
  llm_gguf_writer_add_uint32 (w, "llama.feed_forward_length", hp->ffn_dim);
  llm_gguf_writer_add_uint32 (w, "llama.rope.dimension_count", hp->head_dim);
  llm_gguf_writer_add_uint32 (w, "llama.attention.head_count", hp->n_heads);
  llm_gguf_writer_add_uint32 (w, "llama.attention.head_count_kv",
      hp->n_kv_heads);
  llm_gguf_writer_add_float32 (w, "llama.attention.layer_norm_rms_epsilon",
      hp->rms_eps);
  llm_gguf_writer_add_float32 (w, "llama.rope.freq_base", hp->rope_theta);
  llm_gguf_writer_add_uint32 (w, "llama.vocab_size", hp->n_vocab);
  llm_gguf_writer_add_uint32 (w, "llama.attention.key_length", hp->head_dim);
  llm_gguf_writer_add_uint32 (w, "llama.attention.value_length", hp->head_dim);
}

static void
add_special_id (LlmGgufWriter * w, const gchar * key, gint32 id)
{
  if (id >= 0)
    llm_gguf_writer_add_uint32 (w, key, id);
}

static void
add_vocab (LlmGgufWriter * w, const LlmVocab * v)
{
  llm_gguf_writer_add_string (w, "tokenizer.ggml.model",
      v->kind == LLM_VOCAB_GPT2 ? "gpt2" : "llama");
  llm_gguf_writer_add_string_array (w, "tokenizer.ggml.tokens",
      (const gchar * const *) v->pieces, v->n_tokens);
  if (v->scores)
    llm_gguf_writer_add_float32_array (w, "tokenizer.ggml.scores", v->scores,
        v->n_tokens);
  if (v->types)
    llm_gguf_writer_add_int32_array (w, "tokenizer.ggml.token_type",
        v->types, v->n_tokens);
  if (v->n_merges > 0)
    llm_gguf_writer_add_string_array (w, "tokenizer.ggml.merges",
        (const gchar * const *) v->merges, v->n_merges);
  add_special_id (w, "tokenizer.ggml.bos_token_id", v->bos);
  add_special_id (w, "tokenizer.ggml.eos_token_id", v->eos);
  add_special_id (w, "tokenizer.ggml.unknown_token_id", v->unk);
  add_special_id (w, "tokenizer.ggml.padding_token_id", v->pad);
  llm_gguf_writer_add_bool (w, "tokenizer.ggml.add_bos_token", v->add_bos);
  llm_gguf_writer_add_bool (w, "tokenizer.ggml.add_eos_token", v->add_eos);
  llm_gguf_writer_add_bool (w, "tokenizer.ggml.add_space_prefix",
      v->add_space_prefix);
}

gboolean
llm_model_file_write_gguf (const LlmModelFile * mf, const gchar * path,
    LlmDType dtype, LlmProgressFunc progress, gpointer user_data,
    GError ** error)
{
  g_autoptr (LlmGgufWriter) w = NULL;
  Progress prog = { progress, user_data, 0, 0 };

  g_return_val_if_fail (mf != NULL && path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (mf->hp.arch != LLM_ARCH_LLAMA) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
        "%s: only Llama models can be written as GGUF (this one is %s)",
        path, mf->name);
    return FALSE;
  }
  if (file_type (dtype) < 0) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
        "%s: cannot write tensors as %s (F32, F16, BF16, Q8_0 or Q4_0)",
        path, llm_dtype_name (dtype) ? llm_dtype_name (dtype) : "unknown");
    return FALSE;
  }

  w = llm_gguf_writer_new ();
  add_hparams (w, mf, dtype);
  add_vocab (w, mf->vocab);

  if (!add_tensor (w, "token_embd.weight", mf->w.tok_embd, dtype, 0, &prog,
          error) ||
      !add_tensor (w, "output_norm.weight", mf->w.out_norm, dtype, 0, &prog,
          error))
    return FALSE;
  /* tied: llama.cpp reuses token_embd when output.weight is absent */
  if (!mf->hp.tied_embeddings &&
      !add_tensor (w, "output.weight", mf->w.output, dtype, 0, &prog, error))
    return FALSE;
  for (guint i = 0; i < mf->hp.n_layers; i++)
    if (!add_layer (w, mf, i, dtype, &prog, error))
      return FALSE;

  return llm_gguf_writer_write (w, path, error);
}
