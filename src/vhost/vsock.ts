/**
 * /dev/vhost-vsock. Models drivers/vhost/vsock.c, v6.12 (read at the ~v6.16 tree
 * Kingxukai/linux 0291023e, whose paths modelled here are unchanged since 6.5): open with an RX
 * and a TX virtqueue, VHOST_VSOCK_SET_GUEST_CID (the CID table, vhost_vsock_hash),
 * VHOST_VSOCK_SET_RUNNING, the feature ioctls, the default vhost_dev_ioctl/vhost_vring_ioctl
 * path, release, and both data paths: host→guest (vhost_transport_send_pkt() queues the packet
 * and the send work; the work fills the guest's RX buffers) and guest→host (the TX kick handler
 * hands packets addressed to the host to the socket layer).
 *
 * vsock is the one vhost device that queues work before VHOST_SET_OWNER: a host socket may send
 * to a CID as soon as SET_GUEST_CID registered it. Without a worker the work is "not queued"
 * (vhost_vq_work_queue() returns false, 6.5+; before 6.5 vhost_work_queue() returned silently
 * when dev->worker was NULL); the packet stays on send_pkt_queue and VHOST_VSOCK_SET_RUNNING
 * queues the work again once the rings are running.
 *
 * The 6.4-rc crash (profile bug "vsock-early-queue", 6.4-rc1 … rc5): vhost_worker_create()
 * published dev->worker before it initialised the worker's work list and before
 * vhost_task_create() returned and worker->vtsk was set, so a
 * vhost_work_queue() from vhost_transport_send_pkt() that ran inside that window passed the
 * `if (!dev->worker)` test and called vhost_task_wake(NULL): a NULL pointer dereference, fixed by
 * a284f09effea ("vhost: Fix crash during early vhost_transport_send_pkt calls", 6.4-rc6), which
 * embeds the worker in the device and tests worker.vtsk instead. vhost.ts models that window
 * on that profile (a preemption point where copy_process may sleep), and a send that lands in it
 * is reported as the kernel BUG it was, with k.warn('vhost_work_queue', …), and the work is
 * dropped (the oopsing sender never returns in Linux; here it returns and its packet stays
 * queued).
 * A send before SET_OWNER outside the window is harmless on 6.4-rc1 too.
 *
 * Not modelled: the AF_VSOCK socket layer (connections, credit, RST replies), packet tapping,
 * IOTLB, dirty logging, read/write/poll on the device file (IOTLB messages).
 */
import { Errno, err, ok, type Result } from '../kernel/errno.js';
import { File, type FileOps } from '../kernel/files.js';
import type { Kernel } from '../kernel/kernel.js';
import { type KGen, mutexLock, mutexUnlock, preemptPoint } from '../kernel/sched.js';
import { Slot } from '../kernel/slot.js';
import { copyFromIovsFull, copyToIovs, iovLength } from './iov.js';
import * as U from './uapi.js';
import {
  VhostDev,
  type VhostVirtqueue,
  VhostWork,
  vhostDevAckFeatures,
  vhostDevCheckOwner,
  vhostDevCleanup,
  vhostDevFlush,
  vhostDevIoctl,
  vhostDevStop,
  vhostExceedsWeight,
  vhostFeatureIoctl,
  vhostSignal,
  vhostVqWorkQueue,
  vhostVringIoctl,
  vqErr,
} from './vhost.js';
import {
  UIO_MAXIOV,
  vhostAddUsed,
  vhostDisableNotify,
  vhostEnableNotify,
  vhostGetVqDesc,
  vhostNotify,
  vhostVqInitAccess,
} from './vring.js';

// ------------------------------------------------------------------ constants

