/**
 * What int8 cut compression costs the real PP-OCRv4 text detector: split at a mid cut, the
 * tail run on the int8-compressed cut tensors finds the same text boxes as on float32 ones
 * (box F1 ≥ 0.98) on rendered text pages.
 */
import * as ort from 'onnxruntime-node';
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { decodePayload, encodeTensorMapWithReport } from '../../src/codec/index.js';
import { analyzeModel, parseModel, splitModel } from '../../src/graph/index.js';
import { boxF1, imageToTensor, PipelineSchema, textBoxes, type TextBox } from '../../src/preprocess/index.js';
import type { TensorMap } from '../../src/tensor/index.js';
import { PPOCR_DET, runOnnx } from '../helpers/models.js';

const SIZE = 320;
const PIPELINE = PipelineSchema.parse({ resize: { mode: 'stretch', width: SIZE, height: SIZE }, scale: 1 / 255, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });

/** A page of text lines in several fonts, sizes and strings. */
async function page(seed: number): Promise<Uint8Array> {
  const fonts = ['DejaVu Sans', 'DejaVu Serif', 'DejaVu Sans Mono'];
  const words = ['Tandem', 'edge cloud', 'split 2048', 'residency', 'PP-OCR det', 'int8 cut', 'Frankfurt', 'Shanghai 07'];
  const lines = Array.from({ length: 5 }, (_, i) => {
    const size = 18 + ((seed * 7 + i * 5) % 14);
    const text = `${words[(seed + i) % words.length]} ${words[(seed * 3 + i + 1) % words.length]}`;
    return `<text x="${12 + ((seed + i) % 3) * 20}" y="${40 + i * 58}" font-family="${fonts[(seed + i) % fonts.length]}" font-size="${size}" fill="black">${text}</text>`;
  }).join('');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${SIZE}" height="${SIZE}"><rect width="${SIZE}" height="${SIZE}" fill="white"/>${lines}</svg>`;
  return new Uint8Array(await sharp(Buffer.from(svg)).jpeg({ quality: 90 }).toBuffer());
}

const toOrt = (map: TensorMap): Record<string, ort.Tensor> => Object.fromEntries(Object.entries(map).map(([k, t]) => [k, new ort.Tensor(t.dtype as 'float32', t.data as Float32Array, [...t.dims])]));
const fromOrt = (map: Record<string, ort.Tensor>): TensorMap => Object.fromEntries(Object.entries(map).map(([k, t]) => [k, { dtype: 'float32' as const, dims: [...t.dims], data: t.data as Float32Array }]));

describe('int8 cut compression on the PP-OCR detector', () => {
  it('keeps box F1 ≥ 0.98 against float32 at a mid cut', async () => {
    const model = await parseModel(new Uint8Array(await readFile(PPOCR_DET)));
    const analysis = await analyzeModel(model, { x: [1, 3, SIZE, SIZE] });
    // A mid cut: the fewest bytes among cuts with 40–60% of the FLOPs in the head.
    const mid = analysis.cuts.filter((c) => c.headFlops >= 0.4 * analysis.totalFlops && c.headFlops <= 0.6 * analysis.totalFlops);
    const cut = mid.reduce((a, b) => (b.bytes < a.bytes ? b : a));
    const { head, tail, manifest } = await splitModel(model, cut.id, analysis);
    const [hs, ts] = await Promise.all([ort.InferenceSession.create(head), ort.InferenceSession.create(tail)]);
    let reference: TextBox[] = [];
    let found: TextBox[] = [];
    let pairs = 0;
    let f1Sum = 0;
    try {
      for (let seed = 0; seed < 4; seed++) {
        const x = await imageToTensor(await page(seed), PIPELINE);
        const cutTensors = fromOrt(await hs.run(toOrt({ x }), [...manifest.head.outputs]));
        const feeds = Object.fromEntries(manifest.tail.inputs.map((n) => [n, cutTensors[n] ?? x]));
        const encoded = encodeTensorMapWithReport(feeds, { compression: 'int8' });
        expect(Object.values(encoded.compression).every((r) => r.method === 'int8')).toBe(true);
        const decoded = decodePayload(encoded.bytes).tensors;
        const [fp32, int8] = [fromOrt(await ts.run(toOrt(feeds))), fromOrt(await ts.run(toOrt(decoded)))];
        const a = textBoxes(Object.values(fp32)[0]!);
        const b = textBoxes(Object.values(int8)[0]!);
        reference = reference.concat(a);
        found = found.concat(b);
        f1Sum += boxF1(a, b);
        pairs++;
      }
    } finally {
      await Promise.all([hs.release(), ts.release()]);
    }
    // Real boxes were found: a text page, not an empty map.
    expect(reference.length).toBeGreaterThanOrEqual(4 * 3);
    expect(f1Sum / pairs).toBeGreaterThanOrEqual(0.98);
    // The whole model agrees with the float32 split (the split itself is exact).
    const whole = fromOrt(await runOnnx(PPOCR_DET, toOrt({ x: await imageToTensor(await page(0), PIPELINE) })));
    expect(textBoxes(Object.values(whole)[0]!).length).toBeGreaterThan(0);
    expect(found.length).toBeGreaterThan(0);
  }, 120_000);
});
