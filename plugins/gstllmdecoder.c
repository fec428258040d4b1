/* LLMasOS - autoregressive decoding.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
/**
 * SECTION:element-llmdecoder
 * @title: llmdecoder
 *
 * Continues the sequences that llmencoder prefilled, one token per step:
 * it pushes the logits of every live sequence in one buffer (one row per
 * sequence), then waits for the `llm-token` event that llmsampler sends
 * upstream with the chosen tokens, runs the model on them, and pushes the
 * next logits. Up to #GstLlmDecoder:max-batch sequences run together; new
 * ones join at the next step (continuous batching).
 *
 * A sequence ends when its sampled token is an end token of the model (EOS,
 * or BOS, which the TinyStories models emit at the end of a story), after
 * #GstLlmDecoder:max-tokens tokens, when its context is full, or when
 * llmdetokenizer asks (stop strings). Each end is announced downstream by an
 * `llm-sequence-end` event; EOS follows the end of the last sequence.
 *
 * The decoder runs its own streaming thread (a task on its src pad), so a
 * `queue` anywhere in the pipeline changes timing, never the result.
 *
 * When it computes on a GPU and downstream accepts the `memory:CUDATensor`
 * caps feature (llmsampler does, and `queue`/`identity` pass it on), the
 * logits stay in device memory from a buffer pool; otherwise they are
 * copied to system memory once per step, as on the CPU.
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

#include "gstllmdecoder.h"
#include "gstllmattention.h"
#include "llm-caps.h"
#include "llm-events.h"
#include "llm-meta.h"
#include "llm-forward.h"
#include "llm-backend.h"
#include "llm-device-memory.h"

#include <string.h>

GST_DEBUG_CATEGORY_STATIC (gst_llm_decoder_debug);
#define GST_CAT_DEFAULT gst_llm_decoder_debug

#define DEFAULT_MAX_TOKENS 256
#define DEFAULT_MAX_BATCH 1
#define DEFAULT_N_THREADS 0
#define DEFAULT_DEVICE "auto"

enum
{
  PROP_0,
  PROP_MAX_TOKENS,
  PROP_MAX_BATCH,
  PROP_N_THREADS,
  PROP_ATTENTION,
  PROP_DEVICE,
};

/* One sequence as the decoder sees it. */
typedef struct
{
  guint64 id;
  guint32 pos;                  /* position of the next token to feed */
  guint n_generated;            /* tokens sampled so far */
  gint32 next_token;            /* the sampled token to feed, or -1 */
  gboolean awaiting;            /* logits out, token not yet back */
  gboolean stop_requested;      /* llm-sequence-stop arrived */
  const gchar *end_reason;      /* set once the sequence has ended */
  gboolean keep;                /* a conversation: keep its cache at the end */
  float *hidden;                /* new sequences: the encoder's state */
  GstEvent *start_event;        /* new sequences: llm-sequence-start */
} DecSeq;

struct _GstLlmDecoder
{
  GstLlmElement parent;

  GstPad *sinkpad, *srcpad;

  /* properties */
  guint max_tokens;
  guint max_batch;
  guint n_threads;
  gchar *device;
  GstElement *attention;

  GMutex lock;                  /* protects what follows */
  GCond cond;
  GQueue pending;               /* DecSeq* waiting to join the batch */
  GPtrArray *live;              /* DecSeq* in the batch */
  GHashTable *start_events;     /* seq id -> llm-sequence-start event */
  gboolean flushing;
  gboolean input_eos;
  GstFlowReturn last_flow;      /* the task's, returned by chain */

  /* streaming thread only */
  gboolean started;             /* stream-start, caps, segment pushed */
  LlmCompute *compute;
  const LlmBackend *backend;    /* the compute's device; NULL: the CPU */
  gint device_index;
  gboolean logits_on_device;    /* negotiated memory:CUDATensor */
  GstBufferPool *pool;          /* device logits buffers of max-batch rows */
  float *logits_scratch;
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS (LLM_CAPS_STATE_TEMPLATE));

/* src: the logits template twice, in device memory first (class_init) */

