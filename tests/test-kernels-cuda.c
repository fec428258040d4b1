/* LLMasOS - the CUDA kernels against their CPU twins in core/.
 *
 * Every kernel runs on random inputs of several shapes, odd ones included,
 * and its output is compared with the CPU implementation. Element-wise
 * kernels by the relative L2 error |got - want| / |want|. Kernels that sum
 * many terms of both signs (matvec, matmul, attention) by the error
 * relative to the magnitude of those terms, |got - want| / |m| with m_r =
 * sum |w_rc x_c| (for attention sum_p p_p |v_p|): an output that cancels
 * to near zero would make a plain relative error meaningless, while any
 * real bug still gives errors around |want|, orders of magnitude above
 * the bounds. The bounds, per kernel and dtype:
 *
 * - embedding_gather: 1e-7 (relative L2). Both dequantize the same stored
 *   row as d * q.
 * - rmsnorm_forward, swiglu_forward, rope_apply: 2e-6 (relative L2). Same
 *   formulas in F32, a sum or an expf that may differ in its last bits
 *   (rope's angles are computed identically, see kernels/rope_apply.cu).
 * - matvec (F32, F16, BF16, Q8_0, Q4_0) against llm_matvec(): 1e-5 of the
 *   magnitude for every dtype: both read the same stored weights, so only
 *   the order of the F32 additions differs.
 * - matvec against the unquantized F32 source weights (the stored format's
 *   own error, a check of the block layouts that does not rely on core/),
 *   relative L2 on the shapes of 256 rows and more: F32 1e-5, F16 1e-3,
 *   BF16 8e-3, Q8_0 1.5e-2, Q4_0 0.1 (uniform random weights give about
 *   1e-7, 1.8e-4, 1.5e-3, 3.7e-3 and 6.3e-2 on the CPU).
 * - attention_decode (F32 and F16 caches; the CPU gets the F16-rounded
 *   keys and values): 1e-5 of the magnitude.
 * - argmax: exact (ties to the lowest index, NaN skipped).
 * - convert_f32: bit-exact against llm_f32_to_f16 / llm_f32_to_bf16.
 * - matmul_half (cuBLAS) against llm_matmul() on the same F16/BF16 weights
 *   and F16/BF16-rounded activations: 1e-5 of the magnitude.
 *
 * Without a usable GPU the program says why and exits 77 (meson: SKIP).
 * No model files are needed.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <gst/check/gstcheck.h>
#include <math.h>
#include <string.h>

#include "llm-attention.h"
#include "llm-cpu-ops.h"
#include "llm-cuda.h"
#include "llm-error.h"
#include "test-cuda-common.h"

static LlmCudaDeviceInfo device;

/* --- helpers (the shared ones: test-cuda-common.h) --- */

static LlmTensor
tensor_2d (LlmDType dtype, const guint8 * data, guint rows, guint cols)
{
  LlmTensor t = { 0 };
  guint64 rb = 0;

  fail_unless (llm_dtype_bytes_for (dtype, cols, &rb));
  t.name = (gchar *) "t";
  t.dtype = dtype;
  t.n_dims = 2;
  t.ne[0] = cols;
  t.ne[1] = rows;
  t.ne[2] = t.ne[3] = 1;
  t.data = data;
  t.nbytes = rb * rows;
  return t;
}

/* @rows x @cols random weights in [-1, 1] stored as @dtype; @src gets the
 * F32 values they were made from. Returns the stored bytes. */
static guint8 *
make_weights (LlmDType dtype, guint rows, guint cols, float *src,
    gsize * bytes)
{
  guint64 rb = 0;
  guint8 *data;

  fail_unless (llm_dtype_bytes_for (dtype, cols, &rb));
  data = g_malloc (MAX (rb * rows, 1));
  fill_random (src, (gsize) rows * cols, 1.0f);
  for (guint r = 0; r < rows; r++)
    llm_quantize_row (dtype, src + (gsize) r * cols, data + r * rb, cols);
  *bytes = rb * rows;
  return data;
}

/* --- device, memory --- */

