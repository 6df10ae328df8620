// Load-time rewriting of a guest module with Binaryen, so the host can save
// and restore everything the guest holds:
//   - every defined global is exported (`__us_g<i>`), so the host can read and
//     write it (the "vCPU registers");
//   - every table is exported (`__us_t<i>`), and every function that can ever
//     sit in a table (all element-segment entries) is exported (`__us_f<k>`),
//     so a table's contents can be saved as indices k and put back;
//   - the memory is exported (`__us_memory`) if the module does not do so;
//   - a start function is taken out of the start section and exported
//     (`__us_start`), so instantiating for a restore runs no guest code;
//   - command guests only: Asyncify, limited to the host imports that are
//     safe points, so a guest can be stopped at a host call and its wasm
//     stack captured (the "safe point at host calls").
// The rewrite is a pure function of (module bytes, REWRITE_VERSION, options);
// its result is cached on disk by that key (rewrite-cache.ts).
import binaryen from 'binaryen';
import { UnderstudyError } from '../errors.js';
import type { Plain } from '../util/plain.js';
import { instrumentStores } from '../cda/instrument.js';

/** Bump when the rewrite's output or layout changes: old cache entries and checkpoints no longer match. */
export const REWRITE_VERSION = 3;

/** Host imports at which a command guest can be stopped. Every function that can reach one of these
 * (directly or through an indirect call) is instrumented by Asyncify; the rest run untouched. */
export const SAFE_POINT_IMPORTS: readonly string[] = [
  'wasi_snapshot_preview1.fd_write',
  'wasi_snapshot_preview1.fd_read',
  'wasi_snapshot_preview1.fd_pwrite',
  'wasi_snapshot_preview1.fd_pread',
  'wasi_snapshot_preview1.poll_oneoff',
  'wasi_snapshot_preview1.sched_yield',
  // Programs that compute for long stretches still look at the clock now and then.
  'wasi_snapshot_preview1.clock_time_get',
  'understudy.*',
];

export type GuestKind = 'command' | 'reactor';
export type ValueType = 'i32' | 'i64' | 'f32' | 'f64';

export interface GuestLayout {
  kind: GuestKind;
  /** Export name of the memory (null when imported and not exported: the host made it), and its import. */
  memory: { exportName: string | null; import: { module: string; name: string } | null; initialPages: number; maxPages: number | null };
  /** Defined globals in index order. Immutable ones are listed for completeness but never written. */
  globals: { exportName: string; type: ValueType; mutable: boolean }[];
  tables: { exportName: string }[];
  /** Export names of the functions that may appear in tables; a table entry is saved as an index into this list. */
  tableFunctions: string[];
  startExport: string | null;
  asyncify: boolean;
  /** Stores report to the critical-data-area service (src/cda/instrument.ts; mode emul). Absent in older cache entries: false. */
  cdaStores?: boolean;
  /** Result type of each imported function, by "module.name" (null: none). A stopped call answers its zero. */
  importResults: Record<string, ValueType | null>;
}

export interface RewriteResult {
  bytes: Uint8Array;
  layout: GuestLayout;
  stats: { originalBytes: number; rewrittenBytes: number; rewriteMs: number };
}

export interface RewriteOptions {
  /** Force a kind (default: command if `_start` is exported, else reactor). */
  kind?: GuestKind;
  /** Run Binaryen's optimiser after Asyncify (default true: unoptimised Asyncify output is much slower). */
  optimize?: boolean;
  /** Command guests: instrument for safe points (default true). Without, a command runs to its end and
   * can be checkpointed only before it starts; this is the baseline the benchmarks compare against. */
  safePoints?: boolean;
  /** Instrument every memory write to report its address and length (critical data areas, mode emul). Default false. */
  cdaStores?: boolean;
}

/** Features V8 in Node 20 runs without flags; the rewrite must not emit anything newer. */
const FEATURES =
  binaryen.Features.MutableGlobals |
  binaryen.Features.NontrappingFPToInt |
  binaryen.Features.SignExt |
  binaryen.Features.SIMD128 |
  binaryen.Features.BulkMemory |
  binaryen.Features.BulkMemoryOpt |
  binaryen.Features.ReferenceTypes |
  binaryen.Features.Multivalue;

function valueType(t: number): ValueType | null {
  if (t === binaryen.i32) return 'i32';
  if (t === binaryen.i64) return 'i64';
  if (t === binaryen.f32) return 'f32';
  if (t === binaryen.f64) return 'f64';
  return null;
}

function unsupported(what: string): never {
  throw new UnderstudyError('ERR_MODULE_UNSUPPORTED', what);
}

