/**
 * What /dev/vhost-net looks like from userspace on each kernel profile: ONE table of the
 * per-profile differences that the vhost-net tests (net.test.ts, e2e.test.ts) read, so no
 * test scatters `if (profile === …)`. Each row cites the kernel source it comes from
 * (kernel-spec.md §4, §6, §9, §10 give the verified text).
 *
 * A column is a fact a userspace observer can check: what VHOST_SET_OWNER creates, where the
 * worker lives in /proc, which errno SET_OWNER returns when a limit is hit, what a SIGKILL of
 * the owner does to the device, and whether the 6.17 fork-owner ioctls exist.
 */
import { Errno } from '../kernel/errno.js';
import { PROFILES } from '../profiles/eras.js';

/** What VHOST_SET_OWNER creates. */
export type WorkerKind =
  /** a kthread forked by kthreadd: `[vhost-N]`, PPid 2, root's creds, no RLIMIT_NPROC */
  | 'kthread'
  /** a separate process forked from the SET_OWNER thread, signals ignored (V5, 6.4-rc1) */
  | 'process'
  /** a thread of the owner (CLONE_THREAD vhost_task, 6.4-rc5+) */
  | 'thread';

/** Whose child the worker is, as `PPid:` in /proc/<tid>/status shows it. */
export type WorkerParent =
  /** kthreadd, PPid 2 */
  | 'kthreadd'
  /** the process that issued SET_OWNER */
  | 'owner'
  /** the owner's own parent (CLONE_THREAD takes the creator's real_parent) */
  | 'owner-parent';

/**
 * What a SIGKILL of the owner does to a device whose fd another process still holds:
 *  - 'serves-until-release': the worker ignores the signal and keeps processing kicks until
 *    the last fd is closed (kthreads; V5 and 6.4-rc1 workers, which ignore all signals);
 *  - 'lingers-until-release': the worker thread takes the group SIGKILL, only notes it
 *    ("dead"), and keeps processing kicks until release stops it (6.4-rc5 … 6.9);
 *  - 'exits-at-once': the worker leaves its loop, runs vhost_worker_killed (detaching every
 *    vq) and exits; later kicks are not processed (6.10+).
 */
export type SigkillClass = 'serves-until-release' | 'lingers-until-release' | 'exits-at-once';

/** 'ok' or the errno the ioctl returns. */
export type Outcome = 'ok' | Errno;

export interface VhostNetExpectation {
  readonly profile: string;
  /** what VHOST_SET_OWNER creates by default (§10 item 25) */
  readonly workerKind: WorkerKind;
  /** PPid of the worker (§10 item 25; item 6 for the thread case) */
  readonly workerParent: WorkerParent;
  /** cgroup v2 placement of the worker: the owner's, or the root (attach skipped v2) */
  readonly workerCgroup: 'owner' | 'root';
  /** whose RLIMIT_NPROC count the worker is charged to */
  readonly nprocChargedTo: 'root' | 'owner';
  /** /proc/<tid>/status SigBlk of the worker (§10 item 5 for vhost_task threads) */
  readonly workerSigBlk: string;
  /** /proc/<tid>/status SigIgn of the worker when the owner ignores nothing */
  readonly workerSigIgn: string;
  /** VHOST_SET_OWNER by a non-root owner whose RLIMIT_NPROC is used up (§10 item 28) */
  readonly setOwnerNprocExhausted: Outcome;
  /** VHOST_SET_OWNER with kernel.threads-max reached (no exemption, kthreads included) */
  readonly setOwnerThreadsMaxExhausted: Outcome;
  /** VHOST_SET_OWNER with the owner's cgroup at pids.max */
  readonly setOwnerPidsMaxExhausted: Outcome;
  /**
   * VHOST_SET_OWNER after the owner unshare(CLONE_NEWPID): CLONE_THREAD across pid
   * namespaces is refused by copy_process (§1.3 rule 6); null where the worker is a separate
   * process (it would become the new namespace's pid 1: not modelled here)
   */
  readonly setOwnerAfterUnsharePid: Outcome | null;
  /** §10 item 31 */
  readonly sigkill: SigkillClass;
  /**
   * vhost_task_wake() on the device worker's vhost_task after vhost_task_stop() (§10 item 34):
   * 'warns' = 6.17+ locked wake (WARN, no wake-up), 'wakes' = plain wake_up_process of a task
   * that is gone (harmless); null where the default worker is not a vhost_task
   */
  readonly vhostTaskWakeAfterStop: 'warns' | 'wakes' | null;
  /** VHOST_SET/GET_FORK_FROM_OWNER exist (6.17+, CONFIG_VHOST_ENABLE_FORK_OWNER_CONTROL) */
  readonly forkOwnerIoctls: boolean;
  /** VHOST_GET_FORK_FROM_OWNER on a fresh device (the module's fork_from_owner_default); null if absent */
  readonly forkOwnerDefault: 0 | 1 | null;
  /** the kernel source this row comes from */
  readonly source: string;
}

