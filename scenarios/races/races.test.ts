/**
 * The race library (scenarios/races/*.yaml): every historical bug is found by the explorer on
 * its buggy profile — the violation it names, replayed byte for byte through a replay file —
 * and its fixed profile explores clean and complete within the stated bound. Each scenario's
 * description states how many executions the search took; these tests hold it to that.
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { Target, ViolationKind } from '../../src/explore/execute.js';
import {
  type ExploreOptions,
  type ExploreResult,
  explore,
  replayDeviations,
} from '../../src/explore/explore.js';
import {
  counterexampleLength,
  exportTrace,
  makeReplayFile,
  parseReplayFile,
  replay,
  replayScenarioPath,
  replayTarget,
} from '../../src/explore/replay.js';
import { loadScenario } from '../../src/scenario/load.js';

const DIR = dirname(fileURLToPath(import.meta.url));

interface RaceCase {
  readonly file: string;
  /** parameters set from outside (`--param`) */
  readonly params?: Readonly<Record<string, number>>;
  readonly faultAlloc?: boolean;
  readonly buggy: string;
  readonly fixed: string;
  /** the dfs preemption bound of both searches */
  readonly preemptions: number;
  readonly kind: ViolationKind;
  readonly message: RegExp;
  /** the clean search's bound on the fixed profile when it differs from `preemptions` */
  readonly fixedPreemptions?: number;
}

const CASES: readonly RaceCase[] = [
  {
    file: 'lost-wakeup',
    buggy: 'linux-6.4-rc5',
    fixed: 'linux-6.4',
    preemptions: 2,
    kind: 'deadlock',
    message: /^qemu-3 waits on completion vhost_flush_struct\.wait_event$/,
  },
  {
    file: 'lost-wakeup-traffic',
    buggy: 'linux-6.4-rc5',
    fixed: 'linux-6.4',
    preemptions: 1,
    fixedPreemptions: 0,
    kind: 'deadlock',
    message: /^qemu-3 waits on completion vhost_flush_struct\.wait_event$/,
  },
  {
    file: 'lost-wakeup-kicks',
    buggy: 'linux-6.4-rc5',
    fixed: 'linux-6.4',
    preemptions: 2,
    fixedPreemptions: 1,
    kind: 'deadlock',
    message: /^qemu-3 waits on completion vhost_flush_struct\.wait_event$/,
  },
  {
    file: 'lost-wakeup-kicks',
    params: { N: 2, K: 2 },
    buggy: 'linux-6.4-rc5',
    fixed: 'linux-6.4',
    preemptions: 2,
    fixedPreemptions: 0,
    kind: 'deadlock',
    message: /^qemu-3 waits on completion vhost_flush_struct\.wait_event$/,
  },
  {
    file: 'vsock-early-queue',
    buggy: 'linux-6.4-rc1',
    fixed: 'linux-6.4',
    preemptions: 1,
    kind: 'kernel-bug',
    message:
      /^vhost_work_queue: BUG: kernel NULL pointer dereference: vhost_task_wake\(dev->worker->vtsk == NULL\)/,
  },
  {
    file: 'sigkill-worker-linger',
    buggy: 'linux-6.5',
    fixed: 'linux-6.10',
    preemptions: 0,
    kind: 'expectation',
    message: /^check end: leaks: expected none, found launcher-3, qemu-4, qemu-5, vhost-4-6, /,
  },
  {
    file: 'kthread-worker-id-leak',
    faultAlloc: true,
    buggy: 'linux-6.18-rc',
    fixed: 'linux-6.18',
    preemptions: 2,
    kind: 'kernel-bug',
    message: /^vhost_worker_destroy: BUG: KASAN: slab-use-after-free: worker 0 of vhost-net was freed/,
  },
];

const pathOf = (file: string) => join(DIR, `${file}.yaml`);
const targetOf = (c: RaceCase, profile: string): Target => ({
  scenario: loadScenario(pathOf(c.file), c.params ?? {}),
  profile,
  ...(c.faultAlloc ? { faultAlloc: true } : {}),
});
const nameOf = (c: RaceCase) =>
  `${c.file}${
    c.params
      ? ` (${Object.entries(c.params)
          .map(([k, v]) => `${k}=${v}`)
          .join(', ')})`
      : ''
  }`;

describe('the race library', () => {
  it('has a case for every scenario in scenarios/races', () => {
    const files = readdirSync(DIR)
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => f.replace(/\.yaml$/, ''));
    expect(files.sort()).toEqual([...new Set(CASES.map((c) => c.file))].sort());
  });
});

