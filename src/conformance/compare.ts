/**
 * Normalise a model and a real Observation by named rules, then compare them field by field
 * into rows {scenario, observation, model, real, match}.
 *
 * Values that legitimately differ between a model run and a real run (pids, tids, cgroup
 * roots, bits the model does not track) are mapped by the rules below, each named, and the
 * rules a row relied on are listed on it. Nothing is dropped: a step the probe could not run
 * is a row with status "unobservable", never a match.
 */
import type { Observation, ObservedLabel, ObservedTask } from './observe.js';
import type { CompiledScript } from './script.js';
import { ioctlValueFromBytes } from './script.js';

/** The rules, by name, with what each does (printed by `vhostsim conform --rules`). */
export const RULES = {
  'id-by-order':
    'tids and pids become names: a scenario process by its name, a fork child by "<process>/<alias>", ' +
    'the k-th other thread of a process (in creation order: tid order counted from the process pid, ' +
    'modulo pid_max) by "<process>.<k>", ' +
    'a kthread by "kthread:<name>"',
  'ppid-init':
    'a PPid of the probe supervisor (real) or of init (model) is "init"; 2 is "kthreadd"; ' +
    'other PPids are named by id-by-order',
  'name-pid-suffix': 'a comm or Name ending in "-<n>", <n> a known tid or pid, has <n> replaced by its id',
  'labeller-running':
    'the thread that reached the label is "R": the model snapshots while it runs, ' +
    'the real one is parked in the probe handshake while the supervisor reads /proc',
  'flags-identity-bits':
    'stat flags are compared on the bits that identify a task kind (PF_EXITING, PF_IO_WORKER, PF_WQ_WORKER, ' +
    'PF_FORKNOEXEC, PF_NPROC_EXCEEDED, PF_USER_WORKER, PF_NOFREEZE, PF_KTHREAD, PF_NO_SETAFFINITY, ' +
    'PF_SUSPEND_TASK); other bits set (PF_RANDOMIZE from exec with ASLR, PF_SUPERPRIV from capable(), ' +
    'PF_VCPU, PF_MEMALLOC*, …) are named in the row note, not compared',
  'cgroup-relative':
    "a real cgroup path under the probe's base cgroup is made relative to it; the supervisor's own " +
    'cgroup and the hierarchy root are "/"; anything else is "host:<path>"',
  'cpus-all': 'a Cpus_allowed_list equal to every CPU a process may use is "all"',
  'pids-events-max': 'pids.events is compared on its "max" line (v2 adds max.imposed on newer kernels)',
  'file-lines': 'a cgroupfs file of several lines (cgroup.events) is compared as its lines joined by ", "',
  'nspid-depth': 'NSpid is compared as its number of levels (pid namespace depth), not its numbers',
  'ns-identity':
    'namespace inodes become "init" (the supervisor\'s), "new#k" per type, or "unreadable" (e.g. ' +
    "pid_for_children before its first process), on both sides (the model from the task's nsproxy)",
  'step-value-ids': 'values of threads/thread/fork/wait4 steps are tids/pids and are named by id-by-order',
  'ioctl-out': 'an ioctl value is decoded from the bytes read back exactly as the model decodes its own',
} as const;
export type RuleName = keyof typeof RULES;

