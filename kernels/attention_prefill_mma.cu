/* LLMasOS - attention_prefill_mma: the flash-attention kernel of
 * llm_cuda_attention_prefill() for an F16 cache with head_dim 64 or 128,
 * written with mma.sync m16n8k16 (F16 in, F32 accumulation) so that the
 * scores, the probabilities and the output accumulator stay in registers.
 * CPU twin: llm_attention_causal_strided().
 *
 * Rows are (token, query head of the group) as in attention_prefill.cu:
 * row r of KV head g is token r / group, query head g * group + r % group,
 * so the query heads that share a KV head share each key/value tile. A
 * block takes NW warps of WM m tiles of 16 rows; q is rounded to F16 once
 * into shared memory, and per tile of KEYS keys a warp computes S = q K^T
 * (16 x KEYS a m tile, F32), the online softmax in the accumulator layout
 * (a thread holds two rows, four lanes share a row), rounds P to F16 (the
 * accumulator layout of two n8 tiles is the A layout of one k16 step, no
 * shuffle) and adds P V into O (16 x HD, F32). Keys and values are copied
 * with cp.async into two stages, the next tile loading while this one is
 * used; rows of HD + 8 halves keep ldmatrix free of bank conflicts. The
 * O rescale of the online softmax is skipped while no row max of a warp
 * moves (most tiles once the first are in). Tiles are taken from
 * the last (where the causal mask cuts) to the first, and blocks from the
 * last rows (most keys) to the first, so the short ones fill the tail.
 *
 * The row sum l is taken of the F32 probabilities and P is rounded to F16
 * for the product: each weight is off by at most 2^-11 of itself.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-cuda-private.cuh"

#define LOG2E 1.4426950408889634f

extern __shared__ __align__ (128) unsigned char fa_smem[];

/* --- PTX wrappers --- */

static __device__ __forceinline__ unsigned int
smem_addr (const void *p)
{
  return (unsigned int) __cvta_generic_to_shared (p);
}

/* 16 bytes global -> shared, or 16 zero bytes when !@valid. */
static __device__ __forceinline__ void
cp_async16 (void *dst, const void *src, bool valid)
{
  asm volatile ("cp.async.cg.shared.global [%0], [%1], 16, %2;\n"
      ::"r" (smem_addr (dst)), "l" (src), "r" (valid ? 16 : 0));
}

static __device__ __forceinline__ void
cp_async_commit (void)
{
  asm volatile ("cp.async.commit_group;\n"::);
}

template <int N>
static __device__ __forceinline__ void
cp_async_wait (void)
{
  asm volatile ("cp.async.wait_group %0;\n"::"n" (N));
}

static __device__ __forceinline__ void
ldmatrix_x4 (uint32_t r[4], const void *p)
{
  asm volatile ("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, "
      "[%4];\n":"=r" (r[0]), "=r" (r[1]), "=r" (r[2]), "=r" (r[3])
      :"r" (smem_addr (p)));
}

static __device__ __forceinline__ void
ldmatrix_x4_trans (uint32_t r[4], const void *p)
{
  asm volatile ("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 "
      "{%0,%1,%2,%3}, [%4];\n":"=r" (r[0]), "=r" (r[1]), "=r" (r[2]),
      "=r" (r[3])
      :"r" (smem_addr (p)));
}

/* c += a b: a 16 x 16 (row), b 16 x 8 (col), c 16 x 8 F32. */
static __device__ __forceinline__ void
mma_16816 (float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1)
{
  asm ("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
      "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      :"+f" (c[0]), "+f" (c[1]), "+f" (c[2]), "+f" (c[3])
      :"r" (a[0]), "r" (a[1]), "r" (a[2]), "r" (a[3]), "r" (b0), "r" (b1));
}

static __device__ __forceinline__ uint32_t
pack_half2 (float lo, float hi)
{
  __half2 h = __floats2half2_rn (lo, hi);

  return *(uint32_t *) & h;
}

static __device__ __forceinline__ float
exp2_approx (float x)
{
  float y;

  asm ("ex2.approx.ftz.f32 %0, %1;\n":"=f" (y):"f" (x));
  return y;
}

/* Whether the query at @qpos sees the key at @p. */
static __device__ __forceinline__ bool
fa_sees (unsigned int qpos, unsigned int p, unsigned int window)
{
  return p <= qpos && (window == 0 || p + window > qpos);
}

/* --- the kernel --- */

