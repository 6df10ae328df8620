// GuestMachine: a reactor guest as a replicated machine. Sync and epoch deltas
// from a live primary rebuild the same state in a backup's image; the image
// becomes a live guest on demand; request ids apply exactly once; a bad delta
// changes nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadGuestModule, type GuestModule } from '../guest/module.js';
import { guestPath, tempDir } from '../testing/fixtures.js';
import { isUnderstudyError } from '../errors.js';
import { GuestMachine } from './guest-machine.js';
import fc from 'fast-check';
import { RequestTable, ResponseStatus, TABLE_RESPONSES_PER_CLIENT_MAX, openEnvelope } from './request-table.js';

const cacheDir = tempDir('gm-cache');
const enc = (s: string) => new TextEncoder().encode(s);
function answer(bytes: Uint8Array): string {
  const e = openEnvelope(bytes);
  assert.ok(e !== null);
  assert.equal(e.status, ResponseStatus.ok, Buffer.from(e.body).toString());
  return Buffer.from(e.body).toString();
}

/** Pre-copy as the primary does it: every page, then the final delta with what the round collected. */
function sync(primary: GuestMachine, backup: GuestMachine): void {
  primary.collectDirtyPages();
  for (let p = 0; p < primary.pageCount(); p++) backup.writePage(p, primary.readPage(p));
  const dirty = primary.collectDirtyPages();
  backup.applyDelta(primary.captureDelta(dirty, true));
  assert.equal(backup.digest(), primary.digest());
}

async function pair(name: string): Promise<{ module: GuestModule; primary: GuestMachine; backup: GuestMachine }> {
  const module = await loadGuestModule(guestPath(name), { cacheDir });
  const primary = await GuestMachine.create({ module, handler: 'handle' });
  const backup = GuestMachine.empty({ module, handler: 'handle' });
  return { module, primary, backup };
}

test('kvstore: sync, then epoch deltas keep an image identical; the image takes over and answers the same', async () => {
  const { primary, backup } = await pair('kvstore');
  answer(primary.handleRequest(1, 1, enc('FILL 2000 64')));
  sync(primary, backup);
  for (let i = 0; i < 20; i++) {
    answer(primary.handleRequest(1, 2 + i, enc(`SET k${i} value-${i}`)));
    if (i % 5 === 4) {
      const delta = primary.captureDelta();
      backup.applyDelta(delta);
      assert.equal(backup.digest(), primary.digest(), `epoch after request ${i}`);
    }
  }
  assert.equal(backup.isLive, false);
  const sum = answer(primary.handleRequest(2, 1, enc('SUM')));
  backup.applyDelta(primary.captureDelta());
  // Take over: the image becomes a guest; a retried request gets its recorded answer, new ones continue.
  assert.equal(answer(backup.handleRequest(2, 1, enc('SUM'))), sum);
  assert.equal(backup.isLive, true);
  assert.equal(answer(backup.handleRequest(2, 2, enc('GET k7'))), 'value-7');
  assert.equal(answer(backup.handleRequest(2, 3, enc('COUNT'))), '2020');
  primary.dispose();
  backup.dispose();
});

test('ledger (AssemblyScript, GC heap): replicated through deltas, digest agrees after each', async () => {
  const { primary, backup } = await pair('ledger');
  sync(primary, backup);
  answer(primary.handleRequest(1, 1, enc('FILL 300 2000')));
  answer(primary.handleRequest(1, 2, enc('OPEN alice 100')));
  backup.applyDelta(primary.captureDelta());
  assert.equal(backup.digest(), primary.digest());
  answer(primary.handleRequest(1, 3, enc('OPEN bob 5')));
  assert.equal(answer(primary.handleRequest(1, 4, enc('XFER alice bob 30'))), 'OK');
  backup.applyDelta(primary.captureDelta());
  assert.equal(backup.digest(), primary.digest());
  const digest = answer(primary.handleRequest(1, 5, enc('DIGEST')));
  assert.equal(answer(backup.handleRequest(9, 1, enc('DIGEST'))), digest);
  assert.equal(answer(backup.handleRequest(9, 2, enc('BAL bob'))), '35');
  primary.dispose();
  backup.dispose();
});

test('exactly once: a repeated request id answers the recorded answer and changes nothing', async () => {
  const { primary } = await pair('kvstore');
  assert.equal(answer(primary.handleRequest(1, 1, enc('FILL 10 8'))), 'OK');
  assert.equal(answer(primary.handleRequest(1, 2, enc('FILL 10 8'))), 'OK');
  assert.equal(answer(primary.handleRequest(1, 3, enc('COUNT'))), '20');
  for (let i = 0; i < 3; i++) assert.equal(answer(primary.handleRequest(1, 2, enc('FILL 10 8'))), 'OK');
  assert.equal(answer(primary.handleRequest(1, 3, enc('COUNT'))), '20', 'a repeat returns the recorded answer');
  assert.equal(answer(primary.handleRequest(1, 4, enc('COUNT'))), '20', 'the repeats had no effect');
  // Push client 1's early answers out of the table: their ids are refused, not re-run.
  for (let i = 0; i < TABLE_RESPONSES_PER_CLIENT_MAX; i++) answer(primary.handleRequest(1, 10 + i, enc('COUNT')));
  const old = openEnvelope(primary.handleRequest(1, 2, enc('FILL 10 8')))!;
  assert.equal(old.status, ResponseStatus.forgotten);
  assert.equal(answer(primary.handleRequest(1, 100, enc('COUNT'))), '20');
  primary.dispose();
});

