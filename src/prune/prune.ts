/**
 * `prunePackage`: structured channel pruning of a model package without retraining.
 * Calibration images (through the package's own pipeline) give each channel's importance;
 * the least important channel classes go until the region's FLOPs meet the budget; the
 * layers reading them are re-solved by least squares; and the result is measured (FLOPs,
 * parameters, cut bytes, run time, fidelity on holdout images) and written as a package.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { analyzeModel, findCut, loadModel, parseModel } from '../graph/index.js';
import type { OnnxModel } from '../graph/model.js';
import { encodeModel } from '../graph/onnx.js';
import { PipelineSchema, type PipelineSpec } from '../preprocess/index.js';
import { readLabels, readPackage } from '../package/index.js';
import type { Tensor } from '../tensor/index.js';
import { applyPruning } from './apply.js';
import { analyzeChannels, isDense, isDepthwise, type ChannelClass } from './channels.js';
import type { TensorShape } from '../graph/shapes.js';
import { PruneError } from './errors.js';
import { fidelityKind, measureFidelity, readHoldoutLabels, type Fidelity } from './fidelity.js';
import { foldBatchNorms } from './fold.js';
import { measureRegion, timeRegions } from './measure.js';
import { checkOut, writePrunedPackage } from './output.js';
import { reconstruct, type LayerSolve } from './reconstruct.js';
import { CompensatedImportance } from './importance.js';
import { channelGrams } from './grams.js';
import { allocate, measureSensitivity, timeCost } from './sensitivity.js';
import { Costs, alignCounts, estimateFlops, selectClasses } from './select.js';
import { cloneModel, listImages, loadImage } from './session.js';
import { WeightStore, dropDeadWeights } from './weights.js';
import { checkVariant, recordVariant, variantScratch } from './variant.js';

export interface PruneOptions {
  /** The model package (its manifest must declare an image pipeline). */
  package: string;
  /** Folder of calibration images (JPEG, PNG, WebP). */
  calib: string;
  /** Fraction of the region's FLOPs to keep, in (0, 1]. */
  keep: number;
  /** The package folder to write (created; must not hold files). Optional with `variant`. */
  out?: string;
  /**
   * Also add the pruned model to the source package as this variant (manifest `variants`),
   * with its measured accuracy drop (`--holdout`), for the planner to weigh.
   */
  variant?: string;
  /** Prune only the head up to this cut (default: the whole model). */
  upto?: string;
  /** Folder of holdout images for fidelity (never the calibration ones). */
  holdout?: string;
  /** `IMAGE LABEL` lines for the holdout images (classifiers): accuracy against labels. */
  labels?: string;
  /** Fewest calibration images accepted (default 8). */
  minCalibration?: number;
  /** Sampled rows per reconstructed layer (default 4096). */
  rows?: number;
  /** Ridge weight of the least squares, relative to the mean diagonal (default 1e-3). */
  ridge?: number;
  /** Fewest channels a tensor keeps, as a fraction (default 0.1). */
  minChannels?: number;
  /** Round pruned channel counts up to multiples of this (default 8; 1 turns rounding off). */
  align?: number;
  /** onnxruntime intra-op threads for calibration (default 1). */
  threads?: number;
  /** Timed runs for edgeMs (default 20). */
  timingRuns?: number;
  /** Also re-solve dense layers that kept all their inputs but sit downstream of pruned ones (default true). */
  refitAll?: boolean;
  /** Measure each reconstructed layer's residual before and after solving (slower; for diagnosis). */
  residuals?: boolean;
  /**
   * How the budget is shared among layers: `sensitivity` (default) measures on the calibration
   * images how much the output changes when each layer alone loses channels and gives each
   * layer its own keep ratio; `greedy` prices channels by their local importance alone.
   */
  allocation?: 'sensitivity' | 'greedy';
  /** What a removal saves, for the allocation: estimated `time` (default; memory-bound work counts its bytes) or `flops`. */
  cost?: 'time' | 'flops';
  /**
   * A floor under each allocation step's measured output loss (the squared change of the
   * outputs relative to their energy). Steps below it are taken as equally harmless and ranked
   * by the cost they save. Default: 0.1 for a DB text detector, whose boxes come from a
   * thresholded map that such changes leave alone (box F1 1.000 on holdout pages down to keep
   * 0.5, bench/RESULTS.md); 0 otherwise, where the measured loss alone ranks the steps.
   */
  lossFloor?: number;
  /** Calibration images the sensitivity measurement runs (default 64, the first ones). */
  sensitivityImages?: number;
  /** Re-solve the layers after pruned channels (default true; false only to measure what it adds). */
  reconstruct?: boolean;
  seed?: number;
  log?: (line: string) => void;
}

