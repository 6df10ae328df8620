// A running guest: one instance of a rewritten module, its memory, and the
// WASI device it talks to. Command guests run as a cooperative task that stops
// at host calls (safe points) to let the event loop, checkpoints and waits
// happen; reactor guests are called per request and are at a safe point
// whenever no call is in progress.
import vm from 'node:vm';
import { UnderstudyError } from '../errors.js';
import { assert } from '../util/assert.js';
import { ProcExit, type WasiDevice } from '../wasi/index.js';
import type { GuestModule } from './module.js';
import { AsyncifyState, SafePoints, STACK_CAPTURE_BYTES_DEFAULT } from './safepoint.js';
import { SAFE_POINT_IMPORTS } from './rewrite.js';
import { applyVcpuState, captureVcpuState, type VcpuState } from './persist.js';
import { BALLOON_HYPERCALLS } from '../balloon/hypercalls.js';
import { EMUL_IMPORT_MODULE, EMUL_IMPORT_NAME } from '../cda/instrument.js';
import { BALLOON_POLL_HYPERCALLS } from '../balloon/poll.js';

/** How often a running command guest yields to the event loop (signals, sockets, timers). */
export const YIELD_EVERY_MS_DEFAULT = 10;

export type GuestStatus = 'ready' | 'running' | 'paused' | 'exited' | 'crashed';

/** Hypercalls a subsystem offers guests under the `understudy` import module, by name. Each is
 * called with the guest and the wasm arguments; a command guest may be stopped at any of them. */
export type Hypercalls = Record<string, (guest: Guest, ...args: any[]) => unknown>;

export interface GuestOptions {
  wasi: WasiDevice;
  yieldEveryMs?: number;
  stackCaptureBytes?: number;
  /** Extra hypercalls (rollback, balloon, critical data areas register theirs here). */
  hypercalls?: Hypercalls;
  /**
   * Hang watchdog: a reactor call, or a command's run between two safe points,
   * that runs longer than this is stopped (V8 terminates it, wasm loops
   * included) and reported as ERR_GUEST_HANG. Costs a watchdog thread per
   * entry (~0.3 ms here), so it is off unless asked for.
   */
  watchdogMs?: number;
  /**
   * Receives every memory write of a guest rewritten with `cdaStores` (address, length), from
   * the `understudy_emul.store` import (src/cda/instrument.ts). Not a safe point: it never suspends.
   */
  storeRecorder?: (address: number, length: number) => void;
}

/** Codes a hypercall may throw to end the guest with a detected error (not a trap). */
const DETECTED_CODES: ReadonlySet<string> = new Set(['ERR_GUEST_REPORTED', 'ERR_GUEST_ASSERTION', 'ERR_GUEST_HANG', 'ERR_GUEST_TRAP']);

const watchdogContext = vm.createContext({ body: null as (() => unknown) | null });
const watchdogScript = new vm.Script('body()');

function runWithDeadline<T>(body: () => T, ms: number): T {
  watchdogContext.body = body;
  try {
    return watchdogScript.runInContext(watchdogContext, { timeout: ms }) as T;
  } catch (e) {
    if ((e as { code?: unknown } | null)?.code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') {
      throw new UnderstudyError('ERR_GUEST_HANG', `the guest ran ${ms} ms without returning or reaching a safe point; stopped by the watchdog`);
    }
    throw e;
  } finally {
    watchdogContext.body = null;
  }
}

type SafePointTask = (guest: Guest) => unknown;

const WASI_MODULE = 'wasi_snapshot_preview1';

/** Thrown by the `env.abort` import (AssemblyScript's abort) to end the guest. */
class GuestAbort extends Error {}

