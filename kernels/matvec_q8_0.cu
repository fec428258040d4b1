/* LLMasOS - matvec_q8_0: out = W x for Q8_0 weights (GGUF blocks of a half
 * scale d and 32 int8 quants, w = d * q), F32 activations.
 * CPU twin: llm_matvec() on a Q8_0 tensor.
 *
 * One warp per row, the row walked in chunks of 32 blocks (1088 bytes, a
 * multiple of 16). When rows are 16-byte aligned (blocks per row a multiple
 * of 8: every real model's), the warp copies a chunk into shared memory
 * with coalesced 16-byte loads — each weight byte read from memory once —
 * while the previous chunk is being multiplied; otherwise it reads the
 * blocks in place with 2-byte loads. Each lane then handles 4 quants of a
 * block per step, so that the activations it needs are one 16-byte load
 * and a warp's loads of x are contiguous.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "matvec-common.cuh"

#define Q8_BYTES ((unsigned int) sizeof (LlmBlockQ8_0))
#define CHUNK_BLOCKS 32
#define CHUNK_VECS (CHUNK_BLOCKS * Q8_BYTES / 16)
static_assert (CHUNK_BLOCKS * sizeof (LlmBlockQ8_0) % 16 == 0,
    "a chunk of blocks is whole 16-byte vectors");
static_assert (CHUNK_VECS <= 3 * LLM_CUDA_WARP, "three vectors per lane");

/* dot(@nb (<= 32) blocks at @blocks, x[0 .. 32 nb)) from one lane: step s
 * takes quants 4 (lane % 8) .. +4 of block lane / 8 + 4 s. */
template <bool XVEC>
static __device__ __forceinline__ float
q8_0_chunk_dot (const uint8_t * blocks, unsigned int nb,
    const float *__restrict__ x, unsigned int lane)
{
  unsigned int o = 4 * (lane % 8);
  float acc = 0.0f;

#pragma unroll
  for (unsigned int s = 0; s < CHUNK_BLOCKS / 4; s++) {
    unsigned int bi = lane / 8 + 4 * s;

    if (bi < nb) {
      const uint8_t *b = blocks + bi * Q8_BYTES;
      float d = f16_bits_to_f32 (*(const uint16_t *) b);
      uint32_t q = load_u32_align2 (b + offsetof (LlmBlockQ8_0, qs) + o);
      float4 xv = load_x4<XVEC> (x, bi * LLM_QK8_0 + o);

      acc += d * dot4_s8 (q, xv.x, xv.y, xv.z, xv.w);
    }
  }
  return acc;
}

template <bool VEC>
static __global__ void __launch_bounds__ (MATVEC_THREADS)
matvec_q8_0_kernel (float *__restrict__ out, const uint8_t * __restrict__ w,
    const float *__restrict__ x, unsigned int rows, unsigned int n_blocks)
{
  __shared__ uint4 stage[MATVEC_WARPS][CHUNK_VECS];
  unsigned int warp = threadIdx.x / LLM_CUDA_WARP;
  unsigned int lane = threadIdx.x % LLM_CUDA_WARP;
  unsigned int row = blockIdx.x * MATVEC_WARPS + warp;
  size_t row_bytes = (size_t) n_blocks * Q8_BYTES;
  const uint8_t *wr = w + row * row_bytes;
  unsigned int n_chunks = (n_blocks + CHUNK_BLOCKS - 1) / CHUNK_BLOCKS;
  float acc = 0.0f;

  if (row >= rows)
    return;

  if (VEC) {
    const uint4 *w16 = (const uint4 *) wr;
    unsigned int n_vecs = (unsigned int) (row_bytes / 16);
    uint8_t *st = (uint8_t *) stage[warp];
    uint4 r0, r1, r2;
    unsigned int v;

    /* r0..r2: this lane's vectors of the chunk to come. */
#define LOAD_CHUNK(c) \
    v = (c) * CHUNK_VECS + lane; \
    if (v < n_vecs) r0 = __ldcs (w16 + v); \
    if (v + LLM_CUDA_WARP < n_vecs) r1 = __ldcs (w16 + v + LLM_CUDA_WARP); \
    if (lane < CHUNK_VECS - 2 * LLM_CUDA_WARP && v + 2 * LLM_CUDA_WARP < n_vecs) \
      r2 = __ldcs (w16 + v + 2 * LLM_CUDA_WARP);

    r0 = r1 = r2 = make_uint4 (0, 0, 0, 0);
    LOAD_CHUNK (0);
    for (unsigned int c = 0; c < n_chunks; c++) {
      unsigned int nb = MIN (CHUNK_BLOCKS, n_blocks - c * CHUNK_BLOCKS);

      __syncwarp ();
      stage[warp][lane] = r0;
      stage[warp][lane + LLM_CUDA_WARP] = r1;
      if (lane < CHUNK_VECS - 2 * LLM_CUDA_WARP)
        stage[warp][lane + 2 * LLM_CUDA_WARP] = r2;
      __syncwarp ();
      if (c + 1 < n_chunks) {
        LOAD_CHUNK (c + 1);
      }
      acc += q8_0_chunk_dot<true> (st, nb,
          x + (size_t) c * CHUNK_BLOCKS * LLM_QK8_0, lane);
    }
#undef LOAD_CHUNK
  } else {
    for (unsigned int c = 0; c < n_chunks; c++)
      acc += q8_0_chunk_dot<false> (wr + (size_t) c * CHUNK_BLOCKS * Q8_BYTES,
          MIN (CHUNK_BLOCKS, n_blocks - c * CHUNK_BLOCKS),
          x + (size_t) c * CHUNK_BLOCKS * LLM_QK8_0, lane);
  }
  acc = warp_sum (acc);
  if (lane == 0)
    out[row] = acc;
}

void
llm_cuda_matvec_q8_0 (float *out, const void *weight, const float *x,
    guint rows, guint cols, LlmCudaStream * stream)
{
  cudaStream_t s = llm_cuda_raw_stream (stream);
  unsigned int n_blocks = cols / LLM_QK8_0;
  const uint8_t *w = (const uint8_t *) weight;

  g_return_if_fail (cols % LLM_QK8_0 == 0);
  if (rows == 0)
    return;
  llm_cuda_use_device ();
  if ((size_t) n_blocks * Q8_BYTES % 16 == 0 && aligned16 (w)
      && aligned16 (x))
    matvec_q8_0_kernel<true> <<<matvec_blocks (rows), MATVEC_THREADS, 0,
        s>>> (out, w, x, rows, n_blocks);
  else
    matvec_q8_0_kernel<false> <<<matvec_blocks (rows), MATVEC_THREADS, 0,
        s>>> (out, w, x, rows, n_blocks);
}
