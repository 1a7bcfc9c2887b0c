/**
 * `vhostsim check` (the explorer: search the interleavings and faults of a scenario on one
 * profile for a violated invariant, a deadlock, a hang or a failed expectation; print the
 * shrunk counterexample and save it as a replay file) and `vhostsim replay` (re-run a replay
 * file exactly, print its interleaving or export its trace).
 *
 * Exit status: check — 0 nothing found, 1 a counterexample, 2 bad input; replay — 1 the
 * counterexample reproduced (the violation still holds), 0 it did not, 2 bad input.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { formatViolation, type Target, type Violation, violationSignature } from '../explore/execute.js';
import {
  type ExploreProgress,
  explore,
  mergeShards,
  ShardMergeError,
  type ShardReport,
  STRATEGIES,
  type Strategy,
} from '../explore/explore.js';
import {
  answerCount,
  type CounterexampleLength,
  counterexampleLength,
  exportTrace,
  FAULT_KINDS,
  type FaultKind,
  faultFlags,
  formatInterleaving,
  makeReplayFile,
  ReplayFileError,
  readReplayFile,
  replay,
  replayScenarioPath,
  replayTarget,
} from '../explore/replay.js';
import { findProfile } from '../profiles/eras.js';
import { closest } from '../scenario/errors.js';
import type { LoadedScenario } from '../scenario/load.js';
import { colors } from '../views/common.js';
import { loadScenario, parseNonNegativeInt, selectProfiles, writeFileAtomic } from './common.js';
import { CliError, EXIT_FAILED, EXIT_OK, type Io, stdoutColor } from './io.js';
import type { CommandContext } from './run.js';

function parsePositiveInt(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1)
    throw new InvalidArgumentError('expected a positive integer.');
  return Number(value);
}

/** JSON with two-space indentation, but lists of numbers on one line. */
function compactJson(v: unknown): string {
  return JSON.stringify(v, null, 2).replace(
    /\[\s*(-?\d+(?:,\s*-?\d+)*)\s*\]/g,
    (_m, inner: string) => `[${inner.split(/,\s*/).join(', ')}]`,
  );
}

interface CheckOptions {
  profile?: string;
  strategy: Strategy;
  runs?: number;
  seed?: number;
  preemptions: number;
  depth: number;
  faults?: FaultKind[];
  maxSteps?: number;
  workers: number;
  shard?: { index: number; count: number };
  merge?: string[];
  output?: string;
  json?: boolean;
  shrink: boolean;
  por: boolean;
  param: Record<string, number>;
}

/** `--param NAME=value` (repeatable) into a map of scenario parameters. */
function parseParam(value: string, prev: Record<string, number>): Record<string, number> {
  const m = /^([A-Za-z_]\w*)=(\d+)$/.exec(value);
  if (!m) throw new InvalidArgumentError('expected NAME=value with a non-negative integer value.');
  return { ...prev, [m[1]!]: Number(m[2]) };
}

/** `--faults alloc,signals`: a comma-separated list of fault kinds. */
function parseFaults(value: string): FaultKind[] {
  const kinds = value.split(',').map((x) => x.trim());
  for (const k of kinds)
    if (!(FAULT_KINDS as readonly string[]).includes(k)) {
      const hint = closest(k, [...FAULT_KINDS]);
      throw new InvalidArgumentError(
        `expected a comma-separated list of ${FAULT_KINDS.join(', ')}, found "${k}"${hint ? `; did you mean "${hint}"?` : '.'}`,
      );
    }
  return FAULT_KINDS.filter((k) => kinds.includes(k));
}

function parseShard(value: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(value);
  const index = Number(m?.[1]);
  const count = Number(m?.[2]);
  if (!m || count < 1 || index < 1 || index > count)
    throw new InvalidArgumentError('expected i/n with 1 ≤ i ≤ n, e.g. 2/4.');
  return { index, count };
}

