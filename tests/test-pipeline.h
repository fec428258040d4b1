/* Running LLMasOS pipelines from tests: the same launch lines users type,
 * with appsrc/appsink at the ends.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gst/gst.h>

typedef struct {
  GString *text;                /* everything that reached the sink */
  GArray *tokens;               /* gint32 ids leaving llmsampler "sam" */
  gchar *error;                 /* the first error message, or NULL */
  gboolean eos;
  GstCaps *dec_caps;            /* the last caps llmdecoder "dec" sent */
} LlmRunResult;

/* Runs @desc, which must contain `appsrc name=src` (unless @prompt is
 * NULL), `llmsampler name=sam` and `llmdecoder name=dec` (optional) and
 * end in `appsink name=sink`;
 * pushes @prompt (may hold several lines) then EOS, and waits for EOS or an
 * error. */
LlmRunResult *llm_run_pipeline (const gchar * desc, const gchar * prompt);
void llm_run_result_free (LlmRunResult * r);

/* For tests that watch more than the result: what llm_run_pipeline_full
 * adds to the pipeline before it plays (each may be NULL). */
typedef struct {
  GstContext *context;          /* set on the pipeline */
  GstBusSyncHandler bus_handler;        /* on its bus, until it stops */
  GstPadProbeCallback token_probe;      /* a buffer probe on "sam"'s src */
  gpointer user_data;           /* of both */
} LlmRunHooks;

LlmRunResult *llm_run_pipeline_full (const gchar * desc,
    const gchar * prompt, const LlmRunHooks * hooks);

/* The reference cases of stories260K/reference/generate.json. */
typedef struct {
  gchar *prompt;
  gchar *continuation;
  GArray *greedy_ids;           /* gint32 */
} LlmGoldenCase;

GPtrArray *llm_golden_cases (void);     /* of LlmGoldenCase*, free with unref */
/* Fails (case @i) unless @r ended without error with @c's greedy ids and
 * continuation. */
void llm_check_golden (const LlmRunResult * r, const LlmGoldenCase * c,
    guint i);
