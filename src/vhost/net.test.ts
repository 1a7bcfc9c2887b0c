/**
 * /dev/vhost-net control path and worker lifecycle, kernel-spec §10 items 22–31, 33 and 34,
 * each on every profile where it applies. Per-profile differences come from the table in
 * expectations.ts; the ioctls are issued by user programs with their structs in the
 * program's own memory (qemu.ts), and results are compared as errno names.
 */
import { describe, expect, it } from 'vitest';
import { errnoName, type Result } from '../kernel/errno.js';
import { checkInvariants, checkNoLeaks } from '../kernel/invariants.js';
import type { Kernel } from '../kernel/kernel.js';
import { procStat, procStatus, procTaskList } from '../kernel/procfs.js';
import { RLIMIT_NPROC } from '../kernel/rlimit.js';
import type { KGen } from '../kernel/sched.js';
import { CLONE_NEWPID, PF_KTHREAD } from '../kernel/sched-consts.js';
import { SIGCHLD, SIGKILL } from '../kernel/signal-consts.js';
import type { Sys } from '../kernel/syscalls.js';
import type { Task } from '../kernel/task.js';
import { bootKernel, makeCgroup, settle, spawn } from '../kernel/testing.js';
import { vhostTaskWake } from '../kernel/vhost-task.js';
import { getProfile } from '../profiles/eras.js';
import { type Outcome, PROFILE_NAMES, VHOST_NET_EXPECTATIONS, vhostNetExpectation } from './expectations.js';
import { registerVhost } from './index.js';
import { VHOST_NET_VQ_RX, VHOST_NET_VQ_TX, type VhostNet, vhostNetOf } from './net.js';
import { ioctlWith, kick, Scratch, setupVhostNet } from './qemu.js';
import * as U from './uapi.js';
import { VhostWork, type VhostWorker, vhostVqWorkQueue } from './vhost.js';

const US = 1_000;
const MS = 1_000_000;

// ------------------------------------------------------------------ helpers

/** 'ok' or the errno name of a syscall result. */
function res(r: Result<unknown>): string {
  return r.ok ? 'ok' : errnoName(r.errno);
}

/** 'ok' or the errno name of a table outcome. */
function out(o: Outcome): string {
  return o === 'ok' ? 'ok' : errnoName(o);
}

/** A booted kernel with the vhost devices and its boot-time task count. */
function boot(profile: string): { k: Kernel; atBoot: { nrThreads: number } } {
  const k = bootKernel({ profile, trace: false });
  registerVhost(k);
  return { k, atBoot: { nrThreads: k.nrThreads } };
}

/**
 * Run `body` as the single-threaded owner process (default root, in the root cgroup) to
 * completion; the owner then exits, which releases its devices. Assertions inside `body`
 * throw out of the run. Afterwards nothing may be left of it.
 */
function runOwner(
  k: Kernel,
  atBoot: { nrThreads: number },
  body: (sys: Sys, scratch: Scratch) => KGen<void>,
  o: Parameters<typeof spawn>[3] = {},
): Task {
  let done = false;
  const owner = spawn(
    k,
    'qemu-system-x86',
    function* (sys) {
      const scratch = yield* Scratch.create(sys);
      yield* body(sys, scratch);
      done = true;
      return 0;
    },
    o,
  );
  settle(k);
  expect(done).toBe(true);
  expect(owner.tasksAlive()).toBe(false);
  checkNoLeaks(k, atBoot);
  return owner;
}

/** open /dev/vhost-net; throws on failure (not under test). */
function* openNet(sys: Sys): KGen<number> {
  const r = yield* sys.open('/dev/vhost-net');
  if (!r.ok) throw new Error(`open /dev/vhost-net: ${errnoName(r.errno)}`);
  return r.value;
}

function netOf(sys: Sys, fd: number): VhostNet {
  return vhostNetOf(sys.task.files!.get(fd)!)!;
}

/** The device's default worker task (null before SET_OWNER). */
function workerOf(sys: Sys, fd: number): Task | null {
  return netOf(sys, fd).dev.workerTasks()[0] ?? null;
}

function statusField(k: Kernel, t: Task, field: string): string {
  const line = procStatus(k, t)
    .split('\n')
    .find((l) => l.startsWith(`${field}:`));
  if (!line) throw new Error(`no ${field} in /proc/${t.pid}/status`);
  return line.slice(field.length + 1).trim();
}

/** field 9 of /proc/<pid>/stat */
function statFlags(k: Kernel, t: Task): number {
  return Number(procStat(k, t).split(' ')[8]);
}

/** Sleep in small steps until `cond` holds (a polling "join"). */
function* waitUntil(sys: Sys, cond: () => boolean): KGen<void> {
  for (let i = 0; i < 10_000 && !cond(); i++) yield* sys.nanosleep(10 * US);
  if (!cond()) throw new Error('condition never became true');
}

/** Where a worker task lives, as /proc shows it. */
function workerPlacement(k: Kernel, owner: Task, w: Task) {
  return {
    name: statusField(k, w, 'Name'),
    kthread: (statFlags(k, w) & PF_KTHREAD) !== 0,
    inOwnerTaskList: procTaskList(owner, k.initPidNs).includes(w.pid),
    tgid: Number(statusField(k, w, 'Tgid')),
    ppid: Number(statusField(k, w, 'PPid')),
  };
}

