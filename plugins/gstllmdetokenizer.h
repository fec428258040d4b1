/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "gstllmelement.h"

G_BEGIN_DECLS

#define GST_TYPE_LLM_DETOKENIZER (gst_llm_detokenizer_get_type ())
G_DECLARE_FINAL_TYPE (GstLlmDetokenizer, gst_llm_detokenizer, GST,
    LLM_DETOKENIZER, GstLlmElement)
GST_ELEMENT_REGISTER_DECLARE (llmdetokenizer);

G_END_DECLS
