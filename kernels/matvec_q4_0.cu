/* LLMasOS - matvec_q4_0: out = W x for Q4_0 weights (GGUF blocks of a half
 * scale d and 16 bytes of nibbles, byte j holding weight j in its low
 * nibble and weight j + 16 in its high one; w = d * (q - 8)), F32
 * activations. CPU twin: llm_matvec() on a Q4_0 tensor.
 *
 * The same scheme as matvec_q8_0.cu: one warp per row, chunks of 32 blocks
 * (576 bytes) staged through shared memory with 16-byte loads when rows
 * are 16-byte aligned, read in place otherwise. Each lane handles 4 bytes
 * (8 weights) of a block per step: weights j .. j+3 and j+16 .. j+19, two
 * 16-byte loads of x, and four lanes cover a block's 128 bytes of x.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "matvec-common.cuh"

#define Q4_BYTES ((unsigned int) sizeof (LlmBlockQ4_0))
#define CHUNK_BLOCKS 32
#define CHUNK_VECS (CHUNK_BLOCKS * Q4_BYTES / 16)
static_assert (CHUNK_BLOCKS * sizeof (LlmBlockQ4_0) % 16 == 0,
    "a chunk of blocks is whole 16-byte vectors");
static_assert (CHUNK_VECS <= 2 * LLM_CUDA_WARP, "two vectors per lane");

/* dot(@nb (<= 32) blocks at @blocks, x[0 .. 32 nb)) from one lane: step s
 * takes bytes 4 (lane % 4) .. +4 of block lane / 4 + 8 s. */
template <bool XVEC>
static __device__ __forceinline__ float
q4_0_chunk_dot (const uint8_t * blocks, unsigned int nb,
    const float *__restrict__ x, unsigned int lane)
{
  unsigned int j = 4 * (lane % 4);
  float acc = 0.0f;

#pragma unroll
  for (unsigned int s = 0; s < CHUNK_BLOCKS / 8; s++) {
    unsigned int bi = lane / 4 + 8 * s;

    if (bi < nb) {
      const uint8_t *b = blocks + bi * Q4_BYTES;
      float d = f16_bits_to_f32 (*(const uint16_t *) b);
      uint32_t q = load_u32_align2 (b + offsetof (LlmBlockQ4_0, qs) + j);
      float4 xl = load_x4<XVEC> (x, bi * LLM_QK4_0 + j);
      float4 xh = load_x4<XVEC> (x, bi * LLM_QK4_0 + LLM_QK4_0 / 2 + j);

      acc += d * (dot4_u4_minus8 (q & 0x0f0f0f0fu, xl.x, xl.y, xl.z, xl.w)
          + dot4_u4_minus8 ((q >> 4) & 0x0f0f0f0fu, xh.x, xh.y, xh.z, xh.w));
    }
  }
  return acc;
}

template <bool VEC>
static __global__ void __launch_bounds__ (MATVEC_THREADS)
matvec_q4_0_kernel (float *__restrict__ out, const uint8_t * __restrict__ w,
    const float *__restrict__ x, unsigned int rows, unsigned int n_blocks)
{
  __shared__ uint4 stage[MATVEC_WARPS][CHUNK_VECS];
  unsigned int warp = threadIdx.x / LLM_CUDA_WARP;
  unsigned int lane = threadIdx.x % LLM_CUDA_WARP;
  unsigned int row = blockIdx.x * MATVEC_WARPS + warp;
  size_t row_bytes = (size_t) n_blocks * Q4_BYTES;
  const uint8_t *wr = w + row * row_bytes;
  unsigned int n_chunks = (n_blocks + CHUNK_BLOCKS - 1) / CHUNK_BLOCKS;
  float acc = 0.0f;

  if (row >= rows)
    return;

  if (VEC) {
    const uint4 *w16 = (const uint4 *) wr;
    unsigned int n_vecs = (unsigned int) (row_bytes / 16);
    uint8_t *st = (uint8_t *) stage[warp];
    uint4 r0, r1;
    unsigned int v;

    /* r0, r1: this lane's vectors of the chunk to come. */
#define LOAD_CHUNK(c) \
    v = (c) * CHUNK_VECS + lane; \
    if (v < n_vecs) r0 = __ldcs (w16 + v); \
    if (lane < CHUNK_VECS - LLM_CUDA_WARP && v + LLM_CUDA_WARP < n_vecs) \
      r1 = __ldcs (w16 + v + LLM_CUDA_WARP);

    r0 = r1 = make_uint4 (0, 0, 0, 0);
    LOAD_CHUNK (0);
    for (unsigned int c = 0; c < n_chunks; c++) {
      unsigned int nb = MIN (CHUNK_BLOCKS, n_blocks - c * CHUNK_BLOCKS);

      __syncwarp ();
      stage[warp][lane] = r0;
      if (lane < CHUNK_VECS - LLM_CUDA_WARP)
        stage[warp][lane + LLM_CUDA_WARP] = r1;
      __syncwarp ();
      if (c + 1 < n_chunks) {
        LOAD_CHUNK (c + 1);
      }
      acc += q4_0_chunk_dot<true> (st, nb,
          x + (size_t) c * CHUNK_BLOCKS * LLM_QK4_0, lane);
    }
#undef LOAD_CHUNK
  } else {
    for (unsigned int c = 0; c < n_chunks; c++)
      acc += q4_0_chunk_dot<false> (wr + (size_t) c * CHUNK_BLOCKS * Q4_BYTES,
          MIN (CHUNK_BLOCKS, n_blocks - c * CHUNK_BLOCKS),
          x + (size_t) c * CHUNK_BLOCKS * LLM_QK4_0, lane);
  }
  acc = warp_sum (acc);
  if (lane == 0)
    out[row] = acc;
}

void
llm_cuda_matvec_q4_0 (float *out, const void *weight, const float *x,
    guint rows, guint cols, LlmCudaStream * stream)
{
  cudaStream_t s = llm_cuda_raw_stream (stream);
  unsigned int n_blocks = cols / LLM_QK4_0;
  const uint8_t *w = (const uint8_t *) weight;

  g_return_if_fail (cols % LLM_QK4_0 == 0);
  if (rows == 0)
    return;
  llm_cuda_use_device ();
  if ((size_t) n_blocks * Q4_BYTES % 16 == 0 && aligned16 (w)
      && aligned16 (x))
    matvec_q4_0_kernel<true> <<<matvec_blocks (rows), MATVEC_THREADS, 0,
        s>>> (out, w, x, rows, n_blocks);
  else
    matvec_q4_0_kernel<false> <<<matvec_blocks (rows), MATVEC_THREADS, 0,
        s>>> (out, w, x, rows, n_blocks);
}
