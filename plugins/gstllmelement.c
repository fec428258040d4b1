/* LLMasOS - base class of the elements that use a model.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstllmelement.h"
#include "llm-backend.h"

#include <string.h>

#ifdef HAVE_GST_CUDA
#include "gstllmcudacontext.h"
#endif

GST_DEBUG_CATEGORY_STATIC (gst_llm_element_debug);
#define GST_CAT_DEFAULT gst_llm_element_debug

enum
{
  PROP_0,
  PROP_MODEL,
};

typedef struct
{
  gchar *model_path;            /* the property */
  LlmModel *model;              /* loaded or found; NULL until needed */
  GMutex lock;
#ifdef HAVE_GST_CUDA
  /* gst.cuda.context (docs/cuda.md, "Memory and context"): set by the
   * application or a neighbour, or ours (the device's primary context)
   * once the element computes on a CUDA device; answers context queries. */
  GstCudaContext *cuda_ctx;
  gint cuda_device;             /* the device it must be on; -1: any */
#endif
} GstLlmElementPrivate;

G_DEFINE_ABSTRACT_TYPE_WITH_CODE (GstLlmElement, gst_llm_element,
    GST_TYPE_ELEMENT, G_ADD_PRIVATE (GstLlmElement)
    GST_DEBUG_CATEGORY_INIT (gst_llm_element_debug, "llmelement", 0,
        "LLM element base class"));

static void
on_progress (gdouble fraction, const gchar * what, gpointer user_data)
{
  GstElement *element = user_data;
  GstStructure *s = gst_structure_new ("llm-model-progress",
      "fraction", G_TYPE_DOUBLE, fraction, "what", G_TYPE_STRING, what, NULL);

  gst_element_post_message (element,
      gst_message_new_element (GST_OBJECT (element), s));
}

static LlmModel *
load_model (GstLlmElement * self, const gchar * path)
{
  GError *err = NULL;
  LlmModel *model;

  GST_INFO_OBJECT (self, "loading model %s", path);
  model = llm_model_get (path, on_progress, self, &err);
  if (model == NULL) {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ,
        ("Could not load model: %s", err->message), ("path: %s", path));
    g_clear_error (&err);
    return NULL;
  }
  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_have_context (GST_OBJECT (self),
          llm_model_context_new (model)));
  return model;
}

LlmModel *
gst_llm_element_get_model (GstLlmElement * self)
{
  GstLlmElementPrivate *priv = gst_llm_element_get_instance_private (self);
  LlmModel *model;

  g_mutex_lock (&priv->lock);
  model = priv->model;
  g_mutex_unlock (&priv->lock);
  return model;
}

LlmModel *
gst_llm_element_ensure_model (GstLlmElement * self, GstPad * pad)
{
  GstLlmElementPrivate *priv = gst_llm_element_get_instance_private (self);
  LlmModel *model = gst_llm_element_get_model (self);
  gchar *path;

  if (model)
    return model;

  GST_OBJECT_LOCK (self);
  path = g_strdup (priv->model_path);
  GST_OBJECT_UNLOCK (self);

  if (path)
    model = load_model (self, path);
  else if (pad) {
    model = llm_model_find_from_pad (GST_ELEMENT (self), pad);
    if (model == NULL)
      GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND,
          ("No model: set the 'model' property on this element or on "
              "another LLM element of the pipeline"), (NULL));
  }
  g_free (path);
  if (model == NULL)
    return NULL;

  g_mutex_lock (&priv->lock);
  if (priv->model == NULL)
    priv->model = model;
  else
    g_object_unref (model);
  model = priv->model;
  g_mutex_unlock (&priv->lock);
  return model;
}

#ifdef HAVE_GST_CUDA
/* A gst.cuda.context query, answered when we hold a context. */
static gboolean
answer_cuda_query (GstLlmElement * self, GstQuery * query)
{
  GstLlmElementPrivate *priv = gst_llm_element_get_instance_private (self);
  const gchar *type = NULL;
  GstCudaContext *ctx = NULL;
  gboolean ok;

  if (!gst_query_parse_context_type (query, &type)
      || g_strcmp0 (type, GST_CUDA_CONTEXT_TYPE) != 0)
    return FALSE;
  g_mutex_lock (&priv->lock);
  if (priv->cuda_ctx)
    ctx = gst_object_ref (priv->cuda_ctx);
  g_mutex_unlock (&priv->lock);
  ok = gst_llm_cuda_context_query (GST_ELEMENT (self), query, ctx);
  gst_clear_object (&ctx);
  return ok;
}

