// The collect writer thread: writes a collected image as an ordinary full
// checkpoint file (src/checkpoint/snapshot.ts), so the CRC of 10s of MiB, the
// writes and the fsyncs happen off the guest's thread. One message in (write),
// one out (written or failed); the result is also left in a shared status
// block, which the guest's thread reads at its next epoch boundary even when
// it does not turn the event loop (a reactor served without pause).
import { parentPort } from 'node:worker_threads';
import { writeCheckpointParts, type CheckpointParts } from '../checkpoint/snapshot.js';
import { STATUS_FAILED, STATUS_WRITTEN, statusViews } from './collect-status.js';

export interface CollectWriteRequest {
  path: string;
  parts: CheckpointParts;
  /** COLLECT_STATUS_BYTES (collect-status.ts). */
  status: SharedArrayBuffer;
}

const port = parentPort;
if (!port) throw new Error('collect-worker runs as a worker thread');

port.on('message', (m: CollectWriteRequest) => {
  const { flag, numbers } = statusViews(m.status);
  try {
    const t0 = performance.now();
    numbers[0] = writeCheckpointParts(m.path, m.parts);
    numbers[1] = performance.now() - t0;
    Atomics.store(flag, 0, STATUS_WRITTEN);
    port.postMessage({ type: 'written' });
  } catch (e) {
    const err = e as Error & { code?: string };
    Atomics.store(flag, 0, STATUS_FAILED);
    port.postMessage({ type: 'failed', code: err.code ?? 'ERR_CKPT_IO', message: err.message });
  }
});
