/* LLMasOS - CPU primitives against naive double-precision twins.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <gst/check/gstcheck.h>
#include <math.h>
#include <string.h>

#include "llm-attention.h"
#include "llm-cpu-ops.h"
#include "test-common.h"

static GRand *rng;

static void
fill_random (float *x, gsize n, float scale)
{
  for (gsize i = 0; i < n; i++)
    x[i] = (float) g_rand_double_range (rng, -scale, scale);
}

/* |got - want| <= atol + rtol * |want| for every element. */
static void
check_close (const float *got, const double *want, gsize n, double rtol,
    double atol, const gchar * what)
{
  for (gsize i = 0; i < n; i++) {
    double err = fabs ((double) got[i] - want[i]);

    fail_unless (isfinite (got[i]) && err <= atol + rtol * fabs (want[i]),
        "%s: element %" G_GSIZE_FORMAT " is %.9g, want %.9g (error %.3g)",
        what, i, got[i], want[i], err);
  }
}

/* A weight matrix of @rows x @cols stored as @dtype. */
typedef struct
{
  LlmTensor t;
  guint8 *data;
  float *deq;                   /* the stored values, dequantized */
} Weight;

static Weight *
weight_new (LlmDType dtype, guint rows, guint cols)
{
  Weight *w = g_new0 (Weight, 1);
  float *src = g_new (float, (gsize) rows * cols);
  guint64 rb;

  fail_unless (llm_dtype_bytes_for (dtype, cols, &rb));
  fill_random (src, (gsize) rows * cols, 1.0f);
  w->data = g_malloc (rb * rows);
  w->deq = g_new (float, (gsize) rows * cols);
  for (guint r = 0; r < rows; r++) {
    llm_quantize_row (dtype, src + (gsize) r * cols, w->data + r * rb, cols);
    llm_dequantize_row (dtype, w->data + r * rb, w->deq + (gsize) r * cols,
        cols);
  }
  w->t.name = (gchar *) "w";
  w->t.dtype = dtype;
  w->t.n_dims = 2;
  w->t.ne[0] = cols;
  w->t.ne[1] = rows;
  w->t.ne[2] = w->t.ne[3] = 1;
  w->t.data = w->data;
  w->t.nbytes = rb * rows;
  g_free (src);
  return w;
}

static void
weight_free (Weight * w)
{
  g_free (w->data);
  g_free (w->deq);
  g_free (w);
}

/* --- rmsnorm --- */

static void
naive_rmsnorm (double *out, const float *x, const float *w, guint n, double eps)
{
  double ss = 0;

  for (guint i = 0; i < n; i++)
    ss += (double) x[i] * x[i];
  ss = 1.0 / sqrt (ss / n + eps);
  for (guint i = 0; i < n; i++)
    out[i] = x[i] * ss * w[i];
}

GST_START_TEST (test_rmsnorm)
{
  const guint sizes[] = { 1, 7, 8, 33, 64, 257, 1000, 4096 };
  const LlmDType dtypes[] = { LLM_DTYPE_F32, LLM_DTYPE_F16, LLM_DTYPE_BF16 };

  for (guint s = 0; s < G_N_ELEMENTS (sizes); s++) {
    for (guint d = 0; d < G_N_ELEMENTS (dtypes); d++) {
      guint n = sizes[s];
      Weight *w = weight_new (dtypes[d], 1, n);
      float *x = g_new (float, n), *out = g_new (float, n);
      double *want = g_new (double, n);

      w->t.n_dims = 1;
      fill_random (x, n, 3.0f);
      llm_rmsnorm (out, x, &w->t, n, 1e-5f);
      naive_rmsnorm (want, x, w->deq, n, 1e-5);
      check_close (out, want, n, 1e-5, 1e-6, "rmsnorm");

      /* In place. */
      llm_rmsnorm (x, x, &w->t, n, 1e-5f);
      fail_unless (memcmp (x, out, n * sizeof (float)) == 0);
      g_free (x);
      g_free (out);
      g_free (want);
      weight_free (w);
    }
  }
}

GST_END_TEST;