const ALL = 'ffffffffffffffff';
const NONE = '0000000000000000';
/** every signal blocked except SIGKILL (9) and SIGSTOP (19): siginitsetinv(KILL|STOP) */
const ALL_BUT_KILL_STOP = 'fffffffffffbfeff';

/** kthread workers: kthread_create() from kthreadd, kthread_use_mm(), cgroup_attach_task_all(). */
const KTHREAD = {
  workerKind: 'kthread',
  workerParent: 'kthreadd',
  workerCgroup: 'owner',
  nprocChargedTo: 'root',
  // kthreadd: ignore_signals() (all SIG_IGN), blocked mask empty, inherited by its children
  workerSigBlk: NONE,
  workerSigIgn: ALL,
  setOwnerNprocExhausted: 'ok',
  // kthread_create_on_node() → kernel_thread() still passes copy_process's threads-max test;
  // vhost_dev_set_owner propagates PTR_ERR(worker)
  setOwnerThreadsMaxExhausted: Errno.EAGAIN,
  // kthreadd forks in the root cgroup; the later migration is never checked against pids.max
  setOwnerPidsMaxExhausted: 'ok',
  setOwnerAfterUnsharePid: 'ok',
  sigkill: 'serves-until-release',
  vhostTaskWakeAfterStop: null,
  forkOwnerIoctls: false,
  forkOwnerDefault: null,
} as const satisfies Omit<VhostNetExpectation, 'profile' | 'source'>;

/** vhost_task threads (6.4-rc5+): CLONE_THREAD|CLONE_SIGHAND, block_signals, ENOMEM on any failure. */
const VHOST_TASK_THREAD = {
  workerKind: 'thread',
  workerParent: 'owner-parent',
  workerCgroup: 'owner',
  nprocChargedTo: 'owner',
  workerSigBlk: ALL_BUT_KILL_STOP,
  // CLONE_SIGHAND: the owner's dispositions (none ignored here)
  workerSigIgn: NONE,
  // vhost_worker_create() returns NULL on any vhost_task_create() failure → -ENOMEM
  setOwnerNprocExhausted: Errno.ENOMEM,
  setOwnerThreadsMaxExhausted: Errno.ENOMEM,
  setOwnerPidsMaxExhausted: Errno.ENOMEM,
  setOwnerAfterUnsharePid: Errno.ENOMEM,
  sigkill: 'lingers-until-release',
  // ≤ 6.16 vhost_task_wake() is a plain wake_up_process()
  vhostTaskWakeAfterStop: 'wakes',
  forkOwnerIoctls: false,
  forkOwnerDefault: null,
} as const satisfies Omit<VhostNetExpectation, 'profile' | 'source'>;

