/* LLMasOS - Hugging Face safetensors reader.
 *
 * Layout: a little-endian u64 N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [rows, cols],
 *           "data_offsets": [begin, end]}, ..., "__metadata__": {...}},
 * then the data area; offsets are relative to its start.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-safetensors.h"
#include "llm-error.h"

#include <string.h>
#include <json-glib/json-glib.h>

/* The reference implementation refuses headers above 100 MB. */
#define ST_MAX_HEADER (100 * 1024 * 1024)

/* The tail of the messages for data that ends too soon: the commonest
 * cause is a download that stopped early, so say so. */
#define TRUNCATED(what) ": the file is truncated, or " what " corrupt"

struct _LlmSafetensors
{
  gchar *name;                  /* for messages */
  GBytes *bytes;                /* keeps the mapping alive */
  guint8 *aligned_copy;         /* data area copy, when it was misaligned */
  GPtrArray *tensor_copies;     /* copies of tensors whose offset in the
                                 * area is misaligned for their dtype */
  GArray *tensors;              /* LlmTensor */
  GHashTable *index;            /* name -> index + 1 */
};

typedef struct
{
  const gchar *name;
  LlmDType dtype;
  guint elem_size;
} StDType;

static const StDType st_dtypes[] = {
  {"F32", LLM_DTYPE_F32, 4},
  {"F16", LLM_DTYPE_F16, 2},
  {"BF16", LLM_DTYPE_BF16, 2},
};

static const StDType *
find_dtype (const gchar * name)
{
  for (guint i = 0; i < G_N_ELEMENTS (st_dtypes); i++)
    if (strcmp (st_dtypes[i].name, name) == 0)
      return &st_dtypes[i];
  return NULL;
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

/* A non-negative JSON integer. */
static gboolean
node_get_u64 (JsonNode * node, guint64 * out)
{
  gint64 v;

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) ||
      json_node_get_value_type (node) != G_TYPE_INT64)
    return FALSE;
  v = json_node_get_int (node);
  if (v < 0)
    return FALSE;
  *out = v;
  return TRUE;
}

static gboolean
parse_shape (LlmSafetensors * st, const gchar * tname, JsonNode * node,
    LlmTensor * t, guint64 * n_elements, GError ** error)
{
  JsonArray *shape;
  guint n;

  if (node == NULL || !JSON_NODE_HOLDS_ARRAY (node)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: tensor '%s' has no \"shape\" array", st->name, tname);
    return FALSE;
  }
  shape = json_node_get_array (node);
  n = json_array_get_length (shape);
  if (n > LLM_MAX_DIMS) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
        "%s: tensor '%s' has %u dimensions (at most %d)", st->name, tname, n,
        LLM_MAX_DIMS);
    return FALSE;
  }

  /* A scalar (shape []) is one element. */
  t->n_dims = MAX (n, 1);
  for (guint d = 0; d < LLM_MAX_DIMS; d++)
    t->ne[d] = 1;
  *n_elements = 1;
  for (guint d = 0; d < n; d++) {
    guint64 v;

    if (!node_get_u64 (json_array_get_element (shape, d), &v)) {
      g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
          "%s: tensor '%s' shape entry %u is not a non-negative integer",
          st->name, tname, d);
      return FALSE;
    }
    if (v == 0) {
      g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
          "%s: tensor '%s' has an empty dimension (shape entry %u is 0)",
          st->name, tname, d);
      return FALSE;
    }
    if (!g_uint64_checked_mul (n_elements, *n_elements, v)) {
      g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
          "%s: tensor '%s' shape overflows", st->name, tname);
      return FALSE;
    }
    /* safetensors lists the outermost dimension first; GGML the innermost */
    t->ne[n - 1 - d] = v;
  }
  return TRUE;
}

static gboolean
parse_offsets (LlmSafetensors * st, const gchar * tname, JsonNode * node,
    guint64 * begin, guint64 * end, GError ** error)
{
  JsonArray *a;

  if (node == NULL || !JSON_NODE_HOLDS_ARRAY (node) ||
      json_array_get_length (a = json_node_get_array (node)) != 2 ||
      !node_get_u64 (json_array_get_element (a, 0), begin) ||
      !node_get_u64 (json_array_get_element (a, 1), end)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: tensor '%s' needs \"data_offsets\" [begin, end] of two "
        "non-negative integers", st->name, tname);
    return FALSE;
  }
  return TRUE;
}

