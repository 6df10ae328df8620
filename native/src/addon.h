// Shared declarations of the understudy native addon. Each .c file owns one
// group of functions and registers them on the exports object in its init.
#ifndef UNDERSTUDY_ADDON_H
#define UNDERSTUDY_ADDON_H

#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

// Page granularity of tracking and of the page helpers. Wasm pages are 64 KiB,
// but the kernel tracks 4 KiB pages, and so do we.
#define US_PAGE_BYTES 4096u

// Throws a JS Error with a stable `code` property; returns NULL so callers can
// `return us_throw(...)`.
napi_value us_throw(napi_env env, const char* code, const char* message);

// Throws (and returns false) when a napi call failed; every napi call is checked.
#define US_NAPI_OK(env, call)                                      \
  do {                                                             \
    if ((call) != napi_ok) {                                       \
      us_throw((env), "ERR_NATIVE_NAPI", "N-API call failed: " #call); \
      return NULL;                                                 \
    }                                                              \
  } while (0)

// Reads a typed array / ArrayBuffer / Buffer argument as (data, length).
// Returns false (with a JS exception pending) when the value is none of them.
int us_get_bytes(napi_env env, napi_value value, uint8_t** data, size_t* length);

int us_register(napi_env env, napi_value exports, const char* name, napi_callback fn);

// Reads a napi external made by this addon (a handle); otherwise throws
// ERR_NATIVE_ARG "expected a <what> handle" and returns false.
int us_get_external(napi_env env, napi_value value, const char* what, void** out);

napi_value us_init_pages(napi_env env, napi_value exports);
napi_value us_init_crc32c(napi_env env, napi_value exports);
napi_value us_init_uffd(napi_env env, napi_value exports);
napi_value us_init_delta(napi_env env, napi_value exports);
napi_value us_init_exclude(napi_env env, napi_value exports);
napi_value us_init_balloon(napi_env env, napi_value exports);
napi_value us_init_copier(napi_env env, napi_value exports);
napi_value us_init_deadline(napi_env env, napi_value exports);

// The page copier (copier.c) for C callers: a helper thread that copies
// memory pages [pages[i] & mask] into packed[i] alongside the calling thread.
// us_copier_gather returns when every page is copied; the caller keeps the
// buffers and the list alive and unchanged until then.
typedef struct us_copier us_copier;
us_copier* us_copier_new(void);  // NULL when out of memory
void us_copier_gather(us_copier* c, uint8_t* memory, uint8_t* packed, const uint32_t* pages, uint32_t mask, uint32_t count);
void us_copier_free(us_copier* c);  // joins the helper; NULL is a no-op

uint32_t us_crc32c(uint32_t crc, const uint8_t* data, size_t length);

// Reads a Uint32Array argument as (data, count); otherwise throws `code` with
// `message` and returns false. The pointer is valid while no JS runs.
int us_get_u32_array(napi_env env, napi_value value, uint32_t** data, size_t* count, const char* code, const char* message);

// obj[name] = value (a JS number); false with an exception pending on failure.
int us_set_number(napi_env env, napi_value obj, const char* name, double value);

// Shared page helpers (pages.c).
// A new Uint32Array holding a copy of values[0..count); NULL with an exception pending on failure.
napi_value us_u32_array(napi_env env, const uint32_t* values, size_t count);
// Whether the 4 KiB page at p is all zero bytes.
int us_page_is_zero(const uint8_t* p);

#endif
