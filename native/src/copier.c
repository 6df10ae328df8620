// A page copier: a helper thread that gathers a dirty set into a staging
// buffer while the JS thread captures the rest of a paused guest's state, then
// both threads finish the copy together. The pause of an epoch is then its
// collect plus about half the copy, instead of collect + copy + state.
//
//   copierCreate() -> handle (a napi external; its thread starts on first use)
//   copierGatherStart(handle, memory, pageIndices, packed)
//       Checks every index, copies the list, pins memory and packed, and
//       lets the helper start: packed[i*4096..] = memory page pageIndices[i].
//   copierGatherJoin(handle) -> pages the helper copied
//       The JS thread copies what the helper has not taken, waits for the
//       helper's last chunk, and unpins. After it returns every page is copied.
//   copierClose(handle)  stops and joins the thread (idempotent; the finalizer too)
//
// Inside the addon the same copier serves C callers (us_copier_new,
// us_copier_gather, us_copier_free): the rollback's in-place pre-save gathers
// an epoch's pages into its undo store with it (native/src/uffd.c).
//
// The two threads take chunks from one atomic cursor. Start and join hold the
// mutex while they change the job, and neither proceeds while the helper is
// inside a job, so the helper never reads one job's pointers with another's
// cursor. Without pthreads (or when the thread cannot be created) join copies
// everything on the JS thread: same result, no overlap.
#include "addon.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#ifdef __linux__
#include <pthread.h>
#include <sched.h>
#endif

// Pages per chunk taken from the cursor: 64 KiB, about 10 µs of copying, so
// the last chunk in flight delays the join by little.
#define COPIER_CHUNK_PAGES 16u

struct us_copier {
  // The job (written under mu by the JS thread while the helper is not busy).
  uint8_t* memory;
  uint8_t* packed;
  uint32_t* pages;  // owned copy of a JS page list
  size_t pages_cap;
  const uint32_t* job_pages;  // the job's list: `pages`, or a C caller's (stable until the gather returns)
  uint32_t job_mask;          // page index = job_pages[i] & job_mask (a C caller's list may carry flags)
  uint32_t count;
  uint32_t cursor;         // next page to take (atomic)
  uint32_t helper_pages;   // pages the helper copied in this job (atomic)
  uint64_t generation;     // bumped per job
  napi_ref memory_ref;     // keep the two stores alive between start and join
  napi_ref packed_ref;
  int in_job;              // between start and join (JS thread only)
  napi_env env;
#ifdef __linux__
  pthread_mutex_t mu;
  pthread_cond_t job_cv;   // helper waits for a job or for stop
  pthread_cond_t idle_cv;  // JS thread waits for the helper to leave a job
  pthread_t thread;
  int thread_started;
  int thread_failed;       // pthread_create failed once: copy on the JS thread
  int helper_busy;         // helper is inside a job (under mu; read atomically to spin)
  uint64_t helper_seen;    // the last generation the helper took
  int stop;
#endif
  int closed;
};

// Copies chunks until the cursor passes the end; returns the pages copied.
static uint32_t copy_chunks(us_copier* c, uint8_t* memory, uint8_t* packed, const uint32_t* pages, uint32_t mask, uint32_t count) {
  uint32_t copied = 0;
  for (;;) {
    const uint32_t first = __atomic_fetch_add(&c->cursor, COPIER_CHUNK_PAGES, __ATOMIC_RELAXED);
    if (first >= count) return copied;
    const uint32_t end = count - first < COPIER_CHUNK_PAGES ? count : first + COPIER_CHUNK_PAGES;
    for (uint32_t i = first; i < end; i++) {
      // SAFETY: start checked pages[i] < the memory's page count and that
      // packed holds `count` pages (a C caller guarantees the same); both
      // stores are pinned by references (a C caller holds them) and the guest
      // is stopped (no grow, no detach) until join returns.
      memcpy(packed + (size_t)i * US_PAGE_BYTES, memory + (size_t)(pages[i] & mask) * US_PAGE_BYTES, US_PAGE_BYTES);
    }
    copied += end - first;
  }
}

