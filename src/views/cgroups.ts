/**
 * The cgroup v2 hierarchy of a snapshot as a tree in the manner of `systemd-cgls`, with the
 * numbers a platform engineer checks first on each cgroup: pids.current and pids.max,
 * pids.events (max), cpuset.cpus.effective, how many processes (cgroup.procs) and threads
 * (cgroup.threads) it holds, and cpu.stat usage_usec. Below each cgroup, its member
 * processes (`pid command`) and, under them, the threads of theirs that are in this cgroup
 * (`{comm}(tid)`). Values a cgroup does not have (no pids controller there) print as `-`.
 */
import type { CgroupView, Snapshot, TaskView } from '../scenario/run.js';
import { type Colors, NO_COLORS, statName, table } from './common.js';
import { psCommand } from './ps.js';

export interface CgroupTaskGroup {
  tgid: number;
  /** the process's command, as ps prints it */
  command: string;
  /** whether the thread-group leader itself is in this cgroup */
  leaderHere: boolean;
  /** the other threads of the process that are in this cgroup */
  threads: { tid: number; comm: string }[];
}

export interface CgroupNode {
  path: string;
  name: string;
  type: string;
  pidsCurrent: number | null;
  pidsMax: string | null;
  /** pids.events "max" count */
  pidsEventsMax: number | null;
  cpus: string | null;
  /** cpu.stat usage_usec */
  usageUsec: number | null;
  procs: number[];
  threads: number[];
  tasks: CgroupTaskGroup[];
  children: CgroupNode[];
}

function fileText(c: CgroupView, f: string): string | null {
  const t = c.files[f];
  return t === undefined ? null : t.trim();
}

function ids(text: string | null): number[] {
  return text ? text.split(/\s+/).filter(Boolean).map(Number) : [];
}

function tasksIn(tasks: readonly TaskView[], path: string): CgroupTaskGroup[] {
  const groups = new Map<number, CgroupTaskGroup>();
  for (const t of tasks) {
    if (t.cgroup !== path || t.state === 'Z' || t.state === 'X') continue;
    let g = groups.get(t.tgid);
    if (!g) {
      const leader = tasks.find((x) => x.pid === t.tgid);
      g = { tgid: t.tgid, command: leader ? psCommand(leader) : '?', leaderHere: false, threads: [] };
      groups.set(t.tgid, g);
    }
    if (t.pid === t.tgid) g.leaderHere = true;
    else g.threads.push({ tid: t.pid, comm: statName(t) });
  }
  return [...groups.values()].sort((a, b) => a.tgid - b.tgid);
}

/** The cgroup hierarchy of a snapshot as a tree (children sorted by name). */
export function cgroupTree(snap: Snapshot): CgroupNode {
  const nodes = new Map<string, CgroupNode>();
  for (const c of snap.cgroups) {
    const current = fileText(c, 'pids.current');
    const events = fileText(c, 'pids.events');
    const usage = /usage_usec (\d+)/.exec(c.files['cpu.stat'] ?? '');
    nodes.set(c.path, {
      path: c.path,
      name: c.path === '/' ? '/' : c.path.slice(c.path.lastIndexOf('/') + 1),
      type: c.type,
      pidsCurrent: current === null ? null : Number(current),
      pidsMax: fileText(c, 'pids.max'),
      pidsEventsMax: events === null ? null : Number(/max (\d+)/.exec(events)?.[1] ?? 0),
      cpus: fileText(c, 'cpuset.cpus.effective'),
      usageUsec: usage ? Number(usage[1]) : null,
      procs: ids(fileText(c, 'cgroup.procs')),
      threads: ids(fileText(c, 'cgroup.threads')),
      tasks: tasksIn(snap.tasks, c.path),
      children: [],
    });
  }
  let root = nodes.get('/');
  if (!root) {
    root = {
      path: '/',
      name: '/',
      type: 'root',
      pidsCurrent: null,
      pidsMax: null,
      pidsEventsMax: null,
      cpus: null,
      usageUsec: null,
      procs: [],
      threads: [],
      tasks: [],
      children: [],
    };
    nodes.set('/', root);
  }
  for (const n of nodes.values()) {
    if (n.path === '/') continue;
    const parentPath = n.path.slice(0, n.path.lastIndexOf('/')) || '/';
    (nodes.get(parentPath) ?? root).children.push(n);
  }
  for (const n of nodes.values()) n.children.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return root;
}

export interface CgroupRenderOptions {
  /** list member processes and threads under each cgroup (default true) */
  tasks?: boolean;
  colors?: Colors;
}

/**
 * The tree as text.
 *
 * @example
 * CGROUP          TYPE    PIDS.CURRENT  PIDS.MAX  EVENTS.MAX  CPUS  PROCS  THREADS  USAGE_USEC
 * /               root               -         -           -  0-3      2        2          70
 * └─machine.slice domain             5       max           0  0-3      0        0          37
 *   └─vm1         domain             5         8           0  2-3      1        5          37
 *     └─3 /usr/bin/qemu
 *       ├─{CPU 0/KVM}(4)
 */
export function renderCgroups(root: CgroupNode, o: CgroupRenderOptions = {}): string {
  const c = o.colors ?? NO_COLORS;
  const showTasks = o.tasks ?? true;
  const dash = (v: string | number | null) => (v === null ? '-' : String(v));
  const rows: string[][] = [
    ['CGROUP', 'TYPE', 'PIDS.CURRENT', 'PIDS.MAX', 'EVENTS.MAX', 'CPUS', 'PROCS', 'THREADS', 'USAGE_USEC'],
  ];
  const visit = (n: CgroupNode, prefix: string, connector: string) => {
    const over =
      n.pidsCurrent !== null &&
      n.pidsMax !== null &&
      n.pidsMax !== 'max' &&
      n.pidsCurrent > Number(n.pidsMax);
    const current = dash(n.pidsCurrent);
    rows.push([
      `${connector}${c.bold(n.name)}`,
      n.type,
      over ? c.red(current) : current,
      dash(n.pidsMax),
      n.pidsEventsMax ? c.yellow(String(n.pidsEventsMax)) : dash(n.pidsEventsMax),
      dash(n.cpus),
      String(n.procs.length),
      String(n.threads.length),
      dash(n.usageUsec),
    ]);
    const items: ({ kind: 'tasks'; g: CgroupTaskGroup } | { kind: 'cgroup'; n: CgroupNode })[] = [
      ...(showTasks ? n.tasks.map((g) => ({ kind: 'tasks' as const, g })) : []),
      ...n.children.map((x) => ({ kind: 'cgroup' as const, n: x })),
    ];
    items.forEach((it, i) => {
      const last = i === items.length - 1;
      const conn = `${prefix}${last ? '└─' : '├─'}`;
      const next = `${prefix}${last ? '  ' : '│ '}`;
      if (it.kind === 'cgroup') visit(it.n, next, conn);
      else {
        const g = it.g;
        rows.push([`${conn}${g.tgid} ${g.command}${g.leaderHere ? '' : c.dim(' (threads only)')}`]);
        g.threads.forEach((t, j) => {
          const tl = j === g.threads.length - 1;
          rows.push([`${next}${tl ? '└─' : '├─'}{${t.comm}}(${t.tid})`]);
        });
      }
    });
  };
  visit(root, '', '');
  return `${table(rows, ['left', 'left', 'right', 'right', 'right', 'left', 'right', 'right', 'right'])}\n`;
}
