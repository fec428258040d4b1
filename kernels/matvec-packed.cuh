/* LLMasOS - the packed device layout of the block formats and the matvec
 * that reads it (matvec_q8_0_packed.cu, matvec_q4_0_packed.cu instantiate
 * it; matrix_pack.cu writes the layout).
 *
 * Packed layout of a @rows x @cols Q8_0 / Q4_0 matrix: every quant of the
 * matrix first, row after row (Q8_0: @cols int8 a row; Q4_0: @cols / 2
 * bytes a row, each 32-block's 16 bytes as in GGUF: byte j holds weight j
 * in its low nibble and weight j + 16 in its high one), then every block's
 * half scale d, row after row. With @cols a multiple of 32 each row of
 * quants starts 16-byte aligned, so a warp streams it with coalesced
 * 16-byte loads; the scales, 1/16 of the bytes, are read alongside.
 *
 * The matvec quantizes x to int8 per 32-block exactly as Q8_0 does
 * (llm_quantize_row: d = amax / 127 rounded to half, q = round(x * 127 /
 * amax)) and takes integer dot products (dp4a), as llama.cpp's mmvq does:
 * four weights an instruction, instead of a convert and an FMA each, is
 * what lets the 4-bit matvec keep up with memory. The result is therefore
 * that of the weights times the Q8_0-rounded x: on uniform random data
 * 4e-3 relative L2 from the product with the exact x, as large as Q8_0's
 * own rounding of the weights (tests/test-cuda-matvec.c).
 *
 * Each block of PK_THREADS first quantizes x (all @n_x vectors) into
 * shared memory, then its warps take rows in turn (a persistent grid, so
 * that x is quantized once per block, not once per row), one row per warp,
 * PK_U 16-byte loads a lane per step, and the next step's loads issued
 * before the current step's arithmetic. The first loads are issued before
 * the quantization of x, and before the wait for the kernel that wrote x
 * (llm-cuda-pdl.cuh), so memory is busy from the start.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "matvec-common.cuh"
#include "llm-cuda-pdl.cuh"

#define PK_WARPS 8
#define PK_THREADS (PK_WARPS * LLM_CUDA_WARP)
/* 16-byte loads per lane per step: 8 for one vector, 4 for several (whose
 * accumulators need the registers); the faster on the H100 of the two
 * tried (docs/benchmarks.md). */
#define PK_U(NX) ((NX) == 1 ? 8 : 4)
#define PK_MAX_X 8              /* vectors of llm_cuda_matvec_packed_multi */

/* What a matvec does to x on its way in, so that the decode step need not
 * launch the kernel before it (llm_cuda_matvec_packed_rmsnorm, _swiglu_add):
 * nothing; x = rmsnorm(x) * norm (the arithmetic of rmsnorm_forward.cu);
 * or x = silu(gate) * up of x = [gate | up] (that of swiglu_forward.cu). */
enum
{
  PRO_NONE = 0,
  PRO_RMSNORM = 1,
  PRO_SWIGLU = 2,
  /* not a prologue: out[i] = silu(row i . x) * (row i + rows/2 . x), the
   * SwiGLU after a stacked gate|up (F32/F16/BF16 with PRO_RMSNORM or
   * alone or with PRO_SCALE; Q8_0/Q4_0 with PRO_SCALE) */
  PRO_GATED = 4,
  /* x is rmsnorm's n * x without the scale, which the matvec applies to
   * its dot products: 1 / sqrt(sum(ss_in) / cols + eps), ss_in the
   * LLM_CUDA_SS_PARTS partial sums of squares an EPI_NORM matvec left */
  PRO_SCALE = 8,
  /* not a prologue: after out[r] is written (added to), xn[r] = out[r] *
   * epi_norm[r] and out[r]^2 is added into ss_out[r % LLM_CUDA_SS_PARTS]
   * (one vector), the first half of the next matvec's rmsnorm */
  EPI_NORM = 16
};

static_assert (LLM_CUDA_SS_PARTS == LLM_CUDA_WARP,
    "pro_ss_scale: one partial sum a lane");

