/* llmasos-convert - writes a Llama model (Hugging Face folder or GGUF) as a
 * GGUF file that llama.cpp and LLMasOS read, converting its matrices.
 *
 *   llmasos-convert -t q8_0 -o stories260K-q8_0.gguf models/stories260K
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "llm-model-file.h"

static const gchar *const type_names[] = {
  "f32", "f16", "bf16", "q8_0", "q4_0"
};

static void
print_progress (gdouble fraction, const gchar * what, gpointer user_data)
{
  const gchar *stage = user_data;

  fprintf (stderr, "%s [%3d%%] %s\n", stage, (gint) (fraction * 100 + 0.5),
      what);
}

static gboolean
parse_type (const gchar * s, LlmDType * out)
{
  for (guint i = 0; i < G_N_ELEMENTS (type_names); i++) {
    if (g_ascii_strcasecmp (s, type_names[i]) == 0) {
      *out = llm_dtype_from_name (type_names[i]);
      return TRUE;
    }
  }
  return FALSE;
}

/* "<name>-<type>.gguf" in the current directory, with characters that do
 * not belong in a file name replaced. */
static gchar *
default_output (const LlmModelFile * mf, const gchar * type)
{
  g_autofree gchar *name = g_strdup (mf->name && *mf->name ? mf->name :
      "model");
  g_autofree gchar *lower = g_ascii_strdown (type, -1);

  g_strcanon (name, G_CSET_A_2_Z G_CSET_a_2_z G_CSET_DIGITS "._-", '_');
  return g_strdup_printf ("%s-%s.gguf", name, lower);
}

int
main (int argc, char **argv)
{
  g_autofree gchar *type = NULL;
  g_autofree gchar *output = NULL;
  gboolean quiet = FALSE;
  g_auto (GStrv) inputs = NULL;
  GOptionEntry entries[] = {
    {"type", 't', 0, G_OPTION_ARG_STRING, &type,
        "Type of the matrices: f32, f16 (default), bf16, q8_0 or q4_0", "TYPE"},
    {"output", 'o', 0, G_OPTION_ARG_FILENAME, &output,
        "GGUF file to write (default: ./NAME-TYPE.gguf in the current "
          "directory)", "OUT.gguf"},
    {"quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet,
        "Print errors only", NULL},
    {G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &inputs, NULL,
        "MODEL_DIR_OR_GGUF"},
    {NULL}
  };
  g_autoptr (GOptionContext) ctx =
      g_option_context_new ("- convert a model to GGUF");
  g_autoptr (GError) error = NULL;
  g_autoptr (LlmModelFile) mf = NULL;
  LlmDType dtype = LLM_DTYPE_F16;

  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_summary (ctx,
      "Reads a Llama-family model, either a Hugging Face folder\n"
      "(config.json, *.safetensors, tokenizer.json) or a GGUF file, and\n"
      "writes it as GGUF v3 with llama.cpp's metadata keys and tensor names.\n"
      "Matrices are converted to TYPE; norms stay F32; matrices whose rows\n"
      "are not whole 32-element blocks are stored as F16 when TYPE is q8_0\n"
      "or q4_0.");
  if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
    fprintf (stderr, "llmasos-convert: %s\n", error->message);
    return 1;
  }
  if (inputs == NULL || g_strv_length (inputs) != 1) {
    fprintf (stderr, "llmasos-convert: give exactly one model folder or "
        "GGUF file (see --help)\n");
    return 1;
  }
  if (type != NULL && !parse_type (type, &dtype)) {
    fprintf (stderr, "llmasos-convert: unknown type '%s' (f32, f16, bf16, "
        "q8_0 or q4_0)\n", type);
    return 1;
  }

  mf = llm_model_file_load (inputs[0], quiet ? NULL : print_progress,
      (gpointer) "load   ", &error);
  if (mf == NULL) {
    fprintf (stderr, "llmasos-convert: %s\n", error->message);
    return 1;
  }
  if (output == NULL)
    output = default_output (mf, llm_dtype_name (dtype));
  if (!quiet)
    fprintf (stderr, "writing %s (%s)\n", output, llm_dtype_name (dtype));
  if (!llm_model_file_write_gguf (mf, output, dtype,
          quiet ? NULL : print_progress, (gpointer) "convert", &error)) {
    fprintf (stderr, "llmasos-convert: %s\n", error->message);
    return 1;
  }
  if (!quiet)
    fprintf (stderr, "wrote %s\n", output);
  return 0;
}