#define gst_llm_decoder_parent_class parent_class
G_DEFINE_TYPE (GstLlmDecoder, gst_llm_decoder, GST_TYPE_LLM_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE (llmdecoder, "llmdecoder", GST_RANK_NONE,
    GST_TYPE_LLM_DECODER);

static void gst_llm_decoder_loop (GstPad * pad);

static void
dec_seq_free (DecSeq * s)
{
  g_free (s->hidden);
  if (s->start_event)
    gst_event_unref (s->start_event);
  g_free (s);
}

/* Drops every sequence, freeing its KV cache. Called with the lock held. */
static void
abort_all (GstLlmDecoder * self)
{
  LlmModel *model = gst_llm_element_get_model (GST_LLM_ELEMENT (self));
  DecSeq *s;

  while ((s = g_queue_pop_head (&self->pending))) {
    if (model)
      llm_model_remove_sequence (model, s->id);
    dec_seq_free (s);
  }
  for (guint i = 0; i < self->live->len; i++) {
    s = g_ptr_array_index (self->live, i);
    if (model)
      llm_model_remove_sequence (model, s->id);
    dec_seq_free (s);
  }
  g_ptr_array_set_size (self->live, 0);
  g_hash_table_remove_all (self->start_events);
}

static DecSeq *
find_live (GstLlmDecoder * self, guint64 id)
{
  for (guint i = 0; i < self->live->len; i++) {
    DecSeq *s = g_ptr_array_index (self->live, i);
    if (s->id == id)
      return s;
  }
  return NULL;
}

/* --- sink side: new sequences arrive from llmencoder ------------------- */

static GstFlowReturn
gst_llm_decoder_chain (GstPad * pad, GstObject * parent, GstBuffer * buf)
{
  GstLlmDecoder *self = GST_LLM_DECODER (parent);
  LlmSeqMeta *meta = llm_buffer_get_seq_meta (buf);
  LlmModel *model;
  GstFlowReturn ret;
  GstMapInfo map;
  guint dim;

  model = gst_llm_element_ensure_model (GST_LLM_ELEMENT (self), self->sinkpad);
  if (model == NULL) {
    gst_buffer_unref (buf);
    return GST_FLOW_ERROR;
  }
  dim = llm_model_get_hparams (model)->dim;
  gst_buffer_map (buf, &map, GST_MAP_READ);
  if (meta == NULL || meta->n_rows == 0 || map.size != meta->n_rows * dim *
      sizeof (float)) {
    gst_buffer_unmap (buf, &map);
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, STREAM, FORMAT, (NULL),
        ("state buffer does not match its sequence meta"));
    return GST_FLOW_ERROR;
  }

  g_mutex_lock (&self->lock);
  for (guint r = 0; r < meta->n_rows; r++) {
    DecSeq *s = g_new0 (DecSeq, 1);

    /* From here the decoder frees its cache, whatever happens. */
    llm_model_claim_sequence (model, meta->rows[r].seq_id);

    s->id = meta->rows[r].seq_id;
    s->pos = meta->rows[r].position;
    s->next_token = -1;
    s->hidden = g_memdup2 ((float *) map.data + r * dim, dim * sizeof (float));
    {
      gpointer key = NULL;

      if (g_hash_table_steal_extended (self->start_events, &s->id, &key,
              (gpointer *) & s->start_event)) {
        g_free (key);
        s->keep = llm_event_sequence_start_get_keep (s->start_event);
      }
    }
    /* Wait for room in the batch: this is the decoder's back-pressure on
     * the encoder. */
    while (!self->flushing && self->last_flow == GST_FLOW_OK &&
        self->live->len + self->pending.length >= self->max_batch)
      g_cond_wait (&self->cond, &self->lock);
    if (self->flushing || self->last_flow != GST_FLOW_OK) {
      llm_model_remove_sequence (model, s->id);
      dec_seq_free (s);
      continue;
    }
    g_queue_push_tail (&self->pending, s);
    g_cond_broadcast (&self->cond);
  }
  ret = self->flushing ? GST_FLOW_FLUSHING : self->last_flow;
  g_mutex_unlock (&self->lock);

  gst_buffer_unmap (buf, &map);
  gst_buffer_unref (buf);
  return ret;
}

