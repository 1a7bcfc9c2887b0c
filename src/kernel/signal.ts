/**
 * Signal generation and delivery. Models kernel/signal.c, v6.12: prepare_signal,
 * sig_ignored, complete_signal, __send_signal_locked, get_signal, do_signal_stop,
 * zap_other_threads, do_notify_parent(_cldstop); plus the freezer hooks get_signal runs
 * (kernel/freezer.c, kernel/cgroup/freezer.c). Era differences come from the profile.
 */
import { CAP_KILL, capable } from './cred.js';
import { Errno, err, ok, type Result } from './errno.js';
import { doExit } from './exit.js';
import type { Kernel } from './kernel.js';
import { Completion, complete, type KGen, Op, waitForCompletion } from './sched.js';
import {
  __TASK_STOPPED,
  __TASK_TRACED,
  PF_EXITING,
  PF_IO_WORKER,
  PF_KTHREAD,
  PF_NOFREEZE,
  PF_SIGNALED,
  PF_SUSPEND_TASK,
  TASK_FROZEN,
  TASK_INTERRUPTIBLE,
  TASK_NORMAL,
  TASK_RUNNING,
  TASK_STOPPED,
  TASK_WAKEKILL,
} from './sched-consts.js';
import {
  SA_NOCLDSTOP,
  SA_NOCLDWAIT,
  SA_RESETHAND,
  SIG_DFL,
  SIG_IGN,
  SIG_KERNEL_STOP_MASK,
  SIGCHLD,
  SIGCONT,
  SIGKILL,
  SIGSTOP,
  type SigSet,
  sigismember,
  sigKernelCoredump,
  sigKernelIgnore,
  sigKernelOnly,
  sigKernelStop,
  sigmask,
} from './signal-consts.js';
import {
  DEFAULT_SIGACTION,
  SI_KERNEL,
  SI_USER,
  SIGNAL_CLD_CONTINUED,
  SIGNAL_CLD_STOPPED,
  SIGNAL_GROUP_EXIT,
  SIGNAL_STOP_CONTINUED,
  SIGNAL_STOP_STOPPED,
  SIGNAL_UNKILLABLE,
  type SigInfo,
  type SigPending,
  type Task,
} from './task.js';
import { taskWorkRun } from './task-work.js';

// task->jobctl bits (include/linux/sched/jobctl.h)
export const JOBCTL_STOP_SIGMASK = 0xffff;
export const JOBCTL_STOP_DEQUEUED = 1 << 16;
export const JOBCTL_STOP_PENDING = 1 << 17;
export const JOBCTL_STOP_CONSUME = 1 << 18;
export const JOBCTL_TRAP_STOP = 1 << 19;
export const JOBCTL_TRAP_NOTIFY = 1 << 20;
export const JOBCTL_TRAPPING = 1 << 21;
export const JOBCTL_LISTENING = 1 << 22;
export const JOBCTL_TRAP_FREEZE = 1 << 23;
export const JOBCTL_STOPPED = 1 << 26;
export const JOBCTL_TRAP_MASK = JOBCTL_TRAP_STOP | JOBCTL_TRAP_NOTIFY;
export const JOBCTL_PENDING_MASK = JOBCTL_STOP_PENDING | JOBCTL_TRAP_MASK;

/** signal_generate's res field */
export const TRACE_SIGNAL_DELIVERED = 0;
export const TRACE_SIGNAL_IGNORED = 1;
export const TRACE_SIGNAL_ALREADY_PENDING = 2;

// si_code for SIGCHLD (include/uapi/asm-generic/siginfo.h)
export const CLD_EXITED = 1;
export const CLD_KILLED = 2;
export const CLD_DUMPED = 3;
export const CLD_STOPPED = 5;
export const CLD_CONTINUED = 6;

/** A frozen task: in the system freezer's refrigerator or a cgroup v2 freezer trap. */
export const frozenTasks = new WeakSet<Task>();

function handlerOf(t: Task, sig: number): number {
  return t.sighand.action[sig]?.handler ?? SIG_DFL;
}

/** models sig_handler_ignored() */
function sigHandlerIgnored(handler: number, sig: number): boolean {
  return handler === SIG_IGN || (handler === SIG_DFL && sigKernelIgnore(sig));
}

