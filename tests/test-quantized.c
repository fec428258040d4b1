/* Q8_0 and Q4_0 conversions of stories260K: they load, their logits stay
 * within the tolerance documented in docs/quantization.md of the F32
 * model's, and they generate fluent text through the pipeline.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <gst/check/gstcheck.h>
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include "test-common.h"
#include "test-pipeline.h"
#include "llm-forward.h"
#include "llm-model-file.h"
#include "llm-vocab.h"

/* Relative L2 error of the last-position logits against F32, worst prompt.
 * Measured: see docs/quantization.md; these bounds leave about 2x room. */
#define Q8_0_TOLERANCE 0.03
#define Q4_0_TOLERANCE 0.25

static gchar *model_dir, *tmp_dir;

static gchar *
convert (LlmDType dtype)
{
  GError *err = NULL;
  LlmModelFile *mf = llm_model_file_load (model_dir, NULL, NULL, &err);
  gchar *name = g_strdup_printf ("stories260K-%s.gguf", llm_dtype_name (dtype));
  gchar *path = g_build_filename (tmp_dir, name, NULL);

  fail_unless (mf != NULL);
  fail_unless (llm_model_file_write_gguf (mf, path, dtype, NULL, NULL, &err),
      "%s", err ? err->message : "");
  llm_model_file_free (mf);
  g_free (name);
  return path;
}

static float *
last_logits (const gchar * path, const gchar * prompt)
{
  GError *err = NULL;
  LlmModelFile *mf = llm_model_file_load (path, NULL, NULL, &err);
  LlmCompute *c;
  LlmKvCache *kv;
  GArray *ids;
  float *hidden, *logits;

  fail_unless (mf != NULL, "%s", err ? err->message : "");
  c = llm_compute_new (mf, 1);
  kv = llm_kv_cache_new (&mf->hp, 64, &err);
  ids = llm_vocab_encode (mf->vocab, prompt, -1, TRUE, &err);
  hidden = g_new (float, mf->hp.dim);
  logits = g_new (float, mf->vocab->n_tokens);
  fail_unless (llm_compute_forward (c, kv, (gint32 *) ids->data, ids->len,
          hidden, &err));
  llm_compute_logits (c, hidden, logits);
  g_free (hidden);
  g_array_unref (ids);
  llm_kv_cache_free (kv);
  llm_compute_free (c);
  llm_model_file_free (mf);
  return logits;
}

static double
worst_logit_error (const gchar * quantized)
{
  GPtrArray *cases = llm_golden_cases ();
  double worst = 0;

  for (guint i = 0; i < cases->len; i++) {
    LlmGoldenCase *gc = g_ptr_array_index (cases, i);
    float *ref = last_logits (model_dir, gc->prompt);
    float *q = last_logits (quantized, gc->prompt);
    double err = 0, norm = 0;

    for (guint t = 0; t < 512; t++) {
      err += (q[t] - ref[t]) * (double) (q[t] - ref[t]);
      norm += ref[t] * (double) ref[t];
    }
    worst = MAX (worst, sqrt (err / norm));
    g_free (ref);
    g_free (q);
  }
  g_ptr_array_unref (cases);
  return worst;
}

/* Fluent: the F32 model finds the quantized model's greedy text likely.
 * Its mean negative log-likelihood per token must stay under 1.5 nats
 * (uniform guessing over 512 tokens is 6.24; F32's own greedy text about
 * 0.4, see docs/quantization.md). */
static double
f32_nll_per_token (const GArray * prompt, const GArray * generated)
{
  GError *err = NULL;
  LlmModelFile *mf = llm_model_file_load (model_dir, NULL, NULL, &err);
  LlmCompute *c = llm_compute_new (mf, 1);
  LlmKvCache *kv = llm_kv_cache_new (&mf->hp, 512, &err);
  float *hidden = g_new (float, mf->hp.dim);
  float *logits = g_new (float, mf->vocab->n_tokens);
  double nll = 0;

  fail_unless (llm_compute_forward (c, kv, (gint32 *) prompt->data,
          prompt->len, hidden, &err));
  for (guint i = 0; i < generated->len; i++) {
    gint32 tok = g_array_index (generated, gint32, i);
    double mx = -INFINITY, sum = 0;

    llm_compute_logits (c, hidden, logits);
    for (guint t = 0; t < mf->vocab->n_tokens; t++)
      mx = MAX (mx, logits[t]);
    for (guint t = 0; t < mf->vocab->n_tokens; t++)
      sum += exp (logits[t] - mx);
    nll += -(logits[tok] - mx - log (sum));
    fail_unless (llm_compute_forward (c, kv, &tok, 1, hidden, &err));
  }
  g_free (logits);
  g_free (hidden);
  llm_kv_cache_free (kv);
  llm_compute_free (c);
  llm_model_file_free (mf);
  return nll / generated->len;
}

static void
check_fluent (const gchar * quantized)
{
  gchar *desc = g_strdup_printf ("appsrc name=src ! llmtokenizer model=\"%s\" "
      "! llmencoder ! llmdecoder max-tokens=100 ! llmsampler name=sam "
      "temperature=0 ! llmdetokenizer ! appsink name=sink", quantized);
  LlmRunResult *r = llm_run_pipeline (desc, "Once upon a time");
  LlmVocab *vocab = llm_vocab_new_from_path (model_dir, NULL);
  GArray *prompt = llm_vocab_encode (vocab, "Once upon a time", -1, TRUE,
      NULL);
  double nll;

  fail_unless (r->error == NULL, "%s", r->error);
  fail_unless (r->tokens->len >= 20, "only %u tokens", r->tokens->len);
  nll = f32_nll_per_token (prompt, r->tokens);
  g_print ("%s: %u tokens, F32 NLL %.3f nats/token: %s\n", quantized,
      r->tokens->len, nll, r->text->str);
  fail_unless (nll < 1.5, "not fluent: %.3f nats/token: %s", nll,
      r->text->str);
  g_array_unref (prompt);
  llm_vocab_free (vocab);
  llm_run_result_free (r);
  g_free (desc);
}

static void
check_dtype (LlmDType dtype, double tolerance)
{
  gchar *path = convert (dtype);
  double err = worst_logit_error (path);

  g_print ("%s: worst relative L2 logit error vs F32 over 5 prompts: %.5f "
      "(tolerance %.3f)\n", llm_dtype_name (dtype), err, tolerance);
  fail_unless (err < tolerance, "%s logits off by %g", llm_dtype_name (dtype),
      err);
  check_fluent (path);
  g_unlink (path);
  g_free (path);
}

GST_START_TEST (test_q8_0)
{
  check_dtype (LLM_DTYPE_Q8_0, Q8_0_TOLERANCE);
}

GST_END_TEST;

GST_START_TEST (test_q4_0)
{
  check_dtype (LLM_DTYPE_Q4_0, Q4_0_TOLERANCE);
}

GST_END_TEST;

GST_START_TEST (test_f16)
{
  check_dtype (LLM_DTYPE_F16, 1e-3);
}

GST_END_TEST;

static Suite *
quantized_suite (void)
{
  Suite *s = suite_create ("quantized");
  TCase *tc = tcase_create ("general");

  model_dir = llm_test_model_dir ("stories260K");
  tmp_dir = llm_test_tmpdir ();
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_f16);
  tcase_add_test (tc, test_q8_0);
  tcase_add_test (tc, test_q4_0);
  return s;
}

GST_CHECK_MAIN (quantized);
