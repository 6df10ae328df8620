// Ballooning with the guest's help: pages a guest hands to the host stop
// costing memory, and restore can pre-fault the pages it is about to fill.
//
//   discardPages(memory, firstPage, pageCount) -> 'madvise' | 'zero-fill'
//       releases the 4 KiB pages [firstPage, firstPage + pageCount) of a wasm
//       memory to the kernel: they read back as zero and are no longer present,
//       so memory exclusion (exclude.c) leaves them out of every checkpoint.
//   populatePages(memory, firstPage, pageCount) -> errno (0: done)
//       pre-faults those pages writable in one call (MADV_POPULATE_WRITE,
//       Linux 5.14+), so a restore that is about to write them pays one
//       kernel entry instead of one fault per page. A hint: failure is not an
//       error (the caller writes the pages anyway).
//   prefaultStart(memory, extents[, hugePages]) -> handle
//   prefaultJoin(handle) -> errno (0: every extent populated)
//       the same for a list of extents (Uint32Array of first, count pairs),
//       on a thread of its own that runs ahead of the caller: restore reads
//       and checksums extent i while the kernel allocates and zeroes the
//       pages of the extents after it (the two costs of loading a sparse
//       image, docs/exclusion.md), on two cores in parallel. The caller must
//       keep the memory alive (and not grow it) until prefaultJoin.
//
// On Linux a discard is madvise(MADV_DONTNEED) on the private anonymous
// mapping V8 gives a wasm memory; elsewhere, or for a range that is not
// page-aligned in the process, discarding is zero-filling (the bytes are the
// same; only the memory is not given back).
#include "addon.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#ifdef __linux__
#include <pthread.h>
#include <sys/mman.h>
#include <time.h>
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14 uapi; older headers lack it
#endif
#endif

// Reads (memory, firstPage, pageCount) and checks that the page range lies
// inside memory. Returns 0 with a JS exception pending on bad arguments.
static int page_range_args(napi_env env, napi_callback_info info, uint8_t** start, size_t* bytes) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
    us_throw(env, "ERR_NATIVE_NAPI", "N-API call failed: napi_get_cb_info");
    return 0;
  }
  if (argc < 3) {
    us_throw(env, "ERR_NATIVE_ARG", "expected (memory, firstPage, pageCount)");
    return 0;
  }
  uint8_t* memory;
  size_t length;
  if (!us_get_bytes(env, argv[0], &memory, &length)) return 0;
  double first, count;
  if (napi_get_value_double(env, argv[1], &first) != napi_ok || napi_get_value_double(env, argv[2], &count) != napi_ok) {
    us_throw(env, "ERR_NATIVE_ARG", "firstPage and pageCount must be numbers");
    return 0;
  }
  const double pages = (double)(length / US_PAGE_BYTES);
  if (!(first >= 0) || !(count >= 0) || first != (double)(uint64_t)first || count != (double)(uint64_t)count || first + count > pages) {
    us_throw(env, "ERR_NATIVE_RANGE", "page range lies outside the memory");
    return 0;
  }
  // SAFETY: first + count <= length / 4096, so the range lies inside the
  // caller's live memory [memory, memory + length).
  *start = memory + (size_t)first * US_PAGE_BYTES;
  *bytes = (size_t)count * US_PAGE_BYTES;
  return 1;
}

static napi_value js_discard_pages(napi_env env, napi_callback_info info) {
  uint8_t* start;
  size_t bytes;
  if (!page_range_args(env, info, &start, &bytes)) return NULL;
  const char* how = "zero-fill";
#ifdef __linux__
  if (bytes > 0 && (uintptr_t)start % US_PAGE_BYTES == 0) {
    // SAFETY: [start, start + bytes) is page-aligned and inside the wasm
    // memory's accessible range (checked above), a private anonymous mapping
    // owned by V8; MADV_DONTNEED on it only drops the pages, which read back
    // as zero — the same bytes the portable path writes. No JS runs
    // concurrently with this call, so no view observes a torn state.
    if (madvise(start, bytes, MADV_DONTNEED) == 0) how = "madvise";
  }
#endif
  // SAFETY: same range as above; memset is the portable discard and the
  // fallback when madvise refused (the mapping is then left as it was).
  if (bytes > 0 && strcmp(how, "madvise") != 0) memset(start, 0, bytes);
  napi_value out;
  US_NAPI_OK(env, napi_create_string_utf8(env, how, NAPI_AUTO_LENGTH, &out));
  return out;
}

