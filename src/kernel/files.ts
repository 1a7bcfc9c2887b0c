/**
 * fs_struct, files_struct and struct file. Models fs/fs_struct.c (copy_fs_struct,
 * free_fs_struct), fs/file.c (dup_fd, close_fd, fget/fput) and the file operations the model
 * needs, v6.12.
 */
import { Errno, err, ok, type Result } from './errno.js';
import type { Kernel } from './kernel.js';
import type { KGen, WaitQueue } from './sched.js';
import type { Task } from './task.js';

/** struct fs_struct: root, cwd, umask. */
export class FsStruct {
  users = 1;
  /** set while an exec is in progress by one of its users (check_unsafe_exec) */
  inExec = false;
  constructor(
    public root: string,
    public cwd: string,
    public umask: number,
  ) {}
  copy(): FsStruct {
    return new FsStruct(this.root, this.cwd, this.umask);
  }
}

/** struct file_operations: what a file does; every callback is optional. */
export interface FileOps {
  readonly name: string;
  /**
   * `nowait`: IOCB_NOWAIT (io_uring's non-blocking issue), EAGAIN instead of sleeping; `pos`:
   * the offset of a positional read or write (pread, io_uring's sqe->off), else f_pos is used
   * (files without a position ignore both)
   */
  read?(k: Kernel, f: File, len: number, nowait?: boolean, pos?: number): KGen<Result<Uint8Array>>;
  write?(k: Kernel, f: File, data: Uint8Array, nowait?: boolean, pos?: number): KGen<Result<number>>;
  /** the wait queue poll_wait() would register on (file_can_poll), for io_uring's poll arming */
  pollQueue?(f: File): WaitQueue;
  ioctl?(k: Kernel, f: File, cmd: number, arg: number): KGen<Result<number>>;
  /**
   * S_ISREG files: the inode (file_inode), and whether the file system sets FMODE_NOWAIT on
   * open (none of the modelled ones does)
   */
  regInode?(f: File): RegInode;
  /** Called by the task that drops the last reference (fput → __fput). */
  release?(k: Kernel, f: File): KGen<void>;
}

/** the inode of a regular file, as io_uring sees it (io_wq_hash_work hashes it) */
export interface RegInode {
  readonly ino: number;
}

export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;

/** struct file */
export class File {
  /** f_count */
  count = 1;
  constructor(
    readonly ops: FileOps,
    readonly path: string,
    public flags: number,
    public priv: unknown,
  ) {}
}

/** struct files_struct: the fd table. */
export class FilesStruct {
  count = 1;
  fds: (File | null)[] = [];
  cloexec = new Set<number>();

  /** models alloc_fd(): lowest free slot */
  install(f: File, cloexec: boolean, limit: number): Result<number> {
    let fd = this.fds.indexOf(null);
    if (fd < 0) fd = this.fds.length;
    if (fd >= limit) return err(Errno.EMFILE);
    this.fds[fd] = f;
    if (cloexec) this.cloexec.add(fd);
    else this.cloexec.delete(fd);
    return ok(fd);
  }
  get(fd: number): File | null {
    return this.fds[fd] ?? null;
  }
  /** Removes the fd; the caller drops the file reference. */
  remove(fd: number): File | null {
    const f = this.fds[fd] ?? null;
    if (f) {
      this.fds[fd] = null;
      this.cloexec.delete(fd);
    }
    return f;
  }
  /** models dup_fd(): a copy sharing every open file */
  dup(): FilesStruct {
    const n = new FilesStruct();
    n.fds = this.fds.slice();
    n.cloexec = new Set(this.cloexec);
    for (const f of n.fds) if (f) f.count++;
    return n;
  }
  openCount(): number {
    let c = 0;
    for (const f of this.fds) if (f) c++;
    return c;
  }
}

/** models fs/file_table.c fput(): drop a reference; the last one runs release in `k.current`. */
export function* fput(k: Kernel, f: File): KGen<void> {
  if (--f.count === 0 && f.ops.release) yield* f.ops.release(k, f);
}

/** Drop a whole fd table reference (put_files_struct / close_files). */
export function* putFilesStruct(k: Kernel, files: FilesStruct): KGen<void> {
  if (--files.count > 0) return;
  for (let fd = 0; fd < files.fds.length; fd++) {
    const f = files.fds[fd];
    if (f) {
      files.fds[fd] = null;
      yield* fput(k, f);
    }
  }
}

/** Tasks that hold `f` open in their fd table (for views). */
export function holdersOf(k: Kernel, f: File): Task[] {
  const out: Task[] = [];
  for (const t of k.tasks.values()) if (t.files?.fds.includes(f)) out.push(t);
  return out;
}
