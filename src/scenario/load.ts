/**
 * Load a scenario file: YAML (with positions) → zod validation → step validation → semantic
 * checks (profiles, ioctl names, fd aliases, labels, process names). Every problem becomes a
 * ScenarioIssue located at file:line:col; nothing is run on a file with an issue.
 */
import { readFileSync } from 'node:fs';
import { isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import type { z } from 'zod';
import { errnoFromName } from '../kernel/errno.js';
import { findProfile, PROFILES } from '../profiles/eras.js';
import { VHOST_IOCTLS } from '../vhost/uapi.js';
import { closest, describeValue, ScenarioError, type ScenarioIssue } from './errors.js';
import { IOCTL_ARGS } from './ioctl-args.js';
import { Expect, Scenario, type ScenarioDoc, STEP_NAMES, STEP_SCHEMAS, type StepName } from './schema.js';

export interface LoadedScenario {
  readonly file: string;
  readonly doc: ScenarioDoc;
  /** the parameters in effect (the file's `params` with the loader's overrides), if it has any */
  readonly params?: Readonly<Record<string, number>>;
}

/** A value that is a parameter reference: the whole scalar is `$NAME`. */
const PARAM_REF = /^\$([A-Za-z_]\w*)$/;

/**
 * Replace every `$NAME` scalar of the document by the parameter's value (the defaults of
 * `params`, then `overrides`); unknown names, in the file or among the overrides, are issues.
 * Returns the substituted document and the parameters in effect.
 */
function substituteParams(
  root: unknown,
  overrides: Readonly<Record<string, number>>,
  issues: ScenarioIssue[],
): { root: unknown; params: Record<string, number> } {
  const declared = (root as { params?: unknown } | null)?.params;
  const params: Record<string, number> = {};
  if (declared && typeof declared === 'object' && !Array.isArray(declared))
    for (const [name, v] of Object.entries(declared))
      if (Number.isInteger(v) && (v as number) >= 0) params[name] = v as number;
  const names = Object.keys(params);
  const expected = names.length
    ? `a parameter declared in "params" (${names.join(', ')})`
    : 'a parameter declared in "params" (this scenario declares none)';
  for (const [name, v] of Object.entries(overrides)) {
    if (!(name in params)) {
      const hint = closest(name, names);
      issues.push({
        code: 'unknown-parameter',
        path: names.length ? ['params'] : [],
        expected,
        found: `"${name}" (set from outside the file)`,
        ...(hint ? { hint: `did you mean "${hint}"?` } : {}),
      });
    } else params[name] = v;
  }
  const walk = (v: unknown, path: Path): unknown => {
    if (typeof v === 'string') {
      const m = PARAM_REF.exec(v);
      if (!m) return v;
      const value = params[m[1]!];
      if (value !== undefined) return value;
      const hint = closest(m[1]!, names);
      issues.push({
        code: 'unknown-parameter',
        path,
        expected,
        found: `"${v}"`,
        ...(hint ? { hint: `did you mean "$${hint}"?` } : {}),
      });
      return v;
    }
    if (Array.isArray(v)) return v.map((x, i) => walk(x, [...path, i]));
    if (v !== null && typeof v === 'object')
      return Object.fromEntries(
        Object.entries(v).map(([key, x]) => [
          key,
          key === 'params' && !path.length ? x : walk(x, [...path, key]),
        ]),
      );
    return v;
  };
  return { root: walk(root, []), params };
}

type Path = (string | number)[];

/** Resolve a path to the YAML node's position; `atKey` points at the key of the last segment. */
function locate(
  doc: ReturnType<typeof parseDocument>,
  lc: LineCounter,
  path: readonly (string | number)[],
  atKey: boolean,
) {
  let node: unknown = doc.contents;
  let pos: number | undefined = (node as Node | null)?.range?.[0];
  for (let i = 0; i < path.length; i++) {
    const seg = path[i]!;
    if (isMap(node)) {
      const pair = node.items.find(
        (p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg),
      );
      if (!pair) break;
      const last = i === path.length - 1;
      if (last && atKey && isScalar(pair.key)) {
        pos = pair.key.range?.[0] ?? pos;
        node = pair.key;
        break;
      }
      node = pair.value;
      pos = (pair.value as Node | null)?.range?.[0] ?? (isScalar(pair.key) ? pair.key.range?.[0] : pos);
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg];
      if (!item) break;
      node = item;
      pos = (item as Node).range?.[0] ?? pos;
    } else break;
  }
  return pos === undefined ? { line: 1, col: 1 } : lc.linePos(pos);
}

