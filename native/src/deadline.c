// Deadline flags: a timer thread sets a 32-bit flag when a deadline passes,
// so the guest's thread asks "is an epoch due?" with one load instead of a
// clock read. performance.now() costs ~60 ns here; a reactor answering
// ~450,000 requests a second and asking after each one spent ~3 % of its run
// time on the question (docs/benchmarks.md, "The clock read per request").
//
//   deadlineCreate() -> a 4-byte ArrayBuffer over native memory; its Int32 is
//       1 once the armed deadline has passed, else 0. null when this build
//       has no timer thread (the caller then reads the clock itself).
//   deadlineArm(buffer, delayMs)   flag = 0 now and = 1 at now + delayMs
//                                  (at once when delayMs <= 0; never when
//                                  it is over ~31 years, or Infinity)
//   deadlineClose(buffer)          the flag is never set again (idempotent;
//                                  collecting the buffer closes it too)
//   threadCpuMs() -> the calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID),
//       exact to the nanosecond; NaN without that clock. The benchmarks time
//       blocks of ~20 ms with it: /proc/thread-self/schedstat is only brought
//       up to date at scheduler ticks (4 ms steps here).
//
// One thread serves every deadline of the process. It exists while at least
// one deadline does: the close of the last one stops and joins it, so no
// thread runs this library's code once every deadline is gone. It sleeps on
// a condition variable until the earliest armed deadline; an arm wakes it to
// recompute. Its wake-up lags the deadline by the scheduler's latency (tens
// of microseconds when a core is free); an epoch then starts that much late.
#include "addon.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <time.h>

#ifdef __linux__
#include <errno.h>
#include <pthread.h>

// Longer delays (Infinity included) never pass: ~31 years, far inside the
// int64 nanoseconds the deadline is computed in (~292 years).
#define US_DEADLINE_DELAY_MS_MAX 1e12
// The timer thread's name (at most 15 bytes).
#define US_DEADLINE_THREAD_NAME "us-deadline"

typedef struct us_deadline {
  // First member: the JS ArrayBuffer's 4 bytes. Written by the timer thread
  // (atomic store) and by arm (under mu); read by JS with plain loads.
  int32_t flag;
  int armed;                 // under mu
  struct timespec at;        // CLOCK_MONOTONIC, when armed (under mu)
  struct us_deadline* next;  // the live list (under mu)
} us_deadline;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake_cv;  // CLOCK_MONOTONIC; initialized once
static pthread_once_t cv_once = PTHREAD_ONCE_INIT;
static int cv_error;            // pthread_cond_init's (or condattr's) error, or 0
static us_deadline* live;       // deadlines not closed (under mu)
static int thread_running;      // a thread serves the current generation (under mu)
static uint64_t generation;     // bumped per started thread (under mu)
static uint64_t stop_through;   // threads of generations <= this stop (under mu)
static pthread_t timer_thread;  // the current generation's thread (under mu)

static void init_cv(void) {
  pthread_condattr_t attr;
  cv_error = pthread_condattr_init(&attr);
  if (cv_error) return;
  cv_error = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  if (!cv_error) cv_error = pthread_cond_init(&wake_cv, &attr);
  // Destroying an initialized attribute object cannot fail.
  pthread_condattr_destroy(&attr);
}

