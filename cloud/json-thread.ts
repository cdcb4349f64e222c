/**
 * Large request bodies decoded off the event loop: one worker thread (json-worker.ts), made on
 * first use, decodes them in turn while the event loop goes on answering. A body the service
 * allocated itself moves to the worker; tensors come back moved, not copied. A Vertex request's
 * instances stay in the worker until its tensors are asked for (the partition's dtypes are
 * needed) or it is dropped. A worker that dies fails what it held; the next job starts another.
 *
 * The queue is kept here, and the worker is given one job at a time: a body whose client left,
 * or whose deadline passed, while it waited is never decoded, and a request that already holds
 * a model slot (its tensors) goes before the bodies still waiting to be decoded. What waits
 * here is bounded by the service's body budget, which each body counts against until its
 * answer is written.
 */
import type { Worker } from 'node:worker_threads';
import { isErrorCode, ValidationError } from '../src/errors/index.js';
import type { InstanceInput } from '../src/providers/index.js';
import type { TensorMap } from '../src/tensor/index.js';
import type { DecodedBody, DecodeOptions } from './body-decode.js';
import { clientClosed, CloudError } from './errors.js';
import { startModuleWorker } from './worker-module.js';

export type JsonRequest =
  | { op: 'decode'; id: number; body: Uint8Array; options: DecodeOptions }
  | { op: 'tensors'; id: number; handle: number; inputs: readonly InstanceInput[]; maxElements: number }
  | { op: 'drop'; handle: number };

export interface JsonReply {
  id: number;
  decoded?: Omit<DecodedBody, 'instances'>;
  /** The worker holds the request's instances, under the decode's id. */
  held?: true;
  tensors?: TensorMap;
  error?: { message: string; code?: string; status?: number; retryable?: boolean };
}

/** A body decoded in the worker; `handle` names the instances it holds, if any. */
export interface ThreadDecoded {
  decoded: Omit<DecodedBody, 'instances'>;
  handle?: number;
}

/** When a decode is no longer wanted: its client left (the signal, asked for only when it waits), or its deadline passed. */
export interface DecodeUntil {
  deadline: number;
  signal: () => AbortSignal;
}

interface Job {
  request: Exclude<JsonRequest, { op: 'drop' }>;
  transfer: ArrayBuffer[];
  resolve: (reply: JsonReply) => void;
  reject: (error: Error) => void;
  /** Its requester stopped waiting: a reply is dropped (and what the worker holds for it let go). */
  abandoned?: boolean;
  /** Undoes the job's watch on its client and deadline. */
  unwatch?: () => void;
}

/** The worker's error as the service answers it: the same code and status as decoded here. */
function rebuild(e: NonNullable<JsonReply['error']>): Error {
  if (e.code !== undefined && isErrorCode(e.code)) {
    const options = e.retryable !== undefined ? { retryable: e.retryable } : {};
    return e.status !== undefined ? new CloudError(e.status, e.code, e.message, options) : new ValidationError(e.code, e.message, options);
  }
  return new CloudError(500, 'CLOUD_INTERNAL', `the JSON thread failed: ${e.message}`);
}

const deadlinePassed = (): CloudError => new CloudError(504, 'CLOUD_DEADLINE', 'the request deadline passed while its body waited to be decoded', { retryable: true });

export class JsonThread {
  private worker: Worker | undefined;
  private nextId = 1;
  /** The job the worker is on. */
  private current: Job | undefined;
  /** Tensors of requests that hold a model slot: they go first. */
  private readonly urgent: Job[] = [];
  private readonly waiting: Job[] = [];
  /** The worker each held handle lives in: a handle outlives a worker that died. */
  private readonly holders = new Map<number, Worker>();
  private closed = false;

  /** `decoded` counts the bodies the worker decodes; `heapMb` bounds the worker's old-generation heap. */
  constructor(private readonly decoded?: { inc(): void }, private readonly limits: { heapMb?: number } = {}) {}

  /** Jobs queued or running (for tests and the metrics). */
  get depth(): number {
    return this.urgent.length + this.waiting.length + (this.current ? 1 : 0);
  }

  /** Handles whose instances the worker holds (for tests: none is left once every request ended). */
  get held(): number {
    return this.holders.size;
  }

  /**
   * Decodes `body` in the worker. `move`: the body is the service's own, alone in its memory,
   * and read no more: it moves instead of being copied (and is empty here afterwards). With
   * `until`, a body still waiting when its client leaves (499) or its deadline passes (504) is
   * not decoded, and one being decoded is let go when it is done.
   */
  async decode(body: Uint8Array, move: boolean, options: DecodeOptions, until?: DecodeUntil): Promise<ThreadDecoded> {
    const id = this.nextId++;
    const reply = await this.enqueue(this.waiting, { op: 'decode', id, body, options }, move ? [body.buffer as ArrayBuffer] : [], until);
    this.decoded?.inc();
    if (!reply.decoded) throw new CloudError(500, 'CLOUD_INTERNAL', 'the JSON thread gave no decoded body');
    if (!reply.held) return { decoded: reply.decoded };
    return { decoded: reply.decoded, handle: id };
  }

