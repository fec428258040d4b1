/* LLMasOS - attention_decode: one query position against a KV cache,
 * grouped-query, split along the sequence (flash-decoding).
 * CPU twin: llm_attention_causal() with one query.
 *
 * General pass 1 (attention_decode_split: F32 caches and the shapes the
 * fast path below does not take): one block per (chunk of positions, KV
 * head). The block holds the query heads that share the KV head (scaled by
 * 1/sqrt(head_dim)) in shared memory and walks its positions in tiles of
 * ATT_TILE with an online softmax: scores (a warp per ATT_POS_PER_WARP
 * positions, their keys read once into registers and dotted with every
 * query head of the group), a running maximum and sum per head, and the
 * output accumulated from each value row read once (a thread per
 * dimension, ATT_V_UNROLL positions loaded at once). It writes its
 * unnormalised output, maximum and sum; when the context fits in one chunk
 * it writes the normalised output itself.
 * Pass 2 (attention_decode_merge_many, attention_decode_merge after the
 * fast path): one block per query head rescales the chunks to the common
 * maximum and divides by the total sum (nothing to do for a single
 * chunk).
 *
 * The number of chunks is chosen so that n_kv_heads x chunks is a few
 * blocks per multiprocessor: a single sequence then fills the GPU even with
 * eight KV heads, where one block per head would leave most of it idle.
 *
 * Fast path (attention_decode_f16, F16 cache, head_dim 64, 128 or 256, up
 * to 8 query heads a KV head, 16-byte aligned rows): the same split, but
 * each key and value read once with 16-byte loads, streamed through shared
 * memory by cp.async, FAST_STAGES - 1 steps ahead; chunks of at least
 * FAST_MIN_SPLIT positions, about FAST_BLOCKS_PER_SM blocks a
 * multiprocessor. Called with the RoPE (llm_cuda_attention_decode_rope_at)
 * it rotates q and the new k, appends k and v to the cache, and needs no
 * second kernel: the last block of a KV head to finish merges its chunks
 * (merge_in_last_block; the count of finished blocks lives at the start
 * of the scratch, which must be zeroed once, and is set back to 0 by that
 * block). Timings of the two-kernel path: Llama-3-8B shape on an H100 (32/8 heads x 128, F16, grid
 * for 8192 positions, 32 layers replayed from a CUDA graph, both passes):
 * 5.4 us at 128 positions, 12.8 at 4096 (1.3 TB/s), 18.8 at 8192; the
 * previous kernel (2-byte loads, each query head re-reading its keys and
 * values, chunks of 32) took 21.6, 37.4 and 61.2. Tried on the way (same
 * machine, us at 128 / 4096 / 8192): FAST_UNROLL 4 5.4 / 14.1 / 18.9;
 * chunks of 256 5.4 / 14.6 / 18.8; 512 threads a block 6.4 / 16.8 / 24.8;
 * no programmatic launch 9.3 / 16.4 / 20.5 (before the grid was ordered
 * heads-first). What still costs: about 80 instructions a position and KV
 * head (32 of them the FP32 multiply-adds of 4 query heads x 128
 * dimensions, twice), so at 4096 positions the multiprocessors issue for
 * longer than DRAM needs (5.6 us); tensor cores (mma.sync with split-half
 * operands for accuracy) would be the next step.
 *
 * Both passes are launched with programmatic dependent launch
 * (llm-cuda-pdl.cuh): a kernel may start while the one before it
 * finishes, and waits for it (griddepcontrol.wait) before its first
 * memory access, which hides most of the launch gap between the passes.
 *
 * The kernels take the position count either by value or from device
 * memory (llm_cuda_attention_decode_at, for a decode step captured once as
 * a CUDA graph and replayed at every depth). Either way the chunk length is
 * worked out on the device from the count and the fixed number of chunks:
 * positions / chunks, at least ATT_MIN_SPLIT (FAST_MIN_SPLIT), so short
 * contexts use a few
 * chunks and the blocks past them exit at once; a grid sized for the
 * whole cache then costs little at depth 128.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-cuda-private.cuh"
#include "rope-angle.cuh"
#include "llm-cuda-pdl.cuh"
#include "kv-q8_0.cuh"

#define ATT_THREADS 128
#define ATT_WARPS (ATT_THREADS / LLM_CUDA_WARP)
#define ATT_TILE 64             /* positions scored together */
#define ATT_MAX_SPLITS 128      /* chunks at most: bounds the scratch */
#define ATT_MIN_SPLIT 32        /* positions a chunk at least */
#define ATT_POS_PER_WARP 4      /* keys a warp scores at once */
#define ATT_V_UNROLL 16         /* values a thread loads at once */
#define ATT_MAX_HEAD_DIM 256    /* keys held in 8 registers per lane */
#define ATT_HEADS_AT_ONCE 8     /* query heads accumulated in registers */
/* Pass 1 blocks aimed at per multiprocessor: 8 rather than 4 keeps more
 * loads in flight (F16 cache, 4096 positions, 32/8 heads x 128 on an H100:
 * 37.3 us rather than 51.5, with ATT_V_UNROLL 16 rather than 8). */
#define ATT_BLOCKS_PER_SM 8
#define MERGE_THREADS 256
#define MERGE_BATCH 16          /* partial outputs a thread loads at once */

#ifndef FAST_THREADS
#define FAST_THREADS 256
#endif
#ifndef FAST_UNROLL
#define FAST_UNROLL 2           /* rows a thread loads a step */
#endif
#ifndef FAST_STAGES
#define FAST_STAGES 3           /* ring slots: FAST_STAGES - 1 in flight */
#endif
#ifndef FAST_MIN_SPLIT
#define FAST_MIN_SPLIT 128      /* positions a chunk at least */
#endif
#define FAST_ROUND 64           /* chunk lengths a multiple of this */
#ifndef FAST_BLOCKS_PER_SM
#define FAST_BLOCKS_PER_SM 2
#endif

/* Element @c of position @pos of a key or value cache of @stride
 * elements a position (F32, F16, or Q8_0 as kv-q8_0.cuh lays it out). */
template <LlmDType T>
static __device__ __forceinline__ float
kv_at (const void *cache, size_t pos, size_t stride, unsigned int c)
{
  if (T == LLM_DTYPE_Q8_0)
    return kv_q8_0_load (cache, pos, stride, c);
  return load_plain<T> (cache, pos * stride + c);
}

/* The positions a query sees and how they are cut into @n_splits chunks:
 * [*lo, *hi) and chunks of *split_len (at least @min_split, a multiple of
 * @gran). @n_pos_dev (may be NULL: @n_pos is
 * used) is the query's position + 1, clamped to @max_pos so that a bad
 * count cannot read past the cache; 0 or less leaves nothing to see.
 * Window: a query at position p sees p - window + 1 .. p. */
static __device__ __forceinline__ void
decode_span (const gint32 * n_pos_dev, unsigned int n_pos,
    unsigned int max_pos, unsigned int window, unsigned int n_splits,
    unsigned int min_split, unsigned int gran, unsigned int *lo,
    unsigned int *hi, unsigned int *split_len)
{
  int np = n_pos_dev != NULL ? *n_pos_dev : (int) n_pos;
  unsigned int n = np > 0 ? min ((unsigned int) np, max_pos) : 0u;
  unsigned int sl;

  *hi = n;
  *lo = window > 0 && n > window ? n - window : 0u;
  sl = (n - *lo + n_splits - 1) / n_splits;
  *split_len = max (min_split, (sl + gran - 1) / gran * gran);
}

/* Shared memory of pass 1, in floats. */
static size_t
split_smem_floats (unsigned int group, unsigned int head_dim)
{
  return (size_t) group * (2 * head_dim + ATT_TILE + 3);
}

/* Grid: (n_splits, n_kv_heads). Partial results: @part_o [n_heads][n_splits]
 * [head_dim] unnormalised, @part_ml [n_heads][n_splits][2] maximum, sum. */
