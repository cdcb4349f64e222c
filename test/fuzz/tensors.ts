/** Small tensors of every dtype, for the fuzz targets that start from a valid message. */
import fc from 'fast-check';
import { allocate, DTYPES, elementCount, type DType, type Tensor, type TensorMap } from '../../src/tensor/index.js';

export const dtypeArb: fc.Arbitrary<DType> = fc.constantFrom(...DTYPES);

/** Dims of at most `maxElements` elements (zero-sized dimensions included). */
export const dimsArb = (maxRank = 4, maxElements = 64): fc.Arbitrary<number[]> =>
  fc.array(fc.integer({ min: 0, max: 6 }), { maxLength: maxRank }).filter((d) => elementCount(d) <= maxElements);

/** A tensor of `dtype` with values from `seed` (valid for the dtype: bools 0/1, float16 bit patterns). */
export function makeTensor(dtype: DType, dims: readonly number[], seed: number): Tensor {
  const n = elementCount(dims);
  const data = allocate(dtype, n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    if (data instanceof BigInt64Array) data[i] = BigInt(s) - 2n ** 31n;
    else if (data instanceof BigUint64Array) data[i] = BigInt(s);
    else if (dtype === 'bool') data[i] = s & 1;
    else if (dtype === 'float16') data[i] = s & 0x7bff; // finite halves
    else if (dtype === 'float32' || dtype === 'float64') data[i] = s / 2 ** 32 - 0.5;
    else data[i] = s; // integer arrays wrap into range
  }
  return { dtype, dims: [...dims], data } as Tensor;
}

export const tensorArb = (dtypes: fc.Arbitrary<DType> = dtypeArb, maxRank = 4): fc.Arbitrary<Tensor> =>
  fc.tuple(dtypes, dimsArb(maxRank), fc.nat()).map(([dtype, dims, seed]) => makeTensor(dtype, dims, seed));

export const nameArb: fc.Arbitrary<string> = fc.oneof(fc.constantFrom('x', 'input', 'y:0', 'a/b'), fc.string({ minLength: 1, maxLength: 8 }));

export const tensorMapArb = (dtypes: fc.Arbitrary<DType> = dtypeArb, maxTensors = 3): fc.Arbitrary<TensorMap> =>
  fc.dictionary(nameArb, tensorArb(dtypes), { minKeys: 1, maxKeys: maxTensors });
