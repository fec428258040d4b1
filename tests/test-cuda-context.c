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
 * Then the real elements (gstllmelement.c), in
 * `appsrc ! llmtokenizer ! llmencoder device=cuda ! llmdecoder ! llmsampler
 * temperature=0 ! llmdetokenizer ! appsink` on every reference case of
 * stories260K (tests/test-pipeline.h), each run checking the reference
 * tokens and text:
 * (c) the application sets a gst_cuda_context_new (0) context on the
 *     pipeline: llmencoder and llmdecoder log that they adopted its handle
 *     (GST_INFO of the glue, caught by a log function), the decoder's
 *     streaming thread runs in it (llm_cuda_current_context, on every
 *     token), and so does libllmasos-cuda after the run; nobody posts a
 *     gst.cuda.context of ours or asks for one;
 * (d) no context set: the pipeline posts exactly one have-context of type
 *     gst.cuda.context (the encoder's; the decoder finds it by query),
 *     whose GstCudaContext is device 0's primary context, the one the
 *     streaming thread runs in, and usable by GStreamer (push/pop).
 * Without a GPU it says why and exits 77 (meson: SKIP).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <gst/check/gstcheck.h>

#include "gstllmcudacontext.h"
#include "llm-cuda.h"
#include "test-common.h"
#include "test-pipeline.h"

#include <stdio.h>
#include <string.h>
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
  /* back to the primary context (llm_cuda_device_open would keep the
   * adopted one: it is on device 0) */
  fail_unless (llm_cuda_device_open (0, NULL, NULL));
  fail_unless (llm_cuda_current_context () == gst_cuda_context_get_handle
      (app), "llm_cuda_device_open dropped the adopted context");
  fail_unless (llm_cuda_device_adopt_context (NULL, NULL));
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
  fail_unless (llm_cuda_device_adopt_context (NULL, NULL));
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

/* --- the real elements --- */

static gchar *model_dir;

/* What the glue logged (category llmcudacontext): per element name, the
 * context it bound our kernels to and how. */
typedef struct
{
  GMutex lock;
  GHashTable *bound;            /* element name -> "how %p" */
} GlueLog;

static GlueLog glue_log;

static void
on_log (GstDebugCategory * category, GstDebugLevel level, const gchar * file,
    const gchar * function, gint line, GObject * object,
    GstDebugMessage * message, gpointer user_data)
{
  const gchar *msg, *at;
  const gchar *how;
  void *ptr = NULL;

  if (strcmp (gst_debug_category_get_name (category), "llmcudacontext") != 0
      || !GST_IS_OBJECT (object) || (msg = gst_debug_message_get (message))
      == NULL || (at = strstr (msg, "context ")) == NULL
      || sscanf (at + strlen ("context "), "%p", &ptr) != 1
      || g_str_has_prefix (msg, "offering"))
    return;
  if (strstr (msg, "adopted context") != NULL)
    how = "adopted";
  else if (strstr (msg, "already in use") != NULL)
    how = "in-use";
  else if (strstr (msg, "primary context") != NULL)
    how = "primary";
  else
    return;
  g_mutex_lock (&glue_log.lock);
  g_hash_table_insert (glue_log.bound, g_strdup (GST_OBJECT_NAME (object)),
      g_strdup_printf ("%s %p", how, ptr));
  g_mutex_unlock (&glue_log.lock);
}

/* "how %p" the element named @name bound our kernels with, or NULL. */
static gchar *
glue_bound (const gchar * name)
{
  gchar *v;

  g_mutex_lock (&glue_log.lock);
  v = g_strdup (g_hash_table_lookup (glue_log.bound, name));
  g_mutex_unlock (&glue_log.lock);
  return v;
}

typedef struct
{
  LlmRunResult *res;            /* tokens, text, error */
  GPtrArray *offered;           /* GstContext of have-context (cuda) */
  guint need_cuda;              /* need-context of type gst.cuda.context */
  void *stream_ctx;             /* llm_cuda_current_context (), first token */
  guint stream_ctx_changes;     /* tokens on which it was another */
  guint buffers;                /* of token ids seen */
} CudaRun;

static GstBusSyncReply
watch_contexts (GstBus * bus, GstMessage * msg, gpointer user_data)
{
  CudaRun *r = user_data;
  const gchar *type = NULL;

  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_HAVE_CONTEXT) {
    GstContext *context = NULL;

    gst_message_parse_have_context (msg, &context);
    if (g_strcmp0 (gst_context_get_context_type (context),
            GST_CUDA_CONTEXT_TYPE) == 0)
      g_ptr_array_add (r->offered, context);
    else
      gst_context_unref (context);
  } else if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_NEED_CONTEXT
      && gst_message_parse_context_type (msg, &type)
      && g_strcmp0 (type, GST_CUDA_CONTEXT_TYPE) == 0) {
    r->need_cuda++;
  }
  return GST_BUS_PASS;
}

