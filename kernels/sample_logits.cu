/* LLMasOS - sampling on the GPU: temperature, top-k, softmax, top-p, min-p
 * and the draw, for each row of logits, so that only the chosen ids cross
 * to the host. CPU twin: llm_sampler_sample_with_coin() (core/
 * llm-sampler.c); the host draws the uniform ("coin") from the sequence's
 * GRand, so a seed means the same on both.
 *
 * The rules copied from the CPU sampler, exactly:
 * - NaN is -inf, +inf is FLT_MAX, -0 is +0 (they compare equal there).
 * - Candidate order: larger logit first, then lower id (a total order);
 *   greedy and top-k ties at the boundary keep the lowest ids.
 * - temperature <= 0, or a row whose best logit is -inf: the argmax.
 * - w = exp ((l - l_max) / T) in double; top-k keeps the k best; top-p
 *   keeps the shortest prefix of the candidate order whose weight reaches
 *   top_p * sum (w over the top-k set), at least one, all if rounding
 *   leaves the total short; min-p keeps w >= min_p.
 * - The draw: u = coin * sum (kept w); the first kept candidate, in
 *   candidate order when top-k is on and in id order otherwise, whose
 *   running sum exceeds u; if rounding leaves u at or above the total, the
 *   last one with w > 0.
 * Only the order in which the double weights are added differs (and the
 * device's additions through atomics vary from run to run), so the two
 * can choose neighbouring tokens when the coin lies within rounding of
 * their common cumulative weight, or disagree about the last token of a
 * nucleus whose weight is within rounding of top_p * sum.
 *
 * How: one cooperative launch per group of rows; each row is split into
 * chunks of SAMPLE_CHUNK logits, one block each, held in registers for the
 * whole call. Every selection (the k-th best, the top-p boundary, the
 * draw in candidate order) is a radix select on a 64-bit key (order-
 * preserving bits of the logit, then n - 1 - id, so no two keys tie):
 * each pass adds counts and weights into a 2048-bin histogram of the next
 * 11 key bits (shared-memory atomics, then global ones), the grid syncs,
 * and every block of the row reads the histogram and picks the bin where
 * the running count or weight crosses its target, the same way. A
 * selection ends as soon as its bin holds a single candidate, usually
 * after 3 passes. The draw in id order needs one pass of per-block sums.
 * Histograms rotate through three buffers so that one is being filled,
 * one read and one cleared in each phase, with one grid sync per phase.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-cuda-private.cuh"

#include <cooperative_groups.h>
#include <float.h>

namespace cg = cooperative_groups;

#define SAMPLE_THREADS 256
#define SAMPLE_PER_THREAD 16    /* consecutive logits a thread holds */
#define SAMPLE_CHUNK (SAMPLE_THREADS * SAMPLE_PER_THREAD)
#define RADIX_BITS 11
#define RADIX_BINS (1 << RADIX_BITS)
#define BINS_PER_THREAD (RADIX_BINS / SAMPLE_THREADS)

static_assert (BINS_PER_THREAD * SAMPLE_THREADS == RADIX_BINS, "bins");
static_assert (SAMPLE_PER_THREAD <= 32, "candidate flags are 32 bits");

/* Scratch of one row, at row * row_bytes. */
#define OFF_CNT 0                                   /* u32 [3][RADIX_BINS] */
#define OFF_MASS (OFF_CNT + 3 * RADIX_BINS * 4)     /* double [3][RADIX_BINS] */
#define OFF_BEST (OFF_MASS + 3 * RADIX_BINS * 8)    /* u64 [bpr] */

typedef struct
{
  int32_t *out;                 /* one id per row */
  const float *logits;
  const double *coins;          /* one per row */
  unsigned char *scratch;
  size_t row_bytes;             /* scratch of one row */
  unsigned int n;               /* vocabulary */
  unsigned int bpr;             /* blocks (chunks) per row */
  unsigned int row0;            /* first row of this launch */
  unsigned int rows;            /* rows in this launch */
  unsigned int id_bits;         /* bits of n - 1 */
  double temperature;
  unsigned int top_k;           /* 0 = off (also when >= n) */
  double top_p;                 /* >= 1 = off */
  double min_p;                 /* <= 0 = off */
} SampleArgs;

