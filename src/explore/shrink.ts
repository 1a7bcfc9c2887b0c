/**
 * Shrinking a failing choice sequence (delta debugging over the answers, as Hypothesis shrinks
 * its choice sequences): cut suffixes, remove chunks of decreasing size, lower answers (to 0
 * first, else by one), move each non-zero answer earlier, then try a single non-zero answer at
 * each place, keeping a candidate only when it still fails the same way and is strictly
 * smaller: fewer non-zero answers, else shorter, else a smaller sum. Answers past the end of a
 * sequence are 0, so trailing zeros are dropped; a candidate is never longer than `maxLength`.
 * The explorer shrinks deviations from the default schedule (relativeAnswers in explore.ts),
 * where 0 is the default answer: fewer non-zero answers is fewer preemptions and faults.
 */

export interface ShrinkOptions {
  /** at most this many calls of `stillFails` (default 2 000) */
  maxRuns?: number;
  /**
   * no candidate longer than this (default: the input's length); a longer one with fewer
   * non-zero answers is smaller (the explorer allows the found execution's decision count)
   */
  maxLength?: number;
}

export interface ShrinkResult {
  readonly choices: number[];
  /** calls of `stillFails` */
  readonly runs: number;
}

function strip(c: readonly number[]): number[] {
  let n = c.length;
  while (n > 0 && c[n - 1] === 0) n--;
  return c.slice(0, n);
}

const sum = (c: readonly number[]) => c.reduce((a, b) => a + b, 0);

const nonZero = (c: readonly number[]) => c.reduce((a, b) => a + (b !== 0 ? 1 : 0), 0);

/** a is strictly smaller than b (both stripped) */
function smaller(a: readonly number[], b: readonly number[]): boolean {
  const na = nonZero(a);
  const nb = nonZero(b);
  if (na !== nb) return na < nb;
  if (a.length !== b.length) return a.length < b.length;
  const sa = sum(a);
  const sb = sum(b);
  if (sa !== sb) return sa < sb;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! < b[i]!;
  return false;
}

/**
 * Shrink `choices` while `stillFails` holds. `stillFails(choices)` must be true for the input.
 *
 * @example
 * shrinkChoices([3, 1, 4, 1, 5], (c) => c.includes(4)).choices // → [4]
 */
export function shrinkChoices(
  choices: readonly number[],
  stillFails: (c: number[]) => boolean,
  o: ShrinkOptions = {},
): ShrinkResult {
  const maxRuns = o.maxRuns ?? 2000;
  let runs = 0;
  let cur = strip(choices);
  const maxLength = Math.max(o.maxLength ?? 0, cur.length);
  const seen = new Set<string>([cur.join(',')]);
  /** try a candidate; adopt it if it is smaller and still fails */
  const attempt = (cand: number[]): boolean => {
    const c = strip(cand);
    if (c.length > maxLength || !smaller(c, cur) || runs >= maxRuns) return false;
    const key = c.join(',');
    if (seen.has(key)) return false;
    seen.add(key);
    runs++;
    if (!stillFails(c)) return false;
    cur = c;
    return true;
  };

  for (let changed = true; changed && runs < maxRuns; ) {
    changed = false;
    // 1. the shortest failing prefix, by bisection (then the chunk passes clean up)
    let lo = 0;
    let hi = cur.length;
    while (lo < hi && runs < maxRuns) {
      const mid = (lo + hi) >> 1;
      if (attempt(cur.slice(0, mid))) {
        changed = true;
        hi = cur.length;
        lo = Math.min(lo, hi);
      } else lo = mid + 1;
    }
    // 2. remove chunks, largest first, from the end towards the start
    for (let size = Math.max(1, cur.length >> 1); size >= 1 && runs < maxRuns; size >>= 1) {
      for (let start = cur.length - size; start >= 0 && runs < maxRuns; start--) {
        if (start + size > cur.length) continue;
        if (attempt([...cur.slice(0, start), ...cur.slice(start + size)])) changed = true;
      }
    }
    // 3. lower each answer: to 0, else by one
    for (let i = cur.length - 1; i >= 0 && runs < maxRuns; i--) {
      const v = cur[i];
      if (v === undefined || v === 0) continue;
      const zero = [...cur];
      zero[i] = 0;
      if (attempt(zero)) {
        changed = true;
        continue;
      }
      if (v > 1) {
        const dec = [...cur];
        dec[i] = v - 1;
        if (attempt(dec)) changed = true;
      }
    }
    // 4. move each non-zero answer earlier: drop the answers before it, from the earliest on
    //    (the chunk sizes of 2 halve, so they miss most of these cuts)
    for (let i = cur.length - 1; i > 0 && runs < maxRuns; i--) {
      if (i >= cur.length || cur[i] === 0) continue;
      for (let j = 0; j < i && runs < maxRuns; j++) {
        if (attempt([...cur.slice(0, j), ...cur.slice(i)])) {
          changed = true;
          break;
        }
      }
    }
    // 5. when more than one answer is non-zero: a single one (1, or the last one's value), as
    //    early as it still fails, up to maxLength
    const values = [...new Set([1, cur[cur.length - 1] ?? 1])];
    // cur changes only where an attempt succeeds, which ends the pass
    const several = nonZero(cur) > 1;
    single: for (let j = 0; several && j < maxLength && runs < maxRuns; j++) {
      for (const v of values) {
        if (attempt([...new Array<number>(j).fill(0), v])) {
          changed = true;
          break single;
        }
      }
    }
  }
  return { choices: cur, runs };
}
