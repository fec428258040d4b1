/* LLMasOS - choosing the next token from logits.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  gdouble temperature;          /* 0 = greedy (argmax) */
  guint top_k;                  /* 0 = off */
  gdouble top_p;                /* 1.0 = off */
  gdouble min_p;                /* 0.0 = off; keep p >= min_p * p_max */
  gdouble repeat_penalty;       /* 1.0 = off; llama.cpp / CTRL style */
  guint repeat_last_n;          /* tokens of history the penalty looks at */
  guint64 seed;
} LlmSamplerParams;

void llm_sampler_params_init (LlmSamplerParams * p);   /* the defaults above */

typedef struct _LlmSampler LlmSampler;

/* One sampler per sequence: it owns that sequence's random state, seeded
 * from @p->seed, so a run with the same seed gives the same tokens. */
LlmSampler *llm_sampler_new (const LlmSamplerParams * p, guint n_vocab);
void llm_sampler_free (LlmSampler * s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (LlmSampler, llm_sampler_free)

/* Order: repetition penalty on @history, then greedy if temperature == 0,
 * else temperature, top-k, softmax, top-p, min-p, draw. @logits is not
 * modified. The chosen id is remembered as history. */
gint32 llm_sampler_sample (LlmSampler * s, const float *logits);
/* Adds ids to the history without sampling (the prompt). */
void llm_sampler_accept (LlmSampler * s, const gint32 * ids, guint n);

/* The draw split from the rest, so that another device can sample with
 * the same random numbers: llm_sampler_sample() is
 * llm_sampler_sample_with_coin (s, logits, needs_coin ? draw_coin : 0).
 * A coin is consumed for every token when temperature > 0, none when
 * greedy. */
gboolean llm_sampler_needs_coin (const LlmSampler * s);
/* The uniform in [0, 1) the next sample would use; advances the state. */
gdouble llm_sampler_draw_coin (LlmSampler * s);
/* Steps 1 to 9 with @coin as the uniform; appends the id to history. */
gint32 llm_sampler_sample_with_coin (LlmSampler * s, const float *logits,
    gdouble coin);
/* The parameters in use (min_p clamped to [0, 1]). */
void llm_sampler_get_params (const LlmSampler * s, LlmSamplerParams * p);
/* Appends @id, chosen elsewhere (on a GPU), to the history. */
void llm_sampler_note (LlmSampler * s, gint32 id);

G_END_DECLS
