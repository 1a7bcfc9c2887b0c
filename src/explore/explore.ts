/**
 * The explorer: search the choice sequences of a scenario on a profile for an execution that
 * breaks an invariant, deadlocks, runs out of its step budget or fails an expectation.
 *
 * Every execution re-runs from boot (stateless model checking); what differs between
 * executions is only the answers given to Choices. Three strategies:
 *
 * - `dfs`: systematic. The first execution follows the *non-preemptive* default (keep running
 *   the task that ran last while it is runnable; otherwise the first candidate; first timer;
 *   no fault). Then, depth first, every other answer at every choice point, deepest first, as
 *   long as the execution's preemptions stay within `preemptions` (a 'sched' answer that does
 *   not pick the previous task while it is still runnable is one preemption, as in CHESS's
 *   iterative context bounding) and its injected faults within `maxFaults`. If the search
 *   finishes within `runs` executions, the result is `complete`: no interleaving with at most
 *   that many preemptions (and faults) violates anything.
 *   No sleep sets or other partial-order reduction: deciding that two slices commute needs the
 *   set of kernel objects each touches, which the model does not record (a slice can read a
 *   flag, like vhost_task's STOP bit, without leaving any trace). Pruning on trace events alone
 *   would be unsound and would have pruned the very race we look for; preemption bounding is
 *   the reduction used instead.
 * - `random`: every answer uniformly at random (faults with probability `faultProbability`),
 *   execution i seeded from (seed, i): the whole search is a pure function of the seed.
 * - `pct`: Probabilistic Concurrency Testing (Burckhardt et al., ASPLOS 2010): every task gets
 *   a random priority when first seen, the highest-priority runnable task runs, and at d−1
 *   random change points (among the k scheduling decisions of an execution, k learned from the
 *   previous executions) the running task drops below all others. A bug of depth d is found
 *   with probability ≥ 1/(n·k^(d−1)) per execution.
 */
import { mulberry32 } from '../kernel/choices.js';
import {
  type ChoicePoint,
  DEFAULT_MAX_STEPS,
  type Execution,
  ExecutionChoices,
  execute,
  type Target,
  type Violation,
  violationSignature,
} from './execute.js';
import { shrinkChoices } from './shrink.js';

export type Strategy = 'dfs' | 'random' | 'pct';
export const STRATEGIES: readonly Strategy[] = ['dfs', 'random', 'pct'];

export interface ExploreOptions {
  strategy?: Strategy;
  /** at most this many executions (default: dfs 10 000, random/pct 1 000) */
  runs?: number;
  /** seed of the random and pct strategies (default 1) */
  seed?: number;
  /** dfs: preemption bound (default 2) */
  preemptions?: number;
  /** dfs: injected faults per execution (default 1; faults only when the target enables them) */
  maxFaults?: number;
  /** pct: bug depth d (default 3) */
  depth?: number;
  /** random/pct: probability that an allocation point fails (default 0.05) */
  faultProbability?: number;
  /** stop after this much wall time (ms) */
  timeBudgetMs?: number;
  /** shrink a counterexample (default true) */
  shrink?: boolean;
  /** at most this many executions spent shrinking (default 2 000) */
  shrinkRuns?: number;
  /** progress callback, at most every `progressEveryMs` (default 1000) */
  onProgress?: (p: ExploreProgress) => void;
  progressEveryMs?: number;
  /** monotonic ms clock (default performance.now) */
  now?: () => number;
}

export interface ExploreProgress {
  executions: number;
  states: number;
  /** the longest choice sequence so far */
  depth: number;
  elapsedMs: number;
  executionsPerSec: number;
}

export interface Counterexample {
  /** the shrunk answers (ReplayChoices semantics: past the end, every answer is 0) */
  readonly choices: number[];
  /** the answers of the execution as found, before shrinking */
  readonly found: number[];
  readonly violation: Violation;
  /** how many executions the search needed to find it (1-based) */
  readonly foundAt: number;
  /** executions spent shrinking */
  readonly shrinkRuns: number;
  /** wall time spent shrinking (ms; not part of the search's elapsedMs) */
  readonly shrinkMs: number;
}

export interface ExploreResult {
  readonly strategy: Strategy;
  readonly verdict: 'violation' | 'ok';
  /** dfs only: the whole bounded space was searched */
  readonly complete: boolean;
  readonly executions: number;
  /** distinct choice prefixes visited (nodes of the choice tree) */
  readonly states: number;
  readonly depth: number;
  /** wall time of the search (ms), shrinking excluded */
  readonly elapsedMs: number;
  readonly counterexample?: Counterexample;
}

