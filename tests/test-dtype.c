/* Element types: the type table, half-float conversions, Q8_0 / Q4_0 and
 * dot products on packed rows.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <gst/check/gstcheck.h>
#include <math.h>
#include <string.h>

#include "llm-dtype.h"
#include "test-common.h"

static guint32
bits_of (float f)
{
  guint32 u;

  memcpy (&u, &f, 4);
  return u;
}

static float
float_of (guint32 u)
{
  float f;

  memcpy (&f, &u, 4);
  return f;
}

/* Values drawn from a fixed seed, with a spread of magnitudes. */
static void
random_row (GRand * rand, float *x, gsize n, gdouble scale)
{
  for (gsize i = 0; i < n; i++)
    x[i] = g_rand_double_range (rand, -scale, scale);
}

GST_START_TEST (test_table)
{
  const struct
  {
    LlmDType t;
    const gchar *name;
    guint elems, bytes;
    gboolean compute;
  } want[] = {
    {LLM_DTYPE_F32, "F32", 1, 4, TRUE},
    {LLM_DTYPE_F16, "F16", 1, 2, TRUE},
    {LLM_DTYPE_BF16, "BF16", 1, 2, TRUE},
    {LLM_DTYPE_Q8_0, "Q8_0", 32, 34, TRUE},
    {LLM_DTYPE_Q4_0, "Q4_0", 32, 18, TRUE},
    {LLM_DTYPE_Q4_1, "Q4_1", 32, 20, FALSE},
    {LLM_DTYPE_Q5_0, "Q5_0", 32, 22, TRUE},
    {LLM_DTYPE_Q5_1, "Q5_1", 32, 24, FALSE},
    {LLM_DTYPE_Q8_1, "Q8_1", 32, 36, FALSE},
    {LLM_DTYPE_Q2_K, "Q2_K", 256, 84, TRUE},
    {LLM_DTYPE_Q3_K, "Q3_K", 256, 110, TRUE},
    {LLM_DTYPE_Q4_K, "Q4_K", 256, 144, TRUE},
    {LLM_DTYPE_Q5_K, "Q5_K", 256, 176, TRUE},
    {LLM_DTYPE_Q6_K, "Q6_K", 256, 210, TRUE},
    {LLM_DTYPE_Q8_K, "Q8_K", 256, 292, TRUE},
    {LLM_DTYPE_I8, "I8", 1, 1, FALSE},
    {LLM_DTYPE_I16, "I16", 1, 2, FALSE},
    {LLM_DTYPE_I32, "I32", 1, 4, FALSE},
    {LLM_DTYPE_I64, "I64", 1, 8, FALSE},
    {LLM_DTYPE_F64, "F64", 1, 8, FALSE},
  };
  guint64 bytes;

  for (guint i = 0; i < G_N_ELEMENTS (want); i++) {
    g_autofree gchar *lower = g_ascii_strdown (want[i].name, -1);

    fail_unless_equals_string (llm_dtype_name (want[i].t), want[i].name);
    fail_unless_equals_int (llm_dtype_from_name (lower), want[i].t);
    fail_unless (llm_dtype_is_known (want[i].t));
    fail_unless_equals_int (llm_dtype_block_elems (want[i].t), want[i].elems);
    fail_unless_equals_int (llm_dtype_block_bytes (want[i].t), want[i].bytes);
    fail_unless_equals_int (llm_dtype_can_compute (want[i].t), want[i].compute);
    fail_unless (llm_dtype_bytes_for (want[i].t, want[i].elems * 3, &bytes));
    fail_unless_equals_uint64 (bytes, want[i].bytes * 3);
  }

  /* GGML numbers that are not types, or were removed (Q4_2 = 4) */
  fail_if (llm_dtype_is_known (4));
  fail_if (llm_dtype_is_known (31));
  fail_if (llm_dtype_is_known (-1));
  fail_unless (llm_dtype_name (4) == NULL);
  fail_unless_equals_int (llm_dtype_from_name ("q4_2"), LLM_DTYPE_UNKNOWN);
  fail_unless_equals_int (llm_dtype_block_bytes (4), 0);

  /* partial blocks and overflow */
  fail_if (llm_dtype_bytes_for (LLM_DTYPE_Q8_0, 33, &bytes));
  fail_if (llm_dtype_bytes_for (LLM_DTYPE_F32, G_MAXUINT64 / 2, &bytes));
  /* Q8_K blocks are larger (292 bytes) than their 256 elements */
  fail_if (llm_dtype_bytes_for (LLM_DTYPE_Q8_K,
          (G_MAXUINT64 / 256) * 256, &bytes));
  fail_unless (llm_dtype_bytes_for (LLM_DTYPE_F32, 0, &bytes));
  fail_unless_equals_uint64 (bytes, 0);
}

