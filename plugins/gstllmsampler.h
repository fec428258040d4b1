/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "gstllmelement.h"

G_BEGIN_DECLS

#define GST_TYPE_LLM_SAMPLER (gst_llm_sampler_get_type ())
G_DECLARE_FINAL_TYPE (GstLlmSampler, gst_llm_sampler, GST, LLM_SAMPLER,
    GstLlmElement)
GST_ELEMENT_REGISTER_DECLARE (llmsampler);

G_END_DECLS
