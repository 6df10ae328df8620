// cdabench — the seed's data-structure workloads (linked list add/delete,
// balanced-tree insert, hash-table insert/update, queue) as a command guest
// that keeps ALL its state in one critical data area and brackets every
// transaction of --opt operations with a checkpoint cycle.
//
// usage: cdabench <list|tree|hash|queue> [--opt N] [--ops N] [--seed N]
//                 [--arena-bytes N] [--no-cda] [--progress N] [--timing]
//
//   --opt N          operations per transaction (cycle), 1..10000 (default 1)
//   --ops N          operations in all, a multiple of --opt (default 10000)
//   --seed N         PRNG seed, u32 (default 1)
//   --arena-bytes N  arena size, whole 4 KiB pages in [64 KiB, 1 GiB]
//                    (default 8 MiB, a static page-aligned array; larger
//                    arenas come from aligned_alloc, at the same address on
//                    every run with the same arguments)
//   --no-cda         no hypercalls at all: the unprotected baseline (the
//                    arena ends with the same bytes)
//   --progress N     print "progress cycle=C ops=K" every N cycles
//   --timing         print the loop's duration to stderr (stdout stays
//                    deterministic)
//
// The arena layout, allocator and PRNG are those of src/cda/workloads
// (layout.ts says the contract; each structure's file says its node layout):
// after N operations this guest's arena and the TypeScript one hold the same
// bytes, which a test checks. On start the guest registers the arena and
// asks for it back (cda_recover): cycle N > 0 means the arena is as cycle N
// committed it, so it checks the header and continues from operation
// N * opt; 0 means a fresh start. Output:
//
//   cdabench workload=tree opt=5 ops=10000 seed=1 arena-bytes=8388608 arena-at=8192 cda=on
//   recovered cycle=120 ops=600                      (after a recovery only)
//   progress cycle=500 ops=2500                      (with --progress)
//   done workload=tree ops=10000 cycles=2000 count=9263 digest=5136bd31
//
// digest is the CRC-32C of the whole arena. Exit status: 0 done, 1 a CDA
// call failed or the arena is corrupt, 2 usage.

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "understudy_cda.h"

// The guest loader's rewrite (Asyncify) instruments every function that can
// reach a host call, main among them, as a whole: helpers main would inline
// are kept out of it, and the workload code never calls the host (see
// `trouble`). Instrumenting the inlined workload made loading take seconds.
#define NOINLINE __attribute__((noinline))

// ---- layout (src/cda/workloads/layout.ts) ----------------------------------

#define ARENA_MAGIC 0x41444355u  // "UCDA"
#define ARENA_VERSION 1u
#define HEADER_BYTES 256u
#define ARENA_PAGE_BYTES 4096u
#define ARENA_BYTES_DEFAULT (8u * 1024u * 1024u)
#define ARENA_BYTES_MIN (64u * 1024u)
#define ARENA_BYTES_MAX (1024u * 1024u * 1024u)
#define ALLOC_GRAIN_BYTES 16u
#define ALLOC_CLASSES 16u
#define VALUE_BYTES_MIN 16u
#define VALUE_BYTES_MAX 64u

#define H_MAGIC 0u
#define H_VERSION 4u
#define H_WORKLOAD 8u
#define H_ARENA_BYTES 12u
#define H_SEED 16u
#define H_PRNG 20u
#define H_OPS 24u
#define H_CYCLES 32u
#define H_BUMP 40u
#define H_LIVE_BYTES 44u
#define H_COUNT 48u
#define H_ROOT0 52u
#define H_ROOT1 56u
#define H_AUX0 60u
#define H_AUX1 64u
#define H_FREE 128u

_Static_assert(H_FREE + 4u * ALLOC_CLASSES <= HEADER_BYTES, "free heads fit the header");
_Static_assert(H_AUX1 + 4u <= H_FREE, "roots end before the free heads");
_Static_assert(HEADER_BYTES % ALLOC_GRAIN_BYTES == 0, "blocks start aligned");

enum { W_LIST = 1, W_TREE = 2, W_HASH = 3, W_QUEUE = 4 };

