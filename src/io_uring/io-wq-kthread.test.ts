/**
 * io_uring on linux-5.10, where io-wq workers and the SQ thread are kthreads (fs/io-wq.c of
 * 5.10.y, fs/io_uring.c of v5.10): the io_wq_manager and its fixed worker, who the workers are, whose
 * address space they work in, how unbound workers count against the submitter's
 * RLIMIT_NPROC, io_wq_can_queue, idle exit, ring release, and SQPOLL's privilege.
 */
import { describe, expect, it } from 'vitest';
import { Errno } from '../kernel/errno.js';
import { checkNoLeaks } from '../kernel/invariants.js';
import type { Kernel } from '../kernel/kernel.js';
import { RLIMIT_NPROC } from '../kernel/rlimit.js';
import { PF_IO_WORKER, PF_KTHREAD, PF_NO_SETAFFINITY } from '../kernel/sched-consts.js';
import type { Sys } from '../kernel/syscalls.js';
import type { Task } from '../kernel/task.js';
import { bootKernel, makeCgroup, settle, spawn, tasksNamed } from '../kernel/testing.js';
import { type IoRingCtx, registerIoUring } from './io_uring.js';
import { WORKER_IDLE_TIMEOUT_NS } from './io-wq.js';
import { IORING_OP_READ, IORING_SETUP_SQPOLL, IOSQE_ASYNC } from './uapi.js';
import { ioUringQueueInit, ioUringSubmitAndWait, queueSqe, reapCqes, type UserRing } from './user.js';

const PROFILE = 'linux-5.10';

function boot(): { k: Kernel; boot0: { nrThreads: number } } {
  const k = bootKernel({ profile: PROFILE });
  registerIoUring(k);
  return { k, boot0: { nrThreads: k.nrThreads } };
}

const workers = (k: Kernel) => tasksNamed(k, /^io_wqe_worker-/);
const nprocOf = (k: Kernel, uid: number) => [...k.ucounts.all()].find((u) => u.uid === uid)?.nproc ?? 0;

function queueAsyncReads(sys: Sys, r: UserRing, fd: number, buf: number, n: number, ud0 = 1): void {
  for (let i = 0; i < n; i++)
    queueSqe(sys, r, {
      opcode: IORING_OP_READ,
      flags: IOSQE_ASYNC,
      fd,
      off: 0n,
      addr: buf + 8 * i,
      len: 8,
      userData: BigInt(ud0 + i),
    });
}

/** the ring of an io_uring fd */
const ringOf = (sys: Sys, fd: number) => sys.task.files!.get(fd)!.priv as IoRingCtx;

