/* LLMasOS - the gst.cuda.context glue (gstllmcudacontext.h).
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "gstllmcudacontext.h"

#include <gst/cuda/gstcudaloader.h>
#include <gst/cuda/gstcudautils.h>

#include "llm-cuda.h"

GST_DEBUG_CATEGORY_STATIC (llm_cuda_context_debug);
#define GST_CAT_DEFAULT llm_cuda_context_debug

static void
debug_init (void)
{
  static gsize once = 0;

  if (g_once_init_enter (&once)) {
    GST_DEBUG_CATEGORY_INIT (llm_cuda_context_debug, "llmcudacontext", 0,
        "LLMasOS: sharing gst.cuda.context");
    g_once_init_leave (&once, 1);
  }
}

static gpointer
ref_pad (gconstpointer pad, gpointer unused)
{
  return gst_object_ref ((gpointer) pad);
}

/* Asks the peers of @element's pads in @dir; TRUE when one answered. */
static gboolean
peer_query (GstElement * element, GstQuery * query, GstPadDirection dir)
{
  GList *pads;
  gboolean found = FALSE;

  GST_OBJECT_LOCK (element);
  pads = g_list_copy_deep (dir == GST_PAD_SRC ? element->srcpads :
      element->sinkpads, ref_pad, NULL);
  GST_OBJECT_UNLOCK (element);
  for (GList * l = pads; l != NULL && !found; l = l->next)
    found = gst_pad_peer_query (GST_PAD (l->data), query);
  g_list_free_full (pads, gst_object_unref);
  return found;
}

/* Downstream, upstream, then the application (need-context): whoever
 * answers calls set_context on @element, which fills *@ctx. The same steps
 * as gst_cuda_ensure_element_context(), which would make a context of its
 * own (not the primary one) when nobody answers. */
static void
find_context (GstElement * element, GstCudaContext ** ctx)
{
  GstQuery *query = gst_query_new_context (GST_CUDA_CONTEXT_TYPE);
  GstPadDirection dirs[] = { GST_PAD_SRC, GST_PAD_SINK };

  for (guint i = 0; i < G_N_ELEMENTS (dirs) && *ctx == NULL; i++) {
    GstContext *context = NULL;

    if (peer_query (element, query, dirs[i])) {
      gst_query_parse_context (query, &context);
      if (context != NULL)
        gst_element_set_context (element, context);
    }
  }
  gst_query_unref (query);
  if (*ctx == NULL)
    gst_element_post_message (element,
        gst_message_new_need_context (GST_OBJECT (element),
            GST_CUDA_CONTEXT_TYPE));
}

static void
release_primary (gpointer index, GObject * where_the_context_was)
{
  llm_cuda_primary_context_release (GPOINTER_TO_INT (index));
}

/* Device @index's primary context as a GstCudaContext, announced to the
 * pipeline with have-context. */
static GstCudaContext *
offer_primary (GstElement * element, gint index, GError ** error)
{
  void *handle = llm_cuda_primary_context_retain (index, error);
  GstCudaContext *ctx;
  GstContext *context;

  if (handle == NULL)
    return NULL;
  ctx = gst_cuda_context_new_wrapped ((CUcontext) handle, (CUdevice) index);
  if (ctx == NULL) {
    llm_cuda_primary_context_release (index);
    g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_FAILED,
        "libgstcuda cannot wrap the primary context of CUDA device %d",
        index);
    return NULL;
  }
  /* A wrapped context is not owned by its GstCudaContext: release our
   * reference to the primary context when the last user drops it. */
  g_object_weak_ref (G_OBJECT (ctx), release_primary, GINT_TO_POINTER (index));

  context = gst_context_new_cuda_context (ctx);
  gst_element_set_context (element, context);
  GST_INFO_OBJECT (element, "offering the primary context %p of CUDA "
      "device %d", handle, index);
  gst_element_post_message (element,
      gst_message_new_have_context (GST_OBJECT (element), context));
  return ctx;
}

