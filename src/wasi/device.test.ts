// Unit tests of the import namespace, called directly against a one-page
// memory with structs laid out by hand.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  CLOCKID_MONOTONIC, CLOCKID_REALTIME, DIRENT_SIZE, ERRNO_BADF, ERRNO_EXIST, ERRNO_FAULT, ERRNO_INVAL,
  ERRNO_ISDIR, ERRNO_LOOP, ERRNO_NOENT, ERRNO_NOSYS, ERRNO_NOTCAPABLE, ERRNO_NOTDIR, ERRNO_NOTEMPTY,
  ERRNO_SPIPE, EVENT_SIZE, EVENTTYPE_CLOCK, EVENTTYPE_FD_READ, EVENTTYPE_FD_WRITE, FDFLAGS_APPEND,
  FDSTAT, FILETYPE_CHARACTER_DEVICE, FILETYPE_DIRECTORY, FILETYPE_REGULAR_FILE, FILETYPE_SYMBOLIC_LINK,
  OFLAGS_CREAT, OFLAGS_DIRECTORY, OFLAGS_EXCL, OFLAGS_TRUNC, RIGHTS_FD_READ, RIGHTS_FD_SEEK,
  RIGHTS_FD_WRITE, SUBSCRIPTION, SUBSCRIPTION_SIZE, SUBCLOCKFLAGS_ABSTIME, WHENCE_CUR, WHENCE_END, WHENCE_SET,
} from './constants.js';
import { PREVIEW1_FUNCTIONS, ProcExit, WasiDevice } from './index.js';
import { FakeClock, Harness, ScriptedInput, captureSink } from './testkit.js';

test('the namespace has exactly the 46 preview1 functions', () => {
  const h = Harness.create();
  assert.deepEqual(Object.keys(h.device.imports).sort(), [...PREVIEW1_FUNCTIONS].sort());
});

test('args and environ: sizes, pointer arrays and NUL-terminated strings', () => {
  const h = Harness.create({ args: ['prog', 'héllo'], env: [['A', '1'], ['B', 'x=y']] });
  const sizes = h.alloc(8);
  assert.equal(h.call('args_sizes_get', sizes, sizes + 4), 0);
  assert.equal(h.u32(sizes), 2);
  assert.equal(h.u32(sizes + 4), 5 + 7); // 'prog\0' + 'héllo\0' (é is 2 bytes)
  const argv = h.alloc(8);
  const buf = h.alloc(12);
  assert.equal(h.call('args_get', argv, buf), 0);
  assert.equal(h.u32(argv), buf);
  assert.equal(h.u32(argv + 4), buf + 5);
  assert.equal(Buffer.from(h.bytes.subarray(buf, buf + 12)).toString(), 'prog\0héllo\0');

  assert.equal(h.call('environ_sizes_get', sizes, sizes + 4), 0);
  assert.equal(h.u32(sizes), 2);
  assert.equal(h.u32(sizes + 4), 4 + 6);
  const envp = h.alloc(8);
  const ebuf = h.alloc(10);
  assert.equal(h.call('environ_get', envp, ebuf), 0);
  assert.equal(Buffer.from(h.bytes.subarray(ebuf, ebuf + 10)).toString(), 'A=1\0B=x=y\0');
});

test('an out-of-bounds pointer answers EFAULT and writes nothing', () => {
  const h = Harness.create({ args: ['prog'] });
  const argv = h.alloc(4);
  h.view.setUint32(argv, 0xdeadbeef, true);
  assert.equal(h.call('args_get', argv, 65536 - 2), ERRNO_FAULT); // 'prog\0' does not fit
  assert.equal(h.u32(argv), 0xdeadbeef);
  assert.equal(h.call('clock_time_get', CLOCKID_MONOTONIC, 0n, 65536 - 4), ERRNO_FAULT);
  assert.equal(h.call('random_get', 65000, 1000), ERRNO_FAULT);
  // A negative i32 is a pointer near 4 GiB, not a small one.
  assert.equal(h.call('clock_time_get', CLOCKID_MONOTONIC, 0n, -8), ERRNO_FAULT);
});

