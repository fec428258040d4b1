/* LLMasOS - the packed weight layout and its matvecs against core/.
 *
 * llm_cuda_matrix_pack() then llm_cuda_matvec_packed(), _add() and
 * _multi(), and llm_cuda_matrix_dequantize_f16(), for F32, F16, BF16,
 * Q8_0 and Q4_0 on random weights of several shapes (rows 1, 7, 33, 1000;
 * columns 32, 96, 4128, 14336, odd ones for the plain types), compared
 * with llm_matvec() / llm_dequantize_row(). Bounds, with the conventions
 * of test-kernels-cuda.c (errors of the matvecs relative to the magnitude
 * sum |w x| of each output's terms):
 *
 * - F32, F16, BF16 against llm_matvec() on the same tensor: 1e-5 of the
 *   magnitude (only the order of the F32 additions differs).
 * - Q8_0, Q4_0: the kernels round x to Q8_0 (see llm-cuda.h). Against
 *   llm_matvec() with x replaced by its Q8_0 rounding (llm_quantize_row
 *   then llm_dequantize_row, the same rounding bit for bit): 1e-5 of the
 *   magnitude. Against llm_matvec() with the exact x, the rounding's own
 *   error, relative L2 on the shapes of 256 rows and more: 1e-2 (uniform
 *   random x gives about 4e-3, as large as Q8_0's rounding of weights).
 *   Against the F32 source weights and exact x: Q8_0 1.5e-2, Q4_0 0.1, the
 *   bounds of test-kernels-cuda.c.
 * - _add: out preset to random values r, compared with r + llm_matvec(),
 *   1e-5 of |r| + magnitude.
 * - _multi with 1, 3 and 8 vectors, each compared as above (n_x * cols
 *   too large for shared memory takes the long-row kernel: 8 x 32768).
 * - dequantize_f16: bit-exact against llm_f32_to_f16 (llm_get_row ()).
 * - Bad input to llm_cuda_matrix_pack (unsupported dtype, columns not
 *   whole blocks, source = destination): GError, nothing launched.
 *
 * Without a usable GPU the program says why and exits 77 (meson: SKIP).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <gst/check/gstcheck.h>
#include <math.h>
#include <string.h>

#include "llm-cpu-ops.h"
#include "llm-cuda.h"
#include "llm-error.h"
#include "test-cuda-common.h"


static const LlmDType dtypes[] = { LLM_DTYPE_F32, LLM_DTYPE_F16,
  LLM_DTYPE_BF16, LLM_DTYPE_Q8_0, LLM_DTYPE_Q4_0
};

/* Rows 1, 7, 33, 1000 (not multiples of a block's warps), columns of one
 * block, three, 129 (rows 16-byte aligned, steps not whole), 448 (w_down
 * of Llama-3-8B); odd columns for the plain types. */
static const struct
{
  guint rows, cols;
} shapes[] = {
  {1, 32}, {7, 96}, {33, 4128}, {1000, 96}, {1000, 4128}, {7, 14336},
  {300, 4096}, {1, 7}, {33, 1001}, {1000, 5},
};

/* --- helpers (the shared ones: test-cuda-common.h) --- */

static gboolean
is_block (LlmDType t)
{
  return t == LLM_DTYPE_Q8_0 || t == LLM_DTYPE_Q4_0;
}

/* The source-weight bounds of test-kernels-cuda.c. */
static double
source_bound (LlmDType t)
{
  switch (t) {
    case LLM_DTYPE_F32:
      return 1e-5;
    case LLM_DTYPE_F16:
      return 1e-3;
    case LLM_DTYPE_BF16:
      return 8e-3;
    case LLM_DTYPE_Q8_0:
      return 1.5e-2;
    default:
      return 0.1;
  }
}

/* What the kernel multiplies with: x itself, or its Q8_0 rounding for the
 * block formats. */
