/*
 * probe.c — the real-kernel half of vhostsim's conformance suite.
 *
 * It executes a scenario's program steps on a real Linux kernel, in the same process and
 * thread layout as the scenario, and prints one JSON document of observations in the shape
 * src/conformance/observe.ts produces from a model run: per step the outcome ("ok" or an errno
 * name) and value; at every label the tasks with their /proc status and stat fields, cgroup
 * membership, namespace identities, the pids files of the scenario's cgroups, and which
 * scenario processes are alive.
 *
 * Build: gcc -O2 -Wall -static -pthread -o probe probe.c   (static: it also runs in an initramfs)
 * Run:   probe <script-file>   or   probe - < script      (must be root; prints JSON on stdout)
 *
 * ---------------------------------------------------------------------------------------
 * Process layout
 *
 *  The probe's first process is the SUPERVISOR, the model's init: it creates the scenario's
 *  cgroups, marks itself a child subreaper, and forks one child per scenario process, which
 *  re-executes the probe (/proc/self/exe --actor ...) so that, like the model's processes, it
 *  is a freshly exec'd program. That child joins its cgroup, sets its CPU affinity and rlimits,
 *  opens /dev/kvm while still privileged (see "kvm" below), changes gid/uid/capabilities, names
 *  itself (comm = the scenario process's name) and runs the process's program in its MAIN
 *  THREAD. `threads`/`thread` steps create pthreads (that pause(), or run their own program);
 *  `fork` forks (the child pauses or runs its program). Every program that can reach or wait
 *  for a label is an ACTOR with a number the script assigns.
 *
 *  Labels: an actor that reaches `label L` tells the supervisor and blocks until it has taken
 *  the snapshot; `wait L` and a process's `after L` block until L has been reached. Messages go
 *  over one pipe (each a single write of less than PIPE_BUF bytes); the supervisor's answers are
 *  per-actor counters in shared memory that actors futex-wait on. A snapshot (taken by the
 *  supervisor, root, from /proc) covers: every descendant of the supervisor and every thread of
 *  them; kthreads whose name ends in "-<n>" with <n> one of those tids or tgids (vhost-<tid>,
 *  kvm-nx-lpage-recovery-<pid>); and every task in one of the scenario's cgroups. Before a
 *  snapshot the supervisor reaps exited children and waits up to 200 ms until no tracked task
 *  is exiting (X, PF_EXITING) or runnable (R) but the labeller — the model snapshots after
 *  every task with work has run, and a loaded machine must not make a task read as R.
 *
 *  One probe runs at a time on a machine (flock on /tmp/vhostsim-probe.lock): runs share uids,
 *  and RLIMIT_NPROC counts a uid's tasks machine-wide. A scenario uid other than 0 that already
 *  owns tasks is reported as an error.
 *
 *  The run ends when every actor has exited (end of the pipe), or at the timeout, when the
 *  `end` snapshot is taken first and every remaining descendant is then killed with SIGKILL.
 *  Cgroups the probe made are removed afterwards.
 *
 * Cgroups: with a cgroup v1 hierarchy that has the pids controller, that hierarchy is used
 *  (cgroup.threads maps to v1's `tasks` file); otherwise a cgroup2 mount with pids in its
 *  cgroup.controllers. Scenario cgroup "/a/b" is created as <home>/vhostsim-probe-<pid>/a/b,
 *  where <home> is the supervisor's own cgroup; processes without a cgroup stay in <home>.
 *  The JSON reports "home" and "base" so the comparison can map paths back.
 *
 * ---------------------------------------------------------------------------------------
 * The script (written by src/conformance/script.ts; one directive per line; tokens separated
 * by single spaces; a token is percent-encoded (%20 for a space, %25 for %), "-" means none;
 * lines starting with # are comments)
 *
 *   vhostsim-probe 1                  first line
 *   timeout <ms>                      wall-clock limit of the run
 *   cgroup <path> <pids.max|-> <domain|threaded>
 *                                     a scenario cgroup to create (parents first)
 *   process <name> <actor>            a scenario process; attributes follow:
 *     uid <n> | gid <n>
 *     caps <hex>                      CapEff/CapPrm/CapInh after the uid change (hex mask)
 *     rlimit <resource#> <soft> <hard>    numbers or "inf"
 *     join <cgroup-path>
 *     cpus <cpulist>
 *     after <label>
 *   program                           the steps of the last process or step, until "end"
 *   end
 *
 *   A step: <id> <action> <args...> where <id> is the index the TS side maps back to the
 *   scenario step's path. A `thread` or `fork` step may be followed by a program block.
 *   <fdref> is a:<alias> or n:<number>; <target> is self, p:<process name>, a:<alias>.
 *
 *     threads <count> <name-template|->        {n} in the name is replaced by the index
 *     thread <name|-> <alias|-> <actor>         [program block]
 *     open <path> <alias> <cloexec 0|1> <create 0|1>   a file created here (O_CREAT) that did
 *                                               not exist before the run is removed after it
 *     close <fdref>
 *     dup <fdref> <alias>
 *     ioctl <fdref> <cmd-hex> int <n>           argument by value
 *     ioctl <fdref> <cmd-hex> buf <hex|-> <outlen> [patch:<offset>:<fdref>...]
 *                                               argument bytes; outlen bytes read back;
 *                                               each patch stores a descriptor's number
 *                                               (u32 little-endian) at that offset
 *     kvm <alias|-> <vcpus> <run 0|1>           see "kvm" below
 *     kvm_run <alias> <vcpu>                    KVM_RUN on a vCPU of that VM, prepared as below
 *     ptrace <request#> <target> <thread-glob|-> <options-int>
 *                                               PTRACE_SEIZE/ATTACH/DETACH of the target's
 *                                               thread named by the glob (lowest tid), or of
 *                                               the target itself
 *     fork <alias|-> <actor>                    [program block]
 *     exit <code> | exit_group <code>
 *     kill <target> <signo>
 *     tgkill <target> <thread-glob-or-tid> <signo>
 *     sigaction <signo> default|ignore|catch
 *     sigprocmask <block-hex> <unblock-hex>     bit n-1 = signal n
 *     setrlimit <resource#> <soft> <hard> [...]
 *     setresuid <r> <e> <s>                     raw syscall: the calling thread only
 *     unshare <flags-hex>                       raw syscall
 *     affinity <cpulist>
 *     write <path> <value>                      path as in the scenario (/sys/fs/cgroup/...);
 *                                               value self (the caller's tid), p:<name>,
 *                                               a:<alias>, or literal text
 *     sleep <ns>
 *     label <name> | wait <name>
 *     wait4 <target|-1> <options-int>
 *     pipe <read-alias> <write-alias>
 *     eventfd <alias> <initval>
 *     io_uring <alias> <entries> <sqpoll 0|1> <sq_thread_idle-ms>   see "io_uring" below
 *     io_uring_submit <ring> <nop|read|write> <fdref|-> <count> <size> <async 0|1> <wait>
 *     io_uring_wait <ring> <count>
 *     io_uring_register <ring> <bound> <unbound>    IORING_REGISTER_IOWQ_MAX_WORKERS
 *
 *  io_uring: raw syscalls, no liburing, as src/io_uring/user.ts does it: io_uring_setup, one
 *  mmap of IORING_OFF_SQ_RING (the CQ ring shares it) and one of IORING_OFF_SQES; the ring fd
 *  is the alias (<ring> is a:<alias>). A submit queues <count> SQEs (IOSQE_ASYNC if async, each
 *  <size> bytes of a fresh buffer) as the SQ ring allows, io_uring_enter per batch (GETEVENTS
 *  with min_complete <wait> on the last; on SQPOLL rings only SQ_WAKEUP when the thread set
 *  NEED_WAKEUP), then reaps CQEs: the value is the number submitted, the note the CQE results.
 *  A wait is io_uring_enter(0, count, GETEVENTS) and a reap: the outcome is the first failed
 *  CQE's errno, the value the number reaped. A register's value is the old unbound limit.
 *
 *  kvm: open /dev/kvm (if that fails with EACCES/EPERM because the process dropped root, a
 *  descriptor opened before the uid change is duplicated instead, and the step's note says
 *  so: the model has no device permissions), KVM_CREATE_VM, KVM_SET_USER_MEMORY_REGION of one
 *  page holding hlt (0xf4) at guest physical 0, KVM_CREATE_VCPU × vcpus; with run: mmap the
 *  first vCPU's kvm_run, KVM_GET_SREGS/KVM_SET_SREGS with cs.base = cs.selector = 0,
 *  KVM_SET_REGS with rip = 0 and rflags = 2, KVM_RUN once (the note records the exit reason).
 *  The VM fd is the alias; like the model, no descriptor is closed.
 *
 * Output: {"probe":1, "kernel", "supervisor":{pid, ns}, "cpus" (the supervisor's affinity: every
 *   CPU a process may use), "pidMax" (tids wrap there), "cgroup":{mode, mount, home, base},
 *   "processes":{name:pid}, "steps":[{index, actor, tid, outcome, value?, out?, note?}],
 *   "labels":{L:{tasks:[{tid, tgid, ppid, uid, comm, name, state, flags, cgroup, cpus, sigblk,
 *   sigpnd, shdpnd, threads, tracer (TracerPid), nspid, ns:{...}, pf (flags decoded)}],
 *   cgroups:{path:{pids.current, pids.max, pids.events, cgroup.events}},
 *   alive:[names], labeller}}, "labelOrder":[...], "ended":"idle"|"time-limit",
 *   "errors":[...], "notes":[...]}
 *  An outcome "UNSUPPORTED:<why>" means the step could not be run here (never a pass).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <linux/futex.h>
#include <linux/io_uring.h>
#include <linux/kvm.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ACTORS 256
#define MAX_PROCS 32
#define MAX_CGROUPS 64
#define MAX_ALIASES 256
#define PF_EXITING 0x4
#define PF_KTHREAD 0x200000
#define HIGH_FD 900

/* ------------------------------------------------------------------ small utilities */

static int actor_msg_fd = -1; /* set in actors: die() reports there too */

static void die(const char *fmt, ...) {
  char tmp[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (actor_msg_fd < 0) fprintf(stderr, "probe: %s\n", tmp);
  else {
    char line[1100];
    for (char *p = tmp; *p; p++)
      if (*p == '\n') *p = ' ';
    int n = snprintf(line, sizeof line, "E - %s\n", tmp);
    if (n > 0 && write(actor_msg_fd, line, (size_t)n) < 0) {
    }
  }
  exit(2);
}

static void *xmalloc(size_t n) {
  void *p = calloc(1, n);
  if (!p) die("out of memory");
  return p;
}

static char *xstrdup(const char *s) {
  char *p = strdup(s);
  if (!p) die("out of memory");
  return p;
}

/** a growable string */
struct buf {
  char *s;
  size_t n, cap;
};

static void bput(struct buf *b, const char *s, size_t n) {
  if (b->n + n + 1 > b->cap) {
    b->cap = (b->n + n + 1) * 2 + 256;
    b->s = realloc(b->s, b->cap);
    if (!b->s) die("out of memory");
  }
  memcpy(b->s + b->n, s, n);
  b->n += n;
  b->s[b->n] = 0;
}

static void bprintf(struct buf *b, const char *fmt, ...) {
  char tmp[4096];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof tmp) n = sizeof tmp - 1;
  bput(b, tmp, (size_t)n);
}

/** a JSON string literal */
static void bjson(struct buf *b, const char *s) {
  bput(b, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') {
      char e[2] = {'\\', (char)*p};
      bput(b, e, 2);
    } else if (*p < 0x20) {
      bprintf(b, "\\u%04x", *p);
    } else
      bput(b, (const char *)p, 1);
  }
  bput(b, "\"", 1);
}

static const char *errname(int e) {
  const char *n = strerrorname_np(e);
  static __thread char tmp[16];
  if (n) return n;
  snprintf(tmp, sizeof tmp, "E%d", e);
  return tmp;
}

/** read a whole small file into buf (NUL-terminated); returns length or -1 with errno */
static ssize_t read_file(const char *path, char *out, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t n = 0;
  for (;;) {
    ssize_t r = read(fd, out + n, cap - 1 - n);
    if (r < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      errno = e;
      return -1;
    }
    if (r == 0) break;
    n += (size_t)r;
    if (n >= cap - 1) break;
  }
  close(fd);
  out[n] = 0;
  return (ssize_t)n;
}

/** write text to a file; 0 or -errno */
static int write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  ssize_t r = write(fd, text, strlen(text));
  int e = errno;
  close(fd);
  if (r < 0) return -e;
  return 0;
}

