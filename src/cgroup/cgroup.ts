/**
 * cgroups: the v2 default hierarchy (and v1 hierarchies, for cgroup_attach_task_all), with
 * the pids, cpu, cpuset and memory controllers. One Cgroup object per directory; a task's
 * css_set is its `cgroups[root.id]` entry on each hierarchy.
 *
 * Models kernel/cgroup/cgroup.c (cgroup_migrate, cgroup_fork/can_fork/post_fork/exit/release,
 * __cgroup_procs_write), kernel/cgroup/cgroup-v1.c (cgroup_attach_task_all),
 * kernel/cgroup/pids.c, kernel/sched/core.c (cpu.max/cpu.stat) and kernel/cgroup/cpuset.c,
 * v6.12.
 */
import { Errno, err, ok, type Result } from '../kernel/errno.js';
import type { Kernel } from '../kernel/kernel.js';
import { PF_NO_SETAFFINITY } from '../kernel/sched-consts.js';
import type { Task } from '../kernel/task.js';

export type Controller = 'pids' | 'cpu' | 'cpuset' | 'memory' | 'freezer';
export const V2_CONTROLLERS: readonly Controller[] = ['cpuset', 'cpu', 'memory', 'pids'];

/** A hierarchy (struct cgroup_root). id 0 is the v2 default hierarchy (cgrp_dfl_root). */
export class CgroupRoot {
  /**
   * The next cgroup id on this hierarchy. Ids are per hierarchy, like the kernfs node ids
   * they come from (cgroup_id() = kernfs_node_id(), allocated from the hierarchy's own
   * kernfs_root idr; the root cgroup is 1), so a run never depends on other kernels booted
   * in the same process.
   */
  nextCgroupId = 1;
  readonly top: Cgroup;
  constructor(
    readonly id: number,
    readonly isDfl: boolean,
    /** controllers bound to this hierarchy (v1), or available (v2) */
    readonly controllers: readonly Controller[],
    readonly name: string,
  ) {
    this.top = new Cgroup(this, null, '');
  }
}

export type CgroupType = 'domain' | 'threaded' | 'domain threaded' | 'domain invalid';

/** Per-cgroup pids controller state (struct pids_cgroup). */
export class PidsState {
  /** pids.max; Infinity renders as "max" */
  max = Number.POSITIVE_INFINITY;
  /** pids.current (counter) */
  counter = 0;
  /** pids.peak (watermark) */
  peak = 0;
  /** pids.events "max" */
  eventsMax = 0;
  /** pids.events.local "max" (v6.11+) */
  eventsMaxLocal = 0;
}

/** Per-cgroup cpu controller state (cpu.max + cpu.stat, with bandwidth throttling). */
export class CpuState {
  /** cpu.max quota in µs; Infinity = "max" */
  quotaUs = Number.POSITIVE_INFINITY;
  periodUs = 100_000;
  usageNs = 0;
  userNs = 0;
  systemNs = 0;
  nrPeriods = 0;
  nrThrottled = 0;
  throttledNs = 0;
  /** runtime used in the current period */
  periodRuntimeNs = 0;
  periodIndex = -1;
  throttled = false;
  throttledSince = 0;
}

export class Cgroup {
  readonly children = new Map<string, Cgroup>();
  /** tasks whose css_set places them here on this hierarchy */
  readonly tasks = new Set<Task>();
  type: CgroupType = 'domain';
  /** cgroup.subtree_control */
  readonly subtreeControl = new Set<Controller>();
  readonly pids = new PidsState();
  readonly cpu = new CpuState();
  /** cpuset.cpus as a mask; null = inherit the parent's effective cpus */
  cpusetCpus: number | null = null;
  /** memory.current in bytes (pages charged by mms created here, hierarchical) */
  memoryCurrent = 0;
  /** cgroup.freeze */
  freeze = false;
  /** uid allowed to write this cgroup's files besides root (delegation) */
  ownerUid = 0;
  removed = false;
  readonly level: number;
  readonly id: number;
  constructor(
    readonly root: CgroupRoot,
    readonly parent: Cgroup | null,
    readonly name: string,
  ) {
    this.level = parent ? parent.level + 1 : 0;
    this.id = root.nextCgroupId++;
  }

  /** The path as shown in /proc/<pid>/cgroup, e.g. "/machine.slice/vm1". */
  get path(): string {
    if (!this.parent) return '/';
    const p = this.parent.path;
    return p === '/' ? `/${this.name}` : `${p}/${this.name}`;
  }