static gboolean
gst_llm_decoder_sink_event (GstPad * pad, GstObject * parent,
    GstEvent * event)
{
  GstLlmDecoder *self = GST_LLM_DECODER (parent);
  guint64 id;
  guint n_prompt;
  gboolean has_text;

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS:
    case GST_EVENT_SEGMENT:
    case GST_EVENT_STREAM_START:
      /* The streaming thread sends its own before the first logits. */
      gst_event_unref (event);
      return TRUE;
    case GST_EVENT_EOS:
      g_mutex_lock (&self->lock);
      self->input_eos = TRUE;
      g_cond_broadcast (&self->cond);
      g_mutex_unlock (&self->lock);
      gst_event_unref (event);
      return TRUE;
    case GST_EVENT_FLUSH_START:
      g_mutex_lock (&self->lock);
      self->flushing = TRUE;
      g_cond_broadcast (&self->cond);
      g_mutex_unlock (&self->lock);
      gst_pad_push_event (self->srcpad, event);
      gst_pad_pause_task (self->srcpad);
      return TRUE;
    case GST_EVENT_FLUSH_STOP:{
      gboolean ok;

      /* The streaming thread holds the stream lock for a whole iteration
       * (it may be computing rows we are about to free): wait for it. */
      GST_PAD_STREAM_LOCK (self->srcpad);
      g_mutex_lock (&self->lock);
      abort_all (self);
      self->flushing = FALSE;
      self->input_eos = FALSE;
      self->last_flow = GST_FLOW_OK;
      g_mutex_unlock (&self->lock);
      gst_pad_push_event (self->srcpad, event);
      if (self->started) {
        GstSegment segment;     /* the flush reset the running time */

        gst_segment_init (&segment, GST_FORMAT_TIME);
        gst_pad_push_event (self->srcpad, gst_event_new_segment (&segment));
      }
      ok = gst_pad_start_task (self->srcpad,
          (GstTaskFunction) gst_llm_decoder_loop, self->srcpad, NULL);
      GST_PAD_STREAM_UNLOCK (self->srcpad);
      return ok;
    }
    case GST_EVENT_CUSTOM_DOWNSTREAM:
      if (llm_event_parse_sequence_start (event, &id, &n_prompt, &has_text)) {
        guint64 *key = g_new (guint64, 1);

        *key = id;
        g_mutex_lock (&self->lock);
        g_hash_table_replace (self->start_events, key, event);
        g_mutex_unlock (&self->lock);
        return TRUE;
      }
      break;
    default:
      break;
  }
  if (GST_EVENT_IS_SERIALIZED (event)) {
    /* Only our streaming thread may push serialized data downstream. */
    GST_DEBUG_OBJECT (self, "dropping %" GST_PTR_FORMAT, event);
    gst_event_unref (event);
    return TRUE;
  }
  return gst_pad_event_default (pad, parent, event);
}

/* --- src side: tokens come back from llmsampler ----------------------- */

static void
take_token (GstLlmDecoder * self, LlmModel * model, guint64 id, gint32 tok)
{
  DecSeq *s = find_live (self, id);
  LlmSequence *seq;

  if (s == NULL || !s->awaiting)
    return;
  seq = llm_model_lookup_sequence (model, id);
  s->awaiting = FALSE;
  s->n_generated++;
  if (llm_model_is_end_token (model, tok))
    s->end_reason = LLM_END_REASON_END_TOKEN;
  else if (seq == NULL || s->pos >= llm_kv_cache_n_ctx (seq->kv))
    s->end_reason = LLM_END_REASON_CONTEXT_FULL;
  else if (s->stop_requested)
    s->end_reason = LLM_END_REASON_STOPPED;
  else if (self->max_tokens > 0 && s->n_generated >= self->max_tokens)
    s->end_reason = LLM_END_REASON_MAX_TOKENS;
  else
    s->next_token = tok;
}