GST_START_TEST (test_device_memory)
{
  GError *err = NULL;
  gsize n = 1000003;
  guint8 *a = g_malloc (n), *b = g_malloc0 (n);
  gpointer d;
  size_t free_b = 0, total_b = 0;
  gchar *want;

  g_print ("CUDA device %d: %s, compute capability %d.%d, %d SMs, "
      "%.1f GiB (%.1f free), L2 %.0f MiB, driver %d, runtime %d\n",
      device.index, device.name, device.cc_major, device.cc_minor,
      device.n_sm, device.total_bytes / 1073741824.0,
      device.free_bytes / 1073741824.0, device.l2_bytes / 1048576.0,
      device.driver_version, device.runtime_version);
  fail_unless (device.cc_major >= 9);
  fail_unless (llm_cuda_mem_info (&free_b, &total_b, &err));
  fail_unless (total_b == device.total_bytes && free_b <= total_b);

  /* Round trip through the device, synchronous and on a stream. */
  for (gsize i = 0; i < n; i++)
    a[i] = (guint8) g_rand_int (rng);
  d = dev_from (a, n);
  fail_unless (llm_cuda_copy (b, d, n, LLM_CUDA_DEVICE_TO_HOST, stream,
          &err));
  fail_unless (llm_cuda_stream_sync (stream, &err));
  fail_unless (memcmp (a, b, n) == 0);
  fail_unless (llm_cuda_memset (d, 0xab, n, stream, &err));
  to_host (b, d, n);
  for (gsize i = 0; i < n; i++)
    fail_unless (b[i] == 0xab);
  llm_cuda_free (d);
  llm_cuda_free (NULL);

  /* Out of memory: a clear error naming the bytes, and nothing sticky. */
  fail_unless (llm_cuda_alloc (device.total_bytes * 2, &err) == NULL);
  fail_unless (g_error_matches (err, LLM_ERROR, LLM_ERROR_NO_MEMORY));
  want = g_strdup_printf ("cannot allocate %" G_GSIZE_FORMAT " bytes",
      device.total_bytes * 2);
  fail_unless (strstr (err->message, want) != NULL, "message: %s",
      err->message);
  g_print ("out of memory reads: %s\n", err->message);
  g_clear_error (&err);
  g_free (want);
  fail_unless (llm_cuda_stream_sync (stream, &err));
  fail_unless (llm_cuda_check (&err));

  /* Events around a copy. */
  {
    LlmCudaEvent *e0 = llm_cuda_event_new (&err), *e1;
    float ms = -1.0f;

    fail_unless (e0 != NULL);
    e1 = llm_cuda_event_new (&err);
    fail_unless (e1 != NULL);
    d = dev_alloc (n);
    fail_unless (llm_cuda_event_record (e0, stream, &err));
    fail_unless (llm_cuda_memset (d, 0, n, stream, &err));
    fail_unless (llm_cuda_event_record (e1, stream, &err));
    fail_unless (llm_cuda_event_elapsed_ms (e0, e1, &ms, &err));
    fail_unless (ms >= 0.0f);
    llm_cuda_free (d);
    llm_cuda_event_free (e0);
    llm_cuda_event_free (e1);
  }

  /* Page-locked host memory. */
  d = llm_cuda_host_alloc (4096, &err);
  fail_unless (d != NULL);
  llm_cuda_host_free (d);

  g_free (a);
  g_free (b);
}

GST_END_TEST;

/* --- embedding_gather --- */