GST_END_TEST;

GST_START_TEST (test_f16_known)
{
  const struct
  {
    float f;
    guint16 h;
  } exact[] = {
    {0.0f, 0x0000}, {-0.0f, 0x8000}, {1.0f, 0x3c00}, {-2.0f, 0xc000},
    {0.5f, 0x3800}, {65504.0f, 0x7bff}, {0x1p-14f, 0x0400},
    {0x1p-24f, 0x0001}, {0x1.ff8p-15f, 0x03ff}, {1.0f + 0x1p-10f, 0x3c01},
    {INFINITY, 0x7c00}, {-INFINITY, 0xfc00},
  };
  const struct
  {
    float f;
    guint16 h;
  } rounded[] = {
    {0.1f, 0x2e66}, {1.0f / 3, 0x3555}, {3.14159265f, 0x4248},
    /* halfway cases go to the even mantissa */
    {1.0f + 0x1p-11f, 0x3c00}, {1.0f + 3 * 0x1p-11f, 0x3c02},
    {65519.0f, 0x7bff}, {65520.0f, 0x7c00}, {1e6f, 0x7c00},
    /* subnormal rounding: 2^-25 is halfway to 0 -> 0; above it -> 1 */
    {0x1p-25f, 0x0000}, {0x1.000002p-25f, 0x0001}, {0x1.8p-24f, 0x0002},
    {0x1p-30f, 0x0000}, {-0x1p-30f, 0x8000},
    /* the largest subnormal plus a bit rounds up into the normals */
    {0x1.ffep-15f, 0x0400},
  };

  for (guint i = 0; i < G_N_ELEMENTS (exact); i++) {
    fail_unless_equals_int (llm_f32_to_f16 (exact[i].f), exact[i].h);
    fail_unless_equals_int (bits_of (llm_f16_to_f32 (exact[i].h)),
        bits_of (exact[i].f));
  }
  for (guint i = 0; i < G_N_ELEMENTS (rounded); i++)
    fail_unless (llm_f32_to_f16 (rounded[i].f) == rounded[i].h,
        "f16 (%a) = 0x%04x, expected 0x%04x", rounded[i].f,
        llm_f32_to_f16 (rounded[i].f), rounded[i].h);

  /* NaN stays NaN */
  fail_unless ((llm_f32_to_f16 (NAN) & 0x7c00) == 0x7c00);
  fail_unless ((llm_f32_to_f16 (NAN) & 0x03ff) != 0);
  fail_unless (isnan (llm_f16_to_f32 (0x7e00)));
  fail_unless (isnan (llm_f16_to_f32 (0xfc01)));
}

GST_END_TEST;

GST_START_TEST (test_f16_round_trip)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed (7);

  /* every half survives f16 -> f32 -> f16 */
  for (guint h = 0; h < 0x10000; h++) {
    float f = llm_f16_to_f32 (h);

    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0) {
      fail_unless (isnan (f));
      continue;
    }
    fail_unless (llm_f32_to_f16 (f) == h, "0x%04x -> %a -> 0x%04x", h, f,
        llm_f32_to_f16 (f));
  }

  /* random floats land on the nearest half */
  for (guint i = 0; i < 200000; i++) {
    float f = float_of (g_rand_int (rand));
    guint16 h;
    float back, next, err;

    if (isnan (f) || fabsf (f) >= 65504.0f)
      continue;
    h = llm_f32_to_f16 (f);
    back = llm_f16_to_f32 (h);
    err = fabsf (back - f);
    /* neither neighbour of @h is closer to @f */
    next = llm_f16_to_f32 (h + 1);
    fail_unless (fabsf (next - f) >= err || isnan (next) || isinf (next),
        "%a -> 0x%04x", f, h);
    if ((h & 0x7fff) != 0) {
      float prev = llm_f16_to_f32 (h - 1);
      fail_unless (fabsf (prev - f) >= err, "%a -> 0x%04x", f, h);
    }
#ifdef __FLT16_MAX__
    /* and agree with the compiler's own conversion */
    {
      _Float16 ref = (_Float16) f;
      guint16 rh;
      memcpy (&rh, &ref, 2);
      fail_unless (rh == h, "%a: 0x%04x vs compiler 0x%04x", f, h, rh);
    }
#endif
  }
}

GST_END_TEST;