GST_START_TEST (test_rmsnorm_heads)
{
  /* n_heads, head_dim: Gemma 3 270M's queries and key first */
  const guint shapes[][2] = { {4, 256}, {1, 256}, {3, 7}, {8, 64}, {2, 1} };

  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++) {
    guint nh = shapes[s][0], hd = shapes[s][1];
    Weight *w = weight_new (LLM_DTYPE_F32, 1, hd);
    float *x = g_new (float, nh * hd);
    double *want = g_new (double, nh * hd);

    w->t.n_dims = 1;
    fill_random (x, nh * hd, 5.0f);
    /* heads of very different scales: each is normalized on its own */
    for (guint i = 0; i < hd; i++)
      x[i] *= 100.0f;
    for (guint h = 0; h < nh; h++)
      naive_rmsnorm (want + h * hd, x + h * hd, w->deq, hd, 1e-6);
    llm_rmsnorm_heads (x, nh, hd, &w->t, 1e-6f);
    check_close (x, want, nh * hd, 1e-5, 1e-6, "rmsnorm_heads");
    g_free (x);
    g_free (want);
    weight_free (w);
  }
}

GST_END_TEST;

/* --- rope --- */

static void
naive_rope (double *out, const float *x, guint n_heads, guint head_dim,
    guint pos, double theta, gboolean interleaved)
{
  guint half = head_dim / 2;

  for (guint h = 0; h < n_heads; h++) {
    const float *xh = x + h * head_dim;
    double *oh = out + h * head_dim;

    for (guint i = 0; i < half; i++) {
      double a = pos * pow (theta, -2.0 * i / head_dim);
      guint i0 = interleaved ? 2 * i : i;
      guint i1 = interleaved ? 2 * i + 1 : i + half;

      oh[i0] = xh[i0] * cos (a) - xh[i1] * sin (a);
      oh[i1] = xh[i0] * sin (a) + xh[i1] * cos (a);
    }
  }
}

GST_START_TEST (test_rope)
{
  const guint shapes[][2] = { {1, 2}, {8, 8}, {4, 8}, {3, 6}, {2, 64},
  {5, 128}
  };
  const guint positions[] = { 0, 1, 2, 17, 511, 4000 };

  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++) {
    for (guint p = 0; p < G_N_ELEMENTS (positions); p++) {
      for (gint style = 0; style < 2; style++) {
        guint nh = shapes[s][0], hd = shapes[s][1], n = nh * hd;
        guint pos = positions[p];
        float *x = g_new (float, n), *y = g_new (float, n);
        float *cs = g_new (float, hd / 2), *sn = g_new (float, hd / 2);
        double *want = g_new (double, n);

        fill_random (x, n, 2.0f);
        memcpy (y, x, n * sizeof (float));
        naive_rope (want, x, nh, hd, pos, 10000.0, style);
        llm_rope (x, nh, hd, pos, 10000.0f, style);
        /* The f32 angle pos * inv_freq is off by up to pos * 2^-24. */
        check_close (x, want, n, 0, 1e-5 + pos * 4e-7, "rope");

        /* Table + apply is the same computation. */
        llm_rope_table (cs, sn, hd, pos, 10000.0f);
        llm_rope_apply (y, nh, hd, cs, sn, style);
        fail_unless (memcmp (x, y, n * sizeof (float)) == 0,
            "rope table differs from llm_rope");
        g_free (x);
        g_free (y);
        g_free (cs);
        g_free (sn);
        g_free (want);
      }
    }
  }
}

GST_END_TEST;

GST_START_TEST (test_rope_styles_are_a_permutation)
{
  /* Rotate-half on a head equals interleaved on the same head with its
   * dimensions permuted (i -> 2i, i + d/2 -> 2i + 1). */
  guint nh = 3, hd = 8, n = nh * hd;
  float x[24], xi[24], back[24];

  fill_random (x, n, 1.0f);
  for (guint h = 0; h < nh; h++)
    for (guint i = 0; i < hd / 2; i++) {
      xi[h * hd + 2 * i] = x[h * hd + i];
      xi[h * hd + 2 * i + 1] = x[h * hd + i + hd / 2];
    }
  llm_rope (x, nh, hd, 7, 10000.0f, FALSE);
  llm_rope (xi, nh, hd, 7, 10000.0f, TRUE);
  for (guint h = 0; h < nh; h++)
    for (guint i = 0; i < hd / 2; i++) {
      back[h * hd + i] = xi[h * hd + 2 * i];
      back[h * hd + i + hd / 2] = xi[h * hd + 2 * i + 1];
    }
  fail_unless (memcmp (x, back, sizeof (x)) == 0);
}

