// Memory exclusion without the guest's help: which 4 KiB pages of a memory
// hold anything, asked of the kernel's page tables rather than of the bytes,
// so that pages the guest never touched are neither read nor faulted in.
//
//   presentPages(memory) -> Uint32Array   pages backed by a page (present or
//                                          swapped out), not the shared zero page
//   storedPages(memory)  -> { pages, present, zeroPresent, method }
//                                          the present pages that hold a non-zero
//                                          byte: exactly what a checkpoint stores
//
// On Linux the question is one PAGEMAP_SCAN ioctl (6.7+) on /proc/self/pagemap
// with a growing output array; older kernels fall back to reading pagemap
// entries (8 bytes per page); other systems, or a range that is not
// page-aligned (a small heap buffer), count every page as present — the
// result is then the non-zero pages, still exact, only slower to find.
#include "addon.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#ifdef __linux__
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "uffd_uapi.h"
#endif

// How the present pages were found (reported to JS; the benchmark prints it).
typedef enum { US_PRESENT_ALL = 0, US_PRESENT_PAGEMAP_SCAN = 1, US_PRESENT_PAGEMAP = 2 } us_present_method;
static const char* const US_PRESENT_METHOD_NAMES[] = {"all", "pagemap-scan", "pagemap"};

// A growing list of page indices; at most `pages` of a memory of that many pages.
typedef struct {
  uint32_t* data;
  size_t count;
  size_t capacity;
} us_page_list;

static int list_push(us_page_list* l, uint32_t page) {
  if (l->count == l->capacity) {
    size_t want = l->capacity ? l->capacity * 2 : 1024;
    uint32_t* grown = (uint32_t*)realloc(l->data, want * sizeof *grown);
    if (!grown) return ENOMEM;
    l->data = grown;
    l->capacity = want;
  }
  // SAFETY: count < capacity after the growth above.
  l->data[l->count++] = page;
  return 0;
}

static int list_all(us_page_list* l, size_t pages) {
  for (size_t i = 0; i < pages; i++) {
    int err = list_push(l, (uint32_t)i);
    if (err) return err;
  }
  return 0;
}

#ifdef __linux__
// PAGEMAP_SCAN output starts with this many regions and doubles when it fills.
#define US_EXCLUDE_REGIONS_INITIAL 1024u
// Entries read per pread of /proc/self/pagemap in the fallback (64 KiB).
#define US_PAGEMAP_ENTRIES_PER_READ 8192u
#define US_PM_PRESENT ((uint64_t)1 << 63)
#define US_PM_SWAP ((uint64_t)1 << 62)

