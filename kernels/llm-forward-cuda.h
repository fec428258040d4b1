/* LLMasOS - the llama forward pass on the GPU (inside kernels/; core and
 * the plugins reach it through the backend table, core/llm-backend.h).
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include "llm-cuda-weights.h"
#include "llm-forward.h"

G_BEGIN_DECLS

/* One sequence's keys and values on the device: F32 when the weights are
 * F32 (the reference path), F16 otherwise. */
typedef struct _LlmCudaKv LlmCudaKv;

/* @type LLM_KV_AUTO: LLMASOS_CUDA_KV_DTYPE where set, else F32 for F32
 * weights and F16 for the others. */
LlmCudaKv *llm_cuda_kv_new (const LlmCudaWeights * w, guint n_ctx,
    LlmKvType type, GError ** error);
void llm_cuda_kv_free (LlmCudaKv * kv);
guint llm_cuda_kv_len (const LlmCudaKv * kv);
void llm_cuda_kv_truncate (LlmCudaKv * kv, guint len);
LlmDType llm_cuda_kv_dtype (const LlmCudaKv * kv);

/* Scratch memory, a stream and the captured decode graphs of one thread
 * of work. */
typedef struct _LlmCudaCompute LlmCudaCompute;

LlmCudaCompute *llm_cuda_compute_new (const LlmCudaWeights * w,
    GError ** error);
void llm_cuda_compute_free (LlmCudaCompute * c);
/* The compute's stream, for timing around its work. */
LlmCudaStream *llm_cuda_compute_get_stream (LlmCudaCompute * c);

/* As llm_compute_forward() (core/llm-forward.h): the hidden state of the
 * last token stays on the device for the logits and is copied to
 * @hidden_out (host, dim floats) unless that is NULL. A single token runs
 * as a CUDA graph captured once per KV cache (LLMASOS_CUDA_GRAPHS=0 turns
 * graphs off); with @hidden_out NULL its work is left queued on the
 * compute's stream, for llm_cuda_compute_logits() (which waits for it and
 * reports its failure) to follow without a gap. */
gboolean llm_cuda_compute_forward (LlmCudaCompute * c, LlmCudaKv * kv,
    const gint32 * tokens, guint n, float *hidden_out, GError ** error);
/* Logits of @hidden (host, dim floats) or, if NULL, of the last forward,
 * into device memory (n_vocab floats) and, unless NULL, the host. */
gboolean llm_cuda_compute_logits (LlmCudaCompute * c, const float *hidden,
    float *logits_device, float *logits_host, GError ** error);
/* The compute's own device buffer of n_vocab logits. */
float *llm_cuda_compute_logits_buffer (LlmCudaCompute * c);

G_END_DECLS
