/* The six elements in real pipelines on stories260K.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <json-glib/json-glib.h>
#include <string.h>
#include <glib/gstdio.h>

#include "test-common.h"
#include "test-pipeline.h"
#include "llm-model-file.h"
#include "llm-vocab.h"
#include "llm-caps.h"
#include "llm-forward.h"

static gchar *model_dir;

static const gchar *elements[] = { "llmtokenizer", "llmencoder", "llmdecoder",
  "llmattention", "llmsampler", "llmdetokenizer"
};

static gchar *
chain (const gchar * sampler_props, const gchar * decoder_props,
    const gchar * q)
{
  return g_strdup_printf ("appsrc name=src ! %s llmtokenizer model=\"%s\" ! "
      "%s llmencoder ! %s llmdecoder %s ! %s llmsampler name=sam %s ! %s "
      "llmdetokenizer ! %s appsink name=sink", q, model_dir, q, q,
      decoder_props, q, sampler_props, q, q);
}

/* What editors read through introspection is complete. */
GST_START_TEST (test_inspect_metadata)
{
  for (guint e = 0; e < G_N_ELEMENTS (elements); e++) {
    GstElementFactory *f = gst_element_factory_find (elements[e]);
    GstElement *el;
    GParamSpec **props;
    guint n;

    fail_unless (f != NULL, "no factory %s", elements[e]);
    for (guint k = 0; k < 4; k++) {
      const gchar *keys[] = { GST_ELEMENT_METADATA_LONGNAME,
        GST_ELEMENT_METADATA_KLASS, GST_ELEMENT_METADATA_DESCRIPTION,
        GST_ELEMENT_METADATA_AUTHOR
      };
      const gchar *v = gst_element_factory_get_metadata (f, keys[k]);
      fail_unless (v && *v, "%s has no %s", elements[e], keys[k]);
    }
    fail_unless_equals_int (gst_element_factory_get_num_pad_templates (f), 2);
    el = gst_element_factory_create (f, NULL);
    props = g_object_class_list_properties (G_OBJECT_GET_CLASS (el), &n);
    for (guint i = 0; i < n; i++) {
      const gchar *blurb = g_param_spec_get_blurb (props[i]);
      fail_unless (blurb && strlen (blurb) > 8, "%s::%s has no blurb",
          elements[e], props[i]->name);
      if (G_IS_PARAM_SPEC_UINT (props[i])) {
        GParamSpecUInt *p = G_PARAM_SPEC_UINT (props[i]);
        fail_unless (p->minimum <= p->default_value &&
            p->default_value <= p->maximum);
      } else if (G_IS_PARAM_SPEC_DOUBLE (props[i])) {
        GParamSpecDouble *p = G_PARAM_SPEC_DOUBLE (props[i]);
        fail_unless (p->minimum <= p->default_value &&
            p->default_value <= p->maximum);
      }
    }
    g_free (props);
    gst_object_unref (el);
    gst_object_unref (f);
  }
}

GST_END_TEST;

/* Every reference case: the text and the token ids, with and without
 * queues between the elements. */
static void
check_golden (const gchar * q)
{
  GPtrArray *cases = llm_golden_cases ();

  for (guint i = 0; i < cases->len; i++) {
    LlmGoldenCase *c = g_ptr_array_index (cases, i);
    gchar *desc = chain ("temperature=0", "max-tokens=120", q);
    LlmRunResult *r = llm_run_pipeline (desc, c->prompt);

    llm_check_golden (r, c, i);
    llm_run_result_free (r);
    g_free (desc);
  }
  g_ptr_array_unref (cases);
}

GST_START_TEST (test_golden)
{
  check_golden ("");
}

GST_END_TEST;

GST_START_TEST (test_golden_queues)
{
  check_golden ("queue !");
}

GST_END_TEST;

