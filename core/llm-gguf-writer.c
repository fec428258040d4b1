/* LLMasOS - GGUF v3 writer.
 *
 * Metadata and tensor infos are serialized into memory first (they are
 * small); tensor data is then written tensor by tensor, each padded to the
 * alignment, either from bytes given up front or from a callback that fills
 * a buffer at write time, so a converter never holds the whole model.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-gguf.h"
#include "llm-error.h"

#include <errno.h>
#include <string.h>
#include <glib/gstdio.h>
#include <gio/gio.h>

#define GGUF_VERSION 3
#define GGUF_DEFAULT_ALIGNMENT 32

typedef struct
{
  gchar *key;
  LlmGgufType type;
  LlmGgufType elem_type;
  GVariant *value;
} WriterKv;

typedef struct
{
  gchar *name;
  LlmDType dtype;
  guint n_dims;
  guint64 ne[LLM_MAX_DIMS];
  guint64 nbytes;
  GBytes *data;                 /* or NULL and a fill function */
  LlmGgufTensorFillFunc fill;
  gpointer user_data;
  GDestroyNotify destroy;
} WriterTensor;

struct _LlmGgufWriter
{
  GArray *kv;                   /* WriterKv, in the order added */
  GPtrArray *tensors;           /* WriterTensor, in the order added */
  GHashTable *tensor_names;
};

static void
writer_kv_clear (gpointer p)
{
  WriterKv *kv = p;

  g_free (kv->key);
  g_variant_unref (kv->value);
}

static void
writer_tensor_free (gpointer p)
{
  WriterTensor *t = p;

  g_free (t->name);
  if (t->data)
    g_bytes_unref (t->data);
  if (t->destroy)
    t->destroy (t->user_data);
  g_free (t);
}

LlmGgufWriter *
llm_gguf_writer_new (void)
{
  LlmGgufWriter *w = g_new0 (LlmGgufWriter, 1);

  w->kv = g_array_new (FALSE, TRUE, sizeof (WriterKv));
  g_array_set_clear_func (w->kv, writer_kv_clear);
  w->tensors = g_ptr_array_new_with_free_func (writer_tensor_free);
  w->tensor_names = g_hash_table_new (g_str_hash, g_str_equal);
  return w;
}

void
llm_gguf_writer_free (LlmGgufWriter * w)
{
  if (w == NULL)
    return;
  g_hash_table_unref (w->tensor_names);
  g_ptr_array_unref (w->tensors);
  g_array_unref (w->kv);
  g_free (w);
}

/* --- metadata ------------------------------------------------------------- */

/* The GVariant type the reader gives for a scalar of @t. */
static const GVariantType *
scalar_variant_type (LlmGgufType t)
{
  switch (t) {
    case LLM_GGUF_TYPE_UINT8:
      return G_VARIANT_TYPE_BYTE;
    case LLM_GGUF_TYPE_INT8:
    case LLM_GGUF_TYPE_INT16:
      return G_VARIANT_TYPE_INT16;
    case LLM_GGUF_TYPE_UINT16:
      return G_VARIANT_TYPE_UINT16;
    case LLM_GGUF_TYPE_UINT32:
      return G_VARIANT_TYPE_UINT32;
    case LLM_GGUF_TYPE_INT32:
      return G_VARIANT_TYPE_INT32;
    case LLM_GGUF_TYPE_FLOAT32:
    case LLM_GGUF_TYPE_FLOAT64:
      return G_VARIANT_TYPE_DOUBLE;
    case LLM_GGUF_TYPE_BOOL:
      return G_VARIANT_TYPE_BOOLEAN;
    case LLM_GGUF_TYPE_UINT64:
      return G_VARIANT_TYPE_UINT64;
    case LLM_GGUF_TYPE_INT64:
      return G_VARIANT_TYPE_INT64;
    default:
      return NULL;
  }
}

/* The GGUF element type of a nested array, from its GVariant type. The
 * mapping is the reader's, read backwards; where the reader widened (int8,
 * float32) the wider type is chosen. */
