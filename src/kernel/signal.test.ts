/**
 * Signals, freezer, ptrace, exec and coredump for user workers (kernel-spec §3), checked
 * through what userspace sees: /proc/<pid>/task/<tid>/status, wait4 statuses, ptrace events.
 */
import { describe, expect, it } from 'vitest';
import type { Choices } from './choices.js';
import { Errno } from './errno.js';
import type { ExitHook } from './exit.js';
import { copyProcess, createIoThread } from './fork.js';
import { checkInvariants } from './invariants.js';
import type { Kernel } from './kernel.js';
import { kthreadCreateOnNode, kthreadShouldStop, kthreadStop } from './kthread.js';
import { procStatus } from './procfs.js';
import { type KGen, Op } from './sched.js';
import {
  __WALL,
  CLONE_FS,
  CLONE_SIGHAND,
  CLONE_THREAD,
  CLONE_UNTRACED,
  CLONE_VM,
  EXIT_DEAD,
  EXIT_ZOMBIE,
  TASK_INTERRUPTIBLE,
  TASK_RUNNING,
} from './sched-consts.js';
import {
  enableSignalFaults,
  freezeProcesses,
  frozenTasks,
  getSignal,
  type KSignal,
  thawProcesses,
  unfrozenTasks,
} from './signal.js';
import {
  SIG_BLOCK,
  SIG_UNBLOCK,
  SIGCONT,
  SIGKILL,
  SIGQUIT,
  SIGSTOP,
  SIGUSR1,
  sigsetOf,
} from './signal-consts.js';
import { caughtSignals, PTRACE_ATTACH, PTRACE_O_TRACECLONE, PTRACE_SEIZE, type Sys } from './syscalls.js';
import { type Task, taskStateLetter } from './task.js';
import { bootKernel, settle, spawn } from './testing.js';
import { kernelWorker, kernelWorkerStart } from './user-worker.js';
import { type VhostTask, vhostTaskCreate, vhostTaskStart, vhostTaskStop } from './vhost-task.js';

const MS = 1_000_000;

/** One field of /proc/<pid>/task/<tid>/status. */
function status(k: Kernel, t: Task, field: string): string {
  const line = procStatus(k, t)
    .split('\n')
    .find((l) => l.startsWith(`${field}:`));
  if (!line) throw new Error(`no ${field} in status of ${t}`);
  return line.slice(field.length + 1).trim();
}

/** A device's work queue: items queued by the owner, run by the worker. */
interface Work {
  queued: number;
  ran: number;
  killHandled: number;
}

/**
 * Create and start a vhost_task whose fn runs one queued item per call (6.4-rc5+), or loops
 * until vhost_task_should_stop (6.4-rc1), like a driver's worker.
 */
function startCountingWorker(sys: Sys, w: Work, name = `vhost-${sys.task.pid}`): VhostTask {
  const k = sys.k;
  let vt: VhostTask | null = null;
  const rc1 = k.profile.vhostTaskGeneration === 'vhost-task-rc1';
  const fn = rc1
    ? function* (): KGen<number> {
        const me = k.current!;
        for (;;) {
          me.state = TASK_INTERRUPTIBLE;
          if (vt!.stopRequested) break;
          if (w.queued > 0) {
            me.state = TASK_RUNNING;
            w.queued--;
            w.ran++;
            k.charge(k.profile.costs.vhostWork);
            continue;
          }
          yield Op.Schedule;
        }
        me.state = TASK_RUNNING;
        return 0;
      }
    : function* (): KGen<boolean> {
        if (w.queued === 0) return false;
        w.queued--;
        w.ran++;
        k.charge(k.profile.costs.vhostWork);
        return true;
      };
  const r = vhostTaskCreate(
    k,
    fn,
    function* () {
      w.killHandled++;
    },
    null,
    name,
  );
  if (!r.ok) throw new Error(`vhost_task_create: errno ${r.errno}`);
  vt = r.value;
  vhostTaskStart(k, vt);
  return vt;
}

/** Queue `n` items and wake the worker (vhost_work_queue → wake_up_process). */
function queueWork(k: Kernel, vt: VhostTask, w: Work, n: number): void {
  w.queued += n;
  k.wakeUpProcess(vt.task);
}