/** include/linux/virtio_vsock.h: enum { VSOCK_VQ_RX, VSOCK_VQ_TX, VSOCK_VQ_EVENT } */
export const VSOCK_VQ_RX = 0;
export const VSOCK_VQ_TX = 1;
/** VHOST_VSOCK_DEFAULT_HOST_CID: the host's own CID (vhost_transport_get_local_cid) */
export const VHOST_VSOCK_DEFAULT_HOST_CID = 2;
/** include/uapi/linux/vm_sockets.h */
export const VMADDR_CID_HOST = 2;
export const U32_MAX = 0xffffffff;
/** VHOST_VSOCK_WEIGHT: bytes before requeueing; VHOST_VSOCK_PKT_WEIGHT: packets */
export const VHOST_VSOCK_WEIGHT = 0x80000;
export const VHOST_VSOCK_PKT_WEIGHT = 256;
/** include/uapi/linux/virtio_vsock.h */
export const VIRTIO_VSOCK_F_SEQPACKET = 1;
export const VIRTIO_VSOCK_TYPE_STREAM = 1;
export const VIRTIO_VSOCK_TYPE_SEQPACKET = 2;
export const VIRTIO_VSOCK_OP_REQUEST = 1;
export const VIRTIO_VSOCK_OP_RESPONSE = 2;
export const VIRTIO_VSOCK_OP_RST = 3;
export const VIRTIO_VSOCK_OP_SHUTDOWN = 4;
export const VIRTIO_VSOCK_OP_RW = 5;
export const VIRTIO_VSOCK_SEQ_EOM = 1;
export const VIRTIO_VSOCK_SEQ_EOR = 2;
/** sizeof(struct virtio_vsock_hdr), packed; also VIRTIO_VSOCK_SKB_HEADROOM */
export const SIZEOF_VIRTIO_VSOCK_HDR = 44;
export const VIRTIO_VSOCK_MAX_PKT_BUF_SIZE = 64 * 1024;

/** VHOST_VSOCK_FEATURES: the core set, ACCESS_PLATFORM and SEQPACKET. */
export const VHOST_VSOCK_FEATURES =
  U.VHOST_FEATURES | U.bit(U.VIRTIO_F_ACCESS_PLATFORM) | U.bit(VIRTIO_VSOCK_F_SEQPACKET);
export const VHOST_VSOCK_BACKEND_FEATURES = U.bit(U.VHOST_BACKEND_F_IOTLB_MSG_V2);

/** x86-64 TASK_SIZE_MAX with 4-level paging: what access_ok() accepts. */
const TASK_SIZE_MAX = 0x7ffffffff000;

// ------------------------------------------------------------------ the packet header

/** struct virtio_vsock_hdr (little-endian, packed) */
export interface VirtioVsockHdr {
  srcCid: bigint;
  dstCid: bigint;
  srcPort: number;
  dstPort: number;
  len: number;
  type: number;
  op: number;
  flags: number;
  bufAlloc: number;
  fwdCnt: number;
}

export function encodeVirtioVsockHdr(h: VirtioVsockHdr): Uint8Array {
  const b = new Uint8Array(SIZEOF_VIRTIO_VSOCK_HDR);
  const d = new DataView(b.buffer);
  d.setBigUint64(0, h.srcCid, true);
  d.setBigUint64(8, h.dstCid, true);
  d.setUint32(16, h.srcPort >>> 0, true);
  d.setUint32(20, h.dstPort >>> 0, true);
  d.setUint32(24, h.len >>> 0, true);
  d.setUint16(28, h.type, true);
  d.setUint16(30, h.op, true);
  d.setUint32(32, h.flags >>> 0, true);
  d.setUint32(36, h.bufAlloc >>> 0, true);
  d.setUint32(40, h.fwdCnt >>> 0, true);
  return b;
}

export function decodeVirtioVsockHdr(b: Uint8Array): VirtioVsockHdr {
  const d = new DataView(b.buffer, b.byteOffset, SIZEOF_VIRTIO_VSOCK_HDR);
  return {
    srcCid: d.getBigUint64(0, true),
    dstCid: d.getBigUint64(8, true),
    srcPort: d.getUint32(16, true),
    dstPort: d.getUint32(20, true),
    len: d.getUint32(24, true),
    type: d.getUint16(28, true),
    op: d.getUint16(30, true),
    flags: d.getUint32(32, true),
    bufAlloc: d.getUint32(36, true),
    fwdCnt: d.getUint32(40, true),
  };
}

/** A header with defaults (a stream RW packet of `len` bytes). */
export function vsockHdr(
  h: Partial<VirtioVsockHdr> & Pick<VirtioVsockHdr, 'srcCid' | 'dstCid'>,
): VirtioVsockHdr {
  return {
    srcPort: 1024,
    dstPort: 1024,
    len: 0,
    type: VIRTIO_VSOCK_TYPE_STREAM,
    op: VIRTIO_VSOCK_OP_RW,
    flags: 0,
    bufAlloc: 0,
    fwdCnt: 0,
    ...h,
  };
}