typedef struct
{
  const void *norm;             /* PRO_RMSNORM: the norm's weights */
  LlmDType norm_dtype;          /* F32, F16 or BF16 */
  float eps;                    /* PRO_RMSNORM, PRO_SCALE */
  const float *ss_in;           /* PRO_SCALE */
  float *xn;                    /* EPI_NORM: out times epi_norm */
  const void *epi_norm;         /* EPI_NORM: the next norm's weights */
  LlmDType epi_norm_dtype;
  float *ss_out;                /* EPI_NORM: partial sums, zeroed before */
} MatvecPro;


/* Element @i of the norm weights @w of @dtype (F32, F16, BF16). */
static __device__ __forceinline__ float
norm_weight_at (const void *w, LlmDType dtype, unsigned int i)
{
  if (dtype == LLM_DTYPE_F32)
    return ((const float *) w)[i];
  if (dtype == LLM_DTYPE_F16)
    return f16_bits_to_f32 (((const uint16_t *) w)[i]);
  return bf16_bits_to_f32 (((const uint16_t *) w)[i]);
}

/* PRO_SCALE's 1 / sqrt(sum(ss_in) / cols + eps), in every lane of the
 * warp (all of which must call it; LLM_CUDA_SS_PARTS is the warp size). */
static __device__ __forceinline__ float
pro_ss_scale (const MatvecPro & p, unsigned int cols)
{
  float ss = warp_sum (p.ss_in[threadIdx.x % LLM_CUDA_WARP]);

  return 1.0f / sqrtf (ss / (float) cols + p.eps);
}

/* EPI_NORM for output row @r, @v its final value (one lane a row). The
 * partial sums spread the atomics of a matrix's rows over
 * LLM_CUDA_SS_PARTS addresses. */
static __device__ __forceinline__ void
epi_norm_row (const MatvecPro & p, unsigned int r, float v)
{
  p.xn[r] = norm_weight_at (p.epi_norm, p.epi_norm_dtype, r) * v;
  atomicAdd (p.ss_out + r % LLM_CUDA_SS_PARTS, v * v);
}

/* PRO_RMSNORM's arguments. */
static inline MatvecPro
rmsnorm_pro (const void *norm, LlmDType norm_dtype, float eps)
{
  MatvecPro p = { };

  p.norm = norm;
  p.norm_dtype = norm_dtype;
  p.eps = eps;
  return p;
}

static __device__ __forceinline__ float
pro_norm_weight (const MatvecPro & p, unsigned int i)
{
  return norm_weight_at (p.norm, p.norm_dtype, i);
}

/* rmsnorm's 1 / sqrt(mean(x^2) + eps) of x[0 .. cols), in every thread of
 * the block (all of which must call it). */
static __device__ float
block_rms_scale (const float *x, unsigned int cols, float eps)
{
  __shared__ float part[32];
  unsigned int nw = blockDim.x / LLM_CUDA_WARP;
  float ss = 0.0f;

  for (unsigned int i = threadIdx.x; i < cols; i += blockDim.x)
    ss += x[i] * x[i];
  ss = warp_sum (ss);
  if (threadIdx.x % LLM_CUDA_WARP == 0)
    part[threadIdx.x / LLM_CUDA_WARP] = ss;
  __syncthreads ();
  ss = 0.0f;
  for (unsigned int k = 0; k < nw; k++)
    ss += part[k];
  return 1.0f / sqrtf (ss / (float) cols + eps);
}

/* Element @c of x after the prologue (@scale from block_rms_scale). */
template <int PRO>
static __device__ __forceinline__ float
pro_x (const float *x, unsigned int c, unsigned int cols, const MatvecPro & p,
    float scale)
{
  if (PRO == PRO_RMSNORM)
    return pro_norm_weight (p, c) * (x[c] * scale);
  if (PRO == PRO_SWIGLU) {
    float g = x[c];

    return g / (1.0f + expf (-g)) * x[cols + c];
  }
  return x[c];
}

/* Bytes of quants of one row (16-byte aligned: @cols % 32 == 0). */
static inline __host__ __device__ size_t
packed_row_quant_bytes (LlmDType t, unsigned int cols)
{
  return t == LLM_DTYPE_Q8_0 ? cols : cols / 2;
}

