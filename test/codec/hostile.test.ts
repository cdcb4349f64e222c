// Payloads a hostile sender can build (the CRC-32 is an integrity check, not a MAC, so it can
// be recomputed for any descriptor), and tensors the encoder must refuse rather than garble.
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { decodePayload, encodeTensorMap, encodeTensorMapWithReport } from '../../src/codec/index.js';
import { crc32 } from '../../src/util/crc32.js';
import type { TensorMap } from '../../src/tensor/index.js';
import { codeOf } from '../helpers/errors.js';

/** A version-1 payload around any descriptor, with a valid checksum. */
function forge(descriptor: unknown, data: Uint8Array = new Uint8Array(0)): Buffer {
  const d = new Packr({ useRecords: false, variableMapSize: true }).pack(descriptor);
  const pad = (64 - ((20 + d.length + 2 + 5) % 64)) % 64;
  const out = Buffer.alloc(20 + d.length + 2 + pad + 5 + data.length);
  out[0] = 0x95;
  out[1] = 0xc4;
  out[2] = 12;
  out.set([0x54, 0x4e, 0x44, 0x4d], 3);
  out[7] = 1;
  out.writeUInt32LE(d.length, 11);
  out[15] = 0xce;
  out.set(d, 20);
  let p = 20 + d.length;
  out[p++] = 0xc4;
  out[p++] = pad;
  p += pad;
  out[p++] = 0xc6;
  out.writeUInt32BE(data.length, p);
  out.set(data, p + 4);
  out.writeUInt32BE(crc32(data, crc32(d)), 16);
  return out;
}


describe('hostile payloads', () => {
  it('an empty int8 tensor with 2^52 outer rows decodes at once (it used to loop 2^52 times)', () => {
    const bytes = forge({ tensors: [{ name: 'x', dtype: 'float32', encoding: 'int8', axis: 1, scale: [1], zeroPoint: [0], dims: [2 ** 52, 1, 0], offset: 0, length: 0 }] });
    const t = decodePayload(bytes).tensors['x'];
    expect(t?.dims).toEqual([2 ** 52, 1, 0]);
    expect(t?.data.length).toBe(0);
  }, 5_000);

  it('refuses entries that share bytes (a small payload decoding into many times its size)', () => {
    const data = new Uint8Array(1024);
    const tensors = Array.from({ length: 4 }, (_, i) => ({ name: `t${i}`, dtype: 'int8', dims: [1024], offset: 0, length: 1024 }));
    expect(codeOf(() => decodePayload(forge({ tensors }, data)))).toBe('CODEC_MALFORMED');
    // Out of order is refused the same way; in order and disjoint decodes.
    expect(codeOf(() => decodePayload(forge({ tensors: [{ name: 'a', dtype: 'int8', dims: [8], offset: 8, length: 8 }, { name: 'b', dtype: 'int8', dims: [8], offset: 0, length: 8 }] }, new Uint8Array(16))))).toBe('CODEC_MALFORMED');
    expect(Object.keys(decodePayload(forge({ tensors: [{ name: 'a', dtype: 'int8', dims: [8], offset: 0, length: 8 }, { name: 'b', dtype: 'int8', dims: [8], offset: 8, length: 8 }] }, new Uint8Array(16))).tensors)).toEqual(['a', 'b']);
  });

  it('keeps a tensor named __proto__ as an own entry, not the map\'s prototype', () => {
    const map: TensorMap = {};
    Object.defineProperty(map, '__proto__', { value: { dtype: 'float32', dims: [1], data: new Float32Array([7]) }, enumerable: true, writable: true, configurable: true });
    map['y'] = { dtype: 'float32', dims: [1], data: new Float32Array([8]) };
    const back = decodePayload(encodeTensorMap(map)).tensors;
    expect(Object.keys(back).sort()).toEqual(['__proto__', 'y']);
    expect(Object.getPrototypeOf(back)).toBe(Object.prototype);
  });
});

describe('tensors the encoder refuses', () => {
  it('int8 compression of Inf or NaN is a typed error, not a payload its own decoder refuses or a silent number', () => {
    for (const bad of [Infinity, -Infinity, NaN]) {
      const x = { dtype: 'float32' as const, dims: [4], data: new Float32Array([1, 2, 3, bad]) };
      expect(codeOf(() => encodeTensorMap({ x }, { compression: 'int8' })), String(bad)).toBe('CODEC_VALUE');
    }
  });

  it('float16 reports Inf and NaN restored exactly as exact, and a real mismatch as unbounded', () => {
    const exact = encodeTensorMapWithReport({ x: { dtype: 'float32', dims: [4], data: new Float32Array([1, 2, Infinity, NaN]) } }, { compression: 'float16' }).compression['x'];
    expect(exact).toMatchObject({ maxAbsError: 0, rmse: 0 });
    // 1e6 overflows float16 to Inf: that error has no bound.
    const overflow = encodeTensorMapWithReport({ x: { dtype: 'float32', dims: [2], data: new Float32Array([1, 1e6]) } }, { compression: 'float16' }).compression['x'];
    expect(overflow?.maxAbsError).toBe(Infinity);
  });

  it('data of another array type than the dtype is refused', () => {
    const cases: Array<[string, unknown]> = [
      ['float16', new Float32Array(2)], ['float32', new Float64Array(2)], ['int64', [1, 2]], ['int32', new Float32Array(2)],
    ];
    for (const [dtype, data] of cases) {
      expect(codeOf(() => encodeTensorMap({ x: { dtype, dims: [2], data } as never })), dtype).toBe('CODEC_DTYPE');
    }
    expect(codeOf(() => encodeTensorMap({ x: { dtype: 'float16', dims: [2], data: new Uint16Array(2) } }))).toBeUndefined();
  });
});
