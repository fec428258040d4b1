/* LLMasOS - vocabularies from Hugging Face tokenizer.json and
 * tokenizer_config.json (json-glib).
 * SPDX-License-Identifier: LGPL-2.1-or-later */

#include <string.h>
#include <json-glib/json-glib.h>

#include "llm-vocab.h"
#include "llm-error.h"
#include "llm-gguf.h"

#define SPM_SPACE "\xe2\x96\x81"        /* U+2581 '▁' */

/* Ids are gint32 and tables are sized by them: refuse absurd sizes early
 * instead of trying to allocate them. */
#define MAX_TOKENS (1 << 24)

/* Small typed accessors; each failure names the member. */
static JsonNode *
member (JsonObject * o, const gchar * name)
{
  JsonNode *n = o != NULL ? json_object_get_member (o, name) : NULL;

  return n != NULL && !JSON_NODE_HOLDS_NULL (n) ? n : NULL;
}

static gboolean
type_error (const gchar * source, const gchar * what, const gchar * want,
    GError ** error)
{
  g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT, "%s: %s must be %s",
      source, what, want);
  return FALSE;
}

static gboolean
get_string (JsonObject * o, const gchar * name, const gchar * source,
    const gchar * where, const gchar ** out, GError ** error)
{
  JsonNode *n = member (o, name);

  *out = NULL;
  if (n == NULL)
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (n)
      || json_node_get_value_type (n) != G_TYPE_STRING) {
    g_autofree gchar *what = g_strdup_printf ("%s%s", where, name);
    return type_error (source, what, "a string", error);
  }
  *out = json_node_get_string (n);
  return TRUE;
}

static gboolean
get_bool (JsonObject * o, const gchar * name, const gchar * source,
    const gchar * where, gboolean * out, GError ** error)
{
  JsonNode *n = member (o, name);

  if (n == NULL)
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (n) ||
      json_node_get_value_type (n) != G_TYPE_BOOLEAN) {
    g_autofree gchar *what = g_strdup_printf ("%s%s", where, name);
    return type_error (source, what, "true or false", error);
  }
  *out = json_node_get_boolean (n);
  return TRUE;
}

static gboolean
get_object (JsonObject * o, const gchar * name, const gchar * source,
    const gchar * where, JsonObject ** out, GError ** error)
{
  JsonNode *n = member (o, name);

  *out = NULL;
  if (n == NULL)
    return TRUE;
  if (!JSON_NODE_HOLDS_OBJECT (n)) {
    g_autofree gchar *what = g_strdup_printf ("%s%s", where, name);
    return type_error (source, what, "an object", error);
  }
  *out = json_node_get_object (n);
  return TRUE;
}

static gboolean
get_array (JsonObject * o, const gchar * name, const gchar * source,
    const gchar * where, JsonArray ** out, GError ** error)
{
  JsonNode *n = member (o, name);

  *out = NULL;
  if (n == NULL)
    return TRUE;
  if (!JSON_NODE_HOLDS_ARRAY (n)) {
    g_autofree gchar *what = g_strdup_printf ("%s%s", where, name);
    return type_error (source, what, "an array", error);
  }
  *out = json_node_get_array (n);
  return TRUE;
}

static gboolean
node_is_int (JsonNode * n)
{
  return n != NULL && JSON_NODE_HOLDS_VALUE (n) &&
      json_node_get_value_type (n) == G_TYPE_INT64;
}

/* *INDENT-OFF* */
static gboolean unsupported (const gchar * source, GError ** error,
    const gchar * fmt, ...) G_GNUC_PRINTF (3, 4);
/* *INDENT-ON* */

static gboolean
unsupported (const gchar * source, GError ** error, const gchar * fmt, ...)
{
  va_list ap;
  g_autofree gchar *msg = NULL;

  va_start (ap, fmt);
  msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED, "%s: %s", source, msg);
  return FALSE;
}

