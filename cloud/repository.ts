/**
 * The packages the service serves, and a bounded, least-recently-used cache of their loaded
 * partitions (whole models and tails) keyed by model and cut.
 */
import { relative, sep } from 'node:path';
import type * as ort from 'onnxruntime-node';
import { variantPackages, type ModelPackage } from '../src/package/index.js';
import type { EdgePool } from '../src/runtime/index.js';
import { CloudError } from './errors.js';
import { servedModelBytes, type ServedModel } from './model-bytes.js';
import { loadPoolPartition, loadSessionPartition, type LoadedPartition, type PartitionId } from './partitions.js';

/** Extracts the tail of `model` after cut `cut` (ONNX bytes in, ONNX bytes out). */
export type TailExtractor = (model: Uint8Array, cut: string) => Promise<Uint8Array>;

/** A cut the graph toolkit does not know is the client's mistake (404), anything else is ours. */
function isUnknownCut(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 'GRAPH_UNKNOWN_CUT';
}

/**
 * Partitions (whole models and tails) kept loaded by default. A model has as many tails as
 * cuts (PP-OCRv4 det: 407), and any caller can name any cut: unbounded, distinct cuts alone
 * grew a service by ≈ 9 MB each, refused requests included.
 */
export const DEFAULT_MAX_PARTITIONS = 32;

/** Holds the packages and a bounded, least-recently-used cache of sessions keyed by model and cut. */
export class ModelRepository {
  private readonly packages = new Map<string, ModelPackage>();
  // The packages given, without their variants: what `preload` loads.
  private readonly given: readonly string[];
  // In use order, least recent first: a hit moves its entry to the end.
  private readonly partitions = new Map<string, Promise<LoadedPartition>>();
  // Loads that have finished: a request for one of them waits for nothing and needs no timer.
  private readonly settled = new WeakSet<Promise<LoadedPartition>>();
  private readonly bytes = new Map<string, Promise<ServedModel>>();
  private readonly sessions = new Set<ort.InferenceSession>();
  // What an evicted partition does to let go of its session once no run uses it.
  private readonly retire = new WeakMap<LoadedPartition, () => void>();

  /**
   * `pool`: run every partition in these worker threads (sessions created there, inputs and
   * outputs moved across) instead of on the calling thread, whose event loop then stays free
   * while a run lasts; `sessionOptions` then do not apply (the pool's own threading does).
   */
  constructor(
    packages: readonly ModelPackage[],
    private readonly extractTail?: TailExtractor,
    private readonly sessionOptions: ort.InferenceSession.SessionOptions = {},
    private readonly pool?: EdgePool,
    private readonly maxPartitions = DEFAULT_MAX_PARTITIONS,
  ) {
    if (!Number.isSafeInteger(maxPartitions) || maxPartitions < 1) throw new CloudError(500, 'CLOUD_OPTION', `maxPartitions must be a positive integer, got ${maxPartitions}`, { retryable: false });
    for (const p of packages) this.packages.set(p.name, p);
    this.given = [...this.packages.keys()];
    // A package's variants are served as packages of their own, `NAME@ID` (their tails too).
    for (const p of packages) for (const v of variantPackages(p)) if (!this.packages.has(v.name)) this.packages.set(v.name, v);
  }

  /** Whether `loading` (from {@link partition}) has loaded, so that awaiting it waits for nothing. */
  isLoaded(loading: Promise<LoadedPartition>): boolean {
    return this.settled.has(loading);
  }

  /** Partitions loaded (or loading) now. */
  get loaded(): number {
    return this.partitions.size;
  }

  names(): string[] {
    return [...this.packages.keys()];
  }

  has(name: string): boolean {
    return this.packages.has(name);
  }

  /** The package served as `name` (its manifest's pipelines: encoded offload). */
  package(name: string): ModelPackage | undefined {
    return this.packages.get(name);
  }

  /** The SHA-256 of the model's bytes as served, read and checked once (the pipeline fingerprint's). */
  async modelSha256(name: string): Promise<string> {
    const pkg = this.packages.get(name);
    if (!pkg) throw new CloudError(404, 'CLOUD_MODEL_NOT_FOUND', `no model named "${name}"`, { details: { model: name } });
    // No hash from the check when external data was inlined: the model file's, as the manifest lists it.
    const sha256 = (await this.modelBytes(pkg)).sha256 ?? pkg.sha256[relative(pkg.dir, pkg.modelPath).split(sep).join('/')];
    if (sha256 === undefined) throw new CloudError(400, 'CLOUD_PIPELINE_MISMATCH', `model "${name}": its manifest lists no SHA-256 for the model file, so no image pipeline fingerprint can be matched; send tensors`, { details: { model: name } });
    return sha256;
  }

