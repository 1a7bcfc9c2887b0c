/**
 * io_uring on every profile: the setup ABI (params, ring offsets), submission and completion
 * through the rings in the owner's memory, poll arming versus io-wq punts, the io-wq rules
 * (who creates workers, their identity per era, limits, IORING_REGISTER_IOWQ_MAX_WORKERS,
 * creation failures and retries, idle exit) and cleanup on exit and exec.
 */
import { describe, expect, it } from 'vitest';
import { Errno } from '../kernel/errno.js';
import { checkNoLeaks } from '../kernel/invariants.js';
import type { Kernel } from '../kernel/kernel.js';
import { RLIMIT_NPROC } from '../kernel/rlimit.js';
import { sleepFor } from '../kernel/sched.js';
import {
  PF_IO_WORKER,
  PF_KTHREAD,
  PF_NO_SETAFFINITY,
  PF_USER_WORKER,
  PF_USER_WORKER_V5,
} from '../kernel/sched-consts.js';
import { O_CREAT, SHMEM_FILE_OPS } from '../kernel/shmem.js';
import type { Sys } from '../kernel/syscalls.js';
import type { Task } from '../kernel/task.js';
import { bootKernel, makeCgroup, settle, spawn, tasksNamed } from '../kernel/testing.js';
import { PROFILES } from '../profiles/eras.js';
import { ioUringExpectation, THREAD_WORKER_PROFILES } from './expectations.js';
import { ioUringEnter, ioUringSetup, ioWqOf, registerIoUring } from './io_uring.js';
import { WORKER_IDLE_TIMEOUT_NS } from './io-wq.js';
import {
  IORING_OP_NOP,
  IORING_OP_READ,
  IORING_OP_WRITE,
  IORING_SETUP_CLAMP,
  IORING_SETUP_SQ_AFF,
  IORING_SETUP_SQPOLL,
  IORING_SQ_NEED_WAKEUP,
  IOSQE_ASYNC,
  PARAMS_SIZE,
} from './uapi.js';
import {
  ioUringQueueInit,
  ioUringRegisterIowqMaxWorkers,
  ioUringSubmitAndWait,
  queueSqe,
  reapCqes,
  type UserRing,
} from './user.js';

function boot(profile: string): { k: Kernel; boot0: { nrThreads: number } } {
  const k = bootKernel({ profile });
  registerIoUring(k);
  return { k, boot0: { nrThreads: k.nrThreads } };
}

/** the io-wq workers: iou-wrk-<pid> threads, or io_wqe_worker-<acct>/<node> kthreads (5.10) */
const workers = (k: Kernel) => tasksNamed(k, /^(iou-wrk-|io_wqe_worker-)/);

/** Queue `n` IOSQE_ASYNC reads of 8 bytes from `fd` into `buf`. */
function queueAsyncReads(sys: Sys, r: UserRing, fd: number, buf: number, n: number, async = true): void {
  for (let i = 0; i < n; i++)
    queueSqe(sys, r, {
      opcode: IORING_OP_READ,
      flags: async ? IOSQE_ASYNC : 0,
      fd,
      off: 0n,
      addr: buf + 8 * i,
      len: 8,
      userData: BigInt(i + 1),
    });
}

describe('io_uring_setup', () => {
  it.each(PROFILES.map((p) => p.name))('reports the ring offsets of its era on %s', (profile) => {
    const { k } = boot(profile);
    let ring: UserRing | null = null;
    spawn(k, 'app', function* (sys) {
      const r = yield* ioUringQueueInit(sys, 5);
      if (r.ok) ring = r.value;
      return 0;
    });
    settle(k);
    const p = (ring as UserRing | null)!.params;
    expect([p.sqEntries, p.cqEntries]).toEqual([8, 16]);
    expect(p.features).toBe(k.profile.ioUringFeatures);
    // struct io_rings: head and tail share a cache line on 6.18, each has one on 5.x
    const tail = k.profile.ioRingsPackedHeadTail ? 4 : 64;
    expect(p.sqOff.tail).toBe(tail);
    expect(p.cqOff.cqes % 64).toBe(0);
    expect(p.sqOff.array).toBe(p.cqOff.cqes + 16 * 16);
    expect(p.cqOff.head).toBe(2 * tail);
  });

  it('rejects 0 entries, too many entries without CLAMP, and SQ_AFF without SQPOLL', () => {
    const { k } = boot('linux-6.12');
    const got: (number | string)[] = [];
    spawn(k, 'app', function* (sys) {
      const buf = yield* sys.mmap(4096);
      if (!buf.ok) return 1;
      const set = (flags: number) => {
        const v = sys.task.mm!.view(buf.value, PARAMS_SIZE);
        if (v.ok) {
          for (let i = 0; i < PARAMS_SIZE; i++) v.value.setUint8(i, 0);
          v.value.setUint32(8, flags, true);
        }
      };
      for (const [entries, flags] of [
        [0, 0],
        [40000, 0],
        [40000, IORING_SETUP_CLAMP],
        [8, IORING_SETUP_SQ_AFF],
      ] as const) {
        set(flags);
        const r = yield* ioUringSetup(sys, entries, buf.value);
        got.push(r.ok ? 'ok' : r.errno);
      }
      return 0;
    });
    settle(k);
    expect(got).toEqual([Errno.EINVAL, Errno.EINVAL, 'ok', Errno.EINVAL]);
  });
});

