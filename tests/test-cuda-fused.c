/* LLMasOS - the decode step's fused kernels (kernels/llm-cuda.h, "the
 * decode step's fused kernels") against the two unfused GPU kernels each
 * replaces and against the CPU (core/llm-cpu-ops.h).
 *
 * Errors "of the magnitude" are measured as in test-cuda-matvec.c: the L2
 * norm of the differences over that of each output's magnitude, the sum
 * |w x| of its terms (plus |r| where r is added), on the CPU's dequantized
 * weights. Relative L2 is checked only on 16 outputs or more (on one
 * output a dot product that nearly cancels makes it meaningless).
 *
 * Q8_0 and Q4_0 round x to Q8_0 (llm-cuda.h). The x they round (rmsnorm's
 * or SwiGLU's output) is computed in other orders on the GPU and the CPU,
 * and by the fused and the unfused kernels, so that a value next to a
 * rounding boundary may round the other way: each such flip moves the
 * outputs by d |w| (d the block's scale). Their bounds allow 8 flips: the
 * squared error may exceed (1e-5 of the magnitude)^2 by 8 times the
 * largest squared L2 change one flip can make, max over c of d^2 sum_r
 * w_rc^2 (tiny on long rows, a few 1e-4 of the magnitude on short ones).
 *
 * - matvec_packed_rmsnorm, F32 F16 BF16 Q8_0 Q4_0 weights of 6144 x 4096
 *   (Llama-3-8B's q|k|v), 1 x 32, 37 x 96, 513 x 1536 and, plain types
 *   only, 7 x 1001; norm weights F32, F16 and BF16; x 16-byte aligned on
 *   every other shape: returns TRUE, and
 *   - against llm_cuda_rmsnorm_forward + llm_cuda_matvec_packed: F32, F16,
 *     BF16 1e-5 of the magnitude and relative L2 1e-5 (the rmsnorm's scale
 *     is applied to the dot product: other rounding); Q8_0, Q4_0 1e-5 of
 *     the magnitude with 8 flips, relative L2 1e-2;
 *   - against llm_rmsnorm then llm_matvec on the same tensor (the bounds
 *     of test-cuda-matvec.c): F32, F16, BF16 1e-5 of the magnitude; Q8_0,
 *     Q4_0 1e-5 of the magnitude with 8 flips against llm_matvec of the
 *     Q8_0 rounding of the CPU's rmsnorm, and relative L2 1e-2 against
 *     llm_matvec of the rmsnorm itself (rows >= 256).
 * - matvec_packed_rmsnorm_swiglu, F32 F16 BF16, rows = 2 ffn for ffn
 *   14336 (cols 4096, Llama-3-8B's gate|up), 1 (96), 17 (100), 768 (512);
 *   F32 and F16 norms: returns TRUE, and against rmsnorm_forward +
 *   matvec_packed + llm_cuda_swiglu_rows (1 row of ffn), and against
 *   llm_rmsnorm, llm_matvec, llm_swiglu: relative L2 1e-5, and 1e-5 of
 *   the SwiGLU's magnitude, |silu'(g) u| mag(g) + |silu(g)| mag(u) +
 *   |silu(g) u| (first-order error from errors of g and u within their
 *   magnitudes, plus the exp's own). Returns FALSE for Q8_0 and Q4_0, and
 *   for F32 F16 BF16 with an odd row count, the output left as it was.
 * - matvec_packed_swiglu_add, Q8_0 and Q4_0, 4096 x 14336 (w_down) and
 *   33 x 96, out preset to random r: r + W (silu(g) u) against
 *   llm_cuda_swiglu_rows + llm_cuda_matvec_packed_add: relative L2 1e-2
 *   and 1e-5 of the magnitude with 8 flips; against llm_swiglu, the Q8_0
 *   rounding and llm_matvec: 1e-5 of the magnitude with 8 flips, and
 *   relative L2 1e-2 against the unrounded SwiGLU (rows >= 256). Returns
 *   FALSE for F16, the output left as it was.
 * - rope_kv_store_at, F32 and F16 caches, interleaved and rotate-half,
 *   (n_heads, n_kv_heads, head_dim) (32, 8, 128) (Llama-3-8B, 4100
 *   positions), (8, 4, 8) (stories260K) and (6, 3, 6) (4096 positions),
 *   positions 0, 1, 127, 4095 read from device memory: q|k against
 *   llm_cuda_rope_apply_at on the n_heads + n_kv_heads heads (the same
 *   arithmetic, kernels/rope-angle.cuh: relative L2 2e-6, the count of
 *   elements not bit-identical printed) and against llm_rope (2e-6); v
 *   not touched; the cache rows at the position the rotated k and v as
 *   llm_cuda_kv_store writes them (F32 exact, F16 bit-exact against
 *   llm_f32_to_f16), of the fused kernel's own rotated k and equal to the
 *   unfused path's cache wherever the two rotations agree bit for bit
 *   (which is everywhere when they are the same); every other position
 *   keeps its byte pattern.
 *
 * - attention_decode_rope_at (RoPE, cache append and attention in one
 *   kernel), F16 cache, (32, 8, 128), (8, 1, 64), (6, 3, 256), both
 *   rotations, counts 1 .. 4100 of a 4100-position cache (one or many
 *   chunks, the scratch reused): against rope_kv_store_at +
 *   attention_decode_at, output within 1e-5 relative L2, q|k|v untouched,
 *   the v cache identical, the new k row within an F16 ulp (the count of
 *   differing elements printed), every other row unchanged; FALSE for an
 *   F32 cache and for heads of 8. The same with a Q8_0 cache ((32, 8,
 *   128) and (6, 3, 256)) against rope_apply_at + kv_store +
 *   attention_decode_at: output within 1e-4 (a quant of the new key may
 *   differ by one where the two rotations round differently), the v
 *   cache and every other k row byte for byte the same.
 *
 * - quantize_x + matvec_packed_quantized (x rounded to Q8_0 once into
 *   device memory), Q8_0 and Q4_0, 6144 x 4096, 4096 x 14336, 37 x 96,
 *   1 x 32, for x, rmsnorm(x) * n and silu(g) * u (added): bit-identical
 *   to the packed matvec that rounds x in each block (the same
 *   arithmetic); FALSE for F16 and for both prologues at once.
 *
 * - the split rmsnorm (matvec_packed_add_norm, then matvec_packed_scaled
 *   or rmsnorm_finish), all five dtypes, producer dim x cols and consumer
 *   rows x dim for (4096, 14336, 6144) (w_down, then q|k|v), (96, 64,
 *   38), (32, 32, 1), (1536, 96, 513), (14336, 64, 70) (rows of several
 *   steps in the consumer), plain types (1001, 7, 6); F32,
 *   F16, BF16 norms: out bit-identical to matvec_packed_add, xn exactly
 *   norm * out, the partial sums' total within 1e-5 of sum out^2; the
 *   scaled matvec against rmsnorm_forward + matvec_packed and against
 *   llm_rmsnorm + llm_matvec with the bounds of matvec_packed_rmsnorm
 *   above; rmsnorm_finish within 1e-6 relative L2 of rmsnorm_forward;
 *   gated (even rows) against swiglu_rows of the unfused output and the
 *   CPU's (plain types) or of the scaled matvec's (Q8_0, Q4_0: the same
 *   rounding of x), 1e-5 of the SwiGLU's magnitude. FALSE for a missing
 *   norm or sums, a Q8_0 norm or gated odd rows.
 *
 * Without a GPU: exit 77 (meson SKIP).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <gst/check/gstcheck.h>
#include <math.h>
#include <string.h>

#include "llm-cpu-ops.h"
#include "llm-cuda.h"
#include "llm-dtype.h"
#include "test-cuda-common.h"

#define EPS 1e-5f
#define MIN_REL_N 16            /* outputs for a relative L2 to mean much */
#define FLIPS 8.0               /* Q8_0 roundings of x allowed to differ */

static guint n_threads;         /* of the CPU's llm_matvec */

/* Device floats that are NaN until a kernel writes them. */
static float *
dev_nan (gsize n)
{
  GError *err = NULL;
  float *p = dev_from (NULL, n * sizeof (float));

  fail_unless (llm_cuda_memset (p, 0xff, n * sizeof (float), stream, &err),
      "memset: %s", err ? err->message : "");
  return p;
}

/* sqrt (sum (got - want)^2) <= sqrt (bound^2 sum mag^2 + extra2), @extra2
 * the flips' allowance (0 for the plain types); *@worst gets the error
 * of the magnitude. */
