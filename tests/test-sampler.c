/* LLMasOS - tests of the token sampler.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <gst/check/gstcheck.h>
#include <math.h>
#include <string.h>

#include "llm-sampler.h"
#include "test-common.h"

/* A real-looking next-token distribution over 12 tokens, largest first.
 * At temperature 1 the smallest expected count over 4000 draws is 22, so
 * the chi-square approximation holds. */
static const float dist12[] = {
  2.6f, 2.3f, 1.9f, 1.5f, 1.2f, 0.8f, 0.5f, 0.1f, -0.3f, -0.6f, -1.0f, -1.4f
};

#define N_DIST12 G_N_ELEMENTS (dist12)
#define N_SEEDS 4000

/* 0.999 quantiles of the chi-square distribution for the degrees of
 * freedom used below, computed offline with mpmath (the same values as
 * scipy.stats.chi2.ppf (0.999, df)):
 * mp.findroot (lambda x: mp.gammainc (df / 2, 0, x / 2,
 *     regularized=True) - 0.999, (0.5, 6 * df + 20), solver='bisect') */
#define CHI2_999_DF4 18.466827
#define CHI2_999_DF6 22.457744
#define CHI2_999_DF11 31.264134

static LlmSamplerParams
params_with (gdouble temperature, guint top_k, gdouble top_p, gdouble min_p)
{
  LlmSamplerParams p;

  llm_sampler_params_init (&p);
  p.temperature = temperature;
  p.top_k = top_k;
  p.top_p = top_p;
  p.min_p = min_p;
  return p;
}

/* Reference argmax: the lowest id among the largest logits. */
static guint
ref_argmax (const float *logits, guint n)
{
  guint best = 0, i;

  for (i = 1; i < n; i++)
    if (logits[i] > logits[best])
      best = i;
  return best;
}

/* Reference softmax of logits / temperature, in double. */
static void
ref_softmax (const float *logits, guint n, gdouble temperature, gdouble * p)
{
  gdouble max = logits[ref_argmax (logits, n)], sum = 0.0;
  guint i;

  for (i = 0; i < n; i++) {
    p[i] = exp ((logits[i] - max) / temperature);
    sum += p[i];
  }
  for (i = 0; i < n; i++)
    p[i] /= sum;
}

static void
random_logits (GRand * rand, float *logits, guint n, gdouble scale)
{
  guint i;

  for (i = 0; i < n; i++)
    logits[i] = (float) g_rand_double_range (rand, -scale, scale);
}

/* Distinct logits: a random permutation of 0, 1e-3, 2e-3, ... */
static void
distinct_logits (GRand * rand, float *logits, guint n)
{
  guint i;

  for (i = 0; i < n; i++)
    logits[i] = (float) (i * 1e-3);
  for (i = n - 1; i > 0; i--) {
    guint j = g_rand_int_range (rand, 0, i + 1);
    float t = logits[i];

    logits[i] = logits[j];
    logits[j] = t;
  }
}

/* The first token of a fresh sampler for each seed 0 .. n_seeds - 1. */
static void
first_token_counts (const float *logits, guint n, const LlmSamplerParams * p,
    guint n_seeds, guint * counts)
{
  guint seed;

  memset (counts, 0, n * sizeof (guint));
  for (seed = 0; seed < n_seeds; seed++) {
    LlmSamplerParams ps = *p;
    g_autoptr (LlmSampler) s = NULL;
    gint32 id;

    ps.seed = seed;
    s = llm_sampler_new (&ps, n);
    id = llm_sampler_sample (s, logits);
    fail_unless (id >= 0 && (guint) id < n, "id %d out of range", id);
    counts[id]++;
  }
}

/* Pearson's statistic over the ids with expected[i] > 0; an id drawn
 * with expected probability 0 makes it infinite. */
static gdouble
chi_square (const guint * counts, const gdouble * expected, guint n,
    guint total)
{
  gdouble stat = 0.0;
  guint i;

  for (i = 0; i < n; i++) {
    gdouble e = expected[i] * total;

    if (e <= 0.0) {
      if (counts[i] > 0)
        return INFINITY;
      continue;
    }
    stat += (counts[i] - e) * (counts[i] - e) / e;
  }
  return stat;
}

