/**
 * The user-program side: each user task runs a Program (a coroutine) that calls syscalls
 * through a Sys object with `yield*`. Every syscall charges its cost, runs the modelled
 * kernel path, then returns to user mode, where pending signals are delivered (get_signal;
 * a fatal one ends the group, a caught one is recorded as a handler invocation) and
 * interrupted syscalls are restarted or fail with EINTR like arch/x86 handle_signal().
 * Models the syscall entry points of kernel/fork.c, kernel/exit.c, kernel/signal.c,
 * kernel/sys.c, kernel/nsproxy.c, fs/exec.c, kernel/ptrace.c, fs/eventfd.c, v6.12.
 */

import { type Cgroup, cgroupMigrate } from '../cgroup/cgroup.js';
import { getU64, putU64 } from './bytes.js';
import {
  CAP_FULL_SET,
  CAP_SETPCAP,
  CAP_SETUID,
  CAP_SYS_NICE,
  CAP_SYS_PTRACE,
  CAP_SYS_RESOURCE,
  type CapSet,
  type Cred,
  capable,
  capEmulateSetxuid,
  credCapable,
  decRlimitUcounts,
  incRlimitUcounts,
  isRlimitOverlimit,
  UserNamespace,
} from './cred.js';
import { Errno, err, ok, type Result } from './errno.js';
import { doExit, doWait, mmput, releaseTask, type WaitResult } from './exit.js';
import { File, type FileOps, fput, O_CLOEXEC, O_NONBLOCK } from './files.js';
import { FP_UPDATE, FP_WRITE, fpGlobal, fpTouch, fpUnaudited, isAudited, newObjectId } from './footprint.js';
import {
  type Clone3Args,
  clone3ArgsValid,
  copyProcess,
  createNewNamespaces,
  type KernelCloneArgs,
  kernelClone,
} from './fork.js';
import type { Kernel } from './kernel.js';
import { MM } from './mm.js';
import { createPipeFiles } from './pipe.js';
import { RLIMIT_NOFILE, RLIMIT_NPROC, type Rlimit } from './rlimit.js';
import { complete, type KGen, Op, signalPendingState, sleepFor, WaitQueue, waitEvent } from './sched.js';
import {
  CLONE_FILES,
  CLONE_FS,
  CLONE_INTO_CGROUP,
  CLONE_NEW_MASK,
  CLONE_NEWTIME,
  CLONE_NEWUSER,
  CLONE_SIGHAND,
  CLONE_SYSVSEM,
  CLONE_THREAD,
  CLONE_VFORK,
  CLONE_VM,
  CSIGNAL,
  hasFlag,
  PF_FORKNOEXEC,
  PF_KTHREAD,
  PF_NO_SETAFFINITY,
  PF_NPROC_EXCEEDED,
  TASK_INTERRUPTIBLE,
  TASK_RUNNING,
  WEXITED,
} from './sched-consts.js';
import { O_CREAT, shmemCreate } from './shmem.js';
import {
  doGroupExit,
  getSignal,
  recalcSigpending,
  sendSignalFromUser,
  setCurrentBlocked,
  zapOtherThreads,
} from './signal.js';
import {
  SA_RESTART,
  SIG_BLOCK,
  SIG_DFL,
  SIG_IGN,
  SIG_SETMASK,
  SIG_UNBLOCK,
  SIGCHLD,
  SIGKILL,
  SIGSTOP,
  type SigSet,
  sigmask,
} from './signal-consts.js';
import { Slot } from './slot.js';
import {
  DEFAULT_SIGACTION,
  PT_PTRACED,
  PT_SEIZED,
  SI_TKILL,
  type SigAction,
  Sighand,
  type Task,
  type TaskBody,
} from './task.js';

/** A user program: the body of a user task. */
export type Program = (sys: Sys) => KGen<number | undefined>;

/** Wrap a Program as a task body. */
export function programBody(prog: Program): TaskBody {
  return (t) => prog(new Sys(t));
}

/** An ignored action as flush_signal_handlers() leaves it: SIG_IGN with no flags or mask. */
const IGNORED_SIGACTION: SigAction = Object.freeze({ handler: SIG_IGN, flags: 0, mask: 0n });

/** Records of what user-mode signal handlers ran, per task (model observation). */
export const caughtSignals = new WeakMap<Task, number[]>();

// ptrace requests and options (include/uapi/linux/ptrace.h)
export const PTRACE_ATTACH = 16;
export const PTRACE_DETACH = 17;
export const PTRACE_SEIZE = 0x4206;
export const PTRACE_O_TRACEFORK = 2;
export const PTRACE_O_TRACEVFORK = 4;
export const PTRACE_O_TRACECLONE = 8;
// prctl
export const PR_SET_PDEATHSIG = 1;
export const PR_SET_CHILD_SUBREAPER = 36;
export const PR_SET_NAME = 15;
// eventfd
export const EFD_SEMAPHORE = 1;

/** Devices and files a path can open: the kernel's registry of char devices. */
export type OpenFn = (k: Kernel, path: string, flags: number) => KGen<Result<File>>;

export class Sys {
  readonly k: Kernel;
  constructor(readonly task: Task) {
    this.k = task.kernel;
  }

  /** Syscall entry/exit: cost, body, return to user mode with signal delivery and restart. */
  private *syscall<A extends unknown[], T>(
    body: (this: Sys, ...a: A) => KGen<Result<T>>,
    args: A,
  ): KGen<Result<T>> {
    const k = this.k;
    for (;;) {
      k.charge(k.profile.costs.syscall);
      const r = yield* body.apply(this, args);
      const restart =
        !r.ok &&
        (r.errno === Errno.ERESTARTSYS ||
          r.errno === Errno.ERESTARTNOINTR ||
          r.errno === Errno.ERESTARTNOHAND);
      const handled = yield* this.exitToUserMode();
      if (restart) {
        // arch/x86/kernel/signal.c handle_signal(): restart codes after a handler ran
        if (handled.length > 0 && r.errno === Errno.ERESTARTNOHAND) return err(Errno.EINTR);
        if (handled.length > 0 && r.errno === Errno.ERESTARTSYS) {
          const act = this.task.sighand.action[handled[0]!] ?? DEFAULT_SIGACTION;
          if (!(act.flags & SA_RESTART)) return err(Errno.EINTR);
        }
        continue;
      }
      this.task.at = 'the return to user mode';
      yield Op.Preempt;
      return r;
    }
  }

