/**
 * A guest virtio driver for one split virtqueue, for tests and traffic generators: the driver
 * half of kernel-spec §7.5, modelled on drivers/virtio/virtio_ring.c (virtqueue_add_split,
 * virtqueue_kick_prepare_split, virtqueue_get_buf_ctx_split, detach_buf_split), v6.12.
 *
 * Guest memory is a window of the VMM's address space: guest-physical address `gpa` is the
 * byte at userspace address `hva + gpa` of `mm` (one vhost memory region, see memoryRegion()).
 * The rings and buffers are allocated in that window by a bump allocator (nothing is freed), and
 * every ring access is a little-endian byte write into it (VIRTIO_F_VERSION_1).
 *
 * Differences from Linux's driver, on purpose: avail->idx is written by publish(), not by every
 * add (so a test decides when vhost can see a batch); indirect tables are used only when asked
 * (`{ indirect: true }`), not whenever the feature is negotiated; setNoInterrupt()/setUsedEvent()
 * write the ring fields directly instead of virtqueue_disable_cb/enable_cb's bookkeeping. The
 * poke*() helpers write raw ring contents so tests can present a misbehaving guest.
 *
 * Guest memory must stay mapped: a failed access here is a broken test setup and throws.
 */
import { Errno, err, invariant, ok, type Result } from '../kernel/errno.js';
import type { MM } from '../kernel/mm.js';
import {
  type VhostMemRegion,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VRING_AVAIL_F_NO_INTERRUPT,
  VRING_DESC_SIZE,
  VRING_USED_ELEM_SIZE,
  VRING_USED_F_NO_NOTIFY,
  Vring,
  type VringInit,
  vringAvailEventOffset,
  vringNeedEvent,
  vringUsedEventOffset,
} from './vring.js';

/** A scatter-gather element in guest-physical memory. */
export interface GuestSg {
  readonly gpa: number;
  readonly len: number;
}

/** A buffer returned by the device: the token given to addBuf and the length it wrote. */
export interface GuestUsed<T> {
  readonly token: T;
  readonly len: number;
}

/** A raw descriptor to poke into a table (addr may exceed 2^53 as a bigint). */
export interface RawDesc {
  readonly addr: number | bigint;
  readonly len: number;
  readonly flags: number;
  readonly next: number;
}

export interface GuestVirtqueueOptions {
  /**
   * Start the bump allocator at this guest-physical address, so several queues can share one
   * window (one memory region) without overlapping; default 0.
   */
  readonly allocFrom?: number;
  /** the features the driver negotiated (decides EVENT_IDX use); default 0 */
  readonly features?: bigint;
  /** ring alignment of the vring_init() layout; default 4096 (legacy PCI); modern uses 64 */
  readonly align?: number;
  /**
   * Start avail->idx and used->idx (and the driver's shadows) at this u16 value instead of 0,
   * as a ring resumed after migration; pair with VHOST_SET_VRING_BASE(num = initialIdx).
   */
  readonly initialIdx?: number;
}

export interface AddBufOptions {
  /** put the chain in an indirect table referenced by a single INDIRECT descriptor */
  readonly indirect?: boolean;
}

interface DescState<T> {
  readonly token: T;
  /** descriptors taken from the table (1 for an indirect chain) */
  readonly ndescs: number;
}

/** struct vring_virtqueue (split), the driver's side of one queue. */
export class GuestVirtqueue<T = unknown> {
  /** guest-physical addresses of the three parts (vring_init layout) */
  readonly descGpa: number;
  readonly availGpa: number;
  readonly usedGpa: number;
  /** vq->event: VIRTIO_RING_F_EVENT_IDX negotiated */
  readonly eventIdx: boolean;
  /** vq->broken: set when the device returned a bad used entry (BAD_RING) */
  broken = false;
  /** vq->vq.num_free */
  numFree: number;
  /** next free guest-physical byte of the bump allocator */
  private brk = 0;
  /** vq->free_head */
  private freeHead = 0;
  /** vq->split.desc_extra[i].next: chain and free-list links */
  private readonly nextLink: Uint16Array;
  /** vq->split.desc_state[i].data (token) and the chain length */
  private readonly state: (DescState<T> | undefined)[];
  /** per-head cached indirect tables (Linux kmallocs one per add) */
  private readonly indirectTables: ({ gpa: number; cap: number } | undefined)[];
  /** vq->split.avail_idx_shadow */
  private availShadow = 0;
  /** vq->num_added */
  private numAdded = 0;
  /** vq->last_used_idx */
  private lastUsed = 0;
  /** vq->split.avail_flags_shadow & NO_INTERRUPT */
  private noInterrupt = false;

