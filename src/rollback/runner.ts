// A guest run under in-memory rollback: detection (trap, hang watchdog, an
// error the guest reports, a failed host-side assertion), in-place recovery
// to a kept checkpoint with the inputs logged since replayed, and a restart
// when no kept checkpoint checks out. Output leaves only once the epoch that
// wrote it can no longer be rolled back.
import { UnderstudyError } from '../errors.js';
import { Guest } from '../guest/guest.js';
import type { GuestModule } from '../guest/module.js';
import { OutputGate, processOutput, type OutputTarget } from '../output/gate.js';
import { WasiDevice, type InputSource } from '../wasi/index.js';
import type { CollectedCheckpoint } from './collect.js';
import { RollbackEngine, type RecoveryReport, type RollbackEpochStats, type RollbackOptions } from './engine.js';
import { INPUT_LOG_BYTES_MAX, ReplayInput } from './input-log.js';

/** Errors that are detections of a guest error (recovered), as opposed to host failures (thrown). */
export const DETECTED_ERROR_CODES = ['ERR_GUEST_TRAP', 'ERR_GUEST_HANG', 'ERR_GUEST_REPORTED', 'ERR_GUEST_ASSERTION'] as const;

/** Recoveries in a row with no checkpoint taken between them before giving up (a deterministic bug is not transient). */
export const RECOVERIES_IN_A_ROW_MAX = 4;

export function isDetection(e: unknown): e is UnderstudyError {
  return e instanceof UnderstudyError && (DETECTED_ERROR_CODES as readonly string[]).includes(e.code);
}

/** Error injection hooks (src/rollback/inject.ts): wraps each new device's imports and sees detections. */
export interface RunHooks {
  onDevice?(device: WasiDevice, guest: () => Guest | null): void;
  onGuest?(guest: Guest, engine: RollbackEngine): void;
  onDetected?(e: UnderstudyError, atMs: number): void;
}

export interface RollbackRunOptions extends Omit<RollbackOptions, 'stdinAt' | 'requestIndex' | 'onForget'> {
  module: GuestModule;
  args: string[];
  env: [string, string][];
  preopens: { guestPath: string; hostPath?: string }[];
  stdin?: InputSource;
  /** Reactors: the requests, one handler call each; each response is one line of stdout. */
  requests?: AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
  handler?: string;
  outputTarget?: OutputTarget;
  yieldEveryMs?: number;
  stackCaptureBytes?: number;
  watchdogMs?: number;
  /** Rollback target: the older of the two kept checkpoints (default) or the newest. */
  target?: 'older' | 'newest';
  hooks?: RunHooks;
  log?: (line: string) => void;
}

export interface Detection {
  code: string;
  message: string;
  atMs: number;
}

export interface RollbackRunResult {
  exitCode: number;
  epochs: RollbackEpochStats[];
  recoveries: RecoveryReport[];
  detections: Detection[];
  restarts: number;
  /** Tracker counters of the last engine (faults, pre-saved, Histase predictions). */
  trackerStats: Record<string, number>;
  /** Disk checkpoints collected while the guest ran (options.collect). */
  collected: CollectedCheckpoint[];
  /** Collects given up, with why (a rollback, the run ending first). */
  collectsAbandoned: string[];
  guest: Guest;
}

const NEWLINE = new Uint8Array([10]);

