/* LLMasOS - the CPU forward pass against Hugging Face transformers.
 *
 * stories260K's reference/generate.json holds, for five prompts, the f32
 * logits of the last prompt position (top 5, sum, L2 norm) and the greedy
 * continuation as transformers computes them.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <gst/check/gstcheck.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

#include "llm-error.h"
#include "llm-forward.h"
#include "test-common.h"

#define MAX_NEW_TOKENS 120

typedef struct
{
  gchar *prompt;
  GArray *prompt_ids;           /* gint32 */
  GArray *greedy_ids;           /* gint32 */
  gint32 top5_ids[5];
  double top5_logits[5];
  double logits_sum;
  double logits_l2;
} RefCase;

static LlmModelFile *model;
static GPtrArray *cases;        /* RefCase */

static GArray *
int_array (JsonArray * a)
{
  GArray *out = g_array_new (FALSE, FALSE, sizeof (gint32));

  for (guint i = 0; i < json_array_get_length (a); i++) {
    gint32 v = json_array_get_int_element (a, i);

    g_array_append_val (out, v);
  }
  return out;
}

static void
ref_case_free (RefCase * rc)
{
  g_free (rc->prompt);
  g_array_unref (rc->prompt_ids);
  g_array_unref (rc->greedy_ids);
  g_free (rc);
}

static GPtrArray *
load_reference (void)
{
  gchar *path = llm_test_model_file ("stories260K", "reference/generate.json");
  JsonParser *parser = json_parser_new ();
  GError *err = NULL;
  JsonArray *arr;
  GPtrArray *out = g_ptr_array_new_with_free_func ((GDestroyNotify)
      ref_case_free);

  json_parser_load_from_file (parser, path, &err);
  fail_unless (err == NULL, "%s: %s", path, err ? err->message : "");
  arr = json_object_get_array_member (json_node_get_object
      (json_parser_get_root (parser)), "cases");
  for (guint i = 0; i < json_array_get_length (arr); i++) {
    JsonObject *o = json_array_get_object_element (arr, i);
    JsonArray *top5 = json_object_get_array_member (o, "last_logits_top5");
    RefCase *rc = g_new0 (RefCase, 1);

    rc->prompt = g_strdup (json_object_get_string_member (o, "prompt"));
    rc->prompt_ids = int_array (json_object_get_array_member (o, "prompt_ids"));
    rc->greedy_ids = int_array (json_object_get_array_member (o, "greedy_ids"));
    fail_unless_equals_int (json_array_get_length (top5), 5);
    for (guint j = 0; j < 5; j++) {
      JsonArray *pair = json_array_get_array_element (top5, j);

      rc->top5_ids[j] = json_array_get_int_element (pair, 0);
      rc->top5_logits[j] = json_array_get_double_element (pair, 1);
    }
    rc->logits_sum = json_object_get_double_member (o, "last_logits_sum");
    rc->logits_l2 = json_object_get_double_member (o, "last_logits_l2");
    g_ptr_array_add (out, rc);
  }
  fail_unless_equals_int (out->len, 5);
  g_object_unref (parser);
  g_free (path);
  return out;
}

static void
setup (void)
{
  gchar *dir = llm_test_model_dir ("stories260K");
  GError *err = NULL;

  model = llm_model_file_load (dir, NULL, NULL, &err);
  fail_unless (model != NULL, "loading %s: %s", dir, err ? err->message : "");
  fail_unless_equals_int (model->hp.dim, 64);
  fail_unless_equals_int (model->hp.n_kv_heads, 4);
  fail_unless_equals_int (model->hp.rope_style, LLM_ROPE_HALF);
  cases = load_reference ();
  g_free (dir);
}

static void
teardown (void)
{
  g_ptr_array_unref (cases);
  llm_model_file_free (model);
  cases = NULL;
  model = NULL;
}

static guint
argmax (const float *x, guint n)
{
  guint best = 0;

  for (guint i = 1; i < n; i++)
    if (x[i] > x[best])
      best = i;
  return best;
}

/* Forward of @n tokens then logits of the last; asserts success. */
static void
run_tokens (LlmCompute * c, LlmKvCache * kv, const gint32 * ids, guint n,
    float *hidden, float *logits)
{
  GError *err = NULL;

  fail_unless (llm_compute_forward (c, kv, ids, n, hidden, &err),
      "forward: %s", err ? err->message : "");
  if (logits != NULL)
    llm_compute_logits (c, hidden, logits);
}

