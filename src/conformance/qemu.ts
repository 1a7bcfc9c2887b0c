/**
 * The real-kernel half of the conformance suite (DESIGN.md "Conformance", real-kernels.md):
 * boots a Debian kernel under QEMU (TCG) with a busybox initramfs that loads the vhost modules,
 * runs a static probe against /dev/vhost-net there, and returns what the probe printed.
 *
 * What it does, in order:
 *
 *  1. Finds the kernel: the newest cached one of the series, else the newest that `apt-cache`
 *     knows (`linux-image-6.1.0-<n>-amd64`: kthread workers; the bookworm-security
 *     `linux-image-6.12.<n>+deb12-amd64`: vhost_task workers), fetched with `apt-get download`.
 *     `conformance/setup.sh` pre-downloads both and so decides which one is newest.
 *  2. Unpacks it once with `dpkg-deb -x` and keeps only what a boot needs — `vmlinuz`, the
 *     ELF `vmlinux` inside it (see {@link extractVmlinux}: booting it skips the decompressor,
 *     ~3 s of a 6.1 boot under TCG), the module chains of vhost_net (vhost_iotlb, vhost, tun,
 *     tap, vhost_net; required) and vhost_vsock (vsock, vmw_vsock_virtio_transport_common,
 *     vhost_vsock; if present), decompressed (`xz -dc` for 6.12's .ko.xz) and ordered by
 *     their modinfo `depends=` — in `<cache>/unpacked-v1/<package>/`. The cache is
 *     `$VHOSTSIM_CACHE_DIR`, else `~/.cache/vhostsim` (the .deb files stay in `<cache>/debs/`).
 *     Each process resolves a kernel once: later calls reuse it, or its skip reason.
 *  3. Writes a cpio newc archive (in TypeScript: it needs a /dev/console node, which the
 *     `cpio` command could only copy from a real one) gzipped with node's zlib, holding
 *     /bin/busybox (static) and its applet links, /lib/modules/<name>.ko, /probe, /script and
 *     /init.
 *  4. Boots `qemu-system-x86_64 -accel tcg -cpu max -m 512 -smp 2 -no-reboot -kernel <vmlinux
 *     or vmlinuz> -initrd … -append "console=ttyS0 panic=-1 quiet loglevel=3"` (timeout 60 s),
 *     the kernel console on ttyS0 (a file, kept for diagnostics) and the probe's channel on
 *     ttyS1 (another file), so kernel messages can never interleave with the probe's output.
 *     Measured here: ~2.2–2.6 s per boot + probe for either kernel (3–5 s with the bzImage).
 *
 * The guest, as /init leaves it for the probe:
 *
 *  - proc at /proc, sysfs at /sys, devtmpfs at /dev, cgroup2 at /sys/fs/cgroup with `+pids`
 *    in the root's cgroup.subtree_control and an empty child cgroup /sys/fs/cgroup/probe (so
 *    it has pids.max / pids.current); the probe itself runs in the root cgroup, as pid > 1,
 *    uid 0, and may move itself (`echo 0 > /sys/fs/cgroup/probe/cgroup.procs`). The path is
 *    also in the environment as VHOSTSIM_CGROUP (unset when cgroup2 or pids is unavailable).
 *  - /dev/vhost-net (and /dev/vhost-vsock where the modules loaded), /dev/net/tun.
 *  - The probe is run as `/probe /script` with stdout on ttyS1 (a tty: line-buffered, and
 *    its "\n" arrive as "\r\n", which this runner turns back into "\n"); stderr goes to the
 *    kernel console, shown in the error when a boot fails.
 *
 * Missing prerequisites (no qemu-system-x86_64, no static busybox, no xz, no package, a
 * failed download) are values: `{ ok: false, skipped: reason }`. A boot that goes wrong
 * (timeout, no end marker) throws, with the tail of the console: that is a failure, not a
 * skip. So does a probe that is missing or not statically linked (a caller's bug).
 *
 * @example
 *   const r = runInDebianVm('debian-6.12', '/tmp/probe', 'open /dev/vhost-net\nset-owner\n');
 *   if (!r.ok) console.log(`skipped: ${r.skipped}`);
 *   else console.log(JSON.parse(r.stdout), `${r.seconds} s`);
 */
