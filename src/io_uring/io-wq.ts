/**
 * io-wq: the worker pool behind io_uring's async punts (kernel-spec §8). Models
 * io_uring/io-wq.c, v6.12 (the same rules as fs/io-wq.c of v5.15 with one io_wqe per node),
 * with the era differences from the profile:
 *
 *  - two accounts per io-wq: bound (max = min(SQ entries, 4 × online CPUs), set by
 *    io_init_wq_offload) and unbound (max = task_rlimit(current, RLIMIT_NPROC) when the io-wq
 *    is created); io_wq_max_workers() changes both (IORING_REGISTER_IOWQ_MAX_WORKERS);
 *  - a worker is created on enqueue when no free worker could be woken and either the work
 *    is IO_WQ_WORK_CONCURRENT (IOSQE_ASYNC) or no worker of that account is running; and
 *    from io_wq_dec_running() when the last running worker of an account blocks while work
 *    is queued (through a task_work on the io-wq's owner: create_worker_cb);
 *  - workers are create_io_thread() threads of the owner (`ioWorkerApi` 'io-thread') named
 *    `iou-wrk-<owner pid>` by themselves, or V5 kernel_worker(KERN_WORKER_IO) tasks named by
 *    kernel_worker_start() ('kernel-worker', [PATCH V5 07/10]);
 *  - a failed creation (EAGAIN from RLIMIT_NPROC or pids.max, ERESTART* with a signal
 *    pending) is retried from the system workqueue (io_workqueue_create) through a task_work
 *    on the owner (create_worker_cont), up to WORKER_INIT_LIMIT times where the profile has
 *    the limit, after init_retries × 5 ms where it has the backoff;
 *  - hashed work (writes to one regular file: io_wq_hash_work of its inode) is serialised: the
 *    worker that takes the first work of a hash takes every queued work of that hash with it
 *    and holds the hash bit (in the ring's hash map, shared by every io-wq of that ring) until
 *    it has run them; another worker finding only works whose hash is held marks the account
 *    stalled and waits on the hash map's queue (io_wait_on_hash), so it goes idle; clearing the
 *    bit wakes a free worker of each stalled account (io_wq_hash_wake);
 *  - an idle worker exits after WORKER_IDLE_TIMEOUT (5 s of virtual time) unless it is the
 *    last of its account; IO_WQ_BIT_EXIT (io_wq_exit_start) makes every worker finish and exit.
 *
 * The system workqueue's kworker is not a task here: io_workqueue_create() never sleeps, so it
 * runs as a timer callback.
 */
import { Errno, type Result } from '../kernel/errno.js';
import { doExit } from '../kernel/exit.js';
import { createIoThread } from '../kernel/fork.js';
import type { Kernel } from '../kernel/kernel.js';
import { RLIMIT_NPROC } from '../kernel/rlimit.js';
import {
  Completion,
  complete,
  type KGen,
  Op,
  signalPendingState,
  waitForCompletion,
} from '../kernel/sched.js';
import {
  CLONE_FILES,
  CLONE_FS,
  CLONE_IO,
  CLONE_SIGHAND,
  CLONE_THREAD,
  PF_NO_SETAFFINITY,
  TASK_INTERRUPTIBLE,
  TASK_NORMAL,
  TASK_RUNNING,
} from '../kernel/sched-consts.js';
import { getSignal } from '../kernel/signal.js';
import { setTaskComm } from '../kernel/syscalls.js';
import type { Task } from '../kernel/task.js';
import { type CallbackHead, taskWorkAdd, taskWorkCancelMatch, taskWorkRun } from '../kernel/task-work.js';
import { KERN_WORKER_IO, kernelWorker, kernelWorkerStart } from '../kernel/user-worker.js';

/** WORKER_IDLE_TIMEOUT = 5 * HZ */
export const WORKER_IDLE_TIMEOUT_NS = 5_000_000_000;

/** io_wq_work flags */
export const IO_WQ_WORK_CANCEL = 1;
export const IO_WQ_WORK_HASHED = 2;
export const IO_WQ_WORK_UNBOUND = 4;
export const IO_WQ_WORK_CONCURRENT = 16;
/** IO_WQ_HASH_SHIFT / IO_WQ_HASH_ORDER (64-bit): the hash bucket sits in flags bits 24..29 */
const IO_WQ_HASH_SHIFT = 24;
const IO_WQ_HASH_ORDER = 6;

