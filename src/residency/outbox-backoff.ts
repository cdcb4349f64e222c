/** When the outbox retries a delivery the store refused. */

export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
  factor: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 200, maxMs: 30_000, factor: 2 };

/**
 * Exponential backoff with full jitter: a random delay in [0, min(max, base * factor^(n-1))]
 * after the n-th failed attempt. The jitter keeps devices that lost the same store from
 * retrying in step when it comes back.
 */
export function retryDelayMs(backoff: BackoffOptions, attempt: number, random: () => number): number {
  const cap = Math.min(backoff.maxMs, backoff.baseMs * backoff.factor ** Math.max(0, attempt - 1));
  return Math.round(cap * random());
}
