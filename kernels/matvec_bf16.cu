/* LLMasOS - matvec_bf16: out = W x for bfloat16 weights (the top half of an
 * F32), F32 activations. CPU twin: llm_matvec() on a BF16 tensor. The
 * kernel is matvec-half.cuh's.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "matvec-half.cuh"

void
llm_cuda_matvec_bf16 (float *out, const guint16 * weight, const float *x,
    guint rows, guint cols, LlmCudaStream * stream)
{
  matvec_half_launch<LLM_DTYPE_BF16> (out, weight, x, rows, cols, stream);
}
