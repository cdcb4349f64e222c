/**
 * `tandem bench endpoints`: choosing among endpoints whose links differ, and failing over from
 * one cloud to another, end to end. Three endpoints, each behind its own shaped link (see
 * endpoints-testbed.ts), go through four steps: a baseline where aws-frankfurt is best; its link
 * degrades; it recovers; it is cut off. Per step it measures how many requests the latency
 * planner needs to move to the best endpoint, its latency against the per-step oracle (the
 * fastest fixed plan, measured in the same rounds), and a cost-objective planner's price per
 * request against the cheapest fixed plan meeting the deadline.
 */
import { loadavg } from 'node:os';
import { AdaptivePlanner, describePlan, type Observation, type Plan, type PlanChooser } from '../src/planner/index.js';
import { probeRound } from '../src/runtime/index.js';
import { generateReferenceModel } from '../models/generate.js';
import { median } from './harness/testbed.js';
import { EndpointsTestbed, type LinkState } from './endpoints-testbed.js';
import { loadPrices, planPrice, plannerPrices, type ProviderPrice } from './endpoints-prices.js';
import { writeEndpointsReport, type EndpointsResult, type EndpointsStep } from './endpoints-report.js';
import type { ReportFiles } from './report.js';
import { seeded, shuffle } from './sweep.js';

export type { EndpointsResult, EndpointsStep } from './endpoints-report.js';

export interface EndpointsOptions {
  /** A CI-size run: fewer requests per step, fewer cuts, a smaller model. */
  quick?: boolean;
  slowdown?: number;
  /** Adaptive requests right after each change (where the switch is counted). */
  switchWindow?: number;
  /** Measured rounds per step: every candidate fixed plan once, one request of each planner. */
  rounds?: number;
  /** Prices file (see endpoints-prices.ts); default: DEFAULT_PRICES. */
  pricesFile?: string;
  /** Deadline of the cost objective, ms (default: 70% of the edge's profiled time for the whole model, so that local, which is free, misses it even when the edge runs a little faster than profiled). */
  deadlineMs?: number;
  maxCuts?: number;
  log?: (line: string) => void;
  /** Where reports go; `false` skips them. */
  reportDir?: string | false;
}

export const ENDPOINTS = ['aws-frankfurt', 'gcp-iowa', 'ali-shanghai'] as const;
const FRA = 'aws-frankfurt';

/** Each endpoint's own link; frankfurt is the one that degrades, recovers and fails. */
const NOMINAL: Record<string, LinkState> = {
  'aws-frankfurt': { bandwidthMbit: 200, rttMs: 5 },
  'gcp-iowa': { bandwidthMbit: 80, rttMs: 25 },
  'ali-shanghai': { bandwidthMbit: 20, rttMs: 70 },
};
export const STEPS: ReadonlyArray<{ label: string; links: Record<string, LinkState> }> = [
  { label: 'baseline', links: NOMINAL },
  { label: `${FRA} degrades`, links: { ...NOMINAL, [FRA]: { bandwidthMbit: 4, rttMs: 150 } } },
  { label: `${FRA} recovers`, links: NOMINAL },
  { label: `${FRA} fails`, links: { ...NOMINAL, [FRA]: { ...NOMINAL[FRA]!, down: true } } },
];

/** A group within this fraction of the oracle counts as best (a near tie is measurement noise). */
const TIE = 0.05;

