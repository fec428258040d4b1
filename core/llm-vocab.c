/* LLMasOS - vocabularies: loading tokenizer.json, the tables shared by the
 * tokenizer algorithms, encode dispatch, decode.
 * SPDX-License-Identifier: LGPL-2.1-or-later */

#include <string.h>
#include <json-glib/json-glib.h>

#include "llm-vocab.h"
#include "llm-error.h"
#include "llm-gguf.h"

#define SPM_SPACE "\xe2\x96\x81"        /* U+2581 '▁' */
#define SPM_SPACE_LEN 3
#define UTF8_REPLACEMENT "\xef\xbf\xbd" /* U+FFFD */

/* Ids are gint32 and tables are sized by them: refuse absurd sizes early
 * instead of trying to allocate them. */
#define MAX_TOKENS (1 << 24)

typedef struct
{
  GHashTable *piece_to_id;      /* piece (borrowed from vocab->pieces) ->
                                 * GINT_TO_POINTER (id + 1) */
  GHashTable *merge_to_rank;    /* &merge_keys[rank] -> GUINT_TO_POINTER
                                 * (rank + 1); (left id << 32) | right id */
  guint64 *merge_keys;          /* n_merges */
  gint32 *merge_result;         /* n_merges: id of left + right */
  gboolean have_merges;         /* merges known: BPE by merge rank; else
                                 * SentencePiece BPE by piece score */
  gint32 byte_token[256];       /* id of <0xNN>, -1 if absent */
  gchar *text;                  /* decoded bytes of every token, packed */
  gsize *text_off;              /* n_tokens + 1 offsets into text */
  GPtrArray *added_by_byte[256];        /* added tokens (control, unknown,
                                         * user-defined) by first byte,
                                         * longest first */
  LlmSpmPrepend prepend;
  gboolean prepend_unless_present;      /* Metaspace: no '▁' before '▁' */
  gboolean split_words;         /* Metaspace split: BPE per '▁' word */
  gboolean fuse_unk;            /* runs of unknown characters: one <unk> */
  gboolean ignore_merges;       /* a word that is a piece is one token */
  gboolean use_regex;           /* GPT-2: split words with its regex */
} VocabPriv;

#define PRIV(v) ((VocabPriv *) (v)->priv)

/* ------------------------------------------------------------------------
 * UTF-8
 * --------------------------------------------------------------------- */

/* Unicode 15, table 3-7 (well-formed UTF-8 byte sequences); an invalid
 * sequence is consumed as its "maximal subpart", the W3C/Unicode
 * recommendation that Rust's from_utf8_lossy and Python follow. */
LlmUtf8Status
llm_utf8_next (const guint8 * p, gsize n, gsize * len)
{
  guint8 b0 = p[0], lo = 0x80, hi = 0xbf;
  gsize need, i;

  if (b0 < 0x80) {
    *len = 1;
    return LLM_UTF8_CHAR;
  }
  if (b0 >= 0xc2 && b0 <= 0xdf)
    need = 2;
  else if (b0 >= 0xe0 && b0 <= 0xef)
    need = 3;
  else if (b0 >= 0xf0 && b0 <= 0xf4)
    need = 4;
  else {
    *len = 1;
    return LLM_UTF8_INVALID;
  }
  /* the second byte carries the limits against overlong forms,
   * surrogates and code points above U+10FFFF */
  if (b0 == 0xe0)
    lo = 0xa0;
  else if (b0 == 0xed)
    hi = 0x9f;
  else if (b0 == 0xf0)
    lo = 0x90;
  else if (b0 == 0xf4)
    hi = 0x8f;

  for (i = 1; i < need; i++) {
    if (i >= n) {
      *len = i;
      return LLM_UTF8_INCOMPLETE;
    }
    if (p[i] < lo || p[i] > hi) {
      *len = i;
      return LLM_UTF8_INVALID;
    }
    lo = 0x80;
    hi = 0xbf;
  }
  *len = need;
  return LLM_UTF8_CHAR;
}

void
llm_utf8_append_lossy (GString * out, const guint8 * p, gsize n)
{
  gsize i = 0, len;

  while (i < n) {
    if (llm_utf8_next (p + i, n - i, &len) == LLM_UTF8_CHAR)
      g_string_append_len (out, (const gchar *) p + i, len);
    else
      g_string_append (out, UTF8_REPLACEMENT);
    i += len;
  }
}

static gboolean
check_utf8 (const gchar * text, gsize len, GError ** error)
{
  gsize i = 0, clen;

  while (i < len) {
    if (llm_utf8_next ((const guint8 *) text + i, len - i, &clen) !=
        LLM_UTF8_CHAR) {
      g_set_error (error, LLM_ERROR, LLM_ERROR_INPUT,
          "invalid UTF-8 at byte %" G_GSIZE_FORMAT, i);
      return FALSE;
    }
    i += clen;
  }
  return TRUE;
}

/* ------------------------------------------------------------------------
 * Building
 * --------------------------------------------------------------------- */

LlmVocab *
llm_vocab_alloc (LlmVocabKind kind, guint n_tokens)
{
  LlmVocab *v = g_new0 (LlmVocab, 1);
  VocabPriv *p = g_new0 (VocabPriv, 1);

  v->kind = kind;
  v->n_tokens = n_tokens;
  v->pieces = g_new0 (gchar *, n_tokens + 1);
  v->types = g_new (gint32, MAX (n_tokens, 1));
  for (guint i = 0; i < n_tokens; i++)
    v->types[i] = LLM_TOKEN_NORMAL;
  v->bos = v->eos = v->unk = v->pad = -1;
  v->priv = p;
  p->use_regex = TRUE;
  p->prepend = LLM_SPM_PREPEND_NEVER;
  return v;
}

void
llm_vocab_set_spm_prepend (LlmVocab * vocab, LlmSpmPrepend prepend,
    gboolean unless_present)
{
  PRIV (vocab)->prepend = prepend;
  PRIV (vocab)->prepend_unless_present = unless_present;
  vocab->add_space_prefix = prepend != LLM_SPM_PREPEND_NEVER;
}

void
llm_vocab_set_options (LlmVocab * vocab, gboolean fuse_unk,
    gboolean ignore_merges, gboolean use_regex, gboolean split_words)
{
  VocabPriv *p = PRIV (vocab);

  p->fuse_unk = fuse_unk;
  p->ignore_merges = ignore_merges;
  p->use_regex = use_regex;
  p->split_words = split_words;
}

void
llm_vocab_free (LlmVocab * vocab)
{
  VocabPriv *p;

  if (vocab == NULL)
    return;
  p = PRIV (vocab);
  if (p != NULL) {
    g_clear_pointer (&p->piece_to_id, g_hash_table_unref);
    g_clear_pointer (&p->merge_to_rank, g_hash_table_unref);
    g_free (p->merge_keys);
    g_free (p->merge_result);
    g_free (p->text);
    g_free (p->text_off);
    for (guint i = 0; i < 256; i++)
      g_clear_pointer (&p->added_by_byte[i], g_ptr_array_unref);
    g_free (p);
  }
  if (vocab->pieces != NULL) {
    for (guint i = 0; i < vocab->n_tokens; i++)
      g_free (vocab->pieces[i]);
    g_free (vocab->pieces);
  }
  g_free (vocab->scores);
  g_free (vocab->types);
  g_strfreev (vocab->merges);
  g_free (vocab->fingerprint);
  g_free (vocab);
}

/* "<0x41>" -> 0x41; HF writes byte tokens as <0x%02X>. */
static gint
parse_byte_piece (const gchar * s)
{
  if (strlen (s) != 6 || strncmp (s, "<0x", 3) != 0 || s[5] != '>' ||
      !g_ascii_isxdigit (s[3]) || !g_ascii_isxdigit (s[4]))
    return -1;
  return g_ascii_xdigit_value (s[3]) * 16 + g_ascii_xdigit_value (s[4]);
}