/** An sk_buff on send_pkt_queue: the header, the payload, how much was sent, and the reply flag. */
export interface VsockSkb {
  hdr: VirtioVsockHdr;
  payload: Uint8Array;
  /** VIRTIO_VSOCK_SKB_CB(skb)->offset: payload bytes already put in guest buffers */
  offset: number;
  /** virtio_vsock_skb_reply(): a reply counted in queued_replies */
  reply: boolean;
}

// ------------------------------------------------------------------ module state

/** vhost_vsock_hash and, for vsock_find_cid(), the CID of a guest→host transport (nested VM). */
interface VsockGlobal {
  readonly hash: Map<number, VhostVsock>;
  g2hLocalCid: number | null;
}

const globals = new Slot<Kernel, VsockGlobal>('vhost_vsock');

function vsockGlobal(k: Kernel): VsockGlobal {
  let g = globals.get(k);
  if (!g) globals.set(k, (g = { hash: new Map(), g2hLocalCid: null }));
  return g;
}

/**
 * Give this host a guest→host transport with local CID `cid` (the host is itself a VM with
 * virtio-vsock): SET_GUEST_CID of that CID then fails with EADDRINUSE (vsock_find_cid()).
 */
export function vsockSetG2hLocalCid(k: Kernel, cid: number | null): void {
  vsockGlobal(k).g2hLocalCid = cid;
}

/** models vhost_vsock_get(): the device registered with `guestCid` (instances without a CID are skipped). */
export function vhostVsockGet(k: Kernel, guestCid: number): VhostVsock | null {
  if (guestCid === 0) return null;
  return vsockGlobal(k).hash.get(guestCid) ?? null;
}

// ------------------------------------------------------------------ device

/** struct vhost_vsock */
export class VhostVsock {
  readonly dev: VhostDev;
  /** guest_cid: 0 = none assigned yet */
  guestCid = 0;
  seqpacketAllow = false;
  /** queued_replies */
  queuedReplies = 0;
  /** send_pkt_queue: host→guest packets not yet in guest buffers */
  sendPktQueue: VsockSkb[] = [];
  readonly sendPktWork: VhostWork;
  /** packets from the guest that virtio_transport_recv_pkt() got (model observation) */
  readonly received: { hdr: VirtioVsockHdr; payload: Uint8Array }[] = [];
  /** send works vhost_vq_work_queue() refused because the RX vq had no worker (observation) */
  notQueued = 0;
  constructor(readonly k: Kernel) {
    this.dev = new VhostDev(k, 'vhost-vsock', [
      (kk, vq) => vhostTransportDoSendPkt(kk, this, vq), // vhost_vsock_handle_rx_kick
      (kk, vq) => vhostVsockHandleTxKick(kk, this, vq),
    ]);
    const self = this;
    this.sendPktWork = new VhostWork(function* (kk) {
      yield* vhostTransportDoSendPkt(kk, self, self.vq(VSOCK_VQ_RX));
    }, 'vhost_transport_send_pkt_work');
  }
  vq(i: number): VhostVirtqueue {
    return this.dev.vqs[i]!;
  }
}

const devices = new Slot<File, VhostVsock>('vhost_vsock');
/** The vhost-vsock device behind an open /dev/vhost-vsock file, else null. */
export function vhostVsockOf(f: File | null): VhostVsock | null {
  return f ? (devices.get(f) ?? null) : null;
}

// ------------------------------------------------------------------ helpers

/** models vhost_vq_access_ok() for this model: access_ok() of the three ring ranges. */
function vqAccessOk(vq: VhostVirtqueue): boolean {
  const r = vq.ring;
  const fits = (addr: number, size: number) => addr >= 0 && addr + size <= TASK_SIZE_MAX;
  return fits(r.descUser, 16 * r.num) && fits(r.availUser, 6 + 2 * r.num) && fits(r.usedUser, 6 + 8 * r.num);
}

/**
 * Queue the send work on the RX vq's worker (vhost_vq_work_queue, 6.5+; vhost_work_queue on
 * the device's single worker before). On the 6.4-rc1 profile a queue inside the SET_OWNER
 * window is the NULL vtsk dereference described at the top of this file (vhost.ts).
 */
function queueSendPktWork(k: Kernel, vsock: VhostVsock): boolean {
  const queued = vhostVqWorkQueue(k, vsock.vq(VSOCK_VQ_RX), vsock.sendPktWork);
  if (!queued) vsock.notQueued++;
  return queued;
}

