/**
 * Malformed scenario files (scenarios/bad/*.yaml): each is refused with exactly one located
 * issue, `<file>:<line>:<col>: error: expected …, found …`, at the place a reader would fix.
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { formatIssue, ScenarioError, type ScenarioErrorCode } from './errors.js';
import { loadScenario, parseScenario } from './load.js';
import { STEP_NAMES, scenarioJsonSchema } from './schema.js';

const BAD = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'scenarios', 'bad');

interface BadCase {
  /** the test name: a fact about the loader */
  readonly fact: string;
  readonly file: string;
  readonly line: number;
  readonly col: number;
  readonly code: ScenarioErrorCode;
  /** must appear in the formatted message */
  readonly says: readonly string[];
}

const CASES: readonly BadCase[] = [
  {
    fact: 'a YAML syntax error is reported where the parser stopped, as invalid YAML',
    file: 'yaml-syntax-error.yaml',
    line: 7,
    col: 33,
    code: 'yaml-syntax',
    says: ['expected valid YAML', 'found Block collections are not allowed within flow collections'],
  },
  {
    fact: 'an unknown step is reported at its key with the closest step name as a hint',
    file: 'unknown-step.yaml',
    line: 7,
    col: 9,
    code: 'unknown-step',
    says: ['expected a step (threads, ', 'found "ioctel"', 'did you mean "ioctl"?'],
  },
  {
    fact: 'a word where a count belongs is reported at the value as the wrong type',
    file: 'wrong-type.yaml',
    line: 6,
    col: 27,
    code: 'wrong-type',
    says: ['expected number, found "four"', '(at processes.qemu.program[0].threads.count)'],
  },
  {
    fact: 'an unknown kernel profile is reported at its list item with the closest profile as a hint',
    file: 'unknown-profile.yaml',
    line: 2,
    col: 24,
    code: 'unknown-profile',
    says: ['expected a kernel profile', 'found "linux-6.13"', 'did you mean "linux-6.1"?'],
  },
  {
    fact: 'an unknown ioctl name is reported at cmd with the closest ioctl as a hint',
    file: 'unknown-ioctl.yaml',
    line: 7,
    col: 33,
    code: 'unknown-ioctl',
    says: ['expected an ioctl name', 'found "VHOST_SET_OWNR"', 'did you mean "VHOST_SET_OWNER"?'],
  },
  {
    fact: 'a negative pids.max is reported at the value as below zero',
    file: 'negative-limit.yaml',
    line: 6,
    col: 17,
    code: 'bad-value',
    says: ['expected number to be >=0, found -4', '(at host.cgroups./machine.slice/vm1.pids.max)'],
  },
  {
    fact: 'a non-numeric RLIMIT_NPROC is reported at the value with every accepted form',
    file: 'non-numeric-limit.yaml',
    line: 7,
    col: 14,
    code: 'wrong-type',
    says: ['expected number or "max" or "unlimited" or object, found "lots"'],
  },
  {
    fact: 'an fd alias no earlier step defined is reported at the fd, naming the aliases that exist',
    file: 'unknown-fd-alias.yaml',
    line: 7,
    col: 22,
    code: 'unknown-alias',
    says: ['expected an alias defined earlier (net0), found "net1"', 'did you mean "net0"?'],
  },
  {
    fact: 'kvm_run on an alias that is not a VM from a kvm step is reported at the alias',
    file: 'kvm-run-not-a-vm.yaml',
    line: 7,
    col: 24,
    code: 'bad-value',
    says: ['expected a kvm alias, found "kvmfd", a fd'],
  },
  {
    fact: 'waiting for a label that no step sets is reported at the wait',
    file: 'unknown-label.yaml',
    line: 7,
    col: 15,
    code: 'unknown-label',
    says: ['expected a label set by a `label:` step, found "stopped"'],
  },
  {
    fact: 'a process name used twice is reported at its second occurrence',
    file: 'duplicate-process.yaml',
    line: 7,
    col: 3,
    code: 'duplicate',
    says: ['expected each key once', 'found "qemu" a second time'],
  },
  {
    fact: 'an ioctl argument without a required struct field is reported at the argument, naming field and struct',
    file: 'missing-struct-field.yaml',
    line: 8,
    col: 59,
    code: 'missing-field',
    says: ['expected field "num" of struct vhost_vring_state', 'found a mapping with keys index'],
  },
  {
    fact: 'an expectation for a profile the scenario does not run is reported at that profile key',
    file: 'expect-profile-not-run.yaml',
    line: 8,
    col: 52,
    code: 'profile-not-run',
    says: ['expected a profile listed in "profiles" (linux-5.15, linux-6.12)', 'found "linux-6.17-kthread"'],
  },
  {
    fact: 'checks for a profile the scenario does not run are reported at that profile key',
    file: 'check-profile-not-run.yaml',
    line: 10,
    col: 7,
    code: 'profile-not-run',
    says: ['found "linux-6.1", which this scenario does not run', '(at checks.running.linux-6.1)'],
  },
  {
    fact: 'an empty file is reported at 1:1 as an empty file',
    file: 'empty.yaml',
    line: 1,
    col: 1,
    code: 'empty-file',
    says: ['expected a scenario (name, profiles, processes), found an empty file'],
  },
  {
    fact: 'a misspelt host key is reported at the key as unknown',
    file: 'unknown-key.yaml',
    line: 5,
    col: 3,
    code: 'unknown-key',
    says: ['found unknown key "cgroup"', '(at host.cgroup)'],
  },
  {
    fact: 'an expected outcome that is neither ok nor an errno name is reported at the expectation',
    file: 'unknown-errno.yaml',
    line: 8,
    col: 17,
    code: 'bad-value',
    says: ['expected "ok" or an errno name such as EAGAIN, found "EBUSYY"'],
  },
  {
    fact: 'a parameter reference that names no declared parameter is reported at the value with the closest name',
    file: 'unknown-parameter.yaml',
    line: 7,
    col: 27,
    code: 'unknown-parameter',
    says: ['expected a parameter declared in "params" (N, K)', 'found "$M"', 'did you mean "$N"?'],
  },
  {
    fact: 'an io_uring operation that is not modelled is reported at op with the operations there are',
    file: 'iouring-unknown-op.yaml',
    line: 7,
    col: 44,
    code: 'bad-value',
    says: [
      'expected one of "nop", "read", "write", found "readv"',
      '(at processes.app.program[1].io_uring_submit.op)',
    ],
  },
  {
    fact: 'an io_uring read without a file is reported at the submit step as a missing fd',
    file: 'iouring-read-without-fd.yaml',
    line: 7,
    col: 26,
    code: 'missing-field',
    says: ['expected field "fd" (the file to read)', 'found a mapping with keys ring, op, async'],
  },
  {
    fact: 'an fd alias given where an io_uring belongs is reported at ring, naming what the alias is',
    file: 'iouring-ring-not-a-ring.yaml',
    line: 7,
    col: 36,
    code: 'bad-value',
    says: ['expected a io_uring alias, found "pr", a fd'],
  },
];

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function refusal(path: string): ScenarioError {
  try {
    loadScenario(path);
  } catch (e) {
    if (e instanceof ScenarioError) return e;
    throw e;
  }
  throw new Error(`${path} loaded without an error`);
}