GST_START_TEST (test_reference_logits)
{
  guint nv = model->hp.n_vocab;
  float *logits = g_new (float, nv), *hidden = g_new (float, model->hp.dim);

  for (guint ci = 0; ci < cases->len; ci++) {
    RefCase *rc = g_ptr_array_index (cases, ci);
    g_autoptr (LlmCompute) c = llm_compute_new (model, 1);
    g_autoptr (LlmKvCache) kv = llm_kv_cache_new (&model->hp, 512, NULL);
    double sum = 0, abs_sum = 0, l2 = 0, top_err = 0;
    guint order[5];

    run_tokens (c, kv, &g_array_index (rc->prompt_ids, gint32, 0),
        rc->prompt_ids->len, hidden, logits);
    fail_unless_equals_int (llm_kv_cache_len (kv), rc->prompt_ids->len);

    /* Top 5 by selection: ids and values. */
    for (guint j = 0; j < 5; j++) {
      guint best = G_MAXUINT;

      for (guint i = 0; i < nv; i++) {
        gboolean taken = FALSE;

        for (guint k = 0; k < j; k++)
          taken |= order[k] == i;
        if (!taken && (best == G_MAXUINT || logits[i] > logits[best]))
          best = i;
      }
      order[j] = best;
      fail_unless_equals_int (order[j], rc->top5_ids[j]);
      fail_unless (fabs (logits[best] - rc->top5_logits[j]) <=
          1e-4 * fabs (rc->top5_logits[j]),
          "\"%s\": top %u logit %.7g, reference %.7g", rc->prompt, j,
          logits[best], rc->top5_logits[j]);
      top_err = MAX (top_err, fabs (logits[best] - rc->top5_logits[j]) /
          fabs (rc->top5_logits[j]));
    }
    for (guint i = 0; i < nv; i++) {
      sum += logits[i];
      abs_sum += fabs (logits[i]);
      l2 += (double) logits[i] * logits[i];
    }
    l2 = sqrt (l2);
    g_print ("\"%s\": top-5 logits within %.1e relative, sum off by %.1e, "
        "L2 by %.1e (relative)\n", rc->prompt, top_err,
        fabs (sum - rc->logits_sum) / abs_sum,
        fabs (l2 - rc->logits_l2) / rc->logits_l2);
    /* Sums of 512 logits, each within ~1e-6 relative of the reference. */
    fail_unless (fabs (sum - rc->logits_sum) <= 1e-5 * abs_sum,
        "\"%s\": logits sum %.7g, reference %.7g", rc->prompt, sum,
        rc->logits_sum);
    fail_unless (fabs (l2 - rc->logits_l2) <= 1e-5 * rc->logits_l2,
        "\"%s\": logits L2 %.7g, reference %.7g", rc->prompt, l2,
        rc->logits_l2);
  }
  g_free (logits);
  g_free (hidden);
}

GST_END_TEST;

/* Greedy decoding after the prompt; stops at BOS or EOS (TinyStories ends a
 * story with BOS) or after MAX_NEW_TOKENS. */
static GArray *
greedy (LlmCompute * c, LlmKvCache * kv, const GArray * prompt)
{
  GArray *out = g_array_new (FALSE, FALSE, sizeof (gint32));
  float *logits = g_new (float, model->hp.n_vocab);
  float *hidden = g_new (float, model->hp.dim);

  run_tokens (c, kv, &g_array_index (prompt, gint32, 0), prompt->len,
      hidden, logits);
  while (out->len < MAX_NEW_TOKENS) {
    gint32 next = argmax (logits, model->hp.n_vocab);

    g_array_append_val (out, next);
    if (next == 1 || next == 2 || out->len == MAX_NEW_TOKENS)
      break;
    run_tokens (c, kv, &next, 1, hidden, logits);
  }
  g_free (logits);
  g_free (hidden);
  return out;
}

GST_START_TEST (test_greedy)
{
  for (guint ci = 0; ci < cases->len; ci++) {
    RefCase *rc = g_ptr_array_index (cases, ci);
    g_autoptr (LlmCompute) c = llm_compute_new (model, 1);
    g_autoptr (LlmKvCache) kv = llm_kv_cache_new (&model->hp, 512, NULL);
    GArray *got = greedy (c, kv, rc->prompt_ids);

    for (guint i = 0; i < MIN (got->len, rc->greedy_ids->len); i++)
      fail_unless (g_array_index (got, gint32, i) ==
          g_array_index (rc->greedy_ids, gint32, i),
          "\"%s\": greedy token %u is %d, reference %d", rc->prompt, i,
          g_array_index (got, gint32, i),
          g_array_index (rc->greedy_ids, gint32, i));
    fail_unless_equals_int (got->len, rc->greedy_ids->len);
    g_array_unref (got);
  }
}

