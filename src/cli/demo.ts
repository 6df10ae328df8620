// `understudy demo`: the embedded default job. An example guest (heapwalk, a
// C program with a pointer-rich heap) runs under understudy while checkpoints
// are taken; then one of them is restored in a fresh process, which carries
// on, and its output is checked against the run that was never stopped.
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
import { formatBytes } from './options.js';

const PACKAGE_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const DEMO_GUEST = path.join(PACKAGE_ROOT, 'guests', 'out', 'heapwalk.wasm');
const CLI = fileURLToPath(new URL('./main.js', import.meta.url));

export interface DemoOptions {
  mib: number;
  rounds: number;
  everyMs: number;
  dir?: string;
}

export async function runDemo(o: DemoOptions, say: (s: string) => void = (s) => process.stderr.write(s + '\n')): Promise<boolean> {
  if (!fs.existsSync(DEMO_GUEST)) throw new UnderstudyError('ERR_USAGE', `the demo guest is not built (${DEMO_GUEST}); run ./scripts/setup`);
  const dir = o.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-demo-'));
  const ckptDir = path.join(dir, 'checkpoints');
  const module = await loadGuestModule(DEMO_GUEST);
  say(`understudy demo: heapwalk (${o.mib} MiB heap, ${o.rounds} rounds) runs under understudy, checkpointed every ${o.everyMs} ms into ${ckptDir}`);
  say(`  module rewritten for safe points ${module.rewrite.cached ? '(from cache)' : `in ${module.rewrite.rewriteMs.toFixed(0)} ms`}: ${formatBytes(module.rewrite.originalBytes)} -> ${formatBytes(module.rewrite.rewrittenBytes)}`);
  const chunks: Buffer[] = [];
  const tee: OutputTarget = {
    write(stream, bytes) {
      if (stream === 'stdout') chunks.push(Buffer.from(bytes));
      (stream === 'stdout' ? process.stdout : process.stderr).write(bytes);
    },
  };
  const started = performance.now();
  const result = await startSession({
    module,
    args: ['heapwalk', String(o.mib), String(o.rounds), '/out/heapwalk.txt'],
    env: [],
    preopens: [{ guestPath: '/out' }],
    stdin: new BytesInput(new Uint8Array(0)),
    outputTarget: tee,
    checkpointDir: ckptDir,
    checkpointEveryMs: o.everyMs,
    keep: 1000,
    onCheckpoint: (t) => say(`  [checkpoint ${t.meta.sequence}] ${formatBytes(t.fileBytes)} written in ${t.pauseMs.toFixed(1)} ms (guest paused), after ${t.meta.output.stdoutBytes} bytes of output`),
  });
  const full = Buffer.concat(chunks);
  say(`  guest exited with code ${result.exitCode} after ${((performance.now() - started) / 1000).toFixed(2)} s, ${result.checkpoints.length} checkpoints`);
  if (result.checkpoints.length === 0) {
    say('  no checkpoint was taken (the run was shorter than the interval); try --every-ms smaller');
    return false;
  }
  const pick = result.checkpoints[Math.floor(result.checkpoints.length / 2)]!;
  say(`\nrestoring checkpoint ${pick.meta.sequence} in a fresh process: understudy restore ${pick.path}`);
  const child = spawnSync(process.execPath, [CLI, 'restore', pick.path, '--quiet'], { encoding: 'buffer', stdio: ['ignore', 'pipe', 'inherit'] });
  process.stdout.write(child.stdout);
  if (child.status !== 0) {
    say(`  the restored process failed with status ${child.status}`);
    return false;
  }
  const prefix = full.subarray(0, pick.meta.output.stdoutBytes);
  const combined = Buffer.concat([prefix, child.stdout]);
  const same = combined.equals(full);
  say(
    same
      ? `\nOK: output before the checkpoint (${prefix.length} B) + the restored process's output (${child.stdout.length} B) is byte-identical to the uninterrupted run (${full.length} B).`
      : `\nMISMATCH: the restored run's output differs from the uninterrupted run.`,
  );
  return same;
}
