/**
 * The scenario library: every scenarios/*.yaml loads, meets its expectations and checks on every
 * profile it names, and produces the golden views under scenarios/<name>/expected/<profile>/:
 *
 *   steps.txt          one line per step record: task, action, detail, outcome
 *   checks.txt         every check at every label, with what was expected and found
 *   tasks-<label>.txt  the tasks of the snapshot at <label> (pid tgid ppid uid state comm cgroup cpus)
 *   cgroups-<label>.txt  every cgroup with its interface files at <label>
 *   trace.ftrace       the run's trace as /sys/kernel/tracing/trace
 *
 * The golden files are (re)written only with VHOSTSIM_UPDATE_GOLDEN=1 (`npm run golden:update`);
 * otherwise a missing, extra or different file fails the test.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type LoadedScenario, loadScenario } from '../src/scenario/load.js';
import { type RunResult, runScenario, type Snapshot } from '../src/scenario/run.js';
import { formatFtrace } from '../src/trace/trace.js';

const DIR = dirname(fileURLToPath(import.meta.url));
const UPDATE = process.env.VHOSTSIM_UPDATE_GOLDEN === '1';
/** a trace bigger than this means the scenario is too long for a golden file */
const MAX_TRACE_BYTES = 300 * 1024;

/**
 * Scenarios that expose a model bug: their expectations are the real kernel's, so they fail on
 * the model and are skipped (no golden files) until the bug is fixed. See their description.
 */
const MODEL_BUGS: Readonly<Record<string, string>> = {};

// ------------------------------------------------------------------ golden rendering

/** Columns padded to their widest cell, joined by two spaces, trailing blanks trimmed. */
function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const r of rows)
    r.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, c.length);
    });
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function stepsText(r: RunResult): string {
  const rows = r.steps.map((s) => [s.task, s.action, s.detail, `= ${s.outcome}`]);
  return `${table(rows)}\n`;
}

function checksText(r: RunResult): string {
  const rows = r.checks.map((c) => [
    c.label,
    c.ok ? 'ok' : 'FAIL',
    `${c.check}: expected ${c.expected}, found ${c.actual}`,
  ]);
  return rows.length ? `${table(rows)}\n` : '(no checks)\n';
}

function tasksText(s: Snapshot): string {
  const rows = [['PID', 'TGID', 'PPID', 'UID', 'S', 'COMM', 'CGROUP', 'CPUS']];
  for (const t of [...s.tasks].sort((a, b) => a.pid - b.pid))
    rows.push([
      String(t.pid),
      String(t.tgid),
      String(t.ppid),
      String(t.uid),
      t.state,
      t.kthread ? `[${t.comm}]` : t.comm,
      t.cgroup,
      t.cpus,
    ]);
  return `${table(rows)}\n`;
}

function cgroupsText(s: Snapshot): string {
  const out: string[] = [];
  for (const c of s.cgroups) {
    out.push(`${c.path} (${c.type})`);
    for (const [file, text] of Object.entries(c.files)) {
      const lines = text.split('\n').filter((l) => l !== '');
      if (lines.every((l) => /^\d+$/.test(l))) out.push(`  ${file}: ${lines.join(' ')}`.trimEnd());
      else if (lines.length === 1) out.push(`  ${file}: ${lines[0]}`);
      else {
        out.push(`  ${file}:`);
        for (const l of lines) out.push(`    ${l}`);
      }
    }
  }
  return `${out.join('\n')}\n`;
}

/** Label → a file-name part: letters, digits, - . _ kept; a repeated label gets a suffix. */
function labelFileParts(snaps: readonly Snapshot[]): string[] {
  const seen = new Map<string, number>();
  return snaps.map((s) => {
    const base = s.label.replace(/[^\w.-]/g, '_');
    const n = (seen.get(base) ?? 0) + 1;
    seen.set(base, n);
    return n === 1 ? base : `${base}-${n}`;
  });
}

function goldenFiles(r: RunResult): Map<string, string> {
  const files = new Map<string, string>();
  files.set('steps.txt', stepsText(r));
  files.set('checks.txt', checksText(r));
  const parts = labelFileParts(r.snapshots);
  r.snapshots.forEach((s, i) => {
    files.set(`tasks-${parts[i]}.txt`, tasksText(s));
    files.set(`cgroups-${parts[i]}.txt`, cgroupsText(s));
  });
  files.set('trace.ftrace', formatFtrace(r.kernel.trace.events));
  return files;
}

// ------------------------------------------------------------------ the library

const files = readdirSync(DIR)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

describe('the scenario library', () => {
  it('has the default scenario and the user-report scenarios', () => {
    expect(files).toContain('default.yaml');
    expect(files.length).toBeGreaterThanOrEqual(9);
  });
});

for (const file of files) {
  const path = join(DIR, file);
  const stem = file.replace(/\.yaml$/, '');
  let loaded: LoadedScenario | undefined;
  let loadError: unknown;
  try {
    loaded = loadScenario(path);
  } catch (e) {
    loadError = e;
  }
  const bug = MODEL_BUGS[stem];

  describe(`scenario ${stem}`, () => {
    it('loads, names itself after its file and says what it shows', () => {
      if (loadError) throw loadError;
      expect(loaded!.doc.name).toBe(stem);
      expect(loaded!.doc.description?.trim().length ?? 0).toBeGreaterThan(100);
    });
    if (!loaded) return;
    const results = new Map<string, RunResult>();
    const run = (profile: string): RunResult => {
      let r = results.get(profile);
      if (!r) {
        r = runScenario(loaded!, profile);
        results.set(profile, r);
      }
      return r;
    };

    for (const profile of loaded.doc.profiles) {
      const test = bug ? it.skip : it;
      test(`meets every expectation and check on ${profile}${bug ? ` (model bug: ${bug})` : ''}`, () => {
        const r = run(profile);
        expect(r.failures).toEqual([]);
        // every step expectation was met (and so was seen)
        expect(r.steps.filter((s) => s.expected !== undefined && s.expected !== s.outcome)).toEqual([]);
        expect(r.checks.every((c) => c.ok)).toBe(true);
      });

      test(`matches its golden views and trace on ${profile}`, () => {
        const r = run(profile);
        const golden = goldenFiles(r);
        const dir = join(DIR, stem, 'expected', profile);
        expect(golden.get('trace.ftrace')!.length).toBeLessThan(MAX_TRACE_BYTES);
        if (UPDATE) {
          rmSync(dir, { recursive: true, force: true });
          mkdirSync(dir, { recursive: true });
          for (const [name, text] of golden) writeFileSync(join(dir, name), text);
          return;
        }
        if (!existsSync(dir))
          throw new Error(`no golden files in ${dir}: run \`npm run golden:update\` and review them`);
        expect(readdirSync(dir).sort()).toEqual([...golden.keys()].sort());
        for (const [name, text] of golden) {
          const want = readFileSync(join(dir, name), 'utf8');
          expect(text, `${stem}/expected/${profile}/${name}`).toBe(want);
        }
      });
    }
  });
}
