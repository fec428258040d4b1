/* LLMasOS - GGUF v2/v3 reader.
 *
 * Layout (all little-endian): "GGUF", u32 version, u64 n_tensors, u64 n_kv,
 * n_kv x (string key, u32 type, value), n_tensors x (string name, u32 n_dims,
 * u64 ne[n_dims], u32 type, u64 offset), padding up to the alignment, tensor
 * data. Strings are a u64 length and that many bytes; arrays a u32 element
 * type, a u64 count and the elements.
 *
 * The file is untrusted: every count and length is checked against the bytes
 * that remain before anything is allocated for it, so a hostile count costs
 * an error message, not memory.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-gguf.h"
#include "llm-error.h"

#include <string.h>

#define GGUF_MAGIC "GGUF"
#define GGUF_DEFAULT_ALIGNMENT 32
/* Arrays of arrays recurse; a file of nested headers could otherwise take
 * the stack down. */
#define GGUF_MAX_ARRAY_DEPTH 16

/* Smallest encodings, used to bound counts by the bytes that remain. */
#define GGUF_MIN_KV_BYTES (8 + 4 + 1)   /* empty key, type, 1-byte value */
#define GGUF_MIN_TENSOR_INFO_BYTES (8 + 4 + 8 + 4 + 8)  /* 1-D, empty name */

/* The tail of the messages for data that ends too soon: the commonest
 * cause is a download that stopped early, so say so. */
#define TRUNCATED(what) ": the file is truncated, or the " what " is corrupt"

typedef struct
{
  gchar *key;
  LlmGgufType type;
  LlmGgufType elem_type;        /* for ARRAY values */
  GVariant *value;
} GgufKv;

struct _LlmGguf
{
  gchar *name;                  /* for messages */
  GBytes *bytes;                /* keeps the mapping alive */
  guint32 version;
  guint64 alignment;
  guint64 data_offset;          /* start of the tensor data section */
  GArray *kv;                   /* GgufKv */
  GHashTable *kv_index;         /* key -> index + 1 */
  LlmTensor *tensors;
  guint n_tensors;
  GHashTable *tensor_index;     /* name -> LlmTensor* */
};

/* A read position in the file, with the file's name for messages. */
typedef struct
{
  const guint8 *data;
  gsize size;
  gsize off;
  const gchar *name;
} Cursor;

static gsize
remaining (const Cursor * c)
{
  return c->size - c->off;
}

static gboolean
need (Cursor * c, gsize n, const gchar * what, GError ** error)
{
  if (remaining (c) < n) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: truncated: %s at offset %" G_GSIZE_FORMAT " needs %"
        G_GSIZE_FORMAT " bytes but the file ends %" G_GSIZE_FORMAT
        " bytes later", c->name, what, c->off, n, remaining (c));
    return FALSE;
  }
  return TRUE;
}

static gboolean
read_u8 (Cursor * c, guint8 * out, const gchar * what, GError ** error)
{
  if (!need (c, 1, what, error))
    return FALSE;
  *out = c->data[c->off++];
  return TRUE;
}

static gboolean
read_u16 (Cursor * c, guint16 * out, const gchar * what, GError ** error)
{
  guint16 v;

  if (!need (c, 2, what, error))
    return FALSE;
  memcpy (&v, c->data + c->off, 2);
  *out = GUINT16_FROM_LE (v);
  c->off += 2;
  return TRUE;
}

static gboolean
read_u32 (Cursor * c, guint32 * out, const gchar * what, GError ** error)
{
  guint32 v;

  if (!need (c, 4, what, error))
    return FALSE;
  memcpy (&v, c->data + c->off, 4);
  *out = GUINT32_FROM_LE (v);
  c->off += 4;
  return TRUE;
}

static gboolean
read_u64 (Cursor * c, guint64 * out, const gchar * what, GError ** error)
{
  guint64 v;

  if (!need (c, 8, what, error))
    return FALSE;
  memcpy (&v, c->data + c->off, 8);
  *out = GUINT64_FROM_LE (v);
  c->off += 8;
  return TRUE;
}