static gboolean
gst_llm_decoder_src_event (GstPad * pad, GstObject * parent,
    GstEvent * event)
{
  GstLlmDecoder *self = GST_LLM_DECODER (parent);
  LlmModel *model = gst_llm_element_get_model (GST_LLM_ELEMENT (self));
  guint64 ids[LLM_MAX_BATCH];
  gint32 toks[LLM_MAX_BATCH];
  guint n;
  guint64 id;

  if (model && (n = llm_event_parse_token (event, LLM_MAX_BATCH, ids, toks))) {
    g_mutex_lock (&self->lock);
    for (guint i = 0; i < n; i++)
      take_token (self, model, ids[i], toks[i]);
    g_cond_broadcast (&self->cond);
    g_mutex_unlock (&self->lock);
    gst_event_unref (event);
    return TRUE;
  }
  if (llm_event_parse_sequence_stop (event, &id)) {
    DecSeq *s;

    g_mutex_lock (&self->lock);
    s = find_live (self, id);
    if (s) {
      s->stop_requested = TRUE;
      if (!s->awaiting && s->end_reason == NULL)
        s->end_reason = LLM_END_REASON_STOPPED;
    }
    g_cond_broadcast (&self->cond);
    g_mutex_unlock (&self->lock);
    gst_event_unref (event);
    return TRUE;
  }
  return gst_pad_event_default (pad, parent, event);
}

/* --- the streaming thread ------------------------------------------- */

/* The pool of device logits buffers, max-batch rows each (a step with
 * fewer rows shrinks its buffer; the pool restores the size on release). */
static gboolean
ensure_pool (GstLlmDecoder * self, LlmModel * model, GstCaps * caps)
{
  guint n_vocab = llm_model_get_vocab (model)->n_tokens;
  GstStructure *config;

  if (self->pool != NULL)
    return TRUE;
  self->pool = llm_device_buffer_pool_new (self->backend, self->device_index);
  config = gst_buffer_pool_get_config (self->pool);
  /* no maximum: a buffer held downstream must not stall the next step */
  gst_buffer_pool_config_set_params (config, caps,
      (guint) ((gsize) self->max_batch * n_vocab * sizeof (float)), 1, 0);
  if (!gst_buffer_pool_set_config (self->pool, config) ||
      !gst_buffer_pool_set_active (self->pool, TRUE)) {
    gst_clear_object (&self->pool);
    return FALSE;
  }
  return TRUE;
}

static void
clear_pool (GstLlmDecoder * self)
{
  if (self->pool == NULL)
    return;
  gst_buffer_pool_set_active (self->pool, FALSE);
  gst_clear_object (&self->pool);
}

/* Chooses and sends the logits caps: memory:CUDATensor first when the
 * decoder computes on a device, system memory after it; downstream's caps
 * query keeps what it accepts and the first of those wins. */
static void
negotiate (GstLlmDecoder * self, LlmModel * model)
{
  GstCaps *caps = llm_caps_new_logits (llm_model_get_vocab (model),
      self->max_batch);
  GstCaps *offer, *peer;

  offer = self->backend ? llm_caps_add_device_variant (gst_caps_ref (caps)) :
      gst_caps_ref (caps);
  peer = gst_pad_peer_query_caps (self->srcpad, offer);
  gst_caps_unref (offer);
  if (gst_caps_is_empty (peer)) {
    /* Nothing fits: send system memory; downstream refuses it with the
     * usual not-negotiated error. */
    gst_caps_unref (peer);
    peer = gst_caps_ref (caps);
  }
  peer = gst_caps_fixate (peer);
  self->logits_on_device = self->backend != NULL && llm_caps_is_device (peer)
      && ensure_pool (self, model, peer);
  if (!self->logits_on_device) {
    clear_pool (self);
    gst_caps_replace (&peer, caps);
  }
  GST_DEBUG_OBJECT (self, "logits in %s memory: %" GST_PTR_FORMAT,
      self->logits_on_device ? "device" : "system", peer);
  gst_pad_push_event (self->srcpad, gst_event_new_caps (peer));
  gst_caps_unref (peer);
  gst_caps_unref (caps);
}