/** The table: one row per profile of src/profiles/eras.ts. */
export const VHOST_NET_EXPECTATIONS: readonly VhostNetExpectation[] = [
  {
    // drivers/vhost/vhost.c @ v5.10: the same kthread worker as v5.15 (kthread_create(vhost_worker,
    // dev, "vhost-%d", current->pid), kthread_use_mm, vhost_attach_cgroups()), and
    // cgroup_attach_task_all() skips cgrp_dfl_root there too
    ...KTHREAD,
    profile: 'linux-5.10',
    workerCgroup: 'root',
    source: 'drivers/vhost/vhost.c @ v5.10 vhost_dev_set_owner/vhost_worker; cgroup-v1.c @ v5.10',
  },
  {
    // drivers/vhost/vhost.c @ v5.15 vhost_dev_set_owner(): kthread_create(vhost_worker, dev,
    // "vhost-%d", current->pid), vhost_attach_cgroups() → cgroup_attach_task_all(), which in
    // kernel/cgroup/cgroup-v1.c @ v5.15 still skips cgrp_dfl_root (removed by 0061270307f2, v5.16),
    // so the kthread stays in the v2 root cgroup
    ...KTHREAD,
    profile: 'linux-5.15',
    workerCgroup: 'root',
    source: 'drivers/vhost/vhost.c @ v5.15 vhost_dev_set_owner/vhost_worker; cgroup-v1.c @ v5.15',
  },
  {
    // Debian 12's 6.1: same kthread worker; cgroup_attach_task_all() now covers v2 (0061270307f2),
    // observed on a real 6.1 kernel under QEMU (kernel-spec §2.5)
    ...KTHREAD,
    profile: 'linux-6.1',
    source: 'drivers/vhost/vhost.c @ v6.1 (kthread worker); 0061270307f2 (v5.16)',
  },
  {
    // [PATCH V5 10/10] "vhost: use kernel_worker to check RLIMITs": kernel_worker(CLONE_FS,
    // KERN_WORKER_NO_FILES|KERN_WORKER_SIG_IGN), a child process of the SET_OWNER thread whose
    // copy_process error (EAGAIN for RLIMIT_NPROC / pids.max) vhost_worker_create propagates;
    // [PATCH V5 02/10] sets PF_USER_WORKER only, the blocked mask stays the creator's (blocking
    // remains tied to KERN_WORKER_IO); [PATCH V5 04/10] ignore_signals() inside copy_process
    profile: 'seed-v5',
    workerKind: 'process',
    workerParent: 'owner',
    workerCgroup: 'owner',
    nprocChargedTo: 'owner',
    workerSigBlk: NONE,
    workerSigIgn: ALL,
    setOwnerNprocExhausted: Errno.EAGAIN,
    setOwnerThreadsMaxExhausted: Errno.EAGAIN,
    setOwnerPidsMaxExhausted: Errno.EAGAIN,
    setOwnerAfterUnsharePid: null,
    sigkill: 'serves-until-release',
    vhostTaskWakeAfterStop: null,
    forkOwnerIoctls: false,
    forkOwnerDefault: null,
    source: '[PATCH V5 02/10, 04/10, 10/10] (2021-11-21)',
  },
  {
    // kernel/vhost_task.c 6.4-rc1 (as removed by f9010dbdce91): CLONE_FS|CLONE_UNTRACED|CLONE_VM,
    // exit_signal 0, user_worker + no_files + ignore_signals; copy_process @ 6.4-rc1 blocks
    // signals for io_thread only (f9010dbdce91 moved siginitsetinv to block_signals);
    // vhost_worker_create(): `if (!vtsk) goto free_worker` → -ENOMEM
    profile: 'linux-6.4-rc1',
    workerKind: 'process',
    workerParent: 'owner',
    workerCgroup: 'owner',
    nprocChargedTo: 'owner',
    workerSigBlk: NONE,
    workerSigIgn: ALL,
    setOwnerNprocExhausted: Errno.ENOMEM,
    setOwnerThreadsMaxExhausted: Errno.ENOMEM,
    setOwnerPidsMaxExhausted: Errno.ENOMEM,
    setOwnerAfterUnsharePid: null,
    sigkill: 'serves-until-release',
    vhostTaskWakeAfterStop: 'wakes',
    forkOwnerIoctls: false,
    forkOwnerDefault: null,
    source: 'kernel/vhost_task.c 6.4-rc1 form; f9010dbdce91 diff of kernel/fork.c',
  },
  {
    // f9010dbdce91 (6.4-rc5): CLONE_THREAD|CLONE_SIGHAND, block_signals; vhost_worker() calls
    // get_signal once, remembers `dead` and keeps running work until vhost_task_stop()
    ...VHOST_TASK_THREAD,
    profile: 'linux-6.4',
    source: 'kernel/vhost_task.c + drivers/vhost/vhost.c @ v6.4 (f9010dbdce91, 4b13cbef7970)',
  },
  {
    // 6.5 multi-worker rework (1cdaafa1b8b4 …) keeps the 6.4 vhost_task_fn loop
    ...VHOST_TASK_THREAD,
    profile: 'linux-6.5',
    source: 'kernel/vhost_task.c @ v6.5..v6.9 (torvalds 602bf183)',
  },
  {
    // db5247d9bf5c: vhost_task_fn leaves its loop on a fatal get_signal and calls
    // handle_sigkill = vhost_worker_killed(), which detaches the worker from every vq
    ...VHOST_TASK_THREAD,
    profile: 'linux-6.10',
    sigkill: 'exits-at-once',
    source: 'kernel/vhost_task.c @ v6.10 (db5247d9bf5c); drivers/vhost/vhost.c vhost_worker_killed()',
  },
  {
    ...VHOST_TASK_THREAD,
    profile: 'linux-6.12',
    sigkill: 'exits-at-once',
    // Debian's 6.12.117 ships the fork_owner control (7d9896e9f6d0 backport, Kconfig =y,
    // fork_from_owner_default = Y): seen on the real kernel by the conformance suite
    forkOwnerIoctls: true,
    forkOwnerDefault: 1,
    source:
      'kernel/vhost_task.c @ v6.12 (= v6.10); drivers/vhost/vhost.c @ v6.12 + Debian 6.12.117 fork_owner backport',
  },
  {
    // 7d9896e9f6d0 (6.17): fork_owner per device, VHOST_SET/GET_FORK_FROM_OWNER (0x84/0x85 after
    // the renumbering fix), module parameter fork_from_owner_default = true (task mode)
    ...VHOST_TASK_THREAD,
    profile: 'linux-6.17',
    sigkill: 'exits-at-once',
    // 2280e297ad78: vhost_task_wake() takes exit_mutex and WARNs on a stopped task
    vhostTaskWakeAfterStop: 'warns',
    forkOwnerIoctls: true,
    forkOwnerDefault: 1,
    source: 'drivers/vhost/vhost.c @ v6.17 (7d9896e9f6d0) vhost_dev_ioctl/vhost_worker_create',
  },
  {
    // linux-6.17 booted with vhost.fork_from_owner_default=0: kthread_ops by default;
    // vhost_worker_create() returns NULL when ops->create fails, so every SET_OWNER failure is
    // -ENOMEM (drivers/vhost/vhost.c @ v6.18.38 vhost_worker_create/vhost_dev_set_owner)
    ...KTHREAD,
    profile: 'linux-6.17-kthread',
    setOwnerThreadsMaxExhausted: Errno.ENOMEM,
    forkOwnerIoctls: true,
    forkOwnerDefault: 0,
    source: 'drivers/vhost/vhost.c @ v6.17 (7d9896e9f6d0) kthread_ops, fork_from_owner_default=0',
  },
  {
    ...VHOST_TASK_THREAD,
    profile: 'linux-6.18',
    sigkill: 'exits-at-once',
    // 2280e297ad78: vhost_task_wake() takes exit_mutex and WARNs on a stopped task
    vhostTaskWakeAfterStop: 'warns',
    forkOwnerIoctls: true,
    forkOwnerDefault: 1,
    source: 'drivers/vhost/vhost.c @ v6.18 (f3f64c2eaffb); kernel/vhost_task.c @ v6.18 (2280e297ad78)',
  },
];

/** The row of `profile`; throws for a profile the table does not cover. */
export function vhostNetExpectation(profile: string): VhostNetExpectation {
  const row = VHOST_NET_EXPECTATIONS.find((r) => r.profile === profile);
  if (!row) throw new Error(`no vhost-net expectations for profile ${profile}`);
  return row;
}

/** Every profile name, in eras.ts order (the table must cover them all). */
export const PROFILE_NAMES: readonly string[] = PROFILES.map((p) => p.name);
