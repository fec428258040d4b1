/* LLMasOS - base class of the elements that use a model.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gst/gst.h>
#include "llm-model.h"

G_BEGIN_DECLS

#define GST_TYPE_LLM_ELEMENT (gst_llm_element_get_type ())
G_DECLARE_DERIVABLE_TYPE (GstLlmElement, gst_llm_element, GST, LLM_ELEMENT,
    GstElement)

/**
 * GstLlmElementClass:
 *
 * Gives every LLM element the `model` property and the sharing of one
 * loaded model between neighbours: the element whose `model` is set loads
 * it (through the process-wide cache), answers `llm.model` context queries
 * on all its pads and posts it in a have-context message; an element
 * without `model` asks its peers, then the application.
 */
struct _GstLlmElementClass
{
  GstElementClass parent_class;
};

/* The model, loading or finding it if needed: from the `model` property,
 * else through a context query on the peer of @pad. Posts an element
 * error and returns NULL if there is none. (transfer none) */
LlmModel *gst_llm_element_ensure_model (GstLlmElement * self, GstPad * pad);
/* The model if known, without looking for it. (transfer none) */
LlmModel *gst_llm_element_get_model (GstLlmElement * self);

/* The "device" property of the elements that compute (string, mutable in
 * READY); @extra_blurb is appended to the description. */
GParamSpec *gst_llm_element_device_param_spec (const gchar * default_device,
    const gchar * extra_blurb);
/* A compute for @model on @device ("cpu", "cuda", "cuda:N"): copies the
 * weights to the device on first use (posting llm-model-progress
 * messages). On a CUDA device (built with libgstcuda) it first adopts or
 * offers the gst.cuda.context (gstllmcudacontext.h). Posts an element
 * error and returns NULL if the device does not exist, there is no CUDA
 * context, or the model does not fit or cannot run there. */
LlmCompute *gst_llm_element_make_compute (GstLlmElement * self,
    LlmModel * model, const gchar * device, guint n_threads);
/* Pad query function helper: answers llm.model and gst.cuda.context
 * context queries. */
gboolean gst_llm_element_handle_query (GstLlmElement * self,
    GstQuery * query);

G_END_DECLS
