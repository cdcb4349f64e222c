/**
 * `tandem bench sweep`: for each model and each (bandwidth, RTT) point of the grid, the
 * measured mean latency of edge-only, cloud-only, a Neurosurgeon-style static plan, Tandem's
 * adaptive planner and the oracle, all over the real shaped loopback link.
 */
import { AdaptivePlanner } from '../src/planner/adaptive.js';
import { LARGE_TRANSFER_BYTES } from '../src/planner/estimators.js';
import { describePlan, type Plan } from '../src/planner/plan.js';
import type { Profile } from '../src/planner/profile.js';
import { ENDPOINT, MODELS, Testbed, mean, type PreparedModel } from './harness/testbed.js';
import { writeSweepReport, type ModelSummary, type ReportFiles, type SweepPoint, type SweepResult } from './report.js';

export interface SweepOptions {
  quick?: boolean;
  slowdown?: number;
  models?: string[];
  bandwidthsMbit?: number[];
  rttsMs?: number[];
  /** Adaptive requests per point; the first `adaptiveWarmup` are not counted in its mean. */
  adaptiveRequests?: number;
  adaptiveWarmup?: number;
  maxCuts?: number;
  log?: (line: string) => void;
  /** Where reports go; `false` skips them. */
  reportDir?: string | false;
}

export const FULL_GRID = { bandwidthsMbit: [1, 2, 5, 10, 20, 50, 100], rttsMs: [10, 50, 100] };
export const QUICK_GRID = { bandwidthsMbit: [2, 10, 50], rttsMs: [10, 50] };

/** Runs the sweep and writes its reports. */
export async function runSweep(options: SweepOptions = {}): Promise<{ result: SweepResult; files?: ReportFiles }> {
  const quick = options.quick ?? false;
  const slowdown = options.slowdown ?? 8;
  const models = options.models ?? (quick ? ['resnet18', 'mobilenetv2'] : ['mobilenetv2', 'resnet18', 'ppocrv4-det']);
  const bandwidths = options.bandwidthsMbit ?? (quick ? QUICK_GRID : FULL_GRID).bandwidthsMbit;
  const rtts = options.rttsMs ?? (quick ? QUICK_GRID : FULL_GRID).rttsMs;
  const adaptiveRequests = options.adaptiveRequests ?? (quick ? 8 : 9);
  const warmup = options.adaptiveWarmup ?? 3;
  const log = options.log ?? (() => undefined);
  const testbed = await Testbed.create({ slowdown, maxCuts: options.maxCuts ?? (quick ? 6 : 10), log });
  const points: SweepPoint[] = [];
  const summaries: ModelSummary[] = [];
  const notes = [
    `Network: the shaping TCP proxy on loopback (token bucket per direction, RTT split equally); edge: onnxruntime-node sessions stretched ×${slowdown}; cloud: the harness's STAND-IN tail service (onnxruntime-node on the same machine).`,
    'Oracle: the lowest measured mean over local, offload, every candidate split whose cost-model prediction under the true link is within 2× of the best prediction, and any plan adaptive chose.',
    `Measurements are interleaved: after ${warmup} adaptive requests that follow the change (not counted), each of ${Math.max(2, adaptiveRequests - warmup)} rounds runs every option once and one adaptive request, so load drifts of the shared machine hit all strategies alike.`,
    `Static (Neurosurgeon-style): the best plan predicted from the profile for the mean condition of the grid (${mean(bandwidths).toFixed(1)} Mbit/s, ${mean(rtts).toFixed(0)} ms), fixed for every point.`,
    `Adaptive: one planner per model, carried across the grid points in order (bandwidth falling, RTT rising), starting from the profile and default priors (10 Mbit/s, 50 ms).`,
  ];
  try {
    for (const name of models) {
      const spec = MODELS[name];
      if (!spec) throw new Error(`unknown model ${name}`);
      const m = await testbed.prepare(spec);
      log(`${name}: profile local ${m.profile.localMs.toFixed(1)} ms, offload remote ${m.profile.remoteMs[ENDPOINT]?.toFixed(1)} ms, input ${m.profile.inputBytes} B`);
      summaries.push({
        model: name,
        localMs: m.profile.localMs,
        remoteMs: m.profile.remoteMs[ENDPOINT] ?? 0,
        inputBytes: m.profile.inputBytes,
        outputBytes: m.profile.outputBytes,
        cuts: m.profile.cuts.map((c) => ({ id: c.id, bytes: c.bytes, outputBytes: c.outputBytes, headMs: c.headMs, tailMs: c.tailMs[ENDPOINT] ?? 0 })),
      });
      const staticPlan = predictedBest(m.profile, mean(bandwidths) * 1e6, mean(rtts));
      const adaptive = new AdaptivePlanner({ profile: m.profile, endpoints: [{ name: ENDPOINT }] });
      for (const bw of [...bandwidths].sort((a, b) => b - a)) {
        for (const rtt of rtts) {
          testbed.setLink(bw * 1e6, rtt);
          const point = await measurePoint(testbed, m, bw, rtt, { staticPlan, adaptive, adaptiveRequests, warmup });
          points.push(point);
          log(
            `${name} ${bw} Mbit/s ${rtt} ms: edge ${point.edgeOnlyMs.toFixed(0)} cloud ${point.cloudOnlyMs.toFixed(0)} static ${point.staticMs.toFixed(0)} adaptive ${point.adaptiveMs.toFixed(0)} (${point.adaptivePlan}) oracle ${point.oracleMs.toFixed(0)} (${point.oraclePlan})`,
          );
        }
      }
    }
  } finally {
    await testbed.close();
  }
  const result: SweepResult = {
    models: summaries,
    adaptiveOverOracle: Math.max(...points.map((p) => p.adaptiveMs / p.oracleMs)),
    adaptiveOverBestFixed: Math.max(...points.map((p) => p.adaptiveMs / Math.min(p.edgeOnlyMs, p.cloudOnlyMs))),
    points,
    slowdown,
    quick,
    notes,
  };
  const files = options.reportDir === false ? undefined : await writeSweepReport(result, options.reportDir);
  return files ? { result, files } : { result };
}