static void
start_stream (GstLlmDecoder * self, LlmModel * model)
{
  gchar *stream_id;
  GstSegment segment;

  if (self->started) {
    /* downstream changed (a reconfigure event): offer again */
    if (model && gst_pad_check_reconfigure (self->srcpad))
      negotiate (self, model);
    return;
  }
  stream_id = gst_pad_create_stream_id (self->srcpad, GST_ELEMENT (self),
      "logits");
  gst_pad_push_event (self->srcpad, gst_event_new_stream_start (stream_id));
  g_free (stream_id);
  if (model) {
    gst_pad_check_reconfigure (self->srcpad);   /* clears the flag */
    negotiate (self, model);
  }
  gst_segment_init (&segment, GST_FORMAT_TIME);
  gst_pad_push_event (self->srcpad, gst_event_new_segment (&segment));
  self->started = TRUE;
}

/* TRUE when a step can run: every live sequence has its token back (or has
 * ended), and there is something to compute or to announce. */
static gboolean
step_ready (GstLlmDecoder * self)
{
  gboolean any = self->pending.length > 0;

  for (guint i = 0; i < self->live->len; i++) {
    DecSeq *s = g_ptr_array_index (self->live, i);
    if (s->awaiting)
      return FALSE;
    any = TRUE;
  }
  return any;
}

static void
pause_with (GstLlmDecoder * self, GstFlowReturn flow)
{
  g_mutex_lock (&self->lock);
  if (self->last_flow == GST_FLOW_OK)
    self->last_flow = flow;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
  if (flow == GST_FLOW_EOS || flow == GST_FLOW_NOT_LINKED
      || flow < GST_FLOW_EOS) {
    if (flow != GST_FLOW_EOS)
      GST_ELEMENT_FLOW_ERROR (self, flow);
    gst_pad_push_event (self->srcpad, gst_event_new_eos ());
  }
  gst_pad_pause_task (self->srcpad);
}

/* The compute, on the device property's device; "auto" takes the device of
 * the KV cache llmencoder made for sequence @seq_id. */
static gboolean
ensure_compute (GstLlmDecoder * self, LlmModel * model, guint64 seq_id)
{
  g_autofree gchar *device = g_strdup (self->device);

  if (g_strcmp0 (device, "auto") == 0) {
    LlmSequence *seq = llm_model_lookup_sequence (model, seq_id);
    const LlmBackend *backend = NULL;
    gint index = 0;

    if (seq != NULL)
      backend = llm_kv_cache_device (seq->kv, &index);
    g_free (device);
    device = backend ? g_strdup_printf ("%s:%d", backend->name, index) :
        g_strdup ("cpu");
  }
  self->compute = gst_llm_element_make_compute (GST_LLM_ELEMENT (self),
      model, device, self->n_threads);
  /* make_compute parsed the same string: this cannot fail now */
  if (self->compute != NULL && !llm_device_parse (device, &self->backend,
          &self->device_index, NULL))
    self->backend = NULL;
  return self->compute != NULL;
}

/* A buffer for @n_rows rows of logits: from the device pool when they stay
 * on the device, in system memory otherwise. */
static GstBuffer *
new_logits_buffer (GstLlmDecoder * self, guint n_rows, guint n_vocab,
    GError ** error)
{
  gsize size = (gsize) n_rows * n_vocab * sizeof (float);
  GstBuffer *buf = NULL;
  GstFlowReturn flow;

  if (!self->logits_on_device)
    return gst_buffer_new_allocate (NULL, size, NULL);
  flow = gst_buffer_pool_acquire_buffer (self->pool, &buf, NULL);
  if (flow != GST_FLOW_OK) {
    g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NO_SPACE_LEFT,
        "no device buffer for the logits (%s)", gst_flow_get_name (flow));
    return NULL;
  }
  gst_buffer_resize (buf, 0, size);
  return buf;
}

/* Runs one step for @rows: fed tokens for continuing rows, the encoder's
 * state for new ones; writes their logits into one buffer. */