/* Keeps the ids where keep[i] and renormalises @p over them. */
static void
restrict_to (gdouble * p, const gboolean * keep, guint n)
{
  gdouble sum = 0.0;
  guint i;

  for (i = 0; i < n; i++)
    sum += keep[i] ? p[i] : 0.0;
  for (i = 0; i < n; i++)
    p[i] = keep[i] ? p[i] / sum : 0.0;
}

/* Ids sorted by probability descending, lowest id first on ties. */
static const gdouble *sort_probs;

static gint
by_prob_desc (gconstpointer a, gconstpointer b)
{
  guint ia = *(const guint *) a, ib = *(const guint *) b;

  if (sort_probs[ia] != sort_probs[ib])
    return sort_probs[ia] > sort_probs[ib] ? -1 : 1;
  return ia < ib ? -1 : 1;
}

/* Reference nucleus: the smallest prefix of ids by probability whose
 * cumulative probability is >= top_p. Returns its size. */
static guint
ref_nucleus (const gdouble * p, guint n, gdouble top_p, gboolean * keep)
{
  guint *order = g_new (guint, n);
  gdouble acc = 0.0;
  guint i, size = n;

  for (i = 0; i < n; i++)
    order[i] = i;
  sort_probs = p;
  qsort (order, n, sizeof (guint), by_prob_desc);
  for (i = 0; i < n; i++)
    keep[i] = FALSE;
  for (i = 0; i < n; i++) {
    keep[order[i]] = TRUE;
    acc += p[order[i]];
    if (acc >= top_p) {
      size = i + 1;
      break;
    }
  }
  g_free (order);
  return size;
}

GST_START_TEST (test_defaults)
{
  LlmSamplerParams p;

  memset (&p, 0xab, sizeof (p));
  llm_sampler_params_init (&p);
  fail_unless_equals_float (p.temperature, 1.0);
  fail_unless_equals_int (p.top_k, 0);
  fail_unless_equals_float (p.top_p, 1.0);
  fail_unless_equals_float (p.min_p, 0.0);
  fail_unless_equals_float (p.repeat_penalty, 1.0);
  fail_unless_equals_int (p.repeat_last_n, 64);
  fail_unless_equals_uint64 (p.seed, 0);
}

GST_END_TEST;

/* Temperature 0 is the argmax, lowest id on ties; logits are untouched. */
GST_START_TEST (test_greedy_is_argmax)
{
  const guint n = 5000;
  LlmSamplerParams p = params_with (0.0, 0, 1.0, 0.0);
  g_autoptr (LlmSampler) s = llm_sampler_new (&p, n);
  GRand *rand = g_rand_new_with_seed (1);
  float *logits = g_new (float, n), *copy = g_new (float, n);
  guint v;

  for (v = 0; v < 100; v++) {
    random_logits (rand, logits, n, 10.0);
    memcpy (copy, logits, n * sizeof (float));
    fail_unless_equals_int (llm_sampler_sample (s, logits),
        ref_argmax (logits, n));
    fail_unless (memcmp (copy, logits, n * sizeof (float)) == 0);
  }

  /* A tie: ids 3 and 7 share the largest logit. */
  memset (logits, 0, n * sizeof (float));
  logits[7] = 4.0f;
  logits[3] = 4.0f;
  fail_unless_equals_int (llm_sampler_sample (s, logits), 3);

  /* NaN is never chosen, +inf always is. */
  logits[0] = NAN;
  logits[11] = INFINITY;
  fail_unless_equals_int (llm_sampler_sample (s, logits), 11);

  g_free (copy);
  g_free (logits);
  g_rand_free (rand);
}

GST_END_TEST;

/* Top-k 1 leaves one candidate: the greedy one, whatever the temperature
 * or the seed. */
