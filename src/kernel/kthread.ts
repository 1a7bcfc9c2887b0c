/**
 * kthreadd and the kthread API. Models kernel/kthread.c, v6.12: kthreadd(),
 * kthread_create_on_node(), kthread(), kthread_stop(), kthread_should_stop(),
 * kthread_park()/unpark()/parkme(), kthread_use_mm()/kthread_unuse_mm().
 */
import { Errno, err, ok, type Result } from './errno.js';
import { ignoreSignals, kernelThread } from './fork.js';
import type { Kernel } from './kernel.js';
import type { MM } from './mm.js';
import {
  Completion,
  complete,
  type KGen,
  Op,
  waitForCompletion,
  waitForCompletionKillable,
} from './sched.js';
import {
  CLONE_FILES,
  CLONE_FS,
  PF_EXITING,
  PF_NO_SETAFFINITY,
  PF_NOFREEZE,
  TASK_INTERRUPTIBLE,
  TASK_PARKED,
  TASK_RUNNING,
  TASK_UNINTERRUPTIBLE,
} from './sched-consts.js';
import { SIGCHLD } from './signal-consts.js';
import type { KthreadInfo, Task, TaskBody } from './task.js';

// struct kthread flags bits
export const KTHREAD_IS_PER_CPU = 0;
export const KTHREAD_SHOULD_STOP = 1;
export const KTHREAD_SHOULD_PARK = 2;

/** struct kthread_create_info */
interface KthreadCreateInfo {
  threadfn: (data: unknown) => KGen<number>;
  data: unknown;
  fullName: string;
  /** NULL once the creator gave up (killed) */
  done: Completion | null;
  result: Result<Task> | null;
}

/**
 * models kthreadd(), v6.12: set up a clean context (comm "kthreadd", ignore every signal,
 * housekeeping CPUs, PF_NOFREEZE, root cgroup), then create the threads requested on
 * kthread_create_list, sleeping interruptibly while the list is empty.
 */
export function* kthreaddBody(t: Task): KGen<number> {
  const k = t.kernel;
  ignoreSignals(t);
  t.cpusAllowed = k.housekeepingCpus;
  t.flags |= PF_NOFREEZE;
  t.noCgroupMigration = true; // cgroup_init_kthreadd(): kthreadd itself never migrates
  k.kthreaddReady = true;
  const list = k.kthreadCreateList as KthreadCreateInfo[];
  for (;;) {
    t.state = TASK_INTERRUPTIBLE;
    if (list.length === 0) yield Op.Schedule;
    t.state = TASK_RUNNING;
    while (list.length > 0) {
      const create = list.shift()!;
      yield* createKthread(k, create);
    }
  }
}

/** models create_kthread(): kernel_thread(kthread, create, name, CLONE_FS|CLONE_FILES|SIGCHLD). */
function* createKthread(k: Kernel, create: KthreadCreateInfo): KGen<void> {
  const body: TaskBody = (self) => kthread(k, self, create);
  const r = yield* kernelThread(k, body, create.fullName, CLONE_FS | CLONE_FILES | SIGCHLD);
  if (!r.ok) {
    const done = create.done;
    create.done = null;
    create.result = r;
    if (done) complete(k, done);
  }
}

/**
 * models kthread(), v6.12: report the task, sleep TASK_UNINTERRUPTIBLE until first woken;
 * then apply the housekeeping affinity, honour a park request, and run threadfn unless a stop
 * was requested first (then exit with EINTR).
 */
function* kthread(k: Kernel, self: Task, create: KthreadCreateInfo): KGen<number> {
  const info: KthreadInfo = {
    flags: 0,
    result: 0,
    threadfn: create.threadfn,
    data: create.data,
    parked: new Completion('kthread.parked'),
    exited: new Completion('kthread.exited'),
    fullName: create.fullName,
    started: false,
  };
  self.kthread = info;
  const done = create.done;
  create.done = null;
  if (!done) {
    // the creator was killed: clean up ourselves
    return -Errno.EINTR;
  }
  create.result = ok(self);
  self.state = TASK_UNINTERRUPTIBLE;
  complete(k, done);
  yield Op.Schedule; // schedule_preempt_disabled(): wait for the first wake_up_process
  // Linux resets the mask before complete(done); a kthread_bind() by the creator comes after
  if (!(self.flags & PF_NO_SETAFFINITY)) self.cpusAllowed = k.housekeepingCpus;
  let ret = -Errno.EINTR;
  if (!(info.flags & (1 << KTHREAD_SHOULD_STOP))) {
    self.noCgroupMigration = false; // cgroup_kthread_ready()
    info.started = true;
    yield* kthreadParkme(k);
    ret = yield* create.threadfn(create.data);
  }
  info.result = ret;
  return ret;
}

/**
 * models kthread_create_on_node(threadfn, data, node, namefmt), v6.12: queue a request,
 * wake kthreadd, wait killably. A fatal signal first → EINTR (kthreadd cleans up). The new
 * thread is returned sleeping; wake_up_process() starts it.
 */