gboolean
llm_vocab_piece_is_byte (const gchar * piece)
{
  return parse_byte_piece (piece) >= 0;
}

static gboolean
build_piece_table (LlmVocab * v, const gchar * source, GError ** error)
{
  VocabPriv *p = PRIV (v);

  if (p->piece_to_id != NULL)   /* the HF loader needed it early */
    return TRUE;
  p->piece_to_id = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < v->n_tokens; i++) {
    gpointer old;

    if (v->pieces[i] == NULL) {
      g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
          "%s: token id %u has no piece (ids must be dense 0..%u)", source,
          i, v->n_tokens - 1);
      return FALSE;
    }
    old = g_hash_table_lookup (p->piece_to_id, v->pieces[i]);
    if (old != NULL) {
      g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
          "%s: duplicate piece '%s' (ids %d and %u)", source, v->pieces[i],
          GPOINTER_TO_INT (old) - 1, i);
      return FALSE;
    }
    g_hash_table_insert (p->piece_to_id, v->pieces[i], GINT_TO_POINTER (i + 1));
  }
  return TRUE;
}

static gboolean
build_byte_table (LlmVocab * v, const gchar * source, GError ** error)
{
  VocabPriv *p = PRIV (v);

  for (guint b = 0; b < 256; b++)
    p->byte_token[b] = -1;
  for (guint i = 0; i < v->n_tokens; i++) {
    gint b;

    if (v->types[i] != LLM_TOKEN_BYTE)
      continue;
    b = parse_byte_piece (v->pieces[i]);
    if (b < 0) {
      g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
          "%s: token %u has type BYTE but its piece '%s' is not <0xNN>",
          source, i, v->pieces[i]);
      return FALSE;
    }
    p->byte_token[b] = i;
  }
  return TRUE;
}

static gboolean
resolve_merge (const LlmVocab * v, const gchar * m, gsize at, gint32 * left,
    gint32 * right, gint32 * result)
{
  gsize len = strlen (m);
  g_autofree gchar *joined = NULL;

  if (at == 0 || at + 1 >= len)
    return FALSE;
  joined = g_malloc (len);
  memcpy (joined, m, at);
  memcpy (joined + at, m + at + 1, len - at);   /* with the NUL */
  *left = llm_vocab_lookup (v, m, at);
  *right = llm_vocab_lookup (v, m + at + 1, len - at - 1);
  *result = llm_vocab_lookup (v, joined, len - 1);
  return *left >= 0 && *right >= 0 && *result >= 0;
}

/* g_int64_hash() keeps only the low 32 bits, the right id: every merge
 * with the same right piece would share a bucket. Mix both halves. */
static guint
pair_hash (gconstpointer key)
{
  guint64 k = *(const guint64 *) key;

  k ^= k >> 33;
  k *= G_GUINT64_CONSTANT (0xff51afd7ed558ccd);
  k ^= k >> 33;
  return (guint) k;
}

/* A merge "left right" is split at @split (the offset of the space the
 * loader knows), or, where the loader does not know it (GGUF), at the
 * first space after the first byte, as llama.cpp reads them. */
static gboolean
build_merge_table (LlmVocab * v, const guint * split, const gchar * source,
    GError ** error)
{
  VocabPriv *p = PRIV (v);

  p->merge_to_rank = g_hash_table_new (pair_hash, g_int64_equal);
  p->merge_keys = g_new (guint64, MAX (v->n_merges, 1));
  p->merge_result = g_new (gint32, MAX (v->n_merges, 1));
  for (guint r = 0; r < v->n_merges; r++) {
    const gchar *m = v->merges[r], *sp;
    gint32 left, right, result;
    gsize at;

    if (split != NULL) {
      at = split[r];
    } else {
      sp = m[0] ? strchr (m + 1, ' ') : NULL;
      if (sp == NULL) {
        g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
            "%s: merge %u '%s' is not two pieces separated by a space",
            source, r, m);
        return FALSE;
      }
      at = sp - m;
    }
    if (!resolve_merge (v, m, at, &left, &right, &result)) {
      g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
          "%s: merge %u '%s' has a piece, or a result, that is not in the "
          "vocabulary", source, r, m);
      return FALSE;
    }
    p->merge_keys[r] = ((guint64) (guint32) left << 32) | (guint32) right;
    p->merge_result[r] = result;
    /* a pair listed twice keeps its last rank, as HF tokenizers does */
    g_hash_table_insert (p->merge_to_rank, &p->merge_keys[r],
        GUINT_TO_POINTER (r + 1));
  }
  return TRUE;
}

/* SentencePiece-compatible scores from merge ranks: the piece a merge
 * produces scores -rank (of its first merge), so that "merge the pair
 * whose result has the highest score" picks what "merge the pair with
 * the lowest rank" picks. Pieces no merge produces score below all. */
static void
derive_scores (LlmVocab * v)
{
  VocabPriv *p = PRIV (v);

  v->scores = g_new (float, MAX (v->n_tokens, 1));
  for (guint i = 0; i < v->n_tokens; i++)
    v->scores[i] = g_utf8_strlen (v->pieces[i], -1) > 1 &&
        v->types[i] == LLM_TOKEN_NORMAL ? -(float) v->n_merges : 0.0f;
  for (guint r = v->n_merges; r-- > 0;)
    v->scores[p->merge_result[r]] = -(float) r;
}

/* SPM pieces spell a space '▁'; byte tokens stand for their byte. */
static void
token_text (const LlmVocab * v, guint id, GString * out)
{
  const gchar *piece = v->pieces[id];

  switch (v->types[id]) {
    case LLM_TOKEN_CONTROL:
    case LLM_TOKEN_UNKNOWN:
    case LLM_TOKEN_UNUSED:
      return;
    case LLM_TOKEN_BYTE:
      if (v->kind == LLM_VOCAB_SPM) {
        g_string_append_c (out, (gchar) parse_byte_piece (piece));
        return;
      }
      break;
    default:
      break;
  }
  if (v->kind == LLM_VOCAB_GPT2) {
    gsize n = llm_gpt2_piece_bytes (piece, NULL, 0);
    gsize at = out->len;

    g_string_set_size (out, at + n);
    llm_gpt2_piece_bytes (piece, (guint8 *) out->str + at, n);
    return;
  }
  for (const gchar * s = piece; *s;) {
    if (strncmp (s, SPM_SPACE, SPM_SPACE_LEN) == 0) {
      g_string_append_c (out, ' ');
      s += SPM_SPACE_LEN;
    } else {
      g_string_append_c (out, *s++);
    }
  }
}

static void
build_text_table (LlmVocab * v)
{
  VocabPriv *p = PRIV (v);
  GString *all = g_string_new (NULL);

  p->text_off = g_new (gsize, v->n_tokens + 1);
  for (guint i = 0; i < v->n_tokens; i++) {
    p->text_off[i] = all->len;
    token_text (v, i, all);
  }
  p->text_off[v->n_tokens] = all->len;
  p->text = g_string_free (all, FALSE);
}

static gint
cmp_piece_len_desc (gconstpointer a, gconstpointer b, gpointer user_data)
{
  const LlmVocab *v = user_data;
  gsize la = strlen (v->pieces[GPOINTER_TO_INT (*(gpointer *) a)]);
  gsize lb = strlen (v->pieces[GPOINTER_TO_INT (*(gpointer *) b)]);

  return la < lb ? 1 : la > lb ? -1 : 0;
}

static gboolean
is_added_type (gint32 type)
{
  return type == LLM_TOKEN_CONTROL || type == LLM_TOKEN_UNKNOWN ||
      type == LLM_TOKEN_USER_DEFINED;
}

/* Added tokens are found in the text before the model's algorithm runs;
 * bucketing them by first byte keeps that cheap with thousands of them. */
