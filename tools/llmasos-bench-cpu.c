/* llmasos-bench-cpu - decode speed of the CPU backend, alone and through
 * the whole element chain, and so the per-token cost of the elements.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Both runs decode the same greedy tokens from the same prompt: the core
 * loop calls llm_compute_forward + llm_compute_logits + argmax directly;
 * the pipeline is appsrc ! llmtokenizer ! llmencoder ! llmdecoder !
 * llmsampler temperature=0 ! llmdetokenizer ! fakesink, timed from the
 * first sampled token to the last. Each figure is the median of --repeat
 * runs.
 */
#include <gst/gst.h>
#include <stdio.h>
#include <string.h>

#include "llm-forward.h"
#include "llm-model-file.h"
#include "llm-vocab.h"

static gchar *opt_model = NULL;
static gint opt_tokens = 256;
static gint opt_repeat = 21;
static gchar *opt_prompt = NULL;
static gboolean opt_json = FALSE;

static GOptionEntry entries[] = {
  {"model", 'm', 0, G_OPTION_ARG_FILENAME, &opt_model,
      "Model folder or .gguf file", "MODEL"},
  {"tokens", 'n', 0, G_OPTION_ARG_INT, &opt_tokens,
      "Tokens to decode per run (default 256)", "N"},
  {"repeat", 'r', 0, G_OPTION_ARG_INT, &opt_repeat,
      "Runs of each kind; the median is reported (default 21)", "R"},
  {"prompt", 'p', 0, G_OPTION_ARG_STRING, &opt_prompt,
      "Prompt (default \"Once upon a time\")", "TEXT"},
  {"json", 0, 0, G_OPTION_ARG_NONE, &opt_json, "Print JSON", NULL},
  {NULL}
};

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static double
median (double *v, guint n)
{
  qsort (v, n, sizeof (double), cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static gint32
argmax (const float *x, guint n)
{
  guint best = 0;

  for (guint i = 1; i < n; i++)
    if (x[i] > x[best])
      best = i;
  return best;
}

/* Seconds per decoded token of the core loop (after the prefill). Stops
 * early, and says so, if the model ends the text. */
static double
core_run (const LlmModelFile * mf, LlmCompute * c, const GArray * prompt,
    guint n_tokens, guint * n_done)
{
  GError *err = NULL;
  LlmKvCache *kv = llm_kv_cache_new (&mf->hp, mf->hp.n_ctx_train, &err);
  float *hidden = g_new (float, mf->hp.dim);
  float *logits = g_new (float, mf->vocab->n_tokens);
  gint64 t0, t1;
  gint32 tok;
  guint i;

  if (!llm_compute_forward (c, kv, (const gint32 *) prompt->data,
          prompt->len, hidden, &err))
    g_error ("prefill: %s", err->message);
  llm_compute_logits (c, hidden, logits);
  tok = argmax (logits, mf->vocab->n_tokens);
  t0 = g_get_monotonic_time ();
  for (i = 1; i < n_tokens; i++) {
    if (tok == mf->vocab->eos || tok == mf->vocab->bos)
      break;
    if (!llm_compute_forward (c, kv, &tok, 1, hidden, &err))
      break;
    llm_compute_logits (c, hidden, logits);
    tok = argmax (logits, mf->vocab->n_tokens);
  }
  t1 = g_get_monotonic_time ();
  *n_done = i;
  g_clear_error (&err);
  g_free (logits);
  g_free (hidden);
  llm_kv_cache_free (kv);
  return (t1 - t0) / 1e6 / (i - 1);
}

typedef struct
{
  gint64 t_first, t_last;
  guint n;
} Timing;

static GstPadProbeReturn
on_token (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  Timing *t = user_data;
  gint64 now = g_get_monotonic_time ();

  if (t->n++ == 0)
    t->t_first = now;
  t->t_last = now;
  return GST_PAD_PROBE_OK;
}

static double
pipeline_run (const gchar * model, const gchar * prompt, guint n_tokens,
    guint * n_done)
{
  gchar *desc = g_strdup_printf ("appsrc name=src ! llmtokenizer model=\"%s\" "
      "! llmencoder n-threads=1 ! llmdecoder max-tokens=%u n-threads=1 ! "
      "llmsampler name=sam temperature=0 ! llmdetokenizer ! "
      "fakesink sync=false", model, n_tokens);
  GError *err = NULL;
  GstElement *p = gst_parse_launch (desc, &err), *src, *sam;
  Timing t = { 0 };
  GstMessage *msg;
  GstFlowReturn fr;
  GstBuffer *buf;
  GstPad *pad;

  if (p == NULL)
    g_error ("%s", err->message);
  sam = gst_bin_get_by_name (GST_BIN (p), "sam");
  pad = gst_element_get_static_pad (sam, "src");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, on_token, &t, NULL);
  src = gst_bin_get_by_name (GST_BIN (p), "src");
  gst_element_set_state (p, GST_STATE_PLAYING);
  buf = gst_buffer_new_memdup (prompt, strlen (prompt));
  g_signal_emit_by_name (src, "push-buffer", buf, &fr);
  gst_buffer_unref (buf);       /* the action signal does not take it */
  g_signal_emit_by_name (src, "end-of-stream", &fr);
  msg = gst_bus_timed_pop_filtered (GST_ELEMENT_BUS (p), GST_CLOCK_TIME_NONE,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR)
    g_error ("pipeline failed");
  gst_message_unref (msg);
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (pad);
  gst_object_unref (sam);
  gst_object_unref (src);
  gst_object_unref (p);
  g_free (desc);
  *n_done = t.n;
  return (t.t_last - t.t_first) / 1e6 / (t.n - 1);
}

int
main (int argc, char **argv)
{
  GOptionContext *ctx = g_option_context_new ("- CPU decode benchmark");
  GError *err = NULL;
  LlmModelFile *mf;
  LlmCompute *c;
  GArray *prompt;
  double *core_s, *pipe_s, core_med, pipe_med;
  guint core_n = 0, pipe_n = 0;

  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &err)) {
    fprintf (stderr, "llmasos-bench-cpu: %s\n", err->message);
    return 2;
  }
  g_option_context_free (ctx);
  if (opt_model == NULL || opt_tokens < 2 || opt_repeat < 1) {
    fprintf (stderr, "llmasos-bench-cpu: -m MODEL is required; -n >= 2, "
        "-r >= 1\n");
    return 2;
  }
  if (opt_prompt == NULL)
    opt_prompt = g_strdup ("Once upon a time");
  {
    GstRegistry *reg = gst_registry_get ();
    GstPlugin *plugin = gst_registry_find_plugin (reg, "llmasos");
    if (plugin)
      gst_object_unref (plugin);
    else
      gst_registry_scan_path (reg, LLMASOS_BUILD_PLUGIN_DIR);
  }

  mf = llm_model_file_load (opt_model, NULL, NULL, &err);
  if (mf == NULL) {
    fprintf (stderr, "llmasos-bench-cpu: %s\n", err->message);
    return 1;
  }
  prompt = llm_vocab_encode (mf->vocab, opt_prompt, -1, TRUE, &err);
  c = llm_compute_new (mf, 1);
  core_s = g_new (double, opt_repeat);
  pipe_s = g_new (double, opt_repeat);
  /* Interleaved, so that a slow moment of the machine hits both. */
  for (gint r = 0; r < opt_repeat; r++) {
    core_s[r] = core_run (mf, c, prompt, opt_tokens, &core_n);
    pipe_s[r] = pipeline_run (opt_model, opt_prompt, opt_tokens, &pipe_n);
  }
  core_med = median (core_s, opt_repeat);
  pipe_med = median (pipe_s, opt_repeat);

  if (opt_json) {
    printf ("{\"model\": \"%s\", \"tokens\": %u, \"repeat\": %d, "
        "\"core_tokens_per_s\": %.1f, \"pipeline_tokens_per_s\": %.1f, "
        "\"core_us_per_token\": %.3f, \"pipeline_us_per_token\": %.3f, "
        "\"element_overhead_us_per_token\": %.3f}\n", opt_model, pipe_n,
        opt_repeat, 1 / core_med, 1 / pipe_med, core_med * 1e6,
        pipe_med * 1e6, (pipe_med - core_med) * 1e6);
  } else {
    printf ("model: %s\ndecoded tokens per run: core %u, pipeline %u "
        "(median of %d runs, one thread)\n", opt_model, core_n, pipe_n,
        opt_repeat);
    printf ("core loop:  %9.1f tokens/s  %8.2f us/token\n", 1 / core_med,
        core_med * 1e6);
    printf ("pipeline:   %9.1f tokens/s  %8.2f us/token\n", 1 / pipe_med,
        pipe_med * 1e6);
    printf ("element chain overhead: %.2f us/token (%.1f%% of a step)\n",
        (pipe_med - core_med) * 1e6, 100 * (pipe_med - core_med) / pipe_med);
  }
  g_free (core_s);
  g_free (pipe_s);
  g_array_unref (prompt);
  llm_compute_free (c);
  llm_model_file_free (mf);
  return 0;
}