/** flag bits compared (flags-identity-bits) and their names */
const FLAG_BITS: [number, string][] = [
  [0x00000004, 'PF_EXITING'],
  [0x00000010, 'PF_IO_WORKER'],
  [0x00000020, 'PF_WQ_WORKER'],
  [0x00000040, 'PF_FORKNOEXEC'],
  [0x00001000, 'PF_NPROC_EXCEEDED'],
  [0x00004000, 'PF_USER_WORKER'],
  [0x00008000, 'PF_NOFREEZE'],
  [0x00200000, 'PF_KTHREAD'],
  [0x04000000, 'PF_NO_SETAFFINITY'],
  [0x80000000, 'PF_SUSPEND_TASK'],
];
/** names of the other bits, for notes (include/linux/sched.h, v6.12) */
const OTHER_FLAG_NAMES: [number, string][] = [
  [0x00000001, 'PF_VCPU'],
  [0x00000002, 'PF_IDLE'],
  [0x00000008, 'PF_POSTCOREDUMP'],
  [0x00000080, 'PF_MCE_PROCESS'],
  [0x00000100, 'PF_SUPERPRIV'],
  [0x00000200, 'PF_DUMPCORE'],
  [0x00000400, 'PF_SIGNALED'],
  [0x00000800, 'PF_MEMALLOC'],
  [0x00002000, 'PF_USED_MATH'],
  [0x00010000, 'PF_KCOMPACTD'],
  [0x00020000, 'PF_KSWAPD'],
  [0x00040000, 'PF_MEMALLOC_NOFS'],
  [0x00080000, 'PF_MEMALLOC_NOIO'],
  [0x00100000, 'PF_LOCAL_THROTTLE'],
  [0x00400000, 'PF_RANDOMIZE'],
  [0x08000000, 'PF_MCE_EARLY'],
  [0x10000000, 'PF_MEMALLOC_PIN'],
  [0x20000000, 'PF_BLOCK_TS'],
];
const FLAG_MASK = FLAG_BITS.reduce((m, [b]) => (m | b) >>> 0, 0);

/** flags-identity-bits: the compared bits by name ("none" when clear) and the ignored ones */
export function decodeFlags(flags: number): { compared: string; ignored: string[] } {
  const f = flags >>> 0;
  const names = FLAG_BITS.filter(([b]) => (f & b) >>> 0).map(([, n]) => n);
  const rest = (f & ~FLAG_MASK) >>> 0;
  const ignored = OTHER_FLAG_NAMES.filter(([b]) => (rest & b) >>> 0).map(([, n]) => n);
  const known = OTHER_FLAG_NAMES.reduce((m, [b]) => (m | b) >>> 0, 0);
  const unknown = (rest & ~known) >>> 0;
  if (unknown) ignored.push(`0x${unknown.toString(16)}`);
  return { compared: names.length ? names.join('|') : 'none', ignored };
}

/** cpus-all */
export function normaliseCpus(cpus: string, all: string): string {
  return cpus === all ? 'all' : cpus;
}

/** cgroup-relative */
export function normaliseCgroup(path: string, o: Pick<Observation, 'cgroup'>): string {
  if (o.cgroup.mode === 'model') return path;
  const { home, base } = o.cgroup;
  if (base && (path === base || path.startsWith(`${base}/`))) return path.slice(base.length) || '/';
  if (path === home || path === '/') return '/';
  return `host:${path}`;
}

/** pids-events-max */
export function normalisePidsEvents(text: string): string {
  return /^max (\d+)$/m.exec(text)?.[0] ?? text.trim();
}

/** nspid-depth */
export function nspidDepth(nspid: string): number {
  return nspid.trim() ? nspid.trim().split(/\s+/).length : 0;
}

/** The id-by-order naming of one observation. */
export class IdMap {
  private readonly names = new Map<number, string>();

