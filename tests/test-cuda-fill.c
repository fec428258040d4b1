/* LLMasOS - llm_cuda_fill_normal (kernels/fill_random.cu): the random
 * weights of llmasos-bench, made on the device.
 *
 * - Statistics, per dtype (F32, F16, BF16, Q8_0, Q4_0), of about 1.3
 *   million values dequantized on the host with llm_dequantize_row: the
 *   mean within 6 standard errors (6 sigma / sqrt(n)) of the one asked
 *   for, the standard deviation within 0.5 % (2 % for Q4_0, whose 16
 *   levels add about 0.3 % of rounding noise), and the shares within 1 and
 *   2 sigma those of a normal distribution (0.6827, 0.9545) within 0.005
 *   (0.03 for Q4_0). The standard error of the sample deviation is 0.06 %
 *   and that of the shares 0.04 %: the bounds are about ten times that.
 * - The stored formats: the F16, BF16, Q8_0 and Q4_0 fills of a seed are
 *   exactly llm_quantize_row() of the F32 fill of that seed (the kernel
 *   computes each value with the same round-to-nearest operations in
 *   every format), byte for byte.
 * - Seeds: the same seed gives the same bytes; another seed (nearby ones
 *   included) gives different values (fewer than 1 % of elements equal).
 * - Sizes: element i depends on (seed, i) only, so a fill of n elements is
 *   the first n of a longer fill; odd sizes (1, 3, 33, 257, 65537 for the
 *   plain types; 1, 3, 33 blocks for the quantized ones) write every
 *   element (the buffer is pre-set to NaN bytes) and nothing after it (a
 *   guard of 64 bytes keeps its pattern).
 *
 * Without a usable GPU the program says why and exits 77 (meson: SKIP).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <gst/check/gstcheck.h>
#include <math.h>
#include <string.h>

#include "llm-cuda.h"
#include "llm-dtype.h"
#include "test-cuda-common.h"

#define GUARD 64
#define GUARD_BYTE 0xff         /* NaN in F32, F16, BF16 and in a Q scale */


static const LlmDType dtypes[] = {
  LLM_DTYPE_F32, LLM_DTYPE_F16, LLM_DTYPE_BF16, LLM_DTYPE_Q8_0, LLM_DTYPE_Q4_0
};

static gsize
bytes_of (LlmDType dtype, guint64 n)
{
  guint64 b = 0;

  fail_unless (llm_dtype_bytes_for (dtype, n, &b), "size of %" G_GUINT64_FORMAT
      " %s", n, llm_dtype_name (dtype));
  return b;
}

/* The bytes of a fill of @n elements, and GUARD bytes after them (pre-set
 * to GUARD_BYTE, like the fill's own bytes). */
static guint8 *
fill_host (LlmDType dtype, guint64 n, float mean, float std, guint64 seed)
{
  GError *err = NULL;
  gsize bytes = bytes_of (dtype, n);
  guint8 *host = g_malloc (bytes + GUARD);
  void *dev = llm_cuda_alloc (bytes + GUARD, &err);

  fail_unless (dev != NULL, "llm_cuda_alloc: %s", err ? err->message : "?");
  fail_unless (llm_cuda_memset (dev, GUARD_BYTE, bytes + GUARD, stream, &err),
      "memset: %s", err ? err->message : "?");
  llm_cuda_fill_normal (dev, dtype, n, mean, std, seed, stream);
  fail_unless (llm_cuda_stream_sync (stream, &err), "fill: %s",
      err ? err->message : "?");
  fail_unless (llm_cuda_copy (host, dev, bytes + GUARD,
          LLM_CUDA_DEVICE_TO_HOST, NULL, &err), "download: %s",
      err ? err->message : "?");
  llm_cuda_free (dev);
  return host;
}

static float *
dequantize (LlmDType dtype, const guint8 * data, guint64 n)
{
  float *x = g_new (float, n);

  llm_dequantize_row (dtype, data, x, n);
  return x;
}

static void
check_guard (const guint8 * host, LlmDType dtype, guint64 n)
{
  const guint8 *g = host + bytes_of (dtype, n);

  for (guint i = 0; i < GUARD; i++)
    fail_unless (g[i] == GUARD_BYTE, "%s, %" G_GUINT64_FORMAT " elements: "
        "byte %u after the end was written (0x%02x)", llm_dtype_name (dtype),
        n, i, g[i]);
}

/* --- statistics --- */