/**
 * models sig_task_ignored(), v6.12: global init never gets SIGKILL/SIGSTOP; an
 * SIGNAL_UNKILLABLE task ignores default-action signals unless forced kernel-only; then the
 * disposition decides (kthreads got SIG_IGN for everything from kthreadd's ignore_signals()).
 */
function sigTaskIgnored(k: Kernel, t: Task, sig: number, force: boolean): boolean {
  const handler = handlerOf(t, sig);
  if (t.groupLeader === k.init && sigKernelOnly(sig)) return true;
  if (t.signal.flags & SIGNAL_UNKILLABLE && handler === SIG_DFL && !(force && sigKernelOnly(sig)))
    return true;
  return sigHandlerIgnored(handler, sig);
}

/** models sig_ignored(): blocked signals are never ignored (they are queued). */
function sigIgnored(k: Kernel, t: Task, sig: number, force: boolean): boolean {
  if (sigismember(t.blocked, sig) || sigismember(t.realBlocked, sig)) return false;
  if (t.ptrace && sig !== SIGKILL) return false;
  return sigTaskIgnored(k, t, sig, force);
}

function flushSignalMask(p: SigPending, mask: SigSet): void {
  if ((p.signal & mask) === 0n) return;
  p.signal &= ~mask;
  p.list = p.list.filter((i) => !(sigmask(i.signo) & mask));
}

/** models task_clear_jobctl_pending() */
function clearJobctlPending(t: Task, mask: number): void {
  let m = mask;
  if (m & JOBCTL_STOP_PENDING) m |= JOBCTL_STOP_CONSUME | JOBCTL_STOP_DEQUEUED;
  t.jobctl &= ~m;
}

/** models task_set_jobctl_pending(): fails for exiting tasks or ones with a fatal signal pending. */
function setJobctlPending(t: Task, mask: number): boolean {
  if (t.fatalSignalPending() || t.flags & PF_EXITING) return false;
  if (mask & JOBCTL_STOP_SIGMASK) t.jobctl &= ~JOBCTL_STOP_SIGMASK;
  t.jobctl |= mask;
  return true;
}

/** models signal_wake_up_state(t, fatal ? TASK_WAKEKILL|__TASK_TRACED : 0) */
export function signalWakeUp(k: Kernel, t: Task, fatal: boolean): void {
  t.sigpending = true;
  const state = fatal ? TASK_WAKEKILL | __TASK_TRACED : 0;
  k.tryToWakeUp(t, state | TASK_INTERRUPTIBLE);
}

/** models recalc_sigpending_tsk(): sets (never clears) TIF_SIGPENDING. */
export function recalcSigpendingTsk(t: Task): boolean {
  // fast path: nothing pending and no job-control work (bigint masks are costly)
  if (
    t.pending.signal === 0n &&
    t.signal.sharedPending.signal === 0n &&
    !(t.jobctl & (JOBCTL_PENDING_MASK | JOBCTL_TRAP_FREEZE))
  )
    return false;
  if (
    t.jobctl & (JOBCTL_PENDING_MASK | JOBCTL_TRAP_FREEZE) ||
    (t.pending.signal & ~t.blocked) !== 0n ||
    (t.signal.sharedPending.signal & ~t.blocked) !== 0n
  ) {
    t.sigpending = true;
    return true;
  }
  return false;
}

/** models recalc_sigpending() for current: clears TIF_SIGPENDING when nothing is deliverable. */
export function recalcSigpending(k: Kernel, t: Task): void {
  if (!recalcSigpendingTsk(t) && !freezing(k, t)) t.sigpending = false;
}

/**
 * models prepare_signal(), v6.12: a dying group drops everything but SIGKILL during a
 * coredump; a stop signal flushes SIGCONT; SIGCONT flushes stop signals and wakes stopped
 * threads, recording CLD_CONTINUED/CLD_STOPPED for the parent. Returns false if ignored.
 */
