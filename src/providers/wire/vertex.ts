/**
 * Vertex AI `instances` / `predictions`: one JSON value per batch item. An instance is an
 * object keyed by input name (or, for a one-input model, the nested array itself); the
 * service stacks instances along a new leading batch dimension.
 */
import { ValidationError } from '../../errors/index.js';
import { elementCount, setTensor, type DType, type Tensor, type TensorMap } from '../../tensor/index.js';
import { flatten, MAX_JSON_RANK, nest, nestedShape, tensorFromValues, valuesOf } from './json-tensors.js';

/**
 * The largest Vertex AI prediction request: 10 MB on dedicated public, Private Service Connect
 * and private endpoints (1.5 MB on shared public ones), read as MiB. The gRPC message limit of
 * both the client and the emulated front, each way: grpc-js's default (4 MiB received) would
 * refuse payloads the platform takes, gax's (none) would let any size through.
 */
export const VERTEX_MAX_MESSAGE_BYTES = 10 * 1024 * 1024;

/** google.protobuf.Value as protobufjs builds it from a plain object (the SDK's and grpc-js's encoders alike). */
export interface ProtoValueInit {
  nullValue?: 'NULL_VALUE';
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  listValue?: { values: ProtoValueInit[] };
  structValue?: { fields: Record<string, ProtoValueInit> };
}

/** Plain JSON to google.protobuf.Value (the SDK's helper turns nested arrays into structs). */
export function toProtoValue(v: unknown): ProtoValueInit {
  if (v === null || v === undefined) return { nullValue: 'NULL_VALUE' };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(toProtoValue) } };
  const fields: Record<string, ProtoValueInit> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) fields[k] = toProtoValue(x);
  return { structValue: { fields } };
}

export interface InstanceInput {
  name: string;
  dtype: DType;
}

/**
 * An instance value may also be `{"shape": [...], "data": [flat values]}`: compact, and
 * it avoids deeply nested lists, which the SDK's REST transport does not serialise
 * faithfully beyond two levels.
 */
interface Shaped {
  shape: number[];
  data: unknown[];
}

function isShaped(v: unknown): v is Shaped {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const o = v as { shape?: unknown; data?: unknown };
  return Array.isArray(o.shape) && o.shape.length <= MAX_JSON_RANK && o.shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0) && Array.isArray(o.data);
}

export function instancesToTensors(instances: readonly unknown[], inputs: readonly InstanceInput[], maxElements: number): TensorMap {
  if (instances.length === 0) throw new ValidationError('VERTEX_INSTANCES', '"instances" is empty');
  const out: TensorMap = {};
  for (const input of inputs) {
    const items = instances.map((inst, i) => {
      if (inputs.length === 1 && Array.isArray(inst)) return inst;
      if (inst === null || typeof inst !== 'object' || Array.isArray(inst) || !Object.hasOwn(inst, input.name)) {
        throw new ValidationError('VERTEX_INSTANCES', `instance ${i} has no value for input "${input.name}"`);
      }
      return (inst as Record<string, unknown>)[input.name];
    });
    const first = items[0];
    const shape = isShaped(first) ? first.shape : nestedShape(first);
    const dims = [items.length, ...shape];
    if (elementCount(dims) > maxElements) throw new ValidationError('VERTEX_TOO_LARGE', `input "${input.name}" exceeds ${maxElements} elements`);
    const flat: unknown[] = [];
    items.forEach((item, i) => {
      const what = `instance ${i} input "${input.name}"`;
      if (isShaped(item)) {
        if (item.shape.length !== shape.length || item.shape.some((d, j) => d !== shape[j])) throw new ValidationError('VERTEX_INSTANCES', `${what}: every instance needs the same shape`);
        if (item.data.length !== elementCount(shape)) throw new ValidationError('WIRE_DIMS_MISMATCH', `${what}: shape [${shape.join(', ')}] needs ${elementCount(shape)} values, got ${item.data.length}`);
        for (const v of item.data) flat.push(v);
      } else {
        for (const v of flatten(item, shape, what)) flat.push(v);
      }
    });
    out[input.name] = tensorFromValues(input.dtype, dims, flat, `input "${input.name}"`);
  }
  return out;
}

