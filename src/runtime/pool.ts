/**
 * The edge pool: piscina worker threads running onnxruntime-node, behind a bounded FIFO
 * queue owned here rather than by piscina. Owning the queue lets a caller who aborts or runs
 * out of time leave without piscina terminating a worker (and its warm sessions); the worker
 * slot is released only when the worker really finishes.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { Piscina } from 'piscina';
import type { TandemError } from '../errors/index.js';
import type { TensorMap } from '../tensor/index.js';
import { BoundedQueue, type QueueRefusals } from '../util/bounded-queue.js';
import { AbortedError, ClosedError, DeadlineExceededError, EdgeExecutionError, isPackageCode, ModelPackageError, QueueFullError } from './errors.js';
import { raceCaller } from './race.js';
import { fromWire, toWire, type ModelRef, type ModelSignature, type WorkerConfig, type WorkerError, type WorkerResult, type WorkerTask } from './protocol.js';

export interface EdgePoolOptions {
  /** Worker threads (default 1). */
  workers?: number;
  /** onnxruntime intra-op threads per worker (default: cores ÷ workers, at least 1). */
  intraOpThreads?: number;
  /** Whether idle intra-op threads spin-wait between parallel sections (default: onnxruntime's, yes). */
  spinning?: boolean;
  /** Requests allowed to wait for a worker (default 4 × workers). */
  maxQueue?: number;
  /** What `run` does when the queue is full: wait for room, or reject with `RUNTIME_QUEUE_FULL` (default). */
  whenFull?: 'wait' | 'reject';
  /** Stretches every edge computation by this factor to emulate a slower device (default 1). */
  slowdown?: number;
  /**
   * With a slowdown: stretch each run's own time, host jitter included (`true`), or this host's
   * undisturbed time for that run (the fastest of its last 15), adding the run's excess over it
   * once (`false`, default).
   */
  stretchJitter?: boolean;
  /** Models every worker loads at start-up. */
  preload?: ModelRef[];
  /** Sessions each worker keeps cached (default 8); least recently used ones are released. */
  maxSessions?: number;
  /**
   * onnxruntime's CPU memory arena (default on): faster allocation, but it keeps the peak of
   * every run's buffers; off trades a little speed for a smaller resident set (small devices).
   */
  memoryArena?: boolean;
}

export interface EdgeRunOptions {
  signal?: AbortSignal;
  /** Absolute deadline, epoch milliseconds. */
  deadline?: number;
  /** Output names to fetch (default: all of the model's outputs). */
  outputs?: string[];
  /** Input names whose tensors should come back with the result (their buffers were transferred). */
  keep?: string[];
  /** Transfer input buffers to the worker instead of copying them (default true); they become detached. */
  transfer?: boolean;
  /**
   * Buffers the caller gives up although the inputs only view part of them (a request body
   * holding several tensors): they move to the worker with every view over them, uncopied,
   * and are detached here. Never a buffer anything else still reads.
   */
  move?: readonly ArrayBuffer[];
  /** Per-request override of the queue-full behaviour. */
  whenFull?: 'wait' | 'reject';
  /**
   * Called once this request holds no worker any more: when its run ends in the worker, even
   * after the caller stopped waiting for it (signal, deadline), or at once when it never got a
   * worker. A caller bounding its own concurrency holds its slot until then. A run that never
   * got a worker has it called before `run` settles, so a caller can tell, when its wait ends,
   * whether a worker took the run.
   */
  onRunEnd?: () => void;
}

export interface EdgeRunResult {
  outputs: TensorMap;
  /** Input tensors handed back (see `keep`). */
  kept: TensorMap;
  /** Time spent waiting for a worker. */
  queueMs: number;
  /** Compute time in the worker, slowdown included. */
  edgeMs: number;
  /** Session creation time paid by this request (0 once warm). */
  loadMs: number;
}

type RunTransferList = NonNullable<Parameters<Piscina['run']>[1]>['transferList'];

/** The pool's queue refusals: the runtime's typed errors. */
const refusals: QueueRefusals = {
  full: ({ maxQueue }) => new QueueFullError(maxQueue),
  aborted: (reason) => new AbortedError(reason),
  expired: (deadline) => new DeadlineExceededError(deadline, 'waiting for an edge worker'),
};

