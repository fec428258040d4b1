/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "gstllmelement.h"

G_BEGIN_DECLS

#define GST_TYPE_LLM_TOKENIZER (gst_llm_tokenizer_get_type ())
G_DECLARE_FINAL_TYPE (GstLlmTokenizer, gst_llm_tokenizer, GST, LLM_TOKENIZER,
    GstLlmElement)
GST_ELEMENT_REGISTER_DECLARE (llmtokenizer);

typedef enum {
  GST_LLM_PROMPT_MODE_STREAM,   /* the whole stream, up to EOS */
  GST_LLM_PROMPT_MODE_LINE,     /* each line */
  GST_LLM_PROMPT_MODE_BUFFER,   /* each buffer */
} GstLlmPromptMode;

typedef enum {
  GST_LLM_INVALID_UTF8_ERROR,
  GST_LLM_INVALID_UTF8_REPLACE,
} GstLlmInvalidUtf8;

G_END_DECLS
