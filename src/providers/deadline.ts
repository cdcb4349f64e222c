/**
 * A provider call's scope: one AbortSignal that ends at the caller's abort or at the deadline,
 * whichever comes first (the shared helper, src/util/deadline.ts), and the error that tells
 * which of the two it was.
 */
import { deadlineSignal } from '../util/deadline.js';
import { ProviderError, networkCode, tlsError } from './errors.js';
import type { InferOptions } from './types.js';

/** Rejects as soon as a signal aborts or a deadline passes, for SDK calls that cannot be cancelled themselves. */
export { raceAbort } from '../util/deadline.js';

export interface CallScope {
  signal: AbortSignal;
  /** Milliseconds left before the deadline (Infinity without one). */
  remaining(): number;
  /** Turns whatever the transport threw into a classified ProviderError. */
  classify(error: unknown, endpoint: string): ProviderError;
  dispose(): void;
}

export function callScope(options: InferOptions = {}): CallScope {
  const scope = deadlineSignal({ signal: options.signal, deadline: options.deadline, timeoutReason: () => new Error('deadline exceeded') });
  return {
    signal: scope.signal,
    remaining: scope.remaining,
    classify(error: unknown, endpoint: string): ProviderError {
      if (error instanceof ProviderError) return error;
      if (scope.expired) return new ProviderError('PROVIDER_TIMEOUT', `endpoint "${endpoint}" did not answer before the deadline`, { cause: error });
      if (options.signal?.aborted) return new ProviderError('PROVIDER_ABORTED', `request to endpoint "${endpoint}" was aborted`, { cause: error });
      const tls = tlsError(endpoint, error);
      if (tls) return tls;
      const net = networkCode(error);
      if (net) return new ProviderError('PROVIDER_NETWORK', `endpoint "${endpoint}" connection failed (${net})`, { cause: error, details: { errno: net } });
      const message = error instanceof Error ? error.message : String(error);
      if (/fetch failed|socket hang up|other side closed|^aborted$/i.test(message)) return new ProviderError('PROVIDER_NETWORK', `endpoint "${endpoint}" connection failed: ${message}`, { cause: error });
      return new ProviderError('PROVIDER_RESPONSE', `endpoint "${endpoint}" call failed: ${message}`, { cause: error });
    },
    dispose: scope.dispose,
  };
}
