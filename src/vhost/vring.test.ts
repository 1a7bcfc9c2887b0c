/**
 * The split virtqueue between a guest driver (guest.ts) and vhost (vring.ts), in bytes of one
 * address space (kernel-spec §7.4, §7.5): round trips, index wrap, every consumer error with its
 * errno, the call/kick suppression rules and the event index.
 */
import { describe, expect, it } from 'vitest';
import { Errno, InvariantError, type Result } from '../kernel/errno.js';
import { MM } from '../kernel/mm.js';
import { GuestVirtqueue } from './guest.js';
import {
  featureBit,
  VIRTIO_F_NOTIFY_ON_EMPTY,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VRING_USED_F_NO_NOTIFY,
  vhostAddUsed,
  vhostAddUsedN,
  vhostDisableNotify,
  vhostDiscardVqDesc,
  vhostEnableNotify,
  vhostGetVqDesc,
  vhostNotify,
  vhostVqAvailEmpty,
  vhostVqInitAccess,
  vringNeedEvent,
  vringSize,
} from './vring.js';

function unwrap<T>(r: Result<T>): T {
  if (!r.ok) throw new Error(`unexpected errno ${r.errno}`);
  return r.value;
}

const EVENT_IDX = featureBit(VIRTIO_RING_F_EVENT_IDX);
const NOTIFY_ON_EMPTY = featureBit(VIRTIO_F_NOTIFY_ON_EMPTY);

/** A guest queue in a fresh window and the vhost ring pointing at it, kicks already disabled. */
function setup(num = 8, features = 0n, size = 1 << 20, initialIdx = 0) {
  const mm = new MM(1);
  const guest = unwrap(GuestVirtqueue.inNewWindow<string>(mm, size, num, { features, initialIdx }));
  const vq = guest.deviceVring({ ackedFeatures: features });
  // VHOST_SET_VRING_BASE(initialIdx)
  vq.lastAvailIdx = vq.availIdx = vq.lastUsedIdx = initialIdx;
  unwrap(vhostDisableNotify(mm, vq));
  return { mm, guest, vq };
}

function errnoOf(r: Result<unknown>): number | undefined {
  return r.ok ? undefined : r.errno;
}

describe('layout helpers', () => {
  it('vring_size(256, 4096) is 10246 bytes', () => {
    expect(vringSize(256, 4096)).toBe(10246);
    // 16*1 + 2*4 = 24 → 4096, + 6 + 8
    expect(vringSize(1, 4096)).toBe(4110);
  });

  it('vring_need_event works in u16 arithmetic', () => {
    expect(vringNeedEvent(0, 1, 0)).toBe(true);
    expect(vringNeedEvent(1, 1, 0)).toBe(false);
    expect(vringNeedEvent(2, 5, 2)).toBe(true);
    expect(vringNeedEvent(5, 5, 2)).toBe(false);
    expect(vringNeedEvent(65535, 1, 65534)).toBe(true);
    expect(vringNeedEvent(65534, 0, 65535)).toBe(false);
    expect(vringNeedEvent(3, 3, 3)).toBe(false);
  });
});

