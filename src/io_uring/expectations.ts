/**
 * What io_uring's workers look like from userspace on each kernel profile: ONE table of the
 * per-profile differences that the io_uring tests read, so no test scatters
 * `if (profile === …)`. Each row cites the kernel source it comes from.
 */
import { Errno } from '../kernel/errno.js';
import { PROFILES } from '../profiles/eras.js';

export interface IoUringExpectation {
  readonly profile: string;
  /**
   * what an io-wq worker is: a thread of the submitter (create_io_thread, V5 kernel_worker
   * with CLONE_THREAD), or a kthread forked by kthreadd (≤ 5.11)
   */
  readonly workerKind: 'thread' | 'kthread';
  /** the comm of an io-wq worker of a submitter with that pid, by the account it was made for */
  readonly workerComm: (pid: number, acct: 0 | 1) => string;
  /** the comm of the SQPOLL thread of a ring created by that pid */
  readonly sqThreadComm: (pid: number) => string;
  /** tasks io_uring_setup() creates without SQPOLL (the io_wq_manager and its fixed worker on 5.10) */
  readonly setupTasks: number;
  /** IORING_SETUP_SQPOLL by a user without CAP_SYS_ADMIN */
  readonly sqpollUnprivileged: 'ok' | Errno;
  /** IORING_REGISTER_IOWQ_MAX_WORKERS */
  readonly registerIowqMaxWorkers: 'ok' | Errno;
  /** io-wq workers 1 ms after n IOSQE_ASYNC reads of an empty pipe, submitted in one io_uring_enter */
  readonly burstWorkers: (n: number) => number;
  /** the kernel source this row comes from */
  readonly source: string;
}

/** create_io_thread()/kernel_worker() threads named iou-wrk-<pid>, iou-sqp-<pid> (5.12+, V5). */
const IO_THREAD = {
  workerKind: 'thread',
  workerComm: (pid: number) => `iou-wrk-${pid}`,
  sqThreadComm: (pid: number) => `iou-sqp-${pid}`,
  setupTasks: 0,
  sqpollUnprivileged: 'ok',
  registerIowqMaxWorkers: 'ok',
  // v6.6+ io_wq_activate_free_worker(): the first worker is on the free list from its creation
  // and counts although it is running, so every read is queued to it (and it arms poll)
  burstWorkers: () => 1,
} as const satisfies Omit<IoUringExpectation, 'profile' | 'source'>;

/** Before v6.6 a free worker counts only if wake_up_process() woke it: one worker per read. */
const IO_THREAD_GATED = { ...IO_THREAD, burstWorkers: (n: number) => n } as const;

const THREAD_ERA_SOURCE = 'io_uring/io-wq.c, sqpoll.c, register.c (create_io_thread, io_wq_max_workers)';

/** The table: one row per profile of src/profiles/eras.ts. */
export const IO_URING_EXPECTATIONS: readonly IoUringExpectation[] = [
  {
    // fs/io-wq.c @ v5.10: kthread_create(io_wq_manager, wq, "io_wq_manager"), which creates the
    // fixed bound worker before io_wq_create() returns; kthread_create_on_node(io_wqe_worker,
    // worker, node, "io_wqe_worker-%d/%d", index, node). fs/io_uring.c @ v5.10:
    // io_sq_offload_create() needs CAP_SYS_ADMIN and makes kthread "io_uring-sq";
    // IORING_REGISTER_IOWQ_MAX_WORKERS (v5.15) is past IORING_REGISTER_LAST
    profile: 'linux-5.10',
    workerKind: 'kthread',
    // "io_wqe_worker-<acct>/0" cut to TASK_COMM_LEN - 1 (the full name in /proc is v5.17)
    workerComm: (_pid: number, acct: 0 | 1) => `io_wqe_worker-${acct}`,
    sqThreadComm: () => 'io_uring-sq',
    setupTasks: 2,
    sqpollUnprivileged: Errno.EPERM,
    registerIowqMaxWorkers: Errno.EINVAL,
    // the fixed bound worker of io_uring_setup, then the manager's first pass: one worker per
    // account that needs one (io_wqe_need_worker); its next pass is HZ later
    burstWorkers: (n: number) => 1 + Math.min(n, 2),
    source: 'fs/io-wq.c of 5.10.y and 9b8284921513, fs/io_uring.c @ v5.10',
  },
  { ...IO_THREAD_GATED, profile: 'linux-5.15', source: 'fs/io-wq.c, fs/io_uring.c @ v5.15' },
  { ...IO_THREAD_GATED, profile: 'linux-6.1', source: THREAD_ERA_SOURCE },
  { ...IO_THREAD_GATED, profile: 'seed-v5', source: '[PATCH V5 07/10] kernel_worker(KERN_WORKER_IO)' },
  { ...IO_THREAD_GATED, profile: 'linux-6.4-rc1', source: THREAD_ERA_SOURCE },
  { ...IO_THREAD_GATED, profile: 'linux-6.4', source: THREAD_ERA_SOURCE },
  { ...IO_THREAD_GATED, profile: 'linux-6.5', source: THREAD_ERA_SOURCE },
  { ...IO_THREAD, profile: 'linux-6.10', source: THREAD_ERA_SOURCE },
  { ...IO_THREAD, profile: 'linux-6.12', source: THREAD_ERA_SOURCE },
  { ...IO_THREAD, profile: 'linux-6.17', source: THREAD_ERA_SOURCE },
  { ...IO_THREAD, profile: 'linux-6.17-kthread', source: THREAD_ERA_SOURCE },
  { ...IO_THREAD, profile: 'linux-6.18', source: THREAD_ERA_SOURCE },
];

/** The row of a profile (every profile of PROFILES has one). */
export function ioUringExpectation(profile: string): IoUringExpectation {
  const e = IO_URING_EXPECTATIONS.find((x) => x.profile === profile);
  if (!e) throw new Error(`no io_uring expectation row for ${profile}`);
  return e;
}

/** the profiles whose io-wq workers are threads of the submitter */
export const THREAD_WORKER_PROFILES = PROFILES.map((p) => p.name).filter(
  (n) => ioUringExpectation(n).workerKind === 'thread',
);