  /** models exit_to_user_mode_loop() → arch_do_signal_or_restart(): deliver pending signals. */
  *exitToUserMode(): KGen<number[]> {
    const t = this.task;
    const handled: number[] = [];
    // signal delivery (and the freezer, through it) is not audited (footprint.ts)
    if (t.sigpending || t.notifySignal) fpUnaudited(this.k, t);
    while (t.sigpending || t.notifySignal) {
      t.notifySignal = false;
      const ks = yield* getSignal(this.k);
      if (!ks.sig) break;
      handled.push(ks.sig);
      let log = caughtSignals.get(t);
      if (!log) caughtSignals.set(t, (log = []));
      log.push(ks.sig);
    }
    return handled;
  }

  /** A syscall of another subsystem (io_uring, ...): entry/exit, signal delivery and restart as for every syscall. */
  *invoke<T>(body: () => KGen<Result<T>>): KGen<Result<T>> {
    return yield* this.syscall(body, []);
  }

  /** User-mode computation for `ns`: charged as user time; signals are delivered at its end. */
  *compute(ns: number): KGen<void> {
    const k = this.k;
    const slice = 1_000_000;
    for (let left = ns; left > 0; left -= slice) {
      k.charge(Math.min(slice, left), true);
      this.task.at = 'user mode';
      yield Op.Preempt;
      yield* this.exitToUserMode();
    }
  }

  getpid(): number {
    return this.task.tgidIn(this.task.activePidNs()!);
  }
  gettid(): number {
    return this.task.pidIn(this.task.activePidNs()!);
  }
  getppid(): number {
    return this.task.realParent.tgidIn(this.task.activePidNs()!);
  }

  /** clone(2): legacy flags word (low 8 bits: exit signal); the child runs `child`. */
  *clone(flags: number, child: Program, extra: Partial<KernelCloneArgs> = {}): KGen<Result<number>> {
    return yield* this.syscall(
      () =>
        kernelClone(this.k, {
          ...extra,
          flags: (flags & ~CSIGNAL) >>> 0,
          exitSignal: flags & CSIGNAL,
          fn: programBody(child),
        }),
      [],
    );
  }

  /** clone3(2) */
  *clone3(args: Clone3Args, child: Program, into?: Cgroup): KGen<Result<number>> {
    return yield* this.syscall(this.clone3Body, [args, child, into]);
  }
  private *clone3Body(args: Clone3Args, child: Program, into?: Cgroup): KGen<Result<number>> {
    const v = clone3ArgsValid(args);
    if (!v.ok) return v;
    if (hasFlag(args.flags, CLONE_INTO_CGROUP) && !into) return err(Errno.EBADF);
    const ka: KernelCloneArgs = {
      flags: args.flags,
      exitSignal: args.exitSignal,
      fn: programBody(child),
      cgroup: into ?? null,
    };
    if (args.setTid) ka.setTid = args.setTid;
    if (args.pidfd !== undefined) ka.pidfd = args.pidfd;
    if (args.parentTid !== undefined) ka.parentTid = args.parentTid;
    return yield* kernelClone(this.k, ka);
  }

  /** fork(2) */
  *fork(child: Program): KGen<Result<number>> {
    return yield* this.clone(SIGCHLD, child);
  }

  /** vfork(2): the parent sleeps until the child execs or exits. */
  *vfork(child: Program): KGen<Result<number>> {
    return yield* this.clone(CLONE_VFORK | CLONE_VM | SIGCHLD, child);
  }

  /** pthread_create(): CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID. */
  *pthreadCreate(child: Program, name?: string): KGen<Result<number>> {
    const flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
    const r = yield* this.clone(flags, child);
    if (r.ok && name) {
      const t = this.k.findTaskByVpid(r.value, this.task.activePidNs()!);
      if (t) setTaskComm(this.k, t, name);
    }
    return r;
  }

  /**
   * exit(2): this thread only. The kernel passes (code & 0xff) << 8 to do_exit(); in this
   * model do_wait() builds that status from exit_code itself (as it does for a program that
   * returns, taskEntry), so the byte is passed.
   */
  *exit(code: number): KGen<never> {
    this.k.charge(this.k.profile.costs.syscall);
    return yield* doExit(this.k, code & 0xff);
  }

  /** exit_group(2) */
  *exitGroup(code: number): KGen<never> {
    this.k.charge(this.k.profile.costs.syscall);
    return yield* doGroupExit(this.k, (code & 0xff) << 8);
  }

  /** wait4(2): WEXITED implied. */
  *wait4(pid: number, options = 0): KGen<Result<WaitResult>> {
    return yield* this.syscall(() => doWait(this.k, pid, options | WEXITED), []);
  }

  /** waitid(2)-style: options as given (WEXITED/WSTOPPED/WCONTINUED explicit). */
  *waitid(pid: number, options: number): KGen<Result<WaitResult>> {
    if (!(options & (WEXITED | 2 | 8))) return err(Errno.EINVAL);
    return yield* this.syscall(() => doWait(this.k, pid, options), []);
  }

  /** kill(2): process-directed. pid -1 = every process the caller may signal except init and itself. */
  *kill(pid: number, sig: number): KGen<Result<void>> {
    return yield* this.syscall(this.killBody, [pid, sig]);
  }
  private *killBody(pid: number, sig: number): KGen<Result<void>> {
    if (sig < 0 || sig > 64) return err(Errno.EINVAL);
    const ns = this.task.activePidNs()!;
    if (pid > 0) {
      // kill_pid_info(): any task still hashed — an unreaped zombie leader keeps its pid and
      // sighand while other threads live, so the signal reaches the group (conformance host)
      const t = this.k.findTaskByVpid(pid, ns);
      if (!t) return err(Errno.ESRCH);
      return sendSignalFromUser(this.k, this.task, sig, t.groupLeader, true);
    }
    if (pid === -1) {
      // kernel/signal.c kill_something_info(), v6.12: every process whose pid in the caller's
      // namespace is > 1 (so that namespace's init is skipped, and tasks it cannot see) and
      // that is not the caller's thread group; EPERM from one target is not reported, and
      // ESRCH only when there was no target at all
      let count = 0;
      let retval: Result<void> = ok();
      for (const t of this.k.liveTasks()) {
        if (!t.threadGroupLeader() || t.pidIn(ns) <= 1 || t.signal === this.task.signal) continue;
        const r = sendSignalFromUser(this.k, this.task, sig, t, true);
        count++;
        if (r.ok || r.errno !== Errno.EPERM) retval = r;
      }
      return count ? retval : err(Errno.ESRCH);
    }
    return err(Errno.ESRCH);
  }