/* llmencoder kv-type: q8_0 on the CPU generates the greedy tokens of
 * core's forward over a Q8_0-rounded cache (llm_kv_cache_set_rounding),
 * the loop first checked against generate.json with the F32 cache; f16
 * on the CPU is an element error that says why. */
static GArray *
greedy_core (const LlmModelFile * mf, const GArray * prompt, guint n,
    gboolean q8_0)
{
  g_autoptr (LlmCompute) c = llm_compute_new (mf, 1);
  g_autoptr (LlmKvCache) kv = llm_compute_kv_cache_new_typed (c, 256,
      q8_0 ? LLM_KV_Q8_0 : LLM_KV_F32, NULL);
  g_autofree float *h = g_new (float, mf->hp.dim);
  g_autofree float *l = g_new (float, mf->hp.n_vocab);
  GArray *out = g_array_new (FALSE, FALSE, sizeof (gint32));
  GError *err = NULL;
  gint32 next;

  fail_unless (kv != NULL);
  fail_unless (llm_compute_forward (c, kv, &g_array_index (prompt, gint32,
              0), prompt->len, h, &err), "%s", err ? err->message : "");
  while (out->len < n) {
    llm_compute_logits (c, h, l);
    next = 0;
    for (guint i = 1; i < mf->hp.n_vocab; i++)
      next = l[i] > l[next] ? (gint32) i : next;
    g_array_append_val (out, next);
    fail_unless (llm_compute_forward (c, kv, &next, 1, h, &err), "%s",
        err ? err->message : "");
  }
  return out;
}

GST_START_TEST (test_kv_type)
{
  GPtrArray *cases = llm_golden_cases ();
  LlmGoldenCase *gc = g_ptr_array_index (cases, 0);
  guint n = gc->greedy_ids->len, n_diff = 0;
  GError *err = NULL;
  LlmModelFile *mf = llm_model_file_load (model_dir, NULL, NULL, &err);
  GArray *prompt, *f32, *q8;
  gchar *desc;
  LlmRunResult *r;

  fail_unless (mf != NULL, "%s", err ? err->message : "");
  prompt = llm_vocab_encode (mf->vocab, gc->prompt, -1, TRUE, &err);
  fail_unless (prompt != NULL, "%s", err ? err->message : "");
  f32 = greedy_core (mf, prompt, n, FALSE);
  for (guint t = 0; t < n; t++)
    fail_unless_equals_int (g_array_index (f32, gint32, t),
        g_array_index (gc->greedy_ids, gint32, t));
  q8 = greedy_core (mf, prompt, n, TRUE);
  for (guint t = 0; t < n; t++)
    n_diff += g_array_index (q8, gint32, t) != g_array_index (f32, gint32, t);

  desc = g_strdup_printf ("appsrc name=src ! llmtokenizer model=\"%s\" ! "
      "llmencoder kv-type=q8_0 ! llmdecoder max-tokens=%u ! llmsampler "
      "name=sam temperature=0 ! llmdetokenizer ! appsink name=sink",
      model_dir, n);
  r = llm_run_pipeline (desc, gc->prompt);
  fail_unless (r->error == NULL, "%s", r->error);
  fail_unless (r->tokens->len > 0 && r->tokens->len <= n, "%u tokens",
      r->tokens->len);
  for (guint t = 0; t < r->tokens->len; t++)
    fail_unless_equals_int (g_array_index (r->tokens, gint32, t),
        g_array_index (q8, gint32, t));
  g_print ("kv-type=q8_0: %u tokens as core's Q8_0-rounded forward; %u of "
      "%u greedy tokens differ from the F32 cache's\n", r->tokens->len,
      n_diff, n);
  llm_run_result_free (r);
  g_free (desc);

  desc = g_strdup_printf ("appsrc name=src ! llmtokenizer model=\"%s\" ! "
      "llmencoder kv-type=f16 device=cpu ! llmdecoder ! llmsampler ! "
      "llmdetokenizer ! appsink name=sink", model_dir);
  r = llm_run_pipeline (desc, gc->prompt);
  fail_unless (r->error != NULL && strstr (r->error, "F16") != NULL &&
      strstr (r->error, "GPU") != NULL, "%s", r->error);
  llm_run_result_free (r);
  g_free (desc);

  g_array_unref (prompt);
  g_array_unref (f32);
  g_array_unref (q8);
  llm_model_file_free (mf);
  g_ptr_array_unref (cases);
}

