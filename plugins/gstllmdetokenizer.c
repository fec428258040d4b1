/* LLMasOS - token ids to UTF-8 text.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
/**
 * SECTION:element-llmdetokenizer
 * @title: llmdetokenizer
 *
 * Turns token ids back into UTF-8 text as they arrive, one buffer per token
 * that completes some text, never splitting a multi-byte character (a
 * character spelled by several byte tokens comes out whole with the last of
 * them).
 *
 * #GstLlmDetokenizer:stop-strings end a sequence where one of the strings
 * appears: the text stops just before it and llmdecoder is told (an
 * upstream `llm-sequence-stop` event) to stop generating.
 *
 * When several sequences are decoded together (llmdecoder max-batch > 1),
 * their texts are delivered one whole sequence after another, in the order
 * the prompts came, with #GstLlmDetokenizer:separator after each.
 *
 * ## Example launch line
 * |[
 * echo -n "Once upon a time" | gst-launch-1.0 -q fdsrc ! \
 *   llmtokenizer model=stories260K ! llmencoder ! llmdecoder max-tokens=200 ! \
 *   llmsampler temperature=0 ! llmdetokenizer stop-strings="<\"Lily\">" ! fdsink
 * ]|
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstllmdetokenizer.h"
#include "llm-caps.h"
#include "llm-detok.h"
#include "llm-events.h"
#include "llm-meta.h"

#include <string.h>

GST_DEBUG_CATEGORY_STATIC (gst_llm_detokenizer_debug);
#define GST_CAT_DEFAULT gst_llm_detokenizer_debug

#define DEFAULT_SEPARATOR ""

enum
{
  PROP_0,
  PROP_STOP_STRINGS,
  PROP_SEPARATOR,
};

/* One sequence's text on its way out. */
typedef struct
{
  guint64 id;
  LlmDetok *detok;
  GString *held;                /* text waiting for earlier sequences */
  GstEvent *start_event;
  GstEvent *end_event;          /* the decoder's llm-sequence-end, or NULL */
  gboolean ended;
  gboolean stopped;             /* a stop string was reached */
} DetokSeq;

struct _GstLlmDetokenizer
{
  GstLlmElement parent;

  GstPad *sinkpad, *srcpad;

  gchar **stop_strings;         /* property, NULL-terminated */
  gchar *separator;

  GQueue order;                 /* DetokSeq*, the head streams directly */
  GString *scratch;
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS (LLM_CAPS_TOKENS_TEMPLATE));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS ("text/x-raw, format = (string) utf8"));

