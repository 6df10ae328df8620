// heapwalk — a long-running command guest with a large, pointer-rich heap.
//
// usage: heapwalk [--stdin] [--seed=N] [--timing] [MiB [rounds [outfile]]]
//
// Builds about MiB mebibytes (default 32; ~190,000 nodes of 48..272 bytes) of
// heap nodes, each on a hash chain and paired with a peer node a few slots
// away (peer pointers are mutual), then for `rounds` rounds (default 40)
// mutates the structure (rewrites values, re-pairs peers, frees nodes and
// allocates replacements of another size), walks every node and its peer
// plus an eighth of the hash chains, and prints
//     round 7/40 nodes=N bytes=B checksum=HEX
// At the end it prints "done checksum=HEX" and, if `outfile` is given (a path
// inside a preopened directory, e.g. /out/heapwalk.txt), writes a one-line
// summary there.
//
// --stdin   before each round, reads one line of stdin (until EOF), prints
//           "stdin line=K bytes=N hash=HEX" and mixes the hash into the PRNG,
//           so the output depends on the exact input; after the last round,
//           echoes the hashes of any remaining lines.
// --seed=N  PRNG seed (default 1).
// --timing  prints each round's duration to stderr (stdout stays
//           deterministic; the monotonic clock is read every round anyway).
//
// The output on stdout and in outfile is a pure function of the arguments
// and stdin. Exit status: 0 done, 1 out of memory or I/O error, 2 usage.

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MIB_DEFAULT 32u
// wasm32 addresses 4 GiB; stay well below so the guest never hits the wall.
#define MIB_MAX 2048u
#define ROUNDS_DEFAULT 40u
#define ROUNDS_MAX 1000000u
#define PAYLOAD_WORDS_MIN 2u
#define PAYLOAD_WORDS_MAX 30u
// Estimated bytes one node costs: header, mean payload, malloc overhead,
// its slot pointer and its share of the bucket array (load factor 2).
#define NODE_COST_BYTES                                                        \
    (sizeof(node) + 8u * (PAYLOAD_WORDS_MIN + PAYLOAD_WORDS_MAX) / 2u + 8u +   \
     sizeof(node *) + sizeof(node *) / 2u)
// Peers are paired within this many slots of each other.
#define PEER_WINDOW 512u
// Each round walks one CHAIN_SLICES-th of the hash chains.
#define CHAIN_SLICES 8u
// Each round mutates nodes / OPS_DIVISOR times.
#define OPS_DIVISOR 8u

typedef struct node {
    struct node *next;  // hash chain
    struct node *peer;  // invariant: peer->peer == this (a node may be its own peer)
    uint64_t key;       // unique
    uint64_t value;
    uint32_t slot;      // index in slots[]
    uint32_t words;     // payload length
    uint64_t payload[];
} node;

_Static_assert(sizeof(node) == 32, "node header layout");

static node **slots;
static uint32_t node_count;
static node **buckets;
static uint32_t bucket_mask;
static uint64_t payload_bytes;
static uint64_t key_counter;
static uint64_t rng_state = 1;

static uint64_t fmix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static uint64_t rotl64(uint64_t x, unsigned r) { return (x << r) | (x >> (64 - r)); }

// xorshift64*
static uint64_t rng(void) {
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545f4914f6cdd1dull;
}

static void rng_mix(uint64_t v) {
    rng_state = fmix64(rng_state ^ v);
    if (rng_state == 0) rng_state = 1;
}

static void fail(const char *what) {
    fprintf(stderr, "heapwalk: %s\n", what);
    exit(1);
}

static void check(int ok, const char *invariant) {
    if (!ok) {
        fprintf(stderr, "heapwalk: invariant broken: %s\n", invariant);
        abort();
    }
}

static node *node_new(uint32_t slot) {
    uint32_t words = PAYLOAD_WORDS_MIN + (uint32_t)(rng() % (PAYLOAD_WORDS_MAX - PAYLOAD_WORDS_MIN + 1));
    node *n = malloc(sizeof(node) + words * sizeof(uint64_t));
    if (!n) fail("out of memory");
    n->next = NULL;
    n->peer = n;
    n->key = fmix64(++key_counter);  // fmix64 is a bijection: keys stay unique
    n->value = rng();
    n->slot = slot;
    n->words = words;
    for (uint32_t i = 0; i < words; i++) n->payload[i] = rng();
    payload_bytes += words * sizeof(uint64_t);
    return n;
}

