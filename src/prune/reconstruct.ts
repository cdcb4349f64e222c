/**
 * Least-squares reconstruction of the layers that lost input channels (He et al. 2017;
 * ThiNet, Luo et al. 2017): each such layer's weights are re-solved so that, on the
 * activations the pruned model really feeds it, it reproduces the original model's output:
 * min ‖Y − X′W′‖² + λ‖W′‖², with Y = XW from the original activations at the same sampled
 * positions and a bias column that absorbs the mean of what was removed. Layers are solved
 * in topological order, in passes of layers that do not feed one another; each pass runs the
 * current pruned model, so later
 * layers see the error earlier layers left.
 */
import { Matrix, solve } from 'ml-matrix';
import { choleskySolve } from './cholesky.js';
import type { OnnxModel } from '../graph/model.js';
import { intAttr, type ModelProto } from '../graph/onnx.js';
import type { Tensor } from '../tensor/index.js';
import { mulberry32 } from '../util/random.js';
import type { KeptChannels } from './apply.js';
import { PruneError } from './errors.js';
import { NormalEquations, convGeometry, convRow, denseRow } from './patches.js';
import { ActivationSession } from './session.js';
import type { WeightStore } from './weights.js';

export interface ReconstructOptions {
  model: OnnxModel;
  /** The original model (BatchNormalization folded) and its weights. */
  base: ModelProto;
  baseWeights: WeightStore;
  /** The structurally pruned copy, whose weights are rewritten in place. */
  pruned: ModelProto;
  prunedWeights: WeightStore;
  kept: KeptChannels;
  /** Node indices of the layers to solve, in topological order. */
  targets: readonly number[];
  images: () => AsyncIterable<Tensor>;
  imageCount: number;
  /** Sampled rows per layer (at least 3× the layer's input width is used). */
  rows: number;
  /** Ridge weight, relative to the mean diagonal of X′ᵀX′. */
  ridge: number;
  seed: number;
  threads: number;
  /** Also measure each layer's relative residual before and after solving (costs a D×D Gram per layer). */
  residuals?: boolean;
  log: (line: string) => void;
}

export interface LayerSolve {
  node: string;
  rows: number;
  /** Unknowns per output (input columns kept × kernel taps, plus the bias). */
  columns: number;
  /** ‖Y − X′W′‖ / ‖Y‖ on the calibration rows with the sliced weights, and with the solved ones. */
  residual?: { before: number; after: number };
}

export async function reconstruct(options: ReconstructOptions): Promise<LayerSolve[]> {
  const { model, targets } = options;
  const solved: LayerSolve[] = [];
  let done = 0;
  for (const chunk of independentPasses(model, targets)) {
    const inputs = [...new Set(chunk.map((t) => model.nodes[t]!.proto.input![0]!))];
    const original = await ActivationSession.open(options.base, inputs, options.threads);
    const pruned = await ActivationSession.open(options.pruned, inputs, options.threads);
    const equations = new Map<number, NormalEquations>();
    try {
      let image = 0;
      for await (const tensor of options.images()) {
        const [a, b] = [await original.run(tensor, inputs), await pruned.run(tensor, inputs)];
        for (const t of chunk) accumulate(options, t, a, b, image, equations);
        image++;
      }
    } finally {
      await original.release();
      await pruned.release();
    }
    for (const t of chunk) {
      const eq = equations.get(t)!;
      const residual = solveLayer(options, t, eq);
      solved.push({ node: model.nodes[t]!.name, rows: eq.rows, columns: eq.pruned, ...(residual ? { residual } : {}) });
    }
    done += chunk.length;
    options.log(`reconstructed ${done}/${targets.length} layers`);
  }
  return solved;
}

/**
 * Targets grouped into passes of layers that do not feed one another: a layer must be solved
 * on the inputs the layers before it produce once they are solved, or the two corrections
 * add up (solving a chain in one pass makes the output worse, not better).
 */
function independentPasses(model: OnnxModel, targets: readonly number[]): number[][] {
  const rank = new Map(model.computeOrder.map((index, position) => [index, position]));
  const passes: number[][] = [];
  let current: number[] = [];
  let tainted = new Set<string>();
  const pending = [...targets].sort((a, b) => rank.get(a)! - rank.get(b)!);
  for (const t of pending) {
    if (model.nodes[t]!.reads.some((name) => tainted.has(name))) {
      passes.push(current);
      current = [];
      tainted = new Set();
    }
    current.push(t);
    // Everything computed from this layer's output is tainted for the rest of the pass.
    const start = rank.get(t)!;
    tainted.add(model.nodes[t]!.outputs[0]!);
    for (const index of model.computeOrder.slice(start + 1)) {
      const node = model.nodes[index]!;
      if (node.reads.some((name) => tainted.has(name))) for (const out of node.outputs) tainted.add(out);
    }
  }
  if (current.length > 0) passes.push(current);
  return passes;
}

