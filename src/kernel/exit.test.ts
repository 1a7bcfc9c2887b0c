/**
 * Exit, reaping and reparenting (kernel-spec §1.5): exit_signal rules, zombies and wait,
 * autoreap, clone children, reparenting to init / a subreaper / a sibling thread, delayed
 * group leaders, pid-namespace init death, and what release_task uncharges.
 */
import { describe, expect, it } from 'vitest';
import { Errno, type Result } from './errno.js';
import type { WaitResult } from './exit.js';
import { checkInvariants } from './invariants.js';
import type { Kernel } from './kernel.js';
import type { KGen } from './sched.js';
import {
  __WALL,
  __WCLONE,
  CLONE_FILES,
  CLONE_FS,
  CLONE_NEWPID,
  CLONE_PARENT,
  CLONE_SIGHAND,
  CLONE_SYSVSEM,
  CLONE_THREAD,
  CLONE_VM,
  EXIT_ZOMBIE,
  PF_SIGNALED,
  WNOHANG,
} from './sched-consts.js';
import { SA_NOCLDWAIT, SIG_IGN, SIGCHLD, SIGKILL } from './signal-consts.js';
import { caughtSignals, PR_SET_CHILD_SUBREAPER, type Program, type Sys } from './syscalls.js';
import type { Task } from './task.js';
import { bootKernel, makeCgroup, settle, spawn } from './testing.js';

const THREAD_FLAGS = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
const HANDLER = 0x401000;
const MS = 1_000_000;

const exitWith = (code: number): Program =>
  function* () {
    return code;
  };
const sleepThenExit = (ms: number, code = 0): Program =>
  function* (sys) {
    yield* sys.nanosleep(ms * MS);
    return code;
  };

