/**
 * One point of the sweep: under one shaped link, the measured mean of every fixed option in
 * contention (edge-only, cloud-only with the encoded image, the static plan, the splits the cost
 * model keeps, each cut encoding within the budget), of Tandem's adaptive planner, and of the
 * first release's configuration (the adaptive planner with float32 cuts and the tensor offloaded),
 * interleaved round by round.
 */
import { AdaptivePlanner, LARGE_TRANSFER_BYTES, describePlan, type Observation, type Plan, type PlanChooser } from '../../src/planner/index.js';
import { LINK_PROBE_LARGE_BYTES, LINK_PROBE_SMALL_BYTES, probeRound } from '../../src/runtime/index.js';
import { ENDPOINT, mean, type InputForm, type PreparedModel, type RequestRecord, type Testbed } from './testbed.js';
import type { SweepPoint } from '../report.js';

/** Rounds every option gets before a clearly losing one may stop being measured. */
export const MIN_ROUNDS = 3;
/** An option whose mean is this many times the best so far is out of the oracle's contention. */
export const CONTENTION = 1.5;

/** The two planners a point measures, each carried across the grid. */
export interface Arms {
  /** Tandem now: encoded offload, cut encodings within the budget. */
  adaptive: AdaptivePlanner;
  /** The first release's configuration: float32 cuts, the tensor offloaded. */
  round1: AdaptivePlanner;
  /** Tandem with the model's pruned variants within the accuracy budget (when the model has variants). */
  variants?: AdaptivePlanner;
}

export interface PointOptions {
  staticPlan: Plan;
  arms: Arms;
  rounds: number;
  warmup: number;
  /** The largest output error a lossy cut encoding may cost (undefined: float32 only). */
  maxOutputError: number | undefined;
  /** The accuracy a pruned variant may cost (`arms.variants`' budget; the oracle's variant options are those within it). */
  maxAccuracyDrop?: number;
}

/**
 * Planners for a model: `round1` set to true builds the first release's configuration;
 * `maxAccuracyDrop` lets the planner weigh the profile's variants within it (none when absent).
 */
export function plannerFor(m: PreparedModel, maxOutputError: number | undefined, link?: { bw: number; rtt: number }, round1 = false, maxAccuracyDrop?: number): AdaptivePlanner {
  return new AdaptivePlanner({
    profile: m.profile,
    endpoints: [{ name: ENDPOINT, encodings: round1 ? [] : m.encodings, ...(link ? { rttMs: link.rtt, bandwidthBitsPerSecond: link.bw * 1e6 } : {}) }],
    ...(maxOutputError !== undefined && !round1 ? { maxOutputError } : {}),
    ...(maxAccuracyDrop !== undefined && !round1 ? { maxAccuracyDrop } : {}),
    ...(link ? { exploration: false } : {}),
  });
}

/** Whether a described plan runs a variant (`local~ID`, `split@…~ID→…`). */
export function isVariantPlan(description: string): boolean {
  return description.includes('~');
}

/**
 * One request of a planner: the `AdaptivePlanner` is the runtime's `PlanChooser` for it. When the
 * chosen plan leaves the link (nearly) idle and the planner wants the link re-measured, the
 * harness probes it out of band right after the request, as a deployment's idle-link prober
 * would. Not during it: here the cloud service and the shaper share the two cores with the
 * emulated edge, so a concurrent probe would slow the edge run (8× amplified by the slowdown)
 * in a way a real device, whose probe costs a socket write, would not see.
 */
export async function adaptiveRequest(testbed: Testbed, m: PreparedModel, planner: AdaptivePlanner, form: InputForm = 'image'): Promise<RequestRecord & { plan: Plan }> {
  let probe = false;
  const chooser: PlanChooser = {
    choose: (context) => {
      const plan = planner.choose(context);
      probe = quietLink(plan, m) && planner.linkProbesDue(context).length > 0;
      return plan;
    },
    observe: (observation) => planner.observe(observation),
  };
  const record = await testbed.request(m.name, chooser, form);
  if (probe) await probeLink(testbed, planner);
  if (process.env['TANDEM_BENCH_DEBUG']) debugLine(record.obs, planner, form === 'image' ? m.jpeg.byteLength : undefined);
  return { ...record, plan: record.obs.plan };
}

