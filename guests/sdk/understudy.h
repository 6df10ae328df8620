/*
 * understudy.h — helpers for C guests run under understudy.
 *
 * 1. The reactor handler ABI
 * --------------------------
 * A reactor guest (built with -mexec-model=reactor) exports:
 *
 *   _initialize()                    wasi-libc's reactor entry; the host calls it
 *                                    once, before anything else.
 *   us_request_buffer(len: i32) -> i32
 *                                    returns a pointer to a guest-owned buffer of
 *                                    at least `len` bytes, or 0 if `len` is
 *                                    negative, above US_REQUEST_BYTES_MAX or the
 *                                    guest is out of memory. The host writes the
 *                                    request bytes there. The call may grow
 *                                    memory: re-read `memory.buffer` after it.
 *   <handler>(len: i32) -> i64       processes the `len` request bytes in that
 *                                    buffer and returns
 *                                    ((u64)respPtr << 32) | respLen, naming a
 *                                    guest-owned response that stays valid until
 *                                    the next call into the guest.
 *
 * A handler called with a length the buffer cannot hold answers
 * "ERR request length" rather than reading past the buffer. Text protocols
 * answer errors as "ERR <reason>" by convention.
 *
 * Use, in exactly one translation unit:
 *
 *   #include "understudy.h"
 *   US_REACTOR_DEFINE()
 *   US_HANDLER(handle, req, len, resp) {
 *       us_resp_str(resp, "OK");
 *   }
 *
 * 2. Hypercalls
 * -------------
 * The wasm import module name "understudy" is reserved for hypercalls that the
 * runtime provides:
 *
 *   us_report_error(code)  the guest found its own state broken (a failed
 *                          self-check); under `run --protect rollback` the host
 *                          rolls the guest back to a checkpoint and replays its
 *                          input; otherwise the guest ends with ERR_GUEST_REPORTED.
 *                          Does not return.
 *
 * More are declared here as
 *
 *   __attribute__((import_module("understudy"), import_name("<name>")))
 *   <type> us_<name>(...);
 *
 * A guest that does not call a declared import does not import it, so
 * declarations here cost nothing. Guests must not use "understudy" as an
 * import module for anything else.
 */
#ifndef UNDERSTUDY_H
#define UNDERSTUDY_H

__attribute__((import_module("understudy"), import_name("report_error"), noreturn))
void us_report_error(int code);

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Largest request a guest accepts: a bound on what the host can make the
 * guest allocate with one call. Requests are commands, not bulk data. */
#define US_REQUEST_BYTES_MAX (64u * 1024u * 1024u)
/* Largest response a guest builds; appends past it trap (a guest bug). */
#define US_RESPONSE_BYTES_MAX (64u * 1024u * 1024u)

typedef struct us_buf {
    char *data;
    uint32_t len;
    uint32_t cap;
} us_buf;

/* Grows `b` to hold at least `need` bytes. Returns 0 on success, -1 if `need`
 * exceeds `max` or malloc fails; `b` is unchanged on failure. */
static inline int us_buf_reserve(us_buf *b, uint32_t need, uint32_t max) {
    if (need <= b->cap) return 0;
    if (need > max) return -1;
    uint32_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap = (cap > max / 2) ? max : cap * 2;
    char *data = (char *)realloc(b->data, cap);
    if (!data) return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

/* Response helpers. Appends that overflow US_RESPONSE_BYTES_MAX or run out of
 * memory trap: a handler must bound what it answers. */
static inline void us_resp_reset(us_buf *r) { r->len = 0; }

static inline void us_resp_bytes(us_buf *r, const void *p, uint32_t n) {
    if (n > US_RESPONSE_BYTES_MAX - r->len ||
        us_buf_reserve(r, r->len + n, US_RESPONSE_BYTES_MAX) != 0) {
        __builtin_trap();
    }
    if (n) memcpy(r->data + r->len, p, n);
    r->len += n;
}

static inline void us_resp_str(us_buf *r, const char *s) {
    us_resp_bytes(r, s, (uint32_t)strlen(s));
}

static inline void us_resp_u64(us_buf *r, uint64_t v) {
    char tmp[20];
    int i = 20;
    do { tmp[--i] = (char)('0' + v % 10); v /= 10; } while (v);
    us_resp_bytes(r, tmp + i, (uint32_t)(20 - i));
}

static inline void us_resp_hex64(us_buf *r, uint64_t v) {
    static const char digits[] = "0123456789abcdef";
    char tmp[16];
    for (int i = 15; i >= 0; i--) { tmp[i] = digits[v & 15]; v >>= 4; }
    us_resp_bytes(r, tmp, 16);
}

static inline int64_t us_pack(const us_buf *r) {
    return (int64_t)(((uint64_t)(uintptr_t)r->data << 32) | (uint64_t)r->len);
}

/* Defines the request/response buffers and exports us_request_buffer. */
#define US_REACTOR_DEFINE()                                                     \
    us_buf us_request_;                                                         \
    us_buf us_response_;                                                        \
    __attribute__((export_name("us_request_buffer")))                          \
    int32_t us_request_buffer(int32_t len) {                                    \
        if (len < 0) return 0;                                                  \
        if (us_buf_reserve(&us_request_, (uint32_t)len ? (uint32_t)len : 1,    \
                           US_REQUEST_BYTES_MAX) != 0) return 0;                \
        return (int32_t)(uintptr_t)us_request_.data;                            \
    }

extern us_buf us_request_;
extern us_buf us_response_;

/* Defines an exported handler `name(len: i32) -> i64`. The body that follows
 * sees `req` (const char *, not NUL-terminated), `len` (uint32_t, already
 * checked against the request buffer) and `resp` (us_buf *, emptied). */
#define US_HANDLER(name, req, len, resp)                                        \
    static void us_handler_body_##name(const char *req, uint32_t len,          \
                                       us_buf *resp);                           \
    __attribute__((export_name(#name)))                                         \
    int64_t us_handler_export_##name(int32_t len_) {                            \
        /* The response pointer must be non-null even when empty. */            \
        if (us_buf_reserve(&us_response_, 1, US_RESPONSE_BYTES_MAX) != 0)      \
            __builtin_trap();                                                   \
        us_resp_reset(&us_response_);                                           \
        if (len_ < 0 || (uint32_t)len_ > us_request_.cap) {                     \
            us_resp_str(&us_response_, "ERR request length");                   \
        } else {                                                                \
            us_handler_body_##name(us_request_.data, (uint32_t)len_,           \
                                   &us_response_);                              \
        }                                                                       \
        return us_pack(&us_response_);                                          \
    }                                                                           \
    static void us_handler_body_##name(const char *req, uint32_t len,          \
                                       us_buf *resp)

#endif /* UNDERSTUDY_H */
