/**
 * The device (vhost) side of a split virtqueue: descriptor fetching, used-ring production,
 * call/kick suppression and the event index (kernel-spec §7.4, §7.5). Models the ring code of
 * drivers/vhost/vhost.c, v6.12 (vhost_get_vq_desc, get_indirect, translate_desc,
 * vhost_add_used_n, vhost_notify, vhost_enable_notify, vhost_disable_notify) and the layout of
 * include/uapi/linux/virtio_ring.h.
 *
 * The rings live in the owner's address space (an MM): every access is a byte read or write at
 * a userspace address (the kernel's __get_user/__put_user/copy_from_user on vq->desc, vq->avail,
 * vq->used), so an unmapped ring fails with EFAULT exactly where the kernel's access would.
 * Descriptor addresses are guest-physical and go through the memory table (vhost_iotlb umem,
 * filled by VHOST_SET_MEM_TABLE) to become userspace addresses (iovecs).
 *
 * Byte order: little-endian throughout. This models VIRTIO_F_VERSION_1 (vhost16_to_cpu is then
 * le16_to_cpu); a legacy ring on a little-endian host reads the same. Cross-endian legacy rings
 * (VHOST_SET_VRING_ENDIAN) are not modelled.
 *
 * Not modelled: dirty logging (VHOST_F_LOG_ALL / log_used: no log is produced), the IOTLB
 * (no EAGAIN misses, no EPERM on access rights: the umem table is read-write), packed rings,
 * VIRTIO_F_IN_ORDER (6.18).
 */
import { Errno, err, invariant, ok, type Result } from '../kernel/errno.js';
import type { MM } from '../kernel/mm.js';

// include/uapi/linux/virtio_ring.h
/** This marks a buffer as continuing via the next field. */
export const VIRTQ_DESC_F_NEXT = 1;
/** This marks a buffer as device write-only (otherwise device read-only). */
export const VIRTQ_DESC_F_WRITE = 2;
/** This means the buffer contains a list of buffer descriptors. */
export const VIRTQ_DESC_F_INDIRECT = 4;
/** used->flags: the device asks the driver not to kick when it adds a buffer. */
export const VRING_USED_F_NO_NOTIFY = 1;
/** avail->flags: the driver asks the device not to interrupt when it consumes a buffer. */
export const VRING_AVAIL_F_NO_INTERRUPT = 1;

// Feature bit numbers (include/uapi/linux/virtio_config.h, virtio_ring.h, vhost.h)
export const VIRTIO_F_NOTIFY_ON_EMPTY = 24;
export const VHOST_F_LOG_ALL = 26;
export const VIRTIO_F_ANY_LAYOUT = 27;
export const VIRTIO_RING_F_INDIRECT_DESC = 28;
export const VIRTIO_RING_F_EVENT_IDX = 29;
export const VIRTIO_F_VERSION_1 = 32;

// Layout constants (virtio_ring.h)
/** sizeof(struct vring_desc): addr u64, len u32, flags u16, next u16 */
export const VRING_DESC_SIZE = 16;
/** sizeof(struct vring_used_elem): id u32, len u32 */
export const VRING_USED_ELEM_SIZE = 8;
export const VRING_DESC_ALIGN_SIZE = 16;
export const VRING_AVAIL_ALIGN_SIZE = 2;
export const VRING_USED_ALIGN_SIZE = 4;
/** UIO_MAXIOV (include/uapi/linux/uio.h): the iovec array size vhost drivers pass (vq->iov) */
export const UIO_MAXIOV = 1024;
/** USHRT_MAX + 1: most entries an indirect table may hold (chained by a 16-bit next) */
export const VHOST_INDIRECT_MAX = 65536;

/** The 1 << bit mask of a feature bit number, as the u64 feature words use. */
export function featureBit(bit: number): bigint {
  return 1n << BigInt(bit);
}

/**
 * models include/uapi/linux/virtio_ring.h vring_need_event(): after moving an index from
 * `oldIdx` to `newIdx`, notify iff the other side's event index lies in [oldIdx, newIdx).
 * All arithmetic is u16.
 * @example vringNeedEvent(0, 1, 0) === true; vringNeedEvent(5, 3, 0) === false
 */
