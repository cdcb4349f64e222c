/**
 * `tandem bench sweep`: for each model and each (bandwidth, RTT) point of the grid, the
 * measured mean latency of edge-only, cloud-only (the encoded image), a Neurosurgeon-style
 * static plan, Tandem's adaptive planner (encoded offload, compressed cuts within an
 * output-error budget), the oracle, and the first release's configuration (float32 cuts, the
 * tensor offloaded), all over the real shaped loopback link, each speed with its accuracy.
 */
import { loadavg } from 'node:os';
import { CONTENTION, MIN_ROUNDS, measurePoint, plannerFor, predictedBest } from './harness/point.js';
import { ENDPOINT, MODELS, Testbed, mean } from './harness/testbed.js';
import { writeSweepReport, type ModelSummary, type ReportFiles, type SweepPoint, type SweepResult } from './report.js';
import { CALIBRATION_SEEDS, HOLDOUT_SEEDS, prunedVariants, type VariantSource } from './harness/variants.js';

export { adaptiveRequest, CONTENTION, edgeShare, MIN_ROUNDS, planFromDescription, probeLink, quietLink, seeded, shuffle } from './harness/point.js';

export interface SweepOptions {
  quick?: boolean;
  slowdown?: number;
  /** Stretch each edge run's host jitter by the slowdown too (default: only the undisturbed (fastest recent) run time). */
  stretchJitter?: boolean;
  models?: string[];
  bandwidthsMbit?: number[];
  rttsMs?: number[];
  /** Measured rounds per point (each: every option in contention once, one adaptive request). */
  rounds?: number;
  /** Adaptive requests right after the change, not counted (its convergence, measured by `bench trace`). */
  adaptiveWarmup?: number;
  maxCuts?: number;
  /**
   * The largest output error a lossy cut encoding may cost (`AdaptivePlannerOptions.maxOutputError`,
   * for adaptive, static and the oracle's options); `null` for float32 only. Default 0.05.
   */
  maxOutputError?: number | null;
  /**
   * `keep` fractions of the pruned variants each model gets (pruned with `prunePackage`,
   * cached in `bench/results/variants/`); `false` for none. Default {@link DEFAULT_VARIANT_KEEPS},
   * none with `quick` (a first prune takes minutes per variant).
   */
  variants?: readonly number[] | false;
  /** The accuracy a variant may cost, for the arm with variants and the oracle with variants (default {@link DEFAULT_MAX_ACCURACY_DROP}). */
  maxAccuracyDrop?: number;
  /** Re-prune the variants even when cached. */
  freshVariants?: boolean;
  /** Where pruned variants are cached (`false`: not cached). */
  variantCache?: string | false;
  /** Adds the variants instead of pruning (tests). */
  variantSource?: VariantSource;
  /** The shaped link's token-bucket depth, bytes (default {@link SWEEP_BURST_BYTES}). */
  burstBytes?: number;
  log?: (line: string) => void;
  /** Where reports go; `false` skips them. */
  reportDir?: string | false;
}

export const FULL_GRID = { bandwidthsMbit: [1, 2, 5, 10, 20, 50, 100], rttsMs: [10, 50, 100] };
/** Every model at the bandwidths where the plans change kind: 24 points, about 25 minutes on a quiet 2-vCPU machine. */
export const MEDIUM_GRID = { bandwidthsMbit: [1, 5, 20, 100], rttsMs: [10, 50] };
export const QUICK_GRID = { bandwidthsMbit: [2, 10, 50], rttsMs: [10, 50] };
/**
 * The sweep's link burst: one Ethernet frame. A real link serialises every packet at its rate;
 * a deeper bucket would carry a whole JPEG (8.8 KB) in its burst, at no cost in time, which no
 * 2 Mbit/s uplink does and which the planner's cost model (bytes ÷ bandwidth) rightly does not predict.
 */
