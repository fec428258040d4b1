/* LLMasOS - choosing tokens from logits.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
/**
 * SECTION:element-llmsampler
 * @title: llmsampler
 *
 * Chooses the next token of every sequence in a logits buffer: greedy
 * (temperature=0), or a draw after repetition penalty, temperature, top-k,
 * top-p and min-p. It pushes the chosen ids downstream (one row per
 * sequence) and sends them upstream in an `llm-token` event, which is what
 * lets llmdecoder run the next step.
 *
 * Each sequence has its own random state, seeded from #GstLlmSampler:seed
 * plus the sequence's order of arrival, so one seed gives the same text on
 * every run.
 *
 * Logits in device memory (caps feature `memory:CUDATensor`, from
 * llmdecoder on a GPU) are sampled on their device: the random numbers are
 * still drawn here, from each sequence's state, and only the chosen ids
 * cross to the host. A repetition penalty needs the history, which lives
 * here: with one, the logits are copied to the host and sampled there.
 *
 * ## Example launch line
 * |[
 * echo -n "Once upon a time" | gst-launch-1.0 -q fdsrc ! \
 *   llmtokenizer model=stories260K ! llmencoder ! llmdecoder max-tokens=64 ! \
 *   llmsampler temperature=0.8 top-p=0.95 seed=42 ! llmdetokenizer ! fdsink
 * ]|
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstllmsampler.h"
#include "llm-caps.h"
#include "llm-device-memory.h"
#include "llm-events.h"
#include "llm-meta.h"
#include "llm-sampler.h"

GST_DEBUG_CATEGORY_STATIC (gst_llm_sampler_debug);
#define GST_CAT_DEFAULT gst_llm_sampler_debug

#define DEFAULT_TEMPERATURE 0.8
#define DEFAULT_TOP_K 40
#define DEFAULT_TOP_P 0.95
#define DEFAULT_MIN_P 0.05
#define DEFAULT_REPEAT_PENALTY 1.0
#define DEFAULT_REPEAT_LAST_N 64
#define DEFAULT_SEED -1

enum
{
  PROP_0,
  PROP_TEMPERATURE,
  PROP_TOP_K,
  PROP_TOP_P,
  PROP_MIN_P,
  PROP_REPEAT_PENALTY,
  PROP_REPEAT_LAST_N,
  PROP_SEED,
};

struct _GstLlmSampler
{
  GstLlmElement parent;

  GstPad *sinkpad, *srcpad;

  LlmSamplerParams params;      /* seed is the effective one */
  gint64 seed;                  /* the property: -1 = random */

  GHashTable *samplers;         /* seq id -> LlmSampler* */
  guint64 n_sequences;          /* sequences seen, for per-sequence seeds */
};

/* sink: the logits template in device memory and in system memory
 * (class_init) */

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS (LLM_CAPS_TOKENS_TEMPLATE));

