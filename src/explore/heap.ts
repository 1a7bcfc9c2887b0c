/**
 * V8 heap tuning for the explorer's workload: thousands of executions, each of which boots a
 * kernel, runs it for a few hundred microseconds and drops it.
 *
 * V8's allocation-site pretenuring watches how many objects from each allocation site survive
 * a scavenge and, above a threshold, allocates that site's objects directly in the old
 * generation. Here that misfires: whatever execution is running at a scavenge makes its
 * kernel's allocation sites (tasks, signal structs, devices, …) look long-lived, and objects
 * allocated in old space keep the young objects they point to alive until the next full GC.
 * Measured on the lost wake-up search (scenarios/races/lost-wakeup-kicks.yaml, N = K = 3,
 * dfs): with pretenuring off a warm run took ≈ 1.45 s instead of ≈ 2.0 s, and the garbage
 * collector's share of the profile fell from ≈ 18 % to ≈ 7 %.
 */
import { setFlagsFromString } from 'node:v8';

/** Turn allocation-site pretenuring off for this process (V8 flags are process-wide; idempotent). */
export function tuneHeapForExplorer(): void {
  setFlagsFromString('--no-allocation-site-pretenuring');
}
