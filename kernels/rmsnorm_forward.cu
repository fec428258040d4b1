/* LLMasOS - rmsnorm_forward: out = x / sqrt(mean(x^2) + eps) * weight, one
 * block per row. CPU twin: llm_rmsnorm().
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-cuda-pdl.cuh"

#define RMSNORM_THREADS 512

template <LlmDType W>
static __global__ void __launch_bounds__ (RMSNORM_THREADS)
rmsnorm_forward_kernel (float *out, const float *x,
    const void *__restrict__ weight, unsigned int n, float eps)
{
  __shared__ float warp_sums[RMSNORM_THREADS / LLM_CUDA_WARP];
  __shared__ float scale_s;
  const float *xr = x + (size_t) blockIdx.x * n;
  float *outr = out + (size_t) blockIdx.x * n;
  unsigned int warp = threadIdx.x / LLM_CUDA_WARP;
  unsigned int lane = threadIdx.x % LLM_CUDA_WARP;
  float ss = 0.0f;

  /* launched with PDL (llm-cuda-pdl.cuh): x is the previous kernel's */
  pdl_launch_dependents ();
  pdl_wait ();
  for (unsigned int i = threadIdx.x; i < n; i += blockDim.x)
    ss += xr[i] * xr[i];
  ss = warp_sum (ss);
  if (lane == 0)
    warp_sums[warp] = ss;
  __syncthreads ();
  if (warp == 0) {
    ss = lane < blockDim.x / LLM_CUDA_WARP ? warp_sums[lane] : 0.0f;
    ss = warp_sum (ss);
    if (lane == 0)
      scale_s = 1.0f / sqrtf (ss / (float) n + eps);
  }
  __syncthreads ();

  /* Same order as the CPU: weight * (x * scale). */
  for (unsigned int i = threadIdx.x; i < n; i += blockDim.x)
    outr[i] = load_plain<W> (weight, i) * (xr[i] * scale_s);
}

void
llm_cuda_rmsnorm_forward (float *out, const float *x, const void *weight,
    LlmDType weight_dtype, guint n, guint n_rows, float eps,
    LlmCudaStream * stream)
{
  cudaStream_t s = llm_cuda_raw_stream (stream);
  unsigned int threads = MIN (RMSNORM_THREADS,
      MAX (LLM_CUDA_WARP, (n + LLM_CUDA_WARP - 1) / LLM_CUDA_WARP
          * LLM_CUDA_WARP));

  g_return_if_fail (weight_dtype == LLM_DTYPE_F32
      || weight_dtype == LLM_DTYPE_F16 || weight_dtype == LLM_DTYPE_BF16);
  if (n == 0 || n_rows == 0)
    return;
  llm_cuda_use_device ();

  if (weight_dtype == LLM_DTYPE_F32)
    pdl_launch (rmsnorm_forward_kernel<LLM_DTYPE_F32>, n_rows, threads, 0, s,
        out, x, weight, n, eps);
  else if (weight_dtype == LLM_DTYPE_F16)
    pdl_launch (rmsnorm_forward_kernel<LLM_DTYPE_F16>, n_rows, threads, 0, s,
        out, x, weight, n, eps);
  else
    pdl_launch (rmsnorm_forward_kernel<LLM_DTYPE_BF16>, n_rows, threads, 0,
        s, out, x, weight, n, eps);
}

/* out = xn / sqrt(sum(ss) / n + eps) (llm-cuda.h, the split rmsnorm) */
static __global__ void
rmsnorm_finish_kernel (float *out, const float *xn, const float *ss,
    unsigned int n, float eps)
{
  unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
  float sum;

  pdl_launch_dependents ();
  pdl_wait ();
  sum = warp_sum (ss[threadIdx.x % LLM_CUDA_WARP]);
  if (i < n)
    out[i] = xn[i] * (1.0f / sqrtf (sum / (float) n + eps));
}

void
llm_cuda_rmsnorm_finish (float *out, const float *xn, const float *ss,
    guint n, float eps, LlmCudaStream * stream)
{
  if (n == 0)
    return;
  llm_cuda_use_device ();
  pdl_launch (rmsnorm_finish_kernel, div_up (n, 256), 256, 0,
      llm_cuda_raw_stream (stream), out, xn, ss, n, eps);
}