GST_END_TEST;

/* A tokenizer of another vocabulary cannot feed this model's encoder; the
 * error names both vocabularies. */
GST_START_TEST (test_vocab_mismatch)
{
  GError *err = NULL;
  LlmModelFile *mf = llm_model_file_load (model_dir, NULL, NULL, &err);
  gchar *tmp = llm_test_tmpdir ();
  gchar *other = g_build_filename (tmp, "other-vocab.gguf", NULL);
  LlmVocab *va, *vb;
  gchar *desc;
  LlmRunResult *r;

  fail_unless (mf != NULL, "%s", err ? err->message : "");
  /* The same weights and pieces, one token of another type: another
   * vocabulary as far as the fingerprint is concerned. */
  mf->vocab->types[400] = LLM_TOKEN_USER_DEFINED;
  fail_unless (llm_model_file_write_gguf (mf, other, LLM_DTYPE_F32, NULL,
          NULL, &err), "%s", err ? err->message : "");
  llm_model_file_free (mf);

  va = llm_vocab_new_from_path (other, &err);
  vb = llm_vocab_new_from_path (model_dir, &err);
  fail_unless (va && vb);
  fail_if (g_str_equal (va->fingerprint, vb->fingerprint));

  desc = g_strdup_printf ("appsrc name=src ! llmtokenizer model=\"%s\" ! "
      "llmencoder model=\"%s\" ! llmdecoder ! llmsampler ! llmdetokenizer ! "
      "appsink name=sink", other, model_dir);
  r = llm_run_pipeline (desc, "Once upon a time");
  fail_unless (r->error != NULL, "the pipeline ran");
  fail_unless (strstr (r->error, va->fingerprint) != NULL, "%s", r->error);
  fail_unless (strstr (r->error, vb->fingerprint) != NULL, "%s", r->error);
  fail_unless_equals_int (r->tokens->len, 0);

  llm_run_result_free (r);
  llm_vocab_free (va);
  llm_vocab_free (vb);
  g_free (desc);
  g_unlink (other);
  g_rmdir (tmp);
  g_free (other);
  g_free (tmp);
}

GST_END_TEST;

/* prompt-mode=line: each line is a prompt, continuations in order, also
 * when several are decoded together. */
static void
check_lines (const gchar * decoder_props)
{
  GPtrArray *cases = llm_golden_cases ();
  GString *prompt = g_string_new (NULL), *expect = g_string_new (NULL);
  gchar *desc;
  LlmRunResult *r;

  /* Non-empty prompts only: an empty line is not a prompt. */
  for (guint i = 0; i < cases->len; i++) {
    LlmGoldenCase *c = g_ptr_array_index (cases, i);
    if (*c->prompt == '\0')
      continue;
    g_string_append_printf (prompt, "%s\n", c->prompt);
    g_string_append_printf (expect, "%s\n", c->continuation);
  }
  desc = g_strdup_printf ("appsrc name=src ! llmtokenizer model=\"%s\" "
      "prompt-mode=line ! llmencoder ! llmdecoder max-tokens=120 %s ! "
      "llmsampler name=sam temperature=0 ! llmdetokenizer separator=\"\\\\n\" "
      "! appsink name=sink", model_dir, decoder_props);
  r = llm_run_pipeline (desc, prompt->str);
  fail_unless (r->error == NULL, "%s", r->error);
  fail_unless_equals_string (r->text->str, expect->str);
  llm_run_result_free (r);
  g_free (desc);
  g_string_free (prompt, TRUE);
  g_string_free (expect, TRUE);
  g_ptr_array_unref (cases);
}

