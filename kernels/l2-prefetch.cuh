/* LLMasOS - l2_prefetch: a kernel of the decode step that leaves memory
 * idle (attention at short depth, SwiGLU; a matvec's tail) fetches the
 * weights of the matvecs after it into L2 (cp.async.bulk.prefetch,
 * compute capability 9.0+), so that DRAM streams weights while it runs
 * instead of waiting for the next matvec's first loads. A hint: nothing waits for it, nothing
 * reads the lines it brings until the matvec does, and the result of every
 * kernel is the same with or without it (tests/test-cuda-fused.c).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "llm-cuda-private.cuh"

/* Bytes a prefetch instruction asks for: 2048 of them cover the 32 MiB of
 * an 8B F16 wo, about one per thread of the attention's grid. */
#define L2_PREFETCH_PIECE (16u * 1024u)

static __device__ __forceinline__ void
l2_prefetch_bulk (const void *p, unsigned int bytes)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile ("cp.async.bulk.prefetch.L2.global [%0], %1;"::"l" (p),
      "r" (bytes):"memory");
#endif
}

/* Thread @tid of @n_threads's share of @pf: piece j of each range is
 * asked for by thread j % n_threads, one instruction a piece, not waiting
 * for it. Ranges start 16-byte aligned (device allocations); a last piece
 * not a multiple of 16 bytes is left out. */
static __device__ __forceinline__ void
l2_prefetch_share (const LlmCudaPrefetch & pf, size_t tid, size_t n_threads)
{
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const char *p = (const char *) pf.data[r];
    size_t bytes = p ? pf.bytes[r] & ~(size_t) 15 : 0;

    for (size_t off = tid * L2_PREFETCH_PIECE; off < bytes;
        off += n_threads * L2_PREFETCH_PIECE)
      l2_prefetch_bulk (p + off, (unsigned int) MIN ((size_t)
              L2_PREFETCH_PIECE, bytes - off));
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
