/**
 * What pruning changed, measured rather than estimated: FLOPs and parameters of the pruned
 * region, the bytes crossing the cut, and the region's run time with onnxruntime-node on this
 * machine (one intra-op thread, the median of timed runs after warm-up).
 */
import { performance } from 'node:perf_hooks';
import ort from 'onnxruntime-node';
import { analyzeModel, splitModel, type ModelAnalysis } from '../graph/index.js';
import { flopsByNode } from '../graph/flops.js';
import type { OnnxModel } from '../graph/model.js';
import { encodeModel, tensorDims } from '../graph/onnx.js';
import type { Tensor } from '../tensor/index.js';
import { toOrt } from './session.js';

export interface RegionSize {
  flops: number;
  params: number;
  /** Bytes crossing the cut (undefined for the whole model). */
  cutBytes?: number;
}

export function measureRegion(model: OnnxModel, analysis: ModelAnalysis, region: ReadonlySet<number>, cut: string | undefined): RegionSize {
  const flops = flopsByNode(model, analysis.tensorShapes);
  let total = 0;
  const seen = new Set<string>();
  let params = 0;
  for (const index of region) {
    total += flops[index]!;
    for (const name of model.nodes[index]!.reads) {
      if (seen.has(name) || !model.weights.has(name)) continue;
      seen.add(name);
      // Initializers, or `Constant` outputs (how paddle2onnx stores the PP-OCR weights).
      const producer = model.producer.get(name);
      const constant = producer === undefined ? undefined : model.nodes[producer]!.proto.attribute?.find((a) => a.name === 'value')?.t;
      const tensor = model.initializers.get(name) ?? constant;
      if (tensor && (tensor.dataType === 1 || tensor.dataType === 10)) params += tensorDims(tensor).reduce((a, b) => a * b, 1);
    }
  }
  const cutInfo = cut === undefined ? undefined : analysis.cuts.find((c) => c.id === cut);
  return { flops: total, params, ...(cutInfo ? { cutBytes: cutInfo.bytes } : {}) };
}

/**
 * Median milliseconds of each model's region (the head up to `cut`, else the whole model) on
 * one thread. The models' runs alternate, so a load change on the machine falls on both alike.
 */
export async function timeRegions(models: readonly OnnxModel[], cut: string | undefined, input: Tensor, runs: number, shapes: Record<string, number[]>): Promise<number[]> {
  const sessions: ort.InferenceSession[] = [];
  try {
    for (const model of models) {
      const bytes = cut === undefined ? encodeModel(model.proto) : (await splitModel(model, cut, await analyzeModel(model, shapes))).head;
      sessions.push(await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all', logSeverityLevel: 3 }));
    }
    const times = sessions.map(() => [] as number[]);
    for (let i = 0; i < runs + 2; i++) {
      for (const [k, session] of sessions.entries()) {
        const feeds = { [session.inputNames[0]!]: toOrt(input) };
        const start = performance.now();
        await session.run(feeds);
        if (i >= 2) times[k]!.push(performance.now() - start);
      }
    }
    return times.map((t) => t.sort((a, b) => a - b)[Math.floor(t.length / 2)]!);
  } finally {
    for (const session of sessions) await session.release();
  }
}
