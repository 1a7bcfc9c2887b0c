/**
 * The vhost core: devices, virtqueues, workers, work queueing, flushing, polling and the
 * common ioctls. Models drivers/vhost/vhost.c in two forms chosen by profile:
 *  - ≤ 6.4: one worker per device (5.15 kthread with kthread_use_mm + vhost_attach_cgroups;
 *    V5 kernel_worker; 6.4 vhost_task);
 *  - 6.5+: workers in an xarray with per-virtqueue worker pointers and the worker ioctls;
 *    6.10+ SIGKILL handling (vhost_worker_killed); 6.17 per-device worker mode (fork_owner)
 *    with kthread or vhost_task ops.
 * Ring processing lives in vring.ts; device drivers (net.ts, scsi.ts, vsock.ts) supply the
 * per-virtqueue kick handlers.
 */
import { cgroupAttachTaskAll } from '../cgroup/cgroup.js';
import { Errno, err, ok, type Result } from '../kernel/errno.js';
import { mmput } from '../kernel/exit.js';
import type { File } from '../kernel/files.js';
import {
  audited,
  FP_READ,
  FP_WRITE,
  fpGlobal,
  fpTouch,
  fpUnaudited,
  isAudited,
  newObjectId,
} from '../kernel/footprint.js';
import { KERN_WORKER_NO_FILES, KERN_WORKER_SIG_IGN } from '../kernel/fork.js';
import type { Kernel } from '../kernel/kernel.js';
import {
  kthreadCreateOnNode,
  kthreadShouldStop,
  kthreadStop,
  kthreadUnuseMm,
  kthreadUseMm,
} from '../kernel/kthread.js';
import type { MM } from '../kernel/mm.js';
import {
  Completion,
  complete,
  type KGen,
  Mutex,
  mutexLock,
  mutexUnlock,
  Op,
  preemptPoint,
  waitForCompletion,
} from '../kernel/sched.js';
import { CLONE_FS, TASK_INTERRUPTIBLE, TASK_RUNNING } from '../kernel/sched-consts.js';
import { Slot } from '../kernel/slot.js';
import { EVENTFD_OPS, type Eventfd, eventfdPollers, eventfdSignal } from '../kernel/syscalls.js';
import type { Task } from '../kernel/task.js';
import { kernelWorker, kernelWorkerStart } from '../kernel/user-worker.js';
import {
  type VhostTask,
  vhostTaskCreate,
  vhostTaskShouldStop,
  vhostTaskStart,
  vhostTaskStop,
  vhostTaskWakeLockless,
} from '../kernel/vhost-task.js';
import * as U from './uapi.js';
import { Vring } from './vring.js';

// ------------------------------------------------------------------ module state

/** The vhost module's parameters (module_param in vhost.c). */
export interface VhostModule {
  /** max_mem_regions, default 64 (VHOST_MEMORY_MAX_NREGIONS) */
  maxMemRegions: number;
  /** fork_from_owner_default (6.17, CONFIG_VHOST_ENABLE_FORK_OWNER_CONTROL): true = task mode */
  forkFromOwnerDefault: boolean;
}

const modules = new Slot<Kernel, VhostModule>('vhost');

/** The vhost module of kernel `k` (created at first use with the profile's defaults). */
export function vhostModule(k: Kernel): VhostModule {
  let m = modules.get(k);
  if (!m) {
    m = { maxMemRegions: 64, forkFromOwnerDefault: k.profile.vhostWorker !== 'kthread' };
    modules.set(k, m);
  }
  return m;
}

// ------------------------------------------------------------------ structures

/** struct vhost_work: a unit of work queued to a worker; QUEUED coalesces repeated queueing. */
export class VhostWork {
  queued = false;
  /** the explorer's name for it (footprint.ts) */
  readonly oid = newObjectId();
  /** its function's path records what it touches (footprint.ts); otherwise its run touches everything */
  fpAudited = false;
  constructor(
    readonly fn: (k: Kernel, work: VhostWork) => KGen<void>,
    readonly name: string,
  ) {}
}

export type WorkerMode = 'kthread' | 'kernel-worker-v5' | 'vhost-task';

/** struct vhost_worker */
export class VhostWorker {
  /** the worker's task (kthread, V5 worker or vhost_task's task) */
  task: Task | null = null;
  vtsk: VhostTask | null = null;
  /** llist work_list: pushed at the head, taken whole and reversed into FIFO order */
  workList: VhostWork[] = [];
  readonly mutex = new Mutex('vhost_worker.mutex');
  attachmentCnt = 0;
  killed = false;
  id = 0;
  /** the explorer's name for it (footprint.ts) */
  readonly oid = newObjectId();
  /** kfree()d by vhost_worker_create()'s error path (model observation: a later use is a use-after-free) */
  freed = false;
  /** V5 VHOST_WORKER_FLAG_STOP and its exit completion */
  v5Stop = false;
  readonly v5ExitDone = new Completion('vhost_worker.exit_done');
  /** work items this worker ran (model observation) */
  ran = 0;
  constructor(
    readonly dev: VhostDev,
    readonly mode: WorkerMode,
  ) {}
}

