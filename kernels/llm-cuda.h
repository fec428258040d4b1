/* LLMasOS - the CUDA backend's plain C API.
 *
 * Nothing here names a CUDA type: device memory is a plain pointer that only
 * the functions below (and the kernels) may dereference, a stream is the
 * opaque LlmCudaStream, element types are LlmDType. core/ and plugins/
 * include this header, never a CUDA one, and link libllmasos-cuda (which
 * carries cudart statically and needs libcublas.so.13 at run time).
 *
 * Threads: the device chosen by llm_cuda_device_open() is process-wide;
 * every function here makes it current on the calling thread first, so
 * GStreamer's streaming threads need no set-up of their own.
 *
 * Errors: set-up, memory and copies report through GError (LLM_ERROR).
 * Kernel launches are asynchronous and return nothing: a bad launch or a
 * fault inside a kernel surfaces at the next llm_cuda_stream_sync() or
 * llm_cuda_check(). Launches check their arguments with g_return_if_fail
 * (programming errors).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <stddef.h>
#include "llm-dtype.h"

G_BEGIN_DECLS

/* --- devices --- */

/* What llm_cuda_device_open() found. */
typedef struct {
  int index;                    /* CUDA device number */
  char name[256];               /* e.g. "NVIDIA H100 80GB HBM3" */
  int cc_major;                 /* compute capability, 9.0 for Hopper */
  int cc_minor;
  int n_sm;                     /* streaming multiprocessors */
  size_t total_bytes;           /* device memory */
  size_t free_bytes;            /* free when the device was opened */
  size_t l2_bytes;              /* L2 cache */
  int driver_version;           /* CUDA version the driver supports, 13000 = 13.0 */
  int runtime_version;          /* CUDA runtime linked in */
} LlmCudaDeviceInfo;

/* Number of usable CUDA devices; 0 (and @error set, saying why: no driver,
 * no device, driver too old) when there is none. */
int llm_cuda_device_count (GError ** error);

/* Makes device @index the process's device and fills @info (may be NULL).
 * LLM_ERROR_UNSUPPORTED naming the cause if there is no such device or the
 * kernels were not built for it. May be called again (same or other
 * device); memory and streams belong to the device they were made on. */
gboolean llm_cuda_device_open (int index, LlmCudaDeviceInfo * info,
    GError ** error);

/* Memory free and total on the open device, now. */
gboolean llm_cuda_mem_info (size_t * free_bytes, size_t * total_bytes,
    GError ** error);

/* --- streams --- */

/* A CUDA stream (non-blocking with respect to the legacy default stream)
 * with its own cuBLAS handle, made on first use. Every launch and copy
 * takes one; NULL means the default stream. */
typedef struct _LlmCudaStream LlmCudaStream;

LlmCudaStream *llm_cuda_stream_new (GError ** error);
void llm_cuda_stream_free (LlmCudaStream * stream);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (LlmCudaStream, llm_cuda_stream_free)
/* Waits until everything queued on @stream has run; FALSE with the first
 * error of a launch or a kernel since the last check. */
gboolean llm_cuda_stream_sync (LlmCudaStream * stream, GError ** error);
/* The last launch error without waiting (cudaGetLastError). */
gboolean llm_cuda_check (GError ** error);

/* Markers on a stream, to time what runs on the GPU between two of them. */
typedef struct _LlmCudaEvent LlmCudaEvent;

LlmCudaEvent *llm_cuda_event_new (GError ** error);
void llm_cuda_event_free (LlmCudaEvent * event);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (LlmCudaEvent, llm_cuda_event_free)
gboolean llm_cuda_event_record (LlmCudaEvent * event, LlmCudaStream * stream,
    GError ** error);
/* Milliseconds of GPU time from @start to @end, waiting for @end. */
gboolean llm_cuda_event_elapsed_ms (LlmCudaEvent * start, LlmCudaEvent * end,
    float *ms, GError ** error);

/* --- memory --- */

/* @bytes of device memory, or NULL with LLM_ERROR_NO_MEMORY naming the
 * bytes asked for and the bytes free. */
void *llm_cuda_alloc (size_t bytes, GError ** error);
void llm_cuda_free (void *device_ptr);
/* Page-locked host memory (fast, truly asynchronous copies). */
void *llm_cuda_host_alloc (size_t bytes, GError ** error);
void llm_cuda_host_free (void *host_ptr);

typedef enum {
  LLM_CUDA_HOST_TO_DEVICE,
  LLM_CUDA_DEVICE_TO_HOST,
  LLM_CUDA_DEVICE_TO_DEVICE,
} LlmCudaCopyKind;

/* Copies @bytes; with a @stream the copy is queued on it (the host side must
 * stay valid until the stream is synced), with NULL it is done on return. */
gboolean llm_cuda_copy (void *dst, const void *src, size_t bytes,
    LlmCudaCopyKind kind, LlmCudaStream * stream, GError ** error);
/* Sets @bytes of device memory to @value (queued like llm_cuda_copy). */
gboolean llm_cuda_memset (void *device_ptr, int value, size_t bytes,
    LlmCudaStream * stream, GError ** error);

/* --- kernels ---
 * Every pointer below is device memory. Activations are F32. A weight
 * matrix of @rows x @cols is stored row after row, each row whole blocks of
 * its dtype exactly as in a GGUF file (core/llm-dtype.h). */

