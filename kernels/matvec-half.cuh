/* LLMasOS - the matvec of 16-bit float weights (F16, BF16): one template,
 * instantiated by matvec_f16.cu and matvec_bf16.cu.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "matvec-common.cuh"

/* The two 16-bit floats packed in @u (low half first) as floats. */
template <LlmDType T>
static __device__ __forceinline__ float2
unpack_half2 (uint32_t u)
{
  if (T == LLM_DTYPE_F16)
    return make_float2 (f16_bits_to_f32 ((uint16_t) (u & 0xffff)),
        f16_bits_to_f32 ((uint16_t) (u >> 16)));
  return make_float2 (__uint_as_float (u << 16),
      __uint_as_float (u & 0xffff0000u));
}

/* dot(8 weights in @w, x[0..8)), @x 16-byte aligned. */
template <LlmDType T>
static __device__ __forceinline__ float
dot8_half (uint4 w, const float *__restrict__ x)
{
  float4 xa = *(const float4 *) x, xb = *(const float4 *) (x + 4);
  float2 a = unpack_half2<T> (w.x), b = unpack_half2<T> (w.y);
  float2 c = unpack_half2<T> (w.z), d = unpack_half2<T> (w.w);

  return a.x * xa.x + a.y * xa.y + b.x * xa.z + b.y * xa.w
      + c.x * xb.x + c.y * xb.y + d.x * xb.z + d.y * xb.w;
}

/* One warp per row. VEC: every row 16-byte aligned (cols % 8 == 0, @w and
 * @x aligned): lane l reads 16-byte pieces l, l + 32, ... of the row, so a
 * warp reads 512 contiguous bytes per load instruction, four loads in
 * flight before the first use; otherwise one element at a time. */
template <LlmDType T, bool VEC>
static __global__ void __launch_bounds__ (MATVEC_THREADS)
matvec_half_kernel (float *__restrict__ out, const uint16_t * __restrict__ w,
    const float *__restrict__ x, unsigned int rows, unsigned int cols)
{
  unsigned int row = blockIdx.x * MATVEC_WARPS + threadIdx.x / LLM_CUDA_WARP;
  unsigned int lane = threadIdx.x % LLM_CUDA_WARP;
  float acc0 = 0.0f, acc1 = 0.0f, acc2 = 0.0f, acc3 = 0.0f;

  if (row >= rows)
    return;

  if (VEC) {
    const uint4 *wr = (const uint4 *) (w + (size_t) row * cols);
    unsigned int n8 = cols / 8, i = lane;

    for (; i + 3 * LLM_CUDA_WARP < n8; i += 4 * LLM_CUDA_WARP) {
      uint4 a = __ldcs (wr + i), b = __ldcs (wr + i + LLM_CUDA_WARP);
      uint4 c = __ldcs (wr + i + 2 * LLM_CUDA_WARP);
      uint4 d = __ldcs (wr + i + 3 * LLM_CUDA_WARP);

      acc0 += dot8_half<T> (a, x + 8 * i);
      acc1 += dot8_half<T> (b, x + 8 * (i + LLM_CUDA_WARP));
      acc2 += dot8_half<T> (c, x + 8 * (i + 2 * LLM_CUDA_WARP));
      acc3 += dot8_half<T> (d, x + 8 * (i + 3 * LLM_CUDA_WARP));
    }
    for (; i < n8; i += LLM_CUDA_WARP)
      acc0 += dot8_half<T> (__ldcs (wr + i), x + 8 * i);
  } else {
    const uint16_t *wr = w + (size_t) row * cols;

    for (unsigned int i = lane; i < cols; i += LLM_CUDA_WARP)
      acc0 += load_plain<T> (wr, i) * x[i];
  }
  acc0 = warp_sum ((acc0 + acc1) + (acc2 + acc3));
  if (lane == 0)
    out[row] = acc0;
}

template <LlmDType T>
static void
matvec_half_launch (float *out, const uint16_t * w, const float *x,
    unsigned int rows, unsigned int cols, LlmCudaStream * stream)
{
  cudaStream_t s = llm_cuda_raw_stream (stream);

  if (rows == 0)
    return;
  llm_cuda_use_device ();
  if (cols % 8 == 0 && aligned16 (w) && aligned16 (x))
    matvec_half_kernel<T, true> <<<matvec_blocks (rows), MATVEC_THREADS, 0,
        s>>> (out, w, x, rows, cols);
  else
    matvec_half_kernel<T, false> <<<matvec_blocks (rows), MATVEC_THREADS, 0,
        s>>> (out, w, x, rows, cols);
}
