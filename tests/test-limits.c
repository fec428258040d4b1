/* Text and prompt limits: invalid UTF-8, NUL bytes, prompts longer than the
 * context, max-tokens past the context, empty prompts. Each behaviour is the
 * documented one (docs/robustness.md) and errors say what was wrong.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <string.h>

#include "test-common.h"
#include "test-pipeline.h"
#include "llm-vocab.h"

static gchar *model_dir;

static LlmRunResult *
run (const gchar * tok_props, const gchar * enc_props, const gchar * dec_props,
    const gchar * prompt)
{
  gchar *desc = g_strdup_printf ("appsrc name=src ! llmtokenizer model=\"%s\" "
      "%s ! llmencoder %s ! llmdecoder %s ! llmsampler name=sam temperature=0 "
      "! llmdetokenizer ! appsink name=sink", model_dir, tok_props, enc_props,
      dec_props);
  LlmRunResult *r = llm_run_pipeline (desc, prompt);

  g_free (desc);
  return r;
}

GST_START_TEST (test_invalid_utf8_error)
{
  LlmRunResult *r = run ("", "", "", "Once upon\xc3\x28 a time");

  fail_unless (r->error != NULL);
  fail_unless (strstr (r->error, "invalid UTF-8 at byte 9") != NULL, "%s",
      r->error);
  fail_unless_equals_int (r->tokens->len, 0);
  llm_run_result_free (r);
}

GST_END_TEST;

/* invalid-utf8=replace: as if the bad byte were U+FFFD. */
GST_START_TEST (test_invalid_utf8_replace)
{
  LlmRunResult *a = run ("invalid-utf8=replace", "", "max-tokens=20",
      "Once upon\xff a time");
  LlmRunResult *b = run ("", "", "max-tokens=20",
      "Once upon\xef\xbf\xbd a time");

  fail_unless (a->error == NULL, "%s", a->error);
  fail_unless (b->error == NULL, "%s", b->error);
  fail_unless_equals_int (a->tokens->len, 20);
  fail_unless_equals_string (a->text->str, b->text->str);
  llm_run_result_free (a);
  llm_run_result_free (b);
}

GST_END_TEST;

/* A NUL byte is a character like any other: byte fallback <0x00>. */
GST_START_TEST (test_nul_bytes)
{
  gchar *launch = g_strdup_printf ("llmtokenizer model=\"%s\" "
      "prompt-mode=buffer", model_dir);
  GstHarness *h = gst_harness_new_parse (launch);
  LlmVocab *vocab = llm_vocab_new_from_path (model_dir, NULL);
  static const gchar text[] = "cat\0dog";
  GArray *expect = llm_vocab_encode (vocab, text, sizeof (text) - 1, TRUE,
      NULL);
  gboolean has_nul = FALSE;
  GstBuffer *out;
  GstMapInfo map;

  gst_harness_set_src_caps_str (h, "text/x-raw, format=utf8");
  fail_unless_equals_int (gst_harness_push (h,
          gst_buffer_new_memdup (text, sizeof (text) - 1)), GST_FLOW_OK);
  out = gst_harness_pull (h);
  gst_buffer_map (out, &map, GST_MAP_READ);
  fail_unless_equals_int (map.size, expect->len * sizeof (gint32));
  fail_unless (memcmp (map.data, expect->data, map.size) == 0);
  for (guint i = 0; i < expect->len; i++)
    has_nul |= g_array_index (expect, gint32, i) == 3;        /* <0x00> */
  fail_unless (has_nul);
  gst_buffer_unmap (out, &map);
  gst_buffer_unref (out);
  g_array_unref (expect);
  llm_vocab_free (vocab);
  gst_harness_teardown (h);
  g_free (launch);
}

GST_END_TEST;

static const gchar long_prompt[] =
    "Once upon a time there was a little girl named Lily and she loved to "
    "play outside in the park with her friend Ben every day";

