/**
 * The core contrast, as a runnable demonstration: a non-root QEMU-like owner in a libvirt-like
 * cgroup with pids.max and RLIMIT_NPROC creates worker threads the way its kernel's vhost
 * would (SET_OWNER), and we observe where each worker lives and what it is charged to.
 *
 *  - kthread back end (≤ 6.3, 6.17 kthread mode): kthread_create() through kthreadd, then the
 *    worker adopts the owner's mm (kthread_use_mm) and joins its cgroups
 *    (cgroup_attach_task_all) as its first work item — drivers/vhost/vhost.c v5.15.
 *  - V5 kernel_worker (seed-v5): kernel_worker(CLONE_FS, NO_FILES|SIG_IGN) + start.
 *  - vhost_task (6.4+): vhost_task_create() + vhost_task_start(); a failure is reported as
 *    ENOMEM by vhost_dev_set_owner().
 */
import { cgroupAttachTaskAll } from '../cgroup/cgroup.js';
import { Errno, errnoName, type Result } from '../kernel/errno.js';
import { KERN_WORKER_NO_FILES, KERN_WORKER_SIG_IGN } from '../kernel/fork.js';
import { checkInvariants } from '../kernel/invariants.js';
import type { Kernel } from '../kernel/kernel.js';
import { kthreadCreateOnNode, kthreadShouldStop, kthreadUnuseMm, kthreadUseMm } from '../kernel/kthread.js';
import { cpuList, procStatus } from '../kernel/procfs.js';
import { RLIMIT_NPROC } from '../kernel/rlimit.js';
import { type KGen, Op } from '../kernel/sched.js';
import { CLONE_FS, TASK_INTERRUPTIBLE, TASK_RUNNING } from '../kernel/sched-consts.js';
import type { Sys } from '../kernel/syscalls.js';
import type { Task } from '../kernel/task.js';
import { bootKernel, makeCgroup, spawn } from '../kernel/testing.js';
import { kernelWorker, kernelWorkerStart } from '../kernel/user-worker.js';
import { vhostTaskCreate, vhostTaskStart } from '../kernel/vhost-task.js';

export interface ContrastOptions {
  profile: string;
  /** vCPU threads QEMU starts before the workers */
  vcpus?: number;
  /** workers (devices) to create */
  workers?: number;
  uid?: number;
  nproc?: number;
  pidsMax?: number;
  /** QEMU's cgroup v2 cpuset */
  cpus?: number;
}

export interface WorkerRow {
  tid: number;
  comm: string;
  tgid: number;
  ppid: number;
  uid: number;
  cgroup: string;
  cpus: string;
  kthread: boolean;
  sigblk: string;
}

export interface ContrastResult {
  profile: string;
  backend: string;
  /** per worker creation: "ok" or the errno name SET_OWNER would return */
  outcomes: string[];
  workers: WorkerRow[];
  qemuThreads: number;
  pidsCurrent: number;
  pidsMax: number;
  nprocOwner: number;
  nprocRoot: number;
  nprocLimit: number;
}

/** A worker body: sleep until stopped (no work queued in this demonstration). */
function* idleUntilStopped(k: Kernel, stop: () => boolean): KGen<void> {
  const me = k.current!;
  for (;;) {
    me.state = TASK_INTERRUPTIBLE;
    if (stop()) break;
    yield Op.Schedule;
  }
  me.state = TASK_RUNNING;
}

/** Create one worker for `owner` (the current task) with the profile's back end. */
function* createWorker(k: Kernel, owner: Task): KGen<Result<Task>> {
  const name = `vhost-${owner.pid}`;
  const backend = k.profile.vhostWorker;
  if (backend === 'kthread') {
    const mm = owner.mm!;
    const r = yield* kthreadCreateOnNode(
      k,
      function* () {
        kthreadUseMm(k, mm);
        // vhost_attach_cgroups(): the first work item runs cgroup_attach_task_all(owner, current)
        cgroupAttachTaskAll(k, owner, k.current!);
        yield* idleUntilStopped(k, () => kthreadShouldStop(k));
        kthreadUnuseMm(k, mm);
        return 0;
      },
      null,
      name,
    );
    if (r.ok) k.wakeUpProcess(r.value);
    return r;
  }
  if (backend === 'kernel-worker-v5') {
    const r = kernelWorker(
      k,
      () => idleUntilStopped(k, () => false) as KGen<never>,
      CLONE_FS,
      KERN_WORKER_NO_FILES | KERN_WORKER_SIG_IGN,
    );
    if (r.ok) kernelWorkerStart(k, r.value, name);
    return r;
  }
  const r = vhostTaskCreate(
    k,
    function* () {
      return false;
    },
    function* () {},
    null,
    name,
  );
  if (!r.ok) return { ok: false, errno: Errno.ENOMEM };
  vhostTaskStart(k, r.value);
  return { ok: true, value: r.value.task };
}

/** Run the demonstration on one profile and observe the result. */
export function runContrast(o: ContrastOptions): ContrastResult {
  const k = bootKernel({ profile: o.profile, seed: 1, cpus: 4 });
  const uid = o.uid ?? 107;
  const vcpus = o.vcpus ?? 2;
  const nproc = o.nproc ?? 4;
  const pidsMax = o.pidsMax ?? 4;
  const cg = makeCgroup(k, '/machine.slice/machine-qemu-vm1.scope', { pidsMax, cpus: o.cpus ?? 0b1100 });
  const outcomes: string[] = [];
  const workers: Task[] = [];
  let ready = false;
  const qemu = spawn(
    k,
    'qemu-system-x86',
    function* (sys: Sys) {
      for (let i = 0; i < vcpus; i++) {
        yield* sys.pthreadCreate(function* (s: Sys) {
          yield* s.pause();
          return 0;
        }, `CPU ${i}/KVM`);
      }
      for (let i = 0; i < (o.workers ?? 3); i++) {
        const r = yield* createWorker(sys.k, sys.task);
        outcomes.push(r.ok ? 'ok' : errnoName(r.errno));
        if (r.ok) workers.push(r.value);
      }
      ready = true;
      yield* sys.pause();
      return 0;
    },
    { uid, cgroup: cg, rlimits: { [RLIMIT_NPROC]: { cur: nproc, max: nproc } } },
  );
  k.run({ until: () => ready });
  k.run({ maxSteps: 10_000 });
  checkInvariants(k);
  const rows: WorkerRow[] = workers.map((t) => ({
    tid: t.pid,
    comm: t.comm,
    tgid: t.tgid,
    ppid: t.realParent.tgid,
    uid: t.cred.uid,
    cgroup: t.cgroups[0]!.path,
    cpus: cpuList(t.cpusAllowed),
    kthread: t.isKthread(),
    sigblk: /SigBlk:\t(\w+)/.exec(procStatus(k, t))?.[1] ?? '',
  }));
  return {
    profile: o.profile,
    backend: k.profile.vhostWorker,
    outcomes,
    workers: rows,
    qemuThreads: qemu.signal.nrThreads,
    pidsCurrent: cg.pids.counter,
    pidsMax,
    nprocOwner: k.ucounts.get(k.initUserNs, uid).nproc,
    nprocRoot: k.ucounts.get(k.initUserNs, 0).nproc,
    nprocLimit: nproc,
  };
}
