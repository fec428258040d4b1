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
 * INT32 'i', FLOAT32 'd' (widened), BOOL 'b', STRING 's' (bytes as stored,
 * checked to be valid UTF-8 ... or 'ay' if not), UINT64 't', INT64 'x',
 * FLOAT64 'd'; ARRAY 'a<elem>' of those, arrays of arrays 'av'. The original
 * GGUF type of every value is kept beside it (llm_gguf_kv_type). */

typedef struct _LlmGguf LlmGguf;

/* Maps @path (GMappedFile) and parses header, metadata and tensor infos,
 * checking every count, length, offset and alignment against the file. */
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

/* Writer: collects metadata and tensors, writes GGUF v3 with 32-byte
 * alignment (or general.alignment if set). */
typedef struct _LlmGgufWriter LlmGgufWriter;

LlmGgufWriter *llm_gguf_writer_new (void);
void llm_gguf_writer_free (LlmGgufWriter * w);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (LlmGgufWriter, llm_gguf_writer_free)
/* @value of the GVariant type listed above for @type (floating refs sunk);
 * for ARRAY, @elem_type gives the element type. */
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
gboolean llm_gguf_writer_write (LlmGgufWriter * w, const gchar * path,
    GError ** error);

G_END_DECLS
