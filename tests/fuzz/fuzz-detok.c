/* LLMasOS - fuzz target: the streaming detokenizer.
 *
 * Input: one flags byte (bit 0: the GPT-2 vocabulary instead of
 * stories260K's, bit 1: strip the leading space, bits 2-3: how many stop
 * strings follow), the stop strings (a length byte, then that many bytes,
 * any bytes), then token ids as little-endian 16-bit signed numbers, so
 * that ids below 0 and past the vocabulary come often; 0x7fff stands for
 * G_MAXINT32, -0x8000 for G_MININT32, and 0x7ffe ends the sequence and
 * starts the next (finish, reset).
 *
 * Every chunk llm_detok_push or llm_detok_finish appends must be valid
 * UTF-8; after a stop nothing more comes out; and a sequence's text with
 * stop strings is the text without them, cut just before a stop string
 * if one completed (the first to complete, which need not be the first to
 * begin), holding none whole. Without stop strings, over ids whose bytes are
 * valid UTF-8, the streamed text equals llm_vocab_decode's.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fuzz-common.h"

#include "llm-vocab.h"
#include "llm-detok.h"

#ifndef LLMASOS_FUZZ_SRCDIR
#define LLMASOS_FUZZ_SRCDIR "tests/fuzz"
#endif

#define ID_MAX 0x7fff
#define ID_MIN (-0x8000)
#define ID_NEXT 0x7ffe

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
    fprintf (stderr, "fuzz-detok: %s\n", error->message);
    exit (1);
  }
  vocabs[1] = llm_vocab_new_from_path (gpt2, &error);
  if (vocabs[1] == NULL) {
    fprintf (stderr, "fuzz-detok: %s\n", error->message);
    exit (1);
  }
  return 0;
}

/* One sequence streamed twice, with and without stop strings. */
typedef struct
{
  const LlmVocab *v;
  LlmDetok *with, *without;
  GString *text_with, *text_without;
  GArray *ids;                  /* the sequence's ids, for decode */
  GByteArray *raw;              /* their bytes */
  gboolean strip;
  gchar **stops;
  gboolean stopped;
} Seq;

static void
append_chunk (GString * text, GString * chunk)
{
  LLM_FUZZ_CHECK (llm_fuzz_utf8_valid (chunk->str, chunk->len),
      "a chunk is not UTF-8");
  g_string_append_len (text, chunk->str, chunk->len);
  g_string_truncate (chunk, 0);
}

static void
push (Seq * s, gint32 id, GString * chunk)
{
  gboolean stop = llm_detok_push (s->with, id, chunk);

  LLM_FUZZ_CHECK (!s->stopped || chunk->len == 0, "text after a stop");
  LLM_FUZZ_CHECK (!s->stopped || stop, "a stop forgotten");
  s->stopped = stop;
  append_chunk (s->text_with, chunk);
  LLM_FUZZ_CHECK (!llm_detok_push (s->without, id, chunk),
      "a stop without stop strings");
  append_chunk (s->text_without, chunk);
  g_array_append_val (s->ids, id);
  if (id >= 0 && (guint) id < s->v->n_tokens) {
    guint8 buf[64];
    gsize n = llm_vocab_token_bytes (s->v, id, buf, sizeof (buf));

    LLM_FUZZ_CHECK (n <= sizeof (buf), "a token of %" G_GSIZE_FORMAT
        " bytes", n);
    g_byte_array_append (s->raw, buf, n);
  }
}

/* The first @needle in @hay (NUL bytes included), or NULL. */
static const gchar *
find (const gchar * hay, gsize n, const gchar * needle)
{
  gsize m = strlen (needle);

  for (gsize i = 0; m <= n && i <= n - m; i++)
    if (memcmp (hay + i, needle, m) == 0)
      return hay + i;
  return NULL;
}