static void
check_mag_flips (const float *got, const float *want, const double *mag,
    gsize n, double bound, double extra2, double *worst, const gchar * what)
{
  double den, num = mag_sums (got, want, mag, n, what, &den), e;

  e = den > 0 ? sqrt (num / den) : sqrt (num);
  if (num > bound * bound * den + extra2) {
    gsize w = 0, n_off = 0;

    /* where it is off, for the reader of a failure */
    for (gsize i = 0; i < n; i++) {
      n_off += fabs ((double) got[i] - want[i]) > 1e-4 * mag[i];
      if (fabs ((double) got[i] - want[i]) > fabs ((double) got[w] - want[w]))
        w = i;
    }
    fail ("%s: error %.3g of the magnitude, above %.3g (+ %.3g for %g "
        "flipped roundings of x); %" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT
        " outputs off by more than 1e-4 of theirs, the worst %" G_GSIZE_FORMAT
        ": %.9g, not %.9g (magnitude %.3g)", what, e, bound,
        den > 0 ? sqrt (extra2 / den) : sqrt (extra2), extra2 > 0 ? FLIPS : 0,
        n_off, n, w, got[w], want[w], mag[w]);
  }
  *worst = MAX (*worst, e);
}

static gboolean
is_block (LlmDType t)
{
  return t == LLM_DTYPE_Q8_0 || t == LLM_DTYPE_Q4_0;
}

/* @n values of @dtype (F32, F16, BF16) made from @f: the bytes and a 1-D
 * tensor on them for core/. */
static guint8 *
encode_vector (LlmTensor * t, LlmDType dtype, const float *f, guint n)
{
  gsize esz = dtype == LLM_DTYPE_F32 ? 4 : 2;
  guint8 *b = g_malloc ((gsize) n * esz);

  for (guint i = 0; i < n; i++) {
    if (dtype == LLM_DTYPE_F32)
      ((float *) b)[i] = f[i];
    else if (dtype == LLM_DTYPE_F16)
      ((guint16 *) b)[i] = llm_f32_to_f16 (f[i]);
    else
      ((guint16 *) b)[i] = llm_f32_to_bf16 (f[i]);
  }
  memset (t, 0, sizeof (*t));
  t->name = (gchar *) "norm";
  t->dtype = dtype;
  t->n_dims = 1;
  t->ne[0] = n;
  t->ne[1] = t->ne[2] = t->ne[3] = 1;
  t->data = b;
  t->nbytes = (gsize) n * esz;
  return b;
}

/* The CPU's W xe, xe the vector the kernel multiplies with: x itself, or
 * its Q8_0 rounding (llm_quantize_row + llm_dequantize_row) for Q8_0 and
 * Q4_0 weights; with each output's magnitude and, for Q8_0 and Q4_0, the
 * flips' allowance. */
typedef struct
{
  float *want;                  /* rows: llm_matvec (W, xe) */
  double *mag;                  /* rows: sum_c |w_rc xe_c| */
  double flip2;                 /* FLIPS max_c d_c^2 sum_r w_rc^2, or 0 */
} Ref;

static void
reference (Ref * ref, const Matrix * m, const float *x)
{
  guint rows = m->rows, cols = m->cols;
  float *xe = g_new (float, cols), *row = g_new (float, cols);
  double *d2 = NULL, *colsq = NULL;

  ref->want = g_new (float, rows);
  ref->mag = g_new (double, rows);
  ref->flip2 = 0.0;
  if (is_block (m->dtype)) {
    LlmBlockQ8_0 *q = g_new (LlmBlockQ8_0, cols / 32);

    llm_quantize_row (LLM_DTYPE_Q8_0, x, q, cols);
    llm_dequantize_row (LLM_DTYPE_Q8_0, q, xe, cols);
    d2 = g_new (double, cols / 32);
    for (guint b = 0; b < cols / 32; b++) {
      double d = llm_f16_to_f32 (q[b].d);

      d2[b] = d * d;
    }
    colsq = g_new0 (double, cols);
    g_free (q);
  } else {
    memcpy (xe, x, (gsize) cols * sizeof (float));
  }
  llm_matvec (ref->want, &m->t, xe, n_threads);
  for (guint r = 0; r < rows; r++) {
    double s = 0.0;

    llm_get_row (row, &m->t, r);
    for (guint c = 0; c < cols; c++)
      s += fabs ((double) row[c] * xe[c]);
    ref->mag[r] = s;
    if (colsq != NULL)
      for (guint c = 0; c < cols; c++)
        colsq[c] += (double) row[c] * row[c];
  }
  if (colsq != NULL)
    for (guint c = 0; c < cols; c++)
      ref->flip2 = MAX (ref->flip2, FLIPS * d2[c / 32] * colsq[c]);
  g_free (d2);
  g_free (colsq);
  g_free (xe);
  g_free (row);
}

static void
ref_clear (Ref * ref)
{
  g_free (ref->want);
  g_free (ref->mag);
}

static const LlmDType all_dtypes[] = { LLM_DTYPE_F32, LLM_DTYPE_F16,
  LLM_DTYPE_BF16, LLM_DTYPE_Q8_0, LLM_DTYPE_Q4_0
};

static const LlmDType plain_dtypes[] = { LLM_DTYPE_F32, LLM_DTYPE_F16,
  LLM_DTYPE_BF16
};

static const LlmDType block_dtypes[] = { LLM_DTYPE_Q8_0, LLM_DTYPE_Q4_0 };

static const LlmDType norm_dtypes[] = { LLM_DTYPE_F32, LLM_DTYPE_F16,
  LLM_DTYPE_BF16
};

/* --- matvec_packed_rmsnorm --- */

GST_START_TEST (test_matvec_rmsnorm)
{
  static const struct
  {
    guint rows, cols;
  } shapes[] = {
    {6144, 4096}, {1, 32}, {37, 96}, {513, 1536}, {7, 1001},
  };

  for (guint d = 0; d < G_N_ELEMENTS (all_dtypes); d++) {
    LlmDType dt = all_dtypes[d];
    gboolean blk = is_block (dt);
    double w_gpu = 0, w_gpu_rel = 0, w_cpu = 0, w_cpu_x = 0;

    for (guint s = 0; s < G_N_ELEMENTS (shapes); s++) {
      guint rows = shapes[s].rows, cols = shapes[s].cols;
      guint off = s % 2;        /* x at an odd float: not 16-byte aligned */
      Matrix m;
      g_autofree float *x = NULL;
      float *dx;

      if (cols % llm_dtype_block_elems (dt) != 0)
        continue;
      matrix_make (&m, dt, rows, cols);
      x = random_floats (cols, 3.0f);
      dx = dev_from (NULL, (cols + 1) * sizeof (float));
      upload (dx + off, x, cols * sizeof (float));

      for (guint n = 0; n < G_N_ELEMENTS (norm_dtypes); n++) {
        LlmDType nd = norm_dtypes[n];
        g_autofree float *nf = random_floats (cols, 0.5f);
        g_autofree float *xn = g_new (float, cols);
        g_autofree float *got = g_new (float, rows);
        g_autofree float *unf = g_new (float, rows);
        g_autofree guint8 *nb = NULL;
        g_autofree gchar *what = NULL;
        LlmTensor nt;
        Ref ref;
        gpointer dnorm;
        float *dxn, *dout, *dref;

        for (guint c = 0; c < cols; c++)
          nf[c] += 1.0f;        /* norm weights in [0.5, 1.5] */
        nb = encode_vector (&nt, nd, nf, cols);
        llm_rmsnorm (xn, x, &nt, cols, EPS);
        reference (&ref, &m, xn);

        dnorm = dev_from (nb, nt.nbytes);
        dxn = dev_nan (cols);
        dout = dev_nan (rows);
        dref = dev_nan (rows);
        what = g_strdup_printf ("matvec_packed_rmsnorm %s %ux%u, %s norm%s",
            llm_dtype_name (dt), rows, cols, llm_dtype_name (nd),
            off ? ", x unaligned" : "");
        fail_unless (llm_cuda_matvec_packed_rmsnorm (dout, m.packed, dt,
                dx + off, dnorm, nd, EPS, rows, cols, stream),
            "%s: returned FALSE", what);
        llm_cuda_rmsnorm_forward (dxn, dx + off, dnorm, nd, cols, 1, EPS,
            stream);
        llm_cuda_matvec_packed (dref, m.packed, dt, dxn, rows, cols, stream);
        to_host (got, dout, rows * sizeof (float));
        to_host (unf, dref, rows * sizeof (float));

        /* against the unfused GPU kernels */
        check_mag_flips (got, unf, ref.mag, rows, 1e-5, ref.flip2, &w_gpu, what);
        if (rows >= MIN_REL_N)
          check_rel (got, unf, rows, blk ? 1e-2 : 1e-5, &w_gpu_rel, what);
        /* against the CPU */
        check_mag_flips (got, ref.want, ref.mag, rows, 1e-5, ref.flip2, &w_cpu,
            what);
        if (blk && rows >= 256) {
          g_autofree float *want_x = g_new (float, rows);

          llm_matvec (want_x, &m.t, xn, n_threads);
          check_rel (got, want_x, rows, 1e-2, &w_cpu_x, what);
        }

        ref_clear (&ref);
        llm_cuda_free (dnorm);
        llm_cuda_free (dxn);
        llm_cuda_free (dout);
        llm_cuda_free (dref);
      }
      llm_cuda_free (dx);
      matrix_clear (&m);
    }
    g_print ("matvec_packed_rmsnorm %s: against rmsnorm_forward + "
        "matvec_packed %.3g of the magnitude (bound 1e-5%s), relative L2 "
        "%.3g (bound %g); against llm_rmsnorm + llm_matvec%s %.3g of the "
        "magnitude (bound 1e-5%s)", llm_dtype_name (dt), w_gpu,
        blk ? " + 8 flips" : "", w_gpu_rel, blk ? 1e-2 : 1e-5,
        blk ? " on Q8_0-rounded x" : "", w_cpu, blk ? " + 8 flips" : "");
    if (blk)
      g_print (", on the exact x relative L2 %.3g (bound 1e-2)", w_cpu_x);
    g_print ("\n");
  }
}

