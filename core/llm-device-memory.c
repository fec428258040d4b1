/* LLMasOS - the GstAllocator and buffer pool of device memory.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "llm-device-memory.h"

#include <string.h>

GST_DEBUG_CATEGORY_STATIC (llm_device_memory_debug);
#define GST_CAT_DEFAULT llm_device_memory_debug

struct _LlmDeviceAllocator
{
  GstAllocator parent;
  const LlmBackend *backend;    /* owns the device memory */
  gint index;                   /* device number */
};

typedef struct
{
  GstMemory mem;
  gpointer device;              /* maxsize bytes from backend->alloc() */
  gpointer host;                /* host copy, made on the first host map */
  gboolean host_valid;          /* host copy equals the device bytes */
  GMutex lock;                  /* guards host and host_valid */
} LlmDeviceMemory;

G_DEFINE_TYPE (LlmDeviceAllocator, llm_device_allocator, GST_TYPE_ALLOCATOR);

/* gsize: g_atomic_pointer_add() wants a pointer-sized counter. */
static gsize n_allocs, n_downloads, n_uploads;

#define DEVICE_ALLOCATOR(mem) ((LlmDeviceAllocator *) (mem)->allocator)

static void
debug_init (void)
{
  static gsize once = 0;

  if (g_once_init_enter (&once)) {
    GST_DEBUG_CATEGORY_INIT (llm_device_memory_debug, "llmdevicememory", 0,
        "LLMasOS device memory");
    g_once_init_leave (&once, 1);
  }
}

static LlmDeviceMemory *
wrap (LlmDeviceAllocator * self, gpointer device, GstMemory * parent,
    gsize maxsize, gsize offset, gsize size)
{
  LlmDeviceMemory *m = g_new0 (LlmDeviceMemory, 1);

  /* NO_SHARE: a copy of a buffer copies the bytes (mem_copy) rather than
   * sharing a sub-range, which device memory does not support. */
  gst_memory_init (GST_MEMORY_CAST (m), GST_MEMORY_FLAG_NO_SHARE,
      GST_ALLOCATOR_CAST (self), parent, maxsize, 0, offset, size);
  m->device = device;
  /* Fresh memory is undefined on both sides: nothing to download. */
  m->host_valid = TRUE;
  g_mutex_init (&m->lock);
  return m;
}

static gpointer
device_alloc (LlmDeviceAllocator * self, gsize bytes)
{
  GError *err = NULL;
  gpointer p = self->backend->alloc (self->index, bytes, &err);

  if (p == NULL) {
    GST_ERROR ("%s:%d: cannot allocate %" G_GSIZE_FORMAT " bytes: %s",
        self->backend->name, self->index, bytes,
        err ? err->message : "no reason given");
    g_clear_error (&err);
    return NULL;
  }
  g_atomic_pointer_add (&n_allocs, 1);
  return p;
}

static GstMemory *
allocator_alloc (GstAllocator * allocator, gsize size,
    GstAllocationParams * params)
{
  LlmDeviceAllocator *self = LLM_DEVICE_ALLOCATOR (allocator);
  gsize maxsize = size + params->prefix + params->padding;
  gpointer device;

  /* Device allocations come 256-byte aligned (cudaMalloc), more than any
   * params->align a tensor element asks for. */
  if ((device = device_alloc (self, MAX (maxsize, 1))) == NULL)
    return NULL;
  return GST_MEMORY_CAST (wrap (self, device, NULL, maxsize, params->prefix,
          size));
}

static void
allocator_free (GstAllocator * allocator, GstMemory * mem)
{
  LlmDeviceMemory *m = (LlmDeviceMemory *) mem;

  LLM_DEVICE_ALLOCATOR (allocator)->backend->free (m->device);
  g_free (m->host);
  g_mutex_clear (&m->lock);
  g_free (m);
}

/* Brings the host copy up to date; called with m->lock held. */
static gboolean
download (LlmDeviceMemory * m)
{
  LlmDeviceAllocator *self = DEVICE_ALLOCATOR (&m->mem);
  GError *err = NULL;

  if (m->host == NULL)
    m->host = g_malloc (MAX (m->mem.maxsize, 1));
  if (m->host_valid)
    return TRUE;
  if (!self->backend->download (m->host, m->device, m->mem.maxsize, &err)) {
    GST_ERROR ("%s:%d: cannot download %" G_GSIZE_FORMAT " bytes of device "
        "memory for a host map: %s", self->backend->name, self->index,
        m->mem.maxsize, err ? err->message : "no reason given");
    g_clear_error (&err);
    return FALSE;
  }
  g_atomic_pointer_add (&n_downloads, 1);
  m->host_valid = TRUE;
  return TRUE;
}

