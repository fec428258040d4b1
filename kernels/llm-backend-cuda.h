/* LLMasOS - the CUDA backend's entry in core's backend table.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include "llm-backend.h"

G_BEGIN_DECLS

/* Registers the "cuda" backend with core (llm_backend_register); the
 * plugin and the tools call it at start-up. Cheap: the GPU is not touched
 * until a device is asked for. */
void llm_backend_cuda_register (void);
const LlmBackend *llm_backend_cuda_get (void);

G_END_DECLS
