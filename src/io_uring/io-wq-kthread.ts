/**
 * io-wq before 5.12 (`ioWorkerApi` 'kthread'): one io-wq per ring whose workers are
 * KTHREADS. Models fs/io-wq.c of 5.10.y (io_wq_create, io_wq_manager, create_io_worker,
 * io_wqe_worker, io_worker_exit, io_wqe_enqueue, io_wq_can_queue, io_wq_cancel_cb,
 * io_wq_destroy; the io_identity form, with kthread_bind_mask and one wq->refs per worker;
 * the manager and worker loops are those of 9b8284921513 before it), with one io_wqe (one
 * NUMA node):
 *
 *  - io_wq_create() starts an `io_wq_manager` kthread (kthread_create, a child of kthreadd)
 *    and waits until it has created the first bound worker, which is IO_WORKER_F_FIXED (it
 *    never exits on idle); a failed first creation fails the io-wq (ENOMEM);
 *  - the manager creates every further worker: `io_wqe_worker-<acct index>/<node>` kthreads,
 *    when the work list is not empty, no worker is free and the account is under max_workers;
 *    the enqueue path only wakes it (and it looks again every HZ). A failed kthread_create is
 *    not retried by itself: the manager tries again on its next pass;
 *  - a worker is bound to its node's CPUs (kthread_bind_mask: all online CPUs here, and
 *    PF_NO_SETAFFINITY); it is a kthread with PF_IO_WORKER (io_worker_start) that takes on the request's
 *    mm with kthread_use_mm (io_wq_switch_mm) and its creds with override_creds
 *    (io_wq_switch_creds), and drops both when idle (__io_worker_unuse). It stays in the root
 *    cgroup where kthreadd forked it: nothing moves it into the submitter's cgroups;
 *  - accounting: max unbound workers = task_rlimit(current, RLIMIT_NPROC) when the io-wq is
 *    created, bound max = what io_init_wq_offload passes (min(SQ entries, 4 × online CPUs));
 *    every unbound worker counts in wq->user->processes, the ring creator's per-uid process
 *    count that copy_process checks against RLIMIT_NPROC; io_wq_can_queue() cancels unbound
 *    work at once when none runs, none is free and that count is at max_workers (unless the
 *    submitter has CAP_SYS_RESOURCE or CAP_SYS_ADMIN);
 *  - an idle worker exits after WORKER_IDLE_TIMEOUT unless it is the fixed one;
 *    io_wq_destroy() (ring release) sets IO_WQ_BIT_EXIT, stops the manager and wakes every
 *    worker.
 *
 * One list serves both accounts as wqe->work_list does. Hashed work (writes to one regular
 * file) is serialised as in v6.12 but with the wqe's own hash_map: the worker that takes the
 * first work of a hash takes the queued works of that hash with it and clears the bit after
 * the last; a worker that finds only works of held hashes marks the wqe IO_WQE_FLAG_STALLED
 * and goes idle (no hash wait queue before v5.12); queueing or the bit's release unstalls.
 */
import {
  CAP_SYS_ADMIN,
  CAP_SYS_RESOURCE,
  type Cred,
  capable,
  decRlimitUcounts,
  incRlimitUcounts,
  type Ucounts,
} from '../kernel/cred.js';
import { Errno, err, ok, type Result } from '../kernel/errno.js';
import { mmput } from '../kernel/exit.js';
import type { Kernel } from '../kernel/kernel.js';
import {
  KTHREAD_SHOULD_STOP,
  kthreadCreateOnNode,
  kthreadShouldStop,
  kthreadUnuseMm,
  kthreadUseMm,
} from '../kernel/kthread.js';
import type { MM } from '../kernel/mm.js';
import { RLIMIT_NPROC } from '../kernel/rlimit.js';
import { Completion, complete, type KGen, waitForCompletion } from '../kernel/sched.js';
import { PF_IO_WORKER, PF_NO_SETAFFINITY, TASK_INTERRUPTIBLE, TASK_RUNNING } from '../kernel/sched-consts.js';
import type { Task } from '../kernel/task.js';
import { taskWorkRun } from '../kernel/task-work.js';
import {
  IO_WQ_ACCT_BOUND,
  IO_WQ_ACCT_UNBOUND,
  IO_WQ_WORK_CANCEL,
  IO_WQ_WORK_CONCURRENT,
  IO_WQ_WORK_UNBOUND,
  type IoWqOps,
  type IoWqWork,
  ioGetWorkHash,
  ioWqInsertWork,
  ioWqIsHashed,
  ioWqRemovePending,
  ioWqTakeNextWork,
  rlimitAsUnsigned,
  scheduleTimeout,
  WORKER_IDLE_TIMEOUT_NS,
} from './io-wq.js';

