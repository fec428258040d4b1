/* LLMasOS - hyper-parameters and weights of a Llama-family model, from a
 * Hugging Face folder (config.json + *.safetensors + tokenizer.json) or a
 * GGUF file written the way llama.cpp writes them.
 *
 * Both formats end in the same checks: every tensor present, of a dtype this
 * build computes with, and of exactly the shape the hyper-parameters imply.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-model-file.h"
#include "llm-model-arch.h"
#include "llm-error.h"

#include <string.h>
#include <json-glib/json-glib.h>

/* Tensor names, per layer with one %u for the layer number. */
typedef struct
{
  const gchar *tok_embd;
  const gchar *out_norm;
  const gchar *output;
  const gchar *attn_norm;
  const gchar *wq;
  const gchar *wk;
  const gchar *wv;
  const gchar *wo;
  const gchar *ffn_norm;
  const gchar *w_gate;
  const gchar *w_up;
  const gchar *w_down;
  const gchar *attn_q_norm;     /* with hp.qk_norm */
  const gchar *attn_k_norm;
  const gchar *post_attn_norm;  /* with hp.post_norms */
  const gchar *post_ffn_norm;
} TensorNames;

static const TensorNames hf_names = {
  "model.embed_tokens.weight",
  "model.norm.weight",
  "lm_head.weight",
  "model.layers.%u.input_layernorm.weight",
  "model.layers.%u.self_attn.q_proj.weight",
  "model.layers.%u.self_attn.k_proj.weight",
  "model.layers.%u.self_attn.v_proj.weight",
  "model.layers.%u.self_attn.o_proj.weight",
  "model.layers.%u.post_attention_layernorm.weight",
  "model.layers.%u.mlp.gate_proj.weight",
  "model.layers.%u.mlp.up_proj.weight",
  "model.layers.%u.mlp.down_proj.weight",
};

static const TensorNames gguf_names = {
  "token_embd.weight",
  "output_norm.weight",
  "output.weight",
  "blk.%u.attn_norm.weight",
  "blk.%u.attn_q.weight",
  "blk.%u.attn_k.weight",
  "blk.%u.attn_v.weight",
  "blk.%u.attn_output.weight",
  "blk.%u.ffn_norm.weight",
  "blk.%u.ffn_gate.weight",
  "blk.%u.ffn_up.weight",
  "blk.%u.ffn_down.weight",
  "blk.%u.attn_q_norm.weight",
  "blk.%u.attn_k_norm.weight",
  "blk.%u.post_attention_norm.weight",
  "blk.%u.post_ffw_norm.weight",
};

/* A tensor and the file it lives in (for messages). */
typedef struct
{
  const LlmTensor *tensor;
  const gchar *file;
} TensorRef;

typedef struct
{
  LlmModelFile *mf;
  GHashTable *tensors;          /* name -> TensorRef */
  GPtrArray *files;             /* shard paths the refs point to */
  LlmProgressFunc progress;
  gpointer user_data;
} Loader;

static void
report (Loader * l, gdouble fraction, const gchar * what)
{
  if (l->progress)
    l->progress (fraction, what, l->user_data);
}

static void
add_ref (Loader * l, const LlmTensor * t, const gchar * file)
{
  TensorRef *ref = g_new (TensorRef, 1);

  ref->tensor = t;
  ref->file = file;
  g_hash_table_insert (l->tensors, t->name, ref);
}

static void
owned_tensor_free (gpointer p)
{
  LlmTensor *t = p;

  g_free (t->name);
  g_free ((gpointer) t->data);
  g_free (t);
}