describe('buffers round-trip', () => {
  it('three chains come out in order with their iovecs and go back with their lengths', () => {
    const { mm, guest, vq } = setup(8);
    const a = guest.allocBuffer(100);
    const b = guest.allocBuffer(200);
    const c = guest.allocBuffer(300);
    const d = guest.allocBuffer(64);
    guest.writeBytes(a, new TextEncoder().encode('hello'));
    const h1 = unwrap(guest.addBuf([{ gpa: a, len: 100 }], [], 'tx'));
    const h2 = unwrap(guest.addBuf([], [{ gpa: b, len: 200 }], 'rx'));
    const h3 = unwrap(guest.addBuf([{ gpa: d, len: 64 }], [{ gpa: c, len: 300 }], 'req'));
    expect([h1, h2, h3]).toEqual([0, 1, 2]);
    expect(guest.numFree).toBe(4);

    // nothing published yet: vhost sees an empty ring
    expect(unwrap(vhostGetVqDesc(mm, vq)).head).toBe(8);
    expect(guest.publish()).toBe(false); // kicks are disabled (NO_NOTIFY)

    const r1 = unwrap(vhostGetVqDesc(mm, vq));
    expect(r1).toEqual({ head: h1, out: [{ addr: guest.hva + a, len: 100 }], in: [] });
    expect(new TextDecoder().decode(unwrap(mm.read(r1.out[0]!.addr, 5)))).toBe('hello');
    const r2 = unwrap(vhostGetVqDesc(mm, vq));
    expect(r2).toEqual({ head: h2, out: [], in: [{ addr: guest.hva + b, len: 200 }] });
    const r3 = unwrap(vhostGetVqDesc(mm, vq));
    expect(r3).toEqual({
      head: h3,
      out: [{ addr: guest.hva + d, len: 64 }],
      in: [{ addr: guest.hva + c, len: 300 }],
    });
    expect(unwrap(vhostGetVqDesc(mm, vq)).head).toBe(vq.num);
    expect(vq.lastAvailIdx).toBe(3);

    // the device writes into the rx buffer through the iovec, then completes out of order
    unwrap(mm.write(r2.in[0]!.addr, new Uint8Array([1, 2, 3])));
    unwrap(vhostAddUsed(mm, vq, h2, 3));
    unwrap(
      vhostAddUsedN(mm, vq, [
        { id: h1, len: 0 },
        { id: h3, len: 17 },
      ]),
    );
    expect(guest.usedIdx()).toBe(3);
    expect(guest.getUsed()).toEqual([
      { token: 'rx', len: 3 },
      { token: 'tx', len: 0 },
      { token: 'req', len: 17 },
    ]);
    expect(Array.from(guest.readBytes(b, 3))).toEqual([1, 2, 3]);
    expect(guest.numFree).toBe(8);
    expect(guest.getUsed()).toEqual([]);
  });

  it('an indirect chain is followed even without VIRTIO_RING_F_INDIRECT_DESC, in table order', () => {
    const { mm, guest, vq } = setup(4);
    expect(vq.ackedFeatures).toBe(0n);
    const x = guest.allocBuffer(10);
    const y = guest.allocBuffer(20);
    const z = guest.allocBuffer(30);
    const head = unwrap(
      guest.addBuf(
        [
          { gpa: x, len: 10 },
          { gpa: y, len: 20 },
        ],
        [{ gpa: z, len: 30 }],
        'ind',
        { indirect: true },
      ),
    );
    expect(guest.numFree).toBe(3);
    expect(guest.readDesc(head).flags).toBe(VIRTQ_DESC_F_INDIRECT);
    guest.publish();
    const r = unwrap(vhostGetVqDesc(mm, vq));
    expect(r.head).toBe(head);
    expect(r.out).toEqual([
      { addr: guest.hva + x, len: 10 },
      { addr: guest.hva + y, len: 20 },
    ]);
    expect(r.in).toEqual([{ addr: guest.hva + z, len: 30 }]);

    // get_indirect reads entries in order: the next field is not followed
    const t = guest.writeDescTable([
      { addr: x, len: 10, flags: VIRTQ_DESC_F_NEXT, next: 999 },
      { addr: z, len: 30, flags: VIRTQ_DESC_F_WRITE, next: 7 },
    ]);
    unwrap(guest.addBuf([{ gpa: x, len: 1 }], [], 'raw'));
    guest.pokeDesc(1, { addr: t, len: 32, flags: VIRTQ_DESC_F_INDIRECT, next: 0 });
    guest.publish();
    const r2 = unwrap(vhostGetVqDesc(mm, vq));
    expect(r2.out).toEqual([{ addr: guest.hva + x, len: 10 }]);
    expect(r2.in).toEqual([{ addr: guest.hva + z, len: 30 }]);
  });

  it('a buffer crossing two memory regions yields two iovecs', () => {
    const { mm, guest, vq } = setup(4);
    const split = 0x10000;
    vq.regions = [
      { guestPhysAddr: 0, size: split, userspaceAddr: guest.hva },
      { guestPhysAddr: split, size: guest.size - split, userspaceAddr: guest.hva + split },
    ];
    unwrap(guest.addBuf([{ gpa: split - 8, len: 24 }], [], 'x'));
    guest.publish();
    const r = unwrap(vhostGetVqDesc(mm, vq));
    expect(r.out).toEqual([
      { addr: guest.hva + split - 8, len: 8 },
      { addr: guest.hva + split, len: 16 },
    ]);
    expect(errnoOf(vq.translate(split - 8, 24, 1))).toBe(Errno.ENOBUFS);
  });

  it('vhost_discard_vq_desc gives a fetched chain back', () => {
    const { mm, guest, vq } = setup(4);
    unwrap(guest.addBuf([{ gpa: guest.allocBuffer(8), len: 8 }], [], 'a'));
    guest.publish();
    const r = unwrap(vhostGetVqDesc(mm, vq));
    expect(vq.lastAvailIdx).toBe(1);
    vhostDiscardVqDesc(vq, 1);
    expect(vq.lastAvailIdx).toBe(0);
    expect(unwrap(vhostGetVqDesc(mm, vq)).head).toBe(r.head);
  });

  it('vhost_get_vq_desc BUG()s when guest kicks were not disabled', () => {
    const { mm, guest, vq } = setup(4);
    unwrap(vhostEnableNotify(mm, vq));
    unwrap(guest.addBuf([{ gpa: 0, len: 8 }], [], 'a'));
    guest.publish();
    expect(() => vhostGetVqDesc(mm, vq)).toThrow(InvariantError);
  });

  it('the guest gets ENOSPC when descriptors run out, and BAD_RING on a bogus used id', () => {
    const { mm, guest, vq } = setup(2);
    unwrap(guest.addBuf([{ gpa: 0, len: 1 }], [], 'a'));
    expect(errnoOf(guest.addBuf([{ gpa: 0, len: 1 }], [{ gpa: 0, len: 1 }], 'b'))).toBe(Errno.ENOSPC);
    unwrap(vhostAddUsed(mm, vq, 1, 0)); // head 1 was never made available
    expect(guest.getUsed()).toEqual([]);
    expect(guest.broken).toBe(true);
    expect(errnoOf(guest.addBuf([{ gpa: 0, len: 1 }], [], 'c'))).toBe(Errno.EIO);
  });
});

