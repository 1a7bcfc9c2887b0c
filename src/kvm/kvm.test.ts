/**
 * /dev/kvm and KVM's NX huge page recovery worker: kernel-spec §10 items 1–21, each on the
 * profiles where it applies — the vhost_task made by the first KVM_RUN (linux-6.12 as Debian's
 * 6.12.y, 6.17, 6.18), the kthread made by KVM_CREATE_VM (linux-5.15, 6.1, 6.10) — plus the
 * ABI, call_once's retry and the module parameters, checked through what a VMM and /proc see.
 */
import { describe, expect, it } from 'vitest';
import {
  cgroupEnableController,
  cgroupMkdirP,
  cgroupProcsWrite,
  cgroupSetThreaded,
} from '../cgroup/cgroup.js';
import { Errno, type Result } from '../kernel/errno.js';
import { O_CLOEXEC } from '../kernel/files.js';
import { checkInvariants, checkNoLeaks } from '../kernel/invariants.js';
import type { Kernel } from '../kernel/kernel.js';
import { cgroupFile, procCgroup, procNsLinks, procStat, procStatus, procTaskList } from '../kernel/procfs.js';
import { RLIMIT_NPROC } from '../kernel/rlimit.js';
import type { KGen } from '../kernel/sched.js';
import { CLONE_NEWPID, PF_IO_WORKER, PF_KTHREAD, PF_USER_WORKER } from '../kernel/sched-consts.js';
import { cgroupFreeze, kernelSigInfo, sendSignal } from '../kernel/signal.js';
import { SIGCONT, SIGKILL, SIGSTOP, SIGTERM, SIGUSR1 } from '../kernel/signal-consts.js';
import { caughtSignals, PTRACE_O_TRACECLONE, PTRACE_SEIZE, type Sys } from '../kernel/syscalls.js';
import { type Task, taskStateLetter } from '../kernel/task.js';
import { bootKernel, makeCgroup, settle, spawn, tasksNamed } from '../kernel/testing.js';
import { getProfile } from '../profiles/eras.js';
import {
  type Kvm,
  type KvmModule,
  type KvmOptions,
  kvmModule,
  kvmOfFd,
  kvmRunExit,
  NX_RECOVERY_NAME,
  registerKvm,
  vcpuOfFd,
} from './kvm.js';
import {
  _IOC,
  _IOC_WRITE,
  KVM_API_VERSION,
  KVM_CREATE_VCPU,
  KVM_CREATE_VM,
  KVM_EXIT_HLT,
  KVM_EXIT_INTR,
  KVM_GET_API_VERSION,
  KVM_GET_VCPU_MMAP_SIZE,
  KVM_RUN,
  KVM_SET_USER_MEMORY_REGION,
  KVMIO,
} from './uapi.js';

const MS = 1_000_000;
const S = 1_000 * MS;
const NX_COMM = 'kvm-nx-lpage-re';
const O_RDWR = 2;
const HANDLER = 0x401000;

/** The profiles where the first KVM_RUN creates the worker (kernel-spec §6.12, v6.14 form). */
const FIRST_RUN = ['linux-6.12', 'linux-6.17', 'linux-6.18'] as const;
/** The profiles where KVM_CREATE_VM creates a kthread (kvm_vm_create_worker_thread). */
const KTHREAD = ['linux-5.15', 'linux-6.1', 'linux-6.10'] as const;

function boot(profile: string, o: KvmOptions = {}): { k: Kernel; mod: KvmModule } {
  const k = bootKernel({ profile });
  return { k, mod: registerKvm(k, o) };
}

/** One field of /proc/<pid>/task/<tid>/status. */
function status(k: Kernel, t: Task, field: string): string {
  const line = procStatus(k, t)
    .split('\n')
    .find((l) => l.startsWith(`${field}:`));
  if (!line) throw new Error(`no ${field} in status of ${t}`);
  return line.slice(field.length + 1).trim();
}

/** Field 9 (flags) of /proc/<pid>/task/<tid>/stat. */
function statFlags(k: Kernel, t: Task): number {
  return Number(procStat(k, t).split(' ')[8]);
}

/** Live threads of `vmm`'s process with the NX worker's comm. */
function nxThreadsOf(vmm: Task): Task[] {
  return vmm.signal.threads.filter((t) => t.alive && t.comm === NX_COMM);
}

function must<T>(r: Result<T>, what: string): T {
  if (!r.ok) throw new Error(`${what}: errno ${r.errno}`);
  return r.value;
}

interface Vm {
  kvmFd: number;
  vmFd: number;
  vcpuFds: number[];
  kvm: Kvm;
}

/**
 * What real-kernels.md's probe does: open /dev/kvm, KVM_CREATE_VM, one page of guest memory
 * holding `hlt` (0xf4) as slot 0 at guest address 0, and `vcpus` vCPUs.
 */
function* createVm(sys: Sys, vcpus = 1): KGen<Vm> {
  const kvmFd = must(yield* sys.open('/dev/kvm', O_RDWR | O_CLOEXEC), 'open /dev/kvm');
  const vmFd = must(yield* sys.ioctl(kvmFd, KVM_CREATE_VM, 0), 'KVM_CREATE_VM');
  const mem = must(yield* sys.mmap(4096), 'mmap guest memory');
  must(sys.task.mm!.write(mem, Uint8Array.of(0xf4)), 'write hlt');
  const region = must(yield* sys.mmap(4096), 'mmap region struct');
  setRegion(sys, region, { slot: 0, flags: 0, gpa: 0, size: 4096, hva: mem });
  must(yield* sys.ioctl(vmFd, KVM_SET_USER_MEMORY_REGION, region), 'KVM_SET_USER_MEMORY_REGION');
  const vcpuFds: number[] = [];
  for (let i = 0; i < vcpus; i++)
    vcpuFds.push(must(yield* sys.ioctl(vmFd, KVM_CREATE_VCPU, i), 'KVM_CREATE_VCPU'));
  return { kvmFd, vmFd, vcpuFds, kvm: kvmOfFd(sys, vmFd)! };
}

/** Write a struct kvm_userspace_memory_region at `addr` in the caller's memory. */
function setRegion(
  sys: Sys,
  addr: number,
  r: { slot: number; flags: number; gpa: number; size: number; hva: number },
): void {
  const d = must(sys.task.mm!.view(addr, 32), 'view');
  d.setUint32(0, r.slot, true);
  d.setUint32(4, r.flags, true);
  d.setBigUint64(8, BigInt(r.gpa), true);
  d.setBigUint64(16, BigInt(r.size), true);
  d.setBigUint64(24, BigInt(r.hva), true);
}

function* closeVm(sys: Sys, vm: Vm): KGen<void> {
  for (const fd of vm.vcpuFds) yield* sys.close(fd);
  yield* sys.close(vm.vmFd);
  yield* sys.close(vm.kvmFd);
}

/** A parent shell that reaps the VMM and records how it ended. */
function spawnShell(k: Kernel, out: { status?: number }): Task {
  return spawn(k, 'sh', function* (sys) {
    const r = yield* sys.wait4(-1);
    if (r.ok) out.status = r.value.status;
    return 0;
  });
}

/** A task that writes a KVM module parameter (echo … > /sys/module/kvm/parameters/…). */
function writeParam(k: Kernel, mod: KvmModule, name: Parameters<KvmModule['paramSet']>[0], val: string) {
  const out: { r?: Result<void> } = {};
  spawn(k, 'echo', function* () {
    out.r = yield* mod.paramSet(name, val);
    return 0;
  });
  return out;
}

