/**
 * V8 heap tuning for the explorer's workload: thousands of executions, each of which boots a
 * kernel, runs it for a few hundred microseconds and drops it.
 *
 * V8's allocation-site pretenuring watches how many objects from each allocation site survive
 * a scavenge and, above a threshold, allocates that site's objects directly in the old
 * generation. An execution that happens to be running at a scavenge makes its kernel's
 * sites (tasks, signal structs, devices, …) look long-lived; once they are pretenured, every
 * later execution's kernel starts in old space, its young objects are reachable from there
 * until the next full GC, and each scavenge promotes megabytes of dead executions. On the
 * lost wake-up search (scenarios/races/lost-wakeup-kicks.yaml, N = K = 3) turning it off took
 * a run from ≈ 2.0 s to ≈ 1.45 s once warm, with GC from ≈ 18 % to ≈ 7 % of the time.
 */
import { setFlagsFromString } from 'node:v8';

/** Turn allocation-site pretenuring off for this process (V8 flags are process-wide; idempotent). */
export function tuneHeapForExplorer(): void {
  setFlagsFromString('--no-allocation-site-pretenuring');
}
