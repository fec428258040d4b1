/* LLMasOS - the attention operator.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
/**
 * SECTION:element-llmattention
 * @title: llmattention
 *
 * Scaled dot-product attention with grouped-query heads. Used alone, each
 * input buffer holds three memories, q [T][heads x head-dim], k and v
 * [T][kv-heads x head-dim] (F32, row-major), described by the caps; the
 * output buffer holds [T][heads x head-dim]. With #GstLlmAttention:causal,
 * position i attends to positions 0..i.
 *
 * llmencoder and llmdecoder hold one through their `attention` property;
 * its settings (for now the KV-cache precision, F32 only on the CPU
 * backend) apply to their KV caches.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 appsrc caps="application/x-llm-tensor,dtype=F32,layout=qkv,heads=8,kv-heads=4,head-dim=8" \
 *   ! llmattention causal=true ! appsink
 * ]|
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstllmattention.h"
#include "llm-attention.h"
#include "llm-caps.h"

GST_DEBUG_CATEGORY_STATIC (gst_llm_attention_debug);
#define GST_CAT_DEFAULT gst_llm_attention_debug

#define DEFAULT_CAUSAL TRUE
#define DEFAULT_KV_DTYPE GST_LLM_KV_DTYPE_F32

enum
{
  PROP_0,
  PROP_CAUSAL,
  PROP_KV_DTYPE,
};

struct _GstLlmAttention
{
  GstElement parent;

  GstPad *sinkpad, *srcpad;

  gboolean causal;
  GstLlmKvDType kv_dtype;

  /* from the caps */
  guint heads, kv_heads, head_dim;
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (LLM_MEDIA_TENSOR ", dtype = (string) F32, "
        "layout = (string) qkv, heads = (int) [ 1, 1024 ], "
        "kv-heads = (int) [ 1, 1024 ], head-dim = (int) [ 1, 1024 ]"));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (LLM_MEDIA_TENSOR ", dtype = (string) F32, "
        "rank = (int) 2, width = (int) [ 1, MAX ]"));

#define gst_llm_attention_parent_class parent_class
G_DEFINE_TYPE (GstLlmAttention, gst_llm_attention, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE (llmattention, "llmattention", GST_RANK_NONE,
    GST_TYPE_LLM_ATTENTION);

#define GST_TYPE_LLM_KV_DTYPE (gst_llm_kv_dtype_get_type ())
static GType
gst_llm_kv_dtype_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_LLM_KV_DTYPE_F32, "32-bit float keys and values", "f32"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstLlmKvDType", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

static gboolean
set_caps (GstLlmAttention * self, GstCaps * caps)
{
  GstStructure *s = gst_caps_get_structure (caps, 0);
  gint heads, kv_heads, head_dim;
  GstCaps *out;
  gboolean ok;

  if (!gst_structure_get_int (s, "heads", &heads) ||
      !gst_structure_get_int (s, "kv-heads", &kv_heads) ||
      !gst_structure_get_int (s, "head-dim", &head_dim))
    return FALSE;
  if (heads % kv_heads != 0) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("%d query heads cannot share %d key/value heads: heads must be a "
            "multiple of kv-heads", heads, kv_heads), (NULL));
    return FALSE;
  }
  self->heads = heads;
  self->kv_heads = kv_heads;
  self->head_dim = head_dim;
  out = gst_caps_new_simple (LLM_MEDIA_TENSOR, "dtype", G_TYPE_STRING, "F32",
      "rank", G_TYPE_INT, 2, "width", G_TYPE_INT, heads * head_dim, NULL);
  ok = gst_pad_push_event (self->srcpad, gst_event_new_caps (out));
  gst_caps_unref (out);
  return ok;
}

