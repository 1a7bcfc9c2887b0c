/**
 * /dev/kvm, just enough for KVM x86's per-VM NX huge page recovery worker (kernel-spec §6.12):
 * the one user worker a stock host exposes, and the model's conformance target.
 *
 * Models virt/kvm/kvm_main.c (kvm_dev_ioctl, kvm_dev_ioctl_create_vm, kvm_create_vm,
 * kvm_destroy_vm, kvm_put_kvm, kvm_vm_ioctl, kvm_vm_ioctl_create_vcpu,
 * kvm_vm_ioctl_set_memory_region, kvm_vcpu_ioctl, kvm_vm_release, kvm_vcpu_release and, up to
 * v6.12 mainline, kvm_vm_create_worker_thread + kvm_vm_worker_thread), arch/x86/kvm/x86.c
 * (kvm_arch_vcpu_ioctl_run, kvm_arch_post_init_vm) and arch/x86/kvm/mmu/mmu.c
 * (kvm_mmu_post_init_vm, kvm_mmu_start_lpage_recovery, kvm_mmu_pre_destroy_vm,
 * kvm_nx_huge_page_recovery_worker, set_nx_huge_pages, set_nx_huge_pages_recovery_param,
 * calc_nx_huge_pages_recovery_period) and include/linux/call_once.h, v6.14 … v6.18, with the
 * creation scheme the profile's `kvmNxWorker` selects:
 *
 *  - 'kthread-at-create' (≤ v6.12 mainline; 5.15, 6.1, 6.4, 6.5, 6.10 profiles): KVM_CREATE_VM
 *    runs kvm_vm_create_worker_thread(): a kthread "kvm-nx-lpage-recovery-<pid>" (comm
 *    "kvm-nx-lpage-re") made by kthreadd, which parks itself, joins the creator's cgroups with
 *    cgroup_attach_task_all() and is unparked; kthread_stop() at VM destruction.
 *  - 'vhost-task-at-create' (d96c77bd4eeb, v6.13 mainline): a vhost_task at KVM_CREATE_VM;
 *    a failure fails KVM_CREATE_VM with ENOMEM (vhost_task_create returned NULL then).
 *  - 'vhost-task-first-run' (931656b9e2ff + 916b7f42b3b3, v6.14; the linux-6.12 profile is
 *    Debian's 6.12.y, which has both as stable backports): the first KVM_RUN of any vCPU runs
 *    call_once(&kvm->arch.nx_once, kvm_mmu_start_lpage_recovery); call_once completes only on
 *    success, so a failure is returned by that KVM_RUN (EAGAIN for RLIMIT_NPROC/pids.max,
 *    ERESTARTNOINTR with a signal pending, EINVAL after unshare(CLONE_NEWPID)) and retried by a
 *    later one. vhost_task_stop() at VM destruction.
 *  - 'none': no worker.
 *
 * The guest is the smallest one real-kernels.md runs: it halts at once, so KVM_RUN (with no
 * in-kernel irqchip) returns 0 with kvm_run.exit_reason = KVM_EXIT_HLT.
 */
import { cgroupAttachTaskAll } from '../cgroup/cgroup.js';
import { Errno, err, ok, type Result } from '../kernel/errno.js';
import { File, type FileOps, O_CLOEXEC } from '../kernel/files.js';
import type { Kernel, Timer } from '../kernel/kernel.js';
import {
  kthreadPark,
  kthreadParkme,
  kthreadRun,
  kthreadShouldStop,
  kthreadStop,
  kthreadUnpark,
} from '../kernel/kthread.js';
import type { MM } from '../kernel/mm.js';
import { PAGE_SIZE } from '../kernel/mm.js';
import { RLIMIT_NOFILE } from '../kernel/rlimit.js';
import {
  Completion,
  complete,
  type KGen,
  Mutex,
  mutexLock,
  mutexUnlock,
  Op,
  waitEvent,
  waitForCompletion,
} from '../kernel/sched.js';
import { TASK_INTERRUPTIBLE, TASK_KILLABLE, TASK_RUNNING } from '../kernel/sched-consts.js';
import { Slot } from '../kernel/slot.js';
import type { Sys } from '../kernel/syscalls.js';
import type { Task } from '../kernel/task.js';
import {
  type VhostTask,
  vhostTaskCreate,
  vhostTaskStart,
  vhostTaskStop,
  vhostTaskWake,
} from '../kernel/vhost-task.js';
import {
  _IOC_TYPE,
  KVM_API_VERSION,
  KVM_CHECK_EXTENSION,
  KVM_CREATE_VCPU,
  KVM_CREATE_VM,
  KVM_EXIT_HLT,
  KVM_EXIT_INTR,
  KVM_GET_API_VERSION,
  KVM_GET_VCPU_MMAP_SIZE,
  KVM_MAX_VCPU_IDS,
  KVM_MEM_LOG_DIRTY_PAGES,
  KVM_MEM_READONLY,
  KVM_RUN,
  KVM_RUN_EXIT_REASON_OFFSET,
  KVM_RUN_IMMEDIATE_EXIT_OFFSET,
  KVM_RUN_SIZE,
  KVM_SET_USER_MEMORY_REGION,
  KVM_USER_MEM_SLOTS,
  KVM_USERSPACE_MEMORY_REGION_SIZE,
  KVMIO,
} from './uapi.js';