describe('loadScenario refuses a malformed file with one located error', () => {
  it.each(CASES)('$fact', (c) => {
    const path = join(BAD, c.file);
    const e = refusal(path);
    expect(e.file).toBe(path);
    expect(e.issues).toHaveLength(1);
    const issue = e.issues[0]!;
    expect(issue.code).toBe(c.code);
    const message = formatIssue(path, issue);
    expect(message).toMatch(
      new RegExp(`^${escapeRe(path)}:${c.line}:${c.col}: error: expected .*, found .*`),
    );
    expect(e.message).toBe(message);
    for (const s of c.says) expect(message).toContain(s);
  });

  it('has a test for every file in scenarios/bad, and at least twelve of them', () => {
    const files = readdirSync(BAD).filter((f) => f.endsWith('.yaml'));
    expect(files.sort()).toEqual(CASES.map((c) => c.file).sort());
    expect(files.length).toBeGreaterThanOrEqual(12);
  });
});

describe('loadScenario', () => {
  it('reports a file that cannot be read at 1:1 with the system error', () => {
    const e = refusal(join(BAD, 'no-such-file.yaml'));
    expect(e.issues).toHaveLength(1);
    expect(e.message).toMatch(/no-such-file\.yaml:1:1: error: expected a readable file, found ENOENT$/);
  });

  it('accepts a well-formed scenario and keeps its document', () => {
    const sc = parseScenario(
      [
        'name: ok',
        'profiles: [linux-6.12]',
        'processes:',
        '  qemu:',
        '    program:',
        '      - open: { path: /dev/vhost-net, as: net0 }',
        '      - ioctl: { fd: net0, cmd: VHOST_SET_OWNER }',
        '        expect: ok',
      ].join('\n'),
      'inline.yaml',
    );
    expect(sc.doc.name).toBe('ok');
    expect(sc.doc.processes.qemu!.program).toHaveLength(2);
  });
});