/** Spawn a process running `body`, run to quiescence, return the process. */
function runProgram(k: Kernel, body: (sys: Sys) => KGen<void>, o: { uid?: number } & object = {}): Task {
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

function taskOf(sys: Sys, r: Result<number>): Task {
  if (!r.ok) throw new Error(`expected success, got errno ${r.errno}`);
  const t = sys.k.findTaskByVpid(r.value, sys.task.activePidNs()!);
  if (!t) throw new Error(`no task ${r.value}`);
  return t;
}

const released = (k: Kernel, t: Task) => !k.tasks.has(t.pid) || k.tasks.get(t.pid) !== t;

/** The pid of a successful clone/fork. */
function pidOf(r: Result<number>): number {
  if (!r.ok) throw new Error(`expected success, got errno ${r.errno}`);
  return r.value;
}

/** Is `pid` (as seen by `sys`) still hashed, i.e. not yet released? */
const hashed = (sys: Sys, pid: number) => sys.k.findTaskByVpid(pid, sys.task.activePidNs()!) !== null;

describe('exit_signal and parent at creation', () => {
  it('a CLONE_THREAD child gets exit_signal -1 whatever was requested', () => {
    const k = bootKernel();
    let sig = 0;
    let parent: Task | undefined;
    const t = runProgram(k, function* (sys) {
      const th = taskOf(sys, yield* sys.clone(THREAD_FLAGS | SIGCHLD, sleepThenExit(1)));
      sig = th.exitSignal;
      parent = th.realParent;
      yield* sys.nanosleep(2 * MS);
    });
    expect(sig).toBe(-1);
    // the thread's real parent is the creator's real parent (init here), not the creator
    expect(parent).toBe(k.init);
    expect(t.realParent).toBe(k.init);
    checkInvariants(k);
  });

  it('a non-leader thread is released at exit and is never a zombie visible to wait', () => {
    const k = bootKernel();
    let waited: Result<WaitResult> | undefined;
    let stillHashed = true;
    runProgram(k, function* (sys) {
      const tid = pidOf(yield* sys.pthreadCreate(exitWith(0)));
      yield* sys.nanosleep(1 * MS);
      stillHashed = hashed(sys, tid);
      waited = yield* sys.wait4(-1, __WALL | WNOHANG);
    });
    expect(stillHashed).toBe(false);
    expect(waited).toEqual({ ok: false, errno: Errno.ECHILD });
    checkInvariants(k);
  });

  it("CLONE_PARENT makes the child a sibling with the creator's leader's exit_signal", () => {
    const k = bootKernel();
    let sibling: Task | undefined;
    let creatorWait: Result<WaitResult> | undefined;
    const reaped: number[] = [];
    const t = runProgram(k, function* (sys) {
      yield* sys.fork(function* (p) {
        // requested exit_signal 0 is replaced by the leader's SIGCHLD
        sibling = taskOf(p, yield* p.clone(CLONE_PARENT, sleepThenExit(1)));
        creatorWait = yield* p.wait4(-1, __WALL | WNOHANG);
        return 0;
      });
      for (let i = 0; i < 2; i++) {
        const r = yield* sys.wait4(-1);
        if (r.ok) reaped.push(r.value.pid);
      }
    });
    expect(sibling!.realParent).toBe(t);
    expect(sibling!.exitSignal).toBe(SIGCHLD);
    expect(creatorWait).toEqual({ ok: false, errno: Errno.ECHILD });
    expect(reaped).toContain(sibling!.pid);
    expect(released(k, sibling!)).toBe(true);
    checkInvariants(k);
  });

  it('CLONE_PARENT from a clone child (exit_signal 0) gives the sibling exit_signal 0, not the requested one', () => {
    const k = bootKernel();
    let sig = -2;
    runProgram(k, function* (sys) {
      yield* sys.clone(0, function* (p) {
        sig = taskOf(p, yield* p.clone(CLONE_PARENT | SIGCHLD, exitWith(0))).exitSignal;
        return 0;
      });
      yield* sys.nanosleep(1 * MS);
      expect((yield* sys.wait4(-1, __WCLONE)).ok).toBe(true);
      expect((yield* sys.wait4(-1, __WCLONE)).ok).toBe(true);
    });
    expect(sig).toBe(0);
    checkInvariants(k);
  });
});

describe('zombies, wait and autoreap', () => {
  it('a SIGCHLD child stays a zombie, signals its parent, and is released by wait4', () => {
    const k = bootKernel();
    let child: Task | undefined;
    let zombie = false;
    let waited: Result<WaitResult> | undefined;
    const t = runProgram(k, function* (sys) {
      yield* sys.rtSigaction(SIGCHLD, { handler: HANDLER });
      child = taskOf(sys, yield* sys.fork(exitWith(3)));
      yield* sys.nanosleep(1 * MS);
      zombie = child.exitState === EXIT_ZOMBIE && sys.k.tasks.get(child.pid) === child;
      waited = yield* sys.wait4(-1);
    });
    expect(zombie).toBe(true);
    expect(caughtSignals.get(t)).toContain(SIGCHLD);
    expect(waited).toEqual({ ok: true, value: { pid: child!.pid, status: 3 << 8 } });
    expect(released(k, child!)).toBe(true);
    checkInvariants(k);
  });

  it('a child of a parent with SIGCHLD set to SIG_IGN is reaped at exit; wait4 returns ECHILD', () => {
    const k = bootKernel();
    let goneBeforeWait = false;
    let waited: Result<WaitResult> | undefined;
    runProgram(k, function* (sys) {
      yield* sys.rtSigaction(SIGCHLD, { handler: SIG_IGN });
      const pid = pidOf(yield* sys.fork(exitWith(0)));
      yield* sys.nanosleep(1 * MS);
      goneBeforeWait = !hashed(sys, pid);
      waited = yield* sys.wait4(-1);
    });
    expect(goneBeforeWait).toBe(true);
    expect(waited).toEqual({ ok: false, errno: Errno.ECHILD });
    checkInvariants(k);
  });

  it('SA_NOCLDWAIT reaps the child at exit but still delivers SIGCHLD to the handler', () => {
    const k = bootKernel();
    let goneBeforeWait = false;
    const t = runProgram(k, function* (sys) {
      yield* sys.rtSigaction(SIGCHLD, { handler: HANDLER, flags: SA_NOCLDWAIT });
      const pid = pidOf(yield* sys.fork(exitWith(0)));
      yield* sys.nanosleep(1 * MS);
      goneBeforeWait = !hashed(sys, pid);
      expect(yield* sys.wait4(-1, WNOHANG)).toEqual({ ok: false, errno: Errno.ECHILD });
    });
    expect(goneBeforeWait).toBe(true);
    expect(caughtSignals.get(t)).toContain(SIGCHLD);
    checkInvariants(k);
  });

  it('an exit_signal 0 child sends no signal and is waitable only with __WCLONE or __WALL', () => {
    const k = bootKernel();
    const rs: Result<WaitResult>[] = [];
    let pids: number[] = [];
    const t = runProgram(k, function* (sys) {
      yield* sys.rtSigaction(SIGCHLD, { handler: HANDLER });
      const a = taskOf(sys, yield* sys.clone(0, exitWith(1)));
      const b = taskOf(sys, yield* sys.clone(0, exitWith(2)));
      pids = [a.pid, b.pid];
      yield* sys.nanosleep(1 * MS);
      expect(a.exitState).toBe(EXIT_ZOMBIE);
      rs.push(yield* sys.wait4(-1));
      rs.push(yield* sys.wait4(a.pid, __WCLONE));
      rs.push(yield* sys.wait4(b.pid, __WALL));
    });
    expect(rs).toEqual([
      { ok: false, errno: Errno.ECHILD },
      { ok: true, value: { pid: pids[0], status: 1 << 8 } },
      { ok: true, value: { pid: pids[1], status: 2 << 8 } },
    ]);
    expect(caughtSignals.get(t) ?? []).not.toContain(SIGCHLD);
    checkInvariants(k);
  });

  it('__WCLONE does not select an ordinary SIGCHLD child', () => {
    const k = bootKernel();
    let clone: Result<WaitResult> | undefined;
    let plain: Result<WaitResult> | undefined;
    runProgram(k, function* (sys) {
      yield* sys.fork(exitWith(0));
      yield* sys.nanosleep(1 * MS);
      clone = yield* sys.wait4(-1, __WCLONE | WNOHANG);
      plain = yield* sys.wait4(-1);
    });
    expect(clone).toEqual({ ok: false, errno: Errno.ECHILD });
    expect(plain?.ok).toBe(true);
    checkInvariants(k);
  });
});

describe('reparenting', () => {
  it('orphans are reparented to init, which reaps them', () => {
    const k = bootKernel();
    let orphan: Task | undefined;
    let parentAfter: Task | undefined;
    runProgram(k, function* (sys) {
      yield* sys.fork(function* (p) {
        orphan = taskOf(p, yield* p.fork(sleepThenExit(5)));
        return 0;
      });
      yield* sys.wait4(-1);
      yield* sys.nanosleep(1 * MS);
      parentAfter = orphan!.realParent;
    });
    expect(parentAfter).toBe(k.init);
    expect(released(k, orphan!)).toBe(true);
    checkInvariants(k);
  });

  it('a zombie child of an exiting parent is handed to init and reaped there', () => {
    const k = bootKernel();
    let child: Task | undefined;
    let wasZombie = false;
    runProgram(k, function* (sys) {
      yield* sys.fork(function* (p) {
        child = taskOf(p, yield* p.fork(exitWith(0)));
        yield* p.nanosleep(1 * MS);
        wasZombie = child.exitState === EXIT_ZOMBIE && p.k.tasks.get(child.pid) === child;
        return 0;
      });
      yield* sys.wait4(-1);
    });
    expect(wasZombie).toBe(true);
    expect(released(k, child!)).toBe(true);
    checkInvariants(k);
  });

  it('orphans go to the nearest PR_SET_CHILD_SUBREAPER ancestor, which can wait for them', () => {
    const k = bootKernel();
    let orphan: Task | undefined;
    let parentAfter: Task | undefined;
    const reaped: number[] = [];
    const t = runProgram(k, function* (sys) {
      expect((yield* sys.prctl(PR_SET_CHILD_SUBREAPER, 1)).ok).toBe(true);
      yield* sys.fork(function* (p) {
        orphan = taskOf(p, yield* p.fork(sleepThenExit(5, 7)));
        return 0;
      });
      for (;;) {
        const r = yield* sys.wait4(-1);
        if (!r.ok) break;
        reaped.push(r.value.status);
        if (orphan && !parentAfter && orphan.alive) parentAfter = orphan.realParent;
      }
    });
    expect(parentAfter).toBe(t);
    // the parent (status 0) and then the orphan (status 7) were both reaped by the subreaper
    expect(reaped).toEqual([0, 7 << 8]);
    checkInvariants(k);
  });

  it("orphans deeper than the subreaper's children also go to it when it was set after they were forked", () => {
    // kernel/sys.c PR_SET_CHILD_SUBREAPER: walk_process_tree() marks has_child_subreaper on
    // every descendant, so a grandchild's orphan is reparented to the subreaper.
    const k = bootKernel();
    let orphan: Task | undefined;
    let parentAfter: Task | undefined;
    const t = runProgram(k, function* (sys) {
      yield* sys.fork(function* (p) {
        yield* p.fork(function* (c) {
          orphan = taskOf(c, yield* c.fork(sleepThenExit(20)));
          yield* c.nanosleep(5 * MS);
          return 0;
        });
        yield* p.nanosleep(30 * MS);
        yield* p.wait4(-1);
        return 0;
      });
      yield* sys.nanosleep(1 * MS);
      yield* sys.prctl(PR_SET_CHILD_SUBREAPER, 1);
      yield* sys.nanosleep(10 * MS);
      parentAfter = orphan!.realParent;
      for (;;) if (!(yield* sys.wait4(-1)).ok) break;
    });
    expect(parentAfter).toBe(t);
    checkInvariants(k);
  });

  it('a child of an exiting thread is reparented to a live sibling thread and keeps exit_signal 0', () => {
    const k = bootKernel();
    let child: Task | undefined;
    let thread: Task | undefined;
    let parentBefore: Task | undefined;
    let parentAfter: Task | undefined;
    let sigAfter = -2;
    let waited: Result<WaitResult> | undefined;
    const t = runProgram(k, function* (sys) {
      yield* sys.pthreadCreate(function* (th) {
        thread = th.task;
        child = taskOf(th, yield* th.clone(0, sleepThenExit(5, 4)));
        parentBefore = child.realParent;
        return 0;
      });
      yield* sys.nanosleep(1 * MS);
      parentAfter = child!.realParent;
      sigAfter = child!.exitSignal;
      waited = yield* sys.wait4(-1, __WCLONE);
    });
    expect(parentBefore).toBe(thread);
    expect(released(k, thread!)).toBe(true);
    expect(parentAfter).toBe(t);
    expect(sigAfter).toBe(0);
    expect(waited).toEqual({ ok: true, value: { pid: child!.pid, status: 4 << 8 } });
    checkInvariants(k);
  });

  it('reparenting to another process resets exit_signal to SIGCHLD', () => {
    const k = bootKernel();
    let orphan: Task | undefined;
    let sigBefore = -2;
    let sigAfter = -2;
    runProgram(k, function* (sys) {
      expect((yield* sys.prctl(PR_SET_CHILD_SUBREAPER, 1)).ok).toBe(true);
      yield* sys.fork(function* (p) {
        orphan = taskOf(p, yield* p.clone(0, sleepThenExit(5)));
        sigBefore = orphan.exitSignal;
        return 0;
      });
      yield* sys.wait4(-1);
      sigAfter = orphan!.exitSignal;
      // now an ordinary child of the subreaper: plain wait4 collects it
      const r = yield* sys.wait4(-1);
      expect(r.ok && r.value.pid).toBe(orphan!.pid);
    });
    expect(sigBefore).toBe(0);
    expect(sigAfter).toBe(SIGCHLD);
    checkInvariants(k);
  });

  it('an orphaned exit_signal 0 child is reaped by init after the reset', () => {
    const k = bootKernel();
    let orphan: Task | undefined;
    runProgram(k, function* (sys) {
      yield* sys.fork(function* (p) {
        orphan = taskOf(p, yield* p.clone(0, sleepThenExit(5)));
        return 0;
      });
      yield* sys.wait4(-1);
    });
    expect(orphan!.realParent).toBe(k.init);
    expect(released(k, orphan!)).toBe(true);
    checkInvariants(k);
  });
});

describe('thread groups and pid namespaces', () => {
  it('a leader that exits before its threads is a zombie that wait cannot reap until the last thread exits', () => {
    const k = bootKernel();
    let leader: Task | undefined;
    let early: Result<WaitResult> | undefined;
    let leaderZombie = false;
    let late: Result<WaitResult> | undefined;
    let threadAliveAtLateWait = false;
    runProgram(k, function* (sys) {
      leader = taskOf(
        sys,
        yield* sys.fork(function* (p) {
          yield* p.pthreadCreate(sleepThenExit(10));
          return 5; // thread exit of the leader only
        }),
      );
      yield* sys.nanosleep(1 * MS);
      leaderZombie = leader.exitState === EXIT_ZOMBIE;
      threadAliveAtLateWait = leader.signal.threads.some((th) => th !== leader && th.alive);
      early = yield* sys.wait4(leader.pid, WNOHANG);
      late = yield* sys.wait4(leader.pid);
    });
    expect(leaderZombie).toBe(true);
    expect(threadAliveAtLateWait).toBe(true);
    expect(early).toEqual({ ok: true, value: { pid: 0, status: 0 } });
    expect(late).toEqual({ ok: true, value: { pid: leader!.pid, status: 5 << 8 } });
    expect(k.clock).toBeGreaterThanOrEqual(10 * MS);
    checkInvariants(k);
  });

  it('exit_group kills the other threads and the group is reaped as one', () => {
    const k = bootKernel();
    let threads: Task[] = [];
    let waited: Result<WaitResult> | undefined;
    runProgram(k, function* (sys) {
      const p = taskOf(
        sys,
        yield* sys.fork(function* (c) {
          yield* c.pthreadCreate(sleepThenExit(1000));
          yield* c.pthreadCreate(sleepThenExit(1000));
          yield* c.nanosleep(1 * MS);
          return yield* c.exitGroup(9);
        }),
      );
      yield* sys.nanosleep(2 * MS);
      threads = [...p.signal.threads];
      waited = yield* sys.wait4(p.pid);
    });
    expect(waited?.ok && waited.value.status).toBe(9 << 8);
    for (const th of threads) expect(released(k, th)).toBe(true);
    expect(k.clock).toBeLessThan(1000 * MS);
    checkInvariants(k);
  });

  it('when a pid-namespace init exits, every task in the namespace is killed with SIGKILL', () => {
    const k = bootKernel();
    let nsInit: Task | undefined;
    let victim: Task | undefined;
    let grandVictim: Task | undefined;
    let waited: Result<WaitResult> | undefined;
    runProgram(k, function* (sys) {
      yield* sys.unshare(CLONE_NEWPID);
      nsInit = taskOf(
        sys,
        yield* sys.fork(function* (init) {
          expect(init.getpid()).toBe(1);
          victim = taskOf(
            init,
            yield* init.fork(function* (v) {
              grandVictim = taskOf(v, yield* v.fork(sleepThenExit(10_000)));
              yield* v.nanosleep(10_000 * MS);
              return 0;
            }),
          );
          yield* init.nanosleep(2 * MS);
          return 0;
        }),
      );
      waited = yield* sys.wait4(nsInit.pid);
    });
    expect(waited).toEqual({ ok: true, value: { pid: nsInit!.pid, status: 0 } });
    for (const v of [victim!, grandVictim!]) {
      expect(released(k, v)).toBe(true);
      expect(v.flags & PF_SIGNALED).toBe(PF_SIGNALED);
      expect(v.exitCode & 0x7f).toBe(SIGKILL);
    }
    expect(k.clock).toBeLessThan(10_000 * MS);
    checkInvariants(k);
  });
});

describe('release_task uncharges', () => {
  it('a zombie stays charged (nproc, pids.current, nr_threads) until it is reaped', () => {
    const k = bootKernel();
    const cg = makeCgroup(k, 'vm', { pidsMax: 10 });
    const before: number[] = [];
    const zombie: number[] = [];
    const after: number[] = [];
    const snap = (kk: Kernel) => [kk.ucounts.get(kk.initUserNs, 1000).nproc, cg.pids.counter, kk.nrThreads];
    spawn(
      k,
      'tester',
      function* (sys) {
        before.push(...snap(sys.k));
        yield* sys.fork(exitWith(0));
        yield* sys.nanosleep(1 * MS);
        zombie.push(...snap(sys.k));
        yield* sys.wait4(-1);
        after.push(...snap(sys.k));
        return 0;
      },
      { uid: 1000, cgroup: cg },
    );
    settle(k);
    expect(zombie).toEqual(before.map((v) => v + 1));
    expect(after).toEqual(before);
    expect([k.ucounts.get(k.initUserNs, 1000).nproc, cg.pids.counter]).toEqual([0, 0]);
    checkInvariants(k);
  });

  it('an exiting thread is uncharged at once, with no wait', () => {
    const k = bootKernel();
    const cg = makeCgroup(k, 'vm', { pidsMax: 10 });
    const running: number[] = [];
    const afterExit: number[] = [];
    const snap = (kk: Kernel) => [kk.ucounts.get(kk.initUserNs, 1000).nproc, cg.pids.counter, kk.nrThreads];
    spawn(
      k,
      'tester',
      function* (sys) {
        yield* sys.pthreadCreate(sleepThenExit(1));
        running.push(...snap(sys.k));
        yield* sys.nanosleep(2 * MS);
        afterExit.push(...snap(sys.k));
        return 0;
      },
      { uid: 1000, cgroup: cg },
    );
    settle(k);
    expect(afterExit).toEqual(running.map((v) => v - 1));
    checkInvariants(k);
  });
});