/** The worker's name as KVM passes it; the comm is its first 15 characters, "kvm-nx-lpage-re". */
export const NX_RECOVERY_NAME = 'kvm-nx-lpage-recovery';
/** x86 KVM_MAX_VCPUS, v6.12 */
export const KVM_MAX_VCPUS = 1024;

// include/linux/call_once.h states
export const ONCE_NOT_STARTED = 0;
export const ONCE_RUNNING = 1;
export const ONCE_COMPLETED = 2;

/** struct once (include/linux/call_once.h, v6.14) */
export interface Once {
  state: number;
  readonly lock: Mutex;
}

// ------------------------------------------------------------------ the module

/** Module parameters at load time (kvm.nx_huge_pages=… on the kernel command line). */
export interface KvmOptions {
  /** nx_huge_pages: false ('N', as on the 6.18 host of real-kernels.md), true, or 'never' */
  nxHugePages?: boolean | 'never';
  /** nx_huge_pages_recovery_ratio (default 60) */
  nxHugePagesRecoveryRatio?: number;
  /** nx_huge_pages_recovery_period_ms (default 0: derived from the ratio) */
  nxHugePagesRecoveryPeriodMs?: number;
  /** boot_cpu_has_bug(X86_BUG_ITLB_MULTIHIT) && mitigations on: what "auto" means (default false) */
  itlbMultihit?: boolean;
}

/** What a write to /sys/module/kvm/parameters/<name> can address. */
export type KvmParam = 'nx_huge_pages' | 'nx_huge_pages_recovery_ratio' | 'nx_huge_pages_recovery_period_ms';

/**
 * kvm.ko's global state: the module parameters of arch/x86/kvm/mmu/mmu.c, vm_list and kvm_lock
 * (virt/kvm/kvm_main.c). One per Kernel (registerKvm).
 */
export class KvmModule {
  /** nx_huge_pages */
  nxHugePages: boolean;
  /** nx_hugepage_mitigation_hard_disabled ("never"; 0b210faf3373) */
  hardDisabled = false;
  /** nx_huge_pages_recovery_ratio */
  recoveryRatio: number;
  /** nx_huge_pages_recovery_period_ms */
  recoveryPeriodMs: number;
  /** get_nx_auto_mode() */
  readonly autoMode: boolean;
  /** vm_list: every VM between kvm_create_vm() and kvm_destroy_vm() */
  readonly vmList: Kvm[] = [];
  /** kvm_lock */
  readonly kvmLock = new Mutex('kvm_lock');

  constructor(
    readonly k: Kernel,
    o: KvmOptions = {},
  ) {
    this.autoMode = o.itlbMultihit ?? false;
    this.recoveryRatio = o.nxHugePagesRecoveryRatio ?? 60;
    this.recoveryPeriodMs = o.nxHugePagesRecoveryPeriodMs ?? 0;
    // set_nx_huge_pages() at module load: no VM exists, so "never" always succeeds where it exists
    if (o.nxHugePages === 'never') {
      this.hardDisabled = k.profile.kvmNxHugePagesNever;
      this.nxHugePages = false;
    } else this.nxHugePages = o.nxHugePages ?? false;
  }

  /**
   * models calc_nx_huge_pages_recovery_period(): the recovery period in ms, or null when
   * recovery is disabled (nx_huge_pages off or ratio 0). A zero period is derived from the
   * ratio (one hour / ratio, at least one second).
   */
  recoveryPeriod(): number | null {
    if (!this.nxHugePages || !this.recoveryRatio) return null;
    if (this.recoveryPeriodMs) return this.recoveryPeriodMs;
    return Math.floor((60 * 60 * 1000) / Math.min(this.recoveryRatio, 3600));
  }

  /** models the params' get ops: get_nx_huge_pages() (never / Y / N) and param_get_uint. */
  paramGet(name: KvmParam): string {
    if (name === 'nx_huge_pages') {
      if (this.hardDisabled) return 'never\n';
      return this.nxHugePages ? 'Y\n' : 'N\n';
    }
    return `${name === 'nx_huge_pages_recovery_ratio' ? this.recoveryRatio : this.recoveryPeriodMs}\n`;
  }

  /**
   * A write to /sys/module/kvm/parameters/<name> by the current task: models
   * set_nx_huge_pages() and set_nx_huge_pages_recovery_param(), v6.14. Sleeps (kvm_lock,
   * the 6.17 locked vhost_task_wake), so it runs in a task.
   */
  *paramSet(name: KvmParam, val: string): KGen<Result<void>> {
    if (name === 'nx_huge_pages') return yield* setNxHugePages(this.k, this, val);
    return yield* setNxHugePagesRecoveryParam(this.k, this, name, val);
  }
}

const modules = new Slot<Kernel, KvmModule>('kvm');

/** The kvm module registered on `k`, if any. */
export function kvmModule(k: Kernel): KvmModule | undefined {
  return modules.get(k);
}

/**
 * Load kvm.ko: register /dev/kvm (misc_register(&kvm_dev) in kvm_init()) with the given module
 * parameters. Registering twice is a model bug.
 * @example
 *   const kvm = registerKvm(k);
 *   spawn(k, 'qemu', function* (sys) { const fd = yield* sys.open('/dev/kvm'); … });
 */
