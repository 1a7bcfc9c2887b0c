/**
 * Exit, reparenting, reaping and wait. Models kernel/exit.c do_exit(), exit_notify(),
 * forget_original_parent(), find_new_reaper(), reparent_leader(), release_task(),
 * delay_group_leader(), eligible_child(), do_wait() and kernel/pid_namespace.c
 * zap_pid_ns_processes(), v6.12.
 */
import { cgroupExit, cgroupRelease } from '../cgroup/cgroup.js';
import { decRlimitUcounts } from './cred.js';
import { Errno, err, ok, type Result } from './errno.js';
import { putFilesStruct } from './files.js';
import { FP_READ, FP_UPDATE, fpUnaudited } from './footprint.js';
import type { Kernel } from './kernel.js';
import { freePid } from './pid.js';
import { complete, type KGen, Op } from './sched.js';
import {
  __WALL,
  __WCLONE,
  __WNOTHREAD,
  EXIT_DEAD,
  EXIT_ZOMBIE,
  PF_EXITING,
  PF_NOFREEZE,
  PF_POSTCOREDUMP,
  TASK_DEAD,
  TASK_INTERRUPTIBLE,
  TASK_RUNNING,
  WCONTINUED,
  WEXITED,
  WNOHANG,
  WNOWAIT,
  WUNTRACED,
} from './sched-consts.js';
import { coredumpTaskExit, doNotifyParent, ignoringChildren, kernelSigInfo, sendSignal } from './signal.js';
import { SIGCHLD, SIGKILL } from './signal-consts.js';
import { SIGNAL_GROUP_EXIT, SIGNAL_STOP_CONTINUED, SIGNAL_STOP_STOPPED, type Task } from './task.js';
import { taskWorkRun } from './task-work.js';

/** Hooks subsystems register to run in do_exit (exit_io_uring, etc.). */
export type ExitHook = ((k: Kernel, t: Task, groupDead: boolean) => KGen<void>) & {
  /** the hook does nothing for `t` and touches nothing (the explorer's footprints, footprint.ts) */
  noopFor?: (t: Task) => boolean;
};

/**
 * The explorer's footprint of do_exit() for the exits whose path is audited (footprint.ts):
 * a thread that is not its group's leader, while the leader lives, in the initial pid
 * namespace, with no children, tracer, core dump, exec, vfork, task work or subsystem exit
 * work pending. The leader's own references then outlive the thread's: signal->live,
 * mm_users and files->count stay above zero, so no teardown runs and the thread is reaped
 * at once (exit_notify's autoreap), and every count the path changes is an update that
 * commutes with another thread's. Any other exit touches everything. Called before do_exit
 * changes anything; the leader's liveness is read, and an audited path that ends a leader
 * must write it.
 */
export function threadExitFootprint(k: Kernel, t: Task): void {
  const fp = k.fp;
  if (!fp || fp.global || !t.fpAudited) return;
  const leader = t.groupLeader;
  const sig = t.signal;
  const simple =
    leader !== t &&
    !(leader.flags & PF_EXITING) &&
    leader.exitState === 0 &&
    sig.live >= 2 &&
    sig.coreState === null &&
    sig.groupExecTask === null &&
    t.ptrace === 0 &&
    t.ptraced.size === 0 &&
    t.children.size === 0 &&
    t.vforkDone === null &&
    t.kthread === null &&
    (t.mm === null || t.mm === leader.mm) &&
    (t.files === null || t.files === leader.files) &&
    (t.taskWorks === null || t.taskWorks.length === 0) &&
    t.pidStruct !== null &&
    t.pidStruct.numbers.length === 1 &&
    t.pidStruct.numbers[0]!.ns === k.initPidNs &&
    k.exitHooks.every((h) => h.noopFor?.(t) === true);
  if (!simple) {
    fpUnaudited(k, t);
    return;
  }
  const tg = `tg:${leader.pid}`;
  fp.touch(`${tg}:leader`, FP_READ);
  // signal->live, the thread list, nr_threads, the dead threads' CPU time, curr_target
  // (cleared only if it is this thread), sighand->count
  fp.touch(`${tg}:threads`, FP_UPDATE);
  if (t.mm) fp.touch(`mm:${t.mm.id}:users`, FP_UPDATE);
  if (t.files) fp.touch(`files:${leader.pid}:count`, FP_UPDATE);
  if (t.fs) fp.touch('fs:users', FP_UPDATE);
  // release_task(): the NPROC ucounts, the pid (idr, pid_allocated: init and kthreadd keep the
  // namespace's count above the reaper-wake threshold), nr_threads, the task table, cgroups
  fp.touch('ucounts:nproc', FP_UPDATE);
  fp.touch('pidns:init', FP_UPDATE);
  fp.touch('tasks', FP_UPDATE);
  // cgroup_exit() and pids_release(): the css_set's tasks and every pids counter up the tree
  for (const c of t.cgroups)
    for (let p: typeof c | null = c; p; p = p.parent) fp.touch(`cgroup:${p.id}`, FP_UPDATE);
}