GST_END_TEST;

/* The prompt and continuation of the first case: 125 tokens, so that a
 * batched prefill spans several blocks. */
static GArray *
long_sequence (void)
{
  RefCase *rc = g_ptr_array_index (cases, 0);
  GArray *seq = g_array_new (FALSE, FALSE, sizeof (gint32));

  g_array_append_vals (seq, rc->prompt_ids->data, rc->prompt_ids->len);
  g_array_append_vals (seq, rc->greedy_ids->data, rc->greedy_ids->len);
  return seq;
}

static void
check_close_f32 (const float *got, const float *want, guint n, double tol,
    const gchar * what)
{
  for (guint i = 0; i < n; i++)
    fail_unless (fabs (got[i] - want[i]) <= tol * MAX (1.0, fabs (want[i])),
        "%s: element %u is %.9g, want %.9g", what, i, got[i], want[i]);
}

GST_START_TEST (test_prefill_matches_decode)
{
  const guint chunks[] = { 2, 3, 7, 64, 65, 125 };
  const guint threads[] = { 1, 2, 3 };
  GArray *seq = long_sequence ();
  guint n = seq->len, dim = model->hp.dim, nv = model->hp.n_vocab;
  const gint32 *ids = &g_array_index (seq, gint32, 0);
  gint32 next = 426;
  float *h1 = g_new (float, dim), *hb = g_new (float, dim);
  float *h_last = g_new (float, dim);
  float *l1 = g_new (float, nv), *lb = g_new (float, nv);
  g_autoptr (LlmCompute) c1 = llm_compute_new (model, 1);
  g_autoptr (LlmKvCache) kv1 = llm_kv_cache_new (&model->hp, 256, NULL);

  /* Token by token, then one more step, which reads the whole cache. */
  for (guint i = 0; i < n; i++)
    run_tokens (c1, kv1, ids + i, 1, h_last, NULL);
  run_tokens (c1, kv1, &next, 1, h1, l1);

  for (guint ti = 0; ti < G_N_ELEMENTS (threads); ti++) {
    for (guint k = 0; k < G_N_ELEMENTS (chunks); k++) {
      g_autoptr (LlmCompute) cb = llm_compute_new (model, threads[ti]);
      g_autoptr (LlmKvCache) kvb = llm_kv_cache_new (&model->hp, 256, NULL);
      gchar *what = g_strdup_printf ("prefill in chunks of %u, %u threads",
          chunks[k], threads[ti]);

      for (guint t0 = 0; t0 < n; t0 += chunks[k])
        run_tokens (cb, kvb, ids + t0, MIN (chunks[k], n - t0), hb, NULL);
      fail_unless_equals_int (llm_kv_cache_len (kvb), n);
      /* The hidden state of the last token of the last chunk. */
      check_close_f32 (hb, h_last, dim, 1e-5, what);
      run_tokens (cb, kvb, &next, 1, hb, lb);
      check_close_f32 (hb, h1, dim, 1e-5, what);
      check_close_f32 (lb, l1, nv, 1e-5, what);
      g_free (what);
    }
  }
  g_free (h1);
  g_free (hb);
  g_free (h_last);
  g_free (l1);
  g_free (lb);
  g_array_unref (seq);
}

GST_END_TEST;

/* A cache rounded to Q8_0 (the CPU twin of the CUDA backend's Q8_0
 * cache): prefill in chunks gives the logits of token-by-token steps, as
 * with the unrounded cache (each key and value is rounded once, when it
 * is appended, whatever the chunk); the logits move from the unrounded
 * cache's; F16 rounding and rows that are not whole 32-blocks are
 * refused. */