GST_END_TEST;

/* --- softmax, swiglu --- */

GST_START_TEST (test_softmax)
{
  const guint sizes[] = { 1, 2, 7, 64, 513, 5000 };
  const float scales[] = { 1.0f, 30.0f, 1000.0f };

  for (guint s = 0; s < G_N_ELEMENTS (sizes); s++) {
    for (guint k = 0; k < G_N_ELEMENTS (scales); k++) {
      guint n = sizes[s];
      float *x = g_new (float, n);
      double *want = g_new (double, n), max = -INFINITY, sum = 0;

      fill_random (x, n, scales[k]);
      for (guint i = 0; i < n; i++)
        max = MAX (max, x[i]);
      for (guint i = 0; i < n; i++)
        sum += want[i] = exp (x[i] - max);
      for (guint i = 0; i < n; i++)
        want[i] /= sum;
      llm_softmax (x, n);
      check_close (x, want, n, 1e-5, 1e-9, "softmax");
      g_free (x);
      g_free (want);
    }
  }
}

GST_END_TEST;

GST_START_TEST (test_softmax_unscaled)
{
  /* exp(x - max) over the whole useful range, element by element: the
   * vectorized exp is within a few ulp of exp(). */
  guint n = 4001;
  float *x = g_new (float, n);
  double *want = g_new (double, n), sum = 0;
  float got_sum;

  for (guint i = 0; i < n; i++)
    x[i] = -87.0f + 87.0f * i / (n - 1);
  for (guint i = 0; i < n; i++)
    sum += want[i] = exp ((double) x[i]);
  got_sum = llm_softmax_unscaled (x, n);
  check_close (x, want, n, 5e-7, 0, "exp");
  fail_unless (fabs (got_sum - sum) <= 1e-6 * sum);

  /* Masked (-inf) and far-below-max scores weigh nothing. */
  {
    float y[6] = { 3.0f, -INFINITY, 1e4f, -1e30f, 9999.0f, 1e4f };

    llm_softmax (y, 6);
    /* Weights below e^-87 are exact zeros, never denormals. */
    fail_unless (y[0] == 0.0f && y[1] == 0.0f && y[3] == 0.0f);
    fail_unless (fabs (y[2] - 1 / (2 + exp (-1.0))) < 1e-6);
    fail_unless (y[2] == y[5]);
    fail_unless (fabs (y[4] - exp (-1.0) / (2 + exp (-1.0))) < 1e-6);
  }
  {
    /* NaN in, NaN out (not a silent zero). */
    float z[3] = { 0.0f, NAN, -1.0f }, g[2] = { NAN, 1.0f }, u[2] = { 1, 1 };

    llm_softmax_unscaled (z, 3);
    fail_unless (isnan (z[1]) && z[0] == 1.0f);
    llm_swiglu (g, g, u, 2);
    fail_unless (isnan (g[0]) && isfinite (g[1]));
  }
  g_free (x);
  g_free (want);
}

GST_END_TEST;

GST_START_TEST (test_swiglu)
{
  const guint sizes[] = { 1, 5, 172, 1001 };

  for (guint s = 0; s < G_N_ELEMENTS (sizes); s++) {
    guint n = sizes[s];
    float *g = g_new (float, n), *u = g_new (float, n), *o = g_new (float, n);
    double *want = g_new (double, n);

    fill_random (g, n, 20.0f);
    fill_random (u, n, 3.0f);
    /* Far tails: silu(g) -> g above, -> 0 below. */
    g[0] = 100.0f;
    if (n > 1)
      g[1] = -100.0f;
    if (n > 2)
      g[2] = -1e4f;
    for (guint i = 0; i < n; i++)
      want[i] = g[i] / (1.0 + exp (-(double) g[i])) * u[i];
    llm_swiglu (o, g, u, n);
    check_close (o, want, n, 1e-5, 1e-7, "swiglu");
    /* The forward pass writes the product over the gate. */
    llm_swiglu (g, g, u, n);
    fail_unless (memcmp (g, o, n * sizeof (float)) == 0);
    g_free (g);
    g_free (u);
    g_free (o);
    g_free (want);
  }
}

GST_END_TEST;

static double
naive_gelu_tanh (double g)
{
  return 0.5 * g * (1.0 + tanh (sqrt (2.0 / G_PI) * (g + 0.044715 * g * g *
              g)));
}

