/* LLMasOS - vocabularies from the tokenizer.ggml.* keys of a GGUF file.
 * SPDX-License-Identifier: LGPL-2.1-or-later */

#include <string.h>

#include "llm-vocab.h"
#include "llm-error.h"
#include "llm-gguf.h"

#define SOURCE "GGUF"

/* The value of an array key in @out (transfer none), NULL when absent;
 * FALSE when the key holds something else. */
static gboolean
get_array (const LlmGguf * gguf, const gchar * key, GVariant ** out,
    GError ** error)
{
  gint i = llm_gguf_find_kv (gguf, key);
  GVariant *v;

  *out = NULL;
  if (i < 0)
    return TRUE;
  v = llm_gguf_kv_value (gguf, i);
  if (v == NULL || !g_variant_is_of_type (v, G_VARIANT_TYPE_ARRAY)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        SOURCE ": %s is not an array", key);
    return FALSE;
  }
  *out = v;
  return TRUE;
}

/* Strings of an array key into @out (n entries); each must be UTF-8. */
static gboolean
read_strings (GVariant * arr, const gchar * key, gchar ** out, GError ** error)
{
  gsize n = g_variant_n_children (arr);

  for (gsize i = 0; i < n; i++) {
    g_autoptr (GVariant) e = g_variant_get_child_value (arr, i);

    if (g_variant_is_of_type (e, G_VARIANT_TYPE_VARIANT)) {
      g_autoptr (GVariant) inner = g_variant_get_variant (e);
      g_variant_unref (e);
      e = g_steal_pointer (&inner);
    }
    if (!g_variant_is_of_type (e, G_VARIANT_TYPE_STRING)) {
      g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
          SOURCE ": %s[%" G_GSIZE_FORMAT "] is not a UTF-8 string", key, i);
      return FALSE;
    }
    out[i] = g_variant_dup_string (e, NULL);
  }
  return TRUE;
}

/* One number of a numeric array, whatever its GVariant element type. */
static gboolean
number_at (GVariant * arr, gsize i, gdouble * out)
{
  g_autoptr (GVariant) e = g_variant_get_child_value (arr, i);

  switch (g_variant_classify (e)) {
    case G_VARIANT_CLASS_BYTE:
      *out = g_variant_get_byte (e);
      return TRUE;
    case G_VARIANT_CLASS_INT16:
      *out = g_variant_get_int16 (e);
      return TRUE;
    case G_VARIANT_CLASS_UINT16:
      *out = g_variant_get_uint16 (e);
      return TRUE;
    case G_VARIANT_CLASS_INT32:
      *out = g_variant_get_int32 (e);
      return TRUE;
    case G_VARIANT_CLASS_UINT32:
      *out = g_variant_get_uint32 (e);
      return TRUE;
    case G_VARIANT_CLASS_INT64:
      *out = g_variant_get_int64 (e);
      return TRUE;
    case G_VARIANT_CLASS_UINT64:
      *out = g_variant_get_uint64 (e);
      return TRUE;
    case G_VARIANT_CLASS_DOUBLE:
      *out = g_variant_get_double (e);
      return TRUE;
    default:
      return FALSE;
  }
}

static gboolean
check_length (GVariant * arr, const gchar * key, guint n_tokens,
    GError ** error)
{
  if (g_variant_n_children (arr) == n_tokens)
    return TRUE;
  g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
      SOURCE ": %s has %" G_GSIZE_FORMAT " entries but there are %u tokens",
      key, g_variant_n_children (arr), n_tokens);
  return FALSE;
}

static gboolean
read_scores (const LlmGguf * gguf, LlmVocab * v, GError ** error)
{
  const gchar *key = "tokenizer.ggml.scores";
  GVariant *arr;

  if (!get_array (gguf, key, &arr, error))
    return FALSE;
  if (arr == NULL)
    return TRUE;
  if (!check_length (arr, key, v->n_tokens, error))
    return FALSE;
  v->scores = g_new (float, MAX (v->n_tokens, 1));
  for (guint i = 0; i < v->n_tokens; i++) {
    gdouble d;

    if (!number_at (arr, i, &d)) {
      g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
          SOURCE ": %s must hold numbers", key);
      return FALSE;
    }
    v->scores[i] = d;
  }
  return TRUE;
}