export function registerKvm(k: Kernel, o: KvmOptions = {}): KvmModule {
  if (modules.has(k)) throw new Error('kvm: registered twice');
  const mod = new KvmModule(k, o);
  modules.set(k, mod);
  k.devices.set('/dev/kvm', function* (_k, path, flags) {
    return ok(new File(KVM_CHARDEV_OPS, path, flags, mod));
  });
  return mod;
}

// ------------------------------------------------------------------ struct kvm, struct kvm_vcpu

/** A memslot as KVM_SET_USER_MEMORY_REGION installed it. */
export interface Memslot {
  readonly slot: number;
  readonly flags: number;
  readonly guestPhysAddr: number;
  readonly memorySize: number;
  readonly userspaceAddr: number;
}

/** struct kvm: one VM. */
export class Kvm {
  /** kvm->users_count: the VM fd and every vCPU fd hold one */
  usersCount = 1;
  /** kvm->vcpu_array by vcpu id */
  readonly vcpus = new Map<number, KvmVcpu>();
  /** kvm->memslots (address space 0) by slot id */
  readonly memslots = new Map<number, Memslot>();
  /** kvm->arch.nx_once (v6.14) */
  readonly nxOnce: Once = { state: ONCE_NOT_STARTED, lock: new Mutex('kvm->arch.nx_once.lock') };
  /** kvm->arch.nx_huge_page_recovery_thread as a vhost_task (6.13+) */
  nxVhostTask: VhostTask | null = null;
  /** kvm->arch.nx_huge_page_recovery_thread as a kthread (≤ 6.12 mainline) */
  nxKthread: Task | null = null;
  /** kvm->arch.nx_huge_page_last, virtual ns */
  nxLast = 0;
  /** model observation: kvm_recover_nx_huge_pages() runs */
  nxRecoveries = 0;
  /** model observation: every worker creation attempt, by whom, and its errno (0 = success) */
  readonly nxAttempts: { readonly by: Task; readonly errno: number }[] = [];
  /** kvm_destroy_vm() has run */
  destroyed = false;

  constructor(
    readonly module: KvmModule,
    /** kvm->mm: mmgrab(current->mm) in kvm_create_vm() */
    readonly mm: MM,
    /** kvm->userspace_pid: the creator's pid */
    readonly userspacePid: number,
  ) {}

  /** The recovery worker's task (vhost_task or kthread), if it exists. */
  get nxTask(): Task | null {
    return this.nxVhostTask?.task ?? this.nxKthread;
  }
}

/** struct kvm_vcpu */
export class KvmVcpu {
  /** vcpu->mutex: held across every vCPU ioctl */
  readonly mutex = new Mutex('vcpu->mutex');
  /** vcpu->pid: the task that last ran KVM_RUN */
  pid: Task | null = null;
  /** the mmap()able struct kvm_run (its head) */
  readonly run = new DataView(new ArrayBuffer(KVM_RUN_SIZE));
  /** model observation: KVM_RUNs that entered the guest */
  runs = 0;
  constructor(
    readonly kvm: Kvm,
    readonly id: number,
  ) {}
  /** kvm_run.exit_reason */
  get exitReason(): number {
    return this.run.getUint32(KVM_RUN_EXIT_REASON_OFFSET, true);
  }
}

// ------------------------------------------------------------------ small kernel helpers

/** models mutex_lock_killable(): 0, or -EINTR when a fatal signal arrives while waiting. */
function* mutexLockKillable(k: Kernel, m: Mutex): KGen<number> {
  const t = k.current!;
  if (m.owner === t) throw new Error(`recursive mutex_lock of ${m.name} by ${t}`);
  const r = yield* waitEvent(k, m.wq, () => m.owner === null, TASK_KILLABLE);
  if (r < 0) return -Errno.EINTR;
  m.owner = t;
  return 0;
}

/**
 * models schedule_timeout(ns) for a caller that has set its state: sleep until woken or
 * until `ns` of virtual time passed (Infinity = MAX_SCHEDULE_TIMEOUT: no timer). Returns with
 * TASK_RUNNING, like the kernel.
 */
function* scheduleTimeout(k: Kernel, ns: number): KGen<void> {
  const t = k.current!;
  let timer: Timer | null = null;
  if (Number.isFinite(ns)) timer = k.addTimer(k.clock + ns, () => k.wakeUpProcess(t));
  yield Op.Schedule;
  if (timer) k.cancelTimer(timer);
  t.state = TASK_RUNNING;
}

/**
 * models call_once(once, cb), include/linux/call_once.h after 916b7f42b3b3 (v6.14): 0 when
 * already completed; otherwise, under once->lock, run cb and mark the once completed only if
 * cb succeeded, so a failure is retried by the next caller.
 */
function* callOnce(k: Kernel, once: Once, cb: () => KGen<Result<void>>): KGen<Result<void>> {
  if (once.state === ONCE_COMPLETED) return ok();
  yield* mutexLock(k, once.lock);
  const state = once.state;
  if (state !== ONCE_NOT_STARTED) {
    mutexUnlock(k, once.lock);
    if (state !== ONCE_COMPLETED) {
      k.warn('call_once', `state ${state}`);
      return err(Errno.EINVAL);
    }
    return ok();
  }
  once.state = ONCE_RUNNING;
  const r = yield* cb();
  once.state = r.ok ? ONCE_COMPLETED : ONCE_NOT_STARTED;
  mutexUnlock(k, once.lock);
  return r;
}

