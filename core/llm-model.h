/* LLMasOS - the shared model object: weights, vocabulary, hyper-parameters
 * and the live sequences (their KV caches), one per file per process.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gst/gst.h>
#include "llm-model-file.h"
#include "llm-forward.h"

G_BEGIN_DECLS

#define LLM_TYPE_MODEL (llm_model_get_type ())
G_DECLARE_FINAL_TYPE (LlmModel, llm_model, LLM, MODEL, GObject)

/* GstContext type through which neighbouring elements share a model. */
#define LLM_MODEL_CONTEXT_TYPE "llm.model"

/**
 * llm_model_get:
 * @path: a model folder (HF layout) or a .gguf file
 * @progress: (nullable): called while a model is being loaded
 *
 * Returns the model loaded from @path. A process-wide cache keyed by the
 * canonical path guarantees each file is mapped once while any element
 * holds it.
 *
 * Returns: (transfer full): the model, or NULL with @error set.
 */
LlmModel *llm_model_get (const gchar * path, LlmProgressFunc progress,
    gpointer user_data, GError ** error);

const LlmModelFile *llm_model_get_file (LlmModel * model);
const LlmHParams *llm_model_get_hparams (LlmModel * model);
const LlmVocab *llm_model_get_vocab (LlmModel * model);
const gchar *llm_model_get_path (LlmModel * model);
/* A short display name: general.name or the folder name. */
const gchar *llm_model_get_name (LlmModel * model);
/* Fingerprint of the weights' identity (path + shape), for state caps. */
const gchar *llm_model_get_fingerprint (LlmModel * model);
/* TRUE if @id ends a generation: EOS; BOS (the TinyStories models end a
 * story by starting the next one, as llama2.c's run.c assumes); or a chat
 * end-of-turn token (<end_of_turn>, <|im_end|>, <|eot_id|>,
 * tokenizer.ggml.eot_token_id). */
gboolean llm_model_is_end_token (LlmModel * model, gint32 id);

/* A live sequence: its KV cache and where it stands. */
typedef struct {
  guint64 id;
  LlmKvCache *kv;
  guint n_prompt;               /* tokens of the prompt, BOS included */
  gconstpointer owner;          /* the element that made it (llmencoder) */
  gboolean claimed;             /* a decoder has taken it over */
} LlmSequence;

/* A fresh id, unique in the process. */
guint64 llm_model_next_sequence_id (LlmModel * model);
/* Registers @seq (ownership passes to the model). */
void llm_model_add_sequence (LlmModel * model, LlmSequence * seq);
/* Looks up a live sequence (the model keeps ownership) or NULL. */
LlmSequence *llm_model_lookup_sequence (LlmModel * model, guint64 id);
/* Marks @id as taken over by a decoder; returns it, or NULL if not live. */
LlmSequence *llm_model_claim_sequence (LlmModel * model, guint64 id);
/* Frees the sequences @owner made that no decoder took over (in flight when
 * a flush or a stop dropped them). Returns how many. */
guint llm_model_remove_unclaimed (LlmModel * model, gconstpointer owner);
/* A decoder is done with @id but the conversation goes on: the sequence
 * stays, unclaimed, for its next turn (its maker frees it at the end).
 * Returns its length. */
guint llm_model_release_sequence (LlmModel * model, guint64 id);
/* Waits up to @timeout_us for a decoder to release (or end) @id; TRUE if
 * it is free now. */
gboolean llm_model_wait_released (LlmModel * model, guint64 id,
    gint64 timeout_us);
/* Ends a sequence and frees its cache; FALSE if it was not live. */
gboolean llm_model_remove_sequence (LlmModel * model, guint64 id);
guint llm_model_n_sequences (LlmModel * model);

/* The model's weights on device @index of @backend (core/llm-backend.h),
 * copied there on first use (@progress called meanwhile) and kept, shared
 * by every element, until the model goes. NULL with @error (the device is
 * full, the architecture or a dtype is not supported there). */
gpointer llm_model_get_weights (LlmModel * model,
    const LlmBackend * backend, gint index, LlmProgressFunc progress,
    gpointer user_data, GError ** error);

/* GstContext helpers. */
GstContext *llm_model_context_new (LlmModel * model);
/* (transfer full) or NULL. */
LlmModel *llm_model_from_context (GstContext * context);
/* Answers a GST_QUERY_CONTEXT of our type; FALSE if not ours. */
gboolean llm_model_answer_context_query (LlmModel * model, GstQuery * query);
/* Asks the peer of @pad for the model through a context query, then the
 * application through a need-context message. (transfer full) or NULL. */
LlmModel *llm_model_find_from_pad (GstElement * element, GstPad * pad);

G_END_DECLS