export interface PrunedLayer {
  node: string;
  op: string;
  /** Output channels before → after (input channels for layers that only lost inputs). */
  outChannels?: [number, number];
  inChannels?: [number, number];
}

export interface PruneReport {
  package: string;
  keep: number;
  upto?: string;
  flops: { before: number; after: number };
  params: { before: number; after: number };
  edgeMs: { before: number; after: number };
  cutBytes?: { before: number; after: number };
  fidelity?: Fidelity;
  /** The variant recorded in the source package (`PruneOptions.variant`), with the accuracy drop the planner weighs. */
  variant?: { id: string; accuracyDrop: number };
  layers: PrunedLayer[];
  calibrationImages: number;
  /** How the budget was shared among layers: method, what a removal's cost was, and the loss floor. */
  allocation: { method: 'sensitivity' | 'greedy'; cost: 'time' | 'flops'; lossFloor: number };
  reconstructed: number;
  /** Each reconstructed layer: rows sampled, unknowns, and (with `residuals`) its residual before/after. */
  solves: LayerSolve[];
}

export async function prunePackage(options: PruneOptions): Promise<PruneReport> {
  const log = options.log ?? (() => undefined);
  if (typeof options.keep !== 'number' || !Number.isFinite(options.keep) || options.keep <= 0 || options.keep > 1) {
    throw new PruneError('PRUNE_KEEP', `--keep must be a fraction in (0, 1], got ${String(options.keep)}`, { details: { keep: options.keep } });
  }
  if (options.lossFloor !== undefined && !(Number.isFinite(options.lossFloor) && options.lossFloor >= 0)) {
    throw new PruneError('PRUNE_OPTION', `the loss floor must be a finite number ≥ 0, got ${String(options.lossFloor)}`, { details: { lossFloor: options.lossFloor } });
  }
  if (options.sensitivityImages !== undefined && !(Number.isInteger(options.sensitivityImages) && options.sensitivityImages >= 1)) {
    throw new PruneError('PRUNE_OPTION', `sensitivity images must be a whole number ≥ 1, got ${String(options.sensitivityImages)}`, { details: { sensitivityImages: options.sensitivityImages } });
  }
  if (options.out === undefined && options.variant === undefined) throw new PruneError('PRUNE_OUT', 'give --out, --variant or both');
  const pkg = await readPackage(options.package);
  if (options.variant !== undefined) checkVariant(pkg, options.variant, options.holdout);
  // Without --out, the package is written to a scratch folder for the variant's file, then removed.
  const out = options.out ?? variantScratch();
  await checkOut(out);
  const model = await loadModel(pkg.modelPath);
  const [input, pipeline] = pipelineOf(pkg.manifest.inputs, model);
  const calib = await listImages(options.calib, 'calibration');
  const minimum = options.minCalibration ?? 8;
  if (calib.length < minimum) {
    throw new PruneError('PRUNE_CALIB_TOO_FEW', `${options.calib} holds ${calib.length} images; pruning needs at least ${minimum}`, { details: { dir: options.calib, images: calib.length } });
  }
  const holdout = options.holdout === undefined ? undefined : await listImages(options.holdout, 'holdout');
  if (holdout && holdout.length === 0) throw new PruneError('PRUNE_CALIB_TOO_FEW', `the holdout folder ${options.holdout} holds no images`, { details: { dir: options.holdout } });
  const labels = options.labels === undefined ? undefined : await readHoldoutLabels(options.labels, await readLabels(pkg));
  const first = await loadImage(calib[0]!, pipeline);
  const shapes = { [input]: [...first.dims] };
  const analysis = await analyzeModel(model, shapes);
  const region = new Set(options.upto === undefined ? model.computeOrder : findCut(model, options.upto).headNodes);
  const threads = options.threads ?? 1;
  const images = calibrationStream(calib, pipeline);

  // The original with BatchNormalization folded: the reference every step measures against.
  const baseProto = cloneModel(model.proto);
  const baseWeights = new WeightStore(baseProto);
  const folded = foldBatchNorms(model, baseProto, baseWeights);
  const base = await parseModel(encodeModel(baseProto), pkg.modelPath);
  const { classes, channels } = analyzeChannels(base, analysis.tensorShapes, baseWeights, region);
  if (classes.length === 0) {
    throw new PruneError('PRUNE_NOTHING_PRUNABLE', `${options.upto ? `the head up to ${options.upto}` : 'the model'} has no layer whose output channels can be pruned`, { details: { upto: options.upto } });
  }
  log(`${classes.length} prunable channel classes; ${folded} BatchNormalization layers folded`);

  const grams = await channelGrams(baseProto, classes.flatMap((c) => c.consumers.map((k) => k.tensor)), images, threads, options.seed ?? 1);
  log(`channel statistics of ${grams.size} layer inputs over ${calib.length} images`);
  // Measured on the folded original: what pruning removes, not what folding does.
  const baseAnalysis = await analyzeModel(base, shapes);
  const before = measureRegion(base, baseAnalysis, region, options.upto);
  const selection = { regionFlops: before.flops, region, minChannels: options.minChannels ?? 0.1, align: options.align ?? 8 };
  // Rounding counts up to the alignment keeps more than asked: aim lower and select again.
  let aim = options.keep;
  let removed = new Set<number>();
  const allocation = options.allocation ?? 'sensitivity';
  const classification = pkg.manifest.postprocess?.kind === 'classification';
  const outputDims = analysis.tensorShapes.get(model.outputs[0]!.name)?.dims ?? [];
  const lossFloor = options.lossFloor ?? (fidelityKind(outputDims, first.dims, classification) === 'boxes' ? BOXES_LOSS_FLOOR : 0);
  const sensitivity = allocation === 'greedy' || options.keep >= 1
    ? undefined
    : await measureSensitivity({
      classes, model: base, proto: baseProto, weights: baseWeights, grams, shapes: analysis.tensorShapes, images, limit: options.sensitivityImages ?? sensitivityImages(first.dims), levels: sensitivityLevels(first.dims), minChannels: selection.minChannels,
      probabilities: classification, threads, log,
    }, JSON.stringify([model.sha256, options.upto, calib, first.dims, options.seed ?? 1, options.minChannels ?? 0.1]));
  const price = (options.cost ?? 'time') === 'time' ? timeCost(base, analysis.tensorShapes, region) : (_cls: ChannelClass, flops: number): number => flops;
  if (sensitivity) log(`sensitivity of ${sensitivity.groups.length} channel groups measured in ${sensitivity.runs} calibration runs`);
  for (let attempt = 0; attempt < 3; attempt++) {
    const importance = new CompensatedImportance(classes, base, baseWeights, grams);
    if (sensitivity) {
      const costs = new Costs(base, analysis.tensorShapes, baseWeights, region);
      removed = allocate(sensitivity, classes, costs, before.flops, aim * before.flops, price, lossFloor);
      if (selection.align > 1) alignRemoved(classes, removed, analysis.tensorShapes, selection.align, (i) => importance.score(i));
    } else {
      removed = selectClasses(classes, importance, base, analysis.tensorShapes, baseWeights, { ...selection, keep: aim });
    }
    const reached = estimateFlops(classes, removed, base, analysis.tensorShapes, baseWeights, selection) / before.flops;
    if (selection.align <= 1 || reached <= options.keep * 1.01 || reached >= 1) break;
    aim *= options.keep / reached;
  }
  const gone = new Map<string, Set<number>>();
  for (const i of removed) for (const m of classes[i]!.members) (gone.get(m.tensor) ?? gone.set(m.tensor, new Set()).get(m.tensor)!).add(m.channel);
  const kept = new Map<string, number[]>();
  for (const [tensor, set] of gone) kept.set(tensor, Array.from({ length: channels.get(tensor)! }, (_, c) => c).filter((c) => !set.has(c)));
  log(`removing ${removed.size} channel classes from ${gone.size} tensors`);

  const prunedProto = cloneModel(baseProto);
  const prunedWeights = new WeightStore(prunedProto);
  applyPruning(base, prunedProto, prunedWeights, kept, channels, analysis.tensorShapes);
  const targets = reconstructionTargets(base, baseWeights, channels, kept, region, options.refitAll ?? true);
  const solved = await reconstruct({
    model: base,
    base: baseProto,
    baseWeights,
    pruned: prunedProto,
    prunedWeights,
    kept,
    targets: options.reconstruct === false ? [] : targets,
    images,
    imageCount: calib.length,
    rows: options.rows ?? 4096,
    ridge: options.ridge ?? 1e-3,
    seed: options.seed ?? 1,
    threads,
    residuals: options.residuals ?? false,
    log,
  });

  dropDeadWeights(prunedProto);
  const pruned = await parseModel(encodeModel(prunedProto), out);
  const prunedAnalysis = await analyzeModel(pruned, shapes);
  const prunedRegion = new Set(options.upto === undefined ? pruned.computeOrder : findCut(pruned, options.upto).headNodes);
  const after = measureRegion(pruned, prunedAnalysis, prunedRegion, options.upto);
  const runs = options.timingRuns ?? 20;
  const [edgeBefore, edgeAfter] = await timeRegions([base, pruned], options.upto, first, runs, shapes);
  const fidelity = holdout
    ? await measureFidelity({ original: model.proto, pruned: prunedProto, files: holdout, pipeline, ...(labels ? { labels } : {}), classification, threads })
    : undefined;
  const report: PruneReport = {
    package: pkg.name,
    keep: options.keep,
    ...(options.upto !== undefined ? { upto: options.upto } : {}),
    flops: { before: before.flops, after: after.flops },
    params: { before: before.params, after: after.params },
    edgeMs: { before: round(edgeBefore!), after: round(edgeAfter!) },
    ...(before.cutBytes !== undefined && after.cutBytes !== undefined ? { cutBytes: { before: before.cutBytes, after: after.cutBytes } } : {}),
    ...(fidelity ? { fidelity } : {}),
    layers: layerChanges(base, baseWeights, channels, kept),
    calibrationImages: calib.length,
    allocation: { method: allocation, cost: options.cost ?? 'time', lossFloor },
    reconstructed: solved.length,
    solves: solved,
  };
  const { layers: _layers, solves: _solves, ...record } = report;
  await writePrunedPackage({ source: pkg, proto: prunedProto, out, input, record: { ...record, source: { name: pkg.name, sha256: model.sha256 } } });
  if (options.variant !== undefined) {
    try {
      const accuracyDrop = await recordVariant({ package: options.package, model: join(out, 'model.onnx'), id: options.variant, keep: options.keep, ...(options.upto !== undefined ? { upto: options.upto } : {}), ...(fidelity ? { fidelity } : {}) });
      report.variant = { id: options.variant, accuracyDrop };
    } finally {
      if (options.out === undefined) await rm(out, { recursive: true, force: true });
    }
  }
  return report;
}