/* What the normalizer and pre-tokenizer say about the algorithm. */
typedef struct
{
  LlmVocabKind kind;
  LlmSpmPrepend prepend;
  gboolean prepend_unless_present;
  gboolean split_words;
  gboolean add_prefix_space;    /* ByteLevel */
  gboolean use_regex;
} HfStyle;

static gboolean
is_string_pattern (JsonObject * o, const gchar * want)
{
  JsonObject *pat = NULL;
  const gchar *s = NULL;

  if (!get_object (o, "pattern", "", "", &pat, NULL) || pat == NULL)
    return FALSE;
  return get_string (pat, "String", "", "", &s, NULL) && g_strcmp0 (s,
      want) == 0;
}

/* The Llama normalizer: Prepend '▁' and Replace ' ' -> '▁', in a
 * Sequence or alone. */
static gboolean
read_normalizer (JsonObject * norm, const gchar * source,
    gboolean * prepend, gboolean * replace, GError ** error)
{
  const gchar *type = NULL, *s = NULL;
  JsonArray *list = NULL;

  if (!get_string (norm, "type", source, "normalizer.", &type, error))
    return FALSE;
  if (g_strcmp0 (type, "Sequence") == 0) {
    if (!get_array (norm, "normalizers", source, "normalizer.", &list, error))
      return FALSE;
    for (guint i = 0; list != NULL && i < json_array_get_length (list); i++) {
      JsonNode *n = json_array_get_element (list, i);

      if (!JSON_NODE_HOLDS_OBJECT (n))
        return type_error (source, "normalizer.normalizers[]", "objects",
            error);
      if (!read_normalizer (json_node_get_object (n), source, prepend,
              replace, error))
        return FALSE;
    }
    return TRUE;
  }
  if (g_strcmp0 (type, "Prepend") == 0) {
    if (!get_string (norm, "prepend", source, "normalizer.", &s, error))
      return FALSE;
    if (g_strcmp0 (s, SPM_SPACE) != 0)
      return unsupported (source, error, "normalizer Prepend of '%s' is not "
          "supported (only '" SPM_SPACE "')", s ? s : "");
    *prepend = TRUE;
    return TRUE;
  }
  if (g_strcmp0 (type, "Replace") == 0) {
    if (!get_string (norm, "content", source, "normalizer.", &s, error))
      return FALSE;
    if (!is_string_pattern (norm, " ") || g_strcmp0 (s, SPM_SPACE) != 0)
      return unsupported (source, error, "normalizer Replace is supported "
          "only as ' ' -> '" SPM_SPACE "'");
    *replace = TRUE;
    return TRUE;
  }
  return unsupported (source, error, "normalizer '%s' is not supported",
      type ? type : "(no type)");
}

static gboolean
read_metaspace (JsonObject * pre, const gchar * source, HfStyle * st,
    GError ** error)
{
  const gchar *rep = NULL, *scheme = NULL;
  gboolean add_prefix = TRUE, split = TRUE;

  if (!get_string (pre, "replacement", source, "pre_tokenizer.", &rep, error)
      || !get_string (pre, "prepend_scheme", source, "pre_tokenizer.",
          &scheme, error)
      || !get_bool (pre, "add_prefix_space", source, "pre_tokenizer.",
          &add_prefix, error)
      || !get_bool (pre, "split", source, "pre_tokenizer.", &split, error))
    return FALSE;
  if (g_strcmp0 (rep, SPM_SPACE) != 0)
    return unsupported (source, error, "Metaspace replacement '%s' is not "
        "supported (only '" SPM_SPACE "')", rep ? rep : "");
  st->kind = LLM_VOCAB_SPM;
  st->prepend_unless_present = TRUE;
  st->split_words = split;
  if (scheme == NULL)
    st->prepend = add_prefix ? LLM_SPM_PREPEND_ALWAYS : LLM_SPM_PREPEND_NEVER;
  else if (strcmp (scheme, "always") == 0)
    st->prepend = LLM_SPM_PREPEND_ALWAYS;
  else if (strcmp (scheme, "first") == 0)
    st->prepend = LLM_SPM_PREPEND_FIRST;
  else if (strcmp (scheme, "never") == 0)
    st->prepend = LLM_SPM_PREPEND_NEVER;
  else
    return unsupported (source, error, "Metaspace prepend_scheme '%s' is "
        "not supported", scheme);
  return TRUE;
}

