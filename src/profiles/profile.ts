/**
 * A kernel profile: one kernel era as data. It selects the worker back end and a table of
 * behaviour switches (including known historical bugs, so the explorer can rediscover them)
 * and the virtual-time costs of operations. Code asks the profile; it never compares
 * version numbers.
 */

/** How vhost (and KVM's NX-recovery thread) get their worker. */
export type WorkerBackend =
  /** kthread_create() + kthread_use_mm() + cgroup_attach_task_all() (≤ 6.3, and 6.17 kthread mode) */
  | 'kthread'
  /** the Nov 2021 V5 kernel_worker(): a separate process, signals ignored, autoreaped */
  | 'kernel-worker-v5'
  /** vhost_task as first merged in 6.4-rc1: a separate process reaped with kernel_wait4 */
  | 'vhost-task-rc1'
  /** vhost_task as a thread (6.4-rc5 … 6.9): get_signal polling, lingers after SIGKILL */
  | 'vhost-task-thread'
  /** vhost_task with SIGKILL handling (6.10+) */
  | 'vhost-task-sigkill';

/**
 * How KVM x86 creates its per-VM NX huge page recovery worker (kernel-spec §6.12):
 *  - 'kthread-at-create': kvm_vm_create_worker_thread() at KVM_CREATE_VM, a kthread named
 *    "kvm-nx-lpage-recovery-<pid>" moved into the creator's cgroups (≤ v6.12 mainline);
 *  - 'vhost-task-at-create': a vhost_task created in kvm_mmu_post_init_vm() at KVM_CREATE_VM
 *    (d96c77bd4eeb, v6.13 mainline);
 *  - 'vhost-task-first-run': a vhost_task created by the first KVM_RUN through call_once(),
 *    retried after a failure (931656b9e2ff + 916b7f42b3b3, v6.14; backported to 6.12.y);
 *  - 'none': no recovery worker (non-x86, or KVM without the NX mitigation).
 */
export type KvmNxWorker = 'kthread-at-create' | 'vhost-task-at-create' | 'vhost-task-first-run' | 'none';

/**
 * How io_uring creates its io-wq workers and SQPOLL thread (kernel-spec §8, §5.1):
 *  - 'io-thread': create_io_thread(), a PF_IO_WORKER thread of the submitter (v5.12+);
 *  - 'kernel-worker': the V5 series' kernel_worker(fn, arg, node, IO_WQ_CLONE_FLAGS,
 *    KERN_WORKER_IO) + kernel_worker_start() ([PATCH V5 07/10], create_io_thread removed by 08);
 *  - 'kthread': one io-wq per ring whose `io_wq_manager` kthread creates `io_wqe_worker-*`
 *    kthreads that take on the submitter's mm and creds, and an `io_uring-sq` kthread for
 *    SQPOLL (≤ v5.11; fs/io-wq.c and fs/io_uring.c of v5.10).
 */
export type IoWorkerApi = 'io-thread' | 'kernel-worker' | 'kthread';

export interface Costs {
  /** entering and leaving any syscall */
  syscall: number;
  /** a context switch */
  contextSwitch: number;
  /** try_to_wake_up */
  wakeup: number;
  /** copy_process of a thread (CLONE_VM|CLONE_THREAD) */
  cloneThread: number;
  /** copy_process of a process (dup_mm) */
  cloneProcess: number;
  /** do_exit through exit_notify */
  exit: number;
  /** release_task / reaping */
  release: number;
  /** running one vhost work item */
  vhostWork: number;
  /** one KVM_RUN that enters the guest until it exits (guest time + entry/exit), worker creation excluded */
  kvmRun: number;
}

