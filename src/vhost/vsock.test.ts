/**
 * /dev/vhost-vsock (vsock.ts): the CID rules of VHOST_VSOCK_SET_GUEST_CID, SET_RUNNING and the
 * feature ioctls, packets both ways between a guest driver and the host, and the one device
 * that queues vhost work before VHOST_SET_OWNER: "not queued" without a worker on every era,
 * the 6.4-rc1 crash when the send lands while SET_OWNER creates the worker (profile bug
 * "vsock-early-queue", fixed by a284f09effea), and a killed worker on 6.10+ (§10 items 31, 34).
 */
import { describe, expect, it } from 'vitest';
import type { ChoiceKind, Choices } from '../kernel/choices.js';
import { Errno, type Result } from '../kernel/errno.js';
import { checkInvariants } from '../kernel/invariants.js';
import type { Kernel } from '../kernel/kernel.js';
import type { KGen } from '../kernel/sched.js';
import { kernelSigInfo, sendSignal } from '../kernel/signal.js';
import { SIGKILL } from '../kernel/signal-consts.js';
import type { Sys } from '../kernel/syscalls.js';
import type { Task } from '../kernel/task.js';
import { bootKernel, settle, spawn, tasksNamed } from '../kernel/testing.js';
import { PROFILES } from '../profiles/eras.js';
import { GuestVirtqueue } from './guest.js';
import { registerVhost } from './index.js';
import { ioctlWith, kick, Scratch } from './qemu.js';
import * as U from './uapi.js';
import {
  decodeVirtioVsockHdr,
  encodeVirtioVsockHdr,
  SIZEOF_VIRTIO_VSOCK_HDR,
  VHOST_VSOCK_FEATURES,
  type VhostVsock,
  VIRTIO_VSOCK_F_SEQPACKET,
  VIRTIO_VSOCK_SEQ_EOM,
  VSOCK_VQ_RX,
  VSOCK_VQ_TX,
  vhostTransportSendPkt,
  vhostVsockGet,
  vhostVsockOf,
  vsockHdr,
  vsockSetG2hLocalCid,
} from './vsock.js';

const CID = 3;

function boot(profile: string, choices?: Choices): Kernel {
  const k = bootKernel(choices ? { profile, choices } : { profile });
  registerVhost(k);
  return k;
}

function errnoOf(r: Result<unknown>): number {
  return r.ok ? 0 : r.errno;
}

function devOf(sys: Sys, fd: number): VhostVsock {
  return vhostVsockOf(sys.task.files!.get(fd))!;
}

/** Run `program` as a QEMU-like process to completion (it exits, releasing its fds). */
function runQemu(k: Kernel, program: (sys: Sys, self: Task) => KGen<void>): Task {
  let self: Task | null = null;
  self = spawn(k, 'qemu', function* (sys: Sys) {
    yield* program(sys, self!);
    return 0;
  });
  settle(k);
  return self;
}

function* openVsock(sys: Sys): KGen<number> {
  const r = yield* sys.open('/dev/vhost-vsock');
  if (!r.ok) throw new Error(`open: errno ${r.errno}`);
  return r.value;
}

interface VsockRings {
  rx: GuestVirtqueue<number>;
  tx: GuestVirtqueue<number>;
  kickFd: [number, number];
  callFd: [number, number];
}

/**
 * What QEMU does after SET_OWNER: features, one guest RAM region, the RX and TX vrings (NUM,
 * BASE, ADDR, KICK, CALL). SET_RUNNING is left to the caller. Throws on failure.
 */
