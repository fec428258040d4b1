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

/* --- contexts (GStreamer's gst.cuda.context, docs/cuda.md) ---
 * CUcontext values travel as plain pointers. By default every function
 * here runs in the primary context of the open device, the CUDA
 * runtime's own. */

/* Device @index's primary context, retained (initialised if need be):
 * what we offer GStreamer's CUDA elements, so that they run in our
 * context. Release with llm_cuda_primary_context_release (@index). */
void *llm_cuda_primary_context_retain (int index, GError ** error);
void llm_cuda_primary_context_release (int index);

/* Makes @cu_context (another library's CUcontext, e.g. the handle of a
 * GstCudaContext a neighbour offered) the context of every function here,
 * on every thread, instead of the primary context; opens its device as
 * llm_cuda_device_open() does. Device memory, streams and cuBLAS handles
 * belong to the context they were made in: adopt before making any.
 * NULL goes back to the primary context; llm_cuda_device_open() keeps a
 * context adopted on the device it opens and drops one on another.
 * LLM_ERROR_UNSUPPORTED if the context cannot be made current or its
 * device is not one the kernels run on. The caller keeps @cu_context
 * alive while it is adopted. */
gboolean llm_cuda_device_adopt_context (void *cu_context, GError ** error);

/* The context the calling thread's next call here runs in (NULL when
 * there is no driver). */
void *llm_cuda_current_context (void);

/* Bumped whenever the context of the calls here changes (adopting one,
 * going back to the primary context): long-lived resources made in one
 * context compare it to know they belong to a past one. */
unsigned int llm_cuda_context_generation (void);

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

/* Starts (@on) or stops the profiler's collection (cudaProfilerStart /
 * Stop), so that `ncu --profile-from-start off` sees only what runs in
 * between. */
void llm_cuda_profiler_range (gboolean on);

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

/* --- packed weight matrices ---
 * Weights are uploaded once, so the device keeps them in the layout its
 * matvec reads fastest. F32, F16 and BF16 keep the plain one; Q8_0 and
 * Q4_0 put every quant of the matrix first (rows 16-byte aligned) and the
 * blocks' half scales after them (kernels/matvec-packed.cuh). Upload the
 * GGUF bytes, llm_cuda_matrix_pack() them into memory of
 * llm_cuda_matrix_bytes(), free the upload. @cols a multiple of 32 for
 * Q8_0 and Q4_0; any @rows.
 *
 * The Q8_0 and Q4_0 matvecs round x to Q8_0 (per 32 values, as
 * llm_quantize_row does) and take integer dot products, as llama.cpp's
 * GPU matvecs do: on random data 4e-3 relative L2 from the product with
 * the exact x, the size of Q8_0's own rounding of weights. F32, F16 and
 * BF16 use x as it is. */

/* Bytes of the packed layout; 0 for a dtype without one or @cols not a
 * multiple of its block. */
size_t llm_cuda_matrix_bytes (LlmDType dtype, guint rows, guint cols);
/* TRUE when @dtype's packed layout is its GGUF one (packing is a copy, so
 * the caller may use the upload as it is). */
gboolean llm_cuda_matrix_layout_is_gguf (LlmDType dtype);
/* @dst (llm_cuda_matrix_bytes()) = @gguf_src (rows of GGUF blocks), both
 * device memory, @dst != @gguf_src; queued on @stream. Errors: dtype
 * without a packed layout (LLM_ERROR_UNSUPPORTED), @cols not whole
 * blocks, NULL or equal pointers (LLM_ERROR_INPUT), a failed launch. */
gboolean llm_cuda_matrix_pack (void *dst, const void *gguf_src,
    LlmDType dtype, guint rows, guint cols, LlmCudaStream * stream,
    GError ** error);

/* out[r] = dot(row r of @packed, x), r < @rows. */
void llm_cuda_matvec_packed (float *out, const void *packed, LlmDType dtype,
    const float *x, guint rows, guint cols, LlmCudaStream * stream);
/* out[r] += dot(row r of @packed, x): the residual add fused (wo,
 * w_down). */
void llm_cuda_matvec_packed_add (float *out, const void *packed,
    LlmDType dtype, const float *x, guint rows, guint cols,
    LlmCudaStream * stream);
