/**
 * /dev/vhost-scsi. Models drivers/vhost/scsi.c, v6.12 (read at torvalds/linux and at the
 * ~v6.16 tree Kingxukai/linux 0291023e, whose ioctl, open, endpoint and I/O paths are the same):
 * open with a control, an event and `max_io_vqs` (default 128) I/O virtqueues; the ioctl switch
 * in the kernel's order, including the four worker ioctls vhost-scsi alone routes to
 * vhost_worker_ioctl() (v6.5+, d74b55e65502; the profile switch vhostMultiWorker); SET/CLEAR
 * ENDPOINT against the target registry below; the I/O handler that turns virtio-scsi
 * READ(10)/WRITE(10) requests into bytes of an in-memory LUN; and release.
 *
 * The LIO target core (drivers/target) is reduced to what a vhost-scsi guest can observe: a
 * target port group (struct vhost_scsi_tpg, created through configfs in Linux) holding LUNs
 * backed by memory like the rd_mcp backstore, with SBC parsing of TEST UNIT READY, READ
 * CAPACITY(10), READ(10) and WRITE(10) (target_core_sbc.c sbc_parse_cdb(), the size check of
 * target_core_transport.c target_cmd_size_check()). Differences, on purpose:
 *  - the command executes synchronously inside the I/O handler (Linux submits it to the target
 *    core, which completes it from its own workqueue and then calls vhost_scsi_release_cmd());
 *    the completion is still a second vhost work item queued on the virtqueue's worker, as in
 *    Linux, so multi-worker placement is observable;
 *  - data moves by copying through the worker's address space instead of pinning pages
 *    (vhost_scsi_mapal / iov_iter_get_pages2);
 *  - no T10-PI verification (the PI header layout is parsed and protection bytes are skipped),
 *    no dirty logging (VHOST_F_LOG_ALL is accepted, nothing is logged);
 *  - a LUN RESET task-management request is answered by a work item queued on the control
 *    virtqueue directly (Linux first flushes the device from a system workqueue);
 *  - one completion work per virtqueue in every era (before 6.5 Linux had one per device; with a
 *    single worker the observable order is the same).
 */
import { Errno, err, ok, type Result } from '../kernel/errno.js';
import { File, type FileOps } from '../kernel/files.js';
import type { Kernel } from '../kernel/kernel.js';
import type { MM } from '../kernel/mm.js';
import {
  Completion,
  complete,
  type KGen,
  mutexLock,
  mutexUnlock,
  waitForCompletion,
} from '../kernel/sched.js';
import { Slot } from '../kernel/slot.js';
import { copyFromIovs, copyToIovs, iovLength } from './iov.js';
import * as U from './uapi.js';
import {
  VhostDev,
  type VhostVirtqueue,
  VhostWork,
  vhostDevAckFeatures,
  vhostDevCleanup,
  vhostDevFlush,
  vhostDevIoctl,
  vhostDevStop,
  vhostExceedsWeight,
  vhostFeatureIoctl,
  vhostSignal,
  vhostVqWorkQueue,
  vhostVringIoctl,
  vhostWorkerIoctl,
  vqErr,
} from './vhost.js';
import {
  type Iov,
  UIO_MAXIOV,
  vhostAddUsed,
  vhostDisableNotify,
  vhostEnableNotify,
  vhostGetVqDesc,
  vhostNotify,
  vhostVqInitAccess,
} from './vring.js';

// ------------------------------------------------------------------ constants (scsi.c)

export const VHOST_SCSI_VQ_CTL = 0;
export const VHOST_SCSI_VQ_EVT = 1;
export const VHOST_SCSI_VQ_IO = 2;
/** VHOST_SCSI_MAX_TARGET: vs_tpg[] is indexed by the tpgt the guest puts in lun[1] */
export const VHOST_SCSI_MAX_TARGET = 256;
/** VHOST_SCSI_MAX_IO_VQ: the cap of the max_io_vqs module parameter */
export const VHOST_SCSI_MAX_IO_VQ = 1024;
/** the max_io_vqs default (module_param_named(max_io_vqs, ...), v6.0+: "The default is 128") */
export const VHOST_SCSI_DEFAULT_MAX_IO_VQS = 128;
export const VHOST_SCSI_MAX_EVENT = 128;
/** VHOST_SCSI_WEIGHT: requests handled before requeueing the handler */
export const VHOST_SCSI_WEIGHT = 256;
export const VHOST_SCSI_MAX_CDB_SIZE = 32;
/** TRANSPORT_IQN_LEN: the size of vhost_scsi_target.vhost_wwpn */
export const TRANSPORT_IQN_LEN = 224;
/** TRANSPORT_SENSE_BUFFER: the sense length LIO reports with a CHECK CONDITION */
export const TRANSPORT_SENSE_BUFFER = 96;

/** include/uapi/linux/vhost.h (declared _IOW for both, as in the header) */
export const VHOST_SCSI_SET_EVENTS_MISSED = U._IOW(U.VHOST_VIRTIO, 0x43, 4);
export const VHOST_SCSI_GET_EVENTS_MISSED = U._IOW(U.VHOST_VIRTIO, 0x44, 4);

// include/uapi/linux/virtio_scsi.h
export const VIRTIO_SCSI_F_INOUT = 0;
export const VIRTIO_SCSI_F_HOTPLUG = 1;
export const VIRTIO_SCSI_F_CHANGE = 2;
export const VIRTIO_SCSI_F_T10_PI = 3;
export const VIRTIO_SCSI_CDB_SIZE = 32;
export const VIRTIO_SCSI_SENSE_SIZE = 96;
/** sizeof(struct virtio_scsi_cmd_req): lun[8] tag(u64) task_attr prio crn cdb[32], packed */
export const SIZEOF_VIRTIO_SCSI_CMD_REQ = 51;
/** sizeof(struct virtio_scsi_cmd_req_pi): … crn, pi_bytesout(u32), pi_bytesin(u32), cdb[32] */
export const SIZEOF_VIRTIO_SCSI_CMD_REQ_PI = 59;
/** sizeof(struct virtio_scsi_cmd_resp): sense_len resid status_qualifier status response sense[96] */
export const SIZEOF_VIRTIO_SCSI_CMD_RESP = 108;
export const SIZEOF_VIRTIO_SCSI_CTRL_TMF_REQ = 24;
export const SIZEOF_VIRTIO_SCSI_CTRL_TMF_RESP = 1;
export const SIZEOF_VIRTIO_SCSI_CTRL_AN_REQ = 16;
export const SIZEOF_VIRTIO_SCSI_CTRL_AN_RESP = 5;
export const SIZEOF_VIRTIO_SCSI_EVENT = 16;
// response codes
export const VIRTIO_SCSI_S_OK = 0;
export const VIRTIO_SCSI_S_BAD_TARGET = 3;
export const VIRTIO_SCSI_S_FUNCTION_SUCCEEDED = 10;
export const VIRTIO_SCSI_S_FUNCTION_REJECTED = 11;
// control request types and TMF subtypes
export const VIRTIO_SCSI_T_TMF = 0;
export const VIRTIO_SCSI_T_AN_QUERY = 1;
export const VIRTIO_SCSI_T_AN_SUBSCRIBE = 2;
export const VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET = 5;
// events
export const VIRTIO_SCSI_T_NO_EVENT = 0;
export const VIRTIO_SCSI_T_EVENTS_MISSED = 0x80000000;

