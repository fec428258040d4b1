/* LLMasOS - attention_prefill: causal grouped-query attention of a block of
 * new tokens (a prompt) over the KV cache, fused in the flash-attention
 * way: scores, an online softmax and the weighted sum of values tile by
 * tile in shared memory, never a score matrix in device memory.
 * CPU twin: llm_attention_causal_strided().
 *
 * Rows: the query heads that share a KV head read the same keys and
 * values, so a block takes rows (token, query head of the group), row r of
 * KV head g being token r / group and query head g * group + r % group,
 * and loads each key/value tile once for all of them. Blocks are issued
 * last rows first: they see the most keys, and should not be the tail.
 *
 * Three kernels:
 * - attention_prefill_f16_mma (attention_prefill_mma.cu; F16 cache,
 *   head_dim 64 or 128): mma.sync with everything in registers, the fast
 *   one (Llama-3-8B, 2048 tokens: 117 us a layer on an H100).
 * - attention_prefill_f16_tc (F16 cache, head_dim 256): tensor
 *   cores through WMMA (16x16x16 half, F32 accumulation). A warp owns 16
 *   rows; q is rounded to F16 once, the softmax runs in F32 and its
 *   probabilities are rounded to F16 for the P.V product (the row sums
 *   are taken of the rounded values, so they normalise what was summed).
 *   The output accumulator lives in shared memory, where the per-row
 *   rescale of the online softmax can reach it (WMMA fragments have no
 *   documented layout).
 * - attention_prefill_tiled: plain F32 (any head_dim up to 256, F32 or F16
 *   cache): 32 rows x 32 keys a tile, four threads per row.
 * Our own kernel rather than cuDNN's fused attention (cudnn-frontend): the
 * frontend is C++ header code that would have to be wrapped behind the C
 * API, its SDPA graphs want F16/BF16 q and output where ours are F32, an
 * F32 cache has no cuDNN path at all, and the GPU machine's cuDNN (9.14)
 * is older than the headers here (9.19); a kernel of our own keeps one
 * code path for every cache type, window and head size.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-cuda-private.cuh"

#include <mma.h>

using namespace nvcuda;

#define PF_THREADS 128
#define PF_ROWS 32              /* tiled: rows a block */
#define PF_KEYS 32              /* tiled: keys a tile */
#define PF_MAX_HEAD_DIM 256
#define TC_ROWS 64              /* tensor cores: rows a block, 16 a warp */
#define TC_KEYS 64              /* tensor cores: keys a tile */

extern __shared__ __align__ (128) float smem[];

/* Keys [*lo, *hi) that rows [r0, r1) need. */
static __device__ __forceinline__ void
block_keys (unsigned int r0, unsigned int r1, unsigned int group,
    unsigned int pos0, unsigned int window, unsigned int *lo,
    unsigned int *hi)
{
  unsigned int first = pos0 + r0 / group, last = pos0 + (r1 - 1) / group;

  *hi = last + 1;
  *lo = window > 0 && first + 1 > window ? first + 1 - window : 0u;
}

/* Whether the query at @qpos sees the key at @p. */
static __device__ __forceinline__ bool
sees (unsigned int qpos, unsigned int p, unsigned int window)
{
  return p <= qpos && (window == 0 || p + window > qpos);
}

/* --- F32, any head_dim --- */

/* Grid (row blocks, n_kv_heads), PF_THREADS threads: thread (row tr =
 * tid / 4, tc = tid % 4) scores keys tc, tc + 4, ... of a tile and
 * accumulates dimensions tc, tc + 4, ... of its row's output (DC of them,
 * in registers). */