/** percent-decoding of a script token, in place */
static char *pdecode(char *s) {
  char *o = s;
  for (char *p = s; *p; p++) {
    if (*p == '%' && isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2])) {
      char h[3] = {p[1], p[2], 0};
      *o++ = (char)strtol(h, NULL, 16);
      p += 2;
    } else
      *o++ = *p;
  }
  *o = 0;
  return s;
}

/** percent-encoding for message tokens (space, %, newline and controls) */
static void pencode(char *out, size_t cap, const char *s) {
  size_t n = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p && n + 4 < cap; p++) {
    if (*p <= ' ' || *p == '%' || *p >= 0x7f)
      n += (size_t)snprintf(out + n, cap - n, "%%%02x", *p);
    else
      out[n++] = (char)*p;
  }
  out[n] = 0;
}

static int parse_cpulist(const char *s, cpu_set_t *set) {
  CPU_ZERO(set);
  const char *p = s;
  while (*p) {
    char *e;
    long a = strtol(p, &e, 10), b;
    if (e == p) return -1;
    b = a;
    if (*e == '-') {
      p = e + 1;
      b = strtol(p, &e, 10);
      if (e == p) return -1;
    }
    for (long i = a; i <= b && i < CPU_SETSIZE; i++) CPU_SET(i, set);
    p = e;
    if (*p == ',') p++;
    else if (*p) return -1;
  }
  return 0;
}

static unsigned long long parse_limit(const char *s) {
  if (!strcmp(s, "inf")) return RLIM_INFINITY;
  return strtoull(s, NULL, 10);
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

/* ------------------------------------------------------------------ the script */

enum act {
  A_THREADS, A_THREAD, A_OPEN, A_CLOSE, A_DUP, A_IOCTL, A_KVM, A_FORK, A_EXIT, A_EXIT_GROUP,
  A_KILL, A_TGKILL, A_SIGACTION, A_SIGPROCMASK, A_SETRLIMIT, A_SETRESUID, A_UNSHARE,
  A_AFFINITY, A_WRITE, A_SLEEP, A_LABEL, A_WAIT, A_WAIT4, A_KVM_RUN, A_PTRACE,
  A_PIPE, A_EVENTFD, A_IO_URING, A_IO_URING_SUBMIT, A_IO_URING_WAIT, A_IO_URING_REGISTER, A_COUNT
};
static const char *ACT_NAMES[A_COUNT] = {
  "threads", "thread", "open", "close", "dup", "ioctl", "kvm", "fork", "exit", "exit_group",
  "kill", "tgkill", "sigaction", "sigprocmask", "setrlimit", "setresuid", "unshare",
  "affinity", "write", "sleep", "label", "wait", "wait4", "kvm_run", "ptrace",
  "pipe", "eventfd", "io_uring", "io_uring_submit", "io_uring_wait", "io_uring_register",
};

struct prog;
struct step {
  int id;
  int act;
  int argc;
  char **argv;
  struct prog *body;
  int line;
};
struct prog {
  struct step *v;
  int n, cap;
};
struct rl {
  int res;
  unsigned long long soft, hard;
};
struct proc {
  char *name;
  int actor;
  long uid, gid;
  int has_uid, has_gid;
  int has_caps;
  unsigned long long caps;
  struct rl rl[16];
  int nrl;
  char *join;
  char *cpus;
  char *after;
  struct prog prog;
};
struct cgspec {
  char *path;
  char *pidsmax;
  int threaded;
};

static struct proc procs[MAX_PROCS];
static int nprocs;
static struct cgspec cgspecs[MAX_CGROUPS];
static int ncgspecs;
static int timeout_ms = 5000;

static struct step *prog_add(struct prog *p) {
  if (p->n == p->cap) {
    p->cap = p->cap ? p->cap * 2 : 8;
    p->v = realloc(p->v, sizeof(struct step) * (size_t)p->cap);
    if (!p->v) die("out of memory");
  }
  memset(&p->v[p->n], 0, sizeof(struct step));
  return &p->v[p->n++];
}

static int split(char *line, char **tok, int max) {
  int n = 0;
  char *save = NULL;
  for (char *t = strtok_r(line, " \t\r", &save); t && n < max; t = strtok_r(NULL, " \t\r", &save))
    tok[n++] = pdecode(t);
  return n;
}

static void parse_script(char *text) {
  struct prog *stack[16];
  int depth = 0;
  struct proc *cur = NULL;
  struct step *last = NULL;
  int lineno = 0;
  char *save = NULL;
  int first = 1;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    lineno++;
    while (*line == ' ' || *line == '\t') line++;
    if (!*line || *line == '#') continue;
    char *tok[64];
    int n = split(line, tok, 64);
    if (!n) continue;
    if (first) {
      if (strcmp(tok[0], "vhostsim-probe") || n < 2 || strcmp(tok[1], "1"))
        die("script line %d: expected \"vhostsim-probe 1\"", lineno);
      first = 0;
      continue;
    }
    if (depth > 0) {
      if (!strcmp(tok[0], "end")) {
        depth--;
        last = NULL;
        continue;
      }
      if (!strcmp(tok[0], "program")) {
        if (!last || (last->act != A_THREAD && last->act != A_FORK))
          die("script line %d: a program block follows only thread or fork", lineno);
        last->body = xmalloc(sizeof(struct prog));
        if (depth >= 15) die("script line %d: programs nested too deep", lineno);
        stack[depth++] = last->body;
        last = NULL;
        continue;
      }
      struct step *s = prog_add(stack[depth - 1]);
      s->id = atoi(tok[0]);
      s->act = -1;
      s->line = lineno;
      for (int a = 0; a < A_COUNT; a++)
        if (n > 1 && !strcmp(tok[1], ACT_NAMES[a])) s->act = a;
      if (s->act < 0) die("script line %d: unknown action %s", lineno, n > 1 ? tok[1] : "");
      s->argc = n - 2;
      s->argv = xmalloc(sizeof(char *) * (size_t)(n - 1));
      for (int i = 2; i < n; i++) s->argv[i - 2] = xstrdup(tok[i]);
      last = s;
      continue;
    }
    if (!strcmp(tok[0], "timeout") && n >= 2) timeout_ms = atoi(tok[1]);
    else if (!strcmp(tok[0], "cgroup") && n >= 4) {
      if (ncgspecs == MAX_CGROUPS) die("too many cgroups");
      struct cgspec *c = &cgspecs[ncgspecs++];
      c->path = xstrdup(tok[1]);
      c->pidsmax = strcmp(tok[2], "-") ? xstrdup(tok[2]) : NULL;
      c->threaded = !strcmp(tok[3], "threaded");
    } else if (!strcmp(tok[0], "process") && n >= 3) {
      if (nprocs == MAX_PROCS) die("too many processes");
      cur = &procs[nprocs++];
      cur->name = xstrdup(tok[1]);
      cur->actor = atoi(tok[2]);
    } else if (!cur)
      die("script line %d: %s before any process", lineno, tok[0]);
    else if (!strcmp(tok[0], "uid") && n >= 2) cur->uid = atol(tok[1]), cur->has_uid = 1;
    else if (!strcmp(tok[0], "gid") && n >= 2) cur->gid = atol(tok[1]), cur->has_gid = 1;
    else if (!strcmp(tok[0], "caps") && n >= 2) cur->caps = strtoull(tok[1], NULL, 16), cur->has_caps = 1;
    else if (!strcmp(tok[0], "rlimit") && n >= 4 && cur->nrl < 16) {
      cur->rl[cur->nrl].res = atoi(tok[1]);
      cur->rl[cur->nrl].soft = parse_limit(tok[2]);
      cur->rl[cur->nrl].hard = parse_limit(tok[3]);
      cur->nrl++;
    } else if (!strcmp(tok[0], "join") && n >= 2) cur->join = xstrdup(tok[1]);
    else if (!strcmp(tok[0], "cpus") && n >= 2) cur->cpus = xstrdup(tok[1]);
    else if (!strcmp(tok[0], "after") && n >= 2) cur->after = xstrdup(tok[1]);
    else if (!strcmp(tok[0], "program")) {
      stack[depth++] = &cur->prog;
      last = NULL;
    } else
      die("script line %d: unknown directive %s", lineno, tok[0]);
  }
  if (first) die("empty script");
  if (depth) die("script: a program block is not closed with end");
}

/* ------------------------------------------------------------------ cgroups */

enum { CG_NONE, CG_V1, CG_V2 };
static int cg_mode = CG_NONE;
static char cg_mount[512];   /* the hierarchy's mount point */
static char cg_home[512];    /* the supervisor's cgroup in it ("/" or deeper) */
static char cg_base[600];    /* <home>/vhostsim-probe-<pid> */
/*
 * With the v1 pids hierarchy (a hybrid host), scenario cgroups are mirrored in the cgroup2
 * hierarchy when one is mounted, for what only v2 has: cgroup.freeze and cgroup.events. Joins
 * and cgroup.procs/cgroup.threads/cgroup.type writes go to both; the mirror has no controllers.
 */
static char cg2_mount[512];  /* "" when there is no mirror */
static char cg2_base[700];   /* <v2 home>/vhostsim-probe-<pid> */
static char *cg_made[MAX_CGROUPS * 4];
static int ncg_made;

