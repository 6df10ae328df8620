import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { crc32cPortable as crc32c } from './crc32c.js';
import { native } from '../native.js';
import { isReplicateError } from './codes.js';
import {
  FRAME_HEADER_BYTES,
  FRAME_PAYLOAD_BYTES_MAX,
  FRAME_TAG_BYTES,
  FrameOpener,
  FrameSealer,
  FrameStreamDecoder,
  KEY_BYTES,
  NONCE_BLOCK,
  NonceCounter,
  REPLAY_WINDOW,
  parseFrameHeader,
} from './frame.js';

const KEY = new Uint8Array(KEY_BYTES).fill(7);
const OTHER_KEY = new Uint8Array(KEY_BYTES).fill(8);

function pair(start = 0): { sealer: FrameSealer; opener: FrameOpener; stored: { v: number } } {
  const stored = { v: start };
  return { sealer: new FrameSealer(1, KEY, new NonceCounter(start, (v) => (stored.v = v))), opener: new FrameOpener(KEY, [1]), stored };
}

const frameArgs = fc.record({
  type: fc.integer({ min: 1, max: 8 }),
  term: fc.maxSafeNat(),
  seq: fc.maxSafeNat(),
  payload: fc.uint8Array({ maxLength: 300 }),
});

test('the TypeScript CRC-32C equals the native one', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 5000 }), (b) => {
      assert.equal(crc32c(b), native.crc32c(b));
    }),
    { numRuns: 200 },
  );
  assert.equal(crc32c(new TextEncoder().encode('123456789')), 0xe3069283); // the standard check value
});

test('frames round-trip: header fields and payload come back exactly', () => {
  const { sealer, opener } = pair();
  fc.assert(
    fc.property(frameArgs, (a) => {
      const r = opener.open(sealer.seal(a));
      assert.ok(r.ok, r.ok ? '' : r.error.message);
      assert.equal(r.header.type, a.type);
      assert.equal(r.header.term, a.term);
      assert.equal(r.header.seq, a.seq);
      assert.equal(r.header.sender, 1);
      assert.deepEqual(Buffer.from(r.payload), Buffer.from(a.payload));
    }),
    { numRuns: 300 },
  );
});

test('every truncation, every bit flip and any trailing byte is refused', () => {
  fc.assert(
    fc.property(frameArgs, fc.nat(), (a, pick) => {
      const { sealer, opener } = pair();
      const frame = sealer.seal(a);
      for (let n = 0; n < frame.length; n++) {
        const r = opener.open(frame.subarray(0, n));
        assert.ok(!r.ok, `truncated to ${n} accepted`);
      }
      for (let i = 0; i < frame.length; i++) {
        const bad = frame.slice();
        bad[i] = bad[i]! ^ (1 << ((pick + i) % 8));
        const r = opener.open(bad);
        assert.ok(!r.ok, `flip at byte ${i} accepted`);
        assert.ok(isReplicateError(r.error));
      }
      const longer = new Uint8Array(frame.length + 1);
      longer.set(frame);
      assert.ok(!opener.open(longer).ok);
      // The untouched frame still opens (nothing above moved the replay window).
      assert.ok(opener.open(frame).ok);
    }),
    { numRuns: 40 },
  );
});

test('a replayed frame is refused; reordering within the window is accepted; older is refused', () => {
  const { sealer, opener } = pair();
  const frames = Array.from({ length: REPLAY_WINDOW + 5 }, (_, i) => sealer.seal({ type: 5, term: 1, seq: i, payload: Uint8Array.of(i) }));
  assert.ok(opener.open(frames[1]!).ok);
  const again = opener.open(frames[1]!);
  assert.ok(!again.ok && isReplicateError(again.error, 'ERR_REPL_REPLAY'));
  assert.ok(opener.open(frames[0]!).ok, 'an older frame never seen, within the window');
  assert.ok(opener.open(frames[REPLAY_WINDOW + 4]!).ok);
  const old = opener.open(frames[2]!);
  assert.ok(!old.ok && isReplicateError(old.error, 'ERR_REPL_REPLAY'), 'older than the window');
});

