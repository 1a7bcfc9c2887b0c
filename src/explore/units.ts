/**
 * The explorer's search, cut into units that can run anywhere — in this thread, in worker
 * threads, on other machines — and be combined, in a fixed order, into exactly the result of
 * running them one after the other.
 *
 * - A dfs unit is a subtree of the choice tree: the executions whose answers begin with
 *   `prefix`, explored depth first with backtracking only at choice points at or below
 *   `floor`. The whole search is the root unit ([], 0); splitting a unit runs its first
 *   execution and replaces the unit by that execution and, deepest first, one unit per
 *   untried answer along it, which is the order in which the depth-first search visits them.
 * - A sample unit (random, pct) is a range of execution numbers: execution i is a pure
 *   function of (seed, i).
 *
 * A unit reports what combining needs: its executions, whether it ran to its end, the
 * choice-prefix hashes it reached (each with the first execution that reached it, so a unit
 * can be cut at an execution budget), where its depth grew, and its first violation.
 */
import { mulberry32 } from '../kernel/choices.js';
import { type Footprint, footprintsConflict, GLOBAL_FOOTPRINT } from '../kernel/footprint.js';
import { type BufferPool, withBufferPool } from '../kernel/mm.js';
import {
  type ChoicePoint,
  CutShort,
  type Execution,
  ExecutionChoices,
  execute,
  type Target,
  type Violation,
} from './execute.js';

export type Strategy = 'dfs' | 'random' | 'pct';

/** What every unit of one search shares. */
export interface SearchConfig {
  readonly strategy: Strategy;
  /** dfs: preemption bound */
  readonly bound: number;
  /** dfs: injected faults per execution */
  readonly maxFaults: number;
  /** random/pct */
  readonly seed: number;
  readonly faultProbability: number;
  /** pct: bug depth d */
  readonly depth: number;
  /** pct: scheduling decisions per execution (k), estimated once per search */
  readonly k: number;
  /** do not stop at the first violation: run the whole budget (the first is still reported) */
  readonly keepGoing?: boolean;
  /** dfs: sleep sets over the footprints of steps (explore.ts); only without preemptions */
  readonly por?: boolean;
}

export type UnitSpec =
  | { readonly kind: 'dfs'; readonly prefix: readonly number[]; readonly floor: number }
  | { readonly kind: 'sample'; readonly from: number; readonly to: number };

export interface UnitResult {
  readonly executions: number;
  /** every execution of the unit ran (dfs: the subtree is exhausted) */
  readonly exhausted: boolean;
  /** the choice-prefix hashes first reached in this unit, in order */
  readonly hashes: number[];
  /** for each hash, the execution (0-based, within the unit) that first reached it */
  readonly hashAt: number[];
  /** pairs (execution, depth): where the longest choice sequence of the unit grew */
  readonly depthSteps: number[];
  /** the unit's first violation: execution `at` (0-based), its answers */
  readonly found?: { readonly at: number; readonly choices: number[]; readonly violation: Violation };
}

/** the answer that is neither a preemption nor a fault */
export function defaultAnswer(p: Omit<ChoicePoint, 'value'>): number {
  return p.kind === 'sched' && p.prev >= 0 ? p.prev : 0;
}

type Decision = Pick<ChoicePoint, 'kind' | 'prev'>;
const isPreemption = (p: Decision, v: number) => p.kind === 'sched' && p.prev >= 0 && v !== p.prev;
const isFault = (p: Decision, v: number) =>
  (p.kind === 'fault-alloc' || p.kind === 'fault-signal') && v !== 0;

/** Per-execution seed: mixes the search seed and the execution number. */
function executionSeed(seed: number, i: number): number {
  return (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) + Math.imul(i + 1, 0xc2b2ae35)) >>> 0;
}

