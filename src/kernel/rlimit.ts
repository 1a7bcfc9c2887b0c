/**
 * Resource limits (include/uapi/asm-generic/resource.h, kernel/sys.c do_prlimit), v6.12.
 */
export const RLIMIT_CPU = 0;
export const RLIMIT_FSIZE = 1;
export const RLIMIT_DATA = 2;
export const RLIMIT_STACK = 3;
export const RLIMIT_CORE = 4;
export const RLIMIT_RSS = 5;
export const RLIMIT_NPROC = 6;
export const RLIMIT_NOFILE = 7;
export const RLIMIT_MEMLOCK = 8;
export const RLIMIT_AS = 9;
export const RLIMIT_SIGPENDING = 11;
export const RLIM_NLIMITS = 16;
/** RLIM_INFINITY, modelled as Infinity */
export const RLIM_INFINITY = Number.POSITIVE_INFINITY;

export const RLIMIT_NAMES: Readonly<Record<string, number>> = {
  cpu: RLIMIT_CPU,
  fsize: RLIMIT_FSIZE,
  data: RLIMIT_DATA,
  stack: RLIMIT_STACK,
  core: RLIMIT_CORE,
  rss: RLIMIT_RSS,
  nproc: RLIMIT_NPROC,
  nofile: RLIMIT_NOFILE,
  memlock: RLIMIT_MEMLOCK,
  as: RLIMIT_AS,
};

export interface Rlimit {
  readonly cur: number;
  readonly max: number;
}

/** INIT_RLIMITS (include/asm-generic/resource.h) with RLIMIT_NPROC and RLIMIT_SIGPENDING set at boot (set_max_threads, fork_init). */
export function initRlimits(maxThreads: number): Rlimit[] {
  const inf = { cur: RLIM_INFINITY, max: RLIM_INFINITY };
  const r: Rlimit[] = new Array(RLIM_NLIMITS).fill(inf);
  r[RLIMIT_STACK] = { cur: 8 * 1024 * 1024, max: RLIM_INFINITY };
  r[RLIMIT_CORE] = { cur: 0, max: RLIM_INFINITY };
  r[RLIMIT_NOFILE] = { cur: 1024, max: 4096 };
  r[RLIMIT_MEMLOCK] = { cur: 8 * 1024 * 1024, max: 8 * 1024 * 1024 };
  const nproc = Math.floor(maxThreads / 2);
  r[RLIMIT_NPROC] = { cur: nproc, max: nproc };
  // fork_init(): init_task.signal->rlim[RLIMIT_SIGPENDING] = init_task.signal->rlim[RLIMIT_NPROC]
  r[RLIMIT_SIGPENDING] = { cur: nproc, max: nproc };
  return r;
}
