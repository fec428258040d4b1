/* LLMasOS - text to token ids.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
/**
 * SECTION:element-llmtokenizer
 * @title: llmtokenizer
 *
 * Turns UTF-8 text into the token ids of a model's vocabulary. Where a
 * prompt ends is set by #GstLlmTokenizer:prompt-mode: the whole stream, each
 * line, or each buffer. Each prompt becomes one sequence: a
 * `llm-sequence-start` event, then one buffer of ids (gint32, native
 * endianness) whose #LlmSeqMeta names the sequence.
 *
 * The vocabulary's fingerprint travels in the caps, so this element cannot
 * link to an encoder that holds another model.
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

#include "gstllmtokenizer.h"
#include "llm-caps.h"
#include "llm-chat.h"
#include "llm-events.h"
#include "llm-meta.h"

#include <string.h>

GST_DEBUG_CATEGORY_STATIC (gst_llm_tokenizer_debug);
#define GST_CAT_DEFAULT gst_llm_tokenizer_debug

#define DEFAULT_PROMPT_MODE GST_LLM_PROMPT_MODE_STREAM
#define DEFAULT_ADD_SPECIAL TRUE
#define DEFAULT_INVALID_UTF8 GST_LLM_INVALID_UTF8_ERROR

enum
{
  PROP_0,
  PROP_PROMPT_MODE,
  PROP_ADD_SPECIAL,
  PROP_INVALID_UTF8,
  PROP_CHAT,
  PROP_SYSTEM_PROMPT,
  PROP_KEEP_HISTORY,
};

struct _GstLlmTokenizer
{
  GstLlmElement parent;

  GstPad *sinkpad, *srcpad;

  GstLlmPromptMode prompt_mode;
  gboolean add_special;
  GstLlmInvalidUtf8 invalid_utf8;
  gboolean chat;
  gchar *system_prompt;
  gboolean keep_history;

  guint64 conversation;         /* the kept sequence's id, 0 before */

  GByteArray *pending;          /* text not yet part of a finished prompt */
  gboolean started;             /* stream-start, caps, segment sent */
  guint64 n_prompts;
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS ("text/x-raw, format = (string) utf8"));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS (LLM_CAPS_TOKENS_TEMPLATE));

#define gst_llm_tokenizer_parent_class parent_class
G_DEFINE_TYPE (GstLlmTokenizer, gst_llm_tokenizer, GST_TYPE_LLM_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE (llmtokenizer, "llmtokenizer", GST_RANK_NONE,
    GST_TYPE_LLM_TOKENIZER);

#define GST_TYPE_LLM_PROMPT_MODE (gst_llm_prompt_mode_get_type ())
static GType
gst_llm_prompt_mode_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_LLM_PROMPT_MODE_STREAM, "The whole stream, up to EOS, is one prompt",
        "stream"},
    {GST_LLM_PROMPT_MODE_LINE, "Each line (ending in \\n) is a prompt",
        "line"},
    {GST_LLM_PROMPT_MODE_BUFFER, "Each buffer is a prompt", "buffer"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstLlmPromptMode", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

#define GST_TYPE_LLM_INVALID_UTF8 (gst_llm_invalid_utf8_get_type ())
static GType
gst_llm_invalid_utf8_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_LLM_INVALID_UTF8_ERROR, "Invalid UTF-8 in a prompt is an error",
        "error"},
    {GST_LLM_INVALID_UTF8_REPLACE,
        "Replace each invalid sequence by U+FFFD and go on", "replace"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstLlmInvalidUtf8", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

/* Sends stream-start, caps and segment once, checking first that
 * downstream accepts this vocabulary so that a mismatch names both. */
static gboolean
start_stream (GstLlmTokenizer * self, LlmModel * model)
{
  const LlmVocab *vocab = llm_model_get_vocab (model);
  GstCaps *caps, *peer;
  GstSegment segment;
  gchar *stream_id;
  gboolean ok;

  if (self->started)
    return TRUE;

  caps = llm_caps_new_tokens (vocab, 1);
  peer = gst_pad_peer_query_caps (self->srcpad, NULL);
  if (!gst_caps_can_intersect (caps, peer)) {
    const gchar *theirs = llm_caps_get_vocab (peer);

    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("Vocabulary mismatch: this tokenizer's model '%s' has vocabulary "
            "%s, but downstream accepts %s%s", llm_model_get_name (model),
            vocab->fingerprint, theirs ? "vocabulary " : "",
            theirs ? theirs : "no token stream of this kind"),
        ("downstream caps: %" GST_PTR_FORMAT, peer));
    gst_caps_unref (peer);
    gst_caps_unref (caps);
    return FALSE;
  }
  gst_caps_unref (peer);

  stream_id = gst_pad_create_stream_id (self->srcpad, GST_ELEMENT (self),
      "tokens");
  gst_pad_push_event (self->srcpad, gst_event_new_stream_start (stream_id));
  g_free (stream_id);
  ok = gst_pad_push_event (self->srcpad, gst_event_new_caps (caps));
  gst_caps_unref (caps);
  if (!ok) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL),
        ("downstream refused the token caps"));
    return FALSE;
  }
  gst_segment_init (&segment, GST_FORMAT_TIME);
  gst_pad_push_event (self->srcpad, gst_event_new_segment (&segment));
  self->started = TRUE;
  return TRUE;
}

