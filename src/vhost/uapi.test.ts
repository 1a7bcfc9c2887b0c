import { describe, expect, it } from 'vitest';
import { viaDataView } from '../kernel/testing.js';
import {
  encodeMemory,
  encodeU32,
  encodeU64,
  encodeVringAddr,
  encodeVringFile,
  encodeVringState,
  encodeVringWorker,
  SIZEOF_VHOST_MEMORY,
  SIZEOF_VHOST_MEMORY_REGION,
  SIZEOF_VHOST_VRING_ADDR,
} from './uapi.js';

describe('uapi encoders', () => {
  it('the ioctl argument encoders lay out the kernel structs (vhost_vring_file with fd -1, vhost_vring_addr, vhost_memory)', () => {
    expect(encodeVringFile({ index: 1, fd: -1 })).toEqual(new Uint8Array([1, 0, 0, 0, 255, 255, 255, 255]));
    expect(encodeVringState({ index: 2, num: 256 })).toEqual(new Uint8Array([2, 0, 0, 0, 0, 1, 0, 0]));
    expect(encodeVringWorker({ index: 0, workerId: 3 })).toEqual(new Uint8Array([0, 0, 0, 0, 3, 0, 0, 0]));
    expect(encodeU32(0xdeadbeef)).toEqual(new Uint8Array([0xef, 0xbe, 0xad, 0xde]));
    expect(encodeU64(0x0102030405060708n)).toEqual(new Uint8Array([8, 7, 6, 5, 4, 3, 2, 1]));
    const addr = {
      index: 1,
      flags: 0,
      descUserAddr: 0x1000n,
      usedUserAddr: 0x2000n,
      availUserAddr: 0x3000n,
      logGuestAddr: 0n,
    };
    expect(encodeVringAddr(addr)).toEqual(
      viaDataView(SIZEOF_VHOST_VRING_ADDR, (d) => {
        d.setUint32(0, 1, true);
        d.setBigUint64(8, 0x1000n, true);
        d.setBigUint64(16, 0x2000n, true);
        d.setBigUint64(24, 0x3000n, true);
      }),
    );
    const region = {
      guestPhysAddr: 0n,
      memorySize: 0x10000n,
      userspaceAddr: 0x7f0000000000n,
      flagsPadding: 0n,
    };
    expect(encodeMemory([region])).toEqual(
      viaDataView(SIZEOF_VHOST_MEMORY + SIZEOF_VHOST_MEMORY_REGION, (d) => {
        d.setUint32(0, 1, true);
        d.setBigUint64(SIZEOF_VHOST_MEMORY + 8, 0x10000n, true);
        d.setBigUint64(SIZEOF_VHOST_MEMORY + 16, 0x7f0000000000n, true);
      }),
    );
  });
});