/* In the decoder's streaming thread, where the decoder and the sampler
 * run their kernels. */
static GstPadProbeReturn
on_tokens (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  CudaRun *r = user_data;
  void *ctx = llm_cuda_current_context ();

  if (r->buffers++ == 0)
    r->stream_ctx = ctx;
  else if (ctx != r->stream_ctx)
    r->stream_ctx_changes++;
  return GST_PAD_PROBE_OK;
}

/* The pipeline of the header on @prompt, with @app (may be NULL) set on
 * it before it starts. */
static CudaRun *
run_cuda_pipeline (GstCudaContext * app, const gchar * prompt)
{
  g_autofree gchar *desc = g_strdup_printf ("appsrc name=src ! "
      "llmtokenizer model=\"%s\" ! llmencoder name=enc device=cuda ! "
      "llmdecoder name=dec max-tokens=120 ! llmsampler name=sam "
      "temperature=0 ! llmdetokenizer ! appsink name=sink", model_dir);
  CudaRun *r = g_new0 (CudaRun, 1);
  LlmRunHooks hooks = { NULL, watch_contexts, on_tokens, r };

  r->offered = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_context_unref);
  if (app != NULL)
    hooks.context = gst_context_new_cuda_context (app);
  r->res = llm_run_pipeline_full (desc, prompt, &hooks);
  if (hooks.context != NULL)
    gst_context_unref (hooks.context);
  return r;
}

/* Case @i: llmencoder "enc" and llmdecoder "dec" bound our kernels as
 * @want_enc and @want_dec say ("how %p", glue_bound). */
static void
check_bound (guint i, const gchar * want_enc, const gchar * want_dec)
{
  g_autofree gchar *enc = glue_bound ("enc");
  g_autofree gchar *dec = glue_bound ("dec");

  fail_unless (g_strcmp0 (enc, want_enc) == 0, "case %u: llmencoder: %s, "
      "expected %s", i, enc, want_enc);
  fail_unless (g_strcmp0 (dec, want_dec) == 0, "case %u: llmdecoder: %s, "
      "expected %s", i, dec, want_dec);
}

static void
cuda_run_free (CudaRun * r)
{
  llm_run_result_free (r->res);
  g_ptr_array_unref (r->offered);
  g_free (r);
}

static void
glue_log_reset (void)
{
  g_mutex_lock (&glue_log.lock);
  g_hash_table_remove_all (glue_log.bound);
  g_mutex_unlock (&glue_log.lock);
}

/* (c) the application's context, on the real elements */
GST_START_TEST (test_pipeline_adopts_app_context)
{
  GstCudaContext *app = gst_cuda_context_new (0);
  GPtrArray *cases = llm_golden_cases ();
  void *handle;

  fail_unless (app != NULL);
  handle = gst_cuda_context_get_handle (app);
  for (guint i = 0; i < cases->len; i++) {
    LlmGoldenCase *c = g_ptr_array_index (cases, i);
    /* the encoder adopts it in the first run (the tests above left the
     * primary context bound) and finds it in use in later runs; the
     * decoder, after the encoder, always finds it in use */
    g_autofree gchar *want_enc = g_strdup_printf ("%s %p",
        i == 0 ? "adopted" : "in-use", handle);
    g_autofree gchar *want_dec = g_strdup_printf ("in-use %p", handle);
    CudaRun *r;

    glue_log_reset ();
    r = run_cuda_pipeline (app, c->prompt);
    llm_check_golden (r->res, c, i);
    check_bound (i, want_enc, want_dec);
    fail_unless (r->stream_ctx == handle, "case %u: the decoder's thread ran "
        "in %p, the app's context is %p", i, r->stream_ctx, handle);
    fail_unless_equals_int (r->stream_ctx_changes, 0);
    /* we adopted: nothing of ours offered */
    fail_unless_equals_int (r->offered->len, 0);
    fail_unless (llm_cuda_current_context () == handle);
    cuda_run_free (r);
  }
  g_ptr_array_unref (cases);
  gst_object_unref (app);
}