static gboolean
prompt_has_text (const LlmVocab * vocab, const gint32 * ids, guint n)
{
  for (guint i = 0; i < n; i++)
    if (!llm_vocab_is_control (vocab, ids[i]))
      return TRUE;
  return FALSE;
}

/* Tokenizes one prompt and pushes its sequence downstream. */
static GstFlowReturn
push_prompt (GstLlmTokenizer * self, const gchar * text, gsize len)
{
  LlmModel *model;
  const LlmVocab *vocab;
  GError *err = NULL;
  GArray *ids;
  GstBuffer *buf;
  LlmSeqMeta *meta;
  guint64 seq_id;
  GstFlowReturn ret;
  gboolean continues;
  gchar *owned = NULL;
  GstEvent *start;

  model = gst_llm_element_ensure_model (GST_LLM_ELEMENT (self), self->srcpad);
  if (model == NULL)
    return GST_FLOW_ERROR;
  if (!start_stream (self, model))
    return GST_FLOW_NOT_NEGOTIATED;
  vocab = llm_model_get_vocab (model);
  continues = self->keep_history && self->conversation != 0;

  if (self->invalid_utf8 == GST_LLM_INVALID_UTF8_REPLACE &&
      !g_utf8_validate_len (text, len, NULL)) {
    owned = g_utf8_make_valid (text, len);
    GST_DEBUG_OBJECT (self, "replaced invalid UTF-8 in prompt %"
        G_GUINT64_FORMAT, self->n_prompts + 1);
    text = owned;
    len = strlen (owned);
  }
  if ((self->chat || self->system_prompt) && !g_utf8_validate_len (text, len,
          NULL)) {
    /* Leave the message to the tokenizer's own UTF-8 error below. */
  } else if (self->chat || self->system_prompt) {
    LlmChatFamily family =
        llm_chat_family_for_model (llm_model_get_file (model));
    gchar *user = g_strndup (text, len);

    if (family == LLM_CHAT_NONE || family == LLM_CHAT_UNKNOWN) {
      GST_ELEMENT_ERROR (self, LIBRARY, SETTINGS,
          ("Model '%s' has %s chat template: chat and system-prompt need "
              "a Gemma, ChatML or Llama 3 template",
              llm_model_get_name (model),
              family == LLM_CHAT_NONE ? "no" : "an unknown"), (NULL));
      g_free (user);
      g_free (owned);
      return GST_FLOW_ERROR;
    }
    g_free (owned);
    owned = llm_chat_format_turn (family, self->system_prompt, user,
        !continues);
    g_free (user);
    text = owned;
    len = strlen (owned);
  }
  ids = llm_vocab_encode (vocab, text, len, self->add_special && !continues,
      &err);
  g_free (owned);
  if (ids == NULL) {
    GST_ELEMENT_ERROR (self, STREAM, DECODE,
        ("Cannot tokenize prompt %" G_GUINT64_FORMAT ": %s",
            self->n_prompts + 1, err->message), (NULL));
    g_clear_error (&err);
    return GST_FLOW_ERROR;
  }
  self->n_prompts++;
  if (ids->len == 0) {
    /* Nothing to continue from (an empty prompt without BOS). */
    GST_ELEMENT_WARNING (self, STREAM, DECODE, ("Prompt %" G_GUINT64_FORMAT
            " has no tokens: skipped", self->n_prompts), (NULL));
    g_array_unref (ids);
    return GST_FLOW_OK;
  }
  if (continues) {
    seq_id = self->conversation;
  } else {
    seq_id = llm_model_next_sequence_id (model);
    if (self->keep_history)
      self->conversation = seq_id;
  }
  GST_DEBUG_OBJECT (self, "prompt %" G_GUINT64_FORMAT ": %u bytes -> %u "
      "tokens, sequence %" G_GUINT64_FORMAT, self->n_prompts, (guint) len,
      ids->len, seq_id);

  start = llm_event_new_sequence_start (seq_id, ids->len, continues ||
      prompt_has_text (vocab, (gint32 *) ids->data, ids->len));
  llm_event_sequence_start_set_keep (start, self->keep_history);
  gst_pad_push_event (self->srcpad, start);

  buf = gst_buffer_new_memdup (ids->data, ids->len * sizeof (gint32));
  meta = llm_buffer_add_seq_meta (buf);
  llm_seq_meta_add_row (meta, seq_id, 0, ids->len);
  g_array_unref (ids);
  ret = gst_pad_push (self->srcpad, buf);
  return ret;
}

