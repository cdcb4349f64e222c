/**
 * Which channels must be pruned together. Every channel of every activation (axis 1 of an
 * NCHW or [N, features] tensor) is a point; operators that carry a channel straight through
 * (activations, pools, BatchNormalization, depthwise Conv, Resize, element-wise Add/Mul of
 * equal channel counts: residuals and squeeze-and-excitation) join their input and output
 * channels, and Concat joins each input channel with its place in the output. A class of
 * joined channels can be removed when every producing layer can drop it (the output filter of
 * a Conv, Gemm or MatMul inside the pruned region) and no reader needs the full tensor (a
 * graph output, a Reshape, an operator this pass does not know).
 */
import type { GraphNode, OnnxModel } from '../graph/model.js';
import { intAttr } from '../graph/onnx.js';
import type { TensorShape } from '../graph/shapes.js';
import type { WeightStore } from './weights.js';

/** A layer whose output channels can be dropped: a Conv (group 1), Gemm or MatMul. */
export interface Source {
  node: number;
  channel: number;
}

/** A layer that reads a pruned channel and loses the matching input column (reconstructed by least squares). */
export interface Consumer {
  node: number;
  tensor: string;
  channel: number;
}

export interface ChannelClass {
  /** Every (tensor, channel) removed together. */
  members: Array<{ tensor: string; channel: number }>;
  sources: Source[];
  consumers: Consumer[];
}

export interface ChannelAnalysis {
  classes: ChannelClass[];
  /** Channel count of every tracked activation. */
  channels: ReadonlyMap<string, number>;
}

const UNARY = new Set([
  'Relu', 'Sigmoid', 'HardSigmoid', 'HardSwish', 'LeakyRelu', 'Tanh', 'Identity', 'Clip', 'Dropout', 'Elu', 'Selu', 'Softplus', 'PRelu',
  'MaxPool', 'AveragePool', 'GlobalAveragePool', 'GlobalMaxPool', 'LpPool', 'Resize', 'Upsample', 'BatchNormalization', 'InstanceNormalization',
]);
const BINARY = new Set(['Add', 'Sub', 'Mul', 'Div', 'Max', 'Min', 'Sum']);

/** Depthwise: one filter per input channel (multiplier 1), so the channel passes straight through. */
export function isDepthwise(node: GraphNode, weights: WeightStore, channels: ReadonlyMap<string, number>): boolean {
  if (node.opType !== 'Conv') return false;
  const group = intAttr(node.proto, 'group', 1);
  const cin = channels.get(node.reads[0] ?? '');
  const w = weights.get(node.proto.input?.[1] ?? undefined);
  return group > 1 && cin === group && w !== undefined && w.dims[0] === group && w.dims[1] === 1;
}

/** The Conv/Gemm/MatMul whose weights are constants and whose input channels are a plain reduction axis. */
export function isDense(node: GraphNode, weights: WeightStore, channels: ReadonlyMap<string, number>): boolean {
  const input = node.proto.input ?? [];
  if (node.opType === 'Conv') return intAttr(node.proto, 'group', 1) === 1 && weights.has(input[1] ?? '') && (!input[2] || weights.has(input[2]));
  if (node.opType === 'Gemm') {
    return intAttr(node.proto, 'transA', 0) === 0 && weights.has(input[1] ?? '') && (!input[2] || weights.has(input[2])) && channels.has(input[0] ?? '');
  }
  if (node.opType === 'MatMul') return weights.get(input[1] ?? undefined)?.dims.length === 2 && channels.has(input[0] ?? '');
  return false;
}