#define gst_llm_detokenizer_parent_class parent_class
G_DEFINE_TYPE (GstLlmDetokenizer, gst_llm_detokenizer, GST_TYPE_LLM_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE (llmdetokenizer, "llmdetokenizer", GST_RANK_NONE,
    GST_TYPE_LLM_DETOKENIZER);

static void
detok_seq_free (DetokSeq * s)
{
  llm_detok_free (s->detok);
  g_string_free (s->held, TRUE);
  if (s->start_event)
    gst_event_unref (s->start_event);
  if (s->end_event)
    gst_event_unref (s->end_event);
  g_free (s);
}

static DetokSeq *
find_seq (GstLlmDetokenizer * self, guint64 id)
{
  for (GList * l = self->order.head; l; l = l->next) {
    DetokSeq *s = l->data;
    if (s->id == id)
      return s;
  }
  return NULL;
}

static DetokSeq *
add_seq (GstLlmDetokenizer * self, LlmModel * model, guint64 id,
    gboolean strip_leading_space, GstEvent * start_event)
{
  DetokSeq *s = g_new0 (DetokSeq, 1);

  s->id = id;
  GST_OBJECT_LOCK (self);
  s->detok = llm_detok_new (llm_model_get_vocab (model),
      (const gchar * const *) self->stop_strings);
  GST_OBJECT_UNLOCK (self);
  llm_detok_reset (s->detok, strip_leading_space);
  s->held = g_string_new (NULL);
  s->start_event = start_event;
  g_queue_push_tail (&self->order, s);
  return s;
}

static GstFlowReturn
push_text (GstLlmDetokenizer * self, const gchar * text, gsize len)
{
  GstBuffer *buf;

  if (len == 0)
    return GST_FLOW_OK;
  buf = gst_buffer_new_memdup (text, len);
  return gst_pad_push (self->srcpad, buf);
}

/* Delivers, in order, the head sequence's held text and every finished
 * sequence at the front of the queue. */
static GstFlowReturn
drain_order (GstLlmDetokenizer * self)
{
  GstFlowReturn ret = GST_FLOW_OK;
  DetokSeq *s;

  while ((s = g_queue_peek_head (&self->order)) && ret == GST_FLOW_OK) {
    if (s->start_event) {
      gst_pad_push_event (self->srcpad, s->start_event);
      s->start_event = NULL;
    }
    ret = push_text (self, s->held->str, s->held->len);
    g_string_truncate (s->held, 0);
    if (!s->ended)
      break;
    if (self->separator && *self->separator)
      ret = push_text (self, self->separator, strlen (self->separator));
    /* Forward the decoder's own end event, with its reason and count. */
    gst_pad_push_event (self->srcpad, s->end_event ? s->end_event :
        llm_event_new_sequence_end (s->id, LLM_END_REASON_STOPPED, 0));
    s->end_event = NULL;
    g_queue_pop_head (&self->order);
    detok_seq_free (s);
  }
  return ret;
}

static GstFlowReturn
gst_llm_detokenizer_chain (GstPad * pad, GstObject * parent, GstBuffer * buf)
{
  GstLlmDetokenizer *self = GST_LLM_DETOKENIZER (parent);
  LlmSeqMeta *meta = llm_buffer_get_seq_meta (buf);
  LlmModel *model;
  GstFlowReturn ret = GST_FLOW_OK;
  GstMapInfo map;
  const gint32 *ids;
  guint n, pos = 0;

  model = gst_llm_element_ensure_model (GST_LLM_ELEMENT (self), self->sinkpad);
  if (model == NULL) {
    gst_buffer_unref (buf);
    return GST_FLOW_ERROR;
  }
  gst_buffer_map (buf, &map, GST_MAP_READ);
  ids = (const gint32 *) map.data;
  n = map.size / sizeof (gint32);

  /* Without a meta the whole buffer is one anonymous sequence (id 0). */
  for (guint r = 0; r < (meta ? meta->n_rows : 1); r++) {
    guint64 id = meta ? meta->rows[r].seq_id : 0;
    guint count = meta ? meta->rows[r].n_tokens : n;
    DetokSeq *s = find_seq (self, id);

    if (s == NULL)
      s = add_seq (self, model, id, FALSE, NULL);
    for (guint i = 0; i < count && pos < n; i++, pos++) {
      if (s->stopped)
        continue;
      g_string_truncate (self->scratch, 0);
      if (llm_detok_push (s->detok, ids[pos], self->scratch)) {
        s->stopped = TRUE;
        GST_DEBUG_OBJECT (self, "stop string in sequence %" G_GUINT64_FORMAT,
            id);
        gst_pad_push_event (self->sinkpad, llm_event_new_sequence_stop (id));
      }
      g_string_append_len (s->held, self->scratch->str, self->scratch->len);
    }
  }
  gst_buffer_unmap (buf, &map);
  gst_buffer_unref (buf);

  ret = drain_order (self);
  return ret;
}

static void
end_seq (GstLlmDetokenizer * self, guint64 id, GstEvent * end_event)
{
  DetokSeq *s = find_seq (self, id);

  if (s == NULL) {
    if (end_event)
      gst_event_unref (end_event);
    return;
  }
  if (end_event) {
    gst_event_replace (&s->end_event, end_event);
    gst_event_unref (end_event);
  }
  g_string_truncate (self->scratch, 0);
  if (!s->stopped)
    llm_detok_finish (s->detok, self->scratch);
  g_string_append_len (s->held, self->scratch->str, self->scratch->len);
  s->ended = TRUE;
}

static gboolean
gst_llm_detokenizer_sink_event (GstPad * pad, GstObject * parent,
    GstEvent * event)
{
  GstLlmDetokenizer *self = GST_LLM_DETOKENIZER (parent);
  guint64 id;
  guint n_prompt;
  gboolean has_text;
  LlmModel *model;

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS:{
      GstCaps *caps = gst_caps_from_string ("text/x-raw, format=utf8");
      gboolean ok;

      gst_event_unref (event);
      ok = gst_pad_push_event (self->srcpad, gst_event_new_caps (caps));
      gst_caps_unref (caps);
      return ok;
    }
    case GST_EVENT_CUSTOM_DOWNSTREAM:
      if (llm_event_parse_sequence_start (event, &id, &n_prompt, &has_text)) {
        model = gst_llm_element_ensure_model (GST_LLM_ELEMENT (self),
            self->sinkpad);
        if (model == NULL) {
          gst_event_unref (event);
          return FALSE;
        }
        if (find_seq (self, id) == NULL)
          add_seq (self, model, id, !has_text, event);
        else
          gst_event_unref (event);
        drain_order (self);
        return TRUE;
      }
      if (llm_event_parse_sequence_end (event, &id, NULL, NULL)) {
        end_seq (self, id, event);
        drain_order (self);
        return TRUE;
      }
      break;
    case GST_EVENT_EOS:
      /* Sequences the decoder never ended (should not happen) still get
       * their text out. */
      for (GList * l = self->order.head; l; l = l->next)
        end_seq (self, ((DetokSeq *) l->data)->id, NULL);
      drain_order (self);
      break;
    case GST_EVENT_FLUSH_STOP:
      g_queue_clear_full (&self->order, (GDestroyNotify) detok_seq_free);
      break;
    default:
      break;
  }
  return gst_pad_event_default (pad, parent, event);
}

