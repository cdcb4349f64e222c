import { crc32 as zlibCrc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decode as msgpackDecode } from 'msgpackr';
import {
  CodecError, decodePayload, decodeTensorMap, encodeTensorMap, encodeTensorMapWithReport, fromFloat16Bits, toFloat16Bits,
} from '../../src/codec/index.js';
import type { TensorData, TensorMap } from '../../src/tensor/index.js';
import { crc32, crc32Implementation } from '../../src/util/crc32.js';

const arr = (d: TensorData | undefined): unknown[] => (d ? Array.from(d as ArrayLike<unknown>) : []);

function sample(): TensorMap {
  return {
    f32: { dtype: 'float32', dims: [2, 3], data: new Float32Array([1, -2.5, 3, 0, 1e-3, 7]) },
    f16: { dtype: 'float16', dims: [3], data: new Uint16Array([0x3c00, 0xc000, 0x7bff]) },
    i64: { dtype: 'int64', dims: [2], data: new BigInt64Array([-1n, 2n ** 40n]) },
    i32: { dtype: 'int32', dims: [1, 1], data: new Int32Array([-7]) },
    u8: { dtype: 'uint8', dims: [3], data: new Uint8Array([0, 128, 255]) },
    i8: { dtype: 'int8', dims: [2], data: new Int8Array([-128, 127]) },
    b: { dtype: 'bool', dims: [2], data: new Uint8Array([1, 0]) },
    empty: { dtype: 'float32', dims: [0, 4], data: new Float32Array(0) },
    scalar: { dtype: 'float32', dims: [], data: new Float32Array([42]) },
  };
}

function expectCode(fn: () => unknown, code: string): void {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(CodecError);
    expect((error as CodecError).code).toBe(code);
    return;
  }
  throw new Error(`expected ${code}`);
}

describe('codec round trip', () => {
  it('restores every dtype bit for bit, with views aligned into the payload', () => {
    const input = sample();
    const bytes = encodeTensorMap(input, { meta: { model: 'm', cut: 'c3' } });
    const out = decodePayload(bytes);
    expect(out.meta).toEqual({ model: 'm', cut: 'c3' });
    for (const [name, t] of Object.entries(input)) {
      const got = out.tensors[name];
      expect(got?.dtype).toBe(t.dtype);
      expect(got?.dims).toEqual(t.dims);
      expect(arr(got?.data)).toEqual(arr(t.data));
    }
    // zero-copy: the decoded float32 array shares the payload's buffer
    expect(out.tensors['f32']?.data.buffer).toBe(bytes.buffer);
  });

  it('is a plain MessagePack document that any reader opens', () => {
    const bytes = encodeTensorMap(sample());
    const doc = msgpackDecode(bytes) as unknown[];
    expect(doc).toHaveLength(5);
    expect((doc[2] as { tensors: { name: string }[] }).tensors.map((t) => t.name)).toContain('f32');
  });

  it('copies into an aligned buffer when the payload sits at an odd offset', () => {
    const bytes = encodeTensorMap(sample());
    const shifted = new Uint8Array(bytes.byteLength + 1).subarray(1);
    shifted.set(bytes);
    const out = decodeTensorMap(shifted);
    expect(arr(out['f32']?.data)).toEqual([1, -2.5, 3, 0, 1e-3, 7].map(Math.fround));
  });

  it('round-trips arbitrary float32 and int64 tensors (property)', () => {
    fc.assert(fc.property(
      fc.array(fc.float({ noNaN: true }), { maxLength: 200 }),
      fc.array(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), { maxLength: 50 }),
      (floats, ints) => {
        const input: TensorMap = {
          a: { dtype: 'float32', dims: [floats.length], data: new Float32Array(floats) },
          b: { dtype: 'int64', dims: [ints.length], data: new BigInt64Array(ints) },
        };
        const out = decodeTensorMap(encodeTensorMap(input));
        expect(arr(out['a']?.data)).toEqual(arr(input['a']?.data));
        expect(arr(out['b']?.data)).toEqual(ints);
      }), { numRuns: 100 });
  });
});

