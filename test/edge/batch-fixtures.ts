/** What the batch tests share: a tiny model package with an image pipeline, inputs, and a two-region policy. */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { affineModel } from '../helpers/tiny-onnx.js';

/** A package of y = 2x + 1 on a 1×3×8×8 image tensor: runs in well under a millisecond. */
export async function writeTinyPackage(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'model.onnx'), affineModel('x', 'y', [1, 3, 8, 8], 2, 1));
  const pipeline = { resize: { mode: 'stretch', width: 8, height: 8 }, colorOrder: 'rgb', scale: 1 / 255, layout: 'nchw', dtype: 'float32' };
  await writeFile(join(dir, 'manifest.json'), JSON.stringify({ name: 'tiny', model: 'model.onnx', inputs: { x: { pipeline } }, shapes: { x: [1, 3, 8, 8] } }));
  return dir;
}

/** A distinct 8×8 PNG per `n`. */
export function tinyPng(n: number): Promise<Buffer> {
  return sharp({ create: { width: 8, height: 8, channels: 3, background: { r: n % 256, g: (n * 7) % 256, b: (n * 13) % 256 } } })
    .png()
    .toBuffer();
}

/**
 * EU personal data may be stored only in the EU, Chinese personal data only in China; `eu` and
 * `cn` are the stores' declarations (YAML flow maps).
 */
export function twoRegionPolicy(eu: string, cn: string): string {
  return `version: 1
classes:
  eu-personal:
    process: [{ provider: gcp, regions: ["europe-*"] }]
    store: [{ provider: "*", regions: ["eu-*"] }]
  cn-personal:
    process: [{ provider: gcp, regions: ["europe-*"] }]
    store: [{ provider: "*", regions: ["cn-*"] }]
stores:
  results-eu: ${eu}
  results-cn: ${cn}
`;
}
