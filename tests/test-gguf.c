/* GGUF: writer -> reader round trips of every metadata type and tensor type,
 * and malformed files that must fail with a clear message.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <gst/check/gstcheck.h>
#include <string.h>
#include <glib/gstdio.h>

#include "llm-gguf.h"
#include "llm-error.h"
#include "test-common.h"

/* --- building files by hand ------------------------------------------- */

static void
b_u32 (GByteArray * b, guint32 v)
{
  v = GUINT32_TO_LE (v);
  g_byte_array_append (b, (const guint8 *) &v, 4);
}

static void
b_u64 (GByteArray * b, guint64 v)
{
  v = GUINT64_TO_LE (v);
  g_byte_array_append (b, (const guint8 *) &v, 8);
}

static void
b_str (GByteArray * b, const gchar * s)
{
  b_u64 (b, strlen (s));
  g_byte_array_append (b, (const guint8 *) s, strlen (s));
}

static GByteArray *
b_header (guint32 version, guint64 n_tensors, guint64 n_kv)
{
  GByteArray *b = g_byte_array_new ();

  g_byte_array_append (b, (const guint8 *) "GGUF", 4);
  b_u32 (b, version);
  b_u64 (b, n_tensors);
  b_u64 (b, n_kv);
  return b;
}

static void
b_kv_u32 (GByteArray * b, const gchar * key, guint32 v)
{
  b_str (b, key);
  b_u32 (b, LLM_GGUF_TYPE_UINT32);
  b_u32 (b, v);
}

static void
b_tensor_info (GByteArray * b, const gchar * name, guint32 n_dims,
    const guint64 * ne, guint32 type, guint64 offset)
{
  b_str (b, name);
  b_u32 (b, n_dims);
  for (guint d = 0; d < n_dims; d++)
    b_u64 (b, ne[d]);
  b_u32 (b, type);
  b_u64 (b, offset);
}

static void
b_pad (GByteArray * b, guint align)
{
  while (b->len % align)
    g_byte_array_append (b, (const guint8 *) "", 1);
}

static void
b_zeros (GByteArray * b, guint n)
{
  for (guint i = 0; i < n; i++)
    g_byte_array_append (b, (const guint8 *) "", 1);
}

/* Parses @b (consumed) and returns the error, which must be set. */
static GError *
open_expect_error (GByteArray * b)
{
  g_autoptr (GBytes) bytes = g_byte_array_free_to_bytes (b);
  GError *error = NULL;
  LlmGguf *g = llm_gguf_open_bytes (bytes, "bad.gguf", &error);

  fail_unless (g == NULL, "a malformed file parsed");
  fail_unless (error != NULL);
  fail_unless (error->domain == LLM_ERROR);
  fail_unless (strstr (error->message, "bad.gguf") != NULL,
      "message does not name the file: %s", error->message);
  return error;
}

#define assert_error_contains(err, code_, phrase) G_STMT_START {        \
  fail_unless ((err)->code == (code_), "code %d, expected %d: %s",      \
      (err)->code, (code_), (err)->message);                            \
  fail_unless (strstr ((err)->message, (phrase)) != NULL,               \
      "'%s' not in: %s", (phrase), (err)->message);                     \
} G_STMT_END

/* --- a file with every kind of value ------------------------------------ */

static const guint8 latin1[] = { 'c', 'a', 'f', 0xe9 }; /* not UTF-8 */

static GVariant *
nested_value (void)
{
  GVariantBuilder b, inner;
  const guint32 u[] = { 1, 2, 3 };
  const gchar *strs[] = { "x", "yz" };

  g_variant_builder_init (&b, G_VARIANT_TYPE ("av"));
  g_variant_builder_add (&b, "v", g_variant_new_fixed_array
      (G_VARIANT_TYPE_UINT32, u, 3, 4));
  g_variant_builder_add (&b, "v", g_variant_new_strv (strs, 2));
  /* an array of arrays inside: [[true], []] */
  g_variant_builder_init (&inner, G_VARIANT_TYPE ("av"));
  g_variant_builder_add (&inner, "v", g_variant_new_parsed ("[true]"));
  g_variant_builder_add (&inner, "v", g_variant_new_parsed ("@ax []"));
  g_variant_builder_add (&b, "v", g_variant_builder_end (&inner));
  return g_variant_builder_end (&b);
}

typedef struct
{
  const gchar *key;
  LlmGgufType type;
  LlmGgufType elem_type;
  const gchar *value;           /* GVariant text */
} KvCase;

