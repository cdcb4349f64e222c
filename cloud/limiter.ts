/**
 * Bounded concurrency with a bounded queue. When both are full a request is refused at
 * once (the caller answers 429) instead of waiting and holding its body in memory.
 */
import { clientClosed, CloudError } from './errors.js';

interface Waiter {
  grant: (release: () => void) => void;
}

export class Limiter {
  private active = 0;
  private readonly waiting: Waiter[] = [];

  constructor(readonly maxConcurrent: number, readonly maxQueue: number, private readonly onChange: (queued: number, active: number) => void = () => undefined) {}

  get queued(): number {
    return this.waiting.length;
  }

  get running(): number {
    return this.active;
  }

  /** Whether `acquire` would not resolve at once (it would queue, or refuse with 429). */
  get full(): boolean {
    return this.active >= this.maxConcurrent;
  }

  /**
   * Resolves to a release function once a slot is free. Rejects with 429 when the queue is
   * full, with 504 when `deadline` (epoch ms) passes while queued, and with 499
   * `CLOUD_CLIENT_CLOSED` when `signal` aborts first (or has already).
   */
  acquire(deadline: number, signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(clientClosed('before the request was queued; it was not run', signal.reason));
    if (this.active < this.maxConcurrent) {
      this.active += 1;
      this.onChange(this.waiting.length, this.active);
      return Promise.resolve(this.releaser());
    }
    if (this.waiting.length >= this.maxQueue) {
      return Promise.reject(new CloudError(429, 'CLOUD_OVERLOADED', `model is busy (${this.active} running, ${this.waiting.length} queued); retry later`, { retryable: true }));
    }
    return new Promise((resolve, reject) => {
      const leave = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const i = this.waiting.indexOf(waiter);
        if (i >= 0) this.waiting.splice(i, 1);
      };
      // A waiter that leaves gives its place up at once: the queue bound counts only
      // requests that will run.
      const onAbort = (): void => {
        leave();
        this.onChange(this.waiting.length, this.active);
        reject(clientClosed('while the request was queued; it was not run', signal?.reason));
      };
      const timer = setTimeout(() => {
        leave();
        this.onChange(this.waiting.length, this.active);
        reject(new CloudError(504, 'CLOUD_DEADLINE', 'the request deadline passed while it was queued', { retryable: true }));
      }, Math.max(0, deadline - Date.now()));
      const waiter: Waiter = {
        grant: (release) => {
          leave();
          resolve(release);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(waiter);
      this.onChange(this.waiting.length, this.active);
    });
  }

  private releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.waiting.shift();
      if (next) next.grant(this.releaser());
      else this.active -= 1;
      this.onChange(this.waiting.length, this.active);
    };
  }
}
