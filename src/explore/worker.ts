/**
 * A search worker (see pool.ts): runs the units the coordinator hands it, one at a time, and
 * posts each result back; a unit stops early when its stop flag is set, and gives work away
 * when its donate flag is.
 */
import { workerData } from 'node:worker_threads';
import { donateFlag, stopFlag, type UnitTask, type WorkerInit, type WorkerMessage } from './pool.js';
import { ExecutionBuffers, runUnit } from './units.js';

const { target, cfg, port, slot, shared } = workerData as WorkerInit;
const sig = new Int32Array(shared);
/** the guest memory of this thread's executions, lent again from unit to unit */
const buffers = new ExecutionBuffers();

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
      buffers,
      stop: () => Atomics.load(sig, stopFlag(slot)) !== 0,
      donate: {
        wanted: () => Atomics.load(sig, donateFlag(slot)) !== 0,
        give: (units) => {
          Atomics.store(sig, donateFlag(slot), 0);
          send({ type: 'donate', units });
        },
      },
      onExecution: (ex) => {
        executions++;
        if (ex.log.length > depth) depth = ex.log.length;
        const now = performance.now();
        if (now - last >= 250) {
          last = now;
          send({ type: 'progress', executions, depth });
        }
      },
    });
    send({ type: 'done', result });
  } catch (e) {
    send({ type: 'error', message: (e as Error).stack ?? String(e) });
  }
});
send({ type: 'ready' });
