// Per-page delta encoding of dirty pages against the previous image of memory
// (the "difference computation" of seed 001: ship only the words of a page
// that changed). The format is defined in src/checkpoint/delta-codec.ts; the
// offsets and sizes below are the same numbers, asserted on both sides.
//
//   deltaEncode(staged, pages, shadow, out, runGapMergeBytes?, runsBytesMax?)
//       -> { bytes, unchanged, zero, full, runs, runSegments, runBytes }
//   deltaApply(encoded, memory) -> pagesApplied
//
// Both are plain functions of their arguments: no static mutable state, so the
// addon is safe to load in several worker_threads at once.
#include "addon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- format (little-endian) ----
// header: u32 magic, u16 version, u16 flags (0), u32 entryCount,
//         u32 pageBytes (4096), u64 totalBytes (header included)
// entry:  u32 pageIndex, u8 kind, then by kind:
//         ZERO nothing; FULL 4096 bytes; RUNS u16 runCount, runCount x (u16 offset, u16 length, length bytes)
#define US_DELTA_MAGIC 0x4C445355u  // "USDL" as bytes
#define US_DELTA_VERSION 1u
#define US_DELTA_OFF_MAGIC 0u
#define US_DELTA_OFF_VERSION 4u
#define US_DELTA_OFF_FLAGS 6u
#define US_DELTA_OFF_ENTRIES 8u
#define US_DELTA_OFF_PAGE_BYTES 12u
#define US_DELTA_OFF_TOTAL 16u
#define US_DELTA_HEADER_BYTES 24u
#define US_DELTA_ENTRY_HEAD_BYTES 5u  // u32 pageIndex + u8 kind
#define US_DELTA_RUNS_HEAD_BYTES 2u   // u16 runCount
#define US_DELTA_RUN_HEAD_BYTES 4u    // u16 offset + u16 length
#define US_DELTA_KIND_ZERO 0u
#define US_DELTA_KIND_FULL 1u
#define US_DELTA_KIND_RUNS 2u

_Static_assert(US_DELTA_OFF_VERSION == US_DELTA_OFF_MAGIC + 4, "magic is a u32");
_Static_assert(US_DELTA_OFF_FLAGS == US_DELTA_OFF_VERSION + 2, "version is a u16");
_Static_assert(US_DELTA_OFF_ENTRIES == US_DELTA_OFF_FLAGS + 2, "flags is a u16");
_Static_assert(US_DELTA_OFF_PAGE_BYTES == US_DELTA_OFF_ENTRIES + 4, "entryCount is a u32");
_Static_assert(US_DELTA_OFF_TOTAL == US_DELTA_OFF_PAGE_BYTES + 4, "pageBytes is a u32");
_Static_assert(US_DELTA_HEADER_BYTES == US_DELTA_OFF_TOTAL + 8, "totalBytes is a u64 and ends the header");
// A run's offset (< 4096) and length (<= 4096) must fit their u16 fields.
_Static_assert(US_PAGE_BYTES <= 0xFFFFu, "run offsets and lengths are u16");
_Static_assert(US_PAGE_BYTES % 8 == 0, "pages are compared in 8-byte words");

// Worst-case bytes of one entry: a FULL page. A RUNS entry is only emitted when
// its body is smaller than a page (runsBytesMax <= US_PAGE_BYTES), a ZERO
// entry has no body, so no entry is larger than this.
#define US_DELTA_ENTRY_BYTES_MAX (US_DELTA_ENTRY_HEAD_BYTES + US_PAGE_BYTES)

// Runs closer than this many bytes are merged into one run. Runs come from
// maximal sequences of differing 8-byte words, so two runs are always at
// least 8 bytes apart, and a run header costs 4 bytes: any merge ships more
// raw bytes. Measured on real deltas (docs/compression.md): merging gaps up
// to 8..32 bytes saved nothing after compression and cost bytes before it, so
// runs are not merged (the constant is kept as a tunable for the benchmark).
#define US_DELTA_RUN_GAP_MERGE_BYTES 0u
// A RUNS body of at least this many bytes is sent as FULL instead. Equal to a
// page: RUNS is chosen whenever it is smaller. Measured (docs/compression.md):
// lower thresholds shipped more bytes and did not speed apply up measurably.
#define US_DELTA_RUNS_BYTES_MAX US_PAGE_BYTES
_Static_assert(US_DELTA_RUNS_BYTES_MAX <= US_PAGE_BYTES, "a RUNS entry is never larger than a FULL one");

#define US_PAGE_WORDS (US_PAGE_BYTES / 8u)
// Runs of one page: each is a maximal sequence of differing words, and two
// sequences are separated by at least one equal word.
#define US_DELTA_RUNS_PER_PAGE_MAX ((US_PAGE_WORDS + 1u) / 2u)

typedef struct {
  uint32_t start;
  uint32_t end;  // exclusive
} us_run;

static inline uint64_t load_word(const uint8_t* p) {
  uint64_t w;
  memcpy(&w, p, 8);  // unaligned-safe load
  return w;
}

// Index (0..7, in memory order) of the first and last non-zero byte of a
// non-zero word loaded from memory by load_word.
static inline uint32_t first_byte(uint64_t x) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  return (uint32_t)__builtin_ctzll(x) / 8u;
#else
  return (uint32_t)__builtin_clzll(x) / 8u;
#endif
}
static inline uint32_t last_byte(uint64_t x) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  return 7u - (uint32_t)__builtin_clzll(x) / 8u;
#else
  return 7u - (uint32_t)__builtin_ctzll(x) / 8u;
#endif
}

