/**
 * Channel importance with compensation, as least squares will apply it. For a layer reading
 * channels x (Gram H = Σ x xᵀ over calibration positions) with weights W, removing input
 * channel c and re-solving the rest costs ‖W_c‖² / [H⁻¹]_cc of output energy (the optimal
 * brain surgeon identity; exact for 1×1 and dense layers, per-tap for k×k). Correlated
 * channels are therefore cheap: what one carries, the others can reproduce. After each
 * removal the remaining weights and H⁻¹ are updated, so the next price is the true marginal
 * one. A class's score is the energy it costs each reading layer, as a fraction of that
 * layer's output energy, summed.
 */
import { inverse, Matrix } from 'ml-matrix';
import { choleskySolve } from './cholesky.js';
import type { OnnxModel } from '../graph/model.js';
import { intAttr } from '../graph/onnx.js';
import type { ChannelClass } from './channels.js';
import type { FloatTensor, WeightStore } from './weights.js';

/**
 * Σ x xᵀ over sampled positions of every consumer's input, with a trailing constant 1 (so
 * (C+1)×(C+1), row-major): the bias the least squares will refit is part of the problem, and
 * a channel that is constant on the data costs nothing to remove.
 */
export type ChannelGrams = ReadonlyMap<string, { gram: Float64Array; channels: number }>;

interface LayerState {
  channels: number;
  /** Per input channel, its weights to every output and tap (compensated as channels go). */
  w: Float64Array[];
  hinv: Float64Array;
  removed: Uint8Array;
  energy: number;
}

export class CompensatedImportance {
  private readonly layers = new Map<number, LayerState>();

  constructor(
    private readonly classes: readonly ChannelClass[],
    private readonly model: OnnxModel,
    private readonly weights: WeightStore,
    private readonly grams: ChannelGrams,
  ) {}

  private layer(node: number, tensor: string): LayerState {
    let state = this.layers.get(node);
    if (state) return state;
    const { gram, channels } = this.grams.get(tensor)!;
    // Channels plus the constant column; the constant is never removed and starts with no weight.
    const c = channels + 1;
    const proto = this.model.nodes[node]!.proto;
    const w = this.weights.get(proto.input![1]!)!;
    const rows: Float64Array[] = [];
    if (proto.opType === 'Conv') {
      const cout = w.dims[0]!;
      const taps = w.data.length / (cout * channels);
      for (let ch = 0; ch < c; ch++) {
        const row = new Float64Array(cout * taps);
        if (ch < channels) for (let o = 0; o < cout; o++) for (let k = 0; k < taps; k++) row[o * taps + k] = w.data[(o * channels + ch) * taps + k]!;
        rows.push(row);
      }
    } else {
      const transposed = proto.opType === 'Gemm' && intAttr(proto, 'transB', 0) === 1;
      const n = transposed ? w.dims[0]! : w.dims[1]!;
      for (let ch = 0; ch < c; ch++) rows.push(Float64Array.from({ length: n }, (_, o) => (ch < channels ? w.data[transposed ? o * channels + ch : ch * n + o]! : 0)));
    }
    // A small ridge keeps H invertible when a channel is constant or duplicated.
    let trace = 0;
    for (let i = 0; i < channels; i++) trace += gram[i * c + i]!;
    const h = new Float64Array(c * c);
    for (let i = 0; i < c; i++) for (let j = 0; j < c; j++) h[i * c + j] = gram[i * c + j]! + (i === j ? 1e-6 * (trace / channels) + 1e-12 : 0);
    // H is positive definite with the ridge, so Cholesky inverts it; the SVD only where it is not.
    const identity = new Float64Array(c * c);
    for (let i = 0; i < c; i++) identity[i * c + i] = 1;
    const hinv = choleskySolve(h, identity, c, c) ?? Float64Array.from(inverse(Matrix.from1DArray(c, c, h), true).to1DArray());
    let energy = 0;
    for (let i = 0; i < c; i++) {
      for (let j = 0; j < c; j++) {
        let dot = 0;
        const [a, b] = [rows[i]!, rows[j]!];
        for (let k = 0; k < a.length; k++) dot += a[k]! * b[k]!;
        energy += gram[i * c + j]! * dot;
      }
    }
    state = { channels: c, w: rows, hinv, removed: new Uint8Array(c), energy: energy > 0 ? energy : 1 };
    this.layers.set(node, state);
    return state;
  }

