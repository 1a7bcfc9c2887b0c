/**
 * io_uring: io_uring_setup(2), io_uring_enter(2), io_uring_register(2) (the
 * IORING_REGISTER_IOWQ_MAX_WORKERS opcode), the ring file (mmap, release), the per-task
 * context (tctx) with its io-wq, submission and issue of NOP/READ/WRITE on pipes and
 * eventfds, poll arming, completion into the CQ ring, and the cancellation io_uring does on
 * exit and exec. Models io_uring/io_uring.c, tctx.c, register.c, rw.c, poll.c and cancel.c,
 * v6.12 (fs/io_uring.c of v5.15 for what the profile marks as older).
 *
 * READ/WRITE work on pipes and eventfds, which are pollable, so a request that would block
 * arms poll (IORING_FEAT_FAST_POLL) and only IOSQE_ASYNC sends it to io-wq; there it blocks
 * the worker (5.15) or, from v5.16's "async hybrid mode", is issued non-blocking and arms poll
 * (profile `ioWqArmsPoll`). On regular files (tmpfs, kernel/shmem.ts), which cannot be
 * polled, a request that cannot be issued with IOCB_NOWAIT goes to the BOUND io-wq account,
 * writes hashed by inode so that one worker at a time runs them.
 */
import { CAP_SYS_ADMIN, type Cred, capable } from '../kernel/cred.js';
import { Errno, err, ok, type Result } from '../kernel/errno.js';
import { File, type FileOps, O_CLOEXEC, O_NONBLOCK } from '../kernel/files.js';
import type { Kernel } from '../kernel/kernel.js';
import type { MM } from '../kernel/mm.js';
import { RLIMIT_NOFILE } from '../kernel/rlimit.js';
import { type KGen, Op, WaitQueue } from '../kernel/sched.js';
import { TASK_INTERRUPTIBLE, TASK_RUNNING } from '../kernel/sched-consts.js';
import type { Sys } from '../kernel/syscalls.js';
import type { Task } from '../kernel/task.js';
import { taskWorkAdd, taskWorkPending } from '../kernel/task-work.js';
import {
  IO_WQ_WORK_CANCEL,
  IO_WQ_WORK_CONCURRENT,
  IO_WQ_WORK_UNBOUND,
  type IoWq,
  IoWqHash,
  type IoWqWork,
  ioRunTaskWork,
  ioWqCancelCb,
  ioWqCreate,
  ioWqEnqueue,
  ioWqExitStart,
  ioWqHashWork,
  ioWqMaxWorkers,
  ioWqPutAndExit,
} from './io-wq.js';
import {
  type IoWqKthread,
  ioWqKthreadCancelCb,
  ioWqKthreadCreate,
  ioWqKthreadDestroy,
  ioWqKthreadEnqueue,
} from './io-wq-kthread.js';
import { Rings } from './rings.js';
import { ioSqOffloadCreate, ioSqThreadStop, type SqData } from './sqpoll.js';
import {
  decodeParams,
  encodeParams,
  IORING_ENTER_GETEVENTS,
  IORING_ENTER_SQ_WAIT,
  IORING_ENTER_SQ_WAKEUP,
  IORING_FEAT_SQPOLL_NONFIXED,
  IORING_MAX_CQ_ENTRIES,
  IORING_MAX_ENTRIES,
  IORING_OFF_CQ_RING,
  IORING_OFF_SQ_RING,
  IORING_OFF_SQES,
  IORING_OP_NOP,
  IORING_OP_READ,
  IORING_OP_WRITE,
  IORING_REGISTER_IOWQ_MAX_WORKERS,
  IORING_SETUP_CLAMP,
  IORING_SETUP_CQSIZE,
  IORING_SETUP_SQ_AFF,
  IORING_SETUP_SQPOLL,
  IORING_SQ_CQ_OVERFLOW,
  IOSQE_ASYNC,
  IOSQE_FIXED_FILE,
  IOSQE_IO_DRAIN,
  IOSQE_IO_HARDLINK,
  IOSQE_IO_LINK,
  PARAMS_SIZE,
  type Sqe,
} from './uapi.js';

/** struct io_ring_ctx (the parts modelled) */
export class IoRingCtx {
  readonly rings: Rings;
  sqData: SqData | null = null;
  /** ctx->cq_wait */
  readonly cqWait = new WaitQueue('io_uring cq_wait');
  /** ctx->iowq_limits / iowq_limits_set */
  iowqLimits: [number, number] = [0, 0];
  iowqLimitsSet = false;
  /** ctx->tctx_list: the tasks that use this ring */
  readonly tctxList = new Set<Task>();
  /** requests waiting on a poll wait queue (ctx->cancel_table) */
  readonly polls = new Set<IoKiocb>();
  /** percpu_ref_kill(&ctx->refs) ran: the ring file was released */
  dead = false;
  /** ctx->hash_map: the hash bits shared by the io-wqs of every task using this ring */
  readonly hashMap = new IoWqHash();
  /** ctx->io_wq: the ring's own io-wq where workers are kthreads (`ioWorkerApi` 'kthread') */
  ioWq: IoWqKthread<IoKiocb> | null = null;
  constructor(
    readonly flags: number,
    sqEntries: number,
    cqEntries: number,
    packed: boolean,
  ) {
    this.rings = new Rings(sqEntries, cqEntries, packed);
  }
  get sqEntries(): number {
    return this.rings.sqEntries;
  }
  get cqEntries(): number {
    return this.rings.cqEntries;
  }
}

