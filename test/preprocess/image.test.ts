import { deflateSync } from 'node:zlib';
import { mkdtemp, rm, writeFile, copyFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { imageToTensor, type RawImage } from '../../src/preprocess/image.js';
import { postprocess, fromFloat16Bits } from '../../src/preprocess/postprocess.js';
import { PipelineSchema, type PipelineSpecInput } from '../../src/preprocess/schema.js';
import { createRuntime } from '../../src/index.js';
import { CLS_MODEL, maxAbsDiff } from '../helpers/runtime-fixtures.js';

const spec = (input: PipelineSpecInput) => PipelineSchema.parse(input);

/** A raw RGB image whose pixel (x, y) is (10x + y, 100 + x, 200 − y). */
function gradient(width: number, height: number): RawImage {
  const pixels = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      pixels[i] = 10 * x + y;
      pixels[i + 1] = 100 + x;
      pixels[i + 2] = 200 - y;
    }
  }
  return { pixels, width, height, channels: 3 };
}

function encode(img: RawImage) {
  return sharp(img.pixels, { raw: { width: img.width, height: img.height, channels: img.channels as 3 } });
}

/** A PNG whose header claims `width`×`height` but whose data is a few bytes: a decompression bomb's header. */
function bombPng(width: number, height: number): Uint8Array {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf: Buffer) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff]! ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, sum]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // greyscale
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.alloc(1024))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

