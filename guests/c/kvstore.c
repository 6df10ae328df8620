// understudy: reactor
//
// kvstore — a reactor key-value store that keeps all its data in the guest
// heap: a chained hash table (resized as it grows) of malloc'd entries, keys
// and values.
//
// Exports: memory, _initialize, us_request_buffer, handle (see understudy.h).
// `handle` takes one text command per request (a trailing "\n" or "\r\n" is
// ignored; words are separated by one space; keys contain no spaces):
//
//   SET <key> <value>   -> OK            value is the rest of the request
//   GET <key>           -> <value> | NOT_FOUND
//   DEL <key>           -> OK | NOT_FOUND
//   COUNT               -> <entries>
//   SUM                 -> <16 hex digits>  order-independent digest of all
//                                           entries (same set, same SUM)
//   FILL <n> <bytes>    -> OK            sets n entries "fill:<i>" with
//                                        deterministic <bytes>-byte values; i
//                                        continues across FILLs
//   STATS               -> count=<n> bytes=<key+value bytes> buckets=<n>
//
// Errors answer "ERR <reason>". Answers are a pure function of the sequence
// of requests since _initialize.

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "understudy.h"

// Bounds on one request's work, checked before doing it.
#define KEY_BYTES_MAX 4096u
#define FILL_ENTRIES_MAX 10000000u
#define FILL_VALUE_BYTES_MAX (1u << 20)
#define FILL_TOTAL_BYTES_MAX (1ull << 30)
#define BUCKETS_MIN 16u
// 2^24 buckets (64 MiB of heads) serve 16 M entries at load factor 1.
#define BUCKETS_MAX (1u << 24)

typedef struct entry {
    struct entry *next;
    uint64_t hash;
    char *key;
    char *value;
    uint32_t key_len;
    uint32_t value_len;
} entry;

static entry **buckets;
static uint32_t bucket_count;
static uint64_t entry_count;
static uint64_t stored_bytes;
static uint64_t fill_next;

static uint64_t fmix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static uint64_t hash_bytes(const char *p, uint32_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint32_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 0x100000001b3ull;
    return fmix64(h ^ n);
}

static int table_init(void) {
    buckets = calloc(BUCKETS_MIN, sizeof(entry *));
    if (!buckets) return -1;
    bucket_count = BUCKETS_MIN;
    return 0;
}

// Doubles the table when the load factor passes 1. A failed resize leaves the
// old table, which still works (with longer chains).
static void table_maybe_grow(void) {
    if (entry_count <= bucket_count || bucket_count >= BUCKETS_MAX) return;
    uint32_t count = bucket_count * 2;
    entry **grown = calloc(count, sizeof(entry *));
    if (!grown) return;
    for (uint32_t b = 0; b < bucket_count; b++) {
        entry *e = buckets[b];
        while (e) {
            entry *next = e->next;
            entry **head = &grown[e->hash & (count - 1)];
            e->next = *head;
            *head = e;
            e = next;
        }
    }
    free(buckets);
    buckets = grown;
    bucket_count = count;
}

static entry **find(const char *key, uint32_t key_len, uint64_t hash) {
    entry **link = &buckets[hash & (bucket_count - 1)];
    for (; *link; link = &(*link)->next) {
        entry *e = *link;
        if (e->hash == hash && e->key_len == key_len && memcmp(e->key, key, key_len) == 0) break;
    }
    return link;
}

static char *copy(const char *p, uint32_t n) {
    char *c = malloc(n ? n : 1);
    if (c && n) memcpy(c, p, n);
    return c;
}

// Returns 0, or -1 when out of memory (the store is then unchanged).
static int set(const char *key, uint32_t key_len, const char *value, uint32_t value_len) {
    uint64_t hash = hash_bytes(key, key_len);
    entry **link = find(key, key_len, hash);
    char *v = copy(value, value_len);
    if (!v) return -1;
    entry *e = *link;
    if (e) {
        stored_bytes -= e->value_len;
        free(e->value);
    } else {
        e = malloc(sizeof(entry));
        char *k = copy(key, key_len);
        if (!e || !k) {
            free(e);
            free(k);
            free(v);
            return -1;
        }
        e->next = NULL;
        e->hash = hash;
        e->key = k;
        e->key_len = key_len;
        stored_bytes += key_len;
        *link = e;
        entry_count++;
    }
    e->value = v;
    e->value_len = value_len;
    stored_bytes += value_len;
    table_maybe_grow();
    return 0;
}

static int del(const char *key, uint32_t key_len) {
    entry **link = find(key, key_len, hash_bytes(key, key_len));
    entry *e = *link;
    if (!e) return 0;
    *link = e->next;
    stored_bytes -= (uint64_t)e->key_len + e->value_len;
    entry_count--;
    free(e->key);
    free(e->value);
    free(e);
    return 1;
}

// Wrapping sum of per-entry digests: independent of insertion order and of
// the table's size.
static uint64_t sum(void) {
    uint64_t s = 0;
    for (uint32_t b = 0; b < bucket_count; b++) {
        for (entry *e = buckets[b]; e; e = e->next) {
            s += fmix64(e->hash ^ (hash_bytes(e->value, e->value_len) * 0x9e3779b97f4a7c15ull));
        }
    }
    return s;
}

// --- request parsing ------------------------------------------------------