test('fd_write to stdout: one sink write per call, gathered, and a copy', () => {
  const sink = captureSink();
  const h = Harness.create({ output: sink });
  const a = h.put('hello ');
  const b = h.put('world');
  const iovs = h.alloc(16);
  h.view.setUint32(iovs, a.ptr, true);
  h.view.setUint32(iovs + 4, a.len, true);
  h.view.setUint32(iovs + 8, b.ptr, true);
  h.view.setUint32(iovs + 12, b.len, true);
  const n = h.alloc(4);
  assert.equal(h.call('fd_write', 1, iovs, 2, n), 0);
  assert.equal(h.u32(n), 11);
  assert.equal(sink.writes.length, 1);
  h.bytes.fill(0, a.ptr, a.ptr + a.len); // later guest writes must not reach what the sink kept
  assert.equal(sink.text(), 'hello world');
  assert.equal(h.write(2, 'oops').errno, 0);
  assert.equal(sink.text('stderr'), 'oops');
});

test('fd_write with one bad iovec writes nothing', () => {
  const sink = captureSink();
  const h = Harness.create({ output: sink });
  const a = h.put('good');
  const iovs = h.alloc(16);
  h.view.setUint32(iovs, a.ptr, true);
  h.view.setUint32(iovs + 4, a.len, true);
  h.view.setUint32(iovs + 8, 65530, true);
  h.view.setUint32(iovs + 12, 100, true);
  assert.equal(h.call('fd_write', 1, iovs, 2, h.alloc(4)), ERRNO_FAULT);
  assert.equal(sink.writes.length, 0);
});

test('memory growth: views follow the new buffer', () => {
  const h = Harness.create();
  h.memory.grow(1);
  assert.equal(h.call('clock_time_get', CLOCKID_REALTIME, 0n, 65536 + 8), 0);
  assert.ok(h.u64(65536 + 8) > 1_500_000_000_000_000_000n);
});

test('stdio descriptors are character devices with fitting rights', () => {
  const h = Harness.create();
  const st = h.alloc(24);
  for (const fd of [0, 1, 2]) {
    assert.equal(h.call('fd_fdstat_get', fd, st), 0);
    assert.equal(h.u8(st + FDSTAT.filetype), FILETYPE_CHARACTER_DEVICE);
  }
  h.call('fd_fdstat_get', 0, st);
  assert.equal(h.u64(st + FDSTAT.rightsBase) & RIGHTS_FD_WRITE, 0n);
  h.call('fd_fdstat_get', 1, st);
  assert.equal(h.u64(st + FDSTAT.rightsBase) & RIGHTS_FD_WRITE, RIGHTS_FD_WRITE);
  assert.equal(h.seek(1, 0n, WHENCE_SET).errno, ERRNO_SPIPE);
  assert.equal(h.call('fd_fdstat_get', 99, st), ERRNO_BADF);
});

test('stdin without a source is at end of input; with one, bytes are counted', () => {
  const h = Harness.create();
  const r = h.read(0, 10);
  assert.equal(r.errno, 0);
  assert.equal(r.data.length, 0);
  const h2 = Harness.create({ stdin: new ScriptedInput(['abc', 'wait', 'defg']) });
  assert.equal(Buffer.from(h2.read(0, 2).data).toString(), 'ab');
  assert.equal(Buffer.from(h2.read(0, 10).data).toString(), 'c');
  assert.equal(Buffer.from(h2.read(0, 10).data).toString(), 'defg'); // blocks via readSync past the 'wait'
  assert.equal(h2.read(0, 10).data.length, 0);
  assert.equal(h2.device.stdinBytesConsumed, 7);
});

