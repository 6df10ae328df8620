// Entry point of the understudy native addon: common helpers and module init.
#include "addon.h"

#include <stdio.h>

#include <string.h>

napi_value us_throw(napi_env env, const char* code, const char* message) {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) return NULL;
  napi_throw_error(env, code, message);
  return NULL;
}

int us_get_bytes(napi_env env, napi_value value, uint8_t** data, size_t* length) {
  bool is_typed = false, is_ab = false;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok) return 0;
  if (is_typed) {
    napi_typedarray_type type;
    size_t element_count = 0, byte_offset = 0;
    void* base = NULL;
    napi_value ab;
    if (napi_get_typedarray_info(env, value, &type, &element_count, &base, &ab, &byte_offset) != napi_ok) return 0;
    size_t element_bytes = 1;
    switch (type) {
      case napi_int16_array: case napi_uint16_array: element_bytes = 2; break;
      case napi_int32_array: case napi_uint32_array: case napi_float32_array: element_bytes = 4; break;
      case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: element_bytes = 8; break;
      default: element_bytes = 1; break;
    }
    // SAFETY: napi_get_typedarray_info returns `base` already offset by
    // byte_offset into the live backing store, valid for element_count elements
    // until JS runs again; callers use it synchronously and do not keep it.
    *data = (uint8_t*)base;
    *length = element_count * element_bytes;
    return 1;
  }
  if (napi_is_arraybuffer(env, value, &is_ab) != napi_ok) return 0;
  if (is_ab) {
    void* base = NULL;
    size_t byte_length = 0;
    if (napi_get_arraybuffer_info(env, value, &base, &byte_length) != napi_ok) return 0;
    *data = (uint8_t*)base;
    *length = byte_length;
    return 1;
  }
  napi_throw_type_error(env, "ERR_NATIVE_ARG", "expected a TypedArray, Buffer or ArrayBuffer");
  return 0;
}

int us_get_u32_array(napi_env env, napi_value value, uint32_t** data, size_t* count, const char* code, const char* message) {
  bool is_typed = false;
  napi_typedarray_type type = napi_int8_array;
  void* base = NULL;
  size_t length = 0;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok ||
      (is_typed && napi_get_typedarray_info(env, value, &type, &length, &base, NULL, NULL) != napi_ok)) {
    us_throw(env, "ERR_NATIVE_NAPI", "N-API call failed: reading a typed array");
    return 0;
  }
  if (!is_typed || type != napi_uint32_array) {
    napi_throw_type_error(env, code, message);
    return 0;
  }
  // SAFETY: base points into the typed array's live backing store, already
  // offset by its byte offset, valid for `length` elements while no JS runs.
  *data = (uint32_t*)base;
  *count = length;
  return 1;
}

int us_set_number(napi_env env, napi_value obj, const char* name, double value) {
  napi_value v;
  if (napi_create_double(env, value, &v) != napi_ok) return 0;
  return napi_set_named_property(env, obj, name, v) == napi_ok;
}

int us_get_external(napi_env env, napi_value value, const char* what, void** out) {
  napi_valuetype type = napi_undefined;
  void* data = NULL;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_external || napi_get_value_external(env, value, &data) != napi_ok || !data) {
    char message[96];
    snprintf(message, sizeof message, "expected a %s handle", what);
    us_throw(env, "ERR_NATIVE_ARG", message);
    return 0;
  }
  *out = data;
  return 1;
}

int us_register(napi_env env, napi_value exports, const char* name, napi_callback fn) {
  napi_value f;
  if (napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &f) != napi_ok) return 0;
  return napi_set_named_property(env, exports, name, f) == napi_ok;
}

static napi_value init(napi_env env, napi_value exports) {
  if (us_init_pages(env, exports) == NULL) return NULL;
  if (us_init_crc32c(env, exports) == NULL) return NULL;
  if (us_init_uffd(env, exports) == NULL) return NULL;
  if (us_init_delta(env, exports) == NULL) return NULL;
  if (us_init_exclude(env, exports) == NULL) return NULL;
  if (us_init_balloon(env, exports) == NULL) return NULL;
  if (us_init_copier(env, exports) == NULL) return NULL;
  if (us_init_deadline(env, exports) == NULL) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