describe('image pipelines', () => {
  it('lays out, normalises and reorders channels exactly (raw input, NCHW, mean/std)', async () => {
    const img = gradient(3, 2);
    const t = await imageToTensor(img, spec({ scale: 1 / 255, mean: [0.5, 0.5, 0.5], std: [0.25, 0.5, 1] }));
    expect(t.dtype).toBe('float32');
    expect(t.dims).toEqual([1, 3, 2, 3]);
    const at = (c: number, y: number, x: number) => (t.data as Float32Array)[c * 6 + y * 3 + x]!;
    expect(at(0, 1, 2)).toBeCloseTo((21 / 255 - 0.5) / 0.25, 5);
    expect(at(1, 0, 1)).toBeCloseTo((101 / 255 - 0.5) / 0.5, 5);
    expect(at(2, 1, 0)).toBeCloseTo(199 / 255 - 0.5, 5);
  });

  it('produces BGR, NHWC, uint8 and float16 on request', async () => {
    const img = gradient(3, 2);
    const t = await imageToTensor(img, spec({ colorOrder: 'bgr', layout: 'nhwc', dtype: 'uint8' }));
    expect(t.dims).toEqual([1, 2, 3, 3]);
    const px = Array.from((t.data as Uint8Array).subarray((1 * 3 + 2) * 3, (1 * 3 + 2) * 3 + 3));
    expect(px).toEqual([199, 102, 21]);
    const h = await imageToTensor(img, spec({ dtype: 'float16', scale: 1 / 255 }));
    expect(h.dtype).toBe('float16');
    expect(fromFloat16Bits((h.data as Uint16Array)[0]!)).toBeCloseTo(0, 3);
    expect(fromFloat16Bits((h.data as Uint16Array)[6]!)).toBeCloseTo(100 / 255, 3);
    const g = await imageToTensor(img, spec({ colorOrder: 'gray' }));
    expect(g.dims).toEqual([1, 1, 2, 3]);
  });

  it('resizes with each mode: stretch, pad (letterbox), cover and shorter-side, then crops', async () => {
    const img = gradient(8, 4);
    expect((await imageToTensor(img, spec({ resize: { mode: 'stretch', width: 5, height: 5 } }))).dims).toEqual([1, 3, 5, 5]);
    const padded = await imageToTensor(img, spec({ resize: { mode: 'pad', width: 8, height: 8, padColor: [255, 0, 0] }, dtype: 'uint8' }));
    expect(padded.dims).toEqual([1, 3, 8, 8]);
    const red = padded.data as Uint8Array;
    expect([red[0], red[64], red[128]]).toEqual([255, 0, 0]); // top row is padding
    expect(red[7 * 8]).toBe(255); // bottom row too
    expect(red[64 + 3 * 8]).toBeGreaterThan(90); // the image sits in rows 2..5
    expect((await imageToTensor(img, spec({ resize: { mode: 'cover', width: 4, height: 4 } }))).dims).toEqual([1, 3, 4, 4]);
    expect((await imageToTensor(img, spec({ resize: { mode: 'shorter-side', size: 2 } }))).dims).toEqual([1, 3, 2, 4]);
    const centre = await imageToTensor(img, spec({ crop: { width: 2, height: 2 }, dtype: 'uint8' }));
    expect(centre.dims).toEqual([1, 3, 2, 2]);
    expect((centre.data as Uint8Array)[0]).toBe(10 * 3 + 1);
    const explicit = await imageToTensor(img, spec({ crop: { left: 5, top: 2, width: 3, height: 2 }, dtype: 'uint8' }));
    expect((explicit.data as Uint8Array)[0]).toBe(10 * 5 + 2);
    await expect(imageToTensor(img, spec({ crop: { width: 9, height: 2 } }))).rejects.toMatchObject({ code: 'IMAGE_CROP' });
  });

  it('decodes JPEG, PNG and WebP to the same tensor shape (lossless PNG exactly)', async () => {
    const img = gradient(16, 12);
    const s = spec({ resize: { mode: 'stretch', width: 8, height: 6 }, scale: 1 / 255 });
    const fromRaw = await imageToTensor(img, s);
    for (const bytes of [await encode(img).png().toBuffer(), await encode(img).jpeg({ quality: 95 }).toBuffer(), await encode(img).webp({ quality: 95 }).toBuffer()]) {
      const t = await imageToTensor(bytes, s);
      expect(t.dims).toEqual([1, 3, 6, 8]);
      expect(maxAbsDiff({ x: t }, { x: fromRaw })).toBeLessThan(0.1);
    }
    const png = await imageToTensor(await encode(img).png().toBuffer(), s);
    expect(maxAbsDiff({ x: png }, { x: fromRaw })).toBeLessThan(1e-6);
  });

  describe('bad images get typed errors', () => {
    const s = spec({ resize: { mode: 'stretch', width: 8, height: 8 } });
    it('empty', async () => {
      await expect(imageToTensor(new Uint8Array(0), s)).rejects.toMatchObject({ name: 'ImageError', code: 'IMAGE_EMPTY' });
    });
    it('corrupt bytes and a truncated JPEG', async () => {
      await expect(imageToTensor(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]), s)).rejects.toMatchObject({ code: 'IMAGE_CORRUPT' });
      const jpeg = await encode(gradient(64, 64)).jpeg().toBuffer();
      await expect(imageToTensor(jpeg.subarray(0, jpeg.length >> 1), s)).rejects.toMatchObject({ code: 'IMAGE_CORRUPT' });
    });
    it('zero-sized', async () => {
      await expect(imageToTensor({ pixels: new Uint8Array(0), width: 0, height: 4, channels: 3 }, s)).rejects.toMatchObject({ code: 'IMAGE_ZERO_SIZE' });
      await expect(imageToTensor({ pixels: new Uint8Array(0), width: 4, height: 0, channels: 3 }, s)).rejects.toMatchObject({ code: 'IMAGE_ZERO_SIZE' });
    });
    it('wrong channel count or a buffer that does not match it', async () => {
      await expect(imageToTensor({ pixels: new Uint8Array(32), width: 4, height: 4, channels: 2 }, s)).rejects.toMatchObject({ code: 'IMAGE_CHANNELS' });
      await expect(imageToTensor({ pixels: new Uint8Array(80), width: 4, height: 4, channels: 5 }, s)).rejects.toMatchObject({ code: 'IMAGE_CHANNELS' });
      await expect(imageToTensor({ pixels: new Uint8Array(47), width: 4, height: 4, channels: 3 }, s)).rejects.toMatchObject({ code: 'IMAGE_RAW_LENGTH' });
    });
    it('decompression bombs over the pixel limit, refused before decoding', async () => {
      const bomb = bombPng(60_000, 60_000);
      expect(bomb.byteLength).toBeLessThan(2048);
      await expect(imageToTensor(bomb, s)).rejects.toMatchObject({ code: 'IMAGE_TOO_LARGE', details: { width: 60_000, height: 60_000 } });
      const small = await encode(gradient(100, 100)).png().toBuffer();
      await expect(imageToTensor(small, spec({ maxPixels: 9_999 }))).rejects.toMatchObject({ code: 'IMAGE_TOO_LARGE' });
      await expect(imageToTensor({ ...gradient(100, 100) }, spec({ maxPixels: 9_999 }))).rejects.toMatchObject({ code: 'IMAGE_TOO_LARGE' });
    });
    it('formats other than JPEG, PNG and WebP', async () => {
      const gif = await encode(gradient(8, 8)).gif().toBuffer();
      await expect(imageToTensor(gif, s)).rejects.toMatchObject({ code: 'IMAGE_FORMAT' });
      const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8"/></svg>');
      await expect(imageToTensor(svg, s)).rejects.toMatchObject({ code: 'IMAGE_FORMAT' });
    });
  });

  it('rejects invalid pipeline specs', () => {
    expect(PipelineSchema.safeParse({ dtype: 'uint8', scale: 2 }).success).toBe(false);
    expect(PipelineSchema.safeParse({ mean: [1, 2] }).success).toBe(false);
    expect(PipelineSchema.safeParse({ resize: { mode: 'pad', width: 0, height: 4 } }).success).toBe(false);
    expect(PipelineSchema.safeParse({ colour: 'rgb' }).success).toBe(false);
  });
});

