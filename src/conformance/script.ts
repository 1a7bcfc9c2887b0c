/**
 * Compile a scenario into the line-based script that conformance/probe.c runs on a real kernel.
 *
 * The probe runs the scenario's processes in the scenario's layout: the supervisor (the
 * model's init) forks and re-executes one child per process, which runs the process's program
 * in its main thread; `threads` are pthreads that pause, `thread` and `fork` may carry their own
 * program. Every step gets an index; `CompiledScript.steps[index]` maps it back to the
 * scenario step's path (the `path` of the model's StepRecord) so the two runs' outcomes can be
 * paired. Steps and settings the probe cannot run faithfully are listed in `unsupported`, and a
 * scenario with any is not run at all (it is reported, never passed).
 *
 * The script format (documented in full at the top of conformance/probe.c):
 *
 *     vhostsim-probe 1
 *     timeout <ms>
 *     cgroup <path> <pids.max|-> <domain|threaded>
 *     process <name> <actor>
 *     uid <n> | gid <n> | caps <hex> | rlimit <res#> <soft> <hard> | join <cgroup> | cpus <list> | after <label>
 *     program
 *     <index> <action> <args…>          (thread/fork may be followed by a program … end block)
 *     end
 *
 * Tokens are percent-encoded (space → %20), "-" is "none", fd references are `a:<alias>` or
 * `n:<number>`, process targets `self`, `p:<process>` or `a:<fork alias>`.
 *
 * @example
 *   const c = compileScript(loadScenario('conformance/scenarios/nx-first-run.yaml'));
 *   if (c.unsupported.length) console.log(c.unsupported);
 *   else console.log(c.text);
 */
import { CAP_NAMES, capBit } from '../kernel/cred.js';
import { RLIMIT_NAMES } from '../kernel/rlimit.js';
import {
  __WALL,
  __WCLONE,
  CLONE_NEWCGROUP,
  CLONE_NEWIPC,
  CLONE_NEWNET,
  CLONE_NEWNS,
  CLONE_NEWPID,
  CLONE_NEWTIME,
  CLONE_NEWUSER,
  CLONE_NEWUTS,
  WNOHANG,
  WUNTRACED,
} from '../kernel/sched-consts.js';
import { signalFromName } from '../kernel/signal-consts.js';
import { formatPath } from '../scenario/errors.js';
import { IOCTL_ARGS } from '../scenario/ioctl-args.js';
import type { LoadedScenario } from '../scenario/load.js';
import { durationNs, PTRACE_OPTIONS, PTRACE_REQUESTS } from '../scenario/run.js';
import type { ScenarioDoc } from '../scenario/schema.js';
import { VHOST_IOCTLS } from '../vhost/uapi.js';

/** What a step's recorded value is, for the comparison's normalisation. */
export type ValueKind = 'tid' | 'pid' | 'fd' | 'ioctl' | 'count' | 'none';

export interface CompiledStep {
  /** the index the probe reports */
  readonly index: number;
  /** the scenario step's path, as the model's StepRecord.path */
  readonly path: string;
  /** the how-manieth execution of `path` this is (> 0 only inside unrolled loops) */
  readonly occurrence: number;
  readonly action: string;
  /** the scenario process (or fork child, "<process>/<alias>") whose program holds the step */
  readonly context: string;
  readonly valueKind: ValueKind;
  /** fork: the child's context name */
  readonly child?: string;
  /** ioctl: how to turn the bytes read back into the model's value */
  readonly ioctlOut?: { bytes: number; struct: string };
}

export interface Unsupported {
  /** where in the scenario ("processes.vmm.program[2].vhost-net", "host.sysctl") */
  readonly path: string;
  readonly why: string;
}

/** What a run of the script needs from the machine it runs on. */
export type Need = 'kvm' | 'vhost-net' | 'vhost-vsock' | 'vhost-scsi';

export interface CompiledScript {
  readonly scenario: string;
  readonly text: string;
  readonly steps: readonly CompiledStep[];
  /** every scenario cgroup the probe creates (and whose pids files it reports) */
  readonly cgroups: readonly string[];
  readonly unsupported: readonly Unsupported[];
  readonly needs: readonly Need[];
  /** process contexts: scenario processes, then fork children ("vmm/child") */
  readonly contexts: readonly string[];
}

