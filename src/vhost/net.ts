/**
 * /dev/vhost-net. Models drivers/vhost/net.c, v6.12 (copy mode; no zerocopy, no busy
 * polling, no XDP batching): open/release, the ioctl switch, SET_BACKEND with a tap peer, and
 * the TX and RX handlers that move frames between the guest's virtqueues and the tap.
 */
import { Errno, err, ok, type Result } from '../kernel/errno.js';
import { File, type FileOps, fput } from '../kernel/files.js';
import { audited, fpUnaudited } from '../kernel/footprint.js';
import type { Kernel } from '../kernel/kernel.js';
import type { MM } from '../kernel/mm.js';
import { type KGen, mutexLock, mutexUnlock } from '../kernel/sched.js';
import { Slot } from '../kernel/slot.js';
import { copyFromIovs, copyToIovs } from './iov.js';
import { type TapQueue, tapSocketOf } from './tap.js';
import * as U from './uapi.js';
import {
  VhostDev,
  type VhostVirtqueue,
  vhostDevAckFeatures,
  vhostDevCheckOwner,
  vhostDevCleanup,
  vhostDevFlush,
  vhostDevHasOwner,
  vhostDevIoctl,
  vhostDevSetOwner,
  vhostDevStop,
  vhostExceedsWeight,
  vhostFeatureIoctl,
  vhostSignal,
  vhostVqWorkQueue,
  vhostVringIoctl,
  vqErr,
} from './vhost.js';
import {
  vhostAddUsed,
  vhostDisableNotify,
  vhostDiscardVqDesc,
  vhostEnableNotify,
  vhostGetVqDesc,
  vhostNotify,
  vhostVqInitAccess,
} from './vring.js';

export const VHOST_NET_VQ_RX = 0;
export const VHOST_NET_VQ_TX = 1;
export const VHOST_NET_VQ_MAX = 2;
/** VHOST_NET_WEIGHT: bytes handled before requeueing, to stay fair to other virtqueues */
export const VHOST_NET_WEIGHT = 0x80000;
/** VHOST_NET_PKT_WEIGHT */
export const VHOST_NET_PKT_WEIGHT = 256;
export const VIRTIO_NET_F_MRG_RXBUF = 15;

/** VIRTIO_F_RING_RESET */
export const VIRTIO_F_RING_RESET = 40;

/**
 * VHOST_NET_FEATURES (net.c): the core set plus the net header, mergeable RX buffers and
 * ACCESS_PLATFORM, and VIRTIO_F_RING_RESET where the profile has it (Debian's 6.1 answers
 * 0x33d008000 without it; its 6.12 with it — conformance).
 */
export function vhostNetFeatures(k: Kernel): bigint {
  const base =
    U.VHOST_FEATURES |
    U.bit(U.VHOST_NET_F_VIRTIO_NET_HDR) |
    U.bit(VIRTIO_NET_F_MRG_RXBUF) |
    U.bit(U.VIRTIO_F_ACCESS_PLATFORM);
  return k.profile.vhostNetRingReset ? base | U.bit(VIRTIO_F_RING_RESET) : base;
}
export const VHOST_NET_BACKEND_FEATURES = U.bit(U.VHOST_BACKEND_F_IOTLB_MSG_V2);

/** struct vhost_net */
export class VhostNet {
  readonly dev: VhostDev;
  /** sockets' readiness callbacks (vhost_net's socket polls), per vq */
  private readonly sockPolls: (null | (() => void))[] = [null, null];
  txPackets = 0;
  rxPackets = 0;
  constructor(readonly k: Kernel) {
    this.dev = new VhostDev(k, 'vhost-net', [
      audited((kk: Kernel, vq: VhostVirtqueue) => handleRx(kk, this, vq)),
      audited((kk: Kernel, vq: VhostVirtqueue) => handleTx(kk, this, vq)),
    ]);
  }
  vq(i: number): VhostVirtqueue {
    return this.dev.vqs[i]!;
  }
  sock(i: number): TapQueue | null {
    return tapSocketOf(this.vq(i).privateData as File | null);
  }
  /** models vhost_net_enable_vq(): poll the socket; TX is always writable, so it fires now. */
  enableVq(vq: VhostVirtqueue): void {
    const sock = tapSocketOf(vq.privateData as File | null);
    if (!sock || this.sockPolls[vq.index]) return;
    const cb = () => vhostVqWorkQueue(this.k, vq, vq.poll.work);
    this.sockPolls[vq.index] = cb;
    if (vq.index === VHOST_NET_VQ_RX) {
      sock.readers.add(cb);
      if (sock.peekHeadLen()) cb();
    } else cb();
  }
  /** models vhost_net_disable_vq() */
  disableVq(vq: VhostVirtqueue): void {
    const cb = this.sockPolls[vq.index];
    if (!cb) return;
    this.sockPolls[vq.index] = null;
    tapSocketOf(vq.privateData as File | null)?.readers.delete(cb);
  }
}

