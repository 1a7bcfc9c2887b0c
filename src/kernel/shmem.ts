/**
 * tmpfs regular files, the smallest part of mm/shmem.c the model needs, v6.12: open(2) with
 * O_CREAT of a path under a tmpfs mount (/tmp and /dev/shm here) creates an empty file
 * (shmem_create → shmem_get_inode); read and write act at the file position, and the data
 * stays in the page cache, so a read never sleeps (shmem_file_read_iter) and a write never
 * waits for I/O (shmem_file_write_iter → generic_perform_write). No directories, no unlink,
 * no size limit, no swap.
 */
import { Errno, err, ok } from './errno.js';
import { File, type FileOps, type RegInode } from './files.js';
import type { Kernel } from './kernel.js';

/** O_CREAT */
export const O_CREAT = 0o100;

/** the tmpfs mounts of the model (a path below one of them is a tmpfs file) */
const TMPFS_MOUNTS = ['/tmp/', '/dev/shm/'];

/** struct shmem_inode_info with its page cache: the file's bytes */
export class ShmemInode implements RegInode {
  data = new Uint8Array(0);
  constructor(readonly ino: number) {}
}

/** an open tmpfs file: its inode and f_pos */
class ShmemFile {
  pos = 0;
  constructor(readonly inode: ShmemInode) {}
}

const fileOf = (f: File) => f.priv as ShmemFile;

export const SHMEM_FILE_OPS: FileOps = {
  name: 'tmpfs',
  /**
   * models shmem_file_read_iter(), v6.12: copies from the page cache at the position (f_pos,
   * advanced, or the given offset) up to i_size; IOCB_NOWAIT is not looked at (the pages are
   * always there)
   */
  *read(_k, f, len, _nowait, pos) {
    const sf = fileOf(f);
    const at = pos ?? sf.pos;
    const out = sf.inode.data.slice(at, Math.min(sf.inode.data.length, at + len));
    if (pos === undefined) sf.pos += out.length;
    return ok(out);
  },
  /**
   * models shmem_file_write_iter(), v6.12: generic_write_checks() refuses IOCB_NOWAIT on a
   * buffered write to a file system without FOP_BUFFER_WASYNC (tmpfs has none) with -EINVAL;
   * otherwise the data lands in the page cache at the position (f_pos, advanced, or the given
   * offset), growing i_size
   */
  *write(_k, f, data, nowait, pos) {
    if (nowait) return err(Errno.EINVAL);
    const sf = fileOf(f);
    const at = pos ?? sf.pos;
    const end = at + data.length;
    if (end > sf.inode.data.length) {
      const grown = new Uint8Array(end);
      grown.set(sf.inode.data);
      sf.inode.data = grown;
    }
    sf.inode.data.set(data, at);
    if (pos === undefined) sf.pos = end;
    return ok(data.length);
  },
  regInode: (f) => fileOf(f).inode,
};

const nextIno = new WeakMap<Kernel, number>();

/**
 * models the O_CREAT path of open(2) on tmpfs (lookup_open → shmem_create), v6.12: a path
 * below a tmpfs mount gets a new empty inode, and open(2) of the path opens it from then on
 * (k.devices). Returns false for a path that is on no tmpfs mount.
 */
export function shmemCreate(k: Kernel, path: string): boolean {
  if (!TMPFS_MOUNTS.some((m) => path.startsWith(m) && path.length > m.length)) return false;
  const ino = (nextIno.get(k) ?? 0) + 1;
  nextIno.set(k, ino);
  const inode = new ShmemInode(ino);
  k.devices.set(path, function* (_k, p, flags) {
    return ok(new File(SHMEM_FILE_OPS, p, flags & ~O_CREAT, new ShmemFile(inode)));
  });
  return true;
}
