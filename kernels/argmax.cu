/* LLMasOS - argmax: index of the largest value of each row (greedy
 * sampling on the GPU: only 4 bytes a row come back to the host instead of
 * the logits). The lowest index wins ties, as in core/llm-sampler.c; NaNs
 * never win. CPU twin: a plain loop (the test's).
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-cuda-private.cuh"

#include <limits.h>

#define ARGMAX_THREADS 1024

/* Keeps in (@v, @i) the better of itself and (@v2, @i2). */
static __device__ __forceinline__ void
better (float &v, unsigned int &i, float v2, unsigned int i2)
{
  if (v2 > v || (v2 == v && i2 < i)) {
    v = v2;
    i = i2;
  }
}

/* One block per row. An index of UINT_MAX means nothing seen (all NaN). */
static __global__ void __launch_bounds__ (ARGMAX_THREADS)
argmax_kernel (int32_t * __restrict__ out, const float *__restrict__ x,
    unsigned int n)
{
  __shared__ float wv[ARGMAX_THREADS / LLM_CUDA_WARP];
  __shared__ unsigned int wi[ARGMAX_THREADS / LLM_CUDA_WARP];
  const float *xr = x + (size_t) blockIdx.x * n;
  unsigned int warp = threadIdx.x / LLM_CUDA_WARP;
  unsigned int lane = threadIdx.x % LLM_CUDA_WARP;
  float v = -INFINITY;
  unsigned int idx = UINT_MAX;

  /* Each thread walks its indices upwards, so a strict > keeps its lowest. */
  for (unsigned int i = threadIdx.x; i < n; i += blockDim.x) {
    float xi = xr[i];

    if (xi > v || (xi == v && idx == UINT_MAX)) {
      v = xi;
      idx = i;
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1)
    better (v, idx, __shfl_xor_sync (0xffffffffu, v, o),
        __shfl_xor_sync (0xffffffffu, idx, o));
  if (lane == 0) {
    wv[warp] = v;
    wi[warp] = idx;
  }
  __syncthreads ();
  if (warp == 0) {
    unsigned int nw = blockDim.x / LLM_CUDA_WARP;

    v = lane < nw ? wv[lane] : -INFINITY;
    idx = lane < nw ? wi[lane] : UINT_MAX;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
      better (v, idx, __shfl_xor_sync (0xffffffffu, v, o),
          __shfl_xor_sync (0xffffffffu, idx, o));
    if (lane == 0)
      out[blockIdx.x] = idx == UINT_MAX ? 0 : (int32_t) idx;
  }
}

void
llm_cuda_argmax (gint32 * out_index, const float *x, guint n, guint n_rows,
    LlmCudaStream * stream)
{
  cudaStream_t s = llm_cuda_raw_stream (stream);
  unsigned int threads = MIN (ARGMAX_THREADS,
      MAX (LLM_CUDA_WARP, (n + LLM_CUDA_WARP - 1) / LLM_CUDA_WARP
          * LLM_CUDA_WARP));

  g_return_if_fail (n > 0);
  if (n_rows == 0)
    return;
  llm_cuda_use_device ();
  argmax_kernel <<<n_rows, threads, 0, s>>> ((int32_t *) out_index, x, n);
}
