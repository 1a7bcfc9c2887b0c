/**
 * The explorer on the 6.4-rc5 lost wake-up (scenarios/races/): it finds the hang, shrinks it,
 * replays it byte for byte, and finds nothing on linux-6.4 within its bounds.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../kernel/choices.js';
import { loadScenario } from '../scenario/load.js';
import {
  ExecutionChoices,
  execute,
  shrinkSignature,
  type Target,
  type Violation,
  violationSignature,
} from './execute.js';
import {
  type ExploreOptions,
  type ExploreResult,
  explore,
  mergeShards,
  relativeAnswers,
  replayChoices,
  replayDeviations,
  ShardMergeError,
  type ShardReport,
} from './explore.js';
import { runUnitsInWorkers } from './pool.js';
import { exportTrace, formatInterleaving, makeReplayFile, parseReplayFile, replay } from './replay.js';
import { shrinkChoices } from './shrink.js';
import {
  combineUnits,
  defaultAnswer,
  ExecutionBuffers,
  runUnit,
  type SearchConfig,
  type UnitSpec,
} from './units.js';

const scenarioPath = (name: string) =>
  fileURLToPath(new URL(`../../scenarios/races/${name}.yaml`, import.meta.url));
const LOST = loadScenario(scenarioPath('lost-wakeup'));
const TRAFFIC = loadScenario(scenarioPath('lost-wakeup-traffic'));
const rc5: Target = { scenario: LOST, profile: 'linux-6.4-rc5' };
const fixed: Target = { scenario: LOST, profile: 'linux-6.4' };
const TRAFFIC_FIXED: Target = { scenario: TRAFFIC, profile: 'linux-6.4' };
const KICKS: Target = {
  scenario: loadScenario(scenarioPath('lost-wakeup-kicks'), { N: 2, K: 2 }),
  profile: 'linux-6.4',
};

/** the result without its wall-clock time */
const timeless = (r: ExploreResult) => ({
  ...r,
  elapsedMs: 0,
  ...(r.counterexample ? { counterexample: { ...r.counterexample, shrinkMs: 0 } } : {}),
});

