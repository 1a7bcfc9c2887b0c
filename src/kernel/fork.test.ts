/**
 * copy_process / kernel_clone / clone3 (kernel-spec §1.3, §1.4, §1.7): every errno path in
 * the kernel's order, which rule wins when two fail, the clone3 argument checks, and what a
 * child shares with or copies from its creator.
 */
import { describe, expect, it } from 'vitest';
import type { ChoiceKind, Choices } from './choices.js';
import { CAP_SYS_ADMIN, CAP_SYS_RESOURCE, capBit } from './cred.js';
import { Errno, type Result } from './errno.js';
import { CLONE_ARGS_SIZE_VER0, CLONE_ARGS_SIZE_VER1, copyProcess, type KernelCloneArgs } from './fork.js';
import { checkInvariants } from './invariants.js';
import type { Kernel } from './kernel.js';
import { RLIMIT_NOFILE, RLIMIT_NPROC } from './rlimit.js';
import type { KGen } from './sched.js';
import {
  CLONE_CLEAR_SIGHAND,
  CLONE_DETACHED,
  CLONE_FILES,
  CLONE_FS,
  CLONE_INTO_CGROUP,
  CLONE_IO,
  CLONE_NEWIPC,
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
  CLONE_VM,
  PF_FORKNOEXEC,
  PF_KTHREAD,
  PF_NPROC_EXCEEDED,
} from './sched-consts.js';
import { kernelSigInfo, sendSignal } from './signal.js';
import { SIG_DFL, SIG_IGN, SIGCHLD, SIGUSR1, SIGUSR2 } from './signal-consts.js';
import { caughtSignals, type Program, type Sys } from './syscalls.js';
import type { Task } from './task.js';
import { bootKernel, makeCgroup, settle, spawn } from './testing.js';

const THREAD_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
const HANDLER = 0x401000;

/** A child that exits at once. */
const exit0: Program = function* () {
  return 0;
};
/** A child that sleeps for a virtual second, then exits. */
const sleeper: Program = function* (sys) {
  yield* sys.nanosleep(1_000_000_000);
  return 0;
};

interface SpawnOpts {
  uid?: number;
  caps?: bigint;
  rlimits?: Partial<Record<number, { cur: number; max: number }>>;
  cgroup?: ReturnType<typeof makeCgroup>;
}

/** Spawn a process running `body`, run to quiescence, return the process. */
function runProgram(k: Kernel, body: (sys: Sys) => KGen<void>, o: SpawnOpts = {}): Task {
  const t = spawn(
    k,
    'tester',
    function* (sys) {
      yield* body(sys);
      return 0;
    },
    o,
  );
  settle(k);
  return t;
}

/** The task behind a pid returned to `sys`. */
function taskOf(sys: Sys, r: Result<number>): Task {
  if (!r.ok) throw new Error(`expected success, got errno ${r.errno}`);
  const t = sys.k.findTaskByVpid(r.value, sys.task.activePidNs()!);
  if (!t) throw new Error(`no task ${r.value}`);
  return t;
}

/** Fails the allocation sites named in `sites` while `armed` is set; answers 0 otherwise. */
class FailAllocAt implements Choices {
  armed = false;
  readonly hits: string[] = [];
  constructor(private readonly sites: ReadonlySet<string>) {}
  choose(kind: ChoiceKind, _n: number, what: string): number {
    if (kind === 'fault-alloc' && this.armed && this.sites.has(what)) {
      this.hits.push(what);
      return 1;
    }
    return 0;
  }
}

const nproc = (k: Kernel, uid: number) => k.ucounts.get(k.initUserNs, uid).nproc;