function prepareSignal(k: Kernel, sig: number, p: Task, force: boolean): boolean {
  const signal = p.signal;
  if (signal.flags & SIGNAL_GROUP_EXIT) {
    if (signal.coreState) return sig === SIGKILL;
    return false;
  }
  if (sigKernelStop(sig)) {
    const cont = sigmask(SIGCONT);
    flushSignalMask(signal.sharedPending, cont);
    for (const t of signal.threads) flushSignalMask(t.pending, cont);
  } else if (sig === SIGCONT) {
    flushSignalMask(signal.sharedPending, SIG_KERNEL_STOP_MASK);
    for (const t of signal.threads) {
      flushSignalMask(t.pending, SIG_KERNEL_STOP_MASK);
      clearJobctlPending(t, JOBCTL_STOP_PENDING);
      t.jobctl &= ~JOBCTL_STOPPED;
      k.tryToWakeUp(t, __TASK_STOPPED);
    }
    let why = 0;
    if (signal.flags & SIGNAL_STOP_STOPPED) why |= SIGNAL_CLD_CONTINUED;
    else if (signal.groupStopCount) why |= SIGNAL_CLD_STOPPED;
    if (why) {
      signal.flags = why | SIGNAL_STOP_CONTINUED;
      signal.groupStopCount = 0;
      signal.groupExitCode = 0;
    }
  }
  return !sigIgnored(k, p, sig, force);
}

/** models wants_signal() */
function wantsSignal(sig: number, p: Task): boolean {
  if (sigismember(p.blocked, sig)) return false;
  if (p.flags & PF_EXITING) return false;
  if (sig === SIGKILL) return true;
  if (p.state & (__TASK_STOPPED | __TASK_TRACED)) return false;
  return p.state === TASK_RUNNING || !p.sigpending;
}

/**
 * models complete_signal(), v6.12: pick the thread to wake; a fatal signal that is not a
 * coredump signal becomes a group exit: SIGNAL_GROUP_EXIT and SIGKILL to every thread.
 */
function completeSignal(k: Kernel, sig: number, p: Task, group: boolean): void {
  const signal = p.signal;
  let t: Task;
  if (wantsSignal(sig, p)) t = p;
  else if (!group || p.threadGroupEmpty()) return;
  else {
    const threads = signal.threads;
    const start = signal.currTarget && threads.includes(signal.currTarget) ? signal.currTarget : p;
    let i = threads.indexOf(start);
    let found: Task | null = null;
    for (let n = 0; n < threads.length; n++, i = (i + 1) % threads.length) {
      if (wantsSignal(sig, threads[i]!)) {
        found = threads[i]!;
        break;
      }
    }
    if (!found) return;
    t = found;
    signal.currTarget = t;
  }
  const fatal = sigFatal(p, sig);
  if (
    fatal &&
    !(signal.flags & SIGNAL_GROUP_EXIT) &&
    !sigismember(t.realBlocked, sig) &&
    (sig === SIGKILL || !p.ptrace)
  ) {
    if (!sigKernelCoredump(sig)) {
      signal.flags = SIGNAL_GROUP_EXIT;
      signal.groupExitCode = sig;
      signal.groupStopCount = 0;
      for (const th of signal.threads) {
        clearJobctlPending(th, JOBCTL_PENDING_MASK);
        th.pending.signal |= sigmask(SIGKILL);
        signalWakeUp(k, th, true);
      }
      return;
    }
  }
  signalWakeUp(k, t, sig === SIGKILL);
}

/** models sig_fatal(): the default action kills and nothing catches or ignores it. */
function sigFatal(p: Task, sig: number): boolean {
  const h = handlerOf(p, sig);
  return !sigKernelIgnore(sig) && !sigKernelStop(sig) && h === SIG_DFL;
}

/**
 * models __send_signal_locked(sig, info, t, type, force), v6.12. `group` = PIDTYPE_TGID
 * (process-directed, shared pending) versus PIDTYPE_PID (thread-directed). Returns the
 * signal_generate result code.
 */
export function sendSignal(
  k: Kernel,
  sig: number,
  info: SigInfo,
  t: Task,
  group: boolean,
  force = false,
): number {
  let res = TRACE_SIGNAL_IGNORED;
  if (prepareSignal(k, sig, t, force)) {
    const pending = group ? t.signal.sharedPending : t.pending;
    if (sig < 32 && pending.has(sig)) res = TRACE_SIGNAL_ALREADY_PENDING;
    else {
      pending.signal |= sigmask(sig);
      pending.list.push(info);
      res = TRACE_SIGNAL_DELIVERED;
      completeSignal(k, sig, t, group);
    }
  }
  if (k.trace.enabled)
    k.emit(
      'signal_generate',
      `sig=${sig} errno=0 code=${info.code} comm=${t.comm} pid=${t.pid} grp=${group ? 1 : 0} res=${res}`,
    );
  return res;
}

