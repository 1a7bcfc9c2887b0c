/**
 * The vhost userspace ABI: ioctl numbers built with the kernel's _IOC encoding and the
 * struct layouts they carry (include/uapi/linux/vhost.h, vhost_types.h, v6.17). Structs are
 * read from and written to the caller's address space as bytes, little-endian.
 */
import { putU32, putU64 } from '../kernel/bytes.js';
import { Errno, err, ok, type Result } from '../kernel/errno.js';
import type { MM } from '../kernel/mm.js';

// include/uapi/asm-generic/ioctl.h
export const _IOC_NONE = 0;
export const _IOC_WRITE = 1;
export const _IOC_READ = 2;
/** _IOC(dir, type, nr, size) = dir << 30 | size << 16 | type << 8 | nr */
export function _IOC(dir: number, type: number, nr: number, size: number): number {
  return ((dir << 30) | (size << 16) | (type << 8) | nr) >>> 0;
}
export const _IO = (type: number, nr: number) => _IOC(_IOC_NONE, type, nr, 0);
export const _IOR = (type: number, nr: number, size: number) => _IOC(_IOC_READ, type, nr, size);
export const _IOW = (type: number, nr: number, size: number) => _IOC(_IOC_WRITE, type, nr, size);
export const _IOWR = (type: number, nr: number, size: number) => _IOC(_IOC_READ | _IOC_WRITE, type, nr, size);

export const VHOST_VIRTIO = 0xaf;

// struct sizes (§7.3)
export const SIZEOF_VHOST_VRING_STATE = 8;
export const SIZEOF_VHOST_VRING_FILE = 8;
export const SIZEOF_VHOST_VRING_ADDR = 40;
export const SIZEOF_VHOST_MEMORY = 8;
export const SIZEOF_VHOST_MEMORY_REGION = 32;
export const SIZEOF_VHOST_WORKER_STATE = 4;
export const SIZEOF_VHOST_VRING_WORKER = 8;
export const SIZEOF_VHOST_SCSI_TARGET = 232;

export const VHOST_GET_FEATURES = _IOR(VHOST_VIRTIO, 0x00, 8);
export const VHOST_SET_FEATURES = _IOW(VHOST_VIRTIO, 0x00, 8);
export const VHOST_SET_OWNER = _IO(VHOST_VIRTIO, 0x01);
export const VHOST_RESET_OWNER = _IO(VHOST_VIRTIO, 0x02);
export const VHOST_SET_MEM_TABLE = _IOW(VHOST_VIRTIO, 0x03, SIZEOF_VHOST_MEMORY);
export const VHOST_SET_LOG_BASE = _IOW(VHOST_VIRTIO, 0x04, 8);
export const VHOST_SET_LOG_FD = _IOW(VHOST_VIRTIO, 0x07, 4);
export const VHOST_NEW_WORKER = _IOR(VHOST_VIRTIO, 0x08, SIZEOF_VHOST_WORKER_STATE);
export const VHOST_FREE_WORKER = _IOW(VHOST_VIRTIO, 0x09, SIZEOF_VHOST_WORKER_STATE);
export const VHOST_SET_VRING_NUM = _IOW(VHOST_VIRTIO, 0x10, SIZEOF_VHOST_VRING_STATE);
export const VHOST_SET_VRING_ADDR = _IOW(VHOST_VIRTIO, 0x11, SIZEOF_VHOST_VRING_ADDR);
export const VHOST_SET_VRING_BASE = _IOW(VHOST_VIRTIO, 0x12, SIZEOF_VHOST_VRING_STATE);
export const VHOST_GET_VRING_BASE = _IOWR(VHOST_VIRTIO, 0x12, SIZEOF_VHOST_VRING_STATE);
export const VHOST_SET_VRING_ENDIAN = _IOW(VHOST_VIRTIO, 0x13, SIZEOF_VHOST_VRING_STATE);
export const VHOST_GET_VRING_ENDIAN = _IOW(VHOST_VIRTIO, 0x14, SIZEOF_VHOST_VRING_STATE);
export const VHOST_ATTACH_VRING_WORKER = _IOW(VHOST_VIRTIO, 0x15, SIZEOF_VHOST_VRING_WORKER);
export const VHOST_GET_VRING_WORKER = _IOWR(VHOST_VIRTIO, 0x16, SIZEOF_VHOST_VRING_WORKER);
export const VHOST_SET_VRING_KICK = _IOW(VHOST_VIRTIO, 0x20, SIZEOF_VHOST_VRING_FILE);
export const VHOST_SET_VRING_CALL = _IOW(VHOST_VIRTIO, 0x21, SIZEOF_VHOST_VRING_FILE);
export const VHOST_SET_VRING_ERR = _IOW(VHOST_VIRTIO, 0x22, SIZEOF_VHOST_VRING_FILE);
export const VHOST_SET_VRING_BUSYLOOP_TIMEOUT = _IOW(VHOST_VIRTIO, 0x23, SIZEOF_VHOST_VRING_STATE);
export const VHOST_GET_VRING_BUSYLOOP_TIMEOUT = _IOW(VHOST_VIRTIO, 0x24, SIZEOF_VHOST_VRING_STATE);
export const VHOST_SET_BACKEND_FEATURES = _IOW(VHOST_VIRTIO, 0x25, 8);
export const VHOST_GET_BACKEND_FEATURES = _IOR(VHOST_VIRTIO, 0x26, 8);
export const VHOST_NET_SET_BACKEND = _IOW(VHOST_VIRTIO, 0x30, SIZEOF_VHOST_VRING_FILE);
export const VHOST_SCSI_SET_ENDPOINT = _IOW(VHOST_VIRTIO, 0x40, SIZEOF_VHOST_SCSI_TARGET);
export const VHOST_SCSI_CLEAR_ENDPOINT = _IOW(VHOST_VIRTIO, 0x41, SIZEOF_VHOST_SCSI_TARGET);
export const VHOST_SCSI_GET_ABI_VERSION = _IOW(VHOST_VIRTIO, 0x42, 4);
export const VHOST_VSOCK_SET_GUEST_CID = _IOW(VHOST_VIRTIO, 0x60, 8);
export const VHOST_VSOCK_SET_RUNNING = _IOW(VHOST_VIRTIO, 0x61, 4);
export const VHOST_GET_FEATURES_ARRAY = _IOR(VHOST_VIRTIO, 0x83, 8);
export const VHOST_SET_FEATURES_ARRAY = _IOW(VHOST_VIRTIO, 0x83, 8);
export const VHOST_SET_FORK_FROM_OWNER = _IOW(VHOST_VIRTIO, 0x84, 1);
export const VHOST_GET_FORK_FROM_OWNER = _IOR(VHOST_VIRTIO, 0x85, 1);

