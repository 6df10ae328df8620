// Error-injection campaigns in the form of seed 003's Table 5: each trial runs
// the guest under rollback with one injected error and checks the outcome
// against a fault-free run of the same guest and input.
//
//   crash           a trap: commands, inside a random host call (mid-computation);
//                   reactors, at a random request (fail-stop, like the seed's SIGTERM)
//   bitflip-global  one random bit of a random mutable global, at a random safe point / request
//   bitflip-memory  one random bit of a random byte of linear memory, at a random safe point / request
//   hang            commands: a random host call never returns; reactors: at a random
//                   request the handler runs, then loops in wasm without returning
//                   (both caught by the watchdog)
//
// The injector sits outside the guest, as the seed's did (dom0): it fires once
// per trial, so recovery does not re-inject the same error.
import { UnderstudyError } from '../errors.js';
import type { Guest } from '../guest/guest.js';
import type { GuestModule } from '../guest/module.js';
import { BytesInput } from '../io/input.js';
import { CollectedOutput } from '../output/gate.js';
import { Prng } from '../util/prng.js';
import type { CowStrategy } from './engine.js';
import { runWithRollback, type RunHooks } from './runner.js';

export const INJECT_KINDS = ['crash', 'bitflip-global', 'bitflip-memory', 'hang'] as const;
export type InjectKind = (typeof INJECT_KINDS)[number];

/** Trials per campaign at most (each is a whole run). */
export const TRIALS_MAX = 10_000;

export interface CampaignOptions {
  module: GuestModule;
  args: string[];
  env?: [string, string][];
  /** Command guests: stdin. */
  stdin?: Uint8Array;
  /** Reactor guests: the requests. */
  requests?: Uint8Array[];
  handler?: string;
  kind: InjectKind;
  trials: number;
  seed: number;
  epochMs: number;
  watchdogMs: number;
  strategy?: CowStrategy;
  histase?: boolean;
  denseRegionMinPages?: number;
  yieldEveryMs?: number;
}

export interface Trial {
  kind: InjectKind;
  /** What was injected, where. */
  what: string;
  injected: boolean;
  /** The error showed: it was detected, or the run's output or exit differs from the fault-free run. */
  activated: boolean;
  detected: boolean;
  /** Detected, and the run ended with the fault-free run's output and exit code. */
  recovered: boolean;
  /** From the injection to the first detection. */
  latencyMs: number | null;
  /** How the run ended when it did not end well. */
  failure?: string;
}

interface RunOutcome {
  stdout: string;
  exitCode: number | null;
  error?: string;
  detectedAtMs: number | null;
  detections: number;
  /** Host calls (commands) or requests (reactors), and safe points, seen in the run. */
  calls: number;
  points: number;
}

async function runOnce(o: CampaignOptions, hooks: RunHooks, onPoint?: (g: Guest) => void): Promise<RunOutcome> {
  const out = new CollectedOutput();
  let detectedAtMs: number | null = null;
  const reactor = o.module.layout.kind === 'reactor';
  let points = 0;
  let current: Guest | null = null;
  const requests = async function* (): AsyncGenerator<Uint8Array> {
    for (const r of o.requests ?? []) {
      points++;
      if (current && onPoint) onPoint(current);
      yield r;
    }
  };
  try {
    const result = await runWithRollback({
      module: o.module,
      args: o.args,
      env: o.env ?? [],
      preopens: [],
      stdin: reactor ? undefined : new BytesInput(o.stdin ?? new Uint8Array(0)),
      requests: reactor ? requests() : undefined,
      handler: o.handler,
      outputTarget: out,
      epochMs: o.epochMs,
      watchdogMs: o.watchdogMs,
      strategy: o.strategy,
      histase: o.histase,
      denseRegionMinPages: o.denseRegionMinPages,
      yieldEveryMs: o.yieldEveryMs,
      hooks: {
        ...hooks,
        onGuest(g, e) {
          current = g;
          if (!reactor) {
            g.onSafePoint((guest) => {
              points++;
              onPoint?.(guest);
            });
          }
          hooks.onGuest?.(g, e);
        },
        onDetected(e, at) {
          detectedAtMs ??= at;
          hooks.onDetected?.(e, at);
        },
      },
    });
    return { stdout: out.text('stdout'), exitCode: result.exitCode, detectedAtMs, detections: result.detections.length, calls: 0, points };
  } catch (e) {
    return { stdout: out.text('stdout'), exitCode: null, error: e instanceof Error ? `${(e as UnderstudyError).code ?? e.name}: ${e.message}` : String(e), detectedAtMs, detections: detectedAtMs === null ? 0 : 1, calls: 0, points };
  }
}