/** A parent shell that waits for its one child and records the wait4 status. */
function spawnShell(k: Kernel, out: { status?: number; errno?: number }): Task {
  return spawn(k, 'sh', function* (sys) {
    const r = yield* sys.wait4(-1, __WALL);
    if (r.ok) out.status = r.value.status;
    else out.errno = r.errno;
    return 0;
  });
}

describe('delivery', () => {
  it('routes a process-directed signal to a thread that does not block it, and keeps a thread-directed blocked one on its target', () => {
    const k = bootKernel({ profile: 'linux-6.12' });
    let helper: Task | null = null;
    let mainPendingAfterTgkill = '';
    const app = spawn(k, 'app', function* (sys) {
      yield* sys.rtSigaction(SIGUSR1, { handler: 0x401000 });
      yield* sys.rtSigprocmask(SIG_BLOCK, sigsetOf(SIGUSR1));
      const r = yield* sys.pthreadCreate(function* (s2) {
        yield* s2.rtSigprocmask(SIG_UNBLOCK, sigsetOf(SIGUSR1));
        const p = yield* s2.pause();
        return p.ok ? 1 : p.errno === Errno.EINTR ? 0 : 2;
      });
      if (!r.ok) return 1;
      helper = k.findTaskByVpid(r.value, k.initPidNs);
      yield* sys.nanosleep(MS);
      yield* sys.kill(sys.getpid(), SIGUSR1);
      yield* sys.nanosleep(MS);
      yield* sys.tgkill(sys.getpid(), sys.gettid(), SIGUSR1);
      mainPendingAfterTgkill = status(k, sys.task, 'SigPnd');
      yield* sys.nanosleep(MS);
      return 0;
    });
    k.run({ until: () => mainPendingAfterTgkill !== '' });
    expect(caughtSignals.get(helper!)).toEqual([SIGUSR1]);
    expect(caughtSignals.get(app)).toBeUndefined();
    expect(mainPendingAfterTgkill).toBe('0000000000000200');
    expect(status(k, app, 'ShdPnd')).toBe('0000000000000000');
    expect(status(k, app, 'SigBlk')).toBe('0000000000000200');
    settle(k);
    expect(caughtSignals.get(app)).toBeUndefined();
    checkInvariants(k);
  });

  it('leaves a tgkill of a blocked signal pending on a vhost_task worker while the process keeps running', () => {
    const k = bootKernel({ profile: 'linux-6.12' });
    const w: Work = { queued: 0, ran: 0, killHandled: 0 };
    const out: { status?: number } = {};
    const sh = spawnShell(k, out);
    let vt: VhostTask | null = null;
    let seen = '';
    spawn(
      k,
      'qemu',
      function* (sys) {
        vt = startCountingWorker(sys, w);
        yield* sys.nanosleep(MS);
        const r = yield* sys.tgkill(sys.getpid(), vt.task.pid, SIGUSR1);
        if (!r.ok) return 1;
        yield* sys.nanosleep(MS);
        seen = `${status(k, vt.task, 'SigPnd')} ${status(k, vt.task, 'ShdPnd')} ${taskStateLetter(vt.task)}`;
        queueWork(k, vt, w, 2);
        yield* sys.nanosleep(MS);
        yield* vhostTaskStop(sys.k, vt);
        return 7;
      },
      { parent: sh },
    );
    k.run({ until: () => seen !== '' });
    expect(seen).toBe('0000000000000200 0000000000000000 S');
    expect(vt!.task.sigpending).toBe(false);
    settle(k);
    expect(w.ran).toBe(2);
    expect(w.killHandled).toBe(0);
    expect(out.status).toBe(7 << 8);
    checkInvariants(k);
  });

  it('turns SIGKILL to any one thread, the vhost worker included, into a group kill', () => {
    for (const victim of ['worker', 'pthread'] as const) {
      const k = bootKernel({ profile: 'linux-6.12' });
      const w: Work = { queued: 0, ran: 0, killHandled: 0 };
      const out: { status?: number } = {};
      const sh = spawnShell(k, out);
      const tids: Record<string, number> = {};
      let owner: Task | null = null;
      owner = spawn(
        k,
        'qemu',
        function* (sys) {
          tids.worker = startCountingWorker(sys, w).task.pid;
          const r = yield* sys.pthreadCreate(function* (s2) {
            yield* s2.pause();
            return 0;
          });
          if (!r.ok) return 1;
          tids.pthread = r.value;
          yield* sys.nanosleep(100 * MS);
          return 0;
        },
        { parent: sh },
      );
      spawn(k, 'killer', function* (sys) {
        yield* sys.nanosleep(MS);
        const r = yield* sys.tgkill(owner!.pid, tids[victim]!, SIGKILL);
        return r.ok ? 0 : 1;
      });
      settle(k);
      expect(out.status, victim).toBe(SIGKILL);
      expect(k.liveTasks().map((t) => t.comm)).toEqual(['init', 'kthreadd']);
      // 6.10+: the worker left its loop on the kill and ran handle_sigkill
      expect(w.killHandled, victim).toBe(1);
      checkInvariants(k);
    }
  });

  it.each(['linux-6.4', 'linux-6.12'])(
    '%s: SIGSTOP stops every thread, the vhost_task worker included, and SIGCONT resumes them',
    (profile) => {
      const k = bootKernel({ profile });
      const w: Work = { queued: 0, ran: 0, killHandled: 0 };
      const out: { status?: number } = {};
      const sh = spawnShell(k, out);
      const threads: Task[] = [];
      const owner = spawn(
        k,
        'qemu',
        function* (sys) {
          const vt = startCountingWorker(sys, w);
          const r = yield* sys.pthreadCreate(function* (s2) {
            yield* s2.nanosleep(20 * MS);
            return 0;
          });
          if (!r.ok) return 1;
          threads.push(sys.task, vt.task, k.findTaskByVpid(r.value, k.initPidNs)!);
          yield* sys.nanosleep(10 * MS);
          queueWork(k, vt, w, 3);
          yield* sys.nanosleep(MS);
          yield* vhostTaskStop(sys.k, vt);
          return 0;
        },
        { parent: sh },
      );
      const stopped: string[] = [];
      const resumed: string[] = [];
      spawn(k, 'ctl', function* (sys) {
        yield* sys.nanosleep(MS);
        yield* sys.kill(owner.pid, SIGSTOP);
        yield* sys.nanosleep(MS);
        stopped.push(...threads.map(taskStateLetter));
        yield* sys.kill(owner.pid, SIGCONT);
        yield* sys.nanosleep(MS);
        resumed.push(...threads.map(taskStateLetter));
        return 0;
      });
      settle(k);
      expect(stopped).toEqual(['T', 'T', 'T']);
      expect(resumed).not.toContain('T');
      expect(w.ran).toBe(3);
      expect(out.status).toBe(0);
      checkInvariants(k);
    },
  );

  it('starts user workers with every signal but SIGKILL and SIGSTOP blocked (SigBlk fffffffffffbfeff)', () => {
    const k = bootKernel({ profile: 'linux-6.12' });
    const seen: Record<string, string> = {};
    spawn(k, 'qemu', function* (sys) {
      const w: Work = { queued: 0, ran: 0, killHandled: 0 };
      const vt = startCountingWorker(sys, w);
      const io = createIoThread(k, function* () {
        return 0;
      });
      if (!io.ok) return 1;
      seen.owner = status(k, sys.task, 'SigBlk');
      seen.vhost = status(k, vt.task, 'SigBlk');
      seen.io = status(k, io.value, 'SigBlk');
      seen.vhostIgn = status(k, vt.task, 'SigIgn');
      k.wakeUpNewTask(io.value);
      yield* vhostTaskStop(k, vt);
      return 0;
    });
    settle(k);
    expect(seen).toEqual({
      owner: '0000000000000000',
      vhost: 'fffffffffffbfeff',
      io: 'fffffffffffbfeff',
      vhostIgn: '0000000000000000',
    });
    checkInvariants(k);
  });
});

