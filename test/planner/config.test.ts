import { describe, expect, it } from 'vitest';
import { PLANNER_DEFAULTS, resolvePlannerOptions } from '../../src/planner/config.js';
import { profile } from '../helpers/planner-world.js';

describe('planner options', () => {
  it('fills every default in one place', () => {
    const o = resolvePlannerOptions({ profile, endpoints: [{ name: 'a' }, { name: 'b', rttMs: 5, bandwidthBitsPerSecond: 1e9, pricePerRequest: 0.01, pricePerGB: 2 }] });
    expect(o.objective).toEqual({ kind: 'latency' });
    expect(o.hysteresis).toBe(0.05);
    expect(o.minHysteresis).toBe(0.02);
    expect(o.hysteresisMs).toBe(0.5);
    expect(o.exploration).toEqual({ afterDecisions: 20, budget: 0.05 });
    expect(o.edgeScale).toBe(1);
    expect(o.health).toEqual({});
    expect(o.estimator).toEqual({});
    expect(o.now).toBe(Date.now);
    expect(o.endpoints).toEqual([
      { name: 'a', rttMs: PLANNER_DEFAULTS.rttMs, bandwidthBitsPerSecond: PLANNER_DEFAULTS.bandwidthBitsPerSecond, pricePerRequest: 0, pricePerByte: 0 },
      { name: 'b', rttMs: 5, bandwidthBitsPerSecond: 1e9, pricePerRequest: 0.01, pricePerByte: 2e-9 },
    ]);
  });

  it('keeps minHysteresis at most hysteresis, and switches both off with hysteresis: false', () => {
    expect(resolvePlannerOptions({ profile, endpoints: [], hysteresis: 0.01 }).minHysteresis).toBe(0.01);
    const off = resolvePlannerOptions({ profile, endpoints: [], hysteresis: false, hysteresisMs: 3 });
    expect([off.hysteresis, off.minHysteresis, off.hysteresisMs]).toEqual([false, 0, 0]);
  });

  it('rejects a hysteresis outside [0, 1) and an endpoint with a negative round trip or no bandwidth', () => {
    expect(() => resolvePlannerOptions({ profile, endpoints: [], hysteresis: 1 })).toThrow(expect.objectContaining({ code: 'PLANNER_BAD_OPTION' }));
    expect(() => resolvePlannerOptions({ profile, endpoints: [], minHysteresis: -1 })).toThrow(expect.objectContaining({ code: 'PLANNER_BAD_OPTION' }));
    expect(() => resolvePlannerOptions({ profile, endpoints: [{ name: 'a', rttMs: -1 }] })).toThrow(/rtt must be ≥ 0/);
    expect(() => resolvePlannerOptions({ profile, endpoints: [{ name: 'a', bandwidthBitsPerSecond: 0 }] })).toThrow(/bandwidth > 0/);
  });
});
