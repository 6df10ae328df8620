// `understudy inspect <file>`: what a checkpoint holds, its sizes, and whether
// every section verifies.
import { MEMORY_PAGE_BYTES, SectionKind } from '../checkpoint/format.js';
import { CheckpointFile } from '../checkpoint/file.js';
import { metaFromPlain } from '../checkpoint/snapshot.js';
import { decodePlain } from '../checkpoint/plain-codec.js';
import { vcpuFromPlain } from '../guest/persist.js';
import type { Plain } from '../util/plain.js';
import { formatBytes } from './options.js';
import fs from 'node:fs';
import { scanChain } from '../checkpoint/chain.js';
import { readRecordPayload } from '../checkpoint/delta-log.js';

export interface InspectReport {
  path: string;
  format: string;
  fileBytes: number;
  sections: { kind: string; offset: number; length: number; checksumOk: boolean | null }[];
  meta: Record<string, unknown> | null;
  vcpu: { memoryPages: number; globals: number; tables: number[]; stackBytes: number | null; started: boolean } | null;
  devices: { fds: number | null; files: number | null } | null;
  /** Configured memory against what the file stores (sparse: only present, non-zero pages). */
  /** runPages: pages stored as their non-zero runs (MemoryRuns), within storedBytes. */
  memory: { form: 'dense' | 'sparse'; configuredBytes: number; storedBytes: number; extents: number; runPages: number } | null;
  ok: boolean;
  problems: string[];
}

function count(p: Plain | undefined, key: string): number | null {
  if (p && typeof p === 'object' && !Array.isArray(p) && !(p instanceof Uint8Array)) {
    const v = (p as Record<string, Plain>)[key];
    if (Array.isArray(v)) return v.length;
  }
  return null;
}

export function inspectCheckpoint(filePath: string, verify = true): InspectReport {
  const file = CheckpointFile.open(filePath);
  const problems: string[] = [];
  try {
    const sections = file.layout.sections.map((s) => {
      const checksumOk = verify ? file.verify(s) : null;
      const kind = SectionKind[s.kind] ?? `unknown(${s.kind})`;
      if (checksumOk === false) problems.push(`${kind} section checksum mismatch`);
      return { kind, offset: s.offset, length: s.length, checksumOk };
    });
    const tryRead = <T>(what: string, f: () => T): T | null => {
      try {
        return f();
      } catch (e) {
        problems.push(`${what}: ${(e as Error).message}`);
        return null;
      }
    };
    const meta = tryRead('metadata', () => metaFromPlain(decodePlain(file.read(SectionKind.Meta))));
    const vcpu = tryRead('vCPU', () => vcpuFromPlain(decodePlain(file.read(SectionKind.Vcpu))));
    const devices = tryRead('devices', () => decodePlain(file.read(SectionKind.Devices)));
    const memory = tryRead('memory', (): InspectReport['memory'] => {
      const dense = file.entry(SectionKind.Memory);
      if (dense) return { form: 'dense', configuredBytes: dense.length, storedBytes: dense.length, extents: 1, runPages: 0 };
      const sparse = file.entry(SectionKind.MemoryPages);
      if (!sparse) return null;
      const head = file.readMemoryPagesHead(sparse);
      const runs = file.entry(SectionKind.MemoryRuns);
      const runPages = runs ? file.readMemoryRunsHead(runs, head.memoryBytes).pages : 0;
      return { form: 'sparse', configuredBytes: head.memoryBytes, storedBytes: head.storedPages * MEMORY_PAGE_BYTES + (runs?.length ?? 0), extents: head.extents.length / 2, runPages };
    });
    const wasi = devices && typeof devices === 'object' && !Array.isArray(devices) && !(devices instanceof Uint8Array) ? (devices as Record<string, Plain>).wasi : undefined;
    const fs = wasi && typeof wasi === 'object' && !Array.isArray(wasi) && !(wasi instanceof Uint8Array) ? (wasi as Record<string, Plain>).fs : undefined;
    return {
      path: filePath,
      format: `${file.layout.major}.${file.layout.minor}`,
      fileBytes: file.layout.fileBytes,
      sections,
      meta: meta as Record<string, unknown> | null,
      vcpu: vcpu && {
        memoryPages: vcpu.memoryPages,
        globals: vcpu.globals.filter((g) => g !== null).length,
        tables: vcpu.tables.map((t) => t.length),
        stackBytes: vcpu.stack ? vcpu.stack.length : null,
        started: vcpu.started,
      },
      devices: devices === null ? null : { fds: count(wasi, 'fds'), files: count(fs, 'inodes') },
      memory,
      ok: problems.length === 0,
      problems,
    };
  } finally {
    file.close();
  }
}

