/* Model files: stories260K as a Hugging Face folder, converted to GGUF in
 * every supported type and loaded back; broken folders and files.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <gst/check/gstcheck.h>
#include <math.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "llm-model-file.h"
#include "llm-error.h"
#include "test-common.h"

static gchar *tmpdir;

static void
setup_tmpdir (void)
{
  tmpdir = llm_test_tmpdir ();
}

static void
remove_tree (const gchar * path)
{
  GDir *dir = g_dir_open (path, 0, NULL);
  const gchar *e;

  while (dir && (e = g_dir_read_name (dir)) != NULL) {
    g_autofree gchar *p = g_build_filename (path, e, NULL);
    if (g_file_test (p, G_FILE_TEST_IS_DIR) &&
        !g_file_test (p, G_FILE_TEST_IS_SYMLINK))
      remove_tree (p);
    else
      g_unlink (p);
  }
  if (dir)
    g_dir_close (dir);
  g_rmdir (path);
}

static void
teardown_tmpdir (void)
{
  remove_tree (tmpdir);
  g_clear_pointer (&tmpdir, g_free);
}

static LlmModelFile *
load_ok (const gchar * path)
{
  g_autoptr (GError) error = NULL;
  LlmModelFile *mf = llm_model_file_load (path, NULL, NULL, &error);

  g_assert_no_error (error);
  fail_unless (mf != NULL);
  return mf;
}

static LlmModelFile *
load_stories (void)
{
  g_autofree gchar *dir = llm_test_model_dir ("stories260K");

  return load_ok (dir);
}

static gchar *
write_gguf (const LlmModelFile * mf, LlmDType dtype)
{
  g_autoptr (GError) error = NULL;
  g_autofree gchar *name = g_strdup_printf ("out-%s.gguf",
      llm_dtype_name (dtype));
  gchar *path = g_build_filename (tmpdir, name, NULL);

  fail_unless (llm_model_file_write_gguf (mf, path, dtype, NULL, NULL, &error));
  g_assert_no_error (error);
  return path;
}

static void
expect_load_error (const gchar * path, gint code, const gchar * phrase)
{
  g_autoptr (GError) error = NULL;
  LlmModelFile *mf = llm_model_file_load (path, NULL, NULL, &error);

  fail_unless (mf == NULL, "loaded, but expected: %s", phrase);
  fail_unless (error != NULL && error->domain == LLM_ERROR);
  fail_unless (error->code == code, "code %d, expected %d: %s", error->code,
      code, error->message);
  fail_unless (strstr (error->message, phrase) != NULL, "'%s' not in: %s",
      phrase, error->message);
}

static void
check_shape2 (const LlmTensor * t, guint64 ne0, guint64 ne1)
{
  fail_unless (t != NULL);
  fail_unless_equals_int (t->n_dims, 2);
  fail_unless_equals_uint64 (t->ne[0], ne0);
  fail_unless_equals_uint64 (t->ne[1], ne1);
}

static void
check_norm (const LlmTensor * t)
{
  fail_unless (t != NULL);
  fail_unless_equals_int (t->dtype, LLM_DTYPE_F32);
  fail_unless_equals_int (t->n_dims, 1);
  fail_unless_equals_uint64 (t->ne[0], 64);
}

/* stories260K's config.json values. */
static void
check_hparams (const LlmHParams * hp, LlmRopeStyle rope)
{
  fail_unless_equals_int (hp->arch, LLM_ARCH_LLAMA);
  fail_unless_equals_int (hp->n_vocab, 512);
  fail_unless_equals_int (hp->dim, 64);
  fail_unless_equals_int (hp->n_layers, 5);
  fail_unless_equals_int (hp->n_heads, 8);
  fail_unless_equals_int (hp->n_kv_heads, 4);
  fail_unless_equals_int (hp->head_dim, 8);
  fail_unless_equals_int (hp->ffn_dim, 172);
  fail_unless_equals_int (hp->n_ctx_train, 512);
  fail_unless_equals_float (hp->rms_eps, 1e-5f);
  fail_unless_equals_float (hp->rope_theta, 10000.0f);
  fail_unless_equals_int (hp->rope_style, rope);
  fail_unless (hp->tied_embeddings);
}

