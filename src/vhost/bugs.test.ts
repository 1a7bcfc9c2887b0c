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
  it('on linux-6.4-rc5 some interleavings lose a wake-up: the release hangs in a flush or in vhost_task_stop', () => {
    const hangs = new Map<string, ReturnType<typeof setOwnerAndClose>>();
    for (let seed = 1; seed <= 300 && hangs.size < 2; seed++) {
      const r = setOwnerAndClose('linux-6.4-rc5', seed);
      if (r.deadlock) {
        if (!hangs.has(r.deadlock[0]!.waitsOn)) hangs.set(r.deadlock[0]!.waitsOn, r);
      } else checkInvariants(r.k);
    }
    // a lost vhost_work_queue wake-up (the flush work sleeps on the list) and a lost stop
    expect([...hangs.keys()].sort()).toEqual([
      'completion vhost_flush_struct.wait_event',
      'completion vhost_task.exited',
    ]);
    for (const h of hangs.values()) {
      // the releaser waits uninterruptibly, nobody will wake it
      expect(h.deadlock).toEqual([{ task: String(h.owner), waitsOn: h.deadlock![0]!.waitsOn, heldBy: null }]);
      const worker = [...h.k.tasks.values()].find((t) => t.comm.startsWith('vhost-'))!;
      expect(worker.state & 1).toBe(1); // TASK_INTERRUPTIBLE, with STOP set or work queued
      checkInvariants(h.k);
    }
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
