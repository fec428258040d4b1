/* LLMasOS - CPU backend primitives, F32 compute.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include "llm-tensor.h"

G_BEGIN_DECLS

/* Marks a hot loop to be compiled twice, for x86-64-v3 (AVX2, FMA) and the
 * baseline; the dynamic loader picks the one the CPU runs (GCC function
 * multiversioning), so one build is portable and still uses wide vectors. */
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && \
    !defined(__clang__) && __GNUC__ >= 12
#define LLM_CPU_MULTIVERSION \
    __attribute__ ((target_clones ("arch=x86-64-v3", "default")))
#else
#define LLM_CPU_MULTIVERSION
#endif

/* out[i] = x[i] / rms(x) * w[i]; @w may be F32 (or any computable dtype). */
void llm_rmsnorm (float *out, const float *x, const LlmTensor * w, guint n,
    float eps);
/* llm_rmsnorm() in place on each of @n_heads heads of @head_dim floats,
 * every head by the same weight @w [head_dim] (Gemma 3's query and key
 * norms). */
void llm_rmsnorm_heads (float *x, guint n_heads, guint head_dim,
    const LlmTensor * w, float eps);
/* Rotates @n_heads heads of @head_dim in place at position @pos; pairs
 * (2i, 2i+1) if @interleaved, else (i, i + head_dim/2) (rotate-half), each
 * by the angle pos * theta^(-2i/head_dim). */
void llm_rope (float *x, guint n_heads, guint head_dim, guint pos,
    float theta, gboolean interleaved);
/* The same rotation in two steps, so that a forward pass computes the
 * angles of a position once for every layer: @cos_out and @sin_out get
 * head_dim / 2 entries, cos and sin of pos * theta^(-2i/head_dim). */
void llm_rope_table (float *cos_out, float *sin_out, guint head_dim,
    guint pos, float theta);
void llm_rope_apply (float *x, guint n_heads, guint head_dim,
    const float *cos_t, const float *sin_t, gboolean interleaved);
/* In place: x[i] = exp(x[i] - max) / sum. */
void llm_softmax (float *x, guint n);
/* Softmax before the division: x[i] = exp(x[i] - max), returns the sum. */
float llm_softmax_unscaled (float *x, guint n);
/* out[i] = silu(gate[i]) * up[i] */
void llm_swiglu (float *out, const float *gate, const float *up, guint n);
/* out[i] = gelu_tanh(gate[i]) * up[i], GELU in its tanh approximation
 * 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3))) (PyTorch's
 * gelu(approximate="tanh"), Gemma's gelu_pytorch_tanh). */
void llm_geglu (float *out, const float *gate, const float *up, guint n);

/* out[r] = dot(row r of @w, x) for r < rows(w), dequantizing @w's packed
 * rows on the fly; rows are split over @n_threads (OpenMP) when the matrix
 * is large enough to pay for it. */
void llm_matvec (float *out, const LlmTensor * w, const float *x,
    guint n_threads);
/* out[t][r] = dot(row r of @w, x[t]) for @n_tokens input vectors (prefill;
 * @x is [n_tokens][cols], @out [n_tokens][rows]): each row is read (and
 * dequantized) once for all the tokens. F32 weights give the same bits as
 * llm_matvec() token by token. */
void llm_matmul (float *out, const LlmTensor * w, const float *x,
    guint n_tokens, guint n_threads);
/* Row @row of @w (e.g. an embedding) as f32. */
void llm_get_row (float *out, const LlmTensor * w, guint64 row);

G_END_DECLS