static gboolean
read_pre_tokenizer (JsonObject * pre, const gchar * source, HfStyle * st,
    gboolean * seen, GError ** error)
{
  const gchar *type = NULL;
  JsonArray *list = NULL;

  if (!get_string (pre, "type", source, "pre_tokenizer.", &type, error))
    return FALSE;
  if (g_strcmp0 (type, "Sequence") == 0) {
    if (!get_array (pre, "pretokenizers", source, "pre_tokenizer.", &list,
            error))
      return FALSE;
    for (guint i = 0; list != NULL && i < json_array_get_length (list); i++) {
      JsonNode *n = json_array_get_element (list, i);

      if (!JSON_NODE_HOLDS_OBJECT (n))
        return type_error (source, "pre_tokenizer.pretokenizers[]",
            "objects", error);
      if (*seen)
        return unsupported (source, error, "a Sequence of several "
            "pre-tokenizers is not supported");
      if (!read_pre_tokenizer (json_node_get_object (n), source, st, seen,
              error))
        return FALSE;
    }
    return TRUE;
  }
  if (g_strcmp0 (type, "ByteLevel") == 0) {
    st->kind = LLM_VOCAB_GPT2;
    st->add_prefix_space = TRUE;
    st->use_regex = TRUE;
    *seen = TRUE;
    return get_bool (pre, "add_prefix_space", source, "pre_tokenizer.",
        &st->add_prefix_space, error) && get_bool (pre, "use_regex", source,
        "pre_tokenizer.", &st->use_regex, error);
  }
  if (g_strcmp0 (type, "Metaspace") == 0) {
    *seen = TRUE;
    return read_metaspace (pre, source, st, error);
  }
  return unsupported (source, error, "pre_tokenizer '%s' is not supported",
      type ? type : "(no type)");
}

/* Llama-style SPM (the normalizer, or a Metaspace pre-tokenizer) or
 * GPT-2 byte-level BPE (a ByteLevel pre-tokenizer). */
static gboolean
detect_style (JsonObject * root, const gchar * source, HfStyle * st,
    GError ** error)
{
  JsonObject *norm = NULL, *pre = NULL;
  gboolean prepend = FALSE, replace = FALSE, seen = FALSE;

  memset (st, 0, sizeof *st);
  if (!get_object (root, "normalizer", source, "", &norm, error) ||
      !get_object (root, "pre_tokenizer", source, "", &pre, error))
    return FALSE;
  if (norm != NULL && !read_normalizer (norm, source, &prepend, &replace,
          error))
    return FALSE;
  if (pre != NULL && !read_pre_tokenizer (pre, source, st, &seen, error))
    return FALSE;

  if (seen && st->kind == LLM_VOCAB_GPT2) {
    if (norm != NULL)
      return unsupported (source, error, "a normalizer together with the "
          "ByteLevel pre-tokenizer is not supported");
    return TRUE;
  }
  if (seen)                     /* Metaspace */
    return norm == NULL || !prepend ? TRUE : unsupported (source, error,
        "a Prepend normalizer together with Metaspace is not supported");
  if (!replace)
    return unsupported (source, error, "neither a SentencePiece-style "
        "normalizer (Replace ' ' -> '" SPM_SPACE "') nor a ByteLevel or "
        "Metaspace pre-tokenizer: this tokenizer is not supported");
  /* transformers' LlamaTokenizer runs this as Metaspace (prepend_scheme
   * "always"), which adds no '▁' before a text that starts with a space;
   * our references come from it. The raw normalizer, sentencepiece and
   * llama.cpp would give " t" an extra '▁'. */
  st->kind = LLM_VOCAB_SPM;
  st->prepend = prepend ? LLM_SPM_PREPEND_ALWAYS : LLM_SPM_PREPEND_NEVER;
  st->prepend_unless_present = TRUE;
  return TRUE;
}

