/* LLMasOS - SentencePiece-style BPE: Llama tokenizer.json (HF tokenizers
 * BPE with the '▁' normalizer and byte fallback) and GGUF model "llama".
 * SPDX-License-Identifier: LGPL-2.1-or-later */

#include <string.h>

#include "llm-vocab.h"
#include "llm-error.h"
#include "llm-heap.h"

#define SPM_SPACE "\xe2\x96\x81"        /* U+2581 '▁' */
#define SPM_SPACE_LEN 3

/* Prepend '▁' as the vocabulary says, then spell every space '▁'. */
static GString *
normalize (const LlmVocab * v, const gchar * seg, gsize len,
    gboolean at_start, gboolean * split_words)
{
  gboolean unless_present;
  LlmSpmPrepend mode = llm_vocab_spm_prepend (v, &unless_present,
      split_words);
  gboolean prepend = mode == LLM_SPM_PREPEND_ALWAYS ||
      (mode == LLM_SPM_PREPEND_FIRST && at_start);
  GString *out = g_string_sized_new (len + len / 2 + SPM_SPACE_LEN);

  /* Metaspace adds no '▁' before a text that starts with one (or with a
   * space, which becomes one); the Prepend normalizer always adds it */
  if (prepend && unless_present && (seg[0] == ' ' || (len >= SPM_SPACE_LEN
              && memcmp (seg, SPM_SPACE, SPM_SPACE_LEN) == 0)))
    prepend = FALSE;
  if (prepend)
    g_string_append (out, SPM_SPACE);
  for (gsize i = 0; i < len; i++) {
    if (seg[i] == ' ')
      g_string_append_len (out, SPM_SPACE, SPM_SPACE_LEN);
    else
      g_string_append_c (out, seg[i]);
  }
  return out;
}

static gsize
char_len (const gchar * p)
{
  return g_utf8_next_char (p) - p;
}

/* A piece that is not in the vocabulary: one <0xNN> token per byte when
 * all of them exist, else <unk> (one for a run of them with fuse_unk). */
static gboolean
add_fallback (const LlmVocab * v, const gchar * p, gsize n, GArray * syms,
    gboolean * last_unk, GError ** error)
{
  gsize i;

  for (i = 0; i < n && llm_vocab_byte_token (v, (guint8) p[i]) >= 0; i++);
  if (i == n) {
    for (i = 0; i < n; i++) {
      gint32 id = llm_vocab_byte_token (v, (guint8) p[i]);
      g_array_append_val (syms, id);
    }
    *last_unk = FALSE;
    return TRUE;
  }
  if (v->unk < 0) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_INPUT,
        "no token for the character U+%04X: the vocabulary has neither its "
        "bytes nor an unknown token", g_utf8_get_char (p));
    return FALSE;
  }
  if (!(*last_unk && llm_vocab_fuse_unk (v)))
    g_array_append_val (syms, v->unk);
  *last_unk = TRUE;
  return TRUE;
}

/* HF tokenizers' BPE: characters (or their bytes), then merges by rank. */
static gboolean
encode_ranked (const LlmVocab * v, const gchar * w, gsize n, GArray * ids,
    GError ** error)
{
  GArray *syms;
  gboolean last_unk = FALSE;
  guint kept;

  if (llm_vocab_ignore_merges (v)) {
    gint32 id = llm_vocab_lookup (v, w, n);

    if (id >= 0) {
      g_array_append_val (ids, id);
      return TRUE;
    }
  }
  syms = g_array_sized_new (FALSE, FALSE, sizeof (gint32), n);
  for (gsize i = 0; i < n; i += char_len (w + i)) {
    gsize clen = char_len (w + i);
    gint32 id = llm_vocab_lookup (v, w + i, clen);

    if (id >= 0) {
      g_array_append_val (syms, id);
      last_unk = FALSE;
    } else if (!add_fallback (v, w + i, clen, syms, &last_unk, error)) {
      g_array_unref (syms);
      return FALSE;
    }
  }
  kept = llm_vocab_bpe_merge (v, (gint32 *) syms->data, syms->len);
  g_array_append_vals (ids, syms->data, kept);
  g_array_unref (syms);
  return TRUE;
}

/* SentencePiece's BPE (and llama.cpp's llm_tokenizer_spm) for
 * vocabularies without merges: repeatedly join the adjacent pair whose
 * concatenation is the best-scoring piece, leftmost on ties (a heap of
 * candidate pairs, core/llm-heap.c; stale ones are skipped). */