GST_END_TEST;

/* --- matvec_packed_rmsnorm_swiglu --- */

/* want[i] = silu(h[i]) h[ffn + i] as llm_swiglu computes it, and m[i] its
 * magnitude: |silu'(g) u| mag(g) + |silu(g)| mag(u) + |silu(g) u|. */
static void
swiglu_reference (float *want, double *m, const float *h, const double *mag,
    guint ffn)
{
  llm_swiglu (want, h, h + ffn, ffn);
  for (guint i = 0; i < ffn; i++) {
    double g = h[i], u = h[ffn + i];
    double sg = 1.0 / (1.0 + exp (-g));
    double silu = g * sg, dsilu = sg * (1.0 + g * (1.0 - sg));

    m[i] = fabs (dsilu * u) * mag[i] + fabs (silu) * mag[ffn + i]
        + fabs (silu * u);
  }
}

/* The fused kernel declines: FALSE, and @n floats of output as they
 * were. */
static void
check_declined (gboolean ret, float *dout, const float *before, gsize n,
    const gchar * what)
{
  g_autofree float *after = g_new (float, MAX (n, 1));

  fail_unless (!ret, "%s: returned TRUE", what);
  to_host (after, dout, n * sizeof (float));
  fail_unless (memcmp (after, before, n * sizeof (float)) == 0,
      "%s: returned FALSE but wrote the output", what);
}

GST_START_TEST (test_matvec_rmsnorm_swiglu)
{
  static const struct
  {
    guint ffn, cols;
  } shapes[] = {
    {14336, 4096}, {1, 96}, {17, 100}, {768, 512},
  };
  static const LlmDType nds[] = { LLM_DTYPE_F32, LLM_DTYPE_F16 };

  for (guint d = 0; d < G_N_ELEMENTS (plain_dtypes); d++) {
    LlmDType dt = plain_dtypes[d];
    double w_gpu = 0, w_gpu_rel = 0, w_cpu = 0, w_cpu_rel = 0;

    for (guint s = 0; s < G_N_ELEMENTS (shapes); s++) {
      guint ffn = shapes[s].ffn, cols = shapes[s].cols, rows = 2 * ffn;
      guint off = s % 2;
      Matrix m;
      g_autofree float *x = NULL;
      float *dx;

      matrix_make (&m, dt, rows, cols);
      x = random_floats (cols, 3.0f);
      dx = dev_from (NULL, (cols + 1) * sizeof (float));
      upload (dx + off, x, cols * sizeof (float));

      for (guint n = 0; n < G_N_ELEMENTS (nds); n++) {
        LlmDType nd = nds[n];
        g_autofree float *nf = random_floats (cols, 0.5f);
        g_autofree float *xn = g_new (float, cols);
        g_autofree float *want = g_new (float, ffn);
        g_autofree double *mag = g_new (double, ffn);
        g_autofree float *got = g_new (float, ffn);
        g_autofree float *unf = g_new (float, ffn);
        g_autofree guint8 *nb = NULL;
        g_autofree gchar *what = NULL;
        LlmTensor nt;
        Ref ref;
        gpointer dnorm;
        float *dxn, *dh, *dout, *dref;

        for (guint c = 0; c < cols; c++)
          nf[c] += 1.0f;
        nb = encode_vector (&nt, nd, nf, cols);
        llm_rmsnorm (xn, x, &nt, cols, EPS);
        reference (&ref, &m, xn);
        swiglu_reference (want, mag, ref.want, ref.mag, ffn);

        dnorm = dev_from (nb, nt.nbytes);
        dxn = dev_nan (cols);
        dh = dev_nan (rows);
        dout = dev_nan (ffn);
        dref = dev_nan (ffn);
        what = g_strdup_printf ("matvec_packed_rmsnorm_swiglu %s %ux%u (ffn "
            "%u), %s norm%s", llm_dtype_name (dt), rows, cols, ffn,
            llm_dtype_name (nd), off ? ", x unaligned" : "");
        fail_unless (llm_cuda_matvec_packed_rmsnorm_swiglu (dout, m.packed,
                dt, dx + off, dnorm, nd, EPS, rows, cols, stream),
            "%s: returned FALSE", what);
        llm_cuda_rmsnorm_forward (dxn, dx + off, dnorm, nd, cols, 1, EPS,
            stream);
        llm_cuda_matvec_packed (dh, m.packed, dt, dxn, rows, cols, stream);
        llm_cuda_swiglu_rows (dref, dh, 1, ffn, stream);
        to_host (got, dout, ffn * sizeof (float));
        to_host (unf, dref, ffn * sizeof (float));

        check_mag_flips (got, unf, mag, ffn, 1e-5, 0, &w_gpu, what);
        check_mag_flips (got, want, mag, ffn, 1e-5, 0, &w_cpu, what);
        if (ffn >= MIN_REL_N) {
          check_rel (got, unf, ffn, 1e-5, &w_gpu_rel, what);
          check_rel (got, want, ffn, 1e-5, &w_cpu_rel, what);
        }

        ref_clear (&ref);
        llm_cuda_free (dnorm);
        llm_cuda_free (dxn);
        llm_cuda_free (dh);
        llm_cuda_free (dout);
        llm_cuda_free (dref);
      }
      llm_cuda_free (dx);
      matrix_clear (&m);
    }
    g_print ("matvec_packed_rmsnorm_swiglu %s: against rmsnorm_forward + "
        "matvec_packed + swiglu_rows %.3g of the magnitude, relative L2 "
        "%.3g; against llm_rmsnorm + llm_matvec + llm_swiglu %.3g, %.3g "
        "(bounds 1e-5)\n", llm_dtype_name (dt), w_gpu, w_gpu_rel, w_cpu,
        w_cpu_rel);
  }
}

GST_END_TEST;

GST_START_TEST (test_matvec_rmsnorm_swiglu_declines)
{
  const guint cols = 96;
  g_autofree float *x = random_floats (cols, 3.0f);
  g_autofree float *nf = random_floats (cols, 0.5f);
  g_autofree float *before = random_floats (18, 1.0f);
  float *dx = dev_from (x, cols * sizeof (float));
  float *dnorm, *dout = dev_from (before, 18 * sizeof (float));

  for (guint c = 0; c < cols; c++)
    nf[c] += 1.0f;
  dnorm = dev_from (nf, cols * sizeof (float));
  /* Q8_0, Q4_0: no fused SwiGLU (even rows) */
  for (guint d = 0; d < G_N_ELEMENTS (block_dtypes); d++) {
    Matrix m;
    g_autofree gchar *what = NULL;

    matrix_make (&m, block_dtypes[d], 34, cols);
    what = g_strdup_printf ("matvec_packed_rmsnorm_swiglu %s 34x%u",
        llm_dtype_name (block_dtypes[d]), cols);
    check_declined (llm_cuda_matvec_packed_rmsnorm_swiglu (dout, m.packed,
            block_dtypes[d], dx, dnorm, LLM_DTYPE_F32, EPS, 34, cols, stream),
        dout, before, 18, what);
    matrix_clear (&m);
  }
  /* an odd row count */
  for (guint d = 0; d < G_N_ELEMENTS (plain_dtypes); d++) {
    Matrix m;
    g_autofree gchar *what = NULL;

    matrix_make (&m, plain_dtypes[d], 35, cols);
    what = g_strdup_printf ("matvec_packed_rmsnorm_swiglu %s 35x%u",
        llm_dtype_name (plain_dtypes[d]), cols);
    check_declined (llm_cuda_matvec_packed_rmsnorm_swiglu (dout, m.packed,
            plain_dtypes[d], dx, dnorm, LLM_DTYPE_F32, EPS, 35, cols, stream),
        dout, before, 18, what);
    matrix_clear (&m);
  }
  llm_cuda_free (dx);
  llm_cuda_free (dnorm);
  llm_cuda_free (dout);
}

