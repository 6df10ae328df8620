// End-to-end: a replicated pair as real processes on loopback. A primary and a
// backup through the CLI, HTTP clients with request ids, SIGKILL of the
// primary under load, clients retrying against the backup, a replacement
// joining as the new backup; then exactly-once, no acknowledged answer lost,
// nothing unanswered, and nothing released from an epoch no backup applied.
// The fault harness (seeded trials with SIGKILL, SIGSTOP and a cut link) runs
// a short version here; bench/failover.ts runs the long one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { guestPath } from '../../src/testing/fixtures.js';
import { Pair, kvRequest, post, runClient, runTrial, sleep, sumCounts, waitProtected, type ClientRecord, type TrialResult } from '../../src/testing/pair-harness.js';

test('primary + backup over TCP: answers only after the backup acknowledged; SIGKILL, retry at the backup, exactly once', async () => {
  const pair = new Pair({ guest: guestPath('kvstore'), epochMs: 20, heartbeatMs: 20, primaryTimeoutMs: 150, backupTimeoutMs: 100 });
  try {
    const b = await pair.backup(2).ready;
    const p = pair.primary(1, b.link!);
    const pr = await p.ready;
    await waitProtected([pr.serve!], 10_000);
    // The backup refuses clients while it is a backup.
    assert.equal((await post(b.serve!, 9, 1, 'COUNT')).status, 503);
    const first = await post(pr.serve!, 1, 1, 'FILL 1 8');
    assert.equal(first.status, 200);
    assert.match(first.epoch ?? '', /^2\.\d+$/, 'answers name the epoch that released them (term 2: the first primary)');
    // A repeat of an applied id: the recorded answer, no second effect.
    assert.equal((await post(pr.serve!, 1, 1, 'FILL 1 8')).body, 'OK');
    assert.equal((await post(pr.serve!, 1, 2, 'COUNT')).body, '1');

    const records: ClientRecord[] = [];
    let ports = [pr.serve!, b.serve!];
    const load = [2, 3, 4].map((c) => runClient(c, 40, () => ports, kvRequest, records));
    while (records.filter((r) => r.answer !== null).length < 30) await sleep(2);
    p.signal('SIGKILL');
    const j = await pair.join(1, b.link!).ready; // a replacement with the dead node's id and state
    ports = [b.serve!, j.serve!];
    await Promise.all(load);
    assert.equal(records.filter((r) => r.answer === null).length, 0, 'every request answered');
    const survivor = await waitProtected(ports, 10_000);
    const count = await post(survivor, 1, 3, 'COUNT');
    assert.equal(Number(count.body), 1 + 3 * 20, 'every FILL applied exactly once, across the failover');
    assert.equal((await post(survivor, 1, 1, 'FILL 1 8')).body, 'OK', 'an id applied before the failover is still recorded');
    assert.equal(Number((await post(survivor, 1, 4, 'COUNT')).body), 61);
    const { checkTrial } = await import('../../src/testing/pair-harness.js');
    const { counts, notes } = checkTrial(records, [pair.eventsFile(1), pair.eventsFile(2)], 60, new Map());
    assert.deepEqual(counts, { ackedLost: 0, effectsTwice: 0, unanswered: 0, releasedUnacked: 0 }, notes.join('\n'));
    assert.ok(records.some((r) => r.answer !== null && Number(r.answer.epoch!.split('.')[0]) >= 3), 'the new primary (term 3) answered some');
  } finally {
    await pair.stopAll();
  }
});

test('fault harness, CI-short: seeded trials (SIGKILL, SIGSTOP past the timeout, link cut by a proxy), all counts zero', async () => {
  const seeds = (process.env.UNDERSTUDY_FAULT_SEEDS ?? '1,3,4').split(',').map(Number);
  const results: TrialResult[] = [];
  for (const seed of seeds) {
    const r = await runTrial({ seed, guest: guestPath('kvstore'), clients: 3, requestsPerClient: 24 });
    results.push(r);
    assert.deepEqual(r.counts, { ackedLost: 0, effectsTwice: 0, unanswered: 0, releasedUnacked: 0 }, `seed ${seed} (${r.kind}, ${r.dir}):\n${r.notes.join('\n')}`);
  }
  const kinds = new Set(results.map((r) => r.kind));
  assert.deepEqual([...kinds].sort(), ['cut', 'kill', 'stop'], 'the seeds cover every fault kind');
  assert.deepEqual(sumCounts(results), { ackedLost: 0, effectsTwice: 0, unanswered: 0, releasedUnacked: 0 });
});

test('run --replicas 2: the embedded default starts a backup process and answers only once it acknowledged', async () => {
  const { spawn } = await import('node:child_process');
  const { CLI_PATH, tempDir } = await import('../../src/testing/fixtures.js');
  const { SpawnedNode } = await import('../../src/testing/pair-harness.js');
  const dir = tempDir('replicas2');
  const node = new SpawnedNode(spawn(process.execPath, [CLI_PATH, 'run', '--replicas', '2', guestPath('kvstore'), '--serve', 'http://127.0.0.1:0', '--state-dir', dir, '--quiet'], { stdio: ['ignore', 'pipe', 'inherit'] }), 'run');
  try {
    const r = await node.ready;
    await waitProtected([r.serve!], 10_000);
    const a = await post(r.serve!, 1, 1, 'SET x 1');
    assert.equal(a.status, 200);
    assert.equal((await post(r.serve!, 1, 2, 'GET x')).body, '1');
  } finally {
    node.signal('SIGTERM');
    await new Promise((res) => setTimeout(res, 300));
    await node.stop();
  }
});