for (const c of CASES) {
  describe(`race ${nameOf(c)}`, () => {
    const bug = targetOf(c, c.buggy);
    const description = bug.scenario.doc.description ?? '';
    let found: ExploreResult | undefined;
    const search = (): ExploreResult => {
      found ??= explore(bug, { strategy: 'dfs', preemptions: c.preemptions });
      return found;
    };

    it(`${c.buggy} yields a ${c.kind} counterexample, found after the executions its description states`, () => {
      const r = search();
      expect(r.verdict).toBe('violation');
      const cx = r.counterexample!;
      expect(cx.violation.kind).toBe(c.kind);
      expect(cx.violation.message).toMatch(c.message);
      expect(cx.deviations.length).toBeLessThanOrEqual(cx.foundLength);
      expect(description).toContain(`${c.buggy}, found after ${cx.foundAt} execution`);
    });

    it(`the ${c.buggy} counterexample replays byte-identically through a replay file`, () => {
      const cx = search().counterexample!;
      const direct = replay(bug, cx);
      expect(direct.reproduced).toBe(true);
      const file = makeReplayFile({
        scenarioPath: pathOf(c.file),
        replayPath: join(DIR, 'cx.json'),
        target: bug,
        deviations: cx.deviations,
        violation: cx.violation,
      });
      const parsed = parseReplayFile(JSON.stringify(file), join(DIR, 'cx.json'));
      expect(parsed.params).toEqual(bug.scenario.params);
      const again = replay(replayTarget(parsed, replayScenarioPath(parsed, join(DIR, 'cx.json'))), parsed);
      expect(again.reproduced).toBe(true);
      expect(exportTrace(again.execution, 'ftrace')).toBe(exportTrace(direct.execution, 'ftrace'));
      expect(exportTrace(again.execution, 'chrome')).toBe(exportTrace(direct.execution, 'chrome'));
      expect(again.execution.result!.steps).toEqual(direct.execution.result!.steps);
      expect(again.execution.log.map((p) => p.value)).toEqual(direct.execution.log.map((p) => p.value));
    });

    it(`random and pct counterexamples on ${c.buggy} shrink to as few deviations as dfs's`, () => {
      const deviations = (r: ExploreResult) => r.counterexample!.deviations.filter((v) => v !== 0).length;
      const dfs = deviations(search());
      for (const strategy of ['random', 'pct'] as const) {
        const r = explore(bug, { strategy, seed: 1, runs: 3000 });
        expect(r.verdict, strategy).toBe('violation');
        expect(deviations(r), strategy).toBeLessThanOrEqual(dfs);
      }
    }, 60_000);

    const bound = c.fixedPreemptions ?? c.preemptions;
    it(`${c.fixed} explores clean and complete with at most ${bound} preemptions${c.faultAlloc ? ' and one allocation failure' : ''}`, () => {
      const o: ExploreOptions = { strategy: 'dfs', preemptions: bound, runs: 20_000 };
      const r = explore(targetOf(c, c.fixed), o);
      expect(r.verdict).toBe('ok');
      expect(r.complete).toBe(true);
      expect(description).toContain(`${c.fixed}, clean after ${r.executions} executions`);
    }, 120_000);
  });
}

describe('lost-wakeup-kicks, parametrised', () => {
  it.each([
    [1, 1],
    [2, 2],
    [3, 3],
    [1, 3],
    [3, 1],
  ])(
    'N=%i K=%i: the shrunk counterexample has 6 + 2N + N·K decision points, within the 6 + N + 2·N·K steps of the SPIN reference',
    (N, K) => {
      const target: Target = {
        scenario: loadScenario(pathOf('lost-wakeup-kicks'), { N, K }),
        profile: 'linux-6.4-rc5',
      };
      const r = explore(target, { strategy: 'dfs', preemptions: 2 });
      const ex = replayDeviations(target, r.counterexample!.deviations, { slices: true });
      // the release's flush hangs: its wake-up reached the worker inside the window
      expect(ex.violation?.message).toBe('qemu-3 waits on completion vhost_flush_struct.wait_event');
      const length = counterexampleLength(ex);
      // decision points: one off the default schedule, the last
      expect(length.decisions).toBe(6 + 2 * N + N * K);
      expect(length.decisions).toBeLessThanOrEqual(6 + N + 2 * N * K);
      expect(r.counterexample!.deviations.length).toBe(length.decisions);
      expect(length.deviations).toBe(1);
      expect(r.counterexample!.deviations.slice(0, -1).every((v) => v === 0)).toBe(true);
      // task switches (the blocks of the printed interleaving) and scheduler slices, as the
      // scenario's description counts them
      expect(length.switches).toBe(6 + N);
      expect(length.slices).toBe(16 + 2 * N + N * K);
    },
  );

  it('N=3 K=3: the fixed loop is complete without preemptions, in fewer executions with sleep sets, as the description states', () => {
    const target: Target = {
      scenario: loadScenario(pathOf('lost-wakeup-kicks'), { N: 3, K: 3 }),
      profile: 'linux-6.4',
    };
    const description = target.scenario.doc.description ?? '';
    const reduced = explore(target, { strategy: 'dfs', preemptions: 0, runs: 100_000 });
    const every = explore(target, { strategy: 'dfs', preemptions: 0, runs: 100_000, por: false });
    for (const r of [reduced, every]) {
      expect(r.verdict).toBe('ok');
      expect(r.complete).toBe(true);
    }
    expect(reduced.executions).toBeLessThan(every.executions);
    expect(description.replace(/\s+/g, ' ')).toContain(
      `linux-6.4, clean after ${reduced.executions} executions (complete without preemptions, with sleep sets; ${every.executions} with --no-por)`,
    );
  }, 60_000);

  it('a queueing wake-up can be lost too: random schedules also hang the release in its flush', () => {
    const target: Target = {
      scenario: loadScenario(pathOf('lost-wakeup-kicks'), { N: 2, K: 2 }),
      profile: 'linux-6.4-rc5',
    };
    const seen = new Set<string>();
    for (let seed = 1; seed <= 20 && seen.size < 2; seed++) {
      const p = explore(target, { strategy: 'random', seed, runs: 200, shrink: false });
      if (p.counterexample) seen.add(p.counterexample.violation.message);
    }
    expect([...seen].sort()).toEqual([
      'qemu-3 waits on completion vhost_flush_struct.wait_event',
      'qemu-3 waits on completion vhost_task.exited',
    ]);
  });
});
