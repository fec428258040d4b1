/* LLMasOS - the small kernels the GPU decode step adds, against the CPU.
 *
 * - vector_add: exact (one F32 addition each, as the CPU does).
 * - swiglu_rows: relative L2 2e-6 against llm_swiglu on each row's halves
 *   (same formula, expf may differ in its last bit).
 * - rope_apply_at (the position read from device memory) against llm_rope
 *   at several positions with one launch configuration, as a captured
 *   graph replays it: 2e-6 relative L2 (the angles are computed as the
 *   CPU does, kernels/rope_apply.cu).
 * - kv_store: F32 exact; F16 bit-exact against llm_f32_to_f16; rows land
 *   at the position read from device memory and nothing else is touched.
 * - a CUDA graph of a vector_add replayed three times adds three times.
 * Shapes include odd sizes. Without a GPU: exit 77 (meson SKIP).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <gst/check/gstcheck.h>
#include <math.h>
#include <string.h>

#include "llm-cpu-ops.h"
#include "llm-cuda.h"
#include "llm-dtype.h"
#include "test-cuda-common.h"


GST_START_TEST (test_vector_add)
{
  const gsize sizes[] = { 1, 3, 255, 256, 4097, 1 << 20 };

  for (guint c = 0; c < G_N_ELEMENTS (sizes); c++) {
    gsize n = sizes[c];
    g_autofree float *x = random_floats (n, 4.0f);
    g_autofree float *y = random_floats (n, 4.0f);
    g_autofree float *got = g_new (float, n);
    float *dx = dev_from (x, n * 4), *dy = dev_from (y, n * 4);

    llm_cuda_vector_add (dx, dy, n, stream);
    to_host (got, dx, n * 4);
    for (gsize i = 0; i < n; i++)
      fail_unless (got[i] == x[i] + y[i], "n=%" G_GSIZE_FORMAT ": element %"
          G_GSIZE_FORMAT ": %g != %g", n, i, got[i], x[i] + y[i]);
    llm_cuda_free (dx);
    llm_cuda_free (dy);
  }
}

GST_END_TEST;

GST_START_TEST (test_swiglu_rows)
{
  const guint shapes[][2] = { {1, 1}, {1, 14336}, {3, 7}, {17, 1536},
  {64, 333}
  };

  for (guint c = 0; c < G_N_ELEMENTS (shapes); c++) {
    guint rows = shapes[c][0], ffn = shapes[c][1];
    gsize n = (gsize) rows * ffn;
    g_autofree float *gu = random_floats (2 * n, 6.0f);
    g_autofree float *want = g_new (float, n);
    g_autofree float *got = g_new (float, n);
    float *dgu = dev_from (gu, 2 * n * 4), *dout = dev_from (NULL, n * 4);
    double e;

    for (guint r = 0; r < rows; r++)
      llm_swiglu (want + (gsize) r * ffn, gu + (gsize) r * 2 * ffn,
          gu + (gsize) r * 2 * ffn + ffn, ffn);
    llm_cuda_swiglu_rows (dout, dgu, rows, ffn, stream);
    to_host (got, dout, n * 4);
    e = rel_l2 (got, want, n);
    fail_unless (e <= 2e-6, "%u x %u: relative L2 %g", rows, ffn, e);
    llm_cuda_free (dgu);
    llm_cuda_free (dout);
  }
}

GST_END_TEST;

GST_START_TEST (test_rope_apply_at)
{
  /* heads, head_dim, row stride (floats), theta */
  const struct {
    guint heads, hd, stride;
    float theta;
  } cases[] = {
    {40, 128, 6144, 500000.0f}, /* Llama-3-8B's q|k inside a q|k|v row */
    {12, 8, 128, 10000.0f},     /* stories260K's */
    {3, 6, 20, 10000.0f},
  };
  const gint32 positions[] = { 0, 1, 127, 4095, 100003 };

  for (guint c = 0; c < G_N_ELEMENTS (cases); c++) {
    for (guint il = 0; il < 2; il++) {
      guint width = cases[c].heads * cases[c].hd;
      gint32 *dpos = dev_from (NULL, sizeof (gint32));

      for (guint p = 0; p < G_N_ELEMENTS (positions); p++) {
        g_autofree float *x = random_floats (cases[c].stride, 2.0f);
        g_autofree float *want = g_memdup2 (x, cases[c].stride * 4);
        g_autofree float *got = g_new (float, cases[c].stride);
        float *dx = dev_from (x, cases[c].stride * 4);
        GError *err = NULL;
        double e;

        llm_rope (want, cases[c].heads, cases[c].hd, positions[p],
            cases[c].theta, il);
        fail_unless (llm_cuda_copy (dpos, &positions[p], sizeof (gint32),
                LLM_CUDA_HOST_TO_DEVICE, NULL, &err));
        llm_cuda_rope_apply_at (dx, 1, cases[c].stride, cases[c].heads,
            cases[c].hd, dpos, cases[c].theta, il, stream);
        to_host (got, dx, cases[c].stride * 4);
        e = rel_l2 (got, want, width);
        fail_unless (e <= 2e-6, "case %u pos %d: relative L2 %g", c,
            positions[p], e);
        /* the rest of the row is not touched */
        fail_unless (memcmp (got + width, x + width,
                (cases[c].stride - width) * 4) == 0);
        llm_cuda_free (dx);
      }
      llm_cuda_free (dpos);
    }
  }
}

