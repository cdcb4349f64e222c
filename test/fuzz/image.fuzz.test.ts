/**
 * Fuzzing image decoding (src/preprocess/image.ts: header probing with sharp, then decode,
 * resize and tensor layout), issue #31. Inputs: small valid PNG, JPEG and WebP images made
 * with sharp, then damaged byte by byte, or with their declared dimensions rewritten in the
 * header (PNG IHDR with its CRC fixed, JPEG SOF, WebP VP8) so that the probe believes them:
 * decompression bombs, zero sizes, extreme aspect ratios. Raw pixel buffers of any declared
 * size too. Property: a tensor of the pipeline's shape, or an ImageError (a catalogue code),
 * within the case time limit and the allocation bound.
 */
import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { imageToTensor, PipelineSchema, type PipelineSpec, type PipelineSpecInput } from '../../src/preprocess/index.js';
import { elementCount } from '../../src/tensor/index.js';
import { fuzz, mutate, mutationArb, outcome, runs, testTimeout, type Mutation } from './budget.js';

const MAX_PIXELS = 1 << 20;

const specs: PipelineSpec[] = ([
  { resize: { mode: 'stretch', width: 16, height: 8 }, maxPixels: MAX_PIXELS },
  { resize: { mode: 'pad', width: 12, height: 12 }, colorOrder: 'bgr', layout: 'nhwc', dtype: 'float16', maxPixels: MAX_PIXELS },
  { resize: { mode: 'shorter-side', size: 8 }, colorOrder: 'gray', dtype: 'uint8', maxPixels: MAX_PIXELS },
  { resize: { mode: 'cover', width: 8, height: 8 }, crop: { width: 4, height: 4 }, scale: 1 / 255, mean: [0.5], std: [0.5], maxPixels: MAX_PIXELS },
  { maxPixels: 4096 },
] satisfies PipelineSpecInput[]).map((s) => PipelineSchema.parse(s));

type Format = 'png' | 'jpeg' | 'webp' | 'png-gray' | 'png-rgba';
const images = new Map<Format, Uint8Array>();

/** Header edits that keep the file parseable: the declared dimensions. */
type HeaderEdit = { width: number; height: number } | null;

const sideArb = fc.oneof(fc.integer({ min: 0, max: 64 }), fc.constantFrom(1, 16_383, 16_384, 65_535, 100_000, 2 ** 31 - 1, 2 ** 32 - 1));

function setDims(format: Format, input: Uint8Array, edit: HeaderEdit): Uint8Array {
  if (!edit) return input;
  const b = Buffer.from(input);
  if (format.startsWith('png')) {
    // Signature (8), IHDR length (4) and type (4), then width and height; the CRC covers type + data.
    b.writeUInt32BE(edit.width >>> 0, 16);
    b.writeUInt32BE(edit.height >>> 0, 20);
    b.writeUInt32BE(crc32(b.subarray(12, 29)) >>> 0, 29);
  } else if (format === 'jpeg') {
    for (let i = 2; i + 9 < b.byteLength; i++) {
      if (b[i] === 0xff && (b[i + 1] === 0xc0 || b[i + 1] === 0xc2)) {
        b.writeUInt16BE(edit.height & 0xffff, i + 5);
        b.writeUInt16BE(edit.width & 0xffff, i + 7);
        break;
      }
    }
  } else if (b.toString('latin1', 12, 16) === 'VP8 ') {
    b.writeUInt16LE(edit.width & 0x3fff, 26);
    b.writeUInt16LE(edit.height & 0x3fff, 28);
  }
  return b;
}

interface EncodedCase {
  format: Format;
  header: HeaderEdit;
  bytes: Mutation[];
  spec: number;
}

const encodedArb: fc.Arbitrary<EncodedCase> = fc.record({
  format: fc.constantFrom<Format>('png', 'jpeg', 'webp', 'png-gray', 'png-rgba'),
  header: fc.oneof(fc.constant(null), fc.record({ width: sideArb, height: sideArb })),
  bytes: fc.oneof({ weight: 1, arbitrary: fc.constant([] as Mutation[]) }, { weight: 2, arbitrary: fc.array(mutationArb, { minLength: 1, maxLength: 3 }) }),
  spec: fc.nat({ max: specs.length - 1 }),
});

/** The tensor must have the pipeline's shape when the pipeline fixes one. */
function checkShape(dims: readonly number[], spec: PipelineSpec): void {
  expect(dims.length).toBe(4);
  expect(elementCount(dims)).toBeGreaterThan(0);
  const r = spec.resize;
  if (spec.crop) expect([...dims].sort()).toEqual(expect.arrayContaining([spec.crop.width, spec.crop.height]));
  else if (r && r.mode !== 'shorter-side') expect(dims).toEqual(expect.arrayContaining([r.width, r.height]));
}

describe('fuzz: image decoding', () => {
  beforeAll(async () => {
    const pixels = Buffer.from(Array.from({ length: 8 * 6 * 4 }, (_, i) => (i * 37) & 0xff));
    const rgba = sharp(pixels, { raw: { width: 8, height: 6, channels: 4 } });
    images.set('png', await rgba.clone().removeAlpha().png().toBuffer());
    images.set('png-rgba', await rgba.clone().png().toBuffer());
    images.set('png-gray', await rgba.clone().toColourspace('b-w').png().toBuffer());
    images.set('jpeg', await rgba.clone().removeAlpha().jpeg().toBuffer());
    images.set('webp', await rgba.clone().removeAlpha().webp().toBuffer());
  });

  const n = runs(40, 0.5);
  it('encoded images, damaged and with rewritten header dimensions', { timeout: testTimeout(n) }, async () => {
    await fuzz('image/encoded', encodedArb, (c) => {
      const spec = specs[c.spec]!;
      const bytes = mutate(setDims(c.format, images.get(c.format)!, c.header), c.bytes);
      return outcome(async () => checkShape((await imageToTensor(bytes, spec)).dims, spec));
    }, { runs: n, examples: [{ format: 'png', header: null, bytes: [], spec: 0 }] });
  });

  it('raw pixel buffers of any declared size', { timeout: testTimeout(n) }, async () => {
    const arb = fc.record({
      width: fc.oneof({ weight: 4, arbitrary: sideArb }, { weight: 1, arbitrary: fc.constantFrom(-1, 0.5, NaN) }),
      height: fc.oneof({ weight: 4, arbitrary: sideArb }, { weight: 1, arbitrary: fc.constantFrom(-1, 0.5, NaN) }),
      channels: fc.constantFrom(0, 1, 2, 3, 4, 5),
      length: fc.oneof(fc.constant('exact' as const), fc.nat({ max: 512 })),
      spec: fc.nat({ max: specs.length - 1 }),
    });
    await fuzz('image/raw', arb, (c) => {
      const spec = specs[c.spec]!;
      const exact = c.width * c.height * c.channels;
      const length = c.length === 'exact' ? (Number.isSafeInteger(exact) && exact >= 0 && exact <= 4096 ? exact : 0) : c.length;
      const pixels = new Uint8Array(length).map((_, i) => i & 0xff);
      return outcome(async () => checkShape((await imageToTensor({ pixels, width: c.width, height: c.height, channels: c.channels }, spec)).dims, spec));
    }, { runs: n });
  });
});