describe('get_signal for workers', () => {
  /**
   * A thread of the owner that sleeps until a signal is pending and then calls get_signal
   * itself, recording the result (undefined: get_signal never returned, do_group_exit ran).
   */
  function getSignalAfterGroupKill(profile: string, kind: 'user' | 'io' | 'plain'): KSignal | undefined {
    const k = bootKernel({ profile });
    let result: KSignal | undefined;
    let worker: Task | null = null;
    const owner = spawn(k, 'owner', function* (sys) {
      const body = function* (t: Task): KGen<number> {
        while (!t.sigpending) {
          t.state = TASK_INTERRUPTIBLE;
          yield Op.Schedule;
        }
        t.state = TASK_RUNNING;
        result = yield* getSignal(k);
        return 0;
      };
      const r =
        kind === 'io'
          ? createIoThread(k, body)
          : copyProcess(k, {
              flags: (CLONE_VM | CLONE_FS | CLONE_SIGHAND | CLONE_THREAD | CLONE_UNTRACED) >>> 0,
              exitSignal: 0,
              fn: body,
              userWorker: kind === 'user',
              noFiles: kind === 'user',
            });
      if (!r.ok) return 1;
      worker = r.value;
      k.wakeUpNewTask(r.value);
      yield* sys.pause();
      return 0;
    });
    spawn(k, 'killer', function* (sys) {
      yield* sys.nanosleep(MS);
      yield* sys.kill(owner.pid, SIGKILL);
      return 0;
    });
    settle(k);
    expect(worker).not.toBeNull();
    if (kind === 'user' && k.profile.pfUserWorker) expect(worker!.flags & k.profile.pfUserWorker).not.toBe(0);
    expect(owner.alive).toBe(false);
    checkInvariants(k);
    return result;
  }

  it('returns {fatal: true} to a PF_USER_WORKER on 6.4+ instead of calling do_group_exit', () => {
    expect(getSignalAfterGroupKill('linux-6.12', 'user')).toEqual({ sig: SIGKILL, fatal: true, handler: 0 });
    expect(getSignalAfterGroupKill('linux-6.4', 'user')).toEqual({ sig: SIGKILL, fatal: true, handler: 0 });
    expect(getSignalAfterGroupKill('linux-6.12', 'plain')).toBeUndefined();
  });

  it('exempts only PF_IO_WORKER before f9010dbdce91 (6.4-rc1, 6.1)', () => {
    expect(getSignalAfterGroupKill('linux-6.4-rc1', 'user')).toBeUndefined();
    expect(getSignalAfterGroupKill('linux-6.4-rc1', 'io')).toEqual({ sig: SIGKILL, fatal: true, handler: 0 });
    expect(getSignalAfterGroupKill('linux-6.1', 'io')).toEqual({ sig: SIGKILL, fatal: true, handler: 0 });
  });
});