export class Guest {
  status: GuestStatus = 'ready';
  exitCode: number | null = null;
  /** The wasm stack captured at the current pause (commands), or to rewind into after a restore. */
  private stack: Uint8Array | null = null;
  /** Whether the entry point has been entered (a command that never started has no stack to rewind). */
  private started = false;
  private readonly safePoints: SafePoints | null;
  private readonly yieldEveryMs: number;
  private readonly watchdogMs: number | undefined;
  private nextYieldAtMs = 0;
  private pauseRequested = false;
  private pendingWait: Promise<void> | null = null;
  private readonly tasks: { fn: SafePointTask; resolve: (v: unknown) => void; reject: (e: unknown) => void }[] = [];
  private readonly hooks: SafePointTask[] = [];
  private inCall = false;
  /** Calls into a command guest made from inside one of its hypercalls (callNested); they run straight through. */
  private nestedDepth = 0;
  /** Counts of safe points reached, by reason (for stats and tests). */
  readonly safePointCounts = { yield: 0, pause: 0, wait: 0 };

  private constructor(
    readonly module: GuestModule,
    readonly instance: WebAssembly.Instance,
    readonly memory: WebAssembly.Memory,
    readonly wasi: WasiDevice,
    options: GuestOptions,
  ) {
    this.yieldEveryMs = options.yieldEveryMs ?? YIELD_EVERY_MS_DEFAULT;
    this.watchdogMs = options.watchdogMs;
    this.safePoints = module.layout.asyncify ? new SafePoints(instance.exports, memory, options.stackCaptureBytes ?? STACK_CAPTURE_BYTES_DEFAULT) : null;
    wasi.canSuspend = module.layout.asyncify;
  }

  get exports(): WebAssembly.Exports {
    return this.instance.exports;
  }

  get kind(): 'command' | 'reactor' {
    return this.module.layout.kind;
  }

  /** Instantiates a fresh guest and runs its start function (if any). A reactor is also initialised. */
  static async create(module: GuestModule, options: GuestOptions): Promise<Guest> {
    const guest = await Guest.instantiate(module, options);
    guest.callEntry(module.layout.startExport);
    if (module.layout.kind === 'reactor') guest.callEntry('_initialize');
    return guest;
  }

  /** Instantiates a guest and fills it from saved state: `fillMemory` writes the memory image. No guest code runs. */
  static async restore(module: GuestModule, options: GuestOptions, vcpu: VcpuState, fillMemory: (memory: Uint8Array) => void): Promise<Guest> {
    const guest = await Guest.instantiate(module, options);
    applyVcpuState(guest, vcpu, fillMemory);
    guest.stack = vcpu.stack;
    guest.started = vcpu.started;
    return guest;
  }

  /**
   * restore() without waiting: instantiates synchronously (the module is
   * already compiled). A promoted replication backup turns its memory image
   * into a live guest inside one protocol step, with no await in between.
   */
  static restoreSync(module: GuestModule, options: GuestOptions, vcpu: VcpuState, fillMemory: (memory: Uint8Array) => void): Guest {
    const linking = Guest.link(module, options);
    const guest = linking.finish(new WebAssembly.Instance(module.compiled, linking.imports));
    applyVcpuState(guest, vcpu, fillMemory);
    guest.stack = vcpu.stack;
    guest.started = vcpu.started;
    return guest;
  }

  private static async instantiate(module: GuestModule, options: GuestOptions): Promise<Guest> {
    const linking = Guest.link(module, options);
    return linking.finish(await WebAssembly.instantiate(module.compiled, linking.imports));
  }

