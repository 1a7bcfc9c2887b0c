/**
 * `pstree -p` as psmisc prints it with UTF-8 line drawing: a process as `name(pid)`, its
 * threads as `{name}(tid)` among its children, children sorted by name (so threads, whose
 * names start with `{`, come after child processes), then by uid and pid; `───` before an
 * only child, `─┬─` before the first of several, `├─`/`└─` below it, `│` while a branch
 * continues (psmisc src/pstree.c dump_tree()). Each root (init, kthreadd) is printed as its
 * own tree, as `pstree -p 1` and `pstree -p 2` would; lines are never truncated.
 */
import type { Snapshot, TaskView } from '../scenario/run.js';
import { statName } from './common.js';

export interface PstreeNode {
  /** the name pstree prints: the comm, or `{comm}` for a thread */
  name: string;
  pid: number;
  uid: number;
  thread: boolean;
  children: PstreeNode[];
}

const SYM = {
  empty2: '  ',
  branch2: '├─',
  vert2: '│ ',
  last2: '└─',
  single3: '───',
  first3: '─┬─',
} as const;

/** psmisc's add_child() order: name (strcmp), then uid, then pid (readdir order). */
function byName(a: PstreeNode, b: PstreeNode): number {
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  return a.uid - b.uid || a.pid - b.pid;
}

/** The process trees of a snapshot: one root per task whose parent is not in it (init, kthreadd). */
export function pstreeForest(snap: Snapshot): PstreeNode[] {
  const nodes = new Map<number, PstreeNode>();
  const node = (t: TaskView, thread: boolean): PstreeNode => ({
    name: thread ? `{${statName(t)}}` : statName(t),
    pid: t.pid,
    uid: t.uid,
    thread,
    children: [],
  });
  for (const t of snap.tasks) if (t.pid === t.tgid) nodes.set(t.pid, node(t, false));
  const roots: PstreeNode[] = [];
  for (const t of snap.tasks) {
    if (t.pid === t.tgid) {
      const parent = t.ppid !== t.pid ? nodes.get(t.ppid) : undefined;
      if (parent) parent.children.push(nodes.get(t.pid)!);
      else roots.push(nodes.get(t.pid)!);
    } else {
      const leader = nodes.get(t.tgid);
      if (leader) leader.children.push(node(t, true));
    }
  }
  const sort = (n: PstreeNode) => {
    n.children.sort(byName);
    for (const c of n.children) sort(c);
  };
  for (const r of roots) sort(r);
  return roots.sort((a, b) => a.pid - b.pid);
}

/** The subtree rooted at `pid`, or null. */
export function findNode(forest: readonly PstreeNode[], pid: number): PstreeNode | null {
  for (const n of forest) {
    if (n.pid === pid) return n;
    const f = findNode(n.children, pid);
    if (f) return f;
  }
  return null;
}

/**
 * One tree as `pstree -p` prints it.
 *
 * @example
 * qemu(3)─┬─{CPU 0/KVM}(4)
 *         └─{vhost-3}(8)
 */
export function renderPstreeNode(root: PstreeNode): string {
  const lines: string[] = [];
  let line = '';
  const width: number[] = [];
  const more: boolean[] = [];
  // models dump_tree(current, level, rep=1, leaf, last) without compaction (-p implies -c)
  const dump = (cur: PstreeNode, level: number, leaf: boolean, last: boolean) => {
    if (!leaf)
      for (let lvl = 0; lvl < level; lvl++) {
        line += ' '.repeat(width[lvl]! + 1);
        line += lvl === level - 1 ? (last ? SYM.last2 : SYM.branch2) : more[lvl + 1] ? SYM.vert2 : SYM.empty2;
      }
    const label = `${cur.name}(${cur.pid})`;
    line += label;
    if (cur.children.length === 0) {
      lines.push(line);
      line = '';
      return;
    }
    more[level] = !last;
    width[level] = [...label].length;
    line += cur.children.length > 1 ? SYM.first3 : SYM.single3;
    cur.children.forEach((c, i) => {
      dump(c, level + 1, i === 0, i === cur.children.length - 1);
    });
  };
  dump(root, 0, true, true);
  return `${lines.join('\n')}\n`;
}

/** Every tree of the snapshot, init's first, or only the subtree of `pid`. */
export function renderPstree(snap: Snapshot, pid?: number): string {
  const forest = pstreeForest(snap);
  if (pid !== undefined) {
    const n = findNode(forest, pid);
    return n ? renderPstreeNode(n) : '';
  }
  return forest.map(renderPstreeNode).join('');
}
