// understudy: reactor
// understudy: cflags -Wl,--wrap=malloc -Wl,--wrap=free -Wl,--wrap=calloc -Wl,--wrap=realloc -Wl,--wrap=aligned_alloc -Wl,--wrap=posix_memalign -Wl,--wrap=sbrk
//
// compress — a compression job in a reactor: the memory-hungry, then
// mostly-freed shape of a build step. With the balloon SDK.
//
//   RUN <MiB> <seed>  -> <in bytes> <out bytes> <16 hex digest>
//       generates <MiB> MiB of compressible text (1..512), builds a token
//       tree over it (a node per 64 bytes, like a parser's), compresses it
//       with an LZ77 loop (hash chains over a 1 Mi-entry table), keeps the
//       digest and size, and frees everything. Deterministic.
//   KEEP <MiB>        -> OK   keeps <MiB> MiB of generated data (live set)
//   STATS             -> runs=<n> kept=<bytes>
//
// Errors answer "ERR <reason>".

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "understudy.h"
#include "understudy_balloon.h"

US_REACTOR_DEFINE()
US_BALLOON_DEFINE()

#define RUN_MIB_MAX 512u
#define KEEP_BLOCKS_MAX 4096u
#define HASH_BITS 20u
#define WINDOW_BYTES (64u << 10)
#define MATCH_MIN 4u
#define MATCH_MAX 258u

typedef struct node { struct node *left, *right; uint32_t at; uint32_t len; } node;

static uint32_t runs_;
static char *kept_[KEEP_BLOCKS_MAX];
static uint32_t kept_count_;
static uint64_t kept_bytes_;

static uint64_t rng_(uint64_t *s) { *s = *s * 6364136223846793005ull + 1442695040888963407ull; return *s >> 33; }

static void generate(char *p, size_t n, uint64_t seed) {
    static const char *words[] = {"static", "int", "return", "struct", "node", "void", "const", "char",
                                  "while", "for", "if", "else", "uint32_t", "malloc", "free", "size"};
    size_t i = 0;
    while (i < n) {
        const char *w = words[rng_(&seed) & 15];
        while (*w && i < n) p[i++] = *w++;
        if (i < n) p[i++] = (rng_(&seed) & 7) ? ' ' : '\n';
    }
}

/* A parser-like tree: one node per 64-byte token run, linked as a
 * left-leaning tree with pseudo-random right children. */
static node *build_tree(size_t n, uint64_t seed, uint32_t *count) {
    node *root = NULL;
    node *prev = NULL;
    for (size_t at = 0; at < n; at += 64) {
        node *x = (node *)malloc(sizeof(node));
        if (!x) return root;
        x->left = root; x->right = (rng_(&seed) & 1) ? prev : NULL;
        x->at = (uint32_t)at; x->len = 64;
        prev = root = x;
        (*count)++;
    }
    return root;
}

static void free_tree(node *root) {
    while (root) { node *next = root->left; free(root); root = next; }
}

/* LZ77 with one candidate per hash bucket; output: literal runs and
 * (offset, length) pairs, byte-coded. Returns the output size. */
static size_t lz(const uint8_t *in, size_t n, uint8_t *out, uint32_t *table) {
    size_t i = 0, o = 0, lit = 0;
    while (i + MATCH_MIN <= n) {
        uint32_t h = ((uint32_t)in[i] | (uint32_t)in[i+1] << 8 | (uint32_t)in[i+2] << 16 | (uint32_t)in[i+3] << 24) * 2654435761u >> (32 - HASH_BITS);
        uint32_t cand = table[h];
        table[h] = (uint32_t)i + 1;
        size_t len = 0;
        if (cand && i - (cand - 1) <= WINDOW_BYTES) {
            const uint8_t *a = in + cand - 1, *b = in + i;
            while (len < MATCH_MAX && i + len < n && a[len] == b[len]) len++;
        }
        if (len >= MATCH_MIN) {
            out[o++] = (uint8_t)(0x80 | (lit > 127 ? 127 : lit));
            lit = 0;
            uint32_t off = (uint32_t)(i - (cand - 1));
            out[o++] = (uint8_t)off; out[o++] = (uint8_t)(off >> 8); out[o++] = (uint8_t)(off >> 16);
            out[o++] = (uint8_t)(len - MATCH_MIN);
            i += len;
        } else {
            out[o++] = in[i++];
            lit++;
        }
    }
    while (i < n) out[o++] = in[i++];
    return o;
}

static uint64_t digest(const uint8_t *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static int parse_u32(const char *p, uint32_t len, uint32_t *at, uint32_t *out) {
    uint64_t v = 0;
    uint32_t i = *at, digits = 0;
    while (i < len && p[i] == ' ') i++;
    while (i < len && p[i] >= '0' && p[i] <= '9' && digits < 10) { v = v * 10 + (uint32_t)(p[i++] - '0'); digits++; }
    if (!digits || v > 0xffffffffu) return -1;
    *at = i; *out = (uint32_t)v;
    return 0;
}

US_HANDLER(handle, req, len, resp) {
    while (len && (req[len - 1] == '\n' || req[len - 1] == '\r')) len--;
    if (len >= 4 && memcmp(req, "RUN ", 4) == 0) {
        uint32_t at = 4, mib, seed;
        if (parse_u32(req, len, &at, &mib) || parse_u32(req, len, &at, &seed) || mib == 0 || mib > RUN_MIB_MAX) {
            us_resp_str(resp, "ERR usage: RUN <MiB 1..512> <seed>");
            return;
        }
        size_t n = (size_t)mib << 20;
        uint8_t *in = (uint8_t *)malloc(n);
        uint8_t *out = (uint8_t *)malloc(n + n / 2 + 16);
        uint32_t *table = (uint32_t *)calloc((size_t)1 << HASH_BITS, sizeof(uint32_t));
        uint32_t nodes = 0;
        node *tree = NULL;
        if (in && out && table) {
            generate((char *)in, n, seed);
            tree = build_tree(n, seed, &nodes);
        }
        if (!in || !out || !table) {
            free(in); free(out); free(table);
            us_resp_str(resp, "ERR out of memory");
            return;
        }
        size_t o = lz(in, n, out, table);
        uint64_t d = digest(out, o) ^ nodes;
        free_tree(tree);
        free(table); free(out); free(in);
        runs_++;
        us_resp_u64(resp, n); us_resp_str(resp, " ");
        us_resp_u64(resp, o); us_resp_str(resp, " ");
        us_resp_hex64(resp, d);
    } else if (len >= 5 && memcmp(req, "KEEP ", 5) == 0) {
        uint32_t at = 5, mib;
        if (parse_u32(req, len, &at, &mib) || mib > 1024 || kept_count_ + mib > KEEP_BLOCKS_MAX) {
            us_resp_str(resp, "ERR usage: KEEP <MiB>");
            return;
        }
        for (uint32_t i = 0; i < mib; i++) {
            char *b = (char *)malloc(1u << 20);
            if (!b) { us_resp_str(resp, "ERR out of memory"); return; }
            generate(b, 1u << 20, kept_count_ + 7);
            kept_[kept_count_++] = b;
            kept_bytes_ += 1u << 20;
        }
        us_resp_str(resp, "OK");
    } else if (len == 5 && memcmp(req, "STATS", 5) == 0) {
        us_resp_str(resp, "runs="); us_resp_u64(resp, runs_);
        us_resp_str(resp, " kept="); us_resp_u64(resp, kept_bytes_);
    } else {
        us_resp_str(resp, "ERR unknown command");
    }
}
