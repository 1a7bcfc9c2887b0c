/**
 * The execution model's primitives: what a task's coroutine yields to the scheduler, and the
 * sleeping/waking building blocks of kernel/sched/core.c (schedule, try_to_wake_up),
 * kernel/sched/wait.c (wait queues), kernel/sched/completion.c and kernel/locking/mutex.c.
 *
 * A task body is a generator. Kernel code that may sleep is a generator called with
 * `yield*`; code that never sleeps is a plain function. Sleeping follows the kernel's
 * pattern: set the task state, re-check the condition, then `yield Op.Schedule`. A wake-up
 * that arrives while the task is still TASK_RUNNING is a no-op, exactly as in Linux, so
 * lost-wake-up bugs can be modelled and found.
 */
import { Errno } from './errno.js';
import { FP_READ, FP_WRITE, isAudited, newObjectId } from './footprint.js';
import type { Kernel } from './kernel.js';
import {
  TASK_INTERRUPTIBLE,
  TASK_KILLABLE,
  TASK_NORMAL,
  TASK_RUNNING,
  TASK_UNINTERRUPTIBLE,
  TASK_WAKEKILL,
} from './sched-consts.js';
import type { Task } from './task.js';

/** What a coroutine yields. */
export const enum Op {
  /** schedule(): dequeue unless the task is TASK_RUNNING */
  Schedule = 0,
  /** a preemption point: the task stays runnable; any runnable task may run next */
  Preempt = 1,
  /** the task finished do_exit(); its coroutine is never resumed */
  Dead = 2,
}

export type KGen<T = void> = Generator<Op, T, unknown>;

/** schedule() */
export function* schedule(): KGen {
  yield Op.Schedule;
}

/**
 * An explicit preemption point (cond_resched / preemption at an interleaving that matters).
 * `where` names the modelled kernel site; a counterexample prints it for a task preempted here.
 */
export function* preemptPoint(k: Kernel, where: string): KGen {
  const t = k.current;
  if (t) t.at = where;
  yield Op.Preempt;
}

/** models signal_pending_state(): would a sleep in `state` be interrupted now? */
export function signalPendingState(state: number, t: Task): boolean {
  if (!(state & (TASK_INTERRUPTIBLE | TASK_WAKEKILL))) return false;
  if (!t.sigpending && !t.notifySignal) return false;
  return (state & TASK_INTERRUPTIBLE) !== 0 || t.fatalSignalPending();
}

/** A wait queue head: the set of sleepers, in arrival order. */
export class WaitQueue {
  readonly waiters = new Set<Task>();
  /** the explorer's name for it and for what it guards (footprint.ts) */
  readonly oid = newObjectId();
  private fpName = '';
  get fpObject(): string {
    if (this.fpName === '') this.fpName = `wq:${this.oid}`;
    return this.fpName;
  }
  constructor(
    /** what the queue belongs to, for wait-for graphs */
    readonly name = 'wait_queue',
    /** for a mutex: who holds it (the edge of a wait-for graph) */
    readonly holder: (() => Task | null) | null = null,
  ) {}
  /** wait entries with their own wake function (poll callbacks: io_uring's io_poll_wake) */
  funcs: Set<() => void> | null = null;
  /** models __wake_up(wq, mode, nr): wake up to `nr` sleepers (0 = all) whose state matches `mode`. */
  wakeUp(k: Kernel, mode = TASK_NORMAL, nr = 0): number {
    const fp = k.fp;
    if (fp) {
      // waking an empty queue only looks at it
      fp.touch(this.fpObject, this.waiters.size > 0 || this.funcs?.size ? FP_WRITE : FP_READ);
      if (this.funcs) for (const fn of this.funcs) if (!isAudited(fn)) fp.global = true;
    }
    if (this.funcs) for (const fn of [...this.funcs]) fn();
    let woken = 0;
    for (const t of this.waiters) {
      if (k.tryToWakeUp(t, mode)) woken++;
      if (nr && woken >= nr) break;
    }
    return woken;
  }
  get active(): boolean {
    return this.waiters.size > 0;
  }
}

/**
 * models wait_event_*(): sleep on `wq` in `state` until `cond()` holds. Returns 0, or
 * -ERESTARTSYS when a signal interrupts an interruptible/killable sleep.
 */
