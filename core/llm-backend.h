/* LLMasOS - compute backends other than the CPU.
 *
 * core/ computes on the CPU itself and knows every other device only
 * through this table of functions. A backend lives in its own library
 * (the CUDA one in kernels/, libllmasos-cuda) and registers itself with
 * llm_backend_register(); core never links it, so the dependencies run
 * plugins -> core <- kernels (docs/architecture.md). The plugin and the
 * tools register the backends they were built with at start-up.
 *
 * Objects are opaque pointers owned by the backend: weights (one copy of a
 * model's weights on one device, shared by every compute and KV cache made
 * from it), KV caches (one sequence's keys and values) and computes
 * (scratch memory and a stream of work for one thread). Device memory
 * handed out by alloc() is a plain pointer that only the backend's own
 * functions dereference.
 *
 * Every function that can fail reports through GError (LLM_ERROR); running
 * out of device memory is LLM_ERROR_NO_MEMORY naming the bytes asked for
 * and the bytes free.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include "llm-model-file.h"
#include "llm-sampler.h"

G_BEGIN_DECLS

typedef struct _LlmBackend LlmBackend;

struct _LlmBackend
{
  const gchar *name;            /* "cuda": what device=NAME[:N] selects */

  /* --- devices --- */
  /* Number of devices; 0 with @error saying why (no driver, no GPU). */
  gint (*device_count) (GError ** error);
  /* A line naming device @index ("NVIDIA H100 80GB HBM3, 79.1 GiB"). */
  gchar *(*device_describe) (gint index);

  /* --- memory (for the GstAllocator of memory:CUDATensor) --- */
  gpointer (*alloc) (gint index, gsize bytes, GError ** error);
  void (*free) (gpointer device_ptr);
  /* Synchronous copies between host memory and device memory. */
  gboolean (*upload) (gpointer device_dst, gconstpointer host_src,
      gsize bytes, GError ** error);
  gboolean (*download) (gpointer host_dst, gconstpointer device_src,
      gsize bytes, GError ** error);

  /* --- weights --- */
  /* Copies (and, where the device wants another layout, repacks) the
   * weights of @mf to device @index. LLM_ERROR_UNSUPPORTED naming the
   * tensor if its dtype or the architecture is not handled there. */
  gpointer (*weights_new) (const LlmModelFile * mf, gint index,
      LlmProgressFunc progress, gpointer user_data, GError ** error);
  void (*weights_free) (gpointer weights);
  /* Device bytes the weights take. */
  guint64 (*weights_bytes) (gpointer weights);

  /* --- KV caches --- */
  /* @type: an LlmKvType (core/llm-forward.h) */
  gpointer (*kv_new) (gpointer weights, guint n_ctx, gint type,
      GError ** error);
  void (*kv_free) (gpointer kv);
  guint (*kv_len) (gpointer kv);
  void (*kv_truncate) (gpointer kv, guint len);

  /* --- computation --- */
  gpointer (*compute_new) (gpointer weights, GError ** error);
  void (*compute_free) (gpointer compute);
  /* Runs @n tokens at positions kv_len .. kv_len + n - 1, appending their
   * keys and values to @kv; keeps the final-normalised hidden state of the
   * last token on the device for logits(), and copies it to @hidden_out
   * (dim floats, host) unless that is NULL. LLM_ERROR_CONTEXT_FULL,
   * LLM_ERROR_INPUT as llm_compute_forward(). */
  gboolean (*forward) (gpointer compute, gpointer kv, const gint32 * tokens,
      guint n, float *hidden_out, GError ** error);
  /* Logits (n_vocab floats, host) of @hidden (dim floats, host), or of the
   * last forward()'s hidden state if @hidden is NULL. */
  gboolean (*logits) (gpointer compute, const float *hidden,
      float *logits_out, GError ** error);
  /* The same into device memory (@logits_device: n_vocab floats from
   * alloc()), for buffers that stay on the device (memory:CUDATensor). */
  gboolean (*logits_to_device) (gpointer compute, const float *hidden,
      gpointer logits_device, GError ** error);

  /* --- sampling on the device --- */
  /* For each of @n_rows rows of @n_vocab device logits: the token
   * llm_sampler_sample() would choose with @params (repeat_penalty must be
   * 1.0: the history lives on the host) when its random draw is @coins[row]
   * (uniform in [0, 1), drawn by the caller from the sequence's GRand, so
   * the seed means the same on every device). Only the ids cross to the
   * host. */
  gboolean (*sample) (gint index, gconstpointer logits_device, guint n_vocab,
      guint n_rows, const LlmSamplerParams * params, const gdouble * coins,
      gint32 * ids_out, GError ** error);

  /* --- benchmarks --- */
  /* Weights of @hp's shape in @dtype (F16, BF16, Q8_0, Q4_0; norms F32)
   * filled on the device with normal random values (std 0.02, norms 1.0)
   * from @seed: timing does not depend on the values. */
  gpointer (*weights_new_random) (const LlmHParams * hp, LlmDType dtype,
      gint index, guint64 seed, GError ** error);
};

/* Makes @backend known under its name (a second registration of the same
 * name is ignored). Thread-safe. */
void llm_backend_register (const LlmBackend * backend);
/* The backend registered as @name, or NULL. */
const LlmBackend *llm_backend_lookup (const gchar * name);

/* Parses a device string: "cpu" (or "cpu:0"), "cuda" (= "cuda:0") or
 * "cuda:N", names in any case. *@backend is NULL for the CPU. LLM_ERROR_UNSUPPORTED naming what was
 * asked for when this build has no such backend or the device does not
 * exist; LLM_ERROR_INPUT for a malformed string. */
gboolean llm_device_parse (const gchar * device, const LlmBackend ** backend,
    gint * index, GError ** error);

G_END_DECLS
