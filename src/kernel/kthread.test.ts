/**
 * kthreads as the pre-6.4 vhost worker saw them (kernel-spec §2): created by kthreadd on
 * behalf of a user task, identity and accounting, the control API, kthread_use_mm and
 * cgroup_attach_task_all.
 */
import { describe, expect, it } from 'vitest';
import { cgroupAttachTaskAll, cgroupMigrate, cgroupMkdirP } from '../cgroup/cgroup.js';
import { Errno } from './errno.js';
import { checkInvariants } from './invariants.js';
import type { Kernel } from './kernel.js';
import {
  kthreadCreateOnNode,
  kthreadPark,
  kthreadParkme,
  kthreadShouldPark,
  kthreadShouldStop,
  kthreadStop,
  kthreadUnpark,
  kthreadUnuseMm,
  kthreadUseMm,
} from './kthread.js';
import { cgroupFile, procCgroup, procStat, procStatus } from './procfs.js';
import { RLIMIT_NPROC } from './rlimit.js';
import { type KGen, Op } from './sched.js';
import { PF_KTHREAD, PF_NOFREEZE, TASK_INTERRUPTIBLE, TASK_RUNNING } from './sched-consts.js';
import { kernelSigInfo, sendSignal, TRACE_SIGNAL_IGNORED } from './signal.js';
import { SIGKILL } from './signal-consts.js';
import type { Task } from './task.js';
import { bootKernel, makeCgroup, settle, spawn } from './testing.js';

const MS = 1_000_000;

function status(k: Kernel, t: Task, field: string): string {
  const line = procStatus(k, t)
    .split('\n')
    .find((l) => l.startsWith(`${field}:`));
  if (!line) throw new Error(`no ${field} in status of ${t}`);
  return line.slice(field.length + 1).trim();
}

/** A kthread body that counts its wake-ups and parks/stops on request, like vhost_worker. */
function loopUntilStop(k: Kernel, log: { runs: number; ret: number }) {
  return function* (): KGen<number> {
    const me = k.current!;
    log.runs++;
    for (;;) {
      me.state = TASK_INTERRUPTIBLE;
      if (kthreadShouldStop(k)) break;
      if (kthreadShouldPark(k)) {
        me.state = TASK_RUNNING;
        yield* kthreadParkme(k);
        continue;
      }
      yield Op.Schedule;
    }
    me.state = TASK_RUNNING;
    return log.ret;
  };
}

