/* LLMasOS - device memory in GStreamer buffers: LlmDeviceAllocator, its
 * buffer pool, and the memory:CUDATensor caps helpers.
 *
 * Built twice from this file:
 * - test-device-memory: against a backend whose "device" memory is host
 *   memory behind the backend table (runs everywhere, and can be made to
 *   fail its copies, to check the error paths);
 * - test-device-memory-cuda (-DLLM_TEST_CUDA): against the CUDA device
 *   through a backend table of llm-cuda.h's memory functions; a device
 *   kernel (llm_cuda_memset) writes through the pointer a device map
 *   gives. Without a GPU it says why and exits 77 (meson: SKIP).
 *
 * The device side is read and written only through the backend's own
 * upload/download (or a CUDA call), never through a map, so a map that
 * returned the wrong bytes or pointer cannot check itself.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <gst/check/gstcheck.h>
#include <string.h>

#include "llm-caps.h"
#include "llm-device-memory.h"
#include "llm-error.h"
#include "llm-meta.h"
#ifdef LLM_TEST_CUDA
#include "llm-cuda.h"
#endif

static GRand *rng;

/* --- the backend under test --- */

#ifdef LLM_TEST_CUDA

static gpointer
dev_alloc (gint index, gsize bytes, GError ** error)
{
  return llm_cuda_alloc (bytes, error);
}

static void
dev_free (gpointer p)
{
  llm_cuda_free (p);
}

static gboolean
dev_upload (gpointer dst, gconstpointer src, gsize bytes, GError ** error)
{
  return llm_cuda_copy (dst, src, bytes, LLM_CUDA_HOST_TO_DEVICE, NULL,
      error);
}

static gboolean
dev_download (gpointer dst, gconstpointer src, gsize bytes, GError ** error)
{
  return llm_cuda_copy (dst, src, bytes, LLM_CUDA_DEVICE_TO_HOST, NULL,
      error);
}

#else

/* Fake device memory: host memory that only the table touches. */
static gint fail_downloads;     /* make the next N downloads fail */
static gint fail_allocs;        /* make the next N allocs fail */

static gpointer
dev_alloc (gint index, gsize bytes, GError ** error)
{
  if (fail_allocs > 0) {
    fail_allocs--;
    g_set_error (error, LLM_ERROR, LLM_ERROR_NO_MEMORY,
        "test: cannot allocate %" G_GSIZE_FORMAT " bytes", bytes);
    return NULL;
  }
  return g_malloc (bytes);
}

static void
dev_free (gpointer p)
{
  g_free (p);
}

static gboolean
dev_upload (gpointer dst, gconstpointer src, gsize bytes, GError ** error)
{
  memcpy (dst, src, bytes);
  return TRUE;
}

static gboolean
dev_download (gpointer dst, gconstpointer src, gsize bytes, GError ** error)
{
  if (fail_downloads > 0) {
    fail_downloads--;
    g_set_error (error, LLM_ERROR, LLM_ERROR_IO, "test: download failed");
    return FALSE;
  }
  memcpy (dst, src, bytes);
  return TRUE;
}

#endif

static const LlmBackend backend = {
  .name = "test-device",
  .alloc = dev_alloc,
  .free = dev_free,
  .upload = dev_upload,
  .download = dev_download,
};

/* --- helpers --- */

static guint8 *
random_bytes (gsize n)
{
  guint8 *p = g_malloc (MAX (n, 1));

  for (gsize i = 0; i < n; i++)
    p[i] = (guint8) g_rand_int (rng);
  return p;
}

/* The device bytes [offset, offset + n) of @mem, read by the backend. */
static guint8 *
device_bytes (GstMemory * mem, gsize offset, gsize n)
{
  guint8 *p = g_malloc (MAX (n, 1));
  GError *err = NULL;

  fail_unless (backend.download (p, (guint8 *)
          llm_device_memory_get_ptr (mem) + offset, n, &err),
      "download: %s", err ? err->message : "");
  return p;
}

static void
device_write (GstMemory * mem, gsize offset, const guint8 * src, gsize n)
{
  GError *err = NULL;

  fail_unless (backend.upload ((guint8 *) llm_device_memory_get_ptr (mem)
          + offset, src, n, &err), "upload: %s", err ? err->message : "");
}

