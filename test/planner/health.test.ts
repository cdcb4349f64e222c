import { describe, expect, it } from 'vitest';
import { AdaptivePlanner, type AdaptivePlannerOptions } from '../../src/planner/adaptive.js';
import { describePlan, type Observation, type Plan } from '../../src/planner/plan.js';
import { type Link, World, planner } from '../helpers/planner-world.js';

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

describe('rank and an endpoint due for its probe', () => {
  it('lists its options after the available ones, marked, at the cost they had', () => {
    const clock = { t: 0 };
    const p = planner({ endpoints: [{ name: 'a', rttMs: 1, bandwidthBitsPerSecond: 1e9 }, { name: 'b', rttMs: 20, bandwidthBitsPerSecond: 1e9 }], exploration: false }, clock);
    const ctx = { allowedEndpoints: ['a', 'b'] };
    const before = new Map(p.rank(ctx).map((o) => [describePlan(o.plan), o.totalMs]));
    expect(p.rank(ctx)[0]?.plan).toEqual({ kind: 'offload', endpoint: 'a' });
    p.observe({ ...new World({ a: { rttMs: 1, bitsPerSecond: 1e9 } }).run({ kind: 'offload', endpoint: 'a' }), ok: false });
    // Down: not listed at all, as choose does not consider it.
    expect(p.rank(ctx).every((o) => o.plan.kind === 'local' || o.plan.endpoint === 'b')).toBe(true);
    clock.t = 5000;
    expect(p.snapshot().endpoints[0]?.health).toBe('probing');
    const ranked = p.rank(ctx);
    const firstUnavailable = ranked.findIndex((o) => !o.available);
    expect(firstUnavailable).toBeGreaterThan(0);
    expect(ranked.slice(0, firstUnavailable).every((o) => o.available && (o.plan.kind === 'local' || o.plan.endpoint === 'b'))).toBe(true);
    const marked = ranked.slice(firstUnavailable);
    expect(marked.length).toBe(before.size - ranked.slice(0, firstUnavailable).length);
    for (const o of marked) {
      expect(o.available).toBe(false);
      expect(o.plan.kind !== 'local' && o.plan.endpoint).toBe('a');
      expect(o.totalMs).toBe(before.get(describePlan(o.plan)));
    }
    // choose sends it its probe: the best of its options.
    expect(p.choose(ctx)).toEqual({ kind: 'offload', endpoint: 'a' });
  });
});
