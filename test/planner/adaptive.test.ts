import { describe, expect, it } from 'vitest';
import { AdaptivePlanner, type AdaptivePlannerOptions } from '../../src/planner/adaptive.js';
import { describePlan, type Observation, type Plan } from '../../src/planner/plan.js';
import type { Profile } from '../../src/planner/profile.js';
import { parseBandwidth, parseDuration } from '../../src/planner/units.js';

/**
 * A chain-shaped model: 100 ms on the edge, 10 ms in the cloud, activations shrinking from
 * the 600 KB input to the 4 KB output. Offload wins on fast links, a split in the middle on
 * medium ones and local on slow ones.
 */
const profile: Profile = {
  version: 1,
  model: 'chain',
  modelSha256: 'x',
  shapes: { x: [1, 3, 224, 224] },
  edgeSlowdown: 1,
  workers: 1,
  localMs: 100,
  remoteMs: { a: 10, b: 10 },
  inputBytes: 600_000,
  outputBytes: 4_000,
  cuts: [
    { id: 'c0', tensors: ['x'], bytes: 600_000, headFlops: 0, headMs: 0, tailMs: {}, outputBytes: 4000 },
    { id: 'c1', tensors: ['t1'], bytes: 300_000, headFlops: 10, headMs: 10, tailMs: {}, outputBytes: 4000 },
    { id: 'c2', tensors: ['t2'], bytes: 30_000, headFlops: 40, headMs: 40, tailMs: {}, outputBytes: 4000 },
    { id: 'c3', tensors: ['t3'], bytes: 8_000, headFlops: 80, headMs: 80, tailMs: {}, outputBytes: 4000 },
    { id: 'c4', tensors: ['y'], bytes: 4_000, headFlops: 100, headMs: 100, tailMs: {}, outputBytes: 4000 },
  ],
};

interface Link {
  rttMs: number;
  bitsPerSecond: number;
  remoteScale?: number;
  down?: boolean;
}

/** The world the planner lives in: the true times of every plan, with multiplicative noise. */
class World {
  links: Record<string, Link>;
  edgeScale = 1;
  private seed = 7;
  constructor(links: Record<string, Link>, private readonly noise = 0.05) {
    this.links = links;
  }
  private gaussian(): number {
    // LCG + Box-Muller: deterministic.
    const next = (): number => {
      this.seed = (this.seed * 1664525 + 1013904223) >>> 0;
      return (this.seed + 0.5) / 4294967296;
    };
    return Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next());
  }
  private jitter(x: number): number {
    return x * Math.max(0.5, 1 + this.noise * this.gaussian());
  }
  /** Noise-free end-to-end time. */
  truth(plan: Plan): number {
    return this.parts(plan, false).totalMs;
  }
  run(plan: Plan, at = 0): Observation {
    return { ...this.parts(plan, true), plan, at };
  }
  oracle(endpoints: string[]): { plan: Plan; ms: number } {
    const plans: Plan[] = [{ kind: 'local' }];
    for (const e of endpoints) {
      plans.push({ kind: 'offload', endpoint: e });
      for (const c of ['c1', 'c2', 'c3']) plans.push({ kind: 'split', cut: c, endpoint: e });
    }
    let best = { plan: plans[0] as Plan, ms: Number.POSITIVE_INFINITY };
    for (const p of plans) {
      const ms = this.truth(p);
      if (ms < best.ms) best = { plan: p, ms };
    }
    return best;
  }
  private parts(plan: Plan, noisy: boolean): Omit<Observation, 'plan' | 'at'> {
    const j = (x: number): number => (noisy ? this.jitter(x) : x);
    const base = { ok: true, fellBack: false, queueMs: 0, encodeMs: 0, decodeMs: 0 };
    if (plan.kind === 'local') {
      const edgeMs = j(profile.localMs * this.edgeScale);
      return { ...base, edgeMs, networkMs: 0, remoteMs: 0, totalMs: edgeMs, bytesSent: 0, bytesReceived: 0 };
    }
    const link = this.links[plan.endpoint] as Link;
    const cut = plan.kind === 'split' ? profile.cuts.find((c) => c.id === plan.cut) : undefined;
    const sent = cut ? cut.bytes : profile.inputBytes;
    const headMs = cut ? j(cut.headMs * this.edgeScale) : 0;
    const remoteMs = j(10 * (1 - (cut ? cut.headFlops : 0) / 100) * (link.remoteScale ?? 1));
    const networkMs = j(link.rttMs + ((sent + profile.outputBytes) * 8000) / link.bitsPerSecond);
    if (link.down) {
      return { ...base, ok: false, edgeMs: headMs, networkMs: 0, remoteMs: 0, totalMs: headMs + 5, bytesSent: 0, bytesReceived: 0 };
    }
    return { ...base, edgeMs: headMs, networkMs, remoteMs, totalMs: headMs + networkMs + remoteMs, bytesSent: sent, bytesReceived: profile.outputBytes };
  }
}

/** Runs `decisions` requests through the planner in the world; returns the plans it chose, in order. */
function drive(p: AdaptivePlanner, world: World, ctx: { allowedEndpoints: string[] }, decisions: number, onChosen?: (plan: Plan) => void): string[] {
  const plans: string[] = [];
  for (let i = 0; i < decisions; i++) {
    const plan = p.choose(ctx);
    plans.push(describePlan(plan));
    onChosen?.(plan);
    p.observe(world.run(plan));
  }
  return plans;
}

/** A noise-free probe round over `link` (256 B, then 128 KB), as the harness sends it while the link is quiet. */
function probeRound(p: AdaptivePlanner, link: Link): void {
  for (const bytes of [256, 131_072]) p.reportLinkProbe('a', link.rttMs + (bytes * 8000) / link.bitsPerSecond, bytes);
}

/**
 * Scripts the planner's experience: each call lets it decide (whatever it picks), then reports
 * a run of `plan` in the world, with the edge time given when there is one.
 */
function scripted(p: AdaptivePlanner, world: World, ctx: { allowedEndpoints: string[] }): (plan: Plan, edgeMs?: number) => void {
  return (plan, edgeMs) => {
    p.choose(ctx);
    const o = world.run(plan);
    if (edgeMs !== undefined) o.edgeMs = edgeMs;
    p.observe(o);
  };
}

/**
 * One endpoint at 10 ms, 8 Mbit/s, a noise-free world at the profile's speed, and a script of
 * local and split@c2 runs (edge times given where a test needs them).
 */
