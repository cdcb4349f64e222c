/**
 * The sweep's inputs: real encoded images, rendered with sharp, so that an offload sends the
 * JPEG as a camera's would and every other plan decodes it with the package's pipeline. A
 * photo-like texture for the ImageNet-style classifiers, a page of text for the PP-OCR
 * detector. Repeatable from a seed; nothing is downloaded.
 */
import sharp from 'sharp';
import type { PipelineSpecInput } from '../../src/preprocess/index.js';
import { mulberry32 } from '../../src/util/index.js';

/** JPEG quality of every rendered image: a phone camera's default range. */
const QUALITY = 85;

/**
 * A `size`×`size` photo-like JPEG: a smooth colour field, a few soft-edged blobs, and sensor-like
 * noise, so that it compresses like a photograph (tens of KB at 224 px), not like flat art.
 */
export async function photoJpeg(seed: number, size: number): Promise<Uint8Array> {
  const rand = mulberry32(seed);
  const base = [0, 1, 2].map(() => [40 + rand() * 170, (rand() - 0.5) * 120, (rand() - 0.5) * 120]);
  const blobs = Array.from({ length: 6 }, () => ({ x: rand() * size, y: rand() * size, r: size * (0.08 + rand() * 0.2), c: [0, 1, 2].map(() => rand() * 255) }));
  const pixels = Buffer.alloc(size * size * 3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const u = x / size;
      const v = y / size;
      let w = 0;
      let mixed = [0, 0, 0];
      for (const b of blobs) {
        const d = Math.hypot(x - b.x, y - b.y) / b.r;
        const k = d < 1 ? 1 - d * d : 0;
        w = Math.max(w, k);
        mixed = mixed.map((m, i) => m + k * (b.c[i] as number));
      }
      for (let ch = 0; ch < 3; ch++) {
        const [c0, cu, cv] = base[ch] as [number, number, number];
        const field = c0 + cu * u + cv * v;
        const value = field * (1 - Math.min(1, w)) + (mixed[ch] as number) * Math.min(1, w) / Math.max(1, w * 2) + (rand() - 0.5) * 24;
        pixels[(y * size + x) * 3 + ch] = Math.max(0, Math.min(255, Math.round(value)));
      }
    }
  }
  return new Uint8Array(await sharp(pixels, { raw: { width: size, height: size, channels: 3 } }).jpeg({ quality: QUALITY }).toBuffer());
}

/** A `size`×`size` JPEG page of dark text lines on a light, slightly uneven background. */
export async function textPageJpeg(seed: number, size: number): Promise<Uint8Array> {
  const rand = mulberry32(seed);
  const words = ['Tandem', 'edge cloud', 'split 2048', 'residency', 'invoice 7731', 'TOTAL 42.00', 'Frankfurt', 'gate B12'];
  const fonts = ['DejaVu Sans', 'DejaVu Serif', 'DejaVu Sans Mono'];
  const lines = Array.from({ length: 5 }, (_, i) => {
    const font = 14 + Math.floor(rand() * 12);
    const text = `${words[Math.floor(rand() * words.length)]} ${words[Math.floor(rand() * words.length)]}`;
    return `<text x="${8 + Math.floor(rand() * 30)}" y="${Math.round(((i + 1) * size) / 6)}" font-family="${fonts[i % fonts.length]}" font-size="${font}" fill="rgb(20,20,30)">${text}</text>`;
  }).join('');
  const bg = 225 + Math.floor(rand() * 25);
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}"><rect width="${size}" height="${size}" fill="rgb(${bg},${bg - 4},${bg - 10})"/>${lines}</svg>`;
  return new Uint8Array(await sharp(Buffer.from(svg)).jpeg({ quality: QUALITY }).toBuffer());
}

/** The ImageNet classifiers' preprocessing at `size`×`size`: RGB, /255, ImageNet mean and std, NCHW float32. */
export function imagenetPipeline(size: number): PipelineSpecInput {
  return {
    resize: { mode: 'stretch', width: size, height: size },
    colorOrder: 'rgb',
    scale: 1 / 255,
    mean: [0.485, 0.456, 0.406],
    std: [0.229, 0.224, 0.225],
    layout: 'nchw',
    dtype: 'float32',
  };
}
