/* LLMasOS - sharing GStreamer's CUDA context (plugins/gstllmcudacontext.c).
 *
 * A test-only element (no pads) calls the glue as the real elements do:
 * set_context, the context query, and ensure on READY -> PAUSED.
 * (a) the application sets a GstCudaContext of its own
 *     (gst_cuda_context_new: a driver context that is not the primary one)
 *     on the pipeline: the element takes that object, and libllmasos-cuda
 *     then runs in that context (llm_cuda_current_context), where device
 *     memory and a kernel work;
 * (a') the same through need-context answered by a sync bus handler;
 * (b) no context around: the element posts have-context with a
 *     gst.cuda.context whose GstCudaContext is the device's primary context
 *     (the runtime's own), usable by GStreamer (push/pop), and answers a
 *     context query with it.
 * Without a GPU it says why and exits 77 (meson: SKIP).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <gst/check/gstcheck.h>

#include "gstllmcudacontext.h"
#include "llm-cuda.h"
#include <gst/cuda/gstcudaloader.h>
#include <gst/cuda/gstcudautils.h>

/* --- the test element --- */

typedef struct
{
  GstElement parent;
  GstCudaContext *ctx;
} TestCudaElem;

typedef struct
{
  GstElementClass parent_class;
} TestCudaElemClass;

static GType test_cuda_elem_get_type (void);
G_DEFINE_TYPE (TestCudaElem, test_cuda_elem, GST_TYPE_ELEMENT);

static void
elem_set_context (GstElement * element, GstContext * context)
{
  gst_llm_cuda_context_set (element, context, -1,
      &((TestCudaElem *) element)->ctx);
  GST_ELEMENT_CLASS (test_cuda_elem_parent_class)->set_context (element,
      context);
}

static gboolean
elem_query (GstElement * element, GstQuery * query)
{
  if (gst_llm_cuda_context_query (element, query,
          ((TestCudaElem *) element)->ctx))
    return TRUE;
  return GST_ELEMENT_CLASS (test_cuda_elem_parent_class)->query (element,
      query);
}

static GstStateChangeReturn
elem_change_state (GstElement * element, GstStateChange transition)
{
  TestCudaElem *self = (TestCudaElem *) element;
  GstStateChangeReturn ret;

  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED
      && !gst_llm_cuda_context_ensure (element, -1, &self->ctx))
    return GST_STATE_CHANGE_FAILURE;
  ret = GST_ELEMENT_CLASS (test_cuda_elem_parent_class)->change_state
      (element, transition);
  if (transition == GST_STATE_CHANGE_READY_TO_NULL)
    gst_clear_object (&self->ctx);
  return ret;
}

static void
test_cuda_elem_class_init (TestCudaElemClass * klass)
{
  GstElementClass *eclass = GST_ELEMENT_CLASS (klass);

  eclass->set_context = elem_set_context;
  eclass->query = elem_query;
  eclass->change_state = elem_change_state;
  gst_element_class_set_static_metadata (eclass, "test cuda element",
      "Testing", "calls the gst.cuda.context glue", "LLMasOS");
}

static void
test_cuda_elem_init (TestCudaElem * self)
{
}

/* --- helpers --- */

/* A device allocation, a kernel on it and a sync, in whatever context
 * libllmasos-cuda runs in now. */
static void
check_kernels_run (void)
{
  GError *err = NULL;
  void *p = llm_cuda_alloc (4096, &err);
  guint8 host[4096];

  fail_unless (p != NULL, "alloc: %s", err ? err->message : "");
  fail_unless (llm_cuda_memset (p, 0x3c, sizeof (host), NULL, &err));
  fail_unless (llm_cuda_copy (host, p, sizeof (host),
          LLM_CUDA_DEVICE_TO_HOST, NULL, &err), "copy: %s",
      err ? err->message : "");
  for (guint i = 0; i < sizeof (host); i++)
    fail_unless_equals_int (host[i], 0x3c);
  llm_cuda_free (p);
}

static GstElement *
make_pipeline (TestCudaElem ** elem)
{
  GstElement *pipeline = gst_pipeline_new (NULL);

  *elem = g_object_new (test_cuda_elem_get_type (), NULL);
  gst_bin_add (GST_BIN (pipeline), GST_ELEMENT (*elem));
  return pipeline;
}

/* --- tests --- */

/* (a) the application's context on the pipeline */
GST_START_TEST (test_adopt_app_context)
{
  GstCudaContext *app = gst_cuda_context_new (0);
  TestCudaElem *elem;
  GstElement *pipeline = make_pipeline (&elem);
  GstContext *context;

  fail_unless (app != NULL);
  context = gst_context_new_cuda_context (app);
  gst_element_set_context (pipeline, context);
  gst_context_unref (context);

  fail_unless_equals_int (gst_element_set_state (pipeline, GST_STATE_PAUSED),
      GST_STATE_CHANGE_SUCCESS);
  fail_unless (elem->ctx == app, "the element did not take the app's "
      "context");
  fail_unless_equals_int (gst_llm_cuda_context_get_device (elem->ctx), 0);
  /* our kernels now run in the app's (non-primary) context */
  fail_unless (llm_cuda_current_context () == gst_cuda_context_get_handle
      (app), "libllmasos-cuda runs in %p, the app's context is %p",
      llm_cuda_current_context (), gst_cuda_context_get_handle (app));
  check_kernels_run ();

  fail_unless_equals_int (gst_element_set_state (pipeline, GST_STATE_NULL),
      GST_STATE_CHANGE_SUCCESS);
  gst_object_unref (pipeline);
  /* back to the primary context before the app's goes away */
  fail_unless (llm_cuda_device_open (0, NULL, NULL));
  fail_if (llm_cuda_current_context () == gst_cuda_context_get_handle (app));
  gst_object_unref (app);
}

