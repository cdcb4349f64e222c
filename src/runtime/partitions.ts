/**
 * Head and tail partitions for split plans, made on demand with the graph toolkit and
 * registered with the edge pool by content hash.
 */
import { loadModel, splitModel, type OnnxModel } from '../graph/index.js';
import type { Partition, PartitionSource } from './executor.js';
import { modelFromBytes } from './model-source.js';

/** Splits the model at `modelPath` on first use of each cut. The caller caches the results. */
export function graphPartitions(modelPath: string): PartitionSource {
  let model: Promise<OnnxModel> | undefined;
  return async (cut: string): Promise<Partition> => {
    model ??= loadModel(modelPath);
    const split = await splitModel(await model, cut);
    return {
      cut,
      head: modelFromBytes(split.head),
      tail: modelFromBytes(split.tail),
      headOutputs: [...split.manifest.head.outputs],
      tailInputs: [...split.manifest.tail.inputs],
    };
  };
}
