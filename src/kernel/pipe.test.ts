/**
 * Pipes (fs/pipe.c) and task_work (kernel/task_work.c) as io_uring uses them.
 */
import { describe, expect, it } from 'vitest';
import { Errno, type Result } from './errno.js';
import { O_NONBLOCK } from './files.js';
import type { KGen } from './sched.js';
import { SIG_IGN, SIGPIPE } from './signal-consts.js';
import { taskWorkAdd } from './task-work.js';
import { bootKernel, settle, spawn } from './testing.js';

const outcome = (r: Result<unknown>) => (r.ok ? 'ok' : r.errno);

describe('pipe2', () => {
  it('a read sleeps until data arrives, returns what is there, and returns 0 bytes once every writer is gone', () => {
    const k = bootKernel();
    const got: (string | number)[] = [];
    spawn(k, 'app', function* (sys) {
      const p = yield* sys.pipe();
      if (!p.ok) return 1;
      const [r, w] = p.value;
      yield* sys.fork(function* (child) {
        yield* child.nanosleep(1_000_000);
        yield* child.write(w, new Uint8Array([1, 2, 3]));
        return 0;
      });
      yield* sys.close(w);
      const a = yield* sys.read(r, 16);
      got.push(a.ok ? a.value.length : a.errno);
      const b = yield* sys.read(r, 16);
      got.push(b.ok ? b.value.length : b.errno);
      return 0;
    });
    settle(k);
    expect(got).toEqual([3, 0]);
  });

  it('a write without readers fails with EPIPE and raises SIGPIPE, which kills unless ignored; O_NONBLOCK turns a wait into EAGAIN', () => {
    const k = bootKernel();
    const got: unknown[] = [];
    const run = (ignore: boolean) =>
      spawn(k, ignore ? 'ignores' : 'default', function* (sys) {
        if (ignore) yield* sys.rtSigaction(SIGPIPE, { handler: SIG_IGN });
        const nb = yield* sys.pipe(O_NONBLOCK);
        if (!nb.ok) return 1;
        got.push(outcome(yield* sys.read(nb.value[0], 8)));
        const p = yield* sys.pipe();
        if (!p.ok) return 1;
        yield* sys.close(p.value[0]);
        got.push(outcome(yield* sys.write(p.value[1], new Uint8Array(4))));
        return 0;
      });
    const ignores = run(true);
    const dflt = run(false);
    settle(k);
    expect(ignores.exitCode).toBe(0);
    // the default action ends the process on the way back from write(): it never sees EPIPE
    expect(dflt.exitCode & 0x7f).toBe(SIGPIPE);
    expect(got.filter((x) => x === Errno.EAGAIN)).toHaveLength(2);
    expect(got.filter((x) => x === Errno.EPIPE)).toHaveLength(1);
  });
});

describe('task_work', () => {
  it('TWA_SIGNAL interrupts an interruptible sleep and the work runs on the way back to user mode', () => {
    const k = bootKernel();
    const log: string[] = [];
    const app = spawn(k, 'app', function* (sys) {
      const r = yield* sys.nanosleep(10_000_000);
      log.push(`sleep ${outcome(r)} at ${k.clock >= 10_000_000 ? 'expiry' : 'early'}`);
      return 0;
    });
    spawn(k, 'poker', function* (sys) {
      yield* sys.nanosleep(1_000_000);
      const r = taskWorkAdd(
        k,
        app,
        {
          owner: null,
          func: function* (): KGen<void> {
            log.push(`work in ${k.current!.comm}`);
          },
        },
        'signal',
      );
      log.push(`add ${outcome(r)}`);
      return 0;
    });
    settle(k);
    // the work ran in the sleeper, whose nanosleep was restarted to its original expiry
    expect(log).toEqual(['add ok', 'work in app', 'sleep ok at expiry']);
  });

  it('task_work_add fails with ESRCH once the task has run exit_task_work', () => {
    const k = bootKernel();
    const app = spawn(k, 'app', function* () {
      return 0;
    });
    let r: unknown = null;
    spawn(k, 'late', function* (sys) {
      yield* sys.nanosleep(1_000_000);
      r = outcome(taskWorkAdd(k, app, { owner: null, func: function* () {} }, 'signal'));
      return 0;
    });
    settle(k);
    expect(r).toBe(Errno.ESRCH);
  });
});
