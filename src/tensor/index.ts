/**
 * The tensor value every Tandem module exchanges: a dtype, dims and a typed array over
 * little-endian data. It is deliberately independent of onnxruntime's Tensor so that the
 * codec, the providers and the planner do not load the native runtime.
 */
import { ValidationError } from '../errors/index.js';

export const DTYPES = ['float32', 'float16', 'float64', 'int64', 'int32', 'int16', 'int8', 'uint8', 'uint16', 'uint32', 'uint64', 'bool'] as const;
export type DType = (typeof DTYPES)[number];

/** float16 values travel as their raw bit patterns; bool as one byte per element. */
export interface DTypeArrayMap {
  float32: Float32Array;
  float16: Uint16Array;
  float64: Float64Array;
  int64: BigInt64Array;
  int32: Int32Array;
  int16: Int16Array;
  int8: Int8Array;
  uint8: Uint8Array;
  uint16: Uint16Array;
  uint32: Uint32Array;
  uint64: BigUint64Array;
  bool: Uint8Array;
}
export type TensorData = DTypeArrayMap[DType];

export interface Tensor<D extends DType = DType> {
  readonly dtype: D;
  readonly dims: readonly number[];
  readonly data: DTypeArrayMap[D];
}

export type TensorMap = Record<string, Tensor>;

export const BYTES_PER_ELEMENT: Readonly<Record<DType, number>> = {
  float32: 4, float16: 2, float64: 8, int64: 8, int32: 4, int16: 2, int8: 1, uint8: 1, uint16: 2, uint32: 4, uint64: 8, bool: 1,
};

const ARRAY_CONSTRUCTORS = {
  float32: Float32Array, float16: Uint16Array, float64: Float64Array, int64: BigInt64Array, int32: Int32Array,
  int16: Int16Array, int8: Int8Array, uint8: Uint8Array, uint16: Uint16Array, uint32: Uint32Array,
  uint64: BigUint64Array, bool: Uint8Array,
} as const;

export function isDType(value: unknown): value is DType {
  return typeof value === 'string' && (DTYPES as readonly string[]).includes(value);
}

export function elementCount(dims: readonly number[]): number {
  let count = 1;
  for (const d of dims) count *= d;
  return count;
}

/** Allocates a zero-filled array of `length` elements of `dtype`. */
export function allocate<D extends DType>(dtype: D, length: number): DTypeArrayMap[D] {
  return new ARRAY_CONSTRUCTORS[dtype](length) as DTypeArrayMap[D];
}

/**
 * Views `bytes` as an array of `dtype` without copying when the offset is aligned, and
 * copies into a fresh aligned buffer otherwise.
 */
export function viewAs<D extends DType>(dtype: D, bytes: Uint8Array): DTypeArrayMap[D] {
  const width = BYTES_PER_ELEMENT[dtype];
  if (bytes.byteLength % width !== 0) {
    throw new ValidationError('TENSOR_DATA_LENGTH', `${bytes.byteLength} bytes is not a whole number of ${dtype} elements`);
  }
  const Ctor = ARRAY_CONSTRUCTORS[dtype];
  if (bytes.byteOffset % width === 0) {
    return new Ctor(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength / width) as DTypeArrayMap[D];
  }
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new Ctor(copy.buffer, 0, bytes.byteLength / width) as DTypeArrayMap[D];
}

/** The raw bytes behind a tensor's data (a view, not a copy). */
export function bytesOf(data: TensorData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Checks that a tensor's data length agrees with its dims and dtype. */
// Float16Array where the runtime has it (Node 24+): the same 2-byte layout as the Uint16Array bit patterns.
const Float16ArrayCtor = (globalThis as { Float16Array?: abstract new (...args: never[]) => unknown }).Float16Array;

function hasArrayTypeOf(dtype: DType, data: unknown): boolean {
  if (data instanceof ARRAY_CONSTRUCTORS[dtype]) return true;
  return dtype === 'float16' && Float16ArrayCtor !== undefined && data instanceof Float16ArrayCtor;
}

export function assertTensor(name: string, tensor: Tensor): void {
  if (!isDType(tensor.dtype)) throw new ValidationError('TENSOR_DTYPE', `tensor "${name}" has unknown dtype ${String(tensor.dtype)}`);
  for (const d of tensor.dims) {
    if (!Number.isInteger(d) || d < 0) throw new ValidationError('TENSOR_DIMS', `tensor "${name}" has an invalid dimension ${d}`);
  }
  // Bytes are written as the array holds them: another array type would travel as garbage
  // (int32 given a Float32Array) or as nothing at all (int64 given plain numbers).
  if (!hasArrayTypeOf(tensor.dtype, tensor.data)) {
    const kind = (tensor.data as unknown as { constructor?: { name?: string } } | null)?.constructor?.name ?? typeof tensor.data;
    throw new ValidationError('TENSOR_DTYPE', `tensor "${name}" is ${tensor.dtype} but its data is a ${kind} (needs a ${ARRAY_CONSTRUCTORS[tensor.dtype].name})`);
  }
  const expected = elementCount(tensor.dims);
  if (tensor.data.length !== expected) {
    throw new ValidationError('TENSOR_DIMS', `tensor "${name}" has ${tensor.data.length} elements but dims [${tensor.dims.join(', ')}] need ${expected}`);
  }
}

export function tensor<D extends DType>(dtype: D, dims: readonly number[], data: DTypeArrayMap[D]): Tensor<D> {
  const t = { dtype, dims: [...dims], data };
  assertTensor('tensor', t);
  return t;
}

/**
 * Adds `tensor` to `map` under `name` as an own property, whatever the name: an assignment
 * of a name from the wire such as `__proto__` would replace the map's prototype instead.
 */
export function setTensor(map: TensorMap, name: string, tensor: Tensor): void {
  Object.defineProperty(map, name, { value: tensor, enumerable: true, writable: true, configurable: true });
}

/** A deep copy: the copy's buffers may be transferred to a worker while the original lives on. */
export function cloneTensorMap(map: TensorMap): TensorMap {
  const out: TensorMap = {};
  for (const [k, t] of Object.entries(map)) out[k] = { dtype: t.dtype, dims: [...t.dims], data: t.data.slice() } as Tensor;
  return out;
}
