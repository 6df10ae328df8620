// Clocks and randomness: monotonic never decreases, realtime is plausible,
// a 10 ms nanosleep (poll_oneoff with a relative clock) lasts at least 10 ms,
// CPU time is readable, and two random draws differ.
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <wasi/api.h>

static long long ns(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(void) {
  long long prev = ns(CLOCK_MONOTONIC);
  int ok = 1;
  for (int i = 0; i < 1000; i++) {
    long long t = ns(CLOCK_MONOTONIC);
    if (t < prev) ok = 0;
    prev = t;
  }
  printf("monotonic non-decreasing: %s\n", ok ? "yes" : "no");
  printf("realtime after 2020: %s\n", ns(CLOCK_REALTIME) > 1577836800LL * 1000000000LL ? "yes" : "no");
  struct timespec res;
  printf("monotonic res ok: %s\n", clock_getres(CLOCK_MONOTONIC, &res) == 0 && res.tv_sec == 0 && res.tv_nsec > 0 ? "yes" : "no");

  long long t0 = ns(CLOCK_MONOTONIC);
  struct timespec d = {0, 10 * 1000 * 1000};
  int rc = nanosleep(&d, NULL);
  long long slept = ns(CLOCK_MONOTONIC) - t0;
  printf("nanosleep rc=%d slept>=10ms: %s\n", rc, slept >= 10000000LL ? "yes" : "no");

  __wasi_timestamp_t cpu = 0;
  printf("cputime readable: %s\n", __wasi_clock_time_get(__WASI_CLOCKID_PROCESS_CPUTIME_ID, 1, &cpu) == 0 ? "yes" : "no");

  unsigned char a[16], b[16];
  getentropy(a, sizeof a);
  getentropy(b, sizeof b);
  printf("random draws differ: %s\n", memcmp(a, b, sizeof a) != 0 ? "yes" : "no");
  return 0;
}