static inline void put_u16(uint8_t* p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static inline void put_u32(uint8_t* p, uint32_t v) {
  put_u16(p, v & 0xFFFFu);
  put_u16(p + 2, v >> 16);
}
static inline void put_u64(uint8_t* p, uint64_t v) {
  put_u32(p, (uint32_t)v);
  put_u32(p + 4, (uint32_t)(v >> 32));
}
static inline uint32_t get_u16(const uint8_t* p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8); }
static inline uint32_t get_u32(const uint8_t* p) { return get_u16(p) | (get_u16(p + 2) << 16); }
static inline uint64_t get_u64(const uint8_t* p) { return (uint64_t)get_u32(p) | ((uint64_t)get_u32(p + 4) << 32); }

// Blocks of 8 words are tested with one branch (the OR loop vectorises), so
// equal or zero stretches of a page cost a few instructions per 64 bytes.
#define US_BLOCK_WORDS 8u
_Static_assert(US_PAGE_BYTES % (US_BLOCK_WORDS * 8u) == 0, "a page is whole blocks");

static inline uint64_t block_or(const uint8_t* p) {
  uint64_t acc = 0;
  for (size_t k = 0; k < US_BLOCK_WORDS; k++) acc |= load_word(p + k * 8);
  return acc;
}
static inline uint64_t block_xor_or(const uint8_t* a, const uint8_t* b) {
  uint64_t acc = 0;
  for (size_t k = 0; k < US_BLOCK_WORDS; k++) acc |= load_word(a + k * 8) ^ load_word(b + k * 8);
  return acc;
}

// Stops at the first non-zero block: a live page is usually non-zero early.
static int page_is_zero(const uint8_t* p) {
  for (size_t i = 0; i < US_PAGE_BYTES; i += US_BLOCK_WORDS * 8u)
    if (block_or(p + i) != 0) return 0;
  return 1;
}

// Changed byte runs of `next` against `prev`, found word by word and trimmed to
// bytes at both ends; runs whose gap is below gap_merge are merged. Returns
// the number of runs (>= 1 when the pages differ).
static size_t page_runs(const uint8_t* prev, const uint8_t* next, uint32_t gap_merge, us_run* runs) {
  size_t n = 0;
  size_t w = 0;
  while (w < US_PAGE_WORDS) {
    if (w % US_BLOCK_WORDS == 0 && block_xor_or(prev + w * 8, next + w * 8) == 0) {
      w += US_BLOCK_WORDS;  // the whole block is equal
      continue;
    }
    uint64_t x = load_word(prev + w * 8) ^ load_word(next + w * 8);
    if (x == 0) {
      w++;
      continue;
    }
    uint32_t start = (uint32_t)w * 8u + first_byte(x);
    size_t last = w;
    uint64_t last_x = x;
    for (w++; w < US_PAGE_WORDS; w++) {
      uint64_t y = load_word(prev + w * 8) ^ load_word(next + w * 8);
      if (y == 0) break;
      last = w;
      last_x = y;
    }
    uint32_t end = (uint32_t)last * 8u + last_byte(last_x) + 1u;
    if (n > 0 && start - runs[n - 1].end < gap_merge) {
      runs[n - 1].end = end;
    } else {
      // A new sequence starts after at least one equal word, so n stays
      // within US_DELTA_RUNS_PER_PAGE_MAX.
      if (n >= US_DELTA_RUNS_PER_PAGE_MAX) __builtin_trap();
      runs[n].start = start;
      runs[n].end = end;
      n++;
    }
  }
  return n;
}

static int ranges_overlap(const uint8_t* a, size_t a_len, const uint8_t* b, size_t b_len) {
  if (a_len == 0 || b_len == 0) return 0;
  uintptr_t a0 = (uintptr_t)a, b0 = (uintptr_t)b;
  return a0 < b0 + b_len && b0 < a0 + a_len;
}

// Reads an optional integer argument in [lo, hi]; `undefined` gives `fallback`.
static int get_optional_u32(napi_env env, napi_value v, uint32_t lo, uint32_t hi, uint32_t fallback, uint32_t* out, const char* what) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) {
    us_throw(env, "ERR_NATIVE_NAPI", "N-API call failed: napi_typeof");
    return 0;
  }
  if (t == napi_undefined) {
    *out = fallback;
    return 1;
  }
  double d = 0;
  if (t != napi_number || napi_get_value_double(env, v, &d) != napi_ok || !(d >= lo && d <= hi) || d != (double)(uint32_t)d) {
    char message[128];
    snprintf(message, sizeof message, "%s must be an integer in [%u, %u]", what, lo, hi);
    us_throw(env, "ERR_NATIVE_ARG", message);
    return 0;
  }
  *out = (uint32_t)d;
  return 1;
}

