/* LLMasOS - Hugging Face safetensors reader.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include "llm-tensor.h"

G_BEGIN_DECLS

typedef struct _LlmSafetensors LlmSafetensors;

/* Maps @path, parses the JSON header with json-glib, and checks every
 * tensor's dtype, shape and data_offsets against the file: offsets inside
 * the data area, sizes equal to shape x dtype, no overlaps. F32, F16 and
 * BF16 tensors (others: LLM_ERROR_UNSUPPORTED naming the tensor). Shapes are
 * reversed into GGML order (ne[0] innermost); a scalar (shape []) has
 * ne {1}; empty dimensions and more than 4 are LLM_ERROR_UNSUPPORTED.
 * "__metadata__" is skipped. Tensors keep the header's order. If the data
 * area is not 8-byte aligned (a header length that is not a multiple of
 * 8), it is copied once so that tensor data can be read as floats; a
 * tensor whose offset in it is not a multiple of its element size is
 * copied alone. */
LlmSafetensors *llm_safetensors_open (const gchar * path, GError ** error);
LlmSafetensors *llm_safetensors_open_bytes (GBytes * bytes,
    const gchar * name, GError ** error);
void llm_safetensors_free (LlmSafetensors * st);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (LlmSafetensors, llm_safetensors_free)

guint llm_safetensors_n_tensors (const LlmSafetensors * st);
const LlmTensor *llm_safetensors_tensor (const LlmSafetensors * st, guint i);
const LlmTensor *llm_safetensors_find (const LlmSafetensors * st,
    const gchar * name);

G_END_DECLS