/** The default loss floor for a DB text detector (see `PruneOptions.lossFloor`). */
const BOXES_LOSS_FLOOR = 0.1;

/** Decoded calibration tensors are kept while they fit this budget; past it, every pass decodes again. */
const CACHE_BYTES = 64 * 1024 * 1024;

/** The calibration images as tensors, streamed: cached when small (a classifier's lines), decoded per pass when not (640×640 pages). */
function calibrationStream(files: readonly string[], pipeline: PipelineSpec): () => AsyncIterable<Tensor> {
  const cache: Tensor[] = [];
  let bytes = 0;
  let caching = true;
  return async function* () {
    for (const [i, file] of files.entries()) {
      const cached = cache[i];
      if (cached) {
        yield cached;
        continue;
      }
      const tensor = await loadImage(file, pipeline);
      bytes += tensor.data.byteLength;
      if (caching && bytes <= CACHE_BYTES) cache[i] = tensor;
      else if (caching) {
        caching = false;
        cache.length = 0;
      }
      yield tensor;
    }
  };
}

/** Rounds pruned channel counts up to multiples of `align` (see select.ts), from a chosen set. */
function alignRemoved(classes: readonly ChannelClass[], removed: Set<number>, shapes: ReadonlyMap<string, TensorShape>, align: number, score: (i: number) => number): void {
  const remaining = new Map<string, number>();
  for (const i of removed) {
    for (const t of new Set(classes[i]!.members.map((m) => m.tensor))) remaining.set(t, (remaining.get(t) ?? shapes.get(t)!.dims[1]!) - 1);
  }
  alignCounts(classes, removed, remaining, shapes, align, score);
}