/* The half scales of a packed matrix, after its quants. */
static inline __host__ __device__ const uint16_t *
packed_scales (const void *packed, LlmDType t, unsigned int rows,
    unsigned int cols)
{
  return (const uint16_t *) ((const uint8_t *) packed
      + (size_t) rows * packed_row_quant_bytes (t, cols));
}

/* Shared memory for @n_x quantized vectors of @cols: the int8 quants, then
 * a float scale and an int sum of the quants a 32-block. */
static inline size_t
packed_x_shared_bytes (unsigned int n_x, unsigned int cols)
{
  return (size_t) n_x * (cols + cols / 32 * 8);
}

/* How the matvec lays out a quantized x in shared memory: Q8_0 in order;
 * Q4_0 the first 16 quants of every block in the first half, the last 16
 * in the second, so that lane l's 16-byte reads (the block the lane's
 * 16 weight bytes hold) are contiguous across the warp, free of bank
 * conflicts. Returns the offset of quant @c (a multiple of 4). */
template <LlmDType T>
static __device__ __forceinline__ unsigned int
xq_offset (unsigned int c, unsigned int cols)
{
  if (T == LLM_DTYPE_Q8_0)
    return c;
  return (c % 32 < 16 ? 0 : cols / 2) + c / 32 * 16 + c % 16;
}

/* Q8_0 rounding of four consecutive x (8 lanes hold a 32-block): the four
 * int8 packed in an int, the block's scale (as half, then float) and the
 * sum of its quants, the latter two the same in all 8 lanes. Same
 * arithmetic as core's quantize_row_q8_0. */
static __device__ __forceinline__ int
quantize4_q8 (float4 v, float *d_out, int *sum_out)
{
  float a = fmaxf (fmaxf (fabsf (v.x), fabsf (v.y)),
      fmaxf (fabsf (v.z), fabsf (v.w)));
  float d, id;
  int q0, q1, q2, q3, s;

#pragma unroll
  for (int o = 1; o < 8; o <<= 1)
    a = fmaxf (a, __shfl_xor_sync (0xffffffffu, a, o));
  d = a / 127.0f;
  id = d != 0.0f ? 1.0f / d : 0.0f;
  q0 = (int) roundf (v.x * id);
  q1 = (int) roundf (v.y * id);
  q2 = (int) roundf (v.z * id);
  q3 = (int) roundf (v.w * id);
  s = q0 + q1 + q2 + q3;
#pragma unroll
  for (int o = 1; o < 8; o <<= 1)
    s += __shfl_xor_sync (0xffffffffu, s, o);
  *d_out = __half2float (__float2half_rn (d));
  *sum_out = s;
  return (q0 & 0xff) | (q1 & 0xff) << 8 | (q2 & 0xff) << 16
      | (uint32_t) (q3 & 0xff) << 24;
}

/* The block's threads quantize the @n_x vectors of @cols at @x into
 * shared memory: quants at @xq (vector t at t * cols), scales at @xd and
 * sums at @xs (vector t at t * cols / 32). Four float4 loads in flight per
 * thread. */
template <LlmDType T, int PRO>
static __device__ void
quantize_x_shared (int8_t * xq, float *xd, int *xs, const float *__restrict__ x,
    unsigned int n_x, unsigned int cols, const MatvecPro & p, float scale)
{
  unsigned int n4 = n_x * cols / 4;     /* a multiple of 8: whole blocks */
  bool vec = ((uintptr_t) x & 15) == 0;
  /* (a prologue: n_x is 1) */

  for (unsigned int i0 = 0; i0 < n4; i0 += 4 * PK_THREADS) {
    float4 v[4];

#pragma unroll
    for (int k = 0; k < 4; k++) {
      unsigned int i = i0 + k * PK_THREADS + threadIdx.x;

      v[k] = make_float4 (0.0f, 0.0f, 0.0f, 0.0f);
      if (i < n4 && PRO != PRO_NONE)
        v[k] = make_float4 (pro_x<PRO> (x, 4 * i, cols, p, scale),
            pro_x<PRO> (x, 4 * i + 1, cols, p, scale),
            pro_x<PRO> (x, 4 * i + 2, cols, p, scale),
            pro_x<PRO> (x, 4 * i + 3, cols, p, scale));
      else if (i < n4)
        v[k] = vec ? __ldg ((const float4 *) x + i)
            : make_float4 (x[4 * i], x[4 * i + 1], x[4 * i + 2], x[4 * i + 3]);
    }
#pragma unroll
    for (int k = 0; k < 4; k++) {
      /* whole warps, 8 lanes a block: i < n4 is the same in all 8 */
      unsigned int i = i0 + k * PK_THREADS + threadIdx.x;
      unsigned int t = 4 * i / cols, c = 4 * i % cols;
      float d;
      int s, q;

      if (i0 + k * PK_THREADS >= n4)
        break;
      q = quantize4_q8 (v[k], &d, &s);
      if (i < n4) {
        *(int *) (xq + (size_t) t * cols + xq_offset<T> (c, cols)) = q;
        if (c % 32 == 0) {
          xd[t * (cols / 32) + c / 32] = d;
          xs[t * (cols / 32) + c / 32] = s;
        }
      }
    }
  }
}

