/**
 * The adaptive planner's test world: a chain-shaped model's profile, a simulated network and
 * edge with noise, and small drivers that let a planner decide and observe in it.
 */
import { AdaptivePlanner, type AdaptivePlannerOptions } from '../../src/planner/adaptive.js';
import { describePlan, type Observation, type Plan } from '../../src/planner/plan.js';
import type { Profile } from '../../src/planner/profile.js';

/**
 * A chain-shaped model: 100 ms on the edge, 10 ms in the cloud, activations shrinking from
 * the 600 KB input to the 4 KB output. Offload wins on fast links, a split in the middle on
 * medium ones and local on slow ones.
 */
export const profile: Profile = {
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

export interface Link {
  rttMs: number;
  bitsPerSecond: number;
  remoteScale?: number;
  down?: boolean;
}

/** The world the planner lives in: the true times of every plan, with multiplicative noise. */
export class World {
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
export function drive(p: AdaptivePlanner, world: World, ctx: { allowedEndpoints: string[] }, decisions: number, onChosen?: (plan: Plan) => void): string[] {
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
export function probeRound(p: AdaptivePlanner, link: Link): void {
  for (const bytes of [256, 131_072]) p.reportLinkProbe('a', link.rttMs + (bytes * 8000) / link.bitsPerSecond, bytes);
}

/**
 * Scripts the planner's experience: each call lets it decide (whatever it picks), then reports
 * a run of `plan` in the world, with the edge time given when there is one.
 */
export function scripted(p: AdaptivePlanner, world: World, ctx: { allowedEndpoints: string[] }): (plan: Plan, edgeMs?: number) => void {
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
export function c2Script(): {
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

export function planner(extra: Partial<AdaptivePlannerOptions> = {}, clock = { t: 0 }): AdaptivePlanner {
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

/** Only local and offload: splits would measure the edge through their heads. */
export const twoOptions: Profile = { ...profile, cuts: [profile.cuts[0]!, profile.cuts[4]!] };