import { spawnSync } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';

/** The kernels the suite can boot. */
export type DebianKernel = 'debian-6.1' | 'debian-6.12';

/** What the probe printed between the markers, or why nothing was run. */
export type VmRunResult =
  | {
      ok: true;
      /** The probe's stdout, "\r\n" turned back into "\n". */
      stdout: string;
      /** Wall time of the QEMU process (boot + insmods + probe + poweroff), in seconds. */
      seconds: number;
      /** The Debian package booted, e.g. "linux-image-6.12.117+deb12-amd64". */
      kernelPackage: string;
      /** Its `uname -r`, e.g. "6.12.117+deb12-amd64". */
      kernelRelease: string;
      /** The probe's exit status, as /init saw it. */
      probeExitCode: number;
      /** Each module /init loaded, in order, and whether insmod succeeded. */
      modules: { name: string; loaded: boolean }[];
    }
  | { ok: false; skipped: string };

/** Marker lines around the probe's stdout on ttyS1. */
export const PROBE_BEGIN_MARKER = '=====VHOSTSIM-PROBE-BEGIN=====';
export const PROBE_END_MARKER = '=====VHOSTSIM-PROBE-END=====';

const QEMU = 'qemu-system-x86_64';
const BOOT_TIMEOUT_MS = 60_000;
const DOWNLOAD_TIMEOUT_MS = 300_000;
/** Bump when the layout of an unpacked kernel changes, so old caches are not reused. */
const UNPACKED_LAYOUT = 'unpacked-v1';

/** The module chains /init loads: required ones must resolve, optional ones are dropped whole. */
const REQUIRED_MODULES = ['vhost_net'];
const OPTIONAL_MODULES = ['vhost_vsock'];

/** Busybox applets linked into /bin. */
const BUSYBOX_APPLETS = ['sh', 'mount', 'insmod', 'poweroff', 'mkdir', 'cat', 'echo', 'ls', 'ps', 'sleep'];

/** Package-name patterns of each series; group 1 is the number that orders them. */
const SERIES: Record<DebianKernel, { pattern: RegExp; search: string; example: string }> = {
  'debian-6.1': {
    pattern: /^linux-image-6\.1\.0-(\d+)-amd64$/,
    search: '^linux-image-6\\.1\\.0-[0-9]+-amd64$',
    example: 'linux-image-6.1.0-<n>-amd64',
  },
  'debian-6.12': {
    pattern: /^linux-image-6\.12\.(\d+)\+deb\d+-amd64$/,
    search: '^linux-image-6\\.12\\.[0-9]+\\+deb[0-9]+-amd64$',
    example: 'linux-image-6.12.<n>+deb12-amd64',
  },
};

/** Thrown inside this module for a missing prerequisite; becomes `{ ok: false, skipped }`. */
class Skip extends Error {}

/**
 * Boots `kernel` under QEMU TCG with `probeStaticBinary` at /probe and `script` at /script,
 * runs `/probe /script` after loading the vhost modules, and returns its stdout.
 * Synchronous; one boot takes a few seconds (plus a download and unpack the first time).
 */
export function runInDebianVm(kernel: DebianKernel, probeStaticBinary: string, script: string): VmRunResult {
  if (!existsSync(probeStaticBinary)) throw new Error(`runInDebianVm: no probe at ${probeStaticBinary}`);
  if (!isStaticElf(probeStaticBinary)) {
    throw new Error(`runInDebianVm: ${probeStaticBinary} is not a statically linked ELF (use gcc -static)`);
  }
  const host = memo('host', () => {
    requireCommand(QEMU, ['--version'], 'apt-get install qemu-system-x86');
    return findStaticBusybox();
  });
  if (host instanceof Skip) return { ok: false, skipped: host.message };
  const unpacked = memo(kernel, () => prepareDebianKernel(kernel));
  if (unpacked instanceof Skip) return { ok: false, skipped: unpacked.message };
  // A TCG guest on a loaded 2-core machine occasionally dies in early boot (seen once): boot a
  // second time before calling it a failure; a second failure is reported with both reasons.
  let first: unknown = null;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      return bootOnce(unpacked, host, probeStaticBinary, script);
    } catch (e) {
      if (e instanceof Skip) return { ok: false, skipped: e.message };
      if (first) throw new Error(`${(e as Error).message}\n(first attempt: ${(first as Error).message})`);
      first = e;
    }
  }
  throw first;
}