/** find the pids hierarchy: a v1 mount with the pids option, else a cgroup2 mount with pids */
static void cgroup_detect(void) {
  char mi[65536];
  if (read_file("/proc/self/mountinfo", mi, sizeof mi) < 0) return;
  char v2mount[512] = "";
  char *save = NULL;
  for (char *line = strtok_r(mi, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    /* id parent maj:min root mountpoint opts [optional...] - fstype source superopts */
    char *dash = strstr(line, " - ");
    if (!dash) continue;
    char mp[512], fstype[64], src[256], sopts[1024] = "";
    if (sscanf(line, "%*s %*s %*s %*s %511s", mp) != 1) continue;
    if (sscanf(dash + 3, "%63s %255s %1023s", fstype, src, sopts) < 2) continue;
    if (!strcmp(fstype, "cgroup")) {
      char *o, *s2 = NULL;
      for (o = strtok_r(sopts, ",", &s2); o; o = strtok_r(NULL, ",", &s2))
        if (!strcmp(o, "pids")) {
          cg_mode = CG_V1;
          snprintf(cg_mount, sizeof cg_mount, "%s", mp);
        }
    } else if (!strcmp(fstype, "cgroup2") && !v2mount[0])
      snprintf(v2mount, sizeof v2mount, "%s", mp);
  }
  if (cg_mode == CG_NONE && v2mount[0]) {
    char ctl[1024], path[600];
    snprintf(path, sizeof path, "%s/cgroup.controllers", v2mount);
    if (read_file(path, ctl, sizeof ctl) >= 0 && strstr(ctl, "pids")) {
      cg_mode = CG_V2;
      snprintf(cg_mount, sizeof cg_mount, "%s", v2mount);
    }
  }
  if (cg_mode == CG_NONE) return;
  if (cg_mode == CG_V1 && v2mount[0]) snprintf(cg2_mount, sizeof cg2_mount, "%s", v2mount);
  /* our cgroup in that hierarchy */
  char cgs[4096];
  snprintf(cg_home, sizeof cg_home, "/");
  if (read_file("/proc/self/cgroup", cgs, sizeof cgs) >= 0) {
    char *s2 = NULL;
    for (char *line = strtok_r(cgs, "\n", &s2); line; line = strtok_r(NULL, "\n", &s2)) {
      char *c1 = strchr(line, ':');
      if (!c1) continue;
      char *c2 = strchr(c1 + 1, ':');
      if (!c2) continue;
      *c2 = 0;
      int match = cg_mode == CG_V1 ? (strstr(c1 + 1, "pids") != NULL) : (!strcmp(line, "0:") || c1[1] == 0);
      if (cg_mode == CG_V2) match = (c1[1] == 0);
      if (match) snprintf(cg_home, sizeof cg_home, "%s", c2 + 1);
      if (cg2_mount[0] && c1[1] == 0) snprintf(cg2_base, sizeof cg2_base, "%s", c2 + 1);
    }
  }
  snprintf(cg_base, sizeof cg_base, "%s%svhostsim-probe-%d", cg_home, strcmp(cg_home, "/") ? "/" : "",
           (int)getpid());
  if (cg2_mount[0]) {
    char home2[600];
    snprintf(home2, sizeof home2, "%.500s", cg2_base[0] ? cg2_base : "/");
    snprintf(cg2_base, sizeof cg2_base, "%s%svhostsim-probe-%d", home2, strcmp(home2, "/") ? "/" : "",
             (int)getpid());
  }
}

/** the mirror directory of scenario cgroup `path` (not for "/"); 0 when there is none */
static int cg2_dir(char *out, size_t cap, const char *path) {
  if (!cg2_mount[0] || !strcmp(path, "/")) return 0;
  snprintf(out, cap, "%.400s%.600s%.400s", cg2_mount, cg2_base, path);
  return 1;
}

/** the real directory of scenario cgroup `path` ("/" = the home) */
static void cg_dir(char *out, size_t cap, const char *path) {
  if (!strcmp(path, "/"))
    snprintf(out, cap, "%s%s", cg_mount, strcmp(cg_home, "/") ? cg_home : "");
  else
    snprintf(out, cap, "%s%s%s", cg_mount, cg_base, path);
}

static struct buf errors_json, notes_json;
static void add_error(const char *fmt, ...) {
  char tmp[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (errors_json.n) bput(&errors_json, ",", 1);
  bjson(&errors_json, tmp);
}
static void add_note(const char *fmt, ...) {
  char tmp[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (notes_json.n) bput(&notes_json, ",", 1);
  bjson(&notes_json, tmp);
}

static int mkdir_made(const char *dir) {
  if (mkdir(dir, 0755) == 0) {
    if (ncg_made < (int)(sizeof cg_made / sizeof cg_made[0])) cg_made[ncg_made++] = xstrdup(dir);
    return 0;
  }
  return errno == EEXIST ? 0 : -errno;
}

/**
 * mkdir a scenario cgroup and its ancestors, parents first, in the pids hierarchy or (mirror)
 * in the cgroup2 mirror; with pass_pids each ancestor enables pids for its children
 */
static void mkdir_scenario_cgroup(const char *path, int mirror, int pass_pids) {
  char p[512], dir[1500];
  snprintf(p, sizeof p, "%s", path);
  for (char *s = p + 1;; s++) {
    if (*s != '/' && *s != 0) continue;
    char save = *s;
    *s = 0;
    if (mirror) cg2_dir(dir, sizeof dir, p);
    else cg_dir(dir, sizeof dir, p);
    int r = mkdir_made(dir);
    if (r) add_error("mkdir %s: %s", dir, errname(-r));
    if (save && pass_pids) {
      char f[1600];
      snprintf(f, sizeof f, "%s/cgroup.subtree_control", dir);
      write_file(f, "+pids");
    }
    *s = save;
    if (!save) break;
  }
}

/** cgroup.type ← threaded */
static void set_threaded(const char *dir) {
  char f[1600];
  snprintf(f, sizeof f, "%s/cgroup.type", dir);
  int r = write_file(f, "threaded");
  if (r) add_error("%s ← threaded: %s", f, errname(-r));
}

/** create base and every scenario cgroup (with its ancestors); v2: enable pids on the way */
static void cgroup_setup(void) {
  if (cg_mode == CG_NONE) {
    if (ncgspecs) add_error("no cgroup hierarchy with the pids controller: scenario cgroups not created");
    return;
  }
  char dir[1500];
  snprintf(dir, sizeof dir, "%s%s", cg_mount, cg_base);
  int r = mkdir_made(dir);
  if (r) {
    add_error("mkdir %s: %s", dir, errname(-r));
    cg_mode = CG_NONE;
    return;
  }
  if (cg_mode == CG_V2) {
    char home[1200];
    cg_dir(home, sizeof home, "/");
    char f[1600];
    snprintf(f, sizeof f, "%s/cgroup.subtree_control", home);
    write_file(f, "+pids");
    snprintf(f, sizeof f, "%s/cgroup.subtree_control", dir);
    if ((r = write_file(f, "+pids"))) add_note("enabling pids in %s: %s", dir, errname(-r));
  }
  /* v2: every ancestor passes pids on, implicit ones included, before any pids.max is
     written below (as the model's host setup enables controllers down the path) */
  for (int i = 0; i < ncgspecs; i++) mkdir_scenario_cgroup(cgspecs[i].path, 0, cg_mode == CG_V2);
  if (cg2_mount[0]) {
    snprintf(dir, sizeof dir, "%.500s%.600s", cg2_mount, cg2_base);
    if ((r = mkdir_made(dir))) {
      add_note("no cgroup2 mirror (mkdir %s: %s): cgroup.freeze and cgroup.events unavailable", dir, errname(-r));
      cg2_mount[0] = 0;
    }
    for (int i = 0; i < ncgspecs && cg2_mount[0]; i++) {
      mkdir_scenario_cgroup(cgspecs[i].path, 1, 0);
      if (cgspecs[i].threaded) {
        cg2_dir(dir, sizeof dir, cgspecs[i].path);
        set_threaded(dir);
      }
    }
  }
  for (int i = 0; i < ncgspecs; i++) {
    char f[1600];
    cg_dir(dir, sizeof dir, cgspecs[i].path);
    if (cg_mode == CG_V2 && cgspecs[i].threaded) set_threaded(dir);
    if (cgspecs[i].pidsmax) {
      snprintf(f, sizeof f, "%s/pids.max", dir);
      if ((r = write_file(f, cgspecs[i].pidsmax))) add_error("%s ← %s: %s", f, cgspecs[i].pidsmax, errname(-r));
    }
  }
  /* v2: let each non-leaf scenario cgroup pass pids on (domain parents only) */
  if (cg_mode == CG_V2)
    for (int i = 0; i < ncgspecs; i++)
      for (int j = 0; j < ncgspecs; j++) {
        size_t l = strlen(cgspecs[i].path);
        if (i != j && !strncmp(cgspecs[j].path, cgspecs[i].path, l) && cgspecs[j].path[l] == '/') {
          char f[1600];
          cg_dir(dir, sizeof dir, cgspecs[i].path);
          snprintf(f, sizeof f, "%s/cgroup.subtree_control", dir);
          write_file(f, "+pids");
        }
      }
}

/*
 * Files the scenario creates (open ... create): those that did not exist before the run are
 * removed after it, so that a run leaves nothing behind and the next one starts the same.
 */
#define MAX_CREATED 32
static char *created[MAX_CREATED];
static int ncreated;

static void collect_created(const struct prog *p) {
  for (int i = 0; i < p->n; i++) {
    const struct step *s = &p->v[i];
    if (s->act == A_OPEN && s->argc > 3 && atoi(s->argv[3]) && ncreated < MAX_CREATED &&
        access(s->argv[0], F_OK) < 0 && errno == ENOENT)
      created[ncreated++] = xstrdup(s->argv[0]);
    if (s->body) collect_created(s->body);
  }
}

static void remove_created(void) {
  for (int i = 0; i < ncreated; i++)
    if (unlink(created[i]) < 0 && errno != ENOENT) add_note("could not remove %s: %s", created[i], errname(errno));
}

static void cgroup_cleanup(void) {
  for (int i = ncg_made - 1; i >= 0; i--) {
    int ok = 0;
    for (int tries = 0; tries < 100; tries++) {
      if (rmdir(cg_made[i]) == 0 || errno == ENOENT) {
        ok = 1;
        break;
      }
      sleep_ms(10);
    }
    if (!ok) add_error("could not remove cgroup %s: %s", cg_made[i], errname(errno));
  }
}

/* ------------------------------------------------------------------ shared state */

struct shm {
  int ack[MAX_ACTORS];
  int pid[MAX_PROCS];
};
static struct shm *shm;
static int msg_fd = -1; /* the write end (actors) or read end (supervisor) of the message pipe */

static long futex(int *uaddr, int op, int val) {
  return syscall(SYS_futex, uaddr, op, val, NULL, NULL, 0);
}

static void send_msg(const char *fmt, ...) {
  char tmp[4000];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n > (int)sizeof tmp - 2) n = (int)sizeof tmp - 2;
  tmp[n++] = '\n';
  while (write(msg_fd, tmp, (size_t)n) < 0 && errno == EINTR) {
  }
}

/** tell the supervisor and block until it answers (label reached / label to wait for) */
static void request(int actor, char kind, const char *label) {
  char enc[600];
  pencode(enc, sizeof enc, label[0] ? label : "-");
  int before = __atomic_load_n(&shm->ack[actor], __ATOMIC_SEQ_CST);
  send_msg("%c %d %d %s", kind, actor, (int)gettid(), enc);
  while (__atomic_load_n(&shm->ack[actor], __ATOMIC_SEQ_CST) == before)
    futex(&shm->ack[actor], FUTEX_WAIT, before);
}

/* ------------------------------------------------------------------ actors: step execution */

struct alias {
  char name[128];
  char kind; /* f fd, p pid, t tid */
  long value;
};
static struct alias aliases[MAX_ALIASES];
static int naliases;
static pthread_mutex_t alias_lock = PTHREAD_MUTEX_INITIALIZER;
static int kvm_preopened = -1; /* /dev/kvm opened before the uid change */

static void alias_set(const char *name, char kind, long value) {
  if (!name || !strcmp(name, "-")) return;
  pthread_mutex_lock(&alias_lock);
  int i;
  for (i = 0; i < naliases; i++)
    if (!strcmp(aliases[i].name, name)) break;
  if (i == naliases && naliases < MAX_ALIASES) naliases++;
  if (i < MAX_ALIASES) {
    snprintf(aliases[i].name, sizeof aliases[i].name, "%s", name);
    aliases[i].kind = kind;
    aliases[i].value = value;
  }
  pthread_mutex_unlock(&alias_lock);
}

static int alias_get(const char *name, long *value) {
  int found = 0;
  pthread_mutex_lock(&alias_lock);
  for (int i = 0; i < naliases; i++)
    if (!strcmp(aliases[i].name, name)) {
      *value = aliases[i].value;
      found = 1;
    }
  pthread_mutex_unlock(&alias_lock);
  return found;
}

static int resolve_fd(const char *ref) {
  long v;
  if (!strncmp(ref, "n:", 2)) return atoi(ref + 2);
  if (!strncmp(ref, "a:", 2) && alias_get(ref + 2, &v)) return (int)v;
  return -1;
}

static int proc_index(const char *name) {
  for (int i = 0; i < nprocs; i++)
    if (!strcmp(procs[i].name, name)) return i;
  return -1;
}

static pid_t resolve_target(const char *ref) {
  long v;
  if (!strcmp(ref, "self")) return getpid();
  if (!strncmp(ref, "p:", 2)) {
    int i = proc_index(ref + 2);
    return i < 0 ? -1 : shm->pid[i];
  }
  if (!strncmp(ref, "a:", 2) && alias_get(ref + 2, &v)) return (pid_t)v;
  if (!strcmp(ref, "-1")) return -1;
  return -2;
}

struct result {
  const char *outcome; /* "ok", errno name, or UNSUPPORTED:... */
  int has_value;
  long long value;
  char out[600];
  char note[300];
};

static void res_errno(struct result *r, int e) { r->outcome = errname(e); }

/** append to a step's note, "; "-separated */
static void note_add(struct result *r, const char *fmt, ...) {
  char tmp[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  size_t n = strlen(r->note);
  snprintf(r->note + n, sizeof r->note - n, "%s%s", n ? "; " : "", tmp);
}

static void report(int actor, const struct step *s, const struct result *r) {
  char out[700], note[700], outc[200];
  pencode(out, sizeof out, r->out[0] ? r->out : "-");
  pencode(note, sizeof note, r->note[0] ? r->note : "-");
  pencode(outc, sizeof outc, r->outcome);
  char val[32] = "-";
  if (r->has_value) snprintf(val, sizeof val, "%lld", r->value);
  send_msg("S %d %d %d %s %s %s %s", s->id, actor, (int)gettid(), outc, val, out, note);
}

static void run_prog(int actor, const struct prog *p);

static void pause_forever(void) {
  for (;;) pause();
}

static void noop_handler(int sig) { (void)sig; }

struct thread_start {
  const struct prog *body;
  int actor;
  const char *name; /* comm, set by the thread itself before anything else */
  int tid;          /* set by the thread, futex-woken */
};

static void *thread_main(void *arg) {
  struct thread_start *ts = arg;
  const struct prog *body = ts->body;
  int actor = ts->actor;
  if (ts->name) prctl(PR_SET_NAME, ts->name); /* truncated to 15 bytes, like the kernel's comm */
  __atomic_store_n(&ts->tid, (int)gettid(), __ATOMIC_SEQ_CST);
  futex(&ts->tid, FUTEX_WAKE, 1);
  /* ts belongs to the creator from here on */
  if (body) {
    run_prog(actor, body);
    return NULL; /* the thread exits (exit(2)), as a scenario thread's program ends */
  }
  pause_forever();
  return NULL;
}

/** pthread_create of a thread that names itself, returning its tid once it exists */
static int spawn_thread(const char *name, const struct prog *body, int actor, int *tid) {
  pthread_t th;
  struct thread_start ts = {body, actor, name, 0};
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&at, 256 * 1024);
  int e = pthread_create(&th, &at, thread_main, &ts);
  pthread_attr_destroy(&at);
  if (e) return e;
  while (__atomic_load_n(&ts.tid, __ATOMIC_SEQ_CST) == 0) futex(&ts.tid, FUTEX_WAIT, 0);
  *tid = ts.tid;
  return 0;
}

static void hex_encode(char *out, size_t cap, const unsigned char *b, size_t n) {
  size_t o = 0;
  for (size_t i = 0; i < n && o + 3 < cap; i++) o += (size_t)snprintf(out + o, cap - o, "%02x", b[i]);
  out[o] = 0;
}

static size_t hex_decode(unsigned char *out, size_t cap, const char *s) {
  size_t n = 0;
  if (!strcmp(s, "-")) return 0;
  for (; s[0] && s[1] && n < cap; s += 2) {
    char h[3] = {s[0], s[1], 0};
    out[n++] = (unsigned char)strtol(h, NULL, 16);
  }
  return n;
}

/*
 * The VMs the kvm steps made, by VM descriptor: their vCPU descriptors and mapped kvm_run
 * areas. Threads share the table; a forked child inherits a copy, with the same descriptors.
 */
#define MAX_VMS 16
#define MAX_VCPUS 64
struct vmrec {
  int vm, kvm, nvcpus;
  int vcpu[MAX_VCPUS];
  struct kvm_run *run[MAX_VCPUS];
};
static struct vmrec vms[MAX_VMS];
static int nvms;

static struct vmrec *vm_new(int vm, int kvm) {
  pthread_mutex_lock(&alias_lock);
  struct vmrec *v = nvms < MAX_VMS ? &vms[nvms++] : NULL;
  if (v) *v = (struct vmrec){.vm = vm, .kvm = kvm};
  pthread_mutex_unlock(&alias_lock);
  return v;
}

static struct vmrec *vm_find(int vm) {
  for (int i = 0; i < nvms; i++)
    if (vms[i].vm == vm) return &vms[i];
  return NULL;
}

/*
 * KVM_RUN on vCPU i of vr: map its kvm_run (once), point it at the hlt at guest physical 0
 * (KVM_GET_SREGS/KVM_SET_SREGS with cs.base = cs.selector = 0, KVM_SET_REGS with rip = 0 and
 * rflags = 2), run. The outcome is the first failing call's errno (its name in the note) —
 * from another mm every vCPU ioctl fails with EIO, the first one included.
 */
static void vcpu_run(struct vmrec *vr, int i, struct result *r) {
  if (!vr || i < 0 || i >= vr->nvcpus) {
    res_errno(r, EBADF);
    note_add(r, "no vCPU %d", i);
    return;
  }
  int fd = vr->vcpu[i];
  struct kvm_sregs sregs;
  if (ioctl(fd, KVM_GET_SREGS, &sregs) < 0) {
    res_errno(r, errno);
    note_add(r, "failed at KVM_GET_SREGS");
    return;
  }
  if (!vr->run[i]) {
    int sz = ioctl(vr->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (sz < 0) {
      res_errno(r, errno);
      note_add(r, "failed at KVM_GET_VCPU_MMAP_SIZE");
      return;
    }
    struct kvm_run *kr = mmap(NULL, (size_t)sz, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (kr == MAP_FAILED) {
      res_errno(r, errno);
      note_add(r, "failed at mmap of kvm_run");
      return;
    }
    vr->run[i] = kr;
  }
  sregs.cs.base = 0;
  sregs.cs.selector = 0;
  if (ioctl(fd, KVM_SET_SREGS, &sregs) < 0) {
    res_errno(r, errno);
    note_add(r, "failed at KVM_SET_SREGS");
    return;
  }
  struct kvm_regs regs;
  memset(&regs, 0, sizeof regs);
  regs.rip = 0;
  regs.rflags = 2;
  if (ioctl(fd, KVM_SET_REGS, &regs) < 0) {
    res_errno(r, errno);
    note_add(r, "failed at KVM_SET_REGS");
    return;
  }
  if (ioctl(fd, KVM_RUN, 0) < 0) {
    res_errno(r, errno);
    note_add(r, "failed at KVM_RUN");
    return;
  }
  r->outcome = "ok";
  unsigned reason = vr->run[i]->exit_reason;
  note_add(r, "exit_reason %u%s", reason, reason == KVM_EXIT_HLT ? " (KVM_EXIT_HLT)" : "");
}

static void do_kvm(const struct step *s, struct result *r) {
  const char *alias = s->argv[0];
  int vcpus = atoi(s->argv[1]);
  int run = atoi(s->argv[2]);
  int kvm = open("/dev/kvm", O_RDWR);
  if (kvm < 0 && (errno == EACCES || errno == EPERM) && kvm_preopened >= 0) {
    kvm = fcntl(kvm_preopened, F_DUPFD, 0);
    note_add(r, "kvm-preopened: /dev/kvm is not accessible to this uid; used a descriptor opened before the uid change");
  }
  if (kvm < 0) {
    res_errno(r, errno);
    note_add(r, "failed at open /dev/kvm");
    return;
  }
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  if (vm < 0) {
    res_errno(r, errno);
    note_add(r, "failed at KVM_CREATE_VM");
    return;
  }
  alias_set(alias, 'f', vm);
  unsigned char *mem = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    res_errno(r, errno);
    note_add(r, "failed at mmap of guest memory");
    return;
  }
  mem[0] = 0xf4; /* hlt */
  struct kvm_userspace_memory_region region = {
      .slot = 0, .flags = 0, .guest_phys_addr = 0, .memory_size = 0x1000, .userspace_addr = (uint64_t)(uintptr_t)mem};
  if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
    res_errno(r, errno);
    note_add(r, "failed at KVM_SET_USER_MEMORY_REGION");
    return;
  }
  struct vmrec *vr = vm_new(vm, kvm);
  for (int i = 0; i < vcpus; i++) {
    int v = ioctl(vm, KVM_CREATE_VCPU, i);
    if (v < 0) {
      res_errno(r, errno);
      note_add(r, "failed at KVM_CREATE_VCPU %d", i);
      return;
    }
    if (vr && i < MAX_VCPUS) vr->vcpu[vr->nvcpus++] = v;
  }
  if (!run) {
    r->outcome = "ok";
    return;
  }
  vcpu_run(vr, 0, r);
}

/** kvm_run <alias> <vcpu>: KVM_RUN on a vCPU of a VM made by an earlier kvm step */
static void do_kvm_run(const struct step *s, struct result *r) {
  long vm;
  if (!alias_get(s->argv[0], &vm)) {
    res_errno(r, EBADF);
    note_add(r, "no VM %s", s->argv[0]);
    return;
  }
  vcpu_run(vm_find((int)vm), atoi(s->argv[1]), r);
}

/* ------------------------------------------------------------------ io_uring (raw syscalls) */

#ifndef IORING_REGISTER_IOWQ_MAX_WORKERS
#define IORING_REGISTER_IOWQ_MAX_WORKERS 19
#endif

struct uring {
  int fd;
  struct io_uring_params p;
  unsigned char *ring;
  struct io_uring_sqe *sqes;
};
#define MAX_RINGS 16
static struct uring rings[MAX_RINGS];
static int nrings;

static struct uring *ring_of(const char *ref) {
  int fd = resolve_fd(ref);
  for (int i = 0; i < nrings; i++)
    if (rings[i].fd == fd) return &rings[i];
  return NULL;
}

static unsigned *ring_u32(struct uring *u, unsigned off) { return (unsigned *)(u->ring + off); }

static void do_io_uring(const struct step *s, struct result *r) {
  struct uring u;
  memset(&u, 0, sizeof u);
  u.p.flags = atoi(s->argv[2]) ? IORING_SETUP_SQPOLL : 0;
  u.p.sq_thread_idle = (unsigned)atoi(s->argv[3]);
  u.fd = (int)syscall(__NR_io_uring_setup, (unsigned)atoi(s->argv[1]), &u.p);
  if (u.fd < 0) {
    res_errno(r, errno);
    return;
  }
  size_t sq = u.p.sq_off.array + u.p.sq_entries * 4, cq = u.p.cq_off.cqes + u.p.cq_entries * sizeof(struct io_uring_cqe);
  u.ring = mmap(NULL, sq > cq ? sq : cq, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, u.fd, IORING_OFF_SQ_RING);
  u.sqes = mmap(NULL, u.p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                u.fd, IORING_OFF_SQES);
  if (u.ring == MAP_FAILED || u.sqes == MAP_FAILED || nrings == MAX_RINGS) {
    res_errno(r, errno ? errno : ENOMEM);
    note_add(r, "failed at mmap of the rings");
    return;
  }
  rings[nrings++] = u;
  alias_set(s->argv[0], 'f', u.fd);
  r->has_value = 1, r->value = u.fd;
  note_add(r, "sq_entries %u cq_entries %u features %#x sq_off.tail %u cq_off.cqes %u sq_off.array %u",
           u.p.sq_entries, u.p.cq_entries, u.p.features, u.p.sq_off.tail, u.p.cq_off.cqes, u.p.sq_off.array);
}

/** io_uring_get_sqe + prep + the SQ tail store; 0 when the SQ ring is full */
static int uring_queue(struct uring *u, int op, int fd, unsigned char *addr, unsigned len, int async, unsigned ud) {
  unsigned head = __atomic_load_n(ring_u32(u, u->p.sq_off.head), __ATOMIC_ACQUIRE);
  unsigned tail = *ring_u32(u, u->p.sq_off.tail);
  if (tail - head >= u->p.sq_entries) return 0;
  unsigned idx = tail & (u->p.sq_entries - 1);
  struct io_uring_sqe *e = &u->sqes[idx];
  memset(e, 0, sizeof *e);
  e->opcode = (unsigned char)op;
  e->flags = async ? IOSQE_ASYNC : 0;
  e->fd = fd;
  e->addr = (unsigned long long)(uintptr_t)addr;
  e->len = len;
  e->user_data = ud;
  ring_u32(u, u->p.sq_off.array)[idx] = idx;
  __atomic_store_n(ring_u32(u, u->p.sq_off.tail), tail + 1, __ATOMIC_RELEASE);
  return 1;
}

/** io_uring_submit_and_wait as src/io_uring/user.ts: SQ_WAKEUP only when NEED_WAKEUP is set */
static int uring_enter(struct uring *u, unsigned to_submit, unsigned wait) {
  unsigned flags = wait ? IORING_ENTER_GETEVENTS : 0;
  if (u->p.flags & IORING_SETUP_SQPOLL) {
    if (__atomic_load_n(ring_u32(u, u->p.sq_off.flags), __ATOMIC_ACQUIRE) & IORING_SQ_NEED_WAKEUP)
      flags |= IORING_ENTER_SQ_WAKEUP;
    if (!flags) return (int)to_submit;
  }
  return (int)syscall(__NR_io_uring_enter, u->fd, to_submit, wait, flags, NULL, 0);
}

/** read every posted CQE, advance the CQ head; results noted as "res res ..." */
static int uring_reap(struct uring *u, struct result *r, int *first_err) {
  unsigned head = *ring_u32(u, u->p.cq_off.head);
  unsigned tail = __atomic_load_n(ring_u32(u, u->p.cq_off.tail), __ATOMIC_ACQUIRE);
  struct io_uring_cqe *cqes = (struct io_uring_cqe *)(u->ring + u->p.cq_off.cqes);
  int n = 0;
  char buf[200] = "";
  size_t o = 0;
  for (; head != tail; head++, n++) {
    int res = cqes[head & (u->p.cq_entries - 1)].res;
    if (res < 0 && first_err && !*first_err) *first_err = -res;
    if (o + 16 < sizeof buf) o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%d", o ? " " : "", res);
  }
  __atomic_store_n(ring_u32(u, u->p.cq_off.head), head, __ATOMIC_RELEASE);
  if (n) note_add(r, "cqes %s", buf);
  return n;
}

static void do_io_uring_submit(const struct step *s, struct result *r) {
  struct uring *u = ring_of(s->argv[0]);
  if (!u) {
    res_errno(r, EBADF);
    return;
  }
  const char *op = s->argv[1];
  int opcode = !strcmp(op, "read") ? IORING_OP_READ : !strcmp(op, "write") ? IORING_OP_WRITE : IORING_OP_NOP;
  int fd = strcmp(s->argv[2], "-") ? resolve_fd(s->argv[2]) : -1;
  unsigned count = (unsigned)atoi(s->argv[3]), size = (unsigned)atoi(s->argv[4]), wait = (unsigned)atoi(s->argv[6]);
  int async = atoi(s->argv[5]);
  unsigned char *buf = mmap(NULL, (size_t)count * size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buf == MAP_FAILED) {
    res_errno(r, errno);
    return;
  }
  unsigned queued = 0;
  long submitted = 0;
  while (queued < count) {
    unsigned batch = 0;
    while (queued < count &&
           uring_queue(u, opcode, fd, buf + (size_t)queued * size, opcode == IORING_OP_NOP ? 0 : size, async, queued + 1))
      queued++, batch++;
    int ret = uring_enter(u, batch, queued == count ? wait : 0);
    if (ret < 0) {
      res_errno(r, errno);
      break;
    }
    submitted += ret;
    if (!batch) break;
  }
  uring_reap(u, r, NULL);
  r->has_value = 1, r->value = submitted;
}

static void do_io_uring_wait(const struct step *s, struct result *r) {
  struct uring *u = ring_of(s->argv[0]);
  if (!u) {
    res_errno(r, EBADF);
    return;
  }
  if (syscall(__NR_io_uring_enter, u->fd, 0, (unsigned)atoi(s->argv[1]), IORING_ENTER_GETEVENTS, NULL, 0) < 0) {
    res_errno(r, errno);
    return;
  }
  int first = 0;
  int n = uring_reap(u, r, &first);
  if (first) res_errno(r, first);
  r->has_value = 1, r->value = n;
}

static void do_io_uring_register(const struct step *s, struct result *r) {
  struct uring *u = ring_of(s->argv[0]);
  if (!u) {
    res_errno(r, EBADF);
    return;
  }
  unsigned v[2] = {(unsigned)atoi(s->argv[1]), (unsigned)atoi(s->argv[2])};
  if (syscall(__NR_io_uring_register, u->fd, IORING_REGISTER_IOWQ_MAX_WORKERS, v, 2) < 0) {
    res_errno(r, errno);
    return;
  }
  r->has_value = 1, r->value = v[1];
  note_add(r, "was [%u, %u]", v[0], v[1]);
}

/** the real path of a scenario cgroupfs path; NULL with *why set when this host cannot do it */
static int translate_write(const char *path, char *out, size_t cap, char *mirror, size_t mcap, const char **why) {
  mirror[0] = 0;
  const char *pre = "/sys/fs/cgroup";
  if (strncmp(path, pre, strlen(pre))) {
    *why = "only cgroupfs writes are run (global sysctls are never changed)";
    return -1;
  }
  if (cg_mode == CG_NONE) {
    *why = "no cgroup hierarchy with the pids controller";
    return -1;
  }
  const char *rest = path + strlen(pre);
  const char *slash = strrchr(rest, '/');
  if (!slash) {
    *why = "not a cgroup file";
    return -1;
  }
  char cg[512];
  snprintf(cg, sizeof cg, "%.*s", (int)(slash - rest), rest);
  if (!cg[0]) snprintf(cg, sizeof cg, "/");
  const char *file = slash + 1;
  const char *real = NULL;
  if (cg_mode == CG_V1) {
    char d2[1700];
    int m = cg2_dir(d2, sizeof d2, cg);
    if (!strcmp(file, "cgroup.freeze")) {
      if (!m) {
        *why = "cgroup.freeze needs a cgroup2 hierarchy beside the v1 pids one";
        return -1;
      }
      snprintf(out, cap, "%s/%s", d2, file);
      return 0;
    }
    if (!strcmp(file, "cgroup.procs")) real = "cgroup.procs";
    else if (!strcmp(file, "cgroup.threads")) real = "tasks";
    else if (!strcmp(file, "pids.max")) real = "pids.max";
    if (m && real && strcmp(real, "pids.max")) snprintf(mirror, mcap, "%s/%s", d2, file);
  } else {
    if (!strcmp(file, "cgroup.procs") || !strcmp(file, "cgroup.threads") || !strcmp(file, "pids.max") ||
        !strcmp(file, "cgroup.freeze") || !strcmp(file, "cgroup.type") || !strcmp(file, "cgroup.subtree_control"))
      real = file;
  }
  if (!real) {
    *why = cg_mode == CG_V1 ? "this file has no counterpart in the cgroup v1 pids hierarchy" : "file not supported";
    return -1;
  }
  char dir[1200];
  cg_dir(dir, sizeof dir, cg);
  snprintf(out, cap, "%s/%s", dir, real);
  return 0;
}

/** the lowest tid in tgid's thread group whose comm matches glob (or equals it as a number); 1<<30 if none */
static pid_t find_thread(pid_t tgid, const char *glob) {
  char dir[64];
  snprintf(dir, sizeof dir, "/proc/%d/task", (int)tgid);
  DIR *d = opendir(dir);
  int best = 0;
  if (d) {
    struct dirent *de;
    while ((de = readdir(d))) {
      if (!isdigit((unsigned char)de->d_name[0])) continue;
      int t = atoi(de->d_name);
      char p[400], comm[64];
      snprintf(p, sizeof p, "%s/%s/comm", dir, de->d_name);
      if (read_file(p, comm, sizeof comm) < 0) continue;
      comm[strcspn(comm, "\n")] = 0;
      if ((!fnmatch(glob, comm, 0) || !strcmp(glob, de->d_name)) && (!best || t < best)) best = t;
    }
    closedir(d);
  }
  return best ? best : 1 << 30;
}

static void run_step(int actor, const struct step *s) {
  struct result r;
  memset(&r, 0, sizeof r);
  r.outcome = "ok";
  char **a = s->argv;
  switch (s->act) {
    case A_THREADS: {
      int count = atoi(a[0]);
      int tid = 0, e = 0;
      for (int i = 0; i < count; i++) {
        char name[64];
        const char *nm = NULL;
        if (strcmp(a[1], "-")) {
          const char *ph = strstr(a[1], "{n}");
          if (ph) snprintf(name, sizeof name, "%.*s%d%s", (int)(ph - a[1]), a[1], i, ph + 3);
          else snprintf(name, sizeof name, "%s", a[1]);
          nm = name;
        }
        e = spawn_thread(nm, NULL, -1, &tid);
        if (e) break;
      }
      if (e) res_errno(&r, e);
      else r.has_value = 1, r.value = tid;
      break;
    }
    case A_THREAD: {
      int tid = 0;
      int e = spawn_thread(strcmp(a[0], "-") ? a[0] : NULL, s->body, atoi(a[2]), &tid);
      if (e) res_errno(&r, e);
      else {
        r.has_value = 1, r.value = tid;
        alias_set(a[1], 't', tid);
      }
      /* the thread's steps report themselves; report the creation first */
      break;
    }
    case A_OPEN: {
      /* a[3]: O_CREAT (mode 0600) */
      int fd = open(a[0], O_RDWR | (atoi(a[2]) ? O_CLOEXEC : 0) | (atoi(a[3]) ? O_CREAT : 0), 0600);
      if (fd < 0 && errno == EISDIR) fd = open(a[0], O_RDONLY | (atoi(a[2]) ? O_CLOEXEC : 0));
      if (fd < 0) res_errno(&r, errno);
      else {
        r.has_value = 1, r.value = fd;
        alias_set(a[1], 'f', fd);
      }
      break;
    }
    case A_CLOSE:
      if (close(resolve_fd(a[0])) < 0) res_errno(&r, errno);
      break;
    case A_DUP: {
      int fd = dup(resolve_fd(a[0]));
      if (fd < 0) res_errno(&r, errno);
      else {
        r.has_value = 1, r.value = fd;
        alias_set(a[1], 'f', fd);
      }
      break;
    }
    case A_IOCTL: {
      int fd = resolve_fd(a[0]);
      unsigned long cmd = strtoul(a[1], NULL, 16);
      long rv;
      if (!strcmp(a[2], "int")) {
        rv = ioctl(fd, cmd, strtol(a[3], NULL, 0));
      } else {
        static __thread unsigned char argbuf[65536] __attribute__((aligned(64)));
        memset(argbuf, 0, sizeof argbuf);
        hex_decode(argbuf, sizeof argbuf, a[3]);
        /* patch:<offset>:<fdref> puts a descriptor's number (u32 LE) into the argument */
        for (int i = 5; i < s->argc; i++) {
          if (strncmp(a[i], "patch:", 6)) continue;
          char *e;
          long off = strtol(a[i] + 6, &e, 10);
          if (*e != ':' || off < 0 || off + 4 > (long)sizeof argbuf) continue;
          uint32_t v = (uint32_t)resolve_fd(e + 1);
          memcpy(argbuf + off, &v, 4);
        }
        rv = ioctl(fd, cmd, argbuf);
        int outlen = s->argc > 4 ? atoi(a[4]) : 0;
        if (rv >= 0 && outlen > 0) hex_encode(r.out, sizeof r.out, argbuf, (size_t)outlen);
      }
      if (rv < 0) res_errno(&r, errno);
      else snprintf(r.note, sizeof r.note, "returned %ld", rv);
      break;
    }
    case A_KVM:
      do_kvm(s, &r);
      break;
    case A_KVM_RUN:
      do_kvm_run(s, &r);
      break;
    case A_FORK: {
      const struct prog *body = s->body;
      int child_actor = atoi(a[1]);
      pid_t pid = fork();
      if (pid < 0) {
        res_errno(&r, errno);
        break;
      }
      if (pid == 0) {
        if (body) run_prog(child_actor, body);
        else pause_forever();
        _exit(0);
      }
      r.has_value = 1, r.value = pid;
      alias_set(a[0], 'p', pid);
      break;
    }
    case A_EXIT:
      report(actor, s, &r);
      syscall(SYS_exit, atoi(a[0]));
      return;
    case A_EXIT_GROUP:
      report(actor, s, &r);
      syscall(SYS_exit_group, atoi(a[0]));
      return;
    case A_KILL: {
      pid_t t = resolve_target(a[0]);
      if (t == -2) {
        r.outcome = "UNSUPPORTED:unknown target";
        break;
      }
      if (kill(t, atoi(a[1])) < 0) res_errno(&r, errno);
      break;
    }
    case A_TGKILL: {
      pid_t tgid = resolve_target(a[0]);
      if (syscall(SYS_tgkill, tgid, find_thread(tgid, a[1]), atoi(a[2])) < 0) res_errno(&r, errno);
      break;
    }
    case A_PTRACE: {
      pid_t tgid = resolve_target(a[1]);
      pid_t tid = strcmp(a[2], "-") ? find_thread(tgid, a[2]) : tgid;
      long req = atol(a[0]);
      if (ptrace((enum __ptrace_request)req, tid, 0, req == PTRACE_SEIZE ? atol(a[3]) : 0) < 0) res_errno(&r, errno);
      else if (req == PTRACE_ATTACH && atol(a[3]) && ptrace(PTRACE_SETOPTIONS, tid, 0, atol(a[3])) < 0)
        note_add(&r, "PTRACE_SETOPTIONS: %s", errname(errno));
      break;
    }
    case A_SIGACTION: {
      struct sigaction sa;
      memset(&sa, 0, sizeof sa);
      sa.sa_handler = !strcmp(a[1], "ignore") ? SIG_IGN : !strcmp(a[1], "default") ? SIG_DFL : noop_handler;
      if (sigaction(atoi(a[0]), &sa, NULL) < 0) res_errno(&r, errno);
      break;
    }
    case A_SIGPROCMASK: {
      unsigned long long blk = strtoull(a[0], NULL, 16), unb = strtoull(a[1], NULL, 16);
      sigset_t set;
      int e = 0;
      if (blk) {
        sigemptyset(&set);
        for (int i = 1; i <= 64; i++)
          if (blk >> (i - 1) & 1) sigaddset(&set, i);
        e = pthread_sigmask(SIG_BLOCK, &set, NULL);
      }
      if (!e && unb) {
        sigemptyset(&set);
        for (int i = 1; i <= 64; i++)
          if (unb >> (i - 1) & 1) sigaddset(&set, i);
        e = pthread_sigmask(SIG_UNBLOCK, &set, NULL);
      }
      if (e) res_errno(&r, e);
      break;
    }
    case A_SETRLIMIT:
      for (int i = 0; i + 2 < s->argc; i += 3) {
        struct rlimit rl = {parse_limit(a[i + 1]), parse_limit(a[i + 2])};
        if (setrlimit(atoi(a[i]), &rl) < 0) {
          res_errno(&r, errno);
          break;
        }
      }
      break;
    case A_SETRESUID:
      if (syscall(SYS_setresuid, atol(a[0]), atol(a[1]), atol(a[2])) < 0) res_errno(&r, errno);
      break;
    case A_UNSHARE:
      if (syscall(SYS_unshare, strtoul(a[0], NULL, 16)) < 0) res_errno(&r, errno);
      break;
    case A_AFFINITY: {
      cpu_set_t set;
      if (parse_cpulist(a[0], &set) < 0) res_errno(&r, EINVAL);
      else if (sched_setaffinity(0, sizeof set, &set) < 0) res_errno(&r, errno);
      break;
    }
    case A_WRITE: {
      char path[1900], mirror[1900];
      const char *why = NULL;
      if (translate_write(a[0], path, sizeof path, mirror, sizeof mirror, &why) < 0) {
        static __thread char un[200];
        snprintf(un, sizeof un, "UNSUPPORTED:%s", why);
        r.outcome = un;
        break;
      }
      char val[64];
      if (!strcmp(a[1], "self")) snprintf(val, sizeof val, "%d", (int)gettid());
      else if (!strncmp(a[1], "p:", 2) || !strncmp(a[1], "a:", 2))
        snprintf(val, sizeof val, "%d", (int)resolve_target(a[1]));
      else snprintf(val, sizeof val, "%s", a[1]);
      int e = write_file(path, val);
      if (e) res_errno(&r, -e);
      else if (mirror[0] && (e = write_file(mirror, val))) note_add(&r, "cgroup2 mirror %s: %s", mirror, errname(-e));
      break;
    }
    case A_SLEEP: {
      long long ns = atoll(a[0]);
      struct timespec ts = {(time_t)(ns / 1000000000LL), (long)(ns % 1000000000LL)};
      while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
      }
      break;
    }
    case A_LABEL:
      report(actor, s, &r); /* before the snapshot, as the model records it */
      request(actor, 'L', a[0]);
      return;
    case A_WAIT:
      request(actor, 'W', a[0]);
      break;
    case A_WAIT4: {
      pid_t t = strcmp(a[0], "-1") ? resolve_target(a[0]) : -1;
      int st;
      pid_t p = wait4(t, &st, atoi(a[1]), NULL);
      if (p < 0) res_errno(&r, errno);
      else r.has_value = 1, r.value = p;
      break;
    }
    case A_PIPE: {
      int fds[2];
      if (pipe2(fds, 0) < 0) res_errno(&r, errno);
      else alias_set(a[0], 'f', fds[0]), alias_set(a[1], 'f', fds[1]);
      break;
    }
    case A_EVENTFD: {
      int fd = eventfd((unsigned)atoi(a[1]), 0);
      if (fd < 0) res_errno(&r, errno);
      else r.has_value = 1, r.value = fd, alias_set(a[0], 'f', fd);
      break;
    }
    case A_IO_URING:
      do_io_uring(s, &r);
      break;
    case A_IO_URING_SUBMIT:
      do_io_uring_submit(s, &r);
      break;
    case A_IO_URING_WAIT:
      do_io_uring_wait(s, &r);
      break;
    case A_IO_URING_REGISTER:
      do_io_uring_register(s, &r);
      break;
  }
  report(actor, s, &r);
}

static void run_prog(int actor, const struct prog *p) {
  for (int i = 0; i < p->n; i++) run_step(actor, &p->v[i]);
}

/** a scenario process, re-executed: set up as the scenario says, then run its program */
static int actor_main(int idx) {
  struct proc *p = &procs[idx];
  fcntl(msg_fd, F_SETFD, FD_CLOEXEC);
  /* the model's processes start with an empty descriptor table: no stdio, so a scenario's
     first open gets 0 as there (the actor never prints; die() reports over msg_fd) */
  for (int fd = 0; fd < 3; fd++) close(fd);
  signal(SIGPIPE, SIG_DFL);
  if (p->join) {
    if (cg_mode == CG_NONE) send_msg("E %d cannot join cgroup %s: no pids hierarchy", p->actor, p->join);
    else {
      char dir[1500], f[1600], pid[32];
      cg_dir(dir, sizeof dir, p->join);
      snprintf(f, sizeof f, "%s/cgroup.procs", dir);
      snprintf(pid, sizeof pid, "%d", (int)getpid());
      int e = write_file(f, pid);
      if (e) send_msg("E %d joining %s: %s", p->actor, f, errname(-e));
      if (cg2_dir(dir, sizeof dir, p->join)) {
        snprintf(f, sizeof f, "%s/cgroup.procs", dir);
        if ((e = write_file(f, pid))) send_msg("E %d joining %s: %s", p->actor, f, errname(-e));
      }
    }
  }
  if (p->cpus) {
    cpu_set_t set;
    if (parse_cpulist(p->cpus, &set) == 0 && sched_setaffinity(0, sizeof set, &set) < 0)
      send_msg("E %d sched_setaffinity %s: %s", p->actor, p->cpus, errname(errno));
  }
  for (int i = 0; i < p->nrl; i++) {
    struct rlimit rl = {p->rl[i].soft, p->rl[i].hard};
    if (setrlimit(p->rl[i].res, &rl) < 0)
      send_msg("E %d setrlimit %d: %s", p->actor, p->rl[i].res, errname(errno));
  }
  int k = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (k >= 0) {
    kvm_preopened = fcntl(k, F_DUPFD_CLOEXEC, HIGH_FD + 50);
    close(k);
  }
  if (p->has_gid) {
    if (syscall(SYS_setgroups, 0, NULL) < 0 || syscall(SYS_setresgid, p->gid, p->gid, p->gid) < 0)
      send_msg("E %d setresgid %ld: %s", p->actor, p->gid, errname(errno));
  }
  if (p->has_uid && p->uid != 0) {
    if (syscall(SYS_setresuid, p->uid, p->uid, p->uid) < 0)
      send_msg("E %d setresuid %ld: %s", p->actor, p->uid, errname(errno));
  }
  if (p->has_caps) {
    struct {
      uint32_t version;
      int pid;
    } hdr = {0x20080522 /* _LINUX_CAPABILITY_VERSION_3 */, 0};
    struct {
      uint32_t effective, permitted, inheritable;
    } data[2] = {{(uint32_t)p->caps, (uint32_t)p->caps, 0}, {(uint32_t)(p->caps >> 32), (uint32_t)(p->caps >> 32), 0}};
    if (syscall(SYS_capset, &hdr, data) < 0) send_msg("E %d capset %llx: %s", p->actor, p->caps, errname(errno));
  }
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  prctl(PR_SET_NAME, p->name);
  request(p->actor, 'W', p->after ? p->after : "");
  run_prog(p->actor, &p->prog);
  /* the end of main(): exit_group, taking the threads */
  syscall(SYS_exit_group, 0);
  return 0;
}

static const char *proc_name_of_pid(int pid) {
  for (int i = 0; i < nprocs; i++)
    if (shm->pid[i] == pid) return procs[i].name;
  return NULL;
}

/* ------------------------------------------------------------------ the supervisor: snapshots */

struct task_id {
  int tid, tgid;
};

static int in_list(const int *v, int n, int x) {
  for (int i = 0; i < n; i++)
    if (v[i] == x) return 1;
  return 0;
}

/** field of /proc/.../status: copies the text after "Key:\t" up to the line end */
static int status_field(const char *st, const char *key, char *out, size_t cap) {
  size_t kl = strlen(key);
  for (const char *p = st; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
    if (!strncmp(p, key, kl) && p[kl] == ':') {
      const char *v = p + kl + 1;
      while (*v == '\t' || *v == ' ') v++;
      size_t n = strcspn(v, "\n");
      if (n >= cap) n = cap - 1;
      memcpy(out, v, n);
      out[n] = 0;
      return 0;
    }
  }
  out[0] = 0;
  return -1;
}

/** stat: state, ppid and flags (parsing after the last ')') */
static int read_stat(const char *path, char *state, int *ppid, unsigned long *flags) {
  char st[2048];
  if (read_file(path, st, sizeof st) < 0) return -1;
  char *rp = strrchr(st, ')');
  if (!rp) return -1;
  char s;
  int pp;
  unsigned long fl;
  /* state ppid pgrp session tty_nr tpgid flags */
  if (sscanf(rp + 2, "%c %d %*d %*d %*d %*d %lu", &s, &pp, &fl) != 3) return -1;
  if (state) *state = s;
  if (ppid) *ppid = pp;
  if (flags) *flags = fl;
  return 0;
}

/** PF_* names (include/linux/sched.h, v6.12; bits differ slightly in older kernels) */
static const struct {
  unsigned long bit;
  const char *name;
} PF_NAMES[] = {
    {0x1, "PF_VCPU"}, {0x2, "PF_IDLE"}, {0x4, "PF_EXITING"}, {0x8, "PF_POSTCOREDUMP"}, {0x10, "PF_IO_WORKER"},
    {0x20, "PF_WQ_WORKER"}, {0x40, "PF_FORKNOEXEC"}, {0x80, "PF_MCE_PROCESS"}, {0x100, "PF_SUPERPRIV"},
    {0x200, "PF_DUMPCORE"}, {0x400, "PF_SIGNALED"}, {0x800, "PF_MEMALLOC"}, {0x1000, "PF_NPROC_EXCEEDED"},
    {0x2000, "PF_USED_MATH"}, {0x4000, "PF_USER_WORKER"}, {0x8000, "PF_NOFREEZE"}, {0x10000, "PF_KCOMPACTD"},
    {0x20000, "PF_KSWAPD"}, {0x40000, "PF_MEMALLOC_NOFS"}, {0x80000, "PF_MEMALLOC_NOIO"},
    {0x100000, "PF_LOCAL_THROTTLE"}, {0x200000, "PF_KTHREAD"}, {0x400000, "PF_RANDOMIZE"},
    {0x4000000, "PF_NO_SETAFFINITY"}, {0x8000000, "PF_MCE_EARLY"}, {0x10000000, "PF_MEMALLOC_PIN"},
    {0x20000000, "PF_BLOCK_TS"}, {0x80000000UL, "PF_SUSPEND_TASK"},
};

/** stat flags decoded, "|"-separated, unknown bits as hex */
static void pf_decode(char *out, size_t cap, unsigned long flags) {
  size_t n = 0;
  out[0] = 0;
  unsigned long rest = flags;
  for (size_t i = 0; i < sizeof PF_NAMES / sizeof PF_NAMES[0]; i++)
    if (flags & PF_NAMES[i].bit) {
      n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "%s%s", n ? "|" : "", PF_NAMES[i].name);
      rest &= ~PF_NAMES[i].bit;
    }
  if (rest && n < cap) n += (size_t)snprintf(out + n, cap - n, "%s0x%lx", n ? "|" : "", rest);
  if (!n) snprintf(out, cap, "none");
}

