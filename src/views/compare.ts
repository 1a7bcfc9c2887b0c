/**
 * `vhostsim compare`: the same scenario on several profiles, side by side. Three tables:
 * step outcomes; at each label, where every task beyond init and kthreadd lives (its kind,
 * thread group, parent, uid, cgroup and CPUs); and the accounting (Threads of each scenario
 * process, pids.current/pids.max and pids.events per cgroup, RLIMIT_NPROC counts per uid).
 * Rows whose values differ between profiles are marked `≠` (and coloured on a terminal).
 *
 * Tasks are matched across profiles by name: the n-th task (in pid order) with a comm is
 * `comm#n` in every profile, so the first vhost worker of each kernel share a row.
 */
import { PF_IO_WORKER, PF_USER_WORKER, PF_USER_WORKER_V5 } from '../kernel/sched-consts.js';
import type { Snapshot, TaskView } from '../scenario/run.js';
import { type Colors, NO_COLORS, table } from './common.js';
import { outcomeCell, type RunSummary, stepLocation } from './run.js';

export interface CompareStepRow {
  location: string;
  action: string;
  detail: string;
  /** outcome per profile; null where the step did not run */
  outcomes: Record<string, string | null>;
  /** the rendered cells, outcome with expectation marks */
  expected: Record<string, string | null>;
  differs: boolean;
}

export interface CompareRow {
  /** the task key (comm#n) or the accounting item */
  item: string;
  field: string;
  values: Record<string, string | null>;
  differs: boolean;
}

export interface CompareAt {
  label: string;
  /** profiles on which the label was reached */
  reached: string[];
  placement: CompareRow[];
  accounting: CompareRow[];
}

export interface Comparison {
  scenario: string;
  profiles: string[];
  steps: CompareStepRow[];
  at: CompareAt[];
  failures: Record<string, string[]>;
}

export const PLACEMENT_FIELDS = ['kind', 'tgid', 'ppid', 'uid', 'cgroup', 'cpus'] as const;

/** What a task is: kthread, user worker (vhost_task / V5 kernel_worker), io worker, thread or process. */
export function taskKind(t: TaskView): string {
  if (t.kthread) return 'kthread';
  if (t.flags & PF_IO_WORKER) return 'io worker';
  if (t.flags & (PF_USER_WORKER | PF_USER_WORKER_V5)) return 'user worker';
  return t.pid === t.tgid ? 'process' : 'thread';
}

/** Tasks beyond init and kthreadd, keyed by comm; the n-th task (n ≥ 2) of a comm is `comm#n`. */
export function keyedTasks(snap: Snapshot): Map<string, TaskView> {
  const byComm = new Map<string, TaskView[]>();
  for (const t of snap.tasks) {
    if (t.pid <= 2) continue;
    const l = byComm.get(t.comm) ?? [];
    l.push(t);
    byComm.set(t.comm, l);
  }
  const out = new Map<string, TaskView>();
  for (const [comm, list] of byComm)
    list.forEach((t, i) => {
      out.set(i > 0 ? `${comm}#${i + 1}` : comm, t);
    });
  return out;
}

function placementValue(snap: Snapshot, t: TaskView, field: (typeof PLACEMENT_FIELDS)[number]): string {
  const name = (pid: number) => {
    const p = snap.tasks.find((x) => x.pid === pid);
    return p ? `${p.comm}(${pid})` : String(pid);
  };
  switch (field) {
    case 'kind':
      return taskKind(t);
    case 'tgid':
      return t.tgid === t.pid ? 'itself' : name(t.tgid);
    case 'ppid':
      return name(t.ppid);
    case 'uid':
      return String(t.uid);
    case 'cgroup':
      return t.cgroup;
    case 'cpus':
      return t.cpus;
  }
}

function differs(values: Record<string, string | null>): boolean {
  return new Set(Object.values(values)).size > 1;
}

