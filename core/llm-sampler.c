/* LLMasOS - choosing the next token from logits.
 * SPDX-License-Identifier: LGPL-2.1-or-later */

/**
 * SECTION:llm-sampler
 * @title: LlmSampler
 * @short_description: turns a vector of logits into one token id
 *
 * One #LlmSampler per sequence. Each call of llm_sampler_sample() runs, in
 * this order:
 *
 * 1. Copy. The caller's logits are copied into a candidate array (id,
 *    logit); the caller's buffer is never written. A NaN logit is read as
 *    -inf (never chosen) and +inf as G_MAXFLOAT, so that the arithmetic
 *    below never meets inf - inf.
 * 2. Repetition penalty (llama.cpp / CTRL). Each distinct id among the last
 *    @repeat_last_n ids of history (prompt ids given to llm_sampler_accept()
 *    and ids this sampler chose) is penalised once, however often it
 *    occurs: logit > 0 ? logit / penalty : logit * penalty. Off when
 *    @repeat_penalty is 1.0 or @repeat_last_n is 0.
 * 3. Greedy. If @temperature <= 0 the answer is the argmax of the penalised
 *    logits, the lowest id on ties. If every logit is -inf the same argmax
 *    (id 0) is returned whatever the temperature.
 * 4. Temperature. Logits are divided by @temperature. Dividing by a
 *    positive number keeps the order of the candidates, so top-k below does
 *    not depend on it; the division is done inside the softmax, on the
 *    difference to the largest logit, where it cannot overflow however
 *    small the temperature.
 * 5. Top-k (if 0 < @top_k < n_vocab). Keep the @top_k candidates with the
 *    largest logits. Candidates are ordered by logit descending and then by
 *    id ascending, a total order, so ties at the boundary keep the lowest
 *    ids. A heap of k entries selects them in O(n log k) without sorting
 *    the vocabulary; the k kept end up sorted best first.
 * 6. Softmax over the remaining candidates, in double:
 *    w_i = exp ((l_i - l_max) / T), p_i = w_i / sum (w). The largest
 *    candidate has w = 1 exactly.
 * 7. Top-p (if @top_p < 1). With the candidates in the order of step 5,
 *    keep the smallest prefix whose cumulative probability is >= @top_p,
 *    at least one candidate (so @top_p <= 0 keeps only the best) and all
 *    of them if rounding leaves the total below @top_p. After top-k the k
 *    candidates are sorted and the prefix is walked; without top-k the
 *    vocabulary is never sorted: a quickselect on cumulative weight finds
 *    the same set in expected O(n) (its sums are added in another order,
 *    so a prefix whose sum is within rounding of @top_p may differ by its
 *    last token from the walk over a sorted array). The nucleus is then
 *    put back in id order (an O(n) in-place permutation), so that the
 *    draw below does not depend on the quickselect's arbitrary order and
 *    another implementation (kernels/sample_logits.cu) can reproduce it.
 * 8. Min-p (if @min_p > 0). Keep the candidates with p_i >= @min_p * p_max,
 *    i.e. w_i >= @min_p, where p_max is the probability of the best
 *    candidate still kept (top-p never removes it). The ratio does not
 *    depend on renormalisation, so p_max before or after top-p is the same.
 *    @min_p is clamped to 1 so that the best candidate is always kept.
 * 9. Draw. The kept weights are renormalised to sum 1 and one uniform
 *    u in [0, 1) from g_rand_double() (the "coin") picks the first
 *    candidate, in the current candidate order, where the running sum of
 *    probabilities exceeds u. That order is best first when top-k is on,
 *    id order otherwise. Exactly one random number is used per sampled
 *    token when @temperature > 0 (also for a row of -inf, which gives id
 *    0), none for greedy.
 *
 * The chosen id is appended to the history. All buffers are allocated by
 * llm_sampler_new(); llm_sampler_sample() allocates nothing.
 */

#include "llm-sampler.h"

#include <math.h>

#define DEFAULT_TEMPERATURE 1.0
#define DEFAULT_TOP_K 0
#define DEFAULT_TOP_P 1.0
#define DEFAULT_MIN_P 0.0
#define DEFAULT_REPEAT_PENALTY 1.0
#define DEFAULT_REPEAT_LAST_N 64
#define DEFAULT_SEED 0