/** HZ in ns: the manager's schedule_timeout(HZ) */
const HZ_NS = 1_000_000_000;

/** io_worker flags, v5.10 */
const IO_WORKER_F_UP = 1;
const IO_WORKER_F_RUNNING = 2;
const IO_WORKER_F_FREE = 4;
const IO_WORKER_F_FIXED = 16;
const IO_WORKER_F_BOUND = 32;

/** what a 5.10 request carries for its worker (io_req_init_async / io_req_work_grab_env) */
export interface IoWqKthreadWork extends IoWqWork {
  /** work->mm: the submitter's address space (def->needs_mm), or null */
  mm: MM | null;
  /** work->creds: the submitter's credentials */
  creds: Cred | null;
}

/** struct io_wqe_acct */
interface Acct {
  nrWorkers: number;
  maxWorkers: number;
  nrRunning: number;
}

/** struct io_worker, v5.10 */
export class KIoWorker<W extends IoWqKthreadWork> {
  flags = 0;
  task: Task | null = null;
  curWork: W | null = null;
  /** worker->mm: the address space taken on with kthread_use_mm */
  mm: MM | null = null;
  /** worker->cur_creds: the creds override_creds() installed */
  curCreds: Cred | null = null;
  constructor(readonly wq: IoWqKthread<W>) {}
  /** io_wqe_get_acct(): by IO_WORKER_F_BOUND */
  get acct(): Acct {
    return this.wq.acct[this.flags & IO_WORKER_F_BOUND ? IO_WQ_ACCT_BOUND : IO_WQ_ACCT_UNBOUND];
  }
}

/** struct io_wq + its one struct io_wqe, v5.10 */
export class IoWqKthread<W extends IoWqKthreadWork> {
  /** IO_WQ_BIT_EXIT */
  exiting = false;
  /** IO_WQ_BIT_ERROR */
  error = false;
  readonly acct: [Acct, Acct];
  /** wqe->work_list */
  readonly workList: W[] = [];
  /** wqe->hash_map, wqe->hash_tail and IO_WQE_FLAG_STALLED */
  readonly hashMap = new Set<number>();
  readonly hashTail = new Map<number, W>();
  stalled = false;
  readonly freeList: KIoWorker<W>[] = [];
  readonly allList = new Set<KIoWorker<W>>();
  manager: Task | null = null;
  /** wq->refs (the manager and every worker) and wq->done */
  refs = 0;
  done = new Completion('io_wq.done');
  constructor(
    /** wq->user: the ring creator's user, whose process count unbound workers join */
    readonly user: Ucounts,
    bounded: number,
    unbounded: number,
    readonly ops: IoWqOps<W>,
  ) {
    this.acct = [
      { nrWorkers: 0, maxWorkers: bounded, nrRunning: 0 },
      { nrWorkers: 0, maxWorkers: unbounded, nrRunning: 0 },
    ];
  }
  /** the live workers (for views and tests) */
  workers(): Task[] {
    return [...this.allList].flatMap((w) => (w.task ? [w.task] : []));
  }
}

const workerOf = new WeakMap<Task, KIoWorker<IoWqKthreadWork>>();

/** atomic_inc/dec(&wq->user->processes): also recorded where the invariants can see it */
function chargeUser(k: Kernel, wq: IoWqKthread<IoWqKthreadWork>, v: number): void {
  if (v > 0) incRlimitUcounts(k, wq.user, v);
  else decRlimitUcounts(k, wq.user, -v);
  const n = (k.nprocCharges.get(wq.user) ?? 0) + v;
  if (n) k.nprocCharges.set(wq.user, n);
  else k.nprocCharges.delete(wq.user);
}

/**
 * models io_wq_create(bounded, data), v5.10: both accounts' limits (unbound: the caller's
 * RLIMIT_NPROC), the `io_wq_manager` kthread, and a wait until it created the fixed worker.
 * kthread_create's error is returned; a failed fixed worker is ENOMEM.
 */