/* Before anything goes to CUDA device @index: adopt the context of the
 * application or a neighbour, or offer ours, and make it the context of
 * our kernels. One held for another device is dropped first. */
static gboolean
ensure_cuda_context (GstLlmElement * self, gint index)
{
  GstLlmElementPrivate *priv = gst_llm_element_get_instance_private (self);
  GstCudaContext *stale = NULL;

  g_mutex_lock (&priv->lock);
  priv->cuda_device = index;
  if (priv->cuda_ctx
      && gst_llm_cuda_context_get_device (priv->cuda_ctx) != index)
    stale = g_steal_pointer (&priv->cuda_ctx);
  g_mutex_unlock (&priv->lock);
  if (stale) {
    GST_INFO_OBJECT (self, "dropping the gst.cuda.context of CUDA device "
        "%d: computing on device %d", gst_llm_cuda_context_get_device (stale),
        index);
    gst_object_unref (stale);
  }
  /* not under priv->lock: ensure() calls our set_context */
  return gst_llm_cuda_context_ensure (GST_ELEMENT (self), index,
      &priv->cuda_ctx);
}

static void
release_cuda_context (GstLlmElement * self)
{
  GstLlmElementPrivate *priv = gst_llm_element_get_instance_private (self);

  g_mutex_lock (&priv->lock);
  gst_clear_object (&priv->cuda_ctx);
  priv->cuda_device = -1;
  g_mutex_unlock (&priv->lock);
}
#endif

gboolean
gst_llm_element_handle_query (GstLlmElement * self, GstQuery * query)
{
  if (GST_QUERY_TYPE (query) != GST_QUERY_CONTEXT)
    return FALSE;
#ifdef HAVE_GST_CUDA
  if (answer_cuda_query (self, query))
    return TRUE;
#endif
  return llm_model_answer_context_query (gst_llm_element_get_model (self),
      query);
}

/* Context queries sent to the element itself (gst_element_query). */
static gboolean
gst_llm_element_query (GstElement * element, GstQuery * query)
{
  if (gst_llm_element_handle_query (GST_LLM_ELEMENT (element), query))
    return TRUE;
  return GST_ELEMENT_CLASS (gst_llm_element_parent_class)->query (element,
      query);
}

static void
gst_llm_element_set_context (GstElement * element, GstContext * context)
{
  GstLlmElement *self = GST_LLM_ELEMENT (element);
  GstLlmElementPrivate *priv = gst_llm_element_get_instance_private (self);
  LlmModel *model = llm_model_from_context (context);

  if (model) {
    g_mutex_lock (&priv->lock);
    if (priv->model == NULL && priv->model_path == NULL) {
      GST_DEBUG_OBJECT (self, "adopting model %s from context",
          llm_model_get_path (model));
      priv->model = g_object_ref (model);
    }
    g_mutex_unlock (&priv->lock);
    g_object_unref (model);
  }
#ifdef HAVE_GST_CUDA
  /* kept unless one is held already, and only for the device we compute
   * on once that is known */
  if (g_strcmp0 (gst_context_get_context_type (context),
          GST_CUDA_CONTEXT_TYPE) == 0) {
    g_mutex_lock (&priv->lock);
    if (gst_llm_cuda_context_set (element, context, priv->cuda_device,
            &priv->cuda_ctx))
      GST_DEBUG_OBJECT (self, "gst.cuda.context %" GST_PTR_FORMAT,
          priv->cuda_ctx);
    g_mutex_unlock (&priv->lock);
  }
#endif
  GST_ELEMENT_CLASS (gst_llm_element_parent_class)->set_context (element,
      context);
}

static GstStateChangeReturn
gst_llm_element_change_state (GstElement * element, GstStateChange transition)
{
  GstLlmElement *self = GST_LLM_ELEMENT (element);
  GstLlmElementPrivate *priv = gst_llm_element_get_instance_private (self);
  GstStateChangeReturn ret;
  gboolean has_path;

  if (transition == GST_STATE_CHANGE_NULL_TO_READY) {
    /* Load early, so a bad file fails the state change with its message
     * instead of the first buffer. */
    GST_OBJECT_LOCK (self);
    has_path = priv->model_path != NULL;
    GST_OBJECT_UNLOCK (self);
    if (has_path && !gst_llm_element_ensure_model (self, NULL))
      return GST_STATE_CHANGE_FAILURE;
  }

  ret = GST_ELEMENT_CLASS (gst_llm_element_parent_class)->change_state
      (element, transition);

  if (transition == GST_STATE_CHANGE_READY_TO_NULL) {
    g_mutex_lock (&priv->lock);
    g_clear_object (&priv->model);
    g_mutex_unlock (&priv->lock);
#ifdef HAVE_GST_CUDA
    release_cuda_context (self);
#endif
  }
  return ret;
}