export interface CompileOptions {
  /** wall-clock limit of the probe run (default 5000 ms) */
  timeoutMs?: number;
}

const NS_FLAGS: Record<string, number> = {
  pid: CLONE_NEWPID,
  user: CLONE_NEWUSER,
  net: CLONE_NEWNET,
  mnt: CLONE_NEWNS,
  uts: CLONE_NEWUTS,
  ipc: CLONE_NEWIPC,
  cgroup: CLONE_NEWCGROUP,
  time: CLONE_NEWTIME,
};
const WAIT_OPTIONS: Record<string, number> = { WNOHANG, WUNTRACED, __WALL, __WCLONE };

/** A script token: percent-encode what would split or confuse a line; "" and undefined → "-". */
export function tok(v: string | number | undefined | null): string {
  if (v === undefined || v === null || v === '') return '-';
  const s = String(v);
  if (s === '-') return '%2d';
  let out = '';
  for (const c of s) {
    const code = c.charCodeAt(0);
    out += code <= 0x20 || code === 0x25 || code === 0x7f ? `%${code.toString(16).padStart(2, '0')}` : c;
  }
  return out;
}

/** The inverse of tok(). */
export function untok(s: string): string {
  if (s === '-') return '';
  return s.replace(/%([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16)));
}

const limitToken = (v: unknown): string =>
  v === 'max' || v === 'unlimited' ? 'inf' : String(Math.trunc(Number(v)));

/** rlimits as the model reads them (run.ts rlimitsOf): [resource number, soft, hard] */
export function rlimitTokens(spec: Record<string, unknown>): [number, string, string][] | string {
  const out: [number, string, string][] = [];
  for (const [name, v] of Object.entries(spec)) {
    const res = RLIMIT_NAMES[name.toLowerCase().replace(/^rlimit_/, '')];
    if (res === undefined) return `unknown rlimit ${name}`;
    if (typeof v === 'object' && v !== null) {
      const o = v as { soft: unknown; hard: unknown };
      out.push([res, limitToken(o.soft), limitToken(o.hard)]);
    } else out.push([res, limitToken(v), limitToken(v)]);
  }
  return out;
}

function signalNumber(v: unknown): number | undefined {
  return typeof v === 'number' ? v : signalFromName(String(v));
}

/** a bit mask of signals, bit n-1 for signal n, as hex */
function sigmaskHex(list: unknown): string {
  let m = 0n;
  for (const s of (list as (string | number)[] | undefined) ?? []) {
    const n = signalNumber(s);
    if (n !== undefined) m |= 1n << BigInt(n - 1);
  }
  return m.toString(16);
}

/** a CpuList (number or "0-3,6") as the probe's cpulist */
const cpuListToken = (v: number | string): string => String(v).replace(/\s+/g, '');

/** Device paths a step opens → what the machine must provide. */
function needOfPath(path: string): Need | undefined {
  if (path === '/dev/kvm') return 'kvm';
  if (path === '/dev/vhost-net') return 'vhost-net';
  if (path === '/dev/vhost-vsock') return 'vhost-vsock';
  if (path === '/dev/vhost-scsi') return 'vhost-scsi';
  return undefined;
}

