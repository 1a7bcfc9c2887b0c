/**
 * pid 1. Models init/main.c rest_init() → user_mode_thread(kernel_init, NULL, CLONE_FS) and,
 * after the exec of /sbin/init, the reaper loop every init runs: wait for any child (__WALL)
 * and sleep until one changes state.
 */

import { doWait } from './exit.js';
import { copyProcess } from './fork.js';
import type { Kernel } from './kernel.js';
import { MM } from './mm.js';
import { type KGen, Op } from './sched.js';
import {
  __WALL,
  CLONE_FS,
  CLONE_UNTRACED,
  CLONE_VM,
  TASK_INTERRUPTIBLE,
  TASK_RUNNING,
  WEXITED,
  WNOHANG,
} from './sched-consts.js';
import { getSignal } from './signal.js';
import { SIGNAL_UNKILLABLE, type Task } from './task.js';

/** init's body: reap every child that becomes reapable, forever. */
export function* initReaper(t: Task): KGen<number> {
  const k = t.kernel;
  for (;;) {
    for (;;) {
      const r = yield* doWait(k, -1, __WALL | WEXITED | WNOHANG);
      if (!r.ok || r.value.pid === 0) break;
    }
    // sleep until __wake_up_parent() (a child died or stopped) or a signal
    const wq = t.signal.wqChldexit;
    wq.waiters.add(t);
    t.state = TASK_INTERRUPTIBLE;
    yield Op.Schedule;
    wq.waiters.delete(t);
    t.state = TASK_RUNNING;
    // return to user mode: SIGNAL_UNKILLABLE makes default-fatal signals no-ops for init;
    // the freezer freezes it here like any user task
    while (t.sigpending) {
      const ks = yield* getSignal(k);
      if (!ks.sig) break;
    }
  }
}

export function spawnInit(k: Kernel): Task {
  const r = k.withCurrent(k.idle, () =>
    copyProcess(k, {
      flags: (CLONE_FS | CLONE_VM | CLONE_UNTRACED) >>> 0,
      exitSignal: 0,
      fn: initReaper,
      name: 'init',
    }),
  );
  if (!r.ok) throw new Error(`boot: cannot create init: errno ${r.errno}`);
  const t = r.value;
  // after execve("/sbin/init"): an address space of its own
  t.mm = new MM(k.nextMmId());
  t.mm.memcg = k.cgroupRoots[0]!.top;
  t.activeMm = t.mm;
  t.execPath = '/sbin/init';
  t.signal.flags |= SIGNAL_UNKILLABLE;
  k.initPidNs.childReaper = t;
  k.wakeUpNewTask(t);
  return t;
}
