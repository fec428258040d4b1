/* LLMasOS - a view of one tensor inside a model file or a buffer.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include "llm-dtype.h"

G_BEGIN_DECLS

#define LLM_MAX_DIMS 4

/**
 * LlmTensor:
 *
 * A tensor view. Dimensions are in GGML order: ne[0] is the innermost
 * (contiguous) dimension, so a weight matrix of `rows` outputs and `cols`
 * inputs has ne[0] = cols and ne[1] = rows, each row stored contiguously as
 * whole blocks of its dtype.
 */
typedef struct {
  gchar *name;                  /* owned by the container that made the view */
  LlmDType dtype;               /* element type (GGML numbering) */
  guint n_dims;                 /* 1..LLM_MAX_DIMS */
  guint64 ne[LLM_MAX_DIMS];     /* elements per dimension, unused ones are 1 */
  const guint8 *data;           /* first byte; mapped file or owned memory */
  guint64 nbytes;               /* bytes the data spans */
} LlmTensor;

/* Number of elements (product of ne). */
static inline guint64
llm_tensor_n_elements (const LlmTensor * t)
{
  guint64 n = 1;
  for (guint i = 0; i < t->n_dims; i++)
    n *= t->ne[i];
  return n;
}

G_END_DECLS
