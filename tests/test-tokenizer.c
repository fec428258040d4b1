/* LLMasOS - vocabularies and tokenizers against Hugging Face's results.
 * SPDX-License-Identifier: LGPL-2.1-or-later */

#include <string.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <gst/check/gstcheck.h>

#include "llm-vocab.h"
#include "llm-gguf.h"
#include "llm-error.h"
#include "test-common.h"

#define MODEL "stories260K"

/* ------------------------------------------------------------------------
 * Helpers
 * --------------------------------------------------------------------- */

static LlmVocab *
load_stories (void)
{
  g_autofree gchar *dir = llm_test_model_dir (MODEL);
  GError *err = NULL;
  LlmVocab *v = llm_vocab_new_from_path (dir, &err);

  g_assert_no_error (err);
  fail_unless (v != NULL);
  return v;
}

static JsonParser *
load_reference (const gchar * file)
{
  g_autofree gchar *rel = g_build_filename ("reference", file, NULL);
  g_autofree gchar *path = llm_test_model_file (MODEL, rel);
  JsonParser *parser = json_parser_new ();
  GError *err = NULL;

  json_parser_load_from_file (parser, path, &err);
  g_assert_no_error (err);
  return parser;
}

static JsonArray *
reference_cases (JsonParser * parser)
{
  JsonObject *root = json_node_get_object (json_parser_get_root (parser));

  return json_object_get_array_member (root, "cases");
}

static GArray *
json_ids (JsonArray * arr)
{
  GArray *ids = g_array_new (FALSE, FALSE, sizeof (gint32));

  for (guint i = 0; i < json_array_get_length (arr); i++) {
    gint32 id = json_array_get_int_element (arr, i);
    g_array_append_val (ids, id);
  }
  return ids;
}

static gchar *
ids_str (const GArray * ids)
{
  GString *s = g_string_new ("[");

  for (guint i = 0; ids != NULL && i < ids->len; i++)
    g_string_append_printf (s, "%s%d", i ? " " : "",
        g_array_index (ids, gint32, i));
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

static gboolean
ids_equal (const GArray * a, const GArray * b)
{
  /* An empty GArray may have no data at all: no memcmp on NULL. */
  return a->len == b->len && (a->len == 0 || memcmp (a->data, b->data,
          a->len * sizeof (gint32)) == 0);
}

static GArray *
encode_ok (const LlmVocab * v, const gchar * text, gssize len,
    LlmEncodeFlags flags)
{
  GError *err = NULL;
  GArray *ids = llm_vocab_encode_full (v, text, len, flags, &err);

  g_assert_no_error (err);
  fail_unless (ids != NULL);
  return ids;
}

/* Encodes @text and compares with @want (comma-free list of ids). */
static void
check_encoding (const LlmVocab * v, const gchar * text, gssize len,
    LlmEncodeFlags flags, const gint32 * want, guint n_want)
{
  g_autoptr (GArray) ids = encode_ok (v, text, len, flags);
  g_autoptr (GArray) expect = g_array_new (FALSE, FALSE, sizeof (gint32));
  g_autofree gchar *got_s = ids_str (ids);
  g_autofree gchar *want_s = NULL;

  g_array_append_vals (expect, want, n_want);
  want_s = ids_str (expect);
  fail_unless (ids_equal (ids, expect), "'%s': got %s, want %s", text, got_s,
      want_s);
}

/* Every reference case of tokenize.json through @v. */
static void
check_reference_cases (const LlmVocab * v, const gchar * what)
{
  g_autoptr (JsonParser) parser = load_reference ("tokenize.json");
  JsonArray *cases = reference_cases (parser);
  guint n = json_array_get_length (cases), bad = 0;

  fail_unless (n == 300, "tokenize.json has %u cases", n);
  for (guint i = 0; i < n; i++) {
    JsonObject *c = json_array_get_object_element (cases, i);
    const gchar *text = json_object_get_string_member (c, "text");
    g_autoptr (GArray) want = json_ids (json_object_get_array_member (c,
            "ids"));
    g_autoptr (GArray) got = encode_ok (v, text, -1, LLM_ENCODE_PARSE_SPECIAL);

    if (!ids_equal (got, want)) {
      g_autofree gchar *g = ids_str (got), *w = ids_str (want);
      if (bad++ < 5)
        g_printerr ("%s: case %u '%s': got %s, want %s\n", what, i, text, g, w);
    }
  }
  fail_unless (bad == 0, "%s: %u of %u reference cases differ", what, bad, n);
}

static void
expect_error (LlmVocab * v, GError * err, gint code, const gchar * part)
{
  fail_unless (v == NULL, "expected an error containing '%s'", part);
  fail_unless (err != NULL);
  fail_unless (err->domain == LLM_ERROR && err->code == code,
      "error '%s' has code %d, want %d", err->message, err->code, code);
  fail_unless (strstr (err->message, part) != NULL,
      "error '%s' does not say '%s'", err->message, part);
}

static void
expect_json_error (const gchar * json, gint code, const gchar * part)
{
  GError *err = NULL;
  LlmVocab *v = llm_vocab_new_from_hf_json_data (json, strlen (json), &err);

  expect_error (v, err, code, part);
  g_clear_error (&err);
}

/* A GGUF holding @v's tokenizer.ggml.* keys; merges only if asked. */
static gchar *
write_vocab_gguf (const LlmVocab * v, const gchar * dir, const gchar * name,
    gboolean with_merges)
{
  g_autoptr (LlmGgufWriter) w = llm_gguf_writer_new ();
  gchar *path = g_build_filename (dir, name, NULL);
  GError *err = NULL;

  llm_gguf_writer_add_string (w, "general.architecture", "llama");
  llm_gguf_writer_add_string (w, "tokenizer.ggml.model",
      v->kind == LLM_VOCAB_SPM ? "llama" : "gpt2");
  llm_gguf_writer_add_string_array (w, "tokenizer.ggml.tokens",
      (const gchar * const *) v->pieces, v->n_tokens);
  llm_gguf_writer_add_float32_array (w, "tokenizer.ggml.scores", v->scores,
      v->n_tokens);
  llm_gguf_writer_add_int32_array (w, "tokenizer.ggml.token_type", v->types,
      v->n_tokens);
  if (with_merges)
    llm_gguf_writer_add_string_array (w, "tokenizer.ggml.merges",
        (const gchar * const *) v->merges, v->n_merges);
  if (v->bos >= 0)
    llm_gguf_writer_add_uint32 (w, "tokenizer.ggml.bos_token_id", v->bos);
  if (v->eos >= 0)
    llm_gguf_writer_add_uint32 (w, "tokenizer.ggml.eos_token_id", v->eos);
  if (v->unk >= 0)
    llm_gguf_writer_add_uint32 (w, "tokenizer.ggml.unknown_token_id", v->unk);
  if (v->pad >= 0)
    llm_gguf_writer_add_uint32 (w, "tokenizer.ggml.padding_token_id", v->pad);
  llm_gguf_writer_add_bool (w, "tokenizer.ggml.add_bos_token", v->add_bos);
  llm_gguf_writer_add_bool (w, "tokenizer.ggml.add_eos_token", v->add_eos);
  llm_gguf_writer_add_bool (w, "tokenizer.ggml.add_space_prefix",
      v->add_space_prefix);
  llm_gguf_writer_write (w, path, &err);
  g_assert_no_error (err);
  return path;
}

static LlmVocab *
load_gguf_vocab (const gchar * path)
{
  GError *err = NULL;
  g_autoptr (LlmGguf) gguf = llm_gguf_open (path, &err);
  LlmVocab *v;

  g_assert_no_error (err);
  v = llm_vocab_new_from_gguf (gguf, &err);
  g_assert_no_error (err);
  return v;
}

static void
remove_tmpdir (const gchar * dir)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  const gchar *name;

  while (d != NULL && (name = g_dir_read_name (d)) != NULL) {
    g_autofree gchar *p = g_build_filename (dir, name, NULL);
    g_unlink (p);
  }
  if (d != NULL)
    g_dir_close (d);
  g_rmdir (dir);
}