GST_END_TEST;

/* --- matvec_packed_swiglu_add --- */

GST_START_TEST (test_matvec_swiglu_add)
{
  static const struct
  {
    guint rows, cols;
  } shapes[] = {
    {4096, 14336}, {33, 96},
  };

  for (guint d = 0; d < G_N_ELEMENTS (block_dtypes); d++) {
    LlmDType dt = block_dtypes[d];
    double w_gpu = 0, w_gpu_rel = 0, w_cpu = 0, w_cpu_x = 0;

    for (guint s = 0; s < G_N_ELEMENTS (shapes); s++) {
      guint rows = shapes[s].rows, cols = shapes[s].cols;
      g_autofree float *gu = random_floats (2 * (gsize) cols, 3.0f);
      g_autofree float *a = g_new (float, cols);
      g_autofree float *base = random_floats (rows, 4.0f);
      g_autofree float *got = g_new (float, rows);
      g_autofree float *unf = g_new (float, rows);
      g_autofree double *mag = g_new (double, rows);
      g_autofree gchar *what = NULL;
      Matrix m;
      Ref ref;
      float *dgu, *da, *dout, *dref;

      matrix_make (&m, dt, rows, cols);
      llm_swiglu (a, gu, gu + cols, cols);
      reference (&ref, &m, a);
      for (guint r = 0; r < rows; r++) {
        ref.want[r] += base[r];
        mag[r] = ref.mag[r] + fabs (base[r]);
      }

      dgu = dev_from (gu, 2 * (gsize) cols * sizeof (float));
      da = dev_nan (cols);
      dout = dev_from (base, rows * sizeof (float));
      dref = dev_from (base, rows * sizeof (float));
      what = g_strdup_printf ("matvec_packed_swiglu_add %s %ux%u",
          llm_dtype_name (dt), rows, cols);
      fail_unless (llm_cuda_matvec_packed_swiglu_add (dout, m.packed, dt, dgu,
              rows, cols, stream), "%s: returned FALSE", what);
      llm_cuda_swiglu_rows (da, dgu, 1, cols, stream);
      llm_cuda_matvec_packed_add (dref, m.packed, dt, da, rows, cols, stream);
      to_host (got, dout, rows * sizeof (float));
      to_host (unf, dref, rows * sizeof (float));

      check_rel (got, unf, rows, 1e-2, &w_gpu_rel, what);
      check_mag_flips (got, unf, mag, rows, 1e-5, ref.flip2, &w_gpu, what);
      check_mag_flips (got, ref.want, mag, rows, 1e-5, ref.flip2, &w_cpu, what);
      if (rows >= 256) {
        g_autofree float *want_x = g_new (float, rows);

        llm_matvec (want_x, &m.t, a, n_threads);
        for (guint r = 0; r < rows; r++)
          want_x[r] += base[r];
        check_rel (got, want_x, rows, 1e-2, &w_cpu_x, what);
      }

      ref_clear (&ref);
      llm_cuda_free (dgu);
      llm_cuda_free (da);
      llm_cuda_free (dout);
      llm_cuda_free (dref);
      matrix_clear (&m);
    }
    g_print ("matvec_packed_swiglu_add %s: against swiglu_rows + "
        "matvec_packed_add relative L2 %.3g (bound 1e-2), %.3g of the "
        "magnitude (bound 1e-5 + 8 flips); against llm_swiglu + llm_matvec "
        "on Q8_0-rounded x %.3g of the magnitude (bound 1e-5 + 8 flips), on "
        "the exact x relative L2 %.3g (bound 1e-2)\n", llm_dtype_name (dt),
        w_gpu_rel, w_gpu, w_cpu, w_cpu_x);
  }
}

GST_END_TEST;

/* x rounded once into device memory (llm_cuda_quantize_x) and then
 * multiplied (llm_cuda_matvec_packed_quantized) is the same arithmetic as
 * the packed matvec rounding x in each block: bit-identical results, for
 * x as it is, rmsnorm(x) * n and silu(g) * u. */
GST_START_TEST (test_quantize_x_once)
{
  static const guint shapes[][2] = { {6144, 4096}, {4096, 14336}, {37, 96},
  {1, 32}
  };

  for (guint d = 0; d < G_N_ELEMENTS (block_dtypes); d++) {
    LlmDType dt = block_dtypes[d];

    for (guint s = 0; s < G_N_ELEMENTS (shapes); s++) {
      guint rows = shapes[s][0], cols = shapes[s][1];
      g_autofree float *x = random_floats (2 * (gsize) cols, 3.0f);
      g_autofree float *nw = random_floats (cols, 1.5f);
      g_autofree float *base = random_floats (rows, 4.0f);
      g_autofree float *got = g_new (float, rows);
      g_autofree float *want = g_new (float, rows);
      float *dx = dev_from (x, 2 * (gsize) cols * sizeof (float));
      float *dn = dev_from (nw, cols * sizeof (float));
      float *dgot = dev_from (NULL, rows * sizeof (float));
      float *dwant = dev_from (NULL, rows * sizeof (float));
      gpointer xq = dev_from (NULL, llm_cuda_quantized_x_bytes (cols));
      Matrix m;

      matrix_make (&m, dt, rows, cols);
      for (guint mode = 0; mode < 3; mode++) {
        /* 0: x, 1: rmsnorm(x) * n, 2: silu(g) * u, added to base */
        gboolean add = mode == 2;

        upload (dgot, base, rows * sizeof (float));
        upload (dwant, base, rows * sizeof (float));
        fail_unless (llm_cuda_quantize_x (xq, dt, dx, cols,
                mode == 1 ? dn : NULL, LLM_DTYPE_F32, 1e-5f, mode == 2,
                stream), "quantize_x %s %ux%u mode %u: FALSE",
            llm_dtype_name (dt), rows, cols, mode);
        fail_unless (llm_cuda_matvec_packed_quantized (dgot, m.packed, dt, xq,
                rows, cols, add, stream));
        if (mode == 0)
          llm_cuda_matvec_packed (dwant, m.packed, dt, dx, rows, cols,
              stream);
        else if (mode == 1)
          fail_unless (llm_cuda_matvec_packed_rmsnorm (dwant, m.packed, dt,
                  dx, dn, LLM_DTYPE_F32, 1e-5f, rows, cols, stream));
        else
          fail_unless (llm_cuda_matvec_packed_swiglu_add (dwant, m.packed, dt,
                  dx, rows, cols, stream));
        to_host (got, dgot, rows * sizeof (float));
        to_host (want, dwant, rows * sizeof (float));
        for (guint r = 0; r < rows; r++)
          fail_unless (got[r] == want[r], "%s %ux%u mode %u: row %u: %.9g "
              "rounded once, %.9g rounded per block", llm_dtype_name (dt),
              rows, cols, mode, r, got[r], want[r]);
      }
      /* what it declines: a dtype without Q8_0 rounding, both prologues */
      fail_if (llm_cuda_quantize_x (xq, LLM_DTYPE_F16, dx, cols, NULL,
              LLM_DTYPE_F32, 1e-5f, FALSE, stream));
      fail_if (llm_cuda_quantize_x (xq, dt, dx, cols, dn, LLM_DTYPE_F32,
              1e-5f, TRUE, stream));
      fail_if (llm_cuda_matvec_packed_quantized (dgot, m.packed,
              LLM_DTYPE_F16, xq, rows, cols, FALSE, stream));
      matrix_clear (&m);
      llm_cuda_free (dx);
      llm_cuda_free (dn);
      llm_cuda_free (dgot);
      llm_cuda_free (dwant);
      llm_cuda_free (xq);
    }
  }
}

GST_END_TEST;

GST_START_TEST (test_matvec_swiglu_add_declines)
{
  const guint rows = 33, cols = 96;
  g_autofree float *gu = random_floats (2 * cols, 3.0f);
  g_autofree float *before = random_floats (rows, 4.0f);
  float *dgu = dev_from (gu, 2 * cols * sizeof (float));
  float *dout = dev_from (before, rows * sizeof (float));
  Matrix m;

  matrix_make (&m, LLM_DTYPE_F16, rows, cols);
  check_declined (llm_cuda_matvec_packed_swiglu_add (dout, m.packed,
          LLM_DTYPE_F16, dgu, rows, cols, stream), dout, before, rows,
      "matvec_packed_swiglu_add F16 33x96");
  matrix_clear (&m);
  llm_cuda_free (dgu);
  llm_cuda_free (dout);
}

