import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LocalKeyFile } from '../../src/residency/envelope.js';
import { ResidencyGate, evaluateSend, evaluateWrite, filterEndpoints } from '../../src/residency/gate.js';
import { Outbox } from '../../src/residency/outbox.js';
import { validatePolicy, type PolicyInput } from '../../src/residency/policy.js';
import { UnknownDataClassError } from '../../src/residency/errors.js';

const REGIONS = ['cn-shanghai', 'cn-beijing', 'eu-central-1', 'eu-west-1', 'europe-west3', 'us-east-2', 'us-central1', 'ap-southeast-1'];
const PATTERNS = [...REGIONS, 'cn-*', 'eu-*', 'europe-*', 'us-*', '*', '*-1', 'eu*-1'];
const PROVIDERS = ['aws', 'gcp', 'alibaba', 'local'];
const SERVICES = ['sagemaker', 'vertex', 'pai-eas', 'oip'];
const CLASSES = ['c0', 'c1', 'c2'];

// An independent oracle: glob matching by recursion over characters rather than the gate's regex.
function glob(p: string, s: string): boolean {
  if (p === '') return s === '';
  if (p[0] === '*') return glob(p.slice(1), s) || (s !== '' && glob(p, s.slice(1)));
  return s !== '' && p[0] === s[0] && glob(p.slice(1), s.slice(1));
}

const allowance = fc.record(
  {
    provider: fc.constantFrom(...PROVIDERS, '*'),
    regions: fc.uniqueArray(fc.constantFrom(...PATTERNS), { minLength: 1, maxLength: 3 }),
    services: fc.uniqueArray(fc.constantFrom(...SERVICES, 's3', 'gcs', 'oss', 'local'), { minLength: 1, maxLength: 3 }),
    requireSse: fc.boolean(),
  },
  { requiredKeys: ['provider', 'regions'] },
);

const storeArb = fc.oneof(
  fc.record({ type: fc.constant('local' as const), region: fc.constantFrom(...REGIONS), root: fc.constant('/tmp/x') }),
  fc.record({ type: fc.constant('s3' as const), region: fc.constantFrom(...REGIONS), bucket: fc.constant('bkt'), sse: fc.constantFrom('AES256' as const, 'none' as const) }),
  fc.record({ type: fc.constant('gcs' as const), region: fc.constantFrom(...REGIONS), bucket: fc.constant('bkt') }),
  fc.record({ type: fc.constant('oss' as const), region: fc.constantFrom(...REGIONS), bucket: fc.constant('bkt'), sse: fc.constantFrom('AES256' as const, 'none' as const) }),
);

const policyArb = fc
  .record({
    classes: fc.dictionary(fc.constantFrom(...CLASSES), fc.record({ process: fc.array(allowance, { maxLength: 3 }), store: fc.array(allowance, { maxLength: 3 }) }), { minKeys: 1 }),
    endpoints: fc.dictionary(fc.constantFrom('e0', 'e1', 'e2', 'e3'), fc.record({ provider: fc.constantFrom(...PROVIDERS), region: fc.constantFrom(...REGIONS), service: fc.constantFrom(...SERVICES) })),
    stores: fc.dictionary(fc.constantFrom('s0', 's1', 's2', 's3'), storeArb),
    origin: fc.option(fc.record({ classes: fc.option(fc.uniqueArray(fc.constantFrom(...CLASSES), { minLength: 1 }), { nil: undefined }), process: fc.option(fc.array(allowance, { maxLength: 2 }), { nil: undefined }), store: fc.option(fc.array(allowance, { maxLength: 2 }), { nil: undefined }) }), { nil: undefined }),
  })
  .map(({ classes, endpoints, stores, origin }) => {
    const input: PolicyInput = { version: 1, classes, endpoints, stores, origins: {} };
    if (origin !== undefined) {
      const o: Record<string, unknown> = {};
      if (origin.classes) o['classes'] = origin.classes.filter((c) => c in classes).length > 0 ? origin.classes.filter((c) => c in classes) : undefined;
      if (origin.process) o['process'] = origin.process;
      if (origin.store) o['store'] = origin.store;
      input.origins = { site: JSON.parse(JSON.stringify(o)) };
    }
    return validatePolicy(input);
  });

function throwsUnknown(f: () => unknown): boolean {
  try {
    f();
    return false;
  } catch (error) {
    return error instanceof UnknownDataClassError;
  }
}

interface Target { provider: string; region: string; service?: string; sse: boolean }
type Allow = { provider: string; regions: string[]; services?: string[]; requireSse?: boolean };
function oracleAllows(list: readonly Allow[], t: Target, store: boolean): boolean {
  return list.some(
    (a) => (a.provider === '*' || a.provider === t.provider) && a.regions.some((r) => glob(r, t.region)) && (a.services === undefined || (t.service !== undefined && a.services.includes(t.service))) && !(store && a.requireSse === true && !t.sse),
  );
}

const RUNS = Number(process.env['RESIDENCY_PROPERTY_RUNS'] ?? 100_000);