static void
check_weights (const LlmModelFile * mf)
{
  const LlmWeights *w = &mf->w;

  check_shape2 (w->tok_embd, 64, 512);
  fail_unless (w->output == w->tok_embd);
  check_norm (w->out_norm);
  for (guint i = 0; i < 5; i++) {
    const LlmLayerWeights *l = &w->layers[i];

    check_norm (l->attn_norm);
    check_norm (l->ffn_norm);
    check_shape2 (l->wq, 64, 64);
    check_shape2 (l->wk, 64, 32);
    check_shape2 (l->wv, 64, 32);
    check_shape2 (l->wo, 64, 64);
    check_shape2 (l->w_gate, 64, 172);
    check_shape2 (l->w_up, 64, 172);
    check_shape2 (l->w_down, 172, 64);
  }
}

static void
record_progress (gdouble fraction, const gchar * what, gpointer user_data)
{
  GArray *a = user_data;

  fail_unless (what != NULL && *what != '\0');
  g_array_append_val (a, fraction);
}

GST_START_TEST (test_load_hf)
{
  g_autofree gchar *dir = llm_test_model_dir ("stories260K");
  g_autoptr (GArray) steps = g_array_new (FALSE, FALSE, sizeof (gdouble));
  g_autoptr (GError) error = NULL;
  g_autoptr (LlmModelFile) mf = llm_model_file_load (dir, record_progress,
      steps, &error);

  g_assert_no_error (error);
  fail_unless_equals_int (mf->format, LLM_MODEL_FORMAT_HF);
  fail_unless_equals_string (mf->name, "stories260K");
  fail_unless_equals_string (mf->path, dir);
  check_hparams (&mf->hp, LLM_ROPE_HALF);
  check_weights (mf);
  fail_unless (mf->gguf == NULL);
  fail_unless_equals_int (mf->safetensors->len, 1);
  fail_unless_equals_int (mf->vocab->n_tokens, 512);
  fail_unless_equals_int (mf->vocab->bos, 1);
  fail_unless_equals_int (mf->vocab->eos, 2);
  /* weights point into the mapped safetensors file: the F32 norms too */
  fail_unless (mf->w.out_norm ==
      llm_safetensors_find (mf->safetensors->pdata[0], "model.norm.weight"));
  fail_unless_equals_int (mf->owned->len, 0);

  fail_unless (steps->len >= 3);
  for (guint i = 1; i < steps->len; i++)
    fail_unless (g_array_index (steps, gdouble, i) >=
        g_array_index (steps, gdouble, i - 1));
  fail_unless_equals_float (g_array_index (steps, gdouble, steps->len - 1),
      1.0);
}

GST_END_TEST;

/* Pairs of (source, converted) tensors; q and k rows are permuted. */
typedef struct
{
  const LlmTensor *src, *dst;
  gboolean permuted;
} Pair;

static GArray *
pairs_of (const LlmModelFile * a, const LlmModelFile * b)
{
  GArray *p = g_array_new (FALSE, FALSE, sizeof (Pair));
  Pair e;

#define ADD(field, perm) \
  e.src = a->field; e.dst = b->field; e.permuted = perm; \
  g_array_append_val (p, e)
  ADD (w.tok_embd, FALSE);
  ADD (w.out_norm, FALSE);
  for (guint i = 0; i < a->hp.n_layers; i++) {
    ADD (w.layers[i].attn_norm, FALSE);
    ADD (w.layers[i].wq, TRUE);
    ADD (w.layers[i].wk, TRUE);
    ADD (w.layers[i].wv, FALSE);
    ADD (w.layers[i].wo, FALSE);
    ADD (w.layers[i].ffn_norm, FALSE);
    ADD (w.layers[i].w_gate, FALSE);
    ADD (w.layers[i].w_up, FALSE);
    ADD (w.layers[i].w_down, FALSE);
  }
#undef ADD
  return p;
}

