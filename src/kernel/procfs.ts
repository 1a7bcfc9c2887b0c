/**
 * /proc rendering in the kernel's text formats. Models fs/proc/array.c proc_pid_status()
 * and do_task_stat(), fs/proc/base.c (task/, ns/), kernel/cgroup/cgroup.c proc_cgroup_show()
 * and the cgroupfs files of kernel/cgroup/pids.c and cpu.stat, v6.12.
 */
import type { Cgroup } from '../cgroup/cgroup.js';
import type { Kernel } from './kernel.js';
import type { PidNamespace } from './pid.js';
import { RLIMIT_NOFILE } from './rlimit.js';
import { PF_KTHREAD } from './sched-consts.js';
import { renderSigset, SIG_DFL, SIG_IGN, type SigSet, sigmask } from './signal-consts.js';
import { STATE_NAMES, type Task, taskStateLetter } from './task.js';

/** %*pbl: CPU list with ranges, e.g. "0-3,5". */
export function cpuList(mask: number): string {
  const out: string[] = [];
  for (let i = 0; i < 32; ) {
    if (!((mask >>> i) & 1)) {
      i++;
      continue;
    }
    let j = i;
    while (j + 1 < 32 && (mask >>> (j + 1)) & 1) j++;
    out.push(i === j ? `${i}` : `${i}-${j}`);
    i = j + 1;
  }
  return out.join(',');
}

/** Parse "0-3,5" into a mask; null on a syntax error. */
export function parseCpuList(s: string): number | null {
  let m = 0;
  for (const part of s.split(',')) {
    const r = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!r) return null;
    const a = Number(r[1]);
    const b = r[2] === undefined ? a : Number(r[2]);
    if (a > b || b > 31) return null;
    for (let i = a; i <= b; i++) m |= 1 << i;
  }
  return m >>> 0;
}

/** %*pb for nr_cpu_ids bits: hex, first group padded to its nibbles. */
function cpuMaskHex(mask: number, nrCpus: number): string {
  return (mask >>> 0).toString(16).padStart(Math.ceil(nrCpus / 4), '0');
}

function sigsetOfDisposition(t: Task, pred: (h: number) => boolean): SigSet {
  let s = 0n;
  for (let sig = 1; sig <= 64; sig++) if (pred(t.sighand.action[sig]?.handler ?? SIG_DFL)) s |= sigmask(sig);
  return s;
}

/** The pid-namespace chain from `from` (the reader's) down to the task's own level. */
function nsNumbers(t: Task, from: PidNamespace): number[] {
  const pid = t.pidStruct;
  if (!pid) return [0];
  const out: number[] = [];
  for (let l = from.level; l <= pid.level; l++) out.push(pid.numbers[l]?.nr ?? 0);
  return out;
}

/**
 * models proc_task_name(), v6.12: a kthread shows its full name (up to 63 characters) from
 * v5.17 (d6986ce24fc0); everyone else the 15-character comm.
 */
export function procTaskName(k: Kernel, t: Task): string {
  if (t.kthread && k.profile.procKthreadFullName) return t.kthread.fullName.slice(0, 63);
  return t.comm;
}

