/* LLMasOS - a model's weights in device memory: upload from a model file,
 * ownership, and the matvec layout.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-cuda-weights.h"

#include <string.h>

#include "llm-error.h"

LlmCudaWeights *
llm_cuda_weights_alloc (const LlmHParams * hp, gint index)
{
  LlmCudaWeights *w = g_new0 (LlmCudaWeights, 1);

  w->device = index;
  w->hp = *hp;
  w->layers = g_new0 (LlmCudaLayer, hp->n_layers);
  w->allocations = g_ptr_array_new_with_free_func (llm_cuda_free);
  return w;
}

void
llm_cuda_weights_free (LlmCudaWeights * w)
{
  if (w == NULL)
    return;
  g_ptr_array_unref (w->allocations);
  g_free (w->layers);
  g_free (w);
}

gboolean
llm_cuda_weights_adopt_matrix (LlmCudaWeights * w, LlmCudaMatrix * m,
    void *src_device, LlmDType dtype, guint rows, guint cols,
    GError ** error)
{
  void *data = src_device;
  guint64 bytes;

  if (!llm_cuda_matrix_layout_is_gguf (dtype)) {
    bytes = llm_cuda_matrix_bytes (dtype, rows, cols);
    data = llm_cuda_alloc (bytes, error);
    if (data == NULL || !llm_cuda_matrix_pack (data, src_device, dtype, rows,
            cols, NULL, error)) {
      llm_cuda_free (data);
      llm_cuda_free (src_device);
      return FALSE;
    }
    llm_cuda_free (src_device);
  } else {
    llm_dtype_bytes_for (dtype, (guint64) rows * cols, &bytes);
  }
  g_ptr_array_add (w->allocations, data);
  w->bytes += bytes;
  m->data = data;
  m->dtype = dtype;
  m->rows = rows;
  m->cols = cols;
  return TRUE;
}

typedef struct {
  LlmProgressFunc progress;
  gpointer user_data;
  guint64 done;
  guint64 total;
} Progress;

/* Host F16 copy of @t (a dtype the kernels do not read). */
static guint16 *
to_f16 (const LlmTensor * t, guint rows, guint cols, GError ** error)
{
  guint16 *out = g_try_malloc ((gsize) rows * cols * sizeof (guint16));
  float *row;
  guint64 row_bytes;

  if (out == NULL) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_NO_MEMORY,
        "cannot convert tensor %s to F16 for the GPU: %u x %u", t->name,
        rows, cols);
    return NULL;
  }
  row = g_new (float, cols);
  llm_dtype_bytes_for (t->dtype, cols, &row_bytes);
  for (guint r = 0; r < rows; r++) {
    llm_dequantize_row (t->dtype, t->data + r * row_bytes, row, cols);
    for (guint c = 0; c < cols; c++)
      out[(gsize) r * cols + c] = llm_f32_to_f16 (row[c]);
  }
  g_free (row);
  return out;
}

/* Makes @m from @n tensors of the same number of columns, stacked row
 * after row in one matrix. They keep their dtype when they share one the
 * kernels read; otherwise all become F16. */
static gboolean
upload_stack (LlmCudaWeights * w, LlmCudaMatrix * m,
    const LlmTensor * const *ts, guint n, gboolean pack, Progress * p,
    GError ** error)
{
  guint cols = (guint) ts[0]->ne[0], rows = 0;
  LlmDType dtype = ts[0]->dtype;
  gboolean convert = !llm_cuda_dtype_supported (dtype);
  guint64 bytes = 0, off = 0;
  guint8 *dev;

  for (guint i = 0; i < n; i++) {
    rows += (guint) (llm_tensor_n_elements (ts[i]) / cols);
    convert |= ts[i]->dtype != dtype;
  }
  if (convert)
    dtype = LLM_DTYPE_F16;
  llm_dtype_bytes_for (dtype, (guint64) rows * cols, &bytes);
  dev = llm_cuda_alloc (bytes, error);
  if (dev == NULL) {
    g_prefix_error (error, "tensor %s: ", ts[0]->name);
    return FALSE;
  }
  for (guint i = 0; i < n; i++) {
    const LlmTensor *t = ts[i];
    guint t_rows = (guint) (llm_tensor_n_elements (t) / cols);
    g_autofree guint16 *converted = NULL;
    const void *src = t->data;
    guint64 t_bytes = t->nbytes;

    if (convert) {
      if ((converted = to_f16 (t, t_rows, cols, error)) == NULL) {
        llm_cuda_free (dev);
        return FALSE;
      }
      src = converted;
      t_bytes = (guint64) t_rows * cols * sizeof (guint16);
    }
    if (!llm_cuda_copy (dev + off, src, t_bytes, LLM_CUDA_HOST_TO_DEVICE,
            NULL, error)) {
      llm_cuda_free (dev);
      return FALSE;
    }
    off += t_bytes;
    p->done += t->nbytes;
  }
  if (!pack) {
    /* as it is in the file: the embedding table, which embedding_gather
     * reads a row at a time */
    g_ptr_array_add (w->allocations, dev);
    w->bytes += bytes;
    m->data = dev;
    m->dtype = dtype;
    m->rows = rows;
    m->cols = cols;
  } else if (!llm_cuda_weights_adopt_matrix (w, m, dev, dtype, rows, cols,
          error)) {
    g_prefix_error (error, "tensor %s: ", ts[0]->name);
    return FALSE;
  }
  if (p->progress)
    p->progress ((gdouble) p->done / MAX (p->total, 1),
        "copying weights to the GPU", p->user_data);
  return TRUE;
}