static const char *NS_NAMES[] = {"pid", "pid_for_children", "user", "net", "mnt", "uts", "ipc", "cgroup", "time"};
#define NNS (sizeof NS_NAMES / sizeof NS_NAMES[0])

static void ns_json(struct buf *b, const char *taskdir) {
  bput(b, "{", 1);
  int first = 1;
  for (size_t i = 0; i < NNS; i++) {
    char p[300], l[128];
    snprintf(p, sizeof p, "%s/ns/%s", taskdir, NS_NAMES[i]);
    ssize_t n = readlink(p, l, sizeof l - 1);
    if (n < 0) {
      /* 0: unreadable (pid_for_children before the new namespace has its init; ns type absent) */
      bprintf(b, "%s\"%s\":0", first ? "" : ",", NS_NAMES[i]);
      first = 0;
      continue;
    }
    l[n] = 0;
    char *br = strchr(l, '[');
    unsigned long ino = br ? strtoul(br + 1, NULL, 10) : 0;
    bprintf(b, "%s\"%s\":%lu", first ? "" : ",", NS_NAMES[i], ino);
    first = 0;
  }
  bput(b, "}", 1);
}

/** the pids-hierarchy line of /proc/.../cgroup */
static void task_cgroup(const char *taskdir, char *out, size_t cap) {
  char p[300], text[4096];
  snprintf(p, sizeof p, "%s/cgroup", taskdir);
  out[0] = 0;
  if (read_file(p, text, sizeof text) < 0) return;
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char *c1 = strchr(line, ':');
    if (!c1) continue;
    char *c2 = strchr(c1 + 1, ':');
    if (!c2) continue;
    *c2 = 0;
    int match = cg_mode == CG_V1 ? (strstr(c1 + 1, "pids") != NULL) : (c1[1] == 0);
    if (match || (cg_mode == CG_NONE && c1[1] == 0)) snprintf(out, cap, "%s", c2 + 1);
  }
}

