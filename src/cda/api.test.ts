// The package API for Node programs: criticalArea over an arena, transactions
// (sync and async; a throw aborts), recordWrite in mode emul, and a backup
// whose areas are read back while the primary is stopped mid-cycle.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { criticalArea, fetchCdaAreas, CdaBackupServer } from '../index.js';
import { isUnderstudyError } from '../errors.js';

test('criticalArea: transactions commit, a throwing one aborts and rethrows, recover gives the committed bytes back', async () => {
  const memory = criticalArea.arena(100_000);
  assert.equal(memory.buffer.byteLength, 2 * 65536);
  const cda = criticalArea(memory, { mode: 'emul' });
  const u8 = new Uint8Array(memory.buffer);
  cda.register(0, 100_000);
  const put = (at: number, v: number) => {
    u8[at] = v;
    cda.recordWrite(at, 1);
  };
  const a = await cda.transaction(() => put(10, 1));
  assert.equal(a.commit.cycle, 1);
  assert.equal(a.commit.stores, 1, 'the writes recorded for the cycle');
  const b = await cda.transaction(async () => {
    await new Promise((r) => setTimeout(r, 1));
    put(20, 2);
    return 'done';
  });
  assert.equal(b.result, 'done');
  assert.equal(b.commit.cycle, 2);
  await assert.rejects(
    cda.transaction(() => {
      put(30, 3);
      throw new Error('application failure');
    }),
    /application failure/,
  );
  assert.equal(u8[30], 0, 'the failed transaction left no trace');
  u8.fill(0xff, 0, 100);
  assert.equal(await cda.recover(), 2);
  assert.deepEqual([u8[10], u8[20], u8[30], u8[0]], [1, 2, 0, 0]);
  const st = cda.stats();
  assert.deepEqual([st.commits, st.aborts, st.mode, st.tracker], [2, 1, 'emul', 'store-log']);
  await cda.close();
  assert.throws(() => cda.begin(), (e: unknown) => isUnderstudyError(e, 'ERR_CDA_STATE'));
});

test('a backup keeps the areas of a primary that is gone; fetchCdaAreas reads them', async () => {
  const key = randomBytes(32);
  const backup = await CdaBackupServer.start({ listen: { host: '127.0.0.1', port: 0 }, key });
  try {
    const memory = criticalArea.arena(65536);
    const cda = criticalArea(memory, { mode: 'diff', target: { kind: 'backup', host: '127.0.0.1', port: backup.port, key } });
    const u8 = new Uint8Array(memory.buffer);
    cda.register(4096, 8192);
    for (let i = 1; i <= 3; i++) await cda.transaction(() => u8.fill(i, 4096 + i * 100, 4096 + i * 100 + 50));
    const expected = u8.slice(4096, 4096 + 8192);
    cda.begin();
    u8.fill(9, 4096, 4200); // an open cycle that never commits: the primary stops here
    const got = await fetchCdaAreas({ host: '127.0.0.1', port: backup.port, key });
    assert.equal(got.cycle, 3);
    assert.deepEqual(got.areas.map((a) => [a.id, a.address, a.length]), [[1, 4096, 8192]]);
    assert.ok(Buffer.from(got.areas[0]!.bytes).equals(Buffer.from(expected)), 'the areas as of the last acknowledged cycle, exactly');
    cda.abort();
    await cda.close();
  } finally {
    await backup.close();
  }
});