/** struct vhost_poll: a wait-queue entry on a file (the kick eventfd) that queues `work`. */
export class VhostPoll {
  ctx: Eventfd | null = null;
  private cb: (() => void) | null = null;
  constructor(
    readonly work: VhostWork,
    readonly vq: VhostVirtqueue,
  ) {}
  /** models vhost_poll_start(): register, and fire at once if already readable. */
  start(k: Kernel, ctx: Eventfd): void {
    if (this.ctx) return;
    this.ctx = ctx;
    this.cb = audited(() => vhostVqWorkQueue(k, this.vq, this.work));
    let set = eventfdPollers.get(ctx);
    if (!set) eventfdPollers.set(ctx, (set = new Set()));
    set.add(this.cb);
    if (ctx.count > 0n) this.cb();
  }
  /** models vhost_poll_stop() */
  stop(): void {
    if (this.ctx && this.cb) eventfdPollers.get(this.ctx)?.delete(this.cb);
    this.ctx = null;
    this.cb = null;
  }
}

/** struct vhost_virtqueue */
export class VhostVirtqueue {
  readonly mutex: Mutex;
  readonly ring = new Vring();
  /** the kick eventfd file, and its poll */
  kick: File | null = null;
  readonly poll: VhostPoll;
  callCtx: Eventfd | null = null;
  errorCtx: Eventfd | null = null;
  /** private_data: the backend (a tap socket for net) */
  privateData: unknown = null;
  /** RCU-protected worker pointer */
  worker: VhostWorker | null = null;
  busyloopTimeout = 0;
  logUsed = false;
  /** calls signalled (model observation) */
  calls = 0;
  constructor(
    readonly dev: VhostDev,
    readonly index: number,
    /** handle_kick: the driver's per-vq work function */
    handleKick: ((k: Kernel, vq: VhostVirtqueue) => KGen<void>) | null,
  ) {
    this.mutex = new Mutex(`vhost_virtqueue[${index}].mutex`);
    const work = new VhostWork((k) => handleKickWork(k, handleKick, this), `handle_kick vq${index}`);
    work.fpAudited = handleKick === null || isAudited(handleKick);
    this.poll = new VhostPoll(work, this);
  }
  get active(): boolean {
    return this.privateData !== null;
  }
}

/** struct vhost_dev */
export class VhostDev {
  /** the owner's address space (get_task_mm reference); null = no owner */
  mm: MM | null = null;
  readonly mutex = new Mutex('vhost_dev.mutex');
  readonly vqs: VhostVirtqueue[] = [];
  /** worker_xa */
  readonly workers = new Map<number, VhostWorker>();
  /** fork_owner (6.17): true = vhost_task mode */
  forkOwner: boolean;
  /** dev->use_worker (false for vDPA) */
  useWorker = true;
  /** iotlb/umem regions from SET_MEM_TABLE */
  regions: { guestPhysAddr: number; size: number; userspaceAddr: number }[] = [];
  ackedFeatures = 0n;
  ackedBackendFeatures = 0n;
  /**
   * 6.4-rc1 … rc5 (bug "vsock-early-queue"): the worker is published to the device while
   * vhost_task_create() has not returned yet (observation of the window; fixed by a284f09effea)
   */
  workerWithoutTask = false;
  /** the task that did SET_OWNER (observation; the kernel keeps only mm and kcov) */
  owner: Task | null = null;
  released = false;
  constructor(
    readonly k: Kernel,
    readonly name: string,
    handlers: (((k: Kernel, vq: VhostVirtqueue) => KGen<void>) | null)[],
  ) {
    this.forkOwner = vhostModule(k).forkFromOwnerDefault;
    for (const [i, h] of handlers.entries()) this.vqs.push(new VhostVirtqueue(this, i, h));
  }
  get nvqs(): number {
    return this.vqs.length;
  }
  /** the worker mode SET_OWNER / NEW_WORKER will use on this device */
  get workerMode(): WorkerMode {
    const p = this.k.profile;
    if (p.vhostForkOwnerControl) return this.forkOwner ? 'vhost-task' : 'kthread';
    if (p.vhostWorker === 'kthread') return 'kthread';
    if (p.vhostWorker === 'kernel-worker-v5') return 'kernel-worker-v5';
    return 'vhost-task';
  }
  /** every worker task of this device (for views and invariants) */
  workerTasks(): Task[] {
    return [...this.workers.values()].map((w) => w.task).filter((t): t is Task => t !== null);
  }
}

// ------------------------------------------------------------------ queue, flush

/** models vhost_worker_queue(): coalesce on QUEUED, push, wake the worker. */
function vhostWorkerQueue(k: Kernel, worker: VhostWorker, work: VhostWork): void {
  // footprints (footprint.ts): a coalesced queue only tests QUEUED; a queue sets it, pushes
  // on the worker's list and wakes the worker (try_to_wake_up records the task)
  if (work.queued) {
    fpTouch(k, `vhost-work:${work.oid}`, FP_READ);
    return;
  }
  fpTouch(k, `vhost-work:${work.oid}`, FP_WRITE);
  fpTouch(k, `vhost-worker:${worker.oid}`, FP_WRITE);
  work.queued = true;
  worker.workList.push(work);
  if (k.trace.enabled)
    k.emit('vhost_work_queue', `dev=${worker.dev.name} worker=${worker.id} work=${work.name}`);
  if (worker.vtsk) vhostTaskWakeLockless(k, worker.vtsk);
  else if (worker.task) k.wakeUpProcess(worker.task);
}

/**
 * models vhost_vq_work_queue(), v6.12: queue on the vq's worker; false ("not queued") when
 * the vq has no worker (before SET_OWNER, or after the worker was killed on 6.10+).
 */