/**
 * models do_exit(code), v6.12: PF_EXITING, coredump check-in, exit_mm (mm_users--, vfork /
 * kthread `exited` completion), exit_files, exit_fs, namespaces, cgroup_exit, exit_notify,
 * then the task is dead and its coroutine is never resumed.
 */
export function* doExit(k: Kernel, code: number): KGen<never> {
  const t = k.current!;
  if (t.flags & PF_EXITING) throw new Error(`recursive do_exit in ${t}`);
  threadExitFootprint(k, t);
  // exit_signals(): PF_EXITING; shared signals are retargeted by complete_signal later
  t.flags |= PF_EXITING;
  if (k.trace.enabled) k.emit('sched_process_exit', `comm=${t.comm} pid=${t.pid} prio=120`);
  k.charge(k.profile.costs.exit);
  coredumpTaskExit(k, t);
  // coredump_task_exit(): PF_POSTCOREDUMP from v5.17 (d67e03e36161)
  if (k.profile.exitMarksPostcoredump) t.flags |= PF_POSTCOREDUMP;
  t.exitCode = code;
  // group_dead = atomic_dec_and_test(&tsk->signal->live)
  const groupDead = --t.signal.live === 0;
  for (const h of k.exitHooks) yield* h(k, t, groupDead);
  // exit_mm(): the mm reference goes; mm_release() completes vfork_done (kthread `exited` too)
  exitMm(k, t);
  if (t.vforkDone) {
    complete(k, t.vforkDone);
    t.vforkDone = null;
  }
  if (t.kthread) complete(k, t.kthread.exited);
  // exit_files(), exit_fs(): the last file reference runs release in this task
  if (t.files) {
    const files = t.files;
    t.files = null;
    yield* putFilesStruct(k, files);
  }
  if (t.fs) {
    t.fs.users--;
    t.fs = null;
  }
  // exit_task_work(): run what is queued, then refuse new works
  yield* taskWorkRun(k, true);
  // exit_task_namespaces()
  t.nsproxy = null;
  // exit_notify → forget_original_parent → find_child_reaper: a dying pid-namespace init kills
  // everything in its namespace and waits for it (zap_pid_ns_processes), after its own files
  // were released above
  const ns = t.activePidNs();
  if (groupDead && ns && ns.childReaper === t.groupLeader && ns !== k.initPidNs)
    yield* zapPidNsProcesses(k, t);
  cgroupExit(t);
  exitNotify(k, t, groupDead);
  // do_task_dead(): "Tell freezer to ignore us" — PF_NOFREEZE from v6.1 (f5d39b020809)
  if (k.profile.exitMarksPostcoredump) t.flags |= PF_NOFREEZE;
  t.state = TASK_DEAD;
  k.stats.exits++;
  yield Op.Dead;
  throw new Error('a dead task was resumed');
}

/** models exit_mm() and mmput(): drops mm_users; at zero the address space is torn down. */
export function exitMm(k: Kernel, t: Task): void {
  const mm = t.mm;
  if (!mm) return;
  t.mm = null;
  mmput(k, mm);
}

