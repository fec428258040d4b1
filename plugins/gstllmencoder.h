/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "gstllmelement.h"

G_BEGIN_DECLS

#define GST_TYPE_LLM_ENCODER (gst_llm_encoder_get_type ())
G_DECLARE_FINAL_TYPE (GstLlmEncoder, gst_llm_encoder, GST, LLM_ENCODER,
    GstLlmElement)
GST_ELEMENT_REGISTER_DECLARE (llmencoder);

typedef enum {
  GST_LLM_CONTEXT_OVERFLOW_ERROR,
  GST_LLM_CONTEXT_OVERFLOW_TRUNCATE,
} GstLlmContextOverflow;

G_END_DECLS