/** 52-bit hashes of each prefix of a choice sequence (0 is the empty prefix). */
export function prefixHashes(log: readonly ChoicePoint[], out: (h: number) => void): void {
  let h1 = 0x811c9dc5;
  let h2 = 0x2545f491;
  out(0);
  for (const c of log) {
    h1 = Math.imul(h1 ^ (c.value + 1), 0x01000193) >>> 0;
    h2 = Math.imul(h2 ^ (c.value * 31 + c.n), 0x5bd1e995) >>> 0;
    out(h1 * 0x100000 + (h2 & 0xfffff) + 1);
  }
}

/** A sleep set: the tasks whose next step need not run here, with that step's footprint. */
type SleepSet = ReadonlyMap<string, Footprint>;
const NO_SLEEPERS: SleepSet = new Map();

interface DfsEntry {
  n: number;
  kind: ChoicePoint['kind'];
  prev: number;
  value: number;
  tried: Set<number>;
  preemptsBefore: number;
  faultsBefore: number;
  /**
   * sleep sets, at a free decision (every decision of the reduced search that picks a task):
   * the candidates, the sleep set on arrival, the answers explored before the current one
   * (task and the footprint of its run) and the footprint of the current answer's run (the
   * chosen task's, until another task runs: ExecutionChoices.ownFootprints)
   */
  por?: { tasks: readonly string[]; asleep: SleepSet; done: [string, Footprint][]; fp: Footprint | null };
}

/** A free decision: a scheduling decision where the task that ran last cannot go on. */
const isFree = (p: Decision) => p.kind === 'sched' && p.prev < 0;

/**
 * Extend the dfs stack with the choice points of `ex` past its end (checking the rest); with
 * sleep sets, record at each free decision its sleep set (`asleep`, from SleepSetAnswers) and
 * the footprint of the step its answer ran.
 */
function extendStack(stack: DfsEntry[], ex: Execution, asleep?: ReadonlyMap<number, SleepSet>): void {
  const log = ex.log;
  const fps = ex.footprints;
  for (let i = 0; i < log.length; i++) {
    const c = log[i]!;
    if (i < stack.length) {
      const e = stack[i]!;
      if (e.n !== c.n || e.kind !== c.kind)
        throw new Error(`nondeterminism: choice ${i} was ${e.kind}/${e.n}, now ${c.kind}/${c.n}`);
      if (e.por && !e.por.fp) e.por.fp = stepFootprint(ex, i, 'own');
      continue;
    }
    const before = stack[i - 1];
    const e: DfsEntry = {
      n: c.n,
      kind: c.kind,
      prev: c.prev,
      value: c.value,
      tried: new Set([c.value]),
      preemptsBefore: before ? before.preemptsBefore + (isPreemption(before, before.value) ? 1 : 0) : 0,
      faultsBefore: before ? before.faultsBefore + (isFault(before, before.value) ? 1 : 0) : 0,
    };
    if (fps && asleep && isFree(c) && c.tasks)
      e.por = {
        tasks: c.tasks,
        asleep: asleep.get(i) ?? NO_SLEEPERS,
        done: [],
        fp: stepFootprint(ex, i, 'own'),
      };
    stack.push(e);
  }
  stack.length = Math.min(stack.length, log.length);
}

/**
 * The footprint of the step after free decision `i` of `ex`. The last step of an execution
 * that ended with a violation stopped part-way: it counts as touching everything.
 */
function stepFootprint(ex: Execution, i: number, part: 'all' | 'own' = 'all'): Footprint {
  const f = (part === 'own' ? ex.ownFootprints : ex.footprints)?.get(i);
  if (!f) return GLOBAL_FOOTPRINT;
  if (ex.violation) {
    for (let j = i + 1; j < ex.log.length; j++) if (isFree(ex.log[j]!)) return f;
    return GLOBAL_FOOTPRINT;
  }
  return f;
}

/** Move entry `e` to answer `v`: the step of the answer it leaves joins those explored. */
function advance(e: DfsEntry, v: number): void {
  e.tried.add(v);
  if (e.por) {
    e.por.done.push([e.por.tasks[e.value]!, e.por.fp ?? GLOBAL_FOOTPRINT]);
    e.por.fp = null;
  }
  e.value = v;
}

