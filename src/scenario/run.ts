/**
 * Run a scenario on one kernel profile: boot, set up the host, spawn the processes with their
 * compiled programs, run to quiescence (or the time limit), and record every step's outcome,
 * a snapshot at every label, and the result of every check and expectation.
 */
import {
  type Cgroup,
  cgroupEnableController,
  cgroupMkdirP,
  cgroupProcsWrite,
  cgroupSetThreaded,
} from '../cgroup/cgroup.js';
import { registerIoUring } from '../io_uring/io_uring.js';
import type { Choices } from '../kernel/choices.js';
import { CAP_FULL_SET, CAP_NAMES, capBit } from '../kernel/cred.js';
import { Errno, err, errnoFromName, errnoName, ok, type Result } from '../kernel/errno.js';
import { O_CLOEXEC } from '../kernel/files.js';
import { type FootprintRecorder, fpUnaudited } from '../kernel/footprint.js';
import type { Kernel } from '../kernel/kernel.js';
import { cgroupFile, cpuList, parseCpuList, procStat, procStatus } from '../kernel/procfs.js';
import { RLIMIT_NAMES, type Rlimit } from '../kernel/rlimit.js';
import { type KGen, Op, signalPendingState } from '../kernel/sched.js';
import {
  __WALL,
  __WCLONE,
  CLONE_NEWCGROUP,
  CLONE_NEWIPC,
  CLONE_NEWNET,
  CLONE_NEWNS,
  CLONE_NEWPID,
  CLONE_NEWTIME,
  CLONE_NEWUSER,
  CLONE_NEWUTS,
  PF_KTHREAD,
  TASK_INTERRUPTIBLE,
  TASK_RUNNING,
  WNOHANG,
  WUNTRACED,
} from '../kernel/sched-consts.js';
import { O_CREAT } from '../kernel/shmem.js';
import { cgroupFreeze, enableSignalFaults, freezeProcesses, thawProcesses } from '../kernel/signal.js';
import {
  SIG_BLOCK,
  SIG_DFL,
  SIG_IGN,
  SIG_UNBLOCK,
  sigmask,
  signalFromName,
} from '../kernel/signal-consts.js';
import {
  type Program,
  PTRACE_ATTACH,
  PTRACE_DETACH,
  PTRACE_O_TRACECLONE,
  PTRACE_O_TRACEFORK,
  PTRACE_O_TRACEVFORK,
  PTRACE_SEIZE,
  type Sys,
  spawnProcess,
} from '../kernel/syscalls.js';
import { type Task, taskStateLetter } from '../kernel/task.js';
import { bootKernel } from '../kernel/testing.js';
import { registerKvm } from '../kvm/kvm.js';
import { KVM_CREATE_VCPU, KVM_CREATE_VM, KVM_RUN } from '../kvm/uapi.js';
import { getProfile } from '../profiles/eras.js';
import { registerVhost } from '../vhost/index.js';
import { kick, Scratch, setupVhostNet, type VhostNetSetup } from '../vhost/qemu.js';
import { encodeU64, VHOST_IOCTLS } from '../vhost/uapi.js';
import { vhostModule } from '../vhost/vhost.js';
import { vhostTransportSendPkt, vsockHdr } from '../vhost/vsock.js';
import { formatPath } from './errors.js';
import { type IoUringAlias, ioUringStep } from './io_uring-steps.js';
import { IOCTL_ARGS } from './ioctl-args.js';
import type { LoadedScenario } from './load.js';
import type { ScenarioDoc } from './schema.js';

// ------------------------------------------------------------------ results

export interface StepRecord {
  readonly process: string;
  readonly task: string;
  readonly path: string;
  readonly action: string;
  readonly detail: string;
  /** "ok", an errno name, or "stalled" (traffic that stopped making progress) */
  readonly outcome: string;
  readonly value?: number;
  /** the expectation for this profile, if any */
  readonly expected?: string;
  readonly ts: number;
}

export interface TaskView {
  pid: number;
  tgid: number;
  ppid: number;
  uid: number;
  comm: string;
  /** what ps shows as CMD: [comm] for kthreads, the process's command otherwise */
  cmd: string;
  state: string;
  flags: number;
  kthread: boolean;
  nlwp: number;
  cgroup: string;
  cpus: string;
  sigblk: string;
  startTime: number;
  cpuNs: number;
  status: string;
  stat: string;
  /** /proc/<tid>/ns/* inode numbers (0: the link cannot be read, e.g. a zombie's nsproxy is gone) */
  ns: Record<string, number>;
}

export interface CgroupView {
  path: string;
  type: string;
  files: Record<string, string>;
}

export interface Snapshot {
  label: string;
  ts: number;
  tasks: TaskView[];
  cgroups: CgroupView[];
  /** scenario process name → its pid (tgid) and whether it is alive */
  processes: Record<string, { pid: number; alive: boolean }>;
  nproc: Record<string, number>;
  nrThreads: number;
}

export interface CheckResult {
  readonly label: string;
  readonly check: string;
  readonly ok: boolean;
  readonly expected: string;
  readonly actual: string;
}

export interface RunResult {
  readonly scenario: string;
  readonly profile: string;
  readonly seed: number;
  readonly steps: StepRecord[];
  readonly snapshots: Snapshot[];
  readonly checks: CheckResult[];
  /** step expectations that did not hold, and failed checks, as sentences */
  readonly failures: string[];
  /** how the run ended */
  readonly ended: 'idle' | 'time-limit';
  readonly kernel: Kernel;
}

// ------------------------------------------------------------------ helpers

const NS_FLAGS: Record<string, number> = {
  pid: CLONE_NEWPID,
  user: CLONE_NEWUSER,
  net: CLONE_NEWNET,
  mnt: CLONE_NEWNS,
  uts: CLONE_NEWUTS,
  ipc: CLONE_NEWIPC,
  cgroup: CLONE_NEWCGROUP,
  time: CLONE_NEWTIME,
};

/** "10ms" → ns */
export function durationNs(d: number | string): number {
  if (typeof d === 'number') return d;
  const m = /^(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s)$/.exec(d)!;
  const mult = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9 }[m[2] as 'ns'];
  return Math.round(Number(m[1]) * mult);
}

function limitValue(v: number | string): number {
  return v === 'max' || v === 'unlimited' ? Number.POSITIVE_INFINITY : Number(v);
}

function cpuMask(v: number | string): number {
  if (typeof v === 'number') return 1 << v;
  return parseCpuList(v) ?? 0;
}

function rlimitsOf(spec: Record<string, unknown> | undefined): Record<number, Rlimit> {
  const out: Record<number, Rlimit> = {};
  for (const [name, v] of Object.entries(spec ?? {})) {
    const res = RLIMIT_NAMES[name.toLowerCase().replace(/^rlimit_/, '')];
    if (res === undefined) throw new Error(`unknown rlimit ${name}`);
    if (typeof v === 'object' && v !== null) {
      const o = v as { soft: number | string; hard: number | string };
      out[res] = { cur: limitValue(o.soft), max: limitValue(o.hard) };
    } else {
      const n = limitValue(v as number | string);
      out[res] = { cur: n, max: n };
    }
  }
  return out;
}

/** The expectation of a step for `profile`: the profile's key, else `default`. */
export function expectationFor(expect: unknown, profile: string): string | undefined {
  if (expect === undefined) return undefined;
  if (typeof expect === 'string') return expect;
  const m = expect as Record<string, string>;
  return m[profile] ?? m.default;
}