GST_START_TEST (test_top_k1_is_greedy)
{
  static const gdouble temps[] = { 1e-3, 0.1, 1.0, 5.0, 1e6 };
  const guint n = 2000;
  GRand *rand = g_rand_new_with_seed (2);
  float *logits = g_new (float, n);
  guint v, t;

  for (v = 0; v < 200; v++) {
    guint want;

    random_logits (rand, logits, n, 5.0);
    if (v % 10 == 0)            /* some ties at the top as well */
      logits[n - 1] = logits[ref_argmax (logits, n)];
    want = ref_argmax (logits, n);
    for (t = 0; t < G_N_ELEMENTS (temps); t++) {
      LlmSamplerParams p = params_with (temps[t], 1, 1.0, 0.0);
      g_autoptr (LlmSampler) s = NULL;

      p.seed = v * 100 + t;
      s = llm_sampler_new (&p, n);
      fail_unless_equals_int (llm_sampler_sample (s, logits), want);
      fail_unless_equals_int (llm_sampler_sample (s, logits), want);
    }
  }
  g_free (logits);
  g_rand_free (rand);
}

GST_END_TEST;

static void
draw_sequence (guint64 seed, const float *logits, guint n, gint32 * out,
    guint count)
{
  LlmSamplerParams p = params_with (1.0, 0, 1.0, 0.0);
  g_autoptr (LlmSampler) s = NULL;
  guint i;

  p.seed = seed;
  s = llm_sampler_new (&p, n);
  for (i = 0; i < count; i++)
    out[i] = llm_sampler_sample (s, logits);
}

static guint
count_differences (const gint32 * a, const gint32 * b, guint n)
{
  guint i, d = 0;

  for (i = 0; i < n; i++)
    d += a[i] != b[i];
  return d;
}

/* Same seed, same 1000 tokens; another seed (also one that differs only
 * in the high 32 bits) gives another sequence. */
GST_START_TEST (test_seed_reproducible)
{
  const guint n = 100, count = 1000;
  GRand *rand = g_rand_new_with_seed (3);
  float *logits = g_new (float, n);
  gint32 *a = g_new (gint32, count), *b = g_new (gint32, count);

  random_logits (rand, logits, n, 2.0);
  draw_sequence (42, logits, n, a, count);
  draw_sequence (42, logits, n, b, count);
  fail_unless_equals_int (count_differences (a, b, count), 0);

  draw_sequence (43, logits, n, b, count);
  fail_unless (count_differences (a, b, count) > count / 2);

  draw_sequence (0, logits, n, a, count);
  draw_sequence (G_GUINT64_CONSTANT (1) << 32, logits, n, b, count);
  fail_unless (count_differences (a, b, count) > count / 2);

  g_free (a);
  g_free (b);
  g_free (logits);
  g_rand_free (rand);
}

GST_END_TEST;

/* The first token over 4000 seeds follows the softmax at temperature 1,
 * and the test can tell it from the softmax at temperature 2. */
GST_START_TEST (test_chi_square_first_token)
{
  LlmSamplerParams p = params_with (1.0, 0, 1.0, 0.0);
  guint counts[N_DIST12];
  gdouble probs[N_DIST12], wrong[N_DIST12], stat, stat_wrong;

  first_token_counts (dist12, N_DIST12, &p, N_SEEDS, counts);

  ref_softmax (dist12, N_DIST12, 1.0, probs);
  stat = chi_square (counts, probs, N_DIST12, N_SEEDS);
  GST_INFO ("chi-square at T=1: %f (df 11, 0.999 quantile %f)", stat,
      CHI2_999_DF11);
  fail_unless (stat < CHI2_999_DF11, "chi-square %f >= %f", stat,
      CHI2_999_DF11);

  /* Power: the wrong distribution (expected statistic about 820) is far
   * above the threshold. */
  ref_softmax (dist12, N_DIST12, 2.0, wrong);
  stat_wrong = chi_square (counts, wrong, N_DIST12, N_SEEDS);
  GST_INFO ("chi-square against T=2: %f", stat_wrong);
  fail_unless (stat_wrong > 10 * CHI2_999_DF11, "chi-square %f too small",
      stat_wrong);

  /* Temperature 2 sampled is checked against its own softmax too. */
  p.temperature = 2.0;
  first_token_counts (dist12, N_DIST12, &p, N_SEEDS, counts);
  stat = chi_square (counts, wrong, N_DIST12, N_SEEDS);
  fail_unless (stat < CHI2_999_DF11, "chi-square at T=2 %f", stat);
}

