/**
 * The fuzzing campaign's budget and harness (hardening issue #31), shared by every
 * test/fuzz/*.fuzz.test.ts file.
 *
 * In `npm test` every target runs a handful of cases so the whole campaign stays within
 * about 30 s on a loaded 2-core machine; `npm run fuzz` (scripts/fuzz.ts) runs the same
 * properties with `FUZZ_RUNS` cases per target and collects per-target figures.
 *
 * Environment:
 * - `FUZZ_RUNS`: cases per cheap target (expensive targets take a fixed fraction of it).
 * - `FUZZ_CASE_MS`: time limit of one case; a case over it fails (a hang is a finding).
 * - `FUZZ_SEED` and `FUZZ_PATH`: replay a counterexample fast-check reported.
 * - `FUZZ_REPORT`: a file each target appends one JSON line of figures to.
 * - `FUZZ_LONG=1`: the long run (targets too slow for `npm test` join in, e.g. det/rec models).
 *
 * The property of every target: the parser returns a result or throws a TandemError whose
 * code is in the error catalogue; it never throws anything else, never takes longer than the
 * case limit and never grows the process by more than {@link MAX_GROWTH_BYTES}.
 */
import { appendFileSync } from 'node:fs';
import fc from 'fast-check';
import { isErrorCode, isTandemError } from '../../src/errors/index.js';

/** Whether this is the long run (`npm run fuzz`). */
export const LONG = process.env['FUZZ_LONG'] === '1';

const envInt = (name: string): number | undefined => {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) throw new Error(`${name} must be an integer, got ${raw}`);
  return n;
};

const RUNS = envInt('FUZZ_RUNS');
const CASE_MS = envInt('FUZZ_CASE_MS');
const SEED = envInt('FUZZ_SEED');
const PATH = process.env['FUZZ_PATH'] || undefined;

/** A case that grows the resident set by more than this fails: unbounded allocation. */
export const MAX_GROWTH_BYTES = 512 * 1024 * 1024;

/**
 * Cases for a target: `suite` in `npm test`; in a run with `FUZZ_RUNS`, that number times
 * `weight` (expensive targets, such as whole-model graph passes, weigh less than 1).
 */
export function runs(suite: number, weight = 1): number {
  if (RUNS === undefined) return suite;
  return Math.max(1, Math.ceil(RUNS * weight));
}

/**
 * Time limit of one case: `FUZZ_CASE_MS` when set; else `long` in the long run, and `suite`
 * in `npm test` (generous: eight engineers share the machine that runs it).
 */
export function caseMs(suite = 5_000, long = 2_000): number {
  return CASE_MS ?? (LONG ? long : suite);
}

/** The test timeout for a target of `n` cases (vitest's own limit, above the per-case one). */
export function testTimeout(n: number, perCase = caseMs()): number {
  return Math.max(60_000, n * perCase + 30_000);
}

/** What one call of a parser came to: a result, or a typed refusal with its code. */
export type Outcome = { ok: true } | { ok: false; code: string };

/**
 * Runs `fn` and classifies what it did. A thrown value that is not a TandemError carrying a
 * catalogue code is re-thrown: that is the finding.
 */
export async function outcome(fn: () => unknown): Promise<Outcome> {
  try {
    await fn();
    return { ok: true };
  } catch (error) {
    return { ok: false, code: typedCode(error) };
  }
}

/** Synchronous {@link outcome}, for parsers that are synchronous. */
export function outcomeSync(fn: () => unknown): Outcome {
  try {
    fn();
    return { ok: true };
  } catch (error) {
    return { ok: false, code: typedCode(error) };
  }
}

/** The catalogue code of `error`; throws (a finding) when it has none. */
export function typedCode(error: unknown): string {
  if (isTandemError(error) && isErrorCode(error.code)) return error.code;
  const what = error instanceof Error ? `${error.name}: ${error.message}` : `non-Error ${String(error)}`;
  throw new UntypedError(`untyped failure (not a TandemError with a catalogue code): ${what}`, { cause: error });
}

export class UntypedError extends Error {
  override name = 'UntypedError';
}