GST_START_TEST (test_bf16)
{
  const struct
  {
    guint32 f;
    guint16 h;
  } cases[] = {
    {0x3f800000, 0x3f80},       /* 1.0 */
    {0xc0000000, 0xc000},       /* -2.0 */
    {0x3f808000, 0x3f80},       /* halfway, even stays */
    {0x3f818000, 0x3f82},       /* halfway, odd rounds up */
    {0x3f808001, 0x3f81},       /* above halfway */
    {0x3f807fff, 0x3f80},       /* below halfway */
    {0x7f7fffff, 0x7f80},       /* FLT_MAX rounds to infinity */
    {0x7f800000, 0x7f80},       /* infinity */
    {0x00000001, 0x0000},       /* tiny subnormal */
    {0x80000000, 0x8000},       /* -0 */
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    fail_unless (llm_f32_to_bf16 (float_of (cases[i].f)) == cases[i].h,
        "bf16 (0x%08x) = 0x%04x, expected 0x%04x", cases[i].f,
        llm_f32_to_bf16 (float_of (cases[i].f)), cases[i].h);

  /* NaN is kept, even one whose payload sits in the dropped bits */
  fail_unless (isnan (llm_bf16_to_f32 (llm_f32_to_bf16 (float_of
                  (0x7f800001)))));
  fail_unless (isnan (llm_bf16_to_f32 (llm_f32_to_bf16 (NAN))));

  for (guint h = 0; h < 0x10000; h++) {
    float f = llm_bf16_to_f32 (h);

    fail_unless_equals_int (bits_of (f), (guint32) h << 16);
    if (!isnan (f))
      fail_unless_equals_int (llm_f32_to_bf16 (f), h);
  }
}

GST_END_TEST;

GST_START_TEST (test_q8_0)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed (1);
  const gsize n = 32 * 64;
  g_autofree float *x = g_new (float, n);
  g_autofree float *y = g_new (float, n);
  g_autofree LlmBlockQ8_0 *q = g_new (LlmBlockQ8_0, n / 32);

  random_row (rand, x, n, 3.0);
  /* a block of zeros and a block with one outlier */
  memset (x, 0, 32 * sizeof (float));
  x[32 + 5] = 100.0f;

  llm_quantize_row (LLM_DTYPE_Q8_0, x, q, n);
  llm_dequantize_row (LLM_DTYPE_Q8_0, q, y, n);

  fail_unless_equals_int (q[0].d, 0);
  for (guint j = 0; j < 32; j++)
    fail_unless_equals_int (q[0].qs[j], 0);

  for (gsize b = 0; b < n / 32; b++) {
    float amax = 0.0f, d, d16;

    for (guint j = 0; j < 32; j++)
      amax = MAX (amax, fabsf (x[b * 32 + j]));
    /* ggml: d = amax / 127, q = round (x / d), d stored as f16 */
    d = amax / 127.0f;
    d16 = llm_f16_to_f32 (q[b].d);
    fail_unless_equals_int (q[b].d, llm_f32_to_f16 (d));
    for (guint j = 0; j < 32; j++) {
      float xv = x[b * 32 + j];
      gint want = d ? (gint) roundf (xv * (1.0f / d)) : 0;

      fail_unless_equals_int (q[b].qs[j], want);
      /* rounding of the quant plus the f16 rounding of the scale */
      fail_unless (fabsf (y[b * 32 + j] - xv) <= d * 0.5f + 127 *
          fabsf (d - d16) + 1e-6f, "block %" G_GSIZE_FORMAT " elem %u: %g vs "
          "%g", b, j, y[b * 32 + j], xv);
    }
  }
  /* the outlier is reproduced to the scale's f16 precision */
  fail_unless (fabsf (y[32 + 5] - 100.0f) < 100.0f * 0x1p-10f);
}

GST_END_TEST;

