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
//
// On Linux a discard is madvise(MADV_DONTNEED) on the private anonymous
// mapping V8 gives a wasm memory; elsewhere, or for a range that is not
// page-aligned in the process, discarding is zero-filling (the bytes are the
// same; only the memory is not given back).
#include "addon.h"

#include <errno.h>
#include <string.h>

#ifdef __linux__
#include <sys/mman.h>
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

napi_value us_init_balloon(napi_env env, napi_value exports) {
  if (!us_register(env, exports, "discardPages", js_discard_pages)) return NULL;
  if (!us_register(env, exports, "populatePages", js_populate_pages)) return NULL;
  return exports;
}
