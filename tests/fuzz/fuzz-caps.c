/* LLMasOS - fuzz target: caps from strings, through what the elements do
 * with caps.
 *
 * The input is a caps string (gst_caps_from_string). Caps that parse go
 * through llm_caps_get_vocab and the negotiation checks of the elements:
 * intersection with our template caps and with the fixed caps of
 * stories260K's vocabulary (llmtokenizer's downstream check, llmencoder's
 * caps query), and, once made fixed, a caps event into llmencoder (which
 * compares vocabularies) and into llmattention (which reads its geometry
 * from the caps) followed there by one q/k/v buffer. The elements live in
 * GstHarnesses made once.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fuzz-gst.h"

#include <gst/check/gstharness.h>

#include "llm-caps.h"
#include "llm-vocab.h"

/* Values nested deeper are not parsed (see llm_fuzz_nesting); nor are
 * arrays and lists (< >, { }): GStreamer 1.22's parser leaks several KiB
 * per input on those the fuzzer writes, which takes a run past its memory
 * limit within a minute. (Our template caps, which hold lists, still go
 * through every intersection.) */
#define MAX_NESTING 2
/* GStreamer interns every structure and field name it parses as a GQuark,
 * for the life of the process: millions of random names take a long run
 * past its memory limit. A process makes at most this many new names;
 * then only inputs whose names are all known are parsed. */
#define MAX_NEW_NAMES 200000
/* Largest q/k/v row (floats) the attention buffer is made for. */
#define MAX_ROW 4096

static LlmVocab *vocab;
static GstCaps *ours[8];
static guint n_ours;
static GstHarness *encoder;
static GstHarness *attention;
/* inside gst_caps_from_string */
static gboolean parsing;
/* new names still allowed */
static gint64 name_budget = MAX_NEW_NAMES;

/* GStreamer 1.22's caps parser asserts (a critical) where a structure
 * name does not start with a letter ("5b28062c, a=1") instead of failing
 * quietly, and leaks on some strings it refuses (tests/fuzz/lsan.supp):
 * GStreamer's bugs, not ours, tolerated while it parses. Any other
 * critical aborts, as everywhere in the fuzz targets. */
static void
gst_critical (const gchar * domain, GLogLevelFlags level,
    const gchar * message, gpointer user_data)
{
  if (parsing)
    return;
  g_log_default_handler (domain, level, message, user_data);
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  g_autofree gchar *dir = llm_fuzz_model_dir ("stories260K");
  g_autoptr (GError) error = NULL;
  GstElement *element;

  llm_fuzz_gst_init ();
  g_log_set_handler ("GStreamer", G_LOG_LEVEL_CRITICAL, gst_critical, NULL);
  vocab = llm_vocab_new_from_path (dir, &error);
  if (vocab == NULL) {
    fprintf (stderr, "fuzz-caps: %s\n", error->message);
    exit (1);
  }
  ours[n_ours++] = gst_caps_from_string (LLM_CAPS_TOKENS_TEMPLATE);
  ours[n_ours++] = gst_caps_from_string (LLM_CAPS_STATE_TEMPLATE);
  ours[n_ours++] = gst_caps_from_string (LLM_CAPS_LOGITS_TEMPLATE);
  ours[n_ours++] = llm_caps_new_tokens (vocab, 0);
  ours[n_ours++] = llm_caps_new_tokens (vocab, 1);
  ours[n_ours++] = llm_caps_new_logits (vocab, 4);
  ours[n_ours++] = llm_caps_new_state (vocab->fingerprint, 1);

  /* the model is set before the harness takes the element to PLAYING */
  element = gst_element_factory_make ("llmencoder", NULL);
  g_object_set (element, "model", dir, NULL);
  encoder = gst_harness_new_with_element (element, "sink", "src");
  gst_object_unref (element);
  gst_harness_set_src_caps (encoder, llm_caps_new_tokens (vocab, 1));
  attention = gst_harness_new ("llmattention");
  gst_harness_set_src_caps_str (attention, LLM_MEDIA_TENSOR
      ", dtype=F32, layout=qkv, heads=2, kv-heads=1, head-dim=4");
  return 0;
}

