/**
 * The conformance suite: every scenario of conformance/scenarios on this host's kernel (through
 * conformance/probe.c and /dev/kvm) against the model profile matching its version, every
 * observation compared. Where the host cannot run it (no root, no /dev/kvm, no gcc or static
 * libc) the tests are skipped with the reason in their name — never passed.
 *
 * The unit tests below (script compiler, normalisation rules, comparison) always run.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { Io } from '../cli/io.js';
import { main } from '../cli/program.js';
import { loadScenario, parseScenario } from '../scenario/load.js';
import { runScenario } from '../scenario/run.js';
import {
  compareObservations,
  decodeFlags,
  IdMap,
  normaliseCgroup,
  normaliseCpus,
  normalisePidsEvents,
  nspidDepth,
  RULES,
} from './compare.js';
import { buildProbe, hostKernel, hostSkipReason } from './host.js';
import { type Observation, observeModel } from './observe.js';
import { compileScript, ioctlValueFromBytes, tok, untok } from './script.js';
import { conformScenario } from './suite.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCENARIOS = join(ROOT, 'conformance', 'scenarios');
const yamls = (dir: string) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => join(dir, f));

const sc = (text: string) => parseScenario(text, 'inline.yaml');

// ------------------------------------------------------------------ the script compiler

describe('script compiler', () => {
  it('percent-encodes tokens and decodes them back', () => {
    for (const s of ['CPU 0/KVM', '100%', 'a\tb', '-', 'plain'])
      expect(untok(tok(s))).toBe(s === '' ? '' : s);
    expect(tok('CPU {n}/KVM')).toBe('CPU%20{n}/KVM');
    expect(tok(undefined)).toBe('-');
    expect(tok('-')).toBe('%2d');
  });

  it('compiles the io_uring steps to directives whose values are fds and counts', () => {
    const c = compileScript(
      sc(`name: s
profiles: [linux-6.18]
processes:
  app:
    program:
      - pipe: { read: pr, write: pw }
      - eventfd: { as: ev, initval: 1 }
      - io_uring: { as: ring, entries: 8, sqpoll: true, sq_thread_idle: 5 }
      - io_uring_register: { ring: ring, max_workers: [0, 2] }
      - io_uring_submit: { ring: ring, op: read, fd: pr, count: 3, async: true, wait: 1 }
      - io_uring_wait: { ring: ring, count: 2 }
`),
    );
    expect(c.unsupported).toEqual([]);
    expect(c.needs).toEqual([]);
    expect(c.text.split('\n').filter((l) => /^ {2}\d/.test(l))).toEqual([
      '  0 pipe pr pw',
      '  1 eventfd ev 1',
      '  2 io_uring ring 8 1 5',
      '  3 io_uring_register a:ring 0 2',
      '  4 io_uring_submit a:ring read a:pr 3 8 1 1',
      '  5 io_uring_wait a:ring 2',
    ]);
    expect(c.steps.map((x) => x.valueKind)).toEqual(['none', 'fd', 'fd', 'count', 'count', 'count']);
  });

  it('compiles processes, attributes, nested programs and step indices', () => {
    const c = compileScript(
      sc(`name: s
profiles: [linux-6.18]
host:
  cgroups:
    /vm: { pids.max: 4 }
processes:
  vmm:
    uid: 64123
    rlimits: { nproc: { soft: 2, hard: max } }
    cgroup: /vm
    cpus: 0-1
    program:
      - threads: { count: 2, name: "CPU {n}/KVM" }
      - thread:
          name: io
          as: io
          program:
            - kvm: { as: vm, vcpus: 2 }
            - label: ran
      - fork: { as: child }
      - kill: { target: child, signal: SIGKILL }
      - wait4: { pid: child, options: [__WALL] }
      - setrlimit: { nofile: 64 }
      - unshare: [pid, net]
      - sleep: 1ms
  ctl:
    after: ran
    program:
      - tgkill: { target: vmm, thread: "kvm-nx-*", signal: SIGUSR1 }
      - write: { path: /sys/fs/cgroup/vm/pids.max, value: 5 }
`),
    );
    expect(c.unsupported).toEqual([]);
    expect(c.needs).toEqual(['kvm']);
    expect(c.cgroups).toEqual(['/vm']);
    expect(c.contexts).toEqual(['vmm', 'vmm/child', 'ctl']);
    expect(c.text).toBe(
      [
        'vhostsim-probe 1',
        '# scenario s',
        'timeout 5000',
        'cgroup /vm 4 domain',
        'process vmm 0',
        'uid 64123',
        'gid 64123',
        'rlimit 6 2 inf',
        'join /vm',
        'cpus 0-1',
        'program',
        '  0 threads 2 CPU%20{n}/KVM',
        '  1 thread io io 1',
        '  program',
        '    2 kvm vm 2 1',
        '    3 label ran',
        '  end',
        '  4 fork child 2',
        '  5 kill a:child 9',
        '  6 wait4 a:child 1073741824',
        '  7 setrlimit 7 64 64',
        '  8 unshare 60000000',
        '  9 sleep 1000000',
        'end',
        'process ctl 3',
        'after ran',
        'program',
        '  10 tgkill p:vmm kvm-nx-* 10',
        '  11 write /sys/fs/cgroup/vm/pids.max 5',
        'end',
        '',
      ].join('\n'),
    );
    expect(c.steps[2]).toMatchObject({
      index: 2,
      path: 'processes.vmm.program[1].thread.program[0].kvm',
      context: 'vmm',
      valueKind: 'none',
    });
    expect(c.steps[4]).toMatchObject({ action: 'fork', valueKind: 'pid', child: 'vmm/child' });
    expect(c.steps[0]!.valueKind).toBe('tid');
  });

  it('unrolls loops, numbering each execution of a step', () => {
    const c = compileScript(
      sc(`name: s
profiles: [linux-6.18]
processes:
  p:
    program:
      - loop: { count: 2, steps: [{ sleep: 1ms }] }
`),
    );
    expect(c.steps.map((s) => [s.path, s.occurrence])).toEqual([
      ['processes.p.program[0].loop.steps[0].sleep', 0],
      ['processes.p.program[0].loop.steps[0].sleep', 1],
    ]);
  });

  it('encodes ioctl structs with the model encoders and patches fd fields at run time', () => {
    const c = compileScript(
      sc(`name: s
profiles: [linux-6.12]
processes:
  p:
    program:
      - open: { path: /dev/vhost-net, as: net }
      - open: { path: /dev/null, as: kick }
      - ioctl: { fd: net, cmd: VHOST_SET_OWNER }
      - ioctl: { fd: net, cmd: VHOST_SET_VRING_KICK, arg: { index: 1, fd: kick } }
      - ioctl: { fd: net, cmd: VHOST_GET_FEATURES }
`),
    );
    expect(c.needs).toEqual(['vhost-net']);
    const lines = c.text.split('\n');
    expect(lines).toContain('  2 ioctl a:net af01 buf 0000000000000000 0');
    // struct vhost_vring_file {u32 index; s32 fd}: the fd goes at offset 4
    expect(lines).toContain('  3 ioctl a:net 4008af20 buf 010000000000ad7e 0 patch:4:a:kick');
    expect(lines).toContain('  4 ioctl a:net 8008af00 buf 0000000000000000 8');
    expect(c.steps[4]).toMatchObject({ valueKind: 'ioctl', ioctlOut: { bytes: 8, struct: '__u64' } });
  });

  it('lists what the probe cannot run instead of running it', () => {
    const c = compileScript(
      sc(`name: s
profiles: [linux-6.12]
host:
  sysctl: { kernel.threads-max: 100 }
  modules: { kvm.nx_huge_pages: never }
processes:
  p:
    program:
      - vhost-net: { as: net0 }
      - traffic: { dev: net0, packets: 1 }
      - kill: { target: 1, signal: SIGKILL }
      - write: { path: /proc/sys/kernel/pid_max, value: 400 }
      - exec: { path: /bin/true }
  q:
    parent: p
    program: []
`),
    );
    expect(c.unsupported.map((u) => u.path)).toEqual([
      'host.sysctl',
      'host.modules',
      'processes.p.program[0].vhost-net',
      'processes.p.program[1].traffic',
      'processes.p.program[2].kill.target',
      'processes.p.program[3].write',
      'processes.p.program[4].exec',
      'processes.q.parent',
    ]);
    expect(c.unsupported[4]!.why).toMatch(/unrelated tasks/);
  });

  it('decodes ioctl read-backs as the model does', () => {
    const b = (hex: string) => new Uint8Array(Buffer.from(hex, 'hex'));
    expect(ioctlValueFromBytes(b('0100000000000000'), 8, '__u64')).toBe(1);
    expect(ioctlValueFromBytes(b('0000000007000000'), 8, 'vhost_vring_state')).toBe(7);
    expect(ioctlValueFromBytes(b('2a'), 1, '__u8')).toBe(42);
    expect(ioctlValueFromBytes(b('01'), 8, '__u64')).toBeUndefined();
  });
});

// ------------------------------------------------------------------ normalisation rules

describe('normalisation rules', () => {
  it('every rule has a description', () => {
    for (const [name, text] of Object.entries(RULES)) expect(text.length, name).toBeGreaterThan(20);
  });

  it('flags-identity-bits: compares the task-kind bits and names the rest', () => {
    expect(decodeFlags(0x404040)).toEqual({
      compared: 'PF_FORKNOEXEC|PF_USER_WORKER',
      ignored: ['PF_RANDOMIZE'],
    });
    expect(decodeFlags(0x208040)).toEqual({ compared: 'PF_FORKNOEXEC|PF_NOFREEZE|PF_KTHREAD', ignored: [] });
    expect(decodeFlags(0x400000)).toEqual({ compared: 'none', ignored: ['PF_RANDOMIZE'] });
    expect(decodeFlags(0x00800000).ignored).toEqual(['0x800000']);
  });

  it('cgroup-relative: paths under the probe base, its home and the root', () => {
    const real = { cgroup: { mode: 'v1', home: '/', base: '/vhostsim-probe-42' } };
    expect(normaliseCgroup('/vhostsim-probe-42/vm/vcpu0', real)).toBe('/vm/vcpu0');
    expect(normaliseCgroup('/vhostsim-probe-42', real)).toBe('/');
    expect(normaliseCgroup('/', real)).toBe('/');
    expect(normaliseCgroup('/system.slice', real)).toBe('host:/system.slice');
    const nested = { cgroup: { mode: 'v2', home: '/user.slice', base: '/user.slice/vhostsim-probe-7' } };
    expect(normaliseCgroup('/user.slice', nested)).toBe('/');
    expect(normaliseCgroup('/user.slice/vhostsim-probe-7/a', nested)).toBe('/a');
    expect(normaliseCgroup('/a', { cgroup: { mode: 'model', home: '/', base: '' } })).toBe('/a');
  });

  it('cpus-all, pids-events-max, nspid-depth', () => {
    expect(normaliseCpus('0-1', '0-1')).toBe('all');
    expect(normaliseCpus('1', '0-1')).toBe('1');
    expect(normalisePidsEvents('max 3\n')).toBe('max 3');
    expect(normalisePidsEvents('max 1\nmax.imposed 0\n')).toBe('max 1');
    expect(nspidDepth('4242')).toBe(1);
    expect(nspidDepth('4242 1')).toBe(2);
  });

  it('id-by-order, ppid-init and name-pid-suffix name tasks independently of pid numbers, across a pid wrap', () => {
    const c = compileScript(
      sc(`name: s
profiles: [linux-6.18]
processes:
  vmm:
    program:
      - threads: { count: 1 }
      - fork: { as: child }
      - label: l
`),
    );
    const task = (tid: number, tgid: number, ppid: number, name: string, flags = 0) => ({
      tid,
      tgid,
      ppid,
      uid: 0,
      comm: name.slice(0, 15),
      name,
      state: 'S',
      flags,
      cgroup: '/',
      cpus: '0-1',
      sigblk: '0',
      sigpnd: '0',
      shdpnd: '0',
      threads: 1,
      nspid: String(tid),
    });
    // pids near pid_max: the NX worker and the child got wrapped-around (small) numbers
    const o: Observation = {
      source: 'real',
      kernel: 'x',
      supervisor: { pid: 32700 },
      cpus: '0-1',
      pidMax: 32768,
      cgroup: { mode: 'v1', home: '/', base: '/b' },
      processes: { vmm: 32760 },
      steps: [
        { index: 0, tid: 32760, outcome: 'ok', value: 32765 },
        { index: 1, tid: 32760, outcome: 'ok', value: 310 },
      ],
      labels: {
        l: {
          tasks: [
            task(301, 32760, 32700, 'kvm-nx-lpage-re'),
            task(310, 310, 32760, 'vmm'),
            task(32760, 32760, 32700, 'vmm'),
            task(32765, 32760, 32700, 'vmm'),
            task(55, 55, 2, 'vhost-32760', 0x208040),
          ],
          cgroups: {},
          alive: ['vmm'],
          labeller: 32760,
        },
      },
      labelOrder: ['l'],
      ended: 'idle',
      errors: [],
      notes: [],
    };
    const ids = new IdMap(o, c);
    expect([32760, 32765, 301, 310, 55].map((t) => ids.id(t))).toEqual([
      'vmm',
      'vmm.1',
      'vmm.2',
      'vmm/child',
      'kthread:vhost-<vmm>',
    ]);
    expect([32700, 2, 32760, 12345].map((p) => ids.ppid(p))).toEqual(['init', 'kthreadd', 'vmm', 'other']);
    expect(ids.suffix('vhost-32765')).toBe('vhost-<vmm.1>');
    expect(ids.suffix('vhost-99999')).toBe('vhost-99999');
  });
});

// ------------------------------------------------------------------ observation and comparison

const FIRST_RUN = `name: s
profiles: [linux-6.18]
processes:
  vmm:
    program:
      - threads: { count: 1, name: "CPU 0/KVM" }
      - kvm: { as: vm }
      - sleep: 1ms
      - label: after-run
`;

/** The model's observation with every pid moved, as a real run would number them. */
function renumbered(o: Observation, shift: number): Observation {
  const m = (p: number) => (p > 2 ? p + shift : p === 1 ? 7000 : p);
  const copy: Observation = JSON.parse(JSON.stringify(o));
  copy.source = 'real';
  copy.supervisor = { pid: 7000, ns: { pid: 1, net: 2 } };
  copy.cgroup = { mode: 'v1', home: '/', base: '/vhostsim-probe-7000' };
  copy.cpus = '0-3';
  copy.processes = Object.fromEntries(Object.entries(o.processes).map(([k, v]) => [k, m(v)]));
  for (const s of copy.steps) {
    if (s.tid) s.tid = m(s.tid);
    if (s.value !== undefined && s.index === 0) s.value = m(s.value);
  }
  for (const l of Object.values(copy.labels)) {
    if (l.labeller) l.labeller = m(l.labeller);
    l.tasks = l.tasks.map((t) => ({
      ...t,
      tid: m(t.tid),
      tgid: m(t.tgid),
      ppid: m(t.ppid),
      cgroup: t.cgroup === '/' ? '/' : `/vhostsim-probe-7000${t.cgroup}`,
      flags: t.flags | 0x400000,
      nspid: String(m(t.tid)),
      ns: { pid: 1, net: 2 },
    }));
  }
  return copy;
}

