/**
 * What the scenario commands share: loading the file, choosing and checking profiles,
 * running with progress on stderr, finding the snapshot at a label, and writing an output
 * file atomically.
 */
import { randomBytes } from 'node:crypto';
import { renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { findProfile, ALL_PROFILES as PROFILES } from '../profiles/eras.js';
import { closest } from '../scenario/errors.js';
import { type LoadedScenario, loadScenario } from '../scenario/load.js';
import { type RunResult, runScenario, type Snapshot } from '../scenario/run.js';
import type { ScenarioDoc } from '../scenario/schema.js';
import { CliError, EXIT_FAILED, type Io } from './io.js';

export { loadScenario };

/** commander argument parser for a non-negative integer (seeds, pids). */
export function parseNonNegativeInt(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('expected a non-negative integer.');
  return Number(value);
}

function unknownProfile(name: string, where: string): CliError {
  const names = PROFILES.map((p) => p.name);
  const hint = closest(name, names);
  return new CliError(
    `vhostsim: unknown profile "${name}"${where}${hint ? ` (did you mean "${hint}"?)` : ''}\n` +
      `known profiles: ${names.join(', ')}`,
  );
}

/**
 * The profiles to run: `wanted` (a name, a comma-separated list, or undefined for every
 * profile the scenario names). Unknown names are errors with a suggestion; a known profile
 * the scenario does not list runs with a note (its expectations fall back to `default`).
 */
export function selectProfiles(
  sc: LoadedScenario,
  wanted: string | undefined,
  flag: string,
  io: Io,
): string[] {
  if (wanted === undefined) return [...sc.doc.profiles];
  const names = wanted
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (!names.length) throw new CliError(`vhostsim: ${flag} needs at least one profile name`);
  for (const n of names) {
    if (!findProfile(n)) throw unknownProfile(n, ` in ${flag}`);
    if (!sc.doc.profiles.includes(n))
      io.err(
        `vhostsim: note: ${n} is not among the profiles of ${sc.file} (${sc.doc.profiles.join(', ')}); ` +
          'its expectations fall back to their defaults\n',
      );
  }
  return names;
}

/** Every label the scenario's programs set (in document order), then "end". */
export function scenarioLabels(doc: ScenarioDoc): string[] {
  const labels: string[] = [];
  const walk = (steps: unknown) => {
    if (!Array.isArray(steps)) return;
    for (const s of steps) {
      if (s === null || typeof s !== 'object') continue;
      const step = s as Record<string, unknown>;
      if (typeof step.label === 'string' && !labels.includes(step.label)) labels.push(step.label);
      for (const v of Object.values(step))
        if (v && typeof v === 'object' && !Array.isArray(v)) {
          const body = v as Record<string, unknown>;
          walk(body.program);
          walk(body.steps);
        }
    }
  };
  for (const p of Object.values(doc.processes)) walk(p.program);
  labels.push('end');
  return labels;
}

/** Check that `label` is one the scenario sets (or "end"). */
export function checkLabel(sc: LoadedScenario, label: string): void {
  const labels = scenarioLabels(sc.doc);
  if (labels.includes(label)) return;
  const hint = closest(label, labels);
  throw new CliError(
    `vhostsim: unknown label "${label}" in --at${hint ? ` (did you mean "${hint}"?)` : ''}\n` +
      `labels of ${sc.file}: ${labels.join(', ')}`,
  );
}

/** The snapshot taken at `label` on a run, or a CliError (status 1) naming what was reached. */
export function snapshotAt(r: RunResult, label: string): Snapshot {
  const s = r.snapshots.find((x) => x.label === label);
  if (s) return s;
  const reached = r.snapshots.map((x) => x.label);
  throw new CliError(
    `vhostsim: label "${label}" was not reached on ${r.profile} (reached: ${reached.join(', ')})`,
    EXIT_FAILED,
  );
}

/**
 * Reports progress of runs on stderr. Only runs that take longer than a second are worth a
 * line: on a terminal "running linux-6.12… " is shown while it runs and erased if it ended
 * within the second; elsewhere the line is printed, complete, after a run that took longer.
 */
export class Progress {
  constructor(
    private readonly io: Io,
    private readonly thresholdMs = 1000,
  ) {}

  run<T>(what: string, fn: () => T): T {
    const tty = this.io.stderrIsTTY;
    const t0 = this.io.now();
    if (tty) this.io.err(`running ${what}… `);
    let ok = false;
    try {
      const v = fn();
      ok = true;
      return v;
    } finally {
      const dt = this.io.now() - t0;
      const took = `${ok ? 'done' : 'failed'} in ${(dt / 1000).toFixed(1)} s\n`;
      if (tty) this.io.err(dt > this.thresholdMs || !ok ? took : '\r\u001b[K');
      else if (dt > this.thresholdMs) this.io.err(`running ${what}… ${took}`);
    }
  }
}

export interface RunFlags {
  seed?: number;
  trace?: boolean;
}

/** Run the scenario on each profile, in order, with progress. */
export function runProfiles(
  sc: LoadedScenario,
  profiles: readonly string[],
  flags: RunFlags,
  io: Io,
): RunResult[] {
  const progress = new Progress(io);
  return profiles.map((p) =>
    progress.run(p, () =>
      runScenario(sc, p, {
        ...(flags.seed !== undefined ? { seed: flags.seed } : {}),
        trace: flags.trace ?? true,
      }),
    ),
  );
}

/** The scenario's host memory in KiB (default 8 GiB), for ps's %MEM. */
export function memTotalKiB(doc: ScenarioDoc): number {
  const m = doc.host?.memory ? /^(\d+)\s*(M|G)/i.exec(doc.host.memory) : null;
  const mib = m ? Number(m[1]) * (m[2]!.toUpperCase() === 'G' ? 1024 : 1) : 8192;
  return mib * 1024;
}

/**
 * Write `data` to `path` through a temporary file in the same directory and a rename, so
 * that `path` either keeps its old content or gets the whole new one.
 */
export function writeFileAtomic(path: string, data: string): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // the temporary file was never created
    }
    throw new CliError(`vhostsim: cannot write ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}
