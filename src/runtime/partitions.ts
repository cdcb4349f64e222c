/**
 * Head and tail partitions for split plans, made on demand with the graph toolkit and
 * registered with the edge pool by content hash.
 */
import { splitModel, type OnnxModel } from '../graph/index.js';
import { variantModelName } from '../package/index.js';
import type { ModelTarget, Partition, PartitionSource } from './executor.js';
import { modelFromBytes } from './model-source.js';
import { loadPackageModel, type EdgePackage } from './package.js';

/**
 * Splits the package's model on first use of each cut. The caller caches the results. The
 * model is read (and checked against the package, external weights included) once, on the
 * first split; a read that fails, a file changed since start-up among others, is tried again
 * on the next, so a restored file splits again.
 */
export function graphPartitions(pkg: EdgePackage): PartitionSource {
  let model: Promise<OnnxModel> | undefined;
  return async (cut: string): Promise<Partition> => {
    const loading = (model ??= loadPackageModel(pkg));
    loading.catch(() => {
      if (model === loading) model = undefined;
    });
    const split = await splitModel(await loading, cut);
    return {
      cut,
      head: modelFromBytes(split.head),
      tail: modelFromBytes(split.tail),
      headOutputs: [...split.manifest.head.outputs],
      tailInputs: [...split.manifest.tail.inputs],
    };
  };
}

/** Each cut is split once per runtime, on its first use. */
export function cachedPartitions(source: PartitionSource): PartitionSource {
  const cache = new Map<string, Promise<Partition>>();
  return (cut) => {
    let pending = cache.get(cut);
    if (!pending) {
      pending = source(cut);
      cache.set(cut, pending);
      pending.catch(() => cache.delete(cut));
    }
    return pending;
  };
}

/** The package's variants as the executor runs them: served as `MODEL@ID`, split from their own model. */
export function variantTargets(pkg: EdgePackage, modelName: string): Map<string, ModelTarget> {
  return new Map((pkg.variants ?? []).map((v) => [v.id, { model: v.model, partitions: cachedPartitions(graphPartitions(v)), modelName: variantModelName(modelName, v.id) }]));
}
