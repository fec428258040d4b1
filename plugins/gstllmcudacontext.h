/* LLMasOS - sharing GStreamer's CUDA context (gst.cuda.context).
 *
 * GStreamer's own CUDA elements (nvcodec, cudaupload, ...) share one
 * GstCudaContext per device through a GstContext of type
 * "gst.cuda.context" (gst-plugins-bad's libgstcuda-1.0). An element of ours
 * that computes on the GPU calls:
 *
 * - gst_llm_cuda_context_set() from its GstElement.set_context;
 * - gst_llm_cuda_context_query() for GST_QUERY_CONTEXT (GstElement.query,
 *   or its pads' query functions);
 * - gst_llm_cuda_context_ensure() before it allocates anything on the
 *   device (gstllmelement.c: in gst_llm_element_make_compute);
 *   gst_clear_object() on the context when it stops (READY -> NULL).
 *
 * ensure() adopts a context a neighbour or the application offers, or,
 * when there is none, offers the primary context of our device (the one
 * the CUDA runtime, and so libllmasos-cuda, runs in) wrapped as a
 * GstCudaContext, so that CUDA elements that adopt ours run in our
 * context. A foreign context is made the context of libllmasos-cuda
 * (llm_cuda_device_adopt_context); the glue keeps a reference on the
 * context the kernels run in until another replaces it. docs/cuda.md,
 * "Memory and context".
 *
 * Built only with CUDA and libgstcuda-1.0 (HAVE_GST_CUDA).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gst/gst.h>
#ifndef GST_USE_UNSTABLE_API
#define GST_USE_UNSTABLE_API
#endif
#include <gst/cuda/gstcudacontext.h>

G_BEGIN_DECLS

/* Finds (neighbours' context query, then need-context to the
 * application) or makes (our device's primary context, announced with
 * have-context) the CUDA context of @element, and makes it the context of
 * libllmasos-cuda. @device_index -1: whichever device a neighbour offers,
 * else device 0. Nothing is done when *@ctx is set already except the
 * last step. On failure posts an error message on @element and returns
 * FALSE. */
gboolean gst_llm_cuda_context_ensure (GstElement * element,
    gint device_index, GstCudaContext ** ctx);

/* Answers a GST_QUERY_CONTEXT of type gst.cuda.context with @ctx; FALSE
 * for other queries or a NULL @ctx. */
gboolean gst_llm_cuda_context_query (GstElement * element, GstQuery * query,
    GstCudaContext * ctx);

/* Takes the GstCudaContext out of @context when *@ctx is NULL and the
 * context's device is @device_index (or @device_index is -1). */
gboolean gst_llm_cuda_context_set (GstElement * element,
    GstContext * context, gint device_index, GstCudaContext ** ctx);

/* The device of @ctx: its "cuda-device-id" property. */
gint gst_llm_cuda_context_get_device (GstCudaContext * ctx);

G_END_DECLS