/* A GGUF string: returns a pointer into the file and its length. */
static gboolean
read_string_raw (Cursor * c, const guint8 ** out, gsize * out_len,
    const gchar * what, GError ** error)
{
  guint64 len;
  gsize at = c->off;

  if (!read_u64 (c, &len, what, error))
    return FALSE;
  if (len > remaining (c)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: string length %" G_GUINT64_FORMAT " of %s at offset %"
        G_GSIZE_FORMAT " runs past the end of the file (%" G_GSIZE_FORMAT
        " bytes left)" TRUNCATED ("length"), c->name, len, what, at,
        remaining (c));
    return FALSE;
  }
  *out = c->data + c->off;
  *out_len = len;
  c->off += len;
  return TRUE;
}

/* A string that must be UTF-8 (keys, tensor names): a new gchar*. */
static gchar *
read_name (Cursor * c, const gchar * what, GError ** error)
{
  const guint8 *s;
  gsize len;
  gsize at = c->off;

  if (!read_string_raw (c, &s, &len, what, error))
    return NULL;
  if (!g_utf8_validate_len ((const gchar *) s, len, NULL)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: %s at offset %" G_GSIZE_FORMAT " is not valid UTF-8 "
        "(or holds a NUL byte)", c->name, what, at);
    return NULL;
  }
  return g_strndup ((const gchar *) s, len);
}

static const gchar *
type_name (guint32 t)
{
  static const gchar *const names[] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
    "bool", "string", "array", "uint64", "int64", "float64"
  };

  return t < G_N_ELEMENTS (names) ? names[t] : "unknown";
}

static gboolean
type_is_valid (guint32 t)
{
  return t <= LLM_GGUF_TYPE_FLOAT64;
}

/* Bytes of one value of @t; strings and arrays count their length fields
 * only (the least they can take). */
static gsize
type_min_size (LlmGgufType t)
{
  switch (t) {
    case LLM_GGUF_TYPE_UINT8:
    case LLM_GGUF_TYPE_INT8:
    case LLM_GGUF_TYPE_BOOL:
      return 1;
    case LLM_GGUF_TYPE_UINT16:
    case LLM_GGUF_TYPE_INT16:
      return 2;
    case LLM_GGUF_TYPE_UINT32:
    case LLM_GGUF_TYPE_INT32:
    case LLM_GGUF_TYPE_FLOAT32:
      return 4;
    case LLM_GGUF_TYPE_UINT64:
    case LLM_GGUF_TYPE_INT64:
    case LLM_GGUF_TYPE_FLOAT64:
    case LLM_GGUF_TYPE_STRING:
      return 8;
    case LLM_GGUF_TYPE_ARRAY:
      return 4 + 8;
  }
  return 1;
}

/* --- values --------------------------------------------------------------- */

static GVariant *read_value (Cursor * c, LlmGgufType type, guint depth,
    LlmGgufType * elem_type_out, GError ** error);

/* One scalar (not string, not array) as the GVariant the header lists. */
static GVariant *
read_scalar (Cursor * c, LlmGgufType type, GError ** error)
{
  guint8 u8;
  guint16 u16;
  guint32 u32;
  guint64 u64;
  float f;
  gdouble d;

  switch (type) {
    case LLM_GGUF_TYPE_UINT8:
      return read_u8 (c, &u8, "a uint8", error) ? g_variant_new_byte (u8) :
          NULL;
    case LLM_GGUF_TYPE_INT8:
      return read_u8 (c, &u8, "an int8", error) ?
          g_variant_new_int16 ((gint8) u8) : NULL;
    case LLM_GGUF_TYPE_BOOL:
      return read_u8 (c, &u8, "a bool", error) ?
          g_variant_new_boolean (u8 != 0) : NULL;
    case LLM_GGUF_TYPE_UINT16:
      return read_u16 (c, &u16, "a uint16", error) ?
          g_variant_new_uint16 (u16) : NULL;
    case LLM_GGUF_TYPE_INT16:
      return read_u16 (c, &u16, "an int16", error) ?
          g_variant_new_int16 ((gint16) u16) : NULL;
    case LLM_GGUF_TYPE_UINT32:
      return read_u32 (c, &u32, "a uint32", error) ?
          g_variant_new_uint32 (u32) : NULL;
    case LLM_GGUF_TYPE_INT32:
      return read_u32 (c, &u32, "an int32", error) ?
          g_variant_new_int32 ((gint32) u32) : NULL;
    case LLM_GGUF_TYPE_FLOAT32:
      if (!read_u32 (c, &u32, "a float32", error))
        return NULL;
      memcpy (&f, &u32, 4);
      return g_variant_new_double (f);
    case LLM_GGUF_TYPE_UINT64:
      return read_u64 (c, &u64, "a uint64", error) ?
          g_variant_new_uint64 (u64) : NULL;
    case LLM_GGUF_TYPE_INT64:
      return read_u64 (c, &u64, "an int64", error) ?
          g_variant_new_int64 ((gint64) u64) : NULL;
    case LLM_GGUF_TYPE_FLOAT64:
      if (!read_u64 (c, &u64, "a float64", error))
        return NULL;
      memcpy (&d, &u64, 8);
      return g_variant_new_double (d);
    default:
      g_assert_not_reached ();
  }
  return NULL;
}