GST_END_TEST;

/* --- the split rmsnorm: matvec_packed_add_norm + matvec_packed_scaled --- */

/* The norm weights as the kernels read them (@t's values, F16 / BF16
 * rounded). */
static float *
norm_values (const LlmTensor * t, guint n)
{
  float *v = g_new (float, n);

  llm_get_row (v, t, 0);
  return v;
}

GST_START_TEST (test_matvec_split_rmsnorm)
{
  /* dim: the producer's rows and the consumer's columns */
  static const struct
  {
    guint dim, cols, rows;
  } shapes[] = {
    {4096, 14336, 6144}, {96, 64, 38}, {32, 32, 1}, {1536, 96, 513},
    {1001, 7, 6}, {14336, 64, 70},
  };

  for (guint d = 0; d < G_N_ELEMENTS (all_dtypes); d++) {
    LlmDType dt = all_dtypes[d];
    gboolean blk = is_block (dt);
    double w_ss = 0, w_gpu = 0, w_gpu_rel = 0, w_cpu = 0, w_fin = 0;
    double w_gated = 0;

    for (guint s = 0; s < G_N_ELEMENTS (shapes); s++) {
      guint dim = shapes[s].dim, cols = shapes[s].cols;
      guint rows = shapes[s].rows, be = llm_dtype_block_elems (dt);
      Matrix wp, wc;
      g_autofree float *y = NULL, *base = NULL;
      float *dy;

      if (cols % be != 0 || dim % be != 0)
        continue;
      matrix_make (&wp, dt, dim, cols);
      matrix_make (&wc, dt, rows, dim);
      y = random_floats (cols, 3.0f);
      base = random_floats (dim, 4.0f);
      dy = dev_from (y, cols * sizeof (float));

      for (guint n = 0; n < G_N_ELEMENTS (norm_dtypes); n++) {
        LlmDType nd = norm_dtypes[n];
        g_autofree float *nf = random_floats (dim, 0.5f);
        g_autofree float *nv = NULL, *xnorm = g_new (float, dim);
        g_autofree float *out = g_new (float, dim);
        g_autofree float *ref_out = g_new (float, dim);
        g_autofree float *xn = g_new (float, dim);
        g_autofree float *fin = g_new (float, dim);
        g_autofree float *n2 = g_new (float, dim);
        g_autofree float *got = g_new (float, rows);
        g_autofree float *unf = g_new (float, rows);
        g_autofree guint8 *nb = NULL;
        g_autofree gchar *what = NULL;
        float ss[LLM_CUDA_SS_PARTS];
        double ss_got = 0, ss_want = 0;
        LlmTensor nt;
        Ref ref;
        gpointer dnorm;
        float *dout, *dref, *dxn, *dss, *dn2, *dfin, *dgot, *dunf;

        for (guint c = 0; c < dim; c++)
          nf[c] += 1.0f;
        nb = encode_vector (&nt, nd, nf, dim);
        nv = norm_values (&nt, dim);
        dnorm = dev_from (nb, nt.nbytes);
        dout = dev_from (base, dim * sizeof (float));
        dref = dev_from (base, dim * sizeof (float));
        dxn = dev_nan (dim);
        dss = dev_zeroed (sizeof ss);
        dn2 = dev_nan (dim);
        dfin = dev_nan (dim);
        dgot = dev_nan (rows);
        dunf = dev_nan (rows);
        what = g_strdup_printf ("split rmsnorm %s %ux%u then %ux%u, %s norm",
            llm_dtype_name (dt), dim, cols, rows, dim, llm_dtype_name (nd));

        /* the first half: out += W y, xn = out * n, the squares of out */
        fail_unless (llm_cuda_matvec_packed_add_norm (dout, wp.packed, dt, dy,
                dim, cols, dxn, dnorm, nd, dss, stream),
            "%s: add_norm returned FALSE", what);
        llm_cuda_matvec_packed_add (dref, wp.packed, dt, dy, dim, cols,
            stream);
        to_host (out, dout, dim * sizeof (float));
        to_host (ref_out, dref, dim * sizeof (float));
        to_host (xn, dxn, dim * sizeof (float));
        to_host (ss, dss, sizeof ss);
        {
          guint n_diff = 0, first = 0, n_base = 0;

          for (guint r = 0; r < dim; r++) {
            if (memcmp (&out[r], &ref_out[r], sizeof (float)) != 0 &&
                n_diff++ == 0)
              first = r;
            n_base += out[r] == base[r];
          }
          fail_unless (n_diff == 0, "%s: out differs from matvec_packed_add's "
              "in %u of %u rows (first %u: %.9g, not %.9g; %u rows still "
              "the value before)", what, n_diff, dim, first, out[first],
              ref_out[first], n_base);
        }
        for (guint r = 0; r < dim; r++) {
          fail_unless (xn[r] == nv[r] * out[r], "%s: xn[%u] = %.9g, not "
              "%.9g * %.9g", what, r, xn[r], nv[r], out[r]);
          ss_want += (double) out[r] * out[r];
        }
        for (guint k = 0; k < LLM_CUDA_SS_PARTS; k++)
          ss_got += ss[k];
        fail_unless (fabs (ss_got - ss_want) <= 1e-5 * ss_want,
            "%s: sum of squares %.9g, want %.9g", what, ss_got, ss_want);
        w_ss = MAX (w_ss, fabs (ss_got - ss_want) / ss_want);

        /* the second half, against rmsnorm_forward + matvec_packed of the
         * same out, and against the CPU's llm_rmsnorm + llm_matvec */
        fail_unless (llm_cuda_matvec_packed_scaled (dgot, wc.packed, dt, dxn,
                dss, EPS, rows, dim, FALSE, stream),
            "%s: scaled returned FALSE", what);
        llm_cuda_rmsnorm_forward (dn2, dout, dnorm, nd, dim, 1, EPS, stream);
        llm_cuda_matvec_packed (dunf, wc.packed, dt, dn2, rows, dim, stream);
        to_host (got, dgot, rows * sizeof (float));
        to_host (unf, dunf, rows * sizeof (float));
        llm_rmsnorm (xnorm, out, &nt, dim, EPS);
        reference (&ref, &wc, xnorm);
        {
          /* the three against each other, for the reader of a failure:
           * which of the two GPU paths is off */
          double den, e_gu = mag_sums (got, unf, ref.mag, rows, what, &den);
          double e_gc = mag_sums (got, ref.want, ref.mag, rows, what, &den);
          double e_uc = mag_sums (unf, ref.want, ref.mag, rows, what, &den);

          if (e_gu > 1e-10 * den || e_gc > 1e-10 * den)
            g_print ("%s: squared errors of the magnitude: scaled vs "
                "unfused %.3g, scaled vs CPU %.3g, unfused vs CPU %.3g "
                "(flips' allowance %.3g)\n", what, e_gu / den, e_gc / den,
                e_uc / den, ref.flip2 / den);
        }
        check_mag_flips (got, unf, ref.mag, rows, 1e-5, ref.flip2, &w_gpu,
            what);
        if (rows >= MIN_REL_N)
          check_rel (got, unf, rows, blk ? 1e-2 : 1e-5, &w_gpu_rel, what);
        check_mag_flips (got, ref.want, ref.mag, rows, 1e-5, ref.flip2,
            &w_cpu, what);

        /* the scale applied to xn by a kernel of its own */
        llm_cuda_rmsnorm_finish (dfin, dxn, dss, dim, EPS, stream);
        to_host (fin, dfin, dim * sizeof (float));
        to_host (n2, dn2, dim * sizeof (float));
        check_rel (fin, n2, dim, 1e-6, &w_fin, what);

        /* gated: the SwiGLU of a stacked gate|up consumer; for Q8_0 /
         * Q4_0 against swiglu_rows of the scaled matvec just checked,
         * whose rounding of x it shares (no flips between them) */
        if (rows % 2 == 0) {
          guint ffn = rows / 2;
          g_autofree float *want = g_new (float, ffn);
          g_autofree double *mag = g_new (double, ffn);
          float *dsw = dev_nan (ffn), *dgated = dev_nan (ffn);

          fail_unless (llm_cuda_matvec_packed_scaled (dgated, wc.packed, dt,
                  dxn, dss, EPS, rows, dim, TRUE, stream),
              "%s: scaled, gated, returned FALSE", what);
          llm_cuda_swiglu_rows (dsw, blk ? dgot : dunf, 1, ffn, stream);
          to_host (got, dgated, ffn * sizeof (float));
          to_host (unf, dsw, ffn * sizeof (float));
          swiglu_reference (want, mag, ref.want, ref.mag, ffn);
          check_mag_flips (got, unf, mag, ffn, 1e-5, 0, &w_gated, what);
          if (!blk)
            check_mag_flips (got, want, mag, ffn, 1e-5, 0, &w_gated, what);
          llm_cuda_free (dsw);
          llm_cuda_free (dgated);
        }

        ref_clear (&ref);
        llm_cuda_free (dnorm);
        llm_cuda_free (dout);
        llm_cuda_free (dref);
        llm_cuda_free (dxn);
        llm_cuda_free (dss);
        llm_cuda_free (dn2);
        llm_cuda_free (dfin);
        llm_cuda_free (dgot);
        llm_cuda_free (dunf);
      }
      llm_cuda_free (dy);
      matrix_clear (&wp);
      matrix_clear (&wc);
    }
    g_print ("split rmsnorm %s: out bit-identical to matvec_packed_add, xn "
        "exact, sum of squares within %.3g (bound 1e-5); the scaled matvec "
        "against rmsnorm_forward + matvec_packed %.3g of the magnitude, "
        "relative L2 %.3g (bounds 1e-5%s, %g), against the CPU %.3g; "
        "rmsnorm_finish relative L2 %.3g (bound 1e-6)", llm_dtype_name (dt),
        w_ss, w_gpu, w_gpu_rel, blk ? " + 8 flips" : "", blk ? 1e-2 : 1e-5,
        w_cpu, w_fin);
    g_print ("; gated %.3g of the SwiGLU's magnitude (bound 1e-5)",
        w_gated);
    g_print ("\n");
  }
  /* what they decline: no norm, no sums; gated with odd rows */
  {
    float *d = dev_zeroed (1 << 16);
    Matrix m;

    matrix_make (&m, LLM_DTYPE_F16, 36, 64);
    fail_if (llm_cuda_matvec_packed_add_norm (d, m.packed, LLM_DTYPE_F16, d,
            36, 64, d, NULL, LLM_DTYPE_F32, d, stream));
    fail_if (llm_cuda_matvec_packed_add_norm (d, m.packed, LLM_DTYPE_F16, d,
            36, 64, d, d, LLM_DTYPE_Q8_0, d, stream));
    fail_if (llm_cuda_matvec_packed_scaled (d, m.packed, LLM_DTYPE_F16, d,
            NULL, EPS, 36, 64, FALSE, stream));
    fail_if (llm_cuda_matvec_packed_scaled (d, m.packed, LLM_DTYPE_F16, d, d,
            EPS, 35, 64, TRUE, stream));
    matrix_clear (&m);
    matrix_make (&m, LLM_DTYPE_Q8_0, 36, 64);
    fail_if (llm_cuda_matvec_packed_scaled (d, m.packed, LLM_DTYPE_Q8_0, d, d,
            EPS, 35, 64, TRUE, stream));
    matrix_clear (&m);
    llm_cuda_free (d);
  }
}

