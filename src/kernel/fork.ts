/**
 * Process and thread creation. Models kernel/fork.c copy_process(), kernel_clone(),
 * kernel_thread(), user_mode_thread(), create_io_thread() and the clone3 argument checks,
 * v6.12, with era differences taken from the profile.
 */
import { type Cgroup, cgroupCancelFork, cgroupCanFork, cgroupPostFork } from '../cgroup/cgroup.js';
import {
  CAP_CHECKPOINT_RESTORE,
  CAP_SYS_ADMIN,
  CAP_SYS_RESOURCE,
  type Cred,
  capable,
  credCapable,
  decRlimitUcounts,
  incRlimitUcounts,
  isRlimitOverlimit,
  UserNamespace,
} from './cred.js';
import { Errno, err, ok, type Result } from './errno.js';
import { doExit } from './exit.js';
import type { Kernel } from './kernel.js';
import type { Namespace, NsProxy } from './nsproxy.js';
import { allocPid, freePid, MAX_PID_NS_LEVEL, PidNamespace } from './pid.js';
import { RLIMIT_NPROC } from './rlimit.js';
import { Completion, type KGen, WaitQueue, waitForCompletionKillable } from './sched.js';
import {
  CLONE_CLEAR_SIGHAND,
  CLONE_DETACHED,
  CLONE_FILES,
  CLONE_FS,
  CLONE_INTO_CGROUP,
  CLONE_IO,
  CLONE_NEWCGROUP,
  CLONE_NEWIPC,
  CLONE_NEWNET,
  CLONE_NEWNS,
  CLONE_NEWPID,
  CLONE_NEWTIME,
  CLONE_NEWUSER,
  CLONE_NEWUTS,
  CLONE_PARENT,
  CLONE_PARENT_SETTID,
  CLONE_PIDFD,
  CLONE_SIGHAND,
  CLONE_SYSVSEM,
  CLONE_THREAD,
  CLONE_UNTRACED,
  CLONE_VFORK,
  CLONE_VM,
  CSIGNAL,
  hasFlag,
  PF_EXITING,
  PF_FORKNOEXEC,
  PF_IDLE,
  PF_IO_WORKER,
  PF_KTHREAD,
  PF_NO_SETAFFINITY,
  PF_NPROC_EXCEEDED,
  PF_SUPERPRIV,
  PF_WQ_WORKER,
  TASK_NEW,
} from './sched-consts.js';
import { recalcSigpending } from './signal.js';
import { FULL_SIGSET, SIG_DFL, SIG_IGN, SIGCHLD, SIGKILL, SIGSTOP, sigmask } from './signal-consts.js';
import {
  DEFAULT_SIGACTION,
  PT_PTRACED,
  SIGNAL_UNKILLABLE,
  Sighand,
  SignalStruct,
  Task,
  type TaskBody,
} from './task.js';

/** V5 kernel_worker flags (KERN_WORKER_*), [PATCH V5 01–04/10]. */
export const KERN_WORKER_IO = 1 << 0;
export const KERN_WORKER_USER = 1 << 1;
export const KERN_WORKER_NO_FILES = 1 << 2;
export const KERN_WORKER_SIG_IGN = 1 << 3;

/** struct kernel_clone_args (include/linux/sched/task.h), in the model's terms. */
export interface KernelCloneArgs {
  /** clone flags without CSIGNAL (may include the 64-bit clone3 flags) */
  flags: number;
  /** exit_signal: SIGCHLD, 0, or another signal; forced to -1 for CLONE_THREAD */
  exitSignal: number;
  /** copied into comm by copy_process (v6.4+ `name`) */
  name?: string;
  /** the child's body (fn/fn_arg, or the user program the child runs) */
  fn: TaskBody;
  kthread?: boolean;
  ioThread?: boolean;
  userWorker?: boolean;
  noFiles?: boolean;
  /** 6.4-rc1 `ignore_signals` */
  ignoreSignals?: boolean;
  /** V5 worker_flags (replaces io_thread in that series) */
  workerFlags?: number;
  /** CLONE_INTO_CGROUP target (cgroup v2) */
  cgroup?: Cgroup | null;
  /** clone3 set_tid, innermost level first */
  setTid?: number[];
  /** CLONE_PARENT_SETTID / CLONE_PIDFD user addresses (kernel_clone rejects equal ones) */
  parentTid?: number;
  pidfd?: number;
}

