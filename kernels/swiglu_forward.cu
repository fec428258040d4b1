/* LLMasOS - swiglu_forward: out = silu(gate) * up, element-wise.
 * CPU twin: llm_swiglu().
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-cuda-pdl.cuh"

#define SWIGLU_THREADS 256

static __device__ __forceinline__ float
swiglu (float g, float u)
{
  return g / (1.0f + expf (-g)) * u;
}

/* Four elements a thread, 16-byte loads (all three pointers 16-byte
 * aligned); the last n % 4 by the scalar kernel. */
static __global__ void
swiglu_forward_vec4 (float4 * out, const float4 * gate, const float4 * up,
    size_t n4)
{
  size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;

  if (i < n4) {
    float4 g = gate[i], u = up[i], r;

    r.x = swiglu (g.x, u.x);
    r.y = swiglu (g.y, u.y);
    r.z = swiglu (g.z, u.z);
    r.w = swiglu (g.w, u.w);
    out[i] = r;
  }
}

static __global__ void
swiglu_forward_kernel (float *out, const float *gate, const float *up,
    size_t n)
{
  size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;

  if (i < n)
    out[i] = swiglu (gate[i], up[i]);
}

void
llm_cuda_swiglu_forward (float *out, const float *gate, const float *up,
    size_t n, LlmCudaStream * stream)
{
  cudaStream_t s = llm_cuda_raw_stream (stream);
  size_t n4 = 0;

  if (n == 0)
    return;
  llm_cuda_use_device ();

  if ((((uintptr_t) out | (uintptr_t) gate | (uintptr_t) up) & 15) == 0) {
    n4 = n / 4;
    if (n4 > 0)
      swiglu_forward_vec4 <<<div_up (n4, SWIGLU_THREADS), SWIGLU_THREADS, 0,
          s>>> ((float4 *) out, (const float4 *) gate, (const float4 *) up,
          n4);
  }
  if (n > n4 * 4)
    swiglu_forward_kernel <<<div_up (n - n4 * 4, SWIGLU_THREADS),
        SWIGLU_THREADS, 0, s>>> (out + n4 * 4, gate + n4 * 4, up + n4 * 4,
        n - n4 * 4);
}

/* Grid: (ffn / SWIGLU_THREADS, rows). */
static __global__ void
swiglu_rows_kernel (float *out, const float *gate_up, unsigned int ffn)
{
  unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
  const float *g = gate_up + (size_t) blockIdx.y * 2 * ffn;

  /* launched with PDL (llm-cuda-pdl.cuh) */
  pdl_launch_dependents ();
  pdl_wait ();
  if (i < ffn)
    out[(size_t) blockIdx.y * ffn + i] = swiglu (g[i], g[ffn + i]);
}

void
llm_cuda_swiglu_rows (float *out, const float *gate_up, guint n_rows,
    guint ffn, LlmCudaStream * stream)
{
  dim3 grid (div_up (ffn, SWIGLU_THREADS), n_rows);

  g_return_if_fail (n_rows <= 65535);
  if (n_rows == 0 || ffn == 0)
    return;
  llm_cuda_use_device ();
  pdl_launch (swiglu_rows_kernel, grid, SWIGLU_THREADS, 0,
      llm_cuda_raw_stream (stream), out, gate_up, ffn);
}
