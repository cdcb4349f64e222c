/**
 * Conversions between tensors and JSON numbers (nested or flat arrays), shared by the
 * OIP v2 JSON and Vertex AI instance formats on both the client and the server side.
 */
import { ValidationError } from '../../errors/index.js';
import { toFloat16Bits, fromFloat16Bits } from '../../codec/float16.js';
import { allocate, elementCount, type DType, type Tensor } from '../../tensor/index.js';

/** Shape of a rectangular nested array (throws on ragged input). */
export function nestedShape(value: unknown): number[] {
  const shape: number[] = [];
  let v = value;
  while (Array.isArray(v)) {
    // Bounded before anything recurses over the nesting: a body of 200 000 brackets would
    // otherwise overflow the stack.
    if (shape.length === MAX_JSON_RANK) throw new ValidationError('WIRE_SHAPE', `nested arrays deeper than ${MAX_JSON_RANK} levels are not a tensor this service takes`);
    shape.push(v.length);
    v = v[0];
  }
  return shape;
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Deepest nesting (rank) accepted from JSON tensors, as OIP's shapes are bounded. */
export const MAX_JSON_RANK = 16;

/** Integer ranges of the dtypes JSON numbers are stored into: a value outside is refused, not wrapped. */
const INTEGER_RANGE: Partial<Record<DType, readonly [number, number]>> = {
  int8: [-128, 127], uint8: [0, 255], int16: [-32768, 32767], uint16: [0, 65535],
  int32: [-2147483648, 2147483647], uint32: [0, 4294967295],
};
const BIGINT_RANGE: Partial<Record<DType, readonly [bigint, bigint]>> = {
  int64: [-(2n ** 63n), 2n ** 63n - 1n], uint64: [0n, 2n ** 64n - 1n],
};

/** Flattens a nested array of the given shape, checking it is rectangular. */
export function flatten(value: unknown, shape: readonly number[], what: string): unknown[] {
  const out: unknown[] = [];
  const walk = (v: unknown, depth: number): void => {
    if (depth === shape.length) {
      if (Array.isArray(v)) throw new ValidationError('WIRE_SHAPE', `${what}: nesting is deeper than shape [${shape.join(', ')}]`);
      out.push(v);
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[depth]) {
      throw new ValidationError('WIRE_SHAPE', `${what}: data is not a rectangular array of shape [${shape.join(', ')}]`);
    }
    for (const item of v) walk(item, depth + 1);
  };
  walk(value, 0);
  return out;
}

/** Builds a tensor from flat JSON values, converting each to `dtype`. */
export function tensorFromValues(dtype: DType, dims: readonly number[], values: readonly unknown[], what: string): Tensor {
  const count = elementCount(dims);
  if (values.length !== count) {
    throw new ValidationError('WIRE_DIMS_MISMATCH', `${what}: shape [${dims.join(', ')}] needs ${count} values but ${values.length} were given`);
  }
  const data = allocate(dtype, count);
  const bad = (v: unknown): never => {
    throw new ValidationError('WIRE_VALUE', `${what}: ${(JSON.stringify(v) ?? String(v)).slice(0, 60)} is not a valid ${dtype} value`);
  };
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
    const [min, max] = BIGINT_RANGE[dtype] ?? [0n, 0n];
    for (let i = 0; i < count; i++) {
      const v = values[i];
      // Past 2^53 a JSON number is already rounded: such values must come as strings.
      const big = typeof v === 'number' && Number.isSafeInteger(v) ? BigInt(v) : typeof v === 'string' && /^-?\d{1,20}$/.test(v) ? BigInt(v) : undefined;
      if (big === undefined || big < min || big > max) bad(v);
      else data[i] = big;
    }
  } else if (dtype === 'bool') {
    for (let i = 0; i < count; i++) {
      const v = values[i];
      if (typeof v === 'boolean') data[i] = v ? 1 : 0;
      else if (v === 0 || v === 1) data[i] = v;
      else bad(v);
    }
  } else if (dtype === 'float16') {
    for (let i = 0; i < count; i++) {
      const v = values[i];
      if (typeof v !== 'number') bad(v);
      data[i] = toFloat16Bits(v as number);
    }
  } else {
    const numeric = data as Exclude<typeof data, BigInt64Array | BigUint64Array>;
    const range = INTEGER_RANGE[dtype];
    for (let i = 0; i < count; i++) {
      const v = values[i];
      if (typeof v !== 'number' || (range && (!Number.isInteger(v) || v < range[0] || v > range[1]))) bad(v);
      numeric[i] = v as number;
    }
  }
  return { dtype, dims: [...dims], data } as Tensor;
}

/** Flat JSON values of a tensor (64-bit integers as numbers, or exact strings past ±2^53; float16 decoded; bool as booleans). */
export function valuesOf(t: Tensor): (number | boolean | string)[] {
  const out: (number | boolean | string)[] = new Array<number | boolean | string>(t.data.length);
  const d = t.data;
  if (d instanceof BigInt64Array || d instanceof BigUint64Array) {
    // A JSON number past ±2^53 is rounded by every JavaScript reader (INT64_MAX read back as
    // INT64_MIN): such values travel as exact decimal strings, which the decoders accept.
    for (let i = 0; i < d.length; i++) {
      const v = d[i] ?? 0n;
      out[i] = v >= -MAX_SAFE && v <= MAX_SAFE ? Number(v) : v.toString();
    }
  } else if (t.dtype === 'bool') {
    for (let i = 0; i < d.length; i++) out[i] = d[i] !== 0;
  } else if (t.dtype === 'float16') {
    for (let i = 0; i < d.length; i++) out[i] = fromFloat16Bits(Number(d[i]));
  } else {
    for (let i = 0; i < d.length; i++) out[i] = Number(d[i]);
  }
  return out;
}

/** Nests flat values into arrays of `shape`. */
export function nest(values: readonly unknown[], shape: readonly number[]): unknown {
  if (shape.length === 0) return values[0];
  let pos = 0;
  const build = (depth: number): unknown[] => {
    const n = shape[depth] ?? 0;
    const arr: unknown[] = new Array<unknown>(n);
    if (depth === shape.length - 1) {
      for (let i = 0; i < n; i++) arr[i] = values[pos++];
    } else {
      for (let i = 0; i < n; i++) arr[i] = build(depth + 1);
    }
    return arr;
  };
  return build(0);
}
