/**
 * cgroup v2 behaviour of the model: the pids controller (charge at fork, uncharge at release,
 * limit checked only at fork, events by era, peak), cgroup.procs / cgroup.threads moves and
 * their errors, cpu.max throttling, cpuset affinity and memory.current.
 */
import { describe, expect, it } from 'vitest';
import { Errno } from '../kernel/errno.js';
import { checkInvariants } from '../kernel/invariants.js';
import type { Kernel } from '../kernel/kernel.js';
import { kthreadRun } from '../kernel/kthread.js';
import { cgroupFile, procCgroup, procStatus } from '../kernel/procfs.js';
import { sleepFor } from '../kernel/sched.js';
import { __WALL } from '../kernel/sched-consts.js';
import type { Sys } from '../kernel/syscalls.js';
import type { Task } from '../kernel/task.js';
import { bootKernel, makeCgroup, settle, spawn, tasksNamed } from '../kernel/testing.js';
import {
  type Cgroup,
  cgroupAttachTaskAll,
  cgroupEnableController,
  cgroupMkdirP,
  cgroupProcsWrite,
  cgroupSetThreaded,
} from './cgroup.js';

/** A program that sleeps for `us` microseconds, then exits. */
function sleeper(us: number) {
  return function* (sys: Sys) {
    yield* sys.nanosleep(us * 1000);
    return 0;
  };
}

/** mkdir -p `path` enabling only threaded controllers (a thread root can have no domain ones). */
function threadedDomain(k: Kernel, path: string): Cgroup {
  const r = cgroupMkdirP(k.cgroupRoots[0]!.top, path);
  if (!r.ok) throw new Error(`mkdir ${path}: errno ${r.errno}`);
  for (let c = r.value.parent; c; c = c.parent)
    for (const ctrl of ['pids', 'cpu', 'cpuset'] as const) cgroupEnableController(c, ctrl);
  return r.value;
}

function file(k: Kernel, cg: Cgroup, name: string): string | null {
  return cgroupFile(k, cg, name);
}

/** Run until virtual time `ms`, then check invariants. */
function runUntil(k: Kernel, ms: number): void {
  k.run({ untilTime: ms * 1_000_000 });
  checkInvariants(k);
}

describe('pids controller: charge and uncharge', () => {
  it('a fork charges pids.current and the charge stays with a zombie until it is reaped', () => {
    const k = bootKernel();
    const cg = makeCgroup(k, 'vm1');
    const seen: string[] = [];
    spawn(
      k,
      'parent',
      function* (sys) {
        seen.push(file(k, cg, 'pids.current')!);
        const child = yield* sys.fork(sleeper(100));
        expect(child.ok).toBe(true);
        seen.push(file(k, cg, 'pids.current')!);
        yield* sys.nanosleep(1_000_000); // the child is a zombie by now
        seen.push(file(k, cg, 'pids.current')!);
        const w = yield* sys.wait4(-1, __WALL);
        expect(w.ok && w.value.pid).toBe(child.ok && child.value);
        seen.push(file(k, cg, 'pids.current')!);
        return 0;
      },
      { cgroup: cg },
    );
    settle(k);
    expect(seen).toEqual(['1\n', '2\n', '2\n', '1\n']);
    expect(file(k, cg, 'pids.current')).toBe('0\n');
    checkInvariants(k);
  });

  it('threads are charged like processes and uncharged when they exit', () => {
    const k = bootKernel();
    const cg = makeCgroup(k, 'vm1');
    let during = '';
    spawn(
      k,
      'qemu',
      function* (sys) {
        for (let i = 0; i < 3; i++) yield* sys.pthreadCreate(sleeper(100));
        during = file(k, cg, 'pids.current')!;
        yield* sys.nanosleep(1_000_000);
        return 0;
      },
      { cgroup: cg },
    );
    runUntil(k, 0.5);
    expect(during).toBe('4\n');
    runUntil(k, 0.9);
    expect(file(k, cg, 'pids.current')).toBe('1\n');
    settle(k);
    expect(file(k, cg, 'pids.current')).toBe('0\n');
    checkInvariants(k);
  });
});