/* Every scalar type, at its limits, and arrays of every type. */
static const KvCase kv_cases[] = {
  {"t.u8", LLM_GGUF_TYPE_UINT8, 0, "byte 0xff"},
  {"t.i8", LLM_GGUF_TYPE_INT8, 0, "int16 -128"},
  {"t.u16", LLM_GGUF_TYPE_UINT16, 0, "uint16 65535"},
  {"t.i16", LLM_GGUF_TYPE_INT16, 0, "int16 -32768"},
  {"t.u32", LLM_GGUF_TYPE_UINT32, 0, "uint32 4294967295"},
  {"t.i32", LLM_GGUF_TYPE_INT32, 0, "int32 -2147483648"},
  {"t.f32", LLM_GGUF_TYPE_FLOAT32, 0, "1.5"},
  {"t.bool", LLM_GGUF_TYPE_BOOL, 0, "true"},
  {"t.str", LLM_GGUF_TYPE_STRING, 0, "'h\u00e9llo \u2581world'"},
  {"t.empty", LLM_GGUF_TYPE_STRING, 0, "''"},
  {"t.u64", LLM_GGUF_TYPE_UINT64, 0, "uint64 18446744073709551615"},
  {"t.i64", LLM_GGUF_TYPE_INT64, 0, "int64 -9223372036854775808"},
  {"t.f64", LLM_GGUF_TYPE_FLOAT64, 0, "3.141592653589793"},
  {"a.u8", LLM_GGUF_TYPE_ARRAY, LLM_GGUF_TYPE_UINT8, "[byte 0, 7, 255]"},
  {"a.i8", LLM_GGUF_TYPE_ARRAY, LLM_GGUF_TYPE_INT8, "[int16 -128, 0, 127]"},
  {"a.u16", LLM_GGUF_TYPE_ARRAY, LLM_GGUF_TYPE_UINT16, "[uint16 1, 65535]"},
  {"a.i16", LLM_GGUF_TYPE_ARRAY, LLM_GGUF_TYPE_INT16, "[int16 -2, 3]"},
  {"a.u32", LLM_GGUF_TYPE_ARRAY, LLM_GGUF_TYPE_UINT32, "[uint32 5]"},
  {"a.i32", LLM_GGUF_TYPE_ARRAY, LLM_GGUF_TYPE_INT32, "[-1, 2, -3]"},
  {"a.f32", LLM_GGUF_TYPE_ARRAY, LLM_GGUF_TYPE_FLOAT32, "[0.25, -8.0]"},
  {"a.bool", LLM_GGUF_TYPE_ARRAY, LLM_GGUF_TYPE_BOOL, "[true, false]"},
  {"a.str", LLM_GGUF_TYPE_ARRAY, LLM_GGUF_TYPE_STRING, "['a', '', '\u00fc']"},
  {"a.u64", LLM_GGUF_TYPE_ARRAY, LLM_GGUF_TYPE_UINT64, "[uint64 1, 2]"},
  {"a.i64", LLM_GGUF_TYPE_ARRAY, LLM_GGUF_TYPE_INT64, "[int64 -5]"},
  {"a.f64", LLM_GGUF_TYPE_ARRAY, LLM_GGUF_TYPE_FLOAT64, "[1e300, -0.5]"},
  {"a.empty", LLM_GGUF_TYPE_ARRAY, LLM_GGUF_TYPE_INT32, "@ai []"},
};

static const LlmDType tensor_types[] = {
  LLM_DTYPE_F32, LLM_DTYPE_F16, LLM_DTYPE_BF16, LLM_DTYPE_Q8_0,
  LLM_DTYPE_Q4_0
};

static GBytes *
random_bytes (GRand * rand, gsize n)
{
  guint8 *p = g_malloc (n);

  for (gsize i = 0; i < n; i++)
    p[i] = g_rand_int (rand);
  return g_bytes_new_take (p, n);
}

