/* llmasos-bench - prefill and decode speed of a compute backend (CUDA) on
 * models of real architectures' shapes, against the memory-bandwidth
 * roofline it measures itself; optionally the same decode through the
 * whole GStreamer pipeline, to show the elements' cost per token.
 *
 *   llmasos-bench --arch llama3-8b --dtype f16,q4_0 --json bench.json
 *   llmasos-bench --arch tiny --write-gguf tiny-f16.gguf --dtype f16
 *   llmasos-bench --arch tiny --dtype f16 --pipeline tiny-f16.gguf
 *
 * The weights are random (normal, std 0.02; norms 1.0), made on the device
 * by the backend's weights_new_random: timing does not depend on the
 * values, and a Llama-3-8B is ready in a second instead of minutes of
 * reading a 16 GB file. For each dtype it reports
 * - prefill tokens/s: one forward of N tokens into an empty cache,
 *   GPU-synchronised wall time (the hidden state comes back to the host);
 * - decode tokens/s at batch 1: the cache is filled to the depth by one
 *   prefill, then K steps of forward (1 token) + logits on the device +
 *   greedy sampling on the device (only the id crosses to the host);
 * - the roofline of decode: the device-to-device copy bandwidth measured
 *   here (bytes read + written per second, cudaMemcpy of 1 GiB, as
 *   llmasos-bench-cuda does) divided by the bytes one step must read: every
 *   weight matrix and norm once (the output head included), one embedding
 *   row, and the KV cache at the mean depth of the timed steps; and the
 *   fraction of it reached.
 * Each figure is the median of --repeat runs, after an untimed one.
 *
 * --pipeline GGUF measures instead: appsrc ! llmtokenizer ! llmencoder
 * device=cuda ! llmdecoder device=cuda ! llmsampler temperature=0 !
 * llmdetokenizer ! fakesink, timed from the first sampled token to the last
 * at llmsampler's src pad, against the same greedy decode of the same
 * file's weights called directly through the backend, run for run
 * interleaved; the difference per token is the cost of the elements.
 * --write-gguf FILE only writes such a file (random weights of --arch's
 * shape in the first --dtype, generated on the host, and a made-up SPM
 * vocabulary of the shape's size that tokenizes any text).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <gst/gst.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm-backend.h"
#include "llm-backend-cuda.h"
#include "llm-cuda.h"
#include "llm-error.h"
#include "llm-forward.h"
#include "llm-gguf.h"
#include "llm-model-file.h"
#include "llm-vocab.h"

#define COPY_BYTES ((gsize) 1 << 30)
#define COPY_REPEATS 20
#define WEIGHT_STD 0.02f

static gchar *opt_arch = NULL;
static gchar *opt_dtypes = NULL;
static gchar *opt_prefill = NULL;
static gchar *opt_depths = NULL;
static gint opt_decode_tokens = 64;
static gint opt_repeat = 5;
static gchar *opt_device = NULL;
static gchar *opt_json = NULL;
static gchar *opt_pipeline = NULL;
static gchar *opt_write_gguf = NULL;
static gchar *opt_prompt = NULL;
static gint64 opt_seed = 1;
static gchar *opt_kv_dtype = NULL;

static GOptionEntry entries[] = {
  {"arch", 'a', 0, G_OPTION_ARG_STRING, &opt_arch,
      "Shape: llama3-8b (default), llama2-7b or tiny", "ARCH"},
  {"dtype", 't', 0, G_OPTION_ARG_STRING, &opt_dtypes,
      "Weight types, comma-separated (default f16,bf16,q8_0,q4_0)", "LIST"},
  {"prefill", 'p', 0, G_OPTION_ARG_STRING, &opt_prefill,
        "Prefill lengths, comma-separated (default 512,2048; 0: none)",
      "LIST"},
  {"decode-depth", 'd', 0, G_OPTION_ARG_STRING, &opt_depths,
      "Cache depths of the decode runs (default 128,4096)", "LIST"},
  {"decode-tokens", 'n', 0, G_OPTION_ARG_INT, &opt_decode_tokens,
      "Decode steps timed per run (default 64)", "N"},
  {"repeat", 'r', 0, G_OPTION_ARG_INT, &opt_repeat,
        "Timed runs of each measurement; the median is reported (default 5)",
      "R"},
  {"device", 0, 0, G_OPTION_ARG_STRING, &opt_device,
      "Device (default cuda:0)", "DEVICE"},
  {"json", 'j', 0, G_OPTION_ARG_FILENAME, &opt_json,
      "Also write the results as JSON to FILE (- for stdout)", "FILE"},
  {"pipeline", 0, 0, G_OPTION_ARG_FILENAME, &opt_pipeline,
      "Instead, decode through the GStreamer elements with this GGUF "
        "model, against the backend alone on the same weights", "GGUF"},
  {"write-gguf", 0, 0, G_OPTION_ARG_FILENAME, &opt_write_gguf,
      "Only write a GGUF of --arch's shape with random weights in the "
        "first --dtype (for --pipeline)", "FILE"},
  {"prompt", 0, 0, G_OPTION_ARG_STRING, &opt_prompt,
      "Prompt of the --pipeline runs (default \"Once upon a time\")", "TEXT"},
  {"seed", 0, 0, G_OPTION_ARG_INT64, &opt_seed,
      "Seed of the random weights and tokens (default 1)", "N"},
  {"kv-dtype", 0, 0, G_OPTION_ARG_STRING, &opt_kv_dtype,
        "KV cache type: f16, q8_0 or f32 (default: f16, f32 for f32 "
        "weights; sets LLMASOS_CUDA_KV_DTYPE)", "TYPE"},
  {NULL}
};

/* --- architectures --- */

typedef struct
{
  const gchar *name;
  const gchar *what;
  LlmHParams hp;
} Arch;

