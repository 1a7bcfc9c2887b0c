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
 *   Without preemptions, the search is reduced with sleep sets (Godefroid 1996; units.ts):
 *   a step is what runs from one free decision (the task that ran last cannot go on) to the
 *   next, and the model records which kernel objects each step reads, updates or writes
 *   (footprint.ts). Two steps whose footprints do not conflict — kicks that find handle_kick
 *   already queued and only add to an eventfd count, threads of one process that end while
 *   their leader lives — lead to the same state in either order, so after one order has been
 *   explored the other is not: a task whose step was explored at a decision sleeps in the
 *   siblings explored after it, until a step that conflicts with its step runs. An execution
 *   in which every candidate sleeps is cut short (it counts as an execution). Footprints are
 *   sound by construction: a step touches everything unless every line it ran is audited
 *   (the scenario interpreter's `eventfd-write` and `loop`, the paths they reach, thread
 *   exits while the leader lives, the 6.4+ vhost_task worker loop with flush works and
 *   vhost-net's handle_kick without a backend), so a new path is never reduced by mistake;
 *   sleep-sets.test.ts checks that the reduced search reaches every outcome of the full one.
 *   Every execution still has its invariants checked after each slice, but a state that only
 *   an unexplored order of independent steps passes through is not visited: an invariant
 *   of the model broken only there would be missed (the violations the explorer reports —
 *   deadlocks, expectations, kernel bugs — do not depend on that order).
 *   Not with a preemption bound: sleep sets can then prune an execution whose equivalent
 *   needs more preemptions than the bound (Coons et al., "Bounded partial-order reduction",
 *   OOPSLA 2013). Sleep sets leave out the second order of independent steps but still try
 *   every candidate at a decision once; dynamic partial-order reduction (Flanagan and
 *   Godefroid, POPL 2005; source sets, Abdulla et al., POPL 2014) would also leave out
 *   candidates no race calls for, but learns which from the executions below a decision, so
 *   units searched apart (workers, shards) would have to tell each other what they found and
 *   could no longer be run in any order with the same result; sleep sets need only the
 *   decision's own earlier candidates, which a unit recomputes from its prefix with probes
 *   (units.ts prefixStack). The virtual clock, which every slice advances, orders
 *   timer expiries: while a timer is pending, or under a CPU quota, every step touches
 *   everything. Otherwise time is not part of what is compared: two orders of the same steps
 *   can differ in context switches and so in the virtual time they end at, which matters only
 *   to a run that hits the scenario's time-limit. `por: false` (`--no-por`) turns the
 *   reduction off.
 * - `random`: every answer uniformly at random (faults with probability `faultProbability`),
 *   execution i seeded from (seed, i): the whole search is a pure function of the seed.
 * - `pct`: Probabilistic Concurrency Testing (Burckhardt et al., ASPLOS 2010): every task gets
 *   a random priority when first seen, the highest-priority runnable task runs, and at d−1
 *   random change points (among the k scheduling decisions of an execution, k estimated once
 *   from the non-preemptive execution, at least 32) the running task drops below all others. A
 *   bug of depth d is found with probability ≥ 1/(n·k^(d−1)) per execution.
 *
 * The search can be cut into units (units.ts) that run on several threads (`workers`) or on
 * several machines (`shard`, combined later by mergeShards); the result — verdict,
 * executions, states, depth, counterexample — is the same as running it in one thread.
 */
import {
  type ChoicePoint,
  DEFAULT_MAX_STEPS,
  type Execution,
  ExecutionChoices,
  execute,
  shrinkSignature,
  type Target,
  type Violation,
} from './execute.js';
import { tuneHeapForExplorer } from './heap.js';
import { runUnitsInWorkers } from './pool.js';
import { shrinkChoices } from './shrink.js';
import {
  type Combined,
  combineUnits,
  defaultAnswer,
  ExecutionBuffers,
  estimatePctK,
  planUnits,
  runUnit,
  type SearchConfig,
  type Strategy,
  type UnitResult,
  type UnitSpec,
} from './units.js';

export type { Strategy };
export const STRATEGIES: readonly Strategy[] = ['dfs', 'random', 'pct'];

export interface ExploreOptions {
  strategy?: Strategy;
  /** at most this many executions (default: dfs 10 000, random/pct 1 000) */
  runs?: number;
  /** seed of the random and pct strategies (default 1) */
  seed?: number;
  /** dfs: preemption bound (default 2) */
  preemptions?: number;
  /**
   * dfs without preemptions: sleep sets over the footprints of steps (default true; see the
   * header). With a preemption bound the search is not reduced.
   */
  por?: boolean;
  /** dfs: injected faults per execution (default 1; faults only when the target enables them) */
  maxFaults?: number;
  /** pct: bug depth d (default 3) */
  depth?: number;
  /** random/pct: probability that an allocation point fails (default 0.05) */
  faultProbability?: number;
  /**
   * do not stop at the first violation but run the whole budget (throughput measurements on
   * a buggy kernel); the counterexample is still the first in the search's order
   */
  keepGoing?: boolean;
  /** run the executions on this many threads: this one and n − 1 worker threads (default 1) */
  workers?: number;
  /** run only shard `index` (1-based) of `count`; the result carries what mergeShards needs */
  shard?: { index: number; count: number };
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
  /**
   * the shrunk counterexample, as deviations from the default schedule (relativeAnswers): at
   * decision i, 0 is the default answer and k the k-th candidate after it; past the end, every
   * answer is the default (replayDeviations)
   */
  readonly deviations: number[];
  /** the answers of the execution as found, before shrinking (ReplayChoices semantics) */
  readonly found: number[];
  /** the found execution's deviations from the default schedule, counted as `deviations` is */
  readonly foundLength: number;
  /** the violation of the shrunk counterexample */
  readonly violation: Violation;
  /** the violation of the execution as found (a deadlock may shrink to another wait: shrinkSignature) */
  readonly foundViolation: Violation;
  /** how many executions the search needed to find it (1-based) */
  readonly foundAt: number;
  /** executions spent shrinking */
  readonly shrinkRuns: number;
  /** wall time spent shrinking (ms; not part of the search's elapsedMs) */
  readonly shrinkMs: number;
}

/** A shard's own units and their results, in the plan's order. */
export interface ShardReport {
  readonly index: number;
  readonly count: number;
  /** units in the whole plan */
  readonly units: number;
  readonly results: readonly { readonly unit: number; readonly result: UnitResult }[];
}

export interface ExploreResult {
  readonly strategy: Strategy;
  /** dfs without preemptions: the search was reduced with sleep sets (ExploreOptions.por) */
  readonly reduced: boolean;
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
  /** sharded searches: this shard's part (its executions, states and verdict are its own) */
  readonly shard?: ShardReport;
}

/** The units one process runs, with the search budget and cancellation; results by plan index. */
function runUnitsHere(
  target: Target,
  cfg: SearchConfig,
  plan: readonly UnitSpec[],
  mine: readonly number[],
  o: {
    runs: number;
    contiguous: boolean;
    outOfTime: () => boolean;
    onProgress: (executions: number, depth: number, states: number) => void;
  },
): (UnitResult | undefined)[] {
  const results: (UnitResult | undefined)[] = new Array(plan.length);
  const states = new Set<number>(); // of the finished units
  let executions = 0;
  let depth = 0;
  let known = 0; // executions of the plan's units before the current one (unknown ones: 1)
  let done = 0;
  const buffers = new ExecutionBuffers();
  for (const j of mine) {
    for (; done < j; done++) known += results[done]?.executions ?? 1;
    if (o.contiguous && known >= o.runs) break;
    const r = runUnit(target, cfg, plan[j]!, {
      limit: Math.max(1, o.runs - known),
      buffers,
      stop: o.outOfTime,
      onExecution: (ex, unitStates) => {
        executions++;
        if (ex.log.length > depth) depth = ex.log.length;
        o.onProgress(executions, depth, states.size + unitStates);
      },
    });
    results[j] = r;
    for (const h of r.hashes) states.add(h);
    if ((r.found && !cfg.keepGoing) || !r.exhausted) break;
  }
  return results;
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
  tuneHeapForExplorer();
  const strategy = o.strategy ?? 'dfs';
  const runs = o.runs ?? (strategy === 'dfs' ? 10_000 : 1_000);
  const now = o.now ?? (() => performance.now());
  const t0 = now();
  const bound = o.preemptions ?? 2;
  const cfg: SearchConfig = {
    strategy,
    bound,
    por: strategy === 'dfs' && bound === 0 && (o.por ?? true),
    maxFaults: o.maxFaults ?? 1,
    seed: o.seed ?? 1,
    faultProbability: o.faultProbability ?? 0.05,
    depth: o.depth ?? 3,
    k: strategy === 'pct' ? estimatePctK(target) : 0,
    keepGoing: o.keepGoing ?? false,
  };
  const workers = Math.max(1, o.workers ?? 1);
  const shard = o.shard;
  if (shard && !(shard.count >= 1 && shard.index >= 1 && shard.index <= shard.count))
    throw new RangeError(`shard ${shard.index}/${shard.count}: expected 1 ≤ i ≤ n`);
  // the plan depends on the shard count only, never on the workers: shards must agree on it
  const want = shard ? 64 * shard.count : workers > 1 ? 32 * workers : 1;
  const plan: UnitSpec[] =
    want > 1
      ? planUnits(target, cfg, runs, want)
      : [strategy === 'dfs' ? { kind: 'dfs', prefix: [], floor: 0 } : { kind: 'sample', from: 0, to: runs }];
  const mine = plan.map((_u, j) => j).filter((j) => !shard || j % shard.count === shard.index - 1);

  let lastProgress = t0;
  const progressEvery = o.progressEveryMs ?? 1000;
  let last: ExploreProgress = { executions: 0, states: 0, depth: 0, elapsedMs: 0, executionsPerSec: 0 };
  const progress = (executions: number, depth: number, states: number) => {
    const elapsedMs = now() - t0;
    last = {
      executions,
      states,
      depth,
      elapsedMs,
      executionsPerSec: elapsedMs > 0 ? (executions * 1000) / elapsedMs : 0,
    };
    if (o.onProgress && last.elapsedMs - (lastProgress - t0) >= progressEvery) {
      lastProgress = now();
      o.onProgress(last);
    }
  };
  const outOfTime = () => o.timeBudgetMs !== undefined && now() - t0 > o.timeBudgetMs;
  const run = { runs, contiguous: !shard, outOfTime, onProgress: progress };
  // by plan index (a shard reports its plan units), and in the search's order
  let results: (UnitResult | undefined)[];
  let ordered: (UnitResult | undefined)[];
  if (workers > 1) {
    const pooled = runUnitsInWorkers(target, cfg, plan, { ...run, workers, mine });
    results = new Array(plan.length);
    for (const p of pooled) if (p.plan !== null) results[p.plan] = p.result;
    ordered = pooled.map((p) => p.result);
  } else ordered = results = runUnitsHere(target, cfg, plan, mine, run);

  const combined: Combined = shard ? combineOwn(results) : combineUnits(ordered, runs, cfg.keepGoing);
  const searchMs = now() - t0;
  const finalProgress = () => {
    const elapsedMs = now() - t0;
    o.onProgress?.({
      executions: combined.executions,
      states: combined.states.size,
      depth: combined.depth,
      elapsedMs,
      executionsPerSec: elapsedMs > 0 ? (combined.executions * 1000) / elapsedMs : 0,
    });
  };
  const base = {
    strategy,
    reduced: cfg.por ?? false,
    executions: combined.executions,
    states: combined.states.size,
    depth: combined.depth,
    elapsedMs: searchMs,
    ...(shard
      ? {
          shard: {
            index: shard.index,
            count: shard.count,
            units: plan.length,
            results: mine.flatMap((unit) => {
              const result = results[unit];
              return result ? [{ unit, result }] : [];
            }),
          },
        }
      : {}),
  };
  const f = combined.found;
  if (!f) {
    finalProgress();
    return { ...base, verdict: 'ok', complete: strategy === 'dfs' && combined.complete };
  }
  const s0 = now();
  // shrunk as deviations from the default schedule: cutting and lowering answers towards 0
  // removes preemptions and faults (on raw answers, 0 is whichever task is first in the run
  // queue, and lowering an answer to it adds task switches)
  const foundLog = replayChoices(target, f.choices).log;
  const foundDeviations = relativeAnswers(foundLog);
  let deviations = foundDeviations;
  let shrinkRuns = 0;
  if (o.shrink ?? true) {
    const sig = shrinkSignature(f.violation);
    const s = shrinkChoices(
      foundDeviations,
      (c) => {
        const ex = replayDeviations(target, c);
        return ex.violation !== null && shrinkSignature(ex.violation) === sig;
      },
      // fewer deviations may take a longer list, within the decisions of the execution found
      { maxRuns: o.shrinkRuns ?? 2000, maxLength: foundLog.length },
    );
    deviations = s.choices;
    shrinkRuns = s.runs;
  }
  const final = replayDeviations(target, deviations);
  finalProgress();
  return {
    ...base,
    verdict: 'violation',
    complete: false,
    counterexample: {
      deviations,
      found: f.choices,
      foundLength: foundDeviations.length,
      violation: final.violation ?? f.violation,
      foundViolation: f.violation,
      foundAt: f.foundAt,
      shrinkRuns,
      shrinkMs: now() - s0,
    },
  };
}

/** A shard's own units, as they ran (no budget: that needs every shard). */
function combineOwn(results: readonly (UnitResult | undefined)[]): Combined {
  const out: Combined = { executions: 0, states: new Set(), depth: 0, complete: true };
  for (const [j, r] of results.entries()) {
    if (!r) continue;
    for (const h of r.hashes) out.states.add(h);
    for (let i = 1; i < r.depthSteps.length; i += 2) out.depth = Math.max(out.depth, r.depthSteps[i]!);
    out.executions += r.executions;
    if (!r.exhausted) out.complete = false;
    if (r.found && !out.found)
      out.found = {
        foundAt: out.executions,
        choices: r.found.choices,
        violation: r.found.violation,
        unit: j,
      };
  }
  return out;
}

export class ShardMergeError extends Error {}

/** What merging the shards of one search gives (the counterexample is the shards' to tell). */
export interface MergedShards {
  readonly verdict: 'violation' | 'ok';
  readonly complete: boolean;
  readonly executions: number;
  readonly states: number;
  readonly depth: number;
  /** the first violation in the search's order: its execution number, answers, and shard */
  readonly found?: { foundAt: number; choices: number[]; violation: Violation; shard: number };
}

/**
 * Combine the reports of every shard of one search (same plan, `runs` executions) into the
 * result of the unsharded search. Throws ShardMergeError when shards are missing, repeated,
 * or from differently cut searches.
 */
export function mergeShards(strategy: Strategy, reports: readonly ShardReport[], runs: number): MergedShards {
  const first = reports[0];
  if (!first) throw new ShardMergeError('no shards to merge');
  const byIndex = new Map<number, ShardReport>();
  for (const r of reports) {
    if (r.count !== first.count || r.units !== first.units)
      throw new ShardMergeError(
        `shard ${r.index}/${r.count} (${r.units} units) is not from the same search as shard ${first.index}/${first.count} (${first.units} units)`,
      );
    if (byIndex.has(r.index)) throw new ShardMergeError(`shard ${r.index}/${r.count} is given twice`);
    byIndex.set(r.index, r);
  }
  const missing: string[] = [];
  for (let i = 1; i <= first.count; i++) if (!byIndex.has(i)) missing.push(`${i}/${first.count}`);
  if (missing.length)
    throw new ShardMergeError(`missing shard${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`);
  const results: (UnitResult | undefined)[] = new Array(first.units);
  const owner: number[] = new Array(first.units);
  for (const r of reports)
    for (const { unit, result } of r.results) {
      if (unit % r.count !== r.index - 1 || unit >= r.units)
        throw new ShardMergeError(`shard ${r.index}/${r.count} reports unit ${unit}, which is not its own`);
      results[unit] = result;
      owner[unit] = r.index;
    }
  const c = combineUnits(results, runs);
  return {
    verdict: c.found ? 'violation' : 'ok',
    complete: strategy === 'dfs' && !c.found && c.complete,
    executions: c.executions,
    states: c.states.size,
    depth: c.depth,
    ...(c.found
      ? {
          found: {
            foundAt: c.found.foundAt,
            choices: c.found.choices,
            violation: c.found.violation,
            shard: owner[c.found.unit]!,
          },
        }
      : {}),
  };
}

/**
 * An execution's answers as deviations from the default schedule: at each decision, how many
 * candidates past defaultAnswer() (the task that ran last while it is runnable, else the first;
 * no fault) the answer is, cyclically. 0 is the non-preemptive choice, so a shrinker that cuts
 * and lowers answers towards 0 removes preemptions and faults, where on the raw answers it
 * would move them to whichever task is first in the run queue.
 */
export function relativeAnswers(log: readonly ChoicePoint[]): number[] {
  return stripZeros(log.map((p) => (p.value - defaultAnswer(p) + p.n) % p.n));
}

/** The answer function of relative answers `rel` (see relativeAnswers): past the end, the default. */
export function fromRelative(rel: readonly number[]): (i: number, p: Omit<ChoicePoint, 'value'>) => number {
  return (i, p) => ((rel[i] ?? 0) + defaultAnswer(p)) % p.n;
}

/** Re-run `target` with answers given as deviations from the default schedule (relativeAnswers). */
export function replayDeviations(
  target: Target,
  deviations: readonly number[],
  o: { trace?: boolean; slices?: boolean } = {},
): Execution {
  return execute(target, new ExecutionChoices(fromRelative(deviations), o.slices ?? false), o);
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