/** The signals a signal-arrival fault can deliver, in answer order (answer 2i+1, 2i+2 → process i). */
export const FAULT_SIGNALS = [SIGKILL, SIGSTOP] as const;

/**
 * Signal-arrival faults: before every scheduler slice, Choices decides whether SIGKILL or
 * SIGSTOP arrives for one of the user processes (answer 0: none), as `kill -KILL` or
 * `kill -STOP` from another process would (SI_USER from pid 0, the whole thread group). The
 * candidates are the live thread-group leaders that are neither kthreads nor init nor user or
 * io workers, and whose group is not already exiting, in creation order.
 */
export function enableSignalFaults(k: Kernel): void {
  k.beforeSlice = (kk) => {
    const procs: Task[] = [];
    for (const t of kk.tasks.values())
      if (
        t.alive &&
        t.groupLeader === t &&
        t !== kk.init &&
        !(t.flags & (PF_KTHREAD | PF_IO_WORKER | kk.profile.pfUserWorker)) &&
        !(t.signal.flags & SIGNAL_GROUP_EXIT)
      )
        procs.push(t);
    if (procs.length === 0) return;
    const v = kk.choices.choose('fault-signal', 1 + FAULT_SIGNALS.length * procs.length, 'signal arrival');
    if (v === 0) return;
    const target = procs[Math.floor((v - 1) / FAULT_SIGNALS.length)]!;
    const sig = FAULT_SIGNALS[(v - 1) % FAULT_SIGNALS.length]!;
    if (kk.trace.enabled) kk.emit('fault_signal', `sig=${sig} comm=${target.comm} pid=${target.pid}`);
    sendSignal(kk, sig, { signo: sig, code: SI_USER, pid: 0, uid: 0 }, target, true);
  };
}

/** A signal sent by the kernel itself (SEND_SIG_PRIV). */
export function kernelSigInfo(sig: number): SigInfo {
  return { signo: sig, code: SI_KERNEL, pid: 0, uid: 0 };
}

/** models check_kill_permission(), v6.12: same uid/euid pairs, or CAP_KILL; SIGCONT in the same session is allowed. */
export function checkKillPermission(k: Kernel, sender: Task, t: Task): Result<void> {
  const c = sender.cred;
  const tc = t.cred;
  if (sender.signal === t.signal) return ok();
  if (c.euid === tc.suid || c.euid === tc.uid || c.uid === tc.suid || c.uid === tc.uid) return ok();
  if (capable(k, c, CAP_KILL)) return ok();
  return err(Errno.EPERM);
}

/** models do_send_sig_info() + group_send_sig_info() as used by kill(2)/tgkill(2). */
export function sendSignalFromUser(
  k: Kernel,
  sender: Task,
  sig: number,
  t: Task,
  group: boolean,
  code = SI_USER,
): Result<void> {
  const perm = checkKillPermission(k, sender, t);
  if (!perm.ok) return perm;
  if (sig === 0) return ok();
  sendSignal(k, sig, { signo: sig, code, pid: sender.tgid, uid: sender.cred.uid }, t, group);
  return ok();
}

/**
 * models zap_other_threads(), v6.12 (with the 6.4-rc5 … 6.9 vhost special case from the
 * profile): SIGKILL to every other live thread. Returns the number of threads exec/coredump
 * must wait for.
 */
export function zapOtherThreads(k: Kernel, p: Task): number {
  let count = 0;
  p.signal.groupStopCount = 0;
  for (const t of p.signal.threads) {
    if (t === p) continue;
    clearJobctlPending(t, JOBCTL_PENDING_MASK);
    if (!k.profile.vhostSignalHacks || !isVhostUserWorker(k, t)) count++;
    if (t.exitState) continue;
    t.pending.signal |= sigmask(SIGKILL);
    signalWakeUp(k, t, true);
  }
  return count;
}

