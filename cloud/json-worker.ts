/**
 * The worker thread that decodes large request bodies (cloud/json-thread.ts): parsing megabytes
 * of JSON takes the event loop for tens to hundreds of milliseconds, in which the service would
 * answer nothing else, not even `/ping`. Here it takes none of the event loop's time. A Vertex
 * request's instances stay here until the partition's dtypes turn them into tensors.
 */
import { parentPort } from 'node:worker_threads';
import { instancesToTensors } from '../src/providers/index.js';
import type { TensorMap } from '../src/tensor/index.js';
import { decodeBody } from './body-decode.js';
import type { JsonReply, JsonRequest } from './json-thread.js';

/** Buffers at most this large are copied back rather than moved: they may be a slice of Buffer's shared pool. */
const MOVE_MIN_BYTES = 64 * 1024;

/** Instances of Vertex requests whose tensors have not been asked for yet, by handle. */
const held = new Map<number, readonly unknown[]>();

function movable(tensors: TensorMap | undefined): ArrayBuffer[] {
  const list = new Set<ArrayBuffer>();
  for (const t of Object.values(tensors ?? {})) {
    const buffer = t.data.buffer;
    if (buffer instanceof ArrayBuffer && buffer.byteLength > MOVE_MIN_BYTES) list.add(buffer);
  }
  return [...list];
}

function reply(request: Exclude<JsonRequest, { op: 'drop' }>): { reply: JsonReply; transfer: ArrayBuffer[] } {
  if (request.op === 'decode') {
    const { instances, ...decoded } = decodeBody(request.body, request.options);
    if (instances) held.set(request.id, instances);
    return { reply: { id: request.id, decoded, ...(instances ? { held: true } : {}) }, transfer: movable(decoded.tensors) };
  }
  const instances = held.get(request.handle);
  held.delete(request.handle);
  if (!instances) throw new Error(`no instances held for request ${request.handle}`);
  const tensors = instancesToTensors(instances, request.inputs, request.maxElements);
  return { reply: { id: request.id, tensors }, transfer: movable(tensors) };
}

parentPort!.on('message', (request: JsonRequest) => {
  if (request.op === 'drop') {
    held.delete(request.handle);
    return;
  }
  try {
    const r = reply(request);
    parentPort!.postMessage(r.reply, r.transfer);
  } catch (error) {
    const e = error as { code?: unknown; status?: unknown; retryable?: unknown; details?: unknown } | null;
    parentPort!.postMessage({
      id: request.id,
      error: {
        message: error instanceof Error ? error.message : String(error),
        ...(typeof e?.code === 'string' ? { code: e.code } : {}),
        ...(typeof e?.status === 'number' ? { status: e.status } : {}),
        ...(typeof e?.retryable === 'boolean' ? { retryable: e.retryable } : {}),
      },
    } satisfies JsonReply);
  }
});