const vringState = (index: number, num: number) => U.encodeVringState({ index, num });
const vringAddr = (index: number, flags: number, desc: number, used: number, avail: number) =>
  U.encodeVringAddr({
    index,
    flags,
    descUserAddr: BigInt(desc),
    usedUserAddr: BigInt(used),
    availUserAddr: BigInt(avail),
    logGuestAddr: 0n,
  });
const region = (gpa: number, size: number, hva: number) => ({
  guestPhysAddr: BigInt(gpa),
  memorySize: BigInt(size),
  userspaceAddr: BigInt(hva),
  flagsPadding: 0n,
});

// ------------------------------------------------------------------ tests

describe.each(PROFILE_NAMES)('vhost-net on %s', (profile) => {
  const x = vhostNetExpectation(profile);

  describe('ownership (§10 items 22–24)', () => {
    it('a second VHOST_SET_OWNER on the same fd fails with EBUSY', () => {
      const { k, atBoot } = boot(profile);
      runOwner(k, atBoot, function* (sys) {
        const fd = yield* openNet(sys);
        expect(res(yield* sys.ioctl(fd, U.VHOST_SET_OWNER))).toBe('ok');
        const w = workerOf(sys, fd);
        expect(res(yield* sys.ioctl(fd, U.VHOST_SET_OWNER))).toBe('EBUSY');
        // the failed call created nothing
        expect(netOf(sys, fd).dev.workerTasks()).toEqual([w]);
      });
      checkInvariants(k);
    });

    it('after VHOST_RESET_OWNER, SET_OWNER succeeds again with a new vhost-<tid> worker (new TID) and the old worker is gone', () => {
      const { k, atBoot } = boot(profile);
      runOwner(k, atBoot, function* (sys) {
        const fd = yield* openNet(sys);
        expect(res(yield* sys.ioctl(fd, U.VHOST_SET_OWNER))).toBe('ok');
        const first = workerOf(sys, fd)!;
        expect(res(yield* sys.ioctl(fd, U.VHOST_RESET_OWNER))).toBe('ok');
        yield* sys.nanosleep(1 * MS); // let kthreadd / init reap what is theirs to reap
        expect(first.tasksAlive()).toBe(false);
        expect(netOf(sys, fd).dev.workerTasks()).toEqual([]);
        expect(res(yield* sys.ioctl(fd, U.VHOST_SET_OWNER))).toBe('ok');
        const second = workerOf(sys, fd)!;
        expect(second.pid).not.toBe(first.pid);
        expect(second.alive).toBe(true);
        expect(statusField(k, second, 'Name')).toBe(`vhost-${sys.gettid()}`);
      });
      checkInvariants(k);
    });

    it('before SET_OWNER, SET_VRING_NUM, SET_MEM_TABLE and NET_SET_BACKEND fail with EPERM while GET_FEATURES succeeds', () => {
      const { k, atBoot } = boot(profile);
      runOwner(k, atBoot, function* (sys, scratch) {
        const fd = yield* openNet(sys);
        const mem = yield* sys.mmap(64 * 1024);
        if (!mem.ok) throw new Error('mmap');
        const io = (cmd: number, arg: Uint8Array) => ioctlWith(sys, scratch, fd, cmd, arg);
        expect(res(yield* io(U.VHOST_SET_VRING_NUM, vringState(0, 256)))).toBe('EPERM');
        expect(res(yield* io(U.VHOST_SET_MEM_TABLE, U.encodeMemory([region(0, 64 * 1024, mem.value)])))).toBe(
          'EPERM',
        );
        expect(res(yield* io(U.VHOST_NET_SET_BACKEND, U.encodeVringFile({ index: 0, fd: -1 })))).toBe(
          'EPERM',
        );
        expect(res(yield* io(U.VHOST_GET_FEATURES, U.encodeU64(0n)))).toBe('ok');
        // the values Debian's 6.1 and 6.12 return (conformance under QEMU)
        expect(scratch.u64()).toBe(k.profile.vhostNetRingReset ? 0x1033d008000n : 0x33d008000n);
        expect(netOf(sys, fd).dev.workerTasks()).toEqual([]);
      });
      checkInvariants(k);
    });

    it('owner-checked ioctls from a fork() child fail with EPERM (another mm) but work from another thread of the owner', () => {
      const { k, atBoot } = boot(profile);
      runOwner(k, atBoot, function* (sys) {
        const fd = yield* openNet(sys);
        expect(res(yield* sys.ioctl(fd, U.VHOST_SET_OWNER))).toBe('ok');
        const mem = yield* sys.mmap(64 * 1024);
        if (!mem.ok) throw new Error('mmap');
        const table = U.encodeMemory([region(0, 64 * 1024, mem.value)]);
        const fromChild: Record<string, string> = {};
        const child = yield* sys.fork(function* (c) {
          const s = yield* Scratch.create(c);
          fromChild.num = res(yield* ioctlWith(c, s, fd, U.VHOST_SET_VRING_NUM, vringState(0, 256)));
          fromChild.mem = res(yield* ioctlWith(c, s, fd, U.VHOST_SET_MEM_TABLE, table));
          fromChild.backend = res(
            yield* ioctlWith(c, s, fd, U.VHOST_NET_SET_BACKEND, U.encodeVringFile({ index: 0, fd: -1 })),
          );
          fromChild.reset = res(yield* c.ioctl(fd, U.VHOST_RESET_OWNER));
          // SET_OWNER is not owner-checked: the device simply has an owner already
          fromChild.setOwner = res(yield* c.ioctl(fd, U.VHOST_SET_OWNER));
          fromChild.features = res(yield* ioctlWith(c, s, fd, U.VHOST_GET_FEATURES, U.encodeU64(0n)));
          return 0;
        });
        expect(res(child)).toBe('ok');
        const w = yield* sys.wait4(child.ok ? child.value : -1);
        expect(res(w)).toBe('ok');
        expect(fromChild).toEqual({
          num: 'EPERM',
          mem: 'EPERM',
          backend: 'EPERM',
          reset: 'EPERM',
          setOwner: 'EBUSY',
          features: 'ok',
        });
        const fromThread: Record<string, string> = {};
        yield* sys.pthreadCreate(function* (t) {
          const s = yield* Scratch.create(t);
          fromThread.num = res(yield* ioctlWith(t, s, fd, U.VHOST_SET_VRING_NUM, vringState(0, 256)));
          fromThread.mem = res(yield* ioctlWith(t, s, fd, U.VHOST_SET_MEM_TABLE, table));
          fromThread.setOwner = res(yield* t.ioctl(fd, U.VHOST_SET_OWNER));
          return 0;
        });
        yield* waitUntil(sys, () => fromThread.setOwner !== undefined);
        expect(fromThread).toEqual({ num: 'ok', mem: 'ok', setOwner: 'EBUSY' });
      });
      checkInvariants(k);
    });
  });

  describe('the worker (§10 item 25)', () => {
    const where = {
      kthread: 'a separate kthread ([vhost-N], PF_KTHREAD) with PPid 2',
      process: 'a separate process whose parent is the owner',
      thread: "a thread of the owner, listed in /proc/<owner>/task, whose PPid is the owner's parent",
    }[x.workerKind];
    it(`is named vhost-<tid of the thread that issued SET_OWNER> and is ${where}`, () => {
      const { k, atBoot } = boot(profile);
      runOwner(k, atBoot, function* (sys) {
        const fd = yield* openNet(sys);
        let setOwnerTid = 0;
        let outcome = '';
        // SET_OWNER from a second thread: the name carries that thread's TID, not the TGID
        yield* sys.pthreadCreate(function* (t) {
          setOwnerTid = t.gettid();
          outcome = res(yield* t.ioctl(fd, U.VHOST_SET_OWNER));
          return 0;
        }, 'CPU 0/KVM');
        yield* waitUntil(sys, () => outcome !== '');
        expect(outcome).toBe('ok');
        expect(setOwnerTid).not.toBe(sys.getpid());
        const w = workerOf(sys, fd)!;
        const p = workerPlacement(k, sys.task, w);
        expect(p.name).toBe(`vhost-${setOwnerTid}`);
        expect(p.kthread).toBe(x.workerKind === 'kthread');
        expect(p.inOwnerTaskList).toBe(x.workerKind === 'thread');
        expect(p.tgid).toBe(x.workerKind === 'thread' ? sys.getpid() : w.pid);
        expect(p.ppid).toBe(
          { kthreadd: 2, owner: sys.getpid(), 'owner-parent': sys.getppid() }[x.workerParent],
        );
      });
      checkInvariants(k);
    });

    it('takes N from the initial pid namespace even when the owner lives in a child pid namespace', () => {
      const { k, atBoot } = boot(profile);
      runOwner(k, atBoot, function* (sys) {
        let seen: { nsPid: number; globalPid: number; name: string } | null = null;
        const child = yield* sys.clone(CLONE_NEWPID | SIGCHLD, function* (c) {
          const fd = yield* openNet(c);
          expect(res(yield* c.ioctl(fd, U.VHOST_SET_OWNER))).toBe('ok');
          seen = { nsPid: c.getpid(), globalPid: c.task.pid, name: statusField(k, workerOf(c, fd)!, 'Name') };
          // release the device before this pid namespace's init exits
          expect(res(yield* c.close(fd))).toBe('ok');
          return 0;
        });
        expect(res(child)).toBe('ok');
        expect(res(yield* sys.wait4(child.ok ? child.value : -1))).toBe('ok');
        expect(seen).toEqual({ nsPid: 1, globalPid: seen!.globalPid, name: `vhost-${seen!.globalPid}` });
      });
      checkInvariants(k);
    });

    // Linux closes files first and zaps from exit_notify() → forget_original_parent() →
    // find_child_reaper(): otherwise a worker that ignores SIGKILL (V5, 6.4-rc1) would never go
    it("an owner that is its pid namespace's init can exit without closing the device: exit_files releases it before the namespace is zapped", () => {
      const { k, atBoot } = boot(profile);
      runOwner(k, atBoot, function* (sys) {
        const child = yield* sys.clone(CLONE_NEWPID | SIGCHLD, function* (c) {
          const fd = yield* openNet(c);
          expect(res(yield* c.ioctl(fd, U.VHOST_SET_OWNER))).toBe('ok');
          return 7;
        });
        const w = yield* sys.wait4(child.ok ? child.value : -1);
        expect(w.ok && w.value.status).toBe(7 << 8);
      });
      checkInvariants(k);
    });
  });

  describe('ring validation (§10 items 26–27)', () => {
    it('SET_VRING_NUM rejects 0, 3 and 65536 with EINVAL and accepts 32768; vring index 2 gives ENOBUFS', () => {
      const { k, atBoot } = boot(profile);
      runOwner(k, atBoot, function* (sys, scratch) {
        const fd = yield* openNet(sys);
        expect(res(yield* sys.ioctl(fd, U.VHOST_SET_OWNER))).toBe('ok');
        const io = (cmd: number, arg: Uint8Array) => ioctlWith(sys, scratch, fd, cmd, arg);
        const num = function* (n: number, index = 0) {
          return res(yield* io(U.VHOST_SET_VRING_NUM, vringState(index, n)));
        };
        expect([yield* num(0), yield* num(3), yield* num(65536), yield* num(32768)]).toEqual([
          'EINVAL',
          'EINVAL',
          'EINVAL',
          'ok',
        ]);
        expect(yield* num(256, 2)).toBe('ENOBUFS');
        expect(res(yield* io(U.VHOST_SET_VRING_BASE, vringState(2, 0)))).toBe('ENOBUFS');
        expect(res(yield* io(U.VHOST_SET_VRING_ADDR, vringAddr(2, 0, 0x1000, 0x3000, 0x2000)))).toBe(
          'ENOBUFS',
        );
        expect(res(yield* io(U.VHOST_SET_VRING_KICK, U.encodeVringFile({ index: 2, fd: -1 })))).toBe(
          'ENOBUFS',
        );
      });
      checkInvariants(k);
    });

    it('SET_VRING_ADDR rejects an odd avail address and a used address not 4-aligned with EINVAL, flags 2 with EOPNOTSUPP; SET_VRING_BASE 0x10000 is EINVAL', () => {
      const { k, atBoot } = boot(profile);
      runOwner(k, atBoot, function* (sys, scratch) {
        const fd = yield* openNet(sys);
        expect(res(yield* sys.ioctl(fd, U.VHOST_SET_OWNER))).toBe('ok');
        const io = (cmd: number, arg: Uint8Array) => ioctlWith(sys, scratch, fd, cmd, arg);
        const base = 0x10000;
        const addr = function* (flags: number, used: number, avail: number) {
          return res(yield* io(U.VHOST_SET_VRING_ADDR, vringAddr(0, flags, base, used, avail)));
        };
        expect(yield* addr(0, base + 0x2000, base + 0x1001)).toBe('EINVAL');
        expect(yield* addr(0, base + 0x2002, base + 0x1000)).toBe('EINVAL');
        expect(yield* addr(2, base + 0x2000, base + 0x1000)).toBe('EOPNOTSUPP');
        // descriptor alignment is not checked; bit 0 (VHOST_VRING_F_LOG) is allowed
        expect(yield* addr(1, base + 0x2000, base + 0x1002)).toBe('ok');
        expect(yield* addr(0, base + 0x2004, base + 0x1000)).toBe('ok');
        expect(res(yield* io(U.VHOST_SET_VRING_BASE, vringState(0, 0x10000)))).toBe('EINVAL');
        expect(res(yield* io(U.VHOST_SET_VRING_BASE, vringState(0, 0xffff)))).toBe('ok');
      });
      checkInvariants(k);
    });

    it('SET_MEM_TABLE rejects non-zero padding with EOPNOTSUPP and 65 regions with E2BIG, and takes 64', () => {
      const { k, atBoot } = boot(profile);
      runOwner(k, atBoot, function* (sys, scratch) {
        const fd = yield* openNet(sys);
        expect(res(yield* sys.ioctl(fd, U.VHOST_SET_OWNER))).toBe('ok');
        const mem = yield* sys.mmap(65 * 4096);
        if (!mem.ok) throw new Error('mmap');
        const regions = (n: number) =>
          Array.from({ length: n }, (_, i) => region(i * 4096, 4096, mem.value + i * 4096));
        const io = (arg: Uint8Array) => ioctlWith(sys, scratch, fd, U.VHOST_SET_MEM_TABLE, arg);
        expect(res(yield* io(U.encodeMemory(regions(1), 1)))).toBe('EOPNOTSUPP');
        expect(res(yield* io(U.encodeMemory(regions(65))))).toBe('E2BIG');
        expect(res(yield* io(U.encodeMemory(regions(64))))).toBe('ok');
        expect(netOf(sys, fd).dev.regions).toHaveLength(64);
      });
      checkInvariants(k);
    });
  });

  describe('RLIMIT_NPROC (§10 item 28)', () => {
    it(`with RLIMIT_NPROC used up by a non-root owner, SET_OWNER gives ${out(x.setOwnerNprocExhausted)}; a failed SET_OWNER leaves the device unowned`, () => {
      const { k, atBoot } = boot(profile);
      const rootBefore = k.ucounts.get(k.initUserNs, 0).nproc;
      runOwner(
        k,
        atBoot,
        function* (sys) {
          const fd = yield* openNet(sys);
          const before = k.nrThreads;
          expect(res(yield* sys.ioctl(fd, U.VHOST_SET_OWNER))).toBe(out(x.setOwnerNprocExhausted));
          const created = k.nrThreads - before;
          if (x.setOwnerNprocExhausted === 'ok') {
            // the kthread is kthreadd's child, charged to root: the owner's limit never applies
            expect(created).toBe(1);
            expect(k.ucounts.get(k.initUserNs, 0).nproc).toBe(rootBefore + 1);
            expect(k.ucounts.get(k.initUserNs, 107).nproc).toBe(1);
          } else {
            expect(created).toBe(0);
            expect(k.lastCopyProcessFailure?.rule).toBe('RLIMIT_NPROC');
            expect(netOf(sys, fd).dev.mm).toBeNull();
            // room for one more task: the same device accepts SET_OWNER now
            expect(res(yield* sys.setrlimit(RLIMIT_NPROC, { cur: 2, max: 2 }))).toBe('ok');
            expect(res(yield* sys.ioctl(fd, U.VHOST_SET_OWNER))).toBe('ok');
            expect(k.ucounts.get(k.initUserNs, 107).nproc).toBe(2);
          }
        },
        { uid: 107, rlimits: { [RLIMIT_NPROC]: { cur: 1, max: 2 } } },
      );
      checkInvariants(k);
    });
  });

  describe('fork-owner ioctls (§10 item 29)', () => {
    it.runIf(x.forkOwnerIoctls)(
      `VHOST_GET_FORK_FROM_OWNER returns ${x.forkOwnerDefault} on a fresh device, without ownership`,
      () => {
        const { k, atBoot } = boot(profile);
        runOwner(k, atBoot, function* (sys, scratch) {
          const fd = yield* openNet(sys);
          expect(
            res(yield* ioctlWith(sys, scratch, fd, U.VHOST_GET_FORK_FROM_OWNER, new Uint8Array([7]))),
          ).toBe('ok');
          expect(scratch.u32() & 0xff).toBe(x.forkOwnerDefault);
          expect(netOf(sys, fd).dev.mm).toBeNull();
        });
        checkInvariants(k);
      },
    );

    it.runIf(x.forkOwnerIoctls)(
      'VHOST_SET_FORK_FROM_OWNER rejects 2 with EINVAL and fails with EBUSY after SET_OWNER',
      () => {
        const { k, atBoot } = boot(profile);
        runOwner(k, atBoot, function* (sys, scratch) {
          const fd = yield* openNet(sys);
          const set = function* (v: number) {
            return res(yield* ioctlWith(sys, scratch, fd, U.VHOST_SET_FORK_FROM_OWNER, new Uint8Array([v])));
          };
          expect(yield* set(2)).toBe('EINVAL');
          expect(yield* set(1)).toBe('ok');
          expect(res(yield* sys.ioctl(fd, U.VHOST_SET_OWNER))).toBe('ok');
          expect(yield* set(0)).toBe('EBUSY');
          expect(yield* set(2)).toBe('EBUSY');
        });
        checkInvariants(k);
      },
    );

    it.runIf(x.forkOwnerIoctls)(
      'SET_FORK_FROM_OWNER 0 then SET_OWNER makes a kthread worker, 1 makes a vhost_task thread, and RESET_OWNER restores the module default',
      () => {
        const { k, atBoot } = boot(profile);
        runOwner(k, atBoot, function* (sys, scratch) {
          const fd = yield* openNet(sys);
          const set = function* (v: number) {
            return res(yield* ioctlWith(sys, scratch, fd, U.VHOST_SET_FORK_FROM_OWNER, new Uint8Array([v])));
          };
          const get = function* () {
            expect(
              res(yield* ioctlWith(sys, scratch, fd, U.VHOST_GET_FORK_FROM_OWNER, new Uint8Array(4))),
            ).toBe('ok');
            return scratch.u32() & 0xff;
          };
          for (const mode of [0, 1]) {
            expect(yield* set(mode)).toBe('ok');
            expect(yield* get()).toBe(mode);
            expect(res(yield* sys.ioctl(fd, U.VHOST_SET_OWNER))).toBe('ok');
            const p = workerPlacement(k, sys.task, workerOf(sys, fd)!);
            expect(p).toEqual(
              mode === 0
                ? {
                    name: `vhost-${sys.gettid()}`,
                    kthread: true,
                    inOwnerTaskList: false,
                    tgid: p.tgid,
                    ppid: 2,
                  }
                : {
                    name: `vhost-${sys.gettid()}`,
                    kthread: false,
                    inOwnerTaskList: true,
                    tgid: sys.getpid(),
                    ppid: sys.getppid(),
                  },
            );
            expect(res(yield* sys.ioctl(fd, U.VHOST_RESET_OWNER))).toBe('ok');
            expect(yield* get()).toBe(x.forkOwnerDefault);
          }
        });
        checkInvariants(k);
      },
    );

    it.runIf(!x.forkOwnerIoctls)(
      'SET/GET_FORK_FROM_OWNER do not exist: EPERM before SET_OWNER, then the vring path (ENOTTY for index 0, ENOBUFS for index ≥ 2)',
      () => {
        const { k, atBoot } = boot(profile);
        runOwner(k, atBoot, function* (sys, scratch) {
          const fd = yield* openNet(sys);
          const io = function* (cmd: number, firstU32: number) {
            return res(yield* ioctlWith(sys, scratch, fd, cmd, U.encodeU32(firstU32)));
          };
          expect(yield* io(U.VHOST_SET_FORK_FROM_OWNER, 0)).toBe('EPERM');
          expect(yield* io(U.VHOST_GET_FORK_FROM_OWNER, 0)).toBe('EPERM');
          expect(res(yield* sys.ioctl(fd, U.VHOST_SET_OWNER))).toBe('ok');
          expect(yield* io(U.VHOST_SET_FORK_FROM_OWNER, 0)).toBe('ENOTTY');
          expect(yield* io(U.VHOST_GET_FORK_FROM_OWNER, 1)).toBe('ENOTTY');
          expect(yield* io(U.VHOST_SET_FORK_FROM_OWNER, 2)).toBe('ENOBUFS');
          // the worker is whatever the era makes
          expect(workerOf(sys, fd)!.isKthread()).toBe(x.workerKind === 'kthread');
        });
        checkInvariants(k);
      },
    );
  });

  describe('VHOST_NEW_WORKER on vhost-net (§10 item 30)', () => {
    it('is not a worker ioctl there: EPERM when not the owner, else the vring path reads its first u32 (ENOBUFS for ≥ 2, ENOTTY below)', () => {
      const { k, atBoot } = boot(profile);
      runOwner(k, atBoot, function* (sys, scratch) {
        const fd = yield* openNet(sys);
        const newWorker = function* (s: Sys, sc: Scratch, first: number) {
          return res(yield* ioctlWith(s, sc, fd, U.VHOST_NEW_WORKER, U.encodeU32(first)));
        };
        expect(yield* newWorker(sys, scratch, 0)).toBe('EPERM');
        expect(res(yield* sys.ioctl(fd, U.VHOST_SET_OWNER))).toBe('ok');
        let fromChild = '';
        const child = yield* sys.fork(function* (c) {
          fromChild = yield* newWorker(c, yield* Scratch.create(c), 0);
          return 0;
        });
        yield* sys.wait4(child.ok ? child.value : -1);
        expect(fromChild).toBe('EPERM');
        const workers = netOf(sys, fd).dev.workerTasks().length;
        expect(yield* newWorker(sys, scratch, 0)).toBe('ENOTTY');
        expect(yield* newWorker(sys, scratch, 1)).toBe('ENOTTY');
        expect(yield* newWorker(sys, scratch, 2)).toBe('ENOBUFS');
        expect(yield* newWorker(sys, scratch, 0xffffffff)).toBe('ENOBUFS');
        expect(netOf(sys, fd).dev.workerTasks()).toHaveLength(workers);
      });
      checkInvariants(k);
    });
  });

  describe('SIGKILL of the owner while another process holds the fd (§10 item 31)', () => {
    const text = {
      'exits-at-once': 'the worker is gone promptly and kicks are no longer processed',
      'lingers-until-release':
        'the worker thread stays and keeps processing kicks until the last fd is closed',
      'serves-until-release': 'the worker keeps serving kicks until the last fd is closed',
    }[x.sigkill];
    it(text, () => {
      const { k, atBoot } = boot(profile);
      const seen: Record<string, unknown> = {};
      let done = false;
      const owner = spawn(k, 'qemu-system-x86', function* (sys) {
        const r = yield* setupVhostNet(sys, { num: 16, ramBytes: 256 * 1024 });
        if (!r.ok) throw new Error(`${r.step}: ${errnoName(r.errno)}`);
        const s = r.value;
        const net = netOf(sys, s.fd);
        const worker = workerOf(sys, s.fd)!;
        const ownerPid = sys.getpid();
        const sendFrames = (n: number) => {
          for (let i = 0; i < n; i++) {
            const g = s.tx.allocBuffer(64);
            s.tx.writeBytes(g, new Uint8Array(64).fill(i + 1));
            s.tx.addBuf([{ gpa: g, len: 64 }], [], g);
          }
          s.tx.publish();
        };
        // the agent inherits every fd, the device's included
        yield* sys.fork(function* (agent) {
          yield* agent.kill(ownerPid, SIGKILL);
          yield* agent.nanosleep(100 * US);
          seen.workerAlive = worker.alive;
          seen.ownerGone = !owner.alive;
          const before = s.tap.sent.length;
          sendFrames(4);
          yield* kick(agent, s.kickFd[1]);
          yield* agent.nanosleep(100 * US);
          seen.processedAfterKill = s.tap.sent.length - before;
          expect(res(yield* agent.close(s.fd))).toBe('ok');
          yield* agent.nanosleep(100 * US);
          seen.workerAfterClose = worker.alive;
          seen.released = net.dev.released;
          done = true;
          return 0;
        });
        // traffic works before the kill
        sendFrames(2);
        yield* kick(sys, s.kickFd[1]);
        for (;;) yield* sys.pause();
      });
      settle(k);
      expect(done).toBe(true);
      const serving = x.sigkill !== 'exits-at-once';
      expect(seen).toEqual({
        workerAlive: serving,
        ownerGone: true,
        processedAfterKill: serving ? 4 : 0,
        workerAfterClose: false,
        released: true,
      });
      expect(owner.tasksAlive()).toBe(false);
      checkNoLeaks(k, atBoot);
      checkInvariants(k);
    });
  });

  describe('copy_process rule order as vhost sees it (§10 item 33)', () => {
    const kthread = x.workerKind === 'kthread';
    const firstRule = kthread ? 'threads-max' : 'RLIMIT_NPROC';
    it(`with both RLIMIT_NPROC and threads-max exhausted, SET_OWNER fails at ${firstRule}${kthread ? ' (kthreadd is root, exempt from RLIMIT_NPROC)' : ', checked before threads-max'}`, () => {
      const { k, atBoot } = boot(profile);
      runOwner(
        k,
        atBoot,
        function* (sys) {
          const fd = yield* openNet(sys);
          const saved = k.maxThreads;
          k.maxThreads = k.nrThreads;
          const r = yield* sys.ioctl(fd, U.VHOST_SET_OWNER);
          expect(r.ok).toBe(false);
          expect(k.lastCopyProcessFailure?.rule).toBe(firstRule);
          // with RLIMIT_NPROC raised, threads-max is what fails
          expect(res(yield* sys.setrlimit(RLIMIT_NPROC, { cur: 10, max: 10 }))).toBe('ok');
          expect((yield* sys.ioctl(fd, U.VHOST_SET_OWNER)).ok).toBe(false);
          expect(k.lastCopyProcessFailure?.rule).toBe('threads-max');
          k.maxThreads = saved;
          expect(res(yield* sys.ioctl(fd, U.VHOST_SET_OWNER))).toBe('ok');
        },
        { uid: 107, rlimits: { [RLIMIT_NPROC]: { cur: 1, max: 10 } } },
      );
      checkInvariants(k);
    });

    it(`with kernel.threads-max reached, SET_OWNER returns ${out(x.setOwnerThreadsMaxExhausted)}`, () => {
      const { k, atBoot } = boot(profile);
      runOwner(k, atBoot, function* (sys) {
        const fd = yield* openNet(sys);
        const saved = k.maxThreads;
        k.maxThreads = k.nrThreads;
        expect(res(yield* sys.ioctl(fd, U.VHOST_SET_OWNER))).toBe(out(x.setOwnerThreadsMaxExhausted));
        k.maxThreads = saved;
      });
      checkInvariants(k);
    });

    it(`with the owner's cgroup at pids.max, SET_OWNER gives ${out(x.setOwnerPidsMaxExhausted)}${x.setOwnerPidsMaxExhausted === 'ok' ? ' (a kthread is forked in the root cgroup and moved unchecked)' : ': pids is checked after PID allocation, so the failed attempt used up a PID'}`, () => {
      const { k, atBoot } = boot(profile);
      const cg = makeCgroup(k, '/machine.slice/vm1', { pidsMax: 1 });
      runOwner(
        k,
        atBoot,
        function* (sys) {
          const fd = yield* openNet(sys);
          const cursor = k.initPidNs.cursor;
          expect(res(yield* sys.ioctl(fd, U.VHOST_SET_OWNER))).toBe(out(x.setOwnerPidsMaxExhausted));
          if (x.setOwnerPidsMaxExhausted === 'ok') {
            expect(cg.pids.eventsMax).toBe(0);
            // 5.15 leaves the kthread in the v2 root; later eras move it in, past pids.max
            expect(cg.pids.counter).toBe(x.workerCgroup === 'owner' ? 2 : 1);
          } else {
            expect(k.lastCopyProcessFailure?.rule).toBe('cgroup_can_fork (pids)');
            expect(cg.pids.eventsMax).toBe(1);
            expect(k.initPidNs.cursor).toBe(cursor + 1);
            cg.pids.max = 10;
            let tid = 0;
            yield* sys.pthreadCreate(function* (t) {
              tid = t.gettid();
              return 0;
            });
            yield* waitUntil(sys, () => tid !== 0);
            expect(tid).toBe(cursor + 2);
          }
        },
        { cgroup: cg },
      );
      checkInvariants(k);
    });

    it.runIf(x.setOwnerAfterUnsharePid !== null)(
      `after unshare(CLONE_NEWPID) SET_OWNER gives ${out(x.setOwnerAfterUnsharePid ?? 'ok')}${x.workerKind === 'thread' ? ': CLONE_THREAD across pid namespaces is refused before the pids.max check' : ' (kthreadd forks the worker)'}`,
      () => {
        const { k, atBoot } = boot(profile);
        const cg = makeCgroup(k, '/machine.slice/vm1', { pidsMax: x.workerKind === 'thread' ? 1 : 10 });
        runOwner(
          k,
          atBoot,
          function* (sys) {
            const fd = yield* openNet(sys);
            expect(res(yield* sys.unshare(CLONE_NEWPID))).toBe('ok');
            expect(res(yield* sys.ioctl(fd, U.VHOST_SET_OWNER))).toBe(out(x.setOwnerAfterUnsharePid!));
            if (x.workerKind === 'thread') {
              expect(k.lastCopyProcessFailure?.rule).toBe('CLONE_THREAD across pid/user namespaces');
              expect(cg.pids.eventsMax).toBe(0);
            } else {
              expect(workerOf(sys, fd)!.activePidNs()).toBe(k.initPidNs);
            }
          },
          { cgroup: cg },
        );
        checkInvariants(k);
      },
    );
  });

  describe('vhost_task stop and queueing after SIGKILL (§10 item 34)', () => {
    /**
     * Bring a device up; a forked agent holding the fd either SIGKILLs the owner or waits for
     * it to close its copy; the agent then probes queueing, releases the device (its close is
     * the last) and calls vhost_task_wake on the stopped task. Returns the observations.
     */
    function killedDevice(kill: boolean) {
      const { k, atBoot } = boot(profile);
      const seen: Record<string, unknown> = {};
      let worker: VhostWorker | null = null;
      let done = false;
      spawn(k, 'qemu-system-x86', function* (sys) {
        const r = yield* setupVhostNet(sys, { num: 16, ramBytes: 256 * 1024 });
        if (!r.ok) throw new Error(`${r.step}: ${errnoName(r.errno)}`);
        const s = r.value;
        const net = netOf(sys, s.fd);
        worker = [...net.dev.workers.values()][0]!;
        const ownerPid = sys.getpid();
        let ownerClosed = false;
        yield* sys.fork(function* (agent) {
          if (kill) {
            yield* agent.kill(ownerPid, SIGKILL);
            yield* agent.nanosleep(100 * US);
          } else yield* waitUntil(agent, () => ownerClosed);
          const w = worker!;
          seen.killedBeforeRelease = w.vtsk?.killed ?? null;
          const work = new VhostWork(function* () {}, 'probe');
          seen.queuedOnTx = vhostVqWorkQueue(k, net.vq(VHOST_NET_VQ_TX), work);
          seen.queuedOnRx = vhostVqWorkQueue(k, net.vq(VHOST_NET_VQ_RX), work);
          yield* agent.nanosleep(100 * US);
          yield* agent.close(s.fd);
          seen.stopFlag = w.vtsk?.stopRequested ?? null;
          seen.killedFlag = w.vtsk?.killed ?? null;
          if (w.vtsk) {
            const before = k.warnings.length;
            yield* vhostTaskWake(k, w.vtsk);
            seen.wakeWarned = k.warnings.slice(before).some((x) => x.where === 'vhost_task_wake');
          }
          done = true;
          return 0;
        });
        if (!kill) {
          // the agent's fd becomes the last reference
          expect(res(yield* sys.close(s.fd))).toBe('ok');
          ownerClosed = true;
          yield* waitUntil(sys, () => done);
          return 0;
        }
        for (;;) yield* sys.pause();
      });
      settle(k);
      expect(done).toBe(true);
      checkNoLeaks(k, atBoot);
      return { k, seen };
    }

    it.runIf(x.sigkill === 'exits-at-once')(
      'after a SIGKILL exit the task is KILLED, vhost_task_stop does not set STOP, and queueing to its vqs returns "not queued"',
      () => {
        const { k, seen } = killedDevice(true);
        expect(seen).toMatchObject({
          killedBeforeRelease: true,
          queuedOnTx: false,
          queuedOnRx: false,
          stopFlag: false,
          killedFlag: true,
        });
        // nothing tried to wake the dead worker
        expect(k.warnings.filter((w) => w.where === '__vhost_task_wake')).toEqual([]);
        checkInvariants(k);
      },
    );

    it.runIf(x.sigkill === 'lingers-until-release')(
      'after a SIGKILL the worker is not marked killed: work is still queued to it and vhost_task_stop sets STOP',
      () => {
        const { k, seen } = killedDevice(true);
        expect(seen).toMatchObject({
          killedBeforeRelease: false,
          queuedOnTx: true,
          queuedOnRx: true,
          stopFlag: true,
          killedFlag: false,
        });
        checkInvariants(k);
      },
    );

    it.runIf(x.vhostTaskWakeAfterStop !== null)(
      `vhost_task_wake after a normal vhost_task_stop ${x.vhostTaskWakeAfterStop === 'warns' ? 'is a WARN and no wake-up' : 'is a harmless wake-up without a warning'}`,
      () => {
        const { k, seen } = killedDevice(false);
        expect(seen).toMatchObject({ queuedOnTx: true, stopFlag: true, killedFlag: false });
        expect(seen.wakeWarned).toBe(x.vhostTaskWakeAfterStop === 'warns');
        checkInvariants(k);
      },
    );
  });
});

describe('the expectations table', () => {
  it('has exactly one row per profile, each citing its kernel source and agreeing with the profile switches', () => {
    expect(VHOST_NET_EXPECTATIONS.map((r) => r.profile)).toEqual(PROFILE_NAMES);
    for (const row of VHOST_NET_EXPECTATIONS) {
      const p = getProfile(row.profile);
      expect(row.source).not.toBe('');
      expect(row.forkOwnerIoctls).toBe(p.vhostForkOwnerControl);
      const kind = { kthread: 'kthread', 'kernel-worker-v5': 'process', 'vhost-task-rc1': 'process' }[
        p.vhostWorker as string
      ];
      expect(row.workerKind).toBe(kind ?? 'thread');
    }
    const k = bootKernel();
    checkInvariants(k);
  });
});
