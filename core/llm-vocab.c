/* LLMasOS - vocabularies: the tables shared by the tokenizer algorithms,
 * encode dispatch, decode. Loading: core/llm-vocab-json.c (tokenizer.json)
 * and core/llm-vocab-gguf.c.
 * SPDX-License-Identifier: LGPL-2.1-or-later */

#include <string.h>

#include "llm-vocab.h"
#include "llm-error.h"
#include "llm-heap.h"

#define SPM_SPACE "\xe2\x96\x81"        /* U+2581 '▁' */
#define SPM_SPACE_LEN 3
#define UTF8_REPLACEMENT "\xef\xbf\xbd" /* U+FFFD */

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

gboolean
llm_vocab_build_piece_table (LlmVocab * v, const gchar * source,
    GError ** error)
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
  if (!llm_vocab_build_piece_table (v, source, error) ||
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

/* Lowest rank first, leftmost on ties. */
static gboolean
cand_less (gconstpointer pa, gconstpointer pb)
{
  const MergeCand *a = pa, *b = pb;

  return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
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
    llm_heap_push (heap, &c, cand_less);
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
    MergeCand c;
    guint rank;
    gint32 result;
    gint right;

    llm_heap_pop (heap, &c, cand_less);
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

    /* tokens without text (control, unknown, unused) are skipped before
     * decoding, as Hugging Face skips special tokens: they do not split
     * a run of byte tokens (the streaming detokenizer agrees) */
    if (id < 0 || (guint) id >= v->n_tokens ||
        p->text_off[id + 1] == p->text_off[id])
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