static LlmGgufWriter *
full_writer (GPtrArray * datas)
{
  LlmGgufWriter *w = llm_gguf_writer_new ();
  g_autoptr (GRand) rand = g_rand_new_with_seed (11);
  GError *error = NULL;

  for (guint i = 0; i < G_N_ELEMENTS (kv_cases); i++)
    llm_gguf_writer_add_kv (w, kv_cases[i].key, kv_cases[i].type,
        kv_cases[i].elem_type, g_variant_new_parsed (kv_cases[i].value));
  llm_gguf_writer_add_kv (w, "t.latin1", LLM_GGUF_TYPE_STRING, 0,
      g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, latin1, 4, 1));
  llm_gguf_writer_add_kv (w, "a.nested", LLM_GGUF_TYPE_ARRAY,
      LLM_GGUF_TYPE_ARRAY, nested_value ());

  /* one 2-D tensor of each computable type, then 1-, 3- and 4-D ones */
  for (guint i = 0; i < G_N_ELEMENTS (tensor_types); i++) {
    const guint64 ne[2] = { 64, 3 + i };
    guint64 nbytes;
    g_autofree gchar *name = g_strdup_printf ("tensor.%s",
        llm_dtype_name (tensor_types[i]));
    GBytes *data;

    fail_unless (llm_dtype_bytes_for (tensor_types[i], ne[0] * ne[1], &nbytes));
    data = random_bytes (rand, nbytes);
    fail_unless (llm_gguf_writer_add_tensor (w, name, tensor_types[i], 2, ne,
            data, &error));
    g_assert_no_error (error);
    g_ptr_array_add (datas, data);
  }
  {
    const guint64 ne1[1] = { 5 }, ne3[3] = { 2, 3, 4 }, ne4[4] = { 1, 2, 1, 3 };
    GBytes *d1 = random_bytes (rand, 5 * 4), *d3 = random_bytes (rand, 48),
        *d4 = random_bytes (rand, 6 * 2);

    fail_unless (llm_gguf_writer_add_tensor (w, "v1", LLM_DTYPE_F32, 1, ne1,
            d1, NULL));
    fail_unless (llm_gguf_writer_add_tensor (w, "v3", LLM_DTYPE_F16, 3, ne3,
            d3, NULL));
    fail_unless (llm_gguf_writer_add_tensor (w, "v4", LLM_DTYPE_BF16, 4, ne4,
            d4, NULL));
    g_ptr_array_add (datas, d1);
    g_ptr_array_add (datas, d3);
    g_ptr_array_add (datas, d4);
  }
  return w;
}

static void
check_full (LlmGguf * g, GPtrArray * datas)
{
  const gchar *names[] = { "tensor.F32", "tensor.F16", "tensor.BF16",
    "tensor.Q8_0", "tensor.Q4_0", "v1", "v3", "v4"
  };
  gint i;
  GVariant *v;
  guint64 u;
  gdouble d;
  gboolean bv;

  fail_unless_equals_int (llm_gguf_version (g), 3);
  fail_unless_equals_uint64 (llm_gguf_alignment (g), 32);
  fail_unless_equals_int (llm_gguf_n_kv (g), G_N_ELEMENTS (kv_cases) + 2);

  for (guint k = 0; k < G_N_ELEMENTS (kv_cases); k++) {
    g_autoptr (GVariant) want = g_variant_new_parsed (kv_cases[k].value);

    i = llm_gguf_find_kv (g, kv_cases[k].key);
    fail_unless_equals_int (i, k);      /* order kept */
    fail_unless_equals_string (llm_gguf_kv_key (g, i), kv_cases[k].key);
    fail_unless_equals_int (llm_gguf_kv_type (g, i), kv_cases[k].type);
    if (kv_cases[k].type == LLM_GGUF_TYPE_ARRAY)
      fail_unless_equals_int (llm_gguf_kv_array_type (g, i),
          kv_cases[k].elem_type);
    v = llm_gguf_kv_value (g, i);
    fail_unless (g_variant_equal (v, want), "%s: got %s", kv_cases[k].key,
        g_variant_print (v, TRUE));
  }

  /* a string that is not UTF-8 comes back as its bytes */
  i = llm_gguf_find_kv (g, "t.latin1");
  fail_unless_equals_int (llm_gguf_kv_type (g, i), LLM_GGUF_TYPE_STRING);
  v = llm_gguf_kv_value (g, i);
  fail_unless (g_variant_is_of_type (v, G_VARIANT_TYPE_BYTESTRING));
  fail_unless_equals_int (g_variant_get_size (v), 4);
  fail_unless (memcmp (g_variant_get_data (v), latin1, 4) == 0);
  fail_unless (llm_gguf_get_string (g, "t.latin1") == NULL);

  /* nested arrays, three levels */
  i = llm_gguf_find_kv (g, "a.nested");
  fail_unless_equals_int (llm_gguf_kv_array_type (g, i), LLM_GGUF_TYPE_ARRAY);
  {
    g_autoptr (GVariant) want = nested_value ();
    g_variant_ref_sink (want);
    fail_unless (g_variant_equal (llm_gguf_kv_value (g, i), want),
        "nested: %s", g_variant_print (llm_gguf_kv_value (g, i), TRUE));
  }

  /* typed getters */
  fail_unless (llm_gguf_get_uint (g, "t.u64", &u));
  fail_unless_equals_uint64 (u, G_MAXUINT64);
  fail_unless (llm_gguf_get_uint (g, "t.u8", &u));
  fail_unless_equals_uint64 (u, 255);
  fail_if (llm_gguf_get_uint (g, "t.i64", &u)); /* negative */
  fail_if (llm_gguf_get_uint (g, "t.str", &u));
  fail_if (llm_gguf_get_uint (g, "no.such.key", &u));
  fail_unless (llm_gguf_get_float (g, "t.f32", &d));
  fail_unless_equals_float (d, 1.5);
  fail_unless (llm_gguf_get_float (g, "t.f64", &d));
  fail_unless_equals_float (d, 3.141592653589793);
  fail_if (llm_gguf_get_float (g, "t.u32", &d));
  fail_unless (llm_gguf_get_bool (g, "t.bool", &bv) && bv);
  fail_unless_equals_string (llm_gguf_get_string (g, "t.str"),
      "h\u00e9llo \u2581world");
  fail_unless_equals_string (llm_gguf_get_string (g, "t.empty"), "");

  /* tensors, in the order added, with their bytes */
  fail_unless_equals_int (llm_gguf_n_tensors (g), G_N_ELEMENTS (names));
  for (guint k = 0; k < G_N_ELEMENTS (names); k++) {
    const LlmTensor *t = llm_gguf_tensor (g, k);
    gsize size;
    const guint8 *want = g_bytes_get_data (datas->pdata[k], &size);

    fail_unless_equals_string (t->name, names[k]);
    fail_unless (llm_gguf_find_tensor (g, names[k]) == t);
    fail_unless_equals_uint64 (t->nbytes, size);
    fail_unless (memcmp (t->data, want, size) == 0, "%s data", names[k]);
    if (k < G_N_ELEMENTS (tensor_types)) {
      fail_unless_equals_int (t->dtype, tensor_types[k]);
      fail_unless_equals_int (t->n_dims, 2);
      fail_unless_equals_uint64 (t->ne[0], 64);
      fail_unless_equals_uint64 (t->ne[1], 3 + k);
    }
  }
  fail_unless_equals_int (llm_gguf_tensor (g, 7)->n_dims, 4);
  fail_unless_equals_uint64 (llm_gguf_tensor (g, 7)->ne[3], 3);
  fail_unless_equals_int (llm_gguf_tensor (g, 6)->n_dims, 3);
  fail_unless_equals_uint64 (llm_gguf_tensor (g, 6)->ne[3], 1);
  fail_unless (llm_gguf_find_tensor (g, "nope") == NULL);
  fail_unless_equals_uint64 (llm_gguf_data_offset (g) % 32, 0);
}

