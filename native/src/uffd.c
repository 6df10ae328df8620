// userfaultfd write-protect trackers over a WebAssembly.Memory's backing store.
//
//   async ("wp-async"): UFFD_FEATURE_WP_ASYNC. The kernel resolves the first
//     write to a protected page by itself (no thread, no signal) and leaves
//     the page "written"; PAGEMAP_SCAN with PM_SCAN_WP_MATCHING lists the
//     written pages and re-protects them in one atomic walk.
//   sync ("wp-sync"): classic write-protect faults, served by a handler thread
//     per tracker that copies the page's pre-image into a C store, records
//     the page, and un-protects it (which wakes the writer). This is the
//     copy-on-write primitive of in-memory rollback.
//
// Threads: every N-API call runs on the JS thread. The sync handler thread
// never calls N-API or touches JS values; it shares only the C state below,
// under `mu`. The JS thread never writes guest memory while holding `mu`, so
// a writer blocked on a fault cannot be the thread the handler waits for.
//
// Growth: V8 reserves the whole maximum (plus guards) once and makes the
// accessible part read-write; memory.grow mprotects more of the reservation,
// at the same address. A registration covers VMAs, and the grown part is a new
// VMA that the kernel will not merge into ours (it has no uffd context), so
// the grown part is untracked until the next collect registers it. Registering
// the PROT_NONE tail up front is not an option (it would have to be
// write-protected before it is even accessible, and mprotect on grow replaces
// that state). See collect_async for how writes made to the grown part before
// its registration are still reported.
#include "addon.h"

#ifdef __linux__

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "uffd_uapi.h"

// page_region entries PAGEMAP_SCAN output starts with (24 KiB). It doubles
// whenever a scan fills it (the walk then resumes at walk_end), up to one per
// page, so a steady epoch size is answered by one ioctl.
#define US_SCAN_REGIONS_INITIAL 1024u
// Bytes of a grown range promoted to the fast scan per collect (see
// promote_tail): MADV_POPULATE_READ costs ~0.1 us per empty page here, so
// this bounds the extra pause of a collect to ~0.2 ms. A grow of up to this
// size is promoted in the collect that finds it; a larger one over several.
#define US_PROMOTE_BYTES_MAX ((uint64_t)4 << 20)
// A wasm32 memory is at most 4 GiB, so every page index fits a uint32.
#define US_MEMORY_BYTES_MAX ((uint64_t)1 << 32)
// Hard cap of the sync pre-image store, whatever JS asks for: every page of a
// full 4 GiB memory once.
#define US_PREIMAGE_BYTES_LIMIT ((uint64_t)1 << 32)
// UFFDIO_WRITEPROTECT answers EAGAIN while the address space is changing
// (mremap, fork events); it is retried this many times.
#define US_WP_RETRY_MAX 1000
// Fault messages read per read(2) in the handler thread.
#define US_MSG_BATCH 16u

enum us_mode { US_MODE_ASYNC = 1, US_MODE_SYNC = 2 };

typedef struct {
  int mode;
  int uffd;
  int pagemap_fd;  // -1 when PAGEMAP_SCAN is unavailable (sync mode only)
  int stop_fd;     // eventfd that wakes the sync handler for shutdown; -1 otherwise
  int user_mode_only;
  int disposed;
  uint8_t* base;            // start of the backing store, page aligned
  uint64_t registered_bytes; // bytes registered (and protected) from base; under mu in sync mode
  // Async mode: [base, base + fast_bytes) holds no entry that is neither
  // write-protected nor written (no empty entry, no unprotected zero page), so
  // the fast scan reads it exactly. fast_bytes <= registered_bytes.
  uint64_t fast_bytes;
  uint64_t capacity_pages;  // size of the page buffers below
  uint32_t* out;            // sync collect output scratch, capacity_pages entries
  struct us_page_region* vec;  // PAGEMAP_SCAN output, vec_capacity entries
  uint64_t vec_capacity;

  // Stats kept on the JS thread.
  uint64_t collects, scan_calls, scan_ns_total, scan_ns_last, collect_ns_last;
  uint64_t pages_reported_total, grows, grown_pages_reported_total;
  uint64_t promoted_bytes_total;
  int promote_errno;  // last failure of a tail promotion (0: none); the collect itself succeeded

  // Sync mode only: the handler thread and the state it shares, under mu.
  pthread_t thread;
  int thread_started;
  int mu_ready;
  pthread_mutex_t mu;
  uint64_t* seen;          // one bit per page: written (and un-protected) this epoch
  uint32_t* written;       // pages in fault order, each at most once per epoch
  uint64_t written_count;
  int preimages_enabled;
  uint8_t* preimages;      // preimages[i] is the pre-image of written[i], i < preimage_count
  uint64_t preimage_count;
  uint64_t preimage_capacity;  // pages allocated in `preimages`
  uint64_t preimage_bytes_max;
  int preimage_overflow;   // a page was written whose pre-image did not fit
  uint64_t faults, fault_ns_total, fault_ns_max, duplicate_messages, foreign_faults;
  int handler_errno;       // first error the handler hit (0: none)
  const char* handler_step;
  // Prediction (sync mode, under mu). A predicted page was pre-saved and
  // un-protected before any write to it: by uffdPresave (COWP: the pages
  // written last epoch) or by Histase in the fault handler (neighbours of a
  // faulting page). Its seen bit is set like a faulted page's; its predicted
  // bit says that a write is not proven, so collect and takePreimages compare
  // it with its pre-image and drop it when equal.
  uint64_t* predicted;     // one bit per page, capacity_pages bits
  int histase;             // Histase on: faults pre-save neighbours by his_stride
  float histase_alpha;     // his_stride = alpha * his_stride + (1 - alpha) * ave_stride
  float* his_stride;       // per 2 MiB region (US_REGION_PAGES); < 0: no history yet
  uint64_t region_capacity;
  uint64_t presaved_total, histase_total, predicted_written_total, predicted_unwritten_total, dirty_total;

  // Hot regions (async mode; see scan_fast_hot). Per 2 MiB region of the fast
  // range: the epochs left in its lease (0: tracked page by page) and the
  // length of its next lease; the pages counted written by this collect.
  uint32_t hot_written_min;  // 0: hot regions off
  uint8_t* hot_left;
  uint8_t* hot_lease;
  uint32_t* hot_count;
  uint64_t hot_region_capacity;
  uint64_t hot_leases_total, hot_pages_reported_total, hot_regions_now;
  int hot_unprotect_errno;  // last failure to un-protect a region turning hot (0: none); harmless, see scan_fast_hot
} us_uffd_tracker;

// Histase's unit of history: 512 pages (2 MiB), what one L1 page table maps.
#define US_REGION_PAGES 512u
// Hot regions: a region with at least hot_written_min of its 512 pages
// written in an epoch is left unprotected and reported whole for its lease
// (the threshold is set from JS: src/track/uffd.ts explains the default).
// A lease starts at this many epochs and doubles each time the region is
// found hot again when it ends, up to the maximum: a region written every
// epoch pays its faults in one epoch of 33; one that cools is tracked again
// within 2 epochs of its first cool lease. (Leases fit a uint8_t.)
#define US_HOT_LEASE_INITIAL 2u
#define US_HOT_LEASE_MAX 32u
// hot_left while a collect runs: the lease ended in this collect, so the
// region's count this time is a superset (pages unprotected during the lease)
// and gives no verdict.
#define US_HOT_EXPIRED 255u

static uint64_t now_ns(void) {
  struct timespec ts;
  // CLOCK_MONOTONIC cannot fail with a valid clock id and pointer.
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

// Throws an Error carrying the facts of a failed step: code, syscall (the
// step), errno and, when known, the kernel's feature bits. JS explains them.
static napi_value throw_step(napi_env env, const char* code, const char* step, int err, const char* detail,
                             int64_t features) {
  char message[512];
  if (err)
    snprintf(message, sizeof message, "%s failed: %s (errno %d)%s%s", step, strerror(err), err, detail ? "; " : "",
             detail ? detail : "");
  else
    snprintf(message, sizeof message, "%s: %s", step, detail ? detail : "failed");
  napi_value code_v, message_v, error, step_v, errno_v;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_v) != napi_ok) return NULL;
  if (napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &message_v) != napi_ok) return NULL;
  if (napi_create_error(env, code_v, message_v, &error) != napi_ok) return NULL;
  if (napi_create_string_utf8(env, step, NAPI_AUTO_LENGTH, &step_v) != napi_ok) return NULL;
  if (napi_create_int32(env, err, &errno_v) != napi_ok) return NULL;
  if (napi_set_named_property(env, error, "syscall", step_v) != napi_ok) return NULL;
  if (napi_set_named_property(env, error, "errno", errno_v) != napi_ok) return NULL;
  if (features >= 0) {
    napi_value f;
    if (napi_create_double(env, (double)features, &f) != napi_ok) return NULL;
    if (napi_set_named_property(env, error, "features", f) != napi_ok) return NULL;
  }
  napi_throw(env, error);
  return NULL;
}

static int open_uffd_raw(int flags) {
#ifdef SYS_userfaultfd
  // SAFETY: userfaultfd takes one int of flags and returns a new fd or -1.
  return (int)syscall(SYS_userfaultfd, flags);
#else
  (void)flags;
  errno = ENOSYS;
  return -1;
#endif
}

// Opens a userfaultfd. With prefer_user_mode_only, UFFD_USER_MODE_ONLY is
// tried first (needs no privilege; faults raised inside the kernel, e.g. by
// read(2) into guest memory, are then not handled, which only matters for the
// sync mode). Returns the fd, or -1 with errno from the last attempt.
static int open_uffd(int prefer_user_mode_only, int* user_mode_only) {
  const int base_flags = O_CLOEXEC | O_NONBLOCK;
  if (prefer_user_mode_only) {
    int fd = open_uffd_raw(base_flags | US_UFFD_USER_MODE_ONLY);
    if (fd >= 0) {
      *user_mode_only = 1;
      return fd;
    }
    if (errno != EINVAL && errno != EPERM) return -1;  // EINVAL: kernel before 5.11
  }
  int fd = open_uffd_raw(base_flags);
  if (fd >= 0) {
    *user_mode_only = 0;
    return fd;
  }
  if (!prefer_user_mode_only && errno == EPERM) {
    fd = open_uffd_raw(base_flags | US_UFFD_USER_MODE_ONLY);
    if (fd >= 0) {
      *user_mode_only = 1;
      return fd;
    }
  }
  return -1;
}

// The feature bits this kernel offers (UFFDIO_API with none requested), or -1
// with errno. Uses its own fd: UFFDIO_API may be called once per fd.
static int64_t kernel_uffd_features(void) {
  int umo = 0;
  int fd = open_uffd(1, &umo);
  if (fd < 0) return -1;
  struct us_uffdio_api api = {.api = US_UFFD_API, .features = 0, .ioctls = 0};
  // SAFETY: api is a live, correctly sized uffdio_api (asserted in uffd_uapi.h).
  int r = ioctl(fd, US_UFFDIO_API, &api);
  int err = errno;
  close(fd);
  if (r < 0) {
    errno = err;
    return -1;
  }
  return (int64_t)(api.features & 0x7fffffffffffffffull);
}