/** (PF_USER_WORKER | PF_IO_WORKER) == PF_USER_WORKER: a vhost worker, not an io thread. */
export function isVhostUserWorker(k: Kernel, t: Task): boolean {
  const uw = k.profile.pfUserWorker;
  return uw !== 0 && (t.flags & (uw | PF_IO_WORKER)) === uw;
}

/** models do_group_exit(): never returns. */
export function* doGroupExit(k: Kernel, exitCode: number): KGen<never> {
  const t = k.current!;
  const sig = t.signal;
  let code = exitCode;
  if (sig.flags & SIGNAL_GROUP_EXIT) code = sig.groupExitCode;
  else if (sig.groupExecTask) code = 0;
  else {
    sig.groupExitCode = code;
    sig.flags = SIGNAL_GROUP_EXIT;
    zapOtherThreads(k, t);
  }
  return yield* doExit(k, code);
}

/** models ignoring_children(sigh): SIGCHLD is ignored (SIG_IGN) or has SA_NOCLDWAIT. */
export function ignoringChildren(sighand: Task['sighand']): boolean {
  const act = sighand.action[SIGCHLD] ?? DEFAULT_SIGACTION;
  return act.handler === SIG_IGN || (act.flags & SA_NOCLDWAIT) !== 0;
}

/**
 * models do_notify_parent(tsk, sig), v6.12: report a death to the parent. Returns true if
 * the child should be auto-reaped: the parent ignores SIGCHLD (SIG_IGN) or set
 * SA_NOCLDWAIT, for a SIGCHLD child that is not ptraced. A non-SIGCHLD exit_signal whose
 * parent exec'd since is converted to SIGCHLD.
 */
export function doNotifyParent(k: Kernel, tsk: Task, sigIn: number): boolean {
  let sig = sigIn;
  const parent = tsk.parent;
  if (sig !== SIGCHLD && tsk.parentExecId !== parent.selfExecId) sig = SIGCHLD;
  let autoreap = false;
  if (!tsk.ptrace && sig === SIGCHLD && ignoringChildren(parent.sighand)) {
    autoreap = true;
    if (parent.sighand.action[SIGCHLD]?.handler === SIG_IGN) sig = 0;
  }
  // V5 kernel_worker 05/10: PF_USER_WORKER children are reaped as if the parent ignored SIGCHLD
  if (k.profile.vhostWorker === 'kernel-worker-v5' && tsk.flags & k.profile.pfUserWorker) autoreap = true;
  if (sig > 0 && sig <= 64) {
    const code = tsk.signal.flags & SIGNAL_GROUP_EXIT && tsk.exitCode & 0x7f ? CLD_KILLED : CLD_EXITED;
    sendSignal(k, sig, { signo: sig, code, pid: tsk.pid, uid: tsk.cred.uid }, parent, true);
  }
  parent.signal.wqChldexit.wakeUp(k, TASK_INTERRUPTIBLE);
  return autoreap;
}

/** models do_notify_parent_cldstop(tsk, false, why): tell the parent about a stop/continue. */
function doNotifyParentCldstop(k: Kernel, tsk: Task, why: number): void {
  const leader = tsk.groupLeader;
  const parent = leader.realParent;
  leader.signal.pendingStopReport = why;
  const act = parent.sighand.action[SIGCHLD] ?? DEFAULT_SIGACTION;
  if (act.handler !== SIG_IGN && !(act.flags & SA_NOCLDSTOP))
    sendSignal(k, SIGCHLD, { signo: SIGCHLD, code: why, pid: leader.pid, uid: tsk.cred.uid }, parent, true);
  parent.signal.wqChldexit.wakeUp(k, TASK_INTERRUPTIBLE);
}

/** models task_participate_group_stop(): true if this was the last thread to stop. */
function participateGroupStop(t: Task): boolean {
  const sig = t.signal;
  const consume = (t.jobctl & JOBCTL_STOP_CONSUME) !== 0;
  clearJobctlPending(t, JOBCTL_STOP_PENDING);
  if (!consume) return false;
  if (sig.groupStopCount > 0) sig.groupStopCount--;
  if (!sig.groupStopCount && !(sig.flags & SIGNAL_STOP_STOPPED)) {
    sig.flags = SIGNAL_STOP_STOPPED;
    return true;
  }
  return false;
}