/**
 * What this process already found out: the host checks and each kernel, or why they are
 * missing — so a suite of many boots downloads, unpacks or fails to download once.
 */
const found = new Map<string, unknown>();

function memo<T>(key: string, compute: () => T): T | Skip {
  if (!found.has(key)) {
    try {
      found.set(key, compute());
    } catch (e) {
      if (!(e instanceof Skip)) throw e;
      found.set(key, e);
    }
  }
  return found.get(key) as T | Skip;
}

/** A kernel unpacked into the cache: what one boot needs. */
export type UnpackedKernel = {
  dir: string;
  kernelPackage: string;
  release: string;
  /** `<dir>/vmlinux` (ELF, booted through PVH) when it could be extracted, else `<dir>/vmlinuz`. */
  kernelImage: string;
  /** Module names in load order; each is `<dir>/modules/<name>.ko`. */
  modules: string[];
};

/**
 * Returns the cached, unpacked kernel of the series, downloading and unpacking it first if
 * needed; throws `Skip` when it cannot.
 */
function prepareDebianKernel(kernel: DebianKernel): UnpackedKernel {
  const cached = newestCached(kernel);
  if (cached?.unpacked) return loadUnpacked(cached.unpacked, cached.pkg);
  let pkg: string;
  let deb: string;
  if (cached?.deb) {
    pkg = cached.pkg;
    deb = cached.deb;
  } else {
    pkg = resolveWithApt(kernel);
    deb = downloadDeb(pkg);
  }
  return loadUnpacked(unpackDeb(pkg, deb), pkg);
}

/**
 * Makes sure the kernel is downloaded and unpacked in the cache; a reason string when it could
 * not be, undefined when it is there. For scripts that want to warm the cache.
 */
export function prepareKernelForCache(kernel: DebianKernel): string | undefined {
  const unpacked = memo(kernel, () => prepareDebianKernel(kernel));
  return unpacked instanceof Skip ? unpacked.message : undefined;
}

/** `$VHOSTSIM_CACHE_DIR`, else `~/.cache/vhostsim`, else `<tmpdir>/vhostsim-cache`. */
export function vhostsimCacheDir(): string {
  const fromEnv = process.env.VHOSTSIM_CACHE_DIR;
  if (fromEnv) return fromEnv;
  const home = homedir();
  return home ? join(home, '.cache', 'vhostsim') : join(tmpdir(), 'vhostsim-cache');
}

// ---------------------------------------------------------------------------------------------
// Finding and caching the kernel package

function debsDir(): string {
  return join(vhostsimCacheDir(), 'debs');
}

function unpackedRoot(): string {
  return join(vhostsimCacheDir(), UNPACKED_LAYOUT);
}

function seriesNumber(kernel: DebianKernel, pkg: string): number | undefined {
  const m = SERIES[kernel].pattern.exec(pkg);
  return m ? Number(m[1]) : undefined;
}

/** The newest package of the series already in the cache, unpacked or as a .deb. */
function newestCached(kernel: DebianKernel): { pkg: string; unpacked?: string; deb?: string } | undefined {
  let best: { pkg: string; n: number; unpacked?: string; deb?: string } | undefined;
  const consider = (pkg: string, where: { unpacked?: string; deb?: string }) => {
    const n = seriesNumber(kernel, pkg);
    if (n === undefined) return;
    if (!best || n > best.n) best = { pkg, n };
    if (best.pkg === pkg) Object.assign(best, where);
  };
  for (const name of listDir(unpackedRoot())) {
    const dir = join(unpackedRoot(), name);
    if (existsSync(join(dir, 'release'))) consider(name, { unpacked: dir });
  }
  for (const name of listDir(debsDir())) {
    if (name.endsWith('.deb')) consider(name.slice(0, name.indexOf('_')), { deb: join(debsDir(), name) });
  }
  return best && { pkg: best.pkg, unpacked: best.unpacked, deb: best.deb };
}