describe('copy_process flag checks (rules 1–7)', () => {
  it('CLONE_NEWNS together with CLONE_FS returns EINVAL', () => {
    const k = bootKernel();
    let r: Result<number> | undefined;
    runProgram(k, function* (sys) {
      r = yield* sys.clone(CLONE_NEWNS | CLONE_FS | SIGCHLD, exit0);
    });
    expect(r).toEqual({ ok: false, errno: Errno.EINVAL });
    expect(k.lastCopyProcessFailure?.rule).toBe('CLONE_NEWNS|CLONE_FS');
    checkInvariants(k);
  });

  it('CLONE_NEWUSER together with CLONE_FS returns EINVAL', () => {
    const k = bootKernel();
    let r: Result<number> | undefined;
    runProgram(k, function* (sys) {
      r = yield* sys.clone(CLONE_NEWUSER | CLONE_FS | SIGCHLD, exit0);
    });
    expect(r).toEqual({ ok: false, errno: Errno.EINVAL });
    expect(k.lastCopyProcessFailure?.rule).toBe('CLONE_NEWUSER|CLONE_FS');
    checkInvariants(k);
  });

  it('CLONE_THREAD without CLONE_SIGHAND returns EINVAL', () => {
    const k = bootKernel();
    let r: Result<number> | undefined;
    runProgram(k, function* (sys) {
      r = yield* sys.clone(CLONE_THREAD | CLONE_VM, exit0);
    });
    expect(r).toEqual({ ok: false, errno: Errno.EINVAL });
    expect(k.lastCopyProcessFailure?.rule).toBe('CLONE_THREAD without CLONE_SIGHAND');
    checkInvariants(k);
  });

  it('CLONE_SIGHAND without CLONE_VM returns EINVAL', () => {
    const k = bootKernel();
    let r: Result<number> | undefined;
    runProgram(k, function* (sys) {
      r = yield* sys.clone(CLONE_SIGHAND | SIGCHLD, exit0);
    });
    expect(r).toEqual({ ok: false, errno: Errno.EINVAL });
    expect(k.lastCopyProcessFailure?.rule).toBe('CLONE_SIGHAND without CLONE_VM');
    checkInvariants(k);
  });

  it('CLONE_PARENT from the global init returns EINVAL', () => {
    const k = bootKernel();
    const r = k.withCurrent(k.init, () =>
      copyProcess(k, {
        flags: CLONE_PARENT,
        exitSignal: 0,
        fn: function* () {
          return 0;
        },
      }),
    );
    expect(r).toEqual({ ok: false, errno: Errno.EINVAL });
    expect(k.lastCopyProcessFailure?.rule).toBe('CLONE_PARENT from an unkillable init');
    checkInvariants(k);
  });

  it('CLONE_PARENT from a pid-namespace init returns EINVAL, from its child it succeeds', () => {
    const k = bootKernel();
    let fromInit: Result<number> | undefined;
    let fromChild: Result<number> | undefined;
    runProgram(k, function* (sys) {
      expect((yield* sys.unshare(CLONE_NEWPID)).ok).toBe(true);
      const r = yield* sys.fork(function* (nsInit) {
        expect(nsInit.getpid()).toBe(1);
        fromInit = yield* nsInit.clone(CLONE_PARENT, exit0);
        yield* nsInit.fork(function* (grandchild) {
          fromChild = yield* grandchild.clone(CLONE_PARENT, exit0);
          return 0;
        });
        yield* nsInit.wait4(-1, 0x40000000);
        yield* nsInit.wait4(-1, 0x40000000);
        return 0;
      });
      expect(r.ok).toBe(true);
      yield* sys.wait4(-1);
    });
    expect(fromInit).toEqual({ ok: false, errno: Errno.EINVAL });
    expect(fromChild?.ok).toBe(true);
    checkInvariants(k);
  });

  it('CLONE_THREAD with CLONE_NEWPID returns EINVAL', () => {
    const k = bootKernel();
    let r: Result<number> | undefined;
    runProgram(k, function* (sys) {
      r = yield* sys.clone(THREAD_FLAGS | CLONE_NEWPID, exit0);
    });
    expect(r).toEqual({ ok: false, errno: Errno.EINVAL });
    expect(k.lastCopyProcessFailure?.rule).toBe('CLONE_THREAD across pid/user namespaces');
    checkInvariants(k);
  });

  it('CLONE_THREAD with CLONE_NEWUSER returns EINVAL', () => {
    const k = bootKernel();
    let r: Result<number> | undefined;
    runProgram(k, function* (sys) {
      r = yield* sys.clone(CLONE_VM | CLONE_SIGHAND | CLONE_THREAD | CLONE_NEWUSER, exit0);
    });
    expect(r).toEqual({ ok: false, errno: Errno.EINVAL });
    expect(k.lastCopyProcessFailure?.rule).toBe('CLONE_THREAD across pid/user namespaces');
    checkInvariants(k);
  });

  it('pthread_create after unshare(CLONE_NEWPID) returns EINVAL while fork still works', () => {
    const k = bootKernel();
    let thread: Result<number> | undefined;
    let child: Result<number> | undefined;
    runProgram(k, function* (sys) {
      expect((yield* sys.unshare(CLONE_NEWPID)).ok).toBe(true);
      thread = yield* sys.pthreadCreate(exit0);
      child = yield* sys.fork(exit0);
      yield* sys.wait4(-1);
    });
    expect(thread).toEqual({ ok: false, errno: Errno.EINVAL });
    expect(child?.ok).toBe(true);
    checkInvariants(k);
  });

  it('CLONE_PIDFD together with CLONE_DETACHED returns EINVAL', () => {
    const k = bootKernel();
    let r: Result<number> | undefined;
    runProgram(k, function* (sys) {
      r = yield* sys.clone(CLONE_PIDFD | CLONE_DETACHED | SIGCHLD, exit0);
    });
    expect(r).toEqual({ ok: false, errno: Errno.EINVAL });
    expect(k.lastCopyProcessFailure?.rule).toBe('CLONE_PIDFD|CLONE_DETACHED');
    checkInvariants(k);
  });

  it('kernel_clone rejects CLONE_PIDFD and CLONE_PARENT_SETTID at the same address with EINVAL', () => {
    const k = bootKernel();
    let same: Result<number> | undefined;
    let different: Result<number> | undefined;
    runProgram(k, function* (sys) {
      same = yield* sys.clone(CLONE_PIDFD | CLONE_PARENT_SETTID | SIGCHLD, exit0, {
        pidfd: 0x7000,
        parentTid: 0x7000,
      });
      different = yield* sys.clone(CLONE_PIDFD | CLONE_PARENT_SETTID | SIGCHLD, exit0, {
        pidfd: 0x7000,
        parentTid: 0x7008,
      });
      yield* sys.wait4(-1);
    });
    expect(same).toEqual({ ok: false, errno: Errno.EINVAL });
    expect(different?.ok).toBe(true);
    checkInvariants(k);
  });
});