/** The failure path names the step, so tests and traces can show which rule fired. */
export interface CopyProcessFailure {
  readonly errno: Errno;
  readonly rule: string;
}

function fail(k: Kernel, errno: Errno, rule: string): Result<never> {
  k.lastCopyProcessFailure = { errno, rule };
  return err(errno);
}

/** Wrap a body so that returning from it runs do_exit (kthread_exit / do_exit(ret)). */
export function* taskEntry(k: Kernel, t: Task, body: TaskBody): KGen<unknown> {
  const code = yield* body(t);
  return yield* doExit(k, code ?? 0);
}

/**
 * models copy_process(pid=NULL, trace, node, args), v6.12. Checks in the kernel's order,
 * first failure wins (kernel-spec §1.3). Returns the new task in TASK_NEW, not yet runnable.
 * `trace` is the ptrace event to auto-attach for (0 = none).
 */
export function copyProcess(k: Kernel, args: KernelCloneArgs, trace = 0): Result<Task> {
  const current = k.current!;
  const f = args.flags;
  // the legacy flags are the low 32 bits (ToUint32); the clone3-only ones use hasFlag()
  const lo = f >>> 0;
  const has = (flag: number) => (lo & flag) !== 0;
  // 1–7: flag consistency
  if (has(CLONE_NEWNS) && has(CLONE_FS)) return fail(k, Errno.EINVAL, 'CLONE_NEWNS|CLONE_FS');
  if (has(CLONE_NEWUSER) && has(CLONE_FS)) return fail(k, Errno.EINVAL, 'CLONE_NEWUSER|CLONE_FS');
  if (has(CLONE_THREAD) && !has(CLONE_SIGHAND))
    return fail(k, Errno.EINVAL, 'CLONE_THREAD without CLONE_SIGHAND');
  if (has(CLONE_SIGHAND) && !has(CLONE_VM)) return fail(k, Errno.EINVAL, 'CLONE_SIGHAND without CLONE_VM');
  if (has(CLONE_PARENT) && current.signal.flags & SIGNAL_UNKILLABLE)
    return fail(k, Errno.EINVAL, 'CLONE_PARENT from an unkillable init');
  if (has(CLONE_THREAD)) {
    if (has(CLONE_NEWUSER) || has(CLONE_NEWPID) || current.activePidNs() !== current.nsproxy!.pidForChildren)
      return fail(k, Errno.EINVAL, 'CLONE_THREAD across pid/user namespaces');
  }
  if (has(CLONE_PIDFD) && has(CLONE_DETACHED)) return fail(k, Errno.EINVAL, 'CLONE_PIDFD|CLONE_DETACHED');
  // 8: a pending signal restarts the fork (delayed multiprocess signals for !CLONE_THREAD)
  if (current.sigpending) return fail(k, Errno.ERESTARTNOINTR, 'signal pending');
  // 9: dup_task_struct (the work of copy_process is charged here, whoever the caller is)
  k.charge(has(CLONE_VM) ? k.profile.costs.cloneThread : k.profile.costs.cloneProcess);
  if (k.allocFails('dup_task_struct')) return fail(k, Errno.ENOMEM, 'dup_task_struct');
  const p = new Task();
  p.kernel = k;
  const pf = k.profile.pfUserWorker;
  p.comm = args.name !== undefined ? args.name.slice(0, 15) : current.comm;
  p.flags = current.flags & ~(PF_KTHREAD | pf | PF_IO_WORKER | PF_EXITING | PF_NPROC_EXCEEDED);
  p.flags &= ~(PF_SUPERPRIV | PF_WQ_WORKER | PF_IDLE | PF_NO_SETAFFINITY);
  p.flags |= PF_FORKNOEXEC;
  if (args.kthread) p.flags |= PF_KTHREAD;
  const wf = args.workerFlags ?? 0;
  // The blocked mask "everything but SIGKILL/SIGSTOP" came with io_thread until f9010dbdce91
  // (6.4-rc5) moved it to user_worker; the V5 series kept it on the IO flag too.
  const userWorker = (args.userWorker || (wf & KERN_WORKER_USER) !== 0) && pf !== 0;
  const ioThread = args.ioThread || (wf & KERN_WORKER_IO) !== 0;
  if (userWorker) p.flags |= pf;
  if (ioThread) p.flags |= PF_IO_WORKER;
  const blocksAll = ioThread || (userWorker && k.profile.getSignalWorkerExemption === 'user');
  p.blocked = blocksAll ? FULL_SIGSET & ~(sigmask(SIGKILL) | sigmask(SIGSTOP)) : current.blocked;
  p.cpusAllowed = current.cpusAllowed;
  p.startTime = k.clock;
  p.selfExecId = current.selfExecId;
  // the command line lives in the mm (arg_start..arg_end): a copy or a share of the creator's
  p.execPath = current.execPath;
  // 10: copy_creds, which charges RLIMIT_NPROC
  const cr = copyCreds(k, current, p, f);
  if (!cr.ok) return fail(k, cr.errno, 'copy_creds');
  const undoCreds = () => decRlimitUcounts(k, p.cred.ucounts, 1);
  // 11: RLIMIT_NPROC, exemptions: INIT_USER, CAP_SYS_RESOURCE, CAP_SYS_ADMIN
  const nproc = current.signal.rlim[RLIMIT_NPROC]!.cur;
  if (isRlimitOverlimit(k, p.cred.ucounts, nproc)) {
    const initUser = p.cred.uid === 0 && p.cred.ucounts.ns === k.initUserNs;
    if (
      !initUser &&
      !capable(k, current.cred, CAP_SYS_RESOURCE) &&
      !capable(k, current.cred, CAP_SYS_ADMIN)
    ) {
      undoCreds();
      return fail(k, Errno.EAGAIN, 'RLIMIT_NPROC');
    }
  }
  current.flags &= ~PF_NPROC_EXCEEDED;
  // 12: threads-max, no exemption
  if (k.nrThreads >= k.maxThreads) {
    undoCreds();
    return fail(k, Errno.EAGAIN, 'threads-max');
  }
  // 13: sched_fork, perf, audit, LSM: allocation failures only
  if (k.allocFails('sched_fork')) {
    undoCreds();
    return fail(k, Errno.ENOMEM, 'sched_fork');
  }
  // 14: copy_files, copy_fs, copy_sighand, copy_signal, copy_mm, copy_namespaces, copy_thread
  const undo: (() => void)[] = [undoCreds];
  const unwind = (errno: Errno, rule: string) => {
    for (let i = undo.length - 1; i >= 0; i--) undo[i]!();
    return fail(k, errno, rule);
  };
  // copy_files
  if (args.noFiles || wf & KERN_WORKER_NO_FILES) p.files = null;
  else if (has(CLONE_FILES) && current.files) {
    p.files = current.files;
    current.files.count++;
    undo.push(() => p.files!.count--);
  } else if (current.files) {
    if (k.allocFails('dup_fd')) return unwind(Errno.ENOMEM, 'copy_files');
    const nf = current.files.dup();
    p.files = nf;
    undo.push(() => {
      for (const file of nf.fds) if (file) file.count--;
    });
  }
  // copy_fs
  if (current.fs) {
    if (has(CLONE_FS)) {
      if (current.fs.inExec) return unwind(Errno.EAGAIN, 'copy_fs (in exec)');
      p.fs = current.fs;
      current.fs.users++;
      undo.push(() => p.fs!.users--);
    } else p.fs = current.fs.copy();
  }
  // copy_sighand
  if (has(CLONE_SIGHAND)) {
    p.sighand = current.sighand;
    current.sighand.count++;
    undo.push(() => p.sighand.count--);
  } else {
    p.sighand = new Sighand(current.sighand);
    if (hasFlag(f, CLONE_CLEAR_SIGHAND))
      for (let s = 1; s < p.sighand.action.length; s++)
        // flush_signal_handlers(p, 0): non-ignored → SIG_DFL; every action loses flags and mask
        p.sighand.action[s] =
          p.sighand.action[s]!.handler === SIG_IGN
            ? { handler: SIG_IGN, flags: 0, mask: 0n }
            : DEFAULT_SIGACTION;
  }
  // copy_signal
  if (has(CLONE_THREAD)) p.signal = current.signal;
  else {
    p.signal = new SignalStruct(current.signal.rlim.slice());
    p.signal.wqChldexit = new WaitQueue();
    p.signal.hasChildSubreaper = current.signal.hasChildSubreaper || current.signal.isChildSubreaper;
  }
  // copy_mm
  if (current.mm) {
    if (has(CLONE_VM)) {
      p.mm = current.mm;
      current.mm.users++;
      undo.push(() => p.mm!.users--);
    } else {
      if (k.allocFails('dup_mm')) return unwind(Errno.ENOMEM, 'copy_mm');
      const memcg = current.cgroups[0]?.effective('memory') ?? null;
      p.mm = current.mm.dup(k.nextMmId(), memcg);
      const mm = p.mm;
      undo.push(() => mm.teardown());
    }
    p.activeMm = p.mm;
  }
  // copy_namespaces
  const ns = copyNamespaces(k, current, p, f);
  if (!ns.ok) return unwind(ns.errno, 'copy_namespaces');
  p.nsproxy = ns.value;
  // copy_thread + V5 KERN_WORKER_SIG_IGN / 6.4-rc1 ignore_signals: done inside copy_process
  if (args.ignoreSignals || wf & KERN_WORKER_SIG_IGN) ignoreSignals(p);
  // 15: alloc_pid in pid_ns_for_children (and every ancestor level)
  const pidns = p.nsproxy.pidForChildren;
  const setTid = args.setTid ?? [];
  // set_tid needs checkpoint_restore_ns_capable() (CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN)
  // over each chosen level's user ns; alloc_pid checks it per level after the range checks
  const pr = allocPid(
    pidns,
    k.pidMax,
    setTid,
    (lvl) =>
      credCapable(current.cred, lvl.userNs, CAP_CHECKPOINT_RESTORE) ||
      credCapable(current.cred, lvl.userNs, CAP_SYS_ADMIN),
  );
  if (!pr.ok) return unwind(pr.errno, 'alloc_pid');
  const pid = pr.value;
  undo.push(() => freePid(pid));
  p.pidStruct = pid;
  p.pid = pid.nr;
  p.tgid = has(CLONE_THREAD) ? current.tgid : p.pid;
  // 17: cgroup_can_fork (pids.max, CLONE_INTO_CGROUP)
  const cgSrc = args.kthread && current !== k.kthreadd && current !== k.idle ? k.kthreadd : current;
  const cgr = cgroupCanFork(k, cgSrc, hasFlag(f, CLONE_INTO_CGROUP) ? (args.cgroup ?? null) : null);
  if (!cgr.ok) return unwind(cgr.errno, 'cgroup_can_fork (pids)');
  const cgs = cgr.value;
  undo.push(() => cgroupCancelFork(cgs));
  // 18: under tasklist_lock: parent, exit_signal, then the last two failure points
  if (has(CLONE_PARENT) || has(CLONE_THREAD)) {
    p.realParent = current.realParent;
    p.parentExecId = current.parentExecId;
    p.exitSignal = has(CLONE_THREAD) ? -1 : current.groupLeader.exitSignal;
  } else {
    p.realParent = current;
    p.parentExecId = current.selfExecId;
    p.exitSignal = args.exitSignal;
  }
  p.parent = p.realParent;
  if (current.fatalSignalPending()) return unwind(Errno.EINTR, 'fatal signal pending');
  // -- point of no return --
  p.cred = cr.value;
  if (has(CLONE_THREAD)) {
    p.groupLeader = current.groupLeader;
    p.signal.nrThreads++;
    p.signal.live++;
    p.signal.threads.push(p);
    // models the CLONE_THREAD branch: shares signal_struct, joins the thread list
  } else {
    p.groupLeader = p;
    p.signal.threads.push(p);
    p.realParent.linkChild(p);
    if (pid.nrIn(pidns) === 1 && pidns !== k.initPidNs) {
      pidns.childReaper = p;
      p.signal.flags |= SIGNAL_UNKILLABLE;
    }
  }
  // ptrace_init_task(): auto-attach when the parent is traced with the matching option
  if (trace && current.ptrace && current.parent) {
    p.ptrace = current.ptrace;
    p.parent = current.parent;
    current.parent.linkTracee(p);
  }
  cgroupPostFork(p, cgs);
  if (pf && p.flags & pf)
    p.workerOrigin = {
      creator: current,
      creatorMm: current.mm,
      creatorNsproxy: current.nsproxy,
      creatorCred: current.cred,
      creatorCgroups: current.cgroups.slice(),
      mm: p.mm,
      nsproxy: p.nsproxy,
      cred: p.cred,
      cgroups: cgs.slice(),
    };
  k.tasks.set(p.pid, p);
  k.nrThreads++;
  k.totalForks++;
  k.stats.forks++;
  p.state = TASK_NEW;
  p.body = args.fn;
  p.gen = taskEntry(k, p, args.fn);
  recalcSigpending(k, current);
  if (k.trace.enabled)
    k.emit('task_newtask', `pid=${p.pid} comm=${p.comm} clone_flags=${f.toString(16)} oom_score_adj=0`);
  return ok(p);
}

