/* LLMasOS - l2_prefetch: a kernel of the decode step that leaves memory
 * idle (attention at short depth, SwiGLU; a matvec's tail) fetches the
 * weights of the matvecs after it into L2 (prefetch.global.L2, a line an
 * instruction), so that DRAM streams weights while it runs instead of
 * waiting for the next matvec's first loads. Off by default
 * (LLMASOS_CUDA_PREFETCH, docs/cuda.md): not yet measured faster. A hint:
 * nothing waits for it, nothing reads the lines it brings until the
 * matvec does, and the result of every kernel is the same with or without
 * it (tests/test-cuda-fused.c).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "llm-cuda-private.cuh"

/* Bytes a prefetch instruction asks for: one L2 line. A bulk prefetch
 * (cp.async.bulk.prefetch.L2 of 16 KiB a thread) measured 2.4x slower
 * for Q4_0 on the H100: a block seems not to retire before its bulk
 * copies, so the kernel's end waited for the prefetch. */
#define L2_PREFETCH_PIECE 128u

static __device__ __forceinline__ void
l2_prefetch_line (const void *p)
{
  asm volatile ("prefetch.global.L2 [%0];"::"l" (p));
}

/* Thread @tid of @n_threads's share of @pf: line j of each range is
 * asked for by thread j % n_threads, not waiting for it. */
static __device__ __forceinline__ void
l2_prefetch_share (const LlmCudaPrefetch & pf, size_t tid, size_t n_threads)
{
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const char *p = (const char *) pf.data[r];
    size_t bytes = p ? pf.bytes[r] : 0;

    for (size_t off = tid * L2_PREFETCH_PIECE; off < bytes;
        off += n_threads * L2_PREFETCH_PIECE)
      l2_prefetch_line (p + off);
  }
}

/* The whole grid's share: every thread of every block (x, then y). */
static __device__ __forceinline__ void
l2_prefetch (const LlmCudaPrefetch & pf)
{
  l2_prefetch_share (pf, ((size_t) blockIdx.y * gridDim.x + blockIdx.x)
      * blockDim.x + threadIdx.x, (size_t) gridDim.x * gridDim.y
      * blockDim.x);
}

/* A 1-D grid's share, the pieces given to its blocks from the last one
 * down: called as a block starts, it is issued by the blocks scheduled
 * last, in the tail of the kernel, when fewer and fewer warps keep DRAM
 * busy. */
static __device__ __forceinline__ void
l2_prefetch_tail (const LlmCudaPrefetch & pf)
{
  l2_prefetch_share (pf, (size_t) (gridDim.x - 1 - blockIdx.x) * blockDim.x
      + threadIdx.x, (size_t) gridDim.x * blockDim.x);
}

/* A kernel argument from an optional host pointer (NULL: nothing). */
static inline LlmCudaPrefetch
l2_prefetch_arg (const LlmCudaPrefetch * pf)
{
  LlmCudaPrefetch none = { };

  return pf ? *pf : none;
}
