/**
 * Footprints: what one step of a task touched, for the explorer's partial-order reduction
 * (sleep sets, explore.ts). Not a kernel structure: the model records it only while the
 * explorer asks (Kernel.fp), and nothing the kernel does depends on it.
 *
 * A footprint is a set of named kernel objects, each with how it was accessed:
 * - read (FP_READ);
 * - update (FP_UPDATE): a change that commutes with every other update of the same object
 *   and that no update observes — counters that are only added to or subtracted from without
 *   a test that another update could change (pids.current on release, mm_users while another
 *   reference is known to outlive the step, an eventfd count far from ULLONG_MAX);
 * - write (FP_WRITE): anything else.
 * Two footprints conflict when they share an object that one of them writes, or that one reads
 * and the other updates. A `global` footprint conflicts with every footprint.
 *
 * Soundness rests on one rule: a step is global unless every line it ran is audited. A task
 * is audited only inside a region that says so (Task.fpAudited, set by the scenario
 * interpreter for the steps whose kernel paths record what they touch, and by the 6.4+
 * vhost_task worker loop) and every way out
 * of an audited path into code that records nothing marks the step global (fpGlobal). Code
 * that records nothing is therefore always treated as touching everything.
 *
 * An audited path records what it writes and what it reads of objects that other audited
 * paths write. A read of an object that only unaudited code writes (the fd table, a vq's
 * worker pointer, vhost_task's STOP bit) conflicts anyway, since that code's steps touch
 * everything; whoever audits such a writer must add the reads. sleep-sets.test.ts runs the
 * reduced and the full search side by side and compares every outcome.
 */
import type { Task } from './task.js';

export const FP_READ = 1;
export const FP_UPDATE = 2;
export const FP_WRITE = 4;

/** What a finished step touched. Object names are stable within the executions of one search. */
export interface Footprint {
  readonly global: boolean;
  readonly objects: ReadonlyMap<string, number>;
}

export const GLOBAL_FOOTPRINT: Footprint = Object.freeze({ global: true, objects: new Map() });

/**
 * The recorder of the step in progress (Kernel.fp). A step begins with one task's run; the
 * runs of other tasks that follow without a decision (the only runnable task) are recorded
 * with it, and also apart, so that the first run's own footprint is known (`own`).
 */
export class FootprintRecorder {
  /** the step so far touches everything */
  global = false;
  private objects = new Map<string, number>();
  /** the first task of the step, and the footprint of its run once another task ran */
  private first: Task | null = null;
  private own: Footprint | null = null;

  touch(object: string, access: number): void {
    if (this.global) return;
    const had = this.objects.get(object);
    if (had === undefined) this.objects.set(object, access);
    else if ((had | access) !== had) this.objects.set(object, had | access);
  }

  /** a slice of `t` begins (Kernel.runSlice) */
  slice(t: Task): void {
    if (this.first === null) this.first = t;
    else if (this.own === null && t !== this.first)
      this.own = this.global ? GLOBAL_FOOTPRINT : { global: false, objects: new Map(this.objects) };
  }

  /**
   * the step recorded since the last take() — all of it, and the first task's run alone —
   * and start afresh
   */
  take(): { all: Footprint; own: Footprint } {
    const all: Footprint = this.global ? GLOBAL_FOOTPRINT : { global: false, objects: this.objects };
    const own = this.own ?? all;
    this.global = false;
    this.objects = new Map();
    this.first = null;
    this.own = null;
    return { all, own };
  }
}

function accessesConflict(a: number, b: number): boolean {
  if ((a | b) & FP_WRITE) return true;
  return ((a & FP_READ) !== 0 && (b & FP_UPDATE) !== 0) || ((a & FP_UPDATE) !== 0 && (b & FP_READ) !== 0);
}

/** Do two steps depend on each other (may their order change what either does)? */
export function footprintsConflict(a: Footprint, b: Footprint): boolean {
  if (a.global || b.global) return true;
  const swap = a.objects.size > b.objects.size;
  const small = swap ? b.objects : a.objects;
  const large = swap ? a.objects : b.objects;
  for (const [o, x] of small) {
    const y = large.get(o);
    if (y !== undefined && accessesConflict(x, y)) return true;
  }
  return false;
}

/** Mark the step in progress as touching everything (no-op unless the explorer records). */
export function fpGlobal(k: { fp: FootprintRecorder | null }): void {
  if (k.fp) k.fp.global = true;
}

/** Record an access of the step in progress (no-op unless the explorer records). */
export function fpTouch(k: { fp: FootprintRecorder | null }, object: string, access: number): void {
  k.fp?.touch(object, access);
}

/**
 * Leave audited code: the task's steps are global from here until an audited region is
 * entered again, and so is the step in progress.
 */
export function fpUnaudited(k: { fp: FootprintRecorder | null; current: Task | null }, t: Task): void {
  t.fpAudited = false;
  if (k.fp && k.current === t) k.fp.global = true;
}

/** the footprint object of a task's own state (its state word, flags, signal bits) */
export function taskObject(t: Task): string {
  if (t.fpObjectPid !== t.pid) {
    t.fpObjectPid = t.pid;
    t.fpObject = `task:${t.pid}`;
  }
  return t.fpObject;
}

/**
 * Identities of kernel objects that have no number of their own (an eventfd context, a vhost
 * work item): assigned in creation order, so an object that exists at a point of a search has
 * the same name in every execution through that point. Restarted at every boot.
 */
let objectSeq = 0;
export function newObjectId(): number {
  return ++objectSeq;
}
export function resetObjectIds(): void {
  objectSeq = 0;
}

/**
 * Functions whose paths record what they touch, or mark the step global where they leave
 * audited code: eventfd pollers, wait-queue callbacks, vhost work handlers.
 */
// biome-ignore lint/complexity/noBannedTypes: any function can be audited
const auditedFunctions = new WeakSet<Function>();
// biome-ignore lint/complexity/noBannedTypes: any function can be audited
export function audited<F extends Function>(fn: F): F {
  auditedFunctions.add(fn);
  return fn;
}
// biome-ignore lint/complexity/noBannedTypes: any function can be audited
export function isAudited(fn: Function): boolean {
  return auditedFunctions.has(fn);
}
