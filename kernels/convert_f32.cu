/* LLMasOS - convert_f32: F32 to F16 or BF16, round to nearest even (the
 * activations of llm_cuda_matmul_half, F16 KV caches). CPU twins:
 * llm_f32_to_f16(), llm_f32_to_bf16().
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-cuda-private.cuh"
#include <cuda_bf16.h>

template <LlmDType T>
static __global__ void
convert_f32_kernel (uint16_t * __restrict__ dst, const float *__restrict__ src,
    size_t n)
{
  size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;

  if (i < n) {
    if (T == LLM_DTYPE_F16)
      dst[i] = __half_as_ushort (__float2half_rn (src[i]));
    else
      dst[i] = __bfloat16_as_ushort (__float2bfloat16_rn (src[i]));
  }
}

void
llm_cuda_convert_f32 (void *dst, LlmDType dst_dtype, const float *src,
    size_t n, LlmCudaStream * stream)
{
  cudaStream_t s = llm_cuda_raw_stream (stream);

  g_return_if_fail (dst_dtype == LLM_DTYPE_F16 || dst_dtype == LLM_DTYPE_BF16);
  if (n == 0)
    return;
  llm_cuda_use_device ();
  if (dst_dtype == LLM_DTYPE_F16)
    convert_f32_kernel<LLM_DTYPE_F16> <<<div_up (n, 256), 256, 0, s>>> (
        (uint16_t *) dst, src, n);
  else
    convert_f32_kernel<LLM_DTYPE_BF16> <<<div_up (n, 256), 256, 0, s>>> (
        (uint16_t *) dst, src, n);
}