static gboolean
infer_elem_type (const GVariantType * array_type, LlmGgufType * out)
{
  const GVariantType *e;

  if (!g_variant_type_is_array (array_type))
    return FALSE;
  e = g_variant_type_element (array_type);
  if (g_variant_type_equal (e, G_VARIANT_TYPE_STRING) ||
      g_variant_type_equal (e, G_VARIANT_TYPE_BYTESTRING))
    *out = LLM_GGUF_TYPE_STRING;
  else if (g_variant_type_equal (e, G_VARIANT_TYPE_VARIANT))
    *out = LLM_GGUF_TYPE_ARRAY;
  else if (g_variant_type_equal (e, G_VARIANT_TYPE_BYTE))
    *out = LLM_GGUF_TYPE_UINT8;
  else if (g_variant_type_equal (e, G_VARIANT_TYPE_INT16))
    *out = LLM_GGUF_TYPE_INT16;
  else if (g_variant_type_equal (e, G_VARIANT_TYPE_UINT16))
    *out = LLM_GGUF_TYPE_UINT16;
  else if (g_variant_type_equal (e, G_VARIANT_TYPE_UINT32))
    *out = LLM_GGUF_TYPE_UINT32;
  else if (g_variant_type_equal (e, G_VARIANT_TYPE_INT32))
    *out = LLM_GGUF_TYPE_INT32;
  else if (g_variant_type_equal (e, G_VARIANT_TYPE_DOUBLE))
    *out = LLM_GGUF_TYPE_FLOAT64;
  else if (g_variant_type_equal (e, G_VARIANT_TYPE_BOOLEAN))
    *out = LLM_GGUF_TYPE_BOOL;
  else if (g_variant_type_equal (e, G_VARIANT_TYPE_UINT64))
    *out = LLM_GGUF_TYPE_UINT64;
  else if (g_variant_type_equal (e, G_VARIANT_TYPE_INT64))
    *out = LLM_GGUF_TYPE_INT64;
  else
    return FALSE;
  return TRUE;
}

/* TRUE if @v is what add_kv documents for @type / @elem_type. */
static gboolean
value_matches (LlmGgufType type, LlmGgufType elem_type, GVariant * v)
{
  const GVariantType *vt = g_variant_get_type (v);

  if (type == LLM_GGUF_TYPE_STRING)
    return g_variant_type_equal (vt, G_VARIANT_TYPE_STRING) ||
        g_variant_type_equal (vt, G_VARIANT_TYPE_BYTESTRING);
  if (type != LLM_GGUF_TYPE_ARRAY) {
    const GVariantType *want = scalar_variant_type (type);
    return want && g_variant_type_equal (vt, want);
  }
  if (!g_variant_type_is_array (vt))
    return FALSE;
  if (elem_type == LLM_GGUF_TYPE_ARRAY) {
    if (!g_variant_type_equal (vt, G_VARIANT_TYPE ("av")))
      return FALSE;
    for (gsize i = 0; i < g_variant_n_children (v); i++) {
      g_autoptr (GVariant) box = g_variant_get_child_value (v, i);
      g_autoptr (GVariant) inner = g_variant_get_variant (box);
      LlmGgufType et;

      if (!infer_elem_type (g_variant_get_type (inner), &et) ||
          !value_matches (LLM_GGUF_TYPE_ARRAY, et, inner))
        return FALSE;
    }
    return TRUE;
  }
  if (elem_type == LLM_GGUF_TYPE_STRING)
    return g_variant_type_equal (vt, G_VARIANT_TYPE_STRING_ARRAY) ||
        g_variant_type_equal (vt, G_VARIANT_TYPE_BYTESTRING_ARRAY);
  return scalar_variant_type (elem_type) &&
      g_variant_type_equal (g_variant_type_element (vt),
      scalar_variant_type (elem_type));
}

void
llm_gguf_writer_add_kv (LlmGgufWriter * w, const gchar * key,
    LlmGgufType type, LlmGgufType elem_type, GVariant * value)
{
  WriterKv kv;

  g_return_if_fail (w != NULL && key != NULL && value != NULL);
  g_variant_ref_sink (value);
  if (!value_matches (type, elem_type, value)) {
    g_critical ("gguf writer: value of type '%s' does not fit GGUF type %d "
        "(elements %d) for key '%s'", g_variant_get_type_string (value),
        type, elem_type, key);
    g_variant_unref (value);
    return;
  }

  /* Setting a key again replaces its value, as ggml's gguf_set_* does. */
  for (guint i = 0; i < w->kv->len; i++) {
    WriterKv *old = &g_array_index (w->kv, WriterKv, i);
    if (strcmp (old->key, key) == 0) {
      g_variant_unref (old->value);
      old->type = type;
      old->elem_type = elem_type;
      old->value = value;
      return;
    }
  }
  kv.key = g_strdup (key);
  kv.type = type;
  kv.elem_type = elem_type;
  kv.value = value;
  g_array_append_val (w->kv, kv);
}

