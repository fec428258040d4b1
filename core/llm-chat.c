/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-chat.h"

#include <json-glib/json-glib.h>
#include <string.h>

static gchar *
template_from_hf_folder (const gchar * folder)
{
  gchar *path = g_build_filename (folder, "tokenizer_config.json", NULL);
  JsonParser *parser = json_parser_new ();
  gchar *text = NULL;

  if (json_parser_load_from_file (parser, path, NULL)) {
    JsonNode *root = json_parser_get_root (parser);

    if (JSON_NODE_HOLDS_OBJECT (root)) {
      JsonObject *o = json_node_get_object (root);
      JsonNode *t = json_object_get_member (o, "chat_template");

      if (t && JSON_NODE_HOLDS_VALUE (t) &&
          json_node_get_value_type (t) == G_TYPE_STRING)
        text = g_strdup (json_node_get_string (t));
    }
  }
  g_object_unref (parser);
  g_free (path);
  return text;
}

gchar *
llm_chat_template_of (const LlmModelFile * mf)
{
  if (mf->gguf)
    return g_strdup (llm_gguf_get_string (mf->gguf, "tokenizer.chat_template"));
  if (mf->format == LLM_MODEL_FORMAT_HF)
    return template_from_hf_folder (mf->path);
  return NULL;
}

LlmChatFamily
llm_chat_family (const gchar * t)
{
  if (t == NULL || *t == '\0')
    return LLM_CHAT_NONE;
  if (strstr (t, "<start_of_turn>"))
    return LLM_CHAT_GEMMA;
  if (strstr (t, "<|im_start|>"))
    return LLM_CHAT_CHATML;
  if (strstr (t, "<|start_header_id|>"))
    return LLM_CHAT_LLAMA3;
  return LLM_CHAT_UNKNOWN;
}

LlmChatFamily
llm_chat_family_for_model (const LlmModelFile * mf)
{
  gchar *tmpl = llm_chat_template_of (mf);
  LlmChatFamily family = llm_chat_family (tmpl);

  g_free (tmpl);
  if (family != LLM_CHAT_NONE)
    return family;
  if (llm_vocab_find (mf->vocab, "<start_of_turn>") >= 0 &&
      llm_vocab_find (mf->vocab, "<end_of_turn>") >= 0)
    return LLM_CHAT_GEMMA;
  if (llm_vocab_find (mf->vocab, "<|im_start|>") >= 0 &&
      llm_vocab_find (mf->vocab, "<|im_end|>") >= 0)
    return LLM_CHAT_CHATML;
  if (llm_vocab_find (mf->vocab, "<|start_header_id|>") >= 0)
    return LLM_CHAT_LLAMA3;
  return LLM_CHAT_NONE;
}

const gchar *
llm_chat_family_name (LlmChatFamily family)
{
  switch (family) {
    case LLM_CHAT_NONE:
      return "none";
    case LLM_CHAT_UNKNOWN:
      return "unknown";
    case LLM_CHAT_GEMMA:
      return "gemma";
    case LLM_CHAT_CHATML:
      return "chatml";
    case LLM_CHAT_LLAMA3:
      return "llama3";
  }
  return "unknown";
}

gchar *
llm_chat_format_turn (LlmChatFamily family, const gchar * system,
    const gchar * user, gboolean first)
{
  GString *s = g_string_new (NULL);
  gboolean with_system = first && system && *system;

  switch (family) {
    case LLM_CHAT_GEMMA:
      /* Gemma has no system role: its template puts the system prompt at
       * the top of the first user turn. */
      if (!first)
        g_string_append (s, "<end_of_turn>\n");
      g_string_append (s, "<start_of_turn>user\n");
      if (with_system)
        g_string_append_printf (s, "%s\n\n", system);
      g_string_append_printf (s, "%s<end_of_turn>\n<start_of_turn>model\n",
          user);
      break;
    case LLM_CHAT_CHATML:
      if (!first)
        g_string_append (s, "<|im_end|>\n");
      if (with_system)
        g_string_append_printf (s, "<|im_start|>system\n%s<|im_end|>\n",
            system);
      g_string_append_printf (s, "<|im_start|>user\n%s<|im_end|>\n"
          "<|im_start|>assistant\n", user);
      break;
    case LLM_CHAT_LLAMA3:
      if (!first)
        g_string_append (s, "<|eot_id|>");
      if (with_system)
        g_string_append_printf (s, "<|start_header_id|>system"
            "<|end_header_id|>\n\n%s<|eot_id|>", system);
      g_string_append_printf (s, "<|start_header_id|>user<|end_header_id|>"
          "\n\n%s<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
          user);
      break;
    case LLM_CHAT_NONE:
    case LLM_CHAT_UNKNOWN:
      g_string_append (s, user);
      break;
  }
  return g_string_free (s, FALSE);
}