describe('the KVM ABI', () => {
  it('encodes the ioctl numbers as the kernel does: 0xae00, 0xae01, 0xae41, 0xae80 and _IOW(0xae, 0x46, 32) = 0x4020ae46', () => {
    expect(KVM_GET_API_VERSION).toBe(0xae00);
    expect(KVM_CREATE_VM).toBe(0xae01);
    expect(KVM_CREATE_VCPU).toBe(0xae41);
    expect(KVM_RUN).toBe(0xae80);
    expect(KVM_SET_USER_MEMORY_REGION).toBe(0x4020ae46);
    expect(_IOC(_IOC_WRITE, KVMIO, 0x46, 32)).toBe(KVM_SET_USER_MEMORY_REGION);
    expect(KVM_EXIT_HLT).toBe(5);
    const { k } = boot('linux-6.18');
    checkInvariants(k);
  });

  it.each(['linux-6.1', 'linux-6.18'])(
    '%s: a guest whose only page holds hlt exits to userspace with KVM_EXIT_HLT, and KVM_RUN returns 0',
    (profile) => {
      const { k } = boot(profile);
      const seen: Record<string, unknown> = {};
      spawn(k, 'qemu', function* (sys) {
        const vm = yield* createVm(sys);
        seen.api = must(yield* sys.ioctl(vm.kvmFd, KVM_GET_API_VERSION, 0), 'api');
        seen.mmapSize = must(yield* sys.ioctl(vm.kvmFd, KVM_GET_VCPU_MMAP_SIZE, 0), 'mmap size');
        seen.run = yield* sys.ioctl(vm.vcpuFds[0]!, KVM_RUN, 0);
        seen.exit = vcpuOfFd(sys, vm.vcpuFds[0]!)!.exitReason;
        seen.again = yield* kvmRunExit(sys, vm.vcpuFds[0]!);
        seen.cloexec = [vm.vmFd, ...vm.vcpuFds].every((fd) => sys.task.files!.cloexec.has(fd));
        yield* closeVm(sys, vm);
        return 0;
      });
      settle(k);
      expect(seen).toEqual({
        api: KVM_API_VERSION,
        mmapSize: 3 * 4096,
        run: { ok: true, value: 0 },
        exit: KVM_EXIT_HLT,
        again: { ok: true, value: KVM_EXIT_HLT },
        cloexec: true,
      });
      expect(k.trace.of('kvm_userspace_exit').map((e) => e.text)).toEqual([
        'reason KVM_EXIT_HLT (5)',
        'reason KVM_EXIT_HLT (5)',
      ]);
      checkInvariants(k);
    },
  );

  it('rejects bad arguments with the kernel’s errnos', () => {
    const { k } = boot('linux-6.18');
    const seen: Record<string, unknown> = {};
    spawn(k, 'qemu', function* (sys) {
      const vm = yield* createVm(sys);
      const e = (r: Result<number>) => (r.ok ? 'ok' : r.errno);
      seen.vmType = e(yield* sys.ioctl(vm.kvmFd, KVM_CREATE_VM, 1));
      seen.apiArg = e(yield* sys.ioctl(vm.kvmFd, KVM_GET_API_VERSION, 1));
      seen.devUnknown = e(yield* sys.ioctl(vm.kvmFd, 0xae99, 0));
      seen.vcpuId = e(yield* sys.ioctl(vm.vmFd, KVM_CREATE_VCPU, 4096));
      seen.vcpuDup = e(yield* sys.ioctl(vm.vmFd, KVM_CREATE_VCPU, 0));
      seen.vmUnknown = e(yield* sys.ioctl(vm.vmFd, 0xae99, 0));
      seen.runArg = e(yield* sys.ioctl(vm.vcpuFds[0]!, KVM_RUN, 1));
      seen.vcpuNotKvm = e(yield* sys.ioctl(vm.vcpuFds[0]!, 0x5401, 0));
      const region = must(yield* sys.mmap(4096), 'mmap');
      seen.regionFault = e(yield* sys.ioctl(vm.vmFd, KVM_SET_USER_MEMORY_REGION, 0x1000));
      setRegion(sys, region, { slot: 1, flags: 0, gpa: 0x10000, size: 100, hva: region });
      seen.regionSize = e(yield* sys.ioctl(vm.vmFd, KVM_SET_USER_MEMORY_REGION, region));
      setRegion(sys, region, { slot: 1, flags: 4, gpa: 0x10000, size: 4096, hva: region });
      seen.regionFlags = e(yield* sys.ioctl(vm.vmFd, KVM_SET_USER_MEMORY_REGION, region));
      setRegion(sys, region, { slot: 1, flags: 0, gpa: 0, size: 4096, hva: region });
      seen.regionOverlap = e(yield* sys.ioctl(vm.vmFd, KVM_SET_USER_MEMORY_REGION, region));
      setRegion(sys, region, { slot: 2, flags: 0, gpa: 0x20000, size: 0, hva: region });
      seen.regionDeleteMissing = e(yield* sys.ioctl(vm.vmFd, KVM_SET_USER_MEMORY_REGION, region));
      yield* closeVm(sys, vm);
      return 0;
    });
    settle(k);
    expect(seen).toEqual({
      vmType: Errno.EINVAL,
      apiArg: Errno.EINVAL,
      devUnknown: Errno.EINVAL,
      vcpuId: Errno.EINVAL,
      vcpuDup: Errno.EEXIST,
      vmUnknown: Errno.ENOTTY,
      runArg: Errno.EINVAL,
      vcpuNotKvm: Errno.EINVAL,
      regionFault: Errno.EFAULT,
      regionSize: Errno.EINVAL,
      regionFlags: Errno.EINVAL,
      regionOverlap: Errno.EEXIST,
      regionDeleteMissing: Errno.EINVAL,
    });
    checkInvariants(k);
  });

  it('registers /dev/kvm once per kernel; without it open fails with ENOENT', () => {
    const k = bootKernel({ profile: 'linux-6.18' });
    let r: Result<number> | undefined;
    spawn(k, 'qemu', function* (sys) {
      r = yield* sys.open('/dev/kvm');
      return 0;
    });
    settle(k);
    expect(r).toEqual({ ok: false, errno: Errno.ENOENT });
    const mod = registerKvm(k);
    expect(kvmModule(k)).toBe(mod);
    expect(() => registerKvm(k)).toThrow(/twice/);
    checkInvariants(k);
  });
});

