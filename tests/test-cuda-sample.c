/* LLMasOS - llm_cuda_sample() against the CPU sampler.
 *
 * Random logits (vocabularies of 1 to 262144, 1 and 4 rows, rows with
 * NaN / inf and rows with many ties), many parameter settings and coins:
 * the GPU must choose the id llm_sampler_sample_with_coin() chooses with
 * the same coin on at least 99.9 % of the rows, and every row where the
 * two differ must be explained by rounding, checked against an
 * independent long-double reference: either the coin lies within 1e-6 of
 * the total weight of the cumulative weight at the boundary between the
 * two ids (and the kept weight between them is below that too), or the
 * top-p target lies that close to a cumulative weight (the nucleus
 * itself is then a matter of rounding). Greedy and top-k 1 must agree on
 * every row. A chi-square test checks the GPU's distribution over 8000
 * coins.
 *
 * Without a usable GPU the program says why and exits 77 (meson: SKIP).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <gst/check/gstcheck.h>
#include <math.h>
#include <string.h>

#include "llm-cuda.h"
#include "llm-sampler.h"
#include "test-cuda-common.h"

/* 0.999 quantile of chi-square with 11 degrees of freedom (as in
 * tests/test-sampler.c). */
#define CHI2_999_DF11 31.264134
#define ROUNDING 1e-6


typedef struct
{
  float temperature;
  guint top_k;
  float top_p;
  float min_p;
} Setting;

static const Setting settings[] = {
  {0.0f, 0, 1.0f, 0.0f},        /* greedy */
  {1.0f, 0, 1.0f, 0.0f},        /* plain softmax, id order */
  {0.8f, 40, 0.95f, 0.0f},
  {1.0f, 0, 0.95f, 0.0f},       /* top-p only */
  {0.7f, 0, 1.0f, 0.05f},       /* min-p only */
  {1.3f, 100, 0.8f, 0.02f},
  {1.0f, 1, 1.0f, 0.0f},        /* top-k 1: greedy */
  {0.6f, 5000, 0.9f, 0.0f},     /* a large k */
  {1.0f, 0, 0.5f, 0.1f},
  {2.0f, 0, 0.0f, 0.0f},        /* top-p 0: the best only */
  {1e-3f, 20, 1.0f, 0.0f},
  {1.0f, 7, 1.0f, 1.0f},        /* min-p 1: the ties of the best */
};

/* Row kinds: 0 uniform, 1 wider, 2 with NaN / +-inf, 3 ties (steps of
 * 0.25 on a narrow range). */
static void
fill_row (float *x, guint n, guint kind)
{
  for (guint i = 0; i < n; i++) {
    double v = g_rand_double_range (rng, -8.0, 8.0);

    switch (kind % 4) {
      case 1:
        v *= 3.0;
        break;
      case 2:
        if (g_rand_int_range (rng, 0, 50) == 0)
          v = NAN;
        else if (g_rand_int_range (rng, 0, 50) == 0)
          v = -INFINITY;
        break;
      case 3:
        v = floor (v / 2.0) * 0.25;
        break;
    }
    x[i] = (float) v;
  }
  if (kind % 4 == 2 && n > 10 && g_rand_boolean (rng))
    x[g_rand_int_range (rng, 0, n)] = INFINITY;
}

/* --- the long-double reference, for explaining disagreements --- */

typedef struct
{
  gint32 id;
  float l;
  long double w;
} Ref;

static int
ref_better_first (const void *pa, const void *pb)
{
  const Ref *a = pa, *b = pb;

  if (a->l != b->l)
    return a->l > b->l ? -1 : 1;
  return a->id < b->id ? -1 : 1;
}

static int
ref_by_id (const void *pa, const void *pb)
{
  return ((const Ref *) pa)->id - ((const Ref *) pb)->id;
}

/* Asserts that the CPU's @want and the GPU's @got (different) are
 * neighbours in the cumulative weights of the draw, within ROUNDING of the
 * total weight, or that the top-p nucleus is a matter of rounding. */