static gchar *
shape_string (guint n_dims, const guint64 * ne)
{
  GString *s = g_string_new ("[");

  for (guint d = 0; d < n_dims; d++)
    g_string_append_printf (s, "%s%" G_GUINT64_FORMAT, d ? ", " : "", ne[d]);
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

/* --- tensors -------------------------------------------------------------- */

static const TensorRef *
find_tensor (Loader * l, const gchar * name, GError ** error)
{
  const TensorRef *ref = g_hash_table_lookup (l->tensors, name);

  if (ref == NULL)
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: tensor '%s' is missing", l->mf->path, name);
  return ref;
}

static gboolean
check_shape (const TensorRef * ref, guint n_dims, const guint64 * ne,
    GError ** error)
{
  const LlmTensor *t = ref->tensor;
  gboolean same = t->n_dims == n_dims;

  for (guint d = 0; same && d < n_dims; d++)
    same = t->ne[d] == ne[d];
  if (!same) {
    g_autofree gchar *have = shape_string (t->n_dims, t->ne);
    g_autofree gchar *want = shape_string (n_dims, ne);

    g_set_error (error, LLM_ERROR, LLM_ERROR_MISMATCH,
        "%s: tensor '%s' has shape %s, expected %s (GGML order, row length "
        "first)", ref->file, t->name, have, want);
    return FALSE;
  }
  return TRUE;
}

/* A matrix of @rows rows of @cols elements: ne = {cols, rows}. */
static const LlmTensor *
get_matrix (Loader * l, const gchar * name, guint64 cols, guint64 rows,
    GError ** error)
{
  const TensorRef *ref = find_tensor (l, name, error);
  const guint64 ne[2] = { cols, rows };

  if (ref == NULL)
    return NULL;
  if (!llm_dtype_can_compute (ref->tensor->dtype)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
        "%s: tensor '%s' has type %s, which this build cannot compute with",
        ref->file, name, llm_dtype_name (ref->tensor->dtype));
    return NULL;
  }
  return check_shape (ref, 2, ne, error) &&
      llm_tensor_check_finite (ref->tensor, ref->file, error) ?
      ref->tensor : NULL;
}

/* A norm weight [dim], as F32: F16 and BF16 ones are converted into a
 * tensor the model file owns. */
static const LlmTensor *
get_norm (Loader * l, const gchar * name, guint64 dim, GError ** error)
{
  const TensorRef *ref = find_tensor (l, name, error);
  const LlmTensor *t;
  LlmTensor *f;

  if (ref == NULL || !check_shape (ref, 1, &dim, error) ||
      !llm_tensor_check_finite (ref->tensor, ref->file, error))
    return NULL;
  t = ref->tensor;
  if (t->dtype == LLM_DTYPE_F32)
    return t;
  if (t->dtype != LLM_DTYPE_F16 && t->dtype != LLM_DTYPE_BF16) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
        "%s: norm tensor '%s' has type %s (F32, F16 or BF16 expected)",
        ref->file, name, llm_dtype_name (t->dtype));
    return NULL;
  }

  f = g_new0 (LlmTensor, 1);
  f->name = g_strdup (t->name);
  f->dtype = LLM_DTYPE_F32;
  f->n_dims = 1;
  f->ne[0] = dim;
  f->ne[1] = f->ne[2] = f->ne[3] = 1;
  f->nbytes = dim * sizeof (float);
  f->data = g_malloc (f->nbytes);
  llm_dequantize_row (t->dtype, t->data, (float *) f->data, dim);
  g_ptr_array_add (l->mf->owned, f);
  return f;
}

static const LlmTensor *
get_layer_matrix (Loader * l, const gchar * fmt, guint layer, guint64 cols,
    guint64 rows, GError ** error)
{
  g_autofree gchar *name = g_strdup_printf (fmt, layer);

  return get_matrix (l, name, cols, rows, error);
}

static const LlmTensor *
get_layer_norm (Loader * l, const gchar * fmt, guint layer, guint64 dim,
    GError ** error)
{
  g_autofree gchar *name = g_strdup_printf (fmt, layer);

  return get_norm (l, name, dim, error);
}

