/* LLMasOS - fuzz target: element properties set from strings, as
 * gst-launch-1.0 and gst_util_set_object_arg set them.
 *
 * The input is lines of "name=value". For each of the plugin's elements,
 * made fresh for every input: a line whose name is one of its properties
 * sets it from the value; a line named "*" sets every property of ours
 * (not GstObject's name and parent) from its value. Then every readable
 * property is read back and serialized. Nothing changes state: the model
 * property would load whatever path the input names.
 * Every value is also parsed as a device string (llm_device_parse, which
 * the elements call on `device` when they start): accepted means the CPU
 * at index 0 or a registered backend at an index >= 0; refused means an
 * error whose message names the string.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fuzz-gst.h"
#include "llm-backend.h"

#define MAX_LINES 16
/* Our array property (stop-strings) holds strings: one level. */
#define MAX_NESTING 1

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  llm_fuzz_gst_init ();
  return 0;
}

/* gst_util_set_object_arg, less its leaks: GStreamer 1.22 does not unset
 * the value when the string does not deserialize (an array value leaks),
 * and leaks the inner one of a nested array it refuses (so values nested
 * deeper than our properties take are not tried). */
static void
set_arg (GstElement * e, GParamSpec * pspec, const gchar * text)
{
  GValue v = G_VALUE_INIT;

  if (!(pspec->flags & G_PARAM_WRITABLE) ||
      (pspec->flags & G_PARAM_CONSTRUCT_ONLY) ||
      llm_fuzz_nesting (text, TRUE) > MAX_NESTING)
    return;
  g_value_init (&v, pspec->value_type);
  if (gst_value_deserialize_with_pspec (&v, text, pspec))
    g_object_set_property (G_OBJECT (e), pspec->name, &v);
  g_value_unset (&v);
}

/* Properties the plugin defines (its types are all GstLlm*). */
static gboolean
is_ours (const GParamSpec * pspec)
{
  return g_str_has_prefix (g_type_name (pspec->owner_type), "GstLlm");
}

static void
set_all (GstElement * e, const gchar * value)
{
  guint n;
  GParamSpec **specs = g_object_class_list_properties (G_OBJECT_GET_CLASS
      (e), &n);

  for (guint i = 0; i < n; i++)
    if (is_ours (specs[i]))
      set_arg (e, specs[i], value);
  g_free (specs);
}

static void
read_all (GstElement * e)
{
  guint n;
  GParamSpec **specs = g_object_class_list_properties (G_OBJECT_GET_CLASS
      (e), &n);

  for (guint i = 0; i < n; i++) {
    GValue v = G_VALUE_INIT;
    gchar *text;

    if (!(specs[i]->flags & G_PARAM_READABLE))
      continue;
    g_value_init (&v, specs[i]->value_type);
    g_object_get_property (G_OBJECT (e), specs[i]->name, &v);
    text = gst_value_serialize (&v);
    g_free (text);
    g_value_unset (&v);
  }
  g_free (specs);
}

static void
check_device (const gchar * device)
{
  const LlmBackend *backend = NULL;
  gint index = -1;
  GError *err = NULL;

  if (llm_device_parse (device, &backend, &index, &err)) {
    LLM_FUZZ_CHECK (err == NULL, "device '%s' accepted with an error",
        device);
    LLM_FUZZ_CHECK (backend == NULL ? index == 0 : index >= 0,
        "device '%s' accepted as index %d", device, index);
  } else {
    LLM_FUZZ_CHECK (err != NULL && strstr (err->message, device) != NULL,
        "device '%s' refused, the message does not name it: %s", device,
        err ? err->message : "(no error)");
    g_error_free (err);
  }
}

int
LLVMFuzzerTestOneInput (const uint8_t * data, size_t size)
{
  g_autofree gchar *text = llm_fuzz_strndup (data, size);
  g_auto (GStrv) lines = g_strsplit (text, "\n", MAX_LINES);

  for (guint k = 0; k < G_N_ELEMENTS (llm_fuzz_elements); k++) {
    GstElement *e = gst_element_factory_make (llm_fuzz_elements[k], NULL);

    LLM_FUZZ_CHECK (e != NULL, "no element %s", llm_fuzz_elements[k]);
    for (guint i = 0; lines[i] != NULL; i++) {
      gchar *eq = strchr (lines[i], '=');
      g_autofree gchar *name = NULL;
      GParamSpec *pspec;

      if (eq == NULL)
        continue;
      name = g_strndup (lines[i], eq - lines[i]);
      if (k == 0)
        check_device (eq + 1);
      if (strcmp (name, "*") == 0) {
        set_all (e, eq + 1);
        continue;
      }
      pspec = g_object_class_find_property (G_OBJECT_GET_CLASS (e), name);
      if (pspec != NULL && is_ours (pspec))
        set_arg (e, pspec, eq + 1);
    }
    read_all (e);
    gst_object_unref (e);
  }
  return 0;
}
