/* LLMasOS - the forward pass on the GPU against the CPU path.
 *
 * - Every case of stories260K/reference/generate.json through the real
 *   pipeline with llmencoder device=cuda (llmdecoder follows: auto) gives
 *   the reference's greedy tokens and text, with and without queues.
 * - Logits of the F32 model on the GPU against the CPU's: prefill (whole
 *   prompt, and split in two so the second part attends to a cache the
 *   first filled, and in passes of 3 tokens), then 24 decode steps (the
 *   captured CUDA graph), each within 1e-4 relative L2; prompts of 2048
 *   tokens in one prefill pass and of 1500 in passes of 512, then a
 *   decode step, within 1e-4 too. The F16 and BF16 conversions of the model:
 *   within 1e-2 relative of the CPU path on the same file (the issue's
 *   bound), and the same greedy tokens on the reference prompts.
 * - The F32 model with a Q8_0 KV cache: the greedy tokens of the CPU with
 *   its cache rounded the same way, logits within 5e-2 of its (more than
 *   1e-2 from the unrounded cache's), also with prefill in passes of 3;
 *   an unknown LLMASOS_CUDA_KV_DTYPE is an error. Through the pipeline,
 *   llmencoder device=cuda kv-type=q8_0 gives the tokens of device=cpu
 *   kv-type=q8_0 and kv-type=f16 those of generate.json, every case.
 * - Errors: a device that does not exist, a malformed device string, and a
 *   KV cache larger than the GPU end in element errors that say so, and
 *   the last one names the sizes.
 * - Logits in device memory (memory:CUDATensor): with llmdecoder on the
 *   GPU and llmsampler right after it (or behind a queue or identity),
 *   the caps carry the feature, no logits are downloaded and the pool
 *   allocates at most twice a run; the golden tokens and text come out.
 *   Behind `capsfilter caps=application/x-llm-logits` the decoder falls
 *   back to system memory, same tokens. A repetition penalty makes the
 *   sampler download (counted: one per step) and sample on the host, with
 *   the CPU pipeline's tokens. `llmdecoder ! fakesink` negotiates device
 *   memory too.
 * - Sampling on the GPU (temperature 0.8, top-k 40, top-p 0.9, seed 42)
 *   against the CPU sampler on the same GPU logits and against the CPU
 *   pipeline: the same tokens (see test_sampling_device_vs_cpu).
 *
 * Without a usable GPU the program says why and exits 77 (meson: SKIP).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <gst/check/gstcheck.h>
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include "test-common.h"
#include "test-pipeline.h"
#include "llm-backend.h"
#include "llm-backend-cuda.h"
#include "llm-caps.h"
#include "llm-device-memory.h"
#include "llm-cuda.h"
#include "llm-error.h"
#include "llm-forward.h"
#include "llm-model.h"
#include "llm-model-file.h"

static gchar *model_dir, *tmp_dir;

static double
rel_l2 (const float *got, const float *want, guint n)
{
  double num = 0, den = 0;

  for (guint i = 0; i < n; i++) {
    double d = (double) got[i] - want[i];
    num += d * d;
    den += (double) want[i] * want[i];
  }
  return sqrt (num / MAX (den, 1e-30));
}

static gint32
argmax (const float *x, guint n)
{
  guint best = 0;

  for (guint i = 1; i < n; i++)
    if (x[i] > x[best])
      best = i;
  return (gint32) best;
}

static gchar *
chain (const gchar * q, const gchar * encoder_props)
{
  return g_strdup_printf ("appsrc name=src ! %s llmtokenizer model=\"%s\" ! "
      "%s llmencoder %s ! %s llmdecoder max-tokens=120 ! %s llmsampler "
      "name=sam temperature=0 ! %s llmdetokenizer ! %s appsink name=sink", q,
      model_dir, q, encoder_props, q, q, q, q);
}

static void
check_golden (const gchar * q)
{
  GPtrArray *cases = llm_golden_cases ();

  for (guint i = 0; i < cases->len; i++) {
    LlmGoldenCase *c = g_ptr_array_index (cases, i);
    g_autofree gchar *desc = chain (q, "device=cuda");
    LlmRunResult *r = llm_run_pipeline (desc, c->prompt);

    llm_check_golden (r, c, i);
    llm_run_result_free (r);
  }
  g_ptr_array_unref (cases);
}

GST_START_TEST (test_golden_cuda)
{
  check_golden ("");
}

GST_END_TEST;

GST_START_TEST (test_golden_cuda_queues)
{
  check_golden ("queue !");
}

GST_END_TEST;

/* llmencoder kv-type on the GPU: q8_0 generates the tokens of the CPU's
 * kv-type=q8_0 (the same rounding, core's forward) for every
 * generate.json case; f16 (F32 weights) those of generate.json. */