GST_END_TEST;

/* Top-p 0.8 on dist12: cumulative 0.30 0.52 0.67 0.77 0.85, so the
 * nucleus is the 5 best tokens; draws follow the renormalised nucleus. */
GST_START_TEST (test_top_p_nucleus)
{
  LlmSamplerParams p = params_with (1.0, 0, 0.8, 0.0);
  guint counts[N_DIST12], i;
  gdouble probs[N_DIST12], stat;
  gboolean keep[N_DIST12];

  ref_softmax (dist12, N_DIST12, 1.0, probs);
  fail_unless_equals_int (ref_nucleus (probs, N_DIST12, 0.8, keep), 5);
  restrict_to (probs, keep, N_DIST12);

  first_token_counts (dist12, N_DIST12, &p, N_SEEDS, counts);
  for (i = 0; i < N_DIST12; i++)
    fail_unless_equals_int (counts[i] > 0, keep[i]);
  stat = chi_square (counts, probs, N_DIST12, N_SEEDS);
  GST_INFO ("chi-square top-p: %f (df 4)", stat);
  fail_unless (stat < CHI2_999_DF4, "chi-square %f", stat);

  /* Top-p 0 keeps the best token only. */
  p.top_p = 0.0;
  first_token_counts (dist12, N_DIST12, &p, 200, counts);
  fail_unless_equals_int (counts[0], 200);
}

GST_END_TEST;

/* Draws @draws tokens with top-p @top_p, top-k off, from one sampler and
 * compares the tokens seen with the reference nucleus: none outside it,
 * and (if @all) every token of it. */
static void
check_top_p_set (guint n, gdouble scale, gdouble top_p, guint draws,
    gboolean all)
{
  LlmSamplerParams p = params_with (1.0, 0, top_p, 0.0);
  g_autoptr (LlmSampler) s = NULL;
  GRand *rand = g_rand_new_with_seed (n);
  float *logits = g_new (float, n);
  gdouble *probs = g_new (gdouble, n);
  gboolean *keep = g_new (gboolean, n);
  guint8 *seen = g_new0 (guint8, n);
  guint i, size, outside = 0, distinct = 0;

  random_logits (rand, logits, n, scale);
  ref_softmax (logits, n, 1.0, probs);
  size = ref_nucleus (probs, n, top_p, keep);
  GST_INFO ("vocabulary %u: nucleus of %u tokens", n, size);
  fail_unless (size > 100 && size < n);

  s = llm_sampler_new (&p, n);
  for (i = 0; i < draws; i++) {
    gint32 id = llm_sampler_sample (s, logits);

    outside += !keep[id];
    distinct += !seen[id];
    seen[id] = 1;
  }
  fail_unless_equals_int (outside, 0);
  if (all) {
    fail_unless_equals_int (distinct, size);
  } else {
    fail_unless (distinct > draws / 2, "only %u distinct tokens", distinct);
  }

  g_free (seen);
  g_free (keep);
  g_free (probs);
  g_free (logits);
  g_rand_free (rand);
}

/* Top-p over larger vocabularies, top-k off (the unsorted path). With
 * 1000 flat logits the nucleus is about 300 tokens, each expected about
 * 40 times or more in 20000 draws, so every one of them must appear. The
 * full 262144-token vocabulary is drawn from a few times only, to stay
 * quick under valgrind. */
GST_START_TEST (test_top_p_large_vocab)
{
  check_top_p_set (1000, 1.0, 0.5, 20000, TRUE);
  check_top_p_set (262144, 3.0, 0.9, 64, FALSE);
}

GST_END_TEST;