GST_START_TEST (test_q4_0)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed (2);
  const gsize n = 32 * 64;
  g_autofree float *x = g_new (float, n);
  g_autofree float *y = g_new (float, n);
  g_autofree LlmBlockQ4_0 *q = g_new (LlmBlockQ4_0, n / 32);
  LlmBlockQ4_0 manual;
  float out[32];

  random_row (rand, x, n, 2.0);
  llm_quantize_row (LLM_DTYPE_Q4_0, x, q, n);
  llm_dequantize_row (LLM_DTYPE_Q4_0, q, y, n);

  for (gsize b = 0; b < n / 32; b++) {
    float amax = 0.0f, max = 0.0f, d, id, d16;

    for (guint j = 0; j < 32; j++) {
      if (amax < fabsf (x[b * 32 + j])) {
        amax = fabsf (x[b * 32 + j]);
        max = x[b * 32 + j];
      }
    }
    /* ggml: d = max / -8, q = min (15, (int8) (x / d + 8.5)) */
    d = max / -8.0f;
    id = 1.0f / d;
    d16 = llm_f16_to_f32 (q[b].d);
    fail_unless_equals_int (q[b].d, llm_f32_to_f16 (d));
    for (guint j = 0; j < 32; j++) {
      float xv = x[b * 32 + j];
      guint8 nib = j < 16 ? q[b].qs[j] & 0xf : q[b].qs[j - 16] >> 4;
      gint want = MIN (15, (gint8) (xv * id + 8.5f));
      float err = fabsf (y[b * 32 + j] - xv);

      fail_unless_equals_int (nib, want);
      /* the level +8 does not exist: values near -max clip to +7 */
      if (want < 15)
        fail_unless (err <= fabsf (d) * 0.5f + 8 * fabsf (d - d16) + 1e-6f);
      else
        fail_unless (err <= fabsf (d) * 1.0f + 8 * fabsf (d - d16) + 1e-6f);
    }
  }

  /* the nibble layout: byte j = element j (low) | element j + 16 (high) */
  manual.d = llm_f32_to_f16 (0.5f);
  for (guint j = 0; j < 16; j++)
    manual.qs[j] = (guint8) ((j & 0xf) | ((15 - j) << 4));
  llm_dequantize_row (LLM_DTYPE_Q4_0, &manual, out, 32);
  for (guint j = 0; j < 16; j++) {
    fail_unless_equals_float (out[j], ((gint) j - 8) * 0.5f);
    fail_unless_equals_float (out[j + 16], ((gint) (15 - j) - 8) * 0.5f);
  }
}

GST_END_TEST;

/* llm_dot_row on packed data equals dequantize + a plain dot product. */
GST_START_TEST (test_dot_row)
{
  const LlmDType types[] = {
    LLM_DTYPE_F32, LLM_DTYPE_F16, LLM_DTYPE_BF16, LLM_DTYPE_Q8_0,
    LLM_DTYPE_Q4_0
  };
  const gsize lengths[] = { 32, 64, 96, 4096 + 32, 7, 37 };
  g_autoptr (GRand) rand = g_rand_new_with_seed (3);

  for (guint t = 0; t < G_N_ELEMENTS (types); t++) {
    for (guint l = 0; l < G_N_ELEMENTS (lengths); l++) {
      gsize n = lengths[l];
      guint64 nbytes;
      g_autofree float *w = NULL, *x = NULL, *wd = NULL;
      g_autofree guint8 *row = NULL;
      gdouble ref = 0.0, absum = 0.0;
      float got;

      if (!llm_dtype_bytes_for (types[t], n, &nbytes))
        continue;               /* not whole blocks */
      w = g_new (float, n);
      x = g_new (float, n);
      wd = g_new (float, n);
      row = g_malloc (nbytes);
      random_row (rand, w, n, 1.0);
      random_row (rand, x, n, 1.0);
      llm_quantize_row (types[t], w, row, n);
      llm_dequantize_row (types[t], row, wd, n);
      for (gsize i = 0; i < n; i++) {
        ref += (gdouble) wd[i] * x[i];
        absum += fabs ((gdouble) wd[i] * x[i]);
      }
      got = llm_dot_row (types[t], row, x, n);
      fail_unless (fabs (got - ref) <= 1e-5 * absum + 1e-6,
          "%s n=%" G_GSIZE_FORMAT ": dot %g, reference %g",
          llm_dtype_name (types[t]), n, got, ref);
    }
  }
}

GST_END_TEST;

/* F32 rows pass through quantize / dequantize unchanged. */
GST_START_TEST (test_f32_identity)
{
  float x[5] = { 1.5f, -0.0f, INFINITY, 1e-40f, 3.0f };
  float y[5], z[5];

  llm_quantize_row (LLM_DTYPE_F32, x, y, 5);
  llm_dequantize_row (LLM_DTYPE_F32, y, z, 5);
  fail_unless (memcmp (x, z, sizeof x) == 0);
}

GST_END_TEST;

static Suite *
dtype_suite (void)
{
  Suite *s = suite_create ("dtype");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_table);
  tcase_add_test (tc, test_f16_known);
  tcase_add_test (tc, test_f16_round_trip);
  tcase_add_test (tc, test_bf16);
  tcase_add_test (tc, test_q8_0);
  tcase_add_test (tc, test_q4_0);
  tcase_add_test (tc, test_dot_row);
  tcase_add_test (tc, test_f32_identity);
  return s;
}

GST_CHECK_MAIN (dtype);
