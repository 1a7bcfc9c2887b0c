/**
 * The vhost-net conformance scenarios on Debian's 6.1 (kthread workers) and 6.12 (vhost_task)
 * kernels under QEMU TCG, against linux-6.1 and linux-6.12. Where QEMU, busybox-static or the
 * kernel packages are missing, each case is skipped with the reason — never passed.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadScenario } from '../scenario/load.js';
import { conformScenario } from './suite.js';

const DIR = join(import.meta.dirname, '..', '..', 'conformance', 'vhost');
const files = readdirSync(DIR).filter((f) => f.endsWith('.yaml'));

describe.each(['debian-6.1', 'debian-6.12'] as const)('%s under QEMU against the model', (target) => {
  for (const f of files) {
    it(`${f}: every observation matches, or the target is skipped with its reason`, (ctx) => {
      const r = conformScenario(loadScenario(join(DIR, f)), target);
      if (r.skipped) {
        ctx.skip(`${target}: ${r.skipped}`);
        return;
      }
      expect(r.errors ?? []).toEqual([]);
      expect(r.rows.filter((x) => x.status === 'mismatch')).toEqual([]);
      expect(r.rows.filter((x) => x.status === 'match').length).toBeGreaterThan(20);
    }, 120_000);
  }
});
