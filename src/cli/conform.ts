/**
 * `vhostsim conform <scenario…> --kernel host|debian-6.1|debian-6.12 [--json]`: run each
 * scenario on a real kernel (through conformance/probe.c) and on the model profile that
 * matches that kernel, and print every observation: model value, real value, match or not.
 *
 * Exit status: 0 every observation of every scenario matched; 1 a mismatch (or the probe
 * reported a setup error); 4 nothing mismatched but some scenario was skipped (the real kernel
 * was not available, or the probe cannot run a step) — a skip is never a pass; 2 bad input.
 */
import { type Command, Option } from 'commander';
import { compileScript } from '../conformance/script.js';
import { type ConformResult, conformScenario, TARGETS, type Target } from '../conformance/suite.js';
import { findProfile } from '../profiles/eras.js';
import { colors, table } from '../views/common.js';
import { loadScenario } from './common.js';
import { CliError, EXIT_FAILED, EXIT_OK, type Io, stdoutColor } from './io.js';
import type { CommandContext } from './run.js';

/** some scenario was skipped and none mismatched */
export const EXIT_SKIPPED = 4;

export interface ConformSummary {
  target: Target;
  scenarios: number;
  matched: number;
  mismatched: number;
  skipped: number;
  observations: number;
  mismatches: number;
  unobservable: number;
}

export function summarizeConform(target: Target, results: readonly ConformResult[]): ConformSummary {
  const s: ConformSummary = {
    target,
    scenarios: results.length,
    matched: 0,
    mismatched: 0,
    skipped: 0,
    observations: 0,
    mismatches: 0,
    unobservable: 0,
  };
  for (const r of results) {
    if (r.skipped) {
      s.skipped++;
      continue;
    }
    const bad = r.rows.filter((x) => x.status === 'mismatch').length;
    s.observations += r.rows.length;
    s.mismatches += bad;
    s.unobservable += r.rows.filter((x) => x.status === 'unobservable').length;
    if (bad || r.errors.length) s.mismatched++;
    else s.matched++;
  }
  return s;
}

/** The exit status of a conformance run. */
export function conformExitCode(s: ConformSummary): number {
  if (s.mismatched) return EXIT_FAILED;
  if (s.skipped) return EXIT_SKIPPED;
  return EXIT_OK;
}

export function renderConform(
  results: readonly ConformResult[],
  s: ConformSummary,
  c: ReturnType<typeof colors>,
  onlyMismatches: boolean,
): string {
  const out: string[] = [];
  for (const r of results) {
    const head = `${c.bold(r.scenario)} (${r.file}) on ${r.target}`;
    if (r.skipped) {
      out.push(`${head}: ${c.yellow('SKIPPED')} — ${r.skipped}`, '');
      continue;
    }
    out.push(
      `${head} ${r.kernel ?? ''} vs model ${r.profile}${r.seconds !== undefined ? ` — real run ${r.seconds.toFixed(2)} s` : ''}`,
    );
    const rows: string[][] = [['', 'OBSERVATION', 'MODEL', 'REAL', 'NOTE']];
    for (const x of r.rows) {
      if (onlyMismatches && x.status !== 'mismatch') continue;
      const mark = x.status === 'match' ? c.green('✓') : x.status === 'mismatch' ? c.red('✗') : c.yellow('?');
      rows.push([mark, x.observation, x.model, x.real, x.note ?? '']);
    }
    if (rows.length > 1) out.push(table(rows).replace(/^/gm, '  '));
    for (const e of r.errors) out.push(`  ${c.red('error')}: ${e}`);
    for (const n of r.notes) out.push(`  note: ${n}`);
    const bad = r.rows.filter((x) => x.status === 'mismatch').length;
    const unobs = r.rows.filter((x) => x.status === 'unobservable').length;
    out.push(
      `  ${r.rows.length - bad - unobs} match, ${bad ? c.red(`${bad} mismatch`) : '0 mismatch'}, ${unobs} unobservable in the model`,
      '',
    );
  }
  out.push(
    `conform ${s.target}: ${s.scenarios} scenario(s): ${s.matched} matched, ` +
      `${s.mismatched ? c.red(`${s.mismatched} mismatched`) : '0 mismatched'}, ` +
      `${s.skipped ? c.yellow(`${s.skipped} skipped`) : '0 skipped'} ` +
      `(${s.observations} observations: ${s.mismatches} mismatches, ${s.unobservable} unobservable in the model)`,
  );
  return `${out.join('\n')}\n`;
}

export function registerConform(program: Command, ctx: CommandContext): void {
  program
    .command('conform')
    .description(
      'run scenarios on a real kernel (this host through /dev/kvm, or a Debian kernel under QEMU) and on the ' +
        'matching model profile, and compare every observation (exit 1 on a mismatch, 4 if something was skipped)',
    )
    .argument('<scenario...>', 'scenario files (YAML), e.g. conformance/scenarios/*.yaml')
    .addOption(
      new Option('--kernel <target>', 'the real kernel: this host, or a Debian kernel booted under QEMU')
        .choices([...TARGETS])
        .default('host'),
    )
    .option('--profile <name>', 'compare with this model profile instead of the one matching the kernel')
    .option('--mismatches', 'print only the rows that differ (and the summary)')
    .option('--script', 'print the probe script of each scenario instead of running it')
    .option('--json', 'print the results as JSON')
    .action(
      (
        files: string[],
        opts: { kernel: Target; profile?: string; mismatches?: boolean; script?: boolean; json?: boolean },
      ) => {
        const { io } = ctx;
        if (opts.profile !== undefined && !findProfile(opts.profile))
          throw new CliError(
            `vhostsim: unknown profile "${opts.profile}" in --profile (see vhostsim profiles)`,
          );
        const scenarios = files.map((f) => loadScenario(f));
        if (opts.script) {
          for (const sc of scenarios) printScript(io, sc.file, compileScript(sc));
          ctx.code = EXIT_OK;
          return;
        }
        const results = scenarios.map((sc) =>
          conformScenario(sc, opts.kernel, opts.profile ? { profile: opts.profile } : {}),
        );
        const summary = summarizeConform(opts.kernel, results);
        if (opts.json) io.out(`${JSON.stringify({ summary, results }, null, 2)}\n`);
        else io.out(renderConform(results, summary, colors(stdoutColor(io)), opts.mismatches ?? false));
        ctx.code = conformExitCode(summary);
      },
    );
}

function printScript(io: Io, file: string, c: ReturnType<typeof compileScript>): void {
  io.out(`# ${file}\n`);
  for (const u of c.unsupported) io.out(`# unsupported: ${u.path}: ${u.why}\n`);
  io.out(c.text);
}
