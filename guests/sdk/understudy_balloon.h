/*
 * understudy_balloon.h — the guest side of ballooning (seed 004's balloon
 * driver and performance monitor) for C guests on wasi-libc's dlmalloc.
 *
 * Use, in exactly one translation unit of a guest:
 *
 *   // understudy: cflags US_BALLOON_LDFLAGS   (spelled out: see below)
 *   #include "understudy_balloon.h"
 *   US_BALLOON_DEFINE()
 *
 * and link with (the build-guests marker line, as one line):
 *
 *   -Wl,--wrap=malloc -Wl,--wrap=free -Wl,--wrap=calloc -Wl,--wrap=realloc
 *   -Wl,--wrap=aligned_alloc -Wl,--wrap=posix_memalign -Wl,--wrap=sbrk
 *
 * The wraps count the bytes the program holds (the allocator has no
 * statistics of its own in wasi-libc) and let the balloon forbid the heap to
 * grow while it inflates (sbrk answers "no memory" then): the balloon takes
 * only memory the allocator already has, never more from the host. free()
 * zeroes the block first (and realloc grows by copying, so the old block is
 * zeroed too): the holes a program leaves inside pages are then zero, which
 * a checkpoint leaves out below page granularity (the MemoryRuns section).
 *
 * Exports (the host calls them between calls, when the guest is at rest):
 *
 *   us_balloon_stats() -> i32       pointer to US_BALLOON_STATS_WORDS u32s:
 *       [0] version (1)    [1] total pages (memory size)    [2] heap pages
 *       (the allocator's footprint)    [3] pages in use (static data + bytes
 *       held, rounded up)    [4] free heap pages (footprint - held - balloon)
 *       [5] balloon pages    [6] pages reported free since start
 *       Pages are 4 KiB.
 *   us_balloon_inflate(targetPages, stepPagesMax) -> i32
 *       grows the balloon towards `targetPages`, adding at most
 *       `stepPagesMax` pages in this call; returns the balloon's size in
 *       pages (the host calls again until the target is met, no progress is
 *       made, or its deadline passes), or a negative US_BALLOON_E* when the
 *       host refused a hand-over.
 *   us_balloon_deflate() -> i32     returns every balloon page to the
 *       allocator; returns the pages released.
 *   us_balloon_set_reporting(minBytes) -> i32
 *       free page reporting: from now on, a free() of a block of at least
 *       `minBytes` bytes (0: off) reports the block's whole pages to the host,
 *       which discards them. Returns the previous setting.
 *
 * Hypercalls (import module "understudy"), each (ptr, len) -> i32: 0, or a
 * negative US_BALLOON_E* when the range is refused:
 *
 *   balloon_give(ptr, len)         the guest hands pages to the host
 *   balloon_take(ptr, len)         the guest takes balloon pages back
 *   balloon_report_free(ptr, len)  pages of a freed block (still the
 *                                  allocator's; their bytes may be dropped)
 *
 * ptr and len must be multiples of 4096 and the range inside memory.
 *
 * Command guests: the host calls the exports above between a reactor's
 * calls, but a command may be stopped anywhere, even inside malloc. So a
 * command says where it may be called: it calls
 *
 *   us_balloon_poll()              from its main loop, where the allocator
 *                                  is idle (not from inside a malloc hook)
 *
 * which makes the hypercall balloon_poll() -> i32 (0: done, 1: call again;
 * at most US_BALLOON_POLL_CALLS_MAX calls). Inside it the host may call
 * us_balloon_stats/inflate/deflate on top of the guest's stack: before a
 * snapshot it inflates (first call), the snapshot is taken when the guest
 * makes the second call, and the second call deflates. A poll costs one
 * host call when nothing is asked. A command that never polls gets
 * exclusion without help.
 *
 * A balloon chunk is a malloc'd block of US_BALLOON_CHUNK_BYTES (1 MiB), or
 * US_BALLOON_SMALL_CHUNK_BYTES (64 KiB) once no 1 MiB block fits. Its first
 * bytes hold the list link (so the list costs no other memory); the whole
 * pages after the link are handed over. Per chunk at most one page stays.
 */
