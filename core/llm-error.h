/* LLMasOS - the library's error domain.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define LLM_ERROR (llm_error_quark ())
GQuark llm_error_quark (void);

typedef enum {
  LLM_ERROR_IO,                 /* file cannot be opened or mapped */
  LLM_ERROR_FORMAT,             /* malformed file: bad magic, lengths, offsets */
  LLM_ERROR_UNSUPPORTED,        /* well formed, but a feature we do not handle */
  LLM_ERROR_MISMATCH,           /* shapes or vocabularies that disagree */
  LLM_ERROR_INPUT,              /* bad user input: invalid UTF-8, bad ids */
  LLM_ERROR_CONTEXT_FULL,       /* a sequence does not fit in the context */
  LLM_ERROR_NO_MEMORY,          /* an allocation failed */
} LlmError;

G_END_DECLS