export function vhostVqWorkQueue(k: Kernel, vq: VhostVirtqueue, work: VhostWork): boolean {
  const worker = vq.worker;
  if (worker && worker.mode === 'vhost-task' && !worker.vtsk) {
    // 6.4-rc1…rc5: dev->worker is visible before worker->vtsk is set → vhost_task_wake(NULL)
    fpGlobal(k);
    k.warn(
      'vhost_work_queue',
      'BUG: kernel NULL pointer dereference: vhost_task_wake(dev->worker->vtsk == NULL) during VHOST_SET_OWNER ' +
        '(6.4-rc1…rc5 publish dev->worker before vhost_task_create() returns; fixed by a284f09effea); work dropped',
    );
    return false;
  }
  if (!worker) {
    if (k.trace.enabled)
      k.emit('vhost_work_queue', `dev=${vq.dev.name} vq=${vq.index} work=${work.name} not queued`);
    return false;
  }
  vhostWorkerQueue(k, worker, work);
  return true;
}

/** Take the whole list in FIFO order and run it (vhost_run_work_list / the kthread loop body). */
function* runWorkList(k: Kernel, worker: VhostWorker): KGen<boolean> {
  const fp = k.fp;
  if (worker.workList.length === 0) {
    fp?.touch(`vhost-worker:${worker.oid}`, FP_READ);
    return false;
  }
  fp?.touch(`vhost-worker:${worker.oid}`, FP_WRITE);
  const list = worker.workList;
  worker.workList = [];
  k.current!.state = TASK_RUNNING;
  for (const work of list) {
    if (fp) {
      fp.touch(`vhost-work:${work.oid}`, FP_WRITE);
      if (!work.fpAudited) fpUnaudited(k, k.current!);
    }
    work.queued = false;
    if (k.trace.enabled)
      k.emit('vhost_work_run', `dev=${worker.dev.name} worker=${worker.id} work=${work.name}`);
    k.charge(k.profile.costs.vhostWork);
    worker.ran++;
    yield* work.fn(k, work);
    yield* preemptPoint(
      k,
      'the worker loop (vhost_worker / vhost_run_work_list): cond_resched() after a work',
    );
  }
  return true;
}

/** A flush work: completes when every work queued before it has run. */
function flushWork(done: Completion): VhostWork {
  const w = new VhostWork((k) => completeWork(k, done), 'flush');
  // complete(): the completion's wait queue records itself and the flusher it wakes
  w.fpAudited = true;
  return w;
}

// Work functions are arrow functions calling module-level generators, not generator closures:
// V8 keeps the context of a generator object made from a per-run generator closure alive
// through minor GCs, and with it the whole run.

function* completeWork(k: Kernel, done: Completion): KGen<void> {
  complete(k, done);
}

/** the vq's poll work: the driver's handle_kick */
function* handleKickWork(
  k: Kernel,
  handleKick: ((k: Kernel, vq: VhostVirtqueue) => KGen<void>) | null,
  vq: VhostVirtqueue,
): KGen<void> {
  if (handleKick) yield* handleKick(k, vq);
}

/**
 * models __vhost_worker_flush(), v6.10+: no-op for an unattached or killed worker; queue a
 * flush work, drop the worker mutex while waiting (so a dying worker can take it).
 */
function* vhostWorkerFlushLocked(k: Kernel, worker: VhostWorker, force = false): KGen<void> {
  if ((!worker.attachmentCnt && !force) || worker.killed) return;
  const done = new Completion('vhost_flush_struct.wait_event');
  vhostWorkerQueue(k, worker, flushWork(done));
  mutexUnlock(k, worker.mutex);
  yield* waitForCompletion(k, done);
  yield* mutexLock(k, worker.mutex);
}

/** models vhost_worker_flush() */
export function* vhostWorkerFlush(k: Kernel, worker: VhostWorker): KGen<void> {
  yield* mutexLock(k, worker.mutex);
  yield* vhostWorkerFlushLocked(k, worker);
  mutexUnlock(k, worker.mutex);
}

/** models vhost_dev_flush(): flush every attached worker of the device. */
export function* vhostDevFlush(k: Kernel, dev: VhostDev): KGen<void> {
  for (const worker of [...dev.workers.values()]) yield* vhostWorkerFlush(k, worker);
}

// ------------------------------------------------------------------ worker back ends

/** models the kthread worker loop (5.15 vhost_worker; 6.17 vhost_run_work_kthread_list). */
function* vhostKthreadLoop(k: Kernel, worker: VhostWorker): KGen<number> {
  const mm = worker.dev.mm!;
  kthreadUseMm(k, mm);
  const me = k.current!;
  for (;;) {
    me.state = TASK_INTERRUPTIBLE;
    if (kthreadShouldStop(k)) {
      me.state = TASK_RUNNING;
      break;
    }
    if (worker.workList.length === 0) {
      yield Op.Schedule;
      continue;
    }
    yield* runWorkList(k, worker);
  }
  kthreadUnuseMm(k, mm);
  return 0;
}

/** models the V5 vhost_worker() ([PATCH V5 10/10]): loop until the STOP bit, then exit. */
function* vhostV5Loop(k: Kernel, worker: VhostWorker): KGen<number> {
  const me = k.current!;
  for (;;) {
    me.state = TASK_INTERRUPTIBLE;
    if (worker.v5Stop) {
      me.state = TASK_RUNNING;
      break;
    }
    if (worker.workList.length === 0) {
      yield Op.Schedule;
      continue;
    }
    yield* runWorkList(k, worker);
  }
  complete(k, worker.v5ExitDone);
  return 0;
}

