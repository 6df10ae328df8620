// The CDA backup over real TCP on loopback: commits are acknowledged with
// their cycle, a restarted primary gets the areas back, a wrong key and a
// replayed frame are refused, an unreachable backup fails the commit with
// ERR_CDA_IO within its timeout, and a backup that lost its state is resent
// the whole image.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { isUnderstudyError } from '../errors.js';
import { tempDir } from '../testing/fixtures.js';
import { CdaBackupServer } from './backup.js';
import { CdaChannel, type CdaMessage } from './link.js';
import { CriticalAreaService } from './service.js';
import type { CdaTargetSpec } from './committer.js';
import { compress } from '../checkpoint/compress.js';
import { encodeRecord } from './record.js';

const LOOPBACK = { host: '127.0.0.1', port: 0 };

function target(server: CdaBackupServer, key: Uint8Array, timeoutMs = 2000): CdaTargetSpec {
  return { kind: 'backup', host: '127.0.0.1', port: server.port, key, timeoutMs };
}

async function primary(t: CdaTargetSpec, inline = true): Promise<{ s: CriticalAreaService; u8: () => Uint8Array }> {
  const memory = new WebAssembly.Memory({ initial: 2 });
  const s = new CriticalAreaService({ mode: 'diff', inline, target: t });
  s.bindMemory(memory);
  await s.ready;
  s.register(8192, 40000);
  return { s, u8: () => new Uint8Array(memory.buffer) };
}

test('commits are acknowledged; a restarted primary recovers the last acknowledged cycle from the backup', async () => {
  const key = randomBytes(32);
  const server = await CdaBackupServer.start({ listen: LOOPBACK, key });
  try {
    const a = await primary(target(server, key), false);
    for (let i = 1; i <= 4; i++) {
      const { commit } = await a.s.transaction(() => a.u8().fill(i, 8192 + i * 5000, 8192 + i * 5000 + 100));
      assert.equal(commit.cycle, i);
      assert.equal(server.committed.cycle, i, 'acknowledged means the backup holds it');
      assert.ok(commit.storedBytes > 0 && commit.storedBytes < 2000, `a small compressed delta (${commit.storedBytes} bytes)`);
    }
    const expected = a.u8().slice(8192, 8192 + 40000);
    await a.s.close();
    const b = await primary(target(server, key));
    assert.equal(b.s.committedCycle, 4);
    assert.equal(b.s.recoverNow(), 4);
    assert.ok(Buffer.from(b.u8().subarray(8192, 8192 + 40000)).equals(Buffer.from(expected)));
    const { commit } = await b.s.transaction(() => b.u8().fill(9, 8192, 8200));
    assert.equal(commit.cycle, 5, 'cycle numbers continue');
    assert.equal(commit.full, false);
    await b.s.close();
  } finally {
    await server.close();
  }
});

test('a wrong key is refused at the first frame; the commit fails with ERR_CDA_IO within its timeout', async () => {
  const server = await CdaBackupServer.start({ listen: LOOPBACK, key: randomBytes(32) });
  try {
    const memory = new WebAssembly.Memory({ initial: 1 });
    const s = new CriticalAreaService({ mode: 'hash', inline: true, target: target(server, randomBytes(32), 300) });
    s.bindMemory(memory);
    const t0 = performance.now();
    await assert.rejects(s.ready, (e: unknown) => isUnderstudyError(e, 'ERR_CDA_IO') && /authenticate/.test((e as Error).message));
    const ms = performance.now() - t0;
    assert.ok(ms >= 250 && ms < 2000, `failed after ${ms.toFixed(0)} ms`);
    assert.ok(server.stats.refused >= 1);
    assert.equal(server.lastRefusal?.code, 'ERR_REPL_AUTH');
    assert.equal(server.committed.cycle, 0);
    await s.close();
  } finally {
    await server.close();
  }
});

