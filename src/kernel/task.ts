/**
 * struct task_struct and the structures threads share: signal_struct (the thread group),
 * sighand_struct (dispositions) and sigpending. Every field names its kernel analogue.
 * Models include/linux/sched.h and include/linux/sched/signal.h, v6.12.
 */
import type { Cgroup } from '../cgroup/cgroup.js';
import type { Cred } from './cred.js';
import type { FilesStruct, FsStruct } from './files.js';
import type { Kernel } from './kernel.js';
import type { MM } from './mm.js';
import type { NsProxy } from './nsproxy.js';
import type { Pid, PidNamespace } from './pid.js';
import type { Rlimit } from './rlimit.js';
import type { Completion, KGen, WaitQueue } from './sched.js';
import {
  __TASK_STOPPED,
  __TASK_TRACED,
  EXIT_DEAD,
  EXIT_ZOMBIE,
  PF_KTHREAD,
  TASK_FROZEN,
  TASK_IDLE,
  TASK_INTERRUPTIBLE,
  TASK_PARKED,
  TASK_RUNNING,
  TASK_UNINTERRUPTIBLE,
} from './sched-consts.js';
import { _NSIG, SIG_DFL, SIGKILL, type SigSet, sigismember } from './signal-consts.js';
import type { CallbackHead } from './task-work.js';

/** struct k_sigaction */
export interface SigAction {
  /** SIG_DFL (0), SIG_IGN (1) or a user handler address */
  readonly handler: number;
  readonly flags: number;
  readonly mask: SigSet;
}
export const DEFAULT_SIGACTION: SigAction = Object.freeze({ handler: SIG_DFL, flags: 0, mask: 0n });

/** struct sighand_struct: shared by CLONE_SIGHAND tasks. */
export class Sighand {
  count = 1;
  readonly action: SigAction[];
  constructor(from?: Sighand) {
    this.action = from ? from.action.slice() : new Array(_NSIG + 1).fill(DEFAULT_SIGACTION);
  }
}

/** A queued signal (struct sigqueue's siginfo, reduced). */
export interface SigInfo {
  readonly signo: number;
  /** si_code: SI_USER 0, SI_KERNEL 0x80, SI_TKILL -6, CLD_* for SIGCHLD */
  readonly code: number;
  readonly pid: number;
  readonly uid: number;
}
export const SI_USER = 0;
export const SI_KERNEL = 0x80;
export const SI_TKILL = -6;

/** struct sigpending */
export class SigPending {
  signal: SigSet = 0n;
  list: SigInfo[] = [];
  has(sig: number): boolean {
    return sigismember(this.signal, sig);
  }
}

// signal_struct->flags (include/linux/sched/signal.h)
export const SIGNAL_STOP_STOPPED = 0x00000001;
export const SIGNAL_STOP_CONTINUED = 0x00000002;
export const SIGNAL_GROUP_EXIT = 0x00000004;
export const SIGNAL_CLD_STOPPED = 0x00000010;
export const SIGNAL_CLD_CONTINUED = 0x00000020;
export const SIGNAL_UNKILLABLE = 0x00000040;

/** struct core_state: a coredump in progress (fs/coredump.c). */
export interface CoreState {
  nrThreads: number;
  readonly dumper: Task;
  readonly startup: Completion;
}

/** struct signal_struct: one per thread group. */
export class SignalStruct {
  /** nr_threads */
  nrThreads = 1;
  /** live: threads not yet past exit_signals()/do_exit accounting */
  live = 1;
  /** thread_head, in thread-list order (leader first) */
  readonly threads: Task[] = [];
  /** shared_pending: process-directed signals */
  readonly sharedPending = new SigPending();
  flags = 0;
  groupExitCode = 0;
  /** group_exec_task: the exec'ing thread in de_thread, or the exiting thread */
  groupExecTask: Task | null = null;
  /** notify_count */
  notifyCount = 0;
  groupStopCount = 0;
  /** curr_target: where complete_signal starts looking */
  currTarget: Task | null = null;
  /** rlim[] */
  rlim: Rlimit[];
  isChildSubreaper = false;
  hasChildSubreaper = false;
  /** core_state */
  coreState: CoreState | null = null;
  /** wait_chldexit: parents sleeping in wait4/waitid */
  wqChldexit!: WaitQueue;
  /** cputime of threads that have exited (signal->utime/stime/sum_sched_runtime) */
  deadSumExecNs = 0;
  /** a stop or continue not yet reported to wait(WUNTRACED/WCONTINUED) */
  pendingStopReport = 0;
  constructor(rlim: Rlimit[]) {
    this.rlim = rlim;
  }
}

/** struct kthread (kernel/kthread.c) */
export interface KthreadInfo {
  flags: number;
  result: number;
  threadfn: ((data: unknown) => KGen<number>) | null;
  data: unknown;
  readonly parked: Completion;
  readonly exited: Completion;
  fullName: string;
  started: boolean;
}