static Arch archs[] = {
  {"llama3-8b", "Llama-3-8B", {.arch = LLM_ARCH_LLAMA, .n_vocab = 128256,
              .dim = 4096, .n_layers = 32, .n_heads = 32, .n_kv_heads = 8,
              .head_dim = 128, .ffn_dim = 14336, .n_ctx_train = 8192,
              .rms_eps = 1e-5f, .rope_theta = 500000.0f}},
  {"llama2-7b", "Llama-2-7B", {.arch = LLM_ARCH_LLAMA, .n_vocab = 32000,
              .dim = 4096, .n_layers = 32, .n_heads = 32, .n_kv_heads = 32,
              .head_dim = 128, .ffn_dim = 11008, .n_ctx_train = 4096,
              .rms_eps = 1e-5f, .rope_theta = 10000.0f}},
  /* a quick check: small enough that a run takes seconds, deep enough
   * for the default decode depths */
  {"tiny", "tiny (a quick check)", {.arch = LLM_ARCH_LLAMA, .n_vocab = 4096,
              .dim = 512, .n_layers = 4, .n_heads = 8, .n_kv_heads = 4,
              .head_dim = 64, .ffn_dim = 1536, .n_ctx_train = 8192,
              .rms_eps = 1e-5f, .rope_theta = 10000.0f}},
};

static void G_GNUC_NORETURN
die (const gchar * what, GError * error)
{
  g_printerr ("llmasos-bench: %s%s%s\n", what, error ? ": " : "",
      error ? error->message : "");
  exit (1);
}

/* "512,2048" -> numbers; FALSE on anything else. */
static GArray *
parse_uints (const gchar * s, const gchar * what)
{
  g_auto (GStrv) parts = g_strsplit (s, ",", -1);
  GArray *out = g_array_new (FALSE, FALSE, sizeof (guint));

  for (guint i = 0; parts[i] != NULL; i++) {
    guint64 v;
    gchar *p = g_strstrip (parts[i]);

    if (*p == '\0')
      continue;
    if (!g_ascii_string_to_unsigned (p, 10, 0, 1 << 20, &v, NULL)) {
      g_printerr ("llmasos-bench: %s: '%s' is not a number\n", what, p);
      exit (2);
    }
    if (v > 0)
      g_array_append_val (out, v);
  }
  return out;
}

static GArray *
parse_dtypes (const gchar * s)
{
  g_auto (GStrv) parts = g_strsplit (s, ",", -1);
  GArray *out = g_array_new (FALSE, FALSE, sizeof (LlmDType));

  for (guint i = 0; parts[i] != NULL; i++) {
    LlmDType t = llm_dtype_from_name (g_strstrip (parts[i]));

    if (t != LLM_DTYPE_F16 && t != LLM_DTYPE_BF16 && t != LLM_DTYPE_Q8_0
        && t != LLM_DTYPE_Q4_0 && t != LLM_DTYPE_F32) {
      g_printerr ("llmasos-bench: --dtype: '%s' is not one of f32, f16, "
          "bf16, q8_0, q4_0\n", parts[i]);
      exit (2);
    }
    g_array_append_val (out, t);
  }
  return out;
}

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

/* Stored type of a matrix: rows that are not whole blocks fall back to
 * F16, as the random weights and the GGUF writer do. */
static LlmDType
matrix_dtype (LlmDType dtype, guint cols)
{
  return cols % llm_dtype_block_elems (dtype) == 0 ? dtype : LLM_DTYPE_F16;
}

static double
matrix_bytes (LlmDType dtype, guint rows, guint cols)
{
  guint64 b = 0;

  llm_dtype_bytes_for (matrix_dtype (dtype, cols), (guint64) rows * cols, &b);
  return (double) b;
}

/* Bytes a KV cache element takes: --kv-dtype's (Q8_0: a byte, and a
 * float scale a 32-block, kernels/kv-q8_0.cuh), else F16 unless the
 * weights are F32 (kernels/llm-forward-cuda.c). */
static double
kv_bytes (LlmDType dtype)
{
  if (g_strcmp0 (opt_kv_dtype, "q8_0") == 0)
    return 1.125;
  if (g_strcmp0 (opt_kv_dtype, "f16") == 0)
    return 2;
  if (g_strcmp0 (opt_kv_dtype, "f32") == 0)
    return 4;
  return dtype == LLM_DTYPE_F32 ? 4 : 2;
}

/* Bytes one decode step reads at a cache of @depth positions: every
 * layer's matrices and norms, the final norm and the output head, one
 * embedding row, and the keys and values of @depth positions. */
static double
decode_bytes (const LlmHParams * hp, LlmDType dtype, double depth,
    double *weights_out)
{
  guint q = hp->n_heads * hp->head_dim, kv = hp->n_kv_heads * hp->head_dim;
  double layer = matrix_bytes (dtype, q, hp->dim)
      + 2 * matrix_bytes (dtype, kv, hp->dim) + matrix_bytes (dtype, hp->dim,
      q) + 2 * matrix_bytes (dtype, hp->ffn_dim, hp->dim)
      + matrix_bytes (dtype, hp->dim, hp->ffn_dim) + 2.0 * hp->dim * 4;
  double weights = layer * hp->n_layers + hp->dim * 4.0
      + matrix_bytes (dtype, hp->n_vocab, hp->dim)
      + matrix_bytes (dtype, 1, hp->dim);

  if (weights_out)
    *weights_out = weights;
  return weights + 2.0 * hp->n_layers * depth * kv * kv_bytes (dtype);
}

/* --- the copy bandwidth --- */

/* Bytes read + written per second by device-to-device copies of 1 GiB
 * (after two untimed ones), timed by events on one stream. */