/* Batched decode (continuous batching, small prefill): out[t * rows + r]
 * = dot(row r, x + t * cols) for t < @n_x (1 .. 8), the weights read
 * once for all the vectors. */
void llm_cuda_matvec_packed_multi (float *out, const void *packed,
    LlmDType dtype, const float *x, guint n_x, guint rows, guint cols,
    LlmCudaStream * stream);
/* --- the decode step's fused kernels (one token) ---
 * Each does in one launch what two kernels above do one after the other,
 * so that the step has fewer kernel boundaries (each costs a few
 * microseconds of ramp-up and tail at batch 1). The matvecs return FALSE,
 * launching nothing, where they cannot fuse for that dtype or shape; the
 * caller then launches the two kernels (also for 0 rows or columns, a
 * norm not F32/F16/BF16, or an x too long for shared memory); @out is
 * never @x. LLMASOS_CUDA_FUSE in the environment picks which of them the
 * forward pass uses (kernels/llm-forward-cuda.c, docs/cuda.md). */

/* out = W (rmsnorm(x) * norm): llm_cuda_rmsnorm_forward() then
 * llm_cuda_matvec_packed(). @norm: @cols elements of @norm_dtype (F32,
 * F16, BF16). F32/F16/BF16 weights apply the rmsnorm's scale to the dot
 * product rather than to x (the same value, other rounding); Q8_0/Q4_0
 * normalize x before they round it to Q8_0. */
gboolean llm_cuda_matvec_packed_rmsnorm (float *out, const void *packed,
    LlmDType dtype, const float *x, const void *norm, LlmDType norm_dtype,
    float eps, guint rows, guint cols, LlmCudaStream * stream);
/* out[i] = silu(h[i]) * h[i + rows / 2] for i < rows / 2, h = W
 * (rmsnorm(x) * norm): the stacked gate|up projection with the SwiGLU
 * after it (llm_cuda_matvec_packed_rmsnorm() then llm_cuda_swiglu_rows());
 * @norm NULL: h = W x (no rmsnorm). F32, F16 and BF16 weights; @rows
 * even. */
gboolean llm_cuda_matvec_packed_rmsnorm_swiglu (float *out,
    const void *packed, LlmDType dtype, const float *x, const void *norm,
    LlmDType norm_dtype, float eps, guint rows, guint cols,
    LlmCudaStream * stream);
/* out[r] += dot(row r of W, silu(g) * u), @gate_up = [g | u] (2 @cols
 * floats): llm_cuda_swiglu_rows() then llm_cuda_matvec_packed_add() (the
 * down projection). Q8_0 and Q4_0 weights. */
gboolean llm_cuda_matvec_packed_swiglu_add (float *out, const void *packed,
    LlmDType dtype, const float *gate_up, guint rows, guint cols,
    LlmCudaStream * stream);
/* An rmsnorm split between the matvec that writes its input and the one
 * that reads its output, so that no kernel of its own runs between them
 * (the decode step's residual matvecs, wo and w_down, and the matvecs
 * after them): llm_cuda_matvec_packed_add_norm() adds W x into @out as
 * llm_cuda_matvec_packed_add() and then, of the new out, writes xn[r] =
 * out[r] * norm[r] and adds the squares out[r]^2 into @ss, an array of
 * LLM_CUDA_SS_PARTS partial sums, zeroed before (rows spread over them,
 * so that the atomics do not queue on one address);
 * llm_cuda_matvec_packed_scaled() then takes xn and @ss and computes W
 * (xn / sqrt(sum(ss) / cols + eps)), i.e. W (rmsnorm(out) * norm), the
 * scale applied to the dot products; with @gated (any of the five, @rows
 * even) the SwiGLU after a stacked gate|up, as
 * llm_cuda_matvec_packed_rmsnorm_swiglu(). llm_cuda_rmsnorm_finish()
 * applies the scale to xn itself, for a consumer that cannot. All five
 * dtypes; @norm F32, F16 or BF16. */
#define LLM_CUDA_SS_PARTS 32
gboolean llm_cuda_matvec_packed_add_norm (float *out, const void *packed,
    LlmDType dtype, const float *x, guint rows, guint cols, float *xn,
    const void *norm, LlmDType norm_dtype, float *ss,
    LlmCudaStream * stream);
