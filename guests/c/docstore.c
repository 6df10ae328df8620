// understudy: reactor
// understudy: cflags -Wl,--wrap=malloc -Wl,--wrap=free -Wl,--wrap=calloc -Wl,--wrap=realloc -Wl,--wrap=aligned_alloc -Wl,--wrap=posix_memalign -Wl,--wrap=sbrk
//
// docstore — a small document store: records of "field=value" pairs under an
// id, a hash index on the id and a secondary hash index on the "tag" field.
// With the balloon SDK.
//
//   PUT <id> <field=value ...>  -> OK         replaces a record
//   GET <id>                    -> the fields | NOT_FOUND
//   DEL <id>                    -> OK | NOT_FOUND
//   FIND tag <value>            -> <count>    through the tag index
//   FIND <field> <value>        -> <count>    by scanning every record
//   FILL <n>                    -> OK         PUT doc:<i> tag=t<i%97> n=<i> body=<~160 bytes>, i continuing
//   DELRANGE <from> <to>        -> <deleted>  DEL doc:<i> for from <= i < to
//   COUNT                       -> <records>
//
// Errors answer "ERR <reason>".

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "understudy.h"
#include "understudy_balloon.h"

US_REACTOR_DEFINE()
US_BALLOON_DEFINE()

#define BUCKETS (1u << 18)
#define FILL_MAX 5000000u
#define RECORD_BYTES_MAX 4096u

typedef struct doc {
    struct doc *next_id, *next_tag;
    uint64_t id_hash, tag_hash;
    uint32_t id_len, len;
    char text[];   /* id, ' ', fields */
} doc;

static doc **by_id_, **by_tag_;
static uint32_t count_, filled_;

