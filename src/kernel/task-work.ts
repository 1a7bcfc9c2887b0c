/**
 * task_work: callbacks queued on a task and run by that task in its own context, on the way
 * back to user mode (get_signal / resume_user_mode_work), in io_run_task_work() of io_uring,
 * and finally in do_exit (exit_task_work). Models kernel/task_work.c task_work_add(),
 * task_work_cancel_match() and task_work_run(), v6.12.
 */
import { Errno, err, ok, type Result } from './errno.js';
import type { Kernel } from './kernel.js';
import type { KGen } from './sched.js';
import { TASK_INTERRUPTIBLE } from './sched-consts.js';
import type { Task } from './task.js';

/** struct callback_head: the function and what it belongs to (for task_work_cancel_match). */
export interface CallbackHead {
  readonly func: (k: Kernel) => KGen<void>;
  /** the object the callback works on (container_of in the kernel) */
  readonly owner: unknown;
}

/** enum task_work_notify_mode */
export type TwaMode = 'none' | 'resume' | 'signal';

/**
 * models task_work_add(task, work, notify), v6.12: ESRCH once the task has run
 * exit_task_work(); TWA_SIGNAL sets TIF_NOTIFY_SIGNAL and wakes an interruptible sleep
 * (set_notify_signal → signal_wake_up), TWA_RESUME only marks the return to user mode.
 * The list is a stack: the last work added runs first.
 */
export function taskWorkAdd(k: Kernel, t: Task, work: CallbackHead, notify: TwaMode): Result<void> {
  if (t.taskWorksExited) return err(Errno.ESRCH);
  (t.taskWorks ??= []).unshift(work);
  if (notify === 'signal') {
    t.notifySignal = true;
    k.tryToWakeUp(t, TASK_INTERRUPTIBLE);
  }
  return ok();
}

/** task_work_pending() */
export function taskWorkPending(t: Task): boolean {
  return (t.taskWorks?.length ?? 0) > 0;
}

/** models task_work_cancel_match(): remove and return the first queued work `match` accepts. */
export function taskWorkCancelMatch(t: Task, match: (w: CallbackHead) => boolean): CallbackHead | null {
  const list = t.taskWorks;
  if (!list) return null;
  const i = list.findIndex(match);
  if (i < 0) return null;
  return list.splice(i, 1)[0]!;
}

/**
 * models task_work_run(), v6.12: run every queued work in the current task, including works
 * queued while running; with `exiting` (exit_task_work) the list is closed afterwards, so a
 * later task_work_add fails with ESRCH.
 */
export function* taskWorkRun(k: Kernel, exiting = false): KGen<void> {
  const t = k.current!;
  for (;;) {
    const list = t.taskWorks;
    if (!list || list.length === 0) {
      if (exiting) t.taskWorksExited = true;
      return;
    }
    t.taskWorks = null;
    for (const w of list) yield* w.func(k);
  }
}
