/**
 * The model's invariants (DESIGN.md), checked as one function after any step and at the end
 * of every test. A violation throws InvariantError naming the broken rule.
 */
import type { Cgroup } from '../cgroup/cgroup.js';
import type { Ucounts } from './cred.js';
import { InvariantError, invariant } from './errno.js';
import type { Kernel } from './kernel.js';
import { EXIT_DEAD, TASK_UNINTERRUPTIBLE } from './sched-consts.js';
import type { SignalStruct } from './task.js';

/** Counts reused by every check of one kernel (the explorer checks after every slice). */
export class InvariantScratch {
  /** nproc expected per ucounts */
  readonly nproc = new Map<Ucounts, number>();
  /** tasks charged per pids cgroup */
  readonly pids = new Map<Cgroup, number>();
  /** thread groups seen */
  readonly groups = new Set<SignalStruct>();
}

function fail(message: string): never {
  throw new InvariantError(message);
}

/**
 * Check every invariant of `k`; throws on the first violation. Called after every scheduler
 * slice by the explorer, so it walks the kernel's own tables without copying them.
 */
export function checkInvariants(k: Kernel): void {
  const scratch = k.invariantScratch;
  // nr_threads counts every hashed task
  if (k.nrThreads !== k.tasks.size) fail(`nr_threads ${k.nrThreads} != hashed tasks ${k.tasks.size}`);
  for (const t of k.tasks.values()) {
    if (t.exitState === EXIT_DEAD) fail(`released task ${t} still hashed`);
    if (!t.signal.threads.includes(t)) fail(`${t} missing from its thread list`);
    if (t.groupLeader.signal !== t.signal) fail(`${t} leader in another thread group`);
    if (t.tgid !== t.groupLeader.pid) fail(`${t} tgid ${t.tgid} != leader pid ${t.groupLeader.pid}`);
    if (t.threadGroupLeader() && t !== k.init && t !== k.kthreadd && !t.realParent.children.has(t))
      fail(`${t} not among its real parent's children`);
    if (t.alive && !t.realParent.tasksAlive()) fail(`${t} has a released real parent ${t.realParent}`);
    // a live task never references a released mm
    if (t.alive && t.mm && !(t.mm.users > 0)) fail(`${t} uses a released mm`);
    if (t.onRq && t.gen === null) fail(`${t} on the run queue without a coroutine`);
    const pid = t.pidStruct!;
    for (const u of pid.numbers)
      if (u.ns.idr.get(u.nr) !== pid) fail(`${t} pid ${u.nr} not in its namespace`);
  }
  const groups = scratch.groups;
  groups.clear();
  for (const t of k.tasks.values()) {
    const sig = t.signal;
    if (groups.has(sig)) continue;
    groups.add(sig);
    if (sig.nrThreads !== sig.threads.length) fail(`nr_threads of group ${sig.threads[0]} != thread list`);
    let live = 0;
    for (const th of sig.threads) if (!(th.flags & 0x4)) live++;
    if (!(sig.live >= live)) fail(`signal->live ${sig.live} < live threads ${live}`);
  }
  // nproc: every (uid, user ns) count equals its hashed tasks (zombies count until reaped)
  // (plus k.nprocCharges, the counts charged without a task)
  const expected = scratch.nproc;
  expected.clear();
  const charge = (leaf: Ucounts, v: number) => {
    for (let u: Ucounts | null = leaf; u; ) {
      expected.set(u, (expected.get(u) ?? 0) + v);
      const ns: import('./cred.js').UserNamespace = u.ns;
      u = ns.parent ? k.ucounts.get(ns.parent, ns.ownerUid) : null;
    }
  };
  for (const t of k.tasks.values()) charge(t.cred.ucounts, 1);
  for (const [u, v] of k.nprocCharges) charge(u, v);
  k.ucounts.forEach((u) => {
    if (u.nproc !== (expected.get(u) ?? 0))
      fail(`ucounts uid ${u.uid}: nproc ${u.nproc} != tasks ${expected.get(u) ?? 0}`);
  });
  // pids: every cgroup's pids.current equals the tasks charged to it and its descendants
  const charged = scratch.pids;
  for (const root of k.cgroupRoots) {
    if (!root.controllers.includes('pids')) continue;
    charged.clear();
    for (const t of k.tasks.values()) {
      const cg = t.cgroups[root.id];
      if (!cg) continue;
      for (let p: Cgroup | null = cg.effective('pids'); p?.parent; p = p.parent)
        charged.set(p, (charged.get(p) ?? 0) + 1);
    }
    checkPidsCurrent(root.top, charged);
  }
  for (const t of k.tasks.values()) {
    // a user worker shares its creator's mm, namespaces and creds, and starts in its cgroups
    const o = t.workerOrigin;
    if (o) {
      if (o.mm !== o.creatorMm) fail(`user worker ${t} got another mm than its creator ${o.creator}`);
      if (o.nsproxy !== o.creatorNsproxy) fail(`user worker ${t} got other namespaces than ${o.creator}`);
      if (o.cred.uid !== o.creatorCred.uid || o.cred.userNs !== o.creatorCred.userNs)
        fail(`user worker ${t} got other creds than ${o.creator}`);
      for (let i = 0; i < o.cgroups.length; i++)
        if (o.cgroups[i] !== o.creatorCgroups[i])
          fail(`user worker ${t} started outside its creator's cgroups`);
      if (t.alive && !(t.flags & 0x4) && t.mm !== o.mm) fail(`user worker ${t} changed its mm`);
    }
  }
  // live tasks sit in the task list of their cgroup
  for (const t of k.tasks.values())
    if (t.alive)
      for (const cg of t.cgroups) if (!cg.tasks.has(t)) fail(`${t} missing from ${cg.path}'s tasks`);
}

