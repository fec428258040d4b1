/* LLMasOS - CPU backend primitives, F32 compute.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include "llm-tensor.h"

G_BEGIN_DECLS

/* out[i] = x[i] / rms(x) * w[i]; @w may be F32 (or any computable dtype). */
void llm_rmsnorm (float *out, const float *x, const LlmTensor * w, guint n,
    float eps);
/* Rotates @n_heads heads of @head_dim in place at position @pos. */
void llm_rope (float *x, guint n_heads, guint head_dim, guint pos,
    float theta, gboolean interleaved);
void llm_softmax (float *x, guint n);
/* out[i] = silu(gate[i]) * up[i] */
void llm_swiglu (float *out, const float *gate, const float *up, guint n);

/* out[r] = dot(row r of @w, x) for r < rows(w), dequantizing @w's packed
 * rows on the fly; rows are split over @n_threads (OpenMP) when the matrix
 * is large enough to pay for it. */
void llm_matvec (float *out, const LlmTensor * w, const float *x,
    guint n_threads);
/* out[t][r] for @n_tokens input vectors (prefill): weights read once per
 * block of tokens. */
void llm_matmul (float *out, const LlmTensor * w, const float *x,
    guint n_tokens, guint n_threads);
/* Row @row of @w (e.g. an embedding) as f32. */
void llm_get_row (float *out, const LlmTensor * w, guint64 row);

G_END_DECLS