/* A string value: 's' when it is valid UTF-8 without NUL bytes, else the
 * raw bytes as 'ay'. */
static GVariant *
string_variant (const guint8 * s, gsize len)
{
  if (g_utf8_validate_len ((const gchar *) s, len, NULL)) {
    g_autofree gchar *str = g_strndup ((const gchar *) s, len);
    return g_variant_new_string (str);
  }
  return g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, s, len, 1);
}

/* An array of strings: 'as', or 'aay' if any element is not UTF-8, so
 * that every element of the array has the same type. */
static GVariant *
read_string_array (Cursor * c, guint64 n, GError ** error)
{
  gsize start = c->off;
  gboolean all_utf8 = TRUE;
  GVariantBuilder b;

  /* first pass: bounds and encoding */
  for (guint64 i = 0; i < n; i++) {
    const guint8 *s;
    gsize len;

    if (!read_string_raw (c, &s, &len, "an array string", error))
      return NULL;
    if (all_utf8 && !g_utf8_validate_len ((const gchar *) s, len, NULL))
      all_utf8 = FALSE;
  }

  c->off = start;
  g_variant_builder_init (&b, all_utf8 ? G_VARIANT_TYPE ("as") :
      G_VARIANT_TYPE ("aay"));
  for (guint64 i = 0; i < n; i++) {
    const guint8 *s = NULL;
    gsize len = 0;

    read_string_raw (c, &s, &len, "an array string", NULL);
    g_variant_builder_add_value (&b, all_utf8 ? string_variant (s, len) :
        g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, s, len, 1));
  }
  return g_variant_builder_end (&b);
}

/* Numbers and bools: converted into a flat buffer of the GVariant element
 * type, then one fixed array. */
static GVariant *
read_number_array (Cursor * c, LlmGgufType et, guint64 n, GError ** error)
{
  const guint8 *p = c->data + c->off;
  gsize esize = type_min_size (et);
  const GVariantType *vt;
  gsize vsize;
  guint8 *buf;
  GVariant *v;

  /* the caller checked that n * esize bytes remain */
  switch (et) {
    case LLM_GGUF_TYPE_UINT8:
      vt = G_VARIANT_TYPE_BYTE;
      vsize = 1;
      break;
    case LLM_GGUF_TYPE_INT8:
    case LLM_GGUF_TYPE_INT16:
      vt = G_VARIANT_TYPE_INT16;
      vsize = 2;
      break;
    case LLM_GGUF_TYPE_BOOL:
      vt = G_VARIANT_TYPE_BOOLEAN;
      vsize = 1;                /* serialized GVariant booleans are bytes */
      break;
    case LLM_GGUF_TYPE_UINT16:
      vt = G_VARIANT_TYPE_UINT16;
      vsize = 2;
      break;
    case LLM_GGUF_TYPE_UINT32:
      vt = G_VARIANT_TYPE_UINT32;
      vsize = 4;
      break;
    case LLM_GGUF_TYPE_INT32:
      vt = G_VARIANT_TYPE_INT32;
      vsize = 4;
      break;
    case LLM_GGUF_TYPE_FLOAT32:
    case LLM_GGUF_TYPE_FLOAT64:
      vt = G_VARIANT_TYPE_DOUBLE;
      vsize = 8;
      break;
    case LLM_GGUF_TYPE_UINT64:
      vt = G_VARIANT_TYPE_UINT64;
      vsize = 8;
      break;
    case LLM_GGUF_TYPE_INT64:
      vt = G_VARIANT_TYPE_INT64;
      vsize = 8;
      break;
    default:
      g_assert_not_reached ();
  }

  buf = g_malloc (MAX (n * vsize, 1));
  for (gsize i = 0; i < n; i++) {
    const guint8 *e = p + i * esize;
    guint8 *o = buf + i * vsize;

    if (et == LLM_GGUF_TYPE_INT8) {
      gint16 w = (gint8) e[0];
      memcpy (o, &w, 2);
    } else if (et == LLM_GGUF_TYPE_BOOL) {
      o[0] = e[0] != 0;
    } else if (et == LLM_GGUF_TYPE_FLOAT32) {
      guint32 u;
      float f;
      gdouble d;
      memcpy (&u, e, 4);
      u = GUINT32_FROM_LE (u);
      memcpy (&f, &u, 4);
      d = f;
      memcpy (o, &d, 8);
    } else {
      /* same width; bytes only need the host order */
      memcpy (o, e, esize);
#if G_BYTE_ORDER == G_BIG_ENDIAN
      for (gsize k = 0; k < esize / 2; k++) {
        guint8 t = o[k];
        o[k] = o[esize - 1 - k];
        o[esize - 1 - k] = t;
      }
#endif
    }
  }
  c->off += n * esize;
  v = g_variant_new_fixed_array (vt, buf, n, vsize);
  g_free (buf);
  return v;
}

