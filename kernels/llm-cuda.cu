/* LLMasOS - CUDA devices, streams and memory behind the C API of llm-cuda.h.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-cuda-private.cuh"
#include "llm-error.h"

#include <cuda_profiler_api.h>
#include <string.h>

/* The process's device (-1 before llm_cuda_device_open) and, per thread,
 * the device last made current on that thread. */
static int process_device = -1;
static int process_n_sm = 1;
static __thread int thread_device = -1;

static void
set_cuda_error (GError ** error, int code, cudaError_t e, const char *what)
{
  g_set_error (error, LLM_ERROR, code, "%s: %s (%s)", what,
      cudaGetErrorString (e), cudaGetErrorName (e));
}

void
llm_cuda_use_device (void)
{
  int dev = g_atomic_int_get (&process_device);

  /* A context adopted from GStreamer (llm-cuda-context.cu) replaces the
   * device's primary context on every thread. */
  if (llm_cuda_use_adopted_context (&thread_device))
    return;
  if (dev >= 0 && dev != thread_device) {
    if (cudaSetDevice (dev) == cudaSuccess)
      thread_device = dev;
  }
}

int
llm_cuda_n_sm (void)
{
  return g_atomic_int_get (&process_n_sm);
}

int
llm_cuda_device_count (GError ** error)
{
  int n = 0;
  cudaError_t e = cudaGetDeviceCount (&n);

  if (e == cudaErrorInsufficientDriver) {
    int rt = 0;

    cudaGetLastError ();
    cudaRuntimeGetVersion (&rt);
    g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
        "no CUDA device: no NVIDIA driver (libcuda.so.1), or one older than "
        "the CUDA %d.%d runtime built in (cudaErrorInsufficientDriver)",
        rt / 1000, rt % 1000 / 10);
    return 0;
  }
  if (e != cudaSuccess) {
    cudaGetLastError ();
    set_cuda_error (error, LLM_ERROR_UNSUPPORTED, e,
        "no CUDA device (cudaGetDeviceCount)");
    return 0;
  }
  if (n == 0)
    g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
        "no CUDA device: the driver reports none");
  return n;
}

gboolean
llm_cuda_device_open (int index, LlmCudaDeviceInfo * info, GError ** error)
{
  cudaDeviceProp prop;
  cudaError_t e;
  size_t free_b = 0, total_b = 0;
  int n = llm_cuda_device_count (error);

  if (n == 0)
    return FALSE;
  if (index < 0 || index >= n) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
        "no CUDA device %d: there %s %d (0 .. %d)", index,
        n == 1 ? "is" : "are", n, n - 1);
    return FALSE;
  }
  if ((e = cudaGetDeviceProperties (&prop, index)) != cudaSuccess) {
    set_cuda_error (error, LLM_ERROR_UNSUPPORTED, e,
        "cannot read the properties of the CUDA device");
    return FALSE;
  }
  /* The kernels are built for sm_90 plus compute_90 PTX, which the driver
   * compiles for newer chips but cannot run on older ones. */
  if (prop.major < 9) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
        "CUDA device %d (%s) has compute capability %d.%d; the kernels are "
        "built for 9.0 (Hopper) and newer", index, prop.name, prop.major,
        prop.minor);
    return FALSE;
  }
  /* The backend opens its device on every call: a context adopted on this
   * device stays (cudaSetDevice would make the primary one current). */
  if (llm_cuda_adopted_context_on (index)) {
    llm_cuda_use_device ();
    e = cudaSuccess;
  } else {
    llm_cuda_drop_adopted_context ();
    e = cudaSetDevice (index);
  }
  if (e != cudaSuccess
      || (e = cudaMemGetInfo (&free_b, &total_b)) != cudaSuccess) {
    cudaGetLastError ();
    set_cuda_error (error, LLM_ERROR_UNSUPPORTED, e,
        "cannot start CUDA device");
    return FALSE;
  }
  thread_device = index;
  g_atomic_int_set (&process_n_sm, prop.multiProcessorCount);
  g_atomic_int_set (&process_device, index);

  if (info != NULL) {
    memset (info, 0, sizeof (*info));
    info->index = index;
    g_strlcpy (info->name, prop.name, sizeof (info->name));
    info->cc_major = prop.major;
    info->cc_minor = prop.minor;
    info->n_sm = prop.multiProcessorCount;
    info->total_bytes = total_b;
    info->free_bytes = free_b;
    info->l2_bytes = (size_t) prop.l2CacheSize;
    cudaDriverGetVersion (&info->driver_version);
    cudaRuntimeGetVersion (&info->runtime_version);
  }
  return TRUE;
}