test('a malformed or foreign delta is refused whole and changes nothing', async () => {
  const { primary, backup } = await pair('kvstore');
  sync(primary, backup);
  const before = backup.digest();
  answer(primary.handleRequest(1, 1, enc('FILL 100 32')));
  const good = primary.captureDelta();
  const refuse = (d: Uint8Array, why: string) => {
    assert.throws(() => backup.applyDelta(d), (e: unknown) => isUnderstudyError(e, 'ERR_REPL_DELTA'), why);
    assert.equal(backup.digest(), before, `${why}: nothing applied`);
  };
  refuse(good.subarray(0, good.length - 1), 'truncated');
  refuse(Uint8Array.from([...good, 0]), 'trailing byte');
  const magic = good.slice();
  magic[0]! ^= 1;
  refuse(magic, 'bad magic');
  const order = good.slice();
  new DataView(order.buffer).setUint32(16, 0xffffffff, true);
  refuse(order, 'page index past the memory');
  const other = await loadGuestModule(guestPath('ledger'), { cacheDir });
  const foreign = await GuestMachine.create({ module: other, handler: 'handle' });
  refuse(foreign.captureDelta(), 'another module');
  backup.applyDelta(good);
  assert.equal(backup.digest(), primary.digest());
  foreign.dispose();
  primary.dispose();
  backup.dispose();
});

test('request table: bounds hold, state round-trips through plain data, and hostile forms are refused', () => {
  const t = new RequestTable();
  for (let c = 1; c <= 100; c++) for (let r = 1; r <= 20; r++) t.record(c, r, Uint8Array.of(0, c, r));
  assert.ok(t.size <= 1024);
  const back = RequestTable.restore(t.save());
  assert.deepEqual(back.save(), t.save());
  for (let c = 1; c <= 100; c++) {
    for (let r = 1; r <= 20; r++) {
      const k = back.lookup(c, r).kind;
      assert.ok(k === 'recorded' || k === 'forgotten', `${c}:${r} was applied (${k})`);
    }
    assert.equal(back.lookup(c, 21).kind, 'new');
  }
  assert.throws(() => RequestTable.restore({ floors: [[1, 5]], answers: [[1, 3, Uint8Array.of(0)]] }), (e: unknown) => isUnderstudyError(e, 'ERR_REPL_DELTA'));
  assert.throws(() => RequestTable.restore({ floors: [], answers: [[1, 3, Uint8Array.of(0)]] }), (e: unknown) => isUnderstudyError(e, 'ERR_REPL_DELTA'));
  assert.throws(() => RequestTable.restore({ floors: [[1, 0], [1, 0]], answers: [] }), (e: unknown) => isUnderstudyError(e, 'ERR_REPL_DELTA'));
});

test('request table journals: replaying the records of each capture rebuilds the same table; a skipped or repeated journal is refused', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 3 }), fc.boolean()), { minLength: 1, maxLength: 400 }),
      (steps) => {
        const primary = new RequestTable();
        const next = new Map<number, number>();
        // A base first, as a sync ends.
        let backup = RequestTable.restore(primary.save());
        primary.startJournal();
        const journals: ReturnType<RequestTable['takeJournal']>[] = [];
        for (const [client, step, capture] of steps) {
          const id = (next.get(client) ?? 0) + step; // ids need not be consecutive
          next.set(client, id);
          primary.record(client, id, Uint8Array.of(0, client & 0xff, id & 0xff));
          if (capture) {
            const j = primary.takeJournal();
            assert.ok(j !== null);
            journals.push(j);
            backup = backup.replay(j.records, j.fingerprint);
            assert.deepEqual(backup.save(), primary.save());
            assert.equal(backup.fingerprint, primary.fingerprint);
          }
        }
        const withRecords = journals.filter((j) => j!.records.length > 0);
        if (withRecords.length > 0) {
          const j = withRecords[withRecords.length - 1]!;
          assert.throws(() => backup.replay(j.records, j.fingerprint), (e: unknown) => isUnderstudyError(e, 'ERR_REPL_DELTA'), 'a journal applied twice');
        }
      },
    ),
    { numRuns: 60 },
  );
  // A skipped journal: the next one does not continue this table's history.
  const p = new RequestTable();
  p.startJournal();
  let b = RequestTable.restore(p.save());
  p.record(1, 1, Uint8Array.of(0));
  p.takeJournal(); // lost
  p.record(2, 1, Uint8Array.of(0));
  const j = p.takeJournal()!;
  assert.throws(() => b.replay(j.records, j.fingerprint), (e: unknown) => isUnderstudyError(e, 'ERR_REPL_DELTA') && /fingerprint/.test((e as Error).message));
  b = RequestTable.restore(p.save());
  assert.deepEqual(b.save(), p.save());
});

