// The per-page delta encoder and the choice of a compression library for
// incremental checkpoints, measured on real page deltas of the example guests.
//
//   node dist/bench/compression-choice.js [--runs 5] [--scratch /tmp/cz/node_modules] [--tracker wp-async]
//
// 1. Records epochs of three guests (heapwalk command, kvstore and ledger
//    reactors): at each safe point / after each burst of requests, the dirty
//    pages a tracker reports and their contents.
// 2. Replays them through the encoder: tuning of the run-merge gap and the
//    RUNS/FULL threshold, encode and apply throughput.
// 3. Encoder throughput on 10,000 dirty pages of several kinds, against memcpy.
// 4. Compresses the encoded deltas (one record per epoch) and the full pages
//    of the same memories with each candidate: ratio, compress and decompress
//    MB/s (medians of --runs runs, in this process).
// Candidates from npm (lz4-napi, snappy, zstd-napi) are loaded from --scratch,
// a directory outside the repository where they were installed by hand; they
// are skipped when absent. The product depends on none of them.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { parseArgs } from 'node:util';
import zlib from 'node:zlib';
import { Guest } from '../src/guest/guest.js';
import { loadGuestModule } from '../src/guest/module.js';
import { CollectedOutput, OutputGate } from '../src/output/gate.js';
import { WasiDevice } from '../src/wasi/index.js';
import { guestPath } from '../src/testing/fixtures.js';
import { createTracker, type TrackerKind } from '../src/track/tracker.js';
import { native, PAGE_BYTES } from '../src/native.js';
import { applyDelta, deltaBoundBytes, encodeDelta, growShadow, type DeltaTuning } from '../src/checkpoint/delta-codec.js';
import { machine, median, table } from './stats.js';
import { Prng } from '../src/util/prng.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    scratch: { type: 'string', default: '/tmp/cz/node_modules' },
    tracker: { type: 'string', default: 'wp-async' },
  },
});
const runs = Number(values.runs);
const trackerKind = values.tracker as TrackerKind;
const MB = 1e6;

// ---------------------------------------------------------------- recording

interface Epoch {
  pages: Uint32Array;
  staged: Uint8Array;
  byteLength: number;
}
interface Recording {
  name: string;
  initial: Uint8Array;
  epochs: Epoch[];
  final: Uint8Array;
}

/** Watches a memory: each `epoch()` collects the dirty pages and copies their contents. */
function recorder(name: string, memory: WebAssembly.Memory): { epoch(): void; finish(): Recording } {
  const tracker = createTracker(memory, trackerKind);
  const initial = new Uint8Array(memory.buffer).slice();
  const epochs: Epoch[] = [];
  return {
    epoch() {
      const pages = tracker.collect();
      if (pages.length === 0) return;
      const mem = new Uint8Array(memory.buffer);
      const staged = new Uint8Array(pages.length * PAGE_BYTES);
      native.gatherPages(mem, pages, staged);
      epochs.push({ pages, staged, byteLength: mem.length });
    },
    finish() {
      tracker.dispose();
      return { name, initial, epochs, final: new Uint8Array(memory.buffer).slice() };
    },
  };
}

async function recordHeapwalk(): Promise<Recording> {
  const module = await loadGuestModule(guestPath('heapwalk'));
  const gate = new OutputGate(new CollectedOutput());
  const wasi = WasiDevice.create({ args: ['heapwalk', '32', '20'], env: [], preopens: [], output: gate });
  const guest = await Guest.create(module, { wasi, yieldEveryMs: 10 });
  const rec = recorder('heapwalk', guest.memory);
  guest.onSafePoint(() => rec.epoch());
  const exit = await guest.run();
  if (exit !== 0) throw new Error(`heapwalk exited ${exit}`);
  rec.epoch();
  return rec.finish();
}

/** The seeded PRNG (src/util/prng.ts), so every run records the same requests. */
function prng(seed: number): () => number {
  const p = new Prng(seed);
  return () => p.nextU32();
}