describe('observations and comparison', () => {
  const loaded = sc(FIRST_RUN);
  const compiled = compileScript(loaded);
  const model = observeModel(runScenario(loaded, 'linux-6.18', { trace: false }), compiled, 4);

  it('observes the model run in the probe schema: the NX worker, the labeller, the end', () => {
    expect(model.labelOrder).toEqual(['after-run', 'end']);
    const l = model.labels['after-run']!;
    expect(l.tasks.map((t) => t.comm)).toEqual(['vmm', 'CPU 0/KVM', 'kvm-nx-lpage-re']);
    expect(l.labeller).toBe(model.processes.vmm);
    expect(l.tasks[2]).toMatchObject({ sigblk: 'fffffffffffbfeff', state: 'S', threads: 3 });
    expect(model.steps.map((s) => s.outcome)).toEqual(['ok', 'ok', 'ok', 'ok']);
    expect(model.labels.end!.tasks).toEqual([]);
  });

  it('a real run that differs only in numbering matches on every row', () => {
    const rows = compareObservations(model, renumbered(model, 5000), compiled);
    expect(rows.filter((r) => r.status === 'mismatch')).toEqual([]);
    expect(rows.filter((r) => r.status === 'unobservable')).toEqual([]);
    expect(rows.find((r) => r.observation === 'label after-run: vmm.2 ns')).toMatchObject({
      model: 'all init',
      real: 'all init',
      status: 'match',
    });
    expect(rows.find((r) => r.observation === 'label after-run: vmm.2 flags')).toMatchObject({
      model: 'PF_FORKNOEXEC|PF_USER_WORKER',
      real: 'PF_FORKNOEXEC|PF_USER_WORKER',
      note: 'real not compared: PF_RANDOMIZE',
    });
    expect(rows.find((r) => r.observation === 'step processes.vmm.program[0].threads value')).toMatchObject({
      model: 'vmm.1',
      real: 'vmm.1',
      status: 'match',
    });
  });

  it('a difference is a mismatch row naming the observation and both values', () => {
    const real = renumbered(model, 5000);
    real.labels['after-run']!.tasks[2]!.state = 'T';
    real.labels['after-run']!.tasks.pop();
    real.steps[1]!.outcome = 'EAGAIN';
    const bad = compareObservations(model, real, compiled).filter((r) => r.status === 'mismatch');
    expect(bad.map((r) => [r.observation, r.model, r.real])).toEqual([
      ['step processes.vmm.program[1].kvm', 'ok', 'EAGAIN'],
      ['label after-run: tasks', 'vmm, vmm.1, vmm.2', 'vmm, vmm.1'],
    ]);
  });

  it('an UNSUPPORTED step on the real side is not a pass', () => {
    const real = renumbered(model, 5000);
    real.steps[2]!.outcome = 'UNSUPPORTED:no such thing here';
    const row = compareObservations(model, real, compiled).find(
      (r) => r.observation === 'step processes.vmm.program[2].sleep',
    );
    expect(row).toMatchObject({ status: 'unobservable', match: false });
  });
});