/** models kernel/cred.c copy_creds(), v6.12 (charges UCOUNT_RLIMIT_NPROC for every task). */
function copyCreds(k: Kernel, current: Task, p: Task, f: number): Result<Cred> {
  let c = current.cred;
  if (hasFlag(f, CLONE_NEWUSER)) {
    // create_user_ns(): needs the euid/egid mapped; capability is not required
    if (c.userNs.level >= 32) return err(Errno.EUSERS);
    const uns = new UserNamespace(k.nextNsInum(), c.userNs, c.euid, current.signal.rlim[RLIMIT_NPROC]!.cur);
    c = {
      ...c,
      userNs: uns,
      ucounts: k.ucounts.get(uns, c.uid),
      capPermitted: c.capBset,
      capEffective: c.capBset,
    };
  }
  p.cred = c;
  incRlimitUcounts(k, c.ucounts, 1);
  return ok(c);
}

/** models kernel/nsproxy.c copy_namespaces(), v6.12 (incl. the CLONE_VM and timens_on_fork time-ns rules). */
function copyNamespaces(k: Kernel, current: Task, p: Task, f: number): Result<NsProxy> {
  const old = current.nsproxy!;
  const nsFlags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP;
  if (!(f & nsFlags) && !hasFlag(f, CLONE_NEWTIME)) {
    // a CLONE_VM child keeps the old time namespace (the shared mm maps the old vvar page)
    if (hasFlag(f, CLONE_VM) || old.time === old.timeForChildren) return ok(old);
    return ok({ ...old, time: old.timeForChildren });
  }
  const r = createNewNamespaces(k, p.cred, old, f);
  if (!r.ok || hasFlag(f, CLONE_VM)) return r;
  // timens_on_fork(): a child without CLONE_VM enters time_ns_for_children
  return ok({ ...r.value, time: r.value.timeForChildren });
}

