/* LLMasOS - hyper-parameters and weights of a model, read from a Hugging
 * Face folder (config.json + *.safetensors + tokenizer.json) or a GGUF file.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include "llm-tensor.h"
#include "llm-gguf.h"
#include "llm-safetensors.h"
#include "llm-vocab.h"

G_BEGIN_DECLS

typedef enum {
  LLM_ARCH_LLAMA,
  LLM_ARCH_GEMMA3,
} LlmArch;

/* How RoPE pairs the dimensions of a head. */
typedef enum {
  LLM_ROPE_INTERLEAVED,         /* pairs (2i, 2i+1): GGML "normal", GGUF llama */
  LLM_ROPE_HALF,                /* pairs (i, i + d/2): HF rotate_half, NEOX */
} LlmRopeStyle;

/* The activation of the gate in the gated feed-forward. */
typedef enum {
  LLM_ACT_SILU,                 /* SwiGLU: silu(gate) * up (Llama) */
  LLM_ACT_GELU_TANH,            /* GeGLU: gelu_tanh(gate) * up (Gemma) */
} LlmActivation;

typedef struct {
  LlmArch arch;
  guint n_vocab;                /* rows of the embedding */
  guint dim;                    /* hidden size */
  guint n_layers;
  guint n_heads;                /* query heads */
  guint n_kv_heads;             /* key/value heads, fewer under GQA */
  guint head_dim;
  guint ffn_dim;                /* feed-forward inner size */
  guint n_ctx_train;            /* max_position_embeddings / context_length */
  float rms_eps;
  float rope_theta;             /* RoPE base (of the global layers) */
  LlmRopeStyle rope_style;
  gboolean tied_embeddings;     /* output head reuses the token embedding */
  LlmActivation act;            /* gate activation of the feed-forward */
  float embd_scale;             /* token embeddings are multiplied by this
                                 * (Gemma: sqrt(dim)); 0: not scaled */
  float attn_scale;             /* scale of q.k; 0 means 1/sqrt(head_dim) */
  gboolean qk_norm;             /* RMSNorm on every query and key head
                                 * before RoPE (attn_q_norm, attn_k_norm) */
  gboolean post_norms;          /* RMSNorm on the attention and the
                                 * feed-forward outputs before each is added
                                 * to the residual stream */
  /* Sliding-window attention: local layers alternate with global ones
   * (see llm_hparams_layer_is_local). */
  guint swa_window;             /* positions a local layer's query sees,
                                 * itself included; 0: every layer global */
  guint swa_period;             /* layer l is global when (l + 1) is a
                                 * multiple of this (Gemma 3: 6); 0: none is */
  float rope_theta_local;       /* RoPE base of the local layers */
} LlmHParams;

/* Whether layer @l attends through the sliding window, with its own RoPE
 * base. Gemma 3 makes every sixth layer global, as llama.cpp's swa pattern
 * and Hugging Face's layer_types say. */
static inline gboolean
llm_hparams_layer_is_local (const LlmHParams * hp, guint l)
{
  return hp->swa_window > 0 && (hp->swa_period == 0 ||
      (l + 1) % hp->swa_period != 0);
}

typedef struct {
  const LlmTensor *attn_norm;   /* [dim] */
  const LlmTensor *wq;          /* ne = {dim, n_heads*head_dim} */
  const LlmTensor *wk;          /* ne = {dim, n_kv_heads*head_dim} */
  const LlmTensor *wv;          /* ne = {dim, n_kv_heads*head_dim} */
  const LlmTensor *wo;          /* ne = {n_heads*head_dim, dim} */
  const LlmTensor *ffn_norm;    /* [dim] */
  const LlmTensor *w_gate;      /* ne = {dim, ffn_dim} */
  const LlmTensor *w_up;        /* ne = {dim, ffn_dim} */
  const LlmTensor *w_down;      /* ne = {ffn_dim, dim} */
  /* With hp.qk_norm, else NULL: */
  const LlmTensor *attn_q_norm; /* [head_dim], shared by the query heads */
  const LlmTensor *attn_k_norm; /* [head_dim], shared by the key heads */
  /* With hp.post_norms, else NULL: */
  const LlmTensor *post_attn_norm;      /* [dim], on wo's output */
  const LlmTensor *post_ffn_norm;       /* [dim], on w_down's output */
} LlmLayerWeights;