describe('copy_process resource checks (rules 8–17)', () => {
  it('a pending signal makes copy_process fail with ERESTARTNOINTR', () => {
    const k = bootKernel();
    let r: Result<Task> | undefined;
    const before = { nr: 0, nproc: 0 };
    runProgram(k, function* (sys) {
      yield* sys.rtSigaction(SIGUSR1, { handler: HANDLER });
      before.nr = sys.k.nrThreads;
      before.nproc = nproc(sys.k, 0);
      sendSignal(sys.k, SIGUSR1, kernelSigInfo(SIGUSR1), sys.task, true);
      expect(sys.task.sigpending).toBe(true);
      r = copyProcess(sys.k, {
        flags: 0,
        exitSignal: SIGCHLD,
        fn: function* () {
          return 0;
        },
      });
      expect(sys.k.nrThreads).toBe(before.nr);
      expect(nproc(sys.k, 0)).toBe(before.nproc);
      yield* sys.exitToUserMode();
    });
    expect(r).toEqual({ ok: false, errno: Errno.ERESTARTNOINTR });
    expect(k.lastCopyProcessFailure?.rule).toBe('signal pending');
    checkInvariants(k);
  });

  it('fork(2) with a signal pending is restarted transparently after the handler runs', () => {
    const k = bootKernel();
    let r: Result<number> | undefined;
    const t = runProgram(k, function* (sys) {
      yield* sys.rtSigaction(SIGUSR1, { handler: HANDLER });
      sendSignal(sys.k, SIGUSR1, kernelSigInfo(SIGUSR1), sys.task, true);
      r = yield* sys.fork(exit0);
      yield* sys.wait4(-1);
    });
    expect(r?.ok).toBe(true);
    expect(caughtSignals.get(t)).toEqual([SIGUSR1]);
    checkInvariants(k);
  });

  it('dup_task_struct allocation failure returns ENOMEM and charges nothing', () => {
    const choices = new FailAllocAt(new Set(['dup_task_struct']));
    const k = bootKernel({ faultAlloc: true, choices });
    let r: Result<number> | undefined;
    let counts: number[] = [];
    runProgram(k, function* (sys) {
      counts = [sys.k.nrThreads, nproc(sys.k, 0)];
      choices.armed = true;
      r = yield* sys.fork(exit0);
      choices.armed = false;
      expect([sys.k.nrThreads, nproc(sys.k, 0)]).toEqual(counts);
    });
    expect(r).toEqual({ ok: false, errno: Errno.ENOMEM });
    expect(k.lastCopyProcessFailure?.rule).toBe('dup_task_struct');
    expect(choices.hits).toEqual(['dup_task_struct']);
    checkInvariants(k);
  });

  it('copy_mm allocation failure returns ENOMEM and undoes the nproc, fs and files charges', () => {
    const choices = new FailAllocAt(new Set(['dup_mm']));
    const k = bootKernel({ faultAlloc: true, choices });
    const cg = makeCgroup(k, 'vm', { pidsMax: 10 });
    let r: Result<number> | undefined;
    runProgram(
      k,
      function* (sys) {
        const fsUsers = sys.task.fs!.users;
        const filesCount = sys.task.files!.count;
        choices.armed = true;
        r = yield* sys.clone(CLONE_FS | CLONE_FILES | SIGCHLD, exit0);
        choices.armed = false;
        expect(sys.task.fs!.users).toBe(fsUsers);
        expect(sys.task.files!.count).toBe(filesCount);
        expect(nproc(sys.k, 1000)).toBe(1);
        expect(cg.pids.counter).toBe(1);
      },
      { uid: 1000, cgroup: cg },
    );
    expect(r).toEqual({ ok: false, errno: Errno.ENOMEM });
    expect(k.lastCopyProcessFailure?.rule).toBe('copy_mm');
    checkInvariants(k);
  });

  it('fork over RLIMIT_NPROC returns EAGAIN and leaves the user count unchanged', () => {
    const k = bootKernel();
    const results: Result<number>[] = [];
    runProgram(
      k,
      function* (sys) {
        results.push(yield* sys.fork(sleeper));
        expect(nproc(sys.k, 1000)).toBe(2);
        results.push(yield* sys.fork(sleeper));
        expect(nproc(sys.k, 1000)).toBe(2);
        yield* sys.wait4(-1);
      },
      { uid: 1000, rlimits: { [RLIMIT_NPROC]: { cur: 2, max: 2 } } },
    );
    expect(results[0]?.ok).toBe(true);
    expect(results[1]).toEqual({ ok: false, errno: Errno.EAGAIN });
    expect(k.lastCopyProcessFailure?.rule).toBe('RLIMIT_NPROC');
    expect(nproc(k, 1000)).toBe(0);
    checkInvariants(k);
  });

  it('a successful fork clears PF_NPROC_EXCEEDED on the caller', () => {
    const k = bootKernel();
    let flagsAfter = -1;
    runProgram(k, function* (sys) {
      sys.task.flags |= PF_NPROC_EXCEEDED;
      expect((yield* sys.fork(exit0)).ok).toBe(true);
      flagsAfter = sys.task.flags;
      yield* sys.wait4(-1);
    });
    expect(flagsAfter & PF_NPROC_EXCEEDED).toBe(0);
    checkInvariants(k);
  });

  it('fork at kernel.threads-max returns EAGAIN even with CAP_SYS_ADMIN', () => {
    const k = bootKernel();
    let r: Result<number> | undefined;
    runProgram(k, function* (sys) {
      sys.k.maxThreads = sys.k.nrThreads;
      r = yield* sys.fork(exit0);
      sys.k.maxThreads = 1_000_000;
    });
    expect(r).toEqual({ ok: false, errno: Errno.EAGAIN });
    expect(k.lastCopyProcessFailure?.rule).toBe('threads-max');
    checkInvariants(k);
  });

  it('pid space exhaustion in alloc_pid returns EAGAIN', () => {
    const k = bootKernel();
    let r: Result<number> | undefined;
    runProgram(k, function* (sys) {
      const used = [...sys.k.tasks.keys()];
      const max = Math.max(...used);
      // every number below max is taken (boot tasks are numbered consecutively)
      expect(used.length).toBe(max);
      sys.k.pidMax = max + 1;
      r = yield* sys.fork(exit0);
      sys.k.pidMax = 32768;
    });
    expect(r).toEqual({ ok: false, errno: Errno.EAGAIN });
    expect(k.lastCopyProcessFailure?.rule).toBe('alloc_pid');
    checkInvariants(k);
  });

  it('clone3 set_tid naming a pid in use returns EEXIST', () => {
    const k = bootKernel();
    let r: Result<number> | undefined;
    runProgram(k, function* (sys) {
      r = yield* sys.clone3({ flags: 0, exitSignal: SIGCHLD, setTid: [sys.getpid()] }, exit0);
    });
    expect(r).toEqual({ ok: false, errno: Errno.EEXIST });
    expect(k.lastCopyProcessFailure?.rule).toBe('alloc_pid');
    checkInvariants(k);
  });

  it('clone3 set_tid with a free pid gives the child exactly that pid', () => {
    const k = bootKernel();
    let r: Result<number> | undefined;
    runProgram(k, function* (sys) {
      r = yield* sys.clone3({ flags: 0, exitSignal: SIGCHLD, setTid: [4242] }, exit0);
      yield* sys.wait4(-1);
    });
    expect(r).toEqual({ ok: true, value: 4242 });
    checkInvariants(k);
  });

  it('clone3 set_tid out of range (0 or >= pid_max) returns EINVAL', () => {
    const k = bootKernel();
    const rs: Result<number>[] = [];
    runProgram(k, function* (sys) {
      rs.push(yield* sys.clone3({ flags: 0, exitSignal: SIGCHLD, setTid: [sys.k.pidMax] }, exit0));
      rs.push(yield* sys.clone3({ flags: 0, exitSignal: SIGCHLD, setTid: [0] }, exit0));
    });
    expect(rs).toEqual([
      { ok: false, errno: Errno.EINVAL },
      { ok: false, errno: Errno.EINVAL },
    ]);
    checkInvariants(k);
  });

  it('clone3 set_tid with more entries than pid-namespace levels returns EINVAL', () => {
    const k = bootKernel();
    let r: Result<number> | undefined;
    runProgram(k, function* (sys) {
      r = yield* sys.clone3({ flags: 0, exitSignal: SIGCHLD, setTid: [500, 501] }, exit0);
    });
    expect(r).toEqual({ ok: false, errno: Errno.EINVAL });
    checkInvariants(k);
  });

  it('clone3 set_tid != 1 into a new pid namespace without an init returns EINVAL', () => {
    const k = bootKernel();
    let r: Result<number> | undefined;
    runProgram(k, function* (sys) {
      r = yield* sys.clone3({ flags: CLONE_NEWPID, exitSignal: SIGCHLD, setTid: [5, 600] }, exit0);
    });
    expect(r).toEqual({ ok: false, errno: Errno.EINVAL });
    checkInvariants(k);
  });

  it('clone3 set_tid without CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN returns EPERM', () => {
    const k = bootKernel();
    let r: Result<number> | undefined;
    runProgram(
      k,
      function* (sys) {
        r = yield* sys.clone3({ flags: 0, exitSignal: SIGCHLD, setTid: [4242] }, exit0);
      },
      { uid: 1000 },
    );
    expect(r).toEqual({ ok: false, errno: Errno.EPERM });
    checkInvariants(k);
  });

  it('an unprivileged set_tid that is also out of range fails with EINVAL before EPERM (alloc_pid order)', () => {
    const k = bootKernel();
    let r: Result<number> | undefined;
    runProgram(
      k,
      function* (sys) {
        r = yield* sys.clone3({ flags: 0, exitSignal: SIGCHLD, setTid: [sys.k.pidMax + 5] }, exit0);
      },
      { uid: 1000 },
    );
    expect(r).toEqual({ ok: false, errno: Errno.EINVAL });
    checkInvariants(k);
  });

  it('fork after the pid-namespace init died returns ENOMEM (namespace no longer adding)', () => {
    const k = bootKernel();
    let second: Result<number> | undefined;
    runProgram(k, function* (sys) {
      yield* sys.unshare(CLONE_NEWPID);
      expect((yield* sys.fork(exit0)).ok).toBe(true);
      yield* sys.wait4(-1);
      second = yield* sys.fork(exit0);
    });
    expect(second).toEqual({ ok: false, errno: Errno.ENOMEM });
    expect(k.lastCopyProcessFailure?.rule).toBe('alloc_pid');
    checkInvariants(k);
  });

  it('fork over pids.max returns EAGAIN and counts a pids.events max event', () => {
    const k = bootKernel();
    const cg = makeCgroup(k, 'vm', { pidsMax: 2 });
    const rs: Result<number>[] = [];
    runProgram(
      k,
      function* (sys) {
        rs.push(yield* sys.fork(sleeper));
        rs.push(yield* sys.fork(sleeper));
        expect(cg.pids.counter).toBe(2);
        yield* sys.wait4(-1);
      },
      { cgroup: cg },
    );
    expect(rs[0]?.ok).toBe(true);
    expect(rs[1]).toEqual({ ok: false, errno: Errno.EAGAIN });
    expect(k.lastCopyProcessFailure?.rule).toBe('cgroup_can_fork (pids)');
    expect(cg.pids.eventsMax).toBe(1);
    expect(cg.pids.counter).toBe(0);
    checkInvariants(k);
  });

  it('threads count against pids.max like processes', () => {
    const k = bootKernel();
    const cg = makeCgroup(k, 'vm', { pidsMax: 2 });
    const rs: Result<number>[] = [];
    runProgram(
      k,
      function* (sys) {
        rs.push(yield* sys.pthreadCreate(sleeper));
        rs.push(yield* sys.pthreadCreate(sleeper));
        yield* sys.nanosleep(2_000_000_000);
      },
      { cgroup: cg },
    );
    expect(rs[0]?.ok).toBe(true);
    expect(rs[1]).toEqual({ ok: false, errno: Errno.EAGAIN });
    checkInvariants(k);
  });
});

