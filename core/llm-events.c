/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-events.h"

gboolean
llm_event_is (GstEvent * event, const gchar * name)
{
  const GstStructure *s = gst_event_get_structure (event);

  return s != NULL && gst_structure_has_name (s, name);
}

/* Rows travel as one byte array per field: a step may carry LLM_MAX_BATCH
 * rows, and GBytes costs one allocation where a GstValueArray costs one per
 * row. */
GstEvent *
llm_event_new_token (guint n, const guint64 * seq_ids, const gint32 * tokens)
{
  GBytes *ids = g_bytes_new (seq_ids, n * sizeof (guint64));
  GBytes *toks = g_bytes_new (tokens, n * sizeof (gint32));
  GstStructure *s = gst_structure_new (LLM_EVENT_TOKEN,
      "n", G_TYPE_UINT, n,
      "seq-ids", G_TYPE_BYTES, ids, "tokens", G_TYPE_BYTES, toks, NULL);

  g_bytes_unref (ids);
  g_bytes_unref (toks);
  return gst_event_new_custom (GST_EVENT_CUSTOM_UPSTREAM, s);
}

guint
llm_event_parse_token (GstEvent * event, guint max, guint64 * seq_ids,
    gint32 * tokens)
{
  const GstStructure *s;
  GBytes *ids = NULL, *toks = NULL;
  guint n = 0;
  gsize ids_len, toks_len;
  const guint64 *pi;
  const gint32 *pt;

  if (!llm_event_is (event, LLM_EVENT_TOKEN))
    return 0;
  s = gst_event_get_structure (event);
  if (!gst_structure_get (s, "n", G_TYPE_UINT, &n, "seq-ids", G_TYPE_BYTES,
          &ids, "tokens", G_TYPE_BYTES, &toks, NULL))
    return 0;
  pi = g_bytes_get_data (ids, &ids_len);
  pt = g_bytes_get_data (toks, &toks_len);
  if (ids_len != n * sizeof (guint64) || toks_len != n * sizeof (gint32))
    n = 0;
  for (guint i = 0; i < n && i < max; i++) {
    seq_ids[i] = pi[i];
    tokens[i] = pt[i];
  }
  g_bytes_unref (ids);
  g_bytes_unref (toks);
  return MIN (n, max);
}

GstEvent *
llm_event_new_sequence_stop (guint64 seq_id)
{
  return gst_event_new_custom (GST_EVENT_CUSTOM_UPSTREAM,
      gst_structure_new (LLM_EVENT_SEQUENCE_STOP,
          "seq-id", G_TYPE_UINT64, seq_id, NULL));
}

gboolean
llm_event_parse_sequence_stop (GstEvent * event, guint64 * seq_id)
{
  return llm_event_is (event, LLM_EVENT_SEQUENCE_STOP) &&
      gst_structure_get_uint64 (gst_event_get_structure (event), "seq-id",
      seq_id);
}

GstEvent *
llm_event_new_sequence_start (guint64 seq_id, guint n_prompt,
    gboolean prompt_has_text)
{
  return gst_event_new_custom (GST_EVENT_CUSTOM_DOWNSTREAM,
      gst_structure_new (LLM_EVENT_SEQUENCE_START,
          "seq-id", G_TYPE_UINT64, seq_id,
          "n-prompt", G_TYPE_UINT, n_prompt,
          "prompt-has-text", G_TYPE_BOOLEAN, prompt_has_text, NULL));
}

gboolean
llm_event_parse_sequence_start (GstEvent * event, guint64 * seq_id,
    guint * n_prompt, gboolean * prompt_has_text)
{
  return llm_event_is (event, LLM_EVENT_SEQUENCE_START) &&
      gst_structure_get (gst_event_get_structure (event),
      "seq-id", G_TYPE_UINT64, seq_id, "n-prompt", G_TYPE_UINT, n_prompt,
      "prompt-has-text", G_TYPE_BOOLEAN, prompt_has_text, NULL);
}

void
llm_event_sequence_start_set_keep (GstEvent * event, gboolean keep)
{
  gst_structure_set (gst_event_writable_structure (event), "keep",
      G_TYPE_BOOLEAN, keep, NULL);
}

gboolean
llm_event_sequence_start_get_keep (GstEvent * event)
{
  gboolean keep = FALSE;

  return gst_structure_get_boolean (gst_event_get_structure (event), "keep",
      &keep) && keep;
}

GstEvent *
llm_event_new_sequence_end (guint64 seq_id, const gchar * reason,
    guint n_generated)
{
  return gst_event_new_custom (GST_EVENT_CUSTOM_DOWNSTREAM,
      gst_structure_new (LLM_EVENT_SEQUENCE_END,
          "seq-id", G_TYPE_UINT64, seq_id,
          "reason", G_TYPE_STRING, reason,
          "n-generated", G_TYPE_UINT, n_generated, NULL));
}

gboolean
llm_event_parse_sequence_end (GstEvent * event, guint64 * seq_id,
    const gchar ** reason, guint * n_generated)
{
  const GstStructure *s;

  if (!llm_event_is (event, LLM_EVENT_SEQUENCE_END))
    return FALSE;
  s = gst_event_get_structure (event);
  if (reason)
    *reason = gst_structure_get_string (s, "reason");
  if (n_generated && !gst_structure_get_uint (s, "n-generated", n_generated))
    return FALSE;
  return gst_structure_get_uint64 (s, "seq-id", seq_id);
}
