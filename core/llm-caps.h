/* LLMasOS - media types and caps helpers.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gst/gst.h>
#include "llm-vocab.h"

G_BEGIN_DECLS

#define LLM_MEDIA_TOKENS "application/x-llm-tokens"
#define LLM_MEDIA_STATE "application/x-llm-state"
#define LLM_MEDIA_LOGITS "application/x-llm-logits"
#define LLM_MEDIA_TENSOR "application/x-llm-tensor"

/* Template caps strings. The fingerprint fields (vocab, model) are left
 * out: a missing field accepts any value; fixed caps always carry them. */
#define LLM_CAPS_TOKENS_TEMPLATE LLM_MEDIA_TOKENS ", " \
  "vocab-size = (int) [ 1, MAX ], " \
  "batch = (int) [ 1, 64 ]"
#define LLM_CAPS_STATE_TEMPLATE LLM_MEDIA_STATE ", " \
  "kv-dtype = (string) { F32 }, " \
  "batch = (int) [ 1, 64 ]"
#define LLM_CAPS_LOGITS_TEMPLATE LLM_MEDIA_LOGITS ", " \
  "vocab-size = (int) [ 1, MAX ], " \
  "dtype = (string) { F32 }, batch = (int) [ 1, 64 ]"

/* Fixed caps for tokens of @vocab; @batch 0 leaves the range open. */
GstCaps *llm_caps_new_tokens (const LlmVocab * vocab, gint batch);
GstCaps *llm_caps_new_state (const gchar * model_fingerprint, gint batch);
GstCaps *llm_caps_new_logits (const LlmVocab * vocab, gint batch);
/* The vocab field of the first structure, or NULL. */
const gchar *llm_caps_get_vocab (const GstCaps * caps);

G_END_DECLS