struct scan {
  int pid[16384];
  int ppid[16384];
  unsigned long flags[16384];
  char state[16384];
  int n;
};
static struct scan scanbuf;

static void scan_proc(struct scan *sc) {
  sc->n = 0;
  DIR *d = opendir("/proc");
  if (!d) return;
  struct dirent *de;
  while ((de = readdir(d)) && sc->n < 16384) {
    if (!isdigit((unsigned char)de->d_name[0])) continue;
    char p[300];
    snprintf(p, sizeof p, "/proc/%s/stat", de->d_name);
    char s;
    int pp;
    unsigned long fl;
    if (read_stat(p, &s, &pp, &fl) < 0) continue;
    sc->pid[sc->n] = atoi(de->d_name);
    sc->ppid[sc->n] = pp;
    sc->flags[sc->n] = fl;
    sc->state[sc->n] = s;
    sc->n++;
  }
  closedir(d);
}

static int tracked_tgids[4096], ntracked_tgids;
static struct task_id tracked[16384];
static int ntracked;

/** the tasks a snapshot covers (see the top of the file) */
static void collect(void) {
  struct scan *sc = &scanbuf;
  scan_proc(sc);
  ntracked_tgids = 0;
  int me = getpid();
  int changed = 1;
  while (changed) {
    changed = 0;
    for (int i = 0; i < sc->n; i++) {
      if (sc->pid[i] == me || in_list(tracked_tgids, ntracked_tgids, sc->pid[i])) continue;
      if ((sc->ppid[i] == me || in_list(tracked_tgids, ntracked_tgids, sc->ppid[i])) && ntracked_tgids < 4096) {
        tracked_tgids[ntracked_tgids++] = sc->pid[i];
        changed = 1;
      }
    }
  }
  ntracked = 0;
  int tids[16384], ntids = 0;
  for (int i = 0; i < ntracked_tgids; i++) {
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", tracked_tgids[i]);
    DIR *d = opendir(dir);
    if (!d) continue;
    struct dirent *de;
    while ((de = readdir(d)) && ntracked < 16384) {
      if (!isdigit((unsigned char)de->d_name[0])) continue;
      int tid = atoi(de->d_name);
      tracked[ntracked++] = (struct task_id){tid, tracked_tgids[i]};
      if (ntids < 16384) tids[ntids++] = tid;
    }
    closedir(d);
  }
  /* kthreads named after one of our tids/tgids */
  for (int i = 0; i < sc->n; i++) {
    if (!(sc->flags[i] & PF_KTHREAD)) continue;
    char p[64], st[4096], name[128];
    snprintf(p, sizeof p, "/proc/%d/status", sc->pid[i]);
    if (read_file(p, st, sizeof st) < 0) continue;
    status_field(st, "Name", name, sizeof name);
    char *dash = strrchr(name, '-');
    if (!dash || !dash[1]) continue;
    char *e;
    long n = strtol(dash + 1, &e, 10);
    if (*e || n <= 0) continue;
    if ((in_list(tids, ntids, (int)n) || in_list(tracked_tgids, ntracked_tgids, (int)n)) && ntracked < 16384)
      tracked[ntracked++] = (struct task_id){sc->pid[i], sc->pid[i]};
  }
  /* anything else in our cgroups */
  if (cg_mode != CG_NONE)
    for (int c = 0; c < ncgspecs; c++) {
      char dir[1200], f[1300], text[65536];
      cg_dir(dir, sizeof dir, cgspecs[c].path);
      snprintf(f, sizeof f, "%s/%s", dir, cg_mode == CG_V1 ? "tasks" : "cgroup.threads");
      if (read_file(f, text, sizeof text) < 0) continue;
      char *save = NULL;
      for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int tid = atoi(line);
        int known = 0;
        for (int k = 0; k < ntracked; k++)
          if (tracked[k].tid == tid) known = 1;
        if (known || ntracked >= 16384) continue;
        char p[64], st[4096], tg[32];
        snprintf(p, sizeof p, "/proc/%d/status", tid);
        if (read_file(p, st, sizeof st) < 0) continue;
        status_field(st, "Tgid", tg, sizeof tg);
        tracked[ntracked++] = (struct task_id){tid, atoi(tg)};
      }
    }
}

