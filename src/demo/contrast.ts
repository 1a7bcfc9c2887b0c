import { errnoName } from '../kernel/errno.js';
import { checkInvariants } from '../kernel/invariants.js';
import { cpuList, procStatus } from '../kernel/procfs.js';
import { RLIMIT_NPROC } from '../kernel/rlimit.js';
import type { Sys } from '../kernel/syscalls.js';
import type { Task } from '../kernel/task.js';
import { bootKernel, makeCgroup, spawn } from '../kernel/testing.js';
import { registerVhost } from '../vhost/index.js';
import { vhostNetOf } from '../vhost/net.js';
import { VHOST_SET_OWNER } from '../vhost/uapi.js';

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

/** Run the demonstration on one profile and observe the result. */
export function runContrast(o: ContrastOptions): ContrastResult {
  const k = bootKernel({ profile: o.profile, seed: 1, cpus: 4 });
  registerVhost(k);
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
        const fd = yield* sys.open('/dev/vhost-net');
        if (!fd.ok) throw new Error(`open /dev/vhost-net: ${errnoName(fd.errno)}`);
        const r = yield* sys.ioctl(fd.value, VHOST_SET_OWNER);
        outcomes.push(r.ok ? 'ok' : errnoName(r.errno));
        if (r.ok) {
          const net = vhostNetOf(sys.task.files!.get(fd.value)!)!;
          workers.push(...net.dev.workerTasks());
        }
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
