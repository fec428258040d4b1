/* LLMasOS - fuzz target: config.json of a Hugging Face model folder.
 *
 * llm_hparams_from_config_json_data over the input; what it accepts must
 * be a llama model with the defaults filled in.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fuzz-common.h"

#include "llm-model-file.h"

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  llm_fuzz_quiet_logs ();
  return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t * data, size_t size)
{
  g_autoptr (GError) error = NULL;
  LlmHParams hp = { 0 };

  if (!llm_hparams_from_config_json_data ((const gchar *) data, size,
          "fuzz/config.json", &hp, &error)) {
    LLM_FUZZ_CHECK (error != NULL && error->message != NULL,
        "failed without an error");
    return 0;
  }
  LLM_FUZZ_CHECK (hp.arch == LLM_ARCH_LLAMA, "arch %d", hp.arch);
  LLM_FUZZ_CHECK (hp.dim <= G_MAXINT32 && hp.n_layers <= G_MAXINT32 &&
      hp.n_heads <= G_MAXINT32 && hp.n_kv_heads <= G_MAXINT32 &&
      hp.head_dim <= G_MAXINT32 && hp.ffn_dim <= G_MAXINT32 &&
      hp.n_vocab <= G_MAXINT32 && hp.n_ctx_train <= G_MAXINT32,
      "a size above G_MAXINT32");
  return 0;
}
