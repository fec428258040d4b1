/* LLMasOS - the Q8_0 KV cache's layout and rounding (kv_store.cu,
 * rope-less appends; attention_decode.cu, its reads and the att fusion's
 * append; kv_dequantize.cu, for prefill).
 *
 * A position of a layer's Q8_0 cache (keys or values) with @stride
 * elements (n_kv_heads * head_dim, a multiple of 32) is @stride int8
 * quants, then one float scale a 32-block: stride * 9 / 8 bytes, 16-byte
 * aligned rows when @stride is a multiple of 128. The rounding is Q8_0's
 * (core's quantize_row_q8_0: d = amax / 127, q = round(x / d), d kept as
 * its half rounding); the scale is stored as that half widened to a
 * float so that a lane loads it with one aligned 4-byte copy. 9/16 of the
 * F16 cache's bytes, what llama.cpp's `-ctk q8_0 -ctv q8_0` saves.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <cuda_fp16.h>
#include <stdint.h>

/* Bytes a position of @stride elements takes. */
static inline __host__ __device__ size_t
kv_q8_0_row_bytes (size_t stride)
{
  return stride + stride / 32 * 4;
}

/* Element @c of position @pos, dequantized. */
static __device__ __forceinline__ float
kv_q8_0_load (const void *cache, size_t pos, size_t stride, unsigned int c)
{
  const int8_t *row = (const int8_t *) cache + pos * kv_q8_0_row_bytes (stride);
  const float *d = (const float *) (row + stride);

  return (float) row[c] * d[c / 32];
}

/* Whole warps, lane l holding element 32 b + l of a position: writes the
 * block's quant of each lane and (lane 0) its scale. */
static __device__ __forceinline__ void
kv_q8_0_store_block (void *cache, size_t pos, size_t stride, unsigned int c,
    float x)
{
  int8_t *row = (int8_t *) cache + pos * kv_q8_0_row_bytes (stride);
  float a = fabsf (x), d, id;

#pragma unroll
  for (int o = 16; o > 0; o >>= 1)
    a = fmaxf (a, __shfl_xor_sync (0xffffffffu, a, o));
  d = a / 127.0f;
  id = d != 0.0f ? 1.0f / d : 0.0f;
  row[c] = (int8_t) roundf (x * id);
  if (c % 32 == 0)
    ((float *) (row + stride))[c / 32] = __half2float (__float2half_rn (d));
}