GST_START_TEST (test_embedding_gather)
{
  static const LlmDType dtypes[] = { LLM_DTYPE_F32, LLM_DTYPE_F16,
    LLM_DTYPE_BF16, LLM_DTYPE_Q8_0, LLM_DTYPE_Q4_0
  };
  static const guint dims[] = { 7, 32, 96, 4096 };
  double worst = 0.0;

  for (guint d = 0; d < G_N_ELEMENTS (dtypes); d++) {
    for (guint s = 0; s < G_N_ELEMENTS (dims); s++) {
      guint dim = dims[s], n_vocab = 50, n_tok = 6;
      gint32 tokens[6] = { 0, 49, 7, 7, -1, 50 };       /* 2 out of range */
      float *src, *got, *want;
      guint8 *table;
      gsize bytes;
      LlmTensor t;
      gpointer dt, dtok, dout;
      gchar *what;

      if (dim % llm_dtype_block_elems (dtypes[d]) != 0)
        continue;
      src = g_new (float, (gsize) n_vocab * dim);
      table = make_weights (dtypes[d], n_vocab, dim, src, &bytes);
      t = tensor_2d (dtypes[d], table, n_vocab, dim);
      got = g_new (float, (gsize) n_tok * dim);
      want = g_new0 (float, (gsize) n_tok * dim);
      for (guint i = 0; i < n_tok; i++)
        if (tokens[i] >= 0 && (guint) tokens[i] < n_vocab)
          llm_get_row (want + (gsize) i * dim, &t, tokens[i]);

      dt = dev_from (table, bytes);
      dtok = dev_from (tokens, sizeof (tokens));
      dout = dev_alloc ((gsize) n_tok * dim * sizeof (float));
      llm_cuda_embedding_gather (dout, dt, dtypes[d], n_vocab, dim, dtok,
          n_tok, stream);
      to_host (got, dout, (gsize) n_tok * dim * sizeof (float));
      what = g_strdup_printf ("embedding_gather %s dim %u",
          llm_dtype_name (dtypes[d]), dim);
      check_rel (got, want, (gsize) n_tok * dim, 1e-7, &worst, what);

      llm_cuda_free (dt);
      llm_cuda_free (dtok);
      llm_cuda_free (dout);
      g_free (what);
      g_free (src);
      g_free (table);
      g_free (got);
      g_free (want);
    }
  }
  g_print ("embedding_gather: worst relative L2 error %.3g (bound 1e-7)\n",
      worst);
}

GST_END_TEST;

/* --- rmsnorm_forward --- */

GST_START_TEST (test_rmsnorm_forward)
{
  static const LlmDType wtypes[] = { LLM_DTYPE_F32, LLM_DTYPE_F16,
    LLM_DTYPE_BF16
  };
  static const guint sizes[] = { 1, 7, 33, 512, 4096, 5000 };
  double worst = 0.0;

  for (guint d = 0; d < G_N_ELEMENTS (wtypes); d++) {
    for (guint s = 0; s < G_N_ELEMENTS (sizes); s++) {
      guint n = sizes[s], rows = 3;
      float *x = g_new (float, (gsize) rows * n);
      float *wsrc = g_new (float, n);
      float *got = g_new (float, (gsize) rows * n);
      float *want = g_new (float, (gsize) rows * n);
      gsize wbytes;
      guint8 *w = make_weights (wtypes[d], 1, n, wsrc, &wbytes);
      LlmTensor t = tensor_2d (wtypes[d], w, 1, n);
      gpointer dx, dw, dout;
      gchar *what;

      fill_random (x, (gsize) rows * n, 3.0f);
      for (guint r = 0; r < rows; r++)
        llm_rmsnorm (want + (gsize) r * n, x + (gsize) r * n, &t, n, 1e-5f);

      dx = dev_from (x, (gsize) rows * n * sizeof (float));
      dw = dev_from (w, wbytes);
      dout = dev_alloc ((gsize) rows * n * sizeof (float));
      llm_cuda_rmsnorm_forward (dout, dx, dw, wtypes[d], n, rows, 1e-5f,
          stream);
      to_host (got, dout, (gsize) rows * n * sizeof (float));
      what = g_strdup_printf ("rmsnorm %s n %u", llm_dtype_name (wtypes[d]),
          n);
      check_rel (got, want, (gsize) rows * n, 2e-6, &worst, what);

      /* In place. */
      llm_cuda_rmsnorm_forward (dx, dx, dw, wtypes[d], n, rows, 1e-5f,
          stream);
      to_host (got, dx, (gsize) rows * n * sizeof (float));
      check_rel (got, want, (gsize) rows * n, 2e-6, &worst, what);

      llm_cuda_free (dx);
      llm_cuda_free (dw);
      llm_cuda_free (dout);
      g_free (what);
      g_free (x);
      g_free (wsrc);
      g_free (w);
      g_free (got);
      g_free (want);
    }
  }
  g_print ("rmsnorm_forward: worst relative L2 error %.3g (bound 2e-6)\n",
      worst);
}

