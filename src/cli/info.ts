/** `vhostsim profiles` and `vhostsim schema`: what the tool knows, without running anything. */
import type { Command } from 'commander';
import { ALL_PROFILES as PROFILES } from '../profiles/eras.js';
import { scenarioJsonSchema } from '../scenario/schema.js';
import type { CommandContext } from './run.js';

export function registerInfo(program: Command, ctx: CommandContext): void {
  program
    .command('profiles')
    .description('list the kernel profiles')
    .option('--json', 'print as JSON')
    .action((opts: { json?: boolean }) => {
      const { io } = ctx;
      if (opts.json)
        io.out(
          `${JSON.stringify(
            PROFILES.map((p) => ({ ...p, bugs: [...p.bugs] })),
            null,
            2,
          )}\n`,
        );
      else for (const p of PROFILES) io.out(`${p.name.padEnd(20)} ${p.summary}\n`);
    });

  program
    .command('schema')
    .description('print the JSON Schema of scenario files (for editor completion)')
    .option('--json', 'the schema is JSON already; accepted for uniformity')
    .action(() => {
      ctx.io.out(`${JSON.stringify(scenarioJsonSchema(), null, 2)}\n`);
    });
}