export function* ioWqKthreadCreate<W extends IoWqKthreadWork>(
  k: Kernel,
  bounded: number,
  user: Ucounts,
  ops: IoWqOps<W>,
): KGen<Result<IoWqKthread<W>>> {
  k.ioWorkerHooks ??= { sleeping: ioWqWorkerSleeping(k), running: ioWqWorkerRunning };
  const nproc = rlimitAsUnsigned(k.current!.signal.rlim[RLIMIT_NPROC]!.cur);
  const wq = new IoWqKthread(user, bounded, nproc, ops);
  const q = wq as unknown as IoWqKthread<IoWqKthreadWork>;
  const r = yield* kthreadCreateOnNode(k, (d) => ioWqManager(k, d as typeof q), q, 'io_wq_manager');
  if (!r.ok) return r;
  wq.manager = r.value;
  k.wakeUpProcess(r.value);
  yield* waitForCompletion(k, wq.done);
  if (wq.error) return err(Errno.ENOMEM);
  wq.done = new Completion('io_wq.done');
  return ok(wq);
}

/** models io_wqe_run_queue(), v5.10: work queued and the wqe not stalled */
function runQueue(wq: IoWqKthread<IoWqKthreadWork>): boolean {
  return wq.workList.length > 0 && !wq.stalled;
}

/** models io_wqe_need_worker(): runnable work, no free worker, the account under its max. */
function needWorker(wq: IoWqKthread<IoWqKthreadWork>, index: number): boolean {
  if (wq.freeList.length > 0 || !runQueue(wq)) return false;
  const acct = wq.acct[index]!;
  return acct.nrWorkers < acct.maxWorkers;
}

/**
 * models io_wq_manager(), 5.10.y: create the fixed bound worker (on failure: IO_WQ_BIT_ERROR
 * and IO_WQ_BIT_EXIT), complete wq->done, then until kthread_stop: run task_work, create a
 * bound and/or an unbound worker where needed, sleep up to HZ; at the end put its wq->refs.
 */
function* ioWqManager(k: Kernel, wq: IoWqKthread<IoWqKthreadWork>): KGen<number> {
  const me = k.current!;
  wq.refs = 1;
  if (!(yield* createIoWorker(k, wq, IO_WQ_ACCT_BOUND))) {
    wq.error = true;
    wq.exiting = true;
    if (--wq.refs === 0) complete(k, wq.done);
    return 0;
  }
  complete(k, wq.done);
  while (!kthreadShouldStop(k)) {
    if (me.taskWorks?.length) yield* taskWorkRun(k);
    const fork = [needWorker(wq, IO_WQ_ACCT_BOUND), needWorker(wq, IO_WQ_ACCT_UNBOUND)];
    if (fork[IO_WQ_ACCT_BOUND]) yield* createIoWorker(k, wq, IO_WQ_ACCT_BOUND);
    if (fork[IO_WQ_ACCT_UNBOUND]) yield* createIoWorker(k, wq, IO_WQ_ACCT_UNBOUND);
    me.state = TASK_INTERRUPTIBLE;
    yield* scheduleTimeout(k, HZ_NS);
  }
  if (me.taskWorks?.length) yield* taskWorkRun(k);
  if (--wq.refs === 0) complete(k, wq.done);
  return 0;
}

/**
 * models create_io_worker(wq, wqe, index), 5.10.y: kthread_create_on_node(io_wqe_worker, …,
 * "io_wqe_worker-%d/%d", index, node); on failure nothing is counted (false). Else
 * kthread_bind_mask(cpumask_of_node), onto the free and all lists, BOUND for index 0, FIXED if
 * it is the first bound worker, nr_workers++, an unbound one joins wq->user->processes, a
 * wq->refs, and it is woken.
 */
function* createIoWorker(k: Kernel, wq: IoWqKthread<IoWqKthreadWork>, index: number): KGen<boolean> {
  const acct = wq.acct[index]!;
  const worker = new KIoWorker(wq);
  const r = yield* kthreadCreateOnNode(k, () => ioWqeWorker(k, worker), worker, `io_wqe_worker-${index}/0`);
  if (!r.ok) return false;
  worker.task = r.value;
  // kthread_bind_mask(): the node's CPUs (one node: every online CPU), PF_NO_SETAFFINITY
  r.value.cpusAllowed = k.onlineCpus;
  r.value.flags |= PF_NO_SETAFFINITY;
  workerOf.set(r.value, worker);
  wq.freeList.unshift(worker);
  wq.allList.add(worker);
  worker.flags |= IO_WORKER_F_FREE;
  if (index === IO_WQ_ACCT_BOUND) worker.flags |= IO_WORKER_F_BOUND;
  if (!acct.nrWorkers && worker.flags & IO_WORKER_F_BOUND) worker.flags |= IO_WORKER_F_FIXED;
  acct.nrWorkers++;
  if (index === IO_WQ_ACCT_UNBOUND) chargeUser(k, wq, 1);
  wq.refs++;
  k.wakeUpProcess(r.value);
  return true;
}

