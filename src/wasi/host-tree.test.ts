// Preloading host directories into the memfs and exporting guest trees back.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { WasiDevice } from './index.js';
import { Harness, captureSink } from './testkit.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-wasi-tree-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, rel: string): void => {
    for (const name of fs.readdirSync(d).sort()) {
      const p = path.join(d, name);
      const r = rel === '' ? name : `${rel}/${name}`;
      const st = fs.lstatSync(p);
      if (st.isSymbolicLink()) out[r] = `-> ${fs.readlinkSync(p)}`;
      else if (st.isDirectory()) { out[r] = 'dir'; walk(p, r); }
      else out[r] = fs.readFileSync(p, 'latin1');
    }
  };
  walk(dir, '');
  return out;
}

test('a host tree is preloaded and exported back unchanged (files, dirs, symlinks, binary)', () => {
  const host = path.join(tmp, 'in');
  fs.mkdirSync(path.join(host, 'sub/deeper'), { recursive: true });
  fs.mkdirSync(path.join(host, 'empty'));
  fs.writeFileSync(path.join(host, 'top.txt'), 'top');
  fs.writeFileSync(path.join(host, 'sub/deeper/bin'), Buffer.from([0, 255, 1, 254]));
  fs.symlinkSync('sub/deeper/bin', path.join(host, 'link'));
  const device = WasiDevice.create({ args: [], env: [], preopens: [{ guestPath: '/data', hostPath: host }], output: captureSink() });
  assert.deepEqual([...device.readFile('/data/link')], [0, 255, 1, 254]);
  const h = new Harness(device);
  assert.equal(h.stat('sub/deeper/bin').size, 4n);
  const outDir = path.join(tmp, 'out/nested');
  WasiDevice.restore(device.save(), { output: captureSink() }).exportTree('/data', outDir);
  assert.deepEqual(snapshot(outDir), snapshot(host));
  const subOut = path.join(tmp, 'sub-out');
  device.exportTree('/data/sub', subOut);
  assert.deepEqual(Object.keys(snapshot(subOut)), ['deeper', 'deeper/bin']);
  assert.throws(() => device.exportTree('/data/top.txt', path.join(tmp, 'x')), { code: 'ERR_WASI_PATH' });
});

test('host paths that are not directories are refused', () => {
  const file = path.join(tmp, 'plain-file');
  fs.writeFileSync(file, 'x');
  assert.throws(
    () => WasiDevice.create({ args: [], env: [], preopens: [{ guestPath: '/d', hostPath: file }], output: captureSink() }),
    { code: 'ERR_WASI_PREOPEN' },
  );
});

test('readFile finds the longest matching preopen, including "." for relative paths', () => {
  const h = Harness.create({ preopens: [{ guestPath: '/a' }, { guestPath: '/a/b' }, { guestPath: '.' }] });
  h.write(h.open('f', 1, 0, undefined, 3).fd, 'in a');
  h.write(h.open('f', 1, 0, undefined, 4).fd, 'in a/b');
  h.write(h.open('f', 1, 0, undefined, 5).fd, 'in .');
  const text = (p: string) => Buffer.from(h.device.readFile(p)).toString();
  assert.equal(text('/a/f'), 'in a');
  assert.equal(text('/a/b/f'), 'in a/b');
  assert.equal(text('f'), 'in .');
  assert.equal(text('./f'), 'in .');
  assert.throws(() => h.device.readFile('/elsewhere/f'), { code: 'ERR_WASI_PATH' });
  assert.throws(() => h.device.readFile('/a/../f'), { code: 'ERR_WASI_PATH' });
});