template <LlmDType T>
static __global__ void __launch_bounds__ (ATT_THREADS)
attention_decode_split (float *__restrict__ out, float *__restrict__ part_o,
    float *__restrict__ part_ml, const float *__restrict__ q,
    const void *__restrict__ k, const void *__restrict__ v,
    const gint32 * __restrict__ n_pos_dev, unsigned int n_pos,
    unsigned int max_pos, unsigned int group, unsigned int head_dim,
    size_t kv_stride, float scale, unsigned int window)
{
  extern __shared__ float smem[];
  float *qs = smem;                             /* [group][head_dim], scaled */
  float *acc = qs + group * head_dim;           /* [group][head_dim] */
  float *sc = acc + group * head_dim;           /* [group][ATT_TILE] */
  float *m = sc + group * ATT_TILE;             /* [group] running maximum */
  float *l = m + group;                         /* [group] running sum */
  float *alpha = l + group;                     /* [group] rescale of a tile */
  unsigned int split = blockIdx.x, kvh = blockIdx.y;
  unsigned int n_splits = gridDim.x;
  unsigned int warp = threadIdx.x / LLM_CUDA_WARP;
  unsigned int lane = threadIdx.x % LLM_CUDA_WARP;
  unsigned int h0 = kvh * group;                /* first query head */
  unsigned int lo, hi, split_len, p_begin, p_end, n_used;
  unsigned int kv_off = kvh * head_dim;

  pdl_wait ();
  decode_span (n_pos_dev, n_pos, max_pos, window, n_splits, ATT_MIN_SPLIT,
      16, &lo, &hi, &split_len);
  p_begin = lo + split * split_len;
  if (p_begin >= hi)
    return;                     /* past the context: pass 2 skips it */
  p_end = min (hi, p_begin + split_len);
  n_used = (hi - lo + split_len - 1) / split_len;

  for (unsigned int i = threadIdx.x; i < group * head_dim; i += ATT_THREADS) {
    qs[i] = q[(size_t) h0 * head_dim + i] * scale;
    acc[i] = 0.0f;
  }
  for (unsigned int h = threadIdx.x; h < group; h += ATT_THREADS) {
    m[h] = -INFINITY;
    l[h] = 0.0f;
  }
  pdl_launch_dependents ();
  __syncthreads ();

  for (unsigned int t0 = p_begin; t0 < p_end; t0 += ATT_TILE) {
    unsigned int nt = min (ATT_TILE, p_end - t0);

    /* Scores: a warp takes ATT_POS_PER_WARP positions at once, their keys
     * loaded into registers before the first use (several loads in flight),
     * each dotted with every query head of the group. */
    for (unsigned int pp0 = warp * ATT_POS_PER_WARP; pp0 < nt;
        pp0 += ATT_WARPS * ATT_POS_PER_WARP) {
      float kr[ATT_POS_PER_WARP][ATT_MAX_HEAD_DIM / LLM_CUDA_WARP];

#pragma unroll
      for (unsigned int u = 0; u < ATT_POS_PER_WARP; u++) {
#pragma unroll
        for (unsigned int j = 0; j < ATT_MAX_HEAD_DIM / LLM_CUDA_WARP; j++) {
          unsigned int d = lane + j * LLM_CUDA_WARP;

          kr[u][j] = pp0 + u < nt && d < head_dim ? kv_at<T> (k,
              t0 + pp0 + u, kv_stride, kv_off + d) : 0.0f;
        }
      }
      for (unsigned int h = 0; h < group; h++) {
        float s[ATT_POS_PER_WARP];

#pragma unroll
        for (unsigned int u = 0; u < ATT_POS_PER_WARP; u++)
          s[u] = 0.0f;
#pragma unroll
        for (unsigned int j = 0; j < ATT_MAX_HEAD_DIM / LLM_CUDA_WARP; j++) {
          unsigned int d = lane + j * LLM_CUDA_WARP;
          float qv = d < head_dim ? qs[h * head_dim + d] : 0.0f;

#pragma unroll
          for (unsigned int u = 0; u < ATT_POS_PER_WARP; u++)
            s[u] += qv * kr[u][j];
        }
#pragma unroll
        for (unsigned int u = 0; u < ATT_POS_PER_WARP; u++) {
          s[u] = warp_sum (s[u]);
          if (lane == 0 && pp0 + u < nt)
            sc[h * ATT_TILE + pp0 + u] = s[u];
        }
      }
    }
    __syncthreads ();

    /* Online softmax: a warp per query head. */
    for (unsigned int h = warp; h < group; h += ATT_WARPS) {
      float mx = -INFINITY, sum = 0.0f, m_new, a;

      for (unsigned int pp = lane; pp < nt; pp += LLM_CUDA_WARP)
        mx = fmaxf (mx, sc[h * ATT_TILE + pp]);
      mx = warp_max (mx);
      m_new = fmaxf (m[h], mx);
      a = m[h] == -INFINITY ? 0.0f : expf (m[h] - m_new);
      for (unsigned int pp = lane; pp < nt; pp += LLM_CUDA_WARP) {
        float e = expf (sc[h * ATT_TILE + pp] - m_new);

        sc[h * ATT_TILE + pp] = e;
        sum += e;
      }
      sum = warp_sum (sum);
      __syncwarp ();
      if (lane == 0) {
        l[h] = l[h] * a + sum;
        m[h] = m_new;
        alpha[h] = a;
      }
    }
    __syncthreads ();

    /* Output: a thread per dimension, each value read once for up to
     * ATT_HEADS_AT_ONCE query heads held in registers. */
    for (unsigned int d = threadIdx.x; d < head_dim; d += ATT_THREADS) {
      for (unsigned int hg = 0; hg < group; hg += ATT_HEADS_AT_ONCE) {
        float o[ATT_HEADS_AT_ONCE];
        unsigned int pp = 0;

#pragma unroll
        for (unsigned int j = 0; j < ATT_HEADS_AT_ONCE; j++)
          o[j] = hg + j < group ? acc[(hg + j) * head_dim + d] * alpha[hg + j]
              : 0.0f;

        /* ATT_V_UNROLL values loaded before they are used. */
        for (; pp + ATT_V_UNROLL <= nt; pp += ATT_V_UNROLL) {
          float vv[ATT_V_UNROLL];

#pragma unroll
          for (unsigned int u = 0; u < ATT_V_UNROLL; u++)
            vv[u] = kv_at<T> (v, t0 + pp + u, kv_stride, kv_off + d);
#pragma unroll
          for (unsigned int u = 0; u < ATT_V_UNROLL; u++)
#pragma unroll
            for (unsigned int j = 0; j < ATT_HEADS_AT_ONCE; j++)
              if (hg + j < group)
                o[j] += sc[(hg + j) * ATT_TILE + pp + u] * vv[u];
        }
        for (; pp < nt; pp++) {
          float vv = kv_at<T> (v, t0 + pp, kv_stride, kv_off + d);

#pragma unroll
          for (unsigned int j = 0; j < ATT_HEADS_AT_ONCE; j++)
            if (hg + j < group)
              o[j] += sc[(hg + j) * ATT_TILE + pp] * vv;
        }
#pragma unroll
        for (unsigned int j = 0; j < ATT_HEADS_AT_ONCE; j++)
          if (hg + j < group)
            acc[(hg + j) * head_dim + d] = o[j];
      }
    }
    __syncthreads ();
  }

  if (n_used == 1) {
    /* A single chunk: the output itself, pass 2 has nothing to do. */
    for (unsigned int i = threadIdx.x; i < group * head_dim;
        i += ATT_THREADS)
      out[(size_t) h0 * head_dim + i] = acc[i] / l[i / head_dim];
    return;
  }
  for (unsigned int i = threadIdx.x; i < group * head_dim; i += ATT_THREADS) {
    unsigned int h = i / head_dim, d = i % head_dim;

    part_o[((size_t) (h0 + h) * n_splits + split) * head_dim + d] = acc[i];
  }
  for (unsigned int h = threadIdx.x; h < group; h += ATT_THREADS) {
    part_ml[((size_t) (h0 + h) * n_splits + split) * 2] = m[h];
    part_ml[((size_t) (h0 + h) * n_splits + split) * 2 + 1] = l[h];
  }
}

/* ---- Fast path: F16 cache, head_dim 64/128/256, up to 8 query heads a KV
 * head (attention_decode_f16). ---- */

