import { describe, expect, it } from 'vitest';
import { describePlan, type Plan } from '../../src/planner/plan.js';
import { type Link, World, planner } from '../helpers/planner-world.js';

describe('residency filter', () => {
  it('never picks an endpoint outside allowedEndpoints and answers locally when none is allowed', () => {
    const p = planner({ endpoints: [{ name: 'a', rttMs: 1, bandwidthBitsPerSecond: 1e9 }, { name: 'b', rttMs: 50, bandwidthBitsPerSecond: 1e9 }] });
    expect(p.choose({ allowedEndpoints: ['a', 'b'] })).toEqual({ kind: 'offload', endpoint: 'a' });
    for (let i = 0; i < 200; i++) {
      const plan = p.choose({ allowedEndpoints: ['b'] });
      expect(plan.kind === 'local' ? 'b' : plan.endpoint).toBe('b');
    }
    for (let i = 0; i < 50; i++) expect(p.choose({ allowedEndpoints: [] })).toEqual({ kind: 'local' });
    expect(p.choose({ allowedEndpoints: ['unknown'] })).toEqual({ kind: 'local' });
  });
});

describe('learning online', () => {
  it('corrects a wrong prior within a few requests', () => {
    const world = new World({ a: { rttMs: 20, bitsPerSecond: 1e6 }, b: { rttMs: 20, bitsPerSecond: 1e6 } });
    const p = planner({ endpoints: [{ name: 'a', rttMs: 5, bandwidthBitsPerSecond: 500e6 }, { name: 'b', rttMs: 5, bandwidthBitsPerSecond: 500e6 }] });
    const ctx = { allowedEndpoints: ['a', 'b'] };
    expect(p.choose(ctx).kind).toBe('offload');
    let plan: Plan = { kind: 'offload', endpoint: 'a' };
    for (let i = 0; i < 6; i++) {
      plan = p.choose(ctx);
      p.observe(world.run(plan));
    }
    expect(plan.kind).toBe('local');
  });

  it('is within 10% of the oracle at most 5 requests after each 10× bandwidth step, and does not flap', () => {
    const world = new World({ a: { rttMs: 20, bitsPerSecond: 50e6 } });
    const p = planner({ endpoints: [{ name: 'a', rttMs: 20, bandwidthBitsPerSecond: 50e6 }] });
    const ctx = { allowedEndpoints: ['a'] };
    const steps = [50e6, 5e6, 50e6, 2e6, 20e6];
    const worst: number[] = [];
    let switches = 0;
    let last = '';
    for (const bw of steps) {
      (world.links['a'] as Link).bitsPerSecond = bw;
      const oracle = world.oracle(['a']).ms;
      const good: boolean[] = [];
      for (let i = 0; i < 60; i++) {
        const plan = p.choose(ctx);
        p.observe(world.run(plan));
        const name = describePlan(plan);
        if (i >= 10 && name !== last) switches += 1;
        last = name;
        good.push(world.truth(plan) <= oracle * 1.1);
      }
      // Requests until the choice is within 10% of the oracle three times in a row.
      const converged = good.findIndex((_, i) => good[i] && good[i + 1] && good[i + 2]) + 1;
      worst.push(converged);
    }
    if (process.env["DBG"]) console.log("converged", worst, "switches", switches);
    // Steps up from local (50 → 5 → 50) need exploration to be noticed; its budget bounds them.
    for (const [i, n] of worst.entries()) {
      if (i === 0 || steps[i]! < steps[i - 1]!) expect(n, `step ${i}`).toBeLessThanOrEqual(5);
      expect(n, `step ${i}`).toBeGreaterThan(0);
    }
    // Settled periods: a handful of switches from exploration at most.
    expect(switches).toBeLessThanOrEqual(20);
  });
});
