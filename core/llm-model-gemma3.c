/* LLMasOS - Gemma 3 from a GGUF file (general.architecture "gemma3").
 *
 * Gemma 3 is a Llama-shaped decoder with these differences, all of which
 * the shared forward pass (llm-forward.c) takes from the hyper-parameters
 * set here:
 * - token embeddings are multiplied by sqrt(dim);
 * - RMSNorm on the output of attention and of the feed-forward before
 *   each is added to the residual stream (post_attention_norm,
 *   post_ffw_norm), and on every query and key head before RoPE
 *   (attn_q_norm, attn_k_norm);
 * - the feed-forward gate goes through GELU (tanh approximation);
 * - five local layers, attending to a sliding window of the last
 *   gemma3.attention.sliding_window positions with RoPE base 10000, then
 *   one global layer over the whole context with gemma3.rope.freq_base;
 * - RoPE pairs dimension i with i + head_dim/2 (NEOX): llama.cpp's
 *   converter does not permute Gemma's Q and K rows as it does Llama's.
 *
 * Hugging Face's Gemma3RMSNorm multiplies by (1 + weight); llama.cpp's
 * converter stores weight + 1 in the GGUF, so here the norms are plain
 * x / rms(x) * weight, as for Llama (checked against transformers, which
 * subtracts the 1 again when it loads a GGUF: tests/test-gemma3.c).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-model-arch.h"
#include "llm-error.h"

#include <math.h>
#include <string.h>

/* The RoPE base of the local layers: not in the GGUF, fixed by the
 * architecture (HF rope_local_base_freq; llama.cpp sets it for gemma3). */
#define GEMMA3_ROPE_THETA_LOCAL 10000.0f

/* Every sixth layer is global (HF sliding_window_pattern, llama.cpp's
 * swa pattern for gemma3). */
#define GEMMA3_SWA_PERIOD 6

/* Layers of Gemma 3 27B: its query_pre_attn_scalar is dim / n_heads rather
 * than head_dim, which llama.cpp recognizes by this layer count. */
#define GEMMA3_27B_LAYERS 62

/* A float key that must be absent or @neutral: features of the family
 * that this build does not compute. */
static gboolean
refuse_float (const LlmGguf * g, const gchar * file, const gchar * key,
    gdouble neutral, const gchar * what, GError ** error)
{
  gdouble v;

  if (llm_gguf_find_kv (g, key) < 0 ||
      (llm_gguf_get_float (g, key, &v) && v == neutral))
    return TRUE;
  g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
      "%s: %s is set: %s is not supported", file, key, what);
  return FALSE;
}

gboolean
llm_model_gemma3_gguf_hparams (const LlmGguf * g, const gchar * file,
    LlmHParams * hp, GError ** error)
{
  const gchar *scaling = llm_gguf_get_string (g, "gemma3.rope.scaling.type");
  guint64 window, value_length;

  if (!llm_gguf_get_uint (g, "gemma3.attention.sliding_window", &window) ||
      window == 0 || window > G_MAXINT32) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: gemma3.attention.sliding_window is missing or not a positive "
        "integer", file);
    return FALSE;
  }
  if (llm_gguf_get_uint (g, "gemma3.attention.value_length", &value_length)
      && value_length != hp->head_dim) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
        "%s: value heads of %" G_GUINT64_FORMAT " and key heads of %u: "
        "different sizes are not supported", file, value_length, hp->head_dim);
    return FALSE;
  }
  /* Gemma 3 4B and larger stretch the global layers' positions (linear
   * RoPE scaling, factor 8); 270M and 1B do not. */
  if (scaling != NULL && strcmp (scaling, "none") != 0) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
        "%s: RoPE scaling '%s' is not supported", file, scaling);
    return FALSE;
  }
  if (!refuse_float (g, file, "gemma3.rope.scaling.factor", 1.0,
          "RoPE scaling", error) ||
      !refuse_float (g, file, "gemma3.attn_logit_softcapping", 0.0,
          "soft-capping of attention scores (Gemma 2)", error) ||
      !refuse_float (g, file, "gemma3.final_logit_softcapping", 0.0,
          "soft-capping of logits (Gemma 2)", error))
    return FALSE;

  hp->rope_style = LLM_ROPE_HALF;
  hp->act = LLM_ACT_GELU_TANH;
  hp->embd_scale = sqrtf ((float) hp->dim);
  hp->attn_scale = 1.0f / sqrtf (hp->n_layers == GEMMA3_27B_LAYERS ?
      (float) hp->dim / hp->n_heads : (float) hp->head_dim);
  hp->qk_norm = TRUE;
  hp->post_norms = TRUE;
  hp->swa_window = window;
  hp->swa_period = GEMMA3_SWA_PERIOD;
  hp->rope_theta_local = GEMMA3_ROPE_THETA_LOCAL;
  return TRUE;
}