describe('pids controller: the limit is checked only at fork', () => {
  it('a fork that would exceed pids.max fails with EAGAIN and counts a max event', () => {
    const k = bootKernel();
    const cg = makeCgroup(k, 'vm1', { pidsMax: 2 });
    const results: (number | string)[] = [];
    spawn(
      k,
      'qemu',
      function* (sys) {
        const a = yield* sys.pthreadCreate(sleeper(1000));
        results.push(a.ok ? 'ok' : a.errno);
        const b = yield* sys.pthreadCreate(sleeper(1000));
        results.push(b.ok ? 'ok' : b.errno);
        const c = yield* sys.fork(sleeper(1000));
        results.push(c.ok ? 'ok' : c.errno);
        return 0;
      },
      { cgroup: cg },
    );
    settle(k);
    expect(results).toEqual(['ok', Errno.EAGAIN, Errno.EAGAIN]);
    expect(k.lastCopyProcessFailure?.rule).toBe('cgroup_can_fork (pids)');
    expect(file(k, cg, 'pids.max')).toBe('2\n');
    expect(file(k, cg, 'pids.events')).toBe('max 2\n');
    expect(file(k, cg, 'pids.current')).toBe('0\n');
    checkInvariants(k);
  });

  it('moving a process into a cgroup at pids.max succeeds and pushes pids.current past the limit', () => {
    const k = bootKernel();
    const full = makeCgroup(k, 'full', { pidsMax: 1 });
    const other = makeCgroup(k, 'other');
    spawn(k, 'resident', sleeper(5000), { cgroup: full });
    const mover = spawn(
      k,
      'mover',
      function* (sys) {
        yield* sys.pthreadCreate(sleeper(5000));
        yield* sys.nanosleep(5_000_000);
        return 0;
      },
      { cgroup: other },
    );
    runUntil(k, 1);
    expect(file(k, full, 'pids.current')).toBe('1\n');
    const r = cgroupProcsWrite(k, k.init, full, mover.pid, true);
    expect(r.ok).toBe(true);
    expect(file(k, full, 'pids.current')).toBe('3\n');
    expect(file(k, full, 'pids.max')).toBe('1\n');
    expect(file(k, full, 'pids.events')).toBe('max 0\n');
    expect(file(k, other, 'pids.current')).toBe('0\n');
    checkInvariants(k);
    settle(k);
    expect(file(k, full, 'pids.current')).toBe('0\n');
  });

  it('cgroup_attach_task_all moves a kthread into a full cgroup without a pids.max check (linux-6.1)', () => {
    const k = bootKernel({ profile: 'linux-6.1' });
    const vm = makeCgroup(k, 'vm1', { pidsMax: 1 });
    let worker: Task | null = null;
    spawn(
      k,
      'qemu',
      function* (sys) {
        const r = yield* kthreadRun(
          k,
          function* () {
            yield* sleepFor(k, 2_000_000);
            return 0;
          },
          null,
          `vhost-${sys.task.pid}`,
        );
        if (!r.ok) throw new Error('kthread_run failed');
        worker = r.value;
        expect(cgroupAttachTaskAll(k, sys.task, worker).ok).toBe(true);
        yield* sys.nanosleep(1_000_000);
        return 0;
      },
      { cgroup: vm },
    );
    runUntil(k, 0.5);
    expect(worker).not.toBeNull();
    expect(procCgroup(k, worker!)).toBe('0::/vm1\n');
    expect(file(k, vm, 'pids.current')).toBe('2\n');
    expect(file(k, vm, 'pids.events')).toBe('max 0\n');
    settle(k);
    expect(file(k, vm, 'pids.current')).toBe('0\n');
    checkInvariants(k);
  });

  it('pids.peak records the highest pids.current and does not fall back', () => {
    const k = bootKernel();
    const cg = makeCgroup(k, 'vm1');
    spawn(
      k,
      'qemu',
      function* (sys) {
        for (let i = 0; i < 4; i++) yield* sys.pthreadCreate(sleeper(100));
        yield* sys.nanosleep(1_000_000);
        yield* sys.pthreadCreate(sleeper(100));
        yield* sys.nanosleep(1_000_000);
        return 0;
      },
      { cgroup: cg },
    );
    settle(k);
    expect(file(k, cg, 'pids.peak')).toBe('5\n');
    expect(file(k, cg, 'pids.current')).toBe('0\n');
    checkInvariants(k);
  });
});

