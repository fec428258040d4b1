/* LLMasOS - matrix_dequantize_f16: a packed matrix (matvec-packed.cuh) as
 * F16, for prefill through cuBLAS (llm_cuda_matmul_half). Each weight is
 * the F16 rounding of d * q (or of the F32 / BF16 value), the float that
 * llm_dequantize_row() gives. CPU twin: llm_dequantize_row() then
 * llm_f32_to_f16(); bit-exact.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "matvec-packed.cuh"

/* One thread a 32-block: 32 halves, four 16-byte stores. */
template <LlmDType T>
static __global__ void
dequantize_blocks_f16_kernel (uint4 * __restrict__ dst,
    const void *__restrict__ packed, unsigned int rows, unsigned int cols)
{
  size_t n = (size_t) rows * (cols / 32);
  const uint8_t *q = (const uint8_t *) packed;
  const uint16_t *scales = packed_scales (packed, T, rows, cols);

  for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n;
      i += (size_t) gridDim.x * blockDim.x) {
    float d = f16_bits_to_f32 (scales[i]);
    float w[32];
    uint32_t h[16];

    if (T == LLM_DTYPE_Q8_0) {
      const int8_t *b = (const int8_t *) (q + i * 32);

#pragma unroll
      for (int j = 0; j < 32; j++)
        w[j] = b[j] * d;
    } else {
      const uint8_t *b = q + i * 16;

#pragma unroll
      for (int j = 0; j < 16; j++) {
        w[j] = ((b[j] & 0x0f) - 8) * d;
        w[j + 16] = ((b[j] >> 4) - 8) * d;
      }
    }
#pragma unroll
    for (int j = 0; j < 16; j++)
      h[j] = (uint32_t) __half_as_ushort (__float2half_rn (w[2 * j]))
          | (uint32_t) __half_as_ushort (__float2half_rn (w[2 * j + 1])) << 16;
#pragma unroll
    for (int k = 0; k < 4; k++)
      dst[4 * i + k] = make_uint4 (h[4 * k], h[4 * k + 1], h[4 * k + 2],
          h[4 * k + 3]);
  }
}

/* One thread an element of a plain matrix. */
template <LlmDType T>
static __global__ void
dequantize_plain_f16_kernel (uint16_t * __restrict__ dst,
    const void *__restrict__ src, size_t n)
{
  for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n;
      i += (size_t) gridDim.x * blockDim.x)
    dst[i] = T == LLM_DTYPE_F16 ? ((const uint16_t *) src)[i]
        : __half_as_ushort (__float2half_rn (load_plain<T> (src, i)));
}

void
llm_cuda_matrix_dequantize_f16 (guint16 * dst, const void *packed,
    LlmDType dtype, guint rows, guint cols, LlmCudaStream * stream)
{
  cudaStream_t s = llm_cuda_raw_stream (stream);
  size_t n = (size_t) rows * cols;
  unsigned int grid;

  g_return_if_fail (llm_cuda_dtype_supported (dtype));
  g_return_if_fail (llm_cuda_matrix_layout_is_gguf (dtype) || cols % 32 == 0);
  if (n == 0)
    return;
  llm_cuda_use_device ();
  grid = (unsigned int) MIN (div_up (n, 256 * 32), (size_t) llm_cuda_n_sm ()
      * 8);
  switch (dtype) {
    case LLM_DTYPE_Q8_0:
      dequantize_blocks_f16_kernel<LLM_DTYPE_Q8_0> <<<grid, 256, 0, s>>>
          ((uint4 *) dst, packed, rows, cols);
      break;
    case LLM_DTYPE_Q4_0:
      dequantize_blocks_f16_kernel<LLM_DTYPE_Q4_0> <<<grid, 256, 0, s>>>
          ((uint4 *) dst, packed, rows, cols);
      break;
    case LLM_DTYPE_F32:
      dequantize_plain_f16_kernel<LLM_DTYPE_F32> <<<grid * 32, 256, 0, s>>>
          (dst, packed, n);
      break;
    case LLM_DTYPE_F16:
      dequantize_plain_f16_kernel<LLM_DTYPE_F16> <<<grid * 32, 256, 0, s>>>
          (dst, packed, n);
      break;
    default:
      dequantize_plain_f16_kernel<LLM_DTYPE_BF16> <<<grid * 32, 256, 0, s>>>
          (dst, packed, n);
  }
}