/* Loads up to 16 bytes global -> shared without registers: @bytes 0 fills
 * zeros and reads nothing (rows past the chunk). */
static __device__ __forceinline__ void
cp_async16 (void *dst, const void *src, unsigned int bytes)
{
  unsigned int d = (unsigned int) __cvta_generic_to_shared (dst);

  asm volatile ("cp.async.cg.shared.global [%0], [%1], 16, %2;\n"
      :: "r" (d), "l" (src), "r" (bytes) : "memory");
}

/* Loads @N (4 or 8) bytes the same way (through L1: .cg takes 16 only). */
template <int N>
static __device__ __forceinline__ void
cp_async_small (void *dst, const void *src, unsigned int bytes)
{
  unsigned int d = (unsigned int) __cvta_generic_to_shared (dst);

  asm volatile ("cp.async.ca.shared.global [%0], [%1], %2, %3;\n"
      :: "r" (d), "l" (src), "n" (N), "r" (bytes) : "memory");
}

static __device__ __forceinline__ void
cp_async_commit (void)
{
  asm volatile ("cp.async.commit_group;\n" ::: "memory");
}

template <int N>
static __device__ __forceinline__ void
cp_async_wait (void)
{
  asm volatile ("cp.async.wait_group %0;\n" :: "n" (N) : "memory");
}

/* 2^x, one MUFU instruction (relative error about 2^-22; 0 for the
 * large negative scores of masked rows). */
static __device__ __forceinline__ float
fast_exp2 (float x)
{
  float y;

  asm ("ex2.approx.ftz.f32 %0, %1;\n" : "=f" (y) : "f" (x));
  return y;
}

/* 8 halves (16 bytes) to floats. */
static __device__ __forceinline__ void
half8_to_float (const uint4 & r, float *f)
{
  const __half2 *h = (const __half2 *) &r;

#pragma unroll
  for (int i = 0; i < 4; i++) {
    float2 t = __half22float2 (h[i]);

    f[2 * i] = t.x;
    f[2 * i + 1] = t.y;
  }
}

/* A ring slot of the Q8_0 cache to floats: its 8 quants (.x, .y) as they
 * are, the scale of their block (.z) returned, for the caller to apply
 * once a row. A quant b is widened without an int-to-float conversion
 * (a quarter of the FP32 rate, what bound the kernel at depth): b + 128
 * is put by a byte permute into the low mantissa bits of 2^23, and
 * 2^23 + 128 subtracted, both exact. */
static __device__ __forceinline__ float
q8x8_to_float (const uint4 & r, float *f)
{
  uint32_t w[2] = { r.x ^ 0x80808080u, r.y ^ 0x80808080u };

#pragma unroll
  for (int i = 0; i < 2; i++) {
#pragma unroll
    for (int j = 0; j < 4; j++)
      f[4 * i + j] = __uint_as_float (__byte_perm (w[i], 0x4b00u,
              0x5440u | j)) - 8388736.0f;
  }
  return __uint_as_float (r.z);
}

/* The decode step's RoPE and cache append, done by attention_decode_f16
 * where it is asked to (llm_cuda_attention_decode_rope_at): q and the new
 * k, v are the unrotated q|k|v row at @kv_new - q_dim; theta 0: q already
 * rotated and the cache already holding the new position. */
typedef struct
{
  const float *kv_new;          /* k of the new token, then v */
  unsigned int kv_dim;
  float theta;
  bool interleaved;
  /* the chunks without the new position issue their first loads before
   * the wait for the kernel before (llm_cuda_attention_decode_rope_at) */
  bool early_loads;
} DecodeRope;

/* Eight floats from 16-byte aligned @p. */
static __device__ __forceinline__ void
load8 (float *x, const float *p)
{
  float4 a = *(const float4 *) p, b = *(const float4 *) (p + 4);

  x[0] = a.x;
  x[1] = a.y;
  x[2] = a.z;
  x[3] = a.w;
  x[4] = b.x;
  x[5] = b.y;
  x[6] = b.z;
  x[7] = b.w;
}

/* Elements 8 dl .. 8 dl + 7 of query head @h (zeros unless @ok), rotated
 * by @cs when rope.theta is set: pairs (2i, 2i + 1) inside the lane's
 * eight, or (i, i + D / 2), whose other halves another lane holds and
 * this one loads too. */
template <unsigned int D>
static __device__ __forceinline__ void
load_query (float *x, const float *q, unsigned int h, unsigned int dl,
    bool ok, const DecodeRope & rope, const float (*cs)[D / 2])
{
  const float *qh = q + (size_t) h * D;
  unsigned int d0 = dl * 8;
  float y[8];

  if (!ok) {
#pragma unroll
    for (unsigned int j = 0; j < 8; j++)
      x[j] = 0.0f;
    return;
  }
  load8 (x, qh + d0);
  if (rope.theta <= 0.0f)
    return;
  if (rope.interleaved) {
#pragma unroll
    for (unsigned int j = 0; j < 8; j += 2) {
      unsigned int i = (d0 + j) / 2;
      float x0 = x[j], x1 = x[j + 1];

      x[j] = x0 * cs[0][i] - x1 * cs[1][i];
      x[j + 1] = x0 * cs[1][i] + x1 * cs[0][i];
    }
    return;
  }
  {
    unsigned int p0 = d0 < D / 2 ? d0 + D / 2 : d0 - D / 2;

    load8 (y, qh + p0);
  }
#pragma unroll
  for (unsigned int j = 0; j < 8; j++) {
    unsigned int d = d0 + j, i = d % (D / 2);

    /* pair (i, i + D/2): x0 = element i, x1 = element i + D/2 */
    x[j] = d < D / 2 ? x[j] * cs[0][i] - y[j] * cs[1][i]
        : y[j] * cs[1][i] + x[j] * cs[0][i];
  }
}

/* The G query heads of KV head group @h0 .. (lane @dl's eight elements
 * each), times @scale and log2(e). */
template <unsigned int D, unsigned int G>
static __device__ __forceinline__ void
load_queries (float (*qf)[8], const float *q, unsigned int h0,
    unsigned int dl, unsigned int group, float scale, const DecodeRope & rope,
    const float (*cs)[D / 2])
{
  float f = scale * 1.4426950408889634f;

#pragma unroll
  for (unsigned int h = 0; h < G; h++) {
    float x[8];

    load_query<D> (x, q, h0 + h, dl, h < group, rope, cs);
#pragma unroll
    for (unsigned int j = 0; j < 8; j++)
      qf[h][j] = x[j] * f;
  }
}

/* Row @pos of KV head @kvh in the F16 caches: the new key, rotated, and
 * the new value, as rope_kv_store.cu writes them. */
template <unsigned int D>
static __device__ __forceinline__ void
store_new_kv (__half * k, __half * v, const DecodeRope & rope,
    unsigned int kvh, unsigned int pos, size_t kv_stride,
    const float (*cs)[D / 2])
{
  const float *kn = rope.kv_new + (size_t) kvh * D;
  const float *vn = rope.kv_new + rope.kv_dim + (size_t) kvh * D;
  size_t row = (size_t) pos * kv_stride + (size_t) kvh * D;

  for (unsigned int i = threadIdx.x; i < D / 2; i += FAST_THREADS) {
    unsigned int i0 = rope.interleaved ? 2 * i : i;
    unsigned int i1 = rope.interleaved ? 2 * i + 1 : i + D / 2;
    float x0 = kn[i0], x1 = kn[i1];

    k[row + i0] = __float2half_rn (x0 * cs[0][i] - x1 * cs[1][i]);
    k[row + i1] = __float2half_rn (x0 * cs[1][i] + x1 * cs[0][i]);
  }
  for (unsigned int i = threadIdx.x; i < D; i += FAST_THREADS)
    v[row + i] = __float2half_rn (vn[i]);
}

/* store_new_kv for the Q8_0 caches (kv-q8_0.cuh): thread i < D rotates
 * element i of the key and rounds it and element i of the value, a warp
 * a 32-block, with rope_kv_store.cu's arithmetic. */