  /** The imports of one instance, and how to finish a Guest once the instance exists. */
  private static link(module: GuestModule, options: GuestOptions): { imports: WebAssembly.Imports; finish: (instance: WebAssembly.Instance) => Guest } {
    const { layout } = module;
    let memory: WebAssembly.Memory | null = null;
    let guest: Guest | null = null;
    const imports: WebAssembly.Imports = {};
    const lateGuest = (): Guest => {
      assert(guest !== null, 'import called during instantiation');
      return guest;
    };
    if (layout.memory.import) {
      const desc: WebAssembly.MemoryDescriptor = { initial: layout.memory.initialPages };
      if (layout.memory.maxPages !== null) desc.maximum = layout.memory.maxPages;
      memory = new WebAssembly.Memory(desc);
      imports[layout.memory.import.module] = { [layout.memory.import.name]: memory };
    }
    const wasiImports = options.wasi.imports;
    const missing: string[] = [];
    for (const imp of WebAssembly.Module.imports(module.compiled)) {
      if (imp.kind !== 'function') continue;
      const ns = (imports[imp.module] ??= {}) as Record<string, unknown>;
      if (imp.module === WASI_MODULE) {
        const fn = wasiImports[imp.name];
        if (!fn) {
          missing.push(`${imp.module}.${imp.name}`);
          continue;
        }
        const safe = layout.asyncify && isSafePointImport(imp.module, imp.name);
        const zero = zeroOf(layout.importResults[`${imp.module}.${imp.name}`]);
        ns[imp.name] = safe ? (...args: unknown[]) => lateGuest().safePointCall(fn, args, zero) : fn;
      } else if (imp.module === 'understudy') {
        const impl = options.hypercalls?.[imp.name] ?? BUILTIN_HYPERCALLS[imp.name];
        if (!impl) {
          missing.push(`${imp.module}.${imp.name}`);
          continue;
        }
        const hyper = (...args: unknown[]) => impl(lateGuest(), ...args);
        const zero = zeroOf(layout.importResults[`${imp.module}.${imp.name}`]);
        ns[imp.name] = layout.asyncify ? (...args: unknown[]) => lateGuest().safePointCall(hyper, args, zero) : hyper;
      } else if (imp.module === EMUL_IMPORT_MODULE && imp.name === EMUL_IMPORT_NAME && options.storeRecorder) {
        ns[imp.name] = options.storeRecorder;
      } else if (imp.module === 'env' && imp.name === 'abort') {
        ns[imp.name] = (msg: number, file: number, line: number, col: number) => {
          throw new GuestAbort(`guest aborted: ${readAsString(lateGuest().memory, msg)} at ${readAsString(lateGuest().memory, file)}:${line}:${col}`);
        };
      } else {
        missing.push(`${imp.module}.${imp.name}`);
      }
    }
    if (missing.length) throw new UnderstudyError('ERR_MODULE_UNSUPPORTED', `the guest imports what understudy does not provide: ${missing.join(', ')}`);
    const finish = (instance: WebAssembly.Instance): Guest => {
      if (!memory) {
        const exported = instance.exports[layout.memory.exportName ?? ''];
        if (!(exported instanceof WebAssembly.Memory)) throw new UnderstudyError('ERR_MODULE_INVALID', 'the guest exports no memory');
        memory = exported;
      }
      options.wasi.bindMemory(memory);
      guest = new Guest(module, instance, memory, options.wasi, options);
      return guest;
    };
    return { imports, finish };
  }

  private callEntry(name: string | null): void {
    if (!name) return;
    const fn = this.exports[name];
    if (typeof fn !== 'function') return;
    this.guarded(() => (fn as () => void)());
  }

  /** Runs guest code, turning traps into ERR_GUEST_TRAP and marking the guest crashed. */
  private guarded<T>(body: () => T): T {
    try {
      return this.watchdogMs === undefined ? body() : runWithDeadline(body, this.watchdogMs);
    } catch (e) {
      if (e instanceof ProcExit) throw e;
      this.status = 'crashed';
      if (e instanceof UnderstudyError && DETECTED_CODES.has(e.code)) throw e;
      if (this.safePoints?.busy && this.safePoints.state() === AsyncifyState.Unwinding)
        throw new UnderstudyError('ERR_STACK_OVERFLOW', 'the guest stack is too deep to capture; raise the stack capture size', { cause: e });
      const what = e instanceof GuestAbort ? e.message : `guest trapped: ${e instanceof Error ? e.message : String(e)}`;
      throw new UnderstudyError('ERR_GUEST_TRAP', what, { cause: e });
    }
  }