GST_START_TEST (test_geglu)
{
  const guint sizes[] = { 1, 5, 172, 2048 };

  for (guint s = 0; s < G_N_ELEMENTS (sizes); s++) {
    guint n = sizes[s];
    float *g = g_new (float, n), *u = g_new (float, n), *o = g_new (float, n);
    double *want = g_new (double, n);

    fill_random (g, n, 8.0f);
    fill_random (u, n, 3.0f);
    /* Far tails: gelu(g) -> g above, -> 0 below, no NaN from inf / inf. */
    g[0] = 100.0f;
    if (n > 1)
      g[1] = -100.0f;
    if (n > 2)
      g[2] = -1e20f;
    if (n > 3)
      g[3] = 1e20f;
    if (n > 4)
      g[4] = 0.0f;
    for (guint i = 0; i < n; i++)
      want[i] = naive_gelu_tanh (g[i]) * u[i];
    llm_geglu (o, g, u, n);
    /* around g = -3 gelu is a small difference: absolute error there */
    check_close (o, want, n, 1e-5, 1e-6, "geglu");
    /* The forward pass writes the product over the gate. */
    llm_geglu (g, g, u, n);
    fail_unless (memcmp (g, o, n * sizeof (float)) == 0);
    g_free (g);
    g_free (u);
    g_free (o);
    g_free (want);
  }
  {
    float z[2] = { NAN, 1.0f }, u[2] = { 1, 1 };

    llm_geglu (z, z, u, 2);
    fail_unless (isnan (z[0]) && isfinite (z[1]));
  }
}

GST_END_TEST;

/* --- matvec, matmul, get_row --- */

typedef struct
{
  LlmDType dtype;
  guint rows, cols;
} MatShape;

static const MatShape mat_shapes[] = {
  {LLM_DTYPE_F32, 1, 1}, {LLM_DTYPE_F32, 7, 3}, {LLM_DTYPE_F32, 33, 65},
  {LLM_DTYPE_F32, 512, 64}, {LLM_DTYPE_F32, 600, 512},
  {LLM_DTYPE_F16, 5, 9}, {LLM_DTYPE_F16, 172, 64}, {LLM_DTYPE_F16, 600, 512},
  {LLM_DTYPE_BF16, 3, 17}, {LLM_DTYPE_BF16, 64, 172},
  {LLM_DTYPE_BF16, 513, 512},
  {LLM_DTYPE_Q8_0, 1, 32}, {LLM_DTYPE_Q8_0, 31, 96},
  {LLM_DTYPE_Q8_0, 600, 512},
  {LLM_DTYPE_Q4_0, 3, 32}, {LLM_DTYPE_Q4_0, 65, 160},
  {LLM_DTYPE_Q4_0, 600, 512},
};

/* Tolerance for a dot product of @n terms: relative to sum |w x|. */
static void
check_dot (const float *got, const float *w, const float *x, guint rows,
    guint cols, const gchar * what)
{
  for (guint r = 0; r < rows; r++) {
    double want = 0, mag = 0;

    for (guint i = 0; i < cols; i++) {
      want += (double) w[(gsize) r * cols + i] * x[i];
      mag += fabs ((double) w[(gsize) r * cols + i] * x[i]);
    }
    fail_unless (fabs (got[r] - want) <= 2e-6 * mag + 1e-30,
        "%s: row %u of %u x %u is %.9g, want %.9g", what, r, rows, cols,
        got[r], want);
  }
}

GST_START_TEST (test_matvec)
{
  for (guint s = 0; s < G_N_ELEMENTS (mat_shapes); s++) {
    const MatShape *ms = &mat_shapes[s];
    Weight *w = weight_new (ms->dtype, ms->rows, ms->cols);
    float *x = g_new (float, ms->cols);
    float *out = g_new (float, ms->rows), *out4 = g_new (float, ms->rows);
    gchar *what = g_strdup_printf ("matvec %s", llm_dtype_name (ms->dtype));

    fill_random (x, ms->cols, 1.0f);
    llm_matvec (out, &w->t, x, 1);
    check_dot (out, w->deq, x, ms->rows, ms->cols, what);
    /* Threads split rows; each row is computed the same way. */
    llm_matvec (out4, &w->t, x, 4);
    fail_unless (memcmp (out, out4, ms->rows * sizeof (float)) == 0,
        "%s: 4 threads differ from 1", what);
    g_free (what);
    g_free (x);
    g_free (out);
    g_free (out4);
    weight_free (w);
  }
}

