/**
 * Provider failures, classified so that callers can tell a retry (another attempt, another
 * endpoint, or local fallback) from a final answer.
 */
import type { AreaErrorCode } from '../errors/catalogue.js';
import { TandemError } from '../errors/index.js';

/**
 * The providers' codes, listed with their meaning in the error catalogue
 * (`errors/catalogue/runtime.ts`), which also says which are retryable: throttling, 5xx, timeouts
 * and network faults are; the rest are final.
 */
export type ProviderErrorCode = AreaErrorCode<'providers'>;

/** Codes a server's Retry-After is kept on: the answers RFC 9110 gives the header a meaning for. */
const RETRY_AFTER_CODES: ReadonlySet<ProviderErrorCode> = new Set(['PROVIDER_THROTTLED', 'PROVIDER_UNAVAILABLE']);

/**
 * The longest wait a Retry-After is taken at. A server asking for hours (or a garbled date
 * decades away) would otherwise park an endpoint for that long on one answer; beyond an hour
 * the planner's own back-off and later answers decide.
 */
export const MAX_RETRY_AFTER_MS = 3_600_000;

export class ProviderError extends TandemError {
  declare readonly code: ProviderErrorCode;
  /** HTTP status when the endpoint answered. */
  readonly status: number | undefined;
  /**
   * How long the endpoint asked not to be called again (its `Retry-After`, see
   * {@link parseRetryAfter}), ms from when its answer arrived; only on `PROVIDER_THROTTLED`
   * and `PROVIDER_UNAVAILABLE`, and only where the client's transport exposes the header.
   */
  readonly retryAfterMs: number | undefined;

  constructor(code: ProviderErrorCode, message: string, options: { cause?: unknown; status?: number; details?: Record<string, unknown>; retryAfterMs?: number | undefined } = {}) {
    // Never a site's own retryable: a provider failure's classification is its code's.
    super(code, message, { cause: options.cause, details: options.details });
    this.status = options.status;
    const wait = options.retryAfterMs;
    this.retryAfterMs = wait !== undefined && RETRY_AFTER_CODES.has(code) && wait >= 0 ? Math.min(wait, MAX_RETRY_AFTER_MS) : undefined;
  }
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const IMF_FIXDATE = /^(?:mon|tue|wed|thu|fri|sat|sun), (\d{2}) ([a-z]{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) gmt$/;
const RFC850_DATE = /^(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday), (\d{2})-([a-z]{3})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) gmt$/;
const ASCTIME_DATE = /^(?:mon|tue|wed|thu|fri|sat|sun) ([a-z]{3}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/;

/**
 * An HTTP-date (RFC 9110 §5.6.7: IMF-fixdate, and the obsolete RFC 850 and asctime forms a
 * recipient must still accept) as epoch ms, or undefined. Not `Date.parse`: it takes almost
 * anything with a number in it, and reads asctime, which carries no zone, as local time.
 */
export function parseHttpDate(text: string, now = Date.now()): number | undefined {
  const s = text.trim().toLowerCase();
  // Each form's fields, in the order day, month, year, hour, minute, second.
  let fields: string[];
  let m: RegExpExecArray | null;
  if ((m = IMF_FIXDATE.exec(s))) {
    fields = m.slice(1);
  } else if ((m = RFC850_DATE.exec(s))) {
    // A two-digit year more than 50 years ahead is the latest past year ending in those digits (§5.6.7).
    const thisYear = new Date(now).getUTCFullYear();
    let year = Math.floor(thisYear / 100) * 100 + Number(m[3]);
    if (year > thisYear + 50) year -= 100;
    fields = [m[1] as string, m[2] as string, String(year), ...m.slice(4)];
  } else if ((m = ASCTIME_DATE.exec(s))) {
    fields = [m[2] as string, m[1] as string, m[6] as string, ...m.slice(3, 6)];
  } else {
    return undefined;
  }
  const month = MONTHS.indexOf(fields[1] as string);
  const [day, year, hh, mm, ss] = [fields[0], fields[2], fields[3], fields[4], fields[5]].map(Number) as [number, number, number, number, number];
  // 60: a leap second, which the grammar allows.
  if (month < 0 || day < 1 || hh > 23 || mm > 59 || ss > 60) return undefined;
  const midnight = Date.UTC(year, month, day);
  // Date.UTC rolls 31 February over into March: such a date is malformed, not a date.
  if (new Date(midnight).getUTCDate() !== day) return undefined;
  return midnight + ((hh * 60 + mm) * 60 + ss) * 1000;
}

/**
 * A `Retry-After` value (RFC 9110 §10.2.3) as ms to wait, or undefined when there is none or
 * it is malformed (a fraction, a sign, a unit, two values folded into one). delta-seconds are
 * taken as given; an HTTP-date is measured from the answer's own `Date` header where it has a
 * valid one, so that an edge device's clock being off does not stretch or shrink the wait,
 * else from `now`. A date already past is 0. Waits beyond {@link MAX_RETRY_AFTER_MS} are cut
 * to it.
 */
export function parseRetryAfter(value: string | null | undefined, serverDate?: string | null, now = Date.now()): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Math.min(Number(text) * 1000, MAX_RETRY_AFTER_MS);
  const at = parseHttpDate(text, now);
  if (at === undefined) return undefined;
  const base = (serverDate ? parseHttpDate(serverDate, now) : undefined) ?? now;
  return Math.min(Math.max(0, at - base), MAX_RETRY_AFTER_MS);
}

/**
 * The Retry-After of an answer's headers: fetch-style `Headers` (by shape: gaxios hands over
 * node-fetch's, which are no `instanceof Headers`), or the plain object Node and the AWS SDK
 * keep them in, names in any case.
 */
export function retryAfterOf(headers: unknown, now = Date.now()): number | undefined {
  if (headers === null || typeof headers !== 'object') return undefined;
  const get = (headers as { get?: unknown }).get;
  if (typeof get === 'function') {
    const read = (name: string): string | undefined => {
      const v: unknown = get.call(headers, name);
      return typeof v === 'string' ? v : undefined;
    };
    return parseRetryAfter(read('retry-after'), read('date'), now);
  }
  let value: unknown;
  let date: unknown;
  for (const [name, v] of Object.entries(headers as Record<string, unknown>)) {
    const key = name.toLowerCase();
    if (key === 'retry-after') value = v;
    else if (key === 'date') date = v;
  }
  return typeof value === 'string' ? parseRetryAfter(value, typeof date === 'string' ? date : undefined, now) : undefined;
}

/**
 * Maps an HTTP status (and, where known, the server's error code) to a provider error;
 * `retryAfterMs` (the answer's Retry-After) is kept where the code is one it applies to.
 */
export function errorForStatus(endpoint: string, status: number, serverCode: string | undefined, message: string, retryAfterMs?: number): ProviderError {
  const text = `endpoint "${endpoint}" answered ${status}${serverCode ? ` ${serverCode}` : ''}: ${message}`;
  const opts = { status, details: { endpoint, serverCode }, retryAfterMs };
  if (status === 429) return new ProviderError('PROVIDER_THROTTLED', text, opts);
  if (status === 408 || status === 504) return new ProviderError('PROVIDER_TIMEOUT', text, opts);
  if (status === 401 || status === 403) return new ProviderError('PROVIDER_AUTH', text, opts);
  if (status >= 500 && status !== 501) return new ProviderError('PROVIDER_UNAVAILABLE', text, opts);
  if (serverCode === 'CLOUD_MODEL_ERROR' || serverCode === 'ModelError') return new ProviderError('PROVIDER_MODEL', text, opts);
  return new ProviderError('PROVIDER_VALIDATION', text, opts);
}

const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CLOSED']);

/**
 * An error and its causes, outermost first, at most five deep: SDKs wrap the socket's or the
 * TLS layer's error a few times, and a cyclic or endless chain must not hang a classifier.
 */
export function* causeChain(error: unknown): Generator<Error> {
  let e: unknown = error;
  for (let i = 0; i < 5 && e instanceof Error; i++) {
    yield e;
    e = e.cause;
  }
}

/** Finds a Node/undici network error code anywhere along an error's cause chain. */
export function networkCode(error: unknown): string | undefined {
  for (const e of causeChain(error)) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return code;
  }
  return undefined;
}