// Pages of [base, base + pages*4096) that are present or swapped out (a swap
// entry, a migration entry, or a userfaultfd write-protect marker: all count,
// because the first two hold data and the third costs only a read of a zero
// page), excluding mappings of the shared zero page (a page only ever read).
// Returns 0, or an errno (ENOTTY/EINVAL: no PAGEMAP_SCAN on this kernel).
static int scan_present(int fd, uint8_t* base, size_t pages, us_page_list* out) {
  const uint64_t start = (uint64_t)(uintptr_t)base;
  const uint64_t end = start + (uint64_t)pages * US_PAGE_BYTES;
  // Distinct regions hold distinct pages; more regions than pages is a kernel
  // answer that makes no sense.
  const uint64_t regions_limit = (uint64_t)pages + 1;
  uint64_t capacity = US_EXCLUDE_REGIONS_INITIAL;
  struct us_page_region* vec = (struct us_page_region*)malloc((size_t)capacity * sizeof *vec);
  if (!vec) return ENOMEM;
  uint64_t cursor = start;
  uint64_t prev_end = start;
  int err = 0;
  // Every call finishes the walk or advances the cursor by at least a page.
  for (uint64_t calls = 0; cursor < end; calls++) {
    if (calls > pages + 1) {
      err = EIO;
      break;
    }
    struct us_pm_scan_arg arg;
    memset(&arg, 0, sizeof arg);
    arg.size = sizeof arg;
    arg.flags = 0;  // a question only: nothing is write-protected
    arg.start = cursor;
    arg.end = end;
    arg.vec = (uint64_t)(uintptr_t)vec;
    arg.vec_len = capacity;
    arg.max_pages = 0;
    arg.category_mask = US_PAGE_IS_PFNZERO;
    arg.category_inverted = US_PAGE_IS_PFNZERO;
    arg.category_anyof_mask = US_PAGE_IS_PRESENT | US_PAGE_IS_SWAPPED;
    arg.return_mask = US_PAGE_IS_PRESENT | US_PAGE_IS_SWAPPED;
    // SAFETY: arg is a pm_scan_arg of the asserted size; vec holds `capacity`
    // page_region entries owned here; [start, end) is the caller's live
    // memory, which the kernel only reads page tables of.
    long r = ioctl(fd, US_PAGEMAP_SCAN, &arg);
    if (r < 0) {
      err = errno;
      break;
    }
    if ((uint64_t)r > capacity) {
      err = EIO;
      break;
    }
    for (long i = 0; i < r && !err; i++) {
      // SAFETY: i < r <= capacity.
      struct us_page_region region = vec[i];
      if (region.start < cursor || region.end > end || region.start >= region.end ||
          (region.start | region.end) % US_PAGE_BYTES) {
        err = EIO;
        break;
      }
      // A re-walked region after a full output array may repeat pages; list each once.
      if (region.end <= prev_end) continue;
      if (region.start < prev_end) region.start = prev_end;
      for (uint64_t a = region.start; a < region.end && !err; a += US_PAGE_BYTES)
        err = list_push(out, (uint32_t)((a - start) / US_PAGE_BYTES));
      prev_end = region.end;
    }
    if (err) break;
    // Fewer regions than room: the walk reached `end` (see scan_regions in uffd.c
    // for why walk_end is trusted only when the array filled).
    if ((uint64_t)r < capacity) break;
    if (arg.walk_end <= cursor || arg.walk_end > end) {
      err = EIO;
      break;
    }
    cursor = arg.walk_end;
    if (capacity < regions_limit) {
      uint64_t want = capacity * 2 > regions_limit ? regions_limit : capacity * 2;
      struct us_page_region* grown = (struct us_page_region*)realloc(vec, (size_t)want * sizeof *vec);
      if (!grown) {
        err = ENOMEM;
        break;
      }
      vec = grown;
      capacity = want;
    }
  }
  free(vec);
  return err;
}

// The fallback for kernels without PAGEMAP_SCAN: one 64-bit entry per page.
// Without CAP_SYS_ADMIN the frame number reads as 0, so mappings of the zero
// page cannot be told apart; they count as present and the zero check drops them.
static int read_present(int fd, uint8_t* base, size_t pages, us_page_list* out) {
  const uint64_t first = (uint64_t)(uintptr_t)base / US_PAGE_BYTES;
  uint64_t* entries = (uint64_t*)malloc(US_PAGEMAP_ENTRIES_PER_READ * sizeof *entries);
  if (!entries) return ENOMEM;
  int err = 0;
  for (size_t done = 0; done < pages && !err;) {
    size_t want = pages - done < US_PAGEMAP_ENTRIES_PER_READ ? pages - done : US_PAGEMAP_ENTRIES_PER_READ;
    // SAFETY: entries holds US_PAGEMAP_ENTRIES_PER_READ >= want entries; the
    // file offset is the entry of page first+done.
    ssize_t got = pread(fd, entries, want * sizeof *entries, (off_t)((first + done) * sizeof *entries));
    if (got < 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
    if (got == 0 || got % (ssize_t)sizeof *entries) {
      err = EIO;
      break;
    }
    size_t n = (size_t)got / sizeof *entries;
    for (size_t i = 0; i < n && !err; i++) {
      // SAFETY: i < n <= want.
      if (entries[i] & (US_PM_PRESENT | US_PM_SWAP)) err = list_push(out, (uint32_t)(done + i));
    }
    done += n;
  }
  free(entries);
  return err;
}
#endif

// Lists the present pages of `memory` into `out`; returns 0 or an errno and
// says how it found them.
static int find_present(uint8_t* memory, size_t length, us_page_list* out, us_present_method* method) {
  const size_t pages = length / US_PAGE_BYTES;
  *method = US_PRESENT_ALL;
#ifdef __linux__
  if (pages > 0 && (uintptr_t)memory % US_PAGE_BYTES == 0) {
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      int err = scan_present(fd, memory, pages, out);
      if (err == 0) *method = US_PRESENT_PAGEMAP_SCAN;
      if (err == ENOTTY || err == EINVAL || err == EOPNOTSUPP) {
        out->count = 0;
        err = read_present(fd, memory, pages, out);
        if (err == 0) *method = US_PRESENT_PAGEMAP;
      }
      close(fd);
      if (err == ENOMEM) return err;
      if (err == 0) return 0;
      // Any other failure: count every page (slower, still exact).
      out->count = 0;
    }
  }
#endif
  return list_all(out, pages);
}