/* This lane's U vectors of step @c of row @r, and their blocks' scales. */
template <LlmDType T, int U>
static __device__ __forceinline__ void
load_step (uint4 * w, uint16_t * sc, const uint4 * __restrict__ wq,
    const uint16_t * __restrict__ ws, unsigned int r, unsigned int c,
    unsigned int vpr, unsigned int nb, unsigned int lane)
{
#pragma unroll
  for (int u = 0; u < U; u++) {
    unsigned int v = (c * U + u) * LLM_CUDA_WARP + lane;

    if (v < vpr) {
      w[u] = __ldcs (wq + (size_t) r * vpr + v);
      sc[u] = __ldcs (ws + (size_t) r * nb + (T == LLM_DTYPE_Q8_0 ? v / 2 : v));
    }
  }
}

/* acc[t] += this lane's part of dot(row, x_t) for the vectors @w of step
 * @c: Q8_0 16 quants (half a block) a vector, Q4_0 a whole block. */
template <LlmDType T, int NX>
static __device__ __forceinline__ void
dot_step (float *acc, const uint4 * w, const uint16_t * sc,
    const int8_t * xq, const float *xd, const int *xs, unsigned int c,
    unsigned int vpr, unsigned int cols, unsigned int lane)
{
  constexpr int U = PK_U (NX);
  unsigned int nb = cols / 32;

#pragma unroll
  for (int u = 0; u < U; u++) {
    unsigned int v = (c * U + u) * LLM_CUDA_WARP + lane;
    float dw = f16_bits_to_f32 (sc[u]);

    if (v >= vpr)
      break;
    if (T == LLM_DTYPE_Q8_0) {
#pragma unroll
      for (int t = 0; t < NX; t++) {
        int4 xv = *(const int4 *) (xq + (size_t) t * cols + 16 * v);
        int dot = __dp4a ((int) w[u].x, xv.x, 0);

        dot = __dp4a ((int) w[u].y, xv.y, dot);
        dot = __dp4a ((int) w[u].z, xv.z, dot);
        dot = __dp4a ((int) w[u].w, xv.w, dot);
        acc[t] += (float) dot * (dw * xd[t * nb + v / 2]);
      }
    } else {
      uint32_t lo[4], hi[4];

      lo[0] = w[u].x & 0x0f0f0f0fu;
      hi[0] = (w[u].x >> 4) & 0x0f0f0f0fu;
      lo[1] = w[u].y & 0x0f0f0f0fu;
      hi[1] = (w[u].y >> 4) & 0x0f0f0f0fu;
      lo[2] = w[u].z & 0x0f0f0f0fu;
      hi[2] = (w[u].z >> 4) & 0x0f0f0f0fu;
      lo[3] = w[u].w & 0x0f0f0f0fu;
      hi[3] = (w[u].w >> 4) & 0x0f0f0f0fu;
#pragma unroll
      for (int t = 0; t < NX; t++) {
        const int8_t *xt = xq + (size_t) t * cols;
        int4 xl = *(const int4 *) (xt + 16 * v);
        int4 xh = *(const int4 *) (xt + cols / 2 + 16 * v);
        /* the nibbles are q + 8: subtract 8 * sum(x quants) */
        int dot = -8 * xs[t * nb + v];

        dot = __dp4a ((int) lo[0], xl.x, dot);
        dot = __dp4a ((int) lo[1], xl.y, dot);
        dot = __dp4a ((int) lo[2], xl.z, dot);
        dot = __dp4a ((int) lo[3], xl.w, dot);
        dot = __dp4a ((int) hi[0], xh.x, dot);
        dot = __dp4a ((int) hi[1], xh.y, dot);
        dot = __dp4a ((int) hi[2], xh.z, dot);
        dot = __dp4a ((int) hi[3], xh.w, dot);
        acc[t] += (float) dot * (dw * xd[t * nb + v]);
      }
    }
  }
}

