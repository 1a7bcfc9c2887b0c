/**
 * User workers: the V5 kernel_worker() API (kernel-spec §5.2), every vhost_task generation
 * (§6.1–6.3) driving a small counting worker, and create_io_thread's flags (§1.8).
 */
import { describe, expect, it } from 'vitest';
import { Errno } from './errno.js';
import type { ExitHook } from './exit.js';
import { copyProcess, createIoThread } from './fork.js';
import { checkInvariants } from './invariants.js';
import type { Kernel } from './kernel.js';
import { procStat, procStatus, procTaskList } from './procfs.js';
import { type KGen, Op } from './sched.js';
import {
  __WALL,
  __WCLONE,
  CLONE_CLEAR_SIGHAND,
  CLONE_FILES,
  CLONE_FS,
  CLONE_SIGHAND,
  CLONE_UNTRACED,
  CLONE_VM,
  PF_IO_WORKER,
  PF_USER_WORKER,
  PF_USER_WORKER_V5,
  TASK_INTERRUPTIBLE,
  TASK_NEW,
  TASK_RUNNING,
  WNOHANG,
} from './sched-consts.js';
import { SIGCHLD, SIGKILL, SIGUSR1 } from './signal-consts.js';
import { type Sys, setTaskComm } from './syscalls.js';
import type { Task } from './task.js';
import { bootKernel, settle, spawn, tasksNamed } from './testing.js';
import {
  KERN_WORKER_IO,
  KERN_WORKER_NO_FILES,
  KERN_WORKER_SIG_IGN,
  KERN_WORKER_USER,
  kernelWorker,
  kernelWorkerFlagsValid,
  kernelWorkerStart,
} from './user-worker.js';
import {
  type VhostTask,
  vhostTaskCreate,
  vhostTaskStart,
  vhostTaskStop,
  vhostTaskWake,
  vhostTaskWakeLockless,
} from './vhost-task.js';

const MS = 1_000_000;

function status(k: Kernel, t: Task, field: string): string {
  const line = procStatus(k, t)
    .split('\n')
    .find((l) => l.startsWith(`${field}:`));
  if (!line) throw new Error(`no ${field} in status of ${t}`);
  return line.slice(field.length + 1).trim();
}

/** field 9 of /proc/<pid>/stat */
function statFlags(k: Kernel, t: Task): number {
  return Number(procStat(k, t).split(' ')[8]);
}

interface Work {
  queued: number;
  ran: number;
  killHandled: number;
}
const newWork = (): Work => ({ queued: 0, ran: 0, killHandled: 0 });

/**
 * Create and start a vhost_task with a driver fn that runs one queued item per call
 * (6.4-rc5+) or, for 6.4-rc1, loops until vhost_task_should_stop.
 */
function startCountingWorker(
  sys: Sys,
  w: Work,
  o: { name?: string; withKillHandler?: boolean } = {},
): VhostTask {
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
  const handler =
    o.withKillHandler === false
      ? null
      : function* () {
          w.killHandled++;
        };
  const r = vhostTaskCreate(k, fn, handler, null, o.name ?? `vhost-${sys.task.pid}`);
  if (!r.ok) throw new Error(`vhost_task_create: errno ${r.errno}`);
  vt = r.value;
  vhostTaskStart(k, vt);
  return vt;
}

function queueWork(k: Kernel, vt: VhostTask, w: Work, n: number): void {
  w.queued += n;
  k.wakeUpProcess(vt.task);
}