/* Top-k 3 then top-p: only the three best ever appear, all of them. */
GST_START_TEST (test_top_k_set)
{
  LlmSamplerParams p = params_with (1.0, 3, 1.0, 0.0);
  guint counts[N_DIST12], i;

  first_token_counts (dist12, N_DIST12, &p, 1000, counts);
  for (i = 0; i < N_DIST12; i++)
    fail_unless_equals_int (counts[i] > 0, i < 3);

  /* Within the top 3 (0.45 0.33 0.22 after renormalising), top-p 0.7
   * keeps 2. */
  p.top_p = 0.7;
  first_token_counts (dist12, N_DIST12, &p, 1000, counts);
  for (i = 0; i < N_DIST12; i++)
    fail_unless_equals_int (counts[i] > 0, i < 2);
}

GST_END_TEST;

/* Min-p 0.1 keeps p >= 0.1 p_max: logits >= 2.6 + ln 0.1 = 0.30, the 7
 * best tokens; draws follow their renormalised probabilities. */
GST_START_TEST (test_min_p)
{
  LlmSamplerParams p = params_with (1.0, 0, 1.0, 0.1);
  guint counts[N_DIST12], i;
  gdouble probs[N_DIST12], stat;
  gboolean keep[N_DIST12];

  ref_softmax (dist12, N_DIST12, 1.0, probs);
  for (i = 0; i < N_DIST12; i++)
    keep[i] = probs[i] >= 0.1 * probs[0];
  for (i = 0; i < N_DIST12; i++)
    fail_unless_equals_int (keep[i], i < 7);
  restrict_to (probs, keep, N_DIST12);

  first_token_counts (dist12, N_DIST12, &p, N_SEEDS, counts);
  for (i = 0; i < N_DIST12; i++)
    fail_unless_equals_int (counts[i] > 0, keep[i]);
  stat = chi_square (counts, probs, N_DIST12, N_SEEDS);
  GST_INFO ("chi-square min-p: %f (df 6)", stat);
  fail_unless (stat < CHI2_999_DF6, "chi-square %f", stat);

  /* Min-p 1 keeps only the best. */
  p.min_p = 1.0;
  first_token_counts (dist12, N_DIST12, &p, 200, counts);
  fail_unless_equals_int (counts[0], 200);
}

GST_END_TEST;

static gint32
greedy_after (const float *logits, guint n, gdouble penalty, guint last_n,
    const gint32 * history, guint n_history)
{
  LlmSamplerParams p = params_with (0.0, 0, 1.0, 0.0);
  g_autoptr (LlmSampler) s = NULL;

  p.repeat_penalty = penalty;
  p.repeat_last_n = last_n;
  s = llm_sampler_new (&p, n);
  llm_sampler_accept (s, history, n_history);
  return llm_sampler_sample (s, logits);
}

/* The penalty divides positive logits, multiplies negative ones, counts a
 * repeated id once, and looks at the last repeat_last_n ids only. */
GST_START_TEST (test_repeat_penalty)
{
  float pos[8] = { 0.0f, 0.0f, 0.0f, 2.0f, 0.0f, 1.2f, 0.0f, 0.0f };
  float neg[4] = { -3.0f, -0.5f, -0.6f, -3.0f };
  const gint32 h3[] = { 3 }, h333[] = { 3, 3, 3 }, h376[] = { 3, 7, 6 };
  const gint32 h1[] = { 1 };
  LlmSamplerParams p = params_with (0.0, 0, 1.0, 0.0);
  g_autoptr (LlmSampler) s = NULL;

  /* 2.0 / 2.5 = 0.8 < 1.2 */
  fail_unless_equals_int (greedy_after (pos, 8, 1.0, 64, h3, 1), 3);
  fail_unless_equals_int (greedy_after (pos, 8, 2.5, 64, h3, 1), 5);
  /* Once, not three times: 2.0 / 1.5 = 1.33 > 1.2 > 2.0 / 1.5^3. */
  fail_unless_equals_int (greedy_after (pos, 8, 1.5, 64, h333, 3), 3);
  /* Window of 2: id 3 has left the history. */
  fail_unless_equals_int (greedy_after (pos, 8, 2.5, 2, h376, 3), 3);
  fail_unless_equals_int (greedy_after (pos, 8, 2.5, 3, h376, 3), 5);
  fail_unless_equals_int (greedy_after (pos, 8, 2.5, 0, h3, 1), 3);
  /* Negative: -0.5 * 1.5 = -0.75 < -0.6 */
  fail_unless_equals_int (greedy_after (neg, 4, 1.0, 64, h1, 1), 1);
  fail_unless_equals_int (greedy_after (neg, 4, 1.5, 64, h1, 1), 2);

  /* The sampled token itself enters the history. */
  p.repeat_penalty = 2.5;
  s = llm_sampler_new (&p, 8);
  fail_unless_equals_int (llm_sampler_sample (s, pos), 3);
  fail_unless_equals_int (llm_sampler_sample (s, pos), 5);
}