function c2Script(): {
  p: AdaptivePlanner;
  ctx: { allowedEndpoints: string[] };
  world: World;
  local: Plan;
  c2: Plan;
  observe: (plan: Plan, edgeMs?: number) => void;
} {
  const p = new AdaptivePlanner({ profile, endpoints: [{ name: 'a', rttMs: 10, bandwidthBitsPerSecond: 8e6 }] });
  const ctx = { allowedEndpoints: ['a'] };
  const world = new World({ a: { rttMs: 10, bitsPerSecond: 8e6 } }, 0);
  return { p, ctx, world, local: { kind: 'local' }, c2: { kind: 'split', cut: 'c2', endpoint: 'a' }, observe: scripted(p, world, ctx) };
}

function planner(extra: Partial<AdaptivePlannerOptions> = {}, clock = { t: 0 }): AdaptivePlanner {
  return new AdaptivePlanner({
    profile,
    endpoints: [
      { name: 'a', rttMs: 20, bandwidthBitsPerSecond: 20e6 },
      { name: 'b', rttMs: 20, bandwidthBitsPerSecond: 20e6 },
    ],
    now: () => clock.t,
    ...extra,
  });
}

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

describe('hysteresis', () => {
  it('does not flap between two near-equal endpoints under noise', () => {
    const world = new World({ a: { rttMs: 20, bitsPerSecond: 100e6 }, b: { rttMs: 20.5, bitsPerSecond: 100e6 } }, 0.1);
    const ctx = { allowedEndpoints: ['a', 'b'] };
    const count = (hysteresis: number): number => {
      const p = planner({ hysteresis, hysteresisMs: hysteresis > 0 ? 0.5 : 0, exploration: false, endpoints: [{ name: 'a' }, { name: 'b' }] });
      let switches = 0;
      let last = '';
      for (let i = 0; i < 300; i++) {
        const plan = p.choose(ctx);
        p.observe(world.run(plan));
        const name = plan.kind === 'local' ? 'local' : plan.endpoint;
        if (i > 0 && name !== last) switches += 1;
        last = name;
      }
      return switches;
    };
    expect(count(0.05)).toBeLessThanOrEqual(3);
  });

  it('narrows on steady runs, so a quiet system moves to an option a few per cent faster', () => {
    // b's round trip is 2 ms shorter than a's; the prior says they are equal, so a is held
    // first. Runs scatter 1% around their means: the hysteresis shrinks toward 2% and b,
    // once measured ≈ 4% faster, takes over. A fixed 5% keeps a.
    const world = new World({ a: { rttMs: 20, bitsPerSecond: 100e6 }, b: { rttMs: 18, bitsPerSecond: 100e6 } }, 0.01);
    const ctx = { allowedEndpoints: ['a', 'b'] };
    const bestOn = (e: string): number =>
      Math.min(world.truth({ kind: 'offload', endpoint: e }), ...['c1', 'c2', 'c3'].map((cut) => world.truth({ kind: 'split', cut, endpoint: e })));
    const gain = bestOn('a') / bestOn('b');
    expect(gain).toBeGreaterThan(1.025);
    expect(gain).toBeLessThan(1.05);
    const tail = (minHysteresis: number): { onB: number; hysteresis: number } => {
      const p = planner({ minHysteresis, endpoints: [{ name: 'a', rttMs: 20, bandwidthBitsPerSecond: 100e6 }, { name: 'b', rttMs: 20, bandwidthBitsPerSecond: 100e6 }] });
      expect(p.snapshot().hysteresis).toBe(0.05);
      let onB = 0;
      for (let i = 0; i < 80; i++) {
        const plan = p.choose(ctx);
        p.observe(world.run(plan));
        if (i >= 60 && plan.kind !== 'local' && plan.endpoint === 'b') onB += 1;
      }
      return { onB, hysteresis: p.snapshot().hysteresis };
    };
    const adaptive = tail(0.02);
    // Over the last 20 requests: held on b, a near miss re-measured every 5 decisions.
    expect(adaptive.onB).toBeGreaterThanOrEqual(15);
    expect(adaptive.hysteresis).toBeLessThan(0.03);
    // Held on a, b the re-measured near miss.
    expect(tail(0.05).onB).toBeLessThanOrEqual(5);
  });
});

describe('a held plan whose runs miss their prediction the same way', () => {
  it('is judged by what its runs take, time the breakdown does not attribute included', () => {
    // Offload is predicted at ≈ 72 ms and c1 at ≈ 75; every offload takes 40 ms more than its
    // parts (say, a proxy in the way), which no estimator can see. The held offload's bias
    // hands the plan to c1 within a few requests.
    const world = new World({ a: { rttMs: 50, bitsPerSecond: 400e6 } }, 0.01);
    const p = new AdaptivePlanner({ profile, endpoints: [{ name: 'a', rttMs: 50, bandwidthBitsPerSecond: 400e6 }] });
    const ctx = { allowedEndpoints: ['a'] };
    const plans: string[] = [];
    for (let i = 0; i < 30; i++) {
      const plan = p.choose(ctx);
      plans.push(describePlan(plan));
      const o = world.run(plan);
      p.observe(plan.kind === 'offload' ? { ...o, totalMs: o.totalMs + 40 } : o);
    }
    expect(plans[0]).toBe('offload→a');
    expect(plans.slice(0, 4)).toContain('split@c1→a');
    expect(plans.slice(4).filter((x) => x === 'offload→a').length).toBeLessThanOrEqual(3);
  });
});

