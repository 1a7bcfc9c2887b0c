/**
 * How a scenario names an ioctl argument: the struct, its fields by name, and how to encode it
 * into bytes in the caller's memory (the real layouts of src/vhost/uapi.ts).
 */
import * as U from '../vhost/uapi.js';

export interface IoctlArgSpec {
  /** the C struct name, for messages */
  readonly struct: string;
  /** field names the scenario gives (all required unless in `optional`) */
  readonly fields: readonly string[];
  readonly optional?: readonly string[];
  /** fields that name an fd (an alias or a number) */
  readonly fdFields?: readonly string[];
  /** bytes of the argument; `fd` resolves aliases */
  encode(arg: Record<string, unknown>, fd: (v: unknown) => number): Uint8Array;
  /** bytes the kernel writes back (for GET ioctls), read after the call */
  readonly out?: number;
}

const num = (v: unknown): number => (typeof v === 'number' ? v : Number(v));
const big = (v: unknown): bigint => BigInt(typeof v === 'bigint' ? v : num(v));

const vringState: IoctlArgSpec = {
  struct: 'vhost_vring_state',
  fields: ['index', 'num'],
  optional: ['num'],
  encode: (a) => U.encodeVringState({ index: num(a.index), num: num(a.num ?? 0) }),
  out: U.SIZEOF_VHOST_VRING_STATE,
};
const vringFile: IoctlArgSpec = {
  struct: 'vhost_vring_file',
  fields: ['index', 'fd'],
  fdFields: ['fd'],
  encode: (a, fd) => U.encodeVringFile({ index: num(a.index), fd: fd(a.fd) }),
};
const u64: IoctlArgSpec = {
  struct: '__u64',
  fields: ['value'],
  optional: ['value'],
  encode: (a) => U.encodeU64(big(a.value ?? 0)),
  out: 8,
};
const u8: IoctlArgSpec = {
  struct: '__u8',
  fields: ['value'],
  optional: ['value'],
  encode: (a) => new Uint8Array([num(a.value ?? 0) & 0xff]),
  out: 1,
};
const workerState: IoctlArgSpec = {
  struct: 'vhost_worker_state',
  fields: ['worker_id'],
  optional: ['worker_id'],
  encode: (a) => U.encodeU32(num(a.worker_id ?? 0)),
  out: 4,
};
const vringWorker: IoctlArgSpec = {
  struct: 'vhost_vring_worker',
  fields: ['index', 'worker_id'],
  optional: ['worker_id'],
  encode: (a) => U.encodeVringWorker({ index: num(a.index), workerId: num(a.worker_id ?? 0) }),
  out: 8,
};
const none: IoctlArgSpec = { struct: 'none', fields: [], encode: () => new Uint8Array(0) };

/** Ioctls whose argument a scenario can spell out, by name. */
export const IOCTL_ARGS: Readonly<Record<string, IoctlArgSpec>> = {
  VHOST_SET_OWNER: none,
  VHOST_RESET_OWNER: none,
  VHOST_GET_FEATURES: { ...u64, fields: [] },
  VHOST_SET_FEATURES: { ...u64, fields: ['value'], optional: [] },
  VHOST_GET_BACKEND_FEATURES: { ...u64, fields: [] },
  VHOST_SET_BACKEND_FEATURES: { ...u64, fields: ['value'], optional: [] },
  VHOST_SET_LOG_BASE: { ...u64, fields: ['value'], optional: [] },
  VHOST_SET_VRING_NUM: { ...vringState, optional: [] },
  VHOST_SET_VRING_BASE: { ...vringState, optional: [] },
  VHOST_GET_VRING_BASE: vringState,
  VHOST_SET_VRING_BUSYLOOP_TIMEOUT: { ...vringState, optional: [] },
  VHOST_GET_VRING_BUSYLOOP_TIMEOUT: vringState,
  VHOST_SET_VRING_ENDIAN: { ...vringState, optional: [] },
  VHOST_GET_VRING_ENDIAN: vringState,
  VHOST_SET_VRING_ADDR: {
    struct: 'vhost_vring_addr',
    fields: ['index', 'flags', 'desc', 'used', 'avail', 'log'],
    optional: ['flags', 'log'],
    encode: (a) =>
      U.encodeVringAddr({
        index: num(a.index),
        flags: num(a.flags ?? 0),
        descUserAddr: big(a.desc),
        usedUserAddr: big(a.used),
        availUserAddr: big(a.avail),
        logGuestAddr: big(a.log ?? 0),
      }),
  },
  VHOST_SET_VRING_KICK: vringFile,
  VHOST_SET_VRING_CALL: vringFile,
  VHOST_SET_VRING_ERR: vringFile,
  VHOST_NET_SET_BACKEND: vringFile,
  VHOST_SET_MEM_TABLE: {
    struct: 'vhost_memory',
    fields: ['regions', 'padding'],
    optional: ['padding'],
    encode: (a) =>
      U.encodeMemory(
        ((a.regions as Record<string, unknown>[]) ?? []).map((r) => ({
          guestPhysAddr: big(r.gpa ?? 0),
          memorySize: big(r.size ?? 0),
          userspaceAddr: big(r.uaddr ?? 0),
          flagsPadding: 0n,
        })),
        num(a.padding ?? 0),
      ),
  },
  VHOST_NEW_WORKER: workerState,
  VHOST_FREE_WORKER: { ...workerState, optional: [] },
  VHOST_ATTACH_VRING_WORKER: { ...vringWorker, optional: [] },
  VHOST_GET_VRING_WORKER: vringWorker,
  VHOST_SET_FORK_FROM_OWNER: { ...u8, optional: [] },
  VHOST_GET_FORK_FROM_OWNER: { ...u8, fields: [] },
  VHOST_VSOCK_SET_GUEST_CID: { ...u64, fields: ['value'], optional: [] },
  VHOST_VSOCK_SET_RUNNING: { struct: 'int', fields: ['value'], encode: (a) => U.encodeU32(num(a.value)) },
};