test('preopens: prestat and dir name; other descriptors are not preopens', () => {
  const h = Harness.create({ preopens: [{ guestPath: '/sandbox' }, { guestPath: '.' }] });
  const ps = h.alloc(8);
  assert.equal(h.call('fd_prestat_get', 3, ps), 0);
  assert.equal(h.u8(ps), 0);
  assert.equal(h.u32(ps + 4), 8);
  const name = h.alloc(8);
  assert.equal(h.call('fd_prestat_dir_name', 3, name, 8), 0);
  assert.equal(Buffer.from(h.bytes.subarray(name, name + 8)).toString(), '/sandbox');
  assert.equal(h.call('fd_prestat_get', 4, ps), 0);
  assert.equal(h.u32(ps + 4), 1);
  assert.equal(h.call('fd_prestat_get', 5, ps), ERRNO_BADF);
  assert.equal(h.call('fd_prestat_get', 1, ps), ERRNO_BADF);
});

test('files: create, write, seek, read, pread/pwrite, append, truncate, stat', () => {
  const h = Harness.create();
  const fd = h.create('f.txt');
  assert.equal(h.write(fd, 'hello world').n, 11);
  assert.deepEqual(h.seek(fd, 0n, WHENCE_CUR), { errno: 0, pos: 11n });
  assert.deepEqual(h.seek(fd, -5n, WHENCE_END), { errno: 0, pos: 6n });
  assert.equal(Buffer.from(h.read(fd, 100).data).toString(), 'world');
  assert.equal(h.seek(fd, -1n, WHENCE_SET).errno, ERRNO_INVAL);
  assert.equal(h.write(fd, 'XY', 'fd_pwrite', 20n).n, 2);
  const pr = h.read(fd, 30, 'fd_pread', 0n);
  assert.equal(pr.data.length, 22);
  assert.deepEqual([...pr.data.subarray(11, 20)], new Array(9).fill(0)); // the hole reads as zeros
  const tell = h.alloc(8);
  assert.equal(h.call('fd_tell', fd, tell), 0);
  assert.equal(h.u64(tell), 11n); // pread/pwrite do not move the offset
  let st = h.stat('f.txt');
  assert.equal(st.errno, 0);
  assert.equal(st.filetype, FILETYPE_REGULAR_FILE);
  assert.equal(st.size, 22n);
  assert.equal(st.nlink, 1n);
  assert.equal(h.call('fd_filestat_set_size', fd, 4n), 0);
  assert.equal(h.stat('f.txt').size, 4n);
  assert.equal(h.call('fd_close', fd), 0);
  assert.equal(h.call('fd_close', fd), ERRNO_BADF);

  const ap = h.open('f.txt', 0, FDFLAGS_APPEND).fd;
  h.write(ap, '++');
  assert.equal(Buffer.from(h.device.readFile('/sandbox/f.txt')).toString(), 'hell++');
  assert.equal(h.open('f.txt', OFLAGS_CREAT | OFLAGS_EXCL).errno, ERRNO_EXIST);
  const tr = h.open('f.txt', OFLAGS_TRUNC);
  assert.equal(tr.errno, 0);
  st = h.stat('f.txt');
  assert.equal(st.size, 0n);
  assert.equal(h.open('missing').errno, ERRNO_NOENT);
});

test('filestat layout: all 64 bytes written, fields at their offsets', () => {
  const h = Harness.create({ clock: new FakeClock(1234n) });
  const fd = h.create('x');
  h.write(fd, 'abc');
  const buf = h.alloc(64);
  h.bytes.fill(0xee, buf, buf + 64);
  assert.equal(h.call('fd_filestat_get', fd, buf), 0);
  assert.equal(h.u64(buf), 0n); // dev
  assert.equal(h.u8(buf + 16), FILETYPE_REGULAR_FILE);
  assert.deepEqual([...h.bytes.subarray(buf + 17, buf + 24)], [0, 0, 0, 0, 0, 0, 0]); // padding cleared
  assert.equal(h.u64(buf + 24), 1n);
  assert.equal(h.u64(buf + 32), 3n);
  assert.equal(h.u64(buf + 40), 1234n);
  assert.equal(h.u64(buf + 48), 1234n);
  assert.equal(h.u64(buf + 56), 1234n);
});

