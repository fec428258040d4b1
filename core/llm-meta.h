/* LLMasOS - the meta that names the sequence(s) a buffer belongs to.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

/* Most rows (sequences) one buffer may carry. */
#define LLM_MAX_BATCH 64

typedef struct {
  guint64 seq_id;               /* sequence the row belongs to */
  guint32 position;             /* position in the sequence of the row's
                                 * first token (tokens), or of the token the
                                 * row predicts (logits, state) */
  guint32 n_tokens;             /* tokens in the row (tokens buffers) */
} LlmSeqRow;

typedef struct {
  GstMeta meta;
  guint n_rows;
  LlmSeqRow rows[LLM_MAX_BATCH];
} LlmSeqMeta;

GType llm_seq_meta_api_get_type (void);
#define LLM_SEQ_META_API_TYPE (llm_seq_meta_api_get_type ())
const GstMetaInfo *llm_seq_meta_get_info (void);
#define LLM_SEQ_META_INFO (llm_seq_meta_get_info ())

#define llm_buffer_get_seq_meta(b) \
  ((LlmSeqMeta *) gst_buffer_get_meta ((b), LLM_SEQ_META_API_TYPE))

/* Adds an empty meta (n_rows 0) to @buffer. */
LlmSeqMeta *llm_buffer_add_seq_meta (GstBuffer * buffer);
/* Appends a row; FALSE if the meta is full. */
gboolean llm_seq_meta_add_row (LlmSeqMeta * meta, guint64 seq_id,
    guint32 position, guint32 n_tokens);

G_END_DECLS