function globToRegExp(glob: string): RegExp {
  return new RegExp(
    `^${glob
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  );
}

function outcomeOf(r: Result<unknown>): string {
  return r.ok ? 'ok' : errnoName(r.errno);
}

/** the scenario's ptrace requests and options */
export const PTRACE_REQUESTS = { seize: PTRACE_SEIZE, attach: PTRACE_ATTACH, detach: PTRACE_DETACH } as const;
export const PTRACE_OPTIONS = {
  TRACEFORK: PTRACE_O_TRACEFORK,
  TRACEVFORK: PTRACE_O_TRACEVFORK,
  TRACECLONE: PTRACE_O_TRACECLONE,
} as const;

// ------------------------------------------------------------------ the runner

interface ProcState {
  name: string;
  task: Task | null;
}

type Alias =
  | { kind: 'fd'; fd: number }
  | { kind: 'vhost-net'; fd: number; setup: VhostNetSetup }
  | { kind: 'kvm'; fd: number; vcpus: number[] }
  | { kind: 'process'; pid: number }
  | { kind: 'thread'; tid: number }
  | IoUringAlias;

/** What every step action gets: its task, process, place in the program and arguments. */
interface StepContext {
  readonly sys: Sys;
  readonly proc: string;
  readonly action: string;
  readonly b: Record<string, unknown>;
  readonly body: unknown;
  readonly expect: unknown;
  readonly path: (string | number)[];
  readonly aliases: Map<string, Alias>;
  /** record the step's outcome (checked against `expect`) */
  readonly rec: (detail: string, r: Result<unknown>, value?: number) => void;
}

/** the cgroup files a snapshot records, and those the checks read */
const SNAPSHOT_CGROUP_FILES = [
  'cgroup.procs',
  'cgroup.threads',
  'pids.current',
  'pids.max',
  'pids.events',
  'cpu.stat',
  'cpuset.cpus.effective',
  'memory.current',
  'cgroup.events',
];
const CHECKED_CGROUP_FILES = ['pids.current', 'pids.events'];

class Runner {
  readonly k: Kernel;
  readonly steps: StepRecord[] = [];
  readonly snapshots: Snapshot[] = [];
  readonly checks: CheckResult[] = [];
  readonly failures: string[] = [];
  readonly procs = new Map<string, ProcState>();
  readonly labelsReached = new Set<string>();
  /** tasks sleeping in `wait`, by the label they wait for (only that label wakes them, as in the probe) */
  readonly labelWaiters = new Map<Task, string>();
  /** snapshots with only what the checks read (RunOptions.snapshots) */
  leanSnapshots = false;
  private bootThreads = 0;
  private bootNproc = new Map<number, number>();

  constructor(
    readonly doc: ScenarioDoc,
    readonly profile: string,
    readonly seed: number,
    trace: boolean,
    choices?: Choices,
    faultAlloc?: boolean,
  ) {
    const host = doc.host ?? {};
    const mem = host.memory ? /^(\d+)\s*(M|G)/i.exec(host.memory) : null;
    this.k = bootKernel({
      profile: getProfile(profile),
      seed,
      trace,
      ...(choices ? { choices } : {}),
      ...(faultAlloc ? { faultAlloc } : {}),
      cpus: host.cpus ?? 4,
      ...(mem ? { memoryMiB: Number(mem[1]) * (mem[2]!.toUpperCase() === 'G' ? 1024 : 1) } : {}),
      ...(host.sysctl?.['kernel.threads-max'] ? { threadsMax: host.sysctl['kernel.threads-max'] } : {}),
      ...(host.sysctl?.['kernel.pid_max'] ? { pidMax: host.sysctl['kernel.pid_max'] } : {}),
      ...(host.housekeeping !== undefined ? { housekeepingCpus: cpuMask(host.housekeeping) } : {}),
    });
    const k = this.k;
    registerVhost(k);
    registerIoUring(k);
    const nx = host.modules?.['kvm.nx_huge_pages'];
    registerKvm(
      k,
      nx === undefined ? {} : { nxHugePages: nx === 'never' ? 'never' : nx === true || nx === 'Y' },
    );
    const fo = host.modules?.['vhost.fork_from_owner_default'];
    if (fo !== undefined && k.profile.vhostForkOwnerControl)
      vhostModule(k).forkFromOwnerDefault = Boolean(fo);
    const mr = host.modules?.['vhost.max_mem_regions'];
    if (mr !== undefined) vhostModule(k).maxMemRegions = mr;
    for (const [path, spec] of Object.entries(host.cgroups ?? {})) this.makeCgroup(path, spec ?? {});
    this.bootThreads = k.nrThreads;
    for (const u of k.ucounts.all()) this.bootNproc.set(u.uid, u.nproc);
  }

  private makeCgroup(
    path: string,
    spec: NonNullable<NonNullable<ScenarioDoc['host']>['cgroups']>[string] & object,
  ): void {
    const top = this.k.cgroupRoots[0]!.top;
    const r = cgroupMkdirP(top, path);
    if (!r.ok) throw new Error(`cgroup ${path}: ${errnoName(r.errno)}`);
    const cg = r.value;
    const ancestors: Cgroup[] = [];
    for (let c: Cgroup | null = cg.parent; c; c = c.parent) ancestors.unshift(c);
    const threaded = spec['cgroup.type'] === 'threaded';
    for (const c of ancestors)
      for (const ctrl of threaded
        ? (['pids', 'cpu', 'cpuset'] as const)
        : (['pids', 'cpu', 'cpuset', 'memory'] as const))
        if (c.type !== 'threaded') cgroupEnableController(c, ctrl);
    if (threaded) {
      const t = cgroupSetThreaded(cg);
      if (!t.ok) throw new Error(`cgroup ${path}: cannot make threaded (${errnoName(t.errno)})`);
    }
    if (spec['pids.max'] !== undefined) cg.pids.max = limitValue(spec['pids.max']);
    if (spec['cpuset.cpus'] !== undefined) cg.cpusetCpus = cpuMask(spec['cpuset.cpus']);
    if (spec['cpu.max'] !== undefined) {
      const [q, p] = String(spec['cpu.max']).split(/\s+/);
      cg.cpu.quotaUs = q === 'max' ? Number.POSITIVE_INFINITY : Number(q);
      if (p) cg.cpu.periodUs = Number(p);
    }
    if (spec.owner !== undefined) cg.ownerUid = spec.owner;
  }

  cgroup(path: string): Cgroup | null {
    return this.k.cgroupRoots[0]!.top.lookup(path);
  }

  // -------------------------------------------------------------- processes

  spawnAll(): void {
    const order: string[] = [];
    const visit = (n: string, seen: Set<string>) => {
      if (order.includes(n) || seen.has(n)) return;
      seen.add(n);
      const p = this.doc.processes[n]!;
      if (p.parent) visit(p.parent, seen);
      order.push(n);
    };
    for (const n of Object.keys(this.doc.processes)) visit(n, new Set());
    for (const name of order) {
      const spec = this.doc.processes[name]!;
      const uid = spec.uid ?? 0;
      let caps: bigint | undefined;
      if (spec.capabilities === 'all') caps = CAP_FULL_SET;
      else if (spec.capabilities === 'none') caps = 0n;
      else if (Array.isArray(spec.capabilities)) {
        caps = 0n;
        for (const c of spec.capabilities) {
          const n =
            CAP_NAMES[c.toUpperCase().startsWith('CAP_') ? c.toUpperCase() : `CAP_${c.toUpperCase()}`];
          if (n === undefined) throw new Error(`unknown capability ${c}`);
          caps |= capBit(n);
        }
      }
      const cg = spec.cgroup ? this.cgroup(spec.cgroup) : null;
      if (spec.cgroup && !cg) {
        const r = cgroupMkdirP(this.k.cgroupRoots[0]!.top, spec.cgroup);
        if (!r.ok) throw new Error(`cgroup ${spec.cgroup}`);
      }
      const state: ProcState = { name, task: null };
      this.procs.set(name, state);
      const aliases = new Map<string, Alias>();
      const body = this.program(name, spec.program, ['processes', name, 'program'], aliases);
      const after = spec.after;
      const program: Program = (sys) => this.main(sys, after, body);
      state.task = spawnProcess(this.k, {
        comm: name,
        program,
        uid,
        gid: spec.gid ?? uid,
        ...(caps !== undefined ? { caps } : {}),
        rlimits: rlimitsOf(spec.rlimits),
        ...(spec.cgroup ? { cgroup: this.cgroup(spec.cgroup)! } : {}),
        ...(spec.cpus !== undefined ? { cpus: cpuMask(spec.cpus) } : {}),
        ...(spec.parent ? { parent: this.procs.get(spec.parent)!.task! } : {}),
      });
    }
  }

  /** Sleep until `label` has been reached (wait: step, `after:`). */
  *waitLabel(sys: Sys, label: string): KGen<Result<void>> {
    const t = sys.task;
    while (!this.labelsReached.has(label)) {
      if (signalPendingState(TASK_INTERRUPTIBLE, t)) {
        yield* sys.exitToUserMode();
        continue;
      }
      this.labelWaiters.set(t, label);
      t.state = TASK_INTERRUPTIBLE;
      yield Op.Schedule;
      t.state = TASK_RUNNING;
      this.labelWaiters.delete(t);
    }
    return ok();
  }

  reachLabel(label: string, by: Task): void {
    this.labelsReached.add(label);
    const snap = this.snapshot(label);
    this.snapshots.push(snap);
    this.evaluateChecks(label, snap);
    if (this.k.trace.enabled) this.k.emit('scenario_label', `label=${label} by=${by.comm}-${by.pid}`);
    for (const [t, l] of [...this.labelWaiters]) if (l === label) this.k.tryToWakeUp(t, TASK_INTERRUPTIBLE);
  }

  private record(
    sys: Sys,
    proc: string,
    path: (string | number)[],
    action: string,
    detail: string,
    r: Result<unknown>,
    expect: unknown,
    value?: number,
  ): void {
    const outcome = outcomeOf(r);
    const expected = expectationFor(expect, this.profile);
    this.pushRecord(sys, proc, path, action, detail, outcome, expected, value);
  }

  private pushRecord(
    sys: Sys,
    proc: string,
    path: (string | number)[],
    action: string,
    detail: string,
    outcome: string,
    expected: string | undefined,
    value?: number,
  ): void {
    const task = `${sys.task.comm}-${sys.task.pid}`;
    const at = formatPath(path);
    const ts = this.k.clock;
    // one literal per shape (not spreads of optional parts: the explorer records every step)
    const rec: StepRecord =
      value !== undefined
        ? expected !== undefined
          ? { process: proc, task, path: at, action, detail, outcome, value, expected, ts }
          : { process: proc, task, path: at, action, detail, outcome, value, ts }
        : expected !== undefined
          ? { process: proc, task, path: at, action, detail, outcome, expected, ts }
          : { process: proc, task, path: at, action, detail, outcome, ts };
    this.steps.push(rec);
    if (this.k.trace.enabled) this.k.emit('scenario_step', `${action} ${detail} = ${outcome}`);
    if (expected !== undefined && expected !== outcome)
      this.failures.push(
        `${rec.path}: ${action} ${detail} returned ${outcome}, expected ${expected} (${this.profile})`,
      );
  }

  /** Compile a list of steps into a program. `aliases` is the process's (shared with its threads). */
  program(
    proc: string,
    steps: readonly Record<string, unknown>[],
    path: (string | number)[],
    aliases: Map<string, Alias>,
  ): Program {
    return (sys) => this.runSteps(sys, proc, steps, path, aliases);
  }

  // Programs are arrow functions calling generator methods, not generator closures: V8 keeps
  // the context of a generator object made from a per-run generator closure alive through
  // minor GCs, and with it the whole run (the explorer runs thousands).

  /** A process's main(): wait for its `after:` label, run its steps; the end is exit_group(). */
  private *main(sys: Sys, after: string | undefined, body: Program): KGen<number | undefined> {
    if (after) yield* this.waitLabel(sys, after);
    const code = yield* body(sys);
    // exit_group() is not audited (footprint.ts)
    fpUnaudited(this.k, sys.task);
    return yield* sys.exitGroup(code ?? 0);
  }

  private *runSteps(
    sys: Sys,
    proc: string,
    steps: readonly Record<string, unknown>[],
    path: (string | number)[],
    aliases: Map<string, Alias>,
  ): KGen<number> {
    for (let i = 0; i < steps.length; i++) {
      const raw = steps[i]!;
      const action = Object.keys(raw).find((x) => x !== 'expect')!;
      if (this.k.fp) {
        // the explorer's footprints (footprint.ts): the steps whose kernel paths record what
        // they touch; every other step touches everything
        if (AUDITED_STEPS.has(action)) sys.task.fpAudited = true;
        else fpUnaudited(this.k, sys.task);
      }
      yield* this.step(sys, proc, action, raw[action], raw.expect, [...path, i, action], aliases);
    }
    return 0;
  }

  private resolveFd(aliases: Map<string, Alias>, v: unknown): number {
    if (typeof v === 'number') return v;
    const a = aliases.get(String(v));
    if (!a) return -1;
    if (a.kind === 'fd' || a.kind === 'vhost-net' || a.kind === 'kvm' || a.kind === 'io_uring') return a.fd;
    return -1;
  }

  /** The pid (as the caller sees it) of a target: a process name, a fork alias, "self" or a number. */
  /** the tid (in the caller's pid namespace) of tgid's first thread whose comm matches `glob` or whose tid it is; 1<<30 when none */
  private findThread(sys: Sys, tgid: number, glob: string): number {
    const ns = sys.task.activePidNs()!;
    const leader = this.k.findTaskByVpid(tgid, ns);
    const re = globToRegExp(glob);
    const th = leader?.signal.threads.find((t) => re.test(t.comm) || String(t.pidIn(ns)) === glob);
    return th ? th.pidIn(ns) : 1 << 30;
  }

  private resolveTarget(sys: Sys, aliases: Map<string, Alias>, v: unknown): number {
    if (typeof v === 'number') return v;
    if (v === 'self') return sys.getpid();
    const a = aliases.get(String(v));
    if (a?.kind === 'process') return a.pid;
    const p = this.procs.get(String(v))?.task;
    return p ? p.tgidIn(sys.task.activePidNs()!) : -1;
  }

  private scratch = new WeakMap<Task, Scratch>();
  private *scratchOf(sys: Sys): KGen<Scratch> {
    const mm = sys.task.mm;
    const key = sys.task.groupLeader;
    let s = this.scratch.get(key);
    if (!s || s.sys.task.mm !== mm) {
      s = yield* Scratch.create(sys);
      this.scratch.set(key, s);
    }
    return s;
  }

  /**
   * One step of a program: a plain function that hands back the generator of its action, so
   * that a suspended step keeps only that action's small frame (a task's chain of generators
   * is resumed at every scheduling point).
   */
  private step(
    sys: Sys,
    proc: string,
    action: string,
    body: unknown,
    expect: unknown,
    path: (string | number)[],
    aliases: Map<string, Alias>,
  ): KGen<void> {
    const b = body as Record<string, unknown>;
    const rec = (detail: string, r: Result<unknown>, value?: number) =>
      this.record(sys, proc, path, action, detail, r, expect, value);
    const c: StepContext = { sys, proc, action, b, body, expect, path, aliases, rec };
    switch (action) {
      case 'threads':
      case 'thread':
        return this.stepThreads(c);
      case 'open':
        return this.stepOpen(c);
      case 'close':
        return this.stepClose(c);
      case 'dup':
        return this.stepDup(c);
      case 'ioctl':
        return this.stepIoctl(c);
      case 'vhost-net':
        return this.stepVhostNet(c);
      case 'traffic':
        return this.stepTraffic(c);
      case 'kvm':
        return this.stepKvm(c);
      case 'kvm_run':
        return this.stepKvmRun(c);
      case 'fork':
        return this.stepFork(c);
      case 'exec':
        return this.stepExec(c);
      case 'exit':
        return this.stepExit(c);
      case 'exit_group':
        return this.stepExitGroup(c);
      case 'kill':
        return this.stepKill(c);
      case 'tgkill':
        return this.stepTgkill(c);
      case 'ptrace':
        return this.stepPtrace(c);
      case 'sigaction':
        return this.stepSigaction(c);
      case 'sigprocmask':
        return this.stepSigprocmask(c);
      case 'setrlimit':
        return this.stepSetrlimit(c);
      case 'setresuid':
        return this.stepSetresuid(c);
      case 'unshare':
        return this.stepUnshare(c);
      case 'affinity':
        return this.stepAffinity(c);
      case 'write':
        return this.stepWrite(c);
      case 'sleep':
        return this.stepSleep(c);
      case 'compute':
        return this.stepCompute(c);
      case 'label':
        return this.stepLabel(c);
      case 'wait':
        return this.stepWait(c);
      case 'wait4':
        return this.stepWait4(c);
      case 'eventfd':
        return this.stepEventfd(c);
      case 'eventfd-write':
        return this.stepEventfdWrite(c);
      case 'vsock-send':
        return this.stepVsockSend(c);
      case 'freezer':
        return this.stepFreezer(c);
      case 'loop':
        return this.stepLoop(c);
      case 'pipe':
      case 'io_uring':
      case 'io_uring_submit':
      case 'io_uring_wait':
      case 'io_uring_register':
        return this.stepPipe(c);
      default:
        throw new Error(`step ${action} not implemented`);
    }
  }

  /** the `threads`, `thread` steps */
  private *stepThreads({ sys, proc, action, b, path, aliases, rec }: StepContext): KGen<void> {
    const count = action === 'threads' ? Number(b.count) : 1;
    const child = b.program
      ? this.program(proc, b.program as Record<string, unknown>[], [...path, 'program'], aliases)
      : pauseForever;
    let last: Result<number> = ok(0);
    for (let n = 0; n < count; n++) {
      const name = b.name ? String(b.name).replace('{n}', String(n)) : undefined;
      const r = yield* sys.pthreadCreate(child, name);
      if (!r.ok) {
        last = r;
        break;
      }
      last = r;
      if (b.as) aliases.set(String(b.as), { kind: 'thread', tid: r.value });
      // the thread's first line is its program's, which says whether it is audited (footprint.ts)
      if (this.k.fp && b.program) {
        const t = this.k.findTaskByVpid(r.value, sys.task.activePidNs()!);
        if (t) t.fpFresh = true;
      }
    }
    rec(`${count} × pthread_create${b.name ? ` "${b.name}"` : ''}`, last, last.ok ? last.value : undefined);
  }

  /** the `open` step */
  private *stepOpen({ sys, b, aliases, rec }: StepContext): KGen<void> {
    const r = yield* sys.open(String(b.path), (b.cloexec ? O_CLOEXEC : 0) | (b.create ? O_CREAT : 0));
    if (r.ok) aliases.set(String(b.as), { kind: 'fd', fd: r.value });
    rec(`${b.path} as ${b.as}`, r, r.ok ? r.value : undefined);
  }

  /** the `close` step */
  private *stepClose({ sys, body, aliases, rec }: StepContext): KGen<void> {
    const r = yield* sys.close(this.resolveFd(aliases, body));
    rec(String(body), r);
  }

  /** the `dup` step */
  private *stepDup({ sys, b, aliases, rec }: StepContext): KGen<void> {
    const r = yield* sys.dup(this.resolveFd(aliases, b.fd));
    if (r.ok) aliases.set(String(b.as), { kind: 'fd', fd: r.value });
    rec(`${b.fd} as ${b.as}`, r, r.ok ? r.value : undefined);
  }

  /** the `ioctl` step */
  private *stepIoctl({ sys, b, aliases, rec }: StepContext): KGen<void> {
    const cmd = String(b.cmd);
    const number = VHOST_IOCTLS[cmd] ?? 0;
    const spec = IOCTL_ARGS[cmd];
    let arg = 0;
    if (typeof b.arg === 'number') arg = b.arg;
    else {
      const s = yield* this.scratchOf(sys);
      const bytes = spec
        ? spec.encode((b.arg ?? {}) as Record<string, unknown>, (v) => this.resolveFd(aliases, v))
        : new Uint8Array(0);
      arg = s.put(bytes.length ? bytes : new Uint8Array(8));
    }
    const r = yield* sys.ioctl(this.resolveFd(aliases, b.fd), number, arg);
    let value: number | undefined;
    if (r.ok && spec?.out) {
      const v = sys.task.mm?.view(arg, spec.out);
      if (v?.ok)
        value =
          spec.out === 1
            ? v.value.getUint8(0)
            : spec.out === 8 && spec.struct === '__u64'
              ? Number(v.value.getBigUint64(0, true))
              : v.value.getUint32(spec.out === 8 ? 4 : 0, true);
    }
    rec(`${b.fd} ${cmd}${b.arg !== undefined ? ` ${JSON.stringify(b.arg)}` : ''}`, r, value);
  }

  /** the `vhost-net` step */
  private *stepVhostNet({ sys, b, aliases, rec }: StepContext): KGen<void> {
    const r = yield* setupVhostNet(sys, { num: Number(b.queue ?? 256) });
    if (r.ok) aliases.set(String(b.as), { kind: 'vhost-net', fd: r.value.fd, setup: r.value });
    rec(`as ${b.as}${!r.ok && r.step ? ` (failed at ${r.step})` : ''}`, r);
  }

  /** the `traffic` step */
  private *stepTraffic({ sys, proc, action, b, expect, path, aliases, rec }: StepContext): KGen<void> {
    const a = aliases.get(String(b.dev));
    if (a?.kind !== 'vhost-net') {
      rec(String(b.dev), err(Errno.EBADF));
      return;
    }
    const res = yield* guestTraffic(sys, a.setup, Number(b.packets), Number(b.size ?? 64));
    this.pushRecord(
      sys,
      proc,
      path,
      action,
      `${b.packets} packets on ${b.dev}: ${res.sent} sent, ${res.echoed} received`,
      res.ok ? 'ok' : 'stalled',
      expectationFor(expect, this.profile),
      res.echoed,
    );
  }

  /** the `kvm` step */
  private *stepKvm({ sys, b, aliases, rec }: StepContext): KGen<void> {
    const fd = yield* sys.open('/dev/kvm');
    if (!fd.ok) return rec('/dev/kvm', fd);
    const vm = yield* sys.ioctl(fd.value, KVM_CREATE_VM, 0);
    if (!vm.ok) return rec('KVM_CREATE_VM', vm);
    const vcpus: number[] = [];
    if (b.as) aliases.set(String(b.as), { kind: 'kvm', fd: vm.value, vcpus });
    for (let i = 0; i < Number(b.vcpus ?? 1); i++) {
      const v = yield* sys.ioctl(vm.value, KVM_CREATE_VCPU, i);
      if (!v.ok) return rec(`KVM_CREATE_VCPU ${i}`, v);
      vcpus.push(v.value);
    }
    if (b.run === false) return rec(`vm with ${b.vcpus ?? 1} vCPUs`, ok());
    const run = yield* sys.ioctl(vcpus[0]!, KVM_RUN, 0);
    rec(`vm with ${b.vcpus ?? 1} vCPUs, KVM_RUN`, run);
  }

  /** the `kvm_run` step */
  private *stepKvmRun({ sys, b, aliases, rec }: StepContext): KGen<void> {
    // the vCPU descriptor of an earlier `kvm` step (inherited across fork, shared by threads)
    const a = aliases.get(String(b.vm));
    const i = Number(b.vcpu ?? 0);
    const fd = a?.kind === 'kvm' ? a.vcpus[i] : undefined;
    if (fd === undefined) return rec(`${b.vm} vCPU ${i}`, err(Errno.EBADF));
    const run = yield* sys.ioctl(fd, KVM_RUN, 0);
    rec(`${b.vm} vCPU ${i} KVM_RUN`, run);
  }

  /** the `fork` step */
  private *stepFork({ sys, proc, b, path, aliases, rec }: StepContext): KGen<void> {
    const child = b.program
      ? this.program(proc, b.program as Record<string, unknown>[], [...path, 'program'], new Map(aliases))
      : pauseForever;
    const r = yield* sys.fork(child);
    if (r.ok && b.as) aliases.set(String(b.as), { kind: 'process', pid: r.value });
    rec(b.as ? `as ${b.as}` : '', r, r.ok ? r.value : undefined);
  }

  /** the `exec` step */
  private *stepExec({ sys, proc, b, path, rec }: StepContext): KGen<void> {
    const prog = b.program
      ? this.program(proc, b.program as Record<string, unknown>[], [...path, 'program'], new Map())
      : pauseForever;
    const r = yield* sys.execve(String(b.path), prog);
    rec(String(b.path), r);
  }

  /** the `exit` step */
  private *stepExit({ sys, proc, action, body, path }: StepContext): KGen<void> {
    this.pushRecord(sys, proc, path, action, String(body), 'ok', undefined);
    return yield* sys.exit(Number(body));
  }

  /** the `exit_group` step */
  private *stepExitGroup({ sys, proc, action, body, path }: StepContext): KGen<void> {
    this.pushRecord(sys, proc, path, action, String(body), 'ok', undefined);
    return yield* sys.exitGroup(Number(body));
  }

  /** the `kill` step */
  private *stepKill({ sys, b, aliases, rec }: StepContext): KGen<void> {
    const sig = typeof b.signal === 'number' ? b.signal : (signalFromName(String(b.signal)) ?? -1);
    const r = yield* sys.kill(this.resolveTarget(sys, aliases, b.target), sig);
    rec(`${b.target} ${b.signal}`, r);
  }

  /** the `tgkill` step */
  private *stepTgkill({ sys, b, aliases, rec }: StepContext): KGen<void> {
    const sig = typeof b.signal === 'number' ? b.signal : (signalFromName(String(b.signal)) ?? -1);
    const tgid = this.resolveTarget(sys, aliases, b.target);
    const r = yield* sys.tgkill(tgid, this.findThread(sys, tgid, String(b.thread)), sig);
    rec(`${b.target} ${b.thread} ${b.signal}`, r);
  }

  /** the `ptrace` step */
  private *stepPtrace({ sys, b, aliases, rec }: StepContext): KGen<void> {
    const tgid = this.resolveTarget(sys, aliases, b.target);
    const tid = b.thread === undefined ? tgid : this.findThread(sys, tgid, String(b.thread));
    const options = ((b.options as string[] | undefined) ?? []).reduce(
      (m, o) => m | PTRACE_OPTIONS[o as keyof typeof PTRACE_OPTIONS],
      0,
    );
    const request = PTRACE_REQUESTS[(b.request as keyof typeof PTRACE_REQUESTS | undefined) ?? 'seize'];
    const r = yield* sys.ptrace(request, tid, options);
    if (r.ok && request === PTRACE_ATTACH && options) {
      const t = this.k.findTaskByVpid(tid, sys.task.activePidNs()!);
      if (t) sys.setPtraceOptions(t, options);
    }
    rec(`${b.request ?? 'seize'} ${b.target}${b.thread ? ` ${b.thread}` : ''}`, r);
  }

  /** the `sigaction` step */
  private *stepSigaction({ sys, b, rec }: StepContext): KGen<void> {
    const sig = typeof b.signal === 'number' ? b.signal : (signalFromName(String(b.signal)) ?? -1);
    const handler = b.handler === 'ignore' ? SIG_IGN : b.handler === 'default' ? SIG_DFL : 0x401000;
    const r = yield* sys.rtSigaction(sig, { handler });
    rec(`${b.signal} ${b.handler}`, r);
  }

  /** the `sigprocmask` step */
  private *stepSigprocmask({ sys, b, rec }: StepContext): KGen<void> {
    const mask = (list: unknown) => {
      let m = 0n;
      for (const s of (list as (string | number)[]) ?? [])
        m |= sigmask(typeof s === 'number' ? s : (signalFromName(s) ?? 64));
      return m;
    };
    let r: Result<unknown> = ok();
    if (b.block) r = yield* sys.rtSigprocmask(SIG_BLOCK, mask(b.block));
    if (r.ok && b.unblock) r = yield* sys.rtSigprocmask(SIG_UNBLOCK, mask(b.unblock));
    rec(JSON.stringify(b), r);
  }

  /** the `setrlimit` step */
  private *stepSetrlimit({ sys, b, rec }: StepContext): KGen<void> {
    let r: Result<void> = ok();
    for (const [res, lim] of Object.entries(rlimitsOf(b))) {
      r = yield* sys.setrlimit(Number(res), lim);
      if (!r.ok) break;
    }
    rec(JSON.stringify(b), r);
  }

  /** the `setresuid` step */
  private *stepSetresuid({ sys, body, rec }: StepContext): KGen<void> {
    const [ru, eu, su] = Array.isArray(body)
      ? (body as number[])
      : [Number(body), Number(body), Number(body)];
    const r = yield* sys.setresuid(ru!, eu!, su!);
    rec(JSON.stringify(body), r);
  }

  /** the `unshare` step */
  private *stepUnshare({ sys, body, rec }: StepContext): KGen<void> {
    let flags = 0;
    for (const n of body as string[]) flags |= NS_FLAGS[n]!;
    const r = yield* sys.unshare(flags >>> 0);
    rec((body as string[]).join(','), r);
  }

  /** the `affinity` step */
  private *stepAffinity({ sys, body, rec }: StepContext): KGen<void> {
    const r = yield* sys.schedSetaffinity(0, cpuMask(body as number | string));
    rec(String(body), r);
  }

  /** the `write` step */
  private *stepWrite({ sys, b, aliases, rec }: StepContext): KGen<void> {
    const r = yield* this.writeFile(sys, aliases, String(b.path), b.value as string | number);
    rec(`${b.path} ← ${b.value}`, r);
  }

  /** the `sleep` step */
  private *stepSleep({ sys, body, rec }: StepContext): KGen<void> {
    const r = yield* sys.nanosleep(durationNs(body as string | number));
    rec(String(body), r);
  }

  /** the `compute` step */
  private *stepCompute({ sys, proc, action, body, path }: StepContext): KGen<void> {
    yield* sys.compute(durationNs(body as string | number));
    this.pushRecord(sys, proc, path, action, String(body), 'ok', undefined);
  }

  /** the `label` step */
  private *stepLabel({ sys, proc, action, body, path }: StepContext): KGen<void> {
    this.pushRecord(sys, proc, path, action, String(body), 'ok', undefined);
    this.reachLabel(String(body), sys.task);
  }

  /** the `wait` step */
  private *stepWait({ sys, body, rec }: StepContext): KGen<void> {
    const r = yield* this.waitLabel(sys, String(body));
    rec(String(body), r);
  }

  /** the `wait4` step */
  private *stepWait4({ sys, b, aliases, rec }: StepContext): KGen<void> {
    let opts = 0;
    for (const o of (b.options as string[]) ?? [])
      opts |= { WNOHANG, __WALL, __WCLONE, WUNTRACED }[o as 'WNOHANG']!;
    const pid = b.pid === undefined ? -1 : this.resolveTarget(sys, aliases, b.pid);
    const r = yield* sys.wait4(pid, opts);
    rec(`${pid}`, r, r.ok ? r.value.pid : undefined);
  }

  /** the `eventfd` step */
  private *stepEventfd({ sys, b, aliases, rec }: StepContext): KGen<void> {
    const r = yield* sys.eventfd(Number(b.initval ?? 0));
    if (r.ok) aliases.set(String(b.as), { kind: 'fd', fd: r.value });
    rec(`as ${b.as}`, r, r.ok ? r.value : undefined);
  }

  /** the `eventfd-write` step */
  private *stepEventfdWrite({ sys, b, aliases, rec }: StepContext): KGen<void> {
    const v = encodeU64(BigInt(Number(b.value ?? 1)));
    const r = yield* sys.write(this.resolveFd(aliases, b.fd), v);
    rec(`${b.fd} ${b.value ?? 1}`, r);
  }

  /** the `vsock-send` step */
  private *stepVsockSend({ b, rec }: StepContext): KGen<void> {
    // a host socket's packet to the guest: the transport's send_pkt, in the sender's context
    const payload = new Uint8Array(Number(b.bytes ?? 8));
    const r = vhostTransportSendPkt(this.k, vsockHdr({ srcCid: 2n, dstCid: BigInt(Number(b.cid)) }), payload);
    rec(`cid ${b.cid} ${payload.length} bytes`, r);
  }

  /** the `freezer` step */
  private *stepFreezer({ sys, proc, action, body, path }: StepContext): KGen<void> {
    if (body === 'freeze') freezeProcesses(this.k);
    else thawProcesses(this.k);
    this.pushRecord(sys, proc, path, action, String(body), 'ok', undefined);
    this.k.current!.at = `the ${String(body)} step`;
    yield Op.Preempt;
  }

  /** the `loop` step */
  private *stepLoop({ sys, proc, b, path, aliases }: StepContext): KGen<void> {
    const inner = this.program(proc, b.steps as Record<string, unknown>[], [...path, 'steps'], aliases);
    for (let i = 0; i < Number(b.count); i++) yield* inner(sys);
  }

  /** the `pipe`, `io_uring`, `io_uring_submit`, `io_uring_wait`, `io_uring_register` steps */
  private *stepPipe({ sys, action, b, aliases, rec }: StepContext): KGen<void> {
    const ring = (v: unknown) => {
      const a = aliases.get(String(v));
      return a?.kind === 'io_uring' ? a.ring : null;
    };
    const r = yield* ioUringStep(sys, action, b, ring, (v) => this.resolveFd(aliases, v));
    for (const [name, a] of r.aliases ?? []) aliases.set(name, a);
    rec(r.detail, r.result, r.value);
  }

  /**
   * A write to a cgroupfs (/sys/fs/cgroup/...) or sysctl (/proc/sys/...) file by the current
   * task, as `echo value > path` would do it.
   */
  private *writeFile(
    sys: Sys,
    aliases: Map<string, Alias>,
    path: string,
    value: string | number,
  ): KGen<Result<void>> {
    const k = this.k;
    const t = sys.task;
    if (path.startsWith('/proc/sys/kernel/')) {
      if (t.cred.euid !== 0) return err(Errno.EACCES);
      const n = Number(value);
      if (!Number.isInteger(n) || n < 0) return err(Errno.EINVAL);
      if (path.endsWith('/threads-max')) k.maxThreads = n;
      else if (path.endsWith('/pid_max')) k.pidMax = n;
      else return err(Errno.ENOENT);
      return ok();
    }
    const m = /^\/sys\/fs\/cgroup(\/.*)?\/([^/]+)$/.exec(path);
    if (!m) return err(Errno.ENOENT);
    const cg = this.cgroup(m[1] ?? '/');
    if (!cg) return err(Errno.ENOENT);
    const file = m[2]!;
    if (t.cred.euid !== 0 && t.cred.euid !== cg.ownerUid) return err(Errno.EACCES);
    const v = String(value).trim();
    switch (file) {
      case 'cgroup.procs':
      case 'cgroup.threads': {
        const tid =
          v === 'self' || v === '0'
            ? sys.gettid()
            : /^\d+$/.test(v)
              ? Number(v)
              : this.resolveTarget(sys, aliases, v);
        return cgroupProcsWrite(k, t, cg, tid, file === 'cgroup.procs');
      }
      case 'pids.max':
        if (v !== 'max' && !/^\d+$/.test(v)) return err(Errno.EINVAL);
        cg.pids.max = limitValue(v);
        return ok();
      case 'cpuset.cpus': {
        const mask = parseCpuList(v);
        if (mask === null) return err(Errno.EINVAL);
        cg.cpusetCpus = mask;
        for (const c of cg.descendants())
          for (const task of c.tasks) if (!(task.flags & PF_KTHREAD)) task.cpusAllowed = c.effectiveCpus(k);
        return ok();
      }
      case 'cpu.max': {
        const [q, p] = v.split(/\s+/);
        cg.cpu.quotaUs = q === 'max' ? Number.POSITIVE_INFINITY : Number(q);
        if (p) cg.cpu.periodUs = Number(p);
        return ok();
      }
      case 'cgroup.freeze': {
        if (v !== '0' && v !== '1') return err(Errno.EINVAL);
        cg.freeze = v === '1';
        const tasks: Task[] = [];
        for (const c of cg.descendants()) tasks.push(...c.tasks);
        cgroupFreeze(k, tasks, cg.freeze);
        return ok();
      }
      case 'cgroup.type':
        return v === 'threaded' ? cgroupSetThreaded(cg) : err(Errno.EINVAL);
      case 'cgroup.subtree_control': {
        for (const part of v.split(/\s+/)) {
          const ctrl = part.replace(/^[+-]/, '') as 'pids';
          if (part.startsWith('-')) cg.subtreeControl.delete(ctrl);
          else {
            const r = cgroupEnableController(cg, ctrl);
            if (!r.ok) return r;
          }
        }
        return ok();
      }
      default:
        return err(Errno.ENOENT);
    }
  }

  // -------------------------------------------------------------- snapshots and checks

  snapshot(label: string): Snapshot {
    const k = this.k;
    const lean = this.leanSnapshots;
    const tasks: TaskView[] = [];
    for (const t of k.liveTasks()) {
      const leader = t.groupLeader;
      tasks.push({
        pid: t.pid,
        tgid: t.tgid,
        ppid: t.realParent.tgid,
        uid: t.cred.uid,
        comm: t.comm,
        cmd: t.isKthread() ? `[${t.comm}]` : leader.execPath || leader.comm,
        state: taskStateLetter(t),
        flags: t.flags >>> 0,
        kthread: t.isKthread(),
        nlwp: t.signal.nrThreads,
        cgroup: t.cgroups[0]?.path ?? '/',
        cpus: cpuList(t.cpusAllowed),
        sigblk: t.blocked.toString(16).padStart(16, '0'),
        startTime: t.startTime,
        cpuNs: t.sumExecNs,
        status: lean ? '' : procStatus(k, t),
        stat: lean ? '' : procStat(k, t),
        ns: lean ? {} : nsInodes(t),
      });
    }
    const cgroups: CgroupView[] = [];
    for (const c of k.cgroupRoots[0]!.top.descendants()) {
      const files: Record<string, string> = {};
      for (const f of lean ? CHECKED_CGROUP_FILES : SNAPSHOT_CGROUP_FILES) {
        const text = cgroupFile(k, c, f);
        if (text !== null) files[f] = text;
      }
      cgroups.push({ path: c.path, type: c.isRoot ? 'root' : c.type, files });
    }
    const processes: Snapshot['processes'] = {};
    for (const [name, p] of this.procs)
      processes[name] = {
        pid: p.task?.pid ?? 0,
        alive: !!p.task && p.task.exitState === 0 && k.tasks.get(p.task.pid) === p.task,
      };
    const nproc: Record<string, number> = {};
    for (const u of k.ucounts.all()) if (u.ns === k.initUserNs && u.nproc) nproc[String(u.uid)] = u.nproc;
    return { label, ts: k.clock, tasks, cgroups, processes, nproc, nrThreads: k.nrThreads };
  }

  private evaluateChecks(label: string, snap: Snapshot): void {
    const per = this.doc.checks?.[label];
    if (!per) return;
    // a profile's own block replaces the default block
    const merged = (per[this.profile] ?? per.default ?? {}) as NonNullable<
      ScenarioDoc['checks']
    >[string][string];
    const push = (check: string, okv: boolean, expected: string, actual: string) => {
      this.checks.push({ label, check, ok: okv, expected, actual });
      if (!okv)
        this.failures.push(
          `check ${label}: ${check}: expected ${expected}, found ${actual} (${this.profile})`,
        );
    };
    for (const [name, n] of Object.entries(merged.threads ?? {})) {
      const p = snap.processes[name];
      const t = p?.alive ? snap.tasks.find((x) => x.pid === p.pid) : undefined;
      push(`threads ${name}`, (t?.nlwp ?? 0) === n, String(n), String(t?.nlwp ?? 0));
    }
    for (const sel of merged.tasks ?? []) {
      const matches = snap.tasks.filter((t) => this.matchTask(snap, t, sel));
      const desc = JSON.stringify(sel);
      if (sel.count !== undefined)
        push(`tasks ${desc}`, matches.length === sel.count, `${sel.count} matching`, `${matches.length}`);
      else push(`tasks ${desc}`, matches.length > 0, 'at least one matching', `${matches.length}`);
    }
    for (const [path, n] of Object.entries(merged['pids.current'] ?? {})) {
      const v = snap.cgroups.find((c) => c.path === path)?.files['pids.current']?.trim() ?? 'none';
      push(`pids.current ${path}`, v === String(n), String(n), v);
    }
    for (const [path, n] of Object.entries(merged['pids.events'] ?? {})) {
      const v = snap.cgroups.find((c) => c.path === path)?.files['pids.events']?.trim() ?? 'none';
      push(`pids.events ${path}`, v === `max ${n}`, `max ${n}`, v);
    }
    for (const [uid, n] of Object.entries(merged.nproc ?? {})) {
      const v = snap.nproc[uid] ?? 0;
      push(`nproc uid ${uid}`, v === n, String(n), String(v));
    }
    if (merged.alive) {
      const alive = Object.entries(snap.processes)
        .filter(([, p]) => p.alive)
        .map(([n]) => n)
        .sort();
      const want = [...merged.alive].sort();
      push(
        'alive',
        JSON.stringify(alive) === JSON.stringify(want),
        `[${want.join(', ')}]`,
        `[${alive.join(', ')}]`,
      );
    }
    if (merged.leaks === 'none') {
      const extra = snap.tasks.filter((t) => t.pid > 2).map((t) => `${t.comm}-${t.pid}`);
      const charged = snap.cgroups
        .filter((c) => c.files['pids.current'] && c.files['pids.current'].trim() !== '0')
        .map((c) => c.path);
      const nproc = Object.entries(snap.nproc).filter(
        ([uid, n]) => (this.bootNproc.get(Number(uid)) ?? 0) !== n,
      );
      const okv =
        extra.length === 0 &&
        charged.length === 0 &&
        nproc.length === 0 &&
        snap.nrThreads === this.bootThreads;
      push(
        'leaks',
        okv,
        'none',
        okv
          ? 'none'
          : [
              ...extra,
              ...charged.map((c) => `pids charged in ${c}`),
              ...nproc.map(([u, n]) => `uid ${u} nproc ${n}`),
            ].join(', '),
      );
    }
  }

  private matchTask(snap: Snapshot, t: TaskView, sel: Record<string, unknown>): boolean {
    const pidOf = (v: unknown): number => {
      if (typeof v === 'number') return v;
      if (v === 'kthreadd') return 2;
      if (v === 'init') return 1;
      return snap.processes[String(v)]?.pid ?? -1;
    };
    if (sel.comm !== undefined && !globToRegExp(String(sel.comm)).test(t.comm)) return false;
    if (sel.tgid !== undefined && t.tgid !== pidOf(sel.tgid)) return false;
    if (sel.ppid !== undefined && t.ppid !== pidOf(sel.ppid)) return false;
    if (sel.uid !== undefined && t.uid !== sel.uid) return false;
    if (sel.cgroup !== undefined && t.cgroup !== sel.cgroup) return false;
    if (sel.cpus !== undefined && t.cpus !== cpuList(cpuMask(sel.cpus as string | number))) return false;
    if (sel.sigblk !== undefined && t.sigblk !== sel.sigblk) return false;
    if (sel.state !== undefined && t.state !== sel.state) return false;
    if (sel.kthread !== undefined && t.kthread !== sel.kthread) return false;
    return true;
  }

  /** The `end` checks, and every checked label that was never reached. */
  finish(end: Snapshot): void {
    this.evaluateChecks('end', end);
    for (const label of Object.keys(this.doc.checks ?? {})) {
      if (label === 'end' || this.labelsReached.has(label)) continue;
      const per = this.doc.checks![label]!;
      if (!per[this.profile] && !per.default) continue;
      this.checks.push({
        label,
        check: 'reached',
        ok: false,
        expected: 'the label to be reached',
        actual: 'never reached',
      });
      this.failures.push(`check ${label}: the label was never reached (${this.profile})`);
    }
  }

  run(timeLimit: number, onStep?: (k: Kernel) => void): RunResult['ended'] {
    if (onStep) {
      // one slice at a time: Kernel.run's loop body depends only on kernel state, so this
      // takes exactly the same steps (and asks exactly the same choices) as a single call
      for (;;) {
        const r = this.k.run({ untilTime: timeLimit, maxSteps: 1 });
        if (r === 'steps') {
          onStep(this.k);
          continue;
        }
        return r === 'time' ? 'time-limit' : 'idle';
      }
    }
    const r = this.k.run({ untilTime: timeLimit });
    return r === 'time' ? 'time-limit' : 'idle';
  }
}

/**
 * The namespace inodes /proc/<tid>/ns/* link to (fs/proc/namespaces.c, nsfs): pid and user
 * come from the task's pid and creds; the others need its nsproxy (gone once it exited), and
 * pid_for_children cannot be read before the new namespace has its init (pidns_for_children_get).
 */
export function nsInodes(t: Task): Record<string, number> {
  const ns = t.nsproxy;
  const pfc = ns?.pidForChildren;
  return {
    pid: t.activePidNs()?.inum ?? 0,
    pid_for_children: pfc && (pfc === t.activePidNs() || pfc.childReaper) ? pfc.inum : 0,
    user: t.cred.userNs.inum,
    net: ns?.net.inum ?? 0,
    mnt: ns?.mnt.inum ?? 0,
    uts: ns?.uts.inum ?? 0,
    ipc: ns?.ipc.inum ?? 0,
    cgroup: ns?.cgroup.inum ?? 0,
    time: ns?.time.inum ?? 0,
  };
}

/** A thread or child with nothing to do: sleep until a signal ends it. */
/**
 * The steps whose kernel paths are audited for the explorer's footprints (footprint.ts):
 * `loop` itself runs no kernel code; `eventfd-write` is write(2) on an eventfd, whose
 * eventfd_signal() and vhost_poll wake-ups record what they touch (or mark the step global).
 */
const AUDITED_STEPS: ReadonlySet<string> = new Set(['loop', 'eventfd-write']);

function* pauseForever(sys: Sys): KGen<number> {
  for (;;) yield* sys.pause();
}

/** Guest traffic through a vhost-net device: `n` frames out through TX, echoed back through RX. */
function* guestTraffic(
  sys: Sys,
  s: VhostNetSetup,
  n: number,
  size: number,
): KGen<{ ok: boolean; sent: number; echoed: number }> {
  const { tx, rx, tap } = s;
  const window = Math.min(32, tx.num);
  const txBufs: number[] = [];
  for (let i = 0; i < window; i++) txBufs.push(tx.allocBuffer(12 + size));
  const rxBufs: number[] = [];
  for (let i = 0; i < Math.min(64, rx.num); i++) rxBufs.push(rx.allocBuffer(12 + 1514));
  for (const [i, gpa] of rxBufs.entries()) rx.addBuf([], [{ gpa, len: 12 + 1514 }], i);
  if (rx.publish()) yield* kick(sys, s.kickFd[0]);
  let sent = 0;
  let txDone = 0;
  let echoed = 0;
  let idle = 0;
  while (echoed < n) {
    while (sent < n && sent - txDone < window) {
      const gpa = txBufs[sent % window]!;
      const pkt = new Uint8Array(12 + size);
      new DataView(pkt.buffer).setUint32(12, sent, true);
      tx.writeBytes(gpa, pkt);
      tx.addBuf([{ gpa, len: pkt.length }], [], sent);
      sent++;
    }
    if (tx.publish()) yield* kick(sys, s.kickFd[1]);
    // the host side echoes every frame that came out of the tap
    while (tap.sent.length) tap.hostSend(tap.sent.shift()!);
    const r = yield* sys.nanosleep(20_000);
    if (!r.ok) return { ok: false, sent, echoed };
    const before = txDone + echoed;
    txDone += tx.getUsed().length;
    for (const u of rx.getUsed()) {
      echoed++;
      const gpa = rxBufs[u.token]!;
      rx.addBuf([], [{ gpa, len: 12 + 1514 }], u.token);
    }
    if (rx.publish()) yield* kick(sys, s.kickFd[0]);
    idle = txDone + echoed === before ? idle + 1 : 0;
    if (idle > 50) return { ok: false, sent, echoed };
  }
  return { ok: true, sent, echoed };
}

export interface RunOptions {
  seed?: number;
  trace?: boolean;
  /** where scheduling and fault decisions come from (the explorer); default SeededChoices(seed) */
  choices?: Choices;
  /** let allocation points fail when the choices say so (fault injection, opt-in) */
  faultAlloc?: boolean;
  /** let SIGKILL/SIGSTOP arrive for a user process before any slice when the choices say so (opt-in) */
  faultSignals?: boolean;
  /** called after every scheduler slice of the scenario's run (the explorer checks invariants) */
  onStep?: (k: Kernel) => void;
  /**
   * 'checks': snapshots carry only what the checks read — no /proc status and stat texts, no
   * namespace inodes (empty), only the pids.current and pids.events cgroup files (the
   * explorer, which looks at the failures alone). Default 'full'.
   */
  snapshots?: 'full' | 'checks';
  /**
   * record the footprint of every step here (the explorer's partial-order reduction,
   * footprint.ts); boot and the spawning of the processes count as touching everything
   */
  footprints?: FootprintRecorder;
}

/** Run `sc` on `profile`. */
export function runScenario(sc: LoadedScenario, profile: string, o: RunOptions = {}): RunResult {
  const doc = sc.doc;
  const seed = o.seed ?? doc.seed ?? 1;
  const r = new Runner(doc, profile, seed, o.trace ?? true, o.choices);
  r.leanSnapshots = o.snapshots === 'checks';
  if (o.footprints) {
    r.k.fp = o.footprints;
    o.footprints.global = true;
  }
  r.spawnAll();
  // boot and the spawning of the scenario's processes are its set-up: faults start with their steps
  r.k.faultAlloc = o.faultAlloc ?? false;
  if (o.faultSignals) enableSignalFaults(r.k);
  const limit = durationNs(doc['time-limit'] ?? '10s');
  const ended = r.run(limit, o.onStep);
  const end = r.snapshot('end');
  r.snapshots.push(end);
  r.finish(end);
  return {
    scenario: doc.name,
    profile,
    seed,
    steps: r.steps,
    snapshots: r.snapshots,
    checks: r.checks,
    failures: r.failures,
    ended,
    kernel: r.k,
  };
}

export { errnoFromName };
