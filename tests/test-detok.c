/* LLMasOS - streaming detokenizer: whole characters, stop strings.
 * SPDX-License-Identifier: LGPL-2.1-or-later */

#include <string.h>
#include <json-glib/json-glib.h>
#include <gst/check/gstcheck.h>

#include "llm-detok.h"
#include "llm-vocab.h"
#include "test-common.h"

#define MODEL "stories260K"
#define BYTE(b) (3 + (b))       /* stories260K: <0x00> is id 3 */
#define REPLACEMENT "\xef\xbf\xbd"

static LlmVocab *
load_stories (void)
{
  g_autofree gchar *dir = llm_test_model_dir (MODEL);
  GError *err = NULL;
  LlmVocab *v = llm_vocab_new_from_path (dir, &err);

  g_assert_no_error (err);
  return v;
}

static gint32
piece (const LlmVocab * v, const gchar * p)
{
  gint32 id = llm_vocab_find (v, p);

  fail_unless (id >= 0, "no piece '%s'", p);
  return id;
}

/* Streams @ids; every chunk must be whole UTF-8 characters. Returns what
 * came out; *stopped_at: index of the token that hit a stop string. */
static gchar *
stream (LlmDetok * d, const gint32 * ids, guint n, gboolean finish,
    gint * stopped_at)
{
  GString *all = g_string_new (NULL);

  *stopped_at = -1;
  for (guint i = 0; i < n; i++) {
    GString *chunk = g_string_new (NULL);
    gboolean stop = llm_detok_push (d, ids[i], chunk);

    fail_unless (g_utf8_validate (chunk->str, chunk->len, NULL),
        "token %u gave a chunk that is not whole UTF-8", i);
    g_string_append_len (all, chunk->str, chunk->len);
    g_string_free (chunk, TRUE);
    if (stop && *stopped_at < 0)
      *stopped_at = i;
  }
  if (finish)
    llm_detok_finish (d, all);
  return g_string_free (all, FALSE);
}

GST_START_TEST (test_generate_continuations)
{
  g_autoptr (LlmVocab) v = load_stories ();
  g_autofree gchar *path = llm_test_model_file (MODEL,
      "reference/generate.json");
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (LlmDetok) d = llm_detok_new (v, NULL);
  JsonArray *cases;
  GError *err = NULL;

  json_parser_load_from_file (parser, path, &err);
  g_assert_no_error (err);
  cases = json_object_get_array_member (json_node_get_object
      (json_parser_get_root (parser)), "cases");
  fail_unless (json_array_get_length (cases) >= 5);

  for (guint c = 0; c < json_array_get_length (cases); c++) {
    JsonObject *o = json_array_get_object_element (cases, c);
    JsonArray *prompt = json_object_get_array_member (o, "prompt_ids");
    JsonArray *gen = json_object_get_array_member (o, "greedy_ids");
    g_autoptr (GArray) all = g_array_new (FALSE, FALSE, sizeof (gint32));
    g_autofree gchar *text = NULL, *whole = NULL, *head = NULL;
    g_autofree gchar *expect = NULL;
    guint n_prompt = json_array_get_length (prompt);
    gint stopped;

    for (guint i = 0; i < n_prompt + json_array_get_length (gen); i++) {
      gint32 id = i < n_prompt ? json_array_get_int_element (prompt, i) :
          json_array_get_int_element (gen, i - n_prompt);
      g_array_append_val (all, id);
    }
    /* the prompt has no text when it is BOS alone */
    llm_detok_reset (d, n_prompt == 1);
    text = stream (d, (gint32 *) all->data + n_prompt, all->len - n_prompt,
        TRUE, &stopped);
    fail_unless_equals_string (text, json_object_get_string_member (o,
            "continuation"));
    fail_unless_equals_int (stopped, -1);

    /* and what whole-sequence decoding says */
    whole = llm_vocab_decode (v, (gint32 *) all->data, all->len);
    head = llm_vocab_decode (v, (gint32 *) all->data, n_prompt);
    expect = g_strconcat (head, text, NULL);
    fail_unless_equals_string (whole, expect);
  }
}

GST_END_TEST;