describe('codec compression', () => {
  const values = Float32Array.from({ length: 2 * 4 * 5 * 5 }, (_, i) => Math.sin(i) * 10 ** (Math.floor(i / 25) % 4 - 2));
  const t: TensorMap = { x: { dtype: 'float32', dims: [2, 4, 5, 5], data: values }, ids: { dtype: 'int64', dims: [1], data: new BigInt64Array([5n]) } };

  it('float16 halves the bytes and reports an error within float16 precision', () => {
    const { bytes, compression } = encodeTensorMapWithReport(t, { compression: 'float16' });
    const plain = encodeTensorMap(t);
    expect(bytes.byteLength).toBeLessThan(plain.byteLength - values.byteLength / 2 + 64);
    const r = compression['x'];
    expect(r?.method).toBe('float16');
    expect(compression['ids']).toBeUndefined();
    const out = decodePayload(bytes);
    expect(out.compressed).toEqual(['x']);
    const got = out.tensors['x']?.data as Float32Array;
    let maxErr = 0;
    values.forEach((v, i) => { maxErr = Math.max(maxErr, Math.abs(v - (got[i] ?? 0))); });
    expect(r?.maxAbsError).toBeCloseTo(maxErr, 10);
    expect(maxErr).toBeGreaterThan(0);
    expect(r?.relativeError).toBeLessThan(1e-3);
  });

  it('int8 per channel beats per tensor on channels of different ranges, and the report matches the decoded error', () => {
    const perTensor = encodeTensorMapWithReport(t, { compression: 'int8', int8Axis: 'tensor' });
    const perChannel = encodeTensorMapWithReport(t, { compression: 'int8', int8Axis: 1 });
    expect(perTensor.compression['x']?.axis).toBeNull();
    expect(perChannel.compression['x']?.axis).toBe(1);
    expect(perChannel.compression['x']?.rmse ?? 1).toBeLessThan(perTensor.compression['x']?.rmse ?? 0);
    for (const enc of [perTensor, perChannel]) {
      const got = decodeTensorMap(enc.bytes)['x']?.data as Float32Array;
      let maxErr = 0;
      values.forEach((v, i) => { maxErr = Math.max(maxErr, Math.abs(v - (got[i] ?? 0))); });
      expect(enc.compression['x']?.maxAbsError).toBeCloseTo(maxErr, 5);
      expect(enc.compression['x']?.relativeError).toBeLessThan(0.02);
    }
  });

  it('int8 defaults to one scale per tensor when the channels are too short to pay for their own', () => {
    // An embedding [1, 1280]: one value a channel, where per-channel parameters outweigh the data.
    const emb: TensorMap = { e: { dtype: 'float32', dims: [1, 1280], data: Float32Array.from({ length: 1280 }, (_, i) => Math.cos(i)) } };
    const auto = encodeTensorMapWithReport(emb, { compression: 'int8' });
    const forced = encodeTensorMapWithReport(emb, { compression: 'int8', int8Axis: 1 });
    expect(auto.compression['e']?.axis).toBeNull();
    expect(auto.bytes.byteLength).toBeLessThan(encodeTensorMap(emb).byteLength / 2);
    expect(auto.bytes.byteLength).toBeLessThan(forced.bytes.byteLength);
    // A feature map with long channels keeps its per-channel scales.
    const fmap: TensorMap = { f: { dtype: 'float32', dims: [1, 8, 16, 16], data: Float32Array.from({ length: 2048 }, (_, i) => Math.sin(i)) } };
    expect(encodeTensorMapWithReport(fmap, { compression: 'int8' }).compression['f']?.axis).toBe(1);
  });

  it('float16 bit conversion rounds to nearest even and handles specials', () => {
    expect(toFloat16Bits(1)).toBe(0x3c00);
    expect(toFloat16Bits(65504)).toBe(0x7bff);
    expect(toFloat16Bits(1e6)).toBe(0x7c00);
    expect(toFloat16Bits(-0)).toBe(0x8000);
    expect(Number.isNaN(fromFloat16Bits(toFloat16Bits(NaN)))).toBe(true);
    expect(fromFloat16Bits(toFloat16Bits(2 ** -24))).toBe(2 ** -24);
    expect(fromFloat16Bits(toFloat16Bits(1 + 2 ** -11))).toBe(1); // tie to even
    fc.assert(fc.property(fc.float({ min: -60000, max: 60000, noNaN: true }), (v) => {
      const back = fromFloat16Bits(toFloat16Bits(v));
      expect(Math.abs(back - v)).toBeLessThanOrEqual(Math.max(Math.abs(v) * 2 ** -11, 2 ** -25));
    }));
  });
});

