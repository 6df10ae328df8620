// The disk target: a commit log with a torn tail or a corrupt record recovers
// its longest valid prefix and says why it stops (stable codes); reopening
// cuts the bad tail and appends after the last good record; compaction and a
// crash between its two steps lose nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from '../testing/fixtures.js';
import { isUnderstudyError } from '../errors.js';
import { BASE_FILE, CDA_FILE_HEADER_BYTES, CdaLog, LOG_FILE, readCdaDir } from './disk.js';
import { CriticalAreaService } from './service.js';
import { areasOf } from './service.js';

/** Commits `n` cycles of a counter area to a disk target; returns each cycle's area bytes. */
async function commitCycles(dir: string, n: number, compactRecords?: number): Promise<Uint8Array[]> {
  const memory = new WebAssembly.Memory({ initial: 1 });
  const s = new CriticalAreaService({ mode: 'diff', inline: true, target: { kind: 'disk', dir, compactRecords } });
  s.bindMemory(memory);
  await s.ready;
  s.register(4096, 3 * 4096);
  s.recoverNow();
  const u8 = new Uint8Array(memory.buffer);
  const states: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    await s.transaction(() => u8.fill(i + 1, 4096 + i * 1000, 4096 + i * 1000 + 900));
    states.push(u8.slice(4096, 4 * 4096));
  }
  await s.close();
  return states;
}

function recordOffsets(dir: string): number[] {
  // Record boundaries, from the log's own framing: header 40 bytes + stored bytes (u32 at 28).
  const bytes = fs.readFileSync(path.join(dir, LOG_FILE));
  const offsets: number[] = [];
  for (let at = CDA_FILE_HEADER_BYTES; at < bytes.length; at += 40 + bytes.readUInt32LE(at + 28)) offsets.push(at);
  return offsets;
}

test('a clean log recovers its last cycle', async () => {
  const dir = tempDir('cda-disk');
  const states = await commitCycles(dir, 5);
  const r = readCdaDir(dir);
  assert.equal(r.state.cycle, 5);
  assert.equal(r.stop, null);
  assert.ok(Buffer.from(areasOf(r.state).areas[0]!.bytes).equals(Buffer.from(states[4]!)));
});

test('a torn tail (a crash while appending) is ignored and reported: ERR_CDA_LOG_TORN; reopening cuts it and continues', async () => {
  const dir = tempDir('cda-torn');
  const states = await commitCycles(dir, 4);
  const logPath = path.join(dir, LOG_FILE);
  const offsets = recordOffsets(dir);
  for (const cut of [offsets[3]! + 10, offsets[3]! + 45]) {
    const copy = tempDir('cda-torn-copy');
    fs.copyFileSync(logPath, path.join(copy, LOG_FILE));
    fs.truncateSync(path.join(copy, LOG_FILE), cut);
    const r = readCdaDir(copy);
    assert.equal(r.state.cycle, 3, 'the prefix before the torn record');
    assert.equal(r.stop?.code, 'ERR_CDA_LOG_TORN');
    assert.equal(r.stop?.offset, offsets[3]);
    assert.ok(Buffer.from(areasOf(r.state).areas[0]!.bytes).equals(Buffer.from(states[2]!)));
    // Reopen for writing: the torn bytes go, the next cycle follows cycle 3.
    const log = CdaLog.open(copy);
    assert.equal(fs.statSync(path.join(copy, LOG_FILE)).size, offsets[3]);
    log.close();
    const more = await commitCycles(copy, 1);
    const again = readCdaDir(copy);
    assert.equal(again.state.cycle, 4);
    assert.equal(again.stop, null);
    assert.equal(more.length, 1);
  }
});

test('a corrupt record ends the valid prefix: ERR_CDA_LOG_CORRUPT, with the cycles before it intact', async () => {
  const dir = tempDir('cda-corrupt');
  const states = await commitCycles(dir, 5);
  const logPath = path.join(dir, LOG_FILE);
  const offsets = recordOffsets(dir);
  const bytes = fs.readFileSync(logPath);
  // A flipped payload byte of record 3, then a flipped header byte of record 3.
  for (const at of [offsets[2]! + 40 + 3, offsets[2]! + 9]) {
    const bad = Buffer.from(bytes);
    bad[at]! ^= 0x40;
    fs.writeFileSync(logPath, bad);
    const r = readCdaDir(dir);
    assert.equal(r.state.cycle, 2);
    assert.equal(r.stop?.code, 'ERR_CDA_LOG_CORRUPT');
    assert.ok(Buffer.from(areasOf(r.state).areas[0]!.bytes).equals(Buffer.from(states[1]!)));
  }
  // A damaged log header is not a prefix of anything: refused as a whole.
  const bad = Buffer.from(bytes);
  bad[3]! ^= 1;
  fs.writeFileSync(logPath, bad);
  assert.throws(() => readCdaDir(dir), (e: unknown) => isUnderstudyError(e, 'ERR_CDA_LOG_CORRUPT'));
});

test('compaction writes a base image; recovery = base + the log after it, also after a crash between the two steps', async () => {
  const dir = tempDir('cda-compact');
  const states = await commitCycles(dir, 7, 3);
  assert.ok(fs.existsSync(path.join(dir, BASE_FILE)));
  const r = readCdaDir(dir);
  assert.equal(r.state.cycle, 7);
  assert.ok(r.baseCycle >= 3 && r.baseCycle <= 7, `base at ${r.baseCycle}`);
  assert.ok(Buffer.from(areasOf(r.state).areas[0]!.bytes).equals(Buffer.from(states[6]!)));

  // A crash after the new base but before the new log: the old log still starts before the base.
  const crash = tempDir('cda-compact-crash');
  await commitCycles(crash, 5);
  const oldLog = fs.readFileSync(path.join(crash, LOG_FILE));
  const log = CdaLog.open(crash);
  log.writeBase(log.recovery.state);
  log.close();
  fs.writeFileSync(path.join(crash, LOG_FILE), oldLog);
  const c = readCdaDir(crash);
  assert.equal(c.baseCycle, 5);
  assert.equal(c.state.cycle, 5);
  assert.equal(c.records, 0, 'records the base holds are skipped');
  assert.equal(c.stop, null);
});

test('an append that fails is refused with ERR_CDA_IO and leaves the log as it was', async () => {
  const dir = tempDir('cda-eio');
  await commitCycles(dir, 2);
  const log = CdaLog.open(dir);
  const size = fs.statSync(path.join(dir, LOG_FILE)).size;
  log.close(); // its descriptor is gone: the write fails as a failing disk would
  assert.throws(() => log.append(3, new Uint8Array(100)), (e: unknown) => isUnderstudyError(e, 'ERR_CDA_IO'));
  assert.throws(() => log.append(3, new Uint8Array(100)), (e: unknown) => isUnderstudyError(e, 'ERR_CDA_IO'), 'a log it could not repair refuses every later append');
  assert.equal(fs.statSync(path.join(dir, LOG_FILE)).size, size);
  assert.equal(readCdaDir(dir).state.cycle, 2);
});