static GstFlowReturn
gst_llm_attention_chain (GstPad * pad, GstObject * parent, GstBuffer * buf)
{
  GstLlmAttention *self = GST_LLM_ATTENTION (parent);
  gsize q_row = (gsize) self->heads * self->head_dim * sizeof (float);
  gsize kv_row = (gsize) self->kv_heads * self->head_dim * sizeof (float);
  GstMapInfo mq, mk, mv, mo;
  GstMemory *q, *k, *v;
  GstBuffer *out;
  float *scratch;
  gsize n;

  if (self->heads == 0 || gst_buffer_n_memory (buf) != 3) {
    GST_ELEMENT_ERROR (self, STREAM, FORMAT, (NULL),
        ("expected a buffer of three memories (q, k, v) after caps"));
    gst_buffer_unref (buf);
    return GST_FLOW_ERROR;
  }
  q = gst_buffer_peek_memory (buf, 0);
  k = gst_buffer_peek_memory (buf, 1);
  v = gst_buffer_peek_memory (buf, 2);
  n = gst_memory_get_sizes (q, NULL, NULL) / q_row;
  if (n == 0 || gst_memory_get_sizes (q, NULL, NULL) != n * q_row ||
      gst_memory_get_sizes (k, NULL, NULL) != n * kv_row ||
      gst_memory_get_sizes (v, NULL, NULL) != n * kv_row) {
    GST_ELEMENT_ERROR (self, STREAM, FORMAT, (NULL),
        ("q, k and v sizes do not describe the same number of positions"));
    gst_buffer_unref (buf);
    return GST_FLOW_ERROR;
  }

  out = gst_buffer_new_allocate (NULL, n * q_row, NULL);
  gst_memory_map (q, &mq, GST_MAP_READ);
  gst_memory_map (k, &mk, GST_MAP_READ);
  gst_memory_map (v, &mv, GST_MAP_READ);
  gst_buffer_map (out, &mo, GST_MAP_WRITE);
  scratch = g_new (float, n);
  if (self->causal) {
    llm_attention_causal ((float *) mo.data, (const float *) mq.data,
        (const float *) mk.data, (const float *) mv.data, n, 0, self->heads,
        self->kv_heads, self->head_dim, kv_row / sizeof (float), scratch);
  } else {
    /* Every query sees all n positions: as if it were the last one. */
    for (gsize i = 0; i < n; i++)
      llm_attention_causal ((float *) (mo.data + i * q_row),
          (const float *) (mq.data + i * q_row), (const float *) mk.data,
          (const float *) mv.data, 1, n - 1, self->heads, self->kv_heads,
          self->head_dim, kv_row / sizeof (float), scratch);
  }
  g_free (scratch);
  gst_buffer_unmap (out, &mo);
  gst_memory_unmap (v, &mv);
  gst_memory_unmap (k, &mk);
  gst_memory_unmap (q, &mq);
  gst_buffer_copy_into (out, buf, GST_BUFFER_COPY_METADATA, 0, -1);
  gst_buffer_unref (buf);
  return gst_pad_push (self->srcpad, out);
}

static gboolean
gst_llm_attention_sink_event (GstPad * pad, GstObject * parent,
    GstEvent * event)
{
  GstLlmAttention *self = GST_LLM_ATTENTION (parent);

  if (GST_EVENT_TYPE (event) == GST_EVENT_CAPS) {
    GstCaps *caps;
    gboolean ok;

    gst_event_parse_caps (event, &caps);
    ok = set_caps (self, caps);
    gst_event_unref (event);
    return ok;
  }
  return gst_pad_event_default (pad, parent, event);
}

static void
gst_llm_attention_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstLlmAttention *self = GST_LLM_ATTENTION (object);

  switch (prop_id) {
    case PROP_CAUSAL:
      self->causal = g_value_get_boolean (value);
      break;
    case PROP_KV_DTYPE:
      self->kv_dtype = g_value_get_enum (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_llm_attention_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstLlmAttention *self = GST_LLM_ATTENTION (object);

  switch (prop_id) {
    case PROP_CAUSAL:
      g_value_set_boolean (value, self->causal);
      break;
    case PROP_KV_DTYPE:
      g_value_set_enum (value, self->kv_dtype);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_llm_attention_class_init (GstLlmAttentionClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  gobject_class->set_property = gst_llm_attention_set_property;
  gobject_class->get_property = gst_llm_attention_get_property;

  g_object_class_install_property (gobject_class, PROP_CAUSAL,
      g_param_spec_boolean ("causal", "Causal",
          "Each position attends only to itself and earlier positions",
          DEFAULT_CAUSAL, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_KV_DTYPE,
      g_param_spec_enum ("kv-dtype", "KV dtype",
          "Precision of the KV cache (the CPU backend keeps F32)",
          GST_TYPE_LLM_KV_DTYPE, DEFAULT_KV_DTYPE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class, "LLM attention",
      "Filter/LLM",
      "Scaled dot-product attention with grouped-query heads",
      "LLMasOS developers <llmasos@example.org>");

  gst_type_mark_as_plugin_api (GST_TYPE_LLM_KV_DTYPE, 0);
  GST_DEBUG_CATEGORY_INIT (gst_llm_attention_debug, "llmattention", 0,
      "LLM attention");
}

static void
gst_llm_attention_init (GstLlmAttention * self)
{
  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_llm_attention_chain));
  gst_pad_set_event_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_llm_attention_sink_event));
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);

  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_use_fixed_caps (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);

  self->causal = DEFAULT_CAUSAL;
  self->kv_dtype = DEFAULT_KV_DTYPE;
}
