/**
 * /dev/vhost-scsi (scsi.ts): the ioctl switch and its errno order, the multi-worker ioctls of
 * kernel-spec §6.7 and §10 item 32 on every era, SET/CLEAR_ENDPOINT against the target
 * registry, and virtio-scsi READ(10)/WRITE(10) bytes moving end to end between a guest driver
 * (guest.ts) and an in-memory LUN through the vhost worker(s).
 */
import { describe, expect, it } from 'vitest';
import { Errno, type Result } from '../kernel/errno.js';
import { checkInvariants } from '../kernel/invariants.js';
import type { Kernel } from '../kernel/kernel.js';
import type { KGen } from '../kernel/sched.js';
import type { Sys } from '../kernel/syscalls.js';
import type { Task } from '../kernel/task.js';
import { bootKernel, settle, spawn, tasksNamed } from '../kernel/testing.js';
import { PROFILES } from '../profiles/eras.js';
import { GuestVirtqueue } from './guest.js';
import { registerVhost } from './index.js';
import { ioctlWith, kick, Scratch } from './qemu.js';
import {
  cdbRw10,
  decodeVirtioScsiCmdResp,
  encodeVhostScsiTarget,
  encodeVirtioScsiCmdReq,
  ILLEGAL_REQUEST,
  READ_10,
  READ_CAPACITY,
  SAM_STAT_CHECK_CONDITION,
  SAM_STAT_GOOD,
  SIZEOF_VIRTIO_SCSI_CMD_RESP,
  VHOST_SCSI_FEATURES,
  VHOST_SCSI_GET_EVENTS_MISSED,
  VHOST_SCSI_SET_EVENTS_MISSED,
  VHOST_SCSI_VQ_IO,
  type VhostScsi,
  VIRTIO_SCSI_S_BAD_TARGET,
  VIRTIO_SCSI_S_OK,
  vhostScsiDropTarget,
  vhostScsiMakeTarget,
  vhostScsiOf,
  virtioScsiLun,
  WRITE_10,
} from './scsi.js';
import * as U from './uapi.js';

const WWPN = 'naa.5001405bd7e3b8a1';
/** 2 + the default max_io_vqs */
const NVQS = 130;
const MULTI_WORKER_TASK = PROFILES.filter((p) => p.vhostMultiWorker && p.vhostWorker !== 'kthread').map(
  (p) => p.name,
);
const SINGLE_WORKER = PROFILES.filter((p) => !p.vhostMultiWorker).map((p) => p.name);

function boot(profile: string): Kernel {
  const k = bootKernel({ profile });
  registerVhost(k);
  return k;
}

/** Run `program` as a QEMU-like process to completion (it exits, releasing its fds); no kernel warning. */
function runQemu(k: Kernel, program: (sys: Sys, self: Task) => KGen<void>): Task {
  let self: Task | null = null;
  self = spawn(k, 'qemu', function* (sys: Sys) {
    yield* program(sys, self!);
    return 0;
  });
  settle(k);
  expect(k.warnings).toEqual([]);
  return self;
}

function errnoOf(r: Result<unknown>): Errno | 0 {
  return r.ok ? 0 : r.errno;
}

/** The vhost-scsi device behind fd `fd` of the calling process. */
function devOf(sys: Sys, fd: number): VhostScsi {
  return vhostScsiOf(sys.task.files!.get(fd))!;
}

interface ScsiSetup {
  fd: number;
  scratch: Scratch;
  queues: GuestVirtqueue<number>[];
  kickFd: number[];
  callFd: number[];
}

/**
 * Bring up /dev/vhost-scsi as QEMU does: SET_OWNER, GET_ABI_VERSION, SET_FEATURES, one guest
 * RAM region, the ctl, evt and `ioQueues` I/O vrings (NUM, BASE, ADDR, KICK, CALL), then
 * SET_ENDPOINT with `wwpn`. Throws on any failure (a broken test setup).
 */
