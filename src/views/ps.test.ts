import { describe, expect, it } from 'vitest';
import { QEMU_SCENARIO, snapshot, snapshotOf, task } from './fixtures.js';
import {
  formatCpuTime,
  formatCpuTimeShort,
  formatStime,
  psThreadRows,
  renderPsProcesses,
  renderPsThreads,
} from './ps.js';

const PS_EFL_HEADER = 'UID          PID    PPID     LWP  C NLWP STIME TTY          TIME CMD';
const PS_AUX_HEADER = 'USER         PID %CPU %MEM    VSZ   RSS TTY      STAT START   TIME COMMAND';

describe('ps -eLf', () => {
  const k515 = snapshotOf(QEMU_SCENARIO, 'linux-5.15', 'running');
  const k612 = snapshotOf(QEMU_SCENARIO, 'linux-6.12', 'running');

  it('prints the procps-ng header with its column widths', () => {
    expect(renderPsThreads(k612).split('\n')[0]).toBe(PS_EFL_HEADER);
  });

  it('starts every CMD in the column of the CMD header', () => {
    const lines = renderPsThreads(k612).trimEnd().split('\n');
    const col = PS_EFL_HEADER.indexOf('CMD');
    for (const l of lines.slice(1)) expect(l[col - 1]).toBe(' ');
    for (const l of lines.slice(1)) expect(l.slice(col)).toMatch(/^(\[|\/|init|qemu)/);
  });

  it('prints kthreads with their name in brackets, as root, children of kthreadd', () => {
    const text = renderPsThreads(k515);
    expect(text).toMatch(/^root +2 +0 +2 +\d+ +1 00:00 \? +00:00:00 \[kthreadd\]$/m);
    expect(text).toMatch(/^root +7 +2 +7 +\d+ +1 00:00 \? +00:00:00 \[vhost-3\]$/m);
  });

  it("prints a user worker as one more LWP of QEMU, with QEMU's command line and uid", () => {
    const rows = psThreadRows(k612).filter((r) => r.pid === 3);
    expect(rows.map((r) => r.lwp)).toEqual([3, 4, 5, 7]);
    expect(new Set(rows.map((r) => r.cmd))).toEqual(new Set(['/usr/bin/qemu']));
    expect(new Set(rows.map((r) => r.nlwp))).toEqual(new Set([4]));
    expect(new Set(rows.map((r) => r.uid))).toEqual(new Set(['107']));
    expect(renderPsThreads(k612)).not.toContain('[vhost-3]');
  });

  it('lists each thread group together, leader first, before the next group', () => {
    const s = snapshot([
      task({ pid: 3, comm: 'qemu', nlwp: 2 }),
      task({ pid: 4, comm: 'kworker', kthread: true, ppid: 2 }),
      task({ pid: 5, comm: 'vhost-3', tgid: 3, nlwp: 2 }),
    ]);
    expect(psThreadRows(s).map((r) => [r.pid, r.lwp])).toEqual([
      [3, 3],
      [3, 5],
      [4, 4],
    ]);
  });

  it('shows the numeric uid for users other than root', () => {
    const s = snapshot([task({ pid: 3, comm: 'qemu', uid: 107 })]);
    expect(renderPsThreads(s).split('\n')[1]).toMatch(/^107 {12}3/);
  });

  it('prints a zombie as [comm] <defunct>', () => {
    const s = snapshot([task({ pid: 3, comm: 'qemu', state: 'Z' })]);
    expect(renderPsThreads(s)).toContain('[qemu] <defunct>');
  });
});

describe('ps aux', () => {
  it('prints the procps-ng header and one line per process', () => {
    const s = snapshotOf(QEMU_SCENARIO, 'linux-6.12', 'running');
    const lines = renderPsProcesses(s, 8 * 1024 * 1024)
      .trimEnd()
      .split('\n');
    expect(lines[0]).toBe(PS_AUX_HEADER);
    expect(lines.slice(1).map((l) => Number(l.slice(8, 16)))).toEqual([1, 2, 3, 6]);
  });

  it('marks a multi-threaded process with l and gives kthreads no memory', () => {
    const s = snapshotOf(QEMU_SCENARIO, 'linux-5.15', 'running');
    const text = renderPsProcesses(s, 8 * 1024 * 1024);
    expect(text).toMatch(/^107 +3 .* (R|S)l +00:00 +0:00 \/usr\/bin\/qemu$/m);
    expect(text).toMatch(/^root +7 +\d+\.\d +0\.0 +0 +0 \? +S +00:00 +0:00 \[vhost-3\]$/m);
  });
});

describe('time columns', () => {
  it('formats STIME as hours and minutes since boot', () => {
    expect(formatStime(0)).toBe('00:00');
    expect(formatStime(3_723e9)).toBe('01:02');
  });

  it('formats ps -f TIME as [DD-]HH:MM:SS and ps aux TIME as M:SS', () => {
    expect(formatCpuTime(3_723e9)).toBe('01:02:03');
    expect(formatCpuTime(90_061e9)).toBe('01-01:01:01');
    expect(formatCpuTimeShort(125e9)).toBe('2:05');
  });
});