gboolean
llm_cuda_mem_info (size_t * free_bytes, size_t * total_bytes, GError ** error)
{
  size_t f = 0, t = 0;
  cudaError_t e;

  llm_cuda_use_device ();
  if ((e = cudaMemGetInfo (&f, &t)) != cudaSuccess) {
    set_cuda_error (error, LLM_ERROR_IO, e, "cudaMemGetInfo");
    return FALSE;
  }
  if (free_bytes != NULL)
    *free_bytes = f;
  if (total_bytes != NULL)
    *total_bytes = t;
  return TRUE;
}

/* --- streams --- */

LlmCudaStream *
llm_cuda_stream_new (GError ** error)
{
  LlmCudaStream *s = g_new0 (LlmCudaStream, 1);
  cudaError_t e;

  llm_cuda_use_device ();
  if ((e = cudaStreamCreateWithFlags (&s->stream,
              cudaStreamNonBlocking)) != cudaSuccess) {
    set_cuda_error (error, LLM_ERROR_IO, e, "cannot create a CUDA stream");
    g_free (s);
    return NULL;
  }
  s->device = g_atomic_int_get (&process_device);
  return s;
}

void
llm_cuda_stream_free (LlmCudaStream * stream)
{
  if (stream == NULL)
    return;
  llm_cuda_use_device ();
  cudaStreamSynchronize (stream->stream);
  if (stream->blas != NULL)
    cublasDestroy (stream->blas);
  cudaStreamDestroy (stream->stream);
  g_free (stream);
}

gboolean
llm_cuda_check (GError ** error)
{
  cudaError_t e = cudaGetLastError ();

  if (e != cudaSuccess) {
    set_cuda_error (error, LLM_ERROR_IO, e, "CUDA kernel launch failed");
    return FALSE;
  }
  return TRUE;
}

void
llm_cuda_profiler_range (gboolean on)
{
  if (on)
    cudaProfilerStart ();
  else
    cudaProfilerStop ();
}

gboolean
llm_cuda_stream_sync (LlmCudaStream * stream, GError ** error)
{
  cudaError_t e;

  llm_cuda_use_device ();
  if (!llm_cuda_check (error))
    return FALSE;
  if ((e = cudaStreamSynchronize (llm_cuda_raw_stream (stream))) !=
      cudaSuccess) {
    set_cuda_error (error, LLM_ERROR_IO, e, "CUDA stream failed");
    return FALSE;
  }
  return TRUE;
}

/* --- events --- */

struct _LlmCudaEvent
{
  cudaEvent_t event;            /* the CUDA event */
};

LlmCudaEvent *
llm_cuda_event_new (GError ** error)
{
  LlmCudaEvent *ev = g_new0 (LlmCudaEvent, 1);
  cudaError_t e;

  llm_cuda_use_device ();
  if ((e = cudaEventCreate (&ev->event)) != cudaSuccess) {
    set_cuda_error (error, LLM_ERROR_IO, e, "cannot create a CUDA event");
    g_free (ev);
    return NULL;
  }
  return ev;
}

void
llm_cuda_event_free (LlmCudaEvent * event)
{
  if (event == NULL)
    return;
  llm_cuda_use_device ();
  cudaEventDestroy (event->event);
  g_free (event);
}

gboolean
llm_cuda_event_record (LlmCudaEvent * event, LlmCudaStream * stream,
    GError ** error)
{
  cudaError_t e;

  llm_cuda_use_device ();
  if ((e = cudaEventRecord (event->event,
              llm_cuda_raw_stream (stream))) != cudaSuccess) {
    set_cuda_error (error, LLM_ERROR_IO, e, "cudaEventRecord");
    return FALSE;
  }
  return TRUE;
}

gboolean
llm_cuda_event_elapsed_ms (LlmCudaEvent * start, LlmCudaEvent * end,
    float *ms, GError ** error)
{
  cudaError_t e;

  llm_cuda_use_device ();
  if ((e = cudaEventSynchronize (end->event)) != cudaSuccess
      || (e = cudaEventElapsedTime (ms, start->event, end->event))
      != cudaSuccess) {
    set_cuda_error (error, LLM_ERROR_IO, e, "cudaEventElapsedTime");
    return FALSE;
  }
  return TRUE;
}

/* --- memory --- */

static void
set_no_memory (GError ** error, size_t bytes, const char *where)
{
  size_t f = 0, t = 0;

  if (cudaMemGetInfo (&f, &t) != cudaSuccess)
    f = t = 0;
  cudaGetLastError ();
  g_set_error (error, LLM_ERROR, LLM_ERROR_NO_MEMORY,
      "cannot allocate %" G_GSIZE_FORMAT " bytes (%.1f MiB) of %s on CUDA "
      "device %d: %" G_GSIZE_FORMAT " bytes free of %" G_GSIZE_FORMAT,
      bytes, bytes / 1048576.0, where, g_atomic_int_get (&process_device),
      f, t);
}