// include/scsi/scsi_proto.h, scsi_common.h
export const TEST_UNIT_READY = 0x00;
export const READ_CAPACITY = 0x25;
export const READ_10 = 0x28;
export const WRITE_10 = 0x2a;
export const SAM_STAT_GOOD = 0x00;
export const SAM_STAT_CHECK_CONDITION = 0x02;
export const SAM_STAT_TASK_SET_FULL = 0x28;
export const ILLEGAL_REQUEST = 0x05;

/**
 * VHOST_SCSI_FEATURES: the core set plus HOTPLUG and T10_PI. (scsi.c still says VERSION_1
 * "can't be set yet", but VHOST_FEATURES has included it since v4.x, so it is offered.)
 */
export const VHOST_SCSI_FEATURES =
  U.VHOST_FEATURES | U.bit(VIRTIO_SCSI_F_HOTPLUG) | U.bit(VIRTIO_SCSI_F_T10_PI);

/** include/linux/dma-direction.h, as vhost_scsi_handle_vq() decides it */
type DataDirection = 'none' | 'to-device' | 'from-device';

/** x86-64 TASK_SIZE_MAX with 4-level paging: what access_ok() accepts. */
const TASK_SIZE_MAX = 0x7ffffffff000;

// ------------------------------------------------------------------ module state

/** vhost_scsi module parameters. */
export interface VhostScsiModule {
  /** max_io_vqs (0644): I/O virtqueues per device opened afterwards; 0 → 1, > 1024 → 1024 */
  maxIoVqs: number;
}

const modules = new Slot<Kernel, VhostScsiModule>('vhost_scsi');
const targets = new Slot<Kernel, VhostScsiTpg[]>('vhost_scsi targets');

/** The vhost_scsi module of `k` (created at first use with the defaults). */
export function vhostScsiModule(k: Kernel): VhostScsiModule {
  let m = modules.get(k);
  if (!m) {
    m = { maxIoVqs: VHOST_SCSI_DEFAULT_MAX_IO_VQS };
    modules.set(k, m);
  }
  return m;
}

// ------------------------------------------------------------------ the target side (LIO)

/** A logical unit backed by memory (the rd_mcp backstore): `blocks` blocks of 512 bytes. */
export class ScsiLun {
  readonly data: Uint8Array;
  constructor(
    /** the unpacked LUN the guest addresses (lun[2..3] & 0x3fff) */
    readonly unpackedLun: number,
    readonly blocks: number,
    readonly blockSize = 512,
  ) {
    this.data = new Uint8Array(blocks * blockSize);
  }
}

/**
 * struct vhost_scsi_tpg with its struct vhost_scsi_tport: one target port group of the vhost
 * fabric, as configfs builds it (mkdir target/vhost/<wwpn>/tpgt_<n>, LUN links, "nexus").
 */
export class VhostScsiTpg {
  /** tv_tpg_vhost_count: how many vhost-scsi devices hold this tpg (0 or 1) */
  tvTpgVhostCount = 0;
  /** vhost_scsi: the device holding it */
  vhostScsi: VhostScsi | null = null;
  /** the LUNs mapped into this tpg, by unpacked LUN */
  readonly luns = new Map<number, ScsiLun>();
  constructor(
    /** tport->tport_name: the WWPN string SET_ENDPOINT must match (strcmp) */
    readonly tportName: string,
    /** tport_tpgt: the guest's target number (lun[1]) */
    readonly tportTpgt: number,
    /** tpg_nexus exists (echo naa.… > nexus); without it SET_ENDPOINT skips the tpg */
    public nexus: boolean,
  ) {}
}

export interface VhostScsiTargetOptions {
  /** the tport name, e.g. "naa.5001405bd7e3b8a1" */
  wwpn: string;
  /** target portal group tag (default 1); must be < VHOST_SCSI_MAX_TARGET */
  tpgt?: number;
  /** one LUN 0 of this many 512-byte blocks (default 64) when `luns` is not given */
  lunBlocks?: number;
  /** LUNs to map: unpacked LUN → blocks */
  luns?: Readonly<Record<number, number>>;
  /** create the I_T nexus (default true) */
  nexus?: boolean;
}

/** The vhost_scsi_list of `k`: every tpg configured through configfs. */
export function vhostScsiTargets(k: Kernel): VhostScsiTpg[] {
  let l = targets.get(k);
  if (!l) targets.set(k, (l = []));
  return l;
}

/**
 * Configure a target port group with memory-backed LUNs, as an administrator does through
 * configfs before starting a VM (vhost_scsi_make_tport, vhost_scsi_make_tpg,
 * vhost_scsi_port_link, vhost_scsi_make_nexus). Precondition: tpgt < 256.
 */
export function vhostScsiMakeTarget(k: Kernel, o: VhostScsiTargetOptions): VhostScsiTpg {
  const tpgt = o.tpgt ?? 1;
  if (tpgt < 0 || tpgt >= VHOST_SCSI_MAX_TARGET) throw new Error(`tpgt ${tpgt} out of range`);
  const tpg = new VhostScsiTpg(o.wwpn, tpgt, o.nexus ?? true);
  const luns = o.luns ?? { 0: o.lunBlocks ?? 64 };
  for (const [lun, blocks] of Object.entries(luns))
    tpg.luns.set(Number(lun), new ScsiLun(Number(lun), blocks));
  vhostScsiTargets(k).push(tpg);
  return tpg;
}

/** rmdir of the tpg: refused (EBUSY) while a vhost-scsi device holds it (target_depend_item). */
export function vhostScsiDropTarget(k: Kernel, tpg: VhostScsiTpg): Result<void> {
  if (tpg.tvTpgVhostCount) return err(Errno.EBUSY);
  const l = vhostScsiTargets(k);
  const i = l.indexOf(tpg);
  if (i >= 0) l.splice(i, 1);
  return ok();
}

/** SCSI fixed-format sense data (SPC-4 §4.5.3) as LIO builds it: key, ASC, ASCQ. */
function fixedSense(key: number, asc: number, ascq: number): Uint8Array {
  const s = new Uint8Array(TRANSPORT_SENSE_BUFFER);
  s[0] = 0x70;
  s[2] = key;
  s[7] = 0x0a;
  s[12] = asc;
  s[13] = ascq;
  return s;
}

/** What the target core reports for one command (se_cmd's scsi_status, sense and residual). */
interface TargetResult {
  status: number;
  sense: Uint8Array | null;
  residual: number;
  /** bytes to transfer to the initiator (READ direction) */
  dataIn: Uint8Array | null;
}

const checkCondition = (asc: number, ascq: number): TargetResult => ({
  status: SAM_STAT_CHECK_CONDITION,
  sense: fixedSense(ILLEGAL_REQUEST, asc, ascq),
  residual: 0,
  dataIn: null,
});

/**
 * The target core for one command: LUN lookup (transport_lookup_cmd_lun: an unmapped LUN is
 * TCM_NON_EXISTENT_LUN, ILLEGAL REQUEST 25h/00h), sbc_parse_cdb (unsupported opcode 20h/00h;
 * LBA beyond the end 21h/00h, checked before the size), target_cmd_size_check (v6.x: a READ
 * whose expected length differs transfers min(size, expected) and reports the difference as
 * residual; a WRITE data CDB whose length differs is rejected with INVALID FIELD IN COMMAND
 * INFORMATION UNIT, 0Eh/03h — 5.15 answered INVALID FIELD IN CDB, 24h/00h), then the rd_mcp
 * read or write of the LUN's bytes. Simplification: a WRITE(10) that carries data without
 * device-readable data buffers is rejected with 0Eh/03h too (Linux would write whatever the
 * pinned buffers hold).
 */
