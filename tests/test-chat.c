/* Chat: turn formatting for the template families we recognise, and a
 * conversation whose history stays in the KV cache between turns.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <gst/check/gstcheck.h>
#include <string.h>

#include "test-common.h"
#include "test-pipeline.h"
#include "llm-chat.h"
#include "llm-forward.h"
#include "llm-model-file.h"

static gchar *model_dir;

GST_START_TEST (test_family)
{
  fail_unless_equals_int (llm_chat_family (NULL), LLM_CHAT_NONE);
  fail_unless_equals_int (llm_chat_family ("{{ bos_token }}{% for m in "
          "messages %}<start_of_turn>{{ m.role }}"), LLM_CHAT_GEMMA);
  fail_unless_equals_int (llm_chat_family ("{% for m in messages %}"
          "<|im_start|>{{ m.role }}"), LLM_CHAT_CHATML);
  fail_unless_equals_int (llm_chat_family ("<|start_header_id|>"),
      LLM_CHAT_LLAMA3);
  fail_unless_equals_int (llm_chat_family ("[INST] {{ m }} [/INST]"),
      LLM_CHAT_UNKNOWN);
}

GST_END_TEST;

/* What the published templates render for a user message with
 * add_generation_prompt (BOS left to the tokenizer). */
GST_START_TEST (test_format)
{
  gchar *t;

  t = llm_chat_format_turn (LLM_CHAT_GEMMA, NULL, "Hi", TRUE);
  fail_unless_equals_string (t,
      "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n");
  g_free (t);
  t = llm_chat_format_turn (LLM_CHAT_GEMMA, "Be brief.", "Hi", TRUE);
  fail_unless_equals_string (t, "<start_of_turn>user\nBe brief.\n\nHi"
      "<end_of_turn>\n<start_of_turn>model\n");
  g_free (t);
  /* A later turn closes the model's turn first; no system prompt again. */
  t = llm_chat_format_turn (LLM_CHAT_GEMMA, "Be brief.", "And?", FALSE);
  fail_unless_equals_string (t, "<end_of_turn>\n<start_of_turn>user\nAnd?"
      "<end_of_turn>\n<start_of_turn>model\n");
  g_free (t);
  t = llm_chat_format_turn (LLM_CHAT_CHATML, "S", "Hi", TRUE);
  fail_unless_equals_string (t, "<|im_start|>system\nS<|im_end|>\n"
      "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  g_free (t);
  t = llm_chat_format_turn (LLM_CHAT_LLAMA3, NULL, "Hi", TRUE);
  fail_unless_equals_string (t, "<|start_header_id|>user<|end_header_id|>"
      "\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  g_free (t);
}

GST_END_TEST;

GST_START_TEST (test_no_template)
{
  gchar *desc = g_strdup_printf ("appsrc name=src ! llmtokenizer "
      "model=\"%s\" chat=true ! llmencoder ! llmdecoder ! llmsampler ! "
      "llmdetokenizer ! appsink name=sink", model_dir);
  LlmRunResult *r = llm_run_pipeline (desc, "Hello");

  fail_unless (r->error != NULL);
  fail_unless (strstr (r->error, "no chat template") != NULL, "%s",
      r->error);
  llm_run_result_free (r);
  g_free (desc);
}

GST_END_TEST;

static gint32
argmax (const float *x, guint n)
{
  guint best = 0;

  for (guint i = 1; i < n; i++)
    if (x[i] > x[best])
      best = i;
  return best;
}

/* Two prompts with keep-history: the second turn's tokens are what the
 * model gives for the whole history (prompt 1, reply 1 but its last token,
 * which was not fed, prompt 2) computed here in one go. */
GST_START_TEST (test_history_in_cache)
{
  const guint N = 8;
  gchar *desc = g_strdup_printf ("appsrc name=src ! llmtokenizer "
      "model=\"%s\" prompt-mode=line keep-history=true ! llmencoder ! "
      "llmdecoder max-tokens=%u ! llmsampler name=sam temperature=0 ! "
      "llmdetokenizer ! appsink name=sink", model_dir, N);
  LlmRunResult *r = llm_run_pipeline (desc, "Once upon a time\nLily\n");
  GError *err = NULL;
  LlmModelFile *mf = llm_model_file_load (model_dir, NULL, NULL, &err);
  LlmCompute *c = llm_compute_new (mf, 1);
  LlmKvCache *kv = llm_kv_cache_new (&mf->hp, 128, &err);
  GArray *p1 = llm_vocab_encode (mf->vocab, "Once upon a time", -1, TRUE,
      NULL);
  GArray *p2 = llm_vocab_encode (mf->vocab, "Lily", -1, FALSE, NULL);
  float *hidden = g_new (float, mf->hp.dim);
  float *logits = g_new (float, mf->vocab->n_tokens);
  gint32 tok;

  fail_unless (r->error == NULL, "%s", r->error);
  fail_unless_equals_int (r->tokens->len, 2 * N);
  fail_unless (llm_compute_forward (c, kv, (gint32 *) p1->data, p1->len,
          hidden, &err));
  fail_unless (llm_compute_forward (c, kv, (gint32 *) r->tokens->data, N - 1,
          hidden, &err));
  fail_unless (llm_compute_forward (c, kv, (gint32 *) p2->data, p2->len,
          hidden, &err));
  for (guint i = 0; i < N; i++) {
    llm_compute_logits (c, hidden, logits);
    tok = argmax (logits, mf->vocab->n_tokens);
    fail_unless_equals_int (g_array_index (r->tokens, gint32, N + i), tok);
    fail_unless (llm_compute_forward (c, kv, &tok, 1, hidden, &err));
  }

  g_free (logits);
  g_free (hidden);
  g_array_unref (p1);
  g_array_unref (p2);
  llm_kv_cache_free (kv);
  llm_compute_free (c);
  llm_model_file_free (mf);
  llm_run_result_free (r);
  g_free (desc);
}

GST_END_TEST;

static Suite *
chat_suite (void)
{
  Suite *s = suite_create ("chat");
  TCase *tc = tcase_create ("general");

  model_dir = llm_test_model_dir ("stories260K");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_family);
  tcase_add_test (tc, test_format);
  tcase_add_test (tc, test_no_template);
  tcase_add_test (tc, test_history_in_cache);
  return s;
}

GST_CHECK_MAIN (chat);
