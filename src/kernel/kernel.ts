/**
 * The Kernel: every piece of simulated state lives in one instance (no globals). It owns the
 * virtual clock, the run queue and the timers, drives task coroutines, and records trace
 * events. Boot creates the idle task (pid 0), init (pid 1) and kthreadd (pid 2), like
 * init/main.c rest_init().
 */
import {
  type Cgroup,
  CgroupRoot,
  type Controller,
  cpuCharge,
  cpuRunnable,
  V2_CONTROLLERS,
} from '../cgroup/cgroup.js';
import type { Profile } from '../profiles/profile.js';
import { TraceBuffer, type TraceEvent } from '../trace/trace.js';
import { type Choices, SeededChoices } from './choices.js';
import { CAP_FULL_SET, type Cred, type Ucounts, UcountsTable, UserNamespace } from './cred.js';
import { invariant } from './errno.js';
import type { ExitHook } from './exit.js';
import { FilesStruct, FsStruct } from './files.js';
import { type FootprintRecorder, FP_READ, FP_WRITE, resetObjectIds, taskObject } from './footprint.js';
import { kernelThreadAtBoot } from './fork.js';
import { spawnInit } from './init.js';
import { InvariantScratch } from './invariants.js';
import { kthreaddBody } from './kthread.js';
import {
  INIT_MNT_INO,
  INIT_NET_INO,
  type NsProxy,
  PROC_CGROUP_INIT_INO,
  PROC_IPC_INIT_INO,
  PROC_PID_INIT_INO,
  PROC_TIME_INIT_INO,
  PROC_USER_INIT_INO,
  PROC_UTS_INIT_INO,
} from './nsproxy.js';
import { PID_MAX_DEFAULT, Pid, PidNamespace } from './pid.js';
import { initRlimits } from './rlimit.js';
import { type KGen, Op, WaitQueue } from './sched.js';
import { PF_IDLE, PF_IO_WORKER, PF_KTHREAD, TASK_NORMAL, TASK_RUNNING } from './sched-consts.js';
import type { OpenFn } from './syscalls.js';
import { Sighand, SignalStruct, Task, type TaskBody } from './task.js';

export interface KernelOptions {
  profile: Profile;
  /** where scheduling and fault decisions come from; default SeededChoices(seed) */
  choices?: Choices;
  seed?: number;
  /** number of CPUs (≤ 32) */
  cpus?: number;
  /** memory size; sets kernel.threads-max like set_max_threads() */
  memoryMiB?: number;
  /** kernel.pid_max; default max(32768, 1024 × cpus) */
  pidMax?: number;
  /** kernel.threads-max override */
  threadsMax?: number;
  /** housekeeping CPUs for kthreads (isolcpus/nohz_full complement); default all */
  housekeepingCpus?: number;
  /** v1 hierarchies to mount, each a list of controllers (e.g. [['pids'], ['cpu']]) */
  v1Hierarchies?: Controller[][];
  /** record trace events (default true) */
  trace?: boolean;
  /** let allocation points fail when Choices says so (fault injection) */
  faultAlloc?: boolean;
}

export interface Timer {
  readonly when: number;
  readonly seq: number;
  readonly fn: () => void;
  cancelled: boolean;
}

export type RunOutcome = 'idle' | 'condition' | 'time' | 'steps';

export interface Stats {
  contextSwitches: number;
  forks: number;
  exits: number;
  steps: number;
}

/** A kernel WARN_ON that fired: recorded, not thrown (the kernel carries on too). */
export interface Warning {
  readonly ts: number;
  readonly where: string;
  readonly message: string;
}

