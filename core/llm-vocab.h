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
  gboolean add_space_prefix;    /* SPM: '▁' in front of the text (none
                                 * when it starts with a space); GPT-2:
                                 * ByteLevel add_prefix_space */
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
 * which byte offset); NUL bytes within @len are characters like any other.
 * @add_special: prepend BOS / append EOS as the vocab says. Added tokens
 * written out in the text ("<s>", "<|im_start|>") become their ids, as
 * Hugging Face tokenizers does by default. Returns a GArray of gint32. */
GArray *llm_vocab_encode (const LlmVocab * vocab, const gchar * text,
    gssize len, gboolean add_special, GError ** error);

typedef enum {
  LLM_ENCODE_ADD_SPECIAL = 1 << 0,      /* prepend BOS / append EOS */
  LLM_ENCODE_PARSE_SPECIAL = 1 << 1,    /* control tokens written in the
                                         * text become their ids; without
                                         * it only user-defined added tokens
                                         * do, and "<s>" is plain text */
} LlmEncodeFlags;

/* llm_vocab_encode with every choice spelled out. */
GArray *llm_vocab_encode_full (const LlmVocab * vocab, const gchar * text,
    gssize len, LlmEncodeFlags flags, GError ** error);

/* The id of the token whose piece is exactly @piece, or -1. */
gint32 llm_vocab_find (const LlmVocab * vocab, const gchar * piece);

/* The bytes one token stands for in decoded text: SPM '▁' -> ' ', byte
 * tokens <0xNN> -> that byte, control/unknown/unused -> "" (length 0);
 * GPT-2 byte-level pieces mapped back to bytes. Writes at most @size bytes
 * to @buf and returns the full length. Out-of-range ids give 0. */
gsize llm_vocab_token_bytes (const LlmVocab * vocab, gint32 id, guint8 * buf,
    gsize size);

/* Whole-sequence decode as HF tokenizers does it, control tokens skipped.
 * SPM: the leading space of the text removed (when the vocabulary puts
 * '▁' in front), a run of byte tokens that is not UTF-8 gives one U+FFFD
 * per token; GPT-2: invalid UTF-8 gives one U+FFFD per maximal invalid
 * sequence. */
gchar *llm_vocab_decode (const LlmVocab * vocab, const gint32 * ids,
    gsize n_ids);

/* TRUE for control tokens (BOS, EOS, ...) that produce no text. */
gboolean llm_vocab_is_control (const LlmVocab * vocab, gint32 id);

/* < private > The rest is shared between core/llm-vocab*.c,
 * core/llm-tokenize-*.c and core/llm-detok.c; not for other callers. */

/* What a run of bytes starts with, for streaming UTF-8 decoding. */
typedef enum {
  LLM_UTF8_CHAR,                /* a whole valid character */
  LLM_UTF8_INCOMPLETE,          /* a valid prefix cut short by the end */
  LLM_UTF8_INVALID,             /* an invalid maximal subpart: one U+FFFD */
} LlmUtf8Status;

G_GNUC_INTERNAL LlmUtf8Status llm_utf8_next (const guint8 * p, gsize n,
    gsize * len);
G_GNUC_INTERNAL void llm_utf8_append_lossy (GString * out, const guint8 * p,
    gsize n);

/* Tables built once per vocabulary. */
G_GNUC_INTERNAL gint32 llm_vocab_lookup (const LlmVocab * vocab,
    const gchar * piece, gsize len);
G_GNUC_INTERNAL gint32 llm_vocab_byte_token (const LlmVocab * vocab,
    guint8 byte);
G_GNUC_INTERNAL gboolean llm_vocab_has_merges (const LlmVocab * vocab);
G_GNUC_INTERNAL gboolean llm_vocab_fuse_unk (const LlmVocab * vocab);
G_GNUC_INTERNAL gboolean llm_vocab_ignore_merges (const LlmVocab * vocab);
G_GNUC_INTERNAL gboolean llm_vocab_use_regex (const LlmVocab * vocab);
/* BPE by merge rank over @n symbol ids, in place; returns the new count. */
G_GNUC_INTERNAL guint llm_vocab_bpe_merge (const LlmVocab * vocab,
    gint32 * ids, guint n);

/* How SPM normalization puts '▁' in front of a text segment. */
typedef enum {
  LLM_SPM_PREPEND_NEVER,
  LLM_SPM_PREPEND_ALWAYS,       /* every segment between added tokens */
  LLM_SPM_PREPEND_FIRST,        /* only a segment at the start of the text */
} LlmSpmPrepend;

G_GNUC_INTERNAL LlmSpmPrepend llm_vocab_spm_prepend (const LlmVocab * vocab,
    gboolean * unless_present, gboolean * split_words);

/* Building a vocabulary: alloc, fill pieces, types, scores (NULL: derived
 * from merge ranks), merges (NULL: unknown, SPM then merges by score) and
 * the special ids, then finish() checks it, builds the tables and the
 * fingerprint. @merge_split: offset of the separating space of each merge,
 * or NULL to split at the first space after the first byte. @source names
 * the input in error messages. */
G_GNUC_INTERNAL LlmVocab *llm_vocab_alloc (LlmVocabKind kind,
    guint n_tokens);
G_GNUC_INTERNAL void llm_vocab_set_spm_prepend (LlmVocab * vocab,
    LlmSpmPrepend prepend, gboolean unless_present);
G_GNUC_INTERNAL void llm_vocab_set_options (LlmVocab * vocab,
    gboolean fuse_unk, gboolean ignore_merges, gboolean use_regex,
    gboolean split_words);
G_GNUC_INTERNAL gboolean llm_vocab_piece_is_byte (const gchar * piece);
/* The piece -> id table alone, for a loader that looks pieces up before
 * finish() (which then keeps it). */
G_GNUC_INTERNAL gboolean llm_vocab_build_piece_table (LlmVocab * vocab,
    const gchar * source, GError ** error);
G_GNUC_INTERNAL gboolean llm_vocab_finish (LlmVocab * vocab,
    const gchar * source, const guint * merge_split, GError ** error);

/* The algorithms, one file per kind; @seg is one segment of text between
 * added tokens, @at_start: it begins the text. */
G_GNUC_INTERNAL gboolean llm_tokenize_spm (const LlmVocab * vocab,
    const gchar * seg, gsize len, gboolean at_start, GArray * ids,
    GError ** error);
G_GNUC_INTERNAL gboolean llm_tokenize_gpt2 (const LlmVocab * vocab,
    const gchar * seg, gsize len, GArray * ids, GError ** error);
G_GNUC_INTERNAL gsize llm_gpt2_piece_bytes (const gchar * piece,
    guint8 * buf, gsize size);

G_END_DECLS
