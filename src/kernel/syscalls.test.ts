/**
 * The user-program syscall layer (syscalls.ts) where other tests do not reach it: vfork,
 * execve, eventfd, dup/close and file release, sched_setaffinity, capset, setresuid,
 * rt_sigprocmask, stop/continue reports from wait4/waitid, PR_SET_PDEATHSIG, pids inside a
 * pid namespace, kill(-1), and how a signal ends or restarts a sleeping syscall.
 */
import { describe, expect, it } from 'vitest';
import { CAP_FULL_SET, CAP_KILL, CAP_SETPCAP, CAP_SYS_ADMIN, CAP_SYS_NICE, capBit } from './cred.js';
import { Errno, ok, type Result } from './errno.js';
import type { WaitResult } from './exit.js';
import { File, type FileOps, O_CLOEXEC, O_NONBLOCK } from './files.js';
import { checkInvariants } from './invariants.js';
import type { Kernel } from './kernel.js';
import { procStatus } from './procfs.js';
import { RLIMIT_NPROC } from './rlimit.js';
import {
  CLONE_NEWPID,
  PF_NPROC_EXCEEDED,
  PF_SIGNALED,
  WCONTINUED,
  WNOHANG,
  WUNTRACED,
} from './sched-consts.js';
import {
  FULL_SIGSET,
  SA_RESTART,
  SIG_BLOCK,
  SIG_DFL,
  SIG_IGN,
  SIG_SETMASK,
  SIG_UNBLOCK,
  SIGCHLD,
  SIGCONT,
  SIGINT,
  SIGKILL,
  SIGSTOP,
  SIGTERM,
  SIGUSR1,
  SIGUSR2,
  sigsetOf,
} from './signal-consts.js';
import {
  caughtSignals,
  EFD_SEMAPHORE,
  type Eventfd,
  PR_SET_PDEATHSIG,
  type Program,
  type Sys,
} from './syscalls.js';
import { type SigAction, type Task, taskStateLetter } from './task.js';
import { bootKernel, makeCgroup, settle, spawn } from './testing.js';

const MS = 1_000_000;
const HANDLER = 0x401000;
const U64_MAX = 0xffffffffffffffffn;

/** A child that sleeps `ms` virtual milliseconds, then exits with `code`. */
const sleepThenExit = (ms: number, code = 0): Program =>
  function* (sys) {
    yield* sys.nanosleep(ms * MS);
    return code;
  };

/** The value of a successful result; a failure is a test bug. */
function must<T>(r: Result<T>): T {
  if (!r.ok) throw new Error(`expected success, got errno ${r.errno}`);
  return r.value;
}

/** The task behind a pid returned to `sys`. */
function taskOf(sys: Sys, r: Result<number>): Task {
  const t = sys.k.findTaskByVpid(must(r), sys.task.activePidNs()!);
  if (!t) throw new Error(`no task ${must(r)}`);
  return t;
}

/** An 8-byte little-endian buffer, as eventfd's write(2) takes it. */
function u64(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v, true);
  return b;
}

/** The value of an 8-byte little-endian eventfd read. */
function readU64(r: Result<Uint8Array>): bigint {
  const b = must(r);
  return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
}

/** The eventfd context behind `fd` of `t`. */
function eventfdOf(t: Task, fd: number): Eventfd {
  return t.files!.get(fd)!.priv as Eventfd;
}

/** One field of /proc/<pid>/status. */
function status(k: Kernel, t: Task, field: string): string {
  const line = procStatus(k, t)
    .split('\n')
    .find((l) => l.startsWith(`${field}:`));
  if (!line) throw new Error(`no ${field} in status of ${t}`);
  return line.slice(field.length + 1).trim();
}

/**
 * Register a char device at `path` whose release records the task it runs in (k.current),
 * as a driver's f_op->release would see `current`.
 */
function recorderDevice(k: Kernel, path = '/dev/recorder'): (Task | null)[] {
  const released: (Task | null)[] = [];
  const ops: FileOps = {
    name: 'recorder',
    *release(kk) {
      released.push(kk.current);
    },
  };
  k.devices.set(path, function* (_k, p, flags) {
    return ok(new File(ops, p, flags, null));
  });
  return released;
}

const nproc = (k: Kernel, uid: number) => k.ucounts.get(k.initUserNs, uid).nproc;

describe('vfork', () => {
  it('the parent sleeps (D) until the child execs, and the child runs on the parent’s mm until then', () => {
    const k = bootKernel();
    const seen: Record<string, unknown> = {};
    spawn(k, 'shell', function* (sys) {
      const mm = sys.task.mm!;
      const r = yield* sys.vfork(function* (c) {
        seen.sharesMm = c.task.mm === mm;
        seen.mmUsersInChild = mm.users;
        yield* c.nanosleep(5 * MS);
        seen.parentState = taskStateLetter(sys.task);
        seen.execAt = k.clock;
        const e = yield* c.execve('/bin/true', function* (c2) {
          seen.ownMmAfterExec = c2.task.mm !== mm;
          yield* c2.nanosleep(5 * MS);
          seen.childDoneAt = k.clock;
          return 0;
        });
        return e.ok ? 0 : 1;
      });
      seen.resumedAt = k.clock;
      seen.mmUsersAfterExec = mm.users;
      seen.wait = yield* sys.wait4(must(r));
      return 0;
    });
    settle(k);
    expect(seen.sharesMm).toBe(true);
    expect(seen.mmUsersInChild).toBe(2);
    expect(seen.parentState).toBe('D');
    expect(seen.ownMmAfterExec).toBe(true);
    expect(seen.mmUsersAfterExec).toBe(1);
    // the parent ran again right after the exec, while the new image was still sleeping
    expect(seen.resumedAt as number).toBeGreaterThanOrEqual(seen.execAt as number);
    expect(seen.resumedAt as number).toBeLessThan(seen.childDoneAt as number);
    expect((seen.wait as Result<WaitResult>).ok).toBe(true);
    checkInvariants(k);
  });

  it('the parent sleeps until a vfork child that never execs exits, then reaps its status', () => {
    const k = bootKernel();
    let exitAt = 0;
    let resumedAt = 0;
    let w: Result<WaitResult> | undefined;
    spawn(k, 'shell', function* (sys) {
      const r = yield* sys.vfork(function* (c) {
        yield* c.nanosleep(3 * MS);
        exitAt = k.clock;
        return 7;
      });
      resumedAt = k.clock;
      w = yield* sys.wait4(must(r));
      return 0;
    });
    settle(k);
    expect(exitAt).toBeGreaterThan(3 * MS);
    expect(resumedAt).toBeGreaterThanOrEqual(exitAt);
    expect(w?.ok && w.value.status).toBe(7 << 8);
    checkInvariants(k);
  });
});

