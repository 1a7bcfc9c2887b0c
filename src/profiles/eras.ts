/**
 * The kernel profiles. Each entry states its sources; the switches are documented on
 * Profile. Sources named here are commits and files read for kernel-spec.md and this model.
 */
import { PF_USER_WORKER, PF_USER_WORKER_V5 } from '../kernel/sched-consts.js';
import { DEFAULT_COSTS, type Profile } from './profile.js';

type Switches = Omit<Profile, 'name' | 'version' | 'summary' | 'sources' | 'costs' | 'bugs'> & {
  bugs?: readonly string[];
};

/** The 6.10+ vhost_task kernel, the base the later eras modify. */
const V610: Switches = {
  exitMarksPostcoredump: true,
  vhostNetRingReset: true,
  vhostWorker: 'vhost-task-sigkill',
  vhostTaskGeneration: 'vhost-task-sigkill',
  pfUserWorker: PF_USER_WORKER,
  ioThreadIsUserWorker: true,
  getSignalWorkerExemption: 'user',
  vhostSignalHacks: false,
  attachTaskAllSkipsDfl: false,
  pidsEventsHierarchical: false,
  vhostTaskLockedWake: false,
  vhostTaskErrPtr: false,
  procStatusKthreadLine: true,
  procKthreadFullName: true,
  vhostMultiWorker: true,
  vhostForkOwnerControl: false,
  // kvm_mmu_post_init_vm() → kvm_vm_create_worker_thread() until d96c77bd4eeb (v6.13)
  kvmNxWorker: 'kthread-at-create',
  kvmNxHugePagesNever: true,
  ioWorkerApi: 'io-thread',
  ioWorkerNoSetaffinity: false,
  // mainline 6.10: WORKER_INIT_LIMIT is 6.11 (0453aad676ff)
  ioWorkerInitLimit: null,
  ioWorkerRetryChecksFatal: true,
  ioWorkerRetryBackoffMs: 0,
  ioWqArmsPoll: true,
  ioWqWakeGatesOnRunning: false,
  ioRegFileNowaitNeedsFmode: true,
  ioRingsPackedHeadTail: false,
  ioSqpollNeedsSysAdmin: false,
  ioRegisterIowqMaxWorkers: true,
  // IORING_FEAT_SINGLE_MMAP … IORING_FEAT_RECVSEND_BUNDLE (v6.10)
  ioUringFeatures: 0x7fff,
};

/** io-wq of 6.11+ (and 6.12.y): WORKER_INIT_LIMIT = 3 (0453aad676ff). */
const IOWQ_INIT_LIMIT = { ioWorkerInitLimit: 3 } as const;
/** io-wq of 6.15+: retries back off by init_retries × 5 ms (queue_create_worker_retry). */
const IOWQ_BACKOFF = { ioWorkerInitLimit: 3, ioWorkerRetryBackoffMs: 5 } as const;

/** io_uring before caec5ebe77f9 (v6.5): regular files without a block device support NOWAIT. */
const IO_REG_NOWAIT_BDEV = { ioRegFileNowaitNeedsFmode: false } as const;

/** io-wq before v6.6: a free worker counts only if wake_up_process() woke it. */
const IOWQ_WAKE_GATED = { ioWqWakeGatesOnRunning: true } as const;

/** KVM from 6.14 (and Debian's 6.12.y): the NX recovery vhost_task comes with the first KVM_RUN. */
const KVM_NX_FIRST_RUN = { kvmNxWorker: 'vhost-task-first-run' } as const;

