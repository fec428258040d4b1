/* LLMasOS - helpers shared by the libFuzzer targets and their replay
 * driver. Header-only: each target is one .c file plus this.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The entry points libFuzzer calls (declared here so that the targets
 * have prototypes; the replay build renames them per target). */
int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t * data, size_t size);

/* Messages: criticals and errors abort (a g_return_if_fail reached from
 * untrusted input is a bug); everything below is dropped, so that a
 * rejected input costs no terminal output. */
static GLogWriterOutput
llm_fuzz_log_writer (GLogLevelFlags level, const GLogField * fields,
    gsize n_fields, gpointer user_data)
{
  if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL)) {
    g_log_writer_standard_streams (level, fields, n_fields, user_data);
    /* abort() rather than GLib's breakpoint trap: libFuzzer saves the
     * input on SIGABRT */
    abort ();
  }
  return G_LOG_WRITER_HANDLED;
}

static inline void
llm_fuzz_quiet_logs (void)
{
  /* once per process (the replay program links every target, each with
   * its copy of this function): a quark marks it done */
  if (g_quark_try_string ("llmasos-fuzz-logs") != 0)
    return;
  g_quark_from_static_string ("llmasos-fuzz-logs");
  g_log_set_writer_func (llm_fuzz_log_writer, NULL, NULL);
}

/* Aborts with a message: an invariant the target checks is broken. */
#define LLM_FUZZ_CHECK(cond, ...) G_STMT_START { \
  if (G_UNLIKELY (!(cond))) { \
    fprintf (stderr, "FUZZ CHECK FAILED: %s: ", #cond); \
    fprintf (stderr, __VA_ARGS__); \
    fputc ('\n', stderr); \
    abort (); \
  } \
} G_STMT_END

/* Folder of a test model: $LLMASOS_MODELS/@model, else ../shared/models or
 * the build's models_dir. Exits with a clear message when missing (a
 * target that needs a model cannot run without it). */
static inline gchar *
llm_fuzz_model_dir (const gchar * model)
{
  const gchar *roots[3] = { g_getenv ("LLMASOS_MODELS"), "../shared/models",
#ifdef LLMASOS_MODELS_DIR
    LLMASOS_MODELS_DIR
#else
    NULL
#endif
  };

  for (guint i = 0; i < G_N_ELEMENTS (roots); i++) {
    gchar *dir;

    if (roots[i] == NULL || roots[i][0] == '\0')
      continue;
    dir = g_build_filename (roots[i], model, NULL);
    if (g_file_test (dir, G_FILE_TEST_IS_DIR))
      return dir;
    g_free (dir);
  }
  fprintf (stderr, "MODEL MISSING: %s not found; set LLMASOS_MODELS to the "
      "folder that holds %s/ (default ../shared/models)\n", model, model);
  exit (1);
}

/* A NUL-terminated copy of the input, for APIs that take C strings. */
static inline gchar *
llm_fuzz_strndup (const uint8_t * data, size_t size)
{
  return g_strndup ((const gchar *) data, size);
}

/* Valid UTF-8, NUL bytes allowed (they are U+0000; GLib's validators stop
 * or fail at them). */
static inline gboolean
llm_fuzz_utf8_valid (const gchar * s, gsize len)
{
  while (len > 0) {
    const gchar *nul = memchr (s, '\0', len);
    gsize seg = nul ? (gsize) (nul - s) : len;

    if (seg > 0 && !g_utf8_validate_len (s, seg, NULL))
      return FALSE;
    if (nul == NULL)
      break;
    s += seg + 1;
    len -= seg + 1;
  }
  return TRUE;
}