/* The converted row that holds source row @src_row. llama.cpp's permute
 * makes rotate-half pairs (j, j + hd/2) adjacent: (2j, 2j + 1). */
static guint64
converted_row (guint64 src_row, gboolean permuted)
{
  const guint hd = 8;
  guint64 head = src_row / hd, i = src_row % hd;

  if (!permuted)
    return src_row;
  return head * hd + (i < hd / 2 ? 2 * i : 2 * (i - hd / 2) + 1);
}

/* Row @r of @t as f32. */
static void
row_f32 (const LlmTensor * t, guint64 r, float *out)
{
  guint64 row_bytes = t->nbytes / (llm_tensor_n_elements (t) / t->ne[0]);

  llm_dequantize_row (t->dtype, t->data + r * row_bytes, out, t->ne[0]);
}

GST_START_TEST (test_convert_f32)
{
  g_autoptr (LlmModelFile) hf = load_stories ();
  g_autofree gchar *path = write_gguf (hf, LLM_DTYPE_F32);
  g_autoptr (LlmModelFile) gg = load_ok (path);
  g_autofree gchar *bin_path = llm_test_model_file ("stories260K",
      "llama2c/stories260K.bin");
  g_autoptr (GMappedFile) bin = g_mapped_file_new (bin_path, FALSE, NULL);
  g_autoptr (GArray) pairs = pairs_of (hf, gg);
  const float *l2c = (const float *) (g_mapped_file_get_contents (bin) + 28);

  fail_unless_equals_int (gg->format, LLM_MODEL_FORMAT_GGUF);
  fail_unless_equals_string (gg->name, "stories260K");
  check_hparams (&gg->hp, LLM_ROPE_INTERLEAVED);
  check_weights (gg);
  fail_unless (llm_gguf_find_tensor (gg->gguf, "output.weight") == NULL);
  fail_unless_equals_int (llm_gguf_n_tensors (gg->gguf), 47);
  {
    guint64 ft = 99;
    fail_unless (llm_gguf_get_uint (gg->gguf, "general.file_type", &ft));
    fail_unless_equals_uint64 (ft, 0);
  }

  /* the same vocabulary */
  fail_unless_equals_int (gg->vocab->n_tokens, hf->vocab->n_tokens);
  fail_unless_equals_int (gg->vocab->kind, hf->vocab->kind);
  fail_unless_equals_int (gg->vocab->bos, hf->vocab->bos);
  fail_unless_equals_int (gg->vocab->eos, hf->vocab->eos);
  fail_unless_equals_int (gg->vocab->n_merges, hf->vocab->n_merges);
  for (guint i = 0; i < hf->vocab->n_tokens; i++)
    fail_unless_equals_string (gg->vocab->pieces[i], hf->vocab->pieces[i]);

  /* byte-identical tensors, q/k rows moved as llama.cpp moves them */
  for (guint k = 0; k < pairs->len; k++) {
    const Pair *p = &g_array_index (pairs, Pair, k);
    guint64 rows = llm_tensor_n_elements (p->src) / p->src->ne[0];
    gsize row_bytes = p->src->ne[0] * 4;

    fail_unless_equals_int (p->dst->dtype, LLM_DTYPE_F32);
    fail_unless_equals_uint64 (p->dst->nbytes, p->src->nbytes);
    for (guint64 r = 0; r < rows; r++)
      fail_unless (memcmp (p->dst->data + converted_row (r, p->permuted) *
              row_bytes, p->src->data + r * row_bytes, row_bytes) == 0,
          "%s row %" G_GUINT64_FORMAT, p->dst->name, r);
  }

  /* and q/k are exactly llama2.c's original interleaved matrices, which
   * is the layout llama.cpp expects */
  {
    const float *wq0 = l2c + 512 * 64 + 5 * 64;
    const float *wk0 = wq0 + 5 * 64 * 64;

    fail_unless (memcmp (gg->w.layers[0].wq->data, wq0, 64 * 64 * 4) == 0);
    fail_unless (memcmp (gg->w.layers[1].wq->data, wq0 + 64 * 64,
            64 * 64 * 4) == 0);
    fail_unless (memcmp (gg->w.layers[0].wk->data, wk0, 64 * 32 * 4) == 0);
    fail_unless (memcmp (gg->w.layers[4].wk->data, wk0 + 4 * 64 * 32,
            64 * 32 * 4) == 0);
  }

  /* GGUF -> GGUF keeps everything as it is (no second permutation) */
  {
    g_autofree gchar *again = g_build_filename (tmpdir, "again.gguf", NULL);
    g_autoptr (GError) error = NULL;
    g_autoptr (LlmModelFile) g2 = NULL;

    fail_unless (llm_model_file_write_gguf (gg, again, LLM_DTYPE_F32, NULL,
            NULL, &error));
    g2 = load_ok (again);
    for (guint i = 0; i < llm_gguf_n_tensors (gg->gguf); i++) {
      const LlmTensor *a = llm_gguf_tensor (gg->gguf, i);
      const LlmTensor *b = llm_gguf_find_tensor (g2->gguf, a->name);

      fail_unless (b != NULL && b->nbytes == a->nbytes);
      fail_unless (memcmp (a->data, b->data, a->nbytes) == 0, "%s", a->name);
    }
  }
}

