/**
 * The user side of an io_uring, as a program does it with the raw syscalls (no liburing):
 * io_uring_setup with a params struct in its memory, mmap of the rings, SQEs written into the
 * mapped SQE array and published through the index array and the SQ tail, io_uring_enter,
 * and CQEs read from the CQ ring with the CQ head advanced. All through the task's memory.
 */
import { ok, type Result } from '../kernel/errno.js';
import type { KGen } from '../kernel/sched.js';
import type { Sys } from '../kernel/syscalls.js';
import { ioUringEnter, ioUringMmap, ioUringRegister, ioUringSetup } from './io_uring.js';
import {
  CQE_SIZE,
  type Cqe,
  decodeParams,
  encodeParams,
  encodeSqe,
  IORING_ENTER_GETEVENTS,
  IORING_ENTER_SQ_WAKEUP,
  IORING_OFF_SQ_RING,
  IORING_OFF_SQES,
  IORING_REGISTER_IOWQ_MAX_WORKERS,
  IORING_SETUP_CQSIZE,
  IORING_SETUP_SQPOLL,
  IORING_SQ_NEED_WAKEUP,
  type IoUringParams,
  PARAMS_SIZE,
  SQE_SIZE,
  type Sqe,
} from './uapi.js';

/** What a program keeps about its ring (struct io_uring of liburing, in spirit). */
export interface UserRing {
  fd: number;
  params: IoUringParams;
  /** address of the shared ring region and of the SQE array in the program's memory */
  ring: number;
  sqes: number;
  /** scratch memory for register arguments */
  scratch: number;
}

export interface RingOptions {
  flags?: number;
  /** sq_thread_idle in ms (SQPOLL) */
  sqThreadIdleMs?: number;
  sqThreadCpu?: number;
  /** with IORING_SETUP_CQSIZE */
  cqEntries?: number;
}

/** io_uring_setup + mmap of IORING_OFF_SQ_RING (single mmap) and IORING_OFF_SQES. */
export function* ioUringQueueInit(sys: Sys, entries: number, o: RingOptions = {}): KGen<Result<UserRing>> {
  const scratch = yield* sys.mmap(4096);
  if (!scratch.ok) return scratch;
  const mm = sys.task.mm!;
  const v = mm.view(scratch.value, PARAMS_SIZE);
  if (!v.ok) return v;
  const p = decodeParams(v.value);
  p.flags = o.flags ?? 0;
  p.sqThreadIdle = o.sqThreadIdleMs ?? 0;
  p.sqThreadCpu = o.sqThreadCpu ?? 0;
  if (o.cqEntries !== undefined) {
    p.flags |= IORING_SETUP_CQSIZE;
    p.cqEntries = o.cqEntries;
  }
  encodeParams(v.value, p);
  const fd = yield* ioUringSetup(sys, entries, scratch.value);
  if (!fd.ok) return fd;
  const params = decodeParams(v.value);
  params.sqOff = {
    head: v.value.getUint32(40, true),
    tail: v.value.getUint32(44, true),
    ringMask: v.value.getUint32(48, true),
    ringEntries: v.value.getUint32(52, true),
    flags: v.value.getUint32(56, true),
    dropped: v.value.getUint32(60, true),
    array: v.value.getUint32(64, true),
  };
  params.cqOff = {
    head: v.value.getUint32(80, true),
    tail: v.value.getUint32(84, true),
    ringMask: v.value.getUint32(88, true),
    ringEntries: v.value.getUint32(92, true),
    overflow: v.value.getUint32(96, true),
    cqes: v.value.getUint32(100, true),
    flags: v.value.getUint32(104, true),
  };
  const ring = yield* ioUringMmap(sys, fd.value, IORING_OFF_SQ_RING);
  if (!ring.ok) return ring;
  const sqes = yield* ioUringMmap(sys, fd.value, IORING_OFF_SQES);
  if (!sqes.ok) return sqes;
  return ok({ fd: fd.value, params, ring: ring.value, sqes: sqes.value, scratch: scratch.value });
}

