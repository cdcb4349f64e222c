/**
 * Decision-time benchmark of the adaptive planner: 200 cuts × 4 endpoints by default,
 * measured with the `benchmark` package (many cycles, statistically settled mean).
 */
import Benchmark from 'benchmark';
import { AdaptivePlanner, type Observation, type Plan, type PlanContext, type Profile } from '../src/planner/index.js';

export interface DecisionBenchResult {
  decisionMicros: number;
  /** Relative margin of error of the mean, percent. */
  rmePercent: number;
  observeMicros: number;
  cuts: number;
  endpoints: number;
  options: number;
  samples: number;
}

/** A profile of a chain-like model with `cuts` cuts whose activations shrink towards the output. */
export function syntheticProfile(cuts: number, endpoints: readonly string[]): Profile {
  const localMs = 200;
  const list: Profile['cuts'] = [];
  // c0 (whole offload) and the last cut (all on the edge) are not split options: add two.
  for (let k = 0; k <= cuts + 1; k++) {
    const f = k / (cuts + 1);
    const tailMs: Record<string, number> = {};
    endpoints.forEach((e, i) => (tailMs[e] = (1 - f) * 20 * (1 + i * 0.1)));
    list.push({
      id: `c${k}`,
      tensors: [`t${k}`],
      bytes: Math.round(600_000 * Math.exp(-4 * f) * (1 + 0.3 * Math.sin(k))),
      headFlops: f * 1e9,
      headMs: f * localMs,
      tailMs,
      outputBytes: 4000,
    });
  }
  return {
    version: 1,
    model: 'synthetic',
    modelSha256: '0'.repeat(64),
    shapes: { x: [1, 3, 224, 224] },
    edgeSlowdown: 1,
    workers: 1,
    localMs,
    remoteMs: Object.fromEntries(endpoints.map((e) => [e, 20])),
    inputBytes: 602_112,
    outputBytes: 4000,
    cuts: list,
  };
}

export function runDecisionBench(options: { cuts?: number; endpoints?: number; maxTimeSeconds?: number } = {}): DecisionBenchResult {
  const cuts = options.cuts ?? 200;
  const names = Array.from({ length: options.endpoints ?? 4 }, (_, i) => `ep${i}`);
  const profile = syntheticProfile(cuts, names);
  const planner = new AdaptivePlanner({
    profile,
    endpoints: names.map((name, i) => ({ name, rttMs: 20 + 10 * i, bandwidthBitsPerSecond: 20e6 / (i + 1), pricePerRequest: 1e-5, pricePerGB: 0.09 })),
  });
  const context: PlanContext = { allowedEndpoints: names, edgeQueue: 1 };
  let sink: Plan = { kind: 'local' };
  let i = 0;
  const observation = (plan: Plan): Observation => ({
    plan,
    ok: true,
    fellBack: false,
    queueMs: 1,
    edgeMs: 50,
    encodeMs: 0.5,
    networkMs: 40 + (i % 7),
    remoteMs: 10,
    decodeMs: 0.2,
    totalMs: 100,
    bytesSent: 50_000,
    bytesReceived: 4000,
    at: i,
  });
  const maxTime = options.maxTimeSeconds ?? 2;
  const decide = new Benchmark('choose', () => {
    sink = planner.choose(context);
  }, { maxTime, minSamples: 20 });
  decide.run({ async: false });
  const learn = new Benchmark('observe', () => {
    i += 1;
    planner.observe(observation(sink));
  }, { maxTime: maxTime / 2, minSamples: 20 });
  learn.run({ async: false });
  if (decide.error) throw decide.error;
  return {
    decisionMicros: decide.stats.mean * 1e6,
    rmePercent: decide.stats.rme,
    observeMicros: learn.stats.mean * 1e6,
    cuts: planner.tables.cutCount,
    endpoints: names.length,
    options: 1 + names.length * (planner.tables.cutCount + 1),
    samples: decide.stats.sample.length,
  };
}
