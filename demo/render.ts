/**
 * Renders the demo's input images: words of text on a light, slightly noisy background,
 * with the true word boxes returned so that the detector's boxes can be checked. sharp
 * rasterises SVG text with the system's fonts; without any font installed, words are
 * drawn as glyph-like blocks so the detector still has text-like strokes to find.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { mulberry32 } from '../src/util/index.js';

export interface RenderedImage {
  png: Uint8Array;
  words: Array<{ text: string; x0: number; y0: number; x1: number; y1: number }>;
}

const WORDS = ['TANDEM', 'edge', 'cloud', 'split', 'Frankfurt', 'Shanghai', 'Ohio', 'MQTT', 'ONNX', 'invoice', 'TOTAL 42.00', 'receipt', 'parcel 7731', 'EXIT', 'gate B12'];

let fontsChecked: Promise<boolean> | undefined;

/** Whether fontconfig lists at least one font (sharp/librsvg needs one to draw text). */
export function hasFonts(): Promise<boolean> {
  fontsChecked ??= promisify(execFile)('fc-list', [], { timeout: 5000 }).then(
    ({ stdout }) => stdout.trim().length > 0,
    () => false,
  );
  return fontsChecked;
}


function escapeXml(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Renders one image of `width`×`height` with 1–3 lines of words. */
export async function renderTextImage(seed: number, width = 320, height = 320, fonts?: boolean): Promise<RenderedImage> {
  const rand = mulberry32(seed);
  const useFonts = fonts ?? (await hasFonts());
  const lines = 1 + Math.floor(rand() * 3);
  const parts: string[] = [];
  const words: RenderedImage['words'] = [];
  const bg = 225 + Math.floor(rand() * 25);
  parts.push(`<rect width="${width}" height="${height}" fill="rgb(${bg},${bg - 5},${bg - 12})"/>`);
  for (let i = 0; i < lines; i++) {
    const text = WORDS[Math.floor(rand() * WORDS.length)] ?? 'TEXT';
    const size = 22 + Math.floor(rand() * 14);
    const x = 12 + Math.floor(rand() * 40);
    const y = Math.round(((i + 1) * height) / (lines + 1) + size / 3);
    const ink = Math.floor(rand() * 60);
    const charW = size * 0.62;
    const estW = Math.min(width - x - 4, Math.round(text.length * charW));
    words.push({ text, x0: x, y0: y - Math.round(size * 0.8), x1: x + estW, y1: y + Math.round(size * 0.2) });
    if (useFonts) {
      parts.push(`<text x="${x}" y="${y}" font-family="DejaVu Sans, sans-serif" font-size="${size}" font-weight="bold" fill="rgb(${ink},${ink},${ink + 20})">${escapeXml(text)}</text>`);
    } else {
      // Glyph-like blocks: one narrow bar pair per character.
      for (let c = 0; c < text.length && x + (c + 1) * charW < width; c++) {
        if (text[c] === ' ') continue;
        const gx = x + c * charW;
        parts.push(`<rect x="${gx.toFixed(1)}" y="${y - size * 0.7}" width="${(charW * 0.25).toFixed(1)}" height="${size * 0.7}" fill="rgb(${ink},${ink},${ink})"/>`);
        parts.push(`<rect x="${(gx + charW * 0.45).toFixed(1)}" y="${y - size * 0.7}" width="${(charW * 0.25).toFixed(1)}" height="${size * 0.7}" fill="rgb(${ink},${ink},${ink})"/>`);
        parts.push(`<rect x="${gx.toFixed(1)}" y="${y - size * 0.4}" width="${(charW * 0.7).toFixed(1)}" height="${(size * 0.12).toFixed(1)}" fill="rgb(${ink},${ink},${ink})"/>`);
      }
    }
  }
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${parts.join('')}</svg>`;
  const png = await sharp(Buffer.from(svg)).png({ compressionLevel: 6 }).toBuffer();
  return { png: new Uint8Array(png), words };
}