/** Every ioctl by name, for scenario files and traces. */
export const VHOST_IOCTLS: Readonly<Record<string, number>> = {
  VHOST_GET_FEATURES,
  VHOST_SET_FEATURES,
  VHOST_SET_OWNER,
  VHOST_RESET_OWNER,
  VHOST_SET_MEM_TABLE,
  VHOST_SET_LOG_BASE,
  VHOST_SET_LOG_FD,
  VHOST_NEW_WORKER,
  VHOST_FREE_WORKER,
  VHOST_SET_VRING_NUM,
  VHOST_SET_VRING_ADDR,
  VHOST_SET_VRING_BASE,
  VHOST_GET_VRING_BASE,
  VHOST_SET_VRING_ENDIAN,
  VHOST_GET_VRING_ENDIAN,
  VHOST_ATTACH_VRING_WORKER,
  VHOST_GET_VRING_WORKER,
  VHOST_SET_VRING_KICK,
  VHOST_SET_VRING_CALL,
  VHOST_SET_VRING_ERR,
  VHOST_SET_VRING_BUSYLOOP_TIMEOUT,
  VHOST_GET_VRING_BUSYLOOP_TIMEOUT,
  VHOST_SET_BACKEND_FEATURES,
  VHOST_GET_BACKEND_FEATURES,
  VHOST_NET_SET_BACKEND,
  VHOST_SCSI_SET_ENDPOINT,
  VHOST_SCSI_CLEAR_ENDPOINT,
  VHOST_SCSI_GET_ABI_VERSION,
  VHOST_VSOCK_SET_GUEST_CID,
  VHOST_VSOCK_SET_RUNNING,
  VHOST_GET_FEATURES_ARRAY,
  VHOST_SET_FEATURES_ARRAY,
  VHOST_SET_FORK_FROM_OWNER,
  VHOST_GET_FORK_FROM_OWNER,
};

export function ioctlName(cmd: number): string {
  for (const [n, v] of Object.entries(VHOST_IOCTLS)) if (v === cmd >>> 0) return n;
  return `0x${(cmd >>> 0).toString(16)}`;
}