/* out[t * rows + r] (+)= dot(row r, x_t) for t < NX; NX 1 with a
 * prologue. PRO_GATED (with PRO_SCALE, NX 1): the unit a warp takes is a
 * pair, gate row i then up row i + rows / 2, streamed as one row of
 * twice the steps, and out[i] = silu(gate) * up for i < rows / 2 (the
 * SwiGLU kernel between gate|up and w_down goes). */
template <LlmDType T, int NX, int PRO>
static __global__ void __launch_bounds__ (PK_THREADS)
matvec_packed_kernel (float *__restrict__ out, const void *__restrict__ packed,
    const float *__restrict__ x, unsigned int rows, unsigned int cols,
    bool add, MatvecPro p, const void *__restrict__ xpre)
{
  extern __shared__ int4 smem[];
  /* x already rounded (@xpre, matvec_x_quantize.cu: the same layout in
   * device memory, read through L1), or rounded here into shared memory */
  int8_t *xq = xpre ? (int8_t *) xpre : (int8_t *) smem;
  float *xd = (float *) (xq + (size_t) NX * cols);
  int *xs = (int *) (xd + NX * (cols / 32));
  unsigned int lane = threadIdx.x % LLM_CUDA_WARP;
  unsigned int nb = cols / 32;
  unsigned int vpr = (unsigned int) (packed_row_quant_bytes (T, cols) / 16);
  constexpr int U = PK_U (NX);
  unsigned int steps = (vpr + U * LLM_CUDA_WARP - 1) / (U * LLM_CUDA_WARP);
  unsigned int tw = gridDim.x * PK_WARPS;
  unsigned int r = blockIdx.x * PK_WARPS + threadIdx.x / LLM_CUDA_WARP;
  unsigned int c = 0;
  constexpr bool GATED = (PRO & PRO_GATED) != 0;
  /* the warps' units: rows, or (gate, up) pairs of twice the steps */
  unsigned int units = GATED ? rows / 2 : rows;
  unsigned int usteps = GATED ? 2 * steps : steps;
  float gate = 0.0f;
  const uint4 *wq = (const uint4 *) packed;
  const uint16_t *ws = packed_scales (packed, T, rows, cols);
  uint4 w[U];
  uint16_t sc[U];
  float acc[NX], scale = 1.0f;
  /* the prologue that changes x as it is rounded */
  constexpr int XPRO = PRO & (PRO_RMSNORM | PRO_SWIGLU);

#pragma unroll
  for (int u = 0; u < U; u++) {
    w[u] = make_uint4 (0, 0, 0, 0);
    sc[u] = 0;
  }
#pragma unroll
  for (int t = 0; t < NX; t++)
    acc[t] = 0.0f;
  pdl_launch_dependents ();
  if (r < units)
    load_step<T, U> (w, sc, wq, ws, r, 0, vpr, nb, lane);
  pdl_wait ();                  /* x and out are the previous kernels' */
  if (xpre == NULL) {
    quantize_x_shared<T, XPRO> (xq, xd, xs, x, NX, cols, p,
        XPRO == PRO_RMSNORM ? block_rms_scale (x, cols, p.eps) : 1.0f);
    __syncthreads ();
  }
  if (PRO & PRO_SCALE)
    scale = pro_ss_scale (p, cols);

  while (r < units) {
    uint4 cw[U];
    uint16_t cs[U];
    unsigned int cr = r, cc = c;

#pragma unroll
    for (int u = 0; u < U; u++) {
      cw[u] = w[u];
      cs[u] = sc[u];
    }
    if (++c == usteps) {
      c = 0;
      r += tw;
    }
    if (r < units) {
      if (GATED && c >= steps)  /* the up row of the pair */
        load_step<T, U> (w, sc, wq, ws, r + units, c - steps, vpr, nb, lane);
      else
        load_step<T, U> (w, sc, wq, ws, r, c, vpr, nb, lane);
    }
    dot_step<T, NX> (acc, cw, cs, xq, xd, xs, GATED && cc >= steps ?
        cc - steps : cc, vpr, cols, lane);
    if (GATED && cc == steps - 1) {
      /* the gate row is done */
      gate = warp_sum (acc[0]) * scale;
      acc[0] = 0.0f;
    }
    if (c == 0) {
#pragma unroll
      for (int t = 0; t < NX; t++) {
        float s = warp_sum (acc[t]) * scale;

        if (GATED)
          s = gate / (1.0f + expf (-gate)) * s;
        if (lane == 0) {
          float *o = out + (size_t) t * rows + cr;
          float v = add ? *o + s : s;

          *o = v;
          if (PRO & EPI_NORM)
            epi_norm_row (p, cr, v);
        }
        acc[t] = 0.0f;
      }
    }
  }
}

