/* LLMasOS - fuzz target: the safetensors reader.
 *
 * Opens the input with llm_safetensors_open_bytes and walks every tensor:
 * found by its name, its size equal to shape x dtype, its bytes readable
 * (first and last byte, the first row converted to floats), no two
 * tensors sharing bytes.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fuzz-common.h"

#include "llm-safetensors.h"

#define ROW_ELEMS 256
/* The pairwise overlap check is quadratic; files the fuzzer makes hold a
 * few tensors. */
#define MAX_OVERLAP_CHECK 256

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  llm_fuzz_quiet_logs ();
  return 0;
}

static void
walk_tensor (const LlmSafetensors * st, guint i)
{
  const LlmTensor *t = llm_safetensors_tensor (st, i);
  guint64 n = 1, bytes, row;
  float out[ROW_ELEMS];

  LLM_FUZZ_CHECK (t != NULL && t->name != NULL, "tensor %u", i);
  LLM_FUZZ_CHECK (llm_safetensors_find (st, t->name) == t, "tensor '%s'",
      t->name);
  LLM_FUZZ_CHECK (t->n_dims >= 1 && t->n_dims <= LLM_MAX_DIMS,
      "tensor '%s' has %u dims", t->name, t->n_dims);
  for (guint d = 0; d < t->n_dims; d++) {
    LLM_FUZZ_CHECK (t->ne[d] > 0, "tensor '%s' has an empty dimension",
        t->name);
    LLM_FUZZ_CHECK (g_uint64_checked_mul (&n, n, t->ne[d]), "tensor '%s': "
        "its element count overflows", t->name);
  }
  for (guint d = t->n_dims; d < LLM_MAX_DIMS; d++)
    LLM_FUZZ_CHECK (t->ne[d] == 1, "tensor '%s': unused dimension %u is %"
        G_GUINT64_FORMAT, t->name, d, t->ne[d]);
  LLM_FUZZ_CHECK (llm_dtype_bytes_for (t->dtype, n, &bytes) &&
      bytes == t->nbytes, "tensor '%s': %" G_GUINT64_FORMAT " bytes for %"
      G_GUINT64_FORMAT " elements of %s", t->name, t->nbytes, n,
      llm_dtype_name (t->dtype));
  if (t->nbytes > 0) {
    volatile guint8 sink = t->data[0] ^ t->data[t->nbytes - 1];
    (void) sink;
  }
  row = MIN (t->ne[0], (guint64) ROW_ELEMS);
  LLM_FUZZ_CHECK (llm_dtype_can_compute (t->dtype), "tensor '%s' of %s",
      t->name, llm_dtype_name (t->dtype));
  llm_dequantize_row (t->dtype, t->data, out, row);
}

int
LLVMFuzzerTestOneInput (const uint8_t * data, size_t size)
{
  /* A copy, so that the sanitizer sees the exact end of the file. */
  g_autoptr (GBytes) bytes = g_bytes_new (data, size);
  g_autoptr (LlmSafetensors) st = NULL;
  g_autoptr (GError) error = NULL;
  guint n;

  st = llm_safetensors_open_bytes (bytes, "fuzz.safetensors", &error);
  if (st == NULL) {
    LLM_FUZZ_CHECK (error != NULL && error->message != NULL,
        "failed without an error");
    return 0;
  }
  n = llm_safetensors_n_tensors (st);
  for (guint i = 0; i < n; i++)
    walk_tensor (st, i);
  for (guint i = 0; i < MIN (n, MAX_OVERLAP_CHECK); i++) {
    const LlmTensor *a = llm_safetensors_tensor (st, i);

    for (guint j = i + 1; j < MIN (n, MAX_OVERLAP_CHECK); j++) {
      const LlmTensor *b = llm_safetensors_tensor (st, j);

      LLM_FUZZ_CHECK (a->nbytes == 0 || b->nbytes == 0 ||
          a->data + a->nbytes <= b->data || b->data + b->nbytes <= a->data,
          "tensors '%s' and '%s' overlap", a->name, b->name);
    }
  }
  return 0;
}
