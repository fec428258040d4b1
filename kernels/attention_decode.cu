/* LLMasOS - attention_decode: one query position against a KV cache,
 * grouped-query, split along the sequence (flash-decoding).
 * CPU twin: llm_attention_causal() with one query.
 *
 * Pass 1 (attention_decode_split): one block per (chunk of positions, KV
 * head). The block holds the query heads that share the KV head (scaled by
 * 1/sqrt(head_dim)) in shared memory and walks its positions in tiles of
 * ATT_TILE with an online softmax: scores (a warp per ATT_POS_PER_WARP
 * positions, their keys read once into registers and dotted with every
 * query head of the group), a running maximum and sum per head, and the
 * output accumulated from each value row read once (a thread per
 * dimension, ATT_V_UNROLL positions loaded at once). It writes its unnormalised output, maximum and sum.
 * Pass 2 (attention_decode_merge): one block per query head rescales the
 * chunks to the common maximum and divides by the total sum.
 *
 * The number of chunks is chosen so that n_kv_heads x chunks is a few
 * blocks per multiprocessor: a single sequence then fills the GPU even with
 * eight KV heads, where one block per head would leave most of it idle.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-cuda-private.cuh"

#define ATT_THREADS 128
#define ATT_WARPS (ATT_THREADS / LLM_CUDA_WARP)
#define ATT_TILE 64             /* positions scored together */
#define ATT_MAX_SPLITS 128      /* chunks at most: bounds the scratch */
#define ATT_MIN_SPLIT 32        /* positions a chunk at least */
#define ATT_POS_PER_WARP 4      /* keys a warp scores at once */
#define ATT_V_UNROLL 8          /* values a thread loads at once */
#define ATT_MAX_HEAD_DIM 256    /* keys held in 8 registers per lane */
#define ATT_HEADS_AT_ONCE 8     /* query heads accumulated in registers */
#define ATT_BLOCKS_PER_SM 4     /* pass 1 blocks aimed at per multiprocessor */