GST_START_TEST (test_prompt_lines)
{
  check_lines ("");
}

GST_END_TEST;

GST_START_TEST (test_prompt_lines_batched)
{
  check_lines ("max-batch=4");
}

GST_END_TEST;

static gchar *
generate (const gchar * sampler_props, const gchar * prompt)
{
  gchar *desc = chain (sampler_props, "max-tokens=60", "");
  LlmRunResult *r = llm_run_pipeline (desc, prompt);
  gchar *text;

  fail_unless (r->error == NULL, "%s", r->error);
  text = g_strdup (r->text->str);
  llm_run_result_free (r);
  g_free (desc);
  return text;
}

GST_START_TEST (test_same_seed_same_text)
{
  gchar *a = generate ("temperature=1.0 top-k=0 top-p=1 min-p=0 seed=42",
      "Once upon a time");
  gchar *b = generate ("temperature=1.0 top-k=0 top-p=1 min-p=0 seed=42",
      "Once upon a time");
  gchar *c = generate ("temperature=1.0 top-k=0 top-p=1 min-p=0 seed=7",
      "Once upon a time");

  fail_unless (strlen (a) > 20);
  fail_unless_equals_string (a, b);
  /* Another seed gives another story (at temperature 1, 60 tokens). */
  fail_if (g_str_equal (a, c));
  g_free (a);
  g_free (b);
  g_free (c);
}

GST_END_TEST;

GST_START_TEST (test_top_k_1_is_greedy)
{
  gchar *greedy = generate ("temperature=0", "Lily and Ben went to the park");
  gchar *topk = generate ("temperature=1.5 top-k=1 seed=3",
      "Lily and Ben went to the park");

  fail_unless_equals_string (topk, greedy);
  g_free (greedy);
  g_free (topk);
}

GST_END_TEST;

GST_START_TEST (test_stop_string)
{
  GPtrArray *cases = llm_golden_cases ();
  LlmGoldenCase *c = g_ptr_array_index (cases, 0);
  const gchar *cut = strstr (c->continuation, "Lily");
  gchar *desc, *expect;
  LlmRunResult *r;

  fail_unless (cut != NULL);
  expect = g_strndup (c->continuation, cut - c->continuation);
  desc = g_strdup_printf ("appsrc name=src ! llmtokenizer model=\"%s\" ! "
      "llmencoder ! llmdecoder max-tokens=120 ! llmsampler name=sam "
      "temperature=0 ! llmdetokenizer stop-strings=\"<\\\"Lily\\\">\" ! "
      "appsink name=sink", model_dir);
  r = llm_run_pipeline (desc, c->prompt);
  fail_unless (r->error == NULL, "%s", r->error);
  fail_unless_equals_string (r->text->str, expect);
  /* The decoder stopped soon after, not at max-tokens. */
  fail_unless (r->tokens->len < 20, "%u tokens", r->tokens->len);
  llm_run_result_free (r);
  g_free (desc);
  g_free (expect);
  g_ptr_array_unref (cases);
}

GST_END_TEST;

GST_START_TEST (test_max_tokens)
{
  gchar *desc = chain ("temperature=0", "max-tokens=7", "");
  LlmRunResult *r = llm_run_pipeline (desc, "Once upon a time");
  GPtrArray *cases = llm_golden_cases ();
  LlmGoldenCase *c = g_ptr_array_index (cases, 0);

  fail_unless (r->error == NULL, "%s", r->error);
  fail_unless_equals_int (r->tokens->len, 7);
  for (guint t = 0; t < 7; t++)
    fail_unless_equals_int (g_array_index (r->tokens, gint32, t),
        g_array_index (c->greedy_ids, gint32, t));
  llm_run_result_free (r);
  g_free (desc);
  g_ptr_array_unref (cases);
}

GST_END_TEST;

