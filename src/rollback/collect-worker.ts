// The collect writer thread: writes a collected image as an ordinary full
// checkpoint file (src/checkpoint/snapshot.ts), so the CRC of 10s of MiB, the
// writes and the fsyncs happen off the guest's thread. One message in (write),
// one out (written or failed).
import { parentPort } from 'node:worker_threads';
import { writeCheckpointParts, type CheckpointParts } from '../checkpoint/snapshot.js';

export interface CollectWriteRequest {
  path: string;
  parts: CheckpointParts;
}

const port = parentPort;
if (!port) throw new Error('collect-worker runs as a worker thread');

port.on('message', (m: CollectWriteRequest) => {
  try {
    const t0 = performance.now();
    const fileBytes = writeCheckpointParts(m.path, m.parts);
    port.postMessage({ type: 'written', fileBytes, writeMs: performance.now() - t0 });
  } catch (e) {
    const err = e as Error & { code?: string };
    port.postMessage({ type: 'failed', code: err.code ?? 'ERR_CKPT_IO', message: err.message });
  }
});
