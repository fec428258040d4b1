/* LLMasOS - matvec_f16: out = W x for IEEE half weights, F32 activations.
 * CPU twin: llm_matvec() on an F16 tensor. The kernel is matvec-half.cuh's.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "matvec-half.cuh"

static_assert (sizeof (__half) == 2, "F16 weights are 2 bytes");

void
llm_cuda_matvec_f16 (float *out, const guint16 * weight, const float *x,
    guint rows, guint cols, LlmCudaStream * stream)
{
  matvec_half_launch<LLM_DTYPE_F16> (out, weight, x, rows, cols, stream);
}