export function mmput(_k: Kernel, mm: { users: number; teardown(): void }): void {
  if (--mm.users === 0) mm.teardown();
}

/** models find_alive_thread() */
function findAliveThread(p: Task): Task | null {
  for (const t of p.signal.threads) if (!(t.flags & PF_EXITING)) return t;
  return null;
}

/**
 * models find_child_reaper() + find_new_reaper(), v6.12: a live thread of the same group,
 * else the nearest child-subreaper ancestor in the same pid namespace, else the namespace's
 * init.
 */
function findNewReaper(k: Kernel, father: Task): Task {
  const thread = findAliveThread(father);
  if (thread) return thread;
  const ns = father.activePidNs() ?? k.initPidNs;
  const childReaper = ns.childReaper ?? k.init;
  if (father.signal.hasChildSubreaper) {
    const level = father.pidStruct!.level;
    for (
      let reaper = father.realParent;
      reaper !== childReaper && reaper !== k.idle;
      reaper = reaper.realParent
    ) {
      if (reaper.pidStruct!.level !== level) break;
      if (!reaper.signal.isChildSubreaper) continue;
      const th = findAliveThread(reaper);
      if (th) return th;
    }
  }
  return childReaper;
}

/** models reparent_leader(): the new parent gets SIGCHLD semantics; a zombie child is re-notified. */
function reparentLeader(k: Kernel, p: Task, dead: Task[]): void {
  if (p.exitState === EXIT_DEAD) return;
  p.exitSignal = SIGCHLD;
  if (!p.ptrace && p.exitState === EXIT_ZOMBIE && p.threadGroupEmpty()) {
    if (doNotifyParent(k, p, p.exitSignal)) {
      p.exitState = EXIT_DEAD;
      dead.push(p);
    }
  }
}

/**
 * models exit_ptrace(tracer, dead) → __ptrace_detach(), kernel/ptrace.c v6.12: every tracee is
 * unlinked (its parent is its real parent again); a tracee that is already a zombie is
 * released when it is not a leader, or when it is a leader with no threads left whose real
 * parent is told (do_notify_parent) and auto-reaps it, or whose real parent is the tracer's
 * own thread group ignoring SIGCHLD.
 */
function exitPtrace(k: Kernel, tracer: Task, dead: Task[]): void {
  for (const p of [...tracer.ptraced]) {
    // __ptrace_unlink()
    p.ptrace = 0;
    p.parent = p.realParent;
    tracer.ptraced.delete(p);
    if (p.exitState !== EXIT_ZOMBIE) continue;
    let isDead = !p.threadGroupLeader();
    if (!isDead && p.threadGroupEmpty()) {
      isDead =
        p.realParent.signal !== tracer.signal
          ? doNotifyParent(k, p, p.exitSignal)
          : ignoringChildren(tracer.sighand);
    }
    if (isDead) {
      p.exitState = EXIT_DEAD;
      dead.push(p);
    }
  }
}

/** models forget_original_parent(): move every child to the new reaper. */
function forgetOriginalParent(k: Kernel, father: Task, dead: Task[]): void {
  if (father.ptraced.size) exitPtrace(k, father, dead);
  if (father.children.size === 0) return;
  const reaper = findNewReaper(k, father);
  for (const p of [...father.children]) {
    father.children.delete(p);
    for (const t of p.signal.threads) {
      t.realParent = reaper;
      if (!t.ptrace) t.parent = reaper;
      // group_send_sig_info(t->pdeath_signal, SEND_SIG_NOINFO, t, PIDTYPE_TGID)
      if (t.pdeathSignal)
        sendSignal(k, t.pdeathSignal, { signo: t.pdeathSignal, code: 0, pid: 0, uid: 0 }, t, true);
    }
    reaper.linkChild(p);
    if (reaper.signal !== father.signal) reparentLeader(k, p, dead);
  }
}

/**
 * models exit_notify(tsk, group_dead), v6.12: reparent children; become a zombie; a
 * non-leader thread is reaped at once; a leader notifies its parent only when it is the last
 * thread (autoreap if the parent ignores SIGCHLD). A leader whose threads remain stays a
 * zombie until the last one is released.
 */
