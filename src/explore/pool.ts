/**
 * Running the units of a search on several threads (node:worker_threads), synchronously: the
 * calling thread runs units itself and, between its executions, hands out units in the
 * search's order to n − 1 worker threads and takes their messages with receiveMessageOnPort;
 * with nothing left to run it sleeps on a shared counter (Atomics.wait) — so explore() stays
 * a plain function, with or without workers. Units past the first violation, or past the
 * execution budget, are cancelled through shared flags; their results are not used.
 *
 * A runner left idle asks a running dfs unit to give away work: the untried answers at its
 * shallowest choice point that has any, which come last in its depth-first order. They
 * become units placed right after it: a unit's place is a key (the plan index, then, per
 * donation, −d and the part's number), and results are combined in the order of the keys.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from 'node:worker_threads';
import type { Target } from './execute.js';
import { ExecutionBuffers, runUnit, type SearchConfig, type UnitResult, type UnitSpec } from './units.js';

/** workerData of a search worker */
export interface WorkerInit {
  readonly target: Target;
  readonly cfg: SearchConfig;
  readonly port: MessagePort;
  /** the worker's number: its flags are shared[1 + 2·slot] (stop) and shared[2 + 2·slot] (give work away) */
  readonly slot: number;
  /** Int32 [0]: bumped on every message to the coordinator; then the flags of each worker */
  readonly shared: SharedArrayBuffer;
}

/** coordinator → worker */
export interface UnitTask {
  readonly spec: UnitSpec;
  readonly limit: number;
}

/** worker → coordinator, about its current unit */
export type WorkerMessage =
  | { readonly type: 'ready' }
  | { readonly type: 'progress'; readonly executions: number; readonly depth: number }
  | { readonly type: 'donate'; readonly units: UnitSpec[] }
  | { readonly type: 'done'; readonly result: UnitResult }
  | { readonly type: 'error'; readonly message: string };

/** shared Int32 slots of worker `slot` */
export const stopFlag = (slot: number) => 1 + 2 * slot;
export const donateFlag = (slot: number) => 2 + 2 * slot;

export interface PoolOptions {
  readonly workers: number;
  /** the units this process runs (indices into `plan`, increasing) */
  readonly mine: readonly number[];
  /** the execution budget of the whole search */
  readonly runs: number;
  /**
   * the budget applies to `mine` alone as a prefix of the plan (false when sharded: then
   * units are never split, so that a shard reports the plan's units)
   */
  readonly contiguous: boolean;
  readonly outOfTime: () => boolean;
  /** executions so far (finished and running units), the longest choice sequence, states reached */
  readonly onProgress?: (executions: number, depth: number, states: number) => void;
  /** how long a worker may stay silent before the search gives up (ms, default 120 000) */
  readonly silenceMs?: number;
  /**
   * this thread starts executing only once every worker thread is ready (default false: it
   * starts at once, while the workers load); a search shorter than a worker's start-up then
   * still shows how work is shared
   */
  readonly startTogether?: boolean;
}

/** A unit's result, in the search's order; `plan` is its plan index (null: given away by another). */
export interface PooledResult {
  readonly plan: number | null;
  readonly result: UnitResult | undefined;
}

