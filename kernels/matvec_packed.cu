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

/* --- the fused decode matvecs (llm-cuda.h) --- */

/* The checks of matvec_packed_any for one vector; FALSE: nothing to do
 * through a fused kernel (the caller's unfused path reports what is off). */
static bool
pro_args_ok (LlmDType dtype, guint rows, guint cols)
{
  return rows > 0 && cols > 0 && llm_cuda_dtype_supported (dtype) &&
      (llm_cuda_matrix_layout_is_gguf (dtype) || cols % 32 == 0);
}

static bool
norm_dtype_ok (LlmDType t)
{
  return t == LLM_DTYPE_F32 || t == LLM_DTYPE_F16 || t == LLM_DTYPE_BF16;
}

static bool
is_quant (LlmDType t)
{
  return t == LLM_DTYPE_Q8_0 || t == LLM_DTYPE_Q4_0;
}

/* @pro through the kernel of @dtype. */
static bool
matvec_packed_pro_any (float *out, const void *packed, LlmDType dtype,
    const float *x, guint rows, guint cols, bool add, int pro,
    const MatvecPro & p, LlmCudaStream * stream)
{
  cudaStream_t s = llm_cuda_raw_stream (stream);

  llm_cuda_use_device ();
  if (dtype == LLM_DTYPE_Q8_0)
    return matvec_q8_0_packed_pro (out, packed, x, rows, cols, add, pro, p,
        s);
  if (dtype == LLM_DTYPE_Q4_0)
    return matvec_q4_0_packed_pro (out, packed, x, rows, cols, add, pro, p,
        s);
  return matvec_plain_packed_pro (out, packed, dtype, x, rows, cols, add,
      pro, p, s);
}

gboolean
llm_cuda_matvec_packed_rmsnorm (float *out, const void *packed,
    LlmDType dtype, const float *x, const void *norm, LlmDType norm_dtype,
    float eps, guint rows, guint cols, LlmCudaStream * stream)
{
  if (!pro_args_ok (dtype, rows, cols) || !norm_dtype_ok (norm_dtype))
    return FALSE;
  return matvec_packed_pro_any (out, packed, dtype, x, rows, cols, false,
      PRO_RMSNORM, rmsnorm_pro (norm, norm_dtype, eps), stream);
}

gboolean
llm_cuda_matvec_packed_rmsnorm_swiglu (float *out, const void *packed,
    LlmDType dtype, const float *x, const void *norm, LlmDType norm_dtype,
    float eps, guint rows, guint cols, LlmCudaStream * stream)
{
  if (!pro_args_ok (dtype, rows, cols) ||
      (norm != NULL && !norm_dtype_ok (norm_dtype)) || is_quant (dtype) ||
      rows % 2 != 0)
    return FALSE;
  return matvec_packed_pro_any (out, packed, dtype, x, rows, cols, false,
      norm != NULL ? PRO_RMSNORM | PRO_GATED : PRO_GATED,
      rmsnorm_pro (norm, norm_dtype, eps), stream);
}

gboolean
llm_cuda_matvec_packed_swiglu_add (float *out, const void *packed,
    LlmDType dtype, const float *gate_up, guint rows, guint cols,
    LlmCudaStream * stream)
{
  if (!pro_args_ok (dtype, rows, cols) || !is_quant (dtype))
    return FALSE;
  return matvec_packed_pro_any (out, packed, dtype, gate_up, rows, cols, true,
      PRO_SWIGLU, MatvecPro (), stream);
}

gboolean
llm_cuda_matvec_packed_add_norm (float *out, const void *packed,
    LlmDType dtype, const float *x, guint rows, guint cols, float *xn,
    const void *norm, LlmDType norm_dtype, float *ss, LlmCudaStream * stream)
{
  MatvecPro p = { };

  if (!pro_args_ok (dtype, rows, cols) || !norm_dtype_ok (norm_dtype) ||
      xn == NULL || norm == NULL || ss == NULL)
    return FALSE;
  p.xn = xn;
  p.epi_norm = norm;
  p.epi_norm_dtype = norm_dtype;
  p.ss_out = ss;
  return matvec_packed_pro_any (out, packed, dtype, x, rows, cols, true,
      EPI_NORM, p, stream);
}

gboolean
llm_cuda_matvec_packed_scaled (float *out, const void *packed,
    LlmDType dtype, const float *xn, const float *ss, float eps, guint rows,
    guint cols, gboolean gated, LlmCudaStream * stream)
{
  MatvecPro p = { };

  if (!pro_args_ok (dtype, rows, cols) || ss == NULL ||
      (gated && rows % 2 != 0))
    return FALSE;
  p.eps = eps;
  p.ss_in = ss;
  return matvec_packed_pro_any (out, packed, dtype, xn, rows, cols, false,
      gated ? PRO_SCALE | PRO_GATED : PRO_SCALE, p, stream);
}
