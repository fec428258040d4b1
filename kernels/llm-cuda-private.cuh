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
/* llm-cuda-context.cu: makes an adopted context current on this thread
 * and returns true if there is one; resets *@thread_device whenever the
 * context changed since this thread last looked. */
bool llm_cuda_use_adopted_context (int *thread_device);
/* Back to the primary context (llm_cuda_device_open does this when the
 * adopted context is on another device). */
void llm_cuda_drop_adopted_context (void);
/* True when a context is adopted and it is on device @index. */
bool llm_cuda_adopted_context_on (int index);

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

/* attention_prefill_mma.cu: the mma.sync flash-attention kernel of
 * llm_cuda_attention_prefill() for an F16 cache; false (nothing launched)
 * when it does not take this head_dim or these pointers/strides. */
bool llm_cuda_attention_prefill_mma (float *out, const float *q,
    size_t q_stride, const void *k, const void *v, unsigned int pos0,
    unsigned int n_tokens, unsigned int group, unsigned int n_kv_heads,
    unsigned int head_dim, size_t kv_stride, float scale,
    unsigned int window, cudaStream_t s);