void
llm_gguf_writer_add_uint32 (LlmGgufWriter * w, const gchar * key, guint32 v)
{
  llm_gguf_writer_add_kv (w, key, LLM_GGUF_TYPE_UINT32, 0,
      g_variant_new_uint32 (v));
}

void
llm_gguf_writer_add_int32 (LlmGgufWriter * w, const gchar * key, gint32 v)
{
  llm_gguf_writer_add_kv (w, key, LLM_GGUF_TYPE_INT32, 0,
      g_variant_new_int32 (v));
}

void
llm_gguf_writer_add_float32 (LlmGgufWriter * w, const gchar * key, float v)
{
  llm_gguf_writer_add_kv (w, key, LLM_GGUF_TYPE_FLOAT32, 0,
      g_variant_new_double (v));
}

void
llm_gguf_writer_add_bool (LlmGgufWriter * w, const gchar * key, gboolean v)
{
  llm_gguf_writer_add_kv (w, key, LLM_GGUF_TYPE_BOOL, 0,
      g_variant_new_boolean (v));
}

void
llm_gguf_writer_add_string (LlmGgufWriter * w, const gchar * key,
    const gchar * v)
{
  llm_gguf_writer_add_kv (w, key, LLM_GGUF_TYPE_STRING, 0,
      g_variant_new_string (v));
}

void
llm_gguf_writer_add_string_array (LlmGgufWriter * w, const gchar * key,
    const gchar * const *v, guint n)
{
  llm_gguf_writer_add_kv (w, key, LLM_GGUF_TYPE_ARRAY, LLM_GGUF_TYPE_STRING,
      g_variant_new_strv (v, n));
}

void
llm_gguf_writer_add_float32_array (LlmGgufWriter * w, const gchar * key,
    const float *v, guint n)
{
  g_autofree gdouble *d = g_new (gdouble, MAX (n, 1));

  for (guint i = 0; i < n; i++)
    d[i] = v[i];
  llm_gguf_writer_add_kv (w, key, LLM_GGUF_TYPE_ARRAY, LLM_GGUF_TYPE_FLOAT32,
      g_variant_new_fixed_array (G_VARIANT_TYPE_DOUBLE, d, n,
          sizeof (gdouble)));
}

void
llm_gguf_writer_add_int32_array (LlmGgufWriter * w, const gchar * key,
    const gint32 * v, guint n)
{
  llm_gguf_writer_add_kv (w, key, LLM_GGUF_TYPE_ARRAY, LLM_GGUF_TYPE_INT32,
      g_variant_new_fixed_array (G_VARIANT_TYPE_INT32, v, n, sizeof (gint32)));
}

/* --- tensors -------------------------------------------------------------- */

static WriterTensor *
new_tensor (LlmGgufWriter * w, const gchar * name, LlmDType dtype,
    guint n_dims, const guint64 * ne, GError ** error)
{
  WriterTensor *t;
  guint64 n = 1, nbytes;

  if (g_hash_table_contains (w->tensor_names, name)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_INPUT,
        "gguf writer: duplicate tensor name '%s'", name);
    return NULL;
  }
  if (n_dims == 0 || n_dims > LLM_MAX_DIMS) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_INPUT,
        "gguf writer: tensor '%s' has %u dimensions (1 to %d)", name, n_dims,
        LLM_MAX_DIMS);
    return NULL;
  }
  if (!llm_dtype_is_known (dtype)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
        "gguf writer: tensor '%s' has unknown type %d", name, dtype);
    return NULL;
  }
  for (guint d = 0; d < n_dims; d++) {
    if (ne[d] == 0 || !g_uint64_checked_mul (&n, n, ne[d])) {
      g_set_error (error, LLM_ERROR, LLM_ERROR_INPUT,
          "gguf writer: tensor '%s' dimension %u is %" G_GUINT64_FORMAT
          " (zero, or the element count overflows)", name, d, ne[d]);
      return NULL;
    }
  }
  if (ne[0] % llm_dtype_block_elems (dtype) != 0 ||
      !llm_dtype_bytes_for (dtype, n, &nbytes)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_INPUT,
        "gguf writer: tensor '%s' row length %" G_GUINT64_FORMAT " is not "
        "a multiple of the %s block size %u", name, ne[0],
        llm_dtype_name (dtype), llm_dtype_block_elems (dtype));
    return NULL;
  }

  t = g_new0 (WriterTensor, 1);
  t->name = g_strdup (name);
  t->dtype = dtype;
  t->n_dims = n_dims;
  for (guint d = 0; d < LLM_MAX_DIMS; d++)
    t->ne[d] = d < n_dims ? ne[d] : 1;
  t->nbytes = nbytes;
  return t;
}

