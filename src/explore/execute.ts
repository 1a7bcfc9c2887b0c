/**
 * One execution of the explorer: boot, run a scenario on a profile with a given Choices object,
 * check the model's invariants after every scheduler slice, and classify how the run went
 * wrong, if it did. A run is a pure function of (scenario, profile, faults, answers), so an
 * execution is re-created exactly from its list of answers (stateless model checking, as in
 * CHESS/Loom/Shuttle: no state is saved, every prefix is re-executed from boot).
 */
import { cpuRunnable } from '../cgroup/cgroup.js';
import type { ChoiceKind, Choices } from '../kernel/choices.js';
import { InvariantError } from '../kernel/errno.js';
import { type Footprint, FootprintRecorder, GLOBAL_FOOTPRINT } from '../kernel/footprint.js';
import { checkInvariants, findDeadlock } from '../kernel/invariants.js';
import type { Kernel } from '../kernel/kernel.js';
import { type Task, taskStateLetter } from '../kernel/task.js';
import type { LoadedScenario } from '../scenario/load.js';
import { type RunResult, runScenario } from '../scenario/run.js';

/** What the explorer runs: a scenario on a profile, with the fault kinds it may inject. */
export interface Target {
  readonly scenario: LoadedScenario;
  readonly profile: string;
  /** the run's seed as RunResult reports it (the choices decide everything else) */
  readonly seed?: number;
  /** inject allocation failures where Choices says so (opt-in) */
  readonly faultAlloc?: boolean;
  /** let SIGKILL/SIGSTOP arrive for a user process before any slice where Choices says so (opt-in) */
  readonly faultSignals?: boolean;
  /** bounded liveness: more scheduler slices than this is a violation (default 100 000) */
  readonly maxSteps?: number;
}

export const DEFAULT_MAX_STEPS = 100_000;

/**
 * How an execution went wrong, as data:
 * - `invariant`: a model invariant broke (InvariantError, checked after every slice);
 * - `error`: the simulator threw something else (a model bug);
 * - `step-budget`: the run did not finish within the step budget (bounded liveness);
 * - `deadlock`: nothing runnable, no timer, and tasks asleep uninterruptibly (the wait-for graph);
 * - `expectation`: a step expectation or a check of the scenario did not hold;
 * - `kernel-bug`: the modelled kernel oopsed: a kernel warning starting with "BUG:" (a NULL
 *   dereference or a use-after-free of a historical bug, which the model records and survives).
 */
export type ViolationKind = 'invariant' | 'error' | 'step-budget' | 'deadlock' | 'expectation' | 'kernel-bug';

export interface Violation {
  readonly kind: ViolationKind;
  /** one line */
  readonly message: string;
  /** the wait-for graph edges, the failed expectations, … one per line */
  readonly details: readonly string[];
}

/** One decision of an execution, with what the explorer needs to bound and print it. */
export interface ChoicePoint {
  readonly kind: ChoiceKind;
  readonly n: number;
  readonly what: string;
  readonly value: number;
  /**
   * sched: index (among the candidates) of the task that ran the previous slice if it is still
   * runnable, else -1. Choosing another candidate then is a preemption.
   */
  readonly prev: number;
  /** sched: the candidates, as comm-pid, in the scheduler's order (when known) */
  readonly tasks?: readonly string[];
}

/** One scheduler slice: which task ran, the trace events it emitted, the choices made before it. */
export interface Slice {
  readonly task: string;
  /** [from, to) in the kernel's trace buffer */
  readonly events: readonly [number, number];
  /** [from, to) in the execution's choice log */
  readonly choices: readonly [number, number];
  /**
   * the task's state after the slice: ps letter, and the wait queue it sleeps on; for a task
   * left runnable at a preemption point, the modelled kernel site (Task.at)
   */
  readonly after: string;
}

export interface Execution {
  readonly violation: Violation | null;
  readonly log: readonly ChoicePoint[];
  /** scheduler slices after boot */
  readonly steps: number;
  /** the run's result; absent when the run stopped with an exception */
  readonly result?: RunResult;
  /** the kernel of the run (null only if boot itself threw) */
  readonly kernel: Kernel | null;
  /** recorded when asked for (printing a counterexample) */
  readonly slices?: readonly Slice[];
  /** the answer function ended the run early (CutShort): no verdict */
  readonly cutShort?: boolean;
  /** with footprints: the footprint of the step after each free decision (ExecutionChoices) */
  readonly footprints?: ReadonlyMap<number, Footprint>;
  /** … and of the run of the task it chose, the first part of that step */
  readonly ownFootprints?: ReadonlyMap<number, Footprint>;
}

/** A task's state after its slice (Slice.after): exited, asleep on what, or preempted where. */
function stateAfterSlice(t: Task): string {
  if (t.exitState) return 'exited';
  const letter = taskStateLetter(t);
  if (t.state !== 0) return t.waitingOn ? `${letter} on ${t.waitingOn.name}` : letter;
  return t.at ? `${letter} in ${t.at}` : letter;
}