describe('submission and completion', () => {
  it.each(PROFILES.map((p) => p.name))(
    'a NOP and a read of a ready eventfd complete inline, making no task beyond what setup makes, on %s',
    (profile) => {
      const { k, boot0 } = boot(profile);
      const forks0 = k.stats.forks;
      let cqes: [number, number][] = [];
      let data = 0n;
      spawn(k, 'app', function* (sys) {
        const r = yield* ioUringQueueInit(sys, 4);
        const efd = yield* sys.eventfd(5);
        const buf = yield* sys.mmap(4096);
        if (!r.ok || !efd.ok || !buf.ok) return 1;
        queueSqe(sys, r.value, {
          opcode: IORING_OP_NOP,
          flags: 0,
          fd: -1,
          off: 0n,
          addr: 0,
          len: 0,
          userData: 7n,
        });
        queueAsyncReads(sys, r.value, efd.value, buf.value, 1, false);
        yield* ioUringSubmitAndWait(sys, r.value, 2, 2);
        cqes = reapCqes(sys, r.value).map((c) => [Number(c.userData), c.res]);
        const v = sys.task.mm!.view(buf.value, 8);
        if (v.ok) data = v.value.getBigUint64(0, true);
        return 0;
      });
      settle(k);
      expect(cqes).toEqual([
        [7, 0],
        [1, 8],
      ]);
      expect(data).toBe(5n);
      // the app, plus the io_wq_manager and its fixed worker where setup makes them (5.10)
      expect(k.stats.forks - forks0).toBe(1 + ioUringExpectation(profile).setupTasks);
      checkNoLeaks(k, boot0);
    },
  );

  it('a read of an empty pipe arms poll instead of taking a worker, and completes when data arrives', () => {
    const { k } = boot('linux-6.12');
    let during = -1;
    let cqes: [number, number][] = [];
    spawn(k, 'app', function* (sys) {
      const r = yield* ioUringQueueInit(sys, 4);
      const p = yield* sys.pipe();
      const buf = yield* sys.mmap(4096);
      if (!r.ok || !p.ok || !buf.ok) return 1;
      queueAsyncReads(sys, r.value, p.value[0], buf.value, 1, false);
      yield* ioUringSubmitAndWait(sys, r.value, 1, 0);
      during = workers(k).length;
      yield* sys.write(p.value[1], new Uint8Array([1, 2, 3]));
      yield* ioUringSubmitAndWait(sys, r.value, 0, 1);
      cqes = reapCqes(sys, r.value).map((c) => [Number(c.userData), c.res]);
      return 0;
    });
    settle(k);
    expect(during).toBe(0);
    expect(cqes).toEqual([[1, 3]]);
  });

  it('a write through the ring reaches the pipe', () => {
    const { k } = boot('linux-6.1');
    let read = '';
    spawn(k, 'app', function* (sys) {
      const r = yield* ioUringQueueInit(sys, 4);
      const p = yield* sys.pipe();
      const buf = yield* sys.mmap(4096);
      if (!r.ok || !p.ok || !buf.ok) return 1;
      sys.task.mm!.write(buf.value, new TextEncoder().encode('hello'));
      queueSqe(sys, r.value, {
        opcode: IORING_OP_WRITE,
        flags: IOSQE_ASYNC,
        fd: p.value[1],
        off: 0n,
        addr: buf.value,
        len: 5,
        userData: 1n,
      });
      yield* ioUringSubmitAndWait(sys, r.value, 1, 1);
      const got = yield* sys.read(p.value[0], 16);
      if (got.ok) read = new TextDecoder().decode(got.value);
      return 0;
    });
    settle(k);
    expect(read).toBe('hello');
  });
});