/* For x too long for shared memory (n_x * cols beyond ~180000): one warp a
 * row, each lane quantizing the blocks of x it needs as it goes (the same
 * rounding as quantize_x_shared). Slow; no model has such rows. */
template <LlmDType T>
static __global__ void __launch_bounds__ (MATVEC_THREADS)
matvec_packed_long_kernel (float *__restrict__ out,
    const void *__restrict__ packed, const float *__restrict__ x,
    unsigned int n_x, unsigned int rows, unsigned int cols, bool add)
{
  unsigned int row = blockIdx.x * MATVEC_WARPS + threadIdx.x / LLM_CUDA_WARP;
  unsigned int lane = threadIdx.x % LLM_CUDA_WARP;
  unsigned int nb = cols / 32;
  const uint8_t *wq = (const uint8_t *) packed
      + (size_t) row * packed_row_quant_bytes (T, cols);
  const uint16_t *ws = packed_scales (packed, T, rows, cols)
      + (size_t) row * nb;

  pdl_launch_dependents ();
  pdl_wait ();
  if (row >= rows)
    return;
  for (unsigned int t = 0; t < n_x; t++) {
    const float *xt = x + (size_t) t * cols;
    float acc = 0.0f;

    /* 8 lanes a block (quantize4_q8 wants whole warps) */
    for (unsigned int b0 = 0; b0 < nb; b0 += LLM_CUDA_WARP / 8) {
      unsigned int b = b0 + lane / 8, j = 4 * (lane % 8);
      float4 v = make_float4 (0.0f, 0.0f, 0.0f, 0.0f);
      float dx;
      int s, q, wv, dot;

      if (b < nb)
        v = make_float4 (xt[32 * b + j], xt[32 * b + j + 1],
            xt[32 * b + j + 2], xt[32 * b + j + 3]);
      q = quantize4_q8 (v, &dx, &s);
      if (b >= nb)
        continue;
      if (T == LLM_DTYPE_Q8_0) {
        wv = *(const int *) (wq + 32 * b + j);
        dot = __dp4a (wv, q, 0);
      } else {
        uint32_t u = *(const uint32_t *) (wq + 16 * b + j % 16);

        wv = (int) (j < 16 ? u & 0x0f0f0f0fu : (u >> 4) & 0x0f0f0f0fu);
        /* the nibbles are q + 8: each lane subtracts 8 * the sum of its
         * own four x quants */
        dot = __dp4a (wv, q, 0) - 8 * __dp4a (0x01010101, q, 0);
      }
      acc += (float) dot * (f16_bits_to_f32 (ws[b]) * dx);
    }
    acc = warp_sum (acc);
    if (lane == 0) {
      float *o = out + (size_t) t * rows + row;

      *o = add ? *o + acc : acc;
    }
  }
}