describe('the 6.4-rc5 lost wake-up, found by the explorer', () => {
  const r = explore(rc5, { strategy: 'dfs', preemptions: 2 });
  const cx = r.counterexample!;

  it('dfs finds the hang on linux-6.4-rc5: the releaser waits for ever on vhost_task.exited', () => {
    expect(r.verdict).toBe('violation');
    expect(cx.violation.kind).toBe('deadlock');
    expect(replayChoices(rc5, cx.found).violation!.message).toBe(
      'qemu-3 waits on completion vhost_task.exited',
    );
    // one preemption in the worker's window is enough: found on the second execution
    expect(cx.foundAt).toBe(2);
    expect(r.executions).toBe(2);
  });

  it('shrinking keeps the releaser hung and moves the lost wake-up to the earlier wait: its flush', () => {
    expect(cx.deviations.length).toBeLessThan(cx.foundLength);
    expect(cx.foundLength).toBe(cx.found.length);
    expect(cx.deviations.at(-1)).not.toBe(0);
    const again = replayDeviations(rc5, cx.deviations);
    expect(violationSignature(again.violation!)).toBe(violationSignature(cx.violation));
    expect(cx.violation.message).toBe('qemu-3 waits on completion vhost_flush_struct.wait_event');
    expect(shrinkSignature(cx.violation)).toBe(shrinkSignature(replayChoices(rc5, cx.found).violation!));
    // exactly one non-default answer: the releaser preempts the worker in its window
    expect(cx.deviations.filter((c) => c !== 0)).toEqual([1]);
  });

  it('replays byte-identically, also through the replay file', () => {
    const a = replay(rc5, cx);
    const b = replay(rc5, cx);
    expect(a.reproduced).toBe(true);
    expect(b.reproduced).toBe(true);
    const ftrace = exportTrace(a.execution, 'ftrace');
    expect(exportTrace(b.execution, 'ftrace')).toBe(ftrace);
    expect(exportTrace(b.execution, 'chrome')).toBe(exportTrace(a.execution, 'chrome'));
    expect(ftrace).toContain('vhost_set_owner');

    const file = makeReplayFile({
      scenarioPath: scenarioPath('lost-wakeup'),
      target: rc5,
      deviations: cx.deviations,
      violation: cx.violation,
    });
    const parsed = parseReplayFile(JSON.stringify(file), 'cx.json');
    const target: Target = {
      scenario: loadScenario(parsed.scenario),
      profile: parsed.profile,
      seed: parsed.seed,
      faultAlloc: parsed.faults.includes('alloc'),
      maxSteps: parsed.maxSteps,
    };
    const c = replay(target, parsed);
    expect(c.reproduced).toBe(true);
    expect(exportTrace(c.execution, 'ftrace')).toBe(ftrace);
    expect(c.execution.result!.steps).toEqual(a.execution.result!.steps);
    expect(c.execution.result!.failures).toEqual(a.execution.result!.failures);
  });

  it('tracing does not change the run: the same choices are asked with the trace off and on', () => {
    const off = replayDeviations(rc5, cx.deviations);
    const on = replayDeviations(rc5, cx.deviations, { trace: true });
    expect(on.log).toEqual(off.log);
    expect(on.steps).toBe(off.steps);
  });

  it('prints the interleaving: the preemption that loses the wake-up, and who is left waiting', () => {
    const text = formatInterleaving(replay(rc5, cx).execution);
    expect(text).toContain(
      'vhost-3-4 (then R in vhost_task_fn(): fn() found no work, before set_current_state(TASK_INTERRUPTIBLE))',
    );
    expect(text).toContain(
      'qemu-3 (then D on completion vhost_flush_struct.wait_event)   ← choice #2: preempts vhost-3-4',
    );
    expect(text.trimEnd().split('\n').at(-1)).toBe(
      '==> deadlock: qemu-3 waits on completion vhost_flush_struct.wait_event',
    );
  });

  it('pct and random find it too', () => {
    for (const strategy of ['pct', 'random'] as const) {
      const p = explore(rc5, { strategy, seed: 1, runs: 500 });
      expect(p.verdict, strategy).toBe('violation');
      expect(p.counterexample!.violation.kind).toBe('deadlock');
    }
  });

  it('with work in flight (vhost-net traffic, then close): found within one preemption', () => {
    const t = explore({ scenario: TRAFFIC, profile: 'linux-6.4-rc5' }, { strategy: 'dfs', preemptions: 1 });
    expect(t.verdict).toBe('violation');
    expect(t.counterexample!.violation.message).toBe(
      'qemu-3 waits on completion vhost_flush_struct.wait_event',
    );
    expect(t.counterexample!.foundAt).toBeLessThanOrEqual(10);
  });
});

describe('linux-6.4: the fix', () => {
  it('dfs explores every interleaving with at most 2 preemptions and finds nothing', () => {
    const r = explore(fixed, { strategy: 'dfs', preemptions: 2 });
    expect(r.verdict).toBe('ok');
    expect(r.complete).toBe(true);
    expect(r.executions).toBe(115);
    expect(r.states).toBeGreaterThan(r.executions);
  });

  it('a larger bound explores more and still finds nothing', () => {
    const r = explore(fixed, { strategy: 'dfs', preemptions: 4 });
    expect(r.verdict).toBe('ok');
    expect(r.complete).toBe(true);
    expect(r.executions).toBeGreaterThan(115);
  });

  it('the traffic scenario: no hang within the bound either', () => {
    const r = explore(
      { scenario: TRAFFIC, profile: 'linux-6.4' },
      { strategy: 'dfs', preemptions: 1, runs: 300 },
    );
    expect(r.verdict).toBe('ok');
    expect(r.executions).toBe(300);
  });

  it('an execution budget makes a dfs incomplete', () => {
    const r = explore(fixed, { strategy: 'dfs', preemptions: 2, runs: 10 });
    expect(r.verdict).toBe('ok');
    expect(r.complete).toBe(false);
    expect(r.executions).toBe(10);
  });
});