/** models create_new_namespaces(): CAP_SYS_ADMIN in the (possibly new) user ns, else EPERM. */
export function createNewNamespaces(k: Kernel, cred: Cred, old: NsProxy, f: number): Result<NsProxy> {
  if (!credCapable(cred, cred.userNs, CAP_SYS_ADMIN)) return err(Errno.EPERM);
  if (hasFlag(f, CLONE_NEWIPC) && hasFlag(f, CLONE_SYSVSEM)) return err(Errno.EINVAL);
  const mk = (type: Namespace['type'], flag: number, cur: Namespace): Namespace =>
    hasFlag(f, flag) ? { type, inum: k.nextNsInum(), userNs: cred.userNs } : cur;
  let pidForChildren = old.pidForChildren;
  if (hasFlag(f, CLONE_NEWPID)) {
    if (old.pidForChildren.level + 1 >= MAX_PID_NS_LEVEL) return err(Errno.ENOSPC);
    pidForChildren = new PidNamespace(k.nextNsInum(), old.pidForChildren, cred.userNs);
  }
  const timeForChildren = mk('time', CLONE_NEWTIME, old.timeForChildren);
  return ok({
    mnt: mk('mnt', CLONE_NEWNS, old.mnt),
    uts: mk('uts', CLONE_NEWUTS, old.uts),
    ipc: mk('ipc', CLONE_NEWIPC, old.ipc),
    net: mk('net', CLONE_NEWNET, old.net),
    cgroup: mk('cgroup', CLONE_NEWCGROUP, old.cgroup),
    time: old.time,
    timeForChildren,
    pidForChildren,
  });
}