/* At most this many blocks of the persistent grid a multiprocessor:
 * LLMASOS_CUDA_PK_BLOCKS_PER_SM, for measuring (each block reads and
 * rounds all of x, so fewer blocks read less of it); unset, as many as
 * fit. */
static inline unsigned int
packed_blocks_per_sm_cap (void)
{
  static int cap = -1;

  if (cap < 0) {
    const char *env = g_getenv ("LLMASOS_CUDA_PK_BLOCKS_PER_SM");

    cap = env ? CLAMP (atoi (env), 1, 64) : 64;
  }
  return (unsigned int) cap;
}

/* One NX: a persistent grid of as many blocks as fit at once, or the long
 * kernel when x does not fit in shared memory (none with a prologue:
 * FALSE, nothing launched). */
template <LlmDType T, int NX, int PRO>
static bool
matvec_packed_launch_nx (float *out, const void *packed, const float *x,
    unsigned int rows, unsigned int cols, bool add, const MatvecPro & p,
    cudaStream_t s, const void *xpre = NULL)
{
  /* per kernel, set on first use (the same values if two threads race) */
  static int per_sm_threads, smem_block_max, smem_sm;
  size_t smem = xpre ? 0 : packed_x_shared_bytes (NX, cols);
  unsigned int per_sm, grid;

  if (per_sm_threads == 0) {
    int dev = 0, n = 0;

    cudaGetDevice (&dev);
    cudaDeviceGetAttribute (&smem_sm,
        cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev);
    cudaDeviceGetAttribute (&n, cudaDevAttrMaxSharedMemoryPerBlockOptin,
        dev);
    cudaFuncSetAttribute (matvec_packed_kernel<T, NX, PRO>,
        cudaFuncAttributeMaxDynamicSharedMemorySize, n);
    cudaOccupancyMaxActiveBlocksPerMultiprocessor (&per_sm_threads,
        matvec_packed_kernel<T, NX, PRO>, PK_THREADS, 0);
    smem_block_max = n;
    per_sm_threads = MAX (per_sm_threads, 1);
  }
  if (smem > (size_t) smem_block_max) {
    if (PRO != PRO_NONE)
      return false;
    pdl_launch (matvec_packed_long_kernel<T>, matvec_blocks (rows),
        MATVEC_THREADS, 0, s, out, packed, x, NX, rows, cols, add);
    return true;
  }
  /* 1 KiB of shared memory a block is the system's */
  per_sm = MIN ((unsigned int) per_sm_threads,
      (unsigned int) (smem_sm / (smem + 1024)));
  per_sm = MIN (per_sm, packed_blocks_per_sm_cap ());
  grid = MIN (div_up ((PRO & PRO_GATED) ? rows / 2 : rows, PK_WARPS),
      MAX (per_sm, 1u) * llm_cuda_n_sm ());
  pdl_launch (matvec_packed_kernel<T, NX, PRO>, grid, PK_THREADS, smem, s,
      out, packed, x, rows, cols, add, p, xpre);
  return true;
}

/* out[t * rows + r] (+)= dot(row r, x_t), t < @n_x (1 .. PK_MAX_X). */
template <LlmDType T>
static void
matvec_packed_blocks_launch (float *out, const void *packed, const float *x,
    unsigned int n_x, unsigned int rows, unsigned int cols, bool add,
    cudaStream_t s)
{
  switch (n_x) {
    case 1:
      matvec_packed_launch_nx<T, 1, PRO_NONE> (out, packed, x, rows, cols,
          add, MatvecPro (), s);
      break;
    case 2:
      matvec_packed_launch_nx<T, 2, PRO_NONE> (out, packed, x, rows, cols,
          add, MatvecPro (), s);
      break;
    case 3:
      matvec_packed_launch_nx<T, 3, PRO_NONE> (out, packed, x, rows, cols,
          add, MatvecPro (), s);
      break;
    case 4:
      matvec_packed_launch_nx<T, 4, PRO_NONE> (out, packed, x, rows, cols,
          add, MatvecPro (), s);
      break;
    case 5:
      matvec_packed_launch_nx<T, 5, PRO_NONE> (out, packed, x, rows, cols,
          add, MatvecPro (), s);
      break;
    case 6:
      matvec_packed_launch_nx<T, 6, PRO_NONE> (out, packed, x, rows, cols,
          add, MatvecPro (), s);
      break;
    case 7:
      matvec_packed_launch_nx<T, 7, PRO_NONE> (out, packed, x, rows, cols,
          add, MatvecPro (), s);
      break;
    case 8:
      matvec_packed_launch_nx<T, 8, PRO_NONE> (out, packed, x, rows, cols,
          add, MatvecPro (), s);
      break;
    default:
      g_critical ("matvec_packed: %u vectors, at most %d", n_x, PK_MAX_X);
  }
}

