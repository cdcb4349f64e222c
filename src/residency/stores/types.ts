/**
 * One interface over every result store. Stores move opaque bytes; encryption, keys and residency
 * checks happen above them (the outbox seals, the gate checks), so a store implementation is only
 * the SDK call and the mapping of its failures onto {@link StoreError}.
 */
import { createHash } from 'node:crypto';
import { proxyFailure, ProxyRoute, type ProxyEnvironment, type ProxySetting } from '../../providers/proxy.js';
import { StoreError } from '../errors.js';
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

/** A store's options for its connections' proxy (docs/guide/network.md). */
export interface StoreProxyOptions {
  /** Outbound proxy (a URL, or `false` / `'none'` for direct); default: what `proxyEnv` says. */
  proxy?: ProxySetting;
  /**
   * HTTPS_PROXY / HTTP_PROXY / NO_PROXY as a loader read them (`proxyEnvironment`); the
   * library reads no environment itself. Absent: no proxy but `proxy`.
   */
  proxyEnv?: ProxyEnvironment;
}

/**
 * The proxy route of a store's connections (src/providers/proxy.ts): its `proxy` option, else
 * its `proxyEnv`. A setting that is not a proxy URL is a `config` failure.
 */
export function storeProxyRoute(store: string, options: StoreProxyOptions): ProxyRoute {
  try {
    return new ProxyRoute(options.proxy, `store "${store}"`, options.proxyEnv);
  } catch (error) {
    throw new StoreError('config', store, error instanceof Error ? error.message : String(error), { cause: error });
  }
}

/**
 * A proxy's failure behind a store call, as a StoreError: a refused tunnel is `config` (the
 * proxy's policy or credentials: an operator must act), an unreachable proxy `unavailable`.
 * Undefined when the failure is not the proxy's.
 */
export function proxyStoreError(store: string, what: string, error: unknown): StoreError | undefined {
  const failure = proxyFailure(error);
  if (!failure) return undefined;
  return new StoreError(failure.code === 'PROVIDER_PROXY' ? 'config' : 'unavailable', store, `${what}: ${failure.message}`, { cause: error, details: { ...failure.details } });
}
