/**
 * Errno values of Linux on x86-64 (include/uapi/asm-generic/errno-base.h, errno.h,
 * include/linux/errno.h for the kernel-internal restart codes), and the Result type that
 * every modelled call returns. A syscall-visible failure is a value; a broken simulator
 * invariant throws (see invariant()).
 */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  EBADF: 9,
  ECHILD: 10,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  ENOTDIR: 20,
  EINVAL: 22,
  EMFILE: 24,
  ENOTTY: 25,
  ENOSPC: 28,
  ESPIPE: 29,
  EROFS: 30,
  EPIPE: 32,
  ERANGE: 34,
  EDEADLK: 35,
  ENOSYS: 38,
  EUSERS: 87,
  ENOTSOCK: 88,
  EPFNOSUPPORT: 96,
  ESOCKTNOSUPPORT: 94,
  EOPNOTSUPP: 95,
  EADDRINUSE: 98,
  ENOBUFS: 105,
  ECANCELED: 125,
  EOWNERDEAD: 130,
  /** kernel-internal: restart the syscall if the handler allows it */
  ERESTARTSYS: 512,
  /** kernel-internal: always restart transparently */
  ERESTARTNOINTR: 513,
  /** kernel-internal: restart unless a handler ran (pause, sigsuspend) */
  ERESTARTNOHAND: 514,
  /** kernel-internal: the ioctl is not handled here, fall back */
  ENOIOCTLCMD: 515,
} as const;

export type ErrnoName = keyof typeof Errno;
export type Errno = (typeof Errno)[ErrnoName];

const NAMES = new Map<number, ErrnoName>(
  Object.entries(Errno).map(([name, value]) => [value, name as ErrnoName]),
);

/** The symbolic name of an errno value, e.g. 11 → "EAGAIN". */
export function errnoName(e: number): string {
  return NAMES.get(e) ?? `E${e}`;
}

/** Parse "EAGAIN" → 11; undefined when the name is unknown. */
export function errnoFromName(name: string): Errno | undefined {
  return Object.hasOwn(Errno, name) ? Errno[name as ErrnoName] : undefined;
}

export type Ok<T> = { readonly ok: true; readonly value: T };
export type Err = { readonly ok: false; readonly errno: Errno };
export type Result<T> = Ok<T> | Err;

const OK_VOID: Ok<undefined> = Object.freeze({ ok: true, value: undefined });
const ERRS = new Map<number, Err>();

export function ok<T>(value: T): Ok<T>;
export function ok(): Ok<undefined>;
export function ok<T>(value?: T): Ok<T | undefined> {
  return value === undefined ? OK_VOID : { ok: true, value };
}

/** A failure value; instances are shared per errno (they are immutable). */
export function err(errno: Errno): Err {
  let e = ERRS.get(errno);
  if (e === undefined) {
    e = Object.freeze({ ok: false, errno });
    ERRS.set(errno, e);
  }
  return e;
}

/** Thrown when the simulator's own state is inconsistent: the analogue of the kernel's BUG(). */
export class InvariantError extends Error {
  override name = 'InvariantError';
}

/** Assert a simulator invariant; throws InvariantError (never used for syscall-visible failures). */
export function invariant(cond: unknown, message: string | (() => string)): asserts cond {
  if (!cond) throw new InvariantError(typeof message === 'string' ? message : message());
}