#define gst_llm_sampler_parent_class parent_class
G_DEFINE_TYPE (GstLlmSampler, gst_llm_sampler, GST_TYPE_LLM_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE (llmsampler, "llmsampler", GST_RANK_NONE,
    GST_TYPE_LLM_SAMPLER);

static LlmSampler *
sampler_for (GstLlmSampler * self, guint64 seq_id, guint n_vocab)
{
  LlmSampler *s = g_hash_table_lookup (self->samplers, &seq_id);
  LlmSamplerParams p;
  guint64 *key;

  if (s)
    return s;
  GST_OBJECT_LOCK (self);
  p = self->params;
  GST_OBJECT_UNLOCK (self);
  p.seed += self->n_sequences++;
  s = llm_sampler_new (&p, n_vocab);
  key = g_new (guint64, 1);
  *key = seq_id;
  g_hash_table_insert (self->samplers, key, s);
  return s;
}

/* The parameters a device sampler gets for @s, or FALSE if sampling @s
 * needs the host (a repetition penalty reads the history kept here). */
static gboolean
device_params (LlmSampler * s, LlmSamplerParams * p)
{
  llm_sampler_get_params (s, p);
  if (p->repeat_penalty != 1.0 && p->repeat_last_n > 0)
    return FALSE;
  p->repeat_penalty = 1.0;      /* a window of 0 makes any penalty a no-op */
  p->seed = 0;                  /* the coins carry the randomness */
  return TRUE;
}

static gboolean
same_params (const LlmSamplerParams * a, const LlmSamplerParams * b)
{
  return a->temperature == b->temperature && a->top_k == b->top_k &&
      a->top_p == b->top_p && a->min_p == b->min_p;
}

/* The one device memory of @buf if every row of it can be sampled on its
 * device, else NULL. */
static GstMemory *
device_logits (GstBuffer * buf, LlmSampler ** s, guint n_rows)
{
  LlmSamplerParams p;
  GstMemory *mem;

  if (gst_buffer_n_memory (buf) != 1)
    return NULL;
  mem = gst_buffer_peek_memory (buf, 0);
  if (!gst_is_llm_device_memory (mem) ||
      llm_device_memory_get_backend (mem)->sample == NULL)
    return NULL;
  for (guint r = 0; r < n_rows; r++)
    if (!device_params (s[r], &p))
      return NULL;
  return mem;
}

/* Samples the rows on the device of @mem. Each sequence's coin is drawn
 * here, as llm_sampler_sample() would draw it, and the chosen id noted in
 * its history, so the sequence's state is the same as after a host
 * sample. Rows with equal parameters go in one call. */
static gboolean
sample_on_device (GstBuffer * buf, GstMemory * mem, LlmSampler ** s,
    guint n_rows, guint n_vocab, gint32 * toks, GError ** error)
{
  const LlmBackend *backend = llm_device_memory_get_backend (mem);
  gdouble coins[LLM_MAX_BATCH];
  gboolean ok = TRUE;
  GstMapInfo map;

  if (!gst_buffer_map (buf, &map, (GstMapFlags) (LLM_MAP_DEVICE |
              GST_MAP_READ))) {
    g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_FAILED,
        "cannot map the device logits");
    return FALSE;
  }
  for (guint r = 0; r < n_rows; r++)
    coins[r] = llm_sampler_needs_coin (s[r]) ?
        llm_sampler_draw_coin (s[r]) : 0.0;
  for (guint first = 0, end; ok && first < n_rows; first = end) {
    LlmSamplerParams p, q;

    device_params (s[first], &p);
    for (end = first + 1; end < n_rows; end++) {
      device_params (s[end], &q);
      if (!same_params (&p, &q))
        break;
    }
    ok = backend->sample (llm_device_memory_get_index (mem),
        (const float *) map.data + (gsize) first * n_vocab, n_vocab,
        end - first, &p, p.temperature > 0.0 ? coins + first : NULL,
        toks + first, error);
  }
  gst_buffer_unmap (buf, &map);
  if (ok)
    for (guint r = 0; r < n_rows; r++)
      llm_sampler_note (s[r], toks[r]);
  return ok;
}

/* The CPU path; device memory is downloaded by the map (once). */
static gboolean
sample_on_host (GstBuffer * buf, LlmSampler ** s, guint n_rows,
    guint n_vocab, gint32 * toks, GError ** error)
{
  GstMapInfo map;

  if (!gst_buffer_map (buf, &map, GST_MAP_READ)) {
    g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_FAILED,
        "cannot map the logits");
    return FALSE;
  }
  for (guint r = 0; r < n_rows; r++)
    toks[r] = llm_sampler_sample (s[r], (const float *) map.data +
        (gsize) r * n_vocab);
  gst_buffer_unmap (buf, &map);
  return TRUE;
}

static GstFlowReturn
gst_llm_sampler_chain (GstPad * pad, GstObject * parent, GstBuffer * buf)
{
  GstLlmSampler *self = GST_LLM_SAMPLER (parent);
  LlmSeqMeta *meta = llm_buffer_get_seq_meta (buf);
  LlmModel *model;
  guint n_vocab;
  guint64 ids[LLM_MAX_BATCH];
  gint32 toks[LLM_MAX_BATCH];
  LlmSampler *samplers[LLM_MAX_BATCH];
  LlmSeqMeta *out_meta;
  GstBuffer *out;
  GstMemory *mem;
  GstFlowReturn ret;
  GError *err = NULL;
  gboolean ok;
  guint n_rows;

  model = gst_llm_element_ensure_model (GST_LLM_ELEMENT (self), self->sinkpad);
  if (model == NULL) {
    gst_buffer_unref (buf);
    return GST_FLOW_ERROR;
  }
  n_vocab = llm_model_get_vocab (model)->n_tokens;
  if (meta == NULL || gst_buffer_get_size (buf) != (gsize) meta->n_rows *
      n_vocab * sizeof (float)) {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, STREAM, FORMAT, (NULL),
        ("logits buffer does not match its sequence meta"));
    return GST_FLOW_ERROR;
  }
  n_rows = meta->n_rows;
  out = gst_buffer_new_allocate (NULL, n_rows * sizeof (gint32), NULL);
  out_meta = llm_buffer_add_seq_meta (out);
  for (guint r = 0; r < n_rows; r++) {
    samplers[r] = sampler_for (self, meta->rows[r].seq_id, n_vocab);
    ids[r] = meta->rows[r].seq_id;
    llm_seq_meta_add_row (out_meta, ids[r], meta->rows[r].position, 1);
  }
  if ((mem = device_logits (buf, samplers, n_rows)) != NULL)
    ok = sample_on_device (buf, mem, samplers, n_rows, n_vocab, toks, &err);
  else
    ok = sample_on_host (buf, samplers, n_rows, n_vocab, toks, &err);
  gst_buffer_unref (buf);
  if (!ok) {
    gst_buffer_unref (out);
    GST_ELEMENT_ERROR (self, STREAM, FAILED, ("Sampling failed: %s",
            err->message), (NULL));
    g_clear_error (&err);
    return GST_FLOW_ERROR;
  }
  gst_buffer_fill (out, 0, toks, n_rows * sizeof (gint32));

  /* Downstream first, so that the token is out before the decoder can
   * announce the end of its sequence. */
  ret = gst_pad_push (self->srcpad, out);
  if (ret == GST_FLOW_OK || ret == GST_FLOW_NOT_LINKED)
    gst_pad_push_event (self->sinkpad, llm_event_new_token (n_rows, ids,
            toks));
  return ret;
}