function* setupRings(sys: Sys, scratch: Scratch, fd: number, num = 16): KGen<VsockRings> {
  const must = (what: string, r: Result<unknown>) => {
    if (!r.ok) throw new Error(`${what}: errno ${r.errno}`);
  };
  must('SET_FEATURES', yield* ioctlWith(sys, scratch, fd, U.VHOST_SET_FEATURES, U.encodeU64(0n)));
  const ram = 1 << 20;
  const win = yield* sys.mmap(ram);
  must('mmap', win);
  const hva = win.ok ? win.value : 0;
  const mm = sys.task.mm!;
  const rx = new GuestVirtqueue<number>(mm, hva, ram, num);
  const tx = new GuestVirtqueue<number>(mm, hva, ram, num, { allocFrom: ram / 2 });
  must(
    'SET_MEM_TABLE',
    yield* ioctlWith(
      sys,
      scratch,
      fd,
      U.VHOST_SET_MEM_TABLE,
      U.encodeMemory([
        { guestPhysAddr: 0n, memorySize: BigInt(ram), userspaceAddr: BigInt(hva), flagsPadding: 0n },
      ]),
    ),
  );
  const kickFd: number[] = [];
  const callFd: number[] = [];
  for (const [index, q] of [
    [VSOCK_VQ_RX, rx],
    [VSOCK_VQ_TX, tx],
  ] as const) {
    must(
      'NUM',
      yield* ioctlWith(sys, scratch, fd, U.VHOST_SET_VRING_NUM, U.encodeVringState({ index, num })),
    );
    must(
      'BASE',
      yield* ioctlWith(sys, scratch, fd, U.VHOST_SET_VRING_BASE, U.encodeVringState({ index, num: 0 })),
    );
    must(
      'ADDR',
      yield* ioctlWith(
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
      ),
    );
    const kfd = yield* sys.eventfd(0);
    const cfd = yield* sys.eventfd(0);
    if (!kfd.ok || !cfd.ok) throw new Error('eventfd');
    kickFd.push(kfd.value);
    callFd.push(cfd.value);
    must(
      'KICK',
      yield* ioctlWith(sys, scratch, fd, U.VHOST_SET_VRING_KICK, U.encodeVringFile({ index, fd: kfd.value })),
    );
    must(
      'CALL',
      yield* ioctlWith(sys, scratch, fd, U.VHOST_SET_VRING_CALL, U.encodeVringFile({ index, fd: cfd.value })),
    );
  }
  return { rx, tx, kickFd: [kickFd[0]!, kickFd[1]!], callFd: [callFd[0]!, callFd[1]!] };
}

/** Post `count` RX buffers of `size` bytes; returns their guest addresses by token. */
function postRx(q: GuestVirtqueue<number>, count: number, size: number): Map<number, number> {
  const bufs = new Map<number, number>();
  for (let i = 0; i < count; i++) {
    const g = q.allocBuffer(size);
    bufs.set(i, g);
    expect(q.addBuf([], [{ gpa: g, len: size }], i).ok).toBe(true);
  }
  q.publish();
  return bufs;
}

const setRunning = (sys: Sys, scratch: Scratch, fd: number, v: number) =>
  ioctlWith(sys, scratch, fd, U.VHOST_VSOCK_SET_RUNNING, U.encodeU32(v));
const setCid = (sys: Sys, scratch: Scratch, fd: number, cid: bigint) =>
  ioctlWith(sys, scratch, fd, U.VHOST_VSOCK_SET_GUEST_CID, U.encodeU64(cid));

function bytes(len: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: len }, (_, i) => (i * 31 + seed) & 0xff);
}

// ------------------------------------------------------------------ control path