// ------------------------------------------------------------------ the CLI

function cli(argv: string[]): { code: number; out: string; err: string } {
  let out = '';
  let err = '';
  const io: Io = {
    out: (s) => {
      out += s;
    },
    err: (s) => {
      err += s;
    },
    env: { NO_COLOR: '1' },
    stdoutIsTTY: false,
    stderrIsTTY: false,
    now: () => 0,
  };
  return { code: main(argv, io), out, err };
}

describe('vhostsim conform', () => {
  it('--script prints the probe script of a scenario', () => {
    const r = cli(['conform', join(SCENARIOS, 'nx-first-run.yaml'), '--script']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^vhostsim-probe 1$/m);
    expect(r.out).toMatch(/^ {2}\d+ kvm vm2 2 1$/m);
  });

  it('an unknown --kernel is a usage error', () => {
    const r = cli(['conform', join(SCENARIOS, 'nx-first-run.yaml'), '--kernel', 'debian-5.10']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/Allowed choices are host, debian-6\.1, debian-6\.12/);
  });

  it('a scenario the probe cannot run is reported as skipped (exit 4), never as passed', () => {
    const r = cli(['conform', join(ROOT, 'scenarios', 'default.yaml'), '--kernel', 'host']);
    expect(r.code).toBe(4);
    expect(r.out).toMatch(/SKIPPED — the probe cannot run/);
    expect(r.out).toMatch(/0 matched, 0 mismatched, 1 skipped/);
  });
});

