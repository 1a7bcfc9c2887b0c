/**
 * `vhostsim run` (each profile's step outcomes and checks) and `vhostsim compare` (the
 * profiles side by side, differences marked).
 */
import { type Command, Option } from 'commander';
import { colors } from '../views/common.js';
import { compareRuns, renderComparison } from '../views/compare.js';
import { renderRun, summarize } from '../views/run.js';
import { checkLabel, loadScenario, parseNonNegativeInt, runProfiles, selectProfiles } from './common.js';
import { EXIT_FAILED, EXIT_OK, type Io, stdoutColor } from './io.js';

export interface CommandContext {
  io: Io;
  /** the exit status the command chose */
  code: number;
}

const seedOption = () =>
  new Option('--seed <n>', "seed of the scheduling choices (default: the scenario's, else 1)").argParser(
    parseNonNegativeInt,
  );

export function registerRun(program: Command, ctx: CommandContext): void {
  program
    .command('run')
    .description('run a scenario on every profile it names (or one) and check its expectations')
    .argument('<file>', 'scenario file (YAML)')
    .option('--profile <name>', 'run this profile only')
    .addOption(seedOption())
    .option('--json', 'print the results as JSON')
    .action((file: string, opts: { profile?: string; seed?: number; json?: boolean }) => {
      const { io } = ctx;
      const sc = loadScenario(file);
      const profiles = selectProfiles(sc, opts.profile, '--profile', io);
      const results = runProfiles(
        sc,
        profiles,
        { ...(opts.seed !== undefined ? { seed: opts.seed } : {}), trace: false },
        io,
      ).map(summarize);
      const failed = results.some((r) => r.failures.length > 0);
      if (opts.json)
        io.out(`${JSON.stringify({ scenario: sc.doc.name, file, ok: !failed, results }, null, 2)}\n`);
      else io.out(renderRun(sc.doc.name, file, results, colors(stdoutColor(io))));
      ctx.code = failed ? EXIT_FAILED : EXIT_OK;
    });

  program
    .command('compare')
    .description(
      'run a scenario on several profiles and show outcomes, thread placement and accounting side by side',
    )
    .argument('<file>', 'scenario file (YAML)')
    .option('--profiles <list>', "comma-separated profiles (default: the scenario's)")
    .option('--at <label>', 'compare placement and accounting at this label only (default: every label)')
    .addOption(seedOption())
    .option('--json', 'print the comparison as JSON')
    .action((file: string, opts: { profiles?: string; at?: string; seed?: number; json?: boolean }) => {
      const { io } = ctx;
      const sc = loadScenario(file);
      const profiles = selectProfiles(sc, opts.profiles, '--profiles', io);
      if (opts.at !== undefined) checkLabel(sc, opts.at);
      const results = runProfiles(
        sc,
        profiles,
        { ...(opts.seed !== undefined ? { seed: opts.seed } : {}), trace: false },
        io,
      ).map(summarize);
      const cmp = compareRuns(results, opts.at !== undefined ? [opts.at] : undefined);
      io.out(
        opts.json ? `${JSON.stringify(cmp, null, 2)}\n` : renderComparison(cmp, colors(stdoutColor(io))),
      );
      ctx.code = results.some((r) => r.failures.length) ? EXIT_FAILED : EXIT_OK;
    });
}
