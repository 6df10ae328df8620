// Page helpers over guest memory: where a backing store lives, gather and
// scatter of 4 KiB pages, zero-page detection and page comparison. These are
// the memcpy-speed loops of checkpointing; JS decides which pages.
#include "addon.h"

#include <stdlib.h>
#include <string.h>

// backingStore(arrayBuffer) -> { address: bigint, byteLength: number }
// The address of a WebAssembly.Memory's buffer stays fixed across memory.grow
// on 64-bit V8 (the whole maximum is reserved up front), which is what lets
// the kernel trackers register it once.
static napi_value js_backing_store(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  bool is_ab = false;
  if (argc < 1 || napi_is_arraybuffer(env, argv[0], &is_ab) != napi_ok || !is_ab)
    return us_throw(env, "ERR_NATIVE_ARG", "backingStore(arrayBuffer) needs an ArrayBuffer");
  void* data = NULL;
  size_t length = 0;
  US_NAPI_OK(env, napi_get_arraybuffer_info(env, argv[0], &data, &length));
  napi_value out, address, byte_length;
  US_NAPI_OK(env, napi_create_object(env, &out));
  US_NAPI_OK(env, napi_create_bigint_uint64(env, (uint64_t)(uintptr_t)data, &address));
  US_NAPI_OK(env, napi_create_double(env, (double)length, &byte_length));
  US_NAPI_OK(env, napi_set_named_property(env, out, "address", address));
  US_NAPI_OK(env, napi_set_named_property(env, out, "byteLength", byte_length));
  return out;
}

// gatherPages(memory, pageIndices, packed): packed[i*4096..] = memory page pageIndices[i].
// scatterPages(packed, pageIndices, memory): the reverse.
static napi_value move_pages(napi_env env, napi_callback_info info, int gather) {
  size_t argc = 3;
  napi_value argv[3];
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) return us_throw(env, "ERR_NATIVE_ARG", "expected (bytes, pageIndices, bytes)");
  uint8_t *a, *b;
  size_t a_len, b_len, count;
  uint32_t* pages;
  if (!us_get_bytes(env, argv[0], &a, &a_len)) return NULL;
  if (!us_get_u32_array(env, argv[1], &pages, &count, "ERR_NATIVE_ARG", "expected a Uint32Array of page indices")) return NULL;
  if (!us_get_bytes(env, argv[2], &b, &b_len)) return NULL;
  uint8_t* memory = gather ? a : b;
  size_t memory_len = gather ? a_len : b_len;
  uint8_t* packed = gather ? b : a;
  size_t packed_len = gather ? b_len : a_len;
  if (count > packed_len / US_PAGE_BYTES) return us_throw(env, "ERR_NATIVE_RANGE", "packed buffer is smaller than the page list");
  size_t memory_pages = memory_len / US_PAGE_BYTES;
  for (size_t i = 0; i < count; i++) {
    if (pages[i] >= memory_pages) return us_throw(env, "ERR_NATIVE_RANGE", "page index past the end of memory");
  }
  for (size_t i = 0; i < count; i++) {
    // SAFETY: every index was checked above against memory_pages, and the
    // packed buffer holds at least `count` pages; both stores stay attached
    // because no JS runs inside this loop.
    uint8_t* m = memory + (size_t)pages[i] * US_PAGE_BYTES;
    uint8_t* p = packed + i * US_PAGE_BYTES;
    if (gather) memcpy(p, m, US_PAGE_BYTES);
    else memcpy(m, p, US_PAGE_BYTES);
  }
  return NULL;
}

static napi_value js_gather_pages(napi_env env, napi_callback_info info) { return move_pages(env, info, 1); }
static napi_value js_scatter_pages(napi_env env, napi_callback_info info) { return move_pages(env, info, 0); }

int us_page_is_zero(const uint8_t* p) {
  // 8-byte words OR-ed together; the compiler vectorises this loop.
  uint64_t acc = 0;
  for (size_t i = 0; i < US_PAGE_BYTES; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    acc |= w;
  }
  return acc == 0;
}

napi_value us_u32_array(napi_env env, const uint32_t* values, size_t count) {
  napi_value ab, arr;
  void* data = NULL;
  US_NAPI_OK(env, napi_create_arraybuffer(env, count * 4, &data, &ab));
  if (count) memcpy(data, values, count * 4);
  US_NAPI_OK(env, napi_create_typedarray(env, napi_uint32_array, count, ab, 0, &arr));
  return arr;
}

// nonZeroPages(bytes) -> Uint32Array of the indices of pages holding any non-zero byte.
// diffPages(a, b) -> Uint32Array of the indices of pages that differ (a and b same length).
static napi_value scan_pages(napi_env env, napi_callback_info info, int compare) {
  size_t argc = 2;
  napi_value argv[2];
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < (size_t)(compare ? 2 : 1)) return us_throw(env, "ERR_NATIVE_ARG", "missing argument");
  uint8_t *a, *b = NULL;
  size_t a_len, b_len = 0;
  if (!us_get_bytes(env, argv[0], &a, &a_len)) return NULL;
  if (compare) {
    if (!us_get_bytes(env, argv[1], &b, &b_len)) return NULL;
    if (a_len != b_len) return us_throw(env, "ERR_NATIVE_RANGE", "diffPages needs two buffers of one length");
  }
  if (a_len % US_PAGE_BYTES) return us_throw(env, "ERR_NATIVE_RANGE", "length is not a whole number of pages");
  size_t pages = a_len / US_PAGE_BYTES;
  // Worst case every page is listed; a 4 GiB memory has 1 Mi pages (4 MiB of indices).
  uint32_t* out = (uint32_t*)malloc(pages ? pages * 4 : 4);
  if (!out) return us_throw(env, "ERR_NATIVE_NOMEM", "out of memory for the page list");
  size_t n = 0;
  for (size_t i = 0; i < pages; i++) {
    // SAFETY: i < pages = len / 4096, so both page ranges are inside their stores.
    const uint8_t* pa = a + i * US_PAGE_BYTES;
    int hit = compare ? memcmp(pa, b + i * US_PAGE_BYTES, US_PAGE_BYTES) != 0 : !us_page_is_zero(pa);
    if (hit) out[n++] = (uint32_t)i;
  }
  napi_value arr = us_u32_array(env, out, n);
  free(out);
  return arr;
}

static napi_value js_non_zero_pages(napi_env env, napi_callback_info info) { return scan_pages(env, info, 0); }
static napi_value js_diff_pages(napi_env env, napi_callback_info info) { return scan_pages(env, info, 1); }

napi_value us_init_pages(napi_env env, napi_value exports) {
  if (!us_register(env, exports, "backingStore", js_backing_store)) return NULL;
  if (!us_register(env, exports, "gatherPages", js_gather_pages)) return NULL;
  if (!us_register(env, exports, "scatterPages", js_scatter_pages)) return NULL;
  if (!us_register(env, exports, "nonZeroPages", js_non_zero_pages)) return NULL;
  if (!us_register(env, exports, "diffPages", js_diff_pages)) return NULL;
  napi_value page_bytes;
  if (napi_create_uint32(env, US_PAGE_BYTES, &page_bytes) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "pageBytes", page_bytes) != napi_ok) return NULL;
  return exports;
}