static void
effective_x (float *xe, const float *x, LlmDType dtype, guint cols)
{
  if (is_block (dtype)) {
    guint8 *q = g_malloc ((gsize) cols / 32 * 34);

    llm_quantize_row (LLM_DTYPE_Q8_0, x, q, cols);
    llm_dequantize_row (LLM_DTYPE_Q8_0, q, xe, cols);
    g_free (q);
  } else {
    memcpy (xe, x, (gsize) cols * sizeof (float));
  }
}

/* want = W xe (llm_matvec), mag = sum |w xe| by row. */
static void
reference (float *want, double *mag, const Matrix * m, const float *xe)
{
  float *deq = g_new (float, m->cols);

  llm_matvec (want, &m->t, xe, 1);
  for (guint r = 0; r < m->rows; r++) {
    double s = 0.0;

    llm_get_row (deq, &m->t, r);
    for (guint c = 0; c < m->cols; c++)
      s += fabs ((double) deq[c] * xe[c]);
    mag[r] = s;
  }
  g_free (deq);
}

/* --- matvec_packed and matvec_packed_add --- */

GST_START_TEST (test_matvec_packed)
{
  for (guint d = 0; d < G_N_ELEMENTS (dtypes); d++) {
    LlmDType dt = dtypes[d];
    double worst = 0.0, worst_add = 0.0, worst_x = 0.0, worst_src = 0.0;

    for (guint s = 0; s < G_N_ELEMENTS (shapes); s++) {
      guint rows = shapes[s].rows, cols = shapes[s].cols;
      /* every other shape: x at an odd float, not 16-byte aligned */
      guint off = s % 2;
      Matrix m;
      float *x, *xe, *want, *want_x, *want_src, *got, *base;
      double *mag, *mag_add;
      gpointer dx, dout;
      gchar *what;

      if (cols % llm_dtype_block_elems (dt) != 0)
        continue;
      matrix_make (&m, dt, rows, cols);
      x = g_new (float, cols);
      xe = g_new (float, cols);
      want = g_new (float, rows);
      want_x = g_new (float, rows);
      want_src = g_new (float, rows);
      got = g_new (float, rows);
      base = g_new (float, rows);
      mag = g_new (double, rows);
      mag_add = g_new (double, rows);
      fill_random (x, cols, 1.0f);
      effective_x (xe, x, dt, cols);
      reference (want, mag, &m, xe);
      llm_matvec (want_x, &m.t, x, 1);
      for (guint r = 0; r < rows; r++) {
        double acc = 0.0;

        for (guint c = 0; c < cols; c++)
          acc += (double) m.src[(gsize) r * cols + c] * x[c];
        want_src[r] = (float) acc;
      }

      dx = dev_alloc ((cols + 1) * sizeof (float));
      upload ((float *) dx + off, x, cols * sizeof (float));
      dout = dev_alloc (rows * sizeof (float));
      what = g_strdup_printf ("matvec_packed %s %ux%u%s", llm_dtype_name (dt),
          rows, cols, off ? " (x unaligned)" : "");
      llm_cuda_matvec_packed (dout, m.packed, dt, (float *) dx + off, rows,
          cols, stream);
      to_host (got, dout, rows * sizeof (float));
      check_mag (got, want, mag, rows, 1e-5, &worst, what);
      if (is_block (dt) && rows >= 256)
        check_rel (got, want_x, rows, 1e-2, &worst_x, what);
      if (rows >= 256)
        check_rel (got, want_src, rows, source_bound (dt), &worst_src, what);

      /* fused residual add */
      fill_random (base, rows, 4.0f);
      upload (dout, base, rows * sizeof (float));
      llm_cuda_matvec_packed_add (dout, m.packed, dt, (float *) dx + off,
          rows, cols, stream);
      to_host (got, dout, rows * sizeof (float));
      for (guint r = 0; r < rows; r++) {
        want[r] += base[r];
        mag_add[r] = mag[r] + fabs (base[r]);
      }
      check_mag (got, want, mag_add, rows, 1e-5, &worst_add, what);

      llm_cuda_free (dx);
      llm_cuda_free (dout);
      matrix_clear (&m);
      g_free (what);
      g_free (x);
      g_free (xe);
      g_free (want);
      g_free (want_x);
      g_free (want_src);
      g_free (got);
      g_free (base);
      g_free (mag);
      g_free (mag_add);
    }
    g_print ("matvec_packed %s: worst error %.3g of the magnitude against "
        "llm_matvec%s (bound 1e-5), _add %.3g (bound 1e-5); relative L2 "
        "against the exact x %.3g (bound 1e-2), against the F32 source "
        "weights %.3g (bound %g)\n", llm_dtype_name (dt), worst,
        is_block (dt) ? " on Q8_0-rounded x" : "", worst_add, worst_x,
        worst_src, source_bound (dt));
  }
}