describe('which check wins when two fail', () => {
  it('CLONE_THREAD without CLONE_SIGHAND beats RLIMIT_NPROC', () => {
    const k = bootKernel();
    let r: Result<number> | undefined;
    runProgram(
      k,
      function* (sys) {
        r = yield* sys.clone(CLONE_THREAD | CLONE_VM, exit0);
      },
      { uid: 1000, rlimits: { [RLIMIT_NPROC]: { cur: 1, max: 1 } } },
    );
    expect(r).toEqual({ ok: false, errno: Errno.EINVAL });
    expect(k.lastCopyProcessFailure?.rule).toBe('CLONE_THREAD without CLONE_SIGHAND');
    checkInvariants(k);
  });

  it('a pending signal beats RLIMIT_NPROC', () => {
    const k = bootKernel();
    let r: Result<Task> | undefined;
    runProgram(
      k,
      function* (sys) {
        yield* sys.rtSigaction(SIGUSR1, { handler: HANDLER });
        sendSignal(sys.k, SIGUSR1, kernelSigInfo(SIGUSR1), sys.task, true);
        r = copyProcess(sys.k, {
          flags: 0,
          exitSignal: SIGCHLD,
          fn: function* () {
            return 0;
          },
        });
        yield* sys.exitToUserMode();
      },
      { uid: 1000, rlimits: { [RLIMIT_NPROC]: { cur: 1, max: 1 } } },
    );
    expect(r).toEqual({ ok: false, errno: Errno.ERESTARTNOINTR });
    checkInvariants(k);
  });

  it('RLIMIT_NPROC beats threads-max', () => {
    const k = bootKernel();
    let r: Result<number> | undefined;
    runProgram(
      k,
      function* (sys) {
        sys.k.maxThreads = sys.k.nrThreads;
        r = yield* sys.fork(exit0);
        sys.k.maxThreads = 1_000_000;
      },
      { uid: 1000, rlimits: { [RLIMIT_NPROC]: { cur: 1, max: 1 } } },
    );
    expect(r).toEqual({ ok: false, errno: Errno.EAGAIN });
    expect(k.lastCopyProcessFailure?.rule).toBe('RLIMIT_NPROC');
    checkInvariants(k);
  });

  it('threads-max beats pids.max', () => {
    const k = bootKernel();
    const cg = makeCgroup(k, 'vm', { pidsMax: 1 });
    let r: Result<number> | undefined;
    runProgram(
      k,
      function* (sys) {
        sys.k.maxThreads = sys.k.nrThreads;
        r = yield* sys.fork(exit0);
        sys.k.maxThreads = 1_000_000;
      },
      { cgroup: cg },
    );
    expect(r).toEqual({ ok: false, errno: Errno.EAGAIN });
    expect(k.lastCopyProcessFailure?.rule).toBe('threads-max');
    expect(cg.pids.eventsMax).toBe(0);
    checkInvariants(k);
  });

  it('alloc_pid errors beat pids.max: set_tid EEXIST wins and no pids event is counted', () => {
    const k = bootKernel();
    const cg = makeCgroup(k, 'vm', { pidsMax: 1 });
    let r: Result<number> | undefined;
    runProgram(
      k,
      function* (sys) {
        r = yield* sys.clone3({ flags: 0, exitSignal: SIGCHLD, setTid: [1] }, exit0);
      },
      { cgroup: cg },
    );
    expect(r).toEqual({ ok: false, errno: Errno.EEXIST });
    expect(cg.pids.eventsMax).toBe(0);
    checkInvariants(k);
  });

  it('the pids cgroup is checked after PID allocation: a refused fork still consumes a pid number', () => {
    const k = bootKernel();
    const cg = makeCgroup(k, 'vm', { pidsMax: 1 });
    const pids: number[] = [];
    let refused: Result<number> | undefined;
    runProgram(
      k,
      function* (sys) {
        cg.pids.max = 2;
        pids.push(taskOf(sys, yield* sys.fork(exit0)).pid);
        yield* sys.wait4(-1);
        cg.pids.max = 1;
        refused = yield* sys.fork(exit0);
        cg.pids.max = 2;
        pids.push(taskOf(sys, yield* sys.fork(exit0)).pid);
        yield* sys.wait4(-1);
      },
      { cgroup: cg },
    );
    expect(refused).toEqual({ ok: false, errno: Errno.EAGAIN });
    expect(pids[1]).toBe(pids[0]! + 2);
    checkInvariants(k);
  });
});