describe('determinism', () => {
  it('a random search is a pure function of (scenario, profile, seed)', () => {
    for (const target of [rc5, fixed]) {
      const a = explore(target, { strategy: 'random', seed: 7, runs: 40 });
      const b = explore(target, { strategy: 'random', seed: 7, runs: 40 });
      expect(timeless(b)).toEqual(timeless(a));
    }
    const pa = explore(fixed, { strategy: 'pct', seed: 3, runs: 40 });
    const pb = explore(fixed, { strategy: 'pct', seed: 3, runs: 40 });
    expect(timeless(pb)).toEqual(timeless(pa));
  });

  it('different seeds explore different schedules', () => {
    const seen = new Set<string>();
    for (const seed of [1, 2, 3, 4]) {
      const ex = execute(fixed, new ExecutionChoices(() => 0));
      seen.add(ex.log.map((c) => c.value).join());
      const rng = mulberry32(seed);
      const rex = execute(fixed, new ExecutionChoices((_i, p) => rng() % p.n));
      seen.add(rex.log.map((c) => c.value).join());
    }
    expect(seen.size).toBeGreaterThan(2);
  });
});

describe('deviations from the default schedule', () => {
  it('the non-preemptive execution has none', () => {
    const ex = execute(TRAFFIC_FIXED, new ExecutionChoices((_i, p) => defaultAnswer(p)));
    expect(ex.log.length).toBeGreaterThan(10);
    expect(relativeAnswers(ex.log)).toEqual([]);
  });

  it('an execution replays exactly from its deviations, whatever its answers', () => {
    for (const target of [rc5, fixed, TRAFFIC_FIXED])
      for (const seed of [1, 2, 3, 4, 5]) {
        const rng = mulberry32(seed);
        const ex = execute(target, new ExecutionChoices((_i, p) => rng() % p.n));
        const again = replayDeviations(target, relativeAnswers(ex.log));
        expect(again.log.map((c) => c.value)).toEqual(ex.log.map((c) => c.value));
        expect(again.steps).toBe(ex.steps);
      }
  });

  it('a random counterexample shrinks to the one preemption dfs needs', () => {
    const traffic: Target = { scenario: TRAFFIC, profile: 'linux-6.4-rc5' };
    for (const [t, preemptions] of [
      [rc5, 2],
      [traffic, 1],
    ] as const) {
      const p = explore(t, { strategy: 'random', seed: 1, runs: 500 });
      const d = explore(t, { strategy: 'dfs', preemptions });
      expect(p.counterexample!.deviations.filter((v) => v !== 0)).toEqual([1]);
      expect(p.counterexample!.deviations).toEqual(d.counterexample!.deviations);
      expect(p.counterexample!.foundLength).toBeGreaterThan(p.counterexample!.deviations.length);
    }
  });
});

describe('violations', () => {
  it('bounded liveness: a run that needs more slices than the budget is a violation', () => {
    const r = explore({ ...fixed, maxSteps: 5 }, { strategy: 'dfs' });
    expect(r.counterexample?.violation.kind).toBe('step-budget');
    expect(r.counterexample!.violation.message).toBe('no quiescence within 5 scheduler slices');
  });

  it('faults are opt-in: with alloc faults, a failed allocation breaks the expectation of SET_OWNER', () => {
    expect(explore(fixed, { strategy: 'dfs', preemptions: 0 }).verdict).toBe('ok');
    const r = explore({ ...fixed, faultAlloc: true }, { strategy: 'dfs', preemptions: 0 });
    expect(r.counterexample?.violation.kind).toBe('expectation');
    expect(r.counterexample!.violation.message).toContain('VHOST_SET_OWNER returned ENOMEM, expected ok');
    const log = replayDeviations({ ...fixed, faultAlloc: true }, r.counterexample!.deviations).log;
    expect(log.some((c) => c.kind === 'fault-alloc' && c.value === 1)).toBe(true);
  });
});