GST_START_TEST (test_round_trip_bytes)
{
  g_autoptr (GPtrArray) datas =
      g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr (LlmGgufWriter) w = full_writer (datas);
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) bytes = llm_gguf_writer_to_bytes (w, &error);
  g_autoptr (LlmGguf) g = NULL;
  const guint8 *base;

  g_assert_no_error (error);
  g = llm_gguf_open_bytes (bytes, "mem.gguf", &error);
  g_assert_no_error (error);
  check_full (g, datas);

  /* tensor data sits at aligned file offsets */
  base = g_bytes_get_data (bytes, NULL);
  for (guint i = 0; i < llm_gguf_n_tensors (g); i++)
    fail_unless_equals_uint64 ((llm_gguf_tensor (g, i)->data - base) % 32, 0);
}

GST_END_TEST;

GST_START_TEST (test_round_trip_file)
{
  g_autoptr (GPtrArray) datas =
      g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr (LlmGgufWriter) w = full_writer (datas);
  g_autoptr (GError) error = NULL;
  g_autofree gchar *dir = llm_test_tmpdir ();
  g_autofree gchar *path = g_build_filename (dir, "full.gguf", NULL);
  g_autofree gchar *partial = g_strconcat (path, ".partial", NULL);
  g_autoptr (LlmGguf) g = NULL;
  g_autofree gchar *contents = NULL;
  g_autoptr (GBytes) mem = NULL;
  gsize len;

  fail_unless (llm_gguf_writer_write (w, path, &error));
  g_assert_no_error (error);
  fail_if (g_file_test (partial, G_FILE_TEST_EXISTS));
  g = llm_gguf_open (path, &error);
  g_assert_no_error (error);
  fail_unless (g_file_get_contents (path, &contents, &len, NULL));
  check_full (g, datas);

  /* the file is exactly what to_bytes gives */
  mem = llm_gguf_writer_to_bytes (w, &error);
  fail_unless_equals_uint64 (g_bytes_get_size (mem), len);
  fail_unless (memcmp (g_bytes_get_data (mem, NULL), contents, len) == 0);

  /* a folder that does not exist: an IO error naming the path */
  {
    g_autofree gchar *bad = g_build_filename (dir, "no", "such.gguf", NULL);
    g_autoptr (GError) e2 = NULL;
    fail_if (llm_gguf_writer_write (w, bad, &e2));
    assert_error_contains (e2, LLM_ERROR_IO, bad);
  }

  g_unlink (path);
  g_rmdir (dir);
}

