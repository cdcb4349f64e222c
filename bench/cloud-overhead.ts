/**
 * The cloud service's overhead over a bare onnxruntime-node run of the same partition at
 * batch 1: median client-observed round trip through `tandem cloud serve` on loopback
 * (Tandem msgpack fast path: encode, HTTP, decode, queue, run, encode, HTTP, decode) over
 * the median `session.run` of a session on the same bytes. Runs are paired (one bare, one
 * through the service, order alternating) and the ratio reported is the median of the
 * per-pair ratios, so that background load on a shared machine hits both sides alike.
 * The client is node:http with a keep-alive agent, the leanest Node client, so that the
 * figure is the service's overhead rather than a client library's.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { pino } from 'pino';
import { threadingSessionOptions, type OrtThreading } from '../cloud/models.js';
import { startCloudService } from '../cloud/server.js';
import { decodePayload, encodeTensorMap } from '../src/codec/index.js';
import { ValidationError } from '../src/errors.js';
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
  /** The onnxruntime threading both sides ran with ("default" = onnxruntime's). */
  intraOpNumThreads: number | 'default';
  spinning: boolean | 'default';
  bareMs: number;
  serviceMs: number;
  serverComputeMs: number;
  overheadMs: number;
  /** Median over pairs of (service round trip / bare run). */
  overheadRatio: number;
  /** Median service time over median bare time (unpaired). */
  medianRatio: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] ?? 0 : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
};

export async function runCloudOverheadBench(subject: OverheadSubject, options: { iterations?: number; warmup?: number } & OrtThreading = {}): Promise<CloudOverheadResult> {
  const iterations = options.iterations ?? 40;
  const warmup = options.warmup ?? 5;
  const sessionOptions = threadingSessionOptions(options);
  const dir = mkdtempSync(join(tmpdir(), 'tandem-overhead-'));
  writeFileSync(join(dir, 'subject.onnx'), subject.onnx);
  const service = await startCloudService({ models: dir, port: 0, host: '127.0.0.1', logger: process.env.LOGINFO ? pino({ level: 'info' }, pino.destination({ dest: '/dev/null', sync: true })) : pino({ level: 'silent' }), credentials: {}, sessionOptions });
  const session = await ort.InferenceSession.create(subject.onnx, sessionOptions);
  try {
    const feeds: Record<string, ort.Tensor> = {};
    for (const [k, t] of Object.entries(subject.inputs)) feeds[k] = new ort.Tensor(t.dtype, t.data as Float32Array, t.dims as number[]);
    // Options rather than a URL string: node would parse the string again on every request.
    const target = { host: '127.0.0.1', port: service.port, path: '/v1/models/subject/infer', method: 'POST' };
    // Nagle off: node:http clients leave it on, and on loopback it held the body's last
    // segment until the previous one was acknowledged (≈ 0.2 ms of every round trip).
    // (Agents hand their options to net.connect, which takes `noDelay`.)
    const agentOptions: { keepAlive: boolean; maxSockets: number; noDelay: boolean } = { keepAlive: true, maxSockets: 1, noDelay: true };
    const agent = new Agent(agentOptions);
    const viaService = (): Promise<{ ms: number; compute: number }> => new Promise((resolve, reject) => {
      const t0 = performance.now();
      const body = encodeTensorMap(subject.inputs);
      const req = request({ ...target, agent, headers: { 'content-type': 'application/x-msgpack', 'content-length': body.byteLength } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const bytes = Buffer.concat(chunks);
          if (res.statusCode !== 200) {
            reject(new Error(`service answered ${res.statusCode ?? 0}: ${bytes.toString('utf8')}`));
            return;
          }
          decodePayload(bytes);
          resolve({ ms: performance.now() - t0, compute: Number(res.headers['x-tandem-compute-ms']) });
        });
      });
      req.on('error', reject);
      req.end(body);
    });
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
    const ratios: number[] = [];
    for (let i = 0; i < iterations; i++) {
      // Alternate the order so neither side always runs with warm caches.
      let b = i % 2 === 0 ? await bare() : 0;
      const s = await viaService();
      if (i % 2 === 1) b = await bare();
      bareTimes.push(b);
      serviceTimes.push(s.ms);
      computeTimes.push(s.compute);
      ratios.push(s.ms / b);
    }
    const bareMs = median(bareTimes);
    const serviceMs = median(serviceTimes);
    agent.destroy();
    return {
      subject: subject.label, iterations,
      intraOpNumThreads: options.intraOpNumThreads ?? 'default', spinning: options.spinning ?? 'default',
      bareMs, serviceMs, serverComputeMs: median(computeTimes), overheadMs: serviceMs - bareMs,
      overheadRatio: median(ratios), medianRatio: serviceMs / bareMs,
    };
  } finally {
    await session.release();
    await service.drain();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The default subject: the tail of the reference MobileNetV2 (width 1, 224×224, 1000
 * classes) after the single-tensor cut nearest a quarter of its FLOPs (c16), so the service
 * runs about three quarters of the network, fed with what the head really produces.
 * `cutId` picks another cut of the same model instead (e.g. c5, 93 % of the FLOPs remote).
 */
export async function defaultOverheadSubject(cutId?: string): Promise<OverheadSubject> {
  const { generateReferenceModel } = await import('../models/generate.js');
  const { analyzeModel, parseModel, splitModel } = await import('../src/graph/index.js');
  const bytes = generateReferenceModel({ arch: 'mobilenetv2', seed: 1 });
  const model = await parseModel(bytes);
  const analysis = await analyzeModel(model);
  const total = Math.max(...analysis.cuts.map((c) => c.headFlops));
  const candidates = analysis.cuts.slice(1, -1).filter((c) => c.tensors.length === 1);
  const cut = cutId === undefined
    ? candidates.reduce((best, c) => (Math.abs(c.headFlops - total / 4) < Math.abs(best.headFlops - total / 4) ? c : best))
    : analysis.cuts.slice(0, -1).find((c) => c.id === cutId);
  if (!cut) throw new ValidationError('BENCH_CUT', `the reference MobileNetV2 has no cut "${cutId ?? ''}" with a tail (c0 … ${analysis.cuts.at(-2)?.id ?? ''})`);
  const { head, tail, manifest } = await splitModel(model, cut.id, analysis);
  const input = analysis.inputs[0];
  if (!input) throw new Error('the reference model has no input');
  const n = input.shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.sin(i * 0.37) * 0.5;
  const headSession = await ort.InferenceSession.create(head);
  const headOut = await headSession.run({ [input.name]: new ort.Tensor('float32', data, input.shape) });
  await headSession.release();
  const inputs: TensorMap = {};
  for (const name of manifest.tail.inputs) {
    const t = headOut[name];
    if (name === input.name) inputs[name] = { dtype: 'float32', dims: input.shape, data };
    else if (t) inputs[name] = { dtype: 'float32', dims: [...t.dims], data: t.data as Float32Array };
  }
  const cutBytes = Object.values(inputs).reduce((a, t) => a + t.data.byteLength, 0);
  return { label: `MobileNetV2 (224, width 1) tail after ${cut.id} (${cutBytes} B in, ${((1 - cut.headFlops / total) * 100).toFixed(0)}% of FLOPs), batch 1`, onnx: tail, inputs };
}
