/**
 * Address spaces: struct mm_struct with mm_users/mm_count and mappings backed by bytes, so
 * guest memory, vrings and copy_{to,from}_user are real reads and writes. Models the parts of
 * kernel/fork.c (mm_init, dup_mm, mmput, mmgrab/mmdrop) and mm/mmap.c that workers touch.
 */
import type { Cgroup } from '../cgroup/cgroup.js';
import { Errno, err, ok, type Result } from './errno.js';

export const PAGE_SIZE = 4096;

export interface Mapping {
  readonly start: number;
  readonly len: number;
  readonly bytes: Uint8Array;
  readonly name: string;
  /** vma->vm_file of a shared file mapping: a file reference taken by mmap and dup_mmap, put at unmap */
  readonly vmFile?: VmFile;
}

/** The file reference a shared mapping holds (get_file / fput of vma->vm_file). */
export interface VmFile {
  get(): void;
  put(): void;
}

/**
 * Where mappings get their bytes: a fresh zero-filled buffer, unless a run is given a buffer
 * pool (withBufferPool). The explorer boots one kernel per execution, and each allocates and
 * frees megabytes of guest RAM: in several threads of one process, that contends on the C
 * library's heap (mmap/munmap per buffer), so it lends the buffers of finished executions.
 */
export interface BufferPool {
  /** a zero-filled buffer of `size` bytes */
  alloc(size: number): Uint8Array;
}

let pool: BufferPool | null = null;

/** Run `fn` with mappings taking their bytes from `p`. */
export function withBufferPool<T>(p: BufferPool, fn: () => T): T {
  const outer = pool;
  pool = p;
  try {
    return fn();
  } finally {
    pool = outer;
  }
}

function zeroed(size: number): Uint8Array {
  return pool ? pool.alloc(size) : new Uint8Array(size);
}

export class MM {
  /** mm_users: tasks (and get_task_mm() holders) using the address space */
  users = 1;
  /** mm_count: references to the struct itself (mmgrab, lazy active_mm, kthread_use_mm) */
  count = 1;
  readonly mappings: Mapping[] = [];
  /** the memory cgroup charged for this mm's pages (memory.current) */
  memcg: Cgroup | null = null;
  /** next free address for mmap without a hint */
  private brk = 0x7f0000000000;
  constructor(readonly id: number) {}

  get released(): boolean {
    return this.users === 0;
  }

  /** models mm/mmap.c do_mmap() for an anonymous private mapping. */
  mmap(len: number, name = '[anon]', addr?: number): Result<number> {
    if (len <= 0) return err(Errno.EINVAL);
    const size = Math.ceil(len / PAGE_SIZE) * PAGE_SIZE;
    const start = addr ?? this.brk;
    if (start % PAGE_SIZE !== 0) return err(Errno.EINVAL);
    if (this.mappings.some((m) => start < m.start + m.len && m.start < start + size))
      return err(Errno.EEXIST);
    this.mappings.push({ start, len: size, bytes: zeroed(size), name });
    this.mappings.sort((a, b) => a.start - b.start);
    if (addr === undefined) this.brk = start + size + PAGE_SIZE;
    this.memcg?.memoryCharge(size);
    return ok(start);
  }

  /**
   * Map pages the kernel owns (an io_uring's rings) into this address space, shared: the
   * bytes are the same object, as remap_pfn_range/vm_insert_pages would share the pages.
   */
  mapShared(bytes: Uint8Array, name: string, vmFile?: VmFile): Result<number> {
    const size = Math.ceil(bytes.length / PAGE_SIZE) * PAGE_SIZE;
    if (size !== bytes.length) return err(Errno.EINVAL);
    const start = this.brk;
    this.mappings.push({ start, len: size, bytes, name, ...(vmFile ? { vmFile } : {}) });
    this.mappings.sort((a, b) => a.start - b.start);
    this.brk = start + size + PAGE_SIZE;
    return ok(start);
  }

  munmap(start: number): Result<void> {
    const i = this.mappings.findIndex((m) => m.start === start);
    if (i < 0) return err(Errno.EINVAL);
    const [m] = this.mappings.splice(i, 1);
    if (m!.vmFile) m!.vmFile.put();
    else this.memcg?.memoryCharge(-m!.len);
    return ok();
  }

  /** Total mapped bytes (VmSize analogue). */
  get size(): number {
    let s = 0;
    for (const m of this.mappings) s += m.len;
    return s;
  }

  private find(addr: number, len: number): Mapping | undefined {
    for (const m of this.mappings) if (addr >= m.start && addr + len <= m.start + m.len) return m;
    return undefined;
  }

  /** copy_from_user(): EFAULT when [addr, addr+len) is not entirely mapped. */
  read(addr: number, len: number): Result<Uint8Array> {
    const m = this.find(addr, len);
    if (!m) return err(Errno.EFAULT);
    return ok(m.bytes.subarray(addr - m.start, addr - m.start + len));
  }

  /** copy_to_user(): EFAULT when [addr, addr+len) is not entirely mapped. */
  write(addr: number, data: Uint8Array): Result<void> {
    const m = this.find(addr, data.length);
    if (!m) return err(Errno.EFAULT);
    m.bytes.set(data, addr - m.start);
    return ok();
  }

  /** A DataView over a mapped range (for struct and vring access); EFAULT if unmapped. */
  view(addr: number, len: number): Result<DataView> {
    const m = this.find(addr, len);
    if (!m) return err(Errno.EFAULT);
    return ok(new DataView(m.bytes.buffer, m.bytes.byteOffset + (addr - m.start), len));
  }

  /** models kernel/fork.c dup_mm(): a private copy of every mapping. */
  dup(id: number, memcg: Cgroup | null): MM {
    const mm = new MM(id);
    mm.brk = this.brk;
    mm.memcg = memcg;
    for (const m of this.mappings) {
      if (m.vmFile) {
        // a shared file mapping: the same pages, one more file reference
        m.vmFile.get();
        mm.mappings.push(m);
        continue;
      }
      const bytes = zeroed(m.len);
      bytes.set(m.bytes);
      mm.mappings.push({ start: m.start, len: m.len, bytes, name: m.name });
      memcg?.memoryCharge(m.len);
    }
    return mm;
  }

  /** models exit_mmap(): called when mm_users drops to zero. */
  teardown(): void {
    for (const m of this.mappings) {
      if (m.vmFile) m.vmFile.put();
      else this.memcg?.memoryCharge(-m.len);
    }
    this.mappings.length = 0;
  }
}
