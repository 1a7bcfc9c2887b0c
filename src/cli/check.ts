/**
 * `vhostsim check` (the explorer: search the interleavings and faults of a scenario on one
 * profile for a violated invariant, a deadlock, a hang or a failed expectation; print the
 * shrunk counterexample and save it as a replay file) and `vhostsim replay` (re-run a replay
 * file exactly, print its interleaving or export its trace).
 *
 * Exit status: check — 0 nothing found, 1 a counterexample, 2 bad input; replay — 1 the
 * counterexample reproduced (the violation still holds), 0 it did not, 2 bad input.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { formatViolation, type Target } from '../explore/execute.js';
import { explore, STRATEGIES, type Strategy } from '../explore/explore.js';
import {
  exportTrace,
  formatInterleaving,
  makeReplayFile,
  ReplayFileError,
  readReplayFile,
  replay,
  replayScenarioPath,
  replayTarget,
} from '../explore/replay.js';
import { findProfile } from '../profiles/eras.js';
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
  faults?: 'alloc';
  maxSteps?: number;
  output?: string;
  json?: boolean;
  shrink: boolean;
  param: Record<string, number>;
}

/** `--param NAME=value` (repeatable) into a map of scenario parameters. */
function parseParam(value: string, prev: Record<string, number>): Record<string, number> {
  const m = /^([A-Za-z_]\w*)=(\d+)$/.exec(value);
  if (!m) throw new InvalidArgumentError('expected NAME=value with a non-negative integer value.');
  return { ...prev, [m[1]!]: Number(m[2]) };
}