static void
check_straddle (const float *x, guint n, const Setting * st, double coin,
    gint32 want, gint32 got, const gchar * where)
{
  Ref *c = g_new (Ref, n);
  guint kept = n, i;
  long double sum = 0.0L, target, acc = 0.0L, total = 0.0L, u, tol;
  gboolean nucleus_close = FALSE, top_k_on = st->top_k > 0 && st->top_k < n;
  long double cum_want = -1, cum_got = -1, w_want = 0, w_got = 0;

  fail_unless (st->temperature > 0.0f, "%s: greedy differs: GPU %d, CPU %d",
      where, got, want);
  for (i = 0; i < n; i++) {
    float l = x[i];

    if (isnan (l))
      l = -INFINITY;
    else if (l == INFINITY)
      l = G_MAXFLOAT;
    c[i].id = i;
    c[i].l = l == 0.0f ? 0.0f : l;
  }
  qsort (c, n, sizeof (Ref), ref_better_first);
  if (top_k_on)
    kept = st->top_k;
  for (i = 0; i < kept; i++) {
    c[i].w = expl (((long double) c[i].l - c[0].l) / st->temperature);
    sum += c[i].w;
  }
  if (st->top_p < 1.0f) {
    target = st->top_p * sum;
    for (i = 0; i < kept; i++) {
      long double before = acc;

      acc += c[i].w;
      if (fabsl (acc - target) <= ROUNDING * sum
          || fabsl (before - target) <= ROUNDING * sum)
        nucleus_close = TRUE;
      if (acc >= target) {
        kept = i + 1;
        break;
      }
    }
  }
  if (nucleus_close) {
    GST_INFO ("%s: GPU %d, CPU %d: the top-p boundary is within rounding",
        where, got, want);
    g_free (c);
    return;
  }
  {
    guint k2 = 0;

    for (i = 0; i < kept; i++)
      if (c[i].w >= st->min_p)
        c[k2++] = c[i];
    kept = k2;
  }
  if (!top_k_on)
    qsort (c, kept, sizeof (Ref), ref_by_id);
  for (i = 0; i < kept; i++)
    total += c[i].w;
  u = coin * total;
  tol = ROUNDING * total;
  acc = 0.0L;
  for (i = 0; i < kept; i++) {
    acc += c[i].w;
    if (c[i].id == want) {
      cum_want = acc;
      w_want = c[i].w;
    }
    if (c[i].id == got) {
      cum_got = acc;
      w_got = c[i].w;
    }
  }
  fail_unless (cum_want >= 0 && cum_got >= 0,
      "%s: GPU %d or CPU %d is not a kept candidate", where, got, want);
  {
    /* The earlier one ends where the later one starts, and u is there. */
    long double end_first = MIN (cum_want, cum_got);
    long double start_second = MAX (cum_want - w_want, cum_got - w_got);

    fail_unless (fabsl (start_second - end_first) <= tol
        && fabsl (u - end_first) <= tol,
        "%s: GPU %d and CPU %d are not neighbours at u = %.17Lg "
        "(boundary %.17Lg, gap %.3Lg, total %.17Lg)", where, got, want, u,
        end_first, start_second - end_first, total);
  }
  GST_INFO ("%s: GPU %d, CPU %d straddle u within rounding", where, got,
      want);
  g_free (c);
}

GST_START_TEST (test_sample_vs_cpu)
{
  static const guint vocabs[] = { 1, 7, 1000, 32000, 128256, 262144 };
  static const guint row_counts[] = { 1, 4 };
  const guint n_coin_sets = 6;
  guint total = 0, same = 0, exact_total = 0;

  for (guint v = 0; v < G_N_ELEMENTS (vocabs); v++) {
    for (guint rc = 0; rc < G_N_ELEMENTS (row_counts); rc++) {
      guint n = vocabs[v], rows = row_counts[rc];
      float *x = g_new (float, (gsize) n * rows);
      gsize scratch_bytes = llm_cuda_sample_scratch_bytes (n, rows);
      gpointer dx = dev_alloc ((gsize) n * rows * sizeof (float));
      gpointer dids = dev_alloc (rows * sizeof (gint32));
      gpointer dcoins = dev_alloc (rows * sizeof (double));
      gpointer dscratch = dev_alloc (scratch_bytes);

      for (guint r = 0; r < rows; r++)
        fill_row (x + (gsize) r * n, n, rows == 1 ? v : r);
      upload (dx, x, (gsize) n * rows * sizeof (float));

      for (guint si = 0; si < G_N_ELEMENTS (settings); si++) {
        const Setting *st = &settings[si];
        LlmSamplerParams p;
        g_autoptr (LlmSampler) cpu = NULL;
        gboolean exact = st->temperature <= 0.0f || st->top_k == 1
            || st->top_p <= 0.0f;

        llm_sampler_params_init (&p);
        p.temperature = st->temperature;
        p.top_k = st->top_k;
        p.top_p = st->top_p;
        p.min_p = st->min_p;
        cpu = llm_sampler_new (&p, n);

        for (guint cs = 0; cs < n_coin_sets; cs++) {
          double coins[4];
          gint32 ids[4];

          for (guint r = 0; r < rows; r++)
            coins[r] = cs == 0 ? 0.0 : cs == 1 ? 1.0 - 1e-12 :
                g_rand_double (rng);
          upload (dcoins, coins, rows * sizeof (double));
          memset (ids, 0xff, sizeof (ids));
          llm_cuda_sample (dids, dx, n, rows, st->temperature, st->top_k,
              st->top_p, st->min_p, st->temperature > 0 ? dcoins : NULL,
              dscratch, stream);
          to_host (ids, dids, rows * sizeof (gint32));

          for (guint r = 0; r < rows; r++) {
            const float *xr = x + (gsize) r * n;
            gint32 want = llm_sampler_sample_with_coin (cpu, xr, coins[r]);
            gchar *where;

            fail_unless (ids[r] >= 0 && (guint) ids[r] < n,
                "vocab %u row %u setting %u: id %d", n, r, si, ids[r]);
            total++;
            if (ids[r] == want) {
              same++;
              exact_total += exact;
              continue;
            }
            where = g_strdup_printf ("vocab %u, row %u of %u, setting %u, "
                "coin %.17g", n, r, rows, si, coins[r]);
            fail_if (exact, "%s: GPU %d, CPU %d", where, ids[r], want);
            check_straddle (xr, n, st, coins[r], want, ids[r], where);
            g_free (where);
          }
        }
      }
      llm_cuda_free (dx);
      llm_cuda_free (dids);
      llm_cuda_free (dcoins);
      llm_cuda_free (dscratch);
      g_free (x);
    }
  }
  g_print ("sample: %u of %u rows the same id as the CPU (%u greedy-like, "
      "all exact)\n", same, total, exact_total);
  fail_unless (same >= 0.999 * total, "only %u of %u agree", same, total);
}