const KTHREAD_ERA: Switches = {
  exitMarksPostcoredump: true,
  vhostNetRingReset: false,
  vhostWorker: 'kthread',
  vhostTaskGeneration: null,
  pfUserWorker: 0,
  ioThreadIsUserWorker: false,
  getSignalWorkerExemption: 'io',
  vhostSignalHacks: false,
  attachTaskAllSkipsDfl: false,
  pidsEventsHierarchical: false,
  vhostTaskLockedWake: false,
  vhostTaskErrPtr: false,
  procStatusKthreadLine: false,
  procKthreadFullName: true,
  vhostMultiWorker: false,
  vhostForkOwnerControl: false,
  kvmNxWorker: 'kthread-at-create',
  kvmNxHugePagesNever: false,
  ioWorkerApi: 'io-thread',
  ioWorkerNoSetaffinity: true,
  ioWorkerInitLimit: null,
  ioWorkerRetryChecksFatal: false,
  ioWorkerRetryBackoffMs: 0,
  ioWqArmsPoll: false,
  ioWqWakeGatesOnRunning: true,
  ioRegFileNowaitNeedsFmode: false,
  ioRingsPackedHeadTail: false,
  ioSqpollNeedsSysAdmin: false,
  ioRegisterIowqMaxWorkers: true,
  // IORING_FEAT_SINGLE_MMAP … IORING_FEAT_RSRC_TAGS (v5.13–5.16)
  ioUringFeatures: 0x7ff,
};

/**
 * 6.17 and later: the fork_owner control (7d9896e9f6d0), locked vhost_task_wake (2280e297ad78),
 * ERR_PTR returns (cb380909ae3b), the KVM NX vhost_task on the first KVM_RUN; io_uring as the
 * 6.18 host shows it.
 */
const V617: Switches = {
  ...V610,
  pidsEventsHierarchical: true,
  vhostTaskLockedWake: true,
  vhostTaskErrPtr: true,
  vhostForkOwnerControl: true,
  vhostMultiWorker: true,
  ...KVM_NX_FIRST_RUN,
  ...IOWQ_BACKOFF,
  // io_uring_setup() on the 6.18 host: features 0x3ffff, sq_off.tail 4
  ioUringFeatures: 0x3ffff,
  ioRingsPackedHeadTail: true,
};

function profile(name: string, version: string, summary: string, sources: string[], sw: Switches): Profile {
  const { bugs, ...rest } = sw;
  return Object.freeze({
    name,
    version,
    summary,
    sources,
    ...rest,
    bugs: new Set(bugs ?? []),
    costs: DEFAULT_COSTS,
  });
}

