/**
 * Exact shapes of every activation for given input shapes. Rather than re-implementing
 * shape inference for every operator (and every custom domain), the model is run once by
 * onnxruntime with all intermediate tensors exposed as outputs: the sizes reported are the
 * sizes that will really cross the network.
 */
import { availableParallelism } from 'node:os';
import ort from 'onnxruntime-node';
import { ValidationError } from '../errors/index.js';
import { allocate, elementCount, type DType } from '../tensor/index.js';
import type { OnnxModel, TensorDecl } from './model.js';
import { dimTooLarge, dtypeOfElemType, encodeModel, GraphError, tensorDims, unknownDimension, valueInfo } from './onnx.js';
import { inferElemTypes } from './types.js';
import { inferShapes } from './infer.js';

export interface TensorShape {
  readonly dtype: DType | string;
  readonly dims: readonly number[];
  readonly bytes: number;
}

export type InputShapes = Readonly<Record<string, readonly number[]>>;

const BATCH_NAMES = /^(n|b|batch|batch_?size|bs|num_?batch(es)?)$/i;

/** Concrete shapes for the model's inputs: the given ones, checked, plus 1 for batch-like dims. */
export function resolveInputShapes(model: OnnxModel, given: InputShapes = {}): Record<string, number[]> {
  const byName = new Map(model.inputs.map((i) => [i.name, i]));
  for (const [name, dims] of Object.entries(given)) {
    const decl = byName.get(name);
    if (!decl) {
      throw new ValidationError('GRAPH_SHAPE_UNKNOWN_INPUT', `--shape names "${name}", but the model's inputs are: ${model.inputNames.join(', ')}`, { details: { input: name } });
    }
    if (decl.dims && decl.dims.length !== dims.length) {
      throw new ValidationError('GRAPH_SHAPE_RANK', `input "${name}" has rank ${decl.dims.length} ([${decl.dims.join(', ')}]), but --shape gives ${dims.length} dimensions`, { details: { input: name } });
    }
    dims.forEach((d, axis) => {
      if (!Number.isSafeInteger(d) || d <= 0) throw new ValidationError('GRAPH_SHAPE_INVALID', `--shape ${name}: dimension ${axis} must be a positive integer up to 2^53 - 1, got ${d}`);
      const fixed = decl.dims?.[axis];
      if (typeof fixed === 'number' && fixed !== d) {
        throw new ValidationError('GRAPH_SHAPE_MISMATCH', `input "${name}" has a fixed dimension ${fixed} at axis ${axis}, but --shape gives ${d}`, { details: { input: name, axis } });
      }
    });
  }
  const resolved: Record<string, number[]> = {};
  for (const input of model.inputs) {
    const explicit = given[input.name];
    if (explicit) {
      resolved[input.name] = [...explicit];
      continue;
    }
    resolved[input.name] = resolveDims(input);
  }
  return resolved;
}

function resolveDims(input: TensorDecl): number[] {
  if (!input.dims) throw new ValidationError('GRAPH_SHAPE_DYNAMIC', `input "${input.name}" has no declared shape: pass --shape ${input.name}=…`, { details: { input: input.name } });
  return input.dims.map((d, axis) => {
    if (typeof d === 'number') return d;
    if (axis === 0 || BATCH_NAMES.test(d)) return 1;
    throw unknownDimension(input.name, axis, d.startsWith('?') ? '?' : d);
  });
}

/**
 * The dtype, dims and byte size of every tensor for the given input shapes: inferred
 * statically where every operator is understood, otherwise measured by running the model
 * once. `measure: true` always runs it (tests use that to check the inference).
 */
export async function tensorShapes(model: OnnxModel, inputShapes: Record<string, number[]>, options: { measure?: boolean } = {}): Promise<Map<string, TensorShape>> {
  if (!options.measure) {
    const inferred = inferShapes(model, inputShapes);
    const complete = model.nodes.every((node) => node.outputs.every((t) => inferred.has(t)));
    if (complete) {
      const shapes = new Map<string, TensorShape>();
      for (const [name, s] of inferred) record(shapes, name, s.dtype, s.dims);
      return shapes;
    }
  }
  return measureShapes(model, inputShapes);
}