#define LIST_TARGET 512u
#define LIST_NODE_BYTES 12u
#define QUEUE_TARGET 256u
#define QUEUE_NODE_BYTES 12u
#define TREE_KEYS (1u << 16)
#define TREE_NODE_BYTES 20u
#define TREE_HEIGHT_MAX 48u
#define HASH_BUCKETS 8192u
#define HASH_KEYS (1u << 15)
#define HASH_NODE_BYTES 12u

#define OPT_MAX 10000u
#define OPS_MAX 1000000000ull
// A cycle the target failed (US_CDA_EIO) is rolled back by the host and run
// again this many times before the guest gives up.
#define CDA_RETRIES_MAX 3u

static uint8_t arena_static[ARENA_BYTES_DEFAULT] __attribute__((aligned(ARENA_PAGE_BYTES)));
static uint8_t *A;
static uint32_t A_BYTES;

// Output without stdio: printf's machinery would be most of the module, and
// much of it reaches fd_write, so the rewrite would instrument it all.
#define LINE_BYTES_MAX 240u

typedef struct {
    char b[LINE_BYTES_MAX + 1u];
    uint32_t n;
} line;

NOINLINE static void put_str(line *l, const char *s) {
    while (*s && l->n < LINE_BYTES_MAX) l->b[l->n++] = *s++;
}