/** models io_wqe_wake_worker(): wake a free worker, else the manager if under max_workers. */
function ioWqeWakeWorker(k: Kernel, wq: IoWqKthread<IoWqKthreadWork>, acct: Acct): void {
  if (!acct.maxWorkers) k.warn('io_wqe_wake_worker', 'no workers allowed for this account');
  const free = wq.freeList[0];
  if (free?.task) {
    k.wakeUpProcess(free.task);
    return;
  }
  if (acct.nrWorkers < acct.maxWorkers && wq.manager) k.wakeUpProcess(wq.manager);
}

/** models io_wqe_dec_running(): the last running worker of an account stops with work queued. */
function ioWqeDecRunning(k: Kernel, worker: KIoWorker<IoWqKthreadWork>): void {
  const acct = worker.acct;
  if (--acct.nrRunning === 0 && runQueue(worker.wq)) ioWqeWakeWorker(k, worker.wq, acct);
}

/** models io_wq_worker_sleeping(tsk), v5.10 */
function ioWqWorkerSleeping(k: Kernel) {
  return (t: Task): void => {
    const worker = workerOf.get(t);
    if (!worker || !(worker.flags & IO_WORKER_F_UP) || !(worker.flags & IO_WORKER_F_RUNNING)) return;
    worker.flags &= ~IO_WORKER_F_RUNNING;
    ioWqeDecRunning(k, worker);
  };
}

/** models io_wq_worker_running(tsk), v5.10 */
function ioWqWorkerRunning(t: Task): void {
  const worker = workerOf.get(t);
  if (!worker || !(worker.flags & IO_WORKER_F_UP) || worker.flags & IO_WORKER_F_RUNNING) return;
  worker.flags |= IO_WORKER_F_RUNNING;
  worker.acct.nrRunning++;
}

/**
 * models io_wq_can_queue(), v5.10: bound work always; unbound work when a worker of the
 * account runs or one is free, or the user's process count is under max_workers, or the
 * submitter has CAP_SYS_RESOURCE or CAP_SYS_ADMIN.
 */
function ioWqCanQueue(k: Kernel, wq: IoWqKthread<IoWqKthreadWork>, acct: Acct, work: IoWqWork): boolean {
  if (!(work.flags & IO_WQ_WORK_UNBOUND)) return true;
  if (acct.nrRunning) return true;
  if (wq.freeList.length > 0) return true;
  const c = k.current!.cred;
  return wq.user.nproc < acct.maxWorkers || capable(k, c, CAP_SYS_RESOURCE) || capable(k, c, CAP_SYS_ADMIN);
}

/**
 * models io_wqe_enqueue(wqe, work), v5.10: refused unbound work is cancelled at once
 * (io_run_cancel); else queued, and a worker is woken (or the manager) when the work is
 * CONCURRENT or nothing of its account runs.
 */
export function ioWqKthreadEnqueue<W extends IoWqKthreadWork>(k: Kernel, wq: IoWqKthread<W>, work: W): void {
  const q = wq as unknown as IoWqKthread<IoWqKthreadWork>;
  const acct = wq.acct[work.flags & IO_WQ_WORK_UNBOUND ? IO_WQ_ACCT_UNBOUND : IO_WQ_ACCT_BOUND];
  if (!ioWqCanQueue(k, q, acct, work)) {
    work.flags |= IO_WQ_WORK_CANCEL;
    wq.ops.cancel(k, work);
    return;
  }
  ioWqInsertWork(wq.hashTail, wq.workList, work);
  wq.stalled = false;
  if (work.flags & IO_WQ_WORK_CONCURRENT || !acct.nrRunning) ioWqeWakeWorker(k, q, acct);
}

/** models io_worker_start(): PF_IO_WORKER, UP and RUNNING. */
function ioWorkerStart(k: Kernel, worker: KIoWorker<IoWqKthreadWork>): void {
  k.current!.flags |= PF_IO_WORKER;
  worker.flags |= IO_WORKER_F_UP | IO_WORKER_F_RUNNING;
  worker.acct.nrRunning++;
}

/**
 * models __io_worker_busy(), v5.10: off the free list; a worker that takes work of the other
 * account moves there, and its wq->user->processes share with it.
 */