export async function runWithRollback(opts: RollbackRunOptions): Promise<RollbackRunResult> {
  const gate = new OutputGate(opts.outputTarget ?? processOutput);
  const stdin = new ReplayInput(opts.stdin);
  const requests: Uint8Array[] = [];
  let requestsBase = 0;
  let requestBytes = 0;
  let served = 0;
  let restartable = true;
  const epochs: RollbackEpochStats[] = [];
  const recoveries: RecoveryReport[] = [];
  const detections: Detection[] = [];
  let restarts = 0;
  let guest!: Guest;
  let engine!: RollbackEngine;
  let epochsAtLastRecovery = -1;
  let inARow = 0;
  let trackerStats: Record<string, number> = {};
  const collected: CollectedCheckpoint[] = [];
  const collectsAbandoned: string[] = [];

  const start = async (): Promise<void> => {
    const wasi = WasiDevice.create({ args: opts.args, env: opts.env, preopens: opts.preopens, stdin, output: gate });
    let current: Guest | null = null;
    opts.hooks?.onDevice?.(wasi, () => current);
    current = await Guest.create(opts.module, {
      wasi, watchdogMs: opts.watchdogMs, yieldEveryMs: opts.yieldEveryMs, stackCaptureBytes: opts.stackCaptureBytes,
    });
    guest = current;
    engine = RollbackEngine.attach(guest, gate, {
      ...opts,
      stdinAt: (consumed) => {
        stdin.rewind(consumed);
        return stdin;
      },
      requestIndex: () => served,
      onForget: (oldest) => {
        stdin.forget(oldest.stdinConsumed);
        if (requestBytes > INPUT_LOG_BYTES_MAX) {
          restartable = false;
          while (requestsBase < oldest.requestIndex) {
            requestBytes -= requests.shift()!.length;
            requestsBase++;
          }
        }
      },
    });
    if (guest.kind === 'command') {
      guest.onSafePoint(() => {
        const e = engine.checkpointIfDue();
        if (e) epochs.push(e);
      });
    }
    opts.hooks?.onGuest?.(guest, engine);
  };

  const recover = async (e: UnderstudyError): Promise<void> => {
    const atMs = performance.now();
    detections.push({ code: e.code, message: e.message, atMs });
    opts.hooks?.onDetected?.(e, atMs);
    if (epochs.length === epochsAtLastRecovery) inARow++;
    else inARow = 1;
    epochsAtLastRecovery = epochs.length;
    if (inARow > RECOVERIES_IN_A_ROW_MAX) {
      throw new UnderstudyError('ERR_ROLLBACK_FAILED', `${e.message}; still failing after ${RECOVERIES_IN_A_ROW_MAX} recoveries in a row (not a transient error)`, { cause: e });
    }
    const refused: { sequence: number; why: string }[] = [];
    const report = engine.recover(`${e.code}: ${e.message}`, opts.target ?? 'older', refused);
    if (report) {
      recoveries.push(report);
      served = report.requestIndex;
      opts.log?.(`rollback: ${e.code} detected; rolled back to checkpoint ${report.sequence} (${report.pagesRestored} pages, ${report.recoveryMs.toFixed(2)} ms, restore generation ${report.restoreGeneration})${refused.length ? `; refused ${refused.map((r) => r.why).join('; ')}` : ''}`);
      return;
    }
    if (!restartable || !stdin.fromStart) {
      throw new UnderstudyError('ERR_ROLLBACK_FAILED', `${e.message}; no kept checkpoint checks out (${refused.map((r) => r.why).join('; ')}) and the input is no longer logged from the start, so the guest cannot be restarted`, { cause: e });
    }
    const t0 = performance.now();
    trackerStats = engine.stats();
    await retire(engine);
    gate.restart();
    stdin.rewind(0);
    served = 0;
    restarts++;
    await start();
    recoveries.push({ reason: `${e.code}: ${e.message}`, sequence: null, refused, pagesRestored: 0, recoveryMs: performance.now() - t0, requestIndex: 0, restoreGeneration: guest.wasi.restoreGeneration });
    opts.log?.(`rollback: ${e.code} detected; no kept checkpoint checks out (${refused.map((r) => r.why).join('; ')}); restarted the guest and replaying its input`);
  };

  await start();
  let exitCode = 0;
  try {
    if (guest.kind === 'command') {
      for (;;) {
        try {
          exitCode = await guest.run();
          break;
        } catch (e) {
          if (!isDetection(e)) throw e;
          await recover(e);
        }
      }
    } else {
      const handler = opts.handler ?? 'handle';
      const serveThrough = async (end: number): Promise<void> => {
        while (served < end) {
          try {
            const resp = guest.request(handler, requests[served - requestsBase]!);
            gate.write('stdout', concat(resp, NEWLINE));
            served++;
            const ep = engine.checkpointIfDue();
            if (ep) epochs.push(ep);
          } catch (e) {
            if (!isDetection(e)) throw e;
            await recover(e);
          }
        }
      };
      for await (const req of opts.requests ?? []) {
        requests.push(req);
        requestBytes += req.length;
        await serveThrough(requestsBase + requests.length);
      }
    }
    await engine.drainCollect();
    engine.commitAll();
  } finally {
    trackerStats = engine.stats();
    await retire(engine);
  }
  return { exitCode, epochs, recoveries, detections, restarts, trackerStats, collected, collectsAbandoned, guest };

  async function retire(e: RollbackEngine): Promise<void> {
    await e.close();
    collected.push(...(e.collector?.written ?? []));
    collectsAbandoned.push(...(e.collector?.abandoned ?? []));
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