const nets = new Slot<File, VhostNet>('vhost_net');
export function vhostNetOf(f: File): VhostNet | null {
  return nets.get(f) ?? null;
}

function ringMm(k: Kernel): MM | null {
  return k.current!.mm;
}

/** models handle_tx() → handle_tx_copy(), v6.12. */
function* handleTx(k: Kernel, net: VhostNet, vq: VhostVirtqueue): KGen<void> {
  yield* mutexLock(k, vq.mutex);
  try {
    const sock = net.sock(VHOST_NET_VQ_TX);
    const mm = ringMm(k);
    // footprints (footprint.ts): without a backend the handler only takes the vq mutex; the
    // ring and socket paths are not audited
    if (sock && mm) fpUnaudited(k, k.current!);
    if (!sock || !mm) return;
    if (!vhostDisableNotify(mm, vq.ring).ok) return;
    net.disableVq(vq);
    let sent = 0;
    let total = 0;
    let signal = false;
    for (;;) {
      const d = vhostGetVqDesc(mm, vq.ring);
      if (!d.ok) {
        vqErr(k, vq, `vhost_get_vq_desc errno ${d.errno}`);
        break;
      }
      if (d.value.head === vq.ring.num) {
        const en = vhostEnableNotify(mm, vq.ring);
        if (en.ok && en.value) {
          vhostDisableNotify(mm, vq.ring);
          continue;
        }
        break;
      }
      if (d.value.in.length) {
        vqErr(k, vq, 'unexpected descriptor format for TX');
        vhostDiscardVqDesc(vq.ring, 1);
        break;
      }
      const data = copyFromIovs(mm, d.value.out);
      if (!data.ok) {
        vhostDiscardVqDesc(vq.ring, 1);
        break;
      }
      sock.sendmsg(data.value);
      net.txPackets++;
      total += data.value.length;
      const u = vhostAddUsed(mm, vq.ring, d.value.head, 0);
      if (!u.ok) break;
      signal = true;
      if (vhostExceedsWeight(k, vq, ++sent, total, VHOST_NET_PKT_WEIGHT, VHOST_NET_WEIGHT)) break;
    }
    if (signal) vhostSignal(k, vq, vhostNotify(mm, vq.ring));
  } finally {
    mutexUnlock(k, vq.mutex);
  }
}