GST_END_TEST;

/* --- rope_apply --- */

GST_START_TEST (test_rope_apply)
{
  static const struct
  {
    guint n_heads, head_dim, pos0, n_tokens, pad;
    float theta;
  } cases[] = {
    {1, 2, 0, 1, 0, 10000.0f},
    {3, 6, 1, 1, 0, 10000.0f},
    {32, 128, 17, 1, 0, 500000.0f},
    {8, 64, 4095, 3, 5, 10000.0f},
    {5, 256, 1000, 7, 0, 1000000.0f},
    {2, 96, 131071, 2, 1, 10000.0f},
  };
  double worst = 0.0;

  for (guint c = 0; c < G_N_ELEMENTS (cases); c++) {
    for (gint il = 0; il < 2; il++) {
      guint nh = cases[c].n_heads, hd = cases[c].head_dim;
      guint nt = cases[c].n_tokens;
      gsize stride = (gsize) nh * hd + cases[c].pad, n = stride * nt;
      float *x = g_new (float, n), *want = g_new (float, n);
      float *got = g_new (float, n);
      gpointer dx;
      gchar *what;

      fill_random (x, n, 2.0f);
      memcpy (want, x, n * sizeof (float));
      for (guint t = 0; t < nt; t++)
        llm_rope (want + t * stride, nh, hd, cases[c].pos0 + t,
            cases[c].theta, il);

      dx = dev_from (x, n * sizeof (float));
      llm_cuda_rope_apply (dx, nt, stride, nh, hd, cases[c].pos0,
          cases[c].theta, il, stream);
      to_host (got, dx, n * sizeof (float));
      what = g_strdup_printf ("rope %s %ux%u pos %u",
          il ? "interleaved" : "rotate-half", nh, hd, cases[c].pos0);
      check_rel (got, want, n, 2e-6, &worst, what);
      /* The padding between rows is left alone. */
      for (guint t = 0; t < nt; t++)
        for (gsize i = (gsize) nh * hd; i < stride; i++)
          fail_unless (got[t * stride + i] == x[t * stride + i]);

      llm_cuda_free (dx);
      g_free (what);
      g_free (x);
      g_free (want);
      g_free (got);
    }
  }
  g_print ("rope_apply: worst relative L2 error %.3g (bound 2e-6)\n", worst);
}

GST_END_TEST;

/* --- swiglu_forward --- */

GST_START_TEST (test_swiglu_forward)
{
  static const gsize sizes[] = { 1, 3, 4, 1001, 14336 };
  double worst = 0.0;

  for (guint s = 0; s < G_N_ELEMENTS (sizes); s++) {
    for (guint off = 0; off < 2; off++) {
      /* off = 1 moves the pointers off 16-byte alignment (scalar path). */
      gsize n = sizes[s];
      float *g = g_new (float, n + 1), *u = g_new (float, n + 1);
      float *want = g_new (float, n), *got = g_new (float, n);
      float *dg, *du, *dout;
      gchar *what;

      fill_random (g, n + 1, 8.0f);
      fill_random (u, n + 1, 2.0f);
      llm_swiglu (want, g + off, u + off, n);
      dg = dev_from (g, (n + 1) * sizeof (float));
      du = dev_from (u, (n + 1) * sizeof (float));
      dout = dev_alloc ((n + 1) * sizeof (float));
      llm_cuda_swiglu_forward (dout + off, dg + off, du + off, n, stream);
      to_host (got, dout + off, n * sizeof (float));
      what = g_strdup_printf ("swiglu n %" G_GSIZE_FORMAT " offset %u", n,
          off);
      check_rel (got, want, n, 2e-6, &worst, what);
      /* In place over gate. */
      llm_cuda_swiglu_forward (dg + off, dg + off, du + off, n, stream);
      to_host (got, dg + off, n * sizeof (float));
      check_rel (got, want, n, 2e-6, &worst, what);

      llm_cuda_free (dg);
      llm_cuda_free (du);
      llm_cuda_free (dout);
      g_free (what);
      g_free (g);
      g_free (u);
      g_free (want);
      g_free (got);
    }
  }
  g_print ("swiglu_forward: worst relative L2 error %.3g (bound 2e-6)\n",
      worst);
}