template <unsigned int D>
static __device__ __forceinline__ void
store_new_kv_q8_0 (void *k, void *v, const DecodeRope & rope,
    unsigned int kvh, unsigned int pos, size_t kv_stride,
    const float (*cs)[D / 2])
{
  const float *kn = rope.kv_new + (size_t) kvh * D;
  const float *vn = rope.kv_new + rope.kv_dim + (size_t) kvh * D;
  unsigned int i = threadIdx.x;

  static_assert (D % 32 == 0 && D <= FAST_THREADS, "whole warps a row");
  if (i < D) {
    unsigned int p = rope.interleaved ? i / 2 : i % (D / 2);
    unsigned int i0 = rope.interleaved ? 2 * p : p;
    unsigned int i1 = rope.interleaved ? 2 * p + 1 : p + D / 2;
    float x0 = kn[i0], x1 = kn[i1];
    float kr = i == i0 ? x0 * cs[0][p] - x1 * cs[1][p]
        : x0 * cs[1][p] + x1 * cs[0][p];

    kv_q8_0_store_block (k, pos, kv_stride, kvh * D + i, kr);
    kv_q8_0_store_block (v, pos, kv_stride, kvh * D + i, vn[i]);
  }
}

/* The merge of the chunks of KV head @kvh, by whichever of its blocks
 * finishes last (counted in @done[kvh], which it sets back to 0 for the
 * next launch), so that no second kernel is launched: each block's
 * partial output and its maximum (log2 units) and sum are in @part_o /
 * @part_ml; the last one rescales them to the common maximum and divides
 * by the total. Reads of the other blocks' partials go to L2 (__ldcg).
 * @wt: G x ATT_MAX_SPLITS floats of shared memory, for the weights
 * (weight / total) of the chunks. */
template <unsigned int D, unsigned int G>
static __device__ void
merge_in_last_block (float *__restrict__ out, const float *part_o,
    const float *part_ml, unsigned int *done, unsigned int kvh,
    unsigned int h0, unsigned int group, unsigned int n_splits,
    unsigned int n_used, float (*wt)[ATT_MAX_SPLITS])
{
  __shared__ bool last;
  unsigned int warp = threadIdx.x / LLM_CUDA_WARP;
  unsigned int lane = threadIdx.x % LLM_CUDA_WARP;

  __threadfence ();             /* this block's partials before the count */
  __syncthreads ();
  if (threadIdx.x == 0) {
    last = atomicAdd (done + kvh, 1u) == n_used - 1;
    if (last)
      done[kvh] = 0;
  }
  __syncthreads ();
  if (!last)
    return;
  __threadfence ();

  /* a warp a query head: the chunks' weights */
  for (unsigned int h = warp; h < group; h += FAST_THREADS / LLM_CUDA_WARP) {
    const float *ml = part_ml + (size_t) (h0 + h) * n_splits * 2;
    float mx = -1e30f, total = 0.0f;

    for (unsigned int s = lane; s < n_used; s += LLM_CUDA_WARP)
      mx = fmaxf (mx, __ldcg (ml + 2 * s));
    mx = warp_max (mx);
    for (unsigned int s = lane; s < n_used; s += LLM_CUDA_WARP) {
      float e = fast_exp2 (__ldcg (ml + 2 * s) - mx);

      wt[h][s] = e;
      total += e * __ldcg (ml + 2 * s + 1);
    }
    total = warp_sum (total);
    __syncwarp ();
    for (unsigned int s = lane; s < n_used; s += LLM_CUDA_WARP)
      wt[h][s] /= total;
  }
  __syncthreads ();
  for (unsigned int i = threadIdx.x; i < group * D; i += FAST_THREADS) {
    unsigned int h = i / D, d = i % D;
    const float *po = part_o + (size_t) (h0 + h) * n_splits * D + d;
    float a0 = 0.0f, a1 = 0.0f;
    unsigned int s = 0;

    for (; s + 1 < n_used; s += 2) {
      a0 += wt[h][s] * __ldcg (po + (size_t) s * D);
      a1 += wt[h][s + 1] * __ldcg (po + (size_t) (s + 1) * D);
    }
    if (s < n_used)
      a0 += wt[h][s] * __ldcg (po + (size_t) s * D);
    out[(size_t) (h0 + h) * D + d] = a0 + a1;
  }
}

/* Grid (n_kv_heads, n_splits), FAST_THREADS threads: the heads of a chunk
 * are consecutive blocks, so that at short contexts the few working blocks
 * land on different multiprocessors. Each lane owns 8
 * dimensions (one 16-byte load) of a row: D / 8 lanes share a row, a warp
 * takes 32 / (D / 8) rows at once, and each lane keeps an online softmax of
 * its own rows for all G query heads (queries and outputs in registers).
 * Keys and values stream through a per-thread ring of FAST_STAGES shared
 * memory slots filled by cp.async (each thread reads back only what it
 * copied: no barrier in the loop), so FAST_STAGES - 1 steps of loads are in
 * flight without holding registers. The lanes, then the warps, are merged
 * at the end. With a single chunk the block writes the normalised output
 * itself (pass 2 then has nothing to do). */
template <unsigned int D, unsigned int G, bool Q8>
static __global__ void __launch_bounds__ (FAST_THREADS,
    FAST_THREADS >= 512 || G > 4 ? 1 : 2)
