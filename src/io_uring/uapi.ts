/**
 * io_uring's user ABI: syscall numbers, setup/enter/register flags, opcodes, and the byte
 * layouts of struct io_uring_params, io_uring_sqe and io_uring_cqe
 * (include/uapi/linux/io_uring.h, x86-64), plus the layout of the shared ring memory
 * (struct io_rings in io_uring/io_uring_types.h, offsets published by io_uring_setup()).
 */

/** x86-64 syscall numbers */
export const __NR_io_uring_setup = 425;
export const __NR_io_uring_enter = 426;
export const __NR_io_uring_register = 427;

/** io_uring_setup() flags */
export const IORING_SETUP_IOPOLL = 1 << 0;
export const IORING_SETUP_SQPOLL = 1 << 1;
export const IORING_SETUP_SQ_AFF = 1 << 2;
export const IORING_SETUP_CQSIZE = 1 << 3;
export const IORING_SETUP_CLAMP = 1 << 4;
export const IORING_SETUP_ATTACH_WQ = 1 << 5;
export const IORING_SETUP_R_DISABLED = 1 << 6;

/** io_uring_enter() flags */
export const IORING_ENTER_GETEVENTS = 1 << 0;
export const IORING_ENTER_SQ_WAKEUP = 1 << 1;
export const IORING_ENTER_SQ_WAIT = 1 << 2;

/** sq_flags in the SQ ring */
export const IORING_SQ_NEED_WAKEUP = 1 << 0;
export const IORING_SQ_CQ_OVERFLOW = 1 << 1;

/** sqe->flags */
export const IOSQE_FIXED_FILE = 1 << 0;
export const IOSQE_IO_DRAIN = 1 << 1;
export const IOSQE_IO_LINK = 1 << 2;
export const IOSQE_IO_HARDLINK = 1 << 3;
export const IOSQE_ASYNC = 1 << 4;

/** IORING_FEAT_SQPOLL_NONFIXED (v5.11): SQPOLL accepts file descriptors that are not registered */
export const IORING_FEAT_SQPOLL_NONFIXED = 1 << 7;

/** enum io_uring_op (the ones modelled) */
export const IORING_OP_NOP = 0;
export const IORING_OP_READ = 22;
export const IORING_OP_WRITE = 23;

/** io_uring_register() opcodes (the ones modelled) */
export const IORING_REGISTER_IOWQ_MAX_WORKERS = 19;

/** mmap offsets of the ring file */
export const IORING_OFF_SQ_RING = 0;
export const IORING_OFF_CQ_RING = 0x8000000;
export const IORING_OFF_SQES = 0x10000000;

/** IORING_MAX_ENTRIES, IORING_MAX_CQ_ENTRIES */
export const IORING_MAX_ENTRIES = 32768;
export const IORING_MAX_CQ_ENTRIES = 2 * IORING_MAX_ENTRIES;

/** sizeof(struct io_uring_params), io_uring_sqe, io_uring_cqe */
export const PARAMS_SIZE = 120;
export const SQE_SIZE = 64;
export const CQE_SIZE = 16;
/** SMP_CACHE_BYTES on x86-64 */
export const SMP_CACHE_BYTES = 64;

/** struct io_sqring_offsets */
export interface SqringOffsets {
  head: number;
  tail: number;
  ringMask: number;
  ringEntries: number;
  flags: number;
  dropped: number;
  array: number;
}
/** struct io_cqring_offsets */
export interface CqringOffsets {
  head: number;
  tail: number;
  ringMask: number;
  ringEntries: number;
  overflow: number;
  cqes: number;
  flags: number;
}

/** struct io_uring_params, in and out */
export interface IoUringParams {
  sqEntries: number;
  cqEntries: number;
  flags: number;
  sqThreadCpu: number;
  sqThreadIdle: number;
  features: number;
  wqFd: number;
  sqOff: SqringOffsets;
  cqOff: CqringOffsets;
}

/** The layout of struct io_rings and where the SQ index array follows it (rings_size()). */
export interface RingsLayout {
  sqOff: SqringOffsets;
  cqOff: CqringOffsets;
  /** bytes of the shared ring region (SQ and CQ rings share one mapping: IORING_FEAT_SINGLE_MMAP) */
  size: number;
}

const align = (n: number, a: number) => Math.ceil(n / a) * a;