// worker threads start slowly on a loaded machine: a generous limit per test
describe('workers and shards: the same search, cut up', { timeout: 60_000 }, () => {
  /** the result without its wall-clock time and its shard part */
  const same = (r: ExploreResult) => {
    const { shard: _shard, ...rest } = timeless(r);
    return rest;
  };
  const searches: [string, Target, ExploreOptions][] = [
    ['dfs on linux-6.4', fixed, { strategy: 'dfs', preemptions: 3 }],
    ['dfs on linux-6.4-rc5', rc5, { strategy: 'dfs', preemptions: 2 }],
    ['dfs cut by its budget', fixed, { strategy: 'dfs', preemptions: 3, runs: 60 }],
    ['dfs with sleep sets (no preemptions)', KICKS, { strategy: 'dfs', preemptions: 0 }],
    ['dfs with sleep sets, cut by its budget', KICKS, { strategy: 'dfs', preemptions: 0, runs: 300 }],
    ['random on linux-6.4', fixed, { strategy: 'random', seed: 5, runs: 300 }],
    ['random on linux-6.4-rc5', rc5, { strategy: 'random', seed: 5, runs: 300 }],
    ['pct on linux-6.4', fixed, { strategy: 'pct', seed: 2, runs: 300 }],
    ['pct on linux-6.4-rc5', rc5, { strategy: 'pct', seed: 2, runs: 300 }],
  ];
  const whole = new Map(searches.map(([name, t, o]) => [name, explore(t, o)]));

  /** run every shard of a search and merge their reports */
  const sharded = (t: Target, o: ExploreOptions, count: number) => {
    const parts = Array.from({ length: count }, (_v, i) =>
      explore(t, { ...o, shard: { index: i + 1, count } }),
    );
    const merged = mergeShards(
      o.strategy ?? 'dfs',
      parts.map((p) => p.shard!),
      o.runs ?? (o.strategy === 'dfs' ? 10_000 : 1000),
    );
    return { parts, merged };
  };

  it.each(searches)('merged shards give the unsharded result: %s', (name, t, o) => {
    const w = whole.get(name)!;
    for (const count of [1, 3]) {
      const { parts, merged } = sharded(t, o, count);
      expect(merged.verdict).toBe(w.verdict);
      expect(merged.complete).toBe(w.complete);
      expect(merged.executions).toBe(w.executions);
      expect(merged.states).toBe(w.states);
      expect(merged.depth).toBe(w.depth);
      if (w.counterexample) {
        expect(merged.found!.foundAt).toBe(w.counterexample.foundAt);
        expect(merged.found!.choices).toEqual(w.counterexample.found);
        // the shard that owns it found, and shrank, the same counterexample
        const owner = parts[merged.found!.shard - 1]!.counterexample!;
        expect(owner.found).toEqual(w.counterexample.found);
        expect(owner.deviations).toEqual(w.counterexample.deviations);
      } else expect(merged.found).toBeUndefined();
    }
  });

  it('the buggy kernel is found by a shard: the lost wake-up on linux-6.4-rc5, merged', () => {
    const { merged } = sharded(rc5, { strategy: 'dfs', preemptions: 2 }, 2);
    expect(merged.verdict).toBe('violation');
    expect(merged.found!.violation.message).toBe('qemu-3 waits on completion vhost_task.exited');
    expect(merged.found!.foundAt).toBe(2);
  });

  it('merging refuses missing, repeated and foreign shards', () => {
    const o: ExploreOptions = { strategy: 'random', runs: 40 };
    const a = explore(fixed, { ...o, shard: { index: 1, count: 2 } }).shard!;
    const b = explore(fixed, { ...o, shard: { index: 2, count: 2 } }).shard!;
    const c = explore(fixed, { ...o, shard: { index: 2, count: 3 } }).shard!;
    const merge = (rs: ShardReport[]) => () => mergeShards('random', rs, 40);
    expect(merge([a])).toThrow(new ShardMergeError('missing shard 2/2'));
    expect(merge([a, a, b])).toThrow(new ShardMergeError('shard 1/2 is given twice'));
    expect(merge([a, c])).toThrow(ShardMergeError);
    expect(merge([])).toThrow(ShardMergeError);
    expect(merge([a, b])().executions).toBe(40);
  });

  it('keepGoing runs the whole budget past violations and still reports the first one', () => {
    for (const o of [
      { strategy: 'random', seed: 5, runs: 200 },
      { strategy: 'dfs', preemptions: 2, runs: 150 },
    ] as const) {
      const first = explore(rc5, o);
      const all = explore(rc5, { ...o, keepGoing: true });
      expect(all.executions).toBeGreaterThan(first.executions);
      expect(all.states).toBeGreaterThan(first.states);
      expect(all.counterexample!.foundAt).toBe(first.counterexample!.foundAt);
      expect(all.counterexample!.deviations).toEqual(first.counterexample!.deviations);
      expect(same(explore(rc5, { ...o, keepGoing: true, workers: 2 }))).toEqual(same(all));
    }
  });

  it('an idle worker gets the work a running dfs unit gives away; the combined result is the same', () => {
    const root: UnitSpec = { kind: 'dfs', prefix: [], floor: 0 };
    for (const [t, bound, runs] of [
      [fixed, 3, 10_000],
      [fixed, 3, 60],
      [rc5, 2, 10_000],
      [{ scenario: TRAFFIC, profile: 'linux-6.4' }, 1, 400],
      [KICKS, 0, 10_000],
    ] as const) {
      const cfg: SearchConfig = {
        strategy: 'dfs',
        bound,
        por: bound === 0,
        maxFaults: 1,
        seed: 1,
        faultProbability: 0,
        depth: 3,
        k: 0,
      };
      // one unit for two runners (this thread and a worker thread): the second starts idle
      const pooled = runUnitsInWorkers(t, cfg, [root], {
        workers: 2,
        mine: [0],
        runs,
        contiguous: true,
        outOfTime: () => false,
        startTogether: true,
      });
      expect(
        pooled.some((p) => p.plan === null),
        `${t.profile} ${bound} ${runs}`,
      ).toBe(true);
      const split = combineUnits(
        pooled.map((p) => p.result),
        runs,
      );
      const whole = combineUnits([runUnit(t, cfg, root, { limit: runs })], runs);
      expect(split.executions).toBe(whole.executions);
      expect(split.states).toEqual(whole.states);
      expect(split.depth).toBe(whole.depth);
      expect(split.complete).toBe(whole.complete);
      expect(split.found?.foundAt).toBe(whole.found?.foundAt);
      expect(split.found?.choices).toEqual(whole.found?.choices);
    }
  });

  it('a buffer lent again after an execution is the same memory, zero-filled', () => {
    const pool = new ExecutionBuffers();
    const a = pool.alloc(8192);
    a.fill(7);
    pool.reclaim();
    const b = pool.alloc(8192);
    expect(b).toBe(a);
    expect(b.every((x) => x === 0)).toBe(true);
    expect(pool.alloc(8192)).not.toBe(b); // b is lent: its execution is running
    expect(pool.alloc(4096).length).toBe(4096);
  });

  it.each(searches)('two worker threads give the one-thread result: %s', (name, t, o) => {
    expect(same(explore(t, { ...o, workers: 2 }))).toEqual(same(whole.get(name)!));
  });
});

