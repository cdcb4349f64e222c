import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodePayload, encodeTensorMap } from '../../src/codec/index.js';
import { descriptorSchema, entrySchema, isWellFormedDescriptor, isWellFormedEntry } from '../../src/codec/format.js';

const anyValue = fc.oneof(fc.string(), fc.integer(), fc.double(), fc.constant(null), fc.constant(undefined), fc.boolean(), fc.array(fc.integer(), { maxLength: 3 }), fc.array(fc.double(), { maxLength: 3 }));
const entryLike = fc.record({
  name: fc.oneof(fc.string({ maxLength: 8 }), anyValue),
  dtype: fc.oneof(fc.constantFrom('float32', 'int64', 'bogus'), anyValue),
  dims: fc.oneof(fc.array(fc.integer({ min: -2, max: 8 }), { maxLength: 4 }), fc.array(fc.double(), { maxLength: 3 }), anyValue),
  offset: fc.oneof(fc.nat(1000), fc.integer({ min: -5, max: 5 }), fc.double(), anyValue),
  length: fc.oneof(fc.nat(1000), fc.double(), anyValue),
  encoding: fc.oneof(fc.constantFrom('float16', 'int8', 'zstd', undefined), anyValue),
  axis: fc.oneof(fc.constantFrom(null, undefined, 0, 1, -1, 1.5), anyValue),
  scale: fc.oneof(fc.constant(undefined), fc.array(fc.double(), { maxLength: 3 }), anyValue),
  zeroPoint: fc.oneof(fc.constant(undefined), fc.array(fc.integer({ min: -200, max: 200 }), { maxLength: 3 }), anyValue),
}, { requiredKeys: [] });

describe('the hand-written descriptor checks on the decode hot path', () => {
  it('accept nothing that the zod schemas refuse', () => {
    fc.assert(fc.property(entryLike, (e) => {
      if (isWellFormedEntry(e)) expect(entrySchema.safeParse(e).success).toBe(true);
    }), { numRuns: 3000 });
    fc.assert(fc.property(fc.record({ tensors: fc.oneof(fc.array(entryLike, { maxLength: 2 }), anyValue), meta: fc.oneof(fc.constant(undefined), fc.dictionary(fc.string(), fc.oneof(fc.string(), anyValue))) }, { requiredKeys: [] }), (d) => {
      if (isWellFormedDescriptor(d)) expect(descriptorSchema.safeParse(d).success).toBe(true);
    }), { numRuns: 3000 });
  });

  it('take the common case (what the encoder writes) without zod', () => {
    expect(isWellFormedEntry({ name: 'x', dtype: 'float32', dims: [1, 3], offset: 0, length: 12 })).toBe(true);
    expect(isWellFormedEntry({ name: 'x', dtype: 'float32', dims: [1, 3], offset: 0, length: 3, encoding: 'int8', axis: 1, scale: [0.1, 0.2, 0.3], zeroPoint: [0, -3, 4] })).toBe(true);
    expect(isWellFormedDescriptor({ tensors: [], meta: { model: 'm' } })).toBe(true);
    expect(isWellFormedEntry({ name: '', dtype: 'float32', dims: [], offset: 0, length: 4 })).toBe(false);
    expect(isWellFormedDescriptor({ tensors: [], meta: { n: 1 } })).toBe(false);
  });

  it('decode what the encoder writes, meta included, on the fast path', () => {
    const bytes = Buffer.from(encodeTensorMap({ x: { dtype: 'float32', dims: [2], data: new Float32Array([1, 2]) } }, { meta: { model: 'm' } }));
    const out = decodePayload(bytes);
    expect(out.meta).toEqual({ model: 'm' });
    expect(Array.from(out.tensors['x']?.data as Float32Array)).toEqual([1, 2]);
  });
});