/** A progress line on stderr: rewritten in place on a terminal, a line every 10 s elsewhere. */
function progressReporter(io: Io, workers: number) {
  const tty = io.stderrIsTTY;
  let last = 0;
  let shown = false;
  return {
    update(p: ExploreProgress) {
      const line = `check: ${p.executions} executions (${Math.round(p.executionsPerSec)}/s${workers > 1 ? `, ${workers} workers` : ''}), ${p.states} states, depth ${p.depth}, ${(p.elapsedMs / 1000).toFixed(1)} s`;
      if (tty) {
        io.err(`\r\u001b[K${line}`);
        shown = true;
      } else if (p.elapsedMs - last >= 10_000) {
        last = p.elapsedMs;
        io.err(`${line}\n`);
      }
    },
    done() {
      if (tty && shown) io.err('\r\u001b[K');
    },
  };
}

/** The search's bounds as the JSON summary states them (shards of one search share them). */
interface Bounds {
  runs: number;
  preemptions?: number;
  /** dfs without preemptions: one order of independent steps is explored (sleep sets) */
  reduction?: 'sleep-sets';
  seed?: number;
  depth?: number;
  faults: string[];
  maxSteps?: number;
}

/** What `check` prints, from a search or from merged shards. */
interface CheckOutcome {
  scenario: string;
  /** the scenario's parameters in effect (`params`, `--param`), when it has any */
  params?: Record<string, number>;
  file: string;
  /** sha256 of the scenario document: shards of one search have the same */
  digest: string;
  profile: string;
  strategy: Strategy;
  bounds: Bounds;
  verdict: 'violation' | 'ok';
  complete: boolean;
  executions: number;
  states: number;
  depth: number;
  elapsedMs: number;
  counterexample?: {
    violation: Violation;
    /** deviations from the default schedule (Counterexample.deviations) */
    deviations: number[];
    found: number[];
    /** the found execution's deviations, counted alike */
    foundLength: number;
    /** the found execution's violation, when it is not the shrunk one's */
    foundViolation?: Violation;
    foundAt: number;
    shrinkRuns: number;
    shrinkMs: number;
    replayFile?: string;
    /** the shrunk counterexample's length, replayed (absent in summaries of older versions) */
    length?: CounterexampleLength;
    interleaving: string[];
  };
  shard?: ShardReport;
}

const SHARD_FORMAT = 'vhostsim-check-shard';

function describeBounds(o: Pick<CheckOutcome, 'strategy' | 'bounds'>): string {
  const b = o.bounds;
  return o.strategy === 'dfs'
    ? `dfs, ≤ ${b.preemptions} preemptions${b.reduction ? ', sleep sets' : ''}, ≤ ${b.runs} executions`
    : `${o.strategy}, seed ${b.seed}, ${b.runs} executions${o.strategy === 'pct' ? `, depth ${b.depth}` : ''}`;
}