/* Random text: ASCII words and punctuation, spaces of all kinds, digits,
 * Latin, CJK, emoji (byte fallback in small vocabularies). */
static gchar *
random_text (GRand * rand, guint n_chars)
{
  static const gunichar extra[] = { 0xe9, 0xfc, 0xf8, 0x4e2d, 0x6587, 0x1f600,
    0x1f680, 0x3b1, 0x416, 0x200b, 0x3000, 0xa0, 0x2028, 0x85, 0x0b, '\'',
    '\t', '\n', '\r', ' ', ' ', ' ', '!', '.', ',', '?', '-', '"', '1', '7',
    0x663, 0xbd, 0x2163
  };
  static const gchar *const words[] = { "the", "Once", "upon", "a", "time",
    "Lily", "park", "'s", "'ll", "'re", "'t", "don", "happy", "  ", "\n\n"
  };
  GString *s = g_string_new (NULL);

  for (guint i = 0; i < n_chars; i++) {
    guint k = g_rand_int_range (rand, 0, 10);

    if (k < 3)
      g_string_append (s, words[g_rand_int_range (rand, 0,
                  G_N_ELEMENTS (words))]);
    else if (k < 6)
      g_string_append_c (s, g_rand_int_range (rand, 0x20, 0x7f));
    else
      g_string_append_unichar (s, extra[g_rand_int_range (rand, 0,
                  G_N_ELEMENTS (extra))]);
  }
  return g_string_free (s, FALSE);
}

/* ------------------------------------------------------------------------
 * stories260K: tokenizer.json against transformers' ids
 * --------------------------------------------------------------------- */

GST_START_TEST (test_reference_ids)
{
  g_autoptr (LlmVocab) v = load_stories ();

  fail_unless_equals_int (v->kind, LLM_VOCAB_SPM);
  fail_unless_equals_int (v->n_tokens, 512);
  fail_unless_equals_int (v->bos, 1);
  fail_unless_equals_int (v->eos, 2);
  fail_unless_equals_int (v->unk, 0);
  fail_unless_equals_int (v->pad, -1);
  fail_unless (v->add_bos && !v->add_eos && v->add_space_prefix);
  fail_unless_equals_int (v->n_merges, 165);
  fail_unless_equals_int (v->types[0], LLM_TOKEN_CONTROL);
  fail_unless_equals_int (v->types[3], LLM_TOKEN_BYTE);
  fail_unless_equals_int (v->types[259], LLM_TOKEN_NORMAL);
  check_reference_cases (v, "tokenizer.json");
}

GST_END_TEST;

GST_START_TEST (test_decode_roundtrip)
{
  g_autoptr (LlmVocab) v = load_stories ();
  g_autoptr (JsonParser) parser = load_reference ("tokenize.json");
  JsonArray *cases = reference_cases (parser);
  guint checked = 0;

  for (guint i = 0; i < json_array_get_length (cases); i++) {
    JsonObject *c = json_array_get_object_element (cases, i);
    const gchar *text = json_object_get_string_member (c, "text");
    g_autoptr (GArray) ids = NULL;
    g_autofree gchar *back = NULL;

    /* decoding drops the space SentencePiece puts in front, so a text
     * that starts with a space loses it */
    if (text[0] == ' ')
      continue;
    ids = encode_ok (v, text, -1, LLM_ENCODE_PARSE_SPECIAL);
    back = llm_vocab_decode (v, (gint32 *) ids->data, ids->len);
    fail_unless_equals_string (back, text);
    checked++;
  }
  fail_unless (checked >= 290, "only %u cases checked", checked);
}

GST_END_TEST;

GST_START_TEST (test_generate_prompts)
{
  g_autoptr (LlmVocab) v = load_stories ();
  g_autoptr (JsonParser) parser = load_reference ("generate.json");
  JsonArray *cases = reference_cases (parser);

  fail_unless (json_array_get_length (cases) > 0);
  for (guint i = 0; i < json_array_get_length (cases); i++) {
    JsonObject *c = json_array_get_object_element (cases, i);
    const gchar *prompt = json_object_get_string_member (c, "prompt");
    g_autoptr (GArray) want = json_ids (json_object_get_array_member (c,
            "prompt_ids"));
    g_autoptr (GArray) got = NULL;
    g_autofree gchar *g = NULL, *w = NULL, *back = NULL;
    GError *err = NULL;

    got = llm_vocab_encode (v, prompt, -1, TRUE, &err);
    g_assert_no_error (err);
    g = ids_str (got);
    w = ids_str (want);
    fail_unless (ids_equal (got, want), "'%s': got %s, want %s", prompt, g, w);
    back = llm_vocab_decode (v, (gint32 *) got->data, got->len);
    fail_unless_equals_string (back, json_object_get_string_member (c,
            "decode_roundtrip"));
  }
}

GST_END_TEST;

