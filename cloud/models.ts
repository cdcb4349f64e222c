/**
 * Model packages served by the cloud service: discovery in a directory, SHA-256 checks
 * against the manifest, and onnxruntime-node sessions for the whole model or any tail,
 * created on first use and cached per model and cut.
 */
import { readFile, readdir, realpath, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, normalize } from 'node:path';
import * as ort from 'onnxruntime-node';
import { z } from 'zod';
import { decodeModel, encodeModel } from '../src/graph/onnx.js';
import { fileSha256, sha256Hex } from '../src/util/sha256.js';
import type { EdgePool, EdgePoolOptions } from '../src/runtime/pool.js';
import type { ModelRef, ValueInfo } from '../src/runtime/protocol.js';
import { spinningOf, spinningSessionOptions } from '../src/runtime/session-options.js';
import { isDType, type DType, type Tensor, type TensorMap } from '../src/tensor.js';
import { CloudError, badRequest, clientClosed } from './errors.js';

const manifestSchema = z.object({
  name: z.string().min(1).optional(),
  model: z.string().min(1).optional(),
  sha256: z.record(z.string(), z.string().regex(/^[0-9a-fA-F]{64}$/)).optional(),
}).passthrough();

export interface ModelPackage {
  name: string;
  /** Path of the ONNX file. */
  path: string;
  /** Expected SHA-256 of the ONNX file, from the manifest. */
  sha256?: string;
  /**
   * Expected SHA-256 of every other file the manifest lists (external weights, labels…), by
   * path relative to the package folder.
   */
  files?: Readonly<Record<string, string>>;
}

/** Extracts the tail of `model` after cut `cut` (ONNX bytes in, ONNX bytes out). */
export type TailExtractor = (model: Uint8Array, cut: string) => Promise<Uint8Array>;

/** A cut the graph toolkit does not know is the client's mistake (404), anything else is ours. */
function isUnknownCut(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /CUT/.test(code);
}

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: (number | string)[];
}

export interface PartitionRunOptions {
  /**
   * The request's own buffers that its input tensors view (its body), which a run in a
   * worker thread may take instead of a copy; the caller must not read them afterwards.
   */
  owned?: readonly ArrayBuffer[];
  /**
   * Epoch ms. In a worker thread, waiting for a free worker and the run itself end there with
   * 504 `CLOUD_DEADLINE` (the worker finishes the run regardless); on the event loop's thread a
   * run, once started, cannot be left.
   */
  deadline?: number;
  /**
   * The client has gone: in a worker thread, a request still waiting for a worker leaves the
   * queue and is never run (499 `CLOUD_CLIENT_CLOSED`); a run already started is finished by
   * its worker, unread. On the event loop's thread a run, once started, cannot be left.
   */
  signal?: AbortSignal;
  /**
   * In a worker thread: called exactly once per `run`, when the run no longer holds a worker
   * (its end there, even after a deadline or the client's leaving ended the wait; at once if it
   * never got one, before `run` settles). Not called on the event loop's thread, where `run`
   * outlasts the run.
   */
  onRunEnd?: () => void;
}

