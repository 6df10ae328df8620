// The fault harness, long: N seeded trials (default 100) of a replicated
// kvstore pair under client load, each with one fault on the primary (SIGKILL,
// SIGSTOP past the timeout, or a link cut by a proxy), and the four counts;
// for kills, the time from SIGKILL to the first answer from the new primary.
// Usage: node dist/bench/failover.js [trials] [firstSeed] [--kinds kill,stop,cut]
//          [--heartbeat-ms 20] [--primary-timeout-ms 150] [--epoch-ms 20]
import { parseArgs } from 'node:util';
import { guestPath } from '../src/testing/fixtures.js';
import { runTrial, sumCounts, type FaultKind, type TrialResult } from '../src/testing/pair-harness.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { kinds: { type: 'string' }, 'heartbeat-ms': { type: 'string' }, 'primary-timeout-ms': { type: 'string' }, 'epoch-ms': { type: 'string' } },
});
const trials = Number(positionals[0] ?? 100);
const first = Number(positionals[1] ?? 1);
const kinds = values.kinds !== undefined ? (values.kinds.split(',') as FaultKind[]) : undefined;
const num = (v: string | undefined) => (v !== undefined ? Number(v) : undefined);
const heartbeatMs = num(values['heartbeat-ms']);
const primaryTimeoutMs = num(values['primary-timeout-ms']);
const epochMs = num(values['epoch-ms']);
const results: TrialResult[] = [];
for (let seed = first; seed < first + trials; seed++) {
  const r = await runTrial({ seed, guest: guestPath('kvstore'), clients: 4, requestsPerClient: 30, kinds, heartbeatMs, primaryTimeoutMs, epochMs });
  results.push(r);
  const bad = Object.values(r.counts).some((v) => v > 0);
  process.stdout.write(`seed ${seed} ${r.kind} ${JSON.stringify(r.counts)}${r.failoverMs !== null ? ` failover ${r.failoverMs.toFixed(0)} ms (${r.failoverProtection})` : ''}${r.faultNode !== 1 ? ' (a stall had already swapped the roles: the fault hit node 2)' : ''}${bad ? ` FAIL ${r.dir}\n  ${r.notes.join('\n  ')}` : ''}\n`);
}
const byKind = new Map<string, number>();
for (const r of results) byKind.set(r.kind, (byKind.get(r.kind) ?? 0) + 1);
const fo = results.flatMap((r) => (r.failoverMs !== null ? [r.failoverMs] : [])).sort((a, b) => a - b);
const pct = (p: number) => (fo.length ? fo[Math.min(fo.length - 1, Math.ceil((p / 100) * fo.length) - 1)]!.toFixed(0) : '-');
console.log(
  JSON.stringify({
    trials: results.length,
    kinds: Object.fromEntries(byKind),
    heartbeatMs: heartbeatMs ?? 20,
    primaryTimeoutMs: primaryTimeoutMs ?? 150,
    requests: results.reduce((s, r) => s + r.requests, 0),
    counts: sumCounts(results),
    killToFirstNewAnswerMs: { p50: pct(50), p99: pct(99), max: fo.length ? fo[fo.length - 1]!.toFixed(0) : '-', n: fo.length },
  }),
);
process.exit(0);