static void
build_added_index (LlmVocab * v)
{
  VocabPriv *p = PRIV (v);

  for (guint i = 0; i < v->n_tokens; i++) {
    guint8 b0 = (guint8) v->pieces[i][0];

    if (!is_added_type (v->types[i]) || b0 == 0)
      continue;
    if (p->added_by_byte[b0] == NULL)
      p->added_by_byte[b0] = g_ptr_array_new ();
    g_ptr_array_add (p->added_by_byte[b0], GINT_TO_POINTER (i));
  }
  for (guint b = 0; b < 256; b++)
    if (p->added_by_byte[b] != NULL)
      g_ptr_array_sort_with_data (p->added_by_byte[b], cmp_piece_len_desc, v);
}

/* FNV-1a, 32 bits. */
static guint32
fnv1a (guint32 h, const void *data, gsize n)
{
  const guint8 *b = data;

  for (gsize i = 0; i < n; i++) {
    h ^= b[i];
    h *= 16777619u;
  }
  return h;
}

static guint32
fnv1a_i32 (guint32 h, gint32 v)
{
  guint32 le = GUINT32_TO_LE ((guint32) v);

  return fnv1a (h, &le, 4);
}

static void
compute_fingerprint (LlmVocab * v)
{
  guint32 h = 2166136261u;

  for (guint i = 0; i < v->n_tokens; i++) {
    h = fnv1a (h, v->pieces[i], strlen (v->pieces[i]) + 1);
    h = fnv1a_i32 (h, v->types[i]);
  }
  h = fnv1a_i32 (h, v->n_merges);
  for (guint r = 0; r < v->n_merges; r++)
    h = fnv1a (h, v->merges[r], strlen (v->merges[r]) + 1);
  h = fnv1a_i32 (h, v->bos);
  h = fnv1a_i32 (h, v->eos);
  h = fnv1a_i32 (h, v->unk);
  h = fnv1a_i32 (h, v->pad);
  v->fingerprint = g_strdup_printf ("%s%u-%08x",
      v->kind == LLM_VOCAB_SPM ? "spm" : "gpt2", v->n_tokens, h);
}

static gboolean
check_special_id (gint32 id, const gchar * what, guint n_tokens,
    const gchar * source, GError ** error)
{
  if (id >= -1 && id < (gint64) n_tokens)
    return TRUE;
  g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
      "%s: %s token id %d out of range (%u tokens)", source, what, id,
      n_tokens);
  return FALSE;
}

gboolean
llm_vocab_finish (LlmVocab * v, const gchar * source, const guint * split,
    GError ** error)
{
  VocabPriv *p = PRIV (v);

  if (v->n_tokens == 0) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: the vocabulary has no tokens", source);
    return FALSE;
  }
  if (!check_special_id (v->bos, "BOS", v->n_tokens, source, error) ||
      !check_special_id (v->eos, "EOS", v->n_tokens, source, error) ||
      !check_special_id (v->unk, "unknown", v->n_tokens, source, error) ||
      !check_special_id (v->pad, "padding", v->n_tokens, source, error))
    return FALSE;
  for (guint i = 0; i < v->n_tokens; i++) {
    if (v->types[i] < LLM_TOKEN_NORMAL || v->types[i] > LLM_TOKEN_BYTE) {
      g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
          "%s: token %u has unknown type %d", source, i, v->types[i]);
      return FALSE;
    }
  }
  if (!build_piece_table (v, source, error) ||
      !build_byte_table (v, source, error))
    return FALSE;
  p->have_merges = v->merges != NULL;
  if (v->merges == NULL)
    v->merges = g_new0 (gchar *, 1);
  if (!build_merge_table (v, split, source, error))
    return FALSE;
  if (v->scores == NULL)
    derive_scores (v);
  if (v->add_bos && v->bos < 0)
    v->add_bos = FALSE;
  if (v->add_eos && v->eos < 0)
    v->add_eos = FALSE;
  build_text_table (v);
  build_added_index (v);
  compute_fingerprint (v);
  return TRUE;
}

/* ------------------------------------------------------------------------
 * Lookups for the algorithms
 * --------------------------------------------------------------------- */

gint32
llm_vocab_lookup (const LlmVocab * vocab, const gchar * piece, gsize len)
{
  gchar stack[256];
  gchar *key;
  gpointer v;

  /* a piece with a NUL inside can match nothing */
  if (memchr (piece, '\0', len) != NULL)
    return -1;
  key = len < sizeof stack ? stack : g_malloc (len + 1);
  memcpy (key, piece, len);
  key[len] = '\0';
  v = g_hash_table_lookup (PRIV (vocab)->piece_to_id, key);
  if (key != stack)
    g_free (key);
  return GPOINTER_TO_INT (v) - 1;
}

gint32
llm_vocab_find (const LlmVocab * vocab, const gchar * piece)
{
  g_return_val_if_fail (vocab != NULL && piece != NULL, -1);
  return llm_vocab_lookup (vocab, piece, strlen (piece));
}

gint32
llm_vocab_byte_token (const LlmVocab * vocab, guint8 byte)
{
  return PRIV (vocab)->byte_token[byte];
}

gboolean
llm_vocab_has_merges (const LlmVocab * vocab)
{
  return PRIV (vocab)->have_merges;
}

LlmSpmPrepend
llm_vocab_spm_prepend (const LlmVocab * vocab, gboolean * unless_present,
    gboolean * split_words)
{
  *unless_present = PRIV (vocab)->prepend_unless_present;
  *split_words = PRIV (vocab)->split_words;
  return PRIV (vocab)->prepend;
}

gboolean
llm_vocab_fuse_unk (const LlmVocab * vocab)
{
  return PRIV (vocab)->fuse_unk;
}

gboolean
llm_vocab_ignore_merges (const LlmVocab * vocab)
{
  return PRIV (vocab)->ignore_merges;
}

gboolean
llm_vocab_use_regex (const LlmVocab * vocab)
{
  return PRIV (vocab)->use_regex;
}

/* Byte-pair merging by rank, exactly as HF tokenizers' Word::merge_all:
 * a heap of candidate pairs ordered by (rank, position); a popped pair
 * that no longer stands next to each other is skipped. O(n log n). */
typedef struct
{
  guint rank;
  guint pos;                    /* index of the left symbol */
  gint32 result;
} MergeCand;

typedef struct
{
  gint32 id;
  gint prev, next;              /* neighbours, -1 at the ends */
  gboolean alive;
} MergeSym;