static gboolean
parse_tensor (LlmSafetensors * st, const gchar * tname, JsonNode * node,
    const guint8 * area, guint64 area_size, GError ** error)
{
  JsonObject *o;
  const gchar *dtype_name;
  const StDType *dt;
  LlmTensor t = { 0 };
  guint64 n, begin, end, nbytes;

  if (!JSON_NODE_HOLDS_OBJECT (node)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: header entry '%s' is not an object", st->name, tname);
    return FALSE;
  }
  o = json_node_get_object (node);
  dtype_name = json_string (o, "dtype");
  if (dtype_name == NULL) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: tensor '%s' has no \"dtype\" string", st->name, tname);
    return FALSE;
  }
  dt = find_dtype (dtype_name);
  if (dt == NULL) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
        "%s: tensor '%s' has dtype %s (only F32, F16 and BF16 are read)",
        st->name, tname, dtype_name);
    return FALSE;
  }
  t.dtype = dt->dtype;
  if (!parse_shape (st, tname, json_object_get_member (o, "shape"), &t, &n,
          error) ||
      !parse_offsets (st, tname, json_object_get_member (o, "data_offsets"),
          &begin, &end, error))
    return FALSE;

  if (begin > end || end > area_size) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: tensor '%s' data_offsets [%" G_GUINT64_FORMAT ", %"
        G_GUINT64_FORMAT "] lie outside the data area (%" G_GUINT64_FORMAT
        " bytes)%s", st->name, tname, begin, end, area_size,
        begin > end ? "" : TRUNCATED ("the offsets are"));
    return FALSE;
  }
  if (!g_uint64_checked_mul (&nbytes, n, dt->elem_size) ||
      end - begin != nbytes) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: tensor '%s' data_offsets [%" G_GUINT64_FORMAT ", %"
        G_GUINT64_FORMAT "] span %" G_GUINT64_FORMAT " bytes but its shape "
        "and dtype %s need %" G_GUINT64_FORMAT " elements x %u bytes",
        st->name, tname, begin, end, end - begin, dtype_name, n, dt->elem_size);
    return FALSE;
  }

  t.name = g_strdup (tname);
  t.data = area + begin;
  t.nbytes = nbytes;
  g_array_append_val (st->tensors, t);
  g_hash_table_insert (st->index, t.name, GUINT_TO_POINTER (st->tensors->len));
  return TRUE;
}

static gint
compare_by_data (gconstpointer a, gconstpointer b)
{
  const LlmTensor *const *x = a, *const *y = b;

  return (*x)->data < (*y)->data ? -1 : (*x)->data > (*y)->data;
}

static gboolean
check_overlaps (LlmSafetensors * st, GError ** error)
{
  g_autoptr (GPtrArray) sorted = g_ptr_array_new ();

  for (guint i = 0; i < st->tensors->len; i++)
    g_ptr_array_add (sorted, &g_array_index (st->tensors, LlmTensor, i));
  g_ptr_array_sort (sorted, compare_by_data);
  for (guint i = 1; i < sorted->len; i++) {
    const LlmTensor *p = sorted->pdata[i - 1], *t = sorted->pdata[i];

    if (p->data + p->nbytes > t->data) {
      g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
          "%s: the data of tensors '%s' and '%s' overlap", st->name, p->name,
          t->name);
      return FALSE;
    }
  }
  return TRUE;
}

/* Tensor data is read through typed pointers; if the data area is not
 * aligned for them (a header length that is not a multiple of 8 can do
 * that), work on an aligned copy of it. */
static const guint8 *
aligned_area (LlmSafetensors * st, const guint8 * area, gsize area_size)
{
  if (GPOINTER_TO_SIZE (area) % 8 == 0)
    return area;
  st->aligned_copy = g_memdup2 (area, area_size);
  return st->aligned_copy;
}

/* The format does not align tensors within the data area: one whose
 * offset is not a multiple of its element size (an F16 tensor at an odd
 * offset) is read from an aligned copy of its own. */
static void
align_tensors (LlmSafetensors * st)
{
  for (guint i = 0; i < st->tensors->len; i++) {
    LlmTensor *t = &g_array_index (st->tensors, LlmTensor, i);
    guint8 *copy;

    if (GPOINTER_TO_SIZE (t->data) % 8 == 0 ||
        GPOINTER_TO_SIZE (t->data) % llm_dtype_block_bytes (t->dtype) == 0)
      continue;
    copy = g_memdup2 (t->data, t->nbytes);
    g_ptr_array_add (st->tensor_copies, copy);
    t->data = copy;
  }
}

typedef struct
{
  LlmSafetensors *st;
  const guint8 *area;
  guint64 area_size;
  GError **error;
  gboolean ok;
} ParseCtx;