/** models proc_pid_status() for /proc/<tgid>/task/<tid>/status as read from `reader`'s pid ns. */
export function procStatus(k: Kernel, t: Task, readerNs: PidNamespace = k.initPidNs): string {
  const c = t.cred;
  const lines: string[] = [];
  lines.push(`Name:\t${procTaskName(k, t).replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`);
  if (t.fs) lines.push(`Umask:\t${t.fs.umask.toString(8).padStart(4, '0')}`);
  lines.push(`State:\t${STATE_NAMES[taskStateLetter(t)]}`);
  lines.push(`Tgid:\t${t.tgidIn(readerNs)}`);
  lines.push('Ngid:\t0');
  lines.push(`Pid:\t${t.pidIn(readerNs)}`);
  const alive = t.exitState === 0 || t.exitState === 0x20;
  lines.push(`PPid:\t${alive && t.realParent !== t ? t.realParent.tgidIn(readerNs) : 0}`);
  lines.push(`TracerPid:\t${t.ptrace ? t.parent.tgidIn(readerNs) : 0}`);
  lines.push(`Uid:\t${c.uid}\t${c.euid}\t${c.suid}\t${c.fsuid}`);
  lines.push(`Gid:\t${c.gid}\t${c.egid}\t${c.sgid}\t${c.fsgid}`);
  lines.push(
    `FDSize:\t${t.files ? Math.max(64, 2 ** Math.ceil(Math.log2(Math.max(1, t.files.fds.length)))) : 0}`,
  );
  lines.push(`Groups:\t${c.groups.map((g) => `${g} `).join('')}${c.groups.length ? '' : ' '}`);
  const tg = nsNumbers(t.groupLeader, readerNs);
  const tp = nsNumbers(t, readerNs);
  lines.push(`NStgid:\t${tg.join('\t')}`);
  lines.push(`NSpid:\t${tp.join('\t')}`);
  lines.push(`NSpgid:\t${tg.join('\t')}`);
  lines.push(`NSsid:\t${tg.join('\t')}`);
  if (k.profile.procStatusKthreadLine) lines.push(`Kthread:\t${t.flags & PF_KTHREAD ? 1 : 0}`);
  if (t.mm && !(t.flags & PF_KTHREAD)) {
    const kb = (n: number) => `${String(Math.floor(n / 1024)).padStart(8)} kB`;
    lines.push(`VmSize:\t${kb(t.mm.size)}`);
    lines.push(`VmRSS:\t${kb(t.mm.size)}`);
  }
  lines.push(`Threads:\t${t.signal.nrThreads}`);
  // task_sig(): qlim is an unsigned long, so RLIM_INFINITY prints as ULONG_MAX
  const qlim = t.signal.rlim[11]?.cur ?? 0;
  lines.push(
    `SigQ:\t${t.pending.list.length + t.signal.sharedPending.list.length}/${qlim === Number.POSITIVE_INFINITY ? '18446744073709551615' : qlim}`,
  );
  lines.push(`SigPnd:\t${renderSigset(t.pending.signal)}`);
  lines.push(`ShdPnd:\t${renderSigset(t.signal.sharedPending.signal)}`);
  lines.push(`SigBlk:\t${renderSigset(t.blocked)}`);
  lines.push(`SigIgn:\t${renderSigset(sigsetOfDisposition(t, (h) => h === SIG_IGN))}`);
  lines.push(`SigCgt:\t${renderSigset(sigsetOfDisposition(t, (h) => h !== SIG_IGN && h !== SIG_DFL))}`);
  const cap = (v: bigint) => v.toString(16).padStart(16, '0');
  lines.push(`CapInh:\t${cap(c.capInheritable)}`);
  lines.push(`CapPrm:\t${cap(c.capPermitted)}`);
  lines.push(`CapEff:\t${cap(c.capEffective)}`);
  lines.push(`CapBnd:\t${cap(c.capBset)}`);
  lines.push(`CapAmb:\t${cap(c.capAmbient)}`);
  lines.push('NoNewPrivs:\t0');
  lines.push(`Cpus_allowed:\t${cpuMaskHex(t.cpusAllowed, k.nrCpus)}`);
  lines.push(`Cpus_allowed_list:\t${cpuList(t.cpusAllowed)}`);
  return `${lines.join('\n')}\n`;
}

/** models do_task_stat(), fields 1–20, 38 (exit_signal) and 39 (processor); others 0. */
export function procStat(k: Kernel, t: Task, readerNs: PidNamespace = k.initPidNs): string {
  const ticks = (ns: number) => Math.floor(ns / 10_000_000);
  const ppid = t.realParent !== t ? t.realParent.tgidIn(readerNs) : 0;
  const f: (string | number)[] = [
    t.pidIn(readerNs),
    `(${procTaskName(k, t)})`,
    taskStateLetter(t),
    ppid,
    t.tgidIn(readerNs), // pgrp (the model has no sessions: each process leads its own)
    t.tgidIn(readerNs), // session
    0,
    -1,
    t.flags >>> 0,
    0,
    0,
    0,
    0,
    ticks(t.userNs),
    ticks(t.systemNs),
    0,
    0,
    20,
    0,
    t.signal.nrThreads,
    0,
    ticks(t.startTime),
    t.mm && !(t.flags & PF_KTHREAD) ? t.mm.size : 0,
  ];
  while (f.length < 37) f.push(0);
  f.push(t.exitSignal, 0);
  while (f.length < 52) f.push(0);
  return `${f.join(' ')}\n`;
}

/** /proc/<pid>/task: the tids of the thread group, in thread-list order. */
export function procTaskList(t: Task, readerNs: PidNamespace): number[] {
  return t.signal.threads.filter((x) => x.exitState !== 0x10).map((x) => x.pidIn(readerNs));
}

/** models proc_cgroup_show(): v1 lines by descending hierarchy id, then "0::/path". */
export function procCgroup(k: Kernel, t: Task): string {
  const lines: string[] = [];
  for (const root of [...k.cgroupRoots].reverse()) {
    const cg = t.cgroups[root.id];
    if (!cg) continue;
    if (root.isDfl) lines.push(`0::${cg.path}${cg.removed ? ' (deleted)' : ''}`);
    else lines.push(`${root.id}:${root.controllers.join(',')}:${cg.path}`);
  }
  return `${lines.join('\n')}\n`;
}