/* 0..6; 0 is llama.cpp's "undefined". Range first: casting a huge double
 * to an int is undefined. */
static gboolean
is_token_type (gdouble d)
{
  return d >= 0 && d <= LLM_TOKEN_BYTE && d == (gint) d;
}

/* Token types; without them, <0xNN> pieces of an SPM vocabulary are its
 * byte tokens, as llama.cpp assumes. */
static gboolean
read_types (const LlmGguf * gguf, LlmVocab * v, GError ** error)
{
  const gchar *key = "tokenizer.ggml.token_type";
  GVariant *arr;

  if (!get_array (gguf, key, &arr, error))
    return FALSE;
  if (arr == NULL) {
    for (guint i = 0; v->kind == LLM_VOCAB_SPM && i < v->n_tokens; i++)
      if (llm_vocab_piece_is_byte (v->pieces[i]))
        v->types[i] = LLM_TOKEN_BYTE;
    return TRUE;
  }
  if (!check_length (arr, key, v->n_tokens, error))
    return FALSE;
  for (guint i = 0; i < v->n_tokens; i++) {
    gdouble d;

    if (!number_at (arr, i, &d) || !is_token_type (d)) {
      g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
          SOURCE ": %s[%u] is not a token type (1..6)", key, i);
      return FALSE;
    }
    /* 0 is llama.cpp's "undefined": a normal token */
    v->types[i] = d == 0 ? LLM_TOKEN_NORMAL : (gint32) d;
  }
  return TRUE;
}

static gboolean
read_merges (const LlmGguf * gguf, LlmVocab * v, GError ** error)
{
  const gchar *key = "tokenizer.ggml.merges";
  GVariant *arr;
  gsize n;

  if (!get_array (gguf, key, &arr, error))
    return FALSE;
  if (arr == NULL)
    return TRUE;
  n = g_variant_n_children (arr);
  v->merges = g_new0 (gchar *, n + 1);
  if (!read_strings (arr, key, v->merges, error))
    return FALSE;
  v->n_merges = n;
  return TRUE;
}

/* A special token id: absent keeps @fallback (when it is a valid id). */
static gboolean
read_id (const LlmGguf * gguf, const gchar * name, gint32 fallback,
    guint n_tokens, gint32 * out, GError ** error)
{
  g_autofree gchar *key = g_strdup_printf ("tokenizer.ggml.%s", name);
  guint64 id;

  *out = fallback >= 0 && (guint) fallback < n_tokens ? fallback : -1;
  if (llm_gguf_find_kv (gguf, key) < 0)
    return TRUE;
  if (!llm_gguf_get_uint (gguf, key, &id)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        SOURCE ": %s is not a non-negative integer", key);
    return FALSE;
  }
  if (id >= n_tokens) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        SOURCE ": %s %" G_GUINT64_FORMAT " out of range (%u tokens)", key, id,
        n_tokens);
    return FALSE;
  }
  *out = id;
  return TRUE;
}

static gboolean
read_flag (const LlmGguf * gguf, const gchar * name, gboolean fallback,
    gboolean * out, GError ** error)
{
  g_autofree gchar *key = g_strdup_printf ("tokenizer.ggml.%s", name);

  *out = fallback;
  if (llm_gguf_find_kv (gguf, key) < 0 || llm_gguf_get_bool (gguf, key, out))
    return TRUE;
  g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
      SOURCE ": %s is not a bool", key);
  return FALSE;
}