static gboolean
cand_less (const MergeCand * a, const MergeCand * b)
{
  return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void
heap_push (GArray * heap, const MergeCand * c)
{
  MergeCand *h;
  guint i;

  g_array_append_vals (heap, c, 1);
  h = (MergeCand *) heap->data;
  for (i = heap->len - 1; i > 0 && cand_less (&h[i], &h[(i - 1) / 2]);
      i = (i - 1) / 2) {
    MergeCand t = h[i];
    h[i] = h[(i - 1) / 2];
    h[(i - 1) / 2] = t;
  }
}

static MergeCand
heap_pop (GArray * heap)
{
  MergeCand *h = (MergeCand *) heap->data;
  MergeCand top = h[0];
  guint i = 0, n;

  h[0] = h[heap->len - 1];
  g_array_set_size (heap, heap->len - 1);
  n = heap->len;
  for (;;) {
    guint l = 2 * i + 1, r = l + 1, m = i;
    MergeCand t;

    if (l < n && cand_less (&h[l], &h[m]))
      m = l;
    if (r < n && cand_less (&h[r], &h[m]))
      m = r;
    if (m == i)
      break;
    t = h[i];
    h[i] = h[m];
    h[m] = t;
    i = m;
  }
  return top;
}

static gboolean
find_merge (const VocabPriv * p, gint32 left, gint32 right, guint * rank,
    gint32 * result)
{
  guint64 key = ((guint64) (guint32) left << 32) | (guint32) right;
  gpointer v = g_hash_table_lookup (p->merge_to_rank, &key);

  if (v == NULL)
    return FALSE;
  *rank = GPOINTER_TO_UINT (v) - 1;
  *result = p->merge_result[*rank];
  return TRUE;
}

static void
push_pair (const VocabPriv * p, GArray * heap, const MergeSym * s, gint pos)
{
  MergeCand c;

  if (pos < 0 || s[pos].next < 0)
    return;
  if (find_merge (p, s[pos].id, s[s[pos].next].id, &c.rank, &c.result)) {
    c.pos = pos;
    heap_push (heap, &c);
  }
}

guint
llm_vocab_bpe_merge (const LlmVocab * vocab, gint32 * ids, guint n)
{
  const VocabPriv *p = PRIV (vocab);
  MergeSym *s;
  GArray *heap;
  guint out = 0;

  if (n < 2 || vocab->n_merges == 0)
    return n;
  s = g_new (MergeSym, n);
  heap = g_array_sized_new (FALSE, FALSE, sizeof (MergeCand), n);
  for (guint i = 0; i < n; i++) {
    s[i].id = ids[i];
    s[i].prev = (gint) i - 1;
    s[i].next = i + 1 < n ? (gint) i + 1 : -1;
    s[i].alive = TRUE;
  }
  for (guint i = 0; i + 1 < n; i++)
    push_pair (p, heap, s, i);

  while (heap->len > 0) {
    MergeCand c = heap_pop (heap);
    guint rank;
    gint32 result;
    gint right;

    if (!s[c.pos].alive || s[c.pos].next < 0)
      continue;
    right = s[c.pos].next;
    if (!find_merge (p, s[c.pos].id, s[right].id, &rank, &result) ||
        result != c.result)
      continue;
    s[c.pos].id = result;
    s[right].alive = FALSE;
    s[c.pos].next = s[right].next;
    if (s[right].next >= 0)
      s[s[right].next].prev = c.pos;
    push_pair (p, heap, s, s[c.pos].prev);
    push_pair (p, heap, s, c.pos);
  }

  for (guint i = 0; i < n; i++)
    if (s[i].alive)
      ids[out++] = s[i].id;
  g_array_unref (heap);
  g_free (s);
  return out;
}

/* ------------------------------------------------------------------------
 * tokenizer.json
 * --------------------------------------------------------------------- */

/* Small typed accessors; each failure names the member. */
static JsonNode *
member (JsonObject * o, const gchar * name)
{
  JsonNode *n = o != NULL ? json_object_get_member (o, name) : NULL;

  return n != NULL && !JSON_NODE_HOLDS_NULL (n) ? n : NULL;
}

static gboolean
type_error (const gchar * source, const gchar * what, const gchar * want,
    GError ** error)
{
  g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT, "%s: %s must be %s",
      source, what, want);
  return FALSE;
}

static gboolean
get_string (JsonObject * o, const gchar * name, const gchar * source,
    const gchar * where, const gchar ** out, GError ** error)
{
  JsonNode *n = member (o, name);

  *out = NULL;
  if (n == NULL)
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (n)
      || json_node_get_value_type (n) != G_TYPE_STRING) {
    g_autofree gchar *what = g_strdup_printf ("%s%s", where, name);
    return type_error (source, what, "a string", error);
  }
  *out = json_node_get_string (n);
  return TRUE;
}

static gboolean
get_bool (JsonObject * o, const gchar * name, const gchar * source,
    const gchar * where, gboolean * out, GError ** error)
{
  JsonNode *n = member (o, name);

  if (n == NULL)
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (n) ||
      json_node_get_value_type (n) != G_TYPE_BOOLEAN) {
    g_autofree gchar *what = g_strdup_printf ("%s%s", where, name);
    return type_error (source, what, "true or false", error);
  }
  *out = json_node_get_boolean (n);
  return TRUE;
}

static gboolean
get_object (JsonObject * o, const gchar * name, const gchar * source,
    const gchar * where, JsonObject ** out, GError ** error)
{
  JsonNode *n = member (o, name);

  *out = NULL;
  if (n == NULL)
    return TRUE;
  if (!JSON_NODE_HOLDS_OBJECT (n)) {
    g_autofree gchar *what = g_strdup_printf ("%s%s", where, name);
    return type_error (source, what, "an object", error);
  }
  *out = json_node_get_object (n);
  return TRUE;
}

static gboolean
get_array (JsonObject * o, const gchar * name, const gchar * source,
    const gchar * where, JsonArray ** out, GError ** error)
{
  JsonNode *n = member (o, name);

  *out = NULL;
  if (n == NULL)
    return TRUE;
  if (!JSON_NODE_HOLDS_ARRAY (n)) {
    g_autofree gchar *what = g_strdup_printf ("%s%s", where, name);
    return type_error (source, what, "an array", error);
  }
  *out = json_node_get_array (n);
  return TRUE;
}

static gboolean
node_is_int (JsonNode * n)
{
  return n != NULL && JSON_NODE_HOLDS_VALUE (n) &&
      json_node_get_value_type (n) == G_TYPE_INT64;
}

/* *INDENT-OFF* */
static gboolean unsupported (const gchar * source, GError ** error,
    const gchar * fmt, ...) G_GNUC_PRINTF (3, 4);
/* *INDENT-ON* */

static gboolean
unsupported (const gchar * source, GError ** error, const gchar * fmt, ...)
{
  va_list ap;
  g_autofree gchar *msg = NULL;

  va_start (ap, fmt);
  msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED, "%s: %s", source, msg);
  return FALSE;
}

/* What the normalizer and pre-tokenizer say about the algorithm. */
typedef struct
{
  LlmVocabKind kind;
  LlmSpmPrepend prepend;
  gboolean prepend_unless_present;
  gboolean split_words;
  gboolean add_prefix_space;    /* ByteLevel */
  gboolean use_regex;
} HfStyle;

static gboolean
is_string_pattern (JsonObject * o, const gchar * want)
{
  JsonObject *pat = NULL;
  const gchar *s = NULL;

  if (!get_object (o, "pattern", "", "", &pat, NULL) || pat == NULL)
    return FALSE;
  return get_string (pat, "String", "", "", &s, NULL) && g_strcmp0 (s,
      want) == 0;
}

/* The Llama normalizer: Prepend '▁' and Replace ' ' -> '▁', in a
 * Sequence or alone. */
static gboolean
read_normalizer (JsonObject * norm, const gchar * source,
    gboolean * prepend, gboolean * replace, GError ** error)
{
  const gchar *type = NULL, *s = NULL;
  JsonArray *list = NULL;

  if (!get_string (norm, "type", source, "normalizer.", &type, error))
    return FALSE;
  if (g_strcmp0 (type, "Sequence") == 0) {
    if (!get_array (norm, "normalizers", source, "normalizer.", &list, error))
      return FALSE;
    for (guint i = 0; list != NULL && i < json_array_get_length (list); i++) {
      JsonNode *n = json_array_get_element (list, i);

      if (!JSON_NODE_HOLDS_OBJECT (n))
        return type_error (source, "normalizer.normalizers[]", "objects",
            error);
      if (!read_normalizer (json_node_get_object (n), source, prepend,
              replace, error))
        return FALSE;
    }
    return TRUE;
  }
  if (g_strcmp0 (type, "Prepend") == 0) {
    if (!get_string (norm, "prepend", source, "normalizer.", &s, error))
      return FALSE;
    if (g_strcmp0 (s, SPM_SPACE) != 0)
      return unsupported (source, error, "normalizer Prepend of '%s' is not "
          "supported (only '" SPM_SPACE "')", s ? s : "");
    *prepend = TRUE;
    return TRUE;
  }
  if (g_strcmp0 (type, "Replace") == 0) {
    if (!get_string (norm, "content", source, "normalizer.", &s, error))
      return FALSE;
    if (!is_string_pattern (norm, " ") || g_strcmp0 (s, SPM_SPACE) != 0)
      return unsupported (source, error, "normalizer Replace is supported "
          "only as ' ' -> '" SPM_SPACE "'");
    *replace = TRUE;
    return TRUE;
  }
  return unsupported (source, error, "normalizer '%s' is not supported",
      type ? type : "(no type)");
}