interface PointOptions {
  staticPlan: Plan;
  adaptive: AdaptivePlanner;
  adaptiveRequests: number;
  warmup: number;
}

async function measurePoint(testbed: Testbed, m: PreparedModel, bw: number, rtt: number, o: PointOptions): Promise<SweepPoint> {
  // Options worth measuring for the oracle: the cost model under the true link prunes the hopeless ones.
  const truth = new AdaptivePlanner({
    profile: m.profile,
    endpoints: [{ name: ENDPOINT, rttMs: rtt, bandwidthBitsPerSecond: bw * 1e6 }],
    exploration: false,
  });
  const ranked = truth.rank({ allowedEndpoints: [ENDPOINT] });
  const bestPredicted = ranked[0]?.totalMs ?? 0;
  const local: Plan = { kind: 'local' };
  const offload: Plan = { kind: 'offload', endpoint: ENDPOINT };
  const fixed = new Map<string, Plan>();
  for (const plan of [local, offload, o.staticPlan]) fixed.set(describePlan(plan), plan);
  for (const option of ranked) if (option.totalMs <= 2 * bestPredicted) fixed.set(describePlan(option.plan), option.plan);

  const ctx = { allowedEndpoints: [ENDPOINT] };
  const adaptiveStep = async (): Promise<{ plan: string; ms: number }> => {
    const plan = o.adaptive.choose(ctx);
    // While the request leaves the link (nearly) idle, the link is measured out of band.
    const probing = quietLink(plan, m) && o.adaptive.linkProbesDue(ctx).length > 0 ? probeLink(testbed, o.adaptive) : Promise.resolve();
    const obs = await testbed.execute(m.name, plan);
    await probing;
    o.adaptive.observe(obs);
    if (process.env['TANDEM_BENCH_DEBUG']) {
      const top = o.adaptive.rank(ctx).slice(0, 3).map((r) => `${describePlan(r.plan)}=${r.totalMs.toFixed(0)}`);
      process.stderr.write(`  ${describePlan(plan)} ${obs.totalMs.toFixed(0)} ms (edge ${obs.edgeMs.toFixed(0)} net ${obs.networkMs.toFixed(0)} remote ${obs.remoteMs.toFixed(0)}) belief ${JSON.stringify(o.adaptive.snapshot().endpoints[0])} edge×${o.adaptive.snapshot().edgeScale.toFixed(2)} top ${top.join(' ')}\n`);
    }
    return { plan: describePlan(plan), ms: obs.totalMs };
  };

  // The first requests after the change are adaptive's convergence (what `bench trace` measures).
  for (let i = 0; i < o.warmup; i++) await adaptiveStep();
  // Then rounds: one request of every fixed option and one of adaptive per round, so that the
  // machine's load drifts (large on a shared 2-core box) hit every strategy alike.
  const samples = new Map<string, number[]>();
  const adaptiveTimes: number[] = [];
  const adaptivePlans: string[] = [];
  const rounds = Math.max(2, o.adaptiveRequests - o.warmup);
  for (let r = 0; r < rounds; r++) {
    for (const [key, plan] of fixed) {
      const obs = await testbed.execute(m.name, plan);
      samples.set(key, [...(samples.get(key) ?? []), obs.totalMs]);
    }
    const a = await adaptiveStep();
    adaptiveTimes.push(a.ms);
    adaptivePlans.push(a.plan);
    // The oracle also measures whatever adaptive chose, from the next round on.
    const chosen = planFromDescription(a.plan, m);
    if (chosen && !fixed.has(a.plan)) fixed.set(a.plan, chosen);
  }
  const adaptivePlan = mostFrequent(adaptivePlans);
  const means = new Map([...samples].map(([k, v]) => [k, mean(v)]));
  let oracleMs = Number.POSITIVE_INFINITY;
  let oraclePlan = 'local';
  for (const [key, ms] of means) {
    if (ms < oracleMs) {
      oracleMs = ms;
      oraclePlan = key;
    }
  }
  return {
    model: m.name,
    bandwidthMbit: bw,
    rttMs: rtt,
    edgeOnlyMs: means.get('local') ?? Number.NaN,
    cloudOnlyMs: means.get(`offload→${ENDPOINT}`) ?? Number.NaN,
    staticMs: means.get(describePlan(o.staticPlan)) ?? Number.NaN,
    adaptiveMs: mean(adaptiveTimes),
    oracleMs,
    oraclePlan,
    adaptivePlan,
    oracleEdgeShare: edgeShare(oraclePlan, m),
    adaptiveEdgeShare: edgeShare(adaptivePlan, m),
    staticPlan: describePlan(o.staticPlan),
  };
}