template <LlmDType T, int DC>
static __global__ void __launch_bounds__ (PF_THREADS)
attention_prefill_tiled (float *__restrict__ out,
    const float *__restrict__ q, size_t q_stride,
    const void *__restrict__ k, const void *__restrict__ v,
    unsigned int pos0, unsigned int n_tokens, unsigned int group,
    unsigned int head_dim, size_t kv_stride, float scale,
    unsigned int window)
{
  unsigned int hd1 = head_dim + 1;      /* padded: no bank conflicts */
  float *qs = smem;                     /* [PF_ROWS][hd1], scaled */
  float *ks = qs + PF_ROWS * hd1;       /* [PF_KEYS][hd1] */
  float *vs = ks + PF_KEYS * hd1;       /* [PF_KEYS][head_dim] */
  float *ps = vs + PF_KEYS * head_dim;  /* [PF_ROWS][PF_KEYS + 1] */
  unsigned int kvh = blockIdx.y, n_heads = gridDim.y * group;
  unsigned int n_rows = n_tokens * group;
  unsigned int r0 = (gridDim.x - 1 - blockIdx.x) * PF_ROWS;
  unsigned int r1 = min (n_rows, r0 + PF_ROWS);
  unsigned int tr = threadIdx.x / 4, tc = threadIdx.x % 4;
  unsigned int row = r0 + tr, lo, hi;
  bool live = row < r1;
  unsigned int t = live ? row / group : 0u, qpos = pos0 + t;
  size_t kv_off = (size_t) kvh * head_dim;
  float m = -INFINITY, l = 0.0f, acc[DC];

  block_keys (r0, r1, group, pos0, window, &lo, &hi);
#pragma unroll
  for (int i = 0; i < DC; i++)
    acc[i] = 0.0f;
  for (unsigned int i = threadIdx.x; i < PF_ROWS * head_dim; i += PF_THREADS) {
    unsigned int r = i / head_dim, d = i % head_dim, rr = r0 + r;

    qs[r * hd1 + d] = rr < r1 ? q[(size_t) (rr / group) * q_stride
        + (size_t) (kvh * group + rr % group) * head_dim + d] * scale : 0.0f;
  }

  for (unsigned int key0 = lo; key0 < hi; key0 += PF_KEYS) {
    unsigned int nk = min (PF_KEYS, hi - key0);
    float s[PF_KEYS / 4], mx = -INFINITY, m_new, alpha, sum = 0.0f;

    __syncthreads ();           /* the last tile is no longer read */
    for (unsigned int i = threadIdx.x; i < PF_KEYS * head_dim;
        i += PF_THREADS) {
      unsigned int c = i / head_dim, d = i % head_dim;
      size_t at = (size_t) (key0 + c) * kv_stride + kv_off + d;

      ks[c * hd1 + d] = c < nk ? load_plain<T> (k, at) : 0.0f;
      vs[c * head_dim + d] = c < nk ? load_plain<T> (v, at) : 0.0f;
    }
    __syncthreads ();

#pragma unroll
    for (int j = 0; j < PF_KEYS / 4; j++)
      s[j] = 0.0f;
    for (unsigned int d = 0; d < head_dim; d++) {
      float qv = qs[tr * hd1 + d];

#pragma unroll
      for (int j = 0; j < PF_KEYS / 4; j++)
        s[j] += qv * ks[(tc + 4 * j) * hd1 + d];
    }
#pragma unroll
    for (int j = 0; j < PF_KEYS / 4; j++) {
      unsigned int c = tc + 4 * j;

      if (!live || c >= nk || !sees (qpos, key0 + c, window))
        s[j] = -INFINITY;
      mx = fmaxf (mx, s[j]);
    }
    mx = fmaxf (mx, __shfl_xor_sync (0xffffffffu, mx, 1));
    mx = fmaxf (mx, __shfl_xor_sync (0xffffffffu, mx, 2));
    m_new = fmaxf (m, mx);
    alpha = m_new == -INFINITY ? 1.0f : expf (m - m_new);
#pragma unroll
    for (int j = 0; j < PF_KEYS / 4; j++) {
      float e = s[j] == -INFINITY ? 0.0f : expf (s[j] - m_new);

      ps[tr * (PF_KEYS + 1) + tc + 4 * j] = e;
      sum += e;
    }
    sum += __shfl_xor_sync (0xffffffffu, sum, 1);
    sum += __shfl_xor_sync (0xffffffffu, sum, 2);
    l = l * alpha + sum;
    m = m_new;
#pragma unroll
    for (int i = 0; i < DC; i++)
      acc[i] *= alpha;
    __syncwarp ();              /* a row's four threads share a warp */

    for (unsigned int c = 0; c < nk; c++) {
      float p = ps[tr * (PF_KEYS + 1) + c];

#pragma unroll
      for (int i = 0; i < DC; i++)
        if (tc + 4 * i < head_dim)
          acc[i] += p * vs[c * head_dim + tc + 4 * i];
    }
  }

  if (live) {
    float *o = out + (size_t) t * n_heads * head_dim
        + (size_t) (kvh * group + row % group) * head_dim;

#pragma unroll
    for (int i = 0; i < DC; i++)
      if (tc + 4 * i < head_dim)
        o[tc + 4 * i] = acc[i] / l;
  }
}