/** models the 6.4-rc1 vhost_worker() run as the vhost_task's fn (a loop polling should_stop). */
function* vhostRc1Loop(k: Kernel, worker: VhostWorker): KGen<number> {
  const me = k.current!;
  for (;;) {
    me.state = TASK_INTERRUPTIBLE;
    if (vhostTaskShouldStop(worker.vtsk!)) {
      me.state = TASK_RUNNING;
      break;
    }
    if (worker.workList.length === 0) {
      yield Op.Schedule;
      continue;
    }
    yield* runWorkList(k, worker);
  }
  return 0;
}

/**
 * models vhost_worker_killed(), v6.10+ (§6.6): mark killed, detach the worker from every vq
 * that uses it, and run what is still queued (completing pending flushes).
 */
function* vhostWorkerKilled(k: Kernel, worker: VhostWorker): KGen<void> {
  yield* mutexLock(k, worker.mutex);
  worker.killed = true;
  let attach = 0;
  for (const vq of worker.dev.vqs) {
    yield* mutexLock(k, vq.mutex);
    if (vq.worker === worker) {
      vq.worker = null;
      attach++;
    }
    mutexUnlock(k, vq.mutex);
  }
  worker.attachmentCnt -= attach;
  if (attach) yield* preemptPoint(k, 'vhost_worker_killed(): synchronize_rcu()');
  yield* runWorkList(k, worker);
  mutexUnlock(k, worker.mutex);
  if (k.trace.enabled) k.emit('vhost_worker_killed', `dev=${worker.dev.name} worker=${worker.id}`);
}

/** The lowest free id in the device's xarray (xa_alloc, XA_FLAGS_ALLOC). */
function xaAlloc(dev: VhostDev): number {
  let id = 0;
  while (dev.workers.has(id)) id++;
  return id;
}

/**
 * models vhost_worker_create(), by worker mode. kthread: kthread_create + wake, id, then
 * cgroup_attach_task_all(owner, worker) run as the worker's first work item
 * (vhost_attach_cgroups / vhost_attach_task_to_cgroups). V5: kernel_worker(CLONE_FS,
 * NO_FILES|SIG_IGN) whose error propagates. vhost_task: vhost_task_create + start; failure is
 * NULL, reported by callers as ENOMEM.
 */
export function* vhostWorkerCreate(k: Kernel, dev: VhostDev): KGen<Result<VhostWorker>> {
  const mode = dev.workerMode;
  const worker = new VhostWorker(dev, mode);
  const owner = k.current!;
  const name = `vhost-${owner.pid}`;
  if (k.allocFails('vhost_worker')) return err(Errno.ENOMEM);
  if (mode === 'kthread') {
    const r = yield* kthreadCreateOnNode(k, () => vhostKthreadLoop(k, worker), null, name);
    // ≤ 6.3 vhost_dev_set_owner passes PTR_ERR(worker) on; 6.17's vhost_worker_create returns NULL → ENOMEM
    if (!r.ok) return k.profile.vhostForkOwnerControl ? err(Errno.ENOMEM) : r;
    worker.task = r.value;
    k.wakeUpProcess(r.value);
    worker.id = xaAlloc(dev);
    dev.workers.set(worker.id, worker);
    // vhost_attach_cgroups(): queue a work that runs cgroup_attach_task_all(owner, current), flush
    let attachErr: Result<void> = ok();
    const done = new Completion('vhost_attach_cgroups');
    vhostWorkerQueue(
      k,
      worker,
      new VhostWork(function* (kk) {
        attachErr = cgroupAttachTaskAll(kk, owner, kk.current!);
        complete(kk, done);
      }, 'attach_cgroups'),
    );
    yield* waitForCompletion(k, done);
    if (!attachErr.ok) {
      // 6.17 vhost_kthread_worker_create() (7d9896e9f6d0) jumps to stop_worker, leaving the id in
      // worker_xa; f3f64c2eaffb (6.18-rc) adds free_id: xa_erase() first (bug "kthread-worker-id-leak")
      if (!k.profile.bugs.has('kthread-worker-id-leak')) dev.workers.delete(worker.id);
      yield* kthreadStop(k, worker.task);
      // vhost_worker_create(): kfree(worker), return NULL
      worker.freed = true;
      return k.profile.vhostForkOwnerControl ? err(Errno.ENOMEM) : attachErr;
    }
    return ok(worker);
  }
  if (mode === 'kernel-worker-v5') {
    const r = kernelWorker(
      k,
      () => vhostV5Loop(k, worker),
      CLONE_FS,
      KERN_WORKER_NO_FILES | KERN_WORKER_SIG_IGN,
    );
    if (!r.ok) return r;
    worker.task = r.value;
    kernelWorkerStart(k, r.value, name);
    worker.id = xaAlloc(dev);
    dev.workers.set(worker.id, worker);
    return ok(worker);
  }
  const gen = k.profile.vhostTaskGeneration;
  const fn = gen === 'vhost-task-rc1' ? () => vhostRc1Loop(k, worker) : () => runWorkList(k, worker);
  // 6.4-rc1 … rc5 vhost_worker_create() set dev->worker (then init_llist_head) before
  // vhost_task_create(), which may sleep: a work queued from another task in between saw a
  // worker without a task (fixed by a284f09effea, 6.4-rc6)
  const early = k.profile.bugs.has('vsock-early-queue');
  if (early) {
    for (const vq of dev.vqs) vq.worker = worker;
    dev.workerWithoutTask = true;
    yield* preemptPoint(k, 'vhost_worker_create(): dev->worker published, before vhost_task_create()');
  }
  const r = vhostTaskCreate(k, fn, () => vhostWorkerKilled(k, worker), null, name);
  if (early) {
    // the vqs are attached by the caller (vhost_dev_set_owner) as in every era
    for (const vq of dev.vqs) vq.worker = null;
    dev.workerWithoutTask = false;
  }
  if (!r.ok) return err(Errno.ENOMEM);
  worker.vtsk = r.value;
  worker.task = r.value.task;
  vhostTaskStart(k, r.value);
  worker.id = xaAlloc(dev);
  dev.workers.set(worker.id, worker);
  return ok(worker);
}