/**
 * models io_wq_hash_work(work, val), v6.12: IO_WQ_WORK_HASHED and the bucket
 * hash_ptr(val, IO_WQ_HASH_ORDER). `key` stands for the inode pointer: the inode number,
 * whose low bits make the bucket here (two inodes can share a bucket, as in Linux).
 */
export function ioWqHashWork(work: IoWqWork, key: number): void {
  const bit = key & ((1 << IO_WQ_HASH_ORDER) - 1);
  work.flags |= IO_WQ_WORK_HASHED | (bit << IO_WQ_HASH_SHIFT);
}

export const ioWqIsHashed = (w: IoWqWork) => (w.flags & IO_WQ_WORK_HASHED) !== 0;
export const ioGetWorkHash = (w: IoWqWork) => w.flags >>> IO_WQ_HASH_SHIFT;

/** struct io_wq_hash: the hash bits being run (map) and the io-wqs waiting for one (wait) */
export class IoWqHash {
  readonly map = new Set<number>();
  readonly wait = new Set<IoWq<IoWqWork>>();
}

export const IO_WQ_ACCT_BOUND = 0;
export const IO_WQ_ACCT_UNBOUND = 1;

/** io_worker flags */
const IO_WORKER_F_UP = 1;
const IO_WORKER_F_RUNNING = 2;
const IO_WORKER_F_FREE = 4;

/** IO_WQ_CLONE_FLAGS of [PATCH V5 07/10] (kernel_worker adds CLONE_VM|CLONE_UNTRACED) */
const IO_WQ_CLONE_FLAGS = CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_IO;

/** the unsigned max_workers a task_rlimit() becomes (RLIM_INFINITY truncates to ~0U) */
export function rlimitAsUnsigned(v: number): number {
  return Math.min(v, 0xffffffff);
}

/** struct io_wq_work: one request's async part; `doWork` runs it, `cancel` fails it. */
export interface IoWqWork {
  flags: number;
}

/** what io_uring plugs into an io-wq (struct io_wq_data: do_work, free_work) */
export interface IoWqOps<W extends IoWqWork> {
  /** io_wq_submit_work(): runs in a worker; may sleep */
  doWork(k: Kernel, work: W): KGen<void>;
  /** io_run_cancel(): complete the work as cancelled (-ECANCELED), never sleeps */
  cancel(k: Kernel, work: W): void;
}

/** struct io_wq_acct */
export class IoWqAcct<W extends IoWqWork> {
  nrWorkers = 0;
  nrRunning = 0;
  readonly workList: W[] = [];
  /** IO_ACCT_STALLED_BIT: only works of held hashes are queued */
  stalled = false;
  constructor(
    readonly index: number,
    public maxWorkers: number,
  ) {}
}

/** struct io_worker */
export class IoWorker<W extends IoWqWork> {
  flags = 0;
  task: Task | null = null;
  curWork: W | null = null;
  /** the rest of the hashed chain the worker took with curWork (next_hashed) */
  chain: W[] = [];
  /** create_state bit 0: a create_work task_work is queued */
  createState = false;
  createIndex = 0;
  initRetries = 0;
  constructor(
    readonly wq: IoWq<W>,
    readonly index: number,
  ) {}
  get acct(): IoWqAcct<W> {
    return this.wq.acct[this.index]!;
  }
}

/** struct io_wq */
export class IoWq<W extends IoWqWork> {
  /** IO_WQ_BIT_EXIT */
  exiting = false;
  readonly acct: [IoWqAcct<W>, IoWqAcct<W>];
  readonly freeList: IoWorker<W>[] = [];
  readonly allList = new Set<IoWorker<W>>();
  workerRefs = 1;
  readonly workerDone = new Completion('io_wq.worker_done');
  /** wq->hash_tail: the last queued work of each hash */
  readonly hashTail = new Map<number, W>();
  constructor(
    /** wq->task: the task that owns this io-wq (its tctx), whose threads the workers are */
    public task: Task | null,
    bounded: number,
    unbounded: number,
    readonly ops: IoWqOps<W>,
    /** wq->hash: the ring's hash map (ctx->hash_map) */
    readonly hash: IoWqHash = new IoWqHash(),
  ) {
    this.acct = [new IoWqAcct(IO_WQ_ACCT_BOUND, bounded), new IoWqAcct(IO_WQ_ACCT_UNBOUND, unbounded)];
  }
  /** the live workers (for views and tests) */
  workers(): Task[] {
    return [...this.allList].flatMap((w) => (w.task ? [w.task] : []));
  }
}

