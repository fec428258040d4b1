/* llmasos-bench-cuda - memory bandwidth of the CUDA decode kernels.
 *
 * Times each matvec on Llama-3-8B's FFN shapes (14336 x 4096 and
 * 4096 x 14336) and attention_decode over a 4096-position cache, and
 * compares the bytes they read per second with a device-to-device copy
 * (bytes read + written) on the same GPU. Every timed launch reads a
 * different copy of the weights (at least 1 GiB of copies in all), so the
 * figures are for DRAM, not the 50 MB L2 — as in a real forward pass,
 * where each matrix is read once per token. Sampling (llm_cuda_sample,
 * and llm_cuda_argmax for comparison) is timed on one row of 128256
 * logits, batch 1 (L2-resident): the "us" column is what matters there.
 * The packed layout (llm_cuda_matrix_pack, matvec_packed_*) is timed at
 * every Llama-3-8B matvec shape (4096x4096, 1024x4096, 14336x4096,
 * 4096x14336, 128256x4096), and with 4 and 8 vectors at once.
 *
 *   llmasos-bench-cuda [-r REPEATS] [--json FILE] [--only NAME-PART]
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm-cuda.h"
#include "llm-dtype.h"

#define ROTATE_BYTES ((gsize) 1 << 30)
#define ATT_SCALE_128 0.08838834764831845f      /* 1/sqrt(128) */

static gint repeats = 200;
static gchar *only;             /* run only the kernels whose name has this */
static GString *json;

static void
die (GError * error, const gchar * what)
{
  g_printerr ("llmasos-bench-cuda: %s: %s\n", what,
      error ? error->message : "failed");
  exit (1);
}

/* Seconds of GPU time for @n launches of @launch (after 10 warm-up
 * launches), between two events on @s. */
typedef void (*LaunchFunc) (gpointer data, guint i, LlmCudaStream * s);

static double
time_launches (LaunchFunc launch, gpointer data, guint n, LlmCudaStream * s)
{
  GError *error = NULL;
  LlmCudaEvent *start, *end;
  float ms = 0.0f;

  if ((start = llm_cuda_event_new (&error)) == NULL
      || (end = llm_cuda_event_new (&error)) == NULL)
    die (error, "events");
  for (guint i = 0; i < 10; i++)
    launch (data, i, s);
  if (!llm_cuda_stream_sync (s, &error))
    die (error, "warm-up");
  if (!llm_cuda_event_record (start, s, &error))
    die (error, "event");
  for (guint i = 0; i < n; i++)
    launch (data, i, s);
  if (!llm_cuda_event_record (end, s, &error)
      || !llm_cuda_event_elapsed_ms (start, end, &ms, &error)
      || !llm_cuda_stream_sync (s, &error))
    die (error, "timed run");
  llm_cuda_event_free (start);
  llm_cuda_event_free (end);
  return ms / 1e3;
}

/* --- copy --- */

typedef struct {
  void *a, *b;
  gsize bytes;
} CopyJob;

static void
copy_launch (gpointer data, guint i, LlmCudaStream * s)
{
  CopyJob *j = data;
  GError *error = NULL;

  if (!llm_cuda_copy (i % 2 ? j->a : j->b, i % 2 ? j->b : j->a, j->bytes,
          LLM_CUDA_DEVICE_TO_DEVICE, s, &error))
    die (error, "copy");
}

/* --- matvec --- */

typedef struct {
  LlmDType dtype;
  guint rows, cols;
  gsize bytes;                  /* one copy of the weights */
  guint n_copies;
  void **w;                     /* device copies */
  float *x, *out;
  void *xh;                     /* x as F16 (cuBLAS) */
  gboolean cublas;
  guint packed;                 /* 0: GGUF layout; else packed, this many x */
} MatvecJob;

