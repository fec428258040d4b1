/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "test-pipeline.h"
#include "test-common.h"

#include <gst/check/gstcheck.h>
#include <json-glib/json-glib.h>
#include <string.h>

static GstFlowReturn
on_sample (GstElement * sink, gpointer user_data)
{
  LlmRunResult *r = user_data;
  GstSample *sample = NULL;
  GstMapInfo map;

  g_signal_emit_by_name (sink, "pull-sample", &sample);
  if (sample == NULL)
    return GST_FLOW_ERROR;
  gst_buffer_map (gst_sample_get_buffer (sample), &map, GST_MAP_READ);
  g_string_append_len (r->text, (const gchar *) map.data, map.size);
  gst_buffer_unmap (gst_sample_get_buffer (sample), &map);
  gst_sample_unref (sample);
  return GST_FLOW_OK;
}

static GstPadProbeReturn
on_tokens (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  LlmRunResult *r = user_data;
  GstMapInfo map;

  gst_buffer_map (GST_PAD_PROBE_INFO_BUFFER (info), &map, GST_MAP_READ);
  g_array_append_vals (r->tokens, map.data, map.size / sizeof (gint32));
  gst_buffer_unmap (GST_PAD_PROBE_INFO_BUFFER (info), &map);
  return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn
on_dec_caps (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  LlmRunResult *r = user_data;
  GstEvent *event = GST_PAD_PROBE_INFO_EVENT (info);
  GstCaps *caps;

  if (GST_EVENT_TYPE (event) == GST_EVENT_CAPS) {
    gst_event_parse_caps (event, &caps);
    gst_caps_replace (&r->dec_caps, caps);
  }
  return GST_PAD_PROBE_OK;
}

LlmRunResult *
llm_run_pipeline (const gchar * desc, const gchar * prompt)
{
  return llm_run_pipeline_full (desc, prompt, NULL);
}

LlmRunResult *
llm_run_pipeline_full (const gchar * desc, const gchar * prompt,
    const LlmRunHooks * hooks)
{
  static const LlmRunHooks none;
  LlmRunResult *r = g_new0 (LlmRunResult, 1);
  GError *err = NULL;
  GstElement *pipeline, *src, *sink, *sam, *dec;
  GstBus *bus;
  GstMessage *msg;

  if (hooks == NULL)
    hooks = &none;
  r->text = g_string_new (NULL);
  r->tokens = g_array_new (FALSE, FALSE, sizeof (gint32));
  pipeline = gst_parse_launch (desc, &err);
  if (pipeline == NULL) {
    r->error = g_strdup (err->message);
    g_error_free (err);
    return r;
  }
  if (hooks->context != NULL)
    gst_element_set_context (pipeline, hooks->context);
  bus = gst_element_get_bus (pipeline);
  if (hooks->bus_handler != NULL)
    gst_bus_set_sync_handler (bus, hooks->bus_handler, hooks->user_data,
        NULL);
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  g_object_set (sink, "emit-signals", TRUE, "sync", FALSE, NULL);
  g_signal_connect (sink, "new-sample", G_CALLBACK (on_sample), r);
  sam = gst_bin_get_by_name (GST_BIN (pipeline), "sam");
  if (sam) {
    GstPad *pad = gst_element_get_static_pad (sam, "src");
    gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, on_tokens, r, NULL);
    if (hooks->token_probe != NULL)
      gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, hooks->token_probe,
          hooks->user_data, NULL);
    gst_object_unref (pad);
    gst_object_unref (sam);
  }
  dec = gst_bin_get_by_name (GST_BIN (pipeline), "dec");
  if (dec) {
    GstPad *pad = gst_element_get_static_pad (dec, "src");
    gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, on_dec_caps,
        r, NULL);
    gst_object_unref (pad);
    gst_object_unref (dec);
  }

  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  src = gst_bin_get_by_name (GST_BIN (pipeline), "src");
  if (src) {
    GstFlowReturn fr;
    gsize len = strlen (prompt);

    if (len > 0) {
      GstBuffer *buf = gst_buffer_new_memdup (prompt, len);

      /* The action signal does not take the buffer. */
      g_signal_emit_by_name (src, "push-buffer", buf, &fr);
      gst_buffer_unref (buf);
    }
    g_signal_emit_by_name (src, "end-of-stream", &fr);
    gst_object_unref (src);
  }

  msg = gst_bus_timed_pop_filtered (bus, 120 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  if (msg == NULL) {
    r->error = g_strdup ("timeout: no EOS or error within 120 s");
  } else if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    gst_message_parse_error (msg, &err, NULL);
    r->error = g_strdup (err->message);
    g_error_free (err);
  } else {
    r->eos = TRUE;
  }
  if (msg)
    gst_message_unref (msg);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  if (hooks->bus_handler != NULL)
    gst_bus_set_sync_handler (bus, NULL, NULL, NULL);
  gst_object_unref (bus);
  gst_object_unref (sink);
  gst_object_unref (pipeline);
  return r;
}

void
llm_check_golden (const LlmRunResult * r, const LlmGoldenCase * c, guint i)
{
  fail_unless (r->error == NULL, "case %u: %s", i, r->error);
  fail_unless_equals_int (r->tokens->len, c->greedy_ids->len);
  for (guint t = 0; t < r->tokens->len; t++)
    fail_unless_equals_int (g_array_index (r->tokens, gint32, t),
        g_array_index (c->greedy_ids, gint32, t));
  fail_unless_equals_string (r->text->str, c->continuation);
}

void
llm_run_result_free (LlmRunResult * r)
{
  g_string_free (r->text, TRUE);
  g_array_unref (r->tokens);
  gst_clear_caps (&r->dec_caps);
  g_free (r->error);
  g_free (r);
}

static void
golden_case_free (LlmGoldenCase * c)
{
  g_free (c->prompt);
  g_free (c->continuation);
  g_array_unref (c->greedy_ids);
  g_free (c);
}

GPtrArray *
llm_golden_cases (void)
{
  gchar *path = llm_test_model_file ("stories260K",
      "reference/generate.json");
  JsonParser *parser = json_parser_new ();
  GError *err = NULL;
  GPtrArray *cases = g_ptr_array_new_with_free_func ((GDestroyNotify)
      golden_case_free);
  JsonArray *arr;

  if (!json_parser_load_from_file (parser, path, &err))
    g_error ("cannot read %s: %s", path, err->message);
  arr = json_object_get_array_member (json_node_get_object
      (json_parser_get_root (parser)), "cases");
  for (guint i = 0; i < json_array_get_length (arr); i++) {
    JsonObject *o = json_array_get_object_element (arr, i);
    JsonArray *ids = json_object_get_array_member (o, "greedy_ids");
    LlmGoldenCase *c = g_new0 (LlmGoldenCase, 1);

    c->prompt = g_strdup (json_object_get_string_member (o, "prompt"));
    c->continuation =
        g_strdup (json_object_get_string_member (o, "continuation"));
    c->greedy_ids = g_array_new (FALSE, FALSE, sizeof (gint32));
    for (guint j = 0; j < json_array_get_length (ids); j++) {
      gint32 id = json_array_get_int_element (ids, j);
      g_array_append_val (c->greedy_ids, id);
    }
    g_ptr_array_add (cases, c);
  }
  g_object_unref (parser);
  g_free (path);
  return cases;
}