typedef struct
{
  gsize start, n;               /* bytes of the normalized text; n == 0:
                                 * merged into its left neighbour */
  gint prev, next;
} SpmSym;

typedef struct
{
  float score;
  gint left, right;
  gsize size;                   /* bytes of the pair when it was pushed */
} SpmBigram;

/* Best score first, leftmost on ties. */
static gboolean
bigram_better (gconstpointer pa, gconstpointer pb)
{
  const SpmBigram *a = pa, *b = pb;

  return a->score > b->score || (a->score == b->score && a->left < b->left);
}

/* SentencePiece keeps control, unknown and byte pieces out of merging. */
static gint32
mergeable_piece (const LlmVocab * v, const gchar * p, gsize n)
{
  gint32 id = llm_vocab_lookup (v, p, n);

  if (id < 0 || (v->types[id] != LLM_TOKEN_NORMAL &&
          v->types[id] != LLM_TOKEN_USER_DEFINED))
    return -1;
  return id;
}

static void
try_bigram (const LlmVocab * v, const gchar * w, const SpmSym * s,
    gint left, GArray * heap)
{
  SpmBigram b;
  gint32 id;

  if (left < 0 || s[left].next < 0)
    return;
  b.left = left;
  b.right = s[left].next;
  b.size = s[left].n + s[b.right].n;
  id = mergeable_piece (v, w + s[left].start, b.size);
  if (id < 0)
    return;
  b.score = v->scores[id];
  llm_heap_push (heap, &b, bigram_better);
}

static gboolean
encode_scored (const LlmVocab * v, const gchar * w, gsize n, GArray * ids,
    GError ** error)
{
  GArray *syms = g_array_new (FALSE, FALSE, sizeof (SpmSym));
  GArray *heap = g_array_new (FALSE, FALSE, sizeof (SpmBigram));
  gboolean last_unk = FALSE, ok = TRUE;
  SpmSym *s;

  for (gsize i = 0; i < n; i += char_len (w + i)) {
    SpmSym sym = { i, char_len (w + i), (gint) syms->len - 1,
      (gint) syms->len + 1
    };
    g_array_append_val (syms, sym);
  }
  s = (SpmSym *) syms->data;
  s[syms->len - 1].next = -1;
  for (guint i = 0; i + 1 < syms->len; i++)
    try_bigram (v, w, s, i, heap);

  while (heap->len > 0) {
    SpmBigram b;
    SpmSym *l, *r;

    llm_heap_pop (heap, &b, bigram_better);
    l = &s[b.left];
    r = &s[b.right];

    if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
      continue;
    l->n += r->n;
    r->n = 0;
    l->next = r->next;
    if (r->next >= 0)
      s[r->next].prev = b.left;
    try_bigram (v, w, s, l->prev, heap);
    try_bigram (v, w, s, b.left, heap);
  }

  for (gint i = 0; ok && i >= 0; i = s[i].next) {
    gint32 id = mergeable_piece (v, w + s[i].start, s[i].n);

    if (id >= 0) {
      g_array_append_val (ids, id);
      last_unk = FALSE;
    } else {
      ok = add_fallback (v, w + s[i].start, s[i].n, ids, &last_unk, error);
    }
  }
  g_array_unref (heap);
  g_array_unref (syms);
  return ok;
}

static gboolean
encode_word (const LlmVocab * v, const gchar * w, gsize n, GArray * ids,
    GError ** error)
{
  if (n == 0)
    return TRUE;
  if (llm_vocab_has_merges (v))
    return encode_ranked (v, w, n, ids, error);
  return encode_scored (v, w, n, ids, error);
}

gboolean
llm_tokenize_spm (const LlmVocab * vocab, const gchar * seg, gsize len,
    gboolean at_start, GArray * ids, GError ** error)
{
  gboolean split_words, ok = TRUE;
  GString *norm = normalize (vocab, seg, len, at_start, &split_words);
  gsize start = 0;

  /* Metaspace with split: each '▁' starts a word; BPE never crosses */
  if (split_words) {
    for (gsize i = 1; ok && i + SPM_SPACE_LEN <= norm->len; i++) {
      if (memcmp (norm->str + i, SPM_SPACE, SPM_SPACE_LEN) != 0)
        continue;
      ok = encode_word (vocab, norm->str + start, i - start, ids, error);
      start = i;
    }
  }
  if (ok)
    ok = encode_word (vocab, norm->str + start, norm->len - start, ids, error);
  g_string_free (norm, TRUE);
  return ok;
}
