/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-model.h"
#include "llm-backend.h"
#include "llm-error.h"

#include <gio/gio.h>

#include <string.h>

struct _LlmModel
{
  GObject parent;

  gchar *path;                  /* canonical path, the cache key */
  LlmModelFile *file;
  gchar *fingerprint;
  GMutex lock;                  /* protects sequences */
  GCond released;               /* a sequence was released or removed */
  GHashTable *sequences;        /* guint64* id -> LlmSequence* */
  guint64 next_id;
  gint32 end_of_turn[4];        /* chat end-of-turn tokens, -1 if none */
  GMutex weights_lock;          /* held while weights are copied */
  GPtrArray *device_weights;    /* DeviceWeights: copies on other devices */
};

/* The model's weights as one backend holds them on one device. */
typedef struct {
  const LlmBackend *backend;
  gint index;
  gpointer weights;
} DeviceWeights;

static void
device_weights_free (gpointer data)
{
  DeviceWeights *dw = data;

  dw->backend->weights_free (dw->weights);
  g_free (dw);
}

G_DEFINE_FINAL_TYPE (LlmModel, llm_model, G_TYPE_OBJECT)

/* The process-wide cache holds weak references: a model is freed when the
 * last element lets go of it, and loaded again when next asked for. */
static GMutex cache_lock;
static GHashTable *cache;       /* path -> LlmModel* (not referenced) */

static void
sequence_free (gpointer data)
{
  LlmSequence *seq = data;

  llm_kv_cache_free (seq->kv);
  g_free (seq);
}

static void
llm_model_dispose (GObject * object)
{
  LlmModel *self = LLM_MODEL (object);

  g_mutex_lock (&cache_lock);
  if (cache && g_hash_table_lookup (cache, self->path) == self)
    g_hash_table_remove (cache, self->path);
  g_mutex_unlock (&cache_lock);

  G_OBJECT_CLASS (llm_model_parent_class)->dispose (object);
}

static void
llm_model_finalize (GObject * object)
{
  LlmModel *self = LLM_MODEL (object);

  /* caches first: they live in the devices' memory too */
  g_hash_table_destroy (self->sequences);
  g_clear_pointer (&self->device_weights, g_ptr_array_unref);
  g_mutex_clear (&self->weights_lock);
  g_mutex_clear (&self->lock);
  g_cond_clear (&self->released);
  llm_model_file_free (self->file);
  g_free (self->fingerprint);
  g_free (self->path);

  G_OBJECT_CLASS (llm_model_parent_class)->finalize (object);
}

/* So that gst-launch-1.0 -v and debug logs print a shared model's path. */
static void
model_to_string (const GValue * src, GValue * dest)
{
  LlmModel *model = g_value_get_object (src);

  g_value_set_string (dest, model ? model->path : "(none)");
}

static void
llm_model_class_init (LlmModelClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);

  g_value_register_transform_func (LLM_TYPE_MODEL, G_TYPE_STRING,
      model_to_string);
  gobject_class->dispose = llm_model_dispose;
  gobject_class->finalize = llm_model_finalize;
}

static void
llm_model_init (LlmModel * self)
{
  g_mutex_init (&self->lock);
  g_mutex_init (&self->weights_lock);
  g_cond_init (&self->released);
  self->sequences = g_hash_table_new_full (g_int64_hash, g_int64_equal,
      NULL, sequence_free);
  self->next_id = 1;
}

static gchar *
canonical_path (const gchar * path)
{
  g_autoptr (GFile) file = g_file_new_for_path (path);

  return g_file_get_path (file);
}

static gchar *
make_fingerprint (const LlmModelFile * mf)
{
  const LlmHParams *hp = &mf->hp;
  guint32 h = g_str_hash (mf->vocab->fingerprint);

  h = h * 31 + hp->dim;
  h = h * 31 + hp->n_layers;
  h = h * 31 + hp->n_heads;
  h = h * 31 + hp->n_kv_heads;
  h = h * 31 + hp->ffn_dim;
  return g_strdup_printf ("llama-%ux%u-%08x", hp->n_layers, hp->dim, h);
}

/* Chat models end a reply with an end-of-turn token rather than EOS. */
static void
find_end_of_turn (LlmModel * model)
{
  static const gchar *markers[] = { "<end_of_turn>", "<|im_end|>",
    "<|eot_id|>", "<|end_of_text|>"
  };
  guint64 eot;

  for (guint i = 0; i < G_N_ELEMENTS (markers); i++)
    model->end_of_turn[i] = llm_vocab_find (model->file->vocab, markers[i]);
  if (model->file->gguf && llm_gguf_get_uint (model->file->gguf,
          "tokenizer.ggml.eot_token_id", &eot) && eot < G_MAXINT32)
    model->end_of_turn[3] = (gint32) eot;
}