/** The catalogue code carried anywhere in a JSON error body (`code`, `error.code`, Google's ErrorInfo reason). */
export function codeInBody(body: unknown): string | undefined {
  if (typeof body === 'string') {
    if (isErrorCode(body)) return body;
    const head = /^([A-Z][A-Z0-9_]+):/.exec(body)?.[1];
    return head !== undefined && isErrorCode(head) ? head : undefined;
  }
  if (Array.isArray(body)) {
    for (const v of body) {
      const c = codeInBody(v);
      if (c) return c;
    }
    return undefined;
  }
  if (body !== null && typeof body === 'object') {
    for (const v of Object.values(body)) {
      const c = codeInBody(v);
      if (c) return c;
    }
  }
  return undefined;
}

export interface TargetStats {
  target: string;
  cases: number;
  ms: number;
  /** Outcomes by catalogue code (`ok` for results): how deep the inputs get. */
  outcomes: Record<string, number>;
  findings: number;
  failure?: { seed: number; path: string | null; counterexample: string; error: string };
}

function report(stats: TargetStats): void {
  const file = process.env['FUZZ_REPORT'];
  if (file) appendFileSync(file, `${JSON.stringify(stats)}\n`);
}

function rss(): number {
  return process.memoryUsage().rss;
}

/**
 * Checks `predicate` on `runs` values of `arb` under the case time limit and the
 * allocation bound; throws fast-check's report (with the seed and path that replay it) on a
 * failure. The predicate returns the case's {@link Outcome} (tallied) or nothing.
 */
export async function fuzz<T>(
  target: string,
  arb: fc.Arbitrary<T>,
  predicate: (value: T) => Promise<Outcome | void> | Outcome | void,
  options: { runs: number; caseMs?: number; examples?: T[]; /** false: not written to FUZZ_REPORT (the harness's own tests). */ report?: boolean },
): Promise<TargetStats> {
  const limit = options.caseMs ?? caseMs();
  const outcomes: Record<string, number> = {};
  let cases = 0;
  const baseline = rss();
  const property = fc.asyncProperty(arb, async (value) => {
    cases++;
    const started = performance.now();
    const result = await predicate(value);
    const took = performance.now() - started;
    // The async timeout cannot fire while synchronous code holds the thread: check after.
    if (took > limit) throw new Error(`case took ${took.toFixed(0)} ms, over the limit of ${limit} ms (a hang)`);
    const growth = rss() - baseline;
    if (growth > MAX_GROWTH_BYTES) throw new Error(`the process grew by ${(growth / 2 ** 20).toFixed(0)} MiB (limit ${MAX_GROWTH_BYTES / 2 ** 20} MiB): unbounded allocation`);
    if (result) {
      const key = result.ok ? 'ok' : result.code;
      outcomes[key] = (outcomes[key] ?? 0) + 1;
    }
  });
  const started = performance.now();
  const details = await fc.check(property, {
    numRuns: options.runs,
    timeout: limit,
    ...(SEED !== undefined ? { seed: SEED } : {}),
    ...(PATH !== undefined ? { path: PATH } : {}),
    ...(options.examples ? { examples: options.examples.map((e) => [e] as [T]) } : {}),
  });
  const stats: TargetStats = { target, cases, ms: Math.round(performance.now() - started), outcomes, findings: details.failed ? 1 : 0 };
  if (details.failed) {
    const error = details.errorInstance instanceof Error ? `${details.errorInstance.name}: ${details.errorInstance.message}` : String(details.errorInstance);
    stats.failure = { seed: details.seed, path: details.counterexamplePath, counterexample: fc.stringify(details.counterexample).slice(0, 2000), error: error.slice(0, 2000) };
  }
  if (options.report !== false) report(stats);
  if (details.failed) throw new Error(`fuzz target "${target}" failed: ${stats.failure?.error ?? ''}\n${fc.defaultReportMessage(details) ?? ''}`, { cause: details.errorInstance });
  return stats;
}

// ---------------------------------------------------------------------------------------
// Byte-level mutations, shared by the structure-aware generators.

export type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; byte: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; count: number }
  | { kind: 'u32'; at: number; value: number; littleEndian: boolean };

