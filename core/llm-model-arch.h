/* LLMasOS - what each architecture adds to the loading in llm-model-file.c.
 *
 * llm-model-file.c reads what every GGUF architecture shares (the
 * {arch}.embedding_length, {arch}.block_count, ... keys and llama.cpp's
 * tensor names); a file per architecture reads the rest and sets the
 * hyper-parameters that make the forward pass differ.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "llm-model-file.h"

G_BEGIN_DECLS

/* Gemma 3 (general.architecture "gemma3"), after the shared keys: the
 * sliding window, RoPE bases and style, embedding and attention scales,
 * the GeGLU activation and the extra norms. @file names the file in
 * errors. */
G_GNUC_INTERNAL gboolean llm_model_gemma3_gguf_hparams (const LlmGguf * g,
    const gchar * file, LlmHParams * hp, GError ** error);

G_END_DECLS