describe('vhost-vsock control path', () => {
  it('SET_GUEST_CID: ≤ 2, U32_MAX and 64-bit CIDs → EINVAL; a CID in use (another device, or the host’s own guest→host CID) → EADDRINUSE; no owner needed', () => {
    const k = boot('linux-6.12');
    vsockSetG2hLocalCid(k, 7);
    runQemu(k, function* (sys) {
      const scratch = yield* Scratch.create(sys);
      const a = yield* openVsock(sys);
      const b = yield* openVsock(sys);
      for (const cid of [0n, 1n, 2n, 0xffffffffn, 0x100000003n])
        expect(errnoOf(yield* setCid(sys, scratch, a, cid))).toBe(Errno.EINVAL);
      expect(errnoOf(yield* setCid(sys, scratch, a, 7n))).toBe(Errno.EADDRINUSE);
      expect(errnoOf(yield* setCid(sys, scratch, a, 3n))).toBe(0);
      expect(vhostVsockGet(k, 3)).toBe(devOf(sys, a));
      expect(errnoOf(yield* setCid(sys, scratch, b, 3n))).toBe(Errno.EADDRINUSE);
      // the same device may set its own CID again, or move to another one
      expect(errnoOf(yield* setCid(sys, scratch, a, 3n))).toBe(0);
      expect(errnoOf(yield* setCid(sys, scratch, a, 4n))).toBe(0);
      expect(vhostVsockGet(k, 3)).toBe(null);
      expect(errnoOf(yield* setCid(sys, scratch, b, 3n))).toBe(0);
      expect(errnoOf(yield* sys.ioctl(a, U.VHOST_VSOCK_SET_GUEST_CID, 0))).toBe(Errno.EFAULT);
      // the host sends to a CID nobody has: ENODEV
      expect(errnoOf(vhostTransportSendPkt(k, vsockHdr({ srcCid: 2n, dstCid: 9n })))).toBe(Errno.ENODEV);
    });
    // release unhashed both
    expect(vhostVsockGet(k, 3)).toBe(null);
    expect(vhostVsockGet(k, 4)).toBe(null);
    checkInvariants(k);
  });

  it('SET_RUNNING: EPERM before SET_OWNER and for a non-owner, EFAULT without rings, any non-zero value starts and 0 stops; feature ioctls', () => {
    const k = boot('linux-6.12');
    runQemu(k, function* (sys) {
      const scratch = yield* Scratch.create(sys);
      const fd = yield* openVsock(sys);
      const vs = devOf(sys, fd);
      expect(errnoOf(yield* setRunning(sys, scratch, fd, 1))).toBe(Errno.EPERM);
      expect(errnoOf(yield* setRunning(sys, scratch, fd, 0))).toBe(Errno.EPERM);
      expect((yield* ioctlWith(sys, scratch, fd, U.VHOST_GET_FEATURES)).ok).toBe(true);
      expect(scratch.u64()).toBe(VHOST_VSOCK_FEATURES);
      expect(errnoOf(yield* ioctlWith(sys, scratch, fd, U.VHOST_SET_FEATURES, U.encodeU64(U.bit(2))))).toBe(
        Errno.EOPNOTSUPP,
      );
      expect(
        errnoOf(yield* ioctlWith(sys, scratch, fd, U.VHOST_SET_BACKEND_FEATURES, U.encodeU64(U.bit(2)))),
      ).toBe(Errno.EOPNOTSUPP);
      expect(
        (yield* ioctlWith(
          sys,
          scratch,
          fd,
          U.VHOST_SET_FEATURES,
          U.encodeU64(U.bit(VIRTIO_VSOCK_F_SEQPACKET)),
        )).ok,
      ).toBe(true);
      expect(vs.seqpacketAllow).toBe(true);
      expect((yield* sys.ioctl(fd, U.VHOST_SET_OWNER)).ok).toBe(true);
      expect(errnoOf(yield* sys.ioctl(fd, U.VHOST_SET_OWNER))).toBe(Errno.EBUSY);
      // rings not set: vhost_vq_init_access cannot write used->flags at address 0
      expect(errnoOf(yield* setRunning(sys, scratch, fd, 1))).toBe(Errno.EFAULT);
      expect(vs.dev.vqs.every((vq) => vq.privateData === null)).toBe(true);
      yield* setupRings(sys, scratch, fd);
      expect(errnoOf(yield* setRunning(sys, scratch, fd, 2))).toBe(0);
      expect(vs.dev.vqs.every((vq) => vq.privateData === vs)).toBe(true);
      // a running vq's ring size cannot change
      expect(
        errnoOf(
          yield* ioctlWith(sys, scratch, fd, U.VHOST_SET_VRING_NUM, U.encodeVringState({ index: 0, num: 8 })),
        ),
      ).toBe(Errno.EBUSY);
      const child = yield* sys.fork(function* (cs: Sys) {
        cs.task.mm!.write(scratch.addr, U.encodeU32(0));
        expect(errnoOf(yield* cs.ioctl(fd, U.VHOST_VSOCK_SET_RUNNING, scratch.addr))).toBe(Errno.EPERM);
        return 0;
      });
      yield* sys.wait4(child.ok ? child.value : 0);
      expect(errnoOf(yield* setRunning(sys, scratch, fd, 0))).toBe(0);
      expect(vs.dev.vqs.every((vq) => vq.privateData === null)).toBe(true);
    });
    expect(k.warnings).toEqual([]);
    checkInvariants(k);
  });
});