typedef struct
{
  gint32 id;                    /* token id */
  gfloat logit;                 /* logit after the repetition penalty */
  gdouble w;                    /* exp ((logit - max) / T), unnormalised */
} LlmCandidate;

struct _LlmSampler
{
  LlmSamplerParams p;           /* parameters, min_p clamped to [0, 1] */
  guint n_vocab;                /* length of every logits vector */
  GRand *rand;                  /* this sequence's random state */
  LlmCandidate *cand;           /* n_vocab scratch candidates */
  guint8 *penalised;            /* n_vocab flags: penalised in this call */
  gint32 *history;              /* ring of the last repeat_last_n ids */
  guint history_len;            /* valid entries in the ring */
  guint history_next;           /* slot the next id is written to */
};

/**
 * llm_sampler_params_init:
 * @p: parameters to fill
 *
 * Sets @p to the defaults: temperature 1.0, top-k off (0), top-p off (1.0),
 * min-p off (0.0), repetition penalty off (1.0) over the last 64 tokens,
 * seed 0.
 */
void
llm_sampler_params_init (LlmSamplerParams * p)
{
  g_return_if_fail (p != NULL);

  p->temperature = DEFAULT_TEMPERATURE;
  p->top_k = DEFAULT_TOP_K;
  p->top_p = DEFAULT_TOP_P;
  p->min_p = DEFAULT_MIN_P;
  p->repeat_penalty = DEFAULT_REPEAT_PENALTY;
  p->repeat_last_n = DEFAULT_REPEAT_LAST_N;
  p->seed = DEFAULT_SEED;
}

/**
 * llm_sampler_new:
 * @p: parameters, copied
 * @n_vocab: number of logits each call of llm_sampler_sample() reads
 *
 * Creates a sampler whose random state is a #GRand seeded with the two
 * 32-bit halves of @p->seed (low half first).
 *
 * Returns: (transfer full): a new sampler, free with llm_sampler_free()
 */
LlmSampler *
llm_sampler_new (const LlmSamplerParams * p, guint n_vocab)
{
  LlmSampler *s;
  guint32 seed[2];

  g_return_val_if_fail (p != NULL, NULL);
  g_return_val_if_fail (n_vocab > 0 && n_vocab <= G_MAXINT32, NULL);
  g_return_val_if_fail (p->repeat_penalty > 0.0, NULL);

  s = g_new0 (LlmSampler, 1);
  s->p = *p;
  s->p.min_p = CLAMP (p->min_p, 0.0, 1.0);
  s->n_vocab = n_vocab;

  seed[0] = (guint32) (p->seed & G_MAXUINT32);
  seed[1] = (guint32) (p->seed >> 32);
  s->rand = g_rand_new_with_seed_array (seed, G_N_ELEMENTS (seed));

  s->cand = g_new (LlmCandidate, n_vocab);
  s->penalised = g_new0 (guint8, n_vocab);
  s->history = g_new (gint32, MAX (p->repeat_last_n, 1));
  return s;
}

/**
 * llm_sampler_free:
 * @s: (nullable): a sampler
 */
void
llm_sampler_free (LlmSampler * s)
{
  if (s == NULL)
    return;
  g_rand_free (s->rand);
  g_free (s->cand);
  g_free (s->penalised);
  g_free (s->history);
  g_free (s);
}

static void
history_push (LlmSampler * s, gint32 id)
{
  guint cap = s->p.repeat_last_n;

  if (cap == 0)
    return;
  s->history[s->history_next] = id;
  s->history_next = (s->history_next + 1) % cap;
  s->history_len = MIN (s->history_len + 1, cap);
}

/**
 * llm_sampler_accept:
 * @s: a sampler
 * @ids: (array length=n): token ids, oldest first
 * @n: number of ids
 *
 * Appends @ids to the history the repetition penalty looks at, without
 * sampling (the prompt). Ids outside [0, n_vocab) are kept in the history
 * but never penalise anything.
 */
void
llm_sampler_accept (LlmSampler * s, const gint32 * ids, guint n)
{
  guint i;

  g_return_if_fail (s != NULL);
  g_return_if_fail (ids != NULL || n == 0);

  for (i = 0; i < n; i++)
    history_push (s, ids[i]);
}