/** worker_private: the io_worker of a task (PF_IO_WORKER tasks only) */
const workerOf = new WeakMap<Task, IoWorker<IoWqWork>>();

/**
 * models io_wq_create(bounded, data), v6.12: unbound max_workers = task_rlimit(current,
 * RLIMIT_NPROC) of the creating task; data->hash is the ring's hash map. Also installs the
 * scheduler hooks.
 */
export function ioWqCreate<W extends IoWqWork>(
  k: Kernel,
  bounded: number,
  task: Task,
  ops: IoWqOps<W>,
  hash?: IoWqHash,
): IoWq<W> {
  k.ioWorkerHooks ??= { sleeping: ioWqWorkerSleeping(k), running: ioWqWorkerRunning };
  const nproc = k.current!.signal.rlim[RLIMIT_NPROC]!.cur;
  return new IoWq(task, bounded, rlimitAsUnsigned(nproc), ops, hash);
}

function ioWorkerRefPut(k: Kernel, wq: IoWq<IoWqWork>): void {
  if (--wq.workerRefs === 0) complete(k, wq.workerDone);
}

/** models io_acct_run_queue(): work is queued and the account is not stalled */
function ioAcctRunQueue(acct: IoWqAcct<IoWqWork>): boolean {
  return acct.workList.length > 0 && !acct.stalled;
}

/**
 * models io_wq_insert_work(), v6.12 (io_wqe_insert_work() of 5.10.y): unhashed work at the
 * tail; hashed work right after the last queued work of its hash (at the tail when there is
 * none), becoming the hash's tail
 */
export function ioWqInsertWork<W extends IoWqWork>(hashTail: Map<number, W>, list: W[], work: W): void {
  if (!ioWqIsHashed(work)) {
    list.push(work);
    return;
  }
  const hash = ioGetWorkHash(work);
  const tail = hashTail.get(hash);
  hashTail.set(hash, work);
  if (!tail) list.push(work);
  else list.splice(list.indexOf(tail) + 1, 0, work);
}

/**
 * models io_wq_remove_pending(), v6.12 (io_wqe_remove_pending() of 5.10.y): off the list, the
 * hash tail moving back if it was the tail
 */
export function ioWqRemovePending<W extends IoWqWork>(hashTail: Map<number, W>, list: W[], work: W): void {
  const i = list.indexOf(work);
  if (ioWqIsHashed(work)) {
    const hash = ioGetWorkHash(work);
    if (hashTail.get(hash) === work) {
      const prev = i > 0 ? list[i - 1] : undefined;
      if (prev && ioWqIsHashed(prev) && ioGetWorkHash(prev) === hash) hashTail.set(hash, prev);
      else hashTail.delete(hash);
    }
  }
  list.splice(i, 1);
}

/**
 * The list walk of io_get_next_work(), v6.12 and 5.10.y: the first unhashed work, or the
 * first hashed work whose hash bit is clear together with every queued work of that hash (up
 * to the hash's tail), setting the bit. Returns the chain to run ([] if none) and the first
 * held hash that was passed over (-1 if none).
 */
export function ioWqTakeNextWork<W extends IoWqWork>(
  hashTail: Map<number, W>,
  list: W[],
  map: Set<number>,
): { chain: W[]; stallHash: number } {
  let stallHash = -1;
  for (let i = 0; i < list.length; i++) {
    const work = list[i]!;
    if (!ioWqIsHashed(work)) {
      list.splice(i, 1);
      return { chain: [work], stallHash };
    }
    const hash = ioGetWorkHash(work);
    const end = list.indexOf(hashTail.get(hash)!);
    if (!map.has(hash)) {
      map.add(hash);
      hashTail.delete(hash);
      return { chain: list.splice(i, end - i + 1), stallHash };
    }
    if (stallHash === -1) stallHash = hash;
    i = end;
  }
  return { chain: [], stallHash };
}

/**
 * models io_get_next_work(acct, wq), v6.12: the next work or hashed chain
 * (ioWqTakeNextWork); when only held hashes are queued the account is stalled and the io-wq
 * waits on the hash map (io_wait_on_hash). Returns the chain to run, or [].
 */
