/**
 * What QEMU does to bring up a vhost-net device, as a user program building block: the real
 * ioctl sequence with structs written into the process's own memory, a guest RAM window
 * registered with SET_MEM_TABLE, and one guest driver queue per virtqueue.
 */
import { Errno, err, ok, type Result } from '../kernel/errno.js';
import type { KGen } from '../kernel/sched.js';
import type { Sys } from '../kernel/syscalls.js';
import { GuestVirtqueue } from './guest.js';
import { VHOST_NET_VQ_RX, VHOST_NET_VQ_TX } from './net.js';
import { type TapQueue, tapSocketOf } from './tap.js';
import * as U from './uapi.js';
import { VIRTIO_F_VERSION_1 } from './vring.js';

/** A scratch page in the caller's address space for ioctl arguments. */
export class Scratch {
  private constructor(
    readonly sys: Sys,
    readonly addr: number,
  ) {}
  static *create(sys: Sys): KGen<Scratch> {
    const r = yield* sys.mmap(4096);
    if (!r.ok) throw new Error(`scratch mmap failed: ${r.errno}`);
    return new Scratch(sys, r.value);
  }
  /** Write `bytes` at the scratch address and return it (the ioctl argument). */
  put(bytes: Uint8Array): number {
    const w = this.sys.task.mm!.write(this.addr, bytes);
    if (!w.ok) throw new Error('scratch write failed');
    return this.addr;
  }
  u64(): bigint {
    const r = this.sys.task.mm!.view(this.addr, 8);
    if (!r.ok) throw new Error('scratch read failed');
    return r.value.getBigUint64(0, true);
  }
  u32(off = 0): number {
    const r = this.sys.task.mm!.view(this.addr + off, 4);
    if (!r.ok) throw new Error('scratch read failed');
    return r.value.getUint32(0, true);
  }
}

/** ioctl with a struct argument written to scratch memory. */
export function* ioctlWith(
  sys: Sys,
  scratch: Scratch,
  fd: number,
  cmd: number,
  arg?: Uint8Array,
): KGen<Result<number>> {
  return yield* sys.ioctl(fd, cmd, arg ? scratch.put(arg) : scratch.addr);
}

export interface VhostNetSetup {
  fd: number;
  tapFd: number;
  tap: TapQueue;
  rx: GuestVirtqueue<number>;
  tx: GuestVirtqueue<number>;
  kickFd: [number, number];
  callFd: [number, number];
  scratch: Scratch;
}

export interface VhostNetOptions {
  /** queue size (default 256) */
  num?: number;
  /** guest RAM window (default 4 MiB) */
  ramBytes?: number;
  /** features to ack (default VERSION_1) */
  features?: bigint;
  /** stop after SET_OWNER (for tests of the control path) */
  ownerOnly?: boolean;
}

/**
 * Open /dev/vhost-net and bring it up like QEMU: SET_OWNER, features, SET_MEM_TABLE, each
 * vring (NUM, BASE, ADDR, KICK, CALL), a tap and NET_SET_BACKEND for both queues.
 * Returns the first failing step's errno with its name.
 */