NOINLINE static void put_u64(line *l, uint64_t v) {
    char t[20];
    uint32_t k = 0;
    do {
        t[k++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    while (k && l->n < LINE_BYTES_MAX) l->b[l->n++] = t[--k];
}

NOINLINE static void put_hex32(line *l, uint32_t v) {
    for (int i = 7; i >= 0 && l->n < LINE_BYTES_MAX; i--) l->b[l->n++] = "0123456789abcdef"[(v >> (4 * i)) & 15u];
}

NOINLINE static void put_field(line *l, const char *name, uint64_t v) {
    put_str(l, name);
    put_u64(l, v);
}

// Writes the line and a newline; a failed write ends the guest (status 1).
static void emit(line *l, int fd) {
    l->b[l->n++] = '\n';
    for (uint32_t at = 0; at < l->n;) {
        ssize_t w = write(fd, l->b + at, l->n - at);
        if (w <= 0) exit(1);
        at += (uint32_t)w;
    }
    l->n = 0;
}

static _Noreturn void fail(const char *what) {
    line l = {.n = 0};
    put_str(&l, "cdabench: ");
    put_str(&l, what);
    emit(&l, 2);
    exit(1);
}

// Trouble inside an operation (a corrupt arena, a full one) is noted here
// and acted on by main after the operation, so the workload code never
// reaches a host call and the rewrite leaves it untouched.
static const char *trouble;

static void flag(const char *why) {
    if (trouble == NULL) trouble = why;
}

// Every access is checked against the arena: offsets come from the arena's
// own bytes, which a recovered arena may have wrong. Out of range, a read
// answers 0 and a write is dropped; the operation's trouble ends the guest.
static inline int in_arena(uint32_t off, uint32_t n) {
    if ((uint64_t)off + n <= A_BYTES) return 1;
    flag("corrupt arena: an offset points outside it");
    return 0;
}
static inline uint32_t rd32(uint32_t off) {
    if (!in_arena(off, 4)) return 0;
    uint32_t v;
    memcpy(&v, A + off, 4);  // wasm is little-endian, as the layout
    return v;
}
static inline void wr32(uint32_t off, uint32_t v) {
    if (!in_arena(off, 4)) return;
    memcpy(A + off, &v, 4);
}
static inline uint64_t rd64(uint32_t off) {
    if (!in_arena(off, 8)) return 0;
    uint64_t v;
    memcpy(&v, A + off, 8);
    return v;
}
static inline void wr64(uint32_t off, uint64_t v) {
    if (!in_arena(off, 8)) return;
    memcpy(A + off, &v, 8);
}
static inline void wrbytes(uint32_t off, const uint8_t *src, uint32_t n) {
    if (!in_arena(off, n)) return;
    memcpy(A + off, src, n);
}

static uint32_t round_grain(uint32_t n) {
    return (n + ALLOC_GRAIN_BYTES - 1u) / ALLOC_GRAIN_BYTES * ALLOC_GRAIN_BYTES;
}

static int is_block(uint32_t off, uint32_t bump) {
    return off >= HEADER_BYTES && off < bump && off % ALLOC_GRAIN_BYTES == 0;
}

static uint32_t arena_alloc(uint32_t bytes) {
    uint32_t size = round_grain(bytes);
    uint32_t cls = size / ALLOC_GRAIN_BYTES;
    if (cls <= ALLOC_CLASSES) {
        uint32_t head_at = H_FREE + 4u * (cls - 1u);
        uint32_t head = rd32(head_at);
        if (head != 0) {
            wr32(head_at, rd32(head));
            wr32(H_LIVE_BYTES, rd32(H_LIVE_BYTES) + size);
            return head;
        }
    }
    uint32_t bump = rd32(H_BUMP);
    if ((uint64_t)bump + size > A_BYTES) {
        flag("the arena is full");
        return 0;
    }
    wr32(H_BUMP, bump + size);
    wr32(H_LIVE_BYTES, rd32(H_LIVE_BYTES) + size);
    return bump;
}

static void arena_free(uint32_t off, uint32_t bytes) {
    uint32_t size = round_grain(bytes);
    uint32_t cls = size / ALLOC_GRAIN_BYTES;
    if (cls > ALLOC_CLASSES) {
        flag("corrupt arena: free of a block larger than any free list");
        return;
    }
    uint32_t head_at = H_FREE + 4u * (cls - 1u);
    wr32(off, rd32(head_at));
    wr32(head_at, off);
    wr32(H_LIVE_BYTES, rd32(H_LIVE_BYTES) - size);
}

// splitmix32 (layout.ts: Rng)
static uint32_t rng_next(uint32_t *s) {
    *s += 0x9e3779b9u;
    uint32_t z = *s;
    z = (z ^ (z >> 16)) * 0x85ebca6bu;
    z = (z ^ (z >> 13)) * 0xc2b2ae35u;
    return z ^ (z >> 16);
}

static uint32_t rng_value_bytes(uint32_t *s) {
    return VALUE_BYTES_MIN + rng_next(s) % (VALUE_BYTES_MAX - VALUE_BYTES_MIN + 1u);
}

// layout.ts: fillValue — an LCG word per 4 bytes, little-endian, cut at n.
static void fill_value(uint8_t *out, uint32_t draw, uint32_t n) {
    uint32_t w = draw;
    for (uint32_t i = 0; i < n; i += 4) {
        w = w * 1664525u + 1013904223u;
        for (uint32_t b = 0; b < 4 && i + b < n; b++) out[i + b] = (uint8_t)(w >> (8 * b));
    }
}

static uint32_t fmix32(uint32_t h) {
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    return h ^ (h >> 16);
}

static uint32_t value_bytes_at(uint32_t off) {
    uint32_t n = rd32(off);
    if (n < VALUE_BYTES_MIN || n > VALUE_BYTES_MAX) {
        flag("corrupt arena: a value length out of range");
        return VALUE_BYTES_MIN;
    }
    return n;
}

// Value blocks (tree, hash): [length u32][bytes].
static uint32_t alloc_value(const uint8_t *value, uint32_t n) {
    uint32_t v = arena_alloc(4u + n);
    wr32(v, n);
    wrbytes(v + 4u, value, n);
    return v;
}

static void free_value(uint32_t v) {
    arena_free(v, 4u + value_bytes_at(v));
}

// ---- list (list.ts) ---------------------------------------------------------

static void list_step(uint32_t *rng) {
    uint32_t count = rd32(H_COUNT);
    uint32_t c = rng_next(rng);
    int add = count < LIST_TARGET || (count < 2u * LIST_TARGET && (c & 1u) == 0);
    if (add) {
        uint8_t value[VALUE_BYTES_MAX];
        uint32_t key = rng_next(rng);
        uint32_t n_bytes = rng_value_bytes(rng);
        fill_value(value, rng_next(rng), n_bytes);
        uint32_t node = arena_alloc(LIST_NODE_BYTES + n_bytes);
        uint32_t prev = 0, n = rd32(H_ROOT0);
        for (uint32_t steps = 0; n != 0 && rd32(n + 4u) <= key; steps++) {
            if (steps >= count) {
                flag("corrupt arena: the list is longer than its count");
                return;
            }
            prev = n;
            n = rd32(n);
        }
        wr32(node, n);
        wr32(node + 4u, key);
        wr32(node + 8u, n_bytes);
        wrbytes(node + 12u, value, n_bytes);
        wr32(prev == 0 ? H_ROOT0 : prev, node);
        wr32(H_COUNT, count + 1u);
        return;
    }
    uint32_t index = rng_next(rng) % count;
    uint32_t prev = 0, n = rd32(H_ROOT0);
    for (uint32_t i = 0; i < index; i++) {
        if (n == 0) {
            flag("corrupt arena: the list is shorter than its count");
            return;
        }
        prev = n;
        n = rd32(n);
    }
    if (n == 0) {
        flag("corrupt arena: the list is shorter than its count");
        return;
    }
    uint32_t n_bytes = value_bytes_at(n + 8u);
    wr32(prev == 0 ? H_ROOT0 : prev, rd32(n));
    arena_free(n, LIST_NODE_BYTES + n_bytes);
    wr32(H_COUNT, count - 1u);
}

// ---- queue (queue.ts) -------------------------------------------------------

static void queue_step(uint32_t *rng) {
    uint32_t count = rd32(H_COUNT);
    uint32_t c = rng_next(rng);
    int enqueue = count < QUEUE_TARGET || (count < 2u * QUEUE_TARGET && (c & 1u) == 0);
    if (enqueue) {
        uint8_t value[VALUE_BYTES_MAX];
        uint32_t n_bytes = rng_value_bytes(rng);
        fill_value(value, rng_next(rng), n_bytes);
        uint32_t node = arena_alloc(QUEUE_NODE_BYTES + n_bytes);
        uint32_t seq = rd32(H_AUX0);
        wr32(node, 0);
        wr32(node + 4u, seq);
        wr32(node + 8u, n_bytes);
        wrbytes(node + 12u, value, n_bytes);
        uint32_t tail = rd32(H_ROOT1);
        wr32(tail == 0 ? H_ROOT0 : tail, node);
        wr32(H_ROOT1, node);
        wr32(H_AUX0, seq + 1u);
        wr32(H_COUNT, count + 1u);
        return;
    }
    uint32_t head = rd32(H_ROOT0);
    uint32_t seq = rd32(head + 4u);
    if (seq != rd32(H_AUX1)) {
        flag("corrupt arena: the queue's head is not the next record");
        return;
    }
    uint32_t n_bytes = value_bytes_at(head + 8u);
    uint32_t next = rd32(head);
    wr32(H_ROOT0, next);
    if (next == 0) wr32(H_ROOT1, 0);
    wr32(H_AUX1, seq + 1u);
    arena_free(head, QUEUE_NODE_BYTES + n_bytes);
    wr32(H_COUNT, count - 1u);
}

// ---- tree (tree.ts): AVL ----------------------------------------------------

static uint32_t height(uint32_t n) {
    return n == 0 ? 0 : rd32(n + 12u);
}

static void fix_height(uint32_t n) {
    uint32_t hl = height(rd32(n)), hr = height(rd32(n + 4u));
    uint32_t h = 1u + (hl > hr ? hl : hr);
    if (rd32(n + 12u) != h) wr32(n + 12u, h);
}

static uint32_t rotate_right(uint32_t p) {
    uint32_t l = rd32(p);
    wr32(p, rd32(l + 4u));
    wr32(l + 4u, p);
    fix_height(p);
    fix_height(l);
    return l;
}

static uint32_t rotate_left(uint32_t p) {
    uint32_t r = rd32(p + 4u);
    wr32(p + 4u, rd32(r));
    wr32(r, p);
    fix_height(p);
    fix_height(r);
    return r;
}

static uint32_t rebalance(uint32_t p) {
    uint32_t l = rd32(p), r = rd32(p + 4u);
    uint32_t hl = height(l), hr = height(r);
    if (hl > hr + 1u) {
        if (height(rd32(l)) < height(rd32(l + 4u))) wr32(p, rotate_left(l));
        return rotate_right(p);
    }
    if (hr > hl + 1u) {
        if (height(rd32(r + 4u)) < height(rd32(r))) wr32(p + 4u, rotate_right(r));
        return rotate_left(p);
    }
    fix_height(p);
    return p;
}

static void tree_step(uint32_t *rng) {
    uint8_t value[VALUE_BYTES_MAX];
    uint32_t path[TREE_HEIGHT_MAX];
    uint8_t dirs[TREE_HEIGHT_MAX];
    uint32_t key = rng_next(rng) & (TREE_KEYS - 1u);
    uint32_t n_bytes = rng_value_bytes(rng);
    fill_value(value, rng_next(rng), n_bytes);
    uint32_t depth = 0;
    uint32_t n = rd32(H_ROOT0);
    while (n != 0) {
        uint32_t k = rd32(n + 8u);
        if (k == key) {
            free_value(rd32(n + 16u));
            wr32(n + 16u, alloc_value(value, n_bytes));
            return;
        }
        if (depth == TREE_HEIGHT_MAX) {
            flag("corrupt arena: a tree path is too long");
            return;
        }
        uint32_t dir = key < k ? 0u : 1u;
        path[depth] = n;
        dirs[depth] = (uint8_t)dir;
        depth++;
        n = rd32(n + 4u * dir);
    }
    uint32_t node = arena_alloc(TREE_NODE_BYTES);
    wr32(node, 0);
    wr32(node + 4u, 0);
    wr32(node + 8u, key);
    wr32(node + 12u, 1);
    wr32(node + 16u, alloc_value(value, n_bytes));
    uint32_t child = node;
    int settled = 0;
    for (uint32_t i = depth; i-- > 0;) {
        uint32_t p = path[i];
        uint32_t link = p + 4u * dirs[i];
        if (rd32(link) != child) wr32(link, child);
        uint32_t before = rd32(p + 12u);
        uint32_t top = rebalance(p);
        if (top == p && rd32(p + 12u) == before) {
            settled = 1;
            break;
        }
        child = top;
    }
    if (!settled && rd32(H_ROOT0) != child) wr32(H_ROOT0, child);
    wr32(H_COUNT, rd32(H_COUNT) + 1u);
}

// ---- hash (hash.ts) ---------------------------------------------------------

static void hash_init(void) {
    uint32_t buckets = arena_alloc(4u * HASH_BUCKETS);
    in_arena(buckets, 4u * HASH_BUCKETS);
    memset(A + buckets, 0, 4u * HASH_BUCKETS);
    wr32(H_ROOT0, buckets);
    wr32(H_ROOT1, HASH_BUCKETS);
}

static void hash_step(uint32_t *rng) {
    uint8_t value[VALUE_BYTES_MAX];
    uint32_t key = rng_next(rng) & (HASH_KEYS - 1u);
    uint32_t n_bytes = rng_value_bytes(rng);
    fill_value(value, rng_next(rng), n_bytes);
    uint32_t bucket = rd32(H_ROOT0) + 4u * (fmix32(key) & (HASH_BUCKETS - 1u));
    uint32_t count = rd32(H_COUNT);
    uint32_t n = rd32(bucket);
    for (uint32_t steps = 0; n != 0; steps++) {
        if (steps >= count) {
            flag("corrupt arena: a hash chain is longer than the count");
            return;
        }
        if (rd32(n + 4u) == key) {
            free_value(rd32(n + 8u));
            wr32(n + 8u, alloc_value(value, n_bytes));
            return;
        }
        n = rd32(n);
    }
    uint32_t node = arena_alloc(HASH_NODE_BYTES);
    wr32(node, rd32(bucket));
    wr32(node + 4u, key);
    wr32(node + 8u, alloc_value(value, n_bytes));
    wr32(bucket, node);
    wr32(H_COUNT, count + 1u);
}

// ---- the workload (workload.ts) ---------------------------------------------

static const char *const NAMES[] = {NULL, "list", "tree", "hash", "queue"};
static uint32_t workload;

NOINLINE static void arena_init(uint32_t seed) {
    memset(A, 0, HEADER_BYTES);
    wr32(H_MAGIC, ARENA_MAGIC);
    wr32(H_VERSION, ARENA_VERSION);
    wr32(H_WORKLOAD, workload);
    wr32(H_ARENA_BYTES, A_BYTES);
    wr32(H_SEED, seed);
    wr32(H_PRNG, seed);
    wr32(H_BUMP, HEADER_BYTES);
    if (workload == W_HASH) hash_init();
}

// layout.ts: validateHeader, plus each structure's validateRoots.
NOINLINE static void arena_attach(void) {
    if (rd32(H_MAGIC) != ARENA_MAGIC) fail("corrupt arena: bad magic");
    if (rd32(H_VERSION) != ARENA_VERSION) fail("corrupt arena: another layout version");
    if (rd32(H_WORKLOAD) != workload) fail("the recovered arena holds another workload");
    if (rd32(H_ARENA_BYTES) != A_BYTES) fail("the recovered arena has another size");
    uint32_t bump = rd32(H_BUMP);
    if (bump < HEADER_BYTES || bump > A_BYTES || bump % ALLOC_GRAIN_BYTES != 0) fail("corrupt arena: allocator bump out of range");
    uint32_t live = rd32(H_LIVE_BYTES);
    if (live > bump - HEADER_BYTES || live % ALLOC_GRAIN_BYTES != 0) fail("corrupt arena: live bytes out of range");
    for (uint32_t i = 0; i < ALLOC_CLASSES; i++) {
        uint32_t f = rd32(H_FREE + 4u * i);
        if (f != 0 && !is_block(f, bump)) fail("corrupt arena: a free list starts outside the blocks");
    }
    uint32_t count = rd32(H_COUNT), r0 = rd32(H_ROOT0), r1 = rd32(H_ROOT1);
    if (workload == W_HASH) {
        if (r1 != HASH_BUCKETS || !is_block(r0, bump) || r0 + 4u * HASH_BUCKETS > bump) fail("corrupt arena: bad bucket array");
        return;
    }
    if (r0 != 0 && !is_block(r0, bump)) fail("corrupt arena: root is not a block");
    if ((r0 == 0) != (count == 0)) fail("corrupt arena: root and count disagree");
    if (workload == W_QUEUE) {
        if (r1 != 0 && !is_block(r1, bump)) fail("corrupt arena: queue tail is not a block");
        if ((r1 == 0) != (count == 0)) fail("corrupt arena: queue tail and count disagree");
        if (rd32(H_AUX0) - rd32(H_AUX1) != count) fail("corrupt arena: queue sequence numbers and count disagree");
    }
}

// Not inlined into main, which the rewrite instruments (see `trouble`).
NOINLINE static void step(void) {
    uint32_t rng = rd32(H_PRNG);
    switch (workload) {
        case W_LIST: list_step(&rng); break;
        case W_TREE: tree_step(&rng); break;
        case W_HASH: hash_step(&rng); break;
        default: queue_step(&rng); break;
    }
    wr32(H_PRNG, rng);
    wr64(H_OPS, rd64(H_OPS) + 1u);
}

static uint64_t end_cycle(void) {
    uint64_t cycles = rd64(H_CYCLES) + 1u;
    wr64(H_CYCLES, cycles);
    return cycles;
}

// CRC-32C (Castagnoli), reflected, as native/src/crc32c.c and src/replicate/crc32c.ts.
static uint32_t crc_table[256];

NOINLINE static uint32_t crc32c(const uint8_t *p, uint32_t n) {
    if (crc_table[1] == 0) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1u ? (c >> 1) ^ 0x82f63b78u : c >> 1;
            crc_table[i] = c;
        }
    }
    uint32_t c = 0xffffffffu;
    for (uint32_t i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xffu] ^ (c >> 8);
    return ~c;
}