gboolean llm_cuda_matvec_packed_scaled (float *out, const void *packed,
    LlmDType dtype, const float *xn, const float *ss, float eps, guint rows,
    guint cols, gboolean gated, LlmCudaStream * stream);
void llm_cuda_rmsnorm_finish (float *out, const float *xn, const float *ss,
    guint n, float eps, LlmCudaStream * stream);
/* For the Q8_0 / Q4_0 matvecs: x rounded to Q8_0 once into @xq (device
 * memory of llm_cuda_quantized_x_bytes(@cols)), in the order the matvec
 * of @dtype reads it, rather than by every block of the matvec; x on the
 * way in is rmsnorm(x) * @norm where @norm is not NULL, or silu(g) * u of
 * @x = [g | u] (2 @cols floats) where @swiglu. FALSE (nothing launched)
 * for another @dtype, @cols not a multiple of 32, or both @norm and
 * @swiglu. */
size_t llm_cuda_quantized_x_bytes (guint cols);
gboolean llm_cuda_quantize_x (void *xq, LlmDType dtype, const float *x,
    guint cols, const void *norm, LlmDType norm_dtype, float eps,
    gboolean swiglu, LlmCudaStream * stream);
/* out[r] (+ if @add)= dot(row r of @packed, the x in @xq), Q8_0 / Q4_0;
 * FALSE for another @dtype. */
gboolean llm_cuda_matvec_packed_quantized (float *out, const void *packed,
    LlmDType dtype, const void *xq, guint rows, guint cols, gboolean add,
    LlmCudaStream * stream);
/* One token's row @qkv = [q (n_heads heads) | k (n_kv_heads) | v
 * (n_kv_heads)], heads of @head_dim: rotates q and k in place as
 * llm_cuda_rope_apply_at() and stores the rotated k and v at position
 * *@pos_device of @k_cache / @v_cache (rows of n_kv_heads * head_dim, F32
 * or F16) as llm_cuda_kv_store() does; the caller keeps *@pos_device
 * within the cache (the forward pass checks the length on the host). */
void llm_cuda_rope_kv_store_at (float *qkv, guint n_heads, guint n_kv_heads,
    guint head_dim, void *k_cache, void *v_cache, LlmDType kv_dtype,
    const gint32 * pos_device, float theta, gboolean interleaved,
    LlmCudaStream * stream);

/* For prefill through cuBLAS: @dst (rows * cols halves) = @packed as F16,
 * each weight the F16 rounding of what llm_dequantize_row() gives. */
void llm_cuda_matrix_dequantize_f16 (guint16 * dst, const void *packed,
    LlmDType dtype, guint rows, guint cols, LlmCudaStream * stream);

/* Attention of one query position over @n_pos cached positions (0 ..
 * n_pos - 1, the query's own included), grouped-query: query head h uses
 * KV head h / (n_heads / n_kv_heads); scale 1/sqrt(head_dim).
 * @q: [n_heads * head_dim]; @out: [n_heads * head_dim];
 * @k, @v: position p at p * kv_stride elements, [n_kv_heads * head_dim]
 * each, of @kv_dtype (F32, F16, or Q8_0 as llm_cuda_kv_store() lays it
 * out, @kv_stride then a multiple of 32);
 * @scratch: llm_cuda_attention_decode_scratch_bytes() of device memory,
 * zeroed before its first use (llm_cuda_memset) and left for the next
 * call as the kernels leave it (they keep counts in it).
 * The positions are split into chunks that run in parallel (flash-decoding)
 * and a second pass merges the chunks' partial softmaxes, so that a single
 * sequence fills the GPU. */
void llm_cuda_attention_decode (float *out, const float *q, const void *k,
    const void *v, LlmDType kv_dtype, guint n_pos, guint n_heads,
    guint n_kv_heads, guint head_dim, size_t kv_stride, float *scratch,
    LlmCudaStream * stream);
size_t llm_cuda_attention_decode_scratch_bytes (guint n_heads,
    guint head_dim);