GST_START_TEST (test_kv_type_cuda)
{
  GPtrArray *cases = llm_golden_cases ();
  g_autofree gchar *q8_gpu = chain ("", "device=cuda kv-type=q8_0");
  g_autofree gchar *q8_cpu = chain ("", "device=cpu kv-type=q8_0");
  g_autofree gchar *f16 = chain ("", "device=cuda kv-type=f16");

  for (guint i = 0; i < cases->len; i++) {
    LlmGoldenCase *c = g_ptr_array_index (cases, i);
    LlmRunResult *g = llm_run_pipeline (q8_gpu, c->prompt);
    LlmRunResult *h = llm_run_pipeline (q8_cpu, c->prompt);
    LlmRunResult *r = llm_run_pipeline (f16, c->prompt);

    fail_unless (g->error == NULL && h->error == NULL, "case %u: %s / %s",
        i, g->error, h->error);
    fail_unless_equals_int (g->tokens->len, h->tokens->len);
    for (guint t = 0; t < g->tokens->len; t++)
      fail_unless (g_array_index (g->tokens, gint32, t) ==
          g_array_index (h->tokens, gint32, t), "case %u, token %u: GPU "
          "%d, CPU %d (kv-type=q8_0)", i, t, g_array_index (g->tokens,
              gint32, t), g_array_index (h->tokens, gint32, t));
    llm_check_golden (r, c, i);
    llm_run_result_free (g);
    llm_run_result_free (h);
    llm_run_result_free (r);
  }
  g_print ("kv-type on the GPU: q8_0 as the CPU's q8_0, f16 as "
      "generate.json, %u cases\n", cases->len);
  g_ptr_array_unref (cases);
}

GST_END_TEST;

static gchar *
convert (LlmDType dtype)
{
  GError *err = NULL;
  LlmModelFile *mf = llm_model_file_load (model_dir, NULL, NULL, &err);
  g_autofree gchar *name = g_strdup_printf ("stories260K-%s.gguf",
      llm_dtype_name (dtype));
  gchar *path = g_build_filename (tmp_dir, name, NULL);

  fail_unless (mf != NULL, "%s", err ? err->message : "");
  fail_unless (llm_model_file_write_gguf (mf, path, dtype, NULL, NULL, &err),
      "%s", err ? err->message : "");
  llm_model_file_free (mf);
  return path;
}

/* One decode step of @tok on both devices: the CPU's logits into @lc,
 * the GPU's into @lg; returns their relative L2 difference. */
static double
step_both (LlmCompute * cpu, LlmKvCache * kc, LlmCompute * gpu,
    LlmKvCache * kg, gint32 tok, float *hidden, float *lc, float *lg,
    guint n_vocab)
{
  GError *err = NULL;

  fail_unless (llm_compute_forward (cpu, kc, &tok, 1, hidden, &err),
      "CPU step of token %d: %s", tok, err ? err->message : "");
  llm_compute_logits (cpu, hidden, lc);
  fail_unless (llm_compute_forward (gpu, kg, &tok, 1, NULL, &err), "%s",
      err ? err->message : "");
  fail_unless (llm_compute_logits_full (gpu, NULL, lg, NULL, &err), "%s",
      err ? err->message : "");
  return rel_l2 (lg, lc, n_vocab);
}

/* CPU and GPU side by side on @path: prefill of each reference prompt
 * (whole, or in two parts when @split), then decode steps fed with the
 * CPU's greedy tokens; the worst relative L2 error of the logits is
 * returned, and in @same_tokens whether both devices' greedy choices
 * agreed all along. */