static void
matvec_launch (gpointer data, guint i, LlmCudaStream * s)
{
  MatvecJob *j = data;
  GError *error = NULL;

  if (j->cublas) {
    if (!llm_cuda_matmul_half (j->out, j->w[i % j->n_copies], j->xh,
            j->dtype, j->rows, j->cols, 1, s, &error))
      die (error, "cuBLAS");
  } else if (j->packed == 1) {
    llm_cuda_matvec_packed (j->out, j->w[i % j->n_copies], j->dtype, j->x,
        j->rows, j->cols, s);
  } else if (j->packed > 1) {
    llm_cuda_matvec_packed_multi (j->out, j->w[i % j->n_copies], j->dtype,
        j->x, j->packed, j->rows, j->cols, s);
  } else {
    llm_cuda_matvec (j->out, j->w[i % j->n_copies], j->dtype, j->x, j->rows,
        j->cols, s);
  }
}

static void
report (const gchar * what, const gchar * shape, double bytes, double sec,
    guint n, double copy_gbs)
{
  double us = sec / n * 1e6, gbs = bytes * n / sec / 1e9;

  g_print ("%-24s %-22s %10.1f %9.1f %8.0f %6.1f%%\n", what, shape,
      bytes / 1e6, us, gbs, 100.0 * gbs / copy_gbs);
  g_string_append_printf (json, "%s{\"kernel\": \"%s\", \"shape\": \"%s\", "
      "\"mbytes\": %.3f, \"us\": %.3f, \"gbs\": %.1f, \"of_copy\": %.3f}",
      json->str[json->len - 1] == '[' ? "\n  " : ",\n  ", what, shape,
      bytes / 1e6, us, gbs, gbs / copy_gbs);
}

/* @packed: 0 for the GGUF-layout llm_cuda_matvec (or cuBLAS), else
 * llm_cuda_matrix_pack'ed weights and llm_cuda_matvec_packed (1) or
 * _packed_multi with that many vectors. */
static void
bench_matvec (LlmDType dtype, guint rows, guint cols, gboolean cublas,
    guint packed, LlmCudaStream * s, double copy_gbs)
{
  MatvecJob j = { dtype, rows, cols, 0, 0, NULL, NULL, NULL, NULL, cublas,
    packed
  };
  GError *error = NULL;
  guint64 rb;
  guint n_x = MAX (packed, 1);
  float *src = g_new (float, cols), *xs = g_new (float, (gsize) cols * n_x);
  guint8 *host;
  GRand *rng = g_rand_new_with_seed (rows * 31 + cols + dtype);
  gchar *name, *shape;
  double sec;

  if (packed > 1)
    name = g_strdup_printf ("matvec_packed_multi%u_%s", packed,
        llm_dtype_name (dtype));
  else
    name = g_strdup_printf ("%s_%s", cublas ? "cublas_gemv" : packed ?
        "matvec_packed" : "matvec", llm_dtype_name (dtype));
  if (only != NULL && strstr (name, only) == NULL) {
    g_free (name);
    g_free (src);
    g_free (xs);
    g_rand_free (rng);
    return;
  }
  if (!llm_dtype_bytes_for (dtype, cols, &rb))
    die (NULL, "row size");
  j.bytes = rb * rows;
  j.n_copies = MAX (2, (ROTATE_BYTES + j.bytes - 1) / j.bytes);
  host = g_malloc (j.bytes);
  /* random rows, repeated past 4096 (the values do not change the time) */
  for (guint r = 0; r < rows; r++) {
    if (r >= 4096) {
      memcpy (host + r * rb, host + (r % 4096) * rb, rb);
      continue;
    }
    for (guint c = 0; c < cols; c++)
      src[c] = (float) g_rand_double_range (rng, -1, 1);
    llm_quantize_row (dtype, src, host + r * rb, cols);
  }
  for (guint c = 0; c < cols * n_x; c++)
    xs[c] = (float) g_rand_double_range (rng, -1, 1);
  if (packed) {
    gsize pb = llm_cuda_matrix_bytes (dtype, rows, cols);

    j.n_copies = MAX (2, (ROTATE_BYTES + pb - 1) / pb);
  }

  j.w = g_new (void *, j.n_copies);
  for (guint i = 0; i < j.n_copies; i++) {
    if ((j.w[i] = llm_cuda_alloc (j.bytes, &error)) == NULL)
      die (error, "weights");
    if (!llm_cuda_copy (j.w[i], host, j.bytes, LLM_CUDA_HOST_TO_DEVICE, NULL,
            &error))
      die (error, "upload");
    if (packed) {
      gsize pb = llm_cuda_matrix_bytes (dtype, rows, cols);
      void *p = llm_cuda_alloc (pb, &error);

      if (p == NULL || !llm_cuda_matrix_pack (p, j.w[i], dtype, rows, cols,
              s, &error) || !llm_cuda_stream_sync (s, &error))
        die (error, "pack");
      llm_cuda_free (j.w[i]);
      j.w[i] = p;
    }
  }
  if (packed)
    j.bytes = llm_cuda_matrix_bytes (dtype, rows, cols);
  if ((j.x = llm_cuda_alloc ((gsize) cols * n_x * sizeof (float),
              &error)) == NULL
      || (j.xh = llm_cuda_alloc (cols * 2, &error)) == NULL
      || (j.out = llm_cuda_alloc ((gsize) rows * n_x * sizeof (float),
              &error)) == NULL)
    die (error, "vectors");
  if (!llm_cuda_copy (j.x, xs, (gsize) cols * n_x * sizeof (float),
          LLM_CUDA_HOST_TO_DEVICE, NULL, &error))
    die (error, "upload");
  llm_cuda_convert_f32 (j.xh, dtype == LLM_DTYPE_BF16 ? LLM_DTYPE_BF16 :
      LLM_DTYPE_F16, j.x, cols, s);

  sec = time_launches (matvec_launch, &j, repeats, s);
  shape = g_strdup_printf ("%ux%u", rows, cols);
  report (name, shape, (double) j.bytes, sec, repeats, copy_gbs);

  for (guint i = 0; i < j.n_copies; i++)
    llm_cuda_free (j.w[i]);
  llm_cuda_free (j.x);
  llm_cuda_free (j.xh);
  llm_cuda_free (j.out);
  g_free (j.w);
  g_free (host);
  g_free (src);
  g_free (xs);
  g_free (name);
  g_free (shape);
  g_rand_free (rng);
}