describe('freezer', () => {
  /** Owner + vhost worker + (kthread era) a kthread; freeze, report, thaw, finish. */
  function freezeScenario(profile: string) {
    const k = bootKernel({ profile });
    const w: Work = { queued: 0, ran: 0, killHandled: 0 };
    let vt: VhostTask | null = null;
    let kt: Task | null = null;
    let ready = false;
    let done = false;
    const owner = spawn(k, 'qemu', function* (sys) {
      if (k.profile.vhostTaskGeneration) vt = startCountingWorker(sys, w);
      const r = yield* kthreadCreateOnNode(
        k,
        function* (): KGen<number> {
          const me = k.current!;
          for (;;) {
            me.state = TASK_INTERRUPTIBLE;
            if (kthreadShouldStop(k)) break;
            yield Op.Schedule;
          }
          me.state = TASK_RUNNING;
          return 0;
        },
        null,
        'kworker-test',
      );
      if (!r.ok) return 1;
      kt = r.value;
      k.wakeUpProcess(kt);
      ready = true;
      yield* sys.nanosleep(10 * MS);
      if (vt) {
        queueWork(k, vt, w, 1);
        yield* sys.nanosleep(MS);
        yield* vhostTaskStop(k, vt);
      }
      yield* kthreadStop(k, kt);
      done = true;
      return 0;
    });
    k.run({ until: () => ready });
    freezeProcesses(k);
    k.run({ maxSteps: 10_000 });
    const frozen = (t: Task | null) => (t ? frozenTasks.has(t) : null);
    const res = {
      owner: frozen(owner),
      worker: frozen(vt ? (vt as VhostTask).task : null),
      kthread: frozen(kt),
      kthreadd: frozen(k.kthreadd),
      unfrozenOfOwner: unfrozenTasks(k)
        .filter((t) => t === owner || t === (vt as VhostTask | null)?.task || t === kt)
        .map((t) => t.comm),
      ownerState: taskStateLetter(owner),
    };
    thawProcesses(k);
    settle(k);
    expect(done).toBe(true);
    checkInvariants(k);
    return { res, w };
  }

  it('linux-6.4+: the system freezer freezes the vhost_task thread with its owner, never the PF_NOFREEZE kthread', () => {
    for (const profile of ['linux-6.4', 'linux-6.12']) {
      const { res, w } = freezeScenario(profile);
      expect(res, profile).toEqual({
        owner: true,
        worker: true,
        kthread: false,
        kthreadd: false,
        unfrozenOfOwner: [],
        ownerState: 'D',
      });
      expect(w.ran).toBe(1);
    }
  });

  it('linux-6.4-rc1: the worker process ignores signals, never calls get_signal and is left unfrozen', () => {
    const { res, w } = freezeScenario('linux-6.4-rc1');
    expect(res.owner).toBe(true);
    expect(res.worker).toBe(false);
    expect(res.kthread).toBe(false);
    expect(res.unfrozenOfOwner).toEqual([expect.stringMatching(/^vhost-\d+$/)]);
    expect(w.ran).toBe(1);
  });

  it('linux-6.1: only the kthread exists besides the owner, and it is never frozen', () => {
    const { res } = freezeScenario('linux-6.1');
    expect(res).toMatchObject({ owner: true, worker: null, kthread: false, kthreadd: false });
    expect(res.unfrozenOfOwner).toEqual([]);
  });
});