GST_END_TEST;

GST_START_TEST (test_matmul)
{
  const guint token_counts[] = { 1, 2, 5, 64 };

  for (guint s = 0; s < G_N_ELEMENTS (mat_shapes); s++) {
    for (guint k = 0; k < G_N_ELEMENTS (token_counts); k++) {
      const MatShape *ms = &mat_shapes[s];
      guint nt = token_counts[k];
      Weight *w = weight_new (ms->dtype, ms->rows, ms->cols);
      float *x = g_new (float, (gsize) nt * ms->cols);
      float *out = g_new (float, (gsize) nt * ms->rows);
      float *out3 = g_new (float, (gsize) nt * ms->rows);
      float *one = g_new (float, ms->rows);
      gchar *what = g_strdup_printf ("matmul %s x %u",
          llm_dtype_name (ms->dtype), nt);

      fill_random (x, (gsize) nt * ms->cols, 1.0f);
      llm_matmul (out, &w->t, x, nt, 1);
      llm_matmul (out3, &w->t, x, nt, 3);
      fail_unless (memcmp (out, out3, (gsize) nt * ms->rows *
              sizeof (float)) == 0, "%s: 3 threads differ from 1", what);
      for (guint t = 0; t < nt; t++) {
        const float *xt = x + (gsize) t * ms->cols;
        const float *ot = out + (gsize) t * ms->rows;

        check_dot (ot, w->deq, xt, ms->rows, ms->cols, what);
        llm_matvec (one, &w->t, xt, 1);
        if (ms->dtype == LLM_DTYPE_F32) {
          /* Same kernel: bit for bit, which keeps batched prefill equal
           * to token-by-token decoding. */
          fail_unless (memcmp (one, ot, ms->rows * sizeof (float)) == 0,
              "%s: token %u differs from matvec", what, t);
        } else {
          double *want = g_new (double, ms->rows);

          for (guint r = 0; r < ms->rows; r++)
            want[r] = one[r];
          check_close (ot, want, ms->rows, 1e-4, 1e-5, what);
          g_free (want);
        }
      }
      g_free (what);
      g_free (x);
      g_free (out);
      g_free (out3);
      g_free (one);
      weight_free (w);
    }
  }
}

GST_END_TEST;

GST_START_TEST (test_get_row)
{
  for (guint s = 0; s < G_N_ELEMENTS (mat_shapes); s++) {
    const MatShape *ms = &mat_shapes[s];
    Weight *w = weight_new (ms->dtype, ms->rows, ms->cols);
    float *row = g_new (float, ms->cols);
    guint r = ms->rows - 1;

    llm_get_row (row, &w->t, r);
    fail_unless (memcmp (row, w->deq + (gsize) r * ms->cols,
            ms->cols * sizeof (float)) == 0);
    g_free (row);
    weight_free (w);
  }
}

GST_END_TEST;

/* --- attention --- */

/* @window 0: every earlier position; else the last @window of them. */
static void
naive_attention (double *out, const float *q, const float *k, const float *v,
    guint n_q, guint q_pos0, guint n_heads, guint n_kv_heads, guint head_dim,
    gsize kv_stride, double scale, guint window)
{
  guint group = n_heads / n_kv_heads;
  double *s = g_new (double, q_pos0 + n_q);

  for (guint i = 0; i < n_q; i++) {
    guint len = q_pos0 + i + 1;
    guint p0 = window > 0 && len > window ? len - window : 0;

    for (guint h = 0; h < n_heads; h++) {
      const float *qh = q + ((gsize) i * n_heads + h) * head_dim;
      gsize off = (gsize) (h / group) * head_dim;
      double *oh = out + ((gsize) i * n_heads + h) * head_dim;
      double max = -INFINITY, sum = 0;

      for (guint p = p0; p < len; p++) {
        double d = 0;

        for (guint j = 0; j < head_dim; j++)
          d += (double) qh[j] * k[p * kv_stride + off + j];
        s[p] = d * scale;
        max = MAX (max, s[p]);
      }
      for (guint p = p0; p < len; p++)
        sum += s[p] = exp (s[p] - max);
      for (guint j = 0; j < head_dim; j++) {
        double acc = 0;

        for (guint p = p0; p < len; p++)
          acc += s[p] / sum * v[p * kv_stride + off + j];
        oh[j] = acc;
      }
    }
  }
  g_free (s);
}

