// End-to-end: `understudy run --protect rollback` (an injected error is
// detected, rolled back, and the output equals the fault-free run's; full
// checkpoints collected while the guest runs restore in a fresh process) and
// `understudy inject` (a short campaign, its table, consistent counts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CLI_PATH, guestPath, tempDir } from '../../src/testing/fixtures.js';
import { probeTrackers } from '../../src/track/tracker.js';
import { openCheckpoint } from '../../src/checkpoint/snapshot.js';

const probe = probeTrackers().find((p) => p.kind === 'wp-sync');
const skip = probe?.supported ? false : (probe?.reason ?? 'wp-sync not probed');

function cli(args: string[], input = '') {
  const r = spawnSync(process.execPath, [CLI_PATH, ...args], { input: Buffer.from(input), timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

const HEAPWALK = ['--dir', ':/out', '--', '4', '30', '/out/result.txt'];
const REQUESTS = Array.from({ length: 100 }, (_, i) => (i % 10 === 9 ? 'SUM' : `ADD ${i % 7} ${i * 3 + 1}`)).join('\n') + '\n';

test('run --protect rollback: an injected crash or hang is detected and rolled back, and the output equals the fault-free run', { skip }, () => {
  const hw = guestPath('heapwalk');
  const plain = cli(['run', hw, ...HEAPWALK]);
  assert.equal(plain.status, 0, plain.stderr);
  assert.match(plain.stdout.toString(), /^done checksum=[0-9a-f]+$/m);
  // (A command's hang is covered by src/rollback/rollback.test.ts; the reactor's hang below.)
  const crashed = cli(['run', hw, '--protect', 'rollback', '--epoch-ms', '10', '--inject', 'crash@20', ...HEAPWALK]);
  assert.equal(crashed.status, 0, crashed.stderr);
  assert.match(crashed.stderr, /rollback: ERR_GUEST_TRAP detected; rolled back to checkpoint \d+/);
  assert.match(crashed.stderr, /1 errors detected, 1 recoveries \(0 restarts\)/);
  assert.ok(crashed.stdout.equals(plain.stdout), 'output equals the fault-free run');
  // Every region written pre-saved whole (dense regions at 1 page): the same recovery, the same output.
  const dense = cli(['run', hw, '--protect', 'rollback', '--epoch-ms', '10', '--dense-regions', '1', '--inject', 'crash@20', ...HEAPWALK]);
  assert.equal(dense.status, 0, dense.stderr);
  assert.match(dense.stderr, /rollback protection: cowp, dense regions at 1 pages/);
  assert.match(dense.stderr, /1 errors detected, 1 recoveries \(0 restarts\)/);
  assert.ok(dense.stdout.equals(plain.stdout), 'output with dense regions equals the fault-free run');
  const badDense = cli(['run', hw, '--protect', 'rollback', '--dense-regions', '600', ...HEAPWALK]);
  assert.equal(badDense.status, 2);
  assert.match(badDense.stderr, /ERR_USAGE.*--dense-regions takes a number of pages from 0 to 512/);
  // A reactor: requests as lines; a handler that loops at request 60 is stopped and rolled back.
  const checked = guestPath('checked');
  const ref = cli(['run', checked], REQUESTS);
  assert.equal(ref.status, 0, ref.stderr);
  const r = cli(['run', checked, '--protect', 'rollback', '--epoch-ms', '1', '--watchdog-ms', '300', '--inject', 'hang@60'], REQUESTS);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /ERR_GUEST_HANG detected; rolled back/);
  assert.ok(r.stdout.equals(ref.stdout), 'reactor output equals the fault-free run');
});

test('run --protect rollback --collect-every: full checkpoints written while the guest runs restore in a fresh process and continue exactly', { skip }, () => {
  const dir = tempDir('e2e-collect');
  const hw = guestPath('heapwalk');
  const plain = cli(['run', hw, ...HEAPWALK]);
  assert.equal(plain.status, 0, plain.stderr);
  const ck = path.join(dir, 'ck');
  const run = cli(['run', hw, '--protect', 'rollback', '--epoch-ms', '10', '--collect-every', '30', '--checkpoint-dir', ck, '--keep', '2', ...HEAPWALK]);
  assert.equal(run.status, 0, run.stderr);
  assert.ok(run.stdout.equals(plain.stdout));
  assert.match(run.stderr, /collect: checkpoint \d+ of the instant/);
  const files = fs.readdirSync(ck).filter((f) => f.endsWith('.usck')).sort();
  assert.ok(files.length >= 1 && files.length <= 2, `kept ${files.length} collected checkpoints`);
  const newest = path.join(ck, files[files.length - 1]!);
  const opened = openCheckpoint(newest);
  const before = opened.meta.output.stdoutBytes;
  opened.close();
  const r = cli(['restore', newest, '--quiet']);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(Buffer.concat([plain.stdout.subarray(0, before), r.stdout]).equals(plain.stdout), `restore of ${newest} continues exactly`);
  const refused = cli(['run', hw, '--protect', 'rollback', '--checkpoint-dir', ck, ...HEAPWALK]);
  assert.equal(refused.status, 2);
  assert.match(refused.stderr, /ERR_USAGE.*--collect-every/);
});

test('understudy inject: a short campaign prints the table and its counts are consistent', { skip }, () => {
  const dir = tempDir('e2e-inject');
  const input = path.join(dir, 'req.txt');
  fs.writeFileSync(input, REQUESTS);
  const trials = 2;
  const r = cli(['inject', guestPath('checked'), '--trials', String(trials), '--seed', '5', '--epoch-ms', '1', '--watchdog-ms', '200', '--input', input]);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.toString().trimEnd().split('\n');
  assert.match(lines[0]!, /^\| error \| trials \| injected \| activated \| detected \| recovered \|/);
  const rows = new Map(lines.slice(2).map((l) => {
    const cells = l.split('|').slice(1, -1).map((c) => c.trim());
    return [cells[0]!, cells] as const;
  }));
  assert.deepEqual([...rows.keys()], ['crash', 'bitflip-global', 'bitflip-memory', 'hang']);
  for (const [kind, cells] of rows) {
    const [n, injected, activated, detected, recovered, silent] = cells.slice(1, 7).map(Number);
    assert.equal(n, trials, kind);
    assert.ok(injected! <= n! && activated! <= injected! && detected! <= activated! && recovered! <= detected!, `${kind}: ${cells.join(' | ')}`);
    assert.equal(silent, activated! - detected!, `${kind}: silent = activated - detected`);
    assert.match(cells[8]!, /.+/, `${kind}: the seed's row beside ours`);
  }
  // Crashes and hangs are fail-stop: every one is detected and recovered.
  for (const kind of ['crash', 'hang']) {
    const cells = rows.get(kind)!;
    assert.deepEqual(cells.slice(1, 6).map(Number), [trials, trials, trials, trials, trials], `${kind}: ${cells.join(' | ')}`);
  }
});