export const SWEEP_BURST_BYTES = 1500;
/** Default output-error budget of the lossy cut encodings. */
export const DEFAULT_MAX_OUTPUT_ERROR = 0.05;
/** Default pruned variants (keep fractions) and their accuracy budget (one point). */
export const DEFAULT_VARIANT_KEEPS = [0.7, 0.5] as const;
export const DEFAULT_MAX_ACCURACY_DROP = 0.01;

/** Runs the sweep and writes its reports. */
export async function runSweep(options: SweepOptions = {}): Promise<{ result: SweepResult; files?: ReportFiles }> {
  const quick = options.quick ?? false;
  const slowdown = options.slowdown ?? 8;
  const stretchJitter = options.stretchJitter ?? false;
  const models = options.models ?? (quick ? ['resnet18', 'mobilenetv2'] : ['mobilenetv2', 'resnet18', 'ppocrv4-det']);
  const bandwidths = options.bandwidthsMbit ?? (quick ? QUICK_GRID : FULL_GRID).bandwidthsMbit;
  const rtts = options.rttsMs ?? (quick ? QUICK_GRID : FULL_GRID).rttsMs;
  // 32: a 16-request mean of the same plan still differed by 2–4% between adaptive's requests
  // and the oracle's in the same rounds (slow spells of the shared host), which is most of a 5% bound.
  const rounds = options.rounds ?? (quick ? 8 : 32);
  const warmup = options.adaptiveWarmup ?? 3;
  const log = options.log ?? (() => undefined);
  const budget = options.maxOutputError === null ? undefined : options.maxOutputError ?? DEFAULT_MAX_OUTPUT_ERROR;
  const specs = models.map((name) => {
    const spec = MODELS[name];
    if (!spec) throw new Error(`unknown model ${name}`);
    return spec;
  });
  const burstBytes = options.burstBytes ?? SWEEP_BURST_BYTES;
  const keeps = options.variants ?? (quick ? false : DEFAULT_VARIANT_KEEPS);
  const drop = options.maxAccuracyDrop ?? DEFAULT_MAX_ACCURACY_DROP;
  const variantSource =
    options.variantSource ?? (keeps !== false && keeps.length > 0 ? prunedVariants({ keeps, ...(options.variantCache !== undefined ? { cacheDir: options.variantCache } : {}), ...(options.freshVariants ? { fresh: true } : {}), log }) : undefined);
  const testbed = await Testbed.create({ slowdown, stretchJitter, maxCuts: options.maxCuts ?? (quick ? 6 : 10), models: specs, burstBytes, log, ...(variantSource ? { variants: variantSource } : {}) });
  const loadStart = loadavg()[0] ?? Number.NaN;
  const points: SweepPoint[] = [];
  const summaries: ModelSummary[] = [];
  const notes = [...sweepNotes({ slowdown, warmup, rounds, bandwidths, rtts, budget, burstBytes }), ...(variantSource ? [variantNote(drop)] : [])];
  try {
    for (const spec of specs) {
      const name = spec.name;
      const m = await testbed.prepare(spec);
      log(`${name}: profile local ${m.profile.localMs.toFixed(1)} ms, offload remote ${m.profile.remoteMs[ENDPOINT]?.toFixed(1)} ms, tensor ${m.profile.inputBytes} B, JPEG ${m.jpeg.byteLength} B`);
      summaries.push({
        model: name,
        localMs: m.profile.localMs,
        remoteMs: m.profile.remoteMs[ENDPOINT] ?? 0,
        inputBytes: m.profile.inputBytes,
        outputBytes: m.profile.outputBytes,
        imageBytes: m.jpeg.byteLength,
        cuts: m.profile.cuts.map((c) => ({
          id: c.id, bytes: c.bytes, outputBytes: c.outputBytes, headMs: c.headMs, tailMs: c.tailMs[ENDPOINT] ?? 0,
          ...(c.encodings ? { encodings: Object.fromEntries(Object.entries(c.encodings).map(([e, v]) => [e, { bytes: v.bytes, maxError: v.maxError }])) } : {}),
        })),
      });
      const staticPlan = predictedBest(m, budget, mean(bandwidths), mean(rtts));
      const hasVariants = (m.profile.variants ?? []).length > 0;
      const arms = { adaptive: plannerFor(m, budget), round1: plannerFor(m, budget, undefined, true), ...(hasVariants ? { variants: plannerFor(m, budget, undefined, false, drop) } : {}) };
      for (const bw of [...bandwidths].sort((a, b) => b - a)) {
        for (const rtt of rtts) {
          testbed.setLink(bw * 1e6, rtt);
          const p = await measurePoint(testbed, m, bw, rtt, { staticPlan, arms, rounds, warmup, maxOutputError: budget, ...(hasVariants ? { maxAccuracyDrop: drop } : {}) });
          points.push(p);
          log(
            `${name} ${bw} Mbit/s ${rtt} ms: edge ${p.edgeOnlyMs.toFixed(0)} cloud ${p.cloudOnlyMs.toFixed(0)} static ${p.staticMs.toFixed(0)} adaptive ${p.adaptiveMs.toFixed(0)} (${p.adaptivePlan}, error ${(p.adaptiveOutputError ?? 0).toExponential(1)}) oracle ${p.oracleMs.toFixed(0)} (${p.oraclePlan}) round-1 ${(p.round1Ms ?? 0).toFixed(0)} (${p.round1Plan}) ×${(p.speedupOverRound1 ?? 0).toFixed(2)}` +
              (p.variantsMs !== undefined ? ` | +variants ${p.variantsMs.toFixed(0)} (${p.variantsPlan}) ×${(p.variantSpeedup ?? 0).toFixed(2)} oracle+variants ${(p.oracleVariantsMs ?? 0).toFixed(0)} (${p.oracleVariantsPlan})` : ''),
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
    choiceOverOracle: Math.max(...points.map((p) => (p.adaptiveChoiceMs ?? Number.NaN) / (p.oracleChoiceMs ?? Number.NaN))),
    choiceOverBestFixed: Math.max(...points.map((p) => (p.adaptiveChoiceMs ?? Number.NaN) / (p.bestFixedChoiceMs ?? Number.NaN))),
    geomeanSpeedupOverRound1: geomean(points.map((p) => p.speedupOverRound1 ?? Number.NaN)),
    ...(budget !== undefined ? { maxOutputError: budget } : {}),
    adaptiveOutputError: Math.max(0, ...points.map((p) => p.adaptiveOutputError ?? 0)),
    ...variantFigures(testbed, points, variantSource ? drop : undefined),
    loadAverage: { start: loadStart, end: loadavg()[0] ?? Number.NaN },
    points,
    slowdown,
    stretchJitter,
    quick,
    notes,
  };
  const files = options.reportDir === false ? undefined : await writeSweepReport(result, options.reportDir);
  return files ? { result, files } : { result };
}

/** The result's variant figures: the variants pruned per model, the geometric-mean speedup, the worst ratio to the oracle with variants. */
function variantFigures(testbed: Testbed, points: readonly SweepPoint[], drop: number | undefined): Partial<SweepResult> {
  if (drop === undefined) return {};
  const measured = points.filter((p) => p.variantsMs !== undefined);
  return {
    variants: Object.fromEntries(testbed.variants),
    maxAccuracyDrop: drop,
    ...(measured.length > 0
      ? {
          geomeanVariantSpeedup: geomean(measured.map((p) => p.variantSpeedup ?? Number.NaN)),
          variantsOverOracle: Math.max(...measured.map((p) => (p.variantsMs ?? Number.NaN) / (p.oracleVariantsMs ?? Number.NaN))),
          variantMaxAccuracyDrop: Math.max(0, ...measured.map((p) => p.variantMaxAccuracyDrop ?? 0)),
        }
      : {}),
  };
}

function variantNote(drop: number): string {
  return `Pruned variants: each model is pruned (src/prune's prunePackage, whole model, at each keep fraction given) with ${CALIBRATION_SEEDS.count} calibration images and measured on ${HOLDOUT_SEEDS.count} other (held-out) images of the sweep's own kind; the accuracy drop is 1 − top-1 agreement with the unpruned model (classifiers) or 1 − box F1 against its boxes (the detector). Pruned packages are cached in bench/results/variants/, keyed by the model, keep, the image seeds and the pruning code. A third planner, adaptive with variants (maxAccuracyDrop ${drop}; variant cuts get float16/int8 within the same output-error budget, measured against the variant's own float32 tail), runs in the same rounds; its speedup is adaptive's mean over its mean. The oracle with variants is the best measured mean over every option, those of variants within the budget included; the oracle of the other columns (and of the goals) stays over the unpruned options only. An unpruned option leaves contention only against the best unpruned mean, so a fast variant cannot starve the unpruned oracle. A variant over the budget is never an option of either.`;
}

export function geomean(xs: readonly number[]): number {
  return xs.length === 0 ? Number.NaN : Math.exp(xs.reduce((s, x) => s + Math.log(x), 0) / xs.length);
}

function sweepNotes(o: { slowdown: number; warmup: number; rounds: number; bandwidths: readonly number[]; rtts: readonly number[]; budget: number | undefined; burstBytes: number }): string[] {
  return [
    `Network: the shaping TCP proxy on loopback (token bucket per direction, ${o.burstBytes} B deep, RTT split equally). Edge: Tandem's runtime (createRuntime over a package whose manifest declares the image pipeline, one edge worker, one intra-op thread) with slowdown ×${o.slowdown}; the JPEG decode and the codec run on the host, unslowed. Cloud: Tandem's cloud service (startCloudService, in-process on 127.0.0.1, one intra-op thread per run, serving the same package) reached by the PAI-EAS provider client (the Tandem tensor payload) through the shaper.`,
    'Every request starts from the same JPEG. Edge-only, static, adaptive and the oracle\'s options give it to the runtime as it is: it decodes it for the edge\'s part, and an offload sends the JPEG itself (cloud-only is that offload). The first release\'s configuration (round-1) decodes it in the harness (timed, in its total) and gives the runtime the tensor, so its offloads send the float32 tensor; its planner has no cut encodings. It runs in the same rounds as the others.',
    `Cut encodings: float16 and int8 are options of adaptive, static and the oracle wherever the profile's output error (measured end to end on 3 calibration JPEGs, tail on the decoded cut) is within ${o.budget !== undefined ? o.budget : '— (none: float32 only)'}. Accuracy: every request's outputs are compared with the edge's float32 run on the same JPEG (per output max |y − y₃₂| / max |y₃₂|); the table gives the largest over adaptive's requests.`,
    'adaptive/oracle is the measured mean of adaptive\'s own requests over the oracle\'s (separate requests, same rounds). The choice ratio charges each adaptive request the mean of every request of the plan it chose under this condition (options\' and adaptive\'s), over the best such mean: it shows what adaptive\'s choices cost with the request-to-request noise averaged over more samples; a wrong choice shows in both.',
    'Oracle: the lowest measured mean over local, offload, every candidate split and encoding whose cost-model prediction under the true link is within 2× of the best prediction, and any plan adaptive chose.',
    `Measurements are interleaved: after ${o.warmup} requests of each planner that follow the change (not counted), each of ${o.rounds} rounds runs, in a shuffled order, one adaptive request, one round-1 request and one request of every option still in contention, so load swings of the shared machine hit them alike. Every option runs in ${MIN_ROUNDS} rounds (from the first, or from the round after an arm chose it); after that an option whose mean is over ${CONTENTION}× the best so far stops (its mean stays as measured).`,
    `Static (Neurosurgeon-style): the best plan predicted from the profile for the mean condition of the grid (${mean(o.bandwidths).toFixed(1)} Mbit/s, ${mean(o.rtts).toFixed(0)} ms), fixed for every point.`,
    'Adaptive and round-1: one planner each per model, carried across the grid points in order (bandwidth falling, RTT rising), starting from the profile and default priors (10 Mbit/s, 50 ms). Speedup over round-1: round-1\'s mean over adaptive\'s at the point; the geometric mean is over the points.',
  ];
}