static double
copy_bandwidth (void)
{
  GError *error = NULL;
  LlmCudaStream *s;
  LlmCudaEvent *start, *end;
  void *a, *b;
  float ms = 0;

  if ((s = llm_cuda_stream_new (&error)) == NULL
      || (start = llm_cuda_event_new (&error)) == NULL
      || (end = llm_cuda_event_new (&error)) == NULL
      || (a = llm_cuda_alloc (COPY_BYTES, &error)) == NULL
      || (b = llm_cuda_alloc (COPY_BYTES, &error)) == NULL
      || !llm_cuda_memset (a, 1, COPY_BYTES, s, &error)
      || !llm_cuda_memset (b, 2, COPY_BYTES, s, &error))
    die ("copy bandwidth", error);
  for (guint i = 0; i < COPY_REPEATS + 2; i++) {
    if (i == 2 && !llm_cuda_event_record (start, s, &error))
      die ("event", error);
    if (!llm_cuda_copy (i % 2 ? a : b, i % 2 ? b : a, COPY_BYTES,
            LLM_CUDA_DEVICE_TO_DEVICE, s, &error))
      die ("copy", error);
  }
  if (!llm_cuda_event_record (end, s, &error)
      || !llm_cuda_event_elapsed_ms (start, end, &ms, &error)
      || !llm_cuda_stream_sync (s, &error))
    die ("copy bandwidth", error);
  llm_cuda_free (a);
  llm_cuda_free (b);
  llm_cuda_event_free (start);
  llm_cuda_event_free (end);
  llm_cuda_stream_free (s);
  return 2.0 * COPY_BYTES * COPY_REPEATS / (ms / 1e3);
}

/* --- the backend alone --- */

typedef struct
{
  const LlmBackend *be;
  gint index;
  const LlmHParams *hp;
  gpointer w, kv, c;
  void *logits_dev;             /* n_vocab floats on the device */
  float *hidden;                /* dim floats, host */
  GRand *rng;
} Run;

static gint32 *
random_tokens (Run * r, guint n)
{
  gint32 *t = g_new (gint32, n);

  for (guint i = 0; i < n; i++)
    t[i] = g_rand_int_range (r->rng, 0, r->hp->n_vocab);
  return t;
}

/* One greedy step after the last forward: the logits and the argmax on
 * the device, the id back to the host (which waits for the GPU). */
static gint32
sample_greedy (Run * r)
{
  GError *error = NULL;
  LlmSamplerParams params;
  gdouble coin = 0.5;
  gint32 id = 0;

  llm_sampler_params_init (&params);
  params.temperature = 0;
  if (!r->be->logits_to_device (r->c, NULL, r->logits_dev, &error)
      || !r->be->sample (r->index, r->logits_dev, r->hp->n_vocab, 1, &params,
          &coin, &id, &error))
    die ("sampling", error);
  return id;
}

/* Seconds of one prefill of @n tokens into an empty cache. */
static double
time_prefill (Run * r, const gint32 * tokens, guint n)
{
  GError *error = NULL;
  gint64 t0;

  r->be->kv_truncate (r->kv, 0);
  t0 = g_get_monotonic_time ();
  /* the hidden state to the host: the wall time covers the GPU's work */
  if (!r->be->forward (r->c, r->kv, tokens, n, r->hidden, &error))
    die ("prefill", error);
  return (g_get_monotonic_time () - t0) / 1e6;
}

/* Seconds per step of @k decode steps from the cache's current length;
 * stops early at an end token when @end_ids is given (n_done says how many
 * steps ran). */
static double
time_decode (Run * r, gint32 tok, guint k, const gint32 * end_ids,
    guint * n_done)
{
  GError *error = NULL;
  gint64 t0 = g_get_monotonic_time ();
  guint i;

  for (i = 0; i < k; i++) {
    if (end_ids && (tok == end_ids[0] || tok == end_ids[1]))
      break;
    if (!r->be->forward (r->c, r->kv, &tok, 1, NULL, &error))
      die ("decode step", error);
    tok = sample_greedy (r);
  }
  if (n_done)
    *n_done = i;
  return (g_get_monotonic_time () - t0) / 1e6 / MAX (i, 1);
}

static gboolean
logits_finite (Run * r)
{
  GError *error = NULL;
  float *logits = g_new (float, r->hp->n_vocab);
  guint bad = 0;

  if (!r->be->logits (r->c, NULL, logits, &error))
    die ("logits", error);
  for (guint i = 0; i < r->hp->n_vocab; i++)
    bad += !isfinite (logits[i]);
  g_free (logits);
  if (bad > 0)
    g_printerr ("llmasos-bench: WARNING: %u of %u logits are not finite: "
        "the forward pass of these random weights is broken\n", bad,
        r->hp->n_vocab);
  return bad == 0;
}

static void
run_open (Run * r, guint n_ctx)
{
  GError *error = NULL;

  if ((r->kv = r->be->kv_new (r->w, n_ctx, LLM_KV_AUTO, &error)) == NULL
      || (r->c = r->be->compute_new (r->w, &error)) == NULL
      || (r->logits_dev = r->be->alloc (r->index,
              (gsize) r->hp->n_vocab * sizeof (float), &error)) == NULL)
    die ("set-up", error);
  r->hidden = g_new (float, r->hp->dim);
}

static void
run_close (Run * r)
{
  r->be->free (r->logits_dev);
  r->be->compute_free (r->c);
  r->be->kv_free (r->kv);
  r->be->weights_free (r->w);
  g_free (r->hidden);
}

