/**
 * Calibration and holdout data for pruning the shipped PP-OCR models: text lines rendered
 * with sharp (SVG text through the system's fonts) upright and turned 180° for the direction
 * classifier, and pages of text lines for the DB detector; plus the two model packages.
 * Calibration and holdout sets differ in strings (disjoint seeds) and partly in fonts.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { ocrModelPath, ppocrDetPipeline } from '../models/ocr-models.js';
import { createPackage } from '../src/package/index.js';
import { mulberry32 } from '../src/util/index.js';

export const CLS_MODEL = 'ch_ppocr_mobile_v2.0_cls_infer.onnx' as const;
export const DET_MODEL = 'ch_PP-OCRv4_det_infer.onnx' as const;


export const CALIBRATION_FONTS = ['DejaVu Sans', 'DejaVu Serif', 'DejaVu Sans Condensed'];
export const HOLDOUT_FONTS = ['DejaVu Sans Mono', 'DejaVu Serif Condensed', 'DejaVu Sans', 'DejaVu Serif'];

const WORDS = [
  'invoice', 'total', 'receipt', 'parcel', 'gate', 'exit', 'Frankfurt', 'Shanghai', 'Ohio', 'order', 'number', 'date', 'amount', 'VAT',
  'customer', 'address', 'street', 'road', 'station', 'platform', 'delivery', 'tracking', 'balance', 'payment', 'card', 'cash', 'change',
  'item', 'price', 'quantity', 'discount', 'subtotal', 'tax', 'phone', 'email', 'office', 'warehouse', 'shelf', 'batch', 'expiry',
];

function escapeXml(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function phrase(rand: () => number): string {
  const words: string[] = [];
  const n = 1 + Math.floor(rand() * 3);
  for (let i = 0; i < n; i++) {
    const r = rand();
    if (r < 0.2) words.push(String(Math.floor(rand() * 100000)));
    else if (r < 0.3) words.push(`${Math.floor(rand() * 1000)}.${String(Math.floor(rand() * 100)).padStart(2, '0')}`);
    else {
      const w = WORDS[Math.floor(rand() * WORDS.length)]!;
      words.push(rand() < 0.3 ? w.toUpperCase() : rand() < 0.5 ? w[0]!.toUpperCase() + w.slice(1) : w);
    }
  }
  return words.join(' ');
}

/** One text line, 192×48, dark on light, turned 180° when `rotated`. */
export async function renderLine(seed: number, fonts: readonly string[], rotated: boolean): Promise<Buffer> {
  const rand = mulberry32(seed);
  const [width, height] = [192, 48];
  const text = phrase(rand);
  const font = fonts[Math.floor(rand() * fonts.length)]!;
  const size = 20 + Math.floor(rand() * 10);
  const bg = 205 + Math.floor(rand() * 50);
  const ink = Math.floor(rand() * 80);
  const weight = rand() < 0.4 ? 'bold' : 'normal';
  const x = 2 + Math.floor(rand() * 10);
  const y = Math.round(height / 2 + size * 0.35 + (rand() - 0.5) * 6);
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><rect width="${width}" height="${height}" fill="rgb(${bg},${bg - 3},${bg - 8})"/>`
    + `<text x="${x}" y="${y}" font-family="${font}" font-size="${size}" font-weight="${weight}" textLength="${Math.min(width - x - 2, text.length * size * 0.6)}" lengthAdjust="spacingAndGlyphs" fill="rgb(${ink},${ink},${ink + 10})">${escapeXml(text)}</text></svg>`;
  let img = sharp(Buffer.from(svg));
  if (rotated) img = sharp(await img.png().toBuffer()).rotate(180);
  return img.png().toBuffer();
}

/** A page of text lines for the detector, `size`×`size`. */
export async function renderPage(seed: number, fonts: readonly string[], size: number): Promise<Buffer> {
  const rand = mulberry32(seed);
  const bg = 215 + Math.floor(rand() * 35);
  const parts = [`<rect width="${size}" height="${size}" fill="rgb(${bg},${bg - 4},${bg - 10})"/>`];
  const lines = 3 + Math.floor(rand() * 5);
  for (let i = 0; i < lines; i++) {
    const font = fonts[Math.floor(rand() * fonts.length)]!;
    const fs = Math.round(size * (0.035 + rand() * 0.035));
    const x = Math.floor(rand() * size * 0.3) + 8;
    const y = Math.round(((i + 1) * size) / (lines + 1) + (rand() - 0.5) * fs);
    const ink = Math.floor(rand() * 70);
    parts.push(`<text x="${x}" y="${y}" font-family="${font}" font-size="${fs}" fill="rgb(${ink},${ink},${ink + 15})">${escapeXml(phrase(rand))}</text>`);
  }
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}">${parts.join('')}</svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

/**
 * Writes `count` classifier lines into `dir` (half upright, half turned) and a labels file
 * `labels.txt` of `NAME LABEL` lines; returns its path.
 */
export async function writeLines(dir: string, count: number, seed: number, fonts: readonly string[]): Promise<string> {
  await mkdir(dir, { recursive: true });
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const rotated = i % 2 === 1;
    const name = `line-${String(i).padStart(4, '0')}.png`;
    await writeFile(join(dir, name), await renderLine(seed + i, fonts, rotated));
    lines.push(`${name} ${rotated ? '180' : '0'}`);
  }
  const labels = join(dir, 'labels.txt');
  await writeFile(labels, `${lines.join('\n')}\n`);
  return labels;
}

export async function writePages(dir: string, count: number, seed: number, fonts: readonly string[], size: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < count; i++) await writeFile(join(dir, `page-${String(i).padStart(4, '0')}.png`), await renderPage(seed + i, fonts, size));
}

/** The direction classifier as a package: 3×48×192, (x/255 − 0.5)/0.5, labels 0 and 180. */
export async function createClsPackage(dir: string): Promise<string> {
  const labels = join(dir, '..', 'cls-labels.txt');
  await mkdir(join(dir, '..'), { recursive: true });
  await writeFile(labels, '0\n180\n');
  await createPackage({
    model: ocrModelPath(CLS_MODEL),
    out: dir,
    labels,
    pipeline: { resize: { mode: 'stretch', width: 192, height: 48 }, colorOrder: 'bgr', scale: 1 / 255, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
    shapes: { x: [1, 3, 48, 192] },
  });
  return dir;
}

/** The PP-OCRv4 DB detector as a package at `size`×`size`. */
export async function createDetPackage(dir: string, size: number): Promise<string> {
  await createPackage({
    model: ocrModelPath(DET_MODEL),
    out: dir,
    pipeline: ppocrDetPipeline(size),
    shapes: { x: [1, 3, size, size] },
  });
  return dir;
}

