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
 * For the decode step's fusions (llm-cuda.h), one vector: PRO_RMSNORM
 * multiplies x by the norm's weights as it is read and sums its squares
 * in the same pass, the rmsnorm's scale applied to the finished dot
 * product; PRO_GATED has each warp take gate row r and up row r + rows/2
 * and write silu(g) * u; PRO_SCALE and EPI_NORM split an rmsnorm between
 * the matvec before it and the one after (matvec-packed.cuh).
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

/* dot(the 4 or 8 weights in @w, x[e .. e + 4 or 8)), @x + @e 16-byte
 * aligned. NORM: x times the norm's weights instead, and *@ss += the sum
 * of the squares of those x (the rmsnorm's scale is applied to the whole
 * dot product by the caller: W (n * x * s) = s W (n * x)). */
template <LlmDType T, bool NORM>
static __device__ __forceinline__ float
dot_vec (uint4 w, const float *__restrict__ x, unsigned int e,
    const MatvecPro & p, float *ss)
{
  constexpr unsigned int E = T == LLM_DTYPE_F32 ? 4 : 8;
  float v[8];
  float4 a = __ldg ((const float4 *) (x + e));

  v[0] = a.x;
  v[1] = a.y;
  v[2] = a.z;
  v[3] = a.w;
  if (E == 8) {
    float4 b = __ldg ((const float4 *) (x + e + 4));

    v[4] = b.x;
    v[5] = b.y;
    v[6] = b.z;
    v[7] = b.w;
  }
  if (NORM) {
    float n[8];

    /* the norm's E weights in one or two vector loads (launch_pro checked
     * its alignment) */
    if (p.norm_dtype == LLM_DTYPE_F32) {
      float4 a0 = __ldg ((const float4 *) ((const float *) p.norm + e));

      n[0] = a0.x;
      n[1] = a0.y;
      n[2] = a0.z;
      n[3] = a0.w;
      if (E == 8) {
        float4 a1 = __ldg ((const float4 *) ((const float *) p.norm + e + 4));

        n[4] = a1.x;
        n[5] = a1.y;
        n[6] = a1.z;
        n[7] = a1.w;
      }
    } else {
      const uint16_t *nh = (const uint16_t *) p.norm + e;
      uint32_t u[4];

      if (E == 8) {
        uint4 h = __ldg ((const uint4 *) nh);

        u[0] = h.x;
        u[1] = h.y;
        u[2] = h.z;
        u[3] = h.w;
      } else {
        uint2 h = __ldg ((const uint2 *) nh);

        u[0] = h.x;
        u[1] = h.y;
      }
#pragma unroll
      for (unsigned int k = 0; k < E / 2; k++) {
        float2 f = p.norm_dtype == LLM_DTYPE_F16 ?
            unpack_half2<LLM_DTYPE_F16> (u[k]) :
            unpack_half2<LLM_DTYPE_BF16> (u[k]);

        n[2 * k] = f.x;
        n[2 * k + 1] = f.y;
      }
    }
#pragma unroll
    for (unsigned int k = 0; k < E; k++) {
      *ss += v[k] * v[k];
      v[k] *= n[k];
    }
  }
  if (T == LLM_DTYPE_F32)
    return __uint_as_float (w.x) * v[0] + __uint_as_float (w.y) * v[1]
        + __uint_as_float (w.z) * v[2] + __uint_as_float (w.w) * v[3];
  {
    float2 h0 = unpack_half2<T> (w.x), h1 = unpack_half2<T> (w.y);
    float2 h2 = unpack_half2<T> (w.z), h3 = unpack_half2<T> (w.w);

    return h0.x * v[0] + h0.y * v[1] + h1.x * v[2] + h1.y * v[3]
        + h2.x * v[4] + h2.y * v[5] + h3.x * v[6] + h3.y * v[7];
  }
}

/* acc[t] += this lane's part of dot(row @row, x_t), t < NX; NORM (NX 1):
 * of the normalized x, *@ss += the lane's squares of x. VEC: 16-byte
 * pieces (lane l reads pieces l, l + 32, ...), U loads in flight. */
