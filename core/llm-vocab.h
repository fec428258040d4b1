/* LLMasOS - vocabularies and tokenizer algorithms.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _LlmGguf LlmGguf;

/* GGUF tokenizer.ggml.token_type values. */
typedef enum {
  LLM_TOKEN_NORMAL = 1,
  LLM_TOKEN_UNKNOWN = 2,
  LLM_TOKEN_CONTROL = 3,
  LLM_TOKEN_USER_DEFINED = 4,
  LLM_TOKEN_UNUSED = 5,
  LLM_TOKEN_BYTE = 6,
} LlmTokenType;

typedef enum {
  LLM_VOCAB_SPM,                /* SentencePiece-style BPE, '▁' for space,
                                 * byte fallback <0xNN> (GGUF model "llama") */
  LLM_VOCAB_GPT2,               /* byte-level BPE (GGUF model "gpt2") */
} LlmVocabKind;

typedef struct _LlmVocab LlmVocab;

struct _LlmVocab {
  LlmVocabKind kind;
  guint n_tokens;
  gchar **pieces;               /* n_tokens NUL-terminated UTF-8 strings */
  float *scores;                /* n_tokens; SPM merge priority, may be 0 */
  gint32 *types;                /* n_tokens LlmTokenType */
  gchar **merges;               /* "left right" strings, rank order */
  guint n_merges;
  gint32 bos;                   /* -1 if the model has none */
  gint32 eos;
  gint32 unk;
  gint32 pad;
  gboolean add_bos;             /* prepend BOS to a prompt */
  gboolean add_eos;
  gboolean add_space_prefix;    /* SPM: prepend '▁' before normalizing */
  gchar *fingerprint;           /* short stable id of this vocabulary, e.g.
                                 * "spm512-9f3a1c0e": kind, size and a hash
                                 * of pieces, types, merges and specials */
  gpointer priv;                /* lookup tables, owned */
};

/* tokenizer.json (HF tokenizers): model BPE, the Llama normalizer
 * (Prepend '▁' + Replace ' ' -> '▁') or the ByteLevel pre-tokenizer;
 * @config_path (tokenizer_config.json, may be NULL) gives add_bos/add_eos. */
LlmVocab *llm_vocab_new_from_hf_json (const gchar * tokenizer_json_path,
    const gchar * config_path, GError ** error);
LlmVocab *llm_vocab_new_from_hf_json_data (const gchar * data, gsize len,
    GError ** error);
/* tokenizer.ggml.* keys of a GGUF file. */
LlmVocab *llm_vocab_new_from_gguf (const LlmGguf * gguf, GError ** error);
/* A folder (tokenizer.json inside) or a .gguf path. */
LlmVocab *llm_vocab_new_from_path (const gchar * path, GError ** error);
void llm_vocab_free (LlmVocab * vocab);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (LlmVocab, llm_vocab_free)

/* Text -> ids. @text must be valid UTF-8 (else LLM_ERROR_INPUT saying at
 * which byte offset). @add_special: prepend BOS / append EOS as the vocab
 * says. Returns a GArray of gint32. */
GArray *llm_vocab_encode (const LlmVocab * vocab, const gchar * text,
    gssize len, gboolean add_special, GError ** error);

/* The bytes one token stands for in decoded text: SPM '▁' -> ' ', byte
 * tokens <0xNN> -> that byte, control/unknown/unused -> "" (length 0);
 * GPT-2 byte-level pieces mapped back to bytes. Writes at most @size bytes
 * to @buf and returns the full length. Out-of-range ids give 0. */
gsize llm_vocab_token_bytes (const LlmVocab * vocab, gint32 id, guint8 * buf,
    gsize size);

/* Whole-sequence decode as HF tokenizers does it (SPM: leading space of the
 * text removed; invalid UTF-8 replaced by U+FFFD). Special tokens skipped. */
gchar *llm_vocab_decode (const LlmVocab * vocab, const gint32 * ids,
    gsize n_ids);

/* TRUE for control tokens (BOS, EOS, ...) that produce no text. */
gboolean llm_vocab_is_control (const LlmVocab * vocab, gint32 id);

G_END_DECLS