async function recordReactor(name: 'kvstore' | 'ledger', setup: string[], burst: (i: number, rnd: () => number) => string[], epochs: number): Promise<Recording> {
  const module = await loadGuestModule(guestPath(name));
  const gate = new OutputGate(new CollectedOutput());
  const guest = await Guest.create(module, { wasi: WasiDevice.create({ args: [name], env: [], preopens: [], output: gate }) });
  const ask = (r: string) => {
    const answer = Buffer.from(guest.request('handle', Buffer.from(r))).toString();
    // A transfer may be refused (insufficient funds): that is an answer, not a failure.
    if (answer.startsWith('ERR') && answer !== 'ERR insufficient funds') throw new Error(`${name} ${r}: ${answer}`);
  };
  for (const r of setup) ask(r);
  const rec = recorder(name, guest.memory);
  const rnd = prng(7);
  for (let i = 0; i < epochs; i++) {
    for (const r of burst(i, rnd)) ask(r);
    rec.epoch();
  }
  return rec.finish();
}

const kvBurst = (i: number, rnd: () => number): string[] => {
  const out: string[] = [];
  // Mostly small updates of existing keys, a FILL burst every 10th epoch.
  if (i % 10 === 9) out.push('FILL 2000 120');
  for (let k = 0; k < 40; k++) {
    const key = `fill:${rnd() % 20000}`;
    out.push(rnd() % 8 === 0 ? `DEL ${key}` : `SET ${key} v${rnd().toString(16)}-${'x'.repeat(rnd() % 90)}`);
  }
  return out;
};
const ledgerBurst = (i: number, rnd: () => number): string[] => {
  const out: string[] = [];
  if (i % 10 === 9) out.push('FILL 500 2000');
  for (let k = 0; k < 50; k++) {
    const from = rnd() % 5000;
    out.push(`XFER acct:${from} acct:${(from + 1 + (rnd() % 4999)) % 5000} ${1 + (rnd() % 50)}`);
  }
  return out;
};

// ---------------------------------------------------------------- replay

interface Replay {
  records: Uint8Array[];
  encodedBytes: number;
  stagedBytes: number;
  listed: number;
  unchanged: number;
  zero: number;
  full: number;
  runs: number;
  runSegments: number;
  runBytes: number;
  encodeMs: number;
  applyMs: number;
}

/** Encodes every epoch against a shadow that starts as the initial image, then applies the records onto a replica. */
function replay(rec: Recording, tuning: DeltaTuning = {}, keep = true): Replay {
  let shadow: Uint8Array = rec.initial.slice();
  const r: Replay = { records: [], encodedBytes: 0, stagedBytes: 0, listed: 0, unchanged: 0, zero: 0, full: 0, runs: 0, runSegments: 0, runBytes: 0, encodeMs: 0, applyMs: 0 };
  const out = new Uint8Array(deltaBoundBytes(Math.max(...rec.epochs.map((e) => e.pages.length))));
  for (const e of rec.epochs) {
    shadow = growShadow(shadow, e.byteLength);
    const t0 = performance.now();
    const { encoded, counts } = encodeDelta(e.staged, e.pages, shadow, out, tuning);
    r.encodeMs += performance.now() - t0;
    if (keep) r.records.push(encoded.slice());
    r.encodedBytes += counts.bytes;
    r.stagedBytes += e.staged.length;
    r.listed += e.pages.length;
    r.unchanged += counts.unchanged;
    r.zero += counts.zero;
    r.full += counts.full;
    r.runs += counts.runs;
    r.runSegments += counts.runSegments;
    r.runBytes += counts.runBytes;
  }
  if (Buffer.compare(Buffer.from(shadow), Buffer.from(rec.final)) !== 0) throw new Error(`${rec.name}: the shadow does not end as the final memory`);
  if (keep) {
    let replica: Uint8Array = rec.initial.slice();
    rec.epochs.forEach((e, i) => {
      replica = growShadow(replica, e.byteLength);
      const t0 = performance.now();
      applyDelta(r.records[i]!, replica);
      r.applyMs += performance.now() - t0;
    });
    if (Buffer.compare(Buffer.from(replica), Buffer.from(rec.final)) !== 0) throw new Error(`${rec.name}: applying the deltas does not rebuild the final memory`);
  }
  return r;
}

// ---------------------------------------------------------------- candidates

interface Candidate {
  name: string;
  compress(raw: Uint8Array): Uint8Array;
  decompress(c: Uint8Array, rawBytes: number): Uint8Array;
}