// ------------------------------------------------------------------ the scenarios themselves

describe('conformance scenarios', () => {
  for (const f of yamls(SCENARIOS)) {
    const name = f.slice(ROOT.length);
    it(`${name} runs on the model (linux-6.18) with its checks holding, and compiles for the probe`, () => {
      const s = loadScenario(f);
      expect(runScenario(s, 'linux-6.18', { trace: false }).failures).toEqual([]);
      const c = compileScript(s);
      expect(c.unsupported).toEqual([]);
      // the host provides /dev/kvm and io_uring, nothing else (no /dev/vhost-*)
      expect(c.needs.filter((n) => n !== 'kvm')).toEqual([]);
    });
  }
});

// ------------------------------------------------------------------ the host kernel

/** Why the host target cannot run here (checked once, when the tests are collected). */
function hostUnavailable(): string | undefined {
  const why = hostSkipReason({ needs: ['kvm'] });
  if (why) return why;
  const b = buildProbe();
  return b.ok ? undefined : b.skipped;
}
const hostWhy = hostUnavailable();
const profile = hostKernel().profile;

describe(`the host kernel (${hostKernel().release}) against the model (${profile})`, () => {
  const files = yamls(SCENARIOS);
  it('has the scenarios of kernel-spec §10 items 1–17 and 20 that the host can show', () => {
    expect(files.length).toBeGreaterThanOrEqual(12);
  });
  for (const f of files) {
    const name = f.slice(SCENARIOS.length + 1);
    if (hostWhy) {
      it.skip(`${name}: SKIPPED — ${hostWhy}`, () => {});
      continue;
    }
    it(`${name}: every observation matches`, () => {
      const r = conformScenario(loadScenario(f), 'host');
      expect(r.skipped).toBeUndefined();
      expect(r.errors).toEqual([]);
      const bad = r.rows
        .filter((x) => x.status === 'mismatch')
        .map((x) => `${x.observation}: model ${x.model}, real ${x.real}`);
      expect(bad).toEqual([]);
      expect(r.rows.filter((x) => x.status === 'match').length).toBeGreaterThan(20);
    });
  }
});
