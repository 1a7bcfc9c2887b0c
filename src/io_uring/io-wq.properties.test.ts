/**
 * io-wq invariants over random submissions (fast-check): on any profile, seed, RLIMIT_NPROC,
 * pids.max and unbound limit, and any mix of async and inline pipe reads, NOPs and writes to a
 * tmpfs file,
 *  - every io-wq worker is a thread of the submitter, charged to its uid and cgroup; on the
 *    kthread era (5.10) a kthread of root in the root cgroup, whose unbound workers are
 *    charged to the submitter's uid on top of its tasks;
 *  - the unbound workers never outnumber the unbound limit nor push the uid's tasks past
 *    RLIMIT_NPROC or the cgroup past pids.max;
 *  - every request completes exactly once, and the file holds one byte per completed write;
 *  - after exit_group, every task, RLIMIT_NPROC count and pids charge is back to its boot value.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkNoLeaks } from '../kernel/invariants.js';
import { RLIMIT_NPROC } from '../kernel/rlimit.js';
import { O_CREAT } from '../kernel/shmem.js';
import { bootKernel, makeCgroup, settle, spawn, tasksNamed } from '../kernel/testing.js';
import { PROFILES } from '../profiles/eras.js';
import { ioUringExpectation } from './expectations.js';
import { ioWqOf, registerIoUring, ringIoWqsOf } from './io_uring.js';
import { IORING_OP_NOP, IORING_OP_READ, IORING_OP_WRITE, IOSQE_ASYNC } from './uapi.js';
import {
  ioUringQueueInit,
  ioUringRegisterIowqMaxWorkers,
  ioUringSubmitAndWait,
  queueSqe,
  reapCqes,
} from './user.js';

interface Batch {
  reads: number;
  asyncReads: number;
  nops: number;
  writes: number;
  asyncWrites: number;
}

const caseArb = fc.record({
  profile: fc.constantFrom(...PROFILES.map((p) => p.name)),
  seed: fc.integer({ min: 1, max: 1_000_000 }),
  nproc: fc.integer({ min: 2, max: 12 }),
  pidsMax: fc.option(fc.integer({ min: 2, max: 12 }), { nil: null }),
  maxUnbound: fc.integer({ min: 0, max: 6 }),
  batches: fc.array(
    fc.record({
      reads: fc.nat(3),
      asyncReads: fc.nat(5),
      nops: fc.nat(2),
      writes: fc.nat(2),
      asyncWrites: fc.nat(4),
    }),
    {
      minLength: 1,
      maxLength: 3,
    },
  ),
  feed: fc.boolean(),
});

describe('io-wq invariants', () => {
  it('workers stay within every limit, each request completes once, and exit returns every count to boot', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const k = bootKernel({ profile: c.profile, seed: c.seed });
        const kthreadEra = ioUringExpectation(c.profile).workerKind === 'kthread';
        const workerRe = /^(iou-wrk-|io_wqe_worker-)/;
        registerIoUring(k);
        const boot0 = { nrThreads: k.nrThreads };
        const cg = makeCgroup(k, '/app', c.pidsMax === null ? {} : { pidsMax: c.pidsMax });
        let maxWorkers = 0;
        let submitted = 0;
        let asyncSubmitted = 0;
        const completions: bigint[] = [];
        const writeIds = new Set<bigint>();
        /** CQEs of writes that wrote their byte (res 1), before and after the file was read */
        let writtenBefore = 0;
        let writtenAfter = 0;
        let fileSize = -1;
        const app = spawn(
          k,
          'app',
          function* (sys) {
            const r = yield* ioUringQueueInit(sys, 32);
            const p = yield* sys.pipe();
            const f = yield* sys.open('/tmp/data', O_CREAT | 2);
            const buf = yield* sys.mmap(4096);
            if (!r.ok || !p.ok || !f.ok || !buf.ok) return yield* sys.exitGroup(1);
            const reap = () => {
              for (const x of reapCqes(sys, r.value)) {
                completions.push(x.userData);
                if (writeIds.has(x.userData) && x.res === 1) writtenAfter++;
              }
            };
            if (c.maxUnbound) yield* ioUringRegisterIowqMaxWorkers(sys, r.value, 0, c.maxUnbound);
            let ud = 0n;
            for (const b of c.batches as Batch[]) {
              const queue = (opcode: number, flags: number) => {
                const write = opcode === IORING_OP_WRITE;
                if (write) writeIds.add(ud + 1n);
                return queueSqe(sys, r.value, {
                  opcode,
                  flags,
                  fd: write ? f.value : p.value[0],
                  off: write ? -1n : 0n,
                  addr: buf.value,
                  len: 1,
                  userData: ++ud,
                });
              };
              let n = 0;
              for (let i = 0; i < b.reads; i++) n += queue(IORING_OP_READ, 0) ? 1 : 0;
              for (let i = 0; i < b.asyncReads; i++) n += queue(IORING_OP_READ, IOSQE_ASYNC) ? 1 : 0;
              for (let i = 0; i < b.nops; i++) n += queue(IORING_OP_NOP, IOSQE_ASYNC) ? 1 : 0;
              for (let i = 0; i < b.writes; i++) n += queue(IORING_OP_WRITE, 0) ? 1 : 0;
              for (let i = 0; i < b.asyncWrites; i++) n += queue(IORING_OP_WRITE, IOSQE_ASYNC) ? 1 : 0;
              asyncSubmitted += b.asyncReads + b.nops + b.writes + b.asyncWrites;
              const s = yield* ioUringSubmitAndWait(sys, r.value, n, 0);
              if (s.ok) submitted += s.value;
              yield* sys.nanosleep(200_000);
              maxWorkers = Math.max(maxWorkers, tasksNamed(k, workerRe).length);
              reap();
            }
            if (c.feed) {
              yield* sys.write(p.value[1], new Uint8Array(64));
              yield* sys.nanosleep(20_000_000);
              reap();
            }
            reap();
            writtenBefore = writtenAfter;
            const back = yield* sys.open('/tmp/data', 0);
            const all = back.ok ? yield* sys.read(back.value, 4096) : null;
            if (all?.ok) fileSize = all.value.length;
            reap();
            return yield* sys.exitGroup(0);
          },
          { uid: 1000, cgroup: cg, rlimits: { [RLIMIT_NPROC]: { cur: c.nproc, max: c.nproc } } },
        );
        // every worker made so far is a thread of app, with its uid and cgroup (or a root kthread)
        const seen = new Set<number>();
        const watch = () => {
          for (const t of tasksNamed(k, workerRe)) {
            if (seen.has(t.pid)) continue;
            seen.add(t.pid);
            expect(t.tgid).toBe(kthreadEra ? t.pid : app.pid);
            expect(t.cred.uid).toBe(kthreadEra ? 0 : 1000);
            if (kthreadEra) expect(t.cgroups[0]!.path).toBe('/');
            else expect(t.cgroups[0]).toBe(cg);
          }
          const uc = [...k.ucounts.all()].find((u) => u.uid === 1000);
          const nproc = (uc?.nproc ?? 0) - (uc ? (k.nprocCharges.get(uc) ?? 0) : 0);
          expect(nproc).toBeLessThanOrEqual(c.nproc);
          if (c.pidsMax !== null) expect(cg.pids.counter).toBeLessThanOrEqual(c.pidsMax);
          const wq = ioWqOf(app);
          if (wq) expect(wq.acct[1].nrWorkers).toBeLessThanOrEqual(c.maxUnbound || c.nproc);
          for (const kwq of ringIoWqsOf(app))
            expect(kwq.acct[0].nrWorkers + kwq.acct[1].nrWorkers).toBeLessThanOrEqual(1 + asyncSubmitted);
          return false;
        };
        k.run({ until: watch, maxSteps: 2_000_000 });
        settle(k, 2_000_000);
        // NOPs are bound work (at most min(SQ entries, 4 × CPUs) workers); reads of a pipe are unbound
        if (kthreadEra) expect(maxWorkers).toBeLessThanOrEqual(1 + asyncSubmitted);
        else expect(maxWorkers).toBeLessThanOrEqual((c.maxUnbound || c.nproc) + 4 * k.nrCpus);
        expect(new Set(completions).size).toBe(completions.length);
        // each write that completed with 1 added one byte (a write may complete during the read)
        if (fileSize >= 0) {
          expect(fileSize).toBeGreaterThanOrEqual(writtenBefore);
          expect(fileSize).toBeLessThanOrEqual(writtenAfter);
        }
        // fed with enough bytes, every read completes unless a worker it waits for could not be
        // made (then it stays queued while creation is retried, or is cancelled)
        if (c.feed && k.lastCopyProcessFailure === null) expect(completions.length).toBe(submitted);
        else expect(completions.length).toBeLessThanOrEqual(submitted);
        expect(cg.pids.counter).toBe(0);
        expect([...k.ucounts.all()].find((u) => u.uid === 1000)?.nproc ?? 0).toBe(0);
        checkNoLeaks(k, boot0);
      }),
      { numRuns: 60, seed: 20251125 },
    );
  });
});