describe.each(FIRST_RUN)('%s: the NX recovery vhost_task comes with the first KVM_RUN', (profile) => {
  it('a VM with vCPUs that never ran has no kvm-nx-lpage-re thread (item 1)', () => {
    const { k } = boot(profile);
    let threadsBefore = '';
    let vm: Vm | null = null;
    const qemu = spawn(k, 'qemu', function* (sys) {
      vm = yield* createVm(sys, 2);
      threadsBefore = status(k, sys.task, 'Threads');
      yield* sys.pause();
      return 0;
    });
    settle(k);
    expect(threadsBefore).toBe('1');
    expect(procTaskList(qemu, k.initPidNs)).toEqual([qemu.pid]);
    expect(tasksNamed(k, NX_COMM)).toEqual([]);
    expect(vm!.kvm.nxAttempts).toEqual([]);
    checkInvariants(k);
  });

  it('the first KVM_RUN on any vCPU creates exactly one kvm-nx-lpage-re thread; more KVM_RUNs on any vCPU create none (item 2)', () => {
    const { k } = boot(profile);
    const exits: number[] = [];
    let vm: Vm | null = null;
    const qemu = spawn(k, 'qemu', function* (sys) {
      vm = yield* createVm(sys, 2);
      for (const [i, fd] of vm.vcpuFds.entries()) {
        yield* sys.pthreadCreate(function* (s) {
          for (let n = 0; n < 3; n++) {
            exits.push(must(yield* kvmRunExit(s, fd), 'KVM_RUN'));
            yield* s.nanosleep(MS);
          }
          yield* s.pause();
          return 0;
        }, `CPU ${i}/KVM`);
      }
      yield* sys.pause();
      return 0;
    });
    settle(k);
    expect(exits).toEqual(Array(6).fill(KVM_EXIT_HLT));
    expect(nxThreadsOf(qemu).map((t) => t.comm)).toEqual([NX_COMM]);
    expect(tasksNamed(k, NX_COMM)).toHaveLength(1);
    expect(vm!.kvm.nxAttempts.map((a) => a.errno)).toEqual([0]);
    expect(vm!.kvm.nxAttempts[0]!.by.comm).toMatch(/^CPU [01]\/KVM$/);
    checkInvariants(k);
  });

  it('the thread is a thread of the VMM: same Tgid, listed in /proc/<vmm>/task, Threads +1, no extra process, PPid of the VMM’s parent (items 3, 6)', () => {
    const { k } = boot(profile);
    const out: { status?: number } = {};
    const sh = spawnShell(k, out);
    const threads: string[] = [];
    const qemu = spawn(
      k,
      'qemu',
      function* (sys) {
        const vm = yield* createVm(sys);
        threads.push(status(k, sys.task, 'Threads'));
        must(yield* kvmRunExit(sys, vm.vcpuFds[0]!), 'KVM_RUN');
        threads.push(status(k, sys.task, 'Threads'));
        yield* sys.pause();
        return 0;
      },
      { parent: sh },
    );
    settle(k);
    const [nx] = nxThreadsOf(qemu);
    expect(threads).toEqual(['1', '2']);
    expect(status(k, nx!, 'Tgid')).toBe(String(qemu.pid));
    expect(status(k, nx!, 'PPid')).toBe(String(sh.pid));
    expect(status(k, nx!, 'PPid')).not.toBe(String(qemu.pid));
    expect(procTaskList(qemu, k.initPidNs)).toEqual([qemu.pid, nx!.pid]);
    // ps -e lists processes (thread-group leaders) only
    const processes = k.liveTasks().filter((t) => t.threadGroupLeader());
    expect(processes.map((t) => t.comm)).toEqual(['init', 'kthreadd', 'sh', 'qemu']);
    checkInvariants(k);
  });

  it('its stat flags have PF_USER_WORKER (0x4000) and neither PF_KTHREAD nor PF_IO_WORKER; SigBlk is fffffffffffbfeff (items 4, 5)', () => {
    const { k } = boot(profile);
    const qemu = spawn(k, 'qemu', function* (sys) {
      const vm = yield* createVm(sys);
      must(yield* kvmRunExit(sys, vm.vcpuFds[0]!), 'KVM_RUN');
      yield* sys.pause();
      return 0;
    });
    settle(k);
    const [nx] = nxThreadsOf(qemu);
    const flags = statFlags(k, nx!);
    expect(flags & PF_USER_WORKER).toBe(PF_USER_WORKER);
    expect(flags & (PF_KTHREAD | PF_IO_WORKER)).toBe(0);
    expect(status(k, nx!, 'SigBlk')).toBe('fffffffffffbfeff');
    expect(status(k, nx!, 'Name')).toBe(NX_COMM);
    expect(nx!.files).toBeNull();
    expect(nx!.mm).toBe(qemu.mm);
    checkInvariants(k);
  });

  it('idle with nx_huge_pages=N it sleeps in S and arms no timer (item 7)', () => {
    const { k, mod } = boot(profile);
    expect(mod.paramGet('nx_huge_pages')).toBe('N\n');
    const qemu = spawn(k, 'qemu', function* (sys) {
      const vm = yield* createVm(sys);
      must(yield* kvmRunExit(sys, vm.vcpuFds[0]!), 'KVM_RUN');
      yield* sys.pause();
      return 0;
    });
    expect(k.run({ maxSteps: 100_000 })).toBe('idle');
    const [nx] = nxThreadsOf(qemu);
    expect(status(k, nx!, 'State')).toBe('S (sleeping)');
    expect(k.pendingTimers).toBe(0);
    expect(mod.vmList[0]!.nxRecoveries).toBe(0);
    checkInvariants(k);
  });

  it('SIGSTOP to the VMM stops the thread (T) with the others; SIGCONT returns it to S (item 8)', () => {
    const { k } = boot(profile);
    const states: Record<string, string[]> = {};
    let qemu: Task | null = null;
    const snap = (when: string) => {
      states[when] = qemu!.signal.threads.filter((t) => t.alive).map((t) => taskStateLetter(t));
    };
    qemu = spawn(k, 'qemu', function* (sys) {
      const vm = yield* createVm(sys);
      must(yield* kvmRunExit(sys, vm.vcpuFds[0]!), 'KVM_RUN');
      yield* sys.pthreadCreate(function* (s) {
        yield* s.pause();
        return 0;
      });
      yield* sys.pause();
      return 0;
    });
    spawn(k, 'kill', function* (sys) {
      yield* sys.nanosleep(MS);
      snap('before');
      must(yield* sys.kill(qemu!.pid, SIGSTOP), 'kill -STOP');
      yield* sys.nanosleep(MS);
      snap('stopped');
      must(yield* sys.kill(qemu!.pid, SIGCONT), 'kill -CONT');
      yield* sys.nanosleep(MS);
      snap('continued');
      return 0;
    });
    settle(k);
    expect(nxThreadsOf(qemu)).toHaveLength(1);
    expect(states).toEqual({ before: ['S', 'S', 'S'], stopped: ['T', 'T', 'T'], continued: ['S', 'S', 'S'] });
    checkInvariants(k);
  });

  it('a tgkill of SIGUSR1 to the thread stays pending (SigPnd 0000000000000200) and the VMM keeps running (item 9)', () => {
    const { k } = boot(profile);
    let nx: Task | null = null;
    let after: Result<number> | undefined;
    let pending = '';
    spawn(k, 'qemu', function* (sys) {
      const vm = yield* createVm(sys);
      must(yield* kvmRunExit(sys, vm.vcpuFds[0]!), 'KVM_RUN');
      nx = nxThreadsOf(sys.task)[0]!;
      must(yield* sys.tgkill(sys.getpid(), nx.pid, SIGUSR1), 'tgkill');
      yield* sys.nanosleep(MS);
      pending = `${status(k, nx, 'SigPnd')} ${status(k, nx, 'ShdPnd')} ${taskStateLetter(nx)}`;
      after = yield* kvmRunExit(sys, vm.vcpuFds[0]!);
      yield* closeVm(sys, vm);
      return 0;
    });
    settle(k);
    expect(pending).toBe('0000000000000200 0000000000000000 S');
    expect(after).toEqual({ ok: true, value: KVM_EXIT_HLT });
    expect(nx!.tasksAlive()).toBe(false);
    checkInvariants(k);
  });

  it('a tgkill of SIGKILL to the thread kills the whole VMM: no thread and no zombie remain (item 10)', () => {
    const { k } = boot(profile);
    const boot0 = { nrThreads: k.nrThreads };
    const out: { status?: number } = {};
    const sh = spawnShell(k, out);
    let nxTid = 0;
    const qemu = spawn(
      k,
      'qemu',
      function* (sys) {
        const vm = yield* createVm(sys);
        must(yield* kvmRunExit(sys, vm.vcpuFds[0]!), 'KVM_RUN');
        nxTid = nxThreadsOf(sys.task)[0]!.pid;
        yield* sys.pthreadCreate(function* (s) {
          yield* s.pause();
          return 0;
        });
        yield* sys.pause();
        return 0;
      },
      { parent: sh },
    );
    spawn(k, 'kill', function* (sys) {
      yield* sys.nanosleep(MS);
      must(yield* sys.tgkill(qemu.pid, nxTid, SIGKILL), 'tgkill');
      return 0;
    });
    settle(k);
    expect(out.status).toBe(SIGKILL);
    expect(qemu.signal.threads.filter((t) => t.tasksAlive())).toEqual([]);
    expect(kvmModule(k)!.vmList).toEqual([]);
    expect(k.warnings).toEqual([]);
    checkNoLeaks(k, boot0);
  });

  it('kill(vmm, SIGTERM) with the default action ends the VMM, and the NX thread exits with it (item 11)', () => {
    const { k } = boot(profile);
    const out: { status?: number } = {};
    const sh = spawnShell(k, out);
    const qemu = spawn(
      k,
      'qemu',
      function* (sys) {
        const vm = yield* createVm(sys);
        must(yield* kvmRunExit(sys, vm.vcpuFds[0]!), 'KVM_RUN');
        yield* sys.pause();
        return 0;
      },
      { parent: sh },
    );
    spawn(k, 'kill', function* (sys) {
      yield* sys.nanosleep(MS);
      must(yield* sys.kill(qemu.pid, SIGTERM), 'kill');
      return 0;
    });
    settle(k);
    expect(out.status).toBe(SIGTERM);
    expect(tasksNamed(k, NX_COMM)).toEqual([]);
    expect(k.liveTasks().map((t) => t.comm)).toEqual(['init', 'kthreadd']);
    checkInvariants(k);
  });

  it('with RLIMIT_NPROC reached (uid 1000) the first KVM_RUN fails with EAGAIN and creates nothing; after raising it by one the next KVM_RUN creates the thread (item 12)', () => {
    const { k } = boot(profile);
    const seen: Record<string, unknown> = {};
    let vm: Vm | null = null;
    const qemu = spawn(
      k,
      'qemu',
      function* (sys) {
        vm = yield* createVm(sys);
        const a = yield* kvmRunExit(sys, vm.vcpuFds[0]!);
        seen.first = a.ok ? a.value : a.errno;
        seen.threadsAfterFailure = nxThreadsOf(sys.task).length;
        must(yield* sys.setrlimit(RLIMIT_NPROC, { cur: 2, max: 2 }), 'setrlimit');
        const b = yield* kvmRunExit(sys, vm.vcpuFds[0]!);
        seen.second = b.ok ? b.value : b.errno;
        seen.threads = nxThreadsOf(sys.task).length;
        yield* closeVm(sys, vm);
        return 0;
      },
      { uid: 1000, rlimits: { [RLIMIT_NPROC]: { cur: 1, max: 2 } } },
    );
    settle(k);
    expect(seen).toEqual({ first: Errno.EAGAIN, threadsAfterFailure: 0, second: KVM_EXIT_HLT, threads: 1 });
    expect(vm!.kvm.nxAttempts.map((a) => a.errno)).toEqual([Errno.EAGAIN, 0]);
    expect(k.lastCopyProcessFailure?.rule).toBe('RLIMIT_NPROC');
    expect(qemu.tasksAlive()).toBe(false);
    checkInvariants(k);
  });

  it('as root the same RLIMIT_NPROC does not prevent creation (INIT_USER exemption, item 13)', () => {
    const { k } = boot(profile);
    let r: Result<number> | undefined;
    const qemu = spawn(
      k,
      'qemu',
      function* (sys) {
        const vm = yield* createVm(sys);
        r = yield* kvmRunExit(sys, vm.vcpuFds[0]!);
        yield* sys.pause();
        return 0;
      },
      { uid: 0, rlimits: { [RLIMIT_NPROC]: { cur: 1, max: 1 } } },
    );
    settle(k);
    expect(r).toEqual({ ok: true, value: KVM_EXIT_HLT });
    expect(nxThreadsOf(qemu)).toHaveLength(1);
    checkInvariants(k);
  });

  it('with pids.max reached the first KVM_RUN fails with EAGAIN and pids.events max counts it; the thread comes once there is room (item 14)', () => {
    const { k } = boot(profile);
    const cg = makeCgroup(k, 'machine.slice/vm1', { pidsMax: 1 });
    const seen: Record<string, unknown> = {};
    const qemu = spawn(
      k,
      'qemu',
      function* (sys) {
        const vm = yield* createVm(sys);
        const a = yield* kvmRunExit(sys, vm.vcpuFds[0]!);
        seen.first = a.ok ? a.value : a.errno;
        seen.events = cgroupFile(k, cg, 'pids.events');
        cg.pids.max = 2;
        const b = yield* kvmRunExit(sys, vm.vcpuFds[0]!);
        seen.second = b.ok ? b.value : b.errno;
        seen.current = cgroupFile(k, cg, 'pids.current');
        yield* sys.pause();
        return 0;
      },
      { cgroup: cg },
    );
    settle(k);
    expect(seen).toEqual({ first: Errno.EAGAIN, events: 'max 1\n', second: KVM_EXIT_HLT, current: '2\n' });
    expect(k.lastCopyProcessFailure?.rule).toBe('cgroup_can_fork (pids)');
    expect(nxThreadsOf(qemu)).toHaveLength(1);
    checkInvariants(k);
  });

  it('the thread starts in the cgroup of the vCPU thread that ran first, and shares the VMM’s namespaces (item 15)', () => {
    const { k } = boot(profile);
    const top = k.cgroupRoots[0]!.top;
    const dom = must(cgroupMkdirP(top, 'vm'), 'mkdir vm');
    const vcpuCg = must(cgroupMkdirP(top, 'vm/vcpu0'), 'mkdir vm/vcpu0');
    for (const c of [top, dom])
      for (const ctrl of ['pids', 'cpu', 'cpuset'] as const) cgroupEnableController(c, ctrl);
    must(cgroupSetThreaded(vcpuCg), 'threaded');
    let vcpuThread: Task | null = null;
    const qemu = spawn(
      k,
      'qemu',
      function* (sys) {
        const vm = yield* createVm(sys);
        yield* sys.pthreadCreate(function* (s) {
          vcpuThread = s.task;
          must(cgroupProcsWrite(k, s.task, vcpuCg, 0, false), 'echo 0 > vm/vcpu0/cgroup.threads');
          must(yield* kvmRunExit(s, vm.vcpuFds[0]!), 'KVM_RUN');
          yield* s.pause();
          return 0;
        }, 'CPU 0/KVM');
        yield* sys.pause();
        return 0;
      },
      { cgroup: dom },
    );
    settle(k);
    const [nx] = nxThreadsOf(qemu);
    expect(procCgroup(k, nx!)).toBe('0::/vm/vcpu0\n');
    expect(procCgroup(k, nx!)).toBe(procCgroup(k, vcpuThread!));
    expect(procCgroup(k, qemu)).toBe('0::/vm\n');
    expect(procNsLinks(nx!)).toEqual(procNsLinks(qemu));
    expect(cgroupFile(k, vcpuCg, 'cgroup.threads')).toBe(`${vcpuThread!.pid}\n${nx!.pid}\n`);
    checkInvariants(k);
  });

  it('after unshare(CLONE_NEWPID) every KVM_RUN fails with EINVAL and no thread is created (item 16)', () => {
    const { k } = boot(profile);
    const seen: unknown[] = [];
    const qemu = spawn(k, 'qemu', function* (sys) {
      const vm = yield* createVm(sys);
      must(yield* sys.unshare(CLONE_NEWPID), 'unshare');
      for (let i = 0; i < 2; i++) {
        const r = yield* kvmRunExit(sys, vm.vcpuFds[0]!);
        seen.push(r.ok ? r.value : r.errno);
      }
      seen.push(nxThreadsOf(sys.task).length);
      yield* sys.pause();
      return 0;
    });
    settle(k);
    expect(seen).toEqual([Errno.EINVAL, Errno.EINVAL, 0]);
    expect(k.lastCopyProcessFailure?.rule).toBe('CLONE_THREAD across pid/user namespaces');
    expect(nxThreadsOf(qemu)).toEqual([]);
    checkInvariants(k);
  });

  it('a fork child has no NX thread, and KVM ioctls on its inherited VM and vCPU fds fail with EIO (item 17)', () => {
    const { k } = boot(profile);
    const seen: Record<string, unknown> = {};
    let child: Task | null = null;
    const qemu = spawn(k, 'qemu', function* (sys) {
      const vm = yield* createVm(sys);
      must(yield* kvmRunExit(sys, vm.vcpuFds[0]!), 'KVM_RUN');
      const pid = must(
        yield* sys.fork(function* (c) {
          child = c.task;
          const e = (r: Result<number>) => (r.ok ? 'ok' : r.errno);
          seen.threads = c.task.signal.threads.length;
          seen.run = e(yield* c.ioctl(vm.vcpuFds[0]!, KVM_RUN, 0));
          seen.createVcpu = e(yield* c.ioctl(vm.vmFd, KVM_CREATE_VCPU, 1));
          seen.api = e(yield* c.ioctl(vm.kvmFd, KVM_GET_API_VERSION, 0));
          return 0;
        }),
        'fork',
      );
      yield* sys.wait4(pid);
      seen.parentRun = (yield* kvmRunExit(sys, vm.vcpuFds[0]!)).ok;
      yield* sys.pause();
      return 0;
    });
    settle(k);
    // /dev/kvm itself has no owner: only the VM and vCPU fds check the mm
    expect(seen).toEqual({ threads: 1, run: Errno.EIO, createVcpu: Errno.EIO, api: 'ok', parentRun: true });
    expect(tasksNamed(k, NX_COMM).map((t) => t.tgid)).toEqual([qemu.pid]);
    expect(child!.tasksAlive()).toBe(false);
    checkInvariants(k);
  });

  it('freezing the VMM’s cgroup reaches frozen 1 with the NX thread in it (item 18)', () => {
    const { k } = boot(profile);
    const cg = makeCgroup(k, 'vm1');
    const qemu = spawn(
      k,
      'qemu',
      function* (sys) {
        const vm = yield* createVm(sys);
        must(yield* kvmRunExit(sys, vm.vcpuFds[0]!), 'KVM_RUN');
        yield* sys.pause();
        return 0;
      },
      { cgroup: cg },
    );
    k.run({ until: () => nxThreadsOf(qemu).length === 1 });
    k.run({ untilTime: k.clock + MS });
    cg.freeze = true;
    cgroupFreeze(k, [...cg.tasks], true);
    k.run({ untilTime: k.clock + MS });
    expect(cgroupFile(k, cg, 'cgroup.events')).toBe('populated 1\nfrozen 1\n');
    expect([...cg.tasks].map((t) => t.comm).sort()).toEqual([NX_COMM, 'qemu']);
    cg.freeze = false;
    cgroupFreeze(k, [...cg.tasks], false);
    k.run({ untilTime: k.clock + MS });
    expect(cgroupFile(k, cg, 'cgroup.events')).toBe('populated 1\nfrozen 0\n');
    expect(nxThreadsOf(qemu).map((t) => taskStateLetter(t))).toEqual(['S']);
    checkInvariants(k);
  });

  it('with nx_huge_pages=never no VM gets the thread; writing never while a VM exists fails with EBUSY; later parameter writes fail with EPERM (item 19)', () => {
    const { k, mod } = boot(profile);
    const seen: Record<string, unknown> = {};
    // a VM exists: never is refused
    let phase = 0;
    spawn(k, 'qemu', function* (sys) {
      const vm = yield* createVm(sys);
      phase = 1;
      yield* sys.nanosleep(2 * MS);
      yield* closeVm(sys, vm);
      phase = 2;
      return 0;
    });
    k.run({ until: () => phase === 1 });
    const busy = writeParam(k, mod, 'nx_huge_pages', 'never');
    k.run({ until: () => phase === 2 });
    seen.busy = busy.r;
    settle(k);
    // no VM: never sticks
    const never = writeParam(k, mod, 'nx_huge_pages', 'never\n');
    settle(k);
    seen.never = never.r;
    seen.read = mod.paramGet('nx_huge_pages');
    const qemu = spawn(k, 'qemu', function* (sys) {
      const vm = yield* createVm(sys);
      seen.run = yield* kvmRunExit(sys, vm.vcpuFds[0]!);
      yield* sys.pause();
      return 0;
    });
    settle(k);
    seen.ratio = writeParam(k, mod, 'nx_huge_pages_recovery_ratio', '10');
    seen.period = writeParam(k, mod, 'nx_huge_pages_recovery_period_ms', '1000');
    seen.on = writeParam(k, mod, 'nx_huge_pages', 'Y');
    settle(k);
    expect(seen).toEqual({
      busy: { ok: false, errno: Errno.EBUSY },
      never: { ok: true, value: undefined },
      read: 'never\n',
      run: { ok: true, value: KVM_EXIT_HLT },
      ratio: { r: { ok: false, errno: Errno.EPERM } },
      period: { r: { ok: false, errno: Errno.EPERM } },
      on: { r: { ok: false, errno: Errno.EPERM } },
    });
    expect(nxThreadsOf(qemu)).toEqual([]);
    expect(mod.vmList[0]!.nxAttempts).toEqual([]);
    checkInvariants(k);
  });

  it('closing every VM and vCPU fd stops the thread with vhost_task_stop; the VM fd alone keeps it (item 20)', () => {
    const { k } = boot(profile);
    const boot0 = { nrThreads: k.nrThreads };
    const seen: number[] = [];
    spawn(k, 'qemu', function* (sys) {
      const vm = yield* createVm(sys, 2);
      must(yield* kvmRunExit(sys, vm.vcpuFds[1]!), 'KVM_RUN');
      seen.push(nxThreadsOf(sys.task).length);
      yield* sys.close(vm.vmFd);
      seen.push(nxThreadsOf(sys.task).length);
      yield* sys.close(vm.vcpuFds[0]!);
      seen.push(nxThreadsOf(sys.task).length);
      yield* sys.close(vm.vcpuFds[1]!);
      seen.push(nxThreadsOf(sys.task).length, Number(vm.kvm.destroyed));
      return 0;
    });
    settle(k);
    expect(seen).toEqual([1, 1, 1, 0, 1]);
    expect(k.warnings).toEqual([]);
    checkNoLeaks(k, boot0);
  });

  it('exiting without closing anything destroys the VM and the thread goes too (item 20)', () => {
    const { k } = boot(profile);
    const boot0 = { nrThreads: k.nrThreads };
    let vm: Vm | null = null;
    spawn(k, 'qemu', function* (sys) {
      vm = yield* createVm(sys);
      must(yield* kvmRunExit(sys, vm.vcpuFds[0]!), 'KVM_RUN');
      yield* sys.nanosleep(MS);
      return yield* sys.exitGroup(0);
    });
    settle(k);
    expect(vm!.kvm.destroyed).toBe(true);
    expect(kvmModule(k)!.vmList).toEqual([]);
    // kvm_destroy_vm()'s mmdrop() balanced kvm_create_vm()'s mmgrab(): back to the users' one reference
    expect(vm!.kvm.mm.count).toBe(1);
    expect(vm!.kvm.mm.users).toBe(0);
    checkNoLeaks(k, boot0);
  });

  it('a PTRACE_O_TRACECLONE tracer gets a clone event for pthread_create but none for the NX thread (CLONE_UNTRACED, item 21)', () => {
    const { k } = boot(profile);
    let pthread = 0;
    let ready = false;
    const qemu = spawn(k, 'qemu', function* (sys) {
      const vm = yield* createVm(sys);
      while (!ready) yield* sys.nanosleep(MS);
      pthread = must(
        yield* sys.pthreadCreate(function* (s) {
          yield* s.pause();
          return 0;
        }),
        'pthread_create',
      );
      must(yield* kvmRunExit(sys, vm.vcpuFds[0]!), 'KVM_RUN');
      yield* sys.pause();
      return 0;
    });
    const gdb = spawn(k, 'gdb', function* (sys) {
      must(yield* sys.ptrace(PTRACE_SEIZE, qemu.pid, PTRACE_O_TRACECLONE), 'seize');
      ready = true;
      yield* sys.pause();
      return 0;
    });
    settle(k);
    const [nx] = nxThreadsOf(qemu);
    expect(gdb.ptraceEvents.map((e) => [e.event, e.msg])).toEqual([['PTRACE_EVENT_CLONE', pthread]]);
    expect(nx!.ptrace).toBe(0);
    expect(status(k, nx!, 'TracerPid')).toBe('0');
    checkInvariants(k);
  });

  it('a signal pending at the first KVM_RUN fails the creation with ERESTARTNOINTR; the handler runs and the restarted KVM_RUN creates the thread (call_once retry)', () => {
    const { k } = boot(profile);
    let r: Result<number> | undefined;
    let vm: Vm | null = null;
    const qemu = spawn(k, 'qemu', function* (sys) {
      vm = yield* createVm(sys);
      must(yield* sys.rtSigaction(SIGUSR1, { handler: HANDLER }), 'sigaction');
      // the signal arrives between the last return to user mode and the KVM_RUN
      sendSignal(k, SIGUSR1, kernelSigInfo(SIGUSR1), sys.task, false);
      r = yield* kvmRunExit(sys, vm.vcpuFds[0]!);
      yield* sys.pause();
      return 0;
    });
    settle(k);
    expect(r).toEqual({ ok: true, value: KVM_EXIT_HLT });
    expect(vm!.kvm.nxAttempts.map((a) => a.errno)).toEqual([Errno.ERESTARTNOINTR, 0]);
    expect(vm!.kvm.nxOnce.state).toBe(2);
    expect(caughtSignals.get(qemu)).toEqual([SIGUSR1]);
    expect(nxThreadsOf(qemu)).toHaveLength(1);
    checkInvariants(k);
  });

  it('once the thread exists, a signal pending at KVM_RUN returns EINTR with exit reason KVM_EXIT_INTR', () => {
    const { k } = boot(profile);
    const seen: Record<string, unknown> = {};
    const qemu = spawn(k, 'qemu', function* (sys) {
      const vm = yield* createVm(sys);
      must(yield* kvmRunExit(sys, vm.vcpuFds[0]!), 'KVM_RUN');
      must(yield* sys.rtSigaction(SIGUSR1, { handler: HANDLER }), 'sigaction');
      sendSignal(k, SIGUSR1, kernelSigInfo(SIGUSR1), sys.task, false);
      seen.run = yield* sys.ioctl(vm.vcpuFds[0]!, KVM_RUN, 0);
      seen.exit = vcpuOfFd(sys, vm.vcpuFds[0]!)!.exitReason;
      seen.attempts = vm.kvm.nxAttempts.length;
      yield* sys.pause();
      return 0;
    });
    settle(k);
    expect(seen).toEqual({ run: { ok: false, errno: Errno.EINTR }, exit: KVM_EXIT_INTR, attempts: 1 });
    expect(caughtSignals.get(qemu)).toEqual([SIGUSR1]);
    checkInvariants(k);
  });

  it('with nx_huge_pages=Y the thread recovers once per period (ratio 60: 60 s) and sleeps S in between', () => {
    const { k, mod } = boot(profile, { nxHugePages: true });
    const out: { status?: number } = {};
    const sh = spawnShell(k, out);
    const qemu = spawn(
      k,
      'qemu',
      function* (sys) {
        const vm = yield* createVm(sys);
        must(yield* kvmRunExit(sys, vm.vcpuFds[0]!), 'KVM_RUN');
        yield* sys.pause();
        return 0;
      },
      { parent: sh },
    );
    k.run({ untilTime: 130 * S });
    const kvm = mod.vmList[0]!;
    expect(mod.recoveryPeriod()).toBe(60_000);
    expect(kvm.nxRecoveries).toBe(2);
    expect(taskStateLetter(nxThreadsOf(qemu)[0]!)).toBe('S');
    // a shorter period wakes it at once: the last run (120 s) is more than 1 s ago, so it
    // recovers at 130 s, then at 131 s and 132 s
    writeParam(k, mod, 'nx_huge_pages_recovery_period_ms', '1000');
    k.run({ untilTime: 130 * S + 2_500 * MS });
    expect(kvm.nxRecoveries).toBe(5);
    spawn(k, 'kill', function* (sys) {
      must(yield* sys.kill(qemu.pid, SIGKILL), 'kill');
      return 0;
    });
    settle(k);
    expect(out.status).toBe(SIGKILL);
    expect(k.warnings).toEqual([]);
    checkInvariants(k);
  });

  it('exec closes the close-on-exec VM fds after de_thread killed the thread; the VM is destroyed', () => {
    const { k } = boot(profile);
    let vm: Vm | null = null;
    let nx: Task | null = null;
    const qemu = spawn(k, 'qemu', function* (sys) {
      vm = yield* createVm(sys);
      must(yield* kvmRunExit(sys, vm.vcpuFds[0]!), 'KVM_RUN');
      nx = nxThreadsOf(sys.task)[0]!;
      const r = yield* sys.execve('/bin/true', function* () {
        return 0;
      });
      return r.ok ? 0 : 1;
    });
    settle(k);
    expect(nx!.tasksAlive()).toBe(false);
    expect(vm!.kvm.destroyed).toBe(true);
    expect(qemu.tasksAlive()).toBe(false);
    expect(k.warnings).toEqual([]);
    checkInvariants(k);
  });
});

