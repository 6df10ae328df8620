// Choosing a tracker: 'auto', the UNDERSTUDY_TRACKER override, the fallback
// when the kernel lacks features, the probe, and the reasons users read.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { isUnderstudyError } from '../errors.js';
import { createTracker, probeTrackers, TRACKER_ENV, TRACKER_KINDS, type TrackerProbe } from './tracker.js';
import { explainKernelFailure } from './explain.js';
import { doctor, formatDoctorReport, registerDoctorCommand } from '../cli/doctor.js';

const kernelLacksEverything = (): TrackerProbe[] => [
  { kind: 'wp-async', supported: false, reason: 'simulated: kernel 5.15 lacks PAGEMAP_SCAN (needs 6.7+)' },
  { kind: 'wp-sync', supported: false, reason: 'simulated: userfaultfd is disabled' },
  { kind: 'hash', supported: true },
];

describe('tracker selection', () => {
  it('falls back to hash when the kernel lacks the features', () => {
    const memory = new WebAssembly.Memory({ initial: 1 });
    const tracker = createTracker(memory, 'auto', { env: {}, probe: kernelLacksEverything });
    try {
      assert.equal(tracker.kind, 'hash');
      new Uint8Array(memory.buffer)[2 * 4096] = 1;
      assert.deepEqual(Array.from(tracker.collect()), [2]);
    } finally {
      tracker.dispose();
    }
  });

  it(`honours ${TRACKER_ENV}=hash (from process.env)`, () => {
    const saved = process.env[TRACKER_ENV];
    process.env[TRACKER_ENV] = 'hash';
    try {
      const tracker = createTracker(new WebAssembly.Memory({ initial: 1 }));
      assert.equal(tracker.kind, 'hash');
      tracker.dispose();
    } finally {
      if (saved === undefined) delete process.env[TRACKER_ENV];
      else process.env[TRACKER_ENV] = saved;
    }
  });

  it(`rejects an unknown ${TRACKER_ENV} value with the valid ones`, () => {
    assert.throws(
      () => createTracker(new WebAssembly.Memory({ initial: 1 }), 'auto', { env: { [TRACKER_ENV]: 'dirty-bit' } }),
      (e) => isUnderstudyError(e, 'ERR_TRACKER_UNSUPPORTED') && /wp-async, wp-sync, hash/.test(e.message),
    );
  });

  it('picks the best supported kind by default', () => {
    const probes = probeTrackers();
    const tracker = createTracker(new WebAssembly.Memory({ initial: 1 }), 'auto', { env: {} });
    try {
      assert.equal(tracker.kind, probes.find((p) => p.supported)?.kind);
    } finally {
      tracker.dispose();
    }
  });

  it('probes every kind; hash always works; every "no" has a reason', () => {
    const probes = probeTrackers({ refresh: true });
    assert.deepEqual(
      probes.map((p) => p.kind),
      [...TRACKER_KINDS],
    );
    assert.equal(probes.find((p) => p.kind === 'hash')?.supported, true);
    for (const p of probes) if (!p.supported) assert.ok(p.reason && p.reason.length > 20, `${p.kind} says why`);
  });
});

describe('reasons a user can act on', () => {
  const ctx = { kernelRelease: '5.15.0-91-generic', unprivilegedUserfaultfd: '0' };
  it('userfaultfd not permitted names the sysctl, the capability and seccomp', () => {
    const r = explainKernelFailure('wp-sync', { syscall: 'userfaultfd', errno: 1 }, ctx);
    assert.match(r, /vm\.unprivileged_userfaultfd=0/);
    assert.match(r, /CAP_SYS_PTRACE/);
    assert.match(r, /seccomp/);
  });
  it('a kernel without userfaultfd names the config option', () => {
    assert.match(explainKernelFailure('wp-async', { syscall: 'userfaultfd', errno: 38 }, ctx), /CONFIG_USERFAULTFD/);
  });
  it('missing WP_ASYNC / PAGEMAP_SCAN names the kernel version needed', () => {
    const r = explainKernelFailure('wp-async', { syscall: 'UFFDIO_API', errno: 22, features: (1 << 13) - 1 }, ctx);
    assert.match(r, /kernel 5\.15\.0-91-generic lacks UFFD_FEATURE_WP_ASYNC/);
    assert.match(r, /6\.7\+/);
    assert.match(explainKernelFailure('wp-async', { syscall: 'PAGEMAP_SCAN', errno: 25 }, ctx), /lacks the PAGEMAP_SCAN ioctl \(needs Linux 6\.7\+\)/);
    assert.match(explainKernelFailure('wp-sync', { syscall: 'UFFDIO_API', errno: 22, features: 1 }, ctx), /WP_UNPOPULATED \(needs Linux 6\.4\+\)/);
    assert.match(explainKernelFailure('wp-sync', { syscall: 'UFFDIO_API', errno: 22, features: 0 }, ctx), /5\.7\+/);
  });
});

describe('understudy doctor', () => {
  it('returns structured results and prints them', async () => {
    const report = await doctor();
    assert.equal(report.nativeAddon, true);
    assert.deepEqual(
      report.trackers.map((t) => t.kind),
      [...TRACKER_KINDS],
    );
    assert.ok(report.selected);
    const text = formatDoctorReport(report);
    for (const kind of TRACKER_KINDS) assert.match(text, new RegExp(kind));
    assert.match(text, /selected: /);
  });

  it('registers the command on a commander program', () => {
    const program = new Command();
    registerDoctorCommand(program);
    const cmd = program.commands.find((c) => c.name() === 'doctor');
    assert.ok(cmd);
    assert.ok(cmd.options.some((o) => o.long === '--json'));
  });
});
