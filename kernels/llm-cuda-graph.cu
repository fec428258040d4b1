/* LLMasOS - CUDA graphs: a decode step recorded once and replayed, so that
 * its few hundred kernel launches cost one launch from the host.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-cuda-private.cuh"
#include "llm-error.h"

struct _LlmCudaGraph
{
  cudaGraphExec_t exec;
};

static void
set_graph_error (GError ** error, cudaError_t e, const char *what)
{
  g_set_error (error, LLM_ERROR, LLM_ERROR_IO, "%s: %s (%s)", what,
      cudaGetErrorString (e), cudaGetErrorName (e));
}

gboolean
llm_cuda_graph_begin (LlmCudaStream * stream, GError ** error)
{
  cudaError_t e;

  g_return_val_if_fail (stream != NULL, FALSE);
  llm_cuda_use_device ();
  /* Thread-local: other threads may use the GPU meanwhile. */
  e = cudaStreamBeginCapture (stream->stream,
      cudaStreamCaptureModeThreadLocal);
  if (e != cudaSuccess) {
    set_graph_error (error, e, "cannot start capturing a CUDA graph");
    return FALSE;
  }
  return TRUE;
}

LlmCudaGraph *
llm_cuda_graph_end (LlmCudaStream * stream, GError ** error)
{
  cudaGraph_t graph = NULL;
  LlmCudaGraph *g;
  cudaError_t e;

  g_return_val_if_fail (stream != NULL, NULL);
  llm_cuda_use_device ();
  e = cudaStreamEndCapture (stream->stream, &graph);
  if (e != cudaSuccess) {
    set_graph_error (error, e, "capturing a CUDA graph failed");
    cudaGetLastError ();
    return NULL;
  }
  g = g_new0 (LlmCudaGraph, 1);
  e = cudaGraphInstantiate (&g->exec, graph, 0);
  cudaGraphDestroy (graph);
  if (e != cudaSuccess) {
    set_graph_error (error, e, "cannot instantiate a CUDA graph");
    g_free (g);
    return NULL;
  }
  return g;
}

gboolean
llm_cuda_graph_launch (LlmCudaGraph * graph, LlmCudaStream * stream,
    GError ** error)
{
  cudaError_t e;

  g_return_val_if_fail (graph != NULL && stream != NULL, FALSE);
  llm_cuda_use_device ();
  e = cudaGraphLaunch (graph->exec, stream->stream);
  if (e != cudaSuccess) {
    set_graph_error (error, e, "cannot launch a CUDA graph");
    return FALSE;
  }
  return TRUE;
}

void
llm_cuda_graph_free (LlmCudaGraph * graph)
{
  if (graph == NULL)
    return;
  llm_cuda_use_device ();
  cudaGraphExecDestroy (graph->exec);
  g_free (graph);
}
