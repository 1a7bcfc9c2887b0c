/**
 * Counterexamples as files: what the explorer found (scenario, profile, faults, the list of
 * answers, the violation) as JSON, replayed exactly — same choices, same RunResult, same
 * trace, byte for byte — and printed as a readable interleaving.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { loadScenario } from '../scenario/load.js';
import { type TaskIdentity, toChromeTrace } from '../trace/chrome.js';
import { formatFtrace, type TraceEvent } from '../trace/trace.js';
import {
  DEFAULT_MAX_STEPS,
  type Execution,
  type Target,
  type Violation,
  type ViolationKind,
  violationSignature,
} from './execute.js';
import { replayChoices, replayDeviations } from './explore.js';
import { defaultAnswer } from './units.js';

/** The fault kinds of `check --faults`: allocation failures and signal arrivals. */
export const FAULT_KINDS = ['alloc', 'signals'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** The target's fault switches for a list of fault kinds (the inverse of faultsOf). */
export function faultFlags(kinds: readonly string[]): Pick<Target, 'faultAlloc' | 'faultSignals'> {
  return { faultAlloc: kinds.includes('alloc'), faultSignals: kinds.includes('signals') };
}

/** The fault kinds a target injects, in FAULT_KINDS order. */
export function faultsOf(t: Pick<Target, 'faultAlloc' | 'faultSignals'>): FaultKind[] {
  return FAULT_KINDS.filter((f) => (f === 'alloc' ? t.faultAlloc : t.faultSignals));
}
export const REPLAY_FORMAT = 'vhostsim-replay';
/**
 * 2: the answers are `deviations` from the default schedule (replayDeviations); 1 (still
 * read): raw candidate indices in `choices`, 0 past the end (replayChoices)
 */
export const REPLAY_VERSION = 2;

/** The replay file (JSON). */
export interface ReplayFile {
  format: typeof REPLAY_FORMAT;
  version: 1 | typeof REPLAY_VERSION;
  /** the scenario file, relative to the replay file's directory (or absolute) */
  scenario: string;
  /** the scenario's name, for messages */
  name: string;
  profile: string;
  /** RunResult.seed (the choices decide the schedule, not the seed) */
  seed: number;
  /** fault kinds injected: allocation failures, signal arrivals */
  faults: FaultKind[];
  /** the step budget of bounded liveness */
  maxSteps: number;
  /** the scenario's parameters in effect (`params`, `--param`), when it has any */
  params?: Record<string, number>;
  /**
   * version 2: the answers as deviations from the default schedule (0 = the default answer,
   * k = the k-th candidate after it); past the end, every answer is the default
   */
  deviations?: number[];
  /** version 1: the answers as candidate indices; past the end, every answer is 0 */
  choices?: number[];
  /** what went wrong */
  violation: Violation;
  /** how it was found (informational) */
  search?: Record<string, unknown>;
}

export class ReplayFileError extends Error {}

/** Build the replay file of a counterexample; `scenarioPath` is made relative to `replayPath`'s directory. */
export function makeReplayFile(o: {
  scenarioPath: string;
  replayPath?: string;
  target: Target;
  deviations: readonly number[];
  violation: Violation;
  search?: Record<string, unknown>;
}): ReplayFile {
  const abs = resolve(o.scenarioPath);
  const scenario = o.replayPath ? relative(dirname(resolve(o.replayPath)), abs) || abs : abs;
  return {
    format: REPLAY_FORMAT,
    version: REPLAY_VERSION,
    scenario,
    name: o.target.scenario.doc.name,
    profile: o.target.profile,
    seed: o.target.seed ?? o.target.scenario.doc.seed ?? 1,
    faults: faultsOf(o.target),
    maxSteps: o.target.maxSteps ?? DEFAULT_MAX_STEPS,
    ...(o.target.scenario.params ? { params: { ...o.target.scenario.params } } : {}),
    deviations: [...o.deviations],
    violation: o.violation,
    ...(o.search ? { search: o.search } : {}),
  };
}

const KINDS: readonly ViolationKind[] = [
  'invariant',
  'error',
  'step-budget',
  'deadlock',
  'expectation',
  'kernel-bug',
];

/** Parse and validate a replay file's text; `path` names it in errors. */
export function parseReplayFile(text: string, path: string): ReplayFile {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new ReplayFileError(`${path}: not JSON (${(e as Error).message})`);
  }
  const bad = (what: string) => new ReplayFileError(`${path}: not a vhostsim replay file: ${what}`);
  if (v === null || typeof v !== 'object') throw bad('expected an object');
  const f = v as Record<string, unknown>;
  if (f.format !== REPLAY_FORMAT) throw bad(`"format" must be "${REPLAY_FORMAT}"`);
  if (f.version !== 1 && f.version !== REPLAY_VERSION) throw bad(`unsupported version ${String(f.version)}`);
  for (const k of ['scenario', 'profile', 'name'])
    if (typeof f[k] !== 'string') throw bad(`"${k}" must be a string`);
  if (!Number.isInteger(f.seed) || (f.seed as number) < 0) throw bad('"seed" must be a non-negative integer');
  if (!Number.isInteger(f.maxSteps) || (f.maxSteps as number) < 1)
    throw bad('"maxSteps" must be a positive integer');
  if (!Array.isArray(f.faults) || f.faults.some((x) => !FAULT_KINDS.includes(x)))
    throw bad(`"faults" must be a list of ${FAULT_KINDS.map((x) => `"${x}"`).join(', ')}`);
  if (
    f.params !== undefined &&
    (f.params === null ||
      typeof f.params !== 'object' ||
      Object.values(f.params).some((x) => !Number.isInteger(x) || x < 0))
  )
    throw bad('"params" must map names to non-negative integers');
  const answers = f.version === 1 ? 'choices' : 'deviations';
  const list = f[answers];
  if (!Array.isArray(list) || list.some((x) => !Number.isInteger(x) || x < 0))
    throw bad(`"${answers}" must be a list of non-negative integers`);
  const viol = f.violation as Record<string, unknown> | undefined;
  if (
    !viol ||
    !KINDS.includes(viol.kind as ViolationKind) ||
    typeof viol.message !== 'string' ||
    !Array.isArray(viol.details)
  )
    throw bad('"violation" must be { kind, message, details }');
  // the answers of the file's version only
  const file = { ...f } as unknown as ReplayFile;
  if (f.version === 1) delete file.deviations;
  else delete file.choices;
  return file;
}