GST_END_TEST;

/* As the temperature goes to 0 the distribution collapses on the argmax. */
GST_START_TEST (test_temperature_limit)
{
  static const gdouble temps[] = { 1e-6, 1e-30, G_MINDOUBLE, 1e-320 };
  const guint n = 3000;
  GRand *rand = g_rand_new_with_seed (5);
  float *logits = g_new (float, n);
  guint v, t;

  for (v = 0; v < 50; v++) {
    guint want;

    distinct_logits (rand, logits, n);
    want = ref_argmax (logits, n);
    for (t = 0; t < G_N_ELEMENTS (temps); t++) {
      LlmSamplerParams p = params_with (temps[t], 0, 1.0, 0.0);
      g_autoptr (LlmSampler) s = NULL;

      p.seed = v * 10 + t;
      s = llm_sampler_new (&p, n);
      fail_unless_equals_int (llm_sampler_sample (s, logits), want);
    }
  }
  g_free (logits);
  g_rand_free (rand);
}

GST_END_TEST;

/* The split draw: llm_sampler_draw_coin() + llm_sampler_sample_with_coin()
 * give the same tokens as llm_sampler_sample() with the same seed, on
 * every path (greedy, plain, top-k, top-p sorted and unsorted, min-p,
 * repetition penalty), and greedy consumes no coin. */
GST_START_TEST (test_sample_with_coin)
{
  static const gdouble settings[][4] = {
    {0.0, 0, 1.0, 0.0}, {1.0, 0, 1.0, 0.0}, {0.8, 40, 0.95, 0.0},
    {1.0, 0, 0.9, 0.0}, {0.7, 0, 1.0, 0.05}, {1.3, 100, 0.8, 0.02},
    {1.0, 0, 0.5, 0.1}, {0.5, 1, 1.0, 0.0},
  };
  const guint n = 3001;
  GRand *rand = g_rand_new_with_seed (7);
  float *logits = g_new (float, n);
  guint c, t;

  for (c = 0; c < G_N_ELEMENTS (settings); c++) {
    LlmSamplerParams p = params_with (settings[c][0], (guint) settings[c][1],
        settings[c][2], settings[c][3]), got;
    g_autoptr (LlmSampler) a = NULL;
    g_autoptr (LlmSampler) b = NULL;

    p.seed = 1000 + c;
    p.repeat_penalty = c % 2 ? 1.3 : 1.0;
    a = llm_sampler_new (&p, n);
    b = llm_sampler_new (&p, n);
    llm_sampler_get_params (b, &got);
    fail_unless (memcmp (&got, &p, sizeof (p)) == 0);
    fail_unless_equals_int (llm_sampler_needs_coin (b), p.temperature > 0);
    for (t = 0; t < 200; t++) {
      gint32 want, id;
      gdouble coin;

      random_logits (rand, logits, n, 4.0);
      want = llm_sampler_sample (a, logits);
      coin = llm_sampler_needs_coin (b) ? llm_sampler_draw_coin (b) : 0.5;
      fail_unless (coin >= 0.0 && coin < 1.0);
      id = llm_sampler_sample_with_coin (b, logits, coin);
      fail_unless_equals_int (id, want);
    }
  }
  g_free (logits);
  g_rand_free (rand);
}

