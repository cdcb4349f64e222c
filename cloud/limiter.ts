/**
 * Bounded concurrency with a bounded queue, per model. When both are full a request is refused
 * at once (the caller answers 429) instead of waiting and holding its body in memory. The
 * queueing is the shared one (src/util/bounded-queue.ts); this keeps the service's errors.
 */
import { BoundedQueue, type QueueRefusals } from '../src/util/index.js';
import { clientClosed, CloudError } from './errors.js';

const refusals: QueueRefusals = {
  full: ({ active, queued }) => new CloudError(429, 'CLOUD_OVERLOADED', `model is busy (${active} running, ${queued} queued); retry later`, { retryable: true }),
  aborted: (reason, when) => clientClosed(when === 'before' ? 'before the request was queued; it was not run' : 'while the request was queued; it was not run', reason),
  expired: () => new CloudError(504, 'CLOUD_DEADLINE', 'the request deadline passed while it was queued', { retryable: true }),
};

export class Limiter {
  private readonly queue: BoundedQueue;

  constructor(readonly maxConcurrent: number, readonly maxQueue: number, onChange: (queued: number, active: number) => void = () => undefined) {
    this.queue = new BoundedQueue({ capacity: maxConcurrent, maxQueue, refusals, onChange });
  }

  get queued(): number {
    return this.queue.queued;
  }

  get running(): number {
    return this.queue.active;
  }

  /** Whether `acquire` would not resolve at once (it would queue, or refuse with 429). */
  get full(): boolean {
    return this.queue.full;
  }

  /**
   * Resolves to a release function once a slot is free. Rejects with 429 when the queue is
   * full, with 504 when `deadline` (epoch ms) passes while queued, and with 499
   * `CLOUD_CLIENT_CLOSED` when `signal` aborts first (or has already).
   */
  async acquire(deadline: number, signal?: AbortSignal): Promise<() => void> {
    await this.queue.acquire({ deadline, signal });
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.queue.release();
    };
  }
}

/**
 * The service-wide budget of request-body bytes in memory. A body is admitted before it is
 * read: its Content-Length is reserved at once (a chunked body's bytes as they arrive) and
 * held until its request is answered, so that bodies cannot pile up in memory ahead of the
 * per-model limiters above, which only see a request once its body is in.
 */
export class BodyBudget {
  private used = 0;
  /** The most bytes held at once, and the bodies refused for want of room: for tests and the bench. */
  peak = 0;
  refused = 0;

  constructor(readonly capacity: number) {}

  get inFlight(): number {
    return this.used;
  }

  /** Reserves `bytes`, or throws 429 `CLOUD_OVERLOADED` (nothing reserved) when they do not fit now, 413 when they never would. */
  reserve(bytes: number): void {
    // A body the whole budget cannot hold would be refused on every retry: that is no overload.
    if (bytes > this.capacity) throw new CloudError(413, 'CLOUD_TOO_LARGE', `request body of at least ${bytes} bytes exceeds the service's body budget of ${this.capacity} bytes`, { retryable: false });
    if (this.used + bytes > this.capacity) {
      this.refused += 1;
      throw new CloudError(429, 'CLOUD_OVERLOADED', `the service holds ${this.used} bytes of request bodies (budget ${this.capacity}); this ${bytes}-byte body does not fit, retry later`, { retryable: true });
    }
    this.used += bytes;
    if (this.used > this.peak) this.peak = this.used;
  }

  release(bytes: number): void {
    this.used -= bytes;
  }
}