export const PROFILES: readonly Profile[] = [
  profile(
    'linux-5.10',
    '5.10',
    'kthread vhost workers; io_uring io-wq workers and the SQ thread are kthreads too',
    [
      'drivers/vhost/vhost.c @ v5.10: vhost_dev_set_owner() as in v5.15 (kthread_create "vhost-%d", kthread_use_mm, vhost_attach_cgroups)',
      'kernel/cgroup/cgroup-v1.c @ v5.10: cgroup_attach_task_all() skips cgrp_dfl_root (until 0061270307f2, v5.16)',
      'kernel/fork.c @ v5.10: RLIMIT_NPROC against user->processes before copy_creds (INIT_USER, CAP_SYS_RESOURCE, CAP_SYS_ADMIN exempt)',
      'fs/io-wq.c of 5.10.y (io_identity form: kthread_bind_mask, wq->refs per worker) and 9b8284921513 before it: io_wq_manager kthread, io_wqe_worker-%d/%d kthreads, io_wq_switch_mm, wq->user->processes, io_wq_can_queue',
      'fs/io_uring.c @ v5.10: io_sq_offload_create() needs CAP_SYS_ADMIN for SQPOLL, kthread_create "io_uring-sq"; io_init_wq_offload() per ring; IORING_FEAT_SINGLE_MMAP … IORING_FEAT_POLL_32BITS',
    ],
    {
      ...KTHREAD_ERA,
      attachTaskAllSkipsDfl: true,
      procKthreadFullName: false,
      vhostMultiWorker: false,
      exitMarksPostcoredump: false,
      ioWorkerApi: 'kthread',
      // no io_init_new_worker() nor io_sq_thread() setting it: io-wq-kthread.ts gives its
      // workers PF_NO_SETAFFINITY through kthread_bind_mask(), the SQ thread only with SQ_AFF
      ioWorkerNoSetaffinity: false,
      ioSqpollNeedsSysAdmin: true,
      ioRegisterIowqMaxWorkers: false,
      // IORING_FEAT_SINGLE_MMAP … IORING_FEAT_POLL_32BITS (v5.9); SQPOLL_NONFIXED is v5.11
      ioUringFeatures: 0x7f,
    },
  ),
  profile(
    'linux-5.15',
    '5.15',
    'kthread vhost workers; cgroup_attach_task_all still skips cgroup v2',
    [
      'drivers/vhost/vhost.c @ v5.15 (kthread_create + kthread_use_mm + vhost_attach_cgroups)',
      'kernel/cgroup/cgroup-v1.c @ v5.15: `if (root == &cgrp_dfl_root) continue;` (removed by 0061270307f2 in v5.16)',
      'kernel/fork.c @ 5.15.y (RLIMIT_NPROC checked after copy_creds, 8f2f9c4d82f2 backport)',
      'arch/x86/kvm/mmu/mmu.c @ v5.15: kvm_mmu_post_init_vm() → kvm_vm_create_worker_thread() (kthread); no nx_huge_pages=never',
      'fs/io-wq.c @ v5.15: create_io_thread workers with PF_NO_SETAFFINITY, failed creations retried without limit; fs/io_uring.c io_wq_submit_work blocks the worker (no async hybrid mode before v5.16)',
    ],
    {
      ...KTHREAD_ERA,
      attachTaskAllSkipsDfl: true,
      procKthreadFullName: false,
      vhostMultiWorker: false,
      exitMarksPostcoredump: false,
    },
  ),
  profile(
    'linux-6.1',
    '6.1',
    'kthread vhost workers moved into the owner cgroup on v2 too (Debian 12 stock kernel)',
    [
      '0061270307f2 "cgroup: cgroup-v1: do not exclude cgrp_dfl_root" (v5.16)',
      'observed on Debian 6.1 under QEMU',
      'arch/x86/kvm/mmu/mmu.c @ 6.1.y: NX recovery kthread at VM creation; nx_huge_pages=never backported (0b210faf3373, 6.1.53)',
      'io_uring on Debian 6.1.0-56 under QEMU (conformance iou-*): no PF_NO_SETAFFINITY on io-wq workers, no WORKER_INIT_LIMIT, features 0x1fff, cache-line head/tail',
    ],
    {
      ...KTHREAD_ERA,
      kvmNxHugePagesNever: true,
      vhostMultiWorker: false,
      // 6.1.y stable: 01e68ce08a30 + a5fc1441af77 (6.1.110); observed on Debian 6.1.0-56 under
      // QEMU (conformance iou-wrk-*): no PF_NO_SETAFFINITY, features 0x1fff, sq_off.tail 64, and
      // no WORKER_INIT_LIMIT (a worker refused by RLIMIT_NPROC is retried without end)
      ioWorkerNoSetaffinity: false,
      ioWorkerRetryChecksFatal: true,
      ioWqArmsPoll: true,
      ioUringFeatures: 0x1fff,
    },
  ),
  profile(
    'seed-v5',
    '5.16-rc+V5',
    'the Nov 2021 V5 kernel_worker() series: a separate worker process, signals ignored, autoreaped',
    ['[PATCH V5 01-10/10] "Use copy_process/create_io_thread in vhost layer" (2021-11-21)'],
    {
      ...KTHREAD_ERA,
      exitMarksPostcoredump: false,
      procKthreadFullName: false,
      vhostWorker: 'kernel-worker-v5',
      pfUserWorker: PF_USER_WORKER_V5,
      ioThreadIsUserWorker: true,
      vhostMultiWorker: false,
      // [PATCH V5 07/10]: io-wq and SQPOLL through kernel_worker(); the base is 5.16-rc1
      ioWorkerApi: 'kernel-worker',
      ioWqArmsPoll: true,
    },
  ),
  profile(
    'linux-6.4-rc1',
    '6.4-rc1',
    'vhost_task as a separate process that ignores signals (the ps/freezer regression)',
    ['kernel/vhost_task.c 6.4-rc1 form (removed by f9010dbdce91)'],
    {
      ...V610,
      ...IOWQ_WAKE_GATED,
      ...IO_REG_NOWAIT_BDEV,
      vhostWorker: 'vhost-task-rc1',
      vhostTaskGeneration: 'vhost-task-rc1',
      getSignalWorkerExemption: 'io',
      procStatusKthreadLine: true,
      procKthreadFullName: true,
      kvmNxHugePagesNever: false,
      // one default worker per device (dev->worker); the xarray and worker ioctls are 6.5
      vhostMultiWorker: false,
      ioUringFeatures: 0x3fff,
      bugs: ['vsock-early-queue'],
    },
  ),
  profile(
    'linux-6.4',
    '6.4',
    'vhost_task as a thread of the owner; lingers after SIGKILL until release',
    [
      'f9010dbdce91 (6.4-rc5)',
      '4b13cbef7970 (6.4-rc6, lost wake-up fix)',
      'a284f09effea (early vsock queueing fix)',
      'nx_huge_pages=never (0b210faf3373) is v6.5; 6.4.y got it only in 6.4.16',
    ],
    {
      ...V610,
      ...IOWQ_WAKE_GATED,
      ...IO_REG_NOWAIT_BDEV,
      vhostWorker: 'vhost-task-thread',
      vhostTaskGeneration: 'vhost-task-thread',
      vhostSignalHacks: true,
      kvmNxHugePagesNever: false,
      vhostMultiWorker: false,
      ioUringFeatures: 0x3fff,
    },
  ),
  profile(
    'linux-6.5',
    '6.5',
    'multiple vhost workers per device (vhost-scsi ioctls)',
    ['c1ecd8e95007, 1cdaafa1b8b4, 228a27cf78af, d74b55e65502 (6.5 merge window)'],
    {
      ...V610,
      ...IOWQ_WAKE_GATED,
      vhostWorker: 'vhost-task-thread',
      vhostTaskGeneration: 'vhost-task-thread',
      vhostSignalHacks: true,
      vhostMultiWorker: true,
      ioUringFeatures: 0x3fff,
    },
  ),
  profile(
    'linux-6.10',
    '6.10',
    'vhost_task handles SIGKILL: the worker exits at once',
    ['db5247d9bf5c (vhost_task SIGKILL)', '240a1853b4d2 ("kernel: Remove signal hacks for vhost_tasks")'],
    { ...V610, vhostMultiWorker: true },
  ),
  profile(
    'linux-6.12',
    '6.12',
    'what Debian 12 ships from bookworm-security; KVM NX recovery is a vhost_task',
    [
      'kernel/vhost_task.c @ v6.12 (= v6.10 + nothing)',
      'kernel/cgroup/pids.c @ v6.11 (pids.events.local)',
      'KVM NX recovery as in Debian 6.12.y: the stable backports of d96c77bd4eeb (vhost_task), 931656b9e2ff (first KVM_RUN, call_once) and 916b7f42b3b3 (retry, true errno; 6.12.44)',
      'cb380909ae3b (vhost_task_create returns ERR_PTR) as backported to 6.12.y',
      '7d9896e9f6d0 (fork_owner control) as Debian 6.12.117 ships it (boot/config, vhost.ko parameters)',
      'io_uring on Debian 6.12.117 under QEMU (conformance iou-*): WORKER_INIT_LIMIT 3 (0453aad676ff), features 0xffff, packed head/tail',
    ],
    {
      ...V610,
      pidsEventsHierarchical: true,
      vhostTaskErrPtr: true,
      vhostMultiWorker: true,
      // Debian's 6.12.117 carries the fork_owner control (CONFIG_VHOST_ENABLE_FORK_OWNER_CONTROL=y,
      // vhost.fork_from_owner_default=Y), observed on the real kernel by the conformance suite
      vhostForkOwnerControl: true,
      ...KVM_NX_FIRST_RUN,
      ...IOWQ_INIT_LIMIT,
      // observed on Debian 6.12.117 under QEMU (conformance iou-wrk-*): features 0xffff,
      // sq_off.tail 4, WORKER_INIT_LIMIT 3 (pids.events counts four refusals)
      ioUringFeatures: 0xffff,
      ioRingsPackedHeadTail: true,
    },
  ),
  profile(
    'linux-6.17',
    '6.17',
    'per-device worker mode (fork_owner), task mode by default; locked vhost_task_wake',
    [
      '7d9896e9f6d0 (kthread mode re-added; its cgroup-failure path leaks the worker id, fixed by f3f64c2eaffb in 6.18-rc)',
      '2280e297ad78 (locked wake)',
      'cb380909ae3b (ERR_PTR returns)',
    ],
    {
      ...V617,
      bugs: ['kthread-worker-id-leak'],
    },
  ),
  profile(
    'linux-6.17-kthread',
    '6.17',
    'linux-6.17 with vhost.fork_from_owner_default=0: kthread workers by default',
    ['7d9896e9f6d0 (module parameter fork_from_owner_default)'],
    {
      ...V617,
      vhostWorker: 'kthread',
      bugs: ['kthread-worker-id-leak'],
    },
  ),
  profile(
    'linux-6.18',
    '6.18',
    'the host kernel of this machine kind',
    [
      'f3f64c2eaffb (kthread-mode worker id leak fixed)',
      'io_uring/io-wq.c (queue_create_worker_retry backoff, WORKER_INIT_LIMIT) and io_uring on the 6.18 host (conformance iou-*)',
    ],
    {
      ...V617,
    },
  ),
];