/** The accounting items of a snapshot: item → field → value. */
function accounting(snap: Snapshot): Map<string, string> {
  const out = new Map<string, string>();
  for (const [name, p] of Object.entries(snap.processes)) {
    const t = p.alive ? snap.tasks.find((x) => x.pid === p.pid) : undefined;
    out.set(`Threads\t${name}`, t ? String(t.nlwp) : 'exited');
  }
  for (const c of snap.cgroups) {
    const cur = c.files['pids.current']?.trim();
    if (cur === undefined) continue;
    out.set(`pids.current/max\t${c.path}`, `${cur}/${c.files['pids.max']?.trim() ?? 'max'}`);
    out.set(`pids.events max\t${c.path}`, /max (\d+)/.exec(c.files['pids.events'] ?? '')?.[1] ?? '0');
  }
  for (const [uid, n] of Object.entries(snap.nproc)) out.set(`nproc\tuid ${uid}`, String(n));
  return out;
}

/** Build the comparison; `at` restricts the labels (default: every label reached, then end). */
export function compareRuns(results: readonly RunSummary[], at?: readonly string[]): Comparison {
  const profiles = results.map((r) => r.profile);
  // steps: matched by location and occurrence
  const stepRows = new Map<string, CompareStepRow>();
  for (const r of results) {
    const seen = new Map<string, number>();
    for (const s of r.steps) {
      const n = (seen.get(s.path) ?? 0) + 1;
      seen.set(s.path, n);
      const key = `${s.path}#${n}`;
      let row = stepRows.get(key);
      if (!row) {
        row = {
          location: stepLocation(s.path) + (n > 1 ? ` #${n}` : ''),
          action: s.action,
          detail: s.detail,
          outcomes: Object.fromEntries(profiles.map((p) => [p, null])),
          expected: Object.fromEntries(profiles.map((p) => [p, null])),
          differs: false,
        };
        stepRows.set(key, row);
      }
      row.outcomes[r.profile] = s.outcome;
      row.expected[r.profile] = s.expected ?? null;
    }
  }
  const steps = [...stepRows.values()];
  for (const s of steps) s.differs = differs(s.outcomes);

  const labels: string[] = [];
  if (at) labels.push(...at);
  else {
    for (const r of results)
      for (const s of r.snapshots) if (s.label !== 'end' && !labels.includes(s.label)) labels.push(s.label);
    labels.push('end');
  }
  const sections: CompareAt[] = labels.map((label) => {
    const snaps = new Map<string, Snapshot>();
    for (const r of results) {
      const s = r.snapshots.find((x) => x.label === label);
      if (s) snaps.set(r.profile, s);
    }
    const keyed = new Map([...snaps].map(([p, s]) => [p, keyedTasks(s)] as const));
    const taskKeys: string[] = [];
    for (const m of keyed.values()) for (const k of m.keys()) if (!taskKeys.includes(k)) taskKeys.push(k);
    const placement: CompareRow[] = [];
    for (const key of taskKeys)
      for (const field of PLACEMENT_FIELDS) {
        const values: Record<string, string | null> = {};
        for (const p of profiles) {
          const t = keyed.get(p)?.get(key);
          values[p] = t ? placementValue(snaps.get(p)!, t, field) : null;
        }
        placement.push({ item: key, field, values, differs: differs(values) });
      }
    const acc = new Map([...snaps].map(([p, s]) => [p, accounting(s)] as const));
    const accKeys: string[] = [];
    for (const m of acc.values()) for (const k of m.keys()) if (!accKeys.includes(k)) accKeys.push(k);
    const accounting_: CompareRow[] = accKeys
      .map((k) => {
        const [field, item] = k.split('\t') as [string, string];
        const values: Record<string, string | null> = {};
        for (const p of profiles) values[p] = acc.get(p)?.get(k) ?? null;
        return { item, field, values, differs: differs(values) };
      })
      // pids.events that stayed 0 everywhere say nothing
      .filter(
        (r) => r.field !== 'pids.events max' || Object.values(r.values).some((v) => v !== null && v !== '0'),
      );
    return { label, reached: [...snaps.keys()], placement, accounting: accounting_ };
  });
  return {
    scenario: results[0]?.scenario ?? '',
    profiles,
    steps,
    at: sections,
    failures: Object.fromEntries(results.map((r) => [r.profile, r.failures])),
  };
}