describe('health', () => {
  it('avoids a failed endpoint, probes it after the back-off and resumes when the probe succeeds', () => {
    const clock = { t: 0 };
    const world = new World({ a: { rttMs: 5, bitsPerSecond: 1e9 }, b: { rttMs: 15, bitsPerSecond: 1e9 } });
    const p = planner(
      { endpoints: [{ name: 'a', rttMs: 5, bandwidthBitsPerSecond: 1e9 }, { name: 'b', rttMs: 15, bandwidthBitsPerSecond: 1e9 }], health: { initialBackoffMs: 1000 } },
      clock,
    );
    const ctx = { allowedEndpoints: ['a', 'b'] };
    expect(p.choose(ctx)).toEqual({ kind: 'offload', endpoint: 'a' });
    (world.links['a'] as Link).down = true;
    p.observe(world.run({ kind: 'offload', endpoint: 'a' }));
    expect(p.snapshot().endpoints[0]?.health).toBe('down');
    for (let i = 0; i < 20; i++) {
      clock.t += 10;
      const plan = p.choose(ctx);
      expect(plan.kind !== 'local' && plan.endpoint).toBe('b');
      p.observe(world.run(plan));
    }
    // Back-off elapsed: exactly one probe goes to a.
    clock.t = 1500;
    const probe = p.choose(ctx);
    expect(probe.kind !== 'local' && probe.endpoint).toBe('a');
    const next = p.choose(ctx);
    expect(next.kind !== 'local' && next.endpoint).toBe('b');
    // The probe fails: back-off doubles (next probe not before 1500 + 2000).
    p.observe(world.run(probe));
    clock.t = 3000;
    const still = p.choose(ctx);
    expect(still.kind !== 'local' && still.endpoint).toBe('b');
    clock.t = 3600;
    (world.links['a'] as Link).down = false;
    const probe2 = p.choose(ctx);
    expect(probe2.kind !== 'local' && probe2.endpoint).toBe('a');
    p.observe(world.run(probe2));
    expect(p.snapshot().endpoints[0]?.health).toBe('healthy');
    const back = p.choose(ctx);
    expect(back.kind !== 'local' && back.endpoint).toBe('a');
  });

  /** Two endpoints, a the faster; a 1 s first back-off; the clock is the test's. */
  function twoEndpoints(clock: { t: number }, health: AdaptivePlannerOptions['health'] = { initialBackoffMs: 1000 }): { p: AdaptivePlanner; world: World; ctx: { allowedEndpoints: string[] }; endpoint: () => string } {
    const world = new World({ a: { rttMs: 5, bitsPerSecond: 1e9 }, b: { rttMs: 15, bitsPerSecond: 1e9 } });
    const p = planner({ endpoints: [{ name: 'a', rttMs: 5, bandwidthBitsPerSecond: 1e9 }, { name: 'b', rttMs: 15, bandwidthBitsPerSecond: 1e9 }], health, exploration: false }, clock);
    const ctx = { allowedEndpoints: ['a', 'b'] };
    const endpoint = (): string => {
      const plan = p.choose(ctx);
      return plan.kind === 'local' ? 'local' : plan.endpoint;
    };
    return { p, world, ctx, endpoint };
  }

  it('sends no probe before a failure\'s Retry-After, when it ends after the back-off', () => {
    const clock = { t: 0 };
    const { p, world, endpoint } = twoEndpoints(clock);
    expect(endpoint()).toBe('a');
    p.observe({ ...world.run({ kind: 'offload', endpoint: 'a' }), fellBack: true, retryAfterMs: 5000 });
    // The back-off (1 s) is over, the server's 5 s are not: b serves, a gets no probe.
    for (const t of [1000, 1500, 3000, 4999]) {
      clock.t = t;
      expect(endpoint(), `t=${t}`).toBe('b');
      expect(p.snapshot().endpoints[0]?.health).toBe('down');
    }
    clock.t = 5000;
    expect(p.snapshot().endpoints[0]?.health).toBe('probing');
    expect(endpoint()).toBe('a');
    // One probe at a time, as without a Retry-After.
    expect(endpoint()).toBe('b');
    p.observe(world.run({ kind: 'offload', endpoint: 'a' }));
    expect(endpoint()).toBe('a');
  });

  it('keeps the back-off when a Retry-After ends before it', () => {
    const clock = { t: 0 };
    const { p, world, endpoint } = twoEndpoints(clock);
    p.observe({ ...world.run({ kind: 'offload', endpoint: 'a' }), fellBack: true, retryAfterMs: 200 });
    clock.t = 999;
    expect(endpoint()).toBe('b');
    clock.t = 1000;
    expect(endpoint()).toBe('a');
  });

  it('holds a Retry-After below the failure threshold, and past a success that arrives meanwhile', () => {
    const clock = { t: 0 };
    const { p, world, endpoint } = twoEndpoints(clock, { failureThreshold: 3, initialBackoffMs: 1000 });
    // Without a Retry-After one failure of three changes nothing.
    p.observe({ ...world.run({ kind: 'offload', endpoint: 'a' }), fellBack: true });
    expect(endpoint()).toBe('a');
    p.observe({ ...world.run({ kind: 'offload', endpoint: 'a' }), fellBack: true, retryAfterMs: 2000 });
    expect(endpoint()).toBe('b');
    // A request sent before the server asked for the pause comes back fine: the pause stands.
    clock.t = 100;
    p.observe(world.run({ kind: 'offload', endpoint: 'a' }));
    expect(endpoint()).toBe('b');
    clock.t = 1999;
    expect(endpoint()).toBe('b');
    clock.t = 2000;
    expect(p.snapshot().endpoints[0]?.health).toBe('healthy');
    expect(endpoint()).toBe('a');
  });

  it('lets a later, longer Retry-After extend the pause, and a shorter one (or none) not cut it', () => {
    // Requests that were in flight when the first 429 came fail too, each with its own answer.
    const clock = { t: 0 };
    const longer = twoEndpoints(clock);
    longer.p.observe({ ...longer.world.run({ kind: 'offload', endpoint: 'a' }), fellBack: true, retryAfterMs: 2000 });
    clock.t = 10;
    longer.p.observe({ ...longer.world.run({ kind: 'offload', endpoint: 'a' }), fellBack: true, retryAfterMs: 8000 });
    clock.t = 8009;
    expect(longer.endpoint()).toBe('b');
    clock.t = 8010;
    expect(longer.endpoint()).toBe('a');

    clock.t = 0;
    const shorter = twoEndpoints(clock);
    shorter.p.observe({ ...shorter.world.run({ kind: 'offload', endpoint: 'a' }), fellBack: true, retryAfterMs: 10_000 });
    clock.t = 10;
    shorter.p.observe({ ...shorter.world.run({ kind: 'offload', endpoint: 'a' }), fellBack: true, retryAfterMs: 500 });
    shorter.p.observe({ ...shorter.world.run({ kind: 'offload', endpoint: 'a' }), fellBack: true });
    // The back-off (1 s, not lengthened by the requests that were already in flight) ended at 1000.
    clock.t = 9999;
    expect(shorter.endpoint()).toBe('b');
    clock.t = 10_000;
    expect(shorter.endpoint()).toBe('a');
  });

  it('lengthens the back-off on a failed probe only, not on requests that were in flight when the circuit opened', () => {
    const clock = { t: 0 };
    const { p, world, endpoint } = twoEndpoints(clock);
    for (let i = 0; i < 3; i++) p.observe({ ...world.run({ kind: 'offload', endpoint: 'a' }), fellBack: true });
    clock.t = 999;
    expect(endpoint()).toBe('b');
    clock.t = 1000;
    expect(endpoint()).toBe('a');
    p.observe({ ...world.run({ kind: 'offload', endpoint: 'a' }), fellBack: true });
    clock.t = 2999;
    expect(endpoint()).toBe('b');
    clock.t = 3000;
    expect(endpoint()).toBe('a');
  });

  it('leaves an endpoint\'s health alone on a failure that was not its own (endpointAtFault: false)', () => {
    const clock = { t: 0 };
    const { p, world, endpoint } = twoEndpoints(clock);
    clock.t = 100;
    expect(endpoint()).toBe('a');
    // Refused by residency, or abandoned by its caller: the endpoint stays in.
    p.observe({ ...world.run({ kind: 'offload', endpoint: 'a' }), fellBack: true, endpointAtFault: false });
    p.observe({ ...world.run({ kind: 'offload', endpoint: 'a' }), ok: false, endpointAtFault: false });
    expect(p.snapshot().endpoints[0]?.health).toBe('healthy');
    expect(endpoint()).toBe('a');
    // Its own failure still takes it out.
    p.observe({ ...world.run({ kind: 'offload', endpoint: 'a' }), fellBack: true });
    expect(p.snapshot().endpoints[0]?.health).toBe('down');
    expect(endpoint()).toBe('b');
  });

  describe('outcomes of requests sent before the breaker\'s last transition', () => {
    const A: Plan = { kind: 'offload', endpoint: 'a' };
    /** An outcome of a request to a heard of now; `sentAt` when the runtime knows it. */
    const outcome = (world: World, ok: boolean, sentAt?: number, retryAfterMs?: number): Observation => ({
      ...world.run(A),
      fellBack: !ok,
      ...(sentAt !== undefined ? { sentAt } : {}),
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    });
    /** Trips a's circuit at 110 and closes it with a probe sent at 1110 that succeeds at 1120. */
    function tripAndRecover(clock: { t: number }, health?: AdaptivePlannerOptions['health']): ReturnType<typeof twoEndpoints> {
      const setup = twoEndpoints(clock, health);
      const { p, world, endpoint } = setup;
      clock.t = 100;
      expect(endpoint()).toBe('a');
      for (let i = 0; i < (health?.failureThreshold ?? 1); i++) {
        clock.t = 110;
        p.observe(outcome(world, false, 100));
      }
      clock.t = 1110;
      expect(endpoint()).toBe('a');
      clock.t = 1120;
      p.observe(outcome(world, true, 1110));
      expect(p.snapshot().endpoints[0]?.health).toBe('healthy');
      return setup;
    }

    it('does not re-open the circuit on a failure of a request sent before the probe succeeded', () => {
      const clock = { t: 0 };
      const { p, world, endpoint } = tripAndRecover(clock);
      // A slow request sent at 100, still in flight when the probe came back, fails at 1500.
      clock.t = 1500;
      p.observe(outcome(world, false, 100));
      expect(p.snapshot().endpoints[0]?.health).toBe('healthy');
      expect(endpoint()).toBe('a');
    });

    it('still trips on a failure of a request sent after the probe succeeded, with the back-off restarted', () => {
      const clock = { t: 0 };
      const { p, world, endpoint } = tripAndRecover(clock);
      clock.t = 1140;
      p.observe(outcome(world, false, 1130));
      expect(p.snapshot().endpoints[0]?.health).toBe('down');
      clock.t = 2139;
      expect(endpoint()).toBe('b');
      clock.t = 2140;
      expect(endpoint()).toBe('a');
    });

    it('does not count such a failure towards the failure threshold', () => {
      const clock = { t: 0 };
      const { p, world, endpoint } = tripAndRecover(clock, { failureThreshold: 2, initialBackoffMs: 1000 });
      clock.t = 1500;
      p.observe(outcome(world, false, 100));
      p.observe(outcome(world, false, 1400));
      expect(endpoint()).toBe('a');
      p.observe(outcome(world, false, 1450));
      expect(endpoint()).toBe('b');
    });

    it('still applies its Retry-After: the server\'s word on the time to come', () => {
      const clock = { t: 0 };
      const { p, world, endpoint } = tripAndRecover(clock);
      clock.t = 1500;
      p.observe(outcome(world, false, 100, 2000));
      expect(endpoint()).toBe('b');
      clock.t = 3499;
      expect(endpoint()).toBe('b');
      // The pause is over and the circuit was never re-opened: healthy, no probe needed.
      clock.t = 3500;
      expect(p.snapshot().endpoints[0]?.health).toBe('healthy');
      expect(endpoint()).toBe('a');
      expect(endpoint()).toBe('a');
    });

    it('does not lengthen the back-off on a failure of a request sent before the probe, while the probe is out', () => {
      const clock = { t: 0 };
      const { p, world, endpoint } = twoEndpoints(clock);
      clock.t = 100;
      expect(endpoint()).toBe('a');
      expect(endpoint()).toBe('a');
      // Two requests sent at 100: one fails at 110 and trips the circuit…
      clock.t = 110;
      p.observe(outcome(world, false, 100));
      clock.t = 1110;
      expect(endpoint()).toBe('a');
      // …the other fails at 1200, while the probe sent at 1110 is out: it is not the probe.
      clock.t = 1200;
      p.observe(outcome(world, false, 100));
      expect(endpoint()).toBe('b');
      // The probe fails at 1300: one doubling, counted from then.
      clock.t = 1300;
      p.observe(outcome(world, false, 1110));
      clock.t = 3299;
      expect(endpoint()).toBe('b');
      clock.t = 3300;
      expect(endpoint()).toBe('a');
    });

    it('makes the probe due at once on a success of a request sent before the circuit opened, without closing it', () => {
      const clock = { t: 0 };
      const { p, world, endpoint } = twoEndpoints(clock);
      clock.t = 100;
      expect(endpoint()).toBe('a');
      clock.t = 110;
      p.observe(outcome(world, false, 100));
      // Sent at 100 too, it comes back fine at 120: a probe goes now, not after the 1 s back-off.
      clock.t = 120;
      p.observe(outcome(world, true, 100));
      expect(p.snapshot().endpoints[0]?.health).toBe('probing');
      expect(endpoint()).toBe('a');
      expect(endpoint()).toBe('b');
      // The probe fails at 130; the back-off doubles from then, and another success sent
      // before the probe neither closes the circuit nor calls for another early probe.
      clock.t = 130;
      p.observe(outcome(world, false, 120));
      clock.t = 140;
      p.observe(outcome(world, true, 100));
      expect(p.snapshot().endpoints[0]?.health).toBe('down');
      clock.t = 2129;
      expect(endpoint()).toBe('b');
      clock.t = 2130;
      expect(endpoint()).toBe('a');
      // A success of a request sent after the circuit opened closes it.
      clock.t = 2140;
      p.observe(outcome(world, true, 2130));
      expect(p.snapshot().endpoints[0]?.health).toBe('healthy');
    });

    it('behave as before when the observations carry no send time', () => {
      const clock = { t: 0 };
      const recovered = twoEndpoints(clock);
      recovered.p.observe(outcome(recovered.world, false));
      clock.t = 1000;
      expect(recovered.endpoint()).toBe('a');
      recovered.p.observe(outcome(recovered.world, true));
      clock.t = 1500;
      recovered.p.observe(outcome(recovered.world, false));
      expect(recovered.p.snapshot().endpoints[0]?.health).toBe('down');

      clock.t = 0;
      const probing = twoEndpoints(clock);
      probing.p.observe(outcome(probing.world, false));
      clock.t = 1000;
      expect(probing.endpoint()).toBe('a');
      // Taken for the probe's failure: the back-off doubles from then.
      clock.t = 1100;
      probing.p.observe(outcome(probing.world, false));
      clock.t = 3099;
      expect(probing.endpoint()).toBe('b');
      clock.t = 3100;
      expect(probing.endpoint()).toBe('a');

      clock.t = 0;
      const opened = twoEndpoints(clock);
      opened.p.observe(outcome(opened.world, false));
      clock.t = 10;
      opened.p.observe(outcome(opened.world, true));
      expect(opened.p.snapshot().endpoints[0]?.health).toBe('healthy');
    });
  });

  it('treats a fallback as a failure and accepts out-of-band probes', () => {
    const p = planner({ exploration: false });
    p.observe({ ...new World({ a: { rttMs: 1, bitsPerSecond: 1e9 } }).run({ kind: 'offload', endpoint: 'a' }), fellBack: true });
    expect(p.snapshot().endpoints[0]?.health).toBe('down');
    p.reportProbe('a', true);
    expect(p.snapshot().endpoints[0]?.health).toBe('healthy');
  });
});

