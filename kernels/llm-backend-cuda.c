/* LLMasOS - the CUDA backend: core's backend table filled with the
 * functions of kernels/.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-backend-cuda.h"

#include "llm-cuda.h"
#include "llm-error.h"
#include "llm-forward-cuda.h"

static gint
cuda_device_count (GError ** error)
{
  return llm_cuda_device_count (error);
}

static gchar *
cuda_device_describe (gint index)
{
  LlmCudaDeviceInfo info;

  if (!llm_cuda_device_open (index, &info, NULL))
    return g_strdup_printf ("CUDA device %d (unavailable)", index);
  return g_strdup_printf ("%s (cuda:%d, compute capability %d.%d, %.1f GiB)",
      info.name, index, info.cc_major, info.cc_minor,
      info.total_bytes / (double) (1 << 30));
}

static gpointer
cuda_alloc (gint index, gsize bytes, GError ** error)
{
  if (!llm_cuda_device_open (index, NULL, error))
    return NULL;
  return llm_cuda_alloc (bytes, error);
}

static void
cuda_free (gpointer p)
{
  llm_cuda_free (p);
}

static gboolean
cuda_upload (gpointer dst, gconstpointer src, gsize bytes, GError ** error)
{
  return llm_cuda_copy (dst, src, bytes, LLM_CUDA_HOST_TO_DEVICE, NULL,
      error);
}

static gboolean
cuda_download (gpointer dst, gconstpointer src, gsize bytes, GError ** error)
{
  return llm_cuda_copy (dst, src, bytes, LLM_CUDA_DEVICE_TO_HOST, NULL,
      error);
}

static gpointer
cuda_weights_new (const LlmModelFile * mf, gint index,
    LlmProgressFunc progress, gpointer user_data, GError ** error)
{
  return llm_cuda_weights_upload (mf, index, progress, user_data, error);
}

static void
cuda_weights_free (gpointer w)
{
  llm_cuda_weights_free (w);
}

static guint64
cuda_weights_bytes (gpointer w)
{
  return ((LlmCudaWeights *) w)->bytes;
}

static gpointer
cuda_weights_new_random (const LlmHParams * hp, LlmDType dtype, gint index,
    guint64 seed, GError ** error)
{
  return llm_cuda_weights_new_random (hp, dtype, index, seed, error);
}

static gpointer
cuda_kv_new (gpointer w, guint n_ctx, gint type, GError ** error)
{
  return llm_cuda_kv_new (w, n_ctx, (LlmKvType) type, error);
}

static void
cuda_kv_free (gpointer kv)
{
  llm_cuda_kv_free (kv);
}

static guint
cuda_kv_len (gpointer kv)
{
  return llm_cuda_kv_len (kv);
}

static void
cuda_kv_truncate (gpointer kv, guint len)
{
  llm_cuda_kv_truncate (kv, len);
}

static gpointer
cuda_compute_new (gpointer w, GError ** error)
{
  return llm_cuda_compute_new (w, error);
}

static void
cuda_compute_free (gpointer c)
{
  llm_cuda_compute_free (c);
}

static gboolean
cuda_forward (gpointer c, gpointer kv, const gint32 * tokens, guint n,
    float *hidden_out, GError ** error)
{
  return llm_cuda_compute_forward (c, kv, tokens, n, hidden_out, error);
}

static gboolean
cuda_logits (gpointer c, const float *hidden, float *logits_out,
    GError ** error)
{
  return llm_cuda_compute_logits (c, hidden, NULL, logits_out, error);
}

static gboolean
cuda_logits_to_device (gpointer c, const float *hidden,
    gpointer logits_device, GError ** error)
{
  return llm_cuda_compute_logits (c, hidden, logits_device, NULL, error);
}

/* One stream and scratch for device sampling, shared under a lock: a
 * sampling call is a few tens of microseconds. They belong to the context
 * they were made in; after a switch to another (gst.cuda.context,
 * llm_cuda_device_adopt_context) they are made anew and the old ones
 * forgotten, not freed: that context may be gone. */