GST_END_TEST;

/* Largest magnitude in the 32-element block of @x that holds @c. */
static gdouble
block_amax (const float *x, guint64 c, guint64 cols)
{
  guint64 start = c / 32 * 32;
  gdouble m = 0;

  for (guint64 i = start; i < MIN (start + 32, cols); i++)
    m = MAX (m, fabs (x[i]));
  return m;
}

/* Converted values against the source, row by row, within what @dtype
 * can hold; returns the relative RMS error over all matrices. */
static gdouble
check_converted (const Pair * p, LlmDType dtype)
{
  guint64 cols = p->src->ne[0];
  guint64 rows = llm_tensor_n_elements (p->src) / cols;
  g_autofree float *s = g_new (float, cols);
  g_autofree float *d = g_new (float, cols);
  gdouble err2 = 0, sum2 = 0;

  for (guint64 r = 0; r < rows; r++) {
    row_f32 (p->src, r, s);
    row_f32 (p->dst, converted_row (r, p->permuted), d);
    for (guint64 c = 0; c < cols; c++) {
      gdouble e = fabs (d[c] - s[c]);
      gdouble amax = block_amax (s, c, cols);

      err2 += e * e;
      sum2 += (gdouble) s[c] * s[c];
      switch (p->dst->dtype) {
        case LLM_DTYPE_F32:
          fail_unless (d[c] == s[c]);
          break;
        case LLM_DTYPE_F16:
          fail_unless (d[c] == llm_f16_to_f32 (llm_f32_to_f16 (s[c])));
          break;
        case LLM_DTYPE_BF16:
          fail_unless (d[c] == llm_bf16_to_f32 (llm_f32_to_bf16 (s[c])));
          break;
        case LLM_DTYPE_Q8_0:
          /* half a step of amax/127, plus the f16 rounding of the scale */
          fail_unless (e <= amax / 127 * 0.57 + 1e-7, "%s: %g vs %g (amax "
              "%g)", p->dst->name, d[c], s[c], amax);
          break;
        case LLM_DTYPE_Q4_0:
          /* a step is amax/8; -amax's twin clips to +7: one full step */
          fail_unless (e <= amax / 8 * 1.01 + 1e-7, "%s: %g vs %g (amax "
              "%g)", p->dst->name, d[c], s[c], amax);
          break;
        default:
          fail ("unexpected type");
      }
    }
  }
  fail_unless (p->dst->dtype == dtype || p->dst->n_dims == 1 ||
      p->src->ne[0] % 32 != 0);
  return sum2 > 0 ? sqrt (err2 / sum2) : 0;
}

