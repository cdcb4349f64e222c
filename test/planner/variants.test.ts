/**
 * Model variants (pruned models) as planner options: eligible only within `maxAccuracyDrop`,
 * refused when unmeasured, weighed by the same cost formula as every other option.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AdaptivePlanner } from '../../src/planner/adaptive.js';
import { CostTables } from '../../src/planner/cost-model.js';
import { OptionSpace } from '../../src/planner/options.js';
import { describePlan, type Plan } from '../../src/planner/plan.js';
import type { Profile, VariantProfile } from '../../src/planner/profile.js';
import { codeOf } from '../helpers/errors.js';
import { profile } from '../helpers/planner-world.js';

/** A pruned variant of the chain model: every head `scale` × as long, cuts `thin` × as wide. */
function variant(id: string, accuracyDrop: number | undefined, scale: number, thin = 0.7): VariantProfile {
  return {
    id,
    modelSha256: `sha-${id}`,
    ...(accuracyDrop !== undefined ? { accuracyDrop } : {}),
    localMs: profile.localMs * scale,
    remoteMs: {},
    cuts: profile.cuts.map((c) => ({ ...c, headMs: c.headMs * scale, headFlops: c.headFlops * scale, bytes: c.id === 'c0' ? c.bytes : Math.round(c.bytes * thin) })),
  };
}

const withVariants = (...variants: VariantProfile[]): Profile => ({ ...profile, variants });
/** A link too slow for anything but a tiny transfer: the edge does the work. */
const slowLink = { name: 'a', rttMs: 20, bandwidthBitsPerSecond: 0.2e6 };
const ctx = { allowedEndpoints: ['a'] };

function decide(p: AdaptivePlanner): Plan {
  return p.choose(ctx);
}