static gboolean
read_metaspace (JsonObject * pre, const gchar * source, HfStyle * st,
    GError ** error)
{
  const gchar *rep = NULL, *scheme = NULL;
  gboolean add_prefix = TRUE, split = TRUE;

  if (!get_string (pre, "replacement", source, "pre_tokenizer.", &rep, error)
      || !get_string (pre, "prepend_scheme", source, "pre_tokenizer.",
          &scheme, error)
      || !get_bool (pre, "add_prefix_space", source, "pre_tokenizer.",
          &add_prefix, error)
      || !get_bool (pre, "split", source, "pre_tokenizer.", &split, error))
    return FALSE;
  if (g_strcmp0 (rep, SPM_SPACE) != 0)
    return unsupported (source, error, "Metaspace replacement '%s' is not "
        "supported (only '" SPM_SPACE "')", rep ? rep : "");
  st->kind = LLM_VOCAB_SPM;
  st->prepend_unless_present = TRUE;
  st->split_words = split;
  if (scheme == NULL)
    st->prepend = add_prefix ? LLM_SPM_PREPEND_ALWAYS : LLM_SPM_PREPEND_NEVER;
  else if (strcmp (scheme, "always") == 0)
    st->prepend = LLM_SPM_PREPEND_ALWAYS;
  else if (strcmp (scheme, "first") == 0)
    st->prepend = LLM_SPM_PREPEND_FIRST;
  else if (strcmp (scheme, "never") == 0)
    st->prepend = LLM_SPM_PREPEND_NEVER;
  else
    return unsupported (source, error, "Metaspace prepend_scheme '%s' is "
        "not supported", scheme);
  return TRUE;
}

static gboolean
read_pre_tokenizer (JsonObject * pre, const gchar * source, HfStyle * st,
    gboolean * seen, GError ** error)
{
  const gchar *type = NULL;
  JsonArray *list = NULL;

  if (!get_string (pre, "type", source, "pre_tokenizer.", &type, error))
    return FALSE;
  if (g_strcmp0 (type, "Sequence") == 0) {
    if (!get_array (pre, "pretokenizers", source, "pre_tokenizer.", &list,
            error))
      return FALSE;
    for (guint i = 0; list != NULL && i < json_array_get_length (list); i++) {
      JsonNode *n = json_array_get_element (list, i);

      if (!JSON_NODE_HOLDS_OBJECT (n))
        return type_error (source, "pre_tokenizer.pretokenizers[]",
            "objects", error);
      if (*seen)
        return unsupported (source, error, "a Sequence of several "
            "pre-tokenizers is not supported");
      if (!read_pre_tokenizer (json_node_get_object (n), source, st, seen,
              error))
        return FALSE;
    }
    return TRUE;
  }
  if (g_strcmp0 (type, "ByteLevel") == 0) {
    st->kind = LLM_VOCAB_GPT2;
    st->add_prefix_space = TRUE;
    st->use_regex = TRUE;
    *seen = TRUE;
    return get_bool (pre, "add_prefix_space", source, "pre_tokenizer.",
        &st->add_prefix_space, error) && get_bool (pre, "use_regex", source,
        "pre_tokenizer.", &st->use_regex, error);
  }
  if (g_strcmp0 (type, "Metaspace") == 0) {
    *seen = TRUE;
    return read_metaspace (pre, source, st, error);
  }
  return unsupported (source, error, "pre_tokenizer '%s' is not supported",
      type ? type : "(no type)");
}

/* Llama-style SPM (the normalizer, or a Metaspace pre-tokenizer) or
 * GPT-2 byte-level BPE (a ByteLevel pre-tokenizer). */
static gboolean
detect_style (JsonObject * root, const gchar * source, HfStyle * st,
    GError ** error)
{
  JsonObject *norm = NULL, *pre = NULL;
  gboolean prepend = FALSE, replace = FALSE, seen = FALSE;

  memset (st, 0, sizeof *st);
  if (!get_object (root, "normalizer", source, "", &norm, error) ||
      !get_object (root, "pre_tokenizer", source, "", &pre, error))
    return FALSE;
  if (norm != NULL && !read_normalizer (norm, source, &prepend, &replace,
          error))
    return FALSE;
  if (pre != NULL && !read_pre_tokenizer (pre, source, st, &seen, error))
    return FALSE;

  if (seen && st->kind == LLM_VOCAB_GPT2) {
    if (norm != NULL)
      return unsupported (source, error, "a normalizer together with the "
          "ByteLevel pre-tokenizer is not supported");
    return TRUE;
  }
  if (seen)                     /* Metaspace */
    return norm == NULL || !prepend ? TRUE : unsupported (source, error,
        "a Prepend normalizer together with Metaspace is not supported");
  if (!replace)
    return unsupported (source, error, "neither a SentencePiece-style "
        "normalizer (Replace ' ' -> '" SPM_SPACE "') nor a ByteLevel or "
        "Metaspace pre-tokenizer: this tokenizer is not supported");
  /* transformers' LlamaTokenizer runs this as Metaspace (prepend_scheme
   * "always"), which adds no '▁' before a text that starts with a space;
   * our references come from it. The raw normalizer, sentencepiece and
   * llama.cpp would give " t" an extra '▁'. */
  st->kind = LLM_VOCAB_SPM;
  st->prepend = prepend ? LLM_SPM_PREPEND_ALWAYS : LLM_SPM_PREPEND_NEVER;
  st->prepend_unless_present = TRUE;
  return TRUE;
}

static gboolean
put_piece (gchar ** pieces, guint n, gint64 id, const gchar * piece,
    const gchar * source, GError ** error)
{
  if (id < 0 || id >= n) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: token '%s' has id %" G_GINT64_FORMAT " out of range "
        "(0..%u for %u entries)", source, piece, id, n - 1, n);
    return FALSE;
  }
  if (pieces[id] != NULL && strcmp (pieces[id], piece) != 0) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: id %" G_GINT64_FORMAT " is given to both '%s' and '%s'", source,
        id, pieces[id], piece);
    return FALSE;
  }
  if (pieces[id] == NULL)
    pieces[id] = g_strdup (piece);
  return TRUE;
}

/* Every piece lands at its id; the vocabulary is the union of model.vocab
 * and added_tokens, which repeat some entries (<unk>, <s>). */
static gboolean
read_pieces (JsonObject * model, JsonArray * added, const gchar * source,
    gchar *** out, guint * n_out, GError ** error)
{
  JsonObject *vocab = NULL;
  JsonObjectIter it;
  const gchar *name;
  JsonNode *node;
  guint n_added = added ? json_array_get_length (added) : 0;
  gint64 max_id = -1;
  guint n_entries;
  gchar **pieces;

  if (!get_object (model, "vocab", source, "model.", &vocab, error))
    return FALSE;
  if (vocab == NULL)
    return type_error (source, "model.vocab", "an object", error);
  n_entries = json_object_get_size (vocab) + n_added;
  if (n_entries == 0 || n_entries > MAX_TOKENS) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: model.vocab has %u entries", source, n_entries);
    return FALSE;
  }
  /* ids must be dense, so none can reach the number of entries */
  pieces = g_new0 (gchar *, n_entries + 1);
  json_object_iter_init (&it, vocab);
  while (json_object_iter_next (&it, &name, &node)) {
    if (!node_is_int (node)) {
      g_autofree gchar *what = g_strdup_printf ("model.vocab['%s']", name);
      type_error (source, what, "an integer id", error);
      goto fail;
    }
    if (!put_piece (pieces, n_entries, json_node_get_int (node), name,
            source, error))
      goto fail;
    max_id = MAX (max_id, json_node_get_int (node));
  }
  for (guint i = 0; i < n_added; i++) {
    JsonNode *e = json_array_get_element (added, i);
    JsonObject *o = JSON_NODE_HOLDS_OBJECT (e) ? json_node_get_object (e) :
        NULL;
    const gchar *content = NULL;

    if (o == NULL || !node_is_int (member (o, "id")) ||
        !get_string (o, "content", source, "added_tokens[].", &content, NULL)
        || content == NULL) {
      g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
          "%s: added_tokens[%u] must be an object with an integer id and a "
          "string content", source, i);
      goto fail;
    }
    if (!put_piece (pieces, n_entries, json_node_get_int (member (o, "id")),
            content, source, error))
      goto fail;
    max_id = MAX (max_id, json_node_get_int (member (o, "id")));
  }
  *out = pieces;
  *n_out = max_id + 1;
  return TRUE;