GST_START_TEST (test_kv_rounding_q8_0)
{
  GArray *seq = long_sequence ();
  guint n = seq->len, dim = model->hp.dim, nv = model->hp.n_vocab;
  const gint32 *ids = &g_array_index (seq, gint32, 0);
  gint32 next = 426;
  g_autofree float *h = g_new (float, dim);
  g_autofree float *l1 = g_new (float, nv), *lb = g_new (float, nv);
  g_autofree float *lraw = g_new (float, nv);
  g_autoptr (LlmCompute) c = llm_compute_new (model, 2);
  g_autoptr (LlmKvCache) kv1 = llm_kv_cache_new (&model->hp, 256, NULL);
  g_autoptr (LlmKvCache) kvb = llm_kv_cache_new (&model->hp, 256, NULL);
  g_autoptr (LlmKvCache) kvr = llm_kv_cache_new (&model->hp, 256, NULL);
  LlmHParams odd = model->hp;
  LlmKvCache *kvo;
  GError *err = NULL;
  double num = 0.0, den = 0.0;

  fail_unless (llm_kv_cache_set_rounding (kv1, LLM_DTYPE_Q8_0, &err), "%s",
      err ? err->message : "");
  fail_unless (llm_kv_cache_set_rounding (kvb, LLM_DTYPE_Q8_0, NULL));
  for (guint i = 0; i < n; i++)
    run_tokens (c, kv1, ids + i, 1, h, NULL);
  run_tokens (c, kv1, &next, 1, h, l1);
  for (guint t0 = 0; t0 < n; t0 += 7)
    run_tokens (c, kvb, ids + t0, MIN (7, n - t0), h, NULL);
  run_tokens (c, kvb, &next, 1, h, lb);
  check_close_f32 (lb, l1, nv, 1e-5, "Q8_0-rounded cache, chunks of 7");
  run_tokens (c, kvr, ids, n, h, NULL);
  run_tokens (c, kvr, &next, 1, h, lraw);
  for (guint i = 0; i < nv; i++) {
    num += ((double) l1[i] - lraw[i]) * ((double) l1[i] - lraw[i]);
    den += (double) lraw[i] * lraw[i];
  }
  g_print ("Q8_0-rounded KV cache: logits %.3g relative L2 from the "
      "unrounded cache's after %u tokens\n", sqrt (num / den), n + 1);
  fail_unless (sqrt (num / den) > 1e-3, "rounding the cache changed the "
      "logits by only %g", sqrt (num / den));

  fail_if (llm_kv_cache_set_rounding (kvr, LLM_DTYPE_F16, &err));
  fail_unless (g_error_matches (err, LLM_ERROR, LLM_ERROR_UNSUPPORTED));
  g_clear_error (&err);
  odd.n_kv_heads = 3;           /* rows of 24 */
  kvo = llm_kv_cache_new (&odd, 16, NULL);
  fail_if (llm_kv_cache_set_rounding (kvo, LLM_DTYPE_Q8_0, &err));
  fail_unless (strstr (err->message, "24") != NULL, "%s", err->message);
  g_clear_error (&err);
  llm_kv_cache_free (kvo);
  g_array_unref (seq);
}

GST_END_TEST;

GST_START_TEST (test_truncate_and_rerun)
{
  RefCase *rc = g_ptr_array_index (cases, 1);
  guint dim = model->hp.dim, nv = model->hp.n_vocab;
  const gint32 *ids = &g_array_index (rc->prompt_ids, gint32, 0);
  guint n = rc->prompt_ids->len;
  float *h = g_new (float, dim), *l1 = g_new (float, nv);
  float *l2 = g_new (float, nv);
  g_autoptr (LlmCompute) c = llm_compute_new (model, 1);
  g_autoptr (LlmKvCache) kv = llm_kv_cache_new (&model->hp, 64, NULL);

  fail_unless_equals_int (llm_kv_cache_n_ctx (kv), 64);
  fail_unless_equals_int (llm_kv_cache_len (kv), 0);
  run_tokens (c, kv, ids, n, h, l1);
  /* Forget the last three tokens, run them again: same logits. */
  llm_kv_cache_truncate (kv, n - 3);
  fail_unless_equals_int (llm_kv_cache_len (kv), n - 3);
  run_tokens (c, kv, ids + n - 3, 3, h, l2);
  fail_unless (memcmp (l1, l2, nv * sizeof (float)) == 0);
  /* Truncating past the end changes nothing. */
  llm_kv_cache_truncate (kv, 1000);
  fail_unless_equals_int (llm_kv_cache_len (kv), n);
  g_free (h);
  g_free (l1);
  g_free (l2);
}

GST_END_TEST;

