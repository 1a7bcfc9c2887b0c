/**
 * The SQPOLL thread (IORING_SETUP_SQPOLL): a thread of the ring's creator named
 * `iou-sqp-<creator pid>` that polls the SQ ring and submits on its behalf. Models
 * io_uring/sqpoll.c io_sq_offload_create(), io_sq_thread(), io_sqd_handle_event() and
 * io_sq_thread_stop(), v6.12, with the creation API of the profile (create_io_thread, or the
 * V5 kernel_worker(KERN_WORKER_IO) + kernel_worker_start naming).
 *
 * While it has work or its idle time (sq_thread_idle ms, default 1 s) has not passed, the
 * thread busy-polls; the model runs that poll in slices of SQPOLL_SPIN_SLICE_NS of charged
 * CPU time. Then it sets IORING_SQ_NEED_WAKEUP and sleeps until io_uring_enter(SQ_WAKEUP).
 */
import { Errno, err, ok, type Result } from '../kernel/errno.js';
import { doExit } from '../kernel/exit.js';
import { createIoThread } from '../kernel/fork.js';
import type { Kernel } from '../kernel/kernel.js';
import { kthreadCreateOnNode } from '../kernel/kthread.js';
import { Completion, complete, type KGen, Op, WaitQueue } from '../kernel/sched.js';
import {
  CLONE_FILES,
  CLONE_FS,
  CLONE_IO,
  CLONE_SIGHAND,
  CLONE_THREAD,
  PF_NO_SETAFFINITY,
  TASK_INTERRUPTIBLE,
  TASK_RUNNING,
} from '../kernel/sched-consts.js';
import { getSignal } from '../kernel/signal.js';
import { setTaskComm } from '../kernel/syscalls.js';
import type { Task } from '../kernel/task.js';
import { taskWorkPending } from '../kernel/task-work.js';
import { KERN_WORKER_IO, kernelWorker, kernelWorkerStart } from '../kernel/user-worker.js';
import { type IoRingCtx, ioSubmitSqes, ioUringAllocTaskContext, ioUringCancelGeneric } from './io_uring.js';
import { ioRunTaskWork } from './io-wq.js';
import { IORING_SQ_NEED_WAKEUP } from './uapi.js';

/** CPU time one busy-poll pass of the SQ thread is charged in the model */
export const SQPOLL_SPIN_SLICE_NS = 100_000;
/** IORING_SQPOLL_CAP_ENTRIES_VALUE: SQEs per ring per pass when one thread serves several rings */
const IORING_SQPOLL_CAP_ENTRIES_VALUE = 8;

/** struct io_sq_data */
export class SqData {
  thread: Task | null = null;
  readonly ctxs = new Set<IoRingCtx>();
  /** IO_SQ_THREAD_SHOULD_STOP */
  stop = false;
  /** sqd->wait */
  readonly wait = new WaitQueue('io_sq_data wait');
  readonly exited = new Completion('io_sq_data.exited');
  constructor(
    /** sqd->task_pid: the creator's pid, for the name */
    readonly taskPid: number,
    /** sq_thread_idle in ns */
    readonly idleNs: number,
    /** sq_cpu, or -1 */
    readonly cpu: number,
  ) {}
}

/**
 * models io_sq_offload_create(ctx, p), v6.12: a new io_sq_data (idle = sq_thread_idle ms, or
 * HZ when 0), the thread created from the caller (its copy_process error is the setup's
 * error), given a tctx whose io-wq limits come from the caller, and started. Where the era's
 * workers are kthreads (v5.10) the thread is kthread_create(io_sq_thread, sqd, "io_uring-sq"),
 * or kthread_create_on_cpu() with IORING_SETUP_SQ_AFF (bound to that CPU: kthread_bind).
 */
