/* LLMasOS - device memory in GStreamer buffers (memory:CUDATensor).
 *
 * LlmDeviceAllocator is a GstAllocator whose GstMemory holds a pointer to
 * device memory from a backend's alloc() (core/llm-backend.h); core never
 * touches the device itself. There is one allocator per backend and device
 * index. Mapping such a memory:
 *
 * - with LLM_MAP_DEVICE (plus GST_MAP_READ and/or GST_MAP_WRITE) gives the
 *   device pointer itself, no copy: what elements that compute on the
 *   device use;
 * - with plain GST_MAP_READ downloads the bytes into a host copy kept with
 *   the memory (only when the device side changed since the last one), so
 *   that an element that only knows system memory still works: the one
 *   download of the system-memory fallback;
 * - with GST_MAP_WRITE gives that host copy and uploads it on unmap.
 *
 * Write device memory only under a LLM_MAP_DEVICE | GST_MAP_WRITE map:
 * that is how the host copy learns it is stale. A failed copy logs a
 * GST_ERROR naming the cause and the map fails.
 *
 * llm_device_buffer_pool_new() makes a GstBufferPool of such buffers, so
 * that a steady state of acquire/release allocates no device memory.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gst/gst.h>
#include "llm-backend.h"

G_BEGIN_DECLS

/* The GstMemory type name (GstAllocator.mem_type). */
#define LLM_DEVICE_MEMORY_TYPE "LlmDeviceMemory"

/* Map flag: the device pointer, no copy. */
#define LLM_MAP_DEVICE ((GstMapFlags) (GST_MAP_FLAG_LAST << 1))

#define LLM_TYPE_DEVICE_ALLOCATOR (llm_device_allocator_get_type ())
G_DECLARE_FINAL_TYPE (LlmDeviceAllocator, llm_device_allocator, LLM,
    DEVICE_ALLOCATOR, GstAllocator)

/**
 * llm_device_allocator_get:
 * @backend: a backend with alloc/free/upload/download
 * @index: the device number
 *
 * Returns: (transfer full): the allocator of device @index of @backend
 * (the same object on every call).
 */
GstAllocator *llm_device_allocator_get (const LlmBackend * backend,
    gint index);

/* Successful backend->alloc() calls by every LlmDeviceAllocator so far. */
guint64 llm_device_allocator_n_allocs (void);
/* Device -> host copies made for host maps (and copies of memory). */
guint64 llm_device_memory_n_downloads (void);
/* Host -> device copies made when a host write map was unmapped. */
guint64 llm_device_memory_n_uploads (void);

gboolean gst_is_llm_device_memory (GstMemory * mem);
/* The start of the device allocation (GstMemory offset not added). */
gpointer llm_device_memory_get_ptr (GstMemory * mem);
const LlmBackend *llm_device_memory_get_backend (GstMemory * mem);
gint llm_device_memory_get_index (GstMemory * mem);

/**
 * llm_device_buffer_pool_new:
 * @backend: a backend with alloc/free/upload/download
 * @index: the device number
 *
 * A buffer pool whose buffers hold one LlmDeviceMemory each: whatever
 * allocator a config names, the pool uses llm_device_allocator_get
 * (@backend, @index). Set its size with gst_buffer_pool_config_set_params
 * on gst_buffer_pool_get_config() as for any pool.
 *
 * Returns: (transfer full): the pool
 */
GstBufferPool *llm_device_buffer_pool_new (const LlmBackend * backend,
    gint index);

G_END_DECLS