GST_START_TEST (test_split_characters)
{
  g_autoptr (LlmVocab) v = load_stories ();
  g_autoptr (LlmDetok) d = llm_detok_new (v, NULL);
  /* 中 = e4 b8 ad, 😀 = f0 9f 98 80, each as byte tokens */
  gint32 ids[] = { piece (v, "\xe2\x96\x81" "a"), BYTE (0xe4), BYTE (0xb8),
    BYTE (0xad), BYTE (0xf0), BYTE (0x9f), BYTE (0x98), BYTE (0x80),
    piece (v, "x")
  };
  const gchar *after[] = { " a", "", "", "\xe4\xb8\xad", "", "", "",
    "\xf0\x9f\x98\x80", "x"
  };
  g_autofree gchar *text = NULL;
  const gchar *sample = "\xe4\xb8\xad\xe6\x96\x87 caf\xc3\xa9 \xf0\x9f\x98\x80"
      "\xf0\x9f\x9a\x80 na\xc3\xafve \xce\xb1\xce\xb2\xce\xb3";
  g_autoptr (GArray) enc = NULL;
  GError *err = NULL;
  gint stopped;

  llm_detok_reset (d, FALSE);
  for (guint i = 0; i < G_N_ELEMENTS (ids); i++) {
    GString *chunk = g_string_new (NULL);

    fail_if (llm_detok_push (d, ids[i], chunk));
    fail_unless_equals_string (chunk->str, after[i]);
    g_string_free (chunk, TRUE);
  }

  /* a text full of byte-fallback characters, streamed token by token */
  enc = llm_vocab_encode (v, sample, -1, TRUE, &err);
  g_assert_no_error (err);
  llm_detok_reset (d, TRUE);
  text = stream (d, (gint32 *) enc->data, enc->len, TRUE, &stopped);
  fail_unless_equals_string (text, sample);
}

GST_END_TEST;

GST_START_TEST (test_leading_space)
{
  g_autoptr (LlmVocab) v = load_stories ();
  g_autoptr (LlmDetok) d = llm_detok_new (v, NULL);
  gint32 ids[] = { 1, piece (v, "\xe2\x96\x81"), piece (v, "\xe2\x96\x81" "a"),
    piece (v, "\xe2\x96\x81" "a")
  };
  g_autofree gchar *stripped = NULL, *kept = NULL;
  gint stopped;

  /* BOS gives nothing; only the very first character may go */
  llm_detok_reset (d, TRUE);
  stripped = stream (d, ids, G_N_ELEMENTS (ids), TRUE, &stopped);
  fail_unless_equals_string (stripped, " a a");
  llm_detok_reset (d, FALSE);
  kept = stream (d, ids, G_N_ELEMENTS (ids), TRUE, &stopped);
  fail_unless_equals_string (kept, "  a a");
}

GST_END_TEST;

GST_START_TEST (test_stop_strings)
{
  g_autoptr (LlmVocab) v = load_stories ();
  /* "Once upon a time, there was a little g|ir|l" */
  gint32 ids[] = { 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315,
    421
  };
  static const struct
  {
    const gchar *stops[3];
    const gchar *out;
    gint at;                    /* token that completes the stop string */
  } cases[] = {
    /* spans ", " + "there": the comma is held, then cut */
    {{", there", NULL}, "Once upon a time", 5},
    /* inside one token */
    {{"upo", NULL}, "Once ", 1},
    /* the earliest of several wins */
    {{"little", "a time", NULL}, "Once upon ", 3},
    {{" there", ", there", NULL}, "Once upon a time", 5},
    /* a held prefix that does not complete is released */
    {{", them", NULL}, "Once upon a time, there was a little girl", -1},
    /* over three tokens, none of them the whole */
    {{"girl", NULL}, "Once upon a time, there was a little ", 11},
    {{"", NULL}, "Once upon a time, there was a little girl", -1},
  };

  for (guint c = 0; c < G_N_ELEMENTS (cases); c++) {
    g_autoptr (LlmDetok) d = llm_detok_new (v, cases[c].stops);
    g_autofree gchar *text = NULL;
    GString *more = g_string_new (NULL);
    gint stopped;

    llm_detok_reset (d, TRUE);
    text = stream (d, ids, G_N_ELEMENTS (ids), cases[c].at < 0, &stopped);
    fail_unless_equals_string (text, cases[c].out);
    fail_unless_equals_int (stopped, cases[c].at);
    if (stopped >= 0) {
      /* later tokens are ignored until reset */
      fail_unless (llm_detok_push (d, 403, more));
      llm_detok_finish (d, more);
      fail_unless_equals_int (more->len, 0);
    }
    g_string_free (more, TRUE);
  }
}