/** The newest package name of the series in apt's lists. */
function resolveWithApt(kernel: DebianKernel): string {
  const { search, example } = SERIES[kernel];
  const r = spawnSync('apt-cache', ['search', '--names-only', search], { encoding: 'utf8' });
  if (r.error) throw new Skip(`no ${example} cached and apt-cache is not available (${r.error.message})`);
  const names = r.stdout
    .split('\n')
    .map((line) => line.split(' - ')[0]!.trim())
    .filter((name) => seriesNumber(kernel, name) !== undefined)
    .sort((a, b) => seriesNumber(kernel, b)! - seriesNumber(kernel, a)!);
  if (names.length === 0) {
    throw new Skip(`apt-cache knows no ${example} (run conformance/setup.sh, or apt-get update)`);
  }
  return names[0]!;
}

/** `apt-get download <pkg>` into the cache; the path of the .deb. */
function downloadDeb(pkg: string): string {
  mkdirSync(debsDir(), { recursive: true });
  const tmp = mkdtempSync(join(debsDir(), '.download-'));
  try {
    // Fail fast without a network rather than retry for minutes.
    const args = ['download', '-q', '-o', 'Acquire::Retries=0', '-o', 'Acquire::http::Timeout=20'];
    // As root, apt drops to _apt, which cannot write into a 0700 temp dir: it warns and then
    // downloads unsandboxed anyway; say so up front instead.
    if (process.getuid?.() === 0) args.push('-o', 'APT::Sandbox::User=root');
    args.push(pkg);
    const r = spawnSync('apt-get', args, { cwd: tmp, encoding: 'utf8', timeout: DOWNLOAD_TIMEOUT_MS });
    if (r.error) throw new Skip(`apt-get download ${pkg} failed: ${r.error.message}`);
    const debs = listDir(tmp).filter((f) => f.endsWith('.deb'));
    if (r.status !== 0 || debs.length !== 1) {
      throw new Skip(
        `apt-get download ${pkg} failed: ${oneLine(`${r.stdout}\n${r.stderr}`, 3) || `exit ${r.status}`}`,
      );
    }
    const target = join(debsDir(), debs[0]!);
    renameSync(join(tmp, debs[0]!), target);
    return target;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * `dpkg-deb -x` into a scratch dir, then keeps vmlinuz and the decompressed module chains in
 * `<cache>/unpacked-v1/<pkg>/` (renamed into place, so concurrent runs never see half a dir).
 */
function unpackDeb(pkg: string, deb: string): string {
  const finalDir = join(unpackedRoot(), pkg);
  mkdirSync(unpackedRoot(), { recursive: true });
  const tmp = mkdtempSync(join(unpackedRoot(), '.unpack-'));
  try {
    const tree = join(tmp, 'tree');
    const x = spawnSync('dpkg-deb', ['-x', deb, tree], { encoding: 'utf8' });
    if (x.error) throw new Skip(`dpkg-deb is not available (${x.error.message})`);
    if (x.status !== 0) throw new Skip(`dpkg-deb -x ${deb} failed: ${oneLine(x.stderr, 3)}`);

    const releases = listDir(join(tree, 'lib', 'modules'));
    if (releases.length !== 1)
      throw new Skip(`${deb}: expected one lib/modules/<release>, found ${releases}`);
    const release = releases[0]!;
    const vmlinuz = join(tree, 'boot', `vmlinuz-${release}`);
    if (!existsSync(vmlinuz)) throw new Skip(`${deb}: no boot/vmlinuz-${release}`);

    const index = indexModules(join(tree, 'lib', 'modules', release, 'kernel'));
    const out = join(tmp, 'out');
    mkdirSync(join(out, 'modules'), { recursive: true });
    const order: string[] = [];
    const contents = new Map<string, Buffer>();
    for (const root of [...REQUIRED_MODULES, ...OPTIONAL_MODULES]) {
      const chain = resolveModuleChain(root, index, contents);
      if (typeof chain === 'string') {
        if (REQUIRED_MODULES.includes(root)) throw new Skip(`${pkg}: ${chain}`);
        continue;
      }
      for (const m of chain) if (!order.includes(m)) order.push(m);
    }
    for (const m of order) writeFileSync(join(out, 'modules', `${m}.ko`), contents.get(m)!);
    copyFileSync(vmlinuz, join(out, 'vmlinuz'));
    const config = readIfExists(join(tree, 'boot', `config-${release}`));
    const vmlinux = /^CONFIG_PVH=y$/m.test(config) ? extractVmlinux(readFileSync(vmlinuz)) : undefined;
    if (vmlinux) writeFileSync(join(out, 'vmlinux'), vmlinux);
    writeFileSync(join(out, 'modules.load'), `${order.join('\n')}\n`);
    writeFileSync(join(out, 'release'), `${release}\n`);
    try {
      renameSync(out, finalDir);
    } catch (e) {
      // Another run unpacked the same package first: use theirs.
      if (!existsSync(join(finalDir, 'release'))) throw e;
    }
    return finalDir;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function loadUnpacked(dir: string, kernelPackage: string): UnpackedKernel {
  const release = readFileSync(join(dir, 'release'), 'utf8').trim();
  const modules = readFileSync(join(dir, 'modules.load'), 'utf8').split('\n').filter(Boolean);
  const vmlinux = join(dir, 'vmlinux');
  const kernelImage = existsSync(vmlinux) ? vmlinux : join(dir, 'vmlinuz');
  return { dir, kernelPackage, release, kernelImage, modules };
}

/**
 * The uncompressed ELF vmlinux inside a bzImage, or undefined if it cannot be had. QEMU boots
 * an ELF vmlinux through its PVH entry point (CONFIG_PVH) with the same kernel code, skipping
 * the decompressor, which under TCG is slow: 6.1's XZ payload takes ~3 s to unpack, so a 6.1
 * boot drops from ~5.2 s to ~2.3 s, and 6.12's (ZSTD) from ~3.2 s to ~2.6 s.
 *
 * The x86 boot protocol (Documentation/arch/x86/boot.rst) puts the payload at
 * (setup_sects + 1) * 512 + payload_offset, payload_length bytes long; it ends with the
 * uncompressed size as 4 little-endian bytes (gzip's ISIZE trailer; appended by size_append
 * for xz and zstd, whose tools must not see those 4 bytes).
 */
export function extractVmlinux(bzImage: Buffer): Buffer | undefined {
  if (bzImage.length < 0x250 || bzImage.toString('latin1', 0x202, 0x206) !== 'HdrS') return undefined;
  if (bzImage.readUInt16LE(0x206) < 0x208) return undefined;
  const setupSects = bzImage[0x1f1] || 4;
  const start = (setupSects + 1) * 512 + bzImage.readUInt32LE(0x248);
  const length = bzImage.readUInt32LE(0x24c);
  if (length < 8 || start + length > bzImage.length) return undefined;
  const payload = bzImage.subarray(start, start + length);
  const size = payload.readUInt32LE(length - 4);
  const withoutSize = payload.subarray(0, length - 4);
  const viaTool = (cmd: string) => {
    const r = spawnSync(cmd, ['-dc'], { input: withoutSize, maxBuffer: 1024 * 1024 * 1024 });
    return r.error || r.status !== 0 ? undefined : r.stdout;
  };
  let elf: Buffer | undefined;
  if (payload[0] === 0x1f && payload[1] === 0x8b) elf = gunzipSync(payload);
  else if (payload.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])))
    elf = viaTool('xz');
  else if (payload.readUInt32LE(0) === 0xfd2fb528) elf = viaTool('zstd');
  if (!elf || elf.length !== size || elf.readUInt32BE(0) !== 0x7f454c46) return undefined;
  return elf;
}

/** Module name (underscores, as modinfo spells it) → path under lib/modules/<release>/kernel. */
function indexModules(root: string): Map<string, string> {
  const index = new Map<string, string>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else {
        const m = /^(.*)\.ko(\.xz|\.zst|\.gz)?$/.exec(entry.name);
        if (m) index.set(m[1]!.replaceAll('-', '_'), path);
      }
    }
  };
  walk(root);
  return index;
}

