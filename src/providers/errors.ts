/**
 * Provider failures, classified so that callers can tell a retry (another attempt, another
 * endpoint, or local fallback) from a final answer.
 */
import { TandemError } from '../errors.js';

export type ProviderErrorCode =
  | 'PROVIDER_THROTTLED' // 429 / throttling: retryable
  | 'PROVIDER_UNAVAILABLE' // 5xx: retryable
  | 'PROVIDER_TIMEOUT' // deadline passed: retryable
  | 'PROVIDER_NETWORK' // connection refused / reset: retryable
  | 'PROVIDER_AUTH' // 401 / 403: final
  | 'PROVIDER_VALIDATION' // 400 / 404 / 413: final
  | 'PROVIDER_MODEL' // the model rejected the inputs: final
  | 'PROVIDER_RESPONSE' // the response could not be decoded: final
  | 'PROVIDER_ABORTED' // the caller's signal aborted: final
  | 'PROVIDER_CONFIG'; // bad endpoint configuration: final

const RETRYABLE: ReadonlySet<ProviderErrorCode> = new Set(['PROVIDER_THROTTLED', 'PROVIDER_UNAVAILABLE', 'PROVIDER_TIMEOUT', 'PROVIDER_NETWORK']);

export class ProviderError extends TandemError {
  declare readonly code: ProviderErrorCode;
  /** HTTP status when the endpoint answered. */
  readonly status: number | undefined;

  constructor(code: ProviderErrorCode, message: string, options: { cause?: unknown; status?: number; details?: Record<string, unknown> } = {}) {
    super(code, message, { ...options, retryable: RETRYABLE.has(code) });
    this.status = options.status;
  }
}

/** Maps an HTTP status (and, where known, the server's error code) to a provider error. */
export function errorForStatus(endpoint: string, status: number, serverCode: string | undefined, message: string): ProviderError {
  const text = `endpoint "${endpoint}" answered ${status}${serverCode ? ` ${serverCode}` : ''}: ${message}`;
  const opts = { status, details: { endpoint, serverCode } };
  if (status === 429) return new ProviderError('PROVIDER_THROTTLED', text, opts);
  if (status === 408 || status === 504) return new ProviderError('PROVIDER_TIMEOUT', text, opts);
  if (status === 401 || status === 403) return new ProviderError('PROVIDER_AUTH', text, opts);
  if (status >= 500 && status !== 501) return new ProviderError('PROVIDER_UNAVAILABLE', text, opts);
  if (serverCode === 'CLOUD_MODEL_ERROR' || serverCode === 'ModelError') return new ProviderError('PROVIDER_MODEL', text, opts);
  return new ProviderError('PROVIDER_VALIDATION', text, opts);
}

const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CLOSED']);

/** Finds a Node/undici network error code anywhere along an error's cause chain. */
export function networkCode(error: unknown): string | undefined {
  let e: unknown = error;
  for (let i = 0; i < 5 && e instanceof Error; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return code;
    e = e.cause;
  }
  return undefined;
}

/**
 * A failure of a client's credential chain (AWS STS, a token exchange, Google ADC), told apart
 * from the endpoint's own answer: the credential service's status decides. A refused token,
 * role or key (4xx), or no credentials at all, is final; throttling, 5xx or an unreachable
 * credential service is worth a retry.
 */
export function credentialError(endpoint: string, error: unknown, status: number | undefined, serverCode?: string): ProviderError {
  const what = `endpoint "${endpoint}": the client's credential chain failed`;
  const message = error instanceof Error ? error.message : String(error);
  const details = { endpoint, ...(serverCode ? { serverCode } : {}) };
  if (status !== undefined) {
    const text = `${what}: the credential service answered ${status}${serverCode ? ` ${serverCode}` : ''}: ${message}`;
    if (status === 429 || serverCode?.startsWith('Throttling') === true) return new ProviderError('PROVIDER_THROTTLED', text, { cause: error, details });
    if (status >= 500) return new ProviderError('PROVIDER_UNAVAILABLE', text, { cause: error, details });
    return new ProviderError('PROVIDER_AUTH', text, { cause: error, details });
  }
  const net = networkCode(error);
  if (net) return new ProviderError('PROVIDER_NETWORK', `${what}: the credential service could not be reached (${net})`, { cause: error, details: { ...details, errno: net } });
  return new ProviderError('PROVIDER_AUTH', `${what}: ${message}`, { cause: error, details });
}