  constructor(
    readonly o: Observation,
    readonly compiled: CompiledScript,
  ) {
    // processes: scenario ones by name, fork children by the fork step's context name
    const procName = new Map<number, string>();
    for (const [n, pid] of Object.entries(o.processes)) procName.set(pid, n);
    for (const s of o.steps) {
      const cs = compiled.steps[s.index];
      if (cs?.valueKind === 'pid' && cs.action === 'fork' && s.value !== undefined && cs.child)
        procName.set(s.value, cs.child);
    }
    for (const [pid, n] of procName) this.names.set(pid, n);
    // threads: every tid seen, grouped by the process it belongs to, named in tid order
    const threadsOf = new Map<string, Set<number>>();
    const add = (proc: string | undefined, tid: number) => {
      if (!proc || procName.has(tid)) return;
      let s = threadsOf.get(proc);
      if (!s) threadsOf.set(proc, (s = new Set()));
      s.add(tid);
    };
    for (const l of o.labelOrder)
      for (const t of o.labels[l]?.tasks ?? []) if (!(t.flags & 0x00200000)) add(procName.get(t.tgid), t.tid);
    // thread-creating steps name their tid too (a thread seen at no label still gets its name)
    for (const s of o.steps) {
      const cs = compiled.steps[s.index];
      if (cs?.valueKind === 'tid' && s.value !== undefined && s.tid !== undefined) {
        const proc = procName.get(s.tid) ?? this.procOfTid(s.tid, procName);
        add(proc, s.value);
      }
    }
    // creation order is tid order counted from the process's own pid, modulo pid_max (tids wrap)
    const leaderOf = new Map([...procName].map(([pid, n]) => [n, pid]));
    const pidMax = o.pidMax || 4194304;
    for (const [proc, tids] of threadsOf) {
      const from = leaderOf.get(proc) ?? 0;
      const age = (tid: number) => (((tid - from) % pidMax) + pidMax) % pidMax;
      for (const [k, tid] of [...tids].sort((a, b) => age(a) - age(b)).entries())
        this.names.set(tid, `${proc}.${k + 1}`);
    }
    // kthreads: by their name with the pid suffix replaced
    const seenK = new Map<string, number>();
    for (const l of o.labelOrder)
      for (const t of o.labels[l]?.tasks ?? []) {
        if (!(t.flags & 0x00200000) || this.names.has(t.tid)) continue;
        const base = `kthread:${this.suffix(t.name)}`;
        const n = (seenK.get(base) ?? 0) + 1;
        seenK.set(base, n);
        this.names.set(t.tid, n === 1 ? base : `${base}#${n}`);
      }
  }

  /** the process a non-leader thread of a step belongs to, from the labels */
  private procOfTid(tid: number, procName: Map<number, string>): string | undefined {
    for (const l of this.o.labelOrder)
      for (const t of this.o.labels[l]?.tasks ?? []) if (t.tid === tid) return procName.get(t.tgid);
    return undefined;
  }

  /** id-by-order */
  id(tid: number): string {
    return this.names.get(tid) ?? `unknown(${tid})`;
  }

  /** ppid-init */
  ppid(p: number): string {
    if (p === this.o.supervisor.pid) return 'init';
    if (p === 2) return 'kthreadd';
    if (p === 0) return '0';
    return this.names.get(p) ?? 'other';
  }

  /** name-pid-suffix */
  suffix(name: string): string {
    return name.replace(/-(\d+)$/, (m, n: string) => {
      const id = this.names.get(Number(n));
      return id ? `-<${id}>` : m;
    });
  }
}

export type RowStatus = 'match' | 'mismatch' | 'unobservable';

export interface Row {
  scenario: string;
  /** what is compared, e.g. "label after-run: vmm.2 flags" */
  observation: string;
  model: string;
  real: string;
  match: boolean;
  status: RowStatus;
  /** the normalisation rules the values went through */
  rules: RuleName[];
  note?: string;
}

interface NormTask {
  fields: Record<string, { value: string; rules: RuleName[]; note?: string }>;
}

/** ns-identity: per ns type, the inode → "init" or "new#k" */
class NsNamer {
  private readonly seen = new Map<string, Map<number, string>>();
  constructor(private readonly init: Record<string, number> | undefined) {}
  name(type: string, ino: number): string {
    if (ino === 0) return 'unreadable';
    if (this.init?.[type] === ino) return 'init';
    let m = this.seen.get(type);
    if (!m) this.seen.set(type, (m = new Map()));
    let n = m.get(ino);
    if (!n) m.set(ino, (n = `new#${m.size + 1}`));
    return n;
  }
}