describe('planner: model variants', () => {
  it('runs a pruned variant when the edge is slow and the variant is within the accuracy budget', () => {
    const p = new AdaptivePlanner({ profile: withVariants(variant('p70', 0.004, 0.6)), endpoints: [slowLink], maxAccuracyDrop: 0.01, edgeScale: 4, hysteresis: false, exploration: false });
    expect(decide(p)).toEqual({ kind: 'local', variant: 'p70' });
    // The same planner without a budget never considers it.
    const strict = new AdaptivePlanner({ profile: withVariants(variant('p70', 0.004, 0.6)), endpoints: [slowLink], edgeScale: 4, hysteresis: false, exploration: false });
    expect(decide(strict)).toEqual({ kind: 'local' });
  });

  it('never picks a variant outside the budget, however fast', () => {
    const p = new AdaptivePlanner({
      profile: withVariants(variant('p30', 0.05, 0.1), variant('p70', 0.008, 0.7)),
      endpoints: [slowLink],
      maxAccuracyDrop: 0.01,
      edgeScale: 4,
      hysteresis: false,
    });
    const seen = new Set<string>();
    for (let i = 0; i < 300; i++) {
      const plan = decide(p);
      seen.add(describePlan(plan));
      p.observe({ plan, ok: true, fellBack: false, queueMs: 0, edgeMs: 400 * (plan.kind === 'local' && plan.variant === 'p70' ? 0.7 : 1), encodeMs: 0, networkMs: 0, remoteMs: 0, decodeMs: 0, totalMs: 400, bytesSent: 0, bytesReceived: 0, at: i });
    }
    expect([...seen].some((d) => d.includes('p30'))).toBe(false);
    expect(seen.has('local~p70')).toBe(true);
    expect(p.rank(ctx).some((o) => describePlan(o.plan).includes('p30'))).toBe(false);
  });

  it('splits with the variant\'s head and thinner cut when that is fastest', () => {
    // A fast link and a slow edge: a split's head dominates, and the variant's is shorter and sends less.
    const p = new AdaptivePlanner({
      profile: withVariants(variant('p70', 0.005, 0.6)),
      endpoints: [{ name: 'a', rttMs: 5, bandwidthBitsPerSecond: 200e6 }],
      maxAccuracyDrop: 0.01,
      edgeScale: 4,
      hysteresis: false,
      exploration: false,
    });
    // Offload out of the question (residency: features only), so the edge must run a head.
    const limits = new Map([['a', { raw: false, features: [{ minCutDepth: 1 }] }]]);
    const plan = p.choose({ ...ctx, sendLimits: limits });
    expect(plan).toEqual({ kind: 'split', cut: 'c1', endpoint: 'a', variant: 'p70' });
    const ranked = p.rank({ ...ctx, sendLimits: limits });
    const variantSplit = ranked.find((o) => describePlan(o.plan) === 'split@c1~p70→a')!;
    const split = ranked.find((o) => describePlan(o.plan) === 'split@c1→a')!;
    expect(variantSplit.bytesSent).toBe(Math.round(300_000 * 0.7));
    expect(variantSplit.totalMs).toBeLessThan(split.totalMs);
  });

  it('over any link, edge speed, budget and drops, chooses only variants within the budget, and the fastest option', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.05e6, max: 500e6, noNaN: true }),
        fc.double({ min: 1, max: 200, noNaN: true }),
        fc.double({ min: 0.25, max: 16, noNaN: true }),
        fc.double({ min: 0, max: 0.05, noNaN: true }),
        fc.array(fc.double({ min: 0, max: 0.05, noNaN: true }), { minLength: 1, maxLength: 3 }),
        (bandwidth, rttMs, edgeScale, budget, drops) => {
          const variants = drops.map((d, i) => variant(`v${i}`, d, 0.3 + 0.2 * i));
          const p = new AdaptivePlanner({ profile: withVariants(...variants), endpoints: [{ name: 'a', rttMs, bandwidthBitsPerSecond: bandwidth }], maxAccuracyDrop: budget, edgeScale, hysteresis: false, exploration: false });
          const plan = decide(p);
          const used = plan.kind === 'offload' ? undefined : plan.variant;
          if (used !== undefined) expect(variants.find((v) => v.id === used)!.accuracyDrop!).toBeLessThanOrEqual(budget);
          const ranked = p.rank(ctx);
          for (const o of ranked) {
            const v = o.plan.kind === 'offload' ? undefined : o.plan.variant;
            if (v !== undefined) expect(variants.find((x) => x.id === v)!.accuracyDrop!).toBeLessThanOrEqual(budget);
          }
          // With hysteresis and exploration off, what it picks is the fastest option ranked.
          expect(plan).toEqual(ranked[0]!.plan);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('refuses maxAccuracyDrop when a variant has no measured accuracy', () => {
    expect(codeOf(() => new AdaptivePlanner({ profile: withVariants(variant('p70', 0.004, 0.6), variant('p50', undefined, 0.5)), endpoints: [slowLink], maxAccuracyDrop: 0.01 }))).toBe('PLANNER_VARIANT_UNMEASURED');
    // Without the budget the unmeasured variant is simply not an option.
    expect(() => new AdaptivePlanner({ profile: withVariants(variant('p50', undefined, 0.5)), endpoints: [slowLink] })).not.toThrow();
    expect(codeOf(() => new CostTables(withVariants(variant('p70', 0.004, 0.6)), ['a'], { maxAccuracyDrop: 2 }))).toBe('PLANNER_BAD_OPTION');
  });

  it('numbers variant options so that ids and plans round-trip', () => {
    const tables = new CostTables(withVariants(variant('p70', 0.004, 0.6), variant('p50', 0.009, 0.5)), ['a', 'b'], { maxAccuracyDrop: 0.01 });
    const space = new OptionSpace(tables);
    expect(tables.variantIds).toEqual(['p70', 'p50']);
    // 3 model rows (c1..c3; c4 is the whole model) + 3 per variant.
    expect(tables.cutCount).toBe(9);
    const plans: Plan[] = [
      { kind: 'local' },
      { kind: 'local', variant: 'p50' },
      { kind: 'offload', endpoint: 'b' },
      { kind: 'split', cut: 'c2', endpoint: 'a' },
      { kind: 'split', cut: 'c2', endpoint: 'b', variant: 'p70' },
      { kind: 'split', cut: 'c3', endpoint: 'a', variant: 'p50' },
    ];
    for (const plan of plans) {
      const id = space.idOf(plan);
      expect(space.planOf(id)).toEqual(plan);
      expect(space.groupOf(id)).toBe(plan.kind === 'local' ? space.localGroup : plan.endpoint === 'a' ? 0 : 1);
    }
    expect(space.idOf({ kind: 'local', variant: 'nope' })).toBeNaN();
    expect(space.idOf({ kind: 'split', cut: 'c2', endpoint: 'a', variant: 'nope' })).toBeNaN();
  });

  it('learns the edge speed from a variant\'s local runs against the variant\'s own profiled time', () => {
    const p = new AdaptivePlanner({ profile: withVariants(variant('p70', 0.004, 0.5)), endpoints: [slowLink], maxAccuracyDrop: 0.01, hysteresis: false, exploration: false });
    // The variant took 200 ms where the profile says 50: the edge is 4× slower than profiled.
    p.observe({ plan: { kind: 'local', variant: 'p70' }, ok: true, fellBack: false, queueMs: 0, edgeMs: 200, encodeMs: 0, networkMs: 0, remoteMs: 0, decodeMs: 0, totalMs: 200, bytesSent: 0, bytesReceived: 0, at: 1 });
    expect(p.snapshot().edgeScale).toBeCloseTo(4, 5);
  });
});