typedef enum
{
  SELECT_COUNT,                 /* the top_k-th candidate */
  SELECT_MASS_GE,               /* first running weight >= top_p * total */
  SELECT_MASS_GT,               /* first running weight > coin * total */
} SelectMode;

/* The state of one selection, the same in every block of the row. The
 * boundary is the set of keys with (key >> shift) >= prefix. */
typedef struct
{
  unsigned long long prefix;    /* key bits fixed so far */
  int shift;                    /* key bits below them */
  double above;                 /* count or weight of keys above the bin */
  double target;                /* what the running count/weight must reach */
  int first;                    /* no pass picked yet */
  int done;                     /* boundary found (or nothing to do) */
  int all;                      /* the target was never reached: keep all */
  int clamped;                  /* draw: u >= total, take the last w > 0 */
} Select;

static __device__ __forceinline__ float
sanitize (float l)
{
  if (isnan (l))
    return -INFINITY;
  if (l == INFINITY)
    return FLT_MAX;
  return l == 0.0f ? 0.0f : l;  /* -0 is +0 */
}

/* Unsigned bits in the order of the floats. */
static __device__ __forceinline__ uint32_t
order_bits (float l)
{
  uint32_t b = __float_as_uint (l);

  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

static __device__ __forceinline__ unsigned long long
sort_key (float l, unsigned int id, const SampleArgs & a)
{
  return ((unsigned long long) order_bits (l) << a.id_bits)
      | (unsigned long long) (a.n - 1 - id);
}

/* Exclusive scan of @v over the block, in thread order; @total gets the
 * sum. Every thread must call it. */
static __device__ double
block_scan (double v, double *total)
{
  __shared__ double warp_tot[SAMPLE_THREADS / LLM_CUDA_WARP];
  unsigned int lane = threadIdx.x % LLM_CUDA_WARP;
  unsigned int warp = threadIdx.x / LLM_CUDA_WARP;
  double incl = v, before = 0.0, t = 0.0;

#pragma unroll
  for (int o = 1; o < LLM_CUDA_WARP; o <<= 1) {
    double y = __shfl_up_sync (0xffffffffu, incl, o);

    if (lane >= (unsigned int) o)
      incl += y;
  }
  __syncthreads ();
  if (lane == LLM_CUDA_WARP - 1)
    warp_tot[warp] = incl;
  __syncthreads ();
  for (unsigned int w = 0; w < SAMPLE_THREADS / LLM_CUDA_WARP; w++) {
    if (w < warp)
      before += warp_tot[w];
    t += warp_tot[w];
  }
  *total = t;
  return before + incl - v;
}

/* Clears the histogram buffer that the next phase will fill (this row's
 * blocks share the work). */
static __device__ void
clear_hist (const SampleArgs & a, unsigned char *rs, unsigned int buf,
    unsigned int chunk)
{
  uint32_t *cnt = (uint32_t *) (rs + OFF_CNT) + buf * RADIX_BINS;
  double *mass = (double *) (rs + OFF_MASS) + buf * RADIX_BINS;

  for (unsigned int i = chunk * SAMPLE_THREADS + threadIdx.x; i < RADIX_BINS;
      i += a.bpr * SAMPLE_THREADS) {
    cnt[i] = 0;
    mass[i] = 0.0;
  }
}

/* One radix pass: the candidates in the current bin of @sel add their
 * count and weight to the bin of their next key bits in buffer @buf. */
static __device__ void
select_accumulate (const SampleArgs & a, unsigned char *rs, unsigned int buf,
    const Select & sel, const float *l, const double *w, uint32_t cand,
    unsigned int id0)
{
  __shared__ uint32_t s_cnt[RADIX_BINS];
  __shared__ double s_mass[RADIX_BINS];
  uint32_t *cnt = (uint32_t *) (rs + OFF_CNT) + buf * RADIX_BINS;
  double *mass = (double *) (rs + OFF_MASS) + buf * RADIX_BINS;
  int nb = min (RADIX_BITS, sel.shift), shift = sel.shift - nb;

  for (unsigned int i = threadIdx.x; i < RADIX_BINS; i += SAMPLE_THREADS) {
    s_cnt[i] = 0;
    s_mass[i] = 0.0;
  }
  __syncthreads ();
#pragma unroll
  for (int j = 0; j < SAMPLE_PER_THREAD; j++) {
    unsigned long long key = sort_key (l[j], id0 + j, a);

    if (((cand >> j) & 1) && (key >> sel.shift) == sel.prefix) {
      unsigned int bin = (unsigned int) (key >> shift) & ((1u << nb) - 1);

      atomicAdd (&s_cnt[bin], 1u);
      atomicAdd (&s_mass[bin], w[j]);
    }
  }
  __syncthreads ();
  for (unsigned int i = threadIdx.x; i < RADIX_BINS; i += SAMPLE_THREADS) {
    if (s_cnt[i] != 0) {
      atomicAdd (&cnt[i], s_cnt[i]);
      atomicAdd (&mass[i], s_mass[i]);
    }
  }
}

/* Reads the histogram in buffer @buf (complete after a grid sync) and
 * narrows @sel (shared) to the bin where the running count or weight, in
 * candidate order (high bins first), crosses the target. Every block of
 * the row computes the same. */
static __device__ void
select_pick (const SampleArgs & a, unsigned char *rs, unsigned int buf,
    Select * sel, SelectMode mode, double ratio)
{
  __shared__ int s_first, s_last;
  const uint32_t *cnt = (const uint32_t *) (rs + OFF_CNT) + buf * RADIX_BINS;
  const double *mass = (const double *) (rs + OFF_MASS) + buf * RADIX_BINS;
  uint32_t c[BINS_PER_THREAD];
  double v[BINS_PER_THREAD], mine = 0.0, before, total;
  int nb = min (RADIX_BITS, sel->shift);
  int hit = INT_MAX, last = -1;

  /* Thread t holds bins 2047 - 8t down to 2040 - 8t: position p = 8t + i
   * runs in candidate order. */
#pragma unroll
  for (int i = 0; i < BINS_PER_THREAD; i++) {
    int bin = RADIX_BINS - 1 - (int) (threadIdx.x * BINS_PER_THREAD) - i;

    c[i] = cnt[bin];
    v[i] = mode == SELECT_COUNT ? (double) c[i] : mass[bin];
    mine += v[i];
  }
  before = block_scan (mine, &total);
  if (threadIdx.x == 0) {
    s_first = INT_MAX;
    s_last = -1;
    if (sel->first) {
      /* The first pass sees every candidate: the total is the sum. */
      sel->target = mode == SELECT_COUNT ? ratio : ratio * total;
      sel->first = 0;
    }
  }
  __syncthreads ();
  {
    double acc = sel->above + before, target = sel->target;

#pragma unroll
    for (int i = 0; i < BINS_PER_THREAD; i++) {
      int pos = threadIdx.x * BINS_PER_THREAD + i;

      acc += v[i];
      if (c[i] != 0 && hit == INT_MAX && !sel->clamped
          && (mode == SELECT_MASS_GT ? acc > target : acc >= target))
        hit = pos;
      if (c[i] != 0 && v[i] > 0.0)
        last = pos;
    }
  }
  if (hit != INT_MAX)
    atomicMin (&s_first, hit);
  if (last >= 0)
    atomicMax (&s_last, last);
  __syncthreads ();
  if (s_first == INT_MAX) {
    if (mode != SELECT_MASS_GT || s_last < 0) {
      /* Rounding left the running sum short of the target (top-p):
       * keep every candidate, as the CPU's walk does. */
      if (threadIdx.x == 0)
        sel->all = sel->done = 1;
      __syncthreads ();
      return;
    }
    /* The draw with u at or above the total: the last one with w > 0. */
    if (threadIdx.x == 0)
      sel->clamped = 1;
  }
  {
    int pos = s_first != INT_MAX ? s_first : s_last;

    if (threadIdx.x == (unsigned int) pos / BINS_PER_THREAD) {
      int i = pos % BINS_PER_THREAD;
      double above = sel->above + before;
      uint32_t n_in_bin = 0;

#pragma unroll
      for (int k = 0; k < BINS_PER_THREAD; k++) {
        if (k < i)
          above += v[k];
        if (k == i)
          n_in_bin = c[k];
      }
      sel->above = above;
      sel->prefix = (sel->prefix << nb)
          | (unsigned long long) ((RADIX_BINS - 1 - pos) & ((1 << nb) - 1));
      sel->shift -= nb;
      if (n_in_bin == 1 || sel->shift == 0)
        sel->done = 1;
    }
  }
  (void) a;
  __syncthreads ();
}

/* Phase bookkeeping: a grid sync, then clear the buffer the phase after
 * this one fills. */
static __device__ __forceinline__ void
next_phase (cg::grid_group & grid, const SampleArgs & a, unsigned char *rs,
    unsigned int *phase, unsigned int chunk)
{
  grid.sync ();
  (*phase)++;
  clear_hist (a, rs, (*phase + 1) % 3, chunk);
}

/* A whole selection; returns with @sel done (or, for rows of more than
 * one launch row, after the same number of grid syncs everywhere). */
static __device__ void
run_select (cg::grid_group & grid, const SampleArgs & a, unsigned char *rs,
    unsigned int *phase, unsigned int chunk, Select * sel, SelectMode mode,
    double ratio, bool row_done, const float *l, const double *w,
    uint32_t cand, unsigned int id0)
{
  int n_pass = (32 + (int) a.id_bits + RADIX_BITS - 1) / RADIX_BITS;

  if (threadIdx.x == 0) {
    sel->prefix = 0;
    sel->shift = 32 + a.id_bits;
    sel->above = 0.0;
    sel->target = 0.0;
    sel->first = 1;
    sel->done = row_done;
    sel->all = 0;
    sel->clamped = 0;
  }
  __syncthreads ();
  for (int pass = 0; pass < n_pass; pass++) {
    bool active = !sel->done;

    if (active)
      select_accumulate (a, rs, *phase % 3, *sel, l, w, cand, id0);
    next_phase (grid, a, rs, phase, chunk);
    if (active)
      select_pick (a, rs, (*phase + 2) % 3, sel, mode, ratio);
    __syncthreads ();
    /* With one row the grid agrees on stopping early. */
    if (a.rows == 1 && sel->done)
      break;
  }
}

/* Is @key inside the boundary of a finished selection? */
static __device__ __forceinline__ bool
within (const Select & sel, unsigned long long key)
{
  return sel.all || (key >> sel.shift) >= sel.prefix;
}

static __global__ void __launch_bounds__ (SAMPLE_THREADS)
sample_logits_kernel (SampleArgs a)
{
  cg::grid_group grid = cg::this_grid ();
  __shared__ Select sel;
  __shared__ unsigned long long s_best[SAMPLE_THREADS / LLM_CUDA_WARP];
  __shared__ int s_pick, s_last;
  unsigned int r = blockIdx.x / a.bpr, chunk = blockIdx.x % a.bpr;
  unsigned int row = a.row0 + r;
  unsigned char *rs = a.scratch + (size_t) row * a.row_bytes;
  unsigned long long *best = (unsigned long long *) (rs + OFF_BEST);
  double *part = (double *) (rs + OFF_BEST + 8 * a.bpr);
  const float *x = a.logits + (size_t) row * a.n;
  unsigned int id0 = chunk * SAMPLE_CHUNK + threadIdx.x * SAMPLE_PER_THREAD;
  unsigned int phase = 0;
  float l[SAMPLE_PER_THREAD];
  double w[SAMPLE_PER_THREAD];
  uint32_t cand = 0;
  unsigned long long pk = 0;
  float l_max;
  int32_t best_id;
  bool row_done;
  bool top_k_on = a.top_k > 0 && a.top_k < a.n;

  /* Phase 0: load, and each block's best (bits of the logit, then the
   * complement of the id, so the lowest id wins ties). */
#pragma unroll
  for (int j = 0; j < SAMPLE_PER_THREAD; j++) {
    unsigned int id = id0 + j;

    l[j] = id < a.n ? sanitize (__ldg (x + id)) : -INFINITY;
    if (id < a.n) {
      unsigned long long k = ((unsigned long long) order_bits (l[j]) << 32)
          | (0xffffffffu - id);

      cand |= 1u << j;
      pk = max (pk, k);
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1)
    pk = max (pk, __shfl_xor_sync (0xffffffffu, pk, o));
  if (threadIdx.x % LLM_CUDA_WARP == 0)
    s_best[threadIdx.x / LLM_CUDA_WARP] = pk;
  __syncthreads ();
  if (threadIdx.x == 0) {
    for (int i = 1; i < SAMPLE_THREADS / LLM_CUDA_WARP; i++)
      pk = max (pk, s_best[i]);
    best[chunk] = max (pk, s_best[0]);
  }
  clear_hist (a, rs, 1, chunk);
  next_phase (grid, a, rs, &phase, chunk);

  /* Phase 1: the row's best, in every block. */
  pk = 0;
  for (unsigned int i = 0; i < a.bpr; i++)
    pk = max (pk, ((volatile unsigned long long *) best)[i]);
  best_id = (int32_t) (0xffffffffu - (uint32_t) pk);
  {
    uint32_t b = (uint32_t) (pk >> 32);

    l_max = __uint_as_float ((b & 0x80000000u) ? (b & 0x7fffffffu) : ~b);
  }
  row_done = a.temperature <= 0.0 || l_max == -INFINITY;
  if (row_done && chunk == 0 && threadIdx.x == 0)
    a.out[row] = best_id;
  if (a.temperature <= 0.0)
    return;                     /* greedy: the whole grid leaves together */

#pragma unroll
  for (int j = 0; j < SAMPLE_PER_THREAD; j++)
    w[j] = ((cand >> j) & 1) && !row_done ?
        exp (((double) l[j] - (double) l_max) / a.temperature) : 0.0;

  if (top_k_on) {
    run_select (grid, a, rs, &phase, chunk, &sel, SELECT_COUNT,
        (double) a.top_k, row_done, l, w, cand, id0);
#pragma unroll
    for (int j = 0; j < SAMPLE_PER_THREAD; j++)
      if (!within (sel, sort_key (l[j], id0 + j, a)))
        cand &= ~(1u << j);
  }
  if (a.top_p < 1.0) {
    run_select (grid, a, rs, &phase, chunk, &sel, SELECT_MASS_GE, a.top_p,
        row_done, l, w, cand, id0);
#pragma unroll
    for (int j = 0; j < SAMPLE_PER_THREAD; j++)
      if (!within (sel, sort_key (l[j], id0 + j, a)))
        cand &= ~(1u << j);
  }
  if (a.min_p > 0.0) {
#pragma unroll
    for (int j = 0; j < SAMPLE_PER_THREAD; j++)
      if (!(w[j] >= a.min_p))
        cand &= ~(1u << j);
  }

  if (top_k_on) {
    /* The draw in candidate order: the candidate where the running
     * weight passes u. */
    run_select (grid, a, rs, &phase, chunk, &sel, SELECT_MASS_GT,
        a.coins[row], row_done, l, w, cand, id0);
    if (!row_done) {
#pragma unroll
      for (int j = 0; j < SAMPLE_PER_THREAD; j++)
        if (((cand >> j) & 1)
            && (sort_key (l[j], id0 + j, a) >> sel.shift) == sel.prefix)
          a.out[row] = (int32_t) (id0 + j);
    }
    return;
  }

  /* The draw in id order: per-block sums, then the block where the
   * running sum passes u finds the candidate. */
  {
    double mine = 0.0, before, total, acc;
    int j_last = -1;

#pragma unroll
    for (int j = 0; j < SAMPLE_PER_THREAD; j++)
      if ((cand >> j) & 1)
        mine += w[j];
    before = block_scan (mine, &total);
    if (threadIdx.x == 0)
      part[chunk] = total;
    next_phase (grid, a, rs, &phase, chunk);
    if (row_done)
      return;

    {
      double u, row_total = 0.0, prev = 0.0, base = 0.0;
      unsigned int hit = UINT_MAX, last = 0;

      for (unsigned int i = 0; i < a.bpr; i++)
        row_total += ((volatile double *) part)[i];
      u = a.coins[row] * row_total;
      for (unsigned int i = 0; i < a.bpr; i++) {
        double p = ((volatile double *) part)[i];

        if (p > 0.0)
          last = i;
        if (hit == UINT_MAX && p > 0.0 && prev + p > u) {
          hit = i;
          base = prev;
        }
        prev += p;
      }
      if (hit == UINT_MAX) {
        /* u at or above the total: the last candidate with w > 0. */
        hit = last;
        u = INFINITY;
      }
      if (chunk != hit)
        return;
      acc = base + before;
      if (threadIdx.x == 0) {
        s_pick = INT_MAX;
        s_last = -1;
      }
      __syncthreads ();
      {
        int found = -1;

#pragma unroll
        for (int j = 0; j < SAMPLE_PER_THREAD; j++) {
          if (((cand >> j) & 1) && w[j] > 0.0) {
            acc += w[j];
            j_last = j;
            if (found < 0 && u < acc)
              found = j;
          }
        }
        if (found >= 0)
          atomicMin (&s_pick, (int) (threadIdx.x * SAMPLE_PER_THREAD) + found);
        if (j_last >= 0)
          atomicMax (&s_last, (int) (threadIdx.x * SAMPLE_PER_THREAD) + j_last);
        __syncthreads ();
        /* None: rounding between the block sums and this walk left u at
         * the block's end; its last candidate with w > 0. */
        if (threadIdx.x == 0 && (s_pick != INT_MAX || s_last >= 0))
          a.out[row] = (int32_t) (chunk * SAMPLE_CHUNK
              + (s_pick != INT_MAX ? s_pick : s_last));
      }
    }
  }
}

static size_t
row_bytes (guint n_vocab)
{
  size_t bpr = div_up (n_vocab, SAMPLE_CHUNK);

  return (OFF_BEST + 16 * bpr + 255) / 256 * 256;
}

size_t
llm_cuda_sample_scratch_bytes (guint n_vocab, guint n_rows)
{
  return row_bytes (MAX (n_vocab, 1)) * MAX (n_rows, 1);
}

void
llm_cuda_sample (gint32 * ids_out_device, const float *logits, guint n_vocab,
    guint n_rows, float temperature, guint top_k, float top_p, float min_p,
    const double *coins_device, void *scratch, LlmCudaStream * stream)
{
  static int blocks_per_sm = 0;
  cudaStream_t s = llm_cuda_raw_stream (stream);
  SampleArgs a;
  unsigned int max_blocks, group, id_bits = 0;

  g_return_if_fail (ids_out_device != NULL && logits != NULL);
  g_return_if_fail (scratch != NULL);
  g_return_if_fail (n_vocab > 0);
  g_return_if_fail (temperature <= 0.0f || coins_device != NULL);
  if (n_rows == 0)
    return;
  llm_cuda_use_device ();
  if (g_atomic_int_get (&blocks_per_sm) == 0) {
    int b = 0;

    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor (&b,
            sample_logits_kernel, SAMPLE_THREADS, 0) != cudaSuccess || b < 1)
      b = 1;
    g_atomic_int_set (&blocks_per_sm, b);
  }
  max_blocks = (unsigned int) g_atomic_int_get (&blocks_per_sm)
      * (unsigned int) llm_cuda_n_sm ();
  while (id_bits < 32 && ((guint64) 1 << id_bits) < n_vocab)
    id_bits++;

  a.out = (int32_t *) ids_out_device;
  a.logits = logits;
  a.coins = coins_device;
  a.scratch = (unsigned char *) scratch;
  a.row_bytes = row_bytes (n_vocab);
  a.n = n_vocab;
  a.bpr = div_up (n_vocab, SAMPLE_CHUNK);
  a.id_bits = id_bits;
  a.temperature = temperature;
  a.top_k = top_k < n_vocab ? top_k : 0;
  a.top_p = top_p;
  a.min_p = MIN (min_p, 1.0f);
  /* A cooperative grid must fit on the GPU at once: 64 blocks for a
   * 262144 vocabulary, so rows go in groups. */
  g_return_if_fail (a.bpr <= max_blocks);
  group = max_blocks / a.bpr;
  for (guint r0 = 0; r0 < n_rows; r0 += group) {
    void *args[] = { &a };
    cudaError_t err;

    a.row0 = r0;
    a.rows = MIN (group, n_rows - r0);
    err = cudaLaunchCooperativeKernel ((const void *) sample_logits_kernel,
        dim3 (a.rows * a.bpr), dim3 (SAMPLE_THREADS), args, 0, s);
    if (err != cudaSuccess) {
      g_warning ("sample_logits launch: %s", cudaGetErrorString (err));
      return;
    }
  }
}