function candidates(): { list: Candidate[]; versions: string[] } {
  const C = zlib.constants;
  const list: Candidate[] = [
    {
      name: 'zlib deflateRaw 1',
      compress: (r) => zlib.deflateRawSync(r, { level: 1 }),
      decompress: (c, n) => zlib.inflateRawSync(c, { maxOutputLength: Math.max(n, 1), chunkSize: Math.max(n + 1, 64) }),
    },
    {
      name: 'zlib deflateRaw 6',
      compress: (r) => zlib.deflateRawSync(r, { level: 6 }),
      decompress: (c, n) => zlib.inflateRawSync(c, { maxOutputLength: Math.max(n, 1), chunkSize: Math.max(n + 1, 64) }),
    },
    ...[1, 4].map((q) => ({
      name: `zlib brotli ${q}`,
      compress: (r: Uint8Array) => zlib.brotliCompressSync(r, { params: { [C.BROTLI_PARAM_QUALITY]: q, [C.BROTLI_PARAM_SIZE_HINT]: r.length } }),
      decompress: (c: Uint8Array, n: number) => zlib.brotliDecompressSync(c, { maxOutputLength: Math.max(n, 1), chunkSize: Math.max(n + 1, 64) }),
    })),
  ];
  const versions = [`zlib ${process.versions.zlib}`, `brotli ${process.versions.brotli}`];
  const require = createRequire(path.join(values.scratch!, 'x.js'));
  const version = (p: string) => (JSON.parse(fs.readFileSync(path.join(values.scratch!, p, 'package.json'), 'utf8')) as { version: string }).version;
  try {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const lz4 = require('lz4-napi') as any;
    list.push({ name: 'lz4-napi', compress: (r) => lz4.compressSync(Buffer.from(r.buffer, r.byteOffset, r.length)), decompress: (c) => lz4.uncompressSync(c) });
    versions.push(`lz4-napi ${version('lz4-napi')}`);
  } catch {
    console.error('lz4-napi not found under --scratch; skipped');
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const snappy = require('snappy') as any;
    list.push({ name: 'snappy', compress: (r) => snappy.compressSync(r), decompress: (c) => snappy.uncompressSync(c, { asBuffer: true }) });
    versions.push(`snappy ${version('snappy')}`);
  } catch {
    console.error('snappy not found under --scratch; skipped');
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const zstd = require('zstd-napi') as any;
    const dec = new zstd.Decompressor();
    for (const level of [-1, 1, 3]) {
      const comp = new zstd.Compressor();
      comp.setParameters({ compressionLevel: level });
      list.push({ name: `zstd-napi ${level}`, compress: (r) => comp.compress(r), decompress: (c) => dec.decompress(c) });
    }
    versions.push(`zstd-napi ${version('zstd-napi')} (libzstd ${zstd.binding?.versionString?.() ?? 'bundled'})`);
  } catch (e) {
    console.error(`zstd-napi not usable under --scratch (${(e as Error).message}); skipped`);
  }
  return { list, versions };
}

function measure(c: Candidate, units: Uint8Array[]): { ratio: number; compMBs: number; decMBs: number; msPerUnit: number } {
  const raw = units.reduce((a, u) => a + u.length, 0);
  const compressed = units.map((u) => c.compress(u));
  units.forEach((u, i) => {
    const back = c.decompress(compressed[i]!, u.length);
    if (Buffer.compare(Buffer.from(back), Buffer.from(u)) !== 0) throw new Error(`${c.name}: round trip differs`);
  });
  const cBytes = compressed.reduce((a, u) => a + u.length, 0);
  const ct: number[] = [];
  const dt: number[] = [];
  for (let r = 0; r < runs; r++) {
    let t0 = performance.now();
    for (const u of units) c.compress(u);
    ct.push(performance.now() - t0);
    t0 = performance.now();
    units.forEach((u, i) => c.decompress(compressed[i]!, u.length));
    dt.push(performance.now() - t0);
  }
  return { ratio: raw / cBytes, compMBs: raw / MB / (median(ct) / 1000), decMBs: raw / MB / (median(dt) / 1000), msPerUnit: median(ct) / units.length };
}

