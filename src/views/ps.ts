/**
 * `ps -eLf` and `ps aux` as procps-ng 4 prints them, from a snapshot. Column widths are
 * procps's defaults (PID columns 7 wide, as for a pid_max of 4194304); STIME/START are the
 * virtual time since boot as HH:MM (the model boots at 00:00); TTY is always `?` (the
 * model has no terminals); the user is `root` or the numeric uid (no /etc/passwd).
 * A kthread's CMD is its name in brackets, as ps prints tasks with an empty cmdline; a
 * user worker's CMD is its process's command line, like every other thread of it.
 */
import type { Snapshot, TaskView } from '../scenario/run.js';
import { statName, userName } from './common.js';

/** One line of `ps -eLf`. */
export interface PsThreadRow {
  uid: string;
  pid: number;
  ppid: number;
  lwp: number;
  c: number;
  nlwp: number;
  stime: string;
  tty: string;
  time: string;
  cmd: string;
}

/** One line of `ps aux`. */
export interface PsProcessRow {
  user: string;
  pid: number;
  cpu: string;
  mem: string;
  vsz: number;
  rss: number;
  tty: string;
  stat: string;
  start: string;
  time: string;
  command: string;
}

/** Seconds since boot as "HH:MM" (procps prints today's start times that way). */
export function formatStime(ns: number): string {
  const min = Math.floor(ns / 60e9);
  return `${String(Math.floor(min / 60) % 24).padStart(2, '0')}:${String(min % 60).padStart(2, '0')}`;
}

/** Cumulative CPU time as `ps -f` prints it: [DD-]HH:MM:SS. */
export function formatCpuTime(ns: number): string {
  const s = Math.floor(ns / 1e9);
  const hms = [Math.floor(s / 3600) % 24, Math.floor(s / 60) % 60, s % 60]
    .map((n) => String(n).padStart(2, '0'))
    .join(':');
  const days = Math.floor(s / 86400);
  return days ? `${String(days).padStart(2, '0')}-${hms}` : hms;
}

/** Cumulative CPU time as `ps aux` prints it: M:SS. */
export function formatCpuTimeShort(ns: number): string {
  const s = Math.floor(ns / 1e9);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** A task's CMD: `[name]` for kthreads, `[comm] <defunct>` for zombies, else the command line. */
export function psCommand(t: TaskView): string {
  if (t.kthread) return `[${statName(t)}]`;
  if (t.state === 'Z') return `[${t.comm}] <defunct>`;
  return t.cmd;
}

function statusKb(t: TaskView, field: string): number {
  const m = new RegExp(`^${field}:\\s*(\\d+) kB$`, 'm').exec(t.status);
  return m ? Number(m[1]) : 0;
}

/** The tasks grouped by thread group (by tgid), each group in thread order, as ps lists them. */
function byThreadGroup(tasks: readonly TaskView[]): TaskView[] {
  return [...tasks].sort(
    (a, b) => a.tgid - b.tgid || (a.pid === a.tgid ? -1 : b.pid === b.tgid ? 1 : a.pid - b.pid),
  );
}

/** The rows of `ps -eLf`: every thread of every process, kthreads included. */
export function psThreadRows(snap: Snapshot): PsThreadRow[] {
  return byThreadGroup(snap.tasks).map((t) => {
    const elapsed = Math.max(1, snap.ts - t.startTime);
    return {
      uid: userName(t.uid),
      pid: t.tgid,
      ppid: t.ppid,
      lwp: t.pid,
      c: Math.min(99, Math.floor((t.cpuNs * 100) / elapsed)),
      nlwp: t.nlwp,
      stime: formatStime(t.startTime),
      tty: '?',
      time: formatCpuTime(t.cpuNs),
      cmd: psCommand(t),
    };
  });
}

/** The rows of `ps aux`: one per process; CPU is summed over its live threads. */
export function psProcessRows(snap: Snapshot, memTotalKiB: number): PsProcessRow[] {
  const rows: PsProcessRow[] = [];
  for (const t of snap.tasks) {
    if (t.pid !== t.tgid) continue;
    const cpuNs = snap.tasks.filter((x) => x.tgid === t.tgid).reduce((s, x) => s + x.cpuNs, 0);
    const elapsed = Math.max(1, snap.ts - t.startTime);
    const rss = t.kthread ? 0 : statusKb(t, 'VmRSS');
    let stat = t.state;
    if (!t.kthread && t.nlwp > 1) stat += 'l';
    rows.push({
      user: userName(t.uid),
      pid: t.pid,
      cpu: Math.min(999.9, (cpuNs * 100) / elapsed).toFixed(1),
      mem: ((rss * 100) / Math.max(1, memTotalKiB)).toFixed(1),
      vsz: t.kthread ? 0 : statusKb(t, 'VmSize'),
      rss,
      tty: '?',
      stat,
      start: formatStime(t.startTime),
      time: formatCpuTimeShort(cpuNs),
      command: psCommand(t),
    });
  }
  return rows;
}

const pad = (s: string | number, n: number) => String(s).padEnd(n);
const lpad = (s: string | number, n: number) => String(s).padStart(n);

/**
 * `ps -eLf`.
 *
 * @example
 * UID          PID    PPID     LWP  C NLWP STIME TTY          TIME CMD
 * root           2       0       2  0    1 00:00 ?        00:00:00 [kthreadd]
 */
export function renderPsThreads(snap: Snapshot): string {
  const line = (r: (string | number)[]) =>
    [
      pad(r[0]!, 8),
      lpad(r[1]!, 7),
      lpad(r[2]!, 7),
      lpad(r[3]!, 7),
      lpad(r[4]!, 2),
      lpad(r[5]!, 4),
      pad(r[6]!, 5),
      pad(r[7]!, 8),
      lpad(r[8]!, 8),
      r[9],
    ].join(' ');
  const out = [line(['UID', 'PID', 'PPID', 'LWP', 'C', 'NLWP', 'STIME', 'TTY', 'TIME', 'CMD'])];
  for (const r of psThreadRows(snap))
    out.push(line([r.uid, r.pid, r.ppid, r.lwp, r.c, r.nlwp, r.stime, r.tty, r.time, r.cmd]));
  return `${out.join('\n')}\n`;
}

/**
 * `ps aux`.
 *
 * @example
 * USER         PID %CPU %MEM    VSZ   RSS TTY      STAT START   TIME COMMAND
 * root           2  0.0  0.0      0     0 ?        S    00:00   0:00 [kthreadd]
 */
export function renderPsProcesses(snap: Snapshot, memTotalKiB: number): string {
  const line = (r: (string | number)[]) =>
    [
      pad(r[0]!, 8),
      lpad(r[1]!, 7),
      lpad(r[2]!, 4),
      lpad(r[3]!, 4),
      lpad(r[4]!, 6),
      lpad(r[5]!, 5),
      pad(r[6]!, 8),
      pad(r[7]!, 4),
      pad(r[8]!, 5),
      lpad(r[9]!, 6),
      r[10],
    ].join(' ');
  const out = [
    line(['USER', 'PID', '%CPU', '%MEM', 'VSZ', 'RSS', 'TTY', 'STAT', 'START', 'TIME', 'COMMAND']),
  ];
  for (const r of psProcessRows(snap, memTotalKiB))
    out.push(line([r.user, r.pid, r.cpu, r.mem, r.vsz, r.rss, r.tty, r.stat, r.start, r.time, r.command]));
  return `${out.join('\n')}\n`;
}