/** struct io_uring_task (tctx) */
export class IoUringTask {
  ioWq: IoWq<IoKiocb> | null = null;
  /** tctx->xa: the rings this task used */
  readonly ctxs = new Set<IoRingCtx>();
  /** tctx->inflight */
  inflight = 0;
  /** tctx->wait */
  readonly wait = new WaitQueue('io_uring tctx wait');
}

/** struct io_kiocb (the parts modelled); its io_wq_work is itself */
export class IoKiocb implements IoWqWork {
  /** work.flags (IO_WQ_WORK_*) */
  flags = 0;
  /** the wait entry while poll is armed */
  pollWake: (() => void) | null = null;
  pollQueue: WaitQueue | null = null;
  done = false;
  /** work->mm and work->creds, taken when the request goes async (v5.10 io_req_init_async) */
  mm: MM | null = null;
  creds: Cred | null = null;
  constructor(
    readonly ctx: IoRingCtx,
    /** req->task: the submitter, whose tctx counts it and who runs its task_work */
    readonly task: Task,
    readonly sqe: Sqe,
    readonly file: File | null,
  ) {}
  get forceAsync(): boolean {
    return (this.sqe.flags & IOSQE_ASYNC) !== 0;
  }
}

const tctxOf = new WeakMap<Task, IoUringTask>();

/** current->io_uring */
export function taskIoUring(t: Task): IoUringTask | null {
  return tctxOf.get(t) ?? null;
}

/** The io-wq workers of a task's tctx (for tests and views). */
export function ioWqOf(t: Task): IoWq<IoKiocb> | null {
  return tctxOf.get(t)?.ioWq ?? null;
}

/** The io-wqs of the rings a task uses, where the era gives each ring its own (v5.10; for tests and views). */
export function ringIoWqsOf(t: Task): IoWqKthread<IoKiocb>[] {
  return [...(tctxOf.get(t)?.ctxs ?? [])].flatMap((c) => (c.ioWq ? [c.ioWq] : []));
}

const IO_WQ_OPS = {
  doWork: ioWqSubmitWork,
  cancel: (k: Kernel, req: IoKiocb) => ioReqComplete(k, req, -Errno.ECANCELED),
};

/**
 * models io_uring_alloc_task_context(task, ctx) → io_init_wq_offload(), v6.12: a tctx with an
 * io-wq whose bound limit is min(SQ entries, 4 × online CPUs) and whose hash map is the
 * ring's; the unbound limit comes from io_wq_create (the caller's RLIMIT_NPROC).
 */
export function ioUringAllocTaskContext(k: Kernel, task: Task, ctx: IoRingCtx): IoUringTask {
  const tctx = new IoUringTask();
  const concurrency = Math.min(ctx.sqEntries, 4 * k.nrCpus);
  // fs/io_uring.c of v5.10: the tctx has no io-wq, the ring has (io_init_wq_offload)
  if (k.profile.ioWorkerApi !== 'kthread')
    tctx.ioWq = ioWqCreate(k, concurrency, task, IO_WQ_OPS, ctx.hashMap);
  tctxOf.set(task, tctx);
  return tctx;
}

/**
 * models __io_uring_add_tctx_node(ctx), v6.12: the current task gets a tctx on first use; a
 * ring whose limits were registered applies them to the new io-wq.
 */
function ioUringAddTctxNode(k: Kernel, ctx: IoRingCtx): IoUringTask {
  const t = k.current!;
  let tctx = tctxOf.get(t);
  if (!tctx) {
    tctx = ioUringAllocTaskContext(k, t, ctx);
    if (ctx.iowqLimitsSet && tctx.ioWq) ioWqMaxWorkers(k, tctx.ioWq, [...ctx.iowqLimits]);
  }
  if (!tctx.ctxs.has(ctx)) {
    tctx.ctxs.add(ctx);
    ctx.tctxList.add(t);
  }
  return tctx;
}

// ------------------------------------------------------------------ the ring file

function ctxOf(f: File): IoRingCtx {
  return f.priv as IoRingCtx;
}

export const IO_URING_FOPS: FileOps = {
  name: 'io_uring',
  /** models io_uring_release() → io_ring_ctx_wait_and_kill() and the exit work */
  *release(k, f) {
    ioRingCtxKill(k, ctxOf(f));
  },
};

/**
 * models io_ring_ctx_wait_and_kill() + io_ring_exit_work() + io_ring_ctx_free(), v6.12: the
 * ring is dead; every request of it still queued in some task's io-wq or armed on a poll is
 * cancelled, running ones are interrupted; the SQPOLL thread is told to stop
 * (io_sq_thread_finish). In Linux the cancellation loop runs in a kworker and nobody waits
 * for it; here it runs in the task that dropped the last reference, without waiting.
 */