describe('objectives', () => {
  const endpoints = [
    { name: 'a', rttMs: 5, bandwidthBitsPerSecond: 1e9, pricePerRequest: 0.01 },
    { name: 'b', rttMs: 80, bandwidthBitsPerSecond: 1e9, pricePerRequest: 0.001, pricePerGB: 0.1 },
  ];
  it('minimum latency ignores prices', () => {
    const p = planner({ endpoints, exploration: false });
    expect(p.choose({ allowedEndpoints: ['a', 'b'] })).toEqual({ kind: 'offload', endpoint: 'a' });
  });
  it('minimum cost picks the cheapest option that meets the deadline, else the fastest', () => {
    const clock = { t: 1000 };
    const p = planner({ endpoints, exploration: false, objective: { kind: 'cost' } }, clock);
    // Local is free and meets a loose deadline.
    expect(p.choose({ allowedEndpoints: ['a', 'b'], deadline: 1000 + 500 })).toEqual({ kind: 'local' });
    // 97 ms: local (100 ms) misses; b (95.4 ms) is the cheaper remote that makes it.
    const mid = p.choose({ allowedEndpoints: ['a', 'b'], deadline: 1000 + 97 });
    expect(mid.kind !== 'local' && mid.endpoint).toBe('b');
    // 30 ms: only a makes it.
    const tight = p.choose({ allowedEndpoints: ['a', 'b'], deadline: 1000 + 30 });
    expect(tight.kind !== 'local' && tight.endpoint).toBe('a');
    // 1 ms: nothing makes it; the fastest is chosen.
    expect(p.choose({ allowedEndpoints: ['a', 'b'], deadline: 1000 + 1 })).toEqual({ kind: 'offload', endpoint: 'a' });
  });
  it('uses the configured relative deadline when the request has none', () => {
    const p = planner({ endpoints, exploration: false, objective: { kind: 'cost', deadlineMs: 30 } });
    const plan = p.choose({ allowedEndpoints: ['a', 'b'] });
    expect(plan.kind !== 'local' && plan.endpoint).toBe('a');
  });
});