static void
append_tensor (LlmGgufWriter * w, WriterTensor * t)
{
  g_ptr_array_add (w->tensors, t);
  g_hash_table_add (w->tensor_names, t->name);
}

gboolean
llm_gguf_writer_add_tensor (LlmGgufWriter * w, const gchar * name,
    LlmDType dtype, guint n_dims, const guint64 * ne, GBytes * data,
    GError ** error)
{
  WriterTensor *t;

  g_return_val_if_fail (w != NULL && name != NULL && data != NULL, FALSE);

  t = new_tensor (w, name, dtype, n_dims, ne, error);
  if (t == NULL)
    return FALSE;
  if (g_bytes_get_size (data) != t->nbytes) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_INPUT,
        "gguf writer: tensor '%s' needs %" G_GUINT64_FORMAT " bytes of %s "
        "but %" G_GSIZE_FORMAT " were given", name, t->nbytes,
        llm_dtype_name (dtype), g_bytes_get_size (data));
    writer_tensor_free (t);
    return FALSE;
  }
  t->data = g_bytes_ref (data);
  append_tensor (w, t);
  return TRUE;
}

gboolean
llm_gguf_writer_add_tensor_func (LlmGgufWriter * w, const gchar * name,
    LlmDType dtype, guint n_dims, const guint64 * ne,
    LlmGgufTensorFillFunc fill, gpointer user_data, GDestroyNotify destroy,
    GError ** error)
{
  WriterTensor *t;

  g_return_val_if_fail (w != NULL && name != NULL && fill != NULL, FALSE);

  t = new_tensor (w, name, dtype, n_dims, ne, error);
  if (t == NULL) {
    if (destroy)
      destroy (user_data);
    return FALSE;
  }
  t->fill = fill;
  t->user_data = user_data;
  t->destroy = destroy;
  append_tensor (w, t);
  return TRUE;
}

/* --- serialization -------------------------------------------------------- */

static void
put (GByteArray * b, const void *p, gsize n)
{
  g_byte_array_append (b, p, n);
}

static void
put_u8 (GByteArray * b, guint8 v)
{
  put (b, &v, 1);
}

static void
put_u16 (GByteArray * b, guint16 v)
{
  v = GUINT16_TO_LE (v);
  put (b, &v, 2);
}

static void
put_u32 (GByteArray * b, guint32 v)
{
  v = GUINT32_TO_LE (v);
  put (b, &v, 4);
}

static void
put_u64 (GByteArray * b, guint64 v)
{
  v = GUINT64_TO_LE (v);
  put (b, &v, 8);
}

static void
put_string (GByteArray * b, const void *s, gsize len)
{
  put_u64 (b, len);
  put (b, s, len);
}

static void put_value (GByteArray * b, LlmGgufType type,
    LlmGgufType elem_type, GVariant * v);

static void
put_array (GByteArray * b, LlmGgufType elem_type, GVariant * v)
{
  gsize n = g_variant_n_children (v);

  put_u32 (b, elem_type);
  put_u64 (b, n);
  for (gsize i = 0; i < n; i++) {
    g_autoptr (GVariant) child = g_variant_get_child_value (v, i);

    if (elem_type == LLM_GGUF_TYPE_ARRAY) {
      g_autoptr (GVariant) inner = g_variant_get_variant (child);
      LlmGgufType et = LLM_GGUF_TYPE_UINT8;

      infer_elem_type (g_variant_get_type (inner), &et);
      put_array (b, et, inner);
    } else {
      put_value (b, elem_type, 0, child);
    }
  }
}

