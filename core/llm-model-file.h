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
} LlmArch;

/* How RoPE pairs the dimensions of a head. */
typedef enum {
  LLM_ROPE_INTERLEAVED,         /* pairs (2i, 2i+1): GGML "normal", GGUF llama */
  LLM_ROPE_HALF,                /* pairs (i, i + d/2): HF rotate_half, NEOX */
} LlmRopeStyle;

typedef struct {
  LlmArch arch;
  guint n_vocab;                /* rows of the embedding */
  guint dim;                    /* hidden size */
  guint n_layers;
  guint n_heads;                /* query heads */
  guint n_kv_heads;             /* key/value heads, fewer under GQA */
  guint head_dim;
  guint ffn_dim;                /* SwiGLU inner size */
  guint n_ctx_train;            /* max_position_embeddings / context_length */
  float rms_eps;
  float rope_theta;
  LlmRopeStyle rope_style;
  gboolean tied_embeddings;     /* output head reuses the token embedding */
} LlmHParams;

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

/* Loads @path: a folder (HF layout) or a .gguf file. Checks every tensor's
 * presence, dtype and shape against the hyper-parameters and the vocabulary
 * size against the embedding; errors name the file and the tensor. A
 * folder's *.safetensors files are all read (one file or shards). Tensors
 * point into the mapped files; F16/BF16 norms are converted into F32
 * tensors kept in @owned. */
LlmModelFile *llm_model_file_load (const gchar * path,
    LlmProgressFunc progress, gpointer user_data, GError ** error);
void llm_model_file_free (LlmModelFile * mf);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (LlmModelFile, llm_model_file_free)

/* Writes @mf as GGUF v3 with llama.cpp's metadata keys (general.*, llama.*,
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