static size_t
tiled_smem_bytes (unsigned int head_dim)
{
  return ((size_t) (PF_ROWS + PF_KEYS) * (head_dim + 1)
      + (size_t) PF_KEYS * head_dim + PF_ROWS * (PF_KEYS + 1)) * sizeof (float);
}

/* --- F16 cache on tensor cores --- */

template <int HD>
struct TcLayout
{
  static const int LDH = HD + 8;        /* halves a row of q, k, v tiles */
  static const int LDS = TC_KEYS + 4;   /* floats a row of scores */
  static const int LDP = TC_KEYS + 8;   /* halves a row of probabilities */
  static const int LDO = HD + 4;        /* floats a row of the output */
  /* Bytes: q, k, v tiles; then per warp 16 rows of scores, probabilities
   * and output. Every part a multiple of 32 bytes (WMMA pointers). */
  static const size_t Q_BYTES = (size_t) TC_ROWS * LDH * 2;
  static const size_t KV_BYTES = (size_t) TC_KEYS * LDH * 2;
  static const size_t S_BYTES = (size_t) 4 * 16 * LDS * 4;
  static const size_t P_BYTES = (size_t) 4 * 16 * LDP * 2;
  static const size_t O_BYTES = (size_t) 4 * 16 * LDO * 4;
  static const size_t BYTES = Q_BYTES + 2 * KV_BYTES + S_BYTES + P_BYTES
      + O_BYTES;
};

/* Grid (row blocks, n_kv_heads), 4 warps, warp w owning rows r0 + 16 w ..
 * + 15; lane pair (2 i, 2 i + 1) runs the softmax of the warp's row i. */
