import { describe, expect, it } from 'vitest';
import { QEMU_SCENARIO, snapshot, snapshotOf, task } from './fixtures.js';
import { ProcSelectionError, parseStatus, procStatusFiles, renderProcFiles } from './proc.js';

describe('/proc/<pid>/status', () => {
  const k612 = snapshotOf(QEMU_SCENARIO, 'linux-6.12', 'running');
  const k515 = snapshotOf(QEMU_SCENARIO, 'linux-5.15', 'running');

  it('prints a process and each of its threads under tail-style headers', () => {
    const files = procStatusFiles(k612, { name: 'qemu' });
    expect(files.map((f) => f.path)).toEqual([
      '/proc/3/task/3/status',
      '/proc/3/task/4/status',
      '/proc/3/task/5/status',
      '/proc/3/task/7/status',
    ]);
    const text = renderProcFiles(files);
    expect(text.startsWith('==> /proc/3/task/3/status <==\nName:\tqemu\n')).toBe(true);
    expect(text).toContain('Cpus_allowed_list:\t2-3\n\n==> /proc/3/task/4/status <==\nName:\tCPU 0/KVM\n');
  });

  it("shows a user worker with QEMU's Tgid, PPid and uid and every signal but SIGKILL and SIGSTOP blocked", () => {
    const [w] = procStatusFiles(k612, { pid: 7 });
    expect(w!.path).toBe('/proc/7/status');
    expect(w!.fields).toMatchObject({
      Name: 'vhost-3',
      Tgid: '3',
      PPid: '1',
      Uid: '107\t107\t107\t107',
      Kthread: '0',
      SigBlk: 'fffffffffffbfeff',
    });
  });

  it("prints one task's file alone, as cat does", () => {
    const files = procStatusFiles(k515, { pid: 7 });
    expect(renderProcFiles(files)).toBe(files[0]!.text);
    expect(files[0]!.fields).toMatchObject({ Name: 'vhost-3', Tgid: '7', PPid: '2', Uid: '0\t0\t0\t0' });
  });

  it('selects tasks by a comm glob when the name is not a scenario process', () => {
    expect(procStatusFiles(k515, { name: 'vhost-*' }).map((f) => f.pid)).toEqual([7]);
    // on 6.12 the worker is a thread: only that thread is shown
    expect(procStatusFiles(k612, { name: 'vhost-*' }).map((f) => f.path)).toEqual(['/proc/3/task/7/status']);
  });

  it('refuses a name that matches nothing, flagged as unknown', () => {
    expect(() => procStatusFiles(k612, { name: 'qemo' })).toThrow(ProcSelectionError);
    try {
      procStatusFiles(k612, { name: 'qemo' });
    } catch (e) {
      expect((e as ProcSelectionError).unknown).toBe(true);
      expect((e as ProcSelectionError).known).toEqual(['qemu']);
    }
  });

  it('refuses a process that is no longer alive, not flagged as unknown', () => {
    const end = snapshotOf(QEMU_SCENARIO, 'linux-6.12', 'end');
    try {
      procStatusFiles(end, { name: 'qemu' });
      expect.unreachable();
    } catch (e) {
      expect((e as ProcSelectionError).unknown).toBe(false);
      expect((e as Error).message).toBe('process "qemu" is not alive at end');
    }
  });

  it('still shows a zombie that has not been reaped, with its lingering threads', () => {
    const s = snapshot(
      [task({ pid: 3, comm: 'qemu', state: 'Z', nlwp: 2 }), task({ pid: 12, comm: 'vhost-3', tgid: 3 })],
      {
        processes: { qemu: { pid: 3, alive: false } },
      },
    );
    expect(procStatusFiles(s, { name: 'qemu' }).map((f) => f.path)).toEqual([
      '/proc/3/task/3/status',
      '/proc/3/task/12/status',
    ]);
  });

  it('parses Key:\\tvalue lines', () => {
    expect(parseStatus('Name:\tqemu\nUid:\t1\t2\t3\t4\n')).toEqual({ Name: 'qemu', Uid: '1\t2\t3\t4' });
  });
});