export function* setupVhostNet(
  sys: Sys,
  o: VhostNetOptions = {},
): KGen<Result<VhostNetSetup> & { step?: string }> {
  const scratch = yield* Scratch.create(sys);
  const fail = (step: string, r: { errno: Errno }) => ({ ...err(r.errno), step });
  const fdr = yield* sys.open('/dev/vhost-net');
  if (!fdr.ok) return fail('open /dev/vhost-net', fdr);
  const fd = fdr.value;
  const own = yield* sys.ioctl(fd, U.VHOST_SET_OWNER);
  if (!own.ok) return fail('VHOST_SET_OWNER', own);
  const num = o.num ?? 256;
  const features = o.features ?? U.bit(VIRTIO_F_VERSION_1);
  const feat = yield* ioctlWith(sys, scratch, fd, U.VHOST_SET_FEATURES, U.encodeU64(features));
  if (!feat.ok) return fail('VHOST_SET_FEATURES', feat);
  const ram = o.ramBytes ?? 4 * 1024 * 1024;
  const win = yield* sys.mmap(ram);
  if (!win.ok) return fail('mmap guest RAM', win);
  const mm = sys.task.mm!;
  const rx = new GuestVirtqueue<number>(mm, win.value, ram, num, { features });
  const tx = new GuestVirtqueue<number>(mm, win.value, ram, num, { features, allocFrom: ram / 2 });
  const mem = yield* ioctlWith(
    sys,
    scratch,
    fd,
    U.VHOST_SET_MEM_TABLE,
    U.encodeMemory([
      { guestPhysAddr: 0n, memorySize: BigInt(ram), userspaceAddr: BigInt(win.value), flagsPadding: 0n },
    ]),
  );
  if (!mem.ok) return fail('VHOST_SET_MEM_TABLE', mem);
  const kick: number[] = [];
  const call: number[] = [];
  for (const [index, q] of [
    [VHOST_NET_VQ_RX, rx],
    [VHOST_NET_VQ_TX, tx],
  ] as const) {
    let r = yield* ioctlWith(sys, scratch, fd, U.VHOST_SET_VRING_NUM, U.encodeVringState({ index, num }));
    if (!r.ok) return fail('VHOST_SET_VRING_NUM', r);
    r = yield* ioctlWith(sys, scratch, fd, U.VHOST_SET_VRING_BASE, U.encodeVringState({ index, num: 0 }));
    if (!r.ok) return fail('VHOST_SET_VRING_BASE', r);
    r = yield* ioctlWith(
      sys,
      scratch,
      fd,
      U.VHOST_SET_VRING_ADDR,
      U.encodeVringAddr({
        index,
        flags: 0,
        descUserAddr: BigInt(q.descUser),
        usedUserAddr: BigInt(q.usedUser),
        availUserAddr: BigInt(q.availUser),
        logGuestAddr: 0n,
      }),
    );
    if (!r.ok) return fail('VHOST_SET_VRING_ADDR', r);
    const kfd = yield* sys.eventfd(0);
    const cfd = yield* sys.eventfd(0);
    if (!kfd.ok || !cfd.ok) return fail('eventfd', { errno: Errno.EMFILE });
    kick.push(kfd.value);
    call.push(cfd.value);
    r = yield* ioctlWith(
      sys,
      scratch,
      fd,
      U.VHOST_SET_VRING_KICK,
      U.encodeVringFile({ index, fd: kfd.value }),
    );
    if (!r.ok) return fail('VHOST_SET_VRING_KICK', r);
    r = yield* ioctlWith(
      sys,
      scratch,
      fd,
      U.VHOST_SET_VRING_CALL,
      U.encodeVringFile({ index, fd: cfd.value }),
    );
    if (!r.ok) return fail('VHOST_SET_VRING_CALL', r);
  }
  const tfd = yield* sys.open('/dev/net/tun');
  if (!tfd.ok) return fail('open /dev/net/tun', tfd);
  for (const index of [VHOST_NET_VQ_RX, VHOST_NET_VQ_TX]) {
    const r = yield* ioctlWith(
      sys,
      scratch,
      fd,
      U.VHOST_NET_SET_BACKEND,
      U.encodeVringFile({ index, fd: tfd.value }),
    );
    if (!r.ok) return fail('VHOST_NET_SET_BACKEND', r);
  }
  const tap = tapSocketOf(sys.task.files!.get(tfd.value))!;
  return ok({
    fd,
    tapFd: tfd.value,
    tap,
    rx,
    tx,
    kickFd: [kick[0]!, kick[1]!],
    callFd: [call[0]!, call[1]!],
    scratch,
  });
}

/** Kick a queue: write 1 to its kick eventfd (what the guest's notify does through KVM's ioeventfd). */
export function* kick(sys: Sys, kickFd: number): KGen<void> {
  const r = yield* sys.write(kickFd, U.encodeU64(1n));
  if (!r.ok) throw new Error(`kick failed: ${r.errno}`);
}
