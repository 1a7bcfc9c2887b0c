/**
 * Helpers shared by the text views: colour functions that may be switched off, column
 * alignment, and the names ps and pstree give to tasks.
 */
import pc from 'picocolors';
import type { TaskView } from '../scenario/run.js';

/** The colour functions a view may use; identity functions when colour is off. */
export interface Colors {
  bold(s: string): string;
  dim(s: string): string;
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  cyan(s: string): string;
}

const plain = (s: string) => s;

/** No colour at all (pipes, files, NO_COLOR). */
export const NO_COLORS: Colors = {
  bold: plain,
  dim: plain,
  red: plain,
  green: plain,
  yellow: plain,
  cyan: plain,
};

/** picocolors' functions, forced on or off by the caller (who checked the TTY and NO_COLOR). */
export function colors(enabled: boolean): Colors {
  if (!enabled) return NO_COLORS;
  const c = pc.createColors(true);
  return { bold: c.bold, dim: c.dim, red: c.red, green: c.green, yellow: c.yellow, cyan: c.cyan };
}

/** The visible length of a string (ANSI colour sequences excluded). */
export function visibleLength(s: string): number {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI escape sequences
  return s.replace(/\u001b\[[0-9;]*m/g, '').length;
}

export type Align = 'left' | 'right';

/**
 * Align `rows` in columns separated by `gap` spaces; the last column is never padded, and a
 * row of a single cell spans the table (it does not widen the first column).
 *
 * @example
 * table([['PID', 'CMD'], ['1', 'init']], ['right', 'left']) // "PID CMD\n  1 init"
 */
export function table(rows: readonly (readonly string[])[], align: readonly Align[] = [], gap = 2): string {
  if (rows.length === 0) return '';
  const n = Math.max(...rows.map((r) => r.length));
  const measured = rows.filter((r) => r.length > 1);
  const widths: number[] = [];
  for (let i = 0; i < n; i++) widths.push(Math.max(0, ...measured.map((r) => visibleLength(r[i] ?? ''))));
  return rows
    .map((r) =>
      r
        .map((cell, i) => {
          if (r.length === 1 || (i === r.length - 1 && align[i] !== 'right')) return cell;
          const pad = ' '.repeat(Math.max(0, widths[i]! - visibleLength(cell)));
          return align[i] === 'right' ? pad + cell : cell + pad;
        })
        .join(' '.repeat(gap))
        .trimEnd(),
    )
    .join('\n');
}

/** The name field of /proc/<pid>/stat (full kthread names from v5.17, else the comm). */
export function statName(t: TaskView): string {
  const open = t.stat.indexOf('(');
  const close = t.stat.lastIndexOf(')');
  return open >= 0 && close > open ? t.stat.slice(open + 1, close) : t.comm;
}

/** ps's user column: the model has no /etc/passwd, so root by name and everyone else by number. */
export function userName(uid: number): string {
  return uid === 0 ? 'root' : String(uid);
}

/** Tasks that lead their thread group (the processes), in pid order. */
export function processesOf(tasks: readonly TaskView[]): TaskView[] {
  return tasks.filter((t) => t.pid === t.tgid);
}

/** A task's threads other than itself (the leader's group), in pid order. */
export function threadsOf(tasks: readonly TaskView[], tgid: number): TaskView[] {
  return tasks.filter((t) => t.tgid === tgid && t.pid !== tgid);
}

/** Virtual nanoseconds as milliseconds with three decimals, e.g. "1.176 ms". */
export function ms(ns: number): string {
  return `${(ns / 1e6).toFixed(3)} ms`;
}