describe('ptrace', () => {
  it('refuses PTRACE_ATTACH to a kthread and to a thread of the caller’s own group with EPERM', () => {
    const k = bootKernel({ profile: 'linux-6.12' });
    const res: Record<string, number | string> = {};
    spawn(k, 'gdb', function* (sys) {
      const a = yield* sys.ptrace(PTRACE_ATTACH, 2);
      res.kthreadd = a.ok ? 'ok' : a.errno;
      const r = yield* sys.pthreadCreate(function* (s2) {
        yield* s2.nanosleep(MS);
        return 0;
      });
      if (!r.ok) return 1;
      const b = yield* sys.ptrace(PTRACE_ATTACH, r.value);
      res.ownThread = b.ok ? 'ok' : b.errno;
      const w: Work = { queued: 0, ran: 0, killHandled: 0 };
      const vt = startCountingWorker(sys, w);
      const c = yield* sys.ptrace(PTRACE_SEIZE, vt.task.pid);
      res.ownWorker = c.ok ? 'ok' : c.errno;
      yield* vhostTaskStop(k, vt);
      return 0;
    });
    settle(k);
    expect(res).toEqual({ kthreadd: Errno.EPERM, ownThread: Errno.EPERM, ownWorker: Errno.EPERM });
    expect(k.kthreadd.ptrace).toBe(0);
    checkInvariants(k);
  });

  it('gives a PTRACE_O_TRACECLONE tracer a clone event for pthread_create but none for a vhost_task (CLONE_UNTRACED)', () => {
    const k = bootKernel({ profile: 'linux-6.12' });
    const w: Work = { queued: 0, ran: 0, killHandled: 0 };
    let pthread: Task | null = null;
    let worker: Task | null = null;
    const qemu = spawn(k, 'qemu', function* (sys) {
      yield* sys.nanosleep(MS); // let the tracer seize us
      const r = yield* sys.pthreadCreate(function* (s2) {
        yield* s2.nanosleep(MS);
        return 0;
      });
      if (!r.ok) return 1;
      pthread = k.findTaskByVpid(r.value, k.initPidNs);
      const vt = startCountingWorker(sys, w);
      worker = vt.task;
      yield* sys.nanosleep(2 * MS);
      yield* vhostTaskStop(k, vt);
      return 0;
    });
    let seize = -1;
    const gdb = spawn(k, 'gdb', function* (sys) {
      const r = yield* sys.ptrace(PTRACE_SEIZE, qemu.pid, PTRACE_O_TRACECLONE);
      seize = r.ok ? 0 : r.errno;
      yield* sys.nanosleep(2 * MS);
      return 0;
    });
    k.run({ until: () => worker !== null });
    expect(seize).toBe(0);
    expect(gdb.ptraceEvents.map((e) => [e.event, e.msg])).toEqual([['PTRACE_EVENT_CLONE', pthread!.pid]]);
    expect(pthread!.ptrace).not.toBe(0);
    expect(status(k, pthread!, 'TracerPid')).toBe(String(gdb.pid));
    expect(worker!.ptrace).toBe(0);
    expect(status(k, worker!, 'TracerPid')).toBe('0');
    settle(k);
    expect(gdb.ptraceEvents).toHaveLength(1);
    checkInvariants(k);
  });

  it('a traced thread that exits stays a zombie until its tracer exits, whose exit_ptrace releases it', () => {
    const k = bootKernel({ profile: 'linux-6.12' });
    let thread: Task | null = null;
    let gdbDone = false;
    const qemu = spawn(k, 'qemu', function* (sys) {
      const r = yield* sys.pthreadCreate(function* (s2) {
        yield* s2.nanosleep(2 * MS); // traced by now
        return 0;
      });
      if (!r.ok) return 1;
      thread = k.findTaskByVpid(r.value, k.initPidNs);
      yield* sys.nanosleep(10 * MS);
      return 0;
    });
    spawn(k, 'gdb', function* (sys) {
      yield* sys.nanosleep(MS);
      const r = yield* sys.ptrace(PTRACE_SEIZE, thread!.pid, 0);
      if (!r.ok) return 1;
      yield* sys.nanosleep(4 * MS);
      gdbDone = true;
      return 0;
    });
    k.run({ until: () => k.clock >= 4 * MS });
    // the thread exited but is a zombie for its tracer (do_notify_parent does not autoreap a traced task)
    expect(thread!.exitState).toBe(EXIT_ZOMBIE);
    expect(qemu.signal.threads).toContain(thread);
    k.run({ until: () => gdbDone && k.clock >= 6 * MS });
    expect(thread!.exitState).toBe(EXIT_DEAD);
    expect(qemu.signal.threads).not.toContain(thread);
    settle(k);
    checkInvariants(k);
  });

  it('seed-v5: kernel_worker forces CLONE_UNTRACED, so the tracer gets no event for it either', () => {
    const k = bootKernel({ profile: 'seed-v5' });
    let worker: Task | null = null;
    const qemu = spawn(k, 'qemu', function* (sys) {
      yield* sys.nanosleep(MS);
      const r = kernelWorker(
        k,
        function* () {
          return 0;
        },
        CLONE_FS,
        0,
      );
      if (!r.ok) return 1;
      worker = r.value;
      kernelWorkerStart(k, r.value, `vhost-${sys.task.pid}`);
      yield* sys.nanosleep(MS);
      return 0;
    });
    const gdb = spawn(k, 'gdb', function* (sys) {
      yield* sys.ptrace(PTRACE_SEIZE, qemu.pid, PTRACE_O_TRACECLONE);
      yield* sys.nanosleep(3 * MS);
      return 0;
    });
    k.run({ until: () => worker !== null });
    expect(worker!.ptrace).toBe(0);
    expect(gdb.ptraceEvents).toEqual([]);
    settle(k);
    checkInvariants(k);
  });
});

