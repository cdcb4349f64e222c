/**
 * Fuzzing the tensor wire format's decoder (src/codec/format.ts), issue #31: random bytes,
 * byte mutations of valid payloads (with the checksum recomputed so that they get past the
 * integrity check), and structure-aware edits of the descriptor re-framed with a valid CRC.
 * Property: a result whose size is within the limits, or a CodecError; nothing else.
 */
import fc from 'fast-check';
import { Packr, Unpackr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { CodecError, decodePayload, encodeTensorMap, type CodecLimits, type Compression } from '../../src/codec/index.js';
import { assertTensor, elementCount } from '../../src/tensor/index.js';
import { crc32 } from '../../src/util/crc32.js';
import { applyEdits, fuzz, mutate, mutationArb, outcomeSync, runs, testTimeout, treeEditArb, type Outcome } from './budget.js';
import { tensorMapArb } from './tensors.js';

/** Small limits, so that the "too large" paths are reachable by small inputs. */
const LIMITS: Partial<CodecLimits> = { maxBytes: 1 << 20, maxDescriptorBytes: 4096, maxTensors: 8, maxRank: 6, maxElements: 4096, maxTotalElements: 8192 };

const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

/** A version-1 frame around any descriptor bytes and data, with a valid checksum. */
function frame(descriptor: Uint8Array, data: Uint8Array): Uint8Array {
  const d = descriptor.byteLength;
  const pad = (64 - ((20 + d + 2 + 5) % 64)) % 64;
  const out = Buffer.alloc(20 + d + 2 + pad + 5 + data.byteLength);
  out.set([0x95, 0xc4, 12, 0x54, 0x4e, 0x44, 0x4d, 1], 0);
  out.writeUInt32LE(d, 11);
  out[15] = 0xce;
  out.set(descriptor, 20);
  let p = 20 + d;
  out[p++] = 0xc4;
  out[p++] = pad;
  p += pad;
  out[p++] = 0xc6;
  out.writeUInt32BE(data.byteLength, p);
  out.set(data, p + 4);
  out.writeUInt32BE(crc32(data, crc32(descriptor)), 16);
  return out;
}

/** Recomputes the checksum of a (mutated) payload whose layout still parses; else leaves it. */
function fixCrc(bytes: Uint8Array): Uint8Array {
  if (bytes.byteLength < 20) return bytes;
  const b = Buffer.from(bytes);
  const d = b.readUInt32LE(11);
  const p = 20 + d;
  if (p + 2 > b.byteLength) return b;
  const q = p + 2 + (b[p + 1] ?? 0);
  if (q + 5 > b.byteLength) return b;
  const data = b.subarray(q + 5);
  b.writeUInt32BE(crc32(data, crc32(b.subarray(20, p))), 16);
  return b;
}

/** Splits a payload into its descriptor (decoded) and data section. */
function parts(bytes: Uint8Array): { descriptor: unknown; data: Uint8Array } {
  const b = Buffer.from(bytes);
  const d = b.readUInt32LE(11);
  const p = 20 + d;
  const q = p + 2 + (b[p + 1] ?? 0);
  return { descriptor: unpackr.unpack(b.subarray(20, p)), data: b.subarray(q + 5) };
}

/** Decodes and holds the result to the limits; returns the outcome. */
function decodeChecked(bytes: Uint8Array): Outcome {
  return outcomeSync(() => {
    try {
      const decoded = decodePayload(bytes, LIMITS);
      let total = 0;
      for (const [name, t] of Object.entries(decoded.tensors)) {
        assertTensor(name, t);
        expect(t.dims.length).toBeLessThanOrEqual(LIMITS.maxRank!);
        total += elementCount(t.dims);
      }
      expect(total).toBeLessThanOrEqual(LIMITS.maxTotalElements!);
    } catch (error) {
      // The codec's refusals are CodecErrors specifically, not just any TandemError.
      if (error instanceof Error && 'code' in error && !(error instanceof CodecError)) throw new Error(`decodePayload threw ${error.name} (${String(error.code)}), not a CodecError`, { cause: error });
      throw error;
    }
  });
}

const compressionArb: fc.Arbitrary<Compression> = fc.constantFrom('none', 'float16', 'int8');

const validPayloadArb = fc
  .tuple(tensorMapArb(), compressionArb, fc.option(fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ maxLength: 6 }), { maxKeys: 3 }), { nil: undefined }))
  .map(([tensors, compression, meta]) => encodeTensorMap(tensors, { compression, ...(meta ? { meta } : {}) }));

describe('fuzz: tensor payload decoder', () => {
  const n = runs(120);
  it('random bytes, with and without the magic prefix', { timeout: testTimeout(n) }, async () => {
    const prefix = Uint8Array.from([0x95, 0xc4, 12, 0x54, 0x4e, 0x44, 0x4d, 1]);
    // Raw bytes; the magic then random bytes; or a well-formed frame around a random
    // descriptor (garbage for msgpackr) and random data.
    const arb = fc.oneof(
      fc.uint8Array({ maxLength: 256 }),
      fc.uint8Array({ maxLength: 256 }).map((rest) => fixCrc(Buffer.concat([prefix, rest]))),
      fc.tuple(fc.uint8Array({ maxLength: 128 }), fc.uint8Array({ maxLength: 128 })).map(([d, data]) => frame(d, data)),
    );
    await fuzz('codec/random-bytes', arb, (bytes) => decodeChecked(bytes), { runs: n });
  });

  it('byte mutations of valid payloads, checksum recomputed', { timeout: testTimeout(n) }, async () => {
    const arb = fc.tuple(validPayloadArb, fc.array(mutationArb, { minLength: 1, maxLength: 4 }), fc.boolean());
    await fuzz('codec/mutated-bytes', arb, ([payload, mutations, recrc]) => {
      const bytes = mutate(payload, mutations);
      return decodeChecked(recrc ? fixCrc(bytes) : bytes);
    }, { runs: n });
  });

  it('structure-aware edits of the descriptor, re-framed with a valid checksum', { timeout: testTimeout(n) }, async () => {
    const arb = fc.tuple(validPayloadArb, fc.array(treeEditArb, { minLength: 1, maxLength: 3 }));
    await fuzz('codec/descriptor-edits', arb, ([payload, edits]) => {
      const { descriptor, data } = parts(payload);
      const edited = applyEdits(descriptor, edits);
      const out = decodeChecked(frame(packr.pack(edited), data));
      // An unedited descriptor still decodes: the generator produces the valid case too.
      if (edits.every((e) => e.kind === 'keep')) expect(out).toEqual({ ok: true });
      return out;
    }, { runs: n });
  });
});