function exitNotify(k: Kernel, t: Task, _groupDead: boolean): void {
  const dead: Task[] = [];
  forgetOriginalParent(k, t, dead);
  t.exitState = EXIT_ZOMBIE;
  let autoreap: boolean;
  if (t.ptrace) {
    const sig = t.threadGroupLeader() && t.threadGroupEmpty() ? t.exitSignal : SIGCHLD;
    autoreap = doNotifyParent(k, t, sig);
  } else if (t.threadGroupLeader()) {
    autoreap = t.threadGroupEmpty() && doNotifyParent(k, t, t.exitSignal);
  } else {
    autoreap = true;
  }
  if (autoreap) {
    t.exitState = EXIT_DEAD;
    dead.push(t);
  }
  // de_thread() waits for the other threads: wake the exec'ing thread
  const sig = t.signal;
  if (sig.groupExecTask && sig.notifyCount < 0) k.tryToWakeUp(sig.groupExecTask);
  else if (sig.groupExecTask && sig.notifyCount > 0 && --sig.notifyCount === 0)
    k.tryToWakeUp(sig.groupExecTask);
  for (const d of dead) releaseTask(k, d);
}

/**
 * models release_task(p), v6.12: dec the NPROC ucount, unhash (free pid numbers,
 * nr_threads--, leave the thread list), uncharge cgroups, and reap a zombie leader that was
 * only waiting for this last thread.
 */
export function releaseTask(k: Kernel, p: Task): void {
  for (;;) {
    decRlimitUcounts(k, p.cred.ucounts, 1);
    if (k.trace.enabled) k.emit('sched_process_free', `comm=${p.comm} pid=${p.pid} prio=120`);
    k.charge(k.profile.costs.release);
    // __exit_signal / __unhash_process
    const sig = p.signal;
    const i = sig.threads.indexOf(p);
    if (i >= 0) sig.threads.splice(i, 1);
    sig.nrThreads--;
    sig.deadSumExecNs += p.sumExecNs;
    if (sig.currTarget === p) sig.currTarget = null;
    if (p.threadGroupLeader()) p.realParent.children.delete(p);
    if (p.ptrace) p.parent.ptraced.delete(p);
    p.sighand.count--;
    k.tasks.delete(p.pid);
    k.nrThreads--;
    for (const r of freePid(p.pidStruct!)) k.tryToWakeUp(r, TASK_INTERRUPTIBLE);
    cgroupRelease(p);
    p.exitState = EXIT_DEAD;
    // a zombie leader waiting for its last thread
    const leader = p.groupLeader;
    if (leader !== p && leader.threadGroupEmpty() && leader.exitState === EXIT_ZOMBIE) {
      if (doNotifyParent(k, leader, leader.exitSignal)) {
        leader.exitState = EXIT_DEAD;
        p = leader;
        continue;
      }
    }
    return;
  }
}

/** models delay_group_leader(): a zombie leader with live threads cannot be reaped yet. */
function delayGroupLeader(p: Task): boolean {
  return p.threadGroupLeader() && !p.threadGroupEmpty();
}

/**
 * models eligible_child(): with __WALL every child; otherwise "clone" children (exit_signal
 * other than SIGCHLD) only with __WCLONE and normal children only without it.
 */
function eligibleChild(p: Task, options: number, ptraced: boolean): boolean {
  if (ptraced || options & __WALL) return true;
  if ((p.exitSignal !== SIGCHLD) !== ((options & __WCLONE) !== 0)) return false;
  return true;
}

/** The selector of wait4/waitid: -1 any, >0 a pid, 0 or < -1 a process group (treated as any). */
export interface WaitResult {
  pid: number;
  /** wait4 status word */
  status: number;
}

/**
 * models do_wait(), v6.12: examine the children (of every thread unless __WNOTHREAD),
 * reap a zombie, report a stop (WUNTRACED) or continue (WCONTINUED); ECHILD when nothing
 * is eligible; WNOHANG returns pid 0; otherwise sleep interruptibly on wait_chldexit.
 */