/** models vhost_worker_destroy(): erase the id, stop the worker by its mode. */
function* vhostWorkerDestroy(k: Kernel, dev: VhostDev, worker: VhostWorker): KGen<void> {
  if (worker.freed) {
    // a worker_xa entry leaked by 6.17's kthread error path: vhost_workers_free() finds the
    // kfree()d worker and reads its list, ops and task (then kfree()s it again)
    k.warn(
      'vhost_worker_destroy',
      `BUG: KASAN: slab-use-after-free: worker ${worker.id} of ${dev.name} was freed when VHOST_SET_OWNER failed ` +
        'but its id stayed in worker_xa (fixed by f3f64c2eaffb)',
    );
    dev.workers.delete(worker.id);
    return;
  }
  if (worker.workList.length > 0) k.warn('vhost_worker_destroy', `worker ${worker.id} has queued work`);
  dev.workers.delete(worker.id);
  if (worker.mode === 'kthread') {
    if (worker.task) yield* kthreadStop(k, worker.task);
  } else if (worker.mode === 'kernel-worker-v5') {
    worker.v5Stop = true;
    if (worker.task) k.wakeUpProcess(worker.task);
    yield* waitForCompletion(k, worker.v5ExitDone);
  } else if (worker.vtsk) {
    yield* vhostTaskStop(k, worker.vtsk);
  }
  if (k.trace.enabled) k.emit('vhost_worker_destroy', `dev=${dev.name} worker=${worker.id}`);
}

/**
 * models __vhost_vq_attach_worker(), v6.12: publish the new worker; if the vq had another
 * one that is not killed, either just drop its count (setup phase) or wait a grace period
 * and flush it first.
 */
function* vhostVqAttachWorker(k: Kernel, vq: VhostVirtqueue, worker: VhostWorker): KGen<void> {
  if (worker.killed) return;
  const old = vq.worker;
  vq.worker = worker;
  worker.attachmentCnt++;
  if (!old) return;
  yield* mutexLock(k, old.mutex);
  if (old.killed) {
    mutexUnlock(k, old.mutex);
    return;
  }
  if (!vq.active && !vq.kick) {
    old.attachmentCnt--;
    mutexUnlock(k, old.mutex);
    if (!old.attachmentCnt && old.workList.length > 0)
      k.warn('vhost_vq_attach_worker', 'old worker has queued work');
    return;
  }
  mutexUnlock(k, old.mutex);
  yield* preemptPoint(k, '__vhost_vq_attach_worker(): synchronize_rcu()');
  yield* mutexLock(k, old.mutex);
  yield* vhostWorkerFlushLocked(k, old);
  old.attachmentCnt--;
  mutexUnlock(k, old.mutex);
}

// ------------------------------------------------------------------ ownership

/** models vhost_dev_check_owner(): owner = same address space. */
export function vhostDevCheckOwner(k: Kernel, dev: VhostDev): Result<void> {
  return dev.mm !== null && dev.mm === k.current!.mm ? ok() : err(Errno.EPERM);
}

export function vhostDevHasOwner(dev: VhostDev): boolean {
  return dev.mm !== null;
}

/**
 * models vhost_dev_set_owner(): EBUSY if owned; take the owner's mm (get_task_mm); create the
 * default worker (≤ 6.4: kthread errors ENOMEM/EINTR propagate, V5 errors propagate; vhost_task
 * failure → ENOMEM) and attach it to every vq. The worker is created last because vsock may
 * queue work before SET_OWNER (a284f09effea).
 */
export function* vhostDevSetOwner(k: Kernel, dev: VhostDev): KGen<Result<void>> {
  if (vhostDevHasOwner(dev)) return err(Errno.EBUSY);
  const cur = k.current!;
  if (!cur.mm) return err(Errno.EFAULT);
  dev.mm = cur.mm;
  cur.mm.users++; // get_task_mm()
  dev.owner = cur;
  if (k.allocFails('vhost_dev_alloc_iovecs')) {
    vhostDetachMm(k, dev);
    return err(Errno.ENOMEM);
  }
  if (dev.useWorker) {
    const r = yield* vhostWorkerCreate(k, dev);
    if (!r.ok) {
      vhostDetachMm(k, dev);
      return r;
    }
    for (const vq of dev.vqs) yield* vhostVqAttachWorker(k, vq, r.value);
  }
  if (k.trace.enabled)
    k.emit('vhost_set_owner', `dev=${dev.name} owner=${cur.comm}-${cur.pid} mode=${dev.workerMode}`);
  return ok();
}

function vhostDetachMm(k: Kernel, dev: VhostDev): void {
  if (!dev.mm) return;
  const mm = dev.mm;
  dev.mm = null;
  dev.owner = null;
  mmput(k, mm);
}

/**
 * models vhost_dev_cleanup() → vhost_workers_free(): drop every vq's eventfds and reset it,
 * clear worker pointers, destroy every worker, drop the owner mm.
 */