describe('the kill callback and the wake after a kill', () => {
  it.each([
    ['linux-6.12', true],
    ['linux-6.18', false],
  ] as const)(
    '%s: KVM registers a kill callback: %s; waking the killed thread from a parameter write is silent and the VM, kept by a fork child, is destroyed cleanly',
    (profile, hasKillHandler) => {
      const { k, mod } = boot(profile);
      const out: { status?: number } = {};
      const sh = spawnShell(k, out);
      let vm: Vm | null = null;
      let childDone = false;
      const qemu = spawn(
        k,
        'qemu',
        function* (sys) {
          vm = yield* createVm(sys);
          must(yield* kvmRunExit(sys, vm.vcpuFds[0]!), 'KVM_RUN');
          // a helper process inherits the fds and keeps them a while (reparented to init later)
          yield* sys.fork(function* (c) {
            yield* c.nanosleep(10 * MS);
            childDone = true;
            return 0;
          });
          yield* sys.pause();
          return 0;
        },
        { parent: sh },
      );
      spawn(k, 'kill', function* (sys) {
        yield* sys.nanosleep(MS);
        must(yield* sys.kill(qemu.pid, SIGKILL), 'kill');
        return 0;
      });
      k.run({ until: () => out.status !== undefined });
      const kvm = vm!.kvm;
      expect(kvm.destroyed).toBe(false);
      expect(kvm.nxVhostTask!.killed).toBe(true);
      expect(kvm.nxVhostTask!.handleSigkill !== null).toBe(hasKillHandler);
      const w = writeParam(k, mod, 'nx_huge_pages', 'Y');
      settle(k);
      expect(w.r).toEqual({ ok: true, value: undefined });
      expect(childDone).toBe(true);
      expect(kvm.destroyed).toBe(true);
      expect(k.warnings).toEqual([]);
      checkInvariants(k);
    },
  );
});