GST_START_TEST (test_attention)
{
  /* n_heads, n_kv_heads, head_dim, n_q, q_pos0 */
  const guint combos[][5] = {
    {1, 1, 4, 1, 0}, {1, 1, 1, 3, 0}, {8, 4, 8, 1, 0}, {8, 4, 8, 5, 0},
    {8, 4, 8, 1, 37}, {8, 4, 8, 9, 20}, {4, 1, 16, 7, 3}, {6, 2, 5, 3, 10},
    {6, 6, 3, 4, 2}, {32, 8, 64, 2, 100}, {2, 2, 128, 17, 300},
  };

  for (guint c = 0; c < G_N_ELEMENTS (combos); c++) {
    guint nh = combos[c][0], nkv = combos[c][1], hd = combos[c][2];
    guint n_q = combos[c][3], pos0 = combos[c][4];
    guint n_pos = pos0 + n_q;
    gsize q_dim = (gsize) nh * hd;
    /* Padding between positions checks that kv_stride is honoured. */
    gsize kv_stride = (gsize) nkv * hd + 3;
    float *q = g_new (float, n_q * q_dim);
    float *k = g_new (float, n_pos * kv_stride);
    float *v = g_new (float, n_pos * kv_stride);
    float *out = g_new (float, n_q * q_dim);
    float *out2 = g_new (float, n_q * q_dim);
    float *scratch = g_new (float, n_pos);
    double *want = g_new (double, n_q * q_dim);
    guint group = nh / nkv;

    fill_random (q, n_q * q_dim, 2.0f);
    fill_random (k, n_pos * kv_stride, 2.0f);
    fill_random (v, n_pos * kv_stride, 1.0f);
    llm_attention_causal (out, q, k, v, n_q, pos0, nh, nkv, hd, kv_stride,
        scratch);
    naive_attention (want, q, k, v, n_q, pos0, nh, nkv, hd, kv_stride,
        1.0 / sqrt (hd), 0);
    check_close (out, want, n_q * q_dim, 1e-4, 1e-5, "attention");

    /* Causality: keys after the last query's position are never read. */
    for (gsize i = 0; i < kv_stride; i++)
      k[(n_pos - 1) * kv_stride + i] = v[(n_pos - 1) * kv_stride + i] = NAN;
    if (n_q > 1) {
      llm_attention_causal (out2, q, k, v, n_q - 1, pos0, nh, nkv, hd,
          kv_stride, scratch);
      fail_unless (memcmp (out, out2, (n_q - 1) * q_dim * sizeof (float))
          == 0, "queries before the last changed with the last key");
    }

    /* Head groups one at a time, as threads take them. */
    fill_random (k + (n_pos - 1) * kv_stride, kv_stride, 2.0f);
    fill_random (v + (n_pos - 1) * kv_stride, kv_stride, 1.0f);
    llm_attention_causal (out, q, k, v, n_q, pos0, nh, nkv, hd, kv_stride,
        scratch);
    for (guint g = 0; g < nkv; g++) {
      gsize qo = (gsize) g * group * hd, ko = (gsize) g *hd;

      llm_attention_causal_strided (out2 + qo, q_dim, q + qo, q_dim, k + ko,
          v + ko, kv_stride, n_q, pos0, group, 1, hd, 1.0f / sqrtf (hd), 0,
          scratch);
    }
    fail_unless (memcmp (out, out2, n_q * q_dim * sizeof (float)) == 0,
        "per-group strided attention differs");

    g_free (q);
    g_free (k);
    g_free (v);
    g_free (out);
    g_free (out2);
    g_free (scratch);
    g_free (want);
  }
}

GST_END_TEST;