/** Read a replay file from disk. */
export function readReplayFile(path: string): ReplayFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ReplayFileError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  return parseReplayFile(text, path);
}

/** The scenario path of a replay file, resolved against the directory of the file. */
export function replayScenarioPath(file: ReplayFile, replayPath: string): string {
  return isAbsolute(file.scenario) ? file.scenario : resolve(dirname(resolve(replayPath)), file.scenario);
}

/** The explorer target a replay file describes (loads the scenario). */
export function replayTarget(file: ReplayFile, scenarioPath: string): Target {
  return {
    scenario: loadScenario(scenarioPath, file.params ?? {}),
    profile: file.profile,
    seed: file.seed,
    ...faultFlags(file.faults),
    maxSteps: file.maxSteps,
  };
}

export interface Replayed {
  readonly execution: Execution;
  /** the replay went wrong the same way the file says */
  readonly reproduced: boolean;
}

/** A counterexample's answers: deviations from the default schedule, or (version 1 files) raw. */
export type Answers = Pick<ReplayFile, 'deviations' | 'choices'>;

/** The number of answers a counterexample lists. */
export const answerCount = (a: Answers): number => (a.deviations ?? a.choices ?? []).length;

/** Replay a counterexample with tracing on: the same choices, the same run, the same trace. */
export function replay(target: Target, file: Answers & Pick<ReplayFile, 'violation'>): Replayed {
  const o = { trace: true, slices: true };
  const execution = file.deviations
    ? replayDeviations(target, file.deviations, o)
    : replayChoices(target, file.choices ?? [], o);
  const reproduced =
    execution.violation !== null &&
    violationSignature(execution.violation) === violationSignature(file.violation);
  return { execution, reproduced };
}

/** The trace of an execution as ftrace text or Chrome/Perfetto JSON. */
export function exportTrace(
  ex: Execution,
  format: 'ftrace' | 'chrome',
  metadata: Record<string, unknown> = {},
): string {
  const events = ex.kernel?.trace.events ?? [];
  if (format === 'ftrace') return formatFtrace(events);
  const tasks = new Map<number, TaskIdentity>();
  for (const s of ex.result?.snapshots ?? [])
    for (const t of s.tasks) tasks.set(t.pid, { tgid: t.tgid, comm: t.comm });
  return `${JSON.stringify(toChromeTrace(events, { tasks, metadata: { ...metadata, tool: 'vhostsim' } }))}\n`;
}

