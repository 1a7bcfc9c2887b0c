import { describe, expect, it } from 'vitest';
import { cgroupTree, renderCgroups } from './cgroups.js';
import { colors } from './common.js';
import { QEMU_SCENARIO, snapshot, snapshotOf, task } from './fixtures.js';

describe('the cgroup tree', () => {
  const k515 = snapshotOf(QEMU_SCENARIO, 'linux-5.15', 'running');
  const k612 = snapshotOf(QEMU_SCENARIO, 'linux-6.12', 'running');

  it('prints a header and one row per cgroup, nested with box-drawing connectors', () => {
    const lines = renderCgroups(cgroupTree(k612), { tasks: false }).trimEnd().split('\n');
    expect(lines[0]).toMatch(
      /^CGROUP +TYPE +PIDS\.CURRENT +PIDS\.MAX +EVENTS\.MAX +CPUS +PROCS +THREADS +USAGE_USEC$/,
    );
    expect(lines[1]).toMatch(/^\/ +root +- +- +- +0-3 +2 +2 +\d+$/);
    expect(lines[2]).toMatch(/^└─machine\.slice +domain +5 +max +0 +0-3 +0 +0 +\d+$/);
    expect(lines[3]).toMatch(/^ {2}└─vm1 +domain +5 +8 +0 +2-3 +2 +5 +\d+$/);
    expect(lines).toHaveLength(4);
  });

  it('reads pids.current, pids.max, procs, threads and usage from the cgroupfs files', () => {
    const vm1 = cgroupTree(k612).children[0]!.children[0]!;
    expect(vm1).toMatchObject({ path: '/machine.slice/vm1', pidsCurrent: 5, pidsMax: '8', cpus: '2-3' });
    expect(vm1.procs).toEqual([3, 6]);
    expect(vm1.threads).toEqual([3, 4, 5, 6, 7]);
    expect(vm1.usageUsec).toBeGreaterThan(0);
  });

  it("lists a user worker among QEMU's threads in QEMU's cgroup", () => {
    const text = renderCgroups(cgroupTree(k612));
    expect(text).toContain(
      [
        '    ├─3 /usr/bin/qemu',
        '    │ ├─{CPU 0/KVM}(4)',
        '    │ ├─{CPU 1/KVM}(5)',
        '    │ └─{vhost-3}(7)',
        '    └─6 /usr/bin/qemu', // a forked child shares its parent's command line until it execs
      ].join('\n'),
    );
  });

  it('lists a 5.15 kthread worker in the root cgroup, which cgroup_attach_task_all skipped on v2', () => {
    const root = cgroupTree(k515);
    expect(root.tasks.map((g) => g.command)).toEqual(['/sbin/init', '[kthreadd]', '[vhost-3]']);
    expect(renderCgroups(root)).toMatch(/^├─7 \[vhost-3\]$/m);
  });

  it('prints - for files a cgroup does not have', () => {
    expect(renderCgroups(cgroupTree(k612)).split('\n')[1]).toMatch(/^\/ +root +- +- +-/);
  });

  it('marks a process whose leader is elsewhere as threads only', () => {
    const s = snapshot(
      [
        task({ pid: 3, comm: 'qemu', nlwp: 2, cgroup: '/vm' }),
        task({ pid: 4, comm: 'vhost-3', tgid: 3, cgroup: '/vm/workers' }),
      ],
      {
        cgroups: [
          { path: '/', type: 'root', files: {} },
          { path: '/vm', type: 'domain threaded', files: { 'cgroup.procs': '3\n', 'cgroup.threads': '3\n' } },
          {
            path: '/vm/workers',
            type: 'threaded',
            files: { 'cgroup.procs': '3\n', 'cgroup.threads': '4\n' },
          },
        ],
      },
    );
    expect(renderCgroups(cgroupTree(s))).toContain(
      '    └─3 /usr/bin/qemu (threads only)\n      └─{vhost-3}(4)',
    );
  });

  it('colours pids.current red when it is over pids.max, and only when asked to', () => {
    const s = snapshot([], {
      cgroups: [
        { path: '/', type: 'root', files: {} },
        { path: '/vm', type: 'domain', files: { 'pids.current': '6\n', 'pids.max': '4\n' } },
      ],
    });
    expect(renderCgroups(cgroupTree(s), { colors: colors(true) })).toContain('\u001b[31m6\u001b[39m');
    expect(renderCgroups(cgroupTree(s))).not.toContain('\u001b[');
  });
});