describe('kthread_create_on_node from a user task', () => {
  it('makes a PF_KTHREAD child of kthreadd: PPid 2, uid 0, root cgroup, housekeeping CPUs, every signal ignored', () => {
    const k = bootKernel({ profile: 'linux-6.1', cpus: 4, housekeepingCpus: 0b1100 });
    const vm1 = makeCgroup(k, '/vm1', { pidsMax: 10 });
    const log = { runs: 0, ret: 42 };
    const seen: Record<string, unknown> = {};
    let kt: Task | null = null;
    const root = k.ucounts.get(k.initUserNs, 0);
    const rootBefore = root.nproc;
    const qemu = spawn(
      k,
      'qemu',
      function* (sys) {
        const r = yield* kthreadCreateOnNode(k, loopUntilStop(k, log), null, `vhost-${sys.getpid()}`);
        if (!r.ok) return 1;
        kt = r.value;
        seen.runsBeforeWake = log.runs;
        k.wakeUpProcess(kt);
        yield* sys.nanosleep(MS);
        seen.runsAfterWake = log.runs;
        const mine = yield* sys.kill(kt.pid, SIGKILL);
        seen.killAsUid1000 = mine.ok ? 'ok' : mine.errno;
        yield* sys.nanosleep(2 * MS);
        seen.aliveAfterKill = kt.alive;
        seen.sigPndAfterKill = status(k, kt, 'SigPnd');
        seen.nproc1000 = k.ucounts.get(k.initUserNs, 1000).nproc;
        seen.nprocRoot = root.nproc - rootBefore;
        seen.pidsCurrent = cgroupFile(k, vm1, 'pids.current');
        seen.stopRet = yield* kthreadStop(k, kt);
        return 0;
      },
      { uid: 1000, cgroup: vm1, cpus: 0b0001, rlimits: { [RLIMIT_NPROC]: { cur: 1, max: 1 } } },
    );
    let rootKill: number | string = 'pending';
    spawn(k, 'kill', function* (sys) {
      yield* sys.nanosleep(MS + MS / 2);
      const r = yield* sys.kill(kt!.pid, SIGKILL);
      rootKill = r.ok ? 'ok' : r.errno;
      return 0;
    });
    k.run({ until: () => seen.aliveAfterKill !== undefined });
    // root may send it (check_kill_permission passes), but the kthread ignores it
    expect(rootKill).toBe('ok');
    const generated = k.trace.of('signal_generate').filter((e) => e.text.includes(` pid=${kt!.pid} `));
    expect(generated.map((e) => e.text.split(' res=')[1])).toEqual([String(TRACE_SIGNAL_IGNORED)]);
    const t = kt!;
    expect(status(k, t, 'Name')).toBe(`vhost-${qemu.pid}`);
    expect(status(k, t, 'PPid')).toBe('2');
    expect(status(k, t, 'Tgid')).toBe(String(t.pid));
    expect(status(k, t, 'Uid')).toBe('0\t0\t0\t0');
    expect(status(k, t, 'SigIgn')).toBe('ffffffffffffffff');
    expect(status(k, t, 'Cpus_allowed_list')).toBe('2-3');
    expect(status(k, qemu, 'Cpus_allowed_list')).toBe('0');
    expect(procCgroup(k, t)).toBe('0::/\n');
    expect(procCgroup(k, qemu)).toBe('0::/vm1\n');
    const flags = Number(procStat(k, t).split(' ')[8]);
    expect(flags & PF_KTHREAD).toBe(PF_KTHREAD);
    expect(flags & PF_NOFREEZE).toBe(PF_NOFREEZE);
    expect(t.mm).toBeNull();
    expect(t.realParent).toBe(k.kthreadd);
    expect(seen).toMatchObject({
      runsBeforeWake: 0,
      runsAfterWake: 1,
      killAsUid1000: Errno.EPERM,
      aliveAfterKill: true,
      sigPndAfterKill: '0000000000000000',
      // RLIMIT_NPROC 1 did not stop it: the kthread is charged to root, not uid 1000
      nproc1000: 1,
      nprocRoot: 1,
      pidsCurrent: '1\n',
    });
    settle(k);
    expect(seen.stopRet).toBe(42);
    expect(t.alive).toBe(false);
    expect(root.nproc).toBe(rootBefore);
    checkInvariants(k);
  });

  it('returns EINTR when the creator is killed before kthreadd completes the request', () => {
    const k = bootKernel({ profile: 'linux-6.1' });
    let res: number | string = 'pending';
    const qemu = spawn(k, 'qemu', function* () {
      // a SIGKILL (e.g. the OOM killer's) lands before kthreadd has run the request
      sendSignal(k, SIGKILL, kernelSigInfo(SIGKILL), k.current!, true);
      const r = yield* kthreadCreateOnNode(k, loopUntilStop(k, { runs: 0, ret: 0 }), null, 'kt');
      res = r.ok ? 'ok' : r.errno;
      return 0;
    });
    settle(k);
    expect(res).toBe(Errno.EINTR);
    expect(qemu.alive).toBe(false);
    // kthreadd finished the request on its own; the new thread cleaned itself up
    expect(k.liveTasks().map((t) => t.comm)).toEqual(['init', 'kthreadd']);
    checkInvariants(k);
  });
});

describe('kthread control API', () => {
  it('kthread_stop of a thread that was never woken returns -EINTR without running threadfn', () => {
    const k = bootKernel({ profile: 'linux-6.1' });
    const log = { runs: 0, ret: 5 };
    let ret: number | null = null;
    spawn(k, 'owner', function* () {
      const r = yield* kthreadCreateOnNode(k, loopUntilStop(k, log), null, 'kt-never');
      if (!r.ok) return 1;
      ret = yield* kthreadStop(k, r.value);
      return 0;
    });
    settle(k);
    expect(ret).toBe(-Errno.EINTR);
    expect(log.runs).toBe(0);
    expect(k.trace.of('kthread_stop_ret').map((e) => e.text)).toEqual([`ret=${-Errno.EINTR}`]);
    checkInvariants(k);
  });

  it('kthread_park returns 0, then -EBUSY while parked, and -ENOSYS once the thread is exiting', () => {
    const k = bootKernel({ profile: 'linux-6.1' });
    const log = { runs: 0, ret: 3 };
    const seen: Record<string, unknown> = {};
    spawn(k, 'owner', function* (sys) {
      const r = yield* kthreadCreateOnNode(k, loopUntilStop(k, log), null, 'kt-park');
      if (!r.ok) return 1;
      const t = r.value;
      k.wakeUpProcess(t);
      yield* sys.nanosleep(MS);
      seen.first = yield* kthreadPark(k, t);
      seen.stateParked = status(k, t, 'State');
      seen.second = yield* kthreadPark(k, t);
      kthreadUnpark(k, t);
      yield* sys.nanosleep(MS);
      seen.stateUnparked = status(k, t, 'State');
      seen.stop = yield* kthreadStop(k, t);
      // a reference held past the exit (get_task_struct): PF_EXITING is set
      seen.afterExit = yield* kthreadPark(k, t);
      return 0;
    });
    settle(k);
    expect(seen).toEqual({
      first: 0,
      stateParked: 'P (parked)',
      second: -Errno.EBUSY,
      stateUnparked: 'S (sleeping)',
      stop: 3,
      afterExit: -Errno.ENOSYS,
    });
    checkInvariants(k);
  });

  it('kthread_use_mm adopts the owner’s mm in a kthread, and WARNs when the caller is not a kthread', () => {
    const k = bootKernel({ profile: 'linux-6.1' });
    const seen: Record<string, unknown> = {};
    spawn(k, 'qemu', function* (sys) {
      const mm = sys.task.mm!;
      const r = yield* kthreadCreateOnNode(
        k,
        function* (): KGen<number> {
          kthreadUseMm(k, mm);
          seen.borrowed = k.current!.mm === mm;
          seen.warningsInKthread = k.warnings.length;
          kthreadUnuseMm(k, mm);
          seen.returned = k.current!.mm === null;
          return 0;
        },
        null,
        'vhost-mm',
      );
      if (!r.ok) return 1;
      k.wakeUpProcess(r.value);
      yield* sys.nanosleep(MS);
      const count = mm.count;
      // a user task (own mm, not PF_KTHREAD) calling it: two WARN_ONs
      kthreadUseMm(k, mm);
      seen.userWarnings = k.warnings.map((w) => `${w.where}: ${w.message.replace(/-\d+/, '')}`);
      seen.countBumped = mm.count - count;
      mm.count = count; // undo the mmgrab the bogus call took
      return 0;
    });
    settle(k);
    expect(seen).toEqual({
      borrowed: true,
      warningsInKthread: 0,
      returned: true,
      userWarnings: ['kthread_use_mm: qemu is not a kthread', 'kthread_use_mm: qemu already has an mm'],
      countBumped: 1,
    });
    checkInvariants(k);
  });
});

