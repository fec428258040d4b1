/* safetensors: stories260K's model.safetensors checked against the original
 * llama2.c checkpoint, and broken headers that must fail clearly.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <gst/check/gstcheck.h>
#include <string.h>

#include "llm-safetensors.h"
#include "llm-error.h"
#include "test-common.h"

/* stories260K: dim 64, ffn 172, 5 layers, 8 heads, 4 kv heads, head 8. */
#define DIM 64
#define FFN 172
#define LAYERS 5
#define VOCAB 512
#define HEAD 8
#define KV_DIM 32

/* The llama2.c checkpoint: a 28-byte header, then float arrays in this
 * order, each holding all layers. */
typedef enum
{
  L2C_EMBD, L2C_RMS_ATT, L2C_WQ, L2C_WK, L2C_WV, L2C_WO, L2C_RMS_FFN,
  L2C_W1, L2C_W2, L2C_W3, L2C_RMS_FINAL, L2C_N
} L2cPart;

static const gsize l2c_per_layer[L2C_N] = {
  VOCAB * DIM, DIM, DIM * DIM, DIM * KV_DIM, DIM * KV_DIM, DIM * DIM, DIM,
  DIM * FFN, FFN * DIM, DIM * FFN, DIM
};

/* First float of @part for @layer. */
static const float *
l2c_part (const guint8 * bin, L2cPart part, guint layer)
{
  gsize off = 0;

  for (guint p = 0; p < part; p++)
    off += l2c_per_layer[p] * (p == L2C_EMBD || p == L2C_RMS_FINAL ? 1 :
        LAYERS);
  return (const float *) (bin + 28) + off + layer * l2c_per_layer[part];
}

static void
check_rows (const LlmTensor * t, const float *want, guint rows, guint cols,
    gboolean permuted)
{
  const float *got = (const float *) t->data;

  for (guint r = 0; r < rows; r++) {
    /* HF rotate-half rows: within a head, row t*hd/2 + j = llama2.c's
     * interleaved row 2j + t */
    guint src = r;
    if (permuted) {
      guint h = r / HEAD, i = r % HEAD;
      guint tt = i / (HEAD / 2), j = i % (HEAD / 2);
      src = h * HEAD + 2 * j + tt;
    }
    fail_unless (memcmp (got + (gsize) r * cols, want + (gsize) src * cols,
            cols * sizeof (float)) == 0, "%s row %u", t->name, r);
  }
}

static void
check_tensor (const LlmSafetensors * st, const gchar * name, guint64 ne0,
    guint64 ne1, const float *want, gboolean permuted)
{
  const LlmTensor *t = llm_safetensors_find (st, name);

  fail_unless (t != NULL, "%s missing", name);
  fail_unless_equals_int (t->dtype, LLM_DTYPE_F32);
  fail_unless_equals_int (t->n_dims, ne1 ? 2 : 1);
  fail_unless_equals_uint64 (t->ne[0], ne0);
  fail_unless_equals_uint64 (t->ne[1], ne1 ? ne1 : 1);
  fail_unless_equals_uint64 (t->nbytes, ne0 * MAX (ne1, 1) * 4);
  fail_unless_equals_uint64 (GPOINTER_TO_SIZE (t->data) % 4, 0);
  check_rows (t, want, MAX (ne1, 1), ne0, permuted);
}

GST_START_TEST (test_stories260k)
{
  g_autofree gchar *path = llm_test_model_file ("stories260K",
      "model.safetensors");
  g_autofree gchar *bin_path = llm_test_model_file ("stories260K",
      "llama2c/stories260K.bin");
  g_autoptr (GError) error = NULL;
  g_autoptr (LlmSafetensors) st = llm_safetensors_open (path, &error);
  g_autoptr (GMappedFile) bin = g_mapped_file_new (bin_path, FALSE, &error);
  const guint8 *b;

  g_assert_no_error (error);
  fail_unless (st != NULL && bin != NULL);
  b = (const guint8 *) g_mapped_file_get_contents (bin);
  fail_unless_equals_uint64 (g_mapped_file_get_length (bin), 1056540);
  fail_unless_equals_int (llm_safetensors_n_tensors (st), 47);
  for (guint i = 0; i < 47; i++)
    fail_unless (llm_safetensors_find (st, llm_safetensors_tensor (st,
                i)->name) == llm_safetensors_tensor (st, i));
  fail_unless (llm_safetensors_find (st, "lm_head.weight") == NULL);

  check_tensor (st, "model.embed_tokens.weight", DIM, VOCAB,
      l2c_part (b, L2C_EMBD, 0), FALSE);
  check_tensor (st, "model.norm.weight", DIM, 0,
      l2c_part (b, L2C_RMS_FINAL, 0), FALSE);
  for (guint l = 0; l < LAYERS; l++) {
    struct
    {
      const gchar *suffix;
      guint64 ne0, ne1;
      L2cPart part;
      gboolean permuted;
    } parts[] = {
      {"input_layernorm.weight", DIM, 0, L2C_RMS_ATT, FALSE},
      {"self_attn.q_proj.weight", DIM, DIM, L2C_WQ, TRUE},
      {"self_attn.k_proj.weight", DIM, KV_DIM, L2C_WK, TRUE},
      {"self_attn.v_proj.weight", DIM, KV_DIM, L2C_WV, FALSE},
      {"self_attn.o_proj.weight", DIM, DIM, L2C_WO, FALSE},
      {"post_attention_layernorm.weight", DIM, 0, L2C_RMS_FFN, FALSE},
      {"mlp.gate_proj.weight", DIM, FFN, L2C_W1, FALSE},
      {"mlp.down_proj.weight", FFN, DIM, L2C_W2, FALSE},
      {"mlp.up_proj.weight", DIM, FFN, L2C_W3, FALSE},
    };

    for (guint p = 0; p < G_N_ELEMENTS (parts); p++) {
      g_autofree gchar *name = g_strdup_printf ("model.layers.%u.%s", l,
          parts[p].suffix);
      check_tensor (st, name, parts[p].ne0, parts[p].ne1,
          l2c_part (b, parts[p].part, l), parts[p].permuted);
    }
  }
}

