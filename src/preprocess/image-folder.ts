/**
 * A folder of images as model inputs: what calibration and holdout sets are (`tandem prune`,
 * `tandem profile --calib`). Files are taken in name order, so runs repeat.
 */
import { readdir, readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import type { Tensor } from '../tensor/index.js';
import { ImageError } from './errors.js';
import { imageToTensor } from './image.js';
import type { PipelineSpec } from './schema.js';

/** The extensions of the encoded formats the pipeline decodes. */
export const IMAGE_EXTENSIONS: ReadonlySet<string> = new Set(['.jpg', '.jpeg', '.png', '.webp']);

/** The image files directly in `dir`, by name; rejects with IMAGE_FOLDER when it cannot be read. */
export async function imageFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    throw new ImageError('IMAGE_FOLDER', `cannot read the image folder ${dir}: ${(error as Error).message}`, { cause: error, details: { dir } });
  }
  return names.filter((n) => IMAGE_EXTENSIONS.has(extname(n).toLowerCase())).sort().map((n) => join(dir, n));
}

/** One image file through the pipeline; the pipeline's refusal names the file. */
export async function imageFileToTensor(file: string, pipeline: PipelineSpec): Promise<Tensor> {
  const bytes = await readFile(file).catch((error: unknown) => {
    throw new ImageError('IMAGE_FOLDER', `cannot read ${file}: ${(error as Error).message}`, { cause: error, details: { file } });
  });
  try {
    return await imageToTensor(bytes, pipeline);
  } catch (error) {
    if (error instanceof ImageError) throw new ImageError(error.code, `${file}: ${error.message}`, { cause: error, details: { file } });
    throw error;
  }
}