template <LlmDType T, int NX, bool VEC, bool NORM>
static __device__ __forceinline__ void
row_dot (float *acc, const void *__restrict__ w, size_t row,
    const float *__restrict__ x, unsigned int cols, unsigned int lane,
    const MatvecPro & p, float *ss)
{
  constexpr unsigned int E = T == LLM_DTYPE_F32 ? 4 : 8;      /* in 16 bytes */
  constexpr int U = PLAIN_U (NX);

  if (VEC) {
    unsigned int n = cols / E, i = lane;
    const uint4 *wr = (const uint4 *) w + row * n;

    for (; i + (U - 1) * LLM_CUDA_WARP < n; i += U * LLM_CUDA_WARP) {
      uint4 a[U];

#pragma unroll
      for (int u = 0; u < U; u++)
        a[u] = __ldcs (wr + i + u * LLM_CUDA_WARP);
#pragma unroll
      for (int t = 0; t < NX; t++) {
        const float *xt = x + (size_t) t * cols;
        float s = 0.0f;

#pragma unroll
        for (int u = 0; u < U; u++)
          s += dot_vec<T, NORM> (a[u], xt, E * (i + u * LLM_CUDA_WARP), p,
              ss);
        acc[t] += s;
      }
    }
    for (; i < n; i += LLM_CUDA_WARP) {
      uint4 a = __ldcs (wr + i);

#pragma unroll
      for (int t = 0; t < NX; t++)
        acc[t] += dot_vec<T, NORM> (a, x + (size_t) t * cols, E * i, p, ss);
    }
  } else {
    for (unsigned int i = lane; i < cols; i += LLM_CUDA_WARP) {
      float wv = load_plain<T> (w, row * cols + i);

#pragma unroll
      for (int t = 0; t < NX; t++) {
        float xv = x[(size_t) t * cols + i];

        if (NORM) {
          *ss += xv * xv;
          xv *= pro_norm_weight (p, i);
        }
        acc[t] += wv * xv;
      }
    }
  }
}

/* One warp an output row: out[t * rows + r] (+)= dot(row r, x_t). PRO
 * (NX 1): PRO_RMSNORM normalizes x (the scale applied to the sums);
 * PRO_GATED makes output row r silu(row r . x) * (row r + rows/2 . x),
 * rows / 2 of them. */