export function vringNeedEvent(eventIdx: number, newIdx: number, oldIdx: number): boolean {
  return ((newIdx - eventIdx - 1) & 0xffff) < ((newIdx - oldIdx) & 0xffff);
}

/**
 * models include/uapi/linux/virtio_ring.h vring_size(): bytes of the legacy contiguous layout
 * (vring_init): descriptors, avail ring with used_event, padding to `align`, used ring with
 * avail_event. Precondition: `align` is a power of two.
 * @example vringSize(256, 4096) === 10246
 */
export function vringSize(num: number, align: number): number {
  const descAndAvail = VRING_DESC_SIZE * num + 2 * (3 + num);
  return Math.ceil(descAndAvail / align) * align + 2 * 3 + VRING_USED_ELEM_SIZE * num;
}

/** Bytes of the descriptor table of a queue of `num` entries. */
export const vringDescSize = (num: number): number => VRING_DESC_SIZE * num;
/** Bytes of the driver (avail) ring including used_event: 6 + 2N. */
export const vringAvailSize = (num: number): number => 6 + 2 * num;
/** Bytes of the device (used) ring including avail_event: 6 + 8N. */
export const vringUsedSize = (num: number): number => 6 + VRING_USED_ELEM_SIZE * num;
/** Offset of used_event in the avail ring (vring_used_event): avail->ring[num]. */
export const vringUsedEventOffset = (num: number): number => 4 + 2 * num;
/** Offset of avail_event in the used ring (vring_avail_event): used->ring[num]. */
export const vringAvailEventOffset = (num: number): number => 4 + VRING_USED_ELEM_SIZE * num;

/** struct iovec: a userspace range in the owner's address space. */
export interface Iov {
  readonly addr: number;
  readonly len: number;
}

/** struct vhost_memory_region as kept in the umem table (guest-physical → userspace). */
export interface VhostMemRegion {
  readonly guestPhysAddr: number;
  readonly size: number;
  readonly userspaceAddr: number;
}

/** struct vring_used_elem */
export interface UsedElem {
  /** head of the used descriptor chain */
  readonly id: number;
  /** bytes written into the buffer by the device */
  readonly len: number;
}

/** struct vring_desc, decoded */
export interface VringDesc {
  /** guest-physical address (u64) */
  readonly addr: bigint;
  readonly len: number;
  readonly flags: number;
  readonly next: number;
}

/** What vhost_get_vq_desc() hands back: the head, and the out (readable) then in (writable) iovecs. */
export interface VqDesc {
  /** the chain's head index, or vq.num when no buffer is available */
  readonly head: number;
  /** device-readable iovecs (the kernel's first out_num entries of iov[]) */
  readonly out: Iov[];
  /** device-writable iovecs (the following in_num entries) */
  readonly in: Iov[];
}

export interface VringInit {
  num?: number;
  descUser?: number;
  availUser?: number;
  usedUser?: number;
  ackedFeatures?: bigint;
  regions?: VhostMemRegion[];
}

/**
 * The ring state of a struct vhost_virtqueue (drivers/vhost/vhost.h, v6.12). Every field is the
 * analogue of the kernel field named in its comment. Mutated only with the vq mutex held (the
 * caller's responsibility, as in the kernel).
 */
export class Vring {
  /** vq->num: queue size, a power of two (set by VHOST_SET_VRING_NUM; 1 after reset) */
  num = 1;
  /** vq->desc: userspace address of the descriptor table (0 = unset) */
  descUser = 0;
  /** vq->avail: userspace address of the driver ring */
  availUser = 0;
  /** vq->used: userspace address of the device ring */
  usedUser = 0;
  /** vq->last_avail_idx: the next avail index vhost will consume (u16, free-running) */
  lastAvailIdx = 0;
  /** vq->avail_idx: last value read from avail->idx (u16 cache) */
  availIdx = 0;
  /** vq->last_used_idx: the next used index vhost will produce (u16, free-running) */
  lastUsedIdx = 0;
  /** vq->signalled_used: last_used_idx at the last notify decision (EVENT_IDX) */
  signalledUsed = 0;
  /** vq->signalled_used_valid: false after reset or a used-index wrap; forces a signal */
  signalledUsedValid = false;
  /** vq->used_flags: host copy of used->flags (VRING_USED_F_NO_NOTIFY) */
  usedFlags = 0;
  /** vq->acked_features */
  ackedFeatures = 0n;
  /** dev->umem: the memory table used to translate guest-physical addresses */
  regions: VhostMemRegion[] = [];