/* Step 1: candidates in id order, NaN as -inf, +inf as G_MAXFLOAT. */
static void
fill_candidates (LlmCandidate * c, const float *logits, guint n)
{
  guint i;

  for (i = 0; i < n; i++) {
    gfloat l = logits[i];

    if (isnan (l))
      l = -INFINITY;
    else if (l == INFINITY)
      l = G_MAXFLOAT;
    c[i].id = (gint32) i;
    c[i].logit = l;
  }
}

/* Step 2: each distinct id of the history once; c is still in id order. */
static void
apply_repeat_penalty (LlmSampler * s)
{
  gfloat penalty = (gfloat) s->p.repeat_penalty;
  guint i;

  if (s->p.repeat_penalty == 1.0)
    return;

  for (i = 0; i < s->history_len; i++) {
    gint32 id = s->history[i];
    gfloat *l;

    if (id < 0 || (guint) id >= s->n_vocab || s->penalised[id])
      continue;
    s->penalised[id] = 1;
    l = &s->cand[id].logit;
    *l = *l > 0.0f ? *l / penalty : *l * penalty;
  }
  for (i = 0; i < s->history_len; i++) {
    gint32 id = s->history[i];

    if (id >= 0 && (guint) id < s->n_vocab)
      s->penalised[id] = 0;
  }
}