GST_END_TEST;

/* --- matvec --- */

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

GST_START_TEST (test_matvec)
{
  static const LlmDType dtypes[] = { LLM_DTYPE_F32, LLM_DTYPE_F16,
    LLM_DTYPE_BF16, LLM_DTYPE_Q8_0, LLM_DTYPE_Q4_0
  };
  /* Odd columns (plain types only), rows not a multiple of the 8 a block
   * takes, 130 blocks a row (rows not 16-byte aligned: the in-place path
   * of the block formats), 40 blocks (a partial last chunk), and FFN-like
   * shapes. */
  static const struct
  {
    guint rows, cols;
  } shapes[] = {
    {1, 7}, {3, 33}, {5, 1001}, {1, 32}, {3, 64}, {17, 96}, {64, 4160},
    {5, 1280}, {257, 256}, {1000, 4096}, {512, 14336},
  };

  for (guint d = 0; d < G_N_ELEMENTS (dtypes); d++) {
    LlmDType dt = dtypes[d];
    double worst = 0.0, worst_src = 0.0;

    for (guint s = 0; s < G_N_ELEMENTS (shapes); s++) {
      guint rows = shapes[s].rows, cols = shapes[s].cols;
      float *src, *x, *want, *want_src, *got;
      double *mag;
      float *deq;
      guint8 *w;
      gsize bytes;
      LlmTensor t;
      gpointer dw, dx, dout;
      gchar *what;

      if (cols % llm_dtype_block_elems (dt) != 0)
        continue;
      src = g_new (float, (gsize) rows * cols);
      w = make_weights (dt, rows, cols, src, &bytes);
      t = tensor_2d (dt, w, rows, cols);
      x = g_new (float, cols);
      want = g_new (float, rows);
      want_src = g_new (float, rows);
      got = g_new (float, rows);
      mag = g_new (double, rows);
      deq = g_new (float, cols);
      fill_random (x, cols, 1.0f);
      llm_matvec (want, &t, x, 1);
      for (guint r = 0; r < rows; r++) {
        double acc = 0.0, m = 0.0;

        llm_get_row (deq, &t, r);
        for (guint c = 0; c < cols; c++) {
          acc += (double) src[(gsize) r * cols + c] * x[c];
          m += fabs ((double) deq[c] * x[c]);
        }
        want_src[r] = (float) acc;
        mag[r] = m;
      }

      dw = dev_from (w, bytes);
      dx = dev_from (x, cols * sizeof (float));
      dout = dev_alloc (rows * sizeof (float));
      llm_cuda_matvec (dout, dw, dt, dx, rows, cols, stream);
      to_host (got, dout, rows * sizeof (float));
      what = g_strdup_printf ("matvec %s %ux%u", llm_dtype_name (dt), rows,
          cols);
      check_mag (got, want, mag, rows, 1e-5, &worst, what);
      if (rows >= 256)
        check_rel (got, want_src, rows, source_bound (dt), &worst_src, what);

      llm_cuda_free (dw);
      llm_cuda_free (dx);
      llm_cuda_free (dout);
      g_free (what);
      g_free (src);
      g_free (w);
      g_free (x);
      g_free (want);
      g_free (want_src);
      g_free (got);
      g_free (mag);
      g_free (deq);
    }
    g_print ("matvec_%s: worst error %.3g of the magnitude against "
        "llm_matvec (bound 1e-5), relative L2 %.3g against the F32 source "
        "weights (bound %g)\n",
        llm_dtype_name (dt), worst, worst_src, source_bound (dt));
  }
}