// ------------------------------------------------------------------ host → guest

/**
 * models vhost_transport_send_pkt(), v6.12: the host socket layer sends `hdr` + `payload` to
 * the guest whose CID is hdr.dst_cid (truncated to u32, as vhost_vsock_get() takes a u32):
 * ENODEV if no device has that CID; otherwise queue the packet and the send work (which needs
 * no owner: without a worker it is simply not queued). Returns the packet length.
 * Runs in the sender's context and never sleeps (RCU read side in Linux).
 */
export function vhostTransportSendPkt(
  k: Kernel,
  hdr: VirtioVsockHdr,
  payload: Uint8Array = new Uint8Array(0),
  reply = false,
): Result<number> {
  const vsock = vhostVsockGet(k, Number(hdr.dstCid & 0xffffffffn));
  if (!vsock) return err(Errno.ENODEV);
  if (reply) vsock.queuedReplies++;
  vsock.sendPktQueue.push({ hdr: { ...hdr, len: payload.length }, payload, offset: 0, reply });
  if (k.trace.enabled)
    k.emit(
      'vhost_vsock_send_pkt',
      `dst_cid=${hdr.dstCid} len=${payload.length} queued=${vsock.sendPktQueue.length}`,
    );
  queueSendPktWork(k, vsock);
  return ok(SIZEOF_VIRTIO_VSOCK_HDR + payload.length);
}

/**
 * models vhost_transport_do_send_pkt(), v6.12 (the send work and the RX kick handler): move
 * queued packets into the guest's RX buffers, splitting a payload larger than a buffer (and
 * clearing SEQ_EOM/EOR on all but the last piece), VHOST_VSOCK weights per run; a reply that
 * brings queued_replies back under the TX ring size restarts TX.
 */
function* vhostTransportDoSendPkt(k: Kernel, vsock: VhostVsock, vq: VhostVirtqueue): KGen<void> {
  const txVq = vsock.vq(VSOCK_VQ_TX);
  let restartTx = false;
  yield* mutexLock(k, vq.mutex);
  try {
    const mm = k.current!.mm;
    if (!vq.privateData || !mm) return;
    vhostDisableNotify(mm, vq.ring);
    let pkts = 0;
    let totalLen = 0;
    let added = false;
    do {
      const skb = vsock.sendPktQueue.shift();
      if (!skb) {
        vhostEnableNotify(mm, vq.ring);
        break;
      }
      const d = vhostGetVqDesc(mm, vq.ring, UIO_MAXIOV);
      if (!d.ok) {
        vsock.sendPktQueue.unshift(skb);
        vqErr(k, vq, `vhost_get_vq_desc errno ${d.errno}`);
        break;
      }
      if (d.value.head === vq.ring.num) {
        vsock.sendPktQueue.unshift(skb);
        const en = vhostEnableNotify(mm, vq.ring);
        if (en.ok && en.value) {
          vhostDisableNotify(mm, vq.ring);
          continue;
        }
        break;
      }
      if (d.value.out.length) {
        vqErr(k, vq, `Expected 0 output buffers, got ${d.value.out.length}`);
        break;
      }
      const iovLen = iovLength(d.value.in);
      if (iovLen < SIZEOF_VIRTIO_VSOCK_HDR) {
        vqErr(k, vq, `Buffer len [${iovLen}] too small`);
        break;
      }
      let payloadLen = skb.payload.length - skb.offset;
      let flagsToRestore = 0;
      const hdr = skb.hdr;
      if (payloadLen > iovLen - SIZEOF_VIRTIO_VSOCK_HDR) {
        payloadLen = iovLen - SIZEOF_VIRTIO_VSOCK_HDR;
        if (hdr.flags & VIRTIO_VSOCK_SEQ_EOM) {
          hdr.flags &= ~VIRTIO_VSOCK_SEQ_EOM;
          flagsToRestore |= VIRTIO_VSOCK_SEQ_EOM;
          if (hdr.flags & VIRTIO_VSOCK_SEQ_EOR) {
            hdr.flags &= ~VIRTIO_VSOCK_SEQ_EOR;
            flagsToRestore |= VIRTIO_VSOCK_SEQ_EOR;
          }
        }
      }
      hdr.len = payloadLen;
      const h = copyToIovs(mm, d.value.in, encodeVirtioVsockHdr(hdr));
      if (!h.ok || h.value !== SIZEOF_VIRTIO_VSOCK_HDR) {
        vqErr(k, vq, 'Faulted on copying pkt hdr');
        break;
      }
      const p = copyToIovs(
        mm,
        d.value.in,
        skb.payload.subarray(skb.offset, skb.offset + payloadLen),
        SIZEOF_VIRTIO_VSOCK_HDR,
      );
      if (!p.ok || p.value !== payloadLen) {
        vqErr(k, vq, 'Faulted on copying pkt buf');
        break;
      }
      vhostAddUsed(mm, vq.ring, d.value.head, SIZEOF_VIRTIO_VSOCK_HDR + payloadLen);
      added = true;
      skb.offset += payloadLen;
      totalLen += payloadLen;
      if (skb.offset < skb.payload.length) {
        hdr.flags |= flagsToRestore;
        vsock.sendPktQueue.unshift(skb);
      } else if (skb.reply) {
        const val = --vsock.queuedReplies;
        if (val + 1 === txVq.ring.num) restartTx = true;
      }
    } while (!vhostExceedsWeight(k, vq, ++pkts, totalLen, VHOST_VSOCK_PKT_WEIGHT, VHOST_VSOCK_WEIGHT));
    if (added) vhostSignal(k, vq, vhostNotify(mm, vq.ring));
  } finally {
    mutexUnlock(k, vq.mutex);
  }
  if (restartTx) vhostVqWorkQueue(k, txVq, txVq.poll.work); // vhost_poll_queue(&tx_vq->poll)
}