fail:
  /* ids are not dense yet: free every slot, not up to the first hole */
  for (guint i = 0; i < n_entries; i++)
    g_free (pieces[i]);
  g_free (pieces);
  return FALSE;
}

/* Types: added tokens are CONTROL when special, else USER_DEFINED; with
 * byte fallback, <0xNN> pieces are BYTE. */
static gboolean
read_types (LlmVocab * v, JsonArray * added, gboolean byte_fallback,
    const gchar * source, GError ** error)
{
  for (guint i = 0; byte_fallback && i < v->n_tokens; i++)
    if (parse_byte_piece (v->pieces[i]) >= 0)
      v->types[i] = LLM_TOKEN_BYTE;
  for (guint i = 0; added != NULL && i < json_array_get_length (added); i++) {
    JsonObject *o = json_array_get_object_element (added, i);
    gint64 id = json_node_get_int (member (o, "id"));
    gboolean special = FALSE;

    if (!get_bool (o, "special", source, "added_tokens[].", &special, error))
      return FALSE;
    v->types[id] = special ? LLM_TOKEN_CONTROL : LLM_TOKEN_USER_DEFINED;
  }
  return TRUE;
}

/* Merges, ranked by position: "a b" strings (older files) or ["a", "b"]
 * pairs (newer ones, which allow spaces inside pieces). */
static gboolean
read_merges (LlmVocab * v, JsonObject * model, const gchar * source,
    guint ** split_out, GError ** error)
{
  JsonArray *arr = NULL;
  guint n;
  guint *split;

  if (!get_array (model, "merges", source, "model.", &arr, error))
    return FALSE;
  n = arr ? json_array_get_length (arr) : 0;
  v->merges = g_new0 (gchar *, n + 1);
  split = g_new (guint, MAX (n, 1));
  for (guint i = 0; i < n; i++) {
    JsonNode *e = json_array_get_element (arr, i);
    const gchar *s, *sp;

    if (JSON_NODE_HOLDS_VALUE (e) && json_node_get_value_type (e) ==
        G_TYPE_STRING && (s = json_node_get_string (e)) != NULL &&
        (sp = strchr (s, ' ')) != NULL && sp != s && sp[1] != '\0' &&
        strchr (sp + 1, ' ') == NULL) {
      v->merges[i] = g_strdup (s);
      split[i] = sp - s;
    } else if (JSON_NODE_HOLDS_ARRAY (e) &&
        json_array_get_length (json_node_get_array (e)) == 2 &&
        json_node_get_value_type (json_array_get_element
            (json_node_get_array (e), 0)) == G_TYPE_STRING &&
        json_node_get_value_type (json_array_get_element
            (json_node_get_array (e), 1)) == G_TYPE_STRING) {
      JsonArray *pair = json_node_get_array (e);
      const gchar *a = json_array_get_string_element (pair, 0);

      v->merges[i] = g_strconcat (a, " ",
          json_array_get_string_element (pair, 1), NULL);
      split[i] = strlen (a);
    } else {
      g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
          "%s: model.merges[%u] must be \"left right\" or [\"left\", "
          "\"right\"]", source, i);
      g_free (split);
      return FALSE;
    }
    v->n_merges = i + 1;
  }
  *split_out = split;
  return TRUE;
}

static gboolean
check_model (JsonObject * model, const gchar * source, GError ** error)
{
  const gchar *type = NULL, *prefix = NULL, *suffix = NULL;
  JsonNode *dropout = member (model, "dropout");

  if (!get_string (model, "type", source, "model.", &type, error) ||
      !get_string (model, "continuing_subword_prefix", source, "model.",
          &prefix, error) ||
      !get_string (model, "end_of_word_suffix", source, "model.", &suffix,
          error))
    return FALSE;
  if (type == NULL && member (model, "merges") == NULL)
    return type_error (source, "model.type", "a string", error);
  if (type != NULL && strcmp (type, "BPE") != 0)
    return unsupported (source, error, "model type '%s' is not supported "
        "(only BPE)", type);
  if ((prefix && *prefix) || (suffix && *suffix))
    return unsupported (source, error, "BPE with continuing_subword_prefix "
        "or end_of_word_suffix is not supported");
  if (dropout != NULL && JSON_NODE_HOLDS_VALUE (dropout) &&
      json_node_get_double (dropout) > 0.0)
    return unsupported (source, error, "BPE dropout is not supported");
  return TRUE;
}

/* A token named in tokenizer_config.json: a string or an AddedToken
 * object {"content": ...}; NULL when absent or null. */
static gboolean
config_token_name (JsonObject * config, const gchar * key,
    const gchar * source, const gchar ** out, GError ** error)
{
  JsonNode *n = member (config, key);

  *out = NULL;
  if (n == NULL)
    return TRUE;
  if (JSON_NODE_HOLDS_OBJECT (n))
    return get_string (json_node_get_object (n), "content", source, key, out,
        error);
  return get_string (config, key, source, "", out, error);
}

static gboolean
resolve_name (LlmVocab * v, const gchar * name, gint32 * id,
    const gchar * what, const gchar * source, GError ** error)
{
  if (name == NULL)
    return TRUE;
  *id = llm_vocab_find (v, name);
  if (*id >= 0)
    return TRUE;
  g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
      "%s: %s '%s' is not in the vocabulary", source, what, name);
  return FALSE;
}

/* The first and last items of a TemplateProcessing "single" template
 * name the tokens put around a text (Llama: "<s>" $A). */
static void
template_specials (JsonObject * post, const gchar ** first, const gchar ** last)
{
  const gchar *type = NULL;
  JsonArray *single = NULL;
  guint n;

  if (!get_string (post, "type", "", "", &type, NULL) || type == NULL)
    return;
  if (strcmp (type, "Sequence") == 0) {
    JsonArray *list = NULL;

    if (get_array (post, "processors", "", "", &list, NULL) && list != NULL)
      for (guint i = 0; i < json_array_get_length (list); i++)
        if (JSON_NODE_HOLDS_OBJECT (json_array_get_element (list, i)))
          template_specials (json_array_get_object_element (list, i), first,
              last);
    return;
  }
  if (strcmp (type, "TemplateProcessing") != 0 ||
      !get_array (post, "single", "", "", &single, NULL) || single == NULL ||
      (n = json_array_get_length (single)) == 0)
    return;
  for (guint k = 0; k < 2; k++) {
    JsonNode *e = json_array_get_element (single, k == 0 ? 0 : n - 1);
    JsonObject *sp = NULL;
    const gchar *id = NULL;

    if (!JSON_NODE_HOLDS_OBJECT (e) || !get_object (json_node_get_object (e),
            "SpecialToken", "", "", &sp, NULL) || sp == NULL ||
        !get_string (sp, "id", "", "", &id, NULL))
      continue;
    *(k == 0 ? first : last) = id;
  }
}

static const gchar *const bos_names[] = { "<s>", "<|begin_of_text|>",
  "<bos>", "<|endoftext|>", NULL
};

static const gchar *const eos_names[] = { "</s>", "<|end_of_text|>",
  "<eos>", "<|endoftext|>", NULL
};