static int uffd_register_wp(int uffd, uint64_t start, uint64_t len) {
  struct us_uffdio_register reg = {.range = {.start = start, .len = len}, .mode = US_UFFDIO_REGISTER_MODE_WP, .ioctls = 0};
  // SAFETY: reg is a live uffdio_register; the kernel validates the range
  // (it must be mapped, page aligned, and not registered elsewhere).
  if (ioctl(uffd, US_UFFDIO_REGISTER, &reg) < 0) return errno;
  return 0;
}

// Sets (wp=1) or clears (wp=0, which also wakes faulting threads) write
// protection on [start, start+len). Retries the transient EAGAIN.
static int uffd_protect(int uffd, uint64_t start, uint64_t len, int wp) {
  for (int attempt = 0; attempt < US_WP_RETRY_MAX; attempt++) {
    struct us_uffdio_writeprotect arg = {.range = {.start = start, .len = len},
                                         .mode = wp ? US_UFFDIO_WRITEPROTECT_MODE_WP : 0};
    // SAFETY: arg is a live uffdio_writeprotect; the range lies inside a
    // registration of this uffd (callers pass only registered ranges).
    if (ioctl(uffd, US_UFFDIO_WRITEPROTECT, &arg) == 0) return 0;
    if (errno != EAGAIN && errno != EINTR) return errno;
  }
  return EAGAIN;
}

// One PAGEMAP_SCAN question: which entries match, what to do with them.
typedef struct {
  uint64_t flags;
  uint64_t category_mask;
  uint64_t category_inverted;
  uint64_t category_anyof_mask;
  uint64_t return_mask;
} us_scan_query;

// Written pages of a range whose every entry was write-protected when its
// epoch began (t->fast_bytes): "written" is "not write-protected". Exactly
// these masks (and nothing else) select the kernel's fast path in
// pagemap_scan_pmd_entry, which tests one bit per entry; any other mask takes
// the general path, which classifies every entry (zero pfn, file, ...) and
// costs about twice as much. The fast path also counts an empty entry
// (pte_none) as written, which is why it is used only where there is none:
// UFFDIO_WRITEPROTECT with WP_UNPOPULATED leaves a marker in every empty
// entry at attach, and tail promotion (promote_tail) does the same for a
// grown range.
static const us_scan_query US_SCAN_WRITTEN_FAST = {
    .flags = US_PM_SCAN_WP_MATCHING | US_PM_SCAN_CHECK_WPASYNC,
    .category_mask = US_PAGE_IS_WRITTEN,
    .category_inverted = 0,
    .category_anyof_mask = 0,
    .return_mask = US_PAGE_IS_WRITTEN,
};

// Written pages of a range that may hold entries never protected (a grown
// range registered during this epoch, or not yet promoted). "Not
// write-protected" is then also true of empty entries and of the shared zero
// page (a page only read before its registration), so: written, backed by a
// page (present or swapped out), and not the zero page. WP markers are
// swap-type entries but never written, so they do not match.
static const us_scan_query US_SCAN_WRITTEN_FILTERED = {
    .flags = US_PM_SCAN_WP_MATCHING | US_PM_SCAN_CHECK_WPASYNC,
    .category_mask = US_PAGE_IS_WRITTEN | US_PAGE_IS_PFNZERO,
    .category_inverted = US_PAGE_IS_PFNZERO,
    .category_anyof_mask = US_PAGE_IS_PRESENT | US_PAGE_IS_SWAPPED,
    .return_mask = US_PAGE_IS_WRITTEN,
};

// Unprotected mappings of the shared zero page: protects them (tail promotion;
// the output is discarded). A page written since is a private copy, no longer
// the zero pfn, so it does not match and stays "written".
static const us_scan_query US_SCAN_ZERO_UNPROTECTED = {
    .flags = US_PM_SCAN_WP_MATCHING | US_PM_SCAN_CHECK_WPASYNC,
    .category_mask = US_PAGE_IS_WRITTEN | US_PAGE_IS_PFNZERO,
    .category_inverted = 0,
    .category_anyof_mask = 0,
    .return_mask = US_PAGE_IS_PFNZERO,
};

// Without write-protecting: written pages, for the sync tracker's grown tail.
static const us_scan_query US_SCAN_WRITTEN_PEEK = {
    .flags = 0,
    .category_mask = US_PAGE_IS_WRITTEN | US_PAGE_IS_PFNZERO,
    .category_inverted = US_PAGE_IS_PFNZERO,
    .category_anyof_mask = US_PAGE_IS_PRESENT | US_PAGE_IS_SWAPPED,
    .return_mask = US_PAGE_IS_WRITTEN,
};

// Makes t->vec hold at least `regions` entries (doubling; bounded by the
// caller). Returns 0 or ENOMEM.
static int vec_reserve(us_uffd_tracker* t, uint64_t regions) {
  if (regions <= t->vec_capacity) return 0;
  uint64_t want = t->vec_capacity ? t->vec_capacity * 2 : US_SCAN_REGIONS_INITIAL;
  if (want < regions) want = regions;
  struct us_page_region* vec = (struct us_page_region*)realloc(t->vec, (size_t)want * sizeof *vec);
  if (!vec) return ENOMEM;
  t->vec = vec;
  t->vec_capacity = want;
  return 0;
}

// Appends to t->vec[*count..] the regions of [start, end) that match `query`,
// ascending and disjoint, applying its write protection in the same walk
// (atomically per page table entry). t->vec grows so that one ioctl normally
// covers the whole range. Returns 0 or an errno.
//
// How a call ends (do_pagemap_scan, 6.7 to 6.18): the kernel walks to `end`
// unless the output array fills up (or max_pages is reached; it is 0 here,
// meaning no limit). So a call that returns fewer regions than it was given
// room for has walked the whole range. When it did fill up, walk_end says
// where to resume. walk_end is not a reliable "walked to" otherwise: the
// kernel copies out through a 512-entry bounce buffer and leaves walk_end at
// the last point that buffer filled, so trusting it would re-walk the rest.
static int scan_regions(us_uffd_tracker* t, uint64_t start, uint64_t end, const us_scan_query* query, uint64_t* count) {
  const uint64_t pages_max = (end - start) / US_PAGE_BYTES;
  // Distinct regions hold distinct pages, so there are at most as many as
  // there are pages in the memory; the cap only guards against a kernel
  // answer that makes no sense.
  const uint64_t regions_limit = t->registered_bytes / US_PAGE_BYTES + 2;
  uint64_t cursor = start;
  // Every call either finishes or advances the cursor by at least one page.
  for (uint64_t calls = 0;; calls++) {
    if (calls > pages_max + 1) return EIO;
    if (*count >= t->vec_capacity) {
      if (*count >= regions_limit) return EIO;
      int err = vec_reserve(t, *count + 1);
      if (err) return err;
    }
    const uint64_t room = t->vec_capacity - *count;
    struct us_pm_scan_arg arg;
    memset(&arg, 0, sizeof arg);
    arg.size = sizeof arg;
    arg.flags = query->flags;
    arg.start = cursor;
    arg.end = end;
    arg.vec = (uint64_t)(uintptr_t)(t->vec + *count);
    arg.vec_len = room;
    arg.max_pages = 0;
    arg.category_mask = query->category_mask;
    arg.category_inverted = query->category_inverted;
    arg.category_anyof_mask = query->category_anyof_mask;
    arg.return_mask = query->return_mask;
    const uint64_t t0 = now_ns();
    // SAFETY: arg is a live pm_scan_arg of the asserted size; vec points to
    // `room` page_region entries of t->vec past the *count already used
    // (*count < vec_capacity, checked above), owned by the tracker.
    long r = ioctl(t->pagemap_fd, US_PAGEMAP_SCAN, &arg);
    const uint64_t dt = now_ns() - t0;
    t->scan_calls++;
    t->scan_ns_total += dt;
    t->scan_ns_last += dt;
    // Not retried on EINTR: the kernel answers it only to a fatal signal (the
    // process is being killed), possibly after protecting part of the range.
    if (r < 0) return errno;
    if ((uint64_t)r > room) return EIO;
    // Validate the new regions and keep them disjoint from the ones before
    // them: a region re-walked after a full output array can repeat a page
    // only if that page was written again meanwhile; it is listed once.
    uint64_t kept = *count;
    uint64_t prev_end = kept > 0 ? t->vec[kept - 1].end : 0;
    for (long i = 0; i < r; i++) {
      // SAFETY: i < r <= room, so *count + i < vec_capacity.
      struct us_page_region region = t->vec[*count + (uint64_t)i];
      if (region.start < cursor || region.end > end || region.start >= region.end ||
          (region.start | region.end) % US_PAGE_BYTES)
        return EIO;
      if (region.end <= prev_end) continue;
      if (region.start < prev_end) region.start = prev_end;
      // SAFETY: kept <= *count + i, inside t->vec.
      t->vec[kept++] = region;
      prev_end = region.end;
    }
    *count = kept;
    if ((uint64_t)r < room) return 0;  // the walk reached `end` (see above)
    if (arg.walk_end <= cursor || arg.walk_end > end) return EIO;
    cursor = arg.walk_end;
    if (cursor == end) return 0;
    // The array filled up: grow it so the next collect needs one call.
    if (t->vec_capacity < regions_limit) {
      uint64_t want = t->vec_capacity * 2;
      if (want > regions_limit) want = regions_limit;
      int err = vec_reserve(t, want);
      if (err) return err;
    }
  }
}

// Pages in regions t->vec[from..to).
static uint64_t region_pages(const us_uffd_tracker* t, uint64_t from, uint64_t to) {
  uint64_t pages = 0;
  // SAFETY: callers pass to <= the regions scan_regions filled, < vec_capacity.
  for (uint64_t i = from; i < to; i++) pages += (t->vec[i].end - t->vec[i].start) / US_PAGE_BYTES;
  return pages;
}

// Writes the page indices (relative to t->base) of regions t->vec[from..to)
// to out, ascending. out must hold region_pages(t, from, to) entries.
static void regions_to_indices(const us_uffd_tracker* t, uint64_t from, uint64_t to, uint32_t* out) {
  const uint64_t base = (uint64_t)(uintptr_t)t->base;
  uint64_t n = 0;
  for (uint64_t i = from; i < to; i++) {
    // SAFETY: i < to <= the regions scan_regions filled. They were validated
    // there: page aligned, inside the registered range, so every index is
    // below 2^20 (a memory is at most 4 GiB).
    uint32_t first = (uint32_t)((t->vec[i].start - base) / US_PAGE_BYTES);
    const uint32_t last = (uint32_t)((t->vec[i].end - base) / US_PAGE_BYTES);
    // SAFETY: the caller sized out for every page of these regions.
    while (first < last) out[n++] = first++;
  }
}

// Appends to t->out the page indices of the pages in [start, end) written
// (present or swapped out, not write-protected, not the zero page), without
// protecting them (sync mode's grown tail; sync mode protects separately).
// Returns 0 or an errno.
static int scan_written_peek(us_uffd_tracker* t, uint64_t start, uint64_t end, uint64_t* n) {
  uint64_t regions = 0;
  int err = scan_regions(t, start, end, &US_SCAN_WRITTEN_PEEK, &regions);
  if (err) return err;
  const uint64_t pages = region_pages(t, 0, regions);
  if (pages > t->capacity_pages - *n) return EIO;
  regions_to_indices(t, 0, regions, t->out + *n);
  *n += pages;
  return 0;
}