// ---- main -------------------------------------------------------------------

static _Noreturn void usage(void) {
    line l = {.n = 0};
    put_str(&l, "usage: cdabench <list|tree|hash|queue> [--opt N] [--ops N] [--seed N]");
    emit(&l, 2);
    put_str(&l, "                [--arena-bytes N] [--no-cda] [--progress N] [--timing]");
    emit(&l, 2);
    exit(2);
}

// A decimal in [lo, hi]; anything else is a usage error.
NOINLINE static uint64_t parse_num(const char *s, uint64_t lo, uint64_t hi) {
    if (s == NULL || *s == '\0') usage();
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9u) / 10u) usage();
        v = v * 10u + (uint64_t)(*s - '0');
    }
    if (v < lo || v > hi) usage();
    return v;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv) {
    uint64_t opt = 1, ops = 10000, seed = 1, arena_bytes = ARENA_BYTES_DEFAULT, progress = 0;
    int cda = 1, timing = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--opt") == 0) opt = parse_num(i + 1 < argc ? argv[++i] : NULL, 1, OPT_MAX);
        else if (strcmp(a, "--ops") == 0) ops = parse_num(i + 1 < argc ? argv[++i] : NULL, 0, OPS_MAX);
        else if (strcmp(a, "--seed") == 0) seed = parse_num(i + 1 < argc ? argv[++i] : NULL, 0, UINT32_MAX);
        else if (strcmp(a, "--arena-bytes") == 0) arena_bytes = parse_num(i + 1 < argc ? argv[++i] : NULL, ARENA_BYTES_MIN, ARENA_BYTES_MAX);
        else if (strcmp(a, "--progress") == 0) progress = parse_num(i + 1 < argc ? argv[++i] : NULL, 1, OPS_MAX);
        else if (strcmp(a, "--no-cda") == 0) cda = 0;
        else if (strcmp(a, "--timing") == 0) timing = 1;
        else if (workload == 0 && a[0] != '-') {
            for (uint32_t w = W_LIST; w <= W_QUEUE; w++)
                if (strcmp(a, NAMES[w]) == 0) workload = w;
            if (workload == 0) usage();
        } else usage();
    }
    if (workload == 0 || ops % opt != 0 || arena_bytes % ARENA_PAGE_BYTES != 0) usage();

    A_BYTES = (uint32_t)arena_bytes;
    A = A_BYTES <= sizeof arena_static ? arena_static : aligned_alloc(ARENA_PAGE_BYTES, A_BYTES);
    if (A == NULL) fail("out of memory for the arena");
    if (A != arena_static) memset(A, 0, A_BYTES);
    line l = {.n = 0};
    put_str(&l, "cdabench workload=");
    put_str(&l, NAMES[workload]);
    put_field(&l, " opt=", opt);
    put_field(&l, " ops=", ops);
    put_field(&l, " seed=", seed);
    put_field(&l, " arena-bytes=", A_BYTES);
    put_field(&l, " arena-at=", (uintptr_t)A);
    put_str(&l, cda ? " cda=on" : " cda=off");
    emit(&l, 1);

    int64_t recovered = 0;
    if (cda) {
        if (us_cda_register(A, A_BYTES) < 1) fail("cda_register refused the arena");
        recovered = us_cda_recover();
        if (recovered < 0) fail("cda_recover failed");
    }
    if (recovered > 0) {
        arena_attach();
        if (rd64(H_CYCLES) != (uint64_t)recovered || rd64(H_OPS) != (uint64_t)recovered * opt)
            fail("the recovered arena's cycle and operation counts do not match the cycle recovered and --opt");
        put_field(&l, "recovered cycle=", (uint64_t)recovered);
        put_field(&l, " ops=", rd64(H_OPS));
        emit(&l, 1);
    } else {
        arena_init((uint32_t)seed);
        if (trouble) fail(trouble);
    }

    uint64_t start_ns = timing ? now_ns() : 0;
    uint32_t retries = 0;
    while (rd64(H_OPS) < ops) {
        if (cda && us_cda_begin() != 0) fail("cda_begin failed");
        for (uint64_t i = 0; i < opt; i++) {
            step();
            if (trouble) fail(trouble);
        }
        uint64_t cycle = end_cycle();
        if (cda) {
            int64_t committed = us_cda_end();
            if (committed == US_CDA_EIO && retries < CDA_RETRIES_MAX) {
                retries++;  // not committed; the host put the arena back as of begin
                continue;
            }
            if (committed < 0) fail("cda_end failed");
            if ((uint64_t)committed != cycle) fail("cda_end committed another cycle number than the arena counts");
            retries = 0;
        }
        if (progress && cycle % progress == 0) {
            put_field(&l, "progress cycle=", cycle);
            put_field(&l, " ops=", rd64(H_OPS));
            emit(&l, 1);
        }
    }
    if (timing) {
        uint64_t ns = now_ns() - start_ns;
        put_field(&l, "cdabench timing ns=", ns);
        put_field(&l, " ns-per-op=", ops ? ns / ops : 0);
        emit(&l, 2);
    }
    put_str(&l, "done workload=");
    put_str(&l, NAMES[workload]);
    put_field(&l, " ops=", rd64(H_OPS));
    put_field(&l, " cycles=", rd64(H_CYCLES));
    put_field(&l, " count=", rd32(H_COUNT));
    put_str(&l, " digest=");
    put_hex32(&l, crc32c(A, A_BYTES));
    emit(&l, 1);
    return 0;
}
