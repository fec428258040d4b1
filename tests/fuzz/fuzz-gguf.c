/* LLMasOS - fuzz target: the GGUF reader.
 *
 * Opens the input with llm_gguf_open_bytes and walks everything a loader
 * may touch: every key and value (printed, and through the typed getters),
 * every tensor (its bytes must lie inside the input; the first row is
 * dequantized), the vocabulary the tokenizer.ggml.* keys describe (then a
 * short text through it), and a write-back: what the reader accepts, the
 * writer writes again and the reader reads back the same.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fuzz-common.h"

#include "llm-gguf.h"
#include "llm-vocab.h"
#include "llm-detok.h"

/* Elements of a tensor's first row dequantized (bounded: a row may be
 * long). */
#define ROW_ELEMS 256
/* The write-back pads tensors to the alignment; a file may ask for 2 GiB. */
#define MAX_REWRITE_ALIGNMENT 4096

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  llm_fuzz_quiet_logs ();
  return 0;
}

static void
walk_kv (const LlmGguf * g, guint i)
{
  const gchar *key = llm_gguf_kv_key (g, i);
  GVariant *v = llm_gguf_kv_value (g, i);
  g_autofree gchar *text = NULL;
  guint64 u;
  gdouble f;
  gboolean b;

  LLM_FUZZ_CHECK (key != NULL && v != NULL, "kv %u", i);
  LLM_FUZZ_CHECK (llm_gguf_find_kv (g, key) == (gint) i,
      "key '%s' found at %d, not %u", key, llm_gguf_find_kv (g, key), i);
  (void) llm_gguf_kv_type (g, i);
  (void) llm_gguf_kv_array_type (g, i);
  text = g_variant_print (v, TRUE);
  (void) llm_gguf_get_uint (g, key, &u);
  (void) llm_gguf_get_float (g, key, &f);
  (void) llm_gguf_get_bool (g, key, &b);
  (void) llm_gguf_get_string (g, key);
}

static void
walk_tensor (const LlmGguf * g, const guint8 * base, gsize size, guint i)
{
  const LlmTensor *t = llm_gguf_tensor (g, i);
  guint64 n = 1, row;
  float out[ROW_ELEMS];

  LLM_FUZZ_CHECK (t != NULL && t->name != NULL, "tensor %u", i);
  LLM_FUZZ_CHECK (llm_gguf_find_tensor (g, t->name) == t, "tensor '%s'",
      t->name);
  LLM_FUZZ_CHECK (t->n_dims >= 1 && t->n_dims <= LLM_MAX_DIMS,
      "tensor '%s' has %u dims", t->name, t->n_dims);
  LLM_FUZZ_CHECK (t->data >= base && t->nbytes <= size &&
      (gsize) (t->data - base) <= size - t->nbytes,
      "tensor '%s' data outside the file", t->name);
  for (guint d = 0; d < t->n_dims; d++)
    n *= t->ne[d];
  if (t->nbytes > 0) {
    volatile guint8 sink = t->data[0] ^ t->data[t->nbytes - 1];
    (void) sink;
  }
  /* The first row, as the CPU backend would read it. */
  row = MIN (t->ne[0], (guint64) ROW_ELEMS);
  row -= row % llm_dtype_block_elems (t->dtype);
  if (n > 0 && row > 0 && llm_dtype_can_compute (t->dtype)) {
    guint64 need;

    LLM_FUZZ_CHECK (llm_dtype_bytes_for (t->dtype, row, &need) &&
        need <= t->nbytes, "tensor '%s': its first row is not in its bytes",
        t->name);
    llm_dequantize_row (t->dtype, t->data, out, row);
  }
}

static void
walk_vocab (const LlmGguf * g)
{
  static const gchar text[] = "Once upon a time, <s> a caf\xc3\xa9 \xe6\x97"
      "\xa5 \xf0\x9f\x98\x80 \t\n  end</s>";
  g_autoptr (LlmVocab) vocab = llm_vocab_new_from_gguf (g, NULL);
  g_autoptr (GArray) ids = NULL;
  g_autoptr (LlmDetok) detok = NULL;
  g_autoptr (GString) out = g_string_new (NULL);
  g_autofree gchar *dec = NULL;

  if (vocab == NULL)
    return;
  ids = llm_vocab_encode_full (vocab, text, -1, LLM_ENCODE_ADD_SPECIAL |
      LLM_ENCODE_PARSE_SPECIAL, NULL);
  if (ids == NULL)
    return;
  dec = llm_vocab_decode (vocab, (const gint32 *) ids->data, ids->len);
  LLM_FUZZ_CHECK (dec && g_utf8_validate (dec, -1, NULL), "decode");
  detok = llm_detok_new (vocab, NULL);
  llm_detok_reset (detok, TRUE);
  for (guint i = 0; i < ids->len; i++)
    llm_detok_push (detok, g_array_index (ids, gint32, i), out);
  llm_detok_finish (detok, out);
  LLM_FUZZ_CHECK (llm_fuzz_utf8_valid (out->str, out->len),
      "detokenized text is not UTF-8");
}