GST_END_TEST;

/* --- files built in memory ---------------------------------------------- */

/* 8-byte length, @json, then @data_len bytes of data (value i & 0xff). */
static GBytes *
make_file (const gchar * json, gsize data_len)
{
  gsize jlen = strlen (json);
  guint64 le = GUINT64_TO_LE (jlen);
  guint8 *p = g_malloc (8 + jlen + data_len);

  memcpy (p, &le, 8);
  memcpy (p + 8, json, jlen);
  for (gsize i = 0; i < data_len; i++)
    p[8 + jlen + i] = i & 0xff;
  return g_bytes_new_take (p, 8 + jlen + data_len);
}

static void
expect_error (GBytes * bytes, gint code, const gchar * phrase)
{
  g_autoptr (GError) error = NULL;
  LlmSafetensors *st = llm_safetensors_open_bytes (bytes, "bad.safetensors",
      &error);

  fail_unless (st == NULL, "parsed, but expected: %s", phrase);
  fail_unless (error != NULL && error->domain == LLM_ERROR);
  fail_unless (error->code == code, "code %d, expected %d: %s", error->code,
      code, error->message);
  fail_unless (strstr (error->message, phrase) != NULL, "'%s' not in: %s",
      phrase, error->message);
  fail_unless (strstr (error->message, "bad.safetensors") != NULL);
  g_bytes_unref (bytes);
}

static void
expect_json_error (const gchar * json, gsize data_len, gint code,
    const gchar * phrase)
{
  expect_error (make_file (json, data_len), code, phrase);
}

GST_START_TEST (test_small_valid)
{
  /* header length 199: the data area is not 8-byte aligned, so the
   * reader works on an aligned copy; __metadata__ is skipped */
  const gchar *json = "{\"__metadata__\":{\"format\":\"pt\"},"
      "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[8,12]},"
      "\"a\":{\"dtype\":\"F16\",\"shape\":[2,1,2],\"data_offsets\":[0,8]}, "
      "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[12,16]}}";
  g_autoptr (GBytes) bytes = make_file (json, 16);
  g_autoptr (GError) error = NULL;
  g_autoptr (LlmSafetensors) st = NULL;
  const LlmTensor *a, *b, *s;

  st = llm_safetensors_open_bytes (bytes, "ok.safetensors", &error);
  g_assert_no_error (error);
  fail_unless_equals_int (llm_safetensors_n_tensors (st), 3);
  /* file order */
  fail_unless_equals_string (llm_safetensors_tensor (st, 0)->name, "b");
  fail_unless_equals_string (llm_safetensors_tensor (st, 1)->name, "a");
  a = llm_safetensors_find (st, "a");
  b = llm_safetensors_find (st, "b");
  s = llm_safetensors_find (st, "s");
  fail_unless_equals_int (a->dtype, LLM_DTYPE_F16);
  fail_unless_equals_int (a->n_dims, 3);
  /* reversed: [2, 1, 2] -> ne {2, 1, 2} */
  fail_unless_equals_uint64 (a->ne[0], 2);
  fail_unless_equals_uint64 (a->ne[1], 1);
  fail_unless_equals_uint64 (a->ne[2], 2);
  fail_unless_equals_uint64 (a->ne[3], 1);
  fail_unless_equals_int (b->dtype, LLM_DTYPE_BF16);
  fail_unless_equals_int (s->n_dims, 1);
  fail_unless_equals_uint64 (s->ne[0], 1);
  fail_unless_equals_uint64 (GPOINTER_TO_SIZE (a->data) % 4, 0);
  fail_unless_equals_int (a->data[0], 0);
  fail_unless_equals_int (b->data[0], 8);
  fail_unless_equals_int (s->data[3], 15);
  fail_unless (llm_safetensors_find (st, "__metadata__") == NULL);
}

