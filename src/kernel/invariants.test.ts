import { describe, expect, it } from 'vitest';
import { InvariantError } from './errno.js';
import { checkInvariants, checkNoLeaks, findDeadlock } from './invariants.js';
import { MM } from './mm.js';
import { Mutex, mutexLock, mutexUnlock, Op, preemptPoint } from './sched.js';
import type { Sys } from './syscalls.js';
import type { Task } from './task.js';
import { bootKernel, makeCgroup, spawn } from './testing.js';
import { vhostTaskCreate, vhostTaskStart } from './vhost-task.js';

describe('invariants', () => {
  it('an ABBA lock order that deadlocks leaves both tasks in D and findDeadlock reports the wait-for graph', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const k = bootKernel({ seed });
      const a = new Mutex('A');
      const b = new Mutex('B');
      const locker = (first: Mutex, second: Mutex) =>
        function* (sys: Sys) {
          yield* mutexLock(sys.k, first);
          yield* preemptPoint(sys.k, 'between the two locks');
          yield* mutexLock(sys.k, second);
          mutexUnlock(sys.k, second);
          mutexUnlock(sys.k, first);
          return 0;
        };
      const t1 = spawn(k, 'ab', locker(a, b));
      const t2 = spawn(k, 'ba', locker(b, a));
      k.run();
      const graph = findDeadlock(k);
      if (!graph) continue;
      expect(graph).toEqual([
        { task: String(t1), waitsOn: 'mutex B', heldBy: String(t2) },
        { task: String(t2), waitsOn: 'mutex A', heldBy: String(t1) },
      ]);
      expect(t1.state & 2).toBe(2);
      checkInvariants(k);
      return;
    }
    throw new Error('no seed in 1..40 produced the ABBA deadlock');
  });

  it('some seed deadlocks the ABBA pair and another does not', () => {
    const outcomes = new Set<boolean>();
    for (let seed = 1; seed <= 40 && outcomes.size < 2; seed++) {
      const k = bootKernel({ seed });
      const a = new Mutex('A');
      const b = new Mutex('B');
      const locker = (first: Mutex, second: Mutex) =>
        function* (sys: Sys) {
          yield* mutexLock(sys.k, first);
          yield* preemptPoint(sys.k, 'between the two locks');
          yield* mutexLock(sys.k, second);
          mutexUnlock(sys.k, second);
          mutexUnlock(sys.k, first);
          return 0;
        };
      spawn(k, 'ab', locker(a, b));
      spawn(k, 'ba', locker(b, a));
      k.run();
      outcomes.add(findDeadlock(k) !== null);
      checkInvariants(k);
    }
    expect(outcomes).toEqual(new Set([true, false]));
  });

  it('every preemption point names its kernel site: one that does not breaks an invariant', () => {
    const named = bootKernel({ seed: 1 });
    const t = spawn(named, 'named', function* (sys: Sys) {
      yield* preemptPoint(sys.k, 'between two steps');
      return 0;
    });
    named.run({ until: () => t.at !== '' });
    expect(t.at).toBe('between two steps');
    named.run();
    const k = bootKernel({ seed: 1 });
    spawn(k, 'anonymous', function* () {
      yield Op.Preempt;
      return 0;
    });
    expect(() => k.run()).toThrow(InvariantError);
  });

  it('a quiet kernel has no deadlock', () => {
    const k = bootKernel();
    k.run();
    expect(findDeadlock(k)).toBeNull();
    checkInvariants(k);
  });

  it('a user worker whose mm changed under it breaks the worker-inheritance invariant', () => {
    const k = bootKernel({ profile: 'linux-6.12' });
    let worker: Task | null = null;
    spawn(
      k,
      'qemu',
      function* (sys: Sys) {
        const r = vhostTaskCreate(
          sys.k,
          function* () {
            return false;
          },
          function* () {},
          null,
          'vhost-w',
        );
        if (r.ok) {
          vhostTaskStart(sys.k, r.value);
          worker = r.value.task;
        }
        yield* sys.pause();
        return 0;
      },
      { cgroup: makeCgroup(k, '/vm') },
    );
    k.run();
    checkInvariants(k);
    const w = worker as unknown as Task;
    const other = new MM(k.nextMmId());
    w.mm = other;
    expect(() => checkInvariants(k)).toThrow(InvariantError);
    expect(() => checkInvariants(k)).toThrow(/changed its mm/);
  });

  it('a pids counter that drifts from the charged tasks is reported', () => {
    const k = bootKernel();
    const cg = makeCgroup(k, '/vm', { pidsMax: 10 });
    spawn(
      k,
      'p',
      function* (sys: Sys) {
        yield* sys.pause();
        return 0;
      },
      { cgroup: cg },
    );
    k.run();
    checkInvariants(k);
    cg.pids.counter++;
    expect(() => checkInvariants(k)).toThrow(/pids.current/);
  });

  it('checkNoLeaks passes once every user process is reaped', () => {
    const k = bootKernel();
    const boot = { nrThreads: k.nrThreads };
    spawn(k, 'short', function* (sys: Sys) {
      yield* sys.pthreadCreate(function* () {
        return 0;
      });
      return 0;
    });
    k.run();
    checkNoLeaks(k, boot);
  });
});