GST_END_TEST;

/* --- attention_decode --- */

/* mag[h][d] = sum_p p_p |v_p[d]|, p the softmax of head h's scores, in
 * double. */
static void
attention_magnitude (double *mag, const float *q, const float *k,
    const float *v, guint n_pos, guint n_heads, guint n_kv_heads,
    guint head_dim, gsize stride)
{
  guint group = n_heads / n_kv_heads;
  double *p = g_new (double, n_pos);

  for (guint h = 0; h < n_heads; h++) {
    gsize kvo = (gsize) (h / group) * head_dim;
    double mx = -INFINITY, sum = 0.0;

    for (guint t = 0; t < n_pos; t++) {
      double sc = 0.0;

      for (guint d = 0; d < head_dim; d++)
        sc += (double) q[(gsize) h * head_dim + d] * k[t * stride + kvo + d];
      p[t] = sc / sqrt ((double) head_dim);
      mx = MAX (mx, p[t]);
    }
    for (guint t = 0; t < n_pos; t++) {
      p[t] = exp (p[t] - mx);
      sum += p[t];
    }
    for (guint d = 0; d < head_dim; d++) {
      double m = 0.0;

      for (guint t = 0; t < n_pos; t++)
        m += p[t] * fabs ((double) v[t * stride + kvo + d]);
      mag[(gsize) h * head_dim + d] = m / sum;
    }
  }
  g_free (p);
}

GST_START_TEST (test_attention_decode)
{
  static const struct
  {
    guint n_pos, n_heads, n_kv_heads, head_dim, pad;
    float q_scale;              /* > 1: peaked softmax */
  } cases[] = {
    {1, 1, 1, 8, 0, 1.0f},
    {5, 4, 2, 16, 0, 1.0f},
    {37, 8, 8, 64, 3, 1.0f},
    {300, 32, 8, 128, 0, 1.0f},
    {1000, 6, 2, 96, 0, 4.0f},
    {2049, 16, 1, 256, 0, 1.0f},
    {4096, 32, 8, 128, 0, 8.0f},
    {777, 12, 4, 80, 16, 2.0f},
  };
  static const LlmDType kv_types[] = { LLM_DTYPE_F32, LLM_DTYPE_F16 };
  double worst[2] = { 0.0, 0.0 };

  for (guint c = 0; c < G_N_ELEMENTS (cases); c++) {
    for (guint kt = 0; kt < G_N_ELEMENTS (kv_types); kt++) {
      guint np = cases[c].n_pos, nh = cases[c].n_heads;
      guint nkv = cases[c].n_kv_heads, hd = cases[c].head_dim;
      gsize stride = (gsize) nkv * hd + cases[c].pad;
      gsize nkvf = stride * np, qn = (gsize) nh * hd;
      gboolean f16 = kv_types[kt] == LLM_DTYPE_F16;
      float *q = g_new (float, qn), *k = g_new (float, nkvf);
      float *v = g_new (float, nkvf), *want = g_new (float, qn);
      float *got = g_new (float, qn), *scratch = g_new (float, np);
      double *mag = g_new (double, qn);
      guint16 *k16 = g_new (guint16, nkvf), *v16 = g_new (guint16, nkvf);
      gpointer dq, dk, dv, dout, dscratch;
      gsize es = f16 ? 2 : 4;
      gchar *what;

      fill_random (q, qn, cases[c].q_scale);
      fill_random (k, nkvf, 1.0f);
      fill_random (v, nkvf, 1.0f);
      if (f16) {
        for (gsize i = 0; i < nkvf; i++) {
          k16[i] = llm_f32_to_f16 (k[i]);
          v16[i] = llm_f32_to_f16 (v[i]);
          k[i] = llm_f16_to_f32 (k16[i]);
          v[i] = llm_f16_to_f32 (v16[i]);
        }
      }
      llm_attention_causal (want, q, k, v, 1, np - 1, nh, nkv, hd, stride,
          scratch);
      attention_magnitude (mag, q, k, v, np, nh, nkv, hd, stride);

      dq = dev_from (q, qn * sizeof (float));
      dk = dev_from (f16 ? (gpointer) k16 : (gpointer) k, nkvf * es);
      dv = dev_from (f16 ? (gpointer) v16 : (gpointer) v, nkvf * es);
      dout = dev_alloc (qn * sizeof (float));
      dscratch = dev_zeroed (llm_cuda_attention_decode_scratch_bytes (nh, hd));
      llm_cuda_attention_decode (dout, dq, dk, dv, kv_types[kt], np, nh, nkv,
          hd, stride, dscratch, stream);
      to_host (got, dout, qn * sizeof (float));
      what = g_strdup_printf ("attention_decode %s %u pos %u/%u heads x%u",
          llm_dtype_name (kv_types[kt]), np, nh, nkv, hd);
      check_mag (got, want, mag, qn, 1e-5, &worst[kt], what);

      llm_cuda_free (dq);
      llm_cuda_free (dk);
      llm_cuda_free (dv);
      llm_cuda_free (dout);
      llm_cuda_free (dscratch);
      g_free (what);
      g_free (q);
      g_free (k);
      g_free (v);
      g_free (k16);
      g_free (v16);
      g_free (want);
      g_free (got);
      g_free (scratch);
      g_free (mag);
    }
  }
  g_print ("attention_decode: worst error %.3g of the magnitude with an "
      "F32 cache, %.3g with F16 (bound 1e-5)\n", worst[0], worst[1]);
}

