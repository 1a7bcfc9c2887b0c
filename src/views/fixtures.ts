/**
 * Small scenarios and hand-built snapshots for the view and CLI tests.
 */
import { parseScenario } from '../scenario/load.js';
import { type RunResult, runScenario, type Snapshot, type TaskView } from '../scenario/run.js';

/**
 * QEMU (uid 107, in /machine.slice/vm1 with pids.max 8 and cpuset 2-3, RLIMIT_NPROC 6)
 * starts two vCPU threads, forks a helper and opens one vhost-net device; at `running`
 * everything is alive; then it kills the helper, reaps it and exits.
 */
export const QEMU_SCENARIO = `name: qemu-one-vhost-net
profiles: [linux-5.15, linux-6.12]
seed: 1
host:
  cpus: 4
  cgroups:
    /machine.slice/vm1:
      pids.max: 8
      cpuset.cpus: 2-3
processes:
  qemu:
    uid: 107
    cgroup: /machine.slice/vm1
    rlimits: { nproc: 6 }
    program:
      - threads: { count: 2, name: "CPU {n}/KVM" }
      - fork: { as: helper }
      - open: { path: /dev/vhost-net, as: net0 }
      - ioctl: { fd: net0, cmd: VHOST_SET_OWNER }
        expect: ok
      - label: running
      - kill: { target: helper, signal: SIGKILL }
      - wait4: { pid: helper }
      - exit_group: 0
checks:
  running:
    default:
      threads: { qemu: 3 }
    linux-6.12:
      threads: { qemu: 4 }
      pids.current: { /machine.slice/vm1: 5 }
  end:
    default: { alive: [], leaks: none }
`;

/** The same scenario with an expectation that fails on linux-6.12 (SET_OWNER succeeds there). */
export const FAILING_SCENARIO = QEMU_SCENARIO.replace(
  '      - ioctl: { fd: net0, cmd: VHOST_SET_OWNER }\n        expect: ok',
  '      - ioctl: { fd: net0, cmd: VHOST_SET_OWNER }\n        expect: { default: ok, linux-6.12: ENOMEM }',
);

/** Run scenario text on a profile. */
export function runText(text: string, profile: string, file = 'fixture.yaml'): RunResult {
  return runScenario(parseScenario(text, file), profile, { trace: true });
}

/** The snapshot at `label` of a run of scenario text. */
export function snapshotOf(text: string, profile: string, label: string): Snapshot {
  const s = runText(text, profile).snapshots.find((x) => x.label === label);
  if (!s) throw new Error(`label ${label} not reached on ${profile}`);
  return s;
}

/** A TaskView with defaults (a sleeping root process), for hand-built snapshots. */
export function task(o: Partial<TaskView> & { pid: number; comm: string }): TaskView {
  const tgid = o.tgid ?? o.pid;
  const kthread = o.kthread ?? false;
  return {
    tgid,
    ppid: 1,
    uid: 0,
    ns: {},
    cmd: kthread ? `[${o.comm}]` : `/usr/bin/${o.comm}`,
    state: 'S',
    flags: kthread ? 0x00200000 : 0,
    kthread,
    nlwp: 1,
    cgroup: '/',
    cpus: '0-3',
    sigblk: '0000000000000000',
    startTime: 0,
    cpuNs: 0,
    status: `Name:\t${o.comm}\nPid:\t${o.pid}\n`,
    stat: `${o.pid} (${o.comm}) S 1 ${tgid} ${tgid} 0 -1 0`,
    ...o,
  };
}

/** A snapshot of hand-built tasks. */
export function snapshot(tasks: TaskView[], o: Partial<Snapshot> = {}): Snapshot {
  return {
    label: 'here',
    ts: 1_000_000_000,
    tasks,
    cgroups: [],
    processes: {},
    nproc: {},
    nrThreads: tasks.length,
    ...o,
  };
}