describe('V5 kernel_worker (seed-v5)', () => {
  it('kernel_worker_flags_valid: known flags only; SIG_IGN never with CLONE_SIGHAND or CLONE_CLEAR_SIGHAND', () => {
    const all = KERN_WORKER_IO | KERN_WORKER_USER | KERN_WORKER_NO_FILES | KERN_WORKER_SIG_IGN;
    expect(kernelWorkerFlagsValid(CLONE_FS, all)).toBe(true);
    expect(kernelWorkerFlagsValid(CLONE_FS, KERN_WORKER_USER | (1 << 4))).toBe(false);
    expect(kernelWorkerFlagsValid(CLONE_FS | CLONE_SIGHAND, KERN_WORKER_USER | KERN_WORKER_SIG_IGN)).toBe(
      false,
    );
    expect(kernelWorkerFlagsValid(CLONE_FS + CLONE_CLEAR_SIGHAND, KERN_WORKER_SIG_IGN)).toBe(false);
    expect(kernelWorkerFlagsValid(CLONE_FS | CLONE_SIGHAND, KERN_WORKER_USER | KERN_WORKER_IO)).toBe(true);
    expect(kernelWorkerFlagsValid(CLONE_FS + CLONE_CLEAR_SIGHAND, KERN_WORKER_NO_FILES)).toBe(true);
    const k = bootKernel({ profile: 'seed-v5' });
    checkInvariants(k);
  });

  it('kernel_worker returns EINVAL for invalid flags before creating anything', () => {
    const k = bootKernel({ profile: 'seed-v5' });
    const seen: Record<string, unknown> = {};
    spawn(k, 'qemu', function* () {
      const before = k.nrThreads;
      const body = function* () {
        return 0;
      };
      const a = kernelWorker(k, body, CLONE_FS | CLONE_SIGHAND, KERN_WORKER_SIG_IGN);
      const b = kernelWorker(k, body, CLONE_FS, 1 << 7);
      seen.a = a.ok ? 'ok' : a.errno;
      seen.b = b.ok ? 'ok' : b.errno;
      seen.created = k.nrThreads - before;
      return 0;
    });
    settle(k);
    expect(seen).toEqual({ a: Errno.EINVAL, b: Errno.EINVAL, created: 0 });
    checkInvariants(k);
  });

  it('the vhost V5 worker: a separate process with no file table, signals ignored, PF_USER_WORKER 0x01000000, autoreaped', () => {
    const k = bootKernel({ profile: 'seed-v5' });
    const seen: Record<string, unknown> = {};
    let worker: Task | null = null;
    let release = false;
    const qemu = spawn(k, 'qemu', function* (sys) {
      const r = kernelWorker(
        k,
        function* (t): KGen<number> {
          while (!release) {
            t.state = TASK_INTERRUPTIBLE;
            yield Op.Schedule;
            t.state = TASK_RUNNING;
          }
          return 0;
        },
        CLONE_FS,
        KERN_WORKER_NO_FILES | KERN_WORKER_SIG_IGN,
      );
      if (!r.ok) return 1;
      worker = r.value;
      seen.stateBeforeStart = r.value.state === TASK_NEW;
      kernelWorkerStart(k, r.value, `vhost-${sys.getpid()}`);
      yield* sys.nanosleep(MS);
      const kill = yield* sys.kill(r.value.pid, SIGKILL);
      seen.kill = kill.ok;
      yield* sys.nanosleep(MS);
      seen.aliveAfterKill = r.value.alive;
      release = true;
      k.wakeUpProcess(r.value);
      yield* sys.nanosleep(MS);
      // the do_notify_parent hack reaped it: nothing left for wait4
      const w = yield* sys.wait4(-1, __WALL | WNOHANG);
      seen.wait = w.ok ? w.value.pid : w.errno;
      return 0;
    });
    k.run({ until: () => seen.aliveAfterKill !== undefined });
    const t = worker!;
    expect(status(k, t, 'Name')).toBe(`vhost-${qemu.pid}`);
    expect(status(k, t, 'Tgid')).toBe(String(t.pid));
    expect(status(k, t, 'PPid')).toBe(String(qemu.pid));
    expect(status(k, t, 'SigIgn')).toBe('ffffffffffffffff');
    expect(status(k, t, 'FDSize')).toBe('0');
    expect(t.files).toBeNull();
    expect(t.mm).toBe(qemu.mm);
    expect(t.fs).toBe(qemu.fs);
    expect(t.sighand).not.toBe(qemu.sighand);
    expect(t.exitSignal).toBe(0);
    expect(statFlags(k, t) & PF_USER_WORKER_V5).toBe(PF_USER_WORKER_V5);
    expect(statFlags(k, t) & PF_USER_WORKER).toBe(0);
    expect(t.ptrace).toBe(0);
    settle(k);
    expect(seen).toEqual({ stateBeforeStart: true, kill: true, aliveAfterKill: true, wait: Errno.ECHILD });
    expect(t.tasksAlive()).toBe(false);
    checkInvariants(k);
  });

  it('without the hack a plain exit_signal-0 clone child stays a zombie until wait4(__WCLONE)', () => {
    const k = bootKernel({ profile: 'seed-v5' });
    const seen: Record<string, unknown> = {};
    spawn(k, 'qemu', function* (sys) {
      const r = yield* sys.clone(CLONE_VM | CLONE_FS, function* () {
        return 3;
      });
      if (!r.ok) return 1;
      yield* sys.nanosleep(MS);
      seen.zombie = status(k, k.findTaskByVpid(r.value, k.initPidNs)!, 'State');
      const w = yield* sys.wait4(r.value, __WCLONE);
      seen.wait = w.ok ? [w.value.pid === r.value, w.value.status] : w.errno;
      return 0;
    });
    settle(k);
    expect(seen).toEqual({ zombie: 'Z (zombie)', wait: [true, 3 << 8] });
    checkInvariants(k);
  });

  it('a worker without NO_FILES shares (CLONE_FILES) the file table, and SIGCHLD exit_signal reaches the parent', () => {
    const k = bootKernel({ profile: 'seed-v5' });
    const seen: Record<string, unknown> = {};
    let worker: Task | null = null;
    const qemu = spawn(k, 'qemu', function* (sys) {
      yield* sys.rtSigaction(SIGCHLD, { handler: 0x401000 });
      const r = kernelWorker(
        k,
        function* () {
          return 0;
        },
        CLONE_FS | CLONE_FILES | SIGCHLD,
        0,
      );
      if (!r.ok) return 1;
      worker = r.value;
      seen.sharedFiles = r.value.files === sys.task.files;
      kernelWorkerStart(k, r.value, 'a-worker-with-a-very-long-name');
      yield* sys.nanosleep(MS);
      return 0;
    });
    k.run({ until: () => seen.sharedFiles !== undefined });
    expect(worker!.comm).toBe('a-worker-with-a');
    settle(k);
    expect(seen.sharedFiles).toBe(true);
    expect(
      k.trace
        .of('signal_generate')
        .some((e) => e.text.startsWith(`sig=${SIGCHLD} `) && e.text.includes(`pid=${qemu.pid} `)),
    ).toBe(true);
    checkInvariants(k);
  });

  it('kernel_worker_start WARNs for a task that is not a user worker (and still names and wakes it)', () => {
    const k = bootKernel({ profile: 'seed-v5' });
    let t: Task | null = null;
    let ran = false;
    spawn(k, 'owner', function* (sys) {
      const r = copyProcess(k, {
        flags: (CLONE_VM | CLONE_UNTRACED) >>> 0,
        exitSignal: 0,
        fn: function* () {
          ran = true;
          return 0;
        },
      });
      if (!r.ok) return 1;
      t = r.value;
      kernelWorkerStart(k, r.value, 'not-a-worker');
      yield* sys.wait4(r.value.pid, __WCLONE);
      return 0;
    });
    settle(k);
    expect(k.warnings.map((w) => w.where)).toEqual(['kernel_worker_start']);
    expect(t!.comm).toBe('not-a-worker');
    expect(ran).toBe(true);
    checkInvariants(k);
  });
});