test('rights: a read-only descriptor cannot write, and rights only shrink', () => {
  const h = Harness.create();
  h.create('r.txt');
  const ro = h.open('r.txt', 0, 0, RIGHTS_FD_READ | RIGHTS_FD_SEEK).fd;
  assert.equal(h.write(ro, 'no').errno, ERRNO_NOTCAPABLE);
  assert.equal(h.read(ro, 4).errno, 0);
  assert.equal(h.call('fd_fdstat_set_rights', ro, RIGHTS_FD_READ | RIGHTS_FD_WRITE, 0n), ERRNO_NOTCAPABLE);
  assert.equal(h.call('fd_fdstat_set_rights', ro, RIGHTS_FD_READ, 0n), 0);
  assert.equal(h.seek(ro, 0n, WHENCE_SET).errno, ERRNO_NOTCAPABLE);
});

test('directories: mkdir, readdir (layout and cut-off), rmdir, O_DIRECTORY', () => {
  const h = Harness.create();
  assert.equal(h.pathCall('path_create_directory', 'd'), 0);
  assert.equal(h.pathCall('path_create_directory', 'd'), ERRNO_EXIST);
  h.create('d/b');
  h.create('d/a');
  assert.equal(h.pathCall('path_create_directory', 'd/sub'), 0);
  const dfd = h.open('d', OFLAGS_DIRECTORY).fd;
  assert.deepEqual(h.readdir(dfd).names, ['.', '..', 'a', 'b', 'sub']);
  assert.deepEqual(h.readdir(dfd, 30).names, ['.', '..', 'a', 'b', 'sub']); // one entry per call
  // First entry layout.
  const buf = h.alloc(256);
  const used = h.alloc(4);
  assert.equal(h.call('fd_readdir', dfd, buf, 256, 2n, used), 0);
  assert.equal(h.u64(buf), 3n); // d_next
  assert.equal(h.u32(buf + 16), 1); // d_namlen
  assert.equal(h.u8(buf + 20), FILETYPE_REGULAR_FILE);
  assert.equal(String.fromCharCode(h.u8(buf + DIRENT_SIZE)), 'a');
  assert.equal(h.u32(used), 3 * DIRENT_SIZE + 5);
  assert.equal(h.u8(buf + 2 * (DIRENT_SIZE + 1) + 20), FILETYPE_DIRECTORY);
  // A buffer too small for even one header is filled completely.
  assert.equal(h.call('fd_readdir', dfd, buf, 10, 0n, used), 0);
  assert.equal(h.u32(used), 10);

  assert.equal(h.open('d/a', OFLAGS_DIRECTORY).errno, ERRNO_NOTDIR);
  assert.equal(h.read(dfd, 10).errno, ERRNO_ISDIR);
  assert.equal(h.pathCall('path_remove_directory', 'd'), ERRNO_NOTEMPTY);
  assert.equal(h.pathCall('path_unlink_file', 'd/sub'), ERRNO_ISDIR);
  assert.equal(h.pathCall('path_remove_directory', 'd/a'), ERRNO_NOTDIR);
  assert.equal(h.pathCall('path_unlink_file', 'd/a'), 0);
  assert.equal(h.pathCall('path_unlink_file', 'd/b'), 0);
  assert.equal(h.pathCall('path_remove_directory', 'd/sub'), 0);
  assert.equal(h.pathCall('path_remove_directory', 'd'), 0);
  // The open descriptor of the removed directory sees it empty and cannot create in it.
  assert.deepEqual(h.readdir(dfd).names, ['.', '..']);
  assert.equal(h.open('new', OFLAGS_CREAT, 0, 0xffffffffn, dfd).errno, ERRNO_NOENT);
});

