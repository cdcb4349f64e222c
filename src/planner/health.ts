/**
 * Endpoint health as a circuit breaker: an endpoint that fails is avoided, then offered one
 * probe request after a back-off; a successful probe closes the circuit, a failed one doubles
 * the back-off. A failure that came with the server's Retry-After also keeps the endpoint out
 * until then, whichever of the two ends later.
 *
 * Requests overlap, so outcomes arrive out of order with the breaker's transitions: a slow
 * request sent before the probe succeeded may fail after it, one in flight when the circuit
 * opened may fail while the probe is out. An outcome moves the breaker only when its request
 * was sent at or after the transition it would undo or extend (its `sentAt`) — but for a
 * success sent before the circuit opened, which brings the probe forward (see `success`); one
 * without a send time counts as sent just now.
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

/** What is known of one failed request besides when the breaker heard of it. */
export interface FailureDetails {
  /** The server's Retry-After, ms. */
  retryAfterMs?: number;
  /** Epoch ms the request was sent to the endpoint. */
  sentAt?: number;
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
  /** When a success last closed the circuit, epoch ms. */
  private closedAt = Number.NEGATIVE_INFINITY;
  /** When the circuit last opened, or a failed probe kept it open, epoch ms. */
  private openedAt = Number.NEGATIVE_INFINITY;
  /** When the last probe was sent, epoch ms. */
  private probeSentAt = Number.NEGATIVE_INFINITY;

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

  /**
   * The planner sent the probe request at `now` (its decision: the probe's remote call goes
   * at or after it); no other goes until its outcome is known.
   */
  probeSent(now: number): void {
    this.probeOut = true;
    this.probeSentAt = now;
  }

  /** A request sent at `sentAt` succeeded, heard of at `now`. */
  success(now: number, sentAt?: number): void {
    if (this.down && sentAt !== undefined && sentAt < this.openedAt) {
      // Sent before the circuit opened: it may have been served before whatever failed the
      // request that opened it (a crash leaves answers already on their way), so it does not
      // close the circuit — that would send traffic to a dead endpoint and reset the back-off.
      // But after a lone transient failure the requests still in flight all come back fine,
      // and sitting out the back-off would ignore them: it makes the probe due now instead, so
      // one request confirms. Not once a probe was sent after this request: that probe is
      // newer news, and an early probe per stale success would double the back-off for each.
      if (!this.probeOut && sentAt >= this.probeSentAt) this.retryAt = Math.min(this.retryAt, now);
      return;
    }
    if (this.down) this.closedAt = now;
    this.failures = 0;
    this.down = false;
    this.probeOut = false;
    this.backoff = this.initialBackoff;
  }

  /**
   * A failed request, heard of at `now`. `retryAfterMs`, the server's Retry-After, holds the
   * endpoint out for that long even below the failure threshold, and is not cut short by a
   * success: one that arrives meanwhile was sent before the server asked for the pause, or
   * slipped through it. It applies whenever the request was sent: it is the server's word on
   * the time to come, not evidence of the endpoint's state when the request went out.
   */
  failure(now: number, details: FailureDetails = {}): void {
    const { retryAfterMs, sentAt } = details;
    if (retryAfterMs !== undefined && retryAfterMs > 0) this.notBefore = Math.max(this.notBefore, now + retryAfterMs);
    if (this.down) {
      // Requests already in flight when the circuit opened or the probe went fail too; only
      // the probe's failure says the endpoint is still bad, so only it lengthens the wait.
      if (!this.probeOut || (sentAt !== undefined && sentAt < this.probeSentAt)) return;
      this.backoff = Math.min(this.maxBackoff, this.backoff * 2);
    } else {
      // Sent before a success closed the circuit: the endpoint has answered since, and the
      // failure may describe the trouble the circuit was opened for.
      if (sentAt !== undefined && sentAt < this.closedAt) return;
      this.failures += 1;
      if (this.failures < this.threshold) return;
    }
    this.down = true;
    this.probeOut = false;
    this.openedAt = now;
    this.retryAt = now + this.backoff;
  }
}