describe('io-wq workers', () => {
  it.each(THREAD_WORKER_PROFILES)(
    'IOSQE_ASYNC reads of an empty pipe are run by worker threads of the submitter named iou-wrk-<pid>, one per read before v6.6 and one for all from v6.6, on %s',
    (profile) => {
      const { k, boot0 } = boot(profile);
      let app: Task | null = null;
      let seen: Task[] = [];
      app = spawn(k, 'app', function* (sys) {
        const r = yield* ioUringQueueInit(sys, 8);
        const p = yield* sys.pipe();
        const buf = yield* sys.mmap(4096);
        if (!r.ok || !p.ok || !buf.ok) return 1;
        queueAsyncReads(sys, r.value, p.value[0], buf.value, 5);
        yield* ioUringSubmitAndWait(sys, r.value, 5, 0);
        yield* sys.nanosleep(1_000_000);
        seen = workers(k);
        yield* sys.write(p.value[1], new Uint8Array(40));
        yield* ioUringSubmitAndWait(sys, r.value, 0, 5);
        return reapCqes(sys, r.value).every((c) => c.res === 8) ? 0 : 1;
      });
      settle(k);
      const a = app as Task;
      expect(seen).toHaveLength(ioUringExpectation(profile).burstWorkers(5));
      const pf = k.profile;
      for (const w of seen) {
        expect(w.comm).toBe(ioUringExpectation(profile).workerComm(a.pid, 1));
        expect(w.tgid).toBe(a.pid);
        expect(w.flags & PF_IO_WORKER).toBeTruthy();
        expect(w.flags & PF_KTHREAD).toBe(0);
        expect(Boolean(w.flags & PF_NO_SETAFFINITY)).toBe(pf.ioWorkerNoSetaffinity);
        const uw =
          pf.ioWorkerApi === 'kernel-worker'
            ? PF_USER_WORKER_V5
            : pf.ioThreadIsUserWorker
              ? PF_USER_WORKER
              : 0;
        if (uw) expect(w.flags & uw).toBe(uw);
        else expect(w.flags & (PF_USER_WORKER | PF_USER_WORKER_V5)).toBe(0);
        expect(w.cred.uid).toBe(a.cred.uid);
        expect(w.cgroups).toEqual(a.cgroups);
      }
      expect(a.exitCode).toBe(0);
      checkNoLeaks(k, boot0);
    },
  );

  it.each(PROFILES.map((p) => p.name))(
    'IORING_REGISTER_IOWQ_MAX_WORKERS answers as its era does on %s',
    (profile) => {
      const { k } = boot(profile);
      let got: unknown = null;
      spawn(k, 'app', function* (sys) {
        const r = yield* ioUringQueueInit(sys, 8);
        if (!r.ok) return 1;
        const x = yield* ioUringRegisterIowqMaxWorkers(sys, r.value, 0, 0);
        got = x.ok ? 'ok' : x.errno;
        return 0;
      });
      settle(k);
      expect(got).toBe(ioUringExpectation(profile).registerIowqMaxWorkers);
    },
  );

  it('the unbound limit starts at RLIMIT_NPROC and the bound one at min(SQ entries, 4 × CPUs)', () => {
    const { k } = boot('linux-6.12');
    let limits: [number, number] | null = null;
    spawn(
      k,
      'app',
      function* (sys) {
        const r = yield* ioUringQueueInit(sys, 64);
        if (!r.ok) return 1;
        const got = yield* ioUringRegisterIowqMaxWorkers(sys, r.value, 0, 0);
        if (got.ok) limits = got.value;
        return 0;
      },
      { rlimits: { [RLIMIT_NPROC]: { cur: 321, max: 321 } } },
    );
    settle(k);
    expect(limits).toEqual([Math.min(64, 4 * k.nrCpus), 321]);
  });

  it('IORING_REGISTER_IOWQ_MAX_WORKERS returns the old limits, leaves a 0 unchanged and caps at RLIMIT_NPROC', () => {
    const { k } = boot('linux-6.12');
    const got: unknown[] = [];
    spawn(
      k,
      'app',
      function* (sys) {
        const r = yield* ioUringQueueInit(sys, 8);
        if (!r.ok) return 1;
        for (const [b, u] of [
          [2, 3],
          [0, 0],
          [0, 5000],
          [0, 0],
        ] as const) {
          const x = yield* ioUringRegisterIowqMaxWorkers(sys, r.value, b, u);
          got.push(x.ok ? x.value : x.errno);
        }
        return 0;
      },
      { rlimits: { [RLIMIT_NPROC]: { cur: 1000, max: 1000 } } },
    );
    settle(k);
    expect(got).toEqual([
      [8, 1000],
      [2, 3],
      [2, 3],
      [2, 1000],
    ]);
  });

  it.each(['linux-5.15', 'linux-6.12', 'seed-v5'])(
    'IOSQE_ASYNC creates no more unbound workers than max_workers on %s',
    (profile) => {
      const { k, boot0 } = boot(profile);
      let seen = 0;
      spawn(k, 'app', function* (sys) {
        const r = yield* ioUringQueueInit(sys, 16);
        const p = yield* sys.pipe();
        const buf = yield* sys.mmap(4096);
        if (!r.ok || !p.ok || !buf.ok) return 1;
        yield* ioUringRegisterIowqMaxWorkers(sys, r.value, 0, 3);
        queueAsyncReads(sys, r.value, p.value[0], buf.value, 10);
        yield* ioUringSubmitAndWait(sys, r.value, 10, 0);
        yield* sys.nanosleep(1_000_000);
        seen = workers(k).length;
        yield* sys.write(p.value[1], new Uint8Array(80));
        yield* ioUringSubmitAndWait(sys, r.value, 0, 10);
        return reapCqes(sys, r.value).length === 10 ? 0 : 1;
      });
      settle(k);
      expect(seen).toBe(Math.min(3, ioUringExpectation(profile).burstWorkers(10)));
      checkNoLeaks(k, boot0);
    },
  );

  it.each(THREAD_WORKER_PROFILES)(
    'a worker creation refused by RLIMIT_NPROC is retried as the era does on %s',
    (profile) => {
      const { k, boot0 } = boot(profile);
      const nprocAt0 = [...k.ucounts.all()].find((u) => u.uid === 1000)?.nproc ?? 0;
      const res: number[] = [];
      spawn(
        k,
        'app',
        function* (sys) {
          const r = yield* ioUringQueueInit(sys, 4);
          const efd = yield* sys.eventfd(0);
          const buf = yield* sys.mmap(4096);
          if (!r.ok || !efd.ok || !buf.ok) return 1;
          queueAsyncReads(sys, r.value, efd.value, buf.value, 1);
          yield* ioUringSubmitAndWait(sys, r.value, 1, 0);
          // let the retries run, then make room for one more task and provide the data
          yield* sys.nanosleep(50_000_000);
          yield* sys.setrlimit(RLIMIT_NPROC, { cur: 2, max: 2 });
          yield* sys.write(efd.value, new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]));
          yield* ioUringSubmitAndWait(sys, r.value, 0, 1);
          for (const c of reapCqes(sys, r.value)) res.push(c.res);
          return 0;
        },
        { uid: 1000, rlimits: { [RLIMIT_NPROC]: { cur: 1, max: 2 } } },
      );
      settle(k, 5_000_000);
      const limit = k.profile.ioWorkerInitLimit;
      // with WORKER_INIT_LIMIT the request is cancelled once the retries are used up;
      // without it the creation is retried until it succeeds
      expect(res).toEqual(limit === null ? [8] : [-Errno.ECANCELED]);
      expect([...k.ucounts.all()].find((u) => u.uid === 1000)?.nproc ?? 0).toBe(nprocAt0);
      checkNoLeaks(k, boot0);
    },
  );

  it('a worker creation refused by pids.max counts a pids.events max event per attempt', () => {
    const { k, boot0 } = boot('linux-6.12');
    const cg = makeCgroup(k, '/app', { pidsMax: 1 });
    spawn(
      k,
      'app',
      function* (sys) {
        const r = yield* ioUringQueueInit(sys, 4);
        const efd = yield* sys.eventfd(1);
        const buf = yield* sys.mmap(4096);
        if (!r.ok || !efd.ok || !buf.ok) return 1;
        queueAsyncReads(sys, r.value, efd.value, buf.value, 1);
        yield* ioUringSubmitAndWait(sys, r.value, 1, 1);
        return reapCqes(sys, r.value)[0]?.res === -Errno.ECANCELED ? 0 : 1;
      },
      { cgroup: cg },
    );
    settle(k);
    // the first attempt plus WORKER_INIT_LIMIT retries
    expect(cg.pids.eventsMax).toBe(1 + k.profile.ioWorkerInitLimit!);
    checkNoLeaks(k, boot0);
  });

  it.each(['linux-5.15', 'linux-6.18'])(
    'idle workers exit after WORKER_IDLE_TIMEOUT except the last of the account on %s',
    (profile) => {
      const { k } = boot(profile);
      const counts: number[] = [];
      spawn(k, 'app', function* (sys) {
        const r = yield* ioUringQueueInit(sys, 8);
        const efd = yield* sys.eventfd(0);
        const buf = yield* sys.mmap(4096);
        if (!r.ok || !efd.ok || !buf.ok) return 1;
        queueAsyncReads(sys, r.value, efd.value, buf.value, 4);
        yield* ioUringSubmitAndWait(sys, r.value, 4, 0);
        // one write per read: a read of an eventfd takes the whole count
        for (let i = 0; i < 4; i++) {
          yield* sys.write(efd.value, new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]));
          yield* ioUringSubmitAndWait(sys, r.value, 0, i + 1);
        }
        counts.push(workers(k).length);
        yield* sys.nanosleep(WORKER_IDLE_TIMEOUT_NS / 2);
        counts.push(workers(k).length);
        yield* sys.nanosleep(WORKER_IDLE_TIMEOUT_NS * 2);
        counts.push(workers(k).length);
        return 0;
      });
      settle(k);
      const n = ioUringExpectation(profile).burstWorkers(4);
      expect(counts).toEqual([n, n, 1]);
    },
  );

  it('exec cancels the requests and ends the workers; the ring fd is close-on-exec', () => {
    const { k, boot0 } = boot('linux-6.12');
    let before = 0;
    let after = -1;
    spawn(k, 'app', function* (sys) {
      const r = yield* ioUringQueueInit(sys, 4);
      const p = yield* sys.pipe();
      const buf = yield* sys.mmap(4096);
      if (!r.ok || !p.ok || !buf.ok) return 1;
      queueAsyncReads(sys, r.value, p.value[0], buf.value, 2);
      yield* ioUringSubmitAndWait(sys, r.value, 2, 0);
      yield* sys.nanosleep(1_000_000);
      before = workers(k).length;
      const ringFd = r.value.fd;
      yield* sys.execve('/bin/true', function* (s2) {
        after = workers(k).length;
        return s2.task.files!.get(ringFd) ? 1 : 0;
      });
      return 1;
    });
    settle(k);
    expect(before).toBe(ioUringExpectation('linux-6.12').burstWorkers(2));
    expect(after).toBe(0);
    checkNoLeaks(k, boot0);
  });

  it.each(PROFILES.map((p) => p.name))(
    'a SIGKILL of the submitter ends its workers, blocked or idle, and leaves nothing behind on %s',
    (profile) => {
      const { k, boot0 } = boot(profile);
      let before = 0;
      const app = spawn(k, 'app', function* (sys) {
        const r = yield* ioUringQueueInit(sys, 8);
        const p = yield* sys.pipe();
        const buf = yield* sys.mmap(4096);
        if (!r.ok || !p.ok || !buf.ok) return 1;
        queueAsyncReads(sys, r.value, p.value[0], buf.value, 3);
        yield* ioUringSubmitAndWait(sys, r.value, 3, 0);
        yield* sys.nanosleep(1_000_000);
        before = workers(k).length;
        yield* ioUringSubmitAndWait(sys, r.value, 0, 3);
        return 0;
      });
      spawn(k, 'killer', function* (sys) {
        yield* sys.nanosleep(5_000_000);
        yield* sys.kill(app.pid, 9);
        yield* sys.wait4(-1);
        return 0;
      });
      k.run({ until: () => before > 0 });
      settle(k);
      expect(before).toBe(ioUringExpectation(profile).burstWorkers(3));
      expect(workers(k)).toHaveLength(0);
      expect(app.exitCode & 0x7f).toBe(9);
      checkNoLeaks(k, boot0);
    },
  );

  it('io_uring_enter on a file that is not an io_uring fails with EOPNOTSUPP', () => {
    const { k } = boot('linux-6.12');
    let r: unknown = null;
    spawn(k, 'app', function* (sys) {
      const efd = yield* sys.eventfd(0);
      if (!efd.ok) return 1;
      const x = yield* ioUringEnter(sys, efd.value, 1, 0, 0);
      r = x.ok ? 'ok' : x.errno;
      return 0;
    });
    settle(k);
    expect(r).toBe(Errno.EOPNOTSUPP);
  });
});