static gboolean
gst_llm_sampler_sink_event (GstPad * pad, GstObject * parent,
    GstEvent * event)
{
  GstLlmSampler *self = GST_LLM_SAMPLER (parent);
  guint64 id;

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS:{
      LlmModel *model = gst_llm_element_ensure_model (GST_LLM_ELEMENT (self),
          self->sinkpad);
      GstCaps *caps;
      gboolean ok;

      gst_event_unref (event);
      if (model == NULL)
        return FALSE;
      caps = llm_caps_new_tokens (llm_model_get_vocab (model), LLM_MAX_BATCH);
      ok = gst_pad_push_event (self->srcpad, gst_event_new_caps (caps));
      gst_caps_unref (caps);
      return ok;
    }
    case GST_EVENT_CUSTOM_DOWNSTREAM:
      if (llm_event_parse_sequence_end (event, &id, NULL, NULL))
        g_hash_table_remove (self->samplers, &id);
      break;
    case GST_EVENT_FLUSH_STOP:
      g_hash_table_remove_all (self->samplers);
      break;
    default:
      break;
  }
  return gst_pad_event_default (pad, parent, event);
}

static gboolean
gst_llm_sampler_query (GstPad * pad, GstObject * parent, GstQuery * query)
{
  if (gst_llm_element_handle_query (GST_LLM_ELEMENT (parent), query))
    return TRUE;
  return gst_pad_query_default (pad, parent, query);
}

static GstStateChangeReturn
gst_llm_sampler_change_state (GstElement * element, GstStateChange transition)
{
  GstLlmSampler *self = GST_LLM_SAMPLER (element);
  GstStateChangeReturn ret;

  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED) {
    GST_OBJECT_LOCK (self);
    self->params.seed = self->seed >= 0 ? (guint64) self->seed :
        ((guint64) g_random_int () << 32) | g_random_int ();
    GST_OBJECT_UNLOCK (self);
    self->n_sequences = 0;
  }
  ret = GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) {
    g_hash_table_remove_all (self->samplers);
  }
  return ret;
}

