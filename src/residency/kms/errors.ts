/**
 * Typed failures of the KMS key sources, one classification for the three SDKs: the caller
 * branches on `code` (an operator must act on `KMS_ACCESS_DENIED`; `KMS_UNAVAILABLE` is retried
 * by the outbox's next attempt). Messages never hold key material.
 */
import { TandemError } from '../../errors/index.js';
import type { LazyValue } from '../../lazy.js';
import { proxyFailure } from '../../providers/proxy.js';

export type KmsFailure = 'access-denied' | 'unavailable' | 'rejected' | 'config' | 'region';

const CODES = {
  'access-denied': 'KMS_ACCESS_DENIED',
  unavailable: 'KMS_UNAVAILABLE',
  rejected: 'KMS_REJECTED',
  config: 'KMS_CONFIG',
  region: 'RESIDENCY_KEY_REGION',
} as const;

export class KmsError extends TandemError {
  readonly failure: KmsFailure;
  constructor(failure: KmsFailure, key: { kind: string; keyId: string; region: string | undefined }, message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(CODES[failure], `${key.kind} key ${key.keyId}${key.region === undefined ? '' : ` (${key.region})`}: ${message}`, {
      cause: options.cause,
      details: { kind: key.kind, keyId: key.keyId, region: key.region, ...options.details },
    });
    this.failure = failure;
  }
}

/** The SDK module of a key source, loaded on first use; a module that cannot load is `KMS_CONFIG`. */
export async function loadSdk<T>(sdk: LazyValue<T>, key: { kind: string; keyId: string; region: string | undefined }, name: string): Promise<T> {
  try {
    return await sdk.get();
  } catch (error) {
    throw new KmsError('config', key, `cannot load ${name}: ${messageOf(error)}`, { cause: error });
  }
}

/** The message of an SDK error, without its stack. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Failures below HTTP (refused connection, reset, DNS, timeout) are worth another attempt. */
export function isNetworkError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  const name = (error as { name?: unknown } | null)?.name;
  return (
    (typeof code === 'string' && /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|UND_ERR_.*)$/.test(code)) ||
    name === 'TimeoutError' ||
    name === 'AbortError'
  );
}

/**
 * A proxy's failure behind an SDK error (docs/guide/network.md): a refused tunnel is `KMS_CONFIG`
 * (the proxy's policy or credentials, until an operator acts), an unreachable proxy or its 5xx
 * `KMS_UNAVAILABLE`. Undefined when no proxy failed.
 */
export function proxyKmsError(key: { kind: string; keyId: string; region: string | undefined }, what: string, error: unknown): KmsError | undefined {
  const failure = proxyFailure(error);
  if (!failure) return undefined;
  return new KmsError(failure.code === 'PROVIDER_PROXY' ? 'config' : 'unavailable', key, `${what}: ${failure.message}`, { cause: error, details: { ...failure.details } });
}