#ifdef __linux__
static void* copier_main(void* arg) {
  us_copier* c = (us_copier*)arg;
  pthread_mutex_lock(&c->mu);
  for (;;) {
    while (!c->stop && c->helper_seen == c->generation) pthread_cond_wait(&c->job_cv, &c->mu);
    if (c->stop) break;
    c->helper_seen = c->generation;
    __atomic_store_n(&c->helper_busy, 1, __ATOMIC_RELEASE);
    uint8_t* memory = c->memory;
    uint8_t* packed = c->packed;
    const uint32_t* pages = c->job_pages;
    const uint32_t mask = c->job_mask;
    const uint32_t count = c->count;
    pthread_mutex_unlock(&c->mu);
    // A late wake-up finds the cursor past the end and copies nothing.
    const uint32_t copied = copy_chunks(c, memory, packed, pages, mask, count);
    __atomic_fetch_add(&c->helper_pages, copied, __ATOMIC_RELAXED);
    pthread_mutex_lock(&c->mu);
    __atomic_store_n(&c->helper_busy, 0, __ATOMIC_RELEASE);
    pthread_cond_signal(&c->idle_cv);
  }
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

// Waits (mu held) until the helper is outside any job. It leaves a job a few
// microseconds after the cursor runs out, so spin briefly before sleeping.
static void wait_helper_idle_locked(us_copier* c) {
  if (!__atomic_load_n(&c->helper_busy, __ATOMIC_ACQUIRE)) return;
  pthread_mutex_unlock(&c->mu);
  for (int spins = 0; spins < 20000 && __atomic_load_n(&c->helper_busy, __ATOMIC_ACQUIRE); spins++) sched_yield();
  pthread_mutex_lock(&c->mu);
  while (c->helper_busy) pthread_cond_wait(&c->idle_cv, &c->mu);
}
#endif

static void release_refs(us_copier* c) {
  if (c->memory_ref) napi_delete_reference(c->env, c->memory_ref);
  if (c->packed_ref) napi_delete_reference(c->env, c->packed_ref);
  c->memory_ref = c->packed_ref = NULL;
}

static void copier_close(us_copier* c) {
  if (c->closed) return;
  c->closed = 1;
#ifdef __linux__
  if (c->thread_started) {
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_signal(&c->job_cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    c->thread_started = 0;
  }
#endif
}

void us_copier_free(us_copier* c) {
  if (!c) return;
  copier_close(c);
#ifdef __linux__
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->job_cv);
  pthread_cond_destroy(&c->idle_cv);
#endif
  free(c->pages);
  free(c);
}

static void copier_finalize(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  // The references are not deleted here: a finalizer runs while the env tears
  // down or the handle is collected, when the stores are released with it.
  us_copier_free((us_copier*)data);
}

us_copier* us_copier_new(void) {
  us_copier* c = (us_copier*)calloc(1, sizeof *c);
  if (!c) return NULL;
#ifdef __linux__
  int err = pthread_mutex_init(&c->mu, NULL);
  if (!err) err = pthread_cond_init(&c->job_cv, NULL);
  if (!err) err = pthread_cond_init(&c->idle_cv, NULL);
  if (err) {
    free(c);
    return NULL;
  }
#endif
  return c;
}

static void start_job_locked(us_copier* c, uint8_t* memory, uint8_t* packed, const uint32_t* pages, uint32_t mask, uint32_t count);
static void join_job(us_copier* c);

void us_copier_gather(us_copier* c, uint8_t* memory, uint8_t* packed, const uint32_t* pages, uint32_t mask, uint32_t count) {
  assert(!c->in_job && !c->closed);
#ifdef __linux__
  pthread_mutex_lock(&c->mu);
  wait_helper_idle_locked(c);
#endif
  start_job_locked(c, memory, packed, pages, mask, count);
  join_job(c);
}

static int get_copier(napi_env env, napi_value v, us_copier** out) {
  void* data = NULL;
  if (!us_get_external(env, v, "copier", &data)) return 0;
  *out = (us_copier*)data;
  if ((*out)->closed) {
    us_throw(env, "ERR_NATIVE_ARG", "the copier is closed");
    return 0;
  }
  return 1;
}

static napi_value js_copier_create(napi_env env, napi_callback_info info) {
  (void)info;
  us_copier* c = us_copier_new();
  if (!c) return us_throw(env, "ERR_NATIVE_NOMEM", "out of memory for a copier (or its mutex)");
  c->env = env;
  napi_value handle;
  if (napi_create_external(env, c, copier_finalize, NULL, &handle) != napi_ok) {
    copier_finalize(env, c, NULL);
    return us_throw(env, "ERR_NATIVE_NAPI", "napi_create_external failed");
  }
  return handle;
}

// Publishes a job and wakes the helper (starting it on first use). With mu
// held and the helper idle; unlocks mu.
static void start_job_locked(us_copier* c, uint8_t* memory, uint8_t* packed, const uint32_t* pages, uint32_t mask, uint32_t count) {
  c->memory = memory;
  c->packed = packed;
  c->job_pages = pages;
  c->job_mask = mask;
  c->count = count;
  __atomic_store_n(&c->cursor, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&c->helper_pages, 0, __ATOMIC_RELAXED);
  c->generation++;
  c->in_job = 1;
#ifdef __linux__
  if (!c->thread_started && !c->thread_failed && count > COPIER_CHUNK_PAGES) {
    // SAFETY: c outlives the thread: copier_close joins it before the finalizer frees c.
    int err = pthread_create(&c->thread, NULL, copier_main, c);
    if (err) c->thread_failed = 1;  // the caller's thread copies everything at join
    else c->thread_started = 1;
  }
  if (c->thread_started) pthread_cond_signal(&c->job_cv);
  pthread_mutex_unlock(&c->mu);
#endif
}

static napi_value js_copier_gather_start(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) return us_throw(env, "ERR_NATIVE_ARG", "expected (copier, memory, pageIndices, packed)");
  us_copier* c;
  if (!get_copier(env, argv[0], &c)) return NULL;
  if (c->in_job) return us_throw(env, "ERR_NATIVE_ARG", "copierGatherStart while a gather is in progress (join it first)");
  uint8_t *memory, *packed;
  size_t memory_len, packed_len, count;
  uint32_t* pages;
  if (!us_get_bytes(env, argv[1], &memory, &memory_len)) return NULL;
  if (!us_get_u32_array(env, argv[2], &pages, &count, "ERR_NATIVE_ARG", "expected a Uint32Array of page indices")) return NULL;
  if (!us_get_bytes(env, argv[3], &packed, &packed_len)) return NULL;
  if (count > packed_len / US_PAGE_BYTES) return us_throw(env, "ERR_NATIVE_RANGE", "packed buffer is smaller than the page list");
  if (count > UINT32_MAX - COPIER_CHUNK_PAGES) return us_throw(env, "ERR_NATIVE_RANGE", "page list too long");
  const size_t memory_pages = memory_len / US_PAGE_BYTES;
  for (size_t i = 0; i < count; i++) {
    // SAFETY: i < count, inside the typed array (no JS runs in this loop).
    if (pages[i] >= memory_pages) return us_throw(env, "ERR_NATIVE_RANGE", "page index past the end of memory");
  }
#ifdef __linux__
  pthread_mutex_lock(&c->mu);
  wait_helper_idle_locked(c);
#endif
  if (count > c->pages_cap) {
    uint32_t* grown = (uint32_t*)realloc(c->pages, count * sizeof *pages);
    if (!grown) {
#ifdef __linux__
      pthread_mutex_unlock(&c->mu);
#endif
      return us_throw(env, "ERR_NATIVE_NOMEM", "out of memory for a copier's page list");
    }
    c->pages = grown;
    c->pages_cap = count;
  }
  // SAFETY: c->pages holds pages_cap >= count entries; the JS list may move or
  // die once we return, the copy does not.
  if (count) memcpy(c->pages, pages, count * sizeof *pages);
  if (napi_create_reference(env, argv[1], 1, &c->memory_ref) != napi_ok ||
      napi_create_reference(env, argv[3], 1, &c->packed_ref) != napi_ok) {
    release_refs(c);
#ifdef __linux__
    pthread_mutex_unlock(&c->mu);
#endif
    return us_throw(env, "ERR_NATIVE_NAPI", "napi_create_reference failed");
  }
  start_job_locked(c, memory, packed, c->pages, UINT32_MAX, (uint32_t)count);
  return NULL;
}