static napi_value js_delta_encode(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) return us_throw(env, "ERR_NATIVE_ARG", "deltaEncode(staged, pages, shadow, out) needs four arguments");
  uint8_t *staged, *shadow, *out;
  size_t staged_len, shadow_len, out_len, count;
  uint32_t* pages;
  if (!us_get_bytes(env, argv[0], &staged, &staged_len)) return NULL;
  if (!us_get_u32_array(env, argv[1], &pages, &count, "ERR_NATIVE_ARG", "expected a Uint32Array of page indices")) return NULL;
  if (!us_get_bytes(env, argv[2], &shadow, &shadow_len)) return NULL;
  if (!us_get_bytes(env, argv[3], &out, &out_len)) return NULL;
  uint32_t gap_merge = US_DELTA_RUN_GAP_MERGE_BYTES, runs_max = US_DELTA_RUNS_BYTES_MAX;
  napi_value undef;
  US_NAPI_OK(env, napi_get_undefined(env, &undef));
  if (!get_optional_u32(env, argc > 4 ? argv[4] : undef, 0, US_PAGE_BYTES, US_DELTA_RUN_GAP_MERGE_BYTES, &gap_merge, "runGapMergeBytes")) return NULL;
  if (!get_optional_u32(env, argc > 5 ? argv[5] : undef, 1, US_PAGE_BYTES, US_DELTA_RUNS_BYTES_MAX, &runs_max, "runsBytesMax")) return NULL;

  // Everything is checked before the first write: a refused call leaves the
  // shadow and `out` untouched.
  if (shadow_len % US_PAGE_BYTES) return us_throw(env, "ERR_NATIVE_RANGE", "shadow is not a whole number of pages");
  size_t shadow_pages = shadow_len / US_PAGE_BYTES;
  if (count > staged_len / US_PAGE_BYTES) return us_throw(env, "ERR_NATIVE_RANGE", "staged holds fewer pages than the page list");
  if (count > shadow_pages) return us_throw(env, "ERR_NATIVE_RANGE", "more pages listed than the shadow holds");
  // count <= shadow_pages <= SIZE_MAX / 4096, so this product cannot overflow on 64-bit.
  if (count > (SIZE_MAX - US_DELTA_HEADER_BYTES) / US_DELTA_ENTRY_BYTES_MAX) return us_throw(env, "ERR_NATIVE_RANGE", "too many pages");
  size_t bound = US_DELTA_HEADER_BYTES + count * US_DELTA_ENTRY_BYTES_MAX;
  if (out_len < bound) return us_throw(env, "ERR_NATIVE_RANGE", "out is smaller than deltaBoundBytes(pages.length)");
  for (size_t i = 0; i < count; i++) {
    if (pages[i] >= shadow_pages) return us_throw(env, "ERR_NATIVE_RANGE", "page index at or past the end of the shadow (grow the shadow first)");
    if (i > 0 && pages[i] <= pages[i - 1]) return us_throw(env, "ERR_NATIVE_ARG", "page indices are not strictly ascending");
  }
  if (ranges_overlap(staged, count * US_PAGE_BYTES, shadow, shadow_len) || ranges_overlap(out, out_len, shadow, shadow_len) ||
      ranges_overlap(out, out_len, staged, count * US_PAGE_BYTES))
    return us_throw(env, "ERR_NATIVE_ARG", "staged, shadow and out must not overlap");

  us_run runs[US_DELTA_RUNS_PER_PAGE_MAX];
  size_t pos = US_DELTA_HEADER_BYTES;
  uint32_t entries = 0;
  double n_unchanged = 0, n_zero = 0, n_full = 0, n_runs = 0, n_segments = 0, n_run_bytes = 0;
  for (size_t i = 0; i < count; i++) {
    // SAFETY: i < count <= staged_len / 4096 and pages[i] < shadow_pages were
    // checked above, so both 4 KiB ranges lie inside their stores; the three
    // buffers do not overlap, so memcpy below is defined; no JS runs here.
    const uint8_t* next = staged + i * US_PAGE_BYTES;
    uint8_t* prev = shadow + (size_t)pages[i] * US_PAGE_BYTES;
    if (memcmp(prev, next, US_PAGE_BYTES) == 0) {
      n_unchanged++;
      continue;
    }
    // SAFETY: pos + US_DELTA_ENTRY_BYTES_MAX <= bound <= out_len: each of the
    // at most `count` entries writes at most US_DELTA_ENTRY_BYTES_MAX bytes.
    uint8_t* e = out + pos;
    put_u32(e, pages[i]);
    if (page_is_zero(next)) {
      e[4] = US_DELTA_KIND_ZERO;
      pos += US_DELTA_ENTRY_HEAD_BYTES;
      n_zero++;
    } else {
      size_t n = page_runs(prev, next, gap_merge, runs);
      size_t body = US_DELTA_RUNS_HEAD_BYTES, changed = 0;
      for (size_t r = 0; r < n; r++) {
        changed += runs[r].end - runs[r].start;
        body += US_DELTA_RUN_HEAD_BYTES + (runs[r].end - runs[r].start);
      }
      if (body < runs_max) {
        e[4] = US_DELTA_KIND_RUNS;
        put_u16(e + 5, (uint32_t)n);
        uint8_t* q = e + US_DELTA_ENTRY_HEAD_BYTES + US_DELTA_RUNS_HEAD_BYTES;
        for (size_t r = 0; r < n; r++) {
          uint32_t len = runs[r].end - runs[r].start;
          put_u16(q, runs[r].start);
          put_u16(q + 2, len);
          // SAFETY: start < end <= 4096 inside `next`; the body fits in the
          // entry's budget because body < runs_max <= 4096.
          memcpy(q + US_DELTA_RUN_HEAD_BYTES, next + runs[r].start, len);
          q += US_DELTA_RUN_HEAD_BYTES + len;
        }
        pos += US_DELTA_ENTRY_HEAD_BYTES + body;
        n_runs++;
        n_segments += (double)n;
        n_run_bytes += (double)changed;
      } else {
        e[4] = US_DELTA_KIND_FULL;
        memcpy(e + US_DELTA_ENTRY_HEAD_BYTES, next, US_PAGE_BYTES);
        pos += US_DELTA_ENTRY_BYTES_MAX;
        n_full++;
      }
    }
    entries++;
    memcpy(prev, next, US_PAGE_BYTES);
  }
  if (pos > bound) __builtin_trap();  // postcondition: the bound holds
  put_u32(out + US_DELTA_OFF_MAGIC, US_DELTA_MAGIC);
  put_u16(out + US_DELTA_OFF_VERSION, US_DELTA_VERSION);
  put_u16(out + US_DELTA_OFF_FLAGS, 0);
  put_u32(out + US_DELTA_OFF_ENTRIES, entries);
  put_u32(out + US_DELTA_OFF_PAGE_BYTES, US_PAGE_BYTES);
  put_u64(out + US_DELTA_OFF_TOTAL, (uint64_t)pos);

  napi_value result;
  US_NAPI_OK(env, napi_create_object(env, &result));
  if (!us_set_number(env, result, "bytes", (double)pos) || !us_set_number(env, result, "unchanged", n_unchanged) ||
      !us_set_number(env, result, "zero", n_zero) || !us_set_number(env, result, "full", n_full) || !us_set_number(env, result, "runs", n_runs) ||
      !us_set_number(env, result, "runSegments", n_segments) || !us_set_number(env, result, "runBytes", n_run_bytes))
    return us_throw(env, "ERR_NATIVE_NAPI", "N-API call failed: setting the encode counters");
  return result;
}