GST_START_TEST (test_known_encodings)
{
  g_autoptr (LlmVocab) v = load_stories ();
  const LlmEncodeFlags plain = LLM_ENCODE_PARSE_SPECIAL;
  static const gint32 once[] = { 403, 407, 261, 378 };
  static const gint32 zoo[] = { 410, 469, 347 };
  static const gint32 bos_zoo[] = { 1, 410, 469, 347 };
  static const gint32 nul[] = { 410, 3, 444, 3 };
  static const gint32 with_bos[] = { 261, 1, 268 };
  static const gint32 zhong[] = { 410, 3 + 0xe4, 3 + 0xb8, 3 + 0xad };
  static const gint32 one_space[] = { 410 };
  g_autoptr (GArray) literal = NULL;

  check_encoding (v, "Once upon a time", -1, plain, once, 4);
  check_encoding (v, "Zoo", -1, plain, zoo, 3);
  check_encoding (v, "Zoo", -1, plain | LLM_ENCODE_ADD_SPECIAL, bos_zoo, 4);
  check_encoding (v, "", -1, plain, NULL, 0);
  check_encoding (v, "", 0, plain | LLM_ENCODE_ADD_SPECIAL, bos_zoo, 1);
  /* NUL is a character like any other: U+0000 by byte fallback */
  check_encoding (v, "\0x\0", 3, plain, nul, 4);
  check_encoding (v, "\xe4\xb8\xad", -1, plain, zhong, 4);
  check_encoding (v, " ", -1, plain, one_space, 1);
  /* added tokens in the text, each side normalized on its own */
  check_encoding (v, "a<s>b", -1, plain, with_bos, 3);
  literal = encode_ok (v, "a<s>b", -1, 0);
  for (guint i = 0; i < literal->len; i++)
    fail_if (g_array_index (literal, gint32, i) == 1);
  fail_unless (llm_vocab_find (v, "<s>") == 1);
  fail_unless (llm_vocab_find (v, "no such piece") == -1);
}

GST_END_TEST;

GST_START_TEST (test_token_bytes)
{
  g_autoptr (LlmVocab) v = load_stories ();
  guint8 buf[16];
  gint32 ids[] = { 1, 403, 3 + 0xe4, 3 + 0xb8, 3 + 0xad, 2 };
  gint32 bad[] = { 3 + 0xe4, 3 + 0xb8, 261 };
  g_autofree gchar *text = NULL, *text2 = NULL;

  fail_unless_equals_int (llm_vocab_token_bytes (v, 403, buf, sizeof buf), 5);
  fail_unless (memcmp (buf, " Once", 5) == 0);
  fail_unless_equals_int (llm_vocab_token_bytes (v, 3 + 0xe4, buf, 1), 1);
  fail_unless_equals_int (buf[0], 0xe4);
  fail_unless_equals_int (llm_vocab_token_bytes (v, 1, buf, sizeof buf), 0);
  fail_unless_equals_int (llm_vocab_token_bytes (v, 0, buf, sizeof buf), 0);
  fail_unless_equals_int (llm_vocab_token_bytes (v, -1, buf, sizeof buf), 0);
  fail_unless_equals_int (llm_vocab_token_bytes (v, 512, buf, sizeof buf), 0);
  /* the full length even when the buffer is short */
  fail_unless_equals_int (llm_vocab_token_bytes (v, 403, NULL, 0), 5);
  fail_unless (llm_vocab_is_control (v, 1) && llm_vocab_is_control (v, 2));
  fail_if (llm_vocab_is_control (v, 403) || llm_vocab_is_control (v, 9999));

  text = llm_vocab_decode (v, ids, G_N_ELEMENTS (ids));
  fail_unless_equals_string (text, "Once\xe4\xb8\xad");
  /* bytes that are not UTF-8: one U+FFFD per byte token, as HF does */
  text2 = llm_vocab_decode (v, bad, G_N_ELEMENTS (bad));
  fail_unless_equals_string (text2, "\xef\xbf\xbd\xef\xbf\xbd a");
}

GST_END_TEST;

GST_START_TEST (test_invalid_utf8)
{
  g_autoptr (LlmVocab) v = load_stories ();
  static const struct
  {
    const gchar *text;
    gssize len;
    const gchar *msg;
  } cases[] = {
    {"a\xff" "b", -1, "invalid UTF-8 at byte 1"},
    {"abc\xe4\xb8", -1, "invalid UTF-8 at byte 3"},
    {"\xc0\x80", -1, "invalid UTF-8 at byte 0"},        /* overlong NUL */
    {"ok \xed\xa0\x80", -1, "invalid UTF-8 at byte 3"}, /* surrogate */
    {"x\xf4\x90\x80\x80", -1, "invalid UTF-8 at byte 1"},       /* > U+10FFFF */
    {"\0\0\x80", 3, "invalid UTF-8 at byte 2"},
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    GError *err = NULL;
    GArray *ids = llm_vocab_encode (v, cases[i].text, cases[i].len, FALSE,
        &err);

    fail_unless (ids == NULL);
    fail_unless (g_error_matches (err, LLM_ERROR, LLM_ERROR_INPUT));
    fail_unless_equals_string (err->message, cases[i].msg);
    g_clear_error (&err);
  }
}

GST_END_TEST;

/* ------------------------------------------------------------------------
 * The same vocabulary through GGUF
 * --------------------------------------------------------------------- */

GST_START_TEST (test_gguf_same_ids)
{
  g_autoptr (LlmVocab) hf = load_stories ();
  g_autofree gchar *dir = llm_test_tmpdir ();
  g_autofree gchar *with = write_vocab_gguf (hf, dir, "with-merges.gguf",
      TRUE);
  g_autofree gchar *without = write_vocab_gguf (hf, dir, "scores.gguf",
      FALSE);
  g_autoptr (LlmVocab) ranked = load_gguf_vocab (with);
  g_autoptr (LlmVocab) scored = load_gguf_vocab (without);
  g_autoptr (LlmVocab) by_path = NULL;
  GError *err = NULL;

  fail_unless_equals_int (ranked->n_tokens, 512);
  fail_unless_equals_int (ranked->n_merges, 165);
  fail_unless_equals_int (scored->n_merges, 0);
  fail_unless (ranked->bos == 1 && ranked->eos == 2 && ranked->unk == 0);
  fail_unless (ranked->add_bos && ranked->add_space_prefix);
  /* merge ranks from the GGUF merges; piece scores (-rank) without them,
   * as llama.cpp's SentencePiece tokenizer does: the same ids */
  check_reference_cases (ranked, "GGUF with merges");
  check_reference_cases (scored, "GGUF with scores only");

  fail_unless_equals_string (ranked->fingerprint, hf->fingerprint);
  by_path = llm_vocab_new_from_path (with, &err);
  g_assert_no_error (err);
  fail_unless_equals_string (by_path->fingerprint, hf->fingerprint);
  remove_tmpdir (dir);
}

GST_END_TEST;