/**
 * Thrown by an answer function to end an execution early, with no verdict: the explorer's
 * sleep sets found every candidate asleep (the rest is equivalent to an execution already
 * explored), or a probe has what it wanted.
 */
export class CutShort extends Error {
  constructor() {
    super('execution cut short');
  }
}

/** Thrown from the step hook when the step budget is exhausted. */
class StepBudgetExceeded extends Error {
  constructor(readonly steps: number) {
    super(`no quiescence within ${steps} scheduler slices`);
  }
}

/** The kernel's `lastRun` (private: the task of the previous slice). */
function lastRun(k: Kernel): Task | null {
  return (k as unknown as { lastRun: Task | null }).lastRun;
}

/** pickNext()'s candidate list, in the same order (kernel.ts). */
function schedCandidates(k: Kernel): Task[] {
  return k.throttledGroups.size > 0 ? k.runqueue.filter(cpuRunnable) : k.runqueue;
}

/**
 * Decides the answers of one execution: `answer(i, point)` for choice number i, where `point`
 * describes the decision (its `value` field is not yet meaningful). Records every decision.
 */
export class ExecutionChoices implements Choices {
  readonly log: ChoicePoint[] = [];
  kernel: Kernel | null = null;
  /**
   * with footprints: the recorder the run's kernel fills (footprint.ts), and for every free
   * scheduling decision (a 'sched' decision with no previous task still runnable) the
   * footprint of what ran after it up to the next free decision or the end: the step the
   * explorer's sleep sets reason about. A step in which any other decision was made (a
   * timer, a fault) touches everything: it is not one deterministic transition.
   */
  readonly recorder: FootprintRecorder | null;
  readonly footprints: Map<number, Footprint> | null;
  /** the footprint of the chosen task's run alone, the first part of each step */
  readonly ownFootprints: Map<number, Footprint> | null;
  private lastFree = -1;
  private mixed = false;
  constructor(
    private readonly answer: (i: number, p: Omit<ChoicePoint, 'value'>) => number,
    private readonly recordTasks = false,
    footprints = false,
    /** with footprints, the candidates of free decisions are named from this decision on */
    private readonly namesFrom = 0,
  ) {
    this.recorder = footprints ? new FootprintRecorder() : null;
    this.footprints = footprints ? new Map() : null;
    this.ownFootprints = footprints ? new Map() : null;
  }

  /** a free decision, or the end of the run: the step since the last free decision is over */
  closeStep(at: number): void {
    const rec = this.recorder;
    if (!rec || !this.footprints || !this.ownFootprints) return;
    const f = rec.take();
    if (this.lastFree >= 0) {
      this.footprints.set(this.lastFree, this.mixed ? GLOBAL_FOOTPRINT : f.all);
      this.ownFootprints.set(this.lastFree, this.mixed ? GLOBAL_FOOTPRINT : f.own);
    }
    this.lastFree = at;
    this.mixed = false;
  }

  choose(kind: ChoiceKind, n: number, what: string): number {
    let prev = -1;
    let tasks: string[] | undefined;
    const k = this.kernel;
    if (kind === 'sched' && k) {
      const cands = schedCandidates(k);
      if (cands.length === n) {
        const last = lastRun(k);
        prev = last ? cands.indexOf(last) : -1;
        if (this.recordTasks || (this.recorder && prev < 0 && this.log.length >= this.namesFrom))
          tasks = cands.map(String);
      }
    }
    if (this.recorder) {
      if (kind === 'sched' && prev < 0) this.closeStep(this.log.length);
      else if (kind !== 'sched') this.mixed = true;
    }
    // one object per decision: filled in with the answer once it is known
    const p: { -readonly [K in keyof ChoicePoint]: ChoicePoint[K] } = { kind, n, what, value: 0, prev };
    if (tasks) p.tasks = tasks;
    const a = this.answer(this.log.length, p);
    p.value = a < 0 ? 0 : a < n ? a : n - 1;
    this.log.push(p);
    return p.value;
  }
}

/** A violation's identity for "fails the same way": its kind and message with numbers blurred. */
export function violationSignature(v: Violation): string {
  return `${v.kind}: ${v.message.replace(/\d+/g, '#')}`;
}

/**
 * What shrinking keeps of a violation: its signature, except for a deadlock, where it keeps the
 * tasks that hang and lets what they wait on change. One lost wake-up hangs a task in
 * whichever wait it reaches (the same close(2) can hang in vhost_net_release()'s flush or in
 * vhost_task_stop()'s wait for the worker to exit), and the smallest counterexample may end in
 * either, as a model checker's shortest trail to an invalid end state is to any of them. The
 * shrunk counterexample reports the deadlock it ends in.
 */