static void add_note(const char *fmt, ...);
static const char *proc_name_of_pid(int pid);

/** how a reaped scenario process ended, as a note (the model's snapshot has no exit statuses) */
static void note_exit(pid_t p, int st) {
  const char *name = proc_name_of_pid(p);
  if (!name) return;
  if (WIFEXITED(st)) add_note("process %s exited with status %d", name, WEXITSTATUS(st));
  else if (WIFSIGNALED(st)) add_note("process %s was killed by signal %d", name, WTERMSIG(st));
}

static void reap(void) {
  int st;
  pid_t p;
  while ((p = waitpid(-1, &st, WNOHANG | __WALL)) > 0) note_exit(p, st);
}

/**
 * Before a snapshot, wait (≤ 200 ms) until no tracked task is runnable (but the labeller, which
 * is parked in the handshake) or exiting: the model's snapshot is taken with every task that had
 * work done with it, so a real task that merely has not been scheduled yet (a loaded machine)
 * must not read as R, and an exit in progress must be finished.
 */
static void settle(int labeller) {
  long long until = now_ms() + 200;
  for (;;) {
    reap();
    collect();
    int busy = 0;
    for (int i = 0; i < ntracked; i++) {
      char p[96], s = 0;
      unsigned long fl = 0;
      snprintf(p, sizeof p, "/proc/%d/task/%d/stat", tracked[i].tgid, tracked[i].tid);
      if (read_stat(p, &s, NULL, &fl) < 0) continue;
      /* a runnable task other than the labeller has not got to block yet */
      if (s == 'R' && tracked[i].tid != labeller) {
        busy = 1;
        continue;
      }
      if (s == 'X' || (fl & PF_EXITING)) {
        /* a leader that called exit(2) stays a zombie while its threads run: that is a state */
        if (s == 'Z' && tracked[i].tid == tracked[i].tgid) {
          int others = 0;
          for (int j = 0; j < ntracked; j++)
            if (tracked[j].tgid == tracked[i].tgid && tracked[j].tid != tracked[i].tid) others = 1;
          if (others) continue;
        }
        busy = 1;
      }
    }
    if (!busy || now_ms() > until) return;
    sleep_ms(5);
  }
}

