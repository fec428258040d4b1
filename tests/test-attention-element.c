/* llmattention used alone: q, k, v in a harness against a naive attention
 * written here, causal and not, with grouped-query heads.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <math.h>

/* out[t][h][d] = sum_s softmax_s(q[t][h]·k[s][h/g] / sqrt(D)) v[s][h/g][d] */
static void
naive_attention (double *out, const float *q, const float *k, const float *v,
    guint T, guint H, guint KV, guint D, gboolean causal)
{
  guint g = H / KV;
  double *w = g_new (double, T);

  for (guint t = 0; t < T; t++)
    for (guint h = 0; h < H; h++) {
      guint kvh = h / g, last = causal ? t : T - 1;
      double mx = -INFINITY, sum = 0;

      for (guint s = 0; s <= last; s++) {
        double dot = 0;
        for (guint d = 0; d < D; d++)
          dot += (double) q[(t * H + h) * D + d] * k[(s * KV + kvh) * D + d];
        w[s] = dot / sqrt (D);
        mx = MAX (mx, w[s]);
      }
      for (guint s = 0; s <= last; s++)
        sum += (w[s] = exp (w[s] - mx));
      for (guint d = 0; d < D; d++) {
        double acc = 0;
        for (guint s = 0; s <= last; s++)
          acc += w[s] / sum * v[(s * KV + kvh) * D + d];
        out[(t * H + h) * D + d] = acc;
      }
    }
  g_free (w);
}

static GstMemory *
random_memory (GRand * rand, guint n, float **data)
{
  float *f = g_new (float, n);

  for (guint i = 0; i < n; i++)
    f[i] = g_rand_double_range (rand, -2.0, 2.0);
  *data = f;
  gpointer copy = g_memdup2 (f, n * sizeof (float));

  return gst_memory_new_wrapped (0, copy, n * sizeof (float), 0,
      n * sizeof (float), copy, g_free);
}

static void
check_shape (guint T, guint H, guint KV, guint D, gboolean causal)
{
  GstHarness *h = gst_harness_new_parse (causal ? "llmattention causal=true"
      : "llmattention causal=false");
  GRand *rand = g_rand_new_with_seed (T * 1000 + H * 100 + KV * 10 + D);
  gchar *caps = g_strdup_printf ("application/x-llm-tensor, dtype=F32, "
      "layout=qkv, heads=%u, kv-heads=%u, head-dim=%u", H, KV, D);
  float *q, *k, *v;
  double *ref = g_new (double, T * H * D);
  GstBuffer *in = gst_buffer_new (), *out;
  GstMapInfo map;
  double err = 0, norm = 0;

  gst_harness_set_src_caps_str (h, caps);
  gst_buffer_append_memory (in, random_memory (rand, T * H * D, &q));
  gst_buffer_append_memory (in, random_memory (rand, T * KV * D, &k));
  gst_buffer_append_memory (in, random_memory (rand, T * KV * D, &v));
  naive_attention (ref, q, k, v, T, H, KV, D, causal);

  out = gst_harness_push_and_pull (h, in);
  fail_unless (out != NULL);
  gst_buffer_map (out, &map, GST_MAP_READ);
  fail_unless_equals_uint64 (map.size, T * H * D * sizeof (float));
  for (guint i = 0; i < T * H * D; i++) {
    double d = ((float *) map.data)[i] - ref[i];
    err += d * d;
    norm += ref[i] * ref[i];
  }
  fail_unless (sqrt (err / norm) < 1e-5, "T=%u H=%u KV=%u D=%u causal=%d: "
      "relative error %g", T, H, KV, D, causal, sqrt (err / norm));
  gst_buffer_unmap (out, &map);
  gst_buffer_unref (out);

  g_free (q);
  g_free (k);
  g_free (v);
  g_free (ref);
  g_free (caps);
  g_rand_free (rand);
  gst_harness_teardown (h);
}

GST_START_TEST (test_causal_gqa)
{
  check_shape (1, 1, 1, 1, TRUE);
  check_shape (7, 8, 4, 8, TRUE);       /* stories260K's heads */
  check_shape (33, 12, 3, 16, TRUE);
  check_shape (65, 4, 1, 64, TRUE);     /* one KV head (MQA) */
  check_shape (5, 6, 6, 5, TRUE);       /* no grouping, odd head size */
}

GST_END_TEST;

GST_START_TEST (test_full_attention)
{
  check_shape (9, 8, 2, 8, FALSE);
  check_shape (31, 4, 4, 12, FALSE);
}

GST_END_TEST;

GST_START_TEST (test_bad_input)
{
  GstHarness *h = gst_harness_new_parse ("llmattention");
  GstBuffer *in = gst_buffer_new_allocate (NULL, 64, NULL);

  gst_harness_set_src_caps_str (h, "application/x-llm-tensor, dtype=F32, "
      "layout=qkv, heads=8, kv-heads=4, head-dim=8");
  /* One memory instead of three: a flow error, not a crash. */
  fail_unless_equals_int (gst_harness_push (h, in), GST_FLOW_ERROR);
  gst_harness_teardown (h);
}

GST_END_TEST;

static Suite *
attention_suite (void)
{
  Suite *s = suite_create ("llmattention");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_causal_gqa);
  tcase_add_test (tc, test_full_attention);
  tcase_add_test (tc, test_bad_input);
  return s;
}

GST_CHECK_MAIN (attention);