static void chain_insert(node *n) {
    node **head = &buckets[n->key & bucket_mask];
    n->next = *head;
    *head = n;
}

static void chain_remove(node *n) {
    node **link = &buckets[n->key & bucket_mask];
    while (*link != n) {
        check(*link != NULL, "node is on its hash chain");
        link = &(*link)->next;
    }
    *link = n->next;
    n->next = NULL;
}

// Pairs a with b; their former peers are paired with each other (or become
// their own peers when one is missing).
static void relink(node *a, node *b) {
    if (a == b || a->peer == b) return;
    node *left_a = a->peer != a ? a->peer : NULL;
    node *left_b = b->peer != b ? b->peer : NULL;
    a->peer = b;
    b->peer = a;
    if (left_a && left_b) {
        left_a->peer = left_b;
        left_b->peer = left_a;
    } else if (left_a) {
        left_a->peer = left_a;
    } else if (left_b) {
        left_b->peer = left_b;
    }
}

// Frees the node in `slot` and puts a new node (new key, new size, same peer)
// in its place.
static void replace(uint32_t slot) {
    node *old = slots[slot];
    chain_remove(old);
    payload_bytes -= old->words * sizeof(uint64_t);
    node *peer = old->peer;
    free(old);
    node *n = node_new(slot);
    if (peer != old) {
        n->peer = peer;
        peer->peer = n;
    }
    chain_insert(n);
    slots[slot] = n;
}

static node *random_node(void) { return slots[rng() % node_count]; }

// A node a few slots away from `n`: peers are paired mostly with nodes
// allocated near them, as in real heaps, so following every peer pointer
// each round stays affordable (fully random pairing doubles a round's time).
static node *nearby_node(const node *n) {
    return slots[(n->slot + rng() % PEER_WINDOW) % node_count];
}

static void build(uint32_t mib) {
    uint64_t target = (uint64_t)mib << 20;
    uint64_t count = target / NODE_COST_BYTES;
    if (count < 2) count = 2;
    node_count = (uint32_t)count;
    uint32_t nbuckets = 1;
    while (nbuckets < node_count / 2) nbuckets <<= 1;
    bucket_mask = nbuckets - 1;
    slots = malloc(node_count * sizeof(node *));
    buckets = calloc(nbuckets, sizeof(node *));
    if (!slots || !buckets) fail("out of memory");
    for (uint32_t i = 0; i < node_count; i++) {
        slots[i] = node_new(i);
        chain_insert(slots[i]);
        if (i & 1) relink(slots[i - 1], slots[i]);
    }
    for (uint32_t i = 0; i < node_count / 2; i++) {
        node *a = random_node();
        relink(a, nearby_node(a));
    }
}

static void mutate(void) {
    uint32_t ops = node_count / OPS_DIVISOR;
    for (uint32_t i = 0; i < ops; i++) {
        switch (rng() & 3) {
        case 0:
        case 1: {
            node *n = random_node();
            n->value = rng();
            n->payload[rng() % n->words] ^= rng();
            break;
        }
        case 2: {
            node *a = random_node();
            relink(a, nearby_node(a));
            break;
        }
        default:
            replace((uint32_t)(rng() % node_count));
            break;
        }
    }
}

// Walks every node in slot order, following its peer pointer, then one
// CHAIN_SLICES-th of the hash chains (a different slice each round) in chain
// order. The checksum depends on keys, values, payloads, peer pairing and the
// order of the walked chains. Slot order keeps most of the walk sequential:
// chasing every chain every round costs several times as much.
static uint64_t walk(uint32_t round) {
    uint64_t h = 0;
    for (uint32_t i = 0; i < node_count; i++) {
        node *n = slots[i];
        check(n->slot == i, "node knows its slot");
        check(n->peer->peer == n, "peer pointers are mutual");
        uint64_t p = 0;
        for (uint32_t w = 0; w < n->words; w++) p = rotl64(p, 7) ^ n->payload[w];
        h = fmix64(h ^ n->key ^ rotl64(n->value, 17) ^ p ^ (n->peer->key * 3));
    }
    uint32_t slice = round % CHAIN_SLICES;
    for (uint32_t b = slice; b <= bucket_mask; b += CHAIN_SLICES) {
        uint32_t length = 0;
        for (node *n = buckets[b]; n; n = n->next) {
            check((n->key & bucket_mask) == b, "node is on its own chain");
            check(++length <= node_count, "chains end");
            h = fmix64(h ^ n->key);
        }
    }
    return h;
}