  /** The tensors of the instances held under `handle`; the worker lets them go. */
  async tensors(handle: number, inputs: readonly InstanceInput[], maxElements: number): Promise<TensorMap> {
    const holder = this.holders.get(handle);
    this.holders.delete(handle);
    if (!holder || holder !== this.worker) throw new CloudError(503, 'CLOUD_WORKER_FAILED', 'the JSON thread that decoded this request is gone; retry');
    const reply = await this.enqueue(this.urgent, { op: 'tensors', id: this.nextId++, handle, inputs: inputs.map(({ name, dtype }) => ({ name, dtype })), maxElements }, []);
    if (!reply.tensors) throw new CloudError(500, 'CLOUD_INTERNAL', 'the JSON thread gave no tensors');
    return reply.tensors;
  }

  /** Lets the instances held under `handle` go, if they still are. */
  drop(handle: number): void {
    const holder = this.holders.get(handle);
    this.holders.delete(handle);
    // Posted at once, not queued: the worker reads it between two jobs.
    if (holder && holder === this.worker) holder.postMessage({ op: 'drop', handle } satisfies JsonRequest);
  }

  /** Ends the worker; what it was decoding, and what waited, fails. */
  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = undefined;
    this.fail('was closed', true);
    this.holders.clear();
    await worker?.terminate();
  }

  private enqueue(queue: Job[], request: Job['request'], transfer: ArrayBuffer[], until?: DecodeUntil): Promise<JsonReply> {
    return new Promise<JsonReply>((resolve, reject) => {
      if (this.closed) {
        reject(new CloudError(503, 'CLOUD_DRAINING', 'the service is shutting down; retry on another instance'));
        return;
      }
      const job: Job = { request, transfer, resolve, reject };
      queue.push(job);
      // A job that goes to an idle worker at once pays for no watch.
      this.pump();
      if (until && this.current !== job) this.watch(job, queue, until);
    });
  }

  /** Ends `job`'s wait when its client leaves or its deadline passes, wherever it is then. */
  private watch(job: Job, queue: Job[], until: DecodeUntil): void {
    const signal = until.signal();
    const give = (error: CloudError): void => {
      job.unwatch?.();
      const at = queue.indexOf(job);
      if (at >= 0) queue.splice(at, 1);
      // Running: the worker finishes it, and its reply is let go.
      else job.abandoned = true;
      job.reject(error);
    };
    const onAbort = (): void => give(clientClosed('while its body was decoded'));
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => give(deadlinePassed()), Math.min(2 ** 31 - 1, Math.max(0, until.deadline - Date.now())));
    timer.unref();
    job.unwatch = () => {
      signal.removeEventListener('abort', onAbort);
      clearTimeout(timer);
    };
  }

  /** Gives the worker its next job, if it is free. */
  private pump(): void {
    if (this.current || this.closed) return;
    const job = this.urgent.shift() ?? this.waiting.shift();
    if (!job) {
      // Idle, the worker does not keep the process alive.
      this.worker?.unref();
      return;
    }
    this.current = job;
    try {
      const worker = this.worker ?? this.start();
      worker.ref();
      worker.postMessage(job.request, job.transfer);
    } catch (error) {
      this.current = undefined;
      job.unwatch?.();
      job.reject(error instanceof Error ? error : new Error(String(error)));
      this.pump();
    }
  }

  private start(): Worker {
    const worker = startModuleWorker('json-worker', this.limits.heapMb === undefined ? {} : { resourceLimits: { maxOldGenerationSizeMb: this.limits.heapMb } });
    this.worker = worker;
    worker.on('message', (reply: JsonReply) => this.settle(worker, reply));
    const ended = (reason: string): void => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      this.fail(reason, false);
      // What waited goes to the next worker.
      this.pump();
    };
    worker.on('error', (error: Error) => ended(`failed: ${error.message}`));
    worker.on('exit', (code) => ended(`exited (code ${code})`));
    return worker;
  }

  /** Fails the running job (and, with `all`, every waiting one). */
  private fail(reason: string, all: boolean): void {
    const failed = this.current ? [this.current] : [];
    this.current = undefined;
    if (all) failed.push(...this.urgent.splice(0), ...this.waiting.splice(0));
    for (const job of failed) {
      job.unwatch?.();
      if (!job.abandoned) job.reject(new CloudError(503, 'CLOUD_WORKER_FAILED', `the JSON thread ${reason}; retry`));
    }
  }

  private settle(worker: Worker, reply: JsonReply): void {
    const job = this.current;
    if (!job || job.request.id !== reply.id) return;
    this.current = undefined;
    job.unwatch?.();
    if (reply.held) {
      // Held for a requester that is gone: let go at once.
      if (job.abandoned) worker.postMessage({ op: 'drop', handle: reply.id } satisfies JsonRequest);
      else this.holders.set(reply.id, worker);
    }
    if (!job.abandoned) {
      if (reply.error) job.reject(rebuild(reply.error));
      else job.resolve(reply);
    }
    this.pump();
  }
}