describe('indices', () => {
  it.each([
    ['from 0', 0],
    ['resumed near the top', 65536 - 37],
  ])('wrap past 65535 with ring slots taken modulo num (%s)', (_, base) => {
    const num = 4;
    const { mm, guest, vq } = setup(num, 0n, 1 << 20, base);
    const buf = guest.allocBuffer(16);
    let total = base;
    let sawWrap = false;
    while (total < 65536 + 40) {
      const batch = (total % 3) + 1; // vary the batch so the used ring wraps mid-batch
      const heads: number[] = [];
      for (let k = 0; k < batch; k++)
        heads.push(unwrap(guest.addBuf([{ gpa: buf, len: 16 }], [], `b${total + k}`)));
      guest.publish();
      const got: number[] = [];
      for (;;) {
        const r = unwrap(vhostGetVqDesc(mm, vq));
        if (r.head === num) break;
        got.push(r.head);
      }
      expect(got).toEqual(heads);
      unwrap(
        vhostAddUsedN(
          mm,
          vq,
          got.map((id) => ({ id, len: 16 })),
        ),
      );
      const used = guest.getUsed();
      expect(used.map((u) => u.token)).toEqual(heads.map((_h, k) => `b${total + k}`));
      total += batch;
      if (vq.lastAvailIdx < batch) sawWrap = true;
    }
    expect(sawWrap).toBe(true);
    expect(vq.lastAvailIdx).toBe(total & 0xffff);
    expect(vq.lastUsedIdx).toBe(total & 0xffff);
    expect(guest.usedIdx()).toBe(total & 0xffff);
    expect(guest.numFree).toBe(num);
  });

  it('used elements land at last_used_idx & (num-1), splitting at the end of the ring', () => {
    const { mm, guest, vq } = setup(4);
    vq.lastUsedIdx = 0xfffe; // as after VHOST_SET_VRING_BASE
    unwrap(
      vhostAddUsedN(
        mm,
        vq,
        [1, 2, 3].map((id) => ({ id, len: id * 10 })),
      ),
    );
    const used = (slot: number) => {
      const v = unwrap(mm.view(vq.usedUser + 4 + 8 * slot, 8));
      return [v.getUint32(0, true), v.getUint32(4, true)];
    };
    expect(used(2)).toEqual([1, 10]);
    expect(used(3)).toEqual([2, 20]);
    expect(used(0)).toEqual([3, 30]);
    expect(vq.lastUsedIdx).toBe(1);
    expect(guest.usedIdx()).toBe(1);
  });

  it('the avail index may advance by exactly num', () => {
    const { mm, guest, vq } = setup(4);
    for (let k = 0; k < 4; k++) unwrap(guest.addBuf([{ gpa: 0, len: 1 }], [], `${k}`));
    guest.publish();
    expect(unwrap(vhostGetVqDesc(mm, vq)).head).toBe(0);
    expect(vq.availIdx).toBe(4);
  });

  it('vhost_vq_init_access loads last_used_idx from used->idx and forgets the signalled index', () => {
    const { mm, vq } = setup(4);
    unwrap(mm.write(vq.usedUser + 2, new Uint8Array([0x34, 0x12])));
    vq.signalledUsedValid = true;
    unwrap(vhostVqInitAccess(mm, vq));
    expect(vq.lastUsedIdx).toBe(0x1234);
    expect(vq.signalledUsedValid).toBe(false);
    expect(unwrap(mm.view(vq.usedUser, 2)).getUint16(0, true)).toBe(VRING_USED_F_NO_NOTIFY);
  });
});