static GVariant *
read_array (Cursor * c, guint depth, LlmGgufType * elem_type_out,
    GError ** error)
{
  guint32 et;
  guint64 n;
  gsize at = c->off;
  GVariantBuilder b;

  if (depth >= GGUF_MAX_ARRAY_DEPTH) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: arrays at offset %" G_GSIZE_FORMAT " are nested deeper than %d "
        "levels", c->name, at, GGUF_MAX_ARRAY_DEPTH);
    return NULL;
  }
  if (!read_u32 (c, &et, "an array element type", error) ||
      !read_u64 (c, &n, "an array length", error))
    return NULL;
  if (!type_is_valid (et)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: unknown metadata value type %u for the elements of the array "
        "at offset %" G_GSIZE_FORMAT, c->name, et, at);
    return NULL;
  }
  if (n > remaining (c) / type_min_size (et)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: array length %" G_GUINT64_FORMAT " (%s elements) at offset %"
        G_GSIZE_FORMAT " runs past the end of the file (%" G_GSIZE_FORMAT
        " bytes left)" TRUNCATED ("length"), c->name, n, type_name (et), at,
        remaining (c));
    return NULL;
  }
  if (elem_type_out)
    *elem_type_out = et;

  if (et == LLM_GGUF_TYPE_STRING)
    return read_string_array (c, n, error);
  if (et != LLM_GGUF_TYPE_ARRAY)
    return read_number_array (c, et, n, error);

  g_variant_builder_init (&b, G_VARIANT_TYPE ("av"));
  for (guint64 i = 0; i < n; i++) {
    GVariant *inner = read_array (c, depth + 1, NULL, error);

    if (inner == NULL) {
      g_variant_builder_clear (&b);
      return NULL;
    }
    g_variant_builder_add (&b, "v", inner);
  }
  return g_variant_builder_end (&b);
}

static GVariant *
read_value (Cursor * c, LlmGgufType type, guint depth,
    LlmGgufType * elem_type_out, GError ** error)
{
  const guint8 *s;
  gsize len;

  switch (type) {
    case LLM_GGUF_TYPE_STRING:
      if (!read_string_raw (c, &s, &len, "a string value", error))
        return NULL;
      return string_variant (s, len);
    case LLM_GGUF_TYPE_ARRAY:
      return read_array (c, depth, elem_type_out, error);
    default:
      return read_scalar (c, type, error);
  }
}

/* --- header --------------------------------------------------------------- */

static void
kv_clear (gpointer p)
{
  GgufKv *kv = p;

  g_free (kv->key);
  if (kv->value)
    g_variant_unref (kv->value);
}