static struct buf labels_json, order_json;
static int nlabels;

static void snapshot(const char *label, int labeller) {
  settle(labeller);
  struct buf *b = &labels_json;
  if (nlabels++) bput(b, ",", 1);
  bjson(b, label);
  bput(b, ":{\"tasks\":[", 11);
  if (order_json.n) bput(&order_json, ",", 1);
  bjson(&order_json, label);
  int first = 1;
  for (int i = 0; i < ntracked; i++) {
    char dir[96], p[160], st[8192], comm[64];
    snprintf(dir, sizeof dir, "/proc/%d/task/%d", tracked[i].tgid, tracked[i].tid);
    snprintf(p, sizeof p, "%s/status", dir);
    if (read_file(p, st, sizeof st) < 0) continue;
    char s = '?';
    int ppid = 0;
    unsigned long flags = 0;
    snprintf(p, sizeof p, "%s/stat", dir);
    read_stat(p, &s, &ppid, &flags);
    snprintf(p, sizeof p, "%s/comm", dir);
    if (read_file(p, comm, sizeof comm) < 0) comm[0] = 0;
    comm[strcspn(comm, "\n")] = 0;
    char name[128], state[64], tgid[32], pp[32], uid[64], cpus[256], blk[32], pnd[32], shd[32], thr[16], nspid[128],
        cg[512], tracer[32];
    status_field(st, "Name", name, sizeof name);
    status_field(st, "State", state, sizeof state);
    status_field(st, "Tgid", tgid, sizeof tgid);
    status_field(st, "PPid", pp, sizeof pp);
    status_field(st, "Uid", uid, sizeof uid);
    status_field(st, "Cpus_allowed_list", cpus, sizeof cpus);
    status_field(st, "SigBlk", blk, sizeof blk);
    status_field(st, "SigPnd", pnd, sizeof pnd);
    status_field(st, "ShdPnd", shd, sizeof shd);
    status_field(st, "Threads", thr, sizeof thr);
    status_field(st, "NSpid", nspid, sizeof nspid);
    status_field(st, "TracerPid", tracer, sizeof tracer);
    for (char *q = nspid; *q; q++)
      if (*q == '\t') *q = ' ';
    task_cgroup(dir, cg, sizeof cg);
    if (!first) bput(b, ",", 1);
    first = 0;
    bprintf(b, "{\"tid\":%d,\"tgid\":%d,\"ppid\":%d,\"uid\":%ld,\"comm\":", tracked[i].tid, atoi(tgid), atoi(pp),
            atol(uid));
    bjson(b, comm);
    bput(b, ",\"name\":", 8);
    bjson(b, name);
    char pf[512];
    pf_decode(pf, sizeof pf, flags);
    bprintf(b, ",\"state\":\"%c\",\"flags\":%lu,\"pf\":\"%s\",\"cgroup\":", state[0] ? state[0] : s, flags, pf);
    bjson(b, cg);
    bput(b, ",\"cpus\":", 8);
    bjson(b, cpus);
    bprintf(b, ",\"sigblk\":\"%s\",\"sigpnd\":\"%s\",\"shdpnd\":\"%s\",\"threads\":%d,\"tracer\":%d,\"nspid\":", blk,
            pnd, shd, atoi(thr), atoi(tracer));
    bjson(b, nspid);
    bput(b, ",\"ns\":", 6);
    ns_json(b, dir);
    bput(b, "}", 1);
  }
  bput(b, "],\"cgroups\":{", 13);
  for (int c = 0; c < ncgspecs && cg_mode != CG_NONE; c++) {
    char dir[1200];
    cg_dir(dir, sizeof dir, cgspecs[c].path);
    if (c) bput(b, ",", 1);
    bjson(b, cgspecs[c].path);
    bput(b, ":{", 2);
    const char *files[] = {"pids.current", "pids.max", "pids.events", "cgroup.events"};
    int f1 = 1;
    for (int f = 0; f < 4; f++) {
      char p[1800], text[1024], d2[1700];
      if (f == 3 && cg_mode == CG_V1 && !cg2_dir(d2, sizeof d2, cgspecs[c].path)) continue;
      snprintf(p, sizeof p, "%s/%s", f == 3 && cg_mode == CG_V1 ? d2 : dir, files[f]);
      if (read_file(p, text, sizeof text) < 0) continue;
      if (!f1) bput(b, ",", 1);
      f1 = 0;
      bjson(b, files[f]);
      bput(b, ":", 1);
      bjson(b, text);
    }
    bput(b, "}", 1);
  }
  bput(b, "},\"alive\":[", 11);
  int fa = 1;
  for (int i = 0; i < nprocs; i++) {
    char p[64], s = 0;
    snprintf(p, sizeof p, "/proc/%d/stat", shm->pid[i]);
    if (shm->pid[i] <= 0 || read_stat(p, &s, NULL, NULL) < 0 || s == 'Z' || s == 'X') continue;
    if (!fa) bput(b, ",", 1);
    fa = 0;
    bjson(b, procs[i].name);
  }
  bprintf(b, "],\"labeller\":%d}", labeller);
}

/* ------------------------------------------------------------------ the supervisor */

static struct buf steps_json;
static char reached[256][128];
static int nreached;
struct waiter {
  int actor;
  char label[128];
};
static struct waiter waiters[MAX_ACTORS * 4];
static int nwaiters;

static void ack(int actor) {
  if (actor < 0 || actor >= MAX_ACTORS) return;
  __atomic_add_fetch(&shm->ack[actor], 1, __ATOMIC_SEQ_CST);
  futex(&shm->ack[actor], FUTEX_WAKE, 1 << 30);
}

static int is_reached(const char *l) {
  for (int i = 0; i < nreached; i++)
    if (!strcmp(reached[i], l)) return 1;
  return 0;
}