/** models ignore_signals(): every disposition SIG_IGN (kthreadd, V5 SIG_IGN workers, 6.4-rc1 vhost_task). */
export function ignoreSignals(t: Task): void {
  const sh = t.sighand.count > 1 ? new Sighand(t.sighand) : t.sighand;
  for (let s = 1; s < sh.action.length; s++) sh.action[s] = { handler: SIG_IGN, flags: 0, mask: 0n };
  t.sighand = sh;
}

/** ptrace events (include/uapi/linux/ptrace.h) */
export const PTRACE_EVENT_FORK = 1;
export const PTRACE_EVENT_VFORK = 2;
export const PTRACE_EVENT_CLONE = 3;

/**
 * models kernel_clone(args), v6.12: CLONE_PIDFD + CLONE_PARENT_SETTID on the same address →
 * EINVAL; ptrace event selection unless CLONE_UNTRACED; copy_process; sched_process_fork;
 * wake_up_new_task; vfork wait. Returns the child's pid in the caller's pid namespace.
 */
export function* kernelClone(k: Kernel, args: KernelCloneArgs): KGen<Result<number>> {
  const current = k.current!;
  if (
    hasFlag(args.flags, CLONE_PIDFD) &&
    hasFlag(args.flags, CLONE_PARENT_SETTID) &&
    args.pidfd === args.parentTid
  )
    return err(Errno.EINVAL);
  let trace = 0;
  if (!hasFlag(args.flags, CLONE_UNTRACED)) {
    if (hasFlag(args.flags, CLONE_VFORK)) trace = PTRACE_EVENT_VFORK;
    else if (args.exitSignal !== SIGCHLD) trace = PTRACE_EVENT_CLONE;
    else trace = PTRACE_EVENT_FORK;
    // ptrace_event_enabled(): PT_EVENT_FLAG(event) = 1 << (event + PT_OPT_FLAG_SHIFT)
    if (!(current.ptrace & (1 << (trace + 3)))) trace = 0;
  }
  const r = copyProcess(k, args, trace);
  if (!r.ok) return r;
  const p = r.value;
  if (k.trace.enabled)
    k.emit(
      'sched_process_fork',
      `comm=${current.comm} pid=${current.pid} child_comm=${p.comm} child_pid=${p.pid}`,
    );
  const nr = p.pidIn(current.activePidNs()!);
  let vfork: Completion | null = null;
  if (hasFlag(args.flags, CLONE_VFORK)) {
    vfork = new Completion('vfork_done');
    p.vforkDone = vfork;
  }
  k.wakeUpNewTask(p);
  if (trace && current.parent)
    current.parent.recordPtraceEvent({ event: ptraceEventName(trace), tracee: current, msg: p.pid });
  if (vfork) yield* waitForCompletionKillable(k, vfork);
  return ok(nr);
}