GST_START_TEST (test_convert_types)
{
  const struct
  {
    LlmDType dtype;
    guint64 file_type;
    gdouble max_rel_rms;        /* over one matrix */
  } types[] = {
    {LLM_DTYPE_F16, 1, 1e-3},
    {LLM_DTYPE_BF16, 32, 5e-3},
    {LLM_DTYPE_Q8_0, 7, 0.01},
    {LLM_DTYPE_Q4_0, 2, 0.15},
  };
  g_autoptr (LlmModelFile) hf = load_stories ();

  for (guint t = 0; t < G_N_ELEMENTS (types); t++) {
    g_autofree gchar *path = write_gguf (hf, types[t].dtype);
    g_autoptr (LlmModelFile) gg = load_ok (path);
    g_autoptr (GArray) pairs = pairs_of (hf, gg);
    guint64 ft;

    check_hparams (&gg->hp, LLM_ROPE_INTERLEAVED);
    check_weights (gg);
    fail_unless (llm_gguf_get_uint (gg->gguf, "general.file_type", &ft));
    fail_unless_equals_uint64 (ft, types[t].file_type);

    for (guint k = 0; k < pairs->len; k++) {
      const Pair *p = &g_array_index (pairs, Pair, k);
      LlmDType want = p->src->n_dims == 1 ? LLM_DTYPE_F32 : types[t].dtype;
      gdouble rel;

      /* ffn_down rows are 172 long: not whole blocks -> F16 */
      if ((want == LLM_DTYPE_Q8_0 || want == LLM_DTYPE_Q4_0) &&
          p->src->ne[0] % 32 != 0)
        want = LLM_DTYPE_F16;
      fail_unless_equals_int (p->dst->dtype, want);
      rel = check_converted (p, types[t].dtype);
      if (p->dst->dtype == types[t].dtype)
        fail_unless (rel <= types[t].max_rel_rms, "%s %s: relative RMS "
            "error %g", llm_dtype_name (types[t].dtype), p->dst->name, rel);
    }
    g_unlink (path);
  }
}

GST_END_TEST;

/* --- broken folders -------------------------------------------------- */

/* A folder with a config.json edited by @edit (key, JSON value; NULL value
 * removes the key), linking to stories260K's other files. */
static gchar *
make_hf_folder (const gchar * name, const gchar * key, const gchar * value,
    gboolean with_weights)
{
  g_autofree gchar *src = llm_test_model_dir ("stories260K");
  g_autofree gchar *cfg_path = g_build_filename (src, "config.json", NULL);
  gchar *dir = g_build_filename (tmpdir, name, NULL);
  const gchar *links[] = { "model.safetensors", "tokenizer.json",
    "tokenizer_config.json"
  };
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  JsonObject *cfg;
  g_autofree gchar *out = NULL;

  fail_unless (g_mkdir (dir, 0755) == 0);
  for (guint i = 0; i < G_N_ELEMENTS (links); i++) {
    g_autofree gchar *target = g_build_filename (src, links[i], NULL);
    g_autofree gchar *link = g_build_filename (dir, links[i], NULL);

    if (i == 0 && !with_weights)
      continue;
    fail_unless (symlink (target, link) == 0);
  }
  fail_unless (json_parser_load_from_file (parser, cfg_path, NULL));
  cfg = json_node_get_object (json_parser_get_root (parser));
  if (key != NULL) {
    json_object_remove_member (cfg, key);
    if (value != NULL)
      json_object_set_member (cfg, key, json_from_string (value, NULL));
  }
  json_generator_set_root (gen, json_parser_get_root (parser));
  out = g_build_filename (dir, "config.json", NULL);
  fail_unless (json_generator_to_file (gen, out, NULL));
  return dir;
}