describe('pids.events by era', () => {
  /** outer/limited (pids.max 1) / inner: a process in inner forks; limited's limit rejects it. */
  function forkPastAncestorLimit(profile: string) {
    const k = bootKernel({ profile });
    const outer = makeCgroup(k, 'outer');
    const limited = makeCgroup(k, 'outer/limited', { pidsMax: 1 });
    const inner = makeCgroup(k, 'outer/limited/inner');
    let forked: number | string = '';
    spawn(
      k,
      'qemu',
      function* (sys) {
        const r = yield* sys.fork(sleeper(10));
        forked = r.ok ? 'ok' : r.errno;
        return 0;
      },
      { cgroup: inner },
    );
    settle(k);
    expect(forked).toBe(Errno.EAGAIN);
    return { k, outer, limited, inner };
  }

  it('linux-6.1 counts the max event in the forking cgroup only and has no pids.events.local', () => {
    const { k, outer, limited, inner } = forkPastAncestorLimit('linux-6.1');
    expect(file(k, inner, 'pids.events')).toBe('max 1\n');
    expect(file(k, limited, 'pids.events')).toBe('max 0\n');
    expect(file(k, outer, 'pids.events')).toBe('max 0\n');
    expect(file(k, inner, 'pids.events.local')).toBeNull();
    checkInvariants(k);
  });

  it('linux-6.12 counts the max event at the limiting cgroup and its ancestors, .local at the limiting one', () => {
    const { k, outer, limited, inner } = forkPastAncestorLimit('linux-6.12');
    expect(file(k, inner, 'pids.events')).toBe('max 0\n');
    expect(file(k, limited, 'pids.events')).toBe('max 1\n');
    expect(file(k, outer, 'pids.events')).toBe('max 1\n');
    expect(file(k, inner, 'pids.events.local')).toBe('max 0\n');
    expect(file(k, limited, 'pids.events.local')).toBe('max 1\n');
    expect(file(k, outer, 'pids.events.local')).toBe('max 0\n');
    checkInvariants(k);
  });
});