function ptraceEventName(e: number): string {
  return e === PTRACE_EVENT_FORK
    ? 'PTRACE_EVENT_FORK'
    : e === PTRACE_EVENT_VFORK
      ? 'PTRACE_EVENT_VFORK'
      : 'PTRACE_EVENT_CLONE';
}

/**
 * models kernel_thread(fn, arg, name, flags), v6.12: a PF_KTHREAD child of the caller with
 * CLONE_VM|CLONE_UNTRACED added and the CSIGNAL bits as exit signal.
 */
export function* kernelThread(k: Kernel, fn: TaskBody, name: string, flags: number): KGen<Result<number>> {
  return yield* kernelClone(k, {
    flags: ((flags | CLONE_VM | CLONE_UNTRACED) & ~CSIGNAL) >>> 0,
    exitSignal: flags & CSIGNAL,
    fn,
    name,
    kthread: true,
  });
}

/**
 * models create_io_thread(fn, arg, node), v6.12 (§1.8): CLONE_FS|CLONE_FILES|CLONE_SIGHAND|
 * CLONE_THREAD|CLONE_IO|CLONE_VM|CLONE_UNTRACED, io_thread (+ user_worker from 6.4). The task
 * is returned inactive; the caller names it and calls wake_up_new_task.
 */
export function createIoThread(k: Kernel, fn: TaskBody): Result<Task> {
  return copyProcess(k, {
    flags:
      (CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_IO | CLONE_VM | CLONE_UNTRACED) >>> 0,
    exitSignal: 0,
    fn,
    ioThread: true,
    userWorker: k.profile.ioThreadIsUserWorker,
  });
}

