// The checkpoint worker thread: runs a ChainWriter for one guest, so that
// encoding, compression, checksums, writing and compaction happen off the
// guest's thread. Messages in: start, epoch, close. Messages out: started,
// written, closed, failed.
import { parentPort, workerData } from 'node:worker_threads';
import { ChainWriter, type ChainWriterOptions, type EpochCapture } from './chain-writer.js';

export type WorkerRequest =
  | { type: 'start'; baseSequence: number; moduleSha256: string; image: Uint8Array }
  | { type: 'epoch'; capture: EpochCapture }
  | { type: 'close' };

const port = parentPort;
if (!port) throw new Error('epoch-worker runs as a worker thread');
const { dir, options } = workerData as { dir: string; options: ChainWriterOptions };
const writer = new ChainWriter(dir, options);

port.on('message', (m: WorkerRequest) => {
  try {
    switch (m.type) {
      case 'start':
        writer.start(m.baseSequence, m.moduleSha256, m.image);
        port.postMessage({ type: 'started' });
        break;
      case 'epoch':
        port.postMessage({ type: 'written', written: writer.append(m.capture) });
        break;
      case 'close':
        writer.close();
        port.postMessage({ type: 'closed' });
        break;
    }
  } catch (e) {
    const err = e as Error & { code?: string };
    port.postMessage({ type: 'failed', code: err.code ?? 'ERR_CKPT_IO', message: err.message });
  }
});