// Throws ERR_CKPT_MALFORMED naming what failed and where.
static napi_value malformed(napi_env env, const char* what, size_t at) {
  char message[160];
  snprintf(message, sizeof message, "malformed page delta: %s (at byte %zu)", what, at);
  return us_throw(env, "ERR_CKPT_MALFORMED", message);
}

// Why the 24-byte header at enc is wrong for an encoding of total_bytes, or
// NULL (then *entries is its entry count). enc holds the whole header.
static const char* delta_header_problem(const uint8_t* enc, uint64_t total_bytes, uint32_t* entries, size_t* at) {
  *at = 0;
  if (get_u32(enc + US_DELTA_OFF_MAGIC) != US_DELTA_MAGIC) return *at = US_DELTA_OFF_MAGIC, "bad magic";
  if (get_u16(enc + US_DELTA_OFF_VERSION) != US_DELTA_VERSION) return *at = US_DELTA_OFF_VERSION, "unknown version";
  if (get_u16(enc + US_DELTA_OFF_FLAGS) != 0) return *at = US_DELTA_OFF_FLAGS, "unknown flags";
  if (get_u32(enc + US_DELTA_OFF_PAGE_BYTES) != US_PAGE_BYTES) return *at = US_DELTA_OFF_PAGE_BYTES, "page size is not 4096";
  if (get_u64(enc + US_DELTA_OFF_TOTAL) != total_bytes) return *at = US_DELTA_OFF_TOTAL, "total length disagrees with the input length";
  *entries = get_u32(enc + US_DELTA_OFF_ENTRIES);
  return NULL;
}

// Bytes of the entry at p once whole, with n bytes available: 0 while it is
// incomplete, or 0 with *why set when it is malformed (its kind, run count,
// and every run's length, order and bounds; not its page index, which only
// the caller can judge). Every read is preceded by a check that the bytes
// are there.
static size_t delta_entry_bytes(const uint8_t* p, size_t n, const char** why) {
  if (n < US_DELTA_ENTRY_HEAD_BYTES) return 0;
  const uint32_t kind = p[4];
  if (kind == US_DELTA_KIND_ZERO) return US_DELTA_ENTRY_HEAD_BYTES;
  if (kind == US_DELTA_KIND_FULL) return n < US_DELTA_ENTRY_BYTES_MAX ? 0 : US_DELTA_ENTRY_BYTES_MAX;
  if (kind != US_DELTA_KIND_RUNS) return *why = "unknown entry kind", 0;
  if (n < US_DELTA_ENTRY_HEAD_BYTES + US_DELTA_RUNS_HEAD_BYTES) return 0;
  const uint32_t runs = get_u16(p + US_DELTA_ENTRY_HEAD_BYTES);
  if (runs == 0) return *why = "a runs entry with no runs", 0;
  size_t at = US_DELTA_ENTRY_HEAD_BYTES + US_DELTA_RUNS_HEAD_BYTES;
  uint32_t run_end = 0;
  for (uint32_t r = 0; r < runs; r++) {
    if (n - at < US_DELTA_RUN_HEAD_BYTES) return 0;
    const uint32_t off = get_u16(p + at), len = get_u16(p + at + 2);
    if (len == 0) return *why = "empty run", 0;
    if (off < run_end) return *why = "runs overlap or are not ascending", 0;
    if (off + len > US_PAGE_BYTES) return *why = "run past the end of the page", 0;
    run_end = off + len;
    at += US_DELTA_RUN_HEAD_BYTES;
    if (n - at < len) return 0;
    at += len;
  }
  return at;
}

// Writes a whole entry that delta_entry_bytes accepted onto its page, dst.
static void delta_entry_apply(const uint8_t* p, uint8_t* dst) {
  const uint32_t kind = p[4];
  if (kind == US_DELTA_KIND_ZERO) {
    memset(dst, 0, US_PAGE_BYTES);
  } else if (kind == US_DELTA_KIND_FULL) {
    memcpy(dst, p + US_DELTA_ENTRY_HEAD_BYTES, US_PAGE_BYTES);
  } else {
    const uint32_t runs = get_u16(p + US_DELTA_ENTRY_HEAD_BYTES);
    size_t at = US_DELTA_ENTRY_HEAD_BYTES + US_DELTA_RUNS_HEAD_BYTES;
    for (uint32_t r = 0; r < runs; r++) {
      const uint32_t off = get_u16(p + at), len = get_u16(p + at + 2);
      // SAFETY: off + len <= 4096 and the bytes lie inside the entry (delta_entry_bytes).
      memcpy(dst + off, p + at + US_DELTA_RUN_HEAD_BYTES, len);
      at += US_DELTA_RUN_HEAD_BYTES + len;
    }
  }
}

