/**
 * Sleep sets (units.ts, footprint.ts): the reduced dfs reaches everything the full one
 * reaches — every outcome, checked here by running both — and explores fewer executions
 * where steps touch different kernel objects.
 */
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadScenario, parseScenario } from '../scenario/load.js';
import { type Execution, ExecutionChoices, execute, type Target, violationSignature } from './execute.js';
import { explore } from './explore.js';
import { defaultAnswer, runUnit, type SearchConfig } from './units.js';

const racePath = (name: string) =>
  fileURLToPath(new URL(`../../scenarios/races/${name}.yaml`, import.meta.url));
const kicks = (N: number, K: number) => loadScenario(racePath('lost-wakeup-kicks'), { N, K });

/** numbers that depend on when a step ran, not on what it did */
const timeless = (v: unknown) =>
  JSON.stringify(v, (key, x) =>
    typeof x === 'number' && /^(ts|when|clock)$|Ns$|Usec|usage|[tT]ime|Us$|periods|throttled/.test(key)
      ? 0
      : x,
  );

/**
 * What an execution did, as far as the order of independent steps cannot change it: each
 * task's own events (wake-ups it made included) and step results, the snapshots and checks,
 * the warnings and the verdict.
 */
function outcome(ex: Execution): string {
  const events = new Map<string, string[]>();
  for (const e of ex.kernel?.trace.events ?? []) {
    if (e.event === 'sched_switch') continue;
    const key = `${e.comm}-${e.pid}`;
    events.set(key, [...(events.get(key) ?? []), `${e.event}: ${e.text}`]);
  }
  const steps = new Map<string, string[]>();
  for (const s of ex.result?.steps ?? [])
    steps.set(s.task, [
      ...(steps.get(s.task) ?? []),
      `${s.path} ${s.detail} = ${s.outcome} ${s.value ?? ''}`,
    ]);
  return [
    ex.violation ? violationSignature(ex.violation) : 'ok',
    timeless([...events].sort()),
    timeless([...steps].sort()),
    timeless(ex.result?.snapshots ?? null),
    timeless(ex.result?.checks ?? null),
    (ex.kernel?.warnings ?? []).map((w) => w.message).sort(),
  ].join('\n');
}

/** every outcome of the dfs without preemptions, with or without sleep sets */
function outcomes(target: Target, por: boolean) {
  const cfg: SearchConfig = {
    strategy: 'dfs',
    bound: 0,
    maxFaults: 0,
    seed: 1,
    faultProbability: 0,
    depth: 3,
    k: 0,
    keepGoing: true,
    por,
  };
  const seen = new Set<string>();
  let cutShort = 0;
  const r = runUnit(
    target,
    cfg,
    { kind: 'dfs', prefix: [], floor: 0 },
    {
      limit: 50_000,
      trace: true,
      onExecution: (ex) => {
        if (ex.cutShort) cutShort++;
        else seen.add(outcome(ex));
      },
    },
  );
  expect(r.exhausted).toBe(true);
  return { seen, executions: r.executions, cutShort };
}

describe('the reduced search reaches every outcome of the full one', { timeout: 120_000 }, () => {
  const same = (target: Target) => {
    const full = outcomes(target, false);
    const reduced = outcomes(target, true);
    expect([...full.seen].filter((o) => !reduced.seen.has(o))).toEqual([]);
    expect([...reduced.seen].filter((o) => !full.seen.has(o))).toEqual([]);
    expect(reduced.executions).toBeLessThanOrEqual(full.executions);
    return { full, reduced };
  };

  it('lost-wakeup-kicks, for any small N and K, on the buggy and the fixed kernel', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 }),
        fc.integer({ min: 1, max: 3 }),
        fc.constantFrom('linux-6.4-rc5', 'linux-6.4'),
        (N, K, profile) => {
          same({ scenario: kicks(N, K), profile });
        },
      ),
      { numRuns: 6, seed: 7 },
    );
  });

  it('lost-wakeup-traffic on linux-6.4, whose vhost-net traffic paths are not audited', () => {
    same({ scenario: loadScenario(racePath('lost-wakeup-traffic')), profile: 'linux-6.4' });
  });

  it('and explores fewer executions where kicks touch the eventfd and the work item only to update and test them', () => {
    const { full, reduced } = same({ scenario: kicks(2, 2), profile: 'linux-6.4' });
    expect(reduced.executions).toBeLessThan(full.executions);
  });
});

describe('footprints of steps', () => {
  /** the footprints of the non-preemptive execution: [task chosen, its run, the whole step] */
  const steps = (target: Target) => {
    const choices = new ExecutionChoices((_i, p) => defaultAnswer(p), false, true);
    const ex = execute(target, choices);
    return [...ex.footprints!].map(([i, all]) => {
      const c = ex.log[i]!;
      return { task: c.tasks?.[c.value] ?? '', own: ex.ownFootprints!.get(i)!, all };
    });
  };

  it('a kick thread’s run records the eventfd count as an update and its exit as updates of shared counts', () => {
    const s = steps({ scenario: kicks(2, 1), profile: 'linux-6.4' });
    const kick = s.find((x) => x.task.startsWith('kick0'))!;
    expect(kick.own.global).toBe(false);
    const objects = [...kick.own.objects];
    expect(objects.filter(([o]) => o.startsWith('eventfd:'))).toEqual([[expect.any(String), 2]]);
    expect(objects).toContainEqual(['tasks', 2]);
    expect(objects).toContainEqual(['pidns:init', 2]);
  });

  it('boot and the set-up of the processes touch everything', () => {
    const s = steps({ scenario: kicks(1, 1), profile: 'linux-6.4' });
    expect(s[0]!.all.global).toBe(true);
  });

  it('a step whose kernel path is not audited touches everything: write(2) to a pipe', () => {
    const sc = parseScenario(
      `name: pipe-writers
profiles: [linux-6.4]
processes:
  p:
    program:
      - pipe: { read: r, write: w }
      - threads:
          count: 2
          name: "w{n}"
          program:
            - eventfd-write: { fd: w }
`,
      'pipe-writers.yaml',
    );
    const s = steps({ scenario: sc, profile: 'linux-6.4' });
    const writers = s.filter((x) => x.task.startsWith('w'));
    expect(writers.length).toBeGreaterThan(0);
    for (const w of writers) expect(w.own.global).toBe(true);
  });
});

describe('when sleep sets apply', () => {
  it('with preemptions the search is not reduced; without, it is, unless turned off', () => {
    const target: Target = { scenario: kicks(1, 1), profile: 'linux-6.4' };
    expect(explore(target, { strategy: 'dfs', preemptions: 1 }).reduced).toBe(false);
    expect(explore(target, { strategy: 'dfs', preemptions: 0 }).reduced).toBe(true);
    expect(explore(target, { strategy: 'dfs', preemptions: 0, por: false }).reduced).toBe(false);
    expect(explore(target, { strategy: 'random', runs: 5 }).reduced).toBe(false);
  });

  it('on linux-6.4-rc5 without preemptions the reduced search reaches the full search’s verdict (the lost wake-up needs a preemption)', () => {
    const target: Target = { scenario: kicks(2, 2), profile: 'linux-6.4-rc5' };
    const full = explore(target, { strategy: 'dfs', preemptions: 0, por: false });
    const reduced = explore(target, { strategy: 'dfs', preemptions: 0 });
    expect(reduced.verdict).toBe(full.verdict);
    expect(reduced.complete).toBe(full.complete);
  });
});