static void
check_statistics (LlmDType dtype, guint64 n, float mean, float std,
    guint64 seed)
{
  guint8 *host = fill_host (dtype, n, mean, std, seed);
  float *x = dequantize (dtype, host, n);
  double sum = 0, sum2 = 0, m, s, in1 = 0, in2 = 0;
  gboolean q4 = dtype == LLM_DTYPE_Q4_0;

  check_guard (host, dtype, n);
  for (guint64 i = 0; i < n; i++) {
    fail_unless (isfinite (x[i]), "%s: element %" G_GUINT64_FORMAT
        " is not finite", llm_dtype_name (dtype), i);
    sum += x[i];
  }
  m = sum / n;
  for (guint64 i = 0; i < n; i++) {
    double d = x[i] - m;

    sum2 += d * d;
    in1 += fabs (x[i] - mean) < std;
    in2 += fabs (x[i] - mean) < 2 * std;
  }
  s = sqrt (sum2 / (n - 1));
  in1 /= n;
  in2 /= n;
  g_print ("%-5s n %8" G_GUINT64_FORMAT " mean %+.6f (want %+.4f) std "
      "%.6f (want %.4f, ratio %.5f), within 1 sigma %.4f, 2 sigma %.4f\n",
      llm_dtype_name (dtype), n, m, mean, s, std, s / std, in1, in2);

  fail_unless (fabs (m - mean) <= 6 * std / sqrt ((double) n),
      "%s: mean %g, want %g +- %g", llm_dtype_name (dtype), m, mean,
      6 * std / sqrt ((double) n));
  fail_unless (fabs (s / std - 1) <= (q4 ? 0.02 : 0.005),
      "%s: std %g, want %g", llm_dtype_name (dtype), s, std);
  fail_unless (fabs (in1 - 0.6827) <= (q4 ? 0.03 : 0.005),
      "%s: %.4f within 1 sigma, want 0.6827", llm_dtype_name (dtype), in1);
  fail_unless (fabs (in2 - 0.9545) <= (q4 ? 0.03 : 0.005),
      "%s: %.4f within 2 sigma, want 0.9545", llm_dtype_name (dtype), in2);
  g_free (x);
  g_free (host);
}

GST_START_TEST (test_statistics)
{
  /* 32 * 40001 elements: whole blocks, an odd number of them */
  const guint64 n = 32 * 40001;

  for (guint d = 0; d < G_N_ELEMENTS (dtypes); d++) {
    check_statistics (dtypes[d], n, 0.0f, 0.02f, 1);
    check_statistics (dtypes[d], n, 0.5f, 2.0f, 7);
  }
  /* odd counts of plain values, other means and deviations */
  check_statistics (LLM_DTYPE_F32, 1000003, -1.0f, 0.25f, 3);
  check_statistics (LLM_DTYPE_F16, 1000003, 0.0f, 1.0f, 4);
}

GST_END_TEST;

/* --- the stored formats are core's quantization of the same values --- */

GST_START_TEST (test_formats_match_core)
{
  const guint64 n = 32 * 4099;
  const float mean = 0.1f, std = 0.03f;
  const guint64 seed = 0x5eed;
  guint8 *f32 = fill_host (LLM_DTYPE_F32, n, mean, std, seed);

  for (guint d = 1; d < G_N_ELEMENTS (dtypes); d++) {
    LlmDType dtype = dtypes[d];
    gsize bytes = bytes_of (dtype, n), bb = llm_dtype_block_bytes (dtype);
    guint8 *got = fill_host (dtype, n, mean, std, seed);
    guint8 *want = g_malloc (bytes);
    guint64 bad = 0, first = 0;

    llm_quantize_row (dtype, (const float *) f32, want, n);
    for (gsize b = 0; b < bytes / bb; b++) {
      if (memcmp (got + b * bb, want + b * bb, bb) != 0 && bad++ == 0)
        first = b;
    }
    g_print ("%-5s: %" G_GUINT64_FORMAT " of %" G_GSIZE_FORMAT " blocks "
        "differ from llm_quantize_row of the F32 fill\n",
        llm_dtype_name (dtype), bad, bytes / bb);
    fail_unless (bad == 0, "%s: %" G_GUINT64_FORMAT " blocks differ from "
        "llm_quantize_row of the F32 fill, the first at %" G_GUINT64_FORMAT,
        llm_dtype_name (dtype), bad, first);
    g_free (got);
    g_free (want);
  }
  g_free (f32);
}

GST_END_TEST;

/* --- seeds --- */

