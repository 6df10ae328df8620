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

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
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
// Pages of a grown range not yet backed by a private page (empty, or mapping
// the zero page) promoted to the fast scan per collect (see promote_tail):
// marking them costs ~0.025 us a page here (a scan over 64 MiB of empty
// entries: ~0.4 ms), so this bounds the extra pause of a collect to ~0.1 ms.
// Pages the guest already wrote cost only the walk (~0.2 ms per 256 MiB), so
// a grown range the guest filled is promoted whole in the collect that finds
// it; a fresh, untouched grow moves 16 MiB per collect.
#define US_PROMOTE_UNBACKED_PAGES_MAX 4096u
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

// Undo logs alive at once: the live epoch's, the kept checkpoints' (two),
// the one being sealed, and those a collect scan pins (one per epoch it spans).
#define US_STORES_MAX 48u
// Free stores that keep their backing pages for reuse (a fresh page costs a
// first-touch fault when written); past this, a released store's pages are
// given back with MADV_DONTNEED.
#define US_STORES_WARM 4u
// Slots of the background job per turn of the handler loop, between which it
// serves faults: ~16 x (compare + copy of 4 KiB) is ~20 us of fault latency.
#define US_JOB_CHUNK_SLOTS 16u
// How often the handler thread yields, at most, to a thread waiting for the
// lock before taking it for the next job chunk (a waiter takes it within a
// few microseconds of being woken; the bound keeps the job going regardless).
#define US_JOB_YIELD_SPINS_MAX 1000
// Slots the job does inside a fault the guest took on a page the job had not
// reached yet (see serve_fault): ~32 x 1.5 us added to that fault, against a
// round trip of ~10-20 us for each page it covers.
#define US_FAULT_CHASE_SLOTS 32u
// At a seal, when the pages to re-protect form more runs than 1/8 of the
// memory's pages, one ioctl over the whole memory is cheaper than one per run
// (measured here: ~1.3 us per run, ~0.16 us per page walked).
#define US_PROTECT_WHOLE_RATIO 8u

struct us_store;
struct us_scan;

enum us_mode { US_MODE_ASYNC = 1, US_MODE_SYNC = 2 };

typedef struct {
  int mode;
  int uffd;
  int pagemap_fd;  // -1 when PAGEMAP_SCAN is unavailable (sync mode only)
  int stop_fd;     // eventfd that wakes the sync handler for shutdown; -1 otherwise
  int user_mode_only;
  int disposed;
  uint8_t* base;            // start of the backing store, page aligned
  uint64_t registered_bytes;  // bytes registered (and protected) from base; under mu in sync mode
  uint64_t armed_bytes;       // sync: the registered size as of the last seal (or attach, or rollback); the tail past it is the next seal's to protect
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
  int wake_fd;             // eventfd: a background job was posted (wakes the handler's poll); -1 otherwise
  int sigbus;              // faults arrive as SIGBUS on the faulting thread (served there), not as messages
  pthread_t mu_owner;      // the thread holding mu (valid while mu_held)
  int mu_held;
  int mu_waiters;          // threads blocked in lock_mu (atomic): the job gives way to them
  double sealed_last_id;   // the log the last seal made (-1 before the first), for the next seal's report
  uint64_t* seen;          // one bit per page: un-protected this epoch, i.e. in the live store
  int preimages_enabled;
  uint64_t preimage_bytes_max;  // per undo log (store)
  // Undo logs (see "undo logs" below). stores[live] is the live epoch's store.
  struct us_store* stores[US_STORES_MAX];
  uint32_t stores_allocated;
  uint32_t live;
  uint32_t* live_slot;     // page -> its slot in the live store (valid while its seen bit is set)
  uint32_t* sealed_slot;   // page -> its slot in the job's store (validated by looking the slot up)
  uint64_t* job_bits;      // pages the job kept (Histase's input), cleared by the job
  uint64_t* mark;          // scratch bitmap (rollback), all zero between calls
  uint64_t* drop_bits;     // in place with dense regions: pages dropped by the slots, still writable, until the dense pass
  // The background job of the last sealed store (filter, pre-save, Histase, checksum).
  int job;                 // store index, -1 when none; under mu
  int job_active;          // the same, as a flag the handler polls without the lock (atomic)
  int job_phase, job_presave;
  uint64_t job_low, job_chase, job_done, job_crc_at;
  uint32_t job_crc;
  uint64_t run_lo, run_hi; // a run of pages whose protection the job still has to change
  int run_open;
  // The job runs in the pause with the guest stopped (COWP, job in the pause): the seal left
  // last epoch's pages writable, the job pre-saves the kept ones as they are and re-protects
  // only the dropped ones (its runs protect instead of un-protect). Set by the seal, cleared by
  // job_in_place_pass, which the seal runs right away: the rest of the job never sees it set.
  int job_in_place;
  int job_slots_only;      // a fault's chase: compare and pre-save slots, nothing longer (no dense region)
  struct us_scan* scan;    // the collect scan in progress (NULL: none); pinned stores under mu
  uint64_t faults, fault_ns_total, fault_ns_max, duplicate_messages, foreign_faults;
  uint64_t job_slots_total, job_ns_total, seal_wait_ns_total, job_chases;
  uint64_t seal_protect_ns_total, seal_ns_total, seals, unprotect_ns_total;
  int handler_errno;       // first error the handler hit (0: none)
  const char* handler_step;
  // Prediction. A predicted page was pre-saved and un-protected before any
  // write to it: by the job or uffdPresave (COWP: the pages written last
  // epoch) or by Histase in the fault handler (neighbours of a faulting page).
  // Its slot carries US_SLOT_PREDICTED: a write is not proven, so the job
  // compares it with its pre-image and drops it when equal.
  int histase;             // Histase on: faults pre-save neighbours by his_stride
  float histase_alpha;     // his_stride = alpha * his_stride + (1 - alpha) * ave_stride
  float* his_stride;       // per 2 MiB region (US_REGION_PAGES); < 0: no history yet
  uint64_t region_capacity;
  uint64_t presaved_total, histase_total, predicted_written_total, predicted_unwritten_total, dirty_total, reprotected_total;
  // Dense regions (COWP): a 2 MiB region with at least dense_min pages kept in
  // the sealed epoch is pre-saved whole for the next one, not only those pages
  // (see job_dense_region). 0: off, the seed's H_i alone.
  uint32_t dense_min;
  uint32_t* region_kept;   // per region: pages the job kept so far (reset when committed to region_count)
  uint32_t* region_count;  // per region: pages kept in the last epoch whose comparisons are complete
  uint8_t* region_state;   // per region: US_REGION_DENSE, US_REGION_DEFERRED
  uint64_t job_dense_at;   // next region of the dense pass
  int job_dense_done;      // the dense pass of this job already ran (in place, in the pause)
  // The in-place pass records its pre-saves (slots, data_count) without copying
  // (defer_copy), then gathers them on two threads with the copier.
  us_copier* copier;       // created on first use; NULL: copies inline
  int defer_copy;
  uint64_t job_deferred;   // slots of this job left for comparison after the pause
  uint64_t dense_regions_total, dense_presaved_total;

  // Hot regions (async mode; see scan_fast_hot). Per 2 MiB region of the fast
  // range: the epochs left in its lease (0: tracked page by page) and the
  // length of its next lease; the pages counted written by this collect.
  uint32_t hot_written_min;  // 0: hot regions off
  uint8_t* hot_left;
  uint8_t* hot_lease;
  uint32_t* hot_count;
  uint64_t hot_region_capacity;
  uint64_t hot_leases_total, hot_pages_reported_total, hot_regions_now, hot_resamples_total;
  int hot_unprotect_errno;  // last failure to un-protect a region turning hot (0: none); harmless, see scan_fast_hot
} us_uffd_tracker;

// Histase's unit of history: 512 pages (2 MiB), what one L1 page table maps.
#define US_REGION_PAGES 512u
// Hot regions: a region with at least hot_written_min of its 512 pages
// written in an epoch is left unprotected and reported whole for its lease
// (the threshold is set from JS: src/track/uffd.ts explains the default).
// A lease starts at this many epochs and doubles each time the region is
// found hot again when it ends, up to the maximum: a region written every
// epoch pays the faults of its sample once in 33 epochs; one that cools is
// tracked again within 2 epochs of its first cool lease. (Leases fit a uint8_t.)
#define US_HOT_LEASE_INITIAL 2u
#define US_HOT_LEASE_MAX 32u
// hot_left through the epoch after a lease: only the region's sample is
// protected, and the next collect judges the region by it.
#define US_HOT_SAMPLING 254u
// hot_left through a second sampling epoch, after a sample found the region
// cold: a guest pauses now and then (ledger's heap goes quiet for an epoch
// every seven to ten), and judging a region by one quiet epoch dropped it for
// a tracked epoch (a fault for every page written, ~450 in a hot region) just
// before it was written whole again. A second cold sample drops it.
#define US_HOT_RESAMPLING 253u
_Static_assert(US_HOT_LEASE_MAX < US_HOT_RESAMPLING, "lease lengths and states do not overlap");
// The sample: blocks of 8 pages at the start of every 64, an eighth of the
// region. Judging a region by re-protecting all of it for an epoch cost a
// fault for each page it wrote (~450 for a hot region, ~1.2 us each here);
// the sample costs at most 64, and 8 protect-and-scan calls.
#define US_HOT_SAMPLE_STRIDE_PAGES 64u
#define US_HOT_SAMPLE_BLOCK_PAGES 8u
_Static_assert(US_REGION_PAGES % US_HOT_SAMPLE_STRIDE_PAGES == 0, "the sample tiles a region");
// A region judged by its sample stays hot from this fraction of the threshold
// on (1/2: 64 pages at the default 128). An eighth of a region written at the
// threshold shows 16 +- 3.5 written pages, so judging it by the threshold
// itself calls a region still hot cold now and then; that costs a tracked
// epoch (a fault for every page it writes, ~300 in ledger's) and a lease
// restarted at 2. A region cooling for real still drops within a lease.
#define US_HOT_KEEP_DIVISOR 2u

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

// UFFDIO_WRITEPROTECT on [start, start+len) with `mode` (MODE_WP sets
// protection; 0 clears it and wakes faulting threads; MODE_DONTWAKE clears it
// without the wake). Retries the transient EAGAIN.
static int uffd_protect_mode(int uffd, uint64_t start, uint64_t len, uint64_t mode) {
  for (int attempt = 0; attempt < US_WP_RETRY_MAX; attempt++) {
    struct us_uffdio_writeprotect arg = {.range = {.start = start, .len = len}, .mode = mode};
    // SAFETY: arg is a live uffdio_writeprotect; the range lies inside a
    // registration of this uffd (callers pass only registered ranges).
    if (ioctl(uffd, US_UFFDIO_WRITEPROTECT, &arg) == 0) return 0;
    if (errno != EAGAIN && errno != EINTR) return errno;
  }
  return EAGAIN;
}