/** models handle_rx(), v6.12 (one descriptor chain per frame; no mergeable buffers used). */
function* handleRx(k: Kernel, net: VhostNet, vq: VhostVirtqueue): KGen<void> {
  yield* mutexLock(k, vq.mutex);
  try {
    const sock = net.sock(VHOST_NET_VQ_RX);
    const mm = ringMm(k);
    // footprints (footprint.ts): without a backend the handler only takes the vq mutex; the
    // ring and socket paths are not audited
    if (sock && mm) fpUnaudited(k, k.current!);
    if (!sock || !mm) return;
    if (!vhostDisableNotify(mm, vq.ring).ok) return;
    net.disableVq(vq);
    let recv = 0;
    let total = 0;
    let signal = false;
    let sockLen = sock.peekHeadLen();
    while (sockLen) {
      const d = vhostGetVqDesc(mm, vq.ring);
      if (!d.ok) {
        vqErr(k, vq, `vhost_get_vq_desc errno ${d.errno}`);
        break;
      }
      if (d.value.head === vq.ring.num) {
        const en = vhostEnableNotify(mm, vq.ring);
        if (en.ok && en.value) {
          vhostDisableNotify(mm, vq.ring);
          continue;
        }
        // out of guest buffers: wait for the guest's kick (kicks are enabled again)
        if (signal) vhostSignal(k, vq, vhostNotify(mm, vq.ring));
        return;
      }
      if (d.value.out.length) {
        vqErr(k, vq, 'unexpected descriptor format for RX');
        vhostDiscardVqDesc(vq.ring, 1);
        break;
      }
      const frame = sock.recvmsg()!;
      // num_buffers = 1 in the mergeable header (bytes 10–11)
      frame[10] = 1;
      frame[11] = 0;
      const w = copyToIovs(mm, d.value.in, frame);
      if (!w.ok) {
        vhostDiscardVqDesc(vq.ring, 1);
        break;
      }
      net.rxPackets++;
      total += frame.length;
      if (!vhostAddUsed(mm, vq.ring, d.value.head, w.value).ok) break;
      signal = true;
      if (vhostExceedsWeight(k, vq, ++recv, total, VHOST_NET_PKT_WEIGHT, VHOST_NET_WEIGHT)) break;
      sockLen = sock.peekHeadLen();
    }
    if (signal) vhostSignal(k, vq, vhostNotify(mm, vq.ring));
    if (!sock.peekHeadLen()) net.enableVq(vq);
  } finally {
    mutexUnlock(k, vq.mutex);
  }
}

/** models vhost_vq_access_ok(): the three rings are mapped in the caller's address space. */
function vqAccessOk(mm: MM | null, vq: VhostVirtqueue): boolean {
  const r = vq.ring;
  if (!mm || !r.num) return false;
  return (
    mm.view(r.descUser, 16 * r.num).ok &&
    mm.view(r.availUser, 6 + 2 * r.num).ok &&
    mm.view(r.usedUser, 6 + 8 * r.num).ok
  );
}

/**
 * models vhost_net_set_backend(), v6.12: owner (EPERM), index (ENOBUFS), ring access (EFAULT),
 * the fd must be a tap (ENOTSOCK; -1 detaches); a new socket starts polling and the old one
 * is flushed and released.
 */
function* vhostNetSetBackend(k: Kernel, net: VhostNet, index: number, fd: number): KGen<Result<number>> {
  const dev = net.dev;
  yield* mutexLock(k, dev.mutex);
  try {
    const own = vhostDevCheckOwner(k, dev);
    if (!own.ok) return own;
    if (index >= VHOST_NET_VQ_MAX) return err(Errno.ENOBUFS);
    const vq = dev.vqs[index]!;
    let oldFile: File | null = null;
    yield* mutexLock(k, vq.mutex);
    try {
      if (!vqAccessOk(k.current!.mm, vq)) return err(Errno.EFAULT);
      let file: File | null = null;
      if (fd !== -1) {
        file = k.current!.files?.get(fd) ?? null;
        if (!tapSocketOf(file)) return err(Errno.ENOTSOCK);
      }
      const old = vq.privateData as File | null;
      if (file !== old) {
        net.disableVq(vq);
        if (file) file.count++; // sockfd_lookup / fget
        vq.privateData = file;
        if (file) {
          const ia = vhostVqInitAccess(k.current!.mm!, vq.ring);
          if (!ia.ok) {
            vq.privateData = old;
            file.count--;
            return ia;
          }
          net.enableVq(vq);
        }
        oldFile = old;
      }
    } finally {
      mutexUnlock(k, vq.mutex);
    }
    if (oldFile) {
      yield* vhostDevFlush(k, dev);
      yield* fput(k, oldFile);
    }
    return ok(0);
  } finally {
    mutexUnlock(k, dev.mutex);
  }
}

/** models vhost_net_stop(): detach both backends, returning them for release. */
function vhostNetStop(net: VhostNet): File[] {
  const out: File[] = [];
  for (const vq of net.dev.vqs) {
    const f = vq.privateData as File | null;
    net.disableVq(vq);
    vq.privateData = null;
    if (f) out.push(f);
  }
  return out;
}