function ioRingCtxKill(k: Kernel, ctx: IoRingCtx): void {
  if (ctx.dead) return;
  ctx.dead = true;
  ioUringTryCancelRequests(k, ctx, null);
  if (ctx.ioWq) {
    ioWqKthreadDestroy(k, ctx.ioWq);
    ctx.ioWq = null;
  }
  if (ctx.sqData) {
    ctx.sqData.ctxs.delete(ctx);
    if (ctx.sqData.ctxs.size === 0) ioSqThreadStop(k, ctx.sqData);
  }
  for (const t of ctx.tctxList) tctxOf.get(t)?.ctxs.delete(ctx);
  ctx.tctxList.clear();
}

/**
 * models io_uring_try_cancel_requests(ctx, tctx, cancel_all), v6.12: the io-wq works of this
 * ring (of one task's tctx, or of every user when tctx is null) and its armed polls are
 * cancelled. Returns whether anything was found.
 */
function ioUringTryCancelRequests(k: Kernel, ctx: IoRingCtx, task: Task | null): boolean {
  let found = false;
  if (ctx.ioWq && ioWqKthreadCancelCb(k, ctx.ioWq, (r) => !task || r.task === task) > 0) found = true;
  const users = task ? [task] : [...ctx.tctxList];
  for (const t of users) {
    const wq = tctxOf.get(t)?.ioWq;
    if (wq && ioWqCancelCb(k, wq, (r) => r.ctx === ctx && (!task || r.task === task)) > 0) found = true;
  }
  // io_poll_remove_all()
  for (const req of [...ctx.polls])
    if (!task || req.task === task) {
      ioPollDisarm(req);
      ioReqComplete(k, req, -Errno.ECANCELED);
      found = true;
    }
  if (ctx.sqData?.thread && !task) {
    const wq = tctxOf.get(ctx.sqData.thread)?.ioWq;
    if (wq && ioWqCancelCb(k, wq, (r) => r.ctx === ctx) > 0) found = true;
  }
  return found;
}

// ------------------------------------------------------------------ syscalls

/**
 * io_uring_setup(2), models io_uring_setup() → io_uring_create(), v6.12: entries 0 or above
 * IORING_MAX_ENTRIES (without CLAMP) → EINVAL; SQ entries rounded up to a power of two; CQ
 * entries twice that or the CQSIZE value (not below the SQ entries, EINVAL); SQ_AFF needs
 * SQPOLL (EINVAL); with SQPOLL the `iou-sqp-<pid>` thread is created (its copy_process error
 * fails the setup); the caller gets a tctx and io-wq (__io_uring_add_tctx_node); the params
 * are written back with the ring offsets; the fd is O_RDWR|O_CLOEXEC. Only the flags SQPOLL,
 * SQ_AFF, CQSIZE and CLAMP are modelled (others: EINVAL).
 */
export function* ioUringSetup(sys: Sys, entries: number, paramsAddr: number): KGen<Result<number>> {
  return yield* sys.invoke(() => ioUringSetupBody(sys, entries, paramsAddr));
}

const roundupPow2 = (n: number) => 2 ** Math.ceil(Math.log2(Math.max(1, n)));

function* ioUringSetupBody(sys: Sys, entriesIn: number, paramsAddr: number): KGen<Result<number>> {
  const k = sys.k;
  const t = sys.task;
  const mm = t.mm;
  const pv = mm?.view(paramsAddr, PARAMS_SIZE);
  if (!pv?.ok) return err(Errno.EFAULT);
  const p = decodeParams(pv.value);
  const known = IORING_SETUP_SQPOLL | IORING_SETUP_SQ_AFF | IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
  if (p.flags & ~known) return err(Errno.EINVAL);
  let entries = entriesIn >>> 0;
  if (!entries) return err(Errno.EINVAL);
  if (entries > IORING_MAX_ENTRIES) {
    if (!(p.flags & IORING_SETUP_CLAMP)) return err(Errno.EINVAL);
    entries = IORING_MAX_ENTRIES;
  }
  const sqEntries = roundupPow2(entries);
  let cqEntries: number;
  if (p.flags & IORING_SETUP_CQSIZE) {
    if (!p.cqEntries) return err(Errno.EINVAL);
    let c = p.cqEntries;
    if (c > IORING_MAX_CQ_ENTRIES) {
      if (!(p.flags & IORING_SETUP_CLAMP)) return err(Errno.EINVAL);
      c = IORING_MAX_CQ_ENTRIES;
    }
    cqEntries = roundupPow2(c);
    if (cqEntries < sqEntries) return err(Errno.EINVAL);
  } else cqEntries = 2 * sqEntries;
  if (p.flags & IORING_SETUP_SQ_AFF && !(p.flags & IORING_SETUP_SQPOLL)) return err(Errno.EINVAL);
  const ctx = new IoRingCtx(p.flags, sqEntries, cqEntries, k.profile.ioRingsPackedHeadTail);
  if (p.flags & IORING_SETUP_SQPOLL) {
    // io_sq_offload_create() of v5.10: `if (!capable(CAP_SYS_ADMIN)) goto err;` with -EPERM
    if (k.profile.ioSqpollNeedsSysAdmin && !capable(k, t.cred, CAP_SYS_ADMIN)) return err(Errno.EPERM);
    const r = yield* ioSqOffloadCreate(
      k,
      ctx,
      p.sqThreadIdle,
      p.flags & IORING_SETUP_SQ_AFF ? p.sqThreadCpu : -1,
    );
    if (!r.ok) return r;
  }
  if (k.profile.ioWorkerApi === 'kthread') {
    // io_init_wq_offload(), v5.10: the ring's io-wq, bound limit min(SQ entries, 4 × online
    // CPUs), wq->user = ctx->user (the creator's)
    const concurrency = Math.min(sqEntries, 4 * k.nrCpus);
    const r = yield* ioWqKthreadCreate(k, concurrency, t.cred.ucounts, IO_WQ_OPS);
    if (!r.ok) {
      ioRingCtxKill(k, ctx);
      return r;
    }
    ctx.ioWq = r.value;
  }
  p.sqEntries = sqEntries;
  p.cqEntries = cqEntries;
  p.features = k.profile.ioUringFeatures;
  p.sqOff = ctx.rings.layout.sqOff;
  p.cqOff = ctx.rings.layout.cqOff;
  encodeParams(pv.value, p);
  const file = new File(IO_URING_FOPS, 'anon_inode:[io_uring]', O_CLOEXEC | 2, ctx);
  ioUringAddTctxNode(k, ctx);
  const fd = t.files!.install(file, true, t.signal.rlim[RLIMIT_NOFILE]!.cur);
  if (!fd.ok) ioRingCtxKill(k, ctx);
  if (k.trace.enabled)
    k.emit(
      'io_uring_create',
      `fd=${fd.ok ? fd.value : -1} sq_entries=${sqEntries} cq_entries=${cqEntries} flags=0x${p.flags.toString(16)}`,
    );
  return fd;
}