static gboolean
parse_kv (LlmGguf * g, Cursor * c, GError ** error)
{
  GgufKv kv = { 0 };
  guint32 type;
  gsize at = c->off;

  kv.key = read_name (c, "a metadata key", error);
  if (kv.key == NULL)
    return FALSE;
  if (g_hash_table_contains (g->kv_index, kv.key)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: duplicate metadata key '%s' at offset %" G_GSIZE_FORMAT,
        c->name, kv.key, at);
    g_free (kv.key);
    return FALSE;
  }
  if (!read_u32 (c, &type, "a metadata value type", error)) {
    g_free (kv.key);
    return FALSE;
  }
  if (!type_is_valid (type)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: unknown metadata value type %u for key '%s'", c->name, type,
        kv.key);
    g_free (kv.key);
    return FALSE;
  }
  kv.type = type;
  kv.elem_type = type;
  kv.value = read_value (c, type, 0, &kv.elem_type, error);
  if (kv.value == NULL) {
    /* "file: key 'k': what", the file first as in every other message */
    if (error != NULL && *error != NULL) {
      gchar *old = (*error)->message;
      gsize skip = strlen (c->name);

      skip = strncmp (old, c->name, skip) == 0 && old[skip] == ':' ?
          skip + 2 : 0;
      (*error)->message = g_strdup_printf ("%s: key '%s': %s", c->name,
          kv.key, old + skip);
      g_free (old);
    }
    g_free (kv.key);
    return FALSE;
  }
  g_variant_ref_sink (kv.value);
  g_array_append_val (g->kv, kv);
  g_hash_table_insert (g->kv_index, kv.key, GUINT_TO_POINTER (g->kv->len));
  return TRUE;
}

static gboolean
parse_alignment (LlmGguf * g, const gchar * name, GError ** error)
{
  gint i = llm_gguf_find_kv (g, "general.alignment");
  guint64 a;

  g->alignment = GGUF_DEFAULT_ALIGNMENT;
  if (i < 0)
    return TRUE;
  if (!llm_gguf_get_uint (g, "general.alignment", &a)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: general.alignment is a %s, not an unsigned integer", name,
        type_name (g_array_index (g->kv, GgufKv, i).type));
    return FALSE;
  }
  if (a == 0 || (a & (a - 1)) != 0 || a > G_MAXUINT32) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: general.alignment %" G_GUINT64_FORMAT " is not a power of two",
        name, a);
    return FALSE;
  }
  g->alignment = a;
  return TRUE;
}

/* Reads one tensor info; data is located later, once the data offset is
 * known. The tensor's offset is parked in its data field meanwhile. */
static gboolean
parse_tensor_info (LlmGguf * g, Cursor * c, LlmTensor * t, guint64 * offset,
    GError ** error)
{
  guint32 n_dims, type;

  t->name = read_name (c, "a tensor name", error);
  if (t->name == NULL)
    return FALSE;
  if (!read_u32 (c, &n_dims, "a tensor's dimension count", error))
    return FALSE;
  if (n_dims == 0 || n_dims > LLM_MAX_DIMS) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: tensor '%s' has %u dimensions (at most %d)", c->name, t->name,
        n_dims, LLM_MAX_DIMS);
    return FALSE;
  }
  t->n_dims = n_dims;
  for (guint d = 0; d < LLM_MAX_DIMS; d++)
    t->ne[d] = 1;
  for (guint d = 0; d < n_dims; d++) {
    if (!read_u64 (c, &t->ne[d], "a tensor dimension", error))
      return FALSE;
    if (t->ne[d] == 0 || t->ne[d] > G_MAXINT64) {
      g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
          "%s: tensor '%s' dimension %u is %" G_GUINT64_FORMAT, c->name,
          t->name, d, t->ne[d]);
      return FALSE;
    }
  }
  if (!read_u32 (c, &type, "a tensor type", error) ||
      !read_u64 (c, offset, "a tensor offset", error))
    return FALSE;
  if (!llm_dtype_is_known (type)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
        "%s: tensor '%s' has unknown tensor type %u", c->name, t->name, type);
    return FALSE;
  }
  t->dtype = type;
  if (g_hash_table_contains (g->tensor_index, t->name)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: duplicate tensor name '%s'", c->name, t->name);
    return FALSE;
  }
  g_hash_table_insert (g->tensor_index, t->name, t);
  return TRUE;
}

static gint
compare_by_data (gconstpointer a, gconstpointer b)
{
  const LlmTensor *const *x = a, *const *y = b;

  return (*x)->data < (*y)->data ? -1 : (*x)->data > (*y)->data;
}

