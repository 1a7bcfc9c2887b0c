/**
 * Observations: what the conformance suite compares. conformance/probe.c prints one
 * Observation for a real kernel; observeModel() derives the same document from a model run
 * (a RunResult), so both sides go through the same normalisation (compare.ts).
 *
 * Which tasks a label shows (the same rule on both sides):
 *  - real: every descendant of the probe's supervisor and all their threads; model: every
 *    task but init (pid 1) and kthreads — i.e. the scenario's processes, their threads and
 *    forks, and their user workers;
 *  - plus kthreads whose name ends in "-<n>" with <n> one of those tids or tgids
 *    (`vhost-<tid>`, `kvm-nx-lpage-recovery-<pid>`);
 *  - plus any task in one of the scenario's cgroups.
 */

import type { RunResult, Snapshot, TaskView } from '../scenario/run.js';
import { nsInodes } from '../scenario/run.js';
import type { CompiledScript } from './script.js';

/** PF_KTHREAD (include/linux/sched.h) */
const PF_KTHREAD = 0x00200000;

export interface ObservedTask {
  tid: number;
  tgid: number;
  ppid: number;
  uid: number;
  /** /proc/<pid>/task/<tid>/comm */
  comm: string;
  /** the status Name: line (a kthread's full name from 5.17) */
  name: string;
  /** the state letter (R, S, D, T, t, Z, X, I) */
  state: string;
  /** stat field 9 */
  flags: number;
  /** the flags decoded by the probe (real only; compare.ts decodes both sides itself) */
  pf?: string;
  /** the path in the pids hierarchy (real) or the cgroup v2 path (model) */
  cgroup: string;
  /** Cpus_allowed_list */
  cpus: string;
  sigblk: string;
  sigpnd: string;
  shdpnd: string;
  /** status Threads: of its thread group */
  threads: number;
  /** status TracerPid: (0: not traced) */
  tracer?: number;
  /** status NSpid:, space-separated */
  nspid: string;
  /** namespace inode numbers by type (pid, pid_for_children, user, net, …); real only */
  ns?: Record<string, number>;
}

export interface ObservedLabel {
  tasks: ObservedTask[];
  /** scenario cgroup path → pids.current / pids.max / pids.events text */
  cgroups: Record<string, Record<string, string>>;
  /** scenario processes alive (not zombies) */
  alive: string[];
  /** the tid of the task that reached the label (0 for "end") */
  labeller: number;
}

export interface ObservedStep {
  index: number;
  tid?: number;
  /** "ok", an errno name, "stalled" (model) or "UNSUPPORTED:<why>" (real) */
  outcome: string;
  value?: number;
  /** ioctl: the bytes read back, hex */
  out?: string;
  note?: string;
}

export interface Observation {
  source: 'model' | 'real';
  /** the profile (model) or `uname -r` (real) */
  kernel: string;
  /** the pid of the model's init or of the probe's supervisor */
  supervisor: { pid: number; ns?: Record<string, number> };
  /** every CPU a process may use */
  cpus: string;
  /** /proc/sys/kernel/pid_max: tids are allocated upwards and wrap there */
  pidMax: number;
  /** how cgroup paths are rooted: the model's v2 tree, or the probe's hierarchy */
  cgroup: { mode: string; home: string; base: string };
  processes: Record<string, number>;
  steps: ObservedStep[];
  labels: Record<string, ObservedLabel>;
  labelOrder: string[];
  ended: string;
  errors: string[];
  notes: string[];
}

const statusLine = (status: string, key: string): string =>
  new RegExp(`^${key}:\\t([^\\n]*)$`, 'm').exec(status)?.[1] ?? '';

/** A model TaskView as an ObservedTask (the fields a real /proc shows). */
export function observedTask(t: TaskView): ObservedTask {
  return {
    tid: t.pid,
    tgid: t.tgid,
    ppid: t.ppid,
    uid: t.uid,
    comm: t.comm,
    name: statusLine(t.status, 'Name') || t.comm,
    state: t.state,
    flags: t.flags,
    cgroup: t.cgroup,
    cpus: t.cpus,
    sigblk: t.sigblk,
    sigpnd: statusLine(t.status, 'SigPnd'),
    shdpnd: statusLine(t.status, 'ShdPnd'),
    threads: Number(statusLine(t.status, 'Threads') || t.nlwp),
    tracer: Number(statusLine(t.status, 'TracerPid') || 0),
    nspid: statusLine(t.status, 'NSpid').replace(/\t/g, ' '),
    ns: t.ns,
  };
}