// ------------------------------------------------------------------ the NX recovery worker

/**
 * models kvm_recover_nx_huge_pages(): zap ratio⁻¹ of the NX-split huge pages. The model has
 * no shadow pages, so this only counts and costs a little.
 */
function kvmRecoverNxHugePages(k: Kernel, kvm: Kvm): void {
  kvm.nxRecoveries++;
  k.charge(k.profile.costs.vhostWork);
}

/**
 * models kvm_nx_huge_page_recovery_worker() as a vhost_task fn, v6.14: called by
 * vhost_task_fn() in TASK_INTERRUPTIBLE; false (sleep until woken) when recovery is disabled
 * (nx_huge_pages = N on the 6.18 host); otherwise sleep until the period since the last run
 * elapsed and return true so signals are checked, or recover and return true.
 */
function nxRecoveryWorker(k: Kernel, kvm: Kvm): (data: unknown) => KGen<boolean> {
  return function* () {
    const period = kvm.module.recoveryPeriod();
    if (period === null) return false;
    const remaining = kvm.nxLast + period * 1_000_000 - k.clock;
    if (remaining > 0) {
      yield* scheduleTimeout(k, remaining);
      return true; // check for signals and come back
    }
    k.current!.state = TASK_RUNNING;
    kvmRecoverNxHugePages(k, kvm);
    kvm.nxLast = k.clock;
    return true;
  };
}

/**
 * models kvm_nx_huge_page_recovery_worker_kill(): the empty kill callback of 6.13 … 6.16. From
 * 6.17/6.18 (with 2280e297ad78's locked vhost_task_wake, in the same series) KVM registers none.
 */
function nxRecoveryKillHandler(k: Kernel): ((data: unknown) => KGen<void>) | null {
  if (k.profile.vhostTaskLockedWake) return null;
  return function* () {};
}

/**
 * models kvm_mmu_start_lpage_recovery(once), v6.14 (916b7f42b3b3): create the vhost_task in the
 * current (vCPU) thread's process, start it, then publish it; the error is the copy_process one.
 */
function* kvmMmuStartLpageRecovery(k: Kernel, kvm: Kvm): KGen<Result<void>> {
  kvm.nxLast = k.clock;
  const r = vhostTaskCreate(k, nxRecoveryWorker(k, kvm), nxRecoveryKillHandler(k), kvm, NX_RECOVERY_NAME);
  kvm.nxAttempts.push({ by: k.current!, errno: r.ok ? 0 : r.errno });
  if (!r.ok) return r;
  vhostTaskStart(k, r.value);
  // "Make the task visible only once it is fully started."
  kvm.nxVhostTask = r.value;
  return ok();
}

/**
 * models kvm_nx_huge_page_recovery_worker(kvm, data) as a kthread (v6.1 … v6.12 mainline):
 * sleep interruptibly until the period elapsed (forever when disabled: MAX_SCHEDULE_TIMEOUT)
 * or kthread_stop(); recover; repeat.
 */
function* nxRecoveryKthreadFn(k: Kernel, kvm: Kvm): KGen<number> {
  const me = k.current!;
  const timeout = (start: number): number => {
    const period = kvm.module.recoveryPeriod();
    return period === null ? Number.POSITIVE_INFINITY : start + period * 1_000_000 - k.clock;
  };
  for (;;) {
    const start = k.clock;
    let remaining = timeout(start);
    me.state = TASK_INTERRUPTIBLE;
    while (!kthreadShouldStop(k) && remaining > 0) {
      yield* scheduleTimeout(k, remaining);
      remaining = timeout(start);
      me.state = TASK_INTERRUPTIBLE;
    }
    me.state = TASK_RUNNING;
    if (kthreadShouldStop(k)) return 0;
    kvmRecoverNxHugePages(k, kvm);
  }
}

/** struct kvm_vm_worker_thread_context */
interface WorkerThreadContext {
  readonly kvm: Kvm;
  readonly parent: Task;
  readonly initDone: Completion;
  err: number;
}

/**
 * models kvm_vm_worker_thread(context), virt/kvm/kvm_main.c v6.1 … v6.12: park itself, join
 * the creator's cgroups (cgroup_attach_task_all), report, wait to be unparked, run the thread
 * fn unless stopped, then move back to its real parent's (kthreadd's) cgroups so it does not
 * linger in the VM's cgroup.
 */
function* kvmVmWorkerThread(k: Kernel, ctx: WorkerThreadContext): KGen<number> {
  const self = k.current!;
  let e = -(yield* kthreadPark(k, self));
  if (e) k.warn('kvm_vm_worker_thread', `kthread_park(current) returned ${-e}`);
  if (!e) {
    const r = cgroupAttachTaskAll(k, ctx.parent, self);
    if (!r.ok) e = r.errno;
  }
  ctx.err = e;
  complete(k, ctx.initDone);
  let ret = e ? -e : 0;
  if (!e) {
    yield* kthreadParkme(k);
    if (!kthreadShouldStop(k)) ret = yield* nxRecoveryKthreadFn(k, ctx.kvm);
  }
  cgroupAttachTaskAll(k, self.realParent, self);
  return ret;
}