function debugLine(obs: Observation, planner: AdaptivePlanner, inputBytes: number | undefined): void {
  const top = planner.rank({ allowedEndpoints: [ENDPOINT], ...(inputBytes !== undefined ? { inputBytes } : {}) }).slice(0, 3).map((r) => `${describePlan(r.plan)}=${r.totalMs.toFixed(0)}`);
  const s = planner.snapshot();
  process.stderr.write(`  ${describePlan(obs.plan)} ${obs.totalMs.toFixed(0)} ms (edge ${obs.edgeMs.toFixed(0)} net ${obs.networkMs.toFixed(0)} remote ${obs.remoteMs.toFixed(0)}) edge×${s.edgeScale.toFixed(2)} h${(s.hysteresis * 100).toFixed(1)}% top ${top.join(' ')}\n`);
}

type Item = [string, Plan] | 'adaptive' | 'round1' | 'variants';

export async function measurePoint(testbed: Testbed, m: PreparedModel, bw: number, rtt: number, o: PointOptions): Promise<SweepPoint> {
  // Options worth measuring for the oracle: the cost model under the true link, told the
  // image's size, prunes the hopeless ones. With variants, the options within 2× of the best
  // prediction with them join those within 2× of the best without (the unpruned oracle's).
  const variants = o.arms.variants !== undefined && o.maxAccuracyDrop !== undefined;
  const options = new Map<string, Plan>();
  for (const plan of [{ kind: 'local' } as Plan, { kind: 'offload', endpoint: ENDPOINT } as Plan, o.staticPlan]) options.set(describePlan(plan), plan);
  for (const drop of variants ? [undefined, o.maxAccuracyDrop] : [undefined]) {
    const ranked = plannerFor(m, o.maxOutputError, { bw, rtt }, false, drop).rank({ allowedEndpoints: [ENDPOINT], inputBytes: m.jpeg.byteLength });
    const bestPredicted = ranked[0]?.totalMs ?? 0;
    for (const option of ranked) if (option.totalMs <= 2 * bestPredicted) options.set(describePlan(option.plan), option.plan);
  }

  // The first requests after the change are the planners' convergence (what `bench trace` measures).
  for (let i = 0; i < o.warmup; i++) {
    await adaptiveRequest(testbed, m, o.arms.adaptive);
    await adaptiveRequest(testbed, m, o.arms.round1, 'tensor');
    if (o.arms.variants) await adaptiveRequest(testbed, m, o.arms.variants);
  }

  // Rounds: each runs every option still in contention once, one adaptive request and one of
  // the first release's configuration, in a shuffled order, so that the shared machine's load
  // swings hit them alike (a swing lasts seconds; a round takes about one).
  const samples = new Map<string, RequestRecord[]>();
  const adaptive: Array<RequestRecord & { plan: Plan }> = [];
  const round1: Array<RequestRecord & { plan: Plan }> = [];
  const withVariants: Array<RequestRecord & { plan: Plan }> = [];
  const random = seeded(bw * 1000 + rtt);
  for (let r = 0; r < o.rounds; r++) {
    const means = new Map([...samples].map(([k, v]) => [k, mean(v.map((x) => x.totalMs))]));
    const best = Math.min(...means.values());
    // An unpruned option stays in contention against the best unpruned one: the unpruned oracle needs it.
    const bestUnpruned = Math.min(...[...means].filter(([k]) => !isVariantPlan(k)).map(([, v]) => v));
    // Every option gets MIN_ROUNDS requests, also one added late (a plan an arm chose), before it may leave.
    const active = [...options].filter(([key]) => (samples.get(key)?.length ?? 0) < MIN_ROUNDS || !((means.get(key) ?? 0) > CONTENTION * (isVariantPlan(key) ? best : bestUnpruned)));
    const order: Item[] = [...active, 'adaptive', 'round1', ...(o.arms.variants ? ['variants' as const] : [])];
    shuffle(order, random);
    for (const item of order) {
      if (item === 'adaptive') adaptive.push(await adaptiveRequest(testbed, m, o.arms.adaptive));
      else if (item === 'round1') round1.push(await adaptiveRequest(testbed, m, o.arms.round1, 'tensor'));
      else if (item === 'variants' && o.arms.variants) withVariants.push(await adaptiveRequest(testbed, m, o.arms.variants));
      else if (Array.isArray(item)) samples.set(item[0], [...(samples.get(item[0]) ?? []), await testbed.request(m.name, item[1])]);
    }
    // The oracle also tries whatever adaptive (with or without variants) chose, from the next round on.
    for (const a of [...adaptive, ...withVariants]) {
      const key = describePlan(a.plan);
      if (!options.has(key)) options.set(key, a.plan);
    }
  }
  return { ...summarize(m, bw, rtt, o, samples, adaptive, round1), ...(o.arms.variants ? summarizeVariants(m, o, samples, adaptive, withVariants) : {}) };
}

