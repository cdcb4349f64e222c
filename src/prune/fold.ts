/**
 * BatchNormalization folded into the Conv before it, so that a pruned filter takes its
 * normalisation with it and the least-squares targets are the layer's real outputs. The BN
 * node becomes an Identity with the same tensors: cut ids and tensor names do not move.
 */
import type { OnnxModel } from '../graph/model.js';
import { attribute, type ModelProto } from '../graph/onnx.js';
import type { WeightStore } from './weights.js';

/** Folds every BN that is the only reader of a Conv's output; returns how many were folded. */
export function foldBatchNorms(model: OnnxModel, proto: ModelProto, weights: WeightStore): number {
  let folded = 0;
  const outputs = new Set(model.outputNames);
  const nodes = proto.graph!.node!;
  for (const index of model.computeOrder) {
    const bn = model.nodes[index]!;
    if (bn.opType !== 'BatchNormalization' || bn.outputs.length !== 1) continue;
    const x = bn.proto.input?.[0];
    const convIndex = x === undefined ? undefined : model.producer.get(x);
    if (x === undefined || convIndex === undefined || outputs.has(x) || model.consumers.get(x)?.length !== 1) continue;
    const conv = nodes[convIndex]!;
    if (conv.opType !== 'Conv') continue;
    const w = weights.get(conv.input?.[1] ?? undefined);
    const [scale, bias, mean, variance] = [1, 2, 3, 4].map((i) => weights.get(bn.proto.input?.[i] ?? undefined));
    if (!w || !scale || !bias || !mean || !variance) continue;
    const b = conv.input?.[2] ? weights.get(conv.input[2]) : undefined;
    if (conv.input?.[2] && !b) continue;
    const epsilon = attribute(bn.proto, 'epsilon')?.f ?? 1e-5;
    const cout = w.dims[0]!;
    const per = w.data.length / cout;
    const wData = new Float32Array(w.data);
    const bData = new Float32Array(cout);
    for (let o = 0; o < cout; o++) {
      const k = scale.data[o]! / Math.sqrt(variance.data[o]! + epsilon);
      for (let i = 0; i < per; i++) wData[o * per + i]! *= k;
      bData[o] = ((b?.data[o] ?? 0) - mean.data[o]!) * k + bias.data[o]!;
    }
    weights.set(conv, 1, { dims: w.dims, data: wData });
    weights.set(conv, 2, { dims: [cout], data: bData });
    const node = nodes[index]!;
    node.opType = 'Identity';
    node.input = [x];
    node.attribute = [];
    folded++;
  }
  return folded;
}
