/**
 * vhost_task: the merged user-worker wrapper, kernel/vhost_task.c, in each generation the
 * profile selects (kernel-spec §6.1–6.3):
 *  - 'vhost-task-rc1' (6.4-rc1…rc4): a separate process (no CLONE_THREAD), exit_signal 0,
 *    signals ignored; the driver's fn loops until vhost_task_should_stop(); stop reaps it with
 *    kernel_wait4(pid, __WCLONE).
 *  - 'vhost-task-thread' (6.4-rc5…6.9): CLONE_THREAD|CLONE_SIGHAND, get_signal polling, a
 *    fatal signal only marks it dead (it keeps running work until vhost_task_stop).
 *  - 'vhost-task-sigkill' (6.10+): a fatal signal ends the loop; handle_sigkill runs under
 *    exit_mutex unless STOP was set; 6.17 adds the locked wake API (vhostTaskLockedWake).
 * The lost wake-up of the 6.4-rc5 loop (STOP tested before set_current_state, fixed by
 * 4b13cbef7970) is the profile bug "vhost-task-lost-wakeup".
 */
import { Errno, err, ok, type Result } from './errno.js';
import { doWait } from './exit.js';
import { fpGlobal, fpUnaudited } from './footprint.js';
import { copyProcess } from './fork.js';
import type { Kernel } from './kernel.js';
import {
  Completion,
  complete,
  type KGen,
  Mutex,
  mutexLock,
  mutexUnlock,
  Op,
  waitForCompletion,
} from './sched.js';
import {
  __WCLONE,
  CLONE_FS,
  CLONE_SIGHAND,
  CLONE_THREAD,
  CLONE_UNTRACED,
  CLONE_VM,
  TASK_INTERRUPTIBLE,
  TASK_RUNNING,
  WEXITED,
} from './sched-consts.js';
import { getSignal } from './signal.js';
import type { Task } from './task.js';

export const VHOST_TASK_FLAGS_STOP = 0;
export const VHOST_TASK_FLAGS_KILLED = 1;

/** struct vhost_task */
export class VhostTask {
  flags = 0;
  task!: Task;
  readonly exited = new Completion('vhost_task.exited');
  readonly exitMutex = new Mutex('vhost_task.exit_mutex');
  constructor(
    /** 6.4-rc5+: run queued work once, return whether any ran; 6.4-rc1: the whole loop */
    readonly fn: (data: unknown) => KGen<boolean | number>,
    readonly handleSigkill: ((data: unknown) => KGen<void>) | null,
    readonly data: unknown,
  ) {}
  get stopRequested(): boolean {
    return (this.flags & (1 << VHOST_TASK_FLAGS_STOP)) !== 0;
  }
  get killed(): boolean {
    return (this.flags & (1 << VHOST_TASK_FLAGS_KILLED)) !== 0;
  }
}

/** models vhost_task_should_stop() */
export function vhostTaskShouldStop(vtsk: VhostTask): boolean {
  return vtsk.stopRequested;
}

/**
 * The explorer's footprints (footprint.ts) in the worker loop of 6.4-rc5 and later: the loop
 * is audited — its own task state, the STOP and KILLED bits (written only by paths that are
 * not audited) and vhost_run_work_list(), which records the work list and each work and
 * marks a work whose function is not audited — as far as signal delivery and the way out,
 * which are not.
 */
function vhostTaskLoopFootprint(k: Kernel, me: Task): void {
  if (!k.fp) return;
  if (me.sigpending) fpUnaudited(k, me);
  else me.fpAudited = true;
}