GST_END_TEST;

/* --- matvec_packed_multi --- */

GST_START_TEST (test_matvec_packed_multi)
{
  static const guint n_xs[] = { 1, 3, 8 };
  static const struct
  {
    guint rows, cols;
  } mshapes[] = {
    {7, 96}, {1000, 4128}, {33, 14336}, {7, 32768}, {33, 1001},
  };

  for (guint d = 0; d < G_N_ELEMENTS (dtypes); d++) {
    LlmDType dt = dtypes[d];
    double worst = 0.0;

    for (guint s = 0; s < G_N_ELEMENTS (mshapes); s++) {
      guint rows = mshapes[s].rows, cols = mshapes[s].cols;
      Matrix m;

      if (cols % llm_dtype_block_elems (dt) != 0)
        continue;
      matrix_make (&m, dt, rows, cols);
      for (guint k = 0; k < G_N_ELEMENTS (n_xs); k++) {
        guint n_x = n_xs[k];
        gsize nx = (gsize) n_x * cols, no = (gsize) n_x * rows;
        float *x = g_new (float, nx), *xe = g_new (float, cols);
        float *want = g_new (float, no), *got = g_new (float, no);
        double *mag = g_new (double, no);
        gpointer dx, dout;
        gchar *what;

        fill_random (x, nx, 1.0f);
        for (guint t = 0; t < n_x; t++) {
          effective_x (xe, x + (gsize) t * cols, dt, cols);
          reference (want + (gsize) t * rows, mag + (gsize) t * rows, &m, xe);
        }
        dx = dev_from (x, nx * sizeof (float));
        dout = dev_alloc (no * sizeof (float));
        llm_cuda_matvec_packed_multi (dout, m.packed, dt, dx, n_x, rows, cols,
            stream);
        to_host (got, dout, no * sizeof (float));
        what = g_strdup_printf ("matvec_packed_multi %s %ux%u, %u vectors",
            llm_dtype_name (dt), rows, cols, n_x);
        check_mag (got, want, mag, no, 1e-5, &worst, what);

        llm_cuda_free (dx);
        llm_cuda_free (dout);
        g_free (what);
        g_free (x);
        g_free (xe);
        g_free (want);
        g_free (got);
        g_free (mag);
      }
      matrix_clear (&m);
    }
    g_print ("matvec_packed_multi %s: worst error %.3g of the magnitude "
        "(bound 1e-5)\n", llm_dtype_name (dt), worst);
  }
}

GST_END_TEST;

/* --- matrix_dequantize_f16 --- */