  /**
   * Lay out the rings for `num` entries at the bottom of the guest window [hva, hva+size) of
   * `mm`. Preconditions (throw otherwise): num a power of two ≤ 32768; the window is mapped
   * and large enough.
   */
  constructor(
    readonly mm: MM,
    readonly hva: number,
    readonly size: number,
    readonly num: number,
    opts: GuestVirtqueueOptions = {},
  ) {
    invariant(num > 0 && num <= 32768 && (num & (num - 1)) === 0, `virtqueue size ${num} not a power of two`);
    const align = opts.align ?? 4096;
    if (opts.allocFrom !== undefined) this.brk = opts.allocFrom;
    this.eventIdx = (((opts.features ?? 0n) >> BigInt(VIRTIO_RING_F_EVENT_IDX)) & 1n) === 1n;
    // vring_init(): desc, then avail (with used_event), then used at the next `align` boundary
    this.descGpa = this.alloc(VRING_DESC_SIZE * num + 6 + 2 * num, align);
    this.availGpa = this.descGpa + VRING_DESC_SIZE * num;
    this.usedGpa = this.alloc(6 + VRING_USED_ELEM_SIZE * num, align);
    this.numFree = num;
    this.nextLink = new Uint16Array(num);
    for (let i = 0; i < num - 1; i++) this.nextLink[i] = i + 1;
    this.state = new Array(num).fill(undefined);
    this.indirectTables = new Array(num).fill(undefined);
    // zero the rings (a fresh mmap is zero, but the window may be reused)
    this.writeBytes(
      this.descGpa,
      new Uint8Array(this.usedGpa + 6 + VRING_USED_ELEM_SIZE * num - this.descGpa),
    );
    const base = (opts.initialIdx ?? 0) & 0xffff;
    this.availShadow = this.lastUsed = base;
    this.put16(this.availGpa + 2, base);
    this.put16(this.usedGpa + 2, base);
  }

  /** mmap a fresh guest window of `size` bytes in `mm` and lay a queue out in it. */
  static inNewWindow<T = unknown>(
    mm: MM,
    size: number,
    num: number,
    opts: GuestVirtqueueOptions = {},
  ): Result<GuestVirtqueue<T>> {
    const hva = mm.mmap(size, '[guest ram]');
    if (!hva.ok) return hva;
    return ok(new GuestVirtqueue<T>(mm, hva.value, size, num, opts));
  }

  /** Userspace address of the descriptor table (vhost_vring_addr.desc_user_addr). */
  get descUser(): number {
    return this.hva + this.descGpa;
  }
  /** Userspace address of the avail ring (vhost_vring_addr.avail_user_addr). */
  get availUser(): number {
    return this.hva + this.availGpa;
  }
  /** Userspace address of the used ring (vhost_vring_addr.used_user_addr). */
  get usedUser(): number {
    return this.hva + this.usedGpa;
  }
  /** The driver's avail index (avail_idx_shadow), published or not. */
  get availIdx(): number {
    return this.availShadow;
  }
  /** The next used index the driver will consume. */
  get lastUsedIdx(): number {
    return this.lastUsed;
  }

  /** The vhost memory region describing this window (for VHOST_SET_MEM_TABLE). */
  memoryRegion(): VhostMemRegion {
    return { guestPhysAddr: 0, size: this.size, userspaceAddr: this.hva };
  }

  /** A device-side Vring pointing at this queue, as the ioctls would set it up. */
  deviceVring(init: VringInit = {}): Vring {
    return new Vring({
      num: this.num,
      descUser: this.descUser,
      availUser: this.availUser,
      usedUser: this.usedUser,
      regions: [this.memoryRegion()],
      ...init,
    });
  }

  /** Bump-allocate `len` bytes aligned to `align`; returns the guest-physical address. */
  alloc(len: number, align = 16): number {
    const gpa = Math.ceil(this.brk / align) * align;
    invariant(gpa + len <= this.size, `guest window of ${this.size} bytes exhausted`);
    this.brk = gpa + len;
    return gpa;
  }

  /** Allocate a data buffer of `len` bytes (16-byte aligned); returns its guest-physical address. */
  allocBuffer(len: number): number {
    return this.alloc(len, 16);
  }

  private hvaOf(gpa: number, len: number): number {
    invariant(gpa >= 0 && gpa + len <= this.size, `gpa ${gpa}+${len} outside the guest window`);
    return this.hva + gpa;
  }

  /** Guest store into its RAM. */
  writeBytes(gpa: number, bytes: Uint8Array): void {
    const w = this.mm.write(this.hvaOf(gpa, bytes.length), bytes);
    invariant(w.ok, `guest RAM at ${gpa} not mapped`);
  }

  /** Guest load from its RAM (a copy). */
  readBytes(gpa: number, len: number): Uint8Array {
    const r = this.mm.read(this.hvaOf(gpa, len), len);
    invariant(r.ok, `guest RAM at ${gpa} not mapped`);
    return r.value.slice();
  }