/**
 * mmap(2) of a ring fd, models io_uring_mmap() → io_uring_validate_mmap_request(), v6.12:
 * IORING_OFF_SQ_RING and IORING_OFF_CQ_RING map the shared struct io_rings (one region,
 * IORING_FEAT_SINGLE_MMAP), IORING_OFF_SQES the SQE array; another offset → EINVAL; a file
 * that is not an io_uring → ENODEV (no such mmap). Returns the address in the caller's mm.
 */
export function* ioUringMmap(sys: Sys, fd: number, offset: number): KGen<Result<number>> {
  return yield* sys.invoke(function* () {
    const f = sys.task.files?.get(fd);
    if (!f) return err(Errno.EBADF);
    if (f.ops !== IO_URING_FOPS) return err(Errno.ENODEV);
    const ctx = ctxOf(f);
    const mm = sys.task.mm;
    if (!mm) return err(Errno.EINVAL);
    let bytes: Uint8Array;
    if (offset === IORING_OFF_SQ_RING || offset === IORING_OFF_CQ_RING) bytes = ctx.rings.bytes;
    else if (offset === IORING_OFF_SQES) bytes = ctx.rings.sqes;
    else return err(Errno.EINVAL);
    f.count++;
    const r = mm.mapShared(bytes, 'anon_inode:[io_uring]', ringVmFile(sys.k, f));
    if (!r.ok) f.count--;
    return r;
  });
}

/**
 * The ring file reference a mapping of the rings holds (vma->vm_file): while the rings are
 * mapped, closing the fd does not release the ring. Linux defers the last fput of a user task
 * to task_work (____fput); io_uring's release never sleeps here, so it runs at once.
 */
function ringVmFile(k: Kernel, f: File) {
  return {
    get: () => {
      f.count++;
    },
    put: () => {
      if (--f.count === 0) ioRingCtxKill(k, ctxOf(f));
    },
  };
}

/**
 * io_uring_enter(2), models SYSCALL_DEFINE6(io_uring_enter), v6.12: unknown flags → EINVAL;
 * not an io_uring fd → EOPNOTSUPP; SQPOLL rings: EOWNERDEAD once the SQ thread is gone,
 * SQ_WAKEUP wakes it, and `to_submit` is returned as is; otherwise the caller's tctx is
 * attached and up to `to_submit` SQEs are submitted; GETEVENTS waits for `min_complete`
 * CQEs. Returns the number submitted, or the wait's result when nothing was.
 */
export function* ioUringEnter(
  sys: Sys,
  fd: number,
  toSubmit: number,
  minComplete: number,
  flags: number,
): KGen<Result<number>> {
  return yield* sys.invoke(() => ioUringEnterBody(sys.k, fd, toSubmit, minComplete, flags));
}

function* ioUringEnterBody(
  k: Kernel,
  fd: number,
  toSubmit: number,
  minCompleteIn: number,
  flags: number,
): KGen<Result<number>> {
  const t = k.current!;
  if (flags & ~(IORING_ENTER_GETEVENTS | IORING_ENTER_SQ_WAKEUP | IORING_ENTER_SQ_WAIT))
    return err(Errno.EINVAL);
  const f = t.files?.get(fd);
  if (!f) return err(Errno.EBADF);
  if (f.ops !== IO_URING_FOPS) return err(Errno.EOPNOTSUPP);
  const ctx = ctxOf(f);
  let ret = 0;
  if (ctx.flags & IORING_SETUP_SQPOLL) {
    ioCqringOverflowFlush(k, ctx);
    if (!ctx.sqData?.thread) return err(Errno.EOWNERDEAD);
    if (flags & IORING_ENTER_SQ_WAKEUP) ctx.sqData.wait.wakeUp(k);
    ret = toSubmit;
  } else if (toSubmit) {
    ioUringAddTctxNode(k, ctx);
    ret = yield* ioSubmitSqes(k, ctx, toSubmit);
  }
  if (flags & IORING_ENTER_GETEVENTS) {
    const r2 = yield* ioCqringWait(k, ctx, Math.min(minCompleteIn, ctx.cqEntries));
    if (!ret && r2 < 0) return err(-r2 as Errno);
  }
  return ok(ret);
}