test('a wrong key or an unknown sender is refused', () => {
  const { sealer } = pair();
  const frame = sealer.seal({ type: 1, term: 1, seq: 0, payload: Uint8Array.of(1, 2, 3) });
  const wrong = new FrameOpener(OTHER_KEY, [1]).open(frame);
  assert.ok(!wrong.ok && isReplicateError(wrong.error, 'ERR_REPL_AUTH'));
  const stranger = new FrameOpener(KEY, [2]).open(frame);
  assert.ok(!stranger.ok && isReplicateError(stranger.error, 'ERR_REPL_PEER'));
  assert.throws(() => new FrameOpener(new Uint8Array(16), [1]), (e) => isReplicateError(e, 'ERR_REPL_CONFIG'));
});

test('header bounds are checked before anything else: magic, version, flags, type, length', () => {
  const { sealer } = pair();
  const frame = sealer.seal({ type: 1, term: 1, seq: 0, payload: new Uint8Array(4) });
  const cases: [number, number, string][] = [
    [0, 0x00, 'ERR_REPL_FRAME_MAGIC'],
    [4, 9, 'ERR_REPL_FRAME_VERSION'],
    [6, 99, 'ERR_REPL_FRAME_MALFORMED'],
    [7, 1, 'ERR_REPL_FRAME_MALFORMED'],
  ];
  for (const [at, v, code] of cases) {
    const bad = frame.slice(0, FRAME_HEADER_BYTES);
    bad[at] = v;
    const r = parseFrameHeader(bad);
    assert.ok(!r.ok && isReplicateError(r.error, code as never), `${at} -> ${code}`);
  }
  const big = frame.slice(0, FRAME_HEADER_BYTES);
  new DataView(big.buffer).setUint32(36, FRAME_PAYLOAD_BYTES_MAX + 1, true);
  const r = parseFrameHeader(big);
  assert.ok(!r.ok && isReplicateError(r.error, 'ERR_REPL_FRAME_TOO_LARGE'));
  assert.equal(frame.length, FRAME_HEADER_BYTES + 4 + FRAME_TAG_BYTES);
});

test('counters are reserved durably before use and never repeat across restarts', () => {
  const stored = { v: 0 };
  const a = new NonceCounter(stored.v, (v) => (stored.v = v));
  const first = a.take();
  assert.equal(first, 0);
  assert.equal(stored.v, NONCE_BLOCK, 'the block was stored before its first counter was handed out');
  for (let i = 0; i < 10; i++) a.take();
  const b = new NonceCounter(stored.v, (v) => (stored.v = v)); // a restart
  assert.ok(b.take() >= NONCE_BLOCK);
  // A restarted sender's frames are accepted by a receiver that saw the old ones.
  const opener = new FrameOpener(KEY, [1]);
  const s1 = new FrameSealer(1, KEY, new NonceCounter(0, () => {}));
  assert.ok(opener.open(s1.seal({ type: 1, term: 1, seq: 0, payload: new Uint8Array() })).ok);
  const s2 = new FrameSealer(1, KEY, new NonceCounter(NONCE_BLOCK, () => {}));
  assert.ok(opener.open(s2.seal({ type: 1, term: 1, seq: 0, payload: new Uint8Array() })).ok);
});

test('a byte stream is split into whole frames however it is chunked', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { minLength: 1, maxLength: 6 }), fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1 }), (payloads, cuts) => {
      const { sealer, opener } = pair();
      const frames = payloads.map((p) => sealer.seal({ type: 7, term: 2, seq: 3, payload: p }));
      const stream = Buffer.concat(frames);
      const d = new FrameStreamDecoder();
      const out: Uint8Array[] = [];
      let at = 0;
      for (let i = 0; at < stream.length; i++) {
        const n = cuts[i % cuts.length]!;
        const r = d.push(stream.subarray(at, at + n));
        assert.equal(r.error, null);
        out.push(...r.frames);
        at += n;
      }
      assert.equal(out.length, frames.length);
      out.forEach((f, i) => {
        const r = opener.open(f);
        assert.ok(r.ok);
        assert.deepEqual(Buffer.from(r.payload), Buffer.from(payloads[i]!));
      });
    }),
    { numRuns: 100 },
  );
  const d = new FrameStreamDecoder();
  const r = d.push(new Uint8Array(FRAME_HEADER_BYTES).fill(0x41));
  assert.ok(r.error !== null && isReplicateError(r.error, 'ERR_REPL_FRAME_MAGIC'), 'a bad header ends the stream');
});