function valueAt(root: unknown, path: readonly (string | number)[]): unknown {
  let v: unknown = root;
  for (const p of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[p];
  }
  return v;
}

/** zod issues → scenario issues */
function fromZod(root: unknown, base: Path, error: z.ZodError): ScenarioIssue[] {
  const out: ScenarioIssue[] = [];
  for (const i of error.issues) {
    const path = [...base, ...(i.path as (string | number)[])];
    const found = valueAt(root, path);
    if (i.code === 'unrecognized_keys') {
      for (const key of i.keys) {
        const parent = valueAt(root, path) as Record<string, unknown> | undefined;
        const known = parent ? Object.keys(parent).filter((x) => !i.keys.includes(x)) : [];
        out.push({
          code: 'unknown-key',
          path: [...path, key],
          expected: known.length ? `one of the known keys` : 'a known key',
          found: `unknown key "${key}"`,
        });
      }
    } else if (i.code === 'invalid_type' && found === undefined) {
      out.push({
        code: 'missing-key',
        path,
        expected: `key "${String(path[path.length - 1])}" (${i.expected})`,
        found: 'nothing',
      });
    } else if (i.code === 'invalid_type') {
      out.push({ code: 'wrong-type', path, expected: i.expected, found: describeValue(found) });
    } else if (i.code === 'invalid_value') {
      const values = (i.values as unknown[]).map((v) => JSON.stringify(v));
      out.push({
        code: 'bad-value',
        path,
        expected: `one of ${values.join(', ')}`,
        found: describeValue(found),
      });
    } else if (i.code === 'invalid_union') {
      out.push({ code: 'wrong-type', path, expected: unionExpectation(i), found: describeValue(found) });
    } else {
      out.push({
        code: 'bad-value',
        path,
        expected: i.message.replace(/^Invalid input: expected /, '').replace(/^Too small: expected /, ''),
        found: describeValue(found),
      });
    }
  }
  return out;
}

function unionExpectation(i: z.core.$ZodIssue): string {
  const errs = (i as unknown as { errors?: z.core.$ZodIssue[][] }).errors ?? [];
  const names = new Set<string>();
  for (const branch of errs)
    for (const e of branch) {
      if (e.code === 'invalid_union') for (const n of unionExpectation(e).split(' or ')) names.add(n);
      else if (e.code === 'invalid_type') names.add(String(e.expected));
      else if (e.code === 'invalid_value')
        names.add((e.values as unknown[]).map((v) => JSON.stringify(v)).join(' or '));
      else if (e.message)
        names.add(e.message.replace(/^Invalid input: expected /, '').replace(/^Invalid string: /, ''));
    }
  return [...names].join(' or ') || 'a different value';
}

interface Ctx {
  issues: ScenarioIssue[];
  root: unknown;
  profiles: Set<string>;
  processes: Set<string>;
  labels: Map<string, Path>;
  labelUses: { label: string; path: Path }[];
}

/** Validate a program's steps; aliases are collected in `aliases` (shared with threads/loops of the process). */
function checkProgram(ctx: Ctx, steps: unknown, path: Path, aliases: Map<string, string>): void {
  if (!Array.isArray(steps)) return;
  steps.forEach((raw, i) => {
    const p: Path = [...path, i];
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      ctx.issues.push({
        code: 'wrong-type',
        path: p,
        expected: 'a step (a mapping with one action key)',
        found: describeValue(raw),
      });
      return;
    }
    const keys = Object.keys(raw).filter((k) => k !== 'expect');
    if (keys.length !== 1) {
      ctx.issues.push({
        code: keys.length ? 'unknown-step' : 'missing-key',
        path: p,
        expected: 'exactly one action key per step',
        found: keys.length ? `keys ${keys.join(', ')}` : 'no action key',
      });
      return;
    }
    const action = keys[0]!;
    if (!(STEP_NAMES as string[]).includes(action)) {
      const hint = closest(action, STEP_NAMES);
      ctx.issues.push({
        code: 'unknown-step',
        path: [...p, action],
        expected: `a step (${STEP_NAMES.join(', ')})`,
        found: `"${action}"`,
        ...(hint ? { hint: `did you mean "${hint}"?` } : {}),
      });
      return;
    }
    const body = (raw as Record<string, unknown>)[action];
    const r = STEP_SCHEMAS[action as StepName].safeParse(body);
    if (!r.success) {
      ctx.issues.push(...fromZod(ctx.root, [...p, action], r.error));
      return;
    }
    const expect = (raw as Record<string, unknown>).expect;
    if (expect !== undefined) checkExpect(ctx, expect, [...p, 'expect']);
    checkStep(ctx, action as StepName, r.data, [...p, action], aliases);
  });
}

