/* LLMasOS - kv_store: appends the keys and values of a block of tokens to
 * one layer's cache, F32, rounded to F16, or rounded to Q8_0 (the layout
 * of kv-q8_0.cuh: a warp a 32-block). The position may be read from
 * device memory, so that a captured decode step (a CUDA graph) writes
 * each token at its own place.
 * CPU twin: the memcpy into the cache in llm_compute_forward().
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-cuda-pdl.cuh"
#include "kv-q8_0.cuh"

#define KV_THREADS 256

/* Grid: (kv_dim / KV_THREADS, tokens). */
template <LlmDType T>
static __global__ void
kv_store_kernel (void *k_cache, void *v_cache, const float *k,
    const float *v, size_t src_stride, unsigned int kv_dim,
    unsigned int pos0, const int32_t * pos0_device)
{
  unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
  unsigned int t = blockIdx.y;
  size_t pos, dst;

  /* launched with PDL (llm-cuda-pdl.cuh): k, v and the position are the
   * previous kernels' */
  pdl_launch_dependents ();
  pdl_wait ();
  if (i >= kv_dim)
    return;
  pos = (pos0_device ? (unsigned int) *pos0_device : pos0) + t;
  dst = pos * kv_dim + i;
  if (T == LLM_DTYPE_Q8_0) {
    /* kv_dim % 32 == 0: whole warps are in or out above */
    kv_q8_0_store_block (k_cache, pos, kv_dim, i, k[t * src_stride + i]);
    kv_q8_0_store_block (v_cache, pos, kv_dim, i, v[t * src_stride + i]);
  } else if (T == LLM_DTYPE_F16) {
    ((__half *) k_cache)[dst] = __float2half_rn (k[t * src_stride + i]);
    ((__half *) v_cache)[dst] = __float2half_rn (v[t * src_stride + i]);
  } else {
    ((float *) k_cache)[dst] = k[t * src_stride + i];
    ((float *) v_cache)[dst] = v[t * src_stride + i];
  }
}

void
llm_cuda_kv_store (void *k_cache, void *v_cache, LlmDType kv_dtype,
    const float *k, const float *v, size_t src_stride, guint n_tokens,
    guint kv_dim, guint pos0, const gint32 * pos0_device,
    LlmCudaStream * stream)
{
  cudaStream_t s = llm_cuda_raw_stream (stream);
  dim3 grid (div_up (kv_dim, KV_THREADS), n_tokens);

  g_return_if_fail (kv_dtype == LLM_DTYPE_F32 || kv_dtype == LLM_DTYPE_F16
      || (kv_dtype == LLM_DTYPE_Q8_0 && kv_dim % 32 == 0));
  g_return_if_fail (n_tokens <= 65535);
  if (n_tokens == 0 || kv_dim == 0)
    return;
  llm_cuda_use_device ();
  if (kv_dtype == LLM_DTYPE_Q8_0)
    pdl_launch (kv_store_kernel<LLM_DTYPE_Q8_0>, grid, KV_THREADS, 0, s,
        k_cache, v_cache, k, v, src_stride, kv_dim, pos0, pos0_device);
  else if (kv_dtype == LLM_DTYPE_F16)
    pdl_launch (kv_store_kernel<LLM_DTYPE_F16>, grid, KV_THREADS, 0, s,
        k_cache, v_cache, k, v, src_stride, kv_dim, pos0, pos0_device);
  else
    pdl_launch (kv_store_kernel<LLM_DTYPE_F32>, grid, KV_THREADS, 0, s,
        k_cache, v_cache, k, v, src_stride, kv_dim, pos0, pos0_device);
}