#ifndef UNDERSTUDY_BALLOON_H
#define UNDERSTUDY_BALLOON_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define US_BALLOON_PAGE_BYTES 4096u
#define US_BALLOON_STATS_WORDS 8
#define US_BALLOON_CHUNK_BYTES (1u << 20)
#define US_BALLOON_SMALL_CHUNK_BYTES (64u << 10)
/* Bytes left alone at each end of a reported free block: the allocator's
 * headers, free-list and tree links live there (dlmalloc: < 32 bytes). */
#define US_BALLOON_REPORT_MARGIN_BYTES 64u

#define US_BALLOON_ERANGE (-1)   /* outside memory */
#define US_BALLOON_EALIGN (-2)   /* not whole 4 KiB pages */
#define US_BALLOON_ESTATE (-3)   /* give of balloon pages / take of others */

__attribute__((import_module("understudy"), import_name("balloon_give")))
int32_t us_hc_balloon_give(uint32_t ptr, uint32_t len);
__attribute__((import_module("understudy"), import_name("balloon_take")))
int32_t us_hc_balloon_take(uint32_t ptr, uint32_t len);
__attribute__((import_module("understudy"), import_name("balloon_report_free")))
int32_t us_hc_balloon_report_free(uint32_t ptr, uint32_t len);
__attribute__((import_module("understudy"), import_name("balloon_poll")))
int32_t us_hc_balloon_poll(void);

/* A snapshot needs two polls (inflate, then snapshot + deflate); the bound
 * keeps a confused host from holding the program. */
#define US_BALLOON_POLL_CALLS_MAX 4

static inline void us_balloon_poll(void) {
    for (int i = 0; i < US_BALLOON_POLL_CALLS_MAX && us_hc_balloon_poll() == 1; i++) {
    }
}

void* __real_malloc(size_t n);
void __real_free(void* p);
void __wrap_free(void* p);
void* __real_calloc(size_t n, size_t m);
void* __real_realloc(void* p, size_t n);
void* __real_aligned_alloc(size_t a, size_t n);
int __real_posix_memalign(void** out, size_t a, size_t n);
void* __real_sbrk(intptr_t increment);
size_t malloc_usable_size(void* p);
extern unsigned char __heap_base;

typedef struct us_balloon_chunk {
    struct us_balloon_chunk* next;
    uint32_t give_ptr;
    uint32_t give_len;
} us_balloon_chunk;

