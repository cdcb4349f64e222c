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