describe('clone3 argument checks', () => {
  const cases: [string, Parameters<Sys['clone3']>[0], Errno][] = [
    ['size larger than a page returns E2BIG', { flags: 0, exitSignal: SIGCHLD, size: 4097 }, Errno.E2BIG],
    [
      'size smaller than CLONE_ARGS_SIZE_VER0 returns EINVAL',
      { flags: 0, exitSignal: SIGCHLD, size: CLONE_ARGS_SIZE_VER0 - 1 },
      Errno.EINVAL,
    ],
    [
      'set_tid_size above MAX_PID_NS_LEVEL returns EINVAL',
      { flags: 0, exitSignal: SIGCHLD, setTid: new Array(33).fill(400) },
      Errno.EINVAL,
    ],
    ['an exit_signal above _NSIG returns EINVAL', { flags: 0, exitSignal: 65 }, Errno.EINVAL],
    [
      'an exit_signal with bits above CSIGNAL returns EINVAL',
      { flags: 0, exitSignal: 0x100 | SIGCHLD },
      Errno.EINVAL,
    ],
    [
      'CLONE_INTO_CGROUP with a struct smaller than VER2 returns EINVAL',
      { flags: CLONE_INTO_CGROUP, exitSignal: SIGCHLD, cgroup: 3, size: CLONE_ARGS_SIZE_VER1 },
      Errno.EINVAL,
    ],
    [
      'CLONE_INTO_CGROUP with a cgroup fd above INT_MAX returns EINVAL',
      { flags: CLONE_INTO_CGROUP, exitSignal: SIGCHLD, cgroup: 0x80000000 },
      Errno.EINVAL,
    ],
    ['an unknown flag above bit 33 returns EINVAL', { flags: 2 ** 34, exitSignal: SIGCHLD }, Errno.EINVAL],
    ['CLONE_DETACHED returns EINVAL', { flags: CLONE_DETACHED, exitSignal: SIGCHLD }, Errno.EINVAL],
    ['CSIGNAL bits in flags return EINVAL', { flags: SIGCHLD, exitSignal: SIGCHLD }, Errno.EINVAL],
    [
      'CLONE_SIGHAND together with CLONE_CLEAR_SIGHAND returns EINVAL',
      { flags: CLONE_VM + CLONE_SIGHAND + CLONE_CLEAR_SIGHAND, exitSignal: SIGCHLD },
      Errno.EINVAL,
    ],
    [
      'CLONE_THREAD with a non-zero exit_signal returns EINVAL',
      { flags: THREAD_FLAGS, exitSignal: SIGCHLD },
      Errno.EINVAL,
    ],
    [
      'CLONE_PARENT with a non-zero exit_signal returns EINVAL',
      { flags: CLONE_PARENT, exitSignal: SIGCHLD },
      Errno.EINVAL,
    ],
    [
      'a stack without a stack size returns EINVAL',
      { flags: 0, exitSignal: SIGCHLD, stack: 0x10000 },
      Errno.EINVAL,
    ],
    [
      'a stack size without a stack returns EINVAL',
      { flags: 0, exitSignal: SIGCHLD, stackSize: 4096 },
      Errno.EINVAL,
    ],
  ];
  for (const [name, args, errno] of cases) {
    it(`clone3: ${name}`, () => {
      const k = bootKernel();
      let r: Result<number> | undefined;
      let forks = -1;
      runProgram(k, function* (sys) {
        const before = sys.k.totalForks;
        r = yield* sys.clone3(args, exit0);
        forks = sys.k.totalForks - before;
      });
      expect(r).toEqual({ ok: false, errno });
      expect(forks).toBe(0);
      checkInvariants(k);
    });
  }

  it('clone3 accepts CLONE_NEWTIME although it lies inside CSIGNAL', () => {
    const k = bootKernel();
    let r: Result<number> | undefined;
    let child: Task | undefined;
    let parentTime: unknown;
    runProgram(k, function* (sys) {
      parentTime = sys.task.nsproxy!.time;
      r = yield* sys.clone3({ flags: CLONE_NEWTIME, exitSignal: SIGCHLD }, sleeper);
      child = taskOf(sys, r);
      expect(child.nsproxy!.time).not.toBe(parentTime);
      yield* sys.wait4(-1);
    });
    expect(r?.ok).toBe(true);
    checkInvariants(k);
  });

  it('clone3 with a valid stack pair and exit_signal 0 creates a clone child', () => {
    const k = bootKernel();
    let exitSignal = -2;
    runProgram(k, function* (sys) {
      const r = yield* sys.clone3({ flags: 0, exitSignal: 0, stack: 0x10000, stackSize: 4096 }, exit0);
      exitSignal = taskOf(sys, r).exitSignal;
      yield* sys.wait4(-1, 0x80000000);
    });
    expect(exitSignal).toBe(0);
    checkInvariants(k);
  });
});

