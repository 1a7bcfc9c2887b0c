/**
 * Copies between a descriptor chain's iovecs and kernel buffers, in the address space of the
 * current task (the owner's mm, borrowed by kthreads with kthread_use_mm): the model of
 * include/linux/uio.h copy_from_iter()/copy_to_iter() and the _full variants.
 */
import { Errno, err, ok, type Result } from '../kernel/errno.js';
import type { MM } from '../kernel/mm.js';
import type { Iov } from './vring.js';

/** iov_length() */
export function iovLength(iovs: readonly Iov[]): number {
  let n = 0;
  for (const v of iovs) n += v.len;
  return n;
}

/** copy_from_iter(): up to `len` bytes (default: all) from byte `skip` of the iovecs. */
export function copyFromIovs(
  mm: MM,
  iovs: readonly Iov[],
  len = Number.POSITIVE_INFINITY,
  skip = 0,
): Result<Uint8Array> {
  const out = new Uint8Array(Math.max(0, Math.min(len, iovLength(iovs) - skip)));
  let o = 0;
  for (const v of iovs) {
    if (o >= out.length) break;
    if (skip >= v.len) {
      skip -= v.len;
      continue;
    }
    const n = Math.min(v.len - skip, out.length - o);
    const r = mm.read(v.addr + skip, n);
    if (!r.ok) return r;
    out.set(r.value, o);
    o += n;
    skip = 0;
  }
  return ok(out);
}

/** copy_from_iter_full(): exactly `len` bytes, EFAULT when the iovecs hold fewer. */
export function copyFromIovsFull(mm: MM, iovs: readonly Iov[], len: number, skip = 0): Result<Uint8Array> {
  const r = copyFromIovs(mm, iovs, len, skip);
  return r.ok && r.value.length !== len ? err(Errno.EFAULT) : r;
}

/** copy_to_iter(): scatter `data` into the iovecs from byte `skip`; returns the bytes copied. */
export function copyToIovs(mm: MM, iovs: readonly Iov[], data: Uint8Array, skip = 0): Result<number> {
  let o = 0;
  for (const v of iovs) {
    if (o >= data.length) break;
    if (skip >= v.len) {
      skip -= v.len;
      continue;
    }
    const n = Math.min(v.len - skip, data.length - o);
    const w = mm.write(v.addr + skip, data.subarray(o, o + n));
    if (!w.ok) return w;
    o += n;
    skip = 0;
  }
  return ok(o);
}
