/* LLMasOS - test-fuzz-regressions: replays every fuzz target over its seed
 * corpus and its regression inputs (the inputs that once crashed it),
 * without libFuzzer, so that the normal build and test run keep them
 * fixed.
 *
 *   test-fuzz-regressions SRCDIR                  every target, every file
 *   test-fuzz-regressions SRCDIR TARGET FILE...   one target, given files
 *
 * SRCDIR is tests/fuzz; the inputs are SRCDIR/corpus/TARGET/ and
 * SRCDIR/regressions/TARGET/. Each target's .c is built with its
 * LLVMFuzzerInitialize / LLVMFuzzerTestOneInput renamed (see meson.build).
 * A broken invariant aborts, as under the fuzzer.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <glib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*InitFunc) (int *argc, char ***argv);
typedef int (*OneFunc) (const uint8_t * data, size_t size);

#define TARGET(name, sym) \
  int fuzz_##sym##_initialize (int *argc, char ***argv); \
  int fuzz_##sym##_test_one_input (const uint8_t * data, size_t size);
#include "replay-targets.h"
#undef TARGET

static const struct
{
  const gchar *name;
  InitFunc init;
  OneFunc one;
} targets[] = {
#define TARGET(name, sym) \
  { name, fuzz_##sym##_initialize, fuzz_##sym##_test_one_input },
#include "replay-targets.h"
#undef TARGET
};

static gboolean
replay_file (OneFunc one, const gchar * path)
{
  g_autoptr (GError) error = NULL;
  g_autofree gchar *data = NULL;
  gsize len;
  guint8 *copy;

  if (!g_file_get_contents (path, &data, &len, &error)) {
    fprintf (stderr, "%s\n", error->message);
    return FALSE;
  }
  /* an exact-size copy, as libFuzzer passes, so that the sanitizers see
   * reads past the end */
  copy = g_malloc (MAX (len, 1));
  memcpy (copy, data, len);
  one (copy, len);
  g_free (copy);
  return TRUE;
}

static gint
compare_paths (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const gchar * const *) a, *(const gchar * const *) b);
}

/* Every regular file of @dir, in name order; a missing folder is empty. */
static guint
replay_dir (OneFunc one, const gchar * dir, gboolean * ok)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const gchar *name;

  if (d == NULL)
    return 0;
  while ((name = g_dir_read_name (d)) != NULL)
    g_ptr_array_add (names, g_build_filename (dir, name, NULL));
  g_ptr_array_sort (names, compare_paths);
  for (guint i = 0; i < names->len; i++) {
    const gchar *path = names->pdata[i];

    if (g_file_test (path, G_FILE_TEST_IS_REGULAR))
      *ok &= replay_file (one, path);
  }
  return names->len;
}

int
main (int argc, char **argv)
{
  gboolean ok = TRUE;

  if (argc < 2) {
    fprintf (stderr, "usage: %s SRCDIR [TARGET FILE...]\n", argv[0]);
    return 2;
  }
  for (guint t = 0; t < G_N_ELEMENTS (targets); t++) {
    guint n = 0;

    if (argc > 2 && strcmp (argv[2], targets[t].name) != 0)
      continue;
    targets[t].init (&argc, &argv);
    if (argc > 2) {
      for (int i = 3; i < argc; i++, n++)
        ok &= replay_file (targets[t].one, argv[i]);
    } else {
      g_autofree gchar *seeds = g_build_filename (argv[1], "corpus",
          targets[t].name, NULL);
      g_autofree gchar *crashes = g_build_filename (argv[1], "regressions",
          targets[t].name, NULL);

      n = replay_dir (targets[t].one, seeds, &ok);
      if (n == 0) {
        fprintf (stderr, "%s: no seed inputs in %s\n", targets[t].name, seeds);
        ok = FALSE;
      }
      n += replay_dir (targets[t].one, crashes, &ok);
    }
    printf ("%s: %u inputs replayed\n", targets[t].name, n);
    fflush (stdout);
  }
  return ok ? 0 : 1;
}