// ---- JS-facing helpers ----

static int get_tracker(napi_env env, napi_value v, us_uffd_tracker** out) {
  void* data = NULL;
  napi_valuetype type;
  if (napi_typeof(env, v, &type) != napi_ok || type != napi_external ||
      napi_get_value_external(env, v, &data) != napi_ok || data == NULL) {
    napi_throw_type_error(env, "ERR_TRACKER", "expected a tracker handle");
    return 0;
  }
  *out = (us_uffd_tracker*)data;
  if ((*out)->disposed) {
    napi_throw_error(env, "ERR_TRACKER_DISPOSED", "the tracker was disposed");
    return 0;
  }
  return 1;
}

// get_tracker, and the tracker keeps pre-images (wp-sync created with them on);
// `what` names the operation for the error.
static int get_preimage_tracker(napi_env env, napi_value v, us_uffd_tracker** out, const char* what) {
  if (!get_tracker(env, v, out)) return 0;
  if ((*out)->mode != US_MODE_SYNC || !(*out)->preimages_enabled) {
    char message[160];
    snprintf(message, sizeof message, "%s needs a wp-sync tracker created with preimages on", what);
    napi_throw_error(env, "ERR_TRACKER", message);
    return 0;
  }
  return 1;
}

// Reads the backing store of an ArrayBuffer (memory.buffer) and validates it
// as trackable: page aligned, whole pages, at most 4 GiB.
static int get_store(napi_env env, napi_value v, uint8_t** base, uint64_t* bytes) {
  bool is_ab = false;
  if (napi_is_arraybuffer(env, v, &is_ab) != napi_ok || !is_ab) {
    napi_throw_type_error(env, "ERR_TRACKER", "expected memory.buffer (an ArrayBuffer)");
    return 0;
  }
  void* data = NULL;
  size_t length = 0;
  if (napi_get_arraybuffer_info(env, v, &data, &length) != napi_ok) {
    napi_throw_error(env, "ERR_NATIVE_NAPI", "napi_get_arraybuffer_info failed");
    return 0;
  }
  if (length == 0) {
    napi_throw_error(env, "ERR_TRACKER_MEMORY", "the memory has no pages; a tracker needs at least one");
    return 0;
  }
  if (((uintptr_t)data % US_PAGE_BYTES) != 0 || (length % US_PAGE_BYTES) != 0 || (uint64_t)length > US_MEMORY_BYTES_MAX) {
    napi_throw_error(env, "ERR_TRACKER_MEMORY", "the memory's backing store is not page aligned or exceeds 4 GiB");
    return 0;
  }
  *base = (uint8_t*)data;
  *bytes = (uint64_t)length;
  return 1;
}

static napi_value make_u32_array(napi_env env, const uint32_t* values, uint64_t count) {
  napi_value ab, arr;
  void* data = NULL;
  US_NAPI_OK(env, napi_create_arraybuffer(env, (size_t)count * 4, &data, &ab));
  // SAFETY: data has count*4 bytes, freshly allocated by napi_create_arraybuffer.
  if (count) memcpy(data, values, (size_t)count * 4);
  US_NAPI_OK(env, napi_create_typedarray(env, napi_uint32_array, (size_t)count, ab, 0, &arr));
  return arr;
}

// Makes the page buffers hold `pages` entries. Sync mode: called with mu held.
static int ensure_capacity(us_uffd_tracker* t, uint64_t pages) {
  if (pages <= t->capacity_pages) return 1;
  uint32_t* out = (uint32_t*)realloc(t->out, (size_t)pages * 4);
  if (!out) return 0;
  t->out = out;
  if (t->mode == US_MODE_SYNC) {
    uint32_t* written = (uint32_t*)realloc(t->written, (size_t)pages * 4);
    if (!written) return 0;
    t->written = written;
    uint64_t old_words = (t->capacity_pages + 63) / 64, words = (pages + 63) / 64;
    uint64_t* seen = (uint64_t*)realloc(t->seen, (size_t)words * 8);
    if (!seen) return 0;
    // SAFETY: seen has `words` words; the new tail [old_words, words) is zeroed.
    memset(seen + old_words, 0, (size_t)(words - old_words) * 8);
    t->seen = seen;
    uint64_t* predicted = (uint64_t*)realloc(t->predicted, (size_t)words * 8);
    if (!predicted) return 0;
    // SAFETY: as for seen.
    memset(predicted + old_words, 0, (size_t)(words - old_words) * 8);
    t->predicted = predicted;
    uint64_t regions = (pages + US_REGION_PAGES - 1) / US_REGION_PAGES;
    float* his = (float*)realloc(t->his_stride, (size_t)regions * sizeof *his);
    if (!his) return 0;
    // SAFETY: his has `regions` entries; the new tail starts without history.
    for (uint64_t r = t->region_capacity; r < regions; r++) his[r] = -1.0f;
    t->his_stride = his;
    t->region_capacity = regions;
  } else {
    uint64_t regions = (pages + US_REGION_PAGES - 1) / US_REGION_PAGES;
    uint8_t* left = (uint8_t*)realloc(t->hot_left, (size_t)regions);
    if (!left) return 0;
    t->hot_left = left;
    uint8_t* lease = (uint8_t*)realloc(t->hot_lease, (size_t)regions);
    if (!lease) return 0;
    t->hot_lease = lease;
    uint32_t* count = (uint32_t*)realloc(t->hot_count, (size_t)regions * sizeof *count);
    if (!count) return 0;
    t->hot_count = count;
    // SAFETY: each array has `regions` entries; the new tail starts tracked.
    for (uint64_t r = t->hot_region_capacity; r < regions; r++) {
      left[r] = 0;
      lease[r] = US_HOT_LEASE_INITIAL;
    }
    t->hot_region_capacity = regions;
  }
  t->capacity_pages = pages;
  return 1;
}

// ---- sync handler thread ----

static int preimage_reserve(us_uffd_tracker* t, uint64_t pages) {
  if (pages <= t->preimage_capacity) return 1;
  if (pages * US_PAGE_BYTES > t->preimage_bytes_max) return 0;
  uint64_t want = t->preimage_capacity ? t->preimage_capacity * 2 : 64;
  if (want < pages) want = pages;
  if (want * US_PAGE_BYTES > t->preimage_bytes_max) want = t->preimage_bytes_max / US_PAGE_BYTES;
  uint8_t* p = (uint8_t*)realloc(t->preimages, (size_t)(want * US_PAGE_BYTES));
  if (!p) return 0;
  t->preimages = p;
  t->preimage_capacity = want;
  return 1;
}

static void handler_fail(us_uffd_tracker* t, const char* step, int err) {
  if (!t->handler_errno) {
    t->handler_errno = err ? err : EIO;
    t->handler_step = step;
  }
}

static int bit_get(const uint64_t* bits, uint64_t idx) {
  return (int)((bits[idx / 64] >> (idx % 64)) & 1u);
}

// Saves the pre-image of page idx and records it as written this epoch.
// With mu held; idx is a registered page whose seen bit is clear, so it is
// still write-protected and holds its contents as of the last arm. The caller
// un-protects it afterwards.
static void save_page(us_uffd_tracker* t, uint64_t idx, int predicted) {
  t->seen[idx / 64] |= (uint64_t)1 << (idx % 64);
  if (predicted) t->predicted[idx / 64] |= (uint64_t)1 << (idx % 64);
  // SAFETY: each page enters `written` once per epoch (seen bit), and
  // `written` holds capacity_pages >= registered pages entries.
  t->written[t->written_count++] = (uint32_t)idx;
  if (t->preimages_enabled && !t->preimage_overflow) {
    if (preimage_reserve(t, t->preimage_count + 1)) {
      // SAFETY: the page is inside the registered, mapped range (callers
      // check); the mapping is alive (V8 never unmaps a live memory's
      // reservation, and the JS thread is either blocked in a write to it or
      // is the caller). The store has room for this page.
      memcpy(t->preimages + t->preimage_count * US_PAGE_BYTES, t->base + idx * US_PAGE_BYTES, US_PAGE_BYTES);
      t->preimage_count++;
    } else {
      t->preimage_overflow = 1;
    }
  }
}

// Histase (seed 002, section 4.1.2): on a fault at idx, pre-save up to
// his_stride - 1 pages forward and his_stride / 3 backward, inside idx's
// region and the registered range. Returns the range [*lo, *hi] to un-protect
// (it covers idx; every page in it is now seen, hence may be un-protected).
static void histase_predict(us_uffd_tracker* t, uint64_t idx, uint64_t* lo, uint64_t* hi) {
  *lo = *hi = idx;
  const float s = t->his_stride[idx / US_REGION_PAGES];
  if (!(s > 1.0f)) return;  // no history, or isolated pages: nothing to predict
  const uint64_t fwd = (uint64_t)(s + 0.5f) - 1, back = (uint64_t)(s / 3.0f + 0.5f);
  const uint64_t region_lo = idx - idx % US_REGION_PAGES;
  uint64_t region_hi = region_lo + US_REGION_PAGES - 1;
  const uint64_t last = t->registered_bytes / US_PAGE_BYTES - 1;
  if (region_hi > last) region_hi = last;
  *lo = idx - region_lo >= back ? idx - back : region_lo;
  *hi = idx + fwd <= region_hi ? idx + fwd : region_hi;
  for (uint64_t p = *lo; p <= *hi; p++) {
    if (p == idx || bit_get(t->seen, p)) continue;
    save_page(t, p, 1);
    t->histase_total++;
  }
}

// One write-protect fault. Runs on the handler thread with mu held.
static void serve_fault(us_uffd_tracker* t, uint64_t address) {
  const uint64_t t0 = now_ns();
  const uint64_t page_addr = address & ~(uint64_t)(US_PAGE_BYTES - 1);
  const uint64_t base = (uint64_t)(uintptr_t)t->base;
  int first = 0;
  uint64_t lo = page_addr, len = US_PAGE_BYTES;
  if (page_addr >= base && page_addr < base + t->registered_bytes) {
    const uint64_t idx = (page_addr - base) / US_PAGE_BYTES;
    // A page is un-protected exactly while its seen bit is set, so an unseen
    // page still holds its contents as of the last arm: that is the pre-image.
    // A second message for a seen page (two writers raced) only needs a wake.
    if (!bit_get(t->seen, idx)) {
      first = 1;
      save_page(t, idx, 0);
      if (t->histase) {
        uint64_t plo, phi;
        histase_predict(t, idx, &plo, &phi);
        lo = base + plo * US_PAGE_BYTES;
        len = (phi - plo + 1) * US_PAGE_BYTES;
      }
    } else {
      t->duplicate_messages++;
    }
  } else {
    t->foreign_faults++;  // not ours (cannot happen: one registration per uffd); still un-protect
  }
  int err = uffd_protect(t->uffd, lo, len, 0);
  if (err) handler_fail(t, "UFFDIO_WRITEPROTECT (un-protect a faulted page)", err);
  if (first) {
    const uint64_t dt = now_ns() - t0;
    t->faults++;
    t->fault_ns_total += dt;
    if (dt > t->fault_ns_max) t->fault_ns_max = dt;
  }
}

