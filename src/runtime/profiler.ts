/**
 * The profiler behind `tandem profile`: for each cut, the head's time on the edge pool and,
 * per endpoint, the tail's remote compute time; plus the whole model on each side.
 *
 * Models with hundreds of cuts are kept tractable by measuring at most `maxCuts` of them —
 * the first and last cut, and the smallest cut (fewest bytes, where a planner is most likely
 * to split) in each of equal-count bands of head FLOPs — and interpolating the others'
 * times linearly in FLOPs between their measured neighbours (head time in head FLOPs, tail
 * time in the FLOPs after the cut).
 */
import { performance } from 'node:perf_hooks';
import { analyzeModel, splitModel, type CutInfo } from '../graph/index.js';
import type { OnnxModel } from '../graph/model.js';
import { variantModelName } from '../package/index.js';
import { ProfileSchema, type CutProfile, type Profile, type VariantProfile } from '../planner/profile.js';
import type { ProviderClient } from '../providers/types.js';
import { cloneTensorMap, type TensorMap } from '../tensor/index.js';
import { modelFromBytes } from './model-source.js';
import { loadPackage, loadPackageModel } from './package.js';
import { EdgePool } from './pool.js';
import { syntheticTensor } from './synthetic.js';
import type { ModelRef } from './protocol.js';
import { median } from '../util/stats.js';
import { measureEncodings, type EncodingMeasurement } from './encoding-profile.js';

export interface ProfileOptions {
  /** Model package folder or `.onnx` file. */
  model: string;
  /** Input shapes (default: the manifest's `shapes`, then 1 for batch-like dimensions). */
  shapes?: Record<string, number[]>;
  /** Endpoints to time tails and the whole model on. */
  endpoints?: readonly ProviderClient[];
  /** Model name at the endpoints (default: the package name). */
  modelName?: string;
  /** Edge intra-op threads (default: all cores, one worker). */
  intraOpThreads?: number;
  slowdown?: number;
  /** Unmeasured runs before timing (default 2). */
  warmup?: number;
  /** Timed runs; the median is recorded (default 5). */
  runs?: number;
  /** Cuts actually measured; the rest are interpolated (default 24). */
  maxCuts?: number;
  /**
   * Inputs on which the lossy cut encodings' output error is measured (e.g. calibration
   * images through the package's pipeline); the synthetic input when absent.
   */
  calibration?: readonly TensorMap[];
  /** `false` skips measuring the lossy cut encodings (default: measured at every measured cut). */
  encodings?: boolean;
  log?: (line: string) => void;
}