GST_END_TEST;

/* --- rope_kv_store_at --- */

/* Element @i of a cache row of @dtype equals @v as llm_cuda_kv_store
 * stores it. */
static gboolean
cache_holds (const guint8 * row, LlmDType dtype, guint i, float v)
{
  if (dtype == LLM_DTYPE_F16)
    return ((const guint16 *) row)[i] == llm_f32_to_f16 (v);
  return memcmp (row + (gsize) i * 4, &v, 4) == 0;
}

/* One call at position @pos; returns the q|k elements where the fused and
 * the unfused rotations differ in some bit. */
static gsize
check_rope_kv_store (LlmDType kvt, guint nh, guint nkv, guint hd,
    guint n_ctx, float theta, gboolean il, gint32 pos, gint32 * dpos)
{
  guint kv_dim = nkv * hd, qk = (nh + nkv) * hd, len = qk + kv_dim;
  gsize esz = kvt == LLM_DTYPE_F16 ? 2 : 4;
  gsize row_bytes = kv_dim * esz, cache_bytes = n_ctx * row_bytes;
  gsize o = (gsize) pos * row_bytes, n_diff = 0;
  g_autofree float *qkv = random_floats (len, 2.0f);
  g_autofree float *cpu = g_memdup2 (qkv, len * sizeof (float));
  g_autofree float *got = g_new (float, len);
  g_autofree float *unf = g_new (float, len);
  g_autofree guint8 *kc = g_malloc (cache_bytes);
  g_autofree guint8 *vc = g_malloc (cache_bytes);
  g_autofree guint8 *gk = g_malloc (cache_bytes);
  g_autofree guint8 *gv = g_malloc (cache_bytes);
  g_autofree guint8 *uk = g_malloc (cache_bytes);
  g_autofree guint8 *uv = g_malloc (cache_bytes);
  g_autofree gchar *what = NULL;
  float *dqkv, *dref;
  gpointer dkc, dvc, dukc, duvc;
  double e;

  fail_unless (pos >= 0 && (guint) pos < n_ctx);
  what = g_strdup_printf ("rope_kv_store_at %s cache, %u/%u heads of %u, "
      "%s, position %d", llm_dtype_name (kvt), nh, nkv, hd,
      il ? "interleaved" : "rotate-half", pos);
  memset (kc, 0x5a, cache_bytes);
  memset (vc, 0xa5, cache_bytes);
  dqkv = dev_from (qkv, len * sizeof (float));
  dref = dev_from (qkv, len * sizeof (float));
  dkc = dev_from (kc, cache_bytes);
  dvc = dev_from (vc, cache_bytes);
  dukc = dev_from (kc, cache_bytes);
  duvc = dev_from (vc, cache_bytes);
  upload (dpos, &pos, sizeof pos);

  llm_cuda_rope_kv_store_at (dqkv, nh, nkv, hd, dkc, dvc, kvt, dpos, theta,
      il, stream);
  llm_cuda_rope_apply_at (dref, 1, len, nh + nkv, hd, dpos, theta, il,
      stream);
  llm_cuda_kv_store (dukc, duvc, kvt, dref + nh * hd, dref + qk, len, 1,
      kv_dim, 0, dpos, stream);
  to_host (got, dqkv, len * sizeof (float));
  to_host (unf, dref, len * sizeof (float));
  to_host (gk, dkc, cache_bytes);
  to_host (gv, dvc, cache_bytes);
  to_host (uk, dukc, cache_bytes);
  to_host (uv, duvc, cache_bytes);
  llm_rope (cpu, nh + nkv, hd, pos, theta, il);

  /* q|k rotated as the unfused kernel and the CPU do, v untouched */
  e = rel_l2 (got, unf, qk);
  fail_unless (e <= 2e-6, "%s: q|k relative L2 %g from rope_apply_at", what,
      e);
  e = rel_l2 (got, cpu, qk);
  fail_unless (e <= 2e-6, "%s: q|k relative L2 %g from llm_rope", what, e);
  for (guint i = 0; i < qk; i++)
    n_diff += memcmp (&got[i], &unf[i], 4) != 0;
  fail_unless (memcmp (got + qk, qkv + qk, kv_dim * sizeof (float)) == 0,
      "%s: v changed", what);

  /* the row at the position: the rotated k and the v, stored */
  for (guint i = 0; i < kv_dim; i++) {
    float kv = got[nh * hd + i];

    fail_unless (cache_holds (gk + o, kvt, i, kv),
        "%s: k cache element %u does not hold the rotated k %g", what, i, kv);
    fail_unless (cache_holds (gv + o, kvt, i, qkv[qk + i]),
        "%s: v cache element %u does not hold v %g", what, i, qkv[qk + i]);
    fail_unless (memcmp (gv + o + i * esz, uv + o + i * esz, esz) == 0,
        "%s: v cache element %u is not what kv_store writes", what, i);
    if (memcmp (&kv, &unf[nh * hd + i], 4) == 0)
      fail_unless (memcmp (gk + o + i * esz, uk + o + i * esz, esz) == 0,
          "%s: k cache element %u is not what kv_store writes", what, i);
  }
  /* every other position as it was */
  fail_unless (memcmp (gk, kc, o) == 0 && memcmp (gv, vc, o) == 0,
      "%s: a position before it changed", what);
  fail_unless (memcmp (gk + o + row_bytes, kc + o + row_bytes,
          cache_bytes - o - row_bytes) == 0
      && memcmp (gv + o + row_bytes, vc + o + row_bytes,
          cache_bytes - o - row_bytes) == 0,
      "%s: a position after it changed", what);

  llm_cuda_free (dqkv);
  llm_cuda_free (dref);
  llm_cuda_free (dkc);
  llm_cuda_free (dvc);
  llm_cuda_free (dukc);
  llm_cuda_free (duvc);
  return n_diff;
}