GST_START_TEST (test_hf_errors)
{
  struct
  {
    const gchar *key, *value;
    gboolean weights;
    gint code;
    const gchar *phrase;
  } cases[] = {
    {"intermediate_size", "100", TRUE, LLM_ERROR_MISMATCH,
        "model.safetensors: tensor 'model.layers.0.mlp.gate_proj.weight' has "
          "shape [64, 172], expected [64, 100]"},
    {"num_key_value_heads", "3", TRUE, LLM_ERROR_MISMATCH,
        "8 attention heads are not a multiple of 3 key/value heads"},
    {"num_key_value_heads", "8", TRUE, LLM_ERROR_MISMATCH,
        "tensor 'model.layers.0.self_attn.k_proj.weight' has shape [64, 32], "
          "expected [64, 64]"},
    {"hidden_size", "32", TRUE, LLM_ERROR_MISMATCH,
        "tensor 'model.embed_tokens.weight' has shape [64, 512], expected "
          "[32, 512]"},
    {"vocab_size", "500", TRUE, LLM_ERROR_MISMATCH,
        "config.json vocab_size is 500 but the embedding has 512 rows"},
    {"model_type", "\"mistral\"", TRUE, LLM_ERROR_UNSUPPORTED,
        "model_type 'mistral' is not supported"},
    {"num_hidden_layers", NULL, TRUE, LLM_ERROR_FORMAT,
        "\"num_hidden_layers\" is missing"},
    {"num_hidden_layers", "\"5\"", TRUE, LLM_ERROR_FORMAT,
        "\"num_hidden_layers\" is not a non-negative integer"},
    {"num_hidden_layers", "6", TRUE, LLM_ERROR_FORMAT,
        "tensor 'model.layers.5.input_layernorm.weight' is missing"},
    {"num_hidden_layers", "4000000", TRUE, LLM_ERROR_MISMATCH,
        "4000000 layers, but the file holds only 47 tensors"},
    {NULL, NULL, FALSE, LLM_ERROR_IO, "no *.safetensors files"},
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree gchar *name = g_strdup_printf ("hf%u", i);
    g_autofree gchar *dir = make_hf_folder (name, cases[i].key,
        cases[i].value, cases[i].weights);

    expect_load_error (dir, cases[i].code, cases[i].phrase);
  }

  /* without model_type, "architectures" decides; defaults fill in */
  {
    g_autofree gchar *dir = make_hf_folder ("hf-arch", "model_type", NULL,
        TRUE);
    g_autoptr (LlmModelFile) mf = load_ok (dir);
    check_hparams (&mf->hp, LLM_ROPE_HALF);
  }
  {
    g_autofree gchar *dir = make_hf_folder ("hf-def", "rope_theta", NULL,
        TRUE);
    g_autoptr (LlmModelFile) mf = load_ok (dir);
    fail_unless_equals_float (mf->hp.rope_theta, 10000.0f);
  }

  expect_load_error ("/nonexistent/model", LLM_ERROR_IO,
      "/nonexistent/model: no such file or folder");
}

GST_END_TEST;

/* --- broken GGUF files --------------------------------------------------- */

static gboolean
in_list (const gchar * s, const gchar * const *list)
{
  return list != NULL && g_strv_contains (list, s);
}

/* A writer holding @g's metadata and tensors, less those listed. Tensor
 * bytes point into @g, which must outlive the writer. */
