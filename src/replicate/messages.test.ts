import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodePlain } from '../checkpoint/plain-codec.js';
import { isReplicateError } from './codes.js';
import { Channel } from './channel.js';
import { KEY_BYTES, NonceCounter } from './frame.js';
import { decodeMessage, encodeMessage, EPOCH_OUTPUTS_MAX, MESSAGE_TYPE_CODES, type Message } from './messages.js';

const KEY = new Uint8Array(KEY_BYTES).fill(3);

const outputs = fc.array(
  fc.oneof(
    fc.record({ kind: fc.constant('response' as const), client: fc.nat({ max: 0xffffffff }), reqId: fc.nat({ max: 0xffffffff }), body: fc.uint8Array({ maxLength: 20 }) }),
    fc.record({ kind: fc.constant('log' as const), stream: fc.constantFrom('stdout' as const, 'stderr' as const), body: fc.uint8Array({ maxLength: 20 }) }),
  ),
  { maxLength: 5 },
);
const u = fc.nat({ max: 0xffffffff });
const term = fc.nat({ max: 1e9 });
const message: fc.Arbitrary<Message> = fc.oneof(
  fc.record({ type: fc.constant('hello' as const), term, role: fc.constantFrom('idle' as const, 'syncing' as const, 'backup' as const, 'primary' as const, 'deposed' as const), session: u, lastApplied: fc.integer({ min: -1, max: 1e9 }), incarnation: u, view: u, soloTerm: u }),
  fc.integer({ min: 1, max: 4 }).chain((n) =>
    fc.record({ type: fc.constant('sync-chunk' as const), term, session: u, chunkSeq: fc.integer({ min: 1, max: 1e9 }), pageBytes: fc.constant(8), pages: fc.array(u, { minLength: n, maxLength: n }), data: fc.uint8Array({ minLength: 8 * n, maxLength: 8 * n }) }),
  ),
  fc.record({ type: fc.constant('sync-ack' as const), term, session: u, chunkSeq: fc.nat({ max: 1e9 }) }),
  fc.record({ type: fc.constant('sync-done' as const), term, session: u, chunksTotal: fc.nat({ max: 1e6 }), seq: fc.integer({ min: 1, max: 1e6 }), delta: fc.uint8Array({ maxLength: 50 }), outputs, digest: u, releasedThrough: fc.integer({ min: -1, max: 0 }) }),
  fc.record({ type: fc.constant('epoch' as const), term, session: u, seq: fc.integer({ min: 1, max: 1e6 }), delta: fc.uint8Array({ maxLength: 50 }), outputs, digest: u, releasedThrough: fc.integer({ min: -1, max: 0 }) }),
  fc.record({ type: fc.constant('ack' as const), term, session: u, seq: fc.nat({ max: 1e9 }) }),
  fc.record({ type: fc.constant('heartbeat' as const), term, session: u, seq: fc.nat({ max: 1e9 }) }),
  fc.record({ type: fc.constant('reject' as const), term, reason: fc.constantFrom('stale-term' as const, 'session' as const, 'delta-invalid' as const, 'diverged' as const, 'term-conflict' as const), detail: fc.string({ maxLength: 40 }) }),
);

function plainEqual(a: unknown): unknown {
  return JSON.parse(JSON.stringify(a, (_k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v)));
}

test('every message round-trips through an authenticated channel', () => {
  const a = new Channel(1, KEY, [2], new NonceCounter(0, () => {}));
  const b = new Channel(2, KEY, [1], new NonceCounter(0, () => {}));
  fc.assert(
    fc.property(message, (m) => {
      const r = b.open(a.seal(m));
      assert.ok(r.ok, r.ok ? '' : r.error.message);
      assert.equal(r.from, 1);
      assert.deepEqual(plainEqual(r.msg), plainEqual(m));
    }),
    { numRuns: 400 },
  );
});

test('a replayed epoch frame is refused by the channel', () => {
  const a = new Channel(1, KEY, [2], new NonceCounter(0, () => {}));
  const b = new Channel(2, KEY, [1], new NonceCounter(0, () => {}));
  const frame = a.seal({ type: 'epoch', term: 2, session: 9, seq: 4, delta: new Uint8Array(4), outputs: [], digest: 0, releasedThrough: 3 });
  assert.ok(b.open(frame).ok);
  const r = b.open(frame);
  assert.ok(!r.ok && isReplicateError(r.error, 'ERR_REPL_REPLAY'));
});

test('any payload that is not a well-formed message is refused with ERR_REPL_MESSAGE', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 8 }), fc.nat({ max: 5 }), fc.uint8Array({ maxLength: 64 }), (type, seq, payload) => {
      try {
        decodeMessage({ type, term: 1, seq }, payload);
      } catch (e) {
        assert.ok(isReplicateError(e, 'ERR_REPL_MESSAGE'), String(e));
      }
    }),
    { numRuns: 2000 },
  );
  const bad: [keyof typeof MESSAGE_TYPE_CODES, number, unknown][] = [
    ['hello', 0, { role: 'king', session: 1, lastApplied: 0, incarnation: 1, view: 1, soloTerm: 0 }],
    ['hello', 0, { role: 'idle', session: 1, lastApplied: 0, incarnation: 1, view: 1 }],
    ['hello', 0, { role: 'idle', session: 1, lastApplied: 0, incarnation: 1 }],
    ['hello', 0, { role: 'idle', session: -1, lastApplied: 0, incarnation: 1, view: 0, soloTerm: 0 }],
    ['hello', 0, { role: 'idle', session: 1, lastApplied: 0, incarnation: 1, view: 0, soloTerm: -1 }],
    ['sync-chunk', 1, { session: 1, pageBytes: 8, pages: [1, 2], data: new Uint8Array(15) }],
    ['sync-chunk', 0, { session: 1, pageBytes: 8, pages: [1], data: new Uint8Array(8) }],
    ['epoch', 3, { session: 1, delta: new Uint8Array(), outputs: [], digest: 0, releasedThrough: 3 }],
    ['epoch', 3, { session: 1, delta: new Uint8Array(), outputs: [[0, 1, 2]], digest: 0, releasedThrough: 0 }],
    ['epoch', 3, { session: 1, delta: new Uint8Array(), outputs: new Array(EPOCH_OUTPUTS_MAX + 1).fill([1, 1, new Uint8Array()]), digest: 0, releasedThrough: 0 }],
    ['reject', 0, { reason: 'because', detail: '' }],
    ['ack', 1, { session: 1.5 }],
  ];
  for (const [type, seq, body] of bad) {
    assert.throws(() => decodeMessage({ type: MESSAGE_TYPE_CODES[type], term: 1, seq }, encodePlain(body as never)), (e) => isReplicateError(e, 'ERR_REPL_MESSAGE'), `${type} ${JSON.stringify(body, (_k, v) => (v instanceof Uint8Array ? 'bytes' : v)).slice(0, 80)}`);
  }
});

test('the frame header carries the message sequence', () => {
  assert.equal(encodeMessage({ type: 'ack', term: 3, session: 1, seq: 17 }).seq, 17);
  assert.equal(encodeMessage({ type: 'sync-chunk', term: 3, session: 1, chunkSeq: 5, pageBytes: 1, pages: [0], data: new Uint8Array(1) }).seq, 5);
});
