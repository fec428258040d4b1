/* LLMasOS - GPT-2 byte-level BPE: tokenizer.json with the ByteLevel
 * pre-tokenizer, GGUF model "gpt2".
 * SPDX-License-Identifier: LGPL-2.1-or-later */

#include <string.h>

#include "llm-vocab.h"
#include "llm-error.h"

/* GPT-2's bytes_to_unicode(): printable Latin-1 bytes stand for
 * themselves; the other 68 (controls, space, 0x7f-0xa0, 0xad) are moved,
 * in order, to U+0100..U+0143 so that every piece is printable text. */
static gunichar
byte_to_unichar (guint8 b)
{
  if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae)
    return b;
  if (b <= 0x20)
    return 0x100 + b;
  if (b <= 0xa0)                /* 0x7f..0xa0 */
    return 0x100 + 0x21 + (b - 0x7f);
  return 0x100 + 0x21 + 0x22;   /* 0xad */
}

static gint
unichar_to_byte (gunichar c)
{
  if ((c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xac) ||
      (c >= 0xae && c <= 0xff))
    return c;
  if (c >= 0x100 && c <= 0x120)
    return c - 0x100;
  if (c >= 0x121 && c <= 0x142)
    return c - 0x121 + 0x7f;
  if (c == 0x143)
    return 0xad;
  return -1;
}

static void
bytes_to_unicode (GString * out, const guint8 * bytes, gsize n)
{
  for (gsize i = 0; i < n; i++)
    g_string_append_unichar (out, byte_to_unichar (bytes[i]));
}

/* A piece back to bytes; a piece with a character outside the table (an
 * added token such as "<|endoftext|>" written plainly) is its own UTF-8,
 * as HF's ByteLevel decoder does. */
gsize
llm_gpt2_piece_bytes (const gchar * piece, guint8 * buf, gsize size)
{
  gsize n = 0;

  for (const gchar * p = piece; *p; p = g_utf8_next_char (p)) {
    if (unichar_to_byte (g_utf8_get_char (p)) < 0) {
      n = strlen (piece);
      if (buf != NULL)
        memcpy (buf, piece, MIN (n, size));
      return n;
    }
    n++;
  }
  n = 0;
  for (const gchar * p = piece; *p; p = g_utf8_next_char (p), n++)
    if (buf != NULL && n < size)
      buf[n] = unichar_to_byte (g_utf8_get_char (p));
  return n;
}

/* ------------------------------------------------------------------------
 * The GPT-2 pre-tokenizer regex, by hand:
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * --------------------------------------------------------------------- */

typedef enum
{
  CLASS_SPACE,
  CLASS_LETTER,
  CLASS_NUMBER,
  CLASS_OTHER,
} CharClass;

/* \s as Oniguruma (HF tokenizers) reads it: the White_Space property,
 * which g_unichar_isspace() does not match exactly (it misses U+000B and
 * U+0085). */