function checkOutcome(ctx: Ctx, v: unknown, path: Path): void {
  if (v === 'ok' || (typeof v === 'string' && errnoFromName(v) !== undefined)) return;
  ctx.issues.push({
    code: 'bad-value',
    path,
    expected: '"ok" or an errno name such as EAGAIN',
    found: describeValue(v),
  });
}

function checkExpect(ctx: Ctx, v: unknown, path: Path): void {
  const r = Expect.safeParse(v);
  if (!r.success) {
    ctx.issues.push({
      code: 'wrong-type',
      path,
      expected: 'an outcome or a mapping of profile → outcome',
      found: describeValue(v),
    });
    return;
  }
  if (typeof v === 'string') {
    checkOutcome(ctx, v, path);
    return;
  }
  for (const [prof, out] of Object.entries(v as Record<string, unknown>)) {
    if (prof !== 'default') checkProfileRun(ctx, prof, [...path, prof]);
    checkOutcome(ctx, out, [...path, prof]);
  }
}

function checkProfileRun(ctx: Ctx, prof: string, path: Path): void {
  if (ctx.profiles.has(prof)) return;
  if (findProfile(prof)) {
    ctx.issues.push({
      code: 'profile-not-run',
      path,
      expected: `a profile listed in "profiles" (${[...ctx.profiles].join(', ')})`,
      found: `"${prof}", which this scenario does not run`,
    });
  } else {
    const hint = closest(
      prof,
      PROFILES.map((p) => p.name),
    );
    ctx.issues.push({
      code: 'unknown-profile',
      path,
      expected: 'a kernel profile',
      found: `"${prof}"`,
      ...(hint ? { hint: `did you mean "${hint}"?` } : {}),
    });
  }
}

function checkAlias(ctx: Ctx, fd: unknown, path: Path, aliases: Map<string, string>, kind?: string): void {
  if (typeof fd !== 'string') return;
  const k = aliases.get(fd);
  if (k === undefined) {
    const hint = closest(fd, [...aliases.keys()]);
    ctx.issues.push({
      code: 'unknown-alias',
      path,
      expected: aliases.size
        ? `an alias defined earlier (${[...aliases.keys()].join(', ')})`
        : 'an alias defined earlier with `as:`',
      found: `"${fd}"`,
      ...(hint ? { hint: `did you mean "${hint}"?` } : {}),
    });
  } else if (kind && k !== kind) {
    ctx.issues.push({ code: 'bad-value', path, expected: `a ${kind} alias`, found: `"${fd}", a ${k}` });
  }
}