  private view(gpa: number, len: number): DataView {
    const v = this.mm.view(this.hvaOf(gpa, len), len);
    invariant(v.ok, `guest RAM at ${gpa} not mapped`);
    return v.value;
  }

  private put16(gpa: number, value: number): void {
    this.view(gpa, 2).setUint16(0, value & 0xffff, true);
  }

  private get16(gpa: number): number {
    return this.view(gpa, 2).getUint16(0, true);
  }

  private putDesc(tableGpa: number, i: number, d: RawDesc): void {
    const v = this.view(tableGpa + VRING_DESC_SIZE * i, VRING_DESC_SIZE);
    v.setBigUint64(0, BigInt(d.addr), true);
    v.setUint32(8, d.len >>> 0, true);
    v.setUint16(12, d.flags & 0xffff, true);
    v.setUint16(14, d.next & 0xffff, true);
  }

  /**
   * models virtqueue_add_split(): expose `out` (device-readable) then `in` (device-writable)
   * as one chain, directly in the table (NEXT/WRITE flags, next from the free list) or through
   * an indirect table. Writes avail->ring[avail_idx_shadow & (num-1)] = head and advances the
   * shadow index; the device sees it after publish(). ENOSPC when too few descriptors are free
   * (one suffices for an indirect chain); EIO when the queue is broken. Returns the head.
   */
  addBuf(
    out: readonly GuestSg[],
    inn: readonly GuestSg[],
    token: T,
    opts: AddBufOptions = {},
  ): Result<number> {
    const total = out.length + inn.length;
    invariant(total > 0, 'virtqueue_add: BUG_ON(total_sg == 0)');
    if (this.broken) return err(Errno.EIO);
    const sgs = [...out.map((s) => ({ ...s, write: false })), ...inn.map((s) => ({ ...s, write: true }))];
    const indirect = opts.indirect === true;
    const descsUsed = indirect ? 1 : total;
    if (this.numFree < descsUsed) return err(Errno.ENOSPC);

    const head = this.freeHead;
    if (indirect) {
      let table = this.indirectTables[head];
      if (!table || table.cap < total) {
        table = { gpa: this.alloc(VRING_DESC_SIZE * total, 16), cap: total };
        this.indirectTables[head] = table;
      }
      sgs.forEach((s, k) => {
        this.putDesc(table.gpa, k, {
          addr: s.gpa,
          len: s.len,
          flags: (k < total - 1 ? VIRTQ_DESC_F_NEXT : 0) | (s.write ? VIRTQ_DESC_F_WRITE : 0),
          next: k + 1,
        });
      });
      this.putDesc(this.descGpa, head, {
        addr: table.gpa,
        len: VRING_DESC_SIZE * total,
        flags: VIRTQ_DESC_F_INDIRECT,
        next: this.nextLink[head]!,
      });
      this.freeHead = this.nextLink[head]!;
    } else {
      let i = head;
      sgs.forEach((s, k) => {
        this.putDesc(this.descGpa, i, {
          addr: s.gpa,
          len: s.len,
          flags: (k < total - 1 ? VIRTQ_DESC_F_NEXT : 0) | (s.write ? VIRTQ_DESC_F_WRITE : 0),
          next: this.nextLink[i]!,
        });
        if (k < total - 1) i = this.nextLink[i]!;
      });
      this.freeHead = this.nextLink[i]!;
    }
    this.numFree -= descsUsed;
    this.state[head] = { token, ndescs: descsUsed };
    this.pushAvail(head);
    return ok(head);
  }

  /**
   * Make the added buffers visible (avail->idx = avail_idx_shadow, after a write barrier), then
   * models virtqueue_kick_prepare_split(): does the device want a kick? With EVENT_IDX:
   * vring_need_event(avail_event, new, old) over the indices published since the last
   * publish(); without: unless used->flags has NO_NOTIFY.
   */
  publish(): boolean {
    this.put16(this.availGpa + 2, this.availShadow);
    const neu = this.availShadow;
    const old = (this.availShadow - this.numAdded) & 0xffff;
    this.numAdded = 0;
    if (this.eventIdx) return vringNeedEvent(this.availEvent(), neu, old);
    return !(this.usedFlags() & VRING_USED_F_NO_NOTIFY);
  }

