// FileStorage: every durable number of a node survives a restart (a new
// FileStorage on the same directory), and a state file that is not ours is
// refused with ERR_REPL_CONFIG rather than half-read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { STORAGE_KEYS } from '../env.js';
import { isReplicateError } from '../codes.js';
import { tempDir } from '../../testing/fixtures.js';
import { FileStorage, STATE_FILE } from './storage.js';

test('every storage key round-trips through a restart (regression: soloTerm was refused on restart)', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.constantFrom(...STORAGE_KEYS), fc.nat({ max: Number.MAX_SAFE_INTEGER })), { minLength: 1, maxLength: 12 }), (writes) => {
      const dir = tempDir('storage');
      const a = new FileStorage(dir);
      const expected = new Map<string, number>();
      for (const [k, v] of writes) {
        a.set(k, v);
        expected.set(k, v);
      }
      const b = new FileStorage(dir);
      for (const k of STORAGE_KEYS) assert.equal(b.get(k), expected.get(k));
      fs.rmSync(dir, { recursive: true });
    }),
    { numRuns: 30 },
  );
});

test('a state file that is not ours is refused', () => {
  for (const text of ['{"term":1,"colour":3}', '{"term":-1}', '[1]', 'not json', JSON.stringify({ term: 1, pad: 'x'.repeat(5000) })]) {
    const dir = tempDir('storage-bad');
    fs.writeFileSync(path.join(dir, STATE_FILE), text);
    assert.throws(() => new FileStorage(dir), (e) => isReplicateError(e, 'ERR_REPL_CONFIG'), text.slice(0, 40));
    fs.rmSync(dir, { recursive: true });
  }
});