describe.each(KTHREAD)('%s: the NX recovery kthread comes with KVM_CREATE_VM', (profile) => {
  it('KVM_CREATE_VM creates a kthread kvm-nx-lpage-re (kvm-nx-lpage-recovery-<pid>), a child of kthreadd outside the VMM; KVM_RUN adds none', () => {
    const { k } = boot(profile);
    const seen: Record<string, unknown> = {};
    let vm: Vm | null = null;
    const qemu = spawn(k, 'qemu', function* (sys) {
      vm = yield* createVm(sys, 2);
      seen.afterCreate = tasksNamed(k, NX_COMM).length;
      for (const fd of vm.vcpuFds) must(yield* kvmRunExit(sys, fd), 'KVM_RUN');
      seen.afterRun = tasksNamed(k, NX_COMM).length;
      yield* sys.pause();
      return 0;
    });
    settle(k);
    expect(seen).toEqual({ afterCreate: 1, afterRun: 1 });
    const kt = vm!.kvm.nxKthread!;
    expect(kt.comm).toBe(NX_COMM);
    expect(kt.kthread!.fullName).toBe(`${NX_RECOVERY_NAME}-${qemu.pid}`);
    expect(statFlags(k, kt) & PF_KTHREAD).toBe(PF_KTHREAD);
    expect(statFlags(k, kt) & PF_USER_WORKER).toBe(0);
    expect(status(k, kt, 'PPid')).toBe('2');
    expect(status(k, kt, 'Tgid')).toBe(String(kt.pid));
    expect(procTaskList(qemu, k.initPidNs)).toEqual([qemu.pid]);
    expect(kt.cred.uid).toBe(0);
    expect(kt.mm).toBeNull();
    expect(taskStateLetter(kt)).toBe('S');
    checkInvariants(k);
  });

  it('RLIMIT_NPROC and pids.max do not stop it: the kthread is root’s, and the cgroup migration is never checked against pids.max', () => {
    const { k } = boot(profile);
    const cg = makeCgroup(k, 'machine.slice/vm1', { pidsMax: 1 });
    let r: Result<number> | undefined;
    let vm: Vm | null = null;
    spawn(
      k,
      'qemu',
      function* (sys) {
        vm = yield* createVm(sys);
        r = yield* kvmRunExit(sys, vm.vcpuFds[0]!);
        yield* sys.pause();
        return 0;
      },
      { cgroup: cg, uid: 1000, rlimits: { [RLIMIT_NPROC]: { cur: 1, max: 1 } } },
    );
    settle(k);
    expect(r).toEqual({ ok: true, value: KVM_EXIT_HLT });
    const kt = vm!.kvm.nxKthread!;
    expect(kt.alive).toBe(true);
    expect(cgroupFile(k, cg, 'pids.events')).toBe('max 0\n');
    if (k.profile.attachTaskAllSkipsDfl) {
      // 5.15: cgroup_attach_task_all() skips the v2 hierarchy
      expect(procCgroup(k, kt)).toBe('0::/\n');
      expect(cgroupFile(k, cg, 'pids.current')).toBe('1\n');
    } else {
      expect(procCgroup(k, kt)).toBe('0::/machine.slice/vm1\n');
      expect(cgroupFile(k, cg, 'pids.current')).toBe('2\n');
    }
    checkInvariants(k);
  });

  it('closing the fds stops the kthread with kthread_stop; it leaves the VMM’s cgroup before it exits', () => {
    const { k } = boot(profile);
    const boot0 = { nrThreads: k.nrThreads };
    const cg = makeCgroup(k, 'vm1');
    const seen: string[] = [];
    let vm: Vm | null = null;
    spawn(
      k,
      'qemu',
      function* (sys) {
        vm = yield* createVm(sys);
        seen.push(cgroupFile(k, cg, 'pids.current')!);
        yield* closeVm(sys, vm);
        seen.push(cgroupFile(k, cg, 'pids.current')!);
        return 0;
      },
      { cgroup: cg },
    );
    settle(k);
    expect(seen).toEqual([k.profile.attachTaskAllSkipsDfl ? '1\n' : '2\n', '1\n']);
    expect(vm!.kvm.nxKthread!.tasksAlive()).toBe(false);
    expect(k.trace.of('kthread_stop_ret').map((e) => e.text)).toEqual(['ret=0']);
    checkNoLeaks(k, boot0);
  });

  it('unshare(CLONE_NEWPID) before KVM_CREATE_VM does not matter to the kthread', () => {
    const { k } = boot(profile);
    let vm: Vm | null = null;
    spawn(k, 'qemu', function* (sys) {
      must(yield* sys.unshare(CLONE_NEWPID), 'unshare');
      vm = yield* createVm(sys);
      must(yield* kvmRunExit(sys, vm.vcpuFds[0]!), 'KVM_RUN');
      yield* sys.pause();
      return 0;
    });
    settle(k);
    expect(vm!.kvm.nxKthread?.alive).toBe(true);
    checkInvariants(k);
  });
});

