/* LLMasOS - vector_add: x += y, the residual connections of a layer.
 * CPU twin: the loops in llm_compute_forward().
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-cuda-private.cuh"

#define ADD_THREADS 256

static __global__ void
vector_add_kernel (float *x, const float *y, size_t n)
{
  size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;

  if (i < n)
    x[i] += y[i];
}

void
llm_cuda_vector_add (float *x, const float *y, size_t n,
    LlmCudaStream * stream)
{
  if (n == 0)
    return;
  llm_cuda_use_device ();
  vector_add_kernel <<<div_up (n, ADD_THREADS), ADD_THREADS, 0,
      llm_cuda_raw_stream (stream)>>> (x, y, n);
}