void *
llm_cuda_alloc (size_t bytes, GError ** error)
{
  void *p = NULL;

  llm_cuda_use_device ();
  if (cudaMalloc (&p, MAX (bytes, (size_t) 1)) != cudaSuccess) {
    set_no_memory (error, bytes, "device memory");
    return NULL;
  }
  return p;
}

void
llm_cuda_free (void *device_ptr)
{
  if (device_ptr == NULL)
    return;
  llm_cuda_use_device ();
  cudaFree (device_ptr);
}

void *
llm_cuda_host_alloc (size_t bytes, GError ** error)
{
  void *p = NULL;

  llm_cuda_use_device ();
  if (cudaMallocHost (&p, MAX (bytes, (size_t) 1)) != cudaSuccess) {
    set_no_memory (error, bytes, "page-locked host memory");
    return NULL;
  }
  return p;
}

void
llm_cuda_host_free (void *host_ptr)
{
  if (host_ptr == NULL)
    return;
  llm_cuda_use_device ();
  cudaFreeHost (host_ptr);
}

gboolean
llm_cuda_copy (void *dst, const void *src, size_t bytes, LlmCudaCopyKind kind,
    LlmCudaStream * stream, GError ** error)
{
  static const cudaMemcpyKind kinds[] = {
    cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice
  };
  cudaError_t e;

  g_return_val_if_fail ((unsigned) kind <= LLM_CUDA_DEVICE_TO_DEVICE, FALSE);
  if (bytes == 0)
    return TRUE;
  llm_cuda_use_device ();
  if (stream != NULL)
    e = cudaMemcpyAsync (dst, src, bytes, kinds[kind], stream->stream);
  else
    e = cudaMemcpy (dst, src, bytes, kinds[kind]);
  if (e != cudaSuccess) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_IO,
        "cannot copy %" G_GSIZE_FORMAT " bytes %s: %s (%s)", bytes,
        kind == LLM_CUDA_HOST_TO_DEVICE ? "to the GPU" :
        kind == LLM_CUDA_DEVICE_TO_HOST ? "from the GPU" : "on the GPU",
        cudaGetErrorString (e), cudaGetErrorName (e));
    return FALSE;
  }
  return TRUE;
}

gboolean
llm_cuda_memset (void *device_ptr, int value, size_t bytes,
    LlmCudaStream * stream, GError ** error)
{
  cudaError_t e;

  llm_cuda_use_device ();
  if (stream != NULL)
    e = cudaMemsetAsync (device_ptr, value, bytes, stream->stream);
  else
    e = cudaMemset (device_ptr, value, bytes);
  if (e != cudaSuccess) {
    set_cuda_error (error, LLM_ERROR_IO, e, "cudaMemset");
    return FALSE;
  }
  return TRUE;
}

/* --- dispatch --- */

gboolean
llm_cuda_dtype_supported (LlmDType dtype)
{
  switch (dtype) {
    case LLM_DTYPE_F32:
    case LLM_DTYPE_F16:
    case LLM_DTYPE_BF16:
    case LLM_DTYPE_Q8_0:
    case LLM_DTYPE_Q4_0:
      return TRUE;
    default:
      return FALSE;
  }
}

void
llm_cuda_matvec (float *out, const void *weight, LlmDType dtype,
    const float *x, guint rows, guint cols, LlmCudaStream * stream)
{
  switch (dtype) {
    case LLM_DTYPE_F32:
      llm_cuda_matvec_f32 (out, (const float *) weight, x, rows, cols, stream);
      break;
    case LLM_DTYPE_F16:
      llm_cuda_matvec_f16 (out, (const guint16 *) weight, x, rows, cols,
          stream);
      break;
    case LLM_DTYPE_BF16:
      llm_cuda_matvec_bf16 (out, (const guint16 *) weight, x, rows, cols,
          stream);
      break;
    case LLM_DTYPE_Q8_0:
      llm_cuda_matvec_q8_0 (out, weight, x, rows, cols, stream);
      break;
    case LLM_DTYPE_Q4_0:
      llm_cuda_matvec_q4_0 (out, weight, x, rows, cols, stream);
      break;
    default:
      g_critical ("llm_cuda_matvec: no CUDA kernel for %s weights",
          llm_dtype_name (dtype) ? llm_dtype_name (dtype) : "unknown");
  }
}