// Validates an encoding for a memory of mem_pages pages. Returns the entry
// count, or -1 with a JS exception pending.
static int64_t delta_validate(napi_env env, const uint8_t* enc, size_t len, size_t mem_pages) {
  if (len < US_DELTA_HEADER_BYTES) return malformed(env, "shorter than the header", 0), -1;
  uint32_t entries = 0;
  size_t at = 0;
  const char* why = delta_header_problem(enc, len, &entries, &at);
  if (why) return malformed(env, why, at), -1;
  if (entries > (len - US_DELTA_HEADER_BYTES) / US_DELTA_ENTRY_HEAD_BYTES) return malformed(env, "more entries than bytes for them", US_DELTA_OFF_ENTRIES), -1;
  if (entries > mem_pages) return malformed(env, "more entries than memory pages", US_DELTA_OFF_ENTRIES), -1;
  size_t pos = US_DELTA_HEADER_BYTES;
  uint64_t prev_page = 0;
  for (uint32_t i = 0; i < entries; i++) {
    // SAFETY: delta_entry_bytes reads only inside [enc + pos, enc + len).
    const size_t n = delta_entry_bytes(enc + pos, len - pos, &why);
    if (why) return malformed(env, why, pos), -1;
    if (n == 0) return malformed(env, "truncated entry", pos), -1;
    const uint32_t page = get_u32(enc + pos);
    if (page >= mem_pages) return malformed(env, "page index past the end of memory", pos), -1;
    if (i > 0 && page <= prev_page) return malformed(env, "page indices not strictly ascending", pos), -1;
    prev_page = page;
    pos += n;
  }
  if (pos != len) return malformed(env, "bytes after the last entry", pos), -1;
  return (int64_t)entries;
}

static napi_value js_delta_apply(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return us_throw(env, "ERR_NATIVE_ARG", "deltaApply(encoded, memory) needs two arguments");
  uint8_t *enc, *mem;
  size_t len, mem_len;
  if (!us_get_bytes(env, argv[0], &enc, &len)) return NULL;
  if (!us_get_bytes(env, argv[1], &mem, &mem_len)) return NULL;
  if (mem_len % US_PAGE_BYTES) return us_throw(env, "ERR_NATIVE_RANGE", "memory is not a whole number of pages");
  if (ranges_overlap(enc, len, mem, mem_len)) return us_throw(env, "ERR_NATIVE_ARG", "encoded and memory must not overlap");
  size_t mem_pages = mem_len / US_PAGE_BYTES;

  // Pass 1: validate everything; nothing is written.
  const int64_t validated = delta_validate(env, enc, len, mem_pages);
  if (validated < 0) return NULL;
  const uint32_t entries = (uint32_t)validated;

  // Pass 2: apply. The same walk, now known to stay inside `enc`, with every
  // page index < mem_pages and every run inside its page.
  size_t pos = US_DELTA_HEADER_BYTES;
  for (uint32_t i = 0; i < entries; i++) {
    const char* why = NULL;
    const size_t n = delta_entry_bytes(enc + pos, len - pos, &why);
    // SAFETY: pass 1 proved the page < mem_pages, so it lies inside memory;
    // the entry lies inside `enc`; enc and mem do not overlap.
    delta_entry_apply(enc + pos, mem + (size_t)get_u32(enc + pos) * US_PAGE_BYTES);
    pos += n;
  }
  if (pos != len) __builtin_trap();  // pass 2 walked what pass 1 validated

  napi_value result;
  US_NAPI_OK(env, napi_create_uint32(env, entries, &result));
  return result;
}

// An all-zero page: the non-zero byte runs of a page are its runs against it.
static const uint8_t us_zero_page[US_PAGE_BYTES];

// sparseEncode(memory, pages, runsBytesMax[, out]) -> { encoded, sparse, dense }
// (`out`, a Uint8Array of at least 24 + pages.length * (5 + runsBytesMax)
// bytes, receives the encoding, and `encoded` is a view of it; without it a
// new buffer is made.)
// Memory exclusion below page granularity: each listed page (ascending, inside
// memory) whose non-zero bytes, as RUNS against an all-zero page, take fewer
// than runsBytesMax bytes is written as a RUNS entry of a delta encoding
// (`encoded`, applied with deltaApply onto zeroed pages) and listed in
// `sparse`; every other listed page is listed in `dense` (stored whole).
// Reads memory only.

#define US_SPARSE_REGION_PAGES 512u
#define US_SPARSE_REGION_SAVING_DIV 16u