/**
 * The interleaving of an execution (replayed with slices and trace): one block per stretch a
 * task ran, headed by the decisions that led to it (a preemption, a timer order, an injected
 * fault), then that stretch's trace events (context switches left out).
 */
export function formatInterleaving(ex: Execution, o: { maxEventsPerBlock?: number } = {}): string {
  const events = ex.kernel?.trace.events ?? [];
  const max = o.maxEventsPerBlock ?? 12;
  const out: string[] = [];
  const slices = [...(ex.slices ?? [])];
  const line = (ev: TraceEvent) =>
    `    ${(ev.ts / 1000).toFixed(3).padStart(10)} µs  ${`${ev.comm}-${ev.pid}`.padEnd(16)} ${ev.event}: ${ev.text}`;
  // the first slice's events begin with boot and the spawning of the scenario's processes
  const first = slices[0];
  if (first) {
    let cut = first.events[0];
    for (let e = first.events[0]; e < first.events[1]; e++) if (events[e]!.event === 'sched_switch') cut = e;
    if (cut > first.events[0]) {
      out.push('(boot, processes spawned)');
      for (let e = first.events[0]; e < cut; e++)
        if (events[e]!.event !== 'sched_switch') out.push(line(events[e]!));
    }
    slices[0] = { ...first, events: [cut, first.events[1]] };
  }
  let i = 0;
  while (i < slices.length) {
    const task = slices[i]!.task;
    const notes: string[] = [];
    const lines: string[] = [];
    let j = i;
    for (; j < slices.length && slices[j]!.task === task; j++) {
      const s = slices[j]!;
      for (let c = s.choices[0]; c < s.choices[1]; c++) {
        const p = ex.log[c]!;
        if (p.kind === 'sched') {
          if (p.prev >= 0 && p.value !== p.prev)
            notes.push(`choice #${c}: preempts ${p.tasks?.[p.prev] ?? `candidate ${p.prev}`}`);
        } else if (p.kind === 'timer') {
          if (p.value !== 0)
            notes.push(`choice #${c}: timer ${p.value + 1} of ${p.n} due at once fires first`);
        } else if (p.value !== 0) notes.push(`choice #${c}: ${p.kind} at ${p.what}: injected`);
      }
      for (let e = s.events[0]; e < s.events[1]; e++) {
        const ev = events[e]!;
        if (ev.event !== 'sched_switch') lines.push(line(ev));
      }
    }
    const after = slices[j - 1]!.after;
    out.push(`${task}${after ? ` (then ${after})` : ''}${notes.length ? `   ← ${notes.join('; ')}` : ''}`);
    if (lines.length > max) {
      out.push(...lines.slice(0, max - 2), `    … ${lines.length - max + 1} more events`, lines.at(-1)!);
    } else out.push(...lines);
    i = j;
  }
  if (ex.violation) out.push(`==> ${ex.violation.kind}: ${ex.violation.message}`);
  return `${out.join('\n')}\n`;
}

/** How long a counterexample is, in the units one may compare it in. */
export interface CounterexampleLength {
  /** decision points asked of Choices (the length of its answer list) */
  readonly decisions: number;
  /**
   * answers other than the non-preemptive default (defaultAnswer: the task that ran last while
   * it is runnable, else the first candidate; the first timer; no fault)
   */
  readonly deviations: number;
  /** scheduler slices after boot */
  readonly slices: number;
  /** task switches: the blocks of the printed interleaving (boot is in the first) */
  readonly switches: number;
}

/** The length of an execution replayed with slices (see formatInterleaving). */
export function counterexampleLength(ex: Execution): CounterexampleLength {
  let deviations = 0;
  for (const p of ex.log) if (p.value !== defaultAnswer(p)) deviations++;
  let switches = 0;
  let last: string | null = null;
  for (const s of ex.slices ?? []) {
    if (s.task !== last) switches++;
    last = s.task;
  }
  return { decisions: ex.log.length, deviations, slices: ex.steps, switches };
}
