import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodePlain, encodePlain } from './plain-codec.js';
import { isUnderstudyError } from '../errors.js';
import type { Plain } from '../util/plain.js';

const plainArb: fc.Arbitrary<Plain> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double({ noNaN: true }),
    fc.string(),
    fc.bigInt(),
    fc.uint8Array({ maxLength: 5000 }),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fc.string(), tie('value'), { maxKeys: 5 }),
  ),
})).value as fc.Arbitrary<Plain>;

function normalise(v: Plain): unknown {
  // Decoded objects have a null prototype; compare structure, not prototypes.
  return JSON.parse(JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `bigint:${x}` : x instanceof Uint8Array ? `bytes:${Buffer.from(x).toString('hex')}` : x)));
}

test('plain values round-trip exactly', () => {
  fc.assert(
    fc.property(plainArb, (v) => {
      const back = decodePlain(encodePlain(v));
      assert.deepEqual(normalise(back), normalise(v));
    }),
    { numRuns: 300 },
  );
});

test('-0, NaN and large integers keep their exact value', () => {
  const back = decodePlain(encodePlain([-0, 2 ** 53, -(2 ** 31) - 1, 0.1])) as number[];
  assert.ok(Object.is(back[0], -0));
  assert.equal(back[1], 2 ** 53);
  assert.equal(back[2], -(2 ** 31) - 1);
  assert.equal(back[3], 0.1);
  assert.ok(Number.isNaN(decodePlain(encodePlain(NaN)) as number));
});

test('a key named __proto__ stays an ordinary key', () => {
  const v = JSON.parse('{"__proto__": 5, "a": 1}') as Plain;
  const back = decodePlain(encodePlain(v)) as Record<string, Plain>;
  assert.equal(Object.getOwnPropertyDescriptor(back, '__proto__')?.value, 5);
  assert.equal(Object.getPrototypeOf(back), null);
});

test('every truncation of an encoding is refused with ERR_CKPT_MALFORMED', () => {
  fc.assert(
    fc.property(plainArb, (v) => {
      const bytes = encodePlain(v);
      for (let n = 0; n < bytes.length; n++) {
        assert.throws(() => decodePlain(bytes.subarray(0, n)), (e) => isUnderstudyError(e, 'ERR_CKPT_MALFORMED'));
      }
    }),
    { numRuns: 60 },
  );
});

test('trailing bytes and unknown tags are refused', () => {
  const bytes = encodePlain({ a: 1 });
  assert.throws(() => decodePlain(Buffer.concat([bytes, Buffer.from([0])])), (e) => isUnderstudyError(e, 'ERR_CKPT_MALFORMED'));
  assert.throws(() => decodePlain(Uint8Array.of(200)), (e) => isUnderstudyError(e, 'ERR_CKPT_MALFORMED'));
});

test('a huge declared length is refused before any allocation', () => {
  // Array tag with 2^32-1 items in 5 bytes.
  assert.throws(() => decodePlain(Uint8Array.of(8, 0xff, 0xff, 0xff, 0xff)), (e) => isUnderstudyError(e, 'ERR_CKPT_MALFORMED'));
  // Bytes tag claiming 4 GiB.
  assert.throws(() => decodePlain(Uint8Array.of(7, 0xff, 0xff, 0xff, 0xff, 1, 2)), (e) => isUnderstudyError(e, 'ERR_CKPT_MALFORMED'));
});

test('undefined, functions and class instances are not plain data', () => {
  assert.throws(() => encodePlain({ a: undefined } as unknown as Plain), TypeError);
  assert.throws(() => encodePlain(new Map() as unknown as Plain), TypeError);
  assert.throws(() => encodePlain((() => 1) as unknown as Plain), TypeError);
});
