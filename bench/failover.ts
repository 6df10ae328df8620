// The fault harness, long: N seeded trials (default 100) of a replicated
// kvstore pair under client load, each with one fault on the primary (SIGKILL,
// SIGSTOP past the timeout, or a link cut by a proxy), and the four counts.
// Usage: node dist/bench/failover.js [trials] [firstSeed]
import { guestPath } from '../src/testing/fixtures.js';
import { runTrial, sumCounts, type TrialResult } from '../src/testing/pair-harness.js';

const trials = Number(process.argv[2] ?? 100);
const first = Number(process.argv[3] ?? 1);
const results: TrialResult[] = [];
for (let seed = first; seed < first + trials; seed++) {
  const r = await runTrial({ seed, guest: guestPath('kvstore'), clients: 4, requestsPerClient: 30 });
  results.push(r);
  const bad = Object.values(r.counts).some((v) => v > 0);
  process.stdout.write(`seed ${seed} ${r.kind} ${JSON.stringify(r.counts)}${r.failoverMs !== null ? ` failover ${r.failoverMs.toFixed(0)} ms` : ''}${bad ? ` FAIL ${r.dir}\n  ${r.notes.join('\n  ')}` : ''}\n`);
}
const byKind = new Map<string, number>();
for (const r of results) byKind.set(r.kind, (byKind.get(r.kind) ?? 0) + 1);
const fo = results.flatMap((r) => (r.failoverMs !== null ? [r.failoverMs] : [])).sort((a, b) => a - b);
const pct = (p: number) => (fo.length ? fo[Math.min(fo.length - 1, Math.floor((p / 100) * fo.length))]!.toFixed(0) : '-');
console.log(JSON.stringify({ trials: results.length, kinds: Object.fromEntries(byKind), requests: results.reduce((s, r) => s + r.requests, 0), counts: sumCounts(results), killToFirstNewAnswerMs: { p50: pct(50), p99: pct(99), n: fo.length } }));
process.exit(0);
