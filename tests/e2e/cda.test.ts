// End-to-end: critical data areas through the `understudy` command. A command
// guest commits its area to disk, crashes, and a restart with the same
// --cda-target recovers it; the same with a CDA backup in its own process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { CLI_PATH, guestPath, tempDir } from '../../src/testing/fixtures.js';
import { fetchCdaAreas, startCdaBackupProcess } from '../../src/index.js';

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [CLI_PATH, ...args], { timeout: 60_000 });
  return { status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

test('run --cda-target disk: a crash after cycle 9, then a restart recovers cycle 9 and continues', () => {
  const dir = tempDir('e2e-cda');
  const guest = guestPath('cdatest');
  const target = `disk:${path.join(dir, 'areas')}`;
  const first = cli(['run', guest, '--cda-mode', 'diff', '--cda-target', target, '--', '10']);
  assert.equal(first.status, 0, first.stderr);
  assert.match(first.stdout, /^done cycle=7 counter=7 sum=28 aborted=3$/m);
  const crash = cli(['run', guest, '--cda-mode', 'wp-sync', '--cda-target', target, '--', '5', '9']);
  assert.notEqual(crash.status, 0, 'the guest trapped');
  assert.match(crash.stderr, /ERR_GUEST_TRAP/);
  const again = cli(['run', guest, '--cda-mode', 'emul', '--cda-target', target, '--', '1']);
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stderr, /last committed cycle 9/);
  assert.match(again.stdout, /^recovered cycle=9 counter=9 sum=45$/m);
  assert.match(again.stdout, /^done cycle=10 counter=10 sum=55 aborted=0$/m);
});

test('run --cda-target backup: the areas live in a cda-backup process; a new primary and fetchCdaAreas get them back', async () => {
  const dir = tempDir('e2e-cda-backup');
  const keyFile = path.join(dir, 'key');
  const key = randomBytes(32);
  fs.writeFileSync(keyFile, key.toString('hex'));
  const backup = await startCdaBackupProcess({ keyFile });
  try {
    const target = ['--cda-target', `backup:127.0.0.1:${backup.port}`, '--key-file', keyFile];
    const first = cli(['run', guestPath('cdatest'), '--cda-mode', 'hash', ...target, '--', '4', '3']);
    assert.notEqual(first.status, 0, 'trapped after cycle 3');
    assert.match(first.stdout, /^recovered cycle=0 counter=0 sum=0$/m);
    const held = await fetchCdaAreas({ host: '127.0.0.1', port: backup.port, key });
    assert.equal(held.cycle, 3);
    assert.equal(new DataView(held.areas[0]!.bytes.buffer).getBigUint64(0, true), 3n, 'the counter as of cycle 3');
    const second = cli(['run', guestPath('cdatest'), '--cda-mode', 'diff', ...target, '--', '2']);
    assert.equal(second.status, 0, second.stderr);
    assert.match(second.stdout, /^recovered cycle=3 counter=3 sum=6$/m);
    assert.match(second.stdout, /^done cycle=5 counter=5 sum=15 aborted=0$/m);
  } finally {
    await backup.stop();
  }
});
