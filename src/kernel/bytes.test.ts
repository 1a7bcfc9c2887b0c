import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { getU32, getU64, putU32, putU64 } from './bytes.js';
import { viaDataView } from './testing.js';

describe('little-endian loads and stores', () => {
  it('putU32 stores the bytes DataView.setUint32 stores, for any number (ToUint32)', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.integer(), fc.double(), fc.constantFrom(-1, 2 ** 32, 2 ** 53, Number.NaN)),
        (v) => {
          const b = new Uint8Array(4);
          putU32(b, 0, v);
          expect(b).toEqual(viaDataView(4, (d) => d.setUint32(0, v >>> 0, true)));
        },
      ),
    );
  });

  it('putU64 stores the bytes DataView.setBigUint64 stores, for any bigint (modulo 2^64)', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(1n << 70n), max: 1n << 70n }), (v) => {
        const b = new Uint8Array(8);
        putU64(b, 0, v);
        expect(b).toEqual(viaDataView(8, (d) => d.setBigUint64(0, v, true)));
      }),
    );
  });

  it('getU32 and getU64 read what DataView reads, at any offset', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 8, maxLength: 24 }), fc.nat(16), (bytes, at) => {
        const o = at % (bytes.length - 7);
        const d = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
        expect(getU32(bytes, o)).toBe(d.getUint32(o, true));
        expect(getU64(bytes, o)).toBe(d.getBigUint64(o, true));
      }),
    );
  });
});