/**
 * The sleep set after a step with footprint `f`: the tasks asleep before it, and those
 * explored before the answer that ran it (`done`), whose steps do not conflict with it.
 */
function stillAsleep(asleep: SleepSet, done: readonly [string, Footprint][], f: Footprint): SleepSet {
  if (f.global) return NO_SLEEPERS;
  const out = new Map<string, Footprint>();
  for (const [t, g] of asleep) if (!footprintsConflict(g, f)) out.set(t, g);
  for (const [t, g] of done) if (!footprintsConflict(g, f)) out.set(t, g);
  return out;
}

/**
 * The answers of a dfs execution with sleep sets (Godefroid, "Partial-order methods for the
 * verification of concurrent systems", 1996, ch. 5): the prefix, then at each free decision
 * the first candidate that is not asleep; when every candidate is asleep, whatever follows is
 * equivalent to an execution already explored, and the execution is cut short. The sleep set
 * at a free decision is that of the one before, together with the answers explored there
 * before the current one, less every task whose step conflicts with the step that ran in
 * between (footprintsConflict).
 */
class SleepSetAnswers {
  private lastFree = -1;
  private lastAsleep: SleepSet = NO_SLEEPERS;
  /** the sleep set at each free decision of the execution */
  readonly asleep = new Map<number, SleepSet>();
  choices: ExecutionChoices | null = null;
  constructor(
    private readonly stack: readonly DfsEntry[],
    private readonly prefix: readonly number[],
  ) {}
  get prefixLength(): number {
    return this.prefix.length;
  }

  readonly answer = (i: number, p: Omit<ChoicePoint, 'value'>): number => {
    const given = i < this.prefix.length ? this.prefix[i]! : -1;
    if (!isFree(p)) return given >= 0 ? given : defaultAnswer(p);
    const z = this.sleepAt(i);
    this.asleep.set(i, z);
    if (given >= 0) return given;
    const tasks = p.tasks;
    if (!tasks) return 0;
    for (let v = 0; v < tasks.length; v++) if (!z.has(tasks[v]!)) return v;
    throw new CutShort();
  };

  private sleepAt(i: number): SleepSet {
    const prevFree = this.lastFree;
    this.lastFree = i;
    const known = this.stack[i]?.por;
    let z: SleepSet;
    if (known) z = known.asleep;
    else if (prevFree < 0) z = NO_SLEEPERS;
    else {
      // the step since the previous free decision has just been closed (ExecutionChoices)
      const f = this.choices!.footprints!.get(prevFree) ?? GLOBAL_FOOTPRINT;
      const pe = this.stack[prevFree]?.por;
      z = pe ? stillAsleep(pe.asleep, pe.done, f) : stillAsleep(this.lastAsleep, [], f);
    }
    this.lastAsleep = z;
    return z;
  }
}

/**
 * The footprint of the step that answer `value` at free decision `at` runs after `prefix`
 * (the answers before `at`): an execution cut short at the next free decision, not counted
 * as one of the search's executions.
 */
function probeStep(
  target: Target,
  prefix: readonly number[],
  at: number,
  value: number,
  trace: boolean,
): Execution {
  const choices = new ExecutionChoices(
    (i, p) => {
      if (i > at && isFree(p)) throw new CutShort();
      return i < at ? prefix[i]! : i === at ? value : defaultAnswer(p);
    },
    false,
    true,
  );
  // traced as the unit's executions are: the objects a run makes, and their names, are the same
  return execute(target, choices, { invariants: false, trace });
}

/**
 * The dfs stack along a unit's prefix with its sleep sets, as the whole search would have
 * them when it reaches the unit: the answers explored before the prefix's at each free
 * decision are those not asleep with a smaller index (the reduced search takes the free
 * candidates in order), and the footprints of their steps come from probes.
 */
