/**
 * The probe on this machine: build conformance/probe.c with the machine's gcc (statically, so
 * the same binary also runs in the Debian initramfs), cache it outside the repository, and run
 * a script against the host kernel.
 *
 * What can be missing is a value, never a pass: no gcc or no static libc → the build is
 * skipped with the reason; not root → skipped; a script that needs /dev/kvm (or a vhost
 * device) the host lacks → skipped, naming the device.
 *
 * @example
 *   const probe = buildProbe();
 *   if (probe.ok) {
 *     const r = runOnHost(probe.path, compiled);
 *     if (r.ok) console.log(r.stdout);
 *   }
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CompiledScript, Need } from './script.js';

/** gcc flags: static for the initramfs, pthreads for the scenario's threads */
export const PROBE_CFLAGS = ['-O2', '-Wall', '-static', '-pthread'] as const;

export type Available<T> = ({ ok: true } & T) | { ok: false; skipped: string };

/** conformance/probe.c of this checkout (src/conformance → ../../conformance; the same from dist/). */
export function probeSource(): string {
  return fileURLToPath(new URL('../../conformance/probe.c', import.meta.url));
}

/** Where built probes are cached: $VHOSTSIM_PROBE_CACHE, else <tmpdir>/vhostsim-probe. */
export function probeCacheDir(): string {
  return process.env.VHOSTSIM_PROBE_CACHE ?? join(tmpdir(), 'vhostsim-probe');
}

/**
 * Build the probe (once per content of probe.c and flags): `gcc -O2 -Wall -static -pthread`.
 * Compiler warnings fail the build: the probe must compile cleanly.
 */
export function buildProbe(): Available<{ path: string; built: boolean }> {
  const src = probeSource();
  if (!existsSync(src)) return { ok: false, skipped: `no probe source at ${src}` };
  const text = readFileSync(src);
  const key = createHash('sha256').update(text).update(PROBE_CFLAGS.join(' ')).digest('hex').slice(0, 16);
  const dir = join(probeCacheDir(), key);
  const bin = join(dir, 'probe');
  if (existsSync(bin)) return { ok: true, path: bin, built: false };
  mkdirSync(dir, { recursive: true });
  const tmp = `${bin}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const r = spawnSync('gcc', [...PROBE_CFLAGS, '-o', tmp, src], { encoding: 'utf8' });
  if (r.error) {
    if ((r.error as NodeJS.ErrnoException).code === 'ENOENT') return { ok: false, skipped: 'gcc not found' };
    throw r.error;
  }
  if (r.status !== 0) {
    rmSync(tmp, { force: true });
    if (/cannot find -lc|cannot find -lpthread/.test(r.stderr))
      return {
        ok: false,
        skipped: `no static C library for gcc -static (${r.stderr.trim().split('\n')[0]})`,
      };
    throw new Error(`building the probe failed:\n${r.stderr}`);
  }
  if (r.stderr.includes('warning:')) {
    rmSync(tmp, { force: true });
    throw new Error(`the probe compiled with warnings (fix them):\n${r.stderr}`);
  }
  chmodSync(tmp, 0o755);
  renameSync(tmp, bin);
  return { ok: true, path: bin, built: true };
}

/** The host kernel's release and the model profile that matches it ("6.18.44-…" → "linux-6.18"). */
export function hostKernel(): { release: string; profile: string } {
  const release = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  const m = /^(\d+)\.(\d+)/.exec(release);
  return { release, profile: m ? `linux-${m[1]}.${m[2]}` : `linux-${release}` };
}

const DEVICE: Record<Need, string> = {
  kvm: '/dev/kvm',
  'vhost-net': '/dev/vhost-net',
  'vhost-vsock': '/dev/vhost-vsock',
  'vhost-scsi': '/dev/vhost-scsi',
};

/** Why this host cannot run `compiled`, or undefined when it can. */
export function hostSkipReason(compiled: Pick<CompiledScript, 'needs'>): string | undefined {
  if (process.platform !== 'linux') return `the host is ${process.platform}, not Linux`;
  if (typeof process.geteuid === 'function' && process.geteuid() !== 0)
    return 'the probe needs root (it makes cgroups and changes uids)';
  for (const n of compiled.needs)
    if (!existsSync(DEVICE[n])) return `${DEVICE[n]} is missing on this host (the scenario needs it)`;
  return undefined;
}

/** Run the probe with `compiled`'s script on the host kernel. */
export function runOnHost(
  probe: string,
  compiled: Pick<CompiledScript, 'needs' | 'text'>,
): Available<{ stdout: string; seconds: number }> {
  const why = hostSkipReason(compiled);
  if (why) return { ok: false, skipped: why };
  const t0 = performance.now();
  const r = spawnSync(probe, ['-'], {
    input: compiled.text,
    encoding: 'utf8',
    timeout: 30_000,
    killSignal: 'SIGKILL',
    maxBuffer: 64 * 1024 * 1024,
  });
  const seconds = Math.round(performance.now() - t0) / 1000;
  if (r.error) throw new Error(`running the probe: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`the probe exited with ${r.status ?? r.signal}:\n${r.stderr}`);
  return { ok: true, stdout: r.stdout, seconds };
}
