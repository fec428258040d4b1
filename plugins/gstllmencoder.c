/* LLMasOS - prompt prefill.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
/**
 * SECTION:element-llmencoder
 * @title: llmencoder
 *
 * Runs the model over a whole prompt at once (prefill): the keys and values
 * of every prompt position go into a new KV cache held by the shared model
 * object, and the final hidden state of the last position goes downstream
 * as `application/x-llm-state`, where llmdecoder continues the sequence.
 *
 * ## Example launch line
 * |[
 * echo -n "Once upon a time" | gst-launch-1.0 -q fdsrc ! \
 *   llmtokenizer model=stories260K ! llmencoder ! llmdecoder max-tokens=64 ! \
 *   llmsampler temperature=0 ! llmdetokenizer ! fdsink
 * ]|
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstllmencoder.h"
#include "gstllmattention.h"
#include "llm-caps.h"
#include "llm-events.h"
#include "llm-meta.h"
#include "llm-forward.h"

#include <string.h>

GST_DEBUG_CATEGORY_STATIC (gst_llm_encoder_debug);
#define GST_CAT_DEFAULT gst_llm_encoder_debug

#define DEFAULT_CONTEXT_LENGTH 0
#define DEFAULT_N_THREADS 0
#define DEFAULT_DEVICE "cpu"
#define DEFAULT_CONTEXT_OVERFLOW GST_LLM_CONTEXT_OVERFLOW_ERROR
#define DEFAULT_KV_TYPE LLM_KV_AUTO

enum
{
  PROP_0,
  PROP_CONTEXT_LENGTH,
  PROP_CONTEXT_OVERFLOW,
  PROP_N_THREADS,
  PROP_ATTENTION,
  PROP_DEVICE,
  PROP_KV_TYPE,
};

struct _GstLlmEncoder
{
  GstLlmElement parent;

  GstPad *sinkpad, *srcpad;

  guint context_length;
  GstLlmContextOverflow context_overflow;
  guint n_threads;
  gchar *device;
  GstElement *attention;
  LlmKvType kv_type;

  gint flushing;                /* atomic: unblocks a waiting chain */
  LlmCompute *compute;          /* created with the first prompt */
  float *hidden;
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS (LLM_CAPS_TOKENS_TEMPLATE));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS (LLM_CAPS_STATE_TEMPLATE));

