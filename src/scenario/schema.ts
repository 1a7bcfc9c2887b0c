/**
 * The scenario file format, as zod schemas. A scenario describes a host (cgroups, sysctls,
 * module parameters), the processes on it with their programs (a list of steps), labelled
 * points in time, expectations per kernel profile and checks at labels. Steps are objects
 * with exactly one action key (plus `expect`); each action has its own schema below.
 */
import { z } from 'zod';

const int = () => z.number().int();
/** "10ms", "1.5s", "250us", "100ns" or a number of nanoseconds */
export const Duration = z.union([
  int().nonnegative(),
  z.string().regex(/^\d+(\.\d+)?\s*(ns|us|µs|ms|s)$/, 'a duration like 10ms'),
]);
/** a non-negative limit or "max"/"unlimited" */
export const Limit = z.union([int().nonnegative(), z.enum(['max', 'unlimited'])]);
/** "ok" or an errno name */
export const Outcome = z.string();
/** `expect: ok`, `expect: EAGAIN`, or per profile `{ default: ok, linux-6.12: ENOMEM }` */
export const Expect = z.union([Outcome, z.record(z.string(), Outcome)]);
/** a CPU list such as "0-3,6" or a single CPU number */
export const CpuList = z.union([int().nonnegative(), z.string()]);

export const Rlimits = z.record(z.string(), z.union([Limit, z.strictObject({ soft: Limit, hard: Limit })]));

export const CgroupSpec = z.strictObject({
  'pids.max': Limit.optional(),
  'cpuset.cpus': CpuList.optional(),
  'cpu.max': z.union([z.string(), int().positive()]).optional(),
  'cgroup.type': z.enum(['domain', 'threaded']).optional(),
  owner: int().nonnegative().optional(),
});