describe('cgroup.procs and cgroup.threads', () => {
  /** A process with two extra threads, alive for 5 ms. */
  function threeThreads(k: Kernel, cg?: Cgroup): Task {
    return spawn(
      k,
      'qemu',
      function* (sys) {
        yield* sys.pthreadCreate(sleeper(5000), 'vcpu0');
        yield* sys.pthreadCreate(sleeper(5000), 'vcpu1');
        yield* sys.nanosleep(5_000_000);
        return 0;
      },
      cg ? { cgroup: cg } : {},
    );
  }

  it('writing any thread id to cgroup.procs moves the whole process', () => {
    const k = bootKernel();
    const a = makeCgroup(k, 'a');
    const b = makeCgroup(k, 'b');
    const p = threeThreads(k, a);
    runUntil(k, 1);
    const vcpu1 = tasksNamed(k, 'vcpu1')[0]!;
    expect(cgroupProcsWrite(k, k.init, b, vcpu1.pid, true).ok).toBe(true);
    for (const t of p.signal.threads) expect(procCgroup(k, t)).toBe('0::/b\n');
    expect(file(k, b, 'cgroup.procs')).toBe(`${p.pid}\n`);
    expect(file(k, b, 'cgroup.threads')).toBe(p.signal.threads.map((t) => `${t.pid}\n`).join(''));
    expect(file(k, a, 'pids.current')).toBe('0\n');
    expect(file(k, b, 'pids.current')).toBe('3\n');
    checkInvariants(k);
    settle(k);
  });

  it('cgroup.threads moves one thread between threaded cgroups of the same domain', () => {
    const k = bootKernel();
    const dom = threadedDomain(k, 'vm');
    const io = threadedDomain(k, 'vm/io');
    expect(cgroupSetThreaded(io).ok).toBe(true);
    expect(file(k, dom, 'cgroup.type')).toBe('domain threaded\n');
    expect(file(k, io, 'cgroup.type')).toBe('threaded\n');
    const p = threeThreads(k, dom);
    runUntil(k, 1);
    const vcpu0 = tasksNamed(k, 'vcpu0')[0]!;
    expect(cgroupProcsWrite(k, k.init, io, vcpu0.pid, false).ok).toBe(true);
    expect(procCgroup(k, vcpu0)).toBe('0::/vm/io\n');
    expect(procCgroup(k, p)).toBe('0::/vm\n');
    expect(file(k, io, 'cgroup.threads')).toBe(`${vcpu0.pid}\n`);
    expect(file(k, io, 'pids.current')).toBe('1\n');
    expect(file(k, dom, 'pids.current')).toBe('3\n'); // hierarchical
    checkInvariants(k);
    settle(k);
  });

  it("writing a pid to a threaded cgroup's cgroup.procs moves every thread of the process", () => {
    const k = bootKernel();
    const dom = threadedDomain(k, 'vm');
    const io = threadedDomain(k, 'vm/io');
    expect(cgroupSetThreaded(io).ok).toBe(true);
    const p = threeThreads(k, dom);
    runUntil(k, 1);
    expect(cgroupProcsWrite(k, k.init, io, p.pid, true).ok).toBe(true);
    for (const t of p.signal.threads) expect(procCgroup(k, t)).toBe('0::/vm/io\n');
    checkInvariants(k);
    settle(k);
  });

  it('cgroup.threads refuses to move a thread out of its threaded domain with EOPNOTSUPP', () => {
    const k = bootKernel();
    const a = makeCgroup(k, 'a');
    const b = makeCgroup(k, 'b');
    threeThreads(k, a);
    runUntil(k, 1);
    const vcpu0 = tasksNamed(k, 'vcpu0')[0]!;
    expect(cgroupProcsWrite(k, k.init, b, vcpu0.pid, false)).toEqual({ ok: false, errno: Errno.EOPNOTSUPP });
    expect(procCgroup(k, vcpu0)).toBe('0::/a\n');
    checkInvariants(k);
    settle(k);
  });

  it('a "domain invalid" cgroup under a thread root cannot take tasks (EOPNOTSUPP)', () => {
    const k = bootKernel();
    const dom = threadedDomain(k, 'vm');
    const io = threadedDomain(k, 'vm/io');
    expect(cgroupSetThreaded(io).ok).toBe(true);
    const inv = threadedDomain(k, 'vm/stray');
    expect(file(k, inv, 'cgroup.type')).toBe('domain invalid\n');
    const p = threeThreads(k, dom);
    runUntil(k, 1);
    expect(cgroupProcsWrite(k, k.init, inv, p.pid, true)).toEqual({ ok: false, errno: Errno.EOPNOTSUPP });
    checkInvariants(k);
    settle(k);
  });

  it('a cgroup cannot become threaded under a parent with a domain controller enabled (EOPNOTSUPP)', () => {
    const k = bootKernel();
    makeCgroup(k, 'vm/io'); // makeCgroup enables memory on vm
    const io = k.cgroupRoots[0]!.top.lookup('vm/io')!;
    expect(cgroupSetThreaded(io)).toEqual({ ok: false, errno: Errno.EOPNOTSUPP });
    checkInvariants(k);
  });

  it('a domain with a domain controller enabled for its children refuses processes (EBUSY)', () => {
    const k = bootKernel();
    const parent = makeCgroup(k, 'machine');
    makeCgroup(k, 'machine/vm1'); // enables memory (a domain controller) in machine's subtree_control
    const p = threeThreads(k);
    runUntil(k, 1);
    expect(file(k, parent, 'cgroup.subtree_control')).toContain('memory');
    expect(cgroupProcsWrite(k, k.init, parent, p.pid, true)).toEqual({ ok: false, errno: Errno.EBUSY });
    expect(procCgroup(k, p)).toBe('0::/\n');
    checkInvariants(k);
    settle(k);
  });

  it('a domain with only threaded controllers enabled and empty children accepts processes', () => {
    const k = bootKernel();
    const parent = threadedDomain(k, 'machine');
    threadedDomain(k, 'machine/vm1');
    const p = threeThreads(k);
    runUntil(k, 1);
    expect(file(k, parent, 'cgroup.subtree_control')).toBe('pids cpu cpuset\n');
    expect(cgroupProcsWrite(k, k.init, parent, p.pid, true).ok).toBe(true);
    expect(procCgroup(k, p)).toBe('0::/machine\n');
    checkInvariants(k);
    settle(k);
  });

  it('a domain with controllers enabled and a populated domain child refuses processes (EBUSY)', () => {
    const k = bootKernel();
    const parent = threadedDomain(k, 'machine');
    const child = threadedDomain(k, 'machine/vm1');
    threeThreads(k, child);
    const q = spawn(k, 'other', sleeper(5000));
    runUntil(k, 1);
    expect(cgroupProcsWrite(k, k.init, parent, q.pid, true)).toEqual({ ok: false, errno: Errno.EBUSY });
    checkInvariants(k);
    settle(k);
  });

  it('an unknown pid gives ESRCH and kthreadd gives EINVAL', () => {
    const k = bootKernel();
    const a = makeCgroup(k, 'a');
    expect(cgroupProcsWrite(k, k.init, a, 4242, true)).toEqual({ ok: false, errno: Errno.ESRCH });
    expect(cgroupProcsWrite(k, k.init, a, k.kthreadd.pid, true)).toEqual({ ok: false, errno: Errno.EINVAL });
    expect(procCgroup(k, k.kthreadd)).toBe('0::/\n');
    checkInvariants(k);
  });

  it('a non-root writer needs the cgroup delegated to it (EACCES otherwise)', () => {
    const k = bootKernel();
    const mine = makeCgroup(k, 'user.slice/mine', { ownerUid: 1000 });
    const theirs = makeCgroup(k, 'user.slice/theirs');
    const results: (number | string)[] = [];
    spawn(
      k,
      'shell',
      function* (sys) {
        for (const cg of [mine, theirs]) {
          const r = cgroupProcsWrite(k, sys.task, cg, 0, true);
          results.push(r.ok ? 'ok' : r.errno);
        }
        return 0;
      },
      { uid: 1000 },
    );
    settle(k);
    expect(results).toEqual(['ok', Errno.EACCES]);
    checkInvariants(k);
  });
});

