/* LLMasOS - what the .cu files of kernels/ share; never included outside.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cublas_v2.h>
#include <stdint.h>

#include "llm-cuda.h"

/* The GGUF block layouts the quantized kernels read, pinned here (as ggml
 * does) so that a change to core/llm-dtype.h cannot go unnoticed. */
static_assert (LLM_QK8_0 == 32 && LLM_QK4_0 == 32, "32 weights a block");
static_assert (sizeof (LlmBlockQ8_0) == 2 + 32, "q8_0: half scale + 32 int8");
static_assert (offsetof (LlmBlockQ8_0, qs) == 2, "q8_0: quants after d");
static_assert (sizeof (LlmBlockQ4_0) == 2 + 32 / 2,
    "q4_0: half scale + 16 bytes of nibbles");
static_assert (offsetof (LlmBlockQ4_0, qs) == 2, "q4_0: nibbles after d");

struct _LlmCudaStream
{
  cudaStream_t stream;          /* the CUDA stream itself */
  cublasHandle_t blas;          /* bound to @stream, made on first use */
  int device;                   /* device it was made on */
};

#define LLM_CUDA_WARP 32

/* The raw stream of @s (NULL: the legacy default stream). */
static inline cudaStream_t
llm_cuda_raw_stream (LlmCudaStream * s)
{
  return s != NULL ? s->stream : (cudaStream_t) 0;
}

/* Makes the process's device current on this thread (cheap when it is). */
void llm_cuda_use_device (void);
/* Multiprocessors of the open device (for grid sizes). */
int llm_cuda_n_sm (void);

/* Sum and max over a warp, every lane gets the result. */
static __device__ __forceinline__ float
warp_sum (float v)
{
#pragma unroll
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync (0xffffffffu, v, o);
  return v;
}

static __device__ __forceinline__ float
warp_max (float v)
{
#pragma unroll
  for (int o = 16; o > 0; o >>= 1)
    v = fmaxf (v, __shfl_xor_sync (0xffffffffu, v, o));
  return v;
}

/* Raw IEEE half / bfloat16 bits to float. */
static __device__ __forceinline__ float
f16_bits_to_f32 (uint16_t h)
{
  return __half2float (__ushort_as_half (h));
}

static __device__ __forceinline__ float
bf16_bits_to_f32 (uint16_t b)
{
  return __uint_as_float ((uint32_t) b << 16);
}

/* Element @i of a plain F32/F16/BF16 array as float. */
template <LlmDType T>
static __device__ __forceinline__ float
load_plain (const void *p, size_t i)
{
  if (T == LLM_DTYPE_F32)
    return ((const float *) p)[i];
  else if (T == LLM_DTYPE_F16)
    return f16_bits_to_f32 (((const uint16_t *) p)[i]);
  else
    return bf16_bits_to_f32 (((const uint16_t *) p)[i]);
}

static inline unsigned int
div_up (size_t a, size_t b)
{
  return (unsigned int) ((a + b - 1) / b);
}