GST_START_TEST (test_bad_model_path)
{
  LlmRunResult *r = llm_run_pipeline ("appsrc name=src ! "
      "llmtokenizer model=/nonexistent/model.gguf ! llmencoder ! llmdecoder ! "
      "llmsampler ! llmdetokenizer ! appsink name=sink", "hello");

  fail_unless (r->error != NULL);
  fail_unless (strstr (r->error, "/nonexistent/model.gguf") != NULL, "%s",
      r->error);
  llm_run_result_free (r);
}

GST_END_TEST;

GST_START_TEST (test_no_model)
{
  LlmRunResult *r = llm_run_pipeline ("appsrc name=src ! llmtokenizer ! "
      "llmencoder ! llmdecoder ! llmsampler ! llmdetokenizer ! "
      "appsink name=sink", "hello");

  fail_unless (r->error != NULL);
  fail_unless (strstr (r->error, "No model") != NULL, "%s", r->error);
  llm_run_result_free (r);
}

GST_END_TEST;

/* The 300 strings of reference/tokenize.json through llmtokenizer itself
 * (one prompt per buffer, no special tokens) give the reference ids. */
GST_START_TEST (test_tokenizer_element_reference)
{
  gchar *path = llm_test_model_file ("stories260K", "reference/tokenize.json");
  gchar *launch = g_strdup_printf ("llmtokenizer model=\"%s\" "
      "prompt-mode=buffer add-special=false", model_dir);
  JsonParser *parser = json_parser_new ();
  GstHarness *h;
  JsonArray *cases;

  fail_unless (json_parser_load_from_file (parser, path, NULL));
  cases = json_object_get_array_member (json_node_get_object
      (json_parser_get_root (parser)), "cases");
  fail_unless_equals_int (json_array_get_length (cases), 300);
  h = gst_harness_new_parse (launch);
  gst_harness_set_src_caps_str (h, "text/x-raw, format=utf8");
  for (guint i = 0; i < json_array_get_length (cases); i++) {
    JsonObject *o = json_array_get_object_element (cases, i);
    const gchar *text = json_object_get_string_member (o, "text");
    JsonArray *ids = json_object_get_array_member (o, "ids");
    GstBuffer *out;
    GstMapInfo map;

    fail_unless_equals_int (gst_harness_push (h,
            gst_buffer_new_memdup (text, strlen (text))), GST_FLOW_OK);
    out = gst_harness_pull (h);
    gst_buffer_map (out, &map, GST_MAP_READ);
    fail_unless_equals_int (map.size / sizeof (gint32),
        json_array_get_length (ids));
    for (guint t = 0; t < json_array_get_length (ids); t++)
      fail_unless_equals_int (((gint32 *) map.data)[t],
          json_array_get_int_element (ids, t));
    gst_buffer_unmap (out, &map);
    gst_buffer_unref (out);
  }
  gst_harness_teardown (h);
  g_object_unref (parser);
  g_free (launch);
  g_free (path);
}

GST_END_TEST;

/* Invalid UTF-8 in a prompt: an element error that says where. */
GST_START_TEST (test_invalid_utf8)
{
  gchar *desc = g_strdup_printf ("appsrc name=src ! llmtokenizer "
      "model=\"%s\" ! llmencoder ! llmdecoder ! llmsampler ! llmdetokenizer "
      "! appsink name=sink", model_dir);
  LlmRunResult *r = llm_run_pipeline (desc, "ab\xff\xfe");

  g_free (desc);
  fail_unless (r->error != NULL);
  fail_unless (strstr (r->error, "UTF-8") != NULL, "%s", r->error);
  fail_unless (strstr (r->error, "byte 2") != NULL, "%s", r->error);
  llm_run_result_free (r);
}

GST_END_TEST;

/* llmdecoder offers, and llmsampler accepts, logits in device memory
 * (memory:CUDATensor, first) and in system memory; queue and identity
 * pass the feature on, a capsfilter of plain logits caps keeps system
 * memory only. (The device path itself needs a GPU:
 * tests/test-cuda-forward.c.) */