describe('residency gate properties', () => {
  it(`no send and no write ever violates the policy (${RUNS} cases)`, () => {
    let decisions = 0;
    fc.assert(
      fc.property(policyArb, fc.constantFrom(...CLASSES, 'unknown'), fc.constantFrom('e0', 'e1', 'e2', 'e3', 'e9'), fc.constantFrom('s0', 's1', 's2', 's3', 's9'), fc.boolean(), (policy, cls, endpoint, store, useOrigin) => {
        const origin = useOrigin && 'site' in policy.origins ? 'site' : undefined;
        const rule = policy.classes[cls];
        if (rule === undefined) {
          // Default deny for an undeclared class is a typed error, never an allowance.
          return throwsUnknown(() => evaluateSend(policy, cls, origin, endpoint)) && throwsUnknown(() => evaluateWrite(policy, cls, origin, store));
        }
        const o = origin === undefined ? undefined : policy.origins[origin];
        const classOk = o?.classes === undefined || o.classes.includes(cls);

        const ep = policy.endpoints[endpoint];
        const send = evaluateSend(policy, cls, origin, endpoint);
        const sendOracle = ep !== undefined && classOk && oracleAllows(rule.process, { ...ep, sse: false }, false) && (o?.process === undefined || oracleAllows(o.process, { ...ep, sse: false }, false));
        if (send.allowed !== sendOracle) return false;

        const st = policy.stores[store];
        const write = evaluateWrite(policy, cls, origin, store);
        const target = st === undefined ? undefined : { provider: st.provider, region: st.region, service: st.type, sse: st.type === 'gcs' || (st.type !== 'local' && st.sse !== 'none') };
        const writeOracle = target !== undefined && classOk && oracleAllows(rule.store, target, true) && (o?.store === undefined || oracleAllows(o.store, target, true));
        if (write.allowed !== writeOracle) return false;

        // The filter never returns an endpoint that evaluateSend refuses, and an origin only narrows.
        const filtered = filterEndpoints(policy, cls, origin).allowed;
        if (!filtered.every((name) => evaluateSend(policy, cls, origin, name).allowed)) return false;
        if (origin !== undefined) {
          const wide = new Set(filterEndpoints(policy, cls).allowed);
          if (!filtered.every((name) => wide.has(name))) return false;
        }
        // A class with no process allowance is answered locally.
        if (rule.process.length === 0 && filtered.length > 0) return false;
        decisions++;
        return true;
      }),
      { numRuns: RUNS },
    );
    expect(decisions).toBeGreaterThan(RUNS / 2);
  });
});

describe('outbox never writes where the policy forbids', () => {
  it('random policies and submissions: every stored object satisfies the policy (end to end)', async () => {
    const keys = LocalKeyFile.fromBytes(Buffer.alloc(32, 3));
    await fc.assert(
      fc.asyncProperty(policyArb, fc.array(fc.record({ cls: fc.constantFrom(...CLASSES), store: fc.option(fc.constantFrom('s0', 's1', 's2', 's3'), { nil: undefined }), useOrigin: fc.boolean() }), { minLength: 1, maxLength: 8 }), async (policy, subs) => {
        const dir = await mkdtemp(join(tmpdir(), 'tandem-prop-'));
        const written: Array<{ store: string; cls: string; origin: string | undefined }> = [];
        const meta = new Map<string, { cls: string; origin: string | undefined }>();
        const stores = new Map(
          Object.entries(policy.stores).map(([name, decl]) => [
            name,
            {
              name,
              decl,
              async put(_key: string, _body: Uint8Array, m?: { metadata?: Record<string, string> }) {
                const info = meta.get(m?.metadata?.['request-id'] ?? '')!;
                written.push({ store: name, ...info });
              },
              async get(): Promise<never> {
                throw new Error('unused');
              },
              async head() {
                return undefined;
              },
              async exists() {
                return false;
              },
              async close() {},
            },
          ]),
        );
        const box = await Outbox.open({ dir, gate: new ResidencyGate(policy), stores, keys, fsync: false });
        try {
          for (const [i, s] of subs.entries()) {
            const origin = s.useOrigin && 'site' in policy.origins ? 'site' : undefined;
            meta.set(`r${i}`, { cls: s.cls, origin });
            await box.accept({ requestId: `r${i}`, dataClass: s.cls, origin, store: s.store, body: Buffer.from('x') }).catch(() => undefined);
          }
          await box.drain(5000);
        } finally {
          await box.close();
          await rm(dir, { recursive: true, force: true });
        }
        return written.every((w) => {
          const rule = policy.classes[w.cls];
          const st = policy.stores[w.store]!;
          const o = w.origin === undefined ? undefined : policy.origins[w.origin];
          const target = { provider: st.provider, region: st.region, service: st.type, sse: st.type === 'gcs' || (st.type !== 'local' && st.sse !== 'none') };
          return rule !== undefined && (o?.classes === undefined || o.classes.includes(w.cls)) && oracleAllows(rule.store, target, true) && (o?.store === undefined || oracleAllows(o.store, target, true));
        });
      }),
      { numRuns: Number(process.env['RESIDENCY_OUTBOX_PROPERTY_RUNS'] ?? 300) },
    );
  });
});
