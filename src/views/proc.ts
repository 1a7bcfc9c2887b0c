/**
 * /proc/<pid>/status files of a snapshot (the text is the model's proc_pid_status()
 * rendering): for a process, its own and each thread's (as `tail -n +1 /proc/<pid>/task/*\/status`
 * prints them, with `==> file <==` headers); for one task (`--pid`), that file alone.
 */
import type { Snapshot, TaskView } from '../scenario/run.js';

export interface ProcFile {
  /** the file's path, /proc/<tgid>/task/<tid>/status for a thread */
  path: string;
  pid: number;
  tgid: number;
  comm: string;
  text: string;
  /** the file parsed into `Key: value` fields (tabs kept inside values) */
  fields: Record<string, string>;
}

/** `Key:\tvalue` lines → a record. */
export function parseStatus(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).replace(/^\t/, '');
  }
  return out;
}

function file(t: TaskView, threadPath: boolean): ProcFile {
  return {
    path: threadPath ? `/proc/${t.tgid}/task/${t.pid}/status` : `/proc/${t.pid}/status`,
    pid: t.pid,
    tgid: t.tgid,
    comm: t.comm,
    text: t.status,
    fields: parseStatus(t.status),
  };
}

/**
 * A selection that names nothing in the snapshot: `unknown` when the name matches no scenario
 * process and no task at all (a typo, most likely); `known` lists the scenario's processes.
 */
export class ProcSelectionError extends Error {
  constructor(
    message: string,
    readonly known: string[],
    readonly unknown = false,
  ) {
    super(message);
  }
}

function globToRegExp(glob: string): RegExp {
  return new RegExp(
    `^${glob
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  );
}

/**
 * The status files of one task (`pid`), or of a process and its threads (`name`: a scenario
 * process name, else a comm glob such as `vhost-*` matching any tasks, each with its threads).
 */
export function procStatusFiles(snap: Snapshot, sel: { name?: string; pid?: number }): ProcFile[] {
  if (sel.pid !== undefined) {
    const t = snap.tasks.find((x) => x.pid === sel.pid);
    if (!t)
      throw new ProcSelectionError(
        `no task with pid ${sel.pid} at ${snap.label}`,
        Object.keys(snap.processes),
      );
    return [file(t, false)];
  }
  const name = sel.name ?? '';
  const known = Object.keys(snap.processes);
  const proc = snap.processes[name];
  let leaders: number[];
  if (proc) {
    // a zombie (exited, not yet reaped) still has its /proc directory
    if (!snap.tasks.some((t) => t.pid === proc.pid))
      throw new ProcSelectionError(`process "${name}" is not alive at ${snap.label}`, known);
    leaders = [proc.pid];
  } else {
    const re = globToRegExp(name);
    const matches = snap.tasks.filter((t) => re.test(t.comm));
    if (!matches.length)
      throw new ProcSelectionError(`no process or task named "${name}" at ${snap.label}`, known, true);
    leaders = [...new Set(matches.map((t) => t.tgid))];
    // a comm that names threads only: show just those threads
    if (matches.every((t) => t.pid !== t.tgid)) return matches.map((t) => file(t, true));
  }
  const out: ProcFile[] = [];
  for (const tgid of leaders)
    for (const t of snap.tasks.filter((x) => x.tgid === tgid).sort((a, b) => a.pid - b.pid))
      out.push(file(t, true));
  return out;
}

/** One file as `cat` prints it; several as `tail -n +1` does (headers, a blank line between). */
export function renderProcFiles(files: readonly ProcFile[]): string {
  if (files.length === 1) return files[0]!.text;
  return files.map((f) => `==> ${f.path} <==\n${f.text}`).join('\n');
}
