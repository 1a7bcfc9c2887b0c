/**
 * One conformance run: a scenario on the model (the profile matching the target's kernel) and
 * on a real kernel (this host, or a Debian kernel under QEMU), compared row by row.
 *
 * A run that cannot happen here — a step the probe does not have, a device the machine lacks,
 * no gcc, no QEMU, not root — is `skipped` with the reason and has no rows: it is never a pass.
 */
import { findProfile } from '../profiles/eras.js';
import type { LoadedScenario } from '../scenario/load.js';
import { runScenario } from '../scenario/run.js';
import { compareObservations, type Row } from './compare.js';
import { buildProbe, hostKernel, runOnHost } from './host.js';
import { type Observation, observeModel, parseProbeOutput } from './observe.js';
import { runInDebianVm } from './qemu.js';
import { type CompiledScript, compileScript, type Need, type Unsupported } from './script.js';

export const TARGETS = ['host', 'debian-6.1', 'debian-6.12'] as const;
export type Target = (typeof TARGETS)[number];

/** The model profile each Debian kernel is compared with. */
const DEBIAN_PROFILE: Record<Exclude<Target, 'host'>, string> = {
  'debian-6.1': 'linux-6.1',
  'debian-6.12': 'linux-6.12',
};

/** What the Debian guests provide (TCG guests have no /dev/kvm; the initramfs loads vhost_net and vhost_vsock). */
const DEBIAN_PROVIDES: readonly Need[] = ['vhost-net', 'vhost-vsock'];

export interface ConformResult {
  scenario: string;
  file: string;
  target: Target;
  /** the model profile compared */
  profile: string;
  /** the real kernel's release, when it ran */
  kernel?: string;
  /** wall time of the real run */
  seconds?: number;
  /** why nothing was compared */
  skipped?: string;
  unsupported: Unsupported[];
  rows: Row[];
  /** the probe's errors (setup problems on the real side) */
  errors: string[];
  notes: string[];
}

export interface ConformOptions {
  /** override the model profile (default: the one matching the target's kernel) */
  profile?: string;
  /** a ready probe binary (default: buildProbe()) */
  probe?: string;
  /** the real observation's JSON instead of running the probe (tests) */
  realOutput?: string;
}

/** The model profile a target is compared with. */
export function targetProfile(target: Target): string {
  return target === 'host' ? hostKernel().profile : DEBIAN_PROFILE[target];
}

/** The model side: run the scenario on `profile` and observe it. */
export function modelObservation(sc: LoadedScenario, compiled: CompiledScript, profile: string): Observation {
  const run = runScenario(sc, profile, { trace: false });
  return observeModel(run, compiled, sc.doc.host?.cpus ?? 4);
}

/** Run `sc` on `target` and on the model, and compare. */
export function conformScenario(sc: LoadedScenario, target: Target, o: ConformOptions = {}): ConformResult {
  const profile = o.profile ?? targetProfile(target);
  const compiled = compileScript(sc);
  const base: ConformResult = {
    scenario: sc.doc.name,
    file: sc.file,
    target,
    profile,
    unsupported: [...compiled.unsupported],
    rows: [],
    errors: [],
    notes: [],
  };
  if (!findProfile(profile))
    return { ...base, skipped: `no model profile ${profile} for this kernel: nothing to compare with` };
  if (compiled.unsupported.length)
    return {
      ...base,
      skipped: `the probe cannot run ${compiled.unsupported.length} part(s) of this scenario: ${compiled.unsupported
        .map((u) => `${u.path} (${u.why})`)
        .join('; ')}`,
    };
  let stdout = o.realOutput;
  let seconds: number | undefined;
  if (stdout === undefined) {
    if (target !== 'host') {
      const missing = compiled.needs.filter((n) => !DEBIAN_PROVIDES.includes(n));
      if (missing.length)
        return {
          ...base,
          skipped: `the ${target} guest (QEMU TCG) has no ${missing.map((n) => `/dev/${n}`).join(', ')}`,
        };
    }
    let probe = o.probe;
    if (!probe) {
      const b = buildProbe();
      if (!b.ok) return { ...base, skipped: `cannot build the probe: ${b.skipped}` };
      probe = b.path;
    }
    if (target === 'host') {
      const r = runOnHost(probe, compiled);
      if (!r.ok) return { ...base, skipped: r.skipped };
      stdout = r.stdout;
      seconds = r.seconds;
    } else {
      const r = runInDebianVm(target, probe, compiled.text);
      if (!r.ok) return { ...base, skipped: r.skipped };
      stdout = r.stdout;
      seconds = r.seconds;
    }
  }
  const real = parseProbeOutput(stdout);
  const model = modelObservation(sc, compiled, profile);
  return {
    ...base,
    kernel: real.kernel,
    ...(seconds !== undefined ? { seconds } : {}),
    rows: compareObservations(model, real, compiled),
    errors: [...model.errors.map((e) => `model: ${e}`), ...real.errors.map((e) => `real: ${e}`)],
    notes: real.notes,
  };
}