// Reads one line of stdin (without its newline). Returns 0 at EOF before any
// byte, else 1 with the line's FNV-1a hash and length.
static int read_line(uint64_t *hash, uint64_t *bytes) {
    uint64_t h = 0xcbf29ce484222325ull, n = 0;
    int c;
    while ((c = getchar()) != EOF && c != '\n') {
        h = (h ^ (uint8_t)c) * 0x100000001b3ull;
        n++;
    }
    if (c == EOF && n == 0) return 0;
    *hash = h;
    *bytes = n;
    return 1;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 0;
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out) {
    char *end;
    if (*s < '0' || *s > '9') return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || v < min || v > max) return -1;
    *out = (uint32_t)v;
    return 0;
}

static void usage(void) {
    fprintf(stderr,
            "usage: heapwalk [--stdin] [--seed=N] [--timing] [MiB [rounds [outfile]]]\n"
            "  MiB 1..%u (default %u), rounds 1..%u (default %u)\n",
            MIB_MAX, MIB_DEFAULT, ROUNDS_MAX, ROUNDS_DEFAULT);
    exit(2);
}

int main(int argc, char **argv) {
    uint32_t mib = MIB_DEFAULT, rounds = ROUNDS_DEFAULT, seed = 1;
    const char *outfile = NULL;
    int use_stdin = 0, timing = 0, positional = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--stdin") == 0) {
            use_stdin = 1;
        } else if (strcmp(a, "--timing") == 0) {
            timing = 1;
        } else if (strncmp(a, "--seed=", 7) == 0) {
            if (parse_u32(a + 7, 1, UINT32_MAX, &seed) != 0) usage();
        } else if (a[0] == '-') {
            usage();
        } else if (positional == 0) {
            if (parse_u32(a, 1, MIB_MAX, &mib) != 0) usage();
            positional++;
        } else if (positional == 1) {
            if (parse_u32(a, 1, ROUNDS_MAX, &rounds) != 0) usage();
            positional++;
        } else if (positional == 2) {
            outfile = a;
            positional++;
        } else {
            usage();
        }
    }

    rng_state = fmix64(seed);
    build(mib);
    printf("heapwalk mib=%" PRIu32 " rounds=%" PRIu32 " seed=%" PRIu32 " nodes=%" PRIu32 "\n",
           mib, rounds, seed, node_count);
    fflush(stdout);

    uint64_t checksum = 0, line_no = 0;
    int stdin_open = use_stdin;
    for (uint32_t r = 1; r <= rounds; r++) {
        uint64_t t0 = now_ns();
        uint64_t hash, bytes;
        if (stdin_open) {
            if (read_line(&hash, &bytes)) {
                line_no++;
                printf("stdin line=%" PRIu64 " bytes=%" PRIu64 " hash=%016" PRIx64 "\n",
                       line_no, bytes, hash);
                rng_mix(hash);
            } else {
                stdin_open = 0;
            }
        }
        mutate();
        checksum = walk(r);
        printf("round %" PRIu32 "/%" PRIu32 " nodes=%" PRIu32 " bytes=%" PRIu64 " checksum=%016" PRIx64 "\n",
               r, rounds, node_count, payload_bytes, checksum);
        fflush(stdout);
        uint64_t t1 = now_ns();
        if (timing) fprintf(stderr, "round %" PRIu32 " %" PRIu64 " us\n", r, (t1 - t0) / 1000);
    }
    while (stdin_open) {
        uint64_t hash, bytes;
        if (!read_line(&hash, &bytes)) break;
        line_no++;
        printf("stdin line=%" PRIu64 " bytes=%" PRIu64 " hash=%016" PRIx64 "\n", line_no, bytes, hash);
    }

    printf("done checksum=%016" PRIx64 "\n", checksum);
    fflush(stdout);
    if (outfile) {
        FILE *f = fopen(outfile, "w");
        if (!f) {
            fprintf(stderr, "heapwalk: cannot open %s: %s\n", outfile, strerror(errno));
            return 1;
        }
        fprintf(f, "heapwalk mib=%" PRIu32 " rounds=%" PRIu32 " seed=%" PRIu32 " nodes=%" PRIu32
                   " bytes=%" PRIu64 " stdin_lines=%" PRIu64 " checksum=%016" PRIx64 "\n",
                mib, rounds, seed, node_count, payload_bytes, line_no, checksum);
        if (ferror(f) | fclose(f)) {
            fprintf(stderr, "heapwalk: cannot write %s\n", outfile);
            return 1;
        }
    }
    return 0;
}
