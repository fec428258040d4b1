/* LLMasOS - chat templates: turning conversation turns into prompt text.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include "llm-model-file.h"

G_BEGIN_DECLS

/* The template families we know. A model's template (GGUF
 * tokenizer.chat_template, or chat_template in tokenizer_config.json) is a
 * Jinja program; rather than run Jinja we recognise its family by its
 * markers, as llama.cpp does, and format turns in C. */
typedef enum {
  LLM_CHAT_NONE,                /* the model has no chat template */
  LLM_CHAT_UNKNOWN,             /* it has one we do not recognise */
  LLM_CHAT_GEMMA,               /* <start_of_turn>user ... <end_of_turn> */
  LLM_CHAT_CHATML,              /* <|im_start|>user ... <|im_end|> */
  LLM_CHAT_LLAMA3,              /* <|start_header_id|>user<|end_header_id|> */
} LlmChatFamily;

/* The model's template text, or NULL. (transfer full) */
gchar *llm_chat_template_of (const LlmModelFile * mf);
LlmChatFamily llm_chat_family (const gchar * template_text);
const gchar *llm_chat_family_name (LlmChatFamily family);
/* The family of @mf's template; when the file has none (base models such
 * as the Gemma 3 270M GGUF of the default-model package), the family whose
 * turn markers are tokens of the vocabulary, else LLM_CHAT_NONE. */
LlmChatFamily llm_chat_family_for_model (const LlmModelFile * mf);

/**
 * llm_chat_format_turn:
 * @family: a known family
 * @system: (nullable): the system prompt, used on the first turn only
 * @user: the user's message
 * @first: the first turn of the conversation
 *
 * The text of one user turn followed by the opening of the assistant's
 * turn. On later turns it starts by closing the previous assistant turn
 * (its end-of-turn token was sampled but, being an end token, not fed to
 * the model). BOS is not included: the tokenizer adds it on the first turn.
 * Returns: (transfer full): the text
 */
gchar *llm_chat_format_turn (LlmChatFamily family, const gchar * system,
    const gchar * user, gboolean first);

G_END_DECLS