export class Kernel {
  readonly profile: Profile;
  readonly choices: Choices;
  readonly trace: TraceBuffer;
  /** virtual time in ns */
  clock = 0;
  readonly nrCpus: number;
  readonly onlineCpus: number;
  readonly housekeepingCpus: number;
  /** kernel.pid_max */
  pidMax: number;
  /** kernel.threads-max (max_threads) */
  maxThreads: number;
  /** nr_threads: every hashed task, zombies included, the idle task excluded */
  nrThreads = 0;
  /** total_forks */
  totalForks = 0;
  /** tasks by initial-namespace pid (hashed tasks only) */
  readonly tasks = new Map<number, Task>();
  readonly ucounts = new UcountsTable();
  /**
   * UCOUNT_RLIMIT_NPROC charges that no task stands for: fs/io-wq.c of v5.10 counts each
   * unbound kthread worker in its ring creator's user->processes (atomic_inc)
   */
  readonly nprocCharges = new Map<Ucounts, number>();
  /** the counting tables of checkInvariants (invariants.ts), reused by every check */
  readonly invariantScratch = new InvariantScratch();
  readonly initUserNs: UserNamespace;
  readonly initPidNs: PidNamespace;
  readonly initNsproxy: NsProxy;
  readonly initCred: Cred;
  readonly cgroupRoots: CgroupRoot[];
  readonly idle: Task;
  init!: Task;
  kthreadd!: Task;
  current: Task | null = null;
  /** run queue, in enqueue order */
  readonly runqueue: Task[] = [];
  readonly throttledGroups = new Set<Cgroup>();
  readonly warnings: Warning[] = [];
  readonly stats: Stats = { contextSwitches: 0, forks: 0, exits: 0, steps: 0 };
  /** kthread_create_list */
  readonly kthreadCreateList: unknown[] = [];
  /** pm_freezing / system freezer active */
  systemFreezing = false;
  private timers: Timer[] = [];
  private timerSeq = 0;
  private nsInum = 4026532160;
  private mmSeq = 0;
  private lastRun: Task | null = null;

  constructor(opts: KernelOptions) {
    // the names of kernel objects (footprint.ts) restart at every boot, before any is made
    // (no field initializer above makes a wait queue or another named object)
    resetObjectIds();
    this.profile = opts.profile;
    this.choices = opts.choices ?? new SeededChoices(opts.seed ?? 1);
    this.trace = new TraceBuffer(opts.trace ?? true);
    this.nrCpus = Math.max(1, Math.min(32, opts.cpus ?? 4));
    this.onlineCpus = this.nrCpus === 32 ? 0xffffffff : (1 << this.nrCpus) - 1;
    this.housekeepingCpus = (opts.housekeepingCpus ?? this.onlineCpus) & this.onlineCpus || this.onlineCpus;
    this.pidMax = opts.pidMax ?? Math.max(PID_MAX_DEFAULT, 1024 * this.nrCpus);
    // set_max_threads(): totalram_pages / (8 * THREAD_SIZE / PAGE_SIZE), THREAD_SIZE 16 KiB
    const pages = ((opts.memoryMiB ?? 8192) * 1024 * 1024) / 4096;
    this.maxThreads = opts.threadsMax ?? Math.max(20, Math.min(0x3fffffff, Math.floor(pages / 32)));

    this.initUserNs = new UserNamespace(PROC_USER_INIT_INO, null, 0, Number.POSITIVE_INFINITY);
    this.initPidNs = new PidNamespace(PROC_PID_INIT_INO, null, this.initUserNs);
    const ns = (type: 'mnt' | 'uts' | 'ipc' | 'net' | 'cgroup' | 'time', inum: number) => ({
      type,
      inum,
      userNs: this.initUserNs,
    });
    const time = ns('time', PROC_TIME_INIT_INO);
    this.initNsproxy = {
      uts: ns('uts', PROC_UTS_INIT_INO),
      ipc: ns('ipc', PROC_IPC_INIT_INO),
      mnt: ns('mnt', INIT_MNT_INO),
      net: ns('net', INIT_NET_INO),
      cgroup: ns('cgroup', PROC_CGROUP_INIT_INO),
      time,
      timeForChildren: time,
      pidForChildren: this.initPidNs,
    };
    this.initCred = {
      uid: 0,
      euid: 0,
      suid: 0,
      fsuid: 0,
      gid: 0,
      egid: 0,
      sgid: 0,
      fsgid: 0,
      groups: [],
      capInheritable: 0n,
      capPermitted: CAP_FULL_SET,
      capEffective: CAP_FULL_SET,
      capBset: CAP_FULL_SET,
      capAmbient: 0n,
      userNs: this.initUserNs,
      ucounts: this.ucounts.get(this.initUserNs, 0),
      keepCaps: false,
    };
    this.cgroupRoots = [new CgroupRoot(0, true, V2_CONTROLLERS, 'cgroup2')];
    for (const [i, ctrls] of (opts.v1Hierarchies ?? []).entries())
      this.cgroupRoots.push(new CgroupRoot(i + 1, false, ctrls, ctrls.join(',')));

    this.faultAlloc = opts.faultAlloc ?? false;
    this.idle = this.makeIdleTask();
    this.boot();
  }

