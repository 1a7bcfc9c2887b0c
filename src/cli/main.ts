#!/usr/bin/env node
/**
 * The vhostsim command. Until scenario files exist, it runs the built-in demonstration of
 * the core contrast (kthread workers versus user workers) on several kernel profiles.
 */
import { Command, CommanderError } from 'commander';
import pc from 'picocolors';
import { type ContrastResult, runContrast } from '../demo/contrast.js';
import { findProfile, PROFILES } from '../profiles/eras.js';

const DEFAULT_PROFILES = ['linux-5.15', 'linux-6.1', 'seed-v5', 'linux-6.12', 'linux-6.17-kthread'];

function useColor(): boolean {
  return process.stdout.isTTY === true && !('NO_COLOR' in process.env);
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function renderContrast(results: ContrastResult[], color: boolean): string {
  const c = color
    ? pc
    : { bold: (s: string) => s, red: (s: string) => s, green: (s: string) => s, dim: (s: string) => s };
  const out: string[] = [];
  out.push(
    c.bold('vhostsim: one QEMU-like owner, three vhost workers, per kernel'),
    'owner: uid 107, cgroup /machine.slice/machine-qemu-vm1.scope (pids.max 4, cpuset 2-3),',
    '       RLIMIT_NPROC 4, two vCPU threads; then three VHOST_SET_OWNERs.',
    '',
  );
  const rows = [
    [
      'profile',
      'worker back end',
      'SET_OWNER results',
      'owner threads',
      'pids.current/max',
      'uid 107 nproc/limit',
    ],
  ];
  for (const r of results) {
    const outcomes = r.outcomes.map((o) => (o === 'ok' ? c.green('ok') : c.red(o))).join(' ');
    const pids = `${r.pidsCurrent}/${r.pidsMax}`;
    rows.push([
      r.profile,
      r.backend,
      outcomes,
      String(r.qemuThreads),
      r.pidsCurrent > r.pidsMax ? c.red(pids) : pids,
      `${r.nprocOwner}/${r.nprocLimit}`,
    ]);
  }
  out.push(table(rows), '');
  for (const r of results) {
    out.push(c.bold(`${r.profile}: workers`));
    const w = [['TID', 'COMM', 'TGID', 'PPID', 'UID', 'CGROUP', 'CPUS', 'KTHREAD', 'SIGBLK']];
    for (const x of r.workers)
      w.push([
        String(x.tid),
        x.comm,
        String(x.tgid),
        String(x.ppid),
        String(x.uid),
        x.cgroup,
        x.cpus,
        x.kthread ? 'yes' : 'no',
        x.sigblk,
      ]);
    out.push(table(w), '');
  }
  out.push(
    c.dim('kthread workers are children of kthreadd (PPID 2), charged to root and never refused; moved into'),
    c.dim('the owner cgroup by cgroup_attach_task_all (v5.16+), a migration pids.max does not check.'),
    c.dim('User workers are copies of the owner: its uid, cgroup, cpuset and RLIMIT_NPROC apply.'),
  );
  return `${out.join('\n')}\n`;
}

export function main(argv: string[]): number {
  const program = new Command();
  program
    .name('vhostsim')
    .description('How Linux creates, accounts and stops vhost worker threads, per kernel version')
    .exitOverride()
    .showSuggestionAfterError(true)
    .configureOutput({ writeErr: (s) => process.stderr.write(s), writeOut: (s) => process.stdout.write(s) });
  let code = 0;
  program
    .command('demo', { isDefault: true })
    .description('run the built-in kthread-versus-user-worker demonstration')
    .option('--profiles <list>', 'comma-separated kernel profiles', DEFAULT_PROFILES.join(','))
    .option('--json', 'print the results as JSON')
    .action((opts: { profiles: string; json?: boolean }) => {
      const names = opts.profiles
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      for (const n of names) {
        if (!findProfile(n)) {
          process.stderr.write(
            `vhostsim: unknown profile "${n}" in --profiles; known: ${PROFILES.map((p) => p.name).join(', ')}\n`,
          );
          code = 2;
          return;
        }
      }
      const results = names.map((profile) => runContrast({ profile }));
      process.stdout.write(
        opts.json ? `${JSON.stringify(results, null, 2)}\n` : renderContrast(results, useColor()),
      );
    });
  program
    .command('profiles')
    .description('list the kernel profiles')
    .option('--json', 'print as JSON')
    .action((opts: { json?: boolean }) => {
      if (opts.json)
        process.stdout.write(
          `${JSON.stringify(
            PROFILES.map((p) => ({ ...p, bugs: [...p.bugs] })),
            null,
            2,
          )}\n`,
        );
      else for (const p of PROFILES) process.stdout.write(`${p.name.padEnd(20)} ${p.summary}\n`);
    });
  try {
    program.parse(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    throw e;
  }
  return code;
}

process.exitCode = main(process.argv.slice(2));