  /** tgkill(2): thread-directed. */
  *tgkill(tgid: number, tid: number, sig: number): KGen<Result<void>> {
    return yield* this.syscall(this.tgkillBody, [tgid, tid, sig]);
  }
  private *tgkillBody(tgid: number, tid: number, sig: number): KGen<Result<void>> {
    if (tgid <= 0 || tid <= 0 || sig < 0 || sig > 64) return err(Errno.EINVAL);
    const t = this.k.findTaskByVpid(tid, this.task.activePidNs()!);
    if (!t || t.tgidIn(this.task.activePidNs()!) !== tgid) return err(Errno.ESRCH);
    return sendSignalFromUser(this.k, this.task, sig, t, false, SI_TKILL);
  }

  /** rt_sigaction(2): SIGKILL/SIGSTOP → EINVAL. Returns the old action. */
  *rtSigaction(sig: number, act: Partial<SigAction> | null): KGen<Result<SigAction>> {
    return yield* this.syscall(this.rtSigactionBody, [sig, act]);
  }
  private *rtSigactionBody(sig: number, act: Partial<SigAction> | null): KGen<Result<SigAction>> {
    if (sig < 1 || sig > 64 || (act && (sig === SIGKILL || sig === SIGSTOP))) return err(Errno.EINVAL);
    const sh = this.task.sighand;
    const old = sh.action[sig] ?? DEFAULT_SIGACTION;
    if (act) {
      const nw: SigAction = {
        handler: act.handler ?? SIG_DFL,
        flags: act.flags ?? 0,
        mask: act.mask ?? 0n,
      };
      sh.action[sig] = nw;
      // POSIX: setting SIG_IGN (or SIG_DFL for a default-ignored signal) discards pending ones
      if (nw.handler === SIG_IGN || (nw.handler === SIG_DFL && [SIGCHLD, 18, 23, 28].includes(sig))) {
        const m = sigmask(sig);
        for (const t of this.task.signal.threads) {
          t.pending.signal &= ~m;
          t.pending.list = t.pending.list.filter((i) => i.signo !== sig);
        }
        this.task.signal.sharedPending.signal &= ~m;
        this.task.signal.sharedPending.list = this.task.signal.sharedPending.list.filter(
          (i) => i.signo !== sig,
        );
      }
    }
    return ok(old);
  }

  /** rt_sigprocmask(2) */
  *rtSigprocmask(how: number, set: SigSet | null): KGen<Result<SigSet>> {
    return yield* this.syscall(this.rtSigprocmaskBody, [how, set]);
  }
  private *rtSigprocmaskBody(how: number, set: SigSet | null): KGen<Result<SigSet>> {
    const t = this.task;
    const old = t.blocked;
    if (set !== null) {
      if (how === SIG_BLOCK) setCurrentBlocked(this.k, t, old | set);
      else if (how === SIG_UNBLOCK) setCurrentBlocked(this.k, t, old & ~set);
      else if (how === SIG_SETMASK) setCurrentBlocked(this.k, t, set);
      else return err(Errno.EINVAL);
    }
    return ok(old);
  }

  /** setrlimit(2) on the caller. */
  *setrlimit(resource: number, lim: Rlimit): KGen<Result<void>> {
    return yield* this.prlimit(0, resource, lim);
  }

  /**
   * prlimit64(2), models do_prlimit() and check_prlimit_permission(), v6.12: EINVAL for
   * cur > max or a bad resource; raising max needs CAP_SYS_RESOURCE (EPERM); another
   * process needs matching uids/gids or CAP_SYS_RESOURCE (EPERM); ESRCH if absent.
   */
  *prlimit(pid: number, resource: number, lim: Rlimit | null): KGen<Result<void>> {
    return yield* this.syscall(this.prlimitBody, [pid, resource, lim]);
  }
  private *prlimitBody(pid: number, resource: number, lim: Rlimit | null): KGen<Result<void>> {
    if (resource < 0 || resource >= 16) return err(Errno.EINVAL);
    const k = this.k;
    const t = pid === 0 ? this.task : k.findTaskByVpid(pid, this.task.activePidNs()!);
    if (!t?.alive) return err(Errno.ESRCH);
    const c = this.task.cred;
    if (t.signal !== this.task.signal) {
      const tc = t.cred;
      const same =
        c.uid === tc.euid &&
        c.uid === tc.suid &&
        c.uid === tc.uid &&
        c.gid === tc.egid &&
        c.gid === tc.sgid &&
        c.gid === tc.gid;
      if (!same && !credCapable(c, tc.userNs, CAP_SYS_RESOURCE)) return err(Errno.EPERM);
    }
    if (!lim) return ok();
    if (lim.cur > lim.max) return err(Errno.EINVAL);
    const old = t.signal.rlim[resource]!;
    if (lim.max > old.max && !capable(k, c, CAP_SYS_RESOURCE)) return err(Errno.EPERM);
    if (resource === RLIMIT_NOFILE && lim.max > 1048576) return err(Errno.EPERM);
    t.signal.rlim[resource] = { cur: lim.cur, max: lim.max };
    return ok();
  }