function* setupVhostScsi(
  sys: Sys,
  o: { wwpn?: string; ioQueues?: number; num?: number; features?: bigint } = {},
): KGen<ScsiSetup> {
  const scratch = yield* Scratch.create(sys);
  const must = (what: string, r: Result<unknown>) => {
    if (!r.ok) throw new Error(`${what}: errno ${r.errno}`);
  };
  const fdr = yield* sys.open('/dev/vhost-scsi');
  must('open', fdr);
  const fd = fdr.ok ? fdr.value : -1;
  must('SET_OWNER', yield* sys.ioctl(fd, U.VHOST_SET_OWNER));
  must('GET_ABI_VERSION', yield* ioctlWith(sys, scratch, fd, U.VHOST_SCSI_GET_ABI_VERSION));
  expect(scratch.u32()).toBe(U.VHOST_SCSI_ABI_VERSION);
  const features = o.features ?? 0n;
  must('SET_FEATURES', yield* ioctlWith(sys, scratch, fd, U.VHOST_SET_FEATURES, U.encodeU64(features)));
  const nq = 2 + (o.ioQueues ?? 1);
  const ram = 1 << 20;
  const win = yield* sys.mmap(ram);
  must('mmap', win);
  const hva = win.ok ? win.value : 0;
  const mm = sys.task.mm!;
  const num = o.num ?? 64;
  const queues: GuestVirtqueue<number>[] = [];
  for (let i = 0; i < nq; i++)
    queues.push(new GuestVirtqueue<number>(mm, hva, ram, num, { features, allocFrom: (i * ram) / nq }));
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
  for (const [index, q] of queues.entries()) {
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
    must('eventfd', kfd);
    must('eventfd', cfd);
    kickFd.push(kfd.ok ? kfd.value : -1);
    callFd.push(cfd.ok ? cfd.value : -1);
    must(
      'KICK',
      yield* ioctlWith(
        sys,
        scratch,
        fd,
        U.VHOST_SET_VRING_KICK,
        U.encodeVringFile({ index, fd: kickFd[index]! }),
      ),
    );
    must(
      'CALL',
      yield* ioctlWith(
        sys,
        scratch,
        fd,
        U.VHOST_SET_VRING_CALL,
        U.encodeVringFile({ index, fd: callFd[index]! }),
      ),
    );
  }
  must(
    'SET_ENDPOINT',
    yield* ioctlWith(
      sys,
      scratch,
      fd,
      U.VHOST_SCSI_SET_ENDPOINT,
      encodeVhostScsiTarget({ abiVersion: U.VHOST_SCSI_ABI_VERSION, wwpn: o.wwpn ?? WWPN, tpgt: 1 }),
    ),
  );
  return { fd, scratch, queues, kickFd, callFd };
}

interface IoResult {
  resp: ReturnType<typeof decodeVirtioScsiCmdResp>;
  dataIn: Uint8Array;
  usedLen: number;
}

/**
 * One virtio-scsi command from the guest driver on I/O queue `q` (vq index): request header
 * (+ data out) device-readable, response (+ data in) device-writable; publish, kick, wait for
 * the call eventfd, collect the used buffer.
 */
function* scsiCommand(
  sys: Sys,
  s: ScsiSetup,
  vqIndex: number,
  req: { target?: number; lun?: number; cdb: Uint8Array; dataOut?: Uint8Array; dataInLen?: number },
): KGen<IoResult> {
  const q = s.queues[vqIndex]!;
  const hdr = encodeVirtioScsiCmdReq({
    lun: virtioScsiLun(req.target ?? 1, req.lun ?? 0),
    tag: 7n,
    cdb: req.cdb,
  });
  const reqGpa = q.allocBuffer(hdr.length);
  q.writeBytes(reqGpa, hdr);
  const out = [{ gpa: reqGpa, len: hdr.length }];
  if (req.dataOut) {
    const g = q.allocBuffer(req.dataOut.length);
    q.writeBytes(g, req.dataOut);
    out.push({ gpa: g, len: req.dataOut.length });
  }
  const respGpa = q.allocBuffer(SIZEOF_VIRTIO_SCSI_CMD_RESP);
  const inn = [{ gpa: respGpa, len: SIZEOF_VIRTIO_SCSI_CMD_RESP }];
  const inLen = req.dataInLen ?? 0;
  const dataGpa = inLen ? q.allocBuffer(inLen) : 0;
  if (inLen) inn.push({ gpa: dataGpa, len: inLen });
  const head = q.addBuf(out, inn, 42);
  expect(head.ok).toBe(true);
  q.publish();
  yield* kick(sys, s.kickFd[vqIndex]!);
  const c = yield* sys.read(s.callFd[vqIndex]!, 8);
  expect(c.ok).toBe(true);
  const used = q.getUsed();
  expect(used).toHaveLength(1);
  expect(used[0]!.token).toBe(42);
  return {
    resp: decodeVirtioScsiCmdResp(q.readBytes(respGpa, SIZEOF_VIRTIO_SCSI_CMD_RESP)),
    dataIn: inLen ? q.readBytes(dataGpa, inLen) : new Uint8Array(0),
    usedLen: used[0]!.len,
  };
}