describe('cgroup_attach_task_all', () => {
  /** The 6.1 observation: three vhost kthreads follow the owner into /vm1 past pids.max 2. */
  function attachThree(profile: string, v1 = false) {
    const k = bootKernel({ profile, v1Hierarchies: v1 ? [['pids']] : [] });
    const vm1 = makeCgroup(k, '/vm1', { pidsMax: 2 });
    let v1cg = null;
    if (v1) {
      const r = cgroupMkdirP(k.cgroupRoots[1]!.top, '/vm1');
      if (!r.ok) throw new Error('mkdir v1');
      v1cg = r.value;
      v1cg.pids.max = 2;
    }
    const kts: Task[] = [];
    const results: (number | string)[] = [];
    let done = false;
    const qemu = spawn(
      k,
      'qemu',
      function* (sys) {
        for (let i = 0; i < 3; i++) {
          const r = yield* kthreadCreateOnNode(k, loopUntilStop(k, { runs: 0, ret: 0 }), null, `vhost-${i}`);
          if (!r.ok) return 1;
          k.wakeUpProcess(r.value);
          kts.push(r.value);
          const a = cgroupAttachTaskAll(k, sys.task, r.value);
          results.push(a.ok ? 'ok' : a.errno);
        }
        yield* sys.nanosleep(MS);
        done = true;
        for (const t of kts) yield* kthreadStop(k, t);
        return 0;
      },
      { cgroup: vm1 },
    );
    if (v1cg) {
      const m = cgroupMigrate(k, [qemu], v1cg);
      if (!m.ok) throw new Error('migrate v1');
    }
    k.run({ until: () => done });
    const snap = {
      results,
      cgroups: kts.map((t) => procCgroup(k, t)),
      v2Current: cgroupFile(k, vm1, 'pids.current'),
      v2Max: cgroupFile(k, vm1, 'pids.max'),
      v1Current: v1cg ? v1cg.pids.counter : null,
      cpus: kts.map((t) => status(k, t, 'Cpus_allowed_list')),
    };
    settle(k);
    expect(cgroupFile(k, vm1, 'pids.current')).toBe('0\n');
    checkInvariants(k);
    return snap;
  }

  it('linux-6.1: moves every kthread into the owner’s v2 cgroup, never checking pids.max (pids.current 4 > max 2)', () => {
    const s = attachThree('linux-6.1');
    expect(s.results).toEqual(['ok', 'ok', 'ok']);
    expect(s.cgroups).toEqual(['0::/vm1\n', '0::/vm1\n', '0::/vm1\n']);
    expect(s.v2Max).toBe('2\n');
    expect(s.v2Current).toBe('4\n');
    expect(s.cpus).toEqual(['0-3', '0-3', '0-3']);
  });

  it('linux-5.15: skips the v2 default hierarchy (kthreads stay in 0::/) but moves them on v1', () => {
    const s = attachThree('linux-5.15', true);
    expect(s.results).toEqual(['ok', 'ok', 'ok']);
    expect(s.cgroups).toEqual(['1:pids:/vm1\n0::/\n', '1:pids:/vm1\n0::/\n', '1:pids:/vm1\n0::/\n']);
    expect(s.v2Current).toBe('1\n');
    expect(s.v1Current).toBe(4);
  });
});