/** models vhost_task_fn() of the profile's generation. */
function* vhostTaskFn(k: Kernel, vtsk: VhostTask): KGen<number> {
  const gen = k.profile.vhostTaskGeneration;
  const me = k.current!;
  if (gen === 'vhost-task-rc1') {
    const ret = (yield* vtsk.fn(vtsk.data)) as number;
    complete(k, vtsk.exited);
    return ret;
  }
  if (gen === 'vhost-task-thread') {
    let dead = false;
    const lostWakeup = k.profile.bugs.has('vhost-task-lost-wakeup');
    for (;;) {
      vhostTaskLoopFootprint(k, me);
      // 6.4-rc5 (f9010dbdce91) tests STOP first, with the task still running
      if (lostWakeup && vtsk.stopRequested) break;
      if (!dead && me.sigpending) {
        const ks = yield* getSignal(k);
        if (ks.fatal) {
          dead = true;
          me.sigpending = false; // clear_thread_flag(TIF_SIGPENDING)
        }
      }
      if (lostWakeup) {
        // 6.4-rc5: run fn, and only when it found no work set TASK_INTERRUPTIBLE and schedule.
        // A vhost_task_stop() or vhost_work_queue() whose wake_up_process lands after the STOP
        // test or fn's llist_del_all and before set_current_state finds the task running and
        // is lost: the worker sleeps with STOP set or work queued. 4b13cbef7970 (6.4-rc6) sets
        // TASK_INTERRUPTIBLE before the STOP test and fn, as below.
        const did = (yield* vtsk.fn(vtsk.data)) as boolean;
        if (!did) {
          me.at = 'vhost_task_fn(): fn() found no work, before set_current_state(TASK_INTERRUPTIBLE)';
          yield Op.Preempt;
          me.state = TASK_INTERRUPTIBLE;
          yield Op.Schedule;
        }
        me.state = TASK_RUNNING;
        continue;
      }
      me.state = TASK_INTERRUPTIBLE;
      if (vtsk.stopRequested) {
        me.state = TASK_RUNNING;
        break;
      }
      const did = (yield* vtsk.fn(vtsk.data)) as boolean;
      if (!did) yield Op.Schedule;
      me.state = TASK_RUNNING;
    }
    me.state = TASK_RUNNING;
    fpUnaudited(k, me);
    complete(k, vtsk.exited);
    return 0;
  }
  // 6.10+
  for (;;) {
    vhostTaskLoopFootprint(k, me);
    if (me.sigpending) {
      const ks = yield* getSignal(k);
      if (ks.fatal) break;
    }
    me.state = TASK_INTERRUPTIBLE;
    if (vtsk.stopRequested) {
      me.state = TASK_RUNNING;
      break;
    }
    const did = (yield* vtsk.fn(vtsk.data)) as boolean;
    if (!did) yield Op.Schedule;
    me.state = TASK_RUNNING;
  }
  fpUnaudited(k, me);
  yield* mutexLock(k, vtsk.exitMutex);
  if (!vtsk.stopRequested) {
    vtsk.flags |= 1 << VHOST_TASK_FLAGS_KILLED;
    if (vtsk.handleSigkill) yield* vtsk.handleSigkill(vtsk.data);
  }
  mutexUnlock(k, vtsk.exitMutex);
  complete(k, vtsk.exited);
  return 0;
}

/**
 * models vhost_task_create(fn, handle_sigkill, arg, name) in the profile's generation:
 * copy_process of current with the generation's clone flags, user_worker, no_files and the
 * name; the task is returned inactive. Failure: NULL before cb380909ae3b (callers report
 * ENOMEM), ERR_PTR(copy_process errno) after; the model returns the errno either way and
 * `vhostTaskErrPtr` tells callers which one the era would have seen.
 */
