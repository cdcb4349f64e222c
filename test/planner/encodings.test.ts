/**
 * Cut encodings chosen per request: int8 where the link is slow, float32 where it is fast,
 * and never an encoding outside the output-error budget or one the endpoint cannot carry.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AdaptivePlanner } from '../../src/planner/adaptive.js';
import { describePlan, type Plan } from '../../src/planner/plan.js';
import type { Profile } from '../../src/planner/profile.js';

/**
 * 2 s on a slow edge, 10 ms in the cloud; the 300 KB cut after a 10 ms head is the only
 * split, with float16 (150 KB) and int8 (75 KB) measured, int8 costing 1 ms of codec time.
 */
function profile(int8Error = 0.004, fp16Error = 0.0002): Profile {
  return {
    version: 1,
    model: 'chain',
    modelSha256: 'x',
    shapes: { x: [1, 3, 224, 224] },
    edgeSlowdown: 1,
    workers: 1,
    localMs: 2000,
    remoteMs: { cloud: 10 },
    inputBytes: 600_000,
    outputBytes: 4_000,
    cuts: [
      { id: 'c0', tensors: ['x'], bytes: 600_000, headFlops: 0, headMs: 0, tailMs: {}, outputBytes: 4000 },
      {
        id: 'c1',
        tensors: ['t1'],
        bytes: 300_000,
        headFlops: 10,
        headMs: 10,
        tailMs: { cloud: 9 },
        outputBytes: 4000,
        codecMs: 0.2,
        encodings: {
          float16: { bytes: 150_000, encodeMs: 0.3, decodeMs: 0.2, maxError: fp16Error, meanError: fp16Error / 2 },
          int8: { bytes: 75_000, encodeMs: 0.8, decodeMs: 0.4, maxError: int8Error, meanError: int8Error / 2 },
        },
      },
      { id: 'c2', tensors: ['y'], bytes: 4_000, headFlops: 100, headMs: 2000, tailMs: {}, outputBytes: 4000 },
    ],
  };
}

function plannerFor(p: Profile, link: { rttMs: number; bandwidthBitsPerSecond: number }, extra: { maxOutputError?: number; encodings?: ('float16' | 'int8')[] } = {}): AdaptivePlanner {
  return new AdaptivePlanner({
    profile: p,
    endpoints: [{ name: 'cloud', ...link, encodings: extra.encodings ?? ['float16', 'int8'] }],
    exploration: false,
    hysteresis: false,
    ...(extra.maxOutputError !== undefined ? { maxOutputError: extra.maxOutputError } : {}),
  });
}

const choose = (p: AdaptivePlanner): Plan => p.choose({ allowedEndpoints: ['cloud'] });
const encodingOf = (plan: Plan): string | undefined => (plan.kind === 'split' ? (plan.encoding ?? 'float32') : undefined);

describe('cut encodings in the planner', () => {
  it('splits with int8 on a 2 Mbit/s link and float32 on a loopback-fast one', () => {
    // Offload is 600 KB: 2.4 s at 2 Mbit/s. float32 at c1 is 1.2 s, int8 0.3 s.
    const slow = choose(plannerFor(profile(), { rttMs: 40, bandwidthBitsPerSecond: 2e6 }, { maxOutputError: 0.01 }));
    expect(slow).toEqual({ kind: 'split', cut: 'c1', endpoint: 'cloud', encoding: 'int8' });
    expect(describePlan(slow)).toBe('split@c1/int8→cloud');
    // At 10 Gbit/s the bytes cost microseconds: int8's codec time loses to float32.
    const fast = choose(plannerFor(profile(), { rttMs: 0.1, bandwidthBitsPerSecond: 1e10 }, { maxOutputError: 0.01 }));
    expect(fast.kind === 'offload' || encodingOf(fast) === 'float32').toBe(true);
    const p = plannerFor(profile(), { rttMs: 0.1, bandwidthBitsPerSecond: 1e10 }, { maxOutputError: 0.01 });
    const ranked = p.rank({ allowedEndpoints: ['cloud'] }).filter((o) => o.plan.kind === 'split' && o.plan.cut === 'c1');
    expect(ranked.map((o) => encodingOf(o.plan))).toEqual(['float32', 'float16', 'int8']);
  });

  it('never picks an encoding outside the budget, without a budget, or one the endpoint cannot carry', () => {
    const slow = { rttMs: 40, bandwidthBitsPerSecond: 2e6 };
    // int8 measured at 4% output error: out of a 1% budget, so float16 is the best split.
    expect(choose(plannerFor(profile(0.04), slow, { maxOutputError: 0.01 }))).toEqual({ kind: 'split', cut: 'c1', endpoint: 'cloud', encoding: 'float16' });
    expect(encodingOf(choose(plannerFor(profile(), slow)))).toBe('float32');
    expect(encodingOf(choose(plannerFor(profile(), slow, { maxOutputError: 0.01, encodings: [] })))).toBe('float32');
    const noInt8 = plannerFor(profile(), slow, { maxOutputError: 0.01, encodings: ['float16'] });
    expect(encodingOf(choose(noInt8))).toBe('float16');
    expect(noInt8.rank({ allowedEndpoints: ['cloud'] }).some((o) => encodingOf(o.plan) === 'int8')).toBe(false);
  });

  it('over any link and budget, chooses only encodings measured within the budget', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 1e5, max: 1e10, noNaN: true }),
        fc.double({ min: 0, max: 200, noNaN: true }),
        fc.double({ min: 0, max: 0.05, noNaN: true }),
        fc.double({ min: 0, max: 0.05, noNaN: true }),
        (bps, rttMs, budget, int8Error) => {
          const plan = choose(plannerFor(profile(int8Error, 0.0002), { rttMs, bandwidthBitsPerSecond: bps }, { maxOutputError: budget }));
          const e = encodingOf(plan);
          if (e === 'int8') expect(int8Error).toBeLessThanOrEqual(budget);
          if (e === 'float16') expect(0.0002).toBeLessThanOrEqual(budget);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('learns from a run of an encoded split without mistaking it for float32', () => {
    const p = plannerFor(profile(), { rttMs: 40, bandwidthBitsPerSecond: 2e6 }, { maxOutputError: 0.01 });
    const plan = choose(p);
    expect(encodingOf(plan)).toBe('int8');
    p.observe({ plan, ok: true, fellBack: false, queueMs: 0, edgeMs: 10, encodeMs: 1, networkMs: 340, remoteMs: 9, decodeMs: 0.1, totalMs: 360, bytesSent: 75_000, bytesReceived: 4_000, at: Date.now() });
    expect(choose(p)).toEqual(plan);
  });
});
