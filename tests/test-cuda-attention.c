/* LLMasOS - the CUDA attention kernels of a decode step under a CUDA graph
 * (llm_cuda_attention_decode_at) and of prompt prefill
 * (llm_cuda_attention_prefill) against llm_attention_causal_strided().
 *
 * Random queries, keys and values; several head shapes (Llama-3-8B's
 * 32 q / 8 kv x 128, Gemma 3 270M's 4 / 1 x 256, stories260K's 8 / 4 x 8,
 * plain multi-head x 64, odd head sizes), GQA ratios 1, 2 and 4, sliding
 * windows, scales other than 1/sqrt(head_dim), F32 and F16 caches (the CPU
 * gets the F16-rounded keys and values), and Q8_0 caches: the append
 * kernel's rounding must equal core's Q8_0 bit for bit, its widening to
 * F16 (for prefill) the F16 of each value, and decode_at over it the CPU's
 * attention over the rounded values within 1e-5. Errors are measured as in
 * test-kernels-cuda.c: |got - want| / |m|, m = sum_p p_p |v_p| over the
 * positions a query sees. Bounds:
 *
 * - decode_at, F32 and F16 caches: 1e-5 of the magnitude (F32 arithmetic
 *   throughout; only the order of the additions differs).
 * - prefill on the F32 tiled kernel (F32 caches, and F16 caches whose
 *   head_dim is not 64/128/256 or whose rows are not 16-byte aligned):
 *   1e-5.
 * - prefill on the tensor-core kernels (F16 cache, head_dim 64/128/256):
 *   1e-3. The kernels round q to F16 (the test hands the CPU the same
 *   rounded q) and the softmax probabilities to F16 for the P.V product:
 *   each probability is off by at most 2^-11 of itself, so the output by
 *   at most 2^-11 = 4.9e-4 of the magnitude, plus F32 rounding. Long
 *   prompts (up to 2048 tokens, from 0 and after a cached prefix) reach
 *   the 32-row-warp blocks of attention_prefill_mma.cu, short ones its
 *   16-row-warp blocks; the output is filled with NaN first, so that an
 *   element no kernel writes fails.
 *
 * The decode_at test keeps one grid, one scratch buffer and one cache of
 * 4100 positions, and changes only the position count in device memory
 * between launches, as a replayed CUDA graph would; counts of 1, 2, 31,
 * 1000 and 4097, a count above the cache (clamped) and a count of 0
 * (zeros) are checked; then the launch is captured once as a CUDA graph
 * (llm_cuda_graph_begin/end) and replayed at other counts.
 *
 * Without a usable GPU the program says why and exits 77 (meson: SKIP).
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


/* --- helpers (the shared ones: test-cuda-common.h) --- */

/* mag[h][d] = sum_p p_p |v_p[d]| for the query @q (all heads) at @qpos,
 * p the softmax of its scaled scores over the positions it sees. */
static void
magnitude (double *mag, const float *q, const float *k, const float *v,
    guint qpos, guint n_heads, guint n_kv_heads, guint head_dim,
    gsize stride, float scale, guint window)
{
  guint group = n_heads / n_kv_heads;
  guint lo = window > 0 && qpos + 1 > window ? qpos + 1 - window : 0;
  double *p = g_new (double, qpos + 1);

  for (guint h = 0; h < n_heads; h++) {
    gsize kvo = (gsize) (h / group) * head_dim;
    double mx = -INFINITY, sum = 0.0;

    for (guint t = lo; t <= qpos; t++) {
      double sc = 0.0;

      for (guint d = 0; d < head_dim; d++)
        sc += (double) q[(gsize) h * head_dim + d] * k[t * stride + kvo + d];
      p[t] = sc * scale;
      mx = MAX (mx, p[t]);
    }
    for (guint t = lo; t <= qpos; t++) {
      p[t] = exp (p[t] - mx);
      sum += p[t];
    }
    for (guint d = 0; d < head_dim; d++) {
      double m = 0.0;

      for (guint t = lo; t <= qpos; t++)
        m += p[t] * fabs ((double) v[t * stride + kvo + d]);
      mag[(gsize) h * head_dim + d] = m / sum;
    }
  }
  g_free (p);
}

/* Random keys and values of @n floats; for F16, their F16 bits in @k16,
 * @v16 and the rounded values back in @k, @v. */
