/**
 * Structural pruning of a ModelProto: given the channels removed from each activation, every
 * layer that touches them loses the matching weights: output filters of producers, input
 * columns of consumers, per-channel parameters of depthwise convolutions, BatchNormalization
 * and per-channel constants of element-wise operators. The node list is not changed, so node
 * indices, tensor names and cut ids stay those of the original model.
 */
import type { OnnxModel } from '../graph/model.js';
import { intAttr, toNumber, type ModelProto } from '../graph/onnx.js';
import type { TensorShape } from '../graph/shapes.js';
import { isDense, isDepthwise } from './channels.js';
import { sliceAxis, type WeightStore } from './weights.js';

/** Operators with per-channel constant operands that follow their output's channels. */
const SLICED = new Set(['BatchNormalization', 'InstanceNormalization', 'PRelu', 'Add', 'Sub', 'Mul', 'Div', 'Max', 'Min', 'Sum']);

/** Kept channel indices (original numbering) of every tensor that lost some. */
export type KeptChannels = ReadonlyMap<string, readonly number[]>;

export function applyPruning(
  model: OnnxModel,
  proto: ModelProto,
  weights: WeightStore,
  kept: KeptChannels,
  channels: ReadonlyMap<string, number>,
  shapes: ReadonlyMap<string, TensorShape>,
): void {
  const nodes = proto.graph!.node!;
  for (const index of model.computeOrder) {
    const graphNode = model.nodes[index]!;
    const node = nodes[index]!;
    const input = node.input ?? [];
    const out = node.output?.[0] ?? '';
    const keepOut = kept.get(out);
    const keepIn = kept.get(input[0] ?? '');
    if (!keepOut && !keepIn) continue;
    const op = node.opType;
    if (op === 'Conv' && isDepthwise(graphNode, weights, channels)) {
      const w = weights.get(input[1])!;
      weights.set(node, 1, sliceAxis(w, 0, keepOut!));
      const b = weights.get(input[2] ?? undefined);
      if (b) weights.set(node, 2, sliceAxis(b, 0, keepOut!));
      const group = node.attribute!.find((a) => a.name === 'group')!;
      group.i = keepOut!.length;
    } else if ((op === 'Conv' || op === 'Gemm' || op === 'MatMul') && isDense(graphNode, weights, channels)) {
      let w = weights.get(input[1])!;
      // Output axis and input axis of the weight: Conv [O, I, k…], Gemm [K, N] or transposed, MatMul [K, N].
      const transB = op === 'Gemm' && intAttr(node, 'transB', 0) === 1;
      const [outAxis, inAxis] = op === 'Conv' || transB ? [0, 1] : [1, 0];
      if (keepOut) w = sliceAxis(w, outAxis, keepOut);
      if (keepIn) w = sliceAxis(w, inAxis, keepIn);
      weights.set(node, 1, w);
      const b = weights.get(input[2] ?? undefined);
      if (b && keepOut && b.dims[b.dims.length - 1]! > 1) weights.set(node, 2, sliceAxis(b, b.dims.length - 1, keepOut));
    } else if (keepOut) {
      // Carried channels: slice per-channel parameters (BN and friends, element-wise constants).
      const rank = shapes.get(out)?.dims.length ?? 4;
      input.forEach((name, i) => {
        if (i === 0 && op !== 'Add' && op !== 'Mul' && op !== 'Sub' && op !== 'Div' && op !== 'Max' && op !== 'Min' && op !== 'Sum') return;
        if (!name || !model.weights.has(name)) return;
        if (op === 'Resize' || op === 'Upsample') {
          if (i === 3) {
            const sizes = weights.getInts(name);
            if (sizes && sizes.length > 1) weights.setInts(node, i, sizes.map((v, axis) => (axis === 1 ? keepOut.length : v)));
          }
          return;
        }
        if (!SLICED.has(op ?? '')) return;
        const w = weights.get(name);
        if (!w) return;
        // BN-like parameters are 1-D per channel; element-wise constants broadcast from the right.
        const axis = op === 'BatchNormalization' || op === 'InstanceNormalization' ? 0 : 1 - (rank - w.dims.length);
        if (axis >= 0 && axis < w.dims.length && w.dims[axis]! > 1) weights.set(node, i, sliceAxis(w, axis, keepOut));
      });
    }
  }
  // Declared shapes of pruned tensors would contradict the new weights.
  for (const info of proto.graph!.valueInfo ?? []) {
    const keep = kept.get(info.name ?? '');
    const dim = info.type?.tensorType?.shape?.dim?.[1];
    if (keep && dim && dim.dimValue != null && toNumber(dim.dimValue) > 0) dim.dimValue = keep.length;
  }
}