export async function runEndpointsBench(options: EndpointsOptions = {}): Promise<{ result: EndpointsResult; files?: ReportFiles }> {
  const quick = options.quick ?? false;
  const slowdown = options.slowdown ?? 8;
  const window = options.switchWindow ?? (quick ? 5 : 10);
  const rounds = options.rounds ?? (quick ? 2 : 8);
  const log = options.log ?? (() => undefined);
  const prices = await loadPrices(options.pricesFile);
  // ResNet-18 at a small resolution: much compute per input byte, so the cloud is worth a
  // link's round trip; quick mode halves the width and shrinks the input.
  const width = quick ? 0.5 : 1;
  const resolution = quick ? 64 : 96;
  const loadStart = loadavg()[0] ?? Number.NaN;
  const testbed = await EndpointsTestbed.create({
    endpoints: ENDPOINTS,
    model: { name: 'resnet18', bytes: generateReferenceModel({ arch: 'resnet18', width, resolution }) },
    slowdown,
    maxCuts: options.maxCuts ?? (quick ? 3 : 6),
    profileRuns: quick ? 2 : 5,
    warmupRounds: quick ? 2 : undefined,
    log,
  });
  const steps: EndpointsStep[] = [];
  let deadlineMs: number | undefined;
  try {
    const profile = testbed.profile;
    log(`profile: local ${profile.localMs.toFixed(1)} ms, offload remote ${profile.remoteMs[FRA]?.toFixed(1)} ms, input ${profile.inputBytes} B`);
    deadlineMs = options.deadlineMs ?? Math.round(0.7 * profile.localMs);
    const latency = new AdaptivePlanner({ profile, endpoints: ENDPOINTS.map((name) => ({ name })) });
    const cost = new AdaptivePlanner({
      profile,
      endpoints: ENDPOINTS.map((name) => ({ name, ...plannerPrices(name, prices[name] as ProviderPrice, profile) })),
      objective: { kind: 'cost', deadlineMs },
    });
    for (const step of STEPS) {
      for (const name of ENDPOINTS) testbed.setLink(name, step.links[name] as LinkState);
      steps.push(await measureStep(testbed, step, { latency, cost, window, rounds, deadlineMs, prices }));
      const s = steps.at(-1) as EndpointsStep;
      log(
        `${s.label}: oracle ${s.oraclePlan} ${s.oracleMs.toFixed(0)} ms; adaptive ${s.adaptiveSteadyMs.toFixed(0)} ms (×${s.adaptiveOverOracle.toFixed(2)}), switch after ${s.requestsToSwitch}; cost ×${s.cost.costOverOracle.toFixed(2)} (oracle ${s.cost.oraclePlan}); plans ${s.adaptivePlans.join(' ')}`,
      );
    }
  } finally {
    await testbed.close();
  }
  const result: EndpointsResult = {
    // The baseline is the cold start, not a change; every later step is one.
    maxRequestsToSwitch: Math.max(...steps.slice(1).map((s) => s.requestsToSwitch)),
    adaptiveOverOracle: Math.max(...steps.map((s) => s.adaptiveOverOracle)),
    costOverOracle: Math.max(...steps.map((s) => s.cost.costOverOracle).filter((x) => !Number.isNaN(x))),
    steps,
    endpoints: [...ENDPOINTS],
    prices,
    deadlineMs: deadlineMs ?? Number.NaN,
    slowdown,
    model: `resnet18 w${width} r${resolution}`,
    quick,
    loadAverage: { start: loadStart, end: loadavg()[0] ?? Number.NaN },
    notes: [
      `Network: one shaping proxy per endpoint on loopback (token bucket per direction, RTT split equally), all in front of one in-process cloud service (startCloudService, one intra-op thread per run); the edge runtime (createRuntime, one worker, slowdown ×${slowdown}) reaches each through its own OIP v2 binary provider client. The endpoints differ by their links only; the profile's remote times are measured once and copied to all.`,
      `Steps: ${STEPS.map((s) => `${s.label} (${ENDPOINTS.map((n) => linkText(s.links[n] as LinkState)).join(' / ')})`).join('; ')}. Links listed as ${ENDPOINTS.join(' / ')}.`,
      `Per step: ${window} latency-planner requests right after the change (each followed by one cost-planner request), then ${rounds} rounds, each running in a shuffled order every candidate fixed plan once, one latency-planner request and one cost-planner request. Candidates: local, offload to each live endpoint, the splits the cost model under the true links puts within 2× of the best, and every plan a planner chose.`,
      `Oracle: the lowest median of the candidates' requests. adaptive/oracle: the median of the latency planner's requests in the rounds (its steady part) over the oracle's. requestsToSwitch: the first request after the change from which two in a row target the oracle's group (its endpoint, or local) or one within ${TIE * 100}% of it, without falling back; the baseline (a cold start) is left out of the maximum.`,
      `Cost: prices per provider (instance-hour × the profile's remote time per request, and a price per GB moved); the cost planner minimises price among plans predicted to meet ${deadlineMs} ms. costOverOracle: its mean price per request in the rounds (a request that fell back is free) over the cheapest candidate whose median met the deadline (null for a step where none did). Read it with the share of its requests that met the deadline: a planner cheaper than the oracle because it misses the deadline shows a ratio under 1 and a low share.`,
      'Link probes: after each planner request, the bench probes every endpoint the planner reports due (LinkProber\'s round: three small transfers, one of 128 KB) whose link the request did not just load, as the runtime\'s idle-link prober would; a refused probe (cut-off link) is not reported.',
    ],
  };
  const files = options.reportDir === false ? undefined : await writeEndpointsReport(result, options.reportDir);
  return files ? { result, files } : { result };
}

