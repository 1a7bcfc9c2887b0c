/**
 * The views of a snapshot: `vhostsim ps`, `pstree`, `cgroups` and `proc`, each at a label
 * (`--at`), on one profile (`--profile`) or on every profile the scenario names (each
 * under a `# profile at label` line).
 */
import { type Command, Option } from 'commander';
import { closest } from '../scenario/errors.js';
import type { LoadedScenario } from '../scenario/load.js';
import type { RunResult, Snapshot } from '../scenario/run.js';
import { cgroupTree, renderCgroups } from '../views/cgroups.js';
import { colors } from '../views/common.js';
import { ProcSelectionError, procStatusFiles, renderProcFiles } from '../views/proc.js';
import { psProcessRows, psThreadRows, renderPsProcesses, renderPsThreads } from '../views/ps.js';
import { findNode, pstreeForest, renderPstreeNode } from '../views/pstree.js';
import {
  checkLabel,
  loadScenario,
  memTotalKiB,
  parseNonNegativeInt,
  runProfiles,
  selectProfiles,
  snapshotAt,
} from './common.js';
import { CliError, EXIT_FAILED, EXIT_USAGE } from './io.js';
import type { CommandContext } from './run.js';

interface ViewFlags {
  at: string;
  profile?: string;
  seed?: number;
  json?: boolean;
}

/** Run the scenario for a view and hand each profile's snapshot at --at to `render`. */
function withSnapshots(
  ctx: CommandContext,
  file: string,
  opts: ViewFlags,
  render: (snap: Snapshot, r: RunResult, sc: LoadedScenario) => { text: string; json: unknown },
): void {
  const { io } = ctx;
  const sc = loadScenario(file);
  const profiles = selectProfiles(sc, opts.profile, '--profile', io);
  checkLabel(sc, opts.at);
  const results = runProfiles(
    sc,
    profiles,
    { ...(opts.seed !== undefined ? { seed: opts.seed } : {}), trace: false },
    io,
  );
  const texts: string[] = [];
  const json: unknown[] = [];
  for (const r of results) {
    const snap = snapshotAt(r, opts.at);
    const v = render(snap, r, sc);
    texts.push(results.length > 1 ? `# ${r.profile} at ${opts.at}\n${v.text}` : v.text);
    json.push({ profile: r.profile, label: opts.at, ts: snap.ts, ...(v.json as object) });
  }
  io.out(opts.json ? `${JSON.stringify(json, null, 2)}\n` : texts.join('\n'));
}

const common = (cmd: Command) =>
  cmd
    .argument('<file>', 'scenario file (YAML)')
    .requiredOption('--at <label>', 'the label (or "end") whose snapshot to show')
    .option('--profile <name>', "one profile (default: each of the scenario's)")
    .addOption(new Option('--seed <n>', 'seed of the scheduling choices').argParser(parseNonNegativeInt))
    .option('--json', 'print as JSON');

export function registerViews(program: Command, ctx: CommandContext): void {
  common(
    program.command('ps').description('the tasks at a label, as `ps -eLf` (or `ps aux` with --processes)'),
  )
    .option('--processes', 'one line per process, as `ps aux`')
    .action((file: string, opts: ViewFlags & { processes?: boolean }) => {
      withSnapshots(ctx, file, opts, (snap, _r, sc) => {
        const mem = memTotalKiB(sc.doc);
        return opts.processes
          ? { text: renderPsProcesses(snap, mem), json: { rows: psProcessRows(snap, mem) } }
          : { text: renderPsThreads(snap), json: { rows: psThreadRows(snap) } };
      });
    });

  common(program.command('pstree').description('the process tree at a label, as `pstree -p`'))
    .addOption(new Option('--pid <n>', 'only the subtree of this pid').argParser(parseNonNegativeInt))
    .action((file: string, opts: ViewFlags & { pid?: number }) => {
      withSnapshots(ctx, file, opts, (snap) => {
        let trees = pstreeForest(snap);
        if (opts.pid !== undefined) {
          const n = findNode(trees, opts.pid);
          if (!n)
            throw new CliError(`vhostsim: no process with pid ${opts.pid} at ${snap.label}`, EXIT_FAILED);
          trees = [n];
        }
        return { text: trees.map(renderPstreeNode).join(''), json: { trees } };
      });
    });

  common(
    program
      .command('cgroups')
      .description('the cgroup tree at a label: pids, cpus, procs/threads, cpu usage'),
  )
    .option('--no-tasks', 'do not list the member processes and threads')
    .action((file: string, opts: ViewFlags & { tasks: boolean }) => {
      withSnapshots(ctx, file, opts, (snap) => {
        const tree = cgroupTree(snap);
        return {
          text: renderCgroups(tree, { tasks: opts.tasks, colors: colors(false) }),
          json: { tree },
        };
      });
    });

  common(
    program
      .command('proc')
      .description('/proc/<pid>/status of a process and its threads at a label (or of one task with --pid)'),
  )
    .argument('[name]', 'a scenario process, or a comm glob such as "vhost-*" (default: the first process)')
    .addOption(new Option('--pid <n>', 'only this task').argParser(parseNonNegativeInt))
    .action((file: string, name: string | undefined, opts: ViewFlags & { pid?: number }) => {
      withSnapshots(ctx, file, opts, (snap) => {
        try {
          const files = procStatusFiles(snap, {
            name: name ?? Object.keys(snap.processes)[0] ?? '',
            ...(opts.pid !== undefined ? { pid: opts.pid } : {}),
          });
          return { text: renderProcFiles(files), json: { files } };
        } catch (e) {
          if (e instanceof ProcSelectionError) {
            const hint = e.unknown && name !== undefined ? closest(name, e.known) : undefined;
            throw new CliError(
              `vhostsim: ${e.message}${hint ? ` (did you mean "${hint}"?)` : ''}` +
                `${e.known.length ? `; scenario processes: ${e.known.join(', ')}` : ''}`,
              e.unknown ? EXIT_USAGE : EXIT_FAILED,
            );
          }
          throw e;
        }
      });
    });
}