/* --- attention --- */

typedef struct {
  LlmDType kv_dtype;
  guint n_pos, n_heads, n_kv_heads, head_dim, n_layers;
  void **k, **v;                /* per layer */
  float *q, *out, *scratch;
} AttJob;

static void
att_launch (gpointer data, guint i, LlmCudaStream * s)
{
  AttJob *j = data;
  guint l = i % j->n_layers;

  llm_cuda_attention_decode (j->out, j->q, j->k[l], j->v[l], j->kv_dtype,
      j->n_pos, j->n_heads, j->n_kv_heads, j->head_dim,
      (gsize) j->n_kv_heads * j->head_dim, j->scratch, s);
}

static void
bench_attention (LlmDType kv_dtype, guint n_pos, LlmCudaStream * s,
    double copy_gbs)
{
  AttJob j = { kv_dtype, n_pos, 32, 8, 128, 0, NULL, NULL, NULL, NULL, NULL };
  GError *error = NULL;
  gsize es = kv_dtype == LLM_DTYPE_F32 ? 4 : 2;
  gsize bytes = (gsize) n_pos * j.n_kv_heads * j.head_dim * es;
  gchar *name, *shape;
  double sec;

  name = g_strdup_printf ("attention_decode_%s", llm_dtype_name (kv_dtype));
  if (only != NULL && strstr (name, only) == NULL) {
    g_free (name);
    return;
  }
  j.n_layers = MAX (2, ROTATE_BYTES / (2 * bytes));
  j.k = g_new (void *, j.n_layers);
  j.v = g_new (void *, j.n_layers);
  for (guint l = 0; l < j.n_layers; l++) {
    if ((j.k[l] = llm_cuda_alloc (bytes, &error)) == NULL
        || (j.v[l] = llm_cuda_alloc (bytes, &error)) == NULL)
      die (error, "KV cache");
    /* 0x3c00 is 1.0 in F16; any finite pattern will do. */
    if (!llm_cuda_memset (j.k[l], 0x3c, bytes, NULL, &error)
        || !llm_cuda_memset (j.v[l], 0x3c, bytes, NULL, &error))
      die (error, "memset");
  }
  if ((j.q = llm_cuda_alloc (j.n_heads * j.head_dim * 4, &error)) == NULL
      || (j.out = llm_cuda_alloc (j.n_heads * j.head_dim * 4, &error)) == NULL
      || (j.scratch = llm_cuda_alloc (llm_cuda_attention_decode_scratch_bytes
              (j.n_heads, j.head_dim), &error)) == NULL
      || !llm_cuda_memset (j.scratch, 0,
          llm_cuda_attention_decode_scratch_bytes (j.n_heads, j.head_dim),
          NULL, &error)
      || !llm_cuda_memset (j.q, 0, j.n_heads * j.head_dim * 4, NULL, &error))
    die (error, "attention buffers");

  sec = time_launches (att_launch, &j, repeats, s);
  shape = g_strdup_printf ("%u pos, 32q/8kv x128", n_pos);
  report (name, shape, 2.0 * bytes, sec, repeats, copy_gbs);

  for (guint l = 0; l < j.n_layers; l++) {
    llm_cuda_free (j.k[l]);
    llm_cuda_free (j.v[l]);
  }
  g_free (j.k);
  g_free (j.v);
  llm_cuda_free (j.q);
  llm_cuda_free (j.out);
  llm_cuda_free (j.scratch);
  g_free (name);
  g_free (shape);
}

