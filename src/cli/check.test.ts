/** `vhostsim check` and `vhostsim replay`, run in-process. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { Io } from './io.js';
import { main } from './program.js';

const dir = mkdtempSync(join(tmpdir(), 'vhostsim-check-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const LOST = fileURLToPath(new URL('../../scenarios/races/lost-wakeup.yaml', import.meta.url));

function run(argv: string[]): { code: number; out: string; err: string } {
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
  };
  return { code: main(argv, io), out, err };
}

describe('vhostsim check', () => {
  const replayFile = join(dir, 'cx.json');
  const found = run(['check', LOST, '--profile', 'linux-6.4-rc5', '--output', replayFile]);

  it('exits 1 with the counterexample, its interleaving and the replay file', () => {
    expect(found.code).toBe(1);
    expect(found.out).toContain('counterexample found after 2 executions');
    expect(found.out).toContain('deadlock: qemu-3 waits on completion vhost_task.exited');
    expect(found.out).toContain('choices (7, shrunk from 7 in 3 runs, 0.00 s): [0, 0, 0, 0, 0, 0, 1]');
    expect(found.out).toContain('← choice #6: preempts vhost-3-4');
    const rf = JSON.parse(readFileSync(replayFile, 'utf8'));
    expect(rf).toMatchObject({
      format: 'vhostsim-replay',
      profile: 'linux-6.4-rc5',
      choices: [0, 0, 0, 0, 0, 0, 1],
      violation: { kind: 'deadlock' },
    });
  });

  it('exits 0 on linux-6.4, saying the bounded search was complete', () => {
    const r = run(['check', LOST, '--profile', 'linux-6.4']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('no violation found');
    expect(r.out).toContain('complete: every execution with at most 2 preemptions was explored');
  });

  it('--json prints a summary', () => {
    const r = run([
      'check',
      LOST,
      '--profile',
      'linux-6.4-rc5',
      '--strategy',
      'random',
      '--runs',
      '50',
      '--json',
    ]);
    expect(r.code).toBe(1);
    const j = JSON.parse(r.out);
    expect(j).toMatchObject({
      scenario: 'lost-wakeup',
      profile: 'linux-6.4-rc5',
      strategy: 'random',
      verdict: 'violation',
      bounds: { runs: 50, seed: 1, faults: [] },
      counterexample: { violation: { kind: 'deadlock' } },
    });
    const clean = JSON.parse(run(['check', LOST, '--profile', 'linux-6.4', '--json']).out);
    expect(clean).toMatchObject({ verdict: 'ok', complete: true, executions: 115 });
  });

  it('exits 2 on bad input', () => {
    expect(run(['check', LOST]).code).toBe(2); // two profiles: --profile needed
    expect(run(['check', LOST, '--profile', 'linux-6.4-rc6']).code).toBe(2);
    expect(run(['check', LOST, '--profile', 'linux-6.4', '--strategy', 'bfs']).code).toBe(2);
    expect(run(['check', LOST, '--profile', 'linux-6.4', '--runs', '0']).code).toBe(2);
    expect(run(['check', LOST, '--profile', 'linux-6.4', '--faults', 'signal']).code).toBe(2);
    expect(run(['check', join(dir, 'missing.yaml'), '--profile', 'linux-6.4']).code).toBe(2);
  });

  it('replay reproduces it (exit 1) and exports the same trace every time', () => {
    const r = run(['replay', replayFile]);
    expect(r.code).toBe(1);
    expect(r.out).toContain('reproduced: deadlock: qemu-3 waits on completion vhost_task.exited');
    const a = run(['replay', replayFile, '--format', 'ftrace']);
    const b = run(['replay', replayFile, '--format', 'ftrace']);
    expect(a.code).toBe(1);
    expect(a.out).toBe(b.out);
    expect(a.out.startsWith('# tracer: nop')).toBe(true);
    expect(a.err).toContain('reproduced');
    const out = join(dir, 'trace.json');
    expect(run(['replay', replayFile, '--format', 'chrome', '--output', out]).code).toBe(1);
    expect(JSON.parse(readFileSync(out, 'utf8')).otherData).toMatchObject({
      scenario: 'lost-wakeup',
      profile: 'linux-6.4-rc5',
    });
  });

  it('replay says so when the counterexample no longer fails (exit 0), and rejects bad files (exit 2)', () => {
    const rf = JSON.parse(readFileSync(replayFile, 'utf8'));
    const stale = join(dir, 'stale.json');
    writeFileSync(stale, JSON.stringify({ ...rf, scenario: LOST, profile: 'linux-6.4' }));
    const r = run(['replay', stale]);
    expect(r.code).toBe(0);
    expect(r.out).toContain('did not reproduce');
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{"format":"something"}');
    expect(run(['replay', bad]).code).toBe(2);
    expect(run(['replay', join(dir, 'nope.json')]).code).toBe(2);
  });
});

describe('vhostsim check --param', () => {
  const KICKS = fileURLToPath(new URL('../../scenarios/races/lost-wakeup-kicks.yaml', import.meta.url));
  const replayFile = join(dir, 'kicks.json');

  it("sets the scenario's parameters, names them in the output and records them in the replay file", () => {
    const r = run([
      'check',
      KICKS,
      '--profile',
      'linux-6.4-rc5',
      '--param',
      'N=2',
      '--param',
      'K=2',
      '--output',
      replayFile,
    ]);
    expect(r.code).toBe(1);
    expect(r.out).toContain('vhostsim check lost-wakeup-kicks [N=2 K=2] on linux-6.4-rc5');
    expect(JSON.parse(readFileSync(replayFile, 'utf8')).params).toEqual({ N: 2, K: 2 });
    // replayed with the same parameters: two kick threads, four kicks
    const t = run(['replay', replayFile, '--format', 'ftrace']);
    expect(t.code).toBe(1);
    expect(t.out.match(/scenario_step: eventfd-write kick 1 = ok/g)).toHaveLength(4);
    const j = JSON.parse(run(['check', KICKS, '--profile', 'linux-6.4-rc5', '--param', 'K=3', '--json']).out);
    expect(j.params).toEqual({ N: 1, K: 3 });
  });

  it('exits 2 for a parameter the scenario does not declare, or a value that is not a count', () => {
    const r = run(['check', KICKS, '--profile', 'linux-6.4', '--param', 'M=2']);
    expect(r.code).toBe(2);
    expect(r.err).toContain(
      'expected a parameter declared in "params" (N, K), found "M" (set from outside the file)',
    );
    expect(run(['check', KICKS, '--profile', 'linux-6.4', '--param', 'N=two']).code).toBe(2);
    expect(run(['check', LOST, '--profile', 'linux-6.4', '--param', 'N=2']).code).toBe(2);
  });
});