/** lexicographic order of keys; a key comes before the keys it is a prefix of */
function compareKeys(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < a.length && i < b.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
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

/**
 * Run the units `o.mine` of `plan` on `o.workers` runners: this thread and `o.workers − 1`
 * worker threads; their results (and those of the units they gave away) in the search's
 * order. This thread coordinates between its own executions, so every runner executes
 * (only `o.workers − 1` isolates to start and warm up, none left to wait on the others).
 */
export function runUnitsInWorkers(
  target: Target,
  cfg: SearchConfig,
  plan: readonly UnitSpec[],
  o: PoolOptions,
): PooledResult[] {
  interface Entry {
    readonly key: number[];
    readonly plan: number | null;
    readonly spec: UnitSpec;
    state: 'pending' | 'running' | 'done';
    result?: UnitResult;
    /** executions reported while running */
    executions: number;
    /** donations made so far */
    donations: number;
    /** a request for work came back empty: not asked again */
    dry: boolean;
  }
  /** a runner: a worker thread, or this thread (no worker, no port) */
  interface Slot {
    readonly n: number;
    readonly worker: Worker | null;
    readonly port: MessagePort | null;
    ready: boolean;
    entry: Entry | null;
    asked: boolean;
    heard: number;
  }
  // dfs units can be split among runners (not across shards): every runner may get work
  const splittable = o.contiguous && cfg.strategy === 'dfs';
  const runners = o.mine.length === 0 ? 0 : splittable ? o.workers : Math.min(o.workers, o.mine.length);
  const shared = new SharedArrayBuffer(4 * (1 + 2 * Math.max(1, runners)));
  const sig = new Int32Array(shared);
  const entries: Entry[] = o.mine.map((j) => ({
    key: [j],
    plan: j,
    spec: plan[j]!,
    state: 'pending',
    executions: 0,
    donations: 0,
    dry: false,
  }));
  const entry = workerEntry();
  const silenceMs = o.silenceMs ?? 120_000;
  const slots: Slot[] = [];
  const started = performance.now();
  const buffers = new ExecutionBuffers();
  let firstFound: Entry | null = null; // the earliest unit with a violation
  let depth = 0;
  const states = new Set<number>();
  /** executions certainly before entry i: finished ones, what running ones did, 1 for the others */
  const before = (i: number) => {
    let n = 0;
    for (let e = 0; e < i; e++) n += entries[e]!.result?.executions ?? Math.max(1, entries[e]!.executions);
    return n;
  };
  /** the position from which on nothing is needed: past the first violation, and past the budget */
  const cut = (): number => {
    if (o.outOfTime()) return 0;
    let c = firstFound ? entries.indexOf(firstFound) + 1 : entries.length;
    if (o.contiguous) {
      let n = 0;
      for (let i = 0; i < c; i++) {
        if (n >= o.runs) {
          c = i;
          break;
        }
        n += entries[i]!.result?.executions ?? Math.max(1, entries[i]!.executions);
      }
    }
    return c;
  };
  const donated = (e: Entry, units: UnitSpec[]) => {
    if (units.length === 0) {
      e.dry = true;
      return;
    }
    const d = ++e.donations;
    const parts: Entry[] = units.map((spec, i) => ({
      key: [...e.key, -d, i],
      plan: null,
      spec,
      state: 'pending',
      executions: 0,
      donations: 0,
      dry: false,
    }));
    // right after the unit and what it gave away before (later gifts come earlier)
    let at = entries.indexOf(e) + 1;
    while (at < entries.length && compareKeys(entries[at]!.key, parts[0]!.key) < 0) at++;
    entries.splice(at, 0, ...parts);
  };
  const finished = (s: Slot, e: Entry, result: UnitResult) => {
    e.result = result;
    e.state = 'done';
    s.entry = null;
    s.asked = false;
    for (const h of result.hashes) states.add(h);
    for (let i = 1; i < result.depthSteps.length; i += 2) depth = Math.max(depth, result.depthSteps[i]!);
    if (result.found && !cfg.keepGoing && (!firstFound || compareKeys(e.key, firstFound.key) < 0))
      firstFound = e;
  };
  const progress = () => {
    if (!o.onProgress) return;
    let n = 0;
    for (const e of entries) n += e.result?.executions ?? e.executions;
    o.onProgress(n, depth, states.size);
  };
  /** the next entry to run, if any before the cut */
  const nextPending = (c: number): number => {
    const i = entries.findIndex((e) => e.state === 'pending');
    return i < 0 || i >= c ? -1 : i;
  };
  const claim = (s: Slot, i: number): Entry => {
    const e = entries[i]!;
    e.state = 'running';
    s.entry = e;
    s.asked = false;
    Atomics.store(sig, stopFlag(s.n), 0);
    Atomics.store(sig, donateFlag(s.n), 0);
    return e;
  };
  /**
   * One round of coordination, without blocking: stop units past the cut, hand out units to
   * idle worker threads, ask a running dfs unit to give work to an idle runner, take the
   * workers' messages. Returns whether a message came in.
   */
  const coordinate = (): boolean => {
    const c = cut();
    for (const s of slots) if (s.entry && entries.indexOf(s.entry) >= c) Atomics.store(sig, stopFlag(s.n), 1);
    // nothing goes to a worker thread before every one is ready (they start side by side)
    const ready = slots.every((s) => s.ready);
    for (const s of slots) {
      if (!s.worker || !ready || s.entry) continue;
      const i = nextPending(c);
      if (i < 0) break;
      const e = claim(s, i);
      const task: UnitTask = { spec: e.spec, limit: Math.max(1, o.runs - before(i)) };
      s.port!.postMessage(task);
    }
    // an idle runner and nothing to hand out: ask the earliest running dfs unit for work
    if (splittable && nextPending(c) < 0 && slots.some((s) => !s.entry && (s.ready || !s.worker))) {
      let ask: Slot | null = null;
      for (const x of slots)
        if (x.entry && !x.asked && x.entry.spec.kind === 'dfs' && !x.entry.dry)
          if (!ask || entries.indexOf(x.entry) < entries.indexOf(ask.entry!)) ask = x;
      if (ask && entries.indexOf(ask.entry!) < c) {
        ask.asked = true;
        Atomics.store(sig, donateFlag(ask.n), 1);
      }
    }
    let heard = false;
    for (const s of slots) {
      if (!s.port) continue;
      for (let m = receiveMessageOnPort(s.port); m; m = receiveMessageOnPort(s.port)) {
        heard = true;
        s.heard = performance.now();
        const msg = m.message as WorkerMessage;
        if (msg.type === 'error') throw new Error(`explorer worker: ${msg.message}`);
        if (msg.type === 'ready') {
          s.ready = true;
          continue;
        }
        const e = s.entry!;
        if (msg.type === 'progress') {
          e.executions = msg.executions;
          depth = Math.max(depth, msg.depth);
        } else if (msg.type === 'donate') {
          s.asked = false;
          donated(e, msg.units);
        } else finished(s, e, msg.result);
      }
    }
    if (heard) progress();
    return heard;
  };
  try {
    // this thread is runner 0; worker threads are runners 1 … runners − 1
    const self: Slot = {
      n: 0,
      worker: null,
      port: null,
      ready: true,
      entry: null,
      asked: false,
      heard: started,
    };
    if (runners > 0) slots.push(self);
    for (let n = 1; n < runners; n++) {
      const { port1, port2 } = new MessageChannel();
      const init: WorkerInit = { target, cfg, port: port2, slot: n, shared };
      const worker = new Worker(entry.source, { eval: entry.eval, workerData: init, transferList: [port2] });
      worker.unref();
      slots.push({ n, worker, port: port1, ready: false, entry: null, asked: false, heard: started });
    }
    for (;;) {
      const heard = coordinate();
      const c = cut();
      const i = runners > 0 && (!o.startTogether || slots.every((s) => s.ready)) ? nextPending(c) : -1;
      if (i >= 0) {
        // run a unit here, coordinating between executions (at most every millisecond)
        const e = claim(self, i);
        let last = Number.NEGATIVE_INFINITY; // coordinate after the first execution, then every ms
        const result = runUnit(target, cfg, e.spec, {
          limit: Math.max(1, o.runs - before(i)),
          buffers,
          stop: () => Atomics.load(sig, stopFlag(0)) !== 0,
          donate: {
            wanted: () => Atomics.load(sig, donateFlag(0)) !== 0,
            give: (units) => {
              Atomics.store(sig, donateFlag(0), 0);
              self.asked = false;
              donated(e, units);
            },
          },
          onExecution: () => {
            e.executions++;
            const now = performance.now();
            if (now - last < 1) return;
            last = now;
            if (!coordinate()) progress();
          },
        });
        finished(self, e, result);
        progress();
        continue;
      }
      if (slots.every((s) => !s.entry) && nextPending(c) < 0) break;
      if (heard) continue;
      const seen = Atomics.load(sig, 0);
      if (coordinate()) continue;
      Atomics.wait(sig, 0, seen, 200);
      const now = performance.now();
      for (const s of slots)
        if (s.worker && (s.entry || !s.ready) && now - s.heard > silenceMs)
          throw new Error(
            s.ready
              ? `explorer worker: no word for ${Math.round(silenceMs / 1000)} s`
              : `explorer worker did not start within ${Math.round(silenceMs / 1000)} s (${entry.name})`,
          );
    }
  } finally {
    for (const s of slots) {
      Atomics.store(sig, stopFlag(s.n), 1);
      s.port?.close();
      if (s.worker) void s.worker.terminate();
    }
  }
  return entries.map((e) => ({ plan: e.plan, result: e.result }));
}
