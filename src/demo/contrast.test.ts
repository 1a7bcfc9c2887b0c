import { describe, expect, it } from 'vitest';
import { cgroupAttachTaskAll } from '../cgroup/cgroup.js';
import { Errno } from '../kernel/errno.js';
import { checkInvariants } from '../kernel/invariants.js';
import { kthreadCreateOnNode } from '../kernel/kthread.js';
import { procNsLinks } from '../kernel/procfs.js';
import { RLIMIT_NPROC } from '../kernel/rlimit.js';
import type { Sys } from '../kernel/syscalls.js';
import type { Task } from '../kernel/task.js';
import { bootKernel, makeCgroup, spawn } from '../kernel/testing.js';
import { vhostTaskCreate, vhostTaskStart } from '../kernel/vhost-task.js';
import { runContrast } from './contrast.js';

describe('the core contrast: kthread workers versus user workers', () => {
  it('with RLIMIT_NPROC exhausted, kthread_create succeeds as root under kthreadd and cgroup_attach_task_all pushes pids.current over pids.max, while vhost_task_create fails with EAGAIN', () => {
    const k = bootKernel({ profile: 'linux-6.12' });
    const cg = makeCgroup(k, '/machine.slice/vm1', { pidsMax: 1 });
    let kthreadResult: { ok: boolean; errno?: number; task?: Task } = { ok: false };
    let vtaskErrno = 0;
    let done = false;
    const owner = spawn(
      k,
      'qemu',
      function* (sys: Sys) {
        // the owner alone uses up RLIMIT_NPROC (1) and pids.max (1)
        const kr = yield* kthreadCreateOnNode(
          sys.k,
          function* () {
            return 0;
          },
          null,
          `vhost-${sys.task.pid}`,
        );
        kthreadResult = kr.ok ? { ok: true, task: kr.value } : { ok: false, errno: kr.errno };
        if (kr.ok) {
          const a = cgroupAttachTaskAll(sys.k, sys.task, kr.value);
          expect(a.ok).toBe(true);
        }
        const vr = vhostTaskCreate(
          sys.k,
          function* () {
            return false;
          },
          function* () {},
          null,
          'vhost-x',
        );
        vtaskErrno = vr.ok ? 0 : vr.errno;
        done = true;
        yield* sys.pause();
        return 0;
      },
      { uid: 107, cgroup: cg, rlimits: { [RLIMIT_NPROC]: { cur: 1, max: 1 } } },
    );
    k.run({ until: () => done });
    expect(kthreadResult.ok).toBe(true);
    const kt = kthreadResult.task!;
    expect(kt.isKthread()).toBe(true);
    expect(kt.realParent).toBe(k.kthreadd);
    expect(kt.cred.uid).toBe(0);
    expect(kt.cgroups[0]).toBe(cg);
    expect(cg.pids.counter).toBe(2);
    expect(cg.pids.counter).toBeGreaterThan(cg.pids.max);
    expect(k.ucounts.get(k.initUserNs, 107).nproc).toBe(1);
    expect(vtaskErrno).toBe(Errno.EAGAIN);
    expect(owner.signal.nrThreads).toBe(1);
    checkInvariants(k);
  });

  it('with room, the vhost_task joins the owner thread group, cgroup and namespaces and pids.current rises by one', () => {
    const k = bootKernel({ profile: 'linux-6.12' });
    const cg = makeCgroup(k, '/machine.slice/vm1', { pidsMax: 10 });
    let worker: Task | null = null;
    let before = -1;
    const owner = spawn(
      k,
      'qemu',
      function* (sys: Sys) {
        before = cg.pids.counter;
        const vr = vhostTaskCreate(
          sys.k,
          function* () {
            return false;
          },
          function* () {},
          null,
          `vhost-${sys.task.pid}`,
        );
        if (vr.ok) {
          vhostTaskStart(sys.k, vr.value);
          worker = vr.value.task;
        }
        yield* sys.pause();
        return 0;
      },
      { uid: 107, cgroup: cg, rlimits: { [RLIMIT_NPROC]: { cur: 10, max: 10 } } },
    );
    k.run({ until: () => worker !== null });
    k.run({ maxSteps: 1000 });
    const w = worker as unknown as Task;
    expect(w.tgid).toBe(owner.pid);
    expect(w.signal).toBe(owner.signal);
    expect(w.cgroups[0]).toBe(cg);
    expect(procNsLinks(w)).toEqual(procNsLinks(owner));
    expect(w.cred.uid).toBe(107);
    expect(cg.pids.counter).toBe(before + 1);
    checkInvariants(k);
  });

  it('the demonstration shows kthread profiles accepting every worker and vhost_task profiles refusing past the limits', () => {
    const old = runContrast({ profile: 'linux-6.1' });
    expect(old.outcomes).toEqual(['ok', 'ok', 'ok']);
    expect(old.pidsCurrent).toBeGreaterThan(old.pidsMax);
    expect(old.workers.every((w) => w.ppid === 2 && w.uid === 0 && w.kthread)).toBe(true);
    const v515 = runContrast({ profile: 'linux-5.15' });
    expect(v515.workers.every((w) => w.cgroup === '/')).toBe(true);
    const nu = runContrast({ profile: 'linux-6.12' });
    expect(nu.outcomes).toEqual(['ok', 'ENOMEM', 'ENOMEM']);
    expect(nu.workers[0]!.tgid).not.toBe(nu.workers[0]!.tid);
    expect(nu.workers[0]!.sigblk).toBe('fffffffffffbfeff');
    expect(nu.pidsCurrent).toBeLessThanOrEqual(nu.pidsMax);
  });
});
