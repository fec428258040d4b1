/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-meta.h"

#include <string.h>

GType
llm_seq_meta_api_get_type (void)
{
  static GType type = 0;
  static const gchar *tags[] = { NULL };

  if (g_once_init_enter (&type)) {
    GType t = gst_meta_api_type_register ("LlmSeqMetaAPI", tags);
    g_once_init_leave (&type, t);
  }
  return type;
}

static gboolean
seq_meta_init (GstMeta * meta, gpointer params, GstBuffer * buffer)
{
  ((LlmSeqMeta *) meta)->n_rows = 0;
  return TRUE;
}

static gboolean
seq_meta_transform (GstBuffer * dest, GstMeta * meta, GstBuffer * buffer,
    GQuark type, gpointer data)
{
  LlmSeqMeta *src = (LlmSeqMeta *) meta, *dst;

  /* The rows describe the whole buffer: copy them on copies only. */
  if (!GST_META_TRANSFORM_IS_COPY (type))
    return FALSE;
  dst = llm_buffer_add_seq_meta (dest);
  dst->n_rows = src->n_rows;
  memcpy (dst->rows, src->rows, sizeof (LlmSeqRow) * src->n_rows);
  return TRUE;
}

const GstMetaInfo *
llm_seq_meta_get_info (void)
{
  static const GstMetaInfo *info = NULL;

  if (g_once_init_enter ((GstMetaInfo **) & info)) {
    const GstMetaInfo *mi = gst_meta_register (LLM_SEQ_META_API_TYPE,
        "LlmSeqMeta", sizeof (LlmSeqMeta), seq_meta_init, NULL,
        seq_meta_transform);
    g_once_init_leave ((GstMetaInfo **) & info, (GstMetaInfo *) mi);
  }
  return info;
}

LlmSeqMeta *
llm_buffer_add_seq_meta (GstBuffer * buffer)
{
  return (LlmSeqMeta *) gst_buffer_add_meta (buffer, LLM_SEQ_META_INFO, NULL);
}

gboolean
llm_seq_meta_add_row (LlmSeqMeta * meta, guint64 seq_id, guint32 position,
    guint32 n_tokens)
{
  LlmSeqRow *row;

  if (meta->n_rows >= LLM_MAX_BATCH)
    return FALSE;
  row = &meta->rows[meta->n_rows++];
  row->seq_id = seq_id;
  row->position = position;
  row->n_tokens = n_tokens;
  return TRUE;
}
