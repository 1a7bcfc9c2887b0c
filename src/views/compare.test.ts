import { describe, expect, it } from 'vitest';
import { compareRuns, keyedTasks, renderComparison, taskKind } from './compare.js';
import { FAILING_SCENARIO, QEMU_SCENARIO, runText, snapshot, task } from './fixtures.js';
import { summarize } from './run.js';

const results = ['linux-5.15', 'linux-6.12'].map((p) => summarize(runText(QEMU_SCENARIO, p)));

describe('compare', () => {
  const cmp = compareRuns(results);

  it('matches steps across profiles and marks none as different when the outcomes agree', () => {
    expect(cmp.steps.map((s) => `${s.location} ${s.action}`)).toEqual([
      'qemu[0] threads',
      'qemu[1] fork',
      'qemu[2] open',
      'qemu[3] ioctl',
      'qemu[4] label',
      'qemu[5] kill',
      'qemu[6] wait4',
      'qemu[7] exit_group',
    ]);
    expect(cmp.steps.every((s) => !s.differs)).toBe(true);
  });

  it('compares at every label reached, then at end', () => {
    expect(cmp.at.map((a) => a.label)).toEqual(['running', 'end']);
    expect(cmp.at[0]!.reached).toEqual(['linux-5.15', 'linux-6.12']);
  });

  it('finds the vhost worker a kthread under kthreadd on 5.15 and a user worker in QEMU on 6.12', () => {
    const rows = cmp.at[0]!.placement.filter((r) => r.item === 'vhost-3');
    const by = Object.fromEntries(rows.map((r) => [r.field, r.values]));
    expect(by.kind).toEqual({ 'linux-5.15': 'kthread', 'linux-6.12': 'user worker' });
    expect(by.tgid).toEqual({ 'linux-5.15': 'itself', 'linux-6.12': 'qemu(3)' });
    expect(by.ppid).toEqual({ 'linux-5.15': 'kthreadd(2)', 'linux-6.12': 'init(1)' });
    expect(by.cgroup).toEqual({ 'linux-5.15': '/', 'linux-6.12': '/machine.slice/vm1' });
    expect(by.cpus).toEqual({ 'linux-5.15': '0-3', 'linux-6.12': '2-3' });
    expect(rows.every((r) => r.differs)).toBe(true);
  });

  it('compares Threads, pids.current/max and nproc, marks the ones that differ and leaves out pids.events that stayed 0', () => {
    const acc = Object.fromEntries(cmp.at[0]!.accounting.map((r) => [`${r.field} ${r.item}`, r]));
    expect(acc['Threads qemu']!.values).toEqual({ 'linux-5.15': '3', 'linux-6.12': '4' });
    expect(acc['pids.current/max /machine.slice/vm1']!.values).toEqual({
      'linux-5.15': '4/8',
      'linux-6.12': '5/8',
    });
    expect(acc['nproc uid 107']!.differs).toBe(true);
    // pids.events that stayed 0 on every profile are left out
    expect(acc['pids.events max /machine.slice/vm1']).toBeUndefined();
  });

  it('marks differing rows with ≠ and folds tasks placed alike into one line', () => {
    const text = renderComparison(cmp);
    expect(text).toMatch(/^≠ {2}vhost-3 +kind +kthread +user worker$/m);
    expect(text).toMatch(/^≠ +tgid +itself +qemu\(3\)$/m);
    expect(text).toMatch(
      /^ {3}CPU 0\/KVM +same on every profile: thread of qemu\(3\), ppid init\(1\), uid 107, cgroup \/machine\.slice\/vm1, cpus 2-3$/m,
    );
    expect(text).toMatch(/^≠ {2}Threads +qemu +3 +4$/m);
    expect(text).toContain('every expectation held on every profile');
  });

  it("shows a step whose outcome differs, with each profile's expectation mark", () => {
    const failing = ['linux-5.15', 'linux-6.12'].map((p) => summarize(runText(FAILING_SCENARIO, p)));
    const c = compareRuns(failing, ['running']);
    expect(c.at.map((a) => a.label)).toEqual(['running']);
    const text = renderComparison(c);
    expect(text).toMatch(/qemu\[3\] +ioctl +net0 VHOST_SET_OWNER +ok ✓ +ok ✗ expected ENOMEM$/m);
    expect(text).toContain('failed expectations');
    expect(c.failures['linux-6.12']).toHaveLength(1);
  });

  it('prints — where a task does not exist on a profile', () => {
    const text = renderComparison({
      scenario: 's',
      profiles: ['a', 'b'],
      steps: [],
      at: [
        {
          label: 'x',
          reached: ['a', 'b'],
          placement: [{ item: 'w', field: 'kind', values: { a: 'kthread', b: null }, differs: true }],
          accounting: [],
        },
      ],
      failures: {},
    });
    expect(text).toMatch(/^≠ {2}w +kind +kthread +—$/m);
  });
});

describe('task keys and kinds', () => {
  it('keys tasks by comm, numbering the second and later tasks of a comm', () => {
    const s = snapshot([
      task({ pid: 1, comm: 'init' }),
      task({ pid: 7, comm: 'vhost-3', kthread: true }),
      task({ pid: 9, comm: 'vhost-3', kthread: true }),
    ]);
    expect([...keyedTasks(s).keys()]).toEqual(['vhost-3', 'vhost-3#2']);
  });

  it('tells kthreads, user workers, io workers, threads and processes apart by their flags', () => {
    expect(taskKind(task({ pid: 7, comm: 'k', kthread: true }))).toBe('kthread');
    expect(taskKind(task({ pid: 7, comm: 'w', tgid: 3, flags: 0x4000 }))).toBe('user worker');
    expect(taskKind(task({ pid: 7, comm: 'w', flags: 0x01000000 }))).toBe('user worker');
    expect(taskKind(task({ pid: 7, comm: 'iou-wrk-3', tgid: 3, flags: 0x4010 }))).toBe('io worker');
    expect(taskKind(task({ pid: 7, comm: 't', tgid: 3 }))).toBe('thread');
    expect(taskKind(task({ pid: 3, comm: 'p' }))).toBe('process');
  });
});