/** Little-endian bytes → the value the model records for a GET ioctl (run.ts, `ioctl` step). */
export function ioctlValueFromBytes(bytes: Uint8Array, out: number, struct: string): number | undefined {
  if (bytes.length < out) return undefined;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (out === 1) return dv.getUint8(0);
  if (out === 8 && struct === '__u64') return Number(dv.getBigUint64(0, true));
  return dv.getUint32(out === 8 ? 4 : 0, true);
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

class Compiler {
  readonly lines: string[] = [];
  readonly steps: CompiledStep[] = [];
  readonly unsupported: Unsupported[] = [];
  readonly needs = new Set<Need>();
  readonly contexts: string[] = [];
  private actors = 0;
  private readonly occurrences = new Map<string, number>();

  constructor(readonly doc: ScenarioDoc) {}

  nextActor(): number {
    return this.actors++;
  }

  no(path: (string | number)[] | string, why: string): void {
    this.unsupported.push({ path: typeof path === 'string' ? path : formatPath(path), why });
  }

  /** fd reference token for an fd alias or number */
  fdRef(v: unknown): string {
    return typeof v === 'number' ? `n:${v}` : `a:${tok(String(v))}`;
  }

  /** a signal target: self, a scenario process, or an alias (a fork child); numbers are refused */
  target(v: unknown, path: (string | number)[], aliases: Map<string, string>): string | undefined {
    if (v === 'self') return 'self';
    if (typeof v === 'number') {
      this.no(path, 'numeric pids would signal unrelated tasks on a real machine');
      return undefined;
    }
    const s = String(v);
    if (aliases.get(s) === 'process') return `a:${tok(s)}`;
    if (s in this.doc.processes) return `p:${tok(s)}`;
    this.no(path, `unknown target ${s}`);
    return undefined;
  }

  step(
    index: number,
    context: string,
    pathArr: (string | number)[],
    action: string,
    valueKind: ValueKind,
    extra: Partial<CompiledStep> = {},
  ): CompiledStep {
    const path = formatPath(pathArr);
    const occurrence = this.occurrences.get(path) ?? 0;
    this.occurrences.set(path, occurrence + 1);
    const s: CompiledStep = { index, path, occurrence, action, context, valueKind, ...extra };
    this.steps.push(s);
    return s;
  }

  /**
   * Compile a program. `aliases` maps alias → kind ('fd', 'process', 'thread'), shared with the
   * process's threads and copied into fork children, as the model's runner does.
   */
  program(
    steps: readonly Record<string, unknown>[],
    base: (string | number)[],
    context: string,
    aliases: Map<string, string>,
    depth: number,
  ): void {
    for (const [i, raw] of steps.entries()) this.compileStep(raw, i, base, context, aliases, depth);
  }

  private compileStep(
    raw: Record<string, unknown>,
    i: number,
    base: (string | number)[],
    context: string,
    aliases: Map<string, string>,
    depth: number,
  ): void {
    const indent = '  '.repeat(depth);
    const action = Object.keys(raw).find((k) => k !== 'expect')!;
    const body = raw[action];
    const b = (body ?? {}) as Record<string, unknown>;
    const path = [...base, i, action];
    const emit = (kind: ValueKind, args: (string | number)[], extra: Partial<CompiledStep> = {}) => {
      const idx = this.steps.length;
      this.step(idx, context, path, action, kind, extra);
      this.lines.push(`${indent}${idx} ${action} ${args.join(' ')}`.trimEnd());
      return idx;
    };
    switch (action) {
      case 'threads':
        if (b.program) {
          this.no(path, '`threads` with a program (each thread would run the same steps); use `thread`');
          return;
        }
        emit('tid', [String(b.count), tok(b.name as string | undefined)]);
        if (b.as) aliases.set(String(b.as), 'thread');
        return;
      case 'thread': {
        const actor = this.nextActor();
        emit('tid', [tok(b.name as string | undefined), tok(b.as as string | undefined), actor]);
        if (b.as) aliases.set(String(b.as), 'thread');
        if (b.program) {
          this.lines.push(`${indent}program`);
          this.program(
            b.program as Record<string, unknown>[],
            [...path, 'program'],
            context,
            aliases,
            depth + 1,
          );
          this.lines.push(`${indent}end`);
        }
        return;
      }
      case 'open': {
        const need = needOfPath(String(b.path));
        if (need) this.needs.add(need);
        emit('fd', [tok(String(b.path)), tok(String(b.as)), b.cloexec ? 1 : 0, b.create ? 1 : 0]);
        aliases.set(String(b.as), 'fd');
        return;
      }
      case 'close':
        emit('none', [this.fdRef(body)]);
        return;
      case 'dup':
        emit('fd', [this.fdRef(b.fd), tok(String(b.as))]);
        aliases.set(String(b.as), 'fd');
        return;
      case 'ioctl': {
        const cmd = String(b.cmd);
        const number = VHOST_IOCTLS[cmd];
        if (number === undefined) {
          this.no(path, `no ioctl number known for ${cmd}`);
          return;
        }
        const cmdHex = (number >>> 0).toString(16);
        if (typeof b.arg === 'number') {
          emit('none', [this.fdRef(b.fd), cmdHex, 'int', b.arg]);
          return;
        }
        const spec = IOCTL_ARGS[cmd];
        // fd fields: encode with sentinels, then tell the probe where to patch in the real fd
        const sentinels: { value: number; ref: string }[] = [];
        const bytes = spec
          ? spec.encode((b.arg ?? {}) as Record<string, unknown>, (v) => {
              const value = 0x7ead0000 + sentinels.length;
              sentinels.push({ value, ref: this.fdRef(v) });
              return value;
            })
          : new Uint8Array(0);
        const buf = bytes.length ? bytes : new Uint8Array(8);
        const patches: string[] = [];
        const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
        for (const s of sentinels)
          for (let off = 0; off + 4 <= buf.length; off++)
            if (dv.getUint32(off, true) === s.value) patches.push(`patch:${off}:${s.ref}`);
        const out = spec?.out ?? 0;
        emit(out ? 'ioctl' : 'none', [this.fdRef(b.fd), cmdHex, 'buf', hex(buf), out, ...patches], {
          ...(out ? { ioctlOut: { bytes: out, struct: spec!.struct } } : {}),
        });
        return;
      }
      case 'kvm':
        this.needs.add('kvm');
        emit('none', [tok(b.as as string | undefined), String(b.vcpus ?? 1), b.run === false ? 0 : 1]);
        if (b.as) aliases.set(String(b.as), 'fd');
        return;
      case 'kvm_run':
        this.needs.add('kvm');
        emit('none', [tok(String(b.vm)), String(b.vcpu ?? 0)]);
        return;
      case 'fork': {
        const actor = this.nextActor();
        const child = `${context}/${b.as ? String(b.as) : `fork@${this.steps.length}`}`;
        this.contexts.push(child);
        emit('pid', [tok(b.as as string | undefined), actor], { child });
        const childAliases = new Map(aliases);
        if (b.as) aliases.set(String(b.as), 'process');
        if (b.program) {
          this.lines.push(`${indent}program`);
          this.program(
            b.program as Record<string, unknown>[],
            [...path, 'program'],
            child,
            childAliases,
            depth + 1,
          );
          this.lines.push(`${indent}end`);
        }
        return;
      }
      case 'exit':
      case 'exit_group':
        emit('none', [String(body)]);
        return;
      case 'kill': {
        const t = this.target(b.target, [...path, 'target'], aliases);
        const sig = signalNumber(b.signal);
        if (sig === undefined) {
          this.no(path, `unknown signal ${b.signal}`);
          return;
        }
        if (t) emit('none', [t, sig]);
        return;
      }
      case 'tgkill': {
        const t = this.target(b.target, [...path, 'target'], aliases);
        const sig = signalNumber(b.signal);
        if (sig === undefined) {
          this.no(path, `unknown signal ${b.signal}`);
          return;
        }
        if (/^\d+$/.test(String(b.thread))) {
          this.no([...path, 'thread'], 'a numeric tid means a model tid; name the thread by its comm');
          return;
        }
        if (t) emit('none', [t, tok(String(b.thread)), sig]);
        return;
      }
      case 'ptrace': {
        const t = this.target(b.target, [...path, 'target'], aliases);
        if (b.thread !== undefined && /^\d+$/.test(String(b.thread))) {
          this.no([...path, 'thread'], 'a numeric tid means a model tid; name the thread by its comm');
          return;
        }
        const request = PTRACE_REQUESTS[(b.request as keyof typeof PTRACE_REQUESTS | undefined) ?? 'seize'];
        const options = ((b.options as (keyof typeof PTRACE_OPTIONS)[] | undefined) ?? []).reduce(
          (m, o) => m | PTRACE_OPTIONS[o],
          0,
        );
        if (t) emit('none', [request, t, b.thread === undefined ? '-' : tok(String(b.thread)), options]);
        return;
      }
      case 'sigaction': {
        const sig = signalNumber(b.signal);
        if (sig === undefined) {
          this.no(path, `unknown signal ${b.signal}`);
          return;
        }
        emit('none', [sig, String(b.handler)]);
        return;
      }
      case 'sigprocmask':
        emit('none', [sigmaskHex(b.block), sigmaskHex(b.unblock)]);
        return;
      case 'setrlimit': {
        const r = rlimitTokens(b);
        if (typeof r === 'string') {
          this.no(path, r);
          return;
        }
        emit('none', r.flat().map(String));
        return;
      }
      case 'setresuid': {
        const ids = Array.isArray(body) ? (body as number[]) : [body, body, body];
        emit('none', ids.map(String));
        return;
      }
      case 'unshare': {
        let flags = 0;
        for (const n of body as string[]) flags |= NS_FLAGS[n]!;
        emit('none', [(flags >>> 0).toString(16)]);
        return;
      }
      case 'affinity':
        emit('none', [cpuListToken(body as number | string)]);
        return;
      case 'write': {
        const p = String(b.path);
        if (!p.startsWith('/sys/fs/cgroup/')) {
          this.no(path, 'only cgroupfs writes are run: sysctls and module parameters are global');
          return;
        }
        const v = b.value;
        let value: string;
        if (v === 'self') value = 'self';
        else if (typeof v === 'string' && aliases.get(v) === 'process') value = `a:${tok(v)}`;
        else if (typeof v === 'string' && v in this.doc.processes) value = `p:${tok(v)}`;
        else value = tok(String(v));
        emit('none', [tok(p), value]);
        return;
      }
      case 'sleep':
        emit('none', [String(durationNs(body as string | number))]);
        return;
      case 'label':
      case 'wait':
        emit('none', [tok(String(body))]);
        return;
      case 'wait4': {
        let opts = 0;
        for (const o of (b.options as string[]) ?? []) opts |= WAIT_OPTIONS[o]!;
        let t = '-1';
        if (b.pid !== undefined) {
          const r = this.target(b.pid, [...path, 'pid'], aliases);
          if (!r) return;
          t = r;
        }
        emit('pid', [t, String(opts >>> 0)]);
        return;
      }
      case 'loop':
        for (let n = 0; n < Number(b.count); n++)
          this.program(b.steps as Record<string, unknown>[], [...path, 'steps'], context, aliases, depth);
        return;
      case 'pipe':
        emit('none', [tok(String(b.read)), tok(String(b.write))]);
        aliases.set(String(b.read), 'fd');
        aliases.set(String(b.write), 'fd');
        return;
      case 'eventfd':
        emit('fd', [tok(String(b.as)), Number(b.initval ?? 0)]);
        aliases.set(String(b.as), 'fd');
        return;
      case 'io_uring':
        emit('fd', [tok(String(b.as)), Number(b.entries), b.sqpoll ? 1 : 0, Number(b.sq_thread_idle ?? 0)]);
        aliases.set(String(b.as), 'fd');
        return;
      case 'io_uring_submit':
        emit('count', [
          `a:${tok(String(b.ring))}`,
          String(b.op),
          b.fd === undefined ? '-' : this.fdRef(b.fd),
          Number(b.count ?? 1),
          Number(b.size ?? 8),
          b.async ? 1 : 0,
          Number(b.wait ?? 0),
        ]);
        return;
      case 'io_uring_wait':
        emit('count', [`a:${tok(String(b.ring))}`, Number(b.count)]);
        return;
      case 'io_uring_register': {
        const [bound, unbound] = b.max_workers as [number, number];
        emit('count', [`a:${tok(String(b.ring))}`, bound, unbound]);
        return;
      }
      case 'vhost-net':
        this.needs.add('vhost-net');
        {
          this.no(path, 'the QEMU-like vhost-net bring-up is not in the probe; spell it out with open/ioctl');
          return;
        }
      case 'traffic': {
        this.no(path, 'guest traffic needs a guest driver the probe does not have');
        return;
      }
      case 'exec': {
        this.no(path, 'exec is not in the probe');
        return;
      }
      case 'freezer': {
        this.no(path, 'the system freezer (suspend) is global');
        return;
      }
      case 'compute': {
        this.no(path, 'compute (CPU time) is not in the probe');
        return;
      }
      default: {
        this.no(path, `step ${action} is not in the probe`);
        return;
      }
    }
  }
}

/**
 * Compile the scenario for the probe. Never throws for a valid scenario: what the probe
 * cannot run is listed in `unsupported`.
 */
export function compileScript(sc: LoadedScenario, o: CompileOptions = {}): CompiledScript {
  const doc = sc.doc;
  const c = new Compiler(doc);
  const host = doc.host ?? {};
  if (host.sysctl && Object.keys(host.sysctl).length)
    c.no('host.sysctl', 'sysctls are global: the probe never changes them');
  if (host.modules && Object.keys(host.modules).length)
    c.no('host.modules', 'module parameters are global: the probe never changes them');
  if (host.housekeeping !== undefined) c.no('host.housekeeping', 'CPU isolation is a boot parameter');
  const cgroups = new Map<string, { max?: string; threaded: boolean }>();
  for (const [path, spec] of Object.entries(host.cgroups ?? {})) {
    const s = spec ?? {};
    if (s['cpuset.cpus'] !== undefined)
      c.no(`host.cgroups.${path}.cpuset.cpus`, 'the probe manages the pids hierarchy only');
    if (s['cpu.max'] !== undefined)
      c.no(`host.cgroups.${path}.cpu.max`, 'the probe manages the pids hierarchy only');
    if (s.owner !== undefined) c.no(`host.cgroups.${path}.owner`, 'cgroup delegation is not in the probe');
    cgroups.set(path, {
      ...(s['pids.max'] !== undefined ? { max: limitToken(s['pids.max']).replace('inf', 'max') } : {}),
      threaded: s['cgroup.type'] === 'threaded',
    });
  }
  for (const p of Object.values(doc.processes))
    if (p.cgroup && !cgroups.has(p.cgroup)) cgroups.set(p.cgroup, { threaded: false });
  const cgPaths = [...cgroups.keys()].sort((a, b) => a.split('/').length - b.split('/').length);

  c.lines.push('vhostsim-probe 1');
  c.lines.push(`# scenario ${tok(doc.name)}`);
  c.lines.push(`timeout ${o.timeoutMs ?? 5000}`);
  for (const p of cgPaths) {
    const s = cgroups.get(p)!;
    c.lines.push(`cgroup ${tok(p)} ${s.max ?? '-'} ${s.threaded ? 'threaded' : 'domain'}`);
  }
  for (const [name, p] of Object.entries(doc.processes)) {
    c.contexts.push(name);
    if (p.parent) c.no(`processes.${name}.parent`, 'every probe process is a child of the supervisor (init)');
    c.lines.push(`process ${tok(name)} ${c.nextActor()}`);
    if (p.uid !== undefined) c.lines.push(`uid ${p.uid}`);
    if (p.gid !== undefined || p.uid !== undefined) c.lines.push(`gid ${p.gid ?? p.uid}`);
    if (p.capabilities !== undefined) {
      let caps = 0n;
      if (p.capabilities === 'all') caps = (1n << 41n) - 1n;
      else if (Array.isArray(p.capabilities))
        for (const cap of p.capabilities) {
          const up = cap.toUpperCase();
          const n = CAP_NAMES[up.startsWith('CAP_') ? up : `CAP_${up}`];
          if (n === undefined) c.no(`processes.${name}.capabilities`, `unknown capability ${cap}`);
          else caps |= capBit(n);
        }
      c.lines.push(`caps ${caps.toString(16)}`);
    }
    if (p.rlimits) {
      const r = rlimitTokens(p.rlimits);
      if (typeof r === 'string') c.no(`processes.${name}.rlimits`, r);
      else for (const [res, soft, hard] of r) c.lines.push(`rlimit ${res} ${soft} ${hard}`);
    }
    if (p.cgroup) c.lines.push(`join ${tok(p.cgroup)}`);
    if (p.cpus !== undefined) c.lines.push(`cpus ${cpuListToken(p.cpus)}`);
    if (p.after) c.lines.push(`after ${tok(p.after)}`);
    c.lines.push('program');
    c.program(p.program, ['processes', name, 'program'], name, new Map(), 1);
    c.lines.push('end');
  }
  return {
    scenario: doc.name,
    text: `${c.lines.join('\n')}\n`,
    steps: c.steps,
    cgroups: cgPaths,
    unsupported: c.unsupported,
    needs: [...c.needs],
    contexts: c.contexts,
  };
}
