/* LLMasOS - matvec_packed: the dispatcher of the packed-layout matvecs
 * (plain, add, multi) to matvec_{plain,q8_0,q4_0}_packed.cu.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "matvec-packed.cuh"

static void
matvec_packed_any (float *out, const void *packed, LlmDType dtype,
    const float *x, guint n_x, guint rows, guint cols, bool add,
    LlmCudaStream * stream)
{
  cudaStream_t s = llm_cuda_raw_stream (stream);

  g_return_if_fail (n_x >= 1 && n_x <= PK_MAX_X);
  g_return_if_fail (llm_cuda_dtype_supported (dtype));
  g_return_if_fail (llm_cuda_matrix_layout_is_gguf (dtype) || cols % 32 == 0);
  if (rows == 0)
    return;
  llm_cuda_use_device ();
  if (cols == 0) {
    /* a sum of nothing: 0, or out unchanged */
    if (!add)
      cudaMemsetAsync (out, 0, (size_t) n_x * rows * sizeof (float), s);
    return;
  }
  if (dtype == LLM_DTYPE_Q8_0)
    matvec_q8_0_packed (out, packed, x, n_x, rows, cols, add, s);
  else if (dtype == LLM_DTYPE_Q4_0)
    matvec_q4_0_packed (out, packed, x, n_x, rows, cols, add, s);
  else
    matvec_plain_packed (out, packed, dtype, x, n_x, rows, cols, add, s);
}

void
llm_cuda_matvec_packed (float *out, const void *packed, LlmDType dtype,
    const float *x, guint rows, guint cols, LlmCudaStream * stream)
{
  matvec_packed_any (out, packed, dtype, x, 1, rows, cols, false, stream);
}

void
llm_cuda_matvec_packed_add (float *out, const void *packed, LlmDType dtype,
    const float *x, guint rows, guint cols, LlmCudaStream * stream)
{
  matvec_packed_any (out, packed, dtype, x, 1, rows, cols, true, stream);
}

void
llm_cuda_matvec_packed_multi (float *out, const void *packed, LlmDType dtype,
    const float *x, guint n_x, guint rows, guint cols, LlmCudaStream * stream)
{
  matvec_packed_any (out, packed, dtype, x, n_x, rows, cols, false, stream);
}