  /** setresuid(2) on this thread (glibc broadcasts to all threads; the raw syscall does not). -1 keeps a value. */
  *setresuid(ruid: number, euid: number, suid: number): KGen<Result<void>> {
    return yield* this.syscall(this.setresuidBody, [ruid, euid, suid]);
  }
  private *setresuidBody(ruid: number, euid: number, suid: number): KGen<Result<void>> {
    const old = this.task.cred;
    const allowed = [old.uid, old.euid, old.suid];
    const priv = credCapable(old, old.userNs, CAP_SETUID);
    for (const v of [ruid, euid, suid])
      if (v !== -1 && !priv && !allowed.includes(v)) return err(Errno.EPERM);
    const nu = ruid === -1 ? old.uid : ruid;
    const ne = euid === -1 ? old.euid : euid;
    let nc: Cred = { ...old, uid: nu, euid: ne, suid: suid === -1 ? old.suid : suid, fsuid: ne };
    if (nu !== old.uid) nc = { ...nc, ucounts: this.k.ucounts.get(old.userNs, nu) };
    nc = capEmulateSetxuid(nc, old);
    // flag_nproc_exceeded(): runs before commit_creds(), so the new uid's count does not yet
    // include this task; the failure is deferred to execve
    if (nu !== old.uid) {
      const over = isRlimitOverlimit(this.k, nc.ucounts, this.task.signal.rlim[RLIMIT_NPROC]!.cur);
      if (over && !(nu === 0 && nc.userNs === this.k.initUserNs)) this.task.flags |= PF_NPROC_EXCEEDED;
      else this.task.flags &= ~PF_NPROC_EXCEEDED;
    }
    commitCreds(this.k, this.task, nc);
    return ok();
  }

  /**
   * capset(2) on the caller, models security/commoncap.c cap_capset(), v6.12: inheritable ⊆
   * old inheritable | old permitted unless CAP_SETPCAP (cap_inh_is_capped), inheritable ⊆ old
   * inheritable | bounding set, permitted ⊆ old permitted, effective ⊆ new permitted; all EPERM.
   * Ambient bits no longer both permitted and inheritable are dropped.
   */
  *capset(effective: CapSet, permitted: CapSet, inheritable: CapSet): KGen<Result<void>> {
    return yield* this.syscall(this.capsetBody, [effective, permitted, inheritable]);
  }
  private *capsetBody(effective: CapSet, permitted: CapSet, inheritable: CapSet): KGen<Result<void>> {
    const old = this.task.cred;
    const inhCapped = !credCapable(old, old.userNs, CAP_SETPCAP);
    if (inhCapped && (inheritable & ~(old.capInheritable | old.capPermitted)) !== 0n) return err(Errno.EPERM);
    if ((inheritable & ~(old.capInheritable | old.capBset)) !== 0n) return err(Errno.EPERM);
    if ((permitted & ~old.capPermitted) !== 0n) return err(Errno.EPERM);
    if ((effective & ~permitted) !== 0n) return err(Errno.EPERM);
    commitCreds(this.k, this.task, {
      ...old,
      capEffective: effective,
      capPermitted: permitted,
      capInheritable: inheritable,
      capAmbient: old.capAmbient & permitted & inheritable,
    });
    return ok();
  }

  /** prctl(2): PR_SET_CHILD_SUBREAPER, PR_SET_PDEATHSIG, PR_SET_NAME. */
  *prctl(option: number, arg: number | string): KGen<Result<void>> {
    return yield* this.syscall(this.prctlBody, [option, arg]);
  }
  private *prctlBody(option: number, arg: number | string): KGen<Result<void>> {
    const t = this.task;
    if (option === PR_SET_CHILD_SUBREAPER) {
      t.signal.isChildSubreaper = !!arg;
      // kernel/sys.c: walk_process_tree(me, propagate_has_child_subreaper): every descendant
      if (arg) {
        const walk = (p: Task): void => {
          for (const th of p.signal.threads)
            for (const c of th.children) {
              if (c.signal.hasChildSubreaper) continue;
              c.signal.hasChildSubreaper = true;
              walk(c);
            }
        };
        walk(t);
      }
      return ok();
    }
    if (option === PR_SET_PDEATHSIG) {
      // kernel/sys.c prctl(): !valid_signal(arg2) → EINVAL (0 clears it)
      const sig = Number(arg);
      if (!Number.isInteger(sig) || sig < 0 || sig > 64) return err(Errno.EINVAL);
      t.pdeathSignal = sig;
      return ok();
    }
    if (option === PR_SET_NAME) {
      setTaskComm(this.k, t, String(arg));
      return ok();
    }
    return err(Errno.EINVAL);
  }

  /**
   * unshare(2), models ksys_unshare(), v6.12: CLONE_NEWUSER implies CLONE_THREAD|CLONE_FS, and
   * CLONE_THREAD/SIGHAND/VM need a single-threaded caller (EINVAL); new namespaces need
   * CAP_SYS_ADMIN in the (new) user ns (EPERM). CLONE_NEWPID changes only pid_ns_for_children.
   */
  *unshare(flagsIn: number): KGen<Result<void>> {
    return yield* this.syscall(this.unshareBody, [flagsIn]);
  }
  private *unshareBody(flagsIn: number): KGen<Result<void>> {
    const k = this.k;
    const t = this.task;
    let flags = flagsIn;
    const allowed =
      CLONE_THREAD |
      CLONE_FS |
      CLONE_NEW_MASK |
      CLONE_FILES |
      CLONE_SIGHAND |
      CLONE_VM |
      CLONE_SYSVSEM |
      CLONE_NEWTIME;
    if ((flags & ~allowed) >>> 0) return err(Errno.EINVAL);
    if (flags & CLONE_NEWUSER) flags |= CLONE_THREAD | CLONE_FS;
    if (flags & (CLONE_THREAD | CLONE_SIGHAND | CLONE_VM) && !t.threadGroupEmpty()) return err(Errno.EINVAL);
    let cred = t.cred;
    if (flags & CLONE_NEWUSER) {
      if (t.fs && t.fs.users > 1) return err(Errno.EINVAL);
      const uns = new UserNamespace(k.nextNsInum(), cred.userNs, cred.euid, t.signal.rlim[RLIMIT_NPROC]!.cur);
      cred = {
        ...cred,
        userNs: uns,
        ucounts: k.ucounts.get(uns, cred.uid),
        capPermitted: CAP_FULL_SET,
        capEffective: CAP_FULL_SET,
      };
    }
    const nsFlags = (flags & (CLONE_NEW_MASK & ~CLONE_NEWUSER)) | (flags & CLONE_NEWTIME);
    if (nsFlags) {
      const r = createNewNamespaces(k, cred, t.nsproxy!, nsFlags);
      if (!r.ok) return r;
      if (cred !== t.cred) commitCreds(k, t, cred);
      t.nsproxy = r.value;
    } else if (cred !== t.cred) commitCreds(k, t, cred);
    return ok();
  }

