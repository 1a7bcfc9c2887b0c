/**
 * Signal numbers and sigset helpers (x86-64; include/uapi/asm-generic/signal.h,
 * include/linux/signal.h). A sigset is a 64-bit mask held in a bigint: bit (sig - 1).
 */
export const SIGHUP = 1;
export const SIGINT = 2;
export const SIGQUIT = 3;
export const SIGILL = 4;
export const SIGTRAP = 5;
export const SIGABRT = 6;
export const SIGBUS = 7;
export const SIGFPE = 8;
export const SIGKILL = 9;
export const SIGUSR1 = 10;
export const SIGSEGV = 11;
export const SIGUSR2 = 12;
export const SIGPIPE = 13;
export const SIGALRM = 14;
export const SIGTERM = 15;
export const SIGSTKFLT = 16;
export const SIGCHLD = 17;
export const SIGCONT = 18;
export const SIGSTOP = 19;
export const SIGTSTP = 20;
export const SIGTTIN = 21;
export const SIGTTOU = 22;
export const SIGURG = 23;
export const SIGXCPU = 24;
export const SIGXFSZ = 25;
export const SIGVTALRM = 26;
export const SIGPROF = 27;
export const SIGWINCH = 28;
export const SIGIO = 29;
export const SIGPWR = 30;
export const SIGSYS = 31;
export const SIGRTMIN = 32;
export const _NSIG = 64;

export const SIGNAL_NAMES: readonly string[] = [
  '',
  'SIGHUP',
  'SIGINT',
  'SIGQUIT',
  'SIGILL',
  'SIGTRAP',
  'SIGABRT',
  'SIGBUS',
  'SIGFPE',
  'SIGKILL',
  'SIGUSR1',
  'SIGSEGV',
  'SIGUSR2',
  'SIGPIPE',
  'SIGALRM',
  'SIGTERM',
  'SIGSTKFLT',
  'SIGCHLD',
  'SIGCONT',
  'SIGSTOP',
  'SIGTSTP',
  'SIGTTIN',
  'SIGTTOU',
  'SIGURG',
  'SIGXCPU',
  'SIGXFSZ',
  'SIGVTALRM',
  'SIGPROF',
  'SIGWINCH',
  'SIGIO',
  'SIGPWR',
  'SIGSYS',
];

/** "SIGKILL" → 9, "KILL" → 9, "9" → 9, "SIGRTMIN+2" → 34; undefined if unknown. */
export function signalFromName(name: string): number | undefined {
  if (/^\d+$/.test(name)) {
    const n = Number(name);
    return n >= 1 && n <= _NSIG ? n : undefined;
  }
  const up = name.toUpperCase();
  const full = up.startsWith('SIG') ? up : `SIG${up}`;
  const rt = /^SIGRTMIN(?:\+(\d+))?$/.exec(full);
  if (rt) {
    const n = SIGRTMIN + Number(rt[1] ?? 0);
    return n <= _NSIG ? n : undefined;
  }
  const i = SIGNAL_NAMES.indexOf(full);
  return i > 0 ? i : undefined;
}

export function signalName(sig: number): string {
  if (sig >= SIGRTMIN) return sig === SIGRTMIN ? 'SIGRTMIN' : `SIGRTMIN+${sig - SIGRTMIN}`;
  return SIGNAL_NAMES[sig] ?? `SIG${sig}`;
}

export type SigSet = bigint;
export const EMPTY_SIGSET: SigSet = 0n;
export const FULL_SIGSET: SigSet = (1n << 64n) - 1n;

export function sigmask(sig: number): SigSet {
  return 1n << BigInt(sig - 1);
}
export function sigismember(set: SigSet, sig: number): boolean {
  return (set & sigmask(sig)) !== 0n;
}
export function sigaddset(set: SigSet, sig: number): SigSet {
  return set | sigmask(sig);
}
export function sigdelset(set: SigSet, sig: number): SigSet {
  return set & ~sigmask(sig);
}
export function sigsetOf(...sigs: number[]): SigSet {
  let s = 0n;
  for (const sig of sigs) s |= sigmask(sig);
  return s;
}

/** SIGKILL and SIGSTOP: cannot be caught, blocked or ignored (sig_kernel_only). */
export const SIG_KERNEL_ONLY_MASK = sigsetOf(SIGKILL, SIGSTOP);
/** Default action "stop" (sig_kernel_stop). */
export const SIG_KERNEL_STOP_MASK = sigsetOf(SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU);
/** Default action "core dump" (sig_kernel_coredump). */
export const SIG_KERNEL_COREDUMP_MASK = sigsetOf(
  SIGQUIT,
  SIGILL,
  SIGTRAP,
  SIGABRT,
  SIGFPE,
  SIGSEGV,
  SIGBUS,
  SIGSYS,
  SIGXCPU,
  SIGXFSZ,
);
/** Default action "ignore" (sig_kernel_ignore). */
export const SIG_KERNEL_IGNORE_MASK = sigsetOf(SIGCONT, SIGCHLD, SIGWINCH, SIGURG);

const isLegacy = (sig: number) => sig < SIGRTMIN;
export const sigKernelOnly = (sig: number) => isLegacy(sig) && sigismember(SIG_KERNEL_ONLY_MASK, sig);
export const sigKernelStop = (sig: number) => isLegacy(sig) && sigismember(SIG_KERNEL_STOP_MASK, sig);
export const sigKernelCoredump = (sig: number) => isLegacy(sig) && sigismember(SIG_KERNEL_COREDUMP_MASK, sig);
export const sigKernelIgnore = (sig: number) => isLegacy(sig) && sigismember(SIG_KERNEL_IGNORE_MASK, sig);

/**
 * render_sigset_t() of fs/proc/array.c: 16 hex digits, most significant nibble first.
 * @example renderSigset(sigsetOf(SIGUSR1)) === '0000000000000200'
 */
export function renderSigset(set: SigSet): string {
  return set.toString(16).padStart(16, '0');
}

// sigaction dispositions; any other value is a user handler address.
export const SIG_DFL = 0;
export const SIG_IGN = 1;
// sa_flags (include/uapi/asm-generic/signal-defs.h, x86)
export const SA_NOCLDSTOP = 0x00000001;
export const SA_NOCLDWAIT = 0x00000002;
export const SA_SIGINFO = 0x00000004;
export const SA_RESTART = 0x10000000;
export const SA_NODEFER = 0x40000000;
export const SA_RESETHAND = 0x80000000;

// sigprocmask how
export const SIG_BLOCK = 0;
export const SIG_UNBLOCK = 1;
export const SIG_SETMASK = 2;
