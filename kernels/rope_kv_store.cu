/* LLMasOS - rope_kv_store: the decode step's RoPE and KV cache append in
 * one kernel (rope_apply.cu then kv_store.cu, for one token whose position
 * is read from device memory, as a captured CUDA graph replays it).
 * CPU twin: llm_rope() on q and k, then the copy into the cache in
 * llm_compute_forward().
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-cuda-pdl.cuh"
#include "rope-angle.cuh"

#define ROPE_KV_THREADS 256

template <typename C>
static __device__ __forceinline__ void
store (void *cache, size_t i, float v)
{
  if (sizeof (C) == 2)
    ((__half *) cache)[i] = __float2half_rn (v);
  else
    ((float *) cache)[i] = v;
}

/* Thread k: pair k of the q|k heads (rotated; a k pair also stored), and
 * element k of v (stored). */
template <bool INTERLEAVED, typename C>
static __global__ void
rope_kv_store_kernel (float *qkv, unsigned int n_heads,
    unsigned int n_kv_heads, unsigned int head_dim, void *k_cache,
    void *v_cache, const int32_t * pos_device, float theta)
{
  unsigned int half = head_dim / 2;
  unsigned int kv_dim = n_kv_heads * head_dim;
  unsigned int k = blockIdx.x * blockDim.x + threadIdx.x;
  unsigned int pos;
  size_t row;

  /* launched with PDL (llm-cuda-pdl.cuh): qkv and the position are the
   * previous kernels' */
  pdl_launch_dependents ();
  pdl_wait ();
  pos = (unsigned int) *pos_device;
  row = (size_t) pos * kv_dim;
  if (k < (n_heads + n_kv_heads) * half) {
    unsigned int h = k / half, i = k % half;
    float *xh = qkv + (size_t) h * head_dim;

    rope_rotate_pair<INTERLEAVED> (xh, i, head_dim, pos, theta);
    if (h >= n_heads) {
      unsigned int i0 = INTERLEAVED ? 2 * i : i;
      unsigned int i1 = INTERLEAVED ? 2 * i + 1 : i + half;
      size_t o = row + (size_t) (h - n_heads) * head_dim;

      store<C> (k_cache, o + i0, xh[i0]);
      store<C> (k_cache, o + i1, xh[i1]);
    }
  }
  if (k < kv_dim)
    store<C> (v_cache, row + k, qkv[(size_t) (n_heads + n_kv_heads)
            * head_dim + k]);
}

template <typename C>
static void
launch (float *qkv, guint n_heads, guint n_kv_heads, guint head_dim,
    void *k_cache, void *v_cache, const gint32 * pos_device, float theta,
    gboolean interleaved, cudaStream_t s)
{
  unsigned int n = MAX ((n_heads + n_kv_heads) * (head_dim / 2),
      n_kv_heads * head_dim);

  if (interleaved)
    pdl_launch (rope_kv_store_kernel<true, C>, div_up (n, ROPE_KV_THREADS),
        ROPE_KV_THREADS, 0, s, qkv, n_heads, n_kv_heads, head_dim, k_cache,
        v_cache, pos_device, theta);
  else
    pdl_launch (rope_kv_store_kernel<false, C>, div_up (n, ROPE_KV_THREADS),
        ROPE_KV_THREADS, 0, s, qkv, n_heads, n_kv_heads, head_dim, k_cache,
        v_cache, pos_device, theta);
}

void
llm_cuda_rope_kv_store_at (float *qkv, guint n_heads, guint n_kv_heads,
    guint head_dim, void *k_cache, void *v_cache, LlmDType kv_dtype,
    const gint32 * pos_device, float theta, gboolean interleaved,
    LlmCudaStream * stream)
{
  cudaStream_t s = llm_cuda_raw_stream (stream);

  g_return_if_fail (head_dim % 2 == 0 && pos_device != NULL);
  g_return_if_fail (kv_dtype == LLM_DTYPE_F32 || kv_dtype == LLM_DTYPE_F16);
  if (head_dim == 0 || n_heads + n_kv_heads == 0)
    return;
  llm_cuda_use_device ();
  if (kv_dtype == LLM_DTYPE_F16)
    launch<__half> (qkv, n_heads, n_kv_heads, head_dim, k_cache, v_cache,
        pos_device, theta, interleaved, s);
  else
    launch<float> (qkv, n_heads, n_kv_heads, head_dim, k_cache, v_cache,
        pos_device, theta, interleaved, s);
}