  /**
   * sched_setaffinity(2): PF_NO_SETAFFINITY → EINVAL; another user's task without
   * CAP_SYS_NICE → EPERM; the mask is limited to the cpuset's cpus; empty → EINVAL.
   */
  *schedSetaffinity(pid: number, mask: number): KGen<Result<void>> {
    return yield* this.syscall(this.schedSetaffinityBody, [pid, mask]);
  }
  private *schedSetaffinityBody(pid: number, mask: number): KGen<Result<void>> {
    const k = this.k;
    const t = pid === 0 ? this.task : k.findTaskByVpid(pid, this.task.activePidNs()!);
    if (!t?.alive) return err(Errno.ESRCH);
    if (t.flags & PF_NO_SETAFFINITY) return err(Errno.EINVAL);
    const c = this.task.cred;
    if (c.euid !== t.cred.euid && c.euid !== t.cred.uid && !credCapable(c, t.cred.userNs, CAP_SYS_NICE))
      return err(Errno.EPERM);
    const allowed = mask & t.cgroups[0]!.effectiveCpus(k);
    if (!allowed) return err(Errno.EINVAL);
    t.cpusAllowed = allowed;
    return ok();
  }

  /** openat(2) of a device or file registered with the kernel; O_CREAT creates a tmpfs file (shmem.ts). */
  *open(path: string, flags = 0): KGen<Result<number>> {
    return yield* this.syscall(this.openBody, [path, flags]);
  }
  private *openBody(path: string, flags: number): KGen<Result<number>> {
    const k = this.k;
    let opener = k.devices.get(path);
    if (!opener && flags & O_CREAT && shmemCreate(k, path)) opener = k.devices.get(path);
    if (!opener) return err(Errno.ENOENT);
    const r = yield* opener(k, path, flags);
    if (!r.ok) return r;
    const files = this.task.files!;
    const fd = files.install(r.value, (flags & O_CLOEXEC) !== 0, this.task.signal.rlim[RLIMIT_NOFILE]!.cur);
    if (!fd.ok) yield* fput(k, r.value);
    return fd;
  }

  /** close(2): the last reference runs release in this task. */
  *close(fd: number): KGen<Result<void>> {
    return yield* this.syscall(this.closeBody, [fd]);
  }
  private *closeBody(fd: number): KGen<Result<void>> {
    const f = this.task.files?.remove(fd);
    if (!f) return err(Errno.EBADF);
    yield* fput(this.k, f);
    return ok();
  }

  /** dup(2) */
  *dup(fd: number): KGen<Result<number>> {
    return yield* this.syscall(this.dupBody, [fd]);
  }
  private *dupBody(fd: number): KGen<Result<number>> {
    const files = this.task.files!;
    const f = files.get(fd);
    if (!f) return err(Errno.EBADF);
    f.count++;
    const r = files.install(f, false, this.task.signal.rlim[RLIMIT_NOFILE]!.cur);
    if (!r.ok) f.count--;
    return r;
  }

  /** eventfd2(2) */
  *eventfd(initval: number, flags = 0): KGen<Result<number>> {
    return yield* this.syscall(this.eventfdBody, [initval, flags]);
  }
  private *eventfdBody(initval: number, flags: number): KGen<Result<number>> {
    const f = new File(EVENTFD_OPS, 'anon_inode:[eventfd]', flags, new Eventfd(BigInt(initval), flags));
    return this.task.files!.install(f, (flags & O_CLOEXEC) !== 0, this.task.signal.rlim[RLIMIT_NOFILE]!.cur);
  }

  /** pipe2(2): [read end, write end] */
  *pipe(flags = 0): KGen<Result<[number, number]>> {
    return yield* this.syscall(this.pipeBody, [flags]);
  }
  private *pipeBody(flags: number): KGen<Result<[number, number]>> {
    const [r, w] = createPipeFiles(flags);
    const files = this.task.files!;
    const limit = this.task.signal.rlim[RLIMIT_NOFILE]!.cur;
    const rfd = files.install(r, (flags & O_CLOEXEC) !== 0, limit);
    if (!rfd.ok) return rfd;
    const wfd = files.install(w, (flags & O_CLOEXEC) !== 0, limit);
    if (!wfd.ok) {
      files.remove(rfd.value);
      return wfd;
    }
    return ok([rfd.value, wfd.value]);
  }

  /** read(2) */
  *read(fd: number, len: number): KGen<Result<Uint8Array>> {
    return yield* this.syscall(this.readBody, [fd, len]);
  }
  private *readBody(fd: number, len: number): KGen<Result<Uint8Array>> {
    const f = this.task.files?.get(fd);
    if (!f) return err(Errno.EBADF);
    if (!f.ops.read) return err(Errno.EINVAL);
    return yield* f.ops.read(this.k, f, len);
  }

  /** write(2) */
  *write(fd: number, data: Uint8Array): KGen<Result<number>> {
    return yield* this.syscall(this.writeBody, [fd, data]);
  }
  private *writeBody(fd: number, data: Uint8Array): KGen<Result<number>> {
    const f = this.task.files?.get(fd);
    if (!f) return err(Errno.EBADF);
    // of the write paths, the explorer's footprints (footprint.ts) audit eventfd's alone
    if (f.ops !== EVENTFD_OPS) fpUnaudited(this.k, this.task);
    if (!f.ops.write) return err(Errno.EINVAL);
    return yield* f.ops.write(this.k, f, data);
  }

  /** ioctl(2): ENOTTY when the file has no ioctl. */
  *ioctl(fd: number, cmd: number, arg = 0): KGen<Result<number>> {
    return yield* this.syscall(this.ioctlBody, [fd, cmd, arg]);
  }
  private *ioctlBody(fd: number, cmd: number, arg: number): KGen<Result<number>> {
    const f = this.task.files?.get(fd);
    if (!f) return err(Errno.EBADF);
    if (!f.ops.ioctl) return err(Errno.ENOTTY);
    const r = yield* f.ops.ioctl(this.k, f, cmd >>> 0, arg);
    return !r.ok && r.errno === Errno.ENOIOCTLCMD ? err(Errno.ENOTTY) : r;
  }

