import { expect, it } from 'vitest';
import { bootKernel, spawn, settle, tasksNamed } from './testing.js';
import { vhostTaskCreate, vhostTaskStart, vhostTaskStop, type VhostTask } from './vhost-task.js';
import { procStatus } from './procfs.js';
import type { KGen } from './sched.js';

it('scratch', () => {
  const k = bootKernel({ profile: 'linux-6.12' });
  let count = 0;
  const queue: number[] = [];
  let vt: VhostTask | null = null;
  const owner = spawn(k, 'qemu', function* (sys) {
    const r = vhostTaskCreate(sys.k, function* (): KGen<boolean> { if (queue.length) { queue.shift(); count++; return true; } return false; }, null, null, `vhost-${sys.task.pid}`);
    if (!r.ok) return 1;
    vt = r.value;
    vhostTaskStart(sys.k, vt);
    queue.push(1, 2, 3);
    sys.k.wakeUpProcess(vt.task);
    yield* sys.nanosleep(1_000_000);
    yield* vhostTaskStop(sys.k, vt);
    return 0;
  });
  k.run({ until: () => count === 3 });
  console.log(procStatus(k, vt!.task));
  console.log([...k.tasks.values()].map(t => `${t.pid} ${t.tgid} ${t.comm} ${t.state}`));
  settle(k);
  console.log(count, [...k.tasks.values()].map(t => `${t.pid} ${t.comm}`), owner.exitState);
  expect(count).toBe(3);
});