/* Line mode: every complete line in the pending text is a prompt. */
static GstFlowReturn
push_lines (GstLlmTokenizer * self)
{
  GstFlowReturn ret = GST_FLOW_OK;
  gsize start = 0;

  for (gsize i = 0; i < self->pending->len && ret == GST_FLOW_OK; i++) {
    if (self->pending->data[i] != '\n')
      continue;
    gsize end = i;
    if (end > start && self->pending->data[end - 1] == '\r')
      end--;
    /* Empty lines are not prompts. */
    if (end > start)
      ret = push_prompt (self, (const gchar *) self->pending->data + start,
          end - start);
    start = i + 1;
  }
  g_byte_array_remove_range (self->pending, 0, start);
  return ret;
}

static GstFlowReturn
gst_llm_tokenizer_chain (GstPad * pad, GstObject * parent, GstBuffer * buf)
{
  GstLlmTokenizer *self = GST_LLM_TOKENIZER (parent);
  GstFlowReturn ret = GST_FLOW_OK;
  GstMapInfo map;

  if (!gst_buffer_map (buf, &map, GST_MAP_READ)) {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, RESOURCE, READ, (NULL), ("cannot map buffer"));
    return GST_FLOW_ERROR;
  }
  switch (self->prompt_mode) {
    case GST_LLM_PROMPT_MODE_BUFFER:
      ret = push_prompt (self, (const gchar *) map.data, map.size);
      break;
    case GST_LLM_PROMPT_MODE_LINE:
      g_byte_array_append (self->pending, map.data, map.size);
      ret = push_lines (self);
      break;
    case GST_LLM_PROMPT_MODE_STREAM:
      g_byte_array_append (self->pending, map.data, map.size);
      break;
  }
  gst_buffer_unmap (buf, &map);
  gst_buffer_unref (buf);
  return ret;
}

/* At EOS: the stream's prompt (possibly empty: then BOS alone starts the
 * generation), or a last line without its newline. */