// ------------------------------------------------------------------ data path

describe('vhost-vsock packets', () => {
  it.each(['linux-5.15', 'linux-6.4', 'linux-6.12', 'linux-6.17-kthread'])(
    '%s: host→guest (split over two RX buffers) and guest→host packets move through the worker',
    (profile) => {
      const k = boot(profile);
      runQemu(k, function* (sys) {
        const scratch = yield* Scratch.create(sys);
        const fd = yield* openVsock(sys);
        const vs = devOf(sys, fd);
        expect((yield* setCid(sys, scratch, fd, BigInt(CID))).ok).toBe(true);
        expect((yield* sys.ioctl(fd, U.VHOST_SET_OWNER)).ok).toBe(true);
        const r = yield* setupRings(sys, scratch, fd);
        expect((yield* setRunning(sys, scratch, fd, 1)).ok).toBe(true);
        const bufs = postRx(r.rx, 4, SIZEOF_VIRTIO_VSOCK_HDR + 100);
        // a 150-byte SEQPACKET message with EOM: 100 bytes, then 50 with EOM restored
        const payload = bytes(150, 1);
        const sent = vhostTransportSendPkt(
          k,
          vsockHdr({ srcCid: 2n, dstCid: BigInt(CID), type: 2, flags: VIRTIO_VSOCK_SEQ_EOM }),
          payload,
        );
        expect(sent).toEqual({ ok: true, value: SIZEOF_VIRTIO_VSOCK_HDR + 150 });
        expect((yield* sys.read(r.callFd[VSOCK_VQ_RX], 8)).ok).toBe(true);
        const used = r.rx.getUsed();
        expect(used.map((u) => u.len)).toEqual([SIZEOF_VIRTIO_VSOCK_HDR + 100, SIZEOF_VIRTIO_VSOCK_HDR + 50]);
        const pieces = used.map((u) => {
          const b = r.rx.readBytes(bufs.get(u.token)!, SIZEOF_VIRTIO_VSOCK_HDR + 100);
          const h = decodeVirtioVsockHdr(b);
          return { h, data: b.slice(SIZEOF_VIRTIO_VSOCK_HDR, SIZEOF_VIRTIO_VSOCK_HDR + h.len) };
        });
        expect(pieces.map((p) => [p.h.len, p.h.flags, p.h.dstCid])).toEqual([
          [100, 0, BigInt(CID)],
          [50, VIRTIO_VSOCK_SEQ_EOM, BigInt(CID)],
        ]);
        expect(new Uint8Array([...pieces[0]!.data, ...pieces[1]!.data])).toEqual(payload);
        // guest → host: only packets from the guest's CID to the host CID reach the socket layer
        for (const [i, src] of [BigInt(CID), 9n].entries()) {
          const msg = bytes(20, 7 + i);
          const g = r.tx.allocBuffer(SIZEOF_VIRTIO_VSOCK_HDR + 20);
          r.tx.writeBytes(g, encodeVirtioVsockHdr(vsockHdr({ srcCid: src, dstCid: 2n, len: 20 })));
          r.tx.writeBytes(g + SIZEOF_VIRTIO_VSOCK_HDR, msg);
          expect(r.tx.addBuf([{ gpa: g, len: SIZEOF_VIRTIO_VSOCK_HDR + 20 }], [], 100 + i).ok).toBe(true);
        }
        r.tx.publish();
        yield* kick(sys, r.kickFd[VSOCK_VQ_TX]);
        expect((yield* sys.read(r.callFd[VSOCK_VQ_TX], 8)).ok).toBe(true);
        expect(r.tx.getUsed().map((u) => [u.token, u.len])).toEqual([
          [100, 0],
          [101, 0],
        ]);
        expect(vs.received).toHaveLength(1);
        expect(vs.received[0]!.payload).toEqual(bytes(20, 7));
        expect(vs.notQueued).toBe(0);
      });
      expect(tasksNamed(k, /^vhost-/)).toHaveLength(0);
      expect(k.warnings).toEqual([]);
      checkInvariants(k);
    },
  );
});