describe('vhost_task generations', () => {
  const GENERATIONS = [
    ['linux-6.4-rc1', 'vhost-task-rc1'],
    ['linux-6.4', 'vhost-task-thread'],
    ['linux-6.10', 'vhost-task-sigkill'],
    ['linux-6.12', 'vhost-task-sigkill'],
    ['linux-6.17', 'vhost-task-sigkill'],
  ] as const;

  it.each(GENERATIONS)('%s (%s): identity, work, stop', (profile, gen) => {
    const k = bootKernel({ profile });
    expect(k.profile.vhostTaskGeneration).toBe(gen);
    const w = newWork();
    const seen: Record<string, unknown> = {};
    let vt: VhostTask | null = null;
    let kvm: VhostTask | null = null;
    const sh = spawn(k, 'sh', function* (sys) {
      const r = yield* sys.wait4(-1);
      seen.exit = r.ok ? r.value.status : r.errno;
      return 0;
    });
    const qemu = spawn(
      k,
      'qemu',
      function* (sys) {
        vt = startCountingWorker(sys, w);
        kvm = startCountingWorker(sys, newWork(), { name: 'kvm-nx-lpage-recovery' });
        yield* sys.nanosleep(MS);
        queueWork(k, vt, w, 3);
        yield* sys.nanosleep(MS);
        seen.ranBeforeStop = w.ran;
        seen.threads = status(k, sys.task, 'Threads');
        seen.taskDir = procTaskList(sys.task, k.initPidNs).length;
        yield* vhostTaskStop(k, vt);
        yield* vhostTaskStop(k, kvm);
        seen.gone = !vt.task.tasksAlive() && !kvm.task.tasksAlive();
        return 0;
      },
      { parent: sh },
    );
    k.run({ until: () => seen.ranBeforeStop !== undefined });
    const t = vt!.task;
    expect(t.comm).toBe(`vhost-${qemu.pid}`);
    expect(kvm!.task.comm).toBe('kvm-nx-lpage-re');
    expect(tasksNamed(k, /^vhost-/)).toEqual([t]);
    expect(t.mm).toBe(qemu.mm);
    expect(t.files).toBeNull();
    expect(t.ptrace).toBe(0);
    expect(statFlags(k, t) & PF_USER_WORKER).toBe(PF_USER_WORKER);
    expect(t.cred.ucounts).toBe(qemu.cred.ucounts);
    if (gen === 'vhost-task-rc1') {
      // a separate process: own tgid, child of the owner, exit_signal 0, signals ignored
      expect(status(k, t, 'Tgid')).toBe(String(t.pid));
      expect(status(k, t, 'PPid')).toBe(String(qemu.pid));
      expect(t.exitSignal).toBe(0);
      expect(status(k, t, 'SigIgn')).toBe('ffffffffffffffff');
      expect(seen.threads).toBe('1');
      expect(seen.taskDir).toBe(1);
    } else {
      // a thread of the owner: same tgid, PPid of the process, exit_signal -1
      expect(status(k, t, 'Tgid')).toBe(String(qemu.pid));
      expect(status(k, t, 'PPid')).toBe(String(sh.pid));
      expect(t.exitSignal).toBe(-1);
      expect(t.sighand).toBe(qemu.sighand);
      expect(status(k, t, 'SigBlk')).toBe('fffffffffffbfeff');
      expect(seen.threads).toBe('3');
      expect(seen.taskDir).toBe(3);
    }
    settle(k);
    expect(seen).toMatchObject({ ranBeforeStop: 3, gone: true, exit: 0 });
    expect(w.killHandled).toBe(0);
    // 6.4-rc1's vhost_task_stop reaped its clone child with kernel_wait4(__WCLONE)
    const reapedByQemu = k.trace.of('sched_process_wait').filter((e) => e.pid === qemu.pid);
    expect(reapedByQemu.length).toBe(gen === 'vhost-task-rc1' ? 2 : 0);
    checkInvariants(k);
  });

  /**
   * SIGKILL the owner; a second process holding the device (libvirt with the fd) keeps
   * queueing work, then releases it (vhost_task_stop).
   */
  function killScenario(profile: string) {
    const k = bootKernel({ profile });
    const w = newWork();
    let vt: VhostTask | null = null;
    const seen: Record<string, unknown> = {};
    const qemu = spawn(k, 'qemu', function* (sys) {
      vt = startCountingWorker(sys, w);
      yield* sys.pause();
      return 0;
    });
    spawn(k, 'libvirtd', function* (sys) {
      yield* sys.nanosleep(MS);
      yield* sys.kill(qemu.pid, SIGKILL);
      yield* sys.nanosleep(MS);
      seen.ownerAlive = qemu.alive;
      seen.workerAliveAfterKill = vt!.task.alive;
      seen.ownerState = status(k, qemu, 'State');
      seen.killHandledBeforeStop = w.killHandled;
      queueWork(k, vt!, w, 2);
      yield* sys.nanosleep(MS);
      seen.ranAfterKill = w.ran;
      yield* vhostTaskStop(k, vt!);
      seen.stopped = !vt!.task.alive;
      return 0;
    });
    settle(k);
    expect(vt!.task.tasksAlive()).toBe(false);
    expect(qemu.tasksAlive()).toBe(false);
    checkInvariants(k);
    return { seen, w };
  }

  it.each(['linux-6.4', 'linux-6.5'])(
    '%s: after SIGKILL the worker lingers, still running work, until vhost_task_stop',
    (profile) => {
      const { seen, w } = killScenario(profile);
      expect(seen).toEqual({
        ownerAlive: false,
        workerAliveAfterKill: true,
        // the leader waits as a zombie for its last thread
        ownerState: 'Z (zombie)',
        killHandledBeforeStop: 0,
        ranAfterKill: 2,
        stopped: true,
      });
      expect(w.killHandled).toBe(0);
    },
  );

  it.each(['linux-6.10', 'linux-6.12', 'linux-6.17'])(
    '%s: after SIGKILL the worker exits at once and runs handle_sigkill; stop just waits',
    (profile) => {
      const { seen, w } = killScenario(profile);
      expect(seen).toEqual({
        ownerAlive: false,
        workerAliveAfterKill: false,
        ownerState: 'X (dead)',
        killHandledBeforeStop: 1,
        ranAfterKill: 0,
        stopped: true,
      });
      expect(w.killHandled).toBe(1);
    },
  );

  it('linux-6.4-rc1: SIGKILL to the worker process is ignored; the owner’s release stops and reaps it', () => {
    const k = bootKernel({ profile: 'linux-6.4-rc1' });
    const w = newWork();
    let vt: VhostTask | null = null;
    const seen: Record<string, unknown> = {};
    let qemu: Task | null = null;
    // the vhost fd's release in the owner's exit_files(): vhost_task_stop + kernel_wait4
    const release: ExitHook = function* (kk, t) {
      if (t !== qemu || !vt) return;
      seen.workerAliveAtRelease = vt.task.alive;
      seen.ranBeforeRelease = w.ran;
      yield* vhostTaskStop(kk, vt);
    };
    k.exitHooks.push(release);
    qemu = spawn(k, 'qemu', function* (sys) {
      vt = startCountingWorker(sys, w);
      yield* sys.pause();
      return 0;
    });
    spawn(k, 'kill', function* (sys) {
      yield* sys.nanosleep(MS);
      const a = yield* sys.kill(vt!.task.pid, SIGKILL);
      seen.killWorker = a.ok;
      yield* sys.nanosleep(MS);
      seen.workerAliveAfterKill = vt!.task.alive;
      queueWork(k, vt!, w, 1);
      yield* sys.nanosleep(MS);
      yield* sys.kill(qemu!.pid, SIGKILL);
      return 0;
    });
    settle(k);
    expect(seen).toEqual({
      killWorker: true,
      workerAliveAfterKill: true,
      workerAliveAtRelease: true,
      ranBeforeRelease: 1,
    });
    expect(vt!.task.tasksAlive()).toBe(false);
    expect(k.warnings).toEqual([]);
    // reaped by its creator's kernel_wait4, not by init
    const waits = k.trace.of('sched_process_wait');
    expect(waits.some((e) => e.pid === qemu!.pid && e.text.includes(`pid=${vt!.task.pid} `))).toBe(true);
    checkInvariants(k);
  });

  it('linux-6.17: the locked vhost_task_wake WARNs after stop and is silent after a kill; 6.12 just wakes', () => {
    const results: Record<string, string[]> = {};
    for (const profile of ['linux-6.12', 'linux-6.17']) {
      const k = bootKernel({ profile });
      let killed: VhostTask | null = null;
      // an owner that stops its worker and then (wrongly) wakes it, plus a lockless wake of
      // a worker created without a kill handler
      spawn(k, 'qemu', function* (sys) {
        const a = startCountingWorker(sys, newWork());
        yield* sys.nanosleep(MS);
        yield* vhostTaskStop(k, a);
        yield* vhostTaskWake(k, a);
        const c = startCountingWorker(sys, newWork(), { withKillHandler: false });
        vhostTaskWakeLockless(k, c);
        yield* vhostTaskStop(k, c);
        return 0;
      });
      // an owner killed by SIGKILL; KVM-like code then wakes its worker (locked: silent)
      const victim = spawn(k, 'qemu2', function* (sys) {
        killed = startCountingWorker(sys, newWork());
        yield* sys.pause();
        return 0;
      });
      spawn(k, 'kvm', function* (sys) {
        yield* sys.nanosleep(5 * MS);
        yield* sys.kill(victim.pid, SIGKILL);
        yield* sys.nanosleep(MS);
        yield* vhostTaskWake(k, killed!);
        yield* vhostTaskStop(k, killed!);
        return 0;
      });
      settle(k);
      expect(killed!.killed).toBe(true);
      results[profile] = k.warnings.map((w) => `${w.where}: ${w.message}`);
      checkInvariants(k);
    }
    expect(results['linux-6.12']).toEqual([]);
    expect(results['linux-6.17']).toEqual([
      'vhost_task_wake: waking a stopped vhost_task',
      '__vhost_task_wake: no kill handler',
    ]);
  });

  it('linux-6.17: the lockless __vhost_task_wake WARNs for a killed worker', () => {
    const k = bootKernel({ profile: 'linux-6.17' });
    let vt: VhostTask | null = null;
    const victim = spawn(k, 'qemu', function* (sys) {
      vt = startCountingWorker(sys, newWork());
      yield* sys.pause();
      return 0;
    });
    spawn(k, 'kill', function* (sys) {
      yield* sys.nanosleep(MS);
      yield* sys.kill(victim.pid, SIGKILL);
      yield* sys.nanosleep(MS);
      vhostTaskWakeLockless(k, vt!);
      yield* vhostTaskStop(k, vt!);
      return 0;
    });
    settle(k);
    expect(k.warnings.map((w) => `${w.where}: ${w.message}`)).toEqual([
      '__vhost_task_wake: waking a killed vhost_task',
    ]);
    checkInvariants(k);
  });
});