LlmModel *
llm_model_get (const gchar * path, LlmProgressFunc progress,
    gpointer user_data, GError ** error)
{
  g_autofree gchar *key = NULL;
  LlmModel *model = NULL;
  LlmModelFile *mf;

  g_return_val_if_fail (path != NULL, NULL);

  key = canonical_path (path);
  /* Loading happens under the lock so that two elements asking for the same
   * file at once map it once. */
  g_mutex_lock (&cache_lock);
  if (cache == NULL)
    cache = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  model = g_hash_table_lookup (cache, key);
  if (model && g_object_ref (model))
    goto done;

  mf = llm_model_file_load (path, progress, user_data, error);
  if (mf == NULL)
    goto done;
  model = g_object_new (LLM_TYPE_MODEL, NULL);
  model->path = g_strdup (key);
  model->file = mf;
  model->fingerprint = make_fingerprint (mf);
  find_end_of_turn (model);
  g_hash_table_insert (cache, g_strdup (key), model);

done:
  g_mutex_unlock (&cache_lock);
  return model;
}

const LlmModelFile *
llm_model_get_file (LlmModel * model)
{
  return model->file;
}

const LlmHParams *
llm_model_get_hparams (LlmModel * model)
{
  return &model->file->hp;
}

const LlmVocab *
llm_model_get_vocab (LlmModel * model)
{
  return model->file->vocab;
}

const gchar *
llm_model_get_path (LlmModel * model)
{
  return model->path;
}

const gchar *
llm_model_get_name (LlmModel * model)
{
  return model->file->name ? model->file->name : model->path;
}

const gchar *
llm_model_get_fingerprint (LlmModel * model)
{
  return model->fingerprint;
}

gboolean
llm_model_is_end_token (LlmModel * model, gint32 id)
{
  const LlmVocab *v = model->file->vocab;

  if (id < 0)
    return FALSE;
  if (id == v->eos || id == v->bos)
    return TRUE;
  for (guint i = 0; i < G_N_ELEMENTS (model->end_of_turn); i++)
    if (id == model->end_of_turn[i])
      return TRUE;
  return FALSE;
}

guint
llm_model_release_sequence (LlmModel * model, guint64 id)
{
  LlmSequence *seq;
  guint len = 0;

  g_mutex_lock (&model->lock);
  seq = g_hash_table_lookup (model->sequences, &id);
  if (seq) {
    seq->claimed = FALSE;
    len = llm_kv_cache_len (seq->kv);
  }
  g_cond_broadcast (&model->released);
  g_mutex_unlock (&model->lock);
  return len;
}

gboolean
llm_model_wait_released (LlmModel * model, guint64 id, gint64 timeout_us)
{
  gint64 end = g_get_monotonic_time () + timeout_us;
  LlmSequence *seq;

  g_mutex_lock (&model->lock);
  while ((seq = g_hash_table_lookup (model->sequences, &id)) && seq->claimed)
    if (!g_cond_wait_until (&model->released, &model->lock, end))
      break;
  g_mutex_unlock (&model->lock);
  return seq == NULL || !seq->claimed;
}

guint64
llm_model_next_sequence_id (LlmModel * model)
{
  guint64 id;

  g_mutex_lock (&model->lock);
  id = model->next_id++;
  g_mutex_unlock (&model->lock);
  return id;
}

void
llm_model_add_sequence (LlmModel * model, LlmSequence * seq)
{
  g_mutex_lock (&model->lock);
  g_hash_table_replace (model->sequences, &seq->id, seq);
  g_mutex_unlock (&model->lock);
}

LlmSequence *
llm_model_lookup_sequence (LlmModel * model, guint64 id)
{
  LlmSequence *seq;

  g_mutex_lock (&model->lock);
  seq = g_hash_table_lookup (model->sequences, &id);
  g_mutex_unlock (&model->lock);
  return seq;
}

LlmSequence *
llm_model_claim_sequence (LlmModel * model, guint64 id)
{
  LlmSequence *seq;

  g_mutex_lock (&model->lock);
  seq = g_hash_table_lookup (model->sequences, &id);
  if (seq)
    seq->claimed = TRUE;
  g_mutex_unlock (&model->lock);
  return seq;
}

