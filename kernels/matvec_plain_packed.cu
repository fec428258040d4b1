/* LLMasOS - matvec_plain_packed: out (+)= W x_t for F32, F16 and BF16
 * weights (their packed layout is the plain one), @n_x vectors at once.
 * CPU twin: llm_matvec() on the same tensor.
 *
 * One warp a row, as matvec-half.cuh: lane l reads 16-byte pieces l,
 * l + 32, ... of the row, PLAIN_U loads in flight before the first use, and
 * each piece is multiplied with all the x_t (read through L1), so the
 * weights are read once for every vector. The first step of a row is
 * prefetched into L2 before the wait for the kernel that wrote x
 * (llm-cuda-pdl.cuh).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "matvec-half.cuh"
#include "matvec-packed.cuh"

/* 16-byte loads in flight per lane: 8 for one vector, 4 for several (as
 * matvec-packed.cuh's PK_U). */
#define PLAIN_U(NX) ((NX) == 1 ? 8 : 4)


/* Fetches the line of @p into L2 (no registers held). */
static __device__ __forceinline__ void
prefetch_l2 (const void *p)
{
  asm volatile ("prefetch.global.L2 [%0];"::"l" (p));
}

/* dot(the 4 or 8 weights in @w, x[0 .. 4 or 8)), @x 16-byte aligned. */
template <LlmDType T>
static __device__ __forceinline__ float
dot_vec (uint4 w, const float *__restrict__ x)
{
  if (T == LLM_DTYPE_F32) {
    float4 a = __ldg ((const float4 *) x);

    return __uint_as_float (w.x) * a.x + __uint_as_float (w.y) * a.y
        + __uint_as_float (w.z) * a.z + __uint_as_float (w.w) * a.w;
  }
  return dot8_half<T> (w, x);
}

template <LlmDType T, int NX, bool VEC>
static __global__ void __launch_bounds__ (MATVEC_THREADS)
matvec_plain_packed_kernel (float *__restrict__ out,
    const void *__restrict__ w, const float *__restrict__ x,
    unsigned int rows, unsigned int cols, bool add)
{
  constexpr unsigned int E = T == LLM_DTYPE_F32 ? 4 : 8;      /* in 16 bytes */
  constexpr int U = PLAIN_U (NX);
  unsigned int row = blockIdx.x * MATVEC_WARPS + threadIdx.x / LLM_CUDA_WARP;
  unsigned int lane = threadIdx.x % LLM_CUDA_WARP;
  float acc[NX];

  pdl_launch_dependents ();
  if (row >= rows)
    return;
#pragma unroll
  for (int t = 0; t < NX; t++)
    acc[t] = 0.0f;

  if (VEC) {
    unsigned int n = cols / E, i = lane;
    const uint4 *wr = (const uint4 *) w + (size_t) row * n;

    /* the first step's pieces into L2 while the previous kernel ends (a
     * prefetch keeps the loop below as it was: loading them into
     * registers here made the loop 5-10 % slower) */
    if (i + (U - 1) * LLM_CUDA_WARP < n) {
#pragma unroll
      for (int u = 0; u < U; u++)
        prefetch_l2 (wr + i + u * LLM_CUDA_WARP);
    }
    pdl_wait ();                /* x and out are the previous kernels' */
    for (; i + (U - 1) * LLM_CUDA_WARP < n; i += U * LLM_CUDA_WARP) {
      uint4 a[U];

#pragma unroll
      for (int u = 0; u < U; u++)
        a[u] = __ldcs (wr + i + u * LLM_CUDA_WARP);
#pragma unroll
      for (int t = 0; t < NX; t++) {
        const float *xt = x + (size_t) t * cols + E * i;
        float p = 0.0f;

#pragma unroll
        for (int u = 0; u < U; u++)
          p += dot_vec<T> (a[u], xt + u * E * LLM_CUDA_WARP);
        acc[t] += p;
      }
    }
    for (; i < n; i += LLM_CUDA_WARP) {
      uint4 a = __ldcs (wr + i);

#pragma unroll
      for (int t = 0; t < NX; t++)
        acc[t] += dot_vec<T> (a, x + (size_t) t * cols + E * i);
    }
  } else {
    pdl_wait ();
    for (unsigned int i = lane; i < cols; i += LLM_CUDA_WARP) {
      float wv = load_plain<T> (w, (size_t) row * cols + i);

#pragma unroll
      for (int t = 0; t < NX; t++)
        acc[t] += wv * x[(size_t) t * cols + i];
    }
  }
#pragma unroll
  for (int t = 0; t < NX; t++) {
    float s = warp_sum (acc[t]);

    if (lane == 0) {
      float *o = out + (size_t) t * rows + row;

      *o = add ? *o + s : s;
    }
  }
}

template <LlmDType T, int NX>
static void
launch_nx (float *out, const void *w, const float *x, unsigned int rows,
    unsigned int cols, bool add, cudaStream_t s)
{
  size_t esize = T == LLM_DTYPE_F32 ? 4 : 2;

  if (cols * esize % 16 == 0 && aligned16 (w) && aligned16 (x))
    pdl_launch (matvec_plain_packed_kernel<T, NX, true>,
        matvec_blocks (rows), MATVEC_THREADS, 0, s, out, w, x, rows, cols,
        add);
  else
    pdl_launch (matvec_plain_packed_kernel<T, NX, false>,
        matvec_blocks (rows), MATVEC_THREADS, 0, s, out, w, x, rows, cols,
        add);
}

template <LlmDType T>
static void
launch (float *out, const void *w, const float *x, unsigned int n_x,
    unsigned int rows, unsigned int cols, bool add, cudaStream_t s)
{
  switch (n_x) {
    case 1:
      launch_nx<T, 1> (out, w, x, rows, cols, add, s);
      break;
    case 2:
      launch_nx<T, 2> (out, w, x, rows, cols, add, s);
      break;
    case 3:
      launch_nx<T, 3> (out, w, x, rows, cols, add, s);
      break;
    case 4:
      launch_nx<T, 4> (out, w, x, rows, cols, add, s);
      break;
    case 5:
      launch_nx<T, 5> (out, w, x, rows, cols, add, s);
      break;
    case 6:
      launch_nx<T, 6> (out, w, x, rows, cols, add, s);
      break;
    case 7:
      launch_nx<T, 7> (out, w, x, rows, cols, add, s);
      break;
    case 8:
      launch_nx<T, 8> (out, w, x, rows, cols, add, s);
      break;
    default:
      g_critical ("matvec_packed: %u vectors, at most %d", n_x, PK_MAX_X);
  }
}

void
matvec_plain_packed (float *out, const void *weight, LlmDType dtype,
    const float *x, unsigned int n_x, unsigned int rows, unsigned int cols,
    bool add, cudaStream_t s)
{
  if (dtype == LLM_DTYPE_F32)
    launch<LLM_DTYPE_F32> (out, weight, x, n_x, rows, cols, add, s);
  else if (dtype == LLM_DTYPE_F16)
    launch<LLM_DTYPE_F16> (out, weight, x, n_x, rows, cols, add, s);
  else
    launch<LLM_DTYPE_BF16> (out, weight, x, n_x, rows, cols, add, s);
}