export function analyzeChannels(
  model: OnnxModel,
  shapes: ReadonlyMap<string, TensorShape>,
  weights: WeightStore,
  region: ReadonlySet<number>,
): ChannelAnalysis {
  const channels = new Map<string, number>();
  const base = new Map<string, number>();
  let total = 0;
  for (const [name, shape] of shapes) {
    if (model.weights.has(name) || shape.dtype !== 'float32') continue;
    if (shape.dims.length !== 2 && shape.dims.length !== 4) continue;
    channels.set(name, shape.dims[1]!);
    base.set(name, total);
    total += shape.dims[1]!;
  }
  const parent = new Int32Array(total).map((_, i) => i);
  const find = (i: number): number => {
    while (parent[i] !== i) {
      parent[i] = parent[parent[i]!]!;
      i = parent[i]!;
    }
    return i;
  };
  const blocked = new Uint8Array(total);
  const join = (a: string, ca: number, b: string, cb: number): void => {
    const ra = find(base.get(a)! + ca);
    const rb = find(base.get(b)! + cb);
    if (ra !== rb) parent[ra] = rb;
  };
  const block = (t: string): void => {
    const b = base.get(t);
    if (b === undefined) return;
    for (let c = 0; c < channels.get(t)!; c++) blocked[b + c] = 1;
  };
  const joinAll = (a: string, b: string): boolean => {
    const n = channels.get(a);
    if (n === undefined || n !== channels.get(b)) return false;
    for (let c = 0; c < n; c++) join(a, c, b, c);
    return true;
  };
  const sources: Array<{ tensor: string; node: number }> = [];
  const consumers: Array<{ tensor: string; node: number }> = [];

  for (const index of model.computeOrder) {
    const node = model.nodes[index]!;
    const activations = node.reads.filter((t) => !model.weights.has(t));
    const tracked = activations.filter((t) => channels.has(t));
    const out = node.outputs[0];
    const blockNode = (): void => {
      for (const t of [...activations, ...node.outputs]) block(t);
    };
    if (node.domain !== '' && node.domain !== 'ai.onnx') {
      blockNode();
      continue;
    }
    for (const extra of node.outputs.slice(1)) block(extra);
    if (!out || !channels.has(out)) {
      for (const t of tracked) block(t);
      continue;
    }
    const op = node.opType;
    if (op === 'Conv' && isDepthwise(node, weights, channels)) {
      if (!joinAll(node.reads[0]!, out)) blockNode();
    } else if ((op === 'Conv' || op === 'Gemm' || op === 'MatMul') && isDense(node, weights, channels)) {
      const x = node.proto.input![0]!;
      if (!channels.has(x)) block(x);
      else consumers.push({ tensor: x, node: index });
      sources.push({ tensor: out, node: index });
    } else if (UNARY.has(op) && activations.length === 1) {
      if (!joinAll(activations[0]!, out)) blockNode();
    } else if (BINARY.has(op)) {
      let ok = true;
      for (const name of node.proto.input ?? []) {
        if (!name) continue;
        if (model.weights.has(name)) {
          // A constant operand broadcasts or has one value per channel (sliced when pruning).
          const w = weights.get(name);
          const axis = w ? 1 - (shapes.get(out)!.dims.length - w.dims.length) : -1;
          if (!w || (axis >= 0 && w.dims[axis] !== 1 && w.dims[axis] !== channels.get(out))) ok = false;
          continue;
        }
        if (channels.get(name) === channels.get(out) && shapes.get(name)?.dims.length === shapes.get(out)?.dims.length) joinAll(name, out);
        else if (channels.get(name) !== 1) ok = false;
      }
      if (!ok) blockNode();
    } else if (op === 'Concat' && ((intAttr(node.proto, 'axis', 0) + 4) % shapes.get(out)!.dims.length) === 1 && activations.length === (node.proto.input ?? []).length) {
      let offset = 0;
      for (const name of node.proto.input ?? []) {
        const n = channels.get(name);
        if (n === undefined) {
          blockNode();
          break;
        }
        for (let c = 0; c < n; c++) join(name, c, out, offset + c);
        offset += n;
      }
    } else {
      blockNode();
    }
  }
  for (const input of model.inputs) block(input.name);
  for (const output of model.outputs) block(output.name);

  const rootBlocked = new Uint8Array(total);
  for (let i = 0; i < total; i++) if (blocked[i]) rootBlocked[find(i)] = 1;
  const byRoot = new Map<number, ChannelClass>();
  const classOf = (t: string, c: number): ChannelClass | undefined => {
    const root = find(base.get(t)! + c);
    if (rootBlocked[root]) return undefined;
    let cls = byRoot.get(root);
    if (!cls) byRoot.set(root, (cls = { members: [], sources: [], consumers: [] }));
    return cls;
  };
  for (const [t, n] of channels) for (let c = 0; c < n; c++) classOf(t, c)?.members.push({ tensor: t, channel: c });
  for (const s of sources) for (let c = 0; c < channels.get(s.tensor)!; c++) classOf(s.tensor, c)?.sources.push({ node: s.node, channel: c });
  for (const k of consumers) for (let c = 0; c < channels.get(k.tensor)!; c++) classOf(k.tensor, c)?.consumers.push({ node: k.node, tensor: k.tensor, channel: c });

  // Removable: at least one producing layer, all of them inside the region; every member is
  // produced by a source or carried from another member (tensors with no producer are blocked).
  const classes = [...byRoot.values()].filter((cls) => {
    if (cls.sources.length === 0 || !cls.sources.every((s) => region.has(s.node))) return false;
    const sourceTensors = new Set(cls.sources.map((s) => model.nodes[s.node]!.outputs[0]));
    return cls.members.every((m) => sourceTensors.has(m.tensor) || model.producer.has(m.tensor));
  });
  return { classes, channels };
}
