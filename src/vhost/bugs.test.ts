/**
 * Known historical bugs are profile switches: the model reproduces them on the profile that
 * had them and not on the one with the fix.
 */
import { describe, expect, it } from 'vitest';
import { checkInvariants, findDeadlock } from '../kernel/invariants.js';
import type { Sys } from '../kernel/syscalls.js';
import { bootKernel, spawn } from '../kernel/testing.js';
import { registerVhost } from './index.js';
import { VHOST_SET_OWNER } from './uapi.js';

/** SET_OWNER then close: the release stops the worker with vhost_task_stop(). */
function setOwnerAndClose(profile: string, seed: number) {
  const k = bootKernel({ profile, seed, trace: false });
  registerVhost(k);
  const owner = spawn(k, 'qemu', function* (sys: Sys) {
    const fd = yield* sys.open('/dev/vhost-net');
    if (!fd.ok) return 1;
    yield* sys.ioctl(fd.value, VHOST_SET_OWNER);
    yield* sys.close(fd.value);
    return 0;
  });
  k.run({ maxSteps: 200_000 });
  return { k, owner, deadlock: findDeadlock(k) };
}

describe('the 6.4-rc5 lost wake-up (4b13cbef7970)', () => {
  it('on linux-6.4-rc5 some interleaving loses the stop wake-up and the release hangs in vhost_task_stop', () => {
    let hung: ReturnType<typeof setOwnerAndClose> | null = null;
    for (let seed = 1; seed <= 300 && !hung; seed++) {
      const r = setOwnerAndClose('linux-6.4-rc5', seed);
      if (r.deadlock) hung = r;
      else checkInvariants(r.k);
    }
    expect(hung).not.toBeNull();
    const h = hung!;
    // the releaser waits uninterruptibly for the worker's exit, which never comes
    expect(h.deadlock).toEqual([
      { task: String(h.owner), waitsOn: 'completion vhost_task.exited', heldBy: null },
    ]);
    const worker = [...h.k.tasks.values()].find((t) => t.comm.startsWith('vhost-'))!;
    expect(worker.state & 1).toBe(1); // TASK_INTERRUPTIBLE, STOP already set
    checkInvariants(h.k);
  });

  it('on linux-6.4 no interleaving of the same program hangs', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const r = setOwnerAndClose('linux-6.4', seed);
      expect(r.deadlock).toBeNull();
      expect(r.owner.tasksAlive()).toBe(false);
      checkInvariants(r.k);
    }
  });
});