describe('cpu controller', () => {
  it('cpu.max throttles a computing process: nr_throttled > 0 and usage_usec grows', () => {
    const k = bootKernel();
    const cg = makeCgroup(k, 'capped', { cpuMaxUs: 10_000, cpuPeriodUs: 100_000 });
    spawn(
      k,
      'burner',
      function* (sys) {
        yield* sys.compute(50_000_000); // 50 ms of user time
        return 0;
      },
      { cgroup: cg },
    );
    settle(k);
    expect(file(k, cg, 'cpu.max')).toBe('10000 100000\n');
    const stat = Object.fromEntries(
      file(k, cg, 'cpu.stat')!
        .trim()
        .split('\n')
        .map((l) => l.split(' ') as [string, string]),
    );
    expect(Number(stat.usage_usec)).toBeGreaterThanOrEqual(50_000);
    expect(Number(stat.user_usec)).toBeGreaterThanOrEqual(50_000);
    expect(Number(stat.nr_throttled)).toBeGreaterThan(0);
    expect(Number(stat.nr_periods)).toBeGreaterThanOrEqual(5);
    expect(Number(stat.throttled_usec)).toBeGreaterThan(0);
    // with a 10% quota, 50 ms of CPU takes at least four full periods of wall time
    expect(k.clock).toBeGreaterThanOrEqual(400_000_000);
    checkInvariants(k);
  });

  it('an uncapped cgroup never throttles', () => {
    const k = bootKernel();
    const cg = makeCgroup(k, 'free');
    spawn(
      k,
      'burner',
      function* (sys) {
        yield* sys.compute(20_000_000);
        return 0;
      },
      { cgroup: cg },
    );
    settle(k);
    expect(file(k, cg, 'cpu.stat')).toMatch(/^usage_usec \d+\n/);
    expect(file(k, cg, 'cpu.stat')).toContain('nr_throttled 0\n');
    expect(k.clock).toBeLessThan(30_000_000);
    checkInvariants(k);
  });
});