static GstBuffer *
compute_step (GstLlmDecoder * self, LlmModel * model, DecSeq ** rows,
    guint n_rows, GError ** error)
{
  const LlmHParams *hp = llm_model_get_hparams (model);
  guint n_vocab = llm_model_get_vocab (model)->n_tokens;
  float *hidden = g_newa (float, hp->dim);
  gboolean on_device;
  GstBuffer *buf;
  LlmSeqMeta *meta;
  GstMapInfo map;

  if (self->compute == NULL && !ensure_compute (self, model, rows[0]->id)) {
    g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_FAILED,
        "no device to compute on (device=%s)", self->device);
    return NULL;
  }
  on_device = strcmp (llm_compute_device_name (self->compute), "cpu") != 0;
  if ((buf = new_logits_buffer (self, n_rows, n_vocab, error)) == NULL)
    return NULL;
  meta = llm_buffer_add_seq_meta (buf);
  /* a device map gives the device pointer and marks the host copy stale */
  if (!gst_buffer_map (buf, &map, self->logits_on_device ?
          (GstMapFlags) (LLM_MAP_DEVICE | GST_MAP_WRITE) : GST_MAP_WRITE)) {
    g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_FAILED,
        "cannot map the logits buffer");
    gst_buffer_unref (buf);
    return NULL;
  }
  for (guint r = 0; r < n_rows; r++) {
    DecSeq *s = rows[r];
    const float *h = s->hidden;
    float *row = (float *) map.data + (gsize) r * n_vocab;

    if (h == NULL) {
      LlmSequence *seq = llm_model_lookup_sequence (model, s->id);

      /* on a device the hidden state stays there for the logits */
      if (seq == NULL || !llm_compute_forward (self->compute, seq->kv,
              &s->next_token, 1, on_device ? NULL : hidden, error)) {
        if (seq == NULL)
          g_set_error (error, GST_STREAM_ERROR, GST_STREAM_ERROR_FAILED,
              "sequence %" G_GUINT64_FORMAT " has no KV cache", s->id);
        gst_buffer_unmap (buf, &map);
        gst_buffer_unref (buf);
        return NULL;
      }
      s->pos++;
      h = on_device ? NULL : hidden;
    }
    if (!llm_compute_logits_full (self->compute, h,
            self->logits_on_device ? NULL : row,
            self->logits_on_device ? row : NULL, error)) {
      gst_buffer_unmap (buf, &map);
      gst_buffer_unref (buf);
      return NULL;
    }
    g_clear_pointer (&s->hidden, g_free);
    s->next_token = -1;
    llm_seq_meta_add_row (meta, s->id, s->pos, 0);
  }
  gst_buffer_unmap (buf, &map);
  return buf;
}

