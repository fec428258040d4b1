/* LLMasOS - a binary heap over a GArray, for the BPE merge loops.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <string.h>
#include <glib.h>

G_BEGIN_DECLS

/* < private > Shared by core/llm-vocab.c and core/llm-tokenize-*.c.
 *
 * BPE applies merges in order of rank (or score) and, among equal ones,
 * the leftmost pair first; candidate pairs appear and go stale as their
 * neighbours merge. A heap of candidates ordered by (rank, position)
 * gives that order in O(n log n) where rescanning the word for the best
 * pair would be O(n^2); stale candidates stay in and are skipped when
 * popped.
 *
 * Header-only on purpose: this runs per merge, and each call site gets
 * its own copy with @less inlined and the element size a constant. The
 * same code out of line, through a function pointer, made encoding
 * 15-25% slower. */

/* TRUE when @a comes out of the heap before @b. */
typedef gboolean (*LlmHeapLess) (gconstpointer a, gconstpointer b);

#define LLM_HEAP_AT(h, i, size) ((h)->data + (gsize) (i) * (size))

/* Both sifts move a hole instead of swapping elements: the same
 * comparisons and the same resulting order, one copy per level. */
static inline void
llm_heap_push_sized (GArray * heap, gconstpointer elem, gsize size,
    LlmHeapLess less)
{
  guint i;

  g_assert (size == g_array_get_element_size (heap));
  g_array_set_size (heap, heap->len + 1);
  for (i = heap->len - 1; i > 0; i = (i - 1) / 2) {
    guint parent = (i - 1) / 2;

    if (!less (elem, LLM_HEAP_AT (heap, parent, size)))
      break;
    memcpy (LLM_HEAP_AT (heap, i, size), LLM_HEAP_AT (heap, parent, size),
        size);
  }
  memcpy (LLM_HEAP_AT (heap, i, size), elem, size);
}

static inline void
llm_heap_pop_sized (GArray * heap, gpointer out, gsize size, LlmHeapLess less)
{
  const gchar *last;
  guint n, i = 0;

  g_assert (size == g_array_get_element_size (heap));
  g_assert (heap->len > 0);
  memcpy (out, LLM_HEAP_AT (heap, 0, size), size);
  n = heap->len - 1;
  /* the last element sifts down from the top; it stays in its slot,
   * past the n kept, until it lands */
  last = LLM_HEAP_AT (heap, n, size);
  for (;;) {
    guint l = 2 * i + 1, r = l + 1, m = i;
    const gchar *best = last;

    if (l < n && less (LLM_HEAP_AT (heap, l, size), best)) {
      m = l;
      best = LLM_HEAP_AT (heap, l, size);
    }
    if (r < n && less (LLM_HEAP_AT (heap, r, size), best)) {
      m = r;
      best = LLM_HEAP_AT (heap, r, size);
    }
    if (m == i)
      break;
    memcpy (LLM_HEAP_AT (heap, i, size), best, size);
    i = m;
  }
  if (i != n)
    memcpy (LLM_HEAP_AT (heap, i, size), last, size);
  g_array_set_size (heap, n);
}

#undef LLM_HEAP_AT

/* Adds a copy of *@elem to @heap, a GArray of elements of *@elem's type
 * (@elem must not point into @heap). */
#define llm_heap_push(heap, elem, less) \
  llm_heap_push_sized ((heap), (elem), sizeof *(elem), (less))
/* Moves the first element of @heap (not empty) to *@out. */
#define llm_heap_pop(heap, out, less) \
  llm_heap_pop_sized ((heap), (out), sizeof *(out), (less))

G_END_DECLS