/**
 * models kvm_vm_create_worker_thread(kvm, fn, 0, name, &thread), v6.1 … v6.12: kthread_run()
 * named "<name>-<creator's pid>", wait for it to set itself up; the thread is returned parked.
 */
function* kvmVmCreateWorkerThread(k: Kernel, kvm: Kvm, name: string): KGen<Result<Task>> {
  const parent = k.current!;
  const ctx: WorkerThreadContext = {
    kvm,
    parent,
    initDone: new Completion('kvm_vm_worker_thread.init_done'),
    err: 0,
  };
  const r = yield* kthreadRun(k, () => kvmVmWorkerThread(k, ctx), ctx, `${name}-${parent.pid}`);
  if (!r.ok) return r;
  yield* waitForCompletion(k, ctx.initDone);
  return ctx.err ? err(ctx.err as Errno) : r;
}

/**
 * models kvm_mmu_post_init_vm(kvm): nothing when hard-disabled ("never"); otherwise create the
 * worker the way the profile's era does. Called from kvm_create_vm() (…-at-create) or from
 * kvm_arch_vcpu_ioctl_run() (vhost-task-first-run).
 */
function* kvmMmuPostInitVm(k: Kernel, kvm: Kvm): KGen<Result<void>> {
  if (kvm.module.hardDisabled) return ok();
  switch (k.profile.kvmNxWorker) {
    case 'kthread-at-create': {
      const r = yield* kvmVmCreateWorkerThread(k, kvm, NX_RECOVERY_NAME);
      kvm.nxAttempts.push({ by: k.current!, errno: r.ok ? 0 : r.errno });
      if (!r.ok) return r;
      kvm.nxKthread = r.value;
      kthreadUnpark(k, r.value);
      return ok();
    }
    case 'vhost-task-at-create': {
      // d96c77bd4eeb (v6.13): vhost_task_create() still returned NULL on failure → -ENOMEM
      kvm.nxLast = k.clock;
      const r = vhostTaskCreate(k, nxRecoveryWorker(k, kvm), nxRecoveryKillHandler(k), kvm, NX_RECOVERY_NAME);
      kvm.nxAttempts.push({ by: k.current!, errno: r.ok ? 0 : r.errno });
      if (!r.ok) return err(Errno.ENOMEM);
      kvm.nxVhostTask = r.value;
      vhostTaskStart(k, r.value);
      return ok();
    }
    case 'vhost-task-first-run':
      return yield* callOnce(k, kvm.nxOnce, () => kvmMmuStartLpageRecovery(k, kvm));
    case 'none':
      return ok();
  }
}

/**
 * models kvm_wake_nx_recovery_thread(), v6.14: wake the worker only if it exists (before the
 * first KVM_RUN it does not); vhost_task_wake (locked from 6.17) or wake_up_process (kthread).
 */
function* kvmWakeNxRecoveryThread(k: Kernel, kvm: Kvm): KGen<void> {
  if (kvm.nxVhostTask) yield* vhostTaskWake(k, kvm.nxVhostTask);
  else if (kvm.nxKthread) k.wakeUpProcess(kvm.nxKthread);
}

// ------------------------------------------------------------------ module parameters

/** models sysfs_streq(): equal up to one trailing newline on either side. */
function sysfsStreq(a: string, b: string): boolean {
  return a.replace(/\n$/, '') === b.replace(/\n$/, '');
}

/** models kstrtobool(): y/Y/t/T/1, n/N/f/F/0, on/off; else EINVAL. */
export function kstrtobool(s: string): Result<boolean> {
  const c = s.charAt(0);
  if (c !== '' && 'yYtT1'.includes(c)) return ok(true);
  if (c !== '' && 'nNfF0'.includes(c)) return ok(false);
  if (c === 'o' || c === 'O') {
    const d = s[1] ?? '';
    if (d === 'n' || d === 'N') return ok(true);
    if (d === 'f' || d === 'F') return ok(false);
  }
  return err(Errno.EINVAL);
}

/** models kstrtouint(s, 0): decimal, 0x hex or 0 octal, one trailing newline; EINVAL / ERANGE. */
function kstrtouint(s: string): Result<number> {
  const t = s.replace(/\n$/, '');
  let v: number;
  if (/^\+?0[xX][0-9a-fA-F]+$/.test(t)) v = Number.parseInt(t.replace(/^\+?0[xX]/, ''), 16);
  else if (/^\+?0[0-7]*$/.test(t)) v = Number.parseInt(t.replace(/^\+/, '') || '0', 8);
  else if (/^\+?[1-9][0-9]*$/.test(t)) v = Number.parseInt(t, 10);
  else return err(Errno.EINVAL);
  return v > 0xffffffff ? err(Errno.ERANGE) : ok(v);
}

/**
 * models set_nx_huge_pages(val), v6.14: EPERM once hard-disabled; off / force / auto / never
 * (where it exists: EBUSY while any VM exists, else a sticky hard-disable) / a kstrtobool value
 * (so on kernels without "never" it reads as "n": off); on a change every VM is zapped and
 * its recovery thread woken.
 */
