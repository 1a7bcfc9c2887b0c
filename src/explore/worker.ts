/**
 * A search worker (see pool.ts): runs the units the coordinator hands it, one at a time,
 * and posts each result back; a unit stops early when the shared cut-off passes it.
 */
import { workerData } from 'node:worker_threads';
import type { UnitTask, WorkerInit, WorkerMessage } from './pool.js';
import { runUnit } from './units.js';

const { target, cfg, port, shared } = workerData as WorkerInit;
const sig = new Int32Array(shared);

function send(m: WorkerMessage): void {
  port.postMessage(m);
  Atomics.add(sig, 0, 1);
  Atomics.notify(sig, 0);
}

port.on('message', (task: UnitTask) => {
  try {
    let last = performance.now();
    let executions = 0;
    let depth = 0;
    const result = runUnit(target, cfg, task.spec, {
      limit: task.limit,
      stop: () => Atomics.load(sig, 1) <= task.index,
      onExecution: (ex) => {
        executions++;
        if (ex.log.length > depth) depth = ex.log.length;
        const now = performance.now();
        if (now - last >= 250) {
          last = now;
          send({ type: 'progress', index: task.index, executions, depth });
        }
      },
    });
    send({ type: 'done', index: task.index, result });
  } catch (e) {
    send({ type: 'error', message: (e as Error).stack ?? String(e) });
  }
});
send({ type: 'ready' });