describe('execve', () => {
  it('comm becomes the basename of the path, truncated to 15 characters', () => {
    const k = bootKernel();
    const seen: string[] = [];
    spawn(k, 'launcher', function* (sys) {
      yield* sys.execve('/usr/libexec/qemu-system-x86_64', function* (s) {
        seen.push(s.task.comm, status(k, s.task, 'Name'));
        const e = yield* s.execve('/bin/true', function* (s2) {
          seen.push(s2.task.comm);
          return 0;
        });
        return e.ok ? 0 : 1;
      });
      return 1;
    });
    settle(k);
    expect(seen).toEqual(['qemu-system-x86', 'qemu-system-x86', 'true']);
    checkInvariants(k);
  });

  it('caught handlers are reset to SIG_DFL, SIG_IGN stays (with flags and mask cleared), the blocked mask is kept', () => {
    const k = bootKernel();
    const seen: Record<string, unknown> = {};
    let w: Result<WaitResult> | undefined;
    const sh = spawn(k, 'sh', function* (sys) {
      w = yield* sys.wait4(-1);
      return 0;
    });
    spawn(
      k,
      'app',
      function* (sys) {
        yield* sys.rtSigaction(SIGUSR1, { handler: HANDLER, flags: SA_RESTART, mask: sigsetOf(SIGINT) });
        yield* sys.rtSigaction(SIGUSR2, { handler: SIG_IGN, flags: SA_RESTART, mask: sigsetOf(SIGINT) });
        yield* sys.rtSigprocmask(SIG_BLOCK, sigsetOf(SIGTERM));
        yield* sys.execve('/usr/bin/next', function* (s) {
          seen.usr1 = must(yield* s.rtSigaction(SIGUSR1, null));
          seen.usr2 = must(yield* s.rtSigaction(SIGUSR2, null));
          seen.blocked = s.task.blocked;
          // the default action of SIGUSR1 now applies: the process is terminated
          yield* s.kill(s.getpid(), SIGUSR1);
          return 0;
        });
        return 1;
      },
      { parent: sh },
    );
    settle(k);
    expect(seen.usr1).toEqual<SigAction>({ handler: SIG_DFL, flags: 0, mask: 0n });
    expect(seen.usr2).toEqual<SigAction>({ handler: SIG_IGN, flags: 0, mask: 0n });
    expect(seen.blocked).toBe(sigsetOf(SIGTERM));
    expect(w?.ok && w.value.status).toBe(SIGUSR1);
    checkInvariants(k);
  });

  it('close-on-exec descriptors are closed (release runs in the exec’ing task), the others are kept', () => {
    const k = bootKernel();
    const released = recorderDevice(k);
    const seen: Record<string, unknown> = {};
    const app = spawn(k, 'app', function* (sys) {
      const cloexec = must(yield* sys.eventfd(0, O_CLOEXEC));
      const kept = must(yield* sys.eventfd(0));
      const dev = must(yield* sys.open('/dev/recorder', O_CLOEXEC));
      // dup(2) never copies FD_CLOEXEC
      const dupOfCloexec = must(yield* sys.dup(cloexec));
      seen.fds = [cloexec, kept, dev, dupOfCloexec];
      seen.releasedBeforeExec = released.length;
      yield* sys.execve('/usr/bin/next', function* (s) {
        seen.readClosed = yield* s.read(cloexec, 8);
        seen.devClosed = yield* s.write(dev, u64(1n));
        yield* s.write(kept, u64(2n));
        seen.readKept = readU64(yield* s.read(kept, 8));
        yield* s.write(dupOfCloexec, u64(3n));
        seen.readDup = readU64(yield* s.read(dupOfCloexec, 8));
        seen.openFds = s.task.files!.openCount();
        return 0;
      });
      return 1;
    });
    settle(k);
    expect(seen.fds).toEqual([0, 1, 2, 3]);
    expect(seen.releasedBeforeExec).toBe(0);
    expect(released).toEqual([app]);
    expect(seen.readClosed).toEqual({ ok: false, errno: Errno.EBADF });
    expect(seen.devClosed).toEqual({ ok: false, errno: Errno.EBADF });
    expect(seen.readKept).toBe(2n);
    expect(seen.readDup).toBe(3n);
    expect(seen.openFds).toBe(2);
    checkInvariants(k);
  });

  it('fails with EAGAIN while PF_NPROC_EXCEEDED still holds, and succeeds once the uid is back under RLIMIT_NPROC', () => {
    const k = bootKernel();
    // two processes of uid 1000 already exist
    spawn(k, 'user-a', sleepThenExit(20), { uid: 1000 });
    spawn(k, 'user-b', sleepThenExit(20), { uid: 1000 });
    const seen: Record<string, unknown> = {};
    const daemon = spawn(
      k,
      'daemon',
      function* (sys) {
        must(yield* sys.setresuid(1000, 1000, 1000));
        seen.flagged = (sys.task.flags & PF_NPROC_EXCEEDED) !== 0;
        seen.firstExec = yield* sys.execve('/usr/bin/worker', function* () {
          return 2;
        });
        seen.stillFlagged = (sys.task.flags & PF_NPROC_EXCEEDED) !== 0;
        // the other two exit; the uid's count falls back to this task alone
        yield* sys.nanosleep(30 * MS);
        seen.countBeforeSecondExec = nproc(k, 1000);
        yield* sys.execve('/usr/bin/worker', function* (s) {
          seen.flaggedAfterExec = (s.task.flags & PF_NPROC_EXCEEDED) !== 0;
          return 0;
        });
        return 1;
      },
      { rlimits: { [RLIMIT_NPROC]: { cur: 1, max: 1 } } },
    );
    settle(k);
    expect(seen.flagged).toBe(true);
    expect(seen.firstExec).toEqual({ ok: false, errno: Errno.EAGAIN });
    expect(seen.stillFlagged).toBe(true);
    expect(seen.countBeforeSecondExec).toBe(1);
    expect(seen.flaggedAfterExec).toBe(false);
    expect(daemon.comm).toBe('worker');
    expect(daemon.flags & PF_SIGNALED).toBe(0);
    checkInvariants(k);
  });

  it('a non-leader thread’s exec takes over the leader’s pid; the leader and the other threads are gone', () => {
    const k = bootKernel();
    const seen: Record<string, unknown> = {};
    let w: Result<WaitResult> | undefined;
    const sh = spawn(k, 'sh', function* (sys) {
      w = yield* sys.wait4(-1);
      return 0;
    });
    let sibling: Task | null = null;
    let execer: Task | null = null;
    const app = spawn(
      k,
      'app',
      function* (sys) {
        const pid = sys.getpid();
        sibling = taskOf(sys, yield* sys.pthreadCreate(sleepThenExit(100)));
        const r = yield* sys.pthreadCreate(function* (t) {
          yield* t.nanosleep(MS);
          const e = yield* t.execve('/usr/bin/next', function* (s) {
            seen.pid = s.getpid() === pid;
            seen.tid = s.gettid() === pid;
            seen.ppid = s.getppid();
            seen.threads = s.task.signal.threads.length;
            seen.hashedUnderPid = k.tasks.get(pid) === s.task;
            seen.siblingGone = !sibling!.alive && !sibling!.tasksAlive();
            seen.oldLeaderGone = !app.tasksAlive();
            return 3;
          });
          return e.ok ? 0 : 1;
        });
        execer = taskOf(sys, r);
        yield* sys.nanosleep(100 * MS);
        return 0;
      },
      { parent: sh },
    );
    const pid = app.pid;
    settle(k);
    expect(seen).toEqual({
      pid: true,
      tid: true,
      ppid: sh.pid,
      threads: 1,
      hashedUnderPid: true,
      siblingGone: true,
      oldLeaderGone: true,
    });
    expect(execer!.pid).toBe(pid);
    expect(w).toEqual({ ok: true, value: { pid, status: 3 << 8 } });
    checkInvariants(k);
  });
});