/* --- attention_decode_at: the count in device memory, the grid for a
 * cache of @max_pos, as a CUDA graph would replay it at every depth --- */

typedef struct {
  AttJob a;
  gint32 *count;                /* device: the position count */
  guint max_pos;
  LlmCudaGraph *graph;          /* GRAPH_LAYERS launches, or NULL */
} AttAtJob;

#define GRAPH_LAYERS 32         /* launches captured in one graph */

static void
att_at_launch (gpointer data, guint i, LlmCudaStream * s)
{
  AttAtJob *j = data;
  guint l = i % j->a.n_layers;

  llm_cuda_attention_decode_at (j->a.out, j->a.q, j->a.k[l], j->a.v[l],
      j->a.kv_dtype, j->count, j->max_pos, j->a.n_heads, j->a.n_kv_heads,
      j->a.head_dim, (gsize) j->a.n_kv_heads * j->a.head_dim,
      ATT_SCALE_128, 0, j->a.scratch, s);
}

static void
att_graph_launch (gpointer data, guint i, LlmCudaStream * s)
{
  AttAtJob *j = data;
  GError *error = NULL;

  (void) i;
  if (!llm_cuda_graph_launch (j->graph, s, &error))
    die (error, "graph launch");
}

static void
bench_attention_at (LlmDType kv_dtype, guint n_pos, guint max_pos,
    LlmCudaStream * s, double copy_gbs)
{
  AttAtJob j = { {kv_dtype, n_pos, 32, 8, 128, 0, NULL, NULL, NULL, NULL,
          NULL}, NULL, max_pos, NULL };
  GError *error = NULL;
  gsize es = kv_dtype == LLM_DTYPE_F32 ? 4 : 2;
  gsize kv_dim = (gsize) j.a.n_kv_heads * j.a.head_dim;
  /* Q8_0: a byte an element and a float a 32-block (kv-q8_0.cuh); the
   * bytes 0x3c make quants of 60 and scales of 0.0115 */
  gsize row = kv_dtype == LLM_DTYPE_Q8_0 ? kv_dim + kv_dim / 8 : kv_dim * es;
  gint32 count = n_pos;
  gchar *name, *shape;
  double sec;

  name = g_strdup_printf ("attention_decode_at_%s", llm_dtype_name (kv_dtype));
  if (only != NULL && strstr (name, only) == NULL) {
    g_free (name);
    return;
  }
  j.a.n_layers = MAX (2, ROTATE_BYTES / (2 * row * max_pos));
  j.a.k = g_new (void *, j.a.n_layers);
  j.a.v = g_new (void *, j.a.n_layers);
  for (guint l = 0; l < j.a.n_layers; l++) {
    if ((j.a.k[l] = llm_cuda_alloc (row * max_pos, &error)) == NULL
        || (j.a.v[l] = llm_cuda_alloc (row * max_pos, &error)) == NULL)
      die (error, "KV cache");
    if (!llm_cuda_memset (j.a.k[l], 0x3c, row * max_pos, NULL, &error)
        || !llm_cuda_memset (j.a.v[l], 0x3c, row * max_pos, NULL, &error))
      die (error, "memset");
  }
  if ((j.a.q = llm_cuda_alloc (j.a.n_heads * j.a.head_dim * 4,
              &error)) == NULL
      || (j.a.out = llm_cuda_alloc (j.a.n_heads * j.a.head_dim * 4,
              &error)) == NULL
      || (j.a.scratch =
          llm_cuda_alloc (llm_cuda_attention_decode_at_scratch_bytes
              (j.a.n_heads, j.a.head_dim, max_pos), &error)) == NULL
      || !llm_cuda_memset (j.a.scratch, 0,
          llm_cuda_attention_decode_at_scratch_bytes (j.a.n_heads,
              j.a.head_dim, max_pos), NULL, &error)
      || (j.count = llm_cuda_alloc (sizeof count, &error)) == NULL
      || !llm_cuda_copy (j.count, &count, sizeof count,
          LLM_CUDA_HOST_TO_DEVICE, NULL, &error)
      || !llm_cuda_memset (j.a.q, 0, j.a.n_heads * j.a.head_dim * 4, NULL,
          &error))
    die (error, "attention buffers");

  sec = time_launches (att_at_launch, &j, repeats, s);
  shape = g_strdup_printf ("%u of %u pos, 32q/8kv", n_pos, max_pos);
  report (name, shape, 2.0 * row * n_pos, sec, repeats, copy_gbs);

  /* The same launches replayed from a CUDA graph of GRAPH_LAYERS of them,
   * as the decode step runs: no launch overhead on the host. */
  if (!llm_cuda_graph_begin (s, &error))
    die (error, "graph");
  for (guint i = 0; i < GRAPH_LAYERS; i++)
    att_at_launch (&j, i, s);
  if ((j.graph = llm_cuda_graph_end (s, &error)) == NULL)
    die (error, "graph");
  sec = time_launches (att_graph_launch, &j, MAX (2, repeats / GRAPH_LAYERS),
      s);
  g_free (name);
  name = g_strdup_printf ("attention_decode_at_%s_graph",
      llm_dtype_name (kv_dtype));
  report (name, shape, 2.0 * row * n_pos, sec,
      MAX (2, repeats / GRAPH_LAYERS) * GRAPH_LAYERS, copy_gbs);
  llm_cuda_graph_free (j.graph);

  for (guint l = 0; l < j.a.n_layers; l++) {
    llm_cuda_free (j.a.k[l]);
    llm_cuda_free (j.a.v[l]);
  }
  g_free (j.a.k);
  g_free (j.a.v);
  llm_cuda_free (j.a.q);
  llm_cuda_free (j.a.out);
  llm_cuda_free (j.a.scratch);
  llm_cuda_free (j.count);
  g_free (name);
  g_free (shape);
}

