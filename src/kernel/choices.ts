/**
 * Every source of nondeterminism in a run goes through a Choices object: which runnable task
 * goes next, whether an allocation fails, whether a signal arrives. A run is a pure function
 * of the sequence of answers, so the explorer can enumerate them and a counterexample is the
 * list of answers (see ReplayChoices).
 */

/** What a choice decides; the explorer uses the kind to enable or prune faults. */
export type ChoiceKind = 'sched' | 'timer' | 'fault-alloc' | 'fault-signal';

export interface Choices {
  /**
   * Return an integer in [0, n). n is at least 2: the kernel never asks when there is only
   * one possibility. `what` names the decision point for traces and counterexamples.
   */
  choose(kind: ChoiceKind, n: number, what: string): number;
}

/** mulberry32: a small, fast, well-mixed 32-bit PRNG. Same seed → same sequence. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

export interface SeededChoicesOptions {
  /** Probability (0..1) that an allocation-failure point fails. Default 0: faults are opt-in. */
  allocFailure?: number;
  /** Probability (0..1) that a signal-arrival point delivers its signal. Default 0. */
  signalArrival?: number;
}

/** The choices of an ordinary run: a seeded PRNG; faults only when asked for. */
export class SeededChoices implements Choices {
  private readonly next: () => number;
  constructor(
    readonly seed: number,
    private readonly opts: SeededChoicesOptions = {},
  ) {
    this.next = mulberry32(seed);
  }
  choose(kind: ChoiceKind, n: number): number {
    if (kind === 'fault-alloc' || kind === 'fault-signal') {
      const p = kind === 'fault-alloc' ? (this.opts.allocFailure ?? 0) : (this.opts.signalArrival ?? 0);
      if (p <= 0) return 0;
      return this.next() / 0x100000000 < p ? 1 : 0;
    }
    return this.next() % n;
  }
}

/** One recorded decision. */
export interface ChoiceRecord {
  kind: ChoiceKind;
  n: number;
  what: string;
  value: number;
}

/**
 * Replays a fixed list of answers, then answers 0 (the first runnable task, no fault).
 * Records every decision asked, so a run can be printed and replayed.
 */
export class ReplayChoices implements Choices {
  readonly log: ChoiceRecord[] = [];
  private i = 0;
  constructor(private readonly answers: readonly number[] = []) {}
  choose(kind: ChoiceKind, n: number, what: string): number {
    const a = this.answers[this.i++] ?? 0;
    const value = a < n ? a : n - 1;
    this.log.push({ kind, n, what, value });
    return value;
  }
}

/** Wraps another Choices and records what it answered. */
export class RecordingChoices implements Choices {
  readonly log: ChoiceRecord[] = [];
  constructor(private readonly inner: Choices) {}
  choose(kind: ChoiceKind, n: number, what: string): number {
    const value = this.inner.choose(kind, n, what);
    this.log.push({ kind, n, what, value });
    return value;
  }
}