  /** Output energy lost, as a fraction per reading layer, if class `i` went now. */
  score(i: number): number {
    let sum = 0;
    for (const k of this.classes[i]!.consumers) {
      const s = this.layer(k.node, k.tensor);
      const c = k.channel;
      const d = s.hinv[c * s.channels + c]!;
      let norm = 0;
      for (const v of s.w[c]!) norm += v * v;
      sum += d > 0 ? norm / d / s.energy : 0;
    }
    return sum;
  }

  /** Records the removal of class `i`: the surviving weights absorb what they can of it. */
  remove(i: number): void {
    for (const k of this.classes[i]!.consumers) {
      const s = this.layer(k.node, k.tensor);
      const n = s.channels;
      const c = k.channel;
      const d = s.hinv[c * n + c]!;
      if (!(d > 0)) continue;
      const wc = s.w[c]!;
      for (let j = 0; j < n; j++) {
        if (j === c || s.removed[j]) continue;
        const ratio = s.hinv[j * n + c]! / d;
        if (ratio === 0) continue;
        const wj = s.w[j]!;
        for (let t = 0; t < wj.length; t++) wj[t]! -= ratio * wc[t]!;
      }
      // H⁻¹ of the remaining channels: the Schur complement update.
      const col = Float64Array.from({ length: n }, (_, j) => s.hinv[j * n + c]!);
      for (let a = 0; a < n; a++) {
        if (col[a] === 0) continue;
        for (let b = 0; b < n; b++) s.hinv[a * n + b]! -= (col[a]! * col[b]!) / d;
      }
      for (let j = 0; j < n; j++) {
        s.hinv[j * n + c] = 0;
        s.hinv[c * n + j] = 0;
      }
      s.removed[c] = 1;
      wc.fill(0);
    }
  }

  /** Layers whose weights the removals so far have changed. */
  touched(): number[] {
    return [...this.layers.entries()].filter(([, s]) => s.removed.some((r) => r === 1)).map(([node]) => node);
  }

  /**
   * The compensated weights of layer `node` in its original layout (removed inputs zeroed) and
   * the bias shift the constant column absorbed: the layer as least squares would re-fit it,
   * without changing any shape (sensitivity.ts runs the model so).
   */
  compensated(node: number): { weight: FloatTensor; bias: Float32Array } | undefined {
    const s = this.layers.get(node);
    if (!s) return undefined;
    const proto = this.model.nodes[node]!.proto;
    const w = this.weights.get(proto.input![1]!)!;
    const channels = s.channels - 1;
    const data = new Float32Array(w.data.length);
    const constant = s.w[channels]!;
    let bias: Float32Array;
    if (proto.opType === 'Conv') {
      const cout = w.dims[0]!;
      const taps = w.data.length / (cout * channels);
      for (let ch = 0; ch < channels; ch++) for (let o = 0; o < cout; o++) for (let k = 0; k < taps; k++) data[(o * channels + ch) * taps + k] = s.w[ch]![o * taps + k]!;
      // Per-tap compensation: a constant input reaches every tap, so the bias takes their sum.
      bias = Float32Array.from({ length: cout }, (_, o) => constant.subarray(o * taps, (o + 1) * taps).reduce((a, b) => a + b, 0));
    } else {
      const transposed = proto.opType === 'Gemm' && intAttr(proto, 'transB', 0) === 1;
      const n = transposed ? w.dims[0]! : w.dims[1]!;
      for (let ch = 0; ch < channels; ch++) for (let o = 0; o < n; o++) data[transposed ? o * channels + ch : ch * n + o] = s.w[ch]![o]!;
      bias = Float32Array.from(constant);
    }
    return { weight: { dims: [...w.dims], data }, bias };
  }
}