static void
gst_llm_decoder_loop (GstPad * pad)
{
  GstLlmDecoder *self = GST_LLM_DECODER (gst_pad_get_parent_element (pad));
  LlmModel *model = gst_llm_element_get_model (GST_LLM_ELEMENT (self));
  GPtrArray *ended = g_ptr_array_new_with_free_func ((GDestroyNotify)
      dec_seq_free);
  GPtrArray *joined = g_ptr_array_new ();
  DecSeq *rows[LLM_MAX_BATCH];
  guint n_rows = 0;
  GstFlowReturn flow = GST_FLOW_OK;
  GError *err = NULL;
  GstBuffer *buf;

  g_mutex_lock (&self->lock);
  while (!self->flushing && !step_ready (self) &&
      !(self->input_eos && self->live->len == 0 && self->pending.length == 0))
    g_cond_wait (&self->cond, &self->lock);
  if (self->flushing) {
    g_mutex_unlock (&self->lock);
    gst_pad_pause_task (pad);
    goto out;
  }
  model = gst_llm_element_get_model (GST_LLM_ELEMENT (self));

  /* Sequences that ended leave the batch; new ones join. */
  for (guint i = 0; i < self->live->len;) {
    DecSeq *s = g_ptr_array_index (self->live, i);
    if (s->end_reason) {
      g_ptr_array_add (ended, g_ptr_array_steal_index (self->live, i));
    } else {
      rows[n_rows++] = s;
      i++;
    }
  }
  while (self->pending.length > 0 && self->live->len < self->max_batch) {
    DecSeq *s = g_queue_pop_head (&self->pending);
    g_ptr_array_add (self->live, s);
    g_ptr_array_add (joined, s);
    rows[n_rows++] = s;
  }
  for (guint i = 0; i < n_rows; i++)
    rows[i]->awaiting = TRUE;
  if (ended->len > 0)
    g_cond_broadcast (&self->cond);     /* room for chain */
  gboolean finished = n_rows == 0 && self->input_eos &&
      self->pending.length == 0;
  g_mutex_unlock (&self->lock);

  /* The caps depend on where the decoder computes: know it first. */
  if (n_rows > 0 && model && self->compute == NULL &&
      !ensure_compute (self, model, rows[0]->id)) {
    pause_with (self, GST_FLOW_ERROR);  /* make_compute posted the error */
    goto out;
  }
  start_stream (self, model);
  for (guint i = 0; i < ended->len; i++) {
    DecSeq *s = g_ptr_array_index (ended, i);
    GST_DEBUG_OBJECT (self, "sequence %" G_GUINT64_FORMAT " ended (%s) after "
        "%u tokens", s->id, s->end_reason, s->n_generated);
    if (model && s->keep)
      llm_model_release_sequence (model, s->id);
    else if (model)
      llm_model_remove_sequence (model, s->id);
    gst_pad_push_event (self->srcpad, llm_event_new_sequence_end (s->id,
            s->end_reason, s->n_generated));
  }
  if (finished) {
    GST_DEBUG_OBJECT (self, "all sequences done, EOS");
    pause_with (self, GST_FLOW_EOS);
    goto out;
  }
  if (n_rows == 0)
    goto out;
  for (guint i = 0; i < joined->len; i++) {
    DecSeq *s = g_ptr_array_index (joined, i);
    if (s->start_event) {
      gst_pad_push_event (self->srcpad, s->start_event);
      s->start_event = NULL;
    }
  }

  buf = compute_step (self, model, rows, n_rows, &err);
  if (buf == NULL) {
    GST_ELEMENT_ERROR (self, STREAM, FAILED, ("Decoding failed: %s",
            err->message), (NULL));
    g_clear_error (&err);
    pause_with (self, GST_FLOW_ERROR);
    goto out;
  }
  flow = gst_pad_push (self->srcpad, buf);
  if (flow != GST_FLOW_OK) {
    GST_DEBUG_OBJECT (self, "pausing: %s", gst_flow_get_name (flow));
    pause_with (self, flow);
  }

out:
  g_ptr_array_unref (ended);
  g_ptr_array_unref (joined);
  gst_object_unref (self);
}

static gboolean
gst_llm_decoder_src_activate_mode (GstPad * pad, GstObject * parent,
    GstPadMode mode, gboolean active)
{
  GstLlmDecoder *self = GST_LLM_DECODER (parent);

  if (mode != GST_PAD_MODE_PUSH)
    return FALSE;
  g_mutex_lock (&self->lock);
  self->flushing = !active;
  if (active) {
    self->last_flow = GST_FLOW_OK;
    self->input_eos = FALSE;
    self->started = FALSE;
  }
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
  if (active)
    return gst_pad_start_task (pad, (GstTaskFunction) gst_llm_decoder_loop,
        pad, NULL);
  if (!gst_pad_stop_task (pad))
    return FALSE;
  g_mutex_lock (&self->lock);
  abort_all (self);
  g_mutex_unlock (&self->lock);
  return TRUE;
}

static gboolean
gst_llm_decoder_query (GstPad * pad, GstObject * parent, GstQuery * query)
{
  if (gst_llm_element_handle_query (GST_LLM_ELEMENT (parent), query))
    return TRUE;
  return gst_pad_query_default (pad, parent, query);
}

static GstStateChangeReturn
gst_llm_decoder_change_state (GstElement * element, GstStateChange transition)
{
  GstLlmDecoder *self = GST_LLM_DECODER (element);
  GstStateChangeReturn ret;

  ret = GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) {
    g_clear_pointer (&self->compute, llm_compute_free);
    self->backend = NULL;
    self->logits_on_device = FALSE;
    clear_pool (self);
  }
  return ret;
}

