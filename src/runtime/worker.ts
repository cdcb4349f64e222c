/**
 * The edge pool's worker: holds onnxruntime-node sessions, one per model hash, created once
 * per worker and reused for every task. Loaded by piscina, never imported by the main thread.
 */
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import * as ort from 'onnxruntime-node';
import { Piscina } from 'piscina';
import type { ErrorCode } from '../errors/catalogue.js';
import { TandemError } from '../errors/index.js';
import { sha256Hex } from '../util/sha256.js';
import type { DType, TensorData } from '../tensor/index.js';
import { externalDataSource } from './external-data.js';
import { sessionExtra } from './session-options.js';
import { SlowdownEmulator, runKey } from './slowdown.js';
import { isTransferable, type FileFingerprint, type ModelRef, type ValueInfo, type WireTensor, type WorkerConfig, type WorkerError, type WorkerResult, type WorkerTask } from './protocol.js';

const config = Piscina.workerData as WorkerConfig;
/** Sessions by model hash, in least-recently-used order (Map iteration order). */
const sessions = new Map<string, Promise<ort.InferenceSession>>();
/** Fingerprints of external data files this worker hashed and found as their package vouches (see external-data.ts). */
const verifiedFiles = new Map<string, FileFingerprint>();

class WorkerFailure extends Error {
  constructor(readonly code: ErrorCode, message: string, readonly retryable = false) {
    super(message);
  }
}

async function modelBytes(model: ModelRef): Promise<Uint8Array> {
  // onnxruntime-node accepts only ArrayBuffer-backed bytes, so shared ones are copied once here.
  if (model.bytes) return model.bytes.buffer instanceof ArrayBuffer ? model.bytes : new Uint8Array(model.bytes);
  if (model.path) {
    const bytes = await readFile(model.path);
    // The main thread hashed the file; a file replaced since would silently run the wrong model.
    const digest = sha256Hex(bytes);
    if (digest !== model.sha256) throw new WorkerFailure('RUNTIME_MODEL_CHANGED', `${model.path} changed on disk since it was registered`);
    return bytes;
  }
  throw new WorkerFailure('RUNTIME_MODEL_SOURCE', `model ${model.sha256} has neither bytes nor a path`);
}

function session(model: ModelRef): Promise<ort.InferenceSession> {
  let pending = sessions.get(model.sha256);
  if (pending) {
    sessions.delete(model.sha256);
    sessions.set(model.sha256, pending);
  } else {
    evict();
    pending = (async () => {
      const bytes = await modelBytes(model);
      // A model registered by path may keep its weights in files beside it. They are checked
      // here, at every session load, because this is when onnxruntime reads them: possibly
      // long after the package was checked (a replacement worker, a reload after eviction).
      const external = await externalDataSource(model, verifiedFiles);
      try {
        return await ort.InferenceSession.create(bytes, {
          intraOpNumThreads: config.intraOpThreads,
          interOpNumThreads: 1,
          executionMode: 'sequential',
          graphOptimizationLevel: 'all',
          ...(config.memoryArena === false ? { enableCpuMemArena: false } : {}),
          ...(external.externalData ? { externalData: external.externalData } : {}),
          ...sessionExtra({ ...(config.spinning !== undefined ? { spinning: config.spinning } : {}), ...(external.folder !== undefined ? { externalDataFolder: external.folder } : {}) }),
        });
      } catch (error) {
        throw new WorkerFailure('RUNTIME_MODEL_LOAD', `onnxruntime could not load model ${model.sha256.slice(0, 12)}: ${(error as Error).message}`);
      }
    })();
    sessions.set(model.sha256, pending);
    // A failed load must not poison the cache: the next task retries.
    pending.catch(() => sessions.delete(model.sha256));
  }
  return pending;
}

/** Keeps the cache bounded: profiling visits many heads, and each session holds its weights. */
function evict(): void {
  while (sessions.size >= config.maxSessions) {
    const [oldest, victim] = sessions.entries().next().value as [string, Promise<ort.InferenceSession>];
    sessions.delete(oldest);
    victim.then((s) => s.release()).catch(() => undefined);
  }
}