/** One loaded partition (whole model or a tail) ready to run. */
export interface LoadedPartition {
  model: string;
  cut: string | null;
  inputs: TensorInfo[];
  outputs: TensorInfo[];
  run(inputs: TensorMap, options?: PartitionRunOptions): Promise<TensorMap>;
  /**
   * Runs the session alone on checked inputs and resolves to how long `session.run` took
   * where the session lives (this thread or a worker): a benchmark's bare run.
   */
  timeSession(inputs: TensorMap): Promise<number>;
  /**
   * The onnxruntime session behind `run` (benchmarks time it bare); absent where the
   * partition runs in worker threads, whose sessions live there.
   */
  readonly session?: ort.InferenceSession;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** A relative path that stays inside the package folder once normalised. */
function isInsidePackage(path: string): boolean {
  if (path.includes('\\') || path.includes('\0') || isAbsolute(path)) return false;
  const normal = normalize(path);
  return normal !== '.' && normal !== '..' && !normal.startsWith('../');
}

/** Finds every `NAME.onnx` and `NAME/model.onnx` (with optional manifest) in `dir`. */
export async function discoverModels(dir: string): Promise<ModelPackage[]> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (error) {
    throw new CloudError(500, 'CLOUD_MODELS_DIR', `cannot read the model directory ${dir}`, { cause: error, retryable: false });
  }
  const found: ModelPackage[] = [];
  for (const entry of entries.sort()) {
    const full = join(dir, entry);
    const info = await stat(full);
    if (info.isFile() && entry.endsWith('.onnx')) {
      const name = basename(entry, '.onnx');
      if (NAME_RE.test(name)) found.push({ name, path: full });
    } else if (info.isDirectory() && NAME_RE.test(entry)) {
      let manifest: z.infer<typeof manifestSchema> = {};
      const manifestPath = join(full, 'manifest.json');
      const text = await readFile(manifestPath, 'utf8').catch(() => undefined);
      if (text !== undefined) {
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch (error) {
          throw new CloudError(500, 'CLOUD_MANIFEST', `${manifestPath} is not valid JSON`, { cause: error, retryable: false });
        }
        const parsed = manifestSchema.safeParse(json);
        if (!parsed.success) {
          throw new CloudError(500, 'CLOUD_MANIFEST', `${manifestPath}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`, { retryable: false });
        }
        manifest = parsed.data;
      }
      const file = manifest.model ?? 'model.onnx';
      if (file.includes('/') || file.includes('\\') || file.startsWith('.')) {
        throw new CloudError(500, 'CLOUD_MANIFEST', `${manifestPath}: "model" must be a file name inside the package`, { retryable: false });
      }
      const path = join(full, file);
      const exists = await stat(path).then((s) => s.isFile(), () => false);
      if (!exists) continue;
      const checksums: Record<string, string> = {};
      for (const [listed, hex] of Object.entries(manifest.sha256 ?? {})) {
        if (!isInsidePackage(listed)) {
          throw new CloudError(500, 'CLOUD_MANIFEST', `${manifestPath}: sha256 key "${listed}" must be a path inside the package`, { retryable: false });
        }
        const key = normalize(listed);
        const checksum = hex.toLowerCase();
        // Two spellings of one path: only one of their checksums would be checked.
        if (checksums[key] !== undefined && checksums[key] !== checksum) {
          throw new CloudError(500, 'CLOUD_MANIFEST', `${manifestPath}: sha256 lists ${key} twice, with different checksums`, { retryable: false });
        }
        checksums[key] = checksum;
      }
      const { [file]: sha, ...files } = checksums;
      found.push({ name: entry, path, ...(sha ? { sha256: sha } : {}), ...(Object.keys(files).length > 0 ? { files } : {}) });
    }
  }
  return found;
}

const ORT_TYPES: Record<string, DType> = {
  float32: 'float32', float16: 'float16', float64: 'float64', int64: 'int64', int32: 'int32', int16: 'int16', int8: 'int8',
  uint8: 'uint8', uint16: 'uint16', uint32: 'uint32', uint64: 'uint64', bool: 'bool',
};

function tensorInfo(meta: readonly (ort.InferenceSession.ValueMetadata | ValueInfo)[]): TensorInfo[] {
  return meta.map((m) => {
    if (!m.isTensor) return { name: m.name, dtype: 'float32', shape: [] };
    const dtype = ORT_TYPES[m.type] ?? 'float32';
    return { name: m.name, dtype, shape: m.shape.map((d) => (typeof d === 'number' ? d : String(d))) };
  });
}

function toOrt(tensor: Tensor): ort.Tensor {
  return new ort.Tensor(tensor.dtype, tensor.data as ort.Tensor.DataType, tensor.dims as number[]);
}

function fromOrt(t: ort.Tensor): Tensor {
  if (!isDType(t.type)) throw new CloudError(500, 'CLOUD_OUTPUT_DTYPE', `the model produced an unsupported output type ${t.type}`);
  return { dtype: t.type, dims: [...t.dims], data: t.data as Tensor['data'] };
}

function integrityError(pkg: ModelPackage, message: string, cause?: unknown): CloudError {
  return new CloudError(500, 'CLOUD_MODEL_INTEGRITY', `model "${pkg.name}": ${message}`, { retryable: false, ...(cause === undefined ? {} : { cause }) });
}