function batchOf(tensors: TensorMap): number {
  const sizes = Object.values(tensors).map((t) => t.dims[0]);
  const first = sizes[0];
  return first !== undefined && sizes.every((s) => s === first) ? first : -1;
}

/**
 * One prediction per batch item, each an object keyed by output name; values are nested
 * arrays, or `{shape, data}` when `shaped` (what Tandem's own client asks for).
 */
export function tensorsToPredictions(outputs: TensorMap, shaped = false): Record<string, unknown>[] {
  const n = batchOf(outputs);
  if (n < 0) {
    // No common batch dimension: one prediction holding the whole outputs.
    return [Object.fromEntries(Object.entries(outputs).map(([k, t]) => [k, shaped ? { shape: [...t.dims], data: valuesOf(t) } : nest(valuesOf(t), t.dims)]))];
  }
  const preds: Record<string, unknown>[] = Array.from({ length: n }, () => ({}));
  for (const [name, t] of Object.entries(outputs)) {
    const values = valuesOf(t);
    const inner = t.dims.slice(1);
    const size = elementCount(inner);
    for (let i = 0; i < n; i++) {
      const slice = values.slice(i * size, (i + 1) * size);
      (preds[i] as Record<string, unknown>)[name] = shaped ? { shape: inner, data: slice } : nest(slice, inner);
    }
  }
  return preds;
}

/** Splits tensors along their leading batch dimension into `{shape, data}` instances. */
export function tensorsToInstances(inputs: TensorMap): Record<string, Shaped>[] {
  const n = batchOf(inputs);
  if (n < 1) throw new ValidationError('VERTEX_INSTANCES', 'every input needs the same leading batch dimension to be sent as instances');
  const out: Record<string, Shaped>[] = Array.from({ length: n }, () => ({}));
  for (const [name, t] of Object.entries(inputs)) {
    const values = valuesOf(t);
    const inner = t.dims.slice(1);
    const size = elementCount(inner);
    for (let i = 0; i < n; i++) (out[i] as Record<string, Shaped>)[name] = { shape: inner, data: values.slice(i * size, (i + 1) * size) };
  }
  return out;
}

/** Reassembles output tensors from predictions, with dtypes taken from `dtypes` (default float32). */
export function predictionsToTensors(predictions: readonly unknown[], dtypes: Readonly<Record<string, DType>>): TensorMap {
  if (predictions.length === 0) throw new ValidationError('VERTEX_PREDICTIONS', 'the response has no predictions');
  const first = predictions[0];
  if (first === null || typeof first !== 'object' || Array.isArray(first)) throw new ValidationError('VERTEX_PREDICTIONS', 'predictions must be objects keyed by output name');
  const out: TensorMap = {};
  // Output names are the peer's: own keys only, so "constructor" or "__proto__" is a name like any other.
  const own = <T>(o: unknown, key: string): T | undefined => (o !== null && typeof o === 'object' && Object.hasOwn(o, key) ? (o as Record<string, T>)[key] : undefined);
  for (const name of Object.keys(first)) {
    const items = predictions.map((p) => own<unknown>(p, name));
    const first = items[0];
    const shape = isShaped(first) ? first.shape : nestedShape(first);
    const flat: unknown[] = [];
    items.forEach((item, i) => {
      if (isShaped(item)) for (const v of item.data) flat.push(v);
      else for (const v of flatten(item, shape, `prediction ${i} output "${name}"`)) flat.push(v);
    });
    setTensor(out, name, tensorFromValues(own<DType>(dtypes, name) ?? 'float32', [predictions.length, ...shape], flat, `output "${name}"`) as Tensor);
  }
  return out;
}
