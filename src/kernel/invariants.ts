/**
 * The model's invariants (DESIGN.md), checked as one function after any step and at the end
 * of every test. A violation throws InvariantError naming the broken rule.
 */
import type { Cgroup } from '../cgroup/cgroup.js';
import type { Ucounts } from './cred.js';
import { invariant } from './errno.js';
import type { Kernel } from './kernel.js';
import { EXIT_DEAD, TASK_UNINTERRUPTIBLE } from './sched-consts.js';

/** Check every invariant of `k`; throws on the first violation. */
export function checkInvariants(k: Kernel): void {
  const hashed = [...k.tasks.values()];
  // nr_threads counts every hashed task
  invariant(
    k.nrThreads === hashed.length,
    () => `nr_threads ${k.nrThreads} != hashed tasks ${hashed.length}`,
  );
  for (const t of hashed) {
    invariant(t.exitState !== EXIT_DEAD, () => `released task ${t} still hashed`);
    invariant(t.signal.threads.includes(t), () => `${t} missing from its thread list`);
    invariant(t.groupLeader.signal === t.signal, () => `${t} leader in another thread group`);
    invariant(t.tgid === t.groupLeader.pid, () => `${t} tgid ${t.tgid} != leader pid ${t.groupLeader.pid}`);
    if (t.threadGroupLeader() && t !== k.init && t !== k.kthreadd)
      invariant(t.realParent.children.has(t), () => `${t} not among its real parent's children`);
    invariant(!t.alive || t.realParent.tasksAlive(), () => `${t} has a released real parent ${t.realParent}`);
    // a live task never references a released mm
    if (t.alive && t.mm) invariant(t.mm.users > 0, () => `${t} uses a released mm`);
    if (t.onRq) invariant(t.gen !== null, () => `${t} on the run queue without a coroutine`);
    const pid = t.pidStruct!;
    for (const u of pid.numbers)
      invariant(u.ns.idr.get(u.nr) === pid, () => `${t} pid ${u.nr} not in its namespace`);
  }
  for (const sig of new Set(hashed.map((t) => t.signal))) {
    invariant(
      sig.nrThreads === sig.threads.length,
      () => `nr_threads of group ${sig.threads[0]} != thread list`,
    );
    const live = sig.threads.filter((t) => !(t.flags & 0x4)).length;
    invariant(sig.live >= live, () => `signal->live ${sig.live} < live threads ${live}`);
  }
  // nproc: every (uid, user ns) count equals its hashed tasks (zombies count until reaped)
  // (plus k.nprocCharges, the counts charged without a task)
  const expected = new Map<unknown, number>();
  const charge = (leaf: Ucounts, v: number) => {
    for (let u: Ucounts | null = leaf; u; ) {
      expected.set(u, (expected.get(u) ?? 0) + v);
      const ns: import('./cred.js').UserNamespace = u.ns;
      u = ns.parent ? k.ucounts.get(ns.parent, ns.ownerUid) : null;
    }
  };
  for (const t of hashed) charge(t.cred.ucounts, 1);
  for (const [u, v] of k.nprocCharges) charge(u, v);
  for (const u of k.ucounts.all())
    invariant(
      u.nproc === (expected.get(u) ?? 0),
      () => `ucounts uid ${u.uid}: nproc ${u.nproc} != tasks ${expected.get(u) ?? 0}`,
    );
  // pids: every cgroup's pids.current equals the tasks charged to it and its descendants
  for (const root of k.cgroupRoots) {
    if (!root.controllers.includes('pids')) continue;
    const charged = new Map<Cgroup, number>();
    for (const t of hashed) {
      const cg = t.cgroups[root.id];
      if (!cg) continue;
      for (let p: Cgroup | null = cg.effective('pids'); p?.parent; p = p.parent)
        charged.set(p, (charged.get(p) ?? 0) + 1);
    }
    for (const c of root.top.descendants()) {
      if (!c.parent) continue;
      if (c.hasController('pids'))
        invariant(
          c.pids.counter === (charged.get(c) ?? 0),
          () => `${c.path}: pids.current ${c.pids.counter} != charged tasks ${charged.get(c) ?? 0}`,
        );
    }
  }
  // a user worker shares its creator's mm, namespaces and creds, and starts in its cgroups
  for (const t of hashed) {
    const o = t.workerOrigin;
    if (!o) continue;
    invariant(o.mm === o.creatorMm, () => `user worker ${t} got another mm than its creator ${o.creator}`);
    invariant(
      o.nsproxy === o.creatorNsproxy,
      () => `user worker ${t} got other namespaces than ${o.creator}`,
    );
    invariant(
      o.cred.uid === o.creatorCred.uid && o.cred.userNs === o.creatorCred.userNs,
      () => `user worker ${t} got other creds than ${o.creator}`,
    );
    invariant(
      o.cgroups.every((c, i) => c === o.creatorCgroups[i]),
      () => `user worker ${t} started outside its creator's cgroups`,
    );
    if (t.alive && !(t.flags & 0x4)) invariant(t.mm === o.mm, () => `user worker ${t} changed its mm`);
  }
  // live tasks sit in the task list of their cgroup
  for (const t of hashed) {
    if (!t.alive) continue;
    for (const cg of t.cgroups) invariant(cg.tasks.has(t), () => `${t} missing from ${cg.path}'s tasks`);
  }
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