/* llm_cuda_attention_decode() for a step captured once as a CUDA graph:
 * the position count, the query's position + 1, is read from device memory
 * (@n_pos_device, one gint32) when the kernel runs. The grid is sized for a
 * cache of @max_pos positions; a count above @max_pos is clamped to it and
 * one of 0 or less gives zeros. @scale multiplies q . k (1/sqrt(head_dim)
 * for Llama, 1/sqrt(query_pre_attn_scalar) for Gemma); @window, if not 0,
 * limits the query at position p to p - window + 1 .. p (sliding window).
 * @scratch: llm_cuda_attention_decode_at_scratch_bytes() of device memory,
 * zeroed once as for llm_cuda_attention_decode(). Chunks past the count exit at once, so a short context costs little. */
void llm_cuda_attention_decode_at (float *out, const float *q, const void *k,
    const void *v, LlmDType kv_dtype, const gint32 * n_pos_device,
    guint max_pos, guint n_heads, guint n_kv_heads, guint head_dim,
    size_t kv_stride, float scale, guint window, float *scratch,
    LlmCudaStream * stream);
size_t llm_cuda_attention_decode_at_scratch_bytes (guint n_heads,
    guint head_dim, guint max_pos);

/* llm_cuda_attention_decode_at() with the step's RoPE and cache append
 * done by the attention kernel itself (llm_cuda_rope_kv_store_at's work),
 * so that the decode step launches one kernel for all three: @qkv is the
 * new token's unrotated q|k|v row (q: n_heads * head_dim, then k and v:
 * n_kv_heads * head_dim each); q and k are rotated by the new position
 * (the count - 1) with @theta (@interleaved pairs or rotate-half), and k
 * and v written at that position of the caches. Only the fast path of the
 * F16 and Q8_0 caches does this (head_dim 64, 128 or 256, up to 8 query
 * heads a KV head, 16-byte aligned; Q8_0 @kv_stride a multiple of 64):
 * FALSE, nothing launched, for anything else. @qkv
 * itself is not changed. The chunks are merged by the last block of each
 * KV head to finish, so no second kernel runs: @scratch keeps a count per
 * KV head between calls (zeroed once before the first). The chunks that
 * do not hold the new position load their first rows before they wait
 * for the kernel before (programmatic dependent launch): rows other than
 * the new one must not be written by anything queued since the last
 * attention launch (a decode step writes only the new row;
 * LLMASOS_CUDA_ATT_EARLY=0 turns this off). */
gboolean llm_cuda_attention_decode_rope_at (float *out, const float *qkv,
    void *k_cache, void *v_cache, LlmDType kv_dtype,
    const gint32 * n_pos_device, guint max_pos, guint n_heads,
    guint n_kv_heads, guint head_dim, size_t kv_stride, float scale,
    guint window, float theta, gboolean interleaved, float *scratch,
    LlmCudaStream * stream);

/* Causal attention of @n_tokens queries at positions @pos0 .. pos0 +
 * n_tokens - 1 (prompt prefill) over a cache that already holds positions
 * 0 .. pos0 + n_tokens - 1: query t sees positions 0 .. pos0 + t (within
 * @window if not 0, as in llm_cuda_attention_decode_at()), grouped-query.
 * @q: [n_tokens] rows @q_stride floats apart, [n_heads * head_dim] each;
 * @out: [n_tokens][n_heads * head_dim]; @k, @v as in
 * llm_cuda_attention_decode(). @head_dim at most 256. Fused (flash
 * attention): tensor cores for an F16 cache with head_dim 64, 128 or 256,
 * an F32 tiled kernel otherwise. */
void llm_cuda_attention_prefill (float *out, const float *q, size_t q_stride,
    const void *k, const void *v, LlmDType kv_dtype, guint pos0,
    guint n_tokens, guint n_heads, guint n_kv_heads, guint head_dim,
    size_t kv_stride, float scale, guint window, LlmCudaStream * stream);

/* For each of @n_rows rows of @n floats: out_index[row] = the index of the
 * largest value, the lowest on ties; NaNs are skipped (0 if all are). */
void llm_cuda_argmax (gint32 * out_index, const float *x, guint n,
    guint n_rows, LlmCudaStream * stream);

