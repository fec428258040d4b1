/* LLMasOS - rope_apply: rotary position embedding, in place, for the
 * interleaved (2i, 2i+1) and rotate-half (i, i + d/2) layouts.
 * CPU twin: llm_rope().
 * (The angle: rope-angle.cuh.)
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-cuda-pdl.cuh"
#include "rope-angle.cuh"

#define ROPE_THREADS 256

/* Grid: (pairs of all heads / ROPE_THREADS, tokens); one thread per pair. */
template <bool INTERLEAVED>
static __global__ void
rope_apply_kernel (float *x, size_t row_stride, unsigned int n_heads,
    unsigned int head_dim, unsigned int pos0, const int32_t * pos0_device,
    float theta)
{
  unsigned int half = head_dim / 2;
  unsigned int k = blockIdx.x * blockDim.x + threadIdx.x;
  unsigned int pos;

  /* launched with PDL (llm-cuda-pdl.cuh): x and the position are the
   * previous kernels' */
  pdl_launch_dependents ();
  pdl_wait ();
  if (k >= n_heads * half)
    return;
  pos = (pos0_device ? (unsigned int) *pos0_device : pos0) + blockIdx.y;
  rope_rotate_pair<INTERLEAVED> (x + (size_t) blockIdx.y * row_stride
      + (size_t) (k / half) * head_dim, k % half, head_dim, pos, theta);
}

static void
rope_apply (float *x, guint n_tokens, size_t row_stride,
    guint n_heads, guint head_dim, guint pos0, const gint32 * pos0_device,
    float theta, gboolean interleaved, LlmCudaStream * stream)
{
  cudaStream_t s = llm_cuda_raw_stream (stream);
  dim3 grid (div_up ((size_t) n_heads * (head_dim / 2), ROPE_THREADS),
      n_tokens);

  g_return_if_fail (head_dim % 2 == 0);
  g_return_if_fail (row_stride >= (size_t) n_heads * head_dim);
  g_return_if_fail (n_tokens <= 65535);
  if (n_tokens == 0 || n_heads == 0 || head_dim == 0)
    return;
  llm_cuda_use_device ();

  if (interleaved)
    pdl_launch (rope_apply_kernel<true>, grid, ROPE_THREADS, 0, s, x,
        row_stride, n_heads, head_dim, pos0, pos0_device, theta);
  else
    pdl_launch (rope_apply_kernel<false>, grid, ROPE_THREADS, 0, s, x,
        row_stride, n_heads, head_dim, pos0, pos0_device, theta);
}

void
llm_cuda_rope_apply (float *x, guint n_tokens, size_t row_stride,
    guint n_heads, guint head_dim, guint pos0, float theta,
    gboolean interleaved, LlmCudaStream * stream)
{
  rope_apply (x, n_tokens, row_stride, n_heads, head_dim, pos0, NULL, theta,
      interleaved, stream);
}

void
llm_cuda_rope_apply_at (float *x, guint n_tokens, size_t row_stride,
    guint n_heads, guint head_dim, const gint32 * pos0_device, float theta,
    gboolean interleaved, LlmCudaStream * stream)
{
  g_return_if_fail (pos0_device != NULL);
  rope_apply (x, n_tokens, row_stride, n_heads, head_dim, 0, pos0_device,
      theta, interleaved, stream);
}