describe('exit and exit_group', () => {
  it('exit(2) of the last thread and exit_group(2) report their code to wait4 as code << 8', () => {
    const k = bootKernel();
    const statuses: number[] = [];
    spawn(k, 'sh', function* (sys) {
      const a = must(
        yield* sys.fork(function* (c) {
          return yield* c.exit(0x105);
        }),
      );
      statuses.push(must(yield* sys.wait4(a)).status);
      const b = must(
        yield* sys.fork(function* (c) {
          yield* c.pthreadCreate(sleepThenExit(50));
          return yield* c.exitGroup(6);
        }),
      );
      statuses.push(must(yield* sys.wait4(b)).status);
      return 0;
    });
    settle(k);
    // exit(0x105): only the low byte of the code is reported
    expect(statuses).toEqual([5 << 8, 6 << 8]);
    expect(k.clock).toBeLessThan(50 * MS);
    checkInvariants(k);
  });
});

describe('eventfd', () => {
  it('read blocks until a write, returns the count as 8 little-endian bytes and resets it to 0', () => {
    const k = bootKernel();
    const seen: Record<string, unknown> = {};
    spawn(k, 'app', function* (sys) {
      const fd = must(yield* sys.eventfd(0));
      const ctx = eventfdOf(sys.task, fd);
      const child = taskOf(
        sys,
        yield* sys.fork(function* (c) {
          const r = yield* c.read(fd, 8);
          seen.readAt = k.clock;
          seen.bytes = r.ok ? [...r.value] : r;
          seen.countAfterRead = ctx.count;
          return 0;
        }),
      );
      yield* sys.nanosleep(2 * MS);
      seen.readerState = taskStateLetter(child);
      seen.writeAt = k.clock;
      seen.written = yield* sys.write(fd, u64(0x0102030405n));
      yield* sys.wait4(child.pid);
      return 0;
    });
    settle(k);
    expect(seen.readerState).toBe('S');
    expect(seen.written).toEqual({ ok: true, value: 8 });
    expect(seen.readAt as number).toBeGreaterThanOrEqual(seen.writeAt as number);
    expect(seen.bytes).toEqual([5, 4, 3, 2, 1, 0, 0, 0]);
    expect(seen.countAfterRead).toBe(0n);
    checkInvariants(k);
  });

  it('writes add up until a read takes the whole sum', () => {
    const k = bootKernel();
    const reads: bigint[] = [];
    spawn(k, 'app', function* (sys) {
      const fd = must(yield* sys.eventfd(1));
      yield* sys.write(fd, u64(2n));
      yield* sys.write(fd, u64(3n));
      reads.push(readU64(yield* sys.read(fd, 16)));
      return 0;
    });
    settle(k);
    expect(reads).toEqual([6n]);
    checkInvariants(k);
  });

  it('with EFD_SEMAPHORE each read returns 1 and decrements the count', () => {
    const k = bootKernel();
    const reads: (bigint | Result<Uint8Array>)[] = [];
    spawn(k, 'app', function* (sys) {
      const fd = must(yield* sys.eventfd(3, EFD_SEMAPHORE | O_NONBLOCK));
      for (let i = 0; i < 4; i++) {
        const r = yield* sys.read(fd, 8);
        reads.push(r.ok ? readU64(r) : r);
      }
      return 0;
    });
    settle(k);
    expect(reads).toEqual([1n, 1n, 1n, { ok: false, errno: Errno.EAGAIN }]);
    checkInvariants(k);
  });

  it('an O_NONBLOCK read of a zero count fails with EAGAIN', () => {
    const k = bootKernel();
    let r: Result<Uint8Array> | undefined;
    spawn(k, 'app', function* (sys) {
      const fd = must(yield* sys.eventfd(0, O_NONBLOCK));
      r = yield* sys.read(fd, 8);
      return 0;
    });
    settle(k);
    expect(r).toEqual({ ok: false, errno: Errno.EAGAIN });
    checkInvariants(k);
  });

  it('a write of 0xffffffffffffffff and a write or read shorter than 8 bytes fail with EINVAL', () => {
    const k = bootKernel();
    const seen: Record<string, unknown> = {};
    spawn(k, 'app', function* (sys) {
      const fd = must(yield* sys.eventfd(5));
      seen.writeMax = yield* sys.write(fd, u64(U64_MAX));
      seen.shortWrite = yield* sys.write(fd, new Uint8Array(4));
      seen.shortRead = yield* sys.read(fd, 7);
      seen.count = eventfdOf(sys.task, fd).count;
      return 0;
    });
    settle(k);
    expect(seen).toEqual({
      writeMax: { ok: false, errno: Errno.EINVAL },
      shortWrite: { ok: false, errno: Errno.EINVAL },
      shortRead: { ok: false, errno: Errno.EINVAL },
      count: 5n,
    });
    checkInvariants(k);
  });

  it('a write that would reach 0xffffffffffffffff fails with EAGAIN under O_NONBLOCK, otherwise it waits for a read', () => {
    const k = bootKernel();
    const seen: Record<string, unknown> = {};
    spawn(k, 'app', function* (sys) {
      const nb = must(yield* sys.eventfd(0, O_NONBLOCK));
      must(yield* sys.write(nb, u64(U64_MAX - 1n)));
      seen.nonblocking = yield* sys.write(nb, u64(1n));
      const fd = must(yield* sys.eventfd(0));
      must(yield* sys.write(fd, u64(U64_MAX - 1n)));
      const writer = taskOf(
        sys,
        yield* sys.fork(function* (c) {
          seen.blockingWrite = yield* c.write(fd, u64(1n));
          seen.writtenAt = k.clock;
          return 0;
        }),
      );
      yield* sys.nanosleep(2 * MS);
      seen.writerState = taskStateLetter(writer);
      seen.readAt = k.clock;
      seen.read = readU64(yield* sys.read(fd, 8));
      yield* sys.wait4(writer.pid);
      seen.countAfter = eventfdOf(sys.task, fd).count;
      return 0;
    });
    settle(k);
    expect(seen.nonblocking).toEqual({ ok: false, errno: Errno.EAGAIN });
    expect(seen.writerState).toBe('S');
    expect(seen.read).toBe(U64_MAX - 1n);
    expect(seen.blockingWrite).toEqual({ ok: true, value: 8 });
    expect(seen.writtenAt as number).toBeGreaterThanOrEqual(seen.readAt as number);
    expect(seen.countAfter).toBe(1n);
    checkInvariants(k);
  });
});

