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
import { Pair, ask, kvRequest, post, runClient, runTrial, sleep, sumCounts, waitProtected, type ClientRecord, type TrialResult } from '../../src/testing/pair-harness.js';

test('primary + backup over TCP: answers only after the backup acknowledged; SIGKILL, retry at the backup, exactly once', async () => {
  const pair = new Pair({ guest: guestPath('kvstore'), epochMs: 20, heartbeatMs: 20, primaryTimeoutMs: 150, backupTimeoutMs: 100 });
  try {
    const b = await pair.backup(2).ready;
    const p = pair.primary(1, b.link!);
    const pr = await p.ready;
    await waitProtected([pr.serve!], 10_000);
    // The backup refuses clients while it is a backup.
    assert.equal((await post(b.serve!, 9, 1, 'COUNT', 5000)).status, 503, 'held for the takeover wait, then refused');
    const first = await ask(pr.serve!, 1, 1, 'FILL 1 8');
    assert.equal(first.status, 200);
    assert.match(first.epoch ?? '', /^2\.\d+$/, 'answers name the epoch that released them (term 2: the first primary)');
    // A repeat of an applied id: the recorded answer, no second effect.
    assert.equal((await ask(pr.serve!, 1, 1, 'FILL 1 8')).body, 'OK');
    assert.equal((await ask(pr.serve!, 1, 2, 'COUNT')).body, '1');

    const records: ClientRecord[] = [];
    let ports = [pr.serve!, b.serve!];
    const load = [2, 3, 4].map((c) => runClient(c, 24, () => ports, kvRequest, records));
    while (records.filter((r) => r.answer !== null).length < 20) await sleep(2);
    p.signal('SIGKILL');
    const j = await pair.join(1, b.link!).ready; // a replacement with the dead node's id and state
    ports = [b.serve!, j.serve!];
    await Promise.all(load);
    assert.equal(records.filter((r) => r.answer === null).length, 0, 'every request answered');
    const survivor = await waitProtected(ports, 10_000);
    const count = await ask(survivor, 1, 3, 'COUNT');
    assert.equal(Number(count.body), 1 + 3 * 12, 'every FILL applied exactly once, across the failover');
    assert.equal((await ask(survivor, 1, 1, 'FILL 1 8')).body, 'OK', 'an id applied before the failover is still recorded');
    assert.equal(Number((await ask(survivor, 1, 4, 'COUNT')).body), 37);
    const { checkTrial } = await import('../../src/testing/pair-harness.js');
    const { counts, notes } = checkTrial(records, [pair.eventsFile(1), pair.eventsFile(2)], 36, new Map());
    assert.deepEqual(counts, { ackedLost: 0, effectsTwice: 0, unanswered: 0, releasedUnacked: 0 }, notes.join('\n'));
    assert.ok(records.some((r) => r.answer !== null && Number(r.answer.epoch!.split('.')[0]) >= 3), 'the new primary (term 3) answered some');
  } finally {
    await pair.stopAll();
  }
});

test('fault harness, CI-short: seeded trials (SIGKILL, SIGSTOP past the timeout, link cut by a proxy), all counts zero', async () => {
  const seeds = (process.env.UNDERSTUDY_FAULT_SEEDS ?? '1,3,4').split(',').map(Number);
  // The three pairs run at once (they share nothing but the CPU): the trials mostly wait — for a
  // timeout, a stopped process, a cut link — so this takes about as long as the longest one.
  const results: TrialResult[] = await Promise.all(seeds.map((seed) => runTrial({ seed, guest: guestPath('kvstore'), clients: 3, requestsPerClient: 24 })));
  for (const r of results) assert.deepEqual(r.counts, { ackedLost: 0, effectsTwice: 0, unanswered: 0, releasedUnacked: 0 }, `seed ${r.seed} (${r.kind}, ${r.dir}):\n${r.notes.join('\n')}`);
  const kinds = new Set(results.map((r) => r.kind));
  assert.deepEqual([...kinds].sort(), ['cut', 'kill', 'stop'], 'the seeds cover every fault kind');
  assert.deepEqual(sumCounts(results), { ackedLost: 0, effectsTwice: 0, unanswered: 0, releasedUnacked: 0 });
});

test('run --replicas 2: answers once the backup acknowledged; when either process dies the survivor answers alone at once, starts a replacement, and protection resumes', async () => {
  const { spawn } = await import('node:child_process');
  const { CLI_PATH, tempDir } = await import('../../src/testing/fixtures.js');
  const { SpawnedNode } = await import('../../src/testing/pair-harness.js');
  const { readReady, processAlive } = await import('../../src/replicate/process/pair-dir.js');
  const dir = tempDir('replicas2');
  const args = [CLI_PATH, 'run', '--replicas', '2', guestPath('kvstore'), '--serve', 'http://127.0.0.1:0', '--state-dir', dir, '--quiet', '--heartbeat-ms', '20', '--primary-timeout-ms', '150', '--backup-timeout-ms', '100'];
  const run = new SpawnedNode(spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] }), 'run');
  const member = (n: number) => {
    const r = readReady(dir, n);
    assert.ok(r !== null && r.serve !== null, `node ${n} has a ready file`);
    return r;
  };
  try {
    const r = await run.ready;
    await waitProtected([r.serve!], 10_000);
    const a = await ask(r.serve!, 1, 1, 'SET x 1');
    assert.equal(a.status, 200);
    assert.equal(a.protection, 'acknowledged');
    assert.equal((await ask(r.serve!, 1, 2, 'GET x')).body, '1');

    // Kill the primary (the run process): the backup takes over and answers at once, alone.
    const n2 = member(2);
    run.signal('SIGKILL');
    const g = await ask(n2.serve!, 1, 3, 'GET x'); // held by the backup until it takes over
    assert.equal(g.status, 200);
    assert.equal(g.body, '1');
    assert.equal(g.protection, 'unprotected');
    // It replaces node 1 (a new process that joins it); protection resumes.
    await waitProtected([n2.serve!], 15_000);
    const n1 = member(1);
    assert.notEqual(n1.pid, r.pid);
    const s2 = await ask(n2.serve!, 1, 4, 'SET y 2');
    assert.equal(s2.protection, 'acknowledged', 'protected again: answers wait for the new backup');

    // And the other way round: the replacement takes over from node 2 and replaces it in turn.
    process.kill(n2.pid, 'SIGKILL');
    const y = await ask(n1.serve!, 1, 5, 'GET y');
    assert.equal(y.body, '2');
    assert.equal(y.protection, 'unprotected');
    await waitProtected([n1.serve!], 15_000);
    assert.notEqual(member(2).pid, n2.pid);
    assert.equal((await ask(n1.serve!, 1, 6, 'GET x')).body, '1', 'state survived both failovers');
  } finally {
    // Stopping one member stops the pair; make sure nothing outlives the test.
    const live = () => [1, 2].flatMap((n) => {
      const m = readReady(dir, n);
      return m !== null && processAlive(m) ? [m.pid] : [];
    });
    for (const pid of live()) process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 100 && live().length > 0; i++) await sleep(50);
    for (const pid of live()) process.kill(pid, 'SIGKILL');
    await run.stop();
  }
});