describe('the kthread era against the vhost_task era', () => {
  it('linux-6.1: a frozen cgroup with a VM never reports frozen 1, the kthread never freezes (fixed by the switch to vhost_task, d96c77bd4eeb)', () => {
    const { k } = boot('linux-6.1');
    const cg = makeCgroup(k, 'vm1');
    let vm: Vm | null = null;
    const out: { status?: number } = {};
    const sh = spawnShell(k, out);
    const qemu = spawn(
      k,
      'qemu',
      function* (sys) {
        vm = yield* createVm(sys);
        yield* sys.pause();
        return 0;
      },
      { cgroup: cg, parent: sh },
    );
    k.run({ untilTime: 2 * MS });
    cg.freeze = true;
    cgroupFreeze(k, [...cg.tasks], true);
    k.run({ untilTime: 4 * MS });
    expect(cgroupFile(k, cg, 'cgroup.events')).toBe('populated 1\nfrozen 0\n');
    expect(taskStateLetter(vm!.kvm.nxKthread!)).toBe('S');
    cg.freeze = false;
    cgroupFreeze(k, [...cg.tasks], false);
    spawn(k, 'kill', function* (sys) {
      must(yield* sys.kill(qemu.pid, SIGKILL), 'kill');
      return 0;
    });
    settle(k);
    expect(out.status).toBe(SIGKILL);
    expect(vm!.kvm.nxKthread!.tasksAlive()).toBe(false);
    checkInvariants(k);
  });

  it('linux-6.1 refuses nx_huge_pages=never with EBUSY while a VM exists (0b210faf3373 backport); linux-5.15 reads "never" as "n": off, and later VMs still get the kthread', () => {
    const seen: Record<string, unknown> = {};
    for (const profile of ['linux-6.1', 'linux-5.15']) {
      const { k, mod } = boot(profile, { nxHugePages: true });
      let phase = 0;
      spawn(k, 'qemu', function* (sys) {
        const vm = yield* createVm(sys);
        phase = 1;
        yield* sys.nanosleep(2 * MS);
        yield* closeVm(sys, vm);
        return 0;
      });
      k.run({ until: () => phase === 1 });
      const w = writeParam(k, mod, 'nx_huge_pages', 'never');
      settle(k);
      let later: Vm | null = null;
      spawn(k, 'qemu2', function* (sys) {
        later = yield* createVm(sys);
        yield* closeVm(sys, later);
        return 0;
      });
      settle(k);
      seen[profile] = [w.r, mod.paramGet('nx_huge_pages'), later!.kvm.nxAttempts.length];
      checkInvariants(k);
    }
    expect(seen).toEqual({
      'linux-6.1': [{ ok: false, errno: Errno.EBUSY }, 'Y\n', 1],
      'linux-5.15': [{ ok: true, value: undefined }, 'N\n', 1],
    });
  });

  it('nx_huge_pages=never at module load means no worker in either era (linux-6.1, linux-6.18)', () => {
    for (const profile of ['linux-6.1', 'linux-6.18']) {
      const { k, mod } = boot(profile, { nxHugePages: 'never' });
      let vm: Vm | null = null;
      spawn(k, 'qemu', function* (sys) {
        vm = yield* createVm(sys);
        must(yield* kvmRunExit(sys, vm.vcpuFds[0]!), 'KVM_RUN');
        yield* closeVm(sys, vm);
        return 0;
      });
      settle(k);
      expect(mod.paramGet('nx_huge_pages'), profile).toBe('never\n');
      expect(vm!.kvm.nxAttempts, profile).toEqual([]);
      expect(
        k.trace.of('task_newtask').filter((e) => e.text.includes(NX_COMM)),
        profile,
      ).toEqual([]);
      checkInvariants(k);
    }
  });

  it('a 6.13-style profile (vhost-task-at-create) makes the vhost_task at KVM_CREATE_VM, and a creation failure fails KVM_CREATE_VM with ENOMEM', () => {
    const profile = {
      ...getProfile('linux-6.12'),
      name: 'linux-6.13',
      kvmNxWorker: 'vhost-task-at-create' as const,
    };
    const k = bootKernel({ profile });
    registerKvm(k);
    const seen: Record<string, unknown> = {};
    spawn(
      k,
      'qemu',
      function* (sys) {
        const kvmFd = must(yield* sys.open('/dev/kvm'), 'open');
        const a = yield* sys.ioctl(kvmFd, KVM_CREATE_VM, 0);
        seen.fail = a.ok ? 'ok' : a.errno;
        must(yield* sys.setrlimit(RLIMIT_NPROC, { cur: 2, max: 2 }), 'setrlimit');
        const vmFd = must(yield* sys.ioctl(kvmFd, KVM_CREATE_VM, 0), 'KVM_CREATE_VM');
        seen.threads = nxThreadsOf(sys.task).length;
        const vcpu = must(yield* sys.ioctl(vmFd, KVM_CREATE_VCPU, 0), 'KVM_CREATE_VCPU');
        seen.run = yield* kvmRunExit(sys, vcpu);
        seen.threadsAfterRun = nxThreadsOf(sys.task).length;
        yield* sys.close(vcpu);
        yield* sys.close(vmFd);
        seen.threadsAfterClose = nxThreadsOf(sys.task).length;
        return 0;
      },
      { uid: 1000, rlimits: { [RLIMIT_NPROC]: { cur: 1, max: 2 } } },
    );
    settle(k);
    expect(seen).toEqual({
      fail: Errno.ENOMEM,
      threads: 1,
      run: { ok: true, value: KVM_EXIT_HLT },
      threadsAfterRun: 1,
      threadsAfterClose: 0,
    });
    expect(kvmModule(k)!.vmList).toEqual([]);
    checkInvariants(k);
  });
});