/**
 * io_uring_register(2), models SYSCALL_DEFINE4(io_uring_register) and
 * __io_register_iowq_max_workers(), v6.12, for IORING_REGISTER_IOWQ_MAX_WORKERS: `arg` holds
 * two u32 (bound, unbound); nr_args must be 2 (EINVAL); a value above INT_MAX → EINVAL; the
 * non-zero values become the ring's limits (for every later user of the ring too); the
 * io-wq of the caller's tctx (of the SQ thread for SQPOLL) gets them, capped at the caller's
 * RLIMIT_NPROC, and the previous limits are written back ([0, 0] without an io-wq); then every
 * other task using the ring gets the ring's limits. Other opcodes are not modelled (EINVAL).
 */
export function* ioUringRegister(
  sys: Sys,
  fd: number,
  opcode: number,
  arg: number,
  nrArgs: number,
): KGen<Result<number>> {
  return yield* sys.invoke(function* () {
    const k = sys.k;
    // before v5.15 the opcode is >= IORING_REGISTER_LAST: EINVAL before the fd is looked at
    if (!k.profile.ioRegisterIowqMaxWorkers) return err(Errno.EINVAL);
    const f = sys.task.files?.get(fd);
    if (!f) return err(Errno.EBADF);
    if (f.ops !== IO_URING_FOPS) return err(Errno.EOPNOTSUPP);
    if (opcode !== IORING_REGISTER_IOWQ_MAX_WORKERS) return err(Errno.EINVAL);
    const ctx = ctxOf(f);
    if (!arg || nrArgs !== 2) return err(Errno.EINVAL);
    const v = sys.task.mm?.view(arg, 8);
    if (!v?.ok) return err(Errno.EFAULT);
    const nc: [number, number] = [v.value.getUint32(0, true), v.value.getUint32(4, true)];
    if (nc[0] > 0x7fffffff || nc[1] > 0x7fffffff) return err(Errno.EINVAL);
    let tctx: IoUringTask | null;
    const sqd = ctx.flags & IORING_SETUP_SQPOLL ? ctx.sqData : null;
    if (sqd) tctx = sqd.thread ? (tctxOf.get(sqd.thread) ?? null) : null;
    else tctx = tctxOf.get(sys.task) ?? null;
    for (let i = 0; i < 2; i++) if (nc[i]) ctx.iowqLimits[i] = nc[i]!;
    ctx.iowqLimitsSet = true;
    const prev: [number, number] = tctx?.ioWq ? ioWqMaxWorkers(k, tctx.ioWq, nc) : [0, 0];
    v.value.setUint32(0, prev[0], true);
    v.value.setUint32(4, prev[1], true);
    if (!sqd)
      for (const u of ctx.tctxList) {
        const wq = tctxOf.get(u)?.ioWq;
        if (wq) ioWqMaxWorkers(k, wq, [...ctx.iowqLimits]);
      }
    return ok(0);
  });
}

// ------------------------------------------------------------------ submission and issue

/**
 * models io_submit_sqes(ctx, nr), v6.12: consume min(nr, queued) SQEs, each becoming a
 * request counted in the submitter's tctx inflight and queued (io_queue_sqe); publish the
 * new SQ head. Returns the number consumed.
 */
export function* ioSubmitSqes(k: Kernel, ctx: IoRingCtx, nr: number): KGen<number> {
  const entries = ctx.rings.sqEntriesReady();
  const n = Math.min(nr, entries);
  const t = k.current!;
  const tctx = tctxOf.get(t);
  let submitted = 0;
  for (let i = 0; i < n; i++) {
    const sqe = ctx.rings.getSqe();
    submitted++;
    if (!sqe) continue;
    const file = sqe.opcode === IORING_OP_NOP ? null : (t.files?.get(sqe.fd) ?? null);
    const req = new IoKiocb(ctx, t, sqe, file);
    if (tctx) tctx.inflight++;
    if (k.trace.enabled)
      k.emit(
        'io_uring_submit_req',
        `opcode=${sqe.opcode} user_data=0x${sqe.userData.toString(16)} flags=0x${sqe.flags.toString(16)}`,
      );
    yield* ioQueueSqe(k, req);
  }
  ctx.rings.commitSqring();
  return submitted;
}

const VALID_SQE_FLAGS = IOSQE_FIXED_FILE | IOSQE_IO_DRAIN | IOSQE_IO_LINK | IOSQE_IO_HARDLINK | IOSQE_ASYNC;

/**
 * models io_init_req() checks + io_queue_sqe(), v6.12: an unknown SQE flag → -EINVAL; a
 * missing file → -EBADF; IOSQE_ASYNC → io-wq; otherwise a non-blocking issue, and on
 * -EAGAIN poll is armed (pollable files) or the request goes to io-wq (io_queue_async).
 */