function ioWorkerBusy(k: Kernel, worker: KIoWorker<IoWqKthreadWork>, work: IoWqWork): void {
  const wq = worker.wq;
  if (worker.flags & IO_WORKER_F_FREE) {
    worker.flags &= ~IO_WORKER_F_FREE;
    const i = wq.freeList.indexOf(worker);
    if (i >= 0) wq.freeList.splice(i, 1);
  }
  const workerBound = (worker.flags & IO_WORKER_F_BOUND) !== 0;
  const workBound = (work.flags & IO_WQ_WORK_UNBOUND) === 0;
  if (workerBound === workBound) return;
  ioWqeDecRunning(k, worker);
  const [b, u] = wq.acct;
  if (workBound) {
    worker.flags |= IO_WORKER_F_BOUND;
    u.nrWorkers--;
    b.nrWorkers++;
    chargeUser(k, wq, -1);
  } else {
    worker.flags &= ~IO_WORKER_F_BOUND;
    u.nrWorkers++;
    b.nrWorkers--;
    chargeUser(k, wq, 1);
  }
  worker.acct.nrRunning++;
}

/** models __io_worker_unuse(): revert the creds, kthread_unuse_mm + mmput. */
function ioWorkerUnuse(k: Kernel, worker: KIoWorker<IoWqKthreadWork>): boolean {
  worker.curCreds = null;
  if (!worker.mm) return false;
  k.current!.state = TASK_RUNNING;
  const mm = worker.mm;
  worker.mm = null;
  kthreadUnuseMm(k, mm);
  mmput(k, mm);
  return true;
}

/**
 * models io_impersonate_work() → io_wq_switch_mm() and io_wq_switch_creds(), v5.10: the
 * worker takes on the request's mm (mmget_not_zero + kthread_use_mm; an mm already gone
 * cancels the work) and its creds. files, nsproxy and fs are taken only for opcodes that
 * need them (openat, …), none of which is modelled.
 */
function ioImpersonateWork(k: Kernel, worker: KIoWorker<IoWqKthreadWork>, work: IoWqKthreadWork): void {
  if (work.mm !== worker.mm) {
    if (worker.mm) {
      const old = worker.mm;
      worker.mm = null;
      kthreadUnuseMm(k, old);
      mmput(k, old);
    }
    if (work.mm) {
      if (!work.mm.released) {
        work.mm.users++;
        kthreadUseMm(k, work.mm);
        worker.mm = work.mm;
      } else work.flags |= IO_WQ_WORK_CANCEL;
    }
  }
  if (worker.curCreds !== work.creds) worker.curCreds = work.creds;
}

/**
 * models io_worker_handle_work(), v5.10: run queued works (either account) until none is
 * runnable; a hashed chain runs in order and its bit is cleared (and the stall with it) after
 * the last; finding only held hashes stalls the wqe.
 */
function* ioWorkerHandleWork(k: Kernel, worker: KIoWorker<IoWqKthreadWork>): KGen<void> {
  const wq = worker.wq;
  for (;;) {
    const { chain } = ioWqTakeNextWork(wq.hashTail, wq.workList, wq.hashMap);
    if (!chain.length) {
      if (wq.workList.length) wq.stalled = true;
      return;
    }
    ioWorkerBusy(k, worker, chain[0]!);
    for (let work = chain.shift(); work; work = chain.shift()) {
      const hash = ioWqIsHashed(work) ? ioGetWorkHash(work) : -1;
      // io_assign_current_work(): flush pending signals before assigning new work
      k.current!.notifySignal = false;
      worker.curWork = work;
      ioImpersonateWork(k, worker, work);
      k.current!.state = TASK_RUNNING;
      if (work.flags & IO_WQ_WORK_CANCEL) wq.ops.cancel(k, work);
      else yield* wq.ops.doWork(k, work);
      worker.curWork = null;
      if (hash !== -1 && !chain.length) {
        wq.hashMap.delete(hash);
        wq.stalled = false;
      }
    }
  }
}

/**
 * models io_wqe_worker(), v5.10: run work; when none is left go idle (free list, mm and creds
 * dropped) and sleep WORKER_IDLE_TIMEOUT; a timeout ends every worker but the fixed one;
 * IO_WQ_BIT_EXIT ends all (after the work still queued).
 */
