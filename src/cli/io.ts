/**
 * Where the command writes and what it knows of its terminal, passed in so that tests run
 * `main()` in-process and capture everything.
 */
export interface Io {
  out(s: string): void;
  err(s: string): void;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdoutIsTTY: boolean;
  readonly stderrIsTTY: boolean;
  /** milliseconds, monotonic */
  now(): number;
}

/** The real process's streams. */
export function processIo(): Io {
  return {
    out: (s) => process.stdout.write(s),
    err: (s) => process.stderr.write(s),
    env: process.env,
    stdoutIsTTY: process.stdout.isTTY === true,
    stderrIsTTY: process.stderr.isTTY === true,
    now: () => performance.now(),
  };
}

/** Colour on stdout: only on a terminal, never with NO_COLOR set (https://no-color.org). */
export function stdoutColor(io: Io): boolean {
  return io.stdoutIsTTY && io.env.NO_COLOR === undefined;
}

/** Colour on stderr, by the same rule. */
export function stderrColor(io: Io): boolean {
  return io.stderrIsTTY && io.env.NO_COLOR === undefined;
}

/** Exit statuses. */
export const EXIT_OK = 0;
/** an expectation or check failed (or a requested label was not reached) */
export const EXIT_FAILED = 1;
/** bad input: the scenario file, a flag, a profile name */
export const EXIT_USAGE = 2;
/** the simulator itself broke (a model bug) */
export const EXIT_INTERNAL = 3;

/** An error the user can fix, with the message to print and the exit status. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT_USAGE,
  ) {
    super(message);
  }
}