static gboolean
load_layer (Loader * l, const TensorNames * n, guint i, GError ** error)
{
  const LlmHParams *hp = &l->mf->hp;
  LlmLayerWeights *lw = &l->mf->w.layers[i];
  const guint64 q_dim = (guint64) hp->n_heads * hp->head_dim;
  const guint64 kv_dim = (guint64) hp->n_kv_heads * hp->head_dim;

  if (hp->qk_norm && (!(lw->attn_q_norm = get_layer_norm (l, n->attn_q_norm,
                  i, hp->head_dim, error)) ||
          !(lw->attn_k_norm = get_layer_norm (l, n->attn_k_norm, i,
                  hp->head_dim, error))))
    return FALSE;
  if (hp->post_norms && (!(lw->post_attn_norm = get_layer_norm (l,
                  n->post_attn_norm, i, hp->dim, error)) ||
          !(lw->post_ffn_norm = get_layer_norm (l, n->post_ffn_norm, i,
                  hp->dim, error))))
    return FALSE;
  return (lw->attn_norm = get_layer_norm (l, n->attn_norm, i, hp->dim, error))
      && (lw->wq = get_layer_matrix (l, n->wq, i, hp->dim, q_dim, error))
      && (lw->wk = get_layer_matrix (l, n->wk, i, hp->dim, kv_dim, error))
      && (lw->wv = get_layer_matrix (l, n->wv, i, hp->dim, kv_dim, error))
      && (lw->wo = get_layer_matrix (l, n->wo, i, q_dim, hp->dim, error))
      && (lw->ffn_norm = get_layer_norm (l, n->ffn_norm, i, hp->dim, error))
      && (lw->w_gate = get_layer_matrix (l, n->w_gate, i, hp->dim,
          hp->ffn_dim, error))
      && (lw->w_up = get_layer_matrix (l, n->w_up, i, hp->dim, hp->ffn_dim,
          error))
      && (lw->w_down = get_layer_matrix (l, n->w_down, i, hp->ffn_dim,
          hp->dim, error));
}

/* The embedding fixes n_vocab; the rest follows the hyper-parameters. */
static gboolean
load_weights (Loader * l, const TensorNames * n, GError ** error)
{
  LlmModelFile *mf = l->mf;
  LlmHParams *hp = &mf->hp;
  const TensorRef *embd = find_tensor (l, n->tok_embd, error);

  if (embd == NULL)
    return FALSE;
  if (embd->tensor->n_dims != 2 || embd->tensor->ne[1] > G_MAXINT32) {
    g_autofree gchar *have = shape_string (embd->tensor->n_dims,
        embd->tensor->ne);
    g_set_error (error, LLM_ERROR, LLM_ERROR_MISMATCH,
        "%s: tensor '%s' has shape %s, expected [%u, n_vocab]", embd->file,
        n->tok_embd, have, hp->dim);
    return FALSE;
  }
  hp->n_vocab = embd->tensor->ne[1];
  mf->w.tok_embd = get_matrix (l, n->tok_embd, hp->dim, hp->n_vocab, error);
  if (mf->w.tok_embd == NULL)
    return FALSE;
  mf->w.out_norm = get_norm (l, n->out_norm, hp->dim, error);
  if (mf->w.out_norm == NULL)
    return FALSE;

  if (!hp->tied_embeddings && !g_hash_table_contains (l->tensors, n->output))
    hp->tied_embeddings = TRUE;
  if (hp->tied_embeddings)
    mf->w.output = mf->w.tok_embd;
  else
    mf->w.output = get_matrix (l, n->output, hp->dim, hp->n_vocab, error);
  if (mf->w.output == NULL)
    return FALSE;

  mf->w.layers = g_new0 (LlmLayerWeights, hp->n_layers);
  for (guint i = 0; i < hp->n_layers; i++) {
    if (!load_layer (l, n, i, error))
      return FALSE;
    report (l, 0.5 + 0.3 * (i + 1) / hp->n_layers, "checking weights");
  }
  return TRUE;
}