static int ts_before(const struct timespec* a, const struct timespec* b) {
  return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static void* timer_main(void* arg) {
  const uint64_t my_generation = (uint64_t)(uintptr_t)arg;
  pthread_mutex_lock(&mu);
  while (stop_through < my_generation) {
    struct timespec now, earliest = {0, 0};
    // CLOCK_MONOTONIC cannot fail with a valid clock id and pointer.
    clock_gettime(CLOCK_MONOTONIC, &now);
    int waiting = 0;
    for (us_deadline* d = live; d; d = d->next) {
      if (!d->armed) continue;
      if (!ts_before(&now, &d->at)) {
        // SAFETY: d is in the live list, so not yet freed: removal from the
        // list (close or finalize) happens under mu, before any free.
        __atomic_store_n(&d->flag, 1, __ATOMIC_RELEASE);
        d->armed = 0;
      } else if (!waiting || ts_before(&d->at, &earliest)) {
        earliest = d->at;
        waiting = 1;
      }
    }
    // Both waits return 0, ETIMEDOUT or (spuriously) EINTR; each case is the
    // same to us: recompute. `earliest` is normalized (arm builds it so), so
    // EINVAL cannot occur.
    int err = waiting ? pthread_cond_timedwait(&wake_cv, &mu, &earliest) : pthread_cond_wait(&wake_cv, &mu);
    assert(err == 0 || err == ETIMEDOUT || err == EINTR);
    (void)err;
  }
  pthread_mutex_unlock(&mu);
  return NULL;
}

// Unlinks d (under mu; a d no longer live is left alone). When the live
// list empties, returns the thread to join (outside mu) through *join and 1;
// else 0.
static int unlink_locked(us_deadline* d, pthread_t* join) {
  us_deadline** p = &live;
  while (*p && *p != d) p = &(*p)->next;
  if (!*p) return 0;
  *p = d->next;
  d->armed = 0;
  if (live || !thread_running) return 0;
  *join = timer_thread;
  stop_through = generation;
  thread_running = 0;
  pthread_cond_broadcast(&wake_cv);
  return 1;
}

static void close_deadline(us_deadline* d) {
  pthread_t join;
  pthread_mutex_lock(&mu);
  const int must_join = unlink_locked(d, &join);
  pthread_mutex_unlock(&mu);
  if (must_join) {
    // The thread only ever waits on wake_cv, which was just broadcast: it
    // leaves within a wake-up. Joining a thread we created cannot fail.
    int err = pthread_join(join, NULL);
    assert(err == 0);
    (void)err;
  }
}

static void deadline_finalize(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  // data is the ArrayBuffer's bytes, the first member of the deadline.
  us_deadline* d = (us_deadline*)data;
  close_deadline(d);
  free(d);
}

// The live deadline whose bytes back `value`, or NULL (with an exception pending).
static us_deadline* get_deadline_locked(napi_env env, napi_value value) {
  bool is_ab = false;
  void* base = NULL;
  size_t bytes = 0;
  if (napi_is_arraybuffer(env, value, &is_ab) != napi_ok || !is_ab || napi_get_arraybuffer_info(env, value, &base, &bytes) != napi_ok) {
    us_throw(env, "ERR_NATIVE_ARG", "expected a deadline (the ArrayBuffer deadlineCreate returned)");
    return NULL;
  }
  // Only a pointer found in the live list is used: any other ArrayBuffer,
  // or a closed deadline's, is refused without being dereferenced.
  for (us_deadline* d = live; d; d = d->next)
    if ((void*)d == base && bytes == sizeof d->flag) return d;
  return NULL;
}

static napi_value js_deadline_create(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  pthread_once(&cv_once, init_cv);
  if (cv_error) {
    US_NAPI_OK(env, napi_get_null(env, &result));
    return result;
  }
  us_deadline* d = (us_deadline*)calloc(1, sizeof *d);
  if (!d) return us_throw(env, "ERR_NATIVE_NOMEM", "out of memory creating a deadline");
  pthread_mutex_lock(&mu);
  if (!thread_running) {
    generation++;
    int err = pthread_create(&timer_thread, NULL, timer_main, (void*)(uintptr_t)generation);
    if (err) {
      pthread_mutex_unlock(&mu);
      free(d);
      // No thread: the caller reads the clock instead (its documented path).
      US_NAPI_OK(env, napi_get_null(env, &result));
      return result;
    }
    thread_running = 1;
    // Named by its creator, so the name is there when create returns: it
    // shows in /proc/<pid>/task/*/comm (tests count it). Failing to name it
    // changes nothing else, so the error is dropped.
    (void)pthread_setname_np(timer_thread, US_DEADLINE_THREAD_NAME);
  }
  d->next = live;
  live = d;
  pthread_mutex_unlock(&mu);
  // SAFETY: the buffer covers d->flag, the first 4 bytes of d, which lives
  // until the buffer's finalizer frees it; the timer thread stops touching d
  // when it leaves the live list, which the finalizer does before the free.
  if (napi_create_external_arraybuffer(env, d, sizeof d->flag, deadline_finalize, NULL, &result) != napi_ok) {
    close_deadline(d);
    free(d);
    return us_throw(env, "ERR_NATIVE_NAPI", "N-API call failed: napi_create_external_arraybuffer");
  }
  return result;
}

static napi_value js_deadline_arm(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  double delay_ms = 0;
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || napi_get_value_double(env, argv[1], &delay_ms) != napi_ok || delay_ms != delay_ms)
    return us_throw(env, "ERR_NATIVE_ARG", "deadlineArm(deadline, delayMs) needs a delay in milliseconds (a number, not NaN)");
  pthread_mutex_lock(&mu);
  us_deadline* d = get_deadline_locked(env, argv[0]);
  if (!d) {
    pthread_mutex_unlock(&mu);
    return us_throw(env, "ERR_NATIVE_ARG", "not a live deadline (closed, or not made by deadlineCreate)");
  }
  if (delay_ms <= 0) {
    // Due now: set here, so a check right after the arm already sees it.
    __atomic_store_n(&d->flag, 1, __ATOMIC_RELEASE);
    d->armed = 0;
  } else if (delay_ms > US_DEADLINE_DELAY_MS_MAX) {
    // Never (until re-armed): "no epochs unless asked for", as tests use.
    __atomic_store_n(&d->flag, 0, __ATOMIC_RELEASE);
    d->armed = 0;
  } else {
    struct timespec at;
    clock_gettime(CLOCK_MONOTONIC, &at);
    const int64_t delay_ns = (int64_t)(delay_ms * 1e6);
    at.tv_sec += delay_ns / 1000000000;
    at.tv_nsec += delay_ns % 1000000000;
    if (at.tv_nsec >= 1000000000) {
      at.tv_sec++;
      at.tv_nsec -= 1000000000;
    }
    d->at = at;
    d->armed = 1;
    __atomic_store_n(&d->flag, 0, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&wake_cv);
  }
  pthread_mutex_unlock(&mu);
  return NULL;
}