GST_START_TEST (test_seeds)
{
  const guint64 n = 32 * 10007;

  for (guint d = 0; d < G_N_ELEMENTS (dtypes); d++) {
    LlmDType dtype = dtypes[d];
    gsize bytes = bytes_of (dtype, n), bb = llm_dtype_block_bytes (dtype);
    guint8 *a = fill_host (dtype, n, 0.0f, 0.02f, 42);
    guint8 *b = fill_host (dtype, n, 0.0f, 0.02f, 42);
    const guint64 others[] = { 43, 41, 42ull << 32, 0 };

    fail_unless (memcmp (a, b, bytes) == 0, "%s: seed 42 twice gave "
        "different bytes", llm_dtype_name (dtype));
    for (guint o = 0; o < G_N_ELEMENTS (others); o++) {
      guint8 *c = fill_host (dtype, n, 0.0f, 0.02f, others[o]);
      guint64 same = 0;

      for (gsize i = 0; i < bytes / bb; i++)
        same += memcmp (a + i * bb, c + i * bb, bb) == 0;
      fail_unless (same < bytes / bb / 100, "%s: seeds 42 and %"
          G_GUINT64_FORMAT ": %" G_GUINT64_FORMAT " of %" G_GSIZE_FORMAT
          " elements equal", llm_dtype_name (dtype), others[o], same,
          bytes / bb);
      g_free (c);
    }
    g_free (a);
    g_free (b);
  }
}

GST_END_TEST;

/* --- sizes --- */

GST_START_TEST (test_odd_sizes)
{
  const guint64 plain[] = { 1, 2, 3, 31, 33, 255, 257, 1025, 65537 };
  const guint64 blocks[] = { 1, 2, 3, 33, 255, 1001 };
  const guint64 big = 70001 * 32;

  for (guint d = 0; d < G_N_ELEMENTS (dtypes); d++) {
    LlmDType dtype = dtypes[d];
    gboolean q = llm_dtype_block_elems (dtype) > 1;
    guint8 *ref = fill_host (dtype, big, 0.0f, 1.0f, 9);
    guint n_sizes = q ? G_N_ELEMENTS (blocks) : G_N_ELEMENTS (plain);

    for (guint k = 0; k < n_sizes; k++) {
      guint64 n = q ? blocks[k] * 32 : plain[k];
      guint8 *got = fill_host (dtype, n, 0.0f, 1.0f, 9);
      float *x = dequantize (dtype, got, n);

      for (guint64 i = 0; i < n; i++)
        fail_unless (isfinite (x[i]), "%s, %" G_GUINT64_FORMAT " elements: "
            "element %" G_GUINT64_FORMAT " not written", llm_dtype_name
            (dtype), n, i);
      check_guard (got, dtype, n);
      fail_unless (memcmp (got, ref, bytes_of (dtype, n)) == 0,
          "%s: a fill of %" G_GUINT64_FORMAT " elements is not the start of "
          "a longer one", llm_dtype_name (dtype), n);
      g_free (x);
      g_free (got);
    }
    g_free (ref);
  }
  /* nothing to do: no launch, no error */
  llm_cuda_fill_normal (NULL, LLM_DTYPE_F16, 0, 0.0f, 1.0f, 1, stream);
  fail_unless (llm_cuda_stream_sync (stream, NULL));
}

GST_END_TEST;

/* --- speed (reported, not asserted) --- */

GST_START_TEST (test_speed)
{
  const guint64 n = (guint64) 1 << 29;  /* 1 GiB of F16 */
  GError *err = NULL;
  LlmCudaEvent *start = llm_cuda_event_new (&err), *end =
      llm_cuda_event_new (&err);
  void *dev = llm_cuda_alloc (n * 4, &err);

  fail_unless (start != NULL && end != NULL && dev != NULL, "%s",
      err ? err->message : "?");
  for (guint d = 0; d < G_N_ELEMENTS (dtypes); d++) {
    float ms = 0;

    llm_cuda_fill_normal (dev, dtypes[d], n, 0.0f, 0.02f, 1, stream);
    fail_unless (llm_cuda_event_record (start, stream, &err));
    llm_cuda_fill_normal (dev, dtypes[d], n, 0.0f, 0.02f, 2, stream);
    fail_unless (llm_cuda_event_record (end, stream, &err));
    fail_unless (llm_cuda_event_elapsed_ms (start, end, &ms, &err), "%s",
        err ? err->message : "?");
    g_print ("fill %-5s: %" G_GUINT64_FORMAT " elements in %.2f ms, %.2f "
        "Gelements/s, %.0f GB/s written\n", llm_dtype_name (dtypes[d]), n,
        ms, n / ms / 1e6, bytes_of (dtypes[d], n) / ms / 1e6);
  }
  llm_cuda_free (dev);
  llm_cuda_event_free (start);
  llm_cuda_event_free (end);
}

GST_END_TEST;

static Suite *
cuda_fill_suite (void)
{
  Suite *s;
  TCase *tc;

  cuda_test_setup (1, NULL);         /* (the fill has its own seeds) */
  s = suite_create ("cuda-fill");
  tc = tcase_create ("fill");
  tcase_set_timeout (tc, 300);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_statistics);
  tcase_add_test (tc, test_formats_match_core);
  tcase_add_test (tc, test_seeds);
  tcase_add_test (tc, test_odd_sizes);
  tcase_add_test (tc, test_speed);
  return s;
}

GST_CHECK_MAIN (cuda_fill);