static napi_value js_populate_pages(napi_env env, napi_callback_info info) {
  uint8_t* start;
  size_t bytes;
  if (!page_range_args(env, info, &start, &bytes)) return NULL;
  int err = ENOSYS;
#ifdef __linux__
  err = 0;
  if (bytes > 0) {
    if ((uintptr_t)start % US_PAGE_BYTES) {
      err = EINVAL;
    } else {
      // SAFETY: the range is inside the wasm memory's accessible, writable
      // mapping (checked above); POPULATE_WRITE only faults pages in (zero
      // for never-touched ones) and never changes their contents.
      if (madvise(start, bytes, MADV_POPULATE_WRITE) != 0) err = errno;
    }
  }
#endif
  napi_value out;
  US_NAPI_OK(env, napi_create_int32(env, err, &out));
  return out;
}

// ---- prefault ahead of a reader ----

typedef struct {
  uint8_t* memory;    // the wasm memory's first byte; the caller keeps it alive until join
  uint32_t* extents;  // our copy: (first page, page count) pairs, validated inside memory
  size_t pairs;
  int err;            // first madvise failure (0: none); a hint, reported by join
  int huge;           // back whole 2 MiB blocks of extents with transparent huge pages
  int huge_gave_up;   // a huge page was slow (compaction): the rest used 4 KiB pages
  uint32_t huge_blocks;  // blocks populated as huge pages (as asked; the kernel may still fall back)
  int started;
  int joined;
#ifdef __linux__
  pthread_t thread;
#endif
} us_prefault;

#ifdef __linux__
// One transparent huge page; a block populated slower than the bound means
// the kernel compacted memory to find it (a fast one takes ~0.25 ms here).
#define PREFAULT_HUGE_BYTES ((size_t)2 << 20)
#define PREFAULT_HUGE_BLOCK_SLOW_NS 2000000u

// The 2 MiB-aligned blocks wholly inside [start, start + bytes): where huge
// pages back only stored pages (a huge page over a gap would make excluded
// pages present, and cost 2 MiB for one stored page).
static void huge_span(uint8_t* start, size_t bytes, uint8_t** from, size_t* span) {
  const uintptr_t huge = (uintptr_t)PREFAULT_HUGE_BYTES;
  const uintptr_t lo = (uintptr_t)start, hi = (uintptr_t)start + bytes;
  const uintptr_t a = (lo + huge - 1) & ~(huge - 1), b = hi & ~(huge - 1);
  *from = (uint8_t*)a;
  *span = b > a ? (size_t)(b - a) : 0;
}

static uint64_t monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

// Populates [start, start + bytes) writable; records the first failure.
static void populate(us_prefault* p, uint8_t* start, size_t bytes) {
  if (bytes && madvise(start, bytes, MADV_POPULATE_WRITE) != 0 && !p->err) p->err = errno;
}

static void* prefault_main(void* arg) {
  us_prefault* p = (us_prefault*)arg;
  for (size_t i = 0; i < p->pairs; i++) {
    // SAFETY: each pair was checked against the memory's length in
    // prefaultStart, and the caller keeps the mapping alive and unresized
    // until join; POPULATE_WRITE faults pages in without changing contents,
    // so it may race freely with the reader writing the same pages.
    uint8_t* start = p->memory + (size_t)p->extents[2 * i] * US_PAGE_BYTES;
    size_t bytes = (size_t)p->extents[2 * i + 1] * US_PAGE_BYTES;
    uint8_t* huge = NULL;
    size_t huge_bytes = 0;
    if (p->huge) huge_span(start, bytes, &huge, &huge_bytes);
    // SAFETY (every madvise below): inside this extent. MADV_HUGEPAGE only
    // changes how the kernel backs pages faulted from now on: one 2 MiB
    // allocation and zeroing pass per 512 pages instead of 512 faults.
    // Contents are unchanged; refused advice (no THP here) is harmless.
    if (!huge_bytes || madvise(huge, huge_bytes, MADV_HUGEPAGE) != 0) {
      populate(p, start, bytes);
      continue;
    }
    populate(p, start, (size_t)(huge - start));
    for (size_t done = 0; done < huge_bytes; done += PREFAULT_HUGE_BYTES) {
      uint8_t* block = huge + done;
      if (p->huge) {
        const uint64_t t0 = monotonic_ns();
        populate(p, block, PREFAULT_HUGE_BYTES);
        // A huge page that took long came from direct compaction (memory is
        // fragmented): the rest of this restore uses 4 KiB pages, whose cost
        // is bounded, rather than stall block after block.
        if (monotonic_ns() - t0 > PREFAULT_HUGE_BLOCK_SLOW_NS) {
          p->huge = 0;
          p->huge_gave_up = 1;
          (void)madvise(block, huge_bytes - done, MADV_NOHUGEPAGE);
        } else {
          p->huge_blocks++;
        }
      } else {
        populate(p, block, PREFAULT_HUGE_BYTES);
      }
    }
    populate(p, huge + huge_bytes, (size_t)(start + bytes - (huge + huge_bytes)));
    // Pages faulted later are 4 KiB again, as in a guest never restored, and
    // khugepaged does not re-collapse a block the balloon partly discarded.
    // The huge pages stay until something splits them (a tracker's first
    // write fault in the block, a discard).
    (void)madvise(huge, huge_bytes, MADV_NOHUGEPAGE);
  }
  return NULL;
}
#endif

