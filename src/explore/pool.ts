/**
 * Running the units of a search in worker threads (node:worker_threads), synchronously: the
 * calling thread hands out units in the search's order and sleeps on a shared counter
 * (Atomics.wait) between messages, which it takes with receiveMessageOnPort — so explore()
 * stays a plain function, with or without workers. Units past the first violation, or past
 * the execution budget, are cancelled through a shared cut-off; their results are not used.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from 'node:worker_threads';
import type { Target } from './execute.js';
import type { SearchConfig, UnitResult, UnitSpec } from './units.js';

/** workerData of a search worker */
export interface WorkerInit {
  readonly target: Target;
  readonly cfg: SearchConfig;
  readonly port: MessagePort;
  /** [0]: bumped on every message to the coordinator; [1]: units at or past this index stop */
  readonly shared: SharedArrayBuffer;
}

/** coordinator → worker */
export interface UnitTask {
  readonly index: number;
  readonly spec: UnitSpec;
  readonly limit: number;
}

/** worker → coordinator */
export type WorkerMessage =
  | { readonly type: 'ready' }
  | { readonly type: 'progress'; readonly index: number; readonly executions: number; readonly depth: number }
  | { readonly type: 'done'; readonly index: number; readonly result: UnitResult }
  | { readonly type: 'error'; readonly message: string };

export interface PoolOptions {
  readonly workers: number;
  /** the units this process runs (indices into `plan`, increasing) */
  readonly mine: readonly number[];
  /** the execution budget of the whole search */
  readonly runs: number;
  /** the budget applies to `mine` alone as a prefix of the plan (false when sharded) */
  readonly contiguous: boolean;
  readonly outOfTime: () => boolean;
  /** executions so far (finished and running units), the longest choice sequence, states reached */
  readonly onProgress?: (executions: number, depth: number, states: number) => void;
  /** how long a worker may stay silent before the search gives up (ms, default 120 000) */
  readonly silenceMs?: number;
}

/**
 * How a worker is started: the compiled worker.js; from the TypeScript sources (tsx, vitest),
 * worker.ts through tsx's require hook (Node 20 does not apply a parent's --import loader
 * hooks to a worker thread).
 */
function workerEntry(): { source: URL | string; eval: boolean; name: string } {
  const self = import.meta.url;
  if (!self.endsWith('.ts')) {
    const url = new URL('./worker.js', self);
    return { source: url, eval: false, name: url.pathname };
  }
  const file = fileURLToPath(new URL('./worker.ts', self));
  const tsx = createRequire(self).resolve('tsx/cjs/api');
  return {
    source: `require(${JSON.stringify(tsx)}).register(); require(${JSON.stringify(file)});`,
    eval: true,
    name: file,
  };
}

/** Run the units `o.mine` of `plan` in `o.workers` worker threads; results by plan index. */
export function runUnitsInWorkers(
  target: Target,
  cfg: SearchConfig,
  plan: readonly UnitSpec[],
  o: PoolOptions,
): (UnitResult | undefined)[] {
  const results: (UnitResult | undefined)[] = new Array(plan.length);
  const shared = new SharedArrayBuffer(8);
  const sig = new Int32Array(shared);
  Atomics.store(sig, 1, plan.length);
  const entry = workerEntry();
  const silenceMs = o.silenceMs ?? 120_000;
  interface Slot {
    worker: Worker;
    port: MessagePort;
    ready: boolean;
    busy: number; // plan index, or -1
    executions: number;
    heard: number;
  }
  const slots: Slot[] = [];
  const started = performance.now();
  try {
    for (let w = 0; w < Math.min(o.workers, o.mine.length); w++) {
      const { port1, port2 } = new MessageChannel();
      const init: WorkerInit = { target, cfg, port: port2, shared };
      const worker = new Worker(entry.source, { eval: entry.eval, workerData: init, transferList: [port2] });
      worker.unref();
      slots.push({ worker, port: port1, ready: false, busy: -1, executions: 0, heard: started });
    }
    let next = 0; // into o.mine
    let firstFound = Number.POSITIVE_INFINITY; // plan index of the earliest violation
    let depth = 0;
    const states = new Set<number>();
    /** executions of the finished units before `j`, exactly, counting 1 for each unknown one */
    const before = (j: number) => {
      let n = 0;
      for (let i = 0; i < j; i++) n += results[i]?.executions ?? 1;
      return n;
    };
    /**
     * The plan index from which on nothing is needed: past the first violation, and past the
     * budget — once the executions certainly before a unit (finished units, what the running
     * ones have done so far, 1 for each unit yet to run) reach it.
     */
    const cut = (): number => {
      let c = Math.min(plan.length, firstFound + 1);
      if (o.contiguous) {
        let n = 0;
        for (let i = 0; i < c; i++) {
          if (n >= o.runs) {
            c = i;
            break;
          }
          n += results[i]?.executions ?? Math.max(1, slots.find((s) => s.busy === i)?.executions ?? 0);
        }
      }
      if (o.outOfTime()) c = 0;
      return c;
    };
    for (;;) {
      const c = cut();
      Atomics.store(sig, 1, c);
      for (const s of slots) {
        if (!s.ready || s.busy >= 0) continue;
        while (next < o.mine.length && o.mine[next]! >= c) next = o.mine.length;
        if (next >= o.mine.length) continue;
        const index = o.mine[next++]!;
        const task: UnitTask = { index, spec: plan[index]!, limit: Math.max(1, o.runs - before(index)) };
        s.busy = index;
        s.executions = 0;
        s.port.postMessage(task);
      }
      if (slots.every((s) => s.busy < 0) && (next >= o.mine.length || slots.length === 0)) break;
      const seen = Atomics.load(sig, 0);
      let heard = false;
      for (const s of slots) {
        for (let m = receiveMessageOnPort(s.port); m; m = receiveMessageOnPort(s.port)) {
          heard = true;
          s.heard = performance.now();
          const msg = m.message as WorkerMessage;
          if (msg.type === 'error') throw new Error(`explorer worker: ${msg.message}`);
          if (msg.type === 'ready') s.ready = true;
          else if (msg.type === 'progress') {
            s.executions = msg.executions;
            depth = Math.max(depth, msg.depth);
          } else {
            results[msg.index] = msg.result;
            s.busy = -1;
            s.executions = 0;
            for (const h of msg.result.hashes) states.add(h);
            for (let i = 1; i < msg.result.depthSteps.length; i += 2)
              depth = Math.max(depth, msg.result.depthSteps[i]!);
            if (msg.result.found && msg.index < firstFound && !cfg.keepGoing) firstFound = msg.index;
          }
        }
      }
      if (o.onProgress) {
        let n = 0;
        for (const r of results) n += r?.executions ?? 0;
        for (const s of slots) n += s.executions;
        o.onProgress(n, depth, states.size);
      }
      if (heard) continue;
      Atomics.wait(sig, 0, seen, 200);
      const now = performance.now();
      for (const s of slots)
        if ((s.busy >= 0 || !s.ready) && now - s.heard > silenceMs)
          throw new Error(
            s.ready
              ? `explorer worker: no word for ${Math.round(silenceMs / 1000)} s`
              : `explorer worker did not start within ${Math.round(silenceMs / 1000)} s (${entry.name})`,
          );
    }
  } finally {
    Atomics.store(sig, 1, 0);
    for (const s of slots) {
      s.port.close();
      void s.worker.terminate();
    }
  }
  return results;
}
