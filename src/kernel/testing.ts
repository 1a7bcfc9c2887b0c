/**
 * Helpers for tests and examples: boot a kernel on a profile, spawn user processes from
 * inline programs, run to quiescence, and check invariants.
 */
import { type Cgroup, cgroupEnableController, cgroupMkdirP } from '../cgroup/cgroup.js';
import { getProfile } from '../profiles/eras.js';
import type { Profile } from '../profiles/profile.js';
import type { Choices } from './choices.js';
import { checkInvariants } from './invariants.js';
import { Kernel, type KernelOptions } from './kernel.js';
import { type Program, type SpawnOptions, spawnProcess } from './syscalls.js';
import type { Task } from './task.js';

export interface BootOptions extends Partial<Omit<KernelOptions, 'profile'>> {
  profile?: string | Profile;
  choices?: Choices;
}

/** Boot a kernel (default profile linux-6.12, seed 1). */
export function bootKernel(o: BootOptions = {}): Kernel {
  const profile =
    typeof o.profile === 'string' || o.profile === undefined
      ? getProfile(o.profile ?? 'linux-6.12')
      : o.profile;
  return new Kernel({ ...o, profile });
}

/**
 * Create (mkdir -p) a v2 cgroup with the given controllers enabled down the path, like
 * systemd delegating a slice, and optionally set pids.max / cpuset.cpus / cpu.max.
 */
export function makeCgroup(
  k: Kernel,
  path: string,
  o: { pidsMax?: number; cpus?: number; cpuMaxUs?: number; cpuPeriodUs?: number; ownerUid?: number } = {},
): Cgroup {
  const top = k.cgroupRoots[0]!.top;
  const r = cgroupMkdirP(top, path);
  if (!r.ok) throw new Error(`mkdir ${path}: errno ${r.errno}`);
  const cg = r.value;
  const ancestors: Cgroup[] = [];
  for (let c: Cgroup | null = cg.parent; c; c = c.parent) ancestors.unshift(c);
  for (const c of ancestors)
    for (const ctrl of ['pids', 'cpu', 'cpuset', 'memory'] as const) {
      const e = cgroupEnableController(c, ctrl);
      if (!e.ok) throw new Error(`enable ${ctrl} in ${c.path}: errno ${e.errno}`);
    }
  if (o.pidsMax !== undefined) cg.pids.max = o.pidsMax;
  if (o.cpus !== undefined) cg.cpusetCpus = o.cpus;
  if (o.cpuMaxUs !== undefined) cg.cpu.quotaUs = o.cpuMaxUs;
  if (o.cpuPeriodUs !== undefined) cg.cpu.periodUs = o.cpuPeriodUs;
  if (o.ownerUid !== undefined) cg.ownerUid = o.ownerUid;
  return cg;
}

/** Spawn a process running `program` (see spawnProcess). */
export function spawn(
  k: Kernel,
  comm: string,
  program: Program,
  o: Omit<SpawnOptions, 'comm' | 'program'> = {},
): Task {
  return spawnProcess(k, { ...o, comm, program });
}

/** Run until nothing is runnable and no timer is pending, then check invariants. */
export function settle(k: Kernel, maxSteps = 1_000_000): void {
  const r = k.run({ maxSteps });
  if (r === 'steps') throw new Error(`did not settle within ${maxSteps} steps`);
  checkInvariants(k);
}

/** Tasks (threads) whose comm matches. */
export function tasksNamed(k: Kernel, comm: string | RegExp): Task[] {
  return [...k.tasks.values()].filter((t) =>
    typeof comm === 'string' ? t.comm === comm : comm.test(t.comm),
  );
}

/** bytes stored through a DataView: the reference the byte-by-byte codecs are tested against */
export function viaDataView(size: number, fill: (d: DataView) => void): Uint8Array {
  const ab = new ArrayBuffer(size);
  fill(new DataView(ab));
  return new Uint8Array(ab);
}