export function shrinkSignature(v: Violation): string {
  if (v.kind !== 'deadlock') return violationSignature(v);
  // the message is "<comm>-<pid> waits on <what>", joined by "; " (findDeadlock)
  const hung = new Set<string>();
  for (const part of v.message.split('; ')) hung.add(part.split(' waits on ')[0]!.replace(/\d+/g, '#'));
  return `deadlock: ${[...hung].sort().join(', ')} hang`;
}

export function formatViolation(v: Violation): string {
  return [`${v.kind}: ${v.message}`, ...v.details.map((d) => `  ${d}`)].join('\n');
}

export interface ExecuteOptions {
  trace?: boolean;
  /** record slices (which task ran, its events) for printing */
  slices?: boolean;
  /** check invariants after every slice (default true) */
  invariants?: boolean;
  /**
   * the first `checkedPrefix` answers are those of an execution that already ran, with its
   * invariants checked after every slice and none broken: while this execution has made no
   * more choices than that, it is that execution (a run is a pure function of its answers),
   * so the per-slice checks are skipped there (the check at the end of the run is not)
   */
  checkedPrefix?: number;
}

/** Run `target` once with `choices`; see Violation for what counts as going wrong. */
export function execute(target: Target, choices: ExecutionChoices, o: ExecuteOptions = {}): Execution {
  const maxSteps = target.maxSteps ?? DEFAULT_MAX_STEPS;
  const checkEach = o.invariants ?? true;
  const checkedPrefix = o.checkedPrefix ?? 0;
  const slices: Slice[] | undefined = o.slices ? [] : undefined;
  let steps = 0;
  let ev = 0;
  let ch = 0;
  let result: RunResult | undefined;
  let violation: Violation | null = null;
  let cutShort = false;
  try {
    result = runScenario(target.scenario, target.profile, {
      ...(target.seed !== undefined ? { seed: target.seed } : {}),
      ...(choices.recorder ? { footprints: choices.recorder } : {}),
      trace: o.trace ?? false,
      // the explorer looks at the failures alone; a replay (with its trace) gets full snapshots
      snapshots: o.trace ? 'full' : 'checks',
      choices,
      faultAlloc: target.faultAlloc ?? false,
      faultSignals: target.faultSignals ?? false,
      onStep: (k) => {
        // the kernel is known from the first slice on; choices before it (boot, the first
        // pick) carry no task information and never count as preemptions
        choices.kernel = k;
        steps++;
        if (slices) {
          const last = lastRun(k);
          const n = k.trace.events.length;
          const real = last && last !== k.idle ? last : null;
          slices.push({
            task: real ? String(real) : '<idle>',
            events: [ev, n],
            choices: [ch, choices.log.length],
            after: real ? stateAfterSlice(real) : '',
          });
          ev = n;
          ch = choices.log.length;
        }
        if (steps > maxSteps) throw new StepBudgetExceeded(maxSteps);
        if (checkEach && choices.log.length > checkedPrefix) checkInvariants(k);
      },
    });
    choices.kernel = result.kernel;
    checkInvariants(result.kernel);
  } catch (e) {
    if (e instanceof CutShort) cutShort = true;
    else if (e instanceof StepBudgetExceeded)
      violation = { kind: 'step-budget', message: e.message, details: [] };
    else if (e instanceof InvariantError) violation = { kind: 'invariant', message: e.message, details: [] };
    else {
      const err = e as Error;
      violation = {
        kind: 'error',
        message: `${err.name ?? 'Error'}: ${err.message ?? String(e)}`,
        details: (err.stack ?? '').split('\n').slice(1, 6),
      };
    }
  }
  choices.closeStep(choices.log.length);
  const fps =
    choices.footprints && choices.ownFootprints
      ? { footprints: choices.footprints, ownFootprints: choices.ownFootprints }
      : {};
  if (cutShort) return { violation: null, log: choices.log, steps, kernel: choices.kernel, cutShort, ...fps };
  if (!violation && result) {
    const dl = findDeadlock(result.kernel);
    const oops = result.kernel.warnings.find((w) => w.message.startsWith('BUG:'));
    if (oops) violation = { kind: 'kernel-bug', message: `${oops.where}: ${oops.message}`, details: [] };
    else if (dl)
      violation = {
        kind: 'deadlock',
        message: dl.map((d) => `${d.task} waits on ${d.waitsOn}`).join('; '),
        details: dl.map(
          (d) =>
            `${d.task} → ${d.waitsOn}${d.heldBy ? ` (held by ${d.heldBy})` : ' (no holder: never woken)'}`,
        ),
      };
    else if (result.failures.length > 0)
      violation = {
        kind: 'expectation',
        message: result.failures[0]!,
        details: result.failures.slice(1),
      };
  }
  return {
    violation,
    log: choices.log,
    steps,
    ...(result ? { result } : {}),
    kernel: result?.kernel ?? choices.kernel,
    ...(slices ? { slices } : {}),
    ...fps,
  };
}
