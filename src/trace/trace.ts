/**
 * Trace events modelled on the kernel's tracepoints (include/trace/events/sched.h, task.h,
 * signal.h, cgroup.h) and rendered like the ftrace "trace" file
 * (kernel/trace/trace_output.c): `<comm>-<pid> [cpu] ..... secs.usecs: event: fields`.
 */
export interface TraceEvent {
  /** virtual time, ns */
  readonly ts: number;
  /** CPU the current task ran on */
  readonly cpu: number;
  /** comm and pid of the task that was current when the event fired (pid 0: swapper) */
  readonly comm: string;
  readonly pid: number;
  /** tracepoint name, e.g. "sched_process_fork" */
  readonly event: string;
  /** the TP_printk text */
  readonly text: string;
}

export class TraceBuffer {
  readonly events: TraceEvent[] = [];
  constructor(public enabled = true) {}
  emit(e: TraceEvent): void {
    if (this.enabled) this.events.push(e);
  }
  /** Events of one tracepoint, in order. */
  of(event: string): TraceEvent[] {
    return this.events.filter((e) => e.event === event);
  }
  clear(): void {
    this.events.length = 0;
  }
}

/** One line of the ftrace text format. */
export function formatFtraceLine(e: TraceEvent): string {
  const who = `${e.comm}-${e.pid}`.padStart(22);
  const cpu = `[${String(e.cpu).padStart(3, '0')}]`;
  const us = Math.floor(e.ts / 1000);
  const secs = `${Math.floor(us / 1_000_000)}.${String(us % 1_000_000).padStart(6, '0')}`;
  return `${who} ${cpu} ..... ${secs.padStart(12)}: ${e.event}: ${e.text}`;
}

/** The whole buffer as the text of /sys/kernel/tracing/trace. */
export function formatFtrace(events: readonly TraceEvent[]): string {
  const head = [
    '# tracer: nop',
    '#',
    `# entries-in-buffer/entries-written: ${events.length}/${events.length}   #P:1`,
    '#',
    '#                                _-----=> irqs-off/BH-disabled',
    '#                               / _----=> need-resched',
    '#                              | / _---=> hardirq/softirq',
    '#                              || / _--=> preempt-depth',
    '#                              ||| / _-=> migrate-disable',
    '#                              |||| /     delay',
    '#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION',
    '#              | |         |   |||||     |         |',
  ];
  return `${head.concat(events.map(formatFtraceLine)).join('\n')}\n`;
}