static GstFlowReturn
finish_stream (GstLlmTokenizer * self)
{
  GstFlowReturn ret = GST_FLOW_OK;

  if (self->prompt_mode == GST_LLM_PROMPT_MODE_STREAM)
    ret = push_prompt (self, (const gchar *) self->pending->data,
        self->pending->len);
  else if (self->prompt_mode == GST_LLM_PROMPT_MODE_LINE
      && self->pending->len > 0)
    ret = push_prompt (self, (const gchar *) self->pending->data,
        self->pending->len);
  g_byte_array_set_size (self->pending, 0);
  return ret;
}

static gboolean
gst_llm_tokenizer_sink_event (GstPad * pad, GstObject * parent,
    GstEvent * event)
{
  GstLlmTokenizer *self = GST_LLM_TOKENIZER (parent);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS:
    case GST_EVENT_SEGMENT:
    case GST_EVENT_STREAM_START:
      /* Our src pad has its own stream; sent with the first prompt. */
      gst_event_unref (event);
      return TRUE;
    case GST_EVENT_EOS:
      if (finish_stream (self) != GST_FLOW_OK) {
        /* The error is posted; still let downstream finish. */
      }
      if (!self->started) {
        /* No prompt at all (line mode, empty input): an empty stream. */
        gchar *stream_id = gst_pad_create_stream_id (self->srcpad,
            GST_ELEMENT (self), "tokens");
        GstSegment segment;

        gst_pad_push_event (self->srcpad,
            gst_event_new_stream_start (stream_id));
        g_free (stream_id);
        gst_segment_init (&segment, GST_FORMAT_TIME);
        gst_pad_push_event (self->srcpad, gst_event_new_segment (&segment));
        self->started = TRUE;
      }
      return gst_pad_push_event (self->srcpad, event);
    case GST_EVENT_FLUSH_STOP:{
      gboolean ok;

      /* A flush frees every sequence, conversations included. */
      self->conversation = 0;
      g_byte_array_set_size (self->pending, 0);
      ok = gst_pad_push_event (self->srcpad, event);
      /* The flush reset the running time: our stream needs a new segment
       * before its next prompt. */
      if (self->started) {
        GstSegment segment;

        gst_segment_init (&segment, GST_FORMAT_TIME);
        gst_pad_push_event (self->srcpad, gst_event_new_segment (&segment));
      }
      return ok;
    }
    default:
      break;
  }
  return gst_pad_event_default (pad, parent, event);
}

static gboolean
gst_llm_tokenizer_query (GstPad * pad, GstObject * parent, GstQuery * query)
{
  if (gst_llm_element_handle_query (GST_LLM_ELEMENT (parent), query))
    return TRUE;
  return gst_pad_query_default (pad, parent, query);
}

static GstStateChangeReturn
gst_llm_tokenizer_change_state (GstElement * element,
    GstStateChange transition)
{
  GstLlmTokenizer *self = GST_LLM_TOKENIZER (element);
  GstStateChangeReturn ret;

  ret = GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) {
    g_byte_array_set_size (self->pending, 0);
    self->started = FALSE;
    self->n_prompts = 0;
    self->conversation = 0;
  }
  return ret;
}