  /** init_task (pid 0): the template every task is copied from. */
  private makeIdleTask(): Task {
    const t = new Task();
    t.kernel = this;
    t.comm = 'swapper/0';
    t.flags = PF_KTHREAD | PF_IDLE;
    t.pidStruct = new Pid([{ nr: 0, ns: this.initPidNs }]);
    t.realParent = t;
    t.parent = t;
    t.signal = new SignalStruct(initRlimits(this.maxThreads));
    t.signal.wqChldexit = new WaitQueue();
    t.signal.threads.push(t);
    t.sighand = new Sighand();
    t.cred = this.initCred;
    t.fs = new FsStruct('/', '/', 0o022);
    t.files = new FilesStruct();
    t.nsproxy = this.initNsproxy;
    t.cgroups = this.cgroupRoots.map((r) => r.top);
    t.cpusAllowed = this.onlineCpus;
    return t;
  }

  /** models rest_init(): pid 1 (init) then pid 2 (kthreadd). */
  private boot(): void {
    this.init = spawnInit(this);
    this.kthreadd = this.spawnKernelThread('kthreadd', kthreaddBody);
    this.run({ until: () => this.kthreaddReady });
  }

  /** set by kthreadd once it has set itself up */
  kthreaddReady = false;

  /** kernel_thread() from the idle task, at boot only (kthreadd). */
  private spawnKernelThread(comm: string, body: TaskBody): Task {
    return kernelThreadAtBoot(this, comm, body);
  }

  /** allocation-failure points consult Choices only when alloc faults are enabled */
  faultAlloc = false;
  /**
   * Runs before every scheduler slice (a preemption point) when set: signal-arrival faults
   * (signal.ts enableSignalFaults) ask Choices there whether a signal arrives.
   */
  beforeSlice: ((k: Kernel) => void) | null = null;
  /** where the last copy_process failed, and why (for traces and tests) */
  lastCopyProcessFailure: { errno: number; rule: string } | null = null;
  /** char devices and files by path (open(2)) */
  readonly devices = new Map<string, OpenFn>();
  /** subsystems' do_exit hooks (exit_io_uring, vhost, ...) */
  readonly exitHooks: ExitHook[] = [];
  /** subsystems' bprm_execve hooks (io_uring_task_cancel) */
  readonly execHooks: ((k: Kernel, t: Task) => KGen<void>)[] = [];
  /**
   * io_wq_worker_sleeping() / io_wq_worker_running(): __schedule's sched_submit_work() and
   * sched_update_worker() call them for a PF_IO_WORKER task that blocks and wakes (io-wq)
   */
  ioWorkerHooks: { sleeping(t: Task): void; running(t: Task): void } | null = null;
  /** the explorer's footprint of the step in progress, while it asks for one (footprint.ts) */
  fp: FootprintRecorder | null = null;

  /** An allocation point: fails only when alloc faults are enabled and Choices says so. */
  allocFails(site: string): boolean {
    if (!this.faultAlloc) return false;
    return this.choices.choose('fault-alloc', 2, site) === 1;
  }

  // ------------------------------------------------------------------ identity helpers

  nextNsInum(): number {
    return this.nsInum++;
  }
  nextMmId(): number {
    return ++this.mmSeq;
  }

  /** find_task_by_pid_ns(nr, ns) */
  findTaskByVpid(nr: number, ns: PidNamespace): Task | null {
    const pid = ns.idr.get(nr);
    if (!pid) return null;
    return this.tasks.get(pid.nr) ?? null;
  }

  /** The live (not yet released) tasks, in pid order. */
  liveTasks(): Task[] {
    return [...this.tasks.values()].sort((a, b) => a.pid - b.pid);
  }

  // ------------------------------------------------------------------ tracing, warnings

  emit(event: string, text: string, who: Task | null = this.current): void {
    if (!this.trace.enabled) return;
    const e: TraceEvent = {
      ts: this.clock,
      cpu: 0,
      comm: who && who !== this.idle ? who.comm : '<idle>',
      pid: who ? who.pid : 0,
      event,
      text,
    };
    this.trace.emit(e);
  }

  /** WARN_ON: record and continue. */
  warn(where: string, message: string): void {
    this.warnings.push({ ts: this.clock, where, message });
    if (this.trace.enabled) this.emit('warning', `${where}: ${message}`);
  }

  // ------------------------------------------------------------------ time