/** `at` is a fraction of the length so that one mutation fits any buffer. */
export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat({ max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), byte: fc.constantFrom(0x00, 0xff, 0x7f, 0x80, 0xc4, 0xc6, 0xce) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 16 }) }),
  fc.record({
    kind: fc.constant('u32' as const),
    at: fc.nat(),
    value: fc.constantFrom(0, 1, 0x7f, 0xff, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff),
    littleEndian: fc.boolean(),
  }),
);

/** Applies `mutations` in order; positions wrap around the current length. */
export function mutate(input: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  let b = Buffer.from(input);
  for (const m of mutations) {
    const n = b.byteLength;
    const at = n === 0 ? 0 : m.at % n;
    switch (m.kind) {
      case 'flip':
        if (n > 0) b[at] = (b[at] ?? 0) ^ (1 << m.bit);
        break;
      case 'set':
        if (n > 0) b[at] = m.byte;
        break;
      case 'truncate':
        b = b.subarray(0, at);
        break;
      case 'insert':
        b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
        break;
      case 'delete':
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.count)]);
        break;
      case 'u32':
        if (n >= 4) {
          const p = Math.min(at, n - 4);
          if (m.littleEndian) b.writeUInt32LE(m.value, p);
          else b.writeUInt32BE(m.value, p);
        }
        break;
    }
  }
  return new Uint8Array(b);
}

/** JSON-ish values, including the awkward ones (huge, negative, fractional numbers, deep nesting). */
export const jsonishArb: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom(null, true, false, 0, -1, 1, 1.5, -0, 2 ** 31, 2 ** 32, 2 ** 53, -(2 ** 53), 1e308, -1e308, '', '0', 'NaN', '__proto__', 'constructor'),
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.string({ maxLength: 12 }),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fc.string({ maxLength: 8 }), tie('value'), { maxKeys: 5 }),
  ),
})).value;

type Slot = { parent: Record<string, unknown> | unknown[]; key: string | number };

const isPlainTree = (v: unknown): v is Record<string, unknown> => {
  if (v === null || typeof v !== 'object') return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
};

/** Every slot (array element, object member) of a JSON tree; binary values are leaves. */
function slots(tree: unknown): Slot[] {
  const out: Slot[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) {
      v.forEach((x, i) => {
        out.push({ parent: v, key: i });
        walk(x);
      });
    } else if (isPlainTree(v)) {
      for (const [k, x] of Object.entries(v)) {
        out.push({ parent: v, key: k });
        walk(x);
      }
    }
  };
  walk(tree);
  return out;
}

/** Replaces one randomly chosen node of a JSON tree by `replacement` (path picked by `seed`). */
export function replaceAt(tree: unknown, seed: number, replacement: unknown): unknown {
  const copy = structuredClone(tree);
  const all = slots(copy);
  const pick = all[seed % Math.max(1, all.length)];
  if (!pick) return replacement;
  (pick.parent as Record<string | number, unknown>)[pick.key] = replacement;
  return copy;
}

/** Deletes one randomly chosen key or element of a JSON tree. */
export function deleteAt(tree: unknown, seed: number): unknown {
  const copy = structuredClone(tree);
  const all = slots(copy);
  const pick = all[seed % Math.max(1, all.length)];
  if (!pick) return copy;
  if (Array.isArray(pick.parent)) pick.parent.splice(pick.key as number, 1);
  else delete pick.parent[pick.key as string];
  return copy;
}

/** A structure-aware edit of a JSON tree: replace a node, delete one, or leave it valid. */
export type TreeEdit = { kind: 'keep' } | { kind: 'replace'; seed: number; value: unknown } | { kind: 'delete'; seed: number };

export const treeEditArb: fc.Arbitrary<TreeEdit> = fc.oneof(
  { weight: 1, arbitrary: fc.constant({ kind: 'keep' as const }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('replace' as const), seed: fc.nat(), value: jsonishArb }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), seed: fc.nat() }) },
);

export function applyEdits(tree: unknown, edits: readonly TreeEdit[]): unknown {
  let t = tree;
  for (const e of edits) {
    if (e.kind === 'replace') t = replaceAt(t, e.seed, e.value);
    else if (e.kind === 'delete') t = deleteAt(t, e.seed);
  }
  return t;
}
