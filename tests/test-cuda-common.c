/* What the GPU kernel tests share (test-cuda-common.h).
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "test-cuda-common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

LlmCudaStream *stream;
GRand *rng;

void
cuda_test_setup (guint32 seed, LlmCudaDeviceInfo * info)
{
  GError *err = NULL;

  if (llm_cuda_device_count (&err) == 0
      || !llm_cuda_device_open (0, info, &err)) {
    g_print ("SKIP: %s\n", err ? err->message : "no CUDA device");
    g_clear_error (&err);
    exit (77);
  }
  if ((stream = llm_cuda_stream_new (&err)) == NULL) {
    g_printerr ("cannot create a CUDA stream: %s\n", err->message);
    exit (1);
  }
  g_setenv ("CK_FORK", "no", TRUE);
  rng = g_rand_new_with_seed (seed);
}

gpointer
dev_alloc (gsize bytes)
{
  GError *err = NULL;
  gpointer p = llm_cuda_alloc (MAX (bytes, 4), &err);

  fail_unless (p != NULL, "llm_cuda_alloc: %s", err ? err->message : "?");
  return p;
}

gpointer
dev_zeroed (gsize bytes)
{
  GError *err = NULL;
  gpointer p = dev_alloc (bytes);

  fail_unless (llm_cuda_memset (p, 0, MAX (bytes, 4), NULL, &err),
      "llm_cuda_memset: %s", err ? err->message : "?");
  return p;
}

void
upload (gpointer dev, gconstpointer host, gsize bytes)
{
  GError *err = NULL;

  fail_unless (llm_cuda_copy (dev, host, bytes, LLM_CUDA_HOST_TO_DEVICE,
          NULL, &err), "upload: %s", err ? err->message : "?");
}

gpointer
dev_from (gconstpointer host, gsize bytes)
{
  gpointer p = dev_alloc (bytes);

  if (host != NULL)
    upload (p, host, bytes);
  return p;
}

void
to_host (gpointer host, gconstpointer dev, gsize bytes)
{
  GError *err = NULL;

  fail_unless (llm_cuda_stream_sync (stream, &err), "kernel: %s",
      err ? err->message : "?");
  fail_unless (llm_cuda_copy (host, dev, bytes, LLM_CUDA_DEVICE_TO_HOST,
          NULL, &err), "download: %s", err ? err->message : "?");
}

void
fill_random (float *x, gsize n, float scale)
{
  for (gsize i = 0; i < n; i++)
    x[i] = (float) g_rand_double_range (rng, -scale, scale);
}

float *
random_floats (gsize n, float scale)
{
  float *x = g_new (float, MAX (n, 1));

  fill_random (x, n, scale);
  return x;
}

double
rel_l2 (const float *got, const float *want, gsize n)
{
  double num = 0.0, den = 0.0;

  for (gsize i = 0; i < n; i++) {
    double d = (double) got[i] - want[i];

    fail_unless (isfinite (got[i]), "element %" G_GSIZE_FORMAT " is %g", i,
        got[i]);
    num += d * d;
    den += (double) want[i] * want[i];
  }
  return den == 0.0 ? sqrt (num) : sqrt (num / den);
}

void
check_rel (const float *got, const float *want, gsize n, double bound,
    double *worst, const gchar * what)
{
  double e = rel_l2 (got, want, n);

  fail_unless (e <= bound, "%s: relative L2 error %.3g above %.3g", what, e,
      bound);
  *worst = MAX (*worst, e);
}

double
mag_sums (const float *got, const float *want, const double *mag, gsize n,
    const gchar * what, double *den)
{
  double num = 0.0;

  *den = 0.0;
  for (gsize i = 0; i < n; i++) {
    double d = (double) got[i] - want[i];

    fail_unless (isfinite (got[i]), "%s: element %" G_GSIZE_FORMAT " is %g",
        what, i, got[i]);
    num += d * d;
    *den += mag[i] * mag[i];
  }
  return num;
}

void
check_mag (const float *got, const float *want, const double *mag, gsize n,
    double bound, double *worst, const gchar * what)
{
  double den, num = mag_sums (got, want, mag, n, what, &den), e;

  e = den > 0.0 ? sqrt (num / den) : sqrt (num);
  fail_unless (e <= bound, "%s: error %.3g of the magnitude, above %.3g",
      what, e, bound);
  *worst = MAX (*worst, e);
}

void
matrix_make (Matrix * m, LlmDType dtype, guint rows, guint cols)
{
  GError *err = NULL;
  guint64 rb = 0;
  gsize bytes, pbytes, n = (gsize) rows * cols;
  gpointer dsrc;

  fail_unless (llm_dtype_bytes_for (dtype, cols, &rb));
  bytes = rb * rows;
  m->dtype = dtype;
  m->rows = rows;
  m->cols = cols;
  m->src = g_new (float, MAX (n, 1));
  m->gguf = g_malloc (MAX (bytes, 1));
  /* one draw a weight (the large matrices are 100 M of them) */
  for (gsize i = 0; i < n; i++)
    m->src[i] = (float) (gint32) g_rand_int (rng) * (1.0f / 2147483648.0f);
  for (guint r = 0; r < rows; r++)
    llm_quantize_row (dtype, m->src + (gsize) r * cols, m->gguf + r * rb,
        cols);
  memset (&m->t, 0, sizeof (m->t));
  m->t.name = (gchar *) "w";
  m->t.dtype = dtype;
  m->t.n_dims = 2;
  m->t.ne[0] = cols;
  m->t.ne[1] = rows;
  m->t.ne[2] = m->t.ne[3] = 1;
  m->t.data = m->gguf;
  m->t.nbytes = bytes;

  pbytes = llm_cuda_matrix_bytes (dtype, rows, cols);
  if (llm_cuda_matrix_layout_is_gguf (dtype))
    fail_unless (pbytes == bytes);
  else
    fail_unless (pbytes == (gsize) rows * cols / 32 * 2
        + (dtype == LLM_DTYPE_Q8_0 ? (gsize) rows * cols
            : (gsize) rows * cols / 2));
  dsrc = dev_from (m->gguf, bytes);
  m->packed = dev_alloc (pbytes);
  fail_unless (llm_cuda_matrix_pack (m->packed, dsrc, dtype, rows, cols,
          stream, &err), "pack: %s", err ? err->message : "?");
  fail_unless (llm_cuda_stream_sync (stream, &err), "pack: %s",
      err ? err->message : "?");
  llm_cuda_free (dsrc);
}

void
matrix_clear (Matrix * m)
{
  llm_cuda_free (m->packed);
  g_free (m->src);
  g_free (m->gguf);
}
