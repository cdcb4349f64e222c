/**
 * Property tests of residency for derived data: over random policies, endpoints, plans and
 * cuts, no send carries raw (or encoded) input of a class to an endpoint its raw data may not
 * go to, and features go there only past the allowed depth or FLOPs share: in the gate's pure
 * decisions, in the executor at the send, and in what the planner chooses and ranks.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AdaptivePlanner } from '../../src/planner/adaptive.js';
import type { Plan, SendLimit } from '../../src/planner/plan.js';
import type { Profile } from '../../src/planner/profile.js';
import { allowedSends, evaluateFormSend, evaluateSend, ResidencyGate, validatePolicy, type Policy, type SendForm, type SendRule } from '../../src/residency/index.js';
import { Executor, type Partition } from '../../src/runtime/executor.js';
import type { EdgePool } from '../../src/runtime/pool.js';
import type { InferRequest, ProviderClient } from '../../src/providers/types.js';
import type { TensorMap } from '../../src/tensor/index.js';

const REGIONS = ['eu-central-1', 'eu-west-1', 'us-east-1', 'us-west-2', 'cn-shanghai'];
const PROVIDERS = ['aws', 'gcp'];

const allowance = fc.record({
  provider: fc.constantFrom('aws', 'gcp', '*'),
  regions: fc.array(fc.constantFrom(...REGIONS, 'eu-*', 'us-*', '*'), { minLength: 1, maxLength: 2 }),
});
const feature = fc
  .record({ minCutDepth: fc.option(fc.integer({ min: 1, max: 8 }), { nil: undefined }), minFlopsShare: fc.option(fc.double({ min: 0.05, max: 1, noNaN: true }), { nil: undefined }) })
  .filter((f) => f.minCutDepth !== undefined || f.minFlopsShare !== undefined);
const featureAllowance = fc.tuple(allowance, feature).map(([a, f]) => ({ ...a, ...(f.minCutDepth !== undefined ? { minCutDepth: f.minCutDepth } : {}), ...(f.minFlopsShare !== undefined ? { minFlopsShare: f.minFlopsShare } : {}) }));
const classRule = fc.record({ process: fc.array(allowance, { maxLength: 2 }), features: fc.array(featureAllowance, { maxLength: 3 }) });
const policyArb: fc.Arbitrary<Policy> = fc
  .record({
    classes: fc.dictionary(fc.constantFrom('c1', 'c2', 'c3'), classRule, { minKeys: 1 }),
    endpoints: fc.dictionary(fc.constantFrom('e1', 'e2', 'e3', 'e4'), fc.record({ provider: fc.constantFrom(...PROVIDERS), region: fc.constantFrom(...REGIONS) }), { minKeys: 1 }),
  })
  .map((p) => validatePolicy({ version: 1, ...p }));
const formArb: fc.Arbitrary<SendForm> = fc.oneof(
  fc.constant({ kind: 'raw' } as const),
  fc.constant({ kind: 'encoded' } as const),
  fc.record({ depth: fc.integer({ min: 0, max: 10 }), share: fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { nil: undefined }) }).map(({ depth, share }) => ({ kind: 'features' as const, cut: `c${depth}`, depth, ...(share !== undefined ? { flopsShare: share } : {}) })),
);

/** The rule read straight off the policy, independently of the gate's code. */
function oracle(policy: Policy, cls: string, endpoint: string, form: SendForm): boolean {
  if (evaluateSend(policy, cls, undefined, endpoint).allowed) return true;
  if (form.kind !== 'features' || form.depth < 1) return false;
  const decl = policy.endpoints[endpoint]!;
  const re = (p: string) => new RegExp(`^${p.split('*').join('.*')}$`);
  return policy.classes[cls]!.features.some(
    (f) =>
      (f.provider === '*' || f.provider === decl.provider) &&
      f.regions.some((r) => re(r).test(decl.region)) &&
      (f.minCutDepth === undefined || form.depth >= f.minCutDepth) &&
      (f.minFlopsShare === undefined || (form.flopsShare !== undefined && form.flopsShare >= f.minFlopsShare)),
  );
}