/* Two tensors may not share bytes: llama.cpp refuses such files (it wants
 * each tensor right after the one before), and a write through one view
 * would change the other. */
static gboolean
check_overlaps (LlmGguf * g, GError ** error)
{
  g_autoptr (GPtrArray) sorted = g_ptr_array_sized_new (g->n_tensors);

  for (guint i = 0; i < g->n_tensors; i++)
    g_ptr_array_add (sorted, &g->tensors[i]);
  g_ptr_array_sort (sorted, compare_by_data);
  for (guint i = 1; i < sorted->len; i++) {
    const LlmTensor *p = sorted->pdata[i - 1], *t = sorted->pdata[i];

    if (p->data + p->nbytes > t->data) {
      g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
          "%s: the data of tensors '%s' and '%s' overlap", g->name, p->name,
          t->name);
      return FALSE;
    }
  }
  return TRUE;
}

/* Element count and bytes of @t, overflow checked. */
static gboolean
tensor_size (const gchar * name, LlmTensor * t, GError ** error)
{
  guint64 n = 1;
  guint blk = llm_dtype_block_elems (t->dtype);

  for (guint d = 0; d < t->n_dims; d++) {
    if (!g_uint64_checked_mul (&n, n, t->ne[d]) || n > G_MAXINT64) {
      g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
          "%s: tensor '%s' has too many elements (the product of its "
          "dimensions overflows)", name, t->name);
      return FALSE;
    }
  }
  if (t->ne[0] % blk != 0) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: tensor '%s' row length %" G_GUINT64_FORMAT " is not a multiple "
        "of the %s block size %u", name, t->name, t->ne[0],
        llm_dtype_name (t->dtype), blk);
    return FALSE;
  }
  if (!llm_dtype_bytes_for (t->dtype, n, &t->nbytes)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: tensor '%s' size in bytes overflows", name, t->name);
    return FALSE;
  }
  return TRUE;
}

static gboolean
place_tensor (LlmGguf * g, const guint8 * data, gsize size, LlmTensor * t,
    guint64 offset, GError ** error)
{
  guint64 start, end;

  if (!tensor_size (g->name, t, error))
    return FALSE;
  if (offset % g->alignment != 0) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: tensor '%s' offset %" G_GUINT64_FORMAT " is not a multiple of "
        "the alignment %" G_GUINT64_FORMAT, g->name, t->name, offset,
        g->alignment);
    return FALSE;
  }
  if (!g_uint64_checked_add (&start, g->data_offset, offset) ||
      !g_uint64_checked_add (&end, start, t->nbytes) || end > size) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: tensor '%s' data [offset %" G_GUINT64_FORMAT ", %"
        G_GUINT64_FORMAT " bytes] runs past the end of the file (%"
        G_GSIZE_FORMAT " bytes)" TRUNCATED ("offset"), g->name, t->name,
        offset, t->nbytes, size);
    return FALSE;
  }
  t->data = data + start;
  return TRUE;
}

static gboolean
parse_header (LlmGguf * g, Cursor * c, guint64 * n_tensors, guint64 * n_kv,
    GError ** error)
{
  if (c->size < 4 || memcmp (c->data, GGUF_MAGIC, 4) != 0) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: not a GGUF file (it does not start with \"GGUF\")", c->name);
    return FALSE;
  }
  c->off = 4;
  if (!read_u32 (c, &g->version, "the version", error))
    return FALSE;
  if (g->version != 2 && g->version != 3) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
        "%s: unsupported GGUF version %u (only 2 and 3 are read)", c->name,
        g->version);
    return FALSE;
  }
  if (!read_u64 (c, n_tensors, "the tensor count", error) ||
      !read_u64 (c, n_kv, "the metadata count", error))
    return FALSE;
  if (*n_kv > remaining (c) / GGUF_MIN_KV_BYTES) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: metadata count %" G_GUINT64_FORMAT " is more than the %"
        G_GSIZE_FORMAT " bytes left in the file can hold" TRUNCATED ("count"),
        c->name, *n_kv, remaining (c));
    return FALSE;
  }
  /* A first bound; checked again once the metadata is read. */
  if (*n_tensors > remaining (c) / GGUF_MIN_TENSOR_INFO_BYTES) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: tensor count %" G_GUINT64_FORMAT " is more than the %"
        G_GSIZE_FORMAT " bytes left in the file can hold" TRUNCATED ("count"),
        c->name, *n_tensors, remaining (c));
    return FALSE;
  }
  return TRUE;
}