function ioGetNextWork<W extends IoWqWork>(wq: IoWq<W>, acct: IoWqAcct<W>): W[] {
  const { chain, stallHash } = ioWqTakeNextWork(wq.hashTail, acct.workList, wq.hash.map);
  if (chain.length || stallHash === -1) return chain;
  acct.stalled = true;
  // io_wait_on_hash(): onto the hash map's queue unless the bit was cleared meanwhile
  if (wq.hash.map.has(stallHash)) wq.hash.wait.add(wq as IoWq<IoWqWork>);
  else acct.stalled = false;
  return [];
}

/**
 * models the hash bit release at the end of a hashed chain in io_worker_handle_work() and
 * io_wq_hash_wake(), v6.12: clear the bit and the account's stall; each waiting io-wq leaves
 * the queue and wakes a free worker of every account it had stalled
 */
function ioWqHashRelease(k: Kernel, wq: IoWq<IoWqWork>, acct: IoWqAcct<IoWqWork>, hash: number): void {
  wq.hash.map.delete(hash);
  acct.stalled = false;
  for (const w of [...wq.hash.wait]) {
    wq.hash.wait.delete(w);
    for (const a of w.acct)
      if (a.stalled) {
        a.stalled = false;
        ioWqActivateFreeWorker(k, w, a);
      }
  }
}

/**
 * models io_wq_activate_free_worker(), v6.12: wake a free worker of this account; any free
 * worker counts ("if it does go to sleep, we'll kick off a new task for this work anyway").
 * Before v6.6 (profile ioWqWakeGatesOnRunning) only one that wake_up_process() woke counts.
 */
function ioWqActivateFreeWorker<W extends IoWqWork>(k: Kernel, wq: IoWq<W>, acct: IoWqAcct<W>): boolean {
  for (const w of wq.freeList) {
    if (w.index !== acct.index || !w.task) continue;
    if (k.wakeUpProcess(w.task) || !k.profile.ioWqWakeGatesOnRunning) return true;
  }
  return false;
}

/**
 * models io_wq_enqueue(wq, work), v6.12: cancel at once if the io-wq is exiting; queue; wake a
 * free worker, else create one if the work is CONCURRENT or nothing of its account runs; if
 * the first worker of the account cannot be created, cancel this work.
 */
export function ioWqEnqueue<W extends IoWqWork>(k: Kernel, wq: IoWq<W>, work: W): void {
  const acct = wq.acct[work.flags & IO_WQ_WORK_UNBOUND ? IO_WQ_ACCT_UNBOUND : IO_WQ_ACCT_BOUND];
  if (wq.exiting || work.flags & IO_WQ_WORK_CANCEL) {
    work.flags |= IO_WQ_WORK_CANCEL;
    wq.ops.cancel(k, work);
    return;
  }
  ioWqInsertWork(wq.hashTail, acct.workList, work);
  acct.stalled = false;
  const doCreate = !ioWqActivateFreeWorker(k, wq, acct);
  if (doCreate && (work.flags & IO_WQ_WORK_CONCURRENT || acct.nrRunning === 0)) {
    if (ioWqCreateWorker(k, wq, acct)) return;
    if (acct.nrWorkers) return;
    // fatal condition, failed to create the first worker
    if (acct.workList.includes(work)) {
      ioWqRemovePending(wq.hashTail, acct.workList, work);
      work.flags |= IO_WQ_WORK_CANCEL;
      wq.ops.cancel(k, work);
    }
  }
}

/** models io_wq_create_worker(): true when at max_workers (nothing to do) or a creation is under way. */
function ioWqCreateWorker<W extends IoWqWork>(k: Kernel, wq: IoWq<W>, acct: IoWqAcct<W>): boolean {
  if (acct.nrWorkers >= acct.maxWorkers) return true;
  acct.nrWorkers++;
  acct.nrRunning++;
  wq.workerRefs++;
  return createIoWorker(k, wq, acct.index);
}

/** create_io_thread(io_wq_worker, worker) or the V5 kernel_worker(), by the profile's ioWorkerApi. */
function createWorkerTask<W extends IoWqWork>(k: Kernel, worker: IoWorker<W>): Result<Task> {
  const body = () => ioWqWorker(k, worker);
  if (k.profile.ioWorkerApi === 'kernel-worker')
    return kernelWorker(k, body, IO_WQ_CLONE_FLAGS, KERN_WORKER_IO);
  return createIoThread(k, body);
}

/**
 * models io_init_new_worker(): worker_private, affinity to the wq's cpumask (within the
 * cpuset), PF_NO_SETAFFINITY where the era sets it, onto the free and all lists, start.
 */
