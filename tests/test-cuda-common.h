/* What the GPU kernel tests share: the device and stream they run on, the
 * random numbers they draw, device buffers from host data, downloads
 * after the stream's kernels, and the error measures. Every helper fails
 * the running check with the CUDA error's message.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gst/check/gstcheck.h>

#include "llm-cuda.h"
#include "llm-dtype.h"
#include "llm-tensor.h"

/* The stream every kernel under test is queued on, and the tests'
 * random numbers (both made by cuda_test_setup). */
extern LlmCudaStream *stream;
extern GRand *rng;

/* Call first in the suite function: without a usable GPU, prints "SKIP:
 * <why>" and exits 77 (meson's SKIP) before anything is allocated;
 * otherwise opens device 0 (its description into @info unless NULL),
 * makes `stream` and `rng` (from @seed) and sets CK_FORK=no (CUDA does
 * not survive fork() once initialised). */
void cuda_test_setup (guint32 seed, LlmCudaDeviceInfo * info);

/* @bytes (at least 4) of device memory. */
gpointer dev_alloc (gsize bytes);
/* dev_alloc() set to zeros. */
gpointer dev_zeroed (gsize bytes);
/* @bytes from @host to @dev, synchronously. */
void upload (gpointer dev, gconstpointer host, gsize bytes);
/* dev_alloc (@bytes), then upload @host into it unless @host is NULL. */
gpointer dev_from (gconstpointer host, gsize bytes);
/* Waits for `stream`, then copies @bytes of @dev to @host. */
void to_host (gpointer host, gconstpointer dev, gsize bytes);

/* @n uniform values in [-@scale, @scale) from `rng`, into @x or a new
 * array (g_free; at least one element). */
void fill_random (float *x, gsize n, float scale);
float *random_floats (gsize n, float scale);

/* |got - want| / |want| (L2, in double; |got - want| where want is 0);
 * fails on a non-finite element of @got. */
double rel_l2 (const float *got, const float *want, gsize n);
/* Fails if rel_l2 is above @bound; *@worst = max (*@worst, it). */
void check_rel (const float *got, const float *want, gsize n, double bound,
    double *worst, const gchar * what);
/* |got - want| / |mag| (L2), @mag the magnitude of the terms summed into
 * each element (sum |w x|), so that outputs which cancel to near zero
 * still get a meaningful bound; fails above @bound or on a non-finite
 * element; *@worst = max (*@worst, it). */
void check_mag (const float *got, const float *want, const double *mag,
    gsize n, double bound, double *worst, const gchar * what);
/* check_mag's sums: returns sum (got - want)^2, *@den = sum mag^2; fails
 * on a non-finite element of @got. */
double mag_sums (const float *got, const float *want, const double *mag,
    gsize n, const gchar * what, double *den);

/* A random weight matrix: its source values (uniform in [-1, 1)), their
 * GGUF bytes (llm_quantize_row; as a tensor for core/) and the packed copy
 * on the device (llm_cuda_matrix_pack, its size checked). */
typedef struct
{
  LlmDType dtype;
  guint rows, cols;
  float *src;                   /* rows * cols F32 values it was made from */
  guint8 *gguf;
  LlmTensor t;
  gpointer packed;              /* device */
} Matrix;

void matrix_make (Matrix * m, LlmDType dtype, guint rows, guint cols);
void matrix_clear (Matrix * m);