GST_END_TEST;

static void
check_kv_store (LlmDType dtype, guint kv_dim, guint n_ctx, guint n_tokens,
    guint src_stride, gint32 pos0, gboolean from_device)
{
  gsize esz = dtype == LLM_DTYPE_F16 ? 2 : 4;
  gsize cache_bytes = (gsize) n_ctx * kv_dim * esz;
  g_autofree float *k = random_floats ((gsize) n_tokens * src_stride, 3.0f);
  g_autofree float *v = random_floats ((gsize) n_tokens * src_stride, 3.0f);
  g_autofree guint8 *kc = g_malloc (cache_bytes);
  g_autofree guint8 *vc = g_malloc (cache_bytes);
  gpointer dk = dev_from (k, (gsize) n_tokens * src_stride * 4);
  gpointer dv = dev_from (v, (gsize) n_tokens * src_stride * 4);
  gpointer dkc, dvc;
  gint32 *dpos = dev_from (&pos0, sizeof pos0);

  memset (kc, 0x5a, cache_bytes);
  memset (vc, 0xa5, cache_bytes);
  dkc = dev_from (kc, cache_bytes);
  dvc = dev_from (vc, cache_bytes);
  llm_cuda_kv_store (dkc, dvc, dtype, dk, dv, src_stride, n_tokens, kv_dim,
      from_device ? 0 : pos0, from_device ? dpos : NULL, stream);
  {
    g_autofree guint8 *gk = g_malloc (cache_bytes);
    g_autofree guint8 *gv = g_malloc (cache_bytes);

    to_host (gk, dkc, cache_bytes);
    to_host (gv, dvc, cache_bytes);
    for (guint p = 0; p < n_ctx; p++) {
      for (guint i = 0; i < kv_dim; i++) {
        gsize o = ((gsize) p * kv_dim + i) * esz;
        gboolean written = p >= (guint) pos0 && p < pos0 + n_tokens;

        if (!written) {
          fail_unless (memcmp (gk + o, kc + o, esz) == 0 &&
              memcmp (gv + o, vc + o, esz) == 0,
              "position %u (not written) changed", p);
        } else {
          gsize s = (gsize) (p - pos0) * src_stride + i;

          if (dtype == LLM_DTYPE_F16) {
            fail_unless (((guint16 *) gk)[o / 2] == llm_f32_to_f16 (k[s]));
            fail_unless (((guint16 *) gv)[o / 2] == llm_f32_to_f16 (v[s]));
          } else {
            fail_unless (((float *) gk)[o / 4] == k[s]);
            fail_unless (((float *) gv)[o / 4] == v[s]);
          }
        }
      }
    }
  }
  llm_cuda_free (dk);
  llm_cuda_free (dv);
  llm_cuda_free (dkc);
  llm_cuda_free (dvc);
  llm_cuda_free (dpos);
}

GST_START_TEST (test_kv_store)
{
  for (guint d = 0; d < 2; d++) {
    LlmDType dt = d ? LLM_DTYPE_F16 : LLM_DTYPE_F32;

    check_kv_store (dt, 1024, 9, 1, 6144, 7, TRUE);     /* Llama-3-8B */
    check_kv_store (dt, 32, 40, 1, 128, 0, TRUE);       /* stories260K */
    check_kv_store (dt, 32, 40, 13, 128, 20, FALSE);    /* prefill */
    check_kv_store (dt, 5, 11, 3, 9, 8, TRUE);  /* odd */
  }
}

GST_END_TEST;

GST_START_TEST (test_graph_replay)
{
  const gsize n = 1001;
  g_autofree float *x = random_floats (n, 1.0f);
  g_autofree float *y = random_floats (n, 1.0f);
  g_autofree float *got = g_new (float, n);
  float *dx = dev_from (x, n * 4), *dy = dev_from (y, n * 4);
  GError *err = NULL;
  LlmCudaGraph *g;

  fail_unless (llm_cuda_graph_begin (stream, &err), "%s",
      err ? err->message : "");
  llm_cuda_vector_add (dx, dy, n, stream);
  g = llm_cuda_graph_end (stream, &err);
  fail_unless (g != NULL, "%s", err ? err->message : "");
  /* captured, not run */
  to_host (got, dx, n * 4);
  fail_unless (memcmp (got, x, n * 4) == 0);
  for (guint i = 0; i < 3; i++)
    fail_unless (llm_cuda_graph_launch (g, stream, &err));
  to_host (got, dx, n * 4);
  for (gsize i = 0; i < n; i++)
    fail_unless (got[i] == ((x[i] + y[i]) + y[i]) + y[i]);
  llm_cuda_graph_free (g);
  llm_cuda_free (dx);
  llm_cuda_free (dy);
}

GST_END_TEST;

static Suite *
cuda_step_kernels_suite (void)
{
  Suite *s;
  TCase *tc;

  cuda_test_setup (20261125, NULL);
  s = suite_create ("cuda-step-kernels");
  tc = tcase_create ("general");
  tcase_set_timeout (tc, 120);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_vector_add);
  tcase_add_test (tc, test_swiglu_rows);
  tcase_add_test (tc, test_rope_apply_at);
  tcase_add_test (tc, test_kv_store);
  tcase_add_test (tc, test_graph_replay);
  return s;
}

GST_CHECK_MAIN (cuda_step_kernels);
