/**
 * /proc and cgroupfs rendering: /proc/<pid>/status (fs/proc/array.c proc_pid_status),
 * /proc/<pid>/stat (do_task_stat), /proc/<pid>/cgroup, /proc/<pid>/ns/* links, and the text
 * of pids.* and cpu.stat files, v6.12.
 */
import { describe, expect, it } from 'vitest';
import { checkInvariants } from './invariants.js';
import type { Kernel } from './kernel.js';
import { cgroupFile, procCgroup, procNsLinks, procStat, procStatus, procTaskList } from './procfs.js';
import { RLIMIT_NPROC } from './rlimit.js';
import { CLONE_NEWPID, PF_FORKNOEXEC, PF_KTHREAD } from './sched-consts.js';
import { SIG_BLOCK, SIGTERM, SIGUSR1, sigsetOf } from './signal-consts.js';
import { PR_SET_NAME, type Program } from './syscalls.js';
import type { Task } from './task.js';
import { bootKernel, makeCgroup, settle, spawn, tasksNamed } from './testing.js';

const RLIMIT_SIGPENDING = 11;

/** A program that sleeps `ms` milliseconds. */
function nap(ms: number): Program {
  return function* (sys) {
    yield* sys.nanosleep(ms * 1_000_000);
    return 0;
  };
}

function runUntil(k: Kernel, ms: number): void {
  k.run({ untilTime: ms * 1_000_000 });
  checkInvariants(k);
}

/** qemu (pid 3) with one extra thread "vcpu0" (pid 4), both asleep at 1 ms. */
function qemuWithThread(k: Kernel, o: Parameters<typeof spawn>[3] = {}): { p: Task; t: Task } {
  const p = spawn(
    k,
    'qemu',
    function* (sys) {
      yield* sys.rtSigprocmask(SIG_BLOCK, sigsetOf(SIGUSR1, SIGTERM));
      yield* sys.pthreadCreate(nap(5), 'vcpu0');
      yield* sys.nanosleep(5_000_000);
      return 0;
    },
    o,
  );
  runUntil(k, 1);
  return { p, t: tasksNamed(k, 'vcpu0')[0]! };
}