function printOutcome(io: Io, x: CheckOutcome, json: boolean): void {
  const rate = x.elapsedMs > 0 ? (x.executions * 1000) / x.elapsedMs : 0;
  const cx = x.counterexample;
  if (json) {
    const { digest, shard, ...rest } = x;
    io.out(
      `${JSON.stringify(
        {
          ...rest,
          elapsedMs: Math.round(x.elapsedMs),
          executionsPerSec: Math.round(rate),
          ...(cx ? { counterexample: { ...cx, shrinkMs: Math.round(cx.shrinkMs) } } : {}),
          ...(shard ? { shard: { format: SHARD_FORMAT, digest, ...shard } } : {}),
        },
        null,
        2,
      )}\n`,
    );
    return;
  }
  const c = colors(stdoutColor(io));
  const params = x.params
    ? ` [${Object.entries(x.params)
        .map(([n, v]) => `${n}=${v}`)
        .join(' ')}]`
    : '';
  const lines = [
    `vhostsim check ${x.scenario}${params} on ${x.profile} (${describeBounds(x)})${x.shard ? `, shard ${x.shard.index}/${x.shard.count}` : ''}`,
  ];
  const stats = `${x.executions} executions, ${x.states} states, depth ${x.depth}, ${(x.elapsedMs / 1000).toFixed(2)} s, ${Math.round(rate)} executions/s`;
  if (cx) {
    lines.push(
      c.red(`counterexample found after ${cx.foundAt} executions`),
      `  ${stats}`,
      '',
      formatViolation(cx.violation),
      ...(cx.foundViolation
        ? [
            `  (as found: ${cx.foundViolation.kind}: ${cx.foundViolation.message}; shrinking keeps the tasks that hang, not what they wait on)`,
          ]
        : []),
      '',
      `choices (${cx.deviations.length}, shrunk from ${cx.foundLength} in ${cx.shrinkRuns} runs, ${(cx.shrinkMs / 1000).toFixed(2)} s; 0 = the default schedule): [${cx.deviations.join(', ')}]`,
      ...(cx.length
        ? [
            `length: ${cx.length.decisions} decision points (${cx.length.deviations} off the default schedule), ${cx.length.slices} scheduler slices, ${cx.length.switches} task switches`,
          ]
        : []),
      '',
      'interleaving:',
      cx.interleaving.join('\n'),
      '',
      cx.replayFile
        ? `saved to ${cx.replayFile}: vhostsim replay ${cx.replayFile} [--format ftrace|chrome]`
        : x.shard
          ? 'merge the shards with vhostsim check --merge <summary.json…> --output <file> to save it'
          : 'save it with --output <file>, then: vhostsim replay <file>',
    );
  } else {
    lines.push(
      c.green('no violation found'),
      `  ${stats}`,
      x.shard
        ? '  this shard alone'
        : x.complete
          ? `  complete: every execution with at most ${x.bounds.preemptions} preemptions${x.bounds.faults.length ? ' and 1 injected fault' : ''} was explored${x.bounds.reduction ? ', up to the order of independent steps (sleep sets)' : ''}`
          : '  not exhaustive: the execution budget ran out first (raise --runs)',
    );
  }
  if (x.shard)
    lines.push(
      `shard ${x.shard.index}/${x.shard.count}: merge the --json summaries of every shard with vhostsim check --merge <summary.json…>`,
    );
  io.out(`${lines.join('\n')}\n`);
}

/** Where a counterexample is saved without --output: $TMPDIR/vhostsim-<scenario>[-N=v…]-<profile>.replay.json */
function defaultReplayPath(sc: LoadedScenario, profile: string): string {
  const params = Object.entries(sc.params ?? {})
    .map(([n, v]) => `-${n}=${v}`)
    .join('');
  const safe = `${sc.doc.name}${params}-${profile}`.replace(/[^\w.=-]/g, '_');
  return join(tmpdir(), `vhostsim-${safe}.replay.json`);
}

/** Save the counterexample as a replay file; returns its path. */
function saveReplay(
  file: string,
  output: string,
  target: Target,
  x: Pick<CheckOutcome, 'strategy' | 'bounds' | 'executions'>,
  cx: NonNullable<CheckOutcome['counterexample']>,
): string {
  const rf = makeReplayFile({
    scenarioPath: file,
    replayPath: output,
    target,
    deviations: cx.deviations,
    violation: cx.violation,
    search: {
      strategy: x.strategy,
      executions: x.executions,
      foundAt: cx.foundAt,
      found: cx.found,
      ...(x.strategy === 'dfs' ? { preemptions: x.bounds.preemptions } : { seed: x.bounds.seed }),
    },
  });
  writeFileAtomic(output, `${compactJson(rf)}\n`);
  return output;
}

const digestOf = (sc: LoadedScenario) => createHash('sha256').update(JSON.stringify(sc.doc)).digest('hex');