/* Sane, consistent numbers before any of them sizes an allocation. */
static gboolean
check_hparams (Loader * l, const gchar * file, GError ** error)
{
  LlmHParams *hp = &l->mf->hp;
  /* each layer has tensors of its own: a layer count above the tensor
   * count is a lie, and must not size an allocation */
  guint max_layers = g_hash_table_size (l->tensors);

  if (hp->head_dim == 0 && hp->n_heads != 0 && hp->dim % hp->n_heads != 0) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_MISMATCH,
        "%s: hidden size %u is not a multiple of %u attention heads, and no "
        "head dimension is given", file, hp->dim, hp->n_heads);
    return FALSE;
  }
  if (hp->dim == 0 || hp->n_layers == 0 || hp->n_heads == 0 ||
      hp->n_kv_heads == 0 || hp->head_dim == 0 || hp->ffn_dim == 0) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: a hyper-parameter is 0 (dim %u, layers %u, heads %u, kv heads "
        "%u, head_dim %u, ffn %u)", file, hp->dim, hp->n_layers, hp->n_heads,
        hp->n_kv_heads, hp->head_dim, hp->ffn_dim);
    return FALSE;
  }
  if (hp->n_heads % hp->n_kv_heads != 0) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_MISMATCH,
        "%s: %u attention heads are not a multiple of %u key/value heads",
        file, hp->n_heads, hp->n_kv_heads);
    return FALSE;
  }
  if (hp->head_dim % 2 != 0) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_MISMATCH,
        "%s: head dimension %u is odd; RoPE needs pairs", file, hp->head_dim);
    return FALSE;
  }
  if (hp->n_layers > max_layers) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_MISMATCH,
        "%s: %u layers, but the file holds only %u tensors", file,
        hp->n_layers, g_hash_table_size (l->tensors));
    return FALSE;
  }
  return TRUE;
}

static gboolean
check_vocab (Loader * l, guint64 declared, const gchar * declared_where,
    GError ** error)
{
  LlmModelFile *mf = l->mf;

  if (mf->vocab->n_tokens != mf->hp.n_vocab) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_MISMATCH,
        "%s: vocabulary has %u tokens but the embedding has %u rows",
        mf->path, mf->vocab->n_tokens, mf->hp.n_vocab);
    return FALSE;
  }
  if (declared != 0 && declared != mf->hp.n_vocab) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_MISMATCH,
        "%s: %s is %" G_GUINT64_FORMAT " but the embedding has %u rows",
        mf->path, declared_where, declared, mf->hp.n_vocab);
    return FALSE;
  }
  return TRUE;
}

/* --- Hugging Face folder -------------------------------------------------- */

/* A non-negative integer member of @o that fits a guint; @def when absent
 * or null (required members pass @required). */
static gboolean
json_uint (JsonObject * o, const gchar * file, const gchar * key,
    gboolean required, guint def, guint * out, GError ** error)
{
  JsonNode *node = json_object_get_member (o, key);

  if (node == NULL || JSON_NODE_HOLDS_NULL (node)) {
    if (required) {
      g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT, "%s: \"%s\" is "
          "missing", file, key);
      return FALSE;
    }
    *out = def;
    return TRUE;
  }
  if (!JSON_NODE_HOLDS_VALUE (node) ||
      json_node_get_value_type (node) != G_TYPE_INT64) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: \"%s\" is not a non-negative integer", file, key);
    return FALSE;
  }
  if (json_node_get_int (node) < 0 || json_node_get_int (node) > G_MAXINT32) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: \"%s\" is %" G_GINT64_FORMAT ", not between 0 and %d", file,
        key, json_node_get_int (node), G_MAXINT32);
    return FALSE;
  }
  *out = json_node_get_int (node);
  return TRUE;
}