template <int HD>
static __global__ void __launch_bounds__ (PF_THREADS)
attention_prefill_f16_tc (float *__restrict__ out,
    const float *__restrict__ q, size_t q_stride,
    const __half * __restrict__ k, const __half * __restrict__ v,
    unsigned int pos0, unsigned int n_tokens, unsigned int group,
    size_t kv_stride, float scale, unsigned int window)
{
  typedef TcLayout<HD> L;
  __half *qh = (__half *) smem;                         /* [64][LDH] */
  __half *kh = (__half *) ((char *) smem + L::Q_BYTES); /* [64][LDH] */
  __half *vh = kh + TC_KEYS * L::LDH;                   /* [64][LDH] */
  unsigned int warp = threadIdx.x / LLM_CUDA_WARP;
  unsigned int lane = threadIdx.x % LLM_CUDA_WARP;
  float *sf = (float *) (vh + TC_KEYS * L::LDH) + warp * 16 * L::LDS;
  __half *ph = (__half *) ((char *) smem + L::Q_BYTES + 2 * L::KV_BYTES
      + L::S_BYTES) + warp * 16 * L::LDP;
  float *of = (float *) ((char *) smem + L::Q_BYTES + 2 * L::KV_BYTES
      + L::S_BYTES + L::P_BYTES) + warp * 16 * L::LDO;
  unsigned int kvh = blockIdx.y, n_heads = gridDim.y * group;
  unsigned int n_rows = n_tokens * group;
  unsigned int r0 = (gridDim.x - 1 - blockIdx.x) * TC_ROWS;
  unsigned int r1 = min (n_rows, r0 + TC_ROWS);
  unsigned int wr0 = r0 + warp * 16, wr1 = min (r1, wr0 + 16);
  unsigned int i = lane / 2, half = lane % 2;   /* my softmax row, half */
  unsigned int row = wr0 + i, lo, hi;
  bool live = row < wr1;
  unsigned int qpos = pos0 + (live ? row / group : 0u);
  size_t kv_off = (size_t) kvh * HD;
  float m = -INFINITY, l = 0.0f;

  block_keys (r0, r1, group, pos0, window, &lo, &hi);
  for (unsigned int x = threadIdx.x; x < TC_ROWS * HD; x += PF_THREADS) {
    unsigned int r = x / HD, d = x % HD, rr = r0 + r;

    qh[r * L::LDH + d] = __float2half_rn (rr < r1 ?
        q[(size_t) (rr / group) * q_stride
            + (size_t) (kvh * group + rr % group) * HD + d] : 0.0f);
  }
  for (unsigned int x = lane; x < 16 * L::LDO; x += LLM_CUDA_WARP)
    of[x] = 0.0f;

  for (unsigned int key0 = lo; key0 < hi; key0 += TC_KEYS) {
    unsigned int nk = min (TC_KEYS, hi - key0);
    bool idle;

    __syncthreads ();           /* the last tile is no longer read */
    /* 16-byte loads: rows are 16-byte aligned (checked by the caller). */
    for (unsigned int x = threadIdx.x; x < TC_KEYS * (HD / 8);
        x += PF_THREADS) {
      unsigned int c = x / (HD / 8), ch = x % (HD / 8);
      size_t at = (size_t) (key0 + c) * kv_stride + kv_off + ch * 8;
      uint4 kk = make_uint4 (0, 0, 0, 0), vv = make_uint4 (0, 0, 0, 0);

      if (c < nk) {
        kk = *(const uint4 *) (k + at);
        vv = *(const uint4 *) (v + at);
      }
      *(uint4 *) (kh + c * L::LDH + ch * 8) = kk;
      *(uint4 *) (vh + c * L::LDH + ch * 8) = vv;
    }
    __syncthreads ();

    /* A warp whose rows see none of this tile (causal or window) skips
     * it: its softmax state would not change. */
    idle = wr0 >= wr1 || key0 > pos0 + (wr1 - 1) / group
        || (window > 0 && key0 + nk - 1 + window <= pos0 + wr0 / group);
    if (idle)
      continue;

    /* S = Q K^T: 16 rows x 64 keys, four accumulators. */
    {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> s_acc[4];
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> a;
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> b;

#pragma unroll
      for (int n = 0; n < 4; n++)
        wmma::fill_fragment (s_acc[n], 0.0f);
#pragma unroll
      for (int kk = 0; kk < HD / 16; kk++) {
        wmma::load_matrix_sync (a, qh + warp * 16 * L::LDH + kk * 16, L::LDH);
#pragma unroll
        for (int n = 0; n < 4; n++) {
          wmma::load_matrix_sync (b, kh + n * 16 * L::LDH + kk * 16, L::LDH);
          wmma::mma_sync (s_acc[n], a, b, s_acc[n]);
        }
      }
#pragma unroll
      for (int n = 0; n < 4; n++)
        wmma::store_matrix_sync (sf + n * 16, s_acc[n], L::LDS,
            wmma::mem_row_major);
    }
    __syncwarp ();

    /* Online softmax of row i, 32 keys a lane. */
    {
      float mx = -INFINITY, m_new, alpha, sum = 0.0f;

      for (unsigned int j = 0; j < TC_KEYS / 2; j++) {
        unsigned int c = half * (TC_KEYS / 2) + j;

        if (live && c < nk && sees (qpos, key0 + c, window))
          mx = fmaxf (mx, sf[i * L::LDS + c] * scale);
      }
      mx = fmaxf (mx, __shfl_xor_sync (0xffffffffu, mx, 1));
      m_new = fmaxf (m, mx);
      alpha = m_new == -INFINITY ? 1.0f : expf (m - m_new);
      for (unsigned int j = 0; j < TC_KEYS / 2; j++) {
        unsigned int c = half * (TC_KEYS / 2) + j;
        __half e = __float2half_rn (0.0f);

        if (live && c < nk && sees (qpos, key0 + c, window))
          e = __float2half_rn (expf (sf[i * L::LDS + c] * scale - m_new));
        ph[i * L::LDP + c] = e;
        sum += __half2float (e);
      }
      sum += __shfl_xor_sync (0xffffffffu, sum, 1);
      l = l * alpha + sum;
      m = m_new;
      for (unsigned int d = half; d < HD; d += 2)
        of[i * L::LDO + d] *= alpha;
    }
    __syncwarp ();

    /* O += P V, the output tile by tile of 16 dimensions. */
    {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> p[4];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major> b;
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> o;

#pragma unroll
      for (int kk = 0; kk < 4; kk++)
        wmma::load_matrix_sync (p[kk], ph + kk * 16, L::LDP);
#pragma unroll 2
      for (int nt = 0; nt < HD / 16; nt++) {
        wmma::load_matrix_sync (o, of + nt * 16, L::LDO, wmma::mem_row_major);
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
          wmma::load_matrix_sync (b, vh + kk * 16 * L::LDH + nt * 16, L::LDH);
          wmma::mma_sync (o, p[kk], b, o);
        }
        wmma::store_matrix_sync (of + nt * 16, o, L::LDO,
            wmma::mem_row_major);
      }
    }
    __syncwarp ();
  }

  __syncwarp ();
  for (unsigned int r = 0; r < 16; r++) {
    float lr = __shfl_sync (0xffffffffu, l, 2 * r);
    unsigned int rr = wr0 + r;

    if (rr < wr1) {
      float *o = out + (size_t) (rr / group) * n_heads * HD
          + (size_t) (kvh * group + rr % group) * HD;

      for (unsigned int d = lane; d < HD; d += LLM_CUDA_WARP)
        o[d] = of[r * L::LDO + d] / lr;
    }
  }
}