describe('vhost_get_vq_desc errors (§7.5)', () => {
  it('avail idx jumping by more than num → EINVAL (and v6.12 keeps the bad cache)', () => {
    const { mm, guest, vq } = setup(8);
    guest.pokeAvailIdx(9);
    expect(errnoOf(vhostGetVqDesc(mm, vq))).toBe(Errno.EINVAL);
    expect(vq.lastAvailIdx).toBe(0);
    expect(vq.availIdx).toBe(9);
    // the same check when the index moves backwards (u16 wrap makes it a huge advance)
    const s = setup(8);
    s.guest.pokeAvailIdx(0xffff);
    expect(errnoOf(vhostGetVqDesc(s.mm, s.vq))).toBe(Errno.EINVAL);
  });

  it('head ≥ num → EINVAL, nothing consumed', () => {
    const { mm, guest, vq } = setup(8);
    guest.pushAvail(8);
    guest.publish();
    expect(errnoOf(vhostGetVqDesc(mm, vq))).toBe(Errno.EINVAL);
    expect(vq.lastAvailIdx).toBe(0);
  });

  it('a next index ≥ num → EINVAL', () => {
    const { mm, guest, vq } = setup(8);
    const h = unwrap(guest.addBuf([{ gpa: 0, len: 8 }], [], 'a'));
    guest.pokeDesc(h, { addr: 0, len: 8, flags: VIRTQ_DESC_F_NEXT, next: 8 });
    guest.publish();
    expect(errnoOf(vhostGetVqDesc(mm, vq))).toBe(Errno.EINVAL);
  });

  it('a descriptor loop → EINVAL', () => {
    const { mm, guest, vq } = setup(8);
    const h = unwrap(
      guest.addBuf(
        [
          { gpa: 0, len: 8 },
          { gpa: 16, len: 8 },
        ],
        [{ gpa: 32, len: 8 }],
        'loop',
      ),
    );
    guest.makeLoop(h);
    guest.publish();
    expect(errnoOf(vhostGetVqDesc(mm, vq))).toBe(Errno.EINVAL);
    expect(vq.lastAvailIdx).toBe(0);
  });

  it('a chain of exactly num descriptors is not a loop', () => {
    const { mm, guest, vq } = setup(8);
    const sgs = Array.from({ length: 8 }, (_v, k) => ({ gpa: 16 * k, len: 16 }));
    const h = unwrap(guest.addBuf(sgs.slice(0, 5), sgs.slice(5), 'full'));
    expect(guest.numFree).toBe(0);
    guest.publish();
    const r = unwrap(vhostGetVqDesc(mm, vq));
    expect(r.head).toBe(h);
    expect(r.out).toHaveLength(5);
    expect(r.in).toHaveLength(3);
  });

  it('a writable descriptor before a readable one → EINVAL (unless it is empty)', () => {
    const { mm, guest, vq } = setup(8);
    const h = unwrap(guest.addBuf([{ gpa: 0, len: 8 }], [{ gpa: 16, len: 8 }], 'bad'));
    const second = guest.readDesc(h).next;
    guest.pokeDesc(h, { addr: 16, len: 8, flags: VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, next: second });
    guest.pokeDesc(second, { addr: 0, len: 8, flags: 0, next: 0 });
    guest.publish();
    expect(errnoOf(vhostGetVqDesc(mm, vq))).toBe(Errno.EINVAL);
    // a zero-length writable descriptor adds no iovec, so it does not count as "in"
    guest.pokeDesc(h, { addr: 16, len: 0, flags: VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, next: second });
    const r = unwrap(vhostGetVqDesc(mm, vq));
    expect(r.in).toEqual([]);
    expect(r.out).toEqual([{ addr: guest.hva, len: 8 }]);
  });

  it('an indirect table whose length is not a multiple of 16 → EINVAL', () => {
    const { mm, guest, vq } = setup(8);
    const h = unwrap(guest.addBuf([{ gpa: 0, len: 8 }], [{ gpa: 16, len: 8 }], 'i', { indirect: true }));
    const d = guest.readDesc(h);
    guest.pokeDesc(h, { ...d, len: 24 });
    guest.publish();
    expect(errnoOf(vhostGetVqDesc(mm, vq))).toBe(Errno.EINVAL);
  });

  it('a nested indirect descriptor → EINVAL', () => {
    const { mm, guest, vq } = setup(8);
    const inner = guest.writeDescTable([{ addr: 0, len: 8, flags: 0, next: 0 }]);
    const outer = guest.writeDescTable([{ addr: inner, len: 16, flags: VIRTQ_DESC_F_INDIRECT, next: 0 }]);
    const h = unwrap(guest.addBuf([{ gpa: 0, len: 8 }], [], 'n'));
    guest.pokeDesc(h, { addr: outer, len: 16, flags: VIRTQ_DESC_F_INDIRECT, next: 0 });
    guest.publish();
    expect(errnoOf(vhostGetVqDesc(mm, vq))).toBe(Errno.EINVAL);
  });

  it('an indirect table running past its length → EINVAL; more than 65536 entries → E2BIG', () => {
    const { mm, guest, vq } = setup(8, 0n, 2 << 20);
    const t = guest.writeDescTable([{ addr: 0, len: 8, flags: VIRTQ_DESC_F_NEXT, next: 1 }]);
    const h = unwrap(guest.addBuf([{ gpa: 0, len: 8 }], [], 'i'));
    guest.pokeDesc(h, { addr: t, len: 16, flags: VIRTQ_DESC_F_INDIRECT, next: 0 });
    guest.publish();
    expect(errnoOf(vhostGetVqDesc(mm, vq))).toBe(Errno.EINVAL);
    const big = guest.alloc(16 * 65537, 16); // zeroed: its first entry ends the chain
    guest.pokeDesc(h, { addr: big, len: 16 * 65537, flags: VIRTQ_DESC_F_INDIRECT, next: 0 });
    expect(errnoOf(vhostGetVqDesc(mm, vq))).toBe(Errno.E2BIG);
    guest.pokeDesc(h, { addr: big, len: 16 * 65536, flags: VIRTQ_DESC_F_INDIRECT, next: 0 });
    expect(unwrap(vhostGetVqDesc(mm, vq))).toEqual({ head: h, out: [], in: [] });
  });

  it('a descriptor address outside the memory table → EFAULT', () => {
    const { mm, guest, vq } = setup(8);
    unwrap(guest.addBuf([{ gpa: guest.size - 4, len: 8 }], [], 'x'));
    guest.publish();
    expect(errnoOf(vhostGetVqDesc(mm, vq))).toBe(Errno.EFAULT);
    // a zero-length descriptor never faults
    guest.pokeDesc(0, { addr: 1n << 60n, len: 0, flags: 0, next: 0 });
    expect(unwrap(vhostGetVqDesc(mm, vq)).out).toEqual([]);
    // an indirect table outside the table faults too
    unwrap(guest.addBuf([{ gpa: 0, len: 8 }], [], 'y'));
    guest.pokeDesc(1, { addr: guest.size, len: 16, flags: VIRTQ_DESC_F_INDIRECT, next: 0 });
    guest.publish();
    expect(errnoOf(vhostGetVqDesc(mm, vq))).toBe(Errno.EFAULT);
  });

  it('too many iovecs for the caller’s array → ENOBUFS', () => {
    const { mm, guest, vq } = setup(8);
    unwrap(
      guest.addBuf(
        [
          { gpa: 0, len: 8 },
          { gpa: 16, len: 8 },
        ],
        [],
        'x',
      ),
    );
    guest.publish();
    expect(errnoOf(vhostGetVqDesc(mm, vq, 1))).toBe(Errno.ENOBUFS);
    expect(unwrap(vhostGetVqDesc(mm, vq, 2)).out).toHaveLength(2);
  });

  it('unmapped rings → EFAULT (avail idx, avail ring, descriptor table, used ring)', () => {
    const { mm, guest, vq } = setup(8);
    const hole = guest.hva + guest.size + 0x100000; // never mapped
    unwrap(guest.addBuf([{ gpa: 0, len: 8 }], [], 'x'));
    guest.publish();

    const availUser = vq.availUser;
    vq.availUser = hole;
    expect(errnoOf(vhostGetVqDesc(mm, vq))).toBe(Errno.EFAULT);
    vq.availUser = availUser;

    const descUser = vq.descUser;
    vq.descUser = hole;
    expect(errnoOf(vhostGetVqDesc(mm, vq))).toBe(Errno.EFAULT);
    vq.descUser = descUser;

    // the head read: avail->idx readable but the ring entry not (idx at the last bytes of a mapping)
    const page = unwrap(mm.mmap(4096));
    vq.availUser = page + 4096 - 4;
    vq.lastAvailIdx = vq.availIdx = 0;
    unwrap(mm.write(page + 4096 - 2, new Uint8Array([1, 0])));
    expect(errnoOf(vhostGetVqDesc(mm, vq))).toBe(Errno.EFAULT);
    vq.availUser = availUser;
    vq.availIdx = 0;

    const r = unwrap(vhostGetVqDesc(mm, vq));
    vq.usedUser = hole;
    expect(errnoOf(vhostAddUsed(mm, vq, r.head, 0))).toBe(Errno.EFAULT);
    expect(errnoOf(vhostEnableNotify(mm, vq))).toBe(Errno.EFAULT);
  });
});