template <int HD, int NW, int WM, int KEYS>
struct FaLayout
{
  static const int ROWS = NW * WM * 16; /* rows a block */
  static const int LDH = HD + 8;        /* halves a row of q, k, v tiles */
  static const size_t Q_BYTES = (size_t) ROWS * LDH * 2;
  static const size_t KV_BYTES = (size_t) KEYS * LDH * 2;
  /* q, then two stages of (k, v). */
  static const size_t BYTES = Q_BYTES + 4 * KV_BYTES;
};

/* 1-D grid, heaviest blocks first: block b takes KV head b % n_kv_heads
 * and row block (row blocks - 1 - b / n_kv_heads). NW warps of WM * 16
 * rows; MB blocks a multiprocessor (bounds the registers). With WM 1 a
 * warp keeps its q fragments in registers, with WM 2 (twice the work per
 * key/value fragment read) it reads them from shared memory each tile. */
template <int HD, int NW, int WM, int KEYS, int MB>
static __global__ void __launch_bounds__ (NW * 32, MB)
attention_prefill_f16_mma (float *__restrict__ out,
    const float *__restrict__ q, size_t q_stride,
    const __half * __restrict__ k, const __half * __restrict__ v,
    unsigned int pos0, unsigned int n_tokens, unsigned int group,
    unsigned int n_kv_heads, size_t kv_stride, float scale_log2,
    unsigned int window)
{
  typedef FaLayout<HD, NW, WM, KEYS> L;
  const int ROWS = L::ROWS, LDH = L::LDH, THREADS = NW * 32;
  const int CPR = HD / 8, RPI = THREADS / CPR;  /* 16-byte chunks a row */
  __half *qs = (__half *) fa_smem;
  __half *kv0 = (__half *) (fa_smem + L::Q_BYTES);
  unsigned int n_row_blocks = (n_tokens * group + ROWS - 1) / ROWS;
  unsigned int kvh = blockIdx.x % n_kv_heads;
  unsigned int rb = n_row_blocks - 1 - blockIdx.x / n_kv_heads;
  unsigned int n_heads = n_kv_heads * group, n_rows = n_tokens * group;
  unsigned int r0 = rb * ROWS, r1 = min (n_rows, r0 + ROWS);
  unsigned int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  unsigned int g = lane / 4, t = lane % 4;
  unsigned int wr0 = r0 + warp * WM * 16;
  bool warp_live = wr0 < r1;
  unsigned int wq_lo = pos0 + (warp_live ? wr0 / group : 0u);
  unsigned int wq_hi = pos0 + (warp_live ?
      (min (r1, wr0 + WM * 16) - 1) / group : 0u);
  unsigned int first = pos0 + r0 / group, last = pos0 + (r1 - 1) / group;
  unsigned int lo = window > 0 && first + 1 > window ? first + 1 - window : 0;
  unsigned int hi = last + 1;
  unsigned int j_lo = lo / KEYS, j_hi = (hi - 1) / KEYS;
  unsigned int n_tiles = j_hi - j_lo + 1;
  /* This thread's 16-byte chunk of each RPI rows of a key/value tile. */
  unsigned int c0 = threadIdx.x / CPR, ch = threadIdx.x % CPR;
  size_t kv_at = (size_t) c0 * kv_stride + (size_t) kvh * HD + ch * 8;
  unsigned int qpos[WM][2];
  uint32_t qf[WM == 1 ? HD / 16 : 1][4];
  float o[WM][HD / 8][4], m[WM][2], l[WM][2];

  static_assert (THREADS % CPR == 0 && KEYS % RPI == 0, "whole rounds");
  static_assert (ROWS * HD / 4 % (8 * THREADS) == 0, "q in rounds of 8");

  /* Keys and values of tile j into stage st; zeros outside [lo, hi), so
   * that what the mask drops is finite (0 * garbage could be NaN). */
  auto load_tile =[&](unsigned int j, unsigned int st) {
    __half *ks = kv0 + (size_t) st * 2 * KEYS * LDH + c0 * LDH + ch * 8;
    __half *vs = ks + KEYS * LDH;
    size_t base = (size_t) j * KEYS * kv_stride + kv_at;
    bool full = j * KEYS >= lo && j * KEYS + KEYS <= hi;

#pragma unroll
    for (int it = 0; it < KEYS / RPI; it++) {
      unsigned int p = j * KEYS + c0 + it * RPI;
      bool valid = full || (p >= lo && p < hi);
      size_t at = base + (size_t) it * RPI * kv_stride;

      cp_async16 (ks + it * RPI * LDH, valid ? k + at : k, valid);
      cp_async16 (vs + it * RPI * LDH, valid ? v + at : v, valid);
    }
  };

  load_tile (j_hi, 0);
  cp_async_commit ();

  /* q rows to F16 in shared memory, 4 floats at a time, 8 loads in
   * flight; float4 loads where q and its stride allow. */
  {
    bool vec = ((uintptr_t) q & 15) == 0 && q_stride % 4 == 0;

#pragma unroll 1
    for (int u0 = 0; u0 < ROWS * HD / 4 / THREADS; u0 += 8) {
      float4 f[8];

#pragma unroll
      for (int u = 0; u < 8; u++) {
        unsigned int x = threadIdx.x + (u0 + u) * THREADS;
        unsigned int r = x / (HD / 4), d = x % (HD / 4) * 4, rr = r0 + r;
        const float *src = q + (size_t) (rr / group) * q_stride
            + (size_t) (kvh * group + rr % group) * HD + d;

        f[u] = make_float4 (0.0f, 0.0f, 0.0f, 0.0f);
        if (rr < r1 && vec)
          f[u] = *(const float4 *) src;
        else if (rr < r1)
          f[u] = make_float4 (src[0], src[1], src[2], src[3]);
      }
#pragma unroll
      for (int u = 0; u < 8; u++) {
        unsigned int x = threadIdx.x + (u0 + u) * THREADS;
        unsigned int r = x / (HD / 4), d = x % (HD / 4) * 4;

        *(uint2 *) (qs + r * LDH + d) = make_uint2 (pack_half2 (f[u].x,
                f[u].y), pack_half2 (f[u].z, f[u].w));
      }
    }
  }
  __syncthreads ();
  if (WM == 1) {
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++)
      ldmatrix_x4 (qf[WM == 1 ? kk : 0], qs + (warp * 16 + lane % 16) * LDH
          + kk * 16 + (lane / 16) * 8);
  }

