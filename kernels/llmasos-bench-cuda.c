/* llmasos-bench-cuda - memory bandwidth of the CUDA decode kernels.
 *
 * Times each matvec on Llama-3-8B's FFN shapes (14336 x 4096 and
 * 4096 x 14336) and attention_decode over a 4096-position cache, and
 * compares the bytes they read per second with a device-to-device copy
 * (bytes read + written) on the same GPU. Every timed launch reads a
 * different copy of the weights (at least 1 GiB of copies in all), so the
 * figures are for DRAM, not the 50 MB L2 — as in a real forward pass,
 * where each matrix is read once per token.
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

static void
bench_matvec (LlmDType dtype, guint rows, guint cols, gboolean cublas,
    LlmCudaStream * s, double copy_gbs)
{
  MatvecJob j = { dtype, rows, cols, 0, 0, NULL, NULL, NULL, NULL, cublas };
  GError *error = NULL;
  guint64 rb;
  float *src = g_new (float, cols), *xs = g_new (float, cols);
  guint8 *host;
  GRand *rng = g_rand_new_with_seed (rows * 31 + cols + dtype);
  gchar *name, *shape;
  double sec;

  name = g_strdup_printf ("%s_%s", cublas ? "cublas_gemv" : "matvec",
      llm_dtype_name (dtype));
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
  for (guint r = 0; r < rows; r++) {
    for (guint c = 0; c < cols; c++)
      src[c] = (float) g_rand_double_range (rng, -1, 1);
    llm_quantize_row (dtype, src, host + r * rb, cols);
  }
  for (guint c = 0; c < cols; c++)
    xs[c] = (float) g_rand_double_range (rng, -1, 1);

  j.w = g_new (void *, j.n_copies);
  for (guint i = 0; i < j.n_copies; i++) {
    if ((j.w[i] = llm_cuda_alloc (j.bytes, &error)) == NULL)
      die (error, "weights");
    if (!llm_cuda_copy (j.w[i], host, j.bytes, LLM_CUDA_HOST_TO_DEVICE, NULL,
            &error))
      die (error, "upload");
  }
  if ((j.x = llm_cuda_alloc (cols * sizeof (float), &error)) == NULL
      || (j.xh = llm_cuda_alloc (cols * 2, &error)) == NULL
      || (j.out = llm_cuda_alloc (rows * sizeof (float), &error)) == NULL)
    die (error, "vectors");
  if (!llm_cuda_copy (j.x, xs, cols * sizeof (float),
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
    bench_matvec (dtypes[d], 14336, 4096, FALSE, s, copy_gbs);
    bench_matvec (dtypes[d], 4096, 14336, FALSE, s, copy_gbs);
  }
  bench_matvec (LLM_DTYPE_F16, 14336, 4096, TRUE, s, copy_gbs);
  bench_matvec (LLM_DTYPE_F16, 4096, 14336, TRUE, s, copy_gbs);
  bench_attention (LLM_DTYPE_F16, 4096, s, copy_gbs);
  bench_attention (LLM_DTYPE_F32, 4096, s, copy_gbs);
  bench_attention (LLM_DTYPE_F16, 32768, s, copy_gbs);

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
