/* LLMasOS - a model's weights in device memory (inside kernels/ only).
 *
 * Each matrix is held in the layout its matvec reads fastest (see
 * llm_cuda_matrix_*); vectors (norm weights) are F32. One LlmCudaWeights
 * is shared by every compute and KV cache made from it.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include "llm-cuda.h"
#include "llm-model-file.h"

G_BEGIN_DECLS

/* @rows x @cols of @dtype, or a vector (@rows 1) of F32. */
typedef struct {
  void *data;                   /* device memory (owned by the weights) */
  LlmDType dtype;
  guint rows;
  guint cols;
} LlmCudaMatrix;

/* Matrices that read the same input are stacked into one (fewer, larger
 * launches): wqkv is wq, wk, wv one under the other (q_dim + 2 kv_dim
 * rows), w_gate_up is w_gate over w_up (2 ffn_dim rows). */
typedef struct {
  LlmCudaMatrix attn_norm, wqkv, wo;
  LlmCudaMatrix ffn_norm, w_gate_up, w_down;
  /* Gemma 3 only (data NULL otherwise) */
  LlmCudaMatrix attn_q_norm, attn_k_norm, post_attn_norm, post_ffn_norm;
} LlmCudaLayer;

typedef struct {
  gint device;
  LlmHParams hp;
  LlmCudaMatrix tok_embd;       /* GGUF layout (embedding_gather reads it) */
  LlmCudaMatrix out_norm;
  LlmCudaMatrix output;         /* the head; tok_embd's memory when tied and
                                 * the layouts agree */
  LlmCudaLayer *layers;         /* hp.n_layers */
  guint64 bytes;                /* device bytes of all the above */
  GPtrArray *allocations;       /* device pointers to free */
} LlmCudaWeights;

/* An empty set for @hp on device @index (layers zeroed). */
LlmCudaWeights *llm_cuda_weights_alloc (const LlmHParams * hp, gint index);
void llm_cuda_weights_free (LlmCudaWeights * w);

/* Makes @m from @src_device (device memory, GGUF layout, @rows x @cols of
 * @dtype): adopts @src_device when the matvec layout is the GGUF one (the
 * weights then own and free it), else packs into new memory and frees
 * @src_device. FALSE (LLM_ERROR_NO_MEMORY naming the sizes) if the device
 * is full; @src_device is freed either way. */
gboolean llm_cuda_weights_adopt_matrix (LlmCudaWeights * w, LlmCudaMatrix * m,
    void *src_device, LlmDType dtype, guint rows, guint cols,
    GError ** error);

/* Copies the weights of @mf (llama architecture) to device @index; dtypes
 * the kernels do not read (k-quants, Q5_0) become F16 on the way.
 * LLM_ERROR_NO_MEMORY naming the tensor and the sizes when the GPU is
 * full; LLM_ERROR_UNSUPPORTED for other architectures. */
LlmCudaWeights *llm_cuda_weights_upload (const LlmModelFile * mf, gint index,
    LlmProgressFunc progress, gpointer user_data, GError ** error);

/* Weights of @hp's shape with random values (normal, std 0.02; norms 1.0),
 * matrices in @dtype (F16, BF16, Q8_0, Q4_0, F32), made on the device from
 * @seed (kernels/llm-cuda-weights-random.c). */
LlmCudaWeights *llm_cuda_weights_new_random (const LlmHParams * hp,
    LlmDType dtype, gint index, guint64 seed, GError ** error);

G_END_DECLS