describe('dup and close', () => {
  it('dup gives a second descriptor for the same open file: what is written through one is read through the other', () => {
    const k = bootKernel();
    const seen: Record<string, unknown> = {};
    spawn(k, 'app', function* (sys) {
      const fd = must(yield* sys.eventfd(0));
      const fd2 = must(yield* sys.dup(fd));
      const files = sys.task.files!;
      seen.fds = [fd, fd2];
      seen.sameFile = files.get(fd) === files.get(fd2);
      seen.count = files.get(fd)!.count;
      yield* sys.write(fd, u64(9n));
      seen.read = readU64(yield* sys.read(fd2, 8));
      seen.dupBad = yield* sys.dup(17);
      return 0;
    });
    settle(k);
    expect(seen).toEqual({
      fds: [0, 1],
      sameFile: true,
      count: 2,
      read: 9n,
      dupBad: { ok: false, errno: Errno.EBADF },
    });
    checkInvariants(k);
  });

  it('closing one of two descriptors keeps the file open; the last close runs release in the closing task', () => {
    const k = bootKernel();
    const released = recorderDevice(k);
    const seen: Record<string, unknown> = {};
    const app = spawn(k, 'app', function* (sys) {
      const fd = must(yield* sys.open('/dev/recorder'));
      const fd2 = must(yield* sys.dup(fd));
      must(yield* sys.close(fd));
      seen.afterFirstClose = released.length;
      seen.refs = sys.task.files!.get(fd2)!.count;
      // the freed slot is the lowest free descriptor again
      seen.redup = yield* sys.dup(fd2);
      must(yield* sys.close(0));
      seen.beforeLastClose = released.length;
      must(yield* sys.close(fd2));
      seen.closeAgain = yield* sys.close(fd2);
      return 0;
    });
    settle(k);
    expect(seen).toEqual({
      afterFirstClose: 0,
      refs: 1,
      redup: { ok: true, value: 0 },
      beforeLastClose: 0,
      closeAgain: { ok: false, errno: Errno.EBADF },
    });
    expect(released).toEqual([app]);
    checkInvariants(k);
  });

  it('a forked child holding the last reference runs the release when it exits', () => {
    const k = bootKernel();
    const released = recorderDevice(k);
    let child: Task | null = null;
    let releasedAfterParentClose = -1;
    const app = spawn(k, 'app', function* (sys) {
      const fd = must(yield* sys.open('/dev/recorder'));
      child = taskOf(sys, yield* sys.fork(sleepThenExit(5)));
      must(yield* sys.close(fd));
      releasedAfterParentClose = released.length;
      yield* sys.wait4(child.pid);
      return 0;
    });
    settle(k);
    expect(releasedAfterParentClose).toBe(0);
    expect(released).toEqual([child]);
    expect(released[0]).not.toBe(app);
    checkInvariants(k);
  });
});

describe('sched_setaffinity', () => {
  it('the new mask is limited to the cgroup’s cpuset; a mask with no cpu left there fails with EINVAL', () => {
    const k = bootKernel({ cpus: 4 });
    const cg = makeCgroup(k, 'machine.slice/vm1', { cpus: 0b0011 });
    const seen: Record<string, unknown> = {};
    spawn(
      k,
      'qemu',
      function* (sys) {
        seen.initial = sys.task.cpusAllowed;
        seen.narrow = yield* sys.schedSetaffinity(0, 0b0110);
        seen.afterNarrow = sys.task.cpusAllowed;
        seen.outside = yield* sys.schedSetaffinity(0, 0b1100);
        seen.afterOutside = sys.task.cpusAllowed;
        seen.all = yield* sys.schedSetaffinity(0, 0b1111);
        seen.afterAll = sys.task.cpusAllowed;
        return 0;
      },
      { cgroup: cg },
    );
    settle(k);
    expect(seen).toEqual({
      initial: 0b0011,
      narrow: ok(),
      afterNarrow: 0b0010,
      outside: { ok: false, errno: Errno.EINVAL },
      afterOutside: 0b0010,
      all: ok(),
      afterAll: 0b0011,
    });
    checkInvariants(k);
  });

  it('another uid’s task needs CAP_SYS_NICE (EPERM without it); the same uid may', () => {
    const k = bootKernel({ cpus: 4 });
    const rootTask = spawn(k, 'root-daemon', sleepThenExit(10));
    const peer = spawn(k, 'peer', sleepThenExit(10), { uid: 1000 });
    const seen: Record<string, unknown> = {};
    spawn(
      k,
      'user',
      function* (sys) {
        seen.foreign = yield* sys.schedSetaffinity(rootTask.pid, 0b0001);
        seen.sameUid = yield* sys.schedSetaffinity(peer.pid, 0b0001);
        return 0;
      },
      { uid: 1000 },
    );
    spawn(
      k,
      'nice-admin',
      function* (sys) {
        yield* sys.nanosleep(MS);
        seen.withCap = yield* sys.schedSetaffinity(rootTask.pid, 0b0100);
        return 0;
      },
      { uid: 1000, caps: capBit(CAP_SYS_NICE) },
    );
    settle(k);
    expect(seen).toEqual({ foreign: { ok: false, errno: Errno.EPERM }, sameUid: ok(), withCap: ok() });
    expect(rootTask.cpusAllowed).toBe(0b0100);
    expect(peer.cpusAllowed).toBe(0b0001);
    checkInvariants(k);
  });

  it('a pid that names no task fails with ESRCH', () => {
    const k = bootKernel();
    let r: Result<void> | undefined;
    spawn(k, 'app', function* (sys) {
      r = yield* sys.schedSetaffinity(30_000, 1);
      return 0;
    });
    settle(k);
    expect(r).toEqual({ ok: false, errno: Errno.ESRCH });
    checkInvariants(k);
  });
});