GST_END_TEST;

/* general.alignment moves the data section and the tensor offsets. */
GST_START_TEST (test_custom_alignment)
{
  g_autoptr (LlmGgufWriter) w = llm_gguf_writer_new ();
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) bytes = NULL;
  g_autoptr (LlmGguf) g = NULL;
  const guint64 ne[1] = { 3 };
  g_autoptr (GBytes) d = g_bytes_new ("abcdefghijkl", 12);
  const guint8 *base;

  llm_gguf_writer_add_uint32 (w, "general.alignment", 256);
  fail_unless (llm_gguf_writer_add_tensor (w, "a", LLM_DTYPE_F32, 1, ne, d,
          NULL));
  fail_unless (llm_gguf_writer_add_tensor (w, "b", LLM_DTYPE_F32, 1, ne, d,
          NULL));
  bytes = llm_gguf_writer_to_bytes (w, &error);
  g = llm_gguf_open_bytes (bytes, "aligned.gguf", &error);
  g_assert_no_error (error);
  base = g_bytes_get_data (bytes, NULL);
  fail_unless_equals_uint64 (llm_gguf_alignment (g), 256);
  fail_unless_equals_uint64 (llm_gguf_data_offset (g), 256);
  fail_unless_equals_uint64 (llm_gguf_tensor (g, 0)->data - base, 256);
  fail_unless_equals_uint64 (llm_gguf_tensor (g, 1)->data - base, 512);
  fail_unless (memcmp (llm_gguf_tensor (g, 1)->data, "abcdefghijkl", 12) == 0);
}

GST_END_TEST;

/* Writer-side checks: size, name, shape. Replacing a key keeps one. */
GST_START_TEST (test_writer_errors)
{
  g_autoptr (LlmGgufWriter) w = llm_gguf_writer_new ();
  g_autoptr (GBytes) d = g_bytes_new ("abcdefgh", 8);
  const guint64 ne2[1] = { 2 }, ne3[1] = { 3 }, ne0[2] = { 2, 0 };
  const guint64 ne33[1] = { 33 };
  GError *error = NULL;
  g_autoptr (GBytes) bytes = NULL;
  g_autoptr (LlmGguf) g = NULL;

  fail_unless (llm_gguf_writer_add_tensor (w, "x", LLM_DTYPE_F32, 1, ne2, d,
          &error));
  fail_if (llm_gguf_writer_add_tensor (w, "x", LLM_DTYPE_F32, 1, ne2, d,
          &error));
  assert_error_contains (error, LLM_ERROR_INPUT, "duplicate tensor name 'x'");
  g_clear_error (&error);
  fail_if (llm_gguf_writer_add_tensor (w, "y", LLM_DTYPE_F32, 1, ne3, d,
          &error));
  assert_error_contains (error, LLM_ERROR_INPUT, "needs 12 bytes");
  g_clear_error (&error);
  fail_if (llm_gguf_writer_add_tensor (w, "z", LLM_DTYPE_F32, 2, ne0, d,
          &error));
  assert_error_contains (error, LLM_ERROR_INPUT, "dimension 1 is 0");
  g_clear_error (&error);
  fail_if (llm_gguf_writer_add_tensor (w, "q", LLM_DTYPE_Q8_0, 1, ne33, d,
          &error));
  assert_error_contains (error, LLM_ERROR_INPUT, "Q8_0 block size 32");
  g_clear_error (&error);
  fail_if (llm_gguf_writer_add_tensor (w, "u", 4, 1, ne2, d, &error));
  assert_error_contains (error, LLM_ERROR_UNSUPPORTED, "unknown type 4");
  g_clear_error (&error);

  llm_gguf_writer_add_uint32 (w, "k", 1);
  llm_gguf_writer_add_string (w, "k", "two");
  bytes = llm_gguf_writer_to_bytes (w, NULL);
  g = llm_gguf_open_bytes (bytes, "w.gguf", NULL);
  fail_unless (g != NULL);
  fail_unless_equals_int (llm_gguf_n_kv (g), 1);
  fail_unless_equals_string (llm_gguf_get_string (g, "k"), "two");
  fail_unless_equals_int (llm_gguf_n_tensors (g), 1);
}

GST_END_TEST;

