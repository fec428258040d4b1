/* LLMasOS - embedding_gather: the rows of a (possibly quantized) embedding
 * table for a list of token ids, as F32. CPU twin: llm_get_row().
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-cuda-private.cuh"

/* Element @i of one stored row of @T. */
template <LlmDType T>
static __device__ __forceinline__ float
row_element (const uint8_t * row, unsigned int i)
{
  if (T == LLM_DTYPE_Q8_0) {
    const LlmBlockQ8_0 *b = (const LlmBlockQ8_0 *) row + i / LLM_QK8_0;

    return f16_bits_to_f32 (b->d) * (float) b->qs[i % LLM_QK8_0];
  } else if (T == LLM_DTYPE_Q4_0) {
    const LlmBlockQ4_0 *b = (const LlmBlockQ4_0 *) row + i / LLM_QK4_0;
    unsigned int j = i % LLM_QK4_0;
    unsigned int byte = b->qs[j % (LLM_QK4_0 / 2)];
    int q = (int) (j < LLM_QK4_0 / 2 ? byte & 0xf : byte >> 4) - 8;

    return f16_bits_to_f32 (b->d) * (float) q;
  } else {
    return load_plain<T> (row, i);
  }
}

/* Grid: (column chunks, tokens). */
template <LlmDType T>
static __global__ void
embedding_gather_kernel (float *__restrict__ out,
    const uint8_t * __restrict__ table, size_t row_bytes,
    unsigned int n_vocab, unsigned int dim,
    const int32_t * __restrict__ tokens)
{
  unsigned int t = blockIdx.y;
  unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
  int32_t id = tokens[t];

  if (i >= dim)
    return;
  out[(size_t) t * dim + i] = id >= 0 && (unsigned int) id < n_vocab ?
      row_element<T> (table + (size_t) id * row_bytes, i) : 0.0f;
}

void
llm_cuda_embedding_gather (float *out, const void *table, LlmDType dtype,
    guint n_vocab, guint dim, const gint32 * tokens, guint n_tokens,
    LlmCudaStream * stream)
{
  guint64 row_bytes = 0;
  dim3 grid (div_up (dim, 256), n_tokens);
  cudaStream_t s = llm_cuda_raw_stream (stream);
  const uint8_t *tb = (const uint8_t *) table;
  const int32_t *ids = (const int32_t *) tokens;

  g_return_if_fail (llm_cuda_dtype_supported (dtype));
  g_return_if_fail (llm_dtype_bytes_for (dtype, dim, &row_bytes));
  g_return_if_fail (n_tokens <= 65535);
  if (n_tokens == 0 || dim == 0)
    return;
  llm_cuda_use_device ();

  switch (dtype) {
    case LLM_DTYPE_F32:
      embedding_gather_kernel<LLM_DTYPE_F32> <<<grid, 256, 0, s>>> (out, tb,
          row_bytes, n_vocab, dim, ids);
      break;
    case LLM_DTYPE_F16:
      embedding_gather_kernel<LLM_DTYPE_F16> <<<grid, 256, 0, s>>> (out, tb,
          row_bytes, n_vocab, dim, ids);
      break;
    case LLM_DTYPE_BF16:
      embedding_gather_kernel<LLM_DTYPE_BF16> <<<grid, 256, 0, s>>> (out, tb,
          row_bytes, n_vocab, dim, ids);
      break;
    case LLM_DTYPE_Q8_0:
      embedding_gather_kernel<LLM_DTYPE_Q8_0> <<<grid, 256, 0, s>>> (out, tb,
          row_bytes, n_vocab, dim, ids);
      break;
    default:
      embedding_gather_kernel<LLM_DTYPE_Q4_0> <<<grid, 256, 0, s>>> (out, tb,
          row_bytes, n_vocab, dim, ids);
      break;
  }
}
