import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AdaptivePlanner } from '../../src/planner/adaptive.js';
import { describePlan, type Observation, type PlanContext } from '../../src/planner/plan.js';
import type { Profile } from '../../src/planner/profile.js';
import { World, planner } from '../helpers/planner-world.js';

describe('cost model', () => {
  it('predicts each option as edge + network (rtt + bytes/bandwidth) + remote', () => {
    const p = planner({ endpoints: [{ name: 'a', rttMs: 40, bandwidthBitsPerSecond: 10e6 }], exploration: false });
    const ranked = p.rank({ allowedEndpoints: ['a'] });
    const byName = new Map(ranked.map((o) => [describePlan(o.plan), o]));
    expect(byName.get('local')?.totalMs).toBeCloseTo(100, 6);
    const offload = byName.get('offload→a');
    // 40 ms + 604 KB at 10 Mbit/s (483.2 ms) + 10 ms remote + codec (1 ns/byte)
    expect(offload?.networkMs).toBeCloseTo(40 + 483.2, 6);
    expect(offload?.remoteMs).toBeCloseTo(10, 6);
    expect(offload?.totalMs).toBeCloseTo(40 + 483.2 + 10 + 0.604, 3);
    const split = byName.get('split@c2→a');
    // head 40 + rtt 40 + 34 KB → 27.2 ms + tail 6 ms (60% of the FLOPs remain)
    expect(split?.edgeMs).toBeCloseTo(40, 6);
    expect(split?.remoteMs).toBeCloseTo(6, 6);
    expect(split?.totalMs).toBeCloseTo(40 + 40 + 27.2 + 6 + 0.034, 3);
    // c0 duplicates offload and c4 leaves nothing for the tail: neither is a split option.
    expect(byName.has('split@c0→a')).toBe(false);
    expect(byName.has('split@c4→a')).toBe(false);
    expect(ranked.map((o) => o.totalMs)).toEqual([...ranked.map((o) => o.totalMs)].sort((x, y) => x - y));
  });

  it('moves from offload to split to local as bandwidth falls', () => {
    const pick = (bw: number): string =>
      describePlan(planner({ endpoints: [{ name: 'a', rttMs: 10, bandwidthBitsPerSecond: bw }], exploration: false }).choose({ allowedEndpoints: ['a'] }));
    expect(pick(1e9)).toBe('offload→a');
    expect(pick(10e6)).toMatch(/^split@c2→a$/);
    expect(pick(0.5e6)).toBe('local');
  });

  it('charges edge queueing to options that use the edge', () => {
    const p = planner({ endpoints: [{ name: 'a', rttMs: 10, bandwidthBitsPerSecond: 10e6 }], exploration: false });
    expect(p.choose({ allowedEndpoints: ['a'], edgeQueue: 0 }).kind).toBe('split');
    expect(p.choose({ allowedEndpoints: ['a'], edgeQueue: 10 }).kind).toBe('offload');
  });

  it('uses a measured edge slowdown: a slow edge pushes work to the cloud', () => {
    const p = planner({ endpoints: [{ name: 'a', rttMs: 10, bandwidthBitsPerSecond: 2e6 }], exploration: false });
    expect(p.choose({ allowedEndpoints: ['a'] }).kind).toBe('local');
    for (let i = 0; i < 5; i++) p.observe(new World({}).run({ kind: 'local' }) && { ...new World({}).run({ kind: 'local' }), edgeMs: 800 });
    expect(p.snapshot().edgeScale).toBeGreaterThan(6);
    expect(p.choose({ allowedEndpoints: ['a'] }).kind).not.toBe('local');
  });
});

