/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_LLM_ATTENTION (gst_llm_attention_get_type ())
G_DECLARE_FINAL_TYPE (GstLlmAttention, gst_llm_attention, GST, LLM_ATTENTION,
    GstElement)
GST_ELEMENT_REGISTER_DECLARE (llmattention);

typedef enum {
  GST_LLM_KV_DTYPE_F32,
} GstLlmKvDType;

G_END_DECLS