static void
put_value (GByteArray * b, LlmGgufType type, LlmGgufType elem_type,
    GVariant * v)
{
  switch (type) {
    case LLM_GGUF_TYPE_UINT8:
      put_u8 (b, g_variant_get_byte (v));
      break;
    case LLM_GGUF_TYPE_INT8:
      put_u8 (b, (guint8) (gint8) g_variant_get_int16 (v));
      break;
    case LLM_GGUF_TYPE_BOOL:
      put_u8 (b, g_variant_get_boolean (v) ? 1 : 0);
      break;
    case LLM_GGUF_TYPE_UINT16:
      put_u16 (b, g_variant_get_uint16 (v));
      break;
    case LLM_GGUF_TYPE_INT16:
      put_u16 (b, (guint16) g_variant_get_int16 (v));
      break;
    case LLM_GGUF_TYPE_UINT32:
      put_u32 (b, g_variant_get_uint32 (v));
      break;
    case LLM_GGUF_TYPE_INT32:
      put_u32 (b, (guint32) g_variant_get_int32 (v));
      break;
    case LLM_GGUF_TYPE_FLOAT32:{
      float f = g_variant_get_double (v);
      guint32 u;
      memcpy (&u, &f, 4);
      put_u32 (b, u);
      break;
    }
    case LLM_GGUF_TYPE_UINT64:
      put_u64 (b, g_variant_get_uint64 (v));
      break;
    case LLM_GGUF_TYPE_INT64:
      put_u64 (b, (guint64) g_variant_get_int64 (v));
      break;
    case LLM_GGUF_TYPE_FLOAT64:{
      gdouble d = g_variant_get_double (v);
      guint64 u;
      memcpy (&u, &d, 8);
      put_u64 (b, u);
      break;
    }
    case LLM_GGUF_TYPE_STRING:
      if (g_variant_is_of_type (v, G_VARIANT_TYPE_STRING)) {
        gsize len;
        const gchar *s = g_variant_get_string (v, &len);
        put_string (b, s, len);
      } else {
        gsize len;
        const void *s = g_variant_get_fixed_array (v, &len, 1);
        put_string (b, s, len);
      }
      break;
    case LLM_GGUF_TYPE_ARRAY:
      put_array (b, elem_type, v);
      break;
  }
}

/* general.alignment as the reader takes it: any integer type, a power of
 * two up to G_MAXUINT32 (else the default). */
static guint64
writer_alignment (const LlmGgufWriter * w)
{
  for (guint i = 0; i < w->kv->len; i++) {
    const WriterKv *kv = &g_array_index (w->kv, WriterKv, i);
    GVariant *v = kv->value;
    gint64 a;

    if (strcmp (kv->key, "general.alignment") != 0)
      continue;
    if (g_variant_is_of_type (v, G_VARIANT_TYPE_BYTE))
      a = g_variant_get_byte (v);
    else if (g_variant_is_of_type (v, G_VARIANT_TYPE_INT16))
      a = g_variant_get_int16 (v);
    else if (g_variant_is_of_type (v, G_VARIANT_TYPE_UINT16))
      a = g_variant_get_uint16 (v);
    else if (g_variant_is_of_type (v, G_VARIANT_TYPE_INT32))
      a = g_variant_get_int32 (v);
    else if (g_variant_is_of_type (v, G_VARIANT_TYPE_UINT32))
      a = g_variant_get_uint32 (v);
    else if (g_variant_is_of_type (v, G_VARIANT_TYPE_INT64))
      a = g_variant_get_int64 (v);
    else if (g_variant_is_of_type (v, G_VARIANT_TYPE_UINT64))
      a = MIN (g_variant_get_uint64 (v), (guint64) G_MAXINT64);
    else
      break;
    if (a > 0 && a <= G_MAXUINT32 && (a & (a - 1)) == 0)
      return a;
    break;
  }
  return GGUF_DEFAULT_ALIGNMENT;
}

static guint64
align_up (guint64 x, guint64 a)
{
  return x + (a - x % a) % a;
}

/* Header, metadata, tensor infos and the padding up to the data section. */
static GByteArray *
build_header (const LlmGgufWriter * w, guint64 alignment)
{
  GByteArray *b = g_byte_array_new ();
  guint64 offset = 0;

  put (b, "GGUF", 4);
  put_u32 (b, GGUF_VERSION);
  put_u64 (b, w->tensors->len);
  put_u64 (b, w->kv->len);
  for (guint i = 0; i < w->kv->len; i++) {
    const WriterKv *kv = &g_array_index (w->kv, WriterKv, i);

    put_string (b, kv->key, strlen (kv->key));
    put_u32 (b, kv->type);
    put_value (b, kv->type, kv->elem_type, kv->value);
  }
  for (guint i = 0; i < w->tensors->len; i++) {
    const WriterTensor *t = g_ptr_array_index (w->tensors, i);

    put_string (b, t->name, strlen (t->name));
    put_u32 (b, t->n_dims);
    for (guint d = 0; d < t->n_dims; d++)
      put_u64 (b, t->ne[d]);
    put_u32 (b, t->dtype);
    put_u64 (b, offset);
    offset = align_up (offset + t->nbytes, alignment);
  }
  while (b->len % alignment != 0)
    put_u8 (b, 0);
  return b;
}