static napi_value js_sparse_encode(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) return us_throw(env, "ERR_NATIVE_ARG", "sparseEncode(memory, pages, runsBytesMax[, out]) needs three arguments");
  uint8_t* mem;
  size_t mem_len, count;
  uint32_t* pages;
  if (!us_get_bytes(env, argv[0], &mem, &mem_len)) return NULL;
  if (!us_get_u32_array(env, argv[1], &pages, &count, "ERR_NATIVE_ARG", "expected a Uint32Array of page indices")) return NULL;
  uint32_t runs_max = 0;
  if (!get_optional_u32(env, argv[2], 1, US_PAGE_BYTES, US_DELTA_RUNS_BYTES_MAX, &runs_max, "runsBytesMax")) return NULL;
  const size_t mem_pages = mem_len / US_PAGE_BYTES;
  for (size_t i = 0; i < count; i++) {
    if (pages[i] >= mem_pages) return us_throw(env, "ERR_NATIVE_RANGE", "page index past the end of memory");
    if (i > 0 && pages[i] <= pages[i - 1]) return us_throw(env, "ERR_NATIVE_ARG", "page indices are not strictly ascending");
  }
  // The index lists hold at most `count` entries each. The encoding is
  // written straight into its ArrayBuffer, sized for the worst case (every
  // page a RUNS entry just under runs_max): the kernel backs only the bytes
  // written, and no copy or regrowth is needed.
  if (count > (SIZE_MAX - US_DELTA_HEADER_BYTES) / (US_DELTA_ENTRY_HEAD_BYTES + US_PAGE_BYTES)) return us_throw(env, "ERR_NATIVE_RANGE", "too many pages");
  const size_t cap = US_DELTA_HEADER_BYTES + count * (US_DELTA_ENTRY_HEAD_BYTES + (size_t)runs_max);
  // A caller's buffer (reused across checkpoints: fresh memory costs a fault
  // per 4 KiB page on first touch, most of this function's time otherwise).
  uint8_t* given = NULL;
  size_t given_len = 0;
  napi_valuetype out_type = napi_undefined;
  if (argc >= 4) US_NAPI_OK(env, napi_typeof(env, argv[3], &out_type));
  if (out_type != napi_undefined) {
    if (!us_get_bytes(env, argv[3], &given, &given_len)) return NULL;
    if (given_len < cap) return us_throw(env, "ERR_NATIVE_RANGE", "out is smaller than sparseBoundBytes(pages.length)");
    if (ranges_overlap(given, given_len, mem, mem_len)) return us_throw(env, "ERR_NATIVE_ARG", "out must not overlap memory");
  }
  uint32_t* sparse = (uint32_t*)malloc(count ? count * 4 : 4);
  uint32_t* dense = (uint32_t*)malloc(count ? count * 4 : 4);
  napi_value encoded_ab = NULL;
  void* ab_data = NULL;
  if (!sparse || !dense || (!given && napi_create_arraybuffer(env, cap, &ab_data, &encoded_ab) != napi_ok)) {
    free(sparse);
    free(dense);
    return us_throw(env, "ERR_NATIVE_NOMEM", "out of memory for a sparse encoding");
  }
  uint8_t* out = given ? given : (uint8_t*)ab_data;
  us_run runs[US_DELTA_RUNS_PER_PAGE_MAX];
  // Pass 1: what each page would take as runs (0: it stays whole). Reuses the
  // sparse list's storage: pass 2 writes index n_sparse <= i only after
  // reading body_of[i], so it never overwrites a size still to be read.
  uint32_t* body_of = sparse;
  for (size_t i = 0; i < count; i++) {
    // SAFETY: pages[i] < mem_pages (checked above): the page lies in memory; no JS runs here.
    const size_t n = page_runs(us_zero_page, mem + (size_t)pages[i] * US_PAGE_BYTES, 0, runs);
    size_t body = US_DELTA_RUNS_HEAD_BYTES;
    for (size_t r = 0; r < n; r++) body += US_DELTA_RUN_HEAD_BYTES + (runs[r].end - runs[r].start);
    body_of[i] = (n == 0 || body >= runs_max) ? 0 : (uint32_t)body;
  }
  // Per 2 MiB region: runs only where they save at least 1/US_SPARSE_REGION_SAVING_DIV
  // of the region's stored bytes. A mostly dense region stays whole: one
  // extent, read in bulk, populated as a huge page; runs there would save
  // little and cut it into many extents.
  size_t pos = US_DELTA_HEADER_BYTES, n_sparse = 0, n_dense = 0;
  size_t region_from = 0;
  int region_runs = 0;
  for (size_t i = 0; i < count; i++) {
    if (i == region_from) {
      const uint32_t region = pages[i] / US_SPARSE_REGION_PAGES;
      size_t to = i, stored = 0, saved = 0;
      for (; to < count && pages[to] / US_SPARSE_REGION_PAGES == region; to++) {
        stored += US_PAGE_BYTES;
        if (body_of[to]) saved += US_PAGE_BYTES - (US_DELTA_ENTRY_HEAD_BYTES + body_of[to]);
      }
      region_runs = saved * US_SPARSE_REGION_SAVING_DIV >= stored;
      region_from = to;
    }
    const uint32_t planned = body_of[i];
    if (!region_runs || planned == 0) {
      dense[n_dense++] = pages[i];
      continue;
    }
    // SAFETY: as in pass 1.
    const uint8_t* page = mem + (size_t)pages[i] * US_PAGE_BYTES;
    const size_t n = page_runs(us_zero_page, page, 0, runs);
    size_t body = US_DELTA_RUNS_HEAD_BYTES;
    for (size_t r = 0; r < n; r++) body += US_DELTA_RUN_HEAD_BYTES + (runs[r].end - runs[r].start);
    if (body != planned) __builtin_trap();  // the same page measured twice alike
    // SAFETY: each of at most `count` entries takes 5 + body < 5 + runs_max
    // bytes, so pos + 5 + body <= cap.
    uint8_t* e = out + pos;
    put_u32(e, pages[i]);
    e[4] = US_DELTA_KIND_RUNS;
    put_u16(e + 5, (uint32_t)n);
    uint8_t* q = e + US_DELTA_ENTRY_HEAD_BYTES + US_DELTA_RUNS_HEAD_BYTES;
    for (size_t r = 0; r < n; r++) {
      const uint32_t len = runs[r].end - runs[r].start;
      put_u16(q, runs[r].start);
      put_u16(q + 2, len);
      // SAFETY: start < end <= 4096, inside the page.
      memcpy(q + US_DELTA_RUN_HEAD_BYTES, page + runs[r].start, len);
      q += US_DELTA_RUN_HEAD_BYTES + len;
    }
    pos += US_DELTA_ENTRY_HEAD_BYTES + body;
    sparse[n_sparse++] = pages[i];
  }
  if (pos > cap) __builtin_trap();  // postcondition: the bound holds
  put_u32(out + US_DELTA_OFF_MAGIC, US_DELTA_MAGIC);
  put_u16(out + US_DELTA_OFF_VERSION, US_DELTA_VERSION);
  put_u16(out + US_DELTA_OFF_FLAGS, 0);
  put_u32(out + US_DELTA_OFF_ENTRIES, (uint32_t)n_sparse);
  put_u32(out + US_DELTA_OFF_PAGE_BYTES, US_PAGE_BYTES);
  put_u64(out + US_DELTA_OFF_TOTAL, (uint64_t)pos);
  napi_value result, encoded;
  napi_status st = napi_create_object(env, &result);
  if (given) {
    // A view of the caller's buffer: its own ArrayBuffer, at its own offset.
    napi_typedarray_type type;
    size_t length, byte_offset;
    void* data;
    if (st == napi_ok) st = napi_get_typedarray_info(env, argv[3], &type, &length, &data, &encoded_ab, &byte_offset);
    if (st == napi_ok && type != napi_uint8_array) st = napi_invalid_arg;
    if (st == napi_ok) st = napi_create_typedarray(env, napi_uint8_array, pos, encoded_ab, byte_offset, &encoded);
  } else if (st == napi_ok) {
    st = napi_create_typedarray(env, napi_uint8_array, pos, encoded_ab, 0, &encoded);
  }
  if (st == napi_ok) st = napi_set_named_property(env, result, "encoded", encoded);
  napi_value sparse_arr = st == napi_ok ? us_u32_array(env, sparse, n_sparse) : NULL;
  napi_value dense_arr = sparse_arr ? us_u32_array(env, dense, n_dense) : NULL;
  free(sparse);
  free(dense);
  if (st != napi_ok || !sparse_arr || !dense_arr) return us_throw(env, "ERR_NATIVE_NAPI", "N-API call failed: building the sparse encoding");
  if (napi_set_named_property(env, result, "sparse", sparse_arr) != napi_ok || napi_set_named_property(env, result, "dense", dense_arr) != napi_ok)
    return us_throw(env, "ERR_NATIVE_NAPI", "N-API call failed: building the sparse encoding");
  return result;
}