/**
 * models io_uring/io_uring.c rings_size() and the offset publication of io_uring_create():
 * struct io_rings is {sq, cq: struct io_uring; sq_ring_mask, cq_ring_mask, sq_ring_entries,
 * cq_ring_entries, sq_dropped, sq_flags, cq_flags, cq_overflow; cqes[] cache-aligned}, then
 * the SQ index array at the next cache line. `packed`: head and tail share a cache line
 * (6.18) instead of each having its own (5.x).
 */
export function ringsLayout(sqEntries: number, cqEntries: number, packed: boolean): RingsLayout {
  const ioUringSize = packed ? 8 : 2 * SMP_CACHE_BYTES;
  const sqHead = 0;
  const sqTail = packed ? 4 : SMP_CACHE_BYTES;
  const cqHead = ioUringSize;
  const cqTail = cqHead + sqTail;
  const m = 2 * ioUringSize;
  const cqes = align(m + 32, SMP_CACHE_BYTES);
  const array = align(cqes + cqEntries * CQE_SIZE, SMP_CACHE_BYTES);
  return {
    sqOff: {
      head: sqHead,
      tail: sqTail,
      ringMask: m,
      ringEntries: m + 8,
      dropped: m + 16,
      flags: m + 20,
      array,
    },
    cqOff: {
      head: cqHead,
      tail: cqTail,
      ringMask: m + 4,
      ringEntries: m + 12,
      overflow: m + 28,
      cqes,
      flags: m + 24,
    },
    size: array + sqEntries * 4,
  };
}

/** Read struct io_uring_params from user memory. */
export function decodeParams(v: DataView): IoUringParams {
  const u = (o: number) => v.getUint32(o, true);
  return {
    sqEntries: u(0),
    cqEntries: u(4),
    flags: u(8),
    sqThreadCpu: u(12),
    sqThreadIdle: u(16),
    features: u(20),
    wqFd: u(24),
    sqOff: { head: 0, tail: 0, ringMask: 0, ringEntries: 0, flags: 0, dropped: 0, array: 0 },
    cqOff: { head: 0, tail: 0, ringMask: 0, ringEntries: 0, overflow: 0, cqes: 0, flags: 0 },
  };
}

/** Write struct io_uring_params back (copy_to_user at the end of io_uring_create). */
export function encodeParams(v: DataView, p: IoUringParams): void {
  const w = (o: number, x: number) => v.setUint32(o, x >>> 0, true);
  w(0, p.sqEntries);
  w(4, p.cqEntries);
  w(8, p.flags);
  w(12, p.sqThreadCpu);
  w(16, p.sqThreadIdle);
  w(20, p.features);
  w(24, p.wqFd);
  const s = p.sqOff;
  const sq = [s.head, s.tail, s.ringMask, s.ringEntries, s.flags, s.dropped, s.array];
  for (const [i, x] of sq.entries()) w(40 + 4 * i, x);
  const c = p.cqOff;
  const cq = [c.head, c.tail, c.ringMask, c.ringEntries, c.overflow, c.cqes, c.flags];
  for (const [i, x] of cq.entries()) w(80 + 4 * i, x);
}

/** struct io_uring_sqe (the fields the modelled ops use) */
export interface Sqe {
  opcode: number;
  flags: number;
  fd: number;
  off: bigint;
  addr: number;
  len: number;
  userData: bigint;
}

export function decodeSqe(v: DataView, o: number): Sqe {
  return {
    opcode: v.getUint8(o),
    flags: v.getUint8(o + 1),
    fd: v.getInt32(o + 4, true),
    off: v.getBigUint64(o + 8, true),
    addr: Number(v.getBigUint64(o + 16, true)),
    len: v.getUint32(o + 24, true),
    userData: v.getBigUint64(o + 32, true),
  };
}

export function encodeSqe(v: DataView, o: number, s: Sqe): void {
  for (let i = 0; i < SQE_SIZE; i++) v.setUint8(o + i, 0);
  v.setUint8(o, s.opcode);
  v.setUint8(o + 1, s.flags);
  v.setInt32(o + 4, s.fd, true);
  v.setBigUint64(o + 8, s.off, true);
  v.setBigUint64(o + 16, BigInt(s.addr), true);
  v.setUint32(o + 24, s.len, true);
  v.setBigUint64(o + 32, s.userData, true);
}

/** struct io_uring_cqe */
export interface Cqe {
  userData: bigint;
  res: number;
  flags: number;
}
