import { describe, expect, it } from 'vitest';
import { colors } from './common.js';
import { FAILING_SCENARIO, QEMU_SCENARIO, runText } from './fixtures.js';
import { outcomeCell, renderRun, renderRunResult, stepLocation, summarize } from './run.js';

describe('the run report', () => {
  it('shortens step paths to process[index], keeping nested actions', () => {
    expect(stepLocation('processes.qemu.program[4].ioctl')).toBe('qemu[4]');
    expect(stepLocation('processes.qemu.program[2].fork.program[1].exit')).toBe('qemu[2].fork[1]');
    expect(stepLocation('processes.q.program[0].loop.steps[3].sleep')).toBe('q[0].loop[3]');
  });

  it('marks a held expectation ✓ and a failed one ✗ with what was expected', () => {
    const c = colors(false);
    expect(outcomeCell({ outcome: 'ok', value: 3 }, c)).toBe('ok (3)');
    expect(outcomeCell({ outcome: 'ENOMEM', expected: 'ENOMEM' }, c)).toBe('ENOMEM ✓');
    expect(outcomeCell({ outcome: 'ok', expected: 'ENOMEM' }, c)).toBe('ok ✗ expected ENOMEM');
  });

  it('lists every step with its time, task and outcome, then the checks', () => {
    const text = renderRunResult(summarize(runText(QEMU_SCENARIO, 'linux-6.12')));
    expect(text).toMatch(/^linux-6\.12 — /);
    expect(text).toMatch(/^ +TIME +TASK +STEP +ACTION +DETAIL +OUTCOME$/m);
    expect(text).toMatch(/^ +\d+\.\d{3} ms +qemu-3 +qemu\[3\] +ioctl +net0 VHOST_SET_OWNER +ok ✓$/m);
    expect(text).toContain('    ✓ at running: threads qemu = 4');
    expect(text).toContain('    ✓ at end: leaks = none');
    expect(text).toMatch(/all \d+ expectations held/);
  });

  it('ends with a summary per profile and the failed expectations as sentences', () => {
    const results = ['linux-5.15', 'linux-6.12'].map((p) => summarize(runText(FAILING_SCENARIO, p)));
    const text = renderRun('s', 'f.yaml', results);
    expect(text).toContain('summary: linux-5.15 ok, linux-6.12 1 failed');
    expect(text).toMatch(
      /failed:\n {2}processes\.qemu\.program\[3\]\.ioctl: ioctl net0 VHOST_SET_OWNER returned ok, expected ENOMEM \(linux-6\.12\)/,
    );
  });

  it('leaves the kernel out of a summarized result', () => {
    expect('kernel' in summarize(runText(QEMU_SCENARIO, 'linux-5.15'))).toBe(false);
  });
});