// ------------------------------------------------------------------ queueing before SET_OWNER

/**
 * A scheduler for the race test: round-robin, except inside 6.4-rc1's SET_OWNER window, where
 * it runs the host sender once and then the owner again (one send lands in the window).
 */
class WindowChooser implements Choices {
  k: Kernel | null = null;
  vsock: VhostVsock | null = null;
  private rr = 0;
  private fired = false;
  choose(kind: ChoiceKind, n: number): number {
    if (kind !== 'sched') return 0;
    if (this.k && this.vsock?.dev.workerWithoutTask) {
      const i = this.k.runqueue.findIndex((t) => t.comm === (this.fired ? 'qemu' : 'host-app'));
      if (i >= 0 && i < n) {
        this.fired = true;
        return i;
      }
    }
    return this.rr++ % n;
  }
}

describe('vhost-vsock queues work before VHOST_SET_OWNER', () => {
  it.each(PROFILES.map((p) => p.name))(
    '%s: a send before SET_OWNER is not queued (no worker) and harmless; SET_RUNNING sends it',
    (profile) => {
      const k = boot(profile);
      runQemu(k, function* (sys) {
        const scratch = yield* Scratch.create(sys);
        const fd = yield* openVsock(sys);
        const vs = devOf(sys, fd);
        expect((yield* setCid(sys, scratch, fd, BigInt(CID))).ok).toBe(true);
        const sent = vhostTransportSendPkt(k, vsockHdr({ srcCid: 2n, dstCid: BigInt(CID) }), bytes(10, 3));
        expect(sent.ok).toBe(true);
        expect(vs.notQueued).toBe(1);
        expect(vs.sendPktQueue).toHaveLength(1);
        expect(vs.dev.workers.size).toBe(0);
        expect((yield* sys.ioctl(fd, U.VHOST_SET_OWNER)).ok).toBe(true);
        const r = yield* setupRings(sys, scratch, fd);
        const bufs = postRx(r.rx, 2, SIZEOF_VIRTIO_VSOCK_HDR + 64);
        expect((yield* setRunning(sys, scratch, fd, 1)).ok).toBe(true);
        expect((yield* sys.read(r.callFd[VSOCK_VQ_RX], 8)).ok).toBe(true);
        const used = r.rx.getUsed();
        expect(used).toHaveLength(1);
        const b = r.rx.readBytes(bufs.get(used[0]!.token)!, SIZEOF_VIRTIO_VSOCK_HDR + 10);
        expect(b.slice(SIZEOF_VIRTIO_VSOCK_HDR)).toEqual(bytes(10, 3));
        expect(vs.sendPktQueue).toHaveLength(0);
      });
      expect(k.warnings).toEqual([]);
      expect(tasksNamed(k, /^vhost-/)).toHaveLength(0);
      checkInvariants(k);
    },
  );

  it.each([
    ['linux-6.4-rc1', 1],
    ['linux-6.4', 0],
    ['linux-6.12', 0],
  ] as const)('%s: a send while VHOST_SET_OWNER creates the worker → %i kernel BUG', (profile, bugs) => {
    const chooser = new WindowChooser();
    const k = boot(profile, chooser);
    chooser.k = k;
    let go = false;
    let ownerDone = false;
    let sends = 0;
    spawn(k, 'host-app', function* (sys: Sys) {
      while (!ownerDone) {
        if (go) {
          expect(
            vhostTransportSendPkt(k, vsockHdr({ srcCid: 2n, dstCid: BigInt(CID) }), bytes(8, sends)).ok,
          ).toBe(true);
          sends++;
        }
        yield* sys.compute(1_000);
      }
      return 0;
    });
    runQemu(k, function* (sys) {
      const scratch = yield* Scratch.create(sys);
      const fd = yield* openVsock(sys);
      chooser.vsock = devOf(sys, fd);
      expect((yield* setCid(sys, scratch, fd, BigInt(CID))).ok).toBe(true);
      go = true;
      while (sends === 0) yield* sys.compute(1_000);
      expect((yield* sys.ioctl(fd, U.VHOST_SET_OWNER)).ok).toBe(true);
      ownerDone = true;
      const vs = devOf(sys, fd);
      const r = yield* setupRings(sys, scratch, fd, 64);
      expect(sends).toBeLessThan(64);
      postRx(r.rx, 64, SIZEOF_VIRTIO_VSOCK_HDR + 8);
      expect((yield* setRunning(sys, scratch, fd, 1)).ok).toBe(true);
      // every packet queued so far reaches the guest, including the one whose work was dropped
      let got = 0;
      while (vs.sendPktQueue.length > 0 || got < sends) {
        expect((yield* sys.read(r.callFd[VSOCK_VQ_RX], 8)).ok).toBe(true);
        got += r.rx.getUsed().length;
      }
      expect(got).toBe(sends);
    });
    const bug = k.warnings.filter((w) => w.where === 'vhost_work_queue');
    expect(bug).toHaveLength(bugs);
    if (bugs) expect(bug[0]!.message).toMatch(/NULL pointer dereference.*a284f09effea/);
    expect(k.warnings).toHaveLength(bugs);
    checkInvariants(k);
  });
});

