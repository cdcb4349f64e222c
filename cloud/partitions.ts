/**
 * One loaded partition (a whole model or a tail) ready to run: an onnxruntime session on the
 * event loop's thread, or a model warmed in the worker pool's threads.
 */
import * as ort from 'onnxruntime-node';
import type { TensorMap } from '../src/tensor/index.js';
import type { EdgePool, ModelRef } from '../src/runtime/index.js';
import { sha256Hex } from '../src/util/index.js';
import { CloudError, clientClosed, draining } from './errors.js';
import { fromOrt, pickFeeds, tensorInfo, toOrt, type TensorInfo } from './feeds.js';

export type { TensorInfo };

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

/** What a partition is: its model, cut, and how errors name it. */
export interface PartitionId {
  model: string;
  cut: string | null;
  label: string;
}

const loadFailed = (id: PartitionId, error: unknown, detail = ''): CloudError =>
  new CloudError(500, 'CLOUD_MODEL_LOAD', `model "${id.model}"${id.cut ? ` cut ${id.cut}` : ''} failed to load in onnxruntime${detail}`, { cause: error, retryable: false });

/**
 * A session on this thread. `retire` lets the session go once no run uses it (the cache has
 * evicted the partition); `sessions` holds every session not yet released, for `close`.
 */
export async function loadSessionPartition(
  id: PartitionId,
  onnx: Uint8Array,
  sessionOptions: ort.InferenceSession.SessionOptions,
  sessions: Set<ort.InferenceSession>,
): Promise<{ partition: LoadedPartition; retire: () => void }> {
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(onnx, sessionOptions);
  } catch (error) {
    throw loadFailed(id, error);
  }
  sessions.add(session);
  const { label } = id;
  const inputs = tensorInfo(session.inputMetadata);
  const outputs = tensorInfo(session.outputMetadata);
  const toOrtFeeds = (feeds: TensorMap): Record<string, ort.Tensor> => pickFeeds(feeds, inputs, label, toOrt);
  // Runs in progress, and whether the cache has let this partition go: its session is
  // released when both say so, never under a run.
  let running = 0;
  let retired = false;
  const releaseIfDone = (): void => {
    if (!retired || running > 0 || !sessions.delete(session)) return;
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
    model: id.model,
    cut: id.cut,
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
  const retire = (): void => {
    retired = true;
    releaseIfDone();
  };
  return { partition, retire };
}

/** A partition run in the pool's worker threads (sessions created there, inputs and outputs moved across). */
export async function loadPoolPartition(id: PartitionId, onnx: Uint8Array, pool: EdgePool, sha256 = sha256Hex(onnx)): Promise<LoadedPartition> {
  // Shared memory: every worker reads the same bytes, and posting them copies nothing.
  const shared = new Uint8Array(new SharedArrayBuffer(onnx.byteLength));
  shared.set(onnx);
  const ref: ModelRef = { sha256, bytes: shared };
  let metadata: NonNullable<Awaited<ReturnType<EdgePool['warm']>>['metadata']>;
  try {
    const signature = await pool.warm(ref);
    if (!signature.metadata) throw new Error('the worker reported no input and output metadata');
    metadata = signature.metadata;
  } catch (error) {
    throw loadFailed(id, error, `: ${error instanceof Error ? error.message : String(error)}`);
  }
  const { label } = id;
  const inputs = tensorInfo(metadata.inputs);
  const outputs = tensorInfo(metadata.outputs);
  return {
    model: id.model,
    cut: id.cut,
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

/** A worker pool's typed failure as the service's: the model's refusal is the client's, a crash is retryable. */
function poolFailure(error: unknown, label: string): CloudError {
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  if (code === 'RUNTIME_EDGE_RUN') return new CloudError(400, 'CLOUD_MODEL_ERROR', `${label} rejected the inputs: ${message}`, { cause: error, retryable: false });
  if (code === 'RUNTIME_WORKER_FAILED') return new CloudError(503, 'CLOUD_WORKER_FAILED', `the worker running ${label} failed; retry: ${message}`, { cause: error, retryable: true });
  if (code === 'RUNTIME_DEADLINE_EXCEEDED') return new CloudError(504, 'CLOUD_DEADLINE', `the request deadline passed while ${label} waited for or ran in a worker thread`, { cause: error, retryable: true });
  if (code === 'RUNTIME_ABORTED') return clientClosed(`while ${label} waited for or ran in a worker thread`, error);
  if (code === 'RUNTIME_CLOSED') return draining(error);
  return new CloudError(500, 'CLOUD_MODEL_RUN', `${label} could not run: ${message}`, { cause: error, retryable: false });
}
