// understudy: reactor
//
// checked — a reactor that checks its own state: a table of 64 counters with
// a checksum kept beside them. Every request first verifies the checksum and,
// when it does not match (a bit flipped in memory), reports the error to the
// host through understudy.report_error instead of answering from broken state.
//
//   ADD <i> <v>   -> <counter i after adding v>   (i in 0..63, v unsigned)
//   SUM           -> <sum of all counters>
//
// Answers are a pure function of the requests since _initialize.

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "understudy.h"

#define CELLS 64u

static uint64_t cells[CELLS];
static uint64_t checksum;

static uint64_t digest(void) {
    uint64_t h = 0x9e3779b97f4a7c15ull;
    for (uint32_t i = 0; i < CELLS; i++) h = (h ^ cells[i]) * 0x100000001b3ull + i;
    return h;
}

static uint64_t parse_u64(const char **p, const char *end) {
    uint64_t v = 0;
    while (*p < end && **p == ' ') (*p)++;
    while (*p < end && **p >= '0' && **p <= '9') v = v * 10 + (uint64_t)(*(*p)++ - '0');
    return v;
}

// Runs from _initialize, before any request.
__attribute__((constructor)) static void init_checksum(void) { checksum = digest(); }

US_REACTOR_DEFINE()

US_HANDLER(handle, req, len, resp) {
    if (checksum != digest()) us_report_error(1);
    const char *p = (const char *)req, *end = p + len;
    if (len >= 3 && memcmp(p, "ADD", 3) == 0) {
        p += 3;
        uint64_t i = parse_u64(&p, end) % CELLS;
        uint64_t v = parse_u64(&p, end);
        cells[i] += v;
        checksum = digest();
        us_resp_u64(resp, cells[i]);
    } else if (len >= 3 && memcmp(p, "SUM", 3) == 0) {
        uint64_t s = 0;
        for (uint32_t i = 0; i < CELLS; i++) s += cells[i];
        us_resp_u64(resp, s);
    } else {
        us_resp_str(resp, "ERR unknown command");
    }
}