static double
compare_logits_rounded (const gchar * path, gboolean split,
    LlmDType cpu_rounding, gboolean * same_tokens)
{
  const LlmBackend *cuda = llm_backend_lookup ("cuda");
  GError *err = NULL;
  LlmModel *model = llm_model_get (path, NULL, NULL, &err);
  const LlmModelFile *mf;
  GPtrArray *cases = llm_golden_cases ();
  gpointer weights;
  double worst = 0;
  guint n_vocab;

  fail_unless (model != NULL, "%s", err ? err->message : "");
  mf = llm_model_get_file (model);
  n_vocab = mf->hp.n_vocab;
  weights = llm_model_get_weights (model, cuda, 0, NULL, NULL, &err);
  fail_unless (weights != NULL, "%s", err ? err->message : "");
  *same_tokens = TRUE;

  for (guint i = 0; i < cases->len; i++) {
    LlmGoldenCase *gc = g_ptr_array_index (cases, i);
    GArray *ids = llm_vocab_encode (mf->vocab, gc->prompt, -1, TRUE, &err);
    g_autoptr (LlmCompute) cpu = llm_compute_new (mf, 1);
    g_autoptr (LlmCompute) gpu = llm_compute_new_on (mf, cuda, 0, weights,
        &err);
    g_autoptr (LlmKvCache) kc = llm_kv_cache_new (&mf->hp, 256, NULL);
    g_autoptr (LlmKvCache) kg = NULL;
    g_autofree float *hidden = g_new (float, mf->hp.dim);
    g_autofree float *lc = g_new (float, n_vocab);
    g_autofree float *lg = g_new (float, n_vocab);
    guint n = ids->len, first = split ? MAX (n / 2, 1) : n;
    gint32 tok;

    fail_unless (gpu != NULL, "%s", err ? err->message : "");
    fail_unless (llm_kv_cache_set_rounding (kc, cpu_rounding, &err), "%s",
        err ? err->message : "");
    kg = llm_compute_kv_cache_new (gpu, 256, &err);
    fail_unless (kg != NULL, "%s", err ? err->message : "");
    fail_unless (llm_compute_forward (cpu, kc, (gint32 *) ids->data, n,
            hidden, &err));
    llm_compute_logits (cpu, hidden, lc);
    fail_unless (llm_compute_forward (gpu, kg, (gint32 *) ids->data, first,
            NULL, &err), "%s", err ? err->message : "");
    if (first < n)
      fail_unless (llm_compute_forward (gpu, kg, (gint32 *) ids->data +
              first, n - first, NULL, &err), "%s", err ? err->message : "");
    fail_unless (llm_compute_logits_full (gpu, NULL, lg, NULL, &err), "%s",
        err ? err->message : "");
    fail_unless_equals_int (llm_kv_cache_len (kg), n);
    worst = MAX (worst, rel_l2 (lg, lc, n_vocab));
    for (guint step = 0; step < 24; step++) {
      double e;

      tok = argmax (lc, n_vocab);
      *same_tokens &= argmax (lg, n_vocab) == tok;
      /* (not inside MAX, which would run the step twice) */
      e = step_both (cpu, kc, gpu, kg, tok, hidden, lc, lg, n_vocab);
      worst = MAX (worst, e);
    }
    g_array_unref (ids);
  }
  g_ptr_array_unref (cases);
  g_object_unref (model);
  return worst;
}

static double
compare_logits (const gchar * path, gboolean split, gboolean * same_tokens)
{
  return compare_logits_rounded (path, split, LLM_DTYPE_F32, same_tokens);
}

GST_START_TEST (test_logits_f32)
{
  gboolean same;
  double e = compare_logits (model_dir, FALSE, &same);
  double e_split = compare_logits (model_dir, TRUE, &same);
  double e_passes;
  gboolean same_passes;

  /* the prompts prefilled in passes of 3 tokens (each pass attends to the
   * cache the ones before filled) rather than in one */
  g_setenv ("LLMASOS_CUDA_PREFILL_BLOCK", "3", TRUE);
  e_passes = compare_logits (model_dir, FALSE, &same_passes);
  g_unsetenv ("LLMASOS_CUDA_PREFILL_BLOCK");

  g_print ("F32 logits, GPU vs CPU: rel L2 %.3g (prefill split: %.3g, in "
      "passes of 3 tokens: %.3g)\n", e, e_split, e_passes);
  fail_unless (e < 1e-4, "F32 logits differ by %g", e);
  fail_unless (e_split < 1e-4, "F32 logits (split prefill) differ by %g",
      e_split);
  fail_unless (e_passes < 1e-4, "F32 logits (prefill in passes of 3) "
      "differ by %g", e_passes);
  fail_unless (same, "F32: the greedy tokens differ");
  fail_unless (same_passes, "F32, passes of 3: the greedy tokens differ");
}

GST_END_TEST;

/* A prompt of @n tokens (ids spread over the vocabulary, a fixed
 * sequence) prefilled in one pass on the GPU, or in passes of @block
 * (0: the default of 2048), against the CPU: the last position's logits,
 * relative L2, and both devices' next greedy token after one decode
 * step. */