function* setNxHugePages(k: Kernel, mod: KvmModule, val: string): KGen<Result<void>> {
  const hasNever = k.profile.kvmNxHugePagesNever;
  if (hasNever && mod.hardDisabled) return err(Errno.EPERM);
  const old = mod.nxHugePages;
  let nv: boolean;
  if (sysfsStreq(val, 'off')) nv = false;
  else if (sysfsStreq(val, 'force')) nv = true;
  else if (sysfsStreq(val, 'auto')) nv = mod.autoMode;
  else if (hasNever && sysfsStreq(val, 'never')) {
    nv = false;
    yield* mutexLock(k, mod.kvmLock);
    if (mod.vmList.length > 0) {
      mutexUnlock(k, mod.kvmLock);
      return err(Errno.EBUSY);
    }
    mod.hardDisabled = true;
    mutexUnlock(k, mod.kvmLock);
  } else {
    const b = kstrtobool(val);
    if (!b.ok) return b;
    nv = b.value;
  }
  mod.nxHugePages = nv;
  if (nv !== old) {
    yield* mutexLock(k, mod.kvmLock);
    // kvm_mmu_zap_all_fast() has nothing to zap in the model
    for (const kvm of [...mod.vmList]) yield* kvmWakeNxRecoveryThread(k, kvm);
    mutexUnlock(k, mod.kvmLock);
  }
  return ok();
}

/**
 * models set_nx_huge_pages_recovery_param(val, kp), v6.14: EPERM once hard-disabled; parse a
 * uint; wake every VM's worker if recovery became enabled or its period shorter.
 */
function* setNxHugePagesRecoveryParam(
  k: Kernel,
  mod: KvmModule,
  name: Exclude<KvmParam, 'nx_huge_pages'>,
  val: string,
): KGen<Result<void>> {
  if (k.profile.kvmNxHugePagesNever && mod.hardDisabled) return err(Errno.EPERM);
  const was = mod.recoveryPeriod();
  const v = kstrtouint(val);
  if (!v.ok) return v;
  if (name === 'nx_huge_pages_recovery_ratio') mod.recoveryRatio = v.value;
  else mod.recoveryPeriodMs = v.value;
  const now = mod.recoveryPeriod();
  if (now !== null && (was === null || was > now)) {
    yield* mutexLock(k, mod.kvmLock);
    for (const kvm of [...mod.vmList]) yield* kvmWakeNxRecoveryThread(k, kvm);
    mutexUnlock(k, mod.kvmLock);
  }
  return ok();
}

// ------------------------------------------------------------------ VM life cycle

/** Is there a free fd below RLIMIT_NOFILE (get_unused_fd_flags)? */
function fdAvailable(t: Task): boolean {
  const files = t.files;
  if (!files) return false;
  const free = files.fds.indexOf(null);
  return (free >= 0 ? free : files.fds.length) < t.signal.rlim[RLIMIT_NOFILE]!.cur;
}

/** Install an anon-inode file as a close-on-exec fd of the current task (anon_inode_getfd(…, O_CLOEXEC)). */
function installFd(k: Kernel, f: File): Result<number> {
  const t = k.current!;
  return t.files!.install(f, true, t.signal.rlim[RLIMIT_NOFILE]!.cur);
}

/**
 * models kvm_dev_ioctl_create_vm(type) → kvm_create_vm(type, fdname), v6.12: reserve an fd
 * (EMFILE), reject an unsupported machine type (EINVAL; only KVM_X86_DEFAULT_VM), mmgrab the
 * caller's mm, kvm_arch_post_init_vm() "just before adding it to the vm_list" (the
 * …-at-create eras create the worker here; a failure fails the ioctl), add to vm_list, and
 * install the "kvm-vm" fd.
 */
function* kvmDevIoctlCreateVm(k: Kernel, mod: KvmModule, type: number): KGen<Result<number>> {
  const me = k.current!;
  if (!fdAvailable(me)) return err(Errno.EMFILE);
  if (type !== 0) return err(Errno.EINVAL);
  if (!me.mm) return err(Errno.EINVAL);
  const mm = me.mm;
  mm.count++; // mmgrab
  const kvm = new Kvm(mod, mm, me.pid);
  if (k.profile.kvmNxWorker !== 'vhost-task-first-run') {
    const r = yield* kvmMmuPostInitVm(k, kvm);
    if (!r.ok) {
      mm.count--;
      return r;
    }
  }
  yield* mutexLock(k, mod.kvmLock);
  mod.vmList.push(kvm);
  mutexUnlock(k, mod.kvmLock);
  const fd = installFd(k, new File(KVM_VM_OPS, 'anon_inode:kvm-vm', 0o2 | O_CLOEXEC, kvm));
  if (!fd.ok) yield* kvmPutKvm(k, kvm);
  return fd;
}

/** models kvm_put_kvm(): the last reference destroys the VM. */
function* kvmPutKvm(k: Kernel, kvm: Kvm): KGen<void> {
  if (--kvm.usersCount === 0) yield* kvmDestroyVm(k, kvm);
}

/**
 * models kvm_destroy_vm(kvm), v6.12: leave vm_list under kvm_lock, kvm_arch_pre_destroy_vm()
 * → kvm_mmu_pre_destroy_vm(): vhost_task_stop() the worker (kthread_stop() for the kthread),
 * then free everything and mmdrop the mm. Runs in whichever task dropped the last reference.
 */