export const VHOST_FILE_UNBIND = -1;
export const VHOST_VRING_F_LOG = 0;
export const VHOST_FORK_OWNER_KTHREAD = 0;
export const VHOST_FORK_OWNER_TASK = 1;
export const VHOST_SCSI_ABI_VERSION = 4;

// feature bits (§7.4)
export const VIRTIO_F_NOTIFY_ON_EMPTY = 24;
export const VHOST_F_LOG_ALL = 26;
export const VIRTIO_F_ANY_LAYOUT = 27;
export const VHOST_NET_F_VIRTIO_NET_HDR = 27;
export const VIRTIO_RING_F_INDIRECT_DESC = 28;
export const VIRTIO_RING_F_EVENT_IDX = 29;
export const VIRTIO_F_VERSION_1 = 32;
export const VIRTIO_F_ACCESS_PLATFORM = 33;
export const VIRTIO_F_RING_PACKED = 34;
export const VIRTIO_F_IN_ORDER = 35;
export const VHOST_BACKEND_F_IOTLB_MSG_V2 = 1;
export const bit = (n: number): bigint => 1n << BigInt(n);
/** VHOST_FEATURES (drivers/vhost/vhost.h @ v6.4) */
export const VHOST_FEATURES =
  bit(VIRTIO_F_NOTIFY_ON_EMPTY) |
  bit(VIRTIO_RING_F_INDIRECT_DESC) |
  bit(VIRTIO_RING_F_EVENT_IDX) |
  bit(VHOST_F_LOG_ALL) |
  bit(VIRTIO_F_ANY_LAYOUT) |
  bit(VIRTIO_F_VERSION_1);

// ---------------------------------------------------------------- struct access

/** struct vhost_vring_state { unsigned int index; unsigned int num; } */
export interface VringState {
  index: number;
  num: number;
}
/** struct vhost_vring_file { unsigned int index; int fd; } */
export interface VringFile {
  index: number;
  fd: number;
}
/** struct vhost_vring_addr (note: used precedes avail) */
export interface VringAddr {
  index: number;
  flags: number;
  descUserAddr: bigint;
  usedUserAddr: bigint;
  availUserAddr: bigint;
  logGuestAddr: bigint;
}
export interface MemoryRegion {
  guestPhysAddr: bigint;
  memorySize: bigint;
  userspaceAddr: bigint;
  flagsPadding: bigint;
}
/** struct vhost_vring_worker { unsigned int index; unsigned int worker_id; } */
export interface VringWorker {
  index: number;
  workerId: number;
}

function view(mm: MM | null, addr: number, len: number): Result<DataView> {
  if (!mm) return err(Errno.EFAULT);
  return mm.view(addr, len);
}

