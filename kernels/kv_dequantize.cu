/* LLMasOS - kv_dequantize: positions 0 .. n_pos - 1 of one layer's Q8_0
 * cache (kv-q8_0.cuh) widened to an F16 cache of the same stride, for the
 * prefill attention, whose tensor-core kernels read F16: the queries of a
 * prompt then see exactly the values a decode step reads.
 * CPU twin: llm_dequantize_row() (Q8_0), then the F16 rounding.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-cuda-pdl.cuh"
#include "kv-q8_0.cuh"

#define KV_DEQ_THREADS 256

/* Grid: (stride / KV_DEQ_THREADS rounded up, n_pos). */
static __global__ void
kv_dequantize_kernel (__half * k16, __half * v16, const void *k,
    const void *v, unsigned int stride)
{
  unsigned int c = blockIdx.x * blockDim.x + threadIdx.x;
  size_t pos = blockIdx.y;

  pdl_launch_dependents ();
  pdl_wait ();                  /* the append before it */
  if (c >= stride)
    return;
  k16[pos * stride + c] = __float2half_rn (kv_q8_0_load (k, pos, stride, c));
  v16[pos * stride + c] = __float2half_rn (kv_q8_0_load (v, pos, stride, c));
}

void
llm_cuda_kv_dequantize_f16 (guint16 * k16, guint16 * v16, const void *k,
    const void *v, guint n_pos, guint stride, LlmCudaStream * stream)
{
  cudaStream_t s = llm_cuda_raw_stream (stream);
  unsigned int done = 0;

  g_return_if_fail (stride % 32 == 0);
  llm_cuda_use_device ();
  /* grid.y is at most 65535 positions a launch */
  while (done < n_pos) {
    unsigned int n = MIN (n_pos - done, 65535u);
    size_t skip = (size_t) done * stride;

    pdl_launch (kv_dequantize_kernel, dim3 (div_up (stride, KV_DEQ_THREADS),
            n), KV_DEQ_THREADS, 0, s, (__half *) k16 + skip,
        (__half *) v16 + skip, (const char *) k + done
        * kv_q8_0_row_bytes (stride), (const char *) v + done
        * kv_q8_0_row_bytes (stride), stride);
    done += n;
  }
}