test('paths cannot escape a preopen, through .. or symlinks', () => {
  const h = Harness.create();
  assert.equal(h.pathCall('path_create_directory', 'a'), 0);
  assert.equal(h.open('../x').errno, ERRNO_NOTCAPABLE);
  assert.equal(h.open('a/../../x').errno, ERRNO_NOTCAPABLE);
  assert.equal(h.open('/etc/passwd').errno, ERRNO_NOTCAPABLE);
  assert.equal(h.open('a/../a/./../new', OFLAGS_CREAT).errno, 0); // stays inside: fine
  assert.equal(h.stat('new').errno, 0);
  assert.equal(h.symlink('../..', 'a/up'), 0);
  assert.equal(h.open('a/up/x').errno, ERRNO_NOTCAPABLE);
  assert.equal(h.symlink('/etc', 'abs'), 0);
  assert.equal(h.open('abs/passwd').errno, ERRNO_NOTCAPABLE);
  // A subdirectory descriptor is its own capability: '..' from it escapes it.
  const afd = h.open('a', OFLAGS_DIRECTORY).fd;
  assert.equal(h.open('../new', 0, 0, 0xffffffffn, afd).errno, ERRNO_NOTCAPABLE);
});

test('symlinks: readlink, follow, no-follow, loops', () => {
  const h = Harness.create();
  const fd = h.create('target');
  h.write(fd, 'via link');
  assert.equal(h.symlink('target', 'ln'), 0);
  assert.equal(h.symlink('target', 'ln'), ERRNO_EXIST);
  assert.equal(Buffer.from(h.read(h.open('ln').fd, 20).data).toString(), 'via link');
  assert.equal(h.open('ln', 0, 0, 0xffffffffn, 3, 0).errno, ERRNO_LOOP); // O_NOFOLLOW
  assert.equal(h.stat('ln', 0).filetype, FILETYPE_SYMBOLIC_LINK);
  assert.equal(h.stat('ln', 1).filetype, FILETYPE_REGULAR_FILE);
  h.reset();
  const p = h.put('ln');
  const buf = h.alloc(64);
  const used = h.alloc(4);
  assert.equal(h.call('path_readlink', 3, p.ptr, p.len, buf, 64, used), 0);
  assert.equal(Buffer.from(h.bytes.subarray(buf, buf + h.u32(used))).toString(), 'target');
  assert.equal(h.call('path_readlink', 3, p.ptr, p.len, buf, 3, used), 0); // truncated
  assert.equal(h.u32(used), 3);
  assert.equal(h.symlink('loop2', 'loop1'), 0);
  assert.equal(h.symlink('loop1', 'loop2'), 0);
  assert.equal(h.open('loop1').errno, ERRNO_LOOP);
});

test('hard links, rename, and an unlinked file readable until closed', () => {
  const h = Harness.create();
  const fd = h.create('a');
  h.write(fd, 'data');
  assert.equal(h.link('a', 'b'), 0);
  assert.equal(h.stat('a').nlink, 2n);
  assert.equal(h.stat('a').ino, h.stat('b').ino);
  assert.equal(h.pathCall('path_create_directory', 'd'), 0);
  assert.equal(h.link('d', 'd2'), 63 /* EPERM */);
  assert.equal(h.rename('b', 'd/c'), 0);
  assert.equal(h.stat('b').errno, ERRNO_NOENT);
  assert.equal(h.rename('d', 'd/inner'), ERRNO_INVAL);
  assert.equal(h.pathCall('path_unlink_file', 'a'), 0);
  assert.equal(h.pathCall('path_unlink_file', 'd/c'), 0);
  const inodesBefore = (h.device.save().fs as { inodes: unknown[] }).inodes.length;
  h.seek(fd, 0n, WHENCE_SET);
  assert.equal(Buffer.from(h.read(fd, 10).data).toString(), 'data');
  const st = h.alloc(64);
  assert.equal(h.call('fd_filestat_get', fd, st), 0);
  assert.equal(h.u64(st + 24), 0n); // nlink 0
  assert.equal(h.call('fd_close', fd), 0);
  const inodesAfter = (h.device.save().fs as { inodes: unknown[] }).inodes.length;
  assert.equal(inodesAfter, inodesBefore - 1);
});

