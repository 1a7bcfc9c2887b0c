/**
 * A tun/tap queue as vhost-net's socket peer (drivers/net/tun.c, much reduced): frames the
 * guest transmits come out on the host side; frames the host injects are received by the
 * guest through vhost-net RX. The socket carries a 12-byte virtio-net header in front of each
 * frame (IFF_VNET_HDR with TUNSETVNETHDRSZ 12, as QEMU configures it).
 */
import { Errno, err, ok } from '../kernel/errno.js';
import { File, type FileOps } from '../kernel/files.js';
import type { Kernel } from '../kernel/kernel.js';
import type { KGen } from '../kernel/sched.js';

/** sizeof(struct virtio_net_hdr_mrg_rxbuf) */
export const VNET_HDR_LEN = 12;
/** TUNSETIFF = _IOW('T', 202, int) */
export const TUNSETIFF = 0x400454ca;

/** struct tun_file's socket, as far as vhost-net sees it. */
export class TapQueue {
  /** frames the guest sent (host side reads them), headers stripped */
  readonly sent: Uint8Array[] = [];
  /** frames waiting to be received by the guest (the tx_ring vhost peeks), header included */
  readonly pending: Uint8Array[] = [];
  /** sk_data_ready listeners (vhost-net RX polling) */
  readonly readers = new Set<() => void>();
  name = 'tap0';
  /** frames dropped because the guest had no RX buffers when they were discarded (model observation) */
  dropped = 0;

  /** The host sends a frame to the guest: queue it with a zeroed header, wake the RX poller. */
  hostSend(frame: Uint8Array): void {
    const b = new Uint8Array(VNET_HDR_LEN + frame.length);
    b.set(frame, VNET_HDR_LEN);
    this.pending.push(b);
    for (const r of [...this.readers]) r();
  }

  /** tun_sendmsg(): the guest transmitted header + frame. */
  sendmsg(data: Uint8Array): number {
    if (data.length < VNET_HDR_LEN) return -Errno.EINVAL;
    this.sent.push(data.slice(VNET_HDR_LEN));
    return data.length;
  }

  /** the length of the next frame vhost would receive (vhost_net_rx_peek_head_len), 0 if none */
  peekHeadLen(): number {
    return this.pending[0]?.length ?? 0;
  }

  /** tun_recvmsg() */
  recvmsg(): Uint8Array | null {
    return this.pending.shift() ?? null;
  }
}

export const TUN_OPS: FileOps = {
  name: 'tun',
  *ioctl(_k: Kernel, _f: File, cmd: number): KGen<ReturnType<typeof ok<number>> | ReturnType<typeof err>> {
    if (cmd === TUNSETIFF) return ok(0);
    return err(Errno.ENOTTY);
  },
};

/** open("/dev/net/tun"): a tap queue file. */
export function* openTun(_k: Kernel, path: string, flags: number): KGen<ReturnType<typeof ok<File>>> {
  return ok(new File(TUN_OPS, path, flags, new TapQueue()));
}

/** tun_get_socket()/tap_get_socket(): the socket of a tun/tap file, else null. */
export function tapSocketOf(f: File | null): TapQueue | null {
  return f && f.ops === TUN_OPS ? (f.priv as TapQueue) : null;
}