GST_END_TEST;

static GstBusSyncReply
answer_need_context (GstBus * bus, GstMessage * msg, gpointer app)
{
  const gchar *type;

  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_NEED_CONTEXT
      && gst_message_parse_context_type (msg, &type)
      && g_strcmp0 (type, GST_CUDA_CONTEXT_TYPE) == 0) {
    GstContext *context = gst_context_new_cuda_context (app);

    gst_element_set_context (GST_ELEMENT (GST_MESSAGE_SRC (msg)), context);
    gst_context_unref (context);
  }
  return GST_BUS_PASS;
}

/* (a') the application answers need-context */
GST_START_TEST (test_adopt_need_context)
{
  GstCudaContext *app = gst_cuda_context_new (0);
  TestCudaElem *elem;
  GstElement *pipeline = make_pipeline (&elem);
  GstBus *bus = gst_element_get_bus (pipeline);

  fail_unless (app != NULL);
  gst_bus_set_sync_handler (bus, answer_need_context, app, NULL);
  fail_unless_equals_int (gst_element_set_state (pipeline, GST_STATE_PAUSED),
      GST_STATE_CHANGE_SUCCESS);
  fail_unless (elem->ctx == app);
  fail_unless (llm_cuda_current_context () == gst_cuda_context_get_handle
      (app));
  check_kernels_run ();
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_bus_set_sync_handler (bus, NULL, NULL, NULL);
  gst_object_unref (bus);
  gst_object_unref (pipeline);
  fail_unless (llm_cuda_device_open (0, NULL, NULL));
  gst_object_unref (app);
}

GST_END_TEST;

/* (b) nobody has one: we offer the primary context */
GST_START_TEST (test_offer_primary)
{
  TestCudaElem *elem;
  GstElement *pipeline = make_pipeline (&elem);
  GstBus *bus = gst_element_get_bus (pipeline);
  GstMessage *msg;
  GstContext *context = NULL;
  GstCudaContext *offered = NULL;
  GstQuery *query;
  CUcontext popped = NULL;
  void *primary;

  fail_unless_equals_int (gst_element_set_state (pipeline, GST_STATE_PAUSED),
      GST_STATE_CHANGE_SUCCESS);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_HAVE_CONTEXT);
  fail_unless (msg != NULL, "no have-context message");
  gst_message_parse_have_context (msg, &context);
  fail_unless_equals_string (gst_context_get_context_type (context),
      GST_CUDA_CONTEXT_TYPE);
  fail_unless (gst_structure_get (gst_context_get_structure (context),
          GST_CUDA_CONTEXT_TYPE, GST_TYPE_CUDA_CONTEXT, &offered, NULL));
  fail_unless (offered == elem->ctx);
  fail_unless_equals_int (gst_llm_cuda_context_get_device (offered), 0);

  /* it is the device's primary context, the one our kernels run in */
  primary = llm_cuda_primary_context_retain (0, NULL);
  fail_unless (primary != NULL);
  fail_unless (gst_cuda_context_get_handle (offered) == primary);
  llm_cuda_primary_context_release (0);
  fail_unless (llm_cuda_current_context () == primary);
  check_kernels_run ();

  /* usable by GStreamer's CUDA code */
  fail_unless (gst_cuda_context_push (offered));
  fail_unless (gst_cuda_context_pop (&popped));
  fail_unless (popped == primary);

  /* and given to neighbours that ask */
  query = gst_query_new_context (GST_CUDA_CONTEXT_TYPE);
  fail_unless (gst_element_query (GST_ELEMENT (elem), query));
  {
    GstContext *answer = NULL;
    GstCudaContext *got = NULL;

    gst_query_parse_context (query, &answer);
    fail_unless (answer != NULL);
    fail_unless (gst_structure_get (gst_context_get_structure (answer),
            GST_CUDA_CONTEXT_TYPE, GST_TYPE_CUDA_CONTEXT, &got, NULL));
    fail_unless (got == offered);
    gst_object_unref (got);
  }
  gst_query_unref (query);

  gst_object_unref (offered);
  gst_context_unref (context);
  gst_message_unref (msg);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (pipeline);
}

GST_END_TEST;

static Suite *
cuda_context_suite (void)
{
  Suite *s = suite_create ("cuda-context");
  TCase *tc = tcase_create ("cuda-context");
  GError *err = NULL;
  LlmCudaDeviceInfo info;

  if (llm_cuda_device_count (&err) == 0
      || !llm_cuda_device_open (0, &info, &err)) {
    g_print ("SKIP: %s\n", err ? err->message : "no CUDA device");
    g_clear_error (&err);
    exit (77);
  }
  if (!gst_cuda_load_library ()) {
    g_print ("SKIP: libgstcuda cannot load libcuda.so\n");
    exit (77);
  }
  g_print ("CUDA device 0: %s\n", info.name);
  /* CUDA does not survive fork() once initialised. */
  g_setenv ("CK_FORK", "no", TRUE);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_adopt_app_context);
  tcase_add_test (tc, test_adopt_need_context);
  tcase_add_test (tc, test_offer_primary);
  return s;
}

GST_CHECK_MAIN (cuda_context);