static gboolean
parse (LlmGguf * g, GError ** error)
{
  gsize size;
  const guint8 *data = g_bytes_get_data (g->bytes, &size);
  Cursor c = { data, size, 0, g->name };
  guint64 n_tensors, n_kv;
  guint64 *offsets;
  gboolean ok = TRUE;

  if (data == NULL)             /* empty GBytes may have no data pointer */
    c.data = data = (const guint8 *) "";
  if (!parse_header (g, &c, &n_tensors, &n_kv, error))
    return FALSE;
  for (guint64 i = 0; i < n_kv; i++)
    if (!parse_kv (g, &c, error))
      return FALSE;
  if (!parse_alignment (g, g->name, error))
    return FALSE;

  if (n_tensors > remaining (&c) / GGUF_MIN_TENSOR_INFO_BYTES) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: tensor count %" G_GUINT64_FORMAT " is more than the %"
        G_GSIZE_FORMAT " bytes left in the file can hold" TRUNCATED ("count"),
        g->name, n_tensors, remaining (&c));
    return FALSE;
  }
  g->tensors = g_new0 (LlmTensor, n_tensors);
  offsets = g_new0 (guint64, n_tensors);
  for (guint64 i = 0; ok && i < n_tensors; i++) {
    g->n_tensors++;             /* so that free() sees its name */
    ok = parse_tensor_info (g, &c, &g->tensors[i], &offsets[i], error);
  }

  /* The data section starts at the next multiple of the alignment. */
  g->data_offset = c.off + (g->alignment - c.off % g->alignment) % g->alignment;
  for (guint i = 0; ok && i < g->n_tensors; i++)
    ok = place_tensor (g, data, size, &g->tensors[i], offsets[i], error);
  g_free (offsets);
  return ok && check_overlaps (g, error);
}

LlmGguf *
llm_gguf_open_bytes (GBytes * bytes, const gchar * name, GError ** error)
{
  LlmGguf *g;

  g_return_val_if_fail (bytes != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  g = g_new0 (LlmGguf, 1);
  g->name = g_strdup (name ? name : "(memory)");
  g->bytes = g_bytes_ref (bytes);
  g->kv = g_array_new (FALSE, TRUE, sizeof (GgufKv));
  g_array_set_clear_func (g->kv, kv_clear);
  g->kv_index = g_hash_table_new (g_str_hash, g_str_equal);
  g->tensor_index = g_hash_table_new (g_str_hash, g_str_equal);
  g->alignment = GGUF_DEFAULT_ALIGNMENT;

  if (!parse (g, error)) {
    llm_gguf_free (g);
    return NULL;
  }
  return g;
}

LlmGguf *
llm_gguf_open (const gchar * path, GError ** error)
{
  g_autoptr (GError) local = NULL;
  g_autoptr (GMappedFile) mf = NULL;
  g_autoptr (GBytes) bytes = NULL;

  g_return_val_if_fail (path != NULL, NULL);

  mf = g_mapped_file_new (path, FALSE, &local);
  if (mf == NULL) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_IO, "%s: cannot open: %s",
        path, local->message);
    return NULL;
  }
  bytes = g_mapped_file_get_bytes (mf);
  return llm_gguf_open_bytes (bytes, path, error);
}

void
llm_gguf_free (LlmGguf * g)
{
  if (g == NULL)
    return;
  for (guint i = 0; i < g->n_tensors; i++)
    g_free (g->tensors[i].name);
  g_free (g->tensors);
  g_hash_table_unref (g->tensor_index);
  g_hash_table_unref (g->kv_index);
  g_array_unref (g->kv);
  g_bytes_unref (g->bytes);
  g_free (g->name);
  g_free (g);
}

/* --- accessors ------------------------------------------------------------ */

guint32
llm_gguf_version (const LlmGguf * g)
{
  return g->version;
}

guint64
llm_gguf_alignment (const LlmGguf * g)
{
  return g->alignment;
}

guint
llm_gguf_n_kv (const LlmGguf * g)
{
  return g->kv->len;
}