static gboolean
json_number (JsonObject * o, const gchar * file, const gchar * key,
    gdouble def, gdouble * out, GError ** error)
{
  JsonNode *node = json_object_get_member (o, key);
  GType t;

  if (node == NULL || JSON_NODE_HOLDS_NULL (node)) {
    *out = def;
    return TRUE;
  }
  t = JSON_NODE_HOLDS_VALUE (node) ? json_node_get_value_type (node) : 0;
  if (t != G_TYPE_DOUBLE && t != G_TYPE_INT64) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: \"%s\" is not a number", file, key);
    return FALSE;
  }
  *out = json_node_get_double (node);
  return TRUE;
}

/* A string member of @o, or NULL if absent or not a string. */
static const gchar *
json_string (JsonObject * o, const gchar * key)
{
  JsonNode *node = json_object_get_member (o, key);

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) ||
      json_node_get_value_type (node) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (node);
}

static gboolean
is_llama_config (JsonObject * cfg)
{
  JsonNode *node = json_object_get_member (cfg, "architectures");
  JsonArray *archs = NULL;
  const gchar *type = json_string (cfg, "model_type");

  if (type != NULL)
    return strcmp (type, "llama") == 0;
  if (node != NULL && JSON_NODE_HOLDS_ARRAY (node))
    archs = json_node_get_array (node);
  for (guint i = 0; archs && i < json_array_get_length (archs); i++) {
    JsonNode *n = json_array_get_element (archs, i);
    if (JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) ==
        G_TYPE_STRING && strcmp (json_node_get_string (n),
            "LlamaForCausalLM") == 0)
      return TRUE;
  }
  return FALSE;
}

static gboolean
parse_config (JsonObject * cfg, const gchar * file, LlmHParams * hp,
    GError ** error)
{
  JsonNode *tie;
  gdouble eps, theta;

  if (!is_llama_config (cfg)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
        "%s: model_type '%s' is not supported (only llama)", file,
        json_string (cfg, "model_type") ? json_string (cfg,
            "model_type") : "(none)");
    return FALSE;
  }
  hp->arch = LLM_ARCH_LLAMA;
  hp->rope_style = LLM_ROPE_HALF;
  if (!json_uint (cfg, file, "hidden_size", TRUE, 0, &hp->dim, error) ||
      !json_uint (cfg, file, "intermediate_size", TRUE, 0, &hp->ffn_dim,
          error) ||
      !json_uint (cfg, file, "num_hidden_layers", TRUE, 0, &hp->n_layers,
          error) ||
      !json_uint (cfg, file, "num_attention_heads", TRUE, 0, &hp->n_heads,
          error) ||
      !json_uint (cfg, file, "num_key_value_heads", FALSE, hp->n_heads,
          &hp->n_kv_heads, error) ||
      !json_uint (cfg, file, "head_dim", FALSE, hp->n_heads &&
          hp->dim % hp->n_heads == 0 ? hp->dim / hp->n_heads : 0,
          &hp->head_dim, error) ||
      !json_uint (cfg, file, "vocab_size", FALSE, 0, &hp->n_vocab, error) ||
      !json_uint (cfg, file, "max_position_embeddings", FALSE, 2048,
          &hp->n_ctx_train, error) ||
      !json_number (cfg, file, "rms_norm_eps", 1e-6, &eps, error) ||
      !json_number (cfg, file, "rope_theta", 10000.0, &theta, error))
    return FALSE;
  hp->rms_eps = eps;
  hp->rope_theta = theta;

  tie = json_object_get_member (cfg, "tie_word_embeddings");
  hp->tied_embeddings = tie && JSON_NODE_HOLDS_VALUE (tie) &&
      json_node_get_value_type (tie) == G_TYPE_BOOLEAN &&
      json_node_get_boolean (tie);
  return TRUE;
}