interface StepOptions {
  latency: AdaptivePlanner;
  cost: AdaptivePlanner;
  window: number;
  rounds: number;
  deadlineMs: number;
  prices: Readonly<Record<string, ProviderPrice>>;
}

async function measureStep(testbed: EndpointsTestbed, step: (typeof STEPS)[number], o: StepOptions): Promise<EndpointsStep> {
  const live = ENDPOINTS.filter((n) => step.links[n]?.down !== true);
  const candidates = candidatePlans(testbed, step.links, live);
  const latencyRuns: Array<{ plan: Plan; obs: Observation }> = [];
  const costRuns: Array<{ plan: Plan; obs: Observation }> = [];
  for (let i = 0; i < o.window; i++) {
    latencyRuns.push(await plannerRequest(testbed, o.latency));
    costRuns.push(await plannerRequest(testbed, o.cost));
  }
  const samples = new Map<string, number[]>();
  const random = seeded(hash(step.label));
  const steadyFrom = latencyRuns.length;
  const costSteadyFrom = costRuns.length;
  for (let r = 0; r < o.rounds; r++) {
    // The oracle also measures whatever a planner chose (on a live endpoint).
    for (const run of [...latencyRuns, ...costRuns]) {
      const key = describePlan(run.plan);
      if (!candidates.has(key) && (run.plan.kind === 'local' || live.includes(run.plan.endpoint as (typeof ENDPOINTS)[number]))) candidates.set(key, run.plan);
    }
    const order: Array<Plan | 'latency' | 'cost'> = [...candidates.values(), 'latency', 'cost'];
    shuffle(order, random);
    for (const item of order) {
      if (item === 'latency') latencyRuns.push(await plannerRequest(testbed, o.latency));
      else if (item === 'cost') costRuns.push(await plannerRequest(testbed, o.cost));
      else {
        const obs = await testbed.execute(item);
        const key = describePlan(item);
        samples.set(key, [...(samples.get(key) ?? []), obs.totalMs]);
      }
    }
  }
  const plans = [...samples].map(([plan, v]) => ({ plan, ms: median(v), samples: v.length, price: planPrice(candidates.get(plan) as Plan, testbed.profile, o.prices) }));
  plans.sort((a, b) => a.ms - b.ms);
  const oracle = plans[0] ?? { plan: 'local', ms: Number.NaN, samples: 0, price: 0 };
  // Groups (an endpoint, or local) whose best plan is the oracle's or within TIE of it.
  const best = new Set(plans.filter((p) => p.ms <= oracle.ms * (1 + TIE)).map((p) => groupOf(p.plan)));
  const onTarget = latencyRuns.map((r) => !r.obs.fellBack && best.has(r.plan.kind === 'local' ? 'local' : r.plan.endpoint));
  const first = onTarget.findIndex((ok, i) => ok && (i + 1 >= onTarget.length || onTarget[i + 1]));
  const steady = latencyRuns.slice(steadyFrom).map((r) => r.obs.totalMs);
  const adaptiveSteadyMs = median(steady);
  // Cost: the cheapest candidate whose median met the deadline (the fastest when none did).
  const feasible = plans.filter((p) => p.ms <= o.deadlineMs);
  const costOracle = feasible.length > 0 ? feasible.reduce((a, b) => (b.price < a.price || (b.price === a.price && b.ms < a.ms) ? b : a)) : oracle;
  const costSteady = costRuns.slice(costSteadyFrom);
  const price = (r: { plan: Plan; obs: Observation }): number => (r.obs.fellBack ? 0 : planPrice(r.plan, testbed.profile, o.prices));
  const meanPrice = costSteady.reduce((s, r) => s + price(r), 0) / Math.max(1, costSteady.length);
  // No candidate met the deadline: the step has no cheapest feasible plan to compare with (NaN, left out of the maximum).
  const costOverOracle = feasible.length === 0 ? Number.NaN : costOracle.price > 0 ? meanPrice / costOracle.price : meanPrice === 0 ? 1 : Number.POSITIVE_INFINITY;
  const failed = ENDPOINTS.filter((n) => !live.includes(n));
  const toFailed = (r: { plan: Plan }): boolean => r.plan.kind !== 'local' && failed.includes(r.plan.endpoint as (typeof ENDPOINTS)[number]);
  return {
    label: step.label,
    links: Object.fromEntries(ENDPOINTS.map((n) => [n, step.links[n] as LinkState])),
    oraclePlan: oracle.plan,
    oracleMs: oracle.ms,
    adaptiveSteadyMs,
    adaptiveStepMs: median(latencyRuns.map((r) => r.obs.totalMs)),
    adaptiveOverOracle: adaptiveSteadyMs / oracle.ms,
    requestsToSwitch: first < 0 ? latencyRuns.length + 1 : first + 1,
    adaptivePlans: latencyRuns.map((r) => describePlan(r.plan)),
    requests: latencyRuns.map((r) => ({ plan: describePlan(r.plan), ms: r.obs.totalMs, fellBack: r.obs.fellBack })),
    plans,
    cost: {
      deadlineMs: o.deadlineMs,
      oraclePlan: costOracle.plan,
      oraclePrice: costOracle.price,
      adaptiveMeanPrice: meanPrice,
      costOverOracle,
      adaptiveSteadyMs: median(costSteady.map((r) => r.obs.totalMs)),
      deadlineMet: costSteady.filter((r) => r.obs.totalMs <= o.deadlineMs).length / Math.max(1, costSteady.length),
      plans: costRuns.map((r) => describePlan(r.plan)),
    },
    // Requests of either planner to a failed endpoint that completed there (must be 0: each falls back).
    servedByFailed: [...latencyRuns, ...costRuns].filter((r) => toFailed(r) && !r.obs.fellBack && r.obs.ok).length,
    fallbacks: [...latencyRuns, ...costRuns].filter((r) => r.obs.fellBack).length,
  };
}