static void
negotiate (GstCaps * caps)
{
  for (guint i = 0; i < n_ours; i++) {
    GstCaps *both;

    /* llmtokenizer: can downstream take our vocabulary? */
    if (!gst_caps_can_intersect (ours[i], caps))
      (void) llm_caps_get_vocab (caps);
    /* llmencoder's caps query with a filter */
    both = gst_caps_intersect_full (caps, ours[i], GST_CAPS_INTERSECT_FIRST);
    (void) llm_caps_get_vocab (both);
    (void) gst_caps_is_subset (caps, ours[i]);
    gst_caps_unref (both);
  }
}

/* A buffer of q, k, v for one position of the geometry the caps gave,
 * or of sizes that fit no geometry when it is out of reach. */
static void
push_qkv (const GstStructure * s)
{
  gint heads = 0, kv_heads = 0, head_dim = 0;
  gsize q = 3, kv = 5;
  GstBuffer *buf = gst_buffer_new ();
  GstFlowReturn ret;

  gst_structure_get_int (s, "heads", &heads);
  gst_structure_get_int (s, "kv-heads", &kv_heads);
  gst_structure_get_int (s, "head-dim", &head_dim);
  if (heads > 0 && kv_heads > 0 && head_dim > 0 && heads <= MAX_ROW &&
      kv_heads <= MAX_ROW && head_dim <= MAX_ROW / heads &&
      head_dim <= MAX_ROW / kv_heads) {
    q = (gsize) heads * head_dim;
    kv = (gsize) kv_heads * head_dim;
  }
  gst_buffer_append_memory (buf, gst_allocator_alloc (NULL, q * 4, NULL));
  gst_buffer_append_memory (buf, gst_allocator_alloc (NULL, kv * 4, NULL));
  gst_buffer_append_memory (buf, gst_allocator_alloc (NULL, kv * 4, NULL));
  gst_buffer_memset (buf, 0, 0, q * 4 + kv * 8);
  ret = gst_harness_push (attention, buf);
  if (ret == GST_FLOW_OK)
    gst_buffer_unref (gst_harness_pull (attention));
}

/* What the harness's pads received, dropped so that nothing piles up
 * over millions of inputs. */
static void
drain (GstHarness * h)
{
  GstEvent *e;

  while ((e = gst_harness_try_pull_event (h)) != NULL)
    gst_event_unref (e);
  while ((e = gst_harness_try_pull_upstream_event (h)) != NULL)
    gst_event_unref (e);
}

static void
to_elements (GstCaps * caps)
{
  GstCaps *fixed, *filtered;

  if (gst_caps_is_empty (caps) || gst_caps_is_any (caps))
    return;
  fixed = gst_caps_fixate (gst_caps_copy (caps));
  if (!gst_caps_is_fixed (fixed)) {
    gst_caps_unref (fixed);
    return;
  }
  /* the caps query the tokenizer sends, filtered */
  filtered = gst_pad_peer_query_caps (encoder->srcpad, caps);
  gst_caps_unref (filtered);
  gst_harness_push_event (encoder, gst_event_new_caps (fixed));
  if (gst_harness_push_event (attention, gst_event_new_caps (fixed)))
    push_qkv (gst_caps_get_structure (fixed, 0));
  gst_caps_unref (fixed);
  drain (encoder);
  drain (attention);
}

/* Words of @text (runs of the characters a name may hold) that are not
 * quarks yet: an upper bound of the names parsing it would make. */
static gint64
count_new_names (const gchar * text)
{
  static const gchar name_chars[] = "abcdefghijklmnopqrstuvwxyz"
      "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/-_.:+";
  gint64 n = 0;

  while (*text != '\0') {
    gsize len = strspn (text, name_chars);

    if (len > 0) {
      g_autofree gchar *word = g_strndup (text, len);

      n += g_quark_try_string (word) == 0;
      text += len;
    } else {
      text++;
    }
  }
  return n;
}

int
LLVMFuzzerTestOneInput (const uint8_t * data, size_t size)
{
  g_autofree gchar *text = llm_fuzz_strndup (data, size);
  gint64 new_names;
  GstCaps *caps;

  if (llm_fuzz_nesting (text, FALSE) > MAX_NESTING ||
      strpbrk (text, "<{") != NULL)
    return 0;
  new_names = count_new_names (text);
  if (new_names > name_budget)
    return 0;
  name_budget -= new_names;
  parsing = TRUE;
  caps = gst_caps_from_string (text);
  parsing = FALSE;
  if (caps == NULL)
    return 0;
  (void) llm_caps_get_vocab (caps);
  negotiate (caps);
  to_elements (caps);
  gst_caps_unref (caps);
  return 0;
}
