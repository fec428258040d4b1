/* LLMasOS - what the matvec_*.cu files share: one warp per output row,
 * MATVEC_WARPS rows per block, and bit tricks that turn packed integers
 * into floats without the (slow, 16 a clock per SM) conversion unit.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "llm-cuda-private.cuh"

#define MATVEC_WARPS 8
#define MATVEC_THREADS (MATVEC_WARPS * LLM_CUDA_WARP)

/* Blocks for @rows rows. */
static inline unsigned int
matvec_blocks (unsigned int rows)
{
  return div_up (rows, MATVEC_WARPS);
}

/* TRUE if @p is 16-byte aligned. */
static inline bool
aligned16 (const void *p)
{
  return ((uintptr_t) p & 15) == 0;
}

/* Byte @K of @u placed in the low mantissa bits of 2^23: the float
 * 8388608 + byte. __byte_perm picks byte K of u, two zero bytes and 0x4B
 * of the second word. */
template <int K>
static __device__ __forceinline__ float
byte_as_float_2p23 (uint32_t u)
{
  return __uint_as_float (__byte_perm (u, 0x4B000000u, 0x7540 + K));
}

/* dot(4 signed int8 in @q, @x). q ^ 0x80 is q + 128, so each float is
 * 2^23 + 128 + q, exact. */
static __device__ __forceinline__ float
dot4_s8 (uint32_t q, float x0, float x1, float x2, float x3)
{
  const float bias = 8388608.0f + 128.0f;

  q ^= 0x80808080u;
  return (byte_as_float_2p23<0> (q) - bias) * x0
      + (byte_as_float_2p23<1> (q) - bias) * x1
      + (byte_as_float_2p23<2> (q) - bias) * x2
      + (byte_as_float_2p23<3> (q) - bias) * x3;
}

/* dot(4 nibbles (one per byte of @q, 0..15) minus 8, @x). */
static __device__ __forceinline__ float
dot4_u4_minus8 (uint32_t q, float x0, float x1, float x2, float x3)
{
  const float bias = 8388608.0f + 8.0f;

  return (byte_as_float_2p23<0> (q) - bias) * x0
      + (byte_as_float_2p23<1> (q) - bias) * x1
      + (byte_as_float_2p23<2> (q) - bias) * x2
      + (byte_as_float_2p23<3> (q) - bias) * x3;
}

/* Four bytes at a 2-byte aligned address (GGUF blocks are 18 or 34 bytes,
 * so their quants are only 2-byte aligned). */
static __device__ __forceinline__ uint32_t
load_u32_align2 (const uint8_t * p)
{
  return (uint32_t) * (const uint16_t *) p
      | ((uint32_t) * (const uint16_t *) (p + 2) << 16);
}

/* Four consecutive floats of @x from @i (a multiple of 4); one 16-byte load
 * if VEC (x 16-byte aligned). */
template <bool VEC>
static __device__ __forceinline__ float4
load_x4 (const float *__restrict__ x, unsigned int i)
{
  if (VEC)
    return *(const float4 *) (x + i);
  return make_float4 (x[i], x[i + 1], x[i + 2], x[i + 3]);
}