describe('scenarioJsonSchema', () => {
  const schema = scenarioJsonSchema() as Record<string, unknown>;

  it('is plain JSON (it survives a JSON round trip unchanged)', () => {
    const text = JSON.stringify(schema);
    expect(JSON.parse(text)).toEqual(schema);
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(schema.type).toBe('object');
  });

  it('offers exactly the step names for a process program', () => {
    type Obj = { properties?: Record<string, Obj>; additionalProperties?: Obj; items?: Obj; anyOf?: Obj[] };
    const processes = (schema as Obj).properties!.processes!;
    const program = processes.additionalProperties!.properties!.program!;
    const steps = program.items!.anyOf!;
    const names = steps.map((s) => Object.keys(s.properties!).filter((k) => k !== 'expect'));
    expect(names.every((n) => n.length === 1)).toBe(true);
    expect(names.flat().sort()).toEqual([...STEP_NAMES].sort());
    const text = JSON.stringify(schema);
    for (const n of ['vhost-net', 'ioctl', 'freezer', 'traffic']) expect(text).toContain(`"${n}"`);
  });
});

describe('scenario parameters', () => {
  const text = [
    'name: p',
    'profiles: [linux-6.12]',
    'params: { N: 2, K: 1 }',
    'processes:',
    '  qemu:',
    '    program:',
    '      - threads:',
    '          count: $N',
    '          program: [{ loop: { count: $K, steps: [{ compute: 1ms }] } }]',
    '',
  ].join('\n');
  const threads = (sc: ReturnType<typeof parseScenario>) =>
    sc.doc.processes.qemu!.program[0]!.threads as { count: number; program: { loop: { count: number } }[] };

  it('replaces each $NAME by its default, and an override replaces the default', () => {
    const d = parseScenario(text, 'p.yaml');
    expect(d.params).toEqual({ N: 2, K: 1 });
    expect(threads(d).count).toBe(2);
    expect(threads(d).program[0]!.loop.count).toBe(1);
    const o = parseScenario(text, 'p.yaml', { K: 3 });
    expect(o.params).toEqual({ N: 2, K: 3 });
    expect(threads(o).program[0]!.loop.count).toBe(3);
  });

  it('refuses an override of an undeclared parameter at params, naming the declared ones', () => {
    const e = (() => {
      try {
        parseScenario(text, 'p.yaml', { Q: 1 });
      } catch (err) {
        return err as ScenarioError;
      }
      throw new Error('loaded');
    })();
    expect(e.issues.map((i) => i.code)).toEqual(['unknown-parameter']);
    expect(e.message).toBe(
      'p.yaml:3:9: error: expected a parameter declared in "params" (N, K), found "Q" (set from outside the file) (at params); did you mean "N"?',
    );
  });

  it('checks a substituted value like a written one: N = 0 threads is refused where $N stands', () => {
    expect(() => parseScenario(text, 'p.yaml', { N: 0 })).toThrow(/^p\.yaml:8:18: error: expected .*found 0/);
  });

  it('a file without params has none in effect', () => {
    const sc = parseScenario(
      'name: q\nprofiles: [linux-6.12]\nprocesses: { a: { program: [] } }\n',
      'q.yaml',
    );
    expect(sc.params).toBeUndefined();
  });
});