// Sets (wp=1) or clears (wp=0, which also wakes faulting threads) write protection.
static int uffd_protect(int uffd, uint64_t start, uint64_t len, int wp) {
  return uffd_protect_mode(uffd, start, len, wp ? US_UFFDIO_WRITEPROTECT_MODE_WP : 0);
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

// Empty entries (neither present nor swapped: never touched): the scan puts
// a WP marker in each (tail promotion; the output is discarded), allocating
// the page tables a range lacks. A marker, unlike a zero-page mapping, needs
// no TLB flush when the guest first writes the page: an anonymous fault, then
// a write-protect fault that only clears the bit. A page that is present or
// swapped does not match, and a marker already there is a swap-type entry.
static const us_scan_query US_SCAN_EMPTY_MARK = {
    .flags = US_PM_SCAN_WP_MATCHING | US_PM_SCAN_CHECK_WPASYNC,
    .category_mask = US_PAGE_IS_PRESENT | US_PAGE_IS_SWAPPED,
    .category_inverted = US_PAGE_IS_PRESENT | US_PAGE_IS_SWAPPED,
    .category_anyof_mask = 0,
    .return_mask = US_PAGE_IS_WPALLOWED,
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
  const uint64_t first = *count;
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
    // Only this call's entries: the ones before it may cover other ranges (a
    // scratch scan appends after a collect's entries).
    uint64_t prev_end = kept > first ? t->vec[kept - 1].end : 0;
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

static int grow_bitmap(uint64_t** bits, uint64_t old_pages, uint64_t pages) {
  uint64_t old_words = (old_pages + 63) / 64, words = (pages + 63) / 64;
  uint64_t* b = (uint64_t*)realloc(*bits, (size_t)words * 8);
  if (!b) return 0;
  // SAFETY: b has `words` words; the new tail [old_words, words) is zeroed.
  memset(b + old_words, 0, (size_t)(words - old_words) * 8);
  *bits = b;
  return 1;
}

static int grow_u32(uint32_t** a, uint64_t old_n, uint64_t n) {
  uint32_t* b = (uint32_t*)realloc(*a, (size_t)n * 4);
  if (!b) return 0;
  // SAFETY: b has n entries; the new tail is zeroed (slot maps are validated on use anyway).
  memset(b + old_n, 0, (size_t)(n - old_n) * 4);
  *a = b;
  return 1;
}

static int store_reserve_pages(struct us_store* s, uint64_t pages);

// Makes the page buffers hold `pages` entries. Sync mode: called with mu held.
static int ensure_capacity(us_uffd_tracker* t, uint64_t pages) {
  if (pages <= t->capacity_pages) return 1;
  uint32_t* out = (uint32_t*)realloc(t->out, (size_t)pages * 4);
  if (!out) return 0;
  t->out = out;
  if (t->mode == US_MODE_SYNC) {
    const uint64_t old = t->capacity_pages;
    if (!grow_bitmap(&t->seen, old, pages) || !grow_bitmap(&t->job_bits, old, pages) || !grow_bitmap(&t->mark, old, pages) ||
        !grow_bitmap(&t->drop_bits, old, pages))
      return 0;
    if (!grow_u32(&t->live_slot, old, pages) || !grow_u32(&t->sealed_slot, old, pages)) return 0;
    // Only the live store grows: a sealed store's page list is final (and a
    // scan may be reading it without the lock).
    if (t->stores_allocated > 0 && !store_reserve_pages(t->stores[t->live], pages)) return 0;
    uint64_t regions = (pages + US_REGION_PAGES - 1) / US_REGION_PAGES;
    float* his = (float*)realloc(t->his_stride, (size_t)regions * sizeof *his);
    if (!his) return 0;
    // SAFETY: his has `regions` entries; the new tail starts without history.
    for (uint64_t r = t->region_capacity; r < regions; r++) his[r] = -1.0f;
    t->his_stride = his;
    uint32_t* kept = (uint32_t*)realloc(t->region_kept, (size_t)regions * sizeof *kept);
    if (!kept) return 0;
    t->region_kept = kept;
    uint32_t* count = (uint32_t*)realloc(t->region_count, (size_t)regions * sizeof *count);
    if (!count) return 0;
    t->region_count = count;
    uint8_t* state = (uint8_t*)realloc(t->region_state, (size_t)regions);
    if (!state) return 0;
    t->region_state = state;
    // SAFETY: each array has `regions` entries; the new tail has kept nothing and is not dense.
    for (uint64_t r = t->region_capacity; r < regions; r++) kept[r] = count[r] = state[r] = 0;
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

// The tracker's lock, with its owner noted: the SIGBUS handler refuses (loudly)
// to wait for a lock its own thread holds. Waiters are counted so that the
// handler thread, which takes the lock again right after each job chunk, lets
// them in first (a mutex is not fair: the pause or a faulting guest thread,
// woken by the unlock, would often find it taken again).
static void lock_mu(us_uffd_tracker* t) {
  if (pthread_mutex_trylock(&t->mu) != 0) {
    __atomic_fetch_add(&t->mu_waiters, 1, __ATOMIC_ACQ_REL);
    pthread_mutex_lock(&t->mu);
    __atomic_fetch_sub(&t->mu_waiters, 1, __ATOMIC_ACQ_REL);
  }
  t->mu_owner = pthread_self();
  __atomic_store_n(&t->mu_held, 1, __ATOMIC_RELEASE);
}

static void unlock_mu(us_uffd_tracker* t) {
  __atomic_store_n(&t->mu_held, 0, __ATOMIC_RELEASE);
  pthread_mutex_unlock(&t->mu);
}

// ---- undo logs ----
//
// The pre-image store of an epoch IS its undo log. The fault handler copies a
// page's pre-image into the live store; at the end of the epoch (seal) the
// store is handed to JS as a log id, with no copy, and a free store becomes
// live. A store is an mmap reservation of preimage_bytes_max (MAP_NORESERVE:
// only slots written are backed) and is reused, so after the first epochs no
// slot is touched for the first time (a first touch costs a kernel fault).
//
// A slot is (page | flags, 4 KiB of pre-image). Flags: PREDICTED (pre-saved
// before any write: a write is not proven), DROPPED (predicted and found
// unchanged at the seal: not part of the log), DONE (the job has seen it).
// The page index keeps its value when flags change, so a reader that races
// with the job (the collect scan) still learns which page a slot holds.
#define US_SLOT_PREDICTED 0x80000000u
#define US_SLOT_DROPPED 0x40000000u
#define US_SLOT_DONE 0x20000000u
#define US_SLOT_PAGE 0x1fffffffu
_Static_assert(US_MEMORY_BYTES_MAX / US_PAGE_BYTES <= (uint64_t)US_SLOT_PAGE + 1, "every page index fits below the slot flags");

typedef struct us_store {
  uint8_t* data;          // reservation of slots_max pages; NULL when pre-images are off
  uint64_t slots_max;
  uint64_t touched;       // slots ever written (backed), for trimming
  uint32_t* pages;        // slot -> page | flags
  uint64_t pages_cap;
  uint64_t count;         // slots recorded
  uint64_t data_count;    // slots holding a pre-image; < count when the store overflowed
  uint64_t dropped;
  uint32_t refs;          // live epoch, JS's log id, each scan pinning it; 0: free
  uint32_t gen;           // bumped at every reuse, so a stale log id is refused
  uint32_t crc;           // over pages[0..count), then the data of slots [0, data_count)
  int crc_ready;
} us_store;

static int store_reserve_pages(us_store* s, uint64_t pages) {
  if (pages <= s->pages_cap) return 1;
  uint32_t* p = (uint32_t*)realloc(s->pages, (size_t)pages * 4);
  if (!p) return 0;
  s->pages = p;
  s->pages_cap = pages;
  return 1;
}

static void store_destroy(us_store* s) {
  if (!s) return;
  // SAFETY: data is the reservation mmap returned for slots_max pages.
  if (s->data) munmap(s->data, (size_t)(s->slots_max * US_PAGE_BYTES));
  free(s->pages);
  free(s);
}

static us_store* store_create(uint64_t slots_max, uint64_t pages) {
  us_store* s = (us_store*)calloc(1, sizeof *s);
  if (!s) return NULL;
  s->slots_max = slots_max;
  if (slots_max) {
    // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
    void* m = mmap(NULL, (size_t)(slots_max * US_PAGE_BYTES), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
      free(s);
      return NULL;
    }
    s->data = (uint8_t*)m;
  }
  if (!store_reserve_pages(s, pages ? pages : 1)) {
    store_destroy(s);
    return NULL;
  }
  return s;
}

static int store_complete(const us_store* s) {
  return !s->data || s->data_count == s->count;
}

static uint32_t store_crc_range(const us_store* s, uint32_t crc, uint64_t from, uint64_t to) {
  // SAFETY: [from, to) <= data_count slots, each backed inside the reservation.
  return us_crc32c(crc, s->data + from * US_PAGE_BYTES, (size_t)((to - from) * US_PAGE_BYTES));
}

// The checksum of a store as its job takes it (in pieces): the page list, then the pre-images.
static uint32_t store_crc_now(const us_store* s) {
  // SAFETY: pages holds count entries.
  const uint32_t crc = us_crc32c(0, (const uint8_t*)s->pages, (size_t)(s->count * 4));
  return s->data ? store_crc_range(s, crc, 0, s->data_count) : crc;
}

static uint32_t free_store_count(const us_uffd_tracker* t) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < t->stores_allocated; i++) n += t->stores[i]->refs == 0;
  return n;
}

// Drops one reference; a store nobody holds is free for reuse. With mu held.
static void store_unref(us_uffd_tracker* t, uint32_t index) {
  us_store* s = t->stores[index];
  if (s->refs == 0 || --s->refs > 0) return;
  if (s->data && s->touched && free_store_count(t) > US_STORES_WARM) {
    // SAFETY: [data, data + touched pages) lies inside the reservation; the
    // store is free, so nothing reads it. A failure only keeps the pages.
    (void)madvise(s->data, (size_t)(s->touched * US_PAGE_BYTES), MADV_DONTNEED);
    s->touched = 0;
  }
}

// A free store, made live-ready (empty, one reference, new generation), or -1
// when all US_STORES_MAX are held. With mu held.
static int store_take(us_uffd_tracker* t) {
  uint32_t index = t->stores_allocated;
  for (uint32_t i = 0; i < t->stores_allocated; i++)
    if (t->stores[i]->refs == 0) {
      index = i;
      break;
    }
  if (index == t->stores_allocated) {
    if (index >= US_STORES_MAX) return -1;
    us_store* s = store_create(t->preimages_enabled ? t->preimage_bytes_max / US_PAGE_BYTES : 0, t->capacity_pages);
    if (!s) return -1;
    t->stores[t->stores_allocated++] = s;
  }
  us_store* s = t->stores[index];
  if (!store_reserve_pages(s, t->capacity_pages)) return -1;
  s->refs = 1;
  s->gen++;
  s->count = s->data_count = s->dropped = 0;
  s->crc = 0;
  s->crc_ready = 0;
  return (int)index;
}

// A log id as JS holds it: index + US_STORES_MAX * generation (exact in a double).
static double log_id(const us_uffd_tracker* t, uint32_t index) {
  return (double)index + (double)US_STORES_MAX * (double)t->stores[index]->gen;
}

// The store a log id names, if it is still that log (held, same generation,
// not the live store); else -1. With mu held.
static int log_index(const us_uffd_tracker* t, double id) {
  if (!(id >= 0) || id > 9007199254740991.0 || id != (double)(uint64_t)id) return -1;
  const uint64_t v = (uint64_t)id;
  const uint32_t index = (uint32_t)(v % US_STORES_MAX);
  if (index >= t->stores_allocated || index == t->live) return -1;
  const us_store* s = t->stores[index];
  if (s->refs == 0 || (uint64_t)s->gen != v / US_STORES_MAX) return -1;
  return (int)index;
}

// ---- sync handler thread ----

static void handler_fail(us_uffd_tracker* t, const char* step, int err) {
  if (!t->handler_errno) {
    t->handler_errno = err ? err : EIO;
    t->handler_step = step;
  }
}

static int bit_get(const uint64_t* bits, uint64_t idx) {
  return (int)((bits[idx / 64] >> (idx % 64)) & 1u);
}

static void bit_set(uint64_t* bits, uint64_t idx) {
  bits[idx / 64] |= (uint64_t)1 << (idx % 64);
}

// Saves the pre-image of page idx into the live store and records it as
// written this epoch. With mu held; idx is a registered page whose seen bit is
// clear, so it is still write-protected and holds its contents as of the
// seal. The caller un-protects it afterwards.
static void save_page(us_uffd_tracker* t, uint64_t idx, int predicted) {
  us_store* s = t->stores[t->live];
  bit_set(t->seen, idx);
  // SAFETY: a page enters the live store once per epoch (seen bit), and its
  // page list holds capacity_pages >= registered pages entries.
  const uint64_t slot = s->count++;
  s->pages[slot] = (uint32_t)idx | (predicted ? US_SLOT_PREDICTED : 0);
  t->live_slot[idx] = (uint32_t)slot;
  if (s->data && slot == s->data_count && slot < s->slots_max) {
    // SAFETY: the page is inside the registered, mapped range (callers
    // check); the mapping is alive (V8 never unmaps a live memory's
    // reservation, and the JS thread is either blocked in a write to it, or
    // paused, or the page is protected so no write can change it now). The
    // slot lies inside the store's reservation (slot < slots_max). Deferred,
    // the in-place pass copies it before the guest resumes.
    if (!t->defer_copy) memcpy(s->data + slot * US_PAGE_BYTES, t->base + idx * US_PAGE_BYTES, US_PAGE_BYTES);
    s->data_count++;
    if (s->data_count > s->touched) s->touched = s->data_count;
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

// The job's slot of page idx, or UINT64_MAX when idx is not in the job's
// store or the job has seen it already. With mu held.
static uint64_t job_pending_slot(const us_uffd_tracker* t, uint64_t idx) {
  if (t->job < 0) return UINT64_MAX;
  const us_store* js = t->stores[t->job];
  const uint64_t slot = t->sealed_slot[idx];
  if (slot >= js->count) return UINT64_MAX;
  const uint32_t e = js->pages[slot];
  return (e & US_SLOT_PAGE) == idx && !(e & US_SLOT_DONE) ? slot : UINT64_MAX;
}

static int job_run(us_uffd_tracker* t, uint64_t budget);

// One write-protect fault. Runs on the handler thread with mu held.
static void serve_fault(us_uffd_tracker* t, uint64_t address) {
  const uint64_t t0 = now_ns();
  const uint64_t page_addr = address & ~(uint64_t)(US_PAGE_BYTES - 1);
  const uint64_t base = (uint64_t)(uintptr_t)t->base;
  int first = 0;
  uint64_t lo = page_addr, len = US_PAGE_BYTES;
  if (page_addr >= base && page_addr < base + t->registered_bytes) {
    const uint64_t idx = (page_addr - base) / US_PAGE_BYTES;
    // A page is un-protected only while its seen bit is set, so an unseen
    // page still holds its contents as of the seal: that is the pre-image.
    // A second message for a seen page (two writers raced, or the job saved
    // it and has not un-protected its run yet) only needs a wake.
    if (!bit_get(t->seen, idx)) {
      first = 1;
      const uint64_t slot = job_pending_slot(t, idx);
      save_page(t, idx, 0);
      if (slot != UINT64_MAX && t->job_presave) {
        // The guest overtook the job's pre-saving. The job goes on from here,
        // where the guest writes on (typically), and does the next slots now,
        // before the guest resumes: one fault's round trip then buys
        // US_FAULT_CHASE_SLOTS pages without one, as the handler thread may
        // not run again soon on a busy machine.
        t->job_chase = slot;
        t->job_chases++;
        t->job_slots_only = 1;
        job_run(t, US_FAULT_CHASE_SLOTS);
        t->job_slots_only = 0;
      }
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
  const uint64_t tio = now_ns();
  int err = uffd_protect(t->uffd, lo, len, 0);
  t->unprotect_ns_total += now_ns() - tio;
  if (err) handler_fail(t, "UFFDIO_WRITEPROTECT (un-protect a faulted page)", err);
  if (first) {
    const uint64_t dt = now_ns() - t0;
    t->faults++;
    t->fault_ns_total += dt;
    if (dt > t->fault_ns_max) t->fault_ns_max = dt;
  }
}

// ---- the background job of a sealed store ----
//
// After a seal, the handler thread (between faults, US_JOB_CHUNK_SLOTS at a
// time) or the JS thread (when it needs the result: the next seal, a
// rollback, a check) works through the sealed store:
//   1. each slot: a predicted page is compared with its pre-image as of the
//      seal (the live store's pre-image if it was saved since, else memory:
//      still protected, so unchanged) and dropped when equal; a page kept is
//      pre-saved for the live epoch when COWP asked for it (saved, un-protected
//      in runs), and noted for Histase. Slots are taken in order, except that
//      a fault at a page the job has not reached moves it there (chase), since
//      the guest writes on from there;
//   2. Histase: each 2 MiB region's ave_stride from the kept pages, his_stride updated;
//   3. the checksum of the store, in pieces (always on the handler thread
//      unless someone needs it sooner: it only reads).
// Each page is compared once per epoch and copied once (when it is saved).

enum { US_JOB_SLOTS = 1, US_JOB_HISTASE = 2, US_JOB_CRC = 3, US_JOB_DENSE = 4 };

// region_state bits. DENSE: pre-saved whole for the live epoch. DEFERRED: the
// job's slots in it were pre-saved in the pause without comparison (they are
// compared after it, against the copies just made).
#define US_REGION_DENSE 1u
#define US_REGION_DEFERRED 2u

// Un-protects a run of pre-saved pages or, in place, re-protects a run of
// dropped ones. Nobody waits on an un-protected run (a write that raced with
// the pre-saving faulted, and its message is answered, with a wake, when the
// handler reads it), so without a wake-up: it saves the ioctl the wait-queue walk.
static void job_flush_run(us_uffd_tracker* t) {
  if (!t->run_open) return;
  t->run_open = 0;
  const uint64_t base = (uint64_t)(uintptr_t)t->base;
  // (The run lies inside the registration: its pages entered a store.)
  const int err = uffd_protect_mode(t->uffd, base + t->run_lo * US_PAGE_BYTES, (t->run_hi - t->run_lo + 1) * US_PAGE_BYTES,
                                    t->job_in_place ? US_UFFDIO_WRITEPROTECT_MODE_WP : US_UFFDIO_WRITEPROTECT_MODE_DONTWAKE);
  if (err) handler_fail(t, t->job_in_place ? "UFFDIO_WRITEPROTECT (re-protect dropped pages)" : "UFFDIO_WRITEPROTECT (un-protect pre-saved pages)", err);
}

// Adds page idx to the job's run (flushing the run it does not extend).
static void job_run_add(us_uffd_tracker* t, uint64_t idx) {
  if (t->run_open && idx == t->run_hi + 1) {
    t->run_hi = idx;
    return;
  }
  job_flush_run(t);
  t->run_lo = t->run_hi = idx;
  t->run_open = 1;
}

static void job_slot(us_uffd_tracker* t, us_store* js, uint64_t i) {
  uint32_t e = js->pages[i];
  const uint64_t idx = e & US_SLOT_PAGE;
  int keep = 1;
  if (e & US_SLOT_PREDICTED) {
    if (i < js->data_count) {
      const us_store* live = t->stores[t->live];
      const uint8_t* now = NULL;
      if (!bit_get(t->seen, idx)) {
        // SAFETY: idx is registered (it entered a store); unseen pages are
        // protected (or, in place, the guest is stopped), so the guest
        // cannot be writing it.
        now = t->base + idx * US_PAGE_BYTES;
      } else if (t->live_slot[idx] < live->data_count) {
        // SAFETY: a slot below data_count holds the page's pre-image.
        now = live->data + (uint64_t)t->live_slot[idx] * US_PAGE_BYTES;
      }
      // SAFETY: slot i < data_count holds idx's pre-image.
      if (now && memcmp(now, js->data + i * US_PAGE_BYTES, US_PAGE_BYTES) == 0) keep = 0;
    }
    if (keep) t->predicted_written_total++;
    else t->predicted_unwritten_total++;
  }
  e |= US_SLOT_DONE | (keep ? 0 : US_SLOT_DROPPED);
  // A scan may read the page list of a sealed store without the lock.
  __atomic_store_n(&js->pages[i], e, __ATOMIC_RELAXED);
  t->job_done++;
  if (!keep) {
    js->dropped++;
    // In place the page is still writable: unwritten last epoch, it is not predicted for this one,
    // unless its region turns out dense (the dense pass decides, so it is noted for it).
    if (t->job_in_place) {
      if (t->dense_min) {
        bit_set(t->drop_bits, idx);
      } else {
        job_run_add(t, idx);
        t->reprotected_total++;
      }
    }
    return;
  }
  t->dirty_total++;
  bit_set(t->job_bits, idx);
  // SAFETY: idx is registered, so its region is below region_capacity.
  if (t->job_presave && t->dense_min) t->region_kept[idx / US_REGION_PAGES]++;
  if (!t->job_presave || bit_get(t->seen, idx)) return;
  save_page(t, idx, 1);
  t->presaved_total++;
  // In place it stayed writable: its pre-image is saved before the guest resumes.
  if (!t->job_in_place) job_run_add(t, idx);
}

// The 2 MiB regions the registered memory spans (the last may be partial).
static uint64_t registered_regions(const us_uffd_tracker* t) {
  return (t->registered_bytes / US_PAGE_BYTES + US_REGION_PAGES - 1) / US_REGION_PAGES;
}

// Dense regions: where the sealed epoch kept at least dense_min of a region's
// 512 pages, the guest writes all over that region (a table written at
// random, a heap rewritten), and next epoch's writes fall mostly on pages the
// epoch did not write, each a fault of ~6 us here. Copying a page costs
// ~0.6 us, so pre-saving the whole region pays once about 1 in 10 of its
// pages would fault. Pre-saves region r's pages not yet seen and un-protects
// the region (one ioctl). Stops short of filling half the live store, which
// must keep room for the epoch's own writes. In place, the region's dropped
// pages are still writable: a dense region pre-saves them like the rest, any
// other region has them protected again here. Returns the pages saved. With mu held.
static uint64_t job_dense_region(us_uffd_tracker* t, uint64_t r) {
  // SAFETY: r < the registered regions <= region_capacity (the caller's loop bound).
  const uint8_t state = t->region_state[r];
  if (!(state & US_REGION_DEFERRED)) {
    t->region_count[r] = t->region_kept[r];
    t->region_kept[r] = 0;
  }
  // A deferred region's slots are compared after the pause: it goes by the last complete count.
  const uint32_t kept = t->region_count[r];
  const us_store* live = t->stores[t->live];
  const uint64_t registered_pages = t->registered_bytes / US_PAGE_BYTES;
  const uint64_t lo = r * US_REGION_PAGES;
  const uint64_t hi = lo + US_REGION_PAGES < registered_pages ? lo + US_REGION_PAGES : registered_pages;
  const int dense = kept >= t->dense_min && live->data && live->count + (hi - lo) <= live->slots_max / 2;
  t->region_state[r] = (uint8_t)((state & US_REGION_DEFERRED) | (dense ? US_REGION_DENSE : 0));
  if (t->job_in_place) {
    // SAFETY: [lo, hi) are registered pages, inside drop_bits; whole words of a region (512 = 8 x 64).
    for (uint64_t w = lo / 64; w < (hi + 63) / 64; w++) {
      uint64_t bits = t->drop_bits[w];
      t->drop_bits[w] = 0;
      while (!dense && bits) {
        job_run_add(t, w * 64 + (uint64_t)__builtin_ctzll(bits));
        t->reprotected_total++;
        bits &= bits - 1;
      }
    }
  }
  if (!dense) return 0;
  uint64_t saved = 0;
  for (uint64_t p = lo; p < hi; p++) {
    if (bit_get(t->seen, p)) continue;
    save_page(t, p, 1);
    saved++;
  }
  if (!saved) return 0;
  const uint64_t base = (uint64_t)(uintptr_t)t->base;
  // ([lo, hi) lies inside the registration.)
  const int err = uffd_protect_mode(t->uffd, base + lo * US_PAGE_BYTES, (hi - lo) * US_PAGE_BYTES, US_UFFDIO_WRITEPROTECT_MODE_DONTWAKE);
  if (err) handler_fail(t, "UFFDIO_WRITEPROTECT (un-protect a dense region)", err);
  t->dense_regions_total++;
  t->dense_presaved_total += saved;
  t->presaved_total += saved;
  return saved;
}

// Histase: ave_stride per region = mean length of the runs of consecutive
// kept pages in it; his_stride follows it with weight 1 - alpha. Regions not
// written keep their history. Clears job_bits.
static void job_histase(us_uffd_tracker* t) {
  const uint64_t words = (t->capacity_pages + 63) / 64;
  uint64_t region = UINT64_MAX, runs = 0, pages = 0, prev = UINT64_MAX;
  for (uint64_t w = 0; w <= words; w++) {
    uint64_t bits = w < words ? t->job_bits[w] : 0;
    if (w < words) t->job_bits[w] = 0;
    while (w < words && bits) {
      const uint64_t idx = w * 64 + (uint64_t)__builtin_ctzll(bits);
      bits &= bits - 1;
      if (idx / US_REGION_PAGES != region) {
        if (region != UINT64_MAX) {
          float* his = &t->his_stride[region];
          const float ave = (float)pages / (float)runs;
          *his = *his < 0 ? ave : t->histase_alpha * *his + (1.0f - t->histase_alpha) * ave;
        }
        region = idx / US_REGION_PAGES;
        runs = pages = 0;
        prev = UINT64_MAX;
      }
      if (prev == UINT64_MAX || idx != prev + 1) runs++;
      pages++;
      prev = idx;
    }
    if (w == words && region != UINT64_MAX) {
      float* his = &t->his_stride[region];
      const float ave = (float)pages / (float)runs;
      *his = *his < 0 ? ave : t->histase_alpha * *his + (1.0f - t->histase_alpha) * ave;
    }
  }
}

// The pause's part of an in-place job (COWP, job in the pause, guest stopped;
// every slot's page is still writable). A slot in a dense region is pre-saved
// as it is and left for comparison after the pause: the region is pre-saved
// whole anyway, so the comparison decides nothing the guest waits for (only
// whether the log keeps the page, and the region's count). Any other slot
// goes through job_slot (compared now: kept pages pre-saved, dropped ones
// noted). Then the dense pass, which also protects the dropped pages again
// outside dense regions. Leaves the deferred slots, Histase and the checksum
// to the job's usual course. With mu held.
static void job_in_place_pass(us_uffd_tracker* t) {
  const uint64_t t0 = now_ns();
  us_store* js = t->stores[t->job];
  us_store* live = t->stores[t->live];
  // Slots from here on are recorded now and copied at the end, on two threads.
  // Nothing reads them before: each page is compared before it is saved (its
  // own slot), and the scan merges the live store only under mu, held here.
  const uint64_t first = live->data_count;
  if (!t->copier) t->copier = us_copier_new();
  t->defer_copy = t->copier != NULL;
  for (uint64_t i = 0; i < js->count; i++) {
    const uint64_t idx = js->pages[i] & US_SLOT_PAGE;
    const uint64_t r = idx / US_REGION_PAGES;
    // SAFETY: idx is registered, so r < region_capacity. Like the dense pass,
    // deferring stops at half the live store (compared now, a dropped page
    // takes no slot).
    if (t->dense_min && (t->region_state[r] & US_REGION_DENSE) && live->count < live->slots_max / 2) {
      t->region_state[r] |= US_REGION_DEFERRED;
      if (!bit_get(t->seen, idx)) {
        save_page(t, idx, 1);
        t->presaved_total++;
      }
      t->job_deferred++;
      continue;
    }
    job_slot(t, js, i);
  }
  job_flush_run(t);
  if (t->job_presave && t->dense_min) {
    const uint64_t regions = registered_regions(t);
    for (uint64_t r = 0; r < regions; r++) job_dense_region(t, r);
    job_flush_run(t);
    t->job_dense_done = 1;
  }
  t->job_in_place = 0;
  if (t->defer_copy) {
    t->defer_copy = 0;
    // SAFETY: slots [first, data_count) lie inside the store's reservation and
    // their pages (flags masked off) inside the registered memory; the guest is
    // stopped and mu held, so neither changes until the gather returns.
    if (live->data_count > first)
      us_copier_gather(t->copier, t->base, live->data + first * US_PAGE_BYTES, live->pages + first, US_SLOT_PAGE, (uint32_t)(live->data_count - first));
  }
  t->job_slots_total += js->count;
  t->job_ns_total += now_ns() - t0;
}

// Runs up to `budget` slots of the job (slots, or pages of the checksum);
// with stop_at_crc, stops where the checksum begins. Returns 1 when the job is
// finished. With mu held.
static int job_run_until(us_uffd_tracker* t, uint64_t budget, int stop_at_crc) {
  if (t->job < 0) return 1;
  const uint64_t t0 = now_ns();
  us_store* js = t->stores[t->job];
  uint64_t used = 0;
  while (used < budget) {
    if (t->job_phase == US_JOB_SLOTS) {
      if (t->job_done >= js->count) {
        job_flush_run(t);
        if (t->job_deferred) {
          // The deferred comparisons are complete: their regions' counts are final.
          const uint64_t regions = registered_regions(t);
          for (uint64_t r = 0; r < regions; r++) {
            // SAFETY: r < registered regions <= region_capacity.
            if (!(t->region_state[r] & US_REGION_DEFERRED)) continue;
            t->region_state[r] &= (uint8_t)~US_REGION_DEFERRED;
            t->region_count[r] = t->region_kept[r];
            t->region_kept[r] = 0;
          }
          t->job_deferred = 0;
        }
        t->job_phase = t->job_presave && t->dense_min && !t->job_dense_done ? US_JOB_DENSE : US_JOB_HISTASE;
        t->job_dense_at = 0;
        continue;
      }
      // Chase first (where the guest writes), else the lowest slot not done.
      uint64_t i;
      if (t->job_chase < js->count && !(js->pages[t->job_chase] & US_SLOT_DONE)) {
        i = t->job_chase++;
      } else {
        t->job_chase = UINT64_MAX;
        while (t->job_low < js->count && (js->pages[t->job_low] & US_SLOT_DONE)) t->job_low++;
        i = t->job_low;
      }
      job_slot(t, js, i);
      used++;
    } else if (t->job_phase == US_JOB_DENSE) {
      // A region is up to 512 copies (~0.3 ms): never inside a fault.
      if (t->job_slots_only) break;
      const uint64_t regions = registered_regions(t);
      if (t->job_dense_at >= regions) {
        job_flush_run(t);
        t->job_phase = US_JOB_HISTASE;
        continue;
      }
      used += 1 + job_dense_region(t, t->job_dense_at++);
    } else if (t->job_phase == US_JOB_HISTASE) {
      job_histase(t);
      // SAFETY: pages holds count entries (final now).
      t->job_crc = us_crc32c(0, (const uint8_t*)js->pages, (size_t)(js->count * 4));
      t->job_crc_at = 0;
      t->job_phase = US_JOB_CRC;
      used++;
      if (stop_at_crc) break;
    } else {
      const uint64_t end = js->data ? js->data_count : 0;
      if (t->job_crc_at >= end) {
        js->crc = t->job_crc;
        js->crc_ready = 1;
        t->job = -1;
        __atomic_store_n(&t->job_active, 0, __ATOMIC_RELEASE);
        break;
      }
      // (budget may be UINT64_MAX: compare before adding.)
      const uint64_t to = end - t->job_crc_at <= budget - used ? end : t->job_crc_at + (budget - used);
      t->job_crc = store_crc_range(js, t->job_crc, t->job_crc_at, to);
      used += to - t->job_crc_at;
      t->job_crc_at = to;
    }
  }
  job_flush_run(t);
  t->job_slots_total += used;
  t->job_ns_total += now_ns() - t0;
  return t->job < 0;
}

static int job_run(us_uffd_tracker* t, uint64_t budget) {
  return job_run_until(t, budget, 0);
}

// Finishes the job on the calling thread. With mu held.
static void job_finish(us_uffd_tracker* t) {
  if (t->job < 0) return;
  const uint64_t t0 = now_ns();
  job_run(t, UINT64_MAX);
  t->seal_wait_ns_total += now_ns() - t0;
}

// The handler loop. Bounded by the stop eventfd: dispose() signals it and
// joins. Never calls N-API. Faults come first; the job runs in small pieces
// between them.
static void* sync_handler_main(void* arg) {
  us_uffd_tracker* t = (us_uffd_tracker*)arg;
  struct us_uffd_msg msgs[US_MSG_BATCH];
  for (;;) {
    const int busy = __atomic_load_n(&t->job_active, __ATOMIC_ACQUIRE);
    struct pollfd fds[3] = {{.fd = t->uffd, .events = POLLIN, .revents = 0},
                            {.fd = t->stop_fd, .events = POLLIN, .revents = 0},
                            {.fd = t->wake_fd, .events = POLLIN, .revents = 0}};
    // SAFETY: fds is a live array of three pollfd.
    int r = poll(fds, 3, busy ? 0 : -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      lock_mu(t);
      handler_fail(t, "poll (fault handler)", errno);
      unlock_mu(t);
      return NULL;
    }
    if (fds[1].revents) return NULL;
    if (fds[0].revents & (POLLERR | POLLNVAL)) {
      lock_mu(t);
      handler_fail(t, "poll (fault handler): userfaultfd error", EIO);
      unlock_mu(t);
      return NULL;
    }
    if (fds[2].revents & POLLIN) {
      uint64_t v;
      // SAFETY: an 8-byte read of our non-blocking eventfd; EAGAIN is harmless.
      ssize_t n = read(t->wake_fd, &v, sizeof v);
      (void)n;
    }
    if (fds[0].revents & POLLIN) {
      // SAFETY: msgs has room for US_MSG_BATCH messages of the asserted size.
      ssize_t n = read(t->uffd, msgs, sizeof msgs);
      if (n < 0 && errno != EAGAIN && errno != EINTR) {
        lock_mu(t);
        handler_fail(t, "read (fault handler)", errno);
        unlock_mu(t);
        return NULL;
      }
      size_t count = n > 0 ? (size_t)n / sizeof(struct us_uffd_msg) : 0;
      lock_mu(t);
      for (size_t i = 0; i < count; i++) {
        if (msgs[i].event != US_UFFD_EVENT_PAGEFAULT) continue;  // no other events were asked for
        if (!(msgs[i].arg.pagefault.flags & US_UFFD_PAGEFAULT_FLAG_WP)) {
          handler_fail(t, "fault handler: a non-write-protect fault arrived", EPROTO);
          continue;
        }
        serve_fault(t, msgs[i].arg.pagefault.address);
      }
      unlock_mu(t);
      if (count == US_MSG_BATCH) continue;  // more may be queued: faults before the job
    }
    if (busy) {
      // Let a waiting thread (the pause, a fault) have the lock before the next chunk.
      for (int spins = 0; spins < US_JOB_YIELD_SPINS_MAX && __atomic_load_n(&t->mu_waiters, __ATOMIC_ACQUIRE); spins++) sched_yield();
      lock_mu(t);
      job_run(t, US_JOB_CHUNK_SLOTS);
      unlock_mu(t);
    }
  }
}


// ---- faults as SIGBUS (sync mode with pre-images) ----
//
// With UFFD_FEATURE_SIGBUS a write-protect fault does not queue a message for
// the handler thread: the kernel sends SIGBUS to the faulting thread itself,
// which serves the fault in the signal handler (save the pre-image, un-protect)
// and returns, and the write is retried. No other thread has to be scheduled,
// which on a busy machine is most of what a fault costs (the handler thread
// waits for a CPU while the guest waits for it). The trackers in this mode are
// listed for the handler; a SIGBUS outside them goes to the previous handler.
// Limits: a write by the kernel (read(2) into guest memory) to a protected
// page fails with EFAULT instead of faulting; understudy's guest runtime makes
// none (its file system and stdin copy in user space). The faulting thread
// must not hold the tracker's lock (no code of ours writes guest memory while
// holding it).
#define US_SIGBUS_TRACKERS_MAX 64u
static us_uffd_tracker* sigbus_trackers[US_SIGBUS_TRACKERS_MAX];  // atomic loads/stores
static struct sigaction sigbus_previous;
static pthread_mutex_t sigbus_install_mu = PTHREAD_MUTEX_INITIALIZER;
static int sigbus_installed;

static void serve_fault(us_uffd_tracker* t, uint64_t address);

static void on_sigbus(int sig, siginfo_t* info, void* context) {
  const uint64_t addr = (uint64_t)(uintptr_t)info->si_addr;
  for (uint32_t i = 0; i < US_SIGBUS_TRACKERS_MAX; i++) {
    us_uffd_tracker* t = __atomic_load_n(&sigbus_trackers[i], __ATOMIC_ACQUIRE);
    if (!t) continue;
    const uint64_t base = (uint64_t)(uintptr_t)t->base;
    // The registered size only grows; a stale read can only miss a page grown
    // just now, which is not registered yet (so it cannot be this fault).
    if (addr < base || addr >= base + __atomic_load_n(&t->registered_bytes, __ATOMIC_ACQUIRE)) continue;
    if (__atomic_load_n(&t->mu_held, __ATOMIC_ACQUIRE) && pthread_equal(t->mu_owner, pthread_self())) {
      static const char msg[] = "understudy: a write-protect fault while holding the tracker's lock\n";
      ssize_t w = write(2, msg, sizeof msg - 1);
      (void)w;
      abort();
    }
    lock_mu(t);
    serve_fault(t, addr);
    unlock_mu(t);
    return;
  }
  // Not ours: as if we were not here.
  if (sigbus_previous.sa_flags & SA_SIGINFO) {
    sigbus_previous.sa_sigaction(sig, info, context);
  } else if (sigbus_previous.sa_handler == SIG_IGN) {
    return;
  } else if (sigbus_previous.sa_handler == SIG_DFL) {
    signal(SIGBUS, SIG_DFL);
    raise(SIGBUS);
  } else {
    sigbus_previous.sa_handler(sig);
  }
}

// Lists t for the SIGBUS handler (installed on first use). 0 or an errno.
static int sigbus_register(us_uffd_tracker* t) {
  pthread_mutex_lock(&sigbus_install_mu);
  int err = 0;
  if (!sigbus_installed) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    // SAFETY: sa and sigbus_previous are live; the handler is async-signal-safe but for the
    // tracker's mutex, which the faulting thread cannot hold (checked above).
    if (sigaction(SIGBUS, &sa, &sigbus_previous) != 0) err = errno;
    else sigbus_installed = 1;
  }
  uint32_t i = 0;
  if (!err) {
    for (; i < US_SIGBUS_TRACKERS_MAX; i++) {
      if (!__atomic_load_n(&sigbus_trackers[i], __ATOMIC_ACQUIRE)) {
        __atomic_store_n(&sigbus_trackers[i], t, __ATOMIC_RELEASE);
        break;
      }
    }
    if (i == US_SIGBUS_TRACKERS_MAX) err = EMFILE;
  }
  pthread_mutex_unlock(&sigbus_install_mu);
  return err;
}

static void sigbus_unregister(us_uffd_tracker* t) {
  pthread_mutex_lock(&sigbus_install_mu);
  for (uint32_t i = 0; i < US_SIGBUS_TRACKERS_MAX; i++)
    if (__atomic_load_n(&sigbus_trackers[i], __ATOMIC_ACQUIRE) == t) __atomic_store_n(&sigbus_trackers[i], NULL, __ATOMIC_RELEASE);
  pthread_mutex_unlock(&sigbus_install_mu);
}

// ---- lifecycle ----

static void scan_stop(us_uffd_tracker* t);

static void tracker_release(us_uffd_tracker* t) {
  if (t->disposed) return;
  t->disposed = 1;
  // A collect scan reads guest memory and the stores: stopped first.
  if (t->scan) scan_stop(t);
  if (t->sigbus) sigbus_unregister(t);
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
  if (t->wake_fd >= 0) close(t->wake_fd);
  t->uffd = t->pagemap_fd = t->stop_fd = t->wake_fd = -1;
  for (uint32_t i = 0; i < t->stores_allocated; i++) store_destroy(t->stores[i]);
  t->stores_allocated = 0;
  t->job = -1;
  free(t->out);
  free(t->vec);
  free(t->seen);
  free(t->job_bits);
  free(t->mark);
  free(t->drop_bits);
  t->drop_bits = NULL;
  free(t->live_slot);
  free(t->sealed_slot);
  free(t->his_stride);
  us_copier_free(t->copier);
  t->copier = NULL;
  free(t->region_kept);
  free(t->region_count);
  free(t->region_state);
  t->region_kept = t->region_count = NULL;
  t->region_state = NULL;
  free(t->hot_left);
  free(t->hot_lease);
  free(t->hot_count);
  t->hot_left = t->hot_lease = NULL;
  t->hot_count = NULL;
  t->hot_region_capacity = 0;
  t->out = t->live_slot = t->sealed_slot = NULL;
  t->seen = t->job_bits = t->mark = NULL;
  t->vec = NULL;
  t->his_stride = NULL;
  t->region_capacity = 0;
  t->capacity_pages = t->vec_capacity = 0;
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

// uffdCreate(buffer: ArrayBuffer, mode: 'async' | 'sync', preimageBytesMax: number, faultsBySignal?: boolean) -> handle
// faultsBySignal (sync mode with pre-images): faults are served on the
// faulting thread, in a SIGBUS handler (see "faults as SIGBUS").
static napi_value js_uffd_create(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
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
  t->uffd = t->pagemap_fd = t->stop_fd = t->wake_fd = -1;
  t->job = -1;
  t->sealed_last_id = -1;
  t->job_chase = UINT64_MAX;
  t->base = base;
  t->preimage_bytes_max = (uint64_t)preimage_max;
  t->preimages_enabled = mode == US_MODE_SYNC && t->preimage_bytes_max >= US_PAGE_BYTES;
  t->histase_alpha = 0.7f;

  t->uffd = open_uffd(mode == US_MODE_ASYNC, &t->user_mode_only);
  if (t->uffd < 0) return create_failed(env, t, "ERR_TRACKER_UNSUPPORTED", "userfaultfd", errno, NULL, -1);

  bool by_signal = false;
  if (argc >= 4) {
    napi_valuetype type;
    US_NAPI_OK(env, napi_typeof(env, argv[3], &type));
    if (type == napi_boolean) US_NAPI_OK(env, napi_get_value_bool(env, argv[3], &by_signal));
  }
  t->sigbus = t->preimages_enabled && by_signal;
  const uint64_t wanted = mode == US_MODE_ASYNC ? (US_UFFD_FEATURE_WP_ASYNC | US_UFFD_FEATURE_WP_UNPOPULATED)
                                                : US_UFFD_FEATURE_WP_UNPOPULATED | (t->sigbus ? US_UFFD_FEATURE_SIGBUS : 0);
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
  if (mode == US_MODE_SYNC) {
    // The first live store (no lock needed: no other thread exists yet).
    int live = store_take(t);
    if (live < 0) return create_failed(env, t, "ERR_NATIVE_NOMEM", "mmap (pre-image store)", ENOMEM, NULL, -1);
    t->live = (uint32_t)live;
  }

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
  t->armed_bytes = bytes;

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
    // SAFETY: as above.
    t->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (t->wake_fd < 0) return create_failed(env, t, "ERR_TRACKER", "eventfd", errno, NULL, -1);
    // SAFETY: t outlives the thread: tracker_release joins it before freeing.
    int perr = pthread_create(&t->thread, NULL, sync_handler_main, t);
    if (perr) return create_failed(env, t, "ERR_TRACKER", "pthread_create", perr, NULL, -1);
    t->thread_started = 1;
    if (t->sigbus) {
      perr = sigbus_register(t);
      if (perr) return create_failed(env, t, "ERR_TRACKER", "sigaction (SIGBUS)", perr, NULL, -1);
    }
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

// Backed by a private page (present or swapped, not the zero page), written or
// not: the pages a promotion need not populate nor protect. Reads only.
static const us_scan_query US_SCAN_BACKED_PEEK = {
    .flags = 0,
    .category_mask = US_PAGE_IS_PFNZERO,
    .category_inverted = US_PAGE_IS_PFNZERO,
    .category_anyof_mask = US_PAGE_IS_PRESENT | US_PAGE_IS_SWAPPED,
    .return_mask = US_PAGE_IS_PRESENT | US_PAGE_IS_SWAPPED,
};

// How much of the not yet promoted range [start, end) one promotion takes:
// the longest prefix holding at most US_PROMOTE_UNBACKED_PAGES_MAX pages not
// backed by a private page, found with one read-only scan into the scratch
// entries of t->vec from `scratch_region` on. 0 or an errno.
static int promote_extent(us_uffd_tracker* t, uint64_t start, uint64_t end, uint64_t scratch_region, uint64_t* bytes) {
  uint64_t regions = scratch_region;
  int err = scan_regions(t, start, end, &US_SCAN_BACKED_PEEK, &regions);
  if (err) return err;
  uint64_t budget = US_PROMOTE_UNBACKED_PAGES_MAX, at = start;
  // SAFETY: i < regions, entries scan_regions just filled: ascending,
  // disjoint, page aligned and inside [start, end) (validated there).
  for (uint64_t i = scratch_region; i < regions; i++) {
    const uint64_t gap = (t->vec[i].start - at) / US_PAGE_BYTES;
    if (gap > budget) break;
    budget -= gap;
    at = t->vec[i].end;
  }
  // The budget left covers (part of) the unbacked gap after the last region taken.
  const uint64_t rest = (end - at) / US_PAGE_BYTES;
  at += (budget < rest ? budget : rest) * US_PAGE_BYTES;
  *bytes = at - start;
  return 0;
}

// Moves the start of the grown, not yet promoted range [fast_bytes,
// registered_bytes) into the fast-scan prefix, as much as promote_extent
// allows per call. Runs after this collect's filtered scan has reported and
// protected every page written there. What remains unprotected then is
// entries that were never written: empty ones (pte_none, which the fast scan
// would count as written) and zero-page mappings of reads. Made exact, with no
// window for a racing write to be lost:
//   1. a scan puts a WP marker in every empty entry (US_SCAN_EMPTY_MARK);
//   2. a scan protects every unprotected zero-page mapping, atomically per
//      entry. A page written since the filtered scan is a private copy, not
//      the zero page: it stays unprotected and the next (fast) scan reports it.
// (UFFDIO_WRITEPROTECT over the range would be simpler but would also
// protect, unreported, a page written after the filtered scan.) Step 1 used
// to be MADV_POPULATE_READ, which maps the zero page everywhere: ~20 times
// slower per page, and the guest's first write to such a page replaces a
// present entry, a TLB flush that reaches every core running this process
// (a shootdown interrupt; an empty or marked entry needs none).
// A failure leaves the range on the filtered scan, which stays exact; it is
// recorded in the stats and does not fail the collect, whose pages are
// already protected.
static void promote_tail(us_uffd_tracker* t, uint64_t scratch_region) {
  const uint64_t base = (uint64_t)(uintptr_t)t->base;
  const uint64_t start = base + t->fast_bytes;
  uint64_t bytes = 0;
  int err = promote_extent(t, start, base + t->registered_bytes, scratch_region, &bytes);
  if (err) {
    t->promote_errno = err;
    return;
  }
  uint64_t regions = scratch_region;
  err = scan_regions(t, start, start + bytes, &US_SCAN_EMPTY_MARK, &regions);
  if (err) {
    t->promote_errno = err;
    return;
  }
  regions = scratch_region;
  err = scan_regions(t, start, start + bytes, &US_SCAN_ZERO_UNPROTECTED, &regions);
  if (err) {
    t->promote_errno = err;
    return;
  }
  t->fast_bytes += bytes;
  t->promoted_bytes_total += bytes;
}

// Appends [start, end) to t->vec as reported whole.
static int report_whole(us_uffd_tracker* t, uint64_t start, uint64_t end, uint64_t* regions) {
  int err = vec_reserve(t, *regions + 1);
  if (err) return err;
  // SAFETY: vec has room for *regions + 1 entries (reserved above).
  t->vec[*regions].start = start;
  t->vec[*regions].end = end;
  t->vec[*regions].categories = US_PAGE_IS_WRITTEN;
  (*regions)++;
  return 0;
}

// Pages of the sample of a region of `pages` pages (its first `pages`, when partial).
static uint64_t sampled_pages(uint64_t pages) {
  const uint64_t tail = pages % US_HOT_SAMPLE_STRIDE_PAGES;
  return pages / US_HOT_SAMPLE_STRIDE_PAGES * US_HOT_SAMPLE_BLOCK_PAGES + (tail < US_HOT_SAMPLE_BLOCK_PAGES ? tail : US_HOT_SAMPLE_BLOCK_PAGES);
}

static uint64_t us_min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

// Pages of region r inside the fast range: US_REGION_PAGES but for a partial last one.
static uint64_t hot_region_pages(const us_uffd_tracker* t, uint64_t r) {
  const uint64_t fast_pages = t->fast_bytes / US_PAGE_BYTES;
  assert(r * US_REGION_PAGES < fast_pages);
  return us_min_u64(US_REGION_PAGES, fast_pages - r * US_REGION_PAGES);
}

// A region judged by its sample at the next collect (its sample protected, the rest not).
static int hot_sampling(uint8_t left) { return left == US_HOT_SAMPLING || left == US_HOT_RESAMPLING; }

// Runs body for each stride of region r, with [b0, b1) its sample block and
// [b1, b2) the rest of the stride (maybe empty), clipped to the region's
// pages in the fast range. A `return` in body returns from the caller.
#define FOR_EACH_STRIDE(t, r, b0, b1, b2, body)                                                          \
  do {                                                                                                   \
    const uint64_t region_start_ = (uint64_t)(uintptr_t)(t)->base + (r) * US_REGION_PAGES * US_PAGE_BYTES; \
    const uint64_t region_end_ = region_start_ + hot_region_pages((t), (r)) * US_PAGE_BYTES;              \
    for (uint64_t b0 = region_start_; b0 < region_end_; b0 += US_HOT_SAMPLE_STRIDE_PAGES * US_PAGE_BYTES) { \
      const uint64_t b1 = us_min_u64(b0 + US_HOT_SAMPLE_BLOCK_PAGES * US_PAGE_BYTES, region_end_);       \
      const uint64_t b2 = us_min_u64(b0 + US_HOT_SAMPLE_STRIDE_PAGES * US_PAGE_BYTES, region_end_);      \
      body                                                                                               \
    }                                                                                                    \
  } while (0)

// Region r turns hot (or stays so): a lease of its next length, and the one after doubled.
static void hot_start_lease(us_uffd_tracker* t, uint64_t r) {
  const unsigned lease = t->hot_lease[r];
  t->hot_left[r] = (uint8_t)lease;
  t->hot_lease[r] = (uint8_t)(lease * 2 > US_HOT_LEASE_MAX ? US_HOT_LEASE_MAX : lease * 2);
  t->hot_leases_total++;
}

static int cmp_region_start(const void* a, const void* b) {
  const uint64_t x = ((const struct us_page_region*)a)->start, y = ((const struct us_page_region*)b)->start;
  return x < y ? -1 : x > y;
}

// A sampling region's collect. Its sample blocks are scanned first (written
// pages reported, re-protected), and their count judges it against half the
// threshold (US_HOT_KEEP_DIVISOR). The rest of it, unprotected since the
// lease, is reported whole if the region stays hot or is to be sampled
// again, and scanned (re-protected; its unprotected pages reported, a
// superset) if it is dropped. Hot again: only the sample is un-protected (64
// entries, where re-protecting and un-protecting the whole region cost ~0.2
// us per entry, ~110 us a region here). Appends its entries in order.
static int hot_judge_sample(us_uffd_tracker* t, uint64_t r, uint64_t* regions, uint64_t* hot_pages) {
  const uint8_t left = t->hot_left[r];
  const uint64_t first = *regions;
  int err = 0;
  FOR_EACH_STRIDE(t, r, b0, b1, b2, {
    (void)b2;
    err = scan_regions(t, b0, b1, &US_SCAN_WRITTEN_FAST, regions);
    if (err) return err;
  });
  const uint64_t written = region_pages(t, first, *regions);
  const uint64_t pages = hot_region_pages(t, r);
  const uint64_t judged = sampled_pages(pages);
  const int hot = written * US_REGION_PAGES * US_HOT_KEEP_DIVISOR >= (uint64_t)t->hot_written_min * judged;
  const int keep = hot || left == US_HOT_SAMPLING;
  FOR_EACH_STRIDE(t, r, b0, b1, b2, {
    (void)b0;
    if (b1 < b2) err = keep ? report_whole(t, b1, b2, regions) : scan_regions(t, b1, b2, &US_SCAN_WRITTEN_FAST, regions);
    if (err) return err;
  });
  // Blocks, then the rest: into address order (the entries are disjoint).
  // SAFETY: [first, *regions) are entries this call filled, inside t->vec.
  qsort(t->vec + first, (size_t)(*regions - first), sizeof *t->vec, cmp_region_start);
  if (keep) *hot_pages += pages - judged;
  if (hot) {
    hot_start_lease(t, r);
    // A failure leaves sample pages protected: they fault once and are reported anyway.
    FOR_EACH_STRIDE(t, r, b0, b1, b2, {
      (void)b2;
      err = uffd_protect(t->uffd, b0, b1 - b0, 0);
      if (err) t->hot_unprotect_errno = err;
    });
  } else if (keep) {
    // Found cold once: sampled again, as it stands (the sample protected, the rest not).
    t->hot_left[r] = US_HOT_RESAMPLING;
    t->hot_resamples_total++;
  } else {
    t->hot_left[r] = 0;
    t->hot_lease[r] = US_HOT_LEASE_INITIAL;
  }
  return 0;
}

// Tracked regions [r0, r1), scanned in one call; each written enough turns
// hot, and each run of those is un-protected with one ioctl.
static int hot_scan_tracked(us_uffd_tracker* t, uint64_t r0, uint64_t r1, uint64_t* regions) {
  const uint64_t base = (uint64_t)(uintptr_t)t->base;
  const uint64_t region_bytes = (uint64_t)US_REGION_PAGES * US_PAGE_BYTES;
  const uint64_t first = *regions;
  int err = scan_regions(t, base + r0 * region_bytes, base + us_min_u64(r1 * region_bytes, t->fast_bytes), &US_SCAN_WRITTEN_FAST, regions);
  if (err) return err;
  // SAFETY: r1 <= the fast range's regions <= hot_region_capacity (checked by the caller).
  memset(t->hot_count + r0, 0, (size_t)(r1 - r0) * sizeof *t->hot_count);
  for (uint64_t i = first; i < *regions; i++) {
    // SAFETY: i < *regions, entries scan_regions filled and validated (inside [r0, r1), page aligned).
    uint64_t a = (t->vec[i].start - base) / US_PAGE_BYTES, b = (t->vec[i].end - base) / US_PAGE_BYTES;
    while (a < b) {
      const uint64_t reg = a / US_REGION_PAGES;
      const uint64_t stop = us_min_u64((reg + 1) * US_REGION_PAGES, b);
      t->hot_count[reg] += (uint32_t)(stop - a);
      a = stop;
    }
  }
  uint64_t run_from = r0, run_len = 0;
  for (uint64_t r = r0; r <= r1; r++) {
    if (r < r1 && (uint64_t)t->hot_count[r] * US_REGION_PAGES >= (uint64_t)t->hot_written_min * hot_region_pages(t, r)) {
      hot_start_lease(t, r);
      if (run_len == 0) run_from = r;
      run_len++;
      continue;
    }
    if (run_len) {
      // A failure leaves the pages protected: they fault on their first
      // write (as if the region were not hot) and are reported anyway.
      // The run stops at the fast range's end (the tail past it is not ours to un-protect).
      const uint64_t from = run_from * region_bytes;
      const uint64_t to = us_min_u64((run_from + run_len) * region_bytes, t->fast_bytes);
      err = uffd_protect(t->uffd, base + from, to - from, 0);
      if (err) t->hot_unprotect_errno = err;
      run_len = 0;
    }
  }
  return 0;
}

// The fast range with hot regions (seed 002's observation, applied to the
// log-dirty mode: the pages an epoch writes predict the next epoch's). A
// region of 512 pages of which at least hot_written_min (default a quarter)
// were written in an epoch is "hot": it is left unprotected for a lease of
// epochs and every page of it is reported by every collect of the lease, so
// writes to it take no fault. A page reported but not written costs a copy;
// the delta encoder drops it (its content equals the previous version), so
// checkpoints are unchanged. When the lease ends the region is reported
// whole but for its sample (an eighth: US_HOT_SAMPLE_*), which is scanned,
// so re-protected; the region is then "sampling": the next collect judges it
// by the sample (hot_judge_sample).
// Invariant kept: every page of [0, fast_bytes) is either scanned (and
// re-protected) or reported, in every collect, so no write is ever lost; the
// fast scan's precondition holds because an unprotected entry of a hot
// region is exactly what the fast scan counts as written.
// The last region may be partial (a memory of 16.5 regions): it is the part
// inside the fast range, judged in proportion to its size, and it grows when
// promote_tail extends the range (the pages added are protected, or reported
// anyway while the region is hot).
// Appends to t->vec like scan_regions (ascending, disjoint). Returns 0 or an
// errno; a collect that fails may have re-protected pages it did not report,
// as any failed scan may (the caller's chain ends there).
static int scan_fast_hot(us_uffd_tracker* t, uint64_t* regions) {
  const uint64_t base = (uint64_t)(uintptr_t)t->base;
  const uint64_t region_bytes = (uint64_t)US_REGION_PAGES * US_PAGE_BYTES;
  const uint64_t all_regions = (t->fast_bytes + region_bytes - 1) / region_bytes;
  if (all_regions > t->hot_region_capacity) return EIO;
  uint64_t hot_pages = 0;
  int err = 0;
  for (uint64_t r = 0; r < all_regions;) {
    // SAFETY: r < all_regions <= hot_region_capacity (checked above).
    const uint8_t left = t->hot_left[r];
    const uint64_t start = base + r * region_bytes;
    const uint64_t pages = hot_region_pages(t, r);
    if (left > 1 && !hot_sampling(left)) {
      // Mid-lease: every page is reported, nothing is scanned.
      err = report_whole(t, start, start + pages * US_PAGE_BYTES, regions);
      if (err) return err;
      t->hot_left[r]--;
      hot_pages += pages;
      r++;
    } else if (left == 1) {
      // The lease ends: the sample's blocks are scanned (reported as written, protected), the rest reported.
      FOR_EACH_STRIDE(t, r, b0, b1, b2, {
        err = scan_regions(t, b0, b1, &US_SCAN_WRITTEN_FAST, regions);
        if (!err && b1 < b2) err = report_whole(t, b1, b2, regions);
        if (err) return err;
      });
      t->hot_left[r] = US_HOT_SAMPLING;
      hot_pages += pages - sampled_pages(pages);
      r++;
    } else if (hot_sampling(left)) {
      err = hot_judge_sample(t, r, regions, &hot_pages);
      if (err) return err;
      r++;
    } else {
      // A run of tracked regions: one scan.
      const uint64_t r0 = r;
      while (r < all_regions && t->hot_left[r] == 0) r++;
      err = hot_scan_tracked(t, r0, r, regions);
      if (err) return err;
    }
  }
  t->hot_pages_reported_total += hot_pages;
  uint64_t hot_now = 0;
  // SAFETY: r < all_regions <= hot_region_capacity.
  for (uint64_t r = 0; r < all_regions; r++) hot_now += t->hot_left[r] > 0 && !hot_sampling(t->hot_left[r]);
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

// Runs of consecutive set bits in `bits` (whole memory).
static uint64_t bit_runs(const us_uffd_tracker* t, const uint64_t* bits) {
  const uint64_t words = (t->capacity_pages + 63) / 64;
  uint64_t runs = 0, carry = 0;
  for (uint64_t w = 0; w < words; w++) {
    const uint64_t b = bits[w];
    // A run starts at each set bit whose lower neighbour is clear.
    runs += (uint64_t)__builtin_popcountll(b & ~((b << 1) | carry));
    carry = b >> 63;
  }
  return runs;
}

// Sets (wp=1) or clears (wp=0) write protection on the runs of set bits of
// `bits` (whole memory). Returns 0 or an errno.
static int protect_bit_runs(us_uffd_tracker* t, const uint64_t* bits, int wp) {
  const uint64_t base = (uint64_t)(uintptr_t)t->base;
  const uint64_t words = (t->capacity_pages + 63) / 64;
  uint64_t run_lo = 0, run_len = 0;
  for (uint64_t w = 0; w < words; w++) {
    uint64_t b = bits[w];
    while (b) {
      const uint64_t idx = w * 64 + (uint64_t)__builtin_ctzll(b);
      b &= b - 1;
      if (run_len && idx == run_lo + run_len) {
        run_len++;
        continue;
      }
      if (run_len) {
        int err = uffd_protect(t->uffd, base + run_lo * US_PAGE_BYTES, run_len * US_PAGE_BYTES, wp);
        if (err) return err;
      }
      run_lo = idx;
      run_len = 1;
    }
  }
  return run_len ? uffd_protect(t->uffd, base + run_lo * US_PAGE_BYTES, run_len * US_PAGE_BYTES, wp) : 0;
}

// Pins the live store for the scan in progress, if it still takes epochs.
static void scan_pin_live(us_uffd_tracker* t);

// Ends the live epoch (mu held, guest paused): finishes the previous job,
// re-protects the pages un-protected in the epoch, makes a free store live and
// posts the sealed store's job (presave: COWP pre-saving of its kept pages).
// Writes of the tail grown since the last seal made before its registration
// (follow_growth) are listed in t->out[0..*grown). Returns the sealed store's index, or
// -1 with *err set.
static int seal_locked(us_uffd_tracker* t, int presave, int in_place, uint64_t* grown, int* err) {
  *grown = 0;
  *err = 0;
  job_finish(t);
  const int sealed = (int)t->live;
  // Everything that can fail comes before anything that changes the epoch, so a
  // failed seal leaves the live epoch going on: the next store first ...
  const int next = store_take(t);
  if (next < 0) {
    *err = ENOMEM;
    return -1;
  }
  // ... then the tail grown since the last seal (armed_bytes, not this call's
  // growth alone: a failed seal's growth is still to do): pages written before
  // registration are listed, then it is all protected. (A write racing between
  // the scan and the protection, from another thread, would be missed; guests
  // are paused at a safe point here.) Its pre-images are zeros: it did not
  // exist when the epoch began.
  if (t->registered_bytes > t->armed_bytes) {
    const uint64_t base = (uint64_t)(uintptr_t)t->base;
    const uint64_t start = base + t->armed_bytes, end = base + t->registered_bytes;
    if (t->pagemap_fd >= 0) {
      *err = scan_written_peek(t, start, end, grown);
    } else {
      for (uint64_t p = t->armed_bytes / US_PAGE_BYTES; p < t->registered_bytes / US_PAGE_BYTES; p++) t->out[(*grown)++] = (uint32_t)p;
    }
    if (!*err) *err = uffd_protect(t->uffd, start, end - start, 1);
    if (*err) {
      store_unref(t, (uint32_t)next);
      return -1;
    }
  }
  // In place (COWP with the job in the pause, guest stopped) the pages written
  // last epoch stay writable: the job pre-saves the ones it keeps right away
  // and re-protects only the ones it drops. Protecting them all here only for
  // the job to un-protect most of them again cost two page-table walks and,
  // with another thread of the process running, a TLB shootdown each.
  if (!in_place) {
    const uint64_t tp = now_ns();
    // One ioctl per run costs ~1.3 us here; one over the whole memory ~0.16 us
    // per page of it (it walks every entry). Scattered pages take the latter.
    if (bit_runs(t, t->seen) > t->registered_bytes / US_PAGE_BYTES / US_PROTECT_WHOLE_RATIO)
      *err = uffd_protect(t->uffd, (uint64_t)(uintptr_t)t->base, t->registered_bytes, 1);
    else
      *err = protect_bit_runs(t, t->seen, 1);
    t->seal_protect_ns_total += now_ns() - tp;
    if (*err) {
      store_unref(t, (uint32_t)next);
      return -1;
    }
  }
  t->armed_bytes = t->registered_bytes;
  memset(t->seen, 0, (size_t)((t->capacity_pages + 63) / 64) * 8);
  t->live = (uint32_t)next;
  uint32_t* swap = t->live_slot;
  t->live_slot = t->sealed_slot;
  t->sealed_slot = swap;
  if (t->scan) scan_pin_live(t);
  t->job = sealed;
  t->job_phase = US_JOB_SLOTS;
  t->job_presave = presave;
  t->job_in_place = in_place;
  t->job_dense_done = 0;
  t->job_deferred = 0;
  t->job_low = t->job_done = 0;
  t->job_chase = UINT64_MAX;
  __atomic_store_n(&t->job_active, 1, __ATOMIC_RELEASE);
  return sealed;
}

static void wake_handler(us_uffd_tracker* t) {
  uint64_t one = 1;
  // SAFETY: an 8-byte write to our eventfd; a full counter (EAGAIN) still wakes.
  ssize_t w = write(t->wake_fd, &one, sizeof one);
  (void)w;
}

static int check_handler(napi_env env, us_uffd_tracker* t) {
  if (!t->handler_errno) return 1;
  throw_step(env, "ERR_TRACKER", t->handler_step, t->handler_errno, "the fault handler thread failed", -1);
  return 0;
}

// Sync collect: the epoch's written pages, ascending, re-armed. With
// pre-images on, the epoch's log is sealed, its job finished at once (so
// predicted pages found unchanged are left out) and released.
static napi_value collect_sync(napi_env env, us_uffd_tracker* t, napi_value buffer) {
  const uint64_t t0 = now_ns();
  collect_stats_begin(t);
  lock_mu(t);
  if (!check_handler(env, t)) {
    unlock_mu(t);
    return NULL;
  }
  uint64_t old_bytes;
  if (!follow_growth(env, t, buffer, &old_bytes)) {
    unlock_mu(t);
    return NULL;
  }
  uint64_t grown = 0;
  int err = 0;
  const int sealed = seal_locked(t, 0, 0, &grown, &err);
  uint64_t n = grown;
  if (sealed >= 0) {
    job_finish(t);
    const us_store* s = t->stores[sealed];
    // SAFETY: out holds capacity_pages entries; grown + kept pages are distinct registered pages.
    for (uint64_t i = 0; i < s->count; i++)
      if (!(s->pages[i] & US_SLOT_DROPPED)) t->out[n++] = s->pages[i] & US_SLOT_PAGE;
    store_unref(t, (uint32_t)sealed);
  }
  unlock_mu(t);
  if (err) return throw_step(env, "ERR_TRACKER", "collect (re-protect)", err, NULL, -1);
  qsort(t->out, (size_t)n, 4, cmp_u32);
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

static int begin_scan_locked(napi_env env, us_uffd_tracker* t, napi_value image_v, uint64_t bytes);
static int start_scan_thread(napi_env env, us_uffd_tracker* t);

// uffdSeal(handle, buffer, presave: boolean, scan?: {image: Uint8Array, bytes: number} | null, jobInPause?: boolean)
//   -> { log, slots, complete, grownPages, finishedLog, finishedKept, faults, presavedPagesTotal }
// Ends the live epoch. Its pre-image store becomes undo log `log` (no copy),
// held until uffdRelease. A free store becomes live; the writes of the new
// epoch fault into it. The sealed log's job runs in the background (see
// above); with presave (COWP) it pre-saves the log's kept pages for the new
// epoch. With `scan`, a collect scan of the memory as of this instant starts
// (uffdScanPoll): the seal is its start point, so nothing can run between.
// With jobInPause the job runs here, before the guest resumes, but for what
// only reads (left to the handler thread): the checksum and, after an
// in-place pass, the deferred comparisons and Histase. finishedLog is the log
// whose job the seal finished (the previous seal's, or -1), finishedKept its
// final kept count; faults and presavedPagesTotal are the tracker's counters
// as of the seal: a pause reads them here instead of waiting for the lock
// again while the handler thread runs the new job.
static napi_value js_uffd_seal(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) return us_throw(env, "ERR_TRACKER", "uffdSeal(handle, buffer, presave, scan?) needs three arguments");
  us_uffd_tracker* t;
  if (!get_preimage_tracker(env, argv[0], &t, "sealing an undo log")) return NULL;
  bool presave = false;
  if (napi_get_value_bool(env, argv[2], &presave) != napi_ok) return us_throw(env, "ERR_TRACKER", "presave must be a boolean");
  bool job_in_pause = false;
  if (argc >= 5 && napi_get_value_bool(env, argv[4], &job_in_pause) != napi_ok) return us_throw(env, "ERR_TRACKER", "jobInPause must be a boolean");
  napi_value scan_image = NULL;
  double scan_bytes = 0;
  if (argc >= 4) {
    napi_valuetype type;
    US_NAPI_OK(env, napi_typeof(env, argv[3], &type));
    if (type == napi_object) {
      napi_value b;
      US_NAPI_OK(env, napi_get_named_property(env, argv[3], "image", &scan_image));
      US_NAPI_OK(env, napi_get_named_property(env, argv[3], "bytes", &b));
      if (napi_get_value_double(env, b, &scan_bytes) != napi_ok) return us_throw(env, "ERR_TRACKER", "scan.bytes must be a number");
      if (t->scan) return us_throw(env, "ERR_TRACKER", "a collect scan is already in progress");
    }
  }
  const uint64_t t_seal = now_ns();
  lock_mu(t);
  if (!check_handler(env, t)) {
    unlock_mu(t);
    return NULL;
  }
  uint64_t old_bytes;
  if (!follow_growth(env, t, argv[1], &old_bytes)) {
    unlock_mu(t);
    return NULL;
  }
  uint64_t grown = 0;
  int err = 0;
  const int sealed = seal_locked(t, presave, presave && job_in_pause, &grown, &err);
  // The seal finished the previous seal's job (if the handler thread had not):
  // that log's counts are final now, unless it was released since.
  const int finished = sealed >= 0 ? log_index(t, t->sealed_last_id) : -1;
  const double finished_id = finished >= 0 ? t->sealed_last_id : -1;
  const double finished_kept = finished >= 0 ? (double)(t->stores[finished]->count - t->stores[finished]->dropped) : 0;
  if (sealed >= 0) t->sealed_last_id = log_id(t, (uint32_t)sealed);
  // The job in the pause, on this thread, but for the checksum (pure reading, left to the handler
  // thread): when no core is free to run the job beside the guest, doing it there only adds its
  // un-protect ioctls' TLB shootdowns and the chases.
  if (sealed >= 0 && job_in_pause) {
    if (t->job_in_place) job_in_place_pass(t);
    // The rest here too, but for what only reads: the checksum and, after an
    // in-place pass, the deferred comparisons (and Histase, which needs them).
    if (!t->job_deferred) job_run_until(t, UINT64_MAX, 1);
  }
  // In place, a page left writable by a failed re-protect would go untracked:
  // the seal fails (and no collect starts from it).
  const int handler_failed = t->handler_errno != 0;
  int scan_ok = 1;
  if (sealed >= 0 && scan_image && !handler_failed) {
    if (scan_bytes < 0 || scan_bytes > (double)t->registered_bytes || (uint64_t)scan_bytes % US_PAGE_BYTES != 0 || scan_bytes != (double)(uint64_t)scan_bytes) {
      us_throw(env, "ERR_TRACKER", "scan.bytes must be a page multiple no larger than the memory");
      scan_ok = 0;
    } else {
      scan_ok = begin_scan_locked(env, t, scan_image, (uint64_t)scan_bytes);
    }
  }
  const us_store* s = sealed >= 0 ? t->stores[sealed] : NULL;
  const double slots = s ? (double)s->count : 0, complete = s ? store_complete(s) : 0, id = sealed >= 0 ? log_id(t, (uint32_t)sealed) : -1;
  const double faults = (double)t->faults, presaved = (double)t->presaved_total;
  unlock_mu(t);
  if (sealed >= 0) wake_handler(t);
  if (err) return throw_step(env, "ERR_TRACKER", "seal (re-protect)", err, err == ENOMEM ? "no free undo log store (too many logs held)" : NULL, -1);
  t->seals++;
  t->seal_ns_total += now_ns() - t_seal;
  if (handler_failed) {
    check_handler(env, t);
    return NULL;
  }
  if (!scan_ok) return NULL;
  if (scan_image && !start_scan_thread(env, t)) return NULL;
  napi_value out;
  US_NAPI_OK(env, napi_create_object(env, &out));
  if (!us_set_number(env, out, "log", id) || !us_set_number(env, out, "slots", slots) || !us_set_number(env, out, "complete", complete) ||
      !us_set_number(env, out, "grownPages", (double)grown) || !us_set_number(env, out, "finishedLog", finished_id) ||
      !us_set_number(env, out, "finishedKept", finished_kept) || !us_set_number(env, out, "faults", faults) ||
      !us_set_number(env, out, "presavedPagesTotal", presaved))
    return us_throw(env, "ERR_NATIVE_NAPI", "seal");
  return out;
}

// Reads a log id argument and finds its store (mu held); throws otherwise.
static int get_log(napi_env env, us_uffd_tracker* t, napi_value v, int* index) {
  double id = -1;
  if (napi_get_value_double(env, v, &id) != napi_ok) {
    us_throw(env, "ERR_TRACKER", "a log id must be a number");
    return 0;
  }
  *index = log_index(t, id);
  if (*index < 0) {
    us_throw(env, "ERR_TRACKER", "not a held undo log (released, or never sealed)");
    return 0;
  }
  return 1;
}

// uffdRelease(handle, log): the log is no longer needed (its checkpoint was dropped).
static napi_value js_uffd_release(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return us_throw(env, "ERR_TRACKER", "uffdRelease(handle, log) needs two arguments");
  us_uffd_tracker* t;
  if (!get_preimage_tracker(env, argv[0], &t, "releasing an undo log")) return NULL;
  lock_mu(t);
  int index;
  if (!get_log(env, t, argv[1], &index)) {
    unlock_mu(t);
    return NULL;
  }
  // The job's store stays until its job is done (it pre-saves for the live epoch).
  if (index == t->job) job_finish(t);
  store_unref(t, (uint32_t)index);
  unlock_mu(t);
  return NULL;
}

// uffdLogInfo(handle, log, finish: boolean) -> { slots, kept, complete, done }
// kept (slots minus predicted pages found unchanged) is final once done; with
// finish the job is completed first.
static napi_value js_uffd_log_info(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) return us_throw(env, "ERR_TRACKER", "uffdLogInfo(handle, log, finish) needs three arguments");
  us_uffd_tracker* t;
  if (!get_preimage_tracker(env, argv[0], &t, "undo logs")) return NULL;
  bool finish = false;
  if (napi_get_value_bool(env, argv[2], &finish) != napi_ok) return us_throw(env, "ERR_TRACKER", "finish must be a boolean");
  lock_mu(t);
  int index;
  if (!get_log(env, t, argv[1], &index)) {
    unlock_mu(t);
    return NULL;
  }
  if (finish && index == t->job) job_finish(t);
  const us_store* s = t->stores[index];
  const double slots = (double)s->count, kept = (double)(s->count - s->dropped), complete = store_complete(s), done = index != t->job;
  unlock_mu(t);
  napi_value out;
  US_NAPI_OK(env, napi_create_object(env, &out));
  if (!us_set_number(env, out, "slots", slots) || !us_set_number(env, out, "kept", kept) || !us_set_number(env, out, "complete", complete) ||
      !us_set_number(env, out, "done", done))
    return us_throw(env, "ERR_NATIVE_NAPI", "log info");
  return out;
}

// uffdVerify(handle, log) -> 'ok' | 'checksum' | 'incomplete'
// Recomputes the log's checksum (taken by its job when it was sealed) and
// compares. A log whose job was still running is finished first (its
// checksum is then a moment old).
static napi_value js_uffd_verify(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return us_throw(env, "ERR_TRACKER", "uffdVerify(handle, log) needs two arguments");
  us_uffd_tracker* t;
  if (!get_preimage_tracker(env, argv[0], &t, "undo logs")) return NULL;
  lock_mu(t);
  int index;
  if (!get_log(env, t, argv[1], &index)) {
    unlock_mu(t);
    return NULL;
  }
  if (index == t->job) job_finish(t);
  const us_store* s = t->stores[index];
  const char* verdict = !store_complete(s) ? "incomplete" : store_crc_now(s) == s->crc ? "ok" : "checksum";
  unlock_mu(t);
  napi_value out;
  US_NAPI_OK(env, napi_create_string_utf8(env, verdict, NAPI_AUTO_LENGTH, &out));
  return out;
}

// uffdFlipLogBit(handle, log, bit): flips one bit of a log's pre-image data.
// Error injection into a kept checkpoint (seed 003's checkpoint corruption);
// the log's checksum then fails.
static napi_value js_uffd_flip_log_bit(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) return us_throw(env, "ERR_TRACKER", "uffdFlipLogBit(handle, log, bit) needs three arguments");
  us_uffd_tracker* t;
  if (!get_preimage_tracker(env, argv[0], &t, "undo logs")) return NULL;
  double bit = -1;
  if (napi_get_value_double(env, argv[2], &bit) != napi_ok) return us_throw(env, "ERR_TRACKER", "bit must be a number");
  lock_mu(t);
  int index;
  if (!get_log(env, t, argv[1], &index)) {
    unlock_mu(t);
    return NULL;
  }
  if (index == t->job) job_finish(t);
  us_store* s = t->stores[index];
  const double bits = (double)s->data_count * US_PAGE_BYTES * 8;
  if (!(bit >= 0 && bit < bits) || bit != (double)(uint64_t)bit) {
    unlock_mu(t);
    return us_throw(env, "ERR_TRACKER", "bit lies outside the log's pre-images");
  }
  const uint64_t b = (uint64_t)bit;
  // SAFETY: b / 8 < data_count pages, inside the backed part of the reservation.
  s->data[b / 8] ^= (uint8_t)(1u << (b % 8));
  unlock_mu(t);
  return NULL;
}

// Whether live-store slot i was predicted and still equals its pre-image. With mu held, guest paused.
static int live_predicted_unchanged(const us_uffd_tracker* t, uint64_t i) {
  const us_store* s = t->stores[t->live];
  const uint32_t e = s->pages[i];
  if (!(e & US_SLOT_PREDICTED) || i >= s->data_count) return 0;
  const uint64_t idx = e & US_SLOT_PAGE;
  // SAFETY: idx is registered (it entered the store); slot i holds its pre-image.
  return memcmp(t->base + idx * US_PAGE_BYTES, s->data + i * US_PAGE_BYTES, US_PAGE_BYTES) == 0;
}

typedef struct {
  uint32_t page;
  uint32_t slot;
} us_page_slot;

static int cmp_page_slot(const void* a, const void* b) {
  uint32_t x = ((const us_page_slot*)a)->page, y = ((const us_page_slot*)b)->page;
  return x < y ? -1 : x > y;
}

// uffdTakePreimages(handle, into?) -> { pages: Uint32Array, data: Uint8Array, byteLength, complete }
// A copy of the live epoch's pre-images: the pages written since the last
// seal (or collect), ascending, with their contents as of then. Predicted
// pages still equal to their pre-images are left out. Does not re-arm.
// `complete` is false when the store hit preimageBytesMax.
static napi_value js_uffd_take_preimages(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return us_throw(env, "ERR_TRACKER", "uffdTakePreimages(handle, into?) needs a handle");
  us_uffd_tracker* t;
  if (!get_preimage_tracker(env, argv[0], &t, "keeping pre-images")) return NULL;

  // Which slots, in page order, under the lock. The store cannot change
  // between the two locked sections: the guest is paused (this thread is the
  // one that runs it); the job may add pre-saved pages to the live store, but
  // appends only. JS values are created with the lock released (allocation
  // may run GC and finalizers).
  lock_mu(t);
  const us_store* live = t->stores[t->live];
  const uint64_t stored = live->data_count;
  const int complete = store_complete(live);
  const uint64_t armed_bytes = t->registered_bytes;
  us_page_slot* order = (us_page_slot*)malloc((size_t)(stored ? stored : 1) * sizeof *order);
  if (!order) {
    unlock_mu(t);
    return us_throw(env, "ERR_NATIVE_NOMEM", "out of memory for the pre-images");
  }
  uint64_t count = 0;
  for (uint64_t i = 0; i < stored; i++)
    if (!live_predicted_unchanged(t, i)) order[count++] = (us_page_slot){.page = live->pages[i] & US_SLOT_PAGE, .slot = (uint32_t)i};
  unlock_mu(t);
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
  lock_mu(t);
  live = t->stores[t->live];
  for (uint64_t i = 0; i < count; i++) {
    // SAFETY: slot < data_count of the live store (unchanged since the first
    // section but for appends); dst has at least count pages.
    memcpy(dst + i * US_PAGE_BYTES, live->data + (uint64_t)order[i].slot * US_PAGE_BYTES, US_PAGE_BYTES);
    pages[i] = order[i].page;
  }
  unlock_mu(t);
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
// Synchronous pre-saving: the listed pages have their pre-images saved and are
// un-protected at once, so writes to them do not fault. Pages already seen, or
// outside the registered range, are skipped. Guest paused. (COWP's own
// pre-saving runs in the seal's background job.)
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
  lock_mu(t);
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
  unlock_mu(t);
  if (err) return throw_step(env, "ERR_TRACKER", "UFFDIO_WRITEPROTECT (un-protect pre-saved pages)", err, NULL, -1);
  napi_value out;
  US_NAPI_OK(env, napi_create_double(env, (double)saved, &out));
  return out;
}

// uffdRollback(handle, buffer, logs: number[], zeroFromBytes) -> pages restored
// In-place rollback. The live epoch's pre-images are written back first, then
// each log in the order given (newest epoch first), so for a page in several
// the oldest pre-image is what remains; pages at or past zeroFromBytes are
// skipped and that tail is zeroed (it was grown since the checkpoint). Only
// the pages written are un-protected for the copy (runs, one ioctl each) and
// protected again after it, so the copy takes no fault; then the live epoch
// starts afresh. Cost follows the pages restored, not the memory size. The
// guest is paused; mu is held, which is safe because no page written here is
// protected while we write it. A collect scan in progress is stopped first
// (rolled-back pages are not logged, so it could not stay consistent).
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
  if (!is_array) return us_throw(env, "ERR_TRACKER", "logs must be an array of log ids");
  uint32_t log_count = 0;
  US_NAPI_OK(env, napi_get_array_length(env, argv[2], &log_count));
  if (log_count > US_STORES_MAX) return us_throw(env, "ERR_TRACKER", "more logs than can be held");
  napi_value ids[US_STORES_MAX];
  for (uint32_t k = 0; k < log_count; k++) US_NAPI_OK(env, napi_get_element(env, argv[2], k, &ids[k]));
  if (t->scan) scan_stop(t);
  lock_mu(t);
  if (!check_handler(env, t)) {
    unlock_mu(t);
    return NULL;
  }
  uint64_t old_bytes;
  if (!follow_growth(env, t, argv[1], &old_bytes)) {
    unlock_mu(t);
    return NULL;
  }
  job_finish(t);
  int logs[US_STORES_MAX];
  for (uint32_t k = 0; k < log_count; k++) {
    if (!get_log(env, t, ids[k], &logs[k])) {
      unlock_mu(t);
      return NULL;
    }
  }
  us_store* live = t->stores[t->live];
  int complete = store_complete(live);
  for (uint32_t k = 0; k < log_count; k++) complete = complete && store_complete(t->stores[logs[k]]);
  if (!complete) {
    unlock_mu(t);
    return us_throw(env, "ERR_TRACKER_PREIMAGES_INCOMPLETE", "an epoch's pre-images are incomplete (its store overflowed); it cannot be rolled back");
  }
  // The pages to touch, each once: the live epoch's (un-protected now) and the logs'.
  uint64_t restored = 0;
  for (uint64_t i = 0; i < live->count; i++) {
    const uint64_t idx = live->pages[i] & US_SLOT_PAGE;
    if (!bit_get(t->mark, idx)) restored += idx < zero_page;
    bit_set(t->mark, idx);
  }
  for (uint32_t k = 0; k < log_count; k++) {
    const us_store* s = t->stores[logs[k]];
    for (uint64_t i = 0; i < s->count; i++) {
      if (s->pages[i] & US_SLOT_DROPPED) continue;
      const uint64_t idx = s->pages[i] & US_SLOT_PAGE;
      if (!bit_get(t->mark, idx)) restored += idx < zero_page;
      bit_set(t->mark, idx);
    }
  }
  int err = protect_bit_runs(t, t->mark, 0);
  if (!err) {
    for (uint64_t i = 0; i < live->data_count; i++) {
      const uint64_t idx = live->pages[i] & US_SLOT_PAGE;
      // SAFETY: idx < zero_page <= registered pages; slot i holds its pre-image.
      if (idx < zero_page) memcpy(t->base + idx * US_PAGE_BYTES, live->data + i * US_PAGE_BYTES, US_PAGE_BYTES);
    }
    for (uint32_t k = 0; k < log_count; k++) {
      const us_store* s = t->stores[logs[k]];
      for (uint64_t i = 0; i < s->data_count; i++) {
        if (s->pages[i] & US_SLOT_DROPPED) continue;
        const uint64_t idx = s->pages[i] & US_SLOT_PAGE;
        // SAFETY: idx was registered when it entered the store; memory never shrinks.
        if (idx < zero_page) memcpy(t->base + idx * US_PAGE_BYTES, s->data + i * US_PAGE_BYTES, US_PAGE_BYTES);
      }
    }
    if (zero_from < t->registered_bytes) {
      const uint64_t base = (uint64_t)(uintptr_t)t->base;
      err = uffd_protect(t->uffd, base + zero_from, t->registered_bytes - zero_from, 0);
      // SAFETY: [zero_from, registered_bytes) lies inside the store, un-protected just now.
      if (!err) memset(t->base + zero_from, 0, (size_t)(t->registered_bytes - zero_from));
      if (!err) err = uffd_protect(t->uffd, base + zero_from, t->registered_bytes - zero_from, 1);
    }
    if (!err) err = protect_bit_runs(t, t->mark, 1);
  }
  // The tail past zero_from is zeroed and protected: grown since the last seal or not, armed now.
  if (!err && zero_from <= t->armed_bytes) t->armed_bytes = t->registered_bytes;
  // The live epoch starts afresh: nothing un-protected, nothing recorded.
  memset(t->mark, 0, (size_t)((t->capacity_pages + 63) / 64) * 8);
  memset(t->seen, 0, (size_t)((t->capacity_pages + 63) / 64) * 8);
  live->count = live->data_count = live->dropped = 0;
  unlock_mu(t);
  if (err) return throw_step(env, "ERR_TRACKER", "UFFDIO_WRITEPROTECT (in-place rollback)", err, NULL, -1);
  napi_value out;
  US_NAPI_OK(env, napi_create_double(env, (double)restored, &out));
  return out;
}

// ---- collect: a consistent full image while the guest runs (seed 003 §3.1) ----
//
// Started by a seal (its instant t0 is the image's), a scan thread copies the
// memory [0, bytes) into `image` while the guest keeps running (SCANDATA),
// then merges the pre-images of every epoch since t0 over it, the oldest
// pre-image of a page winning (DPS = collect(DP_0, ..., DP_k)):
//   image = collect(DPS, SCANDATA).
// Why this is the memory at t0: every page was protected (or already in the
// live store with its t0 contents) at t0, so a page written since has a
// pre-image in the store of the epoch of its first write, which is its t0
// contents; a page in no store at the moment the merge has finished with the
// live store (under the lock) was not written since t0, so the copy read its
// t0 contents (a copy torn by a racing write belongs to a page that is in a
// store, whose pre-image replaces it). The stores of the epochs since t0 are
// pinned (one reference each) until the scan ends. A predicted slot dropped by
// its job still holds the page's contents at the start of its epoch, so it is
// merged too. A rollback stops the scan (rolled-back pages are not logged).

#define US_SCAN_CHUNK_BYTES ((uint64_t)1 << 20)  // copied between checks for a stop
#define US_SCAN_MERGE_LOCKED_SLOTS 64u            // live-store slots merged per hold of the lock

enum { US_SCAN_COPYING = 1, US_SCAN_MERGING = 2, US_SCAN_DONE = 3, US_SCAN_FAILED = 4 };

typedef struct us_scan {
  napi_env env;
  napi_ref image_ref;       // keeps the destination alive while the thread writes it
  uint8_t* image;
  uint64_t bytes;
  uint32_t pinned[US_STORES_MAX];  // stores of the epochs since t0, oldest first (under mu)
  uint32_t pinned_count;
  int pinning;              // new live stores are pinned (under mu): the merge has not finished
  int phase;                // US_SCAN_*, atomic
  int stop;                 // atomic: stop as soon as possible
  const char* failure;      // why it failed (set under mu, read after the thread ended)
  uint64_t* merged;         // pages already taken from a store (scan thread only)
  uint32_t* stored;         // pages of the image holding a non-zero byte, when done
  uint64_t stored_count;
  pthread_t thread;
  int thread_started;
  uint64_t copy_ns, merge_ns, merged_pages;
} us_scan;

static void scan_pin_live(us_uffd_tracker* t) {
  us_scan* sc = t->scan;
  if (!sc || !sc->pinning) return;
  if (sc->pinned_count >= US_STORES_MAX) {
    sc->failure = "the collect spanned more epochs than undo logs can be held";
    sc->pinning = 0;
    __atomic_store_n(&sc->stop, 1, __ATOMIC_RELEASE);
    return;
  }
  t->stores[t->live]->refs++;
  sc->pinned[sc->pinned_count++] = t->live;
}

// Copies into the image the pre-images of slots [from, to) of s whose page is
// not merged yet. The scan thread only.
static void scan_merge_slots(us_uffd_tracker* t, us_scan* sc, const us_store* s, uint64_t from, uint64_t to) {
  const uint64_t pages = sc->bytes / US_PAGE_BYTES;
  (void)t;
  for (uint64_t i = from; i < to; i++) {
    // The job may set flags of this slot concurrently; the page bits stay.
    const uint64_t idx = __atomic_load_n(&s->pages[i], __ATOMIC_RELAXED) & US_SLOT_PAGE;
    if (idx >= pages || bit_get(sc->merged, idx)) continue;
    // SAFETY: idx < pages, inside the image; slot i < data_count holds a pre-image (stores do not change data once written).
    memcpy(sc->image + idx * US_PAGE_BYTES, s->data + i * US_PAGE_BYTES, US_PAGE_BYTES);
    bit_set(sc->merged, idx);
    sc->merged_pages++;
  }
}

static void* scan_main(void* arg) {
  us_uffd_tracker* t = (us_uffd_tracker*)arg;
  us_scan* sc = t->scan;  // freed only after this thread is joined
  uint64_t t0 = now_ns();
  for (uint64_t off = 0; off < sc->bytes; off += US_SCAN_CHUNK_BYTES) {
    if (__atomic_load_n(&sc->stop, __ATOMIC_ACQUIRE)) goto stopped;
    const uint64_t n = sc->bytes - off < US_SCAN_CHUNK_BYTES ? sc->bytes - off : US_SCAN_CHUNK_BYTES;
    // SAFETY: [off, off + n) < bytes <= the memory's size at t0; memory never
    // shrinks and its mapping outlives the tracker's threads (JS holds the
    // memory; dispose stops the scan first). The guest may be writing these
    // bytes: such pages are in a store and replaced by the merge. The image
    // holds at least `bytes` (checked at the start; image_ref keeps it alive).
    memcpy(sc->image + off, t->base + off, (size_t)n);
  }
  sc->copy_ns = now_ns() - t0;
  t0 = now_ns();
  __atomic_store_n(&sc->phase, US_SCAN_MERGING, __ATOMIC_RELEASE);
  for (uint32_t i = 0;; i++) {
    lock_mu(t);
    if (__atomic_load_n(&sc->stop, __ATOMIC_ACQUIRE) || i >= sc->pinned_count) {
      unlock_mu(t);
      goto stopped;
    }
    const uint32_t index = sc->pinned[i];
    us_store* s = t->stores[index];
    if (!store_complete(s)) {
      sc->failure = "an epoch's pre-images overflowed their store";
      unlock_mu(t);
      goto stopped;
    }
    uint64_t m = 0;
    // The live store grows while the guest runs: merged under the lock, a
    // piece at a time; once caught up, the image is consistent and the scan
    // stops pinning. If it is sealed meanwhile, the rest is final: merged
    // without the lock, and the next pinned store follows.
    while (index == t->live) {
      uint64_t to = m + US_SCAN_MERGE_LOCKED_SLOTS;
      if (to > s->data_count) to = s->data_count;
      scan_merge_slots(t, sc, s, m, to);
      m = to;
      if (m == s->count) {
        sc->pinning = 0;
        unlock_mu(t);
        goto merged;
      }
      unlock_mu(t);
      lock_mu(t);
      if (__atomic_load_n(&sc->stop, __ATOMIC_ACQUIRE) || !store_complete(s)) {
        if (!sc->failure && !store_complete(s)) sc->failure = "an epoch's pre-images overflowed their store";
        unlock_mu(t);
        goto stopped;
      }
    }
    const uint64_t end = s->data_count;  // sealed: final
    unlock_mu(t);
    scan_merge_slots(t, sc, s, m, end);
  }
merged:
  sc->merge_ns = now_ns() - t0;
  {
    const uint64_t pages = sc->bytes / US_PAGE_BYTES;
    sc->stored = (uint32_t*)malloc((size_t)(pages ? pages : 1) * 4);
    if (!sc->stored) {
      sc->failure = "out of memory for the stored page list";
      goto stopped;
    }
    for (uint64_t p = 0; p < pages; p++)
      // SAFETY: p < pages, inside the image.
      if (!us_page_is_zero(sc->image + p * US_PAGE_BYTES)) sc->stored[sc->stored_count++] = (uint32_t)p;
  }
  __atomic_store_n(&sc->phase, US_SCAN_DONE, __ATOMIC_RELEASE);
  return NULL;
stopped:
  if (!sc->failure) sc->failure = "stopped";
  __atomic_store_n(&sc->phase, US_SCAN_FAILED, __ATOMIC_RELEASE);
  return NULL;
}

// Sets up a scan at this seal (mu held; the thread starts after the unlock).
static int begin_scan_locked(napi_env env, us_uffd_tracker* t, napi_value image_v, uint64_t bytes) {
  bool is_ta = false;
  if (napi_is_typedarray(env, image_v, &is_ta) != napi_ok || !is_ta) {
    us_throw(env, "ERR_TRACKER", "scan.image must be a Uint8Array");
    return 0;
  }
  napi_typedarray_type type;
  size_t length = 0;
  void* data = NULL;
  if (napi_get_typedarray_info(env, image_v, &type, &length, &data, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    us_throw(env, "ERR_TRACKER", "scan.image must be a Uint8Array");
    return 0;
  }
  if ((uint64_t)length < bytes) {
    us_throw(env, "ERR_TRACKER", "scan.image is smaller than scan.bytes");
    return 0;
  }
  us_scan* sc = (us_scan*)calloc(1, sizeof *sc);
  if (!sc) {
    us_throw(env, "ERR_NATIVE_NOMEM", "out of memory for a scan");
    return 0;
  }
  sc->merged = (uint64_t*)calloc((size_t)((bytes / US_PAGE_BYTES + 63) / 64 + 1), 8);
  if (!sc->merged || napi_create_reference(env, image_v, 1, &sc->image_ref) != napi_ok) {
    free(sc->merged);
    free(sc);
    us_throw(env, "ERR_NATIVE_NOMEM", "out of memory for a scan");
    return 0;
  }
  sc->env = env;
  // SAFETY: data points to the typed array's `length` >= bytes bytes, kept alive by image_ref until scan_stop.
  sc->image = (uint8_t*)data;
  sc->bytes = bytes;
  sc->pinning = 1;
  sc->phase = US_SCAN_COPYING;
  t->scan = sc;
  scan_pin_live(t);
  return 1;
}

// Stops the scan (if any), joins its thread, unpins its stores. JS thread, mu not held.
static void scan_stop(us_uffd_tracker* t) {
  us_scan* sc = t->scan;
  if (!sc) return;
  __atomic_store_n(&sc->stop, 1, __ATOMIC_RELEASE);
  if (sc->thread_started) pthread_join(sc->thread, NULL);
  lock_mu(t);
  for (uint32_t i = 0; i < sc->pinned_count; i++) store_unref(t, sc->pinned[i]);
  t->scan = NULL;
  unlock_mu(t);
  if (sc->image_ref) napi_delete_reference(sc->env, sc->image_ref);
  free(sc->merged);
  free(sc->stored);
  free(sc);
}

static int start_scan_thread(napi_env env, us_uffd_tracker* t) {
  // SAFETY: t and t->scan outlive the thread: scan_stop joins it before freeing either.
  int err = pthread_create(&t->scan->thread, NULL, scan_main, t);
  if (err) {
    scan_stop(t);
    throw_step(env, "ERR_TRACKER", "pthread_create (collect scan)", err, NULL, -1);
    return 0;
  }
  t->scan->thread_started = 1;
  return 1;
}

static const char* scan_phase_name(int phase) {
  switch (phase) {
    case US_SCAN_COPYING: return "copying";
    case US_SCAN_MERGING: return "merging";
    case US_SCAN_DONE: return "done";
    default: return "failed";
  }
}

// uffdScanPoll(handle) -> 'none' | 'copying' | 'merging' | 'done' | 'failed'
static napi_value js_uffd_scan_poll(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return us_throw(env, "ERR_TRACKER", "uffdScanPoll(handle) needs a handle");
  us_uffd_tracker* t;
  if (!get_preimage_tracker(env, argv[0], &t, "collect scans")) return NULL;
  const char* phase = t->scan ? scan_phase_name(__atomic_load_n(&t->scan->phase, __ATOMIC_ACQUIRE)) : "none";
  napi_value out;
  US_NAPI_OK(env, napi_create_string_utf8(env, phase, NAPI_AUTO_LENGTH, &out));
  return out;
}

// uffdScanEnd(handle) -> { storedPages, copyMs, mergeMs, mergedPages, epochs }
// Once the scan is done: the image holds the memory at its seal; storedPages
// lists its pages with a non-zero byte (what a full checkpoint stores).
// Unpins the stores. A failed scan throws why.
static napi_value js_uffd_scan_end(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return us_throw(env, "ERR_TRACKER", "uffdScanEnd(handle) needs a handle");
  us_uffd_tracker* t;
  if (!get_preimage_tracker(env, argv[0], &t, "collect scans")) return NULL;
  us_scan* sc = t->scan;
  if (!sc) return us_throw(env, "ERR_TRACKER", "no collect scan in progress");
  const int phase = __atomic_load_n(&sc->phase, __ATOMIC_ACQUIRE);
  if (phase != US_SCAN_DONE && phase != US_SCAN_FAILED) return us_throw(env, "ERR_TRACKER", "the collect scan is still running");
  pthread_join(sc->thread, NULL);
  sc->thread_started = 0;
  if (phase == US_SCAN_FAILED) {
    char message[200];
    snprintf(message, sizeof message, "the collect scan failed: %s", sc->failure ? sc->failure : "unknown");
    scan_stop(t);
    return us_throw(env, "ERR_TRACKER_SCAN", message);
  }
  // The image is consistent only if every write since the scan began was logged.
  lock_mu(t);
  const int handler_ok = check_handler(env, t);
  unlock_mu(t);
  if (!handler_ok) {
    scan_stop(t);
    return NULL;
  }
  napi_value out, pages;
  pages = us_u32_array(env, sc->stored, (size_t)sc->stored_count);
  const double copy_ms = (double)sc->copy_ns / 1e6, merge_ms = (double)sc->merge_ns / 1e6, merged = (double)sc->merged_pages,
               epochs = (double)sc->pinned_count;
  scan_stop(t);
  if (!pages) return NULL;
  US_NAPI_OK(env, napi_create_object(env, &out));
  US_NAPI_OK(env, napi_set_named_property(env, out, "storedPages", pages));
  if (!us_set_number(env, out, "copyMs", copy_ms) || !us_set_number(env, out, "mergeMs", merge_ms) ||
      !us_set_number(env, out, "mergedPages", merged) || !us_set_number(env, out, "epochs", epochs))
    return us_throw(env, "ERR_NATIVE_NAPI", "scan result");
  return out;
}

// uffdScanAbort(handle): stops a collect scan (if any); idempotent.
static napi_value js_uffd_scan_abort(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return us_throw(env, "ERR_TRACKER", "uffdScanAbort(handle) needs a handle");
  us_uffd_tracker* t;
  if (!get_preimage_tracker(env, argv[0], &t, "collect scans")) return NULL;
  scan_stop(t);
  return NULL;
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
  lock_mu(t);
  t->histase = enabled;
  t->histase_alpha = (float)alpha;
  unlock_mu(t);
  return NULL;
}

// uffdSetDense(handle, keptMinPages): COWP's dense regions (job_dense_region):
// a region with at least this many of its 512 pages kept in an epoch is
// pre-saved whole for the next; 0 turns them off.
static napi_value js_uffd_set_dense(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return us_throw(env, "ERR_TRACKER", "uffdSetDense(handle, keptMinPages) needs two arguments");
  us_uffd_tracker* t;
  if (!get_preimage_tracker(env, argv[0], &t, "dense regions")) return NULL;
  double pages = -1;
  if (napi_get_value_double(env, argv[1], &pages) != napi_ok || !(pages >= 0 && pages <= US_REGION_PAGES) || pages != (double)(uint32_t)pages)
    return us_throw(env, "ERR_TRACKER", "keptMinPages must be an integer from 0 to 512");
  lock_mu(t);
  // The running job counts kept pages by the setting it started with: finish it, then start clean.
  job_finish(t);
  t->dense_min = (uint32_t)pages;
  // SAFETY: region_kept has region_capacity entries.
  if (t->region_kept) memset(t->region_kept, 0, (size_t)t->region_capacity * sizeof *t->region_kept);
  if (t->region_count) memset(t->region_count, 0, (size_t)t->region_capacity * sizeof *t->region_count);
  if (t->region_state) memset(t->region_state, 0, (size_t)t->region_capacity);
  unlock_mu(t);
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
  if (t->mode == US_MODE_SYNC) lock_mu(t);
  uint64_t live_count = 0, live_data = 0, live_overflow = 0, store_bytes = 0, free_stores = 0;
  if (t->mode == US_MODE_SYNC && t->stores_allocated) {
    const us_store* live = t->stores[t->live];
    live_count = live->count;
    live_data = live->data_count;
    live_overflow = !store_complete(live);
    for (uint32_t i = 0; i < t->stores_allocated; i++) store_bytes += t->stores[i]->touched * US_PAGE_BYTES;
    free_stores = free_store_count(t);
  }
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
      {"hotResamplesTotal", (double)t->hot_resamples_total},
      {"hotPagesReportedTotal", (double)t->hot_pages_reported_total},
      {"hotUnprotectErrno", (double)t->hot_unprotect_errno},
      {"faults", (double)t->faults},
      {"faultNsTotal", (double)t->fault_ns_total},
      {"faultNsMax", (double)t->fault_ns_max},
      {"duplicateFaultMessages", (double)t->duplicate_messages},
      {"pendingPages", (double)live_count},
      {"preimagePages", (double)live_data},
      {"preimageStoreBytes", (double)store_bytes},
      {"preimageOverflow", (double)live_overflow},
      {"handlerErrno", (double)t->handler_errno},
      {"presavedPagesTotal", (double)t->presaved_total},
      {"histasePagesTotal", (double)t->histase_total},
      {"predictedWrittenTotal", (double)t->predicted_written_total},
      {"predictedUnwrittenTotal", (double)t->predicted_unwritten_total},
      {"dirtyPagesTotal", (double)t->dirty_total},
      {"reprotectedPagesTotal", (double)t->reprotected_total},
      {"denseRegionsTotal", (double)t->dense_regions_total},
      {"densePresavedPagesTotal", (double)t->dense_presaved_total},
      {"undoStores", (double)t->stores_allocated},
      {"undoStoresHeld", (double)(t->stores_allocated - free_stores)},
      {"jobSlotsTotal", (double)t->job_slots_total},
      {"jobNsTotal", (double)t->job_ns_total},
      {"sealWaitNsTotal", (double)t->seal_wait_ns_total},
      {"jobChases", (double)t->job_chases},
      {"seals", (double)t->seals},
      {"faultUnprotectNsTotal", (double)t->unprotect_ns_total},
      {"sealNsTotal", (double)t->seal_ns_total},
      {"sealProtectNsTotal", (double)t->seal_protect_ns_total},
  };
  // The first 17 fields apply to both modes (the fast-scan and hot ones are 0
  // in sync mode); the rest are the sync handler's.
  size_t field_count = t->mode == US_MODE_SYNC ? sizeof fields / sizeof fields[0] : 17;
  if (t->mode == US_MODE_SYNC) unlock_mu(t);
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
  if (!us_register(env, exports, "uffdSetDense", js_uffd_set_dense)) return NULL;
  if (!us_register(env, exports, "uffdRollback", js_uffd_rollback)) return NULL;
  if (!us_register(env, exports, "uffdSetHot", js_uffd_set_hot)) return NULL;
  if (!us_register(env, exports, "uffdSeal", js_uffd_seal)) return NULL;
  if (!us_register(env, exports, "uffdRelease", js_uffd_release)) return NULL;
  if (!us_register(env, exports, "uffdLogInfo", js_uffd_log_info)) return NULL;
  if (!us_register(env, exports, "uffdVerify", js_uffd_verify)) return NULL;
  if (!us_register(env, exports, "uffdFlipLogBit", js_uffd_flip_log_bit)) return NULL;
  if (!us_register(env, exports, "uffdScanPoll", js_uffd_scan_poll)) return NULL;
  if (!us_register(env, exports, "uffdScanEnd", js_uffd_scan_end)) return NULL;
  if (!us_register(env, exports, "uffdScanAbort", js_uffd_scan_abort)) return NULL;
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
  if (!us_register(env, exports, "uffdSetDense", js_uffd_unsupported)) return NULL;
  if (!us_register(env, exports, "uffdRollback", js_uffd_unsupported)) return NULL;
  if (!us_register(env, exports, "uffdSetHot", js_uffd_unsupported)) return NULL;
  static const char* const more[] = {"uffdSeal", "uffdRelease", "uffdLogInfo", "uffdVerify", "uffdFlipLogBit", "uffdScanPoll", "uffdScanEnd", "uffdScanAbort"};
  for (size_t i = 0; i < sizeof more / sizeof more[0]; i++)
    if (!us_register(env, exports, more[i], js_uffd_unsupported)) return NULL;
  return exports;
}

#endif