  /** The wrapper around every safe-point import of a command guest. */
  /** `zero`: what the call answers while the guest unwinds (ignored by the guest, but it must have the import's type). */
  private safePointCall(fn: (...a: any[]) => unknown, args: unknown[], zero: 0 | 0n): unknown {
    if (this.nestedDepth > 0) {
      // Inside a nested call the guest's outer stack is live: no unwinding, and no waiting.
      const result = fn(...args);
      if (this.wasi.takeWait()) throw new UnderstudyError('ERR_GUEST_STATE', 'a call made from inside a hypercall tried to block');
      return result;
    }
    const sp = this.safePoints!;
    if (sp.state() === AsyncifyState.Rewinding) {
      sp.finishRewind();
    } else if (this.pauseRequested || performance.now() >= this.nextYieldAtMs) {
      sp.beginUnwind();
      return zero;
    }
    const result = fn(...args);
    const wait = this.wasi.takeWait();
    if (wait) {
      // The call did not happen; it runs again after the rewind.
      this.pendingWait = wait;
      sp.beginUnwind();
      return zero;
    }
    return result;
  }

  /** Runs a command guest to its end; resolves with the exit code. */
  async run(): Promise<number> {
    if (this.kind !== 'command') throw new UnderstudyError('ERR_GUEST_EXPORT', 'run() is for command guests; call handlers of a reactor');
    if (this.status !== 'ready') throw new UnderstudyError('ERR_GUEST_STATE', `guest is ${this.status}, not ready to run`);
    const start = this.exports._start as () => void;
    this.status = 'running';
    const sp = this.safePoints;
    if (!sp) return this.runWithoutSafePoints(start);
    for (;;) {
      this.nextYieldAtMs = performance.now() + this.yieldEveryMs;
      if (this.started && this.stack) sp.beginRewind(this.stack);
      this.stack = null;
      this.started = true;
      try {
        this.guarded(start);
      } catch (e) {
        if (e instanceof ProcExit) return this.finish(e.exitCode);
        await this.failTasks(e);
        throw e;
      }
      if (sp.state() !== AsyncifyState.Unwinding) return this.finish(0);
      this.stack = sp.finishUnwind();
      this.status = 'paused';
      const wait = this.pendingWait;
      this.pendingWait = null;
      if (wait) this.safePointCounts.wait++;
      else if (this.pauseRequested) this.safePointCounts.pause++;
      else this.safePointCounts.yield++;
      this.pauseRequested = false;
      await this.runSafePoint(wait);
      this.status = 'running';
    }
  }

  /** A command rewritten without safe points runs straight through (the benchmarks' baseline). */
  private runWithoutSafePoints(start: () => void): number {
    this.started = true;
    try {
      this.guarded(start);
    } catch (e) {
      if (e instanceof ProcExit) return this.finish(e.exitCode);
      throw e;
    }
    return this.finish(0);
  }

  private finish(code: number): number {
    this.status = 'exited';
    this.exitCode = code;
    void this.failTasks(new UnderstudyError('ERR_GUEST_STATE', `guest exited with code ${code} before reaching a safe point`));
    return code;
  }

  private async failTasks(e: unknown): Promise<void> {
    for (const t of this.tasks.splice(0)) t.reject(e);
  }

  private async runSafePoint(wait: Promise<void> | null): Promise<void> {
    if (wait) await wait;
    else await new Promise<void>((r) => setImmediate(r));
    for (const hook of this.hooks) await hook(this);
    while (this.tasks.length) {
      const t = this.tasks.shift()!;
      try {
        t.resolve(await t.fn(this));
      } catch (e) {
        t.reject(e);
      }
    }
  }

