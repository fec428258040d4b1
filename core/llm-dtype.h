/* LLMasOS - element types, half floats and block quantization formats.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Values are GGML's type numbers so GGUF tensor infos map directly. */
typedef enum {
  LLM_DTYPE_F32 = 0,
  LLM_DTYPE_F16 = 1,
  LLM_DTYPE_Q4_0 = 2,
  LLM_DTYPE_Q4_1 = 3,
  LLM_DTYPE_Q5_0 = 6,
  LLM_DTYPE_Q5_1 = 7,
  LLM_DTYPE_Q8_0 = 8,
  LLM_DTYPE_Q8_1 = 9,
  LLM_DTYPE_Q2_K = 10,
  LLM_DTYPE_Q3_K = 11,
  LLM_DTYPE_Q4_K = 12,
  LLM_DTYPE_Q5_K = 13,
  LLM_DTYPE_Q6_K = 14,
  LLM_DTYPE_Q8_K = 15,
  LLM_DTYPE_I8 = 24,
  LLM_DTYPE_I16 = 25,
  LLM_DTYPE_I32 = 26,
  LLM_DTYPE_I64 = 27,
  LLM_DTYPE_F64 = 28,
  LLM_DTYPE_BF16 = 30,
  LLM_DTYPE_UNKNOWN = -1
} LlmDType;

#define LLM_QK8_0 32
#define LLM_QK4_0 32

/* Q8_0: 32 weights = fp16 scale d + 32 int8; w = d * q */
typedef struct {
  guint16 d;                    /* scale, IEEE half */
  gint8 qs[LLM_QK8_0];          /* quants */
} LlmBlockQ8_0;
G_STATIC_ASSERT (sizeof (LlmBlockQ8_0) == 2 + LLM_QK8_0);

/* Q4_0: 32 weights = fp16 scale d + 16 bytes of nibbles; w = d * (q - 8).
 * Byte j holds weight j in its low nibble and weight j + 16 in its high one. */
typedef struct {
  guint16 d;                    /* scale, IEEE half */
  guint8 qs[LLM_QK4_0 / 2];     /* nibbles */
} LlmBlockQ4_0;
G_STATIC_ASSERT (sizeof (LlmBlockQ4_0) == 2 + LLM_QK4_0 / 2);

/* Name as GGUF/llama.cpp spell it ("F32", "Q4_0", ...), or NULL if unknown. */
const gchar *llm_dtype_name (LlmDType t);
/* Parse a name ("f16", "Q8_0", case-insensitive); LLM_DTYPE_UNKNOWN if none. */
LlmDType llm_dtype_from_name (const gchar * name);
/* TRUE if @t is a GGML type number this build knows the layout of. */
gboolean llm_dtype_is_known (gint64 t);
/* Elements per block (1 for plain types) and bytes per block. 0 if unknown. */
guint llm_dtype_block_elems (LlmDType t);
guint llm_dtype_block_bytes (LlmDType t);
/* Bytes of @n elements; FALSE if @n is not a whole number of blocks or the
 * size overflows. */
gboolean llm_dtype_bytes_for (LlmDType t, guint64 n, guint64 * out_bytes);
/* TRUE if this build can dequantize / compute with rows of @t. */
gboolean llm_dtype_can_compute (LlmDType t);

float llm_f16_to_f32 (guint16 h);
guint16 llm_f32_to_f16 (float f);        /* round to nearest even */
float llm_bf16_to_f32 (guint16 h);
guint16 llm_f32_to_bf16 (float f);       /* round to nearest even, NaN kept */

/* Row conversions; @n must be a multiple of the block size. Quantizing is
 * for F32, F16, BF16, Q8_0 and Q4_0; the other computable types (Q5_0, the
 * k-quants) are only dequantized. */
void llm_dequantize_row (LlmDType t, const void *src, float *dst, gsize n);
void llm_quantize_row (LlmDType t, const float *src, void *dst, gsize n);
/* Dot product of one stored row of @t with an f32 vector, on the packed data. */
float llm_dot_row (LlmDType t, const void *row, const float *x, gsize n);

G_END_DECLS