test('fd_renumber moves a descriptor and closes the target', () => {
  const h = Harness.create();
  const a = h.create('a');
  const b = h.create('b');
  h.write(a, 'A');
  assert.equal(h.call('fd_renumber', a, b), 0);
  assert.equal(h.write(a, 'x').errno, ERRNO_BADF);
  assert.equal(h.write(b, 'B').errno, 0);
  assert.equal(Buffer.from(h.device.readFile('/sandbox/a')).toString(), 'AB');
  assert.equal(Buffer.from(h.device.readFile('/sandbox/b')).toString(), '');
  assert.equal(h.call('fd_renumber', 77, b), ERRNO_BADF);
});

test('poll_oneoff: a relative clock blocks (canSuspend false) until its deadline', () => {
  const clock = new FakeClock();
  const h = Harness.create({ clock });
  const subs = h.alloc(SUBSCRIPTION_SIZE * 2);
  h.view.setBigUint64(subs + SUBSCRIPTION.userdata, 42n, true);
  h.view.setUint8(subs + SUBSCRIPTION.tag, EVENTTYPE_CLOCK);
  h.view.setUint32(subs + SUBSCRIPTION.clockId, CLOCKID_MONOTONIC, true);
  h.view.setBigUint64(subs + SUBSCRIPTION.clockTimeout, 7_000_000n, true);
  const events = h.alloc(EVENT_SIZE * 2);
  const n = h.alloc(4);
  const t0 = clock.monoNs;
  assert.equal(h.call('poll_oneoff', subs, events, 1, n), 0);
  assert.equal(h.u32(n), 1);
  assert.equal(h.u64(events), 42n);
  assert.equal(h.u16(events + 8), 0);
  assert.equal(h.u8(events + 10), EVENTTYPE_CLOCK);
  assert.ok(clock.monoNs - t0 >= 7_000_000n, 'slept at least the timeout');
  assert.ok(clock.monoNs - t0 < 20_000_000n, 'not much longer');

  // An absolute deadline in the past fires at once; a stdout write subscription is ready at once.
  h.view.setUint16(subs + SUBSCRIPTION.clockFlags, SUBCLOCKFLAGS_ABSTIME, true);
  h.view.setBigUint64(subs + SUBSCRIPTION.clockTimeout, 0n, true);
  const s2 = subs + SUBSCRIPTION_SIZE;
  h.view.setBigUint64(s2, 7n, true);
  h.view.setUint8(s2 + SUBSCRIPTION.tag, EVENTTYPE_FD_WRITE);
  h.view.setUint32(s2 + SUBSCRIPTION.fd, 1, true);
  const t1 = clock.monoNs;
  assert.equal(h.call('poll_oneoff', subs, events, 2, n), 0);
  assert.equal(h.u32(n), 2);
  assert.equal(clock.monoNs, t1);
  assert.equal(h.call('poll_oneoff', subs, events, 0, n), ERRNO_INVAL);
});

test('poll_oneoff: stdin readiness with nbytes, and hangup at end', () => {
  const h = Harness.create({ stdin: new ScriptedInput(['hello']) });
  // Below the scratch area: h.read() reuses scratch.
  const subs = 64;
  h.view.setBigUint64(subs, 9n, true);
  h.view.setUint8(subs + SUBSCRIPTION.tag, EVENTTYPE_FD_READ);
  h.view.setUint32(subs + SUBSCRIPTION.fd, 0, true);
  const ev = subs + SUBSCRIPTION_SIZE;
  const n = ev + EVENT_SIZE;
  assert.equal(h.call('poll_oneoff', subs, ev, 1, n), 0);
  assert.equal(h.u32(n), 1);
  assert.equal(h.u8(ev + 10), EVENTTYPE_FD_READ);
  assert.equal(h.u64(ev + 16), 5n);
  assert.equal(h.device.stdinBytesConsumed, 0); // polling hands nothing to the guest
  assert.equal(Buffer.from(h.read(0, 10).data).toString(), 'hello');
  assert.equal(h.call('poll_oneoff', subs, ev, 1, n), 0);
  assert.equal(h.u16(ev + 24), 1); // hangup
  h.view.setUint32(subs + SUBSCRIPTION.fd, 55, true);
  assert.equal(h.call('poll_oneoff', subs, ev, 1, n), 0);
  assert.equal(h.u16(ev + 8), ERRNO_BADF);
});