static gboolean
gst_llm_detokenizer_query (GstPad * pad, GstObject * parent, GstQuery * query)
{
  if (gst_llm_element_handle_query (GST_LLM_ELEMENT (parent), query))
    return TRUE;
  return gst_pad_query_default (pad, parent, query);
}

static GstStateChangeReturn
gst_llm_detokenizer_change_state (GstElement * element,
    GstStateChange transition)
{
  GstLlmDetokenizer *self = GST_LLM_DETOKENIZER (element);
  GstStateChangeReturn ret;

  ret = GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) {
    g_queue_clear_full (&self->order, (GDestroyNotify) detok_seq_free);
  }
  return ret;
}

static void
gst_llm_detokenizer_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstLlmDetokenizer *self = GST_LLM_DETOKENIZER (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_STOP_STRINGS:{
      guint n = gst_value_array_get_size (value);

      g_strfreev (self->stop_strings);
      self->stop_strings = g_new0 (gchar *, n + 1);
      for (guint i = 0; i < n; i++)
        self->stop_strings[i] =
            g_value_dup_string (gst_value_array_get_value (value, i));
      break;
    }
    case PROP_SEPARATOR:
      g_free (self->separator);
      /* C escapes, so that a launch line can say separator="\\n". */
      self->separator = g_value_get_string (value) ?
          g_strcompress (g_value_get_string (value)) : NULL;
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_llm_detokenizer_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstLlmDetokenizer *self = GST_LLM_DETOKENIZER (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_STOP_STRINGS:
      for (guint i = 0; self->stop_strings && self->stop_strings[i]; i++) {
        GValue v = G_VALUE_INIT;

        g_value_init (&v, G_TYPE_STRING);
        g_value_set_string (&v, self->stop_strings[i]);
        gst_value_array_append_and_take_value (value, &v);
      }
      break;
    case PROP_SEPARATOR:
      g_value_set_string (value, self->separator);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_llm_detokenizer_finalize (GObject * object)
{
  GstLlmDetokenizer *self = GST_LLM_DETOKENIZER (object);

  g_queue_clear_full (&self->order, (GDestroyNotify) detok_seq_free);
  g_strfreev (self->stop_strings);
  g_free (self->separator);
  g_string_free (self->scratch, TRUE);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_llm_detokenizer_class_init (GstLlmDetokenizerClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  gobject_class->set_property = gst_llm_detokenizer_set_property;
  gobject_class->get_property = gst_llm_detokenizer_get_property;
  gobject_class->finalize = gst_llm_detokenizer_finalize;

  g_object_class_install_property (gobject_class, PROP_STOP_STRINGS,
      gst_param_spec_array ("stop-strings", "Stop strings",
          "A sequence ends where one of these strings appears; the string "
          "itself is not output",
          g_param_spec_string ("stop-string", "Stop string",
              "A string that ends a sequence", NULL,
              G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS),
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_SEPARATOR,
      g_param_spec_string ("separator", "Separator",
          "Text output after each sequence's text, C escapes understood "
          "(e.g. \\n with llmtokenizer prompt-mode=line)", DEFAULT_SEPARATOR,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class, "LLM detokenizer",
      "Filter/Text/LLM",
      "Turns token ids into UTF-8 text, streamed token by token",
      "LLMasOS developers <llmasos@example.org>");
  element_class->change_state =
      GST_DEBUG_FUNCPTR (gst_llm_detokenizer_change_state);

  GST_DEBUG_CATEGORY_INIT (gst_llm_detokenizer_debug, "llmdetokenizer", 0,
      "LLM detokenizer");
}

static void
gst_llm_detokenizer_init (GstLlmDetokenizer * self)
{
  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_llm_detokenizer_chain));
  gst_pad_set_event_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_llm_detokenizer_sink_event));
  gst_pad_set_query_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_llm_detokenizer_query));
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);

  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_set_query_function (self->srcpad,
      GST_DEBUG_FUNCPTR (gst_llm_detokenizer_query));
  gst_pad_use_fixed_caps (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);

  self->separator = g_strdup (DEFAULT_SEPARATOR);
  self->scratch = g_string_new (NULL);
  g_queue_init (&self->order);
}