GST_END_TEST;

/* --- argmax --- */

static gint32
cpu_argmax (const float *x, guint n)
{
  gint32 best = -1;

  for (guint i = 0; i < n; i++)
    if (!isnan (x[i]) && (best < 0 || x[i] > x[best]))
      best = i;
  return best < 0 ? 0 : best;
}

GST_START_TEST (test_argmax)
{
  static const guint sizes[] = { 1, 7, 1025, 32000, 128256 };

  for (guint s = 0; s < G_N_ELEMENTS (sizes); s++) {
    guint n = sizes[s], rows = 5;
    float *x = g_new (float, (gsize) rows * n);
    gint32 got[5];
    gpointer dx, dout;

    fill_random (x, (gsize) rows * n, 10.0f);
    /* Row 1: a tie between two maxima; row 2: all -inf; row 3: NaNs, the
     * first element among them; row 4: all NaN. */
    if (n > 2) {
      x[n + n / 3] = 100.0f;
      x[n + n - 1] = 100.0f;
    }
    for (guint i = 0; i < n; i++) {
      x[2 * n + i] = -INFINITY;
      if (i % 3 == 0)
        x[3 * n + i] = NAN;
      x[4 * n + i] = NAN;
    }

    dx = dev_from (x, (gsize) rows * n * sizeof (float));
    dout = dev_alloc (sizeof (got));
    llm_cuda_argmax (dout, dx, n, rows, stream);
    to_host (got, dout, sizeof (got));
    for (guint r = 0; r < rows; r++)
      fail_unless_equals_int (got[r], cpu_argmax (x + (gsize) r * n, n));
    llm_cuda_free (dx);
    llm_cuda_free (dout);
    g_free (x);
  }
  g_print ("argmax: exact on every row\n");
}

GST_END_TEST;

/* --- convert_f32, matmul_half (cuBLAS) --- */