/** A progress line on stderr: rewritten in place on a terminal, a line every 10 s elsewhere. */
function progressReporter(io: Io) {
  const tty = io.stderrIsTTY;
  let last = 0;
  let shown = false;
  return {
    update(p: {
      executions: number;
      states: number;
      depth: number;
      elapsedMs: number;
      executionsPerSec: number;
    }) {
      const line = `check: ${p.executions} executions (${Math.round(p.executionsPerSec)}/s), ${p.states} states, depth ${p.depth}, ${(p.elapsedMs / 1000).toFixed(1)} s`;
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

export function registerCheck(program: Command, ctx: CommandContext): void {
  program
    .command('check')
    .description(
      'explore the interleavings (and opt-in faults) of a scenario on one profile for violated invariants, deadlocks, hangs and failed expectations',
    )
    .argument('<file>', 'scenario file (YAML)')
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
    .addOption(new Option('--faults <kind>', 'also inject faults of this kind').choices(['alloc']))
    .addOption(
      new Option(
        '--max-steps <n>',
        'bounded liveness: a run needing more scheduler slices is a violation',
      ).argParser(parsePositiveInt),
    )
    .option('--output <file>', 'save the counterexample as a replay file')
    .option(
      '--param <name=value>',
      "set a scenario parameter (the file's `params`), repeatable",
      parseParam,
      {},
    )
    .option('--no-shrink', 'keep the counterexample as found')
    .option('--json', 'print a JSON summary')
    .action((file: string, opts: CheckOptions) => {
      const { io } = ctx;
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
        faultAlloc: opts.faults === 'alloc',
        ...(opts.maxSteps !== undefined ? { maxSteps: opts.maxSteps } : {}),
      };
      const progress = progressReporter(io);
      const r = explore(target, {
        strategy: opts.strategy,
        ...(opts.runs !== undefined ? { runs: opts.runs } : {}),
        ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
        preemptions: opts.preemptions,
        depth: opts.depth,
        shrink: opts.shrink,
        onProgress: (p) => progress.update(p),
        now: () => io.now(),
      });
      progress.done();
      const rate = r.elapsedMs > 0 ? (r.executions * 1000) / r.elapsedMs : 0;
      const bounds =
        opts.strategy === 'dfs'
          ? `dfs, ≤ ${opts.preemptions} preemptions, ≤ ${opts.runs ?? 10_000} executions`
          : `${opts.strategy}, seed ${opts.seed ?? 1}, ${opts.runs ?? 1000} executions${opts.strategy === 'pct' ? `, depth ${opts.depth}` : ''}`;
      const cx = r.counterexample;
      let replayPath: string | undefined;
      let interleaving: string | undefined;
      if (cx) {
        const replayed = replay(target, { choices: cx.choices, violation: cx.violation });
        interleaving = formatInterleaving(replayed.execution);
        if (opts.output !== undefined) {
          const rf = makeReplayFile({
            scenarioPath: file,
            replayPath: opts.output,
            target,
            choices: cx.choices,
            violation: cx.violation,
            search: {
              strategy: r.strategy,
              executions: r.executions,
              foundAt: cx.foundAt,
              found: cx.found,
              ...(opts.strategy === 'dfs' ? { preemptions: opts.preemptions } : { seed: opts.seed ?? 1 }),
            },
          });
          writeFileAtomic(opts.output, `${compactJson(rf)}\n`);
          replayPath = opts.output;
        }
      }
      if (opts.json) {
        io.out(
          `${JSON.stringify(
            {
              scenario: sc.doc.name,
              file,
              ...(sc.params ? { params: sc.params } : {}),
              profile,
              strategy: r.strategy,
              bounds: {
                runs: opts.runs ?? (opts.strategy === 'dfs' ? 10_000 : 1000),
                ...(opts.strategy === 'dfs' ? { preemptions: opts.preemptions } : { seed: opts.seed ?? 1 }),
                ...(opts.strategy === 'pct' ? { depth: opts.depth } : {}),
                faults: opts.faults ? [opts.faults] : [],
                ...(opts.maxSteps !== undefined ? { maxSteps: opts.maxSteps } : {}),
              },
              verdict: r.verdict,
              complete: r.complete,
              executions: r.executions,
              states: r.states,
              depth: r.depth,
              elapsedMs: Math.round(r.elapsedMs),
              executionsPerSec: Math.round(rate),
              ...(cx
                ? {
                    counterexample: {
                      violation: cx.violation,
                      choices: cx.choices,
                      found: cx.found,
                      foundAt: cx.foundAt,
                      shrinkRuns: cx.shrinkRuns,
                      shrinkMs: Math.round(cx.shrinkMs),
                      ...(replayPath ? { replayFile: replayPath } : {}),
                      interleaving: interleaving!.trimEnd().split('\n'),
                    },
                  }
                : {}),
            },
            null,
            2,
          )}\n`,
        );
      } else {
        const c = colors(stdoutColor(io));
        const params = sc.params
          ? ` [${Object.entries(sc.params)
              .map(([n, v]) => `${n}=${v}`)
              .join(' ')}]`
          : '';
        const lines = [`vhostsim check ${sc.doc.name}${params} on ${profile} (${bounds})`];
        const stats = `${r.executions} executions, ${r.states} states, depth ${r.depth}, ${(r.elapsedMs / 1000).toFixed(2)} s, ${Math.round(rate)} executions/s`;
        if (cx) {
          lines.push(
            c.red(`counterexample found after ${cx.foundAt} executions`),
            `  ${stats}`,
            '',
            formatViolation(cx.violation),
            '',
            `choices (${cx.choices.length}, shrunk from ${cx.found.length} in ${cx.shrinkRuns} runs, ${(cx.shrinkMs / 1000).toFixed(2)} s): [${cx.choices.join(', ')}]`,
            '',
            'interleaving:',
            interleaving!.trimEnd(),
            '',
            replayPath
              ? `saved to ${replayPath}: vhostsim replay ${replayPath} [--format ftrace|chrome]`
              : 'save it with --output <file>, then: vhostsim replay <file>',
          );
        } else {
          lines.push(
            c.green('no violation found'),
            `  ${stats}`,
            r.complete
              ? `  complete: every execution with at most ${opts.preemptions} preemptions${opts.faults ? ' and 1 injected fault' : ''} was explored`
              : '  not exhaustive: the execution budget ran out first (raise --runs)',
          );
        }
        io.out(`${lines.join('\n')}\n`);
      }
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
          choices: rf.choices,
        });
      else
        text = `replay of ${rf.name} on ${rf.profile}, ${rf.choices.length} choices\n\n${formatInterleaving(execution)}`;
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