// ------------------------------------------------------------------ killed worker (§10 items 31, 34)

describe('vhost-vsock after SIGKILL of the owner while another process holds the device', () => {
  it.each([
    ['linux-6.5', true],
    ['linux-6.12', false],
  ] as const)('%s: the worker keeps sending: %s', (profile, lingers) => {
    const k = boot(profile);
    let rings: VsockRings | null = null;
    let vs: VhostVsock | null = null;
    let child: Task | null = null;
    let ready = false;
    const qemu = spawn(k, 'qemu', function* (sys: Sys) {
      const scratch = yield* Scratch.create(sys);
      const fd = yield* openVsock(sys);
      vs = devOf(sys, fd);
      yield* setCid(sys, scratch, fd, BigInt(CID));
      yield* sys.ioctl(fd, U.VHOST_SET_OWNER);
      rings = yield* setupRings(sys, scratch, fd);
      postRx(rings.rx, 4, SIZEOF_VIRTIO_VSOCK_HDR + 8);
      yield* setRunning(sys, scratch, fd, 1);
      // a child inherits the fd and keeps the device open
      const c = yield* sys.fork(function* (cs: Sys) {
        yield* cs.pause();
        return 0;
      });
      child = c.ok ? (k.findTaskByVpid(c.value, sys.task.activePidNs()!) ?? null) : null;
      ready = true;
      yield* sys.pause();
      return 0;
    });
    k.run({ until: () => ready });
    settle(k);
    const worker = vs!.dev.workers.get(0)!.task!;
    expect(worker.tgid).toBe(qemu.tgid);
    sendSignal(k, SIGKILL, kernelSigInfo(SIGKILL), qemu, true);
    settle(k);
    expect(qemu.alive).toBe(false);
    expect(worker.alive).toBe(lingers);
    expect(vs!.dev.released).toBe(false);
    const notQueued = vs!.notQueued;
    spawn(k, 'host-app', function* () {
      expect(vhostTransportSendPkt(k, vsockHdr({ srcCid: 2n, dstCid: BigInt(CID) }), bytes(8, 1)).ok).toBe(
        true,
      );
      return 0;
    });
    settle(k);
    // 6.10+: vhost_worker_killed() detached the vqs, so the send work is "not queued"
    expect(vs!.notQueued - notQueued).toBe(lingers ? 0 : 1);
    expect(rings!.rx.usedIdx()).toBe(lingers ? 1 : 0);
    sendSignal(k, SIGKILL, kernelSigInfo(SIGKILL), child!, true);
    settle(k);
    expect(vs!.dev.released).toBe(true);
    expect(tasksNamed(k, /^vhost-/)).toHaveLength(0);
    checkInvariants(k);
  });
});