function targetExecute(
  tpg: VhostScsiTpg,
  unpackedLun: number,
  cdb: Uint8Array,
  dir: DataDirection,
  expLen: number,
  dataOut: Uint8Array | null,
): TargetResult {
  const lun = tpg.luns.get(unpackedLun);
  if (!lun) return checkCondition(0x25, 0x00);
  const be16 = (o: number) => (cdb[o]! << 8) | cdb[o + 1]!;
  const be32 = (o: number) =>
    ((cdb[o]! << 24) | (cdb[o + 1]! << 16) | (cdb[o + 2]! << 8) | cdb[o + 3]!) >>> 0;
  const readLike = (bytes: Uint8Array): TargetResult => {
    const size = bytes.length;
    if (dir === 'to-device') return checkCondition(0x0e, 0x03);
    const n = Math.min(size, expLen);
    return {
      status: SAM_STAT_GOOD,
      sense: null,
      residual: Math.abs(size - expLen),
      dataIn: bytes.slice(0, n),
    };
  };
  switch (cdb[0]) {
    case TEST_UNIT_READY:
      return { status: SAM_STAT_GOOD, sense: null, residual: expLen, dataIn: null };
    case READ_CAPACITY: {
      const b = new Uint8Array(8);
      const d = new DataView(b.buffer);
      d.setUint32(0, lun.blocks - 1, false);
      d.setUint32(4, lun.blockSize, false);
      return readLike(b);
    }
    case READ_10:
    case WRITE_10: {
      const lba = be32(2);
      const sectors = be16(7);
      if (lba + sectors > lun.blocks) return checkCondition(0x21, 0x00);
      const size = sectors * lun.blockSize;
      const off = lba * lun.blockSize;
      if (cdb[0] === READ_10) return readLike(lun.data.slice(off, off + size));
      if (size !== expLen || (size && dir !== 'to-device')) return checkCondition(0x0e, 0x03);
      if (size) lun.data.set(dataOut!.subarray(0, size), off);
      return { status: SAM_STAT_GOOD, sense: null, residual: 0, dataIn: null };
    }
    default:
      return checkCondition(0x20, 0x00);
  }
}

// ------------------------------------------------------------------ uapi structs

/** struct vhost_scsi_target { int abi_version; char vhost_wwpn[224]; u16 vhost_tpgt; u16 reserved; } */
export interface VhostScsiTarget {
  abiVersion: number;
  wwpn: string;
  tpgt: number;
  reserved?: number;
}

export function encodeVhostScsiTarget(t: VhostScsiTarget): Uint8Array {
  const b = new Uint8Array(U.SIZEOF_VHOST_SCSI_TARGET);
  const d = new DataView(b.buffer);
  d.setInt32(0, t.abiVersion, true);
  b.set(new TextEncoder().encode(t.wwpn).subarray(0, TRANSPORT_IQN_LEN), 4);
  d.setUint16(228, t.tpgt, true);
  d.setUint16(230, t.reserved ?? 0, true);
  return b;
}

/** copy_from_user of a struct vhost_scsi_target; the WWPN is read up to its NUL (strcmp). */
export function readVhostScsiTarget(mm: MM | null, addr: number): Result<Required<VhostScsiTarget>> {
  if (!mm) return err(Errno.EFAULT);
  const v = mm.view(addr, U.SIZEOF_VHOST_SCSI_TARGET);
  if (!v.ok) return v;
  const d = v.value;
  const name = new Uint8Array(d.buffer, d.byteOffset + 4, TRANSPORT_IQN_LEN);
  const nul = name.indexOf(0);
  return ok({
    abiVersion: d.getInt32(0, true),
    wwpn: new TextDecoder().decode(name.subarray(0, nul < 0 ? TRANSPORT_IQN_LEN : nul)),
    tpgt: d.getUint16(228, true),
    reserved: d.getUint16(230, true),
  });
}

/** The 8-byte virtio-scsi LUN field: 1, target, flat-space LUN (0x4000 | lun), zeros. */
export function virtioScsiLun(target: number, lun: number): Uint8Array {
  return Uint8Array.of(1, target, 0x40 | ((lun >> 8) & 0x3f), lun & 0xff, 0, 0, 0, 0);
}

export interface VirtioScsiCmdReq {
  /** the 8-byte LUN field (see virtioScsiLun) */
  lun: Uint8Array;
  tag: bigint;
  taskAttr?: number;
  cdb: Uint8Array;
}

/** Encode a struct virtio_scsi_cmd_req (51 bytes, little-endian tag). */
export function encodeVirtioScsiCmdReq(r: VirtioScsiCmdReq): Uint8Array {
  const b = new Uint8Array(SIZEOF_VIRTIO_SCSI_CMD_REQ);
  b.set(r.lun.subarray(0, 8), 0);
  new DataView(b.buffer).setBigUint64(8, r.tag, true);
  b[16] = r.taskAttr ?? 0;
  b.set(r.cdb.subarray(0, VIRTIO_SCSI_CDB_SIZE), 19);
  return b;
}

/** struct virtio_scsi_cmd_resp, decoded */
export interface VirtioScsiCmdResp {
  senseLen: number;
  resid: number;
  statusQualifier: number;
  status: number;
  response: number;
  sense: Uint8Array;
}

export function decodeVirtioScsiCmdResp(b: Uint8Array): VirtioScsiCmdResp {
  const d = new DataView(b.buffer, b.byteOffset, SIZEOF_VIRTIO_SCSI_CMD_RESP);
  return {
    senseLen: d.getUint32(0, true),
    resid: d.getUint32(4, true),
    statusQualifier: d.getUint16(8, true),
    status: d.getUint8(10),
    response: d.getUint8(11),
    sense: b.slice(12, 12 + VIRTIO_SCSI_SENSE_SIZE),
  };
}

function encodeCmdResp(r: Omit<VirtioScsiCmdResp, 'statusQualifier'>): Uint8Array {
  const b = new Uint8Array(SIZEOF_VIRTIO_SCSI_CMD_RESP);
  const d = new DataView(b.buffer);
  d.setUint32(0, r.senseLen, true);
  d.setUint32(4, r.resid, true);
  d.setUint8(10, r.status);
  d.setUint8(11, r.response);
  b.set(r.sense.subarray(0, VIRTIO_SCSI_SENSE_SIZE), 12);
  return b;
}

/** A READ(10) or WRITE(10) CDB. */
export function cdbRw10(opcode: typeof READ_10 | typeof WRITE_10, lba: number, blocks: number): Uint8Array {
  const c = new Uint8Array(10);
  const d = new DataView(c.buffer);
  c[0] = opcode;
  d.setUint32(2, lba >>> 0, false);
  d.setUint16(7, blocks, false);
  return c;
}

// ------------------------------------------------------------------ iovec helpers

/** iov_iter_advance(): the iovecs that remain after skipping `n` bytes. */
function iovAdvance(iovs: readonly Iov[], n: number): Iov[] {
  const out: Iov[] = [];
  for (const v of iovs) {
    if (n >= v.len) {
      n -= v.len;
      continue;
    }
    out.push({ addr: v.addr + n, len: v.len - n });
    n = 0;
  }
  return out;
}

/** models vhost_vq_access_ok() for this model: access_ok() of the three ring ranges. */
function vqAccessOk(vq: VhostVirtqueue): boolean {
  const r = vq.ring;
  const fits = (addr: number, size: number) => addr >= 0 && addr + size <= TASK_SIZE_MAX;
  return fits(r.descUser, 16 * r.num) && fits(r.availUser, 6 + 2 * r.num) && fits(r.usedUser, 6 + 8 * r.num);
}