describe('SQPOLL', () => {
  it.each(['linux-5.15', 'linux-6.12', 'seed-v5'])(
    'the SQ thread iou-sqp-<pid> submits, its io-wq workers are named after it, it sleeps with NEED_WAKEUP when idle, and it outlives a close of the still-mapped ring on %s',
    (profile) => {
      const { k, boot0 } = boot(profile);
      let sqp: Task[] = [];
      let wrk: Task[] = [];
      let needWakeup = 0;
      let res: number[] = [];
      let sqpAfterClose = -1;
      const app = spawn(k, 'app', function* (sys) {
        const r = yield* ioUringQueueInit(sys, 4, { flags: IORING_SETUP_SQPOLL, sqThreadIdleMs: 2 });
        const p = yield* sys.pipe();
        const buf = yield* sys.mmap(4096);
        if (!r.ok || !p.ok || !buf.ok) return 1;
        sqp = tasksNamed(k, /^iou-sqp-/);
        queueAsyncReads(sys, r.value, p.value[0], buf.value, 2);
        yield* ioUringSubmitAndWait(sys, r.value, 2, 0);
        yield* sys.nanosleep(10_000_000);
        wrk = workers(k);
        const v = sys.task.mm!.view(r.value.ring + r.value.params.sqOff.flags, 4);
        needWakeup = v.ok ? v.value.getUint32(0, true) & IORING_SQ_NEED_WAKEUP : -1;
        yield* sys.write(p.value[1], new Uint8Array(16));
        yield* ioUringSubmitAndWait(sys, r.value, 0, 2);
        res = reapCqes(sys, r.value).map((c) => c.res);
        // the rings stay mapped, so the ring (and its SQ thread) lives until exit_group
        yield* sys.close(r.value.fd);
        yield* sys.nanosleep(1_000_000);
        sqpAfterClose = tasksNamed(k, /^iou-sqp-/).length;
        return yield* sys.exitGroup(0);
      });
      settle(k);
      expect(sqp.map((t) => [t.comm, t.tgid])).toEqual([[`iou-sqp-${app.pid}`, app.pid]]);
      expect(sqp[0]!.flags & PF_IO_WORKER).toBeTruthy();
      expect(wrk.map((t) => t.comm)).toEqual(
        Array(ioUringExpectation(profile).burstWorkers(2)).fill(`iou-wrk-${sqp[0]!.pid}`),
      );
      expect(needWakeup).toBe(IORING_SQ_NEED_WAKEUP);
      expect(res).toEqual([8, 8]);
      expect(sqpAfterClose).toBe(1);
      expect(ioWqOf(app)).toBeNull();
      checkNoLeaks(k, boot0);
    },
  );

  it.each(PROFILES.map((p) => p.name))(
    'IORING_SETUP_SQPOLL by a user without CAP_SYS_ADMIN answers as its era does on %s',
    (profile) => {
      const { k, boot0 } = boot(profile);
      let r: unknown = null;
      spawn(
        k,
        'app',
        function* (sys) {
          const x = yield* ioUringQueueInit(sys, 4, { flags: IORING_SETUP_SQPOLL });
          r = x.ok ? 'ok' : x.errno;
          return yield* sys.exitGroup(0);
        },
        { uid: 1000 },
      );
      settle(k);
      expect(r).toBe(ioUringExpectation(profile).sqpollUnprivileged);
      checkNoLeaks(k, boot0);
    },
  );

  it('SQPOLL setup fails with the copy_process error when RLIMIT_NPROC leaves no room', () => {
    const { k } = boot('linux-6.12');
    let r: unknown = null;
    spawn(
      k,
      'app',
      function* (sys) {
        const x = yield* ioUringQueueInit(sys, 4, { flags: IORING_SETUP_SQPOLL });
        r = x.ok ? 'ok' : x.errno;
        return 0;
      },
      { uid: 1000, rlimits: { [RLIMIT_NPROC]: { cur: 1, max: 1 } } },
    );
    settle(k);
    expect(r).toBe(Errno.EAGAIN);
  });
});