/** models do_signal_stop(signr), v6.12. Returns true if the task stopped (and has been resumed). */
function* doSignalStop(k: Kernel, signr: number): KGen<boolean> {
  const cur = k.current!;
  const sig = cur.signal;
  if (!(cur.jobctl & JOBCTL_STOP_PENDING)) {
    const gstop = JOBCTL_STOP_PENDING | JOBCTL_STOP_CONSUME;
    if (!(cur.jobctl & JOBCTL_STOP_DEQUEUED) || sig.flags & SIGNAL_GROUP_EXIT || sig.groupExecTask)
      return false;
    if (!(sig.flags & SIGNAL_STOP_STOPPED)) sig.groupExitCode = signr;
    sig.groupStopCount = 0;
    if (setJobctlPending(cur, signr | gstop)) sig.groupStopCount++;
    for (const t of sig.threads) {
      if (t === cur) continue;
      const stopped = (t.state & __TASK_STOPPED) !== 0;
      if (!stopped && !t.exitState && setJobctlPending(t, signr | gstop)) {
        sig.groupStopCount++;
        signalWakeUp(k, t, false);
      }
    }
  }
  const notify = participateGroupStop(cur);
  cur.jobctl |= JOBCTL_STOPPED;
  cur.state = TASK_STOPPED;
  if (notify) doNotifyParentCldstop(k, cur, CLD_STOPPED);
  yield Op.Schedule;
  return true;
}

/** freezing(p) → freezing_slow_path(): PF_NOFREEZE and PF_SUSPEND_TASK tasks are never frozen (kernel/freezer.c). */
export function freezing(k: Kernel, p: Task): boolean {
  return k.systemFreezing && !(p.flags & (PF_NOFREEZE | PF_SUSPEND_TASK));
}

/** models try_to_freeze() → __refrigerator(), v6.12: sleep in TASK_FROZEN while freezing. */
export function* tryToFreeze(k: Kernel): KGen<boolean> {
  const t = k.current!;
  if (!freezing(k, t)) return false;
  frozenTasks.add(t);
  if (k.trace.enabled) k.emit('freezer', `frozen comm=${t.comm} pid=${t.pid}`);
  while (freezing(k, t)) {
    t.state = TASK_FROZEN;
    yield Op.Schedule;
  }
  t.state = TASK_RUNNING;
  frozenTasks.delete(t);
  recalcSigpending(k, t);
  return true;
}

/** models do_freezer_trap() (cgroup v2 freezer): sleep until the cgroup thaws. */
function* doFreezerTrap(k: Kernel): KGen<void> {
  const t = k.current!;
  if ((t.jobctl & (JOBCTL_PENDING_MASK | JOBCTL_TRAP_FREEZE)) !== JOBCTL_TRAP_FREEZE) {
    t.jobctl &= ~JOBCTL_TRAP_FREEZE;
    return;
  }
  t.sigpending = false;
  frozenTasks.add(t);
  while (t.jobctl & JOBCTL_TRAP_FREEZE && !t.fatalSignalPending()) {
    t.state = TASK_INTERRUPTIBLE;
    yield Op.Schedule;
  }
  t.state = TASK_RUNNING;
  frozenTasks.delete(t);
}

/** Dequeue the lowest-numbered deliverable signal: thread-private first, then shared (dequeue_signal). */
function dequeueSignal(t: Task): SigInfo | null {
  for (const p of [t.pending, t.signal.sharedPending]) {
    const avail = p.signal & ~t.blocked;
    if (avail === 0n) continue;
    let sig = 1;
    while (!(avail & sigmask(sig))) sig++;
    const i = p.list.findIndex((x) => x.signo === sig);
    const info = i >= 0 ? p.list.splice(i, 1)[0]! : { signo: sig, code: SI_KERNEL, pid: 0, uid: 0 };
    if (!p.list.some((x) => x.signo === sig)) p.signal &= ~sigmask(sig);
    if (sigKernelStop(sig)) t.jobctl |= JOBCTL_STOP_DEQUEUED;
    return info;
  }
  return null;
}