describe('/proc/<pid>/status', () => {
  it("renders a root user thread line by line, tab-separated, in the kernel's order", () => {
    const k = bootKernel({ profile: 'linux-6.12' });
    const { p, t } = qemuWithThread(k, { rlimits: { [RLIMIT_SIGPENDING]: { cur: 63459, max: 63459 } } });
    expect(p.pid).toBe(3);
    expect(t.pid).toBe(4);
    expect(procStatus(k, t)).toBe(
      [
        'Name:\tvcpu0',
        'Umask:\t0022',
        'State:\tS (sleeping)',
        'Tgid:\t3',
        'Ngid:\t0',
        'Pid:\t4',
        'PPid:\t1',
        'TracerPid:\t0',
        'Uid:\t0\t0\t0\t0',
        'Gid:\t0\t0\t0\t0',
        'FDSize:\t64',
        'Groups:\t ',
        'NStgid:\t3',
        'NSpid:\t4',
        'NSpgid:\t3',
        'NSsid:\t3',
        'Kthread:\t0',
        'VmSize:\t       0 kB',
        'VmRSS:\t       0 kB',
        'Threads:\t2',
        'SigQ:\t0/63459',
        'SigPnd:\t0000000000000000',
        'ShdPnd:\t0000000000000000',
        // the thread inherited the creator's blocked mask: SIGUSR1 (bit 9) and SIGTERM (bit 14)
        'SigBlk:\t0000000000004200',
        'SigIgn:\t0000000000000000',
        'SigCgt:\t0000000000000000',
        'CapInh:\t0000000000000000',
        'CapPrm:\t000001ffffffffff',
        'CapEff:\t000001ffffffffff',
        'CapBnd:\t000001ffffffffff',
        'CapAmb:\t0000000000000000',
        'NoNewPrivs:\t0',
        'Cpus_allowed:\tf',
        'Cpus_allowed_list:\t0-3',
        '',
      ].join('\n'),
    );
    checkInvariants(k);
    settle(k);
  });

  it('renders kthreadd with Kthread: 1, no Vm lines and every signal ignored', () => {
    const k = bootKernel({ profile: 'linux-6.12' });
    const text = procStatus(k, k.kthreadd);
    const lines = text.split('\n');
    expect(lines.slice(0, 8)).toEqual([
      'Name:\tkthreadd',
      'Umask:\t0022',
      'State:\tS (sleeping)',
      'Tgid:\t2',
      'Ngid:\t0',
      'Pid:\t2',
      'PPid:\t0',
      'TracerPid:\t0',
    ]);
    expect(text).toContain('NSsid:\t2\nKthread:\t1\nThreads:\t1\n');
    expect(text).not.toMatch(/^Vm/m);
    expect(text).toContain(
      'SigBlk:\t0000000000000000\nSigIgn:\tffffffffffffffff\nSigCgt:\t0000000000000000\n',
    );
    expect(text).toContain('CapEff:\t000001ffffffffff\n');
    expect(text.endsWith('Cpus_allowed:\tf\nCpus_allowed_list:\t0-3\n')).toBe(true);
    checkInvariants(k);
  });

  it('has no Kthread: line on a profile without procStatusKthreadLine (linux-6.1)', () => {
    const k = bootKernel({ profile: 'linux-6.1' });
    expect(k.profile.procStatusKthreadLine).toBe(false);
    const { t } = qemuWithThread(k);
    expect(procStatus(k, k.kthreadd)).not.toContain('Kthread:');
    expect(procStatus(k, t)).not.toContain('Kthread:');
    expect(procStatus(k, t)).toContain('NSsid:\t3\nVmSize:');
    checkInvariants(k);
    settle(k);
  });

  it('shows empty capability sets for an unprivileged uid', () => {
    const k = bootKernel();
    const p = spawn(k, 'user', nap(1), { uid: 1000, gid: 1000 });
    runUntil(k, 0.5);
    const text = procStatus(k, p);
    expect(text).toContain('Uid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\n');
    expect(text).toContain(
      'CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t000001ffffffffff\n',
    );
    checkInvariants(k);
    settle(k);
  });

  it("gives the PPid of a thread as the tgid of its process's parent, not the process itself", () => {
    const k = bootKernel();
    let parentTgid = 0;
    let thread: Task | null = null;
    spawn(k, 'launcher', function* (sys) {
      parentTgid = sys.getpid();
      yield* sys.fork(function* (c) {
        const r = yield* c.pthreadCreate(nap(3), 'worker');
        if (r.ok) thread = c.k.findTaskByVpid(r.value, c.k.initPidNs);
        yield* c.nanosleep(3_000_000);
        return 0;
      });
      yield* sys.nanosleep(4_000_000);
      return 0;
    });
    runUntil(k, 1);
    expect(thread).not.toBeNull();
    expect(procStatus(k, thread!)).toContain(`PPid:\t${parentTgid}\n`);
    expect(procStatus(k, thread!)).toContain(`Tgid:\t${thread!.tgid}\n`);
    expect(thread!.tgid).not.toBe(parentTgid);
    checkInvariants(k);
    settle(k);
  });

  it("lists NStgid/NSpid from the reader's namespace down to the task's own in a nested pid namespace", () => {
    const k = bootKernel();
    let leader: Task | null = null;
    let thread: Task | null = null;
    spawn(k, 'container', function* (sys) {
      const u = yield* sys.unshare(CLONE_NEWPID);
      expect(u.ok).toBe(true);
      yield* sys.fork(function* (c) {
        leader = c.task;
        expect(c.getpid()).toBe(1);
        const r = yield* c.pthreadCreate(nap(3), 'worker');
        expect(r.ok && r.value).toBe(2);
        thread = tasksNamed(c.k, 'worker')[0]!;
        yield* c.nanosleep(3_000_000);
        return 0;
      });
      yield* sys.nanosleep(4_000_000);
      return 0;
    });
    runUntil(k, 1);
    const l = leader!;
    const t = thread!;
    const inner = l.activePidNs()!;
    expect(inner).not.toBe(k.initPidNs);
    // from the initial namespace: two levels
    const outer = procStatus(k, t);
    expect(outer).toContain(`Tgid:\t${l.pid}\nNgid:\t0\nPid:\t${t.pid}\n`);
    expect(outer).toContain(
      `NStgid:\t${l.pid}\t1\nNSpid:\t${t.pid}\t2\nNSpgid:\t${l.pid}\t1\nNSsid:\t${l.pid}\t1\n`,
    );
    // from inside: one level, and the parent outside the namespace shows as 0
    const insideText = procStatus(k, t, inner);
    expect(insideText).toContain('Tgid:\t1\nNgid:\t0\nPid:\t2\nPPid:\t0\n');
    expect(insideText).toContain('NStgid:\t1\nNSpid:\t2\n');
    expect(procTaskList(l, inner)).toEqual([1, 2]);
    checkInvariants(k);
    settle(k);
  });
});