#define gst_llm_encoder_parent_class parent_class
G_DEFINE_TYPE (GstLlmEncoder, gst_llm_encoder, GST_TYPE_LLM_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE (llmencoder, "llmencoder", GST_RANK_NONE,
    GST_TYPE_LLM_ENCODER);

#define GST_TYPE_LLM_KV_TYPE (gst_llm_kv_type_get_type ())
static GType
gst_llm_kv_type_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {LLM_KV_AUTO, "The device's default: F32 on the CPU and for F32 "
          "weights on the GPU, F16 for other weights on the GPU", "auto"},
    {LLM_KV_F32, "32-bit floats", "f32"},
    {LLM_KV_F16, "16-bit floats (GPU only)", "f16"},
    {LLM_KV_Q8_0, "8-bit blocks of 32 with a scale each, as llama.cpp's "
          "-ctk q8_0 -ctv q8_0 (9/16 of F16's memory on the GPU; on the CPU "
          "the same rounding, kept as floats)", "q8_0"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstLlmKvType", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

#define GST_TYPE_LLM_CONTEXT_OVERFLOW (gst_llm_context_overflow_get_type ())
static GType
gst_llm_context_overflow_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_LLM_CONTEXT_OVERFLOW_ERROR,
        "A prompt longer than the context is an error", "error"},
    {GST_LLM_CONTEXT_OVERFLOW_TRUNCATE,
          "Keep BOS and the most recent tokens, filling half the context "
          "(the other half is left for the continuation)", "truncate"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstLlmContextOverflow", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

/* Fits @ids (n of them) into @n_ctx positions as the context-overflow
 * property says. Returns the number of tokens to run, starting at
 * *first; 0 with an element error posted if the prompt must be refused. */
static guint
fit_prompt (GstLlmEncoder * self, LlmModel * model, gint32 * ids, guint n,
    guint n_ctx)
{
  const LlmVocab *vocab = llm_model_get_vocab (model);
  guint keep, dropped;

  if (n <= n_ctx)
    return n;
  if (self->context_overflow == GST_LLM_CONTEXT_OVERFLOW_ERROR) {
    GST_ELEMENT_ERROR (self, STREAM, FAILED,
        ("Prompt of %u tokens does not fit the context of %u tokens (set "
            "context-overflow=truncate to keep the most recent tokens, or a "
            "larger context-length)", n, n_ctx), (NULL));
    return 0;
  }
  /* Like llama.cpp's server: keep BOS, then the latest tokens. */
  keep = MAX (n_ctx / 2, 2);
  dropped = n - keep;
  if (ids[0] == vocab->bos) {
    memmove (ids + 1, ids + 1 + dropped, (keep - 1) * sizeof (gint32));
  } else {
    memmove (ids, ids + dropped, keep * sizeof (gint32));
  }
  GST_ELEMENT_WARNING (self, STREAM, FAILED,
      ("Prompt of %u tokens does not fit the context of %u tokens: kept the "
          "first token and the last %u, dropped %u", n, n_ctx, keep - 1,
          dropped), (NULL));
  return keep;
}

static gboolean
ensure_compute (GstLlmEncoder * self, LlmModel * model)
{
  if (self->compute)
    return TRUE;
  self->compute = gst_llm_element_make_compute (GST_LLM_ELEMENT (self),
      model, self->device, self->n_threads);
  if (self->compute == NULL)
    return FALSE;
  self->hidden = g_new0 (float, llm_model_get_hparams (model)->dim);
  return TRUE;
}

static guint
effective_context (GstLlmEncoder * self, LlmModel * model)
{
  guint train = llm_model_get_hparams (model)->n_ctx_train;

  if (self->context_length == 0)
    return train;
  return self->context_length;
}

static GstFlowReturn
gst_llm_encoder_chain (GstPad * pad, GstObject * parent, GstBuffer * buf)
{
  GstLlmEncoder *self = GST_LLM_ENCODER (parent);
  LlmModel *model;
  LlmSeqMeta *meta = llm_buffer_get_seq_meta (buf);
  LlmSequence *seq;
  GstMapInfo map;
  GError *err = NULL;
  GstBuffer *out;
  guint n, n_ctx, dim;
  gboolean ok;

  model = gst_llm_element_ensure_model (GST_LLM_ELEMENT (self), self->sinkpad);
  if (model == NULL) {
    gst_buffer_unref (buf);
    return GST_FLOW_ERROR;
  }
  if (meta == NULL || meta->n_rows != 1) {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, STREAM, FORMAT, (NULL),
        ("token buffer without a sequence meta of one row"));
    return GST_FLOW_ERROR;
  }
  if (!ensure_compute (self, model)) {
    gst_buffer_unref (buf);
    return GST_FLOW_ERROR;
  }
  dim = llm_model_get_hparams (model)->dim;
  n_ctx = effective_context (self, model);

  buf = gst_buffer_make_writable (buf);
  gst_buffer_map (buf, &map, GST_MAP_READWRITE);
  n = map.size / sizeof (gint32);
  if (n == 0)
    GST_ELEMENT_ERROR (self, STREAM, FAILED, ("Empty prompt: no tokens"),
        (NULL));
  else
    n = fit_prompt (self, model, (gint32 *) map.data, n, n_ctx);
  if (n == 0) {
    gst_buffer_unmap (buf, &map);
    gst_buffer_unref (buf);
    return GST_FLOW_ERROR;
  }

  seq = llm_model_lookup_sequence (model, meta->rows[0].seq_id);
  if (seq) {
    /* Its previous turn may still be decoding: wait for its end, waking
     * now and then to see whether we are being flushed or stopped. */
    while (!g_atomic_int_get (&self->flushing) &&
        !llm_model_wait_released (model, seq->id, 100 * G_TIME_SPAN_MILLISECOND));
    if (g_atomic_int_get (&self->flushing)) {
      gst_buffer_unmap (buf, &map);
      gst_buffer_unref (buf);
      return GST_FLOW_FLUSHING;
    }
    seq = llm_model_lookup_sequence (model, meta->rows[0].seq_id);
  }
  if (seq) {
    /* The next turn of a conversation: its history is in the cache. */
    ok = !seq->claimed && llm_compute_forward (self->compute, seq->kv,
        (const gint32 *) map.data, n, self->hidden, &err);
    if (!ok && err == NULL)
      g_set_error (&err, GST_STREAM_ERROR, GST_STREAM_ERROR_FAILED,
          "sequence %" G_GUINT64_FORMAT " is still being decoded", seq->id);
    gst_buffer_unmap (buf, &map);
    gst_buffer_unref (buf);
    if (!ok) {
      GST_ELEMENT_ERROR (self, STREAM, FAILED, ("Cannot continue the "
              "conversation: %s", err->message), (NULL));
      g_clear_error (&err);
      return GST_FLOW_ERROR;
    }
  } else {
    seq = g_new0 (LlmSequence, 1);
    seq->id = meta->rows[0].seq_id;
    seq->n_prompt = n;
    seq->owner = self;
    seq->kv = llm_compute_kv_cache_new_typed (self->compute, n_ctx,
        self->kv_type, &err);
    ok = seq->kv != NULL && llm_compute_forward (self->compute, seq->kv,
        (const gint32 *) map.data, n, self->hidden, &err);
    gst_buffer_unmap (buf, &map);
    gst_buffer_unref (buf);
    if (!ok) {
      GST_ELEMENT_ERROR (self, STREAM, FAILED, ("Prefill failed: %s",
              err->message), (NULL));
      g_clear_error (&err);
      llm_kv_cache_free (seq->kv);
      g_free (seq);
      return GST_FLOW_ERROR;
    }
    llm_model_add_sequence (model, seq);
  }
  n = llm_kv_cache_len (seq->kv);
  GST_DEBUG_OBJECT (self, "sequence %" G_GUINT64_FORMAT ": %u tokens "
      "prefilled", seq->id, n);

  out = gst_buffer_new_memdup (self->hidden, dim * sizeof (float));
  llm_seq_meta_add_row (llm_buffer_add_seq_meta (out), seq->id, n, 0);
  return gst_pad_push (self->srcpad, out);
}

/* Sequences prefilled here whose state a flush or a stop dropped on the
 * way to the decoder: nobody else will free their caches. */
static void
drop_unclaimed (GstLlmEncoder * self)
{
  LlmModel *model = gst_llm_element_get_model (GST_LLM_ELEMENT (self));
  guint n;

  if (model && (n = llm_model_remove_unclaimed (model, self)))
    GST_DEBUG_OBJECT (self, "freed %u sequences never decoded", n);
}

static gboolean
check_vocab (GstLlmEncoder * self, GstCaps * caps)
{
  LlmModel *model;
  const gchar *theirs = llm_caps_get_vocab (caps);
  const LlmVocab *vocab;

  model = gst_llm_element_ensure_model (GST_LLM_ELEMENT (self), self->sinkpad);
  if (model == NULL)
    return FALSE;
  vocab = llm_model_get_vocab (model);
  if (g_strcmp0 (theirs, vocab->fingerprint) != 0) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("Vocabulary mismatch: the tokens upstream use vocabulary %s, but "
            "this encoder's model '%s' has vocabulary %s",
            theirs ? theirs : "(none)", llm_model_get_name (model),
            vocab->fingerprint), (NULL));
    return FALSE;
  }
  return TRUE;
}