describe('capset', () => {
  const NICE = capBit(CAP_SYS_NICE);
  const KILL = capBit(CAP_KILL);
  const ADMIN = capBit(CAP_SYS_ADMIN);
  const SETPCAP = capBit(CAP_SETPCAP);

  it('capabilities can be dropped but a dropped permitted one is never regained (EPERM)', () => {
    const k = bootKernel();
    const seen: Record<string, unknown> = {};
    spawn(
      k,
      'app',
      function* (sys) {
        seen.drop = yield* sys.capset(NICE, NICE, 0n);
        seen.regain = yield* sys.capset(NICE | KILL, NICE | KILL, 0n);
        seen.sets = [sys.task.cred.capEffective, sys.task.cred.capPermitted];
        return 0;
      },
      { uid: 1000, caps: NICE | KILL },
    );
    settle(k);
    expect(seen).toEqual({ drop: ok(), regain: { ok: false, errno: Errno.EPERM }, sets: [NICE, NICE] });
    checkInvariants(k);
  });

  it('the effective set must be a subset of the new permitted set (EPERM)', () => {
    const k = bootKernel();
    let r: Result<void> | undefined;
    let eff = -1n;
    spawn(
      k,
      'app',
      function* (sys) {
        r = yield* sys.capset(KILL, NICE, 0n);
        eff = sys.task.cred.capEffective;
        return 0;
      },
      { uid: 1000, caps: NICE | KILL },
    );
    settle(k);
    expect(r).toEqual({ ok: false, errno: Errno.EPERM });
    expect(eff).toBe(NICE | KILL);
    checkInvariants(k);
  });

  it('without CAP_SETPCAP the inheritable set stays within the old inheritable and permitted sets; CAP_SETPCAP lifts that up to the bounding set', () => {
    const k = bootKernel();
    const seen: Record<string, unknown> = {};
    spawn(
      k,
      'plain',
      function* (sys) {
        seen.plainOwn = yield* sys.capset(NICE, NICE, NICE);
        seen.plainOther = yield* sys.capset(NICE, NICE, NICE | ADMIN);
        return 0;
      },
      { uid: 1000, caps: NICE },
    );
    const setpcap = spawn(
      k,
      'setpcap',
      function* (sys) {
        seen.setpcapInBset = yield* sys.capset(SETPCAP, SETPCAP, NICE);
        seen.setpcapOutsideBset = yield* sys.capset(SETPCAP, SETPCAP, NICE | ADMIN);
        seen.inheritable = sys.task.cred.capInheritable;
        return 0;
      },
      { uid: 1000, caps: SETPCAP },
    );
    // as after prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN), which the model has no call for
    setpcap.cred = { ...setpcap.cred, capBset: CAP_FULL_SET & ~ADMIN };
    settle(k);
    expect(seen).toEqual({
      plainOwn: ok(),
      plainOther: { ok: false, errno: Errno.EPERM },
      setpcapInBset: ok(),
      setpcapOutsideBset: { ok: false, errno: Errno.EPERM },
      inheritable: NICE,
    });
    checkInvariants(k);
  });

  it('ambient capabilities that are no longer both permitted and inheritable are dropped', () => {
    const k = bootKernel();
    let ambient = -1n;
    const app = spawn(
      k,
      'app',
      function* (sys) {
        must(yield* sys.capset(NICE, NICE, 0n));
        ambient = sys.task.cred.capAmbient;
        return 0;
      },
      { uid: 1000, caps: NICE },
    );
    // as after PR_CAP_AMBIENT_RAISE, which the model has no call for
    app.cred = { ...app.cred, capInheritable: NICE, capAmbient: NICE };
    settle(k);
    expect(ambient).toBe(0n);
    checkInvariants(k);
  });
});

describe('setresuid', () => {
  it('moves the task’s RLIMIT_NPROC charge from the old uid to the new one', () => {
    const k = bootKernel();
    const before = { root: nproc(k, 0), user: nproc(k, 1000) };
    let during: { root: number; user: number } | null = null;
    spawn(k, 'app', function* (sys) {
      yield* sys.nanosleep(MS);
      const mid = { root: nproc(k, 0), user: nproc(k, 1000) };
      must(yield* sys.setresuid(1000, 1000, 1000));
      const after = { root: nproc(k, 0), user: nproc(k, 1000) };
      during = { root: mid.root - after.root, user: after.user - mid.user };
      return 0;
    });
    settle(k);
    expect(during).toEqual({ root: 1, user: 1 });
    expect({ root: nproc(k, 0), user: nproc(k, 1000) }).toEqual(before);
    checkInvariants(k);
  });

  it('an unprivileged change to a uid that is not its real, effective or saved uid fails with EPERM', () => {
    const k = bootKernel();
    const seen: Record<string, unknown> = {};
    spawn(
      k,
      'app',
      function* (sys) {
        seen.ruid = yield* sys.setresuid(2000, -1, -1);
        seen.suid = yield* sys.setresuid(-1, -1, 2000);
        seen.own = yield* sys.setresuid(-1, 1000, -1);
        const c = sys.task.cred;
        seen.ids = [c.uid, c.euid, c.suid];
        return 0;
      },
      { uid: 1000 },
    );
    settle(k);
    expect(seen).toEqual({
      ruid: { ok: false, errno: Errno.EPERM },
      suid: { ok: false, errno: Errno.EPERM },
      own: ok(),
      ids: [1000, 1000, 1000],
    });
    checkInvariants(k);
  });

  it('dropping every root uid clears CapEff and CapPrm, and going back to root then fails with EPERM', () => {
    const k = bootKernel();
    const seen: Record<string, unknown> = {};
    spawn(k, 'app', function* (sys) {
      must(yield* sys.setresuid(1000, 1000, 1000));
      seen.capEff = status(k, sys.task, 'CapEff');
      seen.capPrm = status(k, sys.task, 'CapPrm');
      seen.back = yield* sys.setresuid(0, 0, 0);
      return 0;
    });
    settle(k);
    expect(seen).toEqual({
      capEff: '0000000000000000',
      capPrm: '0000000000000000',
      back: { ok: false, errno: Errno.EPERM },
    });
    checkInvariants(k);
  });

  it('moving only the euid off 0 clears CapEff but keeps CapPrm; euid 0 from the saved uid restores CapEff', () => {
    const k = bootKernel();
    const seen: Record<string, unknown> = {};
    spawn(k, 'app', function* (sys) {
      must(yield* sys.setresuid(1000, 1000, 0));
      seen.dropped = [sys.task.cred.capEffective, sys.task.cred.capPermitted];
      seen.restore = yield* sys.setresuid(-1, 0, -1);
      seen.restored = [sys.task.cred.capEffective, sys.task.cred.euid];
      return 0;
    });
    settle(k);
    expect(seen).toEqual({
      dropped: [0n, CAP_FULL_SET],
      restore: ok(),
      restored: [CAP_FULL_SET, 0],
    });
    checkInvariants(k);
  });

  it('RLIMIT_NPROC is checked before the task is counted under its new uid (flag_nproc_exceeded before commit_creds)', () => {
    const k = bootKernel();
    // one process of uid 1000 exists: 1 is not over a limit of 1, so no flag, though the
    // count is 2 once this task has switched
    spawn(k, 'user-a', sleepThenExit(20), { uid: 1000 });
    const seen: Record<string, unknown> = {};
    spawn(
      k,
      'daemon',
      function* (sys) {
        must(yield* sys.setresuid(1000, 1000, 1000));
        seen.flagged = (sys.task.flags & PF_NPROC_EXCEEDED) !== 0;
        seen.count = nproc(k, 1000);
        yield* sys.execve('/usr/bin/worker', function* () {
          seen.execed = true;
          return 0;
        });
        return 1;
      },
      { rlimits: { [RLIMIT_NPROC]: { cur: 1, max: 1 } } },
    );
    settle(k);
    expect(seen).toEqual({ flagged: false, count: 2, execed: true });
    checkInvariants(k);
  });
});