export const Host = z.strictObject({
  cpus: int().min(1).max(32).optional(),
  memory: z
    .string()
    .regex(/^\d+\s*(M|G)i?B?$/i, 'a size like 8G')
    .optional(),
  /** isolated CPUs: kthreads get the complement (housekeeping) */
  housekeeping: CpuList.optional(),
  sysctl: z
    .strictObject({
      'kernel.threads-max': int().positive().optional(),
      'kernel.pid_max': int().min(301).optional(),
    })
    .optional(),
  cgroups: z
    .record(z.string().regex(/^\//, 'a path starting with /'), z.union([CgroupSpec, z.null()]))
    .optional(),
  modules: z
    .strictObject({
      'vhost.fork_from_owner_default': z.union([z.literal(0), z.literal(1), z.boolean()]).optional(),
      'vhost.max_mem_regions': int().positive().optional(),
      'kvm.nx_huge_pages': z.union([z.boolean(), z.enum(['Y', 'N', 'never', 'auto'])]).optional(),
    })
    .optional(),
});

/** A program: a list of steps (validated step by step, see STEP_SCHEMAS). */
export const Program = z.array(z.record(z.string(), z.unknown()));

export const Process = z.strictObject({
  uid: int().nonnegative().optional(),
  gid: int().nonnegative().optional(),
  /** capability names (CAP_SYS_ADMIN, …), "all" or "none"; default all for uid 0, none otherwise */
  capabilities: z.union([z.array(z.string()), z.enum(['all', 'none'])]).optional(),
  rlimits: Rlimits.optional(),
  cgroup: z.string().regex(/^\//, 'a path starting with /').optional(),
  cpus: CpuList.optional(),
  /** the parent process (another process of the scenario); default init */
  parent: z.string().optional(),
  /** start when this label has been reached (default: at boot) */
  after: z.string().optional(),
  program: Program,
});

/** A task selector for checks. Fields are all optional; `count` asks for an exact number. */
export const TaskCheck = z.strictObject({
  comm: z.string().optional(),
  tgid: z.union([z.string(), int()]).optional(),
  ppid: z.union([z.string(), int()]).optional(),
  uid: int().optional(),
  cgroup: z.string().optional(),
  cpus: CpuList.optional(),
  sigblk: z.string().optional(),
  state: z.string().optional(),
  kthread: z.boolean().optional(),
  count: int().nonnegative().optional(),
});

export const Checks = z.strictObject({
  /** Threads: of each named process */
  threads: z.record(z.string(), int().nonnegative()).optional(),
  tasks: z.array(TaskCheck).optional(),
  'pids.current': z.record(z.string(), int().nonnegative()).optional(),
  'pids.events': z.record(z.string(), int().nonnegative()).optional(),
  /** RLIMIT_NPROC counts by uid */
  nproc: z.record(z.string(), int().nonnegative()).optional(),
  /** exactly these scenario processes are alive */
  alive: z.array(z.string()).optional(),
  /** "none": no task beyond init and kthreadd, every counter back at its boot value */
  leaks: z.literal('none').optional(),
});

export const Scenario = z.strictObject({
  name: z.string().min(1),
  description: z.string().optional(),
  profiles: z.array(z.string()).min(1),
  seed: int().nonnegative().optional(),
  /**
   * Parameters with their default values, e.g. `{ N: 1, K: 1 }`: a value written `$N` anywhere
   * in the file is replaced by N's value when the file is loaded (`--param N=3` overrides it).
   */
  params: z
    .record(z.string().regex(/^[A-Za-z_]\w*$/, 'a name of letters, digits and _'), int().nonnegative())
    .optional(),
  /** stop the run at this virtual time (default 10s) */
  'time-limit': Duration.optional(),
  host: Host.optional(),
  processes: z.record(z.string().regex(/^[A-Za-z][\w.-]*$/, 'a name of letters, digits, - . _'), Process),
  checks: z.record(z.string(), z.record(z.string(), Checks)).optional(),
});
export type ScenarioDoc = z.infer<typeof Scenario>;

// ------------------------------------------------------------------ steps

const Fd = z.union([z.string(), int().nonnegative()]);
const Signal = z.union([z.string(), int().min(1).max(64)]);
const Target = z.union([z.string(), int().positive()]);

/** ioctl arguments: a struct by field name, a number, or nothing */
export const IoctlArg = z.union([int(), z.record(z.string(), z.unknown())]);

export const STEP_SCHEMAS = {
  /** pthread_create `count` threads named from `name` ({n} = index), running `program` (default: pause) */
  threads: z.strictObject({
    count: int().min(1).max(100_000),
    name: z.string().optional(),
    program: Program.optional(),
  }),
  /** one thread with a name and an alias */
  thread: z.strictObject({
    name: z.string().optional(),
    as: z.string().optional(),
    program: Program.optional(),
  }),
  /** open(2) O_RDWR; `create`: O_CREAT (a new empty file on tmpfs: /tmp or /dev/shm in the model) */
  open: z.strictObject({
    path: z.string(),
    as: z.string(),
    cloexec: z.boolean().optional(),
    create: z.boolean().optional(),
  }),
  close: Fd,
  dup: z.strictObject({ fd: Fd, as: z.string() }),
  ioctl: z.strictObject({ fd: Fd, cmd: z.string(), arg: IoctlArg.optional() }),
  /** the QEMU bring-up of a vhost-net device (open, SET_OWNER, features, memory, vrings, tap, backend) */
  'vhost-net': z.strictObject({ as: z.string(), queue: int().min(1).max(32768).optional() }),
  /** guest traffic through a vhost-net device set up with `vhost-net`: packets out and echoed back */
  traffic: z.strictObject({
    dev: z.string(),
    packets: int().min(1),
    size: int().min(1).max(1500).optional(),
  }),
  /** KVM_CREATE_VM, `vcpus` × KVM_CREATE_VCPU, then KVM_RUN on the first vCPU if `run` */
  kvm: z.strictObject({
    as: z.string().optional(),
    vcpus: int().min(1).max(64).optional(),
    run: z.boolean().optional(),
  }),
  /** KVM_RUN on vCPU `vcpu` (default 0) of a VM created by a `kvm` step with `as: <vm>` */
  kvm_run: z.strictObject({ vm: z.string(), vcpu: int().min(0).max(63).optional() }),
  fork: z.strictObject({ as: z.string().optional(), program: Program.optional() }),
  exec: z.strictObject({ path: z.string(), program: Program.optional() }),
  exit: int().min(0).max(255),
  exit_group: int().min(0).max(255),
  kill: z.strictObject({ target: Target, signal: Signal }),
  tgkill: z.strictObject({ target: Target, thread: z.string(), signal: Signal }),
  /**
   * ptrace(2) of a process, or of its thread whose comm matches `thread` (a glob): PTRACE_SEIZE
   * (default) with `options`, PTRACE_ATTACH, or PTRACE_DETACH
   */
  ptrace: z.strictObject({
    request: z.enum(['seize', 'attach', 'detach']).optional(),
    target: Target,
    thread: z.string().optional(),
    options: z.array(z.enum(['TRACEFORK', 'TRACEVFORK', 'TRACECLONE'])).optional(),
  }),
  sigaction: z.strictObject({ signal: Signal, handler: z.enum(['default', 'ignore', 'catch']) }),
  sigprocmask: z.strictObject({ block: z.array(Signal).optional(), unblock: z.array(Signal).optional() }),
  setrlimit: Rlimits,
  setresuid: z.union([int().nonnegative(), z.tuple([int(), int(), int()])]),
  unshare: z.array(z.enum(['pid', 'user', 'net', 'mnt', 'uts', 'ipc', 'cgroup', 'time'])),
  affinity: CpuList,
  /** write a cgroupfs file: /sys/fs/cgroup/<path>/<file>; value `self`, a process name or a number */
  write: z.strictObject({ path: z.string(), value: z.union([z.string(), int()]) }),
  sleep: Duration,
  compute: Duration,
  label: z.string(),
  /** wait until a label has been reached */
  wait: z.string(),
  wait4: z.strictObject({
    pid: Target.optional(),
    options: z.array(z.enum(['WNOHANG', '__WALL', '__WCLONE', 'WUNTRACED'])).optional(),
  }),
  /** eventfd2(initval, 0), the fd under an alias (a vring kick or call fd) */
  eventfd: z.strictObject({ as: z.string(), initval: int().nonnegative().optional() }),
  /** write(2) of a u64 (default 1) to an eventfd: a kick, which queues the polling vhost work */
  'eventfd-write': z.strictObject({ fd: Fd, value: int().min(1).optional() }),
  /**
   * a host application's AF_VSOCK packet of `bytes` (default 8) to guest `cid`: the virtio
   * transport's vhost_transport_send_pkt() (the socket layer is not modelled)
   */
  'vsock-send': z.strictObject({ cid: int().nonnegative(), bytes: int().min(0).max(65536).optional() }),
  /** the system freezer (suspend): freeze or thaw every freezable task */
  freezer: z.enum(['freeze', 'thaw']),
  loop: z.strictObject({ count: int().min(1), steps: Program }),
  /** pipe2(2): the two ends as fd aliases */
  pipe: z.strictObject({ read: z.string(), write: z.string() }),
  /** io_uring_setup(2) + mmap of the rings; `sq_thread_idle` in ms (SQPOLL) */
  io_uring: z.strictObject({
    as: z.string(),
    entries: int().min(1).max(32768),
    sqpoll: z.boolean().optional(),
    sq_thread_idle: int().nonnegative().optional(),
  }),
  /** queue `count` SQEs (`size` bytes each; IOSQE_ASYNC if `async`), io_uring_enter, wait for `wait` CQEs */
  io_uring_submit: z.strictObject({
    ring: z.string(),
    op: z.enum(['nop', 'read', 'write']),
    fd: Fd.optional(),
    count: int().min(1).max(65536).optional(),
    size: int().min(1).max(4096).optional(),
    async: z.boolean().optional(),
    wait: int().nonnegative().optional(),
  }),
  /**
   * io_uring_enter(GETEVENTS, min_complete = count), then reap every CQE: the outcome is the
   * enter's error or else the errno of the first failed CQE, the value the number reaped
   */
  io_uring_wait: z.strictObject({ ring: z.string(), count: int().min(1) }),
  /** io_uring_register(IORING_REGISTER_IOWQ_MAX_WORKERS) with [bound, unbound] (0 = unchanged) */
  io_uring_register: z.strictObject({
    ring: z.string(),
    max_workers: z.tuple([int().nonnegative(), int().nonnegative()]),
  }),
} as const;

export type StepName = keyof typeof STEP_SCHEMAS;
export const STEP_NAMES = Object.keys(STEP_SCHEMAS) as StepName[];

/** JSON Schema of the scenario format, for editor completion. */
export function scenarioJsonSchema(): unknown {
  const step = z.union(
    STEP_NAMES.map((n) =>
      z.object({ [n]: STEP_SCHEMAS[n] as z.ZodType, expect: Expect.optional() }).strict(),
    ) as unknown as [z.ZodType, z.ZodType, ...z.ZodType[]],
  );
  const program = z.array(step);
  const process = Process.extend({ program });
  const doc = Scenario.extend({ processes: z.record(z.string(), process) });
  return z.toJSONSchema(doc, { target: 'draft-2020-12', unrepresentable: 'any' });
}
