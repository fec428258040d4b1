/* LLMasOS - the rotation of one RoPE pair, shared by rope_apply.cu,
 * rope_kv_store.cu and attention_decode.cu.
 *
 * The angle is computed exactly as the CPU does (core/llm-cpu-ops.c,
 * rope_angle): inv_freq = 1 / theta^(2i/d) rounded to f32, times the
 * position in f32, then cos and sin in double rounded to f32. Double pow
 * and sincos cost nothing next to the memory traffic of the rest of a
 * layer, and keep both backends on the same rotation even at positions
 * where an ulp of the angle matters.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "llm-cuda-private.cuh"

/* cos and sin of the angle of pair @i (of head_dim / 2) at position
 * @pos. */
static __device__ __forceinline__ void
rope_angle_cs (unsigned int i, unsigned int head_dim, unsigned int pos,
    float theta, float *c, float *s)
{
  float inv_freq = 1.0f / (float) pow ((double) theta,
      (double) ((float) (2 * i) / (float) head_dim));
  float angle = inv_freq * (float) pos;
  double sd, cd;

  sincos ((double) angle, &sd, &cd);
  *c = (float) cd;
  *s = (float) sd;
}

/* Rotates pair @i (of head_dim / 2) of the head at @xh by position @pos:
 * elements (2i, 2i + 1) if INTERLEAVED, else (i, i + head_dim / 2). */
template <bool INTERLEAVED>
static __device__ __forceinline__ void
rope_rotate_pair (float *xh, unsigned int i, unsigned int head_dim,
    unsigned int pos, float theta)
{
  unsigned int i0 = INTERLEAVED ? 2 * i : i;
  unsigned int i1 = INTERLEAVED ? 2 * i + 1 : i + head_dim / 2;
  float x0 = xh[i0], x1 = xh[i1], c, s;

  rope_angle_cs (i, head_dim, pos, theta, &c, &s);
  xh[i0] = x0 * c - x1 * s;
  xh[i1] = x0 * s + x1 * c;
}