  /** The model bytes, read once and checked (see {@link servedModelBytes}); a failed read is read again next time. */
  private modelBytes(pkg: ModelPackage): Promise<ServedModel> {
    let p = this.bytes.get(pkg.name);
    if (!p) {
      p = servedModelBytes(pkg);
      p.catch(() => this.bytes.delete(pkg.name));
      this.bytes.set(pkg.name, p);
    }
    return p;
  }

  /** The whole model (`cut` null) or its tail after `cut`, loaded on first use. */
  partition(model: string, cut: string | null): Promise<LoadedPartition> {
    const pkg = this.packages.get(model);
    if (!pkg) return Promise.reject(new CloudError(404, 'CLOUD_MODEL_NOT_FOUND', `no model named "${model}" (serving: ${this.names().join(', ') || 'none'})`, { details: { model } }));
    const key = `${model}#${cut ?? ''}`;
    const hit = this.partitions.get(key);
    if (hit) {
      this.partitions.delete(key);
      this.partitions.set(key, hit);
      return hit;
    }
    const p = this.load(pkg, cut);
    // A failed load is not cached, so a fixed file or a transient error can recover.
    p.then(() => this.settled.add(p), () => {
      if (this.partitions.get(key) === p) this.partitions.delete(key);
    });
    this.partitions.set(key, p);
    while (this.partitions.size > this.maxPartitions) {
      const [oldest, victim] = this.partitions.entries().next().value as [string, Promise<LoadedPartition>];
      this.partitions.delete(oldest);
      victim.then((part) => this.retire.get(part)?.(), () => undefined);
    }
    return p;
  }

  /**
   * Loads the whole model of each package given (not their variants, not tails), one after
   * another, up to the cache's bound; resolves to how many loaded. A model that fails is
   * reported to `failed` and left to its first request, which tries again.
   */
  async preload(failed: (model: string, error: unknown) => void): Promise<number> {
    let loaded = 0;
    for (const name of this.given.slice(0, this.maxPartitions)) {
      try {
        await this.partition(name, null);
        loaded += 1;
      } catch (error) {
        failed(name, error);
      }
    }
    return loaded;
  }

  private async load(pkg: ModelPackage, cut: string | null): Promise<LoadedPartition> {
    const { bytes, sha256 } = await this.modelBytes(pkg);
    let onnx = bytes;
    if (cut !== null) {
      if (!this.extractTail) throw new CloudError(501, 'CLOUD_SPLIT_UNAVAILABLE', 'this service cannot extract tails (no graph toolkit)', { retryable: false });
      try {
        onnx = await this.extractTail(bytes, cut);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        if (isUnknownCut(error)) throw new CloudError(404, 'CLOUD_CUT_NOT_FOUND', `model "${pkg.name}" has no cut "${cut}": ${message}`, { cause: error, details: { model: pkg.name, cut } });
        throw new CloudError(500, 'CLOUD_SPLIT_FAILED', `model "${pkg.name}" could not be split at ${cut}: ${message}`, { cause: error, retryable: false, details: { model: pkg.name, cut } });
      }
    }
    const id: PartitionId = { model: pkg.name, cut, label: cut ? `${pkg.name} (tail after ${cut})` : pkg.name };
    // The whole model's hash is the check's own, when it hashed these very bytes.
    if (this.pool) return loadPoolPartition(id, onnx, this.pool, cut === null ? sha256 : undefined);
    const { partition, retire } = await loadSessionPartition(id, onnx, this.sessionOptions, this.sessions);
    this.retire.set(partition, retire);
    return partition;
  }

  /** Releases every session (a pool's workers are its owner's to close). */
  async close(): Promise<void> {
    await Promise.allSettled([...this.partitions.values()]);
    this.partitions.clear();
    const sessions = [...this.sessions];
    this.sessions.clear();
    await Promise.allSettled(sessions.map((s) => s.release()));
  }
}
