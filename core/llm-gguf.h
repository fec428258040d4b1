/* LLMasOS - GGUF v2/v3 reader and writer.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include "llm-tensor.h"

G_BEGIN_DECLS

/* GGUF metadata value types (the numbers of the file format). */
typedef enum {
  LLM_GGUF_TYPE_UINT8 = 0,
  LLM_GGUF_TYPE_INT8 = 1,
  LLM_GGUF_TYPE_UINT16 = 2,
  LLM_GGUF_TYPE_INT16 = 3,
  LLM_GGUF_TYPE_UINT32 = 4,
  LLM_GGUF_TYPE_INT32 = 5,
  LLM_GGUF_TYPE_FLOAT32 = 6,
  LLM_GGUF_TYPE_BOOL = 7,
  LLM_GGUF_TYPE_STRING = 8,
  LLM_GGUF_TYPE_ARRAY = 9,
  LLM_GGUF_TYPE_UINT64 = 10,
  LLM_GGUF_TYPE_INT64 = 11,
  LLM_GGUF_TYPE_FLOAT64 = 12,
} LlmGgufType;

/* Metadata values are GVariants of these types:
 * UINT8 'y', INT8 'n' (widened), UINT16 'q', INT16 'n', UINT32 'u',
 * INT32 'i', FLOAT32 'd' (widened), BOOL 'b' (any non-zero byte is TRUE),
 * STRING 's' when the bytes are valid UTF-8 without NUL bytes, else the
 * bytes as stored as 'ay' (nothing is replaced or lost), UINT64 't',
 * INT64 'x', FLOAT64 'd'; ARRAY 'a<elem>' of those: an array of strings is
 * 'as', or 'aay' as a whole if any of its strings is not valid UTF-8, so
 * that all elements have one type. Arrays of arrays are 'av', each 'v'
 * holding the inner array as above (nested up to 16 levels). The original
 * GGUF type of every value is kept beside it (llm_gguf_kv_type, and
 * llm_gguf_kv_array_type for a top-level array's elements). */

typedef struct _LlmGguf LlmGguf;

/* Maps @path (GMappedFile) and parses header, metadata and tensor infos,
 * checking every count, length, offset and alignment against the file,
 * and that no two tensors share bytes. */
LlmGguf *llm_gguf_open (const gchar * path, GError ** error);
/* Same over bytes in memory (fuzzing, tests). @name is used in messages. */
LlmGguf *llm_gguf_open_bytes (GBytes * bytes, const gchar * name,
    GError ** error);
void llm_gguf_free (LlmGguf * gguf);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (LlmGguf, llm_gguf_free)

guint32 llm_gguf_version (const LlmGguf * gguf);
guint64 llm_gguf_alignment (const LlmGguf * gguf);

guint llm_gguf_n_kv (const LlmGguf * gguf);
const gchar *llm_gguf_kv_key (const LlmGguf * gguf, guint i);
LlmGgufType llm_gguf_kv_type (const LlmGguf * gguf, guint i);
/* For ARRAY values: the element type. */
LlmGgufType llm_gguf_kv_array_type (const LlmGguf * gguf, guint i);
GVariant *llm_gguf_kv_value (const LlmGguf * gguf, guint i);     /* transfer none */
/* Index of @key or -1. */
gint llm_gguf_find_kv (const LlmGguf * gguf, const gchar * key);

/* Typed getters; FALSE if absent or of a type that does not convert
 * (any integer type converts to guint64 if non-negative; float32/64 to
 * double). */
gboolean llm_gguf_get_uint (const LlmGguf * gguf, const gchar * key,
    guint64 * out);
gboolean llm_gguf_get_float (const LlmGguf * gguf, const gchar * key,
    gdouble * out);
gboolean llm_gguf_get_bool (const LlmGguf * gguf, const gchar * key,
    gboolean * out);
const gchar *llm_gguf_get_string (const LlmGguf * gguf, const gchar * key);