describe('/proc/<pid>/stat', () => {
  it('prints fields 1–9 with the comm in parentheses and the flags in decimal', () => {
    const k = bootKernel();
    const { p, t } = qemuWithThread(k);
    const f = procStat(k, t).trimEnd().split(' ');
    expect(f.slice(0, 9)).toEqual([
      String(t.pid),
      '(vcpu0)',
      'S',
      '1', // ppid: the process's parent
      String(p.pid), // pgrp
      String(p.pid), // session
      '0', // tty_nr
      '-1', // tpgid
      String(PF_FORKNOEXEC), // a thread never exec'd: PF_FORKNOEXEC = 0x40 = 64
    ]);
    expect(f).toHaveLength(52);
    expect(f[19]).toBe('2'); // num_threads
    expect(f[37]).toBe('-1'); // exit_signal of a thread
    checkInvariants(k);
    settle(k);
  });

  it("keeps a comm with spaces inside one parenthesised field and shows kthreadd's PF_KTHREAD in decimal", () => {
    const k = bootKernel();
    const p = spawn(k, 'x', function* (sys) {
      yield* sys.prctl(PR_SET_NAME, 'my worker (1)');
      yield* sys.nanosleep(2_000_000);
      return 0;
    });
    runUntil(k, 1);
    expect(procStat(k, p).startsWith(`${p.pid} (my worker (1)) S 1 ${p.pid} ${p.pid} 0 -1 `)).toBe(true);
    const kt = procStat(k, k.kthreadd).split(' ');
    expect(kt.slice(0, 4)).toEqual(['2', '(kthreadd)', 'S', '0']);
    expect(Number(kt[8]) & PF_KTHREAD).toBe(PF_KTHREAD);
    expect(kt[8]).toMatch(/^\d+$/);
    checkInvariants(k);
    settle(k);
  });
});

describe('/proc/<pid>/cgroup and /proc/<pid>/ns', () => {
  it('shows the v2 cgroup as "0::/path"', () => {
    const k = bootKernel();
    const cg = makeCgroup(k, 'machine.slice/vm1');
    const { p, t } = qemuWithThread(k, { cgroup: cg });
    expect(procCgroup(k, p)).toBe('0::/machine.slice/vm1\n');
    expect(procCgroup(k, t)).toBe('0::/machine.slice/vm1\n');
    expect(procCgroup(k, k.kthreadd)).toBe('0::/\n');
    checkInvariants(k);
    settle(k);
  });

  it('lists v1 hierarchies by descending id before the v2 line', () => {
    const k = bootKernel({ v1Hierarchies: [['pids'], ['cpu']] });
    expect(procCgroup(k, k.init)).toBe('2:cpu:/\n1:pids:/\n0::/\n');
    checkInvariants(k);
  });

  it('renders namespace links as "type:[inode]" with the initial namespaces\' inode numbers', () => {
    const k = bootKernel();
    const { p, t } = qemuWithThread(k);
    const ns = procNsLinks(p);
    expect(ns.net).toBe('net:[4026531840]');
    expect(ns.user).toBe('user:[4026531837]');
    expect(ns.pid).toBe('pid:[4026531836]');
    expect(ns.ipc).toBe('ipc:[4026531839]');
    expect(ns.uts).toBe('uts:[4026531838]');
    expect(ns.cgroup).toBe('cgroup:[4026531835]');
    for (const v of Object.values(ns)) expect(v).toMatch(/^[a-z_]+:\[\d+\]$/);
    expect(procNsLinks(t)).toEqual(ns);
    checkInvariants(k);
    settle(k);
  });
});