/** models vhost_vq_is_setup(): the three ring addresses are set and pass access_ok. */
function vqIsSetup(vq: VhostVirtqueue): boolean {
  const r = vq.ring;
  return r.availUser !== 0 && r.descUser !== 0 && r.usedUser !== 0 && vqAccessOk(vq);
}

// ------------------------------------------------------------------ device structures

/** struct vhost_scsi_inflight: a reference count the flush waits on. */
class Inflight {
  refs = 1;
  readonly comp = new Completion('vhost_scsi_inflight.comp');
}

/** struct vhost_scsi_cmd (the part this model keeps). */
interface ScsiCmd {
  readonly svq: VhostScsiVirtqueue;
  /** tvc_vq_desc */
  readonly head: number;
  /** tvc_resp_iovs */
  readonly respIovs: Iov[];
  readonly inflight: Inflight;
  result: TargetResult;
}

/** struct vhost_scsi_virtqueue: per-vq inflight tracking, the command pool and completions. */
class VhostScsiVirtqueue {
  readonly inflights: [Inflight, Inflight] = [new Inflight(), new Inflight()];
  inflightIdx = 0;
  /** max_cmds: size of the scsi_cmds pool, set at SET_ENDPOINT; 0 = no pool */
  maxCmds = 0;
  /** tags taken from scsi_tags */
  cmdsInUse = 0;
  /** completion_list (llist: pushed at the head) */
  completionList: ScsiCmd[] = [];
  readonly completionWork: VhostWork;
  constructor(
    readonly vs: VhostScsi,
    readonly vq: VhostVirtqueue,
  ) {
    const self = this;
    this.completionWork = new VhostWork(function* (k) {
      yield* vhostScsiCompleteCmdWork(k, self);
    }, `vhost_scsi_complete_cmd_work vq${vq.index}`);
  }
}

/** struct vhost_scsi_evt */
interface ScsiEvt {
  event: number;
  lun: Uint8Array;
  reason: number;
}

/** struct vhost_scsi */
export class VhostScsi {
  readonly dev: VhostDev;
  readonly svqs: VhostScsiVirtqueue[];
  /** vs_tpg: the claimed tpgs by tpgt, null until SET_ENDPOINT */
  vsTpg: (VhostScsiTpg | null)[] | null = null;
  /** vs_vhost_wwpn */
  vsVhostWwpn = '';
  /** vs_events_missed, vs_events_nr, vs_event_list and vs_event_work */
  eventsMissed = false;
  eventsNr = 0;
  eventList: ScsiEvt[] = [];
  readonly eventWork: VhostWork;
  /** commands completed towards the guest (model observation) */
  completed = 0;
  constructor(readonly k: Kernel) {
    const m = vhostScsiModule(k);
    let nio = m.maxIoVqs;
    if (nio > VHOST_SCSI_MAX_IO_VQ) nio = VHOST_SCSI_MAX_IO_VQ;
    else if (nio === 0) nio = 1;
    const handlers: ((kk: Kernel, vq: VhostVirtqueue) => KGen<void>)[] = [
      (kk, vq) => vhostScsiCtlHandleVq(kk, this, vq),
      (kk, vq) => vhostScsiEvtHandleKick(kk, this, vq),
    ];
    for (let i = 0; i < nio; i++) handlers.push((kk, vq) => vhostScsiHandleVq(kk, this, vq));
    this.dev = new VhostDev(k, 'vhost-scsi', handlers);
    this.svqs = this.dev.vqs.map((vq) => new VhostScsiVirtqueue(this, vq));
    const self = this;
    this.eventWork = new VhostWork(function* (kk) {
      yield* vhostScsiCompleteEvents(kk, self, false);
    }, 'vhost_scsi_evt_work');
  }
  vq(i: number): VhostVirtqueue {
    return this.dev.vqs[i]!;
  }
}

const devices = new Slot<File, VhostScsi>('vhost_scsi');
/** The vhost-scsi device behind an open /dev/vhost-scsi file, else null. */
export function vhostScsiOf(f: File | null): VhostScsi | null {
  return f ? (devices.get(f) ?? null) : null;
}

// ------------------------------------------------------------------ inflight and flush

/** models vhost_scsi_init_inflight(): switch every vq to a fresh inflight, returning the old ones. */
function* vhostScsiInitInflight(k: Kernel, vs: VhostScsi): KGen<Inflight[]> {
  const old: Inflight[] = [];
  for (const svq of vs.svqs) {
    yield* mutexLock(k, svq.vq.mutex);
    old.push(svq.inflights[svq.inflightIdx]!);
    svq.inflightIdx ^= 1;
    svq.inflights[svq.inflightIdx] = new Inflight(); // kref_init + init_completion
    mutexUnlock(k, svq.vq.mutex);
  }
  return old;
}

function inflightPut(k: Kernel, i: Inflight): void {
  if (--i.refs === 0) complete(k, i.comp);
}

/**
 * models vhost_scsi_flush() (callers hold the dev mutex): start new inflights, drop the
 * initial reference of the old ones, flush every worker, then wait until every request issued
 * before the flush has released its command.
 */
function* vhostScsiFlush(k: Kernel, vs: VhostScsi): KGen<void> {
  const old = yield* vhostScsiInitInflight(k, vs);
  for (const i of old) inflightPut(k, i);
  yield* vhostDevFlush(k, vs.dev);
  for (const i of old) yield* waitForCompletion(k, i.comp);
}

// ------------------------------------------------------------------ commands

/** models vhost_scsi_release_cmd_res(): return the tag, drop the inflight reference. */
function releaseCmdRes(k: Kernel, cmd: ScsiCmd): void {
  cmd.svq.cmdsInUse--;
  inflightPut(k, cmd.inflight);
}

/**
 * models vhost_scsi_release_cmd() for an I/O command, v6.12: put it on the vq's completion
 * list and queue the completion work on the vq's worker; when that is refused (no worker, or
 * a killed one) drop every listed command without answering (vhost_scsi_drop_cmds).
 */
function vhostScsiReleaseCmd(k: Kernel, cmd: ScsiCmd): void {
  const svq = cmd.svq;
  svq.completionList.push(cmd);
  if (!vhostVqWorkQueue(k, svq.vq, svq.completionWork)) {
    const l = svq.completionList;
    svq.completionList = [];
    for (const c of l) releaseCmdRes(k, c);
  }
}

/**
 * models vhost_scsi_complete_cmd_work(), v6.12 (runs in the vq's worker): take the whole
 * completion list (llist_del_all: newest first), write each virtio_scsi_cmd_resp, add the
 * descriptor to the used ring with length 0, release the command; signal once.
 */
function* vhostScsiCompleteCmdWork(k: Kernel, svq: VhostScsiVirtqueue): KGen<void> {
  const list = svq.completionList.reverse();
  svq.completionList = [];
  const vq = svq.vq;
  const mm = k.current!.mm;
  yield* mutexLock(k, vq.mutex);
  let signal = false;
  for (const cmd of list) {
    const r = cmd.result;
    const resp = encodeCmdResp({
      senseLen: r.sense ? TRANSPORT_SENSE_BUFFER : 0,
      resid: r.residual,
      status: r.status,
      response: VIRTIO_SCSI_S_OK,
      sense: r.sense ?? new Uint8Array(0),
    });
    const w = mm ? copyToIovs(mm, cmd.respIovs, resp) : err(Errno.EFAULT);
    if (w.ok && w.value === resp.length) {
      signal = true;
      vhostAddUsed(mm!, vq.ring, cmd.head, 0);
      svq.vs.completed++;
    } else if (k.trace.enabled) k.emit('vhost_scsi', 'Faulted on virtio_scsi_cmd_resp');
    releaseCmdRes(k, cmd);
  }
  mutexUnlock(k, vq.mutex);
  if (signal && mm) vhostSignal(k, vq, vhostNotify(mm, vq.ring));
}