/** pids.current of `c`'s descendants (not the root) against the tasks charged to them. */
function checkPidsCurrent(c: Cgroup, charged: Map<Cgroup, number>): void {
  if (c.parent && c.hasController('pids') && c.pids.counter !== (charged.get(c) ?? 0))
    fail(`${c.path}: pids.current ${c.pids.counter} != charged tasks ${charged.get(c) ?? 0}`);
  for (const ch of c.children.values()) checkPidsCurrent(ch, charged);
}

/**
 * After every user process is gone: no worker remains and every counter is back to boot.
 * `boot` is the snapshot taken right after boot.
 */
export function checkNoLeaks(k: Kernel, boot: { nrThreads: number }): void {
  invariant(
    k.nrThreads === boot.nrThreads,
    () => `leak: ${k.nrThreads} tasks remain, ${boot.nrThreads} at boot: ${[...k.tasks.values()].join(', ')}`,
  );
  checkInvariants(k);
}

/** One edge of a wait-for graph: a task asleep on a queue, and who holds it (mutexes). */
export interface WaitForEdge {
  readonly task: string;
  readonly waitsOn: string;
  readonly heldBy: string | null;
}

/**
 * Deadlock detection: when nothing is runnable and no timer is pending, every task asleep
 * uninterruptibly on a wait queue can never be woken. Returns the wait-for graph, or null
 * if the kernel is not stuck that way.
 */
export function findDeadlock(k: Kernel): WaitForEdge[] | null {
  if (k.runqueue.length > 0 || k.pendingTimers > 0) return null;
  const edges: WaitForEdge[] = [];
  for (const t of k.tasks.values()) {
    if (!t.alive || !t.waitingOn || !(t.state & TASK_UNINTERRUPTIBLE)) continue;
    const holder = t.waitingOn.holder?.() ?? null;
    edges.push({ task: String(t), waitsOn: t.waitingOn.name, heldBy: holder ? String(holder) : null });
  }
  return edges.length > 0 ? edges : null;
}