/* --- allocator --- */

GST_START_TEST (test_allocator_identity)
{
  GstAllocator *a = llm_device_allocator_get (&backend, 0);
  GstAllocator *b = llm_device_allocator_get (&backend, 0);
  GstAllocator *c = llm_device_allocator_get (&backend, 1);
  GstMemory *mem;

  fail_unless (a == b, "one allocator per backend and device");
  fail_unless (a != c, "device 1 has its own allocator");
  fail_unless_equals_string (a->mem_type, LLM_DEVICE_MEMORY_TYPE);

  mem = gst_allocator_alloc (a, 64, NULL);
  fail_unless (mem != NULL);
  fail_unless (gst_is_llm_device_memory (mem));
  fail_unless (llm_device_memory_get_backend (mem) == &backend);
  fail_unless_equals_int (llm_device_memory_get_index (mem), 0);
  gst_memory_unref (mem);

  /* system memory is not ours */
  mem = gst_allocator_alloc (NULL, 64, NULL);
  fail_if (gst_is_llm_device_memory (mem));
  gst_memory_unref (mem);
  gst_object_unref (a);
  gst_object_unref (b);
  gst_object_unref (c);
}

GST_END_TEST;

/* Host write -> upload on unmap; device map gives the device pointer;
 * device-side writes reach a host read map through one download; a
 * second read map with nothing changed downloads nothing. Odd sizes and a
 * prefix (GstMemory offset). */
GST_START_TEST (test_map_round_trip)
{
  static const gsize sizes[] = { 1, 7, 1001, 4096 * 3 + 5, 1 << 20 };
  static const gsize prefixes[] = { 0, 0, 16, 3, 256 };
  GstAllocator *alloc = llm_device_allocator_get (&backend, 0);

  for (guint s = 0; s < G_N_ELEMENTS (sizes); s++) {
    gsize n = sizes[s], prefix = prefixes[s];
    GstAllocationParams params;
    GstMemory *mem;
    GstMapInfo map;
    guint64 up0, down0;
    g_autofree guint8 *a = random_bytes (n);
    g_autofree guint8 *b = random_bytes (n);
    g_autofree guint8 *got = NULL;

    gst_allocation_params_init (&params);
    params.prefix = prefix;
    mem = gst_allocator_alloc (alloc, n, &params);
    fail_unless (mem != NULL);
    fail_unless_equals_int (mem->size, n);
    fail_unless_equals_int (mem->offset, prefix);

    /* 1. host write: uploaded on unmap */
    up0 = llm_device_memory_n_uploads ();
    fail_unless (gst_memory_map (mem, &map, GST_MAP_WRITE));
    fail_unless_equals_int (map.size, n);
    memcpy (map.data, a, n);
    gst_memory_unmap (mem, &map);
    fail_unless_equals_int (llm_device_memory_n_uploads (), up0 + 1);
    got = device_bytes (mem, prefix, n);
    fail_unless (memcmp (got, a, n) == 0, "size %" G_GSIZE_FORMAT
        ": the upload did not reach the device", n);
    g_clear_pointer (&got, g_free);

    /* 2. device map: the device pointer itself, offset applied */
    fail_unless (gst_memory_map (mem, &map, GST_MAP_READ | LLM_MAP_DEVICE));
    fail_unless (map.data == (guint8 *) llm_device_memory_get_ptr (mem)
        + prefix);
    gst_memory_unmap (mem, &map);

    /* 3. the device side changes under a device write map */
    fail_unless (gst_memory_map (mem, &map, GST_MAP_WRITE | LLM_MAP_DEVICE));
    device_write (mem, prefix, b, n);
#ifdef LLM_TEST_CUDA
    {
      GError *err = NULL;
      gsize k = MIN (n, 5);

      /* a device kernel through the mapped pointer */
      fail_unless (llm_cuda_memset (map.data, 0xab, k, NULL, &err),
          "memset: %s", err ? err->message : "");
      memset (b, 0xab, k);
    }
#endif
    gst_memory_unmap (mem, &map);
    fail_unless_equals_int (llm_device_memory_n_uploads (), up0 + 1);

    /* 4. host read: one download, the device's bytes */
    down0 = llm_device_memory_n_downloads ();
    fail_unless (gst_memory_map (mem, &map, GST_MAP_READ));
    fail_unless (memcmp (map.data, b, n) == 0, "size %" G_GSIZE_FORMAT
        ": host map does not show the device bytes", n);
    gst_memory_unmap (mem, &map);
    fail_unless_equals_int (llm_device_memory_n_downloads (), down0 + 1);

    /* 5. nothing changed: no second download, no upload for a read */
    fail_unless (gst_memory_map (mem, &map, GST_MAP_READ));
    fail_unless (memcmp (map.data, b, n) == 0);
    gst_memory_unmap (mem, &map);
    fail_unless_equals_int (llm_device_memory_n_downloads (), down0 + 1);
    fail_unless_equals_int (llm_device_memory_n_uploads (), up0 + 1);

    /* 6. a partial host write keeps the other bytes */
    fail_unless (gst_memory_map (mem, &map, GST_MAP_WRITE));
    map.data[n / 2] ^= 0x5a;
    gst_memory_unmap (mem, &map);
    b[n / 2] ^= 0x5a;
    got = device_bytes (mem, prefix, n);
    fail_unless (memcmp (got, b, n) == 0);

    gst_memory_unref (mem);
  }
  gst_object_unref (alloc);
}