static void
random_cache (float *k, float *v, guint16 * k16, guint16 * v16, gsize n,
    gboolean f16)
{
  fill_random (k, n, 1.0f);
  fill_random (v, n, 1.0f);
  if (!f16)
    return;
  for (gsize i = 0; i < n; i++) {
    k16[i] = llm_f32_to_f16 (k[i]);
    v16[i] = llm_f32_to_f16 (v[i]);
    k[i] = llm_f16_to_f32 (k16[i]);
    v[i] = llm_f16_to_f32 (v16[i]);
  }
}

/* --- decode_at --- */

#define MAX_POS 4100

static void
set_count (gint32 * dcount, gint32 n)
{
  GError *err = NULL;

  fail_unless (llm_cuda_copy (dcount, &n, sizeof n, LLM_CUDA_HOST_TO_DEVICE,
          NULL, &err), "count: %s", err ? err->message : "?");
}

GST_START_TEST (test_decode_at)
{
  static const struct
  {
    guint n_heads, n_kv_heads, head_dim, pad, window;
    float scale_mul;            /* scale = scale_mul / sqrt(head_dim) */
    float q_scale;              /* > 1: peaked softmax */
  } shapes[] = {
    {32, 8, 128, 0, 0, 1.0f, 1.0f},
    {32, 8, 128, 0, 0, 1.0f, 8.0f},
    {8, 4, 8, 0, 0, 1.0f, 1.0f},
    {4, 1, 256, 0, 512, 1.0f, 2.0f},
    {12, 12, 64, 3, 0, 0.7f, 1.0f},
    {6, 2, 96, 0, 100, 1.3f, 1.0f},
  };
  static const gint32 counts[] = { 1, 2, 31, 1000, 4097, 300, 5000 };
  static const LlmDType kv_types[] = { LLM_DTYPE_F32, LLM_DTYPE_F16 };
  double worst[2] = { 0.0, 0.0 };

  for (guint c = 0; c < G_N_ELEMENTS (shapes); c++) {
    for (guint kt = 0; kt < G_N_ELEMENTS (kv_types); kt++) {
      guint nh = shapes[c].n_heads, nkv = shapes[c].n_kv_heads;
      guint hd = shapes[c].head_dim, window = shapes[c].window;
      float scale = shapes[c].scale_mul / sqrtf ((float) hd);
      gsize stride = (gsize) nkv * hd + shapes[c].pad;
      gsize nkvf = stride * MAX_POS, qn = (gsize) nh * hd;
      gboolean f16 = kv_types[kt] == LLM_DTYPE_F16;
      gsize es = f16 ? 2 : 4;
      float *q = g_new (float, qn), *k = g_new (float, nkvf);
      float *v = g_new (float, nkvf), *want = g_new (float, qn);
      float *got = g_new (float, qn), *scratch = g_new (float, MAX_POS);
      double *mag = g_new (double, qn);
      guint16 *k16 = g_new (guint16, nkvf), *v16 = g_new (guint16, nkvf);
      gpointer dq, dk, dv, dout, dscratch;
      gint32 *dcount;

      random_cache (k, v, k16, v16, nkvf, f16);
      dk = dev_from (f16 ? (gpointer) k16 : (gpointer) k, nkvf * es);
      dv = dev_from (f16 ? (gpointer) v16 : (gpointer) v, nkvf * es);
      dq = dev_alloc (qn * sizeof (float));
      dout = dev_alloc (qn * sizeof (float));
      dcount = dev_alloc (sizeof (gint32));
      dscratch = dev_zeroed (llm_cuda_attention_decode_at_scratch_bytes (nh,
              hd, MAX_POS));

      /* One grid for every count, as a replayed graph runs it. */
      for (guint i = 0; i < G_N_ELEMENTS (counts); i++) {
        guint np = MIN ((guint) counts[i], MAX_POS);   /* clamped */
        gchar *what;

        fill_random (q, qn, shapes[c].q_scale);
        llm_attention_causal_strided (want, qn, q, qn, k, v, stride, 1,
            np - 1, nh, nkv, hd, scale, window, scratch);
        magnitude (mag, q, k, v, np - 1, nh, nkv, hd, stride, scale, window);
        fail_unless (llm_cuda_copy (dq, q, qn * sizeof (float),
                LLM_CUDA_HOST_TO_DEVICE, NULL, NULL));
        set_count (dcount, counts[i]);
        llm_cuda_attention_decode_at (dout, dq, dk, dv, kv_types[kt], dcount,
            MAX_POS, nh, nkv, hd, stride, scale, window, dscratch, stream);
        to_host (got, dout, qn * sizeof (float));
        what = g_strdup_printf ("decode_at %s count %d/%u, %u/%u heads x%u, "
            "window %u", llm_dtype_name (kv_types[kt]), counts[i], MAX_POS,
            nh, nkv, hd, window);
        check_mag (got, want, mag, qn, 1e-5, &worst[kt], what);
        g_free (what);
      }

      /* Captured once as a CUDA graph, replayed at other counts. */
      {
        static const gint32 replay[] = { 4097, 31, 1000, 1 };
        GError *err = NULL;
        LlmCudaGraph *graph;

        fail_unless (llm_cuda_graph_begin (stream, &err), "begin: %s",
            err ? err->message : "?");
        llm_cuda_attention_decode_at (dout, dq, dk, dv, kv_types[kt], dcount,
            MAX_POS, nh, nkv, hd, stride, scale, window, dscratch, stream);
        graph = llm_cuda_graph_end (stream, &err);
        fail_unless (graph != NULL, "capture: %s", err ? err->message : "?");
        for (guint i = 0; i < G_N_ELEMENTS (replay); i++) {
          guint np = replay[i];
          gchar *what;

          fill_random (q, qn, shapes[c].q_scale);
          llm_attention_causal_strided (want, qn, q, qn, k, v, stride, 1,
              np - 1, nh, nkv, hd, scale, window, scratch);
          magnitude (mag, q, k, v, np - 1, nh, nkv, hd, stride, scale,
              window);
          fail_unless (llm_cuda_copy (dq, q, qn * sizeof (float),
                  LLM_CUDA_HOST_TO_DEVICE, NULL, NULL));
          set_count (dcount, replay[i]);
          fail_unless (llm_cuda_graph_launch (graph, stream, &err),
              "replay: %s", err ? err->message : "?");
          to_host (got, dout, qn * sizeof (float));
          what = g_strdup_printf ("decode_at (graph) %s count %u, %u/%u "
              "heads x%u, window %u", llm_dtype_name (kv_types[kt]), np, nh,
              nkv, hd, window);
          check_mag (got, want, mag, qn, 1e-5, &worst[kt], what);
          g_free (what);
        }
        llm_cuda_graph_free (graph);
      }

      /* A count of 0: nothing to see, zeros. */
      set_count (dcount, 0);
      llm_cuda_attention_decode_at (dout, dq, dk, dv, kv_types[kt], dcount,
          MAX_POS, nh, nkv, hd, stride, scale, window, dscratch, stream);
      to_host (got, dout, qn * sizeof (float));
      for (gsize i = 0; i < qn; i++)
        fail_unless (got[i] == 0.0f, "count 0: element %" G_GSIZE_FORMAT
            " is %g", i, got[i]);

      llm_cuda_free (dq);
      llm_cuda_free (dk);
      llm_cuda_free (dv);
      llm_cuda_free (dout);
      llm_cuda_free (dcount);
      llm_cuda_free (dscratch);
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
  g_print ("attention_decode_at: worst error %.3g of the magnitude with an "
      "F32 cache, %.3g with F16 (bound 1e-5)\n", worst[0], worst[1]);
}

GST_END_TEST;

/* --- prefill --- */

GST_START_TEST (test_prefill)
{
  static const struct
  {
    guint n_tokens, pos0, n_heads, n_kv_heads, head_dim;
    guint kv_pad, q_pad, window;
    float scale_mul, q_scale;
  } cases[] = {
    {1, 0, 8, 4, 8, 0, 0, 0, 1.0f, 1.0f},
    {37, 5, 8, 4, 8, 0, 0, 0, 1.0f, 1.0f},
    {129, 0, 32, 8, 128, 0, 0, 0, 1.0f, 1.0f},
    {77, 300, 32, 8, 128, 0, 1024, 64, 1.0f, 4.0f},
    {200, 17, 4, 1, 256, 0, 0, 0, 1.0f, 2.0f},
    {65, 0, 4, 1, 256, 0, 0, 33, 1.3f, 1.0f},
    {100, 40, 12, 12, 64, 0, 0, 0, 0.7f, 1.0f},
    {53, 10, 6, 3, 96, 0, 0, 0, 1.0f, 1.0f},
    {513, 0, 16, 8, 64, 0, 0, 0, 1.0f, 8.0f},
    {31, 2, 8, 2, 64, 3, 5, 7, 1.0f, 1.0f},
    {2, 4095, 32, 8, 128, 0, 0, 0, 1.0f, 1.0f},
    /* Long prompts (F16 only, every 8th token and the edges checked):
     * Llama-3-8B with q inside a fused q|k|v row, from 0 and after a
     * cached prefix; head_dim 64 with GQA 4 and a window. */
    {2048, 0, 32, 8, 128, 0, 2048, 0, 1.0f, 1.0f},
    {1531, 700, 32, 8, 128, 0, 0, 0, 1.0f, 3.0f},
    {1100, 900, 32, 8, 64, 0, 0, 300, 1.0f, 2.0f},
  };
  static const LlmDType kv_types[] = { LLM_DTYPE_F32, LLM_DTYPE_F16 };
  double worst[3] = { 0.0, 0.0, 0.0 };  /* F32, F16 tiled, F16 tensor cores */

  for (guint c = 0; c < G_N_ELEMENTS (cases); c++) {
    for (guint kt = 0; kt < G_N_ELEMENTS (kv_types); kt++) {
      guint nt = cases[c].n_tokens, pos0 = cases[c].pos0;
      guint nh = cases[c].n_heads, nkv = cases[c].n_kv_heads;
      guint hd = cases[c].head_dim, window = cases[c].window;
      guint np = pos0 + nt;
      float scale = cases[c].scale_mul / sqrtf ((float) hd);
      gsize stride = (gsize) nkv * hd + cases[c].kv_pad;
      gsize qstride = (gsize) nh * hd + cases[c].q_pad;
      gsize nkvf = stride * np, qn = qstride * nt, row = (gsize) nh * hd;
      gboolean f16 = kv_types[kt] == LLM_DTYPE_F16;
      gboolean sampled = nt > 1024;
      guint n_checked = 0, *checked = g_new (guint, nt);
      gboolean tc = f16 && (hd == 64 || hd == 128 || hd == 256)
          && stride % 8 == 0;
      gsize es = f16 ? 2 : 4;
      float *q, *k, *v, *want, *got, *all, *scratch;
      double *mag;
      guint16 *k16 = g_new (guint16, nkvf), *v16 = g_new (guint16, nkvf);
      gpointer dq, dk, dv, dout;
      gchar *what;

      if (sampled && !f16) {    /* the F32 kernels are the short cases' */
        g_free (checked);
        continue;
      }
      for (guint t = 0; t < nt; t++)
        if (!sampled || t % 8 == 0 || t < 64 || t + 64 >= nt)
          checked[n_checked++] = t;
      q = g_new (float, qn);
      k = g_new (float, nkvf);
      v = g_new (float, nkvf);
      want = g_new (float, n_checked * row);
      got = g_new (float, n_checked * row);
      all = g_new (float, nt * row);
      scratch = g_new (float, np);
      mag = g_new (double, n_checked * row);
      random_cache (k, v, k16, v16, nkvf, f16);
      fill_random (q, qn, cases[c].q_scale);
      if (tc)
        for (gsize i = 0; i < qn; i++)
          q[i] = llm_f16_to_f32 (llm_f32_to_f16 (q[i]));
      for (guint i = 0; i < n_checked; i++) {
        guint t = checked[i];

        llm_attention_causal_strided (want + i * row, row, q + t * qstride,
            qstride, k, v, stride, 1, pos0 + t, nh, nkv, hd, scale, window,
            scratch);
        magnitude (mag + i * row, q + t * qstride, k, v, pos0 + t, nh, nkv,
            hd, stride, scale, window);
      }

      dq = dev_from (q, qn * sizeof (float));
      dk = dev_from (f16 ? (gpointer) k16 : (gpointer) k, nkvf * es);
      dv = dev_from (f16 ? (gpointer) v16 : (gpointer) v, nkvf * es);
      dout = dev_alloc (nt * row * sizeof (float));
      /* NaN everywhere first: an element the kernel skips fails. */
      fail_unless (llm_cuda_memset (dout, 0xff, nt * row * sizeof (float),
              stream, NULL));
      llm_cuda_attention_prefill (dout, dq, qstride, dk, dv, kv_types[kt],
          pos0, nt, nh, nkv, hd, stride, scale, window, stream);
      to_host (all, dout, nt * row * sizeof (float));
      for (guint i = 0; i < n_checked; i++)
        memcpy (got + i * row, all + (gsize) checked[i] * row,
            row * sizeof (float));
      for (gsize i = 0; i < nt * row; i++)
        fail_unless (isfinite (all[i]), "prefill: element %" G_GSIZE_FORMAT
            " of %u tokens not written", i, nt);
      what = g_strdup_printf ("prefill %s%s %u tokens at %u, %u/%u heads x%u, "
          "window %u", llm_dtype_name (kv_types[kt]),
          tc ? " (tensor cores)" : "", nt, pos0, nh, nkv, hd, window);
      check_mag (got, want, mag, n_checked * row, tc ? 1e-3 : 1e-5,
          &worst[tc ? 2 : kt], what);

      llm_cuda_free (dq);
      llm_cuda_free (dk);
      llm_cuda_free (dv);
      llm_cuda_free (dout);
      g_free (what);
      g_free (q);
      g_free (k);
      g_free (v);
      g_free (k16);
      g_free (v16);
      g_free (want);
      g_free (got);
      g_free (all);
      g_free (scratch);
      g_free (mag);
      g_free (checked);
    }
  }
  g_print ("attention_prefill: worst error %.3g of the magnitude with an F32 "
      "cache, %.3g with F16 on the F32 kernel (bound 1e-5), %.3g on tensor "
      "cores (bound 1e-3)\n", worst[0], worst[1], worst[2]);
}

GST_END_TEST;

/* --- the Q8_0 cache --- */

/* Rows 0 .. @n_pos - 1 of the device Q8_0 cache @dcache (kv-q8_0.cuh:
 * @stride int8 quants, then a float scale a block) against core's Q8_0
 * rounding of @x, which must match it exactly; @x becomes the rounded
 * values, as the attention sees them. */
static void
check_q8_0_cache (float *x, gconstpointer dcache, guint n_pos, gsize stride,
    const gchar * what)
{
  gsize rb = stride + stride / 32 * 4, nb = stride / 32;
  g_autofree guint8 *cache = g_malloc (rb * n_pos);
  g_autofree LlmBlockQ8_0 *blocks = g_new (LlmBlockQ8_0, nb);

  to_host (cache, dcache, rb * n_pos);
  for (guint p = 0; p < n_pos; p++) {
    const gint8 *q = (const gint8 *) (cache + p * rb);
    const float *d = (const float *) (cache + p * rb + stride);

    llm_quantize_row (LLM_DTYPE_Q8_0, x + p * stride, blocks, stride);
    for (gsize b = 0; b < nb; b++) {
      float want_d = llm_f16_to_f32 (blocks[b].d);

      fail_unless (d[b] == want_d, "%s: position %u block %" G_GSIZE_FORMAT
          " scale %g, core's %g", what, p, b, d[b], want_d);
      for (guint j = 0; j < 32; j++) {
        fail_unless (q[32 * b + j] == blocks[b].qs[j], "%s: position %u "
            "element %" G_GSIZE_FORMAT " quant %d, core's %d", what, p,
            32 * b + j, q[32 * b + j], blocks[b].qs[j]);
        x[p * stride + 32 * b + j] = (float) q[32 * b + j] * d[b];
      }
    }
  }
}

GST_START_TEST (test_decode_q8_0)
{
  static const struct
  {
    guint n_heads, n_kv_heads, head_dim, window;
    float q_scale;
  } shapes[] = {
    {32, 8, 128, 0, 1.0f},      /* Llama-3-8B: the fast kernel */
    {32, 8, 128, 0, 8.0f},
    {4, 1, 256, 512, 2.0f},     /* fast, window */
    {8, 4, 8, 0, 1.0f},         /* stories260K: the general kernel */
    {6, 2, 96, 100, 1.0f},      /* general, window */
  };
  static const gint32 counts[] = { 1, 2, 31, 1000, 4097, 300 };
  double worst = 0.0;

  for (guint c = 0; c < G_N_ELEMENTS (shapes); c++) {
    guint nh = shapes[c].n_heads, nkv = shapes[c].n_kv_heads;
    guint hd = shapes[c].head_dim, window = shapes[c].window;
    float scale = 1.0f / sqrtf ((float) hd);
    gsize stride = (gsize) nkv * hd, nkvf = stride * MAX_POS;
    gsize qn = (gsize) nh * hd, rb = stride + stride / 32 * 4;
    g_autofree float *q = g_new (float, qn);
    g_autofree float *k = g_new (float, nkvf);
    g_autofree float *v = g_new (float, nkvf);
    g_autofree float *want = g_new (float, qn);
    g_autofree float *got = g_new (float, qn);
    g_autofree float *scratch = g_new (float, MAX_POS);
    g_autofree double *mag = g_new (double, qn);
    g_autofree guint16 *k16 = g_new (guint16, nkvf);
    g_autofree guint16 *v16 = g_new (guint16, nkvf);
    g_autofree gchar *what = g_strdup_printf ("Q8_0 cache, %u/%u heads x%u",
        nh, nkv, hd);
    gpointer dsrc_k, dsrc_v, dk, dv, dk16, dv16, dq, dout, dscratch;
    gint32 *dcount;

    fill_random (k, nkvf, 1.0f);
    fill_random (v, nkvf, 1.0f);
    /* the append kernel rounds every position, in two calls */
    dsrc_k = dev_from (k, nkvf * sizeof (float));
    dsrc_v = dev_from (v, nkvf * sizeof (float));
    dk = dev_alloc (rb * MAX_POS);
    dv = dev_alloc (rb * MAX_POS);
    llm_cuda_kv_store (dk, dv, LLM_DTYPE_Q8_0, dsrc_k, dsrc_v, stride, 1000,
        stride, 0, NULL, stream);
    llm_cuda_kv_store (dk, dv, LLM_DTYPE_Q8_0, (float *) dsrc_k + 1000
        * stride, (float *) dsrc_v + 1000 * stride, stride, MAX_POS - 1000,
        stride, 1000, NULL, stream);
    check_q8_0_cache (k, dk, MAX_POS, stride, what);
    check_q8_0_cache (v, dv, MAX_POS, stride, what);

    /* widened to F16 for the prefill attention: the F16 of each value */
    dk16 = dev_alloc (nkvf * 2);
    dv16 = dev_alloc (nkvf * 2);
    llm_cuda_kv_dequantize_f16 (dk16, dv16, dk, dv, MAX_POS, stride, stream);
    to_host (k16, dk16, nkvf * 2);
    to_host (v16, dv16, nkvf * 2);
    for (gsize i = 0; i < nkvf; i++)
      fail_unless (k16[i] == llm_f32_to_f16 (k[i])
          && v16[i] == llm_f32_to_f16 (v[i]), "%s: element %" G_GSIZE_FORMAT
          " widened to %g / %g, not %g / %g", what, i,
          llm_f16_to_f32 (k16[i]), llm_f16_to_f32 (v16[i]), k[i], v[i]);

    dq = dev_alloc (qn * sizeof (float));
    dout = dev_alloc (qn * sizeof (float));
    dcount = dev_alloc (sizeof (gint32));
    dscratch = dev_zeroed (llm_cuda_attention_decode_at_scratch_bytes (nh,
            hd, MAX_POS));
    for (guint i = 0; i < G_N_ELEMENTS (counts); i++) {
      guint np = counts[i];
      g_autofree gchar *at = g_strdup_printf ("%s, count %u", what, np);

      fill_random (q, qn, shapes[c].q_scale);
      llm_attention_causal_strided (want, qn, q, qn, k, v, stride, 1, np - 1,
          nh, nkv, hd, scale, window, scratch);
      magnitude (mag, q, k, v, np - 1, nh, nkv, hd, stride, scale, window);
      upload (dq, q, qn * sizeof (float));
      set_count (dcount, counts[i]);
      llm_cuda_attention_decode_at (dout, dq, dk, dv, LLM_DTYPE_Q8_0, dcount,
          MAX_POS, nh, nkv, hd, stride, scale, window, dscratch, stream);
      to_host (got, dout, qn * sizeof (float));
      check_mag (got, want, mag, qn, 1e-5, &worst, at);
    }
    llm_cuda_free (dsrc_k);
    llm_cuda_free (dsrc_v);
    llm_cuda_free (dk);
    llm_cuda_free (dv);
    llm_cuda_free (dk16);
    llm_cuda_free (dv16);
    llm_cuda_free (dq);
    llm_cuda_free (dout);
    llm_cuda_free (dcount);
    llm_cuda_free (dscratch);
  }
  g_print ("attention_decode_at: Q8_0 cache bit-identical to core's "
      "rounding; worst error %.3g of the magnitude against the CPU over the "
      "rounded keys and values (bound 1e-5)\n", worst);
}

GST_END_TEST;

static Suite *
cuda_attention_suite (void)
{
  Suite *s;
  TCase *tc;

  cuda_test_setup (20261126, NULL);
  s = suite_create ("cuda-attention");
  tc = tcase_create ("attention");

  tcase_set_timeout (tc, 300);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_decode_at);
  tcase_add_test (tc, test_prefill);
  tcase_add_test (tc, test_decode_q8_0);
  return s;
}

GST_CHECK_MAIN (cuda_attention);