function summarize(
  m: PreparedModel,
  bw: number,
  rtt: number,
  o: PointOptions,
  samples: ReadonlyMap<string, RequestRecord[]>,
  adaptive: ReadonlyArray<RequestRecord & { plan: Plan }>,
  round1: ReadonlyArray<RequestRecord & { plan: Plan }>,
): SweepPoint {
  const msOf = (rs: readonly RequestRecord[]): number => mean(rs.map((r) => r.totalMs));
  // Variants are the unpruned arms' options in no way: their oracle (and pooled best) leaves them out.
  const unpruned = new Map([...samples].filter(([key]) => !isVariantPlan(key)));
  const oracle = bestOf(unpruned, Math.min(MIN_ROUNDS, o.rounds));
  const oracleMs = oracle?.ms ?? Number.POSITIVE_INFINITY;
  const oraclePlan = oracle?.plan ?? 'local';
  const adaptivePlans = adaptive.map((a) => describePlan(a.plan));
  // The choice figure: every request of a plan under this condition (the options' and
  // adaptive's own) estimates that plan's mean; adaptive is charged, request by request, the
  // mean of the plan it chose. It isolates the quality of the choices from request-to-request
  // noise, and a wrong choice still costs its full measured gap.
  const pooled = new Map<string, number[]>();
  for (const [k, rs] of unpruned) pooled.set(k, rs.map((r) => r.totalMs));
  adaptive.forEach((a, i) => pooled.set(adaptivePlans[i] as string, [...(pooled.get(adaptivePlans[i] as string) ?? []), a.totalMs]));
  const pooledMeans = [...pooled].filter(([, v]) => v.length >= Math.min(MIN_ROUNDS, o.rounds)).map(([, v]) => mean(v));
  const adaptiveMs = msOf(adaptive);
  const round1Ms = msOf(round1);
  const local = samples.get('local') ?? [];
  const offload = samples.get(`offload→${ENDPOINT}`) ?? [];
  const adaptivePlan = mostFrequent(adaptivePlans);
  const round1Plans = round1.map((a) => describePlan(a.plan));
  return {
    model: m.name,
    bandwidthMbit: bw,
    rttMs: rtt,
    edgeOnlyMs: msOf(local),
    cloudOnlyMs: msOf(offload),
    staticMs: msOf(samples.get(describePlan(o.staticPlan)) ?? []),
    adaptiveMs,
    oracleMs,
    oraclePlan,
    adaptivePlan,
    oracleEdgeShare: edgeShare(oraclePlan, m),
    adaptiveEdgeShare: edgeShare(adaptivePlan, m),
    staticPlan: describePlan(o.staticPlan),
    adaptivePlans,
    oracleSamples: samples.get(oraclePlan)?.length ?? 0,
    adaptiveChoiceMs: mean(adaptivePlans.map((k) => mean(pooled.get(k) ?? []))),
    oracleChoiceMs: Math.min(...pooledMeans),
    // The same view of "never worse than the better fixed strategy": when adaptive runs local in
    // every round, its gap to edge-only is request-to-request noise, which pooling averages out.
    bestFixedChoiceMs: Math.min(mean(pooled.get('local') ?? []), mean(pooled.get(`offload→${ENDPOINT}`) ?? [])),
    round1Ms,
    round1Plan: mostFrequent(round1Plans),
    round1Plans,
    speedupOverRound1: round1Ms / adaptiveMs,
    adaptiveOutputError: Math.max(0, ...adaptive.map((a) => a.outputError)),
    oracleOutputError: Math.max(0, ...(samples.get(oraclePlan) ?? []).map((r) => r.outputError)),
    round1OutputError: Math.max(0, ...round1.map((a) => a.outputError)),
    adaptiveBytesSent: mean(adaptive.map((a) => a.obs.bytesSent)),
    round1BytesSent: mean(round1.map((a) => a.obs.bytesSent)),
    round1Offloads: round1.filter((a) => a.plan.kind === 'offload').map((a) => a.obs.bytesSent),
    cloudOnlyBytesSent: mean(offload.map((r) => r.obs.bytesSent)),
  };
}