/* Element @i of a cached key or value row. */
template <LlmDType T>
static __device__ __forceinline__ float
kv_load (const void *row, unsigned int i)
{
  return load_plain<T> (row, i);
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
attention_decode_split (float *__restrict__ part_o,
    float *__restrict__ part_ml, const float *__restrict__ q,
    const void *__restrict__ k, const void *__restrict__ v,
    unsigned int n_pos, unsigned int group, unsigned int head_dim,
    size_t kv_stride, unsigned int split_len)
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
  unsigned int p_begin = split * split_len;
  unsigned int p_end = min (n_pos, p_begin + split_len);
  size_t kv_off = (size_t) kvh * head_dim;
  float scale = 1.0f / sqrtf ((float) head_dim);
  const size_t ES = T == LLM_DTYPE_F32 ? 4 : 2;  /* bytes an element */

  for (unsigned int i = threadIdx.x; i < group * head_dim; i += ATT_THREADS) {
    qs[i] = q[(size_t) h0 * head_dim + i] * scale;
    acc[i] = 0.0f;
  }
  for (unsigned int h = threadIdx.x; h < group; h += ATT_THREADS) {
    m[h] = -INFINITY;
    l[h] = 0.0f;
  }
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
        const char *krow = (const char *) k
            + ((size_t) (t0 + pp0 + u) * kv_stride + kv_off) * ES;

#pragma unroll
        for (unsigned int j = 0; j < ATT_MAX_HEAD_DIM / LLM_CUDA_WARP; j++) {
          unsigned int d = lane + j * LLM_CUDA_WARP;

          kr[u][j] = pp0 + u < nt && d < head_dim ? kv_load<T> (krow, d)
              : 0.0f;
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
            vv[u] = kv_load<T> ((const char *) v
                + ((size_t) (t0 + pp + u) * kv_stride + kv_off) * ES, d);
#pragma unroll
          for (unsigned int u = 0; u < ATT_V_UNROLL; u++)
#pragma unroll
            for (unsigned int j = 0; j < ATT_HEADS_AT_ONCE; j++)
              if (hg + j < group)
                o[j] += sc[(hg + j) * ATT_TILE + pp + u] * vv[u];
        }
        for (; pp < nt; pp++) {
          float vv = kv_load<T> ((const char *) v
              + ((size_t) (t0 + pp) * kv_stride + kv_off) * ES, d);

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

  for (unsigned int i = threadIdx.x; i < group * head_dim; i += ATT_THREADS) {
    unsigned int h = i / head_dim, d = i % head_dim;

    part_o[((size_t) (h0 + h) * n_splits + split) * head_dim + d] = acc[i];
  }
  for (unsigned int h = threadIdx.x; h < group; h += ATT_THREADS) {
    part_ml[((size_t) (h0 + h) * n_splits + split) * 2] = m[h];
    part_ml[((size_t) (h0 + h) * n_splits + split) * 2 + 1] = l[h];
  }
}

/* Grid: n_heads blocks. */
static __global__ void __launch_bounds__ (ATT_THREADS)
attention_decode_merge (float *__restrict__ out,
    const float *__restrict__ part_o, const float *__restrict__ part_ml,
    unsigned int n_splits, unsigned int head_dim)
{
  __shared__ float w[ATT_MAX_SPLITS];
  __shared__ float inv_total;
  unsigned int h = blockIdx.x;
  const float *ml = part_ml + (size_t) h * n_splits * 2;
  const float *po = part_o + (size_t) h * n_splits * head_dim;

  if (threadIdx.x < LLM_CUDA_WARP) {
    float mx = -INFINITY, total = 0.0f;

    for (unsigned int s = threadIdx.x; s < n_splits; s += LLM_CUDA_WARP)
      mx = fmaxf (mx, ml[2 * s]);
    mx = warp_max (mx);
    for (unsigned int s = threadIdx.x; s < n_splits; s += LLM_CUDA_WARP) {
      float e = expf (ml[2 * s] - mx);

      w[s] = e;
      total += e * ml[2 * s + 1];
    }
    total = warp_sum (total);
    if (threadIdx.x == 0)
      inv_total = 1.0f / total;
  }
  __syncthreads ();

  for (unsigned int d = threadIdx.x; d < head_dim; d += ATT_THREADS) {
    float o = 0.0f;

    for (unsigned int s = 0; s < n_splits; s++)
      o += w[s] * po[(size_t) s * head_dim + d];
    out[(size_t) h * head_dim + d] = o * inv_total;
  }
}

size_t
llm_cuda_attention_decode_scratch_bytes (guint n_heads, guint head_dim)
{
  return (size_t) n_heads * ATT_MAX_SPLITS * (head_dim + 2) * sizeof (float);
}

template <LlmDType T>
static void
launch (float *out, const float *q, const void *k, const void *v,
    unsigned int n_pos, unsigned int n_heads, unsigned int n_kv_heads,
    unsigned int head_dim, size_t kv_stride, float *scratch, cudaStream_t s)
{
  unsigned int group = n_heads / n_kv_heads;
  unsigned int want = div_up ((size_t) ATT_BLOCKS_PER_SM * llm_cuda_n_sm (),
      n_kv_heads);
  unsigned int n_splits, split_len;
  size_t smem = split_smem_floats (group, head_dim) * sizeof (float);
  float *part_o = scratch;
  float *part_ml = scratch + (size_t) n_heads * ATT_MAX_SPLITS * head_dim;

  /* Chunks of at least ATT_MIN_SPLIT positions, at most ATT_MAX_SPLITS
   * of them. */
  want = CLAMP (want, 1, ATT_MAX_SPLITS);
  split_len = div_up (n_pos, want);
  split_len = MAX (ATT_MIN_SPLIT, (split_len + 15) / 16 * 16);
  n_splits = div_up (n_pos, split_len);

  if (smem > 48 * 1024)
    cudaFuncSetAttribute (attention_decode_split<T>,
        cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem);
  attention_decode_split<T> <<<dim3 (n_splits, n_kv_heads), ATT_THREADS,
      smem, s>>> (part_o, part_ml, q, k, v, n_pos, group, head_dim,
      kv_stride, split_len);
  attention_decode_merge <<<n_heads, ATT_THREADS, 0, s>>> (out, part_o,
      part_ml, n_splits, head_dim);
}

void
llm_cuda_attention_decode (float *out, const float *q, const void *k,
    const void *v, LlmDType kv_dtype, guint n_pos, guint n_heads,
    guint n_kv_heads, guint head_dim, size_t kv_stride, float *scratch,
    LlmCudaStream * stream)
{
  cudaStream_t s = llm_cuda_raw_stream (stream);

  g_return_if_fail (kv_dtype == LLM_DTYPE_F32 || kv_dtype == LLM_DTYPE_F16);
  g_return_if_fail (n_kv_heads > 0 && n_heads % n_kv_heads == 0);
  g_return_if_fail (head_dim > 0 && head_dim <= ATT_MAX_HEAD_DIM);
  g_return_if_fail (kv_stride >= (size_t) n_kv_heads * head_dim);
  g_return_if_fail (n_pos > 0);
  llm_cuda_use_device ();

  if (kv_dtype == LLM_DTYPE_F32)
    launch<LLM_DTYPE_F32> (out, q, k, v, n_pos, n_heads, n_kv_heads,
        head_dim, kv_stride, scratch, s);
  else
    launch<LLM_DTYPE_F16> (out, q, k, v, n_pos, n_heads, n_kv_heads,
        head_dim, kv_stride, scratch, s);
}