/* Sliding windows (Gemma 3's local layers) and a scale of one's own. */
GST_START_TEST (test_attention_window)
{
  /* n_heads, n_kv_heads, head_dim, n_q, q_pos0, window */
  const guint combos[][6] = {
    {4, 1, 256, 1, 600, 512}, {4, 1, 256, 64, 480, 512}, {2, 1, 8, 9, 0, 4},
    {2, 2, 16, 5, 3, 1}, {8, 4, 8, 3, 10, 100}, {6, 2, 5, 20, 7, 6},
  };

  for (guint c = 0; c < G_N_ELEMENTS (combos); c++) {
    guint nh = combos[c][0], nkv = combos[c][1], hd = combos[c][2];
    guint n_q = combos[c][3], pos0 = combos[c][4], window = combos[c][5];
    guint n_pos = pos0 + n_q;
    gsize q_dim = (gsize) nh * hd;
    gsize kv_stride = (gsize) nkv * hd + 1;     /* padded */
    float *q = g_new (float, n_q * q_dim);
    float *k = g_new (float, n_pos * kv_stride);
    float *v = g_new (float, n_pos * kv_stride);
    float *out = g_new (float, n_q * q_dim);
    float *out2 = g_new (float, n_q * q_dim);
    float *scratch = g_new (float, n_pos);
    double *want = g_new (double, n_q * q_dim);
    float scale = 0.3f;

    fill_random (q, n_q * q_dim, 2.0f);
    fill_random (k, n_pos * kv_stride, 2.0f);
    fill_random (v, n_pos * kv_stride, 1.0f);
    llm_attention_causal_strided (out, q_dim, q, q_dim, k, v, kv_stride, n_q,
        pos0, nh, nkv, hd, scale, window, scratch);
    naive_attention (want, q, k, v, n_q, pos0, nh, nkv, hd, kv_stride,
        scale, window);
    check_close (out, want, n_q * q_dim, 1e-4, 1e-5, "windowed attention");

    /* Positions before the first query's window are never read. */
    if (n_pos > window + n_q) {
      for (gsize i = 0; i < (n_pos - window - n_q + 1) * kv_stride; i++)
        k[i] = v[i] = NAN;
      llm_attention_causal_strided (out2, q_dim, q, q_dim, k, v, kv_stride,
          n_q, pos0, nh, nkv, hd, scale, window, scratch);
      fail_unless (memcmp (out, out2, n_q * q_dim * sizeof (float)) == 0,
          "a position outside the window was read");
    }
    /* A window as long as the context is no window. */
    fill_random (k, n_pos * kv_stride, 2.0f);
    fill_random (v, n_pos * kv_stride, 1.0f);
    llm_attention_causal_strided (out, q_dim, q, q_dim, k, v, kv_stride, n_q,
        pos0, nh, nkv, hd, scale, 0, scratch);
    llm_attention_causal_strided (out2, q_dim, q, q_dim, k, v, kv_stride,
        n_q, pos0, nh, nkv, hd, scale, n_pos, scratch);
    fail_unless (memcmp (out, out2, n_q * q_dim * sizeof (float)) == 0);

    g_free (q);
    g_free (k);
    g_free (v);
    g_free (out);
    g_free (out2);
    g_free (scratch);
    g_free (want);
  }
}

GST_END_TEST;

GST_START_TEST (test_attention_single_key)
{
  /* At position 0 a query sees one key: the output is that value. */
  float q[8], k[8], v[8], out[8], scratch[1];

  fill_random (q, 8, 100.0f);
  fill_random (k, 8, 100.0f);
  fill_random (v, 8, 1.0f);
  llm_attention_causal (out, q, k, v, 1, 0, 2, 1, 4, 4, scratch);
  for (guint i = 0; i < 8; i++)
    fail_unless (out[i] == v[i % 4]);
}

GST_END_TEST;

static Suite *
cpu_ops_suite (void)
{
  Suite *s = suite_create ("cpu-ops");
  TCase *tc = tcase_create ("general");

  rng = g_rand_new_with_seed (20240611);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_rmsnorm);
  tcase_add_test (tc, test_rmsnorm_heads);
  tcase_add_test (tc, test_rope);
  tcase_add_test (tc, test_rope_styles_are_a_permutation);
  tcase_add_test (tc, test_softmax);
  tcase_add_test (tc, test_softmax_unscaled);
  tcase_add_test (tc, test_swiglu);
  tcase_add_test (tc, test_geglu);
  tcase_add_test (tc, test_matvec);
  tcase_add_test (tc, test_matmul);
  tcase_add_test (tc, test_get_row);
  tcase_add_test (tc, test_attention);
  tcase_add_test (tc, test_attention_window);
  tcase_add_test (tc, test_attention_single_key);
  return s;
}

GST_CHECK_MAIN (cpu_ops);