describe('io-wq on linux-5.10', () => {
  it('io_uring_setup starts an io_wq_manager kthread and its fixed worker io_wqe_worker-0/0 under kthreadd before it returns', () => {
    const { k, boot0 } = boot();
    let made: [string, number, number][] = [];
    spawn(k, 'app', function* (sys) {
      const r = yield* ioUringQueueInit(sys, 4);
      if (!r.ok) return 1;
      made = tasksNamed(k, /^io_w/).map((t) => [
        t.kthread!.fullName,
        t.realParent!.pid,
        t.flags & PF_KTHREAD,
      ]);
      return yield* sys.exitGroup(0);
    });
    settle(k);
    expect(made).toEqual([
      ['io_wq_manager', k.kthreadd.pid, PF_KTHREAD],
      ['io_wqe_worker-0/0', k.kthreadd.pid, PF_KTHREAD],
    ]);
    // exit closes the ring: IO_WQ_BIT_EXIT ends the fixed worker, kthread_stop the manager
    checkNoLeaks(k, boot0);
  });

  it('IOSQE_ASYNC reads are run by io_wqe_worker kthreads under kthreadd, outside the submitter’s cgroup, with PF_IO_WORKER, in the submitter’s mm; the manager adds workers once per pass', () => {
    const { k, boot0 } = boot();
    const cg = makeCgroup(k, '/app', { pidsMax: 4 });
    let first: string[] = [];
    let seen: Task[] = [];
    let mms: boolean[] = [];
    let flags: number[] = [];
    let res: number[] = [];
    const app = spawn(
      k,
      'app',
      function* (sys) {
        const r = yield* ioUringQueueInit(sys, 8);
        const p = yield* sys.pipe();
        const buf = yield* sys.mmap(4096);
        if (!r.ok || !p.ok || !buf.ok) return 1;
        queueAsyncReads(sys, r.value, p.value[0], buf.value, 5);
        yield* ioUringSubmitAndWait(sys, r.value, 5, 0);
        yield* sys.nanosleep(10_000_000);
        first = workers(k).map((w) => w.kthread!.fullName);
        // the manager's next pass comes after schedule_timeout(HZ)
        yield* sys.nanosleep(1_000_000_000);
        seen = workers(k);
        flags = seen.map((w) => w.flags & (PF_KTHREAD | PF_IO_WORKER | PF_NO_SETAFFINITY));
        mms = seen.map((w) => w.mm === sys.task.mm);
        yield* sys.write(p.value[1], new Uint8Array(40));
        yield* ioUringSubmitAndWait(sys, r.value, 0, 5);
        res = reapCqes(sys, r.value).map((c) => c.res);
        return yield* sys.exitGroup(0);
      },
      { uid: 1000, cgroup: cg },
    );
    settle(k);
    // the fixed worker took the first read (and moved to the unbound account); woken when it
    // blocked, the manager made one bound and one unbound worker (io_wqe_need_worker looks at
    // the whole list for both); their own wake-ups came while it was in kthread_create, so
    // the last reads waited for its next pass
    expect(first.sort()).toEqual(['io_wqe_worker-0/0', 'io_wqe_worker-0/0', 'io_wqe_worker-1/0']);
    expect(seen.map((w) => w.kthread!.fullName).sort()).toEqual([
      'io_wqe_worker-0/0',
      'io_wqe_worker-0/0',
      'io_wqe_worker-0/0',
      'io_wqe_worker-1/0',
      'io_wqe_worker-1/0',
    ]);
    // kthread_bind_mask(cpumask_of_node) in create_io_worker: PF_NO_SETAFFINITY
    expect(flags).toEqual(seen.map(() => PF_KTHREAD | PF_IO_WORKER | PF_NO_SETAFFINITY));
    for (const w of seen) {
      expect(w.realParent).toBe(k.kthreadd);
      expect(w.tgid).toBe(w.pid);
      expect(w.cred.uid).toBe(0);
      expect(w.cgroups[0]!.path).toBe('/');
    }
    // blocked in the read, each worker runs in the submitter's address space (kthread_use_mm)
    expect(mms).toEqual([true, true, true, true, true]);
    expect(res).toEqual([8, 8, 8, 8, 8]);
    // none of them is charged to the submitter's pids.max
    expect(cg.pids.eventsMax).toBe(0);
    expect(app.exitCode).toBe(0);
    checkNoLeaks(k, boot0);
  });

  it('the unbound limit is RLIMIT_NPROC at creation and unbound workers count in the uid’s processes, past RLIMIT_NPROC, so the submitter’s fork fails with EAGAIN', () => {
    const { k, boot0 } = boot();
    let limits: [number, number] = [0, 0];
    let nprocWhileBlocked = 0;
    const forkRes: unknown[] = [];
    let unbound = 0;
    spawn(
      k,
      'app',
      function* (sys) {
        const r = yield* ioUringQueueInit(sys, 16);
        const p = yield* sys.pipe();
        const buf = yield* sys.mmap(4096);
        if (!r.ok || !p.ok || !buf.ok) return 1;
        const wq = ringOf(sys, r.value.fd).ioWq!;
        // raising the limit later does not change the io-wq's
        yield* sys.setrlimit(RLIMIT_NPROC, { cur: 10, max: 10 });
        limits = [wq.acct[0].maxWorkers, wq.acct[1].maxWorkers];
        queueAsyncReads(sys, r.value, p.value[0], buf.value, 2);
        yield* ioUringSubmitAndWait(sys, r.value, 2, 0);
        yield* sys.nanosleep(10_000_000);
        unbound = wq.acct[1].nrWorkers;
        nprocWhileBlocked = nprocOf(k, 1000);
        for (const cur of [10, nprocWhileBlocked]) {
          yield* sys.setrlimit(RLIMIT_NPROC, { cur, max: 10 });
          const f = yield* sys.fork(function* (c) {
            return yield* c.exit(0);
          });
          forkRes.push(f.ok ? 'ok' : f.errno);
          if (f.ok) yield* sys.wait4(-1);
        }
        yield* sys.write(p.value[1], new Uint8Array(16));
        yield* ioUringSubmitAndWait(sys, r.value, 0, 2);
        return yield* sys.exitGroup(0);
      },
      { uid: 1000, rlimits: { [RLIMIT_NPROC]: { cur: 3, max: 10 } } },
    );
    settle(k);
    expect(limits).toEqual([Math.min(16, 4 * k.nrCpus), 3]);
    // the fixed worker that took the first read, the bound worker made for the second (which
    // took it and moved over, __io_worker_busy) and the unbound worker made with it: unbound
    // nr_workers counts only at creation against max_workers
    expect(unbound).toBe(3);
    // the app and its three unbound workers, though the workers are root's kthreads
    expect(nprocWhileBlocked).toBe(4);
    expect(forkRes).toEqual(['ok', Errno.EAGAIN]);
    expect(nprocOf(k, 1000)).toBe(0);
    checkNoLeaks(k, boot0);
  });

  it('io_wq_can_queue cancels an IOSQE_ASYNC read at once when the uid’s processes reach max_workers and no worker is free or running', () => {
    const { k, boot0 } = boot();
    const cqes: [number, number][] = [];
    spawn(
      k,
      'app',
      function* (sys) {
        const r = yield* ioUringQueueInit(sys, 4);
        const p = yield* sys.pipe();
        const buf = yield* sys.mmap(4096);
        if (!r.ok || !p.ok || !buf.ok) return 1;
        // the fixed worker takes the first read and blocks: the uid now has 2 processes
        queueAsyncReads(sys, r.value, p.value[0], buf.value, 1, 1);
        yield* ioUringSubmitAndWait(sys, r.value, 1, 0);
        yield* sys.nanosleep(10_000_000);
        queueAsyncReads(sys, r.value, p.value[0], buf.value, 1, 2);
        yield* ioUringSubmitAndWait(sys, r.value, 1, 1);
        for (const c of reapCqes(sys, r.value)) cqes.push([Number(c.userData), c.res]);
        yield* sys.write(p.value[1], new Uint8Array(8));
        yield* ioUringSubmitAndWait(sys, r.value, 0, 1);
        for (const c of reapCqes(sys, r.value)) cqes.push([Number(c.userData), c.res]);
        return yield* sys.exitGroup(0);
      },
      { uid: 1000, rlimits: { [RLIMIT_NPROC]: { cur: 2, max: 2 } } },
    );
    settle(k);
    expect(cqes).toEqual([
      [2, -Errno.ECANCELED],
      [1, 8],
    ]);
    checkNoLeaks(k, boot0);
  });

  it('io_uring_setup fails with the manager’s kthread_create error, or with ENOMEM when the manager cannot make the fixed worker', () => {
    const { k, boot0 } = boot();
    const got: unknown[] = [];
    spawn(k, 'app', function* (sys) {
      for (const room of [0, 1]) {
        k.maxThreads = k.nrThreads + room;
        const r = yield* ioUringQueueInit(sys, 4);
        got.push(r.ok ? 'ok' : r.errno);
        k.maxThreads = 1000;
        yield* sys.nanosleep(1_000_000);
        got.push(tasksNamed(k, /^io_w/).length);
      }
      return yield* sys.exitGroup(0);
    });
    settle(k);
    // copy_process refuses past threads-max even for kthreadd; the manager that could not make
    // its worker sets IO_WQ_BIT_ERROR and exits
    expect(got).toEqual([Errno.EAGAIN, 0, Errno.ENOMEM, 0]);
    checkNoLeaks(k, boot0);
  });

  it('a worker the manager could not make is not retried until its next pass, HZ later', () => {
    const { k, boot0 } = boot();
    const counts: number[] = [];
    const res: number[] = [];
    spawn(k, 'app', function* (sys) {
      const r = yield* ioUringQueueInit(sys, 4);
      const p = yield* sys.pipe();
      const buf = yield* sys.mmap(4096);
      if (!r.ok || !p.ok || !buf.ok) return 1;
      queueAsyncReads(sys, r.value, p.value[0], buf.value, 1, 1);
      yield* ioUringSubmitAndWait(sys, r.value, 1, 0);
      yield* sys.nanosleep(10_000_000);
      // the fixed worker is blocked in the first read; no room for another task
      k.maxThreads = k.nrThreads;
      queueAsyncReads(sys, r.value, p.value[0], buf.value, 1, 2);
      yield* ioUringSubmitAndWait(sys, r.value, 1, 0);
      yield* sys.nanosleep(10_000_000);
      counts.push(workers(k).length);
      k.maxThreads = 1000;
      yield* sys.nanosleep(10_000_000);
      counts.push(workers(k).length);
      yield* sys.nanosleep(1_000_000_000);
      counts.push(workers(k).length);
      yield* sys.write(p.value[1], new Uint8Array(16));
      yield* ioUringSubmitAndWait(sys, r.value, 0, 2);
      for (const c of reapCqes(sys, r.value)) res.push(c.res);
      return yield* sys.exitGroup(0);
    });
    settle(k);
    // one pass makes a bound and an unbound worker (the bound one takes the read)
    expect(counts).toEqual([1, 1, 3]);
    expect(res).toEqual([8, 8]);
    checkNoLeaks(k, boot0);
  });

  it('idle workers exit after WORKER_IDLE_TIMEOUT, the last unbound one too; only those made first of the bound account (FIXED) stay', () => {
    const { k, boot0 } = boot();
    const counts: number[] = [];
    let left: string[] = [];
    spawn(k, 'app', function* (sys) {
      const r = yield* ioUringQueueInit(sys, 8);
      const p = yield* sys.pipe();
      const buf = yield* sys.mmap(4096);
      if (!r.ok || !p.ok || !buf.ok) return 1;
      queueAsyncReads(sys, r.value, p.value[0], buf.value, 4);
      yield* ioUringSubmitAndWait(sys, r.value, 4, 0);
      yield* sys.nanosleep(10_000_000);
      yield* sys.write(p.value[1], new Uint8Array(32));
      yield* ioUringSubmitAndWait(sys, r.value, 0, 4);
      counts.push(workers(k).length);
      yield* sys.nanosleep(WORKER_IDLE_TIMEOUT_NS / 2);
      counts.push(workers(k).length);
      yield* sys.nanosleep(WORKER_IDLE_TIMEOUT_NS * 2);
      counts.push(workers(k).length);
      left = workers(k).map((w) => w.kthread!.fullName);
      return yield* sys.exitGroup(0);
    });
    settle(k);
    // the fixed worker, and the bound worker the manager made once the first had moved to
    // the unbound account: bound nr_workers was 0 again, so it is FIXED too
    expect(counts).toEqual([3, 3, 2]);
    expect(left).toEqual(['io_wqe_worker-0/0', 'io_wqe_worker-0/0']);
    checkNoLeaks(k, boot0);
  });
});