/* One dtype: weights, prefill, decode; its JSON object into @b. */
static void
bench_dtype (const LlmBackend * be, gint index, const Arch * arch,
    LlmDType dtype, GArray * prefill, GArray * depths, double copy_bps,
    JsonBuilder * b)
{
  GError *error = NULL;
  Run r = { be, index, &arch->hp };
  guint n_ctx = 16, k = opt_decode_tokens;
  double weights_read, t_make, *t = g_new (double, opt_repeat);
  gint64 t0;
  gboolean finite;
  gint32 *tokens;

  for (guint i = 0; i < prefill->len; i++)
    n_ctx = MAX (n_ctx, g_array_index (prefill, guint, i));
  for (guint i = 0; i < depths->len; i++)
    n_ctx = MAX (n_ctx, g_array_index (depths, guint, i) + k + 2);
  r.rng = g_rand_new_with_seed (opt_seed);
  decode_bytes (&arch->hp, dtype, 0, &weights_read);

  /* the whole embedding table is made, one row of it is read a step */
  g_printerr ("making random %s weights of %s's shape (%.2f GB) on %s...\n",
      llm_dtype_name (dtype), arch->what, (weights_read +
          matrix_bytes (dtype, arch->hp.n_vocab - 1, arch->hp.dim)) / 1e9,
      opt_device);
  t0 = g_get_monotonic_time ();
  r.w = be->weights_new_random (&arch->hp, dtype, index, opt_seed, &error);
  if (r.w == NULL)
    die ("random weights", error);
  t_make = (g_get_monotonic_time () - t0) / 1e6;
  g_printerr ("  made in %.2f s: %.2f GB on the device\n", t_make,
      be->weights_bytes (r.w) / 1e9);
  run_open (&r, n_ctx);

  /* once per model: an untimed prefill whose logits must be finite */
  tokens = random_tokens (&r, 16);
  time_prefill (&r, tokens, 16);
  finite = logits_finite (&r);
  g_free (tokens);

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "dtype");
  json_builder_add_string_value (b, llm_dtype_name (dtype));
  json_builder_set_member_name (b, "weights_bytes_on_device");
  json_builder_add_int_value (b, be->weights_bytes (r.w));
  json_builder_set_member_name (b, "weights_seconds_to_make");
  json_builder_add_double_value (b, t_make);
  json_builder_set_member_name (b, "logits_finite");
  json_builder_add_boolean_value (b, finite);
  json_builder_set_member_name (b, "kv_bytes_per_element");
  json_builder_add_double_value (b, kv_bytes (dtype));

  g_print ("\n%s weights: %.2f GB on the device (made in %.2f s), KV cache "
      "%.3g bytes an element%s\n", llm_dtype_name (dtype),
      be->weights_bytes (r.w) / 1e9, t_make, kv_bytes (dtype),
      finite ? "" : "  WARNING: logits not finite");
  json_builder_set_member_name (b, "prefill");
  json_builder_begin_array (b);
  for (guint i = 0; i < prefill->len; i++) {
    guint n = g_array_index (prefill, guint, i);
    double sec;

    g_printerr ("  prefill %u tokens...\n", n);
    tokens = random_tokens (&r, n);
    time_prefill (&r, tokens, n);
    for (gint j = 0; j < opt_repeat; j++)
      t[j] = time_prefill (&r, tokens, n);
    sec = median (t, opt_repeat);
    g_free (tokens);
    g_print ("  prefill %5u tokens: %10.1f tokens/s  (%.2f ms)\n", n,
        n / sec, sec * 1e3);
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "tokens");
    json_builder_add_int_value (b, n);
    json_builder_set_member_name (b, "tokens_per_s");
    json_builder_add_double_value (b, n / sec);
    json_builder_set_member_name (b, "ms");
    json_builder_add_double_value (b, sec * 1e3);
    json_builder_end_object (b);
  }
  json_builder_end_array (b);

  json_builder_set_member_name (b, "decode");
  json_builder_begin_array (b);
  for (guint i = 0; i < depths->len; i++) {
    guint depth = g_array_index (depths, guint, i);
    /* step j (0-based) attends depth + j + 1 positions */
    double mean_depth = depth + (k + 1) / 2.0;
    double bytes = decode_bytes (&arch->hp, dtype, mean_depth, NULL);
    double roof = copy_bps / bytes, sec, tps;
    gint32 first;

    g_printerr ("  decode at depth %u...\n", depth);
    tokens = random_tokens (&r, depth);
    time_prefill (&r, tokens, depth);
    first = sample_greedy (&r);
    g_free (tokens);
    /* untimed steps first: the first single-token step may capture a
     * graph */
    time_decode (&r, first, 2, NULL, NULL);
    for (gint j = 0; j < opt_repeat; j++) {
      be->kv_truncate (r.kv, depth);
      t[j] = time_decode (&r, first, k, NULL, NULL);
    }
    if (g_getenv ("LLMASOS_BENCH_PROFILE") != NULL) {
      /* one more step, alone in the profiler's range (ncu
       * --profile-from-start off) */
      llm_cuda_profiler_range (TRUE);
      time_decode (&r, first, 1, NULL, NULL);
      llm_cuda_profiler_range (FALSE);
    }
    sec = median (t, opt_repeat);
    tps = 1 / sec;
    g_print ("  decode at depth %5u: %8.1f tokens/s  %7.3f ms/token  "
        "%6.2f GB/token  roofline %7.1f tokens/s  %5.1f%% of it\n", depth,
        tps, sec * 1e3, bytes / 1e9, roof, 100 * tps / roof);
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "depth");
    json_builder_add_int_value (b, depth);
    json_builder_set_member_name (b, "steps");
    json_builder_add_int_value (b, k);
    json_builder_set_member_name (b, "tokens_per_s");
    json_builder_add_double_value (b, tps);
    json_builder_set_member_name (b, "ms_per_token");
    json_builder_add_double_value (b, sec * 1e3);
    json_builder_set_member_name (b, "bytes_per_token");
    json_builder_add_double_value (b, bytes);
    json_builder_set_member_name (b, "roofline_tokens_per_s");
    json_builder_add_double_value (b, roof);
    json_builder_set_member_name (b, "fraction_of_roofline");
    json_builder_add_double_value (b, tps / roof);
    json_builder_end_object (b);
  }
  json_builder_end_array (b);
  json_builder_end_object (b);

  run_close (&r);
  g_rand_free (r.rng);
  g_free (t);
}

/* --- the GStreamer pipeline --- */

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