export function* vhostDevCleanup(k: Kernel, dev: VhostDev): KGen<void> {
  for (const vq of dev.vqs) {
    vq.poll.stop();
    vq.kick = null;
    vq.callCtx = null;
    vq.errorCtx = null;
    vq.ring.reset();
  }
  dev.regions = [];
  if (dev.useWorker) {
    for (const vq of dev.vqs) vq.worker = null;
    for (const w of [...dev.workers.values()]) yield* vhostWorkerDestroy(k, dev, w);
    dev.workers.clear();
  }
  vhostDetachMm(k, dev);
  dev.forkOwner = vhostModule(k).forkFromOwnerDefault;
}

/** models vhost_dev_stop(): stop kick polling on every vq, then flush. */
export function* vhostDevStop(k: Kernel, dev: VhostDev): KGen<void> {
  for (const vq of dev.vqs) if (vq.kick) vq.poll.stop();
  yield* vhostDevFlush(k, dev);
}

// ------------------------------------------------------------------ ioctls

/** models vhost_worker_ioctl(), v6.5+ (§6.7); ENOIOCTLCMD for anything else. */
export function* vhostWorkerIoctl(k: Kernel, dev: VhostDev, cmd: number, argp: number): KGen<Result<number>> {
  if (
    cmd !== U.VHOST_NEW_WORKER &&
    cmd !== U.VHOST_FREE_WORKER &&
    cmd !== U.VHOST_ATTACH_VRING_WORKER &&
    cmd !== U.VHOST_GET_VRING_WORKER
  )
    return err(Errno.ENOIOCTLCMD);
  if (!dev.useWorker) return err(Errno.EINVAL);
  if (!vhostDevHasOwner(dev)) return err(Errno.EINVAL);
  const own = vhostDevCheckOwner(k, dev);
  if (!own.ok) return own;
  const mm = k.current!.mm;
  if (cmd === U.VHOST_NEW_WORKER) {
    if (k.profile.vhostForkOwnerControl && !dev.forkOwner) return err(Errno.EFAULT);
    const r = yield* vhostWorkerCreate(k, dev);
    if (!r.ok) return err(Errno.ENOMEM);
    const w = mm ? mm.view(argp, 4) : err(Errno.EFAULT);
    if (!w.ok) return w;
    w.value.setUint32(0, r.value.id, true);
    return ok(0);
  }
  if (cmd === U.VHOST_FREE_WORKER) {
    const id = U.readU32(mm, argp);
    if (!id.ok) return id;
    const worker = dev.workers.get(id.value);
    if (!worker) return err(Errno.ENODEV);
    yield* mutexLock(k, worker.mutex);
    if (worker.attachmentCnt || worker.killed) {
      mutexUnlock(k, worker.mutex);
      return err(Errno.EBUSY);
    }
    yield* vhostWorkerFlushLocked(k, worker, true);
    mutexUnlock(k, worker.mutex);
    yield* vhostWorkerDestroy(k, dev, worker);
    return ok(0);
  }
  const idx = U.readU32(mm, argp);
  if (!idx.ok) return idx;
  if (idx.value >= dev.nvqs) return err(Errno.ENOBUFS);
  const vq = dev.vqs[idx.value]!;
  if (cmd === U.VHOST_ATTACH_VRING_WORKER) {
    const s = U.readVringWorker(mm, argp);
    if (!s.ok) return s;
    const worker = dev.workers.get(s.value.workerId);
    if (!worker) return err(Errno.ENODEV);
    yield* mutexLock(k, vq.mutex);
    yield* vhostVqAttachWorker(k, vq, worker);
    mutexUnlock(k, vq.mutex);
    return ok(0);
  }
  // VHOST_GET_VRING_WORKER
  const worker = vq.worker;
  if (!worker) return err(Errno.EINVAL);
  const w = U.writeVringWorker(mm, argp, { index: idx.value, workerId: worker.id });
  return w.ok ? ok(0) : w;
}

/**
 * models vhost_dev_ioctl(), v6.12 (§6.10): SET_OWNER; (6.17) SET/GET_FORK_FROM_OWNER; then the
 * owner check; SET_MEM_TABLE, SET_LOG_BASE, SET_LOG_FD; else ENOIOCTLCMD.
 */
export function* vhostDevIoctl(k: Kernel, dev: VhostDev, cmd: number, argp: number): KGen<Result<number>> {
  const mm = k.current!.mm;
  if (cmd === U.VHOST_SET_OWNER) {
    const r = yield* vhostDevSetOwner(k, dev);
    return r.ok ? ok(0) : r;
  }
  if (k.profile.vhostForkOwnerControl) {
    if (cmd === U.VHOST_SET_FORK_FROM_OWNER) {
      if (vhostDevHasOwner(dev)) return err(Errno.EBUSY);
      const v = U.readU8(mm, argp);
      if (!v.ok) return v;
      if (v.value !== U.VHOST_FORK_OWNER_KTHREAD && v.value !== U.VHOST_FORK_OWNER_TASK)
        return err(Errno.EINVAL);
      dev.forkOwner = v.value === U.VHOST_FORK_OWNER_TASK;
      return ok(0);
    }
    if (cmd === U.VHOST_GET_FORK_FROM_OWNER) {
      const w = U.writeU8(mm, argp, dev.forkOwner ? 1 : 0);
      return w.ok ? ok(0) : w;
    }
  }
  const own = vhostDevCheckOwner(k, dev);
  if (!own.ok) return own;
  if (cmd === U.VHOST_SET_MEM_TABLE) return vhostSetMemory(k, dev, argp);
  if (cmd === U.VHOST_SET_LOG_BASE) {
    const v = U.readU64(mm, argp);
    return v.ok ? ok(0) : v;
  }
  if (cmd === U.VHOST_SET_LOG_FD) {
    const fd = U.readU32(mm, argp);
    if (!fd.ok) return fd;
    const n = fd.value | 0;
    if (n === -1) return ok(0);
    const f = k.current!.files?.get(n);
    if (!f) return err(Errno.EBADF);
    if (f.ops !== EVENTFD_OPS) return err(Errno.EINVAL);
    return ok(0);
  }
  return err(Errno.ENOIOCTLCMD);
}

