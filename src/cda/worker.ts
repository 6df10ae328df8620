// The CDA helper thread: one CdaCommitter per service. The application's
// thread posts jobs whose bytes sit in a shared staging buffer (not copied
// again, not transferred); this thread encodes, compresses, seals and commits
// them, and answers. Messages in: open, commit, close. Out: opened, committed,
// closed, failed.
import { parentPort } from 'node:worker_threads';
import { CdaCommitter, type CdaTargetSpec, type CommitJob } from './committer.js';

export type CdaWorkerRequest = { type: 'open'; target: CdaTargetSpec } | { type: 'commit'; job: CommitJob } | { type: 'close' };

const port = parentPort;
if (!port) throw new Error('the CDA worker runs as a worker thread');
let committer: CdaCommitter | null = null;
// One request at a time, in order (a commit awaits its target).
let chain: Promise<void> = Promise.resolve();

function failed(e: unknown): void {
  const err = e as Error & { code?: string };
  port!.postMessage({ type: 'failed', code: err.code ?? 'ERR_CDA_IO', message: err.message });
}

port.on('message', (m: CdaWorkerRequest) => {
  chain = chain.then(async () => {
    try {
      switch (m.type) {
        case 'open':
          committer = await CdaCommitter.open(m.target);
          port.postMessage({ type: 'opened', state: committer.committed, stop: committer.stop });
          break;
        case 'commit': {
          const done = await committer!.commit(m.job);
          port.postMessage({ type: 'committed', done });
          // Compaction is not part of the commit: after the answer.
          try {
            committer!.compactIfDue();
          } catch {
            // A failed compaction leaves base and log as they were; the next commit tries again.
          }
          break;
        }
        case 'close':
          committer?.close();
          committer = null;
          port.postMessage({ type: 'closed' });
          break;
      }
    } catch (e) {
      failed(e);
    }
  });
});