// Whether written[i] was predicted and still equals its pre-image (so no
// write to it is proven and it need not be kept). With mu held, guest paused.
static int predicted_unchanged(const us_uffd_tracker* t, uint64_t i) {
  const uint64_t idx = t->written[i];
  if (!bit_get(t->predicted, idx) || i >= t->preimage_count) return 0;
  // SAFETY: idx is registered (it entered `written`); slot i holds its pre-image.
  return memcmp(t->base + idx * US_PAGE_BYTES, t->preimages + i * US_PAGE_BYTES, US_PAGE_BYTES) == 0;
}

// The handler loop. Bounded by the stop eventfd: dispose() signals it and
// joins. Never calls N-API.
static void* sync_handler_main(void* arg) {
  us_uffd_tracker* t = (us_uffd_tracker*)arg;
  struct us_uffd_msg msgs[US_MSG_BATCH];
  for (;;) {
    struct pollfd fds[2] = {{.fd = t->uffd, .events = POLLIN, .revents = 0},
                            {.fd = t->stop_fd, .events = POLLIN, .revents = 0}};
    // SAFETY: fds is a live array of two pollfd.
    int r = poll(fds, 2, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      pthread_mutex_lock(&t->mu);
      handler_fail(t, "poll (fault handler)", errno);
      pthread_mutex_unlock(&t->mu);
      return NULL;
    }
    if (fds[1].revents) return NULL;
    if (fds[0].revents & (POLLERR | POLLNVAL)) {
      pthread_mutex_lock(&t->mu);
      handler_fail(t, "poll (fault handler): userfaultfd error", EIO);
      pthread_mutex_unlock(&t->mu);
      return NULL;
    }
    if (!(fds[0].revents & POLLIN)) continue;
    // SAFETY: msgs has room for US_MSG_BATCH messages of the asserted size.
    ssize_t n = read(t->uffd, msgs, sizeof msgs);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      pthread_mutex_lock(&t->mu);
      handler_fail(t, "read (fault handler)", errno);
      pthread_mutex_unlock(&t->mu);
      return NULL;
    }
    size_t count = (size_t)n / sizeof(struct us_uffd_msg);
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < count; i++) {
      if (msgs[i].event != US_UFFD_EVENT_PAGEFAULT) continue;  // no other events were asked for
      if (!(msgs[i].arg.pagefault.flags & US_UFFD_PAGEFAULT_FLAG_WP)) {
        handler_fail(t, "fault handler: a non-write-protect fault arrived", EPROTO);
        continue;
      }
      serve_fault(t, msgs[i].arg.pagefault.address);
    }
    pthread_mutex_unlock(&t->mu);
  }
}

// ---- lifecycle ----

static void tracker_release(us_uffd_tracker* t) {
  if (t->disposed) return;
  t->disposed = 1;
  if (t->thread_started) {
    uint64_t one = 1;
    // SAFETY: stop_fd is our eventfd; an 8-byte write adds to its counter.
    // It cannot fail short of a bug (the counter cannot overflow at 1).
    ssize_t w = write(t->stop_fd, &one, sizeof one);
    (void)w;
    pthread_join(t->thread, NULL);
    t->thread_started = 0;
  }
  // Closing the userfaultfd unregisters its ranges, clears their write
  // protection and wakes any thread still blocked on a fault.
  if (t->uffd >= 0) close(t->uffd);
  if (t->pagemap_fd >= 0) close(t->pagemap_fd);
  if (t->stop_fd >= 0) close(t->stop_fd);
  t->uffd = t->pagemap_fd = t->stop_fd = -1;
  free(t->out);
  free(t->vec);
  free(t->seen);
  free(t->written);
  free(t->preimages);
  free(t->predicted);
  free(t->his_stride);
  free(t->hot_left);
  free(t->hot_lease);
  free(t->hot_count);
  t->hot_left = t->hot_lease = NULL;
  t->hot_count = NULL;
  t->hot_region_capacity = 0;
  t->predicted = NULL;
  t->his_stride = NULL;
  t->region_capacity = 0;
  t->out = NULL;
  t->vec = NULL;
  t->seen = NULL;
  t->written = NULL;
  t->preimages = NULL;
  t->capacity_pages = t->vec_capacity = t->preimage_capacity = t->preimage_count = t->written_count = 0;
  if (t->mu_ready) {
    pthread_mutex_destroy(&t->mu);
    t->mu_ready = 0;
  }
}

static void tracker_finalize(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  us_uffd_tracker* t = (us_uffd_tracker*)data;
  tracker_release(t);
  free(t);
}

static napi_value create_failed(napi_env env, us_uffd_tracker* t, const char* code, const char* step, int err,
                                const char* detail, int64_t features) {
  tracker_release(t);
  free(t);
  return throw_step(env, code, step, err, detail, features);
}

// uffdCreate(buffer: ArrayBuffer, mode: 'async' | 'sync', preimageBytesMax: number) -> handle
static napi_value js_uffd_create(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return us_throw(env, "ERR_TRACKER", "uffdCreate(buffer, mode, preimageBytesMax?) needs two arguments");
  uint8_t* base;
  uint64_t bytes;
  if (!get_store(env, argv[0], &base, &bytes)) return NULL;
  char mode_s[8] = {0};
  size_t mode_len = 0;
  if (napi_get_value_string_utf8(env, argv[1], mode_s, sizeof mode_s, &mode_len) != napi_ok)
    return us_throw(env, "ERR_TRACKER", "mode must be 'async' or 'sync'");
  int mode = strcmp(mode_s, "async") == 0 ? US_MODE_ASYNC : strcmp(mode_s, "sync") == 0 ? US_MODE_SYNC : 0;
  if (!mode) return us_throw(env, "ERR_TRACKER", "mode must be 'async' or 'sync'");
  double preimage_max = 0;
  if (argc >= 3) {
    napi_valuetype type;
    US_NAPI_OK(env, napi_typeof(env, argv[2], &type));
    if (type == napi_number) US_NAPI_OK(env, napi_get_value_double(env, argv[2], &preimage_max));
  }
  if (!(preimage_max >= 0) || preimage_max > (double)US_PREIMAGE_BYTES_LIMIT)
    return us_throw(env, "ERR_TRACKER", "preimageBytesMax must be between 0 (no pre-images) and 4 GiB");

  us_uffd_tracker* t = (us_uffd_tracker*)calloc(1, sizeof *t);
  if (!t) return us_throw(env, "ERR_NATIVE_NOMEM", "out of memory for a tracker");
  t->mode = mode;
  t->uffd = t->pagemap_fd = t->stop_fd = -1;
  t->base = base;
  t->preimage_bytes_max = (uint64_t)preimage_max;
  t->preimages_enabled = mode == US_MODE_SYNC && t->preimage_bytes_max >= US_PAGE_BYTES;
  t->histase_alpha = 0.7f;

  t->uffd = open_uffd(mode == US_MODE_ASYNC, &t->user_mode_only);
  if (t->uffd < 0) return create_failed(env, t, "ERR_TRACKER_UNSUPPORTED", "userfaultfd", errno, NULL, -1);

  const uint64_t wanted = mode == US_MODE_ASYNC ? (US_UFFD_FEATURE_WP_ASYNC | US_UFFD_FEATURE_WP_UNPOPULATED)
                                                : US_UFFD_FEATURE_WP_UNPOPULATED;
  struct us_uffdio_api api = {.api = US_UFFD_API, .features = wanted, .ioctls = 0};
  // SAFETY: api is a live uffdio_api of the asserted size.
  if (ioctl(t->uffd, US_UFFDIO_API, &api) < 0) {
    int err = errno;
    int64_t have = kernel_uffd_features();
    return create_failed(env, t, "ERR_TRACKER_UNSUPPORTED", "UFFDIO_API", err,
                         "the kernel lacks a requested userfaultfd feature", have);
  }
  if ((api.features & wanted) != wanted)
    return create_failed(env, t, "ERR_TRACKER_UNSUPPORTED", "UFFDIO_API", 0, "the kernel lacks a requested userfaultfd feature",
                         (int64_t)(api.features & 0x7fffffffffffffffull));

  // SAFETY: a constant path; O_CLOEXEC keeps the fd out of child processes.
  t->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (t->pagemap_fd < 0 && mode == US_MODE_ASYNC)
    return create_failed(env, t, "ERR_TRACKER_UNSUPPORTED", "open /proc/self/pagemap", errno, NULL, -1);

  if (vec_reserve(t, US_SCAN_REGIONS_INITIAL)) return create_failed(env, t, "ERR_NATIVE_NOMEM", "malloc", ENOMEM, NULL, -1);
  if (mode == US_MODE_SYNC) {
    if (pthread_mutex_init(&t->mu, NULL) != 0) return create_failed(env, t, "ERR_TRACKER", "pthread_mutex_init", EAGAIN, NULL, -1);
    t->mu_ready = 1;
  }
  if (!ensure_capacity(t, bytes / US_PAGE_BYTES)) return create_failed(env, t, "ERR_NATIVE_NOMEM", "malloc", ENOMEM, NULL, -1);

  if (mode == US_MODE_SYNC && t->pagemap_fd >= 0) {
    // PAGEMAP_SCAN is optional for sync mode (it finds writes made to a grown
    // region before its registration). Without it every grown page is reported.
    uint64_t n = 0;
    int err = scan_written_peek(t, (uint64_t)(uintptr_t)base, (uint64_t)(uintptr_t)base + US_PAGE_BYTES, &n);
    if (err) {
      close(t->pagemap_fd);
      t->pagemap_fd = -1;
    }
    t->scan_calls = t->scan_ns_total = t->scan_ns_last = 0;
  }

  int err = uffd_register_wp(t->uffd, (uint64_t)(uintptr_t)base, bytes);
  if (err)
    return create_failed(env, t, err == EBUSY ? "ERR_TRACKER_BUSY" : "ERR_TRACKER_UNSUPPORTED", "UFFDIO_REGISTER", err,
                         err == EBUSY ? "the memory is already tracked by another tracker" : NULL, -1);
  t->registered_bytes = bytes;
  err = uffd_protect(t->uffd, (uint64_t)(uintptr_t)base, bytes, 1);
  if (err) return create_failed(env, t, "ERR_TRACKER", "UFFDIO_WRITEPROTECT", err, NULL, -1);

  if (mode == US_MODE_ASYNC) {
    // One fast scan proves PAGEMAP_SCAN and async WP work on this range
    // before anyone relies on them. Nothing is written yet, so it must report
    // nothing: every entry now holds a WP bit or a WP marker. If it reports
    // anything (a kernel that left empty entries unmarked), those entries are
    // protected now but the fast scan cannot be trusted on this kernel, so
    // the whole memory takes the filtered scan.
    uint64_t regions = 0;
    err = scan_regions(t, (uint64_t)(uintptr_t)base, (uint64_t)(uintptr_t)base + bytes, &US_SCAN_WRITTEN_FAST, &regions);
    if (err) return create_failed(env, t, "ERR_TRACKER_UNSUPPORTED", "PAGEMAP_SCAN", err, NULL, -1);
    t->fast_bytes = regions == 0 ? bytes : 0;
    t->scan_calls = t->scan_ns_total = t->scan_ns_last = 0;
  } else {
    // SAFETY: eventfd takes (initval, flags) and returns a new fd or -1.
    t->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (t->stop_fd < 0) return create_failed(env, t, "ERR_TRACKER", "eventfd", errno, NULL, -1);
    // SAFETY: t outlives the thread: tracker_release joins it before freeing.
    int perr = pthread_create(&t->thread, NULL, sync_handler_main, t);
    if (perr) return create_failed(env, t, "ERR_TRACKER", "pthread_create", perr, NULL, -1);
    t->thread_started = 1;
  }

  napi_value handle;
  if (napi_create_external(env, t, tracker_finalize, NULL, &handle) != napi_ok) {
    tracker_release(t);
    free(t);
    return us_throw(env, "ERR_NATIVE_NAPI", "napi_create_external failed");
  }
  return handle;
}