describe('codec rejects bad payloads with stable codes', () => {
  const good = encodeTensorMap({ x: { dtype: 'float32', dims: [4], data: new Float32Array([1, 2, 3, 4]) } });

  it('truncated', () => {
    expectCode(() => decodeTensorMap(good.subarray(0, good.byteLength - 1)), 'CODEC_TRUNCATED');
    expectCode(() => decodeTensorMap(good.subarray(0, 10)), 'CODEC_TRUNCATED');
    expectCode(() => decodeTensorMap(good.subarray(0, 30)), 'CODEC_TRUNCATED');
  });
  it('bad magic and version', () => {
    expectCode(() => decodeTensorMap(Buffer.from('{"inputs": []}, padding padding')), 'CODEC_MAGIC');
    const v = Uint8Array.from(good);
    v[7] = 9;
    expectCode(() => decodeTensorMap(v), 'CODEC_VERSION');
  });
  it('corrupted data fails the integrity check', () => {
    const c = Uint8Array.from(good);
    c[c.byteLength - 2] = (c[c.byteLength - 2] ?? 0) ^ 0xff;
    expectCode(() => decodeTensorMap(c), 'CODEC_INTEGRITY');
  });
  it('oversize payload, rank and element count are refused before allocation', () => {
    expectCode(() => decodeTensorMap(good, { maxBytes: 100 }), 'CODEC_TOO_LARGE');
    const big = encodeTensorMap({ x: { dtype: 'float32', dims: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1], data: new Float32Array(1) } });
    expectCode(() => decodeTensorMap(big), 'CODEC_TOO_LARGE');
    expectCode(() => decodeTensorMap(good, { maxElements: 3 }), 'CODEC_TOO_LARGE');
  });
  it('forged descriptors with a valid checksum', async () => {
    const { crc32 } = await import('node:zlib');
    const { pack } = await import('msgpackr');
    // Builds a payload by hand from a descriptor object and raw data, as an attacker could.
    const build = (descriptor: unknown, data: Uint8Array): Uint8Array => {
      const desc = pack(descriptor);
      const pad = (64 - ((20 + desc.byteLength + 7) % 64)) % 64;
      const out = Buffer.alloc(20 + desc.byteLength + 2 + pad + 5 + data.byteLength);
      out.set([0x95, 0xc4, 12, 0x54, 0x4e, 0x44, 0x4d, 1, 0, 0, 0]);
      out.writeUInt32LE(desc.byteLength, 11);
      out[15] = 0xce;
      out.set(desc, 20);
      let p = 20 + desc.byteLength;
      out[p] = 0xc4; out[p + 1] = pad; p += 2 + pad;
      out[p] = 0xc6; out.writeUInt32BE(data.byteLength, p + 1); p += 5;
      out.set(data, p);
      out.writeUInt32BE(crc32(data, crc32(desc)), 16);
      return out;
    };
    const data = new Uint8Array(16);
    const entry = { name: 'x', dtype: 'float32', dims: [4], offset: 0, length: 16 };
    expect(decodeTensorMap(build({ tensors: [entry] }, data))['x']?.dims).toEqual([4]);
    expectCode(() => decodeTensorMap(build({ tensors: [{ ...entry, dtype: 'complex64' }] }, data)), 'CODEC_DTYPE');
    expectCode(() => decodeTensorMap(build({ tensors: [{ ...entry, dims: [5] }] }, data)), 'CODEC_DIMS_MISMATCH');
    expectCode(() => decodeTensorMap(build({ tensors: [{ ...entry, dims: [2 ** 40, 2 ** 40] }] }, data)), 'CODEC_TOO_LARGE');
    expectCode(() => decodeTensorMap(build({ tensors: [{ ...entry, dims: [-4] }] }, data)), 'CODEC_DIMS_MISMATCH');
    expectCode(() => decodeTensorMap(build({ tensors: [{ ...entry, offset: 8 }] }, data)), 'CODEC_TRUNCATED');
    expectCode(() => decodeTensorMap(build({ tensors: [entry, entry] }, data)), 'CODEC_MALFORMED');
    expectCode(() => decodeTensorMap(build({ nope: 1 }, data)), 'CODEC_MALFORMED');
    expectCode(() => decodeTensorMap(build({ tensors: [{ ...entry, encoding: 'int8', length: 4, scale: [1], zeroPoint: [] }] }, data)), 'CODEC_DIMS_MISMATCH');
  });
  it('encoder refuses tensors whose data do not match their dims', () => {
    expectCode(() => encodeTensorMap({ x: { dtype: 'float32', dims: [5], data: new Float32Array(4) } }), 'CODEC_DIMS_MISMATCH');
    expectCode(() => encodeTensorMap({ x: { dtype: 'complex' as never, dims: [1], data: new Float32Array(1) } }), 'CODEC_DTYPE');
  });
});