/* One vector through a prologue and / or EPI_NORM; FALSE (nothing
 * launched) where x is too long for shared memory or for another @pro. */
template <LlmDType T>
static bool
matvec_packed_blocks_launch_pro (float *out, const void *packed,
    const float *x, unsigned int rows, unsigned int cols, bool add, int pro,
    const MatvecPro & p, cudaStream_t s)
{
  switch (pro) {
    case PRO_RMSNORM:
      return matvec_packed_launch_nx<T, 1, PRO_RMSNORM> (out, packed, x,
          rows, cols, add, p, s);
    case PRO_SWIGLU:
      return matvec_packed_launch_nx<T, 1, PRO_SWIGLU> (out, packed, x,
          rows, cols, add, p, s);
    case PRO_SCALE:
      return matvec_packed_launch_nx<T, 1, PRO_SCALE> (out, packed, x,
          rows, cols, add, p, s);
    case PRO_SCALE | PRO_GATED:
      return matvec_packed_launch_nx<T, 1, PRO_SCALE | PRO_GATED> (out,
          packed, x, rows, cols, add, p, s);
    case EPI_NORM:
      return matvec_packed_launch_nx<T, 1, EPI_NORM> (out, packed, x,
          rows, cols, add, p, s);
    default:
      return false;
  }
}

/* One vector already rounded into @xq (matvec_x_quantize.cu). */
template <LlmDType T>
static void
matvec_packed_blocks_launch_quantized (float *out, const void *packed,
    const void *xq, unsigned int rows, unsigned int cols, bool add,
    cudaStream_t s)
{
  matvec_packed_launch_nx<T, 1, PRO_NONE> (out, packed, NULL, rows, cols,
      add, MatvecPro (), s, xq);
}

/* The entry points of matvec_{q8_0,q4_0,plain}_packed.cu, for the
 * dispatcher in matvec_packed.cu; the _pro ones return FALSE where they
 * cannot fuse the prologue (nothing launched). */
void matvec_q8_0_packed (float *out, const void *packed, const float *x,
    unsigned int n_x, unsigned int rows, unsigned int cols, bool add,
    cudaStream_t s);
void matvec_q4_0_packed (float *out, const void *packed, const float *x,
    unsigned int n_x, unsigned int rows, unsigned int cols, bool add,
    cudaStream_t s);
void matvec_plain_packed (float *out, const void *weight, LlmDType dtype,
    const float *x, unsigned int n_x, unsigned int rows, unsigned int cols,
    bool add, cudaStream_t s);
bool matvec_q8_0_packed_pro (float *out, const void *packed, const float *x,
    unsigned int rows, unsigned int cols, bool add, int pro,
    const MatvecPro & p, cudaStream_t s);
bool matvec_q4_0_packed_pro (float *out, const void *packed, const float *x,
    unsigned int rows, unsigned int cols, bool add, int pro,
    const MatvecPro & p, cudaStream_t s);
bool matvec_plain_packed_pro (float *out, const void *weight, LlmDType dtype,
    const float *x, unsigned int rows, unsigned int cols, bool add, int pro,
    const MatvecPro & p, cudaStream_t s);
void matvec_q8_0_packed_quantized (float *out, const void *packed,
    const void *xq, unsigned int rows, unsigned int cols, bool add,
    cudaStream_t s);
void matvec_q4_0_packed_quantized (float *out, const void *packed,
    const void *xq, unsigned int rows, unsigned int cols, bool add,
    cudaStream_t s);
