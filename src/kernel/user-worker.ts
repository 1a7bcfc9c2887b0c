/**
 * The V5 "user worker" API of the Nov 2021 series ([PATCH V5 01–06/10]): kernel_worker(),
 * kernel_worker_start() and kernel_worker_flags_valid(). Never merged; the seed-v5 profile
 * uses it for vhost. Its PF_USER_WORKER value is 0x01000000 and its reaping goes through the
 * do_notify_parent() hack of patch 05 (see doNotifyParent).
 */
import { Errno, err, type Result } from './errno.js';
import {
  copyProcess,
  KERN_WORKER_IO,
  KERN_WORKER_NO_FILES,
  KERN_WORKER_SIG_IGN,
  KERN_WORKER_USER,
} from './fork.js';
import type { Kernel } from './kernel.js';
import {
  CLONE_CLEAR_SIGHAND,
  CLONE_SIGHAND,
  CLONE_UNTRACED,
  CLONE_VM,
  CSIGNAL,
  hasFlag,
} from './sched-consts.js';
import { setTaskComm } from './syscalls.js';
import type { Task, TaskBody } from './task.js';

export { KERN_WORKER_IO, KERN_WORKER_NO_FILES, KERN_WORKER_SIG_IGN, KERN_WORKER_USER };

/**
 * models kernel_worker_flags_valid() ([PATCH V5 06/10]): only IO, USER, NO_FILES and SIG_IGN
 * are known; SIG_IGN may not be combined with CLONE_SIGHAND (it would change the parent's
 * shared handlers) or CLONE_CLEAR_SIGHAND (pointless when ignoring).
 */
export function kernelWorkerFlagsValid(cloneFlags: number, workerFlags: number): boolean {
  const known = KERN_WORKER_IO | KERN_WORKER_USER | KERN_WORKER_NO_FILES | KERN_WORKER_SIG_IGN;
  if (workerFlags & ~known) return false;
  if (
    workerFlags & KERN_WORKER_SIG_IGN &&
    (hasFlag(cloneFlags, CLONE_SIGHAND) || hasFlag(cloneFlags, CLONE_CLEAR_SIGHAND))
  )
    return false;
  return true;
}

/**
 * models kernel_worker(fn, arg, node, clone_flags, worker_flags) ([PATCH V5 06/10]): forces
 * CLONE_VM|CLONE_UNTRACED, takes the exit signal from the CSIGNAL bits, always adds
 * KERN_WORKER_USER, validates (EINVAL), then copy_process of current. The task is inactive.
 */
export function kernelWorker(k: Kernel, fn: TaskBody, cloneFlags: number, workerFlags: number): Result<Task> {
  const wf = workerFlags | KERN_WORKER_USER;
  if (!kernelWorkerFlagsValid(cloneFlags, wf)) return err(Errno.EINVAL);
  return copyProcess(k, {
    flags: ((cloneFlags | CLONE_VM | CLONE_UNTRACED) & ~CSIGNAL) >>> 0,
    exitSignal: cloneFlags & CSIGNAL,
    fn,
    workerFlags: wf,
  });
}

/**
 * models kernel_worker_start(tsk, namefmt, ...) ([PATCH V5 06/10]): WARN if the task is not a
 * user worker; set its name (15 chars); wake_up_new_task.
 */
export function kernelWorkerStart(k: Kernel, t: Task, name: string): void {
  if (!(t.flags & (k.profile.pfUserWorker || 0x01000000)))
    k.warn('kernel_worker_start', `${t} is not a user worker`);
  setTaskComm(k, t, name);
  k.wakeUpNewTask(t);
}