// Checks the buffer passed to collect against the registration and registers
// (sync: and protects) a grown tail. Returns the old registered size in
// *old_bytes, or 0 with a pending exception.
static int follow_growth(napi_env env, us_uffd_tracker* t, napi_value buffer, uint64_t* old_bytes) {
  uint8_t* base;
  uint64_t bytes;
  if (!get_store(env, buffer, &base, &bytes)) return 0;
  *old_bytes = t->registered_bytes;
  if (base != t->base) {
    throw_step(env, "ERR_TRACKER_MEMORY", "collect", 0,
               "the memory's backing store moved (this V8 does not reserve the maximum up front); "
               "create a new tracker",
               -1);
    return 0;
  }
  if (bytes < t->registered_bytes) {
    throw_step(env, "ERR_TRACKER_MEMORY", "collect", 0, "the memory shrank, which WebAssembly memories cannot do", -1);
    return 0;
  }
  if (bytes == t->registered_bytes) return 1;
  if (!ensure_capacity(t, bytes / US_PAGE_BYTES)) {
    us_throw(env, "ERR_NATIVE_NOMEM", "out of memory for the page lists");
    return 0;
  }
  const uint64_t start = (uint64_t)(uintptr_t)base + t->registered_bytes;
  int err = uffd_register_wp(t->uffd, start, bytes - t->registered_bytes);
  if (err) {
    throw_step(env, "ERR_TRACKER", "UFFDIO_REGISTER (grown region)", err, NULL, -1);
    return 0;
  }
  t->registered_bytes = bytes;
  t->grows++;
  return 1;
}

static void collect_stats_begin(us_uffd_tracker* t) {
  t->scan_ns_last = 0;
}

static void collect_stats_end(us_uffd_tracker* t, uint64_t t0, uint64_t reported, uint64_t grown_reported) {
  t->collects++;
  t->pages_reported_total += reported;
  t->grown_pages_reported_total += grown_reported;
  t->collect_ns_last = now_ns() - t0;
}

// Moves the start of the grown, not yet promoted range [fast_bytes,
// registered_bytes) into the fast-scan prefix, at most US_PROMOTE_BYTES_MAX
// per call. Runs after this collect's filtered scan has reported and
// protected every page written there. What remains unprotected then is
// entries that were never written: empty ones (pte_none, which the fast scan
// would count as written) and zero-page mappings of reads. Made exact, with no
// window for a racing write to be lost:
//   1. MADV_POPULATE_READ maps the zero page at every empty entry (present
//      pages are left alone);
//   2. a scan protects every unprotected zero-page mapping, atomically per
//      entry. A page written since the filtered scan is a private copy, not
//      the zero page: it stays unprotected and the next (fast) scan reports it.
// (UFFDIO_WRITEPROTECT over the range would be simpler but would also
// protect, unreported, a page written after the filtered scan.)
// A failure leaves the range on the filtered scan, which stays exact; it is
// recorded in the stats and does not fail the collect, whose pages are
// already protected.
static void promote_tail(us_uffd_tracker* t, uint64_t scratch_region) {
  const uint64_t base = (uint64_t)(uintptr_t)t->base;
  uint64_t bytes = t->registered_bytes - t->fast_bytes;
  if (bytes > US_PROMOTE_BYTES_MAX) bytes = US_PROMOTE_BYTES_MAX;
  const uint64_t start = base + t->fast_bytes;
  // SAFETY: [start, start+bytes) is inside the registered range, mapped
  // read-write by V8; populating for reading changes no contents.
  if (madvise((void*)(uintptr_t)start, (size_t)bytes, US_MADV_POPULATE_READ) != 0) {
    t->promote_errno = errno;
    return;
  }
  uint64_t regions = scratch_region;
  int err = scan_regions(t, start, start + bytes, &US_SCAN_ZERO_UNPROTECTED, &regions);
  if (err) {
    t->promote_errno = err;
    return;
  }
  t->fast_bytes += bytes;
  t->promoted_bytes_total += bytes;
}

// The fast range with hot regions (seed 002's observation, applied to the
// log-dirty mode: the pages an epoch writes predict the next epoch's). A
// region of 512 pages of which at least half were written in an epoch is
// "hot": it is left unprotected for a lease of epochs and every page of it is
// reported by every collect of the lease, so writes to it take no fault. A
// page reported but not written costs a copy; the delta encoder drops it (its
// content equals the previous version), so checkpoints are unchanged. When
// the lease ends the region is scanned with the rest, which re-protects it
// (the scan reports every page unprotected during the lease: a superset, no
// verdict); the epoch after that is tracked page by page again and decides
// whether the region is hot once more (the lease doubles) or not (it resets).
// Invariant kept: every page of [0, fast_bytes) is either scanned (and
// re-protected) or reported, in every collect, so no write is ever lost; the
// fast scan's precondition holds because an unprotected entry of a hot
// region is exactly what the fast scan counts as written.
// Appends to t->vec like scan_regions (ascending, disjoint). Only regions
// wholly inside the fast range can turn hot. Returns 0 or an errno.
static int scan_fast_hot(us_uffd_tracker* t, uint64_t* regions) {
  const uint64_t base = (uint64_t)(uintptr_t)t->base;
  const uint64_t region_bytes = (uint64_t)US_REGION_PAGES * US_PAGE_BYTES;
  const uint64_t full_regions = t->fast_bytes / region_bytes;
  const uint64_t all_regions = (t->fast_bytes + region_bytes - 1) / region_bytes;
  if (all_regions > t->hot_region_capacity) return EIO;
  const uint64_t first_entry = *regions;
  uint64_t hot_pages = 0;
  for (uint64_t r = 0; r < all_regions;) {
    // SAFETY: r < all_regions <= hot_region_capacity (checked above).
    if (t->hot_left[r] > 1) {
      // Mid-lease: every page is reported, nothing is scanned.
      int err = vec_reserve(t, *regions + 1);
      if (err) return err;
      // SAFETY: vec has room for *regions + 1 entries (reserved above).
      t->vec[*regions].start = base + r * region_bytes;
      t->vec[*regions].end = base + r * region_bytes + region_bytes;
      t->vec[*regions].categories = US_PAGE_IS_WRITTEN;
      (*regions)++;
      t->hot_left[r]--;
      hot_pages += US_REGION_PAGES;
      r++;
      continue;
    }
    // A run of tracked regions (and ones whose lease ends now): one scan.
    const uint64_t from = r;
    while (r < all_regions && t->hot_left[r] <= 1) {
      if (t->hot_left[r] == 1) t->hot_left[r] = US_HOT_EXPIRED;
      r++;
    }
    const uint64_t end = r * region_bytes < t->fast_bytes ? r * region_bytes : t->fast_bytes;
    int err = scan_regions(t, base + from * region_bytes, base + end, &US_SCAN_WRITTEN_FAST, regions);
    if (err) return err;
  }
  t->hot_pages_reported_total += hot_pages;

  // Verdicts: count each tracked region's written pages ...
  // SAFETY: full_regions <= all_regions <= hot_region_capacity.
  memset(t->hot_count, 0, (size_t)full_regions * sizeof *t->hot_count);
  for (uint64_t i = first_entry; i < *regions; i++) {
    // SAFETY: i < *regions, entries this call filled and validated (inside
    // the fast range, page aligned).
    uint64_t a = (t->vec[i].start - base) / US_PAGE_BYTES, b = (t->vec[i].end - base) / US_PAGE_BYTES;
    while (a < b) {
      const uint64_t reg = a / US_REGION_PAGES;
      const uint64_t stop = (reg + 1) * US_REGION_PAGES < b ? (reg + 1) * US_REGION_PAGES : b;
      if (reg < full_regions) t->hot_count[reg] += (uint32_t)(stop - a);
      a = stop;
    }
  }
  // ... then start leases, un-protecting each run of regions turning hot with one ioctl.
  uint64_t run_from = 0, run_len = 0, hot_now = 0;
  for (uint64_t r = 0; r <= full_regions; r++) {
    int turns_hot = 0;
    if (r < full_regions) {
      if (t->hot_left[r] == US_HOT_EXPIRED) {
        t->hot_left[r] = 0;
      } else if (t->hot_left[r] == 0) {
        if (t->hot_count[r] >= t->hot_written_min) {
          const unsigned lease = t->hot_lease[r];
          t->hot_left[r] = (uint8_t)lease;
          t->hot_lease[r] = (uint8_t)(lease * 2 > US_HOT_LEASE_MAX ? US_HOT_LEASE_MAX : lease * 2);
          t->hot_leases_total++;
          turns_hot = 1;
        } else {
          t->hot_lease[r] = US_HOT_LEASE_INITIAL;
        }
      }
      if (t->hot_left[r] > 0) hot_now++;
    }
    if (turns_hot) {
      if (run_len == 0) run_from = r;
      run_len++;
      continue;
    }
    if (run_len) {
      // A failure leaves the pages protected: they fault on their first
      // write (as if the region were not hot) and are reported anyway.
      int err = uffd_protect(t->uffd, base + run_from * region_bytes, run_len * region_bytes, 0);
      if (err) t->hot_unprotect_errno = err;
      run_len = 0;
    }
  }
  // Regions past the whole ones (the partial last) are never hot.
  t->hot_regions_now = hot_now;
  return 0;
}

// Async collect. PAGEMAP_SCAN lists the written pages and re-protects them in
// the same walk, atomically per entry, so no write can fall between
// "reported" and "protected":
//   * [0, fast_bytes), every entry protected when the epoch began: the
//     kernel's fast scan (US_SCAN_WRITTEN_FAST), one ioctl for the epoch.
//   * the rest, a tail grown by memory.grow (registered by follow_growth just
//     now or in an earlier collect, and not yet promoted): the filtered scan
//     (US_SCAN_WRITTEN_FILTERED). A page written before the registration is
//     present without a WP bit, so it is reported and protected like any
//     other; a page only read maps the zero page and is excluded; an empty
//     entry is excluded and reported once it is written. Then promote_tail
//     moves (part of) the tail to the fast scan for the next collects.
// The page indices are written straight into the returned array.
static napi_value collect_async(napi_env env, us_uffd_tracker* t, napi_value buffer) {
  const uint64_t t0 = now_ns();
  collect_stats_begin(t);
  uint64_t old_bytes;
  if (!follow_growth(env, t, buffer, &old_bytes)) return NULL;
  const uint64_t base = (uint64_t)(uintptr_t)t->base;
  uint64_t regions = 0;
  int err = 0;
  if (t->fast_bytes > 0)
    err = t->hot_written_min ? scan_fast_hot(t, &regions) : scan_regions(t, base, base + t->fast_bytes, &US_SCAN_WRITTEN_FAST, &regions);
  if (!err && t->registered_bytes > t->fast_bytes)
    err = scan_regions(t, base + t->fast_bytes, base + t->registered_bytes, &US_SCAN_WRITTEN_FILTERED, &regions);
  if (err) return throw_step(env, "ERR_TRACKER", "PAGEMAP_SCAN", err, NULL, -1);
  if (t->registered_bytes > t->fast_bytes) promote_tail(t, regions);

  const uint64_t n = region_pages(t, 0, regions);
  if (n > t->registered_bytes / US_PAGE_BYTES) return throw_step(env, "ERR_TRACKER", "PAGEMAP_SCAN", EIO, NULL, -1);
  napi_value ab, arr;
  void* data = NULL;
  US_NAPI_OK(env, napi_create_arraybuffer(env, (size_t)n * 4, &data, &ab));
  // SAFETY: data holds n uint32 entries, freshly allocated above; no JS runs
  // between the scan and this fill, so t->vec is unchanged.
  if (n) regions_to_indices(t, 0, regions, (uint32_t*)data);
  US_NAPI_OK(env, napi_create_typedarray(env, napi_uint32_array, (size_t)n, ab, 0, &arr));

  uint64_t grown = 0;
  const uint64_t old_end = base + old_bytes;
  // SAFETY: i - 1 < regions, the entries filled by this collect's scans.
  for (uint64_t i = regions; i > 0 && t->vec[i - 1].end > old_end; i--) {
    const uint64_t from = t->vec[i - 1].start > old_end ? t->vec[i - 1].start : old_end;
    grown += (t->vec[i - 1].end - from) / US_PAGE_BYTES;
  }
  collect_stats_end(t, t0, n, grown);
  return arr;
}