describe('cgroupfs file texts', () => {
  it('pids.max reads "max" when unlimited and pids.events reads "max N"', () => {
    const k = bootKernel();
    const free = makeCgroup(k, 'free');
    const capped = makeCgroup(k, 'capped', { pidsMax: 1 });
    spawn(
      k,
      'forker',
      function* (sys) {
        yield* sys.fork(nap(1));
        yield* sys.fork(nap(1));
        return 0;
      },
      { cgroup: capped },
    );
    settle(k);
    expect(cgroupFile(k, free, 'pids.max')).toBe('max\n');
    expect(cgroupFile(k, free, 'pids.events')).toBe('max 0\n');
    expect(cgroupFile(k, capped, 'pids.max')).toBe('1\n');
    expect(cgroupFile(k, capped, 'pids.events')).toBe('max 2\n');
    expect(cgroupFile(k, capped, 'pids.current')).toBe('0\n');
    expect(cgroupFile(k, k.cgroupRoots[0]!.top, 'pids.max')).toBeNull();
    checkInvariants(k);
  });

  it("cpu.stat lists usage, user, system, then the bandwidth lines in the kernel's order", () => {
    const k = bootKernel();
    const cg = makeCgroup(k, 'vm1', { cpuMaxUs: 50_000 });
    spawn(
      k,
      'burner',
      function* (sys) {
        yield* sys.compute(2_000_000);
        return 0;
      },
      { cgroup: cg },
    );
    settle(k);
    const keys = cgroupFile(k, cg, 'cpu.stat')!
      .trimEnd()
      .split('\n')
      .map((l) => l.split(' ')[0]);
    expect(keys).toEqual([
      'usage_usec',
      'user_usec',
      'system_usec',
      'nr_periods',
      'nr_throttled',
      'throttled_usec',
      'nr_bursts',
      'burst_usec',
    ]);
    expect(cgroupFile(k, cg, 'cpu.max')).toBe('50000 100000\n');
    // the root has no cpu.max and no bandwidth lines
    expect(cgroupFile(k, k.cgroupRoots[0]!.top, 'cpu.max')).toBeNull();
    checkInvariants(k);
  });
});

describe('SigQ limit', () => {
  it('defaults to max_threads / 2 like RLIMIT_NPROC (fork_init)', () => {
    const k = bootKernel();
    const p = spawn(k, 'x', nap(1));
    runUntil(k, 0.5);
    const nproc = p.signal.rlim[RLIMIT_NPROC]!.cur;
    expect(procStatus(k, p)).toContain(`SigQ:\t0/${nproc}\n`);
    settle(k);
  });

  it('prints RLIM_INFINITY as ULONG_MAX, never as a float', () => {
    const k = bootKernel();
    const p = spawn(k, 'x', nap(1), {
      rlimits: { [RLIMIT_SIGPENDING]: { cur: Number.POSITIVE_INFINITY, max: Number.POSITIVE_INFINITY } },
    });
    runUntil(k, 0.5);
    expect(procStatus(k, p)).toContain('SigQ:\t0/18446744073709551615\n');
    checkInvariants(k);
    settle(k);
  });
});
