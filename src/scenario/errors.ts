/**
 * Scenario errors as data, formatting kept apart (in the manner of zod's errors.ts): each error
 * names where it is (a path into the document, resolved to file:line:col), what was expected
 * and what was found.
 */
export type ScenarioErrorCode =
  | 'yaml-syntax'
  | 'empty-file'
  | 'unknown-key'
  | 'missing-key'
  | 'wrong-type'
  | 'bad-value'
  | 'unknown-step'
  | 'unknown-profile'
  | 'unknown-ioctl'
  | 'unknown-alias'
  | 'unknown-label'
  | 'unknown-process'
  | 'unknown-parameter'
  | 'duplicate'
  | 'missing-field'
  | 'profile-not-run';

export interface ScenarioIssue {
  readonly code: ScenarioErrorCode;
  /** path of keys and indexes into the document */
  readonly path: readonly (string | number)[];
  readonly expected: string;
  readonly found: string;
  /** a suggestion ("did you mean …") */
  readonly hint?: string;
  /** resolved position, 1-based */
  line?: number;
  col?: number;
}

export class ScenarioError extends Error {
  override name = 'ScenarioError';
  constructor(
    readonly file: string,
    readonly issues: readonly ScenarioIssue[],
  ) {
    super(issues.map((i) => formatIssue(file, i)).join('\n'));
  }
}

/** `file:line:col: expected …, found …` (one line per issue). */
export function formatIssue(file: string, i: ScenarioIssue): string {
  const where = `${file}:${i.line ?? 1}:${i.col ?? 1}`;
  const at = i.path.length ? ` (at ${formatPath(i.path)})` : '';
  const hint = i.hint ? `; ${i.hint}` : '';
  return `${where}: error: expected ${i.expected}, found ${i.found}${at}${hint}`;
}

export function formatPath(path: readonly (string | number)[]): string {
  let s = '';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s ? `.${p}` : p;
  return s;
}

/** A short rendering of a found value for messages. */
export function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 37)}...` : v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (typeof v === 'object')
    return `a mapping with keys ${
      Object.keys(v as object)
        .slice(0, 5)
        .join(', ') || '(none)'
    }`;
  return typeof v;
}

/** The closest candidate by edit distance, for "did you mean" hints. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0]!;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j]!;
      dp[j] = Math.min(dp[j]! + 1, dp[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length]!;
}
