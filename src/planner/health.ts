/**
 * Endpoint health as a circuit breaker: an endpoint that fails is avoided, then offered one
 * probe request after a back-off; a successful probe closes the circuit, a failed one doubles
 * the back-off. A failure that came with the server's Retry-After also keeps the endpoint out
 * until then, whichever of the two ends later.
 */

export type HealthState = 'healthy' | 'down' | 'probing';

/** Tuning of {@link EndpointHealth}. */
export interface HealthOptions {
  /** Consecutive failures that take an endpoint out of service. */
  failureThreshold?: number;
  /** First back-off before a probe, ms. */
  initialBackoffMs?: number;
  /** Longest back-off, ms. */
  maxBackoffMs?: number;
}

export class EndpointHealth {
  private readonly threshold: number;
  private readonly initialBackoff: number;
  private readonly maxBackoff: number;
  private failures = 0;
  private backoff: number;
  private retryAt = 0;
  /** Before this the server asked not to be called (its Retry-After); epoch ms. */
  private notBefore = 0;
  private down = false;
  private probeOut = false;

  constructor(options: HealthOptions = {}) {
    this.threshold = Math.max(1, options.failureThreshold ?? 1);
    this.initialBackoff = options.initialBackoffMs ?? 1000;
    this.maxBackoff = options.maxBackoffMs ?? 60_000;
    this.backoff = this.initialBackoff;
  }

  /** `healthy`: use freely; `probing`: the back-off elapsed, one probe may go; `down`: avoid. */
  state(now: number): HealthState {
    if (now < this.notBefore) return 'down';
    if (!this.down) return 'healthy';
    return !this.probeOut && now >= this.retryAt ? 'probing' : 'down';
  }

  /** The planner sent the probe request; no other goes until its outcome is known. */
  probeSent(): void {
    this.probeOut = true;
  }

  success(): void {
    this.failures = 0;
    this.down = false;
    this.probeOut = false;
    this.backoff = this.initialBackoff;
  }

  /**
   * A failed request. `retryAfterMs`, the server's Retry-After, holds the endpoint out for that
   * long even below the failure threshold, and is not cut short by a success: one that arrives
   * meanwhile was sent before the server asked for the pause, or slipped through it.
   */
  failure(now: number, retryAfterMs?: number): void {
    if (retryAfterMs !== undefined && retryAfterMs > 0) this.notBefore = Math.max(this.notBefore, now + retryAfterMs);
    this.failures += 1;
    if (this.down) {
      // Requests already in flight when the circuit opened fail too; only the probe's failure
      // says the endpoint is still bad, so only it lengthens the wait.
      if (!this.probeOut) return;
      this.backoff = Math.min(this.maxBackoff, this.backoff * 2);
    } else if (this.failures < this.threshold) {
      return;
    }
    this.down = true;
    this.probeOut = false;
    this.retryAt = now + this.backoff;
  }
}
