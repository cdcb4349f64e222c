/**
 * The rows of a layer's least-squares problem: for a Conv, the receptive field (im2col row)
 * of sampled output positions; for Gemm/MatMul, the input rows. The original and the pruned
 * model's activations are sampled at the same positions, and only the normal equations are
 * kept (XᵀX and the cross term), so memory does not grow with the number of rows.
 */
import type { NodeProto } from '../graph/onnx.js';
import { intsAttr, stringAttr } from '../graph/onnx.js';
import type { Activation } from './session.js';

export interface ConvGeometry {
  kernel: number[];
  strides: number[];
  dilations: number[];
  /** Leading pads (top, left). */
  pads: number[];
  outH: number;
  outW: number;
}

export function convGeometry(node: NodeProto, weightDims: readonly number[], input: readonly number[]): ConvGeometry {
  const kernel = weightDims.slice(2);
  const strides = intsAttr(node, 'strides') ?? kernel.map(() => 1);
  const dilations = intsAttr(node, 'dilations') ?? kernel.map(() => 1);
  const autoPad = stringAttr(node, 'auto_pad') ?? 'NOTSET';
  const explicit = intsAttr(node, 'pads') ?? kernel.map(() => 0).concat(kernel.map(() => 0));
  const spatial = input.slice(2);
  const pads: number[] = [];
  const out: number[] = [];
  kernel.forEach((k, i) => {
    const size = spatial[i]!;
    const extent = (k - 1) * dilations[i]! + 1;
    if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
      const o = Math.ceil(size / strides[i]!);
      const total = Math.max(0, (o - 1) * strides[i]! + extent - size);
      pads.push(autoPad === 'SAME_UPPER' ? Math.floor(total / 2) : Math.ceil(total / 2));
      out.push(o);
    } else {
      const [begin, end] = autoPad === 'VALID' ? [0, 0] : [explicit[i]!, explicit[i + kernel.length]!];
      pads.push(begin);
      out.push(Math.floor((size + begin + end - extent) / strides[i]!) + 1);
    }
  });
  return { kernel, strides, dilations, pads, outH: out[0] ?? 1, outW: out[1] ?? 1 };
}

/** Writes the im2col row of output position (oy, ox) of a [1, C, H, W] activation into `row`, then a trailing 1. */
export function convRow(x: Activation, g: ConvGeometry, oy: number, ox: number, row: Float64Array): void {
  const [, c, h, w] = x.dims as [number, number, number, number];
  const [kh, kw] = [g.kernel[0] ?? 1, g.kernel[1] ?? 1];
  let i = 0;
  for (let ch = 0; ch < c; ch++) {
    const plane = ch * h * w;
    for (let ky = 0; ky < kh; ky++) {
      const iy = oy * g.strides[0]! - g.pads[0]! + ky * g.dilations[0]!;
      for (let kx = 0; kx < kw; kx++) {
        const ix = ox * (g.strides[1] ?? 1) - (g.pads[1] ?? 0) + kx * (g.dilations[1] ?? 1);
        row[i++] = iy >= 0 && iy < h && ix >= 0 && ix < w ? x.data[plane + iy * w + ix]! : 0;
      }
    }
  }
  row[i] = 1;
}

/** Row `r` of a [M, K] activation, then a trailing 1. */
export function denseRow(x: Activation, r: number, row: Float64Array): void {
  const k = x.dims[1]!;
  for (let i = 0; i < k; i++) row[i] = x.data[r * k + i]!;
  row[k] = 1;
}

/** Normal equations of one layer: G = X'ᵀX' (upper triangle) and C = X'ᵀX, accumulated row by row. */
export class NormalEquations {
  readonly gram: Float64Array;
  readonly cross: Float64Array;
  /** XᵀX of the original rows (only when asked: it doubles the cost), for the residual. */
  readonly originalGram: Float64Array | undefined;
  rows = 0;
  constructor(
    readonly pruned: number,
    readonly original: number,
    residual = false,
  ) {
    this.gram = new Float64Array(pruned * pruned);
    this.cross = new Float64Array(pruned * original);
    this.originalGram = residual ? new Float64Array(original * original) : undefined;
  }

  add(p: Float64Array, q: Float64Array): void {
    const { pruned: n, original: m, gram, cross } = this;
    for (let i = 0; i < n; i++) {
      const pi = p[i]!;
      if (pi === 0) continue;
      const g = i * n;
      for (let j = i; j < n; j++) gram[g + j]! += pi * p[j]!;
      const c = i * m;
      for (let j = 0; j < m; j++) cross[c + j]! += pi * q[j]!;
    }
    const o = this.originalGram;
    if (o) {
      for (let i = 0; i < m; i++) {
        const qi = q[i]!;
        if (qi === 0) continue;
        for (let j = 0; j < m; j++) o[i * m + j]! += qi * q[j]!;
      }
    }
    this.rows++;
  }
}