function ioInitNewWorker<W extends IoWqWork>(k: Kernel, wq: IoWq<W>, worker: IoWorker<W>, t: Task): void {
  workerOf.set(t, worker as IoWorker<IoWqWork>);
  worker.task = t;
  t.cpusAllowed = k.onlineCpus & (t.cgroups[0]?.effectiveCpus(k) ?? k.onlineCpus);
  if (k.profile.ioWorkerNoSetaffinity) t.flags |= PF_NO_SETAFFINITY;
  wq.freeList.unshift(worker);
  wq.allList.add(worker);
  worker.flags |= IO_WORKER_F_FREE;
  if (k.profile.ioWorkerApi === 'kernel-worker') kernelWorkerStart(k, t, `iou-wrk-${wq.task!.pid}`);
  else k.wakeUpNewTask(t);
}

/**
 * models io_should_retry_thread(worker, err), v6.12: not with a fatal signal pending (where
 * the era checks it), not past WORKER_INIT_LIMIT (where the era has it); EAGAIN and the
 * ERESTART* codes are retried. In the kworker context of a retry `current` is no user task.
 */
function ioShouldRetryThread(k: Kernel, worker: IoWorker<IoWqWork>, errno: number): boolean {
  if (k.profile.ioWorkerRetryChecksFatal && k.current?.fatalSignalPending()) return false;
  const limit = k.profile.ioWorkerInitLimit;
  if (limit !== null && worker.initRetries++ >= limit) return false;
  return (
    errno === Errno.EAGAIN ||
    errno === Errno.ERESTARTSYS ||
    errno === Errno.ERESTARTNOINTR ||
    errno === Errno.ERESTARTNOHAND
  );
}

/** models create_io_worker(wq, index): create, or fail and undo the accounting, or retry later. */
function createIoWorker<W extends IoWqWork>(k: Kernel, wq: IoWq<W>, index: number): boolean {
  const acct = wq.acct[index]!;
  const worker = new IoWorker(wq, index);
  const r = createWorkerTask(k, worker);
  if (r.ok) {
    ioInitNewWorker(k, wq, worker, r.value);
    return true;
  }
  if (!ioShouldRetryThread(k, worker as IoWorker<IoWqWork>, r.errno)) {
    acct.nrRunning--;
    acct.nrWorkers--;
    ioWorkerRefPut(k, wq as IoWq<IoWqWork>);
    return false;
  }
  queueCreateWorkerRetry(k, worker);
  return true;
}

/** models queue_create_worker_retry() / schedule_work(&worker->work): io_workqueue_create later. */
function queueCreateWorkerRetry<W extends IoWqWork>(k: Kernel, worker: IoWorker<W>): void {
  const delay = k.profile.ioWorkerRetryBackoffMs * worker.initRetries * 1_000_000;
  k.addTimer(k.clock + delay, () => {
    // models io_workqueue_create(): a kworker queues create_worker_cont on the owner
    ioQueueWorkerCreate(k, worker, worker.acct, createWorkerCont);
  });
}

type CreateFn = <W extends IoWqWork>(k: Kernel, worker: IoWorker<W>) => KGen<void>;

/** the task_work a create request queues on the owner */
class CreateWork implements CallbackHead {
  constructor(
    readonly owner: IoWorker<IoWqWork>,
    readonly fn: CreateFn,
  ) {}
  func = (k: Kernel) => this.fn(k, this.owner);
}

/**
 * models io_queue_worker_create(worker, acct, func), v6.12: ignored once the io-wq exits or
 * while the worker already has a create request queued; else task_work_add(wq->task, …,
 * TWA_SIGNAL). On failure the caller's nr_running and worker ref are dropped.
 */
function ioQueueWorkerCreate<W extends IoWqWork>(
  k: Kernel,
  worker: IoWorker<W>,
  acct: IoWqAcct<W>,
  fn: CreateFn,
): boolean {
  const wq = worker.wq as IoWq<IoWqWork>;
  if (!wq.exiting && !worker.createState && wq.task) {
    worker.createState = true;
    wq.workerRefs++;
    worker.createIndex = acct.index;
    const r = taskWorkAdd(k, wq.task, new CreateWork(worker as IoWorker<IoWqWork>, fn), 'signal');
    if (r.ok) {
      if (wq.exiting) ioWqCancelTwCreate(k, wq);
      ioWorkerRefPut(k, wq);
      return true;
    }
    ioWorkerRefPut(k, wq);
    worker.createState = false;
  }
  acct.nrRunning--;
  ioWorkerRefPut(k, wq);
  return false;
}

