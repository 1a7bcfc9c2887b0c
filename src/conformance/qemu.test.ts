/**
 * The VM runner against the two real kernels: each boot runs a tiny static probe (compiled here
 * from PROBE_C) that opens /dev/vhost-net, calls VHOST_SET_OWNER and reports where the worker
 * appeared — in the caller's thread group on 6.12 (vhost_task), as a separate kthread child of
 * kthreadd on 6.1. A missing prerequisite (gcc/libc.a, qemu, busybox-static, the kernel
 * package) skips the test with the reason; `conformance/setup.sh` installs them.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpioNewc, type DebianKernel, modinfoDepends, runInDebianVm } from './qemu.js';

/** Prints, as one JSON line: uname, the vhost-net node, VHOST_SET_OWNER, our threads, all processes. */
const PROBE_C = String.raw`
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#define VHOST_SET_OWNER 0xAF01 /* _IO(VHOST_VIRTIO = 0xAF, 0x01) */

static void jstr(const char *s) {
  putchar('"');
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') printf("\\%c", c);
    else if (c < 0x20 || c >= 0x7f) printf("\\u%04x", c);
    else putchar(c);
  }
  putchar('"');
}

/* The first line of a small file, without its newline; "" if unreadable. */
static void first_line(const char *path, char *buf, size_t n) {
  buf[0] = 0;
  FILE *f = fopen(path, "r");
  if (!f) return;
  if (fgets(buf, (int)n, f)) buf[strcspn(buf, "\n")] = 0;
  fclose(f);
}

static int ppid_of(const char *pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%s/status", pid);
  FILE *f = fopen(path, "r");
  int ppid = -1;
  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "PPid: %d", &ppid) == 1) break;
  fclose(f);
  return ppid;
}

static void list_dir(const char *dir, int with_ppid) {
  DIR *d = opendir(dir);
  struct dirent *e;
  int first = 1;
  char path[300], comm[64];
  putchar('[');
  while (d && (e = readdir(d))) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    snprintf(path, sizeof path, "%s/%s/comm", dir, e->d_name);
    first_line(path, comm, sizeof comm);
    printf("%s{\"id\":%s,\"comm\":", first ? "" : ",", e->d_name);
    jstr(comm);
    if (with_ppid) printf(",\"ppid\":%d", ppid_of(e->d_name));
    putchar('}');
    first = 0;
  }
  if (d) closedir(d);
  putchar(']');
}

int main(int argc, char **argv) {
  struct utsname u;
  struct stat st;
  char script[256];
  uname(&u);
  int exists = stat("/dev/vhost-net", &st) == 0 && S_ISCHR(st.st_mode);
  int fd = open("/dev/vhost-net", O_RDWR);
  int open_errno = fd < 0 ? errno : 0;
  int rc = -1, set_owner_errno = 0;
  if (fd >= 0 && (rc = ioctl(fd, VHOST_SET_OWNER)) < 0) set_owner_errno = errno;
  first_line(argc > 1 ? argv[1] : "/script", script, sizeof script);
  printf("{\"release\":");
  jstr(u.release);
  printf(",\"pid\":%d,\"vhostNetExists\":%s,\"openErrno\":%d,\"setOwner\":%d,\"setOwnerErrno\":%d,\"script\":",
         getpid(), exists ? "true" : "false", open_errno, rc, set_owner_errno);
  jstr(script);
  printf(",\"tasks\":");
  list_dir("/proc/self/task", 0);
  printf(",\"procs\":");
  list_dir("/proc", 1);
  printf("}\n");
  return 0;
}
`;

type ProbeReport = {
  release: string;
  pid: number;
  vhostNetExists: boolean;
  openErrno: number;
  setOwner: number;
  setOwnerErrno: number;
  script: string;
  tasks: { id: number; comm: string }[];
  procs: { id: number; comm: string; ppid: number }[];
};

const SCRIPT = 'vhostsim qemu.test script\n';
/** PPid of every kthread: kthreadd is pid 2. */
const KTHREADD = 2;

let scratch: string | undefined;
/** The compiled probe, or why there is none. */
let probe: { path: string } | { skipped: string };

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'vhostsim-qemu-test-'));
  writeFileSync(join(scratch, 'probe.c'), PROBE_C);
  const path = join(scratch, 'probe');
  const cc = spawnSync('gcc', ['-static', '-O1', '-o', path, join(scratch, 'probe.c')], { encoding: 'utf8' });
  if (cc.error) probe = { skipped: `gcc not found (apt-get install gcc libc6-dev): ${cc.error.message}` };
  else if (cc.status !== 0)
    probe = { skipped: `gcc -static failed (libc6-dev installed?): ${cc.stderr.trim()}` };
  else probe = { path };
});

afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** Boots `kernel` with the probe; skips the test (with the reason) when something is missing. */
function boot(kernel: DebianKernel, skip: (note: string) => never): ProbeReport {
  if ('skipped' in probe) skip(probe.skipped);
  const r = runInDebianVm(kernel, probe.path, SCRIPT);
  if (!r.ok) skip(r.skipped);
  console.log(`${kernel}: ${r.kernelPackage} booted and probed in ${r.seconds} s`);
  expect(r.probeExitCode).toBe(0);
  expect(r.modules.filter((m) => !m.loaded)).toEqual([]);
  expect(r.modules.map((m) => m.name)).toEqual(
    expect.arrayContaining(['vhost_iotlb', 'vhost', 'tun', 'tap', 'vhost_net']),
  );
  expect(r.seconds).toBeLessThan(60);
  return JSON.parse(r.stdout) as ProbeReport;
}

// First runs download (~180 MB) and unpack the kernels; later ones take a few seconds each.
const BOOT_TIMEOUT = 400_000;

describe('runInDebianVm', () => {
  it('debian-6.1: VHOST_SET_OWNER makes a kthread [vhost-<pid>], a child of kthreadd', {
    timeout: BOOT_TIMEOUT,
  }, (ctx) => {
    const p = boot('debian-6.1', ctx.skip);
    expect(p.release).toMatch(/^6\.1\.\d/);
    expect(p.script).toBe(SCRIPT.trim());
    expect(p.vhostNetExists).toBe(true);
    expect([p.openErrno, p.setOwner, p.setOwnerErrno]).toEqual([0, 0, 0]);
    const worker = `vhost-${p.pid}`;
    expect(p.tasks.map((t) => t.comm)).not.toContain(worker);
    expect(p.tasks).toHaveLength(1);
    expect(p.procs.filter((q) => q.comm === worker).map((q) => q.ppid)).toEqual([KTHREADD]);
  });

  it('debian-6.12: VHOST_SET_OWNER makes a vhost_task vhost-<pid> in the caller’s thread group', {
    timeout: BOOT_TIMEOUT,
  }, (ctx) => {
    const p = boot('debian-6.12', ctx.skip);
    expect(p.release).toMatch(/^6\.12\.\d/);
    expect(p.script).toBe(SCRIPT.trim());
    expect(p.vhostNetExists).toBe(true);
    expect([p.openErrno, p.setOwner, p.setOwnerErrno]).toEqual([0, 0, 0]);
    const worker = `vhost-${p.pid}`;
    expect(p.tasks.filter((t) => t.comm === worker)).toHaveLength(1);
    expect(p.tasks.find((t) => t.comm === worker)!.id).not.toBe(p.pid);
    expect(p.procs.filter((q) => q.comm === worker)).toEqual([]);
  });
});

describe('cpioNewc', () => {
  it('writes newc headers, 4-byte padding and the trailer', () => {
    const a = cpioNewc([
      { kind: 'dir', name: 'bin' },
      { kind: 'file', name: '/init', data: Buffer.from('ab'), mode: 0o755 },
      { kind: 'symlink', name: 'bin/sh', target: 'busybox' },
      { kind: 'chardev', name: 'dev/console', major: 5, minor: 1 },
    ]);
    const text = a.toString('latin1');
    expect(a.length % 4).toBe(0);
    expect(text.startsWith('070701')).toBe(true);
    // The file: mode 0100755, size 2, name "init" (5 bytes with NUL): header 110 + 5 -> pad to 116.
    const init = text.indexOf('init\0');
    const header = text.slice(init - 110, init);
    expect(header.slice(14, 22)).toBe((0o100755).toString(16).padStart(8, '0'));
    expect(header.slice(54, 62)).toBe('00000002');
    expect(text.slice(init - 110 + 116, init - 110 + 118)).toBe('ab');
    // The console: rdevmajor 5, rdevminor 1.
    const cons = text.indexOf('dev/console\0') - 110;
    expect(text.slice(cons + 78, cons + 94)).toBe('0000000500000001');
    expect(text).toContain('TRAILER!!!\0');
  });
});

describe('modinfoDepends', () => {
  it('reads the depends= entry of .modinfo, hyphens as underscores', () => {
    const ko = Buffer.from('\0\0license=GPL\0depends=vhost,tun,crc-t10dif\0intree=Y\0', 'latin1');
    expect(modinfoDepends(ko)).toEqual(['vhost', 'tun', 'crc_t10dif']);
    expect(modinfoDepends(Buffer.from('\0depends=\0', 'latin1'))).toEqual([]);
  });
});