describe('RLIMIT_NPROC exemptions and accounting (§1.7)', () => {
  const limit1 = { [RLIMIT_NPROC]: { cur: 1, max: 1 } };

  it('INIT_USER (real uid 0) is exempt from RLIMIT_NPROC even without capabilities', () => {
    const k = bootKernel();
    let r: Result<number> | undefined;
    runProgram(
      k,
      function* (sys) {
        r = yield* sys.fork(exit0);
        yield* sys.wait4(-1);
      },
      { uid: 0, caps: 0n, rlimits: limit1 },
    );
    expect(r?.ok).toBe(true);
    checkInvariants(k);
  });

  it('CAP_SYS_RESOURCE exempts an unprivileged uid from RLIMIT_NPROC', () => {
    const k = bootKernel();
    let r: Result<number> | undefined;
    runProgram(
      k,
      function* (sys) {
        r = yield* sys.fork(sleeper);
        expect(nproc(sys.k, 1000)).toBe(2);
        yield* sys.wait4(-1);
      },
      { uid: 1000, caps: capBit(CAP_SYS_RESOURCE), rlimits: limit1 },
    );
    expect(r?.ok).toBe(true);
    checkInvariants(k);
  });

  it('CAP_SYS_ADMIN exempts an unprivileged uid from RLIMIT_NPROC', () => {
    const k = bootKernel();
    let r: Result<number> | undefined;
    runProgram(
      k,
      function* (sys) {
        r = yield* sys.fork(exit0);
        yield* sys.wait4(-1);
      },
      { uid: 1000, caps: capBit(CAP_SYS_ADMIN), rlimits: limit1 },
    );
    expect(r?.ok).toBe(true);
    checkInvariants(k);
  });

  it('threads count as RLIMIT_NPROC units', () => {
    const k = bootKernel();
    const rs: Result<number>[] = [];
    runProgram(
      k,
      function* (sys) {
        rs.push(yield* sys.pthreadCreate(sleeper));
        expect(nproc(sys.k, 1000)).toBe(2);
        rs.push(yield* sys.pthreadCreate(sleeper));
        yield* sys.nanosleep(2_000_000_000);
      },
      { uid: 1000, rlimits: { [RLIMIT_NPROC]: { cur: 2, max: 2 } } },
    );
    expect(rs[0]?.ok).toBe(true);
    expect(rs[1]).toEqual({ ok: false, errno: Errno.EAGAIN });
    expect(k.lastCopyProcessFailure?.rule).toBe('RLIMIT_NPROC');
    checkInvariants(k);
  });

  it("the limit compared is the caller's: same uid, count shared, only the low-limit caller fails", () => {
    const k = bootKernel();
    const results: Record<string, Result<number>> = {};
    // A: uid 1000 with no limit; B: uid 1000 with RLIMIT_NPROC 2. Two tasks of uid 1000 exist.
    spawn(
      k,
      'A',
      function* (sys) {
        yield* sys.nanosleep(1_000_000);
        results.A = yield* sys.fork(exit0);
        yield* sys.wait4(-1);
        return 0;
      },
      { uid: 1000 },
    );
    spawn(
      k,
      'B',
      function* (sys) {
        results.B = yield* sys.fork(exit0);
        yield* sys.wait4(-1);
        return 0;
      },
      { uid: 1000, rlimits: { [RLIMIT_NPROC]: { cur: 2, max: 2 } } },
    );
    settle(k);
    expect(results.B).toEqual({ ok: false, errno: Errno.EAGAIN });
    expect(results.A?.ok).toBe(true);
    checkInvariants(k);
  });

  it('a child inherits a lowered RLIMIT_NPROC and is limited by it', () => {
    const k = bootKernel();
    let grandchild: Result<number> | undefined;
    runProgram(
      k,
      function* (sys) {
        yield* sys.prlimit(0, RLIMIT_NPROC, { cur: 2, max: 2 });
        yield* sys.fork(function* (child) {
          expect(child.task.signal.rlim[RLIMIT_NPROC]).toEqual({ cur: 2, max: 2 });
          grandchild = yield* child.fork(exit0);
          return 0;
        });
        yield* sys.wait4(-1);
      },
      { uid: 1000 },
    );
    expect(grandchild).toEqual({ ok: false, errno: Errno.EAGAIN });
    checkInvariants(k);
  });
});

