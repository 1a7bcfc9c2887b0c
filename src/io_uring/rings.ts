/**
 * The memory an io_uring shares with its owner: struct io_rings (SQ and CQ heads, tails,
 * masks, flags, the CQE array, then the SQ index array) and the SQE array, as bytes the
 * kernel reads and writes and the owner maps with mmap(ring_fd, IORING_OFF_SQ_RING /
 * IORING_OFF_SQES). Models io_allocate_scq_urings(), io_get_sqe(), io_commit_sqring(),
 * io_get_cqe() + io_fill_cqe and the CQ overflow list of io_uring/io_uring.c, v6.12.
 */
import { PAGE_SIZE } from '../kernel/mm.js';
import { CQE_SIZE, type Cqe, decodeSqe, type RingsLayout, ringsLayout, SQE_SIZE, type Sqe } from './uapi.js';

const pageAlign = (n: number) => Math.ceil(n / PAGE_SIZE) * PAGE_SIZE;

export class Rings {
  readonly layout: RingsLayout;
  /** struct io_rings + sq_array (IORING_OFF_SQ_RING, and IORING_OFF_CQ_RING: one mapping) */
  readonly bytes: Uint8Array;
  /** struct io_uring_sqe[sq_entries] (IORING_OFF_SQES) */
  readonly sqes: Uint8Array;
  private readonly v: DataView;
  private readonly sv: DataView;
  /** ctx->cached_sq_head */
  cachedSqHead = 0;
  /** ctx->cached_cq_tail */
  cachedCqTail = 0;
  /** ctx->cq_overflow_list */
  readonly overflow: Cqe[] = [];

  constructor(
    readonly sqEntries: number,
    readonly cqEntries: number,
    packed: boolean,
  ) {
    this.layout = ringsLayout(sqEntries, cqEntries, packed);
    this.bytes = new Uint8Array(pageAlign(this.layout.size));
    this.sqes = new Uint8Array(pageAlign(sqEntries * SQE_SIZE));
    this.v = new DataView(this.bytes.buffer);
    this.sv = new DataView(this.sqes.buffer);
    const { sqOff, cqOff } = this.layout;
    this.v.setUint32(sqOff.ringMask, sqEntries - 1, true);
    this.v.setUint32(sqOff.ringEntries, sqEntries, true);
    this.v.setUint32(cqOff.ringMask, cqEntries - 1, true);
    this.v.setUint32(cqOff.ringEntries, cqEntries, true);
  }

  private u32(off: number): number {
    return this.v.getUint32(off, true);
  }
  private set32(off: number, x: number): void {
    this.v.setUint32(off, x >>> 0, true);
  }

  /** the SQ tail the application wrote (smp_load_acquire) */
  get sqTail(): number {
    return this.u32(this.layout.sqOff.tail);
  }
  /** the CQ head the application wrote */
  get cqHead(): number {
    return this.u32(this.layout.cqOff.head);
  }
  get sqFlags(): number {
    return this.u32(this.layout.sqOff.flags);
  }
  set sqFlags(x: number) {
    this.set32(this.layout.sqOff.flags, x);
  }

  /** models io_sqring_entries(): SQEs the application queued and the kernel has not consumed */
  sqEntriesReady(): number {
    return (this.sqTail - this.cachedSqHead) >>> 0;
  }

  /**
   * models io_get_sqe(): the next SQE through the index array; an index ≥ sq_entries is
   * counted in sq_dropped and skipped (null).
   */
  getSqe(): Sqe | null {
    const head = this.cachedSqHead++ & (this.sqEntries - 1);
    const idx = this.u32(this.layout.sqOff.array + 4 * head);
    if (idx >= this.sqEntries) {
      this.set32(this.layout.sqOff.dropped, this.u32(this.layout.sqOff.dropped) + 1);
      return null;
    }
    return decodeSqe(this.sv, idx * SQE_SIZE);
  }

  /** models io_commit_sqring(): publish the SQ head */
  commitSqring(): void {
    this.set32(this.layout.sqOff.head, this.cachedSqHead);
  }

  /** CQEs posted and not yet consumed by the application (io_cqring_events) */
  cqReady(): number {
    return (this.cachedCqTail - this.cqHead) >>> 0;
  }

  /** models io_get_cqe + io_fill_cqe + io_commit_cqring: false when the CQ ring is full */
  postCqe(c: Cqe): boolean {
    if (this.cqReady() >= this.cqEntries) return false;
    const o = this.layout.cqOff.cqes + CQE_SIZE * (this.cachedCqTail & (this.cqEntries - 1));
    this.v.setBigUint64(o, c.userData, true);
    this.v.setInt32(o + 8, c.res, true);
    this.v.setUint32(o + 12, c.flags, true);
    this.cachedCqTail = (this.cachedCqTail + 1) >>> 0;
    this.set32(this.layout.cqOff.tail, this.cachedCqTail);
    return true;
  }
}