describe('rt_sigprocmask', () => {
  it('SIG_BLOCK adds, SIG_UNBLOCK removes and SIG_SETMASK replaces the mask, each returning the old mask', () => {
    const k = bootKernel();
    const seen: unknown[] = [];
    spawn(k, 'app', function* (sys) {
      seen.push(must(yield* sys.rtSigprocmask(SIG_BLOCK, sigsetOf(SIGUSR1, SIGUSR2))));
      seen.push(must(yield* sys.rtSigprocmask(SIG_UNBLOCK, sigsetOf(SIGUSR1))));
      seen.push(must(yield* sys.rtSigprocmask(SIG_SETMASK, sigsetOf(SIGTERM))));
      seen.push(must(yield* sys.rtSigprocmask(SIG_BLOCK, null)));
      seen.push(yield* sys.rtSigprocmask(99, sigsetOf(SIGINT)));
      seen.push(sys.task.blocked);
      return 0;
    });
    settle(k);
    expect(seen).toEqual([
      0n,
      sigsetOf(SIGUSR1, SIGUSR2),
      sigsetOf(SIGUSR2),
      sigsetOf(SIGTERM),
      { ok: false, errno: Errno.EINVAL },
      sigsetOf(SIGTERM),
    ]);
    checkInvariants(k);
  });

  it('SIGKILL and SIGSTOP cannot be blocked: blocking every signal leaves them out, and SIGKILL still kills', () => {
    const k = bootKernel();
    let sigBlk = '';
    const app = spawn(k, 'app', function* (sys) {
      yield* sys.rtSigprocmask(SIG_SETMASK, FULL_SIGSET);
      yield* sys.rtSigprocmask(SIG_BLOCK, sigsetOf(SIGKILL, SIGSTOP));
      sigBlk = status(k, sys.task, 'SigBlk');
      yield* sys.nanosleep(100 * MS);
      return 0;
    });
    spawn(k, 'killer', function* (sys) {
      yield* sys.nanosleep(MS);
      yield* sys.kill(app.pid, SIGKILL);
      return 0;
    });
    settle(k);
    expect(sigBlk).toBe('fffffffffffbfeff');
    expect(app.flags & PF_SIGNALED).toBe(PF_SIGNALED);
    expect(app.exitCode & 0x7f).toBe(SIGKILL);
    expect(k.clock).toBeLessThan(100 * MS);
    checkInvariants(k);
  });

  it('a blocked signal stays pending and is delivered as soon as it is unblocked', () => {
    const k = bootKernel();
    const seen: Record<string, unknown> = {};
    const app = spawn(k, 'app', function* (sys) {
      yield* sys.rtSigaction(SIGUSR1, { handler: HANDLER });
      yield* sys.rtSigprocmask(SIG_BLOCK, sigsetOf(SIGUSR1));
      yield* sys.kill(sys.getpid(), SIGUSR1);
      yield* sys.nanosleep(MS);
      seen.caughtWhileBlocked = caughtSignals.get(sys.task)?.length ?? 0;
      seen.shdPnd = status(k, sys.task, 'ShdPnd');
      seen.old = yield* sys.rtSigprocmask(SIG_UNBLOCK, sigsetOf(SIGUSR1));
      seen.caughtRightAfter = [...(caughtSignals.get(sys.task) ?? [])];
      return 0;
    });
    settle(k);
    expect(seen).toEqual({
      caughtWhileBlocked: 0,
      shdPnd: '0000000000000200',
      old: { ok: true, value: sigsetOf(SIGUSR1) },
      caughtRightAfter: [SIGUSR1],
    });
    expect(caughtSignals.get(app)).toEqual([SIGUSR1]);
    checkInvariants(k);
  });
});

describe('wait4 and waitid: stop and continue reports', () => {
  it('WUNTRACED reports a child stopped by SIGSTOP once, as (SIGSTOP << 8) | 0x7f; without it the stop is not reported', () => {
    const k = bootKernel();
    const seen: Record<string, unknown> = {};
    spawn(k, 'sh', function* (sys) {
      const pid = must(yield* sys.fork(sleepThenExit(50, 4)));
      yield* sys.nanosleep(MS);
      yield* sys.kill(pid, SIGSTOP);
      seen.stopped = yield* sys.wait4(pid, WUNTRACED);
      seen.again = yield* sys.wait4(pid, WUNTRACED | WNOHANG);
      seen.plain = yield* sys.wait4(pid, WNOHANG);
      yield* sys.kill(pid, SIGCONT);
      seen.exited = yield* sys.wait4(pid);
      seen.pid = pid;
      return 0;
    });
    settle(k);
    const pid = seen.pid as number;
    expect(seen).toEqual({
      stopped: { ok: true, value: { pid, status: (SIGSTOP << 8) | 0x7f } },
      again: { ok: true, value: { pid: 0, status: 0 } },
      plain: { ok: true, value: { pid: 0, status: 0 } },
      exited: { ok: true, value: { pid, status: 4 << 8 } },
      pid,
    });
    checkInvariants(k);
  });

  it('WCONTINUED reports a child resumed by SIGCONT as 0xffff, through waitid and wait4', () => {
    const k = bootKernel();
    const seen: Record<string, unknown> = {};
    spawn(k, 'sh', function* (sys) {
      const pid = must(yield* sys.fork(sleepThenExit(50)));
      for (const via of ['waitid', 'wait4'] as const) {
        yield* sys.nanosleep(MS);
        yield* sys.kill(pid, SIGSTOP);
        must(yield* sys.wait4(pid, WUNTRACED));
        yield* sys.kill(pid, SIGCONT);
        seen[via] = via === 'waitid' ? yield* sys.waitid(pid, WCONTINUED) : yield* sys.wait4(pid, WCONTINUED);
      }
      seen.noTypes = yield* sys.waitid(pid, WNOHANG);
      seen.pid = pid;
      yield* sys.wait4(pid);
      return 0;
    });
    settle(k);
    const pid = seen.pid as number;
    expect(seen).toEqual({
      waitid: { ok: true, value: { pid, status: 0xffff } },
      wait4: { ok: true, value: { pid, status: 0xffff } },
      noTypes: { ok: false, errno: Errno.EINVAL },
      pid,
    });
    checkInvariants(k);
  });
});