/* --- attention_prefill: compute-bound, reported in TFLOP/s --- */

typedef struct {
  LlmDType kv_dtype;
  guint n_tokens, pos0;          /* pos0: cached positions before them */
  void *k, *v;
  float *q, *out;
} PrefillJob;

static void
prefill_launch (gpointer data, guint i, LlmCudaStream * s)
{
  PrefillJob *j = data;

  (void) i;
  llm_cuda_attention_prefill (j->out, j->q, 32 * 128, j->k, j->v,
      j->kv_dtype, j->pos0, j->n_tokens, 32, 8, 128, 8 * 128,
      ATT_SCALE_128, 0, s);
}

static void
bench_prefill (LlmDType kv_dtype, guint n_tokens, guint pos0,
    LlmCudaStream * s)
{
  PrefillJob j = { kv_dtype, n_tokens, pos0, NULL, NULL, NULL, NULL };
  GError *error = NULL;
  gsize es = kv_dtype == LLM_DTYPE_F32 ? 4 : 2;
  gsize kv_bytes = (gsize) (pos0 + n_tokens) * 8 * 128 * es;
  gsize q_bytes = (gsize) n_tokens * 32 * 128 * 4;
  guint n = MAX (5, repeats / 10);
  gchar *name, *shape;
  double sec, us, flops, tflops;

  name = g_strdup_printf ("attention_prefill_%s", llm_dtype_name (kv_dtype));
  if (only != NULL && strstr (name, only) == NULL) {
    g_free (name);
    return;
  }
  if ((j.k = llm_cuda_alloc (kv_bytes, &error)) == NULL
      || (j.v = llm_cuda_alloc (kv_bytes, &error)) == NULL
      || (j.q = llm_cuda_alloc (q_bytes, &error)) == NULL
      || (j.out = llm_cuda_alloc (q_bytes, &error)) == NULL)
    die (error, "prefill buffers");
  /* Random, not constant: on equal scores the softmax max never moves and
   * the kernel skips its rescales. */
  llm_cuda_fill_normal (j.k, kv_dtype, kv_bytes / es, 0.0f, 1.0f, 1, s);
  llm_cuda_fill_normal (j.v, kv_dtype, kv_bytes / es, 0.0f, 1.0f, 2, s);
  llm_cuda_fill_normal (j.q, LLM_DTYPE_F32, q_bytes / 4, 0.0f, 1.0f, 3, s);

  sec = time_launches (prefill_launch, &j, n, s);
  /* Causal: token t scores pos0 + t + 1 keys; 2 flops a multiply-add, for
   * q.k and for p.v, per head and dimension. */
  flops = 4.0 * 32 * 128 * ((double) n_tokens * (n_tokens + 1) / 2
      + (double) n_tokens * pos0);
  us = sec / n * 1e6;
  tflops = flops / (sec / n) / 1e12;
  shape = pos0 > 0 ? g_strdup_printf ("%u tok at %u, 32q/8kv x128",
      n_tokens, pos0) : g_strdup_printf ("%u tok, 32q/8kv x128", n_tokens);
  g_print ("%-24s %-22s %10s %9.1f %7.1f TFLOP/s\n", name, shape, "-", us,
      tflops);
  g_string_append_printf (json, "%s{\"kernel\": \"%s\", \"shape\": \"%s\", "
      "\"us\": %.3f, \"tflops\": %.2f}",
      json->str[json->len - 1] == '[' ? "\n  " : ",\n  ", name, shape, us,
      tflops);

  llm_cuda_free (j.k);
  llm_cuda_free (j.v);
  llm_cuda_free (j.q);
  llm_cuda_free (j.out);
  g_free (name);
  g_free (shape);
}

