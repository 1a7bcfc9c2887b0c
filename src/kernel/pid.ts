/**
 * PIDs and pid namespaces. Models kernel/pid.c alloc_pid()/free_pid() and
 * kernel/pid_namespace.c, v6.12.
 */
import type { UserNamespace } from './cred.js';
import { Errno, err, ok, type Result } from './errno.js';
import type { Task } from './task.js';

/** RESERVED_PIDS (include/linux/pid.h): the cursor wraps to 300 once it has passed it. */
export const RESERVED_PIDS = 300;
/** PID_MAX_DEFAULT (include/linux/threads.h). */
export const PID_MAX_DEFAULT = 0x8000;
/** MAX_PID_NS_LEVEL (include/linux/pid_namespace.h). */
export const MAX_PID_NS_LEVEL = 32;
/** PIDNS_ADDING: the namespace still accepts new tasks. */
export const PIDNS_ADDING = 1 << 31;

export class PidNamespace {
  /** idr: number → pid */
  readonly idr = new Map<number, Pid>();
  /** idr_get_cursor(): the last number handed out */
  cursor = 0;
  /** pid_allocated: count of numbers in use, plus PIDNS_ADDING while open */
  pidAllocated = PIDNS_ADDING;
  /** child_reaper: the namespace's init */
  childReaper: Task | null = null;
  constructor(
    readonly inum: number,
    readonly parent: PidNamespace | null,
    readonly userNs: UserNamespace,
  ) {}
  get level(): number {
    return this.parent ? this.parent.level + 1 : 0;
  }
  get adding(): boolean {
    return (this.pidAllocated & PIDNS_ADDING) !== 0;
  }
  /** models disable_pid_allocation() */
  disableAllocation(): void {
    this.pidAllocated &= ~PIDNS_ADDING;
  }
  get nrAllocated(): number {
    return this.pidAllocated & ~PIDNS_ADDING;
  }
}

/** struct upid */
export interface UPid {
  readonly nr: number;
  readonly ns: PidNamespace;
}

/** struct pid: one number per namespace level, numbers[0] in the initial namespace. */
export class Pid {
  constructor(readonly numbers: readonly UPid[]) {}
  get level(): number {
    return this.numbers.length - 1;
  }
  /** pid_nr(): the initial-namespace number */
  get nr(): number {
    return this.numbers[0]!.nr;
  }
  /** pid_nr_ns(): the number seen from `ns`, 0 if not visible there */
  nrIn(ns: PidNamespace): number {
    const u = this.numbers[ns.level];
    return u && u.ns === ns ? u.nr : 0;
  }
  /** ns_of_pid(): the innermost namespace */
  get ns(): PidNamespace {
    return this.numbers[this.numbers.length - 1]!.ns;
  }
}

/**
 * models kernel/pid.c alloc_pid(ns, set_tid, set_tid_size), v6.12. Allocates one number per
 * level from `ns` up to the initial namespace; `setTid[i]` requests the number at level
 * ns.level - i. Cyclic allocation from the cursor to pid_max, wrapping to RESERVED_PIDS (or
 * 1 while the cursor has not passed it). Errors, per level in the kernel's order: EINVAL
 * (set_tid < 1 or >= pid_max, or non-1 in a namespace without init), EPERM (the caller may
 * not choose pids there: `mayChooseTid`, checkpoint_restore_ns_capable(tmp->user_ns)),
 * EEXIST (set_tid taken); EAGAIN (exhausted; idr's ENOSPC mapped); ENOMEM (namespace no
 * longer adding).
 */
export function allocPid(
  ns: PidNamespace,
  pidMax: number,
  setTid: readonly number[],
  mayChooseTid: (level: PidNamespace) => boolean = () => true,
): Result<Pid> {
  if (setTid.length > ns.level + 1) return err(Errno.EINVAL);
  const numbers: UPid[] = new Array(ns.level + 1);
  const taken: Array<[PidNamespace, number]> = [];
  const undo = () => {
    for (const [n, nr] of taken) n.idr.delete(nr);
  };
  let tmp: PidNamespace | null = ns;
  for (let i = ns.level, t = 0; tmp && i >= 0; i--, tmp = tmp.parent) {
    let nr: number;
    // while set_tid entries remain, each one is the number at this level (0 is not "any")
    const chosen = t < setTid.length;
    const want = chosen ? setTid[t++]! : 0;
    if (chosen) {
      if (want < 1 || want >= pidMax) {
        undo();
        return err(Errno.EINVAL);
      }
      // Also fail if a PID != 1 is requested and no PID 1 exists.
      if (want !== 1 && !tmp.childReaper) {
        undo();
        return err(Errno.EINVAL);
      }
      if (!mayChooseTid(tmp)) {
        undo();
        return err(Errno.EPERM);
      }
      if (tmp.idr.has(want)) {
        undo();
        return err(Errno.EEXIST);
      }
      nr = want;
    } else {
      const pidMin = tmp.cursor > RESERVED_PIDS ? RESERVED_PIDS : 1;
      const found = idrAllocCyclic(tmp, pidMin, pidMax);
      if (found < 0) {
        undo();
        return err(Errno.EAGAIN); // idr's -ENOSPC becomes -EAGAIN
      }
      nr = found;
    }
    tmp.cursor = chosen ? tmp.cursor : nr;
    taken.push([tmp, nr]);
    tmp.idr.set(nr, undefined as unknown as Pid); // reserved; filled below
    numbers[i] = { nr, ns: tmp };
  }
  if (!ns.adding) {
    undo();
    return err(Errno.ENOMEM);
  }
  const pid = new Pid(numbers);
  for (const u of numbers) {
    u.ns.idr.set(u.nr, pid);
    u.ns.pidAllocated++;
  }
  return ok(pid);
}

function idrAllocCyclic(ns: PidNamespace, min: number, max: number): number {
  const start = Math.max(ns.cursor + 1, min);
  for (let nr = start; nr < max; nr++) if (!ns.idr.has(nr)) return nr;
  for (let nr = min; nr < start && nr < max; nr++) if (!ns.idr.has(nr)) return nr;
  return -1;
}

/**
 * models kernel/pid.c free_pid(), v6.12: releases every level's number. Returns the
 * reapers to wake: a namespace whose only remaining pid is its init's wakes that init
 * (zap_pid_ns_processes waits for that).
 */
export function freePid(pid: Pid): Task[] {
  const wake: Task[] = [];
  for (const u of pid.numbers) {
    u.ns.idr.delete(u.nr);
    u.ns.pidAllocated--;
    const n = u.ns.nrAllocated;
    if ((n === 1 || n === 2) && u.ns.childReaper) wake.push(u.ns.childReaper);
    if (n === 0 && !u.ns.adding) u.ns.pidAllocated = 0;
  }
  return wake;
}