GST_END_TEST;

GST_START_TEST (test_stop_held_text)
{
  g_autoptr (LlmVocab) v = load_stories ();
  const gchar *stops[] = { ", there", "\xe4\xb8\xad\xe6\x96\x87", NULL };
  g_autoptr (LlmDetok) d = llm_detok_new (v, stops);
  GString *out = g_string_new (NULL);
  gint32 cjk[] = { BYTE (0xe4), BYTE (0xb8), BYTE (0xad), BYTE (0xe6),
    BYTE (0x96)
  };
  g_autofree gchar *text = NULL;
  gint stopped;

  /* "," may begin ", there": held, not lost, at the end */
  llm_detok_reset (d, TRUE);
  fail_if (llm_detok_push (d, 403, out));
  fail_unless_equals_string (out->str, "Once");
  fail_if (llm_detok_push (d, 432, out));
  fail_unless_equals_string (out->str, "Once");
  llm_detok_finish (d, out);
  fail_unless_equals_string (out->str, "Once,");

  /* a stop string of multi-byte characters, cut short: 中 is held (it
   * may begin the stop string), the incomplete 文 becomes U+FFFD */
  llm_detok_reset (d, FALSE);
  text = stream (d, cjk, G_N_ELEMENTS (cjk), FALSE, &stopped);
  fail_unless_equals_string (text, "");
  g_string_truncate (out, 0);
  llm_detok_finish (d, out);
  fail_unless_equals_string (out->str, "\xe4\xb8\xad" REPLACEMENT);

  /* ... and completed: nothing before it */
  llm_detok_reset (d, FALSE);
  g_string_truncate (out, 0);
  fail_if (llm_detok_push (d, BYTE (0xe4), out));
  fail_if (llm_detok_push (d, BYTE (0xb8), out));
  fail_if (llm_detok_push (d, BYTE (0xad), out));
  fail_if (llm_detok_push (d, BYTE (0xe6), out));
  fail_if (llm_detok_push (d, BYTE (0x96), out));
  fail_unless (llm_detok_push (d, BYTE (0x87), out));
  fail_unless_equals_int (out->len, 0);
  g_string_free (out, TRUE);
}

GST_END_TEST;

GST_START_TEST (test_invalid_bytes)
{
  g_autoptr (LlmVocab) v = load_stories ();
  g_autoptr (LlmDetok) d = llm_detok_new (v, NULL);
  GString *out = g_string_new (NULL);

  /* finish on an incomplete character */
  llm_detok_reset (d, FALSE);
  llm_detok_push (d, BYTE (0xe4), out);
  llm_detok_push (d, BYTE (0xb8), out);
  fail_unless_equals_int (out->len, 0);
  llm_detok_finish (d, out);
  fail_unless_equals_string (out->str, REPLACEMENT);

  /* a byte that can never start a character: at once */
  llm_detok_reset (d, FALSE);
  g_string_truncate (out, 0);
  llm_detok_push (d, BYTE (0xff), out);
  fail_unless_equals_string (out->str, REPLACEMENT);

  /* a sequence broken by the next token: U+FFFD, then the token */
  llm_detok_reset (d, FALSE);
  g_string_truncate (out, 0);
  llm_detok_push (d, BYTE (0xe4), out);
  llm_detok_push (d, piece (v, "x"), out);
  fail_unless_equals_string (out->str, REPLACEMENT "x");
  llm_detok_finish (d, out);
  fail_unless_equals_string (out->str, REPLACEMENT "x");

  /* control tokens and ids out of range give nothing */
  llm_detok_reset (d, FALSE);
  g_string_truncate (out, 0);
  fail_if (llm_detok_push (d, 1, out));
  fail_if (llm_detok_push (d, 2, out));
  fail_if (llm_detok_push (d, 100000, out));
  fail_if (llm_detok_push (d, -5, out));
  llm_detok_finish (d, out);
  fail_unless_equals_int (out->len, 0);
  g_string_free (out, TRUE);
}

GST_END_TEST;

static Suite *
detok_suite (void)
{
  Suite *s = suite_create ("detok");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_generate_continuations);
  tcase_add_test (tc, test_split_characters);
  tcase_add_test (tc, test_leading_space);
  tcase_add_test (tc, test_stop_strings);
  tcase_add_test (tc, test_stop_held_text);
  tcase_add_test (tc, test_invalid_bytes);
  return s;
}

GST_CHECK_MAIN (detok);