static void
gst_llm_decoder_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstLlmDecoder *self = GST_LLM_DECODER (object);

  switch (prop_id) {
    case PROP_MAX_TOKENS:
      self->max_tokens = g_value_get_uint (value);
      break;
    case PROP_MAX_BATCH:
      self->max_batch = g_value_get_uint (value);
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
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_llm_decoder_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstLlmDecoder *self = GST_LLM_DECODER (object);

  switch (prop_id) {
    case PROP_MAX_TOKENS:
      g_value_set_uint (value, self->max_tokens);
      break;
    case PROP_MAX_BATCH:
      g_value_set_uint (value, self->max_batch);
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
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_llm_decoder_finalize (GObject * object)
{
  GstLlmDecoder *self = GST_LLM_DECODER (object);

  g_mutex_lock (&self->lock);
  abort_all (self);
  g_mutex_unlock (&self->lock);
  g_ptr_array_unref (self->live);
  g_hash_table_destroy (self->start_events);
  g_free (self->device);
  g_clear_pointer (&self->compute, llm_compute_free);
  clear_pool (self);
  gst_clear_object (&self->attention);
  g_mutex_clear (&self->lock);
  g_cond_clear (&self->cond);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_llm_decoder_class_init (GstLlmDecoderClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstCaps *logits = llm_caps_add_device_variant (gst_caps_from_string
      (LLM_CAPS_LOGITS_TEMPLATE));

  gobject_class->set_property = gst_llm_decoder_set_property;
  gobject_class->get_property = gst_llm_decoder_get_property;
  gobject_class->finalize = gst_llm_decoder_finalize;

  g_object_class_install_property (gobject_class, PROP_MAX_TOKENS,
      g_param_spec_uint ("max-tokens", "Max tokens",
          "Most tokens generated per sequence; 0 = until an end token or a "
          "full context", 0, G_MAXINT, DEFAULT_MAX_TOKENS,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_MAX_BATCH,
      g_param_spec_uint ("max-batch", "Max batch",
          "Most sequences decoded together (continuous batching); with more "
          "than one, continuations are computed concurrently and "
          "llmdetokenizer still delivers them in order", 1, LLM_MAX_BATCH,
          DEFAULT_MAX_BATCH, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
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
      gst_llm_element_device_param_spec (DEFAULT_DEVICE, ", or auto: "
          "where llmencoder made the sequence's KV cache"));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_pad_template (element_class,
      gst_pad_template_new ("src", GST_PAD_SRC, GST_PAD_ALWAYS, logits));
  gst_caps_unref (logits);
  gst_element_class_set_static_metadata (element_class, "LLM decoder",
      "Codec/Decoder/LLM",
      "Generates one token per step for every live sequence, driven by the "
      "tokens llmsampler sends back upstream",
      "LLMasOS developers <llmasos@example.org>");
  element_class->change_state =
      GST_DEBUG_FUNCPTR (gst_llm_decoder_change_state);

  GST_DEBUG_CATEGORY_INIT (gst_llm_decoder_debug, "llmdecoder", 0,
      "LLM decoder");
}

static void
gst_llm_decoder_init (GstLlmDecoder * self)
{
  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_llm_decoder_chain));
  gst_pad_set_event_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_llm_decoder_sink_event));
  gst_pad_set_query_function (self->sinkpad,
      GST_DEBUG_FUNCPTR (gst_llm_decoder_query));
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);

  self->srcpad = gst_pad_new_from_template (gst_element_class_get_pad_template
      (GST_ELEMENT_GET_CLASS (self), "src"), "src");
  gst_pad_set_event_function (self->srcpad,
      GST_DEBUG_FUNCPTR (gst_llm_decoder_src_event));
  gst_pad_set_query_function (self->srcpad,
      GST_DEBUG_FUNCPTR (gst_llm_decoder_query));
  gst_pad_set_activatemode_function (self->srcpad,
      GST_DEBUG_FUNCPTR (gst_llm_decoder_src_activate_mode));
  gst_pad_use_fixed_caps (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);

  self->max_tokens = DEFAULT_MAX_TOKENS;
  self->max_batch = DEFAULT_MAX_BATCH;
  self->n_threads = DEFAULT_N_THREADS;
  self->device = g_strdup (DEFAULT_DEVICE);
  g_mutex_init (&self->lock);
  g_cond_init (&self->cond);
  g_queue_init (&self->pending);
  self->live = g_ptr_array_new ();
  self->start_events = g_hash_table_new_full (g_int64_hash, g_int64_equal,
      g_free, (GDestroyNotify) gst_event_unref);
  self->last_flow = GST_FLOW_OK;
}