describe('what a child shares and copies (§1.4)', () => {
  it('CLONE_VM shares the mm (mm_users+1); fork gives the child its own copy', () => {
    const k = bootKernel();
    runProgram(k, function* (sys) {
      const mm = sys.task.mm!;
      const shared = taskOf(sys, yield* sys.clone(CLONE_VM | SIGCHLD, sleeper));
      expect(shared.mm).toBe(mm);
      expect(mm.users).toBe(2);
      const copied = taskOf(sys, yield* sys.fork(sleeper));
      expect(copied.mm).not.toBe(mm);
      expect(copied.mm!.users).toBe(1);
      yield* sys.wait4(-1);
      yield* sys.wait4(-1);
      expect(mm.users).toBe(1);
    });
    checkInvariants(k);
  });

  it('a child of a task without an mm (kthreadd) has no mm', () => {
    const k = bootKernel();
    const r = k.withCurrent(k.kthreadd, () =>
      copyProcess(k, {
        flags: CLONE_FS | CLONE_FILES | CLONE_VM | CLONE_UNTRACED,
        exitSignal: SIGCHLD,
        fn: function* () {
          return 0;
        },
        name: 'kworker-test',
        kthread: true,
      }),
    );
    expect(r.ok).toBe(true);
    const p = (r as { value: Task }).value;
    expect(k.kthreadd.mm).toBeNull();
    expect(p.mm).toBeNull();
    expect(p.flags & PF_KTHREAD).toBe(PF_KTHREAD);
    k.wakeUpNewTask(p);
    settle(k);
    // kthreadd ignores SIGCHLD: the kthread is reaped on exit
    expect(k.tasks.has(p.pid)).toBe(false);
    checkInvariants(k);
  });

  it('CLONE_FS shares the fs_struct; without it the child gets a copy with the same cwd', () => {
    const k = bootKernel();
    runProgram(k, function* (sys) {
      const fs = sys.task.fs!;
      fs.cwd = '/srv';
      const shared = taskOf(sys, yield* sys.clone(CLONE_FS | SIGCHLD, sleeper));
      expect(shared.fs).toBe(fs);
      expect(fs.users).toBe(2);
      const copied = taskOf(sys, yield* sys.fork(sleeper));
      expect(copied.fs).not.toBe(fs);
      expect(copied.fs!.cwd).toBe('/srv');
      copied.fs!.cwd = '/tmp';
      expect(fs.cwd).toBe('/srv');
      yield* sys.wait4(-1);
      yield* sys.wait4(-1);
      expect(fs.users).toBe(1);
    });
    checkInvariants(k);
  });

  it('CLONE_FS while the fs_struct is in exec returns EAGAIN', () => {
    const k = bootKernel();
    let r: Result<number> | undefined;
    runProgram(k, function* (sys) {
      sys.task.fs!.inExec = true;
      r = yield* sys.clone(CLONE_FS | SIGCHLD, exit0);
      sys.task.fs!.inExec = false;
    });
    expect(r).toEqual({ ok: false, errno: Errno.EAGAIN });
    expect(k.lastCopyProcessFailure?.rule).toBe('copy_fs (in exec)');
    checkInvariants(k);
  });

  it('CLONE_FILES shares the fd table; fork duplicates it with the same open files', () => {
    const k = bootKernel();
    runProgram(k, function* (sys) {
      const fd = yield* sys.eventfd(0);
      expect(fd.ok).toBe(true);
      const files = sys.task.files!;
      const shared = taskOf(sys, yield* sys.clone(CLONE_FILES | SIGCHLD, sleeper));
      expect(shared.files).toBe(files);
      expect(files.count).toBe(2);
      const copied = taskOf(sys, yield* sys.fork(sleeper));
      expect(copied.files).not.toBe(files);
      expect(copied.files!.get((fd as { value: number }).value)).toBe(
        files.get((fd as { value: number }).value),
      );
      yield* sys.wait4(-1);
      yield* sys.wait4(-1);
      expect(files.count).toBe(1);
    });
    checkInvariants(k);
  });

  it('no_files gives the child no file table at all', () => {
    const k = bootKernel();
    runProgram(k, function* (sys) {
      const r = copyProcess(sys.k, {
        flags: CLONE_VM | CLONE_SIGHAND | CLONE_THREAD | CLONE_FS | CLONE_UNTRACED | CLONE_IO,
        exitSignal: 0,
        fn: function* () {
          return 0;
        },
        noFiles: true,
        userWorker: true,
      });
      expect(r.ok).toBe(true);
      const p = (r as { value: Task }).value;
      expect(p.files).toBeNull();
      expect(sys.task.files!.count).toBe(1);
      sys.k.wakeUpNewTask(p);
      yield* sys.nanosleep(1_000_000);
    });
    checkInvariants(k);
  });

  it('CLONE_SIGHAND shares dispositions; without it they are copied', () => {
    const k = bootKernel();
    runProgram(k, function* (sys) {
      yield* sys.rtSigaction(SIGUSR1, { handler: HANDLER });
      const shared = taskOf(sys, yield* sys.clone(CLONE_VM | CLONE_SIGHAND | SIGCHLD, sleeper));
      expect(shared.sighand).toBe(sys.task.sighand);
      const copied = taskOf(sys, yield* sys.fork(sleeper));
      expect(copied.sighand).not.toBe(sys.task.sighand);
      expect(copied.sighand.action[SIGUSR1]!.handler).toBe(HANDLER);
      yield* sys.rtSigaction(SIGUSR1, { handler: SIG_DFL });
      expect(copied.sighand.action[SIGUSR1]!.handler).toBe(HANDLER);
      expect(shared.sighand.action[SIGUSR1]!.handler).toBe(SIG_DFL);
      yield* sys.wait4(-1);
      yield* sys.wait4(-1);
    });
    checkInvariants(k);
  });

  it('CLONE_CLEAR_SIGHAND resets caught handlers to SIG_DFL but keeps ignored ones', () => {
    const k = bootKernel();
    runProgram(k, function* (sys) {
      yield* sys.rtSigaction(SIGUSR1, { handler: HANDLER });
      yield* sys.rtSigaction(SIGUSR2, { handler: SIG_IGN });
      const child = taskOf(
        sys,
        yield* sys.clone3({ flags: CLONE_CLEAR_SIGHAND, exitSignal: SIGCHLD }, sleeper),
      );
      expect(child.sighand.action[SIGUSR1]!.handler).toBe(SIG_DFL);
      expect(child.sighand.action[SIGUSR2]!.handler).toBe(SIG_IGN);
      expect(sys.task.sighand.action[SIGUSR1]!.handler).toBe(HANDLER);
      yield* sys.wait4(-1);
    });
    checkInvariants(k);
  });

  it('CLONE_THREAD shares signal_struct; fork gets a new one with a copy of the rlimits', () => {
    const k = bootKernel();
    runProgram(k, function* (sys) {
      yield* sys.prlimit(0, RLIMIT_NOFILE, { cur: 64, max: 4096 });
      const thread = taskOf(sys, yield* sys.pthreadCreate(sleeper));
      expect(thread.signal).toBe(sys.task.signal);
      expect(sys.task.signal.nrThreads).toBe(2);
      const child = taskOf(sys, yield* sys.fork(sleeper));
      expect(child.signal).not.toBe(sys.task.signal);
      expect(child.signal.rlim[RLIMIT_NOFILE]).toEqual({ cur: 64, max: 4096 });
      child.signal.rlim[RLIMIT_NOFILE] = { cur: 8, max: 8 };
      expect(sys.task.signal.rlim[RLIMIT_NOFILE]).toEqual({ cur: 64, max: 4096 });
      yield* sys.wait4(-1);
      yield* sys.nanosleep(1_000_000_000);
    });
    checkInvariants(k);
  });

  it('CLONE_THREAD shares creds; a forked child has equal creds that change independently', () => {
    const k = bootKernel();
    let childUid = -1;
    runProgram(
      k,
      function* (sys) {
        const thread = taskOf(sys, yield* sys.pthreadCreate(sleeper));
        expect(thread.cred).toBe(sys.task.cred);
        const child = taskOf(
          sys,
          yield* sys.fork(function* (c) {
            expect(c.task.cred.uid).toBe(1000);
            expect((yield* c.setresuid(2000, 2000, 2000)).ok).toBe(true);
            childUid = c.task.cred.uid;
            return 0;
          }),
        );
        expect(child.cred.uid).toBe(1000);
        yield* sys.wait4(-1);
        expect(sys.task.cred.uid).toBe(1000);
        yield* sys.nanosleep(1_000_000_000);
      },
      { uid: 1000, caps: capBit(7) /* CAP_SETUID */ },
    );
    expect(childUid).toBe(2000);
    checkInvariants(k);
  });

  it('CLONE_NEWUSER gives the child a new user namespace where it has full capabilities', () => {
    const k = bootKernel();
    runProgram(
      k,
      function* (sys) {
        const child = taskOf(sys, yield* sys.clone(CLONE_NEWUSER | SIGCHLD, sleeper));
        expect(child.cred.userNs).not.toBe(sys.task.cred.userNs);
        expect(child.cred.userNs.parent).toBe(sys.task.cred.userNs);
        expect(child.cred.userNs.ownerUid).toBe(1000);
        expect(child.cred.capEffective).not.toBe(0n);
        expect(sys.task.cred.capEffective).toBe(0n);
        yield* sys.wait4(-1);
      },
      { uid: 1000 },
    );
    checkInvariants(k);
  });

  it('without CLONE_NEW* the child shares the nsproxy; CLONE_NEWUTS gives a new uts namespace only', () => {
    const k = bootKernel();
    runProgram(k, function* (sys) {
      const ns = sys.task.nsproxy!;
      const same = taskOf(sys, yield* sys.fork(sleeper));
      expect(same.nsproxy).toBe(ns);
      const uts = taskOf(sys, yield* sys.clone(CLONE_NEWUTS | SIGCHLD, sleeper));
      expect(uts.nsproxy!.uts).not.toBe(ns.uts);
      expect(uts.nsproxy!.mnt).toBe(ns.mnt);
      expect(uts.nsproxy!.net).toBe(ns.net);
      expect(uts.nsproxy!.pidForChildren).toBe(ns.pidForChildren);
      yield* sys.wait4(-1);
      yield* sys.wait4(-1);
    });
    checkInvariants(k);
  });

  it('a new namespace without CAP_SYS_ADMIN returns EPERM', () => {
    const k = bootKernel();
    let r: Result<number> | undefined;
    runProgram(
      k,
      function* (sys) {
        r = yield* sys.clone(CLONE_NEWUTS | SIGCHLD, exit0);
        expect(nproc(sys.k, 1000)).toBe(1);
      },
      { uid: 1000 },
    );
    expect(r).toEqual({ ok: false, errno: Errno.EPERM });
    expect(k.lastCopyProcessFailure?.rule).toBe('copy_namespaces');
    checkInvariants(k);
  });

  it('CLONE_NEWUSER|CLONE_NEWUTS succeeds unprivileged: the capability is checked in the new user ns', () => {
    const k = bootKernel();
    let r: Result<number> | undefined;
    runProgram(
      k,
      function* (sys) {
        r = yield* sys.clone(CLONE_NEWUSER | CLONE_NEWUTS | SIGCHLD, exit0);
        yield* sys.wait4(-1);
      },
      { uid: 1000 },
    );
    expect(r?.ok).toBe(true);
    checkInvariants(k);
  });

  it('CLONE_NEWIPC together with CLONE_SYSVSEM returns EINVAL', () => {
    const k = bootKernel();
    let r: Result<number> | undefined;
    runProgram(k, function* (sys) {
      r = yield* sys.clone(CLONE_NEWIPC | CLONE_SYSVSEM | SIGCHLD, exit0);
    });
    expect(r).toEqual({ ok: false, errno: Errno.EINVAL });
    checkInvariants(k);
  });

  it('after unshare(CLONE_NEWTIME) a forked child enters the new time namespace, a CLONE_VM child does not', () => {
    const k = bootKernel();
    runProgram(k, function* (sys) {
      expect((yield* sys.unshare(CLONE_NEWTIME)).ok).toBe(true);
      const ns = sys.task.nsproxy!;
      expect(ns.timeForChildren).not.toBe(ns.time);
      const forked = taskOf(sys, yield* sys.fork(sleeper));
      expect(forked.nsproxy!.time).toBe(ns.timeForChildren);
      const vm = taskOf(sys, yield* sys.clone(CLONE_VM | SIGCHLD, sleeper));
      expect(vm.nsproxy!.time).toBe(ns.time);
      yield* sys.wait4(-1);
      yield* sys.wait4(-1);
    });
    checkInvariants(k);
  });

  it("the child joins its creator's cgroup and is charged there", () => {
    const k = bootKernel();
    const cg = makeCgroup(k, 'vm', { pidsMax: 10 });
    runProgram(
      k,
      function* (sys) {
        const child = taskOf(sys, yield* sys.fork(sleeper));
        expect(child.cgroups[0]).toBe(cg);
        expect(cg.tasks.has(child)).toBe(true);
        expect(cg.pids.counter).toBe(2);
        yield* sys.wait4(-1);
      },
      { cgroup: cg },
    );
    checkInvariants(k);
  });

  it('CLONE_INTO_CGROUP places and charges the child in the target cgroup instead', () => {
    const k = bootKernel();
    const home = makeCgroup(k, 'home', { pidsMax: 10 });
    const target = makeCgroup(k, 'target', { pidsMax: 10 });
    runProgram(
      k,
      function* (sys) {
        const r = yield* sys.clone3(
          { flags: CLONE_INTO_CGROUP, exitSignal: SIGCHLD, cgroup: 3 },
          sleeper,
          target,
        );
        const child = taskOf(sys, r);
        expect(child.cgroups[0]).toBe(target);
        expect(target.pids.counter).toBe(1);
        expect(home.pids.counter).toBe(1);
        yield* sys.wait4(-1);
      },
      { cgroup: home },
    );
    checkInvariants(k);
  });

  it('CLONE_INTO_CGROUP into a full cgroup returns EAGAIN although the creator has room', () => {
    const k = bootKernel();
    const home = makeCgroup(k, 'home', { pidsMax: 10 });
    const target = makeCgroup(k, 'target', { pidsMax: 0 });
    let r: Result<number> | undefined;
    runProgram(
      k,
      function* (sys) {
        r = yield* sys.clone3({ flags: CLONE_INTO_CGROUP, exitSignal: SIGCHLD, cgroup: 3 }, exit0, target);
      },
      { cgroup: home },
    );
    expect(r).toEqual({ ok: false, errno: Errno.EAGAIN });
    expect(target.pids.eventsMax).toBe(1);
    expect(home.pids.eventsMax).toBe(0);
    checkInvariants(k);
  });

  it('a new task is PF_FORKNOEXEC and named after its creator unless a name is given', () => {
    const k = bootKernel();
    runProgram(k, function* (sys) {
      const child = taskOf(sys, yield* sys.fork(sleeper));
      expect(child.comm).toBe('tester');
      expect(child.flags & PF_FORKNOEXEC).toBe(PF_FORKNOEXEC);
      const named = copyProcess(sys.k, {
        flags: THREAD_FLAGS,
        exitSignal: 0,
        fn: function* () {
          return 0;
        },
        name: 'a-very-long-worker-name',
      } satisfies KernelCloneArgs);
      expect(named.ok && named.value.comm).toBe('a-very-long-wor');
      if (named.ok) sys.k.wakeUpNewTask(named.value);
      yield* sys.wait4(-1);
      yield* sys.nanosleep(1_000_000);
    });
    checkInvariants(k);
  });

  it('a plain clone keeps the requested exit_signal', () => {
    const k = bootKernel();
    let sig = 0;
    runProgram(k, function* (sys) {
      yield* sys.rtSigaction(SIGUSR2, { handler: SIG_IGN });
      sig = taskOf(sys, yield* sys.clone(SIGUSR2, exit0)).exitSignal;
      expect((yield* sys.wait4(-1, 0x80000000)).ok).toBe(true);
    });
    expect(sig).toBe(SIGUSR2);
    checkInvariants(k);
  });
});