// ------------------------------------------------------------------ guest → host

/**
 * models vhost_vsock_handle_tx_kick(), v6.12: while replies have room, take each TX chain
 * (device-readable only: header + payload), hand packets from the guest's CID to the host CID to
 * the socket layer (others are freed), and return every chain with length 0. A malformed chain is
 * reported and consumed without being returned (as in Linux).
 */
function* vhostVsockHandleTxKick(k: Kernel, vsock: VhostVsock, vq: VhostVirtqueue): KGen<void> {
  yield* mutexLock(k, vq.mutex);
  try {
    const mm = k.current!.mm;
    if (!vq.privateData || !mm) return;
    vhostDisableNotify(mm, vq.ring);
    let pkts = 0;
    let totalLen = 0;
    let added = false;
    do {
      // vhost_vsock_more_replies()
      if (vsock.queuedReplies >= vq.ring.num) break;
      const d = vhostGetVqDesc(mm, vq.ring, UIO_MAXIOV);
      if (!d.ok) break;
      if (d.value.head === vq.ring.num) {
        const en = vhostEnableNotify(mm, vq.ring);
        if (en.ok && en.value) {
          vhostDisableNotify(mm, vq.ring);
          continue;
        }
        break;
      }
      // vhost_vsock_alloc_skb()
      const pkt = ((): { hdr: VirtioVsockHdr; payload: Uint8Array } | null => {
        if (d.value.in.length) {
          vqErr(k, vq, `Expected 0 input buffers, got ${d.value.in.length}`);
          return null;
        }
        const len = iovLength(d.value.out);
        if (len < SIZEOF_VIRTIO_VSOCK_HDR || len > VIRTIO_VSOCK_MAX_PKT_BUF_SIZE + SIZEOF_VIRTIO_VSOCK_HDR)
          return null;
        const hb = copyFromIovsFull(mm, d.value.out, SIZEOF_VIRTIO_VSOCK_HDR);
        if (!hb.ok) return null;
        const hdr = decodeVirtioVsockHdr(hb.value);
        if (!hdr.len) return { hdr, payload: new Uint8Array(0) };
        if (hdr.len + SIZEOF_VIRTIO_VSOCK_HDR > len) return null;
        const pb = copyFromIovsFull(mm, d.value.out, hdr.len, SIZEOF_VIRTIO_VSOCK_HDR);
        return pb.ok ? { hdr, payload: pb.value } : null;
      })();
      if (!pkt) {
        vqErr(k, vq, 'Faulted on pkt');
        continue;
      }
      totalLen += SIZEOF_VIRTIO_VSOCK_HDR + pkt.payload.length;
      if (
        pkt.hdr.srcCid === BigInt(vsock.guestCid) &&
        pkt.hdr.dstCid === BigInt(VHOST_VSOCK_DEFAULT_HOST_CID)
      ) {
        vsock.received.push(pkt); // virtio_transport_recv_pkt()
        if (k.trace.enabled)
          k.emit('vhost_vsock_recv_pkt', `src_cid=${pkt.hdr.srcCid} len=${pkt.payload.length}`);
      }
      vhostAddUsed(mm, vq.ring, d.value.head, 0);
      added = true;
    } while (!vhostExceedsWeight(k, vq, ++pkts, totalLen, VHOST_VSOCK_PKT_WEIGHT, VHOST_VSOCK_WEIGHT));
    if (added) vhostSignal(k, vq, vhostNotify(mm, vq.ring));
  } finally {
    mutexUnlock(k, vq.mutex);
  }
}

