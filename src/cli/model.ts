// `understudy model corruption` and `understudy model availability`: the
// analytical models of seed paper 003 (src/model) on the command line. Tables
// go to stdout (or one JSON document with --json); --plot writes an SVG chart.
import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { UnderstudyError } from '../errors.js';
import {
  AVAILABILITY_DEFAULTS, type AvailabilityParams, type ExponentialFit,
  RECOMMEND_INTERVAL_MAX_MS_DEFAULT, SEED_LAMBDA_PER_MS, type Scheme,
  availability, availabilityChartSvg, corruptionChartSvg, corruptionProbability,
  corruptionProbabilityEmpirical, corruptionProbabilityNumeric, fitExponential, hypervisorMttfYearsFor,
  lambdaFromPercentile, percentilePointMs, readLatencyFile, recommendInterval, reproduceTable1,
  sensitivity, simulateCorruption,
} from '../model/index.js';

export interface ModelCliIo {
  /** Where tables go; default process.stdout. */
  write(text: string): void;
}

const defaultIo: ModelCliIo = { write: (text) => { process.stdout.write(text); } };

// ---- parsing -------------------------------------------------------------

function parseNumber(flag: string, text: string): number {
  const v = Number(text.trim());
  if (text.trim() === '' || !Number.isFinite(v)) {
    throw new UnderstudyError('ERR_MODEL_PARAM', `--${flag} must be a number, got '${text}'`);
  }
  return v;
}

function parsePositive(flag: string, text: string): number {
  const v = parseNumber(flag, text);
  if (v <= 0) throw new UnderstudyError('ERR_MODEL_PARAM', `--${flag} must be a positive finite number, got ${text}`);
  return v;
}

/** A percentage strictly between 0 and 100 ("95", "99.9", "95%"), returned as a fraction. */
function parsePercent(flag: string, text: string): number {
  const v = parseNumber(flag, text.replace(/%$/, ''));
  if (v <= 0 || v >= 100) throw new UnderstudyError('ERR_MODEL_PARAM', `--${flag} must be a percentage strictly between 0 and 100, got ${text}`);
  return v / 100;
}

/** A probability as a fraction ("0.02") or a percentage ("2%"), strictly between 0 and 1. */
function parseProbability(flag: string, text: string, closed = false): number {
  const t = text.trim();
  const v = t.endsWith('%') ? parseNumber(flag, t.slice(0, -1)) / 100 : parseNumber(flag, t);
  const ok = closed ? v >= 0 && v <= 1 : v > 0 && v < 1;
  if (!ok) {
    throw new UnderstudyError('ERR_MODEL_PARAM', `--${flag} must be a probability ${closed ? 'in [0, 1]' : 'strictly between 0 and 1'} (e.g. 0.02 or 2%), got ${text}`);
  }
  return v;
}

function parseList<T>(flag: string, text: string, one: (flag: string, s: string) => T): T[] {
  const parts = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (parts.length === 0) throw new UnderstudyError('ERR_MODEL_PARAM', `--${flag} needs at least one value`);
  if (parts.length > 1000) throw new UnderstudyError('ERR_MODEL_PARAM', `--${flag} takes at most 1000 values`);
  return parts.map((p) => one(flag, p));
}

function parseInteger(flag: string, text: string, min: number, max: number): number {
  const v = parseNumber(flag, text);
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new UnderstudyError('ERR_MODEL_PARAM', `--${flag} must be an integer in [${min}, ${max}], got ${text}`);
  }
  return v;
}

// ---- output --------------------------------------------------------------