static gboolean
gst_llm_encoder_sink_event (GstPad * pad, GstObject * parent,
    GstEvent * event)
{
  GstLlmEncoder *self = GST_LLM_ENCODER (parent);

  if (GST_EVENT_TYPE (event) == GST_EVENT_FLUSH_START)
    g_atomic_int_set (&self->flushing, TRUE);
  if (GST_EVENT_TYPE (event) == GST_EVENT_FLUSH_STOP) {
    g_atomic_int_set (&self->flushing, FALSE);
    drop_unclaimed (self);
  }
  if (GST_EVENT_TYPE (event) == GST_EVENT_CAPS) {
    GstCaps *caps;

    gboolean ok;

    gst_event_parse_caps (event, &caps);
    ok = check_vocab (self, caps);
    gst_event_unref (event);
    if (ok) {
      LlmModel *model = gst_llm_element_get_model (GST_LLM_ELEMENT (self));

      caps = llm_caps_new_state (llm_model_get_fingerprint (model), 1);
      ok = gst_pad_push_event (self->srcpad, gst_event_new_caps (caps));
      gst_caps_unref (caps);
    }
    return ok;
  }
  return gst_pad_event_default (pad, parent, event);
}

static GstCaps *
sink_caps (GstLlmEncoder * self, GstCaps * filter)
{
  LlmModel *model = gst_llm_element_get_model (GST_LLM_ELEMENT (self));
  GstCaps *caps;

  if (model)
    caps = llm_caps_new_tokens (llm_model_get_vocab (model), 0);
  else
    caps = gst_pad_get_pad_template_caps (self->sinkpad);
  if (filter) {
    GstCaps *tmp = gst_caps_intersect_full (filter, caps,
        GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref (caps);
    caps = tmp;
  }
  return caps;
}

static gboolean
gst_llm_encoder_query (GstPad * pad, GstObject * parent, GstQuery * query)
{
  GstLlmEncoder *self = GST_LLM_ENCODER (parent);

  if (gst_llm_element_handle_query (GST_LLM_ELEMENT (self), query))
    return TRUE;
  if (pad == self->sinkpad && GST_QUERY_TYPE (query) == GST_QUERY_CAPS) {
    GstCaps *filter, *caps;

    gst_query_parse_caps (query, &filter);
    caps = sink_caps (self, filter);
    gst_query_set_caps_result (query, caps);
    gst_caps_unref (caps);
    return TRUE;
  }
  return gst_pad_query_default (pad, parent, query);
}

static GstStateChangeReturn
gst_llm_encoder_change_state (GstElement * element, GstStateChange transition)
{
  GstLlmEncoder *self = GST_LLM_ENCODER (element);
  GstStateChangeReturn ret;

  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED)
    g_atomic_int_set (&self->flushing, FALSE);
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY)
    g_atomic_int_set (&self->flushing, TRUE);
  ret = GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) {
    drop_unclaimed (self);
    g_clear_pointer (&self->compute, llm_compute_free);
    g_clear_pointer (&self->hidden, g_free);
  }
  return ret;
}

