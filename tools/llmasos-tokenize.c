/* LLMasOS - llmasos-tokenize: text on stdin -> token ids on stdout.
 *
 *   echo -n "Once upon a time" | llmasos-tokenize -m models/stories260K
 *   403 407 261 378
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <errno.h>
#include <gio/gio.h>

#include "llm-vocab.h"

static gchar *opt_model = NULL;
static gboolean opt_add_special = FALSE;
static gboolean opt_no_parse_special = FALSE;
static gboolean opt_fingerprint = FALSE;

static const GOptionEntry entries[] = {
  {"model", 'm', 0, G_OPTION_ARG_FILENAME, &opt_model,
      "Model folder (with tokenizer.json) or .gguf file", "MODEL"},
  {"add-special", 0, 0, G_OPTION_ARG_NONE, &opt_add_special,
      "Add BOS/EOS as the model does for a prompt", NULL},
  {"no-parse-special", 0, 0, G_OPTION_ARG_NONE, &opt_no_parse_special,
      "Read control tokens written in the text (\"<s>\") as plain text", NULL},
  {"fingerprint", 0, 0, G_OPTION_ARG_NONE, &opt_fingerprint,
      "Print the vocabulary fingerprint and size, then exit", NULL},
  {NULL}
};

/* All of stdin, byte for byte (NUL bytes included). */
static GBytes *
read_stdin (GError ** error)
{
  GByteArray *buf = g_byte_array_new ();
  guint8 chunk[65536];
  gssize n;

  while ((n = read (STDIN_FILENO, chunk, sizeof chunk)) != 0) {
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int e = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e), "%s",
          g_strerror (e));
      g_byte_array_unref (buf);
      return NULL;
    }
    g_byte_array_append (buf, chunk, n);
  }
  return g_byte_array_free_to_bytes (buf);
}

static void
print_ids (GArray * ids)
{
  GString *line = g_string_new (NULL);

  for (guint i = 0; i < ids->len; i++)
    g_string_append_printf (line, "%s%d", i ? " " : "",
        g_array_index (ids, gint32, i));
  g_string_append_c (line, '\n');
  fwrite (line->str, 1, line->len, stdout);
  g_string_free (line, TRUE);
}

int
main (int argc, char **argv)
{
  g_autoptr (GOptionContext) ctx = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (LlmVocab) vocab = NULL;
  g_autoptr (GBytes) text = NULL;
  g_autoptr (GArray) ids = NULL;
  LlmEncodeFlags flags = 0;

  ctx = g_option_context_new ("- print the token ids of the text on stdin");
  g_option_context_set_summary (ctx, "Reads all of standard input as UTF-8 "
      "text and prints its token ids on one line.\nBy default no BOS/EOS "
      "is added (as Hugging Face's add_special_tokens=False).");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
    g_printerr ("llmasos-tokenize: %s\n", error->message);
    return 2;
  }
  if (opt_model == NULL) {
    g_printerr ("llmasos-tokenize: -m MODEL is required (a folder with "
        "tokenizer.json or a .gguf file)\n");
    return 2;
  }
  vocab = llm_vocab_new_from_path (opt_model, &error);
  if (vocab == NULL) {
    g_printerr ("llmasos-tokenize: %s\n", error->message);
    return 1;
  }
  if (opt_fingerprint) {
    g_print ("%s %u\n", vocab->fingerprint, vocab->n_tokens);
    return 0;
  }
  text = read_stdin (&error);
  if (text == NULL) {
    g_printerr ("llmasos-tokenize: reading stdin: %s\n", error->message);
    return 1;
  }
  if (opt_add_special)
    flags |= LLM_ENCODE_ADD_SPECIAL;
  if (!opt_no_parse_special)
    flags |= LLM_ENCODE_PARSE_SPECIAL;
  ids = llm_vocab_encode_full (vocab, g_bytes_get_data (text, NULL),
      g_bytes_get_size (text), flags, &error);
  if (ids == NULL) {
    g_printerr ("llmasos-tokenize: %s\n", error->message);
    return 1;
  }
  print_ids (ids);
  g_free (opt_model);
  return 0;
}