static gboolean
upload_tensor (LlmCudaWeights * w, LlmCudaMatrix * m, const LlmTensor * t,
    Progress * p, GError ** error)
{
  return upload_stack (w, m, &t, 1, TRUE, p, error);
}

LlmCudaWeights *
llm_cuda_weights_upload (const LlmModelFile * mf, gint index,
    LlmProgressFunc progress, gpointer user_data, GError ** error)
{
  const LlmHParams *hp = &mf->hp;
  LlmCudaWeights *w;
  Progress p = { progress, user_data, 0, 0 };
  gboolean ok;

  if (hp->arch != LLM_ARCH_LLAMA) {
    g_set_error (error, LLM_ERROR, LLM_ERROR_UNSUPPORTED,
        "the CUDA backend runs the llama architecture only; %s is %s "
        "(use device=cpu)", mf->name, hp->arch == LLM_ARCH_GEMMA3 ?
        "Gemma 3" : "another architecture");
    return NULL;
  }
  if (!llm_cuda_device_open (index, NULL, error))
    return NULL;

  /* bytes to copy, for progress */
  p.total = mf->w.tok_embd->nbytes + mf->w.out_norm->nbytes +
      (mf->w.output != mf->w.tok_embd ? mf->w.output->nbytes : 0);
  for (guint l = 0; l < hp->n_layers; l++) {
    const LlmLayerWeights *lw = &mf->w.layers[l];
    const LlmTensor *ts[] = { lw->attn_norm, lw->wq, lw->wk, lw->wv, lw->wo,
      lw->ffn_norm, lw->w_gate, lw->w_up, lw->w_down
    };
    for (guint i = 0; i < G_N_ELEMENTS (ts); i++)
      p.total += ts[i]->nbytes;
  }

  w = llm_cuda_weights_alloc (hp, index);
  ok = upload_stack (w, &w->tok_embd, &mf->w.tok_embd, 1, FALSE, &p, error) &&
      upload_tensor (w, &w->out_norm, mf->w.out_norm, &p, error);
  if (ok && mf->w.output == mf->w.tok_embd &&
      llm_cuda_matrix_layout_is_gguf (w->tok_embd.dtype))
    w->output = w->tok_embd;
  else if (ok)
    ok = upload_tensor (w, &w->output, mf->w.output, &p, error);
  for (guint l = 0; ok && l < hp->n_layers; l++) {
    const LlmLayerWeights *lw = &mf->w.layers[l];
    LlmCudaLayer *cl = &w->layers[l];

    const LlmTensor *qkv[] = { lw->wq, lw->wk, lw->wv };
    const LlmTensor *gate_up[] = { lw->w_gate, lw->w_up };

    ok = upload_tensor (w, &cl->attn_norm, lw->attn_norm, &p, error) &&
        upload_stack (w, &cl->wqkv, qkv, 3, TRUE, &p, error) &&
        upload_tensor (w, &cl->wo, lw->wo, &p, error) &&
        upload_tensor (w, &cl->ffn_norm, lw->ffn_norm, &p, error) &&
        upload_stack (w, &cl->w_gate_up, gate_up, 2, TRUE, &p, error) &&
        upload_tensor (w, &cl->w_down, lw->w_down, &p, error);
  }
  if (!ok) {
    g_prefix_error (error, "cannot put %s on the GPU (%" G_GUINT64_FORMAT
        " MiB of weights): ", mf->name, p.total >> 20);
    llm_cuda_weights_free (w);
    return NULL;
  }
  return w;
}