GST_END_TEST;

/* 8000 rows of the same 12 logits with 8000 random coins: the counts
 * follow the softmax (chi-square below the 0.999 quantile), and not the
 * softmax at temperature 2. */
GST_START_TEST (test_sample_chi_square)
{
  static const float dist12[] = {
    2.6f, 2.3f, 1.9f, 1.5f, 1.2f, 0.8f, 0.5f, 0.1f, -0.3f, -0.6f, -1.0f,
    -1.4f
  };
  const guint n = G_N_ELEMENTS (dist12), rows = 8000;
  float *x = g_new (float, (gsize) n * rows);
  double *coins = g_new (double, rows);
  gint32 *ids = g_new (gint32, rows);
  guint counts[12] = { 0 };
  double p1[12], p2[12], s1 = 0.0, s2 = 0.0, stat = 0.0, stat2 = 0.0;
  gpointer dx, dids, dcoins, dscratch;

  for (guint r = 0; r < rows; r++) {
    memcpy (x + (gsize) r * n, dist12, sizeof (dist12));
    coins[r] = g_rand_double (rng);
  }
  dx = dev_alloc ((gsize) n * rows * sizeof (float));
  dids = dev_alloc (rows * sizeof (gint32));
  dcoins = dev_alloc (rows * sizeof (double));
  dscratch = dev_alloc (llm_cuda_sample_scratch_bytes (n, rows));
  upload (dx, x, (gsize) n * rows * sizeof (float));
  upload (dcoins, coins, rows * sizeof (double));
  llm_cuda_sample (dids, dx, n, rows, 1.0f, 0, 1.0f, 0.0f, dcoins, dscratch,
      stream);
  to_host (ids, dids, rows * sizeof (gint32));
  for (guint r = 0; r < rows; r++) {
    fail_unless (ids[r] >= 0 && (guint) ids[r] < n);
    counts[ids[r]]++;
  }
  for (guint i = 0; i < n; i++) {
    p1[i] = exp (dist12[i] - dist12[0]);
    p2[i] = exp ((dist12[i] - dist12[0]) / 2.0);
    s1 += p1[i];
    s2 += p2[i];
  }
  for (guint i = 0; i < n; i++) {
    double e1 = p1[i] / s1 * rows, e2 = p2[i] / s2 * rows;

    stat += (counts[i] - e1) * (counts[i] - e1) / e1;
    stat2 += (counts[i] - e2) * (counts[i] - e2) / e2;
  }
  g_print ("sample: chi-square %.2f over 8000 coins (df 11, 0.999 quantile "
      "%.2f); against T=2: %.1f\n", stat, CHI2_999_DF11, stat2);
  fail_unless (stat < CHI2_999_DF11, "chi-square %f", stat);
  fail_unless (stat2 > 10 * CHI2_999_DF11, "no power: %f", stat2);
  llm_cuda_free (dx);
  llm_cuda_free (dids);
  llm_cuda_free (dcoins);
  llm_cuda_free (dscratch);
  g_free (x);
  g_free (coins);
  g_free (ids);
}

GST_END_TEST;

static Suite *
cuda_sample_suite (void)
{
  Suite *s;
  TCase *tc;
  LlmCudaDeviceInfo info;

  cuda_test_setup (20240611, &info);
  g_print ("device: %s\n", info.name);
  s = suite_create ("cuda-sample");
  tc = tcase_create ("sample");
  tcase_set_timeout (tc, 300);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_sample_vs_cpu);
  tcase_add_test (tc, test_sample_chi_square);
  return s;
}

GST_CHECK_MAIN (cuda_sample);