/** models create_worker_cb(): a blocked worker asked for a new one; create it if under max. */
function* createWorkerCb<W extends IoWqWork>(k: Kernel, worker: IoWorker<W>): KGen<void> {
  const wq = worker.wq;
  const acct = wq.acct[worker.createIndex]!;
  if (acct.nrWorkers < acct.maxWorkers) {
    acct.nrWorkers++;
    createIoWorker(k, wq, worker.createIndex);
  } else {
    acct.nrRunning--;
    ioWorkerRefPut(k, wq as IoWq<IoWqWork>);
  }
  worker.createState = false;
}

/** models create_worker_cont(): the retry of a failed creation, in the owner's context. */
function* createWorkerCont<W extends IoWqWork>(k: Kernel, worker: IoWorker<W>): KGen<void> {
  worker.createState = false;
  const wq = worker.wq;
  const acct = worker.acct;
  const r = createWorkerTask(k, worker);
  if (r.ok) {
    ioInitNewWorker(k, wq, worker, r.value);
    return;
  }
  if (!ioShouldRetryThread(k, worker as IoWorker<IoWqWork>, r.errno)) {
    acct.nrRunning--;
    acct.nrWorkers--;
    if (acct.nrWorkers === 0) ioAcctCancelAll(k, wq, acct);
    ioWorkerRefPut(k, wq as IoWq<IoWqWork>);
    return;
  }
  queueCreateWorkerRetry(k, worker);
}

/** models io_acct_cancel_pending_work() for every queued work of an account */
function ioAcctCancelAll<W extends IoWqWork>(k: Kernel, wq: IoWq<W>, acct: IoWqAcct<W>): void {
  for (const w of [...acct.workList]) {
    ioWqRemovePending(wq.hashTail, acct.workList, w);
    cancelWork(k, wq, w);
  }
}

function cancelWork<W extends IoWqWork>(k: Kernel, wq: IoWq<W>, w: W): void {
  w.flags |= IO_WQ_WORK_CANCEL;
  wq.ops.cancel(k, w);
}

/** models io_worker_cancel_cb(): undo the accounting of a queued create request. */
function ioWorkerCancelCb(k: Kernel, worker: IoWorker<IoWqWork>): void {
  const acct = worker.wq.acct[worker.createIndex]!;
  acct.nrRunning--;
  acct.nrWorkers--;
  ioWorkerRefPut(k, worker.wq);
  worker.createState = false;
}

/** models io_wq_cancel_tw_create(): remove every queued create request of this io-wq from its owner. */
function ioWqCancelTwCreate(k: Kernel, wq: IoWq<IoWqWork>): void {
  if (!wq.task) return;
  for (;;) {
    const cb = taskWorkCancelMatch(wq.task, (w) => w instanceof CreateWork && w.owner.wq === wq);
    if (!cb) return;
    ioWorkerCancelCb(k, (cb as CreateWork).owner);
  }
}

/** models io_wq_dec_running(): the last running worker of an account blocks with work queued. */
function ioWqDecRunning(k: Kernel, worker: IoWorker<IoWqWork>): void {
  if (!(worker.flags & IO_WORKER_F_UP)) return;
  const acct = worker.acct;
  if (--acct.nrRunning > 0) return;
  if (!ioAcctRunQueue(acct)) return;
  acct.nrRunning++;
  worker.wq.workerRefs++;
  ioQueueWorkerCreate(k, worker, acct, createWorkerCb);
}

/** models io_wq_worker_sleeping(tsk), called from sched_submit_work(). */
function ioWqWorkerSleeping(k: Kernel) {
  return (t: Task): void => {
    const worker = workerOf.get(t);
    if (!worker || !(worker.flags & IO_WORKER_F_UP) || !(worker.flags & IO_WORKER_F_RUNNING)) return;
    worker.flags &= ~IO_WORKER_F_RUNNING;
    ioWqDecRunning(k, worker);
  };
}

/** models io_wq_worker_running(tsk), called from sched_update_worker(). */
function ioWqWorkerRunning(t: Task): void {
  const worker = workerOf.get(t);
  if (!worker || !(worker.flags & IO_WORKER_F_UP) || worker.flags & IO_WORKER_F_RUNNING) return;
  worker.flags |= IO_WORKER_F_RUNNING;
  worker.acct.nrRunning++;
}

/**
 * models io_run_task_work(), v6.12: clear TIF_NOTIFY_SIGNAL, run pending task_work; true if
 * any ran.
 */