/**
 * `root` and its modinfo dependencies, dependencies first (what modprobe would insmod), with
 * each module's decompressed bytes put in `contents`; a reason string if one is missing.
 */
function resolveModuleChain(
  root: string,
  index: Map<string, string>,
  contents: Map<string, Buffer>,
): string[] | string {
  const order: string[] = [];
  const visit = (name: string, from: string[]): string | undefined => {
    if (order.includes(name)) return undefined;
    if (from.includes(name)) return `module dependency cycle ${[...from, name].join(' -> ')}`;
    const path = index.get(name);
    if (!path) return `module ${name} (needed by ${[...from, name].join(' -> ')}) is not in the package`;
    let bytes = contents.get(name);
    if (!bytes) {
      bytes = readModule(path);
      contents.set(name, bytes);
    }
    for (const dep of modinfoDepends(bytes)) {
      const why = visit(dep, [...from, name]);
      if (why) return why;
    }
    order.push(name);
    return undefined;
  };
  const why = visit(root, []);
  return why ?? order;
}

/** A module file's bytes, decompressed (`xz -dc` for .ko.xz, as Debian ships 6.12's). */
function readModule(path: string): Buffer {
  if (path.endsWith('.ko')) return readFileSync(path);
  if (!path.endsWith('.ko.xz')) throw new Skip(`cannot decompress ${path} (only .ko and .ko.xz are handled)`);
  const r = spawnSync('xz', ['-dc', path], { maxBuffer: 256 * 1024 * 1024 });
  if (r.error) throw new Skip(`xz is not available to decompress ${path} (apt-get install xz-utils)`);
  if (r.status !== 0) throw new Skip(`xz -dc ${path} failed: ${oneLine(r.stderr.toString(), 2)}`);
  return r.stdout;
}