  constructor(init: VringInit = {}) {
    if (init.num !== undefined) this.num = init.num;
    if (init.descUser !== undefined) this.descUser = init.descUser;
    if (init.availUser !== undefined) this.availUser = init.availUser;
    if (init.usedUser !== undefined) this.usedUser = init.usedUser;
    if (init.ackedFeatures !== undefined) this.ackedFeatures = init.ackedFeatures;
    if (init.regions !== undefined) this.regions = init.regions;
  }

  /** models vhost_vq_reset(), v6.12 (the ring fields of it). */
  reset(): void {
    this.num = 1;
    this.descUser = 0;
    this.availUser = 0;
    this.usedUser = 0;
    this.lastAvailIdx = 0;
    this.availIdx = 0;
    this.lastUsedIdx = 0;
    this.signalledUsed = 0;
    this.signalledUsedValid = false;
    this.usedFlags = 0;
    this.ackedFeatures = 0n;
    this.regions = [];
  }

  /** models vhost_has_feature(): is feature bit `bit` in acked_features? */
  hasFeature(bit: number): boolean {
    return ((this.ackedFeatures >> BigInt(bit)) & 1n) === 1n;
  }

  /**
   * models drivers/vhost/vhost.c translate_desc(), v6.12 (umem, no IOTLB): split
   * [gpa, gpa+len) into userspace iovecs, one per memory region crossed. EFAULT when a byte
   * is not covered by a region; ENOBUFS when more than `iovSize` iovecs would be needed.
   * A zero-length range yields no iovecs (and never faults). Only the table is consulted: an
   * iovec may still point at memory unmapped in the mm (the later copy faults).
   */
  translate(gpa: number | bigint, len: number, iovSize = UIO_MAXIOV): Result<Iov[]> {
    const iov: Iov[] = [];
    let addr = BigInt(gpa);
    const total = BigInt(len);
    const last = addr + total - 1n;
    let s = 0n;
    while (total > s) {
      if (iov.length >= iovSize) return err(Errno.ENOBUFS);
      // vhost_iotlb_itree_first(umem, addr, last): the lowest-starting map overlapping the range
      let map: VhostMemRegion | undefined;
      for (const r of this.regions) {
        const start = BigInt(r.guestPhysAddr);
        const end = start + BigInt(r.size) - 1n;
        if (r.size > 0 && start <= last && end >= addr && (!map || start < BigInt(map.guestPhysAddr)))
          map = r;
      }
      if (!map || BigInt(map.guestPhysAddr) > addr) return err(Errno.EFAULT);
      const start = BigInt(map.guestPhysAddr);
      const size = BigInt(map.size) - addr + start;
      const iovLen = total - s < size ? total - s : size;
      iov.push({ addr: map.userspaceAddr + Number(addr - start), len: Number(iovLen) });
      s += size;
      addr += size;
    }
    return ok(iov);
  }
}

// --- ring accessors (vhost_get_avail/vhost_get_used/vhost_put_used… as __get_user/__put_user) ---

function getU16(mm: MM, addr: number): Result<number> {
  const v = mm.view(addr, 2);
  return v.ok ? ok(v.value.getUint16(0, true)) : v;
}

function putU16(mm: MM, addr: number, value: number): Result<void> {
  const v = mm.view(addr, 2);
  if (!v.ok) return v;
  v.value.setUint16(0, value & 0xffff, true);
  return ok();
}

function decodeDesc(d: DataView, off = 0): VringDesc {
  return {
    addr: d.getBigUint64(off, true),
    len: d.getUint32(off + 8, true),
    flags: d.getUint16(off + 12, true),
    next: d.getUint16(off + 14, true),
  };
}