test('an unreachable backup: ERR_CDA_IO after the bounded timeout, the areas back as at begin', async () => {
  const key = randomBytes(32);
  const server = await CdaBackupServer.start({ listen: LOOPBACK, key });
  const a = await primary(target(server, key, 400));
  await a.s.transaction(() => a.u8().fill(1, 8192, 9000));
  const before = a.u8().slice();
  await server.close(); // the backup goes away
  a.s.begin();
  a.u8().fill(2, 8192, 20000);
  const t0 = performance.now();
  await assert.rejects(a.s.commit(), (e: unknown) => isUnderstudyError(e, 'ERR_CDA_IO'));
  const ms = performance.now() - t0;
  assert.ok(ms < 1500, `bounded: ${ms.toFixed(0)} ms`);
  assert.ok(Buffer.from(a.u8()).equals(Buffer.from(before)), 'not committed: the areas are as at begin');
  assert.equal(a.s.committedCycle, 1);
  await a.s.close();
  // Nothing listening at all when the primary starts: the first fetch fails the same way.
  const s = new CriticalAreaService({ mode: 'hash', inline: true, target: { kind: 'backup', host: '127.0.0.1', port: server.port, key, timeoutMs: 200 } });
  await assert.rejects(s.ready, (e: unknown) => isUnderstudyError(e, 'ERR_CDA_IO'));
  await s.close();
});

test('a replayed frame is refused and applies nothing twice', async () => {
  const key = randomBytes(32);
  const server = await CdaBackupServer.start({ listen: LOOPBACK, key });
  try {
    const frames: Uint8Array[] = [];
    const answers: CdaMessage[] = [];
    const socket = net.connect({ host: '127.0.0.1', port: server.port });
    let closed = false;
    const channel = new CdaChannel(socket, key, 'primary', {
      onMessage: (m) => answers.push(m),
      onClose: () => {
        closed = true;
      },
      onFrameSent: (f) => frames.push(f),
    });
    const raw = encodeRecord({ kind: 'full', cycle: 1, layout: [{ id: 1, address: 0, length: 10 }], image: new Uint8Array(4096) });
    channel.send({ t: 'commit', id: 1, cycle: 1, parent: 0, stored: compress(raw), raw: raw.length });
    for (let i = 0; i < 100 && answers.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(answers[0]?.t, 'ack');
    assert.equal(server.stats.commits, 1);
    const commitFrame = frames[frames.length - 1]!;
    channel.sendRaw(commitFrame);
    for (let i = 0; i < 100 && !closed; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(closed, 'the backup closes a connection that replays');
    assert.equal(server.lastRefusal?.code, 'ERR_REPL_REPLAY');
    assert.equal(server.stats.commits, 1, 'applied once');
    // The same frame on a new connection (another session key) does not even authenticate.
    const socket2 = net.connect({ host: '127.0.0.1', port: server.port });
    let closed2 = false;
    const c2 = new CdaChannel(socket2, key, 'primary', { onMessage: () => undefined, onClose: () => (closed2 = true) });
    await new Promise<void>((resolve) => socket2.once('connect', () => resolve()));
    for (let i = 0; i < 100 && !c2.handshaken; i++) await new Promise((r) => setTimeout(r, 10));
    c2.sendRaw(commitFrame);
    for (let i = 0; i < 100 && !closed2; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(closed2);
    assert.equal(server.lastRefusal?.code, 'ERR_REPL_AUTH');
    assert.equal(server.stats.commits, 1);
  } finally {
    await server.close();
  }
});

test('a backup that lost its state is resent the whole image; one with a directory survives its restart', async () => {
  const key = randomBytes(32);
  const dir = tempDir('cda-backup-dir');
  let server = await CdaBackupServer.start({ listen: LOOPBACK, key });
  const port = server.port;
  const a = await primary({ kind: 'backup', host: '127.0.0.1', port, key, timeoutMs: 3000 });
  let expected: Uint8Array;
  try {
    await a.s.transaction(() => a.u8().fill(3, 9000, 9100));
    await server.close();
    // A new backup on the same port, with nothing: the next delta does not follow its cycle 0.
    server = await CdaBackupServer.start({ listen: { host: '127.0.0.1', port }, key, dir });
    const { commit } = await a.s.transaction(() => a.u8().fill(4, 9100, 9200));
    assert.equal(commit.cycle, 2);
    assert.equal(commit.full, true, 'resent whole');
    assert.equal(server.committed.cycle, 2);
    await a.s.transaction(() => a.u8().fill(5, 9200, 9300));
    expected = a.u8().slice(8192, 8192 + 40000);
  } finally {
    await a.s.close();
    await server.close();
  }
  server = await CdaBackupServer.start({ listen: { host: '127.0.0.1', port: 0 }, key, dir });
  try {
    assert.equal(server.committed.cycle, 3, 'read back from its directory');
    const b = await primary(target(server, key));
    assert.equal(b.s.recoverNow(), 3);
    assert.ok(Buffer.from(b.u8().subarray(8192, 8192 + 40000)).equals(Buffer.from(expected)));
    await b.s.close();
  } finally {
    await server.close();
  }
});
