/**
 * The report of `vhostsim run`: per profile, every step's outcome in time order (with its
 * expectation, if the scenario states one) and every check, then a one-line summary.
 */
import { findProfile } from '../profiles/eras.js';
import type { RunResult, StepRecord } from '../scenario/run.js';
import { type Colors, ms, NO_COLORS, table } from './common.js';

/** A run result without the kernel (what `--json` prints and views need). */
export type RunSummary = Omit<RunResult, 'kernel'>;

export function summarize(r: RunResult): RunSummary {
  const { kernel: _k, ...rest } = r;
  return rest;
}

/**
 * A step's short location: `processes.qemu.program[4].ioctl` → `qemu[4]`,
 * `processes.qemu.program[2].fork.program[1].exit` → `qemu[2].fork[1]`.
 */
export function stepLocation(path: string): string {
  return path
    .replace(/^processes\./, '')
    .replace(/\.(program|steps)\[/g, '[')
    .replace(/\.[\w-]+$/, '');
}

/** The outcome cell: the outcome, its value, and how it compares with the expectation. */
export function outcomeCell(s: Pick<StepRecord, 'outcome' | 'value' | 'expected'>, c: Colors): string {
  const value = s.value !== undefined ? ` (${s.value})` : '';
  if (s.expected === undefined) return s.outcome === 'ok' ? `ok${value}` : `${c.yellow(s.outcome)}${value}`;
  if (s.expected === s.outcome)
    return `${s.outcome === 'ok' ? 'ok' : c.yellow(s.outcome)}${value} ${c.green('✓')}`;
  return `${c.red(s.outcome)}${value} ${c.red(`✗ expected ${s.expected}`)}`;
}

/** One profile's section. */
export function renderRunResult(r: RunSummary, c: Colors = NO_COLORS): string {
  const out: string[] = [];
  const summary = findProfile(r.profile)?.summary;
  out.push(`${c.bold(r.profile)}${summary ? c.dim(` — ${summary}`) : ''}`);
  const end = r.snapshots[r.snapshots.length - 1];
  out.push(
    `  seed ${r.seed}, ended ${r.ended === 'idle' ? 'idle (nothing left to run)' : c.yellow('at the time limit')} at ${ms(end?.ts ?? 0)}`,
  );
  const rows: string[][] = [['  TIME', 'TASK', 'STEP', 'ACTION', 'DETAIL', 'OUTCOME']];
  for (const s of r.steps)
    rows.push([`  ${ms(s.ts)}`, s.task, stepLocation(s.path), s.action, s.detail, outcomeCell(s, c)]);
  out.push(table(rows, ['right']));
  if (r.checks.length) {
    out.push('  checks:');
    for (const ch of r.checks) {
      const mark = ch.ok ? c.green('✓') : c.red('✗');
      const detail = ch.ok ? `= ${ch.actual}` : c.red(`expected ${ch.expected}, found ${ch.actual}`);
      out.push(`    ${mark} at ${ch.label}: ${ch.check} ${detail}`);
    }
  }
  const nfail = r.failures.length;
  out.push(
    nfail
      ? c.red(`  ${nfail} expectation${nfail === 1 ? '' : 's'} failed`)
      : c.green(`  all ${countExpectations(r)} expectations held`),
  );
  return `${out.join('\n')}\n`;
}

function countExpectations(r: RunSummary): number {
  return r.steps.filter((s) => s.expected !== undefined).length + r.checks.length;
}

/** The whole report: a title, one section per profile, and the summary line. */
export function renderRun(
  scenario: string,
  file: string,
  results: readonly RunSummary[],
  c: Colors = NO_COLORS,
): string {
  const out = [`${c.bold(scenario)} ${c.dim(`(${file})`)}`, ''];
  for (const r of results) out.push(renderRunResult(r, c));
  out.push(
    `summary: ${results
      .map((r) =>
        r.failures.length
          ? `${r.profile} ${c.red(`${r.failures.length} failed`)}`
          : `${r.profile} ${c.green('ok')}`,
      )
      .join(', ')}`,
  );
  const failures = results.flatMap((r) => r.failures);
  if (failures.length) out.push('', 'failed:', ...failures.map((f) => `  ${c.red(f)}`));
  return `${out.join('\n')}\n`;
}