function normaliseTask(
  t: ObservedTask,
  o: Observation,
  ids: IdMap,
  label: ObservedLabel,
  ns: NsNamer,
): NormTask {
  const f: NormTask['fields'] = {};
  const flags = decodeFlags(t.flags);
  f.tgid = { value: ids.id(t.tgid), rules: ['id-by-order'] };
  f.ppid = { value: ids.ppid(t.ppid), rules: ['ppid-init', 'id-by-order'] };
  f.uid = { value: String(t.uid), rules: [] };
  f.comm = { value: ids.suffix(t.comm), rules: ['name-pid-suffix'] };
  f.name = { value: ids.suffix(t.name), rules: ['name-pid-suffix'] };
  const labeller = label.labeller !== 0 && label.labeller === t.tid;
  f.state = {
    value: labeller ? 'R' : t.state,
    rules: labeller ? ['labeller-running'] : [],
    ...(labeller && t.state !== 'R' ? { note: `labeller, read as ${t.state}` } : {}),
  };
  f.flags = {
    value: flags.compared,
    rules: ['flags-identity-bits'],
    ...(flags.ignored.length ? { note: `not compared: ${flags.ignored.join('|')}` } : {}),
  };
  f.cgroup = { value: normaliseCgroup(t.cgroup, o), rules: ['cgroup-relative'] };
  f.cpus = { value: normaliseCpus(t.cpus, o.cpus), rules: ['cpus-all'] };
  f.sigblk = { value: t.sigblk, rules: [] };
  f.sigpnd = { value: t.sigpnd, rules: [] };
  f.shdpnd = { value: t.shdpnd, rules: [] };
  f.threads = { value: String(t.threads), rules: [] };
  if (t.tracer !== undefined)
    f.tracer = { value: t.tracer ? ids.ppid(t.tracer) : 'none', rules: ['id-by-order'] };
  f.nspid = { value: `depth ${nspidDepth(t.nspid)}`, rules: ['nspid-depth'] };
  if (t.ns)
    f.ns = {
      value:
        Object.entries(t.ns)
          .map(([k, v]) => `${k}=${ns.name(k, v)}`)
          .filter((s) => !s.endsWith('=init'))
          .join(' ') || 'all init',
      rules: ['ns-identity'],
    };
  return { fields: f };
}

/** a step's path, with "#<n>" for the n-th execution of a step inside an unrolled loop */
const stepKey = (cs: CompiledScript['steps'][number]): string =>
  cs.occurrence > 0 ? `${cs.path}#${cs.occurrence + 1}` : cs.path;

export interface Normalised {
  steps: Map<string, { outcome: string; value?: string; rules: RuleName[]; note?: string }>;
  labels: Map<
    string,
    {
      tasks: Map<string, NormTask>;
      cgroups: Map<string, { value: string; rules: RuleName[] }>;
      alive: string;
    }
  >;
  labelOrder: string[];
  ended: string;
}

/** Apply the rules to one observation. */
export function normalise(o: Observation, compiled: CompiledScript): Normalised {
  const ids = new IdMap(o, compiled);
  const ns = new NsNamer(o.supervisor.ns);
  const steps: Normalised['steps'] = new Map();
  for (const s of [...o.steps].sort((a, b) => a.index - b.index)) {
    const cs = compiled.steps[s.index];
    if (!cs) continue;
    const key = stepKey(cs);
    let value: string | undefined;
    const rules: RuleName[] = [];
    if (cs.valueKind === 'tid' || cs.valueKind === 'pid') {
      if (s.value !== undefined) {
        value = ids.id(s.value);
        rules.push('step-value-ids', 'id-by-order');
      }
    } else if (cs.valueKind === 'fd') {
      if (s.value !== undefined) value = `fd ${s.value}`;
    } else if (cs.valueKind === 'count') {
      if (s.value !== undefined) value = String(s.value);
    } else if (cs.valueKind === 'ioctl' && cs.ioctlOut) {
      let v = s.value;
      if (s.out !== undefined) {
        v = ioctlValueFromBytes(Buffer.from(s.out, 'hex'), cs.ioctlOut.bytes, cs.ioctlOut.struct);
        rules.push('ioctl-out');
      }
      if (v !== undefined) value = String(v);
    }
    steps.set(key, {
      outcome: s.outcome,
      ...(value !== undefined ? { value } : {}),
      rules,
      ...(s.note ? { note: s.note } : {}),
    });
  }
  const labels: Normalised['labels'] = new Map();
  for (const l of o.labelOrder) {
    const lab = o.labels[l];
    if (!lab) continue;
    const tasks = new Map<string, NormTask>();
    for (const t of lab.tasks) tasks.set(ids.id(t.tid), normaliseTask(t, o, ids, lab, ns));
    const cgroups = new Map<string, { value: string; rules: RuleName[] }>();
    for (const [path, files] of Object.entries(lab.cgroups))
      for (const [file, text] of Object.entries(files))
        cgroups.set(
          `${path} ${file}`,
          file === 'pids.events'
            ? { value: normalisePidsEvents(text), rules: ['pids-events-max'] }
            : text.trim().includes('\n')
              ? { value: text.trim().split('\n').join(', '), rules: ['file-lines'] }
              : { value: text.trim(), rules: [] },
        );
    labels.set(l, { tasks, cgroups, alive: [...lab.alive].sort().join(', ') || 'none' });
  }
  return { steps, labels, labelOrder: o.labelOrder, ended: o.ended };
}