GST_START_TEST (test_logits_caps_device_variant)
{
  const gchar *templ[][2] = { {"llmdecoder", "src"}, {"llmsampler", "sink"} };
  const gchar *between[] = { "queue", "identity", "queue ! identity",
    "capsfilter caps=application/x-llm-logits"
  };
  GstCaps *offer = llm_caps_add_device_variant (gst_caps_from_string
      (LLM_MEDIA_LOGITS ", vocab-size=(int)512, dtype=(string)F32, "
          "batch=(int)1"));

  for (guint i = 0; i < G_N_ELEMENTS (templ); i++) {
    GstElement *el = gst_element_factory_make (templ[i][0], NULL);
    GstPad *pad = gst_element_get_static_pad (el, templ[i][1]);
    GstCaps *caps = gst_pad_get_pad_template_caps (pad);

    fail_unless_equals_int (gst_caps_get_size (caps), 2);
    fail_unless (llm_caps_is_device (caps), "%s: device memory not first",
        templ[i][0]);
    fail_unless (gst_caps_features_is_equal (gst_caps_get_features (caps, 1),
            GST_CAPS_FEATURES_MEMORY_SYSTEM_MEMORY));
    fail_unless_equals_string (gst_structure_get_name
        (gst_caps_get_structure (caps, 1)), LLM_MEDIA_LOGITS);
    /* before negotiation the src pad's query answers the template */
    gst_caps_unref (caps);
    caps = gst_pad_query_caps (pad, NULL);
    fail_unless (llm_caps_is_device (caps) && gst_caps_get_size (caps) == 2);
    gst_caps_unref (caps);
    gst_object_unref (pad);
    gst_object_unref (el);
  }

  for (guint i = 0; i < G_N_ELEMENTS (between); i++) {
    g_autofree gchar *desc = g_strdup_printf ("%s name=first ! llmsampler",
        between[i]);
    GstElement *bin = gst_parse_bin_from_description (desc, FALSE, NULL);
    GstElement *first = gst_bin_get_by_name (GST_BIN (bin), "first");
    GstPad *sink = gst_element_get_static_pad (first, "sink");
    GstCaps *got = gst_pad_query_caps (sink, offer);
    gboolean forced = g_str_has_prefix (between[i], "capsfilter");
    gchar *str = gst_caps_to_string (got);

    fail_if (gst_caps_is_empty (got), "%s: nothing accepted", between[i]);
    fail_unless (llm_caps_is_device (got) == !forced, "%s: %s", between[i],
        str);
    g_free (str);
    gst_caps_unref (got);
    gst_object_unref (sink);
    gst_object_unref (first);
    gst_object_unref (bin);
  }
  gst_caps_unref (offer);
}

GST_END_TEST;

static Suite *
elements_suite (void)
{
  Suite *s = suite_create ("elements");
  TCase *tc = tcase_create ("general");

  model_dir = llm_test_model_dir ("stories260K");
  tcase_set_timeout (tc, 300);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_inspect_metadata);
  tcase_add_test (tc, test_golden);
  tcase_add_test (tc, test_golden_queues);
  tcase_add_test (tc, test_vocab_mismatch);
  tcase_add_test (tc, test_prompt_lines);
  tcase_add_test (tc, test_prompt_lines_batched);
  tcase_add_test (tc, test_same_seed_same_text);
  tcase_add_test (tc, test_top_k_1_is_greedy);
  tcase_add_test (tc, test_stop_string);
  tcase_add_test (tc, test_max_tokens);
  tcase_add_test (tc, test_bad_model_path);
  tcase_add_test (tc, test_no_model);
  tcase_add_test (tc, test_tokenizer_element_reference);
  tcase_add_test (tc, test_invalid_utf8);
  tcase_add_test (tc, test_logits_caps_device_variant);
  tcase_add_test (tc, test_kv_type);
  return s;
}

GST_CHECK_MAIN (elements);