GST_START_TEST (test_matmul_half)
{
  static const LlmDType dtypes[] = { LLM_DTYPE_F16, LLM_DTYPE_BF16 };
  static const struct
  {
    guint rows, cols, n_tokens;
  } shapes[] = {
    {96, 256, 1}, {33, 64, 7}, {1000, 4096, 16},
  };
  double worst = 0.0;

  for (guint d = 0; d < G_N_ELEMENTS (dtypes); d++) {
    for (guint s = 0; s < G_N_ELEMENTS (shapes); s++) {
      LlmDType dt = dtypes[d];
      guint rows = shapes[s].rows, cols = shapes[s].cols;
      guint nt = shapes[s].n_tokens;
      gsize nx = (gsize) nt * cols;
      float *src = g_new (float, (gsize) rows * cols);
      float *x = g_new (float, nx), *xr = g_new (float, nx);
      float *want = g_new (float, (gsize) nt * rows);
      float *got = g_new (float, (gsize) nt * rows);
      guint16 *xh = g_new (guint16, nx);
      double *mag = g_new0 (double, (gsize) nt * rows);
      float *deq = g_new (float, cols);
      gsize bytes;
      guint8 *w = make_weights (dt, rows, cols, src, &bytes);
      LlmTensor t = tensor_2d (dt, w, rows, cols);
      gpointer dw, dx, dxh, dout;
      GError *err = NULL;
      gchar *what;

      fill_random (x, nx, 1.0f);
      dw = dev_from (w, bytes);
      dx = dev_from (x, nx * sizeof (float));
      dxh = dev_alloc (nx * 2);
      dout = dev_alloc ((gsize) nt * rows * sizeof (float));

      /* The conversion, bit for bit. */
      llm_cuda_convert_f32 (dxh, dt, dx, nx, stream);
      to_host (xh, dxh, nx * 2);
      for (gsize i = 0; i < nx; i++) {
        guint16 h = dt == LLM_DTYPE_F16 ? llm_f32_to_f16 (x[i]) :
            llm_f32_to_bf16 (x[i]);

        fail_unless (xh[i] == h, "convert %s: %g gave 0x%04x, want 0x%04x",
            llm_dtype_name (dt), x[i], xh[i], h);
        xr[i] = dt == LLM_DTYPE_F16 ? llm_f16_to_f32 (h) :
            llm_bf16_to_f32 (h);
      }

      llm_matmul (want, &t, xr, nt, 1);
      for (guint r = 0; r < rows; r++) {
        llm_get_row (deq, &t, r);
        for (guint tk = 0; tk < nt; tk++)
          for (guint c = 0; c < cols; c++)
            mag[(gsize) tk * rows + r] +=
                fabs ((double) deq[c] * xr[(gsize) tk * cols + c]);
      }
      fail_unless (llm_cuda_matmul_half (dout, dw, dxh, dt, rows, cols, nt,
              stream, &err), "cuBLAS: %s", err ? err->message : "?");
      to_host (got, dout, (gsize) nt * rows * sizeof (float));
      what = g_strdup_printf ("matmul_half %s %ux%u x %u tokens",
          llm_dtype_name (dt), rows, cols, nt);
      check_mag (got, want, mag, (gsize) nt * rows, 1e-5, &worst, what);

      llm_cuda_free (dw);
      llm_cuda_free (dx);
      llm_cuda_free (dxh);
      llm_cuda_free (dout);
      g_free (what);
      g_free (src);
      g_free (x);
      g_free (xr);
      g_free (xh);
      g_free (w);
      g_free (want);
      g_free (got);
      g_free (mag);
      g_free (deq);
    }
  }
  g_print ("matmul_half (cuBLAS): worst error %.3g of the magnitude "
      "(bound 1e-5); convert_f32 bit-exact\n", worst);
}

GST_END_TEST;

static Suite *
kernels_cuda_suite (void)
{
  Suite *s;
  TCase *tc;

  cuda_test_setup (20261125, &device);
  s = suite_create ("kernels-cuda");
  tc = tcase_create ("kernels");

  tcase_set_timeout (tc, 300);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_device_memory);
  tcase_add_test (tc, test_embedding_gather);
  tcase_add_test (tc, test_rmsnorm_forward);
  tcase_add_test (tc, test_rope_apply);
  tcase_add_test (tc, test_swiglu_forward);
  tcase_add_test (tc, test_matvec);
  tcase_add_test (tc, test_attention_decode);
  tcase_add_test (tc, test_argmax);
  tcase_add_test (tc, test_matmul_half);
  return s;
}

GST_CHECK_MAIN (kernels_cuda);