/**
 * models vhost_set_memory(), v6.12: padding ≠ 0 → EOPNOTSUPP; more regions than
 * max_mem_regions → E2BIG; a zero-size region → EFAULT; the table replaces the old one.
 */
function vhostSetMemory(k: Kernel, dev: VhostDev, argp: number): Result<number> {
  const mm = k.current!.mm;
  const h = U.readMemoryHeader(mm, argp);
  if (!h.ok) return h;
  if (h.value.padding) return err(Errno.EOPNOTSUPP);
  if (h.value.nregions > vhostModule(k).maxMemRegions) return err(Errno.E2BIG);
  const r = U.readMemoryRegions(mm, argp, h.value.nregions);
  if (!r.ok) return r;
  const regions: VhostDev['regions'] = [];
  for (const reg of r.value) {
    // vhost_iotlb_add_range_ctx(): last = start + size - 1 in u64 arithmetic; last < start → EFAULT
    // (so a zero-size region at gpa 0 wraps to [0, U64_MAX] and is accepted — conformance, Debian)
    const last = BigInt.asUintN(64, reg.guestPhysAddr + reg.memorySize - 1n);
    if (last < reg.guestPhysAddr) return err(Errno.EFAULT);
    regions.push({
      guestPhysAddr: Number(reg.guestPhysAddr),
      size: Number(reg.memorySize),
      userspaceAddr: Number(reg.userspaceAddr),
    });
  }
  dev.regions = regions;
  for (const vq of dev.vqs) vq.ring.regions = regions;
  return ok(0);
}

/**
 * models vhost_vring_ioctl(), v6.12 (§6.10): the index (EFAULT, ENOBUFS), then the vring
 * ioctls under the vq mutex.
 */
export function* vhostVringIoctl(k: Kernel, dev: VhostDev, cmd: number, argp: number): KGen<Result<number>> {
  const cur = k.current!;
  const mm = cur.mm;
  const idx = U.readU32(mm, argp);
  if (!idx.ok) return idx;
  if (idx.value >= dev.nvqs) return err(Errno.ENOBUFS);
  const vq = dev.vqs[idx.value]!;
  yield* mutexLock(k, vq.mutex);
  let pollStopped = false;
  const r = ((): Result<number> => {
    const ring = vq.ring;
    switch (cmd) {
      case U.VHOST_SET_VRING_NUM: {
        if (vq.active) return err(Errno.EBUSY);
        const s = U.readVringState(mm, argp);
        if (!s.ok) return s;
        const num = s.value.num;
        if (!num || num > 0xffff || num & (num - 1)) return err(Errno.EINVAL);
        ring.num = num;
        return ok(0);
      }
      case U.VHOST_SET_VRING_ADDR: {
        const a = U.readVringAddr(mm, argp);
        if (!a.ok) return a;
        if (a.value.flags & ~(1 << U.VHOST_VRING_F_LOG)) return err(Errno.EOPNOTSUPP);
        const big = (v: bigint) => v > 0xffffffffffffn;
        if (big(a.value.descUserAddr) || big(a.value.usedUserAddr) || big(a.value.availUserAddr))
          return err(Errno.EFAULT);
        if (a.value.availUserAddr & 1n || a.value.usedUserAddr & 3n || a.value.logGuestAddr & 3n)
          return err(Errno.EINVAL);
        ring.descUser = Number(a.value.descUserAddr);
        ring.availUser = Number(a.value.availUserAddr);
        ring.usedUser = Number(a.value.usedUserAddr);
        vq.logUsed = (a.value.flags & 1) !== 0;
        return ok(0);
      }
      case U.VHOST_SET_VRING_BASE: {
        if (vq.active) return err(Errno.EBUSY);
        const s = U.readVringState(mm, argp);
        if (!s.ok) return s;
        if (s.value.num > 0xffff) return err(Errno.EINVAL);
        ring.lastAvailIdx = s.value.num;
        ring.lastUsedIdx = s.value.num;
        ring.availIdx = s.value.num;
        return ok(0);
      }
      case U.VHOST_GET_VRING_BASE: {
        const w = U.writeVringState(mm, argp, { index: idx.value, num: ring.lastAvailIdx });
        return w.ok ? ok(0) : w;
      }
      case U.VHOST_SET_VRING_KICK:
      case U.VHOST_SET_VRING_CALL:
      case U.VHOST_SET_VRING_ERR: {
        const f = U.readVringFile(mm, argp);
        if (!f.ok) return f;
        let ctx: Eventfd | null = null;
        let file: File | null = null;
        if (f.value.fd !== U.VHOST_FILE_UNBIND) {
          file = cur.files?.get(f.value.fd) ?? null;
          if (!file) return err(Errno.EBADF);
          if (file.ops !== EVENTFD_OPS) return err(Errno.EINVAL);
          ctx = file.priv as Eventfd;
        }
        if (cmd === U.VHOST_SET_VRING_KICK) {
          if (file !== vq.kick) {
            if (vq.kick) {
              vq.poll.stop();
              pollStopped = true;
            }
            vq.kick = file;
            // pollstart && vq->handle_kick: polling starts whether or not a backend is set
            if (ctx) vq.poll.start(k, ctx);
          }
        } else if (cmd === U.VHOST_SET_VRING_CALL) vq.callCtx = ctx;
        else vq.errorCtx = ctx;
        return ok(0);
      }
      case U.VHOST_SET_VRING_BUSYLOOP_TIMEOUT: {
        const s = U.readVringState(mm, argp);
        if (!s.ok) return s;
        vq.busyloopTimeout = s.value.num;
        return ok(0);
      }
      case U.VHOST_GET_VRING_BUSYLOOP_TIMEOUT: {
        const w = U.writeVringState(mm, argp, { index: idx.value, num: vq.busyloopTimeout });
        return w.ok ? ok(0) : w;
      }
      case U.VHOST_SET_VRING_ENDIAN:
      case U.VHOST_GET_VRING_ENDIAN:
        return err(Errno.ENOTTY); // CONFIG_VHOST_CROSS_ENDIAN_LEGACY is off in distribution kernels
      default:
        return err(Errno.ENOIOCTLCMD);
    }
  })();
  mutexUnlock(k, vq.mutex);
  if (pollStopped) yield* vhostDevFlush(k, dev);
  return r;
}