template <LlmDType T, int NX, bool VEC, int PRO>
static __global__ void __launch_bounds__ (MATVEC_THREADS)
matvec_plain_packed_kernel (float *__restrict__ out,
    const void *__restrict__ w, const float *__restrict__ x,
    unsigned int rows, unsigned int cols, bool add, MatvecPro p)
{
  constexpr unsigned int E = T == LLM_DTYPE_F32 ? 4 : 8;
  constexpr int U = PLAIN_U (NX);
  constexpr bool NORM = (PRO & PRO_RMSNORM) != 0;
  constexpr bool GATED = (PRO & PRO_GATED) != 0;
  constexpr bool SCALE = (PRO & PRO_SCALE) != 0;
  constexpr bool EPI = (PRO & EPI_NORM) != 0;
  unsigned int out_rows = GATED ? rows / 2 : rows;
  unsigned int row = blockIdx.x * MATVEC_WARPS + threadIdx.x / LLM_CUDA_WARP;
  unsigned int lane = threadIdx.x % LLM_CUDA_WARP;
  float acc[NX], ss = 0.0f, gate = 0.0f, scale = 1.0f;

  pdl_launch_dependents ();
  if (row >= out_rows)
    return;
#pragma unroll
  for (int t = 0; t < NX; t++)
    acc[t] = 0.0f;

  /* the first step's pieces into L2 while the previous kernel ends (a
   * prefetch keeps the loop as it was: loading them into registers here
   * made it 5-10 % slower) */
  if (VEC && lane + (U - 1) * LLM_CUDA_WARP < cols / E) {
    const uint4 *wr = (const uint4 *) w + (size_t) row * (cols / E);

#pragma unroll
    for (int u = 0; u < U; u++)
      prefetch_l2 (wr + lane + u * LLM_CUDA_WARP);
    if (GATED) {
      wr += (size_t) out_rows * (cols / E);
#pragma unroll
      for (int u = 0; u < U; u++)
        prefetch_l2 (wr + lane + u * LLM_CUDA_WARP);
    }
  }
  pdl_wait ();                  /* x and out are the previous kernels' */

  row_dot<T, NX, VEC, NORM> (acc, w, row, x, cols, lane, p, &ss);
  if (NORM)
    scale = 1.0f / sqrtf (warp_sum (ss) / (float) cols + p.eps);
  else if (SCALE)
    scale = pro_ss_scale (p, cols);
  if (GATED) {
    float unused = 0.0f;

    gate = warp_sum (acc[0]) * scale;
    acc[0] = 0.0f;
    row_dot<T, 1, VEC, NORM> (acc, w, (size_t) row + out_rows, x, cols, lane,
        p, &unused);
  }
#pragma unroll
  for (int t = 0; t < NX; t++) {
    float s = warp_sum (acc[t]) * scale;

    if (GATED)
      s = gate / (1.0f + expf (-gate)) * s;
    if (lane == 0) {
      float *o = out + (size_t) t * out_rows + row;
      float v = add ? *o + s : s;

      *o = v;
      if (EPI)
        epi_norm_row (p, row, v);
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
    pdl_launch (matvec_plain_packed_kernel<T, NX, true, PRO_NONE>,
        matvec_blocks (rows), MATVEC_THREADS, 0, s, out, w, x, rows, cols,
        add, MatvecPro ());
  else
    pdl_launch (matvec_plain_packed_kernel<T, NX, false, PRO_NONE>,
        matvec_blocks (rows), MATVEC_THREADS, 0, s, out, w, x, rows, cols,
        add, MatvecPro ());
}

/* One vector through PRO (PRO_RMSNORM, PRO_GATED or both); FALSE,
 * nothing launched, for a norm that is not 16-byte aligned where the
 * weights and x are (the unfused kernels then keep their 16-byte loads,
 * rather than this kernel falling back to loads of one element). */
template <LlmDType T, int PRO>
static bool
launch_pro (float *out, const void *w, const float *x, unsigned int rows,
    unsigned int cols, bool add, const MatvecPro & p, cudaStream_t s)
{
  size_t esize = T == LLM_DTYPE_F32 ? 4 : 2;
  unsigned int out_rows = (PRO & PRO_GATED) ? rows / 2 : rows;
  bool vec = cols * esize % 16 == 0 && aligned16 (w) && aligned16 (x);

  if (vec && (PRO & PRO_RMSNORM) && !aligned16 (p.norm))
    return false;
  if (vec)
    pdl_launch (matvec_plain_packed_kernel<T, 1, true, PRO>,
        matvec_blocks (out_rows), MATVEC_THREADS, 0, s, out, w, x, rows,
        cols, add, p);
  else
    pdl_launch (matvec_plain_packed_kernel<T, 1, false, PRO>,
        matvec_blocks (out_rows), MATVEC_THREADS, 0, s, out, w, x, rows,
        cols, add, p);
  return true;
}

template <LlmDType T>
static bool
launch_pro_t (float *out, const void *w, const float *x, unsigned int rows,
    unsigned int cols, bool add, int pro, const MatvecPro & p, cudaStream_t s)
{
  switch (pro) {
    case PRO_RMSNORM:
      return launch_pro<T, PRO_RMSNORM> (out, w, x, rows, cols, add, p, s);
    case PRO_RMSNORM | PRO_GATED:
      return launch_pro<T, PRO_RMSNORM | PRO_GATED> (out, w, x, rows, cols,
          add, p, s);
    case PRO_GATED:
      return launch_pro<T, PRO_GATED> (out, w, x, rows, cols, add, p, s);
    case PRO_SCALE:
      return launch_pro<T, PRO_SCALE> (out, w, x, rows, cols, add, p, s);
    case PRO_SCALE | PRO_GATED:
      return launch_pro<T, PRO_SCALE | PRO_GATED> (out, w, x, rows, cols,
          add, p, s);
    case EPI_NORM:
      return launch_pro<T, EPI_NORM> (out, w, x, rows, cols, add, p, s);
    default:
      return false;
  }
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

bool
matvec_plain_packed_pro (float *out, const void *weight, LlmDType dtype,
    const float *x, unsigned int rows, unsigned int cols, bool add, int pro,
    const MatvecPro & p, cudaStream_t s)
{
  if ((pro & PRO_GATED) && rows % 2 != 0)
    return false;
  if (dtype == LLM_DTYPE_F32)
    return launch_pro_t<LLM_DTYPE_F32> (out, weight, x, rows, cols, add, pro,
        p, s);
  if (dtype == LLM_DTYPE_F16)
    return launch_pro_t<LLM_DTYPE_F16> (out, weight, x, rows, cols, add, pro,
        p, s);
  if (dtype == LLM_DTYPE_BF16)
    return launch_pro_t<LLM_DTYPE_BF16> (out, weight, x, rows, cols, add, pro,
        p, s);
  return false;
}