// runsLoad(fd, offset, length, memory, runPages, crc) -> crc
// Loads the delta encoding of a MemoryRuns section straight from the file:
// `length` bytes at `offset` are read in bounded chunks (no buffer the size of
// the section), their CRC-32C chained onto `crc` and returned (the caller
// compares the section's), and each entry is validated and applied as soon as
// it is whole. Every entry must be RUNS and name the next page of `runPages`
// (ascending, inside memory), whose bytes must be zero beforehand; every page
// must be named. ERR_CKPT_MALFORMED names what failed; a read error is
// ERR_CKPT_IO and a short read ERR_CKPT_TRUNCATED. On failure memory holds
// part of the image and must be discarded (restore discards the instance).
#define US_RUNS_CHUNK_BYTES ((size_t)1 << 20)


#ifndef _WIN32
#include <errno.h>
#include <unistd.h>
#endif

static napi_value js_runs_load(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  US_NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 6) return us_throw(env, "ERR_NATIVE_ARG", "runsLoad(fd, offset, length, memory, runPages, crc) needs six arguments");
  int32_t fd = -1;
  double offset_d = 0, length_d = 0;
  uint32_t crc = 0;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) return us_throw(env, "ERR_NATIVE_ARG", "fd must be a file descriptor");
  if (napi_get_value_double(env, argv[1], &offset_d) != napi_ok || napi_get_value_double(env, argv[2], &length_d) != napi_ok ||
      !(offset_d >= 0) || !(length_d >= 0) || offset_d > 9007199254740991.0 || length_d > 9007199254740991.0)
    return us_throw(env, "ERR_NATIVE_ARG", "offset and length must be non-negative integers");
  uint8_t* mem;
  size_t mem_len, page_count;
  uint32_t* run_pages;
  if (!us_get_bytes(env, argv[3], &mem, &mem_len)) return NULL;
  if (!us_get_u32_array(env, argv[4], &run_pages, &page_count, "ERR_NATIVE_ARG", "runPages must be a Uint32Array")) return NULL;
  if (napi_get_value_uint32(env, argv[5], &crc) != napi_ok) return us_throw(env, "ERR_NATIVE_ARG", "crc must be a u32");
  const size_t mem_pages = mem_len / US_PAGE_BYTES;
  for (size_t i = 0; i < page_count; i++) {
    if (run_pages[i] >= mem_pages) return malformed(env, "a run page past the end of memory", 0);
    if (i > 0 && run_pages[i] <= run_pages[i - 1]) return malformed(env, "run pages not strictly ascending", 0);
  }
  const uint64_t length = (uint64_t)length_d;
  uint64_t file_at = (uint64_t)offset_d;
  // The chunk plus room for one whole entry carried over from the chunk before.
  const size_t buf_cap = US_RUNS_CHUNK_BYTES + US_DELTA_ENTRY_BYTES_MAX;
  uint8_t* buf = (uint8_t*)malloc(buf_cap);
  if (!buf) return us_throw(env, "ERR_NATIVE_NOMEM", "out of memory for a runs chunk");
  const char* code = NULL;
  const char* why = NULL;
  size_t why_at = 0;
  uint64_t consumed = 0;   // bytes of the section parsed (header + whole entries)
  uint64_t read_total = 0; // bytes of the section read
  size_t have = 0;         // bytes in buf not yet parsed
  uint32_t entries = 0, done = 0;
  int header_seen = 0;
  while (!why && !code) {
    // Refill: read the next chunk after what is left in the buffer.
    if (read_total < length && have < US_DELTA_ENTRY_BYTES_MAX + US_DELTA_HEADER_BYTES) {
      size_t want = buf_cap - have;
      if (want > length - read_total) want = (size_t)(length - read_total);
      // SAFETY: have + want <= buf_cap; pread writes at most want bytes there.
      ssize_t r = pread(fd, buf + have, want, (off_t)file_at);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        code = "ERR_CKPT_IO";
        why = "reading the runs section failed";
        break;
      }
      if (r == 0) {
        code = "ERR_CKPT_TRUNCATED";
        why = "the file ends inside the runs section";
        break;
      }
      crc = us_crc32c(crc, buf + have, (size_t)r);
      have += (size_t)r;
      file_at += (uint64_t)r;
      read_total += (uint64_t)r;
    }
    size_t pos = 0;
    if (!header_seen) {
      if (have < US_DELTA_HEADER_BYTES) {
        if (read_total == length) why = "shorter than the header", why_at = 0;
        continue;
      }
      why = delta_header_problem(buf, length, &entries, &why_at);
      if (!why && entries != page_count) why = "entry count disagrees with the run pages", why_at = US_DELTA_OFF_ENTRIES;
      if (why) break;
      header_seen = 1;
      pos = US_DELTA_HEADER_BYTES;
    }
    // Apply every whole entry in the buffer.
    for (;;) {
      if (done == entries) break;
      const char* bad = NULL;
      if (have - pos >= US_DELTA_ENTRY_HEAD_BYTES && buf[pos + 4] != US_DELTA_KIND_RUNS) bad = "an entry that is not runs where only runs may be";
      const size_t n = bad ? 0 : delta_entry_bytes(buf + pos, have - pos, &bad);
      if (bad) {
        why = bad, why_at = (size_t)(consumed + pos);
        break;
      }
      if (n == 0) break;  // incomplete: needs the next chunk
      const uint32_t page = get_u32(buf + pos);
      if (page != run_pages[done]) {
        why = "an entry for a page that is not the next run page", why_at = (size_t)(consumed + pos);
        break;
      }
      // SAFETY: page < mem_pages (checked above); the entry lies inside
      // buf[pos, pos + n) and every run inside the page (delta_entry_bytes).
      delta_entry_apply(buf + pos, mem + (size_t)page * US_PAGE_BYTES);
      pos += n;
      done++;
    }
    if (why) break;
    consumed += pos;
    // SAFETY: pos <= have; the unparsed tail moves to the front.
    memmove(buf, buf + pos, have - pos);
    have -= pos;
    if (done == entries) {
      if (consumed != length || have != 0 || read_total != length) why = "bytes after the last entry", why_at = (size_t)consumed;
      break;
    }
    if (read_total == length && pos == 0) {
      why = "truncated entry", why_at = (size_t)consumed;
      break;
    }
  }
  free(buf);
  if (why) {
    if (code) return us_throw(env, code, why);
    return malformed(env, why, why_at);
  }
  napi_value out;
  US_NAPI_OK(env, napi_create_uint32(env, crc, &out));
  return out;
}