  /** Advance virtual time by `ns` on behalf of the current task (CPU time + cgroup cpu usage). */
  charge(ns: number, user = false): void {
    this.clock += ns;
    const t = this.current;
    if (!t || t === this.idle) return;
    t.sumExecNs += ns;
    if (user) t.userNs += ns;
    else t.systemNs += ns;
    cpuCharge(this, t, ns, user);
  }

  addTimer(when: number, fn: () => void): Timer {
    const tm: Timer = { when: Math.max(when, this.clock), seq: this.timerSeq++, fn, cancelled: false };
    // keep sorted by (when, seq): insertion point by binary search
    let lo = 0;
    let hi = this.timers.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const m = this.timers[mid]!;
      if (m.when < tm.when || (m.when === tm.when && m.seq < tm.seq)) lo = mid + 1;
      else hi = mid;
    }
    this.timers.splice(lo, 0, tm);
    return tm;
  }

  cancelTimer(tm: Timer): void {
    tm.cancelled = true;
    const i = this.timers.indexOf(tm);
    if (i >= 0) this.timers.splice(i, 1);
  }

  get pendingTimers(): number {
    return this.timers.length;
  }

  /** Fire the earliest timer; ties between timers due at the same instant go through Choices. */
  private fireNextTimer(): void {
    const first = this.timers[0]!;
    let n = 1;
    while (n < this.timers.length && this.timers[n]!.when === first.when) n++;
    const i = n > 1 ? this.choices.choose('timer', n, `timers@${first.when}`) : 0;
    const [tm] = this.timers.splice(i, 1);
    if (tm!.when > this.clock) this.clock = tm!.when;
    const prev = this.current;
    this.current = null;
    // a timer's callback is not audited (footprint.ts): the step it falls in touches everything
    if (this.fp) this.fp.global = true;
    tm!.fn();
    this.current = prev;
  }

  // ------------------------------------------------------------------ scheduling

  /** models try_to_wake_up(p, state): only a task whose state matches `mask` is woken. */
  tryToWakeUp(p: Task, mask: number = TASK_NORMAL): boolean {
    if (!(p.state & mask)) {
      this.fp?.touch(taskObject(p), FP_READ);
      return false;
    }
    this.fp?.touch(taskObject(p), FP_WRITE);
    p.state = TASK_RUNNING;
    if (!p.onRq) this.enqueue(p);
    if (this.trace.enabled) this.emit('sched_wakeup', `comm=${p.comm} pid=${p.pid} prio=120 target_cpu=000`);
    return true;
  }

  /** wake_up_process() */
  wakeUpProcess(p: Task): boolean {
    return this.tryToWakeUp(p, TASK_NORMAL);
  }

  /** models wake_up_new_task(): a TASK_NEW task becomes runnable for the first time. */
  wakeUpNewTask(p: Task): void {
    invariant(p.gen !== null, () => `wake_up_new_task of ${p} without a body`);
    p.state = TASK_RUNNING;
    this.enqueue(p);
    if (this.trace.enabled)
      this.emit('sched_wakeup_new', `comm=${p.comm} pid=${p.pid} prio=120 target_cpu=000`);
  }

  enqueue(p: Task): void {
    if (p.onRq) return;
    p.onRq = true;
    this.runqueue.push(p);
  }

  dequeue(p: Task): void {
    if (!p.onRq) return;
    p.onRq = false;
    const i = this.runqueue.indexOf(p);
    if (i >= 0) this.runqueue.splice(i, 1);
  }

  private pickNext(): Task | null {
    const rq = this.runqueue;
    let cands: Task[] = rq;
    if (this.throttledGroups.size > 0) cands = rq.filter(cpuRunnable);
    if (cands.length === 0) return null;
    if (cands.length === 1) return cands[0]!;
    return cands[this.choices.choose('sched', cands.length, 'pick-next')]!;
  }

  /**
   * Run tasks until `until()` holds, nothing is runnable and no timer is pending ('idle'),
   * virtual time reaches `untilTime`, or `maxSteps` slices ran.
   */
  run(opts: { until?: () => boolean; untilTime?: number; maxSteps?: number } = {}): RunOutcome {
    const maxSteps = opts.maxSteps ?? Number.POSITIVE_INFINITY;
    for (let steps = 0; ; steps++) {
      if (opts.until?.()) return 'condition';
      if (steps >= maxSteps) return 'steps';
      // expired timers fire before the next slice, as hrtimer interrupts would
      while (this.timers.length > 0 && this.timers[0]!.when <= this.clock) this.fireNextTimer();
      if (this.beforeSlice && this.runqueue.length > 0) {
        // signal-arrival faults act between slices, in no audited code (footprint.ts)
        if (this.fp) this.fp.global = true;
        this.beforeSlice(this);
      }
      const t = this.pickNext();
      if (!t) {
        this.switchToIdle();
        if (this.timers.length === 0) return 'idle';
        if (opts.untilTime !== undefined && this.timers[0]!.when > opts.untilTime) {
          this.clock = Math.max(this.clock, opts.untilTime);
          return 'time';
        }
        this.fireNextTimer();
        continue;
      }
      if (opts.untilTime !== undefined && this.clock >= opts.untilTime) return 'time';
      this.runSlice(t);
    }
  }

  /** Nothing is runnable: the CPU goes idle (sched_switch to swapper). */
  private switchToIdle(): void {
    const p = this.lastRun;
    if (!p || p === this.idle) return;
    this.lastRun = this.idle;
    if (this.trace.enabled) {
      const st = p.exitState ? 'X' : stateFlagLetter(p);
      this.emit(
        'sched_switch',
        `prev_comm=${p.comm} prev_pid=${p.pid} prev_prio=120 prev_state=${st} ==> next_comm=swapper/0 next_pid=0 next_prio=120`,
        p,
      );
    }
  }

  /** Resume one task until it yields. */
  runSlice(t: Task): void {
    const prev = this.lastRun;
    if (prev !== t) {
      this.stats.contextSwitches++;
      this.clock += this.profile.costs.contextSwitch;
      if (this.trace.enabled) {
        const p = prev ?? this.idle;
        const st =
          p === this.idle ? 'R' : p.exitState ? 'X' : p.state === TASK_RUNNING ? 'R+' : stateFlagLetter(p);
        if (this.trace.enabled)
          this.emit(
            'sched_switch',
            `prev_comm=${p.comm} prev_pid=${p.pid} prev_prio=120 prev_state=${st} ==> next_comm=${t.comm} next_pid=${t.pid} next_prio=120`,
            p,
          );
      }
    }
    this.lastRun = t;
    this.current = t;
    this.stats.steps++;
    const gen = t.gen;
    invariant(gen, () => `runnable task ${t} has no coroutine`);
    const ioHooks = t.flags & PF_IO_WORKER ? this.ioWorkerHooks : null;
    ioHooks?.running(t);
    t.at = '';
    // footprints (footprint.ts): a slice writes its own task; it touches everything when the
    // task resumes in unaudited code or ends there, and while a timer is pending (its expiry
    // depends on the virtual time every slice advances)
    const fp = this.fp;
    if (fp) {
      fp.slice(t);
      if ((!t.fpAudited && !t.fpFresh) || this.timers.length > 0) fp.global = true;
      t.fpFresh = false;
      fp.touch(taskObject(t), FP_WRITE);
    }
    const r = gen.next();
    if (fp && (!t.fpAudited || this.timers.length > 0)) fp.global = true;
    if (r.done) throw new Error(`task ${t} returned from its coroutine without do_exit`);
    const op = r.value as Op;
    // every preemption point names its kernel site (preemptPoint), for counterexamples
    if (op === Op.Preempt && t.at === '')
      invariant(false, () => `${t} yielded at a preemption point that does not name its kernel site`);
    if (ioHooks && op === Op.Schedule && t.state !== TASK_RUNNING) ioHooks.sleeping(t);
    this.current = null;
    if (op === Op.Dead) {
      t.gen = null;
      this.dequeue(t);
    } else if (op === Op.Schedule && t.state !== TASK_RUNNING) {
      this.dequeue(t);
    }
  }

  /** Run `fn` as if `t` were current (boot-time setup and tests; never inside a slice). */
  withCurrent<T>(t: Task, fn: () => T): T {
    const prev = this.current;
    this.current = t;
    try {
      return fn();
    } finally {
      this.current = prev;
    }
  }
}

function stateFlagLetter(p: Task): string {
  const s = p.state;
  if (s & 0x0400 && s & 0x0002) return 'I';
  if (s & 0x0001) return 'S';
  if (s & 0x0002) return 'D';
  if (s & 0x0004) return 'T';
  if (s & 0x0008) return 't';
  if (s & 0x0040) return 'P';
  return 'R';
}

export type { KGen };