  /**
   * models virtqueue_get_buf_ctx_split() in a loop: every buffer the device used since the
   * last call, in used-ring order, freeing their descriptors. After each one, unless interrupts
   * are suppressed, used_event = last_used_idx (ask for an interrupt on the next buffer). A used
   * entry whose id is ≥ num or not outstanding marks the queue broken (BAD_RING) and stops.
   */
  getUsed(): GuestUsed<T>[] {
    const got: GuestUsed<T>[] = [];
    while (!this.broken) {
      const usedIdx = this.usedIdx();
      if (this.lastUsed === usedIdx) break;
      const slot = this.lastUsed & (this.num - 1);
      const e = this.view(this.usedGpa + 4 + VRING_USED_ELEM_SIZE * slot, VRING_USED_ELEM_SIZE);
      const id = e.getUint32(0, true);
      const len = e.getUint32(4, true);
      const st = id < this.num ? this.state[id] : undefined;
      if (!st) {
        this.broken = true;
        break;
      }
      this.detach(id, st);
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
      if (!this.noInterrupt) this.put16(this.availGpa + vringUsedEventOffset(this.num), this.lastUsed);
      got.push({ token: st.token, len });
    }
    return got;
  }

  /** models detach_buf_split(): return the chain's descriptors to the free list. */
  private detach(head: number, st: DescState<T>): void {
    let i = head;
    for (let k = 1; k < st.ndescs; k++) i = this.nextLink[i]!;
    this.nextLink[i] = this.freeHead;
    this.freeHead = head;
    this.numFree += st.ndescs;
    this.state[head] = undefined;
  }

  /** Set or clear VRING_AVAIL_F_NO_INTERRUPT in avail->flags (and stop/start used_event updates). */
  setNoInterrupt(b: boolean): void {
    this.noInterrupt = b;
    const flags = this.get16(this.availGpa);
    this.put16(this.availGpa, b ? flags | VRING_AVAIL_F_NO_INTERRUPT : flags & ~VRING_AVAIL_F_NO_INTERRUPT);
  }

  /** Write used_event (avail->ring[num]): interrupt me when the used index passes `idx`. */
  setUsedEvent(idx: number): void {
    this.put16(this.availGpa + vringUsedEventOffset(this.num), idx);
  }

  /** used->idx as the device last published it. */
  usedIdx(): number {
    return this.get16(this.usedGpa + 2);
  }
  /** used->flags (bit 0: VRING_USED_F_NO_NOTIFY). */
  usedFlags(): number {
    return this.get16(this.usedGpa);
  }
  /** avail_event (used->ring[num]). */
  availEvent(): number {
    return this.get16(this.usedGpa + vringAvailEventOffset(this.num));
  }
  /** used_event (avail->ring[num]). */
  usedEvent(): number {
    return this.get16(this.availGpa + vringUsedEventOffset(this.num));
  }

  // --- raw ring writes, to present a misbehaving guest ---

  /** Append `head` to the avail ring at the shadow index (no descriptors are touched). */
  pushAvail(head: number): void {
    this.put16(this.availGpa + 4 + 2 * (this.availShadow & (this.num - 1)), head);
    this.availShadow = (this.availShadow + 1) & 0xffff;
    this.numAdded++;
  }

  /** Write avail->idx directly (e.g. a jump of more than num); the shadow is not changed. */
  pokeAvailIdx(idx: number): void {
    this.put16(this.availGpa + 2, idx);
  }

  /** Write avail->ring[slot] directly. */
  pokeAvailRing(slot: number, head: number): void {
    this.put16(this.availGpa + 4 + 2 * (slot & (this.num - 1)), head);
  }

  /** Overwrite descriptor `i` of the table. */
  pokeDesc(i: number, d: RawDesc): void {
    this.putDesc(this.descGpa, i, d);
  }

  /** Read descriptor `i` of the table. */
  readDesc(i: number): RawDesc {
    const v = this.view(this.descGpa + VRING_DESC_SIZE * i, VRING_DESC_SIZE);
    return {
      addr: v.getBigUint64(0, true),
      len: v.getUint32(8, true),
      flags: v.getUint16(12, true),
      next: v.getUint16(14, true),
    };
  }

  /** Allocate and write a raw descriptor array (e.g. a hand-made indirect table); returns its gpa. */
  writeDescTable(descs: readonly RawDesc[]): number {
    const gpa = this.alloc(VRING_DESC_SIZE * Math.max(1, descs.length), 16);
    descs.forEach((d, k) => {
      this.putDesc(gpa, k, d);
    });
    return gpa;
  }

  /** Turn the direct chain at `head` into a loop: its last descriptor gets NEXT back to `head`. */
  makeLoop(head: number): void {
    let i = head;
    for (let n = 0; n < this.num; n++) {
      const d = this.readDesc(i);
      if (!(d.flags & VIRTQ_DESC_F_NEXT)) {
        this.pokeDesc(i, { ...d, flags: d.flags | VIRTQ_DESC_F_NEXT, next: head });
        return;
      }
      i = d.next;
    }
    invariant(false, `chain at ${head} already loops`);
  }
}
