/* LLMasOS - causal grouped-query attention on the CPU.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/**
 * llm_attention_causal:
 * @out: [n_q][n_heads * head_dim] output
 * @q: [n_q][n_heads * head_dim] queries; query i is at position q_pos0 + i
 * @k: keys, position p at k + p * kv_stride, [n_kv_heads * head_dim] each
 * @v: values, same layout as @k
 * @n_q: number of query positions
 * @q_pos0: absolute position of the first query
 * @n_heads: query heads; @n_kv_heads must divide it (GQA: query head h
 *   uses KV head h / (n_heads / n_kv_heads))
 * @kv_stride: floats between consecutive positions in @k and @v
 * @scratch: at least (q_pos0 + n_q) floats
 *
 * Query i attends to positions 0 .. q_pos0 + i with scale 1/sqrt(head_dim).
 */
void llm_attention_causal (float *out, const float *q, const float *k,
    const float *v, guint n_q, guint q_pos0, guint n_heads, guint n_kv_heads,
    guint head_dim, gsize kv_stride, float *scratch);

/**
 * llm_attention_causal_strided:
 * @out_stride: floats between the outputs of consecutive queries
 * @q_stride: floats between consecutive queries
 * @scale: multiplies q . k (1/sqrt(head_dim) in llm_attention_causal())
 * @window: 0, or the positions a query sees, its own included: query i
 *   attends to q_pos0 + i + 1 - @window .. q_pos0 + i (sliding-window
 *   attention)
 *
 * llm_attention_causal() on rows that are part of wider ones, so that a
 * caller can hand a subset of the heads (a group of KV heads with their
 * query heads) to each thread: pass @q, @k, @v and @out offset to the first
 * head of the subset, and @n_heads, @n_kv_heads of the subset.
 */
void llm_attention_causal_strided (float *out, gsize out_stride,
    const float *q, gsize q_stride, const float *k, const float *v,
    gsize kv_stride, guint n_q, guint q_pos0, guint n_heads,
    guint n_kv_heads, guint head_dim, float scale, guint window,
    float *scratch);

G_END_DECLS
