/**
 * Anonymous pipes: pipe2(2), models fs/pipe.c (pipe_read, pipe_write, pipe_release,
 * pipe_poll's wait queue), v6.12, with the default capacity of PIPE_DEF_BUFFERS pages. A read
 * of an empty pipe sleeps until data or until the last writer closes (then 0 bytes); a write
 * to a pipe without readers fails with EPIPE and sends SIGPIPE; a write sleeps while the pipe
 * is full. O_NONBLOCK (or IOCB_NOWAIT from io_uring) turns each sleep into EAGAIN.
 */
import { Errno, err, ok } from './errno.js';
import { File, type FileOps, O_NONBLOCK } from './files.js';
import { PAGE_SIZE } from './mm.js';
import { WaitQueue, waitEvent } from './sched.js';
import { TASK_INTERRUPTIBLE } from './sched-consts.js';
import { kernelSigInfo, sendSignal } from './signal.js';
import { SIGPIPE } from './signal-consts.js';

/** PIPE_DEF_BUFFERS */
export const PIPE_DEF_BUFFERS = 16;

/** struct pipe_inode_info: the buffer, its readers and writers, and pipe->wr_wait/rd_wait (one queue here). */
export class PipeInode {
  data: number[] = [];
  readers = 1;
  writers = 1;
  readonly capacity = PIPE_DEF_BUFFERS * PAGE_SIZE;
  readonly wait = new WaitQueue('pipe');
}

function readEnd(f: File): PipeInode {
  return f.priv as PipeInode;
}

export const PIPE_READ_OPS: FileOps = {
  name: 'pipe',
  *read(k, f, len, nowait) {
    const p = readEnd(f);
    if (len === 0) return ok(new Uint8Array(0));
    if (p.data.length === 0) {
      if (p.writers === 0) return ok(new Uint8Array(0));
      if (f.flags & O_NONBLOCK || nowait) return err(Errno.EAGAIN);
      const r = yield* waitEvent(k, p.wait, () => p.data.length > 0 || p.writers === 0, TASK_INTERRUPTIBLE);
      if (r < 0) return err(Errno.ERESTARTSYS);
    }
    const out = Uint8Array.from(p.data.splice(0, Math.min(len, p.data.length)));
    p.wait.wakeUp(k);
    return ok(out);
  },
  pollQueue: (f) => readEnd(f).wait,
  *release(k, f) {
    const p = readEnd(f);
    p.readers--;
    p.wait.wakeUp(k);
  },
};

export const PIPE_WRITE_OPS: FileOps = {
  name: 'pipe',
  *write(k, f, data, nowait) {
    const p = readEnd(f);
    let done = 0;
    while (done < data.length) {
      if (p.readers === 0) {
        sendSignal(k, SIGPIPE, kernelSigInfo(SIGPIPE), k.current!, false);
        return done ? ok(done) : err(Errno.EPIPE);
      }
      const room = p.capacity - p.data.length;
      if (room > 0) {
        const n = Math.min(room, data.length - done);
        for (let i = 0; i < n; i++) p.data.push(data[done + i]!);
        done += n;
        p.wait.wakeUp(k);
        continue;
      }
      if (f.flags & O_NONBLOCK || nowait) return done ? ok(done) : err(Errno.EAGAIN);
      const r = yield* waitEvent(
        k,
        p.wait,
        () => p.data.length < p.capacity || p.readers === 0,
        TASK_INTERRUPTIBLE,
      );
      if (r < 0) return done ? ok(done) : err(Errno.ERESTARTSYS);
    }
    return ok(done);
  },
  pollQueue: (f) => readEnd(f).wait,
  *release(k, f) {
    const p = readEnd(f);
    p.writers--;
    p.wait.wakeUp(k);
  },
};

/** models create_pipe_files(): the read and the write end of one new pipe. */
export function createPipeFiles(flags: number): [File, File] {
  const p = new PipeInode();
  return [
    new File(PIPE_READ_OPS, 'pipe:[read]', flags & O_NONBLOCK, p),
    new File(PIPE_WRITE_OPS, 'pipe:[write]', (flags & O_NONBLOCK) | 1, p),
  ];
}