/* A small valid file built by hand, as the base of the broken ones. */
static GByteArray *
small_file (guint32 version)
{
  GByteArray *b = b_header (version, 2, 2);
  const guint64 ne[2] = { 4, 2 };
  const guint64 ne1[1] = { 32 };

  b_kv_u32 (b, "general.alignment", 32);
  b_str (b, "tokens");
  b_u32 (b, LLM_GGUF_TYPE_ARRAY);
  b_u32 (b, LLM_GGUF_TYPE_STRING);
  b_u64 (b, 2);
  b_str (b, "a");
  b_str (b, "bc");
  b_tensor_info (b, "w", 2, ne, LLM_DTYPE_F32, 0);
  b_tensor_info (b, "q", 1, ne1, LLM_DTYPE_Q8_0, 32);
  b_pad (b, 32);
  b_zeros (b, 32 + 34);
  return b;
}

GST_START_TEST (test_hand_built_v2_v3)
{
  for (guint32 version = 2; version <= 3; version++) {
    GByteArray *b = small_file (version);
    g_autoptr (GBytes) bytes = g_byte_array_free_to_bytes (b);
    g_autoptr (GError) error = NULL;
    g_autoptr (LlmGguf) g = llm_gguf_open_bytes (bytes, "v.gguf", &error);

    g_assert_no_error (error);
    fail_unless_equals_int (llm_gguf_version (g), version);
    fail_unless_equals_int (llm_gguf_n_tensors (g), 2);
    fail_unless_equals_uint64 (llm_gguf_find_tensor (g, "q")->nbytes, 34);
  }
}

GST_END_TEST;

/* Cut the file at every length: each prefix fails, none crashes. */
GST_START_TEST (test_truncated)
{
  GByteArray *full = small_file (3);
  guint len = full->len;

  for (guint cut = 0; cut < len; cut++) {
    GByteArray *b = g_byte_array_new ();
    g_autoptr (GError) error = NULL;

    g_byte_array_append (b, full->data, cut);
    error = open_expect_error (b);
    if (cut < 4)
      fail_unless (strstr (error->message, "not a GGUF file") != NULL);
    else
      fail_unless (strstr (error->message, "truncated") ||
          strstr (error->message, "runs past the end") ||
          strstr (error->message, "bytes left in the file"),
          "cut %u: %s", cut, error->message);
  }
  g_byte_array_unref (full);
}

GST_END_TEST;

GST_START_TEST (test_huge_counts)
{
  const guint64 huge[] = { G_MAXUINT32, G_MAXUINT64, G_MAXUINT64 / 2 + 1 };

  for (guint i = 0; i < G_N_ELEMENTS (huge); i++) {
    GByteArray *b;
    g_autoptr (GError) e1 = NULL;
    g_autoptr (GError) e2 = NULL;
    g_autoptr (GError) e3 = NULL;
    g_autoptr (GError) e4 = NULL;
    g_autoptr (GError) e5 = NULL;

    /* tensor count */
    b = b_header (3, huge[i], 0);
    b_zeros (b, 64);
    e1 = open_expect_error (b);
    assert_error_contains (e1, LLM_ERROR_FORMAT, "tensor count");

    /* metadata count */
    b = b_header (3, 0, huge[i]);
    b_zeros (b, 64);
    e2 = open_expect_error (b);
    assert_error_contains (e2, LLM_ERROR_FORMAT, "metadata count");

    /* key string length */
    b = b_header (3, 0, 1);
    b_u64 (b, huge[i]);
    b_zeros (b, 64);
    e3 = open_expect_error (b);
    assert_error_contains (e3, LLM_ERROR_FORMAT, "string length");

    /* string value length */
    b = b_header (3, 0, 1);
    b_str (b, "k");
    b_u32 (b, LLM_GGUF_TYPE_STRING);
    b_u64 (b, huge[i]);
    b_zeros (b, 64);
    e4 = open_expect_error (b);
    assert_error_contains (e4, LLM_ERROR_FORMAT, "string length");

    /* array length, of one-byte elements and of strings */
    b = b_header (3, 0, 1);
    b_str (b, "k");
    b_u32 (b, LLM_GGUF_TYPE_ARRAY);
    b_u32 (b, i == 0 ? LLM_GGUF_TYPE_UINT8 : LLM_GGUF_TYPE_STRING);
    b_u64 (b, huge[i]);
    b_zeros (b, 64);
    e5 = open_expect_error (b);
    assert_error_contains (e5, LLM_ERROR_FORMAT, "array length");
  }
}

GST_END_TEST;