attention_decode_f16 (float *__restrict__ out, float *__restrict__ part_o,
    float *__restrict__ part_ml, unsigned int *__restrict__ done,
    const float *__restrict__ q,
    void *__restrict__ k, void *__restrict__ v,
    const gint32 * __restrict__ n_pos_dev, unsigned int n_pos,
    unsigned int max_pos, unsigned int group, size_t kv_stride, float scale,
    unsigned int window, DecodeRope rope)
{
  constexpr unsigned int LPR = D / 8;           /* lanes a row */
  constexpr unsigned int RPW = LLM_CUDA_WARP / LPR;     /* rows a warp load */
  constexpr unsigned int NW = FAST_THREADS / LLM_CUDA_WARP;
  constexpr unsigned int ROWS = NW * RPW;       /* rows a block load */
  constexpr unsigned int STEP = ROWS * FAST_UNROLL;     /* rows a step */
  constexpr float NEG = -1e30f; /* finite: masked rows, no inf - inf */
  extern __shared__ uint4 ring[];       /* [stage][u][k, v][thread] */
  unsigned int split = blockIdx.y, kvh = blockIdx.x;
  unsigned int n_splits = gridDim.y;
  unsigned int warp = threadIdx.x / LLM_CUDA_WARP;
  unsigned int lane = threadIdx.x % LLM_CUDA_WARP;
  unsigned int sub = lane / LPR, dl = lane % LPR;
  unsigned int h0 = kvh * group;
  unsigned int lo, hi, split_len, p_begin, p_end, n_steps, n_used;
  /* bytes a position; this lane's eight elements (Q8: their quants, and
   * the scale of their block at @ks / @vs) */
  size_t rs = Q8 ? kv_q8_0_row_bytes (kv_stride) : kv_stride * 2;
  size_t c8 = (size_t) kvh * D + dl * 8;
  const char *kb = (const char *) k + (Q8 ? c8 : c8 * 2);
  const char *vb = (const char *) v + (Q8 ? c8 : c8 * 2);
  const char *ks = (const char *) k + kv_stride + c8 / 32 * 4;
  const char *vs = (const char *) v + kv_stride + c8 / 32 * 4;
  float qf[G][8], o[G][8], m[G], l[G];
  __shared__ float rope_cs[2][D / 2];   /* cos, sin of each pair's angle */

  /* The count was written before the step's first kernel ran (a copy the
   * stream orders before it), so it is read before the wait for the
   * kernel before this one. */
  decode_span (n_pos_dev, n_pos, max_pos, window, n_splits, FAST_MIN_SPLIT,
      FAST_ROUND, &lo, &hi, &split_len);
  p_begin = lo + split * split_len;
  p_end = min (hi, p_begin + split_len);
  n_steps = p_begin < hi ? (p_end - p_begin + STEP - 1) / STEP : 0;

  /* Step @it of this thread: FAST_UNROLL rows of keys and values. */
  auto issue = [&](unsigned int it) {
    uint4 *slot = ring + (size_t) (it % FAST_STAGES) * FAST_UNROLL * 2
        * FAST_THREADS + threadIdx.x;

#pragma unroll
    for (unsigned int u = 0; u < FAST_UNROLL; u++) {
      unsigned int t = p_begin + it * STEP + u * ROWS + warp * RPW + sub;
      bool ok = t < p_end;
      size_t off = ok ? (size_t) t * rs : 0;

      if (Q8) {
        char *ksl = (char *) (slot + (2 * u) * FAST_THREADS);
        char *vsl = (char *) (slot + (2 * u + 1) * FAST_THREADS);

        cp_async_small<8> (ksl, kb + off, ok ? 8 : 0);
        cp_async_small<4> (ksl + 8, ks + off, ok ? 4 : 0);
        cp_async_small<8> (vsl, vb + off, ok ? 8 : 0);
        cp_async_small<4> (vsl + 8, vs + off, ok ? 4 : 0);
      } else {
        cp_async16 (slot + (2 * u) * FAST_THREADS, kb + off, ok ? 16 : 0);
        cp_async16 (slot + (2 * u + 1) * FAST_THREADS, vb + off,
            ok ? 16 : 0);
      }
    }
  };
  auto issue_first = [&]() {
#pragma unroll
    for (unsigned int s = 0; s + 1 < FAST_STAGES; s++) {
      if (s < n_steps)
        issue (s);
      cp_async_commit ();
    }
  };

  /* A chunk before the one with the new position reads only rows that
   * earlier steps (or a prefill) wrote: its first loads go out now, while
   * the kernel before this one (whose q it needs) finishes. */
  bool early = rope.early_loads && p_end < hi;

  if (early)
    issue_first ();
  pdl_wait ();
  /* The queries, pre-scaled so that exp2 gives the softmax: loaded while
   * the count is, or, when the kernel does the RoPE, rotated once the
   * position is known. */
  if (rope.theta <= 0.0f)
    load_queries<D, G> (qf, q, h0, dl, group, scale, rope, rope_cs);
  if (p_begin >= hi) {
    /* past the context; with nothing to attend to (a count of 0), zeros,
     * not NaNs */
    if (split == 0)
      for (unsigned int i = threadIdx.x; i < group * D; i += FAST_THREADS)
        out[(size_t) h0 * D + i] = 0.0f;
    return;
  }
  if (rope.theta > 0.0f) {
    /* the new token's position is the last one seen */
    for (unsigned int i = threadIdx.x; i < D / 2; i += FAST_THREADS)
      rope_angle_cs (i, D, hi - 1, rope.theta, &rope_cs[0][i],
          &rope_cs[1][i]);
    __syncthreads ();
    load_queries<D, G> (qf, q, h0, dl, group, scale, rope, rope_cs);
  }
#pragma unroll
  for (unsigned int h = 0; h < G; h++) {
#pragma unroll
    for (unsigned int j = 0; j < 8; j++)
      o[h][j] = 0.0f;
    m[h] = NEG;
    l[h] = 0.0f;
  }
  n_used = (hi - lo + split_len - 1) / split_len;
  if (rope.theta > 0.0f && p_end == hi) {
    /* the chunk that holds the new position appends its key (rotated)
     * and value to the cache before it reads them */
    if (Q8)
      store_new_kv_q8_0<D> (k, v, rope, kvh, hi - 1, kv_stride, rope_cs);
    else
      store_new_kv<D> ((__half *) k, (__half *) v, rope, kvh, hi - 1,
          kv_stride, rope_cs);
    __threadfence ();
    __syncthreads ();
  }

  if (!early)
    issue_first ();

  pdl_launch_dependents ();

  for (unsigned int it = 0; it < n_steps; it++) {
    const uint4 *slot = ring + (size_t) (it % FAST_STAGES) * FAST_UNROLL * 2
        * FAST_THREADS + threadIdx.x;
    float s[FAST_UNROLL][G];

    if (it + FAST_STAGES - 1 < n_steps)
      issue (it + FAST_STAGES - 1);
    cp_async_commit ();
    cp_async_wait<FAST_STAGES - 1> ();

    /* Scores: a partial dot product over this lane's 8 dimensions, summed
     * over the row's lanes. */
#pragma unroll
    for (unsigned int u = 0; u < FAST_UNROLL; u++) {
      float kf[8], dk = 1.0f;

      if (Q8)
        dk = q8x8_to_float (slot[(2 * u) * FAST_THREADS], kf);
      else
        half8_to_float (slot[(2 * u) * FAST_THREADS], kf);
#pragma unroll
      for (unsigned int h = 0; h < G; h++) {
        float a = 0.0f;

#pragma unroll
        for (unsigned int j = 0; j < 8; j++)
          a = fmaf (qf[h][j], kf[j], a);
        /* (the lane's 8 quants share their block's scale) */
        s[u][h] = Q8 ? a * dk : a;
      }
    }
#pragma unroll
    for (unsigned int off = LPR / 2; off > 0; off /= 2)
#pragma unroll
      for (unsigned int u = 0; u < FAST_UNROLL; u++)
#pragma unroll
        for (unsigned int h = 0; h < G; h++)
          s[u][h] += __shfl_xor_sync (0xffffffffu, s[u][h], off);
    if (p_begin + (it + 1) * STEP > p_end) {
      /* The last step: rows past the chunk out. */
#pragma unroll
      for (unsigned int u = 0; u < FAST_UNROLL; u++) {
        bool ok = p_begin + it * STEP + u * ROWS + warp * RPW + sub < p_end;

#pragma unroll
        for (unsigned int h = 0; h < G; h++)
          s[u][h] = ok ? s[u][h] : NEG;
      }
    }

    /* Online softmax of this lane's rows; the outputs are rescaled only
     * when a maximum grew somewhere in the warp (rarely after the first
     * steps). */
    {
      float a[G];
      bool grew = false;

#pragma unroll
      for (unsigned int h = 0; h < G; h++) {
        float mx = m[h], sum = 0.0f;

#pragma unroll
        for (unsigned int u = 0; u < FAST_UNROLL; u++)
          mx = fmaxf (mx, s[u][h]);
        grew |= mx > m[h];
        a[h] = fast_exp2 (m[h] - mx);
#pragma unroll
        for (unsigned int u = 0; u < FAST_UNROLL; u++) {
          s[u][h] = fast_exp2 (s[u][h] - mx);
          sum += s[u][h];
        }
        m[h] = mx;
        l[h] = l[h] * a[h] + sum;
      }
      if (__any_sync (0xffffffffu, grew)) {
#pragma unroll
        for (unsigned int h = 0; h < G; h++)
#pragma unroll
          for (unsigned int j = 0; j < 8; j++)
            o[h][j] *= a[h];
      }
    }

    /* Values, weighted (zeros past the chunk). */
#pragma unroll
    for (unsigned int u = 0; u < FAST_UNROLL; u++) {
      float vf[8], dv = 1.0f;

      if (Q8)
        dv = q8x8_to_float (slot[(2 * u + 1) * FAST_THREADS], vf);
      else
        half8_to_float (slot[(2 * u + 1) * FAST_THREADS], vf);
#pragma unroll
      for (unsigned int h = 0; h < G; h++) {
        float p = Q8 ? s[u][h] * dv : s[u][h];

#pragma unroll
        for (unsigned int j = 0; j < 8; j++)
          o[h][j] = fmaf (p, vf[j], o[h][j]);
      }
    }
  }
  cp_async_wait<0> ();

  /* The rows of a warp load, merged across lanes. */
#pragma unroll
  for (unsigned int off = LLM_CUDA_WARP / 2; off >= LPR; off /= 2) {
#pragma unroll
    for (unsigned int h = 0; h < G; h++) {
      float mo = __shfl_xor_sync (0xffffffffu, m[h], off);
      float lo2 = __shfl_xor_sync (0xffffffffu, l[h], off);
      float mx = fmaxf (m[h], mo), a = fast_exp2 (m[h] - mx);
      float b = fast_exp2 (mo - mx);

      l[h] = l[h] * a + lo2 * b;
      m[h] = mx;
#pragma unroll
      for (unsigned int j = 0; j < 8; j++)
        o[h][j] = o[h][j] * a
            + __shfl_xor_sync (0xffffffffu, o[h][j], off) * b;
    }
  }

  /* Then the warps, through shared memory (the ring is free now). */
  __syncthreads ();
  {
    float *wo = (float *) ring;                 /* [NW][G][D] */
    float *wm = wo + NW * G * D;                /* [NW][G] */
    float *wl = wm + NW * G;                    /* [NW][G] */

    if (sub == 0) {
#pragma unroll
      for (unsigned int h = 0; h < G; h++) {
#pragma unroll
        for (unsigned int j = 0; j < 8; j++)
          wo[(warp * G + h) * D + dl * 8 + j] = o[h][j];
        if (dl == 0) {
          wm[warp * G + h] = m[h];
          wl[warp * G + h] = l[h];
        }
      }
    }
    __syncthreads ();
    for (unsigned int i = threadIdx.x; i < group * D; i += FAST_THREADS) {
      unsigned int h = i / D, d = i % D;
      float mx = NEG, sum = 0.0f, acc = 0.0f;

#pragma unroll
      for (unsigned int w = 0; w < NW; w++)
        mx = fmaxf (mx, wm[w * G + h]);
#pragma unroll
      for (unsigned int w = 0; w < NW; w++) {
        float e = fast_exp2 (wm[w * G + h] - mx);

        sum += e * wl[w * G + h];
        acc += e * wo[(w * G + h) * D + d];
      }
      if (n_used == 1)
        out[(size_t) (h0 + h) * D + d] = acc / sum;
      else {
        part_o[((size_t) (h0 + h) * n_splits + split) * D + d] = acc;
        if (d == 0) {
          /* the maximum in log2 units for merge_in_last_block, natural
           * ones for attention_decode_merge */
          part_ml[((size_t) (h0 + h) * n_splits + split) * 2] =
              done != NULL ? mx : mx * 0.6931471805599453f;
          part_ml[((size_t) (h0 + h) * n_splits + split) * 2 + 1] = sum;
        }
      }
    }
  }
  if (n_used > 1 && done != NULL)        /* (the ring is free again) */
    merge_in_last_block<D, G> (out, part_o, part_ml, done, kvh, h0, group,
        n_splits, n_used, (float (*)[ATT_MAX_SPLITS]) ring);
}