static void
finish (Seq * s, GString * chunk)
{
  const GString *a = s->text_with, *b = s->text_without;
  gboolean found = FALSE;

  llm_detok_finish (s->with, chunk);
  LLM_FUZZ_CHECK (!s->stopped || chunk->len == 0, "text after a stop");
  append_chunk (s->text_with, chunk);
  llm_detok_finish (s->without, chunk);
  append_chunk (s->text_without, chunk);

  LLM_FUZZ_CHECK (a->len <= b->len && memcmp (a->str, b->str, a->len) == 0,
      "the text with stop strings is not a prefix of the text without");
  /* cut just before a stop string, if one completed (finish can complete
   * one too, without saying so), and no stop string lies whole in what
   * came out; stop strings that are not UTF-8 are ignored */
  for (guint k = 0; s->stops[k] != NULL; k++) {
    gsize m = strlen (s->stops[k]);
    const gchar *at;

    if (m == 0 || !g_utf8_validate (s->stops[k], -1, NULL))
      continue;
    at = find (b->str, b->len, s->stops[k]);
    LLM_FUZZ_CHECK (at == NULL || (gsize) (at - b->str) + m > a->len,
        "stop string %u missed", k);
    if (b->len - a->len >= m && memcmp (b->str + a->len, s->stops[k], m)
        == 0)
      found = TRUE;
  }
  LLM_FUZZ_CHECK (found == (s->stopped || a->len < b->len),
      "text cut without a stop string, or not cut at one");
  if (s->raw->len > 0 &&
      llm_fuzz_utf8_valid ((const gchar *) s->raw->data, s->raw->len) &&
      memchr (s->raw->data, '\0', s->raw->len) == NULL) {
    g_autofree gchar *dec = llm_vocab_decode (s->v,
        (const gint32 *) s->ids->data, s->ids->len);

    /* decode always strips SentencePiece's leading space */
    LLM_FUZZ_CHECK (!s->strip || strcmp (dec, b->str) == 0,
        "streamed \"%s\", decoded \"%s\"", b->str, dec);
  }
}

static void
reset (Seq * s)
{
  llm_detok_reset (s->with, s->strip);
  llm_detok_reset (s->without, s->strip);
  g_string_truncate (s->text_with, 0);
  g_string_truncate (s->text_without, 0);
  g_array_set_size (s->ids, 0);
  g_byte_array_set_size (s->raw, 0);
  s->stopped = FALSE;
}

int
LLVMFuzzerTestOneInput (const uint8_t * data, size_t size)
{
  g_autoptr (GPtrArray) stops = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GString) chunk = g_string_new (NULL);
  Seq s = { 0 };
  gsize pos = 1;
  guint n_stops;

  if (size < 1)
    return 0;
  s.v = vocabs[data[0] & 1];
  s.strip = (data[0] >> 1) & 1;
  n_stops = (data[0] >> 2) & 3;
  for (guint k = 0; k < n_stops && pos < size; k++) {
    gsize len = MIN ((gsize) data[pos], size - pos - 1);

    g_ptr_array_add (stops, g_strndup ((const gchar *) data + pos + 1, len));
    pos += 1 + len;
  }
  g_ptr_array_add (stops, NULL);
  s.stops = (gchar **) stops->pdata;
  s.with = llm_detok_new (s.v, (const gchar * const *) s.stops);
  s.without = llm_detok_new (s.v, NULL);
  s.text_with = g_string_new (NULL);
  s.text_without = g_string_new (NULL);
  s.ids = g_array_new (FALSE, FALSE, sizeof (gint32));
  s.raw = g_byte_array_new ();
  reset (&s);

  for (; pos + 2 <= size; pos += 2) {
    gint32 id = (gint16) (data[pos] | (data[pos + 1] << 8));

    if (id == ID_NEXT) {
      finish (&s, chunk);
      reset (&s);
      continue;
    }
    if (id == ID_MAX)
      id = G_MAXINT32;
    else if (id == ID_MIN)
      id = G_MININT32;
    push (&s, id, chunk);
  }
  finish (&s, chunk);

  llm_detok_free (s.with);
  llm_detok_free (s.without);
  g_string_free (s.text_with, TRUE);
  g_string_free (s.text_without, TRUE);
  g_array_unref (s.ids);
  g_byte_array_unref (s.raw);
  return 0;
}
