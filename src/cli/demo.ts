// `understudy demo`: the embedded default job. An example guest (heapwalk, a
// C program with a pointer-rich heap) runs under understudy with incremental
// checkpoints (an epoch every few ms, tracked by the kernel); then one epoch
// of the chain is restored in a fresh process, which carries on, and its
// output is checked against the run that was never stopped.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadGuestModule } from '../guest/module.js';
import { BytesInput } from '../io/input.js';
import type { OutputTarget } from '../output/gate.js';
import { startSession } from '../runtime/session.js';
import { UnderstudyError } from '../errors.js';
import { openChainPoint } from '../checkpoint/chain.js';
import { formatBytes } from './options.js';

const PACKAGE_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const DEMO_GUEST = path.join(PACKAGE_ROOT, 'guests', 'out', 'heapwalk.wasm');
const CLI = fileURLToPath(new URL('./main.js', import.meta.url));

export interface DemoOptions {
  mib: number;
  rounds: number;
  /** Epoch length of the incremental checkpoints. */
  epochMs: number;
  dir?: string;
}

export async function runDemo(o: DemoOptions, say: (s: string) => void = (s) => process.stderr.write(s + '\n')): Promise<boolean> {
  if (!fs.existsSync(DEMO_GUEST)) throw new UnderstudyError('ERR_USAGE', `the demo guest is not built (${DEMO_GUEST}); run ./scripts/setup`);
  const dir = o.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-demo-'));
  const chain = path.join(dir, 'chain');
  const module = await loadGuestModule(DEMO_GUEST);
  say(`understudy demo: heapwalk (${o.mib} MiB heap, ${o.rounds} rounds) runs under understudy with incremental checkpoints every ${o.epochMs} ms into ${chain}`);
  say(`  module rewritten for safe points ${module.rewrite.cached ? '(from cache)' : `in ${module.rewrite.rewriteMs.toFixed(0)} ms`}: ${formatBytes(module.rewrite.originalBytes)} -> ${formatBytes(module.rewrite.rewrittenBytes)}`);
  const chunks: Buffer[] = [];
  const tee: OutputTarget = {
    write(stream, bytes) {
      if (stream === 'stdout') chunks.push(Buffer.from(bytes));
      (stream === 'stdout' ? process.stdout : process.stderr).write(bytes);
    },
  };
  const started = performance.now();
  let shown = 0;
  const result = await startSession({
    module,
    args: ['heapwalk', String(o.mib), String(o.rounds), '/out/heapwalk.txt'],
    env: [],
    preopens: [{ guestPath: '/out' }],
    stdin: new BytesInput(new Uint8Array(0)),
    outputTarget: tee,
    checkpointDir: chain,
    epochMs: o.epochMs,
    keep: 100_000,
    log: (line) => say(`  ${line}`),
    onEpoch: (e) => {
      // One line in five: enough to see the epochs go by.
      if (shown++ % 5 === 0)
        say(`  [epoch ${e.sequence}] guest paused ${e.pauseMs.toFixed(2)} ms for ${e.listedPages} dirty pages; ${formatBytes(e.listedPages * 4096)} -> ${formatBytes(e.counts.bytes)} as byte runs -> ${formatBytes(e.storedBytes)} stored`);
    },
  });
  const full = Buffer.concat(chunks);
  const epochs = result.epochs;
  const pauses = epochs.map((e) => e.pauseMs).sort((a, b) => a - b);
  const dirty = epochs.reduce((n, e) => n + e.listedPages * 4096, 0);
  const stored = epochs.reduce((n, e) => n + e.storedBytes, 0);
  say(`  guest exited with code ${result.exitCode} after ${((performance.now() - started) / 1000).toFixed(2)} s: ${epochs.length} epochs, median pause ${(pauses[pauses.length >> 1] ?? 0).toFixed(2)} ms, ${formatBytes(dirty)} of dirty pages stored as ${formatBytes(stored)}`);
  if (epochs.length < 2) {
    say('  too few epochs were taken (the run was shorter than the interval); try a smaller --epoch-ms');
    return false;
  }
  const pick = epochs[Math.floor(epochs.length / 2)]!.sequence;
  say(`\nrestoring epoch ${pick} of the chain in a fresh process: understudy restore ${chain} --sequence ${pick}`);
  const child = spawnSync(process.execPath, [CLI, 'restore', chain, '--sequence', String(pick), '--quiet'], { encoding: 'buffer', stdio: ['ignore', 'pipe', 'inherit'] });
  process.stdout.write(child.stdout);
  if (child.status !== 0) {
    say(`  the restored process failed with status ${child.status}`);
    return false;
  }
  const before = openChainPoint(chain, pick);
  const beforeBytes = before.meta.output.stdoutBytes;
  before.close();
  const prefix = full.subarray(0, beforeBytes);
  const combined = Buffer.concat([prefix, child.stdout]);
  const same = combined.equals(full);
  say(
    same
      ? `\nOK: output before the checkpoint (${prefix.length} B) + the restored process's output (${child.stdout.length} B) is byte-identical to the uninterrupted run (${full.length} B).`
      : `\nMISMATCH: the restored run's output differs from the uninterrupted run.`,
  );
  return same;
}