/** vhost_get_desc(): copy descriptor i from the table; EFAULT when unmapped. */
function getDesc(mm: MM, vq: Vring, i: number): Result<VringDesc> {
  const v = mm.view(vq.descUser + VRING_DESC_SIZE * i, VRING_DESC_SIZE);
  return v.ok ? ok(decodeDesc(v.value)) : v;
}

/**
 * models vhost_get_avail_idx(), v6.12 (since v6.10, commit "vhost: Improve
 * vhost_get_avail_idx() with smp_rmb()"): read avail->idx into vq->avail_idx, then validate it.
 * Returns 1 when there are new entries, 0 when none, EFAULT when the ring is unmapped, EINVAL
 * when the guest moved the index by more than num. Note: v6.12 stores the bad index in
 * vq->avail_idx before rejecting it, so later calls see a non-empty cache (faithfully kept).
 */
function vhostGetAvailIdx(mm: MM, vq: Vring): Result<0 | 1> {
  const r = getU16(mm, vq.availUser + 2);
  if (!r.ok) return r;
  vq.availIdx = r.value;
  if (((vq.availIdx - vq.lastAvailIdx) & 0xffff) > vq.num) return err(Errno.EINVAL);
  if (vq.availIdx === vq.lastAvailIdx) return ok(0);
  return ok(1);
}

/** Reads an indirect table sequentially through its iovecs, as copy_from_iter_full() does. */
class IovReader {
  private i = 0;
  private off = 0;
  constructor(
    private readonly mm: MM,
    private readonly iov: Iov[],
  ) {}
  /** Copy `len` bytes; undefined when the iovecs run out or the memory is unmapped. */
  read(len: number): Uint8Array | undefined {
    const out = new Uint8Array(len);
    let done = 0;
    while (done < len) {
      const cur = this.iov[this.i];
      if (!cur) return undefined;
      const n = Math.min(len - done, cur.len - this.off);
      if (n > 0) {
        const r = this.mm.read(cur.addr + this.off, n);
        if (!r.ok) return undefined;
        out.set(r.value, done);
        done += n;
        this.off += n;
      }
      if (this.off >= cur.len) {
        this.i++;
        this.off = 0;
      }
    }
    return out;
  }
}

/**
 * Adds the iovecs of one (non-indirect) descriptor to out/in, enforcing "readable before
 * writable" on the iovec counts as the kernel does (a zero-length writable descriptor adds no
 * iovec and so does not count).
 */
function addDescIovs(vq: Vring, d: VringDesc, iovSize: number, out: Iov[], inn: Iov[]): Result<void> {
  const t = vq.translate(d.addr, d.len, iovSize - out.length - inn.length);
  if (!t.ok) return t;
  if (d.flags & VIRTQ_DESC_F_WRITE) {
    inn.push(...t.value);
  } else {
    // If it's an output descriptor, they're all supposed to come before any input descriptors.
    if (inn.length) return err(Errno.EINVAL);
    out.push(...t.value);
  }
  return ok();
}

/**
 * models drivers/vhost/vhost.c get_indirect(), v6.12: len not a multiple of 16 → EINVAL; the
 * table is translated (EFAULT, ENOBUFS beyond UIO_MAXIOV regions); more than 65536 entries →
 * E2BIG; then entries are read *in order* (the next field only says whether to continue; it is
 * not followed), more entries than the table holds → EINVAL ("loop"), an unreadable entry →
 * EINVAL, a nested INDIRECT → EINVAL, readable after writable → EINVAL.
 */