static gboolean
put_piece (gchar ** pieces, guint n, gint64 id, const gchar * piece,
    const gchar * source, GError ** error)
{
  if (id < 0 || id >= n) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: token '%s' has id %" G_GINT64_FORMAT " out of range "
        "(0..%u for %u entries)", source, piece, id, n - 1, n);
    return FALSE;
  }
  if (pieces[id] != NULL && strcmp (pieces[id], piece) != 0) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: id %" G_GINT64_FORMAT " is given to both '%s' and '%s'", source,
        id, pieces[id], piece);
    return FALSE;
  }
  if (pieces[id] == NULL)
    pieces[id] = g_strdup (piece);
  return TRUE;
}

/* Every piece lands at its id; the vocabulary is the union of model.vocab
 * and added_tokens, which repeat some entries (<unk>, <s>). */
static gboolean
read_pieces (JsonObject * model, JsonArray * added, const gchar * source,
    gchar *** out, guint * n_out, GError ** error)
{
  JsonObject *vocab = NULL;
  JsonObjectIter it;
  const gchar *name;
  JsonNode *node;
  guint n_added = added ? json_array_get_length (added) : 0;
  gint64 max_id = -1;
  guint n_entries;
  gchar **pieces;

  if (!get_object (model, "vocab", source, "model.", &vocab, error))
    return FALSE;
  if (vocab == NULL)
    return type_error (source, "model.vocab", "an object", error);
  n_entries = json_object_get_size (vocab) + n_added;
  if (n_entries == 0 || n_entries > MAX_TOKENS) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: model.vocab has %u entries", source, n_entries);
    return FALSE;
  }
  /* ids must be dense, so none can reach the number of entries */
  pieces = g_new0 (gchar *, n_entries + 1);
  json_object_iter_init (&it, vocab);
  while (json_object_iter_next (&it, &name, &node)) {
    if (!node_is_int (node)) {
      g_autofree gchar *what = g_strdup_printf ("model.vocab['%s']", name);
      type_error (source, what, "an integer id", error);
      goto fail;
    }
    if (!put_piece (pieces, n_entries, json_node_get_int (node), name,
            source, error))
      goto fail;
    max_id = MAX (max_id, json_node_get_int (node));
  }
  for (guint i = 0; i < n_added; i++) {
    JsonNode *e = json_array_get_element (added, i);
    JsonObject *o = JSON_NODE_HOLDS_OBJECT (e) ? json_node_get_object (e) :
        NULL;
    const gchar *content = NULL;

    if (o == NULL || !node_is_int (member (o, "id")) ||
        !get_string (o, "content", source, "added_tokens[].", &content, NULL)
        || content == NULL) {
      g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
          "%s: added_tokens[%u] must be an object with an integer id and a "
          "string content", source, i);
      goto fail;
    }
    if (!put_piece (pieces, n_entries, json_node_get_int (member (o, "id")),
            content, source, error))
      goto fail;
    max_id = MAX (max_id, json_node_get_int (member (o, "id")));
  }
  *out = pieces;
  *n_out = max_id + 1;
  return TRUE;

fail:
  /* ids are not dense yet: free every slot, not up to the first hole */
  for (guint i = 0; i < n_entries; i++)
    g_free (pieces[i]);
  g_free (pieces);
  return FALSE;
}

/* Types: added tokens are CONTROL when special, else USER_DEFINED; with
 * byte fallback, <0xNN> pieces are BYTE. */