function u32(sys: Sys, addr: number): number {
  const v = sys.task.mm!.view(addr, 4);
  if (!v.ok) throw new Error(`ring memory at ${addr.toString(16)} is not mapped`);
  return v.value.getUint32(0, true);
}
function setU32(sys: Sys, addr: number, x: number): void {
  const v = sys.task.mm!.view(addr, 4);
  if (!v.ok) throw new Error(`ring memory at ${addr.toString(16)} is not mapped`);
  v.value.setUint32(0, x >>> 0, true);
}

/** io_uring_get_sqe + prep + io_uring_submit's tail store: false when the SQ ring is full. */
export function queueSqe(sys: Sys, r: UserRing, sqe: Sqe): boolean {
  const { sqOff, sqEntries } = r.params;
  const head = u32(sys, r.ring + sqOff.head);
  const tail = u32(sys, r.ring + sqOff.tail);
  if ((tail - head) >>> 0 >= sqEntries) return false;
  const idx = tail & (sqEntries - 1);
  const v = sys.task.mm!.view(r.sqes + idx * SQE_SIZE, SQE_SIZE);
  if (!v.ok) return false;
  encodeSqe(v.value, 0, sqe);
  setU32(sys, r.ring + sqOff.array + 4 * idx, idx);
  setU32(sys, r.ring + sqOff.tail, tail + 1);
  return true;
}

/** SQEs written but not yet consumed by the kernel */
export function sqPending(sys: Sys, r: UserRing): number {
  return (u32(sys, r.ring + r.params.sqOff.tail) - u32(sys, r.ring + r.params.sqOff.head)) >>> 0;
}

/**
 * io_uring_submit_and_wait: io_uring_enter(to_submit, wait_nr, GETEVENTS if waiting); on an
 * SQPOLL ring, SQ_WAKEUP only when the thread asked for it (IORING_SQ_NEED_WAKEUP).
 */
export function* ioUringSubmitAndWait(
  sys: Sys,
  r: UserRing,
  toSubmit: number,
  waitNr: number,
): KGen<Result<number>> {
  let flags = waitNr > 0 ? IORING_ENTER_GETEVENTS : 0;
  if (r.params.flags & IORING_SETUP_SQPOLL) {
    if (u32(sys, r.ring + r.params.sqOff.flags) & IORING_SQ_NEED_WAKEUP) flags |= IORING_ENTER_SQ_WAKEUP;
    if (!flags) return ok(toSubmit);
  }
  return yield* ioUringEnter(sys, r.fd, toSubmit, waitNr, flags);
}

/** Read every posted CQE and advance the CQ head (io_uring_peek_batch_cqe + io_uring_cq_advance). */
export function reapCqes(sys: Sys, r: UserRing): Cqe[] {
  const { cqOff, cqEntries } = r.params;
  let head = u32(sys, r.ring + cqOff.head);
  const tail = u32(sys, r.ring + cqOff.tail);
  const out: Cqe[] = [];
  const mm = sys.task.mm!;
  while (head !== tail) {
    const v = mm.view(r.ring + cqOff.cqes + CQE_SIZE * (head & (cqEntries - 1)), CQE_SIZE);
    if (!v.ok) break;
    out.push({
      userData: v.value.getBigUint64(0, true),
      res: v.value.getInt32(8, true),
      flags: v.value.getUint32(12, true),
    });
    head = (head + 1) >>> 0;
  }
  setU32(sys, r.ring + cqOff.head, head);
  return out;
}

/** io_uring_register_iowq_max_workers(ring, values): returns the previous [bound, unbound]. */
export function* ioUringRegisterIowqMaxWorkers(
  sys: Sys,
  r: UserRing,
  bound: number,
  unbound: number,
): KGen<Result<[number, number]>> {
  const addr = r.scratch + PARAMS_SIZE;
  setU32(sys, addr, bound);
  setU32(sys, addr + 4, unbound);
  const res = yield* ioUringRegister(sys, r.fd, IORING_REGISTER_IOWQ_MAX_WORKERS, addr, 2);
  if (!res.ok) return res;
  return ok([u32(sys, addr), u32(sys, addr + 4)]);
}