gboolean
llm_hparams_from_config_json_data (const gchar * data, gsize len,
    const gchar * name, LlmHParams * hp, GError ** error)
{
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  g_autoptr (GError) local = NULL;
  LlmHParams parsed = { 0 };
  JsonNode *root;

  g_return_val_if_fail (data != NULL, FALSE);
  g_return_val_if_fail (hp != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (name == NULL)
    name = "config.json";
  if (len > G_MAXSSIZE) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT, "%s: too large", name);
    return FALSE;
  }
  if (!json_parser_load_from_data (parser, data, len, &local)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT, "%s: not valid JSON: %s",
        name, local->message);
    return FALSE;
  }
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT, "%s: not a JSON object",
        name);
    return FALSE;
  }
  if (!parse_config (json_node_get_object (root), name, &parsed, error))
    return FALSE;
  *hp = parsed;
  return TRUE;
}

static gint
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const gchar * const *) a, *(const gchar * const *) b);
}

/* Every *.safetensors in the folder (one file or shards), in name order. */
static gboolean
open_shards (Loader * l, const gchar * folder, GError ** error)
{
  g_autoptr (GError) local = NULL;
  g_autoptr (GDir) dir = g_dir_open (folder, 0, &local);
  GPtrArray *names = l->files;
  const gchar *entry;

  if (dir == NULL) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_IO, "%s: %s", folder,
        local->message);
    return FALSE;
  }
  while ((entry = g_dir_read_name (dir)) != NULL)
    if (g_str_has_suffix (entry, ".safetensors"))
      g_ptr_array_add (names, g_build_filename (folder, entry, NULL));
  if (names->len == 0) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_IO,
        "%s: no *.safetensors files in the folder", folder);
    return FALSE;
  }
  g_ptr_array_sort (names, compare_strings);

  l->mf->safetensors = g_ptr_array_new_with_free_func ((GDestroyNotify)
      llm_safetensors_free);
  for (guint i = 0; i < names->len; i++) {
    const gchar *path = names->pdata[i];
    LlmSafetensors *st = llm_safetensors_open (path, error);

    if (st == NULL)
      return FALSE;
    g_ptr_array_add (l->mf->safetensors, st);
    for (guint k = 0; k < llm_safetensors_n_tensors (st); k++) {
      const LlmTensor *t = llm_safetensors_tensor (st, k);
      const TensorRef *dup = g_hash_table_lookup (l->tensors, t->name);

      if (dup != NULL) {
        g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
            "%s: tensor '%s' is also in %s", path, t->name, dup->file);
        return FALSE;
      }
      add_ref (l, t, path);
    }
    report (l, 0.1 + 0.4 * (i + 1) / names->len, "mapping tensors");
  }
  return TRUE;
}

static gboolean
load_hf (Loader * l, GError ** error)
{
  LlmModelFile *mf = l->mf;
  g_autofree gchar *cfg_path = g_build_filename (mf->path, "config.json",
      NULL);
  g_autofree gchar *tok_path = g_build_filename (mf->path, "tokenizer.json",
      NULL);
  g_autofree gchar *tokcfg_path = g_build_filename (mf->path,
      "tokenizer_config.json", NULL);
  g_autoptr (GError) local = NULL;
  g_autofree gchar *cfg = NULL;
  gsize cfg_len;
  guint vocab_size;

  mf->format = LLM_MODEL_FORMAT_HF;
  mf->name = g_path_get_basename (mf->path);
  report (l, 0.0, "reading config.json");
  if (!g_file_test (cfg_path, G_FILE_TEST_IS_REGULAR)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_IO, "%s: not a model folder: "
        "it has no config.json", mf->path);
    return FALSE;
  }
  if (!g_file_get_contents (cfg_path, &cfg, &cfg_len, &local)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_IO, "%s: %s", cfg_path,
        local->message);
    return FALSE;
  }
  if (!llm_hparams_from_config_json_data (cfg, cfg_len, cfg_path, &mf->hp,
          error))
    return FALSE;
  /* n_vocab is the embedding's row count once the weights are read */
  vocab_size = mf->hp.n_vocab;

  if (!open_shards (l, mf->path, error) ||
      !check_hparams (l, cfg_path, error) ||
      !load_weights (l, &hf_names, error))
    return FALSE;

  report (l, 0.9, "reading tokenizer.json");
  mf->vocab = llm_vocab_new_from_hf_json (tok_path,
      g_file_test (tokcfg_path, G_FILE_TEST_EXISTS) ? tokcfg_path : NULL,
      error);
  return mf->vocab != NULL && check_vocab (l, vocab_size,
      "config.json vocab_size", error);
}