export function* doWait(k: Kernel, pidSel: number, options: number): KGen<Result<WaitResult>> {
  const cur = k.current!;
  if (
    (options & ~(WNOHANG | WUNTRACED | WCONTINUED | WEXITED | WNOWAIT | __WNOTHREAD | __WALL | __WCLONE)) >>>
    0
  )
    return err(Errno.EINVAL);
  const exited = (options & WEXITED) !== 0;
  for (;;) {
    let anyEligible = false;
    const groups = options & __WNOTHREAD ? [cur] : cur.signal.threads;
    for (const th of groups) {
      for (const set of [th.children, th.ptraced]) {
        const ptraced = set === th.ptraced;
        for (const p of set) {
          if (pidSel > 0 && p.pidIn(cur.activePidNs()!) !== pidSel) continue;
          if (!eligibleChild(p, options, ptraced)) continue;
          if (p.exitState === EXIT_DEAD) continue;
          anyEligible = true;
          if (p.exitState === EXIT_ZOMBIE && exited && !delayGroupLeader(p)) {
            const status =
              p.signal.flags & SIGNAL_GROUP_EXIT ? p.signal.groupExitCode : (p.exitCode & 0xff) << 8;
            const nr = p.pidIn(cur.activePidNs()!);
            if (k.trace.enabled) k.emit('sched_process_wait', `comm=${cur.comm} pid=${nr} prio=120`);
            if (!(options & WNOWAIT)) {
              p.exitState = EXIT_DEAD;
              releaseTask(k, p);
            }
            return ok({ pid: nr, status });
          }
          if (
            options & WUNTRACED &&
            p.signal.flags & SIGNAL_STOP_STOPPED &&
            p.signal.groupExitCode &&
            !p.exitState
          ) {
            const status = (p.signal.groupExitCode << 8) | 0x7f;
            if (!(options & WNOWAIT)) p.signal.groupExitCode = 0;
            return ok({ pid: p.pidIn(cur.activePidNs()!), status });
          }
          if (options & WCONTINUED && p.signal.flags & SIGNAL_STOP_CONTINUED && !p.exitState) {
            if (!(options & WNOWAIT)) p.signal.flags &= ~SIGNAL_STOP_CONTINUED;
            return ok({ pid: p.pidIn(cur.activePidNs()!), status: 0xffff });
          }
        }
      }
    }
    if (!anyEligible) return err(Errno.ECHILD);
    if (options & WNOHANG) return ok({ pid: 0, status: 0 });
    // sleep on wait_chldexit until a child changes state (__wake_up_parent) or a signal arrives
    const wq = cur.signal.wqChldexit;
    if (cur.sigpending) return err(Errno.ERESTARTSYS);
    wq.waiters.add(cur);
    cur.waitingOn = wq;
    cur.state = TASK_INTERRUPTIBLE;
    yield Op.Schedule;
    wq.waiters.delete(cur);
    cur.waitingOn = null;
    cur.state = TASK_RUNNING;
  }
}

/**
 * models zap_pid_ns_processes(), v6.12: the namespace stops adding tasks, every task in it
 * gets SIGKILL, and init reaps until only itself is left.
 */
function* zapPidNsProcesses(k: Kernel, init: Task): KGen<void> {
  const ns = init.activePidNs()!;
  ns.disableAllocation();
  for (const pid of ns.idr.values()) {
    const t = pid ? k.tasks.get(pid.nr) : undefined;
    if (t && t.signal !== init.signal && t.alive)
      sendSignal(k, SIGKILL, kernelSigInfo(SIGKILL), t, true, true);
  }
  for (;;) {
    const r = yield* doWait(k, -1, __WALL | WEXITED);
    if (!r.ok) break;
  }
  // wait until only the init's own numbers remain
  while (ns.nrAllocated > init.signal.threads.length) {
    init.state = TASK_INTERRUPTIBLE;
    if (ns.nrAllocated <= init.signal.threads.length) break;
    yield Op.Schedule;
  }
  init.state = TASK_RUNNING;
}