describe('one cost formula', () => {
  const NAMES = ['a', 'b', 'c'];
  const NOW = 1000;
  // A grid of 10⁴ steps: wide ranges without denormals or values only an overflow could reach.
  const positive = (min: number, max: number): fc.Arbitrary<number> => fc.integer({ min: 0, max: 10_000 }).map((i) => min + ((max - min) * i) / 10_000);
  const profileArb: fc.Arbitrary<Profile> = fc
    .record({
      localMs: positive(1, 300),
      inputBytes: fc.integer({ min: 1, max: 2_000_000 }),
      outputBytes: fc.integer({ min: 1, max: 100_000 }),
      workers: fc.integer({ min: 1, max: 4 }),
      remoteMs: positive(0.1, 50),
      cuts: fc.array(fc.record({ share: positive(0, 1), bytes: fc.integer({ min: 1, max: 2_000_000 }), tailMs: fc.option(positive(0, 50), { nil: undefined }) }), {
        maxLength: 6,
      }),
    })
    .map((r): Profile => ({
      version: 1,
      model: 'random',
      modelSha256: 'x',
      shapes: {},
      edgeSlowdown: 1,
      workers: r.workers,
      localMs: r.localMs,
      remoteMs: { a: r.remoteMs },
      inputBytes: r.inputBytes,
      outputBytes: r.outputBytes,
      cuts: [
        { id: 'c0', tensors: ['x'], bytes: r.inputBytes, headFlops: 0, headMs: 0, tailMs: {}, outputBytes: r.outputBytes },
        ...r.cuts.map((c, i) => ({
          id: `c${i + 1}`,
          tensors: [`t${i + 1}`],
          bytes: c.bytes,
          headFlops: c.share * 100,
          headMs: c.share * r.localMs,
          tailMs: c.tailMs === undefined ? {} : ({ b: c.tailMs } as Record<string, number>),
          outputBytes: r.outputBytes,
        })),
      ],
    }));
  const endpointArb = fc.record({
    rttMs: positive(0, 200),
    bandwidthBitsPerSecond: positive(0.2e6, 2e9),
    pricePerRequest: fc.constantFrom(0, 0.001, 0.01),
    pricePerGB: fc.constantFrom(0, 0.1, 1),
  });
  const stepArb = fc.record({
    allowed: fc.subarray(NAMES),
    edgeQueue: fc.option(fc.integer({ min: 0, max: 5 }), { nil: undefined }),
    deadlineIn: fc.option(positive(0, 400), { nil: undefined }),
    // What the request that follows the decision ran, and how it went.
    runs: fc.nat(),
    ok: fc.boolean(),
    edgeMs: positive(0, 400),
    networkMs: positive(0, 3000),
    remoteMs: positive(0, 80),
    codecMs: positive(0, 3),
  });

  it('ranks first the option choose picks, with hysteresis and exploration off', () => {
    fc.assert(
      fc.property(
        profileArb,
        fc.array(endpointArb, { minLength: 3, maxLength: 3 }),
        fc.constantFrom<'latency' | 'cost'>('latency', 'cost'),
        positive(0.2, 8),
        fc.array(stepArb, { minLength: 1, maxLength: 25 }),
        (profile, priors, objective, edgeScale, steps) => {
          const p = new AdaptivePlanner({
            profile,
            endpoints: priors.map((e, i) => ({ name: NAMES[i] as string, ...e })),
            objective: objective === 'cost' ? { kind: 'cost', deadlineMs: 150 } : { kind: 'latency' },
            hysteresis: false,
            exploration: false,
            edgeScale,
            // A still clock: an endpoint that fails stays down, never due for its probe.
            now: () => NOW,
          });
          for (const step of steps) {
            const context: PlanContext = {
              allowedEndpoints: step.allowed,
              ...(step.edgeQueue !== undefined ? { edgeQueue: step.edgeQueue } : {}),
              ...(step.deadlineIn !== undefined ? { deadline: NOW + step.deadlineIn } : {}),
            };
            const chosen = p.choose(context);
            const ranked = p.rank(context);
            expect(ranked[0]?.available).toBe(true);
            expect(describePlan(ranked[0]!.plan)).toBe(describePlan(chosen));
            const plan = ranked[step.runs % ranked.length]!.plan;
            const remote = plan.kind !== 'local';
            const observation: Observation = {
              plan,
              ok: step.ok,
              fellBack: false,
              queueMs: 0,
              edgeMs: plan.kind === 'offload' ? 0 : step.edgeMs,
              encodeMs: remote ? step.codecMs : 0,
              networkMs: remote ? step.networkMs : 0,
              remoteMs: remote ? step.remoteMs : 0,
              decodeMs: remote ? step.codecMs / 10 : 0,
              totalMs: step.edgeMs + step.networkMs,
              bytesSent: remote ? 50_000 : 0,
              bytesReceived: remote ? 4000 : 0,
              at: NOW,
            };
            p.observe(observation);
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