static void
gst_llm_encoder_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstLlmEncoder *self = GST_LLM_ENCODER (object);

  switch (prop_id) {
    case PROP_CONTEXT_LENGTH:
      self->context_length = g_value_get_uint (value);
      break;
    case PROP_CONTEXT_OVERFLOW:
      self->context_overflow = g_value_get_enum (value);
      break;
    case PROP_N_THREADS:
      self->n_threads = g_value_get_uint (value);
      break;
    case PROP_ATTENTION:
      gst_object_replace ((GstObject **) & self->attention,
          g_value_get_object (value));
      break;
    case PROP_DEVICE:
      g_free (self->device);
      self->device = g_value_dup_string (value);
      break;
    case PROP_KV_TYPE:
      self->kv_type = g_value_get_enum (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_llm_encoder_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstLlmEncoder *self = GST_LLM_ENCODER (object);

  switch (prop_id) {
    case PROP_CONTEXT_LENGTH:
      g_value_set_uint (value, self->context_length);
      break;
    case PROP_CONTEXT_OVERFLOW:
      g_value_set_enum (value, self->context_overflow);
      break;
    case PROP_N_THREADS:
      g_value_set_uint (value, self->n_threads);
      break;
    case PROP_ATTENTION:
      g_value_set_object (value, self->attention);
      break;
    case PROP_DEVICE:
      g_value_set_string (value, self->device);
      break;
    case PROP_KV_TYPE:
      g_value_set_enum (value, self->kv_type);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_llm_encoder_finalize (GObject * object)
{
  GstLlmEncoder *self = GST_LLM_ENCODER (object);

  g_clear_pointer (&self->compute, llm_compute_free);
  g_clear_pointer (&self->hidden, g_free);
  gst_clear_object (&self->attention);
  g_free (self->device);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_llm_encoder_class_init (GstLlmEncoderClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  gobject_class->set_property = gst_llm_encoder_set_property;
  gobject_class->get_property = gst_llm_encoder_get_property;
  gobject_class->finalize = gst_llm_encoder_finalize;

  g_object_class_install_property (gobject_class, PROP_CONTEXT_LENGTH,
      g_param_spec_uint ("context-length", "Context length",
          "Positions of each sequence's KV cache (prompt + generated "
          "tokens); 0 = the model's training context", 0, G_MAXINT32,
          DEFAULT_CONTEXT_LENGTH, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_CONTEXT_OVERFLOW,
      g_param_spec_enum ("context-overflow", "Context overflow",
          "What to do with a prompt longer than the context",
          GST_TYPE_LLM_CONTEXT_OVERFLOW, DEFAULT_CONTEXT_OVERFLOW,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_N_THREADS,
      g_param_spec_uint ("n-threads", "Threads",
          "CPU threads for large matrix products; 0 = one per core", 0, 1024,
          DEFAULT_N_THREADS, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_ATTENTION,
      g_param_spec_object ("attention", "Attention",
          "The llmattention element whose settings this element's attention "
          "uses (NULL = defaults)", GST_TYPE_LLM_ATTENTION,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  g_object_class_install_property (gobject_class, PROP_DEVICE,
      gst_llm_element_device_param_spec (DEFAULT_DEVICE, "; the prompt's "
          "KV cache is made there, and llmdecoder (device=auto) follows"));
  g_object_class_install_property (gobject_class, PROP_KV_TYPE,
      g_param_spec_enum ("kv-type", "KV cache type",
          "What each sequence's KV cache holds (f16: GPU only)",
          GST_TYPE_LLM_KV_TYPE, DEFAULT_KV_TYPE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class, "LLM encoder",
      "Codec/Encoder/LLM",
      "Runs a model over a whole prompt at once (prefill into the KV cache)",
      "LLMasOS developers <llmasos@example.org>");
  element_class->change_state =
      GST_DEBUG_FUNCPTR (gst_llm_encoder_change_state);

  gst_type_mark_as_plugin_api (GST_TYPE_LLM_CONTEXT_OVERFLOW, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_LLM_KV_TYPE, 0);
  GST_DEBUG_CATEGORY_INIT (gst_llm_encoder_debug, "llmencoder", 0,
      "LLM encoder (prefill)");
}

static void
gst_llm_encoder_init (GstLlmEncoder * self)
{
  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_llm_encoder_chain));
  gst_pad_set_event_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_llm_encoder_sink_event));
  gst_pad_set_query_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_llm_encoder_query));
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);

  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_set_query_function (self->srcpad,
      GST_DEBUG_FUNCPTR (gst_llm_encoder_query));
  gst_pad_use_fixed_caps (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);

  self->context_length = DEFAULT_CONTEXT_LENGTH;
  self->context_overflow = DEFAULT_CONTEXT_OVERFLOW;
  self->kv_type = DEFAULT_KV_TYPE;
  self->n_threads = DEFAULT_N_THREADS;
  self->device = g_strdup (DEFAULT_DEVICE);
}