/** clone3's struct clone_args sizes (CLONE_ARGS_SIZE_VER0/1/2). */
export const CLONE_ARGS_SIZE_VER0 = 64;
export const CLONE_ARGS_SIZE_VER1 = 80;
export const CLONE_ARGS_SIZE_VER2 = 88;

/** struct clone_args as userspace passes it to clone3 */
export interface Clone3Args {
  flags: number;
  pidfd?: number;
  childTid?: number;
  parentTid?: number;
  exitSignal: number;
  stack?: number;
  stackSize?: number;
  tls?: number;
  setTid?: number[];
  cgroup?: number;
  /** the `size` argument */
  size?: number;
}

/**
 * models copy_clone_args_from_user() + clone3_args_valid(), v6.12: E2BIG for size >
 * PAGE_SIZE, EINVAL for size < VER0, bad set_tid, bad exit_signal, CLONE_INTO_CGROUP
 * without VER2 or with cgroup > INT_MAX, unknown/CSIGNAL/DETACHED flags, CLEAR_SIGHAND with
 * SIGHAND, THREAD/PARENT with an exit signal, and an inconsistent stack.
 */
export function clone3ArgsValid(a: Clone3Args): Result<void> {
  const size = a.size ?? CLONE_ARGS_SIZE_VER2;
  if (size > 4096) return err(Errno.E2BIG);
  if (size < CLONE_ARGS_SIZE_VER0) return err(Errno.EINVAL);
  const setTid = a.setTid ?? [];
  if (setTid.length > MAX_PID_NS_LEVEL) return err(Errno.EINVAL);
  if (a.exitSignal < 0 || a.exitSignal > 64 || (a.exitSignal & ~CSIGNAL) !== 0) return err(Errno.EINVAL);
  if (hasFlag(a.flags, CLONE_INTO_CGROUP) && ((a.cgroup ?? 0) > 0x7fffffff || size < CLONE_ARGS_SIZE_VER2))
    return err(Errno.EINVAL);
  const high = Math.floor(a.flags / 0x100000000);
  if (high & ~3) return err(Errno.EINVAL); // only CLEAR_SIGHAND and INTO_CGROUP above bit 31
  if ((a.flags & CSIGNAL & ~CLONE_NEWTIME) !== 0 || hasFlag(a.flags, CLONE_DETACHED))
    return err(Errno.EINVAL);
  if (hasFlag(a.flags, CLONE_SIGHAND) && hasFlag(a.flags, CLONE_CLEAR_SIGHAND)) return err(Errno.EINVAL);
  if ((hasFlag(a.flags, CLONE_THREAD) || hasFlag(a.flags, CLONE_PARENT)) && a.exitSignal)
    return err(Errno.EINVAL);
  if ((a.stack ?? 0) === 0 ? (a.stackSize ?? 0) !== 0 : (a.stackSize ?? 0) === 0) return err(Errno.EINVAL);
  return ok();
}

/** For boot: kernel_thread() from the idle task (kthreadd). */
export function kernelThreadAtBoot(k: Kernel, comm: string, body: TaskBody): Task {
  const r = k.withCurrent(k.idle, () =>
    copyProcess(k, {
      flags: (CLONE_FS | CLONE_FILES | CLONE_VM | CLONE_UNTRACED) >>> 0,
      exitSignal: 0,
      fn: body,
      name: comm,
      kthread: true,
    }),
  );
  if (!r.ok) throw new Error(`boot: cannot create ${comm}: errno ${r.errno}`);
  k.wakeUpNewTask(r.value);
  return r.value;
}

export { PT_PTRACED, SIG_DFL };