/**
 * OpenSSL's verification failures as Node reports them (`error.code`), and the host-name check's.
 * Never a transient: the same certificate against the same roots fails the same way.
 */
const TLS_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_UNTRUSTED', 'CERT_REJECTED', 'CERT_SIGNATURE_FAILURE', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID',
  'CERT_REVOKED', 'INVALID_CA', 'PATH_LENGTH_EXCEEDED', 'INVALID_PURPOSE', 'HOSTNAME_MISMATCH', 'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** gRPC's UNAVAILABLE, the status grpc-js fails a call with when its channel cannot connect. */
const GRPC_UNAVAILABLE = 14;

/**
 * grpc-js keeps no code of the TLS failure, only OpenSSL's text in the UNAVAILABLE status's
 * details ("No connection established. Last error: Error: unable to verify the first
 * certificate"): these are the texts of the codes above.
 */
const TLS_MESSAGE = /unable to (?:get (?:local )?issuer certificate|verify the first certificate|verify leaf signature)|self[- ]signed certificate|certificate (?:has expired|is not yet valid|signature failure|not trusted|rejected|revoked)|invalid CA certificate|Hostname\/IP does not match certificate's altnames/i;

/**
 * A certificate the endpoint presented and this client refused, along an error's cause chain,
 * as a final `PROVIDER_TLS`; undefined for any other failure.
 */
export function tlsError(endpoint: string, error: unknown): ProviderError | undefined {
  for (const e of causeChain(error)) {
    const code = (e as { code?: unknown }).code;
    if ((typeof code === 'string' && TLS_CODES.has(code)) || (e === error && code === GRPC_UNAVAILABLE && TLS_MESSAGE.test(e.message))) {
      const tlsCode = typeof code === 'string' ? code : undefined;
      return new ProviderError('PROVIDER_TLS', `endpoint "${endpoint}" presented a certificate this client does not accept: ${e.message} (a private CA? set the endpoint's caFile)`, { cause: error, details: { endpoint, ...(tlsCode ? { tlsCode } : {}) } });
    }
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