test('proc_exit throws ProcExit; unsupported calls answer ENOSYS', () => {
  const h = Harness.create();
  assert.throws(() => h.call('proc_exit', 7), (e: unknown) => e instanceof ProcExit && e.exitCode === 7);
  for (const name of ['sock_accept', 'sock_recv', 'sock_send', 'sock_shutdown']) {
    assert.equal(h.call(name, 0, 0, 0, 0, 0, 0), ERRNO_NOSYS);
  }
  assert.equal(h.call('proc_raise', 0), 0);
  assert.equal(h.call('proc_raise', 15), ERRNO_NOSYS);
  assert.equal(h.call('sched_yield'), 0);
  assert.equal(h.call('clock_time_get', 99, 0n, h.alloc(8)), ERRNO_INVAL);
});

test('random_get fills the buffer and never repeats across restores of one checkpoint', () => {
  const h = Harness.create();
  const state = h.device.save();
  const draw = (d: WasiDevice): string => {
    const mem = new WebAssembly.Memory({ initial: 1 });
    d.bindMemory(mem);
    assert.equal(d.imports.random_get!(100, 32), 0);
    return Buffer.from(new Uint8Array(mem.buffer, 100, 32)).toString('hex');
  };
  const a = draw(WasiDevice.restore(state, { output: captureSink() }));
  const b = draw(WasiDevice.restore(state, { output: captureSink() }));
  assert.notEqual(a, '0'.repeat(64));
  assert.notEqual(a, b);
});

test('create() refuses bad configs with stable codes', () => {
  const out = captureSink();
  assert.throws(() => WasiDevice.create({ args: ['a\0b'], env: [], preopens: [], output: out }), { code: 'ERR_WASI_CONFIG' });
  assert.throws(() => WasiDevice.create({ args: [], env: [['A=B', 'c']], preopens: [], output: out }), { code: 'ERR_WASI_CONFIG' });
  assert.throws(() => WasiDevice.create({ args: [], env: [], preopens: [{ guestPath: '/a' }, { guestPath: '/a' }], output: out }), { code: 'ERR_WASI_PREOPEN' });
  assert.throws(() => WasiDevice.create({ args: [], env: [], preopens: [{ guestPath: '/a', hostPath: '/nonexistent/dir' }], output: out }), { code: 'ERR_WASI_PREOPEN' });
  const d = WasiDevice.create({ args: [], env: [], preopens: [{ guestPath: '/a' }], output: out });
  assert.throws(() => d.readFile('/b/x'), { code: 'ERR_WASI_PATH' });
  assert.throws(() => d.readFile('/a/missing'), { code: 'ERR_WASI_PATH' });
  assert.throws(() => d.readFile('/a'), { code: 'ERR_WASI_PATH' });
});

test('load(): in place, the device continues from a saved state (same imports, same memory), restore generation bumped; a refused state changes nothing', () => {
  const out = captureSink();
  const h = Harness.create({ output: out });
  const imports = h.device.imports;
  const saved = h.device.save();
  // Change the device after the save: a file and an open descriptor.
  const { errno, fd: opened } = h.open('a.txt', OFLAGS_CREAT);
  assert.equal(errno, 0);
  assert.throws(() => h.device.load({ ...saved, version: 99 }, { output: out }), (e: Error & { code?: string }) => e.code === 'ERR_WASI_STATE');
  assert.equal(h.call('fd_fdstat_get', opened, h.alloc(24)), 0, 'a refused load leaves the device as it was');
  h.device.load(saved, { output: out });
  assert.equal(h.device.imports, imports);
  assert.equal(h.device.restoreGeneration, (saved.restoreGeneration as number) + 1);
  assert.equal(h.call('fd_fdstat_get', opened, h.alloc(24)), ERRNO_BADF, 'the descriptor opened after the save is gone');
  assert.deepEqual({ ...h.device.save(), restoreGeneration: 0, clocks: null }, { ...saved, restoreGeneration: 0, clocks: null });
});