// ------------------------------------------------------------------ control path

/**
 * models vhost_vsock_start(), v6.12 (VHOST_VSOCK_SET_RUNNING ≠ 0): owner check (EPERM); per vq
 * access_ok (EFAULT) and, if not running yet, set the backend and vhost_vq_init_access (EFAULT);
 * on failure every backend is cleared; then queue the send work for packets queued earlier.
 */
function* vhostVsockStart(k: Kernel, vsock: VhostVsock): KGen<Result<number>> {
  const dev = vsock.dev;
  yield* mutexLock(k, dev.mutex);
  try {
    const own = vhostDevCheckOwner(k, dev);
    if (!own.ok) return own;
    const mm = k.current!.mm!;
    for (const vq of dev.vqs) {
      yield* mutexLock(k, vq.mutex);
      let r: Result<void> = ok();
      if (!vqAccessOk(vq)) r = err(Errno.EFAULT);
      else if (!vq.privateData) {
        vq.privateData = vsock;
        r = vhostVqInitAccess(mm, vq.ring);
      }
      if (!r.ok) {
        vq.privateData = null;
        mutexUnlock(k, vq.mutex);
        for (const v of dev.vqs) {
          yield* mutexLock(k, v.mutex);
          v.privateData = null;
          mutexUnlock(k, v.mutex);
        }
        return r;
      }
      mutexUnlock(k, vq.mutex);
    }
    // some packets may have been queued before the device was started
    queueSendPktWork(k, vsock);
    return ok(0);
  } finally {
    mutexUnlock(k, dev.mutex);
  }
}

/** models vhost_vsock_stop(): (owner check) then clear every backend. */
function* vhostVsockStop(k: Kernel, vsock: VhostVsock, checkOwner: boolean): KGen<Result<number>> {
  const dev = vsock.dev;
  yield* mutexLock(k, dev.mutex);
  try {
    if (checkOwner) {
      const own = vhostDevCheckOwner(k, dev);
      if (!own.ok) return own;
    }
    for (const vq of dev.vqs) {
      yield* mutexLock(k, vq.mutex);
      vq.privateData = null;
      mutexUnlock(k, vq.mutex);
    }
    return ok(0);
  } finally {
    mutexUnlock(k, dev.mutex);
  }
}

/**
 * models vhost_vsock_set_cid(), v6.12: CIDs ≤ VMADDR_CID_HOST (2), U32_MAX and anything above
 * 32 bits → EINVAL; the CID of this host's guest→host transport → EADDRINUSE; a CID another
 * device holds → EADDRINUSE; otherwise (re)hash this device under the CID (no owner needed).
 */
function vhostVsockSetCid(k: Kernel, vsock: VhostVsock, guestCid: bigint): Result<number> {
  if (guestCid <= BigInt(VMADDR_CID_HOST) || guestCid === BigInt(U32_MAX)) return err(Errno.EINVAL);
  if (guestCid > BigInt(U32_MAX)) return err(Errno.EINVAL);
  const cid = Number(guestCid);
  const g = vsockGlobal(k);
  if (g.g2hLocalCid === cid) return err(Errno.EADDRINUSE);
  const other = vhostVsockGet(k, cid);
  if (other && other !== vsock) return err(Errno.EADDRINUSE);
  if (vsock.guestCid) g.hash.delete(vsock.guestCid);
  vsock.guestCid = cid;
  g.hash.set(cid, vsock);
  return ok(0);
}

