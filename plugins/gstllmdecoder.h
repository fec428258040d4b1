/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "gstllmelement.h"

G_BEGIN_DECLS

#define GST_TYPE_LLM_DECODER (gst_llm_decoder_get_type ())
G_DECLARE_FINAL_TYPE (GstLlmDecoder, gst_llm_decoder, GST, LLM_DECODER,
    GstLlmElement)
GST_ELEMENT_REGISTER_DECLARE (llmdecoder);

G_END_DECLS