/**
 * Calibration images a sensitivity measurement runs: 64 text lines (48×192), fewer for larger
 * inputs so that each of its hundreds of runs costs about the same (6 pages at 320×320).
 */
function sensitivityImages(dims: readonly number[]): number {
  const pixels = dims.slice(2).reduce((a, b) => a * b, 1);
  return Math.max(4, Math.min(64, Math.round((64 * 48 * 192) / pixels)));
}

/** Points of each group's curve: eighths for small inputs, fifths past 4× a text line's pixels (a detector's runs dominate). */
function sensitivityLevels(dims: readonly number[]): number[] {
  const pixels = dims.slice(2).reduce((a, b) => a * b, 1);
  return pixels > 4 * 48 * 192 ? [0.2, 0.4, 0.6, 0.8] : [0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875];
}

const round = (ms: number): number => Math.round(ms * 1000) / 1000;

function pipelineOf(inputs: Record<string, { pipeline?: unknown }>, model: OnnxModel): [string, PipelineSpec] {
  const entry = Object.entries(inputs).find(([, v]) => v.pipeline !== undefined);
  if (!entry) throw new PruneError('PRUNE_NO_PIPELINE', 'the package declares no image pipeline: calibration images cannot be turned into inputs (see `tandem package create --pipeline`)');
  if (model.inputs.length !== 1) {
    throw new PruneError('PRUNE_UNSUPPORTED', `the model has ${model.inputs.length} inputs; pruning calibrates models with one image input`, { details: { inputs: model.inputNames } });
  }
  return [entry[0], PipelineSchema.parse(entry[1].pipeline)];
}