/** models vhost_vsock_set_features(): unknown bits → EOPNOTSUPP; seqpacket; stored on both vqs. */
function* vhostVsockSetFeatures(k: Kernel, vsock: VhostVsock, features: bigint): KGen<Result<number>> {
  if (features & ~VHOST_VSOCK_FEATURES) return err(Errno.EOPNOTSUPP);
  yield* vhostDevAckFeatures(k, vsock.dev, features, () => {
    vsock.seqpacketAllow = (features & U.bit(VIRTIO_VSOCK_F_SEQPACKET)) !== 0n;
  });
  return ok(0);
}

/**
 * models vhost_vsock_dev_ioctl(), v6.12: SET_GUEST_CID, SET_RUNNING (any non-zero int starts,
 * 0 stops — Linux has no EINVAL for other values), the feature ioctls, and the default path:
 * vhost_dev_ioctl(), then vhost_vring_ioctl() for what it does not know, else a flush. On the
 * 6.4-rc1 profile VHOST_SET_OWNER has the early-queue window (see the top of this file).
 */
function* vhostVsockDevIoctl(k: Kernel, f: File, cmd: number, argp: number): KGen<Result<number>> {
  const vsock = devices.get(f)!;
  const dev = vsock.dev;
  const mm = k.current!.mm;
  switch (cmd) {
    case U.VHOST_VSOCK_SET_GUEST_CID: {
      const v = U.readU64(mm, argp);
      if (!v.ok) return v;
      return vhostVsockSetCid(k, vsock, v.value);
    }
    case U.VHOST_VSOCK_SET_RUNNING: {
      const v = U.readU32(mm, argp);
      if (!v.ok) return v;
      return v.value !== 0 ? yield* vhostVsockStart(k, vsock) : yield* vhostVsockStop(k, vsock, true);
    }
    case U.VHOST_GET_FEATURES:
    case U.VHOST_SET_FEATURES:
    case U.VHOST_GET_BACKEND_FEATURES:
    case U.VHOST_SET_BACKEND_FEATURES:
      return (yield* vhostFeatureIoctl(k, dev, cmd, argp, {
        features: VHOST_VSOCK_FEATURES,
        backendFeatures: VHOST_VSOCK_BACKEND_FEATURES,
        set: (v: bigint) => vhostVsockSetFeatures(k, vsock, v),
      }))!;
  }
  yield* mutexLock(k, dev.mutex);
  try {
    let r = yield* vhostDevIoctl(k, dev, cmd, argp);
    if (!r.ok && r.errno === Errno.ENOIOCTLCMD) r = yield* vhostVringIoctl(k, dev, cmd, argp);
    else yield* vhostDevFlush(k, dev); // vhost_vsock_flush()
    return r;
  } finally {
    mutexUnlock(k, dev.mutex);
  }
}

/**
 * models vhost_vsock_dev_release(), v6.12: unhash the CID, wait a grace period, stop without
 * the owner check, flush, stop polling, drop queued packets, clean up (workers, owner mm).
 */
function* vhostVsockDevRelease(k: Kernel, f: File): KGen<void> {
  const vsock = devices.get(f)!;
  const dev = vsock.dev;
  const g = vsockGlobal(k);
  if (vsock.guestCid && g.hash.get(vsock.guestCid) === vsock) g.hash.delete(vsock.guestCid);
  yield* preemptPoint(k, 'vhost_vsock_dev_release(): synchronize_rcu()');
  yield* vhostVsockStop(k, vsock, false);
  yield* vhostDevFlush(k, dev);
  yield* vhostDevStop(k, dev);
  vsock.sendPktQueue = [];
  vsock.queuedReplies = 0;
  yield* vhostDevCleanup(k, dev);
  dev.released = true;
  if (k.trace.enabled) k.emit('vhost_release', `dev=${dev.name}`);
}

export const VHOST_VSOCK_OPS: FileOps = {
  name: 'vhost-vsock',
  ioctl: vhostVsockDevIoctl,
  release: vhostVsockDevRelease,
};

/** models vhost_vsock_dev_open(): two virtqueues (RX = 0, TX = 1), no CID. */
export function* openVhostVsock(k: Kernel, path: string, flags: number): KGen<Result<File>> {
  if (k.allocFails('vhost_vsock_dev_open')) return err(Errno.ENOMEM);
  const vsock = new VhostVsock(k);
  const f = new File(VHOST_VSOCK_OPS, path, flags, vsock);
  devices.set(f, vsock);
  return ok(f);
}