/* Tensor infos that lie about where their data is, or what it is. */
GST_START_TEST (test_bad_tensors)
{
  const guint64 ne[2] = { 8, 2 };
  const guint64 ne5[5] = { 1, 1, 1, 1, 1 };
  const guint64 ne_zero[2] = { 8, 0 };
  const guint64 ne_big[4] = { 1ull << 32, 1ull << 32, 2, 1 };
  const guint64 ne_q[1] = { 33 };
  GByteArray *b;
  GError *error;

  /* data past the end */
  b = b_header (3, 1, 0);
  b_tensor_info (b, "blk.0.attn_q.weight", 2, ne, LLM_DTYPE_F32, 32);
  b_pad (b, 32);
  b_zeros (b, 64);
  error = open_expect_error (b);
  assert_error_contains (error, LLM_ERROR_FORMAT, "tensor "
      "'blk.0.attn_q.weight' data [offset 32, 64 bytes] runs past the end "
      "of the file");
  g_error_free (error);

  /* an offset so large that offset + size wraps around */
  b = b_header (3, 1, 0);
  b_tensor_info (b, "w", 2, ne, LLM_DTYPE_F32, G_MAXUINT64 - 31);
  b_pad (b, 32);
  b_zeros (b, 64);
  error = open_expect_error (b);
  assert_error_contains (error, LLM_ERROR_FORMAT, "runs past the end");
  g_error_free (error);

  /* misaligned offset */
  b = b_header (3, 1, 0);
  b_tensor_info (b, "w", 2, ne, LLM_DTYPE_F32, 4);
  b_pad (b, 32);
  b_zeros (b, 128);
  error = open_expect_error (b);
  assert_error_contains (error, LLM_ERROR_FORMAT,
      "offset 4 is not a multiple of the alignment 32");
  g_error_free (error);

  /* unknown dtype (4 was Q4_2, removed from GGML) */
  b = b_header (3, 1, 0);
  b_tensor_info (b, "w", 2, ne, 4, 0);
  b_pad (b, 32);
  b_zeros (b, 128);
  error = open_expect_error (b);
  assert_error_contains (error, LLM_ERROR_UNSUPPORTED, "unknown tensor type 4");
  g_error_free (error);

  /* duplicate tensor names */
  b = b_header (3, 2, 0);
  b_tensor_info (b, "w", 2, ne, LLM_DTYPE_F32, 0);
  b_tensor_info (b, "w", 2, ne, LLM_DTYPE_F32, 64);
  b_pad (b, 32);
  b_zeros (b, 128);
  error = open_expect_error (b);
  assert_error_contains (error, LLM_ERROR_FORMAT, "duplicate tensor name 'w'");
  g_error_free (error);

  /* five dimensions */
  b = b_header (3, 1, 0);
  b_tensor_info (b, "w5", 5, ne5, LLM_DTYPE_F32, 0);
  b_pad (b, 32);
  b_zeros (b, 32);
  error = open_expect_error (b);
  assert_error_contains (error, LLM_ERROR_FORMAT,
      "tensor 'w5' has 5 dimensions (at most 4)");
  g_error_free (error);

  /* a zero dimension */
  b = b_header (3, 1, 0);
  b_tensor_info (b, "w", 2, ne_zero, LLM_DTYPE_F32, 0);
  b_pad (b, 32);
  error = open_expect_error (b);
  assert_error_contains (error, LLM_ERROR_FORMAT, "dimension 1 is 0");
  g_error_free (error);

  /* an element count that overflows 64 bits */
  b = b_header (3, 1, 0);
  b_tensor_info (b, "w", 4, ne_big, LLM_DTYPE_F32, 0);
  b_pad (b, 32);
  error = open_expect_error (b);
  assert_error_contains (error, LLM_ERROR_FORMAT, "overflows");
  g_error_free (error);

  /* rows that are not whole blocks */
  b = b_header (3, 1, 0);
  b_tensor_info (b, "q", 1, ne_q, LLM_DTYPE_Q8_0, 0);
  b_pad (b, 32);
  b_zeros (b, 128);
  error = open_expect_error (b);
  assert_error_contains (error, LLM_ERROR_FORMAT,
      "row length 33 is not a multiple of the Q8_0 block size 32");
  g_error_free (error);
}

GST_END_TEST;