static GMutex sample_lock;
static guint sample_generation;
static LlmCudaStream *sample_stream;
static void *sample_scratch;
static gsize sample_scratch_bytes;
static gint32 *sample_ids;
static double *sample_coins;

static gboolean
cuda_sample (gint index, gconstpointer logits, guint n_vocab, guint n_rows,
    const LlmSamplerParams * p, const gdouble * coins, gint32 * ids_out,
    GError ** error)
{
  gsize need = llm_cuda_sample_scratch_bytes (n_vocab, n_rows);
  gboolean ok = FALSE;

  if (p->repeat_penalty != 1.0) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
        "the repetition penalty is applied on the host only");
    return FALSE;
  }
  if (n_rows > 64) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
        "at most 64 rows are sampled at once on the GPU, not %u", n_rows);
    return FALSE;
  }
  if (!llm_cuda_device_open (index, NULL, error))
    return FALSE;
  g_mutex_lock (&sample_lock);
  if (sample_stream != NULL
      && sample_generation != llm_cuda_context_generation ()) {
    sample_stream = NULL;
    sample_ids = NULL;
    sample_coins = NULL;
    sample_scratch = NULL;
    sample_scratch_bytes = 0;
  }
  if (sample_stream == NULL) {
    sample_generation = llm_cuda_context_generation ();
    if ((sample_stream = llm_cuda_stream_new (error)) == NULL ||
        (sample_ids = llm_cuda_alloc (64 * sizeof (gint32), error)) == NULL
        || (sample_coins = llm_cuda_alloc (64 * sizeof (double),
                error)) == NULL) {
      g_clear_pointer (&sample_stream, llm_cuda_stream_free);
      g_clear_pointer (&sample_ids, llm_cuda_free);
      goto out;
    }
  }
  if (need > sample_scratch_bytes) {
    llm_cuda_free (sample_scratch);
    sample_scratch = llm_cuda_alloc (need, error);
    sample_scratch_bytes = sample_scratch ? need : 0;
    if (sample_scratch == NULL)
      goto out;
  }
  if (coins != NULL && !llm_cuda_copy (sample_coins, coins,
          n_rows * sizeof (double), LLM_CUDA_HOST_TO_DEVICE, sample_stream,
          error))
    goto out;
  llm_cuda_sample (sample_ids, logits, n_vocab, n_rows, p->temperature,
      p->top_k, p->top_p, p->min_p, coins ? sample_coins : NULL,
      sample_scratch, sample_stream);
  ok = llm_cuda_copy (ids_out, sample_ids, n_rows * sizeof (gint32),
      LLM_CUDA_DEVICE_TO_HOST, sample_stream, error) &&
      llm_cuda_stream_sync (sample_stream, error);
out:
  g_mutex_unlock (&sample_lock);
  return ok;
}

static const LlmBackend cuda_backend = {
  .name = "cuda",
  .device_count = cuda_device_count,
  .device_describe = cuda_device_describe,
  .alloc = cuda_alloc,
  .free = cuda_free,
  .upload = cuda_upload,
  .download = cuda_download,
  .weights_new = cuda_weights_new,
  .weights_free = cuda_weights_free,
  .weights_bytes = cuda_weights_bytes,
  .kv_new = cuda_kv_new,
  .kv_free = cuda_kv_free,
  .kv_len = cuda_kv_len,
  .kv_truncate = cuda_kv_truncate,
  .compute_new = cuda_compute_new,
  .compute_free = cuda_compute_free,
  .forward = cuda_forward,
  .logits = cuda_logits,
  .logits_to_device = cuda_logits_to_device,
  .sample = cuda_sample,
  .weights_new_random = cuda_weights_new_random,
};

const LlmBackend *
llm_backend_cuda_get (void)
{
  return &cuda_backend;
}

void
llm_backend_cuda_register (void)
{
  llm_backend_register (&cuda_backend);
}