/**
 * The layers to re-solve: those that lost input channels and, with `all`, every dense layer of
 * the region downstream of a pruned tensor, so the drift pruning causes is corrected where it
 * arises rather than carried on (the tail past a cut changes only where it lost inputs).
 */
function reconstructionTargets(
  model: OnnxModel,
  weights: WeightStore,
  channels: ReadonlyMap<string, number>,
  kept: ReadonlyMap<string, readonly number[]>,
  region: ReadonlySet<number>,
  all: boolean,
): number[] {
  const affected = new Set<string>(kept.keys());
  const targets: number[] = [];
  for (const index of model.computeOrder) {
    const node = model.nodes[index]!;
    const touched = node.reads.some((t) => affected.has(t));
    if (!touched) continue;
    for (const out of node.outputs) affected.add(out);
    if (isDense(node, weights, channels) && (kept.has(node.proto.input![0]!) || (all && region.has(index) && affected.has(node.proto.input![0]!)))) targets.push(index);
  }
  return targets;
}

function layerChanges(model: OnnxModel, weights: WeightStore, channels: ReadonlyMap<string, number>, kept: ReadonlyMap<string, readonly number[]>): PrunedLayer[] {
  const layers: PrunedLayer[] = [];
  for (const index of model.computeOrder) {
    const node = model.nodes[index]!;
    if (!isDense(node, weights, channels) && !isDepthwise(node, weights, channels)) continue;
    const x = node.proto.input![0]!;
    const y = node.outputs[0]!;
    const change: PrunedLayer = { node: node.name, op: isDepthwise(node, weights, channels) ? 'Conv (depthwise)' : node.opType };
    if (kept.has(y)) change.outChannels = [channels.get(y)!, kept.get(y)!.length];
    if (kept.has(x)) change.inChannels = [channels.get(x)!, kept.get(x)!.length];
    if (change.outChannels || change.inChannels) layers.push(change);
  }
  return layers;
}