/** What get_signal decided. */
export interface KSignal {
  /** the signal to handle in user mode (a caught signal), or 0 */
  sig: number;
  /** a fatal signal for a PF_USER_WORKER, which must clean up and exit itself */
  fatal: boolean;
  handler: number;
}

/**
 * models get_signal(), v6.12, with the era's worker exemption: freezer, stop
 * notifications, group exit, job-control stop, cgroup freezer trap, then dequeue and act.
 * A fatal signal makes a normal thread call do_group_exit (never returns); a user worker
 * (PF_USER_WORKER from f9010dbdce91; PF_IO_WORKER before) gets {fatal: true} instead.
 */
export function* getSignal(k: Kernel): KGen<KSignal> {
  const cur = k.current!;
  const signal = cur.signal;
  const sighand = cur.sighand;
  const exemptFlag = k.profile.getSignalWorkerExemption === 'user' ? k.profile.pfUserWorker : PF_IO_WORKER;
  // clear_notify_signal(); task_work_run() if any is pending
  cur.notifySignal = false;
  if (cur.taskWorks) yield* taskWorkRun(k);
  for (;;) {
    // relock:
    if (yield* tryToFreeze(k)) continue;
    if (signal.flags & (SIGNAL_CLD_STOPPED | SIGNAL_CLD_CONTINUED)) {
      const why = signal.flags & SIGNAL_CLD_CONTINUED ? CLD_CONTINUED : CLD_STOPPED;
      signal.flags &= ~(SIGNAL_CLD_STOPPED | SIGNAL_CLD_CONTINUED);
      doNotifyParentCldstop(k, cur, why);
      continue;
    }
    let signr = 0;
    let relock = false;
    for (;;) {
      let fatal = false;
      if (signal.flags & SIGNAL_GROUP_EXIT || signal.groupExecTask) {
        signr = SIGKILL;
        cur.pending.signal &= ~sigmask(SIGKILL);
        cur.pending.list = cur.pending.list.filter((i) => i.signo !== SIGKILL);
        if (k.trace.enabled)
          k.emit('signal_deliver', `sig=${SIGKILL} errno=0 code=0 sa_handler=0 sa_flags=0`);
        recalcSigpending(k, cur);
        // "Has this task already been marked for death?": a group exit or an exec's
        // de_thread() both `goto fatal` (do_group_exit, or return to a PF_USER_WORKER)
        fatal = true;
      }
      if (!fatal) {
        if (cur.jobctl & JOBCTL_STOP_PENDING && (yield* doSignalStop(k, 0))) {
          relock = true;
          break;
        }
        if (cur.jobctl & JOBCTL_TRAP_FREEZE) {
          yield* doFreezerTrap(k);
          relock = true;
          break;
        }
        const info = dequeueSignal(cur);
        if (!info) {
          signr = 0;
          break;
        }
        signr = info.signo;
        const ka = sighand.action[signr] ?? DEFAULT_SIGACTION;
        if (k.trace.enabled)
          k.emit(
            'signal_deliver',
            `sig=${signr} errno=0 code=${info.code} sa_handler=${ka.handler.toString(16)} sa_flags=${ka.flags.toString(16)}`,
          );
        if (ka.handler === SIG_IGN) continue;
        if (ka.handler !== SIG_DFL) {
          if (ka.flags & SA_RESETHAND) sighand.action[signr] = DEFAULT_SIGACTION;
          recalcSigpending(k, cur);
          return { sig: signr, fatal: false, handler: ka.handler };
        }
        if (sigKernelIgnore(signr)) continue;
        if (signal.flags & SIGNAL_UNKILLABLE && !sigKernelOnly(signr)) continue;
        if (sigKernelStop(signr)) {
          if (yield* doSignalStop(k, signr)) {
            relock = true;
            break;
          }
          continue;
        }
      }
      // fatal:
      cur.flags |= PF_SIGNALED;
      if (sigKernelCoredump(signr)) yield* doCoredump(k, signr);
      if (cur.flags & exemptFlag) {
        recalcSigpending(k, cur);
        return { sig: signr, fatal: true, handler: SIG_DFL };
      }
      return yield* doGroupExit(k, signr);
    }
    if (relock) continue;
    recalcSigpending(k, cur);
    return { sig: 0, fatal: false, handler: SIG_DFL };
  }
}