describe('vhost_notify', () => {
  it('without EVENT_IDX: signal unless the guest set NO_INTERRUPT', () => {
    const { mm, guest, vq } = setup(8);
    unwrap(guest.addBuf([{ gpa: 0, len: 8 }], [], 'a'));
    guest.publish();
    const r = unwrap(vhostGetVqDesc(mm, vq));
    unwrap(vhostAddUsed(mm, vq, r.head, 0));
    expect(vhostNotify(mm, vq)).toBe(true);
    guest.setNoInterrupt(true);
    expect(vhostNotify(mm, vq)).toBe(false);
    guest.setNoInterrupt(false);
    expect(vhostNotify(mm, vq)).toBe(true);
  });

  it('NOTIFY_ON_EMPTY signals when the avail ring is exhausted, despite NO_INTERRUPT', () => {
    const { mm, guest, vq } = setup(8, NOTIFY_ON_EMPTY);
    guest.setNoInterrupt(true);
    for (const t of ['a', 'b']) unwrap(guest.addBuf([{ gpa: 0, len: 8 }], [], t));
    guest.publish();
    const r = unwrap(vhostGetVqDesc(mm, vq));
    unwrap(vhostAddUsed(mm, vq, r.head, 0));
    expect(vhostNotify(mm, vq)).toBe(false); // one still pending
    const r2 = unwrap(vhostGetVqDesc(mm, vq));
    unwrap(vhostAddUsed(mm, vq, r2.head, 0));
    expect(vhostNotify(mm, vq)).toBe(true); // ring empty
  });

  it('with EVENT_IDX: first signal after reset always notifies, then used_event decides', () => {
    const { mm, guest, vq } = setup(8, EVENT_IDX);
    for (let k = 0; k < 6; k++) unwrap(guest.addBuf([{ gpa: 0, len: 8 }], [], `${k}`));
    guest.publish();
    const heads: number[] = [];
    for (let k = 0; k < 6; k++) heads.push(unwrap(vhostGetVqDesc(mm, vq)).head);

    guest.setUsedEvent(100); // would say "not yet", but nothing was signalled since reset
    expect(vq.signalledUsedValid).toBe(false);
    unwrap(vhostAddUsed(mm, vq, heads[0]!, 0));
    expect(vhostNotify(mm, vq)).toBe(true);
    expect(vq.signalledUsedValid).toBe(true);
    expect(vq.signalledUsed).toBe(1);

    guest.setUsedEvent(2); // interrupt me when the entry at index 2 is used
    unwrap(vhostAddUsed(mm, vq, heads[1]!, 0)); // used idx 1 → 2
    expect(vhostNotify(mm, vq)).toBe(vringNeedEvent(2, 2, 1));
    expect(vhostNotify(mm, vq)).toBe(false);
    unwrap(vhostAddUsed(mm, vq, heads[2]!, 0)); // 2 → 3 passes used_event 2
    expect(vhostNotify(mm, vq)).toBe(true);

    // a batch crossing the event index notifies once
    guest.setUsedEvent(4);
    unwrap(
      vhostAddUsedN(
        mm,
        vq,
        heads.slice(3).map((id) => ({ id, len: 0 })),
      ),
    ); // 3 → 6
    expect(vhostNotify(mm, vq)).toBe(true);
    expect(vhostNotify(mm, vq)).toBe(false);

    // the guest driver writes used_event = last_used_idx as it consumes
    expect(guest.getUsed()).toHaveLength(6);
    expect(guest.usedEvent()).toBe(6);
  });

  it('with EVENT_IDX: NO_INTERRUPT is ignored', () => {
    const { mm, guest, vq } = setup(8, EVENT_IDX);
    guest.setNoInterrupt(true);
    for (const t of ['a', 'b']) unwrap(guest.addBuf([{ gpa: 0, len: 8 }], [], t));
    guest.publish();
    const h1 = unwrap(vhostGetVqDesc(mm, vq)).head;
    const h2 = unwrap(vhostGetVqDesc(mm, vq)).head;
    unwrap(vhostAddUsed(mm, vq, h1, 0));
    expect(vhostNotify(mm, vq)).toBe(true); // first after reset
    guest.setUsedEvent(1);
    unwrap(vhostAddUsed(mm, vq, h2, 0)); // 1 → 2 passes used_event 1
    expect(vhostNotify(mm, vq)).toBe(true);
  });

  it('a used index running past signalled_used invalidates it', () => {
    const { mm, guest, vq } = setup(8, EVENT_IDX);
    unwrap(guest.addBuf([{ gpa: 0, len: 8 }], [], 'a'));
    guest.publish();
    const h = unwrap(vhostGetVqDesc(mm, vq)).head;
    vq.signalledUsedValid = true;
    vq.signalledUsed = 1; // as if signalled 2^16 - 1 buffers ago
    unwrap(vhostAddUsed(mm, vq, h, 0)); // 0 → 1 crosses it
    expect(vq.signalledUsedValid).toBe(false);
  });
});