async function readPackage(pkg: ModelPackage): Promise<Uint8Array> {
  const buf = await readFile(pkg.path);
  const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  if (pkg.sha256 && sha256Hex(bytes) !== pkg.sha256) throw integrityError(pkg, `${pkg.path} does not match the SHA-256 in its manifest`);
  // External data is checked in the very bytes that were inlined: a file hashed first and read
  // again to be inlined could be replaced in between, and run unchecked.
  const inlined = new Map<string, Buffer>();
  let model: Uint8Array | undefined;
  let loadError: unknown;
  try {
    model = await inlineExternalData(pkg, bytes, inlined);
  } catch (error) {
    loadError = error;
  }
  // Checked even when inlining failed: a listed file that does not match says more than the
  // load failure it may have caused.
  const folder = dirname(pkg.path);
  for (const [listed, expected] of Object.entries(pkg.files ?? {})) {
    const path = join(folder, listed);
    let actual: string;
    try {
      const data = inlined.size > 0 ? inlined.get(await realpath(path)) : undefined;
      actual = data ? sha256Hex(data) : await fileSha256(path);
    } catch (error) {
      throw integrityError(pkg, `its manifest lists ${listed}, which cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`, error);
    }
    if (actual !== expected) throw integrityError(pkg, `${path} does not match the SHA-256 in its manifest`);
  }
  if (model === undefined) throw loadError;
  return model;
}

/**
 * Self-contained model bytes. Decoding without a folder fails exactly when some tensor lives
 * in an external file; only then is the model decoded again with its folder and re-encoded,
 * and `inlined` receives each external file read, by real path. Any other decoding failure is
 * left for onnxruntime to report when it loads the bytes.
 */
async function inlineExternalData(pkg: ModelPackage, bytes: Uint8Array, inlined: Map<string, Buffer>): Promise<Uint8Array> {
  try {
    await decodeModel(bytes, pkg.path);
    return bytes;
  } catch (error) {
    if ((error as { code?: unknown }).code !== 'GRAPH_EXTERNAL_DATA_MISSING') return bytes;
  }
  try {
    return encodeModel(await decodeModel(bytes, pkg.path, dirname(pkg.path), inlined));
  } catch (error) {
    // Past 2 GiB protobuf cannot hold the inlined model.
    throw new CloudError(500, 'CLOUD_MODEL_LOAD', `model "${pkg.name}": its external data cannot be loaded: ${error instanceof Error ? error.message : String(error)}`, { cause: error, retryable: false });
  }
}

/** How onnxruntime threads a partition's session. */
export interface OrtThreading {
  /** Intra-op threads (onnxruntime's default: one per physical core). */
  intraOpNumThreads?: number;
  /**
   * Whether idle intra-op threads spin-wait for the next parallel section (onnxruntime's
   * default: yes). Spinning lowers latency on dedicated cores; on cores shared with other
   * work the spinning threads take the CPU that the event loop (and the other processes)
   * need, which is why it can be turned off.
   */
  spinning?: boolean;
}

/** onnxruntime session options for `threading`; unset fields keep onnxruntime's defaults. */
export function threadingSessionOptions(threading: OrtThreading): ort.InferenceSession.SessionOptions {
  return {
    ...(threading.intraOpNumThreads !== undefined ? { intraOpNumThreads: threading.intraOpNumThreads } : {}),
    ...(threading.spinning !== undefined ? spinningSessionOptions(threading.spinning) : {}),
  };
}

/** The worker-pool threading `sessionOptions` asks for, as {@link threadingSessionOptions} writes it. */
export function threadingOf(sessionOptions: ort.InferenceSession.SessionOptions): Pick<EdgePoolOptions, 'intraOpThreads' | 'spinning'> {
  const spinning = spinningOf(sessionOptions);
  return {
    ...(sessionOptions.intraOpNumThreads !== undefined ? { intraOpThreads: sessionOptions.intraOpNumThreads } : {}),
    ...(spinning !== undefined ? { spinning } : {}),
  };
}

/**
 * Checks a request's tensors against the partition's declared inputs (all there, no others,
 * dtypes and static dims) and returns them in the inputs' order, each as `as` makes it.
 */
