/**
 * `vhostsim trace`: the trace of one run as ftrace text (/sys/kernel/tracing/trace) or as
 * Chrome trace-event JSON for ui.perfetto.dev, to stdout or atomically to --output.
 */
import { type Command, Option } from 'commander';
import type { RunResult } from '../scenario/run.js';
import { type TaskIdentity, toChromeTrace } from '../trace/chrome.js';
import { formatFtrace } from '../trace/trace.js';
import { loadScenario, parseNonNegativeInt, runProfiles, selectProfiles, writeFileAtomic } from './common.js';
import type { CommandContext } from './run.js';

/** Every task the run's snapshots saw: pid → thread group and name (the latest wins). */
export function snapshotIdentities(r: RunResult): Map<number, TaskIdentity> {
  const ids = new Map<number, TaskIdentity>();
  for (const s of r.snapshots) for (const t of s.tasks) ids.set(t.pid, { tgid: t.tgid, comm: t.comm });
  return ids;
}

export function registerTrace(program: Command, ctx: CommandContext): void {
  program
    .command('trace')
    .description('the trace of a run, as ftrace text or Chrome/Perfetto JSON')
    .argument('<file>', 'scenario file (YAML)')
    .addOption(
      new Option('--format <format>', 'output format').choices(['ftrace', 'chrome']).default('ftrace'),
    )
    .option('--profile <name>', "the profile to trace (default: the scenario's first)")
    .addOption(new Option('--seed <n>', 'seed of the scheduling choices').argParser(parseNonNegativeInt))
    .option('--output <file>', 'write here (atomically) instead of to stdout')
    .option('--json', 'ftrace format: the events as JSON')
    .action(
      (
        file: string,
        opts: {
          format: 'ftrace' | 'chrome';
          profile?: string;
          seed?: number;
          output?: string;
          json?: boolean;
        },
      ) => {
        const { io } = ctx;
        const sc = loadScenario(file);
        const [profile] = selectProfiles(sc, opts.profile, '--profile', io);
        if (opts.profile === undefined && sc.doc.profiles.length > 1)
          io.err(
            `vhostsim: tracing ${profile}, the first of ${sc.doc.profiles.length} profiles (--profile to choose)\n`,
          );
        const [r] = runProfiles(
          sc,
          [profile!],
          { ...(opts.seed !== undefined ? { seed: opts.seed } : {}), trace: true },
          io,
        );
        const events = r!.kernel.trace.events;
        let text: string;
        if (opts.format === 'chrome')
          text = `${JSON.stringify(
            toChromeTrace(events, {
              tasks: snapshotIdentities(r!),
              metadata: { scenario: sc.doc.name, profile, seed: r!.seed, tool: 'vhostsim' },
            }),
          )}\n`;
        else if (opts.json)
          text = `${JSON.stringify({ scenario: sc.doc.name, profile, seed: r!.seed, events }, null, 2)}\n`;
        else text = formatFtrace(events);
        if (opts.output !== undefined) writeFileAtomic(opts.output, text);
        else io.out(text);
      },
    );
}