/** Resolves the worker module next to this file: compiled `.js`, or `.ts` source run through tsx. */
function workerEntry(): { filename: string; execArgv: string[] } {
  const js = fileURLToPath(new URL('./worker.js', import.meta.url));
  if (existsSync(js)) return { filename: js, execArgv: [] };
  const ts = fileURLToPath(new URL('./worker.ts', import.meta.url));
  return { filename: ts, execArgv: ['--import', 'tsx'] };
}

export class EdgePool {
  readonly workers: number;
  readonly intraOpThreads: number;
  readonly maxQueue: number;
  readonly slowdown: number;
  readonly stretchJitter: boolean;
  private readonly whenFull: 'wait' | 'reject';
  private readonly piscina: Piscina;
  /** Worker slots: one holder per worker, FIFO waiters behind them. */
  private readonly queue: BoundedQueue;
  private closed = false;
  private idle: (() => void) | undefined;
  private closing: Promise<void> | undefined;

  constructor(options: EdgePoolOptions = {}) {
    const cores = availableParallelism();
    this.workers = positiveInt(options.workers ?? 1, 'workers');
    this.intraOpThreads = positiveInt(options.intraOpThreads ?? Math.max(1, Math.floor(cores / this.workers)), 'intraOpThreads');
    this.maxQueue = nonNegativeInt(options.maxQueue ?? 4 * this.workers, 'maxQueue');
    this.queue = new BoundedQueue({ capacity: this.workers, maxQueue: this.maxQueue, refusals, onChange: () => this.settleIdle() });
    this.whenFull = options.whenFull ?? 'reject';
    this.slowdown = options.slowdown ?? 1;
    this.stretchJitter = options.stretchJitter ?? false;
    if (!(this.slowdown >= 1) || !Number.isFinite(this.slowdown)) {
      throw new EdgeExecutionError('RUNTIME_OPTION', `slowdown must be a finite number ≥ 1, got ${this.slowdown}`);
    }
    const entry = workerEntry();
    const workerData: WorkerConfig = { intraOpThreads: this.intraOpThreads, ...(options.spinning !== undefined ? { spinning: options.spinning } : {}), maxSessions: positiveInt(options.maxSessions ?? 8, 'maxSessions'), preload: options.preload ?? [], ...(options.memoryArena === false ? { memoryArena: false } : {}) };
    // Loaded with the first pool, not with the module: importing the runtime (the package root,
    // the cloud service without --workers) need not pay piscina's start-up.
    const { Piscina: PiscinaPool } = createRequire(import.meta.url)('piscina') as typeof import('piscina');
    this.piscina = new PiscinaPool({
      filename: entry.filename,
      execArgv: [...process.execArgv, ...entry.execArgv],
      minThreads: this.workers,
      maxThreads: this.workers,
      idleTimeout: Number.POSITIVE_INFINITY,
      concurrentTasksPerWorker: 1,
      workerData,
    });
  }

  /** Requests waiting for a worker right now. */
  get queueLength(): number {
    return this.queue.queued;
  }

  /** Requests running in a worker right now. */
  get active(): number {
    return this.queue.active;
  }

  /**
   * Loads a model into the workers' caches ahead of its first request (one load task per
   * worker; with every worker idle each takes one) and resolves to its input and output names.
   */
  async warm(model: ModelRef): Promise<ModelSignature> {
    const results = await Promise.all(Array.from({ length: this.workers }, () => this.dispatch({ kind: 'load', model }, [])));
    const signature = results[0]?.ok ? results[0].signature : undefined;
    return signature ?? { inputs: [], outputs: [] };
  }

  /** Runs `model` on `inputs` in a worker. Rejects with a typed error; never throws synchronously. */
  async run(model: ModelRef, inputs: TensorMap, options: EdgeRunOptions = {}): Promise<EdgeRunResult> {
    let execution: Promise<WorkerResult> | undefined;
    try {
      const queuedAt = performance.now();
      await this.acquire(options);
      const queueMs = performance.now() - queuedAt;
      const transferList: ArrayBuffer[] = [...new Set(options.move ?? [])];
      const task: WorkerTask = {
        kind: 'run',
        model,
        inputs: toWire(inputs, options.transfer ?? true, transferList),
        slowdown: this.slowdown,
        stretchJitter: this.stretchJitter,
        ...(options.outputs ? { outputs: options.outputs } : {}),
        ...(options.keep ? { keep: options.keep } : {}),
      };
      execution = this.execute(task, transferList);
      const result = await raceCaller(execution, options, 'running on the edge');
      if (!result.ok) throw workerError(result.error);
      return { outputs: fromWire(result.outputs), kept: fromWire(result.kept), queueMs, edgeMs: result.edgeMs, loadMs: result.loadMs };
    } finally {
      const onRunEnd = options.onRunEnd;
      // execute() never rejects: it turns a worker's failure into a result.
      if (onRunEnd) void (execution ? execution.then(() => onRunEnd()) : onRunEnd());
    }
  }