describe('shrinkSignature', () => {
  const v = (kind: Violation['kind'], message: string): Violation => ({ kind, message, details: [] });

  it('a deadlock keeps the tasks that hang, not what they wait on', () => {
    const stop = v('deadlock', 'qemu-3 waits on completion vhost_task.exited');
    const flush = v('deadlock', 'qemu-3 waits on completion vhost_flush_struct.wait_event');
    const kick = v('deadlock', 'kick0-5 waits on completion vhost_flush_struct.wait_event');
    const both = v('deadlock', 'qemu-3 waits on completion vhost_task.exited; kick0-5 waits on mutex vq0');
    expect(shrinkSignature(flush)).toBe(shrinkSignature(stop));
    expect(shrinkSignature(kick)).not.toBe(shrinkSignature(flush));
    expect(shrinkSignature(both)).not.toBe(shrinkSignature(stop));
    // numbers are blurred as in violationSignature: another pid is the same task
    expect(shrinkSignature(v('deadlock', 'qemu-7 waits on completion vhost_task.exited'))).toBe(
      shrinkSignature(stop),
    );
  });

  it('any other violation keeps its whole signature', () => {
    const a = v('expectation', 'check end: leaks: expected none, found vhost-4-6');
    const b = v('expectation', 'check closed: alive: expected qemu');
    expect(shrinkSignature(a)).toBe(violationSignature(a));
    expect(shrinkSignature(a)).not.toBe(shrinkSignature(b));
  });
});

