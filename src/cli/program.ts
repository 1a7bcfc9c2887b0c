/**
 * The vhostsim command line: the commands, and how errors become exit statuses —
 * 0 ok, 1 an expectation or check failed, 2 bad input (a scenario error, printed with its
 * file:line:col lines; a bad flag or an unknown profile, named with a suggestion), 3 a bug
 * in the simulator; `conform` adds 4, some scenario was skipped (no real kernel to compare).
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { closest, ScenarioError } from '../scenario/errors.js';
import { colors } from '../views/common.js';
import { registerCheck } from './check.js';
import { registerConform } from './conform.js';
import { registerDemo } from './demo.js';
import { registerInfo } from './info.js';
import { CliError, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, type Io, processIo, stderrColor } from './io.js';
import { type CommandContext, registerRun } from './run.js';
import { registerTrace } from './trace.js';
import { registerViews } from './views.js';

/** The package version (package.json is two levels up from both src/cli and dist/cli). */
function version(): string {
  try {
    return (
      JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
    ).version;
  } catch {
    return 'unknown';
  }
}

export function buildProgram(ctx: CommandContext): Command {
  const { io } = ctx;
  const program = new Command();
  program
    .name('vhostsim')
    .description('How Linux creates, accounts and stops vhost worker threads, per kernel version')
    .version(version(), '-V, --version')
    .exitOverride()
    .showSuggestionAfterError(true)
    .configureOutput({ writeErr: (s) => io.err(s), writeOut: (s) => io.out(s) });
  registerDemo(program, io);
  registerRun(program, ctx);
  registerViews(program, ctx);
  registerTrace(program, ctx);
  registerCheck(program, ctx);
  registerInfo(program, ctx);
  registerConform(program, ctx);
  // subcommands inherit exitOverride and the output configuration from the program
  for (const c of program.commands)
    c.exitOverride().configureOutput({ writeErr: (s) => io.err(s), writeOut: (s) => io.out(s) });
  return program;
}

/**
 * Run the command line `argv` (without node and the script) and return the exit status.
 *
 * @example
 * main(['run', 'scenarios/three-vhost-net.yaml', '--profile', 'linux-6.12'])
 */
export function main(argv: readonly string[], io: Io = processIo()): number {
  const ctx: CommandContext = { io, code: EXIT_OK };
  const program = buildProgram(ctx);
  const red = colors(stderrColor(io)).red;
  // demo is the default command, so commander would call a mistyped command demo's
  // "too many arguments": name it as an unknown command instead
  const first = argv[0];
  if (first !== undefined && !first.startsWith('-')) {
    const names = program.commands.flatMap((c) => [c.name(), ...c.aliases()]).concat('help');
    if (!names.includes(first)) {
      const hint = closest(first, names);
      io.err(
        `${red(`error: unknown command '${first}'`)}${hint ? `\n(Did you mean ${hint}?)` : ''}\n` +
          `commands: ${names.filter((n) => n !== 'help').join(', ')}\n`,
      );
      return EXIT_USAGE;
    }
  }
  try {
    program.parse([...argv], { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    if (e instanceof ScenarioError) {
      io.err(`${e.message}\n`);
      if (argv.includes('--json'))
        io.out(`${JSON.stringify({ error: 'scenario', file: e.file, issues: e.issues }, null, 2)}\n`);
      return EXIT_USAGE;
    }
    if (e instanceof CliError) {
      io.err(`${e.message}\n`);
      return e.exitCode;
    }
    io.err(
      `vhostsim: internal error (a bug in the simulator, please report it):\n${(e as Error).stack ?? e}\n`,
    );
    return EXIT_INTERNAL;
  }
  return ctx.code;
}
