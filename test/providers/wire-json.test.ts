// The JSON tensor forms (OIP v2 JSON, Vertex instances) at their boundary: values outside a
// dtype's range are refused rather than wrapped, 64-bit extremes survive a round trip, and
// names and nesting cannot smuggle in a prototype or a stack overflow.
import { describe, expect, it } from 'vitest';
import { decodeOipRequest, encodeOipRequest } from '../../src/providers/wire/oip.js';
import { instancesToTensors } from '../../src/providers/wire/vertex.js';
import type { TensorMap } from '../../src/tensor/index.js';
import { codeOf } from '../helpers/errors.js';

const limits = { maxElements: 1e6 };
const oip = (inputs: unknown[]): Uint8Array => Buffer.from(JSON.stringify({ inputs }));

describe('JSON tensors', () => {
  it('refuses integers outside their dtype instead of wrapping them', () => {
    const cases: Array<[string, unknown[]]> = [
      ['INT8', [300]], ['INT8', [-129]], ['UINT8', [-1]], ['UINT8', [256]], ['INT16', [40000]], ['UINT16', [-1]],
      ['INT32', [4294967296]], ['UINT32', [-1]], ['INT64', [1e20]], ['INT64', [2 ** 53 + 2]], ['INT64', ['9223372036854775808']],
      ['UINT64', ['-1']], ['UINT64', ['18446744073709551616']], ['INT32', [1.5]],
    ];
    for (const [datatype, data] of cases) {
      expect(codeOf(() => decodeOipRequest(oip([{ name: 'x', shape: [1], datatype, data }]), undefined, limits)), `${datatype} ${String(data[0])}`).toBe('WIRE_VALUE');
    }
    const ok = decodeOipRequest(oip([{ name: 'x', shape: [4], datatype: 'INT8', data: [-128, 127, 0, 5] }]), undefined, limits);
    expect(Array.from(ok.tensors['x']?.data as Int8Array)).toEqual([-128, 127, 0, 5]);
  });

  it('carries 64-bit extremes exactly through an encode and decode', () => {
    const tensors: TensorMap = {
      i: { dtype: 'int64', dims: [4], data: BigInt64Array.from([-(2n ** 63n), 2n ** 63n - 1n, 2n ** 53n + 1n, -7n]) },
      u: { dtype: 'uint64', dims: [2], data: BigUint64Array.from([2n ** 64n - 1n, 3n]) },
    };
    const enc = encodeOipRequest(tensors, { binary: false });
    const back = decodeOipRequest(enc.body, enc.headerLength, limits).tensors;
    expect(Array.from(back['i']?.data as BigInt64Array)).toEqual([-(2n ** 63n), 2n ** 63n - 1n, 2n ** 53n + 1n, -7n]);
    expect(Array.from(back['u']?.data as BigUint64Array)).toEqual([2n ** 64n - 1n, 3n]);
  });

  it('refuses a name given twice, and keeps __proto__ an ordinary own name', () => {
    expect(codeOf(() => decodeOipRequest(oip([{ name: 'x', shape: [1], datatype: 'FP32', data: [1] }, { name: 'x', shape: [1], datatype: 'FP32', data: [2] }]), undefined, limits))).toBe('OIP_DUPLICATE');
    const decoded = decodeOipRequest(oip([{ name: '__proto__', shape: [1], datatype: 'FP32', data: [1] }, { name: 'y', shape: [1], datatype: 'FP32', data: [2] }]), undefined, limits).tensors;
    expect(Object.keys(decoded).sort()).toEqual(['__proto__', 'y']);
    expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype);
    expect(Array.from(decoded['__proto__']?.data as Float32Array)).toEqual([1]);
  });

  it('bounds nesting before walking it', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 200_000; i++) deep = [deep];
    expect(codeOf(() => instancesToTensors([deep], [{ name: 'x', dtype: 'float32' }], 1e6))).toBe('WIRE_SHAPE');
    expect(codeOf(() => instancesToTensors([{ x: { shape: [3, 0, 2 ** 60], data: [] } }], [{ name: 'x', dtype: 'float32' }], 1e6))).toBe('WIRE_VALUE');
  });
});