describe('shrinkChoices', () => {
  it('finds a minimal sequence for a simple predicate', () => {
    expect(shrinkChoices([3, 1, 4, 1, 5], (c) => c.includes(4)).choices).toEqual([4]);
    expect(shrinkChoices([0, 2, 0, 3, 0, 0], (c) => c.filter((x) => x > 0).length >= 2).choices).toEqual([
      1, 1,
    ]);
  });

  it('moves a deviation to the earliest place it still fails, which halving chunk sizes miss', () => {
    // fails with its one non-zero answer at index 12 or 10: removing chunks of 6, 3 and 1
    // answers gives indices 6, 9 and 11; only a cut of 2 gives 10
    const at = (c: number[]) => c.indexOf(1);
    const pred = (c: number[]) => at(c) === 10 || at(c) === 12;
    expect(shrinkChoices([...Array<number>(12).fill(0), 1], pred).choices).toEqual([
      ...Array<number>(10).fill(0),
      1,
    ]);
  });

  it('prefers fewer non-zero answers to a shorter sequence, up to maxLength', () => {
    const pred = (c: number[]) => c.join() === '0,1,1' || c.join() === '0,0,0,0,1';
    expect(shrinkChoices([0, 1, 1], pred, { maxLength: 5 }).choices).toEqual([0, 0, 0, 0, 1]);
    expect(shrinkChoices([0, 1, 1], pred, { maxLength: 4 }).choices).toEqual([0, 1, 1]);
    expect(shrinkChoices([0, 1, 1], pred).choices).toEqual([0, 1, 1]);
  });

  it('tries a single non-zero answer, when the others only fail together', () => {
    const pred = (c: number[]) => c.join() === '1,1,1,0,1' || c.join() === '0,0,1';
    expect(shrinkChoices([1, 1, 1, 0, 1], pred).choices).toEqual([0, 0, 1]);
  });

  it('never grows the sequence, and the result still fails', () => {
    const rng = mulberry32(42);
    for (let t = 0; t < 200; t++) {
      const len = rng() % 20;
      const input = Array.from({ length: len }, () => rng() % 4);
      const k = rng() % 3;
      // like a replayed run, the predicate ignores trailing zeros (answers past the end are 0)
      const pred = (c: number[]) =>
        c.reduce((a, b) => a + b, 0) >= k && c.filter((x) => x === 3).length % 2 === 0;
      if (!pred(input)) continue;
      const out = shrinkChoices(input, pred).choices;
      let n = input.length;
      while (n > 0 && input[n - 1] === 0) n--;
      expect(out.length).toBeLessThanOrEqual(n);
      expect(pred(out)).toBe(true);
    }
  });

  it('respects its run budget', () => {
    let calls = 0;
    const r = shrinkChoices(
      Array.from({ length: 64 }, () => 3),
      (c) => {
        calls++;
        return c.filter((x) => x > 0).length >= 40;
      },
      { maxRuns: 10 },
    );
    expect(calls).toBe(10);
    expect(r.runs).toBe(10);
  });
});
