/**
 * A payload's checksum taken as its bytes arrive, in chunks cut anywhere, is the one its header
 * holds, and the decoder takes it only for the layout it was taken over.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodePayload, encodeTensorMap, PayloadChecksum, type PayloadDigest } from '../../src/codec/index.js';
import type { TensorMap } from '../../src/tensor/index.js';

function tensors(n: number, meta = 0): TensorMap {
  const out: TensorMap = { a: { dtype: 'float32', dims: [1, n], data: Float32Array.from({ length: n }, (_, i) => i / 3) } };
  if (meta > 0) out['b'] = { dtype: 'int32', dims: [meta], data: Int32Array.from({ length: meta }, (_, i) => i) };
  return out;
}

/** The checksum of `bytes` fed in the chunks that `cuts` (positions) make. */
function streamed(bytes: Uint8Array, cuts: number[]): PayloadDigest | undefined {
  const c = new PayloadChecksum();
  let at = 0;
  for (const cut of [...new Set(cuts.map((x) => x % (bytes.byteLength + 1)))].sort((x, y) => x - y)) {
    c.update(bytes.subarray(at, cut));
    at = cut;
  }
  c.update(bytes.subarray(at));
  return c.digest();
}

const headerCrc = (bytes: Uint8Array): number => new DataView(bytes.buffer, bytes.byteOffset).getUint32(16, false);

describe('PayloadChecksum', () => {
  it('gives the header\'s CRC whatever the chunks, and the decoder takes it', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 0, max: 40 }), fc.array(fc.nat(), { maxLength: 12 }), (n, m, cuts) => {
      const bytes = encodeTensorMap(tensors(n, m), { meta: { model: 'x'.repeat(m) } });
      const digest = streamed(bytes, cuts);
      expect(digest).toBeDefined();
      expect(digest!.crc).toBe(headerCrc(bytes));
      expect(digest!.length).toBe(bytes.byteLength);
      expect(decodePayload(bytes, {}, digest).tensors['a']!.dims).toEqual([1, n]);
    }), { numRuns: 200 });
  });

  it('is what the decoder checks: bytes changed after the checksum was taken are refused with CODEC_INTEGRITY', () => {
    const bytes = encodeTensorMap(tensors(500));
    const digest = streamed(bytes, [7, 100, 1000]);
    const bad = { ...digest!, crc: (digest!.crc + 1) >>> 0 };
    expect(() => decodePayload(bytes, {}, bad)).toThrow(expect.objectContaining({ code: 'CODEC_INTEGRITY' }));
  });

  it('catches a byte corrupted in transit, in the descriptor or the data', () => {
    const bytes = encodeTensorMap(tensors(500));
    for (const at of [30, bytes.byteLength - 3]) {
      const hurt = Uint8Array.from(bytes);
      hurt[at] = hurt[at]! ^ 0x10;
      const digest = streamed(hurt, [at - 5, at + 5]);
      expect(digest?.crc).not.toBe(headerCrc(hurt));
      expect(() => decodePayload(hurt, {}, digest)).toThrow(expect.objectContaining({ code: 'CODEC_INTEGRITY' }));
    }
  });

  it('is ignored by the decoder for another layout or length, which then computes its own', () => {
    const bytes = encodeTensorMap(tensors(200));
    const digest = streamed(bytes, [50])!;
    const wrong = (change: Partial<PayloadDigest>): PayloadDigest => ({ ...digest, crc: 0, ...change });
    for (const d of [wrong({ length: digest.length + 1 }), wrong({ dataStart: digest.dataStart + 64 }), wrong({ descriptorBytes: digest.descriptorBytes - 1 })]) {
      expect(decodePayload(bytes, {}, d).tensors['a']!.dims).toEqual([1, 200]);
    }
  });

  it('has no digest for a body that stops before the data section', () => {
    const bytes = encodeTensorMap(tensors(10));
    const c = new PayloadChecksum();
    c.update(bytes.subarray(0, 19));
    expect(c.digest()).toBeUndefined();
    c.update(bytes.subarray(19, 25));
    expect(c.digest()).toBeUndefined();
  });
});