/** the answer that is neither a preemption nor a fault */
function defaultAnswer(p: Omit<ChoicePoint, 'value'>): number {
  return p.kind === 'sched' && p.prev >= 0 ? p.prev : 0;
}

type Decision = Pick<ChoicePoint, 'kind' | 'prev'>;
const isPreemption = (p: Decision, v: number) => p.kind === 'sched' && p.prev >= 0 && v !== p.prev;
const isFault = (p: Decision, v: number) =>
  (p.kind === 'fault-alloc' || p.kind === 'fault-signal') && v !== 0;

/** A 52-bit hash of each prefix of a choice sequence, for counting distinct states. */
class PrefixSet {
  private readonly seen = new Set<number>();
  add(log: readonly ChoicePoint[]): void {
    let h1 = 0x811c9dc5;
    let h2 = 0x2545f491;
    this.seen.add(0);
    for (const c of log) {
      h1 = Math.imul(h1 ^ (c.value + 1), 0x01000193) >>> 0;
      h2 = Math.imul(h2 ^ (c.value * 31 + c.n), 0x5bd1e995) >>> 0;
      this.seen.add(h1 * 0x100000 + (h2 & 0xfffff) + 1);
    }
  }
  get size(): number {
    return this.seen.size;
  }
}

/** Per-execution seed: mixes the search seed and the execution number. */
function executionSeed(seed: number, i: number): number {
  return (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) + Math.imul(i + 1, 0xc2b2ae35)) >>> 0;
}

interface DfsEntry {
  n: number;
  kind: ChoicePoint['kind'];
  prev: number;
  value: number;
  tried: Set<number>;
  preemptsBefore: number;
  faultsBefore: number;
}

/**
 * Search `target` for a violation with `o.strategy`; shrink the first one found.
 *
 * @example
 * const sc = loadScenario('scenarios/races/lost-wakeup.yaml');
 * const r = explore({ scenario: sc, profile: 'linux-6.4-rc5' }, { strategy: 'dfs', preemptions: 2 });
 * r.verdict; // 'violation', r.counterexample.violation.kind === 'deadlock'
 */