guint llm_gguf_n_tensors (const LlmGguf * gguf);
const LlmTensor *llm_gguf_tensor (const LlmGguf * gguf, guint i);
const LlmTensor *llm_gguf_find_tensor (const LlmGguf * gguf,
    const gchar * name);
/* The name given at open (the path), for messages. */
const gchar *llm_gguf_name (const LlmGguf * gguf);
/* File offset of the tensor data section. */
guint64 llm_gguf_data_offset (const LlmGguf * gguf);

/* Writer: collects metadata and tensors, writes GGUF v3 with 32-byte
 * alignment (or general.alignment if set). */
typedef struct _LlmGgufWriter LlmGgufWriter;

LlmGgufWriter *llm_gguf_writer_new (void);
void llm_gguf_writer_free (LlmGgufWriter * w);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (LlmGgufWriter, llm_gguf_writer_free)
/* @value of the GVariant type listed above for @type (floating refs sunk);
 * for ARRAY, @elem_type gives the element type; STRING takes 's' or 'ay'.
 * For arrays of arrays ('av') the inner element types follow from the
 * inner GVariant types: 'y' UINT8, 'n' INT16, 'q' UINT16, 'u' UINT32,
 * 'i' INT32, 'd' FLOAT64, 'b' BOOL, 't' UINT64, 'x' INT64, 's'/'ay'
 * STRING, 'v' ARRAY (so int8 and float32 inside nested arrays come back
 * widened; their values are kept). A value that does not fit @type is a
 * programming error (g_critical). Adding a key again replaces its value. */
void llm_gguf_writer_add_kv (LlmGgufWriter * w, const gchar * key,
    LlmGgufType type, LlmGgufType elem_type, GVariant * value);
void llm_gguf_writer_add_uint32 (LlmGgufWriter * w, const gchar * key,
    guint32 v);
void llm_gguf_writer_add_int32 (LlmGgufWriter * w, const gchar * key,
    gint32 v);
void llm_gguf_writer_add_float32 (LlmGgufWriter * w, const gchar * key,
    float v);
void llm_gguf_writer_add_bool (LlmGgufWriter * w, const gchar * key,
    gboolean v);
void llm_gguf_writer_add_string (LlmGgufWriter * w, const gchar * key,
    const gchar * v);
void llm_gguf_writer_add_string_array (LlmGgufWriter * w, const gchar * key,
    const gchar * const *v, guint n);
void llm_gguf_writer_add_float32_array (LlmGgufWriter * w,
    const gchar * key, const float *v, guint n);
void llm_gguf_writer_add_int32_array (LlmGgufWriter * w, const gchar * key,
    const gint32 * v, guint n);
/* @data holds the tensor's bytes in @dtype (its size is checked). */
gboolean llm_gguf_writer_add_tensor (LlmGgufWriter * w, const gchar * name,
    LlmDType dtype, guint n_dims, const guint64 * ne, GBytes * data,
    GError ** error);
/* Fills @dst with the @nbytes bytes of one tensor, at write time. */
typedef gboolean (*LlmGgufTensorFillFunc) (guint8 * dst, guint64 nbytes,
    gpointer user_data, GError ** error);
/* Like llm_gguf_writer_add_tensor, but the data is produced by @fill while
 * the file is written, one tensor in memory at a time. @destroy is called
 * on @user_data when the writer is freed (or at once on error). */
gboolean llm_gguf_writer_add_tensor_func (LlmGgufWriter * w,
    const gchar * name, LlmDType dtype, guint n_dims, const guint64 * ne,
    LlmGgufTensorFillFunc fill, gpointer user_data, GDestroyNotify destroy,
    GError ** error);
/* Writes to @path + ".partial", then renames it to @path. */
gboolean llm_gguf_writer_write (LlmGgufWriter * w, const gchar * path,
    GError ** error);
/* The whole file in memory (tests, small files). */
GBytes *llm_gguf_writer_to_bytes (LlmGgufWriter * w, GError ** error);

G_END_DECLS