typedef struct {
  const LlmTensor *tok_embd;    /* ne = {dim, n_vocab} */
  const LlmTensor *out_norm;    /* [dim] */
  const LlmTensor *output;      /* ne = {dim, n_vocab}; == tok_embd if tied */
  LlmLayerWeights *layers;      /* n_layers entries */
} LlmWeights;

typedef enum {
  LLM_MODEL_FORMAT_HF,          /* folder with config.json + safetensors */
  LLM_MODEL_FORMAT_GGUF,
} LlmModelFormat;

/* Progress while loading: @fraction in [0, 1], @what a short phrase. */
typedef void (*LlmProgressFunc) (gdouble fraction, const gchar * what,
    gpointer user_data);

typedef struct {
  gchar *path;                  /* as given */
  LlmModelFormat format;
  gchar *name;                  /* general.name or the folder's name */
  LlmHParams hp;
  LlmWeights w;
  LlmVocab *vocab;
  LlmGguf *gguf;                /* the file the tensors point into, or NULL */
  GPtrArray *safetensors;       /* LlmSafetensors shards, or NULL */
  GPtrArray *owned;             /* tensors made at load (e.g. f32 norms) */
} LlmModelFile;

/* Hyper-parameters from a Hugging Face config.json held in @data (@len
 * bytes, no NUL needed): a llama model_type (or LlamaForCausalLM among
 * "architectures"), the sizes, rms_norm_eps, rope_theta and
 * tie_word_embeddings, with the usual defaults for the optional ones.
 * @hp->n_vocab gets vocab_size, 0 when absent (the embedding decides).
 * The numbers are not checked against each other here: the loader does
 * that, and against the tensors. @name (may be NULL) names the file in
 * messages. @hp is left untouched on error. */
gboolean llm_hparams_from_config_json_data (const gchar * data, gsize len,
    const gchar * name, LlmHParams * hp, GError ** error);

/* Loads @path: a folder (HF layout) or a .gguf file. Checks every tensor's
 * presence, dtype and shape against the hyper-parameters, that every weight
 * is finite (llm_tensor_check_finite), and the vocabulary size against the
 * embedding; errors name the file and the tensor. A
 * folder's *.safetensors files are all read (one file or shards). Tensors
 * point into the mapped files; F16/BF16 norms are converted into F32
 * tensors kept in @owned. */
LlmModelFile *llm_model_file_load (const gchar * path,
    LlmProgressFunc progress, gpointer user_data, GError ** error);
void llm_model_file_free (LlmModelFile * mf);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (LlmModelFile, llm_model_file_free)

/* Checks that every value of @t is finite (F32, F16, BF16; the floating
 * block scales of the quantized types; integers pass): a NaN or an
 * infinity is LLM_ERROR_FORMAT naming @file, the tensor and the element
 * ("model.gguf: tensor 'blk.0.attn_q.weight' holds a NaN at element 1234
 * (row 19, column 18)"). One pass at memory speed, over OpenMP threads for
 * large tensors; the loader runs it on every weight. */
gboolean llm_tensor_check_finite (const LlmTensor * t, const gchar * file,
    GError ** error);

/* Writes @mf (a Llama model; LLM_ERROR_UNSUPPORTED for another
 * architecture) as GGUF v3 with llama.cpp's metadata keys (general.*, llama.*,
 * tokenizer.ggml.*) and tensor names (token_embd.weight, blk.N.attn_q.weight,
 * ...). Matrices are converted to @dtype (F32, F16, BF16, Q8_0, Q4_0; a
 * matrix whose row length is not a multiple of the 32-element block is
 * stored as F16, as llama.cpp's quantizer falls back), norms stay F32, a
 * tied output head is not written (llama.cpp reuses token_embd). Q and K
 * rows are permuted to the interleaved RoPE layout when the source uses
 * rotate-half. Tensors are converted one at a time while the file is
 * written, to @path + ".partial" first, renamed to @path at the end.
 * @progress gets one call per tensor. */
gboolean llm_model_file_write_gguf (const LlmModelFile * mf,
    const gchar * path, LlmDType dtype, LlmProgressFunc progress,
    gpointer user_data, GError ** error);

G_END_DECLS
