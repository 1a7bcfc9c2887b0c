import { describe, expect, it } from 'vitest';
import { QEMU_SCENARIO, snapshot, snapshotOf, task } from './fixtures.js';
import { pstreeForest, renderPstree } from './pstree.js';

describe('pstree -p', () => {
  it("draws branches with psmisc's UTF-8 symbols and aligns continuation lines under ┬", () => {
    const s = snapshot([
      task({ pid: 1, comm: 'init', ppid: 0 }),
      task({ pid: 2, comm: 'kthreadd', ppid: 0, kthread: true }),
      task({ pid: 3, comm: 'qemu', nlwp: 3 }),
      task({ pid: 4, comm: 'CPU 0/KVM', tgid: 3 }),
      task({ pid: 5, comm: 'CPU 1/KVM', tgid: 3 }),
      task({ pid: 6, comm: 'qemu', ppid: 3 }),
      task({ pid: 8, comm: 'vhost-3', ppid: 2, kthread: true }),
      task({ pid: 10, comm: 'sshd' }),
      task({ pid: 11, comm: 'bash', ppid: 10 }),
    ]);
    expect(renderPstree(s)).toBe(
      [
        'init(1)─┬─qemu(3)─┬─qemu(6)',
        '        │         ├─{CPU 0/KVM}(4)',
        '        │         └─{CPU 1/KVM}(5)',
        '        └─sshd(10)───bash(11)',
        'kthreadd(2)───vhost-3(8)',
        '',
      ].join('\n'),
    );
  });

  it('shows threads as {comm}(tid) under their process, after its child processes', () => {
    const s = snapshotOf(QEMU_SCENARIO, 'linux-6.12', 'running');
    expect(renderPstree(s)).toContain(
      [
        'init(1)───qemu(3)─┬─qemu(6)',
        '                  ├─{CPU 0/KVM}(4)',
        '                  ├─{CPU 1/KVM}(5)',
        '                  └─{vhost-3}(7)',
      ].join('\n'),
    );
  });

  it('shows a kthread worker as a child of kthreadd, not of QEMU', () => {
    const s = snapshotOf(QEMU_SCENARIO, 'linux-5.15', 'running');
    const text = renderPstree(s);
    expect(text).toContain('kthreadd(2)───vhost-3(7)\n');
    expect(text).not.toContain('{vhost-3}');
  });

  it('sorts children by name, then uid, then pid', () => {
    const s = snapshot([
      task({ pid: 1, comm: 'init', ppid: 0 }),
      task({ pid: 9, comm: 'b' }),
      task({ pid: 5, comm: 'a', uid: 5 }),
      task({ pid: 4, comm: 'a', uid: 5 }),
      task({ pid: 3, comm: 'a', uid: 7 }),
    ]);
    expect(pstreeForest(s)[0]!.children.map((c) => c.pid)).toEqual([4, 5, 3, 9]);
  });

  it('prints only the subtree of a pid when asked', () => {
    const s = snapshotOf(QEMU_SCENARIO, 'linux-6.12', 'running');
    expect(renderPstree(s, 6)).toBe('qemu(6)\n');
    expect(renderPstree(s, 99)).toBe('');
  });

  it('keeps a deeper branch line while its parent has later siblings', () => {
    const s = snapshot([
      task({ pid: 1, comm: 'init', ppid: 0 }),
      task({ pid: 2, comm: 'a' }),
      task({ pid: 3, comm: 'x', ppid: 2 }),
      task({ pid: 4, comm: 'y', ppid: 3 }),
      task({ pid: 5, comm: 'z', ppid: 3 }),
      task({ pid: 6, comm: 'b' }),
    ]);
    expect(renderPstree(s)).toBe(
      ['init(1)─┬─a(2)───x(3)─┬─y(4)', '        │             └─z(5)', '        └─b(6)', ''].join('\n'),
    );
  });
});