static double
compare_long_prefill (guint n, guint block, gboolean * same_token)
{
  const LlmBackend *cuda = llm_backend_lookup ("cuda");
  GError *err = NULL;
  LlmModel *model = llm_model_get (model_dir, NULL, NULL, &err);
  const LlmModelFile *mf;
  gpointer weights;
  g_autofree gint32 *ids = g_new (gint32, n);
  g_autofree gchar *blk = g_strdup_printf ("%u", block);
  guint n_vocab;
  double e, e_step;

  fail_unless (model != NULL, "%s", err ? err->message : "");
  mf = llm_model_get_file (model);
  n_vocab = mf->hp.n_vocab;
  for (guint i = 0; i < n; i++)
    ids[i] = (gint32) ((i * 7919u + 13u) % n_vocab);
  if (block > 0)
    g_setenv ("LLMASOS_CUDA_PREFILL_BLOCK", blk, TRUE);
  weights = llm_model_get_weights (model, cuda, 0, NULL, NULL, &err);
  fail_unless (weights != NULL, "%s", err ? err->message : "");
  {
    g_autoptr (LlmCompute) cpu = llm_compute_new (mf, 1);
    g_autoptr (LlmCompute) gpu = llm_compute_new_on (mf, cuda, 0, weights,
        &err);
    g_autoptr (LlmKvCache) kc = llm_kv_cache_new (&mf->hp, n + 1, NULL);
    g_autoptr (LlmKvCache) kg = NULL;
    g_autofree float *hidden = g_new (float, mf->hp.dim);
    g_autofree float *lc = g_new (float, n_vocab);
    g_autofree float *lg = g_new (float, n_vocab);
    gint32 tok;

    fail_unless (gpu != NULL, "%s", err ? err->message : "");
    kg = llm_compute_kv_cache_new (gpu, n + 1, &err);
    fail_unless (kg != NULL, "%s", err ? err->message : "");
    fail_unless (llm_compute_forward (cpu, kc, ids, n, hidden, &err),
        "CPU prefill of %u tokens: %s", n, err ? err->message : "");
    llm_compute_logits (cpu, hidden, lc);
    fail_unless (llm_compute_forward (gpu, kg, ids, n, NULL, &err), "%s",
        err ? err->message : "");
    fail_unless (llm_compute_logits_full (gpu, NULL, lg, NULL, &err), "%s",
        err ? err->message : "");
    fail_unless_equals_int (llm_kv_cache_len (kg), n);
    e = rel_l2 (lg, lc, n_vocab);
    /* one decode step over the whole cache */
    tok = argmax (lc, n_vocab);
    e_step = step_both (cpu, kc, gpu, kg, tok, hidden, lc, lg, n_vocab);
    e = MAX (e, e_step);
    *same_token = argmax (lg, n_vocab) == argmax (lc, n_vocab);
  }
  g_unsetenv ("LLMASOS_CUDA_PREFILL_BLOCK");
  g_object_unref (model);
  return e;
}

/* Prefills longer than 512 tokens (the 2048 in one pass, and
 * 1500 in passes of 512, the later ones attending to the cache the
 * earlier filled) on the F32 model: the same logits as the CPU. */
GST_START_TEST (test_logits_long_prefill)
{
  gboolean same_one, same_passes;
  double e_one = compare_long_prefill (2048, 0, &same_one);
  double e_passes = compare_long_prefill (1500, 512, &same_passes);

  g_print ("F32 logits after a long prefill, GPU vs CPU: 2048 tokens in "
      "one pass rel L2 %.3g, 1500 in passes of 512 %.3g\n", e_one,
      e_passes);
  fail_unless (e_one < 1e-4, "2048 tokens in one pass: logits differ by %g",
      e_one);
  fail_unless (e_passes < 1e-4, "1500 tokens in passes of 512: logits "
      "differ by %g", e_passes);
  fail_unless (same_one && same_passes, "the greedy tokens differ");
}

GST_END_TEST;

/* The F32 model with a Q8_0 KV cache (LLMASOS_CUDA_KV_DTYPE=q8_0)
 * against the CPU with its cache rounded the same way
 * (llm_kv_cache_set_rounding), also with prefill in passes of 3 tokens
 * (each reading the rounded cache of the passes before): the same greedy
 * tokens on every reference prompt, logits within 5e-2. The logits
 * cannot agree as closely as the F32 cache's (1e-4): a key or value that
 * the two devices compute a few ulps apart can round to neighbouring
 * quants, and on stories260K one such flip moves the logits of the later
 * steps by about as much as the rounding itself (the first GPU run:
 * 0.029 from the CPU's rounded cache; the CPU's rounding agrees with a
 * numpy forward to 6 digits, tests/kv-q8_0-peer.py). The kernels
 * themselves are checked bit for bit against core's Q8_0 in
 * test-cuda-attention. Against the CPU's unrounded cache the logits must
 * move (numpy: 0.091). An unknown cache type is an error that names the
 * choices. */
