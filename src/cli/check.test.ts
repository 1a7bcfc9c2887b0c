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

function run(
  argv: string[],
  o: { tty?: boolean; tickMs?: number } = {},
): { code: number; out: string; err: string } {
  let out = '';
  let err = '';
  let clock = 0;
  const io: Io = {
    out: (s) => {
      out += s;
    },
    err: (s) => {
      err += s;
    },
    env: {},
    stdoutIsTTY: false,
    stderrIsTTY: o.tty ?? false,
    // a clock that advances on every reading, so that progress lines are due
    now: () => (clock += o.tickMs ?? 0),
  };
  return { code: main(argv, io), out, err };
}

describe('vhostsim check', { timeout: 60_000 }, () => {
  const replayFile = join(dir, 'cx.json');
  const found = run(['check', LOST, '--profile', 'linux-6.4-rc5', '--output', replayFile]);

  it('exits 1 with the counterexample, its interleaving and the replay file', () => {
    expect(found.code).toBe(1);
    expect(found.out).toContain('counterexample found after 2 executions');
    expect(found.out).toContain('deadlock: qemu-3 waits on completion vhost_flush_struct.wait_event');
    expect(found.out).toContain(
      '  (as found: deadlock: qemu-3 waits on completion vhost_task.exited; shrinking keeps the tasks that hang, not what they wait on)',
    );
    expect(found.out).toContain(
      'choices (3, shrunk from 7 in 6 runs, 0.00 s; 0 = the default schedule): [0, 0, 1]',
    );
    expect(found.out).toContain(
      'length: 4 decision points (1 off the default schedule), 9 scheduler slices, 4 task switches',
    );
    expect(found.out).toContain('← choice #2: preempts vhost-3-4');
    const rf = JSON.parse(readFileSync(replayFile, 'utf8'));
    expect(rf).toMatchObject({
      format: 'vhostsim-replay',
      profile: 'linux-6.4-rc5',
      version: 2,
      deviations: [0, 0, 1],
      violation: { kind: 'deadlock' },
    });
  });

  it('without --output the counterexample is saved in the temporary directory, named after scenario and profile', () => {
    const r = run(['check', LOST, '--profile', 'linux-6.4-rc5']);
    const saved = join(tmpdir(), 'vhostsim-lost-wakeup-linux-6.4-rc5.replay.json');
    expect(r.code).toBe(1);
    expect(r.out).toContain(`saved to ${saved}: vhostsim replay ${saved}`);
    expect(JSON.parse(readFileSync(saved, 'utf8'))).toMatchObject({
      format: 'vhostsim-replay',
      profile: 'linux-6.4-rc5',
      version: 2,
      deviations: [0, 0, 1],
    });
    expect(run(['replay', saved]).code).toBe(1);
  });

  it('exits 0 on linux-6.4, saying the bounded search was complete', () => {
    const r = run(['check', LOST, '--profile', 'linux-6.4']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('no violation found');
    expect(r.out).toContain('complete: every execution with at most 2 preemptions was explored');
  });

  it('without preemptions dfs uses sleep sets, says so, and --no-por explores every order instead', () => {
    const KICKS = fileURLToPath(new URL('../../scenarios/races/lost-wakeup-kicks.yaml', import.meta.url));
    const args = ['check', KICKS, '--profile', 'linux-6.4', '--param', 'N=2', '--param', 'K=2'];
    const reduced = run([...args, '--preemptions', '0']);
    expect(reduced.code).toBe(0);
    expect(reduced.out).toContain('(dfs, ≤ 0 preemptions, sleep sets, ≤ 10000 executions)');
    expect(reduced.out).toContain('751 executions');
    expect(reduced.out).toContain(
      'complete: every execution with at most 0 preemptions was explored, up to the order of independent steps (sleep sets)',
    );
    const every = JSON.parse(run([...args, '--preemptions', '0', '--no-por', '--json']).out);
    expect(every).toMatchObject({ verdict: 'ok', complete: true, executions: 982 });
    expect(every.bounds.reduction).toBeUndefined();
    const j = JSON.parse(run([...args, '--preemptions', '0', '--json']).out);
    expect(j.bounds).toEqual({ runs: 10000, preemptions: 0, reduction: 'sleep-sets', faults: [] });
    // with a preemption bound the search is not reduced
    expect(run([...args, '--preemptions', '1']).out).not.toContain('sleep sets');
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
    // the length of the shrunk counterexample, in every unit
    const len = j.counterexample.length;
    expect(len.decisions).toBeGreaterThanOrEqual(j.counterexample.deviations.length);
    expect(len.deviations).toBeLessThanOrEqual(j.counterexample.deviations.length);
    expect(len.deviations).toBeGreaterThanOrEqual(1);
    expect(len.switches).toBeLessThanOrEqual(len.slices);
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

  it('--faults signals finds the SIGSTOP that leaves a process behind, and its replay file reproduces it', () => {
    const sc = join(dir, 'stop-leaks.yaml');
    writeFileSync(
      sc,
      [
        'name: stop-leaks',
        'profiles: [linux-6.12]',
        'processes:',
        '  qemu:',
        '    program:',
        '      - open: { path: /dev/vhost-net, as: net }',
        '      - ioctl: { fd: net, cmd: VHOST_SET_OWNER }',
        'checks:',
        '  end:',
        '    default:',
        '      leaks: none',
      ].join('\n'),
    );
    expect(run(['check', sc]).code).toBe(0);
    const cxFile = join(dir, 'stop-cx.json');
    const r = run(['check', sc, '--faults', 'signals', '--output', cxFile]);
    expect(r.code).toBe(1);
    expect(r.out).toContain('fault-signal at signal arrival: injected');
    expect(r.out).toMatch(/fault_signal: sig=19 comm=qemu pid=3/);
    expect(r.out).toContain('expectation: check end: leaks: expected none');
    // shrunk, it still fails the same way: no "as found" line
    expect(r.out).not.toContain('(as found:');
    const rf = JSON.parse(readFileSync(cxFile, 'utf8'));
    expect(rf.faults).toEqual(['signals']);
    const a = run(['replay', cxFile, '--format', 'ftrace']);
    const b = run(['replay', cxFile, '--format', 'ftrace']);
    expect(a.code).toBe(1);
    expect(a.out).toContain('fault_signal: sig=19');
    expect(a.out).toBe(b.out);
  });

  it('--faults names an unknown fault kind and suggests the right one (exit 2)', () => {
    const r = run(['check', LOST, '--faults', 'alloc,signal']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('found "signal"; did you mean "signals"?');
  });

  it('--workers 2 prints the same summary as one worker', () => {
    for (const args of [
      ['--profile', 'linux-6.4-rc5'],
      ['--profile', 'linux-6.4', '--strategy', 'pct', '--runs', '200'],
    ]) {
      const one = run(['check', LOST, ...args, '--json']);
      const two = run(['check', LOST, ...args, '--json', '--workers', '2']);
      expect(two.code).toBe(one.code);
      expect(JSON.parse(two.out)).toEqual(JSON.parse(one.out));
    }
  });

  it('the progress line on a terminal shows executions/s, workers, states, depth and elapsed time', () => {
    const r = run(['check', LOST, '--profile', 'linux-6.4', '--workers', '2'], { tty: true, tickMs: 700 });
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/check: \d+ executions \(\d+\/s, 2 workers\), \d+ states, depth \d+, \d+\.\d s/);
  });

  it('--shard i/n summaries merge (--merge) into the summary of the unsharded search', () => {
    for (const args of [
      ['--profile', 'linux-6.4-rc5'],
      ['--profile', 'linux-6.4'],
      ['--profile', 'linux-6.4-rc5', '--strategy', 'random', '--runs', '300'],
      ['--profile', 'linux-6.4', '--strategy', 'pct', '--runs', '300'],
    ]) {
      const whole = run(['check', LOST, ...args, '--json']);
      const files = [1, 2, 3].map((i) => {
        const f = join(dir, `shard-${i}.json`);
        const r = run(['check', LOST, ...args, '--json', '--shard', `${i}/3`]);
        expect(JSON.parse(r.out).shard).toMatchObject({ format: 'vhostsim-check-shard', index: i, count: 3 });
        writeFileSync(f, r.out);
        return f;
      });
      const merged = run(['check', '--merge', ...files.reverse(), '--json']);
      expect(merged.code).toBe(whole.code);
      expect(JSON.parse(merged.out)).toEqual(JSON.parse(whole.out));
    }
    const text = run(['check', '--merge', ...[1, 2, 3].map((i) => join(dir, `shard-${i}.json`))]);
    expect(text.out).toContain('no violation found');
  });

  it('--merge --output saves the merged counterexample, which replays', () => {
    const files = [1, 2].map((i) => {
      const f = join(dir, `rc5-${i}.json`);
      writeFileSync(f, run(['check', LOST, '--profile', 'linux-6.4-rc5', '--json', '--shard', `${i}/2`]).out);
      return f;
    });
    const out = join(dir, 'merged-cx.json');
    const merged = run(['check', '--merge', ...files, '--output', out]);
    expect(merged.code).toBe(1);
    expect(merged.out).toContain('counterexample found after 2 executions');
    expect(JSON.parse(readFileSync(out, 'utf8'))).toMatchObject({ deviations: [0, 0, 1] });
    expect(run(['replay', out]).out).toContain('reproduced: deadlock');
  });

  it('--merge refuses shards of different searches, missing shards and other files (exit 2)', () => {
    const shard = (profile: string, i: number, n: number) => {
      const f = join(dir, `${profile}-${i}-${n}.json`);
      writeFileSync(f, run(['check', LOST, '--profile', profile, '--json', '--shard', `${i}/${n}`]).out);
      return f;
    };
    const a = shard('linux-6.4', 1, 2);
    const b = shard('linux-6.4-rc5', 2, 2);
    const foreign = run(['check', '--merge', a, b]);
    expect(foreign.code).toBe(2);
    expect(foreign.err).toContain('are not shards of one search: the profile differs');
    const missing = run(['check', '--merge', a]);
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('missing shard 2/2');
    const plain = join(dir, 'plain.json');
    writeFileSync(plain, run(['check', LOST, '--profile', 'linux-6.4', '--json']).out);
    expect(run(['check', '--merge', a, plain]).err).toContain(
      'not the --json summary of a check --shard run',
    );
    // summaries of an older vhostsim, whose counterexamples listed raw choices
    const olds = [1, 2].map((i) => {
      const x = JSON.parse(readFileSync(shard('linux-6.4-rc5', i, 2), 'utf8'));
      if (x.counterexample) {
        const { deviations, foundLength: _f, ...cx } = x.counterexample;
        x.counterexample = { ...cx, choices: deviations };
      }
      const f = join(dir, `old-shard-${i}.json`);
      writeFileSync(f, JSON.stringify(x));
      return { f, found: x.counterexample !== undefined };
    });
    expect(olds.some((o) => o.found)).toBe(true);
    const refused = run(['check', '--merge', ...olds.map((o) => o.f)]);
    expect(refused.code).toBe(2);
    expect(refused.err).toContain('written by an older vhostsim');
    expect(run(['check', LOST, '--profile', 'linux-6.4', '--shard', '3/2']).code).toBe(2);
    expect(run(['check', LOST, '--profile', 'linux-6.4', '--workers', '0']).code).toBe(2);
  });

  it('replay reproduces it (exit 1) and exports the same trace every time', () => {
    const r = run(['replay', replayFile]);
    expect(r.code).toBe(1);
    expect(r.out).toContain('reproduced: deadlock: qemu-3 waits on completion vhost_flush_struct.wait_event');
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
    const { deviations: _d, ...noDeviations } = rf;
    writeFileSync(bad, JSON.stringify(noDeviations));
    const missing = run(['replay', bad]);
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('"deviations" must be a list of non-negative integers');
  });

  it('replay still reads version 1 files, whose choices are candidate indices (0 past the end)', () => {
    const { deviations: _d, ...rf } = JSON.parse(readFileSync(replayFile, 'utf8'));
    expect(rf.version).toBe(2);
    // the execution as the search found it, in the answers version 1 saved
    const v1 = join(dir, 'v1.json');
    const violation = {
      kind: 'deadlock',
      message: 'qemu-3 waits on completion vhost_task.exited',
      details: [],
    };
    writeFileSync(v1, JSON.stringify({ ...rf, version: 1, choices: rf.search.found, violation }));
    const r = run(['replay', v1]);
    expect(r.code).toBe(1);
    // a version 1 file is read as version 1 even with a stray "deviations" list
    const stray = join(dir, 'v1-stray.json');
    writeFileSync(
      stray,
      JSON.stringify({ ...rf, version: 1, choices: rf.search.found, deviations: [1], violation }),
    );
    expect(run(['replay', stray]).out).toContain(
      'reproduced: deadlock: qemu-3 waits on completion vhost_task.exited',
    );
    expect(r.out).toContain(`replay of lost-wakeup on linux-6.4-rc5, ${rf.search.found.length} choices`);
    expect(r.out).toContain('reproduced: deadlock: qemu-3 waits on completion vhost_task.exited');
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