static void
parse_member (JsonObject * o, const gchar * member, JsonNode * node,
    gpointer user_data)
{
  ParseCtx *ctx = user_data;

  if (!ctx->ok || strcmp (member, "__metadata__") == 0)
    return;
  ctx->ok = parse_tensor (ctx->st, member, node, ctx->area, ctx->area_size,
      ctx->error);
}

static gboolean
parse_header_json (LlmSafetensors * st, const gchar * json, gsize len,
    const guint8 * area, guint64 area_size, GError ** error)
{
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  g_autoptr (GError) local = NULL;
  ParseCtx ctx = { st, area, area_size, error, TRUE };
  JsonNode *root;

  if (!json_parser_load_from_data (parser, json, len, &local)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: the JSON header does not parse: %s", st->name, local->message);
    return FALSE;
  }
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: the JSON header is not an object", st->name);
    return FALSE;
  }
  /* in file order, so tensors keep the order of the header */
  json_object_foreach_member (json_node_get_object (root), parse_member, &ctx);
  if (!ctx.ok || !check_overlaps (st, error))
    return FALSE;
  align_tensors (st);
  return TRUE;
}

static gboolean
parse (LlmSafetensors * st, GError ** error)
{
  gsize size;
  const guint8 *data = g_bytes_get_data (st->bytes, &size);
  guint64 hlen;
  g_autofree gchar *json = NULL;

  if (size < 8) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: truncated: %" G_GSIZE_FORMAT " bytes is too short for a "
        "safetensors file (8-byte header length)", st->name, size);
    return FALSE;
  }
  memcpy (&hlen, data, 8);
  hlen = GUINT64_FROM_LE (hlen);
  if (hlen > size - 8) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: header length %" G_GUINT64_FORMAT " does not fit the file (%"
        G_GSIZE_FORMAT " bytes)" TRUNCATED ("the length is"), st->name, hlen,
        size);
    return FALSE;
  }
  if (hlen < 2 || hlen > ST_MAX_HEADER) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: header length %" G_GUINT64_FORMAT " is not between 2 and %d",
        st->name, hlen, ST_MAX_HEADER);
    return FALSE;
  }
  /* json-glib wants the length, not a terminator; copy anyway so that an
   * embedded NUL cannot end the text early without notice. */
  json = g_strndup ((const gchar *) data + 8, hlen);
  if (strlen (json) != hlen) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: the JSON header holds a NUL byte", st->name);
    return FALSE;
  }
  return parse_header_json (st, json, hlen,
      aligned_area (st, data + 8 + hlen, size - 8 - hlen), size - 8 - hlen,
      error);
}

LlmSafetensors *
llm_safetensors_open_bytes (GBytes * bytes, const gchar * name, GError ** error)
{
  LlmSafetensors *st;

  g_return_val_if_fail (bytes != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  st = g_new0 (LlmSafetensors, 1);
  st->name = g_strdup (name ? name : "(memory)");
  st->bytes = g_bytes_ref (bytes);
  st->tensors = g_array_new (FALSE, TRUE, sizeof (LlmTensor));
  st->index = g_hash_table_new (g_str_hash, g_str_equal);
  st->tensor_copies = g_ptr_array_new_with_free_func (g_free);
  if (!parse (st, error)) {
    llm_safetensors_free (st);
    return NULL;
  }
  return st;
}

LlmSafetensors *
llm_safetensors_open (const gchar * path, GError ** error)
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
  return llm_safetensors_open_bytes (bytes, path, error);
}

void
llm_safetensors_free (LlmSafetensors * st)
{
  if (st == NULL)
    return;
  for (guint i = 0; i < st->tensors->len; i++)
    g_free (g_array_index (st->tensors, LlmTensor, i).name);
  g_array_unref (st->tensors);
  g_hash_table_unref (st->index);
  g_free (st->aligned_copy);
  g_ptr_array_unref (st->tensor_copies);
  g_bytes_unref (st->bytes);
  g_free (st->name);
  g_free (st);
}

guint
llm_safetensors_n_tensors (const LlmSafetensors * st)
{
  return st->tensors->len;
}

const LlmTensor *
llm_safetensors_tensor (const LlmSafetensors * st, guint i)
{
  g_return_val_if_fail (i < st->tensors->len, NULL);
  return &g_array_index (st->tensors, LlmTensor, i);
}

const LlmTensor *
llm_safetensors_find (const LlmSafetensors * st, const gchar * name)
{
  gpointer v = g_hash_table_lookup (st->index, name);

  return v ? &g_array_index (st->tensors, LlmTensor, GPOINTER_TO_UINT (v) - 1)
      : NULL;
}