GST_END_TEST;

/* gst_buffer_copy of NO_SHARE device memory: a deep copy on the device. */
GST_START_TEST (test_buffer_copy)
{
  GstAllocator *alloc = llm_device_allocator_get (&backend, 0);
  gsize n = 3001;
  g_autofree guint8 *a = random_bytes (n);
  g_autofree guint8 *got = NULL;
  GstBuffer *buf = gst_buffer_new_allocate (alloc, n, NULL), *copy;
  GstMemory *mem, *cmem;

  GstMapInfo map;

  mem = gst_buffer_peek_memory (buf, 0);
  fail_unless (gst_memory_map (mem, &map, GST_MAP_WRITE | LLM_MAP_DEVICE));
  device_write (mem, 0, a, n);
  gst_memory_unmap (mem, &map);
  copy = gst_buffer_copy (buf);
  fail_unless (copy != NULL);
  cmem = gst_buffer_peek_memory (copy, 0);
  fail_unless (gst_is_llm_device_memory (cmem));
  fail_unless (llm_device_memory_get_ptr (cmem)
      != llm_device_memory_get_ptr (mem));
  got = device_bytes (cmem, cmem->offset, n);
  fail_unless (memcmp (got, a, n) == 0);
  gst_buffer_unref (copy);
  gst_buffer_unref (buf);
  gst_object_unref (alloc);
}

GST_END_TEST;

#ifndef LLM_TEST_CUDA
/* A failed download fails the map (and logs); the next one works. */
GST_START_TEST (test_map_errors)
{
  GstAllocator *alloc = llm_device_allocator_get (&backend, 0);
  GstMemory *mem = gst_allocator_alloc (alloc, 100, NULL);
  GstMapInfo map;

  fail_unless (gst_memory_map (mem, &map, GST_MAP_WRITE | LLM_MAP_DEVICE));
  gst_memory_unmap (mem, &map);
  fail_downloads = 1;
  fail_if (gst_memory_map (mem, &map, GST_MAP_READ));
  fail_unless (gst_memory_map (mem, &map, GST_MAP_READ));
  gst_memory_unmap (mem, &map);
  gst_memory_unref (mem);

  /* out of device memory: no memory, no crash */
  fail_allocs = 1;
  mem = gst_allocator_alloc (alloc, 100, NULL);
  fail_unless (mem == NULL);
  gst_object_unref (alloc);
}

GST_END_TEST;
#endif

/* --- pool --- */