/** Aligned text table: by default the first column left-aligned, the others right-aligned. */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[], align?: readonly ('l' | 'r')[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const left = (i: number): boolean => (align?.[i] ?? (i === 0 ? 'l' : 'r')) === 'l';
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (left(i) ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n') + '\n';
}

const pct = (p: number, digits = 4): string => `${(p * 100).toPrecision(digits)}`;
const num = (v: number, digits = 4): string => (Number.isFinite(v) ? String(Number(v.toPrecision(digits))) : String(v));

async function writePlot(path: string, svg: string, io: ModelCliIo, json: boolean): Promise<void> {
  try {
    await writeFile(path, svg);
  } catch (e) {
    throw new UnderstudyError('ERR_MODEL_IO', `cannot write plot '${path}': ${(e as Error).message}`, { cause: e });
  }
  if (!json) io.write(`\nplot written to ${path}\n`);
}

// ---- model corruption ----------------------------------------------------

interface CorruptionOptions {
  lambdaPerMs?: string;
  percentile?: string;
  withinMs?: string;
  latencies?: string;
  confidence: string;
  intervalMs?: string;
  percentiles: string;
  target?: string;
  intervalMaxMs: string;
  check?: boolean;
  mcSamples: string;
  mcSeed: string;
  plot?: string;
  json?: boolean;
}

async function runCorruption(o: CorruptionOptions, io: ModelCliIo): Promise<void> {
  const sources = [o.lambdaPerMs !== undefined, o.percentile !== undefined || o.withinMs !== undefined, o.latencies !== undefined].filter(Boolean).length;
  if (sources > 1) {
    throw new UnderstudyError('ERR_MODEL_PARAM', 'give λ one way only: --lambda-per-ms, or --percentile with --within-ms, or --latencies');
  }
  if ((o.percentile === undefined) !== (o.withinMs === undefined)) {
    throw new UnderstudyError('ERR_MODEL_PARAM', '--percentile and --within-ms go together (p % of errors detected within T_B ms)');
  }
  let lambdaPerMs = SEED_LAMBDA_PER_MS;
  let lambdaSource = 'the seed paper (95 % of errors detected within 50 ms, printed as 0.0599/ms)';
  let fit: ExponentialFit | undefined;
  let latencies: number[] | undefined;
  if (o.lambdaPerMs !== undefined) {
    lambdaPerMs = parsePositive('lambda-per-ms', o.lambdaPerMs);
    lambdaSource = '--lambda-per-ms';
  } else if (o.percentile !== undefined && o.withinMs !== undefined) {
    const p = parsePercent('percentile', o.percentile);
    const tb = parsePositive('within-ms', o.withinMs);
    lambdaPerMs = lambdaFromPercentile(p, tb);
    lambdaSource = `${num(p * 100, 6)} % of errors detected within ${num(tb, 6)} ms: λ = -ln(1 - p) / T_B`;
  } else if (o.latencies !== undefined) {
    latencies = await readLatencyFile(o.latencies);
    fit = fitExponential(latencies, parsePercent('confidence', o.confidence));
    lambdaPerMs = fit.lambdaPerMs;
    lambdaSource = `maximum-likelihood fit to ${fit.n} latencies in ${o.latencies}`;
  }
  const seedTable = sources === 0 && o.intervalMs === undefined;
  const check = o.check === true;
  const mcSamples = parseInteger('mc-samples', o.mcSamples, 1, 100_000_000);
  const mcSeed = parseInteger('mc-seed', o.mcSeed, 0, 0xffffffff);
  const intervalMaxMs = parsePositive('interval-max-ms', o.intervalMaxMs);
  const target = o.target === undefined ? undefined : parseProbability('target', o.target);

  // Rows: at given intervals, or at the percentile points of the latency (the seed's Table 1 layout).
  type Row = { percentile?: number; intervalMs: number };
  const rows: Row[] = o.intervalMs !== undefined
    ? parseList('interval-ms', o.intervalMs, parsePositive).map((intervalMs) => ({ intervalMs }))
    : parseList('percentiles', o.percentiles, parsePercent).map((p) => {
      const point = percentilePointMs(lambdaPerMs, p);
      // The seed's table uses the percentile point rounded to whole ms; keep that for its reproduction.
      return { percentile: p, intervalMs: seedTable ? Math.max(1, Math.round(point)) : point };
    });
  const computed = rows.map((r, i) => {
    const single = corruptionProbability(r.intervalMs, lambdaPerMs, 1);
    const dual = corruptionProbability(r.intervalMs, lambdaPerMs, 2);
    const out: Record<string, unknown> = { ...r, single, dual };
    if (check) {
      out.numericSingle = corruptionProbabilityNumeric(r.intervalMs, lambdaPerMs, 1);
      out.numericDual = corruptionProbabilityNumeric(r.intervalMs, lambdaPerMs, 2);
      const mc = simulateCorruption({ intervalMs: r.intervalMs, lambdaPerMs, samples: mcSamples, seed: (mcSeed + i) >>> 0 });
      out.monteCarloSingle = mc[0]!;
      out.monteCarloDual = mc[1]!;
    }
    if (latencies) {
      out.empiricalSingle = corruptionProbabilityEmpirical(r.intervalMs, latencies, 1);
      out.empiricalDual = corruptionProbabilityEmpirical(r.intervalMs, latencies, 2);
    }
    return out;
  });
  const recommendation = target === undefined ? undefined : recommendInterval({ lambdaPerMs, target, intervalMaxMs });
  const table1 = seedTable ? reproduceTable1() : undefined;

  const plot = async (): Promise<void> => {
    if (o.plot === undefined) return;
    await writePlot(o.plot, corruptionChartSvg({ lambdaPerMs, marks: rows.map((r) => r.intervalMs) }), io, o.json === true);
  };
  if (o.json) {
    await plot();
    io.write(JSON.stringify({ lambdaPerMs, lambdaSource, fit, rows: computed, table1, recommendation }, null, 2) + '\n');
    return;
  }

  io.write(`λ = ${num(lambdaPerMs, 6)} per ms — ${lambdaSource}\n`);
  if (fit) {
    io.write('\nExponential fit of the detection latency\n');
    io.write(formatTable(['quantity', 'value'], [
      ['samples', String(fit.n)],
      ['mean / median / max (ms)', `${num(fit.meanMs)} / ${num(fit.medianMs)} / ${num(fit.maxMs)}`],
      ['λ (1/ms), maximum likelihood', num(fit.lambdaPerMs, 6)],
      [`λ ${num(fit.confidence * 100)} % confidence interval`, `[${num(fit.lambdaLowPerMs, 6)}, ${num(fit.lambdaHighPerMs, 6)}]`],
      ['95th percentile of the fit (ms)', num(percentilePointMs(fit.lambdaPerMs, 0.95))],
      ['Kolmogorov–Smirnov D', num(fit.ks.d)],
      ["Stephens' D* (λ estimated)", `${num(fit.ks.modified)} (${fit.ks.pBand})`],
      ['exponential model at 5 %', fit.ks.rejectedAt5Percent ? 'REJECTED — prefer the empirical columns' : 'not rejected'],
    ]));
  }
  if (table1) {
    io.write('\nTable 1 of the seed, reproduced (λ = 0.0599/ms, T_ck = percentile point rounded to whole ms, in %)\n');
    io.write(formatTable(
      ['percentile', 'T_ck ms (unrounded)', 'single seed', 'single ours', 'dual seed', 'dual ours', 'match'],
      table1.map((r) => [
        `${num(r.percentile * 100)} %`, `${r.seedIntervalMs} (${r.intervalExactMs.toFixed(2)})`,
        r.single.seed, r.single.oursAtPrintedInterval, r.dual.seed, r.dual.oursAtPrintedInterval,
        r.single.matches && r.dual.matches ? 'yes' : 'no *',
      ]),
    ));
    for (const r of table1) {
      for (const [name, c] of [['single', r.single], ['dual', r.dual]] as const) {
        if (c.matches) continue;
        io.write(`* ${num(r.percentile * 100)} % ${name}: the seed's ${c.seed} is the formula at the unrounded ` +
          `${r.intervalExactMs.toFixed(2)} ms (ours there: ${c.oursAtExactInterval}); at the printed ${r.seedIntervalMs} ms it is ${c.oursAtPrintedInterval}\n`);
      }
    }
  }
  io.write(`\nCorruption probability (%)${check ? `; numerical integration and Monte-Carlo (${mcSamples} samples, seed ${mcSeed}, ± 1 s.e.)` : ''}\n`);
  const headers = ['percentile', 'T_ck ms', 'single (5)', 'dual (6)'];
  if (check) headers.push('single numeric', 'single MC', 'dual numeric', 'dual MC');
  if (latencies) headers.push('single empirical', 'dual empirical');
  io.write(formatTable(headers, computed.map((c) => {
    const cells = [
      c.percentile === undefined ? '-' : `${num((c.percentile as number) * 100)} %`,
      num(c.intervalMs as number, 5), pct(c.single as number), pct(c.dual as number),
    ];
    if (check) {
      const mc = (e: unknown): string => {
        const m = e as { estimate: number; stderr: number };
        return `${pct(m.estimate)} ± ${pct(m.stderr, 2)}`;
      };
      cells.push(pct(c.numericSingle as number), mc(c.monteCarloSingle), pct(c.numericDual as number), mc(c.monteCarloDual));
    }
    if (latencies) cells.push(pct(c.empiricalSingle as number), pct(c.empiricalDual as number));
    return cells;
  })));
  if (recommendation) {
    const r = recommendation;
    io.write(`\nRecommendation for a corruption probability <= ${pct(r.target)} % (intervals up to ${num(r.intervalMaxMs)} ms)\n`);
    io.write(formatTable(['scheme', 'shortest T_ck ms', 'fits the limit'], [
      ['single checkpoint', num(r.singleIntervalMs, 5), r.singleIntervalMs <= r.intervalMaxMs ? 'yes' : 'no'],
      ['dual checkpoint', num(r.dualIntervalMs, 5), r.dualIntervalMs <= r.intervalMaxMs ? 'yes' : 'no'],
    ]));
    const verdict = r.scheme === 'unattainable'
      ? 'not attainable within the interval limit'
      : `use ${r.scheme} checkpoint at T_ck = ${num(r.intervalMs, 5)} ms; dual checkpoint ${r.dualNeeded ? 'IS' : 'is not'} needed`;
    io.write(`${verdict}: ${r.reason}\n`);
  }
  await plot();
}

// ---- model availability --------------------------------------------------

/** CLI flag → AvailabilityParams field; every flag's unit is in its name. */
const AVAILABILITY_FLAGS: readonly { flag: string; key: keyof AvailabilityParams; description: string }[] = [
  { flag: 'protected-mttf-hours', key: 'protectedMttfHours', description: '1/λp: mean time between transient failures of the protected VM' },
  { flag: 'ckpt-vm-mttf-hours', key: 'ckptVmMttfHours', description: '1/λs: mean time between failures of the checkpointing VM' },
  { flag: 'hypervisor-mttf-years', key: 'hypervisorMttfYears', description: '1/λv: mean time between hypervisor and permanent failures' },
  { flag: 'hypervisor-restart-minutes', key: 'hypervisorRestartMinutes', description: '1/rv: mean time to restart the hypervisor (maybe elsewhere)' },
  { flag: 'ckpt-vm-restart-minutes', key: 'ckptVmRestartMinutes', description: '1/rs: mean time to restart the checkpointing VM incl. the first checkpoint' },
  { flag: 'ckpt-recovery-seconds', key: 'ckptRecoverySeconds', description: "1/r'p: mean time of a rollback to the in-memory checkpoint" },
  { flag: 'restart-recompute-minutes', key: 'restartRecomputeMinutes', description: '1/rp: mean time to restart the VM and re-execute its jobs' },
  { flag: 'lambda-per-ms', key: 'latencyLambdaPerMs', description: 'detection-latency rate λ, for pc' },
  { flag: 'interval-ms', key: 'intervalMs', description: 'in-memory checkpoint interval T_ck, for pc' },
  { flag: 'disk-interval-minutes', key: 'diskIntervalMinutes', description: 'disk-only scheme: interval between disk checkpoints' },
  { flag: 'disk-load-minutes', key: 'diskLoadMinutes', description: 'disk-only scheme: time to load a disk checkpoint' },
];

const camel = (flag: string): string => flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

interface AvailabilityOptions {
  scheme: string;
  checkpoints?: string;
  corruptionProbability?: string;
  target: string;
  sensitivity?: boolean;
  states?: boolean;
  plot?: string;
  json?: boolean;
  [flag: string]: unknown;
}

async function runAvailability(o: AvailabilityOptions, io: ModelCliIo): Promise<void> {
  const params: AvailabilityParams = { ...AVAILABILITY_DEFAULTS };
  for (const f of AVAILABILITY_FLAGS) {
    const v = o[camel(f.flag)];
    if (typeof v === 'string') (params[f.key] as number) = parsePositive(f.flag, v);
  }
  if (o.checkpoints !== undefined) params.checkpointsKept = parseInteger('checkpoints', o.checkpoints, 1, 64);
  if (o.corruptionProbability !== undefined) params.corruptionProbability = parseProbability('corruption-probability', o.corruptionProbability, true);
  const target = parseProbability('target', o.target);
  const allowed = ['all', 'none', 'disk', 'memory'];
  if (!allowed.includes(o.scheme)) throw new UnderstudyError('ERR_MODEL_PARAM', `--scheme must be one of ${allowed.join(', ')}, got '${o.scheme}'`);

  // Cases: the three schemes; with "all" and pc computed, in-memory both single and dual.
  const cases: { name: string; scheme: Scheme; params: AvailabilityParams }[] = [];
  if (o.scheme === 'all' || o.scheme === 'none') cases.push({ name: 'no checkpointing', scheme: 'none', params });
  if (o.scheme === 'all' || o.scheme === 'disk') cases.push({ name: `disk-only (every ${num(params.diskIntervalMinutes)} min)`, scheme: 'disk', params });
  if (o.scheme === 'all' || o.scheme === 'memory') {
    if (o.scheme === 'all' && params.corruptionProbability === undefined && o.checkpoints === undefined) {
      cases.push({ name: `in-memory, single, T_ck ${num(params.intervalMs)} ms`, scheme: 'memory', params: { ...params, checkpointsKept: 1 } });
      cases.push({ name: `in-memory, dual, T_ck ${num(params.intervalMs)} ms`, scheme: 'memory', params: { ...params, checkpointsKept: 2 } });
    } else {
      const kept = params.checkpointsKept === 1 ? 'single' : params.checkpointsKept === 2 ? 'dual' : `${params.checkpointsKept} kept`;
      const label = params.corruptionProbability !== undefined ? `pc ${params.corruptionProbability}` : `${kept}, T_ck ${num(params.intervalMs)} ms`;
      cases.push({ name: `in-memory, ${label}`, scheme: 'memory', params });
    }
  }
  const results = cases.map((c) => ({
    ...c,
    result: availability(c.scheme, c.params),
    hypervisorMttfYearsForTarget: hypervisorMttfYearsFor(target, c.scheme, c.params),
  }));
  const sens = o.sensitivity ? results.map((r) => ({ name: r.name, ...sensitivity(r.scheme, r.params) })) : undefined;

  const plot = async (): Promise<void> => {
    if (o.plot !== undefined) await writePlot(o.plot, availabilityChartSvg(params), io, o.json === true);
  };
  if (o.json) {
    await plot();
    io.write(JSON.stringify({ params, target, results, sensitivity: sens }, null, 2) + '\n');
    return;
  }
  io.write(`Availability of the protected VM (steady state of the CTMC), hypervisor MTTF ${num(params.hypervisorMttfYears)} years\n`);
  io.write(formatTable(
    ['scheme', 'pc %', 'availability %', 'downtime min/year', `hypervisor MTTF for ${pct(target, 6)} % (years)`],
    results.map((r) => [
      r.name, r.scheme === 'none' ? '-' : pct(r.result.corruptionProbability, 3),
      (r.result.availability * 100).toFixed(4), r.result.downtimeMinutesPerYear.toFixed(1),
      Number.isFinite(r.hypervisorMttfYearsForTarget) ? num(r.hypervisorMttfYearsForTarget, 3) : 'unreachable',
    ]),
  ));
  io.write('\nParameters\n');
  io.write(formatTable(['flag', 'value', 'meaning'], [
    ...AVAILABILITY_FLAGS.map((f) => [`--${f.flag}`, num(params[f.key] as number, 6), f.description]),
    ['--checkpoints', String(params.checkpointsKept), 'checkpoints kept (1 single, 2 dual), for pc'],
    ['--corruption-probability', params.corruptionProbability === undefined ? 'formula (5)/(6)' : String(params.corruptionProbability), 'pc override'],
  ], ['l', 'r', 'l']));
  if (o.states) {
    for (const r of results) {
      io.write(`\nState probabilities: ${r.name}\n`);
      io.write(formatTable(['state', 'probability'], Object.entries(r.result.probabilities).map(([s, p]) => [s, p.toExponential(6)])));
    }
  }
  for (const s of sens ?? []) {
    io.write(`\nSensitivity: ${s.name} (base ${(s.base.availability * 100).toFixed(4)} %)\n`);
    io.write(formatTable(
      ['parameter', 'value', 'A % at ×0.5', 'A % at ×2', 'elasticity of unavailability'],
      // Parameters the scheme does not use (no effect at ×0.5 and ×2) are left out.
      s.rows.filter((row) => row.availabilityAtHalf !== s.base.availability || row.availabilityAtDouble !== s.base.availability).map((row) => [
        row.param, num(row.value, 6), (row.availabilityAtHalf * 100).toFixed(4), (row.availabilityAtDouble * 100).toFixed(4), row.elasticity.toFixed(3),
      ]),
    ));
  }
  await plot();
}

// ---- registration --------------------------------------------------------

/** Adds `model corruption` and `model availability` to the program. */
export function registerModelCommands(program: Command, io: ModelCliIo = defaultIo): void {
  const model = program.command('model').description('analytical checkpoint-corruption and availability models (VM-μCheckpoint, seed paper 003)');

  model.command('corruption')
    .description('probability that the checkpoint rolled back to holds the error (formulas 5 and 6); Table 1; interval recommendation; λ fit')
    .option('--lambda-per-ms <rate>', `detection-latency rate λ (default ${SEED_LAMBDA_PER_MS}, the seed's)`)
    .option('--percentile <percent>', 'derive λ: this percent of errors is detected within --within-ms')
    .option('--within-ms <ms>', 'derive λ: the latency bound T_B for --percentile')
    .option('--latencies <file>', 'derive λ: fit to measured latencies, one number (ms) per line')
    .option('--confidence <percent>', 'confidence level of the λ interval', '95')
    .option('--interval-ms <list>', 'checkpoint intervals to tabulate, comma-separated (default: the percentile points)')
    .option('--percentiles <list>', 'latency percentiles whose points are tabulated as T_ck', '70,90,95,99,99.9')
    .option('--target <probability>', 'recommend T_ck for this corruption probability (0.02 or 2%)')
    .option('--interval-max-ms <ms>', 'longest acceptable interval for the recommendation', String(RECOMMEND_INTERVAL_MAX_MS_DEFAULT))
    .option('--check', 'add numerical-integration and Monte-Carlo columns')
    .option('--mc-samples <n>', 'Monte-Carlo samples per row', '1000000')
    .option('--mc-seed <n>', 'Monte-Carlo seed (runs replay from it)', '1')
    .option('--plot <file.svg>', 'write an SVG chart of P against T_ck')
    .option('--json', 'print one JSON document instead of tables')
    .action(async (opts: CorruptionOptions) => { await runCorruption(opts, io); });

  const av = model.command('availability')
    .description('steady-state availability of the protected VM: no checkpointing, disk-only, in-memory (CTMC of Figure 5)')
    .option('--scheme <name>', 'all, none, disk or memory', 'all')
    .option('--checkpoints <n>', 'checkpoints kept for pc: 1 single, 2 dual (default 2)')
    .option('--corruption-probability <p>', 'use this pc instead of formula (5)/(6)')
    .option('--target <availability>', 'report the hypervisor MTTF needed for this availability', '0.99975')
    .option('--sensitivity', 'print the sensitivity of the availability to each parameter')
    .option('--states', 'print the probability of every state')
    .option('--plot <file.svg>', 'write an SVG chart of availability against hypervisor MTTF')
    .option('--json', 'print one JSON document instead of tables');
  for (const f of AVAILABILITY_FLAGS) {
    av.option(`--${f.flag} <value>`, `${f.description} (default ${AVAILABILITY_DEFAULTS[f.key] as number})`);
  }
  av.action(async (opts: AvailabilityOptions) => { await runAvailability(opts, io); });
}