  /** mmap(2) of anonymous memory in the caller's address space. */
  *mmap(len: number, addr?: number): KGen<Result<number>> {
    return yield* this.syscall(this.mmapBody, [len, addr]);
  }
  private *mmapBody(len: number, addr?: number): KGen<Result<number>> {
    if (!this.task.mm) return err(Errno.EINVAL);
    return this.task.mm.mmap(len, '[anon]', addr);
  }

  /**
   * nanosleep(2), models hrtimer_nanosleep() → do_nanosleep(), v6.12: an interrupted sleep
   * returns -ERESTART_RESTARTBLOCK, which arch/x86 handle_signal() turns into EINTR whenever a
   * handler ran, SA_RESTART or not (signal(7)); with no handler, restart_syscall() runs
   * hrtimer_nanosleep_restart(), which sleeps to the original absolute expiry. errno.ts has
   * no ERESTART_RESTARTBLOCK: -ERESTARTNOHAND gets the same handler/no-handler treatment
   * from syscall(), and `timer` carries the restart block's expiry.
   */
  *nanosleep(ns: number): KGen<Result<void>> {
    return yield* this.syscall(this.nanosleepBody, [ns, { expires: -1 }]);
  }
  private *nanosleepBody(ns: number, timer: { expires: number }): KGen<Result<void>> {
    const k = this.k;
    if (timer.expires < 0) timer.expires = k.clock + ns;
    else if (timer.expires <= k.clock) return ok();
    const fired = yield* sleepFor(k, timer.expires - k.clock, TASK_INTERRUPTIBLE);
    return fired ? ok() : err(Errno.ERESTARTNOHAND);
  }

  /** pause(2): sleep interruptibly until a signal is delivered; -ERESTARTNOHAND. */
  *pause(): KGen<Result<void>> {
    return yield* this.syscall(this.pauseBody, []);
  }
  private *pauseBody(): KGen<Result<void>> {
    const t = this.task;
    while (!signalPendingState(TASK_INTERRUPTIBLE, t)) {
      t.state = TASK_INTERRUPTIBLE;
      yield Op.Schedule;
    }
    t.state = TASK_RUNNING;
    return err(Errno.ERESTARTNOHAND);
  }

  /**
   * ptrace(2) PTRACE_ATTACH / PTRACE_SEIZE / PTRACE_DETACH, models ptrace_attach(), v6.12:
   * PF_KTHREAD targets and the caller's own thread group → EPERM; an already traced or exiting
   * task → EPERM; __ptrace_may_access: same uids or CAP_SYS_PTRACE, else EPERM.
   * PTRACE_ATTACH sends SIGSTOP; options are stored as PT_* event flags.
   */
  *ptrace(request: number, pid: number, options = 0): KGen<Result<void>> {
    return yield* this.syscall(this.ptraceBody, [request, pid, options]);
  }
  private *ptraceBody(request: number, pid: number, options: number): KGen<Result<void>> {
    const k = this.k;
    const me = this.task;
    const t = k.findTaskByVpid(pid, me.activePidNs()!);
    if (!t?.alive) return err(Errno.ESRCH);
    if (request === PTRACE_DETACH) {
      if (t.parent !== me || !t.ptrace) return err(Errno.ESRCH);
      t.ptrace = 0;
      t.parent = t.realParent;
      me.ptraced.delete(t);
      return ok();
    }
    if (request !== PTRACE_ATTACH && request !== PTRACE_SEIZE) return err(Errno.EIO);
    if (t.flags & PF_KTHREAD) return err(Errno.EPERM);
    if (t.signal === me.signal) return err(Errno.EPERM);
    if (t.ptrace || t.flags & 0x4) return err(Errno.EPERM);
    const c = me.cred;
    const tc = t.cred;
    const sameIds =
      c.uid === tc.euid &&
      c.uid === tc.suid &&
      c.uid === tc.uid &&
      c.gid === tc.egid &&
      c.gid === tc.sgid &&
      c.gid === tc.gid;
    if (!sameIds && !credCapable(c, tc.userNs, CAP_SYS_PTRACE)) return err(Errno.EPERM);
    t.ptrace = PT_PTRACED | (request === PTRACE_SEIZE ? PT_SEIZED : 0) | (options << 3);
    t.parent = me;
    me.linkTracee(t);
    if (request === PTRACE_ATTACH) sendSignalFromUser(k, me, SIGSTOP, t, true);
    return ok();
  }

  /** ptrace options on an existing tracee (PTRACE_SETOPTIONS). */
  setPtraceOptions(t: Task, options: number): void {
    t.ptrace = (t.ptrace & ~(0xff << 3)) | (options << 3);
  }

  /**
   * execve(2), models do_execveat_common() → begin_new_exec(), v6.12: EAGAIN if
   * PF_NPROC_EXCEEDED still holds; de_thread() kills the other threads and waits for the
   * ones zap_other_threads counted (6.4-rc5 … 6.9 do not count a vhost worker); a non-leader
   * takes over the leader's pid; a new mm; caught handlers reset; close-on-exec fds closed;
   * comm = basename. Never returns on success: the new program runs in this task.
   */
  *execve(path: string, program: Program): KGen<Result<never>> {
    const k = this.k;
    const t = this.task;
    k.charge(k.profile.costs.syscall);
    if (t.flags & PF_NPROC_EXCEEDED) {
      const over = isRlimitOverlimit(k, t.cred.ucounts, t.signal.rlim[RLIMIT_NPROC]!.cur);
      if (over && !(t.cred.uid === 0 && t.cred.userNs === k.initUserNs)) return err(Errno.EAGAIN);
    }
    t.flags &= ~PF_NPROC_EXCEEDED;
    // bprm_execve(): io_uring_task_cancel() before the point of no return
    for (const h of k.execHooks) yield* h(k, t);
    const r = yield* deThread(k, t);
    if (!r.ok) return r;
    // exec_mmap
    const old = t.mm;
    const mm = new MM(k.nextMmId());
    mm.memcg = t.cgroups[0]?.effective('memory') ?? null;
    t.mm = mm;
    t.activeMm = mm;
    if (old) mmput(k, old);
    if (t.vforkDone) {
      complete(k, t.vforkDone);
      t.vforkDone = null;
    }
    // unshare_sighand + flush_signal_handlers(t, 0)
    if (t.sighand.count > 1) {
      t.sighand.count--;
      t.sighand = new Sighand(t.sighand);
    }
    // flush_signal_handlers(t, 0): SIG_IGN stays, every other handler becomes SIG_DFL, and
    // every action's sa_flags and sa_mask are cleared
    for (let s = 1; s < t.sighand.action.length; s++) {
      const a = t.sighand.action[s]!;
      t.sighand.action[s] = a.handler === SIG_IGN ? IGNORED_SIGACTION : DEFAULT_SIGACTION;
    }
    // close-on-exec
    const files = t.files;
    if (files) {
      for (const fd of [...files.cloexec]) {
        const f = files.remove(fd);
        if (f) yield* fput(k, f);
      }
    }
    const oldPid = t.pid;
    setTaskComm(k, t, path.split('/').pop() ?? path);
    t.flags &= ~PF_FORKNOEXEC;
    t.selfExecId++;
    t.execPath = path;
    if (k.trace.enabled) k.emit('sched_process_exec', `filename=${path} pid=${t.pid} old_pid=${oldPid}`);
    const code = yield* program(new Sys(t));
    // returning from the new image is exit(code): the status byte, as in exit() above
    return yield* doExit(k, (code ?? 0) & 0xff);
  }
}

