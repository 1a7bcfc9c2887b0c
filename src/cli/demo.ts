/**
 * `vhostsim demo`: the built-in demonstration of the core contrast (kthread workers versus
 * user workers) on several kernel profiles. The default command.
 */
import type { Command } from 'commander';
import { type ContrastResult, runContrast } from '../demo/contrast.js';
import { findProfile, ALL_PROFILES as PROFILES } from '../profiles/eras.js';
import { type Colors, colors, table } from '../views/common.js';
import { CliError, type Io, stdoutColor } from './io.js';

export const DEFAULT_PROFILES = ['linux-5.15', 'linux-6.1', 'seed-v5', 'linux-6.12', 'linux-6.17-kthread'];

export function renderContrast(results: ContrastResult[], color: boolean | Colors): string {
  const c = typeof color === 'boolean' ? colors(color) : color;
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

export function registerDemo(program: Command, io: Io): void {
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
      for (const n of names)
        if (!findProfile(n))
          throw new CliError(
            `vhostsim: unknown profile "${n}" in --profiles; known: ${PROFILES.map((p) => p.name).join(', ')}`,
          );
      const results = names.map((profile) => runContrast({ profile }));
      io.out(opts.json ? `${JSON.stringify(results, null, 2)}\n` : renderContrast(results, stdoutColor(io)));
    });
}
