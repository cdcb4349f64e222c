/**
 * What a shape rule sees of one node, and the helpers the rules share: folding of small integer
 * tensors (the values shape arithmetic produces), broadcasting and axis normalisation.
 */
import type { GraphNode } from './model.js';
import { onnx, tensorDims, toNumber, type NodeProto, type TensorProto } from './onnx.js';

export type Dims = number[];
/** Values of small integer tensors, folded at analysis time. */
export type Values = Map<string, number[]>;

/** Larger tensors are not folded: shape arithmetic never needs them, and they would cost memory. */
export const MAX_FOLDED_ELEMENTS = 64;

export interface NodeInference {
  node: GraphNode;
  p: NodeProto;
  op: string;
  opset: number;
  inputNames: readonly string[];
  /** The first output. */
  out: string | undefined;
  inDims(i: number): Dims | undefined;
  inVals(i: number): number[] | undefined;
  /** Whether optional input `i` is given (an empty name means absent). */
  hasInput(i: number): boolean;
  /** Records an output's dims and, when small enough, its folded values. */
  set(name: string | undefined, d: Dims, v?: number[]): void;
}

/** A shape rule for nodes whose first input's dims `x` are known. */
export type ShapeRule = (n: NodeInference, x: Dims) => void;

export function nodeInference(node: GraphNode, dims: Map<string, Dims>, values: Values, opset: number): NodeInference {
  const p = node.proto;
  const inputNames = p.input ?? [];
  return {
    node,
    p,
    op: node.opType,
    opset,
    inputNames,
    out: node.outputs[0],
    inDims: (i) => {
      const name = inputNames[i];
      return name ? dims.get(name) : undefined;
    },
    inVals: (i) => {
      const name = inputNames[i];
      return name ? values.get(name) : undefined;
    },
    hasInput: (i) => Boolean(inputNames[i]),
    set: (name, d, v) => {
      if (!name) return;
      dims.set(name, d);
      if (v && v.length <= MAX_FOLDED_ELEMENTS) values.set(name, v);
    },
  };
}

/** A rule table keyed by op type (a Map, so an op named like an Object method finds nothing). */
export function ruleTable<R>(entries: ReadonlyArray<readonly [readonly string[], R]>): Map<string, R> {
  const table = new Map<string, R>();
  for (const [ops, rule] of entries) for (const op of ops) table.set(op, rule);
  return table;
}

export function foldTensor(t: TensorProto): number[] | undefined {
  const count = tensorDims(t).reduce((a, b) => a * b, 1);
  if (count > MAX_FOLDED_ELEMENTS) return undefined;
  const type = t.dataType;
  const DataType = onnx.TensorProto.DataType;
  if (t.int64Data && t.int64Data.length > 0) return t.int64Data.map((v) => toNumber(v));
  if (t.int32Data && t.int32Data.length > 0) return [...t.int32Data];
  if (t.floatData && t.floatData.length > 0) return [...t.floatData];
  const raw = t.rawData;
  if (!raw || raw.byteLength === 0) return count === 0 ? [] : undefined;
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    switch (type) {
      case DataType.INT64: out.push(Number(view.getBigInt64(i * 8, true))); break;
      case DataType.INT32: out.push(view.getInt32(i * 4, true)); break;
      case DataType.FLOAT: out.push(view.getFloat32(i * 4, true)); break;
      case DataType.DOUBLE: out.push(view.getFloat64(i * 8, true)); break;
      case DataType.UINT8: out.push(view.getUint8(i)); break;
      case DataType.INT8: out.push(view.getInt8(i)); break;
      default: return undefined;
    }
  }
  return out;
}

export function broadcast(shapes: Dims[]): Dims {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: Dims = [];
  for (let i = 0; i < rank; i++) {
    let d = 1;
    for (const s of shapes) {
      const v = s[s.length - rank + i] ?? 1;
      if (v !== 1) {
        if (d !== 1 && d !== v) throw new Error('incompatible broadcast');
        d = v;
      }
    }
    out.push(d);
  }
  return out;
}

export const normAxis = (axis: number, rank: number): number => (axis < 0 ? axis + rank : axis);