static uint64_t h64(const char *p, uint32_t n) {
    uint64_t h = 1469598103934665603ull;
    for (uint32_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

/* The value of the field in a record's fields, or NULL. */
static const char *field_of(const doc *d, const char *field, uint32_t flen, uint32_t *vlen) {
    const char *p = d->text + d->id_len + 1, *end = d->text + d->len;
    while (p < end) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        const char *e = sp ? sp : end;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        if (eq && (uint32_t)(eq - p) == flen && memcmp(p, field, flen) == 0) { *vlen = (uint32_t)(e - eq - 1); return eq + 1; }
        p = e + 1;
    }
    return NULL;
}

static doc **find_id(const char *id, uint32_t n, uint64_t h) {
    doc **pp = &by_id_[h & (BUCKETS - 1)];
    while (*pp && !((*pp)->id_hash == h && (*pp)->id_len == n && memcmp((*pp)->text, id, n) == 0)) pp = &(*pp)->next_id;
    return pp;
}

static void unlink_tag(doc *d) {
    doc **pp = &by_tag_[d->tag_hash & (BUCKETS - 1)];
    while (*pp && *pp != d) pp = &(*pp)->next_tag;
    if (*pp) *pp = d->next_tag;
}

static int del(const char *id, uint32_t n) {
    doc **pp = find_id(id, n, h64(id, n));
    if (!*pp) return 0;
    doc *d = *pp;
    *pp = d->next_id;
    unlink_tag(d);
    free(d);
    count_--;
    return 1;
}

/* rec = "<id> <fields>" */
static int put(const char *rec, uint32_t len) {
    const char *sp = memchr(rec, ' ', len);
    uint32_t id_len = sp ? (uint32_t)(sp - rec) : len;
    if (id_len == 0 || len > RECORD_BYTES_MAX) return -1;
    del(rec, id_len);
    doc *d = (doc *)malloc(sizeof(doc) + len + 1);
    if (!d) return -1;
    memcpy(d->text, rec, len);
    d->text[len] = 0;
    d->len = len; d->id_len = id_len;
    d->id_hash = h64(rec, id_len);
    uint32_t vlen = 0;
    const char *tag = sp ? field_of(d, "tag", 3, &vlen) : NULL;
    d->tag_hash = tag ? h64(tag, vlen) : 0;
    doc **slot = find_id(rec, id_len, d->id_hash);
    d->next_id = *slot; *slot = d;
    d->next_tag = by_tag_[d->tag_hash & (BUCKETS - 1)]; by_tag_[d->tag_hash & (BUCKETS - 1)] = d;
    count_++;
    return 0;
}

static uint32_t find(const char *field, uint32_t flen, const char *val, uint32_t vlen_want) {
    uint32_t found = 0, vlen;
    if (flen == 3 && memcmp(field, "tag", 3) == 0) {
        uint64_t h = h64(val, vlen_want);
        for (doc *d = by_tag_[h & (BUCKETS - 1)]; d; d = d->next_tag) {
            const char *v = field_of(d, "tag", 3, &vlen);
            if (d->tag_hash == h && v && vlen == vlen_want && memcmp(v, val, vlen) == 0) found++;
        }
        return found;
    }
    for (uint32_t b = 0; b < BUCKETS; b++)
        for (doc *d = by_id_[b]; d; d = d->next_id) {
            const char *v = field_of(d, field, flen, &vlen);
            if (v && vlen == vlen_want && memcmp(v, val, vlen) == 0) found++;
        }
    return found;
}

static int word(const char **p, const char *end, const char **w, uint32_t *n) {
    while (*p < end && **p == ' ') (*p)++;
    const char *s = *p;
    while (*p < end && **p != ' ') (*p)++;
    *w = s; *n = (uint32_t)(*p - s);
    return *n ? 0 : -1;
}

static uint32_t num(const char *w, uint32_t n) {
    uint64_t v = 0;
    for (uint32_t i = 0; i < n && i < 10 && w[i] >= '0' && w[i] <= '9'; i++) v = v * 10 + (uint32_t)(w[i] - '0');
    return v > 0xffffffffu ? 0xffffffffu : (uint32_t)v;
}

US_HANDLER(handle, req, len, resp) {
    if (!by_id_) {
        by_id_ = (doc **)calloc(BUCKETS, sizeof(doc *));
        by_tag_ = (doc **)calloc(BUCKETS, sizeof(doc *));
        if (!by_id_ || !by_tag_) { us_resp_str(resp, "ERR out of memory"); return; }
    }
    while (len && (req[len - 1] == '\n' || req[len - 1] == '\r')) len--;
    const char *p = req, *end = req + len, *cmd, *a, *b;
    uint32_t cn, an, bn;
    if (word(&p, end, &cmd, &cn)) { us_resp_str(resp, "ERR empty request"); return; }
    while (p < end && *p == ' ') p++;
    if (cn == 3 && memcmp(cmd, "PUT", 3) == 0) {
        us_resp_str(resp, put(p, (uint32_t)(end - p)) == 0 ? "OK" : "ERR bad record");
    } else if (cn == 3 && memcmp(cmd, "GET", 3) == 0 && !word(&p, end, &a, &an)) {
        doc *d = *find_id(a, an, h64(a, an));
        if (d) us_resp_bytes(resp, d->text + d->id_len + 1 > d->text + d->len ? d->text + d->len : d->text + d->id_len + 1,
                             d->len > d->id_len ? d->len - d->id_len - 1 : 0);
        else us_resp_str(resp, "NOT_FOUND");
    } else if (cn == 3 && memcmp(cmd, "DEL", 3) == 0 && !word(&p, end, &a, &an)) {
        us_resp_str(resp, del(a, an) ? "OK" : "NOT_FOUND");
    } else if (cn == 4 && memcmp(cmd, "FIND", 4) == 0 && !word(&p, end, &a, &an) && !word(&p, end, &b, &bn)) {
        us_resp_u64(resp, find(a, an, b, bn));
    } else if (cn == 4 && memcmp(cmd, "FILL", 4) == 0 && !word(&p, end, &a, &an)) {
        uint32_t n = num(a, an);
        if (n > FILL_MAX) { us_resp_str(resp, "ERR FILL at most 5000000"); return; }
        char rec[512];
        for (uint32_t k = 0; k < n; k++, filled_++) {
            int m = snprintf(rec, sizeof rec, "doc:%u tag=t%u n=%u body=", filled_, filled_ % 97, filled_);
            for (int j = 0; j < 160; j++) rec[m + j] = (char)('a' + (filled_ * 31 + (uint32_t)j * 7) % 26);
            if (put(rec, (uint32_t)m + 160) != 0) { us_resp_str(resp, "ERR out of memory"); return; }
        }
        us_resp_str(resp, "OK");
    } else if (cn == 8 && memcmp(cmd, "DELRANGE", 8) == 0 && !word(&p, end, &a, &an) && !word(&p, end, &b, &bn)) {
        uint32_t from = num(a, an), to = num(b, bn), gone = 0;
        char id[32];
        for (uint32_t i = from; i < to && i < filled_; i++) {
            int m = snprintf(id, sizeof id, "doc:%u", i);
            gone += (uint32_t)del(id, (uint32_t)m);
        }
        us_resp_u64(resp, gone);
    } else if (cn == 5 && memcmp(cmd, "COUNT", 5) == 0) {
        us_resp_u64(resp, count_);
    } else {
        us_resp_str(resp, "ERR unknown command");
    }
}