function* ioQueueSqe(k: Kernel, req: IoKiocb): KGen<void> {
  const op = req.sqe.opcode;
  if (op !== IORING_OP_NOP && op !== IORING_OP_READ && op !== IORING_OP_WRITE)
    throw new Error(`io_uring opcode ${op} is not modelled`);
  if (
    req.sqe.flags & ~VALID_SQE_FLAGS ||
    req.sqe.flags & (IOSQE_FIXED_FILE | IOSQE_IO_LINK | IOSQE_IO_HARDLINK)
  )
    return ioReqComplete(k, req, -Errno.EINVAL);
  // io_req_set_file() before IORING_FEAT_SQPOLL_NONFIXED (v5.10): `if (!fixed &&
  // io_async_submit(ctx)) return -EBADF;` (SQPOLL takes registered files only)
  const sqpollFixedOnly =
    req.ctx.flags & IORING_SETUP_SQPOLL && !(k.profile.ioUringFeatures & IORING_FEAT_SQPOLL_NONFIXED);
  if (op !== IORING_OP_NOP && (!req.file || sqpollFixedOnly)) return ioReqComplete(k, req, -Errno.EBADF);
  if (req.forceAsync) return ioQueueIowq(k, req);
  const res = yield* ioIssueSqe(k, req, true);
  if (res !== -Errno.EAGAIN) return ioReqComplete(k, req, res);
  if (req.file?.ops.pollQueue && !(req.file.flags & O_NONBLOCK)) ioArmPoll(k, req);
  else if (req.file && req.file.flags & O_NONBLOCK && !req.file.ops.regInode) ioReqComplete(k, req, res);
  else ioQueueIowq(k, req);
}

/**
 * models io_prep_async_work() + io_queue_iowq(), v6.12 (the same rules in fs/io_uring.c of
 * v5.10 and v5.15): IOSQE_ASYNC work is IO_WQ_WORK_CONCURRENT; on a regular file (REQ_F_ISREG)
 * the work stays bound and a WRITE (hash_reg_file) is hashed by the file's inode; READ/WRITE
 * on any other file is IO_WQ_WORK_UNBOUND (unbound_nonreg_file); NOP is bound. Queued on the
 * submitter's io-wq, or on the ring's where the era has one (v5.10 io_queue_async_work →
 * io_wq_enqueue(ctx->io_wq)).
 */
function ioQueueIowq(k: Kernel, req: IoKiocb): void {
  if (req.forceAsync) req.flags |= IO_WQ_WORK_CONCURRENT;
  const inode = req.file?.ops.regInode?.(req.file);
  if (inode) {
    if (req.sqe.opcode === IORING_OP_WRITE) ioWqHashWork(req, inode.ino);
  } else if (req.file && req.sqe.opcode !== IORING_OP_NOP) req.flags |= IO_WQ_WORK_UNBOUND;
  if (k.trace.enabled)
    k.emit(
      'io_uring_queue_async_work',
      `user_data=0x${req.sqe.userData.toString(16)} opcode=${req.sqe.opcode} ${req.flags & IO_WQ_WORK_UNBOUND ? 'unbound' : 'bound'} queue`,
    );
  const kwq = req.ctx.ioWq;
  if (kwq) {
    // v5.10 io_req_init_async(): READ/WRITE need the submitter's mm; every request its creds
    if (req.sqe.opcode !== IORING_OP_NOP) req.mm = k.current!.mm;
    req.creds = k.current!.cred;
    ioWqKthreadEnqueue(k, kwq, req);
    return;
  }
  const wq = tctxOf.get(req.task)?.ioWq;
  if (!wq) throw new Error(`io_queue_iowq: ${req.task} has no io-wq`);
  ioWqEnqueue(k, wq, req);
}

/**
 * models io_kiocb_update_pos(), v6.12: sqe->off of -1 means the file position, any other
 * value is the offset of a positional read or write
 */
function ioKiocbPos(sqe: Sqe): number | undefined {
  return BigInt.asIntN(64, sqe.off) === -1n ? undefined : Number(sqe.off);
}

/**
 * models io_file_supports_nowait(), v6.12, for a regular file: REQ_F_SUPPORT_NOWAIT
 * (O_NONBLOCK or FMODE_NOWAIT) where the era relies on it (`ioRegFileNowaitNeedsFmode`);
 * before v6.5 __io_file_supports_nowait() takes any regular file whose super block has no
 * block device (io_bdev_nowait(NULL)), which is every file the model has.
 */
function ioRegFileSupportsNowait(k: Kernel, file: File): boolean {
  return !k.profile.ioRegFileNowaitNeedsFmode || (file.flags & O_NONBLOCK) !== 0;
}

/**
 * models io_issue_sqe() for NOP, READ (io_read) and WRITE (io_write), v6.12, in the caller's
 * address space (the submitter's, shared by its io workers and SQ thread). `nonblock` is
 * IO_URING_F_NONBLOCK (IOCB_NOWAIT). On a regular file a non-blocking issue returns -EAGAIN
 * (the async punt) before touching the file when the file does not support NOWAIT, and for
 * every buffered WRITE (no FOP_BUFFER_WASYNC: "file path doesn't support NOWAIT for
 * non-direct_IO" in v5.10/v5.15). Returns the CQE result (-errno on failure); an interrupted
 * sleep (-ERESTARTSYS) becomes -EINTR as in io_rw_done().
 */
