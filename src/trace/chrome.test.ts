import { describe, expect, it } from 'vitest';
import { QEMU_SCENARIO, runText } from '../views/fixtures.js';
import { type ChromeEvent, identitiesFromEvents, toChromeTrace } from './chrome.js';
import type { TraceEvent } from './trace.js';

const ev = (ts: number, comm: string, pid: number, event: string, text: string): TraceEvent => ({
  ts,
  cpu: 0,
  comm,
  pid,
  event,
  text,
});
const sw = (ts: number, prev: string, prevPid: number, next: string, nextPid: number) =>
  ev(
    ts,
    prevPid ? prev : '<idle>',
    prevPid,
    'sched_switch',
    `prev_comm=${prev} prev_pid=${prevPid} prev_prio=120 prev_state=S ==> next_comm=${next} next_pid=${nextPid} next_prio=120`,
  );

const EVENTS: TraceEvent[] = [
  ev(0, '<idle>', 0, 'task_newtask', 'pid=1 comm=init clone_flags=800300 oom_score_adj=0'),
  sw(1000, 'swapper/0', 0, 'init', 1),
  ev(2000, 'init', 1, 'task_newtask', 'pid=3 comm=qemu clone_flags=0 oom_score_adj=0'),
  sw(3000, 'init', 1, 'qemu', 3),
  ev(4000, 'qemu', 3, 'task_newtask', 'pid=4 comm=qemu clone_flags=50f00 oom_score_adj=0'),
  ev(4500, 'qemu', 3, 'task_rename', 'pid=4 oldcomm=qemu newcomm=CPU 0/KVM oom_score_adj=0'),
  sw(5000, 'qemu', 3, 'CPU 0/KVM', 4),
  ev(6000, 'CPU 0/KVM', 4, 'scenario_step', 'sleep 4us = ok'),
  ev(10000, '<idle>', 0, 'sched_wakeup', 'comm=CPU 0/KVM pid=4 prio=120 target_cpu=000'),
  ev(10000, 'CPU 0/KVM', 4, 'scenario_step', 'compute 2us = ok'),
  sw(12000, 'CPU 0/KVM', 4, 'qemu', 3),
  ev(13000, 'qemu', 3, 'sched_process_exit', 'comm=qemu pid=3 prio=120'),
];

const slices = (evs: readonly ChromeEvent[]) =>
  evs.filter((e) => e.ph === 'X').map((e) => [e.pid, e.tid, e.ts, e.dur]);

describe('the Chrome trace-event export', () => {
  it("turns sched_switch into X slices of running time on each task's track, in µs", () => {
    expect(slices(toChromeTrace(EVENTS).traceEvents)).toEqual([
      [1, 1, 1, 2],
      [3, 3, 3, 2],
      [3, 4, 5, 1],
      [3, 4, 10, 2],
      [3, 3, 12, 1],
    ]);
  });

  it("ends a slice at the task's last event when the CPU goes idle, and resumes it at the waking event", () => {
    const t4 = slices(toChromeTrace(EVENTS).traceEvents).filter(([, tid]) => tid === 4);
    expect(t4).toEqual([
      [3, 4, 5, 1],
      [3, 4, 10, 2],
    ]);
  });

  it('makes every other tracepoint an instant event with its ftrace text', () => {
    const inst = toChromeTrace(EVENTS).traceEvents.filter((e) => e.ph === 'i');
    expect(inst).toHaveLength(EVENTS.filter((e) => e.event !== 'sched_switch').length);
    expect(inst.find((e) => e.name === 'task_rename')).toEqual({
      name: 'task_rename',
      cat: 'task',
      ph: 'i',
      s: 't',
      ts: 4.5,
      pid: 3,
      tid: 3,
      args: { text: 'pid=4 oldcomm=qemu newcomm=CPU 0/KVM oom_score_adj=0' },
    });
  });

  it("names tracks: a process per thread group, a thread per task, a CLONE_THREAD child in its creator's group", () => {
    const meta = toChromeTrace(EVENTS).traceEvents.filter((e) => e.ph === 'M');
    expect(meta).toContainEqual({
      name: 'thread_name',
      ph: 'M',
      pid: 3,
      tid: 4,
      args: { name: 'CPU 0/KVM' },
    });
    expect(meta).toContainEqual({ name: 'process_name', ph: 'M', pid: 3, tid: 3, args: { name: 'qemu' } });
    expect(meta).toContainEqual({
      name: 'process_name',
      ph: 'M',
      pid: 0,
      tid: 0,
      args: { name: 'idle (timers, boot)' },
    });
    expect(identitiesFromEvents(EVENTS).get(4)).toEqual({ tgid: 3, comm: 'CPU 0/KVM' });
  });

  it('lets known identities override what the events imply', () => {
    const t = toChromeTrace(EVENTS, {
      tasks: new Map([[4, { tgid: 4, comm: 'worker' }]]),
      metadata: { profile: 'p' },
    });
    expect(t.traceEvents).toContainEqual({
      name: 'thread_name',
      ph: 'M',
      pid: 4,
      tid: 4,
      args: { name: 'worker' },
    });
    expect(t.otherData).toEqual({ profile: 'p' });
    expect(t.displayTimeUnit).toBe('ns');
  });

  it('ends a slice at a switch to pid 0, should the model emit one', () => {
    const t = toChromeTrace([sw(1000, 'swapper/0', 0, 'init', 1), sw(4000, 'init', 1, 'swapper/0', 0)]);
    expect(slices(t.traceEvents)).toEqual([[1, 1, 1, 3]]);
  });

  it("exports a scenario run with non-overlapping slices per task and the user worker on QEMU's track", () => {
    for (const [profile, workerPid] of [
      ['linux-6.12', 3],
      ['linux-5.15', 7],
    ] as const) {
      const r = runText(QEMU_SCENARIO, profile);
      const tasks = new Map<number, { tgid: number; comm: string }>();
      for (const s of r.snapshots) for (const t of s.tasks) tasks.set(t.pid, { tgid: t.tgid, comm: t.comm });
      const trace = JSON.parse(JSON.stringify(toChromeTrace(r.kernel.trace.events, { tasks }))) as {
        traceEvents: ChromeEvent[];
      };
      const byTid = new Map<number, ChromeEvent[]>();
      for (const e of trace.traceEvents.filter((x) => x.ph === 'X'))
        byTid.set(e.tid, [...(byTid.get(e.tid) ?? []), e]);
      for (const list of byTid.values())
        for (let i = 1; i < list.length; i++)
          expect(list[i]!.ts!).toBeGreaterThanOrEqual(list[i - 1]!.ts! + list[i - 1]!.dur!);
      expect(trace.traceEvents).toContainEqual({
        name: 'thread_name',
        ph: 'M',
        pid: workerPid,
        tid: 7,
        args: { name: 'vhost-3' },
      });
      expect(byTid.get(7)?.length).toBeGreaterThan(0);
    }
  });
});