describe('worker creation cost and kthread names', () => {
  it('linux-6.18: the first KVM_RUN costs a worker creation more than a later one', () => {
    const { k } = boot('linux-6.18');
    const took: number[] = [];
    spawn(k, 'qemu', function* (sys) {
      const vm = yield* createVm(sys);
      for (let i = 0; i < 2; i++) {
        const t0 = k.clock;
        must(yield* kvmRunExit(sys, vm.vcpuFds[0]!), 'KVM_RUN');
        took.push(k.clock - t0);
      }
      yield* closeVm(sys, vm);
      return 0;
    });
    settle(k);
    expect(took[0]! - took[1]!).toBeGreaterThanOrEqual(k.profile.costs.cloneThread);
    checkInvariants(k);
  });

  it('linux-6.1: /proc/<pid>/status Name of the NX kthread is its full name kvm-nx-lpage-recovery-<pid>', () => {
    const { k } = boot('linux-6.1');
    let vm: Vm | null = null;
    const qemu = spawn(k, 'qemu', function* (sys) {
      vm = yield* createVm(sys);
      yield* sys.pause();
      return 0;
    });
    settle(k);
    expect(status(k, vm!.kvm.nxKthread!, 'Name')).toBe(`${NX_RECOVERY_NAME}-${qemu.pid}`);
    checkInvariants(k);
  });
});