describe('PR_SET_PDEATHSIG', () => {
  it('the child gets its parent-death signal when the parent dies', () => {
    const k = bootKernel();
    let child: Task | null = null;
    spawn(k, 'parent', function* (sys) {
      child = taskOf(
        sys,
        yield* sys.fork(function* (c) {
          must(yield* c.prctl(PR_SET_PDEATHSIG, SIGTERM));
          yield* c.nanosleep(1000 * MS);
          return 0;
        }),
      );
      yield* sys.nanosleep(2 * MS);
      return 0;
    });
    settle(k);
    expect(child!.flags & PF_SIGNALED).toBe(PF_SIGNALED);
    expect(child!.exitCode & 0x7f).toBe(SIGTERM);
    expect(child!.tasksAlive()).toBe(false);
    expect(k.clock).toBeLessThan(1000 * MS);
    checkInvariants(k);
  });

  it('it fires when the parent thread exits, though the parent’s process lives on and becomes the new parent', () => {
    const k = bootKernel();
    const seen: Record<string, unknown> = {};
    let child: Task | null = null;
    const app = spawn(k, 'app', function* (sys) {
      yield* sys.pthreadCreate(function* (t) {
        child = taskOf(
          t,
          yield* t.fork(function* (c) {
            yield* c.rtSigaction(SIGUSR1, { handler: HANDLER });
            must(yield* c.prctl(PR_SET_PDEATHSIG, SIGUSR1));
            seen.paused = yield* c.pause();
            seen.processAlive = app.alive;
            seen.ppid = c.getppid();
            return 0;
          }),
        );
        yield* t.nanosleep(2 * MS);
        return 0;
      });
      yield* sys.nanosleep(10 * MS);
      seen.wait = yield* sys.wait4(child!.pid);
      return 0;
    });
    settle(k);
    expect(caughtSignals.get(child!)).toEqual([SIGUSR1]);
    expect(seen).toEqual({
      paused: { ok: false, errno: Errno.EINTR },
      processAlive: true,
      ppid: app.pid,
      wait: { ok: true, value: { pid: child!.pid, status: 0 } },
    });
    checkInvariants(k);
  });

  it('a change of euid clears the parent-death signal (commit_creds)', () => {
    const k = bootKernel();
    let child: Task | null = null;
    let afterSetuid = -1;
    let survived = false;
    spawn(k, 'parent', function* (sys) {
      child = taskOf(
        sys,
        yield* sys.fork(function* (c) {
          must(yield* c.prctl(PR_SET_PDEATHSIG, SIGKILL));
          must(yield* c.setresuid(-1, 1000, -1));
          afterSetuid = c.task.pdeathSignal;
          yield* c.nanosleep(10 * MS);
          survived = true;
          return 0;
        }),
      );
      yield* sys.nanosleep(2 * MS);
      return 0;
    });
    settle(k);
    expect(afterSetuid).toBe(0);
    expect(child!.flags & PF_SIGNALED).toBe(0);
    expect(survived).toBe(true);
    checkInvariants(k);
  });

  it('an invalid signal number fails with EINVAL; 0 clears the setting', () => {
    const k = bootKernel();
    const seen: unknown[] = [];
    spawn(k, 'app', function* (sys) {
      seen.push(yield* sys.prctl(PR_SET_PDEATHSIG, SIGTERM));
      seen.push(yield* sys.prctl(PR_SET_PDEATHSIG, 65));
      seen.push(sys.task.pdeathSignal);
      seen.push(yield* sys.prctl(PR_SET_PDEATHSIG, 0));
      seen.push(sys.task.pdeathSignal);
      return 0;
    });
    settle(k);
    expect(seen).toEqual([ok(), { ok: false, errno: Errno.EINVAL }, SIGTERM, ok(), 0]);
    checkInvariants(k);
  });

  it('the parent-death signal is process-directed: when the thread that set it blocks it, another thread takes it', () => {
    const k = bootKernel();
    let helper: Task | null = null;
    let child: Task | null = null;
    spawn(k, 'parent', function* (sys) {
      child = taskOf(
        sys,
        yield* sys.fork(function* (c) {
          yield* c.rtSigaction(SIGUSR1, { handler: HANDLER });
          must(yield* c.prctl(PR_SET_PDEATHSIG, SIGUSR1));
          helper = taskOf(
            c,
            yield* c.pthreadCreate(function* (h) {
              yield* h.pause();
              return 0;
            }),
          );
          yield* c.rtSigprocmask(SIG_BLOCK, sigsetOf(SIGUSR1));
          yield* c.nanosleep(10 * MS);
          return 0;
        }),
      );
      yield* sys.nanosleep(2 * MS);
      return 0;
    });
    settle(k);
    expect(caughtSignals.get(helper!)).toEqual([SIGUSR1]);
    expect(caughtSignals.get(child!)).toBeUndefined();
    checkInvariants(k);
  });
});

describe('getpid, gettid and getppid in a new pid namespace', () => {
  it('the namespace’s init sees pid 1, tid 1 and ppid 0; its thread and its child see it as 1', () => {
    const k = bootKernel();
    const seen: Record<string, unknown> = {};
    let nsInit: Task | null = null;
    spawn(k, 'host', function* (sys) {
      const r = yield* sys.clone(CLONE_NEWPID | SIGCHLD, function* (init) {
        seen.init = [init.getpid(), init.gettid(), init.getppid()];
        const th = yield* init.pthreadCreate(function* (t) {
          seen.thread = [t.getpid(), t.gettid(), t.getppid()];
          return 0;
        });
        must(th);
        const g = must(
          yield* init.fork(function* (gc) {
            seen.child = [gc.getpid(), gc.gettid(), gc.getppid()];
            return 0;
          }),
        );
        seen.waited = yield* init.wait4(g);
        return 0;
      });
      nsInit = taskOf(sys, r);
      seen.hostView = must(r);
      seen.hostPid = sys.getpid() === sys.task.pid;
      yield* sys.wait4(must(r));
      return 0;
    });
    settle(k);
    expect(seen).toEqual({
      init: [1, 1, 0],
      thread: [1, 2, 0],
      child: [3, 3, 1],
      waited: { ok: true, value: { pid: 3, status: 0 } },
      hostView: nsInit!.pid,
      hostPid: true,
    });
    expect(nsInit!.pid).not.toBe(1);
    checkInvariants(k);
  });
});

describe('kill(-1)', () => {
  it('signals every other process but neither init nor the caller’s own threads', () => {
    const k = bootKernel();
    const rootVictim = spawn(k, 'victim-root', sleepThenExit(100));
    const userVictim = spawn(k, 'victim-user', sleepThenExit(100), { uid: 1000 });
    let thread: Task | null = null;
    let r: Result<void> | undefined;
    const killer = spawn(k, 'killer', function* (sys) {
      yield* sys.rtSigaction(SIGTERM, { handler: HANDLER });
      thread = taskOf(sys, yield* sys.pthreadCreate(sleepThenExit(20)));
      yield* sys.nanosleep(MS);
      r = yield* sys.kill(-1, SIGTERM);
      yield* sys.nanosleep(30 * MS);
      return 0;
    });
    settle(k);
    expect(r).toEqual(ok());
    for (const v of [rootVictim, userVictim]) {
      expect(v.exitCode & 0x7f).toBe(SIGTERM);
      expect(v.tasksAlive()).toBe(false);
    }
    expect(caughtSignals.get(killer)).toBeUndefined();
    expect(caughtSignals.get(thread!)).toBeUndefined();
    expect(killer.flags & PF_SIGNALED).toBe(0);
    expect(k.init.alive).toBe(true);
    expect(k.kthreadd.alive).toBe(true);
    expect(k.clock).toBeLessThan(100 * MS);
    checkInvariants(k);
  });

  it('inside a pid namespace it skips that namespace’s init and every process outside the namespace', () => {
    const k = bootKernel();
    const outsider = spawn(k, 'outsider', function* (sys) {
      yield* sys.rtSigaction(SIGUSR1, { handler: HANDLER });
      yield* sys.nanosleep(20 * MS);
      return 0;
    });
    let nsInit: Task | null = null;
    let member: Task | null = null;
    let r: Result<void> | undefined;
    const host = spawn(k, 'host', function* (sys) {
      yield* sys.rtSigaction(SIGUSR1, { handler: HANDLER });
      const c = yield* sys.clone(CLONE_NEWPID | SIGCHLD, function* (init) {
        yield* init.rtSigaction(SIGUSR1, { handler: HANDLER });
        member = taskOf(
          init,
          yield* init.fork(function* (m) {
            yield* m.pause();
            return 0;
          }),
        );
        yield* init.fork(function* (s) {
          yield* s.nanosleep(MS);
          r = yield* s.kill(-1, SIGUSR1);
          return 0;
        });
        for (let i = 0; i < 2; i++) yield* init.wait4(-1);
        return 0;
      });
      nsInit = taskOf(sys, c);
      yield* sys.wait4(must(c));
      return 0;
    });
    settle(k);
    expect(r).toEqual(ok());
    expect(caughtSignals.get(member!)).toEqual([SIGUSR1]);
    expect(caughtSignals.get(nsInit!)).toBeUndefined();
    expect(caughtSignals.get(host)).toBeUndefined();
    expect(caughtSignals.get(outsider)).toBeUndefined();
    checkInvariants(k);
  });

  it('from a user who may signal no process it still returns 0: EPERM from each target is not reported', () => {
    const k = bootKernel();
    let finished = false;
    const rootDaemon = spawn(k, 'root-daemon', function* (sys) {
      yield* sys.nanosleep(10 * MS);
      finished = true;
      return 0;
    });
    let r: Result<void> | undefined;
    spawn(
      k,
      'user',
      function* (sys) {
        r = yield* sys.kill(-1, SIGTERM);
        return 0;
      },
      { uid: 1000 },
    );
    settle(k);
    expect(r).toEqual(ok());
    expect(finished).toBe(true);
    expect(rootDaemon.flags & PF_SIGNALED).toBe(0);
    checkInvariants(k);
  });

  it('fails with ESRCH when the caller’s pid namespace holds no other process', () => {
    const k = bootKernel();
    let r: Result<void> | undefined;
    spawn(k, 'host', function* (sys) {
      const c = yield* sys.clone(CLONE_NEWPID | SIGCHLD, function* (init) {
        r = yield* init.kill(-1, SIGTERM);
        return 0;
      });
      yield* sys.wait4(must(c));
      return 0;
    });
    settle(k);
    expect(r).toEqual({ ok: false, errno: Errno.ESRCH });
    checkInvariants(k);
  });
});