describe('exploration', () => {
  it('re-measures an option not taken lately, within its budget', () => {
    const world = new World({ a: { rttMs: 20, bitsPerSecond: 1e6 } });
    const p = planner({ endpoints: [{ name: 'a', rttMs: 20, bandwidthBitsPerSecond: 1e6 }], exploration: { afterDecisions: 20, budget: 0.05 } });
    const ctx = { allowedEndpoints: ['a'] };
    let remote = 0;
    let predicted = 0;
    for (let i = 0; i < 400; i++) {
      const plan = p.choose(ctx);
      if (plan.kind !== 'local') remote += 1;
      predicted += 100;
      p.observe(world.run(plan));
    }
    const stats = p.explorationStats;
    expect(remote).toBeGreaterThan(0);
    expect(stats.count).toBe(remote);
    expect(stats.spentMs).toBeLessThanOrEqual(0.05 * predicted * 1.1);
  });
  it('notices that a link got fast while running locally', () => {
    const world = new World({ a: { rttMs: 10, bitsPerSecond: 0.5e6 } });
    const p = planner({ endpoints: [{ name: 'a', rttMs: 10, bandwidthBitsPerSecond: 0.5e6 }] });
    const ctx = { allowedEndpoints: ['a'] };
    for (let i = 0; i < 50; i++) p.observe(world.run(p.choose(ctx)));
    (world.links['a'] as Link).bitsPerSecond = 1e9;
    let plan: Plan = { kind: 'local' };
    for (let i = 0; i < 150; i++) {
      plan = p.choose(ctx);
      if (process.env['DBG']) console.log(i, describePlan(plan), JSON.stringify(p.snapshot()), JSON.stringify(p.rank(ctx).slice(0,3).map(o=>[describePlan(o.plan),o.totalMs])));
      p.observe(world.run(plan));
    }
    expect(plan.kind).toBe('offload');
  });
});

describe('a profile that misjudged one head', () => {
  it('learns that cut\'s head time alone, and does not lock local out', () => {
    // The profile says c2's head takes 15 ms; it takes 40. Through a 5.5 Mbit/s, 20 ms link the
    // split really costs ≈ 115 ms against local's 100, but the profile predicts 90.
    const misprofiled: Profile = { ...profile, cuts: profile.cuts.map((c) => (c.id === 'c2' ? { ...c, headMs: 15 } : c)) };
    const world = new World({ a: { rttMs: 20, bitsPerSecond: 5.5e6 } }, 0.02);
    const p = new AdaptivePlanner({ profile: misprofiled, endpoints: [{ name: 'a', rttMs: 20, bandwidthBitsPerSecond: 5.5e6 }] });
    const ctx = { allowedEndpoints: ['a'] };
    const plans = drive(p, world, ctx, 40);
    expect(plans[0]).toBe('split@c2→a');
    // One run of the split shows its head is slow; local is then chosen and kept, but for the
    // split's re-measurements as a near miss (≈ 15% slower: every 12 or so decisions).
    expect(plans.slice(3).filter((x) => x === 'local').length).toBeGreaterThanOrEqual(28);
    // Local's prediction was not dragged up by the split's slow head.
    expect(p.snapshot().edgeScale).toBeLessThan(1.1);
    const c2 = p.rank(ctx).find((o) => describePlan(o.plan) === 'split@c2→a');
    expect(c2?.edgeMs).toBeGreaterThan(35);
  });
});

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