GST_START_TEST (test_pool_steady_state)
{
  GstBufferPool *pool = llm_device_buffer_pool_new (&backend, 0);
  GstStructure *config = gst_buffer_pool_get_config (pool);
  GstBuffer *bufs[4];
  GstAllocator *alloc = NULL;
  GstAllocationParams params;
  guint64 allocs;

  /* the allocator (transfer none) is named before the caller sets one */
  fail_unless (gst_buffer_pool_config_get_allocator (config, &alloc, NULL));
  fail_unless (alloc != NULL && LLM_IS_DEVICE_ALLOCATOR (alloc));
  gst_buffer_pool_config_set_params (config, NULL, 4099, 2, 4);
  /* a caller naming another allocator still gets device memory */
  gst_allocation_params_init (&params);
  gst_buffer_pool_config_set_allocator (config, NULL, &params);
  fail_unless (gst_buffer_pool_set_config (pool, config));
  fail_unless (gst_buffer_pool_set_active (pool, TRUE));

  /* warm-up: every buffer the pool may hold */
  for (guint i = 0; i < 4; i++) {
    fail_unless_equals_int (gst_buffer_pool_acquire_buffer (pool, &bufs[i],
            NULL), GST_FLOW_OK);
    fail_unless (gst_is_llm_device_memory (gst_buffer_peek_memory (bufs[i],
                0)));
    fail_unless_equals_int (gst_buffer_get_size (bufs[i]), 4099);
  }
  for (guint i = 0; i < 4; i++)
    gst_buffer_unref (bufs[i]);

  allocs = llm_device_allocator_n_allocs ();
  for (guint cycle = 0; cycle < 1000; cycle++) {
    guint k = 1 + cycle % 4;
    GstMapInfo map;

    for (guint i = 0; i < k; i++) {
      fail_unless_equals_int (gst_buffer_pool_acquire_buffer (pool,
              &bufs[i], NULL), GST_FLOW_OK);
      /* what a device element does with each */
      fail_unless (gst_buffer_map (bufs[i], &map,
              GST_MAP_WRITE | LLM_MAP_DEVICE));
      gst_buffer_unmap (bufs[i], &map);
    }
    for (guint i = 0; i < k; i++)
      gst_buffer_unref (bufs[i]);
  }
  fail_unless_equals_int (llm_device_allocator_n_allocs (), allocs);

  fail_unless (gst_buffer_pool_set_active (pool, FALSE));
  gst_object_unref (pool);
}

GST_END_TEST;

/* Pool buffers carry a LlmSeqMeta: kept by copies, gone on reuse. */
GST_START_TEST (test_pool_seq_meta)
{
  GstBufferPool *pool = llm_device_buffer_pool_new (&backend, 0);
  GstStructure *config = gst_buffer_pool_get_config (pool);
  GstBuffer *buf, *copy;
  LlmSeqMeta *meta;
  GstMapInfo map;
  guint64 allocs;

  gst_buffer_pool_config_set_params (config, NULL, 512 * sizeof (float), 1,
      1);
  fail_unless (gst_buffer_pool_set_config (pool, config));
  fail_unless (gst_buffer_pool_set_active (pool, TRUE));

  fail_unless_equals_int (gst_buffer_pool_acquire_buffer (pool, &buf, NULL),
      GST_FLOW_OK);
  meta = llm_buffer_add_seq_meta (buf);
  fail_unless (llm_seq_meta_add_row (meta, 7, 42, 1));
  fail_unless (llm_seq_meta_add_row (meta, 9, 3, 1));
  fail_unless (gst_buffer_map (buf, &map, GST_MAP_WRITE | LLM_MAP_DEVICE));
  gst_buffer_unmap (buf, &map);
  meta = llm_buffer_get_seq_meta (buf);
  fail_unless (meta != NULL && meta->n_rows == 2);
  fail_unless (meta->rows[1].seq_id == 9 && meta->rows[1].position == 3);

  copy = gst_buffer_copy (buf);
  meta = llm_buffer_get_seq_meta (copy);
  fail_unless (meta != NULL && meta->n_rows == 2
      && meta->rows[0].seq_id == 7 && meta->rows[0].position == 42);
  gst_buffer_unref (copy);

  allocs = llm_device_allocator_n_allocs ();
  gst_buffer_unref (buf);
  fail_unless_equals_int (gst_buffer_pool_acquire_buffer (pool, &buf, NULL),
      GST_FLOW_OK);
  fail_unless (llm_buffer_get_seq_meta (buf) == NULL,
      "a reused buffer keeps the last sequence's meta");
  fail_unless_equals_int (llm_device_allocator_n_allocs (), allocs);
  gst_buffer_unref (buf);
  fail_unless (gst_buffer_pool_set_active (pool, FALSE));
  gst_object_unref (pool);
}

GST_END_TEST;

/* --- caps --- */

