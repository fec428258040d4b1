/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "test-common.h"
#include <stdio.h>
#include <stdlib.h>

gchar *
llm_test_model_dir (const gchar * model)
{
  const gchar *root = g_getenv ("LLMASOS_MODELS");
  gchar *dir;

  if (root == NULL || *root == '\0')
    root = "../shared/models";
  dir = g_build_filename (root, model, NULL);
  if (!g_file_test (dir, G_FILE_TEST_IS_DIR)) {
    fprintf (stderr, "MODEL MISSING: %s not found; set LLMASOS_MODELS to the "
        "folder that holds %s/ (default ../shared/models)\n", dir, model);
    exit (1);
  }
  return dir;
}

gchar *
llm_test_model_file (const gchar * model, const gchar * file)
{
  gchar *dir = llm_test_model_dir (model);
  gchar *path = g_build_filename (dir, file, NULL);

  g_free (dir);
  if (!g_file_test (path, G_FILE_TEST_EXISTS)) {
    fprintf (stderr, "MODEL FILE MISSING: %s\n", path);
    exit (1);
  }
  return path;
}

gchar *
llm_test_tmpdir (void)
{
  GError *err = NULL;
  gchar *d = g_dir_make_tmp ("llmasos-test-XXXXXX", &err);

  g_assert_no_error (err);
  return d;
}