export function formatInspect(r: InspectReport): string {
  const lines: string[] = [];
  lines.push(`${r.path}: understudy checkpoint, format ${r.format}, ${formatBytes(r.fileBytes)}`);
  if (r.meta) {
    const m = r.meta;
    lines.push(`  sequence ${m.sequence}, ${m.guestKind} guest, created ${new Date(Number(m.createdAtMs)).toISOString()}`);
    lines.push(`  module sha256 ${m.moduleSha256}`);
    lines.push(`  memory ${formatBytes(Number(m.memoryBytes))}, restore generation ${m.restoreGeneration}, output so far ${(m.output as { stdoutBytes: number }).stdoutBytes} B stdout, stdin consumed ${m.stdinBytesConsumed} B`);
  }
  if (r.vcpu) {
    lines.push(`  vCPU: ${r.vcpu.globals} mutable globals, tables [${r.vcpu.tables.join(', ')}], ${r.vcpu.stackBytes === null ? 'no captured stack' : `captured stack ${r.vcpu.stackBytes} B`}`);
  }
  if (r.memory) {
    const m = r.memory;
    const share = m.configuredBytes ? ` (${((100 * m.storedBytes) / m.configuredBytes).toFixed(1)} %)` : '';
    lines.push(
      m.form === 'sparse'
        ? `  memory image: ${formatBytes(m.configuredBytes)} configured, ${formatBytes(m.storedBytes)} stored${share} in ${m.extents} extents of whole pages${m.runPages ? ` and ${m.runPages} pages as their non-zero runs` : ''}; the rest reads as zero`
        : `  memory image: ${formatBytes(m.configuredBytes)} configured, stored dense (every byte)`,
    );
  }
  if (r.devices) lines.push(`  devices: ${r.devices.fds ?? '?'} open fds, ${r.devices.files ?? '?'} inodes`);
  lines.push('  sections:');
  for (const s of r.sections) {
    const v = s.checksumOk === null ? 'not verified' : s.checksumOk ? 'ok' : 'CHECKSUM MISMATCH';
    lines.push(`    ${s.kind.padEnd(11)} ${formatBytes(s.length).padStart(10)} at ${String(s.offset).padStart(10)}  ${v}`);
  }
  lines.push(r.ok ? '  verified: ok' : `  PROBLEMS: ${r.problems.join('; ')}`);
  return lines.join('\n');
}

export interface ChainReport {
  dir: string;
  baseSequence: number;
  lastSequence: number;
  base: InspectReport;
  records: { sequence: number; storedBytes: number; rawBytes: number; checksumOk: boolean | null }[];
  stop: string | null;
  ok: boolean;
}

export function inspectChain(dir: string, verify = true): ChainReport {
  const scan = scanChain(dir);
  const base = inspectCheckpoint(scan.basePath, verify);
  const records: ChainReport['records'] = [];
  if (scan.log && scan.logPath) {
    const fd = fs.openSync(scan.logPath, 'r');
    try {
      for (const e of scan.log.entries) {
        let ok: boolean | null = null;
        if (verify) {
          try {
            readRecordPayload(fd, e);
            ok = true;
          } catch {
            ok = false;
          }
        }
        records.push({ sequence: e.sequence, storedBytes: e.storedBytes, rawBytes: e.rawBytes, checksumOk: ok });
      }
    } finally {
      fs.closeSync(fd);
    }
  }
  const stop = scan.stop ? `${scan.stop.torn ? 'torn tail' : 'stops early'}: ${scan.stop.error.message}` : null;
  return {
    dir,
    baseSequence: scan.baseSequence,
    lastSequence: scan.lastSequence,
    base,
    records,
    stop,
    ok: base.ok && records.every((r) => r.checksumOk !== false) && (scan.stop === null || scan.stop.torn),
  };
}

export function formatChain(r: ChainReport): string {
  const lines = [`${r.dir}: checkpoint chain, restore points ${r.baseSequence}..${r.lastSequence}`];
  lines.push(...formatInspect(r.base).split('\n').map((l) => `  ${l}`));
  const stored = r.records.reduce((n, x) => n + x.storedBytes, 0);
  const raw = r.records.reduce((n, x) => n + x.rawBytes, 0);
  lines.push(`  ${r.records.length} delta records: ${formatBytes(stored)} stored (${formatBytes(raw)} before compression)`);
  const bad = r.records.filter((x) => x.checksumOk === false).map((x) => x.sequence);
  if (bad.length) lines.push(`  CORRUPT records: ${bad.join(', ')}`);
  if (r.stop) lines.push(`  log ${r.stop}`);
  lines.push(r.ok ? '  verified: ok' : '  verified: PROBLEMS');
  return lines.join('\n');
}