describe('create_io_thread', () => {
  it.each([
    ['linux-6.1', PF_IO_WORKER],
    ['seed-v5', PF_IO_WORKER | PF_USER_WORKER_V5],
    ['linux-6.4', PF_IO_WORKER | PF_USER_WORKER],
    ['linux-6.12', PF_IO_WORKER | PF_USER_WORKER],
  ] as const)('%s: flags %s, a thread with every signal but KILL/STOP blocked', (profile, flags) => {
    const k = bootKernel({ profile });
    let io: Task | null = null;
    let ran = 0;
    const seen: Record<string, unknown> = {};
    const app = spawn(k, 'app', function* (sys) {
      const r = createIoThread(k, function* () {
        ran++;
        return 0;
      });
      if (!r.ok) return 1;
      io = r.value;
      seen.inactive = r.value.state === TASK_NEW;
      seen.sharedFiles = r.value.files === sys.task.files && sys.task.files !== null;
      setTaskComm(k, r.value, `iou-wrk-${sys.gettid()}`);
      k.wakeUpNewTask(r.value);
      yield* sys.nanosleep(MS);
      return 0;
    });
    k.run({ until: () => ran > 0 });
    const t = io!;
    expect(statFlags(k, t) & (PF_IO_WORKER | PF_USER_WORKER | PF_USER_WORKER_V5)).toBe(flags);
    expect(status(k, t, 'Tgid')).toBe(String(app.pid));
    expect(status(k, t, 'SigBlk')).toBe('fffffffffffbfeff');
    expect(t.comm).toBe(`iou-wrk-${app.pid}`);
    expect(t.exitSignal).toBe(-1);
    expect(t.ptrace).toBe(0);
    settle(k);
    expect(seen).toEqual({ inactive: true, sharedFiles: true });
    expect(ran).toBe(1);
    checkInvariants(k);
  });

  it('a blocked SIGUSR1 sent to an io thread stays pending', () => {
    const k = bootKernel({ profile: 'linux-6.12' });
    let pnd = '';
    spawn(k, 'app', function* (sys) {
      let stop = false;
      const r = createIoThread(k, function* (t): KGen<number> {
        while (!stop) {
          t.state = TASK_INTERRUPTIBLE;
          yield Op.Schedule;
          t.state = TASK_RUNNING;
        }
        return 0;
      });
      if (!r.ok) return 1;
      k.wakeUpNewTask(r.value);
      yield* sys.tgkill(sys.getpid(), r.value.pid, SIGUSR1);
      pnd = status(k, r.value, 'SigPnd');
      stop = true;
      k.wakeUpProcess(r.value);
      return 0;
    });
    settle(k);
    expect(pnd).toBe('0000000000000200');
    checkInvariants(k);
  });
});