export function* ioSqOffloadCreate(
  k: Kernel,
  ctx: IoRingCtx,
  idleMs: number,
  cpu: number,
): KGen<Result<SqData>> {
  const cur = k.current!;
  if (cpu >= k.nrCpus) return err(Errno.EINVAL);
  const sqd = new SqData(cur.pid, (idleMs || 1000) * 1_000_000, cpu);
  sqd.ctxs.add(ctx);
  ctx.sqData = sqd;
  const body = () => ioSqThread(k, sqd);
  if (k.profile.ioWorkerApi === 'kthread') {
    // v5.10's io_sq_thread takes on the ring creator's mm and creds around the submissions
    // that need them; here SQPOLL on that era reaches only NOP and the EBADF of unregistered
    // files, neither of which touches user memory, so the kthread keeps no mm
    const r = yield* kthreadCreateOnNode(k, body, sqd, 'io_uring-sq');
    if (!r.ok) {
      ctx.sqData = null;
      return r;
    }
    const t = r.value;
    if (cpu >= 0) {
      // kthread_bind(): that CPU only, PF_NO_SETAFFINITY
      t.cpusAllowed = 1 << cpu;
      t.flags |= PF_NO_SETAFFINITY;
    }
    sqd.thread = t;
    ioUringAllocTaskContext(k, t, ctx).ctxs.add(ctx);
    ctx.tctxList.add(t);
    k.wakeUpProcess(t);
    return ok(sqd);
  }
  const r =
    k.profile.ioWorkerApi === 'kernel-worker'
      ? kernelWorker(
          k,
          body,
          CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_IO,
          KERN_WORKER_IO,
        )
      : createIoThread(k, body);
  if (!r.ok) {
    ctx.sqData = null;
    return r;
  }
  const t = r.value;
  sqd.thread = t;
  ioUringAllocTaskContext(k, t, ctx).ctxs.add(ctx);
  ctx.tctxList.add(t);
  if (k.profile.ioWorkerApi === 'kernel-worker') kernelWorkerStart(k, t, `iou-sqp-${sqd.taskPid}`);
  else k.wakeUpNewTask(t);
  return ok(sqd);
}

/** models io_sq_thread_stop() without the wait: set SHOULD_STOP and wake the thread. */
export function ioSqThreadStop(k: Kernel, sqd: SqData): void {
  sqd.stop = true;
  if (sqd.thread) {
    sqd.thread.notifySignal = true;
    k.wakeUpProcess(sqd.thread);
  }
}

/** models io_sqd_handle_event(): a signal (get_signal) or SHOULD_STOP ends the loop. */
function* ioSqdHandleEvent(k: Kernel, sqd: SqData): KGen<boolean> {
  const me = k.current!;
  let didSig = false;
  if (me.sigpending || me.notifySignal) {
    const ks = yield* getSignal(k);
    didSig = ks.fatal || ks.sig !== 0;
  }
  return didSig || sqd.stop;
}

/** models io_sq_thread(), v6.12. */
function* ioSqThread(k: Kernel, sqd: SqData): KGen<number> {
  const me = k.current!;
  if (k.profile.ioWorkerApi === 'io-thread') setTaskComm(k, me, `iou-sqp-${sqd.taskPid}`);
  // a kthread keeps what kthread() and kthread_bind() gave it
  if (k.profile.ioWorkerApi !== 'kthread')
    me.cpusAllowed =
      sqd.cpu >= 0 ? 1 << sqd.cpu : k.onlineCpus & (me.cgroups[0]?.effectiveCpus(k) ?? k.onlineCpus);
  if (k.profile.ioWorkerNoSetaffinity) me.flags |= PF_NO_SETAFFINITY;
  let timeout = k.clock + sqd.idleNs;
  for (;;) {
    if (sqd.stop || me.sigpending || me.notifySignal) {
      if (yield* ioSqdHandleEvent(k, sqd)) break;
      timeout = k.clock + sqd.idleNs;
    }
    const cap = sqd.ctxs.size > 1;
    let spin = false;
    for (const ctx of sqd.ctxs) {
      const n = yield* ioSubmitSqes(k, ctx, cap ? IORING_SQPOLL_CAP_ENTRIES_VALUE : ctx.sqEntries);
      if (n > 0) spin = true;
    }
    if (yield* ioRunTaskWork(k)) spin = true;
    if (spin || k.clock < timeout) {
      if (spin) timeout = k.clock + sqd.idleNs;
      k.charge(SQPOLL_SPIN_SLICE_NS);
      k.current!.at = 'io_sq_thread(): cond_resched() while it spins';
      yield Op.Preempt;
      continue;
    }
    sqd.wait.waiters.add(me);
    me.state = TASK_INTERRUPTIBLE;
    if (!sqd.stop && !taskWorkPending(me)) {
      let needsSched = true;
      for (const ctx of sqd.ctxs) {
        ctx.rings.sqFlags |= IORING_SQ_NEED_WAKEUP;
        if (ctx.rings.sqEntriesReady()) needsSched = false;
      }
      if (needsSched && !me.sigpending && !me.notifySignal) yield Op.Schedule;
      for (const ctx of sqd.ctxs) ctx.rings.sqFlags &= ~IORING_SQ_NEED_WAKEUP;
    }
    sqd.wait.waiters.delete(me);
    me.state = TASK_RUNNING;
    timeout = k.clock + sqd.idleNs;
  }
  yield* ioUringCancelGeneric(k, true, sqd);
  sqd.thread = null;
  for (const ctx of sqd.ctxs) ctx.rings.sqFlags |= IORING_SQ_NEED_WAKEUP;
  yield* ioRunTaskWork(k);
  complete(k, sqd.exited);
  return yield* doExit(k, 0);
}