#pragma unroll
  for (int mi = 0; mi < WM; mi++) {
#pragma unroll
    for (int h = 0; h < 2; h++) {
      unsigned int rr = wr0 + mi * 16 + g + 8 * h;

      qpos[mi][h] = pos0 + (rr < r1 ? rr / group : (r1 - 1) / group);
      m[mi][h] = -INFINITY;
      l[mi][h] = 0.0f;
    }
#pragma unroll
    for (int n = 0; n < HD / 8; n++)
#pragma unroll
      for (int e = 0; e < 4; e++)
        o[mi][n][e] = 0.0f;
  }

  for (unsigned int i = 0; i < n_tiles; i++) {
    unsigned int j = j_hi - i, key0 = j * KEYS;
    const __half *ks = kv0 + (size_t) (i & 1) * 2 * KEYS * LDH;
    const __half *vs = ks + KEYS * LDH;
    bool idle, masked;

    if (i + 1 < n_tiles) {
      load_tile (j - 1, (i + 1) & 1);
      cp_async_commit ();
      cp_async_wait<1> ();
    } else {
      cp_async_wait<0> ();
    }
    __syncthreads ();

    /* A warp none of whose rows sees this tile skips it; one all of
     * whose rows see all of it needs no mask. */
    idle = !warp_live || key0 > wq_hi
        || (window > 0 && key0 + KEYS - 1 + window <= wq_lo);
    masked = key0 + KEYS - 1 > wq_lo || (window > 0 && key0 + window <= wq_hi);
    if (!idle) {
      float s[WM][KEYS / 8][4];
      bool rescale = false;

      /* S = q K^T */
#pragma unroll
      for (int mi = 0; mi < WM; mi++)
#pragma unroll
        for (int n = 0; n < KEYS / 8; n++)
#pragma unroll
          for (int e = 0; e < 4; e++)
            s[mi][n][e] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < HD / 16; kk++) {
        uint32_t a[WM][4];

#pragma unroll
        for (int mi = 0; mi < WM; mi++) {
          if (WM == 1) {
#pragma unroll
            for (int e = 0; e < 4; e++)
              a[mi][e] = qf[WM == 1 ? kk : 0][e];
          } else {
            ldmatrix_x4 (a[mi], qs + ((warp * WM + mi) * 16 + lane % 16)
                * LDH + kk * 16 + (lane / 16) * 8);
          }
        }
#pragma unroll
        for (int np = 0; np < KEYS / 16; np++) {
          uint32_t b[4];

          ldmatrix_x4 (b, ks + (np * 16 + lane % 8 + (lane / 16) * 8) * LDH
              + kk * 16 + ((lane / 8) % 2) * 8);
#pragma unroll
          for (int mi = 0; mi < WM; mi++) {
            mma_16816 (s[mi][2 * np], a[mi], b[0], b[1]);
            mma_16816 (s[mi][2 * np + 1], a[mi], b[2], b[3]);
          }
        }
      }

      if (masked) {
#pragma unroll
        for (int mi = 0; mi < WM; mi++)
#pragma unroll
          for (int n = 0; n < KEYS / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++)
              if (!fa_sees (qpos[mi][e / 2], key0 + n * 8 + 2 * t + e % 2,
                      window))
                s[mi][n][e] = -INFINITY;
      }

      /* Online softmax, rows g (h 0) and g + 8 (h 1) of each m tile. */
      float alpha[WM][2];

#pragma unroll
      for (int mi = 0; mi < WM; mi++) {
#pragma unroll
        for (int h = 0; h < 2; h++) {
          float mx = m[mi][h], ms, sum = 0.0f;

#pragma unroll
          for (int n = 0; n < KEYS / 8; n++)
            mx = fmaxf (mx, fmaxf (s[mi][n][2 * h], s[mi][n][2 * h + 1]));
          mx = fmaxf (mx, __shfl_xor_sync (0xffffffffu, mx, 1));
          mx = fmaxf (mx, __shfl_xor_sync (0xffffffffu, mx, 2));
          /* All masked so far: subtract 0, not -inf (NaN). */
          ms = mx == -INFINITY ? 0.0f : mx * scale_log2;
          alpha[mi][h] = mx == m[mi][h] ? 1.0f
              : exp2_approx (m[mi][h] * scale_log2 - ms);
          rescale |= mx != m[mi][h];
          m[mi][h] = mx;
#pragma unroll
          for (int n = 0; n < KEYS / 8; n++) {
            s[mi][n][2 * h] = exp2_approx (fmaf (s[mi][n][2 * h],
                    scale_log2, -ms));
            s[mi][n][2 * h + 1] = exp2_approx (fmaf (s[mi][n][2 * h + 1],
                    scale_log2, -ms));
            sum += s[mi][n][2 * h] + s[mi][n][2 * h + 1];
          }
          l[mi][h] = l[mi][h] * alpha[mi][h] + sum;
        }
      }
      /* O *= alpha, skipped while no row max of the warp moves (alpha 1;
       * the usual case once the first tiles are in). */
      if (__any_sync (0xffffffffu, rescale)) {
#pragma unroll
        for (int mi = 0; mi < WM; mi++)
#pragma unroll
          for (int n = 0; n < HD / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++)
              o[mi][n][e] *= alpha[mi][e / 2];
      }

      /* O += P V, P rounded to F16 A fragments: the accumulators of n8
       * tiles 2 kk and 2 kk + 1 are the A fragment of k16 step kk. */
#pragma unroll
      for (int kk = 0; kk < KEYS / 16; kk++) {
        uint32_t pf[WM][4];

#pragma unroll
        for (int mi = 0; mi < WM; mi++) {
          pf[mi][0] = pack_half2 (s[mi][2 * kk][0], s[mi][2 * kk][1]);
          pf[mi][1] = pack_half2 (s[mi][2 * kk][2], s[mi][2 * kk][3]);
          pf[mi][2] = pack_half2 (s[mi][2 * kk + 1][0], s[mi][2 * kk + 1][1]);
          pf[mi][3] = pack_half2 (s[mi][2 * kk + 1][2], s[mi][2 * kk + 1][3]);
        }
#pragma unroll
        for (int dp = 0; dp < HD / 16; dp++) {
          uint32_t b[4];

          ldmatrix_x4_trans (b, vs + (kk * 16 + lane % 8
                  + ((lane / 8) % 2) * 8) * LDH + dp * 16 + (lane / 16) * 8);
#pragma unroll
          for (int mi = 0; mi < WM; mi++) {
            mma_16816 (o[mi][2 * dp], pf[mi], b[0], b[1]);
            mma_16816 (o[mi][2 * dp + 1], pf[mi], b[2], b[3]);
          }
        }
      }
    }
    __syncthreads ();           /* this stage is loaded again next round */
  }

  /* O / l, rows g and g + 8 of each m tile. */
