/* LLMasOS - matrix_pack: GGUF rows of Q8_0 / Q4_0 blocks on the device ->
 * the packed layout of matvec-packed.cuh (quants of all rows, then the
 * scales); a plain copy for F32, F16 and BF16. Runs once per matrix, at
 * upload. CPU twin: none needed, the test compares the matvecs and the
 * dequantization of the packed matrices with core/.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "matvec-packed.cuh"
#include "llm-error.h"

/* One thread a block: its quants (2-byte aligned in GGUF) to 16-byte
 * aligned places, its scale to the scale array. */
template <LlmDType T>
static __global__ void
matrix_pack_kernel (uint8_t * __restrict__ dst,
    const uint8_t * __restrict__ src, unsigned int rows, unsigned int nb)
{
  /* quant bytes of a block */
  constexpr unsigned int QB = T == LLM_DTYPE_Q8_0 ? 32 : 16;
  constexpr unsigned int BB = QB + 2;   /* GGUF block bytes */
  size_t n = (size_t) rows * nb;
  uint16_t *scales = (uint16_t *) (dst + n * QB);

  for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n;
      i += (size_t) gridDim.x * blockDim.x) {
    const uint16_t *b = (const uint16_t *) (src + i * BB);
    uint32_t q[QB / 4];

#pragma unroll
    for (unsigned int k = 0; k < QB / 4; k++)
      q[k] = (uint32_t) b[1 + 2 * k] | (uint32_t) b[2 + 2 * k] << 16;
#pragma unroll
    for (unsigned int k = 0; k < QB / 16; k++)
      ((uint4 *) (dst + i * QB))[k] = make_uint4 (q[4 * k], q[4 * k + 1],
          q[4 * k + 2], q[4 * k + 3]);
    scales[i] = b[0];
  }
}

static_assert (sizeof (LlmBlockQ8_0) == 32 + 2
    && sizeof (LlmBlockQ4_0) == 16 + 2, "matrix_pack_kernel's block sizes");

size_t
llm_cuda_matrix_bytes (LlmDType dtype, guint rows, guint cols)
{
  switch (dtype) {
    case LLM_DTYPE_F32:
      return (size_t) rows * cols * 4;
    case LLM_DTYPE_F16:
    case LLM_DTYPE_BF16:
      return (size_t) rows * cols * 2;
    case LLM_DTYPE_Q8_0:
    case LLM_DTYPE_Q4_0:
      if (cols % 32 != 0)
        return 0;
      return (size_t) rows * (packed_row_quant_bytes (dtype, cols)
          + cols / 32 * 2);
    default:
      return 0;
  }
}

gboolean
llm_cuda_matrix_layout_is_gguf (LlmDType dtype)
{
  return dtype == LLM_DTYPE_F32 || dtype == LLM_DTYPE_F16
      || dtype == LLM_DTYPE_BF16;
}

gboolean
llm_cuda_matrix_pack (void *dst, const void *gguf_src, LlmDType dtype,
    guint rows, guint cols, LlmCudaStream * stream, GError ** error)
{
  cudaStream_t s = llm_cuda_raw_stream (stream);
  size_t n_blocks, bytes = llm_cuda_matrix_bytes (dtype, rows, cols);
  unsigned int grid;

  if (!llm_cuda_dtype_supported (dtype)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
        "no packed device layout for %s weights", llm_dtype_name (dtype));
    return FALSE;
  }
  if (bytes == 0 && rows != 0 && cols != 0) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_INPUT,
        "%s matrix of %u columns: not whole blocks of 32",
        llm_dtype_name (dtype), cols);
    return FALSE;
  }
  if (dst == NULL || gguf_src == NULL || dst == gguf_src) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_INPUT,
        "matrix_pack: destination %p and source %p must be distinct device "
        "memory", dst, gguf_src);
    return FALSE;
  }
  if (bytes == 0)
    return TRUE;
  if (llm_cuda_matrix_layout_is_gguf (dtype))
    return llm_cuda_copy (dst, gguf_src, bytes, LLM_CUDA_DEVICE_TO_DEVICE,
        stream, error);

  llm_cuda_use_device ();
  n_blocks = (size_t) rows * (cols / 32);
  grid = (unsigned int) MIN (div_up (n_blocks, 256),
      (size_t) llm_cuda_n_sm () * 8);
  if (dtype == LLM_DTYPE_Q8_0)
    matrix_pack_kernel<LLM_DTYPE_Q8_0> <<<grid, 256, 0, s>>> ((uint8_t *) dst,
        (const uint8_t *) gguf_src, rows, cols / 32);
  else
    matrix_pack_kernel<LLM_DTYPE_Q4_0> <<<grid, 256, 0, s>>> ((uint8_t *) dst,
        (const uint8_t *) gguf_src, rows, cols / 32);
  return llm_cuda_check (error);
}