describe('a cut the profile put just behind the chosen one', () => {
  it('is run once, and chosen when it turns out faster', () => {
    // Edge 1.3× the profile, 8 Mbit/s, 10 ms: really c2 ≈ 102 ms, c3 ≈ 128, local 130. The
    // profile says c2's head takes 65 ms (it takes 40): c2 predicted ≈ 135, 4–5% behind both,
    // and never the best of its group (c3 is), so group exploration alone would not try it.
    const misprofiled: Profile = { ...profile, cuts: profile.cuts.map((c) => (c.id === 'c2' ? { ...c, headMs: 65 } : c)) };
    const world = new World({ a: { rttMs: 10, bitsPerSecond: 8e6 } }, 0.02);
    world.edgeScale = 1.3;
    const p = new AdaptivePlanner({ profile: misprofiled, endpoints: [{ name: 'a', rttMs: 10, bandwidthBitsPerSecond: 8e6 }], edgeScale: 1.3 });
    const ctx = { allowedEndpoints: ['a'] };
    const plans = drive(p, world, ctx, 30);
    // Local and c3 are predicted within the hysteresis of each other; c2 is not tried at first.
    expect(['local', 'split@c3→a']).toContain(plans[0]);
    const tried = plans.indexOf('split@c2→a');
    expect(tried).toBeGreaterThan(0);
    expect(tried).toBeLessThan(12);
    expect(plans.slice(-10).filter((x) => x === 'split@c2→a').length).toBeGreaterThanOrEqual(8);
  });
});

describe('a cut whose first run was disturbed', () => {
  it('is run a second time, and the faster run sets its head time', () => {
    // Edge 1.3× the profile, 8 Mbit/s, 10 ms: c2 ≈ 102 ms is the best plan and predicted so.
    // Its first head run hits a host hiccup (1.6×: 83 ms instead of 52), which anchors c2 at
    // ≈ 133 ms, behind c3 (≈ 128) and local (≈ 130). c2 is no group's best, so only a second
    // look at a single-run cut finds it again.
    const world = new World({ a: { rttMs: 10, bitsPerSecond: 8e6 } }, 0.02);
    world.edgeScale = 1.3;
    const p = new AdaptivePlanner({ profile, endpoints: [{ name: 'a', rttMs: 10, bandwidthBitsPerSecond: 8e6 }], edgeScale: 1.3 });
    const ctx = { allowedEndpoints: ['a'] };
    const plans: string[] = [];
    let hiccups = 0;
    for (let i = 0; i < 30; i++) {
      const plan = p.choose(ctx);
      plans.push(describePlan(plan));
      const o = world.run(plan);
      if (plan.kind === 'split' && plan.cut === 'c2' && hiccups++ === 0) {
        o.totalMs += 0.6 * o.edgeMs;
        o.edgeMs *= 1.6;
      }
      p.observe(o);
    }
    expect(plans[0]).toBe('split@c2→a');
    expect(plans[1]).not.toBe('split@c2→a');
    const second = plans.indexOf('split@c2→a', 1);
    expect(second).toBeGreaterThan(1);
    expect(second).toBeLessThan(12);
    expect(plans.slice(-10).filter((x) => x === 'split@c2→a').length).toBeGreaterThanOrEqual(8);
  });
});

describe('a cut whose first two runs differ by noise only', () => {
  it('is anchored on their mean, so its later runs leave the edge scale where local put it', () => {
    // c2's head takes 40 ms; its first two runs read 42 and 38 (±5%). Anchored on the faster,
    // every later 40 ms run would report the edge 5% slower than it is, and local with it.
    const { p, local, c2, observe } = c2Script();
    observe(local);
    observe(c2, 42);
    observe(c2, 38);
    for (let i = 0; i < 10; i++) observe(c2);
    expect(p.snapshot().edgeScale).toBeGreaterThan(0.98);
    expect(p.snapshot().edgeScale).toBeLessThan(1.02);
  });
});

describe('a slow spell that the edge scale and a cut were measured in', () => {
  it('does not leave the cut dragging the edge scale back once a fresh local run replaces it', () => {
    // The device runs at the profile's speed (local 100 ms, c2's head 40 ms). Its first two
    // local runs fall in a slow spell (140 ms), but c2's first head run does not (40 ms), so
    // c2 is anchored against an edge 1.4× slow. A fresh local run later replaces the scale
    // with the truth; c2's next runs must then re-anchor c2, not pull the scale back up
    // toward 1.4 and local with it.
    const { p, ctx, local, c2, observe } = c2Script();
    observe(local, 140);
    observe(local, 140);
    for (let i = 0; i < 7; i++) observe(c2);
    expect(p.snapshot().edgeScale).toBeCloseTo(1.4, 1);
    // Requests elsewhere (another model's, say) make the next local run fresh news.
    for (let i = 0; i < 5; i++) p.choose(ctx);
    observe(local, 100);
    expect(p.snapshot().edgeScale).toBeCloseTo(1, 1);
    for (let i = 0; i < 8; i++) observe(c2);
    expect(p.snapshot().edgeScale).toBeLessThan(1.03);
    const localMs = p.rank(ctx).find((r) => r.plan.kind === 'local')?.totalMs ?? 0;
    expect(localMs).toBeLessThan(103);
  });
});

