/* LLMasOS - the plugin: language models as GStreamer elements.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/gst.h>

#include "gstllmattention.h"
#include "gstllmdecoder.h"
#include "gstllmdetokenizer.h"
#include "gstllmencoder.h"
#include "gstllmsampler.h"
#include "gstllmtokenizer.h"
#ifdef LLMASOS_HAVE_CUDA
#include "llm-backend-cuda.h"
#endif

static gboolean
plugin_init (GstPlugin * plugin)
{
  gboolean ret = FALSE;

#ifdef LLMASOS_HAVE_CUDA
  llm_backend_cuda_register ();
#endif

  ret |= GST_ELEMENT_REGISTER (llmtokenizer, plugin);
  ret |= GST_ELEMENT_REGISTER (llmencoder, plugin);
  ret |= GST_ELEMENT_REGISTER (llmdecoder, plugin);
  ret |= GST_ELEMENT_REGISTER (llmattention, plugin);
  ret |= GST_ELEMENT_REGISTER (llmsampler, plugin);
  ret |= GST_ELEMENT_REGISTER (llmdetokenizer, plugin);
  return ret;
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, llmasos,
    "Large language models as GStreamer elements: tokenizer, encoder, "
    "decoder, attention, sampler, detokenizer",
    plugin_init, VERSION, "LGPL", "LLMasOS", "https://example.org/llmasos")