static const GgufKv *
kv_at (const LlmGguf * g, guint i)
{
  g_return_val_if_fail (i < g->kv->len, NULL);
  return &g_array_index (g->kv, GgufKv, i);
}

const gchar *
llm_gguf_kv_key (const LlmGguf * g, guint i)
{
  const GgufKv *kv = kv_at (g, i);

  return kv ? kv->key : NULL;
}

LlmGgufType
llm_gguf_kv_type (const LlmGguf * g, guint i)
{
  const GgufKv *kv = kv_at (g, i);

  return kv ? kv->type : LLM_GGUF_TYPE_UINT8;
}

LlmGgufType
llm_gguf_kv_array_type (const LlmGguf * g, guint i)
{
  const GgufKv *kv = kv_at (g, i);

  return kv ? kv->elem_type : LLM_GGUF_TYPE_UINT8;
}

GVariant *
llm_gguf_kv_value (const LlmGguf * g, guint i)
{
  const GgufKv *kv = kv_at (g, i);

  return kv ? kv->value : NULL;
}

gint
llm_gguf_find_kv (const LlmGguf * g, const gchar * key)
{
  gpointer v = g_hash_table_lookup (g->kv_index, key);

  return v ? (gint) GPOINTER_TO_UINT (v) - 1 : -1;
}

static GVariant *
find_value (const LlmGguf * g, const gchar * key)
{
  gint i = llm_gguf_find_kv (g, key);

  return i < 0 ? NULL : g_array_index (g->kv, GgufKv, i).value;
}

gboolean
llm_gguf_get_uint (const LlmGguf * g, const gchar * key, guint64 * out)
{
  GVariant *v = find_value (g, key);
  gint64 s;

  if (v == NULL)
    return FALSE;
  switch (g_variant_classify (v)) {
    case G_VARIANT_CLASS_BYTE:
      *out = g_variant_get_byte (v);
      return TRUE;
    case G_VARIANT_CLASS_UINT16:
      *out = g_variant_get_uint16 (v);
      return TRUE;
    case G_VARIANT_CLASS_UINT32:
      *out = g_variant_get_uint32 (v);
      return TRUE;
    case G_VARIANT_CLASS_UINT64:
      *out = g_variant_get_uint64 (v);
      return TRUE;
    case G_VARIANT_CLASS_INT16:
      s = g_variant_get_int16 (v);
      break;
    case G_VARIANT_CLASS_INT32:
      s = g_variant_get_int32 (v);
      break;
    case G_VARIANT_CLASS_INT64:
      s = g_variant_get_int64 (v);
      break;
    default:
      return FALSE;
  }
  if (s < 0)
    return FALSE;
  *out = s;
  return TRUE;
}

gboolean
llm_gguf_get_float (const LlmGguf * g, const gchar * key, gdouble * out)
{
  GVariant *v = find_value (g, key);

  if (v == NULL || !g_variant_is_of_type (v, G_VARIANT_TYPE_DOUBLE))
    return FALSE;
  *out = g_variant_get_double (v);
  return TRUE;
}

gboolean
llm_gguf_get_bool (const LlmGguf * g, const gchar * key, gboolean * out)
{
  GVariant *v = find_value (g, key);

  if (v == NULL || !g_variant_is_of_type (v, G_VARIANT_TYPE_BOOLEAN))
    return FALSE;
  *out = g_variant_get_boolean (v);
  return TRUE;
}

const gchar *
llm_gguf_get_string (const LlmGguf * g, const gchar * key)
{
  GVariant *v = find_value (g, key);

  if (v == NULL || !g_variant_is_of_type (v, G_VARIANT_TYPE_STRING))
    return NULL;
  return g_variant_get_string (v, NULL);
}

guint
llm_gguf_n_tensors (const LlmGguf * g)
{
  return g->n_tensors;
}

const LlmTensor *
llm_gguf_tensor (const LlmGguf * g, guint i)
{
  g_return_val_if_fail (i < g->n_tensors, NULL);
  return &g->tensors[i];
}

const LlmTensor *
llm_gguf_find_tensor (const LlmGguf * g, const gchar * name)
{
  return g_hash_table_lookup (g->tensor_index, name);
}

const gchar *
llm_gguf_name (const LlmGguf * g)
{
  return g->name;
}

guint64
llm_gguf_data_offset (const LlmGguf * g)
{
  return g->data_offset;
}