  /**
   * Stops accepting work, lets queued and running requests finish (or, with `force`,
   * rejects the queued ones with `RUNTIME_CLOSED`), then terminates the workers.
   */
  close(options: { force?: boolean } = {}): Promise<void> {
    this.closed = true;
    if (options.force) this.queue.rejectWaiting(() => new ClosedError('edge pool'));
    this.closing ??= (async () => {
      if (this.queue.active > 0 || this.queue.queued > 0) await new Promise<void>((resolve) => (this.idle = resolve));
      // Sessions released by the workers themselves: left to finalizers during the workers'
      // termination, onnxruntime-node once aborted the process (a Napi::Error thrown while
      // its environment was going away).
      await this.releaseEverywhere().catch(() => undefined);
      await this.piscina.destroy();
    })();
    return this.closing;
  }

  /**
   * One release task per worker, outside the slots (the pool is closed and idle by then): with
   * all of them posted at once, each idle worker takes one.
   */
  private async releaseEverywhere(): Promise<void> {
    await Promise.all(Array.from({ length: this.workers }, () => this.piscina.run({ kind: 'release' } satisfies WorkerTask)));
  }

  /** Runs a task that already holds a slot and frees the slot when the worker is done. */
  private async execute(task: WorkerTask, transferList: ArrayBuffer[]): Promise<WorkerResult> {
    try {
      // piscina types its transfer list after MessagePort.postMessage's overloads; a plain array is what it passes on.
      return (await this.piscina.run(task, { transferList: transferList as unknown as RunTransferList })) as WorkerResult;
    } catch (error) {
      // A worker that crashed is replaced by piscina; the request may succeed if retried.
      return { ok: false, error: { code: 'RUNTIME_WORKER_FAILED', message: error instanceof Error ? error.message : String(error), retryable: true } };
    } finally {
      this.queue.release();
    }
  }

  private async dispatch(task: WorkerTask, transferList: ArrayBuffer[]): Promise<WorkerResult> {
    await this.acquire({ whenFull: 'wait' });
    const result = await this.execute(task, transferList);
    if (!result.ok) throw workerError(result.error);
    return result;
  }

  /**
   * A worker slot. Checked here, before the queue: a closed pool, and a deadline already past
   * even with a worker free (the run could not finish in time).
   */
  private acquire(options: EdgeRunOptions): Promise<void> {
    if (this.closed) return Promise.reject(new ClosedError('edge pool'));
    if (options.signal?.aborted) return Promise.reject(new AbortedError(options.signal.reason));
    if (options.deadline !== undefined && Date.now() >= options.deadline) {
      return Promise.reject(new DeadlineExceededError(options.deadline, 'waiting for an edge worker'));
    }
    return this.queue.acquire({ signal: options.signal, deadline: options.deadline, whenFull: options.whenFull ?? this.whenFull });
  }

  private settleIdle(): void {
    if (this.idle && this.queue.active === 0 && this.queue.queued === 0) {
      const resolve = this.idle;
      this.idle = undefined;
      resolve();
    }
  }
}

/**
 * A worker's failure as the typed error callers branch on. A package that no longer matches
 * what was checked at start-up (an external data file changed on disk, the model file replaced)
 * is a `ModelPackageError`, as the same fault found at start-up is; the rest are
 * `EdgeExecutionError`s.
 */
function workerError(error: WorkerError): TandemError {
  const options = { retryable: error.retryable, ...(error.details ? { details: error.details } : {}) };
  if (isPackageCode(error.code)) return new ModelPackageError(error.code, error.message, options);
  return new EdgeExecutionError(error.code, error.message, options);
}

function positiveInt(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) throw new EdgeExecutionError('RUNTIME_OPTION', `${name} must be a positive integer, got ${value}`);
  return value;
}

function nonNegativeInt(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 0) throw new EdgeExecutionError('RUNTIME_OPTION', `${name} must be a non-negative integer, got ${value}`);
  return value;
}