/** models vhost_add_used_and_signal() */
function addUsedAndSignal(k: Kernel, mm: MM, vq: VhostVirtqueue, head: number, len: number): void {
  if (vhostAddUsed(mm, vq.ring, head, len).ok) vhostSignal(k, vq, vhostNotify(mm, vq.ring));
}

/** struct vhost_scsi_ctx */
interface ScsiCtx {
  head: number;
  out: Iov[];
  in: Iov[];
  outSize: number;
  inSize: number;
  reqSize: number;
  rspSize: number;
}

type CtxResult = { ret: 0; vc: ScsiCtx } | { ret: 'ENXIO' | 'EAGAIN'; vc: null };

/**
 * models vhost_scsi_get_desc(): fetch one chain; on error or an empty ring stop handling until
 * the next kick (ENXIO), unless buffers arrived while re-enabling notification (EAGAIN).
 */
function vhostScsiGetDesc(k: Kernel, mm: MM, vq: VhostVirtqueue): CtxResult {
  const d = vhostGetVqDesc(mm, vq.ring, UIO_MAXIOV);
  if (!d.ok) {
    vqErr(k, vq, `vhost_get_vq_desc errno ${d.errno}`);
    return { ret: 'ENXIO', vc: null };
  }
  if (d.value.head === vq.ring.num) {
    const en = vhostEnableNotify(mm, vq.ring);
    if (en.ok && en.value) {
      vhostDisableNotify(mm, vq.ring);
      return { ret: 'EAGAIN', vc: null };
    }
    return { ret: 'ENXIO', vc: null };
  }
  return {
    ret: 0,
    vc: {
      head: d.value.head,
      out: d.value.out,
      in: d.value.in,
      outSize: iovLength(d.value.out),
      inSize: iovLength(d.value.in),
      reqSize: 0,
      rspSize: 0,
    },
  };
}

/** models vhost_scsi_chk_size(): a too-small response buffer drops the request (EINVAL), a too-small request answers BAD_TARGET (EIO). */
function vhostScsiChkSize(k: Kernel, vq: VhostVirtqueue, vc: ScsiCtx): 0 | 'EINVAL' | 'EIO' {
  if (vc.inSize < vc.rspSize) {
    vqErr(k, vq, `Response buf too small, need min ${vc.rspSize} bytes got ${vc.inSize}`);
    return 'EINVAL';
  }
  if (vc.outSize < vc.reqSize) {
    vqErr(k, vq, `Request buf too small, need min ${vc.reqSize} bytes got ${vc.outSize}`);
    return 'EIO';
  }
  return 0;
}

/** vhost_scsi_send_bad_target() / vhost_scsi_send_status(): an immediate response. */
function sendImmediate(k: Kernel, mm: MM, vq: VhostVirtqueue, vc: ScsiCtx, bytes: Uint8Array): void {
  const w = copyToIovs(mm, vc.in, bytes);
  if (w.ok && w.value === bytes.length) addUsedAndSignal(k, mm, vq, vc.head, 0);
  else if (k.trace.enabled) k.emit('vhost_scsi', `Faulted on virtio scsi response (${bytes.length} bytes)`);
}

function cmdRespBytes(status: number, response: number): Uint8Array {
  return encodeCmdResp({ senseLen: 0, resid: 0, status, response, sense: new Uint8Array(0) });
}

/** vhost_buf_to_lun() */
function vhostBufToLun(lun: Uint8Array): number {
  return ((lun[2]! << 8) | lun[3]!) & 0x3fff;
}

/**
 * models vhost_scsi_handle_vq(), v6.12 (the I/O queues' handle_kick, in the vq's worker):
 * nothing before SET_ENDPOINT; per request: sizes (EINVAL drops it, EIO answers BAD_TARGET),
 * the request header (lun[0] must be 1; lun[1] selects the tpg: absent → BAD_TARGET), the data
 * direction from the buffer sizes, the CDB size, a command from the pool (none → TASK SET
 * FULL), execution against the LUN, and the completion through vhost_scsi_release_cmd();
 * VHOST_SCSI_WEIGHT requests per run.
 */
