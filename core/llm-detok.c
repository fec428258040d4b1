/* LLMasOS - streaming detokenizer: ids in, whole UTF-8 characters out.
 * SPDX-License-Identifier: LGPL-2.1-or-later */

#include <string.h>

#include "llm-detok.h"

#define UTF8_REPLACEMENT "\xef\xbf\xbd" /* U+FFFD */

struct _LlmDetok
{
  const LlmVocab *vocab;
  gchar **stops;                /* non-empty stop strings */
  GByteArray *tail;             /* bytes of a character not yet complete */
  GString *held;                /* complete text that may begin a stop
                                 * string, not emitted yet */
  GByteArray *token;            /* scratch: one token's bytes */
  gboolean strip;               /* drop the first character if a space */
  gboolean started;             /* a character has come out (or not) */
  gboolean stopped;             /* a stop string was reached */
};

LlmDetok *
llm_detok_new (const LlmVocab * vocab, const gchar * const *stop_strings)
{
  LlmDetok *d;
  GPtrArray *stops = g_ptr_array_new ();

  g_return_val_if_fail (vocab != NULL, NULL);
  d = g_new0 (LlmDetok, 1);
  d->vocab = vocab;
  /* the text comes out in whole characters: a stop string that is not
   * UTF-8 could only match inside one, and cut it */
  for (guint i = 0; stop_strings != NULL && stop_strings[i] != NULL; i++)
    if (stop_strings[i][0] != '\0' &&
        g_utf8_validate (stop_strings[i], -1, NULL))
      g_ptr_array_add (stops, g_strdup (stop_strings[i]));
  g_ptr_array_add (stops, NULL);
  d->stops = (gchar **) g_ptr_array_free (stops, FALSE);
  d->tail = g_byte_array_new ();
  d->held = g_string_new (NULL);
  d->token = g_byte_array_new ();
  return d;
}

void
llm_detok_free (LlmDetok * d)
{
  if (d == NULL)
    return;
  g_strfreev (d->stops);
  g_byte_array_unref (d->tail);
  g_string_free (d->held, TRUE);
  g_byte_array_unref (d->token);
  g_free (d);
}

void
llm_detok_reset (LlmDetok * d, gboolean strip_leading_space)
{
  g_return_if_fail (d != NULL);
  g_byte_array_set_size (d->tail, 0);
  g_string_truncate (d->held, 0);
  /* only SentencePiece-style decoding strips the space it put in front */
  d->strip = strip_leading_space && d->vocab->kind == LLM_VOCAB_SPM &&
      d->vocab->add_space_prefix;
  d->started = FALSE;
  d->stopped = FALSE;
}

/* One decoded character (or U+FFFD) into the held text. */
static void
take_char (LlmDetok * d, const gchar * c, gsize len)
{
  gboolean first = !d->started;

  d->started = TRUE;
  if (first && d->strip && len == 1 && c[0] == ' ')
    return;
  g_string_append_len (d->held, c, len);
}

/* Moves the whole characters at the front of the tail into the held
 * text; an incomplete one stays, unless @flush. */
static void
drain_tail (LlmDetok * d, gboolean flush)
{
  const guint8 *p = d->tail->data;
  gsize n = d->tail->len, i = 0, len;

  while (i < n) {
    LlmUtf8Status st = llm_utf8_next (p + i, n - i, &len);

    if (st == LLM_UTF8_INCOMPLETE && !flush)
      break;
    if (st == LLM_UTF8_CHAR)
      take_char (d, (const gchar *) p + i, len);
    else
      take_char (d, UTF8_REPLACEMENT, strlen (UTF8_REPLACEMENT));
    i += len;
  }
  g_byte_array_remove_range (d->tail, 0, i);
}

/* memmem(), which the C library may not have. */
static const gchar *
find_bytes (const gchar * hay, gsize n, const gchar * needle, gsize m)
{
  for (gsize i = 0; m <= n && i <= n - m; i++) {
    const gchar *c = memchr (hay + i, needle[0], n - m - i + 1);

    if (c == NULL)
      return NULL;
    if (memcmp (c, needle, m) == 0)
      return c;
    i = c - hay;
  }
  return NULL;
}

/* Offset of the earliest stop string in the held text, or -1. */
static gssize
find_stop (const LlmDetok * d)
{
  gssize best = -1;

  for (guint k = 0; d->stops[k] != NULL; k++) {
    const gchar *at = find_bytes (d->held->str, d->held->len, d->stops[k],
        strlen (d->stops[k]));

    if (at != NULL && (best < 0 || at - d->held->str < best))
      best = at - d->held->str;
  }
  return best;
}

/* Length of the longest end of the held text that begins a stop string:
 * it cannot be emitted yet. */
static gsize
stop_prefix_len (const LlmDetok * d)
{
  gsize best = 0, n = d->held->len;

  for (guint k = 0; d->stops[k] != NULL; k++) {
    gsize m = strlen (d->stops[k]);

    for (gsize len = MIN (n, m - 1); len > best; len--) {
      if (memcmp (d->held->str + n - len, d->stops[k], len) == 0) {
        best = len;
        break;
      }
    }
  }
  return best;
}

/* Emits what can no longer be part of a stop string; TRUE on a stop. */
static gboolean
emit (LlmDetok * d, GString * out)
{
  gssize stop = find_stop (d);
  gsize keep;

  if (stop >= 0) {
    g_string_append_len (out, d->held->str, stop);
    g_string_truncate (d->held, 0);
    g_byte_array_set_size (d->tail, 0);
    d->stopped = TRUE;
    return TRUE;
  }
  keep = stop_prefix_len (d);
  g_string_append_len (out, d->held->str, d->held->len - keep);
  g_string_erase (d->held, 0, d->held->len - keep);
  return FALSE;
}

gboolean
llm_detok_push (LlmDetok * d, gint32 id, GString * out)
{
  gsize n;

  g_return_val_if_fail (d != NULL && out != NULL, FALSE);
  if (d->stopped)
    return TRUE;
  n = llm_vocab_token_bytes (d->vocab, id, NULL, 0);
  if (n == 0)
    return FALSE;
  g_byte_array_set_size (d->token, n);
  llm_vocab_token_bytes (d->vocab, id, d->token->data, n);
  g_byte_array_append (d->tail, d->token->data, n);
  drain_tail (d, FALSE);
  return emit (d, out);
}

void
llm_detok_finish (LlmDetok * d, GString * out)
{
  g_return_if_fail (d != NULL && out != NULL);
  if (d->stopped)
    return;
  drain_tail (d, TRUE);
  /* the held text may still hold a whole stop string that the flushed
   * tail completed */
  if (!emit (d, out)) {
    g_string_append_len (out, d->held->str, d->held->len);
    g_string_truncate (d->held, 0);
  }
}