/* --- sampling --- */

typedef struct {
  guint n;
  float temperature, top_p;
  guint top_k;
  float *x;
  gint32 *ids;
  double *coins;
  void *scratch;
  gboolean argmax;              /* llm_cuda_argmax instead */
} SampleJob;

static void
sample_launch (gpointer data, guint i, LlmCudaStream * s)
{
  SampleJob *j = data;

  if (j->argmax)
    llm_cuda_argmax (j->ids, j->x, j->n, 1, s);
  else
    llm_cuda_sample (j->ids, j->x, j->n, 1, j->temperature, j->top_k,
        j->top_p, 0.0f, j->coins, j->scratch, s);
}

/* One row of Llama 3's 128256 logits (uniform in [-8, 8]), batch 1. */
static void
bench_sample (const gchar * name, float temperature, guint top_k,
    float top_p, gboolean argmax, LlmCudaStream * s, double copy_gbs)
{
  SampleJob j = { 128256, temperature, top_p, top_k, NULL, NULL, NULL, NULL,
    argmax
  };
  GError *error = NULL;
  GRand *rng = g_rand_new_with_seed (128256);
  float *x = g_new (float, j.n);
  double coin = 0.37;
  double sec;

  if (only != NULL && strstr (name, only) == NULL) {
    g_free (x);
    g_rand_free (rng);
    return;
  }
  for (guint i = 0; i < j.n; i++)
    x[i] = (float) g_rand_double_range (rng, -8, 8);
  if ((j.x = llm_cuda_alloc (j.n * sizeof (float), &error)) == NULL
      || (j.ids = llm_cuda_alloc (sizeof (gint32), &error)) == NULL
      || (j.coins = llm_cuda_alloc (sizeof (double), &error)) == NULL
      || (j.scratch = llm_cuda_alloc (llm_cuda_sample_scratch_bytes (j.n, 1),
              &error)) == NULL
      || !llm_cuda_copy (j.x, x, j.n * sizeof (float),
          LLM_CUDA_HOST_TO_DEVICE, NULL, &error)
      || !llm_cuda_copy (j.coins, &coin, sizeof (double),
          LLM_CUDA_HOST_TO_DEVICE, NULL, &error))
    die (error, "sample buffers");
  sec = time_launches (sample_launch, &j, repeats, s);
  report (name, "128256 x 1", j.n * 4.0, sec, repeats, copy_gbs);
  llm_cuda_free (j.x);
  llm_cuda_free (j.ids);
  llm_cuda_free (j.coins);
  llm_cuda_free (j.scratch);
  g_free (x);
  g_rand_free (rng);
}