/* --- launch --- */

template <int HD>
static void
launch_tc (float *out, const float *q, size_t q_stride, const void *k,
    const void *v, unsigned int pos0, unsigned int n_tokens,
    unsigned int group, unsigned int n_kv_heads, size_t kv_stride,
    float scale, unsigned int window, cudaStream_t s)
{
  size_t smem_bytes = TcLayout<HD>::BYTES;
  dim3 grid (div_up ((size_t) n_tokens * group, TC_ROWS), n_kv_heads);

  cudaFuncSetAttribute (attention_prefill_f16_tc<HD>,
      cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem_bytes);
  attention_prefill_f16_tc<HD> <<<grid, PF_THREADS, smem_bytes, s>>> (out,
      q, q_stride, (const __half *) k, (const __half *) v, pos0, n_tokens,
      group, kv_stride, scale, window);
}

template <LlmDType T, int DC>
static void
launch_tiled (float *out, const float *q, size_t q_stride, const void *k,
    const void *v, unsigned int pos0, unsigned int n_tokens,
    unsigned int group, unsigned int n_kv_heads, unsigned int head_dim,
    size_t kv_stride, float scale, unsigned int window, cudaStream_t s)
{
  size_t smem_bytes = tiled_smem_bytes (head_dim);
  dim3 grid (div_up ((size_t) n_tokens * group, PF_ROWS), n_kv_heads);

  if (smem_bytes > 48 * 1024)
    cudaFuncSetAttribute (attention_prefill_tiled<T, DC>,
        cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem_bytes);
  attention_prefill_tiled<T, DC> <<<grid, PF_THREADS, smem_bytes, s>>> (out,
      q, q_stride, k, v, pos0, n_tokens, group, head_dim, kv_stride, scale,
      window);
}