describe('post-processing', () => {
  it('softmax and top-k with labels, per batch row', () => {
    const out = { y: { dtype: 'float32' as const, dims: [2, 3], data: new Float32Array([1, 3, 2, 0, 0, 5]) } };
    const top = postprocess(out, { kind: 'classification', softmax: true, topK: 2 }, ['a', 'b', 'c'])!;
    expect(top[0]!.map((c) => c.label)).toEqual(['b', 'c']);
    expect(top[0]![0]!.score).toBeCloseTo(Math.exp(3) / (Math.exp(1) + Math.exp(3) + Math.exp(2)), 6);
    expect(top[1]![0]).toMatchObject({ index: 2, label: 'c' });
    expect(postprocess(out, { kind: 'raw' })).toBeUndefined();
    expect(() => postprocess(out, { kind: 'classification', output: 'nope', softmax: false, topK: 1 })).toThrow(/nope/);
  });
});

describe('model packages with pipelines, through the runtime', () => {
  it('turns a JPEG into the model input the manifest declares and ranks the classes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tandem-pkg-'));
    try {
      const pkg = join(dir, 'cls');
      await mkdir(pkg);
      await copyFile(CLS_MODEL, join(pkg, 'model.onnx'));
      const pipeline = { resize: { mode: 'stretch', width: 192, height: 48 }, colorOrder: 'bgr', scale: 1 / 255, mean: [0.5], std: [0.5] };
      await writeFile(join(pkg, 'manifest.json'), JSON.stringify({
        name: 'ppocr-cls', inputs: { x: { pipeline } }, postprocess: { kind: 'classification', softmax: false, topK: 2, labels: ['0°', '180°'] }, owner: 'ignored',
      }));
      const jpeg = await encode(gradient(200, 50)).jpeg().toBuffer();
      const runtime = await createRuntime({ model: pkg, workers: 1 });
      try {
        expect(runtime.model.name).toBe('ppocr-cls');
        const viaImage = await runtime.infer(jpeg);
        const tensor = await imageToTensor(jpeg, PipelineSchema.parse(pipeline));
        const viaTensor = await runtime.infer({ x: tensor });
        expect(maxAbsDiff(viaImage.outputs, viaTensor.outputs)).toBeLessThan(1e-6);
        expect(viaImage.classes?.[0]?.map((c) => c.label).sort()).toEqual(['0°', '180°']);
        expect(viaImage.timing.preprocessMs).toBeGreaterThan(0);
        await expect(runtime.infer(new Uint8Array(0))).rejects.toMatchObject({ code: 'IMAGE_EMPTY' });
      } finally {
        await runtime.close();
      }
      await writeFile(join(pkg, 'manifest.json'), JSON.stringify({ inputs: { x: { pipeline: { layout: 'chw' } } } }));
      await expect(createRuntime({ model: pkg })).rejects.toMatchObject({ code: 'RUNTIME_MANIFEST' });
      await writeFile(join(pkg, 'manifest.json'), JSON.stringify({ sha256: { 'model.onnx': '0'.repeat(64) } }));
      await expect(createRuntime({ model: pkg })).rejects.toMatchObject({ code: 'RUNTIME_PACKAGE_SHA256' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
