// Real C programs (guests/wasi-tests/*.c, wasi-libc) on the device, with
// exact expected output, and where the program is deterministic the same
// stdout as Node's own node:wasi running it on a real temp directory.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { WASI } from 'node:wasi';
import { ProcExit, WasiDevice, type WasiConfig } from './index.js';
import { ScriptedInput, captureSink } from './testkit.js';

// dist-wasi/src/wasi/ → repository root
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const SRC_DIR = path.join(ROOT, 'guests/wasi-tests');
const PREBUILT_DIR = path.join(ROOT, 'guests/out/wasi-tests');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-wasi-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function hasClang(): boolean {
  try {
    execFileSync('clang', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const CLANG = hasClang();

/** The program's wasm: prebuilt by the build script, else compiled here into the temp dir. */
/** The conformance guests are built by scripts/setup; without them (and without clang) the test fails rather than skips. */
function guest(name: string): Uint8Array<ArrayBuffer> {
  const prebuilt = path.join(PREBUILT_DIR, `${name}.wasm`);
  if (fs.existsSync(prebuilt)) return new Uint8Array(fs.readFileSync(prebuilt));
  if (!CLANG) throw new Error(`guests/out/wasi-tests/${name}.wasm is not built and clang is missing: run ./scripts/setup`);
  const out = path.join(tmp, `${name}.wasm`);
  if (!fs.existsSync(out)) {
    execFileSync('clang', ['--target=wasm32-wasi', '-O2', path.join(SRC_DIR, `${name}.c`), '-o', out], { stdio: 'pipe' });
  }
  return new Uint8Array(fs.readFileSync(out));
}

interface Run {
  device: WasiDevice;
  stdout: string;
  stderr: string;
  exitCode: number;
}

async function runOnDevice(bytes: Uint8Array<ArrayBuffer>, config: Partial<WasiConfig>): Promise<Run> {
  const sink = captureSink();
  const device = WasiDevice.create({ args: ['prog'], env: [], preopens: [], output: sink, ...config });
  device.canSuspend = false;
  const { instance } = await WebAssembly.instantiate(bytes, { wasi_snapshot_preview1: device.imports });
  device.bindMemory(instance.exports.memory as WebAssembly.Memory);
  let exitCode = 0;
  try {
    (instance.exports._start as () => void)();
  } catch (e) {
    if (!(e instanceof ProcExit)) throw e;
    exitCode = e.exitCode;
  }
  return { device, stdout: sink.text('stdout'), stderr: sink.text('stderr'), exitCode };
}

async function runOnNode(bytes: Uint8Array<ArrayBuffer>, args: string[], env: Record<string, string>, preopens: Record<string, string>): Promise<{ stdout: string; exitCode: number }> {
  const outPath = path.join(tmp, `node-stdout-${Math.random().toString(36).slice(2)}`);
  const fd = fs.openSync(outPath, 'w');
  try {
    const wasi = new WASI({ version: 'preview1', args, env, preopens, stdout: fd, returnOnExit: true });
    const { instance } = await WebAssembly.instantiate(bytes, { wasi_snapshot_preview1: wasi.wasiImport } as WebAssembly.Imports);
    const exitCode = wasi.start(instance);
    return { stdout: fs.readFileSync(outPath, 'utf8'), exitCode };
  } finally {
    fs.closeSync(fd);
  }
}

function hostDirWithInput(): string {
  const dir = fs.mkdtempSync(path.join(tmp, 'host-'));
  fs.writeFileSync(path.join(dir, 'input.txt'), 'line one\nline two\n');
  return dir;
}

const FILES_EXPECTED = `mkdir dir: 0
mkdir dir again: error File exists
lseek 6: 6
write WASI!: 5
lseek 0: 0
read 12: hello WASI!
lseek end: 12
pwrite at 20: 4
size after pwrite: 24
pread 24 bytes, byte 15 is 0, tail is tail
ftruncate 5: 0
size after truncate: 5 regular=1
b.txt size: 1000
b.txt size after append: 1001
dir is dir: 1
open excl existing: error File exists
open missing: error No such file or directory
open escape: error Capabilities insufficient
open file as dir: error Not a directory
ls /sandbox/dir: a.txt b.txt
rename a->c: 0
stat a: error No such file or directory
mkdir sub: 0
rename c->sub/d: 0
ls /sandbox/dir: b.txt sub
ls /sandbox/dir/sub: d.txt
rmdir non-empty: error Directory not empty
unlink dir: error Is a directory
unlink b: 0
unlink b again: error No such file or directory
unlink d while open: 0
read unlinked: hello
rmdir sub: 0
rmdir dir: 0
stat dir: error No such file or directory
input: line one
input: line two
ls /sandbox: input.txt out.txt
`;

test('files.c: file operations match the expected output and node:wasi', async (t) => {
  const bytes = guest('files');
  const run = await runOnDevice(bytes, { preopens: [{ guestPath: '/sandbox', hostPath: hostDirWithInput() }] });
  assert.equal(run.exitCode, 0);
  assert.equal(run.stdout, FILES_EXPECTED);
  const node = await runOnNode(bytes, ['prog'], {}, { '/sandbox': hostDirWithInput() });
  assert.equal(node.stdout, run.stdout);

  // The guest's file survives a checkpoint and can be exported.
  const restored = WasiDevice.restore(run.device.save(), { output: captureSink() });
  assert.equal(Buffer.from(restored.readFile('/sandbox/out.txt')).toString(), 'written by the guest\n');
  const exported = path.join(tmp, 'exported');
  restored.exportTree('/sandbox', exported);
  assert.deepEqual(fs.readdirSync(exported).sort(), ['input.txt', 'out.txt']);
  assert.equal(fs.readFileSync(path.join(exported, 'input.txt'), 'utf8'), 'line one\nline two\n');
});

test('args_env.c: args and environment echo, exit status', async (t) => {
  const bytes = guest('args_env');
  const args = ['prog', 'two words', 'ünïcode'];
  const run = await runOnDevice(bytes, { args, env: [['HOME', '/home/guest'], ['EMPTY', ''], ['EQ', 'a=b']] });
  assert.equal(run.exitCode, 3);
  assert.equal(run.stdout, [
    'argc=3', 'argv[0]=prog', 'argv[1]=two words', 'argv[2]=ünïcode',
    'env HOME=/home/guest', 'env EMPTY=', 'env EQ=a=b', 'HOME=/home/guest', '',
  ].join('\n'));
  const node = await runOnNode(bytes, args, { HOME: '/home/guest', EMPTY: '', EQ: 'a=b' }, {});
  assert.equal(node.exitCode, 3);
  assert.equal(node.stdout, run.stdout);
});

test('clock.c: monotonic, realtime, a 10 ms nanosleep, cputime, random', async (t) => {
  const bytes = guest('clock');
  const started = process.hrtime.bigint();
  const run = await runOnDevice(bytes, {});
  assert.ok(process.hrtime.bigint() - started >= 10_000_000n, 'the host really slept');
  assert.equal(run.exitCode, 0);
  assert.equal(run.stdout, [
    'monotonic non-decreasing: yes', 'realtime after 2020: yes', 'monotonic res ok: yes',
    'nanosleep rc=0 slept>=10ms: yes', 'cputime readable: yes', 'random draws differ: yes', '',
  ].join('\n'));
});

test('stdin_echo.c: stdin copied to stdout through blocking reads', async (t) => {
  const bytes = guest('stdin_echo');
  const text = 'first line\nsecond, longer line\n' + 'x'.repeat(1000) + '\nend';
  const stdin = new ScriptedInput([text.slice(0, 5), 'wait', text.slice(5, 500), 'wait', 'wait', text.slice(500)]);
  const run = await runOnDevice(bytes, { stdin });
  assert.equal(run.exitCode, 0);
  assert.equal(run.stdout, text);
  assert.equal(run.stderr, `echoed ${text.length} bytes\n`);
  assert.equal(run.device.stdinBytesConsumed, text.length);
});