// ---------------------------------------------------------------- main

console.error('recording epochs ...');
const recordings = [
  await recordHeapwalk(),
  await recordReactor('kvstore', ['FILL 20000 100'], kvBurst, 60),
  await recordReactor('ledger', ['FILL 5000 0'], ledgerBurst, 60),
];

console.log(`machine: ${machine()}; tracker ${trackerKind}; medians of ${runs} runs in one process.\n`);

// Workloads, and what the encoder made of them.
{
  const rows = recordings.map((rec) => {
    const r = replay(rec);
    return [
      rec.name,
      rec.epochs.length,
      (rec.final.length / 2 ** 20).toFixed(0) + ' MiB',
      r.listed,
      r.unchanged,
      r.zero,
      r.full,
      r.runs,
      (r.runSegments / Math.max(r.runs, 1)).toFixed(1),
      (r.stagedBytes / MB).toFixed(2),
      (r.encodedBytes / MB).toFixed(2),
      ((100 * r.encodedBytes) / r.stagedBytes).toFixed(1) + ' %',
    ];
  });
  console.log('### Workloads: dirty pages per epoch, encoded\n');
  console.log(table(['guest', 'epochs', 'memory', 'pages listed', 'unchanged', 'zero', 'full', 'runs', 'runs/page', 'dirty MB', 'encoded MB', 'encoded / dirty'], rows));
  console.log();
}

// Tuning: run-merge gap and RUNS threshold (bytes before and after deflate level 1).
{
  const settings: (DeltaTuning & { label: string })[] = [
    { label: 'gap 0, runs < 4096 (chosen)', runGapMergeBytes: 0, runsBytesMax: 4096 },
    { label: 'gap 16', runGapMergeBytes: 16, runsBytesMax: 4096 },
    { label: 'gap 32', runGapMergeBytes: 32, runsBytesMax: 4096 },
    { label: 'gap 64', runGapMergeBytes: 64, runsBytesMax: 4096 },
    { label: 'runs < 3072', runGapMergeBytes: 0, runsBytesMax: 3072 },
    { label: 'runs < 2048', runGapMergeBytes: 0, runsBytesMax: 2048 },
    { label: 'runs < 1024', runGapMergeBytes: 0, runsBytesMax: 1024 },
  ];
  const rows = settings.map((s) => {
    let enc = 0;
    let deflated = 0;
    let segments = 0;
    const encMs: number[] = [];
    const appMs: number[] = [];
    let staged = 0;
    for (let k = 0; k < runs; k++) {
      let e = 0;
      let a = 0;
      for (const rec of recordings) {
        const r = replay(rec, s, true);
        e += r.encodeMs;
        a += r.applyMs;
        if (k === 0) {
          enc += r.encodedBytes;
          segments += r.runSegments;
          staged += r.stagedBytes;
          deflated += r.records.reduce((acc, x) => acc + zlib.deflateRawSync(x, { level: 1 }).length, 0);
        }
      }
      encMs.push(e);
      appMs.push(a);
    }
    return [s.label, (enc / MB).toFixed(3), (deflated / MB).toFixed(3), segments, (staged / MB / (median(encMs) / 1000)).toFixed(0), (staged / MB / (median(appMs) / 1000)).toFixed(0)];
  });
  console.log('### Encoder tuning (all three guests)\n');
  console.log(table(['setting', 'encoded MB', 'after deflate-1 MB', 'runs', 'encode MB/s of dirty pages', 'apply MB/s of dirty pages'], rows));
  console.log();
}