static gboolean
read_types (LlmVocab * v, JsonArray * added, gboolean byte_fallback,
    const gchar * source, GError ** error)
{
  for (guint i = 0; byte_fallback && i < v->n_tokens; i++)
    if (llm_vocab_piece_is_byte (v->pieces[i]))
      v->types[i] = LLM_TOKEN_BYTE;
  for (guint i = 0; added != NULL && i < json_array_get_length (added); i++) {
    JsonObject *o = json_array_get_object_element (added, i);
    gint64 id = json_node_get_int (member (o, "id"));
    gboolean special = FALSE;

    if (!get_bool (o, "special", source, "added_tokens[].", &special, error))
      return FALSE;
    v->types[id] = special ? LLM_TOKEN_CONTROL : LLM_TOKEN_USER_DEFINED;
  }
  return TRUE;
}

/* Merges, ranked by position: "a b" strings (older files) or ["a", "b"]
 * pairs (newer ones, which allow spaces inside pieces). */
static gboolean
read_merges (LlmVocab * v, JsonObject * model, const gchar * source,
    guint ** split_out, GError ** error)
{
  JsonArray *arr = NULL;
  guint n;
  guint *split;

  if (!get_array (model, "merges", source, "model.", &arr, error))
    return FALSE;
  n = arr ? json_array_get_length (arr) : 0;
  v->merges = g_new0 (gchar *, n + 1);
  split = g_new (guint, MAX (n, 1));
  for (guint i = 0; i < n; i++) {
    JsonNode *e = json_array_get_element (arr, i);
    const gchar *s, *sp;

    if (JSON_NODE_HOLDS_VALUE (e) && json_node_get_value_type (e) ==
        G_TYPE_STRING && (s = json_node_get_string (e)) != NULL &&
        (sp = strchr (s, ' ')) != NULL && sp != s && sp[1] != '\0' &&
        strchr (sp + 1, ' ') == NULL) {
      v->merges[i] = g_strdup (s);
      split[i] = sp - s;
    } else if (JSON_NODE_HOLDS_ARRAY (e) &&
        json_array_get_length (json_node_get_array (e)) == 2 &&
        json_node_get_value_type (json_array_get_element
            (json_node_get_array (e), 0)) == G_TYPE_STRING &&
        json_node_get_value_type (json_array_get_element
            (json_node_get_array (e), 1)) == G_TYPE_STRING) {
      JsonArray *pair = json_node_get_array (e);
      const gchar *a = json_array_get_string_element (pair, 0);

      v->merges[i] = g_strconcat (a, " ",
          json_array_get_string_element (pair, 1), NULL);
      split[i] = strlen (a);
    } else {
      g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
          "%s: model.merges[%u] must be \"left right\" or [\"left\", "
          "\"right\"]", source, i);
      g_free (split);
      return FALSE;
    }
    v->n_merges = i + 1;
  }
  *split_out = split;
  return TRUE;
}

static gboolean
check_model (JsonObject * model, const gchar * source, GError ** error)
{
  const gchar *type = NULL, *prefix = NULL, *suffix = NULL;
  JsonNode *dropout = member (model, "dropout");

  if (!get_string (model, "type", source, "model.", &type, error) ||
      !get_string (model, "continuing_subword_prefix", source, "model.",
          &prefix, error) ||
      !get_string (model, "end_of_word_suffix", source, "model.", &suffix,
          error))
    return FALSE;
  if (type == NULL && member (model, "merges") == NULL)
    return type_error (source, "model.type", "a string", error);
  if (type != NULL && strcmp (type, "BPE") != 0)
    return unsupported (source, error, "model type '%s' is not supported "
        "(only BPE)", type);
  if ((prefix && *prefix) || (suffix && *suffix))
    return unsupported (source, error, "BPE with continuing_subword_prefix "
        "or end_of_word_suffix is not supported");
  if (dropout != NULL && JSON_NODE_HOLDS_VALUE (dropout) &&
      json_node_get_double (dropout) > 0.0)
    return unsupported (source, error, "BPE dropout is not supported");
  return TRUE;
}

/* A token named in tokenizer_config.json: a string or an AddedToken
 * object {"content": ...}; NULL when absent or null. */