/* Rank order and score order agree on long random texts too. */
GST_START_TEST (test_scores_match_ranks)
{
  g_autoptr (LlmVocab) hf = load_stories ();
  g_autofree gchar *dir = llm_test_tmpdir ();
  g_autofree gchar *path = write_vocab_gguf (hf, dir, "s.gguf", FALSE);
  g_autoptr (LlmVocab) scored = load_gguf_vocab (path);
  GRand *rand = g_rand_new_with_seed (260);

  for (guint i = 0; i < 200; i++) {
    g_autofree gchar *text = random_text (rand, 1 + i % 60);
    g_autoptr (GArray) a = encode_ok (hf, text, -1, 0);
    g_autoptr (GArray) b = encode_ok (scored, text, -1, 0);
    g_autofree gchar *as = ids_str (a), *bs = ids_str (b);

    fail_unless (ids_equal (a, b), "'%s': ranks %s, scores %s", text, as, bs);
  }
  g_rand_free (rand);
  remove_tmpdir (dir);
}

GST_END_TEST;

GST_START_TEST (test_long_input)
{
  g_autoptr (LlmVocab) v = load_stories ();
  GRand *rand = g_rand_new_with_seed (7);
  g_autofree gchar *text = random_text (rand, 200000);
  g_autoptr (GArray) ids = NULL;
  g_autofree gchar *back = NULL;
  gint64 t0 = g_get_monotonic_time ();

  ids = encode_ok (v, text, -1, 0);
  /* O(n log n): 200k characters take milliseconds, not minutes */
  fail_unless (g_get_monotonic_time () - t0 < 20 * G_USEC_PER_SEC);
  back = llm_vocab_decode (v, (gint32 *) ids->data, ids->len);
  fail_unless (strcmp (back, text + (text[0] == ' ')) == 0);
  g_rand_free (rand);
}

GST_END_TEST;

/* ------------------------------------------------------------------------
 * Fingerprints and malformed input
 * --------------------------------------------------------------------- */

static gchar *
stories_json (void)
{
  g_autofree gchar *path = llm_test_model_file (MODEL, "tokenizer.json");
  gchar *data = NULL;
  GError *err = NULL;

  g_file_get_contents (path, &data, NULL, &err);
  g_assert_no_error (err);
  return data;
}

GST_START_TEST (test_fingerprint)
{
  g_autoptr (LlmVocab) v = load_stories ();
  g_autofree gchar *json = stories_json ();
  g_autoptr (LlmVocab) same = NULL, other = NULL, other2 = NULL;
  g_autoptr (GString) changed = g_string_new (json);
  g_autoptr (GString) changed2 = g_string_new (json);
  GError *err = NULL;

  fail_unless (g_str_has_prefix (v->fingerprint, "spm512-"));
  fail_unless_equals_int (strlen (v->fingerprint), strlen ("spm512-") + 8);
  /* the same file without tokenizer_config.json: same pieces, ids */
  same = llm_vocab_new_from_hf_json_data (json, strlen (json), &err);
  g_assert_no_error (err);
  fail_unless_equals_string (same->fingerprint, v->fingerprint);
  fail_unless (same->add_bos && same->bos == 1 && same->eos == 2);

  /* one piece spelled differently ("Q" is in no merge) */
  fail_unless (g_string_replace (changed, "\"Q\": ", "\"q2\": ", 1) == 1);
  other = llm_vocab_new_from_hf_json_data (changed->str, changed->len, &err);
  g_assert_no_error (err);
  fail_unless (g_str_has_prefix (other->fingerprint, "spm512-"));
  fail_if (strcmp (other->fingerprint, v->fingerprint) == 0);
  /* one token type: </s> no longer special */
  {
    gchar *at = strstr (changed2->str, "\"content\": \"</s>\"");
    gchar *sp = at ? strstr (at, "\"special\": true") : NULL;

    fail_unless (sp != NULL);
    memcpy (sp + strlen ("\"special\": "), "null", 4);
  }
  other2 = llm_vocab_new_from_hf_json_data (changed2->str, changed2->len, &err);
  g_assert_no_error (err);
  fail_unless_equals_int (other2->types[2], LLM_TOKEN_USER_DEFINED);
  fail_if (strcmp (other2->fingerprint, v->fingerprint) == 0);
}

GST_END_TEST;

#define NORM "\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [" \
  "{\"type\": \"Prepend\", \"prepend\": \"\xe2\x96\x81\"}, {\"type\": " \
  "\"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": " \
  "\"\xe2\x96\x81\"}]}"

static void
expect_model_error (const gchar * model, const gchar * extra, gint code,
    const gchar * part)
{
  g_autofree gchar *json = g_strdup_printf ("{" NORM ", %s \"model\": %s}",
      extra, model);

  expect_json_error (json, code, part);
}