static int set_u32(napi_env env, napi_value obj, const char* name, uint32_t value) {
  napi_value v;
  if (napi_create_uint32(env, value, &v) != napi_ok) return 0;
  return napi_set_named_property(env, obj, name, v) == napi_ok;
}

napi_value us_init_delta(napi_env env, napi_value exports) {
  if (!us_register(env, exports, "deltaEncode", js_delta_encode)) return NULL;
  if (!us_register(env, exports, "deltaApply", js_delta_apply)) return NULL;
  if (!us_register(env, exports, "sparseEncode", js_sparse_encode)) return NULL;
  if (!us_register(env, exports, "runsLoad", js_runs_load)) return NULL;
  // The layout, so the TypeScript side can assert it agrees.
  napi_value layout;
  if (napi_create_object(env, &layout) != napi_ok) return NULL;
  if (!set_u32(env, layout, "magic", US_DELTA_MAGIC) || !set_u32(env, layout, "version", US_DELTA_VERSION) ||
      !set_u32(env, layout, "headerBytes", US_DELTA_HEADER_BYTES) || !set_u32(env, layout, "entryHeadBytes", US_DELTA_ENTRY_HEAD_BYTES) ||
      !set_u32(env, layout, "entryBytesMax", US_DELTA_ENTRY_BYTES_MAX) || !set_u32(env, layout, "runsHeadBytes", US_DELTA_RUNS_HEAD_BYTES) ||
      !set_u32(env, layout, "runHeadBytes", US_DELTA_RUN_HEAD_BYTES) || !set_u32(env, layout, "runGapMergeBytes", US_DELTA_RUN_GAP_MERGE_BYTES) ||
      !set_u32(env, layout, "runsBytesMax", US_DELTA_RUNS_BYTES_MAX) || !set_u32(env, layout, "kindZero", US_DELTA_KIND_ZERO) ||
      !set_u32(env, layout, "kindFull", US_DELTA_KIND_FULL) || !set_u32(env, layout, "kindRuns", US_DELTA_KIND_RUNS))
    return NULL;
  if (napi_set_named_property(env, exports, "deltaLayout", layout) != napi_ok) return NULL;
  return exports;
}