export function explore(target: Target, o: ExploreOptions = {}): ExploreResult {
  const strategy = o.strategy ?? 'dfs';
  const runs = o.runs ?? (strategy === 'dfs' ? 10_000 : 1_000);
  const seed = o.seed ?? 1;
  const bound = o.preemptions ?? 2;
  const maxFaults = o.maxFaults ?? 1;
  const pFault = o.faultProbability ?? 0.05;
  const now = o.now ?? (() => performance.now());
  const t0 = now();
  const states = new PrefixSet();
  let depth = 0;
  let executions = 0;
  let lastProgress = t0;
  const progressEvery = o.progressEveryMs ?? 1000;
  const progress = (): ExploreProgress => {
    const elapsedMs = now() - t0;
    return {
      executions,
      states: states.size,
      depth,
      elapsedMs,
      executionsPerSec: elapsedMs > 0 ? (executions * 1000) / elapsedMs : 0,
    };
  };

  let found: Execution | null = null;
  let complete = false;

  /** run one execution (`tasks`: record the sched candidates, for pct) */
  const runOne = (answer: (i: number, p: Omit<ChoicePoint, 'value'>) => number, tasks = false): Execution => {
    const ex = execute(target, new ExecutionChoices(answer, tasks));
    executions++;
    states.add(ex.log);
    if (ex.log.length > depth) depth = ex.log.length;
    if (o.onProgress) {
      const t = now();
      if (t - lastProgress >= progressEvery) {
        lastProgress = t;
        o.onProgress(progress());
      }
    }
    if (ex.violation) found = ex;
    return ex;
  };
  const outOfTime = () => o.timeBudgetMs !== undefined && now() - t0 > o.timeBudgetMs;

  if (strategy === 'dfs') {
    const stack: DfsEntry[] = [];
    let prefix: number[] = [];
    for (;;) {
      const fixed = prefix;
      const ex = runOne((i, p) => (i < fixed.length ? fixed[i]! : defaultAnswer(p)));
      if (found) break;
      // extend the stack with the choice points past the prefix
      for (let i = 0; i < ex.log.length; i++) {
        const c = ex.log[i]!;
        if (i < stack.length) {
          if (stack[i]!.n !== c.n || stack[i]!.kind !== c.kind)
            throw new Error(
              `nondeterminism: choice ${i} was ${stack[i]!.kind}/${stack[i]!.n}, now ${c.kind}/${c.n}`,
            );
          continue;
        }
        const before = stack[i - 1];
        const preemptsBefore = before
          ? before.preemptsBefore + (isPreemption(before, before.value) ? 1 : 0)
          : 0;
        const faultsBefore = before ? before.faultsBefore + (isFault(before, before.value) ? 1 : 0) : 0;
        stack.push({
          n: c.n,
          kind: c.kind,
          prev: c.prev,
          value: c.value,
          tried: new Set([c.value]),
          preemptsBefore,
          faultsBefore,
        });
      }
      stack.length = Math.min(stack.length, ex.log.length);
      // backtrack: the deepest choice point with an untried answer within the bounds
      let next: number[] | null = null;
      while (stack.length > 0 && !next) {
        const e = stack[stack.length - 1]!;
        for (let v = 0; v < e.n; v++) {
          if (e.tried.has(v)) continue;
          if (e.preemptsBefore + (isPreemption(e, v) ? 1 : 0) > bound) continue;
          if (e.faultsBefore + (isFault(e, v) ? 1 : 0) > maxFaults) continue;
          e.tried.add(v);
          e.value = v;
          next = stack.map((s) => s.value);
          break;
        }
        if (!next) stack.pop();
      }
      if (!next) {
        complete = true;
        break;
      }
      prefix = next;
      if (executions >= runs || outOfTime()) break;
    }
  } else {
    let k = 32; // pct: scheduling decisions per execution, learned
    for (let run = 0; run < runs && !found && !outOfTime(); run++) {
      const rng = mulberry32(executionSeed(seed, run));
      const unit = () => rng() / 0x100000000;
      const fault = (p: Omit<ChoicePoint, 'value'>) => p.kind === 'fault-alloc' || p.kind === 'fault-signal';
      if (strategy === 'random') {
        runOne((_i, p) => (fault(p) ? (unit() < pFault ? 1 : 0) : rng() % p.n));
      } else {
        const d = Math.max(1, o.depth ?? 3);
        const changes = new Map<number, number>();
        for (let j = 1; j < d; j++) changes.set(rng() % k, j);
        const prio = new Map<string, number>();
        let schedNo = 0;
        const ex = runOne((_i, p) => {
          if (fault(p)) return unit() < pFault ? 1 : 0;
          if (p.kind !== 'sched' || !p.tasks) return rng() % p.n;
          for (const t of p.tasks) if (!prio.has(t)) prio.set(t, d + unit());
          const best = () => {
            let b = 0;
            for (let i = 1; i < p.tasks!.length; i++)
              if (prio.get(p.tasks![i]!)! > prio.get(p.tasks![b]!)!) b = i;
            return b;
          };
          let b = best();
          const cp = changes.get(schedNo++);
          if (cp !== undefined) {
            prio.set(p.tasks[b]!, d - cp); // below every initial priority
            b = best();
          }
          return b;
        }, true);
        k = Math.max(k, ex.log.filter((c) => c.kind === 'sched').length);
      }
    }
  }

  const searchMs = now() - t0;
  const f = found as Execution | null;
  if (!f) {
    o.onProgress?.(progress());
    return {
      strategy,
      verdict: 'ok',
      complete,
      executions,
      states: states.size,
      depth,
      elapsedMs: searchMs,
    };
  }
  const foundAt = executions;
  const s0 = now();
  const foundChoices = f.log.map((c) => c.value);
  const violation = f.violation!;
  let choices = stripZeros(foundChoices);
  let shrinkRuns = 0;
  if (o.shrink ?? true) {
    const sig = violationSignature(violation);
    const s = shrinkChoices(
      choices,
      (c) => {
        const ex = replayChoices(target, c);
        return ex.violation !== null && violationSignature(ex.violation) === sig;
      },
      { maxRuns: o.shrinkRuns ?? 2000 },
    );
    choices = s.choices;
    shrinkRuns = s.runs;
  }
  const final = replayChoices(target, choices);
  o.onProgress?.(progress());
  return {
    strategy,
    verdict: 'violation',
    complete: false,
    executions,
    states: states.size,
    depth,
    elapsedMs: searchMs,
    counterexample: {
      choices,
      found: foundChoices,
      violation: final.violation ?? violation,
      foundAt,
      shrinkRuns,
      shrinkMs: now() - s0,
    },
  };
}

/** Drop trailing zeros: ReplayChoices answers 0 past the end anyway. */
export function stripZeros(c: readonly number[]): number[] {
  let n = c.length;
  while (n > 0 && c[n - 1] === 0) n--;
  return c.slice(0, n);
}

/** Re-run `target` with fixed answers (then 0), like ReplayChoices. */
export function replayChoices(
  target: Target,
  choices: readonly number[],
  o: { trace?: boolean; slices?: boolean } = {},
): Execution {
  return execute(target, new ExecutionChoices((i) => choices[i] ?? 0, o.slices ?? false), o);
}

export { DEFAULT_MAX_STEPS };
