// cdatest — a command guest that keeps its state in one critical data area
// (guests/sdk/understudy_cda.h) and commits it in checkpoint cycles.
//
// usage: cdatest <cycles> [trap-after-cycle]
//
// Registers the area, recovers it (a restart continues where the last
// committed cycle left it), then runs <cycles> cycles: each adds one to a
// counter and the counter to a sum, and writes a byte of a log; every third
// cycle is aborted instead of ended, and must leave no trace. With
// trap-after-cycle it traps right after that cycle committed (a crash).
// Before the loop it checks the answers of misuse (begin twice, end outside a
// cycle, overlapping and out-of-range areas, recover inside a cycle).
// Prints
//     recovered cycle=<n> counter=<c> sum=<s>
//     done cycle=<n> counter=<c> sum=<s> aborted=<a>
// Exit status: 0 done, 2 usage, 3 a hypercall answered wrongly.

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "understudy_cda.h"

#define LOG_BYTES 10000u

static struct {
    uint64_t counter;
    uint64_t sum;
    uint8_t log[LOG_BYTES];
} state __attribute__((aligned(4096)));

static char elsewhere[64];

static int expect(const char *what, int64_t got, int64_t want) {
    if (got == want) return 0;
    printf("%s: got %lld, want %lld\n", what, (long long)got, (long long)want);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: cdatest <cycles> [trap-after-cycle]\n");
        return 2;
    }
    long cycles = strtol(argv[1], NULL, 10);
    long trap_after = argc > 2 ? strtol(argv[2], NULL, 10) : -1;

    int id = us_cda_register(&state, sizeof state);
    if (expect("register", id, 1)) return 3;
    int bad = 0;
    bad |= expect("overlap", us_cda_register((char *)&state + 8, 16), US_CDA_ESTATE);
    bad |= expect("out of range", us_cda_register_raw(0xfffff000u, 0x2000u), US_CDA_ERANGE);
    bad |= expect("empty", us_cda_register(elsewhere, 0), US_CDA_ERANGE);
    bad |= expect("end outside", us_cda_end(), US_CDA_ESTATE);
    bad |= expect("abort outside", us_cda_abort(), US_CDA_ESTATE);
    bad |= expect("unknown id", us_cda_unregister(99), US_CDA_ESTATE);
    if (bad) return 3;

    int64_t recovered = us_cda_recover();
    if (recovered < 0) {
        printf("recover answered %lld\n", (long long)recovered);
        return 3;
    }
    printf("recovered cycle=%lld counter=%llu sum=%llu\n", (long long)recovered, (unsigned long long)state.counter, (unsigned long long)state.sum);
    fflush(stdout);

    int64_t last = recovered;
    int aborted = 0;
    for (long i = 0; i < cycles; i++) {
        if (expect("begin", us_cda_begin(), 0)) return 3;
        if (i == 0) {
            bad |= expect("begin twice", us_cda_begin(), US_CDA_ESTATE);
            bad |= expect("recover in a cycle", us_cda_recover(), US_CDA_ESTATE);
            bad |= expect("register in a cycle", us_cda_register(elsewhere, 8), US_CDA_ESTATE);
            if (bad) return 3;
        }
        uint64_t before = state.counter, sum_before = state.sum;
        state.counter++;
        state.sum += state.counter;
        state.log[state.counter % LOG_BYTES] ^= (uint8_t)(state.counter | 1);
        if (i % 3 == 2) {
            if (expect("abort", us_cda_abort(), 0)) return 3;
            if (state.counter != before || state.sum != sum_before) {
                printf("abort left a trace: counter %llu\n", (unsigned long long)state.counter);
                return 3;
            }
            aborted++;
            continue;
        }
        int64_t c = us_cda_end();
        if (expect("end", c, last + 1)) return 3;
        last = c;
        if (c == trap_after) __builtin_trap();
    }
    printf("done cycle=%lld counter=%llu sum=%llu aborted=%d\n", (long long)last, (unsigned long long)state.counter, (unsigned long long)state.sum, aborted);
    return 0;
}
