/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-caps.h"

static void
set_batch (GstCaps * caps, gint batch)
{
  if (batch > 0)
    gst_caps_set_simple (caps, "batch", G_TYPE_INT, batch, NULL);
  else
    gst_caps_set_simple (caps, "batch", GST_TYPE_INT_RANGE, 1, 64, NULL);
}

GstCaps *
llm_caps_new_tokens (const LlmVocab * vocab, gint batch)
{
  GstCaps *caps = gst_caps_new_simple (LLM_MEDIA_TOKENS,
      "vocab", G_TYPE_STRING, vocab->fingerprint,
      "vocab-size", G_TYPE_INT, (gint) vocab->n_tokens, NULL);

  set_batch (caps, batch);
  return caps;
}

GstCaps *
llm_caps_new_state (const gchar * model_fingerprint, gint batch)
{
  GstCaps *caps = gst_caps_new_simple (LLM_MEDIA_STATE,
      "model", G_TYPE_STRING, model_fingerprint,
      "kv-dtype", G_TYPE_STRING, "F32", NULL);

  set_batch (caps, batch);
  return caps;
}

GstCaps *
llm_caps_new_logits (const LlmVocab * vocab, gint batch)
{
  GstCaps *caps = gst_caps_new_simple (LLM_MEDIA_LOGITS,
      "vocab", G_TYPE_STRING, vocab->fingerprint,
      "vocab-size", G_TYPE_INT, (gint) vocab->n_tokens,
      "dtype", G_TYPE_STRING, "F32", NULL);

  set_batch (caps, batch);
  return caps;
}

const gchar *
llm_caps_get_vocab (const GstCaps * caps)
{
  if (caps == NULL || gst_caps_is_empty (caps) || gst_caps_is_any (caps))
    return NULL;
  return gst_structure_get_string (gst_caps_get_structure (caps, 0), "vocab");
}