// Encoder throughput on 10,000 dirty pages.
{
  const pageCount = 10_000;
  const bytes = pageCount * PAGE_BYTES;
  const rnd = prng(11);
  const base = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i += 4) new DataView(base.buffer).setUint32(i, rnd());
  const pages = Uint32Array.from({ length: pageCount }, (_, i) => i);
  const kinds: [string, (p: Uint8Array) => void][] = [
    ['unchanged', () => {}],
    ['4 words changed', (p) => { for (let k = 0; k < 4; k++) { const at = (rnd() % 512) * 8; p[at] = p[at]! ^ 0xff; } }],
    ['64 scattered bytes', (p) => { for (let k = 0; k < 64; k++) { const at = rnd() % PAGE_BYTES; p[at] = p[at]! ^ 0x01; } }],
    ['half page', (p) => { for (let k = 0; k < PAGE_BYTES / 2; k++) p[k] = p[k]! ^ 0x5a; }],
    ['whole page', (p) => { for (let k = 0; k < PAGE_BYTES; k++) p[k] = p[k]! ^ 0x5a; }],
    ['zeroed', (p) => p.fill(0)],
  ];
  const rows = kinds.map(([label, mutate]) => {
    const staged = base.slice();
    for (let i = 0; i < pageCount; i++) mutate(staged.subarray(i * PAGE_BYTES, (i + 1) * PAGE_BYTES));
    const out = new Uint8Array(deltaBoundBytes(pageCount));
    const enc: number[] = [];
    const app: number[] = [];
    const cpy: number[] = [];
    let encodedBytes = 0;
    const shadow = new Uint8Array(bytes);
    const replica = new Uint8Array(bytes);
    for (let r = 0; r < Math.max(runs, 5); r++) {
      shadow.set(base);
      replica.set(base);
      let t0 = performance.now();
      const { encoded, counts } = encodeDelta(staged, pages, shadow, out);
      enc.push(performance.now() - t0);
      encodedBytes = counts.bytes;
      t0 = performance.now();
      applyDelta(encoded, replica);
      app.push(performance.now() - t0);
      t0 = performance.now();
      replica.set(staged);
      cpy.push(performance.now() - t0);
    }
    const mbs = (ms: number[]) => (bytes / MB / (median(ms) / 1000)).toFixed(0);
    return [label, (encodedBytes / MB).toFixed(2), median(enc).toFixed(2), mbs(enc), median(app).toFixed(2), mbs(app), mbs(cpy)];
  });
  console.log(`### Encoder throughput: ${pageCount} dirty pages (${(bytes / MB).toFixed(0)} MB) of random data\n`);
  console.log(table(['change per page', 'encoded MB', 'encode ms', 'encode MB/s', 'apply ms', 'apply MB/s', 'memcpy MB/s'], rows));
  console.log();
}

// Compression candidates.
{
  const { list, versions } = candidates();
  const perGuest = recordings.map((rec) => replay(rec).records);
  const deltas = perGuest.flat();
  const fullPages = recordings.map((rec) => {
    const nz = native.nonZeroPages(rec.final);
    const packed = new Uint8Array(nz.length * PAGE_BYTES);
    native.gatherPages(rec.final, nz, packed);
    return packed;
  });
  const deltaBytes = deltas.reduce((a, d) => a + d.length, 0);
  const fullBytes = fullPages.reduce((a, d) => a + d.length, 0);
  const ratioOf = (c: Candidate, units: Uint8Array[]) => units.reduce((a, u) => a + u.length, 0) / units.reduce((a, u) => a + c.compress(u).length, 0);
  const rows = list.map((c) => {
    const d = measure(c, deltas);
    const f = measure(c, fullPages);
    return [
      c.name,
      ...perGuest.map((units) => ratioOf(c, units).toFixed(2)),
      d.ratio.toFixed(2),
      d.compMBs.toFixed(0),
      d.decMBs.toFixed(0),
      d.msPerUnit.toFixed(2),
      ((50 * d.msPerUnit) / 10).toFixed(0) + ' %',
      f.ratio.toFixed(2),
      f.compMBs.toFixed(0),
      f.decMBs.toFixed(0),
    ];
  });
  console.log(`### Compression: ${deltas.length} epoch deltas (${(deltaBytes / MB).toFixed(1)} MB, mean ${(deltaBytes / deltas.length / 1e3).toFixed(0)} kB per epoch) and the non-zero pages of the final memories (${(fullBytes / MB).toFixed(1)} MB)\n`);
  console.log(`libraries: ${versions.join(', ')}\n`);
  console.log(
    table(
      ['candidate', ...recordings.map((r) => `ratio ${r.name}`), 'delta ratio (all)', 'delta compress MB/s', 'delta decompress MB/s', 'compress ms per epoch', 'one core at 50 epochs/s', 'full ratio', 'full compress MB/s', 'full decompress MB/s'],
      rows,
    ),
  );
}