/** The option with the lowest measured mean among those measured at least `min` times. */
function bestOf(samples: ReadonlyMap<string, RequestRecord[]>, min: number): { plan: string; ms: number } | undefined {
  let best: { plan: string; ms: number } | undefined;
  for (const [plan, rs] of samples) {
    if (rs.length < min) continue;
    const ms = mean(rs.map((r) => r.totalMs));
    if (!best || ms < best.ms) best = { plan, ms };
  }
  return best;
}

/**
 * What the variants gained at a point: adaptive with variants against adaptive without (the
 * same rounds), the variant it chose most, that variant's accuracy drop, and the oracle over
 * every option, variants within the budget included.
 */
function summarizeVariants(
  m: PreparedModel,
  o: PointOptions,
  samples: ReadonlyMap<string, RequestRecord[]>,
  adaptive: ReadonlyArray<RequestRecord>,
  arm: ReadonlyArray<RequestRecord & { plan: Plan }>,
): Partial<SweepPoint> {
  const plans = arm.map((a) => describePlan(a.plan));
  const plan = mostFrequent(plans);
  const variantOf = (p: Plan): string | undefined => (p.kind === 'offload' ? undefined : p.variant);
  const chosen = arm.map((a) => variantOf(a.plan)).find((v, i) => v !== undefined && plans[i] === plan);
  const drops = arm.flatMap((a) => {
    const v = variantOf(a.plan);
    return v === undefined ? [] : [m.profile.variants?.find((x) => x.id === v)?.accuracyDrop ?? Number.NaN];
  });
  const ms = mean(arm.map((a) => a.totalMs));
  const oracle = bestOf(samples, Math.min(MIN_ROUNDS, o.rounds));
  return {
    ...(o.maxAccuracyDrop !== undefined ? { maxAccuracyDrop: o.maxAccuracyDrop } : {}),
    variantsMs: ms,
    variantsPlan: plan,
    variantsPlans: plans,
    variantSpeedup: mean(adaptive.map((a) => a.totalMs)) / ms,
    ...(chosen !== undefined ? { variantChosen: chosen, variantAccuracyDrop: m.profile.variants?.find((x) => x.id === chosen)?.accuracyDrop ?? Number.NaN } : {}),
    variantShare: drops.length / Math.max(1, arm.length),
    variantMaxAccuracyDrop: Math.max(0, ...drops),
    variantsOutputError: Math.max(0, ...arm.map((a) => a.outputError)),
    oracleVariantsMs: oracle?.ms ?? Number.POSITIVE_INFINITY,
    oracleVariantsPlan: oracle?.plan ?? 'local',
  };
}

/** A seeded LCG in [0, 1): repeatable shuffles across runs. */
export function seeded(seed: number): () => number {
  let s = Math.floor(seed) >>> 0 || 1;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

export function shuffle<T>(items: T[], random: () => number): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
}

