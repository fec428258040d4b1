/* LLMasOS - matvec_q4_0_packed: out = W x for Q4_0 weights in the packed
 * device layout (matvec-packed.cuh), x rounded to Q8_0 on the way.
 * CPU twin: llm_matvec() on the GGUF Q4_0 tensor with x replaced by its
 * Q8_0 rounding (llm_quantize_row + llm_dequantize_row).
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "matvec-packed.cuh"

void
matvec_q4_0_packed (float *out, const void *packed, const float *x,
    unsigned int n_x, unsigned int rows, unsigned int cols, bool add,
    cudaStream_t s)
{
  matvec_packed_blocks_launch<LLM_DTYPE_Q4_0> (out, packed, x, n_x, rows,
      cols, add, s);
}

bool
matvec_q4_0_packed_pro (float *out, const void *packed, const float *x,
    unsigned int rows, unsigned int cols, bool add, int pro,
    const MatvecPro & p, cudaStream_t s)
{
  return matvec_packed_blocks_launch_pro<LLM_DTYPE_Q4_0> (out, packed, x, rows,
      cols, add, pro, p, s);
}

void
matvec_q4_0_packed_quantized (float *out, const void *packed, const void *xq,
    unsigned int rows, unsigned int cols, bool add, cudaStream_t s)
{
  matvec_packed_blocks_launch_quantized<LLM_DTYPE_Q4_0> (out, packed, xq, rows,
      cols, add, s);
}