  get isRoot(): boolean {
    return this.parent === null;
  }

  /** Whether `ctrl` has its own css here (root, or enabled in the parent's subtree_control; v1: bound). */
  hasController(ctrl: Controller): boolean {
    if (!this.root.isDfl) return this.root.controllers.includes(ctrl);
    return this.parent === null || this.parent.subtreeControl.has(ctrl);
  }

  /** The nearest cgroup (self or ancestor) whose css for `ctrl` this cgroup's tasks use. */
  effective(ctrl: Controller): Cgroup | null {
    if (!this.root.controllers.includes(ctrl)) return null;
    let c: Cgroup = this;
    while (!c.hasController(ctrl)) c = c.parent!;
    return c;
  }

  /** The threaded domain (dom_cgrp): self for domains, the nearest domain ancestor for threaded. */
  get domCgroup(): Cgroup {
    let c: Cgroup = this;
    while (c.type === 'threaded' && c.parent) c = c.parent;
    return c;
  }

  /** cpuset.cpus.effective */
  effectiveCpus(k: Kernel): number {
    let c: Cgroup | null = this;
    while (c) {
      if (c.cpusetCpus !== null && c.hasController('cpuset')) return c.cpusetCpus & k.onlineCpus;
      c = c.parent;
    }
    return k.onlineCpus;
  }

  /** Number of live tasks here and below (cgroup.events populated). */
  populatedCount(): number {
    let n = this.tasks.size;
    for (const ch of this.children.values()) n += ch.populatedCount();
    return n;
  }

  memoryCharge(bytes: number): void {
    for (let c: Cgroup | null = this; c; c = c.parent) c.memoryCurrent += bytes;
  }

  *descendants(): Iterable<Cgroup> {
    yield this;
    for (const ch of this.children.values()) yield* ch.descendants();
  }

  lookup(path: string): Cgroup | null {
    let c: Cgroup = this;
    for (const part of path.split('/')) {
      if (!part) continue;
      const n = c.children.get(part);
      if (!n) return null;
      c = n;
    }
    return c;
  }
}

/** models cgroup_mkdir(): create one directory. EEXIST if present, ENOENT if the parent is gone. */
export function cgroupMkdir(parent: Cgroup, name: string): Result<Cgroup> {
  if (parent.removed) return err(Errno.ENOENT);
  if (!name || name.includes('/')) return err(Errno.EINVAL);
  if (parent.children.has(name)) return err(Errno.EEXIST);
  const c = new Cgroup(parent.root, parent, name);
  if (parent.type === 'threaded' || parent.type === 'domain threaded') c.type = 'domain invalid';
  parent.children.set(name, c);
  return ok(c);
}

/** Create every missing directory of `path` under `root` (mkdir -p). */
export function cgroupMkdirP(root: Cgroup, path: string): Result<Cgroup> {
  let c = root;
  for (const part of path.split('/')) {
    if (!part) continue;
    const next = c.children.get(part);
    if (next) {
      c = next;
      continue;
    }
    const r = cgroupMkdir(c, part);
    if (!r.ok) return r;
    c = r.value;
  }
  return ok(c);
}

/** models cgroup_rmdir(): EBUSY while populated or with children. */
export function cgroupRmdir(c: Cgroup): Result<void> {
  if (!c.parent) return err(Errno.EBUSY);
  if (c.children.size > 0 || c.populatedCount() > 0) return err(Errno.EBUSY);
  c.parent.children.delete(c.name);
  c.removed = true;
  return ok();
}

// ---------------------------------------------------------------------------------------
// pids controller (kernel/cgroup/pids.c, v6.12)

/** models pids_charge(): unconditional, from `c`'s pids css up to (excluding) the root. */
export function pidsCharge(c: Cgroup, n: number): void {
  for (let p: Cgroup | null = c.effective('pids'); p?.parent; p = p.parent) {
    p.pids.counter += n;
    if (p.pids.counter > p.pids.peak) p.pids.peak = p.pids.counter;
  }
}

/** models pids_uncharge(). */
export function pidsUncharge(c: Cgroup, n: number): void {
  pidsCharge(c, -n);
}

/**
 * models pids_try_charge() + pids_event() (via pids_can_fork): charge one task; if any
 * ancestor's limit would be exceeded, undo and fail with EAGAIN. Event accounting by era:
 * through v6.10 the "max" event counts only in the forking task's cgroup F; from v6.11
 * (73e75e6fc352, pids.events.local) on cgroup v2 it counts in the cgroup L whose limit was
 * hit and every ancestor of L, and pids.events.local counts it at L only. v1 keeps the
 * old behaviour.
 */
