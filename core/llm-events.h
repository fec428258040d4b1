/* LLMasOS - the custom events of the generation loop.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

/* Upstream, sampler -> decoder: the tokens chosen for one step. */
#define LLM_EVENT_TOKEN "llm-token"
/* Upstream, detokenizer -> decoder: stop this sequence (a stop string). */
#define LLM_EVENT_SEQUENCE_STOP "llm-sequence-stop"
/* Downstream, serialized: a sequence begins / has ended. */
#define LLM_EVENT_SEQUENCE_START "llm-sequence-start"
#define LLM_EVENT_SEQUENCE_END "llm-sequence-end"

/* Why a sequence ended. */
#define LLM_END_REASON_END_TOKEN "end-token"
#define LLM_END_REASON_MAX_TOKENS "max-tokens"
#define LLM_END_REASON_CONTEXT_FULL "context-full"
#define LLM_END_REASON_STOPPED "stopped"

GstEvent *llm_event_new_token (guint n, const guint64 * seq_ids,
    const gint32 * tokens);
/* Fills up to @max entries; returns how many rows the event has, 0 if it is
 * not a token event. */
guint llm_event_parse_token (GstEvent * event, guint max, guint64 * seq_ids,
    gint32 * tokens);

GstEvent *llm_event_new_sequence_stop (guint64 seq_id);
gboolean llm_event_parse_sequence_stop (GstEvent * event, guint64 * seq_id);

/* @prompt_has_text: the prompt holds text (not only BOS), so a decoder of
 * the continuation keeps its leading space. */
GstEvent *llm_event_new_sequence_start (guint64 seq_id, guint n_prompt,
    gboolean prompt_has_text);
gboolean llm_event_parse_sequence_start (GstEvent * event, guint64 * seq_id,
    guint * n_prompt, gboolean * prompt_has_text);

/* Marks a sequence-start event: the sequence outlives its generation (a
 * conversation whose history stays in the KV cache for the next turn). */
void llm_event_sequence_start_set_keep (GstEvent * event, gboolean keep);
gboolean llm_event_sequence_start_get_keep (GstEvent * event);

GstEvent *llm_event_new_sequence_end (guint64 seq_id, const gchar * reason,
    guint n_generated);
gboolean llm_event_parse_sequence_end (GstEvent * event, guint64 * seq_id,
    const gchar ** reason, guint * n_generated);

/* TRUE if @event is the custom event named @name. */
gboolean llm_event_is (GstEvent * event, const gchar * name);

G_END_DECLS