/** /proc/<pid>/ns/<name> readlink text, e.g. "net:[4026531840]". */
export function procNsLinks(t: Task): Record<string, string> {
  const ns = t.nsproxy;
  const out: Record<string, string> = { user: `user:[${t.cred.userNs.inum}]` };
  const pidNs = t.activePidNs();
  if (pidNs) out.pid = `pid:[${pidNs.inum}]`;
  if (ns) {
    out.cgroup = `cgroup:[${ns.cgroup.inum}]`;
    out.ipc = `ipc:[${ns.ipc.inum}]`;
    out.mnt = `mnt:[${ns.mnt.inum}]`;
    out.net = `net:[${ns.net.inum}]`;
    out.pid_for_children = `pid:[${ns.pidForChildren.inum}]`;
    out.time = `time:[${ns.time.inum}]`;
    out.time_for_children = `time:[${ns.timeForChildren.inum}]`;
    out.uts = `uts:[${ns.uts.inum}]`;
  }
  return out;
}

/** A cgroupfs file's text, as `cat` would print it; null if the file does not exist there. */
export function cgroupFile(
  k: Kernel,
  cg: Cgroup,
  name: string,
  readerNs: PidNamespace = k.initPidNs,
): string | null {
  const pidsHere = !cg.isRoot && cg.hasController('pids');
  switch (name) {
    case 'pids.max':
      return pidsHere ? `${cg.pids.max === Number.POSITIVE_INFINITY ? 'max' : cg.pids.max}\n` : null;
    case 'pids.current':
      return pidsHere ? `${cg.pids.counter}\n` : null;
    case 'pids.peak':
      return pidsHere ? `${cg.pids.peak}\n` : null;
    case 'pids.events':
      return pidsHere ? `max ${cg.pids.eventsMax}\n` : null;
    case 'pids.events.local':
      return pidsHere && k.profile.pidsEventsHierarchical ? `max ${cg.pids.eventsMaxLocal}\n` : null;
    case 'cpu.max':
      return !cg.isRoot && cg.hasController('cpu')
        ? `${cg.cpu.quotaUs === Number.POSITIVE_INFINITY ? 'max' : cg.cpu.quotaUs} ${cg.cpu.periodUs}\n`
        : null;
    case 'cpu.stat': {
      const us = (ns: number) => Math.floor(ns / 1000);
      const s = cg.cpu;
      let text = `usage_usec ${us(s.usageNs)}\nuser_usec ${us(s.userNs)}\nsystem_usec ${us(s.systemNs)}\n`;
      if (cg.hasController('cpu'))
        text += `nr_periods ${s.nrPeriods}\nnr_throttled ${s.nrThrottled}\nthrottled_usec ${us(s.throttledNs)}\nnr_bursts 0\nburst_usec 0\n`;
      return text;
    }
    case 'cpuset.cpus':
      return !cg.isRoot && cg.hasController('cpuset')
        ? `${cg.cpusetCpus === null ? '' : cpuList(cg.cpusetCpus)}\n`
        : null;
    case 'cpuset.cpus.effective':
      return cg.hasController('cpuset') ? `${cpuList(cg.effectiveCpus(k))}\n` : null;
    case 'memory.current':
      return !cg.isRoot && cg.hasController('memory') ? `${cg.memoryCurrent}\n` : null;
    case 'cgroup.procs': {
      const tg = new Set<number>();
      for (const t of cg.tasks) if (t.alive) tg.add(t.tgidIn(readerNs));
      return [...tg]
        .filter((x) => x > 0)
        .sort((a, b) => a - b)
        .map((x) => `${x}\n`)
        .join('');
    }
    case 'cgroup.threads':
      return [...cg.tasks]
        .filter((t) => t.alive)
        .map((t) => t.pidIn(readerNs))
        .filter((x) => x > 0)
        .sort((a, b) => a - b)
        .map((x) => `${x}\n`)
        .join('');
    case 'cgroup.type':
      return cg.isRoot ? null : `${cg.type}\n`;
    case 'cgroup.subtree_control':
      return `${[...cg.subtreeControl].join(' ')}\n`;
    case 'cgroup.events': {
      const populated = cg.populatedCount() > 0 ? 1 : 0;
      return `populated ${populated}\nfrozen ${cgroupFrozen(cg) ? 1 : 0}\n`;
    }
    default:
      return null;
  }
}

/** A cgroup is frozen when freeze is set and every task in its subtree is frozen. */
export function cgroupFrozen(cg: Cgroup): boolean {
  if (!cg.freeze) return false;
  for (const c of cg.descendants()) for (const t of c.tasks) if (t.alive && !isFrozen(t)) return false;
  return true;
}

import { frozenTasks } from './signal.js';

function isFrozen(t: Task): boolean {
  return frozenTasks.has(t);
}

export { RLIMIT_NOFILE };