GST_START_TEST (test_dequantize_f16)
{
  for (guint d = 0; d < G_N_ELEMENTS (dtypes); d++) {
    LlmDType dt = dtypes[d];
    gsize n_checked = 0;

    for (guint s = 0; s < G_N_ELEMENTS (shapes); s++) {
      guint rows = shapes[s].rows, cols = shapes[s].cols;
      gsize n = (gsize) rows * cols;
      float *row;
      guint16 *got;
      gpointer dout;
      Matrix m;

      if (cols % llm_dtype_block_elems (dt) != 0)
        continue;
      matrix_make (&m, dt, rows, cols);
      row = g_new (float, cols);
      got = g_new (guint16, n);
      dout = dev_alloc (n * 2);
      llm_cuda_matrix_dequantize_f16 (dout, m.packed, dt, rows, cols, stream);
      to_host (got, dout, n * 2);
      for (guint r = 0; r < rows; r++) {
        llm_get_row (row, &m.t, r);
        for (guint c = 0; c < cols; c++)
          fail_unless (got[(gsize) r * cols + c] == llm_f32_to_f16 (row[c]),
              "dequantize_f16 %s %ux%u: [%u][%u] is 0x%04x, want 0x%04x",
              llm_dtype_name (dt), rows, cols, r, c,
              got[(gsize) r * cols + c], llm_f32_to_f16 (row[c]));
      }
      n_checked += n;
      llm_cuda_free (dout);
      matrix_clear (&m);
      g_free (row);
      g_free (got);
    }
    g_print ("matrix_dequantize_f16 %s: %" G_GSIZE_FORMAT " weights "
        "bit-exact\n", llm_dtype_name (dt), n_checked);
  }
}

GST_END_TEST;

/* --- bad input --- */

GST_START_TEST (test_pack_errors)
{
  GError *err = NULL;
  gpointer a = dev_alloc (4096), b = dev_alloc (4096);

  fail_unless (llm_cuda_matrix_layout_is_gguf (LLM_DTYPE_F16));
  fail_unless (!llm_cuda_matrix_layout_is_gguf (LLM_DTYPE_Q4_0));
  fail_unless (llm_cuda_matrix_bytes (LLM_DTYPE_Q8_0, 4096, 4096)
      == (gsize) 4096 * 4096 / 32 * 34);
  fail_unless (llm_cuda_matrix_bytes (LLM_DTYPE_Q4_0, 4096, 4096)
      == (gsize) 4096 * 4096 / 32 * 18);
  fail_unless (llm_cuda_matrix_bytes (LLM_DTYPE_Q4_0, 2, 48) == 0);
  fail_unless (llm_cuda_matrix_bytes (LLM_DTYPE_Q4_K, 2, 256) == 0);

  fail_unless (!llm_cuda_matrix_pack (b, a, LLM_DTYPE_Q4_K, 2, 256, stream,
          &err));
  fail_unless (g_error_matches (err, LLM_ERROR, LLM_ERROR_UNSUPPORTED));
  g_clear_error (&err);
  fail_unless (!llm_cuda_matrix_pack (b, a, LLM_DTYPE_Q8_0, 2, 48, stream,
          &err));
  fail_unless (g_error_matches (err, LLM_ERROR, LLM_ERROR_INPUT));
  g_clear_error (&err);
  fail_unless (!llm_cuda_matrix_pack (a, a, LLM_DTYPE_Q8_0, 2, 64, stream,
          &err));
  fail_unless (g_error_matches (err, LLM_ERROR, LLM_ERROR_INPUT));
  g_print ("pack of the same buffer reads: %s\n", err->message);
  g_clear_error (&err);
  fail_unless (!llm_cuda_matrix_pack (NULL, a, LLM_DTYPE_F16, 2, 64, stream,
          &err));
  g_clear_error (&err);
  fail_unless (llm_cuda_stream_sync (stream, &err));
  llm_cuda_free (a);
  llm_cuda_free (b);
}

GST_END_TEST;

static Suite *
cuda_matvec_suite (void)
{
  Suite *s;
  TCase *tc;

  cuda_test_setup (20261126, NULL);
  s = suite_create ("cuda-matvec");
  tc = tcase_create ("packed");

  tcase_set_timeout (tc, 300);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_pack_errors);
  tcase_add_test (tc, test_matvec_packed);
  tcase_add_test (tc, test_matvec_packed_multi);
  tcase_add_test (tc, test_dequantize_f16);
  return s;
}

GST_CHECK_MAIN (cuda_matvec);