function* ioWqeWorker(k: Kernel, worker: KIoWorker<IoWqKthreadWork>): KGen<number> {
  const me = k.current!;
  const wq = worker.wq;
  ioWorkerStart(k, worker);
  while (!wq.exiting) {
    me.state = TASK_INTERRUPTIBLE;
    for (;;) {
      if (runQueue(wq)) {
        me.state = TASK_RUNNING;
        yield* ioWorkerHandleWork(k, worker);
        continue;
      }
      // __io_worker_idle(): onto the free list; drops the lock (retry) if it dropped an mm
      if (!(worker.flags & IO_WORKER_F_FREE)) {
        worker.flags |= IO_WORKER_F_FREE;
        wq.freeList.unshift(worker);
      }
      if (ioWorkerUnuse(k, worker)) continue;
      break;
    }
    // flush_signals(current)
    me.notifySignal = false;
    const timedOut = yield* scheduleTimeout(k, WORKER_IDLE_TIMEOUT_NS);
    if (!timedOut) continue;
    if (wq.exiting || !(worker.flags & IO_WORKER_F_FIXED)) break;
  }
  if (wq.exiting && runQueue(wq)) yield* ioWorkerHandleWork(k, worker);
  ioWorkerExit(k, worker);
  return 0;
}

/**
 * models io_worker_exit(), 5.10.y: PF_IO_WORKER cleared, leave the running count, an unbound
 * worker leaves wq->user->processes, off the lists, mm and creds dropped, nr_workers--, its
 * wq->refs put (the last one completes wq->done).
 */
function ioWorkerExit(k: Kernel, worker: KIoWorker<IoWqKthreadWork>): void {
  const wq = worker.wq;
  const me = k.current!;
  const acct = worker.acct;
  me.flags &= ~PF_IO_WORKER;
  if (worker.flags & IO_WORKER_F_RUNNING) acct.nrRunning--;
  if (!(worker.flags & IO_WORKER_F_BOUND)) chargeUser(k, wq, -1);
  worker.flags = 0;
  const i = wq.freeList.indexOf(worker);
  if (i >= 0) wq.freeList.splice(i, 1);
  wq.allList.delete(worker);
  ioWorkerUnuse(k, worker);
  acct.nrWorkers--;
  workerOf.delete(me);
  if (--wq.refs === 0) complete(k, wq.done);
}

/**
 * models io_wq_cancel_cb(wq, match, cancel_all=true), v5.10: matching queued works are
 * removed and cancelled; a worker running a matching work is signalled (send_sig(SIGINT),
 * which interrupts its sleep). Returns how many were found.
 */
export function ioWqKthreadCancelCb<W extends IoWqKthreadWork>(
  k: Kernel,
  wq: IoWqKthread<W>,
  match: (w: W) => boolean,
): number {
  let n = 0;
  for (const w of wq.workList.filter(match)) {
    ioWqRemovePending(wq.hashTail, wq.workList, w);
    w.flags |= IO_WQ_WORK_CANCEL;
    wq.ops.cancel(k, w);
    n++;
  }
  for (const worker of wq.allList)
    if (worker.curWork && match(worker.curWork) && worker.task) {
      signalWorker(k, worker.task);
      n++;
    }
  return n;
}

/**
 * send_sig(SIGINT, worker->task, 1) to a worker that allow_kernel_signal(SIGINT)ed: the model
 * delivers it as the interruption of the worker's interruptible sleep (its work then fails
 * with -EINTR); the worker flushes it before its next work (io_assign_current_work).
 */
function signalWorker(k: Kernel, t: Task): void {
  t.notifySignal = true;
  k.tryToWakeUp(t, TASK_INTERRUPTIBLE);
}

/**
 * models io_wq_destroy() → __io_wq_destroy(), 5.10.y, as ring release reaches it
 * (io_ring_ctx_free → io_finish_async, after io_ring_ctx_wait_and_kill cancelled the ring's
 * works with io_wq_cancel_cb): IO_WQ_BIT_EXIT, kthread_stop(manager), every worker woken.
 * In Linux io_ring_exit_work (a kworker) waits for the manager and the workers to exit
 * (wq->done); that kworker is not a task here, so nobody waits.
 */
export function ioWqKthreadDestroy<W extends IoWqKthreadWork>(k: Kernel, wq: IoWqKthread<W>): void {
  wq.exiting = true;
  const m = wq.manager;
  if (m?.kthread) {
    // kthread_stop() up to its wait_for_completion(&kthread->exited)
    m.kthread.flags |= 1 << KTHREAD_SHOULD_STOP;
    m.notifySignal = true;
    k.wakeUpProcess(m);
  }
  for (const w of wq.allList) if (w.task) k.wakeUpProcess(w.task);
}