static void
gst_llm_element_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstLlmElement *self = GST_LLM_ELEMENT (object);
  GstLlmElementPrivate *priv = gst_llm_element_get_instance_private (self);

  switch (prop_id) {
    case PROP_MODEL:
      GST_OBJECT_LOCK (self);
      g_free (priv->model_path);
      priv->model_path = g_value_dup_string (value);
      GST_OBJECT_UNLOCK (self);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_llm_element_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstLlmElement *self = GST_LLM_ELEMENT (object);
  GstLlmElementPrivate *priv = gst_llm_element_get_instance_private (self);

  switch (prop_id) {
    case PROP_MODEL:
      GST_OBJECT_LOCK (self);
      g_value_set_string (value, priv->model_path);
      GST_OBJECT_UNLOCK (self);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_llm_element_finalize (GObject * object)
{
  GstLlmElement *self = GST_LLM_ELEMENT (object);
  GstLlmElementPrivate *priv = gst_llm_element_get_instance_private (self);

  g_clear_object (&priv->model);
#ifdef HAVE_GST_CUDA
  gst_clear_object (&priv->cuda_ctx);
#endif
  g_free (priv->model_path);
  g_mutex_clear (&priv->lock);
  G_OBJECT_CLASS (gst_llm_element_parent_class)->finalize (object);
}

static void
gst_llm_element_class_init (GstLlmElementClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  gobject_class->set_property = gst_llm_element_set_property;
  gobject_class->get_property = gst_llm_element_get_property;
  gobject_class->finalize = gst_llm_element_finalize;

  g_object_class_install_property (gobject_class, PROP_MODEL,
      g_param_spec_string ("model", "Model",
          "Model to load: a Hugging Face folder (config.json, *.safetensors, "
          "tokenizer.json) or a .gguf file. Leave unset to share the model "
          "of a neighbouring LLM element", NULL,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  element_class->set_context = GST_DEBUG_FUNCPTR (gst_llm_element_set_context);
  element_class->query = GST_DEBUG_FUNCPTR (gst_llm_element_query);
  element_class->change_state =
      GST_DEBUG_FUNCPTR (gst_llm_element_change_state);
  gst_type_mark_as_plugin_api (GST_TYPE_LLM_ELEMENT, 0);
}

static void
gst_llm_element_init (GstLlmElement * self)
{
  GstLlmElementPrivate *priv = gst_llm_element_get_instance_private (self);

  g_mutex_init (&priv->lock);
#ifdef HAVE_GST_CUDA
  priv->cuda_device = -1;
#endif
}

GParamSpec *
gst_llm_element_device_param_spec (const gchar * default_device,
    const gchar * extra_blurb)
{
  g_autofree gchar *blurb = g_strdup_printf ("Where this element computes: "
      "cpu, cuda (= cuda:0) or cuda:N%s", extra_blurb ? extra_blurb : "");

  return g_param_spec_string ("device", "Device", g_intern_string (blurb),
      default_device, G_PARAM_READWRITE | G_PARAM_STATIC_NAME |
      G_PARAM_STATIC_NICK | GST_PARAM_MUTABLE_READY);
}

LlmCompute *
gst_llm_element_make_compute (GstLlmElement * self, LlmModel * model,
    const gchar * device, guint n_threads)
{
  const LlmBackend *backend;
  GError *err = NULL;
  gpointer weights;
  LlmCompute *c;
  gint index;

  if (!llm_device_parse (device, &backend, &index, &err)) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("%s", err->message),
        (NULL));
    g_clear_error (&err);
    return NULL;
  }
  if (backend == NULL)
    return llm_compute_new (llm_model_get_file (model), n_threads);

#ifdef HAVE_GST_CUDA
  /* before the weights go to the device: they belong to the context */
  if (strcmp (backend->name, "cuda") == 0
      && !ensure_cuda_context (self, index))
    return NULL;
#endif
  {
    g_autofree gchar *what = backend->device_describe (index);
    GST_INFO_OBJECT (self, "computing on %s", what);
  }
  weights = llm_model_get_weights (model, backend, index, on_progress, self,
      &err);
  c = weights ? llm_compute_new_on (llm_model_get_file (model), backend,
      index, weights, &err) : NULL;
  if (c == NULL) {
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED, ("Cannot run %s on %s: %s",
            llm_model_get_name (model), device, err->message), (NULL));
    g_clear_error (&err);
  }
  return c;
}
