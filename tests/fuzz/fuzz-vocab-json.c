/* LLMasOS - fuzz target: tokenizer.json.
 *
 * llm_vocab_new_from_hf_json_data over the input. A vocabulary it accepts
 * is then used as the elements would: a fixed text encoded (every way),
 * the ids decoded and streamed through the detokenizer, every token's
 * bytes read and every piece looked up. Ids must be in range and decoded
 * text valid UTF-8.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fuzz-common.h"

#include "llm-vocab.h"
#include "llm-detok.h"

/* Per-token checks are linear in the vocabulary; a fuzzed one is small. */
#define MAX_TOKEN_WALK 4096

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  llm_fuzz_quiet_logs ();
  return 0;
}

static void
use_ids (const LlmVocab * v, const GArray * ids)
{
  g_autofree gchar *dec = NULL;
  g_autoptr (LlmDetok) detok = llm_detok_new (v, NULL);
  g_autoptr (GString) out = g_string_new (NULL);

  for (guint i = 0; i < ids->len; i++) {
    gint32 id = g_array_index (ids, gint32, i);

    LLM_FUZZ_CHECK (id >= 0 && (guint) id < v->n_tokens, "id %d of %u", id,
        v->n_tokens);
  }
  dec = llm_vocab_decode (v, (const gint32 *) ids->data, ids->len);
  LLM_FUZZ_CHECK (dec != NULL && g_utf8_validate (dec, -1, NULL),
      "decoded text is not UTF-8");
  llm_detok_reset (detok, TRUE);
  for (guint i = 0; i < ids->len; i++)
    llm_detok_push (detok, g_array_index (ids, gint32, i), out);
  llm_detok_finish (detok, out);
  LLM_FUZZ_CHECK (llm_fuzz_utf8_valid (out->str, out->len),
      "detokenized text is not UTF-8");
}

int
LLVMFuzzerTestOneInput (const uint8_t * data, size_t size)
{
  static const gchar text[] = " Once upon a time,  <s> a caf\xc3\xa9\t\n"
      "\xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 don't 123 </s><unk>x";
  static const LlmEncodeFlags flags[] = { 0, LLM_ENCODE_ADD_SPECIAL,
    LLM_ENCODE_PARSE_SPECIAL, LLM_ENCODE_ADD_SPECIAL | LLM_ENCODE_PARSE_SPECIAL
  };
  g_autoptr (GError) error = NULL;
  g_autoptr (LlmVocab) v = NULL;
  guint8 buf[64];

  v = llm_vocab_new_from_hf_json_data ((const gchar *) data, size, &error);
  if (v == NULL) {
    LLM_FUZZ_CHECK (error != NULL && error->message != NULL,
        "failed without an error");
    return 0;
  }
  LLM_FUZZ_CHECK (v->n_tokens > 0 && v->fingerprint != NULL, "empty vocab");
  LLM_FUZZ_CHECK (v->bos < (gint32) v->n_tokens && v->eos < (gint32)
      v->n_tokens && v->unk < (gint32) v->n_tokens && v->pad < (gint32)
      v->n_tokens, "a special id is out of range");
  for (guint i = 0; i < MIN (v->n_tokens, MAX_TOKEN_WALK); i++) {
    gint32 found;

    LLM_FUZZ_CHECK (v->pieces[i] != NULL, "token %u has no piece", i);
    found = llm_vocab_find (v, v->pieces[i]);
    LLM_FUZZ_CHECK (found >= 0 && strcmp (v->pieces[found], v->pieces[i])
        == 0, "piece of token %u not found", i);
    (void) llm_vocab_token_bytes (v, i, buf, sizeof (buf));
    (void) llm_vocab_is_control (v, i);
  }
  (void) llm_vocab_token_bytes (v, -1, buf, sizeof (buf));
  (void) llm_vocab_token_bytes (v, v->n_tokens, buf, sizeof (buf));

  for (guint k = 0; k < G_N_ELEMENTS (flags); k++) {
    g_autoptr (GArray) ids = NULL;
    g_autoptr (GError) enc_error = NULL;

    ids = llm_vocab_encode_full (v, text, sizeof (text) - 1, flags[k],
        &enc_error);
    if (ids != NULL)
      use_ids (v, ids);
    else
      LLM_FUZZ_CHECK (enc_error != NULL, "encode failed without an error");
  }
  return 0;
}