  /**
   * From inside a hypercall of a command guest that can suspend: the call does not
   * complete now; the guest stops at it, the host awaits `p`, and the same call runs
   * again after the rewind. Returns false (nothing recorded) when this guest cannot
   * suspend (a reactor, or a command rewritten without safe points).
   */
  suspendHostCall(p: Promise<void>): boolean {
    if (!this.wasi.canSuspend) return false;
    this.wasi.recordWait(p);
    return true;
  }

  /** Registers work to run at every safe point (e.g. a checkpoint policy). */
  onSafePoint(hook: SafePointTask): void {
    this.hooks.push(hook);
  }

  /** Runs `fn` while the guest is stopped at a safe point: now if it is not running, else at the next one. */
  atSafePoint<T>(fn: (guest: Guest) => T | Promise<T>): Promise<T> {
    if (this.status === 'exited' || this.status === 'crashed') return Promise.reject(new UnderstudyError('ERR_GUEST_STATE', `guest is ${this.status}`));
    if (this.status === 'running' && this.kind === 'command') {
      return new Promise<T>((resolve, reject) => {
        this.tasks.push({ fn, resolve: resolve as (v: unknown) => void, reject });
        this.pauseRequested = true;
      });
    }
    assert(!this.inCall, 'a reactor call is in progress');
    return Promise.resolve().then(() => fn(this));
  }

  /** True when the guest's whole state may be read: stopped at a safe point, not started, or between reactor calls. */
  get atRest(): boolean {
    if (this.status === 'crashed' || this.status === 'exited') return false;
    if (this.kind === 'reactor') return !this.inCall;
    return this.status === 'paused' || this.status === 'ready';
  }

  /** The vCPU state (globals, tables, captured stack). Only at rest. */
  captureVcpu(): VcpuState {
    if (!this.atRest) throw new UnderstudyError('ERR_GUEST_NOT_AT_SAFE_POINT', `guest is ${this.status}; state can only be captured at a safe point`);
    return captureVcpuState(this, this.stack, this.started);
  }

  /**
   * In-place rollback of the vCPU (globals, tables, captured stack) to a state
   * this guest captured earlier; memory and devices are the caller's. Clears a
   * half-done Asyncify unwind or rewind and any pending wait; the guest is
   * 'ready' again (a command continues with run(), rewinding into the stack).
   * Validated before anything changes (ERR_CKPT_MODULE_MISMATCH).
   */
  rollbackVcpu(vcpu: VcpuState): void {
    assert(!this.inCall, 'rollback during a reactor call');
    this.safePoints?.reset();
    applyVcpuState(this, vcpu, () => undefined, { inPlace: true });
    this.stack = vcpu.stack;
    this.started = vcpu.started;
    this.pendingWait = null;
    this.pauseRequested = false;
    this.wasi.takeWait();
    this.status = 'ready';
    this.exitCode = null;
  }

  // ---- reactors ----

  /** Calls an export of a reactor guest. */
  call(name: string, ...args: (number | bigint)[]): unknown {
    if (this.kind !== 'reactor') throw new UnderstudyError('ERR_GUEST_EXPORT', 'call() is for reactor guests');
    if (this.status === 'crashed' || this.status === 'exited') throw new UnderstudyError('ERR_GUEST_STATE', `guest is ${this.status}`);
    const fn = this.exports[name];
    if (typeof fn !== 'function') throw new UnderstudyError('ERR_GUEST_EXPORT', `guest has no export ${name}`);
    assert(!this.inCall, 'reentrant reactor call');
    this.inCall = true;
    try {
      return this.guarded(() => (fn as (...a: unknown[]) => unknown)(...args));
    } catch (e) {
      if (e instanceof ProcExit) {
        this.status = 'exited';
        this.exitCode = e.exitCode;
        throw new UnderstudyError('ERR_GUEST_STATE', `guest called proc_exit(${e.exitCode}) in ${name}`);
      }
      throw e;
    } finally {
      this.inCall = false;
    }
  }