static gboolean
is_unclaimed_of (gpointer key, gpointer value, gpointer owner)
{
  LlmSequence *seq = value;

  return !seq->claimed && seq->owner == owner;
}

guint
llm_model_remove_unclaimed (LlmModel * model, gconstpointer owner)
{
  guint n;

  g_mutex_lock (&model->lock);
  n = g_hash_table_foreach_remove (model->sequences, is_unclaimed_of,
      (gpointer) owner);
  g_mutex_unlock (&model->lock);
  return n;
}

gboolean
llm_model_remove_sequence (LlmModel * model, guint64 id)
{
  gboolean removed;

  g_mutex_lock (&model->lock);
  removed = g_hash_table_remove (model->sequences, &id);
  g_cond_broadcast (&model->released);
  g_mutex_unlock (&model->lock);
  return removed;
}

guint
llm_model_n_sequences (LlmModel * model)
{
  guint n;

  g_mutex_lock (&model->lock);
  n = g_hash_table_size (model->sequences);
  g_mutex_unlock (&model->lock);
  return n;
}

GstContext *
llm_model_context_new (LlmModel * model)
{
  GstContext *context = gst_context_new (LLM_MODEL_CONTEXT_TYPE, TRUE);
  GstStructure *s = gst_context_writable_structure (context);

  gst_structure_set (s, "model", LLM_TYPE_MODEL, model, NULL);
  return context;
}

LlmModel *
llm_model_from_context (GstContext * context)
{
  const GstStructure *s;
  LlmModel *model = NULL;

  if (g_strcmp0 (gst_context_get_context_type (context),
          LLM_MODEL_CONTEXT_TYPE) != 0)
    return NULL;
  s = gst_context_get_structure (context);
  if (!gst_structure_get (s, "model", LLM_TYPE_MODEL, &model, NULL))
    return NULL;
  return model;
}

gboolean
llm_model_answer_context_query (LlmModel * model, GstQuery * query)
{
  const gchar *type;
  GstContext *context;

  if (model == NULL || !gst_query_parse_context_type (query, &type)
      || g_strcmp0 (type, LLM_MODEL_CONTEXT_TYPE) != 0)
    return FALSE;
  context = llm_model_context_new (model);
  gst_query_set_context (query, context);
  gst_context_unref (context);
  return TRUE;
}

LlmModel *
llm_model_find_from_pad (GstElement * element, GstPad * pad)
{
  GstQuery *query = gst_query_new_context (LLM_MODEL_CONTEXT_TYPE);
  LlmModel *model = NULL;

  if (gst_pad_peer_query (pad, query)) {
    GstContext *context = NULL;

    gst_query_parse_context (query, &context);
    if (context)
      model = llm_model_from_context (context);
  }
  gst_query_unref (query);

  if (model == NULL) {
    /* The application (or a bin that already has one) may answer by
     * calling gst_element_set_context() from the bus sync handler. */
    GstMessage *msg = gst_message_new_need_context (GST_OBJECT (element),
        LLM_MODEL_CONTEXT_TYPE);
    gst_element_post_message (element, msg);
    {
      GstContext *context = gst_element_get_context (element,
          LLM_MODEL_CONTEXT_TYPE);
      if (context) {
        model = llm_model_from_context (context);
        gst_context_unref (context);
      }
    }
  }
  return model;
}

gpointer
llm_model_get_weights (LlmModel * model, const LlmBackend * backend,
    gint index, LlmProgressFunc progress, gpointer user_data,
    GError ** error)
{
  DeviceWeights *dw;
  gpointer w = NULL;

  g_return_val_if_fail (LLM_IS_MODEL (model), NULL);
  g_return_val_if_fail (backend != NULL, NULL);

  g_mutex_lock (&model->weights_lock);
  if (model->device_weights == NULL)
    model->device_weights = g_ptr_array_new_with_free_func
        (device_weights_free);
  for (guint i = 0; i < model->device_weights->len; i++) {
    dw = g_ptr_array_index (model->device_weights, i);
    if (dw->backend == backend && dw->index == index)
      w = dw->weights;
  }
  if (w == NULL) {
    w = backend->weights_new (model->file, index, progress, user_data, error);
    if (w != NULL) {
      dw = g_new0 (DeviceWeights, 1);
      dw->backend = backend;
      dw->index = index;
      dw->weights = w;
      g_ptr_array_add (model->device_weights, dw);
    }
  }
  g_mutex_unlock (&model->weights_lock);
  return w;
}