export function pidsTryCharge(c: Cgroup, n: number, hierarchicalEvents: boolean): Result<void> {
  const start = c.effective('pids');
  if (!start) return ok();
  for (let p: Cgroup | null = start; p?.parent; p = p.parent) {
    const nw = p.pids.counter + n;
    if (nw > p.pids.max) {
      for (let q: Cgroup | null = start; q !== p; q = q!.parent) q!.pids.counter -= n;
      if (hierarchicalEvents && c.root.isDfl) {
        p.pids.eventsMaxLocal++;
        for (let q: Cgroup | null = p; q?.parent; q = q.parent) q.pids.eventsMax++;
      } else {
        start.pids.eventsMax++;
        start.pids.eventsMaxLocal++;
      }
      return err(Errno.EAGAIN);
    }
    p.pids.counter = nw;
    if (nw > p.pids.peak) p.pids.peak = nw;
  }
  return ok();
}

// ---------------------------------------------------------------------------------------
// fork/exit hooks (kernel/cgroup/cgroup.c)

/**
 * models cgroup_can_fork(): the child's css_set is the parent's (or the CLONE_INTO_CGROUP
 * target on the default hierarchy); each pids css is charged with the limit checked.
 * Returns the cgroups the child will join.
 */
export function cgroupCanFork(k: Kernel, parent: Task, into: Cgroup | null): Result<Cgroup[]> {
  const cgs = parent.cgroups.slice();
  if (into) cgs[0] = into;
  const charged: Cgroup[] = [];
  for (const c of cgs) {
    const r = pidsTryCharge(c, 1, k.profile.pidsEventsHierarchical);
    if (!r.ok) {
      for (const d of charged) pidsUncharge(d, 1);
      return r;
    }
    charged.push(c);
  }
  return ok(cgs);
}

/** models cgroup_cancel_fork(): undo the charge after a later copy_process failure. */
export function cgroupCancelFork(cgs: readonly Cgroup[]): void {
  for (const c of cgs) pidsUncharge(c, 1);
}

/** models cgroup_post_fork(): link the child into its css_set. */
export function cgroupPostFork(child: Task, cgs: Cgroup[]): void {
  child.cgroups = cgs;
  for (const c of cgs) c.tasks.add(child);
}

/** models cgroup_exit(): the task leaves its css_set's task list (populated drops); charges stay. */
export function cgroupExit(t: Task): void {
  for (const c of t.cgroups) c.tasks.delete(t);
}

/** models cgroup_release() → pids_release(): uncharge at release_task. */
export function cgroupRelease(t: Task): void {
  for (const c of t.cgroups) pidsUncharge(c, 1);
}

// ---------------------------------------------------------------------------------------
// migration

/**
 * models cgroup_migrate() of `tasks` to `dst` on dst's hierarchy: can_attach (cpuset refuses
 * PF_NO_SETAFFINITY tasks with EINVAL), then pids charge without a limit check (a migration is
 * never checked against pids.max), then cpuset_attach applying the new cpus.
 */
export function cgroupMigrate(k: Kernel, tasks: readonly Task[], dst: Cgroup): Result<void> {
  const rid = dst.root.id;
  const moving = tasks.filter((t) => t.cgroups[rid] !== dst && t.alive);
  const cpusetChanges = dst.root.controllers.includes('cpuset');
  if (cpusetChanges) {
    for (const t of moving) {
      const src = t.cgroups[rid]!;
      if (src.effective('cpuset') !== dst.effective('cpuset') && t.flags & PF_NO_SETAFFINITY)
        return err(Errno.EINVAL); // task_can_attach()
    }
  }
  for (const t of moving) {
    const src = t.cgroups[rid]!;
    pidsCharge(dst, 1); // pids_can_attach: charge new, uncharge old, no limit check
    pidsUncharge(src, 1);
    src.tasks.delete(t);
    dst.tasks.add(t);
    t.cgroups[rid] = dst;
    if (cpusetChanges && src.effective('cpuset') !== dst.effective('cpuset')) {
      // cpuset_attach → set_cpus_allowed_ptr(task, cpus of the new cpuset)
      t.cpusAllowed = dst.effectiveCpus(k);
    }
    if (k.trace.enabled) k.emit('cgroup_attach_task', attachText(dst, t));
  }
  return ok();
}