describe('cpuset controller', () => {
  it('a process spawned in a cgroup with cpus 2-3 runs on 2-3, its threads inherit it, kthreads keep the housekeeping mask', () => {
    const k = bootKernel({ cpus: 4, housekeepingCpus: 0b0011 });
    const cg = makeCgroup(k, 'pinned', { cpus: 0b1100 });
    let kt: Task | null = null;
    let thread: Task | null = null;
    const p = spawn(
      k,
      'qemu',
      function* (sys) {
        const r = yield* sys.pthreadCreate(sleeper(2000), 'vcpu0');
        thread = r.ok ? sys.k.findTaskByVpid(r.value, sys.k.initPidNs) : null;
        const w = yield* kthreadRun(
          k,
          function* () {
            yield* sleepFor(k, 2_000_000);
            return 0;
          },
          null,
          'vhost-worker',
        );
        kt = w.ok ? w.value : null;
        yield* sys.nanosleep(2_000_000);
        return 0;
      },
      { cgroup: cg },
    );
    runUntil(k, 1);
    expect(file(k, cg, 'cpuset.cpus')).toBe('2-3\n');
    expect(file(k, cg, 'cpuset.cpus.effective')).toBe('2-3\n');
    expect(procStatus(k, p)).toContain('Cpus_allowed:\tc\nCpus_allowed_list:\t2-3\n');
    expect(procStatus(k, thread!)).toContain('Cpus_allowed_list:\t2-3\n');
    expect(procStatus(k, kt!)).toContain('Cpus_allowed:\t3\nCpus_allowed_list:\t0-1\n');
    expect(procCgroup(k, kt!)).toBe('0::/\n');
    expect(procStatus(k, k.kthreadd)).toContain('Cpus_allowed_list:\t0-1\n');
    checkInvariants(k);
    settle(k);
  });
});

describe('memory controller', () => {
  it("memory.current rises with mmap in the process's cgroup and its ancestors", () => {
    const k = bootKernel();
    const parent = makeCgroup(k, 'machine');
    const cg = makeCgroup(k, 'machine/vm1');
    const seen: string[] = [];
    spawn(
      k,
      'qemu',
      function* (sys) {
        seen.push(file(k, cg, 'memory.current')!);
        const r = yield* sys.mmap(1 << 20);
        expect(r.ok).toBe(true);
        seen.push(file(k, cg, 'memory.current')!);
        yield* sys.mmap(5000); // rounded up to two pages
        seen.push(file(k, cg, 'memory.current')!);
        seen.push(file(k, parent, 'memory.current')!);
        return 0;
      },
      { cgroup: cg },
    );
    settle(k);
    expect(seen).toEqual(['0\n', `${1 << 20}\n`, `${(1 << 20) + 8192}\n`, `${(1 << 20) + 8192}\n`]);
    checkInvariants(k);
  });
});