/* How many chunks pass 1 filled for query head blockIdx.x; pass 2 has
 * nothing to do unless that is more than one. With nothing to attend to
 * (a count of 0) the head's output is written here: zeros, not NaNs. */
static __device__ unsigned int
merge_chunks_used (float *out, const gint32 * n_pos_dev, unsigned int n_pos,
    unsigned int max_pos, unsigned int window, unsigned int n_splits,
    unsigned int min_split, unsigned int gran, unsigned int head_dim)
{
  unsigned int lo, hi, split_len, n_used;

  decode_span (n_pos_dev, n_pos, max_pos, window, n_splits, min_split, gran,
      &lo, &hi, &split_len);
  n_used = (hi - lo + split_len - 1) / split_len;
  if (n_used == 0)
    for (unsigned int d = threadIdx.x; d < head_dim; d += blockDim.x)
      out[(size_t) blockIdx.x * head_dim + d] = 0.0f;
  return n_used;
}

/* Pass 2 after the general pass 1, whose chunks can be many (up to
 * ATT_MAX_SPLITS of ATT_MIN_SPLIT positions). Grid: n_heads blocks of
 * MERGE_THREADS. Only the chunks that pass 1 filled are read (none when
 * there was a single one: pass 1 wrote @out); their outputs are summed by several groups of threads
 * at once (four loads in flight each), then across the groups. */
static __global__ void __launch_bounds__ (MERGE_THREADS)
attention_decode_merge_many (float *__restrict__ out,
    const float *__restrict__ part_o, const float *__restrict__ part_ml,
    const gint32 * __restrict__ n_pos_dev, unsigned int n_pos,
    unsigned int max_pos, unsigned int window, unsigned int n_splits,
    unsigned int min_split, unsigned int gran, unsigned int head_dim)
{
  __shared__ float w[ATT_MAX_SPLITS];
  __shared__ float red[MERGE_THREADS];
  __shared__ float inv_total;
  unsigned int h = blockIdx.x;
  const float *ml = part_ml + (size_t) h * n_splits * 2;
  const float *po = part_o + (size_t) h * n_splits * head_dim;
  unsigned int n_used;
  unsigned int dt = min (head_dim, (unsigned int) MERGE_THREADS);
  unsigned int n_sg = MERGE_THREADS / dt;
  unsigned int sg = threadIdx.x / dt, dl = threadIdx.x % dt;

  pdl_wait ();
  n_used = merge_chunks_used (out, n_pos_dev, n_pos, max_pos, window,
      n_splits, min_split, gran, head_dim);
  if (n_used <= 1)
    return;

  if (threadIdx.x < LLM_CUDA_WARP) {
    float mx = -INFINITY, total = 0.0f;

    for (unsigned int s = threadIdx.x; s < n_used; s += LLM_CUDA_WARP)
      mx = fmaxf (mx, ml[2 * s]);
    mx = warp_max (mx);
    for (unsigned int s = threadIdx.x; s < n_used; s += LLM_CUDA_WARP) {
      float e = expf (ml[2 * s] - mx);

      w[s] = e;
      total += e * ml[2 * s + 1];
    }
    total = warp_sum (total);
    if (threadIdx.x == 0)
      inv_total = 1.0f / total;
  }
  __syncthreads ();

  for (unsigned int d0 = 0; d0 < head_dim; d0 += dt) {
    unsigned int d = d0 + dl;
    float o0 = 0.0f, o1 = 0.0f, o2 = 0.0f, o3 = 0.0f;

    if (sg < n_sg && d < head_dim) {
      unsigned int s = sg;

      for (; s + 3 * n_sg < n_used; s += 4 * n_sg) {
        o0 += w[s] * po[(size_t) s * head_dim + d];
        o1 += w[s + n_sg] * po[(size_t) (s + n_sg) * head_dim + d];
        o2 += w[s + 2 * n_sg] * po[(size_t) (s + 2 * n_sg) * head_dim + d];
        o3 += w[s + 3 * n_sg] * po[(size_t) (s + 3 * n_sg) * head_dim + d];
      }
      for (; s < n_used; s += n_sg)
        o0 += w[s] * po[(size_t) s * head_dim + d];
    }
    red[threadIdx.x] = (o0 + o1) + (o2 + o3);
    __syncthreads ();
    if (sg == 0 && d < head_dim) {
      float o = 0.0f;

      for (unsigned int g = 0; g < n_sg; g++)
        o += red[g * dt + dl];
      out[(size_t) h * head_dim + d] = o * inv_total;
    }
    __syncthreads ();
  }
}

/* Pass 2 after the fast pass 1 (at most about 2 x multiprocessors / KV
 * heads chunks). Grid: n_heads blocks of MERGE_THREADS. Only the chunks
 * that pass 1 filled are read (none when there was a single one: pass 1
 * wrote @out). A thread sums one dimension over every n_sg-th chunk; its first
 * MERGE_BATCH partial outputs are loaded together with the maxima and sums,
 * so that a merge of up to MERGE_BATCH x n_sg chunks costs one round trip
 * to memory. */
static_assert (ATT_MAX_HEAD_DIM <= MERGE_THREADS, "a thread a dimension");