static gboolean
is_white_space (gunichar c)
{
  return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 ||
      c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 ||
      c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

static CharClass
char_class (const gchar * p)
{
  gunichar c = g_utf8_get_char (p);

  if (is_white_space (c))
    return CLASS_SPACE;
  switch (g_unichar_type (c)) {
    case G_UNICODE_UPPERCASE_LETTER:
    case G_UNICODE_LOWERCASE_LETTER:
    case G_UNICODE_TITLECASE_LETTER:
    case G_UNICODE_MODIFIER_LETTER:
    case G_UNICODE_OTHER_LETTER:
      return CLASS_LETTER;
    case G_UNICODE_DECIMAL_NUMBER:
    case G_UNICODE_LETTER_NUMBER:
    case G_UNICODE_OTHER_NUMBER:
      return CLASS_NUMBER;
    default:
      return CLASS_OTHER;
  }
}

/* End of the run of @cls characters starting at @i. */
static gsize
run_end (const gchar * t, gsize i, gsize n, CharClass cls)
{
  while (i < n && char_class (t + i) == cls)
    i = g_utf8_next_char (t + i) - t;
  return i;
}

static gsize
contraction (const gchar * p, gsize n)
{
  static const gchar *const forms[] = { "s", "t", "re", "ve", "m", "ll",
    "d"
  };

  if (p[0] != '\'')
    return 0;
  for (guint k = 0; k < G_N_ELEMENTS (forms); k++) {
    gsize len = strlen (forms[k]);

    if (len < n && memcmp (p + 1, forms[k], len) == 0)
      return len + 1;
  }
  return 0;
}

/* End of the word that starts at @i, trying the alternatives in order. */
static gsize
word_end (const gchar * t, gsize i, gsize n)
{
  gsize j = t[i] == ' ' ? i + 1 : i, e, last;

  if ((e = contraction (t + i, n - i)) > 0)
    return i + e;
  if (j < n && char_class (t + j) != CLASS_SPACE)
    return run_end (t, j, n, char_class (t + j));
  /* whitespace: all of it at the end of the text; else leave its last
   * character to start the next word (\s+(?!\S)), unless it is alone */
  e = run_end (t, i, n, CLASS_SPACE);
  if (e == n)
    return n;
  last = g_utf8_find_prev_char (t + i, t + e) - t;
  return last > i ? last : e;
}

/* ------------------------------------------------------------------------
 * BPE per word
 * --------------------------------------------------------------------- */

static gboolean
encode_word (const LlmVocab * v, const gchar * w, gsize n, GArray * ids,
    GError ** error)
{
  GString *mapped = g_string_sized_new (2 * n);
  GArray *syms = g_array_sized_new (FALSE, FALSE, sizeof (gint32), n);
  gboolean last_unk = FALSE, ok = TRUE;
  gint32 whole = -1;
  guint kept;

  bytes_to_unicode (mapped, (const guint8 *) w, n);
  if (llm_vocab_ignore_merges (v))
    whole = llm_vocab_lookup (v, mapped->str, mapped->len);
  for (gsize i = 0; whole < 0 && i < mapped->len;
      i = g_utf8_next_char (mapped->str + i) - mapped->str) {
    gsize clen = g_utf8_next_char (mapped->str + i) - (mapped->str + i);
    gint32 id = llm_vocab_lookup (v, mapped->str + i, clen);

    if (id >= 0) {
      g_array_append_val (syms, id);
      last_unk = FALSE;
      continue;
    }
    if (v->unk < 0) {
      g_set_error (error, LLM_ERROR, LLM_ERROR_INPUT,
          "no token for the byte 0x%02x: the vocabulary has neither its "
          "symbol nor an unknown token",
          unichar_to_byte (g_utf8_get_char (mapped->str + i)));
      ok = FALSE;
      break;
    }
    if (!(last_unk && llm_vocab_fuse_unk (v)))
      g_array_append_val (syms, v->unk);
    last_unk = TRUE;
  }
  if (whole >= 0) {
    g_array_append_val (ids, whole);
  } else if (ok) {
    kept = llm_vocab_bpe_merge (v, (gint32 *) syms->data, syms->len);
    g_array_append_vals (ids, syms->data, kept);
  }
  g_array_unref (syms);
  g_string_free (mapped, TRUE);
  return ok;
}

gboolean
llm_tokenize_gpt2 (const LlmVocab * vocab, const gchar * seg, gsize len,
    GArray * ids, GError ** error)
{
  g_autofree gchar *prefixed = NULL;
  gsize i = 0, e;

  /* ByteLevel add_prefix_space: a space in front unless there is one */
  if (vocab->add_space_prefix && seg[0] != ' ') {
    prefixed = g_malloc (len + 1);
    prefixed[0] = ' ';
    memcpy (prefixed + 1, seg, len);
    seg = prefixed;
    len++;
  }
  if (!llm_vocab_use_regex (vocab))
    return encode_word (vocab, seg, len, ids, error);
  for (i = 0; i < len; i = e) {
    e = word_end (seg, i, len);
    if (!encode_word (vocab, seg + i, e - i, ids, error))
      return FALSE;
  }
  return TRUE;
}