/** models __set_task_comm(): truncate to 15 characters; task_rename trace event. */
export function setTaskComm(k: Kernel, t: Task, name: string): void {
  const nw = name.slice(0, 15);
  if (k.trace.enabled) k.emit('task_rename', `pid=${t.pid} oldcomm=${t.comm} newcomm=${nw} oom_score_adj=0`);
  t.comm = nw;
}

/**
 * models commit_creds(), v6.12: install new creds; a change of uid or user namespace moves
 * the task's RLIMIT_NPROC charge to the new ucounts.
 */
export function commitCreds(k: Kernel, t: Task, nc: Cred): void {
  const old = t.cred;
  // "dumpability changes": a new euid/egid/fsuid/fsgid or capabilities that are not a subset
  // of the old ones clear pdeath_signal
  if (
    nc.euid !== old.euid ||
    nc.egid !== old.egid ||
    nc.fsuid !== old.fsuid ||
    nc.fsgid !== old.fsgid ||
    !credCapIssubset(old, nc)
  )
    t.pdeathSignal = 0;
  if (nc.ucounts !== old.ucounts) {
    incRlimitUcounts(k, nc.ucounts, 1);
    decRlimitUcounts(k, old.ucounts, 1);
  }
  t.cred = nc;
}

/**
 * models kernel/cred.c cred_cap_issubset(set, subset), v6.12: in one user namespace, subset's
 * permitted ⊆ set's; across namespaces, set's namespace is the parent of one of subset's
 * namespaces (or their ancestors) whose owner is set's euid.
 */
function credCapIssubset(set: Cred, subset: Cred): boolean {
  if (set.userNs === subset.userNs) return (subset.capPermitted & ~set.capPermitted) === 0n;
  for (let ns: UserNamespace | null = subset.userNs; ns?.parent; ns = ns.parent)
    if (ns.parent === set.userNs && ns.ownerUid === set.euid) return true;
  return false;
}

/**
 * models de_thread(), v6.12: kill every other thread and wait for the counted ones; if the
 * caller is not the leader, wait for the leader to become a zombie and take over its pid
 * (exchange_tids), releasing the old leader.
 */
function* deThread(k: Kernel, t: Task): KGen<Result<void>> {
  const sig = t.signal;
  if (t.threadGroupEmpty()) return ok();
  if (sig.flags & 0x4 || sig.groupExecTask) return err(Errno.EAGAIN);
  sig.groupExecTask = t;
  sig.notifyCount = zapOtherThreads(k, t);
  if (!t.threadGroupLeader()) sig.notifyCount--;
  while (sig.notifyCount > 0) {
    t.state = TASK_INTERRUPTIBLE | 0x100; // TASK_KILLABLE-ish wait in de_thread
    if (t.fatalSignalPending()) {
      sig.groupExecTask = null;
      sig.notifyCount = 0;
      t.state = 0;
      return err(Errno.EAGAIN);
    }
    yield Op.Schedule;
    t.state = 0;
    sig.notifyCount = sig.threads.filter(
      (x) => x !== t && x.alive && !x.threadGroupLeader() && countedByZap(k, x),
    ).length;
  }
  if (!t.threadGroupLeader()) {
    const leader = t.groupLeader;
    while (leader.alive) {
      t.state = TASK_INTERRUPTIBLE;
      sig.notifyCount = -1;
      yield Op.Schedule;
      t.state = 0;
    }
    exchangeTids(k, t, leader);
  }
  sig.groupExecTask = null;
  sig.notifyCount = 0;
  t.exitSignal = SIGCHLD;
  recalcSigpending(k, t);
  return ok();
}

function countedByZap(k: Kernel, x: Task): boolean {
  const uw = k.profile.pfUserWorker;
  return !(k.profile.vhostSignalHacks && uw && (x.flags & (uw | 0x10)) === uw);
}

/** exchange_tids() + transfer_pid(): the exec'ing thread becomes the leader; the old leader is released. */
function exchangeTids(k: Kernel, t: Task, leader: Task): void {
  const myPid = t.pidStruct!;
  k.tasks.delete(t.pid);
  k.tasks.delete(leader.pid);
  t.pidStruct = leader.pidStruct;
  leader.pidStruct = myPid;
  const lp = leader.pid;
  leader.pid = t.pid;
  t.pid = lp;
  k.tasks.set(t.pid, t);
  k.tasks.set(leader.pid, leader);
  t.realParent = leader.realParent;
  t.parent = leader.parent;
  t.exitSignal = leader.exitSignal;
  leader.exitSignal = -1;
  t.realParent.children.delete(leader);
  t.realParent.linkChild(t);
  for (const c of leader.children) t.linkChild(c);
  leader.children.clear();
  for (const th of t.signal.threads) th.groupLeader = t;
  for (const th of t.signal.threads) th.tgid = t.pid;
  const i = t.signal.threads.indexOf(t);
  t.signal.threads.splice(i, 1);
  t.signal.threads.unshift(t);
  leader.groupLeader = t;
  releaseTask(k, leader);
}

/** struct eventfd_ctx */
export class Eventfd {
  readonly wqh = new WaitQueue();
  /** the explorer's name for it (footprint.ts) */
  readonly oid = newObjectId();
  constructor(
    public count: bigint,
    readonly flags: number,
  ) {}
}