export function* ioRunTaskWork(k: Kernel): KGen<boolean> {
  const t = k.current!;
  t.notifySignal = false;
  if (!t.taskWorks?.length) return false;
  t.state = TASK_RUNNING;
  yield* taskWorkRun(k);
  return true;
}

/**
 * models schedule_timeout(timeout) for the current state: a TASK_RUNNING caller returns at
 * once; a pending signal (or notify) keeps an interruptible task runnable (__schedule's
 * signal_pending_state). Returns true when the timeout expired.
 */
export function* scheduleTimeout(k: Kernel, ns: number): KGen<boolean> {
  const t = k.current!;
  if (t.state === TASK_RUNNING || signalPendingState(t.state, t)) {
    t.state = TASK_RUNNING;
    t.at = 'schedule_timeout(): still runnable';
    yield Op.Preempt;
    return false;
  }
  let fired = false;
  const timer = k.addTimer(k.clock + ns, () => {
    fired = true;
    k.tryToWakeUp(t, TASK_NORMAL);
  });
  yield Op.Schedule;
  t.state = TASK_RUNNING;
  if (!fired) k.cancelTimer(timer);
  return fired;
}

/**
 * models io_worker_handle_work(): run queued work of the worker's account until none is left
 * (or only works of held hashes are); a hashed chain is run in order and its hash released
 * after the last one.
 */
function* ioWorkerHandleWork<W extends IoWqWork>(k: Kernel, worker: IoWorker<W>): KGen<void> {
  const wq = worker.wq;
  const acct = worker.acct;
  const doKill = wq.exiting;
  for (;;) {
    const chain = ioGetNextWork(wq, acct);
    if (!chain.length) return;
    // __io_worker_busy(): off the free list
    if (worker.flags & IO_WORKER_F_FREE) {
      worker.flags &= ~IO_WORKER_F_FREE;
      const i = wq.freeList.indexOf(worker);
      if (i >= 0) wq.freeList.splice(i, 1);
    }
    worker.chain = chain;
    for (let work = worker.chain.shift(); work; work = worker.chain.shift()) {
      const hash = ioWqIsHashed(work) ? ioGetWorkHash(work) : -1;
      worker.curWork = work;
      k.current!.state = TASK_RUNNING;
      if (doKill && work.flags & IO_WQ_WORK_UNBOUND) work.flags |= IO_WQ_WORK_CANCEL;
      if (work.flags & IO_WQ_WORK_CANCEL) wq.ops.cancel(k, work);
      else yield* wq.ops.doWork(k, work);
      worker.curWork = null;
      if (hash !== -1 && !worker.chain.length)
        ioWqHashRelease(k, wq as IoWq<IoWqWork>, acct as IoWqAcct<IoWqWork>, hash);
    }
  }
}

/**
 * models io_wq_worker(), v6.12: the worker's loop. Names itself `iou-wrk-<owner pid>` (the
 * io-thread API), runs work, goes idle on the free list and sleeps WORKER_IDLE_TIMEOUT;
 * after a timeout it exits unless it is the last worker of its account; a fatal signal or
 * IO_WQ_BIT_EXIT ends it.
 */
function* ioWqWorker<W extends IoWqWork>(k: Kernel, worker: IoWorker<W>): KGen<number> {
  const me = k.current!;
  const wq = worker.wq;
  const acct = worker.acct;
  worker.flags |= IO_WORKER_F_UP | IO_WORKER_F_RUNNING;
  if (k.profile.ioWorkerApi === 'io-thread') setTaskComm(k, me, `iou-wrk-${wq.task!.pid}`);
  let lastTimeout = false;
  while (!wq.exiting) {
    me.state = TASK_INTERRUPTIBLE;
    while (ioAcctRunQueue(acct)) yield* ioWorkerHandleWork(k, worker);
    if (lastTimeout && acct.nrWorkers > 1) {
      acct.nrWorkers--;
      me.state = TASK_RUNNING;
      break;
    }
    lastTimeout = false;
    // __io_worker_idle(): onto the free list
    if (!(worker.flags & IO_WORKER_F_FREE)) {
      worker.flags |= IO_WORKER_F_FREE;
      wq.freeList.unshift(worker);
    }
    if (yield* ioRunTaskWork(k)) continue;
    const timedOut = yield* scheduleTimeout(k, WORKER_IDLE_TIMEOUT_NS);
    if (me.sigpending || me.notifySignal) {
      const ks = yield* getSignal(k);
      if (!ks.fatal && !ks.sig) continue;
      break;
    }
    if (timedOut) lastTimeout = true;
  }
  if (wq.exiting && ioAcctRunQueue(acct)) yield* ioWorkerHandleWork(k, worker);
  return yield* ioWorkerExit(k, worker);
}