/* Samples one token from each of @n_rows rows of @n_vocab F32 logits into
 * @ids_out_device, as llm_sampler_sample_with_coin() does on the CPU with
 * the same parameters (no repetition penalty: apply it to the logits
 * first) and @coins_device[row] as the uniform in [0, 1) (drawn on the
 * host with llm_sampler_draw_coin(); may be NULL when @temperature <= 0,
 * greedy). @top_k 0 or >= n_vocab, @top_p >= 1 and @min_p <= 0 are off.
 * Same choice as the CPU except when the coin lies within rounding of a
 * cumulative weight (kernels/sample_logits.cu). @scratch:
 * llm_cuda_sample_scratch_bytes() of device memory. One cooperative
 * launch per group of rows; @n_vocab up to 1M or so on an H100. */
void llm_cuda_sample (gint32 * ids_out_device, const float *logits,
    guint n_vocab, guint n_rows, float temperature, guint top_k, float top_p,
    float min_p, const double *coins_device, void *scratch,
    LlmCudaStream * stream);
size_t llm_cuda_sample_scratch_bytes (guint n_vocab, guint n_rows);

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

/* Fills @dst with @n_elements normal random values (@mean, @std) stored as
 * @dtype: F32, F16, BF16, or whole Q8_0 / Q4_0 blocks (@n_elements a
 * multiple of 32) quantized as llm_quantize_row() does. Element i depends
 * only on (@seed, i): the same seed gives the same bytes
 * (kernels/fill_random.cu; benchmark weights). */
void llm_cuda_fill_normal (void *dst, LlmDType dtype, guint64 n_elements,
    float mean, float std, guint64 seed, LlmCudaStream * stream);

/* --- the decode step (kernels the forward pass adds to the above) --- */

/* Like llm_cuda_rope_apply, the first row's position read from device
 * memory (one gint32) when the kernel runs: a captured graph replays it at
 * each step's position. */
void llm_cuda_rope_apply_at (float *x, guint n_tokens, size_t row_stride,
    guint n_heads, guint head_dim, const gint32 * pos0_device, float theta,
    gboolean interleaved, LlmCudaStream * stream);

/* For @n_rows rows of 2 @ffn floats (gate, then up): out[t][i] =
 * silu(gate_up[t][i]) * gate_up[t][ffn + i], rows of @ffn. */
void llm_cuda_swiglu_rows (float *out, const float *gate_up, guint n_rows,
    guint ffn, LlmCudaStream * stream);

/* x[i] += y[i] (the residual connections). */
void llm_cuda_vector_add (float *x, const float *y, size_t n,
    LlmCudaStream * stream);

/* Appends @n_tokens rows of keys @k and values @v (F32, @src_stride floats
 * apart, @kv_dim used) to one layer's cache (@kv_dtype F32 or F16, rows of
 * @kv_dim; or Q8_0, @kv_dim a multiple of 32, rows of kv_dim int8 then
 * kv_dim / 32 float scales, kernels/kv-q8_0.cuh) at positions pos0 ..
 * pos0 + n_tokens - 1; pos0 is read from @pos0_device when that is not
 * NULL. */
void llm_cuda_kv_store (void *k_cache, void *v_cache, LlmDType kv_dtype,
    const float *k, const float *v, size_t src_stride, guint n_tokens,
    guint kv_dim, guint pos0, const gint32 * pos0_device,
    LlmCudaStream * stream);
/* Positions 0 .. @n_pos - 1 of one layer's Q8_0 caches @k / @v (rows of
 * @stride elements, a multiple of 32) into the F16 caches @k16 / @v16 of
 * the same stride: what the prefill attention reads. */
void llm_cuda_kv_dequantize_f16 (guint16 * k16, guint16 * v16,
    const void *k, const void *v, guint n_pos, guint stride,
    LlmCudaStream * stream);

/* --- CUDA graphs --- */

/* Work queued on @stream between begin and end is recorded, not run; end
 * returns it ready to launch (LLM_ERROR_IO naming the CUDA error if
 * something in it cannot be captured). */
typedef struct _LlmCudaGraph LlmCudaGraph;

gboolean llm_cuda_graph_begin (LlmCudaStream * stream, GError ** error);
LlmCudaGraph *llm_cuda_graph_end (LlmCudaStream * stream, GError ** error);
gboolean llm_cuda_graph_launch (LlmCudaGraph * graph, LlmCudaStream * stream,
    GError ** error);
void llm_cuda_graph_free (LlmCudaGraph * graph);

G_END_DECLS