function getIndirect(
  mm: MM,
  vq: Vring,
  iovSize: number,
  out: Iov[],
  inn: Iov[],
  indirect: VringDesc,
): Result<void> {
  const len = indirect.len;
  if (len % VRING_DESC_SIZE) return err(Errno.EINVAL);
  const t = vq.translate(indirect.addr, len, UIO_MAXIOV);
  if (!t.ok) return t;
  const count = len / VRING_DESC_SIZE;
  if (count > VHOST_INDIRECT_MAX) return err(Errno.E2BIG);
  const from = new IovReader(mm, t.value);
  let found = 0;
  for (;;) {
    if (++found > count) return err(Errno.EINVAL);
    const bytes = from.read(VRING_DESC_SIZE);
    if (!bytes) return err(Errno.EINVAL);
    const d = decodeDesc(new DataView(bytes.buffer, bytes.byteOffset, bytes.length));
    if (d.flags & VIRTQ_DESC_F_INDIRECT) return err(Errno.EINVAL);
    const r = addDescIovs(vq, d, iovSize, out, inn);
    if (!r.ok) return r;
    if (!(d.flags & VIRTQ_DESC_F_NEXT)) return ok();
  }
}

/**
 * models drivers/vhost/vhost.c vhost_get_vq_desc(), v6.12: fetch the next available chain.
 *
 * Order of checks: if the cached avail index is exhausted, re-read avail->idx (EFAULT; a move
 * of more than num → EINVAL; nothing new → head === vq.num, no state change); read the head at
 * avail->ring[last_avail_idx & (num-1)] (EFAULT); head ≥ num → EINVAL; walk the chain: next ≥
 * num → EINVAL, more than num descriptors → EINVAL (loop), descriptor read → EFAULT, address
 * translation → EFAULT/ENOBUFS, readable after writable → EINVAL. INDIRECT descriptors are
 * followed whether or not VIRTIO_RING_F_INDIRECT_DESC was negotiated (vhost does not check the
 * feature), and may sit anywhere in a chain (NEXT on an indirect descriptor continues it).
 * On success last_avail_idx advances by one; on failure nothing is consumed.
 *
 * Precondition (the kernel's BUG_ON, reached on success): guest kicks are disabled
 * (vhostDisableNotify()), as every vhost driver does before fetching; violating it throws.
 * `iovSize` is the caller's iovec array size (vhost-net, -scsi, -vsock pass UIO_MAXIOV).
 * Dirty logging (the log/log_num out-parameters) is not modelled.
 */
export function vhostGetVqDesc(mm: MM, vq: Vring, iovSize = UIO_MAXIOV): Result<VqDesc> {
  const lastAvailIdx = vq.lastAvailIdx;
  if (vq.availIdx === vq.lastAvailIdx) {
    const r = vhostGetAvailIdx(mm, vq);
    if (!r.ok) return r;
    if (!r.value) return ok({ head: vq.num, out: [], in: [] });
  }
  // Grab the next descriptor number they're advertising.
  const ringHead = getU16(mm, vq.availUser + 4 + 2 * (lastAvailIdx & (vq.num - 1)));
  if (!ringHead.ok) return err(Errno.EFAULT);
  const head = ringHead.value;
  if (head >= vq.num) return err(Errno.EINVAL);

  const out: Iov[] = [];
  const inn: Iov[] = [];
  let i = head;
  let found = 0;
  for (;;) {
    if (i >= vq.num) return err(Errno.EINVAL);
    if (++found > vq.num) return err(Errno.EINVAL);
    const d = getDesc(mm, vq, i);
    if (!d.ok) return err(Errno.EFAULT);
    const desc = d.value;
    const r =
      desc.flags & VIRTQ_DESC_F_INDIRECT
        ? getIndirect(mm, vq, iovSize, out, inn, desc)
        : addDescIovs(vq, desc, iovSize, out, inn);
    if (!r.ok) return r;
    if (!(desc.flags & VIRTQ_DESC_F_NEXT)) break;
    i = desc.next;
  }
  // On success, increment avail index.
  vq.lastAvailIdx = (vq.lastAvailIdx + 1) & 0xffff;
  invariant(
    vq.usedFlags & VRING_USED_F_NO_NOTIFY,
    'vhost_get_vq_desc: BUG_ON(!(vq->used_flags & VRING_USED_F_NO_NOTIFY)): disable notify first',
  );
  return ok({ head, out, in: inn });
}

/** models vhost_discard_vq_desc(), v6.12: give back the last `n` fetched chains. */
export function vhostDiscardVqDesc(vq: Vring, n: number): void {
  vq.lastAvailIdx = (vq.lastAvailIdx - n) & 0xffff;
}

