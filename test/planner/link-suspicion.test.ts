import { describe, expect, it } from 'vitest';
import { AdaptivePlanner } from '../../src/planner/adaptive.js';
import type { Plan } from '../../src/planner/plan.js';
import { profile, type Link, World, drive, probeRound, scripted, planner } from '../helpers/planner-world.js';

describe('a transfer far slower than predicted', () => {
  // The cloud wins on a 200 Mbit/s, 5 ms link (split@c1 ≈ 36 ms, offload 39, local 100).
  const setup = (): { world: World; p: AdaptivePlanner; ctx: { allowedEndpoints: string[] }; remote: Plan } => {
    const world = new World({ a: { rttMs: 5, bitsPerSecond: 200e6 } }, 0.02);
    const p = new AdaptivePlanner({ profile, endpoints: [{ name: 'a', rttMs: 5, bandwidthBitsPerSecond: 200e6 }] });
    const ctx = { allowedEndpoints: ['a'] };
    for (let i = 0; i < 12; i++) p.observe(world.run(p.choose(ctx)));
    const remote = p.choose(ctx);
    expect(remote.kind).not.toBe('local');
    return { world, p, ctx, remote };
  };
  const probe = (world: World, p: AdaptivePlanner): void => probeRound(p, world.links['a'] as Link);

  it('after a collapse, sends no second request the slow way: the link is probed instead', () => {
    const { world, p, ctx, remote } = setup();
    (world.links['a'] as Link).bitsPerSecond = 2e6; // the cloud's options now take 1.2–2.4 s
    p.observe(world.run(remote));
    expect(p.snapshot().endpoints[0]?.linkSuspicion).toBeGreaterThan(2);
    expect(p.linkProbesDue(ctx)).toEqual(['a']);
    const plans = drive(p, world, ctx, 10, (plan) => {
      if (plan.kind === 'local' && p.linkProbesDue(ctx).length > 0) probe(world, p);
    });
    expect(plans).toEqual(Array(10).fill('local'));
    // The probe confirmed it: the estimate holds the new bandwidth and the suspicion is gone.
    const a = p.snapshot().endpoints[0];
    expect(a?.linkSuspicion).toBe(1);
    expect(a?.bandwidthMbit).toBeLessThan(4);
  });

  it('after a lone stall, a probe clears the suspicion and the cloud is used again', () => {
    const { world, p, ctx, remote } = setup();
    const stalled = world.run(remote);
    p.observe({ ...stalled, networkMs: stalled.networkMs + 400, totalMs: stalled.totalMs + 400 });
    expect(p.choose(ctx).kind).toBe('local');
    probe(world, p);
    expect(p.snapshot().endpoints[0]?.linkSuspicion).toBe(1);
    expect(p.choose(ctx).kind).not.toBe('local');
    expect(p.snapshot().endpoints[0]?.bandwidthMbit).toBeGreaterThan(100);
  });

  it('after a lone stall and no probe, lets the suspicion lapse within 7 decisions', () => {
    const { world, p, ctx, remote } = setup();
    const stalled = world.run(remote);
    p.observe({ ...stalled, networkMs: stalled.networkMs + 400, totalMs: stalled.totalMs + 400 });
    const plans = drive(p, world, ctx, 12);
    const back = plans.findIndex((x) => x !== 'local');
    expect(back).toBeGreaterThan(0);
    expect(back).toBeLessThanOrEqual(7);
    expect(plans.slice(back).filter((x) => x === 'local').length).toBeLessThanOrEqual(1);
  });
});

describe('out-of-band link probes', () => {
  it('asks for a probe before first use and when the link has been idle, and trusts what it reports', () => {
    const p = planner({ endpoints: [{ name: 'a', rttMs: 10, bandwidthBitsPerSecond: 0.5e6 }] });
    const ctx = { allowedEndpoints: ['a'] };
    expect(p.linkProbesDue(ctx)).toEqual(['a']);
    expect(p.choose(ctx).kind).toBe('local');
    // The link is really 1 Gbit/s with a 10 ms round trip: two probes of different sizes say so.
    p.reportLinkProbe('a', 10.1, 256);
    p.reportLinkProbe('a', 10 + (65_536 * 8000) / 1e9, 65_536);
    p.reportLinkProbe('a', 10.05, 1024);
    expect(p.linkProbesDue(ctx)).toEqual([]);
    expect(p.snapshot().endpoints[0]?.bandwidthMbit).toBeGreaterThan(500);
    expect(p.choose(ctx).kind).toBe('offload');
    // Not for endpoints outside the context or down.
    expect(p.linkProbesDue({ allowedEndpoints: ['b'] })).toEqual([]);
  });
  it('asks again after 3 decisions without news from the link, sooner than an exploration', () => {
    const p = planner({ endpoints: [{ name: 'a', rttMs: 10, bandwidthBitsPerSecond: 0.5e6 }] });
    const ctx = { allowedEndpoints: ['a'] };
    p.choose(ctx);
    p.reportLinkProbe('a', 10 + (256 * 8000) / 0.5e6, 256);
    p.reportLinkProbe('a', 10 + (131_072 * 8000) / 0.5e6, 131_072);
    const due: boolean[] = [];
    for (let i = 0; i < 4; i++) {
      expect(p.choose(ctx).kind).toBe('local');
      due.push(p.linkProbesDue(ctx).length > 0);
    }
    expect(due).toEqual([false, false, true, true]);
  });
});

describe('a link step while the edge runs a split that sends a small tensor', () => {
  const c4: Plan = { kind: 'split', cut: 'c4', endpoint: 'a' };
  const probe = (world: World, p: AdaptivePlanner): void => probeRound(p, world.links['a'] as Link);
  const setup = (): { world: World; p: AdaptivePlanner; ctx: { allowedEndpoints: string[] }; observe: (plan: Plan) => void } => {
    const world = new World({ a: { rttMs: 20, bitsPerSecond: 2e6 } }, 0);
    const p = new AdaptivePlanner({ profile, endpoints: [{ name: 'a', rttMs: 20, bandwidthBitsPerSecond: 2e6 }] });
    const ctx = { allowedEndpoints: ['a'] };
    return { world, p, ctx, observe: scripted(p, world, ctx) };
  };

  it('asks for the bandwidth 3 decisions after the last large transfer, small transfers notwithstanding', () => {
    const { world, p, ctx, observe } = setup();
    observe({ kind: 'local' });
    probe(world, p);
    const due: boolean[] = [];
    for (let i = 0; i < 4; i++) {
      // Each c4 run moves 8 KB: news of the round trip, not of the bandwidth.
      observe(c4);
      due.push(p.linkProbesDue(ctx).length > 0);
    }
    expect(due).toEqual([false, false, true, true]);
  });

  it('takes the probe\'s large transfer as fresh news: one round moves the bandwidth 10×', () => {
    const { world, p, ctx, observe } = setup();
    for (let i = 0; i < 6; i++) observe(c4);
    probe(world, p);
    for (let i = 0; i < 3; i++) observe(c4);
    expect(p.snapshot().endpoints[0]?.bandwidthMbit).toBeLessThan(3);
    (world.links['a'] as Link).bitsPerSecond = 20e6;
    expect(p.linkProbesDue(ctx)).toEqual(['a']);
    probe(world, p);
    expect(p.snapshot().endpoints[0]?.bandwidthMbit).toBeGreaterThan(15);
  });
});