static napi_value js_deadline_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return us_throw(env, "ERR_NATIVE_ARG", "deadlineClose(deadline) needs one argument");
  pthread_mutex_lock(&mu);
  us_deadline* d = get_deadline_locked(env, argv[0]);
  pthread_mutex_unlock(&mu);
  bool pending = false;
  US_NAPI_OK(env, napi_is_exception_pending(env, &pending));
  if (pending) return NULL;
  // Closing twice is a no-op: the second finds it no longer live. The memory
  // stays until the buffer is collected (JS may still read the flag).
  if (d) close_deadline(d);
  return NULL;
}

#else  // no pthreads with a monotonic condition clock: callers read the clock

static napi_value js_deadline_create(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  US_NAPI_OK(env, napi_get_null(env, &result));
  return result;
}

static napi_value js_deadline_unsupported(napi_env env, napi_callback_info info) {
  (void)info;
  return us_throw(env, "ERR_NATIVE_ARG", "this build has no deadline thread (deadlineCreate returned null)");
}
#define js_deadline_arm js_deadline_unsupported
#define js_deadline_close js_deadline_unsupported

#endif

static napi_value js_thread_cpu_ms(napi_env env, napi_callback_info info) {
  (void)info;
  double ms = NAN;
#ifdef CLOCK_THREAD_CPUTIME_ID
  struct timespec ts;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0) ms = (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
#endif
  napi_value result;
  US_NAPI_OK(env, napi_create_double(env, ms, &result));
  return result;
}

napi_value us_init_deadline(napi_env env, napi_value exports) {
  if (!us_register(env, exports, "threadCpuMs", js_thread_cpu_ms)) return NULL;
  if (!us_register(env, exports, "deadlineCreate", js_deadline_create)) return NULL;
  if (!us_register(env, exports, "deadlineArm", js_deadline_arm)) return NULL;
  if (!us_register(env, exports, "deadlineClose", js_deadline_close)) return NULL;
  return exports;
}