GST_START_TEST (test_malformed_json)
{
  GError *err = NULL;
  LlmVocab *v;
  g_autofree gchar *ok = g_strdup_printf ("{" NORM ", \"model\": {\"type\": "
      "\"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": "
      "[[\"a\", \"b\"]]}}");

  /* the base case loads */
  v = llm_vocab_new_from_hf_json_data (ok, strlen (ok), &err);
  g_assert_no_error (err);
  fail_unless_equals_int (v->n_tokens, 3);
  llm_vocab_free (v);

  expect_json_error ("this is not json", LLM_ERROR_FORMAT, "not valid JSON");
  expect_json_error ("", LLM_ERROR_FORMAT, "top level");
  expect_json_error ("[1, 2]", LLM_ERROR_FORMAT, "top level");
  expect_json_error ("{}", LLM_ERROR_FORMAT, "no \"model\"");
  expect_model_error ("5", "", LLM_ERROR_FORMAT, "model must be an object");
  expect_model_error ("{\"type\": \"Unigram\", \"vocab\": []}", "",
      LLM_ERROR_UNSUPPORTED, "model type 'Unigram'");
  expect_model_error ("{\"type\": 3, \"vocab\": {}}", "", LLM_ERROR_FORMAT,
      "model.type must be a string");
  expect_model_error ("{\"type\": \"BPE\", \"vocab\": [\"a\"]}", "",
      LLM_ERROR_FORMAT, "model.vocab must be an object");
  expect_model_error ("{\"type\": \"BPE\"}", "", LLM_ERROR_FORMAT,
      "model.vocab must be an object");
  expect_model_error ("{\"type\": \"BPE\", \"vocab\": {\"a\": \"x\"}}", "",
      LLM_ERROR_FORMAT, "model.vocab['a'] must be an integer id");
  expect_model_error ("{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 7}}",
      "", LLM_ERROR_FORMAT, "token 'b' has id 7 out of range");
  expect_model_error ("{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": -1}}",
      "", LLM_ERROR_FORMAT, "token 'b' has id -1 out of range");
  expect_model_error ("{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}}",
      "", LLM_ERROR_FORMAT, "id 0 is given to both '");
  expect_model_error ("{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}}",
      "\"added_tokens\": [{\"id\": 2, \"content\": \"a\"}],", LLM_ERROR_FORMAT,
      "duplicate piece 'a' (ids 0 and 2)");
  expect_model_error ("{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 2}}",
      "\"added_tokens\": [{\"id\": 0, \"content\": \"a\"}],", LLM_ERROR_FORMAT,
      "token id 1 has no piece");
  expect_model_error ("{\"type\": \"BPE\", \"vocab\": {\"a\": 0}}",
      "\"added_tokens\": {},", LLM_ERROR_FORMAT,
      "added_tokens must be an array");
  expect_model_error ("{\"type\": \"BPE\", \"vocab\": {\"a\": 0}}",
      "\"added_tokens\": [{\"id\": \"0\", \"content\": \"a\"}],",
      LLM_ERROR_FORMAT, "added_tokens[0] must be an object");
  expect_model_error ("{\"type\": \"BPE\", \"vocab\": {\"a\": 0}, "
      "\"merges\": 3}", "", LLM_ERROR_FORMAT, "model.merges must be an array");
  expect_model_error ("{\"type\": \"BPE\", \"vocab\": {\"a\": 0}, "
      "\"merges\": [[\"a\"]]}", "", LLM_ERROR_FORMAT,
      "model.merges[0] must be");
  expect_model_error ("{\"type\": \"BPE\", \"vocab\": {\"a\": 0}, "
      "\"merges\": [\"a  a\"]}", "", LLM_ERROR_FORMAT,
      "model.merges[0] must be");
  expect_model_error ("{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, "
      "\"merges\": [\"a b\"]}", "", LLM_ERROR_FORMAT,
      "merge 0 'a b' has a piece, or a result, that is not in the vocabulary");
  expect_model_error ("{\"type\": \"BPE\", \"vocab\": {\"a\": 0}, "
      "\"byte_fallback\": 1}", "", LLM_ERROR_FORMAT,
      "model.byte_fallback must be true or false");
  expect_model_error ("{\"type\": \"BPE\", \"vocab\": {\"a\": 0}, "
      "\"continuing_subword_prefix\": \"##\"}", "", LLM_ERROR_UNSUPPORTED,
      "continuing_subword_prefix");
  expect_model_error ("{\"type\": \"BPE\", \"vocab\": {\"a\": 0}, "
      "\"unk_token\": \"<unk>\"}", "", LLM_ERROR_FORMAT,
      "unk_token '<unk>' is not in the vocabulary");

  expect_json_error ("{\"normalizer\": {\"type\": \"NFKC\"}, \"model\": "
      "{\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}", LLM_ERROR_UNSUPPORTED,
      "normalizer 'NFKC' is not supported");
  expect_json_error ("{\"pre_tokenizer\": {\"type\": \"Whitespace\"}, "
      "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}",
      LLM_ERROR_UNSUPPORTED, "pre_tokenizer 'Whitespace' is not supported");
  expect_json_error ("{\"pre_tokenizer\": {\"type\": \"Sequence\", "
      "\"pretokenizers\": [{\"type\": \"Split\"}, {\"type\": \"ByteLevel\"}]},"
      " \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}",
      LLM_ERROR_UNSUPPORTED, "pre_tokenizer 'Split' is not supported");
  expect_json_error ("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}",
      LLM_ERROR_UNSUPPORTED, "neither a SentencePiece-style normalizer");
  expect_json_error ("{\"normalizer\": 7, \"model\": {\"type\": \"BPE\", "
      "\"vocab\": {\"a\": 0}}}", LLM_ERROR_FORMAT,
      "normalizer must be an object");
}

GST_END_TEST;

GST_START_TEST (test_malformed_files)
{
  g_autofree gchar *dir = llm_test_tmpdir ();
  g_autofree gchar *json = g_build_filename (dir, "tokenizer.json", NULL);
  g_autofree gchar *config = g_build_filename (dir, "tokenizer_config.json",
      NULL);
  g_autofree gchar *missing = g_build_filename (dir, "nothing-here", NULL);
  g_autofree gchar *data = stories_json ();
  GError *err = NULL;
  LlmVocab *v;

  v = llm_vocab_new_from_path (missing, &err);
  expect_error (v, err, LLM_ERROR_IO, "no such file or folder");
  g_clear_error (&err);
  v = llm_vocab_new_from_path (dir, &err);
  expect_error (v, err, LLM_ERROR_IO, "no tokenizer.json in this folder");
  g_clear_error (&err);

  g_file_set_contents (json, data, -1, NULL);
  g_file_set_contents (config, "{\"bos_token\": \"<begin>\"}", -1, NULL);
  v = llm_vocab_new_from_path (dir, &err);
  expect_error (v, err, LLM_ERROR_FORMAT,
      "bos_token '<begin>' is not in the vocabulary");
  g_clear_error (&err);

  g_file_set_contents (config, "{\"add_bos_token\": false, \"eos_token\": "
      "{\"content\": \"</s>\"}, \"pad_token\": \"<unk>\"}", -1, NULL);
  v = llm_vocab_new_from_path (dir, &err);
  g_assert_no_error (err);
  fail_unless (!v->add_bos && v->eos == 2 && v->pad == 0 && v->bos == 1);
  llm_vocab_free (v);

  g_file_set_contents (config, "{\"add_bos_token\": \"yes\"}", -1, NULL);
  v = llm_vocab_new_from_path (dir, &err);
  expect_error (v, err, LLM_ERROR_FORMAT, "add_bos_token must be true or "
      "false");
  g_clear_error (&err);

  g_file_set_contents (config, "{", -1, NULL);
  v = llm_vocab_new_from_path (json, &err);
  expect_error (v, err, LLM_ERROR_FORMAT, "not valid JSON");
  g_clear_error (&err);
  remove_tmpdir (dir);
}

GST_END_TEST;

/* A GGUF vocabulary with one key changed by @edit. */
typedef void (*GgufEdit) (LlmGgufWriter * w, guint n);

static void
expect_gguf_error (const gchar * dir, GgufEdit edit, const gchar * model,
    gint code, const gchar * part)
{
  static const gchar *const tokens[] = { "<unk>", "<s>", "a", "b", "ab" };
  g_autoptr (LlmGgufWriter) w = llm_gguf_writer_new ();
  g_autofree gchar *path = g_build_filename (dir, "bad.gguf", NULL);
  g_autoptr (LlmGguf) gguf = NULL;
  GError *err = NULL;
  LlmVocab *v;

  if (model != NULL)
    llm_gguf_writer_add_string (w, "tokenizer.ggml.model", model);
  if (edit != NULL)
    edit (w, G_N_ELEMENTS (tokens));
  else
    llm_gguf_writer_add_string_array (w, "tokenizer.ggml.tokens", tokens,
        G_N_ELEMENTS (tokens));
  llm_gguf_writer_write (w, path, &err);
  g_assert_no_error (err);
  gguf = llm_gguf_open (path, &err);
  g_assert_no_error (err);
  v = llm_vocab_new_from_gguf (gguf, &err);
  if (part == NULL) {
    g_assert_no_error (err);
    fail_unless_equals_int (v->n_tokens, 5);
    llm_vocab_free (v);
    return;
  }
  expect_error (v, err, code, part);
  g_clear_error (&err);
}

