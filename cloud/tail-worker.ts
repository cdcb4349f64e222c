/**
 * The worker thread that extracts tails (cloud/tail-thread.ts): parsing the model, finding its
 * cuts and writing the tail take seconds and hundreds of MB on a model with 100k+ nodes, and a
 * caller of a front without credentials can ask for any cut. Here they take no time from the
 * event loop, which keeps answering `/ping` and every other request meanwhile.
 */
import { parentPort } from 'node:worker_threads';
import { parseModel, splitModel, type OnnxModel } from '../src/graph/index.js';
import type { TailReply, TailRequest } from './tail-thread.js';

/** Parsed models kept, most recently used last: a service splits a handful of models. */
const MAX_MODELS = 4;
const models = new Map<number, Promise<OnnxModel>>();

async function extract(request: TailRequest): Promise<TailReply> {
  let model = models.get(request.model);
  if (model) {
    models.delete(request.model);
  } else {
    if (!request.bytes) return { id: request.id, missing: true };
    model = parseModel(request.bytes);
  }
  models.set(request.model, model);
  model.catch(() => models.delete(request.model));
  while (models.size > MAX_MODELS) models.delete(models.keys().next().value as number);
  const { tail } = await splitModel(await model, request.cut);
  // A buffer of its own, so it can move to the main thread (an encoder's output may view a shared pool).
  return { id: request.id, tail: tail.byteOffset === 0 && tail.byteLength === tail.buffer.byteLength ? tail : new Uint8Array(tail) };
}

parentPort!.on('message', (request: TailRequest) => {
  extract(request).then(
    (reply) => parentPort!.postMessage(reply, reply.tail ? [reply.tail.buffer as ArrayBuffer] : []),
    (error: unknown) => {
      const code = (error as { code?: unknown } | null)?.code;
      parentPort!.postMessage({ id: request.id, error: { message: error instanceof Error ? error.message : String(error), ...(typeof code === 'string' ? { code } : {}) } } satisfies TailReply);
    },
  );
});