#define US_BALLOON_DEFINE()                                                     \
    static size_t us_held_bytes_;                                               \
    static uintptr_t us_heap_end_;                                              \
    static int us_no_grow_;                                                     \
    static us_balloon_chunk* us_balloon_list_;                                  \
    static uint32_t us_balloon_pages_;                                          \
    static uint32_t us_reported_pages_;                                         \
    static size_t us_report_min_bytes_;                                         \
    static uint32_t us_stats_[US_BALLOON_STATS_WORDS];                          \
                                                                                \
    static void us_held_add(void* p) { if (p) us_held_bytes_ += malloc_usable_size(p); } \
    static void us_held_sub(void* p) {                                          \
        if (!p) return;                                                         \
        size_t n = malloc_usable_size(p);                                       \
        us_held_bytes_ = n > us_held_bytes_ ? 0 : us_held_bytes_ - n;           \
    }                                                                           \
    void* __wrap_sbrk(intptr_t increment) {                                     \
        if (increment > 0 && us_no_grow_) return (void*)-1;                     \
        void* old = __real_sbrk(increment);                                     \
        if (old != (void*)-1) {                                                 \
            uintptr_t end = (uintptr_t)old + (uintptr_t)(increment > 0 ? increment : 0); \
            if (end > us_heap_end_) us_heap_end_ = end;                         \
        }                                                                       \
        return old;                                                             \
    }                                                                           \
    void* __wrap_malloc(size_t n) { void* p = __real_malloc(n); us_held_add(p); return p; } \
    void* __wrap_calloc(size_t n, size_t m) { void* p = __real_calloc(n, m); us_held_add(p); return p; } \
    void* __wrap_aligned_alloc(size_t a, size_t n) { void* p = __real_aligned_alloc(a, n); us_held_add(p); return p; } \
    int __wrap_posix_memalign(void** out, size_t a, size_t n) {                 \
        int r = __real_posix_memalign(out, a, n);                               \
        if (r == 0) us_held_add(*out);                                          \
        return r;                                                               \
    }                                                                           \
    void* __wrap_realloc(void* p, size_t n) {                                   \
        if (!p) return __wrap_malloc(n);                                        \
        if (n == 0) { __wrap_free(p); return NULL; }                            \
        size_t before = malloc_usable_size(p);                                  \
        if (n > before) {                                                       \
            /* Grown by copy, so the old block is zeroed before it is freed   \
             * (dlmalloc's own realloc would free it unzeroed inside). */      \
            void* q = __wrap_malloc(n);                                         \
            if (!q) return NULL;                                                \
            memcpy(q, p, before);                                               \
            __wrap_free(p);                                                     \
            return q;                                                           \
        }                                                                       \
        /* Shrunk in place: the tail dlmalloc may split off is zeroed first. */ \
        memset((unsigned char*)p + n, 0, before - n);                           \
        void* q = __real_realloc(p, n);                                         \
        us_held_bytes_ = before > us_held_bytes_ ? 0 : us_held_bytes_ - before; \
        us_held_add(q);                                                         \
        return q;                                                               \
    }                                                                           \
    void __wrap_free(void* p) {                                                 \
        if (!p) return;                                                         \
        size_t n = malloc_usable_size(p);                                       \
        us_held_sub(p);                                                         \
        /* Zeroed before it is freed: a free hole inside a page is then zero \
         * but for the allocator's few bytes of links, and a checkpoint       \
         * stores such a page as its live runs (exclusion below pages). */    \
        memset(p, 0, n);                                                        \
        __real_free(p);                                                         \
        if (us_report_min_bytes_ && n >= us_report_min_bytes_) {                \
            /* Whole pages strictly inside the freed block, margins left. */    \
            uintptr_t lo = ((uintptr_t)p + US_BALLOON_REPORT_MARGIN_BYTES +     \
                            US_BALLOON_PAGE_BYTES - 1) & ~(uintptr_t)(US_BALLOON_PAGE_BYTES - 1); \
            uintptr_t hi = ((uintptr_t)p + n - US_BALLOON_REPORT_MARGIN_BYTES) & \
                           ~(uintptr_t)(US_BALLOON_PAGE_BYTES - 1);             \
            if (hi > lo && us_hc_balloon_report_free((uint32_t)lo, (uint32_t)(hi - lo)) == 0) \
                us_reported_pages_ += (uint32_t)((hi - lo) / US_BALLOON_PAGE_BYTES); \
        }                                                                       \
    }                                                                           \
                                                                                \
    static uintptr_t us_heap_end(void) {                                        \
        if (!us_heap_end_) us_heap_end_ = (uintptr_t)__real_sbrk(0);            \
        return us_heap_end_;                                                    \
    }                                                                           \
                                                                                \
    __attribute__((export_name("us_balloon_stats")))                           \
    int32_t us_balloon_stats(void) {                                            \
        const uint32_t P = US_BALLOON_PAGE_BYTES;                               \
        uintptr_t base = (uintptr_t)&__heap_base;                               \
        uintptr_t end = us_heap_end();                                          \
        uint32_t heap = end > base ? (uint32_t)((end - base) / P) : 0;          \
        uint32_t held = (uint32_t)((us_held_bytes_ + P - 1) / P);               \
        uint32_t in_use = (uint32_t)((base + P - 1) / P) + held;                \
        uint32_t taken = held + us_balloon_pages_;                              \
        us_stats_[0] = 1;                                                       \
        us_stats_[1] = (uint32_t)(__builtin_wasm_memory_size(0) * (65536u / P)); \
        us_stats_[2] = heap;                                                    \
        us_stats_[3] = in_use;                                                  \
        us_stats_[4] = heap > taken ? heap - taken : 0;                         \
        us_stats_[5] = us_balloon_pages_;                                       \
        us_stats_[6] = us_reported_pages_;                                      \
        us_stats_[7] = 0;                                                       \
        return (int32_t)(uintptr_t)us_stats_;                                   \
    }                                                                           \
                                                                                \
    /* One chunk of `bytes` from memory the allocator already has, handed     \
     * over. Returns pages given, 0 when no such block is free, <0 refused. */ \
    static int32_t us_balloon_take_chunk(uint32_t bytes) {                      \
        us_no_grow_ = 1;                                                        \
        unsigned char* c = (unsigned char*)__real_malloc(bytes);                \
        us_no_grow_ = 0;                                                        \
        if (!c) return 0;                                                       \
        uintptr_t lo = ((uintptr_t)c + sizeof(us_balloon_chunk) + US_BALLOON_PAGE_BYTES - 1) & \
                       ~(uintptr_t)(US_BALLOON_PAGE_BYTES - 1);                 \
        uintptr_t hi = ((uintptr_t)c + bytes) & ~(uintptr_t)(US_BALLOON_PAGE_BYTES - 1); \
        int32_t r = hi > lo ? us_hc_balloon_give((uint32_t)lo, (uint32_t)(hi - lo)) : 0; \
        if (r < 0) { __real_free(c); return r; }                                \
        us_balloon_chunk* node = (us_balloon_chunk*)c;                          \
        node->next = us_balloon_list_;                                          \
        node->give_ptr = (uint32_t)lo;                                          \
        node->give_len = (uint32_t)(hi - lo);                                   \
        us_balloon_list_ = node;                                                \
        uint32_t pages = node->give_len / US_BALLOON_PAGE_BYTES;                \
        us_balloon_pages_ += pages;                                             \
        /* A chunk of whole pages-to-be counts even when it gave none. */     \
        return pages ? (int32_t)pages : 1;                                      \
    }                                                                           \
                                                                                \
    __attribute__((export_name("us_balloon_inflate")))                         \
    int32_t us_balloon_inflate(int32_t target, int32_t step_max) {              \
        if (target < 0 || step_max <= 0) return (int32_t)us_balloon_pages_;     \
        uint32_t added = 0;                                                     \
        uint32_t size = US_BALLOON_CHUNK_BYTES;                                 \
        /* Bounded: every turn adds a chunk or shrinks the chunk size, and    \
         * stops after step_max pages. */                                      \
        while (us_balloon_pages_ < (uint32_t)target && added < (uint32_t)step_max) { \
            uint32_t want = ((uint32_t)target - us_balloon_pages_) * US_BALLOON_PAGE_BYTES; \
            if (size > US_BALLOON_SMALL_CHUNK_BYTES && want < size) size = US_BALLOON_SMALL_CHUNK_BYTES; \
            int32_t got = us_balloon_take_chunk(size);                          \
            if (got < 0) return got;                                            \
            if (got == 0) {                                                     \
                if (size == US_BALLOON_SMALL_CHUNK_BYTES) break;                \
                size = US_BALLOON_SMALL_CHUNK_BYTES;                            \
                continue;                                                       \
            }                                                                   \
            added += (uint32_t)got;                                             \
        }                                                                       \
        return (int32_t)us_balloon_pages_;                                      \
    }                                                                           \
                                                                                \
    __attribute__((export_name("us_balloon_deflate")))                         \
    int32_t us_balloon_deflate(void) {                                          \
        uint32_t released = 0;                                                  \
        while (us_balloon_list_) {                                              \
            us_balloon_chunk* node = us_balloon_list_;                          \
            us_balloon_list_ = node->next;                                      \
            if (node->give_len) (void)us_hc_balloon_take(node->give_ptr, node->give_len); \
            released += node->give_len / US_BALLOON_PAGE_BYTES;                 \
            __real_free(node);                                                  \
        }                                                                       \
        us_balloon_pages_ = 0;                                                  \
        return (int32_t)released;                                               \
    }                                                                           \
                                                                                \
    __attribute__((export_name("us_balloon_set_reporting")))                   \
    int32_t us_balloon_set_reporting(int32_t min_bytes) {                       \
        int32_t before = (int32_t)us_report_min_bytes_;                         \
        us_report_min_bytes_ = min_bytes > 0 ? (size_t)min_bytes : 0;           \
        if (us_report_min_bytes_ && us_report_min_bytes_ < 2 * US_BALLOON_PAGE_BYTES) \
            us_report_min_bytes_ = 2 * US_BALLOON_PAGE_BYTES;                   \
        return before;                                                          \
    }

#endif /* UNDERSTUDY_BALLOON_H */