function prefixStack(
  target: Target,
  prefix: readonly number[],
  buffers: ExecutionBuffers,
  trace = false,
): DfsEntry[] {
  const stack: DfsEntry[] = [];
  if (prefix.length === 0) return stack;
  const scout = withBufferPool(buffers, () =>
    probeStep(target, prefix, prefix.length - 1, prefix.at(-1)!, trace),
  );
  buffers.reclaim();
  if (scout.log.length < prefix.length)
    throw new Error(`dfs unit prefix of ${prefix.length} answers ends early`);
  extendStack(stack, { ...scout, log: scout.log.slice(0, prefix.length) });
  let asleep: SleepSet = NO_SLEEPERS;
  let last: DfsEntry['por'] | null = null;
  let lastFp: Footprint = GLOBAL_FOOTPRINT;
  for (let j = 0; j < prefix.length; j++) {
    const c = scout.log[j]!;
    const e = stack[j]!;
    if (!isFree(c) || !c.tasks) continue;
    if (last) asleep = stillAsleep(last.asleep, last.done, lastFp);
    const done: [string, Footprint][] = [];
    for (let v = 0; v < e.value; v++) {
      const t = c.tasks[v]!;
      if (asleep.has(t)) continue;
      const probe = withBufferPool(buffers, () => probeStep(target, prefix, j, v, trace));
      buffers.reclaim();
      done.push([t, stepFootprint(probe, j, 'own')]);
    }
    lastFp = stepFootprint(scout, j);
    e.por = { tasks: c.tasks, asleep, done, fp: stepFootprint(scout, j, 'own') };
    last = e.por;
  }
  return stack;
}

/** the answers of entry `e` other than its value, within the bounds, in increasing order */
function alternatives(e: DfsEntry, cfg: SearchConfig): number[] {
  const out: number[] = [];
  for (let v = 0; v < e.n; v++) {
    if (e.tried.has(v)) continue;
    if (e.por?.asleep.has(e.por.tasks[v]!)) continue;
    if (e.preemptsBefore + (isPreemption(e, v) ? 1 : 0) > cfg.bound) continue;
    if (e.faultsBefore + (isFault(e, v) ? 1 : 0) > cfg.maxFaults) continue;
    out.push(v);
  }
  return out;
}

const fault = (p: Omit<ChoicePoint, 'value'>) => p.kind === 'fault-alloc' || p.kind === 'fault-signal';

/** The answer function of sample execution `i` (random or pct), and whether it needs the candidates. */
function sampleAnswers(
  cfg: SearchConfig,
  i: number,
): { answer: (i: number, p: Omit<ChoicePoint, 'value'>) => number; tasks: boolean } {
  const rng = mulberry32(executionSeed(cfg.seed, i));
  const unit = () => rng() / 0x100000000;
  const pFault = cfg.faultProbability;
  // a fault point injects with probability pFault; a signal-arrival point (n > 2) then picks
  // its process and signal uniformly
  const injected = (p: Omit<ChoicePoint, 'value'>) =>
    unit() < pFault ? (p.n > 2 ? 1 + (rng() % (p.n - 1)) : 1) : 0;
  if (cfg.strategy === 'random')
    return { answer: (_i, p) => (fault(p) ? injected(p) : rng() % p.n), tasks: false };
  const d = Math.max(1, cfg.depth);
  const changes = new Map<number, number>();
  for (let j = 1; j < d; j++) changes.set(rng() % cfg.k, j);
  const prio = new Map<string, number>();
  let schedNo = 0;
  const answer = (_i: number, p: Omit<ChoicePoint, 'value'>) => {
    if (fault(p)) return injected(p);
    if (p.kind !== 'sched' || !p.tasks) return rng() % p.n;
    for (const t of p.tasks) if (!prio.has(t)) prio.set(t, d + unit());
    const best = () => {
      let b = 0;
      for (let i = 1; i < p.tasks!.length; i++) if (prio.get(p.tasks![i]!)! > prio.get(p.tasks![b]!)!) b = i;
      return b;
    };
    let b = best();
    const cp = changes.get(schedNo++);
    if (cp !== undefined) {
      prio.set(p.tasks[b]!, d - cp); // below every initial priority
      b = best();
    }
    return b;
  };
  return { answer, tasks: true };
}

