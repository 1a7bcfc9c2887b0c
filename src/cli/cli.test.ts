import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FAILING_SCENARIO, QEMU_SCENARIO } from '../views/fixtures.js';
import { Progress } from './common.js';
import type { Io } from './io.js';
import { main } from './program.js';

const dir = mkdtempSync(join(tmpdir(), 'vhostsim-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
const GOOD = file('good.yaml', QEMU_SCENARIO);
const FAILING = file('failing.yaml', FAILING_SCENARIO);
const BROKEN = file(
  'broken.yaml',
  'name: broken\nprofiles: [linux-6.12]\nprocesses:\n  qemu:\n    program:\n      - opne: { path: /dev/vhost-net, as: net0 }\n',
);

interface Captured {
  code: number;
  out: string;
  err: string;
}

function run(argv: string[], o: Partial<Io> = {}): Captured {
  let out = '';
  let err = '';
  const io: Io = {
    out: (s) => {
      out += s;
    },
    err: (s) => {
      err += s;
    },
    env: {},
    stdoutIsTTY: false,
    stderrIsTTY: false,
    now: () => 0,
    ...o,
  };
  const code = main(argv, io);
  return { code, out, err };
}

describe('exit statuses', () => {
  it('run exits 0 when every expectation and check holds', () => {
    const r = run(['run', GOOD]);
    expect(r.code).toBe(0);
    expect(r.out).toContain('summary: linux-5.15 ok, linux-6.12 ok');
    expect(r.err).toBe('');
  });

  it('run exits 1 when an expectation fails, and says which', () => {
    const r = run(['run', FAILING]);
    expect(r.code).toBe(1);
    expect(r.out).toContain('ioctl net0 VHOST_SET_OWNER returned ok, expected ENOMEM (linux-6.12)');
  });

  it('run of one profile checks only that profile', () => {
    expect(run(['run', FAILING, '--profile', 'linux-5.15']).code).toBe(0);
  });

  it('compare exits 1 when an expectation fails on any profile', () => {
    expect(run(['compare', FAILING]).code).toBe(1);
    expect(run(['compare', GOOD]).code).toBe(0);
  });

  it('a scenario error exits 2 and prints its file:line:col lines on stderr', () => {
    const r = run(['run', BROKEN]);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err.split('\n')).toHaveLength(2);
    expect(r.err).toMatch(
      new RegExp(`^${BROKEN.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:6:9: error: expected a step \\(`),
    );
    expect(r.err).toContain('found "opne" (at processes.qemu.program[0].opne); did you mean "open"?\n');
  });

  it('a missing scenario file exits 2', () => {
    const r = run(['run', join(dir, 'nope.yaml')]);
    expect(r.code).toBe(2);
    expect(r.err).toContain('nope.yaml:1:1: error: expected a readable file, found ENOENT');
  });

  it('a label that exists but was not reached exits 1', () => {
    const early = file(
      'early.yaml',
      QEMU_SCENARIO.replace('      - label: running\n', '      - exit_group: 0\n      - label: running\n'),
    );
    const r = run(['ps', early, '--at', 'running', '--profile', 'linux-6.12']);
    expect(r.code).toBe(1);
    expect(r.err).toBe('vhostsim: label "running" was not reached on linux-6.12 (reached: end)\n');
  });
});

describe('bad flags and names', () => {
  it('names a mistyped flag and suggests the right one', () => {
    const r = run(['run', GOOD, '--profle', 'linux-6.12']);
    expect(r.code).toBe(2);
    expect(r.err).toBe("error: unknown option '--profle'\n(Did you mean --profile?)\n");
  });

  it('names an unknown profile and suggests the closest', () => {
    const r = run(['run', GOOD, '--profile', 'linux-6.21']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(
      /^vhostsim: unknown profile "linux-6\.21" in --profile \(did you mean "linux-6\.1"\?\)\nknown profiles: linux-5\.10, linux-5\.15, /,
    );
  });

  it('names an unknown profile in --profiles of compare', () => {
    const r = run(['compare', GOOD, '--profiles', 'linux-5.15,linux-6.12x']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('unknown profile "linux-6.12x" in --profiles (did you mean "linux-6.12"?)');
  });

  it('runs a known profile the scenario does not list, with a note', () => {
    const r = run(['run', GOOD, '--profile', 'linux-6.1']);
    expect(r.code).toBe(0);
    expect(r.err).toContain('note: linux-6.1 is not among the profiles');
  });

  it('names a mistyped command and suggests the right one', () => {
    const r = run(['rn', GOOD]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^error: unknown command 'rn'\n\(Did you mean run\?\)\n/);
  });

  it('suggests the closest label for an unknown --at', () => {
    const r = run(['pstree', GOOD, '--at', 'runing']);
    expect(r.code).toBe(2);
    expect(r.err).toBe(
      `vhostsim: unknown label "runing" in --at (did you mean "running"?)\nlabels of ${GOOD}: running, end\n`,
    );
  });

  it('requires --at for the snapshot views', () => {
    const r = run(['ps', GOOD]);
    expect(r.code).toBe(2);
    expect(r.err).toBe("error: required option '--at <label>' not specified\n");
  });

  it('refuses a seed that is not a number and a format that does not exist', () => {
    expect(run(['run', GOOD, '--seed', 'x']).code).toBe(2);
    const r = run(['trace', GOOD, '--format', 'json']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('Allowed choices are ftrace, chrome.');
  });

  it('suggests a scenario process for a mistyped proc name', () => {
    const r = run(['proc', GOOD, 'qemo', '--at', 'running', '--profile', 'linux-6.12']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('no process or task named "qemo" at running (did you mean "qemu"?)');
  });
});

describe('--version', () => {
  it('prints the package version', () => {
    const r = run(['--version']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^\d+\.\d+\.\d+\n$/);
  });
});

describe('--json', () => {
  it('run prints parseable results without the kernel', () => {
    const r = run(['run', FAILING, '--json']);
    const j = JSON.parse(r.out);
    expect(r.code).toBe(1);
    expect(j.ok).toBe(false);
    expect(j.results.map((x: { profile: string }) => x.profile)).toEqual(['linux-5.15', 'linux-6.12']);
    expect(j.results[1].failures).toHaveLength(1);
    expect(j.results[0].kernel).toBeUndefined();
  });

  it('every view and listing prints parseable JSON', () => {
    const at = ['--at', 'running', '--profile', 'linux-6.12', '--json'];
    const cases: [string[], (j: unknown) => void][] = [
      [['compare', GOOD, '--json'], (j) => expect((j as { profiles: string[] }).profiles).toHaveLength(2)],
      [['ps', GOOD, ...at], (j) => expect((j as { rows: unknown[] }[])[0]!.rows.length).toBeGreaterThan(3)],
      [
        ['ps', GOOD, '--processes', ...at],
        (j) => expect((j as { rows: { pid: number }[] }[])[0]!.rows.map((r) => r.pid)).toEqual([1, 2, 3, 6]),
      ],
      [
        ['pstree', GOOD, ...at],
        (j) => expect((j as { trees: { pid: number }[] }[])[0]!.trees.map((t) => t.pid)).toEqual([1, 2]),
      ],
      [['cgroups', GOOD, ...at], (j) => expect((j as { tree: { path: string } }[])[0]!.tree.path).toBe('/')],
      [['proc', GOOD, 'qemu', ...at], (j) => expect((j as { files: unknown[] }[])[0]!.files).toHaveLength(4)],
      [
        ['trace', GOOD, '--profile', 'linux-6.12', '--json'],
        (j) => expect((j as { events: unknown[] }).events.length).toBeGreaterThan(10),
      ],
      [
        ['trace', GOOD, '--profile', 'linux-6.12', '--format', 'chrome'],
        (j) => expect((j as { traceEvents: unknown[] }).traceEvents.length).toBeGreaterThan(10),
      ],
      [
        ['profiles', '--json'],
        (j) => expect((j as { name: string }[]).map((p) => p.name)).toContain('linux-6.12'),
      ],
      [['schema'], (j) => expect((j as { type: string }).type).toBe('object')],
    ];
    for (const [argv, check] of cases) {
      const r = run(argv);
      expect(r.code, argv.join(' ')).toBe(0);
      check(JSON.parse(r.out));
    }
  });

  it('a scenario error with --json also prints the issues as JSON on stdout', () => {
    const r = run(['run', BROKEN, '--json']);
    expect(r.code).toBe(2);
    const j = JSON.parse(r.out);
    expect(j.issues[0]).toMatchObject({
      code: 'unknown-step',
      line: 6,
      col: 9,
      hint: 'did you mean "open"?',
    });
  });
});

describe('views', () => {
  it('prints one section per profile, each under a # profile at label line', () => {
    const r = run(['pstree', GOOD, '--at', 'running']);
    expect(r.code).toBe(0);
    expect(r.out).toBe(
      [
        '# linux-5.15 at running',
        'init(1)───qemu(3)─┬─qemu(6)',
        '                  ├─{CPU 0/KVM}(4)',
        '                  └─{CPU 1/KVM}(5)',
        'kthreadd(2)───vhost-3(7)',
        '',
        '# linux-6.12 at running',
        'init(1)───qemu(3)─┬─qemu(6)',
        '                  ├─{CPU 0/KVM}(4)',
        '                  ├─{CPU 1/KVM}(5)',
        '                  └─{vhost-3}(7)',
        'kthreadd(2)',
        '',
      ].join('\n'),
    );
  });

  it('prints ps -eLf by default and ps aux with --processes', () => {
    const at = ['--at', 'running', '--profile', 'linux-5.15'];
    expect(run(['ps', GOOD, ...at]).out.split('\n')[0]).toBe(
      'UID          PID    PPID     LWP  C NLWP STIME TTY          TIME CMD',
    );
    expect(run(['ps', GOOD, '--processes', ...at]).out.split('\n')[0]).toBe(
      'USER         PID %CPU %MEM    VSZ   RSS TTY      STAT START   TIME COMMAND',
    );
  });

  it("prints one task's status with --pid, and the cgroup tree without tasks with --no-tasks", () => {
    const at = ['--at', 'running', '--profile', 'linux-6.12'];
    expect(run(['proc', GOOD, '--pid', '7', ...at]).out).toMatch(/^Name:\tvhost-3\n/);
    const cg = run(['cgroups', GOOD, '--no-tasks', ...at]).out;
    expect(cg).not.toContain('qemu');
    expect(cg.trimEnd().split('\n')).toHaveLength(4);
  });
});

describe('trace --output', () => {
  it('writes the Chrome trace to the file and nothing to stdout', () => {
    const out = join(dir, 'trace.json');
    const r = run(['trace', GOOD, '--format', 'chrome', '--output', out]);
    expect(r.code).toBe(0);
    expect(r.out).toBe('');
    expect(r.err).toBe('vhostsim: tracing linux-5.15, the first of 2 profiles (--profile to choose)\n');
    expect(JSON.parse(readFileSync(out, 'utf8')).otherData).toMatchObject({ profile: 'linux-5.15', seed: 1 });
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('does not create the file when the scenario is bad, the profile unknown or the directory missing', () => {
    const out = join(dir, 'never.json');
    expect(run(['trace', BROKEN, '--output', out]).code).toBe(2);
    expect(run(['trace', GOOD, '--profile', 'linux-9', '--output', out]).code).toBe(2);
    expect(existsSync(out)).toBe(false);
    const r = run(['trace', GOOD, '--output', join(dir, 'missing', 'x.txt')]);
    expect(r.code).toBe(2);
    expect(r.err).toContain('cannot write');
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('leaves an existing file untouched when the run fails', () => {
    const out = file('keep.txt', 'old\n');
    expect(run(['trace', GOOD, '--profile', 'nope', '--output', out]).code).toBe(2);
    expect(readFileSync(out, 'utf8')).toBe('old\n');
  });

  it('writes ftrace text by default', () => {
    const out = join(dir, 'trace.txt');
    expect(run(['trace', GOOD, '--profile', 'linux-6.12', '--output', out]).code).toBe(0);
    expect(readFileSync(out, 'utf8')).toMatch(/^# tracer: nop\n/);
  });
});

describe('progress and colour', () => {
  it('reports a run that took longer than a second on stderr, once it is done', () => {
    let t = 0;
    const r = run(['run', GOOD, '--profile', 'linux-6.12'], { now: () => (t += 1300) });
    expect(r.err).toBe('running linux-6.12… done in 1.3 s\n');
  });

  it('says nothing about runs within a second when stderr is not a terminal', () => {
    expect(run(['run', GOOD]).err).toBe('');
  });

  it('on a terminal shows the run while it goes and erases the line if it was quick', () => {
    let err = '';
    const io = {
      out: () => {},
      err: (s: string) => (err += s),
      env: {},
      stdoutIsTTY: false,
      stderrIsTTY: true,
      now: () => 0,
    };
    new Progress(io).run('linux-6.12', () => 1);
    expect(err).toBe('running linux-6.12… \r\u001b[K');
  });

  it('colours only on a terminal and never with NO_COLOR', () => {
    const argv = ['run', GOOD, '--profile', 'linux-6.12'];
    expect(run(argv, { stdoutIsTTY: true }).out).toContain('\u001b[');
    expect(run(argv, { stdoutIsTTY: true, env: { NO_COLOR: '1' } }).out).not.toContain('\u001b[');
    expect(run(argv).out).not.toContain('\u001b[');
  });
});

describe('the entry point', () => {
  it('does nothing when imported', async () => {
    const before = process.exitCode;
    await import('./main.js');
    expect(process.exitCode).toBe(before);
  });

  it('sets the process exit status when run as a command', () => {
    const r = spawnSync('npx', ['tsx', 'src/cli/main.ts', 'run', FAILING], {
      encoding: 'utf8',
      cwd: process.cwd(),
    });
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('summary: linux-5.15 ok, linux-6.12 1 failed');
  }, 30_000);
});

describe('every malformed scenario in scenarios/bad', () => {
  const badDir = join(import.meta.dirname, '..', '..', 'scenarios', 'bad');
  const files = readdirSync(badDir).filter((f) => f.endsWith('.yaml'));

  it('there are at least 12 of them', () => {
    expect(files.length).toBeGreaterThanOrEqual(12);
  });

  it.each(files)('%s gives one located error line, exits 2 and writes no output file', (name) => {
    const path = join(badDir, name);
    const out = join(dir, `${name}.trace`);
    const r = run(['trace', path, '--output', out]);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    const lines = r.err.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: error: expected .+, found .+`),
    );
    expect(existsSync(out)).toBe(false);
    expect(run(['run', path]).code).toBe(2);
  });
});