static __global__ void __launch_bounds__ (MERGE_THREADS)
attention_decode_merge (float *__restrict__ out,
    const float *__restrict__ part_o, const float *__restrict__ part_ml,
    const gint32 * __restrict__ n_pos_dev, unsigned int n_pos,
    unsigned int max_pos, unsigned int window, unsigned int n_splits,
    unsigned int min_split, unsigned int gran, unsigned int head_dim)
{
  __shared__ float ms[ATT_MAX_SPLITS];          /* maxima, then weights */
  __shared__ float ls[ATT_MAX_SPLITS];
  __shared__ float red[MERGE_THREADS];
  unsigned int h = blockIdx.x;
  const float *ml = part_ml + (size_t) h * n_splits * 2;
  const float *po = part_o + (size_t) h * n_splits * head_dim;
  unsigned int n_used;
  unsigned int n_sg = MERGE_THREADS / head_dim;
  unsigned int sg = threadIdx.x / head_dim, dl = threadIdx.x % head_dim;
  bool active = sg < n_sg;
  float pv[MERGE_BATCH], mx = -INFINITY, total = 0.0f, acc = 0.0f;

  pdl_wait ();
  n_used = merge_chunks_used (out, n_pos_dev, n_pos, max_pos, window,
      n_splits, min_split, gran, head_dim);
  pdl_launch_dependents ();
  if (n_used <= 1)
    return;

#pragma unroll
  for (unsigned int b = 0; b < MERGE_BATCH; b++) {
    unsigned int s = sg + b * n_sg;

    pv[b] = active && s < n_used ? po[(size_t) s * head_dim + dl] : 0.0f;
  }
  for (unsigned int s = threadIdx.x; s < n_used; s += MERGE_THREADS) {
    ms[s] = ml[2 * s];
    ls[s] = ml[2 * s + 1];
  }
  __syncthreads ();
  for (unsigned int s = 0; s < n_used; s++)
    mx = fmaxf (mx, ms[s]);
  __syncthreads ();
  for (unsigned int s = threadIdx.x; s < n_used; s += MERGE_THREADS)
    ms[s] = expf (ms[s] - mx);
  __syncthreads ();
  for (unsigned int s = 0; s < n_used; s++)
    total += ms[s] * ls[s];

#pragma unroll
  for (unsigned int b = 0; b < MERGE_BATCH; b++) {
    unsigned int s = sg + b * n_sg;

    if (s < n_used)
      acc += ms[s] * pv[b];
  }
  if (active)
    for (unsigned int s = sg + MERGE_BATCH * n_sg; s < n_used; s += n_sg)
      acc += ms[s] * po[(size_t) s * head_dim + dl];
  red[threadIdx.x] = acc;
  __syncthreads ();
  if (sg == 0) {
    for (unsigned int g = 1; g < n_sg; g++)
      acc += red[g * head_dim + dl];
    out[(size_t) h * head_dim + dl] = acc / total;
  }
}

/* Floats of scratch before the partials: a count a KV head (at most one a
 * query head), 16-byte aligned. */
static size_t
done_floats (unsigned int n_heads)
{
  return (n_heads + 3) / 4 * 4;
}

size_t
llm_cuda_attention_decode_scratch_bytes (guint n_heads, guint head_dim)
{
  return ((size_t) n_heads * ATT_MAX_SPLITS * (head_dim + 2)
      + done_floats (n_heads)) * sizeof (float);
}

/* Chunks for a cache of @max_pos positions: KV heads x chunks about
 * @per_sm blocks per multiprocessor, at most ATT_MAX_SPLITS, and no more
 * than chunks of @min_split would fill. */
static unsigned int
splits_for (unsigned int max_pos, unsigned int n_kv_heads,
    unsigned int per_sm, unsigned int min_split)
{
  unsigned int want = div_up ((size_t) per_sm * llm_cuda_n_sm (),
      n_kv_heads);

  want = MIN (want, div_up (max_pos, min_split));
  return CLAMP (want, 1, ATT_MAX_SPLITS);
}

size_t
llm_cuda_attention_decode_at_scratch_bytes (guint n_heads, guint head_dim,
    guint max_pos)
{
  unsigned int most = MIN (ATT_MAX_SPLITS, div_up (MAX (max_pos, 1),
          ATT_MIN_SPLIT));

  return ((size_t) n_heads * most * (head_dim + 2) + done_floats (n_heads))
      * sizeof (float);
}


/* The fast pass 1 for head_dim @D and up to @G query heads a KV head.
 * Returns the chunks it was launched with. */
template <unsigned int D, unsigned int G, bool Q8>
static unsigned int
launch_f16 (float *out, float *part_o, float *part_ml, unsigned int *done,
    const float *q, const void *k, const void *v, const gint32 * n_pos_dev,
    unsigned int n_pos, unsigned int max_pos, unsigned int n_kv_heads,
    unsigned int group, size_t kv_stride, float scale, unsigned int window,
    unsigned int n_splits, const DecodeRope & rope, cudaStream_t s)
{
  size_t ring = (size_t) FAST_STAGES * FAST_UNROLL * 2 * FAST_THREADS * 16;
  size_t merge = ((size_t) (FAST_THREADS / LLM_CUDA_WARP) * G * (D + 2))
      * sizeof (float);
  size_t smem = MAX (ring, merge);

  /* (every launch, whatever the size, for the device that is current: the
   * kernel's own shared memory with a ring of 48 KiB goes past the 48 KiB
   * a block gets without asking; graphs replay without calling it) */
  cudaFuncSetAttribute (attention_decode_f16<D, G, Q8>,
      cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem);
  pdl_launch (attention_decode_f16<D, G, Q8>, dim3 (n_kv_heads, n_splits),
      FAST_THREADS, smem, s, out, part_o, part_ml, done, q, (void *) k,
      (void *) v, n_pos_dev, n_pos, max_pos, group, kv_stride, scale, window,
      rope);
  return n_splits;
}

template <unsigned int D, bool Q8>
static void
launch_f16_d (float *out, float *part_o, float *part_ml,
    unsigned int *done, const float *q,
    const void *k, const void *v, const gint32 * n_pos_dev,
    unsigned int n_pos, unsigned int max_pos, unsigned int n_kv_heads,
    unsigned int group, size_t kv_stride, float scale, unsigned int window,
    unsigned int n_splits, const DecodeRope & rope, cudaStream_t s)
{
  if (group == 1)
    launch_f16<D, 1, Q8> (out, part_o, part_ml, done, q, k, v, n_pos_dev, n_pos,
        max_pos, n_kv_heads, group, kv_stride, scale, window, n_splits, rope,
        s);
  else if (group <= 4)
    launch_f16<D, 4, Q8> (out, part_o, part_ml, done, q, k, v, n_pos_dev, n_pos,
        max_pos, n_kv_heads, group, kv_stride, scale, window, n_splits, rope,
        s);
  else
    launch_f16<D, 8, Q8> (out, part_o, part_ml, done, q, k, v, n_pos_dev, n_pos,
        max_pos, n_kv_heads, group, kv_stride, scale, window, n_splits, rope,
        s);
}

/* Whether the fast pass 1 takes this shape. */
static bool
fast_ok (LlmDType kv_dtype, const float *q, const void *k, const void *v,
    unsigned int group, unsigned int head_dim, size_t kv_stride)
{
  /* (Q8_0: rows of stride * 9 / 8 bytes, 8-byte aligned) */
  return (kv_dtype == LLM_DTYPE_F16 || (kv_dtype == LLM_DTYPE_Q8_0
          && kv_stride % 64 == 0)) && group <= 8 && (uintptr_t) q % 16 == 0
      && (head_dim == 64 || head_dim == 128 || head_dim == 256)
      && kv_stride % 8 == 0 && (uintptr_t) k % 16 == 0
      && (uintptr_t) v % 16 == 0;
}

