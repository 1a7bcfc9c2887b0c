/**
 * Credentials, capabilities, user namespaces and ucounts.
 * Models include/linux/cred.h, kernel/cred.c (prepare_creds/commit_creds), kernel/ucount.c
 * (inc/dec_rlimit_ucounts, is_rlimit_overlimit) and kernel/user_namespace.c, v6.12.
 */
import type { Kernel } from './kernel.js';

// include/uapi/linux/capability.h
export const CAP_CHOWN = 0;
export const CAP_KILL = 5;
export const CAP_SETGID = 6;
export const CAP_SETUID = 7;
export const CAP_SETPCAP = 8;
export const CAP_NET_ADMIN = 12;
export const CAP_SYS_PTRACE = 19;
export const CAP_SYS_ADMIN = 21;
export const CAP_SYS_NICE = 23;
export const CAP_SYS_RESOURCE = 24;
export const CAP_CHECKPOINT_RESTORE = 40;
export const CAP_LAST_CAP = 40;
export const CAP_NAMES: Readonly<Record<string, number>> = {
  CAP_CHOWN,
  CAP_KILL,
  CAP_SETGID,
  CAP_SETUID,
  CAP_SETPCAP,
  CAP_NET_ADMIN,
  CAP_SYS_PTRACE,
  CAP_SYS_ADMIN,
  CAP_SYS_NICE,
  CAP_SYS_RESOURCE,
  CAP_CHECKPOINT_RESTORE,
};
export type CapSet = bigint;
export const CAP_FULL_SET: CapSet = (1n << BigInt(CAP_LAST_CAP + 1)) - 1n;
export const CAP_EMPTY_SET: CapSet = 0n;
export const capBit = (cap: number): CapSet => 1n << BigInt(cap);
export const capRaised = (set: CapSet, cap: number): boolean => (set & capBit(cap)) !== 0n;

/** A user namespace (struct user_namespace). */
export class UserNamespace {
  /** ucount_max[UCOUNT_RLIMIT_NPROC] analogue: the creator's RLIMIT_NPROC when created. */
  rlimitNprocMax: number;
  constructor(
    readonly inum: number,
    readonly parent: UserNamespace | null,
    readonly ownerUid: number,
    rlimitNprocMax: number,
  ) {
    this.rlimitNprocMax = rlimitNprocMax;
  }
  get level(): number {
    return this.parent ? this.parent.level + 1 : 0;
  }
}

/** struct ucounts: per-(user ns, uid) counters; only UCOUNT_RLIMIT_NPROC is modelled. */
export class Ucounts {
  nproc = 0;
  constructor(
    readonly ns: UserNamespace,
    readonly uid: number,
  ) {}
}

/** The table of ucounts (kernel/ucount.c ucounts_hashtable). */
export class UcountsTable {
  private readonly map = new Map<UserNamespace, Map<number, Ucounts>>();
  get(ns: UserNamespace, uid: number): Ucounts {
    let m = this.map.get(ns);
    if (!m) {
      m = new Map();
      this.map.set(ns, m);
    }
    let u = m.get(uid);
    if (!u) {
      u = new Ucounts(ns, uid);
      m.set(uid, u);
    }
    return u;
  }
  /** Every ucounts entry with a non-zero count, for invariants and views. */
  *all(): Iterable<Ucounts> {
    for (const m of this.map.values()) for (const u of m.values()) yield u;
  }
  /** all() without an iterator object per entry (the explorer's invariant checks) */
  forEach(fn: (u: Ucounts) => void): void {
    for (const m of this.map.values()) for (const u of m.values()) fn(u);
  }
}

/** struct cred. Immutable once committed: changes go through prepareCreds + commitCreds. */
export interface Cred {
  readonly uid: number;
  readonly euid: number;
  readonly suid: number;
  readonly fsuid: number;
  readonly gid: number;
  readonly egid: number;
  readonly sgid: number;
  readonly fsgid: number;
  readonly groups: readonly number[];
  readonly capInheritable: CapSet;
  readonly capPermitted: CapSet;
  readonly capEffective: CapSet;
  readonly capBset: CapSet;
  readonly capAmbient: CapSet;
  readonly userNs: UserNamespace;
  readonly ucounts: Ucounts;
  /** PR_SET_KEEPCAPS */
  readonly keepCaps: boolean;
}

/**
 * The ucounts chain from a cred's ucounts up through every ancestor user namespace: the
 * owner of each namespace is charged in its parent (kernel/ucount.c inc_rlimit_ucounts).
 */
export function* ucountsChain(k: Kernel, u: Ucounts): Iterable<Ucounts> {
  let cur: Ucounts | null = u;
  while (cur) {
    yield cur;
    const ns: UserNamespace = cur.ns;
    cur = ns.parent ? k.ucounts.get(ns.parent, ns.ownerUid) : null;
  }
}

/** models kernel/ucount.c inc_rlimit_ucounts(), v6.12: every level of the chain +v. */
export function incRlimitUcounts(k: Kernel, u: Ucounts, v: number): void {
  for (const it of ucountsChain(k, u)) it.nproc += v;
}
export function decRlimitUcounts(k: Kernel, u: Ucounts, v: number): void {
  for (const it of ucountsChain(k, u)) it.nproc -= v;
}

/**
 * models kernel/ucount.c is_rlimit_overlimit(), v6.12: true if the count exceeds `rlimit`
 * at the first level or any ancestor level's maximum (the namespace's recorded limit).
 */
export function isRlimitOverlimit(k: Kernel, u: Ucounts, rlimit: number): boolean {
  let max = rlimit;
  for (const it of ucountsChain(k, u)) {
    if (it.nproc > max) return true;
    max = Math.min(max, it.ns.rlimitNprocMax);
  }
  return false;
}

/**
 * models kernel/capability.c ns_capable(ns, cap) for the cred (security_capable via
 * cap_capable(), v6.12): the cap is effective in the cred's own user ns and `ns` is that ns
 * or a descendant of it, or the cred's euid owns an ancestor of `ns` below the cred's ns.
 */
export function credCapable(c: Cred, ns: UserNamespace, cap: number): boolean {
  let target: UserNamespace | null = ns;
  while (target) {
    if (target === c.userNs) return capRaised(c.capEffective, cap);
    if (target.parent === c.userNs && target.ownerUid === c.euid) return true;
    target = target.parent;
  }
  return false;
}

/** models kernel/capability.c capable(cap): ns_capable(&init_user_ns, cap). */
export function capable(k: Kernel, c: Cred, cap: number): boolean {
  return credCapable(c, k.initUserNs, cap);
}

/**
 * models security/commoncap.c cap_emulate_setxuid(), v6.12: dropping every root uid clears
 * permitted/effective/ambient (unless keepcaps); euid 0 → non-zero clears effective;
 * euid non-zero → 0 restores effective from permitted.
 */
export function capEmulateSetxuid(newc: Cred, old: Cred): Cred {
  let c = newc;
  const oldRoot = old.uid === 0 || old.euid === 0 || old.suid === 0;
  const newNonRoot = c.uid !== 0 && c.euid !== 0 && c.suid !== 0;
  if (oldRoot && newNonRoot && !c.keepCaps) {
    c = { ...c, capPermitted: 0n, capEffective: 0n };
  }
  if (oldRoot && newNonRoot) c = { ...c, capAmbient: 0n };
  if (old.euid === 0 && c.euid !== 0) c = { ...c, capEffective: 0n };
  if (old.euid !== 0 && c.euid === 0) c = { ...c, capEffective: c.capPermitted };
  return c;
}