static int cmp_u32(const void* a, const void* b) {
  uint32_t x = *(const uint32_t*)a, y = *(const uint32_t*)b;
  return x < y ? -1 : x > y;
}

// Sync collect: under mu, register a grown tail, find the pages written there
// before registration, re-protect this epoch's written pages, and reset the
// epoch (seen bits, page list, pre-images).
static napi_value collect_sync(napi_env env, us_uffd_tracker* t, napi_value buffer) {
  const uint64_t t0 = now_ns();
  collect_stats_begin(t);
  pthread_mutex_lock(&t->mu);
  if (t->handler_errno) {
    int err = t->handler_errno;
    const char* step = t->handler_step;
    pthread_mutex_unlock(&t->mu);
    return throw_step(env, "ERR_TRACKER", step, err, "the fault handler thread failed", -1);
  }
  uint64_t old_bytes;
  if (!follow_growth(env, t, buffer, &old_bytes)) {
    pthread_mutex_unlock(&t->mu);
    return NULL;
  }
  const uint64_t base = (uint64_t)(uintptr_t)t->base;
  const uint64_t count = t->written_count;
  // Predicted pages still equal to their pre-images were not written: clear
  // their seen bit now so the compaction below leaves them out (they are
  // re-protected all the same).
  for (uint64_t i = 0; i < count; i++) {
    const uint64_t idx = t->written[i];
    if (!bit_get(t->predicted, idx)) continue;
    if (predicted_unchanged(t, i)) {
      t->seen[idx / 64] &= ~((uint64_t)1 << (idx % 64));
      t->predicted_unwritten_total++;
    } else {
      t->predicted_written_total++;
    }
  }
  // This epoch's pages, sorted, into out[0..count).
  // SAFETY: written and out both hold capacity_pages >= count entries.
  memcpy(t->out, t->written, (size_t)count * 4);
  qsort(t->out, (size_t)count, 4, cmp_u32);
  // Re-protect them in runs of consecutive pages.
  int err = 0;
  for (uint64_t i = 0; i < count && !err;) {
    uint64_t j = i + 1;
    while (j < count && t->out[j] == t->out[j - 1] + 1) j++;
    err = uffd_protect(t->uffd, base + (uint64_t)t->out[i] * US_PAGE_BYTES, (j - i) * US_PAGE_BYTES, 1);
    i = j;
  }
  // Keep the pages proven written, clearing seen and predicted bits.
  uint64_t kept = 0;
  for (uint64_t i = 0; i < count; i++) {
    const uint32_t idx = t->out[i];
    const uint64_t bit = (uint64_t)1 << (idx % 64);
    if (t->seen[idx / 64] & bit) t->out[kept++] = idx;
    t->seen[idx / 64] &= ~bit;
    t->predicted[idx / 64] &= ~bit;
  }
  t->dirty_total += kept;
  // Histase: ave_stride per region = mean length of the runs of consecutive
  // written pages in it; his_stride follows it with weight 1 - alpha.
  for (uint64_t i = 0; i < kept;) {
    const uint64_t region = t->out[i] / US_REGION_PAGES;
    uint64_t runs = 0, pages = 0;
    while (i < kept && t->out[i] / US_REGION_PAGES == region) {
      uint64_t j = i + 1;
      while (j < kept && t->out[j] == t->out[j - 1] + 1 && t->out[j] / US_REGION_PAGES == region) j++;
      runs++;
      pages += j - i;
      i = j;
    }
    const float ave = (float)pages / (float)runs;
    float* his = &t->his_stride[region];
    *his = *his < 0 ? ave : t->histase_alpha * *his + (1.0f - t->histase_alpha) * ave;
  }
  t->written_count = 0;
  t->preimage_count = 0;
  t->preimage_overflow = 0;
  uint64_t n = kept;
  uint64_t grown = 0;
  if (!err && t->registered_bytes > old_bytes) {
    // The grown tail: pages written before registration, then protect it all.
    // (A write racing between the scan and the protection, from another
    // thread, would be missed; guests are paused at a safe point here.)
    const uint64_t start = base + old_bytes, end = base + t->registered_bytes;
    if (t->pagemap_fd >= 0) {
      err = scan_written_peek(t, start, end, &n);
    } else {
      for (uint64_t p = old_bytes / US_PAGE_BYTES; p < t->registered_bytes / US_PAGE_BYTES; p++) t->out[n++] = (uint32_t)p;
    }
    grown = n - kept;
    if (!err) err = uffd_protect(t->uffd, start, end - start, 1);
  }
  pthread_mutex_unlock(&t->mu);
  if (err) return throw_step(env, "ERR_TRACKER", "collect (re-protect)", err, NULL, -1);
  collect_stats_end(t, t0, n, grown);
  return make_u32_array(env, t->out, n);
}

// uffdCollect(handle, buffer) -> Uint32Array of written page indices, ascending.
static napi_value js_uffd_collect(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return us_throw(env, "ERR_TRACKER", "uffdCollect(handle, buffer) needs two arguments");
  us_uffd_tracker* t;
  if (!get_tracker(env, argv[0], &t)) return NULL;
  return t->mode == US_MODE_ASYNC ? collect_async(env, t, argv[1]) : collect_sync(env, t, argv[1]);
}

typedef struct {
  uint32_t page;
  uint32_t slot;
} us_page_slot;

static int cmp_page_slot(const void* a, const void* b) {
  uint32_t x = ((const us_page_slot*)a)->page, y = ((const us_page_slot*)b)->page;
  return x < y ? -1 : x > y;
}

// uffdTakePreimages(handle) -> { pages: Uint32Array, data: Uint8Array, byteLength, complete }
// The pages written since the last arm (creation or collect), ascending, with
// their contents as of the arm. Does not re-arm. `complete` is false when the
// store hit preimageBytesMax and some pre-images are missing (pages lists all
// written pages that have one).
static napi_value js_uffd_take_preimages(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return us_throw(env, "ERR_TRACKER", "uffdTakePreimages(handle, into?) needs a handle");
  us_uffd_tracker* t;
  if (!get_preimage_tracker(env, argv[0], &t, "keeping pre-images")) return NULL;

  // Which slots, in page order, under the lock. The store cannot change
  // between the two locked sections: the guest is paused (this thread is the
  // one that runs it), and the handler acts only on faults. JS values are
  // created with the lock released (allocation may run GC and finalizers).
  pthread_mutex_lock(&t->mu);
  const uint64_t stored = t->preimage_count;
  const int complete = !t->preimage_overflow;
  const uint64_t armed_bytes = t->registered_bytes;
  us_page_slot* order = (us_page_slot*)malloc((size_t)(stored ? stored : 1) * sizeof *order);
  if (!order) {
    pthread_mutex_unlock(&t->mu);
    return us_throw(env, "ERR_NATIVE_NOMEM", "out of memory for the pre-images");
  }
  // Predicted pages still equal to their pre-images were not written: left out.
  uint64_t count = 0;
  for (uint64_t i = 0; i < stored; i++)
    if (!predicted_unchanged(t, i)) order[count++] = (us_page_slot){.page = t->written[i], .slot = (uint32_t)i};
  pthread_mutex_unlock(&t->mu);
  qsort(order, (size_t)count, sizeof *order, cmp_page_slot);

  // The destination: `into` (a reused buffer, so no fresh pages are touched)
  // when given and large enough, else a new ArrayBuffer.
  const size_t data_bytes = (size_t)(count * US_PAGE_BYTES);
  napi_value data_ab = NULL;
  size_t data_offset = 0;
  uint8_t* dst = NULL;
  if (argc >= 2) {
    napi_valuetype type;
    US_NAPI_OK(env, napi_typeof(env, argv[1], &type));
    bool is_ta = false;
    if (type == napi_object) US_NAPI_OK(env, napi_is_typedarray(env, argv[1], &is_ta));
    if (is_ta) {
      napi_typedarray_type ta_type;
      size_t length = 0;
      void* p = NULL;
      US_NAPI_OK(env, napi_get_typedarray_info(env, argv[1], &ta_type, &length, &p, &data_ab, &data_offset));
      if (ta_type != napi_uint8_array) {
        free(order);
        return us_throw(env, "ERR_TRACKER", "into must be a Uint8Array");
      }
      if (length >= data_bytes) dst = (uint8_t*)p;
    }
  }
  if (!dst) {
    void* fresh = NULL;
    if (napi_create_arraybuffer(env, data_bytes, &fresh, &data_ab) != napi_ok) {
      free(order);
      return us_throw(env, "ERR_NATIVE_NOMEM", "out of memory for the pre-images");
    }
    dst = (uint8_t*)fresh;
    data_offset = 0;
  }
  uint32_t* pages = (uint32_t*)malloc((size_t)(count ? count : 1) * 4);
  if (!pages) {
    free(order);
    return us_throw(env, "ERR_NATIVE_NOMEM", "out of memory for the pre-images");
  }
  pthread_mutex_lock(&t->mu);
  for (uint64_t i = 0; i < count; i++) {
    // SAFETY: slot < preimage_count <= preimage_capacity pages in the store
    // (unchanged since the first section); dst has at least count pages.
    memcpy(dst + i * US_PAGE_BYTES, t->preimages + (uint64_t)order[i].slot * US_PAGE_BYTES, US_PAGE_BYTES);
    pages[i] = order[i].page;
  }
  pthread_mutex_unlock(&t->mu);
  free(order);
  napi_value out = NULL, pages_v, data_v, bytes_v, complete_v;
  pages_v = make_u32_array(env, pages, count);
  free(pages);
  if (!pages_v) return NULL;
  US_NAPI_OK(env, napi_create_typedarray(env, napi_uint8_array, data_bytes, data_ab, data_offset, &data_v));
  US_NAPI_OK(env, napi_create_double(env, (double)armed_bytes, &bytes_v));
  US_NAPI_OK(env, napi_get_boolean(env, complete, &complete_v));
  US_NAPI_OK(env, napi_create_object(env, &out));
  US_NAPI_OK(env, napi_set_named_property(env, out, "pages", pages_v));
  US_NAPI_OK(env, napi_set_named_property(env, out, "data", data_v));
  US_NAPI_OK(env, napi_set_named_property(env, out, "byteLength", bytes_v));
  US_NAPI_OK(env, napi_set_named_property(env, out, "complete", complete_v));
  return out;
}