describe('the gate: derived-data decisions', () => {
  it('allows a form exactly when raw may go there, or it is features past a matching rule', () => {
    fc.assert(
      fc.property(policyArb, formArb, (policy, form) => {
        for (const cls of Object.keys(policy.classes)) {
          const rules = allowedSends(policy, cls);
          for (const endpoint of Object.keys(policy.endpoints)) {
            const allowed = evaluateFormSend(policy, cls, undefined, endpoint, form).allowed;
            expect(allowed).toBe(oracle(policy, cls, endpoint, form));
            // Raw or encoded input only where raw data may be processed.
            if (form.kind !== 'features' && allowed) expect(evaluateSend(policy, cls, undefined, endpoint).allowed).toBe(true);
            // The per-request rules say the same as the decision.
            if (allowed) expect(rules.has(endpoint)).toBe(true);
          }
        }
      }),
      { numRuns: 400 },
    );
  });

  it('refuses a depth that disagrees with its cut id', () => {
    const policy = validatePolicy({ version: 1, classes: { a: { features: [{ provider: '*', regions: ['*'], minCutDepth: 3 }] } }, endpoints: { e: { provider: 'aws', region: 'us-east-1' } } });
    expect(evaluateFormSend(policy, 'a', undefined, 'e', { kind: 'features', cut: 'c1', depth: 5 }).allowed).toBe(false);
    expect(evaluateFormSend(policy, 'a', undefined, 'e', { kind: 'features', cut: 'c5', depth: 5 }).allowed).toBe(true);
  });
});

/** A model of `depthCount` cuts c0..cN with input `x`; `passThrough` cuts also hand `x` to the tail. */
function partitionOf(cut: string, passThrough: boolean): Partition {
  const head = { sha256: `head-${cut}`, bytes: new Uint8Array(1) } as unknown as Partition['head'];
  const tail = { sha256: `tail-${cut}`, bytes: new Uint8Array(1) } as unknown as Partition['tail'];
  if (cut === 'c0') return { cut, head, tail, headOutputs: ['x'], tailInputs: ['x'] };
  return { cut, head, tail, headOutputs: [`t${cut}`], tailInputs: passThrough ? [`t${cut}`, 'x'] : [`t${cut}`] };
}

const tensor = (): TensorMap[string] => ({ dtype: 'float32', dims: [1], data: new Float32Array(1) });

describe('the executor: every send checked', () => {
  it('never sends input where only features may go, nor features shallower than allowed', async () => {
    await fc.assert(
      fc.asyncProperty(
        policyArb,
        fc.constantFrom('c1', 'c2', 'c3'),
        fc.oneof(fc.constant<Plan>({ kind: 'local' }), fc.record({ kind: fc.constant('offload' as const), endpoint: fc.constantFrom('e1', 'e2', 'e3', 'e4') }), fc.record({ kind: fc.constant('split' as const), endpoint: fc.constantFrom('e1', 'e2', 'e3', 'e4'), cut: fc.integer({ min: 0, max: 9 }).map((n) => `c${n}`) })),
        fc.boolean(),
        fc.double({ min: 0, max: 1, noNaN: true }),
        async (policy, cls, plan, passThrough, shareScale) => {
          const sent: Array<{ endpoint: string; request: InferRequest }> = [];
          const clients = new Map<string, ProviderClient>(
            Object.keys(policy.endpoints).map((name) => [
              name,
              { endpoint: { name }, infer: async (request: InferRequest) => (sent.push({ endpoint: name, request }), { outputs: { y: tensor() }, timing: { encodeMs: 0, networkMs: 0, remoteMs: 0, decodeMs: 0, totalMs: 0 }, bytesSent: 1, bytesReceived: 1 }), close: async () => undefined } as unknown as ProviderClient,
            ]),
          );
          const pool = { run: async (_m: unknown, _i: unknown, o: { outputs?: string[] } = {}) => ({ outputs: Object.fromEntries((o.outputs ?? ['y']).map((n) => [n, tensor()])), kept: { x: tensor() }, edgeMs: 1, queueMs: 0 }) } as unknown as EdgePool;
          const share = (cut: string): number => Math.min(1, (Number(cut.slice(1)) / 9) * (0.5 + shareScale));
          const gate = new ResidencyGate(policy).sendGate();
          const rules = gate.rules(cls);
          const executor = new Executor({
            pool, model: { sha256: 'whole' } as never, modelName: 'm', inputNames: ['x'], clients,
            partitions: async (cut) => partitionOf(cut, passThrough),
            flopsShare: async (cut) => share(cut),
          });
          await executor.execute(plan, { x: tensor() }, {
            allowedEndpoints: [...rules.keys()],
            checkSend: (endpoint, form) => gate.check({ dataClass: cls, requestId: undefined, endpoint, form }),
          });
          // An undeclared class sends nothing at all.
          if (!Object.hasOwn(policy.classes, cls)) return void expect(sent).toHaveLength(0);
          for (const { endpoint, request } of sent) {
            const carriesInput = Object.hasOwn(request.inputs, 'x');
            const raw = evaluateSend(policy, cls, undefined, endpoint).allowed;
            if (carriesInput) expect(raw).toBe(true);
            else {
              const cut = request.cut!;
              expect(oracle(policy, cls, endpoint, { kind: 'features', cut, depth: Number(cut.slice(1)), flopsShare: share(cut) })).toBe(true);
            }
          }
          // And what may go does go: the check is no blanket refusal.
          if (plan.kind === 'offload' && evaluateSend(policy, cls, undefined, plan.endpoint).allowed) expect(sent).toHaveLength(1);
        },
      ),
      { numRuns: 300 },
    );
  });
});