static void
gst_llm_sampler_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstLlmSampler *self = GST_LLM_SAMPLER (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_TEMPERATURE:
      self->params.temperature = g_value_get_double (value);
      break;
    case PROP_TOP_K:
      self->params.top_k = g_value_get_uint (value);
      break;
    case PROP_TOP_P:
      self->params.top_p = g_value_get_double (value);
      break;
    case PROP_MIN_P:
      self->params.min_p = g_value_get_double (value);
      break;
    case PROP_REPEAT_PENALTY:
      self->params.repeat_penalty = g_value_get_double (value);
      break;
    case PROP_REPEAT_LAST_N:
      self->params.repeat_last_n = g_value_get_uint (value);
      break;
    case PROP_SEED:
      self->seed = g_value_get_int64 (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_llm_sampler_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstLlmSampler *self = GST_LLM_SAMPLER (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_TEMPERATURE:
      g_value_set_double (value, self->params.temperature);
      break;
    case PROP_TOP_K:
      g_value_set_uint (value, self->params.top_k);
      break;
    case PROP_TOP_P:
      g_value_set_double (value, self->params.top_p);
      break;
    case PROP_MIN_P:
      g_value_set_double (value, self->params.min_p);
      break;
    case PROP_REPEAT_PENALTY:
      g_value_set_double (value, self->params.repeat_penalty);
      break;
    case PROP_REPEAT_LAST_N:
      g_value_set_uint (value, self->params.repeat_last_n);
      break;
    case PROP_SEED:
      g_value_set_int64 (value, self->seed);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_llm_sampler_finalize (GObject * object)
{
  GstLlmSampler *self = GST_LLM_SAMPLER (object);

  g_hash_table_destroy (self->samplers);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_llm_sampler_class_init (GstLlmSamplerClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstCaps *logits = llm_caps_add_device_variant (gst_caps_from_string
      (LLM_CAPS_LOGITS_TEMPLATE));
  GParamFlags live = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
      GST_PARAM_MUTABLE_PLAYING;

  gobject_class->set_property = gst_llm_sampler_set_property;
  gobject_class->get_property = gst_llm_sampler_get_property;
  gobject_class->finalize = gst_llm_sampler_finalize;

  g_object_class_install_property (gobject_class, PROP_TEMPERATURE,
      g_param_spec_double ("temperature", "Temperature",
          "Divides the logits before the draw; 0 = greedy (always the most "
          "likely token)", 0.0, 100.0, DEFAULT_TEMPERATURE, live));
  g_object_class_install_property (gobject_class, PROP_TOP_K,
      g_param_spec_uint ("top-k", "Top-k",
          "Draw only among the k most likely tokens; 0 = all", 0, G_MAXINT,
          DEFAULT_TOP_K, live));
  g_object_class_install_property (gobject_class, PROP_TOP_P,
      g_param_spec_double ("top-p", "Top-p",
          "Draw only among the most likely tokens whose probabilities add up "
          "to p (nucleus); 1 = off", 0.0, 1.0, DEFAULT_TOP_P, live));
  g_object_class_install_property (gobject_class, PROP_MIN_P,
      g_param_spec_double ("min-p", "Min-p",
          "Drop tokens less likely than min-p times the most likely one; "
          "0 = off", 0.0, 1.0, DEFAULT_MIN_P, live));
  g_object_class_install_property (gobject_class, PROP_REPEAT_PENALTY,
      g_param_spec_double ("repeat-penalty", "Repeat penalty",
          "Penalty for tokens generated in the last repeat-last-n tokens "
          "(1 = off, >1 discourages repetition)", 0.0, 10.0,
          DEFAULT_REPEAT_PENALTY, live));
  g_object_class_install_property (gobject_class, PROP_REPEAT_LAST_N,
      g_param_spec_uint ("repeat-last-n", "Repeat window",
          "Generated tokens the repetition penalty looks back at", 0, 65536,
          DEFAULT_REPEAT_LAST_N, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_SEED,
      g_param_spec_int64 ("seed", "Seed",
          "Seed of the random draws; -1 = a new random seed each run", -1,
          G_MAXINT64, DEFAULT_SEED, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  gst_element_class_add_pad_template (element_class,
      gst_pad_template_new ("sink", GST_PAD_SINK, GST_PAD_ALWAYS, logits));
  gst_caps_unref (logits);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class, "LLM sampler",
      "Filter/LLM",
      "Chooses the next token of each sequence from its logits and sends it "
      "back to llmdecoder", "LLMasOS developers <llmasos@example.org>");
  element_class->change_state =
      GST_DEBUG_FUNCPTR (gst_llm_sampler_change_state);

  GST_DEBUG_CATEGORY_INIT (gst_llm_sampler_debug, "llmsampler", 0,
      "LLM sampler");
}

static void
gst_llm_sampler_init (GstLlmSampler * self)
{
  self->sinkpad = gst_pad_new_from_template (gst_element_class_get_pad_template
      (GST_ELEMENT_GET_CLASS (self), "sink"), "sink");
  gst_pad_set_chain_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_llm_sampler_chain));
  gst_pad_set_event_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_llm_sampler_sink_event));
  gst_pad_set_query_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_llm_sampler_query));
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);

  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_set_query_function (self->srcpad,
      GST_DEBUG_FUNCPTR (gst_llm_sampler_query));
  gst_pad_use_fixed_caps (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);

  llm_sampler_params_init (&self->params);
  self->params.temperature = DEFAULT_TEMPERATURE;
  self->params.top_k = DEFAULT_TOP_K;
  self->params.top_p = DEFAULT_TOP_P;
  self->params.min_p = DEFAULT_MIN_P;
  self->params.repeat_penalty = DEFAULT_REPEAT_PENALTY;
  self->params.repeat_last_n = DEFAULT_REPEAT_LAST_N;
  self->seed = DEFAULT_SEED;
  self->samplers = g_hash_table_new_full (g_int64_hash, g_int64_equal,
      g_free, (GDestroyNotify) llm_sampler_free);
}