function checkStep(
  ctx: Ctx,
  action: StepName,
  body: unknown,
  path: Path,
  aliases: Map<string, string>,
): void {
  const b = body as Record<string, unknown>;
  switch (action) {
    case 'open':
      aliases.set(String(b.as), 'fd');
      return;
    case 'vhost-net':
      aliases.set(String(b.as), 'vhost-net');
      return;
    case 'kvm':
      if (b.as) aliases.set(String(b.as), 'kvm');
      return;
    case 'kvm_run':
      checkAlias(ctx, b.vm, [...path, 'vm'], aliases, 'kvm');
      return;
    case 'eventfd':
      aliases.set(String(b.as), 'fd');
      return;
    case 'eventfd-write':
      checkAlias(ctx, b.fd, [...path, 'fd'], aliases);
      return;
    case 'dup':
      checkAlias(ctx, b.fd, [...path, 'fd'], aliases);
      aliases.set(String(b.as), 'fd');
      return;
    case 'close':
      checkAlias(ctx, body, path, aliases);
      return;
    case 'traffic':
      checkAlias(ctx, b.dev, [...path, 'dev'], aliases, 'vhost-net');
      return;
    case 'ioctl': {
      checkAlias(ctx, b.fd, [...path, 'fd'], aliases);
      const cmd = String(b.cmd);
      const known = Object.keys(VHOST_IOCTLS).concat(
        Object.keys(IOCTL_ARGS).filter((n) => !(n in VHOST_IOCTLS)),
      );
      if (!(cmd in VHOST_IOCTLS) && !(cmd in IOCTL_ARGS)) {
        const hint = closest(cmd, known);
        ctx.issues.push({
          code: 'unknown-ioctl',
          path: [...path, 'cmd'],
          expected: 'an ioctl name such as VHOST_SET_OWNER',
          found: `"${cmd}"`,
          ...(hint ? { hint: `did you mean "${hint}"?` } : {}),
        });
        return;
      }
      const spec = IOCTL_ARGS[cmd];
      if (spec?.fields.length) {
        const arg = b.arg;
        if (arg === undefined || typeof arg !== 'object' || arg === null) {
          ctx.issues.push({
            code: 'missing-field',
            path: [...path, 'arg'],
            expected: `struct ${spec.struct} {${spec.fields.join(', ')}}`,
            found: describeValue(arg),
          });
          return;
        }
        for (const f of spec.fields) {
          if (!(f in (arg as object)) && !(spec.optional ?? []).includes(f))
            ctx.issues.push({
              code: 'missing-field',
              path: [...path, 'arg'],
              expected: `field "${f}" of struct ${spec.struct}`,
              found: describeValue(arg),
            });
        }
        for (const f of Object.keys(arg as object))
          if (!spec.fields.includes(f))
            ctx.issues.push({
              code: 'unknown-key',
              path: [...path, 'arg', f],
              expected: `a field of struct ${spec.struct} (${spec.fields.join(', ')})`,
              found: `"${f}"`,
            });
        if (spec.fdFields)
          for (const f of spec.fdFields)
            if (typeof (arg as Record<string, unknown>)[f] === 'string')
              checkAlias(ctx, (arg as Record<string, unknown>)[f], [...path, 'arg', f], aliases);
      }
      return;
    }
    case 'threads':
    case 'thread':
    case 'fork':
      if (b.as) aliases.set(String(b.as), action === 'fork' ? 'process' : 'thread');
      if (b.program) checkProgram(ctx, b.program, [...path, 'program'], new Map(aliases));
      return;
    case 'exec':
      if (b.program) checkProgram(ctx, b.program, [...path, 'program'], new Map());
      return;
    case 'loop':
      checkProgram(ctx, b.steps, [...path, 'steps'], aliases);
      return;
    case 'pipe':
      aliases.set(String(b.read), 'fd');
      aliases.set(String(b.write), 'fd');
      return;
    case 'io_uring':
      aliases.set(String(b.as), 'io_uring');
      return;
    case 'io_uring_register':
    case 'io_uring_wait':
      checkAlias(ctx, b.ring, [...path, 'ring'], aliases, 'io_uring');
      return;
    case 'io_uring_submit':
      checkAlias(ctx, b.ring, [...path, 'ring'], aliases, 'io_uring');
      if (b.op !== 'nop' && b.fd === undefined)
        ctx.issues.push({
          code: 'missing-field',
          path,
          expected: `field "fd" (the file to ${b.op})`,
          found: describeValue(body),
        });
      else checkAlias(ctx, b.fd, [...path, 'fd'], aliases);
      return;
    case 'label':
      if (ctx.labels.has(String(body)))
        ctx.issues.push({ code: 'duplicate', path, expected: 'a label used once', found: `"${body}" again` });
      ctx.labels.set(String(body), path);
      return;
    case 'wait':
      ctx.labelUses.push({ label: String(body), path });
      return;
    case 'kill':
    case 'tgkill':
    case 'ptrace':
      if (
        typeof b.target === 'string' &&
        !ctx.processes.has(b.target) &&
        !aliases.has(b.target) &&
        b.target !== 'self'
      )
        ctx.issues.push({
          code: 'unknown-process',
          path: [...path, 'target'],
          expected: `a process name (${[...ctx.processes].join(', ')}), "self" or a fork alias`,
          found: `"${b.target}"`,
        });
      return;
    default:
      return;
  }
}

/**
 * Parse and validate scenario text, with `params` overriding the file's parameter defaults.
 * Throws ScenarioError with every located issue.
 */