/** Read the shard summaries and merge them into the outcome of the unsharded search. */
function mergeSummaries(paths: readonly string[]): CheckOutcome {
  const shards = paths.map((path) => {
    let v: unknown;
    try {
      v = JSON.parse(readFileSync(path, 'utf8'));
    } catch (e) {
      throw new CliError(
        `vhostsim: ${path}: cannot read a summary (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      );
    }
    const x = v as CheckOutcome & { shard?: ShardReport & { format?: string; digest?: string } };
    if (x === null || typeof x !== 'object' || x.shard?.format !== SHARD_FORMAT)
      throw new CliError(`vhostsim: ${path}: not the --json summary of a check --shard run`);
    return { path, x, digest: x.shard.digest ?? '' };
  });
  const first = shards[0]!;
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  for (const s of shards.slice(1)) {
    const differs = (
      [
        ['scenario', s.x.scenario, first.x.scenario],
        ['scenario document', s.digest, first.digest],
        ['profile', s.x.profile, first.x.profile],
        ['strategy', s.x.strategy, first.x.strategy],
        ['search bound', s.x.bounds, first.x.bounds],
        ['shard count', s.x.shard!.count, first.x.shard!.count],
      ] as const
    ).find(([, a, b]) => !same(a, b));
    if (differs)
      throw new CliError(
        `vhostsim: ${s.path} and ${first.path} are not shards of one search: the ${differs[0]} differs (${JSON.stringify(differs[1])} vs ${JSON.stringify(differs[2])})`,
      );
  }
  let m: ReturnType<typeof mergeShards>;
  try {
    m = mergeShards(
      first.x.strategy,
      shards.map((s) => s.x.shard!),
      first.x.bounds.runs,
    );
  } catch (e) {
    if (e instanceof ShardMergeError) throw new CliError(`vhostsim: cannot merge: ${e.message}`);
    throw e;
  }
  let counterexample: CheckOutcome['counterexample'];
  if (m.found) {
    const owner = shards.find((s) => s.x.shard!.index === m.found!.shard)!;
    const cx = owner.x.counterexample;
    if (!cx || !same(cx.found, m.found.choices))
      throw new CliError(`vhostsim: ${owner.path}: its counterexample is not the one its units report`);
    if (!Array.isArray(cx.deviations))
      throw new CliError(
        `vhostsim: ${owner.path}: written by an older vhostsim (its counterexample lists raw choices): run every shard with this version`,
      );
    const { replayFile: _saved, ...rest } = cx;
    counterexample = { ...rest, foundAt: m.found.foundAt };
  }
  const { shard: _shard, ...base } = first.x;
  return {
    ...base,
    digest: first.digest,
    verdict: m.verdict,
    complete: m.complete,
    executions: m.executions,
    states: m.states,
    depth: m.depth,
    // the shards ran side by side: the merged search took as long as the slowest
    elapsedMs: Math.max(...shards.map((s) => s.x.elapsedMs)),
    ...(counterexample ? { counterexample } : {}),
  };
}

/** The explorer target of merged shards (for their replay file). */
function mergedTarget(sc: LoadedScenario, x: CheckOutcome): Target {
  return {
    scenario: sc,
    profile: x.profile,
    ...faultFlags(x.bounds.faults),
    ...(x.bounds.maxSteps !== undefined ? { maxSteps: x.bounds.maxSteps } : {}),
  };
}

export function registerCheck(program: Command, ctx: CommandContext): void {
  program
    .command('check')
    .description(
      'explore the interleavings (and opt-in faults) of a scenario on one profile for violated invariants, deadlocks, hangs and failed expectations',
    )
    .argument('[file]', 'scenario file (YAML)')
    .option('--profile <name>', "the profile to check (default: the scenario's only profile)")
    .addOption(new Option('--strategy <s>', 'search strategy').choices([...STRATEGIES]).default('dfs'))
    .addOption(
      new Option(
        '--runs <n>',
        'at most this many executions (default: dfs 10000, random/pct 1000)',
      ).argParser(parsePositiveInt),
    )
    .addOption(
      new Option('--seed <n>', 'seed of the random and pct strategies').argParser(parseNonNegativeInt),
    )
    .addOption(
      new Option('--preemptions <k>', 'dfs: at most k preemptions per execution')
        .argParser(parseNonNegativeInt)
        .default(2),
    )
    .addOption(
      new Option('--depth <d>', 'pct: bug depth (d−1 priority change points)')
        .argParser(parsePositiveInt)
        .default(3),
    )
    .addOption(
      new Option(
        '--faults <kinds>',
        'also inject faults: alloc (allocation failures), signals (SIGKILL/SIGSTOP arriving for a user process before any slice), or both: alloc,signals',
      ).argParser(parseFaults),
    )
    .addOption(
      new Option(
        '--max-steps <n>',
        'bounded liveness: a run needing more scheduler slices is a violation',
      ).argParser(parsePositiveInt),
    )
    .addOption(
      new Option(
        '--workers <n>',
        'run the executions on n threads: this one and n − 1 worker threads (same result as 1)',
      )
        .argParser(parsePositiveInt)
        .default(1),
    )
    .addOption(
      new Option(
        '--shard <i/n>',
        'run only part i of n of the search (merge the --json summaries with --merge)',
      ).argParser(parseShard),
    )
    .option('--merge <summary...>', 'combine the --json summaries of every shard of one search')
    .option(
      '--output <file>',
      'save the counterexample as a replay file here (default: $TMPDIR/vhostsim-<scenario>-<profile>.replay.json)',
    )
    .option(
      '--param <name=value>',
      "set a scenario parameter (the file's `params`), repeatable",
      parseParam,
      {},
    )
    .option('--no-shrink', 'keep the counterexample as found')
    .option(
      '--no-por',
      'dfs without preemptions: explore every order of independent steps too (no sleep sets)',
    )
    .option('--json', 'print a JSON summary')
    .action((file: string | undefined, opts: CheckOptions) => {
      const { io } = ctx;
      if (opts.merge) {
        if (file !== undefined || opts.shard)
          throw new CliError(
            'vhostsim: check --merge takes shard summaries only (no scenario file, no --shard)',
          );
        const x = mergeSummaries(opts.merge);
        if (x.counterexample) {
          // as an unsharded search saves it: where --output says, else in the temporary
          // directory — then only if the scenario file is still the one the shards searched
          let sc: LoadedScenario | null = null;
          try {
            sc = loadScenario(x.file, x.params ?? {});
          } catch (e) {
            if (opts.output !== undefined) throw e;
          }
          if (sc && digestOf(sc) !== x.digest) {
            if (opts.output !== undefined)
              throw new CliError(
                `vhostsim: ${x.file} is not the scenario the shards searched (it has changed)`,
              );
            sc = null;
          }
          if (sc)
            x.counterexample.replayFile = saveReplay(
              x.file,
              opts.output ?? defaultReplayPath(sc, x.profile),
              mergedTarget(sc, x),
              x,
              x.counterexample,
            );
        }
        printOutcome(io, x, opts.json ?? false);
        ctx.code = x.counterexample ? EXIT_FAILED : EXIT_OK;
        return;
      }
      if (file === undefined)
        throw new CliError('vhostsim: check needs a scenario file (or --merge <summary…>)');
      const sc = loadScenario(file, opts.param);
      let profile: string;
      if (opts.profile === undefined) {
        if (sc.doc.profiles.length !== 1)
          throw new CliError(
            `vhostsim: check explores one profile: name it with --profile (${sc.file} has ${sc.doc.profiles.join(', ')})`,
          );
        profile = sc.doc.profiles[0]!;
      } else {
        const ps = selectProfiles(sc, opts.profile, '--profile', io);
        if (ps.length !== 1) throw new CliError('vhostsim: check explores one profile at a time');
        profile = ps[0]!;
      }
      if (!findProfile(profile)) throw new CliError(`vhostsim: unknown profile "${profile}"`);
      const target: Target = {
        scenario: sc,
        profile,
        ...faultFlags(opts.faults ?? []),
        ...(opts.maxSteps !== undefined ? { maxSteps: opts.maxSteps } : {}),
      };
      const progress = progressReporter(io, opts.workers);
      const r = explore(target, {
        strategy: opts.strategy,
        ...(opts.runs !== undefined ? { runs: opts.runs } : {}),
        ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
        preemptions: opts.preemptions,
        depth: opts.depth,
        shrink: opts.shrink,
        por: opts.por,
        workers: opts.workers,
        ...(opts.shard ? { shard: opts.shard } : {}),
        onProgress: (p) => progress.update(p),
        now: () => io.now(),
      });
      progress.done();
      const x: CheckOutcome = {
        scenario: sc.doc.name,
        ...(sc.params ? { params: sc.params } : {}),
        file,
        digest: digestOf(sc),
        profile,
        strategy: r.strategy,
        bounds: {
          runs: opts.runs ?? (opts.strategy === 'dfs' ? 10_000 : 1000),
          ...(opts.strategy === 'dfs' ? { preemptions: opts.preemptions } : { seed: opts.seed ?? 1 }),
          ...(r.reduced ? { reduction: 'sleep-sets' as const } : {}),
          ...(opts.strategy === 'pct' ? { depth: opts.depth } : {}),
          faults: opts.faults ?? [],
          ...(opts.maxSteps !== undefined ? { maxSteps: opts.maxSteps } : {}),
        },
        verdict: r.verdict,
        complete: r.complete,
        executions: r.executions,
        states: r.states,
        depth: r.depth,
        elapsedMs: r.elapsedMs,
        ...(r.shard ? { shard: r.shard } : {}),
      };
      const cx = r.counterexample;
      if (cx) {
        const replayed = replay(target, cx);
        x.counterexample = {
          violation: cx.violation,
          deviations: cx.deviations,
          found: cx.found,
          foundLength: cx.foundLength,
          ...(violationSignature(cx.foundViolation) !== violationSignature(cx.violation)
            ? { foundViolation: cx.foundViolation }
            : {}),
          foundAt: cx.foundAt,
          shrinkRuns: cx.shrinkRuns,
          shrinkMs: cx.shrinkMs,
          length: counterexampleLength(replayed.execution),
          interleaving: formatInterleaving(replayed.execution).trimEnd().split('\n'),
        };
        // saved where --output says, else (not for a shard: --merge saves the search's) in the
        // temporary directory under a name made of the scenario, its parameters and the profile
        const output = opts.output ?? (opts.shard ? undefined : defaultReplayPath(sc, profile));
        if (output !== undefined)
          x.counterexample.replayFile = saveReplay(file, output, target, x, x.counterexample);
      }
      printOutcome(io, x, opts.json ?? false);
      ctx.code = cx ? EXIT_FAILED : EXIT_OK;
    });

  program
    .command('replay')
    .description(
      're-run a counterexample saved by check --output, exactly; print its interleaving or export its trace',
    )
    .argument('<file>', 'replay file (JSON)')
    .addOption(
      new Option('--format <format>', 'print the trace instead of the interleaving').choices([
        'ftrace',
        'chrome',
      ]),
    )
    .option('--output <file>', 'write the output here (atomically) instead of to stdout')
    .action((file: string, opts: { format?: 'ftrace' | 'chrome'; output?: string }) => {
      const { io } = ctx;
      let rf: ReturnType<typeof readReplayFile>;
      try {
        rf = readReplayFile(file);
      } catch (e) {
        if (e instanceof ReplayFileError) throw new CliError(`vhostsim: ${e.message}`);
        throw e;
      }
      if (!findProfile(rf.profile)) throw new CliError(`vhostsim: ${file}: unknown profile "${rf.profile}"`);
      const target = replayTarget(rf, replayScenarioPath(rf, file));
      const { execution, reproduced } = replay(target, rf);
      let text: string;
      if (opts.format)
        text = exportTrace(execution, opts.format, {
          scenario: rf.name,
          profile: rf.profile,
          seed: rf.seed,
          ...(rf.deviations ? { deviations: rf.deviations } : { choices: rf.choices }),
        });
      else
        text = `replay of ${rf.name} on ${rf.profile}, ${answerCount(rf)} choices\n\n${formatInterleaving(execution)}`;
      if (opts.output !== undefined) writeFileAtomic(opts.output, text);
      else io.out(text);
      const summary = reproduced
        ? `reproduced: ${execution.violation!.kind}: ${execution.violation!.message}\n`
        : `did not reproduce: expected ${rf.violation.kind}: ${rf.violation.message}; got ${execution.violation ? `${execution.violation.kind}: ${execution.violation.message}` : 'no violation'} (has the model or the scenario changed?)\n`;
      if (opts.format || opts.output !== undefined) io.err(summary);
      else io.out(`\n${summary}`);
      ctx.code = reproduced ? EXIT_FAILED : EXIT_OK;
    });
}