describe('vhost_enable_notify / vhost_disable_notify', () => {
  function setupEnabled(features: bigint) {
    const s = setup(8, features);
    unwrap(vhostEnableNotify(s.mm, s.vq));
    return s;
  }

  it('without EVENT_IDX: the NO_NOTIFY flag in used->flags', () => {
    const { mm, guest, vq } = setupEnabled(0n);
    expect(guest.usedFlags()).toBe(0);
    unwrap(guest.addBuf([{ gpa: 0, len: 8 }], [], 'a'));
    expect(guest.publish()).toBe(true); // kick wanted

    unwrap(vhostDisableNotify(mm, vq));
    expect(vq.usedFlags).toBe(VRING_USED_F_NO_NOTIFY);
    expect(guest.usedFlags()).toBe(VRING_USED_F_NO_NOTIFY);
    unwrap(guest.addBuf([{ gpa: 0, len: 8 }], [], 'b'));
    expect(guest.publish()).toBe(false); // suppressed

    expect(unwrap(vhostGetVqDesc(mm, vq)).head).toBe(0);
    expect(unwrap(vhostGetVqDesc(mm, vq)).head).toBe(1);
    expect(unwrap(vhostEnableNotify(mm, vq))).toBe(false); // drained: safe to sleep
    expect(guest.usedFlags()).toBe(0);
    expect(unwrap(vhostEnableNotify(mm, vq))).toBe(false); // already enabled: no-op
  });

  it('enable re-checks avail->idx to close the race with a guest add', () => {
    const { mm, guest, vq } = setup(8);
    unwrap(guest.addBuf([{ gpa: 0, len: 8 }], [], 'a'));
    expect(guest.publish()).toBe(false); // guest saw NO_NOTIFY: no kick
    expect(unwrap(vhostEnableNotify(mm, vq))).toBe(true); // but the buffer is there
    expect(vq.availIdx).toBe(1);
    expect(vhostVqAvailEmpty(mm, vq)).toBe(false);
  });

  it('with EVENT_IDX: avail_event instead of the flag', () => {
    const { mm, guest, vq } = setupEnabled(EVENT_IDX);
    expect(guest.usedFlags()).toBe(0);
    expect(guest.availEvent()).toBe(0);
    unwrap(guest.addBuf([{ gpa: 0, len: 8 }], [], 'a'));
    expect(guest.publish()).toBe(true); // avail 0 → 1 passes avail_event 0

    unwrap(vhostDisableNotify(mm, vq));
    expect(vq.usedFlags).toBe(VRING_USED_F_NO_NOTIFY);
    expect(guest.usedFlags()).toBe(0); // nothing written with EVENT_IDX
    unwrap(guest.addBuf([{ gpa: 0, len: 8 }], [], 'b'));
    expect(guest.publish()).toBe(false); // 1 → 2 does not pass avail_event 0

    expect(unwrap(vhostGetVqDesc(mm, vq)).head).toBe(0);
    expect(unwrap(vhostGetVqDesc(mm, vq)).head).toBe(1);
    expect(unwrap(vhostGetVqDesc(mm, vq)).head).toBe(8);
    expect(unwrap(vhostEnableNotify(mm, vq))).toBe(false);
    expect(guest.availEvent()).toBe(2); // the cached avail index
    unwrap(guest.addBuf([{ gpa: 0, len: 8 }], [], 'c'));
    unwrap(guest.addBuf([{ gpa: 0, len: 8 }], [], 'd'));
    expect(guest.publish()).toBe(true); // 2 → 4 passes avail_event 2
    expect(vhostVqAvailEmpty(mm, vq)).toBe(false);
  });

  it('enable reports an avail index jump found on the re-check', () => {
    const { mm, guest, vq } = setup(8);
    guest.pokeAvailIdx(100);
    expect(errnoOf(vhostEnableNotify(mm, vq))).toBe(Errno.EINVAL);
    expect(vhostVqAvailEmpty(mm, vq)).toBe(false);
  });
});