/** ptrace state of a tracee (task->ptrace) */
export const PT_PTRACED = 0x1;
export const PT_SEIZED = 0x10000;
export const PT_TRACE_CLONE = (1 << 3) << 3; // PT_EVENT_FLAG(PTRACE_EVENT_CLONE)

/** The body every task runs: a coroutine returning the exit code. */
export type TaskBody = (t: Task) => KGen<number | undefined>;

let taskSerial = 0;

/** A user worker's inheritance record (checked by the invariants). */
export interface WorkerOrigin {
  readonly creator: Task;
  readonly creatorMm: MM | null;
  readonly creatorNsproxy: NsProxy | null;
  readonly creatorCred: Cred;
  readonly creatorCgroups: readonly Cgroup[];
  readonly mm: MM | null;
  readonly nsproxy: NsProxy | null;
  readonly cred: Cred;
  readonly cgroups: readonly Cgroup[];
}

export interface PtraceEventRecord {
  readonly event: string;
  readonly tracee: Task;
  readonly msg: number;
}

/** A set that can be read and shrunk but not grown through this view (children, ptraced). */
export type ReadonlySetLike<T> = Pick<Set<T>, 'has' | 'size' | 'delete' | 'clear' | 'values' | 'forEach'> &
  Iterable<T>;

/** The shared empty view: deleting from it is a no-op, adding is a model bug. */
const NO_TASKS: ReadonlySetLike<Task> = new (class extends Set<Task> {
  override add(): this {
    throw new Error('add to the shared empty task set');
  }
})();

export class Task {
  /** the kernel this task belongs to */
  kernel!: Kernel;
  /** creation order; stable identity for determinism */
  readonly serial = ++taskSerial;
  /** task->pid: the initial-namespace thread id */
  pid = 0;
  /** task->tgid */
  tgid = 0;
  /** task->thread_pid */
  pidStruct: Pid | null = null;
  /** task->comm, at most 15 characters */
  comm = '';
  /** task->flags (PF_*) */
  flags = 0;
  /** task->__state */
  state = TASK_RUNNING;
  /** task->exit_state */
  exitState = 0;
  /** task->exit_code */
  exitCode = 0;
  /** task->exit_signal (-1 for threads) */
  exitSignal = 0;
  /** task->real_parent */
  realParent!: Task;
  /** task->parent (the tracer while ptraced) */
  parent!: Task;
  private _children: Set<Task> | null = null;
  private _ptraced: Set<Task> | null = null;
  private _ptraceEvents: PtraceEventRecord[] | null = null;
  /** task->children: tasks whose real_parent is this task (read view; add with linkChild) */
  get children(): ReadonlySetLike<Task> {
    return this._children ?? NO_TASKS;
  }
  /** task->ptraced: tracees (read view; add with linkTracee) */
  get ptraced(): ReadonlySetLike<Task> {
    return this._ptraced ?? NO_TASKS;
  }
  /** list_add(&child->sibling, &parent->children) */
  linkChild(c: Task): void {
    (this._children ??= new Set()).add(c);
  }
  /** list_add(&tracee->ptrace_entry, &tracer->ptraced) */
  linkTracee(c: Task): void {
    (this._ptraced ??= new Set()).add(c);
  }
  /** ptrace events delivered to this tracer (model record of PTRACE_EVENT_* stops) */
  get ptraceEvents(): readonly PtraceEventRecord[] {
    return this._ptraceEvents ?? [];
  }
  recordPtraceEvent(e: PtraceEventRecord): void {
    (this._ptraceEvents ??= []).push(e);
  }
  /** task->ptrace (PT_*) */
  ptrace = 0;
  /** ptrace options set by PTRACE_SEIZE/SETOPTIONS */
  ptraceOptions = 0;
  /** task->group_leader */
  groupLeader: Task = this;
  /** task->signal */
  signal!: SignalStruct;
  /** task->sighand */
  sighand!: Sighand;
  /** task->cred (== real_cred in this model) */
  cred!: Cred;
  /** task->blocked */
  blocked: SigSet = 0n;
  /** task->real_blocked */
  realBlocked: SigSet = 0n;
  /** task->pending */
  readonly pending = new SigPending();
  /** TIF_SIGPENDING */
  sigpending = false;
  /** TIF_NOTIFY_SIGNAL */
  notifySignal = false;
  /** task->task_works: queued callbacks, most recent first (kernel/task_work.c) */
  taskWorks: CallbackHead[] | null = null;
  /** task->task_works == &work_exited: exit_task_work() ran, task_work_add fails */
  taskWorksExited = false;
  /** task->jobctl (JOBCTL_*) */
  jobctl = 0;
  /** task->mm */
  mm: MM | null = null;
  /** task->active_mm */
  activeMm: MM | null = null;
  /** task->fs */
  fs: FsStruct | null = null;
  /** task->files */
  files: FilesStruct | null = null;
  /** task->nsproxy */
  nsproxy: NsProxy | null = null;
  /** css_set: this task's cgroup on each hierarchy, indexed by root id */
  cgroups: Cgroup[] = [];
  /** task->no_cgroup_migration */
  noCgroupMigration = false;
  /** task->cpus_mask as a bit mask */
  cpusAllowed = 0;
  /** se.sum_exec_runtime in ns, split user/system for cpu.stat */
  sumExecNs = 0;
  userNs = 0;
  systemNs = 0;
  /** task->start_time (virtual ns) */
  startTime = 0;
  /** task->vfork_done */
  vforkDone: Completion | null = null;
  /** task->worker_private / set_child_tid analogue: the kthread struct */
  kthread: KthreadInfo | null = null;
  /** for a user worker: what its creator had when copy_process ran, and what it got */
  workerOrigin: WorkerOrigin | null = null;
  /** vhost_task or user-worker bookkeeping attached by the creator */
  worker: unknown = null;
  /** the coroutine; null once dead or before start */
  gen: KGen<unknown> | null = null;
  /** on the run queue */
  onRq = false;
  /** wait queue the task sleeps on (for deadlock reports) */
  waitingOn: WaitQueue | null = null;
  /**
   * the modelled kernel site where the task's last slice ended at a preemption point (set by
   * the site, cleared when a slice starts; counterexamples print it for a preempted task)
   */
  at = '';
  /**
   * the explorer's footprints (footprint.ts): the task runs audited code, whose accesses are
   * recorded; otherwise each of its steps counts as touching everything
   */
  fpAudited = false;
  /** a thread of a scenario program that has not run yet: its first line is the program's */
  fpFresh = false;
  /** the footprint name of the task's own state, for pid fpObjectPid (footprint.ts taskObject) */
  fpObject = '';
  fpObjectPid = -1;
  /** self_exec_id / parent_exec_id */
  selfExecId = 0;
  parentExecId = 0;
  /** mm of the task at exec time, for ownership checks */
  execPath = '';
  /** pdeath_signal */
  pdeathSignal = 0;
  /** user-mode program body, for views */
  body: TaskBody | null = null;