function* kvmDestroyVm(k: Kernel, kvm: Kvm): KGen<void> {
  const mod = kvm.module;
  yield* mutexLock(k, mod.kvmLock);
  const i = mod.vmList.indexOf(kvm);
  if (i >= 0) mod.vmList.splice(i, 1);
  mutexUnlock(k, mod.kvmLock);
  if (kvm.nxVhostTask) yield* vhostTaskStop(k, kvm.nxVhostTask);
  if (kvm.nxKthread) yield* kthreadStop(k, kvm.nxKthread);
  kvm.vcpus.clear();
  kvm.memslots.clear();
  kvm.destroyed = true;
  kvm.mm.count--; // mmdrop
}

/**
 * models kvm_vm_ioctl_create_vcpu(kvm, id), v6.12: EINVAL for id ≥ KVM_MAX_VCPU_IDS or when
 * KVM_MAX_VCPUS exist, EEXIST for a taken id; the "kvm-vcpu:<id>" fd holds a VM reference.
 */
function* kvmVmIoctlCreateVcpu(k: Kernel, kvm: Kvm, id: number): KGen<Result<number>> {
  if (id < 0 || id >= KVM_MAX_VCPU_IDS) return err(Errno.EINVAL);
  if (kvm.vcpus.size >= KVM_MAX_VCPUS) return err(Errno.EINVAL);
  if (kvm.vcpus.has(id)) return err(Errno.EEXIST);
  const vcpu = new KvmVcpu(kvm, id);
  kvm.usersCount++; // kvm_get_kvm
  kvm.vcpus.set(id, vcpu);
  const fd = installFd(k, new File(KVM_VCPU_OPS, `anon_inode:kvm-vcpu:${id}`, 0o2 | O_CLOEXEC, vcpu));
  if (!fd.ok) {
    kvm.vcpus.delete(id);
    yield* kvmPutKvm(k, kvm);
  }
  return fd;
}

/**
 * models kvm_vm_ioctl_set_memory_region() → kvm_set_memory_region(), v6.12: copy the struct
 * from user memory (EFAULT); EINVAL for unknown flags, a slot beyond KVM_USER_MEM_SLOTS,
 * unaligned size/addresses or a wrapping range, and for deleting a slot that does not exist;
 * EEXIST when the range overlaps another slot. Size 0 deletes.
 */
function setUserMemoryRegion(k: Kernel, kvm: Kvm, uaddr: number): Result<number> {
  const v = k.current!.mm?.view(uaddr, KVM_USERSPACE_MEMORY_REGION_SIZE);
  if (!v?.ok) return err(Errno.EFAULT);
  const d = v.value;
  const slot = d.getUint32(0, true);
  const flags = d.getUint32(4, true);
  const gpa = Number(d.getBigUint64(8, true));
  const size = Number(d.getBigUint64(16, true));
  const hva = Number(d.getBigUint64(24, true));
  if (flags & ~(KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY)) return err(Errno.EINVAL);
  // as_id < KVM_ADDRESS_SPACE_NUM (2 on x86: normal and SMM), id < KVM_USER_MEM_SLOTS
  if (slot >>> 16 >= 2 || (slot & 0xffff) >= KVM_USER_MEM_SLOTS) return err(Errno.EINVAL);
  if (size % PAGE_SIZE || gpa % PAGE_SIZE || hva % PAGE_SIZE) return err(Errno.EINVAL);
  if (hva + size > 0x7ffffffff000) return err(Errno.EINVAL); // access_ok
  if (size === 0) {
    if (!kvm.memslots.delete(slot)) return err(Errno.EINVAL);
    return ok(0);
  }
  for (const m of kvm.memslots.values())
    if (m.slot !== slot && gpa < m.guestPhysAddr + m.memorySize && m.guestPhysAddr < gpa + size)
      return err(Errno.EEXIST);
  kvm.memslots.set(slot, { slot, flags, guestPhysAddr: gpa, memorySize: size, userspaceAddr: hva });
  return ok(0);
}

/**
 * models the KVM_RUN case of kvm_vcpu_ioctl() and kvm_arch_vcpu_ioctl_run(), v6.14: EINVAL
 * with an argument; take vcpu->mutex killably (EINTR); record vcpu->pid; in the first-run era
 * kvm_mmu_post_init_vm() first (its error is KVM_RUN's); immediate_exit or a pending signal →
 * KVM_EXIT_INTR and EINTR; otherwise enter the guest, which halts at once → KVM_EXIT_HLT, 0.
 */
function* kvmVcpuIoctlRun(k: Kernel, vcpu: KvmVcpu, arg: number): KGen<Result<number>> {
  if (arg) return err(Errno.EINVAL);
  if ((yield* mutexLockKillable(k, vcpu.mutex)) < 0) return err(Errno.EINTR);
  const me = k.current!;
  vcpu.pid = me; // kvm_arch_vcpu_run_pid_change() is empty on x86
  const r = yield* kvmArchVcpuIoctlRun(k, vcpu, me);
  mutexUnlock(k, vcpu.mutex);
  return r;
}