// uffdPresave(handle, pages: Uint32Array) -> pages pre-saved now
// COWP's pre-saving: the listed pages (those predicted to be written this
// epoch) have their pre-images saved and are un-protected at once, so writes
// to them do not fault. Pages already seen, or outside the registered range,
// are skipped. Call right after collect (the arm), with the guest paused.
static napi_value js_uffd_presave(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return us_throw(env, "ERR_TRACKER", "uffdPresave(handle, pages) needs two arguments");
  us_uffd_tracker* t;
  if (!get_preimage_tracker(env, argv[0], &t, "pre-saving")) return NULL;
  uint32_t* pages;
  size_t length = 0;
  if (!us_get_u32_array(env, argv[1], &pages, &length, "ERR_TRACKER", "pages must be a Uint32Array")) return NULL;
  uint64_t saved = 0;
  int err = 0;
  pthread_mutex_lock(&t->mu);
  const uint64_t registered_pages = t->registered_bytes / US_PAGE_BYTES;
  for (size_t i = 0; i < length && !err;) {
    // A run of consecutive listed pages is un-protected with one ioctl.
    size_t j = i;
    uint64_t run_lo = 0, run_hi = 0;
    int in_run = 0;
    for (; j < length; j++) {
      // SAFETY: j < length, the typed array's element count.
      const uint64_t idx = pages[j];
      if (idx >= registered_pages) continue;
      if (in_run && idx != run_hi + 1) break;
      if (!bit_get(t->seen, idx)) {
        save_page(t, idx, 1);
        saved++;
      }
      if (!in_run) run_lo = idx;
      run_hi = idx;
      in_run = 1;
    }
    if (in_run) err = uffd_protect(t->uffd, (uint64_t)(uintptr_t)t->base + run_lo * US_PAGE_BYTES, (run_hi - run_lo + 1) * US_PAGE_BYTES, 0);
    i = j;
  }
  t->presaved_total += saved;
  pthread_mutex_unlock(&t->mu);
  if (err) return throw_step(env, "ERR_TRACKER", "UFFDIO_WRITEPROTECT (un-protect pre-saved pages)", err, NULL, -1);
  napi_value out;
  US_NAPI_OK(env, napi_create_double(env, (double)saved, &out));
  return out;
}

static int mark_page(us_uffd_tracker* t, uint64_t idx, uint64_t* n) {
  const uint64_t bit = (uint64_t)1 << (idx % 64);
  if (t->predicted[idx / 64] & bit) return 0;
  t->predicted[idx / 64] |= bit;
  // SAFETY: each page is marked once, so n < registered pages <= capacity_pages.
  t->out[(*n)++] = (uint32_t)idx;
  return 1;
}

// Un-protects (wp=0) or protects (wp=1) the runs of the sorted list out[0..n).
static int protect_runs(us_uffd_tracker* t, uint64_t n, int wp) {
  const uint64_t base = (uint64_t)(uintptr_t)t->base;
  for (uint64_t i = 0; i < n;) {
    uint64_t j = i + 1;
    while (j < n && t->out[j] == t->out[j - 1] + 1) j++;
    int err = uffd_protect(t->uffd, base + (uint64_t)t->out[i] * US_PAGE_BYTES, (j - i) * US_PAGE_BYTES, wp);
    if (err) return err;
    i = j;
  }
  return 0;
}

// uffdRollback(handle, buffer, logs: {pages: Uint32Array, data: Uint8Array}[], zeroFromBytes) -> pages restored
// In-place rollback. The live epoch's pre-images (still in the store) are
// written back first, then each log in the order given (newest epoch first),
// so for a page in several the oldest pre-image is what remains; pages at or
// past zeroFromBytes are skipped and that tail is zeroed (it was grown since
// the checkpoint). Only the pages written are un-protected for the copy (runs,
// one ioctl each) and protected again after it, so the copy takes no fault;
// then the epoch starts afresh (as after collect). Cost follows the pages
// restored, not the memory size. The guest is paused; mu is held, which is
// safe because no page written here is protected while we write it.
static napi_value js_uffd_rollback(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) return us_throw(env, "ERR_TRACKER", "uffdRollback(handle, buffer, logs, zeroFromBytes) needs four arguments");
  us_uffd_tracker* t;
  if (!get_preimage_tracker(env, argv[0], &t, "rollback")) return NULL;
  uint8_t* store;
  uint64_t store_bytes;
  if (!get_store(env, argv[1], &store, &store_bytes)) return NULL;
  if (store != t->base) return us_throw(env, "ERR_TRACKER_MEMORY", "the memory's backing store moved; create a new tracker");
  double zero_from_d = 0;
  if (napi_get_value_double(env, argv[3], &zero_from_d) != napi_ok || !(zero_from_d >= 0) || zero_from_d > (double)store_bytes ||
      (uint64_t)zero_from_d % US_PAGE_BYTES != 0)
    return us_throw(env, "ERR_TRACKER", "zeroFromBytes must be a page multiple inside the memory");
  const uint64_t zero_from = (uint64_t)zero_from_d;
  const uint64_t zero_page = zero_from / US_PAGE_BYTES;
  bool is_array = false;
  US_NAPI_OK(env, napi_is_array(env, argv[2], &is_array));
  if (!is_array) return us_throw(env, "ERR_TRACKER", "logs must be an array");
  uint32_t log_count = 0;
  US_NAPI_OK(env, napi_get_array_length(env, argv[2], &log_count));
  // Bound: one log per kept checkpoint; a handful, far below this.
  if (log_count > 64) return us_throw(env, "ERR_TRACKER", "more than 64 undo logs");
  const uint32_t* log_pages[64];
  const uint8_t* log_data[64];
  size_t log_len[64];
  for (uint32_t k = 0; k < log_count; k++) {
    napi_value log, pv, dv;
    US_NAPI_OK(env, napi_get_element(env, argv[2], k, &log));
    US_NAPI_OK(env, napi_get_named_property(env, log, "pages", &pv));
    US_NAPI_OK(env, napi_get_named_property(env, log, "data", &dv));
    uint32_t* p;
    if (!us_get_u32_array(env, pv, &p, &log_len[k], "ERR_TRACKER", "a log's pages must be a Uint32Array")) return NULL;
    uint8_t* d;
    size_t d_bytes;
    if (!us_get_bytes(env, dv, &d, &d_bytes)) return NULL;
    if ((uint64_t)d_bytes != (uint64_t)log_len[k] * US_PAGE_BYTES) return us_throw(env, "ERR_TRACKER", "a log's data must hold 4096 bytes per page");
    log_pages[k] = p;
    log_data[k] = d;
  }
  pthread_mutex_lock(&t->mu);
  if (t->preimage_overflow) {
    pthread_mutex_unlock(&t->mu);
    return us_throw(env, "ERR_TRACKER_PREIMAGES_INCOMPLETE", "the live epoch's pre-images are incomplete (the store overflowed); it cannot be rolled back");
  }
  uint64_t old_bytes;
  if (!follow_growth(env, t, argv[1], &old_bytes)) {
    pthread_mutex_unlock(&t->mu);
    return NULL;
  }
  const uint64_t registered_pages = t->registered_bytes / US_PAGE_BYTES;
  for (uint32_t k = 0; k < log_count; k++)
    for (size_t i = 0; i < log_len[k]; i++)
      if (log_pages[k][i] >= registered_pages) {
        pthread_mutex_unlock(&t->mu);
        return us_throw(env, "ERR_TRACKER", "a log names a page outside the memory");
      }
  // The pages to touch, each once (the predicted bitmap is scratch now: the
  // epoch ends here): the live epoch's (un-protected now) and the logs'.
  for (uint64_t i = 0; i < t->written_count; i++) {
    const uint32_t idx = t->written[i];
    t->predicted[idx / 64] &= ~((uint64_t)1 << (idx % 64));
  }
  uint64_t n = 0, restored = 0;
  for (uint64_t i = 0; i < t->written_count; i++) restored += mark_page(t, t->written[i], &n) && t->written[i] < zero_page;
  for (uint32_t k = 0; k < log_count; k++)
    for (size_t i = 0; i < log_len[k]; i++)
      if (log_pages[k][i] < zero_page) restored += mark_page(t, log_pages[k][i], &n);
  qsort(t->out, (size_t)n, 4, cmp_u32);
  int err = protect_runs(t, n, 0);
  if (!err) {
    for (uint64_t i = 0; i < t->preimage_count; i++) {
      const uint64_t idx = t->written[i];
      // SAFETY: idx < zero_page <= registered pages; slot i holds its pre-image.
      if (idx < zero_page) memcpy(t->base + idx * US_PAGE_BYTES, t->preimages + i * US_PAGE_BYTES, US_PAGE_BYTES);
    }
    for (uint32_t k = 0; k < log_count; k++)
      for (size_t i = 0; i < log_len[k]; i++) {
        const uint64_t idx = log_pages[k][i];
        // SAFETY: idx < registered pages (checked); data holds log_len pages.
        if (idx < zero_page) memcpy(t->base + idx * US_PAGE_BYTES, log_data[k] + i * US_PAGE_BYTES, US_PAGE_BYTES);
      }
    if (zero_from < t->registered_bytes) {
      const uint64_t base = (uint64_t)(uintptr_t)t->base;
      err = uffd_protect(t->uffd, base + zero_from, t->registered_bytes - zero_from, 0);
      // SAFETY: [zero_from, registered_bytes) lies inside the store, un-protected just now.
      if (!err) memset(t->base + zero_from, 0, (size_t)(t->registered_bytes - zero_from));
      if (!err) err = uffd_protect(t->uffd, base + zero_from, t->registered_bytes - zero_from, 1);
    }
    if (!err) err = protect_runs(t, n, 1);
  }
  for (uint64_t i = 0; i < n; i++) {
    const uint32_t idx = t->out[i];
    t->seen[idx / 64] &= ~((uint64_t)1 << (idx % 64));
    t->predicted[idx / 64] &= ~((uint64_t)1 << (idx % 64));
  }
  t->written_count = 0;
  t->preimage_count = 0;
  t->preimage_overflow = 0;
  pthread_mutex_unlock(&t->mu);
  if (err) return throw_step(env, "ERR_TRACKER", "UFFDIO_WRITEPROTECT (in-place rollback)", err, NULL, -1);
  napi_value out;
  US_NAPI_OK(env, napi_create_double(env, (double)restored, &out));
  return out;
}