static LlmGgufWriter *
copy_gguf (const LlmGguf * g, const gchar * const *skip_keys,
    const gchar * const *skip_tensors)
{
  LlmGgufWriter *w = llm_gguf_writer_new ();

  for (guint i = 0; i < llm_gguf_n_kv (g); i++) {
    if (in_list (llm_gguf_kv_key (g, i), skip_keys))
      continue;
    llm_gguf_writer_add_kv (w, llm_gguf_kv_key (g, i), llm_gguf_kv_type (g,
            i), llm_gguf_kv_array_type (g, i), llm_gguf_kv_value (g, i));
  }
  for (guint i = 0; i < llm_gguf_n_tensors (g); i++) {
    const LlmTensor *t = llm_gguf_tensor (g, i);
    g_autoptr (GBytes) b = NULL;

    if (in_list (t->name, skip_tensors))
      continue;
    b = g_bytes_new_static (t->data, t->nbytes);
    fail_unless (llm_gguf_writer_add_tensor (w, t->name, t->dtype, t->n_dims,
            t->ne, b, NULL));
  }
  return w;
}

static gchar *
finish (LlmGgufWriter * w, const gchar * name)
{
  g_autoptr (GError) error = NULL;
  gchar *path = g_build_filename (tmpdir, name, NULL);

  fail_unless (llm_gguf_writer_write (w, path, &error));
  llm_gguf_writer_free (w);
  return path;
}

GST_START_TEST (test_gguf_errors)
{
  g_autoptr (LlmModelFile) hf = load_stories ();
  g_autofree gchar *base = write_gguf (hf, LLM_DTYPE_F32);
  g_autoptr (LlmModelFile) gg = load_ok (base);
  const LlmGguf *g = gg->gguf;
  LlmGgufWriter *w;
  g_autofree gchar *p1 = NULL, *p2 = NULL, *p3 = NULL, *p4 = NULL;
  g_autofree gchar *p5 = NULL, *p6 = NULL, *p7 = NULL, *p8 = NULL;

  /* another architecture */
  w = copy_gguf (g, NULL, NULL);
  llm_gguf_writer_add_string (w, "general.architecture", "gpt2");
  p1 = finish (w, "gpt2.gguf");
  expect_load_error (p1, LLM_ERROR_UNSUPPORTED,
      "gpt2.gguf: architecture 'gpt2' is not supported");

  /* a missing tensor */
  {
    const gchar *skip[] = { "blk.1.ffn_up.weight", NULL };
    w = copy_gguf (g, NULL, skip);
    p2 = finish (w, "missing.gguf");
    expect_load_error (p2, LLM_ERROR_FORMAT,
        "missing.gguf: tensor 'blk.1.ffn_up.weight' is missing");
  }

  /* a matrix of a type this build cannot compute */
  {
    const gchar *skip[] = { "blk.0.attn_q.weight", NULL };
    const guint64 ne[2] = { 256, 16 };
    g_autoptr (GBytes) q41 = g_bytes_new_take (g_malloc0 (16 * 160), 16 * 160);

    w = copy_gguf (g, NULL, skip);
    fail_unless (llm_gguf_writer_add_tensor (w, "blk.0.attn_q.weight",
            LLM_DTYPE_Q4_1, 2, ne, q41, NULL));
    p3 = finish (w, "q41.gguf");
    expect_load_error (p3, LLM_ERROR_UNSUPPORTED,
        "tensor 'blk.0.attn_q.weight' has type Q4_1");
  }

  /* GQA that does not divide; a missing required key */
  w = copy_gguf (g, NULL, NULL);
  llm_gguf_writer_add_uint32 (w, "llama.attention.head_count_kv", 3);
  p4 = finish (w, "gqa.gguf");
  expect_load_error (p4, LLM_ERROR_MISMATCH, "not a multiple of 3");
  {
    const gchar *skip[] = { "llama.embedding_length", NULL };
    w = copy_gguf (g, skip, NULL);
    p5 = finish (w, "nokey.gguf");
    expect_load_error (p5, LLM_ERROR_FORMAT,
        "metadata key llama.embedding_length is missing");
  }

  /* a vocabulary one token short of the embedding */
  hf->vocab->n_tokens--;
  p6 = write_gguf (hf, LLM_DTYPE_F16);
  hf->vocab->n_tokens++;
  expect_load_error (p6, LLM_ERROR_MISMATCH,
      "vocabulary has 511 tokens but the embedding has 512 rows");

  /* a norm of the wrong shape */
  {
    const gchar *skip[] = { "output_norm.weight", NULL };
    const guint64 ne[1] = { 32 };
    g_autoptr (GBytes) b = g_bytes_new_static (gg->w.out_norm->data, 32 * 4);

    w = copy_gguf (g, NULL, skip);
    fail_unless (llm_gguf_writer_add_tensor (w, "output_norm.weight",
            LLM_DTYPE_F32, 1, ne, b, NULL));
    p7 = finish (w, "norm.gguf");
    expect_load_error (p7, LLM_ERROR_MISMATCH,
        "tensor 'output_norm.weight' has shape [32], expected [64]");
  }

  /* an F16 norm loads, converted to an F32 tensor the model owns */
  {
    const gchar *skip[] = { "output_norm.weight", NULL };
    const guint64 ne[1] = { 64 };
    guint16 h[64];
    const float *f = (const float *) gg->w.out_norm->data;
    g_autoptr (GBytes) b = NULL;
    g_autoptr (LlmModelFile) mf = NULL;

    for (guint i = 0; i < 64; i++)
      h[i] = llm_f32_to_f16 (f[i]);
    b = g_bytes_new (h, sizeof h);
    w = copy_gguf (g, NULL, skip);
    fail_unless (llm_gguf_writer_add_tensor (w, "output_norm.weight",
            LLM_DTYPE_F16, 1, ne, b, NULL));
    p8 = finish (w, "f16norm.gguf");
    mf = load_ok (p8);
    check_norm (mf->w.out_norm);
    fail_unless_equals_int (mf->owned->len, 1);
    for (guint i = 0; i < 64; i++)
      fail_unless_equals_float (((const float *) mf->w.out_norm->data)[i],
          llm_f16_to_f32 (h[i]));
  }

  /* not a GGUF file at all */
  {
    g_autofree gchar *cfg = llm_test_model_file ("stories260K",
        "config.json");
    expect_load_error (cfg, LLM_ERROR_FORMAT, "not a GGUF file");
  }
}