function* ioIssueSqe(k: Kernel, req: IoKiocb, nonblock: boolean): KGen<number> {
  const { sqe, file } = req;
  const mm = k.current!.mm;
  if (sqe.opcode === IORING_OP_NOP) return 0;
  if (!file || !mm) return -Errno.EBADF;
  if (nonblock && file.ops.regInode) {
    if (!ioRegFileSupportsNowait(k, file)) return -Errno.EAGAIN;
    if (sqe.opcode === IORING_OP_WRITE) return -Errno.EAGAIN;
  }
  if (sqe.opcode === IORING_OP_READ) {
    if (!file.ops.read) return -Errno.EINVAL;
    const r = yield* file.ops.read(k, file, sqe.len, nonblock, ioKiocbPos(sqe));
    if (!r.ok) return r.errno === Errno.ERESTARTSYS ? -Errno.EINTR : -r.errno;
    const w = mm.write(sqe.addr, r.value);
    return w.ok ? r.value.length : -Errno.EFAULT;
  }
  if (!file.ops.write) return -Errno.EINVAL;
  const data = mm.read(sqe.addr, sqe.len);
  if (!data.ok) return -Errno.EFAULT;
  const r = yield* file.ops.write(k, file, data.value.slice(), nonblock, ioKiocbPos(sqe));
  if (!r.ok) return r.errno === Errno.ERESTARTSYS ? -Errno.EINTR : -r.errno;
  return r.value;
}

/**
 * models io_wq_submit_work(work), v6.12, in an io-wq worker: a cancelled work completes with
 * -ECANCELED; a forced-async READ/WRITE on a pollable file is issued non-blocking and arms
 * poll on -EAGAIN where the era does so (`ioWqArmsPoll`), else the issue blocks the worker.
 */
function* ioWqSubmitWork(k: Kernel, req: IoKiocb): KGen<void> {
  if (req.flags & IO_WQ_WORK_CANCEL) return ioReqComplete(k, req, -Errno.ECANCELED);
  let needsPoll = false;
  if (req.forceAsync && k.profile.ioWqArmsPoll && req.file?.ops.pollQueue && req.sqe.opcode !== IORING_OP_NOP)
    needsPoll = true;
  const nonblock = needsPoll;
  for (;;) {
    const res = yield* ioIssueSqe(k, req, nonblock);
    if (res !== -Errno.EAGAIN || (req.file && req.file.flags & O_NONBLOCK)) return ioReqComplete(k, req, res);
    if (!needsPoll) {
      k.current!.at = 'io_wq_submit_work(): -EAGAIN, issue again';
      yield Op.Preempt;
      continue;
    }
    return ioArmPoll(k, req);
  }
}

/**
 * models io_arm_poll_handler() and io_poll_wake(), v6.12: a wait entry on the file's poll
 * queue; the first wake-up removes it and queues io_apoll_task_func on the submitter
 * (task_work, TWA_SIGNAL), which retries the request there.
 */
function ioArmPoll(k: Kernel, req: IoKiocb): void {
  const wq = req.file!.ops.pollQueue!(req.file!);
  const wake = () => {
    ioPollDisarm(req);
    const r = taskWorkAdd(k, req.task, { owner: req, func: (kk) => ioApollTaskFunc(kk, req) }, 'signal');
    // io_req_task_work_add() falls back to a kworker that fails it when the task is gone
    if (!r.ok) ioReqComplete(k, req, -Errno.ECANCELED);
  };
  req.pollWake = wake;
  req.pollQueue = wq;
  (wq.funcs ??= new Set()).add(wake);
  req.ctx.polls.add(req);
}

function ioPollDisarm(req: IoKiocb): void {
  if (req.pollWake) req.pollQueue?.funcs?.delete(req.pollWake);
  req.pollWake = null;
  req.pollQueue = null;
  req.ctx.polls.delete(req);
}

/** models io_apoll_task_func() → io_req_task_submit(): retry non-blocking, re-arm on -EAGAIN. */
function* ioApollTaskFunc(k: Kernel, req: IoKiocb): KGen<void> {
  if (req.done) return;
  if (req.ctx.dead) return ioReqComplete(k, req, -Errno.ECANCELED);
  const res = yield* ioIssueSqe(k, req, true);
  if (res === -Errno.EAGAIN) ioArmPoll(k, req);
  else ioReqComplete(k, req, res);
}

/**
 * models io_req_complete_post(), v6.12: post the CQE (or keep it on the overflow list with
 * IORING_SQ_CQ_OVERFLOW set when the CQ ring is full: IORING_FEAT_NODROP), wake CQ waiters,
 * drop the submitter's inflight count.
 */
function ioReqComplete(k: Kernel, req: IoKiocb, res: number): void {
  if (req.done) return;
  req.done = true;
  const { ctx } = req;
  if (!ctx.dead) {
    const cqe = { userData: req.sqe.userData, res, flags: 0 };
    if (ctx.rings.overflow.length || !ctx.rings.postCqe(cqe)) {
      ctx.rings.overflow.push(cqe);
      ctx.rings.sqFlags |= IORING_SQ_CQ_OVERFLOW;
    }
    if (k.trace.enabled)
      k.emit('io_uring_complete', `user_data=0x${req.sqe.userData.toString(16)} res=${res} cflags=0x0`);
    ctx.cqWait.wakeUp(k);
  }
  const tctx = tctxOf.get(req.task);
  if (tctx) {
    tctx.inflight--;
    tctx.wait.wakeUp(k);
  }
}