typedef struct {
    const char *p;
    uint32_t n;
} span;

// Splits off the word before the first space; `rest` gets what follows the
// space. Returns 0 if there is no space.
static int split(span in, span *word, span *rest) {
    const char *sp = memchr(in.p, ' ', in.n);
    if (!sp) {
        *word = in;
        rest->p = in.p + in.n;
        rest->n = 0;
        return 0;
    }
    word->p = in.p;
    word->n = (uint32_t)(sp - in.p);
    rest->p = sp + 1;
    rest->n = in.n - word->n - 1;
    return 1;
}

static int is(span s, const char *lit) {
    size_t n = strlen(lit);
    return s.n == n && memcmp(s.p, lit, n) == 0;
}

// Strict unsigned decimal in [0, max]; returns 0 on success.
static int parse_u64(span s, uint64_t max, uint64_t *out) {
    if (s.n == 0 || s.n > 20) return -1;
    uint64_t v = 0;
    for (uint32_t i = 0; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9') return -1;
        uint64_t d = (uint64_t)(s.p[i] - '0');
        if (v > (max - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int valid_key(span k) {
    return k.n > 0 && k.n <= KEY_BYTES_MAX && !memchr(k.p, ' ', k.n);
}

static void fill(us_buf *resp, uint64_t n, uint64_t value_bytes) {
    char key[32];
    char *value = malloc(value_bytes ? value_bytes : 1);
    if (!value) {
        us_resp_str(resp, "ERR out of memory");
        return;
    }
    for (uint64_t i = 0; i < n; i++) {
        uint64_t seq = fill_next++;
        // key = "fill:<seq>"
        char digits[20];
        int d = 20;
        uint64_t v = seq;
        do { digits[--d] = (char)('0' + v % 10); v /= 10; } while (v);
        memcpy(key, "fill:", 5);
        memcpy(key + 5, digits + d, (size_t)(20 - d));
        uint32_t key_len = 5 + (uint32_t)(20 - d);
        uint64_t x = fmix64(seq + 1) | 1;
        for (uint64_t j = 0; j < value_bytes; j++) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            value[j] = (char)('a' + (x * 0x2545f4914f6cdd1dull >> 59) % 26);
        }
        if (set(key, key_len, value, (uint32_t)value_bytes) != 0) {
            free(value);
            us_resp_str(resp, "ERR out of memory after ");
            us_resp_u64(resp, i);
            us_resp_str(resp, " entries");
            return;
        }
    }
    free(value);
    us_resp_str(resp, "OK");
}

US_REACTOR_DEFINE()

US_HANDLER(handle, req, len, resp) {
    if (!buckets && table_init() != 0) {
        us_resp_str(resp, "ERR out of memory");
        return;
    }
    span in = {req, len};
    if (in.n && in.p[in.n - 1] == '\n') in.n--;
    if (in.n && in.p[in.n - 1] == '\r') in.n--;
    span cmd, rest, key, value;
    int has_args = split(in, &cmd, &rest);

    if (is(cmd, "SET")) {
        if (!has_args || !split(rest, &key, &value) || !valid_key(key)) {
            us_resp_str(resp, "ERR usage: SET <key> <value>");
        } else if (set(key.p, key.n, value.p, value.n) != 0) {
            us_resp_str(resp, "ERR out of memory");
        } else {
            us_resp_str(resp, "OK");
        }
    } else if (is(cmd, "GET") || is(cmd, "DEL")) {
        if (!has_args || !valid_key(rest)) {
            us_resp_str(resp, is(cmd, "GET") ? "ERR usage: GET <key>" : "ERR usage: DEL <key>");
        } else if (is(cmd, "DEL")) {
            us_resp_str(resp, del(rest.p, rest.n) ? "OK" : "NOT_FOUND");
        } else {
            entry *e = *find(rest.p, rest.n, hash_bytes(rest.p, rest.n));
            if (e) us_resp_bytes(resp, e->value, e->value_len);
            else us_resp_str(resp, "NOT_FOUND");
        }
    } else if (is(cmd, "COUNT") && !has_args) {
        us_resp_u64(resp, entry_count);
    } else if (is(cmd, "SUM") && !has_args) {
        us_resp_hex64(resp, sum());
    } else if (is(cmd, "STATS") && !has_args) {
        us_resp_str(resp, "count=");
        us_resp_u64(resp, entry_count);
        us_resp_str(resp, " bytes=");
        us_resp_u64(resp, stored_bytes);
        us_resp_str(resp, " buckets=");
        us_resp_u64(resp, bucket_count);
    } else if (is(cmd, "FILL")) {
        span n_s, bytes_s;
        uint64_t n, bytes;
        if (!has_args || !split(rest, &n_s, &bytes_s) ||
            parse_u64(n_s, FILL_ENTRIES_MAX, &n) != 0 ||
            parse_u64(bytes_s, FILL_VALUE_BYTES_MAX, &bytes) != 0) {
            us_resp_str(resp, "ERR usage: FILL <n 0..10000000> <bytes 0..1048576>");
        } else if (n * bytes > FILL_TOTAL_BYTES_MAX) {
            us_resp_str(resp, "ERR FILL larger than 1 GiB");
        } else {
            fill(resp, n, bytes);
        }
    } else {
        us_resp_str(resp, "ERR unknown command");
    }
}