function attachText(dst: Cgroup, t: Task): string {
  return `dst_root=${dst.root.id} dst_id=${dst.id} dst_level=${dst.level} dst_path=${dst.path} pid=${t.pid} comm=${t.comm}`;
}

/**
 * models kernel/cgroup/cgroup-v1.c cgroup_attach_task_all(from, tsk): move `tsk` into
 * `from`'s cgroup on every hierarchy. Before v5.16 (0061270307f2, "cgroup: cgroup-v1: do not
 * exclude cgrp_dfl_root") the default hierarchy was skipped. It is a migration, not a fork:
 * no pids.max check.
 */
export function cgroupAttachTaskAll(k: Kernel, from: Task, tsk: Task): Result<void> {
  for (const root of k.cgroupRoots) {
    if (root.isDfl && k.profile.attachTaskAllSkipsDfl) continue;
    const fromCg = from.cgroups[root.id];
    if (!fromCg) continue;
    // cgroup_migrate_prepare_dst() → find_css_set() allocates the destination css_set: ENOMEM
    if (tsk.cgroups[root.id] !== fromCg && k.allocFails('cgroup_migrate_prepare_dst'))
      return err(Errno.ENOMEM);
    const r = cgroupMigrate(k, [tsk], fromCg);
    if (!r.ok) return r;
  }
  return ok();
}

/** Controllers that work in threaded mode (cgrp_dfl_threaded_ss_mask: cpu, cpuset, pids, perf_event). */
const THREADED_CONTROLLERS: ReadonlySet<Controller> = new Set<Controller>(['cpu', 'cpuset', 'pids']);

/** models cgroup_is_valid_domain(): neither threaded nor "domain invalid" (under a thread root). */
function cgroupIsValidDomain(c: Cgroup): boolean {
  return c.type !== 'threaded' && c.type !== 'domain invalid';
}

/**
 * models cgroup_can_be_thread_root(), v6.12: the root always; never a threaded cgroup; not
 * with populated domain children (nr_populated_domain_children) nor with a domain (non-threaded)
 * controller enabled in subtree_control.
 */
function cgroupCanBeThreadRoot(c: Cgroup): boolean {
  if (c.isRoot) return true;
  if (c.type === 'threaded') return false;
  for (const ch of c.children.values()) if (ch.type !== 'threaded' && ch.populatedCount() > 0) return false;
  for (const ctrl of c.subtreeControl) if (!THREADED_CONTROLLERS.has(ctrl)) return false;
  return true;
}

/**
 * models __cgroup_procs_write() / cgroup_procs_write_start() / cgroup_attach_permissions(),
 * v6.12: writing a tid to cgroup.procs moves its whole thread group, to cgroup.threads moves
 * one thread. In the kernel's order: ENODEV: the cgroup is gone; ESRCH: no such task;
 * EINVAL: kthread not ready / PF_NO_SETAFFINITY / kthreadd; EACCES: the writer is neither
 * root nor the delegated owner; then cgroup_migrate_vet_dst(): EOPNOTSUPP if the destination's
 * domain is not a valid domain ("domain invalid"), EBUSY if it has controllers enabled in
 * subtree_control and cannot be a thread root nor is threaded (the no-internal-process rule:
 * a domain controller enabled, or populated domain children); finally cgroup.threads across
 * threaded domains → EOPNOTSUPP. Writing cgroup.procs of a threaded cgroup is allowed and moves
 * every thread of the process (Documentation/admin-guide/cgroup-v2.rst, "cgroup.procs").
 */
export function cgroupProcsWrite(
  k: Kernel,
  writer: Task,
  dst: Cgroup,
  tid: number,
  threadgroup: boolean,
): Result<void> {
  if (dst.removed) return err(Errno.ENODEV);
  const ns = writer.activePidNs();
  const target = tid === 0 ? writer : ns ? k.findTaskByVpid(tid, ns) : null;
  if (!target?.alive) return err(Errno.ESRCH);
  const tsk = threadgroup ? target.groupLeader : target;
  if (tsk.noCgroupMigration || tsk.flags & PF_NO_SETAFFINITY) return err(Errno.EINVAL);
  if (tsk === k.kthreadd) return err(Errno.EINVAL);
  if (writer.cred.euid !== 0 && writer.cred.euid !== dst.ownerUid) return err(Errno.EACCES);
  if (dst.root.isDfl) {
    // cgroup_migrate_vet_dst()
    if (!cgroupIsValidDomain(dst.domCgroup)) return err(Errno.EOPNOTSUPP);
    if (!(cgroupCanBeThreadRoot(dst) || dst.type === 'threaded') && dst.subtreeControl.size > 0)
      return err(Errno.EBUSY);
    // cgroup_attach_permissions(): a single thread stays within its threaded domain
    const src = tsk.cgroups[dst.root.id]!;
    if (!threadgroup && src.domCgroup !== dst.domCgroup) return err(Errno.EOPNOTSUPP);
  }
  const tasks = threadgroup ? tsk.signal.threads.filter((t) => t.alive) : [tsk];
  return cgroupMigrate(k, tasks, dst);
}

