/**
 * Model identity for the edge pool: a model is known by the SHA-256 of its ONNX bytes, so
 * the same head or whole model registered twice shares one session per worker.
 */
import { readFile } from 'node:fs/promises';
import { sha256Hex } from '../util/sha256.js';
import { ModelPackageError } from './errors.js';
import type { ModelRef } from './protocol.js';

export { sha256Hex };

/**
 * Builds a worker-ready reference from in-memory ONNX bytes. The bytes are copied once into
 * shared memory so every task that names this model posts a reference, not a copy.
 */
export function modelFromBytes(bytes: Uint8Array): ModelRef {
  const shared = new Uint8Array(new SharedArrayBuffer(bytes.byteLength));
  shared.set(bytes);
  return { sha256: sha256Hex(bytes), bytes: shared };
}

/** Hashes an ONNX file; workers read it themselves and check the hash. */
export async function modelFromFile(path: string): Promise<ModelRef> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw new ModelPackageError('RUNTIME_MODEL_READ', `cannot read model file ${path}`, { cause: error, details: { path } });
  }
  return { sha256: sha256Hex(bytes), path };
}