/**
 * Profiles that exist to reproduce a known race, for the explorer and for tests that look for
 * the bug; ordinary test sweeps over PROFILES leave them out because a seeded run may hang.
 */
export const BUG_PROFILES: readonly Profile[] = [
  profile(
    'linux-6.4-rc5',
    '6.4-rc5',
    'vhost_task became a thread (f9010dbdce91) but its loop tests STOP before setting TASK_INTERRUPTIBLE: a stop can be lost',
    [
      'f9010dbdce91 "fork, vhost: Use CLONE_THREAD to fix freezer/ps regression" (6.4-rc5)',
      'the missed wake-up later fixed by 4b13cbef7970 "vhost: Fix worker hangs due to missed wake up calls" (6.4-rc6)',
    ],
    {
      ...V610,
      ...IOWQ_WAKE_GATED,
      ...IO_REG_NOWAIT_BDEV,
      vhostWorker: 'vhost-task-thread',
      vhostTaskGeneration: 'vhost-task-thread',
      vhostSignalHacks: true,
      kvmNxHugePagesNever: false,
      vhostMultiWorker: false,
      // a284f09effea (the early-queue fix) is 6.4-rc6 too
      bugs: ['vhost-task-lost-wakeup', 'vsock-early-queue'],
    },
  ),
  profile(
    'linux-6.18-rc',
    '6.18-rc',
    'linux-6.18 before f3f64c2eaffb: a kthread-mode worker whose cgroup attach fails leaves its id (and the freed worker) in worker_xa',
    [
      '7d9896e9f6d0 "vhost: Reintroduce kthread API and add mode selection" (6.17): vhost_kthread_worker_create() jumps to stop_worker after xa_alloc()',
      'f3f64c2eaffb "vhost: Fix kthread worker cgroup failure handling" (6.18-rc, Nov 2025): free_id: xa_erase()',
    ],
    {
      ...V617,
      bugs: ['kthread-worker-id-leak'],
    },
  ),
];

/** Every profile, the bug-hunting ones last. */
export const ALL_PROFILES: readonly Profile[] = [...PROFILES, ...BUG_PROFILES];

export function findProfile(name: string): Profile | undefined {
  return ALL_PROFILES.find((p) => p.name === name);
}

/** The profile with that name, or an error naming the closest ones. */
export function getProfile(name: string): Profile {
  const p = findProfile(name);
  if (!p) throw new Error(`unknown profile "${name}"; known: ${ALL_PROFILES.map((x) => x.name).join(', ')}`);
  return p;
}
