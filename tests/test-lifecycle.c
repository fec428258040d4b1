/* Pipelines stopped in the middle of a generation and cycled through their
 * states: nothing leaks (run under valgrind / ASan in CI), nothing hangs.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <gst/check/gstcheck.h>
#include <string.h>

#include "test-common.h"

static gchar *model_dir;

typedef struct {
  GMutex lock;
  GCond cond;
  guint n_tokens;
} Counter;

static GstPadProbeReturn
count_tokens (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  Counter *c = user_data;

  g_mutex_lock (&c->lock);
  c->n_tokens++;
  g_cond_signal (&c->cond);
  g_mutex_unlock (&c->lock);
  return GST_PAD_PROBE_OK;
}

static GstElement *
make_pipeline (const gchar * extra, Counter * counter)
{
  gchar *desc = g_strdup_printf ("appsrc name=src ! llmtokenizer model=\"%s\" "
      "! llmencoder ! %s llmdecoder max-tokens=0 ! llmsampler name=sam "
      "temperature=1 seed=1 ! llmdetokenizer ! fakesink", model_dir, extra);
  GstElement *p = gst_parse_launch (desc, NULL);
  GstElement *sam = gst_bin_get_by_name (GST_BIN (p), "sam");
  GstPad *pad = gst_element_get_static_pad (sam, "src");

  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, count_tokens, counter,
      NULL);
  gst_object_unref (pad);
  gst_object_unref (sam);
  g_free (desc);
  return p;
}

static void
push_prompt (GstElement * p, const gchar * prompt)
{
  GstElement *src = gst_bin_get_by_name (GST_BIN (p), "src");
  GstFlowReturn fr;

  GstBuffer *buf = gst_buffer_new_memdup (prompt, strlen (prompt));

  /* The action signal does not take the buffer. */
  g_signal_emit_by_name (src, "push-buffer", buf, &fr);
  gst_buffer_unref (buf);
  g_signal_emit_by_name (src, "end-of-stream", &fr);
  gst_object_unref (src);
}

/* Wait until @n tokens came out (the generation is running). */
static void
wait_tokens (Counter * c, guint n)
{
  gint64 end = g_get_monotonic_time () + 60 * G_TIME_SPAN_SECOND;

  g_mutex_lock (&c->lock);
  while (c->n_tokens < n)
    fail_unless (g_cond_wait_until (&c->cond, &c->lock, end),
        "no tokens after 60 s");
  g_mutex_unlock (&c->lock);
}

static void
stop_mid_generation (const gchar * extra)
{
  Counter c = { 0 };
  GstElement *p;

  g_mutex_init (&c.lock);
  g_cond_init (&c.cond);
  p = make_pipeline (extra, &c);
  fail_unless (gst_element_set_state (p, GST_STATE_PLAYING) !=
      GST_STATE_CHANGE_FAILURE);
  push_prompt (p, "Once upon a time");
  wait_tokens (&c, 10);
  fail_unless_equals_int (gst_element_set_state (p, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);
  gst_object_unref (p);
  g_mutex_clear (&c.lock);
  g_cond_clear (&c.cond);
}

GST_START_TEST (test_null_mid_generation)
{
  stop_mid_generation ("");
}

GST_END_TEST;

GST_START_TEST (test_null_mid_generation_queued)
{
  stop_mid_generation ("queue !");
}

GST_END_TEST;

/* NULL -> PLAYING -> NULL, 100 times, generating in some of the cycles. */
GST_START_TEST (test_state_cycles)
{
  Counter c = { 0 };
  GstElement *p;

  g_mutex_init (&c.lock);
  g_cond_init (&c.cond);
  p = make_pipeline ("", &c);
  for (guint i = 0; i < 100; i++) {
    fail_unless (gst_element_set_state (p, GST_STATE_PLAYING) !=
        GST_STATE_CHANGE_FAILURE);
    if (i % 10 == 0) {
      guint before = c.n_tokens;
      push_prompt (p, "Lily and Ben");
      wait_tokens (&c, before + 3);
    }
    fail_unless_equals_int (gst_element_set_state (p, GST_STATE_NULL),
        GST_STATE_CHANGE_SUCCESS);
  }
  gst_object_unref (p);
  g_mutex_clear (&c.lock);
  g_cond_clear (&c.cond);
}

GST_END_TEST;

static Suite *
lifecycle_suite (void)
{
  Suite *s = suite_create ("lifecycle");
  TCase *tc = tcase_create ("general");

  model_dir = llm_test_model_dir ("stories260K");
  tcase_set_timeout (tc, 600);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_null_mid_generation);
  tcase_add_test (tc, test_null_mid_generation_queued);
  tcase_add_test (tc, test_state_cycles);
  return s;
}

GST_CHECK_MAIN (lifecycle);