/**
 * models fs/coredump.c do_coredump() → coredump_wait() → zap_threads(), v6.12 (and the
 * 6.4-rc5 … 6.9 vhost exemption in zap_process): the dumper kills the other threads and
 * waits until every counted one has reached coredump_task_exit; the dump itself is not
 * written (RLIMIT_CORE is not consulted), the exit status gets the core flag (0x80).
 */
function* doCoredump(k: Kernel, signr: number): KGen<void> {
  const cur = k.current!;
  const signal = cur.signal;
  if (signal.coreState || signal.flags & SIGNAL_GROUP_EXIT) return;
  signal.flags = SIGNAL_GROUP_EXIT;
  signal.groupExitCode = signr | 0x80;
  const startup = new Completion('core_state.startup');
  let nr = 0;
  for (const t of signal.threads) {
    if (t === cur || t.exitState) continue;
    clearJobctlPending(t, JOBCTL_PENDING_MASK);
    t.pending.signal |= sigmask(SIGKILL);
    signalWakeUp(k, t, true);
    if (!k.profile.vhostSignalHacks || !isVhostUserWorker(k, t)) nr++;
  }
  signal.coreState = { nrThreads: nr, dumper: cur, startup };
  if (nr > 0) yield* waitForCompletion(k, startup);
  if (k.trace.enabled) k.emit('coredump', `comm=${cur.comm} pid=${cur.pid} sig=${signr}`);
}

/** models coredump_task_exit(): a thread dying during a coredump checks in with the dumper. */
export function coredumpTaskExit(k: Kernel, t: Task): void {
  const cs = t.signal.coreState;
  if (!cs || cs.dumper === t) return;
  if (k.profile.vhostSignalHacks && isVhostUserWorker(k, t)) return;
  if (--cs.nrThreads === 0) complete(k, cs.startup);
}

/** sigprocmask(2) semantics: SIGKILL and SIGSTOP can never be blocked. */
export function setCurrentBlocked(k: Kernel, t: Task, set: SigSet): void {
  t.blocked = set & ~(sigmask(SIGKILL) | sigmask(SIGSTOP));
  recalcSigpending(k, t);
}

/**
 * models kernel/freezer.c freeze_task() for every task (freeze_processes()): user tasks get
 * a fake signal, kthreads a plain wake-up; PF_NOFREEZE tasks are skipped.
 */
export function freezeProcesses(k: Kernel): void {
  // kernel/power/process.c: current->flags |= PF_SUSPEND_TASK
  if (k.current) k.current.flags |= PF_SUSPEND_TASK;
  k.systemFreezing = true;
  for (const t of k.tasks.values()) {
    if (!t.alive || !freezing(k, t)) continue;
    if (!(t.flags & PF_KTHREAD)) signalWakeUp(k, t, false);
    else k.tryToWakeUp(t, TASK_NORMAL);
  }
}

/** models thaw_processes(). */
export function thawProcesses(k: Kernel): void {
  k.systemFreezing = false;
  for (const t of k.tasks.values()) t.flags = (t.flags & ~PF_SUSPEND_TASK) >>> 0;
  for (const t of k.tasks.values()) k.tryToWakeUp(t, TASK_FROZEN);
}

/** Tasks the system freezer wants frozen that are not (freeze_processes' "failed" list). */
export function unfrozenTasks(k: Kernel): Task[] {
  return [...k.tasks.values()].filter((t) => t.alive && freezing(k, t) && !frozenTasks.has(t));
}

/** models cgroup_freeze_task() over a cgroup subtree: kthreads are skipped (unsupported). */
export function cgroupFreeze(k: Kernel, tasks: Iterable<Task>, freeze: boolean): void {
  for (const t of tasks) {
    if (t.flags & PF_KTHREAD) continue;
    if (freeze) {
      t.jobctl |= JOBCTL_TRAP_FREEZE;
      signalWakeUp(k, t, false);
    } else {
      t.jobctl &= ~JOBCTL_TRAP_FREEZE;
      k.tryToWakeUp(t, TASK_INTERRUPTIBLE);
    }
  }
}
