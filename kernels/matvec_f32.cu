/* LLMasOS - matvec_f32: out = W x for F32 weights (small models such as
 * stories260K ship them). CPU twin: llm_matvec() on an F32 tensor.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "matvec-common.cuh"

/* One warp per row; VEC: 16-byte loads, four in flight (see matvec-half.cuh). */
template <bool VEC>
static __global__ void __launch_bounds__ (MATVEC_THREADS)
matvec_f32_kernel (float *__restrict__ out, const float *__restrict__ w,
    const float *__restrict__ x, unsigned int rows, unsigned int cols)
{
  unsigned int row = blockIdx.x * MATVEC_WARPS + threadIdx.x / LLM_CUDA_WARP;
  unsigned int lane = threadIdx.x % LLM_CUDA_WARP;
  float acc0 = 0.0f, acc1 = 0.0f, acc2 = 0.0f, acc3 = 0.0f;

  if (row >= rows)
    return;

  if (VEC) {
    const float4 *wr = (const float4 *) (w + (size_t) row * cols);
    const float4 *x4 = (const float4 *) x;
    unsigned int n4 = cols / 4, i = lane;

    for (; i + 3 * LLM_CUDA_WARP < n4; i += 4 * LLM_CUDA_WARP) {
      float4 a = __ldcs (wr + i), b = __ldcs (wr + i + LLM_CUDA_WARP);
      float4 c = __ldcs (wr + i + 2 * LLM_CUDA_WARP);
      float4 d = __ldcs (wr + i + 3 * LLM_CUDA_WARP);
      float4 xa = x4[i], xb = x4[i + LLM_CUDA_WARP];
      float4 xc = x4[i + 2 * LLM_CUDA_WARP], xd = x4[i + 3 * LLM_CUDA_WARP];

      acc0 += a.x * xa.x + a.y * xa.y + a.z * xa.z + a.w * xa.w;
      acc1 += b.x * xb.x + b.y * xb.y + b.z * xb.z + b.w * xb.w;
      acc2 += c.x * xc.x + c.y * xc.y + c.z * xc.z + c.w * xc.w;
      acc3 += d.x * xd.x + d.y * xd.y + d.z * xd.z + d.w * xd.w;
    }
    for (; i < n4; i += LLM_CUDA_WARP) {
      float4 a = __ldcs (wr + i), xa = x4[i];

      acc0 += a.x * xa.x + a.y * xa.y + a.z * xa.z + a.w * xa.w;
    }
  } else {
    const float *wr = w + (size_t) row * cols;

    for (unsigned int i = lane; i < cols; i += LLM_CUDA_WARP)
      acc0 += wr[i] * x[i];
  }
  acc0 = warp_sum ((acc0 + acc1) + (acc2 + acc3));
  if (lane == 0)
    out[row] = acc0;
}

void
llm_cuda_matvec_f32 (float *out, const float *weight, const float *x,
    guint rows, guint cols, LlmCudaStream * stream)
{
  cudaStream_t s = llm_cuda_raw_stream (stream);

  if (rows == 0)
    return;
  llm_cuda_use_device ();
  if (cols % 4 == 0 && aligned16 (weight) && aligned16 (x))
    matvec_f32_kernel<true> <<<matvec_blocks (rows), MATVEC_THREADS, 0,
        s>>> (out, weight, x, rows, cols);
  else
    matvec_f32_kernel<false> <<<matvec_blocks (rows), MATVEC_THREADS, 0,
        s>>> (out, weight, x, rows, cols);
}
