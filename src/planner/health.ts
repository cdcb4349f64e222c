/**
 * Endpoint health as a circuit breaker: an endpoint that fails is avoided, then offered one
 * probe request after a back-off; a successful probe closes the circuit, a failed one doubles
 * the back-off.
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

  failure(now: number): void {
    this.failures += 1;
    if (this.down) {
      // A failed probe: wait longer before the next one.
      this.backoff = Math.min(this.maxBackoff, this.backoff * 2);
    } else if (this.failures < this.threshold) {
      return;
    }
    this.down = true;
    this.probeOut = false;
    this.retryAt = now + this.backoff;
  }
}