  /** True when the module imports `understudy.<name>`. */
  importsHypercall(name: string): boolean {
    return WebAssembly.Module.imports(this.module.compiled).some((i) => i.kind === 'function' && i.module === 'understudy' && i.name === name);
  }

  /**
   * Calls an export of a running command guest from inside one of its hypercalls (the guest asked
   * for it, e.g. the balloon SDK's poll: its allocator is idle there). The call runs on top of the
   * guest's live stack, as a callback would; safe points inside it neither stop nor wait.
   */
  callNested(name: string, ...args: (number | bigint)[]): unknown {
    if (this.kind !== 'command' || this.status !== 'running') throw new UnderstudyError('ERR_GUEST_STATE', 'callNested() is for a running command guest, from inside its hypercall');
    const fn = this.exports[name];
    if (typeof fn !== 'function') throw new UnderstudyError('ERR_GUEST_EXPORT', `guest has no export ${name}`);
    this.nestedDepth++;
    try {
      return (fn as (...a: unknown[]) => unknown)(...args);
    } finally {
      this.nestedDepth--;
    }
  }

  /** Sends one request to a reactor handler using the request-buffer ABI (guests/sdk/understudy.h). */
  request(handler: string, body: Uint8Array): Uint8Array {
    const ptr = Number(this.call('us_request_buffer', body.length));
    checkRange(this.memory, ptr, body.length, 'request buffer');
    new Uint8Array(this.memory.buffer).set(body, ptr);
    const packed = this.call(handler, body.length);
    if (typeof packed !== 'bigint') throw new UnderstudyError('ERR_GUEST_EXPORT', `handler ${handler} must return i64 (pointer << 32 | length)`);
    const respPtr = Number(packed >> 32n) >>> 0;
    const respLen = Number(packed & 0xffffffffn);
    checkRange(this.memory, respPtr, respLen, 'response');
    return new Uint8Array(this.memory.buffer, respPtr, respLen).slice();
  }
}

function checkRange(memory: WebAssembly.Memory, ptr: number, len: number, what: string): void {
  if (!Number.isInteger(ptr) || ptr < 0 || ptr + len > memory.buffer.byteLength)
    throw new UnderstudyError('ERR_GUEST_STATE', `${what} [${ptr}, +${len}) lies outside guest memory`);
}

/** The zero of an import's result type (an i64 result must be a BigInt). */
function zeroOf(type: string | null | undefined): 0 | 0n {
  return type === 'i64' ? 0n : 0;
}

function isSafePointImport(module: string, name: string): boolean {
  return SAFE_POINT_IMPORTS.some((s) => s === `${module}.${name}` || s === `${module}.*`);
}

/** Hypercalls every guest may import from the `understudy` module. */
const BUILTIN_HYPERCALLS: Hypercalls = {
  // A pure safe point: lets a long computation that makes no other host
  // call be checkpointed. Costs one call when nothing is pending.
  safepoint: () => undefined,
  // Ballooning (src/balloon/): the guest hands free pages over, takes them back, reports freed ones.
  ...BALLOON_HYPERCALLS,
  ...BALLOON_POLL_HYPERCALLS,
  // The guest found its own state broken (guests/sdk/understudy.h). Under
  // rollback this is a detection and the guest is rolled back; otherwise it ends.
  report_error: (_guest: Guest, code: number) => {
    throw new UnderstudyError('ERR_GUEST_REPORTED', `the guest reported error ${code} through understudy.report_error`);
  },
};

/** Reads an AssemblyScript string (UTF-16, length in the header 4 bytes before). */
function readAsString(memory: WebAssembly.Memory, ptr: number): string {
  if (!ptr || ptr < 4 || ptr > memory.buffer.byteLength) return '?';
  const len = new DataView(memory.buffer).getUint32(ptr - 4, true);
  if (ptr + len > memory.buffer.byteLength || len > 4096) return '?';
  return Buffer.from(new Uint8Array(memory.buffer, ptr, len)).toString('utf16le');
}
