/* LLMasOS - the forward pass of Llama and Gemma 3 on the CPU backend.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include "llm-model-file.h"

G_BEGIN_DECLS

/* A device other than the CPU (core/llm-backend.h). */
typedef struct _LlmBackend LlmBackend;

/* The key/value cache of one sequence (F32). */
typedef struct _LlmKvCache LlmKvCache;

/* What a cache holds (llm_compute_kv_cache_new_typed, llmencoder's
 * kv-type): AUTO is the device's default (F32 on the CPU and for F32
 * weights on the GPU, F16 for other weights on the GPU, or
 * LLMASOS_CUDA_KV_DTYPE); F16 only on the GPU; Q8_0 as llama.cpp's
 * `-ctk q8_0 -ctv q8_0`, on the CPU rounded the same way but kept as
 * floats (llm_kv_cache_set_rounding: the values, not the memory). */
typedef enum
{
  LLM_KV_AUTO = 0,
  LLM_KV_F32,
  LLM_KV_F16,
  LLM_KV_Q8_0
} LlmKvType;

/* @n_ctx positions; LLM_ERROR_NO_MEMORY naming the size if it cannot be
 * allocated. */
LlmKvCache *llm_kv_cache_new (const LlmHParams * hp, guint n_ctx,
    GError ** error);
void llm_kv_cache_free (LlmKvCache * kv);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (LlmKvCache, llm_kv_cache_free)
guint llm_kv_cache_n_ctx (const LlmKvCache * kv);
/* Positions filled so far (the next token goes at this position). */
guint llm_kv_cache_len (const LlmKvCache * kv);
/* Forgets everything after the first @len positions. */
void llm_kv_cache_truncate (LlmKvCache * kv, guint len);
/* Rounds the keys and values of a CPU cache to @dtype as they are
 * appended: LLM_DTYPE_F32 (the default: no rounding) or LLM_DTYPE_Q8_0,
 * whose values are those of the CUDA backend's Q8_0 cache
 * (LLMASOS_CUDA_KV_DTYPE=q8_0, docs/cuda.md), kept as floats (no memory
 * is saved): the CPU reference of that cache. LLM_ERROR_UNSUPPORTED for
 * another dtype, a device cache, or rows (n_kv_heads * head_dim) that are
 * not whole 32-blocks. */
gboolean llm_kv_cache_set_rounding (LlmKvCache * kv, LlmDType dtype,
    GError ** error);

/* Scratch buffers and settings of one thread of computation over a model;
 * several may share one LlmModelFile (weights are read-only). */
typedef struct _LlmCompute LlmCompute;

/* @n_threads 0 means one per core. */
LlmCompute *llm_compute_new (const LlmModelFile * mf, guint n_threads);
void llm_compute_free (LlmCompute * c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (LlmCompute, llm_compute_free)

/* Runs @n tokens at positions len(kv) .. len(kv)+n-1, appending their keys
 * and values to @kv, and writes the final-normalised hidden state of the
 * last token to @hidden_out (dim floats). LLM_ERROR_CONTEXT_FULL if they do
 * not fit, LLM_ERROR_INPUT for an id outside the vocabulary. */
gboolean llm_compute_forward (LlmCompute * c, LlmKvCache * kv,
    const gint32 * tokens, guint n, float *hidden_out, GError ** error);
/* Output head: logits (n_vocab floats) from a final hidden state. */
void llm_compute_logits (LlmCompute * c, const float *hidden,
    float *logits_out);

/* --- other devices (core/llm-backend.h) --- */

/* A compute on @backend (NULL: the CPU, as llm_compute_new (mf, 0)) over
 * @weights, the backend's copy of @mf's weights (llm_model_get_weights). */
LlmCompute *llm_compute_new_on (const LlmModelFile * mf,
    const LlmBackend * backend, gint index, gpointer weights,
    GError ** error);
/* The device of a KV cache: its backend (NULL: the CPU) and index. */
const LlmBackend *llm_kv_cache_device (const LlmKvCache * kv, gint * index);
/* "cpu" or the backend's name. */
const gchar *llm_compute_device_name (const LlmCompute * c);
/* A KV cache on @c's device. A cache is used only with computes of the
 * same device (LLM_ERROR_MISMATCH otherwise). */
LlmKvCache *llm_compute_kv_cache_new (LlmCompute * c, guint n_ctx,
    GError ** error);
/* The same holding @type; LLM_ERROR_UNSUPPORTED naming the device where
 * it cannot (F16 on the CPU; Q8_0 for rows that are not whole
 * 32-blocks). */
LlmKvCache *llm_compute_kv_cache_new_typed (LlmCompute * c, guint n_ctx,
    LlmKvType type, GError ** error);
/* Logits of @hidden (host; NULL on a device: the last forward's) into
 * @logits_out (host) or, on a device, into @logits_device (device memory
 * from the backend's alloc) when that is not NULL. */
gboolean llm_compute_logits_full (LlmCompute * c, const float *hidden,
    float *logits_out, gpointer logits_device, GError ** error);

G_END_DECLS