GST_START_TEST (test_rope_kv_store_at)
{
  static const struct
  {
    guint nh, nkv, hd, n_ctx;
    float theta;
  } cases[] = {
    {32, 8, 128, 4100, 500000.0f},      /* Llama-3-8B */
    {8, 4, 8, 4096, 10000.0f},  /* stories260K */
    {6, 3, 6, 4096, 10000.0f},  /* odd */
  };
  static const gint32 positions[] = { 0, 1, 127, 4095 };
  gint32 *dpos = dev_from (NULL, sizeof (gint32));

  for (guint d = 0; d < 2; d++) {
    LlmDType kvt = d ? LLM_DTYPE_F16 : LLM_DTYPE_F32;
    gsize n_diff = 0, n_checked = 0;

    for (guint c = 0; c < G_N_ELEMENTS (cases); c++)
      for (guint il = 0; il < 2; il++)
        for (guint p = 0; p < G_N_ELEMENTS (positions); p++) {
          n_diff += check_rope_kv_store (kvt, cases[c].nh, cases[c].nkv,
              cases[c].hd, cases[c].n_ctx, cases[c].theta, il,
              positions[p], dpos);
          n_checked += (cases[c].nh + cases[c].nkv) * cases[c].hd;
        }
    g_print ("rope_kv_store_at, %s cache: %" G_GSIZE_FORMAT " of %"
        G_GSIZE_FORMAT " rotated q|k elements not bit-identical to "
        "rope_apply_at's\n", llm_dtype_name (kvt), n_diff, n_checked);
  }
  llm_cuda_free (dpos);
}

GST_END_TEST;

/* --- attention_decode_rope_at --- */

/* Count @count (the new token at count - 1) of a random F16 cache of
 * @n_ctx positions: attention_decode_rope_at against rope_kv_store_at then
 * attention_decode_at on the same inputs. Returns the k cache elements of
 * the new row that differ between the two. */
static gsize
check_attention_rope (guint nh, guint nkv, guint hd, guint n_ctx,
    float theta, gboolean il, gint32 count, gint32 * dcount, gint32 * dpos,
    float *dscratch_a, float *dscratch_b)
{
  guint kv_dim = nkv * hd, q_dim = nh * hd, len = q_dim + 2 * kv_dim;
  gsize cache_n = (gsize) n_ctx * kv_dim, bytes = cache_n * 2;
  gint32 pos = count - 1;
  float scale = 1.0f / sqrtf ((float) hd);
  g_autofree float *qkv = random_floats (len, 2.0f);
  g_autofree guint16 *kc = g_new (guint16, cache_n);
  g_autofree guint16 *vc = g_new (guint16, cache_n);
  g_autofree guint16 *ka = g_new (guint16, cache_n);
  g_autofree guint16 *va = g_new (guint16, cache_n);
  g_autofree guint16 *kb = g_new (guint16, cache_n);
  g_autofree guint16 *vb = g_new (guint16, cache_n);
  g_autofree float *oa = g_new (float, q_dim);
  g_autofree float *ob = g_new (float, q_dim);
  g_autofree float *qkv_b = g_new (float, len);
  g_autofree gchar *what = g_strdup_printf ("attention_decode_rope_at "
      "%u/%u heads of %u, %s, count %d", nh, nkv, hd,
      il ? "interleaved" : "rotate-half", count);
  float *dqkv_a, *dqkv_b, *douta, *doutb;
  gpointer dka, dva, dkb, dvb;
  gsize n_diff = 0, row = (gsize) pos * kv_dim;
  double e;

  for (gsize i = 0; i < cache_n; i++) {
    kc[i] = llm_f32_to_f16 ((float) g_rand_double_range (rng, -1.5, 1.5));
    vc[i] = llm_f32_to_f16 ((float) g_rand_double_range (rng, -1.5, 1.5));
  }
  dqkv_a = dev_from (qkv, len * sizeof (float));
  dqkv_b = dev_from (qkv, len * sizeof (float));
  dka = dev_from (kc, bytes);
  dva = dev_from (vc, bytes);
  dkb = dev_from (kc, bytes);
  dvb = dev_from (vc, bytes);
  douta = dev_nan (q_dim);
  doutb = dev_nan (q_dim);
  upload (dcount, &count, sizeof count);
  upload (dpos, &pos, sizeof pos);

  llm_cuda_rope_kv_store_at (dqkv_a, nh, nkv, hd, dka, dva, LLM_DTYPE_F16,
      dpos, theta, il, stream);
  llm_cuda_attention_decode_at (douta, dqkv_a, dka, dva, LLM_DTYPE_F16,
      dcount, n_ctx, nh, nkv, hd, kv_dim, scale, 0, dscratch_a, stream);
  fail_unless (llm_cuda_attention_decode_rope_at (doutb, dqkv_b, dkb, dvb,
          LLM_DTYPE_F16, dcount, n_ctx, nh, nkv, hd, kv_dim, scale, 0, theta,
          il, dscratch_b, stream), "%s: declined", what);
  to_host (oa, douta, q_dim * sizeof (float));
  to_host (ob, doutb, q_dim * sizeof (float));
  to_host (ka, dka, bytes);
  to_host (va, dva, bytes);
  to_host (kb, dkb, bytes);
  to_host (vb, dvb, bytes);
  to_host (qkv_b, dqkv_b, len * sizeof (float));

  e = rel_l2 (ob, oa, q_dim);
  fail_unless (e <= 1e-5, "%s: output relative L2 %g from the unfused "
      "kernels", what, e);
  fail_unless (memcmp (qkv_b, qkv, len * sizeof (float)) == 0,
      "%s: q|k|v changed", what);
  fail_unless (memcmp (vb, va, bytes) == 0, "%s: v cache differs", what);
  fail_unless (memcmp (kb, ka, row * 2) == 0
      && memcmp (kb + row + kv_dim, ka + row + kv_dim,
          (cache_n - row - kv_dim) * 2) == 0,
      "%s: a k cache row other than the new one changed", what);
  fail_unless (memcmp (ka, kc, row * 2) == 0, "%s: the reference changed "
      "the cache before the position", what);
  for (guint i = 0; i < kv_dim; i++) {
    float x = llm_f16_to_f32 (kb[row + i]), y = llm_f16_to_f32 (ka[row + i]);

    n_diff += kb[row + i] != ka[row + i];
    /* one F16 ulp at most, where the two rotations round differently */
    fail_unless (fabsf (x - y) <= 1e-3f * MAX (1.0f, fabsf (y)),
        "%s: new k element %u is %g, not %g", what, i, x, y);
  }

  llm_cuda_free (dqkv_a);
  llm_cuda_free (dqkv_b);
  llm_cuda_free (dka);
  llm_cuda_free (dva);
  llm_cuda_free (dkb);
  llm_cuda_free (dvb);
  llm_cuda_free (douta);
  llm_cuda_free (doutb);
  return n_diff;
}

/* The same for a Q8_0 cache (kv-q8_0.cuh): attention_decode_rope_at
 * against rope_apply_at, kv_store and attention_decode_at. The new key
 * is rotated by two kernels whose arithmetic may differ in the last bit,
 * so its quants may differ by one; every other row, and the value row,
 * must be the same bytes. Returns the new key quants that differ. */