/**
 * pct's k: the scheduling decisions of the non-preemptive execution (at least 32). Estimated
 * once, before the search, so that execution i is a pure function of (seed, i).
 */
export function estimatePctK(target: Target): number {
  const ex = execute(target, new ExecutionChoices((_i, p) => defaultAnswer(p)));
  return Math.max(32, ex.log.filter((c) => c.kind === 'sched').length);
}

/**
 * The buffers of a unit's executions: those of a finished execution are lent again, zeroed,
 * to the next (its kernel is gone: the explorer keeps only its answers and violation).
 */
export class ExecutionBuffers implements BufferPool {
  private readonly free = new Map<number, Uint8Array[]>();
  private lent: Uint8Array[] = [];
  private freeBytes = 0;

  alloc(size: number): Uint8Array {
    const b = this.free.get(size)?.pop();
    if (b) {
      this.freeBytes -= size;
      b.fill(0);
    }
    const out = b ?? new Uint8Array(size);
    this.lent.push(out);
    return out;
  }

  /** the execution is over: its buffers can be lent again (up to 256 MiB kept) */
  reclaim(): void {
    for (const b of this.lent) {
      if (this.freeBytes + b.length > 256 << 20) break;
      let l = this.free.get(b.length);
      if (!l) this.free.set(b.length, (l = []));
      l.push(b);
      this.freeBytes += b.length;
    }
    this.lent = [];
  }
}

export interface RunUnitOptions {
  /** at most this many executions */
  limit: number;
  /** asked between executions: stop the unit (its result is then not exhausted) */
  stop?: () => boolean;
  /** called after every execution, with the distinct prefixes the unit reached so far */
  onExecution?: (ex: Execution, states: number) => void;
  /**
   * dfs: asked between executions; when it wants work, the unit gives away the untried
   * answers at its shallowest choice point that has any (`give`, possibly nothing), as units
   * that come after the rest of this one in the depth-first order
   */
  donate?: { wanted(): boolean; give(units: UnitSpec[]): void };
  /**
   * where executions take their guest memory from; pass the same one to every unit a thread
   * runs (each unit of random executions would otherwise allocate megabytes afresh)
   */
  buffers?: ExecutionBuffers;
  /** record every execution's trace (tests that compare what executions did) */
  trace?: boolean;
}

