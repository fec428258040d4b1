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

/* The caps feature of buffers whose memory is device memory from an
 * LlmDeviceAllocator (core/llm-device-memory.h). GStreamer 1.22's
 * memory:CUDAMemory is tied to video frame layouts, so we have our own. */
#define LLM_CAPS_FEATURE_MEMORY_CUDA_TENSOR "memory:CUDATensor"

/* Fixed caps for tokens of @vocab; @batch 0 leaves the range open. */
GstCaps *llm_caps_new_tokens (const LlmVocab * vocab, gint batch);
GstCaps *llm_caps_new_state (const gchar * model_fingerprint, gint batch);
GstCaps *llm_caps_new_logits (const LlmVocab * vocab, gint batch);
/* The vocab field of the first structure, or NULL. */
const gchar *llm_caps_get_vocab (const GstCaps * caps);

/* (transfer full) @caps (taken) preceded by a copy of each of its
 * system-memory structures with the memory:CUDATensor feature: device
 * first, so negotiation prefers it when both sides can, system memory
 * after it as the fallback. For template caps and caps queries. */
GstCaps *llm_caps_add_device_variant (GstCaps * caps);
/* TRUE if the first structure of @caps has memory:CUDATensor. */
gboolean llm_caps_is_device (const GstCaps * caps);

G_END_DECLS