static int check_memory(napi_env env, napi_callback_info info, uint8_t** memory, size_t* length) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
    us_throw(env, "ERR_NATIVE_NAPI", "N-API call failed: napi_get_cb_info");
    return 0;
  }
  if (argc < 1) {
    us_throw(env, "ERR_NATIVE_ARG", "expected a memory (Uint8Array)");
    return 0;
  }
  if (!us_get_bytes(env, argv[0], memory, length)) return 0;
  if (*length % US_PAGE_BYTES) {
    us_throw(env, "ERR_NATIVE_RANGE", "length is not a whole number of pages");
    return 0;
  }
  if (*length / US_PAGE_BYTES > (size_t)UINT32_MAX) {
    us_throw(env, "ERR_NATIVE_RANGE", "memory has more pages than a u32 can index");
    return 0;
  }
  return 1;
}

// presentPages(memory) -> Uint32Array, ascending. Reads no byte of memory.
static napi_value js_present_pages(napi_env env, napi_callback_info info) {
  uint8_t* memory;
  size_t length;
  if (!check_memory(env, info, &memory, &length)) return NULL;
  us_page_list list = {0};
  us_present_method method;
  if (find_present(memory, length, &list, &method)) {
    free(list.data);
    return us_throw(env, "ERR_NATIVE_NOMEM", "out of memory for the page list");
  }
  napi_value arr = us_u32_array(env, list.data, list.count);
  free(list.data);
  return arr;
}

// storedPages(memory) -> { pages: Uint32Array, present, zeroPresent, method }
// pages: the present pages holding a non-zero byte, ascending. Only present
// pages are read.
static napi_value js_stored_pages(napi_env env, napi_callback_info info) {
  uint8_t* memory;
  size_t length;
  if (!check_memory(env, info, &memory, &length)) return NULL;
  us_page_list list = {0};
  us_present_method method;
  if (find_present(memory, length, &list, &method)) {
    free(list.data);
    return us_throw(env, "ERR_NATIVE_NOMEM", "out of memory for the page list");
  }
  const size_t present = list.count;
  size_t kept = 0;
  for (size_t i = 0; i < present; i++) {
    // SAFETY: every listed index is < length / 4096 (find_present lists pages
    // of [memory, memory + length)); the store stays attached because no JS
    // runs inside this loop.
    uint32_t page = list.data[i];
    if (!us_page_is_zero(memory + (size_t)page * US_PAGE_BYTES)) list.data[kept++] = page;
  }
  napi_value out, pages, present_v, zero_v, method_v;
  pages = us_u32_array(env, list.data, kept);
  free(list.data);
  if (!pages) return NULL;
  US_NAPI_OK(env, napi_create_object(env, &out));
  US_NAPI_OK(env, napi_create_double(env, (double)present, &present_v));
  US_NAPI_OK(env, napi_create_double(env, (double)(present - kept), &zero_v));
  US_NAPI_OK(env, napi_create_string_utf8(env, US_PRESENT_METHOD_NAMES[method], NAPI_AUTO_LENGTH, &method_v));
  US_NAPI_OK(env, napi_set_named_property(env, out, "pages", pages));
  US_NAPI_OK(env, napi_set_named_property(env, out, "present", present_v));
  US_NAPI_OK(env, napi_set_named_property(env, out, "zeroPresent", zero_v));
  US_NAPI_OK(env, napi_set_named_property(env, out, "method", method_v));
  return out;
}

napi_value us_init_exclude(napi_env env, napi_value exports) {
  if (!us_register(env, exports, "presentPages", js_present_pages)) return NULL;
  if (!us_register(env, exports, "storedPages", js_stored_pages)) return NULL;
  return exports;
}