/** Run one unit of a search. */
export function runUnit(target: Target, cfg: SearchConfig, spec: UnitSpec, o: RunUnitOptions): UnitResult {
  const seen = new Set<number>();
  const hashes: number[] = [];
  const hashAt: number[] = [];
  const depthSteps: number[] = [];
  let depth = 0;
  let executions = 0;
  let found: UnitResult['found'];
  const buffers = o.buffers ?? new ExecutionBuffers();
  const run = (
    answer: (i: number, p: Omit<ChoicePoint, 'value'>) => number,
    tasks: boolean,
    checkedPrefix = 0,
    sleep: SleepSetAnswers | null = null,
  ): Execution => {
    // the decisions of the prefix are on the stack already, named
    const choices = new ExecutionChoices(answer, tasks, sleep !== null, sleep?.prefixLength ?? 0);
    if (sleep) sleep.choices = choices;
    const ex = withBufferPool(buffers, () =>
      execute(target, choices, { checkedPrefix, trace: o.trace ?? false }),
    );
    const at = executions++;
    prefixHashes(ex.log, (h) => {
      if (seen.has(h)) return;
      seen.add(h);
      hashes.push(h);
      hashAt.push(at);
    });
    if (ex.log.length > depth) {
      depth = ex.log.length;
      depthSteps.push(at, depth);
    }
    if (ex.violation && !found) found = { at, choices: ex.log.map((c) => c.value), violation: ex.violation };
    o.onExecution?.(ex, seen.size);
    buffers.reclaim();
    return ex;
  };
  let exhausted = false;
  if (spec.kind === 'sample') {
    for (let i = spec.from; ; i++) {
      if (i >= spec.to) {
        exhausted = true;
        break;
      }
      if (executions >= o.limit || o.stop?.()) break;
      const s = sampleAnswers(cfg, i);
      run(s.answer, s.tasks);
      if (found && !cfg.keepGoing) break;
    }
  } else {
    const stack: DfsEntry[] = cfg.por ? prefixStack(target, spec.prefix, buffers, o.trace) : [];
    let prefix = spec.prefix;
    // answers shared with an execution of this unit that ran clean (see ExecuteOptions)
    let checked = 0;
    for (;;) {
      const fixed = prefix;
      const sleep = cfg.por ? new SleepSetAnswers(stack, fixed) : null;
      const ex = sleep
        ? run(sleep.answer, false, checked, sleep)
        : run((i, p) => (i < fixed.length ? fixed[i]! : defaultAnswer(p)), false, checked);
      if (found && !cfg.keepGoing) break;
      extendStack(stack, ex, sleep?.asleep);
      // backtrack: the deepest choice point (at or below the floor) with an untried answer
      let next: number[] | null = null;
      while (stack.length > spec.floor && !next) {
        const e = stack[stack.length - 1]!;
        const v = alternatives(e, cfg)[0];
        if (v !== undefined) {
          advance(e, v);
          next = stack.map((s) => s.value);
        } else stack.pop();
      }
      if (!next) {
        exhausted = true;
        break;
      }
      // the next execution repeats this one up to its last answer, which it changes
      checked = ex.violation || ex.cutShort ? 0 : next.length - 1;
      if (o.donate?.wanted()) {
        const given: UnitSpec[] = [];
        for (let j = spec.floor; j < stack.length && given.length === 0; j++) {
          const e = stack[j]!;
          for (const v of alternatives(e, cfg)) {
            e.tried.add(v);
            given.push({ kind: 'dfs', prefix: [...next.slice(0, j), v], floor: j + 1 });
          }
        }
        o.donate.give(given);
      }
      prefix = next;
      if (executions >= o.limit || o.stop?.()) break;
    }
  }
  return { executions, exhausted, hashes, hashAt, depthSteps, ...(found ? { found } : {}) };
}

/**
 * Split a dfs unit: its first execution, then, deepest first, one unit per untried answer
 * along that execution — the depth-first order. Returns null when there is nothing to split
 * (a single execution, or the first execution already fails).
 */
function splitDfs(
  target: Target,
  cfg: SearchConfig,
  u: Extract<UnitSpec, { kind: 'dfs' }>,
): Extract<UnitSpec, { kind: 'dfs' }>[] | null {
  const fixed = u.prefix;
  const buffers = new ExecutionBuffers();
  const stack: DfsEntry[] = cfg.por ? prefixStack(target, fixed, buffers) : [];
  const sleep = cfg.por ? new SleepSetAnswers(stack, fixed) : null;
  const choices = new ExecutionChoices(
    sleep ? sleep.answer : (i, p) => (i < fixed.length ? fixed[i]! : defaultAnswer(p)),
    false,
    sleep !== null,
    fixed.length,
  );
  if (sleep) sleep.choices = choices;
  const ex = withBufferPool(buffers, () => execute(target, choices));
  if (ex.violation || ex.log.length <= u.floor) return null;
  extendStack(stack, ex, sleep?.asleep);
  const values = stack.map((s) => s.value);
  const out: Extract<UnitSpec, { kind: 'dfs' }>[] = [{ kind: 'dfs', prefix: u.prefix, floor: stack.length }];
  for (let j = stack.length - 1; j >= u.floor; j--)
    for (const v of alternatives(stack[j]!, cfg))
      out.push({ kind: 'dfs', prefix: [...values.slice(0, j), v], floor: j + 1 });
  return out.length > 1 ? out : null;
}

