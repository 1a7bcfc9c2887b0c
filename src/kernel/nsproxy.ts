/**
 * Namespaces other than pid and user (which have their own files): struct nsproxy and the
 * namespace identities seen in /proc/<pid>/ns/. Models kernel/nsproxy.c, v6.12.
 */
import type { UserNamespace } from './cred.js';
import type { PidNamespace } from './pid.js';

export type NsType = 'mnt' | 'uts' | 'ipc' | 'net' | 'cgroup' | 'time';

/** A namespace identity: the inode number shown as `type:[inum]`. */
export interface Namespace {
  readonly type: NsType;
  readonly inum: number;
  readonly userNs: UserNamespace;
}

/** struct nsproxy: shared by tasks until one of them unshares. */
export interface NsProxy {
  readonly uts: Namespace;
  readonly ipc: Namespace;
  readonly mnt: Namespace;
  readonly pidForChildren: PidNamespace;
  readonly net: Namespace;
  readonly time: Namespace;
  readonly timeForChildren: Namespace;
  readonly cgroup: Namespace;
}

/**
 * The proc inode numbers of the initial namespaces (include/linux/proc_ns.h
 * PROC_*_INIT_INO; mnt and net are allocated at boot and get the next numbers).
 */
export const PROC_IPC_INIT_INO = 0xefffffff;
export const PROC_UTS_INIT_INO = 0xeffffffe;
export const PROC_USER_INIT_INO = 0xeffffffd;
export const PROC_PID_INIT_INO = 0xeffffffc;
export const PROC_CGROUP_INIT_INO = 0xeffffffb;
export const PROC_TIME_INIT_INO = 0xeffffffa;
export const INIT_NET_INO = 4026531840;
export const INIT_MNT_INO = 4026531841;
