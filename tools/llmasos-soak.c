/* llmasos-soak - many prompts through one running pipeline, resident
 * memory sampled along the way: it must stay flat after the warm-up.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * appsrc ! llmtokenizer prompt-mode=line ! llmencoder ! llmdecoder
 * max-tokens=N max-batch=B ! llmsampler ! llmdetokenizer ! fakesink
 * Exits 1 if resident memory at the end exceeds the level after the
 * warm-up by more than --tolerance percent.
 */
#include <gst/gst.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "llm-events.h"

static gchar *opt_model = NULL;
static gint opt_prompts = 10000;
static gint opt_tokens = 16;
static gint opt_batch = 4;
static gint opt_every = 500;
static gdouble opt_tolerance = 5.0;

static GOptionEntry entries[] = {
  {"model", 'm', 0, G_OPTION_ARG_FILENAME, &opt_model, "Model", "MODEL"},
  {"prompts", 'p', 0, G_OPTION_ARG_INT, &opt_prompts,
      "Prompts to run (default 10000)", "N"},
  {"max-tokens", 'n', 0, G_OPTION_ARG_INT, &opt_tokens,
      "Tokens per prompt (default 16)", "N"},
  {"max-batch", 'b', 0, G_OPTION_ARG_INT, &opt_batch,
      "Sequences decoded together (default 4)", "B"},
  {"every", 'e', 0, G_OPTION_ARG_INT, &opt_every,
      "Sample resident memory every N finished prompts (default 500)", "N"},
  {"tolerance", 't', 0, G_OPTION_ARG_DOUBLE, &opt_tolerance,
      "Allowed growth after the warm-up, percent (default 5), plus 1 MiB",
      "PCT"},
  {NULL}
};

typedef struct
{
  GMutex lock;
  GCond cond;
  guint done;                   /* sequences ended */
  GArray *rss;                  /* KiB at every opt_every prompts */
} Soak;

static gsize
resident_kib (void)
{
  gchar *statm = NULL;
  gsize pages = 0, rss = 0;

  if (g_file_get_contents ("/proc/self/statm", &statm, NULL, NULL))
    sscanf (statm, "%zu %zu", &pages, &rss);
  g_free (statm);
  return rss * (sysconf (_SC_PAGESIZE) / 1024);
}

static GstPadProbeReturn
on_event (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  Soak *s = user_data;
  GstEvent *ev = GST_PAD_PROBE_INFO_EVENT (info);

  if (llm_event_is (ev, LLM_EVENT_SEQUENCE_END)) {
    g_mutex_lock (&s->lock);
    s->done++;
    if (s->done % opt_every == 0) {
      gsize kib = resident_kib ();
      g_array_append_val (s->rss, kib);
      fprintf (stderr, "%6u prompts: resident %zu KiB\n", s->done, kib);
    }
    g_cond_signal (&s->cond);
    g_mutex_unlock (&s->lock);
  }
  return GST_PAD_PROBE_OK;
}

int
main (int argc, char **argv)
{
  GOptionContext *ctx = g_option_context_new ("- memory soak test");
  GError *err = NULL;
  GstElement *p, *src, *sink;
  GstPad *pad;
  Soak s = { 0 };
  gchar *desc;
  GstMessage *msg;
  gint64 t0;
  gsize warm, last, peak = 0;
  gboolean ok;

  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &err) || !opt_model ||
      opt_every < 1 || opt_prompts < 4 * opt_every) {
    fprintf (stderr, "llmasos-soak: %s\n", err ? err->message :
        "-m MODEL is required, and --prompts must be at least 4 x --every");
    return 2;
  }
  g_option_context_free (ctx);
  gst_registry_scan_path (gst_registry_get (), LLMASOS_BUILD_PLUGIN_DIR);

  desc = g_strdup_printf ("appsrc name=src block=true max-bytes=4096 ! "
      "llmtokenizer model=\"%s\" prompt-mode=line ! llmencoder ! "
      "llmdecoder max-tokens=%d max-batch=%d ! llmsampler temperature=0.8 "
      "seed=1 ! llmdetokenizer ! fakesink name=sink sync=false", opt_model,
      opt_tokens, opt_batch);
  p = gst_parse_launch (desc, &err);
  g_free (desc);
  if (p == NULL) {
    fprintf (stderr, "llmasos-soak: %s\n", err->message);
    return 1;
  }
  g_mutex_init (&s.lock);
  g_cond_init (&s.cond);
  s.rss = g_array_new (FALSE, FALSE, sizeof (gsize));
  sink = gst_bin_get_by_name (GST_BIN (p), "sink");
  pad = gst_element_get_static_pad (sink, "sink");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, on_event, &s,
      NULL);
  src = gst_bin_get_by_name (GST_BIN (p), "src");
  gst_element_set_state (p, GST_STATE_PLAYING);

  t0 = g_get_monotonic_time ();
  for (gint i = 0; i < opt_prompts; i++) {
    static const gchar *starts[] = { "Once upon a time", "Lily and Ben",
      "The cat sat on the mat.", "One day, a little bird", "Tom had a ball"
    };
    gchar *line = g_strdup_printf ("%s %d\n", starts[i % 5], i);
    GstBuffer *buf = gst_buffer_new_wrapped (line, strlen (line));
    GstFlowReturn fr;

    g_signal_emit_by_name (src, "push-buffer", buf, &fr);
    gst_buffer_unref (buf);
    if (fr != GST_FLOW_OK)
      break;
  }
  {
    GstFlowReturn fr;
    g_signal_emit_by_name (src, "end-of-stream", &fr);
  }
  msg = gst_bus_timed_pop_filtered (GST_ELEMENT_BUS (p), GST_CLOCK_TIME_NONE,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  ok = GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS;
  gst_message_unref (msg);

  /* Warm-up: the first tenth of the run (caches, pools, allocator). */
  warm = g_array_index (s.rss, gsize, MAX (s.rss->len / 10, 1) - 1);
  last = g_array_index (s.rss, gsize, s.rss->len - 1);
  for (guint i = MAX (s.rss->len / 10, 1) - 1; i < s.rss->len; i++)
    peak = MAX (peak, g_array_index (s.rss, gsize, i));
  printf ("prompts finished: %u of %d in %.1f s\n", s.done, opt_prompts,
      (g_get_monotonic_time () - t0) / 1e6);
  printf ("resident after warm-up: %zu KiB, peak after: %zu KiB, end: %zu "
      "KiB, growth %+.2f %% (tolerance %.1f %%)\n", warm, peak, last,
      100.0 * ((gdouble) last - warm) / warm, opt_tolerance);
  /* Plus 1 MiB: a thread that starts late gets its own malloc arena. */
  ok = ok && s.done == (guint) opt_prompts &&
      peak <= warm * (1 + opt_tolerance / 100) + 1024;

  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (pad);
  gst_object_unref (sink);
  gst_object_unref (src);
  gst_object_unref (p);
  g_array_unref (s.rss);
  printf ("%s\n", ok ? "flat: PASS" : "FAIL");
  return ok ? 0 : 1;
}
