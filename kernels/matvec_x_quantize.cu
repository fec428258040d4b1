/* LLMasOS - matvec_x_quantize: x rounded to Q8_0 once, into device memory,
 * for the Q8_0 / Q4_0 matvecs of the decode step.
 *
 * The packed matvec (matvec-packed.cuh) otherwise rounds x into shared
 * memory in every block of its grid: at batch 1 a block has only a few
 * rows to do, so each block reads as many bytes of x (F32, from L2) as of
 * weights and starts multiplying only after it has rounded all of x. Done
 * once here, the matvec's blocks read the 1.25 bytes a value of the
 * rounded x through L1 instead. The rmsnorm before wqkv and gate|up, and
 * the SwiGLU before the down projection, are applied on the way in (no
 * kernel of their own). CPU twin: llm_quantize_row() (Q8_0) of x.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "matvec-packed.cuh"

/* Grid: cols / 4 / PK_THREADS blocks; thread i rounds x[4i .. 4i + 4). */
template <LlmDType T, int PRO>
static __global__ void __launch_bounds__ (PK_THREADS)
matvec_x_quantize_kernel (void *xbuf, const float *__restrict__ x,
    unsigned int cols, MatvecPro p)
{
  int8_t *xq = (int8_t *) xbuf;
  float *xd = (float *) (xq + cols);
  int *xs = (int *) (xd + cols / 32);
  unsigned int n4 = cols / 4;   /* a multiple of 8: whole 32-blocks */
  unsigned int i = blockIdx.x * PK_THREADS + threadIdx.x;
  float scale = 1.0f, d;
  float4 v = make_float4 (0.0f, 0.0f, 0.0f, 0.0f);
  int q, sum;

  /* launched with PDL (llm-cuda-pdl.cuh): x is the previous kernel's, and
   * the buffer may still be read by the kernel before */
  pdl_launch_dependents ();
  pdl_wait ();
  if (PRO == PRO_RMSNORM)
    scale = block_rms_scale (x, cols, p.eps);
  if (i < n4)
    v = make_float4 (pro_x<PRO> (x, 4 * i, cols, p, scale),
        pro_x<PRO> (x, 4 * i + 1, cols, p, scale),
        pro_x<PRO> (x, 4 * i + 2, cols, p, scale),
        pro_x<PRO> (x, 4 * i + 3, cols, p, scale));
  /* every lane of the warp shuffles; 8 lanes a block agree on i < n4 */
  q = quantize4_q8 (v, &d, &sum);
  if (i < n4) {
    *(int *) (xq + xq_offset<T> (4 * i, cols)) = q;
    if (4 * i % 32 == 0) {
      xd[4 * i / 32] = d;
      xs[4 * i / 32] = sum;
    }
  }
}

template <LlmDType T>
static void
launch (void *xbuf, const float *x, unsigned int cols, int pro,
    const MatvecPro & p, cudaStream_t s)
{
  unsigned int grid = div_up (cols / 4, PK_THREADS);

  if (pro == PRO_RMSNORM)
    pdl_launch (matvec_x_quantize_kernel<T, PRO_RMSNORM>, grid, PK_THREADS,
        0, s, xbuf, x, cols, p);
  else if (pro == PRO_SWIGLU)
    pdl_launch (matvec_x_quantize_kernel<T, PRO_SWIGLU>, grid, PK_THREADS,
        0, s, xbuf, x, cols, p);
  else
    pdl_launch (matvec_x_quantize_kernel<T, PRO_NONE>, grid, PK_THREADS, 0,
        s, xbuf, x, cols, p);
}

size_t
llm_cuda_quantized_x_bytes (guint cols)
{
  return packed_x_shared_bytes (1, cols);
}

gboolean
llm_cuda_quantize_x (void *xq, LlmDType dtype, const float *x, guint cols,
    const void *norm, LlmDType norm_dtype, float eps, gboolean swiglu,
    LlmCudaStream * stream)
{
  cudaStream_t s = llm_cuda_raw_stream (stream);
  MatvecPro p = rmsnorm_pro (norm, norm_dtype, eps);
  int pro = swiglu ? PRO_SWIGLU : norm != NULL ? PRO_RMSNORM : PRO_NONE;

  if ((dtype != LLM_DTYPE_Q8_0 && dtype != LLM_DTYPE_Q4_0) || cols == 0 ||
      cols % 32 != 0 || (norm != NULL && swiglu) ||
      (norm != NULL && norm_dtype != LLM_DTYPE_F32 &&
          norm_dtype != LLM_DTYPE_F16 && norm_dtype != LLM_DTYPE_BF16))
    return FALSE;
  llm_cuda_use_device ();
  if (dtype == LLM_DTYPE_Q8_0)
    launch<LLM_DTYPE_Q8_0> (xq, x, cols, pro, p, s);
  else
    launch<LLM_DTYPE_Q4_0> (xq, x, cols, pro, p, s);
  return TRUE;
}

gboolean
llm_cuda_matvec_packed_quantized (float *out, const void *packed,
    LlmDType dtype, const void *xq, guint rows, guint cols, gboolean add,
    LlmCudaStream * stream)
{
  cudaStream_t s = llm_cuda_raw_stream (stream);

  if ((dtype != LLM_DTYPE_Q8_0 && dtype != LLM_DTYPE_Q4_0) || cols == 0 ||
      cols % 32 != 0)
    return FALSE;
  if (rows == 0)
    return TRUE;
  llm_cuda_use_device ();
  if (dtype == LLM_DTYPE_Q8_0)
    matvec_q8_0_packed_quantized (out, packed, xq, rows, cols, add, s);
  else
    matvec_q4_0_packed_quantized (out, packed, xq, rows, cols, add, s);
  return TRUE;
}