static void
edit_scores_short (LlmGgufWriter * w, guint n)
{
  static const gchar *const tokens[] = { "<unk>", "<s>", "a", "b", "ab" };
  static const float scores[] = { 0, 0, 0 };

  llm_gguf_writer_add_string_array (w, "tokenizer.ggml.tokens", tokens, n);
  llm_gguf_writer_add_float32_array (w, "tokenizer.ggml.scores", scores, 3);
}

static void
edit_bos_range (LlmGgufWriter * w, guint n)
{
  static const gchar *const tokens[] = { "<unk>", "<s>", "a", "b", "ab" };

  llm_gguf_writer_add_string_array (w, "tokenizer.ggml.tokens", tokens, n);
  llm_gguf_writer_add_uint32 (w, "tokenizer.ggml.bos_token_id", 5);
}

static void
edit_duplicate (LlmGgufWriter * w, guint n)
{
  static const gchar *const tokens[] = { "<unk>", "<s>", "a", "b", "a" };

  llm_gguf_writer_add_string_array (w, "tokenizer.ggml.tokens", tokens, n);
}

static void
edit_types (LlmGgufWriter * w, guint n)
{
  static const gchar *const tokens[] = { "<unk>", "<s>", "a", "b", "ab" };
  static const gint32 types[] = { 2, 3, 1, 1, 9 };

  llm_gguf_writer_add_string_array (w, "tokenizer.ggml.tokens", tokens, n);
  llm_gguf_writer_add_int32_array (w, "tokenizer.ggml.token_type", types, n);
}

static void
edit_tokens_type (LlmGgufWriter * w, guint n)
{
  llm_gguf_writer_add_string (w, "tokenizer.ggml.tokens", "a");
}

static void
edit_merge (LlmGgufWriter * w, guint n)
{
  static const gchar *const tokens[] = { "<unk>", "<s>", "a", "b", "ab" };
  static const gchar *const merges[] = { "a b", "b a" };

  llm_gguf_writer_add_string_array (w, "tokenizer.ggml.tokens", tokens, n);
  llm_gguf_writer_add_string_array (w, "tokenizer.ggml.merges", merges, 2);
}

GST_START_TEST (test_malformed_gguf)
{
  g_autofree gchar *dir = llm_test_tmpdir ();

  expect_gguf_error (dir, NULL, "llama", 0, NULL);
  expect_gguf_error (dir, NULL, NULL, LLM_ERROR_FORMAT,
      "no tokenizer.ggml.model");
  expect_gguf_error (dir, NULL, "bert", LLM_ERROR_UNSUPPORTED,
      "tokenizer model 'bert' is not supported");
  expect_gguf_error (dir, NULL, "gpt2", LLM_ERROR_FORMAT,
      "needs tokenizer.ggml.merges");
  expect_gguf_error (dir, edit_scores_short, "llama", LLM_ERROR_FORMAT,
      "tokenizer.ggml.scores has 3 entries but there are 5 tokens");
  expect_gguf_error (dir, edit_bos_range, "llama", LLM_ERROR_FORMAT,
      "tokenizer.ggml.bos_token_id 5 out of range");
  expect_gguf_error (dir, edit_duplicate, "llama", LLM_ERROR_FORMAT,
      "duplicate piece 'a' (ids 2 and 4)");
  expect_gguf_error (dir, edit_types, "llama", LLM_ERROR_FORMAT,
      "tokenizer.ggml.token_type[4] is not a token type");
  expect_gguf_error (dir, edit_tokens_type, "llama", LLM_ERROR_FORMAT,
      "tokenizer.ggml.tokens is not an array");
  expect_gguf_error (dir, edit_merge, "llama", LLM_ERROR_FORMAT,
      "merge 1 'b a'");
  remove_tmpdir (dir);
}

GST_END_TEST;

/* ------------------------------------------------------------------------
 * GPT-2 byte-level BPE on a small vocabulary built here
 * --------------------------------------------------------------------- */

/* The test's own bytes_to_unicode(), written as in GPT-2's encoder.py:
 * printable bytes keep their code point, the others take 256, 257, ...
 * in byte order. */
static gunichar
test_byte_char (guint b)
{
  guint n = 0;

  for (guint c = 0; c < 256; c++) {
    gboolean printable = (c >= '!' && c <= '~') || (c >= 0xa1 && c <= 0xac)
        || (c >= 0xae && c <= 0xff);

    if (c == b)
      return printable ? c : 256 + n;
    if (!printable)
      n++;
  }
  g_assert_not_reached ();
}

/* ids 0..255: the byte with that value; then the merged pieces. */
static const gchar *const gpt2_merges[][2] = {
  {"\xc4\xa0", "t"},            /* Ġ t */
  {"h", "e"},
  {"\xc4\xa0t", "he"},
  {"i", "n"},
  {"\xc4\xa0", "a"},
  {"e", "r"},
  {"\xc4\xa0", "\xc4\xa0"},
  {"l", "l"},
};

#define GPT2_EOT 264