function pickFeeds<T>(feeds: TensorMap, inputs: readonly TensorInfo[], label: string, as: (t: Tensor) => T): Record<string, T> {
  const picked: Record<string, T> = {};
  for (const info of inputs) {
    const t = feeds[info.name];
    if (!t) throw badRequest('CLOUD_INPUT_MISSING', `${label} needs input "${info.name}" (inputs: ${inputs.map((i) => i.name).join(', ')})`);
    if (t.dtype !== info.dtype) throw badRequest('CLOUD_INPUT_DTYPE', `${label}: input "${info.name}" must be ${info.dtype}, got ${t.dtype}`);
    // An empty declared shape also means "unknown" (tails cut from shape-less graphs); onnxruntime checks those.
    if (info.shape.length > 0 && (info.shape.length !== t.dims.length || info.shape.some((d, i) => typeof d === 'number' && d !== t.dims[i]))) {
      throw badRequest('CLOUD_INPUT_SHAPE', `${label}: input "${info.name}" has shape [${t.dims.join(', ')}] but the model expects [${info.shape.join(', ')}]`);
    }
    picked[info.name] = as(t);
  }
  const extra = Object.keys(feeds).filter((n) => !inputs.some((i) => i.name === n));
  if (extra.length > 0) throw badRequest('CLOUD_INPUT_UNKNOWN', `${label} has no input named ${extra.map((e) => `"${e}"`).join(', ')}`);
  return picked;
}

