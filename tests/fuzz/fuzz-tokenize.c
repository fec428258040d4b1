/* LLMasOS - fuzz target: the tokenizers on arbitrary text.
 *
 * The input is the text. It is encoded with stories260K's vocabulary
 * (SentencePiece-style BPE, loaded once) and with a small byte-level GPT-2
 * vocabulary (tests/fuzz/corpus/vocab-json/gpt2-tiny.json), each without
 * and with special-token parsing. Invalid UTF-8 must be refused with an
 * error; otherwise every id is in range, and decode(encode(text)) == text
 * where docs/tokenizer.md says it holds: valid UTF-8 that does not begin
 * with a space. Two more exceptions, both inherent to the algorithms and
 * shared by Hugging Face tokenizers: a text holding a NUL byte is not
 * checked (decode returns a C string), and for SentencePiece one holding
 * U+2581 '▁' either (the decoder turns every '▁' into a space). With
 * special parsing, the check applies when the text wrote out no special
 * token. A mismatch aborts.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fuzz-common.h"

#include "llm-vocab.h"

#ifndef LLMASOS_FUZZ_SRCDIR
#define LLMASOS_FUZZ_SRCDIR "tests/fuzz"
#endif

#define SPM_SPACE "\xe2\x96\x81"        /* U+2581 */

static LlmVocab *vocabs[2];

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  g_autofree gchar *dir = llm_fuzz_model_dir ("stories260K");
  g_autofree gchar *gpt2 = g_build_filename (LLMASOS_FUZZ_SRCDIR, "corpus",
      "vocab-json", "gpt2-tiny.json", NULL);
  g_autoptr (GError) error = NULL;

  llm_fuzz_quiet_logs ();
  vocabs[0] = llm_vocab_new_from_path (dir, &error);
  if (vocabs[0] == NULL) {
    fprintf (stderr, "fuzz-tokenize: %s\n", error->message);
    exit (1);
  }
  vocabs[1] = llm_vocab_new_from_path (gpt2, &error);
  if (vocabs[1] == NULL) {
    fprintf (stderr, "fuzz-tokenize: %s\n", error->message);
    exit (1);
  }
  return 0;
}

static guint
count_control (const LlmVocab * v, const GArray * ids)
{
  guint n = 0;

  for (guint i = 0; i < ids->len; i++) {
    gint32 id = g_array_index (ids, gint32, i);

    if (v->types[id] == LLM_TOKEN_CONTROL || v->types[id] == LLM_TOKEN_UNKNOWN)
      n++;
  }
  return n;
}

static void
check_roundtrip (const LlmVocab * v, const gchar * text, gsize len,
    const GArray * ids)
{
  g_autofree gchar *back = llm_vocab_decode (v, (const gint32 *) ids->data,
      ids->len);

  LLM_FUZZ_CHECK (back != NULL && strlen (back) == len &&
      memcmp (back, text, len) == 0, "%s: decode(encode(\"%s\")) = \"%s\"",
      v->fingerprint, text, back ? back : "(null)");
}

static void
tokenize (const LlmVocab * v, const gchar * text, gsize len, gboolean valid)
{
  g_autoptr (GArray) plain = NULL;
  g_autoptr (GArray) parsed = NULL;
  g_autoptr (GError) e1 = NULL;
  g_autoptr (GError) e2 = NULL;
  gboolean check;

  plain = llm_vocab_encode_full (v, text, len, LLM_ENCODE_ADD_SPECIAL, &e1);
  parsed = llm_vocab_encode_full (v, text, len, LLM_ENCODE_ADD_SPECIAL |
      LLM_ENCODE_PARSE_SPECIAL, &e2);
  if (!valid) {
    LLM_FUZZ_CHECK (plain == NULL && parsed == NULL && e1 && e2,
        "invalid UTF-8 accepted");
    return;
  }
  LLM_FUZZ_CHECK (plain != NULL, "%s", e1->message);
  LLM_FUZZ_CHECK (parsed != NULL, "%s", e2->message);
  for (guint i = 0; i < plain->len; i++)
    LLM_FUZZ_CHECK ((guint) g_array_index (plain, gint32, i) < v->n_tokens,
        "id out of range");
  for (guint i = 0; i < parsed->len; i++)
    LLM_FUZZ_CHECK ((guint) g_array_index (parsed, gint32, i) < v->n_tokens,
        "id out of range");

  check = (len == 0 || text[0] != ' ') && memchr (text, '\0', len) == NULL &&
      (v->kind != LLM_VOCAB_SPM || g_strstr_len (text, len, SPM_SPACE) == NULL);
  if (!check)
    return;
  check_roundtrip (v, text, len, plain);
  if (count_control (v, parsed) == count_control (v, plain))
    check_roundtrip (v, text, len, parsed);
}

int
LLVMFuzzerTestOneInput (const uint8_t * data, size_t size)
{
  const gchar *text = (const gchar *) data;
  gboolean valid = llm_fuzz_utf8_valid (text, size);

  for (guint i = 0; i < G_N_ELEMENTS (vocabs); i++)
    tokenize (vocabs[i], text, size, valid);
  return 0;
}
