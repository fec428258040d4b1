/* LLMasOS - the registry of compute backends and device strings.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-backend.h"

#include <stdlib.h>
#include <string.h>

#include "llm-error.h"

static GMutex registry_lock;
static GPtrArray *registry;      /* const LlmBackend *, never freed */

void
llm_backend_register (const LlmBackend * backend)
{
  g_return_if_fail (backend != NULL && backend->name != NULL);

  g_mutex_lock (&registry_lock);
  if (registry == NULL)
    registry = g_ptr_array_new ();
  for (guint i = 0; i < registry->len; i++) {
    const LlmBackend *b = g_ptr_array_index (registry, i);

    if (strcmp (b->name, backend->name) == 0) {
      g_mutex_unlock (&registry_lock);
      return;
    }
  }
  g_ptr_array_add (registry, (gpointer) backend);
  g_mutex_unlock (&registry_lock);
}

const LlmBackend *
llm_backend_lookup (const gchar * name)
{
  const LlmBackend *found = NULL;

  g_return_val_if_fail (name != NULL, NULL);

  g_mutex_lock (&registry_lock);
  for (guint i = 0; registry != NULL && i < registry->len; i++) {
    const LlmBackend *b = g_ptr_array_index (registry, i);

    if (strcmp (b->name, name) == 0)
      found = b;
  }
  g_mutex_unlock (&registry_lock);
  return found;
}

/* "cpu, cuda, cuda:N" for the backends registered. */
static gchar *
known_devices (void)
{
  GString *s = g_string_new ("cpu");

  g_mutex_lock (&registry_lock);
  for (guint i = 0; registry != NULL && i < registry->len; i++) {
    const LlmBackend *b = g_ptr_array_index (registry, i);

    g_string_append_printf (s, ", %s, %s:N", b->name, b->name);
  }
  g_mutex_unlock (&registry_lock);
  return g_string_free (s, FALSE);
}

gboolean
llm_device_parse (const gchar * device, const LlmBackend ** backend,
    gint * index, GError ** error)
{
  g_autofree gchar *name = NULL;
  const gchar *colon;
  const LlmBackend *b;
  gint64 n = 0;
  gint count;
  GError *err = NULL;

  g_return_val_if_fail (backend != NULL && index != NULL, FALSE);

  *backend = NULL;
  *index = 0;
  if (device == NULL || *device == '\0' || g_ascii_strcasecmp (device,
          "cpu") == 0)
    return TRUE;

  /* names as gst-launch users type them: CUDA:1 is cuda:1 */
  colon = strchr (device, ':');
  name = colon ? g_ascii_strdown (device, colon - device)
      : g_ascii_strdown (device, -1);
  if (colon != NULL) {
    gchar *end = NULL;

    n = g_ascii_strtoll (colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || n < 0 || n > 1024) {
      g_set_error (error, LLM_ERROR, LLM_ERROR_INPUT,
          "malformed device \"%s\": expected cpu, %s or %s:N with N a "
          "device number", device, name, name);
      return FALSE;
    }
  }
  if (strcmp (name, "cpu") == 0) {
    if (n == 0)
      return TRUE;              /* cpu:0 */
    g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
        "device \"%s\" does not exist: the CPU is one device, cpu or "
        "cpu:0", device);
    return FALSE;
  }
  b = llm_backend_lookup (name);
  if (b == NULL) {
    g_autofree gchar *known = known_devices ();

    g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
        "device \"%s\": this build has no \"%s\" backend (devices it "
        "knows: %s)", device, name, known);
    return FALSE;
  }
  count = b->device_count (&err);
  if (n >= count) {
    if (err != NULL)
      g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
          "device \"%s\" is not available: %s", device, err->message);
    else
      g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
          "device \"%s\" does not exist: %d %s device%s found", device,
          count, name, count == 1 ? "" : "s");
    g_clear_error (&err);
    return FALSE;
  }
  g_clear_error (&err);
  *backend = b;
  *index = (gint) n;
  return TRUE;
}