GST_START_TEST (test_logits_kv_q8_0)
{
  const LlmBackend *cuda = llm_backend_lookup ("cuda");
  gboolean same, same_passes, same_raw;
  double e, e_passes, e_raw;
  GError *err = NULL;
  LlmModel *model;
  gpointer weights;
  LlmKvCache *kg;

  g_setenv ("LLMASOS_CUDA_KV_DTYPE", "q8_0", TRUE);
  e = compare_logits_rounded (model_dir, FALSE, LLM_DTYPE_Q8_0, &same);
  e_raw = compare_logits (model_dir, FALSE, &same_raw);
  g_setenv ("LLMASOS_CUDA_PREFILL_BLOCK", "3", TRUE);
  e_passes = compare_logits_rounded (model_dir, FALSE, LLM_DTYPE_Q8_0,
      &same_passes);
  g_unsetenv ("LLMASOS_CUDA_PREFILL_BLOCK");

  /* an unknown type */
  g_setenv ("LLMASOS_CUDA_KV_DTYPE", "q4_k", TRUE);
  model = llm_model_get (model_dir, NULL, NULL, &err);
  weights = llm_model_get_weights (model, cuda, 0, NULL, NULL, &err);
  {
    g_autoptr (LlmCompute) gpu = llm_compute_new_on (llm_model_get_file
        (model), cuda, 0, weights, &err);

    kg = gpu ? llm_compute_kv_cache_new (gpu, 64, &err) : NULL;
  }
  g_unsetenv ("LLMASOS_CUDA_KV_DTYPE");
  g_object_unref (model);

  g_print ("F32 weights, Q8_0 KV cache, GPU vs CPU with the same rounding: "
      "rel L2 %.3g (prefill in passes of 3: %.3g), same greedy tokens: "
      "%s / %s; vs the CPU's unrounded cache %.3g\n", e, e_passes,
      same ? "yes" : "no", same_passes ? "yes" : "no", e_raw);
  fail_unless (e < 5e-2 && e_passes < 5e-2, "Q8_0 cache: logits differ "
      "from the CPU's rounded cache by %g / %g", e, e_passes);
  fail_unless (same && same_passes, "Q8_0 cache: the greedy tokens differ");
  fail_unless (e_raw > 1e-2, "Q8_0 cache: logits within %g of the "
      "unrounded cache's: was the cache rounded?", e_raw);
  fail_unless (kg == NULL && err != NULL, "a q4_k cache was made");
  g_print ("LLMASOS_CUDA_KV_DTYPE=q4_k -> %s\n", err->message);
  fail_unless (strstr (err->message, "q8_0") != NULL, "%s", err->message);
  g_error_free (err);
}

GST_END_TEST;

static void
check_converted (LlmDType dtype, double bound)
{
  g_autofree gchar *path = convert (dtype);
  gboolean same;
  double e = compare_logits (path, FALSE, &same);

  g_print ("%s logits, GPU vs CPU: rel L2 %.3g, same greedy tokens: %s\n",
      llm_dtype_name (dtype), e, same ? "yes" : "no");
  fail_unless (e < bound, "%s logits differ by %g", llm_dtype_name (dtype),
      e);
  g_unlink (path);
}

static void
check_half (LlmDType dtype)
{
  check_converted (dtype, 1e-2);
}

GST_START_TEST (test_logits_f16)
{
  check_half (LLM_DTYPE_F16);
}

GST_END_TEST;

GST_START_TEST (test_logits_bf16)
{
  check_half (LLM_DTYPE_BF16);
}

GST_END_TEST;

/* The GPU's Q8_0/Q4_0 matvecs round the input vector to Q8_0 blocks
 * (dp4a, as llama.cpp's mmvq does) where the CPU multiplies by it in F32:
 * a few 1e-3 of difference (docs/cuda.md). These also check that the
 * packed layouts and the embedding table (kept in the file's layout) are
 * read right. */
GST_START_TEST (test_logits_q8_0)
{
  check_converted (LLM_DTYPE_Q8_0, 3e-2);
}

GST_END_TEST;

GST_START_TEST (test_logits_q4_0)
{
  check_converted (LLM_DTYPE_Q4_0, 3e-2);
}

GST_END_TEST;

static void
expect_error (const gchar * encoder_props, const gchar * const *words)
{
  g_autofree gchar *desc = chain ("", encoder_props);
  LlmRunResult *r = llm_run_pipeline (desc, "Once upon a time");

  fail_unless (r->error != NULL, "%s: no error", encoder_props);
  for (guint i = 0; words[i]; i++)
    fail_unless (strstr (r->error, words[i]) != NULL,
        "%s: \"%s\" not in the error: %s", encoder_props, words[i], r->error);
  g_print ("%s -> %s\n", encoder_props, r->error);
  llm_run_result_free (r);
}

GST_START_TEST (test_device_errors)
{
  const gchar *no_device[] = { "cuda:99", "does not exist", NULL };
  const gchar *malformed[] = { "cuda:x", "malformed", NULL };
  const gchar *unknown[] = { "tpu", "no \"tpu\" backend", NULL };
  /* 2^31 - 1 positions: stories260K's cache would take 2.7 TB */
  const gchar *oom[] = { "KV cache", "MiB", "GPU", "free", NULL };

  expect_error ("device=cuda:99", no_device);
  expect_error ("device=cuda:x", malformed);
  expect_error ("device=tpu", unknown);
  expect_error ("device=cuda context-length=2147483647", oom);
}

GST_END_TEST;

/* --- logits in device memory ------------------------------------------ */

