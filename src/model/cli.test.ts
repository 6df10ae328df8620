// Tests of src/cli/model.ts (kept here, beside the models it drives).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { isUnderstudyError } from '../errors.js';
import { registerModelCommands } from '../cli/model.js';
import { createPrng, sampleExponential } from './montecarlo.js';

async function run(...args: string[]): Promise<string> {
  let out = '';
  const program = new Command();
  program.exitOverride();
  registerModelCommands(program, { write: (t) => { out += t; } });
  await program.parseAsync(['model', ...args], { from: 'user' });
  return out;
}

const rejectsParam = (p: Promise<unknown>, pattern: RegExp): Promise<void> =>
  assert.rejects(p, (e: unknown) => isUnderstudyError(e, 'ERR_MODEL_PARAM') && pattern.test((e as Error).message));

test('model corruption with no options reproduces Table 1 beside the seed', async () => {
  const out = await run('corruption');
  assert.match(out, /λ = 0\.0599 per ms/);
  // 95 % row: seed 31.7 / ours 31.7, seed 1.59 / ours 1.59.
  assert.match(out, /95 %\s+50 \(50\.01\)\s+31\.7\s+31\.7\s+1\.59\s+1\.59\s+yes/);
  assert.match(out, /90 %\s+38 \(38\.44\)\s+39\.1\s+39\.4\s+4\.05\s+4\.05\s+no \*/);
  assert.match(out, /\* 90 % single: the seed's 39\.1 is the formula at the unrounded 38\.44 ms/);
});

test('model corruption derives λ from a percentile and recommends dual checkpoint when the interval limit demands it', async () => {
  const out = await run('corruption', '--percentile', '95', '--within-ms', '50', '--target', '2%', '--interval-max-ms', '100');
  assert.match(out, /λ = 0\.0599146/);
  assert.match(out, /dual checkpoint IS needed/);
  const relaxed = await run('corruption', '--lambda-per-ms', '0.0599', '--target', '0.35', '--interval-max-ms', '100');
  assert.match(relaxed, /use single checkpoint at T_ck = \d+(\.\d+)? ms; dual checkpoint is not needed/);
});

test('model corruption --check adds numerical-integration and Monte-Carlo columns that agree', async () => {
  const out = JSON.parse(await run('corruption', '--interval-ms', '20,50', '--lambda-per-ms', '0.0599', '--check', '--mc-samples', '100000', '--json')) as {
    rows: { intervalMs: number; single: number; numericSingle: number; monteCarloSingle: { estimate: number; stderr: number } }[];
  };
  assert.equal(out.rows.length, 2);
  for (const r of out.rows) {
    assert.ok(Math.abs(r.single - r.numericSingle) < 1e-8);
    assert.ok(Math.abs(r.single - r.monteCarloSingle.estimate) < 5 * r.monteCarloSingle.stderr);
  }
});

test('model corruption --latencies fits λ, prints the fit and writes a plot', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'understudy-model-cli-'));
  try {
    const rng = createPrng(21);
    const lat = Array.from({ length: 400 }, () => sampleExponential(rng, 0.0599).toFixed(3));
    const file = join(dir, 'latencies.txt');
    await writeFile(file, `# injected errors, detection latency in ms\n${lat.join('\n')}\n`);
    const svg = join(dir, 'corruption.svg');
    const out = await run('corruption', '--latencies', file, '--plot', svg);
    assert.match(out, /maximum-likelihood fit to 400 latencies/);
    const m = /λ \(1\/ms\), maximum likelihood\s+([\d.]+)/.exec(out);
    assert.ok(m && Math.abs(Number(m[1]) - 0.0599) < 0.012, `λ̂ ${m?.[1]}`);
    assert.match(out, /single empirical/);
    assert.match(out, /exponential model at 5 %\s+not rejected/);
    assert.match(await readFile(svg, 'utf8'), /^<svg /);
  } finally {
    await rm(dir, { recursive: true });
  }
});

test('model corruption refuses invalid or conflicting options', async () => {
  await rejectsParam(run('corruption', '--interval-ms', '-3'), /interval-ms.*-3/);
  await rejectsParam(run('corruption', '--lambda-per-ms', 'fast'), /lambda-per-ms must be a number/);
  await rejectsParam(run('corruption', '--percentile', '95'), /--percentile and --within-ms go together/);
  await rejectsParam(run('corruption', '--percentile', '100', '--within-ms', '50'), /percentage strictly between 0 and 100/);
  await rejectsParam(run('corruption', '--lambda-per-ms', '0.06', '--percentile', '95', '--within-ms', '50'), /one way only/);
  await rejectsParam(run('corruption', '--target', '1.5'), /target/);
});

test('model availability prints the three schemes with the default parameters', async () => {
  const out = await run('availability');
  assert.match(out, /no checkpointing\s+-\s+98\.96\d\d/);
  assert.match(out, /in-memory, dual, T_ck 50 ms\s+1\.59\s+99\.975\d/);
  assert.match(out, /disk-only/);
  const json = JSON.parse(await run('availability', '--scheme', 'memory', '--hypervisor-mttf-years', '0.5', '--sensitivity', '--json')) as {
    results: { result: { availability: number; probabilities: Record<string, number> } }[];
    sensitivity: { rows: { param: string }[] }[];
  };
  assert.equal(json.results.length, 1);
  const r = json.results[0]!.result;
  assert.ok(r.availability < 0.99975 && r.availability > 0.999);
  assert.ok(Math.abs(Object.values(r.probabilities).reduce((a, b) => a + b, 0) - 1) < 1e-12);
  assert.equal(json.sensitivity[0]!.rows.length, 11);
});

test('model availability writes a plot and refuses invalid parameters', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'understudy-model-cli-'));
  try {
    const svg = join(dir, 'a.svg');
    const out = await run('availability', '--plot', svg, '--corruption-probability', '0.05');
    assert.match(out, /in-memory, pc 0\.05/);
    assert.match(await readFile(svg, 'utf8'), /hypervisor MTTF \(years\)/);
  } finally {
    await rm(dir, { recursive: true });
  }
  await rejectsParam(run('availability', '--hypervisor-mttf-years', '0'), /hypervisor-mttf-years must be a positive/);
  await rejectsParam(run('availability', '--scheme', 'tape'), /--scheme must be one of/);
  await rejectsParam(run('availability', '--corruption-probability', '2'), /corruption-probability/);
  await rejectsParam(run('availability', '--checkpoints', '1.5'), /checkpoints must be an integer/);
});