// uffdSetHistase(handle, enabled: boolean, alpha: number): turns Histase's
// neighbour prediction in the fault handler on or off (history is kept).
static napi_value js_uffd_set_histase(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) return us_throw(env, "ERR_TRACKER", "uffdSetHistase(handle, enabled, alpha) needs three arguments");
  us_uffd_tracker* t;
  if (!get_preimage_tracker(env, argv[0], &t, "Histase")) return NULL;
  bool enabled = false;
  double alpha = 0;
  if (napi_get_value_bool(env, argv[1], &enabled) != napi_ok) return us_throw(env, "ERR_TRACKER", "enabled must be a boolean");
  if (napi_get_value_double(env, argv[2], &alpha) != napi_ok || !(alpha >= 0 && alpha < 1))
    return us_throw(env, "ERR_TRACKER", "alpha must be a number in [0, 1)");
  pthread_mutex_lock(&t->mu);
  t->histase = enabled;
  t->histase_alpha = (float)alpha;
  pthread_mutex_unlock(&t->mu);
  return NULL;
}

// uffdSetHot(handle, writtenMinPages): hot regions of an async tracker
// (scan_fast_hot): a region with at least this many of its 512 pages written
// in an epoch turns hot; 0 turns them off, which ends every lease at the next
// collect (its regions are scanned and re-protected there, reporting a
// superset once).
static napi_value js_uffd_set_hot(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return us_throw(env, "ERR_TRACKER", "uffdSetHot(handle, writtenMinPages) needs two arguments");
  us_uffd_tracker* t;
  if (!get_tracker(env, argv[0], &t)) return NULL;
  if (t->mode != US_MODE_ASYNC) return us_throw(env, "ERR_TRACKER", "hot regions are a wp-async feature");
  uint32_t written_min = 0;
  if (napi_get_value_uint32(env, argv[1], &written_min) != napi_ok || written_min > US_REGION_PAGES)
    return us_throw(env, "ERR_TRACKER", "writtenMinPages must be an integer from 0 (off) to 512");
  if (written_min == 0 && t->hot_written_min) {
    // SAFETY: hot_left has hot_region_capacity entries. Every lease ends:
    // the plain scan of the next collect reports and re-protects the region.
    for (uint64_t r = 0; r < t->hot_region_capacity; r++) t->hot_left[r] = 0;
  }
  t->hot_written_min = written_min;
  return NULL;
}

// uffdStats(handle) -> plain numbers.
static napi_value js_uffd_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return us_throw(env, "ERR_TRACKER", "uffdStats(handle) needs a handle");
  us_uffd_tracker* t;
  if (!get_tracker(env, argv[0], &t)) return NULL;
  napi_value out;
  US_NAPI_OK(env, napi_create_object(env, &out));
  if (t->mode == US_MODE_SYNC) pthread_mutex_lock(&t->mu);
  struct {
    const char* name;
    double value;
  } fields[] = {
      {"collects", (double)t->collects},
      {"scanCalls", (double)t->scan_calls},
      {"scanNsTotal", (double)t->scan_ns_total},
      {"scanNsLast", (double)t->scan_ns_last},
      {"collectNsLast", (double)t->collect_ns_last},
      {"pagesReportedTotal", (double)t->pages_reported_total},
      {"grows", (double)t->grows},
      {"grownPagesReportedTotal", (double)t->grown_pages_reported_total},
      {"registeredBytes", (double)t->registered_bytes},
      {"userModeOnly", (double)t->user_mode_only},
      {"fastScanBytes", (double)t->fast_bytes},
      {"promotedBytesTotal", (double)t->promoted_bytes_total},
      {"promoteErrno", (double)t->promote_errno},
      {"hotRegions", (double)t->hot_regions_now},
      {"hotLeasesTotal", (double)t->hot_leases_total},
      {"hotPagesReportedTotal", (double)t->hot_pages_reported_total},
      {"hotUnprotectErrno", (double)t->hot_unprotect_errno},
      {"faults", (double)t->faults},
      {"faultNsTotal", (double)t->fault_ns_total},
      {"faultNsMax", (double)t->fault_ns_max},
      {"duplicateFaultMessages", (double)t->duplicate_messages},
      {"pendingPages", (double)t->written_count},
      {"preimagePages", (double)t->preimage_count},
      {"preimageStoreBytes", (double)(t->preimage_capacity * US_PAGE_BYTES)},
      {"preimageOverflow", (double)t->preimage_overflow},
      {"handlerErrno", (double)t->handler_errno},
      {"presavedPagesTotal", (double)t->presaved_total},
      {"histasePagesTotal", (double)t->histase_total},
      {"predictedWrittenTotal", (double)t->predicted_written_total},
      {"predictedUnwrittenTotal", (double)t->predicted_unwritten_total},
      {"dirtyPagesTotal", (double)t->dirty_total},
  };
  // The first 17 fields apply to both modes (the fast-scan and hot ones are 0
  // in sync mode); the rest are the sync handler's.
  size_t field_count = t->mode == US_MODE_SYNC ? sizeof fields / sizeof fields[0] : 17;
  if (t->mode == US_MODE_SYNC) pthread_mutex_unlock(&t->mu);
  for (size_t i = 0; i < field_count; i++) {
    if (!us_set_number(env, out, fields[i].name, fields[i].value)) return us_throw(env, "ERR_NATIVE_NAPI", "stats");
  }
  return out;
}

// uffdDispose(handle): idempotent; joins the handler thread and closes fds.
static napi_value js_uffd_dispose(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return us_throw(env, "ERR_TRACKER", "uffdDispose(handle) needs a handle");
  void* data = NULL;
  napi_valuetype type;
  US_NAPI_OK(env, napi_typeof(env, argv[0], &type));
  if (type != napi_external) return us_throw(env, "ERR_TRACKER", "expected a tracker handle");
  US_NAPI_OK(env, napi_get_value_external(env, argv[0], &data));
  // The struct itself is freed by the external's finalizer, so a disposed
  // handle stays safe to pass (it answers ERR_TRACKER_DISPOSED).
  if (data) tracker_release((us_uffd_tracker*)data);
  return NULL;
}

// uffdProbe() -> facts for `understudy doctor`: whether userfaultfd opens (and
// how), the kernel's feature bits, whether PAGEMAP_SCAN exists, the sysctl.
static napi_value js_uffd_probe(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  US_NAPI_OK(env, napi_create_object(env, &out));
  int umo = 0;
  int fd = open_uffd(0, &umo);
  int open_errno = fd < 0 ? errno : 0;
  int privileged = fd >= 0 && !umo;
  if (fd >= 0) close(fd);
  int fd2 = open_uffd(1, &umo);
  int umo_errno = fd2 < 0 ? errno : 0;
  if (fd2 >= 0) close(fd2);
  int64_t features = kernel_uffd_features();
  int features_errno = features < 0 ? errno : 0;

  int pagemap_errno = 0;
  // SAFETY: a constant path, read-only.
  int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (pm < 0) {
    pagemap_errno = errno;
  } else {
    static uint8_t probe_page[US_PAGE_BYTES] __attribute__((aligned(US_PAGE_BYTES)));
    struct us_page_region region;
    struct us_pm_scan_arg arg;
    memset(&arg, 0, sizeof arg);
    arg.size = sizeof arg;
    arg.start = (uint64_t)(uintptr_t)probe_page;
    arg.end = arg.start + US_PAGE_BYTES;
    arg.vec = (uint64_t)(uintptr_t)&region;
    arg.vec_len = 1;
    arg.category_anyof_mask = US_PAGE_IS_PRESENT;
    arg.return_mask = US_PAGE_IS_PRESENT;
    // SAFETY: arg and region are live; the range is our own static page.
    if (ioctl(pm, US_PAGEMAP_SCAN, &arg) < 0) pagemap_errno = errno;
    close(pm);
  }
  struct utsname u;
  const char* release = uname(&u) == 0 ? u.release : "";
  napi_value rel;
  US_NAPI_OK(env, napi_create_string_utf8(env, release, NAPI_AUTO_LENGTH, &rel));
  US_NAPI_OK(env, napi_set_named_property(env, out, "kernelRelease", rel));
  if (!us_set_number(env, out, "openErrno", open_errno) || !us_set_number(env, out, "userModeOnlyErrno", umo_errno) ||
      !us_set_number(env, out, "privileged", privileged) || !us_set_number(env, out, "features", (double)features) ||
      !us_set_number(env, out, "featuresErrno", features_errno) || !us_set_number(env, out, "pagemapScanErrno", pagemap_errno) ||
      !us_set_number(env, out, "featureWpAsync", (double)US_UFFD_FEATURE_WP_ASYNC) ||
      !us_set_number(env, out, "featureWpUnpopulated", (double)US_UFFD_FEATURE_WP_UNPOPULATED) ||
      !us_set_number(env, out, "featurePagefaultFlagWp", (double)US_UFFD_FEATURE_PAGEFAULT_FLAG_WP))
    return us_throw(env, "ERR_NATIVE_NAPI", "probe");
  return out;
}

napi_value us_init_uffd(napi_env env, napi_value exports) {
  napi_value built;
  if (napi_get_boolean(env, true, &built) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "uffdBuilt", built) != napi_ok) return NULL;
  if (!us_register(env, exports, "uffdCreate", js_uffd_create)) return NULL;
  if (!us_register(env, exports, "uffdCollect", js_uffd_collect)) return NULL;
  if (!us_register(env, exports, "uffdTakePreimages", js_uffd_take_preimages)) return NULL;
  if (!us_register(env, exports, "uffdStats", js_uffd_stats)) return NULL;
  if (!us_register(env, exports, "uffdDispose", js_uffd_dispose)) return NULL;
  if (!us_register(env, exports, "uffdProbe", js_uffd_probe)) return NULL;
  if (!us_register(env, exports, "uffdPresave", js_uffd_presave)) return NULL;
  if (!us_register(env, exports, "uffdSetHistase", js_uffd_set_histase)) return NULL;
  if (!us_register(env, exports, "uffdRollback", js_uffd_rollback)) return NULL;
  if (!us_register(env, exports, "uffdSetHot", js_uffd_set_hot)) return NULL;
  return exports;
}

#else  // not Linux: the addon still builds; the kernel trackers report unsupported.

static napi_value js_uffd_unsupported(napi_env env, napi_callback_info info) {
  (void)info;
  return us_throw(env, "ERR_TRACKER_UNSUPPORTED", "userfaultfd write-protect tracking exists only on Linux");
}

static napi_value js_uffd_probe(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  US_NAPI_OK(env, napi_create_object(env, &out));
  return out;
}

napi_value us_init_uffd(napi_env env, napi_value exports) {
  napi_value built;
  if (napi_get_boolean(env, false, &built) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "uffdBuilt", built) != napi_ok) return NULL;
  if (!us_register(env, exports, "uffdCreate", js_uffd_unsupported)) return NULL;
  if (!us_register(env, exports, "uffdCollect", js_uffd_unsupported)) return NULL;
  if (!us_register(env, exports, "uffdTakePreimages", js_uffd_unsupported)) return NULL;
  if (!us_register(env, exports, "uffdStats", js_uffd_unsupported)) return NULL;
  if (!us_register(env, exports, "uffdDispose", js_uffd_unsupported)) return NULL;
  if (!us_register(env, exports, "uffdProbe", js_uffd_probe)) return NULL;
  if (!us_register(env, exports, "uffdPresave", js_uffd_unsupported)) return NULL;
  if (!us_register(env, exports, "uffdSetHistase", js_uffd_unsupported)) return NULL;
  if (!us_register(env, exports, "uffdRollback", js_uffd_unsupported)) return NULL;
  if (!us_register(env, exports, "uffdSetHot", js_uffd_unsupported)) return NULL;
  return exports;
}

#endif