GST_END_TEST;

/* The coin picks along the cumulative weights: on 3 equal logits, coins
 * in [0, 1/3) give id 0, [1/3, 2/3) id 1, the rest id 2; with top-k on,
 * the order is best first. llm_sampler_note() feeds the penalty. */
GST_START_TEST (test_coin_order)
{
  const float flat[3] = { 1.0f, 1.0f, 1.0f }, skew[3] = { 0.0f, 0.0f, 1.0f };
  const float near[3] = { 0.05f, 0.0f, 1.0f };
  LlmSamplerParams p = params_with (1.0, 0, 1.0, 0.0);
  g_autoptr (LlmSampler) s = llm_sampler_new (&p, 3);
  g_autoptr (LlmSampler) k = NULL;
  g_autoptr (LlmSampler) g = NULL;
  gdouble e = exp (1.0);

  fail_unless_equals_int (llm_sampler_sample_with_coin (s, flat, 0.0), 0);
  fail_unless_equals_int (llm_sampler_sample_with_coin (s, flat, 0.33), 0);
  fail_unless_equals_int (llm_sampler_sample_with_coin (s, flat, 0.34), 1);
  fail_unless_equals_int (llm_sampler_sample_with_coin (s, flat, 0.66), 1);
  fail_unless_equals_int (llm_sampler_sample_with_coin (s, flat, 0.67), 2);
  fail_unless_equals_int (llm_sampler_sample_with_coin (s, flat, 0.999), 2);
  /* Id order: ids 0, 1 carry 1 / (2 + e) each, then id 2. */
  fail_unless_equals_int (llm_sampler_sample_with_coin (s, skew,
          0.99 / (2 + e)), 0);
  fail_unless_equals_int (llm_sampler_sample_with_coin (s, skew,
          1.01 * 2 / (2 + e)), 2);
  /* Top-k 2 keeps ids 2 and 0 (the lower id wins the tie), best first:
   * id 2 carries e / (1 + e). */
  p.top_k = 2;
  k = llm_sampler_new (&p, 3);
  fail_unless_equals_int (llm_sampler_sample_with_coin (k, skew,
          0.99 * e / (1 + e)), 2);
  fail_unless_equals_int (llm_sampler_sample_with_coin (k, skew,
          1.01 * e / (1 + e)), 0);

  /* note(): a penalty of 100 on id 2 (1.0 / 100 = 0.01) makes id 0
   * (0.05) the greedy choice. */
  p = params_with (0.0, 0, 1.0, 0.0);
  p.repeat_penalty = 100.0;
  g = llm_sampler_new (&p, 3);
  fail_unless_equals_int (llm_sampler_sample_with_coin (g, near, 0.0), 2);
  g_clear_pointer (&g, llm_sampler_free);
  g = llm_sampler_new (&p, 3);
  llm_sampler_note (g, 2);
  fail_unless_equals_int (llm_sampler_sample_with_coin (g, near, 0.0), 0);
}

GST_END_TEST;

static Suite *
sampler_suite (void)
{
  Suite *s = suite_create ("sampler");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_defaults);
  tcase_add_test (tc, test_greedy_is_argmax);
  tcase_add_test (tc, test_top_k1_is_greedy);
  tcase_add_test (tc, test_seed_reproducible);
  tcase_add_test (tc, test_chi_square_first_token);
  tcase_add_test (tc, test_top_p_nucleus);
  tcase_add_test (tc, test_top_p_large_vocab);
  tcase_add_test (tc, test_top_k_set);
  tcase_add_test (tc, test_min_p);
  tcase_add_test (tc, test_repeat_penalty);
  tcase_add_test (tc, test_temperature_limit);
  tcase_add_test (tc, test_sample_with_coin);
  tcase_add_test (tc, test_coin_order);
  return s;
}

GST_CHECK_MAIN (sampler);