  /** the task has not been released (still hashed) */
  tasksAlive(): boolean {
    return this.pid === 0 || this.kernel.tasks.get(this.pid) === this;
  }
  isKthread(): boolean {
    return (this.flags & PF_KTHREAD) !== 0;
  }
  threadGroupLeader(): boolean {
    return this.groupLeader === this;
  }
  /** thread_group_empty(): the only thread left in its group */
  threadGroupEmpty(): boolean {
    return this.signal.threads.length === 1 && this.signal.threads[0] === this;
  }
  /** fatal_signal_pending() */
  fatalSignalPending(): boolean {
    return this.sigpending && this.pending.has(SIGKILL);
  }
  /** task_pid_nr_ns(t, ns) */
  pidIn(ns: PidNamespace): number {
    return this.pidStruct?.nrIn(ns) ?? 0;
  }
  /** task_tgid_nr_ns(t, ns) */
  tgidIn(ns: PidNamespace): number {
    return this.groupLeader.pidStruct?.nrIn(ns) ?? 0;
  }
  /** task_active_pid_ns() */
  activePidNs(): PidNamespace | null {
    return this.pidStruct?.ns ?? null;
  }
  get alive(): boolean {
    return this.exitState === 0;
  }
  toString(): string {
    // comm-pid, kept until comm or pid changes (the explorer names candidates at every decision)
    if (this.nameComm !== this.comm || this.namePid !== this.pid) {
      this.nameComm = this.comm;
      this.namePid = this.pid;
      this.name = `${this.comm}-${this.pid}`;
    }
    return this.name;
  }
  private name = '';
  private nameComm = '';
  private namePid = -1;
}

/**
 * models include/linux/sched.h __task_state_index() and fs/proc/array.c task_state_array,
 * v6.12: the state letter. TASK_IDLE reports 'I'; frozen tasks report 'D' ("Report frozen
 * tasks as uninterruptible"); otherwise the highest TASK_REPORT bit wins.
 */
const TASK_REPORT =
  TASK_INTERRUPTIBLE |
  TASK_UNINTERRUPTIBLE |
  __TASK_STOPPED |
  __TASK_TRACED |
  EXIT_DEAD |
  EXIT_ZOMBIE |
  TASK_PARKED;
const STATE_LETTERS = ['R', 'S', 'D', 'T', 't', 'X', 'Z', 'P', 'I'];
export function taskStateLetter(t: Task): string {
  const s = t.state;
  let state = (s | t.exitState) & TASK_REPORT;
  if ((s & TASK_IDLE) === TASK_IDLE) state = TASK_PARKED << 1; // TASK_REPORT_IDLE
  if (s & TASK_FROZEN) state = TASK_UNINTERRUPTIBLE;
  const idx = state === 0 ? 0 : 32 - Math.clz32(state);
  return STATE_LETTERS[idx] ?? 'R';
}

export const STATE_NAMES: Readonly<Record<string, string>> = {
  R: 'R (running)',
  S: 'S (sleeping)',
  D: 'D (disk sleep)',
  T: 'T (stopped)',
  t: 't (tracing stop)',
  X: 'X (dead)',
  Z: 'Z (zombie)',
  P: 'P (parked)',
  I: 'I (idle)',
};