/** Local, offload to each live endpoint, and the splits predicted within 2× of the best under the true links. */
function candidatePlans(testbed: EndpointsTestbed, links: Record<string, LinkState>, live: readonly string[]): Map<string, Plan> {
  const truth = new AdaptivePlanner({
    profile: testbed.profile,
    endpoints: live.map((name) => ({ name, rttMs: links[name]?.rttMs ?? 0, bandwidthBitsPerSecond: (links[name]?.bandwidthMbit ?? 1) * 1e6 })),
    exploration: false,
  });
  const ranked = truth.rank({ allowedEndpoints: [...live] });
  const bestMs = ranked[0]?.totalMs ?? 0;
  const out = new Map<string, Plan>();
  for (const option of ranked) {
    if (option.plan.kind === 'split' && option.totalMs > 2 * bestMs) continue;
    out.set(describePlan(option.plan), option.plan);
  }
  return out;
}

/**
 * One request with a planner as the runtime's chooser, then link probes of the endpoints the
 * planner reports due whose link the request left idle (another endpoint's link, or a quiet plan).
 */
async function plannerRequest(testbed: EndpointsTestbed, planner: AdaptivePlanner): Promise<{ plan: Plan; obs: Observation }> {
  let due: string[] = [];
  const chooser: PlanChooser = {
    choose: (context) => {
      const plan = planner.choose(context);
      due = planner.linkProbesDue(context).filter((name) => plan.kind === 'local' || plan.endpoint !== name);
      return plan;
    },
    observe: (observation) => planner.observe(observation),
  };
  const obs = await testbed.execute(chooser);
  for (const name of due) {
    try {
      await probeRound(
        async (bytes) => {
          const ms = await testbed.probeLink(name, bytes);
          if (!Number.isFinite(ms)) throw new Error('refused');
          return ms;
        },
        (networkMs, bytes) => planner.reportLinkProbe(name, networkMs, bytes),
      );
    } catch {
      // A refused probe says nothing the requests will not: it is not reported.
    }
  }
  return { plan: obs.plan, obs };
}

function groupOf(plan: string): string {
  const arrow = plan.indexOf('→');
  return arrow < 0 ? 'local' : plan.slice(arrow + 1);
}

function linkText(l: LinkState): string {
  return l.down ? 'cut off' : `${l.bandwidthMbit} Mbit/s ${l.rttMs} ms`;
}

function hash(label: string): number {
  let h = 7;
  for (const c of label) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return h;
}