/* --- GGUF ----------------------------------------------------------------- */

/* The keys of the hyper-parameters are {arch}.@name. */
static gboolean
gguf_uint (const LlmGguf * g, const gchar * file, const gchar * arch,
    const gchar * name, gboolean required, guint def, guint * out,
    GError ** error)
{
  g_autofree gchar *key = g_strdup_printf ("%s.%s", arch, name);
  guint64 v;

  if (llm_gguf_find_kv (g, key) < 0 && !required) {
    *out = def;
    return TRUE;
  }
  if (!llm_gguf_get_uint (g, key, &v) || v > G_MAXINT32) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        llm_gguf_find_kv (g, key) < 0 ? "%s: metadata key %s is missing" :
        "%s: metadata key %s is not a (small enough) unsigned integer",
        file, key);
    return FALSE;
  }
  *out = v;
  return TRUE;
}

static gboolean
gguf_float (const LlmGguf * g, const gchar * file, const gchar * arch,
    const gchar * name, gboolean required, gdouble def, float *out,
    GError ** error)
{
  g_autofree gchar *key = g_strdup_printf ("%s.%s", arch, name);
  gdouble v;

  if (llm_gguf_find_kv (g, key) < 0 && !required) {
    *out = def;
    return TRUE;
  }
  if (!llm_gguf_get_float (g, key, &v)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        llm_gguf_find_kv (g, key) < 0 ? "%s: metadata key %s is missing" :
        "%s: metadata key %s is not a float", file, key);
    return FALSE;
  }
  *out = v;
  return TRUE;
}

static gboolean
parse_gguf_hparams (LlmModelFile * mf, guint * vocab_size, GError ** error)
{
  const LlmGguf *g = mf->gguf;
  const gchar *file = mf->path;
  LlmHParams *hp = &mf->hp;
  const gchar *arch = llm_gguf_get_string (g, "general.architecture");

  if (arch == NULL) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: general.architecture is missing", file);
    return FALSE;
  }
  if (strcmp (arch, "llama") == 0) {
    hp->arch = LLM_ARCH_LLAMA;
    /* llama.cpp permutes Q and K into pairs (2i, 2i+1) at conversion */
    hp->rope_style = LLM_ROPE_INTERLEAVED;
  } else if (strcmp (arch, "gemma3") == 0) {
    hp->arch = LLM_ARCH_GEMMA3;
  } else {
    g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
        "%s: architecture '%s' is not supported (llama, gemma3)", file, arch);
    return FALSE;
  }
  if (!gguf_uint (g, file, arch, "embedding_length", TRUE, 0, &hp->dim,
          error) ||
      !gguf_uint (g, file, arch, "block_count", TRUE, 0, &hp->n_layers,
          error) ||
      !gguf_uint (g, file, arch, "feed_forward_length", TRUE, 0,
          &hp->ffn_dim, error) ||
      !gguf_uint (g, file, arch, "context_length", TRUE, 0, &hp->n_ctx_train,
          error) ||
      !gguf_uint (g, file, arch, "attention.head_count", TRUE, 0,
          &hp->n_heads, error) ||
      !gguf_uint (g, file, arch, "attention.head_count_kv", FALSE,
          hp->n_heads, &hp->n_kv_heads, error) ||
      !gguf_uint (g, file, arch, "attention.key_length", FALSE, hp->n_heads &&
          hp->dim % hp->n_heads == 0 ? hp->dim / hp->n_heads : 0,
          &hp->head_dim, error) ||
      !gguf_uint (g, file, arch, "vocab_size", FALSE, 0, vocab_size, error) ||
      !gguf_float (g, file, arch, "attention.layer_norm_rms_epsilon", TRUE,
          0, &hp->rms_eps, error) ||
      !gguf_float (g, file, arch, "rope.freq_base", FALSE, 10000.0,
          &hp->rope_theta, error))
    return FALSE;
  /* an output.weight that is absent means tied; load_weights decides */
  hp->tied_embeddings = FALSE;
  return hp->arch != LLM_ARCH_GEMMA3 ||
      llm_model_gemma3_gguf_hparams (g, file, hp, error);
}