type Acts = Map<string, { dims: readonly number[]; data: Float32Array }>;

function accumulate(options: ReconstructOptions, t: number, a: Acts, b: Acts, image: number, equations: Map<number, NormalEquations>): void {
  const node = options.model.nodes[t]!.proto;
  const name = node.input![0]!;
  const x = a.get(name)!;
  const xp = b.get(name)!;
  const w = options.baseWeights.get(node.input![1]!)!;
  if (node.opType === 'Conv') {
    const taps = w.dims.slice(2).reduce((p, q) => p * q, 1);
    const g = convGeometry(node, w.dims, x.dims);
    let eq = equations.get(t);
    if (!eq) equations.set(t, (eq = new NormalEquations(xp.dims[1]! * taps + 1, x.dims[1]! * taps + 1, options.residuals)));
    const wanted = Math.max(options.rows, 3 * eq.pruned);
    const count = Math.min(g.outH * g.outW, Math.ceil(wanted / options.imageCount));
    const rand = mulberry32(options.seed + 7919 * t + image);
    const p = new Float64Array(eq.pruned);
    const q = new Float64Array(eq.original);
    for (let r = 0; r < count; r++) {
      const position = count === g.outH * g.outW ? r : Math.floor(rand() * g.outH * g.outW);
      const oy = Math.floor(position / g.outW);
      const ox = position % g.outW;
      convRow(xp, g, oy, ox, p);
      convRow(x, g, oy, ox, q);
      eq.add(p, q);
    }
  } else {
    let eq = equations.get(t);
    if (!eq) equations.set(t, (eq = new NormalEquations(xp.dims[1]! + 1, x.dims[1]! + 1, options.residuals)));
    const p = new Float64Array(eq.pruned);
    const q = new Float64Array(eq.original);
    for (let r = 0; r < x.dims[0]!; r++) {
      denseRow(xp, r, p);
      denseRow(x, r, q);
      eq.add(p, q);
    }
  }
}

/** The original layer as rows [W[o, :], b[o]] for the kept outputs o: what the solution must reproduce. */
function targetRows(options: ReconstructOptions, t: number): { rows: Float64Array[]; keptOut: number[] } {
  const node = options.model.nodes[t]!.proto;
  const w = options.baseWeights.get(node.input![1]!)!;
  const b = options.baseWeights.get(node.input![2] ?? undefined);
  const transposed = node.opType === 'Conv' || (node.opType === 'Gemm' && intAttr(node, 'transB', 0) === 1);
  const cout = transposed ? w.dims[0]! : w.dims[1]!;
  const width = w.data.length / cout;
  const keptOut = [...(options.kept.get(node.output![0]!) ?? Array.from({ length: cout }, (_, i) => i))];
  const rows = keptOut.map((o) => {
    const row = new Float64Array(width + 1);
    for (let i = 0; i < width; i++) row[i] = transposed ? w.data[o * width + i]! : w.data[i * cout + o]!;
    row[width] = b ? (b.data.length === 1 ? b.data[0]! : b.data[o]!) : 0;
    return row;
  });
  return { rows, keptOut };
}

function solveLayer(options: ReconstructOptions, t: number, eq: NormalEquations): { before: number; after: number } | undefined {
  const node = options.model.nodes[t]!.proto;
  // MatMul has no bias input: its problem is solved without the intercept column.
  const n = node.opType === 'MatMul' ? eq.pruned - 1 : eq.pruned;
  const m = eq.original;
  const { rows, keptOut } = targetRows(options, t);
  // Ridge toward the sliced original weights, not toward zero: a layer with few rows (the
  // 1×1 convolutions of squeeze-and-excitation see one row per image) stays near what it was.
  // Both flat and row-major: A (n × n, symmetric) and the right-hand sides (n × outputs).
  const a = new Float64Array(n * n);
  const { gram, cross } = eq;
  let trace = 0;
  for (let i = 0; i < n; i++) trace += gram[i * eq.pruned + i]!;
  const lambda = (trace / Math.max(1, n)) * (options.ridge + n / Math.max(1, eq.rows)) + 1e-12;
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      const v = gram[i * eq.pruned + j]!;
      a[i * n + j] = v;
      a[j * n + i] = v;
    }
    // The bias column is not shrunk: absorbing what the removed channels carried on average is its job.
    if (!(n === eq.pruned && i === n - 1)) a[i * n + i]! += lambda;
  }
  const prior = rows.map((row) => slicedRow(options, t, eq, row, n));
  const k = rows.length;
  const rhs = new Float64Array(n * k);
  for (let i = 0; i < n; i++) {
    const c = cross.subarray(i * m, (i + 1) * m);
    for (let o = 0; o < k; o++) {
      const row = rows[o]!;
      let s = n === eq.pruned && i === n - 1 ? 0 : lambda * prior[o]![i]!;
      for (let j = 0; j < m; j++) s += c[j]! * row[j]!;
      rhs[i * k + o] = s;
    }
  }
  // W′ (n × outputs, row-major, like the right-hand sides).
  let x: Float64Array;
  try {
    // Not positive definite (rare: the ridge is there to prevent it): a general solver.
    x = choleskySolve(a, rhs, n, k) ?? Float64Array.from(solve(Matrix.from1DArray(n, n, a), Matrix.from1DArray(n, k, rhs)).to1DArray());
  } catch (error) {
    throw new PruneError('PRUNE_SOLVE', `the least-squares reconstruction of ${options.model.nodes[t]!.name} failed: ${(error as Error).message}`, { cause: error });
  }
  if (!x.every(Number.isFinite)) {
    throw new PruneError('PRUNE_SOLVE', `the least-squares reconstruction of ${options.model.nodes[t]!.name} is not finite`);
  }
  writeWeights(options, t, x, n, keptOut.length);
  return eq.originalGram ? residuals(options, t, eq, rows, x, n) : undefined;
}