/**
 * models io_worker_exit(): drop this worker's queued create requests, leave the lists, stop
 * counting as running, put the worker ref (the last one completes worker_done), do_exit(0).
 */
function* ioWorkerExit<W extends IoWqWork>(k: Kernel, worker: IoWorker<W>): KGen<never> {
  const wq = worker.wq as IoWq<IoWqWork>;
  const w = worker as IoWorker<IoWqWork>;
  if (wq.task)
    for (;;) {
      const cb = taskWorkCancelMatch(
        wq.task,
        (x) => x instanceof CreateWork && x.owner === w && x.fn === (createWorkerCb as CreateFn),
      );
      if (!cb) break;
      ioWorkerCancelCb(k, w);
    }
  const i = wq.freeList.indexOf(w);
  if (i >= 0) wq.freeList.splice(i, 1);
  wq.allList.delete(w);
  ioWqDecRunning(k, w);
  worker.flags = 0;
  workerOf.delete(k.current!);
  ioWorkerRefPut(k, wq);
  return yield* doExit(k, 0);
}

/** models io_wq_exit_start(): set IO_WQ_BIT_EXIT. */
export function ioWqExitStart(wq: IoWq<IoWqWork>): void {
  wq.exiting = true;
}

/**
 * models io_wq_put_and_exit() → io_wq_exit_workers() + io_wq_destroy(), v6.12: cancel queued
 * create requests, wake every worker with TIF_NOTIFY_SIGNAL, wait until the last worker has
 * put its ref, then cancel whatever is still queued. Sleeps (uninterruptibly).
 */
export function* ioWqPutAndExit<W extends IoWqWork>(k: Kernel, wq: IoWq<W>): KGen<void> {
  if (!wq.exiting) k.warn('io_wq_put_and_exit', 'IO_WQ_BIT_EXIT not set');
  const q = wq as IoWq<IoWqWork>;
  if (q.task) {
    ioWqCancelTwCreate(k, q);
    for (const w of q.allList)
      if (w.task) {
        w.task.notifySignal = true;
        k.wakeUpProcess(w.task);
      }
    ioWorkerRefPut(k, q);
    yield* waitForCompletion(k, q.workerDone);
    q.task = null;
  }
  for (const acct of wq.acct) ioAcctCancelAll(k, wq, acct);
  wq.hash.wait.delete(q);
}

/**
 * models io_wq_cancel_cb(wq, match, cancel_all), v6.12: queued works that match are removed
 * and cancelled; a running one that matches gets TIF_NOTIFY_SIGNAL (its sleep is
 * interrupted). Returns how many were found.
 */
export function ioWqCancelCb<W extends IoWqWork>(k: Kernel, wq: IoWq<W>, match: (w: W) => boolean): number {
  let n = 0;
  for (const acct of wq.acct)
    for (const w of acct.workList.filter(match)) {
      ioWqRemovePending(wq.hashTail, acct.workList, w);
      cancelWork(k, wq, w);
      n++;
    }
  for (const worker of wq.allList)
    if (worker.curWork && match(worker.curWork) && worker.task) {
      worker.curWork.flags |= IO_WQ_WORK_CANCEL;
      worker.task.notifySignal = true;
      k.tryToWakeUp(worker.task, TASK_INTERRUPTIBLE);
      n++;
    }
  return n;
}

/**
 * models io_wq_max_workers(wq, new_count), v6.12: each new value is capped at the caller's
 * RLIMIT_NPROC; 0 leaves a limit unchanged; returns the previous limits.
 */
export function ioWqMaxWorkers<W extends IoWqWork>(
  k: Kernel,
  wq: IoWq<W>,
  newCount: [number, number],
): [number, number] {
  const nproc = rlimitAsUnsigned(k.current!.signal.rlim[RLIMIT_NPROC]!.cur);
  const prev: [number, number] = [0, 0];
  for (let i = 0; i < 2; i++) {
    const v = Math.min(newCount[i]!, nproc);
    const acct = wq.acct[i]!;
    prev[i] = acct.maxWorkers;
    if (v) acct.maxWorkers = v;
  }
  return prev;
}