/** A wasm function that never returns: `(loop (br 0))`, compiled once. */
let spinFn: (() => void) | null = null;
function spin(): void {
  spinFn ??= new WebAssembly.Instance(
    new WebAssembly.Module(
      // (module (func (export "spin") (loop (br 0))))
      Uint8Array.of(0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x04, 0x01, 0x60, 0x00, 0x00, 0x03, 0x02, 0x01, 0x00, 0x07, 0x08, 0x01, 0x04, 0x73, 0x70, 0x69, 0x6e, 0x00, 0x00, 0x0a, 0x09, 0x01, 0x07, 0x00, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b),
    ),
  ).exports.spin as () => void;
  spinFn();
}

/** Where and how one crash or hang is injected (the one trial's error). */
export interface FaultSpec {
  kind: 'crash' | 'hang';
  /** The host call (commands) or request (reactors), counted from 1 over the whole run. */
  at: number;
  reactor: boolean;
  handler?: string;
  /** Called when the error fires; false means it fired already (recovery replays that call). */
  fire: () => boolean;
  /** Says what was injected where. */
  note?: (what: string) => void;
}

/**
 * Hooks that inject one crash or hang. Crash: a trap inside host call `at` (commands) or at request
 * `at` (reactors, fail-stop). Hang: host call `at` never returns (commands); at request `at` the
 * handler runs, then spins in a wasm loop (reactors). The watchdog stops a hang.
 */
export function faultHooks(f: FaultSpec): RunHooks {
  const { kind, at } = f;
  let n = 0;
  if (f.reactor && kind === 'crash') {
    f.note?.(`trap at request ${at}`);
    return {
      onGuest(g) {
        const request = g.request.bind(g);
        g.request = (handler, body) => {
          if (++n === at && f.fire()) throw new UnderstudyError('ERR_GUEST_TRAP', 'injected trap');
          return request(handler, body);
        };
      },
    };
  }
  if (f.reactor) {
    // A handler that loops: at request `at` the handler export is replaced, for that one call, by
    // one that runs the real handler (its writes to memory happen) and then spins in a wasm loop,
    // inside the guest's watchdog like any handler.
    f.note?.(`handler loops after request ${at}`);
    const handlerName = f.handler ?? 'handle';
    return {
      onGuest(g) {
        const real = g.exports[handlerName] as (...a: unknown[]) => unknown;
        const looping = (...a: unknown[]): unknown => {
          const r = real(...a);
          if (++n === at && f.fire()) spin();
          return r;
        };
        // Guest.exports is a getter over the instance's frozen exports; an own property on this
        // guest object shadows it, so Guest.call() finds the wrapper.
        Object.defineProperty(g, 'exports', { value: { ...g.exports, [handlerName]: looping }, configurable: true });
      },
    };
  }
  let what = `${kind === 'crash' ? 'trap' : 'never-returning call'} at host call ${at}`;
  f.note?.(what);
  return {
    onDevice(device) {
      for (const [name, fn] of Object.entries(device.imports)) {
        device.imports[name] = (...args: unknown[]) => {
          if (++n === at && f.fire()) {
            what += ` (${name})`;
            f.note?.(what);
            if (kind === 'crash') throw new WebAssembly.RuntimeError('injected trap');
            for (;;);
          }
          return fn(...args);
        };
      }
    },
  };
}

/** Counts host calls (commands) or handler calls (reactors) of a device's guest. */
function countingHooks(counter: { calls: number }): RunHooks {
  return {
    onDevice(device) {
      for (const [name, fn] of Object.entries(device.imports)) {
        device.imports[name] = (...args: unknown[]) => {
          counter.calls++;
          return fn(...args);
        };
      }
    },
  };
}