describe('a local run that moves the edge scale a little', () => {
  it('is not undone by the runs of a cut anchored under the old scale', () => {
    // The device's first local run is slow (116 ms: scale 1.16) and c2 (40 ms of head) is
    // anchored under it. A later local run reads 108 ms: 7% faster, not enough to replace the
    // scale, so it only moves it. c2's runs must then re-anchor c2 under the moved scale, not
    // judge the device with the old correction and pull the scale back toward 1.16.
    const { p, ctx, world, local, c2, observe } = c2Script();
    observe(local, 116);
    for (let i = 0; i < 4; i++) observe(c2);
    expect(p.snapshot().edgeScale).toBeCloseTo(1.16, 2);
    observe(local, 108);
    const moved = p.snapshot().edgeScale;
    expect(moved).toBeLessThan(1.15);
    for (let i = 0; i < 10; i++) observe(c2);
    expect(p.snapshot().edgeScale).toBeLessThan(moved + 0.005);
    // c2 itself is still predicted as it runs.
    const c2Ms = p.rank(ctx).find((r) => describePlan(r.plan) === 'split@c2→a')?.totalMs ?? 0;
    expect(Math.abs(c2Ms - world.truth(c2))).toBeLessThan(0.03 * world.truth(c2));
  });

  it('still lets a held cut\'s runs tell that the device slowed down', () => {
    const { p, world, local, c2, observe } = c2Script();
    observe(local);
    for (let i = 0; i < 4; i++) observe(c2);
    world.edgeScale = 2;
    for (let i = 0; i < 4; i++) observe(c2);
    expect(p.snapshot().edgeScale).toBeGreaterThan(1.8);
  });
});

describe('a slow first local run that cut runs contradict', () => {
  // The device runs at the profile's speed; at 20 Mbit/s, 10 ms, c2 (≈ 70 ms) beats local
  // (100), a far miss that plain exploration re-measures only after ≈ 18 decisions.
  const firstLocalThen = (firstLocalMs: number): { plans: string[]; scale: number; c2AfterSecondLocal: number } => {
    const p = new AdaptivePlanner({ profile, endpoints: [{ name: 'a', rttMs: 10, bandwidthBitsPerSecond: 20e6 }] });
    const world = new World({ a: { rttMs: 10, bitsPerSecond: 20e6 } }, 0.02);
    const ctx = { allowedEndpoints: ['a'] };
    p.choose(ctx);
    p.observe({ ...world.run({ kind: 'local' }), edgeMs: firstLocalMs, totalMs: firstLocalMs });
    const plans: string[] = [];
    let c2AfterSecondLocal = Number.NaN;
    for (let i = 0; i < 12; i++) {
      const plan = p.choose(ctx);
      plans.push(describePlan(plan));
      p.observe(world.run(plan));
      if (plan.kind === 'local') c2AfterSecondLocal = p.rank(ctx).find((r) => describePlan(r.plan) === 'split@c2→a')?.totalMs ?? 0;
    }
    return { plans, scale: p.snapshot().edgeScale, c2AfterSecondLocal };
  };

  it('gets local a second look soon, and the faster run sets the edge scale', () => {
    // A hiccup (140 ms) puts the edge scale at 1.4; c2's head then runs 40 ms where 56 were predicted.
    const { plans, scale, c2AfterSecondLocal } = firstLocalThen(140);
    expect(plans[0]).toBe('split@c2→a');
    const second = plans.indexOf('local');
    expect(second).toBeGreaterThan(0);
    expect(second).toBeLessThan(8);
    expect(scale).toBeGreaterThan(0.9);
    expect(scale).toBeLessThan(1.1);
    // c2's head, measured at 40 ms against the 1.4 scale, is re-expressed against the new
    // one: still predicted as measured (≈ 70 ms in all), not 40 / 1.4 ms of head (≈ 58).
    expect(c2AfterSecondLocal).toBeGreaterThan(66);
    expect(c2AfterSecondLocal).toBeLessThan(74);
  });

  it('spends no second look when the cut runs agree with the first local run', () => {
    const { plans, scale } = firstLocalThen(100);
    expect(plans.every((x) => x === 'split@c2→a')).toBe(true);
    expect(scale).toBeGreaterThan(0.9);
    expect(scale).toBeLessThan(1.1);
  });
});

describe('a device faster than its profile, seen first through a split', () => {
  it('measures local once it becomes a near miss, and moves to it when the link slows', () => {
    // The device runs at 0.85 of the profile. The split c2 (profiled 80 ms, really 74) wins at
    // first and its runs teach only c2's correction; then the round trip rises 20 → 40 ms and
    // c2 really costs 94 ms against local's 85, which the profile's prior predicts at 100.
    const world = new World({ a: { rttMs: 20, bitsPerSecond: 20e6 } }, 0.02);
    world.edgeScale = 0.85;
    const p = new AdaptivePlanner({ profile, endpoints: [{ name: 'a', rttMs: 20, bandwidthBitsPerSecond: 20e6 }] });
    const ctx = { allowedEndpoints: ['a'] };
    const before = drive(p, world, ctx, 10);
    expect(before.filter((x) => x === 'split@c2→a').length).toBeGreaterThanOrEqual(9);
    (world.links['a'] as Link).rttMs = 40;
    const after = drive(p, world, ctx, 40);
    // Local is measured within a few decisions and kept; the split (≈ 10% slower) runs only
    // as a near miss's re-measurement, never twice in a row.
    const firstLocal = after.indexOf('local');
    expect(firstLocal).toBeGreaterThanOrEqual(0);
    expect(firstLocal).toBeLessThan(6);
    expect(after.slice(10).filter((x) => x === 'local').length).toBeGreaterThanOrEqual(22);
    after.slice(firstLocal).forEach((x, i, rest) => {
      if (x !== 'local') expect(rest[i + 1] ?? 'local').toBe('local');
    });
    expect(p.snapshot().edgeScale).toBeLessThan(0.92);
    // c2's head prediction still matches its runs (≈ 34 ms), as measured before local ran.
    const c2 = p.rank(ctx).find((o) => describePlan(o.plan) === 'split@c2→a');
    expect(c2?.edgeMs).toBeGreaterThan(31);
    expect(c2?.edgeMs).toBeLessThan(37);
  });
});

/** Only local and offload: splits would measure the edge through their heads. */
const twoOptions: Profile = { ...profile, cuts: [profile.cuts[0]!, profile.cuts[4]!] };

describe('a near-miss endpoint while link probes keep coming', () => {
  it('is still re-measured by requests: a probe tells the link, not the remote compute', () => {
    const link: Link = { rttMs: 10, bitsPerSecond: 80e6, remoteScale: 4 };
    const world = new World({ a: link }, 0.02); // local 100 ms; offload 70 + 40 = 110
    const p = new AdaptivePlanner({ profile: twoOptions, endpoints: [{ name: 'a', rttMs: 10, bandwidthBitsPerSecond: 80e6 }] });
    const ctx = { allowedEndpoints: ['a'] };
    const plans: string[] = [];
    for (let i = 0; i < 120; i++) {
      // As the sweep harness does: a clean probe round every third decision.
      if (i % 3 === 0) probeRound(p, link);
      if (i === 60) link.remoteScale = 1; // offload now 80 ms, still predicted ≈ 110
      const plan = p.choose(ctx);
      plans.push(describePlan(plan));
      p.observe(world.run(plan));
    }
    expect(plans.slice(30, 60).filter((x) => x === 'local').length).toBeGreaterThanOrEqual(25);
    expect(plans.slice(60, 75)).toContain('offload→a');
    expect(plans.slice(90).filter((x) => x === 'offload→a').length).toBeGreaterThanOrEqual(27);
  });
});

