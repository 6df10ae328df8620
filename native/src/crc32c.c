// CRC-32C (Castagnoli), the checksum of every checkpoint section and frame.
// Hardware instruction on x86-64 with SSE4.2 (chosen at run time), a slicing
// table elsewhere. Both produce the same value; the JS side has no fallback
// of its own, so this file is the single definition of the checksum.
#include "addon.h"

#include <stdatomic.h>
#include <string.h>

static uint32_t table[8][256];

static void build_table(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : (c >> 1);
    table[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++) {
    for (int s = 1; s < 8; s++) table[s][i] = (table[s - 1][i] >> 8) ^ table[0][table[s - 1][i] & 0xFF];
  }
}

static uint32_t crc32c_soft(uint32_t crc, const uint8_t* p, size_t n) {
  while (n >= 8) {
    uint64_t v;
    memcpy(&v, p, 8);  // unaligned-safe load
    v ^= crc;
    crc = table[7][v & 0xFF] ^ table[6][(v >> 8) & 0xFF] ^ table[5][(v >> 16) & 0xFF] ^
          table[4][(v >> 24) & 0xFF] ^ table[3][(v >> 32) & 0xFF] ^ table[2][(v >> 40) & 0xFF] ^
          table[1][(v >> 48) & 0xFF] ^ table[0][(v >> 56) & 0xFF];
    p += 8;
    n -= 8;
  }
  while (n--) crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xFF];
  return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define US_CRC_HW 1
#include <nmmintrin.h>

// Three lanes: the crc32 instruction has a 3-cycle latency and a 1-cycle
// throughput, so one dependency chain runs at a third of the unit's speed.
// Each step runs three independent chains over adjacent blocks of LANE_BYTES
// and joins them with the "append LANE_BYTES zero bytes" operator (the CRC
// register is linear in GF(2): crc(A|B|C) = Z(Z(a) ^ b) ^ c, where a is the
// register after A, b and c are B and C's registers started from zero, and Z
// appends LANE_BYTES zeros). Z is a table of 4 x 256 entries built once.
#define LANE_BYTES 4096u
static uint32_t zeros_op[4][256];

__attribute__((target("sse4.2"))) static uint32_t raw_zeros(uint32_t reg, size_t n) {
  uint64_t c = reg;
  for (size_t i = 0; i < n; i += 8) c = _mm_crc32_u64(c, 0);
  return (uint32_t)c;
}

__attribute__((target("sse4.2"))) static void build_zeros_op(void) {
  uint32_t basis[32];
  for (int bit = 0; bit < 32; bit++) basis[bit] = raw_zeros(1u << bit, LANE_BYTES);
  for (int k = 0; k < 4; k++) {
    for (uint32_t b = 0; b < 256; b++) {
      uint32_t v = 0;
      for (int j = 0; j < 8; j++)
        if (b & (1u << j)) v ^= basis[8 * k + j];
      zeros_op[k][b] = v;
    }
  }
}

static inline uint32_t append_zeros(uint32_t r) {
  return zeros_op[0][r & 0xFF] ^ zeros_op[1][(r >> 8) & 0xFF] ^ zeros_op[2][(r >> 16) & 0xFF] ^ zeros_op[3][r >> 24];
}

__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const uint8_t* p, size_t n) {
  uint64_t c = crc;
  while (n && ((uintptr_t)p & 7)) {
    c = _mm_crc32_u8((uint32_t)c, *p++);
    n--;
  }
  while (n >= 3 * LANE_BYTES) {
    uint64_t a = c, b = 0, d = 0;
    for (size_t i = 0; i < LANE_BYTES; i += 8) {
      uint64_t va, vb, vd;
      // SAFETY: i + 8 <= LANE_BYTES and n >= 3 * LANE_BYTES, so every load lies inside [p, p + n).
      memcpy(&va, p + i, 8);
      memcpy(&vb, p + LANE_BYTES + i, 8);
      memcpy(&vd, p + 2 * LANE_BYTES + i, 8);
      a = _mm_crc32_u64(a, va);
      b = _mm_crc32_u64(b, vb);
      d = _mm_crc32_u64(d, vd);
    }
    c = append_zeros(append_zeros((uint32_t)a) ^ (uint32_t)b) ^ (uint32_t)d;
    p += 3 * LANE_BYTES;
    n -= 3 * LANE_BYTES;
  }
  while (n >= 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
    p += 8;
    n -= 8;
  }
  while (n--) c = _mm_crc32_u8((uint32_t)c, *p++);
  return (uint32_t)c;
}

static int have_sse42 = 0;
#endif

// The tables are built once per process, whichever thread loads the addon
// first; later loads (worker threads) wait until they are ready.
static atomic_int tables_state = 0; // 0 unbuilt, 1 building, 2 ready

static void ensure_tables(void) {
  int expected = 0;
  if (atomic_load_explicit(&tables_state, memory_order_acquire) == 2) return;
  if (atomic_compare_exchange_strong(&tables_state, &expected, 1)) {
    build_table();
#ifdef US_CRC_HW
    have_sse42 = __builtin_cpu_supports("sse4.2") ? 1 : 0;
    if (have_sse42) build_zeros_op();
#endif
    atomic_store_explicit(&tables_state, 2, memory_order_release);
    return;
  }
  while (atomic_load_explicit(&tables_state, memory_order_acquire) != 2) {
  }
}

uint32_t us_crc32c(uint32_t crc, const uint8_t* data, size_t length) {
  ensure_tables();
  crc = ~crc;
#ifdef US_CRC_HW
  if (have_sse42) return ~crc32c_hw(crc, data, length);
#endif
  return ~crc32c_soft(crc, data, length);
}

// crc32c(bytes, previous = 0) -> uint32. `previous` chains calls over pieces.
static napi_value js_crc32c(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return us_throw(env, "ERR_NATIVE_ARG", "crc32c(bytes, previous?) needs bytes");
  uint8_t* data;
  size_t length;
  if (!us_get_bytes(env, argv[0], &data, &length)) return NULL;
  uint32_t previous = 0;
  if (argc >= 2) {
    napi_valuetype t;
    US_NAPI_OK(env, napi_typeof(env, argv[1], &t));
    if (t == napi_number) US_NAPI_OK(env, napi_get_value_uint32(env, argv[1], &previous));
  }
  // SAFETY: data/length describe the live backing store of argv[0] (see
  // us_get_bytes); no JS runs during the computation, so it cannot detach.
  uint32_t crc = us_crc32c(previous, data, length);
  napi_value out;
  US_NAPI_OK(env, napi_create_uint32(env, crc, &out));
  return out;
}

napi_value us_init_crc32c(napi_env env, napi_value exports) {
  ensure_tables();
  if (!us_register(env, exports, "crc32c", js_crc32c)) return NULL;
  return exports;
}