static const gchar *
conventional_name (const LlmVocab * v, const gchar * const *names)
{
  for (guint i = 0; names[i] != NULL; i++) {
    gint32 id = llm_vocab_find (v, names[i]);

    if (id >= 0 && v->types[id] == LLM_TOKEN_CONTROL)
      return names[i];
  }
  return NULL;
}

/* BOS/EOS/UNK/PAD and whether to add BOS/EOS: tokenizer_config.json when
 * given, else the post-processor template and the model's unk_token. */
static gboolean
read_specials (LlmVocab * v, JsonObject * root, JsonObject * model,
    JsonObject * config, const gchar * source, GError ** error)
{
  const gchar *unk = NULL, *bos = NULL, *eos = NULL, *pad = NULL;
  const gchar *t_first = NULL, *t_last = NULL;
  JsonObject *post = NULL;
  gboolean have_add_bos = config != NULL && member (config,
      "add_bos_token") != NULL;
  gboolean have_add_eos = config != NULL && member (config,
      "add_eos_token") != NULL;

  if (!get_string (model, "unk_token", source, "model.", &unk, error) ||
      !get_object (root, "post_processor", source, "", &post, error))
    return FALSE;
  if (post != NULL)
    template_specials (post, &t_first, &t_last);
  bos = t_first;
  eos = t_last;
  if (config != NULL) {
    const gchar *c_bos, *c_eos, *c_unk;

    if (!config_token_name (config, "bos_token", source, &c_bos, error) ||
        !config_token_name (config, "eos_token", source, &c_eos, error) ||
        !config_token_name (config, "unk_token", source, &c_unk, error) ||
        !config_token_name (config, "pad_token", source, &pad, error) ||
        !get_bool (config, "add_bos_token", source, "", &v->add_bos, error) ||
        !get_bool (config, "add_eos_token", source, "", &v->add_eos, error))
      return FALSE;
    bos = c_bos ? c_bos : bos;
    eos = c_eos ? c_eos : eos;
    unk = c_unk ? c_unk : unk;
  }
  /* without names, the conventional ones when they are control tokens */
  if (bos == NULL)
    bos = conventional_name (v, bos_names);
  if (eos == NULL)
    eos = conventional_name (v, eos_names);
  if (!have_add_bos)
    v->add_bos = t_first != NULL;
  if (!have_add_eos)
    v->add_eos = t_last != NULL && t_last != t_first;
  return resolve_name (v, unk, &v->unk, "unk_token", source, error) &&
      resolve_name (v, bos, &v->bos, "bos_token", source, error) &&
      resolve_name (v, eos, &v->eos, "eos_token", source, error) &&
      resolve_name (v, pad, &v->pad, "pad_token", source, error);
}

static JsonParser *
parse_json (const gchar * data, gsize len, const gchar * source,
    GError ** error)
{
  JsonParser *parser = json_parser_new ();
  GError *err = NULL;

  if (!json_parser_load_from_data (parser, data, len, &err)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT, "%s: not valid JSON: %s",
        source, err->message);
    g_error_free (err);
    g_object_unref (parser);
    return NULL;
  }
  if (json_parser_get_root (parser) == NULL ||
      !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser))) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: the top level must be a JSON object", source);
    g_object_unref (parser);
    return NULL;
  }
  return parser;
}

static LlmVocab *
vocab_from_hf (JsonObject * root, JsonObject * config, const gchar * source,
    GError ** error)
{
  JsonObject *model = NULL;
  JsonArray *added = NULL;
  HfStyle st;
  gchar **pieces = NULL;
  guint n = 0;
  g_autofree guint *split = NULL;
  gboolean byte_fallback = FALSE, fuse_unk = FALSE, ignore_merges = FALSE;
  LlmVocab *v;

  if (!get_object (root, "model", source, "", &model, error))
    return NULL;
  if (model == NULL) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
        "%s: no \"model\" object", source);
    return NULL;
  }
  if (!check_model (model, source, error) ||
      !get_bool (model, "byte_fallback", source, "model.", &byte_fallback,
          error) ||
      !get_bool (model, "fuse_unk", source, "model.", &fuse_unk, error) ||
      !get_bool (model, "ignore_merges", source, "model.", &ignore_merges,
          error) ||
      !get_array (root, "added_tokens", source, "", &added, error) ||
      !detect_style (root, source, &st, error) ||
      !read_pieces (model, added, source, &pieces, &n, error))
    return NULL;

  v = llm_vocab_alloc (st.kind, n);
  for (guint i = 0; i < n; i++)
    v->pieces[i] = pieces[i];
  g_free (pieces);              /* entries past n are NULL */
  if (st.kind == LLM_VOCAB_SPM) {
    llm_vocab_set_spm_prepend (v, st.prepend, st.prepend_unless_present);
  } else {
    v->add_space_prefix = st.add_prefix_space;
  }
  llm_vocab_set_options (v, fuse_unk, ignore_merges, st.use_regex,
      st.split_words);
  /* ids must be dense 0..n-1: name the first hole */
  for (guint i = 0; i < n; i++)
    if (v->pieces[i] == NULL) {
      g_set_error (error, LLM_ERROR, LLM_ERROR_FORMAT,
          "%s: token id %u has no piece (ids must be dense 0..%u)", source,
          i, n - 1);
      goto fail;
    }
  if (!read_types (v, added, byte_fallback, source, error) ||
      !read_merges (v, model, source, &split, error) ||
      !build_piece_table (v, source, error) ||
      !read_specials (v, root, model, config, source, error))
    goto fail;
  if (!llm_vocab_finish (v, source, split, error))
    goto fail;
  return v;

fail:
  llm_vocab_free (v);
  return NULL;
}

LlmVocab *
llm_vocab_new_from_hf_json_data (const gchar * data, gsize len, GError ** error)
{
  g_autoptr (JsonParser) parser = NULL;

  g_return_val_if_fail (data != NULL || len == 0, NULL);
  parser = parse_json (data ? data : "", len, "tokenizer.json", error);
  if (parser == NULL)
    return NULL;
  return vocab_from_hf (json_node_get_object (json_parser_get_root (parser)),
      NULL, "tokenizer.json", error);
}

static gboolean
read_file (const gchar * path, gchar ** data, gsize * len, GError ** error)
{
  GError *err = NULL;

  if (g_file_get_contents (path, data, len, &err))
    return TRUE;
  g_set_error (error, LLM_ERROR, LLM_ERROR_IO, "%s", err->message);
  g_error_free (err);
  return FALSE;
}

LlmVocab *
llm_vocab_new_from_hf_json (const gchar * tokenizer_json_path,
    const gchar * config_path, GError ** error)
{
  g_autofree gchar *data = NULL, *cdata = NULL;
  gsize len = 0, clen = 0;
  g_autoptr (JsonParser) parser = NULL;
  g_autoptr (JsonParser) cparser = NULL;
  JsonObject *config = NULL;

  g_return_val_if_fail (tokenizer_json_path != NULL, NULL);
  if (!read_file (tokenizer_json_path, &data, &len, error))
    return NULL;
  parser = parse_json (data, len, tokenizer_json_path, error);
  if (parser == NULL)
    return NULL;
  if (config_path != NULL) {
    if (!read_file (config_path, &cdata, &clen, error))
      return NULL;
    cparser = parse_json (cdata, clen, config_path, error);
    if (cparser == NULL)
      return NULL;
    config = json_node_get_object (json_parser_get_root (cparser));
  }
  return vocab_from_hf (json_node_get_object (json_parser_get_root (parser)),
      config, tokenizer_json_path, error);
}

static LlmVocab *
vocab_from_folder (const gchar * dir, GError ** error)
{
  g_autofree gchar *json = g_build_filename (dir, "tokenizer.json", NULL);
  g_autofree gchar *config = g_build_filename (dir, "tokenizer_config.json",
      NULL);

  if (!g_file_test (json, G_FILE_TEST_IS_REGULAR)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_IO,
        "%s: no tokenizer.json in this folder", dir);
    return NULL;
  }
  return llm_vocab_new_from_hf_json (json,
      g_file_test (config, G_FILE_TEST_IS_REGULAR) ? config : NULL, error);
}