export function parseScenario(
  text: string,
  file: string,
  params: Readonly<Record<string, number>> = {},
): LoadedScenario {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const issues: ScenarioIssue[] = [];
  if (doc.errors.length) {
    for (const e of doc.errors) {
      const pos = lc.linePos(e.pos[0]);
      if (e.code === 'DUPLICATE_KEY') {
        // the error's range covers only the key's first character: read the key up to its colon
        const key = (/^[^:\n]*/.exec(text.slice(e.pos[0]))?.[0] ?? '').trim().replace(/^(["'])(.*)\1$/, '$2');
        issues.push({
          code: 'duplicate',
          path: [],
          expected: 'each key once (process names, cgroup paths and checks are unique)',
          found: `"${key}" a second time`,
          line: pos.line,
          col: pos.col,
        });
      } else {
        issues.push({
          code: 'yaml-syntax',
          path: [],
          expected: 'valid YAML',
          found: e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, ''),
          line: pos.line,
          col: pos.col,
        });
      }
      break;
    }
    throw new ScenarioError(file, issues);
  }
  const parsed = doc.toJS();
  if (parsed === null || parsed === undefined) {
    throw new ScenarioError(file, [
      {
        code: 'empty-file',
        path: [],
        expected: 'a scenario (name, profiles, processes)',
        found: 'an empty file',
        line: 1,
        col: 1,
      },
    ]);
  }
  const { root, params: inEffect } = substituteParams(parsed, params, issues);
  const r = Scenario.safeParse(root);
  if (!r.success) issues.push(...fromZod(root, [], r.error));
  if (!issues.length) {
    const sc = r.data!;
    const ctx: Ctx = {
      issues,
      root,
      profiles: new Set(),
      processes: new Set(Object.keys(sc.processes)),
      labels: new Map(),
      labelUses: [],
    };
    sc.profiles.forEach((p, i) => {
      if (!findProfile(p)) {
        const hint = closest(
          p,
          PROFILES.map((x) => x.name),
        );
        issues.push({
          code: 'unknown-profile',
          path: ['profiles', i],
          expected: 'a kernel profile (vhostsim profiles)',
          found: `"${p}"`,
          ...(hint ? { hint: `did you mean "${hint}"?` } : {}),
        });
      } else if (ctx.profiles.has(p))
        issues.push({
          code: 'duplicate',
          path: ['profiles', i],
          expected: 'each profile once',
          found: `"${p}" again`,
        });
      ctx.profiles.add(p);
    });
    for (const [name, proc] of Object.entries(sc.processes)) {
      if (proc.parent && !ctx.processes.has(proc.parent))
        issues.push({
          code: 'unknown-process',
          path: ['processes', name, 'parent'],
          expected: 'another process of this scenario',
          found: `"${proc.parent}"`,
        });
      if (proc.after) ctx.labelUses.push({ label: proc.after, path: ['processes', name, 'after'] });
      checkProgram(ctx, proc.program, ['processes', name, 'program'], new Map());
    }
    for (const u of ctx.labelUses)
      if (!ctx.labels.has(u.label)) {
        const hint = closest(u.label, [...ctx.labels.keys()]);
        issues.push({
          code: 'unknown-label',
          path: u.path,
          expected: 'a label set by a `label:` step',
          found: `"${u.label}"`,
          ...(hint ? { hint: `did you mean "${hint}"?` } : {}),
        });
      }
    for (const [label, per] of Object.entries(sc.checks ?? {})) {
      if (!ctx.labels.has(label) && label !== 'end') {
        const hint = closest(label, [...ctx.labels.keys()]);
        issues.push({
          code: 'unknown-label',
          path: ['checks', label],
          expected: 'a label set by a `label:` step, or "end"',
          found: `"${label}"`,
          ...(hint ? { hint: `did you mean "${hint}"?` } : {}),
        });
      }
      for (const prof of Object.keys(per))
        if (prof !== 'default') checkProfileRun(ctx, prof, ['checks', label, prof]);
    }
    // duplicate process names are caught by the YAML parser (uniqueKeys)
  }
  if (issues.length) {
    for (const i of issues) {
      if (i.line === undefined) {
        const atKey =
          i.code === 'unknown-key' ||
          i.code === 'unknown-step' ||
          i.code === 'duplicate' ||
          i.code === 'missing-key';
        const path = i.code === 'missing-key' ? i.path.slice(0, -1) : i.path;
        const pos = locate(doc, lc, path, atKey && i.code !== 'missing-key');
        i.line = pos.line;
        i.col = pos.col;
      }
    }
    issues.sort((a, b) => a.line! - b.line! || a.col! - b.col!);
    throw new ScenarioError(file, issues);
  }
  return { file, doc: r.data!, ...(r.data!.params ? { params: inEffect } : {}) };
}

/** Read and parse a scenario file; `params` override its parameter defaults. */
export function loadScenario(file: string, params: Readonly<Record<string, number>> = {}): LoadedScenario {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ScenarioError(file, [
      {
        code: 'bad-value',
        path: [],
        expected: 'a readable file',
        found: (e as NodeJS.ErrnoException).code ?? 'an error',
        line: 1,
        col: 1,
      },
    ]);
  }
  return parseScenario(text, file, params);
}