test('after a sync, epochs carry the request table as a journal (small), not whole; a journal without a base is refused', async () => {
  const { primary, backup } = await pair('kvstore');
  for (let c = 1; c <= 300; c++) answer(primary.handleRequest(c, 1, enc(`SET k${c} ${'v'.repeat(40)}`)));
  primary.collectDirtyPages();
  for (let pg = 0; pg < primary.pageCount(); pg++) backup.writePage(pg, primary.readPage(pg));
  const base = primary.captureDelta(primary.collectDirtyPages(), true);
  const metaOf = (d: Uint8Array) => new DataView(d.buffer, d.byteOffset).getUint32(12, true);
  assert.ok(metaOf(base) > 300 * 40, 'the base carries every recorded answer');
  // A replica that has no table yet refuses a journal.
  answer(primary.handleRequest(1, 2, enc('GET k1')));
  const early = primary.captureDelta();
  const fresh = GuestMachine.empty({ module: (await pair('kvstore')).module, handler: 'handle' });
  assert.throws(() => fresh.applyDelta(early), (e: unknown) => isUnderstudyError(e, 'ERR_REPL_DELTA'));
  backup.applyDelta(base);
  backup.applyDelta(early);
  answer(primary.handleRequest(2, 2, enc('GET k2')));
  const epoch = primary.captureDelta();
  assert.ok(metaOf(epoch) < 2048, `an epoch's meta is ${metaOf(epoch)} bytes: the journal of one request`);
  backup.applyDelta(epoch);
  assert.equal(backup.digest(), primary.digest());
  assert.deepEqual(backup.requestTable.save(), primary.requestTable.save());
  // The backup takes over with the same table: a retry of an applied id gets its recorded answer.
  assert.equal(answer(backup.handleRequest(150, 1, enc(`SET k150 other`))), 'OK');
  assert.equal(answer(backup.handleRequest(2, 2, enc('GET k2'))), 'v'.repeat(40));
  primary.dispose();
  backup.dispose();
  fresh.dispose();
});

test('epochs after a sync carry changed byte runs, not whole dirty pages; corrupted runs are refused whole; diff: false sends pages', async () => {
  const { module, primary, backup } = await pair('kvstore');
  answer(primary.handleRequest(1, 1, enc('FILL 3000 64')));
  sync(primary, backup);
  for (let i = 0; i < 200; i++) answer(primary.handleRequest(2, 1 + i, enc(`SET k${i} ${'x'.repeat(32)}`)));
  const d = primary.captureDelta();
  const view = new DataView(d.buffer, d.byteOffset);
  assert.equal(view.getUint16(6, true), 1, 'DELTA_FLAG_RUNS');
  const pages = primary.stats.capturedPages;
  assert.ok(d.length < (pages * 4096) / 4, `${d.length} bytes for an epoch that dirtied pages worth ${pages * 4096}`);
  const before = backup.digest();
  const refuse = (bad: Uint8Array, why: string) => {
    assert.throws(() => backup.applyDelta(bad), (e: unknown) => isUnderstudyError(e, 'ERR_REPL_DELTA'), why);
    assert.equal(backup.digest(), before, `${why}: nothing applied`);
  };
  const runsAt = 16 + view.getUint32(12, true);
  const magic = d.slice();
  magic[runsAt]! ^= 0xff;
  refuse(magic, 'runs with a bad magic');
  refuse(d.subarray(0, d.length - 3), 'runs cut short');
  const past = d.slice();
  new DataView(past.buffer).setUint32(runsAt + 24, 0x7fffffff, true); // the first entry's page index
  refuse(past, 'a page past the memory');
  backup.applyDelta(d);
  assert.equal(backup.digest(), primary.digest());
  // The same without the byte-run encoding: whole pages.
  const p2 = await GuestMachine.create({ module, handler: 'handle', diff: false });
  const b2 = GuestMachine.empty({ module, handler: 'handle', diff: false });
  sync(p2, b2);
  answer(p2.handleRequest(1, 1, enc('SET a 1')));
  const whole = p2.captureDelta();
  assert.equal(new DataView(whole.buffer, whole.byteOffset).getUint16(6, true), 0);
  b2.applyDelta(whole);
  assert.equal(b2.digest(), p2.digest());
  for (const m of [primary, backup, p2, b2]) m.dispose();
});
