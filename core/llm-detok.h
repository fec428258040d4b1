/* LLMasOS - streaming detokenizer: ids in, whole UTF-8 characters out.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include "llm-vocab.h"

G_BEGIN_DECLS

typedef struct _LlmDetok LlmDetok;

/* @stop_strings: NULL-terminated, may be NULL. Empty ones, and ones that
 * are not valid UTF-8 (they could only match inside a character), are
 * ignored. */
LlmDetok *llm_detok_new (const LlmVocab * vocab,
    const gchar * const *stop_strings);
void llm_detok_free (LlmDetok * d);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (LlmDetok, llm_detok_free)

/* Start of a sequence. @strip_leading_space: the sequence has no text before
 * the first token fed (an empty prompt), so a leading space is dropped as
 * SentencePiece decoding does (only for SPM vocabularies that put '▁' in
 * front of the text; byte-level ones keep every space). */
void llm_detok_reset (LlmDetok * d, gboolean strip_leading_space);

/* Feeds one token and appends to @out the text that is now complete: never
 * half a UTF-8 character (an invalid sequence becomes U+FFFD), never text
 * that may still turn into a stop string. Control tokens add nothing.
 * Returns TRUE when a stop string has been reached: @out then ends just
 * before it, and later tokens are ignored (and return TRUE) until the next
 * reset. */
gboolean llm_detok_push (LlmDetok * d, gint32 id, GString * out);

/* End of sequence: appends what was held back (an incomplete character
 * becomes U+FFFD). */
void llm_detok_finish (LlmDetok * d, GString * out);

G_END_DECLS