export function* waitEvent(k: Kernel, wq: WaitQueue, cond: () => boolean, state: number): KGen<number> {
  // footprints: the queue, and the object it guards, which `cond` reads (a mutex's owner, a
  // completion's count); an audited caller must not wait on anything else (footprint.ts)
  k.fp?.touch(wq.fpObject, FP_WRITE);
  if (cond()) return 0;
  const t = k.current!;
  let ret = 0;
  for (;;) {
    // again after every wake-up: the run that resumes here is a step of its own
    k.fp?.touch(wq.fpObject, FP_WRITE);
    wq.waiters.add(t);
    t.state = state;
    t.waitingOn = wq;
    if (cond()) break;
    if (signalPendingState(state, t)) {
      ret = -Errno.ERESTARTSYS;
      break;
    }
    yield Op.Schedule;
  }
  wq.waiters.delete(t);
  t.waitingOn = null;
  t.state = TASK_RUNNING;
  return ret;
}

/** struct completion */
export class Completion {
  done = 0;
  readonly wq: WaitQueue;
  constructor(readonly name: string) {
    this.wq = new WaitQueue(`completion ${name}`);
  }
}

/** models complete(): one waiter may proceed. */
export function complete(k: Kernel, c: Completion): void {
  if (c.done !== Number.MAX_SAFE_INTEGER) c.done++;
  c.wq.wakeUp(k, TASK_NORMAL, 1);
}

/** models complete_all(): every present and future waiter proceeds. */
export function completeAll(k: Kernel, c: Completion): void {
  c.done = Number.MAX_SAFE_INTEGER;
  c.wq.wakeUp(k, TASK_NORMAL, 0);
}

/** models wait_for_completion() (uninterruptible). */
export function* waitForCompletion(k: Kernel, c: Completion): KGen<void> {
  yield* waitEvent(k, c.wq, () => c.done > 0, TASK_UNINTERRUPTIBLE);
  if (c.done !== Number.MAX_SAFE_INTEGER) c.done--;
}

/** models wait_for_completion_killable(): 0, or -ERESTARTSYS on a fatal signal. */
export function* waitForCompletionKillable(k: Kernel, c: Completion): KGen<number> {
  const r = yield* waitEvent(k, c.wq, () => c.done > 0, TASK_KILLABLE);
  if (r === 0 && c.done !== Number.MAX_SAFE_INTEGER) c.done--;
  return r;
}

/** struct mutex (sleeping lock; FIFO hand-over to the first waiter). */
export class Mutex {
  owner: Task | null = null;
  readonly wq: WaitQueue;
  constructor(readonly name: string) {
    this.wq = new WaitQueue(`mutex ${name}`, () => this.owner);
  }
}

/** models mutex_lock(): uninterruptible. Taking a mutex one already holds is a model bug. */
export function* mutexLock(k: Kernel, m: Mutex): KGen<void> {
  const t = k.current!;
  if (m.owner === t) throw new Error(`recursive mutex_lock of ${m.name} by ${t.comm}-${t.pid}`);
  yield* waitEvent(k, m.wq, () => m.owner === null, TASK_UNINTERRUPTIBLE);
  m.owner = t;
}

/** models mutex_trylock(). */
export function mutexTrylock(k: Kernel, m: Mutex): boolean {
  k.fp?.touch(m.wq.fpObject, FP_WRITE);
  if (m.owner) return false;
  m.owner = k.current;
  return true;
}

/** models mutex_unlock(). */
export function mutexUnlock(k: Kernel, m: Mutex): void {
  if (m.owner !== k.current) throw new Error(`mutex_unlock of ${m.name} by a non-owner`);
  m.owner = null;
  m.wq.wakeUp(k, TASK_NORMAL, 1);
}

/** models schedule_hrtimeout / msleep: sleep `ns` of virtual time in `state`. Returns true if the timer fired. */
export function* sleepFor(k: Kernel, ns: number, state = TASK_UNINTERRUPTIBLE): KGen<boolean> {
  const t = k.current!;
  let fired = false;
  const timer = k.addTimer(k.clock + ns, () => {
    fired = true;
    k.tryToWakeUp(t, TASK_NORMAL);
  });
  t.state = state;
  while (!fired) {
    if (signalPendingState(state, t)) break;
    yield Op.Schedule;
    if (!fired && t.state === TASK_RUNNING) {
      // woken early (signal or explicit wake)
      if (signalPendingState(state, t)) break;
      t.state = state;
    }
  }
  if (!fired) k.cancelTimer(timer);
  t.state = TASK_RUNNING;
  return fired;
}