static gchar *
gpt2_json (void)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  guint id = 0;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "added_tokens");
  json_builder_begin_array (b);
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "id");
  json_builder_add_int_value (b, GPT2_EOT);
  json_builder_set_member_name (b, "content");
  json_builder_add_string_value (b, "<|endoftext|>");
  json_builder_set_member_name (b, "special");
  json_builder_add_boolean_value (b, TRUE);
  for (guint i = 0; i < 4; i++) {
    static const gchar *const flags[] = { "single_word", "lstrip", "rstrip",
      "normalized"
    };
    json_builder_set_member_name (b, flags[i]);
    json_builder_add_boolean_value (b, FALSE);
  }
  json_builder_end_object (b);
  json_builder_end_array (b);
  json_builder_set_member_name (b, "normalizer");
  json_builder_add_null_value (b);
  json_builder_set_member_name (b, "pre_tokenizer");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "type");
  json_builder_add_string_value (b, "ByteLevel");
  json_builder_set_member_name (b, "add_prefix_space");
  json_builder_add_boolean_value (b, FALSE);
  json_builder_set_member_name (b, "trim_offsets");
  json_builder_add_boolean_value (b, TRUE);
  json_builder_set_member_name (b, "use_regex");
  json_builder_add_boolean_value (b, TRUE);
  json_builder_end_object (b);
  json_builder_set_member_name (b, "decoder");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "type");
  json_builder_add_string_value (b, "ByteLevel");
  for (guint i = 0; i < 3; i++) {
    static const gchar *const flags[] = { "add_prefix_space", "trim_offsets",
      "use_regex"
    };
    json_builder_set_member_name (b, flags[i]);
    json_builder_add_boolean_value (b, TRUE);
  }
  json_builder_end_object (b);

  json_builder_set_member_name (b, "model");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "type");
  json_builder_add_string_value (b, "BPE");
  json_builder_set_member_name (b, "vocab");
  json_builder_begin_object (b);
  for (id = 0; id < 256; id++) {
    gchar s[8] = { 0 };

    g_unichar_to_utf8 (test_byte_char (id), s);
    json_builder_set_member_name (b, s);
    json_builder_add_int_value (b, id);
  }
  for (guint i = 0; i < G_N_ELEMENTS (gpt2_merges); i++, id++) {
    g_autofree gchar *s = g_strconcat (gpt2_merges[i][0], gpt2_merges[i][1],
        NULL);
    json_builder_set_member_name (b, s);
    json_builder_add_int_value (b, id);
  }
  json_builder_set_member_name (b, "<|endoftext|>");
  json_builder_add_int_value (b, GPT2_EOT);
  json_builder_end_object (b);
  json_builder_set_member_name (b, "merges");
  json_builder_begin_array (b);
  for (guint i = 0; i < G_N_ELEMENTS (gpt2_merges); i++) {
    json_builder_begin_array (b);
    json_builder_add_string_value (b, gpt2_merges[i][0]);
    json_builder_add_string_value (b, gpt2_merges[i][1]);
    json_builder_end_array (b);
  }
  json_builder_end_array (b);
  json_builder_end_object (b);
  json_builder_end_object (b);

  root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  return json_generator_to_data (gen, NULL);
}

static LlmVocab *
load_gpt2 (void)
{
  g_autofree gchar *json = gpt2_json ();
  GError *err = NULL;
  LlmVocab *v = llm_vocab_new_from_hf_json_data (json, strlen (json), &err);

  g_assert_no_error (err);
  fail_unless_equals_int (v->kind, LLM_VOCAB_GPT2);
  fail_unless_equals_int (v->n_tokens, 265);
  return v;
}

#define CHECK(v, text, flags, ...) G_STMT_START {                       \
    static const gint32 want_[] = { __VA_ARGS__ };                     \
    check_encoding (v, text, -1, flags, want_, G_N_ELEMENTS (want_));  \
  } G_STMT_END

GST_START_TEST (test_gpt2_by_hand)
{
  g_autoptr (LlmVocab) v = load_gpt2 ();
  const LlmEncodeFlags p = LLM_ENCODE_PARSE_SPECIAL;

  fail_unless (g_str_has_prefix (v->fingerprint, "gpt2265-"));
  fail_unless_equals_int (v->types[GPT2_EOT], LLM_TOKEN_CONTROL);
  /* no "t he" merge: "the" stays t + he; " the" merges all the way */
  CHECK (v, "the", p, 't', 257);
  CHECK (v, " the", p, 258);
  CHECK (v, "hello", p, 257, 263, 'o');
  /* "e r" (rank 5) is stale once "h e" took the e */
  CHECK (v, "in there", p, 259, 258, 'r', 'e');
  /* a run of spaces leaves its last one to the next word */
  CHECK (v, "  a", p, 32, 260);
  CHECK (v, "a   ", p, 'a', 262, 32);
  CHECK (v, "it's", p, 'i', 't', '\'', 's');
  CHECK (v, "don't!!", p, 'd', 'o', 'n', '\'', 't', '!', '!');
  CHECK (v, "3.14", p, '3', '.', '1', '4');
  CHECK (v, "\n\nhi", p, '\n', '\n', 'h', 'i');
  CHECK (v, "h\xc3\xa9llo", p, 'h', 0xc3, 0xa9, 263, 'o');
  CHECK (v, "<|endoftext|>hi", p, GPT2_EOT, 'h', 'i');
  CHECK (v, "<|endoftext|>hi", 0, '<', '|', 'e', 'n', 'd', 'o', 'f', 't',
      'e', 'x', 't', '|', '>', 'h', 'i');
  CHECK (v, "x", p | LLM_ENCODE_ADD_SPECIAL, 'x');
}

GST_END_TEST;

GST_START_TEST (test_gpt2_roundtrip)
{
  g_autoptr (LlmVocab) v = load_gpt2 ();
  GRand *rand = g_rand_new_with_seed (2);
  gint32 broken[] = { 0xe4, 0xb8, 'a' };
  g_autofree gchar *lossy = llm_vocab_decode (v, broken, 3);
  guint8 buf[4];

  fail_unless_equals_int (llm_vocab_token_bytes (v, 32, buf, 4), 1);
  fail_unless_equals_int (buf[0], ' ');
  fail_unless_equals_int (llm_vocab_token_bytes (v, GPT2_EOT, buf, 4), 0);
  /* one U+FFFD for a cut-short sequence, as Rust's from_utf8_lossy */
  fail_unless_equals_string (lossy, "\xef\xbf\xbd" "a");

  for (guint i = 0; i < 500; i++) {
    g_autofree gchar *text = NULL;
    g_autoptr (GArray) ids = NULL;
    g_autofree gchar *back = NULL;

    if (i % 2 == 0) {
      text = random_text (rand, 1 + i % 40);
    } else {
      /* random bytes, made valid UTF-8 */
      guint8 raw[64];
      guint n = g_rand_int_range (rand, 1, sizeof raw);

      for (guint k = 0; k < n; k++)
        raw[k] = g_rand_int_range (rand, 1, 256);
      text = g_utf8_make_valid ((const gchar *) raw, n);
    }
    ids = encode_ok (v, text, -1, LLM_ENCODE_PARSE_SPECIAL);
    back = llm_vocab_decode (v, (gint32 *) ids->data, ids->len);
    fail_unless_equals_string (back, text);
  }
  g_rand_free (rand);
}

GST_END_TEST;

GST_START_TEST (test_gpt2_gguf)
{
  g_autoptr (LlmVocab) hf = load_gpt2 ();
  g_autofree gchar *dir = llm_test_tmpdir ();
  g_autofree gchar *path = write_vocab_gguf (hf, dir, "gpt2.gguf", TRUE);
  g_autoptr (LlmVocab) gg = load_gguf_vocab (path);
  static const gint32 want[] = { 259, 258, 'r', 'e' };

  fail_unless_equals_int (gg->kind, LLM_VOCAB_GPT2);
  fail_unless_equals_string (gg->fingerprint, hf->fingerprint);
  check_encoding (gg, "in there", -1, 0, want, G_N_ELEMENTS (want));
  remove_tmpdir (dir);
}