function* vhostScsiHandleVq(k: Kernel, vs: VhostScsi, vq: VhostVirtqueue): KGen<void> {
  yield* mutexLock(k, vq.mutex);
  try {
    const vsTpg = vq.privateData as (VhostScsiTpg | null)[] | null;
    const mm = k.current!.mm;
    if (!vsTpg || !mm) return;
    const svq = vs.svqs[vq.index]!;
    const t10pi = vq.ring.hasFeature(VIRTIO_SCSI_F_T10_PI);
    vhostDisableNotify(mm, vq.ring);
    let c = 0;
    do {
      const g = vhostScsiGetDesc(k, mm, vq);
      if (g.ret === 'ENXIO') break;
      if (g.ret !== 0) continue; // EAGAIN
      const vc = g.vc;
      vc.reqSize = t10pi ? SIZEOF_VIRTIO_SCSI_CMD_REQ_PI : SIZEOF_VIRTIO_SCSI_CMD_REQ;
      vc.rspSize = SIZEOF_VIRTIO_SCSI_CMD_RESP;
      const chk = vhostScsiChkSize(k, vq, vc);
      if (chk === 'EINVAL') continue; // dropped: the chain is consumed and never used
      const badTarget = () => sendImmediate(k, mm, vq, vc, cmdRespBytes(0, VIRTIO_SCSI_S_BAD_TARGET));
      if (chk === 'EIO') {
        badTarget();
        continue;
      }
      // vhost_scsi_get_req()
      const req = copyFromIovs(mm, vc.out, vc.reqSize);
      if (!req.ok || req.value.length !== vc.reqSize) {
        vqErr(k, vq, 'Faulted on copy_from_iter_full');
        badTarget();
        continue;
      }
      const h = req.value;
      if (h[0] !== 1) {
        vqErr(k, vq, `Illegal virtio-scsi lun: ${h[0]}`);
        badTarget();
        continue;
      }
      const tpg = vsTpg[h[1]!] ?? null;
      if (!tpg) {
        badTarget();
        continue;
      }
      // data direction and expected length from the buffer sizes
      let dir: DataDirection = 'none';
      let expLen = 0;
      let data: Iov[] = [];
      if (vc.outSize > vc.reqSize) {
        dir = 'to-device';
        expLen = vc.outSize - vc.reqSize;
        data = iovAdvance(vc.out, vc.reqSize);
      } else if (vc.inSize > vc.rspSize) {
        dir = 'from-device';
        expLen = vc.inSize - vc.rspSize;
        data = iovAdvance(vc.in, vc.rspSize);
      }
      const hv = new DataView(h.buffer, h.byteOffset, h.length);
      let cdb: Uint8Array;
      if (t10pi) {
        const piOut = hv.getUint32(19, true);
        const piIn = hv.getUint32(23, true);
        let prot = 0;
        if (piOut) {
          if (dir !== 'to-device') {
            vqErr(k, vq, 'Received non zero pi_bytesout, but wrong data_direction');
            badTarget();
            continue;
          }
          prot = piOut;
        } else if (piIn) {
          if (dir !== 'from-device') {
            vqErr(k, vq, 'Received non zero pi_bytesin, but wrong data_direction');
            badTarget();
            continue;
          }
          prot = piIn;
        }
        if (prot) {
          expLen -= prot;
          data = iovAdvance(data, prot);
        }
        cdb = h.slice(27, 27 + VIRTIO_SCSI_CDB_SIZE);
      } else cdb = h.slice(19, 19 + VIRTIO_SCSI_CDB_SIZE);
      // scsi_command_size(cdb) > VHOST_SCSI_MAX_CDB_SIZE: only variable-length CDBs (7Fh) can be
      if (cdb[0] === 0x7f && cdb[7]! + 8 > VHOST_SCSI_MAX_CDB_SIZE) {
        vqErr(k, vq, 'Received SCSI CDB with command_size that exceeds SCSI_MAX_VARLEN_CDB_SIZE');
        badTarget();
        continue;
      }
      if (!tpg.nexus) {
        vqErr(k, vq, 'Unable to locate active struct vhost_scsi_nexus');
        badTarget();
        continue;
      }
      // vhost_scsi_get_cmd(): a tag from the pool sized at SET_ENDPOINT
      if (svq.cmdsInUse >= svq.maxCmds) {
        vqErr(k, vq, 'vhost_scsi_get_tag failed -12');
        sendImmediate(k, mm, vq, vc, cmdRespBytes(SAM_STAT_TASK_SET_FULL, VIRTIO_SCSI_S_OK));
        continue;
      }
      svq.cmdsInUse++;
      const inflight = svq.inflights[svq.inflightIdx]!;
      inflight.refs++;
      const respIovs = vc.in;
      // vhost_scsi_mapal(): the data buffers must be accessible; a failure drops the request
      // (its errno is neither EIO nor ENOMEM, so no response is sent)
      let dataOut: Uint8Array | null = null;
      let mapped = true;
      if (dir === 'to-device') {
        const r = copyFromIovs(mm, data, expLen);
        if (r.ok) dataOut = r.value;
        else mapped = false;
      } else if (dir === 'from-device') mapped = data.every((v) => mm.view(v.addr, v.len).ok);
      if (!mapped) {
        vqErr(k, vq, 'Failed to map iov to sgl');
        releaseCmdRes(k, { svq, head: vc.head, respIovs: vc.in, inflight, result: checkCondition(0, 0) });
        continue;
      }
      const result = targetExecute(tpg, vhostBufToLun(h.subarray(0, 8)), cdb, dir, expLen, dataOut);
      if (result.dataIn?.length) copyToIovs(mm, data, result.dataIn);
      if (k.trace.enabled)
        k.emit(
          'vhost_scsi_cmd',
          `vq=${vq.index} op=0x${cdb[0]!.toString(16)} dir=${dir} len=${expLen} status=${result.status}`,
        );
      vhostScsiReleaseCmd(k, { svq, head: vc.head, respIovs, inflight, result });
    } while (!vhostExceedsWeight(k, vq, ++c, 0, VHOST_SCSI_WEIGHT, Number.POSITIVE_INFINITY));
  } finally {
    mutexUnlock(k, vq.mutex);
  }
}

/**
 * models vhost_scsi_ctl_handle_vq(), v6.12: read the request type, then a TMF (only LOGICAL
 * UNIT RESET succeeds, answered by a work item on this vq) or an asynchronous-notification
 * query/subscribe (answered at once with VIRTIO_SCSI_S_OK, no events).
 */
function* vhostScsiCtlHandleVq(k: Kernel, vs: VhostScsi, vq: VhostVirtqueue): KGen<void> {
  yield* mutexLock(k, vq.mutex);
  try {
    const vsTpg = vq.privateData as (VhostScsiTpg | null)[] | null;
    const mm = k.current!.mm;
    if (!vsTpg || !mm) return;
    vhostDisableNotify(mm, vq.ring);
    let c = 0;
    do {
      const g = vhostScsiGetDesc(k, mm, vq);
      if (g.ret === 'ENXIO') break;
      if (g.ret !== 0) continue; // EAGAIN
      const vc = g.vc;
      const typ = copyFromIovs(mm, vc.out, 4);
      if (!typ.ok || typ.value.length !== 4) {
        vqErr(k, vq, 'Faulted on copy_from_iter tmf type');
        continue;
      }
      const type = new DataView(typ.value.buffer).getUint32(0, true);
      let hasTarget: boolean;
      if (type === VIRTIO_SCSI_T_TMF) {
        vc.reqSize = SIZEOF_VIRTIO_SCSI_CTRL_TMF_REQ;
        vc.rspSize = SIZEOF_VIRTIO_SCSI_CTRL_TMF_RESP;
        hasTarget = true;
      } else if (type === VIRTIO_SCSI_T_AN_QUERY || type === VIRTIO_SCSI_T_AN_SUBSCRIBE) {
        vc.reqSize = SIZEOF_VIRTIO_SCSI_CTRL_AN_REQ;
        vc.rspSize = SIZEOF_VIRTIO_SCSI_CTRL_AN_RESP;
        hasTarget = false;
      } else {
        vqErr(k, vq, `Unknown control request ${type}`);
        continue;
      }
      const badTarget = () => {
        const b = new Uint8Array(vc.rspSize);
        b[type === VIRTIO_SCSI_T_TMF ? 0 : 4] = VIRTIO_SCSI_S_BAD_TARGET;
        sendImmediate(k, mm, vq, vc, b);
      };
      const chk = vhostScsiChkSize(k, vq, vc);
      if (chk === 'EINVAL') continue;
      if (chk === 'EIO') {
        badTarget();
        continue;
      }
      const req = copyFromIovs(mm, vc.out, vc.reqSize);
      if (!req.ok || req.value.length !== vc.reqSize) {
        vqErr(k, vq, 'Faulted on copy_from_iter_full');
        badTarget();
        continue;
      }
      const lun = req.value.subarray(
        type === VIRTIO_SCSI_T_TMF ? 8 : 4,
        type === VIRTIO_SCSI_T_TMF ? 16 : 12,
      );
      if (lun[0] !== 1) {
        vqErr(k, vq, `Illegal virtio-scsi lun: ${lun[0]}`);
        badTarget();
        continue;
      }
      const tpg = hasTarget ? (vsTpg[lun[1]!] ?? null) : null;
      if (hasTarget && !tpg) {
        badTarget();
        continue;
      }
      if (type === VIRTIO_SCSI_T_TMF) {
        const subtype = new DataView(req.value.buffer).getUint32(4, true);
        const reject = () => sendImmediate(k, mm, vq, vc, Uint8Array.of(VIRTIO_SCSI_S_FUNCTION_REJECTED));
        if (subtype !== VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET || !tpg!.nexus) {
          reject();
          continue;
        }
        // vhost_scsi_handle_tmf(): the response is a work item (vhost_scsi_tmf_resp_work)
        const head = vc.head;
        const respIovs = vc.in;
        const svq = vs.svqs[vq.index]!;
        const inflight = svq.inflights[svq.inflightIdx]!;
        inflight.refs++;
        const work = new VhostWork(function* (kk) {
          const wm = kk.current!.mm;
          yield* mutexLock(kk, vq.mutex);
          if (wm) {
            const w = copyToIovs(wm, respIovs, Uint8Array.of(VIRTIO_SCSI_S_FUNCTION_SUCCEEDED));
            if (w.ok && w.value === 1) addUsedAndSignal(kk, wm, vq, head, 0);
          }
          mutexUnlock(kk, vq.mutex);
          inflightPut(kk, inflight);
        }, 'vhost_scsi_tmf_resp_work');
        if (!vhostVqWorkQueue(k, vq, work)) inflightPut(k, inflight);
      } else {
        const b = new Uint8Array(SIZEOF_VIRTIO_SCSI_CTRL_AN_RESP);
        b[4] = VIRTIO_SCSI_S_OK;
        sendImmediate(k, mm, vq, vc, b);
      }
    } while (!vhostExceedsWeight(k, vq, ++c, 0, VHOST_SCSI_WEIGHT, Number.POSITIVE_INFINITY));
  } finally {
    mutexUnlock(k, vq.mutex);
  }
}

