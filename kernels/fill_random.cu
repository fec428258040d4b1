/* LLMasOS - fill_normal: device memory filled with normal random values,
 * as F32, F16, BF16 or whole Q8_0 / Q4_0 blocks (benchmark weights, made
 * on the device so that a 16 GB model takes a second, not minutes of
 * uploading). CPU twins of the stored formats: llm_quantize_row().
 *
 * Element i is a function of (seed, i) alone: a counter-based hash
 * (SplitMix64's output function on key + (i + 1) * golden gamma, the key
 * mixed from the seed) gives two uniforms, Box-Muller one normal. So the
 * result does not depend on the grid, and the same seed gives the same
 * bytes on every run. The arithmetic uses explicit round-to-nearest
 * intrinsics so that no kernel contracts it into an FMA differently: the
 * F32 fill and the quantized fills of one seed see the very same floats,
 * which lets the test compare a Q8_0 fill with llm_quantize_row() of the
 * F32 fill byte for byte.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-cuda-private.cuh"
#include <cuda_bf16.h>

#define FILL_THREADS 256
#define GOLDEN_GAMMA 0x9e3779b97f4a7c15ull

static __host__ __device__ __forceinline__ uint64_t
mix64 (uint64_t z)
{
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* The normal value of element @i: mean + std * sqrt(-2 ln u1) cos(2 pi u2)
 * with u1 in (0, 1] and u2 in [0, 1) from 24 bits each (tails cut at
 * 5.8 sigma, which no benchmark notices). */
static __device__ __forceinline__ float
normal_at (uint64_t key, uint64_t i, float mean, float std)
{
  uint64_t h = mix64 (key + (i + 1) * GOLDEN_GAMMA);
  float u1 = __fmul_rn ((float) ((h >> 40) + 1), 1.0f / 16777216.0f);
  float u2 = __fmul_rn ((float) (h & 0xffffff), 1.0f / 16777216.0f);
  float r = __fsqrt_rn (__fmul_rn (-2.0f, logf (u1)));
  float z = __fmul_rn (r, cospif (__fmul_rn (2.0f, u2)));

  return __fadd_rn (mean, __fmul_rn (std, z));
}

template <LlmDType T>
static __global__ void
fill_normal_plain (void *dst, size_t n, uint64_t key, float mean, float std)
{
  for (size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x; i < n;
      i += (size_t) gridDim.x * blockDim.x) {
    float v = normal_at (key, i, mean, std);

    if (T == LLM_DTYPE_F32)
      ((float *) dst)[i] = v;
    else if (T == LLM_DTYPE_F16)
      ((uint16_t *) dst)[i] = __half_as_ushort (__float2half_rn (v));
    else
      ((uint16_t *) dst)[i] = __bfloat16_as_ushort (__float2bfloat16_rn (v));
  }
}

/* One thread per block of 32, quantized as core's quantize_row_q8_0 /
 * quantize_row_q4_0 do (llm-dtype.c), operation for operation. */
template <LlmDType T>
static __global__ void
fill_normal_blocks (void *dst, size_t n_blocks, uint64_t key, float mean,
    float std)
{
  for (size_t b = (size_t) blockIdx.x * blockDim.x + threadIdx.x;
      b < n_blocks; b += (size_t) gridDim.x * blockDim.x) {
    float x[32], amax = 0.0f, max = 0.0f;

#pragma unroll
    for (int j = 0; j < 32; j++) {
      x[j] = normal_at (key, b * 32 + j, mean, std);
      if (amax < fabsf (x[j])) {
        amax = fabsf (x[j]);
        max = x[j];
      }
    }
    if (T == LLM_DTYPE_Q8_0) {
      LlmBlockQ8_0 y;
      float d = __fdiv_rn (amax, 127.0f);
      float id = d != 0.0f ? __fdiv_rn (1.0f, d) : 0.0f;

      y.d = __half_as_ushort (__float2half_rn (d));
#pragma unroll
      for (int j = 0; j < 32; j++)
        y.qs[j] = (int8_t) roundf (__fmul_rn (x[j], id));
      ((LlmBlockQ8_0 *) dst)[b] = y;
    } else {
      LlmBlockQ4_0 y;
      /* -8 is the one level without a positive twin: @max maps onto it */
      float d = __fdiv_rn (max, -8.0f);
      float id = d != 0.0f ? __fdiv_rn (1.0f, d) : 0.0f;

      y.d = __half_as_ushort (__float2half_rn (d));
#pragma unroll
      for (int j = 0; j < 16; j++) {
        int lo = (int8_t) __fadd_rn (__fmul_rn (x[j], id), 8.5f);
        int hi = (int8_t) __fadd_rn (__fmul_rn (x[j + 16], id), 8.5f);

        y.qs[j] = (uint8_t) (min (15, lo) | (min (15, hi) << 4));
      }
      ((LlmBlockQ4_0 *) dst)[b] = y;
    }
  }
}

void
llm_cuda_fill_normal (void *dst, LlmDType dtype, guint64 n_elements,
    float mean, float std, guint64 seed, LlmCudaStream * stream)
{
  cudaStream_t s = llm_cuda_raw_stream (stream);
  guint block = llm_dtype_block_elems (dtype);
  size_t n_items;
  uint64_t key;
  unsigned int grid;

  g_return_if_fail (dtype == LLM_DTYPE_F32 || dtype == LLM_DTYPE_F16
      || dtype == LLM_DTYPE_BF16 || dtype == LLM_DTYPE_Q8_0
      || dtype == LLM_DTYPE_Q4_0);
  g_return_if_fail (n_elements % block == 0);
  g_return_if_fail (dst != NULL || n_elements == 0);
  if (n_elements == 0)
    return;
  llm_cuda_use_device ();

  /* the seed mixed twice, so that nearby seeds give unrelated streams */
  key = mix64 (mix64 (seed) + GOLDEN_GAMMA);
  n_items = n_elements / block;
  /* a grid-stride loop over a few waves of blocks: large fills do not
   * need a 2^32-block grid */
  grid = MIN (div_up (n_items, FILL_THREADS),
      (unsigned int) llm_cuda_n_sm () * 8);
  switch (dtype) {
    case LLM_DTYPE_F32:
      fill_normal_plain<LLM_DTYPE_F32> <<<grid, FILL_THREADS, 0, s>>> (dst,
          n_items, key, mean, std);
      break;
    case LLM_DTYPE_F16:
      fill_normal_plain<LLM_DTYPE_F16> <<<grid, FILL_THREADS, 0, s>>> (dst,
          n_items, key, mean, std);
      break;
    case LLM_DTYPE_BF16:
      fill_normal_plain<LLM_DTYPE_BF16> <<<grid, FILL_THREADS, 0, s>>> (dst,
          n_items, key, mean, std);
      break;
    case LLM_DTYPE_Q8_0:
      fill_normal_blocks<LLM_DTYPE_Q8_0> <<<grid, FILL_THREADS, 0, s>>> (dst,
          n_items, key, mean, std);
      break;
    default:
      fill_normal_blocks<LLM_DTYPE_Q4_0> <<<grid, FILL_THREADS, 0, s>>> (dst,
          n_items, key, mean, std);
      break;
  }
}