function pattern(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  let x = seed >>> 0;
  for (let i = 0; i < len; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

const vringWorker = (index: number, workerId: number) => U.encodeVringWorker({ index, workerId });

// ------------------------------------------------------------------ open and ioctls

describe('vhost-scsi open and the driver ioctls', () => {
  it('open gives ctl, evt and 128 I/O virtqueues; ABI version 4; features; events-missed round trip', () => {
    const k = boot('linux-6.12');
    runQemu(k, function* (sys) {
      const scratch = yield* Scratch.create(sys);
      const fd = (yield* sys.open('/dev/vhost-scsi')) as { ok: true; value: number };
      expect(fd.ok).toBe(true);
      expect(devOf(sys, fd.value).dev.nvqs).toBe(NVQS);
      expect((yield* ioctlWith(sys, scratch, fd.value, U.VHOST_SCSI_GET_ABI_VERSION)).ok).toBe(true);
      expect(scratch.u32()).toBe(4);
      // no owner check on the feature ioctls
      expect((yield* ioctlWith(sys, scratch, fd.value, U.VHOST_GET_FEATURES)).ok).toBe(true);
      expect(scratch.u64()).toBe(VHOST_SCSI_FEATURES);
      const bad = yield* ioctlWith(
        sys,
        scratch,
        fd.value,
        U.VHOST_SET_FEATURES,
        U.encodeU64(U.bit(2)) /* VIRTIO_SCSI_F_CHANGE is not offered */,
      );
      expect(errnoOf(bad)).toBe(Errno.EOPNOTSUPP);
      expect(
        (yield* ioctlWith(sys, scratch, fd.value, VHOST_SCSI_SET_EVENTS_MISSED, U.encodeU32(1))).ok,
      ).toBe(true);
      expect(
        (yield* ioctlWith(sys, scratch, fd.value, VHOST_SCSI_GET_EVENTS_MISSED, U.encodeU32(0))).ok,
      ).toBe(true);
      expect(scratch.u32()).toBe(1);
      // vring ioctls are owner-checked in vhost_dev_ioctl before SET_OWNER
      const num = yield* ioctlWith(
        sys,
        scratch,
        fd.value,
        U.VHOST_SET_VRING_NUM,
        U.encodeVringState({ index: 0, num: 64 }),
      );
      expect(errnoOf(num)).toBe(Errno.EPERM);
      // a bad pointer faults in the driver's own copy
      expect(errnoOf(yield* sys.ioctl(fd.value, U.VHOST_SCSI_GET_ABI_VERSION, 0))).toBe(Errno.EFAULT);
    });
    checkInvariants(k);
  });

  it('SET_ENDPOINT: reserved ≠ 0 → EOPNOTSUPP, unknown WWPN or no nexus → ENODEV, twice → EEXIST, a tpg held by another device is skipped; CLEAR with another WWPN → EINVAL', () => {
    const k = boot('linux-6.12');
    const tpg = vhostScsiMakeTarget(k, { wwpn: WWPN, lunBlocks: 16 });
    vhostScsiMakeTarget(k, { wwpn: 'naa.nonexus', nexus: false });
    runQemu(k, function* (sys) {
      const scratch = yield* Scratch.create(sys);
      const a = ((yield* sys.open('/dev/vhost-scsi')) as { value: number }).value;
      const b = ((yield* sys.open('/dev/vhost-scsi')) as { value: number }).value;
      const target = (wwpn: string, reserved = 0) =>
        encodeVhostScsiTarget({ abiVersion: U.VHOST_SCSI_ABI_VERSION, wwpn, tpgt: 1, reserved });
      const set = (fd: number, t: Uint8Array) => ioctlWith(sys, scratch, fd, U.VHOST_SCSI_SET_ENDPOINT, t);
      expect(errnoOf(yield* set(a, target(WWPN, 1)))).toBe(Errno.EOPNOTSUPP);
      expect(errnoOf(yield* set(a, target('naa.unknown')))).toBe(Errno.ENODEV);
      expect(errnoOf(yield* set(a, target('naa.nonexus')))).toBe(Errno.ENODEV);
      // SET_ENDPOINT has no owner check (vhost_scsi_set_endpoint never calls vhost_dev_check_owner)
      expect(errnoOf(yield* set(a, target(WWPN)))).toBe(0);
      expect(tpg.tvTpgVhostCount).toBe(1);
      expect(tpg.vhostScsi).toBe(devOf(sys, a));
      expect(errnoOf(yield* set(a, target(WWPN)))).toBe(Errno.EEXIST);
      expect(errnoOf(yield* set(b, target(WWPN)))).toBe(Errno.ENODEV);
      expect(errnoOf(vhostScsiDropTarget(k, tpg))).toBe(Errno.EBUSY);
      const clear = (fd: number, t: Uint8Array) =>
        ioctlWith(sys, scratch, fd, U.VHOST_SCSI_CLEAR_ENDPOINT, t);
      expect(errnoOf(yield* clear(a, target('naa.other')))).toBe(Errno.EINVAL);
      expect(errnoOf(yield* clear(a, target(WWPN)))).toBe(0);
      expect(tpg.tvTpgVhostCount).toBe(0);
      expect(errnoOf(yield* set(b, target(WWPN)))).toBe(0);
      // a ring outside the user address range fails access_ok for every endpoint ioctl
      yield* sys.ioctl(a, U.VHOST_SET_OWNER);
      const addr = U.encodeVringAddr({
        index: 5,
        flags: 0,
        descUserAddr: 0x7ffffffff000n,
        usedUserAddr: 0x1000n,
        availUserAddr: 0x1000n,
        logGuestAddr: 0n,
      });
      expect((yield* ioctlWith(sys, scratch, a, U.VHOST_SET_VRING_ADDR, addr)).ok).toBe(true);
      expect(errnoOf(yield* clear(a, target(WWPN)))).toBe(Errno.EFAULT);
      expect(errnoOf(yield* set(a, target(WWPN)))).toBe(Errno.EFAULT);
    });
    // the process exited: b's release cleared its endpoint
    expect(tpg.tvTpgVhostCount).toBe(0);
    expect(errnoOf(vhostScsiDropTarget(k, tpg))).toBe(0);
    checkInvariants(k);
  });
});

// ------------------------------------------------------------------ §10 item 32, §6.7

describe('multi-worker ioctls on vhost-scsi (kernel-spec §6.7, §10 item 32)', () => {
  it.each(MULTI_WORKER_TASK)(
    '%s: GET(vq0) = 0, NEW = 1 adds vhost-<pid> to the owner, ATTACH then FREE → EBUSY, FREE 42 → ENODEV, GET(vq ≥ nvqs) → ENOBUFS',
    (profile) => {
      const k = boot(profile);
      let threadsBefore = 0;
      const owner = runQemu(k, function* (sys, self) {
        const scratch = yield* Scratch.create(sys);
        const fd = ((yield* sys.open('/dev/vhost-scsi')) as { value: number }).value;
        expect((yield* sys.ioctl(fd, U.VHOST_SET_OWNER)).ok).toBe(true);
        const vs = devOf(sys, fd);
        expect(vs.dev.workers.size).toBe(1);
        expect((yield* ioctlWith(sys, scratch, fd, U.VHOST_GET_VRING_WORKER, vringWorker(0, 99))).ok).toBe(
          true,
        );
        expect(scratch.u32(0)).toBe(0);
        expect(scratch.u32(4)).toBe(0);
        threadsBefore = self.signal.nrThreads;
        expect((yield* ioctlWith(sys, scratch, fd, U.VHOST_NEW_WORKER, U.encodeU32(0xdead))).ok).toBe(true);
        expect(scratch.u32()).toBe(1);
        const w1 = vs.dev.workers.get(1)!.task!;
        expect(w1.comm).toBe(`vhost-${self.pid}`);
        expect(w1.tgid).toBe(self.tgid);
        expect(self.signal.nrThreads).toBe(threadsBefore + 1);
        expect(tasksNamed(k, `vhost-${self.pid}`)).toHaveLength(2);
        expect((yield* ioctlWith(sys, scratch, fd, U.VHOST_ATTACH_VRING_WORKER, vringWorker(0, 1))).ok).toBe(
          true,
        );
        expect((yield* ioctlWith(sys, scratch, fd, U.VHOST_GET_VRING_WORKER, vringWorker(0, 0))).ok).toBe(
          true,
        );
        expect(scratch.u32(4)).toBe(1);
        expect(errnoOf(yield* ioctlWith(sys, scratch, fd, U.VHOST_FREE_WORKER, U.encodeU32(1)))).toBe(
          Errno.EBUSY,
        );
        expect(errnoOf(yield* ioctlWith(sys, scratch, fd, U.VHOST_FREE_WORKER, U.encodeU32(42)))).toBe(
          Errno.ENODEV,
        );
        expect(
          errnoOf(yield* ioctlWith(sys, scratch, fd, U.VHOST_GET_VRING_WORKER, vringWorker(NVQS, 0))),
        ).toBe(Errno.ENOBUFS);
        expect(
          errnoOf(yield* ioctlWith(sys, scratch, fd, U.VHOST_GET_VRING_WORKER, vringWorker(NVQS - 1, 0))),
        ).toBe(0);
        // move vq0 back: worker 1 is unattached and can be freed; its thread goes away
        expect((yield* ioctlWith(sys, scratch, fd, U.VHOST_ATTACH_VRING_WORKER, vringWorker(0, 0))).ok).toBe(
          true,
        );
        expect((yield* ioctlWith(sys, scratch, fd, U.VHOST_FREE_WORKER, U.encodeU32(1))).ok).toBe(true);
        expect(vs.dev.workers.size).toBe(1);
      });
      expect(tasksNamed(k, /^vhost-/)).toHaveLength(0);
      expect(owner.alive).toBe(false);
      checkInvariants(k);
    },
  );

  it.each([
    ['linux-6.17', true],
    ['linux-6.17-kthread', false],
  ] as const)(
    '%s in kthread mode: NEW_WORKER → EFAULT, the default kthread worker still has id 0',
    (profile, setFork) => {
      const k = boot(profile);
      runQemu(k, function* (sys, self) {
        const scratch = yield* Scratch.create(sys);
        const fd = ((yield* sys.open('/dev/vhost-scsi')) as { value: number }).value;
        if (setFork)
          expect((yield* ioctlWith(sys, scratch, fd, U.VHOST_SET_FORK_FROM_OWNER, Uint8Array.of(0))).ok).toBe(
            true,
          );
        expect((yield* ioctlWith(sys, scratch, fd, U.VHOST_GET_FORK_FROM_OWNER)).ok).toBe(true);
        expect(scratch.u32() & 0xff).toBe(0);
        expect((yield* sys.ioctl(fd, U.VHOST_SET_OWNER)).ok).toBe(true);
        const w0 = devOf(sys, fd).dev.workers.get(0)!.task!;
        expect(w0.isKthread()).toBe(true);
        expect(w0.tgid).not.toBe(self.tgid);
        expect(errnoOf(yield* ioctlWith(sys, scratch, fd, U.VHOST_NEW_WORKER))).toBe(Errno.EFAULT);
        expect(devOf(sys, fd).dev.workers.size).toBe(1);
        expect((yield* ioctlWith(sys, scratch, fd, U.VHOST_GET_VRING_WORKER, vringWorker(0, 7))).ok).toBe(
          true,
        );
        expect(scratch.u32(4)).toBe(0);
      });
      expect(tasksNamed(k, /^vhost-/)).toHaveLength(0);
      checkInvariants(k);
    },
  );

  it.each(SINGLE_WORKER)(
    '%s: the worker ioctls do not exist: EPERM for a non-owner, else the vring path (ENOBUFS for a large first u32, ENOTTY otherwise)',
    (profile) => {
      const k = boot(profile);
      runQemu(k, function* (sys) {
        const scratch = yield* Scratch.create(sys);
        const fd = ((yield* sys.open('/dev/vhost-scsi')) as { value: number }).value;
        expect(errnoOf(yield* ioctlWith(sys, scratch, fd, U.VHOST_NEW_WORKER, U.encodeU32(0)))).toBe(
          Errno.EPERM,
        );
        expect((yield* sys.ioctl(fd, U.VHOST_SET_OWNER)).ok).toBe(true);
        expect(errnoOf(yield* ioctlWith(sys, scratch, fd, U.VHOST_NEW_WORKER, U.encodeU32(0)))).toBe(
          Errno.ENOTTY,
        );
        expect(errnoOf(yield* ioctlWith(sys, scratch, fd, U.VHOST_FREE_WORKER, U.encodeU32(42)))).toBe(
          Errno.ENOTTY,
        );
        expect(errnoOf(yield* ioctlWith(sys, scratch, fd, U.VHOST_GET_VRING_WORKER, vringWorker(0, 0)))).toBe(
          Errno.ENOTTY,
        );
        expect(
          errnoOf(yield* ioctlWith(sys, scratch, fd, U.VHOST_ATTACH_VRING_WORKER, vringWorker(200, 0))),
        ).toBe(Errno.ENOBUFS);
        expect(devOf(sys, fd).dev.workers.size).toBe(1);
      });
      checkInvariants(k);
    },
  );

  it('§6.7 errno order: no owner (EINVAL) before the owner check (EPERM) before copy-in (EFAULT), the vq index (ENOBUFS) before the worker id (ENODEV)', () => {
    const k = boot('linux-6.12');
    runQemu(k, function* (sys, self) {
      const scratch = yield* Scratch.create(sys);
      const fd = ((yield* sys.open('/dev/vhost-scsi')) as { value: number }).value;
      // before SET_OWNER every worker ioctl is EINVAL, whatever its argument
      for (const cmd of [
        U.VHOST_NEW_WORKER,
        U.VHOST_FREE_WORKER,
        U.VHOST_ATTACH_VRING_WORKER,
        U.VHOST_GET_VRING_WORKER,
      ])
        expect(errnoOf(yield* sys.ioctl(fd, cmd, 0))).toBe(Errno.EINVAL);
      expect(errnoOf(yield* ioctlWith(sys, scratch, fd, U.VHOST_GET_VRING_WORKER, vringWorker(999, 0)))).toBe(
        Errno.EINVAL,
      );
      expect((yield* sys.ioctl(fd, U.VHOST_SET_OWNER)).ok).toBe(true);
      // a forked child has another mm: EPERM before anything is read
      const child = yield* sys.fork(function* (cs: Sys) {
        expect(errnoOf(yield* cs.ioctl(fd, U.VHOST_NEW_WORKER, scratch.addr))).toBe(Errno.EPERM);
        expect(errnoOf(yield* cs.ioctl(fd, U.VHOST_FREE_WORKER, 0))).toBe(Errno.EPERM);
        cs.task.mm!.write(scratch.addr, vringWorker(999, 0));
        expect(errnoOf(yield* cs.ioctl(fd, U.VHOST_GET_VRING_WORKER, scratch.addr))).toBe(Errno.EPERM);
        return 0;
      });
      expect(child.ok).toBe(true);
      const st = yield* sys.wait4(child.ok ? child.value : 0);
      expect(st.ok).toBe(true);
      // the owner: copy-in faults, index before worker lookup, unknown ids, attached default worker
      expect(errnoOf(yield* sys.ioctl(fd, U.VHOST_FREE_WORKER, 0))).toBe(Errno.EFAULT);
      expect(errnoOf(yield* sys.ioctl(fd, U.VHOST_GET_VRING_WORKER, 0))).toBe(Errno.EFAULT);
      // NEW_WORKER copies the id out after creating the worker: the fault leaves worker 1 behind
      // (vhost_new_worker() does not undo vhost_worker_create() when copy_to_user fails)
      expect(errnoOf(yield* sys.ioctl(fd, U.VHOST_NEW_WORKER, 0))).toBe(Errno.EFAULT);
      expect([...devOf(sys, fd).dev.workers.keys()]).toEqual([0, 1]);
      expect(
        errnoOf(yield* ioctlWith(sys, scratch, fd, U.VHOST_ATTACH_VRING_WORKER, vringWorker(999, 42))),
      ).toBe(Errno.ENOBUFS);
      expect(
        errnoOf(yield* ioctlWith(sys, scratch, fd, U.VHOST_ATTACH_VRING_WORKER, vringWorker(0, 42))),
      ).toBe(Errno.ENODEV);
      expect(errnoOf(yield* ioctlWith(sys, scratch, fd, U.VHOST_FREE_WORKER, U.encodeU32(0)))).toBe(
        Errno.EBUSY,
      );
      // NEW_WORKER from another thread of the owner is allowed; the worker is named after that thread
      let tid = 0;
      let done = false;
      yield* sys.pthreadCreate(function* (ts: Sys) {
        tid = ts.task.pid;
        const s2 = yield* Scratch.create(ts);
        expect((yield* ioctlWith(ts, s2, fd, U.VHOST_NEW_WORKER)).ok).toBe(true);
        expect(s2.u32()).toBe(2);
        done = true;
        yield* ts.pause();
        return 0;
      });
      while (!done) yield* sys.nanosleep(10_000);
      const w2 = devOf(sys, fd).dev.workers.get(2)!.task!;
      expect(w2.comm).toBe(`vhost-${tid}`);
      expect(w2.tgid).toBe(self.tgid);
      yield* sys.exitGroup(0);
    });
    expect(tasksNamed(k, /^vhost-/)).toHaveLength(0);
    checkInvariants(k);
  });

  it('worker ids are the lowest free ones: freed ids are reused, and the default worker 0 can be freed once every vq moved', () => {
    const k = boot('linux-6.12');
    runQemu(k, function* (sys, self) {
      const scratch = yield* Scratch.create(sys);
      const fd = ((yield* sys.open('/dev/vhost-scsi')) as { value: number }).value;
      expect((yield* sys.ioctl(fd, U.VHOST_SET_OWNER)).ok).toBe(true);
      const newWorker = function* () {
        expect((yield* ioctlWith(sys, scratch, fd, U.VHOST_NEW_WORKER)).ok).toBe(true);
        return scratch.u32();
      };
      const free = (id: number) => ioctlWith(sys, scratch, fd, U.VHOST_FREE_WORKER, U.encodeU32(id));
      const base = self.signal.nrThreads;
      expect(yield* newWorker()).toBe(1);
      expect(yield* newWorker()).toBe(2);
      expect(yield* newWorker()).toBe(3);
      expect(self.signal.nrThreads).toBe(base + 3);
      expect((yield* free(2)).ok).toBe(true);
      expect(self.signal.nrThreads).toBe(base + 2);
      expect(errnoOf(yield* free(2))).toBe(Errno.ENODEV);
      expect(yield* newWorker()).toBe(2);
      // every vq to worker 3: worker 0 becomes unattached and can be freed, and id 0 is reused
      for (let i = 0; i < NVQS; i++)
        expect((yield* ioctlWith(sys, scratch, fd, U.VHOST_ATTACH_VRING_WORKER, vringWorker(i, 3))).ok).toBe(
          true,
        );
      expect((yield* free(0)).ok).toBe(true);
      expect(yield* newWorker()).toBe(0);
      expect([...devOf(sys, fd).dev.workers.keys()].sort()).toEqual([0, 1, 2, 3]);
    });
    expect(tasksNamed(k, /^vhost-/)).toHaveLength(0);
    checkInvariants(k);
  });
});

// ------------------------------------------------------------------ I/O

describe('virtio-scsi I/O against an in-memory LUN', () => {
  it.each(['linux-5.15', 'linux-6.4', 'linux-6.12', 'linux-6.17-kthread'])(
    '%s: WRITE(10) then READ(10) round-trips bytes between the guest and the LUN',
    (profile) => {
      const k = boot(profile);
      const tpg = vhostScsiMakeTarget(k, { wwpn: WWPN, lunBlocks: 32 });
      const lun = tpg.luns.get(0)!;
      const seeded = pattern(512, 99);
      lun.data.set(seeded, 10 * 512);
      runQemu(k, function* (sys) {
        const s = yield* setupVhostScsi(sys);
        const io = VHOST_SCSI_VQ_IO;
        const data = pattern(1024, 7);
        const w = yield* scsiCommand(sys, s, io, { cdb: cdbRw10(WRITE_10, 2, 2), dataOut: data });
        expect(w.resp).toMatchObject({
          response: VIRTIO_SCSI_S_OK,
          status: SAM_STAT_GOOD,
          resid: 0,
          senseLen: 0,
        });
        expect(w.usedLen).toBe(0);
        expect(lun.data.slice(2 * 512, 4 * 512)).toEqual(data);
        const r = yield* scsiCommand(sys, s, io, { cdb: cdbRw10(READ_10, 2, 2), dataInLen: 1024 });
        expect(r.resp).toMatchObject({ response: VIRTIO_SCSI_S_OK, status: SAM_STAT_GOOD, resid: 0 });
        expect(r.dataIn).toEqual(data);
        // bytes put on the LUN by the host are what the guest reads
        const r2 = yield* scsiCommand(sys, s, io, { cdb: cdbRw10(READ_10, 10, 1), dataInLen: 512 });
        expect(r2.dataIn).toEqual(seeded);
        const cap = new Uint8Array(10);
        cap[0] = READ_CAPACITY;
        const c = yield* scsiCommand(sys, s, io, { cdb: cap, dataInLen: 8 });
        const cd = new DataView(c.dataIn.buffer);
        expect([cd.getUint32(0, false), cd.getUint32(4, false)]).toEqual([31, 512]);
        expect(devOf(sys, s.fd).completed).toBe(4);
      });
      expect(tpg.tvTpgVhostCount).toBe(0);
      expect(tasksNamed(k, /^vhost-/)).toHaveLength(0);
      checkInvariants(k);
    },
  );

  it('errors reach the guest as SCSI status and virtio responses: LBA out of range, unmapped LUN, unknown target, short READ buffer, WRITE length mismatch', () => {
    const k = boot('linux-6.12');
    vhostScsiMakeTarget(k, { wwpn: WWPN, lunBlocks: 8 });
    runQemu(k, function* (sys) {
      const s = yield* setupVhostScsi(sys);
      const io = VHOST_SCSI_VQ_IO;
      const senseOf = (r: IoResult) => [r.resp.sense[2], r.resp.sense[12], r.resp.sense[13]];
      const oob = yield* scsiCommand(sys, s, io, { cdb: cdbRw10(READ_10, 7, 2), dataInLen: 1024 });
      expect(oob.resp.status).toBe(SAM_STAT_CHECK_CONDITION);
      expect(oob.resp.senseLen).toBe(96);
      expect(senseOf(oob)).toEqual([ILLEGAL_REQUEST, 0x21, 0x00]);
      const nolun = yield* scsiCommand(sys, s, io, { lun: 3, cdb: cdbRw10(READ_10, 0, 1), dataInLen: 512 });
      expect(senseOf(nolun)).toEqual([ILLEGAL_REQUEST, 0x25, 0x00]);
      const notarget = yield* scsiCommand(sys, s, io, {
        target: 9,
        cdb: cdbRw10(READ_10, 0, 1),
        dataInLen: 512,
      });
      expect(notarget.resp.response).toBe(VIRTIO_SCSI_S_BAD_TARGET);
      // READ of 2 blocks into 512 bytes: 512 transferred, 512 residual (overflow)
      const short = yield* scsiCommand(sys, s, io, { cdb: cdbRw10(READ_10, 0, 2), dataInLen: 512 });
      expect(short.resp).toMatchObject({ status: SAM_STAT_GOOD, resid: 512 });
      const wmis = yield* scsiCommand(sys, s, io, {
        cdb: cdbRw10(WRITE_10, 0, 2),
        dataOut: new Uint8Array(512),
      });
      expect(wmis.resp.status).toBe(SAM_STAT_CHECK_CONDITION);
      expect(senseOf(wmis)).toEqual([ILLEGAL_REQUEST, 0x0e, 0x03]);
    });
    checkInvariants(k);
  });

  it('an I/O queue attached to a second worker is handled and completed by that worker; FREE after moving it back', () => {
    const k = boot('linux-6.12');
    const tpg = vhostScsiMakeTarget(k, { wwpn: WWPN, lunBlocks: 8 });
    runQemu(k, function* (sys, self) {
      const s = yield* setupVhostScsi(sys, { ioQueues: 2 });
      const dev = devOf(sys, s.fd).dev;
      expect((yield* ioctlWith(sys, s.scratch, s.fd, U.VHOST_NEW_WORKER)).ok).toBe(true);
      expect(s.scratch.u32()).toBe(1);
      const io1 = VHOST_SCSI_VQ_IO + 1;
      // the vq has a kick fd: attaching waits a grace period and flushes the old worker
      expect(
        (yield* ioctlWith(sys, s.scratch, s.fd, U.VHOST_ATTACH_VRING_WORKER, vringWorker(io1, 1))).ok,
      ).toBe(true);
      const [w0, w1] = [dev.workers.get(0)!, dev.workers.get(1)!];
      const ran0 = w0.ran;
      const ran1 = w1.ran;
      const data = pattern(512, 3);
      const w = yield* scsiCommand(sys, s, io1, { cdb: cdbRw10(WRITE_10, 5, 1), dataOut: data });
      expect(w.resp.status).toBe(SAM_STAT_GOOD);
      // handle_kick and the completion work both ran on worker 1, a thread of the owner
      expect(w1.ran - ran1).toBe(2);
      expect(w0.ran).toBe(ran0);
      expect(w1.task!.tgid).toBe(self.tgid);
      expect(tpg.luns.get(0)!.data.slice(5 * 512, 6 * 512)).toEqual(data);
      // the other I/O queue still goes to worker 0
      const r = yield* scsiCommand(sys, s, VHOST_SCSI_VQ_IO, { cdb: cdbRw10(READ_10, 5, 1), dataInLen: 512 });
      expect(r.dataIn).toEqual(data);
      expect(w0.ran - ran0).toBe(2);
      expect(errnoOf(yield* ioctlWith(sys, s.scratch, s.fd, U.VHOST_FREE_WORKER, U.encodeU32(1)))).toBe(
        Errno.EBUSY,
      );
      expect(
        (yield* ioctlWith(sys, s.scratch, s.fd, U.VHOST_ATTACH_VRING_WORKER, vringWorker(io1, 0))).ok,
      ).toBe(true);
      expect((yield* ioctlWith(sys, s.scratch, s.fd, U.VHOST_FREE_WORKER, U.encodeU32(1))).ok).toBe(true);
      const again = yield* scsiCommand(sys, s, io1, { cdb: cdbRw10(READ_10, 5, 1), dataInLen: 512 });
      expect(again.dataIn).toEqual(data);
    });
    expect(tasksNamed(k, /^vhost-/)).toHaveLength(0);
    checkInvariants(k);
  });

  it('a full ring of 64 requests in one kick is answered in full (header and data in one descriptor)', () => {
    const k = boot('linux-6.12');
    const tpg = vhostScsiMakeTarget(k, { wwpn: WWPN, lunBlocks: 64 });
    runQemu(k, function* (sys) {
      const s = yield* setupVhostScsi(sys, { num: 128 });
      const q = s.queues[VHOST_SCSI_VQ_IO]!;
      const resps: number[] = [];
      for (let i = 0; i < 64; i++) {
        const hdr = encodeVirtioScsiCmdReq({
          lun: virtioScsiLun(1, 0),
          tag: BigInt(i),
          cdb: cdbRw10(WRITE_10, i, 1),
        });
        const g = q.allocBuffer(hdr.length + 512);
        q.writeBytes(g, hdr);
        q.writeBytes(g + hdr.length, new Uint8Array(512).fill(i));
        const rg = q.allocBuffer(SIZEOF_VIRTIO_SCSI_CMD_RESP);
        resps.push(rg);
        expect(
          q.addBuf([{ gpa: g, len: hdr.length + 512 }], [{ gpa: rg, len: SIZEOF_VIRTIO_SCSI_CMD_RESP }], i)
            .ok,
        ).toBe(true);
      }
      q.publish();
      yield* kick(sys, s.kickFd[VHOST_SCSI_VQ_IO]!);
      const got: number[] = [];
      while (got.length < 64) {
        yield* sys.read(s.callFd[VHOST_SCSI_VQ_IO]!, 8);
        got.push(...q.getUsed().map((u) => u.token));
      }
      expect([...got].sort((a, b) => a - b)).toEqual([...Array(64).keys()]);
      for (const rg of resps)
        expect(decodeVirtioScsiCmdResp(q.readBytes(rg, SIZEOF_VIRTIO_SCSI_CMD_RESP)).status).toBe(0);
      for (let i = 0; i < 64; i++) expect(tpg.luns.get(0)!.data[i * 512 + 100]).toBe(i);
    });
    checkInvariants(k);
  });
});