// Preload the models named at pool creation so the first request does not pay for them.
for (const model of config.preload) session(model).catch(() => undefined);

const emulator = new SlowdownEmulator();

function toOrt(t: WireTensor): ort.Tensor {
  return new ort.Tensor(t.dtype as ort.Tensor.Type, t.data as ort.Tensor.DataType, t.dims);
}

function fromOrt(name: string, t: ort.Tensor): WireTensor {
  let data = t.data as TensorData;
  // onnxruntime may hand out views over memory it owns; those cannot be transferred.
  if (!isTransferable(data)) data = data.slice() as TensorData;
  return { name, dtype: t.type as DType, dims: [...t.dims], data };
}

function valueInfo(m: ort.InferenceSession.ValueMetadata): ValueInfo {
  return m.isTensor ? { name: m.name, isTensor: true, type: m.type, shape: [...m.shape] } : { name: m.name, isTensor: false, type: '', shape: [] };
}

function failure(error: unknown): WorkerError {
  if (error instanceof WorkerFailure) return { code: error.code, message: error.message, retryable: error.retryable };
  // Typed failures (an external data file that no longer matches its package…) keep their code and facts across the thread boundary.
  if (error instanceof TandemError) return { code: error.code, message: error.message, retryable: error.retryable, details: { ...error.details } };
  return { code: 'RUNTIME_EDGE_RUN', message: error instanceof Error ? error.message : String(error), retryable: false };
}

function moved(result: WorkerResult): unknown {
  if (!result.ok) return result;
  const buffers = new Set<ArrayBuffer>();
  for (const t of [...result.outputs, ...result.kept]) if (isTransferable(t.data)) buffers.add(t.data.buffer as ArrayBuffer);
  // Piscina.move marks the wrapper so the result's buffers go on the transfer list.
  const transferable = { [Piscina.transferableSymbol]: [...buffers], [Piscina.valueSymbol]: result };
  return Piscina.move(transferable as unknown as Parameters<typeof Piscina.move>[0]);
}

/** Releases every session now, rather than in finalizers while the worker is being torn down. */
async function releaseAll(): Promise<number> {
  const pending = [...sessions.values()];
  sessions.clear();
  const results = await Promise.allSettled(pending.map((p) => p.then((s) => s.release())));
  return results.filter((r) => r.status === 'fulfilled').length;
}

export default async function handle(task: WorkerTask): Promise<unknown> {
  if (task.kind === 'release') {
    return { ok: true, outputs: [], kept: [], loadMs: 0, runMs: 0, edgeMs: 0, released: await releaseAll() } satisfies WorkerResult;
  }
  try {
    const loadStart = performance.now();
    const s = await session(task.model);
    const loadMs = performance.now() - loadStart;
    if (task.kind === 'load') {
      const signature = { inputs: [...s.inputNames], outputs: [...s.outputNames], metadata: { inputs: s.inputMetadata.map(valueInfo), outputs: s.outputMetadata.map(valueInfo) } };
      return { ok: true, outputs: [], kept: [], loadMs, runMs: 0, edgeMs: 0, signature } satisfies WorkerResult;
    }

    const feeds: Record<string, ort.Tensor> = {};
    for (const t of task.inputs) feeds[t.name] = toOrt(t);
    const fetches = task.outputs ?? s.outputNames;
    const start = performance.now();
    const out = await s.run(feeds, [...fetches]);
    const runMs = performance.now() - start;
    if (task.slowdown > 1) await sleep(emulator.extraMs(task, runKey(task, fetches), runMs));
    const edgeMs = performance.now() - start;
    const outputs = fetches.map((name) => {
      const t = out[name];
      if (!t) throw new WorkerFailure('RUNTIME_EDGE_RUN', `the model produced no output "${name}"`);
      return fromOrt(name, t);
    });
    const keepNames = new Set(task.keep ?? []);
    const kept = task.inputs.filter((t) => keepNames.has(t.name));
    return moved({ ok: true, outputs, kept, loadMs, runMs, edgeMs });
  } catch (error) {
    return { ok: false, error: failure(error) } satisfies WorkerResult;
  }
}