/** The comparison as text tables. */
export function renderComparison(cmp: Comparison, c: Colors = NO_COLORS): string {
  const out: string[] = [];
  const mark = (d: boolean) => (d ? c.yellow('≠') : ' ');
  const cell = (v: string | null, d: boolean) => (v === null ? c.dim('—') : d ? c.yellow(v) : v);
  out.push(
    `${c.bold(cmp.scenario)}: ${cmp.profiles.join(', ')}   ${c.dim('(≠ marks rows that differ)')}`,
    '',
  );

  out.push(c.bold('step outcomes'));
  const srows: string[][] = [[' ', 'STEP', 'ACTION', 'DETAIL', ...cmp.profiles]];
  for (const s of cmp.steps)
    srows.push([
      mark(s.differs),
      s.location,
      s.action,
      s.detail,
      ...cmp.profiles.map((p) => {
        const o = s.outcomes[p];
        if (o === null || o === undefined) return c.dim('—');
        const e = s.expected[p];
        const rendered = outcomeCell({ outcome: o, ...(e ? { expected: e } : {}) }, c);
        return s.differs && o === 'ok' ? c.yellow(rendered) : rendered;
      }),
    ]);
  out.push(table(srows), '');

  for (const sec of cmp.at) {
    const missing = cmp.profiles.filter((p) => !sec.reached.includes(p));
    out.push(
      c.bold(`at ${sec.label}`) +
        (missing.length ? c.yellow(`  (not reached on ${missing.join(', ')})`) : ''),
    );
    if (sec.placement.length) {
      // a task placed alike on every profile gets one line; the others a line per field
      const byTask = new Map<string, CompareRow[]>();
      for (const r of sec.placement) byTask.set(r.item, [...(byTask.get(r.item) ?? []), r]);
      const rows: string[][] = [[' ', 'TASK', 'FIELD', ...cmp.profiles]];
      const same = [...byTask].filter(([, rs]) => !rs.some((r) => r.differs)).map(([k]) => k);
      const keyWidth = Math.max(4, ...[...byTask.keys()].map((k) => k.length));
      for (const [key, rs] of byTask) {
        if (same.includes(key)) {
          const v = (f: string) => rs.find((r) => r.field === f)?.values[cmp.profiles[0]!] ?? '';
          const tgid = v('tgid') === 'itself' ? '' : ` of ${v('tgid')}`;
          rows.push([
            `   ${key.padEnd(keyWidth)}  ${c.dim(`same on every profile: ${v('kind')}${tgid}, ppid ${v('ppid')}, uid ${v('uid')}, cgroup ${v('cgroup')}, cpus ${v('cpus')}`)}`,
          ]);
          continue;
        }
        rs.forEach((r, i) => {
          rows.push([
            mark(r.differs),
            i === 0 ? r.item.padEnd(keyWidth) : '',
            r.field,
            ...cmp.profiles.map((p) => cell(r.values[p] ?? null, r.differs)),
          ]);
        });
      }
      out.push(table(rows));
    } else out.push(c.dim('  no tasks beyond init and kthreadd'));
    if (sec.accounting.length) {
      const rows: string[][] = [[' ', 'ACCOUNTING', 'OF', ...cmp.profiles]];
      for (const r of sec.accounting)
        rows.push([
          mark(r.differs),
          r.field,
          r.item,
          ...cmp.profiles.map((p) => cell(r.values[p] ?? null, r.differs)),
        ]);
      out.push('', table(rows));
    }
    out.push('');
  }
  const failed = Object.entries(cmp.failures).filter(([, f]) => f.length);
  if (failed.length) {
    out.push(c.bold('failed expectations'));
    for (const [, fs] of failed) for (const f of fs) out.push(`  ${c.red(f)}`);
  } else out.push(c.green('every expectation held on every profile'));
  return `${out.join('\n')}\n`;
}
