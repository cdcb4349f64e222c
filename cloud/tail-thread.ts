/**
 * Tail extraction off the event loop: requests go to one worker thread (tail-worker.ts), made
 * on first use, which parses each model once and keeps its cut analysis. The model's bytes
 * cross once per model (the worker asks again if it has let them go); tails come back moved,
 * not copied. A worker that dies fails the extractions in flight; the next one starts another.
 */
import type { Worker } from 'node:worker_threads';
import { isErrorCode } from '../src/errors/index.js';
import { GraphError } from '../src/graph/index.js';
import { startModuleWorker } from './worker-module.js';

export interface TailRequest {
  id: number;
  /** The model's number in this thread; `bytes` come with the first request for it. */
  model: number;
  cut: string;
  bytes?: Uint8Array;
}

export interface TailReply {
  id: number;
  tail?: Uint8Array;
  /** The worker does not hold the model (yet, or any more): send its bytes. */
  missing?: true;
  error?: { message: string; code?: string };
}

interface Pending {
  request: TailRequest;
  bytes: Uint8Array;
  resolve: (tail: Uint8Array) => void;
  reject: (error: Error) => void;
}

export class TailThread {
  private worker: Worker | undefined;
  private nextId = 1;
  private nextModel = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly models = new WeakMap<Uint8Array, number>();
  /** Models whose bytes this worker has been sent. */
  private sent = new Set<number>();

  /** The tail of the model `bytes` after `cut`; rejects as the graph toolkit would (`GRAPH_UNKNOWN_CUT`, …). */
  extract(bytes: Uint8Array, cut: string): Promise<Uint8Array> {
    let model = this.models.get(bytes);
    if (model === undefined) {
      model = this.nextModel++;
      this.models.set(bytes, model);
    }
    const request: TailRequest = { id: this.nextId++, model, cut };
    return new Promise<Uint8Array>((resolve, reject) => {
      this.pending.set(request.id, { request, bytes, resolve, reject });
      try {
        this.post(request, bytes, !this.sent.has(request.model));
      } catch (error) {
        this.pending.delete(request.id);
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
  }

  private post(request: TailRequest, bytes: Uint8Array, withBytes: boolean): void {
    const worker = this.worker ?? this.start();
    if (withBytes) this.sent.add(request.model);
    worker.ref();
    worker.postMessage(withBytes ? { ...request, bytes } : request);
  }

  private start(): Worker {
    const worker = startModuleWorker('tail-worker');
    this.worker = worker;
    this.sent = new Set();
    worker.on('message', (reply: TailReply) => this.settle(reply));
    const fail = (reason: string): void => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      const failed = [...this.pending.values()];
      this.pending.clear();
      for (const p of failed) p.reject(new Error(`the tail extraction thread ${reason}`));
    };
    worker.on('error', (error: Error) => fail(`failed: ${error.message}`));
    worker.on('exit', (code) => fail(`exited (code ${code})`));
    return worker;
  }

  private settle(reply: TailReply): void {
    const p = this.pending.get(reply.id);
    if (!p) return;
    if (reply.missing) {
      this.post(p.request, p.bytes, true);
      return;
    }
    this.pending.delete(reply.id);
    // Idle, the worker does not keep the process alive.
    if (this.pending.size === 0) this.worker?.unref();
    if (reply.tail) p.resolve(reply.tail);
    else {
      const code = reply.error?.code;
      const message = reply.error?.message ?? 'the tail extraction thread gave no tail';
      p.reject(isErrorCode(code) ? new GraphError(code, message) : new Error(message));
    }
  }
}
