// understudy: cflags -Wl,--wrap=malloc -Wl,--wrap=free -Wl,--wrap=calloc -Wl,--wrap=realloc -Wl,--wrap=aligned_alloc -Wl,--wrap=posix_memalign -Wl,--wrap=sbrk
//
// churn — a command guest with the balloon SDK: each round allocates a
// burst of blocks (the peak), frees most of them, keeps a small live set,
// and prints a digest of the live set. It calls us_balloon_poll() once per
// round, from its main loop, where its allocator is idle: that is where the
// host may inflate the balloon before a snapshot and deflate after it.
//
//   churn [rounds=40] [peak MiB=48] [live KiB per round=256] [poll rounds=all]
//
// (Polling only in the first <poll rounds> rounds shows the host's bounded
// wait for a guest that stops polling.)
//
// Output: one line per round, "round <i> live=<bytes> digest=<16 hex>",
// then "done". Deterministic (no time, no randomness from the host).

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "understudy_balloon.h"

US_BALLOON_DEFINE()

#define BLOCK_BYTES 4000u
#define ROUNDS_MAX 100000
#define PEAK_MIB_MAX 512
#define LIVE_BLOCKS_MAX 65536u

static char *live_[LIVE_BLOCKS_MAX];
static uint32_t live_count_;

static uint64_t rng(uint64_t *s) { *s = *s * 6364136223846793005ull + 1442695040888963407ull; return *s >> 33; }

static uint64_t fnv(uint64_t h, const char *p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 1099511628211ull;
    return h;
}

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : 40;
    long peak_mib = argc > 2 ? atol(argv[2]) : 48;
    long live_kib = argc > 3 ? atol(argv[3]) : 256;
    long poll_rounds = argc > 4 ? atol(argv[4]) : rounds;
    if (rounds < 1 || rounds > ROUNDS_MAX || peak_mib < 1 || peak_mib > PEAK_MIB_MAX || live_kib < 0) {
        fprintf(stderr, "usage: churn [rounds 1..%d] [peak MiB 1..%d] [live KiB]\n", ROUNDS_MAX, PEAK_MIB_MAX);
        return 2;
    }
    const uint32_t burst = (uint32_t)((uint64_t)peak_mib * 1048576u / BLOCK_BYTES);
    const uint32_t keep = (uint32_t)((uint64_t)live_kib * 1024u / BLOCK_BYTES);
    char **blocks = malloc((size_t)burst * sizeof *blocks);
    if (!blocks) return 1;
    uint64_t seed = 42;
    for (long r = 0; r < rounds; r++) {
        if (r < poll_rounds) us_balloon_poll();
        for (uint32_t i = 0; i < burst; i++) {
            blocks[i] = malloc(BLOCK_BYTES);
            if (!blocks[i]) { fprintf(stderr, "out of memory\n"); return 1; }
            memset(blocks[i], (int)(rng(&seed) & 0xff), BLOCK_BYTES);
        }
        // Keep `keep` of them (spread over the burst), free the rest.
        for (uint32_t i = 0; i < burst; i++) {
            if (keep && i % (burst / keep ? burst / keep : 1) == 0 && live_count_ < LIVE_BLOCKS_MAX) live_[live_count_++] = blocks[i];
            else free(blocks[i]);
        }
        uint64_t h = 1469598103934665603ull;
        for (uint32_t i = 0; i < live_count_; i++) h = fnv(h, live_[i], BLOCK_BYTES);
        printf("round %ld live=%llu digest=%016llx\n", r, (unsigned long long)live_count_ * BLOCK_BYTES, (unsigned long long)h);
        fflush(stdout);
    }
    free(blocks);
    printf("done\n");
    return 0;
}