export async function runCampaign(o: CampaignOptions, onTrial?: (t: Trial, i: number) => void): Promise<{ reference: RunOutcome; trials: Trial[] }> {
  if (!Number.isInteger(o.trials) || o.trials < 1 || o.trials > TRIALS_MAX) throw new UnderstudyError('ERR_USAGE', `trials must be 1..${TRIALS_MAX}`);
  const reactor = o.module.layout.kind === 'reactor';
  const counter = { calls: 0 };
  const reference = await runOnce(o, countingHooks(counter));
  if (reference.error) throw new UnderstudyError('ERR_USAGE', `the fault-free run failed: ${reference.error}`);
  reference.calls = reactor ? (o.requests?.length ?? 0) : counter.calls;
  const prng = new Prng(o.seed);
  const trials: Trial[] = [];
  for (let i = 0; i < o.trials; i++) {
    let injectedAtMs: number | null = null;
    let what = '';
    const fire = (): boolean => {
      if (injectedAtMs !== null) return false;
      injectedAtMs = performance.now();
      return true;
    };
    let hooks: RunHooks = {};
    let onPoint: ((g: Guest) => void) | undefined;
    if (o.kind === 'crash' || o.kind === 'hang') {
      const at = prng.int(1, Math.max(1, reference.calls));
      hooks = faultHooks({ kind: o.kind, at, reactor, handler: o.handler, fire, note: (s) => (what = s) });
    } else {
      const at = prng.int(1, Math.max(1, reference.points));
      const choice = prng.next();
      const bit = prng.next();
      let n = 0;
      onPoint = (g) => {
        if (++n !== at || !fire()) return;
        if (o.kind === 'bitflip-global') {
          const globals = g.module.layout.globals.filter((x) => x.mutable && (x.type === 'i32' || x.type === 'i64'));
          if (globals.length === 0) {
            what = 'no mutable integer global';
            return;
          }
          const gl = globals[Math.floor(choice * globals.length)]!;
          const glob = g.exports[gl.exportName] as WebAssembly.Global;
          if (gl.type === 'i32') {
            const b = Math.floor(bit * 32);
            glob.value = (glob.value as number) ^ (1 << b);
            what = `bit ${b} of global ${gl.exportName} at ${at}`;
          } else {
            const b = BigInt(Math.floor(bit * 64));
            glob.value = BigInt.asIntN(64, (glob.value as bigint) ^ (1n << b));
            what = `bit ${b} of global ${gl.exportName} at ${at}`;
          }
        } else {
          const mem = new Uint8Array(g.memory.buffer);
          const addr = Math.floor(choice * mem.length);
          const b = Math.floor(bit * 8);
          mem[addr] = mem[addr]! ^ (1 << b);
          what = `bit ${b} of byte ${addr} at ${at}`;
        }
      };
    }
    const run = await runOnce(o, hooks, onPoint);
    const injected = injectedAtMs !== null;
    const same = run.error === undefined && run.stdout === reference.stdout && run.exitCode === reference.exitCode;
    const detected = run.detectedAtMs !== null;
    const trial: Trial = {
      kind: o.kind,
      what,
      injected,
      activated: injected && (detected || !same),
      detected,
      recovered: detected && same,
      latencyMs: detected && injectedAtMs !== null ? Math.max(0, run.detectedAtMs! - injectedAtMs) : null,
      failure: same ? undefined : (run.error ?? 'output differs from the fault-free run'),
    };
    trials.push(trial);
    onTrial?.(trial, i);
  }
  return { reference, trials };
}

/** Seed 003 Table 5, for the report. */
export const SEED_TABLE5: Record<InjectKind, string> = {
  crash: 'signal-triggered crash: 35 injected, 35 activated and detected, 35 recovered',
  'bitflip-global': 'bit flip in a kernel register: 85 injected, 31 activated and detected, 31 recovered',
  'bitflip-memory': '(no memory bit flips in the seed)',
  hang: 'driver infinite loop, 200 ms threshold: 30 injected, 30 detected, 24 recovered',
};

export function summarise(kind: InjectKind, trials: readonly Trial[]): (string | number)[] {
  const n = (p: (t: Trial) => boolean): number => trials.filter(p).length;
  const lat = trials.map((t) => t.latencyMs).filter((x): x is number => x !== null).sort((a, b) => a - b);
  const median = lat.length ? lat[lat.length >> 1]!.toFixed(1) : '-';
  const max = lat.length ? lat[lat.length - 1]!.toFixed(1) : '-';
  return [kind, trials.length, n((t) => t.injected), n((t) => t.activated), n((t) => t.detected), n((t) => t.recovered), n((t) => t.activated && !t.detected), `${median} / ${max}`, SEED_TABLE5[kind]];
}

export const SUMMARY_HEADER = ['error', 'trials', 'injected', 'activated', 'detected', 'recovered', 'silent (activated, undetected)', 'detection latency ms (median / max)', 'seed 003 Table 5'];