describe('a signal during a sleeping syscall', () => {
  /** A 100 ms sleeper with a SIGUSR1 handler installed with `flags`, signalled after 5 ms. */
  function interruptedSleep(flags: number) {
    const k = bootKernel();
    const out: { r?: Result<void>; endedAt: number; sentAt: number } = { endedAt: 0, sentAt: 0 };
    const sleeper = spawn(k, 'sleeper', function* (sys) {
      yield* sys.rtSigaction(SIGUSR1, { handler: HANDLER, flags });
      out.r = yield* sys.nanosleep(100 * MS);
      out.endedAt = k.clock;
      return 0;
    });
    spawn(k, 'sender', function* (sys) {
      yield* sys.nanosleep(5 * MS);
      out.sentAt = k.clock;
      yield* sys.kill(sleeper.pid, SIGUSR1);
      return 0;
    });
    settle(k);
    return { k, sleeper, out };
  }

  it('a caught signal interrupts nanosleep with EINTR', () => {
    const { k, sleeper, out } = interruptedSleep(0);
    expect(out.r).toEqual({ ok: false, errno: Errno.EINTR });
    expect(caughtSignals.get(sleeper)).toEqual([SIGUSR1]);
    expect(out.endedAt).toBeLessThan(out.sentAt + MS);
    checkInvariants(k);
  });

  // nanosleep returns -ERESTART_RESTARTBLOCK (kernel/time/hrtimer.c do_nanosleep), which
  // arch/x86 handle_signal() turns into EINTR whatever SA_RESTART says; signal(7) lists
  // nanosleep among the calls never restarted after a handler.
  it('SA_RESTART does not restart nanosleep: it still fails with EINTR', () => {
    const { k, sleeper, out } = interruptedSleep(SA_RESTART);
    expect(out.r).toEqual({ ok: false, errno: Errno.EINTR });
    expect(caughtSignals.get(sleeper)).toEqual([SIGUSR1]);
    expect(out.endedAt).toBeLessThan(out.sentAt + MS);
    checkInvariants(k);
  });

  it('a stop and continue with no handler resume nanosleep to its original expiry', () => {
    const k = bootKernel();
    const out: { r?: Result<void>; startedAt: number; endedAt: number; contAt: number } = {
      startedAt: 0,
      endedAt: 0,
      contAt: 0,
    };
    const sleeper = spawn(k, 'sleeper', function* (sys) {
      out.startedAt = k.clock;
      out.r = yield* sys.nanosleep(20 * MS);
      out.endedAt = k.clock;
      return 0;
    });
    spawn(k, 'ctl', function* (sys) {
      yield* sys.nanosleep(2 * MS);
      yield* sys.kill(sleeper.pid, SIGSTOP);
      yield* sys.nanosleep(5 * MS);
      out.contAt = k.clock;
      yield* sys.kill(sleeper.pid, SIGCONT);
      return 0;
    });
    settle(k);
    expect(out.r).toEqual(ok());
    expect(out.contAt).toBeGreaterThan(out.startedAt + 5 * MS);
    expect(out.endedAt - out.startedAt).toBeGreaterThanOrEqual(20 * MS);
    expect(out.endedAt - out.startedAt).toBeLessThan(21 * MS);
    checkInvariants(k);
  });

  /** A blocking eventfd read interrupted by a SIGUSR1 handler installed with `flags`. */
  function interruptedRead(flags: number) {
    const k = bootKernel();
    const seen: { read?: Result<Uint8Array>; readAt: number; writtenAt: number } = {
      readAt: 0,
      writtenAt: 0,
    };
    const reader = spawn(k, 'reader', function* (sys) {
      yield* sys.rtSigaction(SIGUSR1, { handler: HANDLER, flags });
      const fd = must(yield* sys.eventfd(0));
      const child = must(
        yield* sys.fork(function* (c) {
          yield* c.nanosleep(2 * MS);
          yield* c.kill(c.getppid(), SIGUSR1);
          yield* c.nanosleep(2 * MS);
          seen.writtenAt = k.clock;
          yield* c.write(fd, u64(7n));
          return 0;
        }),
      );
      seen.read = yield* sys.read(fd, 8);
      seen.readAt = k.clock;
      yield* sys.wait4(child);
      return 0;
    });
    settle(k);
    return { k, reader, seen };
  }

  it('with SA_RESTART an interrupted blocking eventfd read is restarted after the handler and returns the later write', () => {
    const { k, reader, seen } = interruptedRead(SA_RESTART);
    expect(caughtSignals.get(reader)).toEqual([SIGUSR1]);
    expect(readU64(seen.read!)).toBe(7n);
    expect(seen.readAt).toBeGreaterThanOrEqual(seen.writtenAt);
    checkInvariants(k);
  });

  it('without SA_RESTART an interrupted blocking eventfd read fails with EINTR', () => {
    const { k, reader, seen } = interruptedRead(0);
    expect(caughtSignals.get(reader)).toEqual([SIGUSR1]);
    expect(seen.read).toEqual({ ok: false, errno: Errno.EINTR });
    expect(seen.readAt).toBeLessThan(seen.writtenAt);
    checkInvariants(k);
  });
});