GST_END_TEST;

/* ------------------------------------------------------------------------
 * Against Hugging Face tokenizers itself, when python3 has it
 * --------------------------------------------------------------------- */

static const gchar *py_script =
    "import json, sys\n"
    "from tokenizers import Tokenizer, pre_tokenizers\n"
    "req = json.load(open(sys.argv[1], encoding='utf-8'))\n"
    "tok = Tokenizer.from_file(req['tokenizer'])\n"
    "if req['mode'] == 'spm':\n"
    "    # what transformers' LlamaTokenizer makes of this tokenizer.json\n"
    "    tok.normalizer = None\n"
    "    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement='\\u2581',"
    " prepend_scheme='always', split=False)\n"
    "out = [tok.encode(t, add_special_tokens=False).ids\n"
    "       for t in req['texts']]\n" "json.dump(out, sys.stdout)\n";

static gboolean
have_hf_tokenizers (void)
{
  const gchar *argv[] = { "python3", "-c", "import tokenizers", NULL };
  gint status = -1;

  if (!g_spawn_sync (NULL, (gchar **) argv, NULL, G_SPAWN_SEARCH_PATH |
          G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL,
          NULL, NULL, &status, NULL))
    return FALSE;
  return g_spawn_check_wait_status (status, NULL);
}

/* Runs the script over @texts; returns the JSON array of id lists. */
static JsonParser *
hf_encode (const gchar * dir, const gchar * tokenizer, const gchar * mode,
    GPtrArray * texts)
{
  g_autofree gchar *script = g_build_filename (dir, "hf.py", NULL);
  g_autofree gchar *req = g_build_filename (dir, "req.json", NULL);
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autofree gchar *out = NULL, *errout = NULL;
  const gchar *argv[] = { "python3", script, req, NULL };
  JsonParser *parser = json_parser_new ();
  GError *err = NULL;
  gint status;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "tokenizer");
  json_builder_add_string_value (b, tokenizer);
  json_builder_set_member_name (b, "mode");
  json_builder_add_string_value (b, mode);
  json_builder_set_member_name (b, "texts");
  json_builder_begin_array (b);
  for (guint i = 0; i < texts->len; i++)
    json_builder_add_string_value (b, g_ptr_array_index (texts, i));
  json_builder_end_array (b);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  json_generator_to_file (gen, req, &err);
  g_assert_no_error (err);
  g_file_set_contents (script, py_script, -1, &err);
  g_assert_no_error (err);

  g_spawn_sync (NULL, (gchar **) argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
      &out, &errout, &status, &err);
  g_assert_no_error (err);
  fail_unless (g_spawn_check_wait_status (status, NULL), "python: %s", errout);
  json_parser_load_from_data (parser, out, -1, &err);
  g_assert_no_error (err);
  return parser;
}

static void
compare_with_hf (const LlmVocab * v, const gchar * dir,
    const gchar * tokenizer, const gchar * mode, GPtrArray * texts)
{
  g_autoptr (JsonParser) parser = hf_encode (dir, tokenizer, mode, texts);
  JsonArray *all = json_node_get_array (json_parser_get_root (parser));
  guint bad = 0;

  fail_unless_equals_int (json_array_get_length (all), texts->len);
  for (guint i = 0; i < texts->len; i++) {
    const gchar *text = g_ptr_array_index (texts, i);
    g_autoptr (GArray) want = json_ids (json_array_get_array_element (all, i));
    g_autoptr (GArray) got = encode_ok (v, text, -1, LLM_ENCODE_PARSE_SPECIAL);

    if (!ids_equal (got, want) && bad++ < 5) {
      g_autofree gchar *g = ids_str (got), *w = ids_str (want);
      g_printerr ("%s: '%s': got %s, HF %s\n", mode, text, g, w);
    }
  }
  fail_unless (bad == 0, "%s: %u of %u texts differ from HF tokenizers",
      mode, bad, texts->len);
}

GST_START_TEST (test_against_hf_tokenizers)
{
  g_autofree gchar *dir = NULL, *gpt2_path = NULL, *json = NULL;
  g_autofree gchar *spm_path = llm_test_model_file (MODEL, "tokenizer.json");
  g_autoptr (LlmVocab) gpt2 = NULL, spm = NULL;
  g_autoptr (GPtrArray) texts = g_ptr_array_new_with_free_func (g_free);
  GRand *rand;

  if (!have_hf_tokenizers ()) {
    g_print ("NOTICE: python3 'tokenizers' is not importable: the comparison "
        "with Hugging Face tokenizers on random texts is skipped\n");
    return;
  }
  dir = llm_test_tmpdir ();
  gpt2_path = g_build_filename (dir, "gpt2.json", NULL);
  json = gpt2_json ();
  g_file_set_contents (gpt2_path, json, -1, NULL);
  gpt2 = load_gpt2 ();
  spm = load_stories ();

  rand = g_rand_new_with_seed (42);
  for (guint i = 0; i < 400; i++)
    g_ptr_array_add (texts, random_text (rand, 1 + i % 50));
  g_ptr_array_add (texts, g_strdup ("a<s>b</s> <unk>c<|endoftext|>d"));
  g_rand_free (rand);

  compare_with_hf (gpt2, dir, gpt2_path, "gpt2", texts);
  compare_with_hf (spm, dir, spm_path, "spm", texts);
  remove_tmpdir (dir);
}

GST_END_TEST;

static Suite *
tokenizer_suite (void)
{
  Suite *s = suite_create ("tokenizer");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_reference_ids);
  tcase_add_test (tc, test_decode_roundtrip);
  tcase_add_test (tc, test_generate_prompts);
  tcase_add_test (tc, test_known_encodings);
  tcase_add_test (tc, test_token_bytes);
  tcase_add_test (tc, test_invalid_utf8);
  tcase_add_test (tc, test_gguf_same_ids);
  tcase_add_test (tc, test_scores_match_ranks);
  tcase_add_test (tc, test_long_input);
  tcase_add_test (tc, test_fingerprint);
  tcase_add_test (tc, test_malformed_json);
  tcase_add_test (tc, test_malformed_files);
  tcase_add_test (tc, test_malformed_gguf);
  tcase_add_test (tc, test_gpt2_by_hand);
  tcase_add_test (tc, test_gpt2_roundtrip);
  tcase_add_test (tc, test_gpt2_gguf);
  tcase_add_test (tc, test_against_hf_tokenizers);
  return s;
}

GST_CHECK_MAIN (tokenizer);