#pragma unroll
  for (int mi = 0; mi < WM; mi++) {
#pragma unroll
    for (int h = 0; h < 2; h++) {
      unsigned int rr = wr0 + mi * 16 + g + 8 * h;
      float sum = l[mi][h], inv;

      sum += __shfl_xor_sync (0xffffffffu, sum, 1);
      sum += __shfl_xor_sync (0xffffffffu, sum, 2);
      inv = 1.0f / sum;
      if (rr < r1) {
        float *orow = out + (size_t) (rr / group) * n_heads * HD
            + (size_t) (kvh * group + rr % group) * HD + 2 * t;

        if (((uintptr_t) out & 7) == 0) {
#pragma unroll
          for (int n = 0; n < HD / 8; n++)
            *(float2 *) (orow + n * 8) = make_float2 (o[mi][n][2 * h] * inv,
                o[mi][n][2 * h + 1] * inv);
        } else {
#pragma unroll
          for (int n = 0; n < HD / 8; n++) {
            orow[n * 8] = o[mi][n][2 * h] * inv;
            orow[n * 8 + 1] = o[mi][n][2 * h + 1] * inv;
          }
        }
      }
    }
  }
}

/* --- launch --- */

template <int HD, int NW, int WM, int KEYS, int MB>
static void
launch (float *out, const float *q, size_t q_stride, const void *k,
    const void *v, unsigned int pos0, unsigned int n_tokens,
    unsigned int group, unsigned int n_kv_heads, size_t kv_stride,
    float scale, unsigned int window, cudaStream_t s)
{
  typedef FaLayout<HD, NW, WM, KEYS> L;
  size_t blocks = (size_t) div_up ((size_t) n_tokens * group, L::ROWS)
      * n_kv_heads;

  cudaFuncSetAttribute (attention_prefill_f16_mma<HD, NW, WM, KEYS, MB>,
      cudaFuncAttributeMaxDynamicSharedMemorySize, (int) L::BYTES);
  attention_prefill_f16_mma<HD, NW, WM, KEYS, MB> <<<(unsigned int) blocks,
      NW * 32, L::BYTES, s>>> (out, q, q_stride, (const __half *) k,
      (const __half *) v, pos0, n_tokens, group, n_kv_heads, kv_stride,
      scale * LOG2E, window);
}