static int prefault_join(us_prefault* p) {
#ifdef __linux__
  if (p->started && !p->joined) pthread_join(p->thread, NULL);
#endif
  p->joined = 1;
  return p->err;
}

static void prefault_finalize(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  us_prefault* p = (us_prefault*)data;
  // A handle dropped without join: the thread may still touch the memory, so
  // it is joined before its state is freed.
  prefault_join(p);
  free(p->extents);
  free(p);
}

static napi_value js_prefault_start(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return us_throw(env, "ERR_NATIVE_ARG", "expected (memory, extents[, hugePages])");
  bool huge = false;
  if (argc >= 3 && napi_get_value_bool(env, argv[2], &huge) != napi_ok) return us_throw(env, "ERR_NATIVE_ARG", "hugePages must be a boolean");
  uint8_t* memory;
  size_t length;
  if (!us_get_bytes(env, argv[0], &memory, &length)) return NULL;
  uint32_t* extents;
  size_t count;
  if (!us_get_u32_array(env, argv[1], &extents, &count, "ERR_NATIVE_ARG", "extents must be a Uint32Array of (first, count) pairs"))
    return NULL;
  if (count % 2) return us_throw(env, "ERR_NATIVE_ARG", "extents must hold (first, count) pairs");
  const uint64_t pages = length / US_PAGE_BYTES;
  for (size_t i = 0; i < count; i += 2) {
    // SAFETY: i + 1 < count, inside the typed array.
    if ((uint64_t)extents[i] + extents[i + 1] > pages) return us_throw(env, "ERR_NATIVE_RANGE", "an extent lies outside the memory");
  }
  us_prefault* p = (us_prefault*)calloc(1, sizeof *p);
  if (!p) return us_throw(env, "ERR_NATIVE_NOMEM", "out of memory for a prefault");
  p->memory = memory;
  p->pairs = count / 2;
  p->huge = huge;
  p->extents = (uint32_t*)malloc(count ? count * sizeof *extents : 1);
  if (!p->extents) {
    free(p);
    return us_throw(env, "ERR_NATIVE_NOMEM", "out of memory for a prefault");
  }
  // SAFETY: both hold `count` uint32s; the copy outlives the JS array.
  if (count) memcpy(p->extents, extents, count * sizeof *extents);
#ifdef __linux__
  if ((uintptr_t)memory % US_PAGE_BYTES) {
    p->err = EINVAL;
  } else {
    // SAFETY: p stays allocated until prefault_join has joined the thread
    // (join, or the finalizer, which joins first).
    int perr = pthread_create(&p->thread, NULL, prefault_main, p);
    if (perr) p->err = perr;  // no thread: the reader faults the pages itself
    else p->started = 1;
  }
#else
  p->err = ENOSYS;
#endif
  napi_value handle;
  if (napi_create_external(env, p, prefault_finalize, NULL, &handle) != napi_ok) {
    prefault_join(p);
    free(p->extents);
    free(p);
    return us_throw(env, "ERR_NATIVE_NAPI", "napi_create_external failed");
  }
  return handle;
}

static napi_value js_prefault_join(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void* data = NULL;
  if (argc < 1) return us_throw(env, "ERR_NATIVE_ARG", "expected a prefault handle");
  if (!us_get_external(env, argv[0], "prefault", &data)) return NULL;
  napi_value out;
  US_NAPI_OK(env, napi_create_int32(env, prefault_join((us_prefault*)data), &out));
  return out;
}

napi_value us_init_balloon(napi_env env, napi_value exports) {
  if (!us_register(env, exports, "discardPages", js_discard_pages)) return NULL;
  if (!us_register(env, exports, "populatePages", js_populate_pages)) return NULL;
  if (!us_register(env, exports, "prefaultStart", js_prefault_start)) return NULL;
  if (!us_register(env, exports, "prefaultJoin", js_prefault_join)) return NULL;
  return exports;
}