export function vhostTaskCreate(
  k: Kernel,
  fn: (data: unknown) => KGen<boolean | number>,
  handleSigkill: ((data: unknown) => KGen<void>) | null,
  data: unknown,
  name: string,
): Result<VhostTask> {
  const gen = k.profile.vhostTaskGeneration;
  if (!gen) throw new Error(`profile ${k.profile.name} has no vhost_task`);
  if (k.allocFails('vhost_task')) return err(Errno.ENOMEM);
  const vtsk = new VhostTask(fn, gen === 'vhost-task-sigkill' ? handleSigkill : null, data);
  const rc1 = gen === 'vhost-task-rc1';
  const flags = rc1
    ? CLONE_FS | CLONE_UNTRACED | CLONE_VM
    : CLONE_FS | CLONE_UNTRACED | CLONE_VM | CLONE_THREAD | CLONE_SIGHAND;
  const r = copyProcess(k, {
    flags: flags >>> 0,
    exitSignal: 0,
    fn: () => vhostTaskFn(k, vtsk),
    name,
    userWorker: true,
    noFiles: true,
    ignoreSignals: rc1,
  });
  if (!r.ok) return r;
  vtsk.task = r.value;
  r.value.worker = vtsk;
  return ok(vtsk);
}

/** models vhost_task_start(): wake_up_new_task. */
export function vhostTaskStart(k: Kernel, vtsk: VhostTask): void {
  k.wakeUpNewTask(vtsk.task);
}

/**
 * models vhost_task_wake(): ≤ 6.16 a plain wake_up_process; 6.17+ (2280e297ad78) under
 * exit_mutex: WARN and return if STOP is set, return silently if KILLED.
 */
export function* vhostTaskWake(k: Kernel, vtsk: VhostTask): KGen<void> {
  if (!k.profile.vhostTaskLockedWake) {
    k.wakeUpProcess(vtsk.task);
    return;
  }
  yield* mutexLock(k, vtsk.exitMutex);
  if (vtsk.stopRequested) k.warn('vhost_task_wake', 'waking a stopped vhost_task');
  else if (!vtsk.killed) k.wakeUpProcess(vtsk.task);
  mutexUnlock(k, vtsk.exitMutex);
}

/**
 * models __vhost_task_wake() (6.17+, lockless, used by vhost core from RCU context): WARN if
 * no kill handler was registered; WARN and return if KILLED; else wake. Earlier eras: wake.
 */
export function vhostTaskWakeLockless(k: Kernel, vtsk: VhostTask): void {
  if (k.profile.vhostTaskLockedWake) {
    // the warnings are not audited (footprint.ts)
    if (!vtsk.handleSigkill || vtsk.killed) fpGlobal(k);
    if (!vtsk.handleSigkill) k.warn('__vhost_task_wake', 'no kill handler');
    if (vtsk.killed) {
      k.warn('__vhost_task_wake', 'waking a killed vhost_task');
      return;
    }
  }
  k.wakeUpProcess(vtsk.task);
}

/**
 * models vhost_task_stop(): 6.10+: under exit_mutex set STOP and wake unless KILLED; wait for
 * `exited`. 6.4-rc5…6.9: set STOP, wake, wait. 6.4-rc1: also reap with kernel_wait4(__WCLONE).
 */
export function* vhostTaskStop(k: Kernel, vtsk: VhostTask): KGen<void> {
  const gen = k.profile.vhostTaskGeneration;
  if (gen === 'vhost-task-sigkill') {
    yield* mutexLock(k, vtsk.exitMutex);
    if (!vtsk.killed) {
      vtsk.flags |= 1 << VHOST_TASK_FLAGS_STOP;
      k.wakeUpProcess(vtsk.task);
    }
    mutexUnlock(k, vtsk.exitMutex);
  } else {
    vtsk.flags |= 1 << VHOST_TASK_FLAGS_STOP;
    k.wakeUpProcess(vtsk.task);
  }
  yield* waitForCompletion(k, vtsk.exited);
  if (gen === 'vhost-task-rc1') {
    // kernel_wait4(pid, NULL, __WCLONE, NULL): the creator reaps its clone child
    const pid = vtsk.task.pidIn(k.current!.activePidNs()!);
    // the result is ignored: a releaser that is not the worker's parent gets ECHILD
    yield* doWait(k, pid, __WCLONE | WEXITED);
  }
}
