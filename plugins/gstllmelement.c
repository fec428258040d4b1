/* LLMasOS - base class of the elements that use a model.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstllmelement.h"
#include "llm-backend.h"

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

gboolean
gst_llm_element_handle_query (GstLlmElement * self, GstQuery * query)
{
  if (GST_QUERY_TYPE (query) != GST_QUERY_CONTEXT)
    return FALSE;
  return llm_model_answer_context_query (gst_llm_element_get_model (self),
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
  element_class->change_state =
      GST_DEBUG_FUNCPTR (gst_llm_element_change_state);
  gst_type_mark_as_plugin_api (GST_TYPE_LLM_ELEMENT, 0);
}

static void
gst_llm_element_init (GstLlmElement * self)
{
  GstLlmElementPrivate *priv = gst_llm_element_get_instance_private (self);

  g_mutex_init (&priv->lock);
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