template <LlmDType T>
static void
dispatch_tiled (float *out, const float *q, size_t q_stride, const void *k,
    const void *v, unsigned int pos0, unsigned int n_tokens,
    unsigned int group, unsigned int n_kv_heads, unsigned int head_dim,
    size_t kv_stride, float scale, unsigned int window, cudaStream_t s)
{
  /* Registers for the output: the smallest DC with 4 DC >= head_dim. */
  if (head_dim <= 32)
    launch_tiled<T, 8> (out, q, q_stride, k, v, pos0, n_tokens, group,
        n_kv_heads, head_dim, kv_stride, scale, window, s);
  else if (head_dim <= 64)
    launch_tiled<T, 16> (out, q, q_stride, k, v, pos0, n_tokens, group,
        n_kv_heads, head_dim, kv_stride, scale, window, s);
  else if (head_dim <= 128)
    launch_tiled<T, 32> (out, q, q_stride, k, v, pos0, n_tokens, group,
        n_kv_heads, head_dim, kv_stride, scale, window, s);
  else
    launch_tiled<T, 64> (out, q, q_stride, k, v, pos0, n_tokens, group,
        n_kv_heads, head_dim, kv_stride, scale, window, s);
}

void
llm_cuda_attention_prefill (float *out, const float *q, size_t q_stride,
    const void *k, const void *v, LlmDType kv_dtype, guint pos0,
    guint n_tokens, guint n_heads, guint n_kv_heads, guint head_dim,
    size_t kv_stride, float scale, guint window, LlmCudaStream * stream)
{
  cudaStream_t s = llm_cuda_raw_stream (stream);
  unsigned int group;
  gboolean aligned;

  g_return_if_fail (kv_dtype == LLM_DTYPE_F32 || kv_dtype == LLM_DTYPE_F16);
  g_return_if_fail (n_kv_heads > 0 && n_heads % n_kv_heads == 0);
  g_return_if_fail (head_dim > 0 && head_dim <= PF_MAX_HEAD_DIM);
  g_return_if_fail (kv_stride >= (size_t) n_kv_heads * head_dim);
  g_return_if_fail (q_stride >= (size_t) n_heads * head_dim);
  g_return_if_fail ((guint64) n_tokens * n_heads <= G_MAXUINT32);
  g_return_if_fail ((guint64) pos0 + n_tokens <= G_MAXUINT32);
  if (n_tokens == 0)
    return;
  llm_cuda_use_device ();
  group = n_heads / n_kv_heads;

  /* The tensor-core kernels load key/value rows 16 bytes at a time. */
  aligned = kv_stride % 8 == 0 && (uintptr_t) k % 16 == 0
      && (uintptr_t) v % 16 == 0;
  if (kv_dtype == LLM_DTYPE_F16 && aligned
      && llm_cuda_attention_prefill_mma (out, q, q_stride, k, v, pos0,
          n_tokens, group, n_kv_heads, head_dim, kv_stride, scale, window, s))
    return;
  if (kv_dtype == LLM_DTYPE_F16 && aligned && head_dim == 256)
    launch_tc<256> (out, q, q_stride, k, v, pos0, n_tokens, group,
        n_kv_heads, kv_stride, scale, window, s);
  else if (kv_dtype == LLM_DTYPE_F16)
    dispatch_tiled<LLM_DTYPE_F16> (out, q, q_stride, k, v, pos0, n_tokens,
        group, n_kv_heads, head_dim, kv_stride, scale, window, s);
  else
    dispatch_tiled<LLM_DTYPE_F32> (out, q, q_stride, k, v, pos0, n_tokens,
        group, n_kv_heads, head_dim, kv_stride, scale, window, s);
}
