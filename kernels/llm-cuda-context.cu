/* LLMasOS - which CUDA context our calls run in: the device's primary
 * context (the runtime's own), or one adopted from GStreamer's
 * gst.cuda.context (plugins/gstllmcudacontext.c, docs/cuda.md "Memory and
 * context").
 *
 * The few driver functions needed come through the runtime's
 * cudaGetDriverEntryPointByVersion rather than by linking libcuda.so.1, so
 * that the library still loads (and the tests still skip) on a machine
 * without the driver.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-cuda-private.cuh"
#include "llm-error.h"

#include <cuda.h>

typedef CUresult (*CtxSetCurrentFn) (CUcontext ctx);
typedef CUresult (*CtxGetCurrentFn) (CUcontext * ctx);
typedef CUresult (*CtxGetDeviceFn) (CUdevice * dev);
typedef CUresult (*PrimaryRetainFn) (CUcontext * ctx, CUdevice dev);
typedef CUresult (*PrimaryReleaseFn) (CUdevice dev);
typedef CUresult (*DeviceGetFn) (CUdevice * dev, int ordinal);

static struct
{
  CtxSetCurrentFn ctx_set_current;
  CtxGetCurrentFn ctx_get_current;
  CtxGetDeviceFn ctx_get_device;
  PrimaryRetainFn primary_retain;
  PrimaryReleaseFn primary_release;
  DeviceGetFn device_get;
} drv;

/* The adopted CUcontext (NULL: the open device's primary context), a
 * counter bumped on every change, and per thread the counter seen last and
 * the context last made current there. */
static void *adopted_context;
static int adopted_device = -1;
static int context_generation;
static __thread int thread_generation;
static __thread void *thread_context;

static gboolean
load_driver (GError ** error)
{
  static gsize once = 0;
  static gboolean ok;

  if (g_once_init_enter (&once)) {
    struct
    {
      const char *name;
      void **fn;
    } syms[] = {
      {"cuCtxSetCurrent", (void **) &drv.ctx_set_current},
      {"cuCtxGetCurrent", (void **) &drv.ctx_get_current},
      {"cuCtxGetDevice", (void **) &drv.ctx_get_device},
      {"cuDevicePrimaryCtxRetain", (void **) &drv.primary_retain},
      {"cuDevicePrimaryCtxRelease", (void **) &drv.primary_release},
      {"cuDeviceGet", (void **) &drv.device_get},
    };

    ok = TRUE;
    for (guint i = 0; i < G_N_ELEMENTS (syms); i++) {
      cudaDriverEntryPointQueryResult q;

      /* 12000: the ABI of each function as of CUDA 12.0 (the _v2 ones). */
      if (cudaGetDriverEntryPointByVersion (syms[i].name, syms[i].fn, 12000,
              cudaEnableDefault, &q) != cudaSuccess
          || q != cudaDriverEntryPointSuccess) {
        cudaGetLastError ();
        ok = FALSE;
      }
    }
    g_once_init_leave (&once, 1);
  }
  if (!ok)
    g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
        "the CUDA driver API is not available (no NVIDIA driver, "
        "libcuda.so.1)");
  return ok;
}

static void
set_cu_error (GError ** error, CUresult r, const char *what)
{
  g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED, "%s: CUresult %d",
      what, (int) r);
}

bool
llm_cuda_use_adopted_context (int *thread_device)
{
  int gen = g_atomic_int_get (&context_generation);
  void *ctx;

  if (gen != thread_generation) {
    /* the context changed: whatever this thread made current is stale */
    thread_generation = gen;
    thread_context = NULL;
    *thread_device = -1;
  }
  ctx = g_atomic_pointer_get (&adopted_context);
  if (ctx == NULL)
    return false;
  if (ctx != thread_context
      && drv.ctx_set_current ((CUcontext) ctx) == CUDA_SUCCESS)
    thread_context = ctx;
  return true;
}

void
llm_cuda_drop_adopted_context (void)
{
  if (g_atomic_pointer_get (&adopted_context) == NULL)
    return;
  g_atomic_pointer_set (&adopted_context, NULL);
  g_atomic_int_inc (&context_generation);
}

gboolean
llm_cuda_device_adopt_context (void *cu_context, GError ** error)
{
  CUdevice dev = -1;
  CUresult r;

  if (cu_context == NULL) {
    llm_cuda_drop_adopted_context ();
    return TRUE;
  }
  if (!load_driver (error))
    return FALSE;
  if ((r = drv.ctx_set_current ((CUcontext) cu_context)) != CUDA_SUCCESS
      || (r = drv.ctx_get_device (&dev)) != CUDA_SUCCESS) {
    set_cu_error (error, r, "cannot make the offered CUDA context current");
    return FALSE;
  }
  /* The same checks as for the primary context (compute capability),
   * then the offered context replaces it on every thread. */
  if (!llm_cuda_device_open ((int) dev, NULL, error))
    return FALSE;
  g_atomic_int_set (&adopted_device, (int) dev);
  g_atomic_pointer_set (&adopted_context, cu_context);
  g_atomic_int_inc (&context_generation);
  llm_cuda_use_device ();
  return TRUE;
}

unsigned int
llm_cuda_context_generation (void)
{
  return (unsigned int) g_atomic_int_get (&context_generation);
}

bool
llm_cuda_adopted_context_on (int index)
{
  return g_atomic_pointer_get (&adopted_context) != NULL
      && g_atomic_int_get (&adopted_device) == index;
}

void *
llm_cuda_current_context (void)
{
  CUcontext ctx = NULL;

  if (!load_driver (NULL))
    return NULL;
  llm_cuda_use_device ();
  if (drv.ctx_get_current (&ctx) != CUDA_SUCCESS)
    return NULL;
  return ctx;
}

void *
llm_cuda_primary_context_retain (int index, GError ** error)
{
  CUcontext ctx = NULL;
  CUdevice dev;
  CUresult r;

  if (!load_driver (error))
    return NULL;
  if ((r = drv.device_get (&dev, index)) != CUDA_SUCCESS
      || (r = drv.primary_retain (&ctx, dev)) != CUDA_SUCCESS) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
        "cannot retain the primary context of CUDA device %d: CUresult %d",
        index, (int) r);
    return NULL;
  }
  return ctx;
}

void
llm_cuda_primary_context_release (int index)
{
  CUdevice dev;

  if (load_driver (NULL) && drv.device_get (&dev, index) == CUDA_SUCCESS)
    drv.primary_release (dev);
}