export function readU32(mm: MM | null, addr: number): Result<number> {
  const v = view(mm, addr, 4);
  return v.ok ? ok(v.value.getUint32(0, true)) : v;
}
export function readU64(mm: MM | null, addr: number): Result<bigint> {
  const v = view(mm, addr, 8);
  return v.ok ? ok(v.value.getBigUint64(0, true)) : v;
}
export function writeU64(mm: MM | null, addr: number, value: bigint): Result<void> {
  const v = view(mm, addr, 8);
  if (!v.ok) return v;
  v.value.setBigUint64(0, value, true);
  return ok();
}
export function readU8(mm: MM | null, addr: number): Result<number> {
  const v = view(mm, addr, 1);
  return v.ok ? ok(v.value.getUint8(0)) : v;
}
export function writeU8(mm: MM | null, addr: number, value: number): Result<void> {
  const v = view(mm, addr, 1);
  if (!v.ok) return v;
  v.value.setUint8(0, value);
  return ok();
}
export function readVringState(mm: MM | null, addr: number): Result<VringState> {
  const v = view(mm, addr, SIZEOF_VHOST_VRING_STATE);
  return v.ok ? ok({ index: v.value.getUint32(0, true), num: v.value.getUint32(4, true) }) : v;
}
export function writeVringState(mm: MM | null, addr: number, s: VringState): Result<void> {
  const v = view(mm, addr, SIZEOF_VHOST_VRING_STATE);
  if (!v.ok) return v;
  v.value.setUint32(0, s.index >>> 0, true);
  v.value.setUint32(4, s.num >>> 0, true);
  return ok();
}
export function readVringFile(mm: MM | null, addr: number): Result<VringFile> {
  const v = view(mm, addr, SIZEOF_VHOST_VRING_FILE);
  return v.ok ? ok({ index: v.value.getUint32(0, true), fd: v.value.getInt32(4, true) }) : v;
}
export function readVringAddr(mm: MM | null, addr: number): Result<VringAddr> {
  const v = view(mm, addr, SIZEOF_VHOST_VRING_ADDR);
  if (!v.ok) return v;
  const d = v.value;
  return ok({
    index: d.getUint32(0, true),
    flags: d.getUint32(4, true),
    descUserAddr: d.getBigUint64(8, true),
    usedUserAddr: d.getBigUint64(16, true),
    availUserAddr: d.getBigUint64(24, true),
    logGuestAddr: d.getBigUint64(32, true),
  });
}
export function readVringWorker(mm: MM | null, addr: number): Result<VringWorker> {
  const v = view(mm, addr, SIZEOF_VHOST_VRING_WORKER);
  return v.ok ? ok({ index: v.value.getUint32(0, true), workerId: v.value.getUint32(4, true) }) : v;
}
export function writeVringWorker(mm: MM | null, addr: number, w: VringWorker): Result<void> {
  const v = view(mm, addr, SIZEOF_VHOST_VRING_WORKER);
  if (!v.ok) return v;
  v.value.setUint32(0, w.index >>> 0, true);
  v.value.setUint32(4, w.workerId >>> 0, true);
  return ok();
}
/** struct vhost_memory header: nregions, padding */
export function readMemoryHeader(mm: MM | null, addr: number): Result<{ nregions: number; padding: number }> {
  const v = view(mm, addr, SIZEOF_VHOST_MEMORY);
  return v.ok ? ok({ nregions: v.value.getUint32(0, true), padding: v.value.getUint32(4, true) }) : v;
}
export function readMemoryRegions(mm: MM | null, addr: number, n: number): Result<MemoryRegion[]> {
  const v = view(mm, addr + SIZEOF_VHOST_MEMORY, n * SIZEOF_VHOST_MEMORY_REGION);
  if (!v.ok) return v;
  const out: MemoryRegion[] = [];
  for (let i = 0; i < n; i++) {
    const o = i * SIZEOF_VHOST_MEMORY_REGION;
    out.push({
      guestPhysAddr: v.value.getBigUint64(o, true),
      memorySize: v.value.getBigUint64(o + 8, true),
      userspaceAddr: v.value.getBigUint64(o + 16, true),
      flagsPadding: v.value.getBigUint64(o + 24, true),
    });
  }
  return ok(out);
}

/** Encoders for userspace programs (the guest/QEMU side of tests and scenarios). */
export function encodeVringState(s: VringState): Uint8Array {
  const b = new Uint8Array(SIZEOF_VHOST_VRING_STATE);
  putU32(b, 0, s.index);
  putU32(b, 4, s.num);
  return b;
}
export function encodeVringFile(f: VringFile): Uint8Array {
  const b = new Uint8Array(SIZEOF_VHOST_VRING_FILE);
  putU32(b, 0, f.index);
  putU32(b, 4, f.fd); // int fd: the same four bytes
  return b;
}
export function encodeVringAddr(a: VringAddr): Uint8Array {
  const b = new Uint8Array(SIZEOF_VHOST_VRING_ADDR);
  putU32(b, 0, a.index);
  putU32(b, 4, a.flags);
  putU64(b, 8, a.descUserAddr);
  putU64(b, 16, a.usedUserAddr);
  putU64(b, 24, a.availUserAddr);
  putU64(b, 32, a.logGuestAddr);
  return b;
}
export function encodeMemory(regions: readonly MemoryRegion[], padding = 0): Uint8Array {
  const b = new Uint8Array(SIZEOF_VHOST_MEMORY + regions.length * SIZEOF_VHOST_MEMORY_REGION);
  putU32(b, 0, regions.length);
  putU32(b, 4, padding);
  regions.forEach((r, i) => {
    const o = SIZEOF_VHOST_MEMORY + i * SIZEOF_VHOST_MEMORY_REGION;
    putU64(b, o, r.guestPhysAddr);
    putU64(b, o + 8, r.memorySize);
    putU64(b, o + 16, r.userspaceAddr);
    putU64(b, o + 24, r.flagsPadding);
  });
  return b;
}
export function encodeVringWorker(w: VringWorker): Uint8Array {
  const b = new Uint8Array(SIZEOF_VHOST_VRING_WORKER);
  putU32(b, 0, w.index);
  putU32(b, 4, w.workerId);
  return b;
}
export function encodeU64(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  putU64(b, 0, v);
  return b;
}
export function encodeU32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  putU32(b, 0, v);
  return b;
}