static void
gst_llm_tokenizer_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstLlmTokenizer *self = GST_LLM_TOKENIZER (object);

  switch (prop_id) {
    case PROP_PROMPT_MODE:
      self->prompt_mode = g_value_get_enum (value);
      break;
    case PROP_ADD_SPECIAL:
      self->add_special = g_value_get_boolean (value);
      break;
    case PROP_INVALID_UTF8:
      self->invalid_utf8 = g_value_get_enum (value);
      break;
    case PROP_CHAT:
      self->chat = g_value_get_boolean (value);
      break;
    case PROP_SYSTEM_PROMPT:
      g_free (self->system_prompt);
      self->system_prompt = g_value_dup_string (value);
      break;
    case PROP_KEEP_HISTORY:
      self->keep_history = g_value_get_boolean (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_llm_tokenizer_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstLlmTokenizer *self = GST_LLM_TOKENIZER (object);

  switch (prop_id) {
    case PROP_PROMPT_MODE:
      g_value_set_enum (value, self->prompt_mode);
      break;
    case PROP_ADD_SPECIAL:
      g_value_set_boolean (value, self->add_special);
      break;
    case PROP_INVALID_UTF8:
      g_value_set_enum (value, self->invalid_utf8);
      break;
    case PROP_CHAT:
      g_value_set_boolean (value, self->chat);
      break;
    case PROP_SYSTEM_PROMPT:
      g_value_set_string (value, self->system_prompt);
      break;
    case PROP_KEEP_HISTORY:
      g_value_set_boolean (value, self->keep_history);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_llm_tokenizer_finalize (GObject * object)
{
  GstLlmTokenizer *self = GST_LLM_TOKENIZER (object);

  g_byte_array_unref (self->pending);
  g_free (self->system_prompt);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_llm_tokenizer_class_init (GstLlmTokenizerClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  gobject_class->set_property = gst_llm_tokenizer_set_property;
  gobject_class->get_property = gst_llm_tokenizer_get_property;
  gobject_class->finalize = gst_llm_tokenizer_finalize;

  g_object_class_install_property (gobject_class, PROP_PROMPT_MODE,
      g_param_spec_enum ("prompt-mode", "Prompt mode",
          "Where one prompt ends and the next begins",
          GST_TYPE_LLM_PROMPT_MODE, DEFAULT_PROMPT_MODE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_ADD_SPECIAL,
      g_param_spec_boolean ("add-special", "Add special tokens",
          "Add the BOS/EOS tokens the model's tokenizer asks for",
          DEFAULT_ADD_SPECIAL,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  g_object_class_install_property (gobject_class, PROP_INVALID_UTF8,
      g_param_spec_enum ("invalid-utf8", "Invalid UTF-8",
          "What to do with a prompt that is not valid UTF-8",
          GST_TYPE_LLM_INVALID_UTF8, DEFAULT_INVALID_UTF8,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  g_object_class_install_property (gobject_class, PROP_CHAT,
      g_param_spec_boolean ("chat", "Chat",
          "Wrap each prompt in the model's chat template as a user turn "
          "(Gemma, ChatML and Llama 3 templates are recognised)", FALSE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_SYSTEM_PROMPT,
      g_param_spec_string ("system-prompt", "System prompt",
          "System prompt of the conversation (implies chat)", NULL,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_KEEP_HISTORY,
      g_param_spec_boolean ("keep-history", "Keep history",
          "Each prompt continues one conversation: the earlier prompts and "
          "replies stay in the KV cache instead of starting afresh", FALSE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class, "LLM tokenizer",
      "Filter/Text/LLM", "Turns UTF-8 text into a model's token ids",
      "LLMasOS developers <llmasos@example.org>");
  element_class->change_state =
      GST_DEBUG_FUNCPTR (gst_llm_tokenizer_change_state);

  gst_type_mark_as_plugin_api (GST_TYPE_LLM_PROMPT_MODE, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_LLM_INVALID_UTF8, 0);
  GST_DEBUG_CATEGORY_INIT (gst_llm_tokenizer_debug, "llmtokenizer", 0,
      "LLM tokenizer");
}

static void
gst_llm_tokenizer_init (GstLlmTokenizer * self)
{
  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_llm_tokenizer_chain));
  gst_pad_set_event_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_llm_tokenizer_sink_event));
  gst_pad_set_query_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_llm_tokenizer_query));
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);

  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_set_query_function (self->srcpad,
      GST_DEBUG_FUNCPTR (gst_llm_tokenizer_query));
  gst_pad_use_fixed_caps (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);

  self->prompt_mode = DEFAULT_PROMPT_MODE;
  self->add_special = DEFAULT_ADD_SPECIAL;
  self->invalid_utf8 = DEFAULT_INVALID_UTF8;
  self->pending = g_byte_array_new ();
}