/** A chain model's profile with `cuts` cuts past c0; cut `inputCut` also carries the input. */
function profileOf(cuts: number, inputCut: number): Profile {
  return {
    version: 1, model: 'chain', modelSha256: 'x', shapes: { x: [1, 3, 8, 8] }, edgeSlowdown: 1, workers: 1,
    localMs: 100, remoteMs: { e1: 5, e2: 5, e3: 5 }, inputBytes: 600_000, outputBytes: 100,
    cuts: Array.from({ length: cuts + 1 }, (_, i) => ({
      id: `c${i}`, tensors: i === 0 ? ['x'] : i === inputCut ? [`t${i}`, 'x'] : [`t${i}`],
      bytes: Math.max(100, 600_000 / (i + 1) ** 2), headFlops: i * 10, headMs: (100 * i) / (cuts + 1), tailMs: {}, outputBytes: 100,
    })),
  };
}

describe('the planner: never chooses what the gate would refuse', () => {
  it('offloads only where raw may go and splits only past the limit, in choose and rank', () => {
    const limitArb: fc.Arbitrary<SendLimit | undefined> = fc.oneof(
      fc.constant(undefined),
      fc.constant({ raw: true, features: [] }),
      fc.array(feature, { minLength: 1, maxLength: 2 }).map((features) => ({ raw: false, features })),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 9 }), fc.integer({ min: 1, max: 9 }), fc.tuple(limitArb, limitArb, limitArb), fc.array(fc.double({ min: 0.1, max: 200, noNaN: true }), { minLength: 5, maxLength: 30 }),
        (cuts, inputCut, limits, rtts) => {
          const profile = profileOf(cuts, inputCut);
          const clock = { t: 0 };
          const planner = new AdaptivePlanner({ profile, endpoints: ['e1', 'e2', 'e3'].map((name, i) => ({ name, rttMs: 1 + 30 * i, bandwidthBitsPerSecond: 1e9 })), now: () => clock.t });
          const sendLimits = new Map<string, SendLimit>();
          limits.forEach((l, i) => l && sendLimits.set(`e${i + 1}`, l));
          const context = { allowedEndpoints: ['e1', 'e2', 'e3'], sendLimits };
          const check = (plan: Plan): void => {
            if (plan.kind === 'local') return;
            const limit = sendLimits.get(plan.endpoint);
            if (limit === undefined || limit.raw) return;
            expect(plan.kind).toBe('split');
            if (plan.kind !== 'split') return;
            const depth = Number(plan.cut.slice(1));
            expect(depth).not.toBe(inputCut);
            const form: SendForm = { kind: 'features', cut: plan.cut, depth, flopsShare: (depth * 10) / (cuts * 10) };
            const rule: SendRule = { raw: false, features: limit.features };
            expect(oracle(validatePolicy({ version: 1, classes: { k: { features: rule.features.map((f) => ({ provider: '*', regions: ['*'], ...f })) } }, endpoints: { [plan.endpoint]: { provider: 'aws', region: 'us-east-1' } } }), 'k', plan.endpoint, form)).toBe(true);
          };
          for (const rtt of rtts) {
            const plan = planner.choose(context);
            check(plan);
            clock.t += 10;
            planner.observe({ plan, ok: true, fellBack: false, queueMs: 0, edgeMs: 10, encodeMs: 0, networkMs: rtt, remoteMs: 5, decodeMs: 0, totalMs: rtt + 15, bytesSent: 1000, bytesReceived: 100, at: clock.t });
          }
          for (const option of planner.rank(context)) check(option.plan);
        },
      ),
      { numRuns: 150 },
    );
  });
});