describe('exec and coredump', () => {
  it('de_thread kills the other threads; the exec’ing leader keeps its pid', () => {
    const k = bootKernel({ profile: 'linux-6.12' });
    const seen: Record<string, unknown> = {};
    const others: Task[] = [];
    const app = spawn(k, 'app', function* (sys) {
      for (let i = 0; i < 2; i++) {
        const r = yield* sys.pthreadCreate(function* (s2) {
          yield* s2.nanosleep(100 * MS);
          return 0;
        });
        if (r.ok) others.push(k.findTaskByVpid(r.value, k.initPidNs)!);
      }
      const pid = sys.getpid();
      const r = yield* sys.execve('/bin/true', function* (s3) {
        seen.pid = s3.getpid() === pid;
        seen.threads = status(k, s3.task, 'Threads');
        seen.name = status(k, s3.task, 'Name');
        seen.othersAlive = others.map((t) => t.alive);
        // the sleeping threads died on the exec's SIGKILL, not at the end of their 100 ms sleep
        seen.beforeTheirSleepEnds = k.clock < 50 * MS;
        return 0;
      });
      return r.ok ? 0 : 1;
    });
    settle(k);
    expect(others).toHaveLength(2);
    expect(seen).toEqual({
      pid: true,
      threads: '1',
      name: 'true',
      othersAlive: [false, false],
      beforeTheirSleepEnds: true,
    });
    expect(app.alive).toBe(false);
    checkInvariants(k);
  });

  it('de_thread from a non-leader thread: it takes over the leader’s pid', () => {
    const k = bootKernel({ profile: 'linux-6.12' });
    const seen: Record<string, unknown> = {};
    const app = spawn(k, 'app', function* (sys) {
      const pid = sys.getpid();
      const r = yield* sys.pthreadCreate(function* (s2) {
        const e = yield* s2.execve('/bin/true', function* (s3) {
          seen.tid = s3.gettid();
          seen.pid = s3.getpid();
          seen.threads = s3.task.signal.nrThreads;
          return 0;
        });
        return e.ok ? 0 : 1;
      });
      if (!r.ok) return 1;
      seen.expected = pid;
      yield* sys.nanosleep(100 * MS);
      return 0;
    });
    settle(k);
    expect(seen.expected).toBeGreaterThan(0);
    expect(seen.tid).toBe(seen.expected);
    expect(seen.pid).toBe(seen.expected);
    expect(seen.threads).toBe(1);
    // exchange_tids(): the old leader struct now carries the exec'ing thread's former tid
    expect(app.pid).not.toBe(seen.expected);
    checkInvariants(k);
  });

  it.each([
    ['linux-6.4', false],
    ['linux-6.5', false],
    ['linux-6.10', true],
    ['linux-6.12', true],
  ] as const)('%s: exec waits for the vhost_task worker: %s', (profile, waits) => {
    const k = bootKernel({ profile });
    const w: Work = { queued: 0, ran: 0, killHandled: 0 };
    const seen: Record<string, unknown> = {};
    let vt: VhostTask | null = null;
    spawn(k, 'qemu', function* (sys) {
      vt = startCountingWorker(sys, w);
      yield* sys.nanosleep(MS);
      const r = yield* sys.execve('/usr/bin/qemu-new', function* (s3) {
        seen.workerAlive = vt!.task.alive;
        seen.threads = status(k, s3.task, 'Threads');
        seen.killHandled = w.killHandled;
        // the lingering worker still runs work until the device release stops it
        queueWork(k, vt!, w, 1);
        yield* s3.nanosleep(MS);
        seen.ranAfterExec = w.ran;
        yield* vhostTaskStop(k, vt!);
        return 0;
      });
      return r.ok ? 0 : 1;
    });
    settle(k);
    if (waits) expect(seen).toEqual({ workerAlive: false, threads: '1', killHandled: 1, ranAfterExec: 0 });
    else expect(seen).toEqual({ workerAlive: true, threads: '2', killHandled: 0, ranAfterExec: 1 });
    expect(vt!.task.alive).toBe(false);
    checkInvariants(k);
  });

  /**
   * The owner dies of SIGQUIT (core). The vhost fd is released either in the owner's own
   * exit_files() (an exit hook calling vhost_task_stop), or by another process holding the
   * fd (libvirt passing it by SCM_RIGHTS), which stops the worker once the owner is a zombie.
   */
  function coredumpScenario(profile: string, release: 'owner-exit' | 'other-process') {
    const k = bootKernel({ profile });
    const w: Work = { queued: 0, ran: 0, killHandled: 0 };
    const out: { status?: number } = {};
    const sh = spawnShell(k, out);
    let vt: VhostTask | null = null;
    let owner: Task | null = null;
    if (release === 'owner-exit') {
      const hook: ExitHook = function* (kk, t) {
        if (t === owner && vt) yield* vhostTaskStop(kk, vt);
      };
      k.exitHooks.push(hook);
    }
    owner = spawn(
      k,
      'qemu',
      function* (sys) {
        vt = startCountingWorker(sys, w);
        yield* sys.pause();
        return 0;
      },
      { parent: sh },
    );
    spawn(k, 'kill', function* (sys) {
      yield* sys.nanosleep(MS);
      yield* sys.kill(owner!.pid, SIGQUIT);
      return 0;
    });
    let lingering: boolean | null = null;
    if (release === 'other-process') {
      spawn(k, 'libvirtd', function* (sys) {
        while (owner!.alive) yield* sys.nanosleep(MS);
        lingering = vt!.task.alive;
        if (lingering) {
          queueWork(k, vt!, w, 1);
          yield* sys.nanosleep(MS);
        }
        yield* vhostTaskStop(k, vt!);
        return 0;
      });
    }
    settle(k);
    const ev = k.trace.events;
    const coreAt = ev.findIndex((e) => e.event === 'coredump');
    const workerExitAt = ev.findIndex((e) => e.event === 'sched_process_exit' && e.pid === vt!.task.pid);
    expect(coreAt).toBeGreaterThan(0);
    expect(workerExitAt).toBeGreaterThan(0);
    expect(out.status).toBe(SIGQUIT | 0x80);
    checkInvariants(k);
    return { workerExitedBeforeDump: workerExitAt < coreAt, w, lingering };
  }

  it('linux-6.4 (vhostSignalHacks): the coredump does not wait for the worker, which lingers and keeps running work', () => {
    const r = coredumpScenario('linux-6.4', 'other-process');
    expect(r.workerExitedBeforeDump).toBe(false);
    expect(r.lingering).toBe(true);
    expect(r.w).toEqual({ queued: 0, ran: 1, killHandled: 0 });
  });

  it('linux-6.4: the device release in the owner’s exit_files() stops the lingering worker', () => {
    const r = coredumpScenario('linux-6.4', 'owner-exit');
    expect(r.workerExitedBeforeDump).toBe(false);
  });

  it.each(['linux-6.10', 'linux-6.12'])(
    '%s: the coredump waits for the worker, which exits at once and runs handle_sigkill',
    (profile) => {
      for (const release of ['owner-exit', 'other-process'] as const) {
        const r = coredumpScenario(profile, release);
        expect(r.workerExitedBeforeDump, release).toBe(true);
        expect(r.w.killHandled, release).toBe(1);
        if (release === 'other-process') expect(r.lingering).toBe(false);
      }
    },
  );
});