describe('codec fuzzing', () => {
  it('any corruption of a payload (checksum recomputed) is either decoded or refused with a CodecError', async () => {
    const { crc32 } = await import('node:zlib');
    const base = Buffer.from(encodeTensorMap({
      a: { dtype: 'float32', dims: [2, 3], data: new Float32Array(6) },
      b: { dtype: 'int64', dims: [2], data: new BigInt64Array(2) },
    }, { meta: { model: 'm' } }));
    fc.assert(fc.property(fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), (edits) => {
      const b = Buffer.from(base);
      for (const [pos, value] of edits) b[pos % b.length] = value;
      const d = b.readUInt32LE(11);
      if (20 + d + 7 <= b.length && b[15] === 0xce) {
        const pad = b[20 + d + 1] ?? 0;
        const dataStart = 20 + d + 2 + pad + 5;
        if (dataStart <= b.length) b.writeUInt32BE(crc32(b.subarray(dataStart), crc32(b.subarray(20, 20 + d))), 16);
      }
      try {
        decodePayload(b);
      } catch (error) {
        expect(error).toBeInstanceOf(CodecError);
      }
    }), { numRuns: 2000 });
  });
});

describe('payload checksum', () => {
  it('is zlib\'s CRC-32, chained the same way, whichever implementation runs', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4096 }), fc.nat(), (bytes, at) => {
        const split = bytes.length === 0 ? 0 : at % bytes.length;
        expect(crc32(bytes)).toBe(zlibCrc32(bytes));
        expect(crc32(bytes.subarray(split), crc32(bytes.subarray(0, split)))).toBe(zlibCrc32(bytes));
      }),
    );
  });

  it('runs on the SIMD implementation where a binary ships for the platform', () => {
    // The lock file holds the prebuilt binaries for these (CI and the usual edge devices).
    const shipped = process.platform === 'linux' && (process.arch === 'x64' || process.arch === 'arm64');
    expect(['@node-rs/crc32', 'node:zlib']).toContain(crc32Implementation);
    if (shipped) expect(crc32Implementation).toBe('@node-rs/crc32');
  });
});