describe('regular files (tmpfs)', () => {
  /** Queue `n` reads or writes of 8 bytes at `buf + 8 i` on `fd`, at the file position (off -1). */
  function queueRw(
    sys: Sys,
    r: UserRing,
    op: number,
    fd: number,
    buf: number,
    n: number,
    async: boolean,
  ): void {
    for (let i = 0; i < n; i++)
      queueSqe(sys, r, {
        opcode: op,
        flags: async ? IOSQE_ASYNC : 0,
        fd,
        off: -1n,
        addr: buf + 8 * i,
        len: 8,
        userData: BigInt(i + 1),
      });
  }

  it.each(THREAD_WORKER_PROFILES)(
    'a read of a tmpfs file is issued inline before v6.5 and punted to a bound worker from v6.5 (no FMODE_NOWAIT) on %s',
    (profile) => {
      const { k, boot0 } = boot(profile);
      let seen: Task[] = [];
      let res: number[] = [];
      let data = '';
      spawn(k, 'app', function* (sys) {
        const r = yield* ioUringQueueInit(sys, 4);
        const fd = yield* sys.open('/dev/shm/f', O_CREAT | 2);
        const buf = yield* sys.mmap(4096);
        if (!r.ok || !fd.ok || !buf.ok) return 1;
        yield* sys.write(fd.value, new TextEncoder().encode('abcdefgh'));
        const fd2 = yield* sys.open('/dev/shm/f', 2);
        if (!fd2.ok) return 1;
        queueRw(sys, r.value, IORING_OP_READ, fd2.value, buf.value, 1, false);
        yield* ioUringSubmitAndWait(sys, r.value, 1, 1);
        seen = workers(k);
        res = reapCqes(sys, r.value).map((c) => c.res);
        const v = sys.task.mm!.read(buf.value, 8);
        if (v.ok) data = new TextDecoder().decode(v.value);
        return 0;
      });
      settle(k);
      expect(res).toEqual([8]);
      expect(data).toBe('abcdefgh');
      expect(seen.length).toBe(k.profile.ioRegFileNowaitNeedsFmode ? 1 : 0);
      checkNoLeaks(k, boot0);
    },
  );

  it('a READ at sqe->off reads at that offset and leaves the file position; off -1 reads at the position', () => {
    const { k } = boot('linux-6.12');
    const got: string[] = [];
    spawn(k, 'app', function* (sys) {
      const r = yield* ioUringQueueInit(sys, 4);
      const fd = yield* sys.open('/tmp/p', O_CREAT | 2);
      const buf = yield* sys.mmap(4096);
      if (!r.ok || !fd.ok || !buf.ok) return 1;
      yield* sys.write(fd.value, new TextEncoder().encode('0123456789abcdef'));
      const rd = yield* sys.open('/tmp/p', 2);
      if (!rd.ok) return 1;
      for (const off of [8n, -1n, -1n])
        queueSqe(sys, r.value, {
          opcode: IORING_OP_READ,
          flags: 0,
          fd: rd.value,
          off,
          addr: buf.value,
          len: 4,
          userData: 1n,
        });
      for (let i = 0; i < 3; i++) {
        yield* ioUringSubmitAndWait(sys, r.value, 1, 1);
        reapCqes(sys, r.value);
        const v = sys.task.mm!.read(buf.value, 4);
        if (v.ok) got.push(new TextDecoder().decode(v.value));
      }
      return 0;
    });
    settle(k);
    expect(got).toEqual(['89ab', '0123', '4567']);
  });

  it.each(THREAD_WORKER_PROFILES)(
    'a write to a tmpfs file never completes inline: a bound io-wq worker runs it on %s',
    (profile) => {
      const { k, boot0 } = boot(profile);
      let bound = -1;
      let unbound = -1;
      let res: number[] = [];
      let size = -1;
      spawn(k, 'app', function* (sys) {
        const r = yield* ioUringQueueInit(sys, 4);
        const fd = yield* sys.open('/tmp/w', O_CREAT | 2);
        const buf = yield* sys.mmap(4096);
        if (!r.ok || !fd.ok || !buf.ok) return 1;
        queueRw(sys, r.value, IORING_OP_WRITE, fd.value, buf.value, 1, false);
        yield* ioUringSubmitAndWait(sys, r.value, 1, 1);
        const wq = ioWqOf(sys.task);
        if (wq) [bound, unbound] = [wq.acct[0].nrWorkers, wq.acct[1].nrWorkers];
        res = reapCqes(sys, r.value).map((c) => c.res);
        const back = yield* sys.open('/tmp/w', 0);
        if (!back.ok) return 1;
        const all = yield* sys.read(back.value, 100);
        if (all.ok) size = all.value.length;
        return 0;
      });
      settle(k);
      expect(res).toEqual([8]);
      expect(size).toBe(8);
      expect([bound, unbound]).toEqual([1, 0]);
      checkNoLeaks(k, boot0);
    },
  );

  it('IOSQE_ASYNC reads of a regular file are run by bound io-wq workers, at most min(SQ entries, 4 × CPUs), not limited by RLIMIT_NPROC', () => {
    // linux-5.15: io_wqe_activate_free_worker() counts a free worker only if wake_up_process()
    // woke it, so each IOSQE_ASYNC work of one submission creates a worker up to the limit
    const { k, boot0 } = boot('linux-5.15');
    const n = 32;
    let accts: number[] = [];
    let res: number[] = [];
    spawn(
      k,
      'app',
      function* (sys) {
        const r = yield* ioUringQueueInit(sys, n);
        const fd = yield* sys.open('/tmp/r', O_CREAT | 2);
        const buf = yield* sys.mmap(4096);
        if (!r.ok || !fd.ok || !buf.ok) return 1;
        yield* sys.write(fd.value, new Uint8Array(8 * n));
        const fd2 = yield* sys.open('/tmp/r', 2);
        if (!fd2.ok) return 1;
        queueRw(sys, r.value, IORING_OP_READ, fd2.value, buf.value, n, true);
        yield* ioUringSubmitAndWait(sys, r.value, n, 0);
        const wq = ioWqOf(sys.task)!;
        accts = [wq.acct[0].nrWorkers, wq.acct[1].nrWorkers];
        yield* ioUringSubmitAndWait(sys, r.value, 0, n);
        res = reapCqes(sys, r.value).map((c) => c.res);
        return 0;
      },
      { rlimits: { [RLIMIT_NPROC]: { cur: 1, max: 1 } } },
    );
    settle(k);
    expect(res).toEqual(new Array(n).fill(8));
    expect(accts).toEqual([Math.min(n, 4 * k.nrCpus), 0]);
    expect(accts[0]).toBeGreaterThan(1);
    checkNoLeaks(k, boot0);
  });

  /**
   * `n` IOSQE_ASYNC writes of 8 bytes ("<i>bcdefgh") in one submission, write i to
   * paths[i % paths.length] (tmpfs files created first); each write blocks for 1 ms. Returns
   * the tasks that ran the writes of each path, all the writers, and each file's content.
   */
  function asyncWrites(profile: string, paths: string[], n: number) {
    const { k, boot0 } = boot(profile);
    const byPath = new Map<string, Set<number>>(paths.map((p) => [p, new Set()]));
    const all = new Set<number>();
    const contents: string[] = [];
    const write = SHMEM_FILE_OPS.write!;
    const ops = SHMEM_FILE_OPS as { write: typeof write };
    ops.write = function* (kk, f, data, nowait) {
      byPath.get(f.path)?.add(kk.current!.pid);
      all.add(kk.current!.pid);
      // the write blocks (as one waiting for a page or a lock would): others may run
      yield* sleepFor(kk, 1_000_000);
      return yield* write(kk, f, data, nowait);
    };
    try {
      spawn(k, 'app', function* (sys) {
        const r = yield* ioUringQueueInit(sys, n);
        const buf = yield* sys.mmap(4096);
        if (!r.ok || !buf.ok) return 1;
        const fds: number[] = [];
        for (const p of paths) {
          const fd = yield* sys.open(p, O_CREAT | 2);
          if (!fd.ok) return 1;
          fds.push(fd.value);
        }
        const text = [...Array(n).keys()].map((i) => `${i}bcdefgh`).join('');
        sys.task.mm!.write(buf.value, new TextEncoder().encode(text));
        for (let i = 0; i < n; i++)
          queueSqe(sys, r.value, {
            opcode: IORING_OP_WRITE,
            flags: IOSQE_ASYNC,
            fd: fds[i % fds.length]!,
            off: -1n,
            addr: buf.value + 8 * i,
            len: 8,
            userData: BigInt(i + 1),
          });
        yield* ioUringSubmitAndWait(sys, r.value, n, n);
        for (const p of paths) {
          const back = yield* sys.open(p, 0);
          if (!back.ok) return 1;
          const got = yield* sys.read(back.value, 8 * n);
          if (got.ok) contents.push(new TextDecoder().decode(got.value));
        }
        return 0;
      });
      settle(k);
    } finally {
      ops.write = write;
    }
    checkNoLeaks(k, boot0);
    return { byPath, all, contents };
  }

  it.each(['linux-5.10', 'linux-5.15', 'linux-6.12'])(
    'IOSQE_ASYNC writes to one regular file are serialised on one worker (hashed by inode) on %s',
    (profile) => {
      const n = 8;
      const { all, contents } = asyncWrites(profile, ['/tmp/log'], n);
      expect(all.size).toBe(1);
      expect(contents).toEqual([[...Array(n).keys()].map((i) => `${i}bcdefgh`).join('')]);
    },
  );

  it.each(['linux-5.10', 'linux-5.15', 'linux-6.12'])(
    'IOSQE_ASYNC writes to two regular files run on one worker per file, side by side, on %s',
    (profile) => {
      const { byPath, all, contents } = asyncWrites(profile, ['/tmp/a', '/dev/shm/b'], 8);
      expect([...byPath.values()].map((w) => w.size)).toEqual([1, 1]);
      expect(all.size).toBe(2);
      expect(contents).toEqual(['0bcdefgh2bcdefgh4bcdefgh6bcdefgh', '1bcdefgh3bcdefgh5bcdefgh7bcdefgh']);
    },
  );
});
