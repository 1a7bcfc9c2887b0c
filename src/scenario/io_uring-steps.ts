/**
 * The io_uring steps of the scenario language (`pipe`, `io_uring`,
 * `io_uring_submit`, `io_uring_register`), run as the program would with the raw syscalls
 * (src/io_uring/user.ts). Each returns what the runner records: a detail line, the syscall's
 * result, a value, and aliases to define.
 */

import { ioUringEnter } from '../io_uring/io_uring.js';
import {
  IORING_ENTER_GETEVENTS,
  IORING_OP_NOP,
  IORING_OP_READ,
  IORING_OP_WRITE,
  IORING_SETUP_SQPOLL,
  IOSQE_ASYNC,
} from '../io_uring/uapi.js';
import {
  ioUringQueueInit,
  ioUringRegisterIowqMaxWorkers,
  ioUringSubmitAndWait,
  queueSqe,
  reapCqes,
  type UserRing,
} from '../io_uring/user.js';
import { Errno, err, errnoName, ok, type Result } from '../kernel/errno.js';
import type { KGen } from '../kernel/sched.js';
import type { Sys } from '../kernel/syscalls.js';

export type IoUringAlias = { kind: 'fd'; fd: number } | { kind: 'io_uring'; fd: number; ring: UserRing };

export interface IoUringStepResult {
  detail: string;
  result: Result<unknown>;
  value?: number;
  aliases?: [string, IoUringAlias][];
}

const OPS = { nop: IORING_OP_NOP, read: IORING_OP_READ, write: IORING_OP_WRITE } as const;

/** Summarise CQE results: "8 ×3, ECANCELED ×1". */
function summarize(res: number[]): string {
  const counts = new Map<string, number>();
  for (const r of res) {
    const key = r < 0 ? errnoName(-r as Errno) : String(r);
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([key, n]) => (n > 1 ? `${key} ×${n}` : key)).join(', ');
}

/**
 * Run one io_uring step. `ring(name)` and `fd(v)` resolve aliases of the process; an unknown
 * ring is EBADF, like a bad fd.
 */
export function* ioUringStep(
  sys: Sys,
  action: string,
  b: Record<string, unknown>,
  ring: (name: unknown) => UserRing | null,
  fd: (v: unknown) => number,
): KGen<IoUringStepResult> {
  switch (action) {
    case 'pipe': {
      const r = yield* sys.pipe();
      return {
        detail: `as ${b.read}, ${b.write}`,
        result: r,
        ...(r.ok
          ? {
              aliases: [
                [String(b.read), { kind: 'fd', fd: r.value[0] }],
                [String(b.write), { kind: 'fd', fd: r.value[1] }],
              ],
            }
          : {}),
      };
    }
    case 'io_uring': {
      const r = yield* ioUringQueueInit(sys, Number(b.entries), {
        flags: b.sqpoll ? IORING_SETUP_SQPOLL : 0,
        ...(b.sq_thread_idle !== undefined ? { sqThreadIdleMs: Number(b.sq_thread_idle) } : {}),
      });
      return {
        detail: `${b.entries} entries${b.sqpoll ? ', SQPOLL' : ''} as ${b.as}`,
        result: r,
        ...(r.ok
          ? {
              value: r.value.fd,
              aliases: [[String(b.as), { kind: 'io_uring', fd: r.value.fd, ring: r.value }]],
            }
          : {}),
      };
    }
    case 'io_uring_submit': {
      const rg = ring(b.ring);
      const op = String(b.op) as keyof typeof OPS;
      const count = Number(b.count ?? 1);
      const size = Number(b.size ?? 8);
      const wait = Number(b.wait ?? 0);
      const detail = `${count} × ${op}${b.fd !== undefined ? ` ${b.fd}` : ''}${b.async ? ' async' : ''} on ${b.ring}${wait ? `, wait ${wait}` : ''}`;
      if (!rg) return { detail, result: err(Errno.EBADF) };
      const buf = yield* sys.mmap(count * size);
      if (!buf.ok) return { detail, result: buf };
      const f = b.fd === undefined ? -1 : fd(b.fd);
      let submitted = 0;
      let queued = 0;
      let last: Result<number> = ok(0);
      // queue as many as the SQ ring holds, enter, and go on until all are submitted
      while (queued < count) {
        let batch = 0;
        while (
          queued < count &&
          queueSqe(sys, rg, {
            opcode: OPS[op],
            flags: b.async ? IOSQE_ASYNC : 0,
            fd: f,
            off: 0n,
            addr: buf.value + queued * size,
            len: op === 'nop' ? 0 : size,
            userData: BigInt(queued + 1),
          })
        ) {
          queued++;
          batch++;
        }
        const done = queued === count;
        last = yield* ioUringSubmitAndWait(sys, rg, batch, done ? wait : 0);
        if (!last.ok) break;
        submitted += last.value;
        if (!batch) break;
      }
      const cqes = reapCqes(sys, rg).map((c) => c.res);
      return {
        detail: `${detail}${cqes.length ? `: ${summarize(cqes)}` : ''}`,
        result: last.ok ? ok(submitted) : last,
        value: submitted,
      };
    }
    case 'io_uring_wait': {
      const rg = ring(b.ring);
      const n = Number(b.count);
      const detail = `${n} on ${b.ring}`;
      if (!rg) return { detail, result: err(Errno.EBADF) };
      const r = yield* ioUringEnter(sys, rg.fd, 0, n, IORING_ENTER_GETEVENTS);
      if (!r.ok) return { detail, result: r };
      const cqes = reapCqes(sys, rg).map((c) => c.res);
      const failed = cqes.find((x) => x < 0);
      return {
        detail: `${detail}${cqes.length ? `: ${summarize(cqes)}` : ''}`,
        result: failed === undefined ? ok(cqes.length) : err(-failed as Errno),
        value: cqes.length,
      };
    }
    case 'io_uring_register': {
      const rg = ring(b.ring);
      const [bound, unbound] = b.max_workers as [number, number];
      const detail = `${b.ring} IOWQ_MAX_WORKERS [${bound}, ${unbound}]`;
      if (!rg) return { detail, result: err(Errno.EBADF) };
      const r = yield* ioUringRegisterIowqMaxWorkers(sys, rg, bound, unbound);
      return {
        detail: r.ok ? `${detail}, was [${r.value[0]}, ${r.value[1]}]` : detail,
        result: r,
        ...(r.ok ? { value: r.value[1] } : {}),
      };
    }
    default:
      throw new Error(`not an io_uring step: ${action}`);
  }
}