/** models io_cqring_overflow_flush(): move overflowed CQEs into the ring as space allows. */
function ioCqringOverflowFlush(k: Kernel, ctx: IoRingCtx): void {
  const r = ctx.rings;
  while (r.overflow.length && r.postCqe(r.overflow[0]!)) r.overflow.shift();
  if (!r.overflow.length) r.sqFlags &= ~IORING_SQ_CQ_OVERFLOW;
  if (k.trace.enabled && r.overflow.length) k.emit('io_uring_cqe_overflow', `pending=${r.overflow.length}`);
}

/**
 * models io_cqring_wait(ctx, min_events), v6.12: run task_work, flush the overflow list, and
 * sleep interruptibly until `min` CQEs are in the ring; a pending signal ends the wait with
 * -EINTR. Returns 0 or -errno.
 */
function* ioCqringWait(k: Kernel, ctx: IoRingCtx, min: number): KGen<number> {
  const t = k.current!;
  for (;;) {
    yield* ioRunTaskWork(k);
    ioCqringOverflowFlush(k, ctx);
    if (ctx.rings.cqReady() >= min) return 0;
    ctx.cqWait.waiters.add(t);
    t.state = TASK_INTERRUPTIBLE;
    t.waitingOn = ctx.cqWait;
    if (ctx.rings.cqReady() < min && !taskWorkPending(t) && !t.sigpending) yield Op.Schedule;
    ctx.cqWait.waiters.delete(t);
    t.waitingOn = null;
    t.state = TASK_RUNNING;
    if (taskWorkPending(t)) continue;
    if (t.sigpending) return -Errno.EINTR;
  }
}

// ------------------------------------------------------------------ cancellation on exit and exec

/**
 * models io_uring_cancel_generic(cancel_all, sqd), v6.12: io_wq_exit_start; with cancel_all
 * (exec, the SQ thread's exit) cancel this task's requests and wait until none is in flight;
 * without (do_exit's io_uring_files_cancel) only tracked requests are waited for, which the
 * modelled ops never are; then io_uring_clean_tctx → io_wq_put_and_exit, which waits for the
 * workers to exit. With cancel_all the tctx is freed (__io_uring_free).
 */
export function* ioUringCancelGeneric(k: Kernel, cancelAll: boolean, sqd: SqData | null): KGen<void> {
  const t = k.current!;
  const tctx = tctxOf.get(t);
  if (!tctx) return;
  if (tctx.ioWq) ioWqExitStart(tctx.ioWq);
  while (cancelAll && tctx.inflight > 0) {
    let loop = false;
    const ctxs = sqd ? [...sqd.ctxs] : [...tctx.ctxs].filter((c) => !c.sqData);
    for (const ctx of ctxs) loop = ioUringTryCancelRequests(k, ctx, t) || loop;
    if (loop) {
      t.at = 'io_uring_cancel_generic(): requests cancelled, loop again';
      yield Op.Preempt;
      continue;
    }
    tctx.wait.waiters.add(t);
    t.state = TASK_INTERRUPTIBLE;
    const seen = tctx.inflight;
    yield* ioRunTaskWork(k);
    t.state = TASK_INTERRUPTIBLE;
    if (seen === tctx.inflight && !taskWorkPending(t)) yield Op.Schedule;
    tctx.wait.waiters.delete(t);
    t.state = TASK_RUNNING;
  }
  // io_uring_clean_tctx()
  const wq = tctx.ioWq;
  if (wq) {
    tctx.ioWq = null;
    yield* ioWqPutAndExit(k, wq);
  }
  for (const ctx of tctx.ctxs) ctx.tctxList.delete(t);
  tctx.ctxs.clear();
  if (cancelAll) tctxOf.delete(t);
}

/** do_exit's io_uring_files_cancel(): __io_uring_cancel(false) */
function* ioUringExitHook(k: Kernel, t: Task): KGen {
  if (tctxOf.has(t)) yield* ioUringCancelGeneric(k, false, null);
}
/** a task that never used io_uring has no io_uring_task: the hook returns at once */
ioUringExitHook.noopFor = (t: Task) => !tctxOf.has(t);

/** bprm_execve's io_uring_task_cancel(): __io_uring_cancel(true) */
function* ioUringExecHook(k: Kernel, t: Task): KGen {
  if (tctxOf.has(t)) yield* ioUringCancelGeneric(k, true, null);
}

/**
 * Install io_uring's hooks: do_exit's io_uring_files_cancel() (__io_uring_cancel(false)) and
 * bprm_execve's io_uring_task_cancel() (__io_uring_cancel(true)). Idempotent: the hooks
 * themselves mark a kernel as set up (no module-level collection of every kernel booted).
 */
export function registerIoUring(k: Kernel): void {
  if (k.exitHooks.includes(ioUringExitHook)) return;
  k.exitHooks.push(ioUringExitHook);
  k.execHooks.push(ioUringExecHook);
}