/* Seconds per token from the first sampled token to the last. */
static double
pipeline_run (const gchar * model, const gchar * device, guint n_tokens,
    guint * n_done)
{
  g_autofree gchar *desc = g_strdup_printf ("appsrc name=src ! "
      "llmtokenizer model=\"%s\" ! llmencoder device=%s ! "
      "llmdecoder device=%s max-tokens=%u ! llmsampler name=sam "
      "temperature=0 ! llmdetokenizer ! fakesink sync=false", model, device,
      device, n_tokens);
  GError *error = NULL;
  GstElement *p = gst_parse_launch (desc, &error), *src, *sam;
  Timing t = { 0 };
  GstMessage *msg;
  GstFlowReturn fr;
  GstBuffer *buf;
  GstPad *pad;

  if (p == NULL)
    die (desc, error);
  sam = gst_bin_get_by_name (GST_BIN (p), "sam");
  pad = gst_element_get_static_pad (sam, "src");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, on_token, &t, NULL);
  src = gst_bin_get_by_name (GST_BIN (p), "src");
  if (gst_element_set_state (p, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
    g_printerr ("llmasos-bench: the pipeline did not start: %s\n", desc);
  buf = gst_buffer_new_memdup (opt_prompt, strlen (opt_prompt));
  g_signal_emit_by_name (src, "push-buffer", buf, &fr);
  gst_buffer_unref (buf);       /* the action signal does not take it */
  g_signal_emit_by_name (src, "end-of-stream", &fr);
  msg = gst_bus_timed_pop_filtered (GST_ELEMENT_BUS (p), GST_CLOCK_TIME_NONE,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    gchar *dbg = NULL;

    gst_message_parse_error (msg, &error, &dbg);
    g_printerr ("llmasos-bench: %s\n", dbg ? dbg : "");
    die ("pipeline", error);
  }
  gst_message_unref (msg);
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (pad);
  gst_object_unref (sam);
  gst_object_unref (src);
  gst_object_unref (p);
  *n_done = t.n;
  return t.n > 1 ? (t.t_last - t.t_first) / 1e6 / (t.n - 1) : NAN;
}

static void
print_progress (gdouble fraction, const gchar * what, gpointer user_data)
{
  static gint last = -1;
  gint pct = (gint) (fraction * 100);

  if (pct / 10 != last / 10)
    g_printerr ("  [%3d%%] %s\n", pct, what);
  last = pct;
}

/* The same greedy decode through the elements and through the backend
 * alone, interleaved run by run. */
static void
bench_pipeline (const LlmBackend * be, gint index, JsonBuilder * b)
{
  GError *error = NULL;
  g_autoptr (LlmModelFile) mf = NULL;
  Run r = { be, index };
  GArray *prompt;
  double *core_s = g_new (double, opt_repeat);
  double *pipe_s = g_new (double, opt_repeat), core_med, pipe_med;
  guint core_n = 0, pipe_n = 0, k = opt_decode_tokens;
  gint32 end_ids[2], first;
  gboolean finite;
  GstRegistry *reg = gst_registry_get ();
  GstPlugin *plugin = gst_registry_find_plugin (reg, "llmasos");

  /* the build tree's plugin when none is installed */
  if (plugin)
    gst_object_unref (plugin);
  else
    gst_registry_scan_path (reg, LLMASOS_BUILD_PLUGIN_DIR);

  g_printerr ("pipeline: loading %s...\n", opt_pipeline);
  if ((mf = llm_model_file_load (opt_pipeline, NULL, NULL, &error)) == NULL)
    die (opt_pipeline, error);
  r.hp = &mf->hp;
  r.rng = g_rand_new_with_seed (opt_seed);
  if ((r.w = be->weights_new (mf, index, print_progress, NULL, &error)) == NULL)
    die (opt_pipeline, error);
  prompt = llm_vocab_encode (mf->vocab, opt_prompt, -1, TRUE, &error);
  if (prompt == NULL)
    die ("prompt", error);
  run_open (&r, prompt->len + k + 2);
  end_ids[0] = mf->vocab->eos;
  end_ids[1] = mf->vocab->bos;
  /* the file's weights as the elements get them: finite logits too */
  if (!be->forward (r.c, r.kv, (const gint32 *) prompt->data, prompt->len,
          NULL, &error))
    die ("prompt", error);
  finite = logits_finite (&r);

  /* untimed runs of both first (graph capture, the plugin's start-up) */
  for (gint j = -1; j < opt_repeat; j++) {
    double s;
    guint n;

    be->kv_truncate (r.kv, 0);
    if (!be->forward (r.c, r.kv, (const gint32 *) prompt->data, prompt->len,
            NULL, &error))
      die ("prompt", error);
    first = sample_greedy (&r);
    /* k tokens in all, as max-tokens=k: the first and k - 1 steps */
    s = time_decode (&r, first, k - 1, end_ids, &n);
    if (j >= 0) {
      core_s[j] = s;
      core_n = n + 1;
    }
    s = pipeline_run (opt_pipeline, opt_device, k, &n);
    if (j >= 0) {
      pipe_s[j] = s;
      pipe_n = n;
    }
  }
  core_med = median (core_s, opt_repeat);
  pipe_med = median (pipe_s, opt_repeat);

  g_print ("\npipeline: %s (%s, %u layers, dim %u, vocabulary %u), %u "
      "greedy tokens after \"%s\" (backend alone %u)\n", opt_pipeline,
      mf->name, mf->hp.n_layers, mf->hp.dim, mf->hp.n_vocab, pipe_n,
      opt_prompt, core_n);
  g_print ("  backend alone: %9.1f tokens/s  %9.2f us/token\n", 1 / core_med,
      core_med * 1e6);
  g_print ("  pipeline:      %9.1f tokens/s  %9.2f us/token\n", 1 / pipe_med,
      pipe_med * 1e6);
  g_print ("  element overhead: %.2f us/token (%.1f%% of a pipeline step)\n",
      (pipe_med - core_med) * 1e6, 100 * (pipe_med - core_med) / pipe_med);
  if (pipe_n != core_n)
    g_print ("  note: the two runs decoded different numbers of tokens\n");
  if (!finite)
    g_print ("  WARNING: the logits of the prompt are not finite\n");

  json_builder_set_member_name (b, "pipeline");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "model");
  json_builder_add_string_value (b, opt_pipeline);
  json_builder_set_member_name (b, "n_layers");
  json_builder_add_int_value (b, mf->hp.n_layers);
  json_builder_set_member_name (b, "dim");
  json_builder_add_int_value (b, mf->hp.dim);
  json_builder_set_member_name (b, "n_vocab");
  json_builder_add_int_value (b, mf->hp.n_vocab);
  json_builder_set_member_name (b, "logits_finite");
  json_builder_add_boolean_value (b, finite);
  json_builder_set_member_name (b, "tokens");
  json_builder_add_int_value (b, pipe_n);
  json_builder_set_member_name (b, "backend_tokens");
  json_builder_add_int_value (b, core_n);
  json_builder_set_member_name (b, "backend_us_per_token");
  json_builder_add_double_value (b, core_med * 1e6);
  json_builder_set_member_name (b, "pipeline_us_per_token");
  json_builder_add_double_value (b, pipe_med * 1e6);
  json_builder_set_member_name (b, "element_overhead_us_per_token");
  json_builder_add_double_value (b, (pipe_med - core_med) * 1e6);
  json_builder_set_member_name (b, "element_overhead_fraction");
  json_builder_add_double_value (b, (pipe_med - core_med) / pipe_med);
  json_builder_end_object (b);

  run_close (&r);
  g_rand_free (r.rng);
  g_array_unref (prompt);
  g_free (core_s);
  g_free (pipe_s);
}