/**
 * models __vhost_add_used_n(), v6.12: write `elems` at used->ring[last_used_idx & (num-1)]
 * (one copy, no wrap: the caller splits), advance last_used_idx, and invalidate signalled_used
 * if the used index ran past it (a driver that never signals within 2^16 buffers).
 */
function vhostAddUsedNInner(mm: MM, vq: Vring, elems: readonly UsedElem[]): Result<void> {
  const start = vq.lastUsedIdx & (vq.num - 1);
  const bytes = new Uint8Array(elems.length * VRING_USED_ELEM_SIZE);
  const d = new DataView(bytes.buffer);
  elems.forEach((e, k) => {
    d.setUint32(k * VRING_USED_ELEM_SIZE, e.id >>> 0, true);
    d.setUint32(k * VRING_USED_ELEM_SIZE + 4, e.len >>> 0, true);
  });
  if (bytes.length) {
    const w = mm.write(vq.usedUser + 4 + VRING_USED_ELEM_SIZE * start, bytes);
    if (!w.ok) return err(Errno.EFAULT);
  }
  const old = vq.lastUsedIdx;
  const neu = (vq.lastUsedIdx = (vq.lastUsedIdx + elems.length) & 0xffff);
  if (((neu - vq.signalledUsed) & 0xffff) < ((neu - old) & 0xffff)) vq.signalledUsedValid = false;
  return ok();
}

/**
 * models drivers/vhost/vhost.c vhost_add_used_n(), v6.12: write the used elements starting at
 * last_used_idx & (num-1), splitting at the end of the ring, then (after the write barrier)
 * publish used->idx = last_used_idx. EFAULT when the used ring is unmapped. As in the kernel, a
 * failure of the first (pre-wrap) part returns at once; a failure of the second part still
 * publishes the index of what was written, then reports EFAULT.
 */
export function vhostAddUsedN(mm: MM, vq: Vring, elems: readonly UsedElem[]): Result<void> {
  const start = vq.lastUsedIdx & (vq.num - 1);
  const n = vq.num - start;
  let rest = elems;
  if (n < rest.length) {
    const r = vhostAddUsedNInner(mm, vq, rest.slice(0, n));
    if (!r.ok) return r;
    rest = rest.slice(n);
  }
  const r = vhostAddUsedNInner(mm, vq, rest);
  // Make sure buffer is written before we update index (smp_wmb).
  const w = putU16(mm, vq.usedUser + 2, vq.lastUsedIdx);
  if (!w.ok) return err(Errno.EFAULT);
  return r;
}

/** models vhost_add_used(), v6.12: one used element {head, len}. */
export function vhostAddUsed(mm: MM, vq: Vring, head: number, len: number): Result<void> {
  return vhostAddUsedN(mm, vq, [{ id: head, len }]);
}

/**
 * models drivers/vhost/vhost.c vhost_notify(), v6.12: should the call eventfd be signalled
 * after adding used buffers? NOTIFY_ON_EMPTY and nothing left in the avail cache → yes; without
 * EVENT_IDX → unless avail->flags has NO_INTERRUPT; with EVENT_IDX → record last_used_idx as
 * signalled_used and apply vring_need_event(used_event, new, old), always yes the first time
 * after a reset (signalled_used_valid false). A ring read failure answers yes (the kernel
 * reports it with vq_err and signals).
 */
export function vhostNotify(mm: MM, vq: Vring): boolean {
  if (vq.hasFeature(VIRTIO_F_NOTIFY_ON_EMPTY) && vq.availIdx === vq.lastAvailIdx) return true;
  if (!vq.hasFeature(VIRTIO_RING_F_EVENT_IDX)) {
    const flags = getU16(mm, vq.availUser);
    if (!flags.ok) return true;
    return !(flags.value & VRING_AVAIL_F_NO_INTERRUPT);
  }
  const old = vq.signalledUsed;
  const v = vq.signalledUsedValid;
  const neu = (vq.signalledUsed = vq.lastUsedIdx);
  vq.signalledUsedValid = true;
  if (!v) return true;
  const event = getU16(mm, vq.availUser + vringUsedEventOffset(vq.num));
  if (!event.ok) return true;
  return vringNeedEvent(event.value, neu, old);
}