static gpointer
mem_map_full (GstMemory * mem, GstMapInfo * info, gsize maxsize)
{
  LlmDeviceMemory *m = (LlmDeviceMemory *) mem;
  gpointer data;

  if (info->flags & LLM_MAP_DEVICE) {
    /* Whatever the device side gets written makes the host copy stale. */
    if (info->flags & GST_MAP_WRITE) {
      g_mutex_lock (&m->lock);
      m->host_valid = FALSE;
      g_mutex_unlock (&m->lock);
    }
    return m->device;
  }
  /* A write map downloads too: a partial write must keep the other bytes. */
  g_mutex_lock (&m->lock);
  data = download (m) ? m->host : NULL;
  g_mutex_unlock (&m->lock);
  return data;
}

static void
mem_unmap_full (GstMemory * mem, GstMapInfo * info)
{
  LlmDeviceMemory *m = (LlmDeviceMemory *) mem;
  LlmDeviceAllocator *self = DEVICE_ALLOCATOR (mem);
  GError *err = NULL;

  if ((info->flags & LLM_MAP_DEVICE) || !(info->flags & GST_MAP_WRITE))
    return;
  g_mutex_lock (&m->lock);
  if (self->backend->upload (m->device, m->host, mem->maxsize, &err)) {
    g_atomic_pointer_add (&n_uploads, 1);
  } else {
    /* Unmap cannot fail: the host copy keeps the bytes (host maps still
     * see them, the device does not) and the error is logged. */
    GST_ERROR ("%s:%d: cannot upload %" G_GSIZE_FORMAT " bytes written "
        "through a host map: %s", self->backend->name, self->index,
        mem->maxsize, err ? err->message : "no reason given");
    g_clear_error (&err);
  }
  g_mutex_unlock (&m->lock);
}

/* A deep copy through the host (backends have no device-to-device copy in
 * their table): gst_buffer_copy() of NO_SHARE memory lands here. */
static GstMemory *
mem_copy (GstMemory * mem, gssize offset, gssize size)
{
  LlmDeviceMemory *m = (LlmDeviceMemory *) mem, *copy;
  LlmDeviceAllocator *self = DEVICE_ALLOCATOR (mem);
  GError *err = NULL;
  gpointer device;
  gboolean ok;

  if (size == -1)
    size = mem->size > (gsize) offset ? mem->size - offset : 0;
  if (offset < 0 || mem->offset + offset + size > mem->maxsize)
    return NULL;
  if ((device = device_alloc (self, MAX (size, 1))) == NULL)
    return NULL;
  g_mutex_lock (&m->lock);
  ok = download (m) && (size == 0 || self->backend->upload (device,
          (guint8 *) m->host + mem->offset + offset, size, &err));
  g_mutex_unlock (&m->lock);
  if (!ok) {
    GST_ERROR ("%s:%d: cannot copy device memory: %s", self->backend->name,
        self->index, err ? err->message : "download failed");
    g_clear_error (&err);
    self->backend->free (device);
    return NULL;
  }
  copy = wrap (self, device, NULL, size, 0, size);
  return GST_MEMORY_CAST (copy);
}

static GstMemory *
mem_share (GstMemory * mem, gssize offset, gssize size)
{
  return NULL;
}

static gboolean
mem_is_span (GstMemory * mem1, GstMemory * mem2, gsize * offset)
{
  return FALSE;
}

static void
llm_device_allocator_class_init (LlmDeviceAllocatorClass * klass)
{
  GstAllocatorClass *aclass = GST_ALLOCATOR_CLASS (klass);

  aclass->alloc = allocator_alloc;
  aclass->free = allocator_free;
}

static void
llm_device_allocator_init (LlmDeviceAllocator * self)
{
  GstAllocator *a = GST_ALLOCATOR_CAST (self);

  a->mem_type = LLM_DEVICE_MEMORY_TYPE;
  a->mem_map_full = mem_map_full;
  a->mem_unmap_full = mem_unmap_full;
  a->mem_copy = mem_copy;
  a->mem_share = mem_share;
  a->mem_is_span = mem_is_span;
  GST_OBJECT_FLAG_SET (self, GST_ALLOCATOR_FLAG_CUSTOM_ALLOC);
}