static gsize
check_attention_rope_q8_0 (guint nh, guint nkv, guint hd, guint n_ctx,
    float theta, gboolean il, gint32 count, gint32 * dcount, gint32 * dpos,
    float *dscratch_a, float *dscratch_b)
{
  guint kv_dim = nkv * hd, q_dim = nh * hd, len = q_dim + 2 * kv_dim;
  gsize rb = kv_dim + kv_dim / 32 * 4, bytes = rb * n_ctx;
  gsize cache_n = (gsize) n_ctx * kv_dim;
  gint32 pos = count - 1;
  float scale = 1.0f / sqrtf ((float) hd);
  g_autofree float *qkv = random_floats (len, 2.0f);
  g_autofree float *kf = random_floats (cache_n, 1.5f);
  g_autofree float *vf = random_floats (cache_n, 1.5f);
  g_autofree guint8 *ka = g_malloc (bytes), *va = g_malloc (bytes);
  g_autofree guint8 *kb = g_malloc (bytes), *vb = g_malloc (bytes);
  g_autofree float *oa = g_new (float, q_dim);
  g_autofree float *ob = g_new (float, q_dim);
  g_autofree gchar *what = g_strdup_printf ("attention_decode_rope_at "
      "Q8_0 %u/%u heads of %u, %s, count %d", nh, nkv, hd,
      il ? "interleaved" : "rotate-half", count);
  float *dqkv_a, *dqkv_b, *douta, *doutb, *dkf, *dvf;
  gpointer dka, dva, dkb, dvb;
  gsize n_diff = 0, row = (gsize) pos * rb;
  double e;

  dkf = dev_from (kf, cache_n * sizeof (float));
  dvf = dev_from (vf, cache_n * sizeof (float));
  dka = dev_alloc (bytes);
  dva = dev_alloc (bytes);
  dkb = dev_alloc (bytes);
  dvb = dev_alloc (bytes);
  llm_cuda_kv_store (dka, dva, LLM_DTYPE_Q8_0, dkf, dvf, kv_dim, n_ctx,
      kv_dim, 0, NULL, stream);
  llm_cuda_kv_store (dkb, dvb, LLM_DTYPE_Q8_0, dkf, dvf, kv_dim, n_ctx,
      kv_dim, 0, NULL, stream);
  dqkv_a = dev_from (qkv, len * sizeof (float));
  dqkv_b = dev_from (qkv, len * sizeof (float));
  douta = dev_nan (q_dim);
  doutb = dev_nan (q_dim);
  upload (dcount, &count, sizeof count);
  upload (dpos, &pos, sizeof pos);

  llm_cuda_rope_apply_at (dqkv_a, 1, len, nh + nkv, hd, dpos, theta, il,
      stream);
  llm_cuda_kv_store (dka, dva, LLM_DTYPE_Q8_0, dqkv_a + q_dim,
      dqkv_a + q_dim + kv_dim, len, 1, kv_dim, 0, dpos, stream);
  llm_cuda_attention_decode_at (douta, dqkv_a, dka, dva, LLM_DTYPE_Q8_0,
      dcount, n_ctx, nh, nkv, hd, kv_dim, scale, 0, dscratch_a, stream);
  fail_unless (llm_cuda_attention_decode_rope_at (doutb, dqkv_b, dkb, dvb,
          LLM_DTYPE_Q8_0, dcount, n_ctx, nh, nkv, hd, kv_dim, scale, 0,
          theta, il, dscratch_b, stream), "%s: declined", what);
  to_host (oa, douta, q_dim * sizeof (float));
  to_host (ob, doutb, q_dim * sizeof (float));
  to_host (ka, dka, bytes);
  to_host (va, dva, bytes);
  to_host (kb, dkb, bytes);
  to_host (vb, dvb, bytes);

  e = rel_l2 (ob, oa, q_dim);
  fail_unless (e <= 1e-4, "%s: output relative L2 %g from the unfused "
      "kernels", what, e);
  fail_unless (memcmp (vb, va, bytes) == 0, "%s: v cache differs", what);
  fail_unless (memcmp (kb, ka, row) == 0 && memcmp (kb + row + rb,
          ka + row + rb, bytes - row - rb) == 0,
      "%s: a k cache row other than the new one changed", what);
  for (guint i = 0; i < kv_dim; i++) {
    gint qa = (gint8) ka[row + i], qb = (gint8) kb[row + i];
    float da = ((float *) (ka + row + kv_dim))[i / 32];
    float db = ((float *) (kb + row + kv_dim))[i / 32];

    n_diff += qa != qb;
    fail_unless (fabsf (qa * da - qb * db) <= 1.01f * MAX (da, db),
        "%s: new k element %u is %d x %g, not %d x %g", what, i, qb, db, qa,
        da);
  }

  llm_cuda_free (dkf);
  llm_cuda_free (dvf);
  llm_cuda_free (dqkv_a);
  llm_cuda_free (dqkv_b);
  llm_cuda_free (dka);
  llm_cuda_free (dva);
  llm_cuda_free (dkb);
  llm_cuda_free (dvb);
  llm_cuda_free (douta);
  llm_cuda_free (doutb);
  return n_diff;
}

GST_START_TEST (test_attention_decode_rope_at)
{
  static const struct
  {
    guint nh, nkv, hd;
    float theta;
  } cases[] = {
    {32, 8, 128, 500000.0f},    /* Llama-3-8B */
    {8, 1, 64, 10000.0f},       /* 8 query heads a KV head */
    {6, 3, 256, 10000.0f},      /* groups of 2, widest heads */
  };
  static const gint32 counts[] = { 1, 2, 128, 129, 1000, 4100 };
  const guint n_ctx = 4100;
  gint32 *dcount = dev_from (NULL, sizeof (gint32));
  gint32 *dpos = dev_from (NULL, sizeof (gint32));
  gsize n_diff = 0, n_checked = 0;

  for (guint c = 0; c < G_N_ELEMENTS (cases); c++) {
    gsize sb = llm_cuda_attention_decode_at_scratch_bytes (cases[c].nh,
        cases[c].hd, n_ctx);
    /* one scratch for every count, as the decode step keeps it */
    float *sa = dev_zeroed (sb), *sbuf = dev_zeroed (sb);

    for (guint il = 0; il < 2; il++)
      for (guint p = 0; p < G_N_ELEMENTS (counts); p++) {
        n_diff += check_attention_rope (cases[c].nh, cases[c].nkv,
            cases[c].hd, n_ctx, cases[c].theta, il, counts[p], dcount, dpos,
            sa, sbuf);
        n_checked += cases[c].nkv * cases[c].hd;
      }
    llm_cuda_free (sa);
    llm_cuda_free (sbuf);
  }
  g_print ("attention_decode_rope_at: %" G_GSIZE_FORMAT " of %"
      G_GSIZE_FORMAT " new k elements not bit-identical to "
      "rope_kv_store_at's\n", n_diff, n_checked);

  /* the Q8_0 cache, Llama-3-8B's heads and the widest */
  n_diff = n_checked = 0;
  for (guint c = 0; c < G_N_ELEMENTS (cases); c += 2) {
    gsize sb = llm_cuda_attention_decode_at_scratch_bytes (cases[c].nh,
        cases[c].hd, n_ctx);
    float *sa = dev_zeroed (sb), *sbuf = dev_zeroed (sb);

    for (guint il = 0; il < 2; il++)
      for (guint p = 0; p < G_N_ELEMENTS (counts); p++) {
        n_diff += check_attention_rope_q8_0 (cases[c].nh, cases[c].nkv,
            cases[c].hd, n_ctx, cases[c].theta, il, counts[p], dcount, dpos,
            sa, sbuf);
        n_checked += cases[c].nkv * cases[c].hd;
      }
    llm_cuda_free (sa);
    llm_cuda_free (sbuf);
  }
  g_print ("attention_decode_rope_at, Q8_0 cache: %" G_GSIZE_FORMAT " of %"
      G_GSIZE_FORMAT " new k quants differ (by one) from rope_apply_at + "
      "kv_store's\n", n_diff, n_checked);

  /* what it does not take: an F32 cache, heads of 8 */
  {
    float *d = dev_zeroed (1 << 20);

    fail_if (llm_cuda_attention_decode_rope_at (d, d, d, d, LLM_DTYPE_F32,
            dcount, 16, 8, 4, 128, 512, 1.0f, 0, 10000.0f, FALSE, d, stream),
        "an F32 cache was taken");
    fail_if (llm_cuda_attention_decode_rope_at (d, d, d, d, LLM_DTYPE_F16,
            dcount, 16, 8, 4, 8, 32, 1.0f, 0, 10000.0f, FALSE, d, stream),
        "heads of 8 were taken");
    llm_cuda_free (d);
  }
  llm_cuda_free (dcount);
  llm_cuda_free (dpos);
}

GST_END_TEST;

static Suite *
cuda_fused_suite (void)
{
  Suite *s;
  TCase *tc;

  cuda_test_setup (20261127, NULL);
  n_threads = CLAMP (g_get_num_processors (), 1, 16);
  s = suite_create ("cuda-fused");
  tc = tcase_create ("general");
  tcase_set_timeout (tc, 300);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_matvec_rmsnorm);
  tcase_add_test (tc, test_attention_decode_rope_at);
  tcase_add_test (tc, test_matvec_rmsnorm_swiglu);
  tcase_add_test (tc, test_matvec_rmsnorm_swiglu_declines);
  tcase_add_test (tc, test_matvec_swiglu_add);
  tcase_add_test (tc, test_matvec_swiglu_add_declines);
  tcase_add_test (tc, test_quantize_x_once);
  tcase_add_test (tc, test_matvec_split_rmsnorm);
  tcase_add_test (tc, test_rope_kv_store_at);
  return s;
}

GST_CHECK_MAIN (cuda_fused);
