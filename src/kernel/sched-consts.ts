/**
 * Task flag, task state and clone flag values with the kernel's real numbers.
 * PF_* from include/linux/sched.h (v6.12); states from include/linux/sched.h;
 * CLONE_* from include/uapi/linux/sched.h.
 */

// --- PF_* (include/linux/sched.h, v6.12) ---
export const PF_VCPU = 0x00000001;
export const PF_IDLE = 0x00000002;
export const PF_EXITING = 0x00000004;
export const PF_POSTCOREDUMP = 0x00000008;
export const PF_IO_WORKER = 0x00000010;
export const PF_WQ_WORKER = 0x00000020;
export const PF_FORKNOEXEC = 0x00000040;
export const PF_MCE_PROCESS = 0x00000080;
export const PF_SUPERPRIV = 0x00000100;
export const PF_DUMPCORE = 0x00000200;
export const PF_SIGNALED = 0x00000400;
export const PF_MEMALLOC = 0x00000800;
export const PF_NPROC_EXCEEDED = 0x00001000;
export const PF_USED_MATH = 0x00002000;
/** "Kernel thread cloned from userspace thread" (v6.4+ value). */
export const PF_USER_WORKER = 0x00004000;
export const PF_NOFREEZE = 0x00008000;
export const PF_KSWAPD = 0x00020000;
export const PF_KTHREAD = 0x00200000;
export const PF_RANDOMIZE = 0x00400000;
export const PF_NO_SETAFFINITY = 0x04000000;
/** the task running freeze_processes(): never frozen itself */
export const PF_SUSPEND_TASK = 0x80000000;
/** PF_USER_WORKER as proposed by the V5 kernel_worker series (Nov 2021), never merged. */
export const PF_USER_WORKER_V5 = 0x01000000;

// --- task->__state bits (include/linux/sched.h) ---
export const TASK_RUNNING = 0x0000;
export const TASK_INTERRUPTIBLE = 0x0001;
export const TASK_UNINTERRUPTIBLE = 0x0002;
export const __TASK_STOPPED = 0x0004;
export const __TASK_TRACED = 0x0008;
export const EXIT_DEAD = 0x0010;
export const EXIT_ZOMBIE = 0x0020;
export const TASK_PARKED = 0x0040;
export const TASK_DEAD = 0x0080;
export const TASK_WAKEKILL = 0x0100;
export const TASK_WAKING = 0x0200;
export const TASK_NOLOAD = 0x0400;
export const TASK_NEW = 0x0800;
export const TASK_FREEZABLE = 0x2000;
export const TASK_FROZEN = 0x8000;
export const TASK_KILLABLE = TASK_WAKEKILL | TASK_UNINTERRUPTIBLE;
export const TASK_STOPPED = TASK_WAKEKILL | __TASK_STOPPED;
export const TASK_TRACED = __TASK_TRACED;
export const TASK_IDLE = TASK_UNINTERRUPTIBLE | TASK_NOLOAD;
export const TASK_NORMAL = TASK_INTERRUPTIBLE | TASK_UNINTERRUPTIBLE;

// --- clone flags (include/uapi/linux/sched.h) ---
export const CSIGNAL = 0x000000ff;
export const CLONE_NEWTIME = 0x00000080;
export const CLONE_VM = 0x00000100;
export const CLONE_FS = 0x00000200;
export const CLONE_FILES = 0x00000400;
export const CLONE_SIGHAND = 0x00000800;
export const CLONE_PIDFD = 0x00001000;
export const CLONE_PTRACE = 0x00002000;
export const CLONE_VFORK = 0x00004000;
export const CLONE_PARENT = 0x00008000;
export const CLONE_THREAD = 0x00010000;
export const CLONE_NEWNS = 0x00020000;
export const CLONE_SYSVSEM = 0x00040000;
export const CLONE_SETTLS = 0x00080000;
export const CLONE_PARENT_SETTID = 0x00100000;
export const CLONE_CHILD_CLEARTID = 0x00200000;
export const CLONE_DETACHED = 0x00400000;
export const CLONE_UNTRACED = 0x00800000;
export const CLONE_CHILD_SETTID = 0x01000000;
export const CLONE_NEWCGROUP = 0x02000000;
export const CLONE_NEWUTS = 0x04000000;
export const CLONE_NEWIPC = 0x08000000;
export const CLONE_NEWUSER = 0x10000000;
export const CLONE_NEWPID = 0x20000000;
export const CLONE_NEWNET = 0x40000000;
export const CLONE_IO = 0x80000000;
/** clone3-only flags (64-bit). */
export const CLONE_CLEAR_SIGHAND = 0x100000000;
export const CLONE_INTO_CGROUP = 0x200000000;

/** Every namespace flag, as tested by copy_namespaces(). */
export const CLONE_NEW_MASK =
  CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP;

/** Symbolic clone flag names, for parsing and printing. */
export const CLONE_FLAG_NAMES: Readonly<Record<string, number>> = {
  CLONE_VM,
  CLONE_FS,
  CLONE_FILES,
  CLONE_SIGHAND,
  CLONE_PIDFD,
  CLONE_PTRACE,
  CLONE_VFORK,
  CLONE_PARENT,
  CLONE_THREAD,
  CLONE_NEWNS,
  CLONE_SYSVSEM,
  CLONE_SETTLS,
  CLONE_PARENT_SETTID,
  CLONE_CHILD_CLEARTID,
  CLONE_DETACHED,
  CLONE_UNTRACED,
  CLONE_CHILD_SETTID,
  CLONE_NEWCGROUP,
  CLONE_NEWUTS,
  CLONE_NEWIPC,
  CLONE_NEWUSER,
  CLONE_NEWPID,
  CLONE_NEWNET,
  CLONE_IO,
  CLONE_NEWTIME,
  CLONE_CLEAR_SIGHAND,
  CLONE_INTO_CGROUP,
};

/** Test a flag in a clone flags word that may exceed 32 bits (clone3 flags are u64). */
export function hasFlag(flags: number, flag: number): boolean {
  if (flag > 0xffffffff || flags > 0xffffffff) return Math.floor(flags / flag) % 2 === 1;
  return (flags & flag) >>> 0 !== 0;
}

// --- wait options (include/uapi/linux/wait.h) ---
export const WNOHANG = 0x00000001;
export const WUNTRACED = 0x00000002;
export const WSTOPPED = WUNTRACED;
export const WEXITED = 0x00000004;
export const WCONTINUED = 0x00000008;
export const WNOWAIT = 0x01000000;
export const __WNOTHREAD = 0x20000000;
export const __WALL = 0x40000000;
export const __WCLONE = 0x80000000;

/** TASK_COMM_LEN: comm holds 15 characters plus NUL. */
export const TASK_COMM_LEN = 16;