int
main (int argc, char **argv)
{
  static const LlmDType dtypes[] = { LLM_DTYPE_F32, LLM_DTYPE_F16,
    LLM_DTYPE_BF16, LLM_DTYPE_Q8_0, LLM_DTYPE_Q4_0
  };
  gchar *json_path = NULL;
  GOptionEntry entries[] = {
    {"repeats", 'r', 0, G_OPTION_ARG_INT, &repeats, "Timed launches", "N"},
    {"json", 0, 0, G_OPTION_ARG_FILENAME, &json_path, "Also write JSON",
        "FILE"},
    {"only", 0, 0, G_OPTION_ARG_STRING, &only,
        "Only kernels whose name contains this (e.g. matvec_Q4_0)", "PART"},
    {NULL}
  };
  GOptionContext *ctx = g_option_context_new ("- CUDA kernel bandwidth");
  GError *error = NULL;
  LlmCudaDeviceInfo info;
  LlmCudaStream *s;
  CopyJob cj;
  double sec, copy_gbs;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    die (error, "options");
  g_option_context_free (ctx);
  if (!llm_cuda_device_open (0, &info, &error)) {
    g_printerr ("llmasos-bench-cuda: %s\n", error->message);
    return 77;
  }
  g_print ("device: %s, compute capability %d.%d, %d SMs, %.1f GiB, "
      "L2 %.0f MiB, driver %d, runtime %d\n", info.name, info.cc_major,
      info.cc_minor, info.n_sm, info.total_bytes / 1073741824.0,
      info.l2_bytes / 1048576.0, info.driver_version, info.runtime_version);
  json = g_string_new ("");
  g_string_append_printf (json, "{\"device\": \"%s\", \"results\": [",
      info.name);
  if ((s = llm_cuda_stream_new (&error)) == NULL)
    die (error, "stream");

  /* Reference: a device-to-device copy, bytes read + written. */
  cj.bytes = ROTATE_BYTES;
  if ((cj.a = llm_cuda_alloc (cj.bytes, &error)) == NULL
      || (cj.b = llm_cuda_alloc (cj.bytes, &error)) == NULL
      || !llm_cuda_memset (cj.a, 1, cj.bytes, NULL, &error))
    die (error, "copy buffers");
  sec = time_launches (copy_launch, &cj, 20, s);
  copy_gbs = 2.0 * cj.bytes * 20 / sec / 1e9;
  llm_cuda_free (cj.a);
  llm_cuda_free (cj.b);

  g_print ("%-24s %-22s %10s %9s %8s %7s\n", "kernel", "shape", "MB read",
      "us", "GB/s", "of copy");
  report ("copy_d2d (read+write)", "1 GiB", 2.0 * cj.bytes, sec, 20,
      copy_gbs);
  for (guint d = 0; d < G_N_ELEMENTS (dtypes); d++) {
    bench_matvec (dtypes[d], 14336, 4096, FALSE, 0, s, copy_gbs);
    bench_matvec (dtypes[d], 4096, 14336, FALSE, 0, s, copy_gbs);
  }
  /* The packed layout at every Llama-3-8B matvec shape: wq/wo, wk/wv,
   * w_gate/w_up, w_down, the head; then 4 and 8 vectors at once. */
  for (guint d = 1; d < G_N_ELEMENTS (dtypes); d++) {
    static const guint sh[][2] = { {4096, 4096}, {1024, 4096},
    {14336, 4096}, {4096, 14336}, {128256, 4096}
    };

    for (guint k = 0; k < G_N_ELEMENTS (sh); k++)
      bench_matvec (dtypes[d], sh[k][0], sh[k][1], FALSE, 1, s, copy_gbs);
    bench_matvec (dtypes[d], 14336, 4096, FALSE, 4, s, copy_gbs);
    bench_matvec (dtypes[d], 14336, 4096, FALSE, 8, s, copy_gbs);
  }
  bench_matvec (LLM_DTYPE_F16, 14336, 4096, TRUE, 0, s, copy_gbs);
  bench_matvec (LLM_DTYPE_F16, 4096, 14336, TRUE, 0, s, copy_gbs);
  bench_attention (LLM_DTYPE_F16, 4096, s, copy_gbs);
  bench_attention (LLM_DTYPE_F32, 4096, s, copy_gbs);
  bench_attention (LLM_DTYPE_F16, 32768, s, copy_gbs);
  bench_sample ("argmax", 0.0f, 0, 1.0f, TRUE, s, copy_gbs);
  bench_sample ("sample_greedy", 0.0f, 0, 1.0f, FALSE, s, copy_gbs);
  bench_sample ("sample_topk40_topp0.95_t0.8", 0.8f, 40, 0.95f, FALSE, s,
      copy_gbs);
  bench_sample ("sample_topp0.95", 1.0f, 0, 0.95f, FALSE, s, copy_gbs);
  bench_sample ("sample_t1", 1.0f, 0, 1.0f, FALSE, s, copy_gbs);
  bench_attention (LLM_DTYPE_F16, 128, s, copy_gbs);
  bench_attention_at (LLM_DTYPE_F16, 128, 8192, s, copy_gbs);
  bench_attention_at (LLM_DTYPE_F16, 4096, 8192, s, copy_gbs);
  bench_attention_at (LLM_DTYPE_F16, 8192, 8192, s, copy_gbs);
  bench_attention_at (LLM_DTYPE_Q8_0, 128, 8192, s, copy_gbs);
  bench_attention_at (LLM_DTYPE_Q8_0, 4096, 8192, s, copy_gbs);
  bench_attention_at (LLM_DTYPE_Q8_0, 8192, 8192, s, copy_gbs);
  bench_prefill (LLM_DTYPE_F16, 512, 0, s);
  bench_prefill (LLM_DTYPE_F16, 2048, 0, s);
  /* The forward pass's last 512-token block of a 2048-token prompt. */
  bench_prefill (LLM_DTYPE_F16, 512, 1536, s);
  bench_prefill (LLM_DTYPE_F32, 512, 0, s);
  bench_prefill (LLM_DTYPE_F32, 2048, 0, s);

  g_string_append (json, "\n]}\n");
  if (json_path != NULL
      && !g_file_set_contents (json_path, json->str, -1, &error))
    die (error, json_path);
  llm_cuda_stream_free (s);
  g_string_free (json, TRUE);
  g_free (json_path);
  g_free (only);
  return 0;
}