/* --- a GGUF file of random weights --- */

/* One tensor, generated on the host while the file is written. */
typedef struct
{
  guint rows, cols;
  LlmDType dtype;
  float mean, std;
  guint64 seed;
  gchar *name;
  guint index, total;
} Job;

static void
job_free (gpointer p)
{
  Job *j = p;

  g_free (j->name);
  g_free (j);
}

static guint64
splitmix64 (guint64 * state)
{
  guint64 z = (*state += 0x9e3779b97f4a7c15ull);

  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static gboolean
fill_job (guint8 * dst, guint64 nbytes, gpointer user_data, GError ** error)
{
  Job *j = user_data;
  guint64 state = j->seed, row_bytes = nbytes / j->rows;
  float *x = g_new (float, j->cols);

  for (guint r = 0; r < j->rows; r++) {
    for (guint c = 0; c < j->cols; c += 2) {
      /* Box-Muller, both values */
      guint64 h = splitmix64 (&state);
      double u1 = ((h >> 40) + 1) / 16777216.0, u2 =
          (h & 0xffffff) / 16777216.0;
      double rad = sqrt (-2 * log (u1));

      x[c] = j->mean + j->std * (float) (rad * cos (2 * G_PI * u2));
      if (c + 1 < j->cols)
        x[c + 1] = j->mean + j->std * (float) (rad * sin (2 * G_PI * u2));
    }
    llm_quantize_row (j->dtype, x, dst + r * row_bytes, j->cols);
  }
  g_free (x);
  g_printerr ("  [%3u%%] %s (%s)\n", (j->index + 1) * 100 / j->total,
      j->name, llm_dtype_name (j->dtype));
  return TRUE;
}

static void
add_random_tensor (LlmGgufWriter * w, const gchar * name, LlmDType dtype,
    guint rows, guint cols, guint * index, guint total)
{
  GError *error = NULL;
  Job *j = g_new0 (Job, 1);
  gboolean norm = rows == 1;
  guint64 ne[2] = { cols, rows };

  j->rows = rows;
  j->cols = cols;
  j->dtype = norm ? LLM_DTYPE_F32 : matrix_dtype (dtype, cols);
  j->mean = norm ? 1.0f : 0.0f;
  j->std = norm ? 0.0f : WEIGHT_STD;
  j->seed = (guint64) opt_seed * 0x100000001b3ull + *index;
  j->name = g_strdup (name);
  j->index = (*index)++;
  j->total = total;
  if (!llm_gguf_writer_add_tensor_func (w, name, j->dtype, norm ? 1 : 2, ne,
          fill_job, j, job_free, &error))
    die (name, error);
}

/* An SPM vocabulary of @n pieces that tokenizes any text: <unk>, <s>,
 * </s>, the 256 byte pieces, the printable ASCII characters with and
 * without the word-start mark, then made-up words. */
static void
add_vocab (LlmGgufWriter * w, guint n)
{
  gchar **pieces = g_new0 (gchar *, n + 1);
  float *scores = g_new0 (float, n);
  gint32 *types = g_new (gint32, n);
  guint i = 0;

  pieces[i] = g_strdup ("<unk>");
  types[i++] = LLM_TOKEN_UNKNOWN;
  pieces[i] = g_strdup ("<s>");
  types[i++] = LLM_TOKEN_CONTROL;
  pieces[i] = g_strdup ("</s>");
  types[i++] = LLM_TOKEN_CONTROL;
  for (guint c = 0; c < 256 && i < n; c++) {
    pieces[i] = g_strdup_printf ("<0x%02X>", c);
    types[i++] = LLM_TOKEN_BYTE;
  }
  for (guint c = 0x20; c < 0x7f && i + 1 < n; c++) {
    pieces[i] = g_strdup_printf ("%c", c == ' ' ? '_' : c);
    if (c == ' ') {
      g_free (pieces[i]);
      pieces[i] = g_strdup ("\xe2\x96\x81");    /* U+2581, the word start */
    }
    scores[i] = -(float) i;
    types[i++] = LLM_TOKEN_NORMAL;
    if (c != ' ') {
      pieces[i] = g_strdup_printf ("\xe2\x96\x81%c", c);
      scores[i] = -(float) i;
      types[i++] = LLM_TOKEN_NORMAL;
    }
  }
  for (guint k = 0; i < n; k++) {
    pieces[i] = g_strdup_printf ("\xe2\x96\x81w%u", k);
    scores[i] = -(float) i;
    types[i++] = LLM_TOKEN_NORMAL;
  }
  llm_gguf_writer_add_string (w, "tokenizer.ggml.model", "llama");
  llm_gguf_writer_add_string_array (w, "tokenizer.ggml.tokens",
      (const gchar * const *) pieces, n);
  llm_gguf_writer_add_float32_array (w, "tokenizer.ggml.scores", scores, n);
  llm_gguf_writer_add_int32_array (w, "tokenizer.ggml.token_type", types, n);
  llm_gguf_writer_add_uint32 (w, "tokenizer.ggml.unknown_token_id", 0);
  llm_gguf_writer_add_uint32 (w, "tokenizer.ggml.bos_token_id", 1);
  llm_gguf_writer_add_uint32 (w, "tokenizer.ggml.eos_token_id", 2);
  llm_gguf_writer_add_bool (w, "tokenizer.ggml.add_bos_token", TRUE);
  llm_gguf_writer_add_bool (w, "tokenizer.ggml.add_eos_token", FALSE);
  llm_gguf_writer_add_bool (w, "tokenizer.ggml.add_space_prefix", TRUE);
  g_strfreev (pieces);
  g_free (scores);
  g_free (types);
}

/* llama.cpp's general.file_type numbers. */
static guint
file_type (LlmDType dtype)
{
  switch (dtype) {
    case LLM_DTYPE_F32:
      return 0;
    case LLM_DTYPE_F16:
      return 1;
    case LLM_DTYPE_Q4_0:
      return 2;
    case LLM_DTYPE_Q8_0:
      return 7;
    default:
      return 32;                /* BF16 */
  }
}

static void
write_gguf (const Arch * arch, LlmDType dtype, const gchar * path)
{
  const LlmHParams *hp = &arch->hp;
  GError *error = NULL;
  g_autoptr (LlmGgufWriter) w = llm_gguf_writer_new ();
  g_autofree gchar *name = g_strdup_printf ("llmasos-bench random %s %s",
      arch->name, llm_dtype_name (dtype));
  guint q = hp->n_heads * hp->head_dim, kv = hp->n_kv_heads * hp->head_dim;
  guint index = 0, total = 3 + 9 * hp->n_layers;

  llm_gguf_writer_add_string (w, "general.architecture", "llama");
  llm_gguf_writer_add_string (w, "general.name", name);
  llm_gguf_writer_add_uint32 (w, "general.file_type", file_type (dtype));
  llm_gguf_writer_add_uint32 (w, "general.quantization_version", 2);
  llm_gguf_writer_add_uint32 (w, "llama.context_length", hp->n_ctx_train);
  llm_gguf_writer_add_uint32 (w, "llama.embedding_length", hp->dim);
  llm_gguf_writer_add_uint32 (w, "llama.block_count", hp->n_layers);
  llm_gguf_writer_add_uint32 (w, "llama.feed_forward_length", hp->ffn_dim);
  llm_gguf_writer_add_uint32 (w, "llama.rope.dimension_count", hp->head_dim);
  llm_gguf_writer_add_uint32 (w, "llama.attention.head_count", hp->n_heads);
  llm_gguf_writer_add_uint32 (w, "llama.attention.head_count_kv",
      hp->n_kv_heads);
  llm_gguf_writer_add_float32 (w, "llama.attention.layer_norm_rms_epsilon",
      hp->rms_eps);
  llm_gguf_writer_add_float32 (w, "llama.rope.freq_base", hp->rope_theta);
  llm_gguf_writer_add_uint32 (w, "llama.vocab_size", hp->n_vocab);
  llm_gguf_writer_add_uint32 (w, "llama.attention.key_length", hp->head_dim);
  llm_gguf_writer_add_uint32 (w, "llama.attention.value_length", hp->head_dim);
  add_vocab (w, hp->n_vocab);

  add_random_tensor (w, "token_embd.weight", dtype, hp->n_vocab, hp->dim,
      &index, total);
  add_random_tensor (w, "output_norm.weight", dtype, 1, hp->dim, &index, total);
  add_random_tensor (w, "output.weight", dtype, hp->n_vocab, hp->dim, &index,
      total);
  for (guint l = 0; l < hp->n_layers; l++) {
    const struct
    {
      const gchar *suffix;
      guint rows, cols;
    } parts[] = {
      {"attn_norm", 1, hp->dim},
      {"attn_q", q, hp->dim},
      {"attn_k", kv, hp->dim},
      {"attn_v", kv, hp->dim},
      {"attn_output", hp->dim, q},
      {"ffn_norm", 1, hp->dim},
      {"ffn_gate", hp->ffn_dim, hp->dim},
      {"ffn_up", hp->ffn_dim, hp->dim},
      {"ffn_down", hp->dim, hp->ffn_dim},
    };

    for (guint i = 0; i < G_N_ELEMENTS (parts); i++) {
      g_autofree gchar *tn = g_strdup_printf ("blk.%u.%s.weight", l,
          parts[i].suffix);

      add_random_tensor (w, tn, dtype, parts[i].rows, parts[i].cols, &index,
          total);
    }
  }
  g_printerr ("writing %s: %s, random %s weights (%.2f GB)\n", path,
      arch->what, llm_dtype_name (dtype),
      decode_bytes (hp, dtype, 0, NULL) / 1e9 + matrix_bytes (dtype,
          hp->n_vocab - 1, hp->dim) / 1e9);
  if (!llm_gguf_writer_write (w, path, &error))
    die (path, error);
  g_printerr ("wrote %s\n", path);
}

/* --- main --- */

static void
write_json (JsonBuilder * b)
{
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  GError *error = NULL;

  json_generator_set_root (gen, root);
  json_generator_set_pretty (gen, TRUE);
  if (strcmp (opt_json, "-") == 0) {
    g_autofree gchar *s = json_generator_to_data (gen, NULL);

    g_print ("%s\n", s);
  } else if (!json_generator_to_file (gen, opt_json, &error)) {
    die (opt_json, error);
  }
}

int
main (int argc, char **argv)
{
  g_autoptr (GOptionContext) ctx =
      g_option_context_new ("- prefill and decode speed against the "
      "bandwidth roofline");
  g_autoptr (JsonBuilder) b = json_builder_new ();
  GError *error = NULL;
  const LlmBackend *be = NULL;
  const Arch *arch = NULL;
  GArray *dtypes, *prefill, *depths;
  gint index = 0;
  double copy_bps;
  g_autofree gchar *desc = NULL;

  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
    g_printerr ("llmasos-bench: %s\n", error->message);
    return 2;
  }
  if (opt_decode_tokens < 2 || opt_repeat < 1) {
    g_printerr ("llmasos-bench: --decode-tokens >= 2, --repeat >= 1\n");
    return 2;
  }
  for (guint i = 0; i < G_N_ELEMENTS (archs); i++)
    if (g_strcmp0 (opt_arch ? opt_arch : "llama3-8b", archs[i].name) == 0)
      arch = &archs[i];
  if (arch == NULL) {
    g_printerr ("llmasos-bench: --arch: '%s' is not llama3-8b, llama2-7b "
        "or tiny\n", opt_arch);
    return 2;
  }
  dtypes = parse_dtypes (opt_dtypes ? opt_dtypes : "f16,bf16,q8_0,q4_0");
  prefill = parse_uints (opt_prefill ? opt_prefill : "512,2048", "--prefill");
  depths = parse_uints (opt_depths ? opt_depths : "128,4096", "--decode-depth");
  if (opt_kv_dtype != NULL) {
    if (g_strcmp0 (opt_kv_dtype, "f16") != 0
        && g_strcmp0 (opt_kv_dtype, "q8_0") != 0
        && g_strcmp0 (opt_kv_dtype, "f32") != 0) {
      g_printerr ("llmasos-bench: --kv-dtype: '%s' is not f16, q8_0 or "
          "f32\n", opt_kv_dtype);
      return 2;
    }
    /* what the CUDA backend reads when it makes a cache */
    g_setenv ("LLMASOS_CUDA_KV_DTYPE", opt_kv_dtype, TRUE);
  }
  if (opt_device == NULL)
    opt_device = g_strdup ("cuda:0");
  if (opt_prompt == NULL)
    opt_prompt = g_strdup ("Once upon a time");

  /* one job: the file needs no GPU */
  if (opt_write_gguf != NULL) {
    write_gguf (arch, g_array_index (dtypes, LlmDType, 0), opt_write_gguf);
    return 0;
  }

  llm_backend_cuda_register ();
  if (!llm_device_parse (opt_device, &be, &index, &error)) {
    /* no GPU here: 77, the code of a skipped test */
    g_printerr ("llmasos-bench: --device: %s\n", error->message);
    return g_error_matches (error, LLM_ERROR, LLM_ERROR_INPUT) ? 2 : 77;
  }
  if (be == NULL) {
    g_printerr ("llmasos-bench: measures a GPU backend (--device cuda:N); "
        "for the CPU use llmasos-bench-cpu\n");
    return 2;
  }
  if (be->device_count (&error) <= index) {
    g_printerr ("llmasos-bench: no %s: %s\n", opt_device,
        error ? error->message : "no such device");
    return 77;
  }
  if (!llm_cuda_device_open (index, NULL, &error))
    die (opt_device, error);
  desc = be->device_describe (index);
  copy_bps = copy_bandwidth ();
  g_print ("device: %s\n", desc);
  g_print ("copy bandwidth (device to device, read + write): %.0f GB/s\n",
      copy_bps / 1e9);
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "device");
  json_builder_add_string_value (b, desc);
  json_builder_set_member_name (b, "copy_bytes_per_s");
  json_builder_add_double_value (b, copy_bps);
  json_builder_set_member_name (b, "repeat");
  json_builder_add_int_value (b, opt_repeat);
  json_builder_set_member_name (b, "decode_tokens");
  json_builder_add_int_value (b, opt_decode_tokens);
  /* --pipeline is a run of its own: the random weights are not made */
  if (opt_pipeline == NULL) {
    g_print ("model: %s shape (vocabulary %u, dim %u, %u layers, %u heads, "
        "%u KV heads, head_dim %u, FFN %u, rope theta %.0f), random "
        "weights; median of %d runs, %d decode steps a run\n", arch->what,
        arch->hp.n_vocab, arch->hp.dim, arch->hp.n_layers, arch->hp.n_heads,
        arch->hp.n_kv_heads, arch->hp.head_dim, arch->hp.ffn_dim,
        arch->hp.rope_theta, opt_repeat, opt_decode_tokens);
    json_builder_set_member_name (b, "arch");
    json_builder_add_string_value (b, arch->name);
    json_builder_set_member_name (b, "results");
    json_builder_begin_array (b);
    for (guint i = 0; i < dtypes->len; i++)
      bench_dtype (be, index, arch, g_array_index (dtypes, LlmDType, i),
          prefill, depths, copy_bps, b);
    json_builder_end_array (b);
  }
  if (opt_pipeline != NULL)
    bench_pipeline (be, index, b);
  json_builder_end_object (b);
  if (opt_json != NULL)
    write_json (b);

  g_array_unref (dtypes);
  g_array_unref (prefill);
  g_array_unref (depths);
  return 0;
}