GST_START_TEST (test_caps)
{
  GstCaps *tmpl = llm_caps_add_device_variant (gst_caps_from_string
      (LLM_CAPS_LOGITS_TEMPLATE));
  GstCaps *again, *sys, *dev, *both, *res;
  gchar *s;

  fail_unless_equals_int (gst_caps_get_size (tmpl), 2);
  fail_unless (llm_caps_is_device (tmpl));
  fail_unless (gst_caps_features_is_equal (gst_caps_get_features (tmpl, 1),
          GST_CAPS_FEATURES_MEMORY_SYSTEM_MEMORY));
  s = gst_caps_to_string (tmpl);
  fail_unless (g_str_has_prefix (s, LLM_MEDIA_LOGITS "("
          LLM_CAPS_FEATURE_MEMORY_CUDA_TENSOR ")"), "%s", s);
  g_free (s);

  /* applied twice: nothing repeated */
  again = llm_caps_add_device_variant (gst_caps_ref (tmpl));
  fail_unless_equals_int (gst_caps_get_size (again), 2);
  gst_caps_unref (again);

  sys = gst_caps_from_string (LLM_MEDIA_LOGITS ", vocab-size=(int)512, "
      "dtype=(string)F32, batch=(int)1");
  fail_if (llm_caps_is_device (sys));
  fail_if (llm_caps_is_device (NULL));
  dev = llm_caps_add_device_variant (gst_caps_copy (sys));
  dev = gst_caps_truncate (dev);        /* device only */
  fail_unless (llm_caps_is_device (dev));
  both = llm_caps_add_device_variant (gst_caps_copy (sys));

  /* both neighbours can: device memory comes first */
  res = gst_caps_intersect (tmpl, both);
  fail_unless (llm_caps_is_device (res));
  gst_caps_unref (res);
  /* a system-memory neighbour: system memory, never empty */
  res = gst_caps_intersect (tmpl, sys);
  fail_if (gst_caps_is_empty (res));
  fail_if (llm_caps_is_device (res));
  gst_caps_unref (res);
  /* device only on both sides */
  res = gst_caps_intersect (dev, sys);
  fail_unless (gst_caps_is_empty (res));
  gst_caps_unref (res);
  /* a feature-less structure (other features) gets no twin */
  res = llm_caps_add_device_variant (gst_caps_from_string
      (LLM_MEDIA_LOGITS "(memory:CUDAMemory), dtype=(string)F32"));
  fail_unless_equals_int (gst_caps_get_size (res), 1);
  fail_if (llm_caps_is_device (res));
  gst_caps_unref (res);
  res = llm_caps_add_device_variant (gst_caps_new_any ());
  fail_unless (gst_caps_is_any (res));
  gst_caps_unref (res);

  gst_caps_unref (both);
  gst_caps_unref (dev);
  gst_caps_unref (sys);
  gst_caps_unref (tmpl);
}

GST_END_TEST;

static Suite *
device_memory_suite (void)
{
  Suite *s;
  TCase *tc;

#ifdef LLM_TEST_CUDA
  GError *err = NULL;
  LlmCudaDeviceInfo info;

  /* before the suite exists: a skip leaks nothing (ASan's leak check) */

  if (llm_cuda_device_count (&err) == 0
      || !llm_cuda_device_open (0, &info, &err)) {
    g_print ("SKIP: %s\n", err ? err->message : "no CUDA device");
    g_clear_error (&err);
    exit (77);
  }
  g_print ("device memory on CUDA device 0: %s\n", info.name);
#endif
  s = suite_create ("device-memory");
  tc = tcase_create ("device-memory");
  /* CUDA does not survive fork() once initialised; and one process for
   * all tests shows a reference miscounted on the shared allocators. */
  g_setenv ("CK_FORK", "no", TRUE);
  rng = g_rand_new_with_seed (20261125);
  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_allocator_identity);
  tcase_add_test (tc, test_map_round_trip);
  tcase_add_test (tc, test_buffer_copy);
#ifndef LLM_TEST_CUDA
  tcase_add_test (tc, test_map_errors);
#endif
  tcase_add_test (tc, test_pool_steady_state);
  tcase_add_test (tc, test_pool_seq_meta);
  tcase_add_test (tc, test_caps);
  return s;
}

GST_CHECK_MAIN (device_memory);