function* kvmArchVcpuIoctlRun(k: Kernel, vcpu: KvmVcpu, me: Task): KGen<Result<number>> {
  if (k.profile.kvmNxWorker === 'vhost-task-first-run') {
    const r = yield* kvmMmuPostInitVm(k, vcpu.kvm);
    if (!r.ok) return r;
  }
  const run = vcpu.run;
  if (run.getUint8(KVM_RUN_IMMEDIATE_EXIT_OFFSET) || me.sigpending || me.notifySignal) {
    // kvm_handle_signal_exit(): the run loop leaves before entering the guest
    run.setUint32(KVM_RUN_EXIT_REASON_OFFSET, KVM_EXIT_INTR, true);
    if (k.trace.enabled) k.emit('kvm_userspace_exit', `reason KVM_EXIT_INTR (${KVM_EXIT_INTR})`);
    return err(Errno.EINTR);
  }
  k.charge(k.profile.costs.kvmRun);
  vcpu.runs++;
  run.setUint32(KVM_RUN_EXIT_REASON_OFFSET, KVM_EXIT_HLT, true);
  if (k.trace.enabled) k.emit('kvm_userspace_exit', `reason KVM_EXIT_HLT (${KVM_EXIT_HLT})`);
  return ok(0);
}

// ------------------------------------------------------------------ file operations

/** kvm_chardev_ops: /dev/kvm, models kvm_dev_ioctl(), v6.12. */
export const KVM_CHARDEV_OPS: FileOps = {
  name: 'kvm_chardev_ops',
  *ioctl(k, f, cmd, arg) {
    const mod = f.priv as KvmModule;
    switch (cmd) {
      case KVM_GET_API_VERSION:
        return arg ? err(Errno.EINVAL) : ok(KVM_API_VERSION);
      case KVM_CREATE_VM:
        return yield* kvmDevIoctlCreateVm(k, mod, arg);
      case KVM_CHECK_EXTENSION:
        return ok(0); // no capability is modelled
      case KVM_GET_VCPU_MMAP_SIZE:
        // struct kvm_run page + the x86 PIO data page + the coalesced MMIO ring page
        return arg ? err(Errno.EINVAL) : ok(3 * PAGE_SIZE);
      default:
        return err(Errno.EINVAL); // kvm_arch_dev_ioctl()
    }
  },
};

/** kvm_vm_fops: models kvm_vm_ioctl() (EIO from another mm) and kvm_vm_release(). */
export const KVM_VM_OPS: FileOps = {
  name: 'kvm_vm_fops',
  *ioctl(k, f, cmd, arg) {
    const kvm = f.priv as Kvm;
    if (kvm.mm !== k.current!.mm || kvm.destroyed) return err(Errno.EIO);
    switch (cmd) {
      case KVM_CREATE_VCPU:
        return yield* kvmVmIoctlCreateVcpu(k, kvm, arg);
      case KVM_SET_USER_MEMORY_REGION:
        return setUserMemoryRegion(k, kvm, arg);
      default:
        return err(Errno.ENOTTY); // kvm_arch_vm_ioctl()
    }
  },
  *release(k, f) {
    yield* kvmPutKvm(k, f.priv as Kvm);
  },
};

/** kvm_vcpu_fops: models kvm_vcpu_ioctl() (EIO from another mm) and kvm_vcpu_release(). */
export const KVM_VCPU_OPS: FileOps = {
  name: 'kvm_vcpu_fops',
  *ioctl(k, f, cmd, arg) {
    const vcpu = f.priv as KvmVcpu;
    if (vcpu.kvm.mm !== k.current!.mm || vcpu.kvm.destroyed) return err(Errno.EIO);
    if (_IOC_TYPE(cmd) !== KVMIO) return err(Errno.EINVAL);
    if (cmd === KVM_RUN) return yield* kvmVcpuIoctlRun(k, vcpu, arg);
    return err(Errno.EINVAL); // kvm_arch_vcpu_ioctl()
  },
  *release(k, f) {
    yield* kvmPutKvm(k, (f.priv as KvmVcpu).kvm);
  },
};

// ------------------------------------------------------------------ conveniences for programs

/** The struct kvm behind a VM fd of the calling task, or null. */
export function kvmOfFd(sys: Sys, fd: number): Kvm | null {
  const f = sys.task.files?.get(fd);
  return f?.ops === KVM_VM_OPS ? (f.priv as Kvm) : null;
}

/** The struct kvm_vcpu behind a vCPU fd of the calling task, or null. */
export function vcpuOfFd(sys: Sys, fd: number): KvmVcpu | null {
  const f = sys.task.files?.get(fd);
  return f?.ops === KVM_VCPU_OPS ? (f.priv as KvmVcpu) : null;
}

/**
 * ioctl(vcpufd, KVM_RUN, 0), then read kvm_run.exit_reason from the mmap()ed struct, as a VMM
 * does: the exit reason on success, the errno otherwise.
 * @example const r = yield* kvmRunExit(sys, vcpufd); // ok(KVM_EXIT_HLT)
 */
export function* kvmRunExit(sys: Sys, vcpufd: number): KGen<Result<number>> {
  const r = yield* sys.ioctl(vcpufd, KVM_RUN, 0);
  if (!r.ok) return r;
  const vcpu = vcpuOfFd(sys, vcpufd);
  return vcpu ? ok(vcpu.exitReason) : err(Errno.EBADF);
}