/** models vhost_net_reset_owner() */
function* vhostNetResetOwner(k: Kernel, net: VhostNet): KGen<Result<number>> {
  const dev = net.dev;
  yield* mutexLock(k, dev.mutex);
  let socks: File[] = [];
  try {
    const own = vhostDevCheckOwner(k, dev);
    if (!own.ok) return own;
    socks = vhostNetStop(net);
    yield* vhostDevFlush(k, dev);
    yield* vhostDevStop(k, dev);
    yield* vhostDevCleanup(k, dev);
    return ok(0);
  } finally {
    mutexUnlock(k, dev.mutex);
    for (const s of socks) yield* fput(k, s);
  }
}

/** models vhost_net_set_features(): unknown bits → EOPNOTSUPP; stored on every vq. */
function* vhostNetSetFeatures(k: Kernel, net: VhostNet, features: bigint): KGen<Result<number>> {
  if (features & ~vhostNetFeatures(k)) return err(Errno.EOPNOTSUPP);
  yield* vhostDevAckFeatures(k, net.dev, features);
  return ok(0);
}

/** models vhost_net_ioctl(), v6.12. */
function* vhostNetIoctl(k: Kernel, f: File, cmd: number, argp: number): KGen<Result<number>> {
  const net = nets.get(f)!;
  const dev = net.dev;
  const mm = k.current!.mm;
  switch (cmd) {
    case U.VHOST_NET_SET_BACKEND: {
      const b = U.readVringFile(mm, argp);
      if (!b.ok) return b;
      return yield* vhostNetSetBackend(k, net, b.value.index, b.value.fd);
    }
    case U.VHOST_GET_FEATURES:
    case U.VHOST_SET_FEATURES:
    case U.VHOST_GET_BACKEND_FEATURES:
    case U.VHOST_SET_BACKEND_FEATURES:
      return (yield* vhostFeatureIoctl(k, dev, cmd, argp, {
        features: vhostNetFeatures(k),
        backendFeatures: VHOST_NET_BACKEND_FEATURES,
        set: (v: bigint) => vhostNetSetFeatures(k, net, v),
      }))!;
    case U.VHOST_RESET_OWNER:
      return yield* vhostNetResetOwner(k, net);
    case U.VHOST_SET_OWNER: {
      yield* mutexLock(k, dev.mutex);
      try {
        if (vhostDevHasOwner(dev)) return err(Errno.EBUSY);
        const r = yield* vhostDevSetOwner(k, dev);
        yield* vhostDevFlush(k, dev);
        return r.ok ? ok(0) : r;
      } finally {
        mutexUnlock(k, dev.mutex);
      }
    }
    default: {
      yield* mutexLock(k, dev.mutex);
      try {
        let r = yield* vhostDevIoctl(k, dev, cmd, argp);
        if (!r.ok && r.errno === Errno.ENOIOCTLCMD) r = yield* vhostVringIoctl(k, dev, cmd, argp);
        else yield* vhostDevFlush(k, dev);
        return r;
      } finally {
        mutexUnlock(k, dev.mutex);
      }
    }
  }
}

/** models vhost_net_release(): runs in the task that drops the last reference. */
function* vhostNetRelease(k: Kernel, f: File): KGen<void> {
  const net = nets.get(f)!;
  const dev = net.dev;
  const socks = vhostNetStop(net);
  yield* vhostDevFlush(k, dev);
  yield* vhostDevStop(k, dev);
  yield* vhostDevCleanup(k, dev);
  for (const s of socks) yield* fput(k, s);
  yield* vhostDevFlush(k, dev);
  dev.released = true;
  if (k.trace.enabled) k.emit('vhost_release', `dev=${dev.name}`);
}

export const VHOST_NET_OPS: FileOps = {
  name: 'vhost-net',
  ioctl: vhostNetIoctl,
  release: vhostNetRelease,
};

/** models vhost_net_open() */
export function* openVhostNet(k: Kernel, path: string, flags: number): KGen<Result<File>> {
  if (k.allocFails('vhost_net_open')) return err(Errno.ENOMEM);
  const f = new File(VHOST_NET_OPS, path, flags, null);
  const net = new VhostNet(k);
  f.priv = net;
  nets.set(f, net);
  return ok(f);
}