/* A chain with llmdecoder "dec", then @between (ending in "!" or empty),
 * then llmsampler "sam" with @sampler_props. */
static gchar *
logits_chain (const gchar * encoder_props, const gchar * between,
    const gchar * sampler_props)
{
  return g_strdup_printf ("appsrc name=src ! llmtokenizer model=\"%s\" ! "
      "llmencoder %s ! llmdecoder name=dec max-tokens=120 ! %s llmsampler "
      "name=sam %s ! llmdetokenizer ! appsink name=sink", model_dir,
      encoder_props, between, sampler_props);
}

static LlmRunResult *
run_ok (const gchar * desc, const gchar * prompt)
{
  LlmRunResult *r = llm_run_pipeline (desc, prompt);

  fail_unless (r->error == NULL, "%s: %s", desc, r->error);
  fail_unless (r->dec_caps != NULL, "%s: llmdecoder sent no caps", desc);
  return r;
}

static void
check_caps (const LlmRunResult * r, gboolean device, const gchar * desc)
{
  g_autofree gchar *str = gst_caps_to_string (r->dec_caps);

  fail_unless (llm_caps_is_device (r->dec_caps) == device,
      "%s: expected %s memory, negotiated %s", desc,
      device ? "device" : "system", str);
}

static void
check_tokens (GArray * got, GArray * want, const gchar * what)
{
  fail_unless_equals_int (got->len, want->len);
  for (guint t = 0; t < got->len; t++)
    fail_unless (g_array_index (got, gint32, t) == g_array_index (want,
            gint32, t), "%s: token %u is %d, expected %d", what, t,
        g_array_index (got, gint32, t), g_array_index (want, gint32, t));
}

/* The golden cases with @between between decoder and sampler; logits in
 * device memory (@device) or system memory. */
static void
check_golden_logits (const gchar * between, gboolean device)
{
  GPtrArray *cases = llm_golden_cases ();
  g_autofree gchar *desc = logits_chain ("device=cuda", between,
      "temperature=0");

  for (guint i = 0; i < cases->len; i++) {
    LlmGoldenCase *c = g_ptr_array_index (cases, i);
    guint64 downloads = llm_device_memory_n_downloads ();
    guint64 allocs = llm_device_allocator_n_allocs ();
    LlmRunResult *r = run_ok (desc, c->prompt);

    check_caps (r, device, desc);
    check_tokens (r->tokens, c->greedy_ids, desc);
    fail_unless_equals_string (r->text->str, c->continuation);
    /* the sampler read the device logits in place */
    fail_unless (llm_device_memory_n_downloads () == downloads,
        "%s: %" G_GUINT64_FORMAT " downloads", desc,
        llm_device_memory_n_downloads () - downloads);
    if (i == 0)
      g_print ("%s: %u steps, %" G_GUINT64_FORMAT " device allocations, %"
          G_GUINT64_FORMAT " downloads\n", between[0] ? between : "direct",
          r->tokens->len, llm_device_allocator_n_allocs () - allocs,
          llm_device_memory_n_downloads () - downloads);
    /* the pool reuses its buffer: no allocation per step (120 steps) */
    fail_unless (llm_device_allocator_n_allocs () - allocs <= (device ? 2 : 0),
        "%s: %" G_GUINT64_FORMAT " device allocations in one run", desc,
        llm_device_allocator_n_allocs () - allocs);
    llm_run_result_free (r);
  }
  g_ptr_array_unref (cases);
}

GST_START_TEST (test_golden_device_logits)
{
  check_golden_logits ("", TRUE);
  check_golden_logits ("queue !", TRUE);
  check_golden_logits ("identity !", TRUE);
  check_golden_logits ("queue ! identity ! queue !", TRUE);
}

GST_END_TEST;

GST_START_TEST (test_golden_system_fallback)
{
  /* a neighbour that only takes system memory */
  check_golden_logits ("capsfilter caps=application/x-llm-logits !", FALSE);
}

GST_END_TEST;

/* Device logits, but a repetition penalty: the sampler maps them for
 * reading (one counted download per step) and samples on the host. */
GST_START_TEST (test_sampler_host_fallback)
{
  const gchar *props = "temperature=0 repeat-penalty=1.3";
  GPtrArray *cases = llm_golden_cases ();
  g_autofree gchar *gpu = logits_chain ("device=cuda", "", props);
  g_autofree gchar *cpu = logits_chain ("device=cpu", "", props);

  for (guint i = 0; i < cases->len; i++) {
    LlmGoldenCase *c = g_ptr_array_index (cases, i);
    LlmRunResult *want = run_ok (cpu, c->prompt);
    guint64 downloads = llm_device_memory_n_downloads ();
    LlmRunResult *r = run_ok (gpu, c->prompt);
    guint64 n = llm_device_memory_n_downloads () - downloads;

    check_caps (want, FALSE, cpu);
    check_caps (r, TRUE, gpu);
    check_tokens (r->tokens, want->tokens, gpu);
    /* one logits buffer per sampled token (max-batch 1) */
    fail_unless (n == r->tokens->len, "%" G_GUINT64_FORMAT " downloads for "
        "%u steps", n, r->tokens->len);
    if (i == 0)
      g_print ("repeat-penalty on device logits: %" G_GUINT64_FORMAT
          " downloads for %u steps\n", n, r->tokens->len);
    llm_run_result_free (want);
    llm_run_result_free (r);
  }
  g_ptr_array_unref (cases);
}