GstAllocator *
llm_device_allocator_get (const LlmBackend * backend, gint index)
{
  static GMutex lock;
  static GHashTable *table;     /* "name:index" -> allocator, kept forever */
  g_autofree gchar *key = NULL;
  LlmDeviceAllocator *self;

  g_return_val_if_fail (backend != NULL && backend->alloc != NULL
      && backend->free != NULL && backend->upload != NULL
      && backend->download != NULL, NULL);
  g_return_val_if_fail (index >= 0, NULL);

  debug_init ();
  key = g_strdup_printf ("%p:%d", (gconstpointer) backend, index);
  g_mutex_lock (&lock);
  if (table == NULL)
    table = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self = g_hash_table_lookup (table, key);
  if (self == NULL) {
    self = g_object_new (LLM_TYPE_DEVICE_ALLOCATOR, NULL);
    gst_object_ref_sink (self);
    /* Process-lifetime, as GStreamer's own sysmem allocator. */
    GST_OBJECT_FLAG_SET (self, GST_OBJECT_FLAG_MAY_BE_LEAKED);
    self->backend = backend;
    self->index = index;
    g_hash_table_insert (table, g_steal_pointer (&key), self);
  }
  g_mutex_unlock (&lock);
  return gst_object_ref (self);
}

guint64
llm_device_allocator_n_allocs (void)
{
  return (guint64) g_atomic_pointer_get (&n_allocs);
}

guint64
llm_device_memory_n_downloads (void)
{
  return (guint64) g_atomic_pointer_get (&n_downloads);
}

guint64
llm_device_memory_n_uploads (void)
{
  return (guint64) g_atomic_pointer_get (&n_uploads);
}

gboolean
gst_is_llm_device_memory (GstMemory * mem)
{
  return mem != NULL && mem->allocator != NULL
      && LLM_IS_DEVICE_ALLOCATOR (mem->allocator);
}

gpointer
llm_device_memory_get_ptr (GstMemory * mem)
{
  g_return_val_if_fail (gst_is_llm_device_memory (mem), NULL);
  return ((LlmDeviceMemory *) mem)->device;
}

const LlmBackend *
llm_device_memory_get_backend (GstMemory * mem)
{
  g_return_val_if_fail (gst_is_llm_device_memory (mem), NULL);
  return DEVICE_ALLOCATOR (mem)->backend;
}

gint
llm_device_memory_get_index (GstMemory * mem)
{
  g_return_val_if_fail (gst_is_llm_device_memory (mem), -1);
  return DEVICE_ALLOCATOR (mem)->index;
}

/* --- the buffer pool --- */

#define LLM_TYPE_DEVICE_BUFFER_POOL (llm_device_buffer_pool_get_type ())
G_DECLARE_FINAL_TYPE (LlmDeviceBufferPool, llm_device_buffer_pool, LLM,
    DEVICE_BUFFER_POOL, GstBufferPool)

struct _LlmDeviceBufferPool
{
  GstBufferPool parent;
  GstAllocator *allocator;      /* the device's LlmDeviceAllocator */
};

G_DEFINE_TYPE (LlmDeviceBufferPool, llm_device_buffer_pool,
    GST_TYPE_BUFFER_POOL);

/* Whatever allocator the config names, the buffers are device memory. */
static gboolean
pool_set_config (GstBufferPool * pool, GstStructure * config)
{
  LlmDeviceBufferPool *self = LLM_DEVICE_BUFFER_POOL (pool);
  GstAllocationParams params;

  gst_allocation_params_init (&params);
  gst_buffer_pool_config_get_allocator (config, NULL, &params);
  gst_buffer_pool_config_set_allocator (config, self->allocator, &params);
  return GST_BUFFER_POOL_CLASS (llm_device_buffer_pool_parent_class)
      ->set_config (pool, config);
}

static void
pool_finalize (GObject * object)
{
  gst_object_unref (LLM_DEVICE_BUFFER_POOL (object)->allocator);
  G_OBJECT_CLASS (llm_device_buffer_pool_parent_class)->finalize (object);
}

static void
llm_device_buffer_pool_class_init (LlmDeviceBufferPoolClass * klass)
{
  G_OBJECT_CLASS (klass)->finalize = pool_finalize;
  GST_BUFFER_POOL_CLASS (klass)->set_config = pool_set_config;
}

static void
llm_device_buffer_pool_init (LlmDeviceBufferPool * self)
{
}

GstBufferPool *
llm_device_buffer_pool_new (const LlmBackend * backend, gint index)
{
  LlmDeviceBufferPool *self;
  GstAllocator *allocator = llm_device_allocator_get (backend, index);
  GstStructure *config;

  g_return_val_if_fail (allocator != NULL, NULL);

  self = g_object_new (LLM_TYPE_DEVICE_BUFFER_POOL, NULL);
  gst_object_ref_sink (self);
  self->allocator = allocator;
  /* A config that already names the allocator, for callers that only
   * set_params on it. */
  config = gst_buffer_pool_get_config (GST_BUFFER_POOL_CAST (self));
  gst_buffer_pool_config_set_allocator (config, allocator, NULL);
  gst_buffer_pool_set_config (GST_BUFFER_POOL_CAST (self), config);
  return GST_BUFFER_POOL_CAST (self);
}