export function* kthreadCreateOnNode(
  k: Kernel,
  threadfn: (data: unknown) => KGen<number>,
  data: unknown,
  name: string,
): KGen<Result<Task>> {
  if (k.allocFails('kthread_create_info')) return err(Errno.ENOMEM);
  const done = new Completion('kthread_create.done');
  const create: KthreadCreateInfo = { threadfn, data, fullName: name, done, result: null };
  (k.kthreadCreateList as KthreadCreateInfo[]).push(create);
  k.wakeUpProcess(k.kthreadd);
  const r = yield* waitForCompletionKillable(k, done);
  if (r < 0) {
    if (create.done) {
      create.done = null;
      return err(Errno.EINTR);
    }
    yield* waitForCompletion(k, done);
  }
  return create.result ?? err(Errno.ENOMEM);
}

/** kthread_run(): create and wake. */
export function* kthreadRun(
  k: Kernel,
  threadfn: (data: unknown) => KGen<number>,
  data: unknown,
  name: string,
): KGen<Result<Task>> {
  const r = yield* kthreadCreateOnNode(k, threadfn, data, name);
  if (r.ok) k.wakeUpProcess(r.value);
  return r;
}

function toKthread(t: Task): KthreadInfo {
  if (!t.kthread) throw new Error(`${t} is not a kthread`);
  return t.kthread;
}

/** models kthread_should_stop() */
export function kthreadShouldStop(k: Kernel): boolean {
  return (toKthread(k.current!).flags & (1 << KTHREAD_SHOULD_STOP)) !== 0;
}

/** models kthread_should_park() */
export function kthreadShouldPark(k: Kernel): boolean {
  return (toKthread(k.current!).flags & (1 << KTHREAD_SHOULD_PARK)) !== 0;
}

/**
 * models kthread_stop(k), v6.12: set SHOULD_STOP, unpark, TIF_NOTIFY_SIGNAL, wake, wait
 * for exit; returns threadfn's result, or -EINTR if the thread never ran threadfn.
 */
export function* kthreadStop(k: Kernel, t: Task): KGen<number> {
  const kt = toKthread(t);
  kt.flags |= 1 << KTHREAD_SHOULD_STOP;
  kthreadUnpark(k, t);
  t.notifySignal = true; // set_notify_signal(): interrupts an interruptible sleep
  k.tryToWakeUp(t, TASK_INTERRUPTIBLE | TASK_UNINTERRUPTIBLE);
  yield* waitForCompletion(k, kt.exited);
  if (k.trace.enabled) k.emit('kthread_stop_ret', `ret=${kt.result}`);
  return kt.result;
}

/** models kthread_park(k): 0; -ENOSYS if exiting; -EBUSY if a park is already requested. */
export function* kthreadPark(k: Kernel, t: Task): KGen<number> {
  if (t.flags & PF_EXITING) return -Errno.ENOSYS;
  const kt = toKthread(t);
  if (kt.flags & (1 << KTHREAD_SHOULD_PARK)) return -Errno.EBUSY;
  kt.flags |= 1 << KTHREAD_SHOULD_PARK;
  if (t !== k.current) {
    k.wakeUpProcess(t);
    yield* waitForCompletion(k, kt.parked);
  }
  return 0;
}

/** models kthread_unpark(k): clear SHOULD_PARK and wake a parked thread. */
export function kthreadUnpark(k: Kernel, t: Task): void {
  const kt = toKthread(t);
  kt.flags &= ~(1 << KTHREAD_SHOULD_PARK);
  k.tryToWakeUp(t, TASK_PARKED);
}

/** models __kthread_parkme(): sleep in TASK_PARKED while a park is requested. */
export function* kthreadParkme(k: Kernel): KGen<void> {
  const self = k.current!;
  const kt = toKthread(self);
  for (;;) {
    self.state = TASK_PARKED;
    if (!(kt.flags & (1 << KTHREAD_SHOULD_PARK))) break;
    complete(k, kt.parked);
    yield Op.Schedule;
  }
  self.state = TASK_RUNNING;
}

/**
 * models kthread_use_mm(mm), v6.12: a kthread adopts a user address space (mmgrab); WARNs
 * if the caller is not a kthread or already has an mm.
 */
export function kthreadUseMm(k: Kernel, mm: MM): void {
  const t = k.current!;
  if (!t.isKthread()) k.warn('kthread_use_mm', `${t} is not a kthread`);
  if (t.mm) k.warn('kthread_use_mm', `${t} already has an mm`);
  mm.count++;
  t.activeMm = mm;
  t.mm = mm;
}

/** models kthread_unuse_mm(mm), v6.12. */
export function kthreadUnuseMm(k: Kernel, mm: MM): void {
  const t = k.current!;
  if (!t.isKthread()) k.warn('kthread_unuse_mm', `${t} is not a kthread`);
  if (t.mm !== mm) k.warn('kthread_unuse_mm', `${t} does not use that mm`);
  t.mm = null;
  t.activeMm = null;
  mm.count--;
}