export async function profileModel(options: ProfileOptions): Promise<Profile> {
  const warmup = options.warmup ?? 2;
  const runs = options.runs ?? 5;
  const maxCuts = options.maxCuts ?? 24;
  const log = options.log ?? (() => undefined);
  const endpoints = options.endpoints ?? [];
  const pkg = await loadPackage(options.model);
  const name = options.modelName ?? pkg.name;
  // The graph its heads are cut from, checked against the package like the model the pool runs.
  const graph = await loadPackageModel(pkg);
  const analysis = await analyzeModel(graph, options.shapes ?? pkg.manifest.shapes ?? {});
  const inputNames = analysis.inputs.map((i) => i.name);
  const makeInputs = (): TensorMap => {
    const map: TensorMap = {};
    for (const spec of analysis.inputs) map[spec.name] = syntheticTensor(spec.name, spec.dtype, spec.shape);
    return map;
  };
  const inputBytes = Object.values(makeInputs()).reduce((n, t) => n + t.data.byteLength, 0);

  const pool = new EdgePool({
    workers: 1,
    ...(options.intraOpThreads !== undefined ? { intraOpThreads: options.intraOpThreads } : {}),
    ...(options.slowdown !== undefined ? { slowdown: options.slowdown } : {}),
  });
  try {
    const edgeTime = async (model: ModelRef, outputs?: string[]): Promise<number> => {
      const times: number[] = [];
      for (let i = 0; i < warmup + runs; i++) {
        const r = await pool.run(model, makeInputs(), outputs ? { outputs } : {});
        if (i >= warmup) times.push(r.edgeMs);
      }
      return median(times);
    };
    const remoteTime = async (client: ProviderClient, build: () => TensorMap, cut?: string, model = name): Promise<{ ms: number; outputBytes: number } | undefined> => {
      const times: number[] = [];
      let outputBytes = 0;
      try {
        for (let i = 0; i < warmup + runs; i++) {
          const r = await client.infer({ model, inputs: build(), ...(cut ? { cut } : {}) });
          outputBytes = r.bytesReceived;
          // Servers that do not report compute time leave the wall time as the best estimate.
          if (i >= warmup) times.push(r.timing.remoteMs > 0 ? r.timing.remoteMs : r.timing.totalMs);
        }
      } catch (error) {
        log(`  ${client.endpoint.name}${cut ? ` ${cut}` : ''}: ${(error as Error).message}; not timed`);
        return undefined;
      }
      return { ms: median(times), outputBytes };
    };

    const started = performance.now();
    const chosen = selectCuts(analysis.cuts, maxCuts);
    log(`${analysis.cuts.length} cuts; measuring ${chosen.size}, interpolating the rest`);
    const calibration = options.calibration && options.calibration.length > 0 ? options.calibration : [makeInputs()];

    /** The whole model and its chosen cuts, on the edge and at every endpoint (served as `model`). */
    const timeModel = async (ref: ModelRef, model: OnnxModel, served: string, encodings: boolean): Promise<Timed> => {
      // A variant's cut sizes are its own (thinner cuts): analysed anew, with the model's shapes.
      const own = model === graph ? analysis : await analyzeModel(model, analysis.shapes);
      const localOut = await pool.run(ref, makeInputs());
      const outputBytes = Object.values(localOut.outputs).reduce((n, t) => n + t.data.byteLength, 0);
      const localMs = await edgeTime(ref);
      log(`${served} whole on the edge: ${localMs.toFixed(2)} ms`);
      const remoteMs: Record<string, number> = {};
      for (const client of endpoints) {
        const r = await remoteTime(client, makeInputs, undefined, served);
        if (r) remoteMs[client.endpoint.name] = r.ms;
      }
      const measured = new Map<string, Measured>();
      for (const cut of own.cuts) {
        if (!chosen.has(cut.id)) continue;
        const split = await splitModel(model, cut.id, own);
        const head = modelFromBytes(split.head);
        const headOutputs = [...split.manifest.head.outputs];
        const trivialHead = headOutputs.every((t) => inputNames.includes(t));
        const headMs = trivialHead ? 0 : await edgeTime(head, headOutputs);
        // One head run gives the tail's inputs for the remote timings.
        const sample = trivialHead ? makeInputs() : { ...makeInputs(), ...(await pool.run(head, makeInputs(), { outputs: headOutputs })).outputs };
        const tailInputs: TensorMap = {};
        for (const t of split.manifest.tail.inputs) if (sample[t]) tailInputs[t] = sample[t];
        const bytes = Object.values(tailInputs).reduce((n, t) => n + t.data.byteLength, 0);
        const tailMs: Record<string, number> = {};
        for (const client of endpoints) {
          const r = await remoteTime(client, () => cloneTensorMap(tailInputs), cut.id, served);
          if (r) tailMs[client.endpoint.name] = r.ms;
        }
        let codec: EncodingMeasurement | undefined;
        if (encodings && !trivialHead && Object.values(tailInputs).some((t) => t.dtype === 'float32')) {
          const samples: TensorMap[] = [];
          for (const input of calibration) {
            // Calibration gives the image inputs; any other input keeps its synthetic value.
            const full = { ...makeInputs(), ...cloneTensorMap(input) };
            const run = await pool.run(head, cloneTensorMap(full), { outputs: headOutputs });
            const all: TensorMap = { ...full, ...run.outputs };
            samples.push(Object.fromEntries(split.manifest.tail.inputs.flatMap((t) => (all[t] ? [[t, all[t]]] : []))));
          }
          codec = await measureEncodings(pool, modelFromBytes(split.tail), samples);
        }
        measured.set(cut.id, { headMs, tailMs, bytes, ...(codec ? { codecMs: codec.codecMs, encodings: codec.encodings } : {}) });
        const encoded = codec ? Object.entries(codec.encodings).map(([e, m]) => `, ${e} ${m.bytes} bytes (error ${m.maxError.toExponential(2)})`).join('') : '';
        log(`  ${cut.id}: head ${headMs.toFixed(2)} ms, ${bytes} bytes${encoded}${Object.entries(tailMs).map(([e, ms]) => `, tail@${e} ${ms.toFixed(2)} ms`).join('')}`);
      }

      return { localMs, remoteMs, outputBytes, cuts: interpolate(own.cuts, measured, own.totalFlops, outputBytes) };
    };

    const { localMs, remoteMs, outputBytes, cuts } = await timeModel(pkg.model, graph, name, options.encodings !== false);
    // Each variant the package declares, timed alike and served as NAME@ID; its cut encodings'
    // error is measured against its own float32 tail (what the encoding adds to the pruning).
    const variants: VariantProfile[] = [];
    for (const variant of pkg.variants ?? []) {
      const timed = await timeModel(variant.model, await loadPackageModel(variant), variantModelName(name, variant.id), options.encodings !== false);
      variants.push({ id: variant.id, modelSha256: variant.model.sha256, ...(variant.accuracyDrop !== undefined ? { accuracyDrop: variant.accuracyDrop } : {}), localMs: timed.localMs, remoteMs: timed.remoteMs, cuts: timed.cuts });
    }
    log(`profiled in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    return ProfileSchema.parse({
      version: 1,
      model: name,
      modelSha256: pkg.model.sha256,
      shapes: analysis.shapes,
      edgeSlowdown: pool.slowdown,
      workers: 1,
      localMs,
      remoteMs,
      inputBytes,
      outputBytes,
      cuts,
      ...(variants.length > 0 ? { variants } : {}),
    } satisfies Profile);
  } finally {
    await pool.close();
  }
}

/**
 * Every cut when there are few. Otherwise the first and last cut plus, in each of
 * `maxCuts − 2` equal-count bands of head FLOPs, the cut with the fewest bytes: spread over
 * the model, and at the places a planner is most likely to split.
 */
export function selectCuts(cuts: readonly CutInfo[], maxCuts: number): Set<string> {
  if (cuts.length <= maxCuts) return new Set(cuts.map((c) => c.id));
  const chosen = new Set<string>();
  const first = cuts[0];
  const last = cuts[cuts.length - 1];
  if (first) chosen.add(first.id);
  if (last) chosen.add(last.id);
  const inner = [...cuts.slice(1, -1)].sort((a, b) => a.headFlops - b.headFlops);
  const bands = Math.max(0, maxCuts - chosen.size);
  for (let band = 0; band < bands; band++) {
    const from = Math.floor((band * inner.length) / bands);
    const to = Math.floor(((band + 1) * inner.length) / bands);
    let best: CutInfo | undefined;
    for (const cut of inner.slice(from, to)) if (!best || cut.bytes < best.bytes) best = cut;
    if (best) chosen.add(best.id);
  }
  return chosen;
}

interface Timed {
  localMs: number;
  remoteMs: Record<string, number>;
  outputBytes: number;
  cuts: CutProfile[];
}

interface Measured {
  headMs: number;
  tailMs: Record<string, number>;
  bytes: number;
  codecMs?: number;
  encodings?: CutProfile['encodings'];
}

function interpolate(
  cuts: readonly CutInfo[],
  measured: ReadonlyMap<string, Measured>,
  totalFlops: number,
  outputBytes: number,
): CutProfile[] {
  const points = cuts.filter((c) => measured.has(c.id)).map((c) => ({ flops: c.headFlops, ...measured.get(c.id)! }));
  points.sort((a, b) => a.flops - b.flops);
  const endpoints = new Set(points.flatMap((p) => Object.keys(p.tailMs)));
  return cuts.map((cut) => {
    const m = measured.get(cut.id);
    if (m) {
      const codec = m.encodings ? { codecMs: m.codecMs ?? 0, encodings: m.encodings } : {};
      return { id: cut.id, tensors: cut.tensors, bytes: m.bytes, headFlops: cut.headFlops, headMs: m.headMs, tailMs: m.tailMs, outputBytes, ...codec };
    }
    const tailMs: Record<string, number> = {};
    for (const e of endpoints) {
      const withE = points.filter((p) => p.tailMs[e] !== undefined).map((p) => ({ x: totalFlops - p.flops, y: p.tailMs[e]! }));
      withE.sort((a, b) => a.x - b.x);
      const v = lerp(withE, totalFlops - cut.headFlops);
      if (v !== undefined) tailMs[e] = v;
    }
    const headMs = lerp(points.map((p) => ({ x: p.flops, y: p.headMs })), cut.headFlops) ?? 0;
    return { id: cut.id, tensors: cut.tensors, bytes: cut.bytes, headFlops: cut.headFlops, headMs, tailMs, outputBytes };
  });
}

/** Linear interpolation over points sorted by x, clamped at the ends. */
function lerp(points: readonly { x: number; y: number }[], x: number): number | undefined {
  if (points.length === 0) return undefined;
  const first = points[0]!;
  const last = points[points.length - 1]!;
  if (x <= first.x) return first.y;
  if (x >= last.x) return last.y;
  for (let i = 1; i < points.length; i++) {
    const a = points[i - 1]!;
    const b = points[i]!;
    if (x <= b.x) return b.x === a.x ? b.y : Math.max(0, a.y + ((b.y - a.y) * (x - a.x)) / (b.x - a.x));
  }
  return last.y;
}
