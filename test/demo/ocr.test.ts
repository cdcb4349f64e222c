/**
 * The demo's image rendering and DB text-box post-processing, checked with the real
 * PP-OCRv4 detector in a bare onnxruntime session: the boxes found cover the words drawn.
 */
import ort from 'onnxruntime-node';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { renderTextImage, hasFonts } from '../../demo/render.js';
import { textBoxes } from '../../src/preprocess/index.js';
import { ocrModelPath } from '../../models/ocr-models.js';

const DET = ocrModelPath('ch_PP-OCRv4_det_infer.onnx');

async function toTensor(png: Uint8Array): Promise<Float32Array> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const hw = info.width * info.height;
  const out = new Float32Array(3 * hw);
  const mean = [0.485, 0.456, 0.406];
  const std = [0.229, 0.224, 0.225];
  for (let i = 0; i < hw; i++) for (let c = 0; c < 3; c++) out[c * hw + i] = ((data[i * 3 + c] ?? 0) / 255 - (mean[c] ?? 0)) / (std[c] ?? 1);
  return out;
}

function overlaps(a: { x0: number; y0: number; x1: number; y1: number }, b: { x0: number; y0: number; x1: number; y1: number }): boolean {
  return a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;
}

describe('DB text boxes', () => {
  it('finds one box per connected region, scores it and unclips it', () => {
    const w = 40, h = 20;
    const data = new Float32Array(w * h);
    for (let y = 5; y < 10; y++) for (let x = 4; x < 20; x++) data[y * w + x] = 0.9;
    for (let y = 12; y < 16; y++) for (let x = 25; x < 35; x++) data[y * w + x] = 0.5; // below boxThreshold
    data[0] = 0.99; // a speck: below minSize
    const boxes = textBoxes({ dtype: 'float32', dims: [1, 1, h, w], data });
    expect(boxes).toHaveLength(1);
    const [b] = boxes;
    expect(b?.score).toBeCloseTo(0.9, 5);
    // 16×5 region grown by 16·5·1.5 / (2·21) ≈ 2.86 px on every side.
    expect(b).toMatchObject({ x0: 1, y0: 2, x1: 23, y1: 13 });
    expect(textBoxes({ dtype: 'float32', dims: [1, 1, h, w], data }, { boxThreshold: 0.4 })).toHaveLength(2);
    expect(() => textBoxes({ dtype: 'float32', dims: [2, 1, h, w / 2], data })).toThrow(/\[1, 1, H, W\]/);
  });

  it('finds the rendered words with the real PP-OCRv4 detector', async () => {
    const session = await ort.InferenceSession.create(DET, { intraOpNumThreads: 1 });
    let found = 0;
    let drawn = 0;
    for (const seed of [1, 2, 3]) {
      const img = await renderTextImage(seed, 320, 320);
      const x = new ort.Tensor('float32', await toTensor(img.png), [1, 3, 320, 320]);
      const out = await session.run({ x });
      const map = out['sigmoid_0.tmp_0'];
      if (!map) throw new Error('no output');
      const boxes = textBoxes({ dtype: 'float32', dims: map.dims, data: map.data as Float32Array });
      expect(boxes.length).toBeGreaterThan(0);
      for (const b of boxes) expect(b.score).toBeGreaterThanOrEqual(0.6);
      for (const word of img.words) {
        drawn++;
        if (boxes.some((b) => overlaps(b, word))) found++;
      }
      // Nothing is found where nothing was drawn: every box touches some word.
      for (const b of boxes) expect(img.words.some((w) => overlaps(b, w))).toBe(true);
    }
    expect(found).toBe(drawn);
    await session.release();
  });

  it('draws glyph-like blocks when no font is available, which the detector still sees', async () => {
    expect(typeof (await hasFonts())).toBe('boolean');
    const img = await renderTextImage(5, 320, 320, false);
    const session = await ort.InferenceSession.create(DET, { intraOpNumThreads: 1 });
    const out = await session.run({ x: new ort.Tensor('float32', await toTensor(img.png), [1, 3, 320, 320]) });
    const map = out['sigmoid_0.tmp_0'];
    const boxes = textBoxes({ dtype: 'float32', dims: map!.dims, data: map!.data as Float32Array });
    expect(boxes.length).toBeGreaterThan(0);
    await session.release();
  });
});