static gboolean
load_gguf (Loader * l, GError ** error)
{
  LlmModelFile *mf = l->mf;
  g_autofree gchar *key = NULL;
  const gchar *name;
  guint vocab_size;

  mf->format = LLM_MODEL_FORMAT_GGUF;
  report (l, 0.0, "reading GGUF header");
  mf->gguf = llm_gguf_open (mf->path, error);
  if (mf->gguf == NULL)
    return FALSE;
  name = llm_gguf_get_string (mf->gguf, "general.name");
  if (name != NULL) {
    mf->name = g_strdup (name);
  } else {
    g_autofree gchar *base = g_path_get_basename (mf->path);
    if (g_str_has_suffix (base, ".gguf"))
      base[strlen (base) - 5] = '\0';
    mf->name = g_strdup (base);
  }
  if (!parse_gguf_hparams (mf, &vocab_size, error))
    return FALSE;
  for (guint i = 0; i < llm_gguf_n_tensors (mf->gguf); i++)
    add_ref (l, llm_gguf_tensor (mf->gguf, i), mf->path);
  report (l, 0.5, "checking weights");
  if (!check_hparams (l, mf->path, error) ||
      !load_weights (l, &gguf_names, error))
    return FALSE;

  report (l, 0.9, "reading the vocabulary");
  mf->vocab = llm_vocab_new_from_gguf (mf->gguf, error);
  if (mf->vocab == NULL) {
    g_prefix_error (error, "%s: ", mf->path);
    return FALSE;
  }
  key = g_strdup_printf ("%s.vocab_size",
      llm_gguf_get_string (mf->gguf, "general.architecture"));
  return check_vocab (l, vocab_size, key, error);
}

/* --- public --------------------------------------------------------------- */

LlmModelFile *
llm_model_file_load (const gchar * path, LlmProgressFunc progress,
    gpointer user_data, GError ** error)
{
  LlmModelFile *mf;
  Loader l = { 0 };
  gboolean ok;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!g_file_test (path, G_FILE_TEST_EXISTS)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_IO,
        "%s: no such file or folder", path);
    return NULL;
  }

  mf = g_new0 (LlmModelFile, 1);
  mf->path = g_strdup (path);
  mf->owned = g_ptr_array_new_with_free_func (owned_tensor_free);
  l.mf = mf;
  l.tensors = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
  l.files = g_ptr_array_new_with_free_func (g_free);
  l.progress = progress;
  l.user_data = user_data;

  if (g_file_test (path, G_FILE_TEST_IS_DIR))
    ok = load_hf (&l, error);
  else
    ok = load_gguf (&l, error);
  g_hash_table_unref (l.tensors);
  g_ptr_array_unref (l.files);
  if (!ok) {
    llm_model_file_free (mf);
    return NULL;
  }
  report (&l, 1.0, "loaded");
  return mf;
}

void
llm_model_file_free (LlmModelFile * mf)
{
  if (mf == NULL)
    return;
  g_free (mf->w.layers);
  if (mf->vocab)
    llm_vocab_free (mf->vocab);
  if (mf->safetensors)
    g_ptr_array_unref (mf->safetensors);
  if (mf->gguf)
    llm_gguf_free (mf->gguf);
  g_ptr_array_unref (mf->owned);
  g_free (mf->name);
  g_free (mf->path);
  g_free (mf);
}