static gboolean
read_kind (const LlmGguf * gguf, LlmVocabKind * kind, GError ** error)
{
  const gchar *model = llm_gguf_get_string (gguf, "tokenizer.ggml.model");
  const gchar *pre = llm_gguf_get_string (gguf, "tokenizer.ggml.pre");

  if (model == NULL) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        SOURCE ": no tokenizer.ggml.model string");
    return FALSE;
  }
  if (strcmp (model, "llama") == 0) {
    *kind = LLM_VOCAB_SPM;
    return TRUE;
  }
  if (strcmp (model, "gpt2") != 0) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
        SOURCE ": tokenizer model '%s' is not supported (llama, gpt2)", model);
    return FALSE;
  }
  /* other pre-tokenizers (llama-bpe, qwen2, ...) split text with other
   * regexes: refuse rather than tokenize differently */
  if (pre != NULL && strcmp (pre, "default") != 0 && strcmp (pre, "gpt2") != 0
      && strcmp (pre, "gpt-2") != 0) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
        SOURCE ": gpt2 pre-tokenizer '%s' is not supported (only the GPT-2 "
        "regex)", pre);
    return FALSE;
  }
  *kind = LLM_VOCAB_GPT2;
  return TRUE;
}

static LlmVocab *
read_tokens (const LlmGguf * gguf, LlmVocabKind kind, GError ** error)
{
  const gchar *key = "tokenizer.ggml.tokens";
  GVariant *arr;
  LlmVocab *v;

  if (!get_array (gguf, key, &arr, error))
    return NULL;
  if (arr == NULL) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        SOURCE ": no %s array", key);
    return NULL;
  }
  if (g_variant_n_children (arr) == 0 ||
      g_variant_n_children (arr) > G_MAXINT32) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        SOURCE ": %s has %" G_GSIZE_FORMAT " entries", key,
        g_variant_n_children (arr));
    return NULL;
  }
  v = llm_vocab_alloc (kind, g_variant_n_children (arr));
  if (!read_strings (arr, key, v->pieces, error)) {
    llm_vocab_free (v);
    return NULL;
  }
  return v;
}

LlmVocab *
llm_vocab_new_from_gguf (const LlmGguf * gguf, GError ** error)
{
  LlmVocabKind kind;
  LlmVocab *v;
  gboolean spm, prefix = FALSE;

  g_return_val_if_fail (gguf != NULL, NULL);
  if (!read_kind (gguf, &kind, error) ||
      (v = read_tokens (gguf, kind, error)) == NULL)
    return NULL;
  spm = kind == LLM_VOCAB_SPM;
  /* llama.cpp's defaults for the llama model: unk 0, bos 1, eos 2 */
  if (!read_scores (gguf, v, error) || !read_types (gguf, v, error) ||
      !read_merges (gguf, v, error) ||
      !read_id (gguf, "bos_token_id", spm ? 1 : -1, v->n_tokens, &v->bos,
          error) ||
      !read_id (gguf, "eos_token_id", spm ? 2 : -1, v->n_tokens, &v->eos,
          error) ||
      !read_id (gguf, "unknown_token_id", spm ? 0 : -1, v->n_tokens, &v->unk,
          error) ||
      !read_id (gguf, "padding_token_id", -1, v->n_tokens, &v->pad, error) ||
      !read_flag (gguf, "add_bos_token", spm, &v->add_bos, error) ||
      !read_flag (gguf, "add_eos_token", FALSE, &v->add_eos, error) ||
      !read_flag (gguf, "add_space_prefix", spm, &prefix, error))
    goto fail;
  if (kind == LLM_VOCAB_GPT2 && v->merges == NULL) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        SOURCE ": a gpt2 vocabulary needs tokenizer.ggml.merges");
    goto fail;
  }
  /* '▁' before the text and after every added token, as llama.cpp does,
   * but none before a text that starts with a space: the same rule as for
   * tokenizer.json (see detect_style), so that one vocabulary tokenizes
   * the same from either file */
  if (spm)
    llm_vocab_set_spm_prepend (v, prefix ? LLM_SPM_PREPEND_ALWAYS :
        LLM_SPM_PREPEND_NEVER, TRUE);
  else
    v->add_space_prefix = prefix;
  if (!llm_vocab_finish (v, SOURCE, NULL, error))
    goto fail;
  return v;

fail:
  llm_vocab_free (v);
  return NULL;
}