// Copies what the helper has not taken and waits for its last chunk.
static void join_job(us_copier* c) {
  copy_chunks(c, c->memory, c->packed, c->job_pages, c->job_mask, c->count);
#ifdef __linux__
  pthread_mutex_lock(&c->mu);
  wait_helper_idle_locked(c);
  pthread_mutex_unlock(&c->mu);
#endif
  c->in_job = 0;
}

// Joins and unpins. JS thread, with a gather in progress.
static void finish_gather(us_copier* c) {
  join_job(c);
  release_refs(c);
}

static napi_value js_copier_gather_join(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return us_throw(env, "ERR_NATIVE_ARG", "expected (copier)");
  us_copier* c;
  if (!get_copier(env, argv[0], &c)) return NULL;
  if (!c->in_job) return us_throw(env, "ERR_NATIVE_ARG", "copierGatherJoin without a gather in progress");
  finish_gather(c);
  napi_value out;
  US_NAPI_OK(env, napi_create_uint32(env, __atomic_load_n(&c->helper_pages, __ATOMIC_RELAXED), &out));
  return out;
}

static napi_value js_copier_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void* data = NULL;
  if (argc < 1) return us_throw(env, "ERR_NATIVE_ARG", "expected a copier handle");
  if (!us_get_external(env, argv[0], "copier", &data)) return NULL;
  us_copier* c = (us_copier*)data;
  // Finish the copy first: the caller's buffers must not be written after close.
  if (c->in_job) finish_gather(c);
  copier_close(c);
  return NULL;
}

napi_value us_init_copier(napi_env env, napi_value exports) {
  if (!us_register(env, exports, "copierCreate", js_copier_create)) return NULL;
  if (!us_register(env, exports, "copierGatherStart", js_copier_gather_start)) return NULL;
  if (!us_register(env, exports, "copierGatherJoin", js_copier_gather_join)) return NULL;
  if (!us_register(env, exports, "copierClose", js_copier_close)) return NULL;
  return exports;
}