GST_END_TEST;

GST_START_TEST (test_write_errors)
{
  g_autoptr (LlmModelFile) hf = load_stories ();
  g_autoptr (GError) error = NULL;
  g_autofree gchar *bad = g_build_filename (tmpdir, "no", "x.gguf", NULL);
  g_autofree gchar *ok = g_build_filename (tmpdir, "x.gguf", NULL);

  fail_if (llm_model_file_write_gguf (hf, ok, LLM_DTYPE_Q4_K, NULL, NULL,
          &error));
  fail_unless (g_error_matches (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED));
  fail_unless (strstr (error->message, "Q4_K") != NULL);
  g_clear_error (&error);
  fail_if (llm_model_file_write_gguf (hf, bad, LLM_DTYPE_F16, NULL, NULL,
          &error));
  fail_unless (g_error_matches (error, LLM_ERROR, LLM_ERROR_IO));
  fail_unless (strstr (error->message, bad) != NULL);
}

GST_END_TEST;

static Suite *
model_file_suite (void)
{
  Suite *s = suite_create ("model-file");
  TCase *tc = tcase_create ("general");

  tcase_add_checked_fixture (tc, setup_tmpdir, teardown_tmpdir);
  tcase_set_timeout (tc, 120);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_load_hf);
  tcase_add_test (tc, test_convert_f32);
  tcase_add_test (tc, test_convert_types);
  tcase_add_test (tc, test_hf_errors);
  tcase_add_test (tc, test_gguf_errors);
  tcase_add_test (tc, test_write_errors);
  return s;
}

GST_CHECK_MAIN (model_file);