/** sample units: at most this many executions per unit (a unit is a message round trip) */
const SAMPLE_UNIT = 512;

/**
 * Cut a search of `runs` executions into at least `want` units (when the tree allows), in the
 * search's order. The plan is a pure function of its arguments: every shard computes the same.
 */
export function planUnits(target: Target, cfg: SearchConfig, runs: number, want: number): UnitSpec[] {
  if (cfg.strategy !== 'dfs') {
    const size = Math.max(1, Math.min(SAMPLE_UNIT, Math.ceil(runs / want)));
    const out: UnitSpec[] = [];
    for (let from = 0; from < runs; from += size)
      out.push({ kind: 'sample', from, to: Math.min(runs, from + size) });
    return out;
  }
  let units: Extract<UnitSpec, { kind: 'dfs' }>[] = [{ kind: 'dfs', prefix: [], floor: 0 }];
  // units that cannot be split (single executions) do not count towards `want`; each split
  // costs an execution: no more of them than the budget
  const done = new Set<Extract<UnitSpec, { kind: 'dfs' }>>();
  for (let splits = 0; units.length - done.size < want && splits < Math.min(4 * want, runs); splits++) {
    // split the shallowest unit (the largest subtree, as far as one can tell), earliest first
    let pick = -1;
    for (let i = 0; i < units.length; i++)
      if (!done.has(units[i]!) && (pick < 0 || units[i]!.floor < units[pick]!.floor)) pick = i;
    if (pick < 0) break;
    const u = units[pick]!;
    const parts = splitDfs(target, cfg, u);
    if (!parts) {
      done.add(u);
      continue;
    }
    done.add(parts[0]!); // the first execution alone
    units = [...units.slice(0, pick), ...parts, ...units.slice(pick + 1)];
  }
  return units;
}

/** The combined result of a search's units. */
export interface Combined {
  executions: number;
  states: Set<number>;
  depth: number;
  /** every unit ran to its end within the budget (dfs: the bounded space is exhausted) */
  complete: boolean;
  /** the first violation in the search's order, and its execution number (1-based) */
  found?: { foundAt: number; choices: number[]; violation: Violation; unit: number };
}

/**
 * Combine unit results in the search's order into what running them one after the other
 * with a budget of `runs` executions gives. A missing result (a unit that did not run) ends
 * the combination, as a budget does.
 */
export function combineUnits(
  results: readonly (UnitResult | undefined)[],
  runs: number,
  keepGoing = false,
): Combined {
  const out: Combined = { executions: 0, states: new Set(), depth: 0, complete: false };
  for (let j = 0; j < results.length; j++) {
    const r = results[j];
    if (!r) return out;
    const take = Math.min(r.executions, runs - out.executions);
    if (keepGoing && r.found && r.found.at < take && !out.found)
      out.found = {
        foundAt: out.executions + r.found.at + 1,
        choices: r.found.choices,
        violation: r.found.violation,
        unit: j,
      };
    const last = !keepGoing && r.found && r.found.at < take ? r.found.at + 1 : take;
    for (let i = 0; i < r.hashes.length && r.hashAt[i]! < last; i++) out.states.add(r.hashes[i]!);
    for (let i = 0; i < r.depthSteps.length && r.depthSteps[i]! < last; i += 2)
      out.depth = Math.max(out.depth, r.depthSteps[i + 1]!);
    out.executions += last;
    if (!keepGoing && r.found && r.found.at < take) {
      out.found = {
        foundAt: out.executions,
        choices: r.found.choices,
        violation: r.found.violation,
        unit: j,
      };
      return out;
    }
    if (take < r.executions || !r.exhausted) return out;
    if (out.executions >= runs && j < results.length - 1) return out;
  }
  out.complete = !out.found;
  return out;
}