// ------------------------------------------------------------------ events

/** models vhost_scsi_do_evt_work(): put one event into the guest's event buffer. */
function vhostScsiDoEvtWork(k: Kernel, vs: VhostScsi, evt: ScsiEvt): void {
  const vq = vs.vq(VHOST_SCSI_VQ_EVT);
  const mm = k.current!.mm;
  if (!vq.privateData || !mm) {
    vs.eventsMissed = true;
    return;
  }
  for (;;) {
    vhostDisableNotify(mm, vq.ring);
    const d = vhostGetVqDesc(mm, vq.ring, UIO_MAXIOV);
    if (!d.ok) {
      vs.eventsMissed = true;
      return;
    }
    if (d.value.head === vq.ring.num) {
      const en = vhostEnableNotify(mm, vq.ring);
      if (en.ok && en.value) continue;
      vs.eventsMissed = true;
      return;
    }
    const first = d.value.in[0];
    if (!first || first.len !== SIZEOF_VIRTIO_SCSI_EVENT) {
      vqErr(k, vq, `Expecting virtio_scsi_event, got ${first?.len ?? 0} bytes`);
      vs.eventsMissed = true;
      return;
    }
    let event = evt.event;
    if (vs.eventsMissed) {
      event = (event | VIRTIO_SCSI_T_EVENTS_MISSED) >>> 0;
      vs.eventsMissed = false;
    }
    const b = new Uint8Array(SIZEOF_VIRTIO_SCSI_EVENT);
    const dv = new DataView(b.buffer);
    dv.setUint32(0, event, true);
    b.set(evt.lun, 4);
    dv.setUint32(12, evt.reason, true);
    if (mm.write(first.addr, b).ok) addUsedAndSignal(k, mm, vq, d.value.head, 0);
    else vqErr(k, vq, 'Faulted on vhost_scsi_send_event');
    return;
  }
}

/** models vhost_scsi_complete_events(): deliver (or drop) every pending event under the evt vq mutex. */
function* vhostScsiCompleteEvents(k: Kernel, vs: VhostScsi, drop: boolean): KGen<void> {
  const vq = vs.vq(VHOST_SCSI_VQ_EVT);
  yield* mutexLock(k, vq.mutex);
  dropOrDeliver(k, vs, drop);
  mutexUnlock(k, vq.mutex);
}

function dropOrDeliver(k: Kernel, vs: VhostScsi, drop: boolean): void {
  const list = vs.eventList.reverse();
  vs.eventList = [];
  for (const evt of list) {
    if (!drop) vhostScsiDoEvtWork(k, vs, evt);
    vs.eventsNr--;
  }
}

/**
 * models vhost_scsi_send_evt() with the evt vq mutex held: allocate (over VHOST_SCSI_MAX_EVENT
 * pending → missed), list it and queue the event work; when that is refused the events are
 * dropped. (Linux's vhost_scsi_complete_events(vs, true) would take the evt vq mutex again —
 * a self-deadlock reachable only when the worker was killed; the model drops them in place.)
 */
function vhostScsiSendEvt(k: Kernel, vs: VhostScsi, event: number, reason: number, lun: Uint8Array): void {
  if (vs.eventsNr > VHOST_SCSI_MAX_EVENT) {
    vs.eventsMissed = true;
    return;
  }
  vs.eventsNr++;
  vs.eventList.push({ event, reason, lun });
  if (!vhostVqWorkQueue(k, vs.vq(VHOST_SCSI_VQ_EVT), vs.eventWork)) dropOrDeliver(k, vs, true);
}

/** models vhost_scsi_evt_handle_kick(): if events were missed, send a NO_EVENT (flagged missed). */
function* vhostScsiEvtHandleKick(k: Kernel, vs: VhostScsi, vq: VhostVirtqueue): KGen<void> {
  yield* mutexLock(k, vq.mutex);
  if (vq.privateData && vs.eventsMissed)
    vhostScsiSendEvt(k, vs, VIRTIO_SCSI_T_NO_EVENT, 0, new Uint8Array(8));
  mutexUnlock(k, vq.mutex);
}

// ------------------------------------------------------------------ endpoint

/**
 * models vhost_scsi_set_endpoint(), v6.12 (no owner check, as in Linux): every ring must pass
 * access_ok (EFAULT); an endpoint already set → EEXIST; claim every tpg of the vhost fabric
 * that has a nexus, is not held by another device and whose tport name equals the WWPN
 * (none → ENODEV); size the command pools of the I/O queues already set up; set the backend
 * of every vq (vhost_vq_init_access errors ignored, as in Linux); flush. Linux never looks at
 * abi_version or vhost_tpgt here: every matching tpg is claimed, at its own tpgt.
 */
function* vhostScsiSetEndpoint(k: Kernel, vs: VhostScsi, t: Required<VhostScsiTarget>): KGen<Result<number>> {
  const dev = vs.dev;
  yield* mutexLock(k, dev.mutex);
  try {
    for (const vq of dev.vqs) if (!vqAccessOk(vq)) return err(Errno.EFAULT);
    if (vs.vsTpg) return err(Errno.EEXIST);
    if (k.allocFails('vhost_scsi_set_endpoint')) return err(Errno.ENOMEM);
    const vsTpg: (VhostScsiTpg | null)[] = new Array(VHOST_SCSI_MAX_TARGET).fill(null);
    let match = false;
    for (const tpg of vhostScsiTargets(k)) {
      if (!tpg.nexus || tpg.tvTpgVhostCount !== 0) continue;
      if (tpg.tportName === t.wwpn) {
        tpg.tvTpgVhostCount++;
        tpg.vhostScsi = vs;
        vsTpg[tpg.tportTpgt] = tpg;
        match = true;
      }
    }
    if (!match) return err(Errno.ENODEV);
    vs.vsVhostWwpn = t.wwpn;
    for (let i = VHOST_SCSI_VQ_IO; i < dev.nvqs; i++) {
      const svq = vs.svqs[i]!;
      if (vqIsSetup(svq.vq) && !svq.maxCmds) svq.maxCmds = svq.vq.ring.num;
    }
    const mm = k.current!.mm;
    for (const vq of dev.vqs) {
      yield* mutexLock(k, vq.mutex);
      vq.privateData = vsTpg;
      if (mm) vhostVqInitAccess(mm, vq.ring);
      mutexUnlock(k, vq.mutex);
    }
    yield* vhostScsiFlush(k, vs);
    vs.vsTpg = vsTpg;
    if (k.trace.enabled) k.emit('vhost_scsi_set_endpoint', `wwpn=${t.wwpn}`);
    return ok(0);
  } finally {
    mutexUnlock(k, dev.mutex);
  }
}

