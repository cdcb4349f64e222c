/**
 * CPU amplification (issue #31, item 7): an image's side length and aspect ratio are bounded
 * from its header, before anything is decoded, and the decode counts against the request's
 * deadline and abort.
 */
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { imageToTensor } from '../../src/preprocess/image.js';
import { PipelineSchema, type PipelineSpecInput } from '../../src/preprocess/schema.js';
import { greyPng } from '../helpers/png.js';

const spec = (input: PipelineSpecInput = {}) => PipelineSchema.parse({ resize: { mode: 'stretch', width: 192, height: 48 }, ...input });

describe('image side and aspect limits', () => {
  // 31 KB in the issue; 16 KB here at zlib level 9. It passes maxPixels (16 M < 40 M).
  const line = greyPng(16_000_000, 1);

  it('refuses a 1×16,000,000 PNG from its header: side over maxSide, or aspect over maxAspectRatio', async () => {
    expect(line.byteLength).toBeLessThan(64 * 1024);
    await expect(imageToTensor(line, spec())).rejects.toMatchObject({ name: 'ImageError', code: 'IMAGE_TOO_LARGE', details: { width: 16_000_000, height: 1, maxSide: 16384 } });
    await expect(imageToTensor(line, spec({ maxSide: 16_000_000 }))).rejects.toMatchObject({ code: 'IMAGE_ASPECT_RATIO', details: { maxAspectRatio: 100 } });
  });

  it('bounds the aspect ratio either way round, and raw pixels as encoded images', async () => {
    await expect(imageToTensor(greyPng(1, 16_000, false), spec())).rejects.toMatchObject({ code: 'IMAGE_ASPECT_RATIO', details: { width: 1, height: 16_000 } });
    await expect(imageToTensor(greyPng(20_000, 20, false), spec())).rejects.toMatchObject({ code: 'IMAGE_TOO_LARGE' });
    const raw = { pixels: new Uint8Array(202 * 2), width: 202, height: 2, channels: 1 };
    await expect(imageToTensor(raw, spec())).rejects.toMatchObject({ code: 'IMAGE_ASPECT_RATIO' });
    await expect(imageToTensor(raw, spec({ maxAspectRatio: 101 }))).resolves.toMatchObject({ dims: [1, 3, 48, 192] });
  });

  it('keeps what real pipelines take: a whole OCR text line (4800×48) and a 16384-pixel side', async () => {
    const ocrLine = await sharp({ create: { width: 4800, height: 48, channels: 3, background: '#fff' } }).png().toBuffer();
    await expect(imageToTensor(ocrLine, spec())).resolves.toMatchObject({ dims: [1, 3, 48, 192] });
    await expect(imageToTensor(greyPng(16_384, 200), spec())).resolves.toMatchObject({ dims: [1, 3, 48, 192] });
  });

  it('validates the limits in the pipeline spec', () => {
    expect(PipelineSchema.parse({})).toMatchObject({ maxSide: 16384, maxAspectRatio: 100 });
    expect(PipelineSchema.safeParse({ maxSide: 0 }).success).toBe(false);
    expect(PipelineSchema.safeParse({ maxAspectRatio: 0.5 }).success).toBe(false);
  });
});

describe('the decode and the request', () => {
  const ended = (by: string) => Object.assign(new Error(`ended by ${by}`), { by });
  // Within every limit once they are raised: a decode that takes the CPU a while (seconds in the issue).
  const wide = greyPng(2_000_000, 1);
  const lax = spec({ maxSide: 2_000_000, maxAspectRatio: 2_000_000 });

  it('does not start a decode once the deadline has passed or the caller aborted', async () => {
    await expect(imageToTensor(wide, lax, { deadline: Date.now() - 1, ended })).rejects.toMatchObject({ by: 'deadline' });
    await expect(imageToTensor(wide, lax, { signal: AbortSignal.abort(new Error('gone')), ended })).rejects.toMatchObject({ by: 'abort' });
  });

  it('ends the wait for a decode at the deadline, with the caller\'s error', async () => {
    // Passed before the decode can finish (or even before it starts, on a busy machine): either way the request ends with the deadline.
    await expect(imageToTensor(wide, lax, { deadline: Date.now() + 5, ended })).rejects.toMatchObject({ by: 'deadline' });
    // Without the caller's mapping, a TimeoutError as AbortSignal.timeout gives.
    await expect(imageToTensor(wide, lax, { deadline: Date.now() - 1 })).rejects.toMatchObject({ name: 'TimeoutError' });
  });
});