describe('SQPOLL on linux-5.10', () => {
  it('SQPOLL needs CAP_SYS_ADMIN; with it the SQ thread is the io_uring-sq kthread, and reads of unregistered files fail with EBADF', () => {
    const { k, boot0 } = boot();
    let unpriv: unknown = null;
    let sq: [string, number][] = [];
    let res: number[] = [];
    spawn(
      k,
      'user',
      function* (sys) {
        const x = yield* ioUringQueueInit(sys, 4, { flags: IORING_SETUP_SQPOLL });
        unpriv = x.ok ? 'ok' : x.errno;
        return yield* sys.exitGroup(0);
      },
      { uid: 1000 },
    );
    spawn(k, 'root', function* (sys) {
      const r = yield* ioUringQueueInit(sys, 4, { flags: IORING_SETUP_SQPOLL, sqThreadIdleMs: 2 });
      const p = yield* sys.pipe();
      const buf = yield* sys.mmap(4096);
      if (!r.ok || !p.ok || !buf.ok) return 1;
      sq = tasksNamed(k, 'io_uring-sq').map((t) => [t.comm, t.realParent!.pid]);
      yield* sys.write(p.value[1], new Uint8Array(8));
      queueAsyncReads(sys, r.value, p.value[0], buf.value, 1);
      yield* ioUringSubmitAndWait(sys, r.value, 1, 1);
      res = reapCqes(sys, r.value).map((c) => c.res);
      return yield* sys.exitGroup(0);
    });
    settle(k);
    expect(unpriv).toBe(Errno.EPERM);
    expect(sq).toEqual([['io_uring-sq', k.kthreadd.pid]]);
    expect(res).toEqual([-Errno.EBADF]);
    checkNoLeaks(k, boot0);
  });
});