GST_END_TEST;

/* Index of the first token where @a and @b differ, -1 if equal. */
static gint
first_difference (GArray * a, GArray * b)
{
  for (guint t = 0; t < MIN (a->len, b->len); t++)
    if (g_array_index (a, gint32, t) != g_array_index (b, gint32, t))
      return (gint) t;
  return a->len == b->len ? -1 : (gint) MIN (a->len, b->len);
}

/* Random sampling on the GPU against the CPU sampler. The GPU sampler gets
 * the coins the CPU sampler would draw, so the tokens are the same unless
 * rounding separates two candidates: the coin within ~1e-6 of the
 * cumulative weight between them (tests/test-cuda-sample.c), or, against
 * the CPU pipeline, logits that differ by ~1e-6 relative. Over the five
 * cases (600 draws) that is expected never, and on the H100 none
 * differed: equality is asserted. */
GST_START_TEST (test_sampling_device_vs_cpu)
{
  const gchar *props = "temperature=0.8 top-k=40 top-p=0.9 seed=42";
  GPtrArray *cases = llm_golden_cases ();
  g_autofree gchar *dev = logits_chain ("device=cuda", "", props);
  g_autofree gchar *host = logits_chain ("device=cuda",
      "capsfilter caps=application/x-llm-logits !", props);
  g_autofree gchar *cpu = logits_chain ("device=cpu", "", props);
  guint diff_host = 0, diff_cpu = 0, n_tokens = 0;

  for (guint i = 0; i < cases->len; i++) {
    LlmGoldenCase *c = g_ptr_array_index (cases, i);
    guint64 downloads = llm_device_memory_n_downloads ();
    LlmRunResult *rd = run_ok (dev, c->prompt);
    guint64 n_dl = llm_device_memory_n_downloads () - downloads;
    LlmRunResult *rh = run_ok (host, c->prompt);
    LlmRunResult *rc = run_ok (cpu, c->prompt);
    gint dh = first_difference (rd->tokens, rh->tokens);
    gint dc = first_difference (rd->tokens, rc->tokens);

    check_caps (rd, TRUE, dev);
    check_caps (rh, FALSE, host);
    fail_unless (n_dl == 0, "%" G_GUINT64_FORMAT " downloads", n_dl);
    g_print ("case %u: %u tokens; first difference (-1: none) from the CPU "
        "sampler on GPU logits: %d, from the CPU pipeline: %d\n", i,
        rd->tokens->len, dh, dc);
    diff_host += dh >= 0;
    diff_cpu += dc >= 0;
    n_tokens += rd->tokens->len;
    llm_run_result_free (rd);
    llm_run_result_free (rh);
    llm_run_result_free (rc);
  }
  g_print ("sampling on the GPU: %u tokens; cases that differ: %u (CPU "
      "sampler, GPU logits), %u (CPU pipeline) of %u\n", n_tokens, diff_host,
      diff_cpu, cases->len);
  fail_unless (diff_host == 0, "%u cases differ from the CPU sampler",
      diff_host);
  fail_unless (diff_cpu == 0, "%u cases differ from the CPU pipeline",
      diff_cpu);
  g_ptr_array_unref (cases);
}

GST_END_TEST;

static GstPadProbeReturn
keep_caps (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  GstEvent *event = GST_PAD_PROBE_INFO_EVENT (info);
  GstCaps *caps;

  if (GST_EVENT_TYPE (event) == GST_EVENT_CAPS) {
    gst_event_parse_caps (event, &caps);
    gst_caps_replace ((GstCaps **) user_data, caps);
  }
  return GST_PAD_PROBE_OK;
}

/* `llmdecoder ! fakesink` (no sampler): fakesink takes any caps, so the
 * logits stay on the device; it ends the stream at its first buffer
 * (num-buffers=0), which is the decoder's EOS. */