template <LlmDType T>
static void
launch (float *out, const float *q, const void *k, const void *v,
    const gint32 * n_pos_dev, unsigned int n_pos, unsigned int max_pos,
    unsigned int n_heads, unsigned int n_kv_heads, unsigned int head_dim,
    size_t kv_stride, float scale, unsigned int window, float *scratch,
    const DecodeRope & rope, cudaStream_t s)
{
  constexpr bool Q8 = T == LLM_DTYPE_Q8_0;
  unsigned int group = n_heads / n_kv_heads;
  bool fast = fast_ok (T, q, k, v, group, head_dim, kv_stride);
  unsigned int min_split = fast ? FAST_MIN_SPLIT : ATT_MIN_SPLIT;
  unsigned int n_splits = fast
      ? splits_for (max_pos, n_kv_heads, FAST_BLOCKS_PER_SM, FAST_MIN_SPLIT)
      : splits_for (max_pos, n_kv_heads, ATT_BLOCKS_PER_SM, ATT_MIN_SPLIT);
  /* the fast pass's counts of finished chunks (when it merges its chunks
   * itself: only with the RoPE, llm_cuda_attention_decode_rope_at), then
   * the partials */
  unsigned int *done = rope.theta > 0.0f ? (unsigned int *) scratch : NULL;
  float *part_o = scratch + done_floats (n_heads);
  float *part_ml = part_o + (size_t) n_heads * n_splits * head_dim;

  if (fast) {
    if (head_dim == 64)
      launch_f16_d<64, Q8> (out, part_o, part_ml, done, q, k, v, n_pos_dev,
          n_pos, max_pos, n_kv_heads, group, kv_stride, scale, window,
          n_splits, rope, s);
    else if (head_dim == 128)
      launch_f16_d<128, Q8> (out, part_o, part_ml, done, q, k, v, n_pos_dev,
          n_pos, max_pos, n_kv_heads, group, kv_stride, scale, window,
          n_splits, rope, s);
    else
      launch_f16_d<256, Q8> (out, part_o, part_ml, done, q, k, v, n_pos_dev,
          n_pos, max_pos, n_kv_heads, group, kv_stride, scale, window,
          n_splits, rope, s);
  } else {
    size_t smem = split_smem_floats (group, head_dim) * sizeof (float);

    if (smem > 48 * 1024)
      cudaFuncSetAttribute (attention_decode_split<T>,
          cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem);
    pdl_launch (attention_decode_split<T>, dim3 (n_splits, n_kv_heads),
        ATT_THREADS, smem, s, out, part_o, part_ml, q, k, v, n_pos_dev,
        n_pos, max_pos, group, head_dim, kv_stride, scale, window);
  }
  /* Pass 2, unless the fast pass merged its chunks itself. The general
   * pass 1 makes up to ATT_MAX_SPLITS chunks, which the batched merge
   * would walk one load at a time (F32 cache, 4096 positions: 39 us
   * rather than 29). */
  if (!fast || done == NULL)
    pdl_launch (fast ? attention_decode_merge : attention_decode_merge_many,
        dim3 (n_heads), MERGE_THREADS, 0, s, out, part_o, part_ml,
        n_pos_dev, n_pos, max_pos, window, n_splits, min_split,
        fast ? FAST_ROUND : 16u, head_dim);
}

static gboolean
args_ok (LlmDType kv_dtype, guint n_heads, guint n_kv_heads, guint head_dim,
    size_t kv_stride)
{
  g_return_val_if_fail (kv_dtype == LLM_DTYPE_F32
      || kv_dtype == LLM_DTYPE_F16 || (kv_dtype == LLM_DTYPE_Q8_0
          && kv_stride % 32 == 0), FALSE);
  g_return_val_if_fail (n_kv_heads > 0 && n_heads % n_kv_heads == 0, FALSE);
  g_return_val_if_fail (head_dim > 0 && head_dim <= ATT_MAX_HEAD_DIM, FALSE);
  g_return_val_if_fail (kv_stride >= (size_t) n_kv_heads * head_dim, FALSE);
  return TRUE;
}

void
llm_cuda_attention_decode (float *out, const float *q, const void *k,
    const void *v, LlmDType kv_dtype, guint n_pos, guint n_heads,
    guint n_kv_heads, guint head_dim, size_t kv_stride, float *scratch,
    LlmCudaStream * stream)
{
  cudaStream_t s = llm_cuda_raw_stream (stream);
  float scale = 1.0f / sqrtf ((float) head_dim);

  if (!args_ok (kv_dtype, n_heads, n_kv_heads, head_dim, kv_stride))
    return;
  g_return_if_fail (n_pos > 0);
  llm_cuda_use_device ();

  if (kv_dtype == LLM_DTYPE_F32)
    launch<LLM_DTYPE_F32> (out, q, k, v, NULL, n_pos, n_pos, n_heads,
        n_kv_heads, head_dim, kv_stride, scale, 0, scratch, DecodeRope (), s);
  else if (kv_dtype == LLM_DTYPE_Q8_0)
    launch<LLM_DTYPE_Q8_0> (out, q, k, v, NULL, n_pos, n_pos, n_heads,
        n_kv_heads, head_dim, kv_stride, scale, 0, scratch, DecodeRope (), s);
  else
    launch<LLM_DTYPE_F16> (out, q, k, v, NULL, n_pos, n_pos, n_heads,
        n_kv_heads, head_dim, kv_stride, scale, 0, scratch, DecodeRope (), s);
}

void
llm_cuda_attention_decode_at (float *out, const float *q, const void *k,
    const void *v, LlmDType kv_dtype, const gint32 * n_pos_device,
    guint max_pos, guint n_heads, guint n_kv_heads, guint head_dim,
    size_t kv_stride, float scale, guint window, float *scratch,
    LlmCudaStream * stream)
{
  cudaStream_t s = llm_cuda_raw_stream (stream);

  if (!args_ok (kv_dtype, n_heads, n_kv_heads, head_dim, kv_stride))
    return;
  g_return_if_fail (n_pos_device != NULL && max_pos > 0);
  llm_cuda_use_device ();

  if (kv_dtype == LLM_DTYPE_F32)
    launch<LLM_DTYPE_F32> (out, q, k, v, n_pos_device, 0, max_pos, n_heads,
        n_kv_heads, head_dim, kv_stride, scale, window, scratch, DecodeRope (),
        s);
  else if (kv_dtype == LLM_DTYPE_Q8_0)
    launch<LLM_DTYPE_Q8_0> (out, q, k, v, n_pos_device, 0, max_pos, n_heads,
        n_kv_heads, head_dim, kv_stride, scale, window, scratch, DecodeRope (),
        s);
  else
    launch<LLM_DTYPE_F16> (out, q, k, v, n_pos_device, 0, max_pos, n_heads,
        n_kv_heads, head_dim, kv_stride, scale, window, scratch, DecodeRope (),
        s);
}

/* LLMASOS_CUDA_ATT_EARLY=0 turns the early loads off (for measuring). */
static bool
early_loads_enabled (void)
{
  static int on = -1;

  if (on < 0) {
    const char *env = g_getenv ("LLMASOS_CUDA_ATT_EARLY");

    on = env == NULL || atoi (env) != 0;
  }
  return on != 0;
}

gboolean
llm_cuda_attention_decode_rope_at (float *out, const float *qkv,
    void *k_cache, void *v_cache, LlmDType kv_dtype,
    const gint32 * n_pos_device, guint max_pos, guint n_heads,
    guint n_kv_heads, guint head_dim, size_t kv_stride, float scale,
    guint window, float theta, gboolean interleaved, float *scratch,
    LlmCudaStream * stream)
{
  cudaStream_t s = llm_cuda_raw_stream (stream);
  DecodeRope rope;

  if (!args_ok (kv_dtype, n_heads, n_kv_heads, head_dim, kv_stride))
    return FALSE;
  g_return_val_if_fail (n_pos_device != NULL && max_pos > 0, FALSE);
  g_return_val_if_fail (theta > 0.0f, FALSE);
  if (!fast_ok (kv_dtype, qkv, k_cache, v_cache, n_heads / n_kv_heads,
          head_dim, kv_stride))
    return FALSE;
  llm_cuda_use_device ();
  rope.kv_new = qkv + (size_t) n_heads * head_dim;
  rope.kv_dim = n_kv_heads * head_dim;
  rope.theta = theta;
  rope.interleaved = interleaved;
  rope.early_loads = early_loads_enabled ();
  if (kv_dtype == LLM_DTYPE_Q8_0)
    launch<LLM_DTYPE_Q8_0> (out, qkv, k_cache, v_cache, n_pos_device, 0,
        max_pos, n_heads, n_kv_heads, head_dim, kv_stride, scale, window,
        scratch, rope, s);
  else
    launch<LLM_DTYPE_F16> (out, qkv, k_cache, v_cache, n_pos_device, 0,
        max_pos, n_heads, n_kv_heads, head_dim, kv_stride, scale, window,
        scratch, rope, s);
  return TRUE;
}