const ABSENT = '(absent)';

/** Compare a model and a real observation of `compiled`'s scenario. */
export function compareObservations(model: Observation, real: Observation, compiled: CompiledScript): Row[] {
  const m = normalise(model, compiled);
  const r = normalise(real, compiled);
  const scenario = compiled.scenario;
  const rows: Row[] = [];
  const push = (
    observation: string,
    mv: string | undefined,
    rv: string | undefined,
    rules: RuleName[],
    note?: string,
    status?: RowStatus,
  ) => {
    const model = mv ?? ABSENT;
    const realV = rv ?? ABSENT;
    const match = model === realV;
    rows.push({
      scenario,
      observation,
      model,
      real: realV,
      match: status === 'unobservable' ? false : match,
      status: status ?? (match ? 'match' : 'mismatch'),
      rules: [...new Set(rules)],
      ...(note ? { note } : {}),
    });
  };
  // steps, in script order
  for (const cs of compiled.steps) {
    const key = stepKey(cs);
    const ms = m.steps.get(key);
    const rs = r.steps.get(key);
    const unsupported = rs?.outcome.startsWith('UNSUPPORTED');
    const notes = [rs?.note].filter(Boolean).join('; ');
    push(
      `step ${key}`,
      ms ? ms.outcome : 'not run',
      rs ? rs.outcome : 'not run',
      [],
      notes || undefined,
      unsupported ? 'unobservable' : undefined,
    );
    if (ms?.value !== undefined || rs?.value !== undefined)
      push(`step ${key} value`, ms?.value, rs?.value, [...(ms?.rules ?? []), ...(rs?.rules ?? [])]);
  }
  // labels, in the order either side reached them
  const order = [...m.labelOrder];
  for (const l of r.labelOrder) if (!order.includes(l)) order.push(l);
  for (const l of order) {
    const ml = m.labels.get(l);
    const rl = r.labels.get(l);
    if (!ml || !rl) {
      push(`label ${l}`, ml ? 'reached' : 'not reached', rl ? 'reached' : 'not reached', []);
      continue;
    }
    const ids = [...new Set([...ml.tasks.keys(), ...rl.tasks.keys()])].sort();
    push(
      `label ${l}: tasks`,
      [...ml.tasks.keys()].sort().join(', ') || 'none',
      [...rl.tasks.keys()].sort().join(', ') || 'none',
      ['id-by-order'],
    );
    push(`label ${l}: alive`, ml.alive, rl.alive, []);
    for (const id of ids) {
      const mt = ml.tasks.get(id);
      const rt = rl.tasks.get(id);
      if (!mt || !rt) continue; // the tasks row shows the difference
      const fields = [...new Set([...Object.keys(mt.fields), ...Object.keys(rt.fields)])];
      for (const f of fields) {
        const mf = mt.fields[f];
        const rf = rt.fields[f];
        const note = [mf?.note && `model ${mf.note}`, rf?.note && `real ${rf.note}`]
          .filter(Boolean)
          .join('; ');
        push(
          `label ${l}: ${id} ${f}`,
          mf?.value,
          rf?.value,
          [...(mf?.rules ?? []), ...(rf?.rules ?? [])],
          note || undefined,
        );
      }
    }
    const cgKeys = [...new Set([...ml.cgroups.keys(), ...rl.cgroups.keys()])];
    for (const k of cgKeys) {
      const mc = ml.cgroups.get(k);
      const rc = rl.cgroups.get(k);
      push(`label ${l}: cgroup ${k}`, mc?.value, rc?.value, [...(mc?.rules ?? []), ...(rc?.rules ?? [])]);
    }
  }
  push('run ended', m.ended, r.ended, []);
  return rows;
}