GST_START_TEST (test_bad_metadata)
{
  GByteArray *b;
  GError *error;

  /* bad magic, unsupported versions */
  b = g_byte_array_new ();
  g_byte_array_append (b, (const guint8 *) "GGML\3\0\0\0", 8);
  b_zeros (b, 16);
  error = open_expect_error (b);
  assert_error_contains (error, LLM_ERROR_FORMAT, "not a GGUF file");
  g_error_free (error);
  for (guint32 v = 1; v <= 4; v += 3) {
    b = b_header (v, 0, 0);
    error = open_expect_error (b);
    assert_error_contains (error, LLM_ERROR_UNSUPPORTED,
        "unsupported GGUF version");
    g_error_free (error);
  }

  /* duplicate keys */
  b = b_header (3, 0, 2);
  b_kv_u32 (b, "general.x", 1);
  b_kv_u32 (b, "general.x", 2);
  error = open_expect_error (b);
  assert_error_contains (error, LLM_ERROR_FORMAT,
      "duplicate metadata key 'general.x'");
  g_error_free (error);

  /* unknown value type */
  b = b_header (3, 0, 1);
  b_str (b, "k");
  b_u32 (b, 13);
  b_zeros (b, 8);
  error = open_expect_error (b);
  assert_error_contains (error, LLM_ERROR_FORMAT,
      "unknown metadata value type 13 for key 'k'");
  g_error_free (error);

  /* unknown array element type */
  b = b_header (3, 0, 1);
  b_str (b, "k");
  b_u32 (b, LLM_GGUF_TYPE_ARRAY);
  b_u32 (b, 99);
  b_u64 (b, 0);
  error = open_expect_error (b);
  assert_error_contains (error, LLM_ERROR_FORMAT,
      "unknown metadata value type 99");
  g_error_free (error);

  /* arrays nested 17 deep */
  b = b_header (3, 0, 1);
  b_str (b, "k");
  b_u32 (b, LLM_GGUF_TYPE_ARRAY);
  for (guint i = 0; i < 17; i++) {
    b_u32 (b, LLM_GGUF_TYPE_ARRAY);
    b_u64 (b, 1);
  }
  b_zeros (b, 64);
  error = open_expect_error (b);
  assert_error_contains (error, LLM_ERROR_FORMAT, "nested deeper than 16");
  g_error_free (error);

  /* a key that is not UTF-8 */
  b = b_header (3, 0, 1);
  b_u64 (b, 2);
  g_byte_array_append (b, (const guint8 *) "\xff\xfe", 2);
  b_u32 (b, LLM_GGUF_TYPE_UINT8);
  b_zeros (b, 1);
  error = open_expect_error (b);
  assert_error_contains (error, LLM_ERROR_FORMAT, "not valid UTF-8");
  g_error_free (error);

  /* alignment that is not a power of two, or not an integer */
  b = b_header (3, 0, 1);
  b_kv_u32 (b, "general.alignment", 48);
  error = open_expect_error (b);
  assert_error_contains (error, LLM_ERROR_FORMAT,
      "general.alignment 48 is not a power of two");
  g_error_free (error);
  b = b_header (3, 0, 1);
  b_str (b, "general.alignment");
  b_u32 (b, LLM_GGUF_TYPE_STRING);
  b_str (b, "32");
  error = open_expect_error (b);
  assert_error_contains (error, LLM_ERROR_FORMAT, "not an unsigned integer");
  g_error_free (error);
}

GST_END_TEST;

GST_START_TEST (test_open_missing)
{
  g_autoptr (GError) error = NULL;
  LlmGguf *g = llm_gguf_open ("/nonexistent/model.gguf", &error);

  fail_unless (g == NULL);
  assert_error_contains (error, LLM_ERROR_IO, "/nonexistent/model.gguf");
}

GST_END_TEST;

/* An empty file and a file of only a header with no tensors. */
GST_START_TEST (test_empty)
{
  g_autoptr (GBytes) empty = g_bytes_new (NULL, 0);
  g_autoptr (GError) error = NULL;
  GByteArray *b = b_header (3, 0, 0);
  g_autoptr (GBytes) hdr = g_byte_array_free_to_bytes (b);
  g_autoptr (LlmGguf) g = NULL;

  fail_unless (llm_gguf_open_bytes (empty, "empty.gguf", &error) == NULL);
  assert_error_contains (error, LLM_ERROR_FORMAT, "not a GGUF file");
  g_clear_error (&error);
  g = llm_gguf_open_bytes (hdr, "hdr.gguf", &error);
  g_assert_no_error (error);
  fail_unless_equals_int (llm_gguf_n_tensors (g), 0);
  fail_unless_equals_int (llm_gguf_n_kv (g), 0);
}

GST_END_TEST;

static Suite *
gguf_suite (void)
{
  Suite *s = suite_create ("gguf");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_round_trip_bytes);
  tcase_add_test (tc, test_round_trip_file);
  tcase_add_test (tc, test_custom_alignment);
  tcase_add_test (tc, test_writer_errors);
  tcase_add_test (tc, test_hand_built_v2_v3);
  tcase_add_test (tc, test_truncated);
  tcase_add_test (tc, test_huge_counts);
  tcase_add_test (tc, test_bad_tensors);
  tcase_add_test (tc, test_bad_metadata);
  tcase_add_test (tc, test_open_missing);
  tcase_add_test (tc, test_empty);
  return s;
}

GST_CHECK_MAIN (gguf);
