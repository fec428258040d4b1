/* LLMasOS - matmul_half: out = X W^T for a block of prompt tokens through
 * cuBLAS (tensor cores), F16 or BF16 weights and activations, F32
 * accumulation and output. CPU twin: llm_matmul().
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-cuda-private.cuh"
#include "llm-error.h"

static const char *
blas_status_name (cublasStatus_t st)
{
  switch (st) {
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
    default:
      return "cuBLAS error";
  }
}

gboolean
llm_cuda_matmul_half (float *out, const void *weight, const void *x,
    LlmDType dtype, guint rows, guint cols, guint n_tokens,
    LlmCudaStream * stream, GError ** error)
{
  cudaDataType_t t = dtype == LLM_DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_16F;
  const float one = 1.0f, zero = 0.0f;
  cublasStatus_t st;

  g_return_val_if_fail (stream != NULL, FALSE);
  g_return_val_if_fail (dtype == LLM_DTYPE_F16 || dtype == LLM_DTYPE_BF16,
      FALSE);
  if (rows == 0 || n_tokens == 0)
    return TRUE;
  llm_cuda_use_device ();

  if (stream->blas == NULL) {
    if ((st = cublasCreate (&stream->blas)) != CUBLAS_STATUS_SUCCESS
        || (st = cublasSetStream (stream->blas, stream->stream))
        != CUBLAS_STATUS_SUCCESS) {
      if (stream->blas != NULL)
        cublasDestroy (stream->blas);
      stream->blas = NULL;
      g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
          "cannot start cuBLAS: %s", blas_status_name (st));
      return FALSE;
    }
  }

  /* Column-major view: W is cols x rows (ld cols), X is cols x n_tokens
   * (ld cols), out is rows x n_tokens (ld rows) = W^T X. */
  st = cublasGemmEx (stream->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int) rows,
      (int) n_tokens, (int) cols, &one, weight, t, (int) cols, x, t,
      (int) cols, &zero, out, CUDA_R_32F, (int) rows, CUBLAS_COMPUTE_32F,
      CUBLAS_GEMM_DEFAULT);
  if (st != CUBLAS_STATUS_SUCCESS) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
        "cuBLAS matmul of %u x %u %s weights by %u tokens: %s", rows, cols,
        llm_dtype_name (dtype), n_tokens, blas_status_name (st));
    return FALSE;
  }
  return TRUE;
}