export const EVENTFD_ULLONG_MAX = 0xfffffffffffffffen;

/** models eventfd_signal(): add 1 and wake readers (used by kernel code: vhost call, KVM irqfd). */
export function eventfdSignal(k: Kernel, ctx: Eventfd, n = 1n): void {
  if (k.fp) eventfdSignalFootprint(k, ctx, n);
  ctx.count = ctx.count + n > EVENTFD_ULLONG_MAX ? EVENTFD_ULLONG_MAX : ctx.count + n;
  ctx.wqh.wakeUp(k);
  for (const cb of eventfdPollers.get(ctx) ?? []) cb();
}

/**
 * The explorer's footprint of eventfd_signal() (footprint.ts): the count is an update while
 * it stays far below ULLONG_MAX — an add of at most 2^32 to a count of at most 2^48 cannot
 * make another add of the same kind, in an execution within any step budget, reach the
 * limit — else a write. Sleepers are woken through try_to_wake_up (recorded there); a
 * wait-queue callback or a kernel poller whose path is not audited touches everything.
 */
function eventfdSignalFootprint(k: Kernel, ctx: Eventfd, n: bigint): void {
  const small = n <= 1n << 32n && ctx.count <= 1n << 48n;
  fpTouch(k, `eventfd:${ctx.oid}`, small ? FP_UPDATE : FP_WRITE);
  if (ctx.wqh.funcs?.size) fpGlobal(k);
  for (const cb of eventfdPollers.get(ctx) ?? []) if (!isAudited(cb)) fpGlobal(k);
}

/** Kernel-side pollers of an eventfd (vhost_poll): called on every signal. */
export const eventfdPollers = new Slot<Eventfd, Set<() => void>>('eventfd pollers');

/** fs/eventfd.c file operations: read blocks until the count is non-zero (EAGAIN with O_NONBLOCK). */
export const EVENTFD_OPS: FileOps = {
  name: 'eventfd',
  pollQueue: (f) => (f.priv as Eventfd).wqh,
  *read(k, f, len, nowait) {
    const ctx = f.priv as Eventfd;
    if (len < 8) return err(Errno.EINVAL);
    if (ctx.count === 0n) {
      if (f.flags & O_NONBLOCK || nowait) return err(Errno.EAGAIN);
      const r = yield* waitEvent(k, ctx.wqh, () => ctx.count > 0n, TASK_INTERRUPTIBLE);
      if (r < 0) return err(Errno.ERESTARTSYS);
    }
    const v = ctx.flags & EFD_SEMAPHORE ? 1n : ctx.count;
    ctx.count -= v;
    ctx.wqh.wakeUp(k);
    const out = new Uint8Array(8);
    putU64(out, 0, v);
    return ok(out);
  },
  *write(k, f, data, nowait) {
    const ctx = f.priv as Eventfd;
    if (data.length < 8) return err(Errno.EINVAL);
    const v = getU64(data, 0);
    if (v === 0xffffffffffffffffn) return err(Errno.EINVAL);
    // fs/eventfd.c eventfd_write(): a write that would reach ULLONG_MAX fails with EAGAIN
    // under O_NONBLOCK, otherwise waits (interruptibly) until a read makes room
    if (ctx.count + v > EVENTFD_ULLONG_MAX) {
      // the full-counter path (EAGAIN, or a sleep a read ends) is not audited (footprint.ts)
      fpUnaudited(k, k.current!);
      if (f.flags & O_NONBLOCK || nowait) return err(Errno.EAGAIN);
      const r = yield* waitEvent(k, ctx.wqh, () => ctx.count + v <= EVENTFD_ULLONG_MAX, TASK_INTERRUPTIBLE);
      if (r < 0) return err(Errno.ERESTARTSYS);
    }
    eventfdSignal(k, ctx, v);
    return ok(8);
  },
};

/**
 * Create a user process the way a service manager would: fork from init, then (as the
 * launcher does before exec) set creds, rlimits, cgroup, affinity, and exec a program.
 */
export interface SpawnOptions {
  comm: string;
  program: Program;
  uid?: number;
  gid?: number;
  /** effective = permitted capability set; default: full for uid 0, empty otherwise */
  caps?: CapSet;
  rlimits?: Partial<Record<number, Rlimit>>;
  cgroup?: Cgroup;
  cpus?: number;
  parent?: Task;
}

export function spawnProcess(k: Kernel, o: SpawnOptions): Task {
  const parent = o.parent ?? k.init;
  const r = k.withCurrent(parent, () =>
    copyProcess(k, { flags: 0, exitSignal: SIGCHLD, fn: programBody(o.program), name: o.comm }),
  );
  if (!r.ok)
    throw new Error(
      `spawn ${o.comm}: copy_process failed with errno ${r.errno} (${k.lastCopyProcessFailure?.rule})`,
    );
  const t = r.value;
  const uid = o.uid ?? 0;
  const gid = o.gid ?? uid;
  const caps = o.caps ?? (uid === 0 ? CAP_FULL_SET : 0n);
  const base = t.cred;
  commitCreds(k, t, {
    ...base,
    uid,
    euid: uid,
    suid: uid,
    fsuid: uid,
    gid,
    egid: gid,
    sgid: gid,
    fsgid: gid,
    capPermitted: caps,
    capEffective: caps,
    capInheritable: 0n,
    ucounts: k.ucounts.get(base.userNs, uid),
  });
  for (const [res, lim] of Object.entries(o.rlimits ?? {})) if (lim) t.signal.rlim[Number(res)] = lim;
  if (o.cgroup) {
    const m = cgroupMigrate(k, [t], o.cgroup);
    if (!m.ok) throw new Error(`spawn ${o.comm}: cannot move into ${o.cgroup.path}: errno ${m.errno}`);
  }
  t.cpusAllowed = (o.cpus ?? t.cpusAllowed) & t.cgroups[0]!.effectiveCpus(k);
  const mm = new MM(k.nextMmId());
  mm.memcg = t.cgroups[0]?.effective('memory') ?? null;
  t.mm = mm;
  t.activeMm = mm;
  t.execPath = `/usr/bin/${o.comm}`;
  t.flags &= ~PF_FORKNOEXEC;
  k.wakeUpNewTask(t);
  return t;
}
