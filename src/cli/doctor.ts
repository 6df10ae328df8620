// `understudy doctor`: which dirty-page trackers this machine supports, and
// for each one that it does not, why, in words a user can act on.
import { arch, platform, release } from 'node:os';
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { TrackerKind, TrackerProbe } from '../track/tracker.js';
import type { UffdProbeFacts } from '../native.js';

export interface DoctorReport {
  platform: string;
  arch: string;
  kernelRelease: string;
  node: string;
  /** False when the native addon is not built; then nothing else was probed. */
  nativeAddon: boolean;
  nativeAddonError?: string;
  trackers: TrackerProbe[];
  /** What 'auto' picks (after UNDERSTUDY_TRACKER, if set). */
  selected?: TrackerKind;
  forcedBy?: string;
  /** Raw kernel facts (Linux only), for bug reports. */
  kernel?: Partial<UffdProbeFacts> & { unprivilegedUserfaultfd?: string };
}

/**
 * Probes the trackers. Async only because the native addon is loaded lazily,
 * so that a missing addon is reported rather than crashing the command.
 */
export async function doctor(): Promise<DoctorReport> {
  const base = { platform: platform(), arch: arch(), kernelRelease: release(), node: process.version };
  let tracker: typeof import('../track/tracker.js');
  let nativeModule: typeof import('../native.js');
  try {
    nativeModule = await import('../native.js');
    tracker = await import('../track/tracker.js');
  } catch (e) {
    return {
      ...base,
      nativeAddon: false,
      nativeAddonError: e instanceof Error ? e.message : String(e),
      trackers: [
        { kind: 'wp-async', supported: false, reason: 'the native addon is not built; run `npm ci` or `npx node-gyp rebuild`' },
        { kind: 'wp-sync', supported: false, reason: 'the native addon is not built; run `npm ci` or `npx node-gyp rebuild`' },
        { kind: 'hash', supported: false, reason: 'the native addon is not built; run `npm ci` or `npx node-gyp rebuild`' },
      ],
    };
  }
  const trackers = tracker.probeTrackers({ refresh: true });
  const forced = process.env[tracker.TRACKER_ENV];
  const report: DoctorReport = { ...base, nativeAddon: true, trackers, selected: tracker.bestTrackerKind(trackers) };
  if (forced && forced !== 'auto' && (tracker.TRACKER_KINDS as readonly string[]).includes(forced)) {
    report.selected = forced as TrackerKind;
    report.forcedBy = `${tracker.TRACKER_ENV}=${forced}`;
  }
  if (nativeModule.native.uffdBuilt) {
    let sysctl: string | undefined;
    try {
      sysctl = readFileSync('/proc/sys/vm/unprivileged_userfaultfd', 'utf8').trim();
    } catch {
      sysctl = undefined;
    }
    report.kernel = { ...nativeModule.native.uffdProbe(), unprivilegedUserfaultfd: sysctl };
  }
  return report;
}

const SPEED: Record<TrackerKind, string> = {
  'wp-async': 'kernel log-dirty: ~1 µs per first write, page-table scan per checkpoint',
  'wp-sync': 'copy-on-write faults with pre-images (rollback): tens of µs per first write',
  hash: 'portable: compares the whole memory at every checkpoint, keeps a second copy',
};

export function formatDoctorReport(r: DoctorReport): string {
  const lines = [`understudy doctor — ${r.platform}/${r.arch}, kernel ${r.kernelRelease}, Node ${r.node}`, ''];
  if (!r.nativeAddon) lines.push(`native addon: NOT BUILT (${r.nativeAddonError ?? 'unknown error'})`, '');
  lines.push('dirty-page trackers:');
  for (const t of r.trackers) {
    lines.push(`  ${t.supported ? 'yes' : 'no '}  ${t.kind.padEnd(8)}  ${SPEED[t.kind]}`);
    if (!t.supported && t.reason) lines.push(`               why not: ${t.reason}`);
  }
  lines.push('');
  if (r.selected) lines.push(`selected: ${r.selected}${r.forcedBy ? ` (forced by ${r.forcedBy})` : ' (best supported)'}`);
  if (r.kernel?.privileged === 0 && r.trackers.some((t) => t.kind === 'wp-sync' && t.supported)) {
    lines.push(
      'note: userfaultfd runs in user-mode-only here, so with wp-sync a system call that writes into guest memory ' +
        '(e.g. read(2) into a guest buffer) fails with EFAULT; set vm.unprivileged_userfaultfd=1 or grant CAP_SYS_PTRACE',
    );
  }
  return lines.join('\n') + '\n';
}

export function registerDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description('report which dirty-page trackers this machine supports, and why not')
    .option('--json', 'print the report as JSON')
    .action(async (opts: { json?: boolean }) => {
      const report = await doctor();
      process.stdout.write(opts.json ? JSON.stringify(report, null, 2) + '\n' : formatDoctorReport(report));
    });
}