/** The `depends=` entry of a module's .modinfo section (NUL-separated key=value strings). */
export function modinfoDepends(ko: Uint8Array): string[] {
  const bytes = Buffer.from(ko.buffer, ko.byteOffset, ko.byteLength);
  let at = bytes.indexOf('\0depends=');
  if (at < 0) return [];
  at += '\0depends='.length;
  const end = bytes.indexOf(0, at);
  const value = bytes.toString('latin1', at, end < 0 ? bytes.length : end);
  return value
    .split(',')
    .map((d) => d.trim().replaceAll('-', '_'))
    .filter(Boolean);
}

// ---------------------------------------------------------------------------------------------
// Host prerequisites

function requireCommand(cmd: string, args: string[], hint: string): void {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  if (r.error) throw new Skip(`${cmd} not found (${hint})`);
}

/** The static busybox of busybox-static (a dynamic one cannot run in the initramfs). */
function findStaticBusybox(): string {
  for (const path of ['/bin/busybox', '/usr/bin/busybox', '/usr/lib/busybox/busybox-static']) {
    if (existsSync(path) && isStaticElf(path)) return path;
  }
  throw new Skip('no statically linked busybox (apt-get install busybox-static)');
}

/** True if `path` is an ELF64 file with no PT_INTERP program header, i.e. needs no ld.so. */
export function isStaticElf(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const header = Buffer.alloc(64);
    if (readSync(fd, header, 0, 64, 0) < 64) return false;
    if (header.readUInt32BE(0) !== 0x7f454c46 || header[4] !== 2 || header[5] !== 1) return false;
    const phoff = Number(header.readBigUInt64LE(0x20));
    const phentsize = header.readUInt16LE(0x36);
    const phnum = header.readUInt16LE(0x38);
    const table = Buffer.alloc(phentsize * phnum);
    readSync(fd, table, 0, table.length, phoff);
    const PT_INTERP = 3;
    for (let i = 0; i < phnum; i++) if (table.readUInt32LE(i * phentsize) === PT_INTERP) return false;
    return true;
  } finally {
    closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------
// The initramfs

/** One entry of a cpio archive. */
type CpioEntry =
  | { kind: 'dir'; name: string; mode?: number }
  | { kind: 'file'; name: string; data: Uint8Array; mode?: number }
  | { kind: 'symlink'; name: string; target: string }
  | { kind: 'chardev'; name: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

/**
 * A cpio archive in the "newc" format the kernel's initramfs unpacker reads
 * (Documentation/driver-api/early-userspace/buffer-format.rst): per entry a 110-byte ASCII
 * header ("070701" and 13 eight-digit hex fields), the NUL-terminated name padded to 4 bytes,
 * the data padded to 4 bytes; closed by "TRAILER!!!". Owner root, mtime 0.
 */
export function cpioNewc(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  const pad4 = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);
  const push = (name: string, mode: number, data: Uint8Array, ino: number, nlink: number, rdev = [0, 0]) => {
    const fields = [
      ino,
      mode,
      0,
      0,
      nlink,
      0,
      data.length,
      0,
      0,
      rdev[0]!,
      rdev[1]!,
      Buffer.byteLength(name) + 1,
      0,
    ];
    const header = `070701${fields.map((f) => f.toString(16).padStart(8, '0')).join('')}`;
    const head = Buffer.from(`${header}${name}\0`, 'latin1');
    parts.push(head, pad4(head.length), Buffer.from(data), pad4(data.length));
  };
  let ino = 1;
  for (const e of entries) {
    const name = e.name.replace(/^\/+/, '');
    switch (e.kind) {
      case 'dir':
        push(name, S_IFDIR | (e.mode ?? 0o755), new Uint8Array(0), ino++, 2);
        break;
      case 'file':
        push(name, S_IFREG | (e.mode ?? 0o644), e.data, ino++, 1);
        break;
      case 'symlink':
        push(name, S_IFLNK | 0o777, Buffer.from(e.target), ino++, 1);
        break;
      case 'chardev':
        push(name, S_IFCHR | (e.mode ?? 0o600), new Uint8Array(0), ino++, 1, [e.major, e.minor]);
        break;
    }
  }
  push('TRAILER!!!', 0, new Uint8Array(0), 0, 1);
  return Buffer.concat(parts);
}

/** /init: mounts, a pids-enabled cgroup, the insmod chain, the probe between markers, poweroff. */
function initScript(modules: string[]): string {
  return `#!/bin/sh
# Written by vhostsim src/conformance/qemu.ts. ttyS0: kernel console; ttyS1: the runner's channel.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec 3>/dev/ttyS1
mkdir -p /sys/fs/cgroup
if mount -t cgroup2 cgroup2 /sys/fs/cgroup && echo +pids > /sys/fs/cgroup/cgroup.subtree_control \\
    && mkdir /sys/fs/cgroup/probe; then
  export VHOSTSIM_CGROUP=/sys/fs/cgroup/probe
fi
for m in ${modules.join(' ')}; do
  insmod /lib/modules/$m.ko
  echo "vhostsim-insmod $m $?" >&3
done
echo "${PROBE_BEGIN_MARKER}" >&3
/probe /script >&3 3>&-
echo "${PROBE_END_MARKER} $?" >&3
# Closing the tty waits until the UART has sent everything (tty_port_close_start).
exec 3>&-
poweroff -f
`;
}

function buildInitramfs(kernel: UnpackedKernel, busybox: string, probe: string, script: string): Buffer {
  const entries: CpioEntry[] = [];
  for (const dir of ['bin', 'dev', 'proc', 'sys', 'tmp', 'lib', 'lib/modules'])
    entries.push({ kind: 'dir', name: dir });
  entries.push({ kind: 'chardev', name: 'dev/console', major: 5, minor: 1 });
  entries.push({ kind: 'file', name: 'bin/busybox', data: readFileSync(busybox), mode: 0o755 });
  for (const applet of BUSYBOX_APPLETS)
    entries.push({ kind: 'symlink', name: `bin/${applet}`, target: 'busybox' });
  for (const m of kernel.modules) {
    entries.push({
      kind: 'file',
      name: `lib/modules/${m}.ko`,
      data: readFileSync(join(kernel.dir, 'modules', `${m}.ko`)),
    });
  }
  entries.push({ kind: 'file', name: 'probe', data: readFileSync(probe), mode: 0o755 });
  entries.push({ kind: 'file', name: 'script', data: Buffer.from(script) });
  entries.push({ kind: 'file', name: 'init', data: Buffer.from(initScript(kernel.modules)), mode: 0o755 });
  return gzipSync(cpioNewc(entries), { level: 1 });
}

// ---------------------------------------------------------------------------------------------
// The boot

function bootOnce(kernel: UnpackedKernel, busybox: string, probe: string, script: string): VmRunResult {
  const work = mkdtempSync(join(tmpdir(), 'vhostsim-vm-'));
  try {
    const initrd = join(work, 'initramfs.cpio.gz');
    writeFileSync(initrd, buildInitramfs(kernel, busybox, probe, script));
    const consoleLog = join(work, 'ttyS0.log');
    const channelLog = join(work, 'ttyS1.log');
    const args = [
      ...['-accel', 'tcg', '-cpu', 'max', '-m', '512', '-smp', '2'],
      ...['-display', 'none', '-monitor', 'none', '-no-reboot'],
      ...['-serial', `file:${consoleLog}`, '-serial', `file:${channelLog}`],
      ...['-kernel', kernel.kernelImage, '-initrd', initrd],
      ...['-append', 'console=ttyS0 panic=-1 quiet loglevel=3'],
    ];
    const started = process.hrtime.bigint();
    const r = spawnSync(QEMU, args, {
      encoding: 'utf8',
      timeout: BOOT_TIMEOUT_MS,
      killSignal: 'SIGKILL',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const seconds = Math.round(Number(process.hrtime.bigint() - started) / 1e6) / 1e3;
    const consoleText = readIfExists(consoleLog);
    const channel = readIfExists(channelLog).replaceAll('\r\n', '\n');
    const what = `${kernel.kernelPackage} under ${QEMU}`;
    const diagnostics = () =>
      `\n--- qemu stderr ---\n${lastLines(r.stderr ?? '', 10)}\n--- console (ttyS0), last lines ---\n${lastLines(consoleText, 40)}\n--- channel (ttyS1), last lines ---\n${lastLines(channel, 20)}`;
    if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') throw new Skip(`${QEMU} not found`);
    if (r.error || r.signal) {
      throw new Error(
        `${what}: no poweroff within ${BOOT_TIMEOUT_MS / 1000} s (${r.error?.message ?? r.signal})${diagnostics()}`,
      );
    }
    const begin = channel.indexOf(`${PROBE_BEGIN_MARKER}\n`);
    const bodyStart = begin + PROBE_BEGIN_MARKER.length + 1;
    // /init prints the end marker on a line of its own, right after whatever the probe wrote
    // (which need not end with a newline).
    const endAt = begin < 0 ? -1 : channel.indexOf(`${PROBE_END_MARKER} `, bodyStart);
    const status = endAt < 0 ? undefined : /^ (\d+)\n/.exec(channel.slice(endAt + PROBE_END_MARKER.length));
    if (begin < 0 || !status) {
      throw new Error(`${what}: the probe's markers are missing (exit ${r.status})${diagnostics()}`);
    }
    const modules = [...channel.slice(0, begin).matchAll(/^vhostsim-insmod (\S+) (\d+)$/gm)].map((m) => ({
      name: m[1]!,
      loaded: m[2] === '0',
    }));
    return {
      ok: true,
      stdout: channel.slice(bodyStart, endAt),
      seconds,
      kernelPackage: kernel.kernelPackage,
      kernelRelease: kernel.release,
      probeExitCode: Number(status[1]),
      modules,
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Small helpers

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function readIfExists(path: string): string {
  try {
    return statSync(path).isFile() ? readFileSync(path, 'latin1') : '';
  } catch {
    return '';
  }
}

function lastLines(text: string, n: number): string {
  return text.trimEnd().split('\n').slice(-n).join('\n');
}

/** The last lines of a tool's output on one line, for a skip reason. */
function oneLine(text: string, n: number): string {
  return lastLines(text, n)
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join(' / ');
}