GST_END_TEST;

GST_START_TEST (test_broken_headers)
{
  const guint8 short_file[5] = { 1, 2, 3, 4, 5 };
  guint8 huge[16] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{',
    '}'
  };
  guint8 over[16] = { 200, 0, 0, 0, 0, 0, 0, 0, '{', '}' };

  expect_error (g_bytes_new (short_file, 5), LLM_ERROR_FORMAT, "truncated");
  expect_error (g_bytes_new (huge, 16), LLM_ERROR_FORMAT,
      "header length 18446744073709551615 does not fit");
  expect_error (g_bytes_new (over, 16), LLM_ERROR_FORMAT,
      "header length 200 does not fit the file (16 bytes)");

  expect_json_error ("{\"a\": ", 0, LLM_ERROR_FORMAT, "does not parse");
  expect_json_error ("[1, 2]", 0, LLM_ERROR_FORMAT, "not an object");
  expect_json_error ("{\"a\": 3}", 0, LLM_ERROR_FORMAT,
      "header entry 'a' is not an object");
  expect_json_error ("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
      LLM_ERROR_FORMAT, "tensor 'a' has no \"dtype\"");
  expect_json_error ("{\"a\":{\"dtype\":\"I32\",\"shape\":[1],"
      "\"data_offsets\":[0,4]}}", 4, LLM_ERROR_UNSUPPORTED,
      "tensor 'a' has dtype I32");
  expect_json_error ("{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],"
      "\"data_offsets\":[0,4]}}", 4, LLM_ERROR_UNSUPPORTED,
      "tensor 'w' has dtype F8_E4M3");
  expect_json_error ("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4,
      LLM_ERROR_FORMAT, "no \"shape\"");
  expect_json_error ("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],"
      "\"data_offsets\":[0,4]}}", 4, LLM_ERROR_FORMAT, "not a non-negative");
  expect_json_error ("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],"
      "\"data_offsets\":[0,4]}}", 4, LLM_ERROR_FORMAT, "not a non-negative");
  expect_json_error ("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],"
      "\"data_offsets\":[0,4]}}", 4, LLM_ERROR_UNSUPPORTED, "5 dimensions");
  expect_json_error ("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],"
      "\"data_offsets\":[0,0]}}", 4, LLM_ERROR_UNSUPPORTED, "empty dimension");
  expect_json_error ("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
      "\"data_offsets\":[0]}}", 4, LLM_ERROR_FORMAT, "data_offsets");
  expect_json_error ("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
      "\"data_offsets\":[4,0]}}", 4, LLM_ERROR_FORMAT, "outside the data area");
  expect_json_error ("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
      "\"data_offsets\":[0,8]}}", 4, LLM_ERROR_FORMAT,
      "data_offsets [0, 8] lie outside the data area (4 bytes)");
  expect_json_error ("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
      "\"data_offsets\":[0,4]}}", 4, LLM_ERROR_FORMAT,
      "span 4 bytes but its shape and dtype F32 need 2 elements");
  /* 2^62 x 2^62 elements: the product overflows */
  expect_json_error ("{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,"
      "4611686018427387904],\"data_offsets\":[0,4]}}", 4, LLM_ERROR_FORMAT,
      "shape overflows");
  /* 2^62 elements x 4 bytes overflows too */
  expect_json_error ("{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904"
      "],\"data_offsets\":[0,4]}}", 4, LLM_ERROR_FORMAT, "span 4 bytes");
  expect_json_error ("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
      "\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],"
      "\"data_offsets\":[4,12]}}", 12, LLM_ERROR_FORMAT, "overlap");
  {
    /* a NUL byte inside the JSON text */
    const gchar json[] = "{\"a\":1}\0  ";
    guint64 le = GUINT64_TO_LE (sizeof json - 1);
    guint8 *p = g_malloc (8 + sizeof json - 1);
    memcpy (p, &le, 8);
    memcpy (p + 8, json, sizeof json - 1);
    expect_error (g_bytes_new_take (p, 8 + sizeof json - 1),
        LLM_ERROR_FORMAT, "NUL");
  }
}

GST_END_TEST;

GST_START_TEST (test_open_missing)
{
  g_autoptr (GError) error = NULL;

  fail_unless (llm_safetensors_open ("/nonexistent/x.safetensors", &error)
      == NULL);
  fail_unless (g_error_matches (error, LLM_ERROR, LLM_ERROR_IO));
  fail_unless (strstr (error->message, "/nonexistent/x.safetensors"));
}

GST_END_TEST;

static Suite *
safetensors_suite (void)
{
  Suite *s = suite_create ("safetensors");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_stories260k);
  tcase_add_test (tc, test_small_valid);
  tcase_add_test (tc, test_broken_headers);
  tcase_add_test (tc, test_open_missing);
  return s;
}

GST_CHECK_MAIN (safetensors);