GST_END_TEST;

/* (d) no context set: the encoder offers the primary context */
GST_START_TEST (test_pipeline_offers_primary)
{
  GPtrArray *cases = llm_golden_cases ();
  void *primary = llm_cuda_primary_context_retain (0, NULL);

  fail_unless (primary != NULL);
  llm_cuda_primary_context_release (0);
  for (guint i = 0; i < cases->len; i++) {
    LlmGoldenCase *c = g_ptr_array_index (cases, i);
    GstCudaContext *offered = NULL;
    CUcontext popped = NULL;
    g_autofree gchar *want_enc = g_strdup_printf ("primary %p", primary);
    g_autofree gchar *want_dec = g_strdup_printf ("in-use %p", primary);
    CudaRun *r;

    glue_log_reset ();
    r = run_cuda_pipeline (NULL, c->prompt);
    llm_check_golden (r->res, c, i);
    fail_unless_equals_int (r->offered->len, 1);
    fail_unless (gst_structure_get (gst_context_get_structure
            (g_ptr_array_index (r->offered, 0)), GST_CUDA_CONTEXT_TYPE,
            GST_TYPE_CUDA_CONTEXT, &offered, NULL));
    fail_unless_equals_int (gst_llm_cuda_context_get_device (offered), 0);
    fail_unless (gst_cuda_context_get_handle (offered) == primary,
        "case %u: offered %p, the primary context is %p", i,
        gst_cuda_context_get_handle (offered), primary);
    fail_unless (r->stream_ctx == primary);
    fail_unless_equals_int (r->stream_ctx_changes, 0);
    /* the encoder asked the application (need-context) before offering
     * (a later need-context would be answered by the bin, which keeps the
     * offered context, and not reach the bus) */
    fail_unless_equals_int (r->need_cuda, 1);
    /* the encoder bound the primary context, the decoder the same object
     * (in use already) */
    check_bound (i, want_enc, want_dec);
    /* usable by GStreamer's CUDA code after the pipeline stopped */
    fail_unless (gst_cuda_context_push (offered));
    fail_unless (gst_cuda_context_pop (&popped));
    fail_unless (popped == primary);
    gst_object_unref (offered);
    cuda_run_free (r);
  }
  g_ptr_array_unref (cases);
}

GST_END_TEST;

static Suite *
cuda_context_suite (void)
{
  Suite *s;
  TCase *tc;
  GError *err = NULL;
  LlmCudaDeviceInfo info;

  /* before the suite exists: a skip leaks nothing (ASan's leak check) */
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
  s = suite_create ("cuda-context");
  tc = tcase_create ("cuda-context");
  model_dir = llm_test_model_dir ("stories260K");
  g_mutex_init (&glue_log.lock);
  glue_log.bound = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
      g_free);
  gst_debug_set_threshold_for_name ("llmcudacontext", GST_LEVEL_INFO);
  gst_debug_add_log_function (on_log, NULL, NULL);
  /* CUDA does not survive fork() once initialised. */
  g_setenv ("CK_FORK", "no", TRUE);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_adopt_app_context);
  tcase_add_test (tc, test_adopt_need_context);
  tcase_add_test (tc, test_offer_primary);
  tcase_add_test (tc, test_pipeline_adopts_app_context);
  tcase_add_test (tc, test_pipeline_offers_primary);
  tcase_set_timeout (tc, 300);
  return s;
}

GST_CHECK_MAIN (cuda_context);