describe('module parameters', () => {
  it('parse like the kernel: off/force/auto/kstrtobool for nx_huge_pages, kstrtouint for the recovery knobs', () => {
    const { k, mod } = boot('linux-6.18');
    const rs: Record<string, unknown> = {};
    spawn(k, 'echo', function* () {
      for (const v of ['force', 'off', 'yes', '0', 'on', 'auto', 'maybe']) {
        const r = yield* mod.paramSet('nx_huge_pages', v);
        rs[v] = r.ok ? mod.paramGet('nx_huge_pages') : r.errno;
      }
      for (const v of ['0x10', '010', '7\n', '-1', '4294967296']) {
        const r = yield* mod.paramSet('nx_huge_pages_recovery_ratio', v);
        rs[`ratio ${JSON.stringify(v)}`] = r.ok ? mod.paramGet('nx_huge_pages_recovery_ratio') : r.errno;
      }
      return 0;
    });
    settle(k);
    expect(rs).toEqual({
      force: 'Y\n',
      off: 'N\n',
      yes: 'Y\n',
      '0': 'N\n',
      on: 'Y\n',
      auto: 'N\n',
      maybe: Errno.EINVAL,
      'ratio "0x10"': '16\n',
      'ratio "010"': '8\n',
      'ratio "7\\n"': '7\n',
      'ratio "-1"': Errno.EINVAL,
      'ratio "4294967296"': Errno.ERANGE,
    });
    checkInvariants(k);
  });

  it('writing nx_huge_pages before the first KVM_RUN wakes nothing: there is no thread yet (kvm_wake_nx_recovery_thread)', () => {
    const { k, mod } = boot('linux-6.18');
    let vm: Vm | null = null;
    let phase = 0;
    spawn(k, 'qemu', function* (sys) {
      vm = yield* createVm(sys);
      phase = 1;
      yield* sys.nanosleep(2 * MS);
      must(yield* kvmRunExit(sys, vm.vcpuFds[0]!), 'KVM_RUN');
      yield* closeVm(sys, vm);
      return 0;
    });
    k.run({ until: () => phase === 1 });
    const w = writeParam(k, mod, 'nx_huge_pages', 'Y');
    settle(k);
    expect(w.r).toEqual({ ok: true, value: undefined });
    expect(vm!.kvm.nxAttempts.map((a) => a.errno)).toEqual([0]);
    expect(k.warnings).toEqual([]);
    checkInvariants(k);
  });
});