GST_START_TEST (test_device_logits_fakesink)
{
  g_autofree gchar *desc = g_strdup_printf ("appsrc name=src ! llmtokenizer "
      "model=\"%s\" ! llmencoder device=cuda ! llmdecoder name=dec ! "
      "fakesink num-buffers=0", model_dir);
  GstElement *pipeline = gst_parse_launch (desc, NULL);
  GstElement *src = gst_bin_get_by_name (GST_BIN (pipeline), "src");
  GstElement *dec = gst_bin_get_by_name (GST_BIN (pipeline), "dec");
  GstPad *pad = gst_element_get_static_pad (dec, "src");
  GstBus *bus = gst_element_get_bus (pipeline);
  GstBuffer *prompt = gst_buffer_new_memdup ("Once upon a time", 16);
  GstCaps *caps = NULL;
  GstFlowReturn fr;
  GstMessage *msg;

  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, keep_caps,
      &caps, NULL);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  g_signal_emit_by_name (src, "push-buffer", prompt, &fr);
  g_signal_emit_by_name (src, "end-of-stream", &fr);
  msg = gst_bus_timed_pop_filtered (bus, 60 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (msg != NULL && GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS,
      "no EOS from llmdecoder ! fakesink");
  fail_unless (llm_caps_is_device (caps), "fakesink did not get device "
      "memory");
  gst_message_unref (msg);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_caps_unref (caps);
  gst_buffer_unref (prompt);
  gst_object_unref (bus);
  gst_object_unref (pad);
  gst_object_unref (dec);
  gst_object_unref (src);
  gst_object_unref (pipeline);
}

GST_END_TEST;

/* Weights larger than the card: the error names the sizes, and everything
 * allocated on the way is given back. */
GST_START_TEST (test_model_too_large)
{
  const LlmBackend *cuda = llm_backend_lookup ("cuda");
  LlmHParams hp = {.arch = LLM_ARCH_LLAMA,.n_vocab = 128256,.dim = 4096,
    .n_layers = 400,.n_heads = 32,.n_kv_heads = 8,.head_dim = 128,
    .ffn_dim = 14336,.n_ctx_train = 8192,.rms_eps = 1e-5f,
    .rope_theta = 500000.0f
  };
  size_t free_before, free_after, total;
  GError *err = NULL;
  gpointer w;

  fail_unless (llm_cuda_mem_info (&free_before, &total, NULL));
  w = cuda->weights_new_random (&hp, LLM_DTYPE_F16, 0, 1, &err);
  fail_unless (w == NULL, "400 layers of Llama-3-8B fit on the GPU?");
  fail_unless (g_error_matches (err, LLM_ERROR, LLM_ERROR_NO_MEMORY), "%s",
      err->message);
  g_print ("model too large -> %s\n", err->message);
  fail_unless (strstr (err->message, "GB") != NULL &&
      strstr (err->message, "free") != NULL, "%s", err->message);
  g_clear_error (&err);
  fail_unless (llm_cuda_mem_info (&free_after, &total, NULL));
  fail_unless (free_after + (64u << 20) >= free_before,
      "%zu bytes free before, %zu after", free_before, free_after);
}

GST_END_TEST;

static Suite *
cuda_forward_suite (void)
{
  Suite *s = suite_create ("cuda-forward");
  TCase *tc = tcase_create ("general");

  tcase_set_timeout (tc, 300);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_golden_cuda);
  tcase_add_test (tc, test_golden_cuda_queues);
  tcase_add_test (tc, test_kv_type_cuda);
  tcase_add_test (tc, test_logits_f32);
  tcase_add_test (tc, test_logits_long_prefill);
  tcase_add_test (tc, test_logits_kv_q8_0);
  tcase_add_test (tc, test_logits_f16);
  tcase_add_test (tc, test_logits_bf16);
  tcase_add_test (tc, test_logits_q8_0);
  tcase_add_test (tc, test_logits_q4_0);
  tcase_add_test (tc, test_device_errors);
  tcase_add_test (tc, test_model_too_large);
  tcase_add_test (tc, test_golden_device_logits);
  tcase_add_test (tc, test_golden_system_fallback);
  tcase_add_test (tc, test_sampler_host_fallback);
  tcase_add_test (tc, test_sampling_device_vs_cpu);
  tcase_add_test (tc, test_device_logits_fakesink);
  return s;
}

int
main (int argc, char **argv)
{
  GError *err = NULL;
  Suite *s;
  int ret;

  /* CUDA cannot be used in a child forked after it started */
  g_setenv ("CK_FORK", "no", TRUE);
  if (llm_cuda_device_count (&err) == 0) {
    g_print ("SKIP: no usable CUDA device: %s\n", err ? err->message : "");
    g_clear_error (&err);
    return 77;
  }
  llm_backend_cuda_register ();
  model_dir = llm_test_model_dir ("stories260K");
  tmp_dir = llm_test_tmpdir ();
  gst_check_init (&argc, &argv);
  s = cuda_forward_suite ();
  ret = gst_check_run_suite (s, "cuda-forward", __FILE__);
  g_rmdir (tmp_dir);
  g_free (tmp_dir);
  g_free (model_dir);
  return ret;
}