describe('signal-arrival faults', () => {
  /** answers `answer` at the signal-arrival point number `at` (0-based), 0 everywhere else */
  function faultAt(at: number, answer: number): Choices & { points: { n: number }[] } {
    const points: { n: number }[] = [];
    return {
      points,
      choose(kind, n) {
        if (kind !== 'fault-signal') return 0;
        points.push({ n });
        return points.length - 1 === at ? answer : 0;
      },
    };
  }

  it('offer SIGKILL and SIGSTOP for every user process before each slice, and none when not enabled', () => {
    const off = faultAt(-1, 0);
    const k0 = bootKernel({ profile: 'linux-6.12', choices: off });
    spawn(k0, 'qemu', function* (sys) {
      yield* sys.nanosleep(MS);
      return 0;
    });
    settle(k0);
    expect(off.points).toEqual([]);

    const on = faultAt(-1, 0);
    const k = bootKernel({ profile: 'linux-6.12', choices: on });
    enableSignalFaults(k);
    spawn(k, 'qemu', function* (sys) {
      yield* sys.nanosleep(MS);
      return 0;
    });
    spawn(k, 'gdb', function* (sys) {
      yield* sys.nanosleep(MS);
      return 0;
    });
    settle(k);
    expect(on.points.length).toBeGreaterThan(0);
    // 1 (no signal) + 2 signals × 2 processes; init, kthreads and exiting groups are not candidates
    expect(on.points[0]!.n).toBe(5);
    expect(Math.min(...on.points.map((p) => p.n))).toBe(3);
  });

  it('answer 1 kills the first process (SIGKILL to the whole group), answer 4 stops the second', () => {
    const killed = faultAt(0, 1);
    const k = bootKernel({ profile: 'linux-6.12', choices: killed });
    enableSignalFaults(k);
    let ran = false;
    const qemu = spawn(k, 'qemu', function* (sys) {
      yield* sys.nanosleep(MS);
      ran = true;
      return 0;
    });
    const gdb = spawn(k, 'gdb', function* (sys) {
      yield* sys.nanosleep(MS);
      return 0;
    });
    settle(k);
    expect(ran).toBe(false);
    expect(qemu.exitCode & 0x7f).toBe(SIGKILL);
    expect(gdb.exitCode).toBe(0);
    checkInvariants(k);

    const stopped = faultAt(0, 4);
    const k2 = bootKernel({ profile: 'linux-6.12', choices: stopped });
    enableSignalFaults(k2);
    spawn(k2, 'qemu', function* (sys) {
      yield* sys.nanosleep(MS);
      return 0;
    });
    const gdb2 = spawn(k2, 'gdb', function* (sys) {
      yield* sys.nanosleep(MS);
      return 0;
    });
    k2.run({ untilTime: 5 * MS });
    expect(taskStateLetter(gdb2)).toBe('T');
  });
});
