/**
 * One interface over every result store. Stores move opaque bytes; encryption, keys and residency
 * checks happen above them (the outbox seals, the gate checks), so a store implementation is only
 * the SDK call and the mapping of its failures onto {@link StoreError}.
 */
import { createHash } from 'node:crypto';
import type { StoreDecl } from '../policy.js';

export interface PutMeta {
  contentType?: string;
  /** Small string metadata kept with the object (x-amz-meta-*, x-oss-meta-*, GCS custom metadata). */
  metadata?: Record<string, string>;
}

export interface StoredObject {
  body: Uint8Array;
  metadata: Record<string, string>;
}

export interface ObjectInfo {
  size: number;
  metadata: Record<string, string>;
}

export interface ResultStore {
  /** The name the policy declares the store under. */
  readonly name: string;
  readonly decl: StoreDecl;
  /** Writes `body` under `key`, replacing any earlier copy (so a retried write stays one copy). */
  put(key: string, body: Uint8Array, meta?: PutMeta): Promise<void>;
  /** Reads an object; rejects with a `STORE_NOT_FOUND` {@link StoreError} if there is none. */
  get(key: string): Promise<StoredObject>;
  /** Size and metadata, or undefined when there is no object under `key`. */
  head(key: string): Promise<ObjectInfo | undefined>;
  exists(key: string): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * The object key for a request's result: a function of the request id alone, so every retry of
 * the same result lands on the same object. Hashing keeps arbitrary ids valid in every store and
 * spreads keys over prefixes.
 */
export function resultKey(requestId: string, prefix = ''): string {
  const h = createHash('sha256').update(requestId, 'utf8').digest('hex');
  return `${prefix}${h.slice(0, 2)}/${h}.tde`;
}

export function validateKey(key: string): string | undefined {
  if (key.length === 0 || key.length > 1024) return 'key must be 1 to 1024 characters';
  if (key.startsWith('/') || key.split('/').some((p) => p === '' || p === '.' || p === '..')) return 'key must be a relative path without empty, "." or ".." segments';
  if (/[\0\\]/.test(key)) return 'key must not contain NUL or backslash';
  return undefined;
}