static gboolean
write_padding (GOutputStream * out, guint64 n, GError ** error)
{
  static const guint8 zeros[256] = { 0 };

  return n == 0 || g_output_stream_write_all (out, zeros, n, NULL, NULL, error);
}

static gboolean
write_tensor (GOutputStream * out, WriterTensor * t, guint64 alignment,
    GError ** error)
{
  gboolean ok;

  if (t->data) {
    ok = g_output_stream_write_all (out, g_bytes_get_data (t->data, NULL),
        t->nbytes, NULL, NULL, error);
  } else {
    guint8 *buf = g_try_malloc (MAX (t->nbytes, 1));

    if (buf == NULL) {
      g_set_error (error, LLM_ERROR, LLM_ERROR_NO_MEMORY,
          "gguf writer: no memory for the %" G_GUINT64_FORMAT " bytes of "
          "tensor '%s'", t->nbytes, t->name);
      return FALSE;
    }
    ok = t->fill (buf, t->nbytes, t->user_data, error) &&
        g_output_stream_write_all (out, buf, t->nbytes, NULL, NULL, error);
    g_free (buf);
  }
  return ok && write_padding (out, align_up (t->nbytes, alignment) -
      t->nbytes, error);
}

static gboolean
write_stream (LlmGgufWriter * w, GOutputStream * out, GError ** error)
{
  guint64 alignment = writer_alignment (w);
  g_autoptr (GByteArray) header = build_header (w, alignment);

  if (!g_output_stream_write_all (out, header->data, header->len, NULL, NULL,
          error))
    return FALSE;
  for (guint i = 0; i < w->tensors->len; i++)
    if (!write_tensor (out, g_ptr_array_index (w->tensors, i), alignment,
            error))
      return FALSE;
  return TRUE;
}

GBytes *
llm_gguf_writer_to_bytes (LlmGgufWriter * w, GError ** error)
{
  g_autoptr (GOutputStream) out = g_memory_output_stream_new_resizable ();

  g_return_val_if_fail (w != NULL, NULL);

  if (!write_stream (w, out, error) ||
      !g_output_stream_close (out, NULL, error))
    return NULL;
  return g_memory_output_stream_steal_as_bytes (G_MEMORY_OUTPUT_STREAM (out));
}

/* Written next to @path first and renamed at the end, so a failed write
 * never leaves a half file under the final name. */
gboolean
llm_gguf_writer_write (LlmGgufWriter * w, const gchar * path, GError ** error)
{
  g_autofree gchar *partial = NULL;
  g_autoptr (GFile) file = NULL;
  g_autoptr (GFileOutputStream) out = NULL;
  g_autoptr (GError) local = NULL;
  gboolean ok;

  g_return_val_if_fail (w != NULL && path != NULL, FALSE);

  partial = g_strconcat (path, ".partial", NULL);
  file = g_file_new_for_path (partial);
  out = g_file_replace (file, NULL, FALSE, G_FILE_CREATE_NONE, NULL, &local);
  if (out == NULL) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_IO, "%s: cannot create: %s",
        path, local->message);
    return FALSE;
  }
  ok = write_stream (w, G_OUTPUT_STREAM (out), &local);
  ok = g_output_stream_close (G_OUTPUT_STREAM (out), NULL,
      ok ? &local : NULL) && ok;
  if (ok && g_rename (partial, path) != 0) {
    g_set_error (&local, G_FILE_ERROR, g_file_error_from_errno (errno),
        "cannot rename %s: %s", partial, g_strerror (errno));
    ok = FALSE;
  }
  if (!ok) {
    g_unlink (partial);
    if (local->domain == LLM_ERROR)
      g_propagate_error (error, g_steal_pointer (&local));
    else
      g_set_error (error, LLM_ERROR, LLM_ERROR_IO, "%s: cannot write: %s",
          path, local->message);
    return FALSE;
  }
  return TRUE;
}