export interface Profile {
  /** e.g. "linux-6.12" */
  readonly name: string;
  /** e.g. "6.12" */
  readonly version: string;
  /** one line: what this era is */
  readonly summary: string;
  /** where each switch comes from */
  readonly sources: readonly string[];
  /** the worker back end vhost uses by default (6.17: per device, see vhostForkOwnerControl) */
  readonly vhostWorker: WorkerBackend;
  /** vhost_task generation for other users (KVM NX recovery) where it exists, else null */
  readonly vhostTaskGeneration: Exclude<WorkerBackend, 'kthread' | 'kernel-worker-v5'> | null;
  /** PF_USER_WORKER's value; 0 when the flag does not exist */
  readonly pfUserWorker: number;
  /** create_io_thread also sets user_worker (v6.4+) */
  readonly ioThreadIsUserWorker: boolean;
  /**
   * get_signal's "return fatal to the caller instead of do_group_exit" test: 'io' tests
   * PF_IO_WORKER (≤ 6.4-rc4), 'user' tests PF_USER_WORKER (f9010dbdce91, 6.4-rc5+).
   */
  readonly getSignalWorkerExemption: 'io' | 'user';
  /**
   * 6.4-rc5 … 6.9: zap_other_threads() and coredump's zap_process() do not count a vhost
   * user worker (PF_USER_WORKER without PF_IO_WORKER), so exec and coredump do not wait for it.
   * Removed by 240a1853b4d2 (6.10).
   */
  readonly vhostSignalHacks: boolean;
  /**
   * cgroup_attach_task_all() skips the cgroup v2 default hierarchy (the `cgrp_dfl_root` test
   * removed late 2021).
   */
  readonly attachTaskAllSkipsDfl: boolean;
  /**
   * do_exit marks PF_POSTCOREDUMP (coredump_task_exit, d67e03e36161, v5.17) and PF_NOFREEZE
   * (do_task_dead, f5d39b020809, v6.1), visible in a zombie's /proc stat flags
   */
  readonly exitMarksPostcoredump: boolean;
  /** vhost-net offers VIRTIO_F_RING_RESET (bit 40); absent on 6.1 (conformance: debian-6.1) */
  readonly vhostNetRingReset: boolean;
  /** pids.events counts at the limiting cgroup and its ancestors, plus pids.events.local (v6.11+) */
  readonly pidsEventsHierarchical: boolean;
  /** vhost_task_wake takes exit_mutex and refuses to wake a stopped/killed task (2280e297ad78) */
  readonly vhostTaskLockedWake: boolean;
  /** vhost_task_create returns ERR_PTR (cb380909ae3b) instead of NULL */
  readonly vhostTaskErrPtr: boolean;
  /**
   * Multiple vhost workers per device (v6.5+, c1ecd8e95007/1cdaafa1b8b4/228a27cf78af/
   * d74b55e65502): vhost-scsi routes VHOST_NEW_WORKER / FREE_WORKER / ATTACH_VRING_WORKER /
   * GET_VRING_WORKER to vhost_worker_ioctl(); before 6.5 those numbers do not exist and fall
   * into vhost_dev_ioctl() / vhost_vring_ioctl() like any unknown ioctl.
   */
  readonly vhostMultiWorker: boolean;
  /** VHOST_SET/GET_FORK_FROM_OWNER and the fork_from_owner_default parameter exist (6.17+) */
  readonly vhostForkOwnerControl: boolean;
  /** how KVM x86 creates its NX huge page recovery worker (see KvmNxWorker) */
  readonly kvmNxWorker: KvmNxWorker;
  /**
   * kvm.nx_huge_pages accepts "never" (0b210faf3373, v6.5; backported to 6.1.y and 6.4.y):
   * sticky hard-disable, EBUSY while a VM exists, EPERM for later parameter writes. Without
   * it "never" parses as kstrtobool("n…") = off.
   */
  readonly kvmNxHugePagesNever: boolean;
  /** /proc shows a kthread's full name, not the 15-character comm (d6986ce24fc0, v5.17) */
  readonly procKthreadFullName: boolean;
  /** /proc/<pid>/status has a "Kthread:" line (522dc4e5f51e, v6.4) */
  readonly procStatusKthreadLine: boolean;
  /** how io-wq workers and the SQPOLL thread are created (see IoWorkerApi) */
  readonly ioWorkerApi: IoWorkerApi;
  /**
   * io_init_new_worker() and io_sq_thread() set PF_NO_SETAFFINITY; dropped by 01e68ce08a30
   * and a5fc1441af77 (v6.3; in 6.1.y from 6.1.110)
   */
  readonly ioWorkerNoSetaffinity: boolean;
  /**
   * WORKER_INIT_LIMIT: io_should_retry_thread() gives up after this many retries of a failed
   * worker creation (0453aad676ff, v6.11; in 6.1.y); null = retried for as long as it fails
   */
  readonly ioWorkerInitLimit: number | null;
  /**
   * io_should_retry_thread() refuses while the task has a fatal signal pending ("Prevent
   * perpetual task_work retry"): absent from fs/io-wq.c of v5.15–5.17, present in io_uring/io-wq.c
   * of v6.5+ and in 6.1.y (the commit between them is not verified)
   */
  readonly ioWorkerRetryChecksFatal: boolean;
  /**
   * queue_create_worker_retry(): a retry is delayed init_retries × this many ms ("io-wq:
   * backoff when retrying worker creation"); 0 = schedule_work() at once
   */
  readonly ioWorkerRetryBackoffMs: number;
  /**
   * io_wq_submit_work() issues a forced-async request on a pollable file non-blocking and
   * arms poll instead of blocking the worker ("io_uring: implement async hybrid mode for
   * pollable requests", v5.16)
   */
  readonly ioWqArmsPoll: boolean;
  /**
   * io_wq_activate_free_worker() counts a free worker only when wake_up_process() woke it: a
   * free worker that is already running (just created, or finishing its work) does not count,
   * so io_wq_enqueue() creates another — the IOSQE_ASYNC worker explosion of liburing issues
   * 349/420. "io_uring/io-wq: don't gate worker wake up success on wake_up_process()" (Jens
   * Axboe, v6.6) counts any free worker of the account.
   */
  readonly ioWqWakeGatesOnRunning: boolean;
  /**
   * io_file_supports_nowait() takes a regular file only when it has FMODE_NOWAIT (or
   * O_NONBLOCK): caec5ebe77f9 "io_uring: rely solely on FMODE_NOWAIT" (v6.5). Before, every
   * regular file on a super block without a block device (tmpfs) or with a NOWAIT-capable
   * queue was taken (__io_file_supports_nowait / io_bdev_nowait), so a read of a tmpfs file
   * was issued inline with IOCB_NOWAIT; from v6.5 tmpfs, which sets no FMODE_NOWAIT, is
   * punted to io-wq
   */
  readonly ioRegFileNowaitNeedsFmode: boolean;
  /**
   * struct io_uring {head, tail} in struct io_rings without ____cacheline_aligned_in_smp:
   * sq_off.tail = 4 (observed on Debian 6.12 and the 6.18 host) instead of 64 (5.x … 6.2
   * sources, syzkaller's offsets; observed on Debian 6.1); the release that changed it is not
   * verified, so 6.4–6.10 keep the old layout
   */
  readonly ioRingsPackedHeadTail: boolean;
  /**
   * IORING_SETUP_SQPOLL needs CAP_SYS_ADMIN (EPERM without), as io_sq_offload_create() of
   * v5.10 checks; v5.11 accepts CAP_SYS_NICE too, and v5.12 (SQ thread made by
   * create_io_thread) drops the check
   */
  readonly ioSqpollNeedsSysAdmin: boolean;
  /**
   * IORING_REGISTER_IOWQ_MAX_WORKERS exists ("io-wq: provide a way to limit max number of
   * workers", v5.15); before it the opcode is
   * past IORING_REGISTER_LAST and io_uring_register() fails with EINVAL
   */
  readonly ioRegisterIowqMaxWorkers: boolean;
  /** the IORING_FEAT_* bits io_uring_setup() reports */
  readonly ioUringFeatures: number;
  /** known bugs present in this era, by name (e.g. "vhost-task-lost-wakeup") */
  readonly bugs: ReadonlySet<string>;
  readonly costs: Costs;
}

/** Costs measured on a 6.18 host of this kind (see DESIGN.md, Performance); ns. */
export const DEFAULT_COSTS: Costs = {
  syscall: 150,
  contextSwitch: 1_200,
  wakeup: 400,
  cloneThread: 9_000,
  cloneProcess: 70_000,
  exit: 4_000,
  release: 1_500,
  vhostWork: 800,
  // later KVM_RUNs of a halting guest ≈ 8 µs on the 6.18 host (real-kernels.md), syscall included
  kvmRun: 7_500,
};
