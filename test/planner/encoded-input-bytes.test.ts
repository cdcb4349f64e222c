/**
 * Encoded offload in the planner: an offload that sends an encoded image (`PlanContext.inputBytes`)
 * is costed at those bytes, not at the profile's input tensors.
 */
import { describe, expect, it } from 'vitest';
import { describePlan } from '../../src/planner/plan.js';
import { planner } from '../helpers/planner-world.js';

describe('offload cost of an encoded image', () => {
  it('costs and prices the bytes the offload sends', () => {
    const p = planner({ endpoints: [{ name: 'a', rttMs: 40, bandwidthBitsPerSecond: 10e6, pricePerGB: 1 }], exploration: false });
    const offload = (inputBytes?: number) => p.rank({ allowedEndpoints: ['a'], ...(inputBytes !== undefined ? { inputBytes } : {}) }).find((o) => describePlan(o.plan) === 'offload→a');
    const tensors = offload();
    const jpeg = offload(6_000);
    expect(tensors?.bytesSent).toBe(600_000);
    expect(jpeg?.bytesSent).toBe(6_000);
    // 40 ms + 6 KB up and 4 KB down at 10 Mbit/s (8 ms), against 483.2 ms for the tensors.
    expect(jpeg?.networkMs).toBeCloseTo(40 + 8, 6);
    expect(tensors?.networkMs).toBeCloseTo(40 + 483.2, 6);
    expect(jpeg?.price).toBeLessThan(tensors?.price ?? 0);
    // At 10 Mbit/s the tensors make offload lose to a split; the JPEG makes it win.
    expect(describePlan(p.choose({ allowedEndpoints: ['a'] }))).not.toBe('offload→a');
    expect(describePlan(p.choose({ allowedEndpoints: ['a'], inputBytes: 6_000 }))).toBe('offload→a');
  });
});
