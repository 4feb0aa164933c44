import { Worker } from 'node:worker_threads';

// WAL checkpoints off the event loop. SQLite's automatic checkpoint runs inside whichever
// commit crosses the threshold, copying pages and calling fsync on the server's only thread
// (20-50 ms stalls under steady progress reports). Here a worker thread with its own
// connection runs PASSIVE checkpoints, which never block readers or writers, once a second.

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { DatabaseSync } = require('node:sqlite');
const db = new DatabaseSync(workerData.file, { timeout: 5000 });
const timer = setInterval(() => {
  try { db.exec('PRAGMA wal_checkpoint(PASSIVE)'); } catch { /* busy: the next tick tries again */ }
}, workerData.intervalMs);
parentPort.on('message', () => { clearInterval(timer); try { db.exec('PRAGMA wal_checkpoint(TRUNCATE)'); } catch {} db.close(); parentPort.close(); });
`;

export interface Checkpointer {
  stop(): Promise<void>;
}

export function startCheckpointer(file: string, intervalMs = 1000): Checkpointer {
  // No execArgv: the parent's --input-type=module would make this CommonJS source fail.
  const worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [], workerData: { file, intervalMs } });
  worker.unref();
  return {
    stop: async () => {
      // Held while it finishes its last checkpoint, or an exiting process would not wait.
      worker.ref();
      const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      worker.postMessage('stop');
      await exited;
    },
  };
}