/**
 * The common part of the drivers' set_features (vhost_net_set_features,
 * vhost_scsi_set_features, vhost_vsock_set_features): under the dev mutex, record the acked
 * features on the device and on every virtqueue under its mutex. `extra` runs first, under the
 * dev mutex (a driver's own feature state).
 */
export function* vhostDevAckFeatures(
  k: Kernel,
  dev: VhostDev,
  features: bigint,
  extra?: () => void,
): KGen<void> {
  yield* mutexLock(k, dev.mutex);
  extra?.();
  dev.ackedFeatures = features;
  for (const vq of dev.vqs) {
    yield* mutexLock(k, vq.mutex);
    vq.ring.ackedFeatures = features;
    mutexUnlock(k, vq.mutex);
  }
  mutexUnlock(k, dev.mutex);
}

/** What a driver offers and how it takes the feature ioctls. */
export interface DriverFeatures {
  readonly features: bigint;
  /** null: the driver does not handle the backend-feature ioctls */
  readonly backendFeatures: bigint | null;
  set(features: bigint): KGen<Result<number>>;
}

/**
 * The feature ioctls each driver's ioctl switch handles alike, without the dev mutex or an
 * owner check (vhost_net_ioctl, vhost_scsi_ioctl, vhost_vsock_dev_ioctl): GET/SET_FEATURES,
 * GET/SET_BACKEND_FEATURES (unknown bits → EOPNOTSUPP). null for any other ioctl.
 */
export function* vhostFeatureIoctl(
  k: Kernel,
  dev: VhostDev,
  cmd: number,
  argp: number,
  d: DriverFeatures,
): KGen<Result<number> | null> {
  const mm = k.current!.mm;
  if (cmd === U.VHOST_GET_FEATURES) {
    const w = U.writeU64(mm, argp, d.features);
    return w.ok ? ok(0) : w;
  }
  if (cmd === U.VHOST_SET_FEATURES) {
    const v = U.readU64(mm, argp);
    if (!v.ok) return v;
    return yield* d.set(v.value);
  }
  if (d.backendFeatures === null) return null;
  if (cmd === U.VHOST_GET_BACKEND_FEATURES) {
    const w = U.writeU64(mm, argp, d.backendFeatures);
    return w.ok ? ok(0) : w;
  }
  if (cmd === U.VHOST_SET_BACKEND_FEATURES) {
    const v = U.readU64(mm, argp);
    if (!v.ok) return v;
    if (v.value & ~d.backendFeatures) return err(Errno.EOPNOTSUPP);
    dev.ackedBackendFeatures = v.value;
    return ok(0);
  }
  return null;
}

/** models vq_err(): report a ring error through the error eventfd. */
export function vqErr(k: Kernel, vq: VhostVirtqueue, what: string): void {
  if (k.trace.enabled) k.emit('vhost_vq_err', `dev=${vq.dev.name} vq=${vq.index} ${what}`);
  if (vq.errorCtx) eventfdSignal(k, vq.errorCtx);
}

/**
 * models vhost_exceeds_weight(): past the device's packet or byte weight, requeue the handler
 * (vhost_poll_queue) and tell it to stop, so one virtqueue cannot starve the others.
 */
export function vhostExceedsWeight(
  k: Kernel,
  vq: VhostVirtqueue,
  pkts: number,
  total: number,
  pktWeight: number,
  byteWeight: number,
): boolean {
  if (pkts >= pktWeight || total >= byteWeight) {
    vhostVqWorkQueue(k, vq, vq.poll.work);
    return true;
  }
  return false;
}

/** models vhost_signal(): notify the guest through the call eventfd if the ring says so. */
export function vhostSignal(k: Kernel, vq: VhostVirtqueue, notify: boolean): void {
  if (!notify || !vq.callCtx) return;
  vq.calls++;
  eventfdSignal(k, vq.callCtx);
  if (k.trace.enabled) k.emit('vhost_call', `dev=${vq.dev.name} vq=${vq.index}`);
}

/** models the end of vhost_vring_ioctl for backends: start polling the kick fd once active. */
export function vhostVqStartPoll(k: Kernel, vq: VhostVirtqueue): void {
  if (vq.kick) vq.poll.start(k, vq.kick.priv as Eventfd);
}