GST_START_TEST (test_prompt_longer_than_context)
{
  LlmRunResult *r = run ("", "context-length=16", "", long_prompt);

  fail_unless (r->error != NULL);
  fail_unless (strstr (r->error, "does not fit the context of 16 tokens")
      != NULL, "%s", r->error);
  fail_unless (strstr (r->error, "context-overflow=truncate") != NULL);
  llm_run_result_free (r);
}

GST_END_TEST;

/* context-overflow=truncate keeps BOS + the last 7 tokens (half of 16), so
 * 9 positions remain: 9 tokens come out (the last one is not fed). */
GST_START_TEST (test_prompt_truncated)
{
  LlmRunResult *r = run ("", "context-length=16 context-overflow=truncate",
      "max-tokens=0", long_prompt);

  fail_unless (r->error == NULL, "%s", r->error);
  fail_unless (r->tokens->len >= 1 && r->tokens->len <= 9, "%u tokens",
      r->tokens->len);
  llm_run_result_free (r);
}

GST_END_TEST;

/* max-tokens beyond the context: generation ends when the context is full,
 * with the same tokens as without the limit. */
GST_START_TEST (test_max_tokens_past_context)
{
  GPtrArray *cases = llm_golden_cases ();
  LlmGoldenCase *c = g_ptr_array_index (cases, 0);      /* 5 prompt tokens */
  LlmRunResult *r = run ("", "context-length=32", "max-tokens=1000",
      c->prompt);

  fail_unless (r->error == NULL, "%s", r->error);
  fail_unless_equals_int (r->tokens->len, 32 - 5 + 1);
  for (guint i = 0; i < r->tokens->len; i++)
    fail_unless_equals_int (g_array_index (r->tokens, gint32, i),
        g_array_index (c->greedy_ids, gint32, i));
  llm_run_result_free (r);
  g_ptr_array_unref (cases);
}

GST_END_TEST;

/* An empty prompt is BOS alone (the model starts a story); without BOS it
 * has no tokens: skipped with a warning, and the stream still ends. */
GST_START_TEST (test_empty_prompt)
{
  GPtrArray *cases = llm_golden_cases ();
  LlmGoldenCase *c = g_ptr_array_index (cases, 2);      /* prompt "" */
  LlmRunResult *r = run ("", "", "max-tokens=120", "");

  fail_unless_equals_string (c->prompt, "");
  fail_unless (r->error == NULL, "%s", r->error);
  fail_unless_equals_string (r->text->str, c->continuation);
  llm_run_result_free (r);

  r = run ("add-special=false", "", "", "");
  fail_unless (r->error == NULL, "%s", r->error);
  fail_unless (r->eos);
  fail_unless_equals_int (r->tokens->len, 0);
  llm_run_result_free (r);
  g_ptr_array_unref (cases);
}

GST_END_TEST;

/* Line mode with no line at all: EOS goes through, nothing is generated. */
GST_START_TEST (test_no_prompt_eos)
{
  LlmRunResult *r = run ("prompt-mode=line", "", "", "\n\n\r\n");

  fail_unless (r->error == NULL, "%s", r->error);
  fail_unless (r->eos);
  fail_unless_equals_int (r->tokens->len, 0);
  fail_unless_equals_string (r->text->str, "");
  llm_run_result_free (r);
}

GST_END_TEST;

static Suite *
limits_suite (void)
{
  Suite *s = suite_create ("limits");
  TCase *tc = tcase_create ("general");

  model_dir = llm_test_model_dir ("stories260K");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_invalid_utf8_error);
  tcase_add_test (tc, test_invalid_utf8_replace);
  tcase_add_test (tc, test_nul_bytes);
  tcase_add_test (tc, test_prompt_longer_than_context);
  tcase_add_test (tc, test_prompt_truncated);
  tcase_add_test (tc, test_max_tokens_past_context);
  tcase_add_test (tc, test_empty_prompt);
  tcase_add_test (tc, test_no_prompt_eos);
  return s;
}

GST_CHECK_MAIN (limits);
