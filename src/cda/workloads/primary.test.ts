// The Node-program primary (primary.ts): its arena ends as the reference run's,
// a second run against the same disk target recovers the last committed cycle
// and finishes with the same digest, and bad options are refused with a code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isUnderstudyError } from '../../errors.js';
import { tempDir } from '../../testing/fixtures.js';
import { digest, runReference } from './index.js';
import { runCdaPrimary } from './primary.js';

const hex = (n: number) => n.toString(16).padStart(8, '0');

test('runCdaPrimary: a run cut short and restarted from disk ends as the uninterrupted reference', async () => {
  const dir = tempDir('cda-primary');
  const cda = { mode: 'emul' as const, target: { kind: 'disk' as const, dir }, inline: true };
  const first: string[] = [];
  const a = await runCdaPrimary({ workload: 'hash', opt: 5, ops: 40, progress: 4, cda }, (l) => first.push(l));
  assert.equal(a.recovered, 0);
  assert.deepEqual(first.filter((l) => l.startsWith('progress')), ['progress cycle=4 ops=20', 'progress cycle=8 ops=40']);
  assert.equal(a.digest, digest(runReference('hash', { opt: 5, cycles: 8 })));
  const second: string[] = [];
  const b = await runCdaPrimary({ workload: 'hash', opt: 5, ops: 100, cda: { ...cda, mode: 'diff' as const } }, (l) => second.push(l));
  assert.equal(b.recovered, 8, 'the second run goes on from the first one\'s last cycle');
  assert.ok(second.includes('recovered cycle=8 ops=40'));
  const want = digest(runReference('hash', { opt: 5, cycles: 20 }));
  assert.equal(b.digest, want);
  assert.match(second.at(-1)!, new RegExp(`^done workload=hash ops=100 cycles=20 count=\\d+ digest=${hex(want)}$`));
});

test('runCdaPrimary refuses options out of their bounds', async () => {
  for (const bad of [{ opt: 0 }, { opt: 3, ops: 10 }, { ops: -1 }, { progress: 1.5 }]) {
    await assert.rejects(
      runCdaPrimary({ workload: 'list', cda: { mode: 'emul', inline: true }, ...bad }, () => undefined),
      (e: unknown) => isUnderstudyError(e, 'ERR_CDA_WORKLOAD_OPTIONS'),
      JSON.stringify(bad),
    );
  }
});
