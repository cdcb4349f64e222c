/**
 * One AbortSignal for a call that ends at the caller's abort or at the deadline, whichever
 * comes first, and the error that tells which of the two it was.
 */
import { ProviderError, networkCode, tlsError } from './errors.js';
import type { InferOptions } from './types.js';

export interface CallScope {
  signal: AbortSignal;
  /** Milliseconds left before the deadline (Infinity without one). */
  remaining(): number;
  /** Turns whatever the transport threw into a classified ProviderError. */
  classify(error: unknown, endpoint: string): ProviderError;
  dispose(): void;
}

export function callScope(options: InferOptions = {}): CallScope {
  const controller = new AbortController();
  let timedOut = false;
  let timer: NodeJS.Timeout | undefined;
  const onAbort = (): void => controller.abort(options.signal?.reason);
  if (options.signal) {
    if (options.signal.aborted) controller.abort(options.signal.reason);
    else options.signal.addEventListener('abort', onAbort, { once: true });
  }
  if (options.deadline !== undefined) {
    const ms = options.deadline - Date.now();
    const fire = (): void => {
      timedOut = true;
      controller.abort(new Error('deadline exceeded'));
    };
    if (ms <= 0) fire();
    else timer = setTimeout(fire, ms);
  }
  return {
    signal: controller.signal,
    remaining: () => (options.deadline === undefined ? Infinity : options.deadline - Date.now()),
    classify(error: unknown, endpoint: string): ProviderError {
      if (error instanceof ProviderError) return error;
      if (timedOut) return new ProviderError('PROVIDER_TIMEOUT', `endpoint "${endpoint}" did not answer before the deadline`, { cause: error });
      if (options.signal?.aborted) return new ProviderError('PROVIDER_ABORTED', `request to endpoint "${endpoint}" was aborted`, { cause: error });
      const tls = tlsError(endpoint, error);
      if (tls) return tls;
      const net = networkCode(error);
      if (net) return new ProviderError('PROVIDER_NETWORK', `endpoint "${endpoint}" connection failed (${net})`, { cause: error, details: { errno: net } });
      const message = error instanceof Error ? error.message : String(error);
      if (/fetch failed|socket hang up|other side closed|^aborted$/i.test(message)) return new ProviderError('PROVIDER_NETWORK', `endpoint "${endpoint}" connection failed: ${message}`, { cause: error });
      return new ProviderError('PROVIDER_RESPONSE', `endpoint "${endpoint}" call failed: ${message}`, { cause: error });
    },
    dispose(): void {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
    },
  };
}

/** Rejects as soon as `signal` aborts, for SDK calls that cannot be cancelled themselves. */
export function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    // The caller already started `promise`; nobody will await it, so its failure must not surface as unhandled.
    promise.catch(() => {});
    return Promise.reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => { signal.removeEventListener('abort', onAbort); resolve(v); },
      (e: unknown) => { signal.removeEventListener('abort', onAbort); reject(e instanceof Error ? e : new Error(String(e))); },
    );
  });
}
