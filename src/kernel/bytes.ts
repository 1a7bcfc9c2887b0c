/**
 * Little-endian loads and stores on byte arrays, for the small buffers that cross the syscall
 * boundary (ioctl arguments, eventfd counters). Not a DataView: the `.buffer` of a typed array
 * of at most 64 bytes lives on the JS heap until asked for, and asking moves it off-heap,
 * which costs ten times the access; the explorer makes thousands of such calls per second.
 */

/** stores ToUint32(v) at `o` (so an int such as fd −1 gives the same four bytes) */
export function putU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = (v >>> 16) & 0xff;
  b[o + 3] = (v >>> 24) & 0xff;
}

/** stores v modulo 2^64 at `o` */
export function putU64(b: Uint8Array, o: number, v: bigint): void {
  putU32(b, o, Number(BigInt.asUintN(32, v)));
  putU32(b, o + 4, Number(BigInt.asUintN(32, v >> 32n)));
}

export function getU32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

export function getU64(b: Uint8Array, o: number): bigint {
  return (BigInt(getU32(b, o + 4)) << 32n) | BigInt(getU32(b, o));
}