static gboolean
config_token_name (JsonObject * config, const gchar * key,
    const gchar * source, const gchar ** out, GError ** error)
{
  JsonNode *n = member (config, key);

  *out = NULL;
  if (n == NULL)
    return TRUE;
  if (JSON_NODE_HOLDS_OBJECT (n))
    return get_string (json_node_get_object (n), "content", source, key, out,
        error);
  return get_string (config, key, source, "", out, error);
}

static gboolean
resolve_name (LlmVocab * v, const gchar * name, gint32 * id,
    const gchar * what, const gchar * source, GError ** error)
{
  if (name == NULL)
    return TRUE;
  *id = llm_vocab_find (v, name);
  if (*id >= 0)
    return TRUE;
  g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
      "%s: %s '%s' is not in the vocabulary", source, what, name);
  return FALSE;
}

/* The first and last items of a TemplateProcessing "single" template
 * name the tokens put around a text (Llama: "<s>" $A). */
static void
template_specials (JsonObject * post, const gchar ** first, const gchar ** last)
{
  const gchar *type = NULL;
  JsonArray *single = NULL;
  guint n;

  if (!get_string (post, "type", "", "", &type, NULL) || type == NULL)
    return;
  if (strcmp (type, "Sequence") == 0) {
    JsonArray *list = NULL;

    if (get_array (post, "processors", "", "", &list, NULL) && list != NULL)
      for (guint i = 0; i < json_array_get_length (list); i++)
        if (JSON_NODE_HOLDS_OBJECT (json_array_get_element (list, i)))
          template_specials (json_array_get_object_element (list, i), first,
              last);
    return;
  }
  if (strcmp (type, "TemplateProcessing") != 0 ||
      !get_array (post, "single", "", "", &single, NULL) || single == NULL ||
      (n = json_array_get_length (single)) == 0)
    return;
  for (guint k = 0; k < 2; k++) {
    JsonNode *e = json_array_get_element (single, k == 0 ? 0 : n - 1);
    JsonObject *sp = NULL;
    const gchar *id = NULL;

    if (!JSON_NODE_HOLDS_OBJECT (e) || !get_object (json_node_get_object (e),
            "SpecialToken", "", "", &sp, NULL) || sp == NULL ||
        !get_string (sp, "id", "", "", &id, NULL))
      continue;
    *(k == 0 ? first : last) = id;
  }
}

static const gchar *const bos_names[] = { "<s>", "<|begin_of_text|>",
  "<bos>", "<|endoftext|>", NULL
};

static const gchar *const eos_names[] = { "</s>", "<|end_of_text|>",
  "<eos>", "<|endoftext|>", NULL
};

static const gchar *
conventional_name (const LlmVocab * v, const gchar * const *names)
{
  for (guint i = 0; names[i] != NULL; i++) {
    gint32 id = llm_vocab_find (v, names[i]);

    if (id >= 0 && v->types[id] == LLM_TOKEN_CONTROL)
      return names[i];
  }
  return NULL;
}

/* BOS/EOS/UNK/PAD and whether to add BOS/EOS: tokenizer_config.json when
 * given, else the post-processor template and the model's unk_token. */