/** A worker pool's typed failure as the service's: the model's refusal is the client's, a crash is retryable. */
function poolFailure(error: unknown, label: string): CloudError {
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  if (code === 'RUNTIME_EDGE_RUN') return new CloudError(400, 'CLOUD_MODEL_ERROR', `${label} rejected the inputs: ${message}`, { cause: error, retryable: false });
  if (code === 'RUNTIME_WORKER_FAILED') return new CloudError(503, 'CLOUD_WORKER_FAILED', `the worker running ${label} failed; retry: ${message}`, { cause: error, retryable: true });
  if (code === 'RUNTIME_DEADLINE_EXCEEDED') return new CloudError(504, 'CLOUD_DEADLINE', `the request deadline passed while ${label} waited for or ran in a worker thread`, { cause: error, retryable: true });
  if (code === 'RUNTIME_ABORTED') return clientClosed(`while ${label} waited for or ran in a worker thread`, error);
  if (code === 'RUNTIME_CLOSED') return new CloudError(503, 'CLOUD_DRAINING', 'the service is shutting down; retry on another instance', { cause: error, retryable: true });
  return new CloudError(500, 'CLOUD_MODEL_RUN', `${label} could not run: ${message}`, { cause: error, retryable: false });
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
  // In use order, least recent first: a hit moves its entry to the end.
  private readonly partitions = new Map<string, Promise<LoadedPartition>>();
  // Loads that have finished: a request for one of them waits for nothing and needs no timer.
  private readonly settled = new WeakSet<Promise<LoadedPartition>>();
  private readonly bytes = new Map<string, Promise<Uint8Array>>();
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

  /**
   * The model bytes, read once, with every file the manifest lists checked against its
   * SHA-256 and any external data inlined: tails, sessions and workers all take bytes, and
   * bytes cannot point at files beside them.
   */
  private modelBytes(pkg: ModelPackage): Promise<Uint8Array> {
    let p = this.bytes.get(pkg.name);
    if (!p) {
      p = readPackage(pkg);
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

  private async load(pkg: ModelPackage, cut: string | null): Promise<LoadedPartition> {
    const bytes = await this.modelBytes(pkg);
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
    const label = cut ? `${pkg.name} (tail after ${cut})` : pkg.name;
    if (this.pool) return this.loadInPool(this.pool, pkg, cut, onnx, label);
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(onnx, this.sessionOptions);
    } catch (error) {
      throw new CloudError(500, 'CLOUD_MODEL_LOAD', `model "${pkg.name}"${cut ? ` cut ${cut}` : ''} failed to load in onnxruntime`, { cause: error, retryable: false });
    }
    this.sessions.add(session);
    const inputs = tensorInfo(session.inputMetadata);
    const outputs = tensorInfo(session.outputMetadata);
    const toOrtFeeds = (feeds: TensorMap): Record<string, ort.Tensor> => pickFeeds(feeds, inputs, label, toOrt);
    // Runs in progress, and whether the cache has let this partition go: its session is
    // released when both say so, never under a run.
    let running = 0;
    let retired = false;
    const releaseIfDone = (): void => {
      if (!retired || running > 0 || !this.sessions.delete(session)) return;
      session.release().catch(() => undefined);
    };
    const inUse = async <T>(work: () => Promise<T>): Promise<T> => {
      running += 1;
      try {
        return await work();
      } finally {
        running -= 1;
        releaseIfDone();
      }
    };
    const partition: LoadedPartition = {
      model: pkg.name,
      cut,
      inputs,
      outputs,
      session,
      run: async (feeds: TensorMap): Promise<TensorMap> => {
        let ortFeeds: Record<string, ort.Tensor>;
        try {
          ortFeeds = toOrtFeeds(feeds);
        } catch (error) {
          if (error instanceof CloudError) throw error;
          // onnxruntime's own tensor checks (dims it cannot represent): the caller's inputs, as with workers.
          throw new CloudError(400, 'CLOUD_MODEL_ERROR', `${label} cannot take the inputs: ${error instanceof Error ? error.message : String(error)}`, { cause: error, retryable: false });
        }
        const result = await inUse(() => session.run(ortFeeds)).catch((error: unknown) => {
          // Shapes that pass the static check can still be rejected by an operator.
          throw new CloudError(400, 'CLOUD_MODEL_ERROR', `${label} rejected the inputs: ${error instanceof Error ? error.message : String(error)}`, { cause: error, retryable: false });
        });
        const out: TensorMap = {};
        for (const [name, value] of Object.entries(result)) out[name] = fromOrt(value as ort.Tensor);
        return out;
      },
      timeSession: async (feeds: TensorMap): Promise<number> => {
        const ortFeeds = toOrtFeeds(feeds);
        return inUse(async () => {
          const t0 = performance.now();
          await session.run(ortFeeds);
          return performance.now() - t0;
        });
      },
    };
    this.retire.set(partition, () => {
      retired = true;
      releaseIfDone();
    });
    return partition;
  }

  private async loadInPool(pool: EdgePool, pkg: ModelPackage, cut: string | null, onnx: Uint8Array, label: string): Promise<LoadedPartition> {
    // Shared memory: every worker reads the same bytes, and posting them copies nothing.
    const shared = new Uint8Array(new SharedArrayBuffer(onnx.byteLength));
    shared.set(onnx);
    const ref: ModelRef = { sha256: sha256Hex(onnx), bytes: shared };
    let metadata: NonNullable<Awaited<ReturnType<EdgePool['warm']>>['metadata']>;
    try {
      const signature = await pool.warm(ref);
      if (!signature.metadata) throw new Error('the worker reported no input and output metadata');
      metadata = signature.metadata;
    } catch (error) {
      throw new CloudError(500, 'CLOUD_MODEL_LOAD', `model "${pkg.name}"${cut ? ` cut ${cut}` : ''} failed to load in onnxruntime: ${error instanceof Error ? error.message : String(error)}`, { cause: error, retryable: false });
    }
    const inputs = tensorInfo(metadata.inputs);
    const outputs = tensorInfo(metadata.outputs);
    return {
      model: pkg.name,
      cut,
      inputs,
      outputs,
      run: async (feeds: TensorMap, options: PartitionRunOptions = {}): Promise<TensorMap> => {
        let checked: TensorMap;
        try {
          checked = pickFeeds(feeds, inputs, label, (t) => t);
        } catch (error) {
          // Refused before any worker was asked: none is held.
          options.onRunEnd?.();
          throw error;
        }
        try {
          // The body's buffer and input buffers that only these tensors use move to the
          // worker; anything else is copied.
          return (await pool.run(ref, checked, { ...(options.owned ? { move: options.owned } : {}), ...(options.deadline !== undefined ? { deadline: options.deadline } : {}), ...(options.signal ? { signal: options.signal } : {}), ...(options.onRunEnd ? { onRunEnd: options.onRunEnd } : {}) })).outputs;
        } catch (error) {
          throw poolFailure(error, label);
        }
      },
      timeSession: async (feeds: TensorMap): Promise<number> => {
        const checked: TensorMap = pickFeeds(feeds, inputs, label, (t) => t);
        try {
          // The worker's own clock around session.run: the hop across threads is not in it.
          return (await pool.run(ref, checked, { transfer: false })).edgeMs;
        } catch (error) {
          throw poolFailure(error, label);
        }
      },
    };
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