/**
 * models cgroup_type_write("threaded") → cgroup_enable_threaded(), v6.12: EOPNOTSUPP for the
 * root, for a populated cgroup or one with a domain controller in subtree_control, and unless
 * the parent's domain is a valid domain that can be a thread root (no domain controller enabled,
 * no populated domain children).
 */
export function cgroupSetThreaded(c: Cgroup): Result<void> {
  if (c.type === 'threaded') return ok();
  if (!c.parent) return err(Errno.EOPNOTSUPP);
  if (c.children.size > 0 && [...c.children.values()].some((ch) => ch.type !== 'threaded'))
    return err(Errno.EOPNOTSUPP);
  if (c.populatedCount() > 0) return err(Errno.EOPNOTSUPP);
  for (const ctrl of c.subtreeControl) if (!THREADED_CONTROLLERS.has(ctrl)) return err(Errno.EOPNOTSUPP);
  const dom = c.parent.domCgroup;
  if (!cgroupIsValidDomain(dom) || !cgroupCanBeThreadRoot(dom)) return err(Errno.EOPNOTSUPP);
  if (c.parent.type === 'domain') c.parent.type = c.parent.isRoot ? 'domain' : 'domain threaded';
  c.type = 'threaded';
  return ok();
}

/** models cgroup_subtree_control_write("+ctrl"). */
export function cgroupEnableController(c: Cgroup, ctrl: Controller): Result<void> {
  if (!c.root.controllers.includes(ctrl)) return err(Errno.ENOENT);
  if (!c.hasController(ctrl)) return err(Errno.ENOENT);
  c.subtreeControl.add(ctrl);
  return ok();
}

// ---------------------------------------------------------------------------------------
// cpu controller: usage and bandwidth (kernel/sched/fair.c, v6.12; quota/period per cgroup)

/**
 * Charge `ns` of CPU time of `t` to its cpu cgroups (cpu.stat usage_usec/user/system) and
 * apply cpu.max: a cgroup that used its quota in the current period is throttled until the
 * period ends (nr_throttled, throttled_usec). Periods are aligned to multiples of the period
 * and counted when the group ran in them (nr_periods). Returns true if a throttle began.
 */
export function cpuCharge(k: Kernel, t: Task, ns: number, user: boolean): boolean {
  const dfl = t.cgroups[0];
  if (!dfl) return false;
  let throttledNow = false;
  for (let c: Cgroup | null = dfl; c; c = c.parent) {
    const s = c.cpu;
    s.usageNs += ns;
    if (user) s.userNs += ns;
    else s.systemNs += ns;
    if (s.quotaUs === Number.POSITIVE_INFINITY || !c.hasController('cpu')) continue;
    // CPU bandwidth depends on when each slice runs: the explorer's footprints (footprint.ts)
    // treat every step under a quota as touching everything
    if (k.fp) k.fp.global = true;
    const periodNs = s.periodUs * 1000;
    const idx = Math.floor(k.clock / periodNs);
    if (idx !== s.periodIndex) {
      s.periodIndex = idx;
      s.periodRuntimeNs = 0;
      s.nrPeriods++;
    }
    s.periodRuntimeNs += ns;
    if (!s.throttled && s.periodRuntimeNs >= s.quotaUs * 1000) {
      s.throttled = true;
      s.throttledSince = k.clock;
      s.nrThrottled++;
      throttledNow = true;
      const cg = c;
      k.throttledGroups.add(cg);
      k.addTimer((idx + 1) * periodNs, () => {
        cg.cpu.throttled = false;
        cg.cpu.throttledNs += k.clock - cg.cpu.throttledSince;
        k.throttledGroups.delete(cg);
      });
    }
  }
  return throttledNow;
}

/** Whether `t` may run now (no ancestor cpu cgroup is throttled). */
export function cpuRunnable(t: Task): boolean {
  for (let c: Cgroup | null = t.cgroups[0] ?? null; c; c = c.parent) if (c.cpu.throttled) return false;
  return true;
}