/** The label's tasks by the rule at the top of this file. */
export function selectModelTasks(snap: Snapshot, cgroups: readonly string[]): TaskView[] {
  const base = snap.tasks.filter((t) => t.pid !== 1 && !(t.flags & PF_KTHREAD));
  const ids = new Set<number>();
  for (const t of base) {
    ids.add(t.pid);
    ids.add(t.tgid);
  }
  const out = new Set(base);
  for (const t of snap.tasks) {
    if (!(t.flags & PF_KTHREAD) || t.pid === 2) continue;
    const m = /-(\d+)$/.exec(statusLine(t.status, 'Name'));
    if (m && ids.has(Number(m[1]))) out.add(t);
    if (cgroups.includes(t.cgroup)) out.add(t);
  }
  return [...out].sort((a, b) => a.pid - b.pid);
}

/** The pids files and cgroup.events (populated, frozen) of a model cgroup. */
function cgroupFiles(snap: Snapshot, path: string): Record<string, string> {
  const c = snap.cgroups.find((x) => x.path === path);
  const out: Record<string, string> = {};
  if (!c) return out;
  for (const f of ['pids.current', 'pids.max', 'pids.events', 'cgroup.events'])
    if (c.files[f] !== undefined) out[f] = c.files[f]!;
  return out;
}

/**
 * The observation of a model run of the scenario `compiled` was compiled from. Steps are
 * paired with the script's indices by path and occurrence; a step the model ran that the
 * script does not have (there is none for a compilable scenario) is reported in `errors`.
 */
export function observeModel(run: RunResult, compiled: CompiledScript, cpus: number): Observation {
  const byPath = new Map<string, number[]>();
  for (const s of compiled.steps) {
    const l = byPath.get(s.path) ?? [];
    l[s.occurrence] = s.index;
    byPath.set(s.path, l);
  }
  const seen = new Map<string, number>();
  const steps: ObservedStep[] = [];
  const errors: string[] = [];
  const labeller = new Map<string, number>();
  for (const r of run.steps) {
    const occ = seen.get(r.path) ?? 0;
    seen.set(r.path, occ + 1);
    const index = byPath.get(r.path)?.[occ];
    const tid = Number(/-(\d+)$/.exec(r.task)?.[1] ?? 0);
    if (r.action === 'label') labeller.set(r.detail, tid);
    if (index === undefined) {
      errors.push(`model step ${r.path} (#${occ + 1}) is not in the compiled script`);
      continue;
    }
    steps.push({ index, tid, outcome: r.outcome, ...(r.value !== undefined ? { value: r.value } : {}) });
  }
  const labels: Record<string, ObservedLabel> = {};
  const labelOrder: string[] = [];
  for (const snap of run.snapshots) {
    labelOrder.push(snap.label);
    labels[snap.label] = {
      tasks: selectModelTasks(snap, compiled.cgroups).map(observedTask),
      cgroups: Object.fromEntries(compiled.cgroups.map((p) => [p, cgroupFiles(snap, p)])),
      alive: Object.entries(snap.processes)
        .filter(([, p]) => p.alive)
        .map(([n]) => n),
      labeller: snap.label === 'end' ? 0 : (labeller.get(snap.label) ?? 0),
    };
  }
  const first = run.snapshots[0];
  return {
    source: 'model',
    kernel: run.profile,
    supervisor: { pid: 1, ns: nsInodes(run.kernel.init) },
    cpus: cpus > 1 ? `0-${cpus - 1}` : '0',
    pidMax: run.kernel.pidMax,
    cgroup: { mode: 'model', home: '/', base: '' },
    processes: Object.fromEntries(Object.entries(first?.processes ?? {}).map(([n, p]) => [n, p.pid])),
    steps,
    labels,
    labelOrder,
    ended: run.ended,
    errors,
    notes: [],
  };
}

/** Parse and check the probe's JSON (throws with the reason when it is not an observation). */
export function parseProbeOutput(text: string): Observation {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`the probe's output is not JSON (${(e as Error).message}): ${text.slice(0, 200)}`);
  }
  const o = v as Record<string, unknown>;
  if (
    o?.probe !== 1 ||
    !Array.isArray(o.steps) ||
    typeof o.labels !== 'object' ||
    !Array.isArray(o.labelOrder)
  )
    throw new Error(`the probe's output is not an observation: ${text.slice(0, 200)}`);
  const cg = (o.cgroup ?? {}) as Record<string, string>;
  return {
    source: 'real',
    kernel: String(o.kernel),
    supervisor: o.supervisor as Observation['supervisor'],
    cpus: String(o.cpus ?? ''),
    pidMax: Number(o.pidMax ?? 4194304),
    cgroup: { mode: String(cg.mode ?? 'none'), home: String(cg.home ?? '/'), base: String(cg.base ?? '') },
    processes: o.processes as Record<string, number>,
    steps: o.steps as ObservedStep[],
    labels: o.labels as Record<string, ObservedLabel>,
    labelOrder: o.labelOrder as string[],
    ended: String(o.ended),
    errors: (o.errors as string[]) ?? [],
    notes: (o.notes as string[]) ?? [],
  };
}