bool
llm_cuda_attention_prefill_mma (float *out, const float *q, size_t q_stride,
    const void *k, const void *v, unsigned int pos0, unsigned int n_tokens,
    unsigned int group, unsigned int n_kv_heads, unsigned int head_dim,
    size_t kv_stride, float scale, unsigned int window, cudaStream_t s)
{
  /* Warps of 32 rows (WM 2) read each key/value fragment for twice the
   * work, and blocks of 128 rows halve the key/value traffic: 117 us for
   * 2048 tokens of Llama-3-8B on an H100 where 16-row warps take 140 us.
   * But below two such blocks a multiprocessor the GPU is not full, and
   * 64-row blocks win (19 us for 512 tokens, 25 us with 128 rows). */
  bool wide = (size_t) div_up ((size_t) n_tokens * group, 128) * n_kv_heads
      >= 2 * (size_t) llm_cuda_n_sm ();

  /* 16-byte copies of key/value rows. */
  if (kv_stride % 8 != 0 || (uintptr_t) k % 16 != 0
      || (uintptr_t) v % 16 != 0)
    return false;
  if (head_dim == 128 && wide)
    launch<128, 4, 2, 32, 2> (out, q, q_stride, k, v, pos0, n_tokens, group,
        n_kv_heads, kv_stride, scale, window, s);
  else if (head_dim == 128)
    launch<128, 4, 1, 64, 2> (out, q, q_stride, k, v, pos0, n_tokens, group,
        n_kv_heads, kv_stride, scale, window, s);
  else if (head_dim == 64 && wide)
    launch<64, 4, 2, 64, 2> (out, q, q_stride, k, v, pos0, n_tokens, group,
        n_kv_heads, kv_stride, scale, window, s);
  else if (head_dim == 64)
    launch<64, 4, 1, 64, 2> (out, q, q_stride, k, v, pos0, n_tokens, group,
        n_kv_heads, kv_stride, scale, window, s);
  else
    return false;
  return true;
}
