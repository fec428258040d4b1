/* Helpers shared by the C tests.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

/* Folder of the named model under $LLMASOS_MODELS (default
 * ../shared/models). Aborts the test with a clear message if missing. */
gchar *llm_test_model_dir (const gchar * model);
/* Path of a file inside the model folder; aborts if missing. */
gchar *llm_test_model_file (const gchar * model, const gchar * file);
/* A fresh temporary directory for the test (removed by the caller). */
gchar *llm_test_tmpdir (void);