/** Runs the model once and records the dtype, dims and byte size of every tensor. */
async function measureShapes(model: OnnxModel, inputShapes: Record<string, number[]>): Promise<Map<string, TensorShape>> {
  const elemTypes = inferElemTypes(model);
  const shapes = new Map<string, TensorShape>();
  for (const [name, t] of model.initializers) record(shapes, name, dtypeOfElemType(t.dataType) ?? 'unknown', tensorDims(t));
  for (const node of model.nodes) {
    if (node.opType === 'Constant') {
      const value = node.proto.attribute?.find((a) => a.name === 'value')?.t;
      if (value) record(shapes, node.outputs[0]!, dtypeOfElemType(value.dataType) ?? 'unknown', tensorDims(value));
    }
  }

  const wanted = new Set<string>();
  for (const node of model.nodes) for (const out of node.outputs) if (!model.initializers.has(out)) wanted.add(out);
  for (const name of model.outputNames) wanted.add(name);
  for (const name of model.inputNames) wanted.delete(name);

  const original = model.proto.graph!;
  const existing = new Set((original.output ?? []).map((o) => o.name));
  const outputs = [...(original.output ?? [])];
  for (const name of wanted) if (!existing.has(name)) outputs.push(valueInfo(name, elemTypes.get(name)));
  // A shallow copy: the weights are shared with the loaded model, not duplicated.
  const proto = { ...model.proto, graph: { ...original, output: outputs } };

  const feeds: Record<string, ort.Tensor> = {};
  for (const input of model.inputs) {
    const dims = inputShapes[input.name]!;
    const dtype = input.dtype;
    if (!dtype) throw new GraphError('GRAPH_DTYPE', `input "${input.name}" has a type Tandem cannot feed`);
    feeds[input.name] = new ort.Tensor(dtype, sampleData(dtype, elementCount(dims)), dims);
    record(shapes, input.name, dtype, dims);
  }

  let session: ort.InferenceSession | undefined;
  try {
    session = await ort.InferenceSession.create(encodeModel(proto), {
      graphOptimizationLevel: 'disabled',
      intraOpNumThreads: Math.max(1, availableParallelism()),
      logSeverityLevel: 3,
    });
    const results = await session.run(feeds);
    for (const [name, value] of Object.entries(results)) {
      record(shapes, name, value.type, value.dims as number[]);
      value.dispose();
    }
  } catch (error) {
    if (error instanceof GraphError) throw error;
    throw new GraphError('GRAPH_SHAPE_RUN', `could not run ${model.source} to measure tensor sizes for input shapes ${JSON.stringify(inputShapes)}: ${(error as Error).message}`, { cause: error });
  } finally {
    await session?.release();
  }
  return shapes;
}

function record(shapes: Map<string, TensorShape>, name: string, dtype: string, dims: readonly number[]): void {
  shapes.set(name, { dtype, dims: [...dims], bytes: exactBytes(name, dtype, dims) });
}

/** Byte size of a tensor, refused (`GRAPH_SIZE_TOO_LARGE`) where a number would no longer be exact. */
function exactBytes(name: string, dtype: string, dims: readonly number[]): number {
  dims.forEach((d, axis) => {
    if (!Number.isSafeInteger(d)) throw dimTooLarge(`dimension ${axis} of tensor "${name}"`, d);
  });
  // In bigint: a product of safe numbers may already have been rounded.
  const bytes = dims.reduce((n, d) => n * BigInt(d), BigInt(bytesPer(dtype)));
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) throw dimTooLarge(`the byte size of tensor "${name}" ([${dims.join(', ')}] ${dtype})`, bytes);
  return Number(bytes);
}

/** The sum of byte sizes, refused where a number would no longer be exact. */
export function exactSum(sizes: readonly number[], what: string): number {
  const total = sizes.reduce((n, s) => n + BigInt(s), 0n);
  if (total > BigInt(Number.MAX_SAFE_INTEGER)) throw dimTooLarge(what, total);
  return Number(total);
}

function bytesPer(dtype: string): number {
  switch (dtype) {
    case 'float64': case 'int64': case 'uint64': return 8;
    case 'float32': case 'int32': case 'uint32': return 4;
    case 'float16': case 'int16': case 'uint16': case 'bfloat16': return 2;
    case 'string': return 0;
    default: return 1;
  }
}

/** Values that exercise the model without tripping data-dependent paths: uniform floats, zero indices. */
function sampleData(dtype: DType, length: number): ort.Tensor['data'] {
  const data = allocate(dtype, length);
  if (data instanceof Float32Array || data instanceof Float64Array) {
    let seed = 0x2545f491;
    for (let i = 0; i < length; i++) {
      seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5;
      data[i] = ((seed >>> 0) / 0x100000000);
    }
  }
  return dtype === 'bool' ? new Uint8Array(data.buffer as ArrayBuffer) as unknown as ort.Tensor['data'] : data as ort.Tensor['data'];
}