/** An original weight row in the pruned layout: kept input channels, every tap, then the bias. */
function slicedRow(options: ReconstructOptions, t: number, eq: NormalEquations, row: Float64Array, n: number): Float64Array {
  const node = options.model.nodes[t]!.proto;
  const m = eq.original;
  const keptIn = options.kept.get(node.input![0]!);
  const cin = options.baseWeights.get(node.input![1]!)!.dims[node.opType === 'Conv' || (node.opType === 'Gemm' && intAttr(node, 'transB', 0) === 1) ? 1 : 0]!;
  const taps = (m - 1) / cin;
  const out = new Float64Array(n);
  (keptIn ?? Array.from({ length: cin }, (_, c) => c)).forEach((c, i) => {
    for (let k = 0; k < taps; k++) out[i * taps + k] = row[c * taps + k]!;
  });
  if (n === eq.pruned) out[n - 1] = row[m - 1]!;
  return out;
}

/** Relative residuals from the normal equations: ‖Y‖² − 2⟨W′, X′ᵀY⟩ + ⟨W′, X′ᵀX′W′⟩, over ‖Y‖². */
function residuals(options: ReconstructOptions, t: number, eq: NormalEquations, rows: Float64Array[], solved: Float64Array, n: number): { before: number; after: number } {
  const m = eq.original;
  const o = eq.originalGram!;
  const { gram, cross } = eq;
  const g = (i: number, j: number): number => (i <= j ? gram[i * eq.pruned + j]! : gram[j * eq.pruned + i]!);
  const sliceRow = (row: Float64Array): Float64Array => slicedRow(options, t, eq, row, n);
  let [yy, before, after] = [0, 0, 0];
  rows.forEach((row, col) => {
    let y = 0;
    for (let i = 0; i < m; i++) for (let j = 0; j < m; j++) y += row[i]! * o[i * m + j]! * row[j]!;
    const cy = new Float64Array(n);
    for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) cy[i]! += cross[i * m + j]! * row[j]!;
    const quad = (w: Float64Array): number => {
      let s = 0;
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) s += w[i]! * g(i, j) * w[j]!;
      let c = 0;
      for (let i = 0; i < n; i++) c += w[i]! * cy[i]!;
      return y - 2 * c + s;
    };
    const w = Float64Array.from({ length: n }, (_, i) => solved[i * rows.length + col]!);
    yy += y;
    before += quad(sliceRow(row));
    after += quad(w);
  });
  return { before: Math.sqrt(Math.max(0, before) / (yy || 1)), after: Math.sqrt(Math.max(0, after) / (yy || 1)) };
}

/** Writes the solution `x` (n × cout, row-major: weight rows, then the bias row unless MatMul) into the pruned layer. */
function writeWeights(options: ReconstructOptions, t: number, x: Float64Array, n: number, cout: number): void {
  const node = options.pruned.graph!.node![t]!;
  const current = options.prunedWeights.get(node.input![1]!)!;
  const width = node.opType === 'MatMul' ? n : n - 1;
  const data = new Float32Array(width * cout);
  if (node.opType === 'Conv' || (node.opType === 'Gemm' && intAttr(node, 'transB', 0) === 1)) {
    for (let o = 0; o < cout; o++) for (let i = 0; i < width; i++) data[o * width + i] = x[i * cout + o]!;
  } else {
    for (let i = 0; i < width; i++) for (let o = 0; o < cout; o++) data[i * cout + o] = x[i * cout + o]!;
  }
  options.prunedWeights.set(node, 1, { dims: current.dims, data });
  if (node.opType !== 'MatMul') {
    const bias = new Float32Array(cout);
    for (let o = 0; o < cout; o++) bias[o] = x[width * cout + o]!;
    options.prunedWeights.set(node, 2, { dims: [cout], data: bias });
  }
}
