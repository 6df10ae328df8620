// End-to-end: the `understudy` command as a user runs it, each restore in a
// fresh process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CLI_PATH, PACKAGE_ROOT, guestPath, tempDir } from '../../src/testing/fixtures.js';

function cli(args: string[], opts: { input?: string | Buffer; cwd?: string } = {}) {
  const r = spawnSync(process.execPath, [CLI_PATH, ...args], { input: Buffer.from(opts.input ?? ''), cwd: opts.cwd, timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

const HEAPWALK_ARGS = ['--', '8', '80', '/out/result.txt'];

test('run with checkpoints, then restore several in fresh processes: output and files identical to an uninterrupted run', async () => {
  const dir = tempDir('e2e-run');
  const hw = guestPath('heapwalk');
  const plain = cli(['run', hw, '--dir', ':/out', '--export', `/out:${dir}/plain-out`, ...HEAPWALK_ARGS]);
  assert.equal(plain.status, 0, plain.stderr);
  assert.match(plain.stdout.toString(), /^done checksum=[0-9a-f]+$/m);
  const ck = path.join(dir, 'ck');
  const checkpointed = cli(['run', hw, '--dir', ':/out', '--export', `/out:${dir}/ck-out`, '--checkpoint-dir', ck, '--checkpoint-every', '40', '--keep', '1000', ...HEAPWALK_ARGS]);
  assert.equal(checkpointed.status, 0, checkpointed.stderr);
  assert.ok(checkpointed.stdout.equals(plain.stdout), 'checkpointing does not change the output');
  const files = fs.readdirSync(ck).filter((f) => f.endsWith('.usck')).sort();
  assert.ok(files.length >= 3, `expected several checkpoints, got ${files.length}`);
  const expectedFile = fs.readFileSync(path.join(dir, 'plain-out', 'result.txt'));
  assert.ok(fs.readFileSync(path.join(dir, 'ck-out', 'result.txt')).equals(expectedFile));
  const picks = [files[0]!, files[Math.floor(files.length / 2)]!, files[files.length - 1]!];
  for (const f of picks) {
    const info = JSON.parse(cli(['inspect', path.join(ck, f), '--json']).stdout.toString());
    assert.equal(info.ok, true);
    const before = info.meta.output.stdoutBytes as number;
    const out = path.join(dir, `restored-${f}`);
    const r = cli(['restore', path.join(ck, f), '--quiet', '--export', `/out:${out}`]);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(Buffer.concat([plain.stdout.subarray(0, before), r.stdout]).equals(plain.stdout), `restore of ${f} continues exactly`);
    assert.ok(fs.readFileSync(path.join(out, 'result.txt')).equals(expectedFile), `restore of ${f} writes the same file`);
  }
});

test('reactor over the CLI: requests as lines, checkpoints between them, restore continues the stream', () => {
  const dir = tempDir('e2e-kv');
  const kv = guestPath('kvstore');
  const requests = ['FILL 2000 32', 'SET a 1', 'SET b 2', 'GET a', 'DEL fill:3', 'COUNT', 'SUM', 'SET c 3', 'GET c', 'SUM', 'STATS'];
  const input = requests.join('\n') + '\n';
  const plain = cli(['run', kv], { input });
  assert.equal(plain.status, 0, plain.stderr);
  const answers = plain.stdout.toString().trimEnd().split('\n');
  assert.equal(answers.length, requests.length);
  const ck = path.join(dir, 'ck');
  const run = cli(['run', kv, '--checkpoint-dir', ck, '--checkpoint-every', '0.001', '--keep', '1000'], { input });
  assert.equal(run.status, 0, run.stderr);
  const files = fs.readdirSync(ck).sort();
  assert.ok(files.length >= 3);
  for (const f of [files[0]!, files[Math.floor(files.length / 2)]!]) {
    const info = JSON.parse(cli(['inspect', path.join(ck, f), '--json']).stdout.toString());
    const served = plain.stdout.subarray(0, info.meta.output.stdoutBytes).toString().split('\n').length - 1;
    const rest = requests.slice(served).join('\n') + '\n';
    const r = cli(['restore', path.join(ck, f), '--quiet'], { input: rest });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.toString().trimEnd().split('\n'), answers.slice(served), `restore of ${f} after ${served} requests`);
  }
});

test('checkpoint of a running guest through the control socket and through SIGUSR2', async () => {
  const dir = tempDir('e2e-ctl');
  const sock = path.join(dir, 'control.sock');
  const ck = path.join(dir, 'ck');
  const child = spawn(process.execPath, [CLI_PATH, 'run', guestPath('heapwalk'), '--dir', ':/out', '--control', sock, '--checkpoint-dir', ck, '--keep', '10', '--', '8', '20000', '/out/r.txt'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c) => (stderr += c));
  try {
    for (let i = 0; i < 200 && !fs.existsSync(sock); i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(fs.existsSync(sock), `control socket appeared (${stderr})`);
    const reply = cli(['checkpoint', '--control', sock]);
    assert.equal(reply.status, 0, reply.stderr);
    assert.match(reply.stdout.toString(), /^checkpoint 1: .*ckpt-000001\.usck/);
    assert.equal(cli(['inspect', path.join(ck, 'ckpt-000001.usck')]).status, 0);
    const sig = cli(['checkpoint', '--pid', String(child.pid)]);
    assert.equal(sig.status, 0);
    for (let i = 0; i < 200 && !fs.existsSync(path.join(ck, 'ckpt-000002.usck')); i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(fs.existsSync(path.join(ck, 'ckpt-000002.usck')), 'SIGUSR2 produced a checkpoint');
    // The guest writes its result file only at the end: exporting now gives the directory as it is.
    const exported = cli(['export', `/out:${dir}/exported`, '--control', sock]);
    assert.equal(exported.status, 0, exported.stderr);
    assert.ok(fs.statSync(path.join(dir, 'exported')).isDirectory());
    const status = cli(['export', '/nope:/tmp/x', '--control', sock]);
    assert.equal(status.status, 2);
    assert.match(status.stderr, /ERR_CONTROL: ERR_WASI_PATH/);
  } finally {
    child.kill('SIGKILL');
  }
});

test('bad checkpoints are refused with one clear line, a stable code and a non-zero exit', () => {
  const dir = tempDir('e2e-bad');
  const ck = path.join(dir, 'ck');
  assert.equal(cli(['run', guestPath('kvstore'), '--checkpoint-dir', ck, '--checkpoint-every', '0.001'], { input: 'SET a 1\nGET a\n' }).status, 0);
  const good = path.join(ck, fs.readdirSync(ck).sort()[0]!);
  const bytes = fs.readFileSync(good);
  const cases: [string, Buffer, RegExp][] = [
    ['truncated', bytes.subarray(0, bytes.length - 100), /ERR_CKPT_TRUNCATED/],
    ['flipped', Buffer.from(bytes).fill(0x55, bytes.length - 5000, bytes.length - 4999), /ERR_CKPT_(CHECKSUM|MALFORMED)/],
    ['foreign', Buffer.from('#!/bin/sh\necho not a checkpoint\n'.repeat(10)), /ERR_CKPT_MAGIC/],
  ];
  for (const [name, content, code] of cases) {
    const f = path.join(dir, `${name}.usck`);
    fs.writeFileSync(f, content);
    const r = cli(['restore', f]);
    assert.equal(r.status, 2, `${name}: exit status`);
    assert.match(r.stderr, code, name);
    assert.equal(r.stderr.trim().split('\n').length, 1, `${name}: one line`);
    assert.equal(r.stdout.length, 0, `${name}: nothing ran`);
  }
  const wrong = cli(['restore', good, '--module', guestPath('logcounter')]);
  assert.equal(wrong.status, 2);
  assert.match(wrong.stderr, /ERR_CKPT_MODULE_MISMATCH/);
  const missing = cli(['restore', path.join(dir, 'nope.usck')]);
  assert.match(missing.stderr, /ERR_CKPT_IO/);
});

test('incremental checkpoints over the CLI: a chain restores at any epoch in a fresh process; compact keeps the last N', () => {
  const dir = tempDir('e2e-chain');
  const hw = guestPath('heapwalk');
  const args = ['--', '4', '60'];
  const plain = cli(['run', hw, ...args]);
  assert.equal(plain.status, 0, plain.stderr);
  const chain = path.join(dir, 'chain');
  const run = cli(['run', hw, '--epoch-ms', '10', '--checkpoint-dir', chain, ...args]);
  assert.equal(run.status, 0, run.stderr);
  assert.ok(run.stdout.equals(plain.stdout), 'epochs do not change the output');
  const info = JSON.parse(cli(['inspect', chain, '--json']).stdout.toString());
  assert.equal(info.ok, true);
  assert.ok(info.lastSequence - info.baseSequence >= 5, `several epochs (${info.baseSequence}..${info.lastSequence})`);
  const outputAt = (seq: number): number => {
    const r = cli(['restore', chain, '--sequence', String(seq), '--quiet']);
    assert.equal(r.status, 0, r.stderr);
    const before = plain.stdout.length - r.stdout.length;
    assert.ok(before >= 0 && plain.stdout.subarray(before).equals(r.stdout), `restore at ${seq} continues exactly`);
    return before;
  };
  const mid = Math.floor((info.baseSequence + info.lastSequence) / 2);
  const a = outputAt(info.baseSequence + 1);
  const b = outputAt(mid);
  const c = outputAt(info.lastSequence);
  assert.ok(a <= b && b <= c, 'later epochs have more output behind them');
  const compacted = cli(['compact', chain, '--keep', '3']);
  assert.equal(compacted.status, 0, compacted.stderr);
  assert.match(compacted.stdout.toString(), /the chain holds (\d+)\.\.(\d+)/);
  const after = JSON.parse(cli(['inspect', chain, '--json']).stdout.toString());
  assert.equal(after.lastSequence - after.baseSequence, 2);
  assert.equal(outputAt(info.lastSequence), c);
  const gone = cli(['restore', chain, '--sequence', String(info.baseSequence + 1)]);
  assert.equal(gone.status, 2);
  assert.match(gone.stderr, /ERR_CKPT_MALFORMED: sequence \d+ is not in the chain/);
});

test('the demo (the main job) runs, restores an epoch in a fresh process, and finds the output identical', () => {
  const r = cli(['demo', '--mib', '4', '--rounds', '40', '--epoch-ms', '5']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /incremental checkpoints every 5 ms/);
  assert.match(r.stderr, /restoring epoch \d+ of the chain in a fresh process/);
  assert.match(r.stderr, /OK: output before the checkpoint \(\d+ B\) \+ the restored process's output \(\d+ B\) is byte-identical/);
});

test("package.json's bin is the CLI and runs by itself, as `npx understudy` runs it", () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
  assert.equal(path.join(PACKAGE_ROOT, pkg.bin.understudy!), CLI_PATH);
  // Executed directly (its shebang, its mode): a fresh clone's setup must leave it executable.
  const r = spawnSync(CLI_PATH, ['doctor'], { timeout: 60_000 });
  assert.equal(r.error, undefined, `the bin could not be executed: ${r.error?.message}`);
  assert.equal(r.status, 0, r.stderr.toString());
  assert.match(r.stdout.toString(), /^selected: /m);
});