/* The candidate order: larger logit first, then lower id first. */
static inline gboolean
better (const LlmCandidate * a, const LlmCandidate * b)
{
  return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

/* Step 3: index of the best candidate among c[0..n). */
static guint
argmax (const LlmCandidate * c, guint n)
{
  guint best = 0, i;

  for (i = 1; i < n; i++)
    if (better (&c[i], &c[best]))
      best = i;
  return best;
}

static inline void
swap (LlmCandidate * a, LlmCandidate * b)
{
  LlmCandidate t = *a;

  *a = *b;
  *b = t;
}

/* Heap of n entries whose root is the worst: every parent is worse than
 * its children. Moves h[i] down to its place. */
static void
sift_down (LlmCandidate * h, guint n, guint i)
{
  for (;;) {
    guint l = 2 * i + 1, r = l + 1, worst = i;

    if (l < n && better (&h[worst], &h[l]))
      worst = l;
    if (r < n && better (&h[worst], &h[r]))
      worst = r;
    if (worst == i)
      return;
    swap (&h[i], &h[worst]);
    i = worst;
  }
}

/* Step 5 (and 7): moves the k best of c[0..n) to c[0..k), sorted best
 * first; the others stay, in some order, in c[k..n). O(n log k). */
static void
select_top (LlmCandidate * c, guint n, guint k)
{
  guint i;

  g_assert (k > 0 && k <= n);

  for (i = k / 2; i-- > 0;)
    sift_down (c, k, i);
  for (i = k; i < n; i++) {
    if (better (&c[i], &c[0])) {
      swap (&c[i], &c[0]);
      sift_down (c, k, 0);
    }
  }
  /* Heap sort: the worst root goes to the end of the shrinking heap. */
  for (i = k - 1; i > 0; i--) {
    swap (&c[0], &c[i]);
    sift_down (c, i, 0);
  }
}

/* Step 6: w_i = exp ((l_i - l_max) / T); returns sum (w). */
static gdouble
softmax_weights (LlmCandidate * c, guint n, gfloat l_max, gdouble temp)
{
  gdouble sum = 0.0;
  guint i;

  for (i = 0; i < n; i++) {
    c[i].w = exp (((gdouble) c[i].logit - (gdouble) l_max) / temp);
    sum += c[i].w;
  }
  return sum;
}

/* Step 7 on sorted c[0..n): the length of the smallest prefix whose
 * weights reach @target, at least 1; n if even the whole falls short. */
static guint
walk_nucleus (const LlmCandidate * c, guint n, gdouble target)
{
  gdouble acc = 0.0;
  guint i;

  for (i = 0; i < n; i++) {
    acc += c[i].w;
    if (acc >= target)
      return i + 1;
  }
  return n;
}

/* Pivots for select_nucleus(): a fixed xorshift32 sequence local to the
 * call, so that the sampler's GRand (and with it the token stream)
 * depends on the seed only, and sorted or reversed logits do not make the
 * selection quadratic. */
static guint
next_pivot (guint32 * state, guint lo, guint hi)
{
  guint32 x = *state;

  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  *state = x;
  return lo + x % (hi - lo);
}

/* Partitions c[lo..hi) around c[pivot]: the better ones first, then the
 * pivot, then the worse ones. Returns the pivot's new index and sets
 * @mass_better to the sum of the better ones' weights. */
static guint
partition (LlmCandidate * c, guint lo, guint hi, guint pivot,
    gdouble * mass_better)
{
  gdouble mass = 0.0;
  guint i = lo, j;

  swap (&c[pivot], &c[hi - 1]);
  for (j = lo; j < hi - 1; j++) {
    if (better (&c[j], &c[hi - 1])) {
      mass += c[j].w;
      swap (&c[i], &c[j]);
      i++;
    }
  }
  swap (&c[i], &c[hi - 1]);
  *mass_better = mass;
  return i;
}

/* Step 7 on unsorted c[0..n): a quickselect that follows the cumulative
 * weight instead of a rank, expected O(n). Moves the nucleus (the smallest
 * prefix of the candidate order whose weights reach @target, at least 1,
 * all n if none does) to c[0..len), unsorted, and returns len. */
static guint
select_nucleus (LlmCandidate * c, guint n, gdouble target)
{
  guint32 state = 0x9e3779b9u;
  guint lo = 0, hi = n;

  /* Invariant: c[0..lo) is better than c[lo..hi), better than c[hi..n);
   * the nucleus is the first len of the candidate order with
   * lo < len <= hi; @target is the weight c[lo..len) must still bring. */
  while (hi - lo > 1) {
    gdouble upper, with_pivot;
    guint q = partition (c, lo, hi, next_pivot (&state, lo, hi), &upper);

    if (q > lo && upper >= target) {
      hi = q;
      continue;
    }
    with_pivot = upper + c[q].w;
    if (with_pivot >= target || q + 1 == hi)
      return q + 1;
    target -= with_pivot;
    lo = q + 1;
  }
  return hi;
}

/* After select_nucleus(): the nucleus c[0..len) is exactly the
 * candidates at least as good as its worst member (it is a prefix of the
 * candidate order), so sorting all n back into id order in place (each
 * c[i] belongs at index c[i].id) and keeping those candidates gives the
 * nucleus in id order. O(n). */
static guint
nucleus_in_id_order (LlmCandidate * c, guint n, guint len)
{
  LlmCandidate worst = c[0];
  guint i, kept = 0;

  for (i = 1; i < len; i++)
    if (better (&worst, &c[i]))
      worst = c[i];
  for (i = 0; i < n; i++)
    while ((guint) c[i].id != i)
      swap (&c[i], &c[c[i].id]);
  for (i = 0; i < n; i++)
    if (!better (&worst, &c[i]))
      c[kept++] = c[i];
  return kept;
}

/* Step 7: the cumulative weight is compared with top_p * sum (w) rather
 * than dividing each weight. Returns how many candidates top-p keeps, now
 * in c[0..keep). */
static guint
top_p_cut (LlmCandidate * c, guint n, gboolean sorted, gdouble top_p,
    gdouble sum)
{
  gdouble target = top_p * sum;

  if (sorted)
    return walk_nucleus (c, n, target);
  return nucleus_in_id_order (c, n, select_nucleus (c, n, target));
}

/* Step 8: keeps, in order, the candidates with w_i >= min_p (w of the best
 * is 1); returns how many. */
static guint
min_p_filter (LlmCandidate * c, guint n, gdouble min_p)
{
  guint i, kept = 0;

  for (i = 0; i < n; i++)
    if (c[i].w >= min_p)
      c[kept++] = c[i];
  return kept;
}

/* Step 9: one uniform draw, @coin, over the renormalised weights of
 * c[0..n). */
static gint32
draw (gdouble coin, const LlmCandidate * c, guint n)
{
  gdouble sum = 0.0, u, acc = 0.0;
  guint i, last = 0;

  for (i = 0; i < n; i++)
    sum += c[i].w;
  u = coin * sum;
  for (i = 0; i < n; i++) {
    if (c[i].w <= 0.0)
      continue;
    acc += c[i].w;
    last = i;
    if (u < acc)
      return c[i].id;
  }
  /* Rounding left u at or above the last sum: the last possible one. */
  return c[last].id;
}

/* Steps 4 to 9 on the penalised candidates; @l_max is their largest
 * logit, finite or G_MAXFLOAT. */
static gint32
sample_distribution (LlmSampler * s, gfloat l_max, gdouble coin)
{
  const LlmSamplerParams *p = &s->p;
  LlmCandidate *c = s->cand;
  guint n = s->n_vocab;
  gboolean sorted = FALSE;
  gdouble sum;

  if (p->top_k > 0 && p->top_k < n) {
    select_top (c, n, p->top_k);
    n = p->top_k;
    sorted = TRUE;
  }
  sum = softmax_weights (c, n, l_max, p->temperature);
  if (p->top_p < 1.0)
    n = top_p_cut (c, n, sorted, p->top_p, sum);
  if (p->min_p > 0.0)
    n = min_p_filter (c, n, p->min_p);
  return draw (coin, c, n);
}

/**
 * llm_sampler_sample:
 * @s: a sampler
 * @logits: (array): n_vocab logits, not modified
 *
 * Chooses the next token as described at the top of this file and appends
 * it to the history.
 *
 * Returns: the chosen id, in [0, n_vocab)
 */
gint32
llm_sampler_sample (LlmSampler * s, const float *logits)
{
  g_return_val_if_fail (s != NULL, -1);
  g_return_val_if_fail (logits != NULL, -1);

  return llm_sampler_sample_with_coin (s, logits,
      llm_sampler_needs_coin (s) ? llm_sampler_draw_coin (s) : 0.0);
}

/**
 * llm_sampler_needs_coin:
 * @s: a sampler
 *
 * Returns: TRUE if each sample consumes one coin (temperature > 0),
 * FALSE for greedy
 */
gboolean
llm_sampler_needs_coin (const LlmSampler * s)
{
  g_return_val_if_fail (s != NULL, FALSE);

  return s->p.temperature > 0.0;
}

/**
 * llm_sampler_draw_coin:
 * @s: a sampler
 *
 * Draws the uniform the next llm_sampler_sample() would use, from this
 * sequence's random state, so that a sampler on another device can make
 * the same choice.
 *
 * Returns: a double in [0, 1)
 */
gdouble
llm_sampler_draw_coin (LlmSampler * s)
{
  g_return_val_if_fail (s != NULL, 0.0);

  return g_rand_double (s->rand);
}

/**
 * llm_sampler_sample_with_coin:
 * @s: a sampler
 * @logits: (array): n_vocab logits, not modified
 * @coin: the uniform in [0, 1) of step 9 (ignored when greedy)
 *
 * llm_sampler_sample() with the random number given; the random state is
 * not touched. The chosen id is appended to the history.
 *
 * Returns: the chosen id, in [0, n_vocab)
 */
gint32
llm_sampler_sample_with_coin (LlmSampler * s, const float *logits,
    gdouble coin)
{
  guint best;
  gint32 id;

  g_return_val_if_fail (s != NULL, -1);
  g_return_val_if_fail (logits != NULL, -1);

  fill_candidates (s->cand, logits, s->n_vocab);
  apply_repeat_penalty (s);
  best = argmax (s->cand, s->n_vocab);

  if (s->p.temperature <= 0.0 || s->cand[best].logit == -INFINITY)
    id = s->cand[best].id;
  else
    id = sample_distribution (s, s->cand[best].logit, coin);

  history_push (s, id);
  return id;
}

/**
 * llm_sampler_get_params:
 * @s: a sampler
 * @p: (out caller-allocates): its parameters, min_p clamped to [0, 1]
 */
void
llm_sampler_get_params (const LlmSampler * s, LlmSamplerParams * p)
{
  g_return_if_fail (s != NULL && p != NULL);

  *p = s->p;
}

/**
 * llm_sampler_note:
 * @s: a sampler
 * @id: a token chosen elsewhere for this sequence
 *
 * Appends @id to the history, as llm_sampler_sample() does with its own
 * choice.
 */
void
llm_sampler_note (LlmSampler * s, gint32 id)
{
  g_return_if_fail (s != NULL);

  history_push (s, id);
}