GST_START_TEST (test_errors)
{
  const gint32 ok[] = { 1, 403, 407, 261, 378 };
  const gint32 bad_high[] = { 1, 512 };
  const gint32 bad_neg[] = { -1 };
  float *h = g_new (float, model->hp.dim);
  g_autoptr (LlmCompute) c = llm_compute_new (model, 1);
  g_autoptr (LlmKvCache) kv = llm_kv_cache_new (&model->hp, 8, NULL);
  GError *err = NULL;

  /* Ids outside the vocabulary; the cache is left as it was. */
  fail_if (llm_compute_forward (c, kv, bad_high, 2, h, &err));
  fail_unless (g_error_matches (err, LLM_ERROR, LLM_ERROR_INPUT));
  fail_unless (strstr (err->message, "512") != NULL, "%s", err->message);
  g_clear_error (&err);
  fail_if (llm_compute_forward (c, kv, bad_neg, 1, h, &err));
  fail_unless (g_error_matches (err, LLM_ERROR, LLM_ERROR_INPUT));
  g_clear_error (&err);
  fail_unless_equals_int (llm_kv_cache_len (kv), 0);

  /* 5 + 5 positions do not fit in 8; 5 + 3 do. */
  run_tokens (c, kv, ok, 5, h, NULL);
  fail_if (llm_compute_forward (c, kv, ok, 5, h, &err));
  fail_unless (g_error_matches (err, LLM_ERROR, LLM_ERROR_CONTEXT_FULL));
  fail_unless (strstr (err->message, "10") != NULL &&
      strstr (err->message, "8") != NULL, "%s", err->message);
  g_clear_error (&err);
  fail_unless_equals_int (llm_kv_cache_len (kv), 5);
  run_tokens (c, kv, ok, 3, h, NULL);
  fail_unless_equals_int (llm_kv_cache_len (kv), 8);
  fail_if (llm_compute_forward (c, kv, ok, 1, h, &err));
  fail_unless (g_error_matches (err, LLM_ERROR, LLM_ERROR_CONTEXT_FULL));
  g_clear_error (&err);
  g_free (h);
}

GST_END_TEST;

GST_START_TEST (test_kv_cache_too_large)
{
  LlmHParams hp = model->hp;
  GError *err = NULL;
  LlmKvCache *kv;

  /* Far more than any machine has: 1000 layers of 2^31 positions. */
  hp.n_layers = 1000;
  kv = llm_kv_cache_new (&hp, G_MAXINT32, &err);
  fail_unless (kv == NULL);
  fail_unless (g_error_matches (err, LLM_ERROR, LLM_ERROR_NO_MEMORY));
  fail_unless (strstr (err->message, "bytes") != NULL, "%s", err->message);
  g_clear_error (&err);
}

GST_END_TEST;

/* Information only: single-threaded decode speed (forward + logits +
 * argmax), 1000 steps, restarting from BOS whenever the cache is full. */
GST_START_TEST (test_decode_speed)
{
  const guint steps = 1000;
  float *logits = g_new (float, model->hp.n_vocab);
  float *hidden = g_new (float, model->hp.dim);
  g_autoptr (LlmCompute) c = llm_compute_new (model, 1);
  g_autoptr (LlmKvCache) kv = llm_kv_cache_new (&model->hp, 512, NULL);
  GArray *seq = long_sequence ();
  gint32 tok = 1;
  gint64 t0, t1;
  double us;

  t0 = g_get_monotonic_time ();
  for (guint i = 0; i < steps; i++) {
    if (llm_kv_cache_len (kv) == llm_kv_cache_n_ctx (kv)) {
      llm_kv_cache_truncate (kv, 0);
      tok = 1;
    }
    run_tokens (c, kv, &tok, 1, hidden, logits);
    tok = argmax (logits, model->hp.n_vocab);
  }
  t1 = g_get_monotonic_time ();
  us = (double) (t1 - t0) / steps;
  g_print ("stories260K decode, 1 thread: %.1f us/token, %.0f tokens/s "
      "(%u steps)\n", us, 1e6 / us, steps);

  /* Prefill of 125 tokens, batched. */
  t0 = g_get_monotonic_time ();
  for (guint i = 0; i < 5; i++) {
    llm_kv_cache_truncate (kv, 0);
    run_tokens (c, kv, &g_array_index (seq, gint32, 0), seq->len, hidden, NULL);
  }
  t1 = g_get_monotonic_time ();
  us = (double) (t1 - t0) / (5 * seq->len);
  g_print ("stories260K prefill, 1 thread: %.1f us/token, %.0f tokens/s "
      "(%u tokens)\n", us, 1e6 / us, seq->len);
  g_array_unref (seq);
  g_free (logits);
  g_free (hidden);
}

GST_END_TEST;

static Suite *
forward_suite (void)
{
  Suite *s = suite_create ("forward");
  TCase *tc = tcase_create ("stories260K");

  suite_add_tcase (s, tc);
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_reference_logits);
  tcase_add_test (tc, test_greedy);
  tcase_add_test (tc, test_prefill_matches_decode);
  tcase_add_test (tc, test_truncate_and_rerun);
  tcase_add_test (tc, test_kv_rounding_q8_0);
  tcase_add_test (tc, test_errors);
  tcase_add_test (tc, test_kv_cache_too_large);
  tcase_add_test (tc, test_decode_speed);
  return s;
}

GST_CHECK_MAIN (forward);