/* TRUE if matvec and embedding_gather take weights of @dtype: F32, F16,
 * BF16, Q8_0, Q4_0. */
gboolean llm_cuda_dtype_supported (LlmDType dtype);

/* out[t][:] = row tokens[t] of @table (@n_vocab rows of @dim, @dtype),
 * dequantized; a token outside [0, n_vocab) gives a row of zeros (callers
 * check ids on the host first). */
void llm_cuda_embedding_gather (float *out, const void *table, LlmDType dtype,
    guint n_vocab, guint dim, const gint32 * tokens, guint n_tokens,
    LlmCudaStream * stream);

/* For each of @n_rows rows of @n: out = x / sqrt(mean(x^2) + eps) * weight;
 * @weight (@n elements) is F32, F16 or BF16. @out may be @x. */
void llm_cuda_rmsnorm_forward (float *out, const float *x, const void *weight,
    LlmDType weight_dtype, guint n, guint n_rows, float eps,
    LlmCudaStream * stream);

/* Rotates, in place, @n_heads heads of @head_dim in each of @n_tokens rows
 * (@row_stride floats apart); row t is at position @pos0 + t. Pairs
 * (2i, 2i+1) if @interleaved (GPT-J / llama.cpp's original layout), else
 * (i, i + head_dim/2) (rotate-half, Hugging Face's); the angle is
 * pos * theta^(-2i/head_dim), computed as llm_rope() does. */
void llm_cuda_rope_apply (float *x, guint n_tokens, size_t row_stride,
    guint n_heads, guint head_dim, guint pos0, float theta,
    gboolean interleaved, LlmCudaStream * stream);

/* out[i] = silu(gate[i]) * up[i]; @out may be @gate or @up. */
void llm_cuda_swiglu_forward (float *out, const float *gate, const float *up,
    size_t n, LlmCudaStream * stream);

/* out[r] = dot(row r of @weight, x), r < @rows; one function per dtype
 * (@cols a multiple of 32 for the block formats) and a dispatcher. Each
 * weight byte is read once; rows whose byte size is a multiple of 16 (and
 * a 16-byte aligned @weight) take the 16-byte-load path. */
void llm_cuda_matvec_f32 (float *out, const float *weight, const float *x,
    guint rows, guint cols, LlmCudaStream * stream);
void llm_cuda_matvec_f16 (float *out, const guint16 * weight, const float *x,
    guint rows, guint cols, LlmCudaStream * stream);
void llm_cuda_matvec_bf16 (float *out, const guint16 * weight,
    const float *x, guint rows, guint cols, LlmCudaStream * stream);
void llm_cuda_matvec_q8_0 (float *out, const void *weight, const float *x,
    guint rows, guint cols, LlmCudaStream * stream);
void llm_cuda_matvec_q4_0 (float *out, const void *weight, const float *x,
    guint rows, guint cols, LlmCudaStream * stream);
void llm_cuda_matvec (float *out, const void *weight, LlmDType dtype,
    const float *x, guint rows, guint cols, LlmCudaStream * stream);

/* Attention of one query position over @n_pos cached positions (0 ..
 * n_pos - 1, the query's own included), grouped-query: query head h uses
 * KV head h / (n_heads / n_kv_heads); scale 1/sqrt(head_dim).
 * @q: [n_heads * head_dim]; @out: [n_heads * head_dim];
 * @k, @v: position p at p * kv_stride elements, [n_kv_heads * head_dim]
 * each, of @kv_dtype (F32 or F16);
 * @scratch: llm_cuda_attention_decode_scratch_bytes() of device memory.
 * The positions are split into chunks that run in parallel (flash-decoding)
 * and a second pass merges the chunks' partial softmaxes, so that a single
 * sequence fills the GPU. */
void llm_cuda_attention_decode (float *out, const float *q, const void *k,
    const void *v, LlmDType kv_dtype, guint n_pos, guint n_heads,
    guint n_kv_heads, guint head_dim, size_t kv_stride, float *scratch,
    LlmCudaStream * stream);
size_t llm_cuda_attention_decode_scratch_bytes (guint n_heads,
    guint head_dim);

/* For each of @n_rows rows of @n floats: out_index[row] = the index of the
 * largest value, the lowest on ties; NaNs are skipped (0 if all are). */
void llm_cuda_argmax (gint32 * out_index, const float *x, guint n,
    guint n_rows, LlmCudaStream * stream);

/* dst[i] = @src[i] rounded to nearest even, @dst_dtype F16 or BF16 (for
 * llm_cuda_matmul_half's activations, and F16 KV caches). */
void llm_cuda_convert_f32 (void *dst, LlmDType dst_dtype, const float *src,
    size_t n, LlmCudaStream * stream);

/* Prefill through cuBLAS: out[t][r] = dot(row r of @weight, x[t]) for
 * @n_tokens rows of @x, @weight and @x both F16 or both BF16 (convert @x
 * with llm_cuda_convert_f32), F32 accumulation and output.
 * LLM_ERROR_UNSUPPORTED if cuBLAS refuses. */
gboolean llm_cuda_matmul_half (float *out, const void *weight,
    const void *x, LlmDType dtype, guint rows, guint cols, guint n_tokens,
    LlmCudaStream * stream, GError ** error);

G_END_DECLS