/* The context libllmasos-cuda runs in (process-wide, like the kernels'
 * own state), referenced so that an adopted CUcontext outlives the
 * elements that found it: the model's weights, freed when its last user
 * lets go, may be freed after them. Replaced by the next one bound. */
static GstCudaContext *bound;

/* Makes @ctx the context our kernels run in: the device's primary context
 * is the runtime's own (llm_cuda_device_open), another is adopted.
 * Called with ensure()'s lock held. */
static gboolean
bind_kernels (GstElement * element, GstCudaContext * ctx, GError ** error)
{
  gint index = gst_llm_cuda_context_get_device (ctx);
  void *handle = gst_cuda_context_get_handle (ctx);
  void *primary;
  gboolean ok;

  /* a neighbour's second call: nothing changes (no new generation) */
  if (ctx == bound && llm_cuda_current_context () == handle) {
    GST_INFO_OBJECT (element, "CUDA device %d, context %p (already in use)",
        index, handle);
    return TRUE;
  }
  primary = llm_cuda_primary_context_retain (index, error);
  if (primary == NULL)
    return FALSE;
  llm_cuda_primary_context_release (index);
  if (handle == primary) {
    ok = llm_cuda_device_adopt_context (NULL, error)
        && llm_cuda_device_open (index, NULL, error);
    GST_INFO_OBJECT (element, "CUDA device %d, its primary context %p",
        index, handle);
  } else {
    ok = llm_cuda_device_adopt_context (handle, error);
    GST_INFO_OBJECT (element, "CUDA device %d, adopted context %p", index,
        handle);
  }
  if (ok)
    gst_object_replace ((GstObject **) & bound, GST_OBJECT (ctx));
  return ok;
}

gboolean
gst_llm_cuda_context_ensure (GstElement * element, gint device_index,
    GstCudaContext ** ctx)
{
  static GRecMutex lock;
  GError *err = NULL;
  gboolean ok = TRUE;

  g_return_val_if_fail (GST_IS_ELEMENT (element) && ctx != NULL, FALSE);

  debug_init ();
  if (!gst_cuda_load_library ()) {
    g_set_error (&err, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_FAILED,
        "libgstcuda cannot load the CUDA driver (libcuda.so)");
    ok = FALSE;
  }
  /* one element at a time, so two neighbours do not both make one */
  g_rec_mutex_lock (&lock);
  if (ok && *ctx == NULL)
    find_context (element, ctx);
  if (ok && *ctx == NULL) {
    GstCudaContext *made = offer_primary (element, MAX (device_index, 0),
        &err);

    /* the element's set_context may have taken it already */
    if (made != NULL && *ctx == NULL)
      *ctx = made;
    else if (made != NULL)
      gst_object_unref (made);
    ok = made != NULL;
  }
  if (ok)
    ok = bind_kernels (element, *ctx, &err);
  g_rec_mutex_unlock (&lock);
  if (!ok) {
    GST_ELEMENT_ERROR (element, RESOURCE, FAILED,
        ("No CUDA context for device %d.", device_index), ("%s",
            err ? err->message : "unknown reason"));
    g_clear_error (&err);
  }
  return ok;
}

gboolean
gst_llm_cuda_context_query (GstElement * element, GstQuery * query,
    GstCudaContext * ctx)
{
  if (GST_QUERY_TYPE (query) != GST_QUERY_CONTEXT || ctx == NULL)
    return FALSE;
  return gst_cuda_handle_context_query (element, query, ctx);
}

gboolean
gst_llm_cuda_context_set (GstElement * element, GstContext * context,
    gint device_index, GstCudaContext ** ctx)
{
  debug_init ();
  if (!gst_cuda_load_library ())
    return FALSE;
  return gst_cuda_handle_set_context (element, context, device_index, ctx);
}

gint
gst_llm_cuda_context_get_device (GstCudaContext * ctx)
{
  guint id = 0;

  g_return_val_if_fail (GST_IS_CUDA_CONTEXT (ctx), -1);
  g_object_get (ctx, "cuda-device-id", &id, NULL);
  return (gint) id;
}