LlmVocab *
llm_vocab_new_from_path (const gchar * path, GError ** error)
{
  g_autoptr (LlmGguf) gguf = NULL;

  g_return_val_if_fail (path != NULL, NULL);
  if (g_file_test (path, G_FILE_TEST_IS_DIR))
    return vocab_from_folder (path, error);
  if (!g_file_test (path, G_FILE_TEST_EXISTS)) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_IO,
        "%s: no such file or folder", path);
    return NULL;
  }
  if (g_str_has_suffix (path, ".json")) {
    g_autofree gchar *dir = g_path_get_dirname (path);
    g_autofree gchar *config = g_build_filename (dir,
        "tokenizer_config.json", NULL);

    return llm_vocab_new_from_hf_json (path,
        g_file_test (config, G_FILE_TEST_IS_REGULAR) ? config : NULL, error);
  }
  gguf = llm_gguf_open (path, error);
  if (gguf == NULL)
    return NULL;
  return llm_vocab_new_from_gguf (gguf, error);
}

/* ------------------------------------------------------------------------
 * Encode, decode
 * --------------------------------------------------------------------- */

/* The longest added token at @p, or -1. Control and unknown tokens count
 * only with @parse_special; user-defined ones always do. */
static gint32
match_added (const LlmVocab * v, const gchar * p, gsize n,
    gboolean parse_special, gsize * mlen)
{
  GPtrArray *cands = PRIV (v)->added_by_byte[(guint8) p[0]];

  for (guint i = 0; cands != NULL && i < cands->len; i++) {
    gint32 id = GPOINTER_TO_INT (g_ptr_array_index (cands, i));
    const gchar *piece = v->pieces[id];
    gsize len = strlen (piece);

    if (!parse_special && v->types[id] != LLM_TOKEN_USER_DEFINED)
      continue;
    if (len <= n && memcmp (p, piece, len) == 0) {
      *mlen = len;
      return id;
    }
  }
  return -1;
}

static gboolean
encode_segment (const LlmVocab * v, const gchar * seg, gsize len,
    gboolean at_start, GArray * ids, GError ** error)
{
  if (len == 0)
    return TRUE;
  if (v->kind == LLM_VOCAB_SPM)
    return llm_tokenize_spm (v, seg, len, at_start, ids, error);
  return llm_tokenize_gpt2 (v, seg, len, ids, error);
}

GArray *
llm_vocab_encode_full (const LlmVocab * vocab, const gchar * text,
    gssize len, LlmEncodeFlags flags, GError ** error)
{
  GArray *ids;
  gsize n, seg = 0, pos = 0, mlen;

  g_return_val_if_fail (vocab != NULL, NULL);
  g_return_val_if_fail (text != NULL || len == 0, NULL);
  n = len < 0 ? strlen (text) : (gsize) len;
  if (!check_utf8 (text, n, error))
    return NULL;
  ids = g_array_new (FALSE, FALSE, sizeof (gint32));
  if ((flags & LLM_ENCODE_ADD_SPECIAL) && vocab->add_bos)
    g_array_append_val (ids, vocab->bos);
  while (pos < n) {
    gint32 id = match_added (vocab, text + pos, n - pos,
        flags & LLM_ENCODE_PARSE_SPECIAL, &mlen);

    if (id < 0) {
      pos++;
      continue;
    }
    if (!encode_segment (vocab, text + seg, pos - seg, seg == 0, ids, error))
      goto fail;
    g_array_append_val (ids, id);
    pos += mlen;
    seg = pos;
  }
  if (!encode_segment (vocab, text + seg, n - seg, seg == 0, ids, error))
    goto fail;
  if ((flags & LLM_ENCODE_ADD_SPECIAL) && vocab->add_eos)
    g_array_append_val (ids, vocab->eos);
  return ids;

fail:
  g_array_unref (ids);
  return NULL;
}

GArray *
llm_vocab_encode (const LlmVocab * vocab, const gchar * text, gssize len,
    gboolean add_special, GError ** error)
{
  return llm_vocab_encode_full (vocab, text, len, LLM_ENCODE_PARSE_SPECIAL |
      (add_special ? LLM_ENCODE_ADD_SPECIAL : 0), error);
}

gsize
llm_vocab_token_bytes (const LlmVocab * vocab, gint32 id, guint8 * buf,
    gsize size)
{
  const VocabPriv *p;
  gsize n;

  g_return_val_if_fail (vocab != NULL, 0);
  if (id < 0 || (guint) id >= vocab->n_tokens)
    return 0;
  p = PRIV (vocab);
  n = p->text_off[id + 1] - p->text_off[id];
  if (buf != NULL)
    memcpy (buf, p->text + p->text_off[id], MIN (n, size));
  return n;
}

gboolean
llm_vocab_is_control (const LlmVocab * vocab, gint32 id)
{
  g_return_val_if_fail (vocab != NULL, FALSE);
  if (id < 0 || (guint) id >= vocab->n_tokens)
    return FALSE;
  return vocab->types[id] == LLM_TOKEN_CONTROL ||
      vocab->types[id] == LLM_TOKEN_UNKNOWN;
}

/* HF's ByteFallback decoder: a run of byte tokens that is not valid UTF-8
 * as a whole becomes one U+FFFD per token. */
static void
append_byte_run (GString * out, const guint8 * run, gsize n)
{
  gsize i = 0, len;

  while (i < n && llm_utf8_next (run + i, n - i, &len) == LLM_UTF8_CHAR)
    i += len;
  if (i == n) {
    g_string_append_len (out, (const gchar *) run, n);
    return;
  }
  for (i = 0; i < n; i++)
    g_string_append (out, UTF8_REPLACEMENT);
}

static gchar *
decode_spm (const LlmVocab * v, const gint32 * ids, gsize n_ids)
{
  GString *out = g_string_new (NULL);
  GByteArray *run = g_byte_array_new ();
  const VocabPriv *p = PRIV (v);

  for (gsize i = 0; i < n_ids; i++) {
    gint32 id = ids[i];

    if (id < 0 || (guint) id >= v->n_tokens)
      continue;
    if (v->types[id] == LLM_TOKEN_BYTE) {
      g_byte_array_append (run, (const guint8 *) p->text + p->text_off[id], 1);
      continue;
    }
    append_byte_run (out, run->data, run->len);
    g_byte_array_set_size (run, 0);
    g_string_append_len (out, p->text + p->text_off[id],
        p->text_off[id + 1] - p->text_off[id]);
  }
  append_byte_run (out, run->data, run->len);
  g_byte_array_unref (run);
  if (v->add_space_prefix && out->str[0] == ' ')
    g_string_erase (out, 0, 1);
  return g_string_free (out, FALSE);
}

gchar *
llm_vocab_decode (const LlmVocab * vocab, const gint32 * ids, gsize n_ids)
{
  GByteArray *bytes;
  GString *out;

  g_return_val_if_fail (vocab != NULL, NULL);
  g_return_val_if_fail (ids != NULL || n_ids == 0, NULL);
  if (vocab->kind == LLM_VOCAB_SPM)
    return decode_spm (vocab, ids, n_ids);

  /* byte-level: all bytes first, then one lossy UTF-8 pass */
  bytes = g_byte_array_new ();
  for (gsize i = 0; i < n_ids; i++) {
    const VocabPriv *p = PRIV (vocab);
    gint32 id = ids[i];

    if (id < 0 || (guint) id >= vocab->n_tokens)
      continue;
    g_byte_array_append (bytes, (const guint8 *) p->text + p->text_off[id],
        p->text_off[id + 1] - p->text_off[id]);
  }
  out = g_string_sized_new (bytes->len);
  llm_utf8_append_lossy (out, bytes->data, bytes->len);
  g_byte_array_unref (bytes);
  return g_string_free (out, FALSE);
}
