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

GstCaps *
llm_caps_add_device_variant (GstCaps * caps)
{
  GstCaps *out;

  g_return_val_if_fail (GST_IS_CAPS (caps), NULL);
  if (gst_caps_is_any (caps) || gst_caps_is_empty (caps))
    return caps;

  out = gst_caps_new_empty ();
  for (guint i = 0; i < gst_caps_get_size (caps); i++) {
    GstCapsFeatures *f = gst_caps_get_features (caps, i);

    /* Only system-memory structures get a device twin (ANY features too:
     * they already accept device memory). */
    if (f != NULL && !gst_caps_features_is_equal (f,
            GST_CAPS_FEATURES_MEMORY_SYSTEM_MEMORY))
      continue;
    gst_caps_append_structure_full (out,
        gst_structure_copy (gst_caps_get_structure (caps, i)),
        gst_caps_features_new (LLM_CAPS_FEATURE_MEMORY_CUDA_TENSOR, NULL));
  }
  /* merge, not append: a structure already there is not repeated */
  return gst_caps_merge (out, caps);
}

gboolean
llm_caps_is_device (const GstCaps * caps)
{
  GstCapsFeatures *f;

  if (caps == NULL || gst_caps_is_empty (caps) || gst_caps_is_any (caps))
    return FALSE;
  f = gst_caps_get_features (caps, 0);
  return f != NULL && gst_caps_features_contains (f,
      LLM_CAPS_FEATURE_MEMORY_CUDA_TENSOR);
}