static void handle(char *line) {
  char *tok[12];
  int n = split(line, tok, 12);
  if (n < 1) return;
  if (tok[0][0] == 'S' && n >= 8) {
    if (steps_json.n) bput(&steps_json, ",", 1);
    bprintf(&steps_json, "{\"index\":%s,\"actor\":%s,\"tid\":%s,\"outcome\":", tok[1], tok[2], tok[3]);
    bjson(&steps_json, tok[4]);
    if (strcmp(tok[5], "-")) bprintf(&steps_json, ",\"value\":%s", tok[5]);
    if (strcmp(tok[6], "-")) {
      bput(&steps_json, ",\"out\":", 7);
      bjson(&steps_json, tok[6]);
    }
    if (strcmp(tok[7], "-")) {
      bput(&steps_json, ",\"note\":", 8);
      bjson(&steps_json, tok[7]);
    }
    bput(&steps_json, "}", 1);
  } else if (tok[0][0] == 'L' && n >= 4) {
    int actor = atoi(tok[1]);
    snapshot(tok[3], atoi(tok[2]));
    if (nreached < 256) snprintf(reached[nreached++], 128, "%s", tok[3]);
    ack(actor);
    for (int i = 0; i < nwaiters; i++)
      if (!strcmp(waiters[i].label, tok[3])) {
        ack(waiters[i].actor);
        waiters[i] = waiters[--nwaiters];
        i--;
      }
  } else if (tok[0][0] == 'W' && n >= 4) {
    int actor = atoi(tok[1]);
    if (!strcmp(tok[3], "-") || is_reached(tok[3])) ack(actor);
    else if (nwaiters < (int)(sizeof waiters / sizeof waiters[0])) {
      waiters[nwaiters].actor = actor;
      snprintf(waiters[nwaiters].label, 128, "%s", tok[3]);
      nwaiters++;
    }
  } else if (tok[0][0] == 'E') {
    /* the rest of the line, re-joined */
    char text[2048] = "";
    for (int i = 2; i < n; i++) {
      strncat(text, tok[i], sizeof text - strlen(text) - 2);
      strcat(text, " ");
    }
    add_error("actor %s: %s", n > 1 ? tok[1] : "?", text);
  }
}

static void kill_descendants(void) {
  for (int round = 0; round < 5; round++) {
    collect();
    if (!ntracked_tgids) return;
    for (int i = 0; i < ntracked_tgids; i++) kill(tracked_tgids[i], SIGKILL);
    for (int i = 0; i < ntracked_tgids; i++) kill(tracked_tgids[i], SIGCONT);
    sleep_ms(20);
    reap();
  }
}

/** tasks on the machine whose real uid is `uid` (RLIMIT_NPROC counts them all) */
static int tasks_of_uid(long uid) {
  int n = 0;
  DIR *d = opendir("/proc");
  if (!d) return 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (!isdigit((unsigned char)de->d_name[0])) continue;
    char p[300], st[4096], u[64];
    snprintf(p, sizeof p, "/proc/%s/status", de->d_name);
    if (read_file(p, st, sizeof st) < 0) continue;
    status_field(st, "Uid", u, sizeof u);
    if (atol(u) == uid) {
      status_field(st, "Threads", u, sizeof u);
      n += atoi(u) > 0 ? atoi(u) : 1;
    }
  }
  closedir(d);
  return n;
}

static int supervisor_main(const char *self_exe, int script_fd) {
  /* one probe at a time on a machine: runs share uids (RLIMIT_NPROC is per uid) and CPUs */
  int lk = open("/tmp/vhostsim-probe.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lk >= 0) {
    while (flock(lk, LOCK_EX) < 0 && errno == EINTR) {
    }
  }
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  for (int i = 0; i < nprocs; i++)
    if (procs[i].has_uid && procs[i].uid != 0) {
      int n = tasks_of_uid(procs[i].uid);
      if (n) add_error("uid %ld already owns %d task(s) on this machine: RLIMIT_NPROC counts would differ", procs[i].uid, n);
    }
  signal(SIGPIPE, SIG_IGN);
  cgroup_detect();
  cgroup_setup();
  for (int i = 0; i < nprocs; i++) collect_created(&procs[i].prog);
  int shm_fd = memfd_create("vhostsim-probe-shm", 0);
  if (shm_fd < 0 || ftruncate(shm_fd, sizeof(struct shm)) < 0) die("memfd_create: %s", strerror(errno));
  shm = mmap(NULL, sizeof(struct shm), PROT_READ | PROT_WRITE, MAP_SHARED, shm_fd, 0);
  if (shm == MAP_FAILED) die("mmap: %s", strerror(errno));
  int shm_low = shm_fd;
  shm_fd = fcntl(shm_low, F_DUPFD, HIGH_FD);
  close(shm_low); /* else every actor inherits it at a low fd and its fd numbers skip one */
  int pfd[2];
  if (pipe(pfd) < 0) die("pipe: %s", strerror(errno));
  int wfd = fcntl(pfd[1], F_DUPFD, HIGH_FD + 1);
  close(pfd[1]);
  msg_fd = fcntl(pfd[0], F_DUPFD_CLOEXEC, HIGH_FD + 2);
  close(pfd[0]);
  char a_shm[16], a_script[16], a_msg[16], a_idx[16], a_mode[16], a_mount[600], a_home[600], a_base[700];
  char a_mount2[600], a_base2[700];
  snprintf(a_mount2, sizeof a_mount2, "%s", cg2_mount[0] ? cg2_mount : "-");
  snprintf(a_base2, sizeof a_base2, "%s", cg2_base[0] ? cg2_base : "-");
  snprintf(a_shm, sizeof a_shm, "%d", shm_fd);
  snprintf(a_script, sizeof a_script, "%d", script_fd);
  snprintf(a_msg, sizeof a_msg, "%d", wfd);
  snprintf(a_mode, sizeof a_mode, "%d", cg_mode);
  snprintf(a_mount, sizeof a_mount, "%s", cg_mount);
  snprintf(a_home, sizeof a_home, "%s", cg_home);
  snprintf(a_base, sizeof a_base, "%s", cg_base);
  for (int i = 0; i < nprocs; i++) {
    snprintf(a_idx, sizeof a_idx, "%d", i);
    pid_t pid = fork();
    if (pid < 0) die("fork: %s", strerror(errno));
    if (pid == 0) {
      char *argv[] = {(char *)procs[i].name, "--actor", a_idx, a_shm, a_script, a_msg, a_mode, a_mount, a_home, a_base, a_mount2, a_base2, NULL};
      execv(self_exe, argv);
      _exit(127);
    }
    shm->pid[i] = pid;
  }
  close(wfd);
  close(script_fd);
  long long deadline = now_ms() + timeout_ms;
  char acc[65536];
  size_t accn = 0;
  int ended_idle = 0;
  for (;;) {
    long long left = deadline - now_ms();
    if (left <= 0) break;
    struct pollfd pf = {msg_fd, POLLIN, 0};
    int r = poll(&pf, 1, left > 100 ? 100 : (int)left);
    reap();
    if (r <= 0) continue;
    ssize_t got = read(msg_fd, acc + accn, sizeof acc - 1 - accn);
    if (got < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (got == 0) {
      ended_idle = 1;
      break;
    }
    accn += (size_t)got;
    acc[accn] = 0;
    char *start = acc, *nl;
    while ((nl = memchr(start, '\n', accn - (size_t)(start - acc)))) {
      *nl = 0;
      handle(start);
      start = nl + 1;
    }
    accn -= (size_t)(start - acc);
    memmove(acc, start, accn);
  }
  if (ended_idle) {
    /* every actor is gone: reap what is left (threads of exiting groups) */
    long long until = now_ms() + 1000;
    int st;
    while (now_ms() < until) {
      pid_t p = waitpid(-1, &st, WNOHANG | __WALL);
      if (p < 0 && errno == ECHILD) break;
      if (p > 0) note_exit(p, st);
      else sleep_ms(5);
    }
  }
  snapshot("end", 0);
  kill_descendants();
  cgroup_cleanup();
  remove_created();

  struct buf out = {0};
  struct utsname u;
  uname(&u);
  bprintf(&out, "{\"probe\":1,\"kernel\":");
  bjson(&out, u.release);
  bprintf(&out, ",\"supervisor\":{\"pid\":%d,\"ns\":", (int)getpid());
  ns_json(&out, "/proc/self");
  {
    char st[8192], cpus[256] = "";
    if (read_file("/proc/self/status", st, sizeof st) >= 0) status_field(st, "Cpus_allowed_list", cpus, sizeof cpus);
    bput(&out, "},\"cpus\":", 9);
    bjson(&out, cpus);
  }
  {
    char pm[32] = "";
    read_file("/proc/sys/kernel/pid_max", pm, sizeof pm);
    bprintf(&out, ",\"pidMax\":%ld", atol(pm) > 0 ? atol(pm) : 4194304L);
  }
  bprintf(&out, ",\"cgroup\":{\"mode\":\"%s\",\"mount\":", cg_mode == CG_V1 ? "v1" : cg_mode == CG_V2 ? "v2" : "none");
  bjson(&out, cg_mount);
  bput(&out, ",\"home\":", 8);
  bjson(&out, cg_home);
  bput(&out, ",\"base\":", 8);
  bjson(&out, cg_base);
  bput(&out, "},\"processes\":{", 15);
  for (int i = 0; i < nprocs; i++) {
    if (i) bput(&out, ",", 1);
    bjson(&out, procs[i].name);
    bprintf(&out, ":%d", shm->pid[i]);
  }
  bput(&out, "},\"steps\":[", 11);
  if (steps_json.n) bput(&out, steps_json.s, steps_json.n);
  bput(&out, "],\"labels\":{", 12);
  if (labels_json.n) bput(&out, labels_json.s, labels_json.n);
  bput(&out, "},\"labelOrder\":[", 16);
  if (order_json.n) bput(&out, order_json.s, order_json.n);
  bprintf(&out, "],\"ended\":\"%s\",\"errors\":[", ended_idle ? "idle" : "time-limit");
  if (errors_json.n) bput(&out, errors_json.s, errors_json.n);
  bput(&out, "],\"notes\":[", 11);
  if (notes_json.n) bput(&out, notes_json.s, notes_json.n);
  bput(&out, "]}\n", 3);
  fwrite(out.s, 1, out.n, stdout);
  fflush(stdout);
  return 0;
}

static char *read_all_fd(int fd) {
  struct buf b = {0};
  char tmp[8192];
  ssize_t n;
  while ((n = read(fd, tmp, sizeof tmp)) > 0) bput(&b, tmp, (size_t)n);
  if (!b.s) bput(&b, "", 0);
  return b.s;
}

int main(int argc, char **argv) {
  if (argc >= 12 && !strcmp(argv[1], "--actor")) {
    /* a scenario process, exec'd by the supervisor */
    int idx = atoi(argv[2]);
    int shm_fd = atoi(argv[3]), script_fd = atoi(argv[4]);
    msg_fd = atoi(argv[5]);
    actor_msg_fd = msg_fd;
    cg_mode = atoi(argv[6]);
    snprintf(cg_mount, sizeof cg_mount, "%s", argv[7]);
    snprintf(cg_home, sizeof cg_home, "%s", argv[8]);
    snprintf(cg_base, sizeof cg_base, "%s", argv[9]);
    if (strcmp(argv[10], "-")) snprintf(cg2_mount, sizeof cg2_mount, "%s", argv[10]);
    if (strcmp(argv[11], "-")) snprintf(cg2_base, sizeof cg2_base, "%s", argv[11]);
    shm = mmap(NULL, sizeof(struct shm), PROT_READ | PROT_WRITE, MAP_SHARED, shm_fd, 0);
    if (shm == MAP_FAILED) _exit(126);
    close(shm_fd);
    /* pread: every actor shares the memfd's file offset */
    struct buf sb = {0};
    char tmp[8192];
    ssize_t got;
    for (off_t off = 0; (got = pread(script_fd, tmp, sizeof tmp, off)) > 0; off += got) bput(&sb, tmp, (size_t)got);
    if (!sb.s) bput(&sb, "", 0);
    char *text = sb.s;
    close(script_fd);
    parse_script(text);
    if (idx < 0 || idx >= nprocs) _exit(126);
    return actor_main(idx);
  }
  if (argc != 2) {
    fprintf(stderr, "usage: probe <script-file|->\n");
    return 2;
  }
  if (geteuid() != 0) die("must run as root (it makes cgroups and changes uids)");
  /* the script, kept in a memfd the actors re-read after exec */
  int in = strcmp(argv[1], "-") ? open(argv[1], O_RDONLY | O_CLOEXEC) : 0;
  if (in < 0) die("%s: %s", argv[1], strerror(errno));
  char *text = read_all_fd(in);
  if (in) close(in);
  int sfd = memfd_create("vhostsim-probe-script", 0);
  if (sfd < 0) die("memfd_create: %s", strerror(errno));
  if (write(sfd, text, strlen(text)) < 0) die("write: %s", strerror(errno));
  int script_fd = fcntl(sfd, F_DUPFD, HIGH_FD + 3);
  close(sfd);
  char *copy = xstrdup(text);
  parse_script(copy);
  char exe[600];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n < 0) die("readlink /proc/self/exe: %s", strerror(errno));
  exe[n] = 0;
  return supervisor_main(exe, script_fd);
}