/** Whether a plan leaves the link nearly idle: local, or a split sending a small tensor after its head. */
export function quietLink(plan: Plan, m: PreparedModel): boolean {
  if (plan.kind === 'local') return true;
  if (plan.kind === 'offload') return false;
  const cut = m.profile.cuts.find((c) => c.id === plan.cut);
  return cut !== undefined && cut.bytes + cut.outputBytes < LARGE_TRANSFER_BYTES;
}

/** Small and large transfers over the idle link, reported to the planner. */
export async function probeLink(testbed: Testbed, planner: AdaptivePlanner): Promise<void> {
  for (const bytes of [256, 128 * 1024]) {
    const ms = await testbed.probeLink(bytes);
    planner.reportLinkProbe(ENDPOINT, ms, bytes + 160);
  }
}

function predictedBest(profile: Profile, bitsPerSecond: number, rttMs: number): Plan {
  const p = new AdaptivePlanner({ profile, endpoints: [{ name: ENDPOINT, rttMs, bandwidthBitsPerSecond: bitsPerSecond }], exploration: false });
  return p.choose({ allowedEndpoints: [ENDPOINT] });
}

function mostFrequent(items: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const i of items) counts.set(i, (counts.get(i) ?? 0) + 1);
  let best = items[0] ?? 'local';
  for (const [k, n] of counts) if (n > (counts.get(best) ?? 0)) best = k;
  return best;
}

export function planFromDescription(text: string, m: PreparedModel): Plan | undefined {
  if (text === 'local') return { kind: 'local' };
  if (text === `offload→${ENDPOINT}`) return { kind: 'offload', endpoint: ENDPOINT };
  const match = /^split@(.+)→(.+)$/.exec(text);
  if (match && m.heads.has(match[1] as string)) return { kind: 'split', cut: match[1] as string, endpoint: match[2] as string };
  return undefined;
}

export function edgeShare(plan: string, m: PreparedModel): number {
  if (plan === 'local') return 1;
  const match = /^split@(.+)→/.exec(plan);
  if (!match) return 0;
  const cut = m.cuts.find((c) => c.id === match[1]);
  return cut && m.totalFlops > 0 ? Math.min(1, cut.headFlops / m.totalFlops) : 0;
}