/**
 * models vhost_scsi_clear_endpoint(), v6.12: rings must pass access_ok (EFAULT); no endpoint
 * → 0; a held tpg whose name differs from the WWPN → EINVAL; otherwise clear every backend,
 * flush (waiting for in-flight commands), free the pools, release the tpgs, flush again.
 */
function* vhostScsiClearEndpoint(k: Kernel, vs: VhostScsi, wwpn: string): KGen<Result<number>> {
  const dev = vs.dev;
  yield* mutexLock(k, dev.mutex);
  try {
    for (const vq of dev.vqs) if (!vqAccessOk(vq)) return err(Errno.EFAULT);
    const vsTpg = vs.vsTpg;
    if (!vsTpg) return ok(0);
    let match = false;
    for (const tpg of vsTpg) {
      if (!tpg) continue;
      if (tpg.tportName !== wwpn) return err(Errno.EINVAL);
      match = true;
    }
    if (match) {
      for (const vq of dev.vqs) {
        yield* mutexLock(k, vq.mutex);
        vq.privateData = null;
        mutexUnlock(k, vq.mutex);
      }
      yield* vhostScsiFlush(k, vs);
      for (const svq of vs.svqs) svq.maxCmds = 0;
      for (let i = 0; i < vsTpg.length; i++) {
        const tpg = vsTpg[i];
        if (!tpg) continue;
        tpg.tvTpgVhostCount--;
        tpg.vhostScsi = null;
        vsTpg[i] = null;
      }
    }
    yield* vhostScsiFlush(k, vs);
    vs.vsTpg = null;
    vs.vsVhostWwpn = '';
    if (vs.eventsNr) k.warn('vhost_scsi_clear_endpoint', `WARN_ON(vs->vs_events_nr = ${vs.eventsNr})`);
    return ok(0);
  } finally {
    mutexUnlock(k, dev.mutex);
  }
}

/** models vhost_scsi_set_features(): unknown bits → EOPNOTSUPP; stored on every vq. */
function* vhostScsiSetFeatures(k: Kernel, vs: VhostScsi, features: bigint): KGen<Result<number>> {
  if (features & ~VHOST_SCSI_FEATURES) return err(Errno.EOPNOTSUPP);
  yield* vhostDevAckFeatures(k, vs.dev, features);
  return ok(0);
}

// ------------------------------------------------------------------ file operations

/**
 * models vhost_scsi_ioctl(), v6.12, case by case in the kernel's order: SET_ENDPOINT and
 * CLEAR_ENDPOINT (copy, reserved ≠ 0 → EOPNOTSUPP), GET_ABI_VERSION, SET/GET_EVENTS_MISSED,
 * GET/SET_FEATURES, then (6.5+ only) the four worker ioctls under the dev mutex through
 * vhost_worker_ioctl(), and the default path: vhost_dev_ioctl(), then vhost_vring_ioctl() for
 * what it does not know (no flush: "TODO: flush backend after dev ioctl").
 */
function* vhostScsiIoctl(k: Kernel, f: File, cmd: number, argp: number): KGen<Result<number>> {
  const vs = devices.get(f)!;
  const dev = vs.dev;
  const mm = k.current!.mm;
  switch (cmd) {
    case U.VHOST_SCSI_SET_ENDPOINT:
    case U.VHOST_SCSI_CLEAR_ENDPOINT: {
      const t = readVhostScsiTarget(mm, argp);
      if (!t.ok) return t;
      if (t.value.reserved !== 0) return err(Errno.EOPNOTSUPP);
      return cmd === U.VHOST_SCSI_SET_ENDPOINT
        ? yield* vhostScsiSetEndpoint(k, vs, t.value)
        : yield* vhostScsiClearEndpoint(k, vs, t.value.wwpn);
    }
    case U.VHOST_SCSI_GET_ABI_VERSION: {
      const v = mm ? mm.view(argp, 4) : err(Errno.EFAULT);
      if (!v.ok) return v;
      v.value.setInt32(0, U.VHOST_SCSI_ABI_VERSION, true);
      return ok(0);
    }
    case VHOST_SCSI_SET_EVENTS_MISSED: {
      const v = U.readU32(mm, argp);
      if (!v.ok) return v;
      const evq = vs.vq(VHOST_SCSI_VQ_EVT);
      yield* mutexLock(k, evq.mutex);
      vs.eventsMissed = v.value !== 0;
      mutexUnlock(k, evq.mutex);
      return ok(0);
    }
    case VHOST_SCSI_GET_EVENTS_MISSED: {
      const evq = vs.vq(VHOST_SCSI_VQ_EVT);
      yield* mutexLock(k, evq.mutex);
      const missed = vs.eventsMissed ? 1 : 0;
      mutexUnlock(k, evq.mutex);
      const v = mm ? mm.view(argp, 4) : err(Errno.EFAULT);
      if (!v.ok) return v;
      v.value.setUint32(0, missed, true);
      return ok(0);
    }
    case U.VHOST_GET_FEATURES:
    case U.VHOST_SET_FEATURES:
      return (yield* vhostFeatureIoctl(k, dev, cmd, argp, {
        features: VHOST_SCSI_FEATURES,
        backendFeatures: null,
        set: (v: bigint) => vhostScsiSetFeatures(k, vs, v),
      }))!;
  }
  if (
    k.profile.vhostMultiWorker &&
    (cmd === U.VHOST_NEW_WORKER ||
      cmd === U.VHOST_FREE_WORKER ||
      cmd === U.VHOST_ATTACH_VRING_WORKER ||
      cmd === U.VHOST_GET_VRING_WORKER)
  ) {
    yield* mutexLock(k, dev.mutex);
    try {
      return yield* vhostWorkerIoctl(k, dev, cmd, argp);
    } finally {
      mutexUnlock(k, dev.mutex);
    }
  }
  yield* mutexLock(k, dev.mutex);
  try {
    const r = yield* vhostDevIoctl(k, dev, cmd, argp);
    if (!r.ok && r.errno === Errno.ENOIOCTLCMD) return yield* vhostVringIoctl(k, dev, cmd, argp);
    return r;
  } finally {
    mutexUnlock(k, dev.mutex);
  }
}

/**
 * models vhost_scsi_release(), v6.12 (in the task that drops the last reference): clear the
 * endpoint with the device's own WWPN, stop, clean up (workers stopped, owner mm dropped).
 */
function* vhostScsiRelease(k: Kernel, f: File): KGen<void> {
  const vs = devices.get(f)!;
  const dev = vs.dev;
  yield* mutexLock(k, dev.mutex);
  const wwpn = vs.vsVhostWwpn;
  mutexUnlock(k, dev.mutex);
  yield* vhostScsiClearEndpoint(k, vs, wwpn);
  yield* vhostDevStop(k, dev);
  yield* vhostDevCleanup(k, dev);
  dev.released = true;
  if (k.trace.enabled) k.emit('vhost_release', `dev=${dev.name}`);
}

export const VHOST_SCSI_OPS: FileOps = {
  name: 'vhost-scsi',
  ioctl: vhostScsiIoctl,
  release: vhostScsiRelease,
};

/** models vhost_scsi_open(): ctl, evt and max_io_vqs I/O virtqueues (130 by default). */
export function* openVhostScsi(k: Kernel, path: string, flags: number): KGen<Result<File>> {
  if (k.allocFails('vhost_scsi_open')) return err(Errno.ENOMEM);
  const vs = new VhostScsi(k);
  const f = new File(VHOST_SCSI_OPS, path, flags, vs);
  devices.set(f, vs);
  return ok(f);
}