static gboolean
read_specials (LlmVocab * v, JsonObject * root, JsonObject * model,
    JsonObject * config, const gchar * source, GError ** error)
{
  const gchar *unk = NULL, *bos = NULL, *eos = NULL, *pad = NULL;
  const gchar *t_first = NULL, *t_last = NULL;
  JsonObject *post = NULL;
  gboolean have_add_bos = config != NULL && member (config,
      "add_bos_token") != NULL;
  gboolean have_add_eos = config != NULL && member (config,
      "add_eos_token") != NULL;

  if (!get_string (model, "unk_token", source, "model.", &unk, error) ||
      !get_object (root, "post_processor", source, "", &post, error))
    return FALSE;
  if (post != NULL)
    template_specials (post, &t_first, &t_last);
  bos = t_first;
  eos = t_last;
  if (config != NULL) {
    const gchar *c_bos, *c_eos, *c_unk;

    if (!config_token_name (config, "bos_token", source, &c_bos, error) ||
        !config_token_name (config, "eos_token", source, &c_eos, error) ||
        !config_token_name (config, "unk_token", source, &c_unk, error) ||
        !config_token_name (config, "pad_token", source, &pad, error) ||
        !get_bool (config, "add_bos_token", source, "", &v->add_bos, error) ||
        !get_bool (config, "add_eos_token", source, "", &v->add_eos, error))
      return FALSE;
    bos = c_bos ? c_bos : bos;
    eos = c_eos ? c_eos : eos;
    unk = c_unk ? c_unk : unk;
  }
  /* without names, the conventional ones when they are control tokens */
  if (bos == NULL)
    bos = conventional_name (v, bos_names);
  if (eos == NULL)
    eos = conventional_name (v, eos_names);
  if (!have_add_bos)
    v->add_bos = t_first != NULL;
  if (!have_add_eos)
    v->add_eos = t_last != NULL && t_last != t_first;
  return resolve_name (v, unk, &v->unk, "unk_token", source, error) &&
      resolve_name (v, bos, &v->bos, "bos_token", source, error) &&
      resolve_name (v, eos, &v->eos, "eos_token", source, error) &&
      resolve_name (v, pad, &v->pad, "pad_token", source, error);
}

static JsonParser *
parse_json (const gchar * data, gsize len, const gchar * source,
    GError ** error)
{
  JsonParser *parser = json_parser_new ();
  GError *err = NULL;

  if (!json_parser_load_from_data (parser, data, len, &err)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT, "%s: not valid JSON: %s",
        source, err->message);
    g_error_free (err);
    g_object_unref (parser);
    return NULL;
  }
  if (json_parser_get_root (parser) == NULL ||
      !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser))) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: the top level must be a JSON object", source);
    g_object_unref (parser);
    return NULL;
  }
  return parser;
}

static LlmVocab *
vocab_from_hf (JsonObject * root, JsonObject * config, const gchar * source,
    GError ** error)
{
  JsonObject *model = NULL;
  JsonArray *added = NULL;
  HfStyle st;
  gchar **pieces = NULL;
  guint n = 0;
  g_autofree guint *split = NULL;
  gboolean byte_fallback = FALSE, fuse_unk = FALSE, ignore_merges = FALSE;
  LlmVocab *v;

  if (!get_object (root, "model", source, "", &model, error))
    return NULL;
  if (model == NULL) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: no \"model\" object", source);
    return NULL;
  }
  if (!check_model (model, source, error) ||
      !get_bool (model, "byte_fallback", source, "model.", &byte_fallback,
          error) ||
      !get_bool (model, "fuse_unk", source, "model.", &fuse_unk, error) ||
      !get_bool (model, "ignore_merges", source, "model.", &ignore_merges,
          error) ||
      !get_array (root, "added_tokens", source, "", &added, error) ||
      !detect_style (root, source, &st, error) ||
      !read_pieces (model, added, source, &pieces, &n, error))
    return NULL;

  v = llm_vocab_alloc (st.kind, n);
  for (guint i = 0; i < n; i++)
    v->pieces[i] = pieces[i];
  g_free (pieces);              /* entries past n are NULL */
  if (st.kind == LLM_VOCAB_SPM) {
    llm_vocab_set_spm_prepend (v, st.prepend, st.prepend_unless_present);
  } else {
    v->add_space_prefix = st.add_prefix_space;
  }
  llm_vocab_set_options (v, fuse_unk, ignore_merges, st.use_regex,
      st.split_words);
  /* ids must be dense 0..n-1: name the first hole */
  for (guint i = 0; i < n; i++)
    if (v->pieces[i] == NULL) {
      g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
          "%s: token id %u has no piece (ids must be dense 0..%u)", source,
          i, n - 1);
      goto fail;
    }
  if (!read_types (v, added, byte_fallback, source, error) ||
      !read_merges (v, model, source, &split, error) ||
      !llm_vocab_build_piece_table (v, source, error) ||
      !read_specials (v, root, model, config, source, error))
    goto fail;
  if (!llm_vocab_finish (v, source, split, error))
    goto fail;
  return v;

