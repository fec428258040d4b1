/* LLMasOS - programmatic dependent launch (PDL, compute capability 9.0+)
 * for the kernels of the decode step.
 *
 * A kernel launched through pdl_launch() may start while the kernel
 * before it on the stream is still running (the CUDA graph of a decode
 * step keeps these edges): its blocks take the multiprocessors that the
 * previous kernel's tail leaves idle, issue the loads that depend on
 * nothing (the weights of a matvec), and only then wait in pdl_wait()
 * for the previous kernel to finish, its writes visible. So each kernel's
 * launch latency and first memory round trip hide behind the previous
 * kernel's tail instead of following it.
 *
 * Rules for a kernel launched so:
 * - it calls pdl_wait() before it reads anything an earlier kernel on the
 *   stream may have written, and before it writes anything (an earlier
 *   kernel may still read it); reads before the wait are only of data no
 *   kernel still in flight writes (weights, uploaded and synchronized
 *   before the decode starts);
 * - it calls pdl_launch_dependents() early: the next kernel may then be
 *   scheduled once every block of this one has started. That is only
 *   scheduling: the next kernel's pdl_wait() still waits for this whole
 *   grid to complete, and since each kernel completes after its own wait,
 *   the whole chain before it too.
 * Both instructions are no-ops in a kernel launched the ordinary way.
 *
 * LLMASOS_CUDA_PDL=0 in the environment launches the ordinary way (for
 * comparisons). Without PDL on the device (before compute capability 9.0)
 * or on the legacy default stream, the launch is an ordinary one.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "llm-cuda-private.cuh"

#include <stdlib.h>
#include <string.h>

/* Waits for the previous kernel on the stream to complete, its memory
 * visible (griddepcontrol.wait). */
static __device__ __forceinline__ void
pdl_wait (void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile ("griddepcontrol.wait;":::"memory");
#endif
}

/* Lets the next kernel on the stream be scheduled once every block of
 * this one has called this (or exited). */
static __device__ __forceinline__ void
pdl_launch_dependents (void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile ("griddepcontrol.launch_dependents;":::"memory");
#endif
}

/* TRUE if kernels may be launched with PDL (checked once per file that
 * includes this: the environment and the device of the first launch). */
static inline bool
pdl_enabled (void)
{
  static int enabled = -1;

  if (enabled < 0) {
    const char *env = getenv ("LLMASOS_CUDA_PDL");
    int dev = 0, major = 0;

    cudaGetDevice (&dev);
    cudaDeviceGetAttribute (&major, cudaDevAttrComputeCapabilityMajor, dev);
    enabled = major >= 9 && (env == NULL || strcmp (env, "0") != 0);
  }
  return enabled > 0;
}

/* kernel<<<grid, block, smem, s>>> (args...), with PDL where it can. */
template <typename... KArgs, typename... Args>
static inline void
pdl_launch (void (*kernel) (KArgs...), dim3 grid, dim3 block, size_t smem,
    cudaStream_t s, Args... args)
{
  if (s != NULL && pdl_enabled ()) {
    cudaLaunchConfig_t cfg = { };
    cudaLaunchAttribute attr = { };

    attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr.val.programmaticStreamSerializationAllowed = 1;
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = s;
    cfg.attrs = &attr;
    cfg.numAttrs = 1;
    if (cudaLaunchKernelEx (&cfg, kernel, ((KArgs) args)...) == cudaSuccess)
      return;
    cudaGetLastError ();        /* refused: the ordinary way below */
  }
  kernel <<<grid, block, smem, s>>> (((KArgs) args)...);
}
