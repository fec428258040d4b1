/* LLMasOS - GStreamer set-up for the fuzz targets that create elements.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gst/gst.h>
#include "fuzz-common.h"

/* The element factories of the plugin. */
static const gchar *const llm_fuzz_elements[] = {
  "llmtokenizer", "llmencoder", "llmdecoder", "llmattention", "llmsampler",
  "llmdetokenizer",
};

/* gst_init without a plugin scan (no registry file, no helper process:
 * the system's plugins are not instrumented and not needed), then the
 * build's plugin: $LLMASOS_PLUGIN, else the path meson gave. Exits when
 * it cannot be loaded. */
static inline void
llm_fuzz_gst_init (void)
{
  const gchar *path = g_getenv ("LLMASOS_PLUGIN");
  g_autoptr (GError) error = NULL;
  GstPlugin *plugin;

  llm_fuzz_quiet_logs ();
  if (gst_is_initialized ())
    return;
  g_setenv ("GST_REGISTRY_1_0", "/nonexistent/llmasos-fuzz-registry.bin", TRUE);
  g_setenv ("GST_REGISTRY_UPDATE", "no", TRUE);
  gst_registry_fork_set_enabled (FALSE);
  gst_init (NULL, NULL);
#ifdef LLMASOS_PLUGIN_PATH
  if (path == NULL || path[0] == '\0')
    path = LLMASOS_PLUGIN_PATH;
#endif
  if (path == NULL) {
    fprintf (stderr, "set LLMASOS_PLUGIN to the built libgstllmasos.so\n");
    exit (1);
  }
  plugin = gst_plugin_load_file (path, &error);
  if (plugin == NULL) {
    fprintf (stderr, "cannot load the plugin %s: %s\n", path, error->message);
    exit (1);
  }
  gst_object_unref (plugin);
}

/* Deepest nesting of [ ], < > and { } in @s, outside double quotes if
 * @quotes. GStreamer 1.22's value parser takes time exponential in it
 * (nested structures in caps; there, a quote may not open a string in
 * every way the parser tries, so caps count brackets inside quotes too)
 * and leaks the inner value where it refuses a nested array; the targets
 * keep it small, to fuzz our code rather than that. */
static inline guint
llm_fuzz_nesting (const gchar * s, gboolean quotes)
{
  guint depth = 0, max = 0;
  gboolean quoted = FALSE;

  for (; *s != '\0'; s++) {
    if (quoted) {
      if (*s == '\\' && s[1] != '\0')
        s++;
      else if (*s == '"')
        quoted = FALSE;
      continue;
    }
    switch (*s) {
      case '"':
        quoted = quotes;
        break;
      case '[':
      case '<':
      case '{':
        max = MAX (max, ++depth);
        break;
      case ']':
      case '>':
      case '}':
        if (depth > 0)
          depth--;
        break;
      default:
        break;
    }
  }
  return max;
}