describe('exploration of an unsettled edge', () => {
  const run = (edgeScale: number, settledRuns: number, decisions = 16): string[] => {
    const world = new World({ a: { rttMs: 10, bitsPerSecond: 60e6 } }, 0);
    world.edgeScale = 0.8; // local 80 ms; offload about 101 ms
    const p = new AdaptivePlanner({ profile: twoOptions, endpoints: [{ name: 'a', rttMs: 10, bandwidthBitsPerSecond: 60e6 }], edgeScale });
    const slow: Observation = { ...world.run({ kind: 'local' }), edgeMs: 100 * edgeScale, totalMs: 100 * edgeScale };
    for (let i = 0; i < settledRuns; i++) p.observe(slow);
    const ctx = { allowedEndpoints: ['a'] };
    const plans = drive(p, world, ctx, decisions);
    return plans;
  };
  it('re-measures the edge soon when its speed rests on fewer than 3 runs and local is a near miss', () => {
    // One slow run (115 ms) makes offload look better; the edge is re-measured after a few
    // decisions (not the usual 20). (Outvoting the slow run's belief then takes several more
    // runs: the estimator clips samples beyond 3σ.)
    const plans = run(1.15, 1);
    expect(plans[0]).toBe('offload→a');
    expect(plans.slice(0, 6)).toContain('local');
  });
  it('re-measures a settled near miss after a few decisions, sooner than a far one', () => {
    // Local predicted 115 ms against offload's 101 (14% gap): re-measured after
    // 20 × 0.14 / 0.25 ≈ 11 decisions (found 80 ms, and kept).
    const near = run(1.15, 3, 24);
    expect(near[0]).toBe('offload→a');
    expect(near.indexOf('local')).toBeGreaterThan(7);
    expect(near.indexOf('local')).toBeLessThan(15);
  });
  it('spends at most about 1.25% of the time re-measuring a group that stays 14% behind', () => {
    const world = new World({ a: { rttMs: 10, bitsPerSecond: 60e6 } }, 0.02);
    world.edgeScale = 1.15; // local really 115 ms against offload's ≈ 101
    const p = new AdaptivePlanner({ profile: twoOptions, endpoints: [{ name: 'a', rttMs: 10, bandwidthBitsPerSecond: 60e6 }], edgeScale: 1.15 });
    const settled: Observation = world.run({ kind: 'local' });
    for (let i = 0; i < 3; i++) p.observe(settled);
    const plans = drive(p, world, { allowedEndpoints: ['a'] }, 400);
    const locals = plans.filter((x) => x === 'local').length;
    // ≈ 400 / 11; the old pace (20 × g / 0.5 ≈ 6 decisions) re-ran it ≈ 60 times.
    expect(locals).toBeGreaterThanOrEqual(25);
    expect(locals).toBeLessThanOrEqual(42);
    const regret = locals * (world.truth({ kind: 'local' }) - world.truth({ kind: 'offload', endpoint: 'a' }));
    expect(regret / (400 * world.truth({ kind: 'offload', endpoint: 'a' }))).toBeLessThan(0.015);
  });
  it('moves to local after one re-measurement that finds the edge faster than believed', () => {
    // Local believed 110 ms (three runs) against offload's 101; the device now runs it in 80.
    // The first re-measurement replaces the belief; blended in as a fifth, it would leave
    // local predicted slower than offload until a second re-measurement, several decisions on.
    const plans = run(1.1, 3, 16);
    const first = plans.indexOf('local');
    expect(first).toBeGreaterThan(0);
    expect(first).toBeLessThan(8);
    // Kept from then on (offload's own re-measurement, a 26% miss, is due ≈ 11 decisions later).
    expect(plans.slice(first, first + 8)).toEqual(Array(8).fill('local'));
  });
  it('re-measures a far miss rarely: its exploration costs a bounded share of the time', () => {
    // Local predicted 300 ms against 101 (≈ 2× gap): 20 × 2 / 0.25 = 160 decisions, capped at
    // 4 × 20 = 80 (a far group is still heard from: see 'notices that a link got fast').
    const far = run(3, 3, 120);
    const first = far.indexOf('local');
    expect(first).toBeGreaterThan(60);
    expect(first).toBeLessThan(100);
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

describe('a switch after a link step', () => {
  it('holds the new plan for a few decisions before trying a cut the re-based link puts within 10%', () => {
    // 5 ms round trip. At 2 Mbit/s local wins by far; at 350 Mbit/s offload ≈ 28.8 ms and c1,
    // never run, ≈ 31 (8% behind): a cut trial candidate as soon as the switch happens.
    const world = new World({ a: { rttMs: 5, bitsPerSecond: 2e6 } }, 0);
    const p = new AdaptivePlanner({ profile, endpoints: [{ name: 'a', rttMs: 5, bandwidthBitsPerSecond: 2e6 }] });
    const ctx = { allowedEndpoints: ['a'] };
    // The cut-trial scan runs every 5 decisions (5, 10, …): after 14 decisions the next
    // request would be one, so a trial clock that did not restart would try c1 at once.
    const plans = drive(p, world, ctx, 14);
    expect(plans.every((x) => x === 'local')).toBe(true);
    (world.links['a'] as Link).bitsPerSecond = 350e6;
    probeRound(p, world.links['a'] as Link);
    const after = drive(p, world, ctx, 16);
    expect(after[0]).toBe('offload→a');
    // The new held plan's own runs come first (the re-based link restarts the trial clock) ...
    expect(after.slice(0, 4)).toEqual(Array(4).fill('offload→a'));
    // ... and the untried cut still gets its trial.
    expect(after.slice(4)).toContain('split@c1→a');
  });
});

describe('units', () => {
  it('parses bandwidths and durations', () => {
    expect(parseBandwidth('10mbit')).toBe(10e6);
    expect(parseBandwidth('500kbit/s')).toBe(500e3);
    expect(parseBandwidth('2MB/s')).toBe(16e6);
    expect(parseBandwidth('1gbit')).toBe(1e9);
    expect(parseDuration('40ms')).toBe(40);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('40')).toBe(40);
    expect(() => parseBandwidth('fast')).toThrow(/not a bandwidth/);
    expect(() => parseDuration('soon')).toThrow(/not a duration/);
  });
});
