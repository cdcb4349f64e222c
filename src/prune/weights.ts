/**
 * Reading and rewriting float32 weights inside a ModelProto. Every write gives the node a
 * tensor of its own (in place when no other node reads it), so pruning one layer never
 * changes another that happened to share a constant.
 */
import { onnx, tensorDims, toNumber, type ModelProto, type NodeProto, type TensorProto } from '../graph/onnx.js';
import { PruneError } from './errors.js';

export interface FloatTensor {
  dims: number[];
  data: Float32Array;
}

const FLOAT = onnx.TensorProto.DataType.FLOAT;

export function readFloats(tensor: TensorProto, what: string): FloatTensor {
  const dims = tensorDims(tensor);
  if (tensor.dataType !== FLOAT) {
    throw new PruneError('PRUNE_UNSUPPORTED', `weight ${what} is not float32 (ONNX type ${tensor.dataType}): only float32 models can be pruned`, { details: { tensor: what } });
  }
  const count = dims.reduce((a, b) => a * b, 1);
  if (tensor.rawData && tensor.rawData.byteLength > 0) {
    const raw = tensor.rawData;
    // Copy: rawData may be an unaligned view into the model's bytes.
    const data = new Float32Array(count);
    new Uint8Array(data.buffer).set(raw.subarray(0, count * 4));
    return { dims, data };
  }
  return { dims, data: Float32Array.from((tensor.floatData ?? []).slice(0, count)) };
}

function floatTensor(name: string, value: FloatTensor): TensorProto {
  return onnx.TensorProto.create({
    name,
    dataType: FLOAT,
    dims: value.dims,
    rawData: new Uint8Array(value.data.buffer.slice(value.data.byteOffset, value.data.byteOffset + value.data.byteLength)),
  });
}

/** The weights of a mutable ModelProto: initializers and `Constant` outputs, by name. */
export class WeightStore {
  private readonly initializers = new Map<string, TensorProto>();
  private readonly constants = new Map<string, TensorProto>();
  private readonly readers = new Map<string, number>();
  /** Decoded values by name (decoding is a copy); dropped when a write replaces them. */
  private readonly cache = new Map<string, FloatTensor>();
  private counter = 0;

  constructor(private readonly proto: ModelProto) {
    const graph = proto.graph!;
    for (const t of graph.initializer ?? []) this.initializers.set(t.name ?? '', t);
    for (const node of graph.node ?? []) {
      for (const input of node.input ?? []) this.readers.set(input, (this.readers.get(input) ?? 0) + 1);
      if (node.opType !== 'Constant') continue;
      const value = node.attribute?.find((a) => a.name === 'value')?.t;
      if (value && node.output?.[0]) this.constants.set(node.output[0], value);
    }
  }

  has(name: string): boolean {
    return this.initializers.has(name) || this.constants.has(name);
  }

  /** The float32 value of a weight (shared: do not mutate), or undefined when `name` is not a plain weight. */
  get(name: string | undefined): FloatTensor | undefined {
    if (!name) return undefined;
    const cached = this.cache.get(name);
    if (cached) return cached;
    const t = this.initializers.get(name) ?? this.constants.get(name);
    if (!t) return undefined;
    const value = readFloats(t, name);
    this.cache.set(name, value);
    return value;
  }

  /** Integer values of a weight (Resize sizes, Reshape shapes), or undefined. */
  getInts(name: string | undefined): number[] | undefined {
    if (!name) return undefined;
    const t = this.initializers.get(name) ?? this.constants.get(name);
    if (!t) return undefined;
    if (t.int64Data && t.int64Data.length > 0) return t.int64Data.map((v) => toNumber(v));
    if (t.rawData && t.dataType === onnx.TensorProto.DataType.INT64) {
      const view = new DataView(t.rawData.buffer, t.rawData.byteOffset, t.rawData.byteLength);
      return Array.from({ length: t.rawData.byteLength / 8 }, (_, i) => Number(view.getBigInt64(i * 8, true)));
    }
    return undefined;
  }

  /** Gives input `index` of `node` the value `value`: in place when only this node reads it. */
  set(node: NodeProto, index: number, value: FloatTensor): void {
    const inputs = node.input!;
    const name = inputs[index];
    const existing = name ? (this.initializers.get(name) ?? this.constants.get(name)) : undefined;
    if (name) this.cache.delete(name);
    if (name && existing && (this.readers.get(name) ?? 0) <= 1) {
      const replacement = floatTensor(name, value);
      existing.dims = replacement.dims;
      existing.rawData = replacement.rawData;
      existing.floatData = [];
      existing.dataType = FLOAT;
      return;
    }
    const fresh = this.freshName(name || 'weight');
    const tensor = floatTensor(fresh, value);
    this.proto.graph!.initializer = [...(this.proto.graph!.initializer ?? []), tensor];
    this.initializers.set(fresh, tensor);
    this.readers.set(fresh, 1);
    if (name) this.readers.set(name, (this.readers.get(name) ?? 1) - 1);
    while (inputs.length <= index) inputs.push('');
    inputs[index] = fresh;
  }

  /** A name no tensor of the graph has (a copy of a store's model may already hold earlier fresh names). */
  private freshName(stem: string): string {
    let name: string;
    do name = `${stem}.pruned${this.counter++}`;
    while (this.initializers.has(name) || this.constants.has(name) || this.readers.has(name));
    return name;
  }

  /** Integer tensor for input `index` of `node` (a Resize's sizes), always a fresh initializer. */
  setInts(node: NodeProto, index: number, values: number[]): void {
    const fresh = this.freshName(node.input![index] || 'ints');
    const tensor = onnx.TensorProto.create({ name: fresh, dataType: onnx.TensorProto.DataType.INT64, dims: [values.length], int64Data: values });
    this.proto.graph!.initializer = [...(this.proto.graph!.initializer ?? []), tensor];
    this.initializers.set(fresh, tensor);
    node.input![index] = fresh;
  }
}

/** Keeps the entries of `t` whose index along `axis` is in `keep` (sorted). */
export function sliceAxis(t: FloatTensor, axis: number, keep: readonly number[]): FloatTensor {
  const dims = [...t.dims];
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const size = dims[axis]!;
  const data = new Float32Array(outer * keep.length * inner);
  let o = 0;
  for (let a = 0; a < outer; a++) {
    for (const k of keep) {
      const from = (a * size + k) * inner;
      data.set(t.data.subarray(from, from + inner), o);
      o += inner;
    }
  }
  dims[axis] = keep.length;
  return { dims, data };
}

/**
 * Removes weights nothing reads any more (a folded BatchNormalization's parameters, the
 * original of a rewritten weight). Constant nodes are not compute nodes, so cut ids stay.
 */
export function dropDeadWeights(proto: ModelProto): void {
  const graph = proto.graph!;
  const read = new Set<string>((graph.output ?? []).map((o) => o.name ?? ''));
  for (const node of graph.node ?? []) for (const input of node.input ?? []) read.add(input);
  graph.node = (graph.node ?? []).filter((n) => n.opType !== 'Constant' || (n.output ?? []).some((o) => read.has(o)));
  graph.initializer = (graph.initializer ?? []).filter((t) => read.has(t.name ?? ''));
}