export function rewriteModule(original: Uint8Array, options: RewriteOptions = {}): RewriteResult {
  const started = performance.now();
  if (!WebAssembly.validate(original as Uint8Array<ArrayBuffer>)) throw new UnderstudyError('ERR_MODULE_INVALID', 'not a valid WebAssembly module');
  const compiled = new WebAssembly.Module(original as Uint8Array<ArrayBuffer>);
  const exportNames = new Set(WebAssembly.Module.exports(compiled).map((e) => e.name));
  const imports = WebAssembly.Module.imports(compiled);
  for (const imp of imports) {
    if (imp.kind === 'global') unsupported(`imported global ${imp.module}.${imp.name} is not supported (its value could not be saved)`);
    if (imp.kind === 'table') unsupported(`imported table ${imp.module}.${imp.name} is not supported`);
  }
  const kind: GuestKind = options.kind ?? (exportNames.has('_start') ? 'command' : 'reactor');
  if (kind === 'command' && !exportNames.has('_start')) throw new UnderstudyError('ERR_GUEST_EXPORT', 'a command guest must export _start');

  const m = binaryen.readBinary(original);
  try {
    m.setFeatures(FEATURES);
    // Memory.
    if (!m.hasMemory()) unsupported('the module has no memory');
    const memInfo = m.getMemoryInfo();
    if (memInfo.shared) unsupported('shared memory (threads) is not supported');
    if (memInfo.is64) unsupported('memory64 is not supported');
    const memImport = imports.find((i) => i.kind === 'memory');
    let memoryExport: string | null = null;
    const existingExports: { kind: number; name: string; value: string }[] = [];
    for (let i = 0; i < m.getNumExports(); i++) existingExports.push(binaryen.getExportInfo(m.getExportByIndex(i)));
    const memExp = existingExports.find((e) => e.kind === binaryen.ExternalMemory);
    if (memExp) memoryExport = memExp.name;
    else if (!memImport) {
      memoryExport = '__us_memory';
      m.addMemoryExport('0', memoryExport);
    }

    // Globals (before Asyncify adds its own, which are not guest state).
    const globals: GuestLayout['globals'] = [];
    for (let i = 0; i < m.getNumGlobals(); i++) {
      const g = binaryen.getGlobalInfo(m.getGlobalByIndex(i));
      if (g.module) continue; // imports refused above
      const t = valueType(g.type);
      if (t === null) {
        if (g.mutable) unsupported(`mutable global ${g.name} has a type the host cannot read (v128 or reference)`);
        continue; // immutable: fixed by the module itself
      }
      const exportName = `__us_g${i}`;
      m.addGlobalExport(g.name, exportName);
      globals.push({ exportName, type: t, mutable: g.mutable });
    }

    // Tables and every function that may be placed in one.
    const tables: GuestLayout['tables'] = [];
    for (let i = 0; i < m.getNumTables(); i++) {
      const t = binaryen.getTableInfo(m.getTableByIndex(i));
      const exportName = `__us_t${i}`;
      m.addTableExport(t.name, exportName);
      tables.push({ exportName });
    }
    const tableFunctionNames: string[] = [];
    const seen = new Set<string>();
    for (let i = 0; i < m.getNumElementSegments(); i++) {
      for (const name of binaryen.getElementSegmentInfo(m.getElementSegmentByIndex(i)).data) {
        if (!seen.has(name)) {
          seen.add(name);
          tableFunctionNames.push(name);
        }
      }
    }
    const tableFunctions = tableFunctionNames.map((name, k) => {
      const exportName = `__us_f${k}`;
      m.addFunctionExport(name, exportName);
      return exportName;
    });

    // Start function: run by the host on a fresh start only.
    let startExport: string | null = null;
    const start = m.getStart();
    if (start) {
      startExport = '__us_start';
      m.addFunctionExport(binaryen.getFunctionInfo(start).name, startExport);
      m.setStart(0 as unknown as binaryen.FunctionRef);
    }

    // Before Asyncify: its own stores (into the unwind buffer) are not the guest's.
    if (options.cdaStores) instrumentStores(m);

    const importResults: Record<string, ValueType | null> = {};
    for (let i = 0; i < m.getNumFunctions(); i++) {
      const f = binaryen.getFunctionInfo(m.getFunctionByIndex(i));
      if (f.module) importResults[`${f.module}.${f.base}`] = f.results === binaryen.none ? null : valueType(f.results);
    }

    const asyncify = kind === 'command' && (options.safePoints ?? true);
    if (asyncify) {
      binaryen.setPassArgument('asyncify-imports', SAFE_POINT_IMPORTS.join(','));
      m.runPasses(['asyncify']);
      binaryen.setPassArgument('asyncify-imports', null);
      if (options.optimize ?? true) {
        binaryen.setOptimizeLevel(2);
        binaryen.setShrinkLevel(0);
        m.optimize();
      }
    }
    if (!m.validate()) throw new UnderstudyError('ERR_MODULE_INVALID', 'the rewritten module does not validate (please report this module)');
    const bytes = m.emitBinary();
    const layout: GuestLayout = {
      kind,
      memory: {
        exportName: memoryExport,
        import: memImport ? { module: memImport.module, name: memImport.name } : null,
        initialPages: memInfo.initial,
        maxPages: memInfo.max ?? null,
      },
      globals,
      tables,
      tableFunctions,
      startExport,
      asyncify,
      cdaStores: options.cdaStores ?? false,
      importResults,
    };
    return { bytes, layout, stats: { originalBytes: original.length, rewrittenBytes: bytes.length, rewriteMs: performance.now() - started } };
  } finally {
    m.dispose();
  }
}

export function layoutToPlain(layout: GuestLayout): Plain {
  return JSON.parse(JSON.stringify(layout)) as Plain;
}