/* Writes back what was read; it must read the same. */
static void
rewrite (const LlmGguf * g)
{
  g_autoptr (LlmGgufWriter) w = llm_gguf_writer_new ();
  g_autoptr (GBytes) bytes = NULL;
  g_autoptr (LlmGguf) g2 = NULL;
  g_autoptr (GError) error = NULL;

  if (llm_gguf_alignment (g) > MAX_REWRITE_ALIGNMENT)
    return;
  for (guint i = 0; i < llm_gguf_n_kv (g); i++)
    llm_gguf_writer_add_kv (w, llm_gguf_kv_key (g, i), llm_gguf_kv_type (g,
            i), llm_gguf_kv_array_type (g, i), llm_gguf_kv_value (g, i));
  for (guint i = 0; i < llm_gguf_n_tensors (g); i++) {
    const LlmTensor *t = llm_gguf_tensor (g, i);
    g_autoptr (GBytes) data = g_bytes_new_static (t->data, t->nbytes);

    if (!llm_gguf_writer_add_tensor (w, t->name, t->dtype, t->n_dims, t->ne,
            data, &error))
      return;
  }
  bytes = llm_gguf_writer_to_bytes (w, &error);
  LLM_FUZZ_CHECK (bytes != NULL, "the writer failed: %s", error->message);
  g2 = llm_gguf_open_bytes (bytes, "rewritten", &error);
  LLM_FUZZ_CHECK (g2 != NULL, "the rewritten file does not read: %s",
      error->message);
  LLM_FUZZ_CHECK (llm_gguf_n_kv (g2) == llm_gguf_n_kv (g) &&
      llm_gguf_n_tensors (g2) == llm_gguf_n_tensors (g), "counts differ");
  for (guint i = 0; i < llm_gguf_n_kv (g); i++) {
    gint j = llm_gguf_find_kv (g2, llm_gguf_kv_key (g, i));

    LLM_FUZZ_CHECK (j >= 0 && g_variant_equal (llm_gguf_kv_value (g, i),
            llm_gguf_kv_value (g2, j)), "key '%s' differs",
        llm_gguf_kv_key (g, i));
  }
  for (guint i = 0; i < llm_gguf_n_tensors (g); i++) {
    const LlmTensor *a = llm_gguf_tensor (g, i);
    const LlmTensor *b = llm_gguf_find_tensor (g2, a->name);

    LLM_FUZZ_CHECK (b != NULL && b->dtype == a->dtype &&
        b->n_dims == a->n_dims && b->nbytes == a->nbytes &&
        memcmp (b->ne, a->ne, sizeof (a->ne)) == 0 &&
        (a->nbytes == 0 || memcmp (b->data, a->data, a->nbytes) == 0),
        "tensor '%s' differs", a->name);
  }
}

int
LLVMFuzzerTestOneInput (const uint8_t * data, size_t size)
{
  /* A copy, so that the sanitizer sees the exact end of the file. */
  g_autoptr (GBytes) bytes = g_bytes_new (data, size);
  g_autoptr (LlmGguf) g = NULL;
  g_autoptr (GError) error = NULL;
  const guint8 *base;
  gsize len;

  g = llm_gguf_open_bytes (bytes, "fuzz.gguf", &error);
  if (g == NULL) {
    LLM_FUZZ_CHECK (error != NULL && error->message != NULL,
        "failed without an error");
    return 0;
  }
  base = g_bytes_get_data (bytes, &len);
  (void) llm_gguf_version (g);
  (void) llm_gguf_name (g);
  LLM_FUZZ_CHECK (llm_gguf_data_offset (g) <= len || llm_gguf_n_tensors (g)
      == 0, "data offset past the end");
  for (guint i = 0; i < llm_gguf_n_kv (g); i++)
    walk_kv (g, i);
  for (guint i = 0; i < llm_gguf_n_tensors (g); i++)
    walk_tensor (g, base, len, i);
  walk_vocab (g);
  rewrite (g);
  return 0;
}