fail:
  llm_vocab_free (v);
  return NULL;
}

LlmVocab *
llm_vocab_new_from_hf_json_data (const gchar * data, gsize len, GError ** error)
{
  g_autoptr (JsonParser) parser = NULL;

  g_return_val_if_fail (data != NULL || len == 0, NULL);
  parser = parse_json (data ? data : "", len, "tokenizer.json", error);
  if (parser == NULL)
    return NULL;
  return vocab_from_hf (json_node_get_object (json_parser_get_root (parser)),
      NULL, "tokenizer.json", error);
}

static gboolean
read_file (const gchar * path, gchar ** data, gsize * len, GError ** error)
{
  GError *err = NULL;

  if (g_file_get_contents (path, data, len, &err))
    return TRUE;
  /* "path: what", as every other message; GLib's own names the path too */
  if (g_error_matches (err, G_FILE_ERROR, G_FILE_ERROR_NOENT))
    g_set_error (error, LLM_ERROR, LLM_ERROR_IO, "%s: no such file", path);
  else
    g_set_error (error, LLM_ERROR, LLM_ERROR_IO, "%s: cannot read: %s", path,
        err->message);
  g_error_free (err);
  return FALSE;
}

LlmVocab *
llm_vocab_new_from_hf_json (const gchar * tokenizer_json_path,
    const gchar * config_path, GError ** error)
{
  g_autofree gchar *data = NULL, *cdata = NULL;
  gsize len = 0, clen = 0;
  g_autoptr (JsonParser) parser = NULL;
  g_autoptr (JsonParser) cparser = NULL;
  JsonObject *config = NULL;

  g_return_val_if_fail (tokenizer_json_path != NULL, NULL);
  if (!read_file (tokenizer_json_path, &data, &len, error))
    return NULL;
  parser = parse_json (data, len, tokenizer_json_path, error);
  if (parser == NULL)
    return NULL;
  if (config_path != NULL) {
    if (!read_file (config_path, &cdata, &clen, error))
      return NULL;
    cparser = parse_json (cdata, clen, config_path, error);
    if (cparser == NULL)
      return NULL;
    config = json_node_get_object (json_parser_get_root (cparser));
  }
  return vocab_from_hf (json_node_get_object (json_parser_get_root (parser)),
      config, tokenizer_json_path, error);
}

static LlmVocab *
vocab_from_folder (const gchar * dir, GError ** error)
{
  g_autofree gchar *json = g_build_filename (dir, "tokenizer.json", NULL);
  g_autofree gchar *config = g_build_filename (dir, "tokenizer_config.json",
      NULL);

  if (!g_file_test (json, G_FILE_TEST_IS_REGULAR)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_IO,
        "%s: no tokenizer.json in this folder", dir);
    return NULL;
  }
  return llm_vocab_new_from_hf_json (json,
      g_file_test (config, G_FILE_TEST_IS_REGULAR) ? config : NULL, error);
}

LlmVocab *
llm_vocab_new_from_path (const gchar * path, GError ** error)
{
  g_autoptr (LlmGguf) gguf = NULL;

  g_return_val_if_fail (path != NULL, NULL);
  if (g_file_test (path, G_FILE_TEST_IS_DIR))
    return vocab_from_folder (path, error);
  if (!g_file_test (path, G_FILE_TEST_EXISTS)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_IO,
        "%s: no such file or folder", path);
    return NULL;
  }
  if (g_str_has_suffix (path, ".json")) {
    g_autofree gchar *dir = g_path_get_dirname (path);
    g_autofree gchar *config = g_build_filename (dir,
        "tokenizer_config.json", NULL);

    return llm_vocab_new_from_hf_json (path,
        g_file_test (config, G_FILE_TEST_IS_REGULAR) ? config : NULL, error);
  }
  gguf = llm_gguf_open (path, error);
  if (gguf == NULL)
    return NULL;
  return llm_vocab_new_from_gguf (gguf, error);
}