/** Bytes a plan sends, from the profile (the encoding's, for a compressed cut). */
function sentBytes(plan: Plan, m: PreparedModel): number {
  if (plan.kind === 'local') return 0;
  if (plan.kind === 'offload') return m.jpeg.byteLength;
  const cuts = plan.variant === undefined ? m.profile.cuts : m.profile.variants?.find((v) => v.id === plan.variant)?.cuts ?? [];
  const cut = cuts.find((c) => c.id === plan.cut);
  if (!cut) return Number.POSITIVE_INFINITY;
  const encoded = plan.encoding === 'float16' || plan.encoding === 'int8' ? cut.encodings?.[plan.encoding]?.bytes : undefined;
  return (encoded ?? cut.bytes) + cut.outputBytes;
}

/** Whether a plan leaves the link nearly idle: local, or a split sending a small tensor after its head. */
export function quietLink(plan: Plan, m: PreparedModel): boolean {
  return plan.kind === 'local' || (plan.kind === 'split' && sentBytes(plan, m) < LARGE_TRANSFER_BYTES);
}

/**
 * One probe round over the idle link (the runtime's own round: the fastest of three small
 * transfers, then one of 128 KB), reported to the planner. The fastest small one matters: one
 * slow small transfer tilts the planner's fit flat, and once (PP-OCRv4 det, 50 Mbit/s, 10 ms)
 * a 256 B probe that took about as long as the 128 KB one made a 786 KB offload look 50 ms
 * where it took 197, and the planner offloaded twice.
 */
export async function probeLink(testbed: Testbed, planner: AdaptivePlanner): Promise<void> {
  const { smallMs, largeMs } = await probeRound((bytes) => testbed.probeLink(bytes), (networkMs, bytes) => planner.reportLinkProbe(ENDPOINT, networkMs, bytes));
  if (process.env['TANDEM_BENCH_DEBUG']) process.stderr.write(`  probe ${smallMs.toFixed(1)} ms / ${LINK_PROBE_SMALL_BYTES} B, ${largeMs.toFixed(1)} ms / ${LINK_PROBE_LARGE_BYTES} B\n`);
}

/** The static (Neurosurgeon-style) plan: the best predicted from the profile for one condition, told the image's size. */
export function predictedBest(m: PreparedModel, maxOutputError: number | undefined, bw: number, rtt: number): Plan {
  return plannerFor(m, maxOutputError, { bw, rtt }).choose({ allowedEndpoints: [ENDPOINT], inputBytes: m.jpeg.byteLength });
}

function mostFrequent(items: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const i of items) counts.set(i, (counts.get(i) ?? 0) + 1);
  let best = items[0] ?? 'local';
  for (const [k, n] of counts) if (n > (counts.get(best) ?? 0)) best = k;
  return best;
}

const SPLIT_RE = /^split@([^/~→]+)(?:\/(float16|int8))?(?:~([^→]+))?→(.+)$/;

export function planFromDescription(text: string, m: PreparedModel): Plan | undefined {
  if (text === 'local') return { kind: 'local' };
  if (text.startsWith('local~')) return { kind: 'local', variant: text.slice('local~'.length) };
  if (text === `offload→${ENDPOINT}`) return { kind: 'offload', endpoint: ENDPOINT };
  const match = SPLIT_RE.exec(text);
  if (!match || !m.heads.has(match[1] as string)) return undefined;
  const encoding = match[2] as 'float16' | 'int8' | undefined;
  return { kind: 'split', cut: match[1] as string, endpoint: match[4] as string, ...(encoding ? { encoding } : {}), ...(match[3] ? { variant: match[3] } : {}) };
}

/** Share of the model's FLOPs the plan runs on the edge (a variant's plan counted at the model's cut). */
export function edgeShare(plan: string, m: PreparedModel): number {
  if (plan === 'local' || plan.startsWith('local~')) return 1;
  const match = SPLIT_RE.exec(plan);
  if (!match) return 0;
  const cut = m.cuts.find((c) => c.id === match[1]);
  return cut && m.totalFlops > 0 ? Math.min(1, cut.headFlops / m.totalFlops) : 0;
}
