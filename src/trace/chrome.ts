/**
 * The trace as Chrome trace-event JSON (the "JSON Array/Object Format" that ui.perfetto.dev
 * and chrome://tracing open): one track per task (pid = its thread group, tid = its pid,
 * named by `process_name`/`thread_name` metadata), an `X` slice for each stretch a task ran,
 * derived from sched_switch, and an instant event (`i`, thread scope) for every other
 * tracepoint, with the ftrace text in `args.text`.
 *
 * When the CPU went idle: the model emits no sched_switch to swapper when its run queue
 * empties, but everything that happens while it is idle (timers firing) is attributed to
 * pid 0. So a pid-0 event ends the current slice at that task's last event, and the next
 * event of a task (without a switch in between) starts a slice again at the idle event that
 * woke it. If the model ever emits `==> next_pid=0` switches, they end slices directly.
 */
import { CLONE_THREAD } from '../kernel/sched-consts.js';
import type { TraceEvent } from './trace.js';

export interface ChromeEvent {
  name: string;
  ph: 'X' | 'i' | 'M';
  pid: number;
  tid: number;
  /** µs */
  ts?: number;
  /** µs */
  dur?: number;
  cat?: string;
  s?: 't';
  args?: Record<string, unknown>;
}

export interface ChromeTrace {
  traceEvents: ChromeEvent[];
  displayTimeUnit: 'ns';
  otherData: Record<string, unknown>;
}

/** What the exporter knows of a task: its thread group and its name. */
export interface TaskIdentity {
  tgid: number;
  comm: string;
}

export interface ChromeOptions {
  /** identities known from elsewhere (snapshots); they win over what the events tell */
  tasks?: ReadonlyMap<number, TaskIdentity>;
  /** copied to `otherData` (scenario, profile, seed) */
  metadata?: Record<string, unknown>;
}

const field = (text: string, name: string): string | undefined =>
  new RegExp(`(?:^|\\s)${name}=(.*?)(?=\\s\\w+=|$)`).exec(text)?.[1];

/** ns → µs with ns precision (the format's unit is the microsecond). */
const us = (ns: number) => ns / 1000;

/** Task identities from task_newtask (CLONE_THREAD: the creator's group), task_rename and sched_switch. */
export function identitiesFromEvents(events: readonly TraceEvent[]): Map<number, TaskIdentity> {
  const ids = new Map<number, TaskIdentity>();
  const tgidOf = (pid: number) => ids.get(pid)?.tgid ?? pid;
  for (const e of events) {
    if (e.event === 'task_newtask') {
      const pid = Number(field(e.text, 'pid'));
      const flags = Number.parseInt(field(e.text, 'clone_flags') ?? '0', 16);
      const comm = field(e.text, 'comm') ?? String(pid);
      ids.set(pid, { tgid: flags & CLONE_THREAD && e.pid ? tgidOf(e.pid) : pid, comm });
    } else if (e.event === 'task_rename') {
      const pid = Number(field(e.text, 'pid'));
      const comm = field(e.text, 'newcomm');
      if (comm !== undefined) ids.set(pid, { tgid: tgidOf(pid), comm });
    } else if (e.event === 'sched_switch') {
      const pid = Number(field(e.text, 'next_pid'));
      const comm = field(e.text, 'next_comm');
      if (pid && comm !== undefined && !ids.has(pid)) ids.set(pid, { tgid: pid, comm });
    }
    if (e.pid && !ids.has(e.pid)) ids.set(e.pid, { tgid: e.pid, comm: e.comm });
  }
  return ids;
}

/** Convert trace events into a Chrome trace. */
export function toChromeTrace(events: readonly TraceEvent[], o: ChromeOptions = {}): ChromeTrace {
  const ids = identitiesFromEvents(events);
  for (const [pid, id] of o.tasks ?? []) ids.set(pid, id);
  const tgidOf = (pid: number) => (pid === 0 ? 0 : (ids.get(pid)?.tgid ?? pid));
  const out: ChromeEvent[] = [];

  // slices
  let cur: number | null = null;
  let start = 0;
  let lastOwn = 0;
  let lastIdle = 0;
  const close = (end: number) => {
    if (cur === null) return;
    out.push({
      name: 'running',
      cat: 'sched',
      ph: 'X',
      ts: us(start),
      dur: us(Math.max(0, end - start)),
      pid: tgidOf(cur),
      tid: cur,
    });
    cur = null;
  };
  const open = (pid: number, ts: number) => {
    cur = pid;
    start = ts;
    lastOwn = ts;
  };
  for (const e of events) {
    if (e.event === 'sched_switch') {
      const next = Number(field(e.text, 'next_pid'));
      if (cur !== null) close(e.ts);
      if (next) open(next, e.ts);
      else lastIdle = e.ts;
      continue;
    }
    if (e.pid === 0) {
      if (cur !== null) close(lastOwn);
      lastIdle = e.ts;
    } else if (cur === null) open(e.pid, lastIdle);
    if (cur === e.pid) lastOwn = e.ts;
    out.push({
      name: e.event,
      cat: e.event.split('_')[0]!,
      ph: 'i',
      s: 't',
      ts: us(e.ts),
      pid: tgidOf(e.pid),
      tid: e.pid,
      args: { text: e.text },
    });
  }
  close(lastOwn);

  // track names: every task that appears, and its thread group
  const meta: ChromeEvent[] = [];
  const seenTids = new Set<number>();
  for (const ev of out) seenTids.add(ev.tid);
  const groups = new Set<number>();
  for (const tid of [...seenTids].sort((a, b) => a - b)) {
    const tgid = tgidOf(tid);
    const name = tid === 0 ? 'swapper/0' : (ids.get(tid)?.comm ?? String(tid));
    meta.push({ name: 'thread_name', ph: 'M', pid: tgid, tid, args: { name } });
    if (!groups.has(tgid)) {
      groups.add(tgid);
      const pname = tgid === 0 ? 'idle (timers, boot)' : (ids.get(tgid)?.comm ?? String(tgid));
      meta.push({ name: 'process_name', ph: 'M', pid: tgid, tid: tgid, args: { name: pname } });
      meta.push({ name: 'process_sort_index', ph: 'M', pid: tgid, tid: tgid, args: { sort_index: tgid } });
    }
  }
  out.sort((a, b) => a.ts! - b.ts!);
  return { traceEvents: [...meta, ...out], displayTimeUnit: 'ns', otherData: { ...(o.metadata ?? {}) } };
}