/** vhost_update_used_flags(): used->flags = vq->used_flags. */
function vhostUpdateUsedFlags(mm: MM, vq: Vring): Result<void> {
  const w = putU16(mm, vq.usedUser, vq.usedFlags);
  return w.ok ? w : err(Errno.EFAULT);
}

/** vhost_update_avail_event(): avail_event (used->ring[num]) = vq->avail_idx. */
function vhostUpdateAvailEvent(mm: MM, vq: Vring): Result<void> {
  const w = putU16(mm, vq.usedUser + vringAvailEventOffset(vq.num), vq.availIdx);
  return w.ok ? w : err(Errno.EFAULT);
}

/**
 * models drivers/vhost/vhost.c vhost_enable_notify(), v6.12: ask the guest to kick again.
 * If NO_NOTIFY is not set → false (nothing to do). Clear it; without EVENT_IDX write
 * used->flags, with EVENT_IDX write avail_event = the cached avail index; then (after a full
 * barrier) re-read avail->idx to close the race: true when the ring holds entries not yet
 * consumed (avail_idx ≠ last_avail_idx), i.e. the caller must poll again instead of sleeping.
 * Failures are returned as errors (EFAULT for the ring write or read, EINVAL for an avail index
 * jump); the kernel reports them with vq_err() and returns false ("treat error as empty").
 */
export function vhostEnableNotify(mm: MM, vq: Vring): Result<boolean> {
  if (!(vq.usedFlags & VRING_USED_F_NO_NOTIFY)) return ok(false);
  vq.usedFlags &= ~VRING_USED_F_NO_NOTIFY;
  const w = vq.hasFeature(VIRTIO_RING_F_EVENT_IDX)
    ? vhostUpdateAvailEvent(mm, vq)
    : vhostUpdateUsedFlags(mm, vq);
  if (!w.ok) return w;
  // smp_mb(): they could have slipped one in as we were doing that; check again.
  const r = vhostGetAvailIdx(mm, vq);
  if (!r.ok) return r;
  return ok(r.value === 1);
}

/**
 * models drivers/vhost/vhost.c vhost_disable_notify(), v6.12: set NO_NOTIFY in the host copy
 * and, without EVENT_IDX, write used->flags (with EVENT_IDX the guest is told nothing: the
 * stale avail_event simply stops matching). EFAULT when the write fails; the kernel only logs
 * it (vq_err) and the flag stays set.
 */
export function vhostDisableNotify(mm: MM, vq: Vring): Result<void> {
  if (vq.usedFlags & VRING_USED_F_NO_NOTIFY) return ok();
  vq.usedFlags |= VRING_USED_F_NO_NOTIFY;
  if (!vq.hasFeature(VIRTIO_RING_F_EVENT_IDX)) return vhostUpdateUsedFlags(mm, vq);
  return ok();
}

/**
 * models drivers/vhost/vhost.c vhost_vq_avail_empty(), v6.12: true when sure the avail ring is
 * empty; a read failure or an index jump counts as non-empty ("treat error as non-empty").
 */
export function vhostVqAvailEmpty(mm: MM, vq: Vring): boolean {
  if (vq.availIdx !== vq.lastAvailIdx) return false;
  const r = vhostGetAvailIdx(mm, vq);
  return r.ok && r.value === 0;
}

/**
 * models drivers/vhost/vhost.c vhost_vq_init_access(), v6.12, for a vq with a backend (the
 * kernel returns 0 early without one: the caller checks): write used->flags, forget the last
 * signalled index, and load last_used_idx from used->idx. EFAULT when the used ring is unmapped.
 */
export function vhostVqInitAccess(mm: MM, vq: Vring): Result<void> {
  const w = vhostUpdateUsedFlags(mm, vq);
  if (!w.ok) return w;
  vq.signalledUsedValid = false;
  const r = getU16(mm, vq.usedUser + 2);
  if (!r.ok) return err(Errno.EFAULT);
  vq.lastUsedIdx = r.value;
  return ok();
}
